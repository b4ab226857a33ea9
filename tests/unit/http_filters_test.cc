// The RBAC and fault stream filters (data-plane/http/filters/{rbac,fault}/filter.h) in a real
// connection manager with the HTTP/1 codec: the test writes request bytes into a fake
// connection and reads the response bytes back. Routes answer directly, so no upstream is
// needed; a fake clock drives the delays, a seeded random source the percentages.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/proto_util.h"
#include "common/strings.h"
#include "common/validation.h"
#include "common/xds/validate.h"
#include "data-plane/http/conn_manager.h"
#include "data-plane/http/filters/fault/filter.h"
#include "data-plane/http/filters/rbac/filter.h"
#include "data-plane/http/filters/router/router.h"
#include "envoy/config/route/v3/route.pb.h"
#include "tests/unit/fake_connection.h"
#include "tests/unit/fake_manager_context.h"
#include "tests/unit/filter_test_util.h"

namespace weft::http {
namespace {

using namespace std::chrono_literals;
using testing::FakeConnection;
using testing::FakeManagerContext;
using testing::FromYaml;
using RbacProto = envoy::extensions::filters::http::rbac::v3::RBAC;
using FaultProto = envoy::extensions::filters::http::fault::v3::HTTPFault;

constexpr std::string_view kRoutes = R"(
name: routes
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - name: ok
    match: { prefix: / }
    direct_response: { status: 200, body: { inline_string: "ok" } }
)";

void SetAddress(sockaddr_storage* out, const char* ip, uint16_t port) {
  std::memset(out, 0, sizeof *out);
  auto* in = reinterpret_cast<sockaddr_in*>(out);
  in->sin_family = AF_INET;
  in->sin_port = htons(port);
  REQUIRE(inet_pton(AF_INET, ip, &in->sin_addr) == 1);
}

struct Response {
  int status = 0;
  std::string head;
  std::string body;
  bool has(std::string_view header_line) const {
    return head.find(absl::StrCat("\r\n", Sv(header_line), "\r\n")) != std::string::npos;
  }
};

Response Parse(const std::string& bytes) {
  Response r;
  if (bytes.size() < 12 || bytes.compare(0, 9, "HTTP/1.1 ") != 0) return r;
  r.status = std::stoi(bytes.substr(9, 3));
  const size_t end = bytes.find("\r\n\r\n");
  REQUIRE(end != std::string::npos);
  r.head = bytes.substr(0, end + 2);
  r.body = bytes.substr(end + 4);
  return r;
}

struct Fixture {
  std::shared_ptr<FakeManagerContext> ctx = std::make_shared<FakeManagerContext>();
  std::vector<std::unique_ptr<ConnectionManager>> cms;
  std::vector<FakeConnection*> conns;

