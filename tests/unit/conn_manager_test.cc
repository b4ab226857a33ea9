// The connection manager, the filter chain and the router against a fake codec (the test
// plays the client by calling the stream's decoder) and a fake upstream (clusters whose pools
// hand out recording streams; the test plays the server). No sockets; a fake clock.
#include <catch2/catch.hpp>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/yaml_proto.h"
#include "data-plane/http/conn_manager.h"
#include "data-plane/http/filters/router/clusters.h"
#include "data-plane/http/filters/router/router.h"
#include "data-plane/stats/proxy_stats.h"
#include "envoy/config/route/v3/route.pb.h"
#include "tests/unit/fake_connection.h"
#include "tests/unit/fake_manager_context.h"

namespace weft::http {
namespace {

using namespace std::chrono_literals;
using testing::FakeConnection;

// --- Fake codec: the test is the client ------------------------------------------------------

struct FakeCodec final : ServerCodec, ResponseEncoder {
  ServerCodecCallbacks* callbacks = nullptr;
  RequestDecoder* decoder = nullptr;
  RequestHeaderMap request;
  // What the manager encoded.
  std::optional<int> status;
  ResponseHeaderMap response;
  std::string body;
  bool ended = false;
  int continues = 0;
  bool close_after = false;
  bool complete_calls = 0;

  RequestDecoder& Start(std::string_view method, std::string_view path, bool end_stream,
                        std::initializer_list<std::pair<std::string, std::string>> headers = {}) {
    status.reset();
    response.Clear();
    body.clear();
    ended = false;
    request.Clear();
    request.set_method(method);
    request.set_path(path);
    request.set_authority("svc");
    request.set_scheme("http");
    for (const auto& [k, v] : headers) request.Add(k, v);
    decoder = &callbacks->NewStream(*this);
    decoder->DecodeHeaders(request, end_stream);
    return *decoder;
  }

  DispatchResult Dispatch(net::Buffer&, bool) override { return {}; }
  Protocol protocol() const override { return Protocol::kHttp11; }
  bool partial_head() const override { return false; }
  void CloseAfterResponse() override { close_after = true; }
  bool wants_close() const override { return close_after; }
  void OnStreamComplete() override { complete_calls = true; }
  void OpenStreamForError() override { decoder = &callbacks->NewStream(*this); }
  void Encode100Continue() override { ++continues; }
  void EncodeHeaders(const ResponseHeaderMap& h, bool end_stream) override {
    status = h.status();
    response.Clear();
    response.set_status(h.status());
    h.ForEach([&](std::string_view n, std::string_view v) { response.Add(n, v); });
    ended = end_stream;
  }
  void EncodeData(std::string_view data, bool end_stream) override {
    body.append(data);
    ended = ended || end_stream;
  }
  void EncodeTrailers(const TrailerMap&) override { ended = true; }
};

// --- Fake upstream: the test is the server ---------------------------------------------------

struct FakePoolStream;

struct Attempt {
  std::string host;
  upstream::LbContext context;
  http::ResponseDecoder* decoder = nullptr;
  upstream::PoolCallbacks* callbacks = nullptr;
  std::unique_ptr<FakePoolStream> stream;
  bool cancelled = false;
};

struct FakePoolStream final : upstream::PoolStream, RequestEncoder {
  RequestHeaderMap sent;
  bool sent_headers = false;
  std::string body;
  bool request_ended = false;
  bool done = false;
  bool reset = false;
  bool reused_flag = false;
  int read_disabled = 0;
  RequestEncoder& encoder() override { return *this; }
  bool reused() const override { return reused_flag; }
  bool request_written() const override { return sent_headers; }
  void Done() override { done = true; }
  void Reset() override { reset = true; }
  void ReadDisable(bool d) override { read_disabled += d ? 1 : -1; }
  std::unique_ptr<network::Connection> Detach() override {
    return std::make_unique<FakeConnection>();
  }
  void EncodeHeaders(const RequestHeaderMap& h, bool end_stream) override {
    sent.Clear();
    sent.set_method(h.method());
    sent.set_path(h.path());
    sent.set_authority(h.authority());
    h.ForEach([&](std::string_view n, std::string_view v) { sent.Add(n, v); });
    sent_headers = true;
    request_ended = end_stream;
  }
  void EncodeData(std::string_view data, bool end_stream) override {
    body.append(data);
    request_ended = request_ended || end_stream;
  }
  void EncodeTrailers(const TrailerMap&) override { request_ended = true; }
};

struct FakeUpstream;

struct FakePool final : upstream::ConnPool {
  FakeUpstream* upstream = nullptr;
  std::string host;
  Pending* NewStream(http::ResponseDecoder& decoder, upstream::PoolCallbacks& callbacks,
                     const upstream::StreamOptions&) override;
  void Cancel(Pending* p) override;
  void OnTick(std::chrono::steady_clock::time_point) override {}
  void Drain() override {}
  bool empty() const override { return true; }
};

struct FakeCluster final : UpstreamCluster {
  std::string name_ = "backend";
  std::vector<upstream::HostPtr> hosts;
  std::map<std::string, std::unique_ptr<FakePool>> pools;
  proxy::ClusterStats stats_;
  std::deque<upstream::LbContext> picks;
  size_t next = 0;
  int starts = 0;
  int ends = 0;

