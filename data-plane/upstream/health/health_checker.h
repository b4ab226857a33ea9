// Active health checking of one cluster: when each host is probed and what the answers make of
// its health. The probe itself (HTTP, TCP, gRPC health) is a Prober, so the rules below are
// tested with a fake clock and scripted answers, and one checker per proxy serves every worker
// (never one per worker: the host would see N times the probes).
//
// Envoy's rules (api/envoy/config/core/v3/health_check.proto), with its defaults:
// - A host turns unhealthy after unhealthy_threshold failed probes in a row, healthy after
//   healthy_threshold good ones, except that the first good answer of a host not yet checked
//   marks it healthy at once. A probe that times out counts as a failure; an answer the prober
//   calls conclusive (an HTTP status that is neither expected nor retriable) turns the host
//   unhealthy at once.
// - The next probe is due after `interval`, or unhealthy_interval for an unhealthy host, or the
//   edge intervals right after a transition, or no_traffic_interval (60 s) while the cluster
//   carries no traffic (no_traffic_healthy_interval for healthy hosts); plus interval_jitter and
//   interval_jitter_percent of the interval, drawn for every probe.
// - Beyond Envoy's default (the start-up burst of envoy#10498): the hosts a checker starts with
//   are assumed healthy and their first probes are spread over one interval; a host that joins
//   later is unhealthy until its first probe, which is sent within initial_jitter (or at once).
//
// Threading: the main side's, like the cluster manager that owns it; not thread-safe. Probers
// call back on the same thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "data-plane/upstream/lb/load_balancer.h"
#include "envoy/config/core/v3/health_check.pb.h"

namespace weft::upstream::health {

using std::chrono::milliseconds;

enum class ProbeResult : uint8_t {
  kSuccess,
  kFailure,            // counts towards unhealthy_threshold
  kTimeout,            // likewise
  kConclusiveFailure,  // unhealthy at once
};

// Sends one probe to `host` ("address:port") and calls `done` exactly once, on the checker's
// thread, within `timeout` (the prober enforces it and reports kTimeout).
class Prober {
 public:
  virtual ~Prober() = default;
  virtual void Probe(const std::string& host, milliseconds timeout,
                     std::function<void(ProbeResult)> done) = 0;
};

struct Schedule {
  milliseconds timeout{1000};
  milliseconds interval{10'000};
  milliseconds initial_jitter{0};
  milliseconds interval_jitter{0};
  uint32_t interval_jitter_percent = 0;
  uint32_t unhealthy_threshold = 3;
  uint32_t healthy_threshold = 2;
  milliseconds no_traffic_interval{60'000};
  milliseconds no_traffic_healthy_interval{0};  // 0: no_traffic_interval
  milliseconds unhealthy_interval{0};           // 0: interval
  milliseconds unhealthy_edge_interval{0};      // 0: the interval that applies anyway
  milliseconds healthy_edge_interval{0};

  // The timing fields of `hc` over the defaults. Fails naming every field the checker or its
  // prober does not implement (common/xds/failover_check.h: alt_port, reuse_connection false,
  // event loggers, TLS options, custom checks, ...).
  static absl::StatusOr<Schedule> FromProto(const envoy::config::core::v3::HealthCheck& hc);
};

struct HostHealth {
  enum class State : uint8_t { kPending, kHealthy, kUnhealthy };
  State state = State::kPending;
  uint32_t successes = 0;  // in a row
  uint32_t failures = 0;   // in a row
  Clock::TimePoint last_probe{};
  Clock::TimePoint next_probe{};
  ProbeResult last_result = ProbeResult::kSuccess;
  uint64_t probes = 0;
  bool in_flight = false;
  bool just_changed = false;  // the last answer was a transition: the edge interval applies
};

struct CheckerStats {
  uint64_t attempts = 0;
  uint64_t successes = 0;
  uint64_t failures = 0;
  uint64_t timeouts = 0;
  uint64_t healthy_transitions = 0;
  uint64_t unhealthy_transitions = 0;
};

class Checker {
 public:
  // `healthy` is whether a host may get traffic as far as active checking is concerned.
  using OnChange = std::function<void(std::string_view host, bool healthy)>;

  Checker(Schedule schedule, std::unique_ptr<Prober> prober, Clock* clock, Random* random,
          OnChange on_change);
  ~Checker();

  // The cluster's hosts. The first call's hosts are assumed healthy, their probes spread over
  // one interval; later newcomers are pending (not healthy) until their first answer. Hosts
  // that stay keep their state; a probe in flight to a removed host is dropped on return.
  void SetHosts(const std::vector<std::string>& hosts);
  // Whether the cluster carries traffic (no_traffic_interval applies while it does not). The
  // cluster manager sets it from what workers report. Turning active pulls probes due later
  // than one interval forward (spread over one interval), so a host that fails once traffic
  // flows is not left unnoticed for the rest of a no-traffic interval.
  void SetClusterActive(bool active);
  bool cluster_active() const { return active_; }
  // Sends the probes that are due. Call often (the main loop's tick).
  void Tick();

  const HostHealth* Find(std::string_view host) const;
  const CheckerStats& stats() const { return stats_; }
  const Schedule& schedule() const { return schedule_; }

 private:
  void OnResult(const std::string& host, uint64_t generation, ProbeResult result);
  void SetState(const std::string& host, HostHealth& h, HostHealth::State state);
  milliseconds NextInterval(const HostHealth& h);
  milliseconds Jitter(milliseconds interval);

  Schedule schedule_;
  std::unique_ptr<Prober> prober_;
  Clock* clock_;
  Random* random_;
  OnChange on_change_;
  std::map<std::string, HostHealth, std::less<>> hosts_;
  bool started_ = false;
  bool active_ = true;
  // Bumped by SetHosts so an answer for a host that was removed (and maybe re-added) is
  // recognised as stale.
  std::map<std::string, uint64_t, std::less<>> generation_;
  uint64_t next_generation_ = 1;
  CheckerStats stats_;
  // Answers that arrive after the checker is gone must not touch it.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace weft::upstream::health
