// Circuit breakers and the retry budget of one cluster (and routing priority), shared by every
// worker, plus the jittered exponential back-off between retries.
//
// Envoy's semantics (cluster.circuit_breakers.thresholds): limits on open connections, pending
// requests (waiting for a connection), active requests and active retries, with defaults
// 1024 / 1024 / 1024 / 3. A retry_budget replaces max_retries with a share of what is active:
// retries may be at most budget_percent (20 %) of active plus pending requests, and never fewer
// than min_retry_concurrency (3). A request that would cross a limit is not sent: the router
// answers 503 with flag UO (or, for a retry, gives up retrying).
//
// Threading: counters are atomics because they are the cluster's, not a worker's (a limit of
// 1024 requests per cluster must not become 1024 per worker). TryAcquire is a compare-exchange
// loop, so a limit is never overshot even when workers race for the last unit. The manager is
// immutable apart from its counters and is replaced with a new one (and fresh counters carried
// over) only when the limits change.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>

#include "absl/status/statusor.h"
#include "data-plane/upstream/lb/load_balancer.h"
#include "envoy/config/cluster/v3/circuit_breaker.pb.h"

namespace weft::upstream {

// One limited quantity.
class Resource {
 public:
  explicit Resource(uint64_t max) : max_(max) {}
  // Takes one unit if that stays within the limit.
  bool TryAcquire() { return TryAcquireUpTo(max_); }
  // Takes one unit if that stays within `limit` (a limit computed per attempt: the budget).
  bool TryAcquireUpTo(uint64_t limit);
  void Release();
  uint64_t current() const { return current_.load(std::memory_order_relaxed); }
  uint64_t max() const { return max_; }

 private:
  const uint64_t max_;
  std::atomic<uint64_t> current_{0};
};

struct ResourceLimits {
  uint64_t max_connections = 1024;
  uint64_t max_pending_requests = 1024;
  uint64_t max_requests = 1024;
  uint64_t max_retries = 3;
  struct RetryBudget {
    double budget_percent = 20;
    uint64_t min_retry_concurrency = 3;
    bool operator==(const RetryBudget&) const = default;
  };
  std::optional<RetryBudget> retry_budget;
  // The cluster manager keeps a cluster's counters while its limits are unchanged.
  bool operator==(const ResourceLimits&) const = default;

  // The DEFAULT-priority thresholds of `breakers` over Envoy's defaults. HIGH-priority
  // thresholds, per-host thresholds, track_remaining and max_connection_pools are refused
  // (naming the field) until the router has priorities and per-host limits.
  static absl::StatusOr<ResourceLimits> FromProto(
      const envoy::config::cluster::v3::CircuitBreakers& breakers);
};

class ResourceManager {
 public:
  explicit ResourceManager(const ResourceLimits& limits);

  Resource& connections() { return connections_; }
  Resource& pending_requests() { return pending_; }
  Resource& requests() { return requests_; }
  // A retry may start: within max_retries, or, with a budget, within the budget's share of the
  // active and pending requests. Release with retries().Release() when the retry ends.
  bool TryAcquireRetry();
  Resource& retries() { return retries_; }
  const ResourceLimits& limits() const { return limits_; }

 private:
  ResourceLimits limits_;
  Resource connections_;
  Resource pending_;
  Resource requests_;
  Resource retries_;  // its max is unused with a budget (the budget is computed per attempt)
};

// Envoy's JitteredExponentialBackOff: the n-th retry waits a uniformly random time in
// [0, min(base × 2^n, max)) — full jitter, so retries of many clients do not synchronise.
class BackOff {
 public:
  BackOff(std::chrono::milliseconds base, std::chrono::milliseconds max, Random* random)
      : base_(base), max_(max), random_(random) {}
  std::chrono::milliseconds Next();
  void Reset() { attempt_ = 0; }

 private:
  std::chrono::milliseconds base_;
  std::chrono::milliseconds max_;
  Random* random_;
  uint32_t attempt_ = 0;
};

}  // namespace weft::upstream