  const std::string& name() const override { return name_; }
  std::chrono::milliseconds connect_timeout() const override { return 1000ms; }
  proxy::ClusterStats& stats() override { return stats_; }
  upstream::HostPtr ChooseHost(const upstream::LbContext& context,
                               std::span<const upstream::Host* const> tried) override {
    picks.push_back(context);
    if (hosts.empty()) return nullptr;
    for (size_t n = 0; n < hosts.size(); ++n) {
      const auto& h = hosts[(next + n) % hosts.size()];
      if (std::find(tried.begin(), tried.end(), h.get()) == tried.end()) {
        next = (next + n + 1) % hosts.size();
        return h;
      }
    }
    return hosts[next++ % hosts.size()];
  }
  proxy::HostStats* StatsForHost(const upstream::Host&) override { return nullptr; }
  void OnRequestStart(upstream::Host&) override { ++starts; }
  void OnRequestEnd(upstream::Host&, std::chrono::nanoseconds) override { ++ends; }
  upstream::ConnPool& PoolFor(const upstream::Host& host) override {
    return *pools.at(host.hash_key());
  }
};

struct FakeUpstream final : UpstreamClusters {
  std::shared_ptr<FakeCluster> cluster = std::make_shared<FakeCluster>();
  std::vector<std::unique_ptr<Attempt>> attempts;

