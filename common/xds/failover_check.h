// What weft-proxy's failover engines implement of a Cluster's `health_checks`,
// `outlier_detection` and `circuit_breakers`, as checks. The engines run them before they take
// a config (health::Schedule::FromProto and the probers, outlier::Config::FromProto,
// ResourceLimits::FromProto) and validate.cc runs them for every Cluster, so weft-cp refuses at
// apply time exactly what a proxy would NACK. What they refuse, with the field path:
// - health checks: custom checks, alt_port, reuse_connection false, event loggers and the
//   always_log_* switches (no health check event log), TLS options; HTTP checks over HTTP/2 or
//   HTTP/3, HTTP payload matching (send, receive, response_buffer_size), service_name_matcher,
//   CONNECT, a path that is not origin-form, status ranges outside [100, 600), header mutations
//   of Host or pseudo-headers, and control characters in host, authority, headers and metadata;
//   TCP payloads that are not hex (text) or are empty blocks;
// - outlier detection: `monitors`;
// - circuit breakers: per-host thresholds, thresholds for a priority other than DEFAULT (routes
//   have no priority), DEFAULT listed twice, track_remaining and max_connection_pools.
// Envoy's defaults apply to everything left unset (see the engines' headers). Fields outside our
// proto subset are refused by field number.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "common/validation.h"
#include "envoy/config/cluster/v3/circuit_breaker.pb.h"
#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/cluster/v3/outlier_detection.pb.h"
#include "envoy/config/core/v3/health_check.pb.h"

namespace weft::xds {

// False until weft-proxy's cluster manager serves these settings end to end: until then the
// supported-fields table (supported.cc) refuses `health_checks`, `outlier_detection` and
// `circuit_breakers` after these checks ran, so no proxy ACKs a health check it would not run
// or a breaker it would not enforce. The change that wires the cluster manager in flips this.
inline constexpr bool kClusterFailoverApplied = false;

void CheckHealthCheck(const envoy::config::core::v3::HealthCheck& hc, ValidationErrors* errors);
void CheckOutlierDetection(const envoy::config::cluster::v3::OutlierDetection& od,
                           ValidationErrors* errors);
void CheckCircuitBreakers(const envoy::config::cluster::v3::CircuitBreakers& cb,
                          ValidationErrors* errors);
// A TCP payload's bytes: `binary` as is, `text` decoded from hex (Envoy's encoding).
absl::StatusOr<std::string> HealthCheckPayload(
    const envoy::config::core::v3::HealthCheck::Payload& payload);

// The three of `cluster`, under health_checks[i], outlier_detection and circuit_breakers.
void CheckClusterFailover(const envoy::config::cluster::v3::Cluster& cluster,
                          ValidationErrors* errors);

}  // namespace weft::xds
