// The rules every algorithm shares, in one place, following Envoy:
//  1. Priority load: priority p offers min(100, healthy% × overprovisioning) of the traffic;
//     priorities are filled in order, healthy hosts first, then degraded hosts, and if all
//     together offer less than 100 the loads are scaled up proportionally.
//  2. Panic: when the priorities cannot absorb 100% together, a priority whose healthy (plus
//     degraded) share is below the threshold balances over all its hosts, because concentrating
//     everything on the few healthy ones would likely take them down too.
//  3. Localities: within a priority, a locality is chosen by EDF on locality weight × its
//     healthy share (also overprovisioned), and the algorithm runs on that locality's hosts.
//     Hash-based algorithms skip this step: a key must map to the same host wherever it lands.
//  4. Slow start: hosts younger than the window get a reduced effective weight.
// Draining hosts are never picked and do not count in any percentage: they leave by choice and
// must not push a priority into failover or panic.
#include <algorithm>
#include <cmath>
#include <limits>

#include "common/status.h"
#include "data-plane/upstream/lb/internal.h"

namespace weft::upstream {
namespace {

using lb_internal::EdfScheduler;
using lb_internal::Picker;
using lb_internal::PickerFactory;
using lb_internal::Pool;

class PriorityLoadBalancer final : public LoadBalancer {
 public:
  PriorityLoadBalancer(LbAlgorithm algorithm, const LbConfig& config, const PrioritySet& hosts,
                       Clock* clock, Random* random, PickerFactory factory)
      : algorithm_(algorithm),
        config_(config),
        hosts_(hosts),
        clock_(clock),
        random_(random),
        factory_(factory),
        env_{&config_, clock_, &rtt_prior_ns_} {}

  Host* ChooseHost(const LbContext& context) override {
    if (seen_epoch_ != hosts_.epoch()) Rebuild();
    Random& random = context.random != nullptr ? *context.random : *random_;
    // Hash-keyed requests also choose their priority from the key, so a key sticks to one host.
    const double x =
        context.hash_key
            ? static_cast<double>(lb_internal::Mix64(*context.hash_key ^ 0x5bd1e9955bd1e995ULL) %
                                  1000000) /
                  10000.0
            : random.UniformDouble() * 100.0;
    PriorityState* chosen = nullptr;
    Source source = kHealthy;
    double left = x;
    for (Source s : {kHealthy, kDegraded}) {
      for (PriorityState& p : priorities_) {
        const double load = s == kHealthy ? p.healthy_load : p.degraded_load;
        if (load <= 0) continue;
        chosen = &p;
        source = s;
        if (left < load) goto found;
        left -= load;
      }
    }
    // Rounding left us past the end: `chosen` is the last priority with load, or null if none.
    if (chosen == nullptr) return nullptr;
  found:
    if (chosen->panic) return PickFrom(chosen->pools[kAll], context, random);
    if (source == kHealthy && !chosen->locality_pools.empty()) {
      const size_t l = chosen->locality_edf.PickAndAdd(
          [chosen](size_t i) { return chosen->locality_weights[i]; });
      return PickFrom(chosen->locality_pools[l], context, random);
    }
    return PickFrom(chosen->pools[source], context, random);
  }

  void OnRequestStart(Host& host) override { host.RequestStarted(); }

  void OnRequestEnd(Host& host, Clock::Duration latency) override {
    host.RequestFinished();
    if (algorithm_ != LbAlgorithm::kLeastResponseTime) return;
    const double sample = static_cast<double>(latency.count());
    // The prior is a plain average of recent samples from all hosts: what "typical" means here.
    ++rtt_samples_;
    const double alpha = rtt_samples_ < 20 ? 1.0 / static_cast<double>(rtt_samples_) : 0.05;
    rtt_prior_ns_ += alpha * (sample - rtt_prior_ns_);
    lb_internal::ObserveRtt(host.mutable_rtt(), sample, clock_->Now(),
                            static_cast<double>(config_.ewma_decay.count()), rtt_prior_ns_);
  }

  LbAlgorithm algorithm() const override { return algorithm_; }

 private:
  enum Source { kHealthy = 0, kDegraded = 1, kAll = 2 };

  // Hosts of one pool; the picker is built on first use and rebuilt while slow start changes
  // effective weights.
  struct PoolState {
    std::vector<Host*> hosts;
    std::unique_ptr<Picker> picker;
    Clock::TimePoint refresh_at = Clock::TimePoint::max();
  };

  struct PriorityState {
    double healthy_load = 0;  // percent of all traffic
    double degraded_load = 0;
    bool panic = false;
    PoolState pools[3];
    // Empty unless locality-weighted choice applies to this priority.
    std::vector<PoolState> locality_pools;
    std::vector<double> locality_weights;
    EdfScheduler<size_t> locality_edf;
  };

  Host* PickFrom(PoolState& pool, const LbContext& context, Random& random) {
    if (pool.hosts.empty()) return nullptr;
    if (pool.picker == nullptr ||
        (pool.refresh_at != Clock::TimePoint::max() && clock_->Now() >= pool.refresh_at)) {
      pool.picker = factory_(MakePool(pool), env_, random);
    }
    return pool.picker->Pick(context, random);
  }

