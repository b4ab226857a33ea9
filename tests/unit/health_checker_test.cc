// Active health checking rules against a fake clock and a prober whose answers the test gives.
#include <catch2/catch.hpp>

#include <deque>
#include <string>
#include <vector>

#include "common/clock.h"
#include "data-plane/upstream/health/health_checker.h"
#include "data-plane/upstream/lb/load_balancer.h"

namespace weft::upstream::health {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

struct Pending {
  std::string host;
  std::function<void(ProbeResult)> done;
};

class ScriptedProber final : public Prober {
 public:
  explicit ScriptedProber(std::deque<Pending>* pending) : pending_(pending) {}
  void Probe(const std::string& host, milliseconds,
             std::function<void(ProbeResult)> done) override {
    pending_->push_back({host, std::move(done)});
  }

 private:
  std::deque<Pending>* pending_;
};

struct Fixture {
  explicit Fixture(Schedule s = {})
      : checker(s, std::make_unique<ScriptedProber>(&pending), &clock, &random,
                [this](std::string_view host, bool healthy) {
                  events.push_back(std::string(healthy ? "healthy " : "unhealthy ") +
                                   std::string(host));
                }) {}
  // Runs ticks until `host` is probed, then answers it.
  void Answer(const std::string& host, ProbeResult r) {
    for (int i = 0; i < 10'000 && !Has(host); ++i) {
      clock.Advance(milliseconds(50));
      checker.Tick();
    }
    REQUIRE(Has(host));
    for (auto it = pending.begin(); it != pending.end(); ++it) {
      if (it->host != host) continue;
      auto done = std::move(it->done);
      pending.erase(it);
      done(r);
      return;
    }
  }
  bool Has(const std::string& host) const {
    for (const auto& p : pending) {
      if (p.host == host) return true;
    }
    return false;
  }
  HostHealth::State State(const std::string& host) { return checker.Find(host)->state; }
  milliseconds UntilNext(const std::string& host) {
    return std::chrono::duration_cast<milliseconds>(checker.Find(host)->next_probe - clock.Now());
  }

  FakeClock clock;
  DefaultRandom random{3};
  std::deque<Pending> pending;
  std::vector<std::string> events;
  Checker checker;
};

TEST_CASE("health: Envoy's defaults and the fields the checker refuses") {
  envoy::config::core::v3::HealthCheck hc;
  hc.mutable_interval()->set_seconds(5);
  auto s = Schedule::FromProto(hc);
  REQUIRE(s.ok());
  CHECK(s->interval == seconds(5));
  CHECK(s->no_traffic_interval == seconds(60));
  hc.mutable_alt_port()->set_value(81);
  CHECK(Schedule::FromProto(hc).status().message() == "alt_port: is not supported by weft-proxy");
  hc.clear_alt_port();
  hc.mutable_reuse_connection()->set_value(false);
  CHECK_FALSE(Schedule::FromProto(hc).ok());
}

TEST_CASE("health: the first probes of the starting hosts are spread over one interval") {
  Fixture f;
  std::vector<std::string> hosts;
  for (int i = 0; i < 100; ++i) hosts.push_back("10.0.0." + std::to_string(i) + ":80");
  f.checker.SetHosts(hosts);
  milliseconds lo = seconds(100), hi{0};
  for (const auto& h : hosts) {
    CHECK(f.State(h) == HostHealth::State::kHealthy);  // assumed until told otherwise
    milliseconds d = f.UntilNext(h);
    lo = std::min(lo, d);
    hi = std::max(hi, d);
  }
  CHECK(lo >= milliseconds(0));
  CHECK(hi < seconds(10));
  CHECK(hi - lo > seconds(8));  // not a burst
  f.checker.Tick();
  CHECK(f.pending.size() < 10);
}

TEST_CASE("health: thresholds turn a host unhealthy and healthy again") {
  Fixture f;
  f.checker.SetHosts({"a:1"});
  f.Answer("a:1", ProbeResult::kFailure);
  f.Answer("a:1", ProbeResult::kTimeout);
  CHECK(f.State("a:1") == HostHealth::State::kHealthy);
  f.Answer("a:1", ProbeResult::kFailure);  // the third in a row
  CHECK(f.State("a:1") == HostHealth::State::kUnhealthy);
  f.Answer("a:1", ProbeResult::kSuccess);
  CHECK(f.State("a:1") == HostHealth::State::kUnhealthy);
  f.Answer("a:1", ProbeResult::kSuccess);
  CHECK(f.State("a:1") == HostHealth::State::kHealthy);
  CHECK(f.events == std::vector<std::string>{"unhealthy a:1", "healthy a:1"});
  CHECK(f.checker.stats().timeouts == 1);
  // A conclusive answer needs no threshold.
  f.Answer("a:1", ProbeResult::kConclusiveFailure);
  CHECK(f.State("a:1") == HostHealth::State::kUnhealthy);
}

TEST_CASE("health: a host that joins later waits for its first probe, which one success passes") {
  Fixture f;
  f.checker.SetHosts({"a:1"});
  f.checker.SetHosts({"a:1", "b:1"});
  CHECK(f.State("b:1") == HostHealth::State::kPending);
  CHECK(f.events == std::vector<std::string>{"unhealthy b:1"});
  CHECK(f.UntilNext("b:1") == milliseconds(0));  // at once: no initial_jitter configured
  f.Answer("b:1", ProbeResult::kSuccess);
  CHECK(f.State("b:1") == HostHealth::State::kHealthy);
  CHECK(f.events.back() == "healthy b:1");
}

TEST_CASE("health: intervals for unhealthy hosts, edges, no traffic, and jitter bounds") {
  Schedule s;
  s.interval = seconds(5);
  s.unhealthy_interval = seconds(2);
  s.unhealthy_edge_interval = milliseconds(500);
  s.unhealthy_threshold = 1;
  s.interval_jitter = milliseconds(100);
  Fixture f(s);
  f.checker.SetHosts({"a:1"});
  f.Answer("a:1", ProbeResult::kSuccess);
  CHECK(f.UntilNext("a:1") >= seconds(5));
  CHECK(f.UntilNext("a:1") < milliseconds(5100));
  f.Answer("a:1", ProbeResult::kFailure);  // transition: the edge interval
  CHECK(f.UntilNext("a:1") >= milliseconds(500));
  CHECK(f.UntilNext("a:1") < milliseconds(600));
  f.Answer("a:1", ProbeResult::kFailure);  // still unhealthy: the unhealthy interval
  CHECK(f.UntilNext("a:1") >= seconds(2));
  f.checker.SetClusterActive(false);
  f.Answer("a:1", ProbeResult::kFailure);
  CHECK(f.UntilNext("a:1") >= seconds(60));
}

TEST_CASE("health: one probe at a time per host; answers for removed hosts are dropped") {
  Fixture f;
  f.checker.SetHosts({"a:1"});
  for (int i = 0; i < 400; ++i) {  // 20 s of ticks without answering
    f.clock.Advance(milliseconds(50));
    f.checker.Tick();
  }
  CHECK(f.pending.size() == 1);
  auto stale = std::move(f.pending.front());
  f.pending.clear();
  f.checker.SetHosts({});
  f.checker.SetHosts({"a:1"});  // back, with a fresh state: the old answer is not for it
  stale.done(ProbeResult::kConclusiveFailure);
  CHECK(f.State("a:1") == HostHealth::State::kPending);
  CHECK(f.checker.stats().failures == 0);
}

}  // namespace
}  // namespace weft::upstream::health
