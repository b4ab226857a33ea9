#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "common/metrics/metrics.h"
#include "tests/unit/promtool.h"

namespace weft::metrics {
namespace {

TEST_CASE("PrometheusText renders a small registry exactly") {
  Registry registry;
  auto* requests = registry.AddCounter("weft_requests_total", "Requests handled.", {"code"});
  requests->WithLabels({"500"})->Inc();
  requests->WithLabels({"200"})->Inc(3);
  registry.AddGauge("weft_connections", "Open connections.")->Get()->Set(7);
  auto* latency = registry.AddHistogram("weft_latency_seconds", "Request latency.", {}, {0.25, 1});
  for (double v : {0.25, 0.5, 2.0, 0.125}) latency->Get()->Observe(v);
  // Registered without any children: not rendered at all.
  registry.AddCounter("weft_unused_total", "Never touched.", {"x"});

  CHECK(registry.PrometheusText() ==
        "# HELP weft_connections Open connections.\n"
        "# TYPE weft_connections gauge\n"
        "weft_connections 7\n"
        "# HELP weft_latency_seconds Request latency.\n"
        "# TYPE weft_latency_seconds histogram\n"
        "weft_latency_seconds_bucket{le=\"0.25\"} 2\n"
        "weft_latency_seconds_bucket{le=\"1\"} 3\n"
        "weft_latency_seconds_bucket{le=\"+Inf\"} 4\n"
        "weft_latency_seconds_sum 2.875\n"
        "weft_latency_seconds_count 4\n"
        "# HELP weft_requests_total Requests handled.\n"
        "# TYPE weft_requests_total counter\n"
        "weft_requests_total{code=\"200\"} 3\n"
        "weft_requests_total{code=\"500\"} 1\n");
}

TEST_CASE("Unlabelled metrics are exported as zero before their first event") {
  Registry registry;
  registry.AddCounter("a_total", "A.");
  registry.AddGauge("b", "B.");
  CHECK(registry.PrometheusText() ==
        "# HELP a_total A.\n# TYPE a_total counter\na_total 0\n"
        "# HELP b B.\n# TYPE b gauge\nb 0\n");
}

TEST_CASE("Label values and help text are escaped") {
  CHECK(EscapeLabelValue("a\\b\"c\nd") == "a\\\\b\\\"c\\nd");
  CHECK(EscapeHelp("line1\nback\\slash \"quoted\"") == "line1\\nback\\\\slash \"quoted\"");

  Registry registry;
  auto* family =
      registry.AddCounter("weft_odd_total", "Help with \\ and\nnewline.", {"cluster", "route"});
  family->WithLabels({"c\"1", "r\\\n"})->Inc(2);
  CHECK(registry.PrometheusText() ==
        "# HELP weft_odd_total Help with \\\\ and\\nnewline.\n"
        "# TYPE weft_odd_total counter\n"
        "weft_odd_total{cluster=\"c\\\"1\",route=\"r\\\\\\n\"} 2\n");
}

TEST_CASE("Histogram buckets are cumulative and labelled") {
  Registry registry;
  auto* family = registry.AddHistogram("weft_rtt_seconds", "RTT.", {"peer"}, {0.001, 0.01, 0.1});
  Histogram* h = family->WithLabels({"p1"});
  h->Observe(0.0005);
  h->Observe(0.001);  // on a bound: counts in that bucket (le is "less or equal")
  h->Observe(0.05);
  h->Observe(0.05);
  h->Observe(7);
  h->ObserveDuration(std::chrono::milliseconds(5));
  Histogram::Snapshot s = h->Read();
  CHECK(s.cumulative == std::vector<uint64_t>{2, 3, 5, 6});
  CHECK(s.count == 6);

  std::string text = registry.PrometheusText();
  CHECK(text.find("weft_rtt_seconds_bucket{peer=\"p1\",le=\"0.001\"} 2\n") != std::string::npos);
  CHECK(text.find("weft_rtt_seconds_bucket{peer=\"p1\",le=\"0.01\"} 3\n") != std::string::npos);
  CHECK(text.find("weft_rtt_seconds_bucket{peer=\"p1\",le=\"0.1\"} 5\n") != std::string::npos);
  CHECK(text.find("weft_rtt_seconds_bucket{peer=\"p1\",le=\"+Inf\"} 6\n") != std::string::npos);
  CHECK(text.find("weft_rtt_seconds_count{peer=\"p1\"} 6\n") != std::string::npos);
  CHECK(text.find("weft_rtt_seconds_sum{peer=\"p1\"} 7.10") != std::string::npos);
  CHECK(s.sum == Approx(7.1065));
}

TEST_CASE("Default buckets and number formatting") {
  CHECK(DefaultBuckets().size() == 14);
  CHECK(DefaultBuckets().front() == 0.0005);
  CHECK(DefaultBuckets().back() == 10);
  CHECK(FormatDouble(0.1) == "0.1");
  CHECK(FormatDouble(2.5) == "2.5");
  CHECK(FormatDouble(10) == "10");
  CHECK(FormatDouble(1.0 / 0.0) == "+Inf");
  CHECK(FormatDouble(-1.0 / 0.0) == "-Inf");
}

TEST_CASE("Families and children are stable and shared") {
  Registry registry;
  auto* a = registry.AddCounter("x_total", "X.", {"k"});
  auto* b = registry.AddCounter("x_total", "X again.", {"k"});
  CHECK(a == b);
  CHECK(a->WithLabels({"v"}) == b->WithLabels({"v"}));
  CHECK(a->WithLabels({"v"}) != a->WithLabels({"w"}));
  CHECK(&Registry::Default() == &Registry::Default());

  Gauge* g = registry.AddGauge("g", "G.")->Get();
  g->Set(10);
  g->Add(-15);
  g->Sub(1);
  CHECK(g->Value() == -6);
}

TEST_CASE("Concurrent updates from 4 threads sum correctly") {
  Registry registry;
  auto* counters = registry.AddCounter("weft_hits_total", "Hits.", {"worker"});
  auto* histograms = registry.AddHistogram("weft_work_seconds", "Work.");
  constexpr int kThreads = 4;
  constexpr int kPerThread = 100000;
  std::vector<std::thread> threads;
  std::vector<Counter*> seen(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Every thread looks up the same child concurrently; all must get the same object.
      Counter* shared = counters->WithLabels({"shared"});
      seen[t] = shared;
      Histogram* h = histograms->Get();
      for (int i = 0; i < kPerThread; ++i) {
        shared->Inc();
        h->Observe(0.001 * (i % 4));  // 0, 0.001, 0.002, 0.003: exact sums are not needed
      }
    });
  }
  // Rendering while writers run must be safe too.
  std::string during = registry.PrometheusText();
  for (auto& t : threads) t.join();
  CHECK(!during.empty());
  for (Counter* c : seen) CHECK(c == seen[0]);
  CHECK(seen[0]->Value() == uint64_t{kThreads} * kPerThread);
  Histogram::Snapshot s = histograms->Get()->Read();
  CHECK(s.count == uint64_t{kThreads} * kPerThread);
  CHECK(s.sum == Approx(kThreads * (kPerThread / 4) * 0.006).epsilon(1e-9));
  CHECK(registry.PrometheusText().find("weft_hits_total{worker=\"shared\"} 400000\n") !=
        std::string::npos);
}

TEST_CASE("promtool accepts the exposition") {
  Registry registry;
  auto* requests = registry.AddCounter("weft_http_requests_total", "HTTP requests by \"code\".",
                                       {"code", "path"});
  requests->WithLabels({"200", "/a\\b\"c\nd"})->Inc(5);
  requests->WithLabels({"404", "/"})->Inc();
  registry.AddGauge("weft_open_connections", "Open\nconnections.")->Get()->Set(-3);
  auto* latency = registry.AddHistogram("weft_request_duration_seconds", "Latency.", {"path"});
  latency->WithLabels({"/x"})->Observe(0.003);
  latency->WithLabels({"/y"})->Observe(42);
  registry.AddHistogram("weft_idle_duration_seconds", "Never observed.")->Get();

  std::string text = registry.PrometheusText();
  auto result = test::PromtoolCheck(text);
  if (!result) {
    WARN("promtool not installed (Debian package 'prometheus'); skipping");
    return;
  }
  INFO("promtool output: " << result->output << "\ninput:\n" << text);
  CHECK(result->ok);
}

}  // namespace
}  // namespace weft::metrics