  Pool MakePool(PoolState& state) {
    Pool pool;
    pool.hosts = state.hosts;
    pool.weights.reserve(state.hosts.size());
    state.refresh_at = Clock::TimePoint::max();
    const bool slow_start = config_.slow_start_window.count() > 0 && !IsHashBased(algorithm_);
    const Clock::TimePoint now = slow_start ? clock_->Now() : Clock::TimePoint{};
    for (Host* host : state.hosts) {
      double weight = host->weight();
      const Clock::Duration age = now - host->created_at();
      if (slow_start && age < config_.slow_start_window) {
        const double fraction =
            std::max(0.0, static_cast<double>(age.count()) / config_.slow_start_window.count());
        weight *= std::max(config_.slow_start_min_weight_percent / 100.0,
                           std::pow(fraction, 1.0 / config_.slow_start_aggression));
        // Re-weigh in 32 steps over the window: smooth enough, and rebuilding is O(hosts).
        state.refresh_at = now + std::max<Clock::Duration>(config_.slow_start_window / 32,
                                                           std::chrono::milliseconds(1));
      }
      pool.weights.push_back(weight);
    }
    return pool;
  }

  void Rebuild() {
    seen_epoch_ = hosts_.epoch();
    const double factor = config_.overprovisioning_factor;
    const bool hash_based = IsHashBased(algorithm_);
    std::vector<PriorityState> priorities(hosts_.host_sets().size());
    std::vector<double> healthy_avail(priorities.size()), degraded_avail(priorities.size());
    std::vector<double> up_percent(priorities.size());
    double sum_avail = 0;
    for (size_t p = 0; p < priorities.size(); ++p) {
      const HostSet& set = hosts_.host_sets()[p];
      PriorityState& ps = priorities[p];
      for (Host* host : set.hosts()) {
        switch (host->health()) {
          case HealthStatus::kHealthy:
            ps.pools[kHealthy].hosts.push_back(host);
            break;
          case HealthStatus::kDegraded:
            ps.pools[kDegraded].hosts.push_back(host);
            break;
          case HealthStatus::kUnhealthy:
            break;
          case HealthStatus::kDraining:
            continue;
        }
        ps.pools[kAll].hosts.push_back(host);
      }
      const double total = static_cast<double>(ps.pools[kAll].hosts.size());
      if (total > 0) {
        const double healthy = static_cast<double>(ps.pools[kHealthy].hosts.size());
        const double degraded = static_cast<double>(ps.pools[kDegraded].hosts.size());
        healthy_avail[p] = std::min(100.0, 100.0 * factor * healthy / total);
        degraded_avail[p] = std::min(100.0, 100.0 * factor * degraded / total);
        up_percent[p] = 100.0 * (healthy + degraded) / total;
      }
      sum_avail += healthy_avail[p] + degraded_avail[p];
      if (set.locality_weighted() && !hash_based) BuildLocalities(set, ps);
    }

    if (sum_avail <= 0) {
      // Nothing is up anywhere: the first priority with hosts takes everything, in panic.
      for (PriorityState& ps : priorities) {
        if (ps.pools[kAll].hosts.empty()) continue;
        ps.healthy_load = 100;
        ps.panic = config_.panic_threshold_percent > 0;
        break;
      }
    } else {
      double remaining = 100;
      for (size_t p = 0; p < priorities.size(); ++p) {
        priorities[p].healthy_load = std::min(remaining, healthy_avail[p]);
        remaining -= priorities[p].healthy_load;
      }
      for (size_t p = 0; p < priorities.size(); ++p) {
        priorities[p].degraded_load = std::min(remaining, degraded_avail[p]);
        remaining -= priorities[p].degraded_load;
      }
      if (sum_avail < 100) {
        // Nothing was clipped above, so scaling keeps each priority's relative share.
        for (size_t p = 0; p < priorities.size(); ++p) {
          PriorityState& ps = priorities[p];
          ps.healthy_load *= 100 / sum_avail;
          ps.degraded_load *= 100 / sum_avail;
          ps.panic = up_percent[p] < config_.panic_threshold_percent;
        }
      }
    }
    priorities_ = std::move(priorities);
  }

  void BuildLocalities(const HostSet& set, PriorityState& ps) {
    const double factor = config_.overprovisioning_factor;
    for (const LocalityHosts& locality : set.localities()) {
      PoolState pool;
      size_t total = 0;
      for (Host* host : locality.hosts) {
        if (host->health() == HealthStatus::kDraining) continue;
        ++total;
        if (host->health() == HealthStatus::kHealthy) pool.hosts.push_back(host);
      }
      if (total == 0 || pool.hosts.empty() || locality.weight == 0) continue;
      const double share = std::min(1.0, factor * static_cast<double>(pool.hosts.size()) / total);
      ps.locality_weights.push_back(locality.weight * share);
      ps.locality_edf.Add(ps.locality_pools.size(), ps.locality_weights.back());
      ps.locality_pools.push_back(std::move(pool));
    }
  }

