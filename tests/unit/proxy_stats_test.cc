// Per-worker statistics merged on read: sums, quantiles, and an exposition promtool accepts.
#include "data-plane/stats/proxy_stats.h"

#include <catch2/catch.hpp>
#include <thread>

#include "tests/unit/promtool.h"

namespace weft::proxy {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

TEST_CASE("proxy stats: blocks from every worker add up") {
  StatsStore store(2);
  store.worker(0)->Cluster("api")->http.Completed(200, milliseconds(3));
  store.worker(1)->Cluster("api")->http.Completed(503, milliseconds(30));
  store.worker(1)->Cluster("api")->cx_connect_fail.Inc(2);
  store.worker(0)->Host("api|10.0.0.1:80")->http.rq_active.Add(3);
  store.worker(1)->Host("api|10.0.0.1:80")->http.rq_active.Add(-1);
  store.worker(1)->Host("api|10.0.0.1:80")->http.Completed(502, milliseconds(1));

  std::string text = store.PlainText();
  CHECK(text.find("cluster.api.rq_total: 2\n") != std::string::npos);
  CHECK(text.find("cluster.api.rq_2xx: 1\n") != std::string::npos);
  CHECK(text.find("cluster.api.rq_5xx: 1\n") != std::string::npos);
  CHECK(text.find("cluster.api.upstream_cx_connect_fail: 2\n") != std::string::npos);
  auto host = store.HostTotals("api|10.0.0.1:80");
  CHECK(host.rq_active == 2);
  CHECK(host.rq_total == 1);
  CHECK(host.rq_error == 1);

  std::string prom = store.PrometheusText();
  CHECK(prom.find("weft_proxy_cluster_rq_total_total{cluster=\"api\"} 2\n") != std::string::npos);
  CHECK(prom.find("weft_proxy_host_rq_active{cluster=\"api\",host=\"10.0.0.1:80\"} 2\n") !=
        std::string::npos);
  CHECK(prom.find("weft_proxy_cluster_rq_duration_seconds_count{cluster=\"api\"} 2\n") !=
        std::string::npos);
}

TEST_CASE("proxy stats: quantiles interpolate inside the bucket") {
  LatencyHistogram h;
  for (int i = 0; i < 90; ++i) h.Record(microseconds(700));  // (0.5, 1] ms
  for (int i = 0; i < 10; ++i) h.Record(milliseconds(40));   // (25, 50] ms
  LatencyHistogram::Merged m;
  m.Add(h);
  CHECK(m.count == 100);
  CHECK(m.QuantileMs(0.5) > 0.5);
  CHECK(m.QuantileMs(0.5) <= 1.0);
  CHECK(m.QuantileMs(0.99) > 25);
  CHECK(m.QuantileMs(0.99) <= 50);
  CHECK(m.sum_ms == Approx(90 * 0.7 + 10 * 40).epsilon(0.01));
  LatencyHistogram::Merged empty;
  CHECK(empty.QuantileMs(0.5) == 0);
}

TEST_CASE("proxy stats: a reader sums while workers write", "[tsan]") {
  StatsStore store(2);
  constexpr int kPerWorker = 20000;
  // Blocks are created up front, as config changes do; the threads then only record.
  ListenerStats* blocks[2] = {store.worker(0)->Listener("http"), store.worker(1)->Listener("http")};
  std::vector<std::thread> workers;
  for (int w = 0; w < 2; ++w) {
    workers.emplace_back([l = blocks[w]] {
      for (int i = 0; i < kPerWorker; ++i) l->http.Completed(200, microseconds(100));
    });
  }
  for (int i = 0; i < 20; ++i) CHECK_FALSE(store.PrometheusText().empty());
  for (auto& t : workers) t.join();
  CHECK(store.PlainText().find("listener.http.rq_2xx: 40000\n") != std::string::npos);
}

TEST_CASE("proxy stats: promtool accepts the exposition") {
  StatsStore store(2);
  store.worker(0)->Listener("http")->http.Completed(200, milliseconds(2));
  store.worker(1)->Route("routes/vh/0")->http.Completed(404, microseconds(50));
  store.worker(0)->Cluster("a \"quoted\" name")->cx_total.Inc();
  store.worker(1)->Host("c|127.0.0.1:9")->http.Completed(200, milliseconds(20000));
  std::string text = store.PrometheusText();
  auto result = test::PromtoolCheck(text);
  if (!result) {
    WARN("promtool not installed (Debian package 'prometheus'); skipping");
    return;
  }
  INFO("promtool output: " << result->output << "\ninput:\n" << text);
  CHECK(result->ok);
}

}  // namespace
}  // namespace weft::proxy
