#include "data-plane/http/filters/router/router.h"

#include <algorithm>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/proto_util.h"
#include "data-plane/http/filters/router/clusters.h"
#include "data-plane/network/connection.h"
#include "data-plane/router/matchers.h"
#include "data-plane/stats/proxy_stats.h"
#include "data-plane/upstream/resource_manager.h"

namespace weft::http {
namespace {

namespace rt = weft::router;
using TimePoint = Clock::TimePoint;
constexpr TimePoint kNever = TimePoint::max();

// A body the router keeps whole so the request can be sent again.
constexpr size_t kRetryBufferLimit = 64 << 10;
// Body waiting for the upstream stream (still connecting): above this the client is paused.
constexpr size_t kPendingBodyHighWater = 1 << 20;

bool Idempotent(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "TRACE" ||
         method == "PUT" || method == "DELETE";
}

// The value of cookie `name` in a Cookie header ("a=1; b=2").
std::optional<std::string_view> FindCookie(std::string_view header, std::string_view name) {
  while (!header.empty()) {
    size_t semi = header.find(';');
    std::string_view pair = header.substr(0, semi);
    while (!pair.empty() && pair.front() == ' ') pair.remove_prefix(1);
    size_t eq = pair.find('=');
    if (eq != std::string_view::npos && pair.substr(0, eq) == name) {
      std::string_view value = pair.substr(eq + 1);
      if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
        value = value.substr(1, value.size() - 2);
      }
      return value;
    }
    if (semi == std::string_view::npos) break;
    header.remove_prefix(semi + 1);
  }
  return std::nullopt;
}

// Envoy's hash policy evaluation: each policy that yields a value folds it into the hash; a
// terminal one that yields stops the walk.
std::optional<uint64_t> HashKey(const std::vector<rt::HashPolicy>& policies,
                                const RequestHeaderMap& headers,
                                const network::Connection& connection) {
  std::optional<uint64_t> hash;
  std::string scratch;
  for (const rt::HashPolicy& p : policies) {
    std::optional<uint64_t> value;
    switch (p.kind) {
      case rt::HashPolicy::Kind::kHeader:
        if (auto v = headers.Get(p.name)) {
          if (p.regex != nullptr) {
            scratch.assign(*v);
            RE2::GlobalReplace(&scratch, *p.regex, p.substitution);
            value = StableHash64(scratch);
          } else {
            value = StableHash64(*v);
          }
        }
        break;
      case rt::HashPolicy::Kind::kCookie:
        if (auto cookies = headers.Get("cookie")) {
          if (auto c = FindCookie(*cookies, p.name)) value = StableHash64(*c);
        }
        break;
      case rt::HashPolicy::Kind::kSourceIp: {
        std::string ip = network::AddressIp(connection.peer_address());
        if (!ip.empty()) value = StableHash64(ip);
        break;
      }
      case rt::HashPolicy::Kind::kQueryParameter: {
        std::string_view path = headers.path();
        size_t q = path.find('?');
        if (q != std::string_view::npos) {
          std::string_view query = path.substr(q + 1);
          query = query.substr(0, query.find('#'));
          if (auto v = rt::FindQueryParameter(query, p.name, &scratch)) value = StableHash64(*v);
        }
        break;
      }
      case rt::HashPolicy::Kind::kFilterState:
        break;  // refused by the validators: nothing sets filter state
    }
    if (!value) continue;
    hash = hash ? ((*hash << 1) | (*hash >> 63)) ^ *value : *value;
    if (p.terminal) break;
  }
  return hash;
}

class RouterFilter final : public Filter {
 public:
  explicit RouterFilter(StreamFilterCallbacks& cb)
      : cb_(cb),
        upstream_(this),
        backoff_(std::chrono::milliseconds(25), std::chrono::milliseconds(250), &cb.random()) {}

