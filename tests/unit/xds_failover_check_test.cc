// The checks of a Cluster's health_checks, outlier_detection and circuit_breakers
// (common/xds/failover_check.h): what the engines implement passes, everything else is refused
// with its field path; the validators run them too, and, until the cluster manager serves them
// end to end, still refuse the three fields.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "common/proto_util.h"
#include "common/validation.h"
#include "common/xds/failover_check.h"
#include "common/xds/validate.h"
#include "envoy/config/cluster/v3/cluster.pb.h"
#include "tests/unit/resource_util.h"

namespace weft::xds {
namespace {

using envoy::config::cluster::v3::Cluster;
using testing::FromYaml;

std::vector<std::string> Check(const Cluster& c) {
  ValidationErrors errors;
  CheckClusterFailover(c, &errors);
  return errors.errors();
}

std::vector<std::string> Check(std::string_view yaml) { return Check(FromYaml<Cluster>(yaml)); }

constexpr std::string_view kSupported = R"(
name: web
type: EDS
eds_cluster_config: {eds_config: {ads: {}}}
health_checks:
- timeout: 1s
  interval: 5s
  interval_jitter: 0.5s
  interval_jitter_percent: 10
  initial_jitter: 1s
  unhealthy_threshold: 3
  healthy_threshold: 2
  no_traffic_interval: 60s
  unhealthy_interval: 10s
  healthy_edge_interval: 1s
  reuse_connection: true
  http_health_check:
    host: web.internal
    path: /healthz?full=1
    method: HEAD
    expected_statuses: [{start: 200, end: 300}]
    retriable_statuses: [{start: 503, end: 504}]
    request_headers_to_add: [{header: {key: x-probe, value: "1"}}]
    request_headers_to_remove: [user-agent]
- timeout: 1s
  interval: 5s
  unhealthy_threshold: 3
  healthy_threshold: 2
  tcp_health_check:
    send: {text: "70696E67"}
    receive: [{text: "706f6e67"}, {binary: "NDI="}]
- timeout: 1s
  interval: 5s
  unhealthy_threshold: 3
  healthy_threshold: 2
  grpc_health_check:
    service_name: weft.Echo
    authority: echo
    initial_metadata: [{header: {key: x-probe, value: "1"}}]
outlier_detection:
  consecutive_5xx: 7
  interval: 5s
  base_ejection_time: 10s
  max_ejection_percent: 50
  enforcing_consecutive_gateway_failure: 100
  split_external_local_origin_errors: true
  successful_active_health_check_uneject_host: false
circuit_breakers:
  thresholds:
  - priority: DEFAULT
    max_connections: 100
    max_pending_requests: 10
    max_requests: 100
    max_retries: 3
    retry_budget: {budget_percent: {value: 25}, min_retry_concurrency: 5}
)";

TEST_CASE("failover check: everything the engines implement passes") {
  auto e = Check(kSupported);
  INFO(absl::StrJoin(e, "\n"));
  CHECK(e.empty());
  CHECK(Check("name: x").empty());  // and nothing set is fine
}

TEST_CASE("failover check: health check fields weft-proxy does not implement") {
  auto e = Check(R"(
name: web
health_checks:
- timeout: 1s
  interval: 5s
  alt_port: 9000
  reuse_connection: false
  always_log_health_check_failures: true
  tls_options: {alpn_protocols: [h2]}
  no_traffic_interval: 0s
  custom_health_check: {name: redis}
- http_health_check:
    path: health
    codec_client_type: HTTP2
    method: CONNECT
    receive: [{text: "00"}]
    service_name_matcher: {exact: web}
    expected_statuses: [{start: 300, end: 200}, {start: 200, end: 700}]
    request_headers_to_add: [{header: {key: Host, value: x}}, {header: {key: x-ok, value: "a\nb"}}]
    request_headers_to_remove: [":path"]
- tcp_health_check:
    send: {text: "ABC"}
    receive: [{text: "zz"}, {binary: ""}]
- grpc_health_check:
    initial_metadata: [{header: {key: te, value: x}}]
)");
  INFO(absl::StrJoin(e, "\n"));
  const std::vector<std::string> want = {
      "health_checks[0].no_traffic_interval: must be greater than 0",
      "health_checks[0].alt_port: is not supported by weft-proxy",
      "health_checks[0].reuse_connection: false is not supported by weft-proxy",
      "health_checks[0].always_log_health_check_failures: is not supported by weft-proxy (no "
      "health check event log)",
      "health_checks[0].tls_options: is not supported by weft-proxy",
      "health_checks[0].custom_health_check: is not supported by weft-proxy",
      "health_checks[1].http_health_check.codec_client_type: only HTTP1 is supported by "
      "weft-proxy for HTTP health checks",
      "health_checks[1].http_health_check.receive: is not supported by weft-proxy",
      "health_checks[1].http_health_check.service_name_matcher: is not supported by weft-proxy",
      "health_checks[1].http_health_check.method: CONNECT is not allowed for health checks",
      "health_checks[1].http_health_check.path: must be an origin-form path (\"/...\", no spaces)",
      "health_checks[1].http_health_check.expected_statuses[0]: must be a status range [start, "
      "end) within [100, 600), got [300, 200)",
      "health_checks[1].http_health_check.expected_statuses[1]: must be a status range [start, "
      "end) within [100, 600), got [200, 700)",
      "health_checks[1].http_health_check.request_headers_to_add[0].header: \"Host\": a header "
      "name (no ':' or spaces, not a pseudo-header or host) with a value without control "
      "characters",
      "health_checks[1].http_health_check.request_headers_to_add[1].header: \"x-ok\": a header "
      "name (no ':' or spaces, not a pseudo-header or host) with a value without control "
      "characters",
      "health_checks[1].http_health_check.request_headers_to_remove[0]: the probe's Host and "
      "pseudo-headers cannot be removed",
      "health_checks[2].tcp_health_check.send.text: hex payload has an odd number of digits",
      "health_checks[2].tcp_health_check.receive[0].text: \"zz\" is not a hex byte",
      "health_checks[2].tcp_health_check.receive[1]: must not be empty (a block that always "
      "matches)",
      "health_checks[3].grpc_health_check.initial_metadata[0].header: \"te\": a header name (no "
      "':' or spaces, not a pseudo-header or host, te, content-type) with a value without control "
      "characters",
  };
  CHECK(e == want);
}

TEST_CASE("failover check: outlier detection and circuit breakers") {
  auto e = Check(R"(
name: web
outlier_detection:
  monitors: [{name: weft.latency}]
circuit_breakers:
  thresholds:
  - {priority: DEFAULT}
  - {priority: DEFAULT, track_remaining: true}
  - {priority: HIGH, max_connection_pools: {value: 3}}
  per_host_thresholds: [{max_connections: 1}]
)");
  INFO(absl::StrJoin(e, "\n"));
  const std::vector<std::string> want = {
      "outlier_detection.monitors: is not supported by weft-proxy",
      "circuit_breakers.per_host_thresholds: per-host limits are not supported by weft-proxy",
      "circuit_breakers.thresholds[1].priority: DEFAULT is listed twice; only one would apply",
      "circuit_breakers.thresholds[1].track_remaining: is not supported by weft-proxy",
      "circuit_breakers.thresholds[2].priority: only DEFAULT is supported by weft-proxy (routes "
      "have no priority)",
      "circuit_breakers.thresholds[2].max_connection_pools: is not supported by weft-proxy",
  };
  CHECK(e == want);
}

TEST_CASE("failover check: fields outside our proto subset are refused by number") {
  Cluster c = FromYaml<Cluster>("name: web\noutlier_detection: {}\n");
  // Field 99 of OutlierDetection, as a newer control plane might send it.
  c.mutable_outlier_detection()
      ->GetReflection()
      ->MutableUnknownFields(c.mutable_outlier_detection())
      ->AddVarint(99, 1);
  auto e = Check(c);
  REQUIRE(e.size() == 1);
  CHECK_THAT(e[0], Catch::StartsWith("outlier_detection"));
  CHECK_THAT(e[0], Catch::Contains("99"));
}

TEST_CASE("failover check: the validators run it, and refuse the fields until they apply") {
  REQUIRE_FALSE(kClusterFailoverApplied);
  Cluster c = FromYaml<Cluster>(kSupported);
  ValidationErrors errors;
  ValidateResource(PackAny(c), &errors);
  INFO(absl::StrJoin(errors.errors(), "\n"));
  // Nothing but the three refusals: the values themselves are all supported.
  CHECK(errors.errors() ==
        std::vector<std::string>{
            "health_checks: is not applied by weft-proxy; refused rather than ignored",
            "circuit_breakers: is not applied by weft-proxy; refused rather than ignored",
            "outlier_detection: is not applied by weft-proxy; refused rather than ignored"});
  // A value weft-proxy does not implement is named too, so fixing a config takes one round.
  c.mutable_health_checks(0)->mutable_alt_port()->set_value(1);
  ValidationErrors more;
  ValidateResource(PackAny(c), &more);
  CHECK(more.size() == 4);
  CHECK_THAT(absl::StrJoin(more.errors(), "\n"),
             Catch::Contains("health_checks[0].alt_port: is not supported by weft-proxy"));
}

TEST_CASE("failover check: payloads") {
  envoy::config::core::v3::HealthCheck::Payload p;
  p.set_text("00fF7a");
  CHECK(*HealthCheckPayload(p) == std::string("\x00\xff\x7a", 3));
  p.set_binary("raw");
  CHECK(*HealthCheckPayload(p) == "raw");
}

}  // namespace
}  // namespace weft::xds