  const LbAlgorithm algorithm_;
  const LbConfig config_;
  const PrioritySet& hosts_;
  Clock* const clock_;
  Random* const random_;
  const PickerFactory factory_;
  double rtt_prior_ns_ = 1e6;  // 1 ms until the first sample; only relative costs matter
  uint64_t rtt_samples_ = 0;
  const lb_internal::PickerEnv env_;
  uint64_t seen_epoch_ = 0;
  std::vector<PriorityState> priorities_;
};

bool IsPrime(uint64_t n) {
  if (n < 2) return false;
  for (uint64_t d = 2; d * d <= n; ++d) {
    if (n % d == 0) return false;
  }
  return true;
}

absl::Status Validate(const LbConfig& c) {
  if (!(c.overprovisioning_factor > 0)) {
    return absl::InvalidArgumentError("overprovisioning_factor: must be > 0");
  }
  if (!(c.panic_threshold_percent >= 0 && c.panic_threshold_percent <= 100)) {
    return absl::InvalidArgumentError("panic_threshold_percent: must be in [0, 100]");
  }
  if (c.slow_start_window.count() < 0) {
    return absl::InvalidArgumentError("slow_start_window: must not be negative");
  }
  if (!(c.slow_start_aggression > 0)) {
    return absl::InvalidArgumentError("slow_start_aggression: must be > 0");
  }
  if (!(c.slow_start_min_weight_percent > 0 && c.slow_start_min_weight_percent <= 100)) {
    return absl::InvalidArgumentError("slow_start_min_weight_percent: must be in (0, 100]");
  }
  if (c.choice_count < 1) return absl::InvalidArgumentError("choice_count: must be >= 1");
  if (!(c.active_request_bias >= 0)) {
    return absl::InvalidArgumentError("active_request_bias: must be >= 0");
  }
  if (c.ewma_decay.count() <= 0) return absl::InvalidArgumentError("ewma_decay: must be > 0");
  constexpr uint64_t kMaxRing = 8 * 1024 * 1024;
  if (c.min_ring_size < 1 || c.min_ring_size > c.max_ring_size || c.max_ring_size > kMaxRing) {
    return absl::InvalidArgumentError(
        "min_ring_size, max_ring_size: need 1 <= min <= max <= 8388608");
  }
  if (c.maglev_table_size > 5000011 || !IsPrime(c.maglev_table_size)) {
    return absl::InvalidArgumentError("maglev_table_size: must be a prime <= 5000011");
  }
  return absl::OkStatus();
}

}  // namespace

std::string_view LbAlgorithmName(LbAlgorithm algorithm) {
  switch (algorithm) {
    case LbAlgorithm::kRandom:
      return "random";
    case LbAlgorithm::kRoundRobin:
      return "round_robin";
    case LbAlgorithm::kWeightedRoundRobin:
      return "weighted_round_robin";
    case LbAlgorithm::kLeastRequest:
      return "least_request";
    case LbAlgorithm::kLeastResponseTime:
      return "least_response_time";
    case LbAlgorithm::kRingHash:
      return "ring_hash";
    case LbAlgorithm::kMaglev:
      return "maglev";
  }
  return "unknown";
}

bool IsHashBased(LbAlgorithm algorithm) {
  return algorithm == LbAlgorithm::kRingHash || algorithm == LbAlgorithm::kMaglev;
}

absl::StatusOr<std::unique_ptr<LoadBalancer>> LoadBalancer::Create(LbAlgorithm algorithm,
                                                                   const LbConfig& config,
                                                                   const PrioritySet& hosts,
                                                                   Clock* clock, Random* random) {
  RETURN_IF_ERROR(Validate(config));
  if (clock == nullptr || random == nullptr) {
    return absl::InvalidArgumentError("clock and random are required");
  }
  PickerFactory factory = nullptr;
  switch (algorithm) {
    case LbAlgorithm::kRandom:
      factory = lb_internal::NewRandomPicker;
      break;
    case LbAlgorithm::kRoundRobin:
      factory = lb_internal::NewRoundRobinPicker;
      break;
    case LbAlgorithm::kWeightedRoundRobin:
      factory = lb_internal::NewWeightedRoundRobinPicker;
      break;
    case LbAlgorithm::kLeastRequest:
      factory = lb_internal::NewLeastRequestPicker;
      break;
    case LbAlgorithm::kLeastResponseTime:
      factory = lb_internal::NewLeastResponseTimePicker;
      break;
    case LbAlgorithm::kRingHash:
      factory = lb_internal::NewRingHashPicker;
      break;
    case LbAlgorithm::kMaglev:
      factory = lb_internal::NewMaglevPicker;
      break;
  }
  if (factory == nullptr) return absl::InvalidArgumentError("unknown load balancing algorithm");
  return std::unique_ptr<LoadBalancer>(
      new PriorityLoadBalancer(algorithm, config, hosts, clock, random, factory));
}

}  // namespace weft::upstream