  FilterStatus DecodeHeaders(RequestHeaderMap& headers, bool end_stream) override {
    const RouteSelection& sel = cb_.route();
    if (!sel.table) {
      cb_.SendLocalReply(404, local_reply::kNoRouteTable, ResponseFlag::kNoRoute);
      return FilterStatus::kStop;
    }
    if (sel.route == nullptr) {
      cb_.SendLocalReply(404, local_reply::kNoRoute, ResponseFlag::kNoRoute);
      return FilterStatus::kStop;
    }
    if (const rt::DirectResponse* direct = sel.route->direct_response()) {
      ResponseHeaderMap& r = response_;
      r.Clear();
      r.set_status(static_cast<int>(direct->status));
      rt::ApplyHeaderOps(sel.route->response_header_ops(), &r);
      r.Set("content-length", absl::StrCat(direct->body.size()));
      if (!direct->body.empty()) r.Set("content-type", "text/plain");
      cb_.EncodeHeaders(r, direct->body.empty());
      if (!direct->body.empty()) cb_.EncodeData(direct->body, true);
      return FilterStatus::kStop;
    }
    if (sel.route->redirect() != nullptr) {
      rt::RequestView view;
      view.method = headers.method();
      view.authority = headers.authority();
      view.path = headers.path();
      view.headers = &headers;
      ResponseHeaderMap& r = response_;
      r.Clear();
      r.set_status(static_cast<int>(sel.route->redirect()->status));
      r.Set("location", rt::RedirectLocation(*sel.route, view));
      r.Set("content-length", "0");
      cb_.EncodeHeaders(r, true);
      return FilterStatus::kStop;
    }
    action_ = sel.action;
    if (action_ == nullptr) {
      cb_.SendLocalReply(404, local_reply::kNoRoute, ResponseFlag::kNoRoute);
      return FilterStatus::kStop;
    }
    cluster_ = cb_.clusters().Find(sel.cluster);
    if (!cluster_) {
      cb_.SendLocalReply(static_cast<int>(action_->cluster_not_found_status),
                         local_reply::kNoCluster, ResponseFlag::kNoClusterFound);
      return FilterStatus::kStop;
    }
    request_ = &headers;
    request_complete_ = end_stream;
    method_ = headers.method();
    cb_.info().upstream_cluster = cluster_->name();
    hash_key_ = HashKey(action_->hash_policies, headers, cb_.connection());
    if (action_->retry_policy) {
      policy_ = &*action_->retry_policy;
      retries_left_ = policy_->num_retries;
    }
    retain_body_ = policy_ != nullptr && retries_left_ > 0;
    cluster_->stats().http.rq_active.Add(1);
    if (sel.stats != nullptr) sel.stats->http.rq_active.Add(1);
    counted_ = true;
    started_ = cb_.now();
    if (action_->timeout.count() > 0) global_deadline_ = started_ + action_->timeout;
    RewriteRequest(headers, sel);
    StartAttempt();
    return FilterStatus::kStop;
  }

  FilterStatus DecodeData(std::string_view data, bool end_stream) override {
    if (end_stream) request_complete_ = true;
    body_total_ += data.size();
    if (retain_body_) {
      if (retained_.size() + data.size() <= kRetryBufferLimit) {
        retained_.append(data);
      } else {
        retain_body_ = false;  // too big to send twice
        retained_.clear();
      }
    }
    if (stream_ != nullptr && !waiting_retry_) {
      stream_->encoder().EncodeData(data, end_stream);
    } else {
      pending_body_.append(data);
      if (pending_body_.size() > kPendingBodyHighWater && !paused_client_for_pending_) {
        paused_client_for_pending_ = true;
        cb_.ReadDisableDownstream(true);
      }
    }
    return FilterStatus::kStop;
  }

  FilterStatus DecodeTrailers(TrailerMap&) override {
    // HTTP/1 upstreams get no trailers; the body ends here.
    return DecodeData({}, true);
  }

  void OnTimer(TimePoint now) override {
    if (done_) return;
    if (now >= global_deadline_) {
      Timeout(now, /*per_try=*/false);
      return;
    }
    if (now >= per_try_deadline_) {
      Timeout(now, /*per_try=*/true);
      return;
    }
    if (waiting_retry_ && now >= retry_at_) {
      waiting_retry_ = false;
      StartAttempt();
      return;
    }
    ArmTimer();
  }

