// Outlier detection rules against a fake clock: consecutive failures, success rate, failure
// percentage, ejection times and their multiplier, max ejection percent, latency ejection.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "common/clock.h"
#include "data-plane/upstream/lb/load_balancer.h"
#include "data-plane/upstream/outlier/outlier_detector.h"

namespace weft::upstream::outlier {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

struct Fixture {
  explicit Fixture(Config c, int hosts = 10) : detector(c, &clock, &random, Record()) {
    for (int i = 0; i < hosts; ++i) keys.push_back("10.0.0." + std::to_string(i) + ":80");
    detector.SetHosts(keys);
  }
  Detector::OnChange Record() {
    return [this](std::string_view host, bool ejected, EjectionType type) {
      events.push_back(std::string(ejected ? "eject " : "return ") + std::string(host) + " " +
                       std::string(EjectionTypeName(type)));
    };
  }
  void Respond(int host, int status, int times = 1, milliseconds latency = milliseconds(1)) {
    for (int i = 0; i < times; ++i) {
      detector.Report(keys[static_cast<size_t>(host)],
                      Result{Result::Kind::kHttpResponse, status, latency});
    }
  }
  bool Ejected(int host) { return detector.Find(keys[static_cast<size_t>(host)])->ejected; }
  // One interval of time, then the interval's checks.
  void Interval() {
    clock.Advance(detector.config().interval);
    detector.RunInterval();
  }

