// Circuit breakers, the retry budget and the back-off between retries.
#include <catch2/catch.hpp>

#include <thread>
#include <vector>

#include "data-plane/upstream/lb/load_balancer.h"
#include "data-plane/upstream/resource_manager.h"

namespace weft::upstream {
namespace {

using std::chrono::milliseconds;

TEST_CASE("circuit breakers: Envoy's defaults, and the proto's DEFAULT thresholds over them") {
  envoy::config::cluster::v3::CircuitBreakers cb;
  auto limits = ResourceLimits::FromProto(cb);
  REQUIRE(limits.ok());
  CHECK(limits->max_connections == 1024);
  CHECK(limits->max_pending_requests == 1024);
  CHECK(limits->max_requests == 1024);
  CHECK(limits->max_retries == 3);
  CHECK_FALSE(limits->retry_budget.has_value());

  auto* t = cb.add_thresholds();
  t->mutable_max_requests()->set_value(2);
  t->mutable_retry_budget();
  limits = ResourceLimits::FromProto(cb);
  REQUIRE(limits.ok());
  CHECK(limits->max_requests == 2);
  REQUIRE(limits->retry_budget.has_value());
  CHECK(limits->retry_budget->budget_percent == 20);
  CHECK(limits->retry_budget->min_retry_concurrency == 3);

  // What the router cannot honour is refused with its path, not ignored.
  t->set_priority(envoy::config::core::v3::HIGH);
  CHECK(ResourceLimits::FromProto(cb).status().message().find("thresholds[0].priority") == 0);
  t->set_priority(envoy::config::core::v3::DEFAULT);
  t->set_track_remaining(true);
  CHECK(ResourceLimits::FromProto(cb).status().message().find("thresholds[0].track_remaining") ==
        0);
  t->set_track_remaining(false);
  cb.add_per_host_thresholds();
  CHECK_FALSE(ResourceLimits::FromProto(cb).ok());
}

TEST_CASE("circuit breakers: a resource never goes past its limit and releases are balanced") {
  Resource r(2);
  CHECK(r.TryAcquire());
  CHECK(r.TryAcquire());
  CHECK_FALSE(r.TryAcquire());
  r.Release();
  CHECK(r.TryAcquire());
  r.Release();
  r.Release();
  r.Release();  // one too many: stays at zero
  CHECK(r.current() == 0);
}

TEST_CASE("circuit breakers: workers racing for the last units never overshoot") {
  Resource r(1000);
  std::atomic<int> won{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      for (int j = 0; j < 1000; ++j) {
        if (r.TryAcquire()) won.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(won.load() == 1000);
  CHECK(r.current() == 1000);
}

TEST_CASE("retry budget: a share of active and pending requests, at least the minimum") {
  ResourceLimits limits;
  limits.retry_budget = ResourceLimits::RetryBudget{20, 3};
  ResourceManager rm(limits);
  // Nothing active: the minimum concurrency still allows 3.
  for (int i = 0; i < 3; ++i) CHECK(rm.TryAcquireRetry());
  CHECK_FALSE(rm.TryAcquireRetry());
  // 40 active + 10 pending: 20 % is 10 concurrent retries.
  for (int i = 0; i < 40; ++i) REQUIRE(rm.requests().TryAcquire());
  for (int i = 0; i < 10; ++i) REQUIRE(rm.pending_requests().TryAcquire());
  int more = 0;
  while (rm.TryAcquireRetry()) ++more;
  CHECK(more == 7);
  CHECK(rm.retries().current() == 10);

  ResourceManager fixed(ResourceLimits{});  // no budget: max_retries 3
  for (int i = 0; i < 3; ++i) CHECK(fixed.TryAcquireRetry());
  CHECK_FALSE(fixed.TryAcquireRetry());
}

TEST_CASE("back-off: full jitter under a ceiling that doubles up to the maximum") {
  DefaultRandom random(7);
  BackOff b(milliseconds(25), milliseconds(250), &random);
  const int64_t ceilings[] = {25, 50, 100, 200, 250, 250, 250};
  for (int64_t ceiling : ceilings) {
    int64_t seen_max = 0;
    // Many draws for the same attempt: every one within [0, ceiling), and spread over it.
    for (int i = 0; i < 200; ++i) {
      BackOff probe = b;
      int64_t v = probe.Next().count();
      REQUIRE(v >= 0);
      REQUIRE(v < ceiling);
      seen_max = std::max(seen_max, v);
    }
    CHECK(seen_max >= ceiling * 3 / 4);
    b.Next();
  }
  b.Reset();
  CHECK(b.Next().count() < 25);
}

}  // namespace
}  // namespace weft::upstream