  void OnDownstreamWatermark(bool above) override {
    if (above == upstream_paused_) return;
    upstream_paused_ = above;
    if (stream_ != nullptr) stream_->ReadDisable(above);
  }

  void OnStreamEnd() override {
    if (paused_client_for_pending_ || paused_client_for_upstream_) {
      // The stream is over; nothing of ours holds the client any more.
      paused_client_for_pending_ = paused_client_for_upstream_ = false;
    }
    AbandonUpstream();
    EndAttempt();
    if (counted_) {
      counted_ = false;
      const auto elapsed =
          std::chrono::duration_cast<std::chrono::nanoseconds>(cb_.now() - started_);
      const int status = cb_.info().status;
      cluster_->stats().http.rq_active.Add(-1);
      cluster_->stats().http.Completed(status, elapsed);
      if (final_host_stats_ != nullptr) final_host_stats_->http.Completed(status, elapsed);
      if (cb_.route().stats != nullptr) {
        cb_.route().stats->http.rq_active.Add(-1);
      }
    }
    done_ = true;
  }

  // --- The upstream side (UpstreamSide forwards) ---
  void OnPoolReady(upstream::PoolStream& stream) {
    pending_ = nullptr;
    stream_ = &stream;
    reused_ = stream.reused();
    if (upstream_paused_) stream.ReadDisable(true);
    stream.encoder().EncodeHeaders(*request_, request_complete_ && pending_body_.empty());
    if (!pending_body_.empty()) {
      std::string body;
      body.swap(pending_body_);
      stream.encoder().EncodeData(body, request_complete_);
    }
    if (paused_client_for_pending_) {
      paused_client_for_pending_ = false;
      cb_.ReadDisableDownstream(false);
    }
    if (policy_ != nullptr && policy_->per_try_timeout.count() > 0) {
      per_try_deadline_ = cb_.now() + policy_->per_try_timeout;
    }
    ArmTimer();
  }

  void OnPoolFailure(upstream::PoolFailure failure, std::string_view detail) {
    pending_ = nullptr;
    cluster_->stats().cx_connect_fail.Inc();
    if (host_stats_ != nullptr) host_stats_->cx_connect_fail.Inc();
    EndAttempt();
    using namespace rt::retry_on;
    if (MayRetry(kConnectFailure | kReset | kResetBeforeRequest | k5xx | kGatewayError)) return;
    if (failure == upstream::PoolFailure::kOverflow) {
      Reply(503, local_reply::kOverflow, ResponseFlag::kUpstreamOverflow);
      return;
    }
    Reply(503,
          failure == upstream::PoolFailure::kTimeout ? local_reply::kConnectTimeout
                                                     : local_reply::kConnectFailure,
          ResponseFlag::kUpstreamConnectionFailure, detail);
  }

  void OnUpstreamWatermark(bool above) {
    if (above == paused_client_for_upstream_) return;
    paused_client_for_upstream_ = above;
    cb_.ReadDisableDownstream(above);
  }

  void OnResponseHeaders(ResponseHeaderMap& headers, bool end_stream) {
    if (stream_ == nullptr || done_) return;  // an attempt already given up
    const int status = headers.status();
    if (status == 101) {
      if (!request_->Has("upgrade")) {
        ResetUpstream();
        Reply(502, local_reply::kBadUpgrade, ResponseFlag::kUpstreamProtocolError);
        return;
      }
      per_try_deadline_ = global_deadline_ = kNever;
      response_started_ = true;
      ApplyResponseOps(headers);
      upstream::PoolStream* stream = stream_;
      stream_ = nullptr;
      EndAttempt();
      cb_.StartTunnel(headers, stream->Detach());
      return;
    }
    if (RetriableStatus(status) && MayRetryResponse()) return;
    if (RetriableStatus(status)) {
      if (retried_) cb_.info().AddFlag(ResponseFlag::kUpstreamRetryLimitExceeded);
    }
    response_started_ = true;
    per_try_deadline_ = kNever;  // the route timeout goes on until the response is complete
    ApplyResponseOps(headers);
    if (end_stream) {
      FinishUpstream();
    }
    cb_.EncodeHeaders(headers, end_stream);
  }