  explicit Fixture(std::vector<std::shared_ptr<const FilterFactory>> filters) {
    envoy::config::route::v3::RouteConfiguration rc = FromYaml<decltype(rc)>(kRoutes);
    auto table = router::RouteTable::Create(rc);
    REQUIRE(table.ok());
    ctx->routes_ = *table;
    ctx->config_.stat_prefix = "in";
    ctx->config_.filters.factories = std::move(filters);
    ctx->config_.filters.factories.push_back(NewRouterFilterFactory());
    Connect("10.1.2.3");
  }
  // Another client connection (the last one is what Send uses).
  FakeConnection& Connect(const char* peer_ip) {
    auto c = std::make_unique<FakeConnection>();
    SetAddress(&c->peer_, peer_ip, 40000);
    SetAddress(&c->local_, "127.0.0.1", 8080);
    conns.push_back(c.get());
    cms.push_back(std::make_unique<ConnectionManager>(ctx, std::move(c)));
    return *conns.back();
  }
  // Sends one request on connection `i` and returns what was written back so far.
  Response Send(std::string_view path, std::string_view headers = "", size_t i = SIZE_MAX) {
    FakeConnection& c = *conns[i == SIZE_MAX ? conns.size() - 1 : i];
    c.Deliver(absl::StrCat("GET ", Sv(path), " HTTP/1.1\r\nhost: svc\r\n", Sv(headers), "\r\n"));
    return Parse(c.TakeWritten());
  }
  Response Written(size_t i) { return Parse(conns[i]->TakeWritten()); }
  void Tick(std::chrono::milliseconds d) {
    ctx->clock.Advance(d);
    for (auto& cm : cms) cm->OnTick(ctx->clock.Now());
  }
  uint64_t Count(std::string_view name) { return ctx->Count(name); }
  const std::string& Log() const { return ctx->log.back(); }
};

std::shared_ptr<const FilterFactory> Rbac(std::string_view yaml) {
  auto f = rbac::NewRbacFilterFactory(FromYaml<RbacProto>(yaml));
  INFO(f.status().ToString());
  REQUIRE(f.ok());
  return *f;
}

std::shared_ptr<const FilterFactory> Fault(std::string_view yaml) {
  auto f = fault::NewFaultFilterFactory(FromYaml<FaultProto>(yaml));
  INFO(f.status().ToString());
  REQUIRE(f.ok());
  return *f;
}

// --- RBAC ------------------------------------------------------------------------------------

TEST_CASE("rbac filter: ALLOW lets matching requests through and answers the rest 403",
          "[http_filters]") {
  Fixture f({Rbac(R"(
rules:
  action: ALLOW
  policies:
    public:
      permissions: [{url_path: {path: {prefix: /public/}}}]
      principals: [{any: true}]
    admins:
      permissions: [{any: true}]
      principals: [{header: {name: x-role, string_match: {exact: admin}}}]
track_per_rule_stats: true
)")});
  Response r = f.Send("/public/index.html?x=1");
  CHECK(r.status == 200);
  CHECK(r.body == "ok");
  CHECK(f.Count("http.in.rbac.allowed") == 1);
  CHECK(f.Count("http.in.rbac.policy.public.allowed") == 1);

  r = f.Send("/private");
  CHECK(r.status == 403);
  CHECK(r.body == "RBAC: access denied");
  CHECK(r.has("content-type: text/plain"));
  CHECK(f.Count("http.in.rbac.denied") == 1);
  CHECK(f.Count("listener.listener.response_flags.RBAC") == 1);
  CHECK(f.Log().find("\"response_code\":403") != std::string::npos);
  CHECK(f.Log().find("\"response_flags\":\"RBAC\"") != std::string::npos);
  CHECK(f.Log().find("\"response_code_details\":\"rbac_access_denied_matched_policy[none]\"") !=
        std::string::npos);

  r = f.Send("/private", "x-role: admin\r\n");
  CHECK(r.status == 200);
  CHECK(f.Count("http.in.rbac.allowed") == 2);
  CHECK(f.Count("http.in.rbac.policy.admins.allowed") == 1);
  // The connection stays usable after a denial (the request was complete).
  CHECK(f.conns[0]->state() == network::Connection::State::kOpen);
}

TEST_CASE("rbac filter: a DENY policy on the peer's address and the local port", "[http_filters]") {
  Fixture f({Rbac(R"(
rules:
  action: DENY
  policies:
    "block lab":
      permissions: [{destination_port: 8080}]
      principals: [{source_ip: {address_prefix: 10.1.0.0, prefix_len: 16}}]
)")});
  Response r = f.Send("/");  // from 10.1.2.3 to :8080
  CHECK(r.status == 403);
  CHECK(f.Log().find("rbac_access_denied_matched_policy[block_lab]") != std::string::npos);
  CHECK(f.Count("http.in.rbac.denied") == 1);

  f.Connect("10.2.0.1");
  r = f.Send("/");
  CHECK(r.status == 200);
  CHECK(f.Count("http.in.rbac.allowed") == 1);
  CHECK(f.Log().find("\"response_flags\":\"-\"") != std::string::npos);
}

TEST_CASE("rbac filter: shadow rules are counted, never enforced", "[http_filters]") {
  SECTION("shadow rules alone") {
    Fixture f({Rbac(R"(
shadow_rules:
  action: ALLOW
  policies:
    health:
      permissions: [{url_path: {path: {exact: /healthz}}}]
      principals: [{any: true}]
shadow_rules_stat_prefix: canary
track_per_rule_stats: true
)")});
    CHECK(f.Send("/healthz").status == 200);
    CHECK(f.Send("/other").status == 200);
    CHECK(f.Send("/other").status == 200);
    CHECK(f.Count("http.in.rbac.canary.shadow_allowed") == 1);
    CHECK(f.Count("http.in.rbac.canary.shadow_denied") == 2);
    CHECK(f.Count("http.in.rbac.canary.policy.health.shadow_allowed") == 1);
    CHECK(f.Count("http.in.rbac.allowed") == 0);
    CHECK(f.Count("http.in.rbac.denied") == 0);
  }
  SECTION("beside enforced rules, each counted on its own") {
    Fixture f({Rbac(R"(
rules:
  action: ALLOW
  policies:
    get: {permissions: [{header: {name: ":method", string_match: {exact: GET}}}], principals: [{any: true}]}
shadow_rules:
  action: DENY
  policies:
    nobody: {permissions: [{any: true}], principals: [{any: true}]}
)")});
    CHECK(f.Send("/").status == 200);  // the shadow DENY matches, and is not enforced
    CHECK(f.Count("http.in.rbac.allowed") == 1);
    CHECK(f.Count("http.in.rbac.shadow_denied") == 1);
    CHECK(f.Count("http.in.rbac.shadow_allowed") == 0);
  }
  SECTION("LOG: always allowed") {
    Fixture f({Rbac(R"(
rules:
  action: LOG
  policies:
    all: {permissions: [{any: true}], principals: [{any: true}]}
)")});
    CHECK(f.Send("/").status == 200);
    CHECK(f.Count("http.in.rbac.allowed") == 1);
  }
}

TEST_CASE("rbac filter: what it does not implement is refused with its field path",
          "[http_filters]") {
  auto bad = rbac::NewRbacFilterFactory(FromYaml<RbacProto>(R"(
rules:
  action: ALLOW
  policies:
    p:
      permissions: [{metadata: {filter: f, path: [{key: k}], value: {present_match: true}}}]
      principals: [{any: true}]
)"));
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(std::string(bad.status().message()),
             Catch::Matchers::Contains("permissions[0].metadata: is not supported"));

  // A per-route RBACPerRoute override is not applied: the route is refused, naming the field.
  auto rc = FromYaml<envoy::config::route::v3::RouteConfiguration>(R"(
name: routes
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: / }
    direct_response: { status: 200 }
    typed_per_filter_config:
      envoy.filters.http.rbac:
        "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute
)");
  ValidationErrors errors;
  xds::ValidateResource(PackAny(rc), &errors);
  CHECK(testing::HasError(errors.errors(), {"virtual_hosts[0].routes[0].typed_per_filter_config"}));
}

// --- Fault -----------------------------------------------------------------------------------

TEST_CASE("fault filter: aborts the configured share of requests (seeded)", "[http_filters]") {
  Fixture f(
      {Fault("abort: {http_status: 503, percentage: {numerator: 25, denominator: HUNDRED}}")});
  constexpr int kRequests = 4000;
  int aborted = 0;
  int ok = 0;
  for (int i = 0; i < kRequests; ++i) {
    Response r = f.Send("/");
    if (r.status == 503) {
      ++aborted;
      REQUIRE(r.body == fault::kAbortBody);
    } else {
      REQUIRE(r.status == 200);
      ++ok;
    }
  }
  CHECK(aborted + ok == kRequests);
  const double share = static_cast<double>(aborted) / kRequests;
  INFO("aborted share " << share);
  CHECK(std::abs(share - 0.25) <= 0.03);
  CHECK(aborted > 0);
  CHECK(f.Count("http.in.fault.aborts_injected") == static_cast<uint64_t>(aborted));
  CHECK(f.Count("listener.listener.response_flags.FI") == static_cast<uint64_t>(aborted));
}

TEST_CASE("fault filter: an abort's log line, a gRPC abort, a header-chosen abort",
          "[http_filters]") {
  SECTION("HTTP") {
    Fixture f({Fault("abort: {http_status: 429, percentage: {numerator: 100}}")});
    Response r = f.Send("/");
    CHECK(r.status == 429);
    CHECK(f.Log().find("\"response_flags\":\"FI\"") != std::string::npos);
    CHECK(f.Log().find("\"response_code_details\":\"fault_filter_abort\"") != std::string::npos);
  }
  SECTION("gRPC: HTTP 200 carrying grpc-status") {
    Fixture f({Fault("abort: {grpc_status: 14, percentage: {numerator: 100}}")});
    Response r = f.Send("/pkg.Svc/Call", "content-type: application/grpc\r\n");
    CHECK(r.status == 200);
    CHECK(r.has("grpc-status: 14"));
    CHECK(r.has("grpc-message: fault filter abort"));
    CHECK(r.body.empty());
    CHECK(f.Log().find("\"response_flags\":\"FI\"") != std::string::npos);
  }
  SECTION("header_abort: the request says which status") {
    Fixture f({Fault("abort: {header_abort: {}, percentage: {numerator: 100}}")});
    CHECK(f.Send("/", "x-envoy-fault-abort-request: 418\r\n").status == 418);
    CHECK(f.Send("/").status == 200);
    CHECK(f.Send("/",
                 "x-envoy-fault-abort-request: 418\r\n"
                 "x-envoy-fault-abort-request-percentage: 0\r\n")
              .status == 200);
  }
}

TEST_CASE("fault filter: a delay holds the request on the manager's timer, then it goes on",
          "[http_filters]") {
  SECTION("delay, then the route answers") {
    Fixture f({Fault("delay: {fixed_delay: 0.2s, percentage: {numerator: 100}}")});
    CHECK(f.Send("/").status == 0);  // nothing yet
    f.Tick(100ms);
    CHECK(f.Written(0).status == 0);
    f.Tick(150ms);
    Response r = f.Written(0);
    CHECK(r.status == 200);
    CHECK(r.body == "ok");
    CHECK(f.Count("http.in.fault.delays_injected") == 1);
    CHECK(f.Log().find("\"response_flags\":\"DI\"") != std::string::npos);
    CHECK(f.Log().find("\"duration_ms\":250") != std::string::npos);
  }
  SECTION("a request body that arrives during the delay waits for it") {
    Fixture f({Fault("delay: {fixed_delay: 0.1s, percentage: {numerator: 100}}")});
    f.conns[0]->Deliver("POST / HTTP/1.1\r\nhost: svc\r\ncontent-length: 5\r\n\r\nab");
    f.conns[0]->Deliver("cde");
    CHECK(f.Written(0).status == 0);
    f.Tick(150ms);
    CHECK(f.Written(0).status == 200);
    CHECK(f.Log().find("\"bytes_received\":5") != std::string::npos);
  }
  SECTION("delay, then abort") {
    Fixture f({Fault(R"(
delay: {fixed_delay: 0.1s, percentage: {numerator: 100}}
abort: {http_status: 503, percentage: {numerator: 100}}
)")});
    CHECK(f.Send("/").status == 0);
    f.Tick(150ms);
    CHECK(f.Written(0).status == 503);
    CHECK(f.Log().find("\"response_flags\":\"DI,FI\"") != std::string::npos);
  }
  SECTION("the client leaving during the delay ends it quietly") {
    Fixture f({Fault("delay: {fixed_delay: 0.1s, percentage: {numerator: 100}}")});
    f.Send("/");
    f.conns[0]->RaiseEvent(network::ConnectionEvent::kRemoteClose);
    f.Tick(150ms);
    CHECK(f.Log().find("\"response_flags\":\"DC,DI\"") != std::string::npos);
  }
}

TEST_CASE("fault filter: max_active_faults caps the requests holding a fault", "[http_filters]") {
  Fixture f({Fault(R"(
delay: {fixed_delay: 0.2s, percentage: {numerator: 100}}
max_active_faults: 1
)")});
  CHECK(f.Send("/").status == 0);  // connection 0: delayed, holds the one slot
  f.Connect("10.1.2.4");
  CHECK(f.Send("/").status == 200);  // connection 1: over the limit, not delayed
  CHECK(f.Count("http.in.fault.faults_overflow") == 1);
  CHECK(f.Count("http.in.fault.delays_injected") == 1);
  f.Tick(250ms);
  CHECK(f.Written(0).status == 200);
  // The slot is free again.
  CHECK(f.Send("/").status == 0);
  CHECK(f.Count("http.in.fault.delays_injected") == 2);
  f.Tick(250ms);
  CHECK(f.Written(1).status == 200);
}

TEST_CASE("filters in a chain: RBAC before fault, a denied request draws no fault",
          "[http_filters]") {
  Fixture f({Rbac(R"(
rules:
  action: DENY
  policies:
    admin: {permissions: [{url_path: {path: {prefix: /admin}}}], principals: [{any: true}]}
)"),
             Fault("abort: {http_status: 503, percentage: {numerator: 100}}")});
  CHECK(f.Send("/admin").status == 403);
  CHECK(f.Count("http.in.fault.aborts_injected") == 0);
  CHECK(f.Send("/").status == 503);
  CHECK(f.Count("http.in.fault.aborts_injected") == 1);
}

}  // namespace
}  // namespace weft::http
