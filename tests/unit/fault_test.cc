// The fault filter's engine (data-plane/http/filters/fault) and its config check
// (common/xds/fault_check.h), against Envoy's semantics.
#include "data-plane/http/filters/fault/fault.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <string>

#include "common/xds/fault_check.h"
#include "tests/unit/filter_test_util.h"

namespace weft::http::fault {
namespace {

using ::weft::testing::FakeHeaders;
using ::weft::testing::FromYaml;
using ::weft::testing::HasError;
using Proto = ::envoy::extensions::filters::http::fault::v3::HTTPFault;
using Catch::Matchers::Contains;
using std::chrono::milliseconds;

// Next() always returns `value`: 0 makes every draw fire (Uniform(n) == 0), ~0 fires only a
// numerator equal to the denominator (Uniform(n) == n - 1).
class FixedRandom final : public upstream::Random {
 public:
  explicit FixedRandom(uint64_t value) : value_(value) {}
  uint64_t Next() override { return value_; }

 private:
  uint64_t value_;
};
FixedRandom kAlways(0);
FixedRandom kNever(~uint64_t{0});

std::shared_ptr<const FaultFilterConfig> Must(std::string_view yaml) {
  auto c = FaultFilterConfig::Create(FromYaml<Proto>(yaml));
  INFO(c.status().ToString());
  REQUIRE(c.ok());
  return *c;
}

std::string CreateError(std::string_view yaml) {
  auto c = FaultFilterConfig::Create(FromYaml<Proto>(yaml));
  REQUIRE_FALSE(c.ok());
  return std::string(c.status().message());
}

RequestInfo Req(const router::HeaderLookup* headers = nullptr, std::string_view cluster = "") {
  RequestInfo r;
  r.headers = headers;
  r.cluster = cluster;
  return r;
}

TEST_CASE("Fault: a fixed abort fires by its percentage with its status") {
  auto c = Must("abort: {http_status: 503, percentage: {numerator: 40}}");
  Decision d = c->Decide(Req(), kAlways);
  REQUIRE(d.abort.has_value());
  CHECK(d.abort->http_status == 503);
  CHECK_FALSE(d.abort->grpc_status.has_value());
  CHECK_FALSE(d.delay.has_value());
  CHECK(d.active.held());
  CHECK(c->active_faults() == 1);
  d.active.Release();
  CHECK(c->active_faults() == 0);
  CHECK_FALSE(c->Decide(Req(), kNever).abort.has_value());

  // No percentage: 0 %, as Envoy.
  CHECK_FALSE(Must("abort: {http_status: 503}")->Decide(Req(), kAlways).abort.has_value());
  // A gRPC abort is HTTP 200 carrying the grpc-status.
  d = Must("abort: {grpc_status: 14, percentage: {numerator: 100}}")->Decide(Req(), kNever);
  REQUIRE(d.abort.has_value());
  CHECK(d.abort->http_status == 200);
  CHECK(d.abort->grpc_status == 14u);
}

TEST_CASE("Fault: the aborted share is within 3 % of the configured percentage") {
  struct Case {
    const char* yaml;
    double share;
  };
  const Case cases[] = {
      {"abort: {http_status: 500, percentage: {numerator: 25}}", 0.25},
      {"abort: {http_status: 500, percentage: {numerator: 1234, denominator: TEN_THOUSAND}}",
       0.1234},
      {"abort: {http_status: 500, percentage: {numerator: 50000, denominator: MILLION}}", 0.05},
  };
  upstream::DefaultRandom random(12345);
  for (const Case& k : cases) {
    auto c = Must(k.yaml);
    constexpr int kDraws = 200'000;
    int aborted = 0;
    for (int i = 0; i < kDraws; ++i) aborted += c->Decide(Req(), random).abort.has_value();
    const double share = static_cast<double>(aborted) / kDraws;
    INFO(k.yaml << ": " << share);
    CHECK(std::abs(share / k.share - 1) < 0.03);
  }
}

TEST_CASE("Fault: a fixed delay, and a delay followed by an independent abort") {
  auto c = Must("delay: {fixed_delay: 1.5s, percentage: {numerator: 100}}");
  Decision d = c->Decide(Req(), kNever);
  REQUIRE(d.delay.has_value());
  CHECK(*d.delay == milliseconds(1500));
  CHECK_FALSE(d.abort.has_value());
  CHECK(d.active.held());

  auto both = Must(R"(
delay: {fixed_delay: 0.2s, percentage: {numerator: 100}}
abort: {http_status: 502, percentage: {numerator: 100}}
)");
  d = both->Decide(Req(), kNever);
  CHECK(d.delay == milliseconds(200));
  REQUIRE(d.abort.has_value());
  CHECK(d.abort->http_status == 502);
  CHECK(both->active_faults() == 1);  // one slot per request, not one per fault

  // Both at 50 %: all four combinations occur.
  auto half = Must(R"(
delay: {fixed_delay: 0.01s, percentage: {numerator: 50}}
abort: {http_status: 502, percentage: {numerator: 50}}
)");
  upstream::DefaultRandom random(7);
  int seen[2][2] = {};
  for (int i = 0; i < 1000; ++i) {
    Decision x = half->Decide(Req(), random);
    seen[x.delay.has_value()][x.abort.has_value()]++;
  }
  CHECK(seen[0][0] > 150);
  CHECK(seen[0][1] > 150);
  CHECK(seen[1][0] > 150);
  CHECK(seen[1][1] > 150);
}

TEST_CASE("Fault: header-controlled abort and delay") {
  auto c = Must(R"(
abort: {header_abort: {}, percentage: {numerator: 100}}
delay: {header_delay: {}, percentage: {numerator: 100}}
)");
  // No headers: nothing.
  Decision d = c->Decide(Req(), kAlways);
  CHECK_FALSE(d.abort.has_value());
  CHECK_FALSE(d.delay.has_value());
  CHECK_FALSE(d.active.held());

  FakeHeaders h{{"x-envoy-fault-abort-request", "429"}};
  d = c->Decide(Req(&h), kNever);
  REQUIRE(d.abort.has_value());
  CHECK(d.abort->http_status == 429);

  // Out of 200..599, or not a number: no abort.
  for (const char* bad : {"199", "600", "abc", "", "-1"}) {
    FakeHeaders b{{"x-envoy-fault-abort-request", bad}};
    INFO(bad);
    CHECK_FALSE(c->Decide(Req(&b), kAlways).abort.has_value());
  }
  // Only the first of repeated values counts.
  FakeHeaders rep{{"x-envoy-fault-abort-request", "503,404"}};
  CHECK(c->Decide(Req(&rep), kAlways).abort->http_status == 503);

  FakeHeaders grpc{{"x-envoy-fault-abort-grpc-request", "8"}};
  d = c->Decide(Req(&grpc), kAlways);
  REQUIRE(d.abort.has_value());
  CHECK(d.abort->http_status == 200);
  CHECK(d.abort->grpc_status == 8u);
  // An HTTP status wins over a gRPC one.
  FakeHeaders both{{"x-envoy-fault-abort-request", "500"},
                   {"x-envoy-fault-abort-grpc-request", "8"}};
  CHECK_FALSE(c->Decide(Req(&both), kAlways).abort->grpc_status.has_value());

  FakeHeaders delay{{"x-envoy-fault-delay-request", "250"}};
  d = c->Decide(Req(&delay), kNever);
  CHECK(d.delay == milliseconds(250));
  FakeHeaders zero{{"x-envoy-fault-delay-request", "0"}};
  CHECK_FALSE(c->Decide(Req(&zero), kAlways).delay.has_value());
}

TEST_CASE("Fault: the percentage headers lower the configured share, never raise it") {
  auto c = Must(R"(
abort: {header_abort: {}, percentage: {numerator: 30}}
delay: {header_delay: {}, percentage: {numerator: 30}}
)");
  upstream::DefaultRandom random(99);
  auto share = [&](FakeHeaders h, bool abort) {
    int hits = 0;
    for (int i = 0; i < 100'000; ++i) {
      Decision d = c->Decide(Req(&h), random);
      hits += abort ? d.abort.has_value() : d.delay.has_value();
    }
    return hits / 100'000.0;
  };
  FakeHeaders abort10{{"x-envoy-fault-abort-request", "503"},
                      {"x-envoy-fault-abort-request-percentage", "10"}};
  CHECK(std::abs(share(abort10, true) - 0.10) < 0.003);
  FakeHeaders abort90{{"x-envoy-fault-abort-request", "503"},
                      {"x-envoy-fault-abort-request-percentage", "90"}};
  CHECK(std::abs(share(abort90, true) - 0.30) < 0.006);  // capped by the config
  FakeHeaders bad{{"x-envoy-fault-abort-request", "503"},
                  {"x-envoy-fault-abort-request-percentage", "x"}};
  CHECK(std::abs(share(bad, true) - 0.30) < 0.006);  // unparsable: the config's
  FakeHeaders delay5{{"x-envoy-fault-delay-request", "20"},
                     {"x-envoy-fault-delay-request-percentage", "5"}};
  CHECK(std::abs(share(delay5, false) - 0.05) < 0.003);

  // A fixed abort ignores the percentage header.
  auto fixed = Must("abort: {http_status: 503, percentage: {numerator: 100}}");
  FakeHeaders zero{{"x-envoy-fault-abort-request-percentage", "0"}};
  CHECK(fixed->Decide(Req(&zero), kNever).abort.has_value());
}

TEST_CASE("Fault: headers, upstream_cluster and downstream_nodes select the requests") {
  auto c = Must(R"(
abort: {http_status: 503, percentage: {numerator: 100}}
headers:
- {name: x-canary, present_match: true}
- {name: ':method', string_match: {exact: GET}}
)");
  FakeHeaders only_one{{"x-canary", "1"}};
  CHECK_FALSE(c->Decide(Req(&only_one), kNever).abort.has_value());  // all must match
  RequestInfo get = Req(&only_one);
  get.line.method = "GET";
  CHECK(c->Decide(get, kNever).abort.has_value());
  get.line.method = "POST";
  CHECK_FALSE(c->Decide(get, kNever).abort.has_value());
  // A header map that carries pseudo-headers itself works too.
  FakeHeaders both{{"x-canary", "1"}, {":method", "GET"}};
  CHECK(c->Decide(Req(&both), kNever).abort.has_value());

  auto cluster = Must(R"(
upstream_cluster: payments.default:8080
abort: {http_status: 503, percentage: {numerator: 100}}
)");
  CHECK(cluster->Decide(Req(nullptr, "payments.default:8080"), kNever).abort.has_value());
  CHECK_FALSE(cluster->Decide(Req(nullptr, "ledger.prod:7070"), kNever).abort.has_value());
  CHECK_FALSE(cluster->Decide(Req(nullptr, ""), kNever).abort.has_value());

  auto nodes = Must(R"(
downstream_nodes: [web-1, web-2]
abort: {http_status: 503, percentage: {numerator: 100}}
)");
  FakeHeaders web2{{"x-envoy-downstream-service-node", "web-2"}};
  FakeHeaders api{{"x-envoy-downstream-service-node", "api-1"}};
  CHECK(nodes->Decide(Req(&web2), kNever).abort.has_value());
  CHECK_FALSE(nodes->Decide(Req(&api), kNever).abort.has_value());
  CHECK_FALSE(nodes->Decide(Req(), kNever).abort.has_value());
}

TEST_CASE("Fault: max_active_faults caps concurrent faults; a released slot is reusable") {
  auto c = Must(R"(
max_active_faults: 2
abort: {http_status: 503, percentage: {numerator: 100}}
)");
  Decision a = c->Decide(Req(), kNever);
  Decision b = c->Decide(Req(), kNever);
  CHECK(a.abort.has_value());
  CHECK(b.abort.has_value());
  CHECK(c->active_faults() == 2);
  Decision over = c->Decide(Req(), kNever);
  CHECK_FALSE(over.abort.has_value());
  CHECK(over.overflow);
  CHECK_FALSE(over.active.held());
  a = Decision{};  // the stream ended
  CHECK(c->active_faults() == 1);
  Decision again = c->Decide(Req(), kNever);
  CHECK(again.abort.has_value());
  CHECK_FALSE(again.overflow);

  // Zero: never inject.
  auto none = Must("max_active_faults: 0\nabort: {http_status: 503, percentage: {numerator: 100}}");
  Decision z = none->Decide(Req(), kNever);
  CHECK_FALSE(z.abort.has_value());
  CHECK(z.overflow);
  // A request that draws no fault is not an overflow.
  auto quiet = Must("max_active_faults: 0\nabort: {http_status: 503}");
  CHECK_FALSE(quiet->Decide(Req(), kAlways).overflow);
}

TEST_CASE("Fault: unsupported or invalid config is refused with its field path") {
  CHECK_THAT(CreateError("abort: {http_status: 600}"),
             Contains("abort.http_status: must be in 200..599, got 600"));
  CHECK_THAT(CreateError("abort: {http_status: 100}"), Contains("abort.http_status"));
  CHECK_THAT(CreateError("abort: {grpc_status: 17}"), Contains("abort.grpc_status"));
  CHECK_THAT(CreateError("abort: {percentage: {numerator: 10}}"),
             Contains("abort: one of http_status, grpc_status or header_abort must be set"));
  CHECK_THAT(CreateError("abort: {http_status: 503, percentage: {numerator: 101}}"),
             Contains("abort.percentage.numerator: must be at most 100"));
  CHECK_THAT(
      CreateError(
          "delay: {fixed_delay: 1s, percentage: {numerator: 10001, denominator: TEN_THOUSAND}}"),
      Contains("delay.percentage.numerator: must be at most 10000"));
  CHECK(FaultFilterConfig::Create(
            FromYaml<Proto>("delay: {fixed_delay: 1s, percentage: {numerator: 1000000, "
                            "denominator: MILLION}}"))
            .ok());
  CHECK_THAT(CreateError("delay: {fixed_delay: 0s}"),
             Contains("delay.fixed_delay: must be at least 1ms"));
  CHECK_THAT(CreateError("delay: {fixed_delay: 0.0005s}"), Contains("delay.fixed_delay"));
  CHECK_THAT(CreateError("delay: {percentage: {numerator: 1}}"),
             Contains("delay: one of fixed_delay or header_delay must be set"));
  CHECK_THAT(CreateError("headers: [{name: x, string_match: {safe_regex: {regex: '(('}}}]"),
             Contains("headers[0].string_match.safe_regex.regex: invalid regex"));
  CHECK_THAT(CreateError("headers: [{string_match: {exact: a}}]"), Contains("headers[0].name"));
  CHECK_THAT(CreateError("response_rate_limit: {fixed_limit: {limit_kbps: 10}}"),
             Contains("response_rate_limit: is not supported"));
  CHECK_THAT(CreateError("abort_percent_runtime: fault.x"),
             Contains("abort_percent_runtime: runtime overrides are not supported"));
  CHECK_THAT(CreateError("max_active_faults_runtime: fault.y"),
             Contains("max_active_faults_runtime"));
  Proto unknown = FromYaml<Proto>("abort: {http_status: 503}");
  unknown.mutable_abort()
      ->GetReflection()
      ->MutableUnknownFields(unknown.mutable_abort())
      ->AddVarint(9, 1);
  auto created = FaultFilterConfig::Create(unknown);
  REQUIRE_FALSE(created.ok());
  CHECK_THAT(std::string(created.status().message()),
             Contains("abort: field number 9 is not supported"));
  // Empty and stats-only settings are fine.
  CHECK(FaultFilterConfig::Create(FromYaml<Proto>("disable_downstream_cluster_stats: true")).ok());
}

TEST_CASE("Fault: the shared validators check the filter and refuse it until it is applied") {
  auto errors = weft::testing::ValidateListenerWithFilter(
      FromYaml<Proto>("abort: {http_status: 700, percentage: {numerator: 100}}"));
  CHECK(HasError(errors, {"filter_chains[0].filters[0].typed_config.http_filters[0].typed_config."
                          "abort.http_status: must be in 200..599"}));
  auto good = FromYaml<Proto>("abort: {http_status: 503, percentage: {numerator: 10}}");
  errors = weft::testing::ValidateListenerWithFilter(good);
  if (xds::kFaultFilterApplied) {
    CHECK(errors.empty());
  } else {
    CHECK(HasError(errors, {"http_filters[0].typed_config: the fault filter is not applied"}));
    CHECK(errors.size() == 1);
  }
  // Marked optional, a filter this proxy does not apply yet may be skipped, as Envoy skips
  // optional filters it does not know; a bad one is still refused.
  CHECK(weft::testing::ValidateListenerWithFilter(good, /*optional=*/true).empty());
}

}  // namespace
}  // namespace weft::http::fault