  void OnResponseData(std::string_view data, bool end_stream) {
    if (stream_ == nullptr || done_) return;
    if (end_stream) FinishUpstream();
    cb_.EncodeData(data, end_stream);
  }

  void OnResponseTrailers() {
    if (stream_ == nullptr || done_) return;
    FinishUpstream();
    cb_.EncodeData({}, true);
  }

  void OnUpstreamReset(StreamResetReason reason, std::string_view detail) {
    if (stream_ == nullptr || done_) return;
    upstream::PoolStream* stream = stream_;
    const bool written = stream != nullptr && stream->request_written();
    const bool reused = reused_;
    stream_ = nullptr;
    EndAttempt();
    cluster_->stats().rq_reset.Inc();
    if (response_started_) {
      cb_.info().AddFlag(ResponseFlag::kUpstreamConnectionTermination);
      cb_.ResetStream();
      return;
    }
    if (reason == StreamResetReason::kProtocolError) {
      Reply(502, local_reply::kBadResponse, ResponseFlag::kUpstreamProtocolError, detail);
      return;
    }
    // A pooled connection the server had just closed: the request may not have reached
    // anything, but it may have. Only an idempotent request is sent again (once, on a new
    // connection), unless the retry policy below asks for more.
    if (reused && !replayed_ && Replayable() && Idempotent(method_)) {
      replayed_ = true;
      StartAttempt(/*same_host=*/true);
      return;
    }
    using namespace rt::retry_on;
    uint32_t bits = kReset | k5xx | kGatewayError;
    if (!written) bits |= kResetBeforeRequest | kConnectFailure;
    if (MayRetry(bits)) return;
    Reply(503,
          reason == StreamResetReason::kRemoteReset ? local_reply::kReset : local_reply::kClosed,
          reason == StreamResetReason::kRemoteReset ? ResponseFlag::kUpstreamRemoteReset
                                                    : ResponseFlag::kUpstreamConnectionTermination,
          detail);
  }

 private:
  void RewriteRequest(RequestHeaderMap& headers, const RouteSelection& sel) {
    const rt::Route& route = *sel.route;
    const rt::WeightedClusterEntry* entry = sel.entry;
    rt::RequestView view;
    view.method = headers.method();
    view.authority = headers.authority();
    view.path = headers.path();
    view.headers = &headers;
    std::optional<std::string> host = rt::RewrittenHost(route, view, entry);
    if (!action_->path_rewrite.empty()) {
      headers.set_path(rt::ApplyPathRewrite(route, headers.path()));
    }
    if (host) headers.set_authority(*host);
    auto_host_ = !host && action_->auto_host_rewrite;
    if (!headers.Has("x-forwarded-proto")) headers.Add("x-forwarded-proto", "http");
    rt::ApplyHeaderOps(entry != nullptr ? entry->request_header_ops : route.request_header_ops(),
                       &headers);
    response_ops_ = entry != nullptr ? &entry->response_header_ops : &route.response_header_ops();
  }

  void ApplyResponseOps(ResponseHeaderMap& headers) {
    if (response_ops_ != nullptr) rt::ApplyHeaderOps(*response_ops_, &headers);
  }

  // The whole request is in hand: no body, or a body kept whole.
  bool Replayable() const { return request_complete_ && (body_total_ == 0 || retain_body_); }

