// Outlier detection for one cluster: passive health from what requests observe.
//
// Envoy's model (source/common/upstream/outlier_detection_impl.h), with its defaults: results
// reported per host feed consecutive counters (5xx, gateway errors, local-origin failures) that
// eject a host the moment they reach their threshold, and per-interval counters that every
// interval run the success-rate and failure-percentage checks across the cluster. An ejected
// host returns after base_ejection_time × (times ejected), capped by max_ejection_time; the
// multiplier falls by one for every interval a host spends in rotation. max_ejection_percent
// bounds how much of the cluster may be out at once (one host can always go while none is).
//
// Beyond Envoy (envoy#288, open since 2016): latency ejection. A host whose mean latency over
// an interval stays above `factor` × the cluster's median host latency for `intervals` intervals
// in a row is ejected like the others.
//
// Threading: one detector per cluster, owned by the proxy's main side (the cluster manager),
// which feeds it the results workers send in batches; it is not thread-safe. Time comes from a
// Clock and enforcement draws from a Random, so every rule is unit-tested deterministically.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "data-plane/upstream/lb/load_balancer.h"
#include "envoy/config/cluster/v3/outlier_detection.pb.h"

namespace weft::upstream::outlier {

using std::chrono::milliseconds;

// Why a host was ejected.
enum class EjectionType : uint8_t {
  kConsecutive5xx,
  kConsecutiveGatewayFailure,
  kConsecutiveLocalOriginFailure,
  kSuccessRate,
  kLocalOriginSuccessRate,
  kFailurePercentage,
  kLocalOriginFailurePercentage,
  kLatency,  // Weft's rule, not Envoy's
};
inline constexpr size_t kEjectionTypes = 8;
// Stat-style name: "consecutive_5xx", "success_rate", "latency", ...
std::string_view EjectionTypeName(EjectionType type);

// Weft's latency rule (off unless configured).
struct LatencyRule {
  double factor = 3.0;     // ejected above factor × the cluster's median host latency
  uint32_t intervals = 3;  // ... for this many intervals in a row
  uint32_t minimum_hosts = 5;
  uint32_t request_volume = 50;  // per host per interval, to be judged at all
  double enforcing = 100;
  bool operator==(const LatencyRule&) const = default;
};

struct Config {
  milliseconds interval{10'000};
  milliseconds base_ejection_time{30'000};
  milliseconds max_ejection_time{300'000};
  milliseconds max_ejection_time_jitter{0};
  uint32_t max_ejection_percent = 10;
  bool always_eject_one_host = false;
  bool successful_active_health_check_uneject_host = true;
  bool split_external_local_origin_errors = false;

  uint32_t consecutive_5xx = 5;
  double enforcing_consecutive_5xx = 100;
  uint32_t consecutive_gateway_failure = 5;
  double enforcing_consecutive_gateway_failure = 0;
  uint32_t consecutive_local_origin_failure = 5;
  double enforcing_consecutive_local_origin_failure = 100;

  double enforcing_success_rate = 100;
  double enforcing_local_origin_success_rate = 100;
  uint32_t success_rate_minimum_hosts = 5;
  uint32_t success_rate_request_volume = 100;
  double success_rate_stdev_factor = 1.9;  // the proto's value / 1000

  uint32_t failure_percentage_threshold = 85;
  double enforcing_failure_percentage = 0;
  double enforcing_failure_percentage_local_origin = 0;
  uint32_t failure_percentage_minimum_hosts = 5;
  uint32_t failure_percentage_request_volume = 50;

  std::optional<LatencyRule> latency;

  // The cluster manager keeps a detector (and its ejections) while its config is unchanged.
  bool operator==(const Config&) const = default;

  // Envoy's defaults for every field left unset. Fails (naming the field) on what the detector
  // does not implement: `monitors`.
  static absl::StatusOr<Config> FromProto(const envoy::config::cluster::v3::OutlierDetection& p);
};

// What a request to a host came to, as the router sees it.
struct Result {
  enum class Kind : uint8_t {
    kHttpResponse,         // `status` holds the upstream's code
    kLocalConnectFailure,  // connect refused or timed out
    kLocalTimeout,         // no response in time
    kLocalReset,           // the connection failed mid-request
    kLocalConnectSuccess,  // (only counted with split_external_local_origin_errors)
  };
  Kind kind = Kind::kHttpResponse;
  int status = 200;
  Clock::Duration latency{0};  // responses only: time to the response head
};

// One host as the detector sees it: for /clusters and the stats.
struct HostInfo {
  bool ejected = false;
  EjectionType last_type = EjectionType::kConsecutive5xx;
  Clock::TimePoint ejected_at{};
  Clock::TimePoint uneject_at{};
  uint32_t multiplier = 0;     // the next ejection lasts base × (multiplier + 1)
  uint64_t times_ejected = 0;  // over the host's life in this cluster
};

struct Stats {
  uint64_t ejections_enforced[kEjectionTypes] = {};
  uint64_t ejections_detected[kEjectionTypes] = {};  // also counts those not enforced
  uint64_t ejections_overflow = 0;  // detected, enforced, but max_ejection_percent was reached
  uint64_t ejections_active = 0;
};

class Detector {
 public:
  // Called whenever a host is ejected (true) or returns (false).
  using OnChange = std::function<void(std::string_view host, bool ejected, EjectionType type)>;

  Detector(Config config, Clock* clock, Random* random, OnChange on_change);

  // The cluster's membership (host keys, "address:port"). Hosts that stay keep their state;
  // removed hosts are forgotten (an ejected one is not reported as returning).
  void SetHosts(const std::vector<std::string>& hosts);
  void Report(std::string_view host, const Result& result);
  // A passing active health check returns an ejected host at once, unless configured not to.
  void OnActiveHealthCheckSuccess(std::string_view host);
  // Runs the interval: returns hosts whose time is up, then the success-rate, failure-percentage
  // and latency checks, then starts a new interval. Call every config().interval.
  void RunInterval();

  const Config& config() const { return config_; }
  const Stats& stats() const { return stats_; }
  // Null for a host not in the cluster.
  const HostInfo* Find(std::string_view host) const;
  size_t host_count() const { return hosts_.size(); }

 private:
  struct Window {
    uint64_t total = 0;
    uint64_t success = 0;
  };
  struct Host {
    HostInfo info;
    uint32_t consecutive_5xx = 0;
    uint32_t consecutive_gateway = 0;
    uint32_t consecutive_local = 0;
    Window external;  // this interval
    Window local;
    Clock::Duration latency_sum{0};
    uint64_t latency_count = 0;
    uint32_t latency_strikes = 0;
  };

  void OnHttpStatus(Host& h, std::string_view key, int status);
  void OnLocalFailure(Host& h, std::string_view key);
  // Ejects when enforcement draws so and the cluster allows another ejection.
  void MaybeEject(Host& h, std::string_view key, EjectionType type, double enforcing);
  void Uneject(Host& h, std::string_view key);
  bool Enforce(double percent);
  // (key, rate) for hosts with at least `volume` requests in the window `which`.
  std::vector<std::pair<std::string, double>> Rates(bool local, uint64_t volume) const;
  void SuccessRate(bool local);
  void FailurePercentage(bool local);
  void Latency();

  Config config_;
  Clock* clock_;
  Random* random_;
  OnChange on_change_;
  std::map<std::string, Host, std::less<>> hosts_;
  size_t ejected_ = 0;
  Stats stats_;
};

}  // namespace weft::upstream::outlier
