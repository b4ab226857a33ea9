#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/clock.h"
#include "data-plane/upstream/host.h"
#include "data-plane/upstream/lb/load_balancer.h"

namespace weft::upstream {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

HostPtr MakeHost(int i, uint32_t weight = 1, uint32_t priority = 0, Locality locality = {},
                 Clock::TimePoint created_at = {}) {
  Host::Options o;
  o.address = "10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256);
  o.port = 8080;
  o.weight = weight;
  o.priority = priority;
  o.locality = std::move(locality);
  o.created_at = created_at;
  return std::make_shared<Host>(std::move(o));
}

std::vector<HostPtr> MakeHosts(const std::vector<uint32_t>& weights, uint32_t priority = 0,
                               int first_id = 0) {
  std::vector<HostPtr> hosts;
  for (size_t i = 0; i < weights.size(); ++i) {
    hosts.push_back(MakeHost(first_id + static_cast<int>(i), weights[i], priority));
  }
  return hosts;
}

struct Env {
  FakeClock clock;
  DefaultRandom random{42};
  PrioritySet set;

  std::unique_ptr<LoadBalancer> Lb(LbAlgorithm algorithm, const LbConfig& config = {}) {
    auto lb = LoadBalancer::Create(algorithm, config, set, &clock, &random);
    REQUIRE(lb.ok());
    return std::move(*lb);
  }
};

// Picks n times; hash-based algorithms get keys 0..n-1.
std::map<const Host*, int> Count(LoadBalancer& lb, int n) {
  std::map<const Host*, int> counts;
  const bool hashed = IsHashBased(lb.algorithm());
  for (int i = 0; i < n; ++i) {
    LbContext context;
    if (hashed) context.hash_key = static_cast<uint64_t>(i);
    Host* host = lb.ChooseHost(context);
    REQUIRE(host != nullptr);
    ++counts[host];
  }
  return counts;
}

double Share(const std::map<const Host*, int>& counts, const HostPtr& host, int n) {
  auto it = counts.find(host.get());
  return it == counts.end() ? 0.0 : static_cast<double>(it->second) / n;
}

TEST_CASE("Every weighted algorithm splits traffic in proportion to weights {1,2,3,4}") {
  for (LbAlgorithm algorithm :
       {LbAlgorithm::kRandom, LbAlgorithm::kRoundRobin, LbAlgorithm::kWeightedRoundRobin,
        LbAlgorithm::kLeastRequest, LbAlgorithm::kRingHash, LbAlgorithm::kMaglev}) {
    DYNAMIC_SECTION(LbAlgorithmName(algorithm)) {
      Env env;
      auto hosts = MakeHosts({1, 2, 3, 4});
      env.set.Update(hosts);
      LbConfig config;
      // The default 1024-point ring has ~128 points per unit of weight: each host's share is
      // then only good to a few percent. 16k points make the ring's granularity negligible.
      config.min_ring_size = 16384;
      auto lb = env.Lb(algorithm, config);
      constexpr int kPicks = 10000;
      auto counts = Count(*lb, kPicks);
      for (size_t i = 0; i < hosts.size(); ++i) {
        CHECK(Share(counts, hosts[i], kPicks) == Approx((i + 1) / 10.0).margin(0.02));
      }
    }
  }
}

TEST_CASE("Least response time spreads evenly over equal hosts without samples") {
  Env env;
  auto hosts = MakeHosts({1, 1, 1, 1});
  env.set.Update(hosts);
  auto lb = env.Lb(LbAlgorithm::kLeastResponseTime);
  auto counts = Count(*lb, 10000);
  for (const HostPtr& h : hosts) CHECK(Share(counts, h, 10000) == Approx(0.25).margin(0.02));
}

TEST_CASE("Round robin with equal weights is exactly even and cyclic") {
  Env env;
  auto hosts = MakeHosts({1, 1, 1, 1, 1});
  env.set.Update(hosts);
  auto lb = env.Lb(LbAlgorithm::kRoundRobin);
  std::vector<Host*> first;
  for (int i = 0; i < 5; ++i) first.push_back(lb->ChooseHost({}));
  auto counts = Count(*lb, 9995);
  for (const HostPtr& h : hosts) CHECK(counts[h.get()] == 1999);
  // The cycle visits every host once, and repeats.
  CHECK(std::set<Host*>(first.begin(), first.end()).size() == 5);
  for (int i = 0; i < 5; ++i) CHECK(lb->ChooseHost({}) == first[i]);
}

TEST_CASE("Weighted round robin (EDF) is deterministic and smooth") {
  Env env;
  auto hosts = MakeHosts({5, 1, 1});
  env.set.Update(hosts);
  auto lb = env.Lb(LbAlgorithm::kWeightedRoundRobin);
  std::vector<Host*> sequence;
  for (int i = 0; i < 700; ++i) sequence.push_back(lb->ChooseHost({}));

  // Every prefix stays within one pick of the ideal share: no bursts.
  std::map<Host*, int> counts;
  const double weights[] = {5, 1, 1};
  int longest_run = 0, run = 0;
  for (size_t k = 0; k < sequence.size(); ++k) {
    ++counts[sequence[k]];
    run = (k > 0 && sequence[k] == sequence[k - 1]) ? run + 1 : 1;
    longest_run = std::max(longest_run, run);
    for (size_t i = 0; i < hosts.size(); ++i) {
      const double ideal = static_cast<double>(k + 1) * weights[i] / 7.0;
      CHECK(std::abs(counts[hosts[i].get()] - ideal) <= 1.0);
    }
  }
  CHECK(counts[hosts[0].get()] == 500);
  CHECK(counts[hosts[1].get()] == 100);
  // Smooth: the heavy host is interleaved with the light ones, not sent five in a row.
  CHECK(longest_run <= 3);

  // Deterministic: a second balancer (another worker) produces the same sequence.
  DefaultRandom other_random(7);
  auto other = LoadBalancer::Create(LbAlgorithm::kWeightedRoundRobin, {}, env.set, &env.clock,
                                    &other_random);
  REQUIRE(other.ok());
  for (int i = 0; i < 70; ++i) CHECK((*other)->ChooseHost({}) == sequence[i]);
}

TEST_CASE("Least request prefers idle hosts") {
  SECTION("equal weights: power of two choices") {
    Env env;
    auto hosts = MakeHosts({1, 1, 1, 1});
    env.set.Update(hosts);
    for (int i = 1; i < 4; ++i) hosts[i]->set_active_requests(10);
    auto lb = env.Lb(LbAlgorithm::kLeastRequest);
    auto counts = Count(*lb, 10000);
    // The idle host wins unless both samples miss it: 1 - (3/4)^2.
    CHECK(Share(counts, hosts[0], 10000) == Approx(1 - 0.75 * 0.75).margin(0.02));
  }
  SECTION("equal weights: more choices, stronger preference") {
    Env env;
    auto hosts = MakeHosts({1, 1, 1, 1});
    env.set.Update(hosts);
    for (int i = 1; i < 4; ++i) hosts[i]->set_active_requests(10);
    LbConfig config;
    config.choice_count = 5;
    auto lb = env.Lb(LbAlgorithm::kLeastRequest, config);
    auto counts = Count(*lb, 10000);
    CHECK(Share(counts, hosts[0], 10000) == Approx(1 - std::pow(0.75, 5)).margin(0.02));
  }
  SECTION("unequal weights: weight / (active + 1)") {
    Env env;
    auto hosts = MakeHosts({1, 2});
    env.set.Update(hosts);
    hosts[1]->set_active_requests(3);  // 2 / 4 = 0.5 against 1 / 1
    auto lb = env.Lb(LbAlgorithm::kLeastRequest);
    auto counts = Count(*lb, 9000);
    CHECK(Share(counts, hosts[0], 9000) == Approx(2.0 / 3).margin(0.02));
  }
  SECTION("active counts follow the request hooks") {
    Env env;
    auto hosts = MakeHosts({1, 1});
    env.set.Update(hosts);
    auto lb = env.Lb(LbAlgorithm::kLeastRequest);
    lb->OnRequestStart(*hosts[0]);
    lb->OnRequestStart(*hosts[0]);
    CHECK(hosts[0]->active_requests() == 2);
    lb->OnRequestEnd(*hosts[0], milliseconds(1));
    CHECK(hosts[0]->active_requests() == 1);
  }
}

TEST_CASE("Peak EWMA moves traffic away from a slow host and probes it again later") {
  Env env;
  auto hosts = MakeHosts({1, 1, 1});
  env.set.Update(hosts);
  auto lb = env.Lb(LbAlgorithm::kLeastResponseTime);
  auto run = [&](int n) {
    std::map<const Host*, int> counts;
    for (int i = 0; i < n; ++i) {
      Host* h = lb->ChooseHost({});
      REQUIRE(h != nullptr);
      ++counts[h];
      lb->OnRequestStart(*h);
      env.clock.Advance(milliseconds(1));
      lb->OnRequestEnd(*h, h == hosts[2].get() ? milliseconds(100) : milliseconds(10));
    }
    return counts;
  };
  auto counts = run(10000);
  CHECK(Share(counts, hosts[2], 10000) < 0.05);
  CHECK(Share(counts, hosts[2], 10000) > 0);  // still probed now and then
  CHECK(Share(counts, hosts[0], 10000) == Approx(Share(counts, hosts[1], 10000)).margin(0.05));

  // The slow host recovers: its old samples fade, it gets probed and earns its share back.
  env.clock.Advance(seconds(60));
  auto again = 0;
  for (int i = 0; i < 3000; ++i) {
    Host* h = lb->ChooseHost({});
    again += h == hosts[2].get();
    lb->OnRequestStart(*h);
    env.clock.Advance(milliseconds(1));
    lb->OnRequestEnd(*h, milliseconds(10));
  }
  CHECK(again / 3000.0 == Approx(1.0 / 3).margin(0.05));
}

TEST_CASE("Peak EWMA counts in-flight requests") {
  Env env;
  auto hosts = MakeHosts({1, 1});
  env.set.Update(hosts);
  auto lb = env.Lb(LbAlgorithm::kLeastResponseTime);
  for (auto& h : hosts) lb->OnRequestEnd(*h, milliseconds(10));
  hosts[0]->set_active_requests(5);
  for (int i = 0; i < 100; ++i) CHECK(lb->ChooseHost({}) == hosts[1].get());
}

std::map<uint64_t, const Host*> Mapping(LoadBalancer& lb, int keys) {
  std::map<uint64_t, const Host*> m;
  for (int k = 0; k < keys; ++k) {
    LbContext context;
    context.hash_key = static_cast<uint64_t>(k);
    m[k] = lb.ChooseHost(context);
  }
  return m;
}

TEST_CASE("Hash-based balancers are consistent") {
  for (LbAlgorithm algorithm : {LbAlgorithm::kRingHash, LbAlgorithm::kMaglev}) {
    DYNAMIC_SECTION(LbAlgorithmName(algorithm)) {
      constexpr int kHosts = 10;
      constexpr int kKeys = 20000;
      Env env;
      auto hosts = MakeHosts(std::vector<uint32_t>(kHosts, 1));
      env.set.Update(hosts);
      auto lb = env.Lb(algorithm);
      const auto before = Mapping(*lb, kKeys);
      // Same key, same host: again, and on another worker with its own random source and its
      // own host objects for the same addresses.
      CHECK(Mapping(*lb, kKeys) == before);
      Env other;
      auto other_hosts = MakeHosts(std::vector<uint32_t>(kHosts, 1));
      other.set.Update(other_hosts);
      other.random = DefaultRandom(99);
      auto other_lb = other.Lb(algorithm);
      for (int k = 0; k < kKeys; k += 97) {
        LbContext c;
        c.hash_key = k;
        CHECK(other_lb->ChooseHost(c)->hash_key() == before.at(k)->hash_key());
      }

      // Remove one host: its keys move, (almost) nobody else's.
      const Host* removed = hosts[3].get();
      auto fewer = hosts;
      fewer.erase(fewer.begin() + 3);
      env.set.Update(fewer);
      const auto after = Mapping(*lb, kKeys);
      int moved = 0, moved_elsewhere = 0;
      for (const auto& [key, host] : before) {
        CHECK(after.at(key) != removed);
        if (after.at(key) != host) {
          ++moved;
          if (host != removed) ++moved_elsewhere;
        }
      }
      const double fraction = static_cast<double>(moved) / kKeys;
      if (algorithm == LbAlgorithm::kRingHash) {
        CHECK(moved_elsewhere == 0);  // a ring only hands the removed host's arcs to neighbours
        CHECK(fraction == Approx(1.0 / kHosts).margin(0.03));
      } else {
        // Maglev trades a little extra disruption for its O(1) lookup.
        CHECK(fraction <= 1.0 / kHosts + 0.03);
      }
    }
  }
}

TEST_CASE("Priority failover with overprovisioning 1.4") {
  Env env;
  auto p0 = MakeHosts({1, 1, 1, 1}, 0, 0);
  auto p1 = MakeHosts({1, 1, 1, 1}, 1, 10);
  auto all = p0;
  all.insert(all.end(), p1.begin(), p1.end());
  env.set.Update(all);
  auto lb = env.Lb(LbAlgorithm::kRoundRobin);
  auto p0_share = [&](int n) {
    auto counts = Count(*lb, n);
    int in_p0 = 0;
    for (const auto& [host, c] : counts) {
      if (host->priority() == 0) in_p0 += c;
      CHECK(host->health() == HealthStatus::kHealthy);
    }
    return static_cast<double>(in_p0) / n;
  };
  CHECK(p0_share(1000) == 1.0);
  env.set.SetHealth(*p0[0], HealthStatus::kUnhealthy);
  // 75% healthy × 1.4 > 100: P0 still takes everything.
  CHECK(p0_share(1000) == 1.0);
  env.set.SetHealth(*p0[1], HealthStatus::kUnhealthy);
  // 50% × 1.4 = 70% stays, 30% spills to P1.
  CHECK(p0_share(10000) == Approx(0.7).margin(0.02));
  for (auto& h : p0) env.set.SetHealth(*h, HealthStatus::kUnhealthy);
  CHECK(p0_share(1000) == 0.0);
}

TEST_CASE("Degraded hosts take only what healthy ones cannot") {
  Env env;
  auto hosts = MakeHosts({1, 1, 1, 1});
  env.set.Update(hosts);
  for (int i = 1; i < 4; ++i) env.set.SetHealth(*hosts[i], HealthStatus::kDegraded);
  auto lb = env.Lb(LbAlgorithm::kRandom);
  auto counts = Count(*lb, 10000);
  // Healthy: 25% × 1.4 = 35%; the degraded hosts carry the other 65%.
  CHECK(Share(counts, hosts[0], 10000) == Approx(0.35).margin(0.02));
}

TEST_CASE("Panic mode balances across all hosts when too few are healthy") {
  Env env;
  auto hosts = MakeHosts(std::vector<uint32_t>(10, 1));
  env.set.Update(hosts);
  auto lb = env.Lb(LbAlgorithm::kRoundRobin);
  auto unhealthy_share = [&] {
    auto counts = Count(*lb, 10000);
    int n = 0;
    for (const auto& [host, c] : counts) n += host->health() != HealthStatus::kHealthy ? c : 0;
    return n / 10000.0;
  };
  for (int i = 0; i < 5; ++i) env.set.SetHealth(*hosts[i], HealthStatus::kUnhealthy);
  CHECK(unhealthy_share() == 0.0);  // 50% healthy is not below the 50% threshold
  env.set.SetHealth(*hosts[5], HealthStatus::kUnhealthy);
  CHECK(unhealthy_share() == Approx(0.6).margin(0.02));  // panic: everyone, health ignored

  SECTION("a lower priority that can absorb the load prevents panic") {
    auto backup = MakeHosts({1, 1}, 1, 50);
    auto all = hosts;
    all.insert(all.end(), backup.begin(), backup.end());
    env.set.Update(all);
    CHECK(unhealthy_share() == 0.0);
  }
  SECTION("threshold 0 disables panic") {
    LbConfig config;
    config.panic_threshold_percent = 0;
    lb = env.Lb(LbAlgorithm::kRoundRobin, config);
    CHECK(unhealthy_share() == 0.0);
  }
  SECTION("draining hosts are never picked, even in panic") {
    env.set.SetHealth(*hosts[9], HealthStatus::kDraining);
    auto counts = Count(*lb, 1000);
    CHECK(counts.count(hosts[9].get()) == 0);
  }
}

TEST_CASE("Locality weights × healthy share split traffic between localities") {
  Env env;
  const Locality a{"eu", "eu-a", ""}, b{"eu", "eu-b", ""};
  std::vector<HostPtr> hosts;
  for (int i = 0; i < 4; ++i) hosts.push_back(MakeHost(i, 1, 0, i < 2 ? a : b));
  env.set.Update(hosts, {{a, 1}, {b, 3}});
  auto lb = env.Lb(LbAlgorithm::kRoundRobin);
  auto share_a = [&] {
    auto counts = Count(*lb, 10000);
    return Share(counts, hosts[0], 10000) + Share(counts, hosts[1], 10000);
  };
  CHECK(share_a() == Approx(0.25).margin(0.02));
  // Half of b is down: its weight becomes 3 × min(1, 1.4 × 0.5) = 2.1.
  env.set.SetHealth(*hosts[3], HealthStatus::kUnhealthy);
  CHECK(share_a() == Approx(1 / 3.1).margin(0.02));

  SECTION("hash-based balancers ignore localities") {
    env.set.SetHealth(*hosts[3], HealthStatus::kHealthy);
    auto maglev = env.Lb(LbAlgorithm::kMaglev);
    auto counts = Count(*maglev, 10000);
    CHECK(Share(counts, hosts[0], 10000) + Share(counts, hosts[1], 10000) ==
          Approx(0.5).margin(0.02));
  }
}

TEST_CASE("Slow start ramps a new host's traffic over the window") {
  for (LbAlgorithm algorithm :
       {LbAlgorithm::kRoundRobin, LbAlgorithm::kRandom, LbAlgorithm::kLeastRequest}) {
    DYNAMIC_SECTION(LbAlgorithmName(algorithm)) {
      Env env;
      auto hosts = MakeHosts({1, 1}, 0, 0);
      hosts.push_back(MakeHost(9, 1, 0, {}, env.clock.Now()));
      env.set.Update(hosts);
      LbConfig config;
      config.slow_start_window = seconds(60);
      auto lb = env.Lb(algorithm, config);
      auto new_share = [&] { return Share(Count(*lb, 6000), hosts[2], 6000); };
      // Floor of 10%: 0.1 / 2.1.
      CHECK(new_share() == Approx(0.1 / 2.1).margin(0.02));
      env.clock.Advance(seconds(30));
      CHECK(new_share() == Approx(0.5 / 2.5).margin(0.02));
      env.clock.Advance(seconds(30));
      CHECK(new_share() == Approx(1.0 / 3).margin(0.02));
    }
  }
  SECTION("aggression > 1 ramps faster early on") {
    Env env;
    auto hosts = MakeHosts({1, 1}, 0, 0);
    hosts.push_back(MakeHost(9, 1, 0, {}, env.clock.Now()));
    env.set.Update(hosts);
    LbConfig config;
    config.slow_start_window = seconds(60);
    config.slow_start_aggression = 2.0;
    auto lb = env.Lb(LbAlgorithm::kRoundRobin, config);
    env.clock.Advance(seconds(15));
    // (15/60)^(1/2) = 0.5.
    CHECK(Share(Count(*lb, 5000), hosts[2], 5000) == Approx(0.5 / 2.5).margin(0.02));
  }
}

TEST_CASE("Membership changes are picked up without callbacks") {
  Env env;
  auto hosts = MakeHosts({1, 1, 1});
  env.set.Update(hosts);
  auto lb = env.Lb(LbAlgorithm::kLeastRequest);
  Count(*lb, 100);
  env.set.Update({hosts[0]});
  for (int i = 0; i < 100; ++i) CHECK(lb->ChooseHost({}) == hosts[0].get());
  env.set.Update({});
  CHECK(lb->ChooseHost({}) == nullptr);
}

TEST_CASE("The context's random source overrides the balancer's") {
  Env env;
  env.set.Update(MakeHosts(std::vector<uint32_t>(50, 1)));
  auto lb = env.Lb(LbAlgorithm::kRandom);
  DefaultRandom r1(5), r2(5);
  std::vector<Host*> a, b;
  for (int i = 0; i < 20; ++i) a.push_back(lb->ChooseHost({std::nullopt, &r1}));
  for (int i = 0; i < 20; ++i) b.push_back(lb->ChooseHost({std::nullopt, &r2}));
  CHECK(a == b);
}

TEST_CASE("Invalid configs are refused") {
  Env env;
  auto bad = [&](auto mutate) {
    LbConfig config;
    mutate(config);
    return !LoadBalancer::Create(LbAlgorithm::kRandom, config, env.set, &env.clock, &env.random)
                .ok();
  };
  CHECK(bad([](LbConfig& c) { c.maglev_table_size = 65536; }));
  CHECK(bad([](LbConfig& c) { c.active_request_bias = -1; }));
  CHECK(bad([](LbConfig& c) { c.choice_count = 0; }));
  CHECK(bad([](LbConfig& c) {
    c.min_ring_size = 10;
    c.max_ring_size = 5;
  }));
  CHECK(bad([](LbConfig& c) { c.panic_threshold_percent = 150; }));
  CHECK(bad([](LbConfig& c) { c.slow_start_aggression = 0; }));
  CHECK_FALSE(bad([](LbConfig&) {}));
}

}  // namespace
}  // namespace weft::upstream