  void StartAttempt(bool same_host = false) {
    if (done_) return;
    upstream::HostPtr host;
    if (same_host && host_) {
      host = host_;
    } else {
      upstream::LbContext context;
      context.hash_key = hash_key_;
      context.attempt = attempt_;
      host = cluster_->ChooseHost(context, tried_);
    }
    if (!host) {
      cluster_->stats().no_healthy_host.Inc();
      Reply(503, local_reply::kNoHealthyUpstream, ResponseFlag::kNoHealthyUpstream);
      return;
    }
    host_ = host;
    tried_.push_back(host.get());
    hosts_.push_back(host);
    host_stats_ = cluster_->StatsForHost(*host);
    final_host_stats_ = host_stats_;
    if (host_stats_ != nullptr) host_stats_->http.rq_active.Add(1);
    cluster_->OnRequestStart(*host);
    in_attempt_ = true;
    attempt_start_ = cb_.now();
    cb_.info().upstream_host = host->hash_key();
    if (auto_host_) request_->set_authority(host->hash_key());
    if (attempt_ > 0 || replayed_) {
      // A new attempt sends the body it kept.
      pending_body_ = retained_;
    }
    upstream::StreamOptions options;
    options.connect_timeout = cluster_->connect_timeout();
    options.cluster_stats = &cluster_->stats();
    options.host_stats = host_stats_;
    pool_ = &cluster_->PoolFor(*host);
    pending_ = pool_->NewStream(upstream_, upstream_, options);
    ArmTimer();
  }

  // The attempt's host is released (balancer and gauges), once.
  void EndAttempt() {
    if (!in_attempt_) return;
    in_attempt_ = false;
    if (host_stats_ != nullptr) host_stats_->http.rq_active.Add(-1);
    cluster_->OnRequestEnd(
        *host_, std::chrono::duration_cast<std::chrono::nanoseconds>(cb_.now() - attempt_start_));
  }

  bool RetriableStatus(int status) const {
    if (policy_ == nullptr) return false;
    using namespace rt::retry_on;
    const uint32_t on = policy_->retry_on;
    if ((on & k5xx) && status >= 500) return true;
    if ((on & kGatewayError) && (status == 502 || status == 503 || status == 504)) return true;
    if ((on & kRetriable4xx) && status == 409) return true;
    if (on & kRetriableStatusCodes) {
      for (uint32_t code : policy_->retriable_status_codes) {
        if (static_cast<int>(code) == status) return true;
      }
    }
    return false;
  }

  bool MayRetryResponse() {
    if (retries_left_ == 0 || !Replayable()) return false;
    ResetUpstream();
    ScheduleRetry();
    return true;
  }

  // A retry for a failure whose retry_on bits are `bits`: true when one was scheduled.
  bool MayRetry(uint32_t bits) {
    if (policy_ == nullptr || (policy_->retry_on & bits) == 0) return false;
    if (retries_left_ == 0) {
      if (retried_) cb_.info().AddFlag(ResponseFlag::kUpstreamRetryLimitExceeded);
      return false;
    }
    if (!Replayable()) return false;
    ScheduleRetry();
    return true;
  }

  void ScheduleRetry() {
    --retries_left_;
    retried_ = true;
    ++attempt_;
    cluster_->stats().rq_retry.Inc();
    per_try_deadline_ = kNever;
    waiting_retry_ = true;
    retry_at_ = cb_.now() + backoff_.Next();
    ArmTimer();
  }

  void Timeout(TimePoint now, bool per_try) {
    cluster_->stats().http.rq_timeout.Inc();
    if (host_stats_ != nullptr) host_stats_->http.rq_timeout.Inc();
    if (response_started_) {
      cb_.ResetStream();
      return;
    }
    AbandonUpstream();
    EndAttempt();
    if (per_try) {
      using namespace rt::retry_on;
      per_try_deadline_ = kNever;
      if (MayRetry(k5xx | kGatewayError | kReset)) return;
    }
    Reply(504, per_try ? local_reply::kPerTryTimeout : local_reply::kTimeout,
          ResponseFlag::kUpstreamRequestTimeout);
  }

  void ArmTimer() {
    TimePoint next = std::min(global_deadline_, per_try_deadline_);
    if (waiting_retry_) next = std::min(next, retry_at_);
    cb_.WakeAt(this, next);
  }

  // The response is complete: the connection goes back to its pool.
  void FinishUpstream() {
    global_deadline_ = kNever;
    upstream::PoolStream* stream = stream_;
    stream_ = nullptr;
    EndAttempt();
    if (stream != nullptr) stream->Done();
  }

  void ResetUpstream() {
    upstream::PoolStream* stream = stream_;
    stream_ = nullptr;
    EndAttempt();
    if (stream != nullptr) stream->Reset();
  }

