#include "data-plane/upstream/resource_manager.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/validation.h"
#include "common/xds/failover_check.h"

namespace weft::upstream {

bool Resource::TryAcquireUpTo(uint64_t limit) {
  uint64_t now = current_.load(std::memory_order_relaxed);
  do {
    if (now >= limit) return false;
  } while (!current_.compare_exchange_weak(now, now + 1, std::memory_order_relaxed));
  return true;
}

void Resource::Release() {
  uint64_t now = current_.load(std::memory_order_relaxed);
  do {
    if (now == 0) return;  // an unbalanced release must not wrap around
  } while (!current_.compare_exchange_weak(now, now - 1, std::memory_order_relaxed));
}

absl::StatusOr<ResourceLimits> ResourceLimits::FromProto(
    const envoy::config::cluster::v3::CircuitBreakers& breakers) {
  ValidationErrors errors;
  xds::CheckCircuitBreakers(breakers, &errors);
  if (!errors.ok()) return errors.ToStatus();
  ResourceLimits out;
  for (const auto& t : breakers.thresholds()) {
    if (t.has_max_connections()) out.max_connections = t.max_connections().value();
    if (t.has_max_pending_requests()) out.max_pending_requests = t.max_pending_requests().value();
    if (t.has_max_requests()) out.max_requests = t.max_requests().value();
    if (t.has_max_retries()) out.max_retries = t.max_retries().value();
    if (t.has_retry_budget()) {
      RetryBudget b;
      if (t.retry_budget().has_budget_percent()) {
        b.budget_percent = t.retry_budget().budget_percent().value();
      }
      if (t.retry_budget().has_min_retry_concurrency()) {
        b.min_retry_concurrency = t.retry_budget().min_retry_concurrency().value();
      }
      out.retry_budget = b;
    }
  }
  return out;
}

ResourceManager::ResourceManager(const ResourceLimits& limits)
    : limits_(limits),
      connections_(limits.max_connections),
      pending_(limits.max_pending_requests),
      requests_(limits.max_requests),
      retries_(limits.max_retries) {}

bool ResourceManager::TryAcquireRetry() {
  if (!limits_.retry_budget) return retries_.TryAcquire();
  const auto& b = *limits_.retry_budget;
  const double active = static_cast<double>(requests_.current() + pending_.current());
  const auto share = static_cast<uint64_t>(std::floor(active * b.budget_percent / 100.0));
  return retries_.TryAcquireUpTo(std::max(b.min_retry_concurrency, share));
}

std::chrono::milliseconds BackOff::Next() {
  // base × 2^attempt, without overflowing for a long series of attempts.
  const uint32_t shift = std::min<uint32_t>(attempt_, 30);
  ++attempt_;
  const int64_t ceiling =
      std::min<int64_t>(base_.count() << shift, std::max(max_.count(), base_.count()));
  if (ceiling <= 0) return std::chrono::milliseconds(0);
  return std::chrono::milliseconds(
      static_cast<int64_t>(random_->Uniform(static_cast<uint64_t>(ceiling))));
}

}  // namespace weft::upstream
