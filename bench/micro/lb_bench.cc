// ChooseHost cost per algorithm and host count, equal weights and weights 1..4. One worker, one
// balancer, no contention: this is the pure selection cost on the request path.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "data-plane/upstream/host.h"
#include "data-plane/upstream/lb/load_balancer.h"

namespace weft::upstream {
namespace {

constexpr LbAlgorithm kAlgorithms[] = {
    LbAlgorithm::kRandom,       LbAlgorithm::kRoundRobin,        LbAlgorithm::kWeightedRoundRobin,
    LbAlgorithm::kLeastRequest, LbAlgorithm::kLeastResponseTime, LbAlgorithm::kRingHash,
    LbAlgorithm::kMaglev};

void BM_ChooseHost(benchmark::State& state) {
  const LbAlgorithm algorithm = kAlgorithms[state.range(0)];
  const int num_hosts = static_cast<int>(state.range(1));
  const bool weighted = state.range(2) != 0;
  std::vector<HostPtr> hosts;
  for (int i = 0; i < num_hosts; ++i) {
    Host::Options o;
    o.address = "10.1." + std::to_string(i / 256) + "." + std::to_string(i % 256);
    o.port = 443;
    o.weight = weighted ? 1 + i % 4 : 1;
    hosts.push_back(std::make_shared<Host>(std::move(o)));
  }
  PrioritySet set;
  set.Update(hosts);
  DefaultRandom random(1);
  auto lb = LoadBalancer::Create(algorithm, LbConfig{}, set, &RealClock::Get(), &random);
  if (!lb.ok()) {
    state.SkipWithError("create failed");
    return;
  }
  // Give peak EWMA real state and the others a few in-flight requests to compare.
  for (int i = 0; i < num_hosts; ++i) {
    (*lb)->OnRequestEnd(*hosts[i], std::chrono::microseconds(500 + random.Uniform(1000)));
    hosts[i]->set_active_requests(random.Uniform(4));
  }
  LbContext context;
  uint64_t key = 0;
  const bool hashed = IsHashBased(algorithm);
  (*lb)->ChooseHost(context);  // builds the pool outside the timed loop
  for (auto _ : state) {
    if (hashed) context.hash_key = key++;
    benchmark::DoNotOptimize((*lb)->ChooseHost(context));
  }
  state.SetLabel(std::string(LbAlgorithmName(algorithm)) + "/" + std::to_string(num_hosts) +
                 (weighted ? "/weighted" : "/equal"));
}
BENCHMARK(BM_ChooseHost)->ArgsProduct({{0, 1, 2, 3, 4, 5, 6}, {10, 100, 1000}, {0, 1}});

}  // namespace
}  // namespace weft::upstream

BENCHMARK_MAIN();