  FakeClock clock;
  DefaultRandom random{42};
  std::vector<std::string> events;
  std::vector<std::string> keys;
  Detector detector;
};

TEST_CASE("outlier: Envoy's defaults when the proto leaves fields unset") {
  envoy::config::cluster::v3::OutlierDetection p;
  auto c = Config::FromProto(p);
  REQUIRE(c.ok());
  CHECK(c->consecutive_5xx == 5);
  CHECK(c->enforcing_consecutive_5xx == 100);
  CHECK(c->consecutive_gateway_failure == 5);
  CHECK(c->enforcing_consecutive_gateway_failure == 0);
  CHECK(c->interval == seconds(10));
  CHECK(c->base_ejection_time == seconds(30));
  CHECK(c->max_ejection_time == seconds(300));
  CHECK(c->max_ejection_percent == 10);
  CHECK(c->success_rate_minimum_hosts == 5);
  CHECK(c->success_rate_request_volume == 100);
  CHECK(c->success_rate_stdev_factor == Approx(1.9));
  CHECK(c->failure_percentage_threshold == 85);
  CHECK(c->enforcing_failure_percentage == 0);

  p.mutable_success_rate_stdev_factor()->set_value(1000);
  p.mutable_base_ejection_time()->set_seconds(400);  // above the default cap: the base wins
  c = Config::FromProto(p);
  REQUIRE(c.ok());
  CHECK(c->success_rate_stdev_factor == Approx(1.0));
  CHECK(c->max_ejection_time == seconds(400));

  p.add_monitors()->set_name("x");
  CHECK_FALSE(Config::FromProto(p).ok());
}

TEST_CASE("outlier: five 5xx in a row eject at once; a success in between resets the count") {
  Fixture f(Config{});
  f.Respond(0, 500, 4);
  f.Respond(0, 200);
  f.Respond(0, 500, 4);
  CHECK_FALSE(f.Ejected(0));
  f.Respond(0, 500);
  CHECK(f.Ejected(0));
  CHECK(f.events == std::vector<std::string>{"eject 10.0.0.0:80 consecutive_5xx"});
  CHECK(f.detector.stats().ejections_active == 1);
  CHECK(f.detector.stats().ejections_enforced[0] == 1);
}

TEST_CASE("outlier: gateway failures are detected but not enforced by default") {
  Config c;
  c.consecutive_5xx = 0;  // only the gateway rule
  Fixture g(c, 10);
  g.Respond(0, 503, 5);
  CHECK_FALSE(g.Ejected(0));
  CHECK(g.detector.stats().ejections_detected[1] == 1);
  c.enforcing_consecutive_gateway_failure = 100;
  Fixture h(c, 10);
  h.Respond(0, 502, 5);
  CHECK(h.Ejected(0));
  CHECK(h.events == std::vector<std::string>{"eject 10.0.0.0:80 consecutive_gateway_failure"});
}

TEST_CASE("outlier: ejection lasts base x times ejected, capped, and the multiplier decays") {
  Config c;
  c.interval = seconds(10);
  c.base_ejection_time = seconds(30);
  c.max_ejection_time = seconds(60);
  Fixture f(c);
  f.Respond(0, 500, 5);
  REQUIRE(f.Ejected(0));
  f.Interval();  // 10 s
  f.Interval();  // 20 s
  CHECK(f.Ejected(0));
  f.Interval();  // 30 s: back
  CHECK_FALSE(f.Ejected(0));
  // Ejected again right away: twice the base.
  f.Respond(0, 500, 5);
  REQUIRE(f.Ejected(0));
  for (int i = 0; i < 5; ++i) f.Interval();  // 50 s
  CHECK(f.Ejected(0));
  f.Interval();  // 60 s
  CHECK_FALSE(f.Ejected(0));
  // Third time: 90 s, capped at 60 s.
  f.Respond(0, 500, 5);
  for (int i = 0; i < 5; ++i) f.Interval();
  CHECK(f.Ejected(0));
  f.Interval();
  CHECK_FALSE(f.Ejected(0));
  CHECK(f.detector.Find(f.keys[0])->times_ejected == 3);
  // Healthy for long enough, the multiplier falls back to zero: the next ejection is 30 s.
  for (int i = 0; i < 5; ++i) f.Interval();
  CHECK(f.detector.Find(f.keys[0])->multiplier == 0);
  f.Respond(0, 500, 5);
  for (int i = 0; i < 3; ++i) f.Interval();
  CHECK_FALSE(f.Ejected(0));
}

TEST_CASE("outlier: max ejection percent keeps the cluster in rotation, one host may always go") {
  Config c;
  c.max_ejection_percent = 10;
  Fixture f(c, 3);  // 10 % of 3 hosts is less than one
  f.Respond(0, 500, 5);
  f.Respond(1, 500, 5);
  CHECK(f.Ejected(0));
  CHECK_FALSE(f.Ejected(1));
  CHECK(f.detector.stats().ejections_overflow == 1);

  Config none;
  none.max_ejection_percent = 0;
  Fixture g(none, 3);
  g.Respond(0, 500, 5);
  CHECK_FALSE(g.Ejected(0));
  none.always_eject_one_host = true;
  Fixture h(none, 3);
  h.Respond(0, 500, 5);
  CHECK(h.Ejected(0));
  h.Respond(1, 500, 5);
  CHECK_FALSE(h.Ejected(1));
}

TEST_CASE("outlier: success rate ejects hosts below mean - 1.9 stdev, given volume and hosts") {
  Config c;
  c.consecutive_5xx = 0;
  c.max_ejection_percent = 50;
  Fixture f(c, 6);
  for (int h = 0; h < 5; ++h) f.Respond(h, 200, 100);
  // Host 5: 60 % success, scattered so no consecutive rule fires.
  for (int i = 0; i < 40; ++i) {
    f.Respond(5, 500);
    f.Respond(5, 200);
  }
  f.Respond(5, 200, 20);
  f.Interval();
  CHECK(f.Ejected(5));
  CHECK(f.events == std::vector<std::string>{"eject 10.0.0.5:80 success_rate"});

  // Too few requests: not judged.
  Fixture g(c, 6);
  for (int h = 0; h < 5; ++h) g.Respond(h, 200, 100);
  g.Respond(5, 500, 1);
  g.Respond(5, 200, 1);
  g.Interval();
  CHECK_FALSE(g.Ejected(5));
  // Too few hosts with enough volume: not judged either.
  Fixture k(c, 6);
  for (int h = 0; h < 3; ++h) k.Respond(h, 200, 100);
  for (int i = 0; i < 60; ++i) {
    k.Respond(5, 500);
    k.Respond(5, 200);
  }
  k.Interval();
  CHECK_FALSE(k.Ejected(5));
}

TEST_CASE("outlier: failure percentage ejects above the threshold when enforced") {
  Config c;
  c.consecutive_5xx = 0;
  c.enforcing_success_rate = 0;
  c.max_ejection_percent = 50;
  for (double enforcing : {0.0, 100.0}) {
    c.enforcing_failure_percentage = enforcing;
    Fixture f(c, 6);
    for (int h = 0; h < 5; ++h) f.Respond(h, 200, 60);
    for (int i = 0; i < 10; ++i) {
      f.Respond(5, 500, 9);
      f.Respond(5, 200);
    }
    f.Interval();
    INFO(enforcing);
    CHECK(f.Ejected(5) == (enforcing == 100.0));
    CHECK(f.detector.stats().ejections_detected[5] == 1);
  }
}

TEST_CASE("outlier: local-origin failures count as 5xx unless split") {
  Fixture f(Config{});
  for (int i = 0; i < 5; ++i) {
    f.detector.Report(f.keys[0], Result{Result::Kind::kLocalConnectFailure});
  }
  CHECK(f.Ejected(0));

  Config split;
  split.split_external_local_origin_errors = true;
  Fixture g(split);
  for (int i = 0; i < 4; ++i) g.detector.Report(g.keys[0], Result{Result::Kind::kLocalTimeout});
  g.Respond(0, 500, 4);  // external errors have their own counter
  CHECK_FALSE(g.Ejected(0));
  g.detector.Report(g.keys[0], Result{Result::Kind::kLocalReset});
  CHECK(g.Ejected(0));
  CHECK(g.events == std::vector<std::string>{"eject 10.0.0.0:80 consecutive_local_origin_failure"});
}

TEST_CASE("outlier: a passing active health check returns an ejected host") {
  Fixture f(Config{});
  f.Respond(0, 500, 5);
  REQUIRE(f.Ejected(0));
  f.detector.OnActiveHealthCheckSuccess(f.keys[0]);
  CHECK_FALSE(f.Ejected(0));
  Config keep;
  keep.successful_active_health_check_uneject_host = false;
  Fixture g(keep);
  g.Respond(0, 500, 5);
  g.detector.OnActiveHealthCheckSuccess(g.keys[0]);
  CHECK(g.Ejected(0));
}

TEST_CASE("outlier: a slow host is ejected after N intervals above k x the median latency") {
  Config c;
  c.latency = LatencyRule{.factor = 3, .intervals = 2, .minimum_hosts = 5, .request_volume = 10};
  c.max_ejection_percent = 50;
  Fixture f(c, 6);
  auto traffic = [&](milliseconds slow) {
    for (int h = 0; h < 5; ++h) f.Respond(h, 200, 20, milliseconds(10));
    f.Respond(5, 200, 20, slow);
  };
  traffic(milliseconds(50));
  f.Interval();
  CHECK_FALSE(f.Ejected(5));  // one strike
  traffic(milliseconds(20));  // 2x the median: below the factor, strikes reset
  f.Interval();
  traffic(milliseconds(50));
  f.Interval();
  CHECK_FALSE(f.Ejected(5));
  traffic(milliseconds(50));
  f.Interval();
  CHECK(f.Ejected(5));
  CHECK(f.events == std::vector<std::string>{"eject 10.0.0.5:80 latency"});
}

TEST_CASE("outlier: membership changes keep the state of hosts that stay") {
  Fixture f(Config{}, 3);
  f.Respond(0, 500, 5);
  REQUIRE(f.Ejected(0));
  f.detector.SetHosts({f.keys[0], f.keys[2], "10.0.0.9:80"});
  CHECK(f.detector.host_count() == 3);
  CHECK(f.Ejected(0));
  CHECK(f.detector.Find(f.keys[1]) == nullptr);
  CHECK(f.detector.stats().ejections_active == 1);
  f.detector.Report("10.0.0.77:80", Result{});  // gone while in flight: ignored
}

}  // namespace
}  // namespace weft::upstream::outlier