  // Drops whatever upstream work is under way (pending connect or open stream).
  void AbandonUpstream() {
    if (pending_ != nullptr) {
      pool_->Cancel(pending_);
      pending_ = nullptr;
    }
    ResetUpstream();
    waiting_retry_ = false;
  }

  void Reply(int status, std::string_view body, ResponseFlag flag, std::string_view detail = {}) {
    AbandonUpstream();
    EndAttempt();
    per_try_deadline_ = global_deadline_ = kNever;
    cb_.SendLocalReply(status, body, flag, detail);
  }

  // The router as its upstream stream's decoder and its pool's client.
  struct UpstreamSide final : ResponseDecoder, upstream::PoolCallbacks {
    explicit UpstreamSide(RouterFilter* r) : router(r) {}
    RouterFilter* router;
    void DecodeHeaders(ResponseHeaderMap& h, bool end) override {
      router->OnResponseHeaders(h, end);
    }
    void DecodeData(std::string_view d, bool end) override { router->OnResponseData(d, end); }
    void DecodeTrailers(TrailerMap&) override { router->OnResponseTrailers(); }
    void OnResetStream(StreamResetReason reason, std::string_view detail) override {
      router->OnUpstreamReset(reason, detail);
    }
    void OnPoolReady(upstream::PoolStream& stream) override { router->OnPoolReady(stream); }
    void OnPoolFailure(upstream::PoolFailure f, std::string_view detail) override {
      router->OnPoolFailure(f, detail);
    }
    void OnUpstreamWatermark(bool above) override { router->OnUpstreamWatermark(above); }
  };

  StreamFilterCallbacks& cb_;
  UpstreamSide upstream_;
  const rt::RouteAction* action_ = nullptr;
  const rt::RetryPolicy* policy_ = nullptr;
  const std::vector<rt::HeaderOp>* response_ops_ = nullptr;
  std::shared_ptr<UpstreamCluster> cluster_;
  RequestHeaderMap* request_ = nullptr;
  ResponseHeaderMap response_;  // direct responses and redirects
  std::string method_;
  std::optional<uint64_t> hash_key_;
  upstream::HostPtr host_;
  std::vector<const upstream::Host*> tried_;
  std::vector<upstream::HostPtr> hosts_;  // keep tried hosts alive for `tried_`
  proxy::HostStats* host_stats_ = nullptr;
  proxy::HostStats* final_host_stats_ = nullptr;
  upstream::ConnPool* pool_ = nullptr;
  upstream::ConnPool::Pending* pending_ = nullptr;
  upstream::PoolStream* stream_ = nullptr;
  upstream::BackOff backoff_;
  std::string retained_;      // the whole body so far, while a retry may need it
  std::string pending_body_;  // body not yet handed to an upstream stream
  uint64_t body_total_ = 0;
  uint32_t retries_left_ = 0;
  uint32_t attempt_ = 0;
  TimePoint started_{};
  TimePoint attempt_start_{};
  TimePoint global_deadline_ = kNever;
  TimePoint per_try_deadline_ = kNever;
  TimePoint retry_at_ = kNever;
  bool request_complete_ = false;
  bool retain_body_ = false;
  bool response_started_ = false;
  bool waiting_retry_ = false;
  bool retried_ = false;
  bool replayed_ = false;
  bool reused_ = false;
  bool in_attempt_ = false;
  bool counted_ = false;
  bool auto_host_ = false;
  bool upstream_paused_ = false;
  bool paused_client_for_pending_ = false;
  bool paused_client_for_upstream_ = false;
  bool done_ = false;
};

class RouterFactory final : public FilterFactory {
 public:
  std::unique_ptr<Filter> Create(StreamFilterCallbacks& callbacks) const override {
    return std::make_unique<RouterFilter>(callbacks);
  }
};

}  // namespace

std::shared_ptr<const FilterFactory> NewRouterFilterFactory() {
  static const auto* factory =
      new std::shared_ptr<const FilterFactory>(std::make_shared<RouterFactory>());
  return *factory;
}

}  // namespace weft::http
