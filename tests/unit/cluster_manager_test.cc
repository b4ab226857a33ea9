// The cluster manager against a fake clock and probers whose answers the test gives: health
// flags from EDS, active checks and outlier detection kept apart and combined, views published
// to workers (identity kept, balancers follow), results from several workers counted together,
// panic threshold and priority failover over the combined health, and the /clusters report.
#include <catch2/catch.hpp>

#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/clock.h"
#include "data-plane/upstream/cluster_manager/cluster_manager.h"
#include "data-plane/upstream/lb/load_balancer.h"
#include "promtool.h"

namespace weft::upstream {
namespace {

using health::ProbeResult;
using std::chrono::milliseconds;
using std::chrono::seconds;

struct Pending {
  std::string cluster;
  std::string host;
  std::function<void(ProbeResult)> done;
};

class ScriptedProber final : public health::Prober {
 public:
  ScriptedProber(std::string cluster, std::deque<Pending>* pending, int* live)
      : cluster_(std::move(cluster)), pending_(pending), live_(live) {
    ++*live_;
  }
  ~ScriptedProber() override { --*live_; }
  void Probe(const std::string& host, milliseconds,
             std::function<void(ProbeResult)> done) override {
    pending_->push_back({cluster_, host, std::move(done)});
  }

 private:
  std::string cluster_;
  std::deque<Pending>* pending_;
  int* live_;
};

envoy::config::core::v3::HealthCheck HttpCheck(int interval_ms = 1000, uint32_t unhealthy = 2,
                                               uint32_t healthy = 2) {
  envoy::config::core::v3::HealthCheck hc;
  hc.mutable_timeout()->set_nanos(500'000'000);
  hc.mutable_interval()->set_seconds(interval_ms / 1000);
  hc.mutable_interval()->set_nanos((interval_ms % 1000) * 1'000'000);
  hc.mutable_unhealthy_threshold()->set_value(unhealthy);
  hc.mutable_healthy_threshold()->set_value(healthy);
  hc.mutable_http_health_check()->set_path("/healthz");
  return hc;
}

EndpointSpec Endpoint(int i, uint32_t priority = 0, HealthStatus eds = HealthStatus::kHealthy) {
  EndpointSpec e;
  e.address = "10.0.0." + std::to_string(i);
  e.port = 80;
  e.priority = priority;
  e.eds_health = eds;
  return e;
}

std::string Key(int i) { return "10.0.0." + std::to_string(i) + ":80"; }

struct Fixture {
  Fixture() {
    ClusterManager::Options o;
    o.clock = &clock;
    o.random = &random;
    o.probers = [this](const std::string& cluster, const envoy::config::core::v3::HealthCheck& hc)
        -> absl::StatusOr<std::unique_ptr<health::Prober>> {
      if (hc.has_tcp_health_check()) return absl::InvalidArgumentError("no TCP prober here");
      return std::make_unique<ScriptedProber>(cluster, &pending, &live_probers);
    };
    o.publish = [this](std::shared_ptr<const ClusterViews> v) {
      published.push_back(v);
      for (auto& [name, hosts] : workers) {
        if (const ClusterView* view = v->Find(name)) hosts.Apply(*view);
      }
    };
    cm = std::make_unique<ClusterManager>(std::move(o));
  }

  std::shared_ptr<ClusterSpec> Spec(const std::string& name, std::vector<EndpointSpec> endpoints,
                                    uint64_t version = 1) {
    auto spec = std::make_shared<ClusterSpec>();
    spec->name = name;
    spec->endpoints = std::move(endpoints);
    spec->version = version;
    return spec;
  }
  static void AddCheck(ClusterSpec& spec, const envoy::config::core::v3::HealthCheck& hc) {
    auto schedule = health::Schedule::FromProto(hc);
    REQUIRE(schedule.ok());
    spec.failover.health_checks.push_back({*schedule, hc});
  }
  static void AddOutlier(ClusterSpec& spec, uint32_t consecutive_5xx = 5,
                         uint32_t max_percent = 100) {
    outlier::Config c;
    c.consecutive_5xx = consecutive_5xx;
    c.max_ejection_percent = max_percent;
    spec.failover.outlier = c;
  }
  void Update(std::vector<std::shared_ptr<const ClusterSpec>> specs) {
    REQUIRE(cm->Update(std::move(specs)).ok());
  }