  FakeUpstream() {
    for (const char* addr : {"10.0.0.1", "10.0.0.2", "10.0.0.3"}) {
      upstream::Host::Options o;
      o.address = addr;
      o.port = 80;
      auto h = std::make_shared<upstream::Host>(o);
      cluster->hosts.push_back(h);
      auto pool = std::make_unique<FakePool>();
      pool->upstream = this;
      pool->host = h->hash_key();
      cluster->pools[h->hash_key()] = std::move(pool);
    }
  }
  std::shared_ptr<UpstreamCluster> Find(std::string_view name) override {
    return name == cluster->name_ ? cluster : nullptr;
  }
  Attempt& last() { return *attempts.back(); }
  // The server side of the latest attempt.
  FakePoolStream& Ready(bool reused = false) {
    Attempt& a = last();
    a.stream = std::make_unique<FakePoolStream>();
    a.stream->reused_flag = reused;
    a.callbacks->OnPoolReady(*a.stream);
    return *a.stream;
  }
  void Fail(upstream::PoolFailure f = upstream::PoolFailure::kConnectFailure) {
    last().callbacks->OnPoolFailure(f, "refused");
  }
  void Respond(int status, std::string_view body = "", bool end = true) {
    ResponseHeaderMap h;
    h.set_status(status);
    if (end) h.Add("content-length", std::to_string(body.size()));
    last().decoder->DecodeHeaders(h, body.empty() && end);
    // A stream the router reset (a retry) gets nothing more, as with a real codec.
    if ((!body.empty() || !end) && !last().stream->reset) last().decoder->DecodeData(body, end);
  }
};

upstream::ConnPool::Pending* FakePool::NewStream(http::ResponseDecoder& decoder,
                                                 upstream::PoolCallbacks& callbacks,
                                                 const upstream::StreamOptions&) {
  auto a = std::make_unique<Attempt>();
  a->host = host;
  a->decoder = &decoder;
  a->callbacks = &callbacks;
  a->context = upstream->cluster->picks.back();
  upstream->attempts.push_back(std::move(a));
  return reinterpret_cast<Pending*>(upstream->attempts.back().get());
}

void FakePool::Cancel(Pending* p) { reinterpret_cast<Attempt*>(p)->cancelled = true; }

// --- The worker's side -----------------------------------------------------------------------

// The shared fake context (tests/unit/fake_manager_context.h) with this file's upstream.
struct FakeContext final : testing::FakeManagerContext {
  FakeUpstream fake_upstream;
  FakeContext() { upstream = &fake_upstream; }
};

std::shared_ptr<const router::RouteTable> Routes(std::string_view yaml) {
  envoy::config::route::v3::RouteConfiguration rc;
  absl::Status s = YamlToProto(yaml, "routes.yaml", &rc);
  INFO(s.ToString());
  REQUIRE(s.ok());
  auto table = router::RouteTable::Create(rc);
  INFO(table.status().ToString());
  REQUIRE(table.ok());
  return *table;
}

constexpr std::string_view kRoutes = R"(
name: routes
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - name: direct
    match: { prefix: /direct }
    direct_response: { status: 200, body: { inline_string: "here\n" } }
  - name: nocluster
    match: { prefix: /nocluster }
    route: { cluster: missing }
  - name: retry
    match: { prefix: /retry }
    route:
      cluster: backend
      hash_policy: [{ header: { header_name: x-user } }]
      retry_policy:
        retry_on: "5xx,connect-failure,retriable-status-codes,reset"
        num_retries: 2
        retriable_status_codes: [418]
        per_try_timeout: 0.2s
  - name: slow
    match: { prefix: /slow }
    route: { cluster: backend, timeout: 0.5s }
  - name: idle
    match: { prefix: /idle }
    route: { cluster: backend, idle_timeout: 0.3s, timeout: 0s }
  - name: main
    match: { prefix: / }
    route: { cluster: backend, prefix_rewrite: /v2/ }
    request_headers_to_add: [{ header: { key: x-added, value: "1" } }]
    response_headers_to_add: [{ header: { key: x-route, value: main } }]
)";

// A decode filter under test's control: answers locally, or waits and resumes.
struct TestFilter final : Filter {
  StreamFilterCallbacks& cb;
  std::string mode;
  explicit TestFilter(StreamFilterCallbacks& c, std::string m) : cb(c), mode(std::move(m)) {}
  FilterStatus DecodeHeaders(RequestHeaderMap& h, bool) override {
    if (h.Has("x-deny")) {
      cb.SendLocalReply(403, "RBAC: access denied", ResponseFlag::kRbacDenied,
                        "rbac_access_denied_matched_policy[none]");
      return FilterStatus::kStop;
    }
    if (h.Has("x-wait")) {
      cb.WakeAt(this, cb.now() + 100ms);
      return FilterStatus::kStop;
    }
    return FilterStatus::kContinue;
  }
  void OnTimer(Clock::TimePoint) override { cb.ContinueDecoding(); }
  FilterStatus EncodeHeaders(ResponseHeaderMap& h, bool) override {
    h.Add("x-filtered", "yes");
    return FilterStatus::kContinue;
  }
};
struct TestFilterFactory final : FilterFactory {
  std::unique_ptr<Filter> Create(StreamFilterCallbacks& cb) const override {
    return std::make_unique<TestFilter>(cb, "");
  }
};

struct Fixture {
  std::shared_ptr<FakeContext> ctx = std::make_shared<FakeContext>();
  FakeCodec* codec = nullptr;
  FakeConnection* conn = nullptr;
  std::unique_ptr<ConnectionManager> cm;
  explicit Fixture(bool with_test_filter = true) {
    ctx->routes_ = Routes(kRoutes);
    if (with_test_filter)
      ctx->config_.filters.factories.push_back(std::make_shared<TestFilterFactory>());
    ctx->config_.filters.factories.push_back(NewRouterFilterFactory());
    auto c = std::make_unique<FakeConnection>();
    conn = c.get();
    cm = std::make_unique<ConnectionManager>(
        ctx, std::move(c),
        [this](network::Connection&, ServerCodecCallbacks& cb, const ConnectionManagerConfig&) {
          auto codec_ = std::make_unique<FakeCodec>();
          codec_->callbacks = &cb;
          codec = codec_.get();
          return codec_;
        });
  }
  FakeUpstream& up() { return ctx->fake_upstream; }
  void Tick(std::chrono::milliseconds d) {
    ctx->clock.Advance(d);
    cm->OnTick(ctx->clock.Now());
  }
  const std::string& Log() const { return ctx->log.back(); }
  uint64_t FlagCount(std::string_view flag) {
    return ctx->worker_stats.Named("listener.listener.response_flags." + std::string(flag))
        ->Value();
  }
};

TEST_CASE("conn manager: a routed request goes upstream rewritten, the answer comes back",
          "[conn_manager]") {
  Fixture f;
  f.codec->Start("GET", "/api/x?q=1", true, {{"x-user", "u1"}});
  REQUIRE(f.up().attempts.size() == 1);
  FakePoolStream& s = f.up().Ready();
  CHECK(s.sent.path() == "/v2/api/x?q=1");
  CHECK(s.sent.Get("x-added") == "1");
  CHECK(s.sent.Get("x-forwarded-proto") == "http");
  CHECK(s.sent.Get("x-request-id").has_value());
  CHECK(s.request_ended);
  f.up().Respond(200, "hello");
  REQUIRE(f.codec->status == 200);
  CHECK(f.codec->body == "hello");
  CHECK(f.codec->ended);
  CHECK(f.codec->response.Get("x-route") == "main");
  CHECK(f.codec->response.Get("x-filtered") == "yes");  // encode hooks ran
  CHECK(s.done);                                        // the connection goes back to its pool
  CHECK(f.up().cluster->starts == f.up().cluster->ends);
  CHECK(f.Log().find("\"response_code\":200") != std::string::npos);
  CHECK(f.Log().find("\"response_flags\":\"-\"") != std::string::npos);
  CHECK(f.Log().find("\"upstream_host\":\"10.0.0.1:80\"") != std::string::npos);
  CHECK(f.Log().find("\"path\":\"/api/x?q=1\"") != std::string::npos);  // as received
  CHECK(f.ctx->stats_.http.rq_2xx.Value() == 1);
  CHECK(f.ctx->stats_.http.rq_active.Value() == 0);
  CHECK(f.up().cluster->stats_.http.rq_active.Value() == 0);
}

TEST_CASE("conn manager: local replies carry a flag, a one-line body and a stat",
          "[conn_manager]") {
  SECTION("no route table: NR") {
    Fixture f;
    f.ctx->routes_ = nullptr;
    f.codec->Start("GET", "/", true);
    CHECK(f.codec->status == 404);
    CHECK(f.codec->body == local_reply::kNoRouteTable);
    CHECK(f.Log().find("\"response_flags\":\"NR\"") != std::string::npos);
    CHECK(f.FlagCount("NR") == 1);
  }
  SECTION("no cluster: NC") {
    Fixture f;
    f.codec->Start("GET", "/nocluster", true);
    CHECK(f.codec->status == 503);
    CHECK(f.codec->body == local_reply::kNoCluster);
    CHECK(f.FlagCount("NC") == 1);
  }
  SECTION("no healthy host: UH") {
    Fixture f;
    f.up().cluster->hosts.clear();
    f.codec->Start("GET", "/", true);
    CHECK(f.codec->status == 503);
    CHECK(f.codec->body == local_reply::kNoHealthyUpstream);
    CHECK(f.FlagCount("UH") == 1);
    CHECK(f.up().cluster->stats_.no_healthy_host.Value() == 1);
  }
  SECTION("connect failure without retries: UF") {
    Fixture f;
    f.codec->Start("GET", "/", true);
    f.up().Fail();
    CHECK(f.codec->status == 503);
    CHECK(f.codec->body == local_reply::kConnectFailure);
    CHECK(f.Log().find("\"response_flags\":\"UF\"") != std::string::npos);
    CHECK(f.up().cluster->stats_.cx_connect_fail.Value() == 1);
  }
  SECTION("upstream closed before responding: UC; invalid response: UPE") {
    Fixture f;
    f.codec->Start("POST", "/", true);
    f.up().Ready();
    f.up().last().decoder->OnResetStream(StreamResetReason::kConnectionTermination, "closed");
    CHECK(f.codec->status == 503);
    CHECK(f.codec->body == local_reply::kClosed);
    CHECK(f.FlagCount("UC") == 1);
    f.codec->Start("GET", "/", true);
    f.up().Ready();
    f.up().last().decoder->OnResetStream(StreamResetReason::kProtocolError, "bad status line");
    CHECK(f.codec->status == 502);
    CHECK(f.FlagCount("UPE") == 1);
  }
  SECTION("upstream reset (a stream reset): UR") {
    Fixture f;
    f.codec->Start("GET", "/", true);
    f.up().Ready();
    f.up().last().decoder->OnResetStream(StreamResetReason::kRemoteReset, "reset");
    CHECK(f.codec->status == 503);
    CHECK(f.codec->body == local_reply::kReset);
    CHECK(f.FlagCount("UR") == 1);
  }
  SECTION("a filter's denial: RBAC, and the router never runs") {
    Fixture f;
    f.codec->Start("GET", "/", true, {{"x-deny", "1"}});
    CHECK(f.codec->status == 403);
    CHECK(f.codec->body == "RBAC: access denied");
    CHECK(f.up().attempts.empty());
    CHECK(f.Log().find("\"response_flags\":\"RBAC\"") != std::string::npos);
    CHECK(f.Log().find("rbac_access_denied_matched_policy[none]") != std::string::npos);
  }
  SECTION("direct responses are answers, not errors") {
    Fixture f;
    f.codec->Start("GET", "/direct", true);
    CHECK(f.codec->status == 200);
    CHECK(f.codec->body == "here\n");
    CHECK(f.Log().find("\"response_flags\":\"-\"") != std::string::npos);
  }
}

TEST_CASE("router: retries go to another host, keep the hash key, and stop at the limit",
          "[conn_manager]") {
  SECTION("5xx, then success on another host") {
    Fixture f;
    f.codec->Start("GET", "/retry", true, {{"x-user", "alice"}});
    f.up().Ready();
    f.up().Respond(503, "busy");
    CHECK_FALSE(f.codec->status.has_value());  // not passed on: retried
    CHECK(f.up().attempts[0]->stream->reset);
    f.Tick(300ms);  // the back-off (at most 25 ms) has passed
    REQUIRE(f.up().attempts.size() == 2);
    CHECK(f.up().attempts[1]->host != f.up().attempts[0]->host);
    REQUIRE(f.up().attempts[0]->context.hash_key.has_value());
    CHECK(f.up().attempts[1]->context.hash_key == f.up().attempts[0]->context.hash_key);
    CHECK(f.up().attempts[1]->context.attempt == 1);
    f.up().Ready();
    f.up().Respond(200, "ok");
    CHECK(f.codec->status == 200);
    CHECK(f.up().cluster->stats_.rq_retry.Value() == 1);
    CHECK(f.up().cluster->starts == f.up().cluster->ends);
  }
  SECTION("retriable status codes; exhausted retries pass the response on with URX") {
    Fixture f;
    f.codec->Start("GET", "/retry", true);
    for (int i = 0; i < 3; ++i) {
      if (i > 0) f.Tick(300ms);
      REQUIRE(f.up().attempts.size() == static_cast<size_t>(i + 1));
      f.up().Ready();
      f.up().Respond(418, "teapot");
    }
    CHECK(f.codec->status == 418);
    CHECK(f.codec->body == "teapot");
    CHECK(f.Log().find("\"response_flags\":\"URX\"") != std::string::npos);
  }
  SECTION("connect failures: retried, then UF with URX") {
    Fixture f;
    f.codec->Start("GET", "/retry", true);
    f.up().Fail();
    f.Tick(300ms);
    f.up().Fail();
    f.Tick(300ms);
    f.up().Fail();
    CHECK(f.codec->status == 503);
    CHECK(f.Log().find("\"response_flags\":\"UF,URX\"") != std::string::npos);
    CHECK(f.FlagCount("URX") == 1);
  }
  SECTION("a body kept whole is sent again") {
    Fixture f;
    RequestDecoder& d = f.codec->Start("POST", "/retry", false);
    d.DecodeData("abc", false);
    f.up().Ready();
    d.DecodeData("def", true);
    CHECK(f.up().last().stream->body == "abcdef");
    f.up().Respond(500);
    f.Tick(300ms);
    FakePoolStream& again = f.up().Ready();
    CHECK(again.body == "abcdef");
    CHECK(again.request_ended);
  }
  SECTION("a per-try timeout retries; the route timeout answers 504 UT") {
    Fixture f;
    f.codec->Start("GET", "/retry", true);
    f.up().Ready();
    f.Tick(250ms);  // per_try_timeout 0.2 s
    CHECK(f.up().attempts[0]->stream->reset);
    f.Tick(300ms);
    REQUIRE(f.up().attempts.size() == 2);
    f.up().Ready();
    f.up().Respond(200);
    CHECK(f.codec->status == 200);

    f.codec->Start("GET", "/slow", true);
    f.up().Ready();
    f.Tick(600ms);
    CHECK(f.codec->status == 504);
    CHECK(f.codec->body == local_reply::kTimeout);
    CHECK(f.FlagCount("UT") == 1);
    CHECK(f.ctx->stats_.http.rq_timeout.Value() == 1);
  }
}

TEST_CASE("router: a reused connection that closed is replayed only for idempotent methods",
          "[conn_manager]") {
  Fixture f;
  f.codec->Start("GET", "/", true);
  f.up().Ready(/*reused=*/true);
  f.up().last().decoder->OnResetStream(StreamResetReason::kConnectionTermination, "closed");
  REQUIRE(f.up().attempts.size() == 2);  // replayed at once, same host
  CHECK(f.up().attempts[1]->host == f.up().attempts[0]->host);
  f.up().Ready();
  f.up().Respond(200);
  CHECK(f.codec->status == 200);

  f.codec->Start("POST", "/", true);
  f.up().Ready(/*reused=*/true);
  f.up().last().decoder->OnResetStream(StreamResetReason::kConnectionTermination, "closed");
  CHECK(f.up().attempts.size() == 3);  // not replayed
  CHECK(f.codec->status == 503);
}

TEST_CASE("filters: a filter that waits holds the body and resumes the chain", "[conn_manager]") {
  Fixture f;
  RequestDecoder& d = f.codec->Start("PUT", "/", false, {{"x-wait", "1"}});
  d.DecodeData("early", false);
  CHECK(f.up().attempts.empty());
  d.DecodeData(" bytes", true);
  f.Tick(50ms);
  CHECK(f.up().attempts.empty());
  f.Tick(60ms);
  REQUIRE(f.up().attempts.size() == 1);
  FakePoolStream& s = f.up().Ready();
  CHECK(s.body == "early bytes");
  CHECK(s.request_ended);
}

TEST_CASE("conn manager: timeouts, flow control, the connection going away", "[conn_manager]") {
  SECTION("the route's idle timeout: 408 SI") {
    Fixture f;
    f.codec->Start("GET", "/idle", true);
    f.up().Ready();
    f.Tick(350ms);
    CHECK(f.codec->status == 408);
    CHECK(f.FlagCount("SI") == 1);
  }
  SECTION("request_timeout: 408 until the request is in") {
    Fixture f;
    f.ctx->config_.request_timeout = 200ms;
    RequestDecoder& d = f.codec->Start("POST", "/", false);
    f.up().Ready();
    d.DecodeData("x", false);
    f.Tick(250ms);
    CHECK(f.codec->status == 408);
    CHECK(f.up().attempts[0]->stream->reset);
  }
  SECTION("a slow client pauses the upstream") {
    Fixture f;
    f.codec->Start("GET", "/", true);
    FakePoolStream& s = f.up().Ready();
    f.conn->SetAboveHigh(true);
    CHECK(s.read_disabled == 1);
    f.conn->SetAboveHigh(false);
    CHECK(s.read_disabled == 0);
  }
  SECTION("the client goes away mid-request: DC, the upstream is reset") {
    Fixture f;
    f.codec->Start("GET", "/", true);
    f.up().Ready();
    f.conn->RaiseEvent(network::ConnectionEvent::kRemoteClose);
    CHECK(f.up().attempts[0]->stream->reset);
    CHECK(f.ctx->closed == 1);
    CHECK(f.Log().find("\"response_flags\":\"DC\"") != std::string::npos);
    CHECK(f.ctx->stats_.downstream_rq_rx_reset.Value() == 1);
    CHECK(f.up().cluster->starts == f.up().cluster->ends);
  }
  SECTION("a pending connect is cancelled when the client leaves") {
    Fixture f;
    f.codec->Start("GET", "/", true);
    f.conn->RaiseEvent(network::ConnectionEvent::kRemoteClose);
    CHECK(f.up().attempts[0]->cancelled);
  }
  SECTION("draining: the response says close, then the connection closes") {
    Fixture f;
    f.ctx->draining_ = true;
    f.codec->Start("GET", "/direct", true);
    CHECK(f.codec->close_after);
    CHECK(f.conn->state() == network::Connection::State::kClosing);
  }
  SECTION("Expect: 100-continue is answered by the manager and not forwarded") {
    Fixture f;
    RequestDecoder& d = f.codec->Start("PUT", "/", false, {{"expect", "100-continue"}});
    CHECK(f.codec->continues == 1);
    FakePoolStream& s = f.up().Ready();
    CHECK_FALSE(s.sent.Has("expect"));
    d.DecodeData("x", true);
  }
}

}  // namespace
}  // namespace weft::http
