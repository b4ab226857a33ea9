// Load balancing: which upstream host gets the next request.
//
// One interface, LoadBalancer, built by LoadBalancer::Create for one of the algorithms below.
// Every balancer applies the same cross-cutting rules before its algorithm runs (priority_lb.cc):
// priority failover with an overprovisioning factor, locality-weighted choice, panic mode and
// slow start, with Envoy's defaults.
//
// Threading: a balancer belongs to exactly one worker. It is created, used and destroyed on that
// worker together with the PrioritySet it reads; nothing here locks or uses atomics. Workers
// reach the same decisions for hash-based algorithms because the hashes are stable, not because
// they share state.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "data-plane/upstream/host.h"

namespace weft::upstream {

/// A source of uniformly distributed 64-bit values. Balancers take one so tests can seed it.
class Random {
 public:
  virtual ~Random() = default;
  virtual uint64_t Next() = 0;
  /// Uniform in [0, n); n must be > 0. Lemire's multiply-shift: no division, negligible bias.
  uint64_t Uniform(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(Next()) * n) >> 64);
  }
  /// Uniform in [0, 1).
  double UniformDouble() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
};

/// xoshiro256** seeded through splitmix64: fast, good quality, not cryptographic.
class DefaultRandom final : public Random {
 public:
  explicit DefaultRandom(uint64_t seed);
  uint64_t Next() override;

 private:
  uint64_t s_[4];
};

enum class LbAlgorithm {
  kRandom,
  /// Plain rotation when all effective weights are equal, weighted EDF otherwise (as Envoy).
  kRoundRobin,
  /// Earliest-deadline-first over weights: deterministic and smooth.
  kWeightedRoundRobin,
  /// Power of d choices on active requests; EDF on weight / (active + 1)^bias if weights differ.
  kLeastRequest,
  /// Peak-EWMA, power of two choices on cost = rtt_ewma × (active + 1) / weight.
  kLeastResponseTime,
  /// Ketama-style consistent hash ring.
  kRingHash,
  /// Maglev lookup table.
  kMaglev,
};

std::string_view LbAlgorithmName(LbAlgorithm algorithm);
bool IsHashBased(LbAlgorithm algorithm);

struct LbConfig {
  // --- Cross-cutting (every algorithm) ---
  /// A priority with h% healthy hosts takes min(100, h × factor)% of the traffic; the rest
  /// spills to the next priority.
  double overprovisioning_factor = 1.4;
  /// Below this healthy percentage a priority ignores health and balances over all its hosts
  /// (only when the lower priorities cannot absorb the load either). 0 disables panic mode.
  double panic_threshold_percent = 50;
  /// Slow start: a host younger than the window gets weight × max(min_weight_percent / 100,
  /// (age / window)^(1 / aggression)). Zero window disables it. Not applied by ring hash and
  /// Maglev, whose tables would have to be rebuilt (and keys remapped) as weights ramp.
  std::chrono::nanoseconds slow_start_window{0};
  double slow_start_aggression = 1.0;
  double slow_start_min_weight_percent = 10;

  // --- Least request ---
  uint32_t choice_count = 2;
  double active_request_bias = 1.0;

  // --- Least response time (peak EWMA) ---
  /// Time constant of the EWMA: a sample's influence falls to 1/e after this long.
  std::chrono::nanoseconds ewma_decay{std::chrono::seconds(10)};

  // --- Ring hash ---
  uint64_t min_ring_size = 1024;
  uint64_t max_ring_size = 8 * 1024 * 1024;

  // --- Maglev ---
  /// Must be prime so every permutation visits every slot.
  uint64_t maglev_table_size = 65537;
};

/// Per-request input to a pick.
struct LbContext {
  /// For ring hash and Maglev: the request's hash (e.g. of a header). Any 64-bit value works;
  /// the balancer mixes it, so raw ids are fine. Without it they pick at random.
  std::optional<uint64_t> hash_key;
  /// Overrides the balancer's random source for this pick; null uses the balancer's own.
  Random* random = nullptr;
  /// Retries: the n-th other pick for the same request. Ring hash and Maglev move to another
  /// host for the same key (the next point on the ring, a re-mixed table slot, as Envoy does
  /// for its previous-hosts retry predicate); the other balancers just pick again.
  uint32_t attempt = 0;
};

/// Chooses hosts for one cluster on one worker. See the file comment for threading.
class LoadBalancer {
 public:
  virtual ~LoadBalancer() = default;

  /// Builds a balancer over `hosts`. `clock` and `random` must outlive it; `hosts` too, and it
  /// may change between calls (the balancer rebuilds lazily when hosts.epoch() moves).
  /// Fails on an invalid config (e.g. bias < 0, non-prime Maglev table).
  static absl::StatusOr<std::unique_ptr<LoadBalancer>> Create(LbAlgorithm algorithm,
                                                              const LbConfig& config,
                                                              const PrioritySet& hosts,
                                                              Clock* clock, Random* random);

  /// The host for the next request, or null when the cluster has no eligible host. The pointer
  /// stays valid while the PrioritySet holds the host.
  virtual Host* ChooseHost(const LbContext& context) = 0;

  /// Call when a request is sent to `host` (the one ChooseHost returned) ...
  virtual void OnRequestStart(Host& host) = 0;
  /// ... and when it finished, with the time from send to response (feeds peak EWMA). Each
  /// start needs exactly one end; hold a HostPtr if the host may be removed meanwhile.
  virtual void OnRequestEnd(Host& host, Clock::Duration latency) = 0;

  virtual LbAlgorithm algorithm() const = 0;
};

}  // namespace weft::upstream