  // Ticks (50 ms steps) until a probe to `host` is waiting, then answers it.
  void Answer(const std::string& host, ProbeResult r) {
    for (int i = 0; i < 10'000 && !Has(host); ++i) {
      clock.Advance(milliseconds(50));
      cm->Tick();
    }
    REQUIRE(Has(host));
    for (auto it = pending.begin(); it != pending.end(); ++it) {
      if (it->host != host) continue;
      auto done = std::move(it->done);
      pending.erase(it);
      done(r);
      cm->Tick();  // publishes what the answer changed
      return;
    }
  }
  bool Has(const std::string& host) const {
    for (const auto& p : pending) {
      if (p.host == host) return true;
    }
    return false;
  }
  const HostView* View(const std::string& cluster, const std::string& key) {
    const ClusterView* v = cm->views()->Find(cluster);
    REQUIRE(v != nullptr);
    for (const HostView& h : v->hosts) {
      if (h.address + ":" + std::to_string(h.port) == key) return &h;
    }
    FAIL("no host " << key);
    return nullptr;
  }
  uint32_t Flags(const std::string& cluster, const std::string& key) {
    return View(cluster, key)->flags;
  }

  FakeClock clock;
  DefaultRandom random{7};
  std::deque<Pending> pending;
  int live_probers = 0;
  std::vector<std::shared_ptr<const ClusterViews>> published;
  std::map<std::string, WorkerHosts> workers;
  std::unique_ptr<ClusterManager> cm;
};

TEST_CASE("cluster manager: flags combine into the balancers' health") {
  CHECK(CombinedHealth(0) == HealthStatus::kHealthy);
  CHECK(CombinedHealth(kDegradedEdsHealth) == HealthStatus::kDegraded);
  CHECK(CombinedHealth(kDegradedEdsHealth | kFailedOutlierCheck) == HealthStatus::kUnhealthy);
  CHECK(CombinedHealth(kPendingActiveHc) == HealthStatus::kUnhealthy);
  CHECK(CombinedHealth(kEdsStatusDraining | kFailedActiveHc) == HealthStatus::kDraining);
  CHECK(HostFlagsString(0) == "healthy");
  CHECK(HostFlagsString(kFailedActiveHc | kFailedOutlierCheck) ==
        "/failed_active_hc/failed_outlier_check");
  CHECK(HostFlagsString(kFailedEdsHealth | kEdsStatusDraining) ==
        "/failed_eds_health/eds_status_draining");
}

TEST_CASE("cluster manager: EDS health becomes flags; views carry ids and breakers") {
  Fixture f;
  f.Update({f.Spec(
      "a", {Endpoint(1), Endpoint(2, 0, HealthStatus::kUnhealthy),
            Endpoint(3, 0, HealthStatus::kDegraded), Endpoint(4, 0, HealthStatus::kDraining)})});
  REQUIRE(f.published.size() == 1);
  CHECK(f.Flags("a", Key(1)) == 0);
  CHECK(f.Flags("a", Key(2)) == kFailedEdsHealth);
  CHECK(f.View("a", Key(2))->health == HealthStatus::kUnhealthy);
  CHECK(f.View("a", Key(3))->health == HealthStatus::kDegraded);
  CHECK(f.View("a", Key(4))->health == HealthStatus::kDraining);
  const ClusterView* v = f.cm->views()->Find("a");
  REQUIRE(v->resources != nullptr);
  CHECK(v->resources->limits().max_requests == 1024);
  std::set<uint32_t> ids;
  for (const HostView& h : v->hosts) ids.insert(h.id);
  CHECK(ids.size() == 4);
  CHECK(!ids.contains(0));
}

TEST_CASE("cluster manager: an unchanged version changes nothing; a change keeps ids") {
  Fixture f;
  auto spec = f.Spec("a", {Endpoint(1), Endpoint(2)}, 1);
  f.Update({spec});
  const uint32_t id1 = f.View("a", Key(1))->id;
  auto views = f.cm->views();
  f.Update({spec});
  CHECK(f.cm->views()->Find("a") == views->Find("a"));  // same view object

  f.Update({f.Spec("a", {Endpoint(1), Endpoint(3)}, 2)});
  CHECK(f.View("a", Key(1))->id == id1);
  CHECK(f.View("a", Key(3))->id != id1);
  CHECK(f.cm->views()->Find("a")->hosts.size() == 2);
}

TEST_CASE("cluster manager: an active check fails a host and passes it back; workers follow") {
  Fixture f;
  auto spec = f.Spec("a", {Endpoint(1), Endpoint(2)});
  Fixture::AddCheck(*spec, HttpCheck(1000, 2, 2));
  f.workers["a"];  // a worker that serves cluster a
  f.Update({spec});
  REQUIRE(f.live_probers == 1);  // one checker for the whole proxy
  // The hosts a checker starts with are healthy until their probes say otherwise.
  CHECK(f.Flags("a", Key(1)) == 0);

  f.Answer(Key(1), ProbeResult::kFailure);
  CHECK(f.Flags("a", Key(1)) == 0);  // one failure of two
  f.Answer(Key(1), ProbeResult::kTimeout);
  CHECK(f.Flags("a", Key(1)) == kFailedActiveHc);
  CHECK(f.View("a", Key(1))->health == HealthStatus::kUnhealthy);

  // The worker's balancer sees it at once and never picks the host.
  WorkerHosts& worker = f.workers["a"];
  auto lb = LoadBalancer::Create(LbAlgorithm::kRoundRobin, {}, worker.set(), &f.clock, &f.random);
  REQUIRE(lb.ok());
  for (int i = 0; i < 20; ++i) CHECK((*lb)->ChooseHost({})->hash_key() == Key(2));

  f.Answer(Key(1), ProbeResult::kSuccess);
  CHECK(f.Flags("a", Key(1)) == kFailedActiveHc);
  f.Answer(Key(1), ProbeResult::kSuccess);
  CHECK(f.Flags("a", Key(1)) == 0);
  std::set<std::string> picked;
  for (int i = 0; i < 20; ++i) picked.insert((*lb)->ChooseHost({})->hash_key());
  CHECK(picked.size() == 2);
}

TEST_CASE("cluster manager: a newcomer gets no traffic until checked; failing, it stays out") {
  Fixture f;
  auto spec = f.Spec("a", {Endpoint(1)}, 1);
  Fixture::AddCheck(*spec, HttpCheck());
  f.Update({spec});
  auto next = f.Spec("a", {Endpoint(1), Endpoint(2), Endpoint(3)}, 2);
  Fixture::AddCheck(*next, HttpCheck());
  f.Update({next});
  CHECK(f.live_probers == 1);  // same check config: the checker stayed
  CHECK(f.Flags("a", Key(2)) == kPendingActiveHc);
  CHECK(f.Flags("a", Key(3)) == kPendingActiveHc);
  f.Answer(Key(2), ProbeResult::kSuccess);
  CHECK(f.Flags("a", Key(2)) == 0);
  f.Answer(Key(3), ProbeResult::kFailure);
  CHECK(f.Flags("a", Key(3)) == kFailedActiveHc);  // no longer pending, but still out
}

TEST_CASE("cluster manager: a changed check config replaces the checker, an unchanged one stays") {
  Fixture f;
  auto spec = f.Spec("a", {Endpoint(1)}, 1);
  Fixture::AddCheck(*spec, HttpCheck(1000, 1, 1));
  f.Update({spec});
  f.Answer(Key(1), ProbeResult::kFailure);
  REQUIRE(f.Flags("a", Key(1)) == kFailedActiveHc);

  auto same = f.Spec("a", {Endpoint(1), Endpoint(2)}, 2);
  Fixture::AddCheck(*same, HttpCheck(1000, 1, 1));
  f.Update({same});
  CHECK(f.Flags("a", Key(1)) == kFailedActiveHc);  // state kept

  auto changed = f.Spec("a", {Endpoint(1), Endpoint(2)}, 3);
  Fixture::AddCheck(*changed, HttpCheck(2000, 1, 1));
  f.Update({changed});
  CHECK(f.live_probers == 1);
  // A new checker starts from its hosts assumed healthy and probes them within an interval.
  CHECK(f.Flags("a", Key(1)) == 0);

  f.Update({f.Spec("a", {Endpoint(1)}, 4)});  // no health check any more
  CHECK(f.live_probers == 0);
  CHECK(f.Flags("a", Key(1)) == 0);
}

TEST_CASE("cluster manager: a prober that cannot be built fails the update and changes nothing") {
  Fixture f;
  f.Update({f.Spec("a", {Endpoint(1)}, 1)});
  auto bad = f.Spec("a", {Endpoint(1), Endpoint(2)}, 2);
  auto tcp = HttpCheck();
  tcp.mutable_tcp_health_check();
  Fixture::AddCheck(*bad, tcp);
  auto s = f.cm->Update({bad, f.Spec("b", {Endpoint(5)})});
  REQUIRE(!s.ok());
  CHECK(s.message() == "cluster \"a\": health_checks[0]: no TCP prober here");
  CHECK(f.cm->views()->Find("a")->hosts.size() == 1);
  CHECK(f.cm->views()->Find("b") == nullptr);
}

TEST_CASE("cluster manager: results from every worker count towards one detector") {
  Fixture f;
  auto spec = f.Spec("a", {Endpoint(1), Endpoint(2), Endpoint(3)});
  Fixture::AddOutlier(*spec, 5);
  f.Update({spec});
  const ClusterView* v = f.cm->views()->Find("a");
  const uint32_t cluster = v->id;
  const uint32_t host = f.View("a", Key(1))->id;
  ObservationBatcher w1(&f.cm->observations());
  ObservationBatcher w2(&f.cm->observations());
  const outlier::Result e503{outlier::Result::Kind::kHttpResponse, 503, milliseconds(2)};
  for (int i = 0; i < 3; ++i) w1.Record(cluster, host, e503);
  for (int i = 0; i < 1; ++i) w2.Record(cluster, host, e503);
  w1.Flush();
  w2.Flush();
  f.cm->Tick();
  CHECK(f.Flags("a", Key(1)) == 0);  // 4 of 5
  w2.Record(cluster, host, e503);
  w2.Flush();
  f.cm->Tick();
  CHECK(f.Flags("a", Key(1)) == kFailedOutlierCheck);
  CHECK(f.View("a", Key(1))->health == HealthStatus::kUnhealthy);

  // /clusters says which host, why, when and how often.
  const std::string text = f.cm->AdminText();
  CHECK_THAT(text, Catch::Contains("a::10.0.0.1:80::health_flags::/failed_outlier_check\n"));
  CHECK_THAT(text, Catch::Contains("a::10.0.0.1:80::outlier_ejected::true\n"));
  CHECK_THAT(text, Catch::Contains("a::10.0.0.1:80::outlier_last_ejection::consecutive_5xx\n"));
  CHECK_THAT(text, Catch::Contains("a::10.0.0.1:80::outlier_times_ejected::1\n"));
  CHECK_THAT(text, Catch::Contains("a::10.0.0.1:80::outlier_ejected_at::1970-01-01T00:16:40.000Z"));
  CHECK_THAT(text, Catch::Contains("a::10.0.0.1:80::outlier_uneject_at::1970-01-01T00:17:10.000Z"));
  CHECK_THAT(text, Catch::Contains("a::outlier::ejections_enforced_consecutive_5xx::1\n"));
  CHECK_THAT(text, Catch::Contains("a::10.0.0.2:80::outlier_ejected::false\n"));
  const std::string json = f.cm->AdminJson();
  CHECK_THAT(json, Catch::Contains("{\"address\":\"10.0.0.1:80\",\"health\":\"unhealthy\","
                                   "\"health_flags\":[\"failed_outlier_check\"]"));
  CHECK_THAT(json, Catch::Contains("\"outlier\":{\"ejected\":true,\"times_ejected\":1,"
                                   "\"last_ejection\":\"consecutive_5xx\""));

  // Base ejection time (30 s), then the next interval returns it.
  f.clock.Advance(seconds(31));
  f.cm->Tick();
  CHECK(f.Flags("a", Key(1)) == 0);
}

TEST_CASE("cluster manager: results for hosts and clusters that left are dropped") {
  Fixture f;
  auto spec = f.Spec("a", {Endpoint(1)}, 1);
  Fixture::AddOutlier(*spec, 1);
  f.Update({spec});
  const uint32_t cluster = f.cm->views()->Find("a")->id;
  const uint32_t host = f.View("a", Key(1))->id;
  auto next = f.Spec("a", {Endpoint(2)}, 2);
  Fixture::AddOutlier(*next, 1);
  f.Update({next});
  ObservationBatcher w(&f.cm->observations());
  w.Record(cluster, host, {outlier::Result::Kind::kHttpResponse, 500, {}});
  w.Record(cluster + 100, 1, {outlier::Result::Kind::kHttpResponse, 500, {}});
  w.Flush();
  f.cm->Tick();
  CHECK(f.Flags("a", Key(2)) == 0);
}

TEST_CASE("cluster manager: flags are independent; a passing check returns an ejected host") {
  Fixture f;
  auto spec = f.Spec("a", {Endpoint(1), Endpoint(2), Endpoint(3)});
  Fixture::AddCheck(*spec, HttpCheck(1000, 1, 1));
  Fixture::AddOutlier(*spec, 1);
  f.Update({spec});
  const uint32_t cluster = f.cm->views()->Find("a")->id;
  const uint32_t host = f.View("a", Key(1))->id;
  ObservationBatcher w(&f.cm->observations());
  w.Record(cluster, host, {outlier::Result::Kind::kLocalConnectFailure, 0, {}});
  w.Flush();
  f.cm->Tick();
  REQUIRE(f.Flags("a", Key(1)) == kFailedOutlierCheck);
  f.Answer(Key(1), ProbeResult::kFailure);
  CHECK(f.Flags("a", Key(1)) == (kFailedOutlierCheck | kFailedActiveHc));
  f.Answer(Key(1), ProbeResult::kSuccess);
  // successful_active_health_check_uneject_host (Envoy's default): both flags clear.
  CHECK(f.Flags("a", Key(1)) == 0);

  // With un-ejection by checks turned off, a passing check clears only its own flag.
  auto strict = f.Spec("a", {Endpoint(1), Endpoint(2), Endpoint(3)}, 2);
  Fixture::AddCheck(*strict, HttpCheck(1000, 1, 1));
  Fixture::AddOutlier(*strict, 1);
  strict->failover.outlier->successful_active_health_check_uneject_host = false;
  f.Update({strict});
  w.Record(cluster, host, {outlier::Result::Kind::kLocalConnectFailure, 0, {}});
  w.Flush();
  f.cm->Tick();
  REQUIRE(f.Flags("a", Key(1)) == kFailedOutlierCheck);
  f.Answer(Key(1), ProbeResult::kSuccess);
  CHECK(f.Flags("a", Key(1)) == kFailedOutlierCheck);
}

TEST_CASE("cluster manager: priority failover and panic run on the combined health") {
  Fixture f;
  auto spec = f.Spec("a", {Endpoint(1, 0), Endpoint(2, 0), Endpoint(3, 1), Endpoint(4, 1)});
  Fixture::AddCheck(*spec, HttpCheck(1000, 1, 1));
  f.workers["a"];
  f.Update({spec});
  WorkerHosts& worker = f.workers["a"];
  auto lb = LoadBalancer::Create(LbAlgorithm::kRoundRobin, {}, worker.set(), &f.clock, &f.random);
  REQUIRE(lb.ok());
  auto picks = [&] {
    std::map<std::string, int> n;
    for (int i = 0; i < 100; ++i) ++n[(*lb)->ChooseHost({})->hash_key()];
    return n;
  };
  CHECK(picks() == std::map<std::string, int>{{Key(1), 50}, {Key(2), 50}});
  // Both priority-0 hosts fail their checks: priority 1 takes the traffic.
  f.Answer(Key(1), ProbeResult::kFailure);
  f.Answer(Key(2), ProbeResult::kFailure);
  CHECK(picks() == std::map<std::string, int>{{Key(3), 50}, {Key(4), 50}});
  // One of those ejected by outlier detection: priority 1 is at 50 %, not under the panic
  // threshold, so its one healthy host takes everything.
  auto od = f.Spec("a", {Endpoint(1, 0), Endpoint(2, 0), Endpoint(3, 1), Endpoint(4, 1)}, 2);
  Fixture::AddCheck(*od, HttpCheck(1000, 1, 1));
  Fixture::AddOutlier(*od, 1);
  f.Update({od});
  ObservationBatcher w(&f.cm->observations());
  auto fail = [&](int host) {
    w.Record(f.cm->views()->Find("a")->id, f.View("a", Key(host))->id,
             {outlier::Result::Kind::kHttpResponse, 500, {}});
    w.Flush();
    f.cm->Tick();
  };
  fail(3);
  REQUIRE(f.Flags("a", Key(3)) == kFailedOutlierCheck);
  CHECK(picks() == std::map<std::string, int>{{Key(4), 100}});
  // Nothing up anywhere: the first priority serves over all its hosts, in panic.
  fail(4);
  REQUIRE(f.Flags("a", Key(4)) == kFailedOutlierCheck);
  CHECK(picks() == std::map<std::string, int>{{Key(1), 50}, {Key(2), 50}});
}

TEST_CASE("cluster manager: under the panic threshold a priority balances over all its hosts") {
  Fixture f;
  auto spec = f.Spec("a", {Endpoint(1), Endpoint(2), Endpoint(3), Endpoint(4)});
  Fixture::AddCheck(*spec, HttpCheck(1000, 1, 1));
  f.workers["a"];
  f.Update({spec});
  auto lb =
      LoadBalancer::Create(LbAlgorithm::kRoundRobin, {}, f.workers["a"].set(), &f.clock, &f.random);
  REQUIRE(lb.ok());
  auto distinct = [&] {
    std::set<std::string> n;
    for (int i = 0; i < 100; ++i) n.insert((*lb)->ChooseHost({})->hash_key());
    return n.size();
  };
  f.Answer(Key(1), ProbeResult::kFailure);
  f.Answer(Key(2), ProbeResult::kFailure);
  CHECK(distinct() == 2);  // 50 %: not in panic
  f.Answer(Key(3), ProbeResult::kFailure);
  CHECK(distinct() == 4);  // 25 %: panic, every host gets traffic (Envoy's default 50 %)
}

TEST_CASE("cluster manager: workers keep host identity across health-only changes") {
  Fixture f;
  auto spec = f.Spec("a", {Endpoint(1), Endpoint(2)});
  Fixture::AddCheck(*spec, HttpCheck(1000, 1, 1));
  f.workers["a"];
  f.Update({spec});
  WorkerHosts& worker = f.workers["a"];
  Host* h1 = worker.set().all_hosts()[0].get();
  h1->set_active_requests(7);
  const uint64_t epoch = worker.set().epoch();
  f.Answer(Key(1), ProbeResult::kFailure);
  CHECK(worker.set().all_hosts()[0].get() == h1);
  CHECK(h1->active_requests() == 7);
  CHECK(h1->health() == HealthStatus::kUnhealthy);
  CHECK(worker.set().epoch() > epoch);
  CHECK(worker.HostId(*h1) == f.View("a", Key(1))->id);

  // A changed weight is a new host object; the other keeps its identity.
  auto heavier = f.Spec("a", {Endpoint(1), Endpoint(2)}, 2);
  heavier->endpoints[1].weight = 5;
  Fixture::AddCheck(*heavier, HttpCheck(1000, 1, 1));
  Host* h2 = worker.set().all_hosts()[1].get();
  f.Update({heavier});
  CHECK(worker.set().all_hosts()[0].get() == h1);
  CHECK(worker.set().all_hosts()[1].get() != h2);
  CHECK(worker.set().all_hosts()[1]->weight() == 5);
  CHECK(worker.HostId(*worker.set().all_hosts()[1]) == f.View("a", Key(2))->id);
}

TEST_CASE("cluster manager: no-traffic interval until the first result, then the interval") {
  Fixture f;
  auto hc = HttpCheck(1000, 1, 1);
  hc.mutable_no_traffic_interval()->set_seconds(60);
  auto spec = f.Spec("a", {Endpoint(1)});
  Fixture::AddCheck(*spec, hc);
  f.Update({spec});
  f.Answer(Key(1), ProbeResult::kSuccess);
  // Idle cluster: the next probe is a minute away.
  for (int i = 0; i < 40; ++i) {
    f.clock.Advance(milliseconds(50));
    f.cm->Tick();
  }
  CHECK(!f.Has(Key(1)));
  // Traffic arrives: probes come back to the interval at once.
  ObservationBatcher w(&f.cm->observations());
  w.Record(f.cm->views()->Find("a")->id, f.View("a", Key(1))->id,
           {outlier::Result::Kind::kHttpResponse, 200, {}});
  w.Flush();
  f.cm->Tick();
  for (int i = 0; i < 21 && !f.Has(Key(1)); ++i) {
    f.clock.Advance(milliseconds(50));
    f.cm->Tick();
  }
  CHECK(f.Has(Key(1)));
}

TEST_CASE("cluster manager: a bounded queue drops and counts what does not fit") {
  ObservationQueue q(3);
  std::vector<Observation> batch(2);
  q.Push(batch);
  CHECK(batch.empty());
  batch.resize(2);
  q.Push(batch);
  CHECK(q.dropped() == 1);
  CHECK(q.pushed() == 4);
  std::vector<Observation> out;
  q.Drain(&out);
  CHECK(out.size() == 3);
  q.Drain(&out);
  CHECK(out.empty());
}

TEST_CASE("cluster manager: failover settings from the Cluster resource") {
  envoy::config::cluster::v3::Cluster c;
  auto* hc = c.add_health_checks();
  *hc = HttpCheck(5000, 3, 2);
  c.mutable_outlier_detection()->mutable_consecutive_5xx()->set_value(7);
  auto* t = c.mutable_circuit_breakers()->add_thresholds();
  t->mutable_max_requests()->set_value(10);
  auto f = FailoverSpec::FromProto(c);
  REQUIRE(f.ok());
  REQUIRE(f->health_checks.size() == 1);
  CHECK(f->health_checks[0].schedule.interval == seconds(5));
  REQUIRE(f->outlier.has_value());
  CHECK(f->outlier->consecutive_5xx == 7);
  CHECK(f->outlier->base_ejection_time == seconds(30));
  CHECK(f->limits.max_requests == 10);
  CHECK(f->limits.max_connections == 1024);

  c.mutable_health_checks(0)->mutable_alt_port()->set_value(9);
  auto bad = FailoverSpec::FromProto(c);
  REQUIRE(!bad.ok());
  CHECK_THAT(std::string(bad.status().message()), Catch::StartsWith("health_checks[0].alt_port"));
}

TEST_CASE("cluster manager: Prometheus text passes promtool") {
  Fixture f;
  auto spec = f.Spec("a\"x", {Endpoint(1), Endpoint(2)});
  Fixture::AddCheck(*spec, HttpCheck());
  Fixture::AddOutlier(*spec);
  f.Update({spec, f.Spec("b", {Endpoint(3)})});
  f.Answer(Key(1), ProbeResult::kSuccess);
  const std::string text = f.cm->PrometheusText();
  CHECK_THAT(text, Catch::Contains(
                       "weft_proxy_cluster_health_check_success_total{cluster=\"a\\\"x\"} 1\n"));
  CHECK_THAT(text, Catch::Contains("weft_proxy_cluster_membership_healthy{cluster=\"b\"} 1\n"));
  CHECK_THAT(text, Catch::Contains(
                       "weft_proxy_cluster_outlier_ejections_enforced_total{cluster=\"a\\\"x\","
                       "type=\"consecutive_5xx\"} 0\n"));
  CHECK_THAT(text,
             Catch::Contains("weft_proxy_cluster_circuit_breakers_rq_max{cluster=\"b\"} 1024\n"));
  auto result = test::PromtoolCheck(text);
  if (!result) {
    WARN("promtool not installed; format not checked by the real parser");
  } else {
    INFO(result->output);
    CHECK(result->ok);
  }
}

}  // namespace
}  // namespace weft::upstream
