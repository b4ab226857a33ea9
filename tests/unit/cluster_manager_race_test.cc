// Worker → main batching under real threads (also run under TSan): four workers record and
// flush while the main side ticks; every result is counted exactly once, across workers, and
// the views the main side publishes are read by the workers while it keeps publishing.
#include <catch2/catch.hpp>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "data-plane/upstream/cluster_manager/cluster_manager.h"

namespace weft::upstream {
namespace {

TEST_CASE("cluster manager race: results of four workers reach one detector, none lost") {
  constexpr int kWorkers = 4;
  constexpr int kPerWorker = 5000;
  FakeClock clock;
  DefaultRandom random{1};
  // Views go to the workers through an atomic slot, as the server posts them to each loop.
  std::atomic<std::shared_ptr<const ClusterViews>> latest;
  ClusterManager::Options o;
  o.clock = &clock;
  o.random = &random;
  o.publish = [&](std::shared_ptr<const ClusterViews> v) { latest.store(std::move(v)); };
  ClusterManager cm(std::move(o));
  auto spec = std::make_shared<ClusterSpec>();
  spec->name = "a";
  spec->version = 1;
  for (int i = 1; i <= 3; ++i) {
    EndpointSpec e;
    e.address = "10.0.0." + std::to_string(i);
    e.port = 80;
    spec->endpoints.push_back(e);
  }
  outlier::Config od;
  // Ejected by the very last 5xx: only if every worker's every result was counted.
  od.consecutive_5xx = kWorkers * kPerWorker;
  od.max_ejection_percent = 100;
  spec->failover.outlier = od;
  REQUIRE(cm.Update({spec}).ok());

  std::atomic<int> done{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&, w] {
      ObservationBatcher batcher(&cm.observations(), 64);
      WorkerHosts hosts;
      for (int i = 0; i < kPerWorker; ++i) {
        auto views = latest.load();
        const ClusterView* view = views->Find("a");
        hosts.Apply(*view);
        const Host* target = hosts.set().all_hosts()[0].get();
        batcher.Record(hosts.cluster_id(), hosts.HostId(*target),
                       {outlier::Result::Kind::kHttpResponse, 503, std::chrono::microseconds(w)});
        if (i % 100 == 0) batcher.Flush();
      }
      batcher.Flush();
      done.fetch_add(1);
    });
  }
  // The main side ticks meanwhile, publishing whenever anything changed.
  while (done.load() < kWorkers) {
    cm.Tick();
    std::this_thread::yield();
  }
  for (auto& t : workers) t.join();
  cm.Tick();
  CHECK(cm.observations().pushed() == static_cast<uint64_t>(kWorkers * kPerWorker));
  CHECK(cm.observations().dropped() == 0);
  const ClusterView* view = cm.views()->Find("a");
  CHECK(view->hosts[0].flags == kFailedOutlierCheck);
  CHECK(view->hosts[1].flags == 0);
}

}  // namespace
}  // namespace weft::upstream
