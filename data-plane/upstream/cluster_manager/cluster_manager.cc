#include "data-plane/upstream/cluster_manager/cluster_manager.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/message_differencer.h"

namespace weft::upstream {

// ---------------------------------------------------------------------------------------------
// Flags

std::string HostFlagsString(uint32_t flags) {
  if (flags == 0) return "healthy";
  static constexpr std::pair<uint32_t, std::string_view> kNames[] = {
      {kFailedActiveHc, "failed_active_hc"},   {kFailedOutlierCheck, "failed_outlier_check"},
      {kFailedEdsHealth, "failed_eds_health"}, {kDegradedEdsHealth, "degraded_eds_health"},
      {kPendingActiveHc, "pending_active_hc"}, {kEdsStatusDraining, "eds_status_draining"},
  };
  std::string out;
  for (const auto& [bit, name] : kNames) {
    if (flags & bit) absl::StrAppend(&out, "/", absl::string_view(name.data(), name.size()));
  }
  return out;
}

HealthStatus CombinedHealth(uint32_t flags) {
  if (flags & kEdsStatusDraining) return HealthStatus::kDraining;
  if (flags & (kFailedEdsHealth | kFailedActiveHc | kPendingActiveHc | kFailedOutlierCheck)) {
    return HealthStatus::kUnhealthy;
  }
  if (flags & kDegradedEdsHealth) return HealthStatus::kDegraded;
  return HealthStatus::kHealthy;
}

namespace {

uint32_t EdsFlags(HealthStatus eds) {
  switch (eds) {
    case HealthStatus::kUnhealthy:
      return kFailedEdsHealth;
    case HealthStatus::kDegraded:
      return kDegradedEdsHealth;
    case HealthStatus::kDraining:
      return kEdsStatusDraining;
    case HealthStatus::kHealthy:
      break;
  }
  return 0;
}

std::string KeyOf(const EndpointSpec& e) { return absl::StrCat(e.address, ":", e.port); }

const std::shared_ptr<const Locality>& EmptyLocality() {
  static const auto* empty = new std::shared_ptr<const Locality>(std::make_shared<Locality>());
  return *empty;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Failover settings from the Cluster resource

absl::StatusOr<FailoverSpec> FailoverSpec::FromProto(const envoy::config::cluster::v3::Cluster& c) {
  FailoverSpec out;
  for (int i = 0; i < c.health_checks_size(); ++i) {
    auto schedule = health::Schedule::FromProto(c.health_checks(i));
    if (!schedule.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("health_checks[", i, "].", schedule.status().message()));
    }
    out.health_checks.push_back(HealthCheckSpec{*schedule, c.health_checks(i)});
  }
  if (c.has_outlier_detection()) {
    auto config = outlier::Config::FromProto(c.outlier_detection());
    if (!config.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("outlier_detection.", config.status().message()));
    }
    out.outlier = *config;
  }
  if (c.has_circuit_breakers()) {
    auto limits = ResourceLimits::FromProto(c.circuit_breakers());
    if (!limits.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("circuit_breakers.", limits.status().message()));
    }
    out.limits = *limits;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Worker → main

void ObservationQueue::Push(std::vector<Observation>& batch) {
  std::lock_guard<std::mutex> lock(mu_);
  pushed_ += batch.size();
  if (pending_.empty() && batch.size() <= max_pending_) {
    pending_.swap(batch);
  } else {
    const size_t room = max_pending_ > pending_.size() ? max_pending_ - pending_.size() : 0;
    const size_t take = std::min(room, batch.size());
    pending_.insert(pending_.end(), batch.begin(), batch.begin() + static_cast<ptrdiff_t>(take));
    dropped_ += batch.size() - take;
  }
  batch.clear();
}

void ObservationQueue::Drain(std::vector<Observation>* out) {
  out->clear();
  std::lock_guard<std::mutex> lock(mu_);
  out->swap(pending_);
}

uint64_t ObservationQueue::dropped() const {
  std::lock_guard<std::mutex> lock(mu_);
  return dropped_;
}

uint64_t ObservationQueue::pushed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pushed_;
}

// ---------------------------------------------------------------------------------------------
// Worker side

void WorkerHosts::Apply(const ClusterView& view) {
  if (view.id == cluster_id_ && view.epoch == epoch_) return;
  std::unordered_map<uint32_t, HostPtr> current;
  if (view.id == cluster_id_) {
    for (const HostPtr& h : set_.all_hosts()) current.emplace(ids_.at(h.get()), h);
  }
  std::vector<HostPtr> hosts;
  hosts.reserve(view.hosts.size());
  std::vector<std::pair<Host*, HealthStatus>> health;
  for (const HostView& v : view.hosts) {
    const Locality& locality = v.locality != nullptr ? *v.locality : *EmptyLocality();
    auto it = current.find(v.id);
    if (it != current.end() && it->second->weight() == std::max<uint32_t>(1, v.weight) &&
        it->second->priority() == v.priority && it->second->locality() == locality &&
        it->second->created_at() == v.joined_at) {
      hosts.push_back(it->second);
      if (it->second->health() != v.health) health.emplace_back(it->second.get(), v.health);
      continue;
    }
    Host::Options o;
    o.address = v.address;
    o.port = v.port;
    o.weight = v.weight;
    o.shared_locality = v.locality != nullptr ? v.locality : EmptyLocality();
    o.priority = v.priority;
    o.health = v.health;
    o.created_at = v.joined_at;
    hosts.push_back(std::make_shared<Host>(std::move(o)));
  }
  bool same_members = hosts.size() == set_.all_hosts().size() && view.id == cluster_id_;
  for (size_t i = 0; same_members && i < hosts.size(); ++i) {
    same_members = hosts[i] == set_.all_hosts()[i];
  }
  for (const auto& [host, status] : health) set_.SetHealth(*host, status);
  if (!same_members || view.id != cluster_id_) {
    ids_.clear();
    for (size_t i = 0; i < hosts.size(); ++i) ids_[hosts[i].get()] = view.hosts[i].id;
    set_.Update(std::move(hosts), view.locality_weights);
  } else if (view.locality_weights.size() != locality_weights_.size() ||
             !std::equal(view.locality_weights.begin(), view.locality_weights.end(),
                         locality_weights_.begin(), [](const auto& a, const auto& b) {
                           return a.locality == b.locality && a.weight == b.weight;
                         })) {
    set_.Update(set_.all_hosts(), view.locality_weights);
  }
  locality_weights_ = view.locality_weights;
  cluster_id_ = view.id;
  epoch_ = view.epoch;
}

uint32_t WorkerHosts::HostId(const Host& host) const {
  auto it = ids_.find(&host);
  return it == ids_.end() ? 0 : it->second;
}

// ---------------------------------------------------------------------------------------------
// The main side

struct ClusterManager::Host {
  std::string key;
  uint32_t eds_flags = 0;
  uint32_t flags = 0;
};

struct ClusterManager::Cluster {
  // One entry of the assignment (the same address:port may appear in two localities; they
  // share one health state).
  struct Member {
    EndpointSpec endpoint;
    Host* host;
    uint32_t id;
  };

  uint32_t id = 0;
  std::shared_ptr<const ClusterSpec> spec;
  std::vector<Member> members;
  std::map<std::string, std::unique_ptr<Host>, std::less<>> hosts;
  std::unordered_map<uint32_t, Host*> by_member_id;
  std::vector<std::unique_ptr<health::Checker>> checkers;
  std::unique_ptr<outlier::Detector> detector;
  Clock::TimePoint next_interval{};
  std::shared_ptr<ResourceManager> resources;
  bool active = false;  // has carried traffic
  bool dirty = true;
  uint64_t epoch = 0;
  std::shared_ptr<const ClusterView> view;
};

namespace {

// Wraps a cluster's prober so the manager hears every answer, after the checker has: a passing
// check may return an ejected host, and a pending host that fails stays out without the checker
// reporting a transition.
class ReportingProber final : public health::Prober {
 public:
  using Hook = std::function<void(const std::string& host, health::ProbeResult)>;
  ReportingProber(std::unique_ptr<health::Prober> inner, Hook hook)
      : inner_(std::move(inner)), hook_(std::move(hook)) {}
  ~ReportingProber() override { *alive_ = false; }
  void Probe(const std::string& host, health::milliseconds timeout,
             std::function<void(health::ProbeResult)> done) override {
    std::weak_ptr<bool> alive = alive_;
    inner_->Probe(host, timeout,
                  [this, alive, host, done = std::move(done)](health::ProbeResult result) {
                    done(result);
                    if (auto a = alive.lock(); a && *a) hook_(host, result);
                  });
  }

 private:
  std::unique_ptr<health::Prober> inner_;
  Hook hook_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

bool SameCheck(const HealthCheckSpec& a, const HealthCheckSpec& b) {
  return google::protobuf::util::MessageDifferencer::Equals(a.config, b.config);
}

}  // namespace

ClusterManager::ClusterManager(Options options)
    : options_(std::move(options)), queue_(options_.max_queued_observations) {
  views_ = std::make_shared<const ClusterViews>();
}

ClusterManager::~ClusterManager() = default;

absl::Status ClusterManager::Update(std::vector<std::shared_ptr<const ClusterSpec>> clusters) {
  // Probers first, for every checker that cannot stay: nothing changes unless all of them can
  // be built.
  std::map<std::pair<std::string, size_t>, std::unique_ptr<health::Prober>> probers;
  for (const auto& spec : clusters) {
    auto existing = clusters_.find(spec->name);
    const Cluster* old = existing != clusters_.end() ? existing->second.get() : nullptr;
    if (old != nullptr && old->spec->version == spec->version) continue;
    const auto& checks = spec->failover.health_checks;
    for (size_t i = 0; i < checks.size(); ++i) {
      if (old != nullptr && i < old->spec->failover.health_checks.size() &&
          i < old->checkers.size() && SameCheck(old->spec->failover.health_checks[i], checks[i])) {
        continue;
      }
      if (!options_.probers) {
        return absl::FailedPreconditionError(absl::StrCat(
            "cluster \"", spec->name, "\": health_checks[", i, "]: no prober available"));
      }
      auto prober = options_.probers(spec->name, checks[i].config);
      if (!prober.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "cluster \"", spec->name, "\": health_checks[", i, "]: ", prober.status().message()));
      }
      probers[{spec->name, i}] = std::move(*prober);
    }
  }

  std::map<std::string, std::unique_ptr<Cluster>, std::less<>> next;
  for (const auto& spec : clusters) {
    auto existing = clusters_.find(spec->name);
    std::unique_ptr<Cluster> cluster;
    if (existing != clusters_.end()) {
      cluster = std::move(existing->second);
      clusters_.erase(existing);
      if (cluster->spec->version == spec->version) {
        cluster->spec = spec;
        next.emplace(spec->name, std::move(cluster));
        continue;
      }
    } else {
      cluster = std::make_unique<Cluster>();
      cluster->id = next_cluster_id_++;
    }
    Cluster& c = *cluster;
    const ClusterSpec* before = c.spec.get();
    c.spec = spec;
    c.dirty = true;

    // Membership: the k-th entry for an address keeps the k-th entry's id.
    std::map<std::string, std::vector<uint32_t>, std::less<>> old_ids;
    for (const Cluster::Member& m : c.members) old_ids[m.host->key].push_back(m.id);
    std::map<std::string, std::unique_ptr<Host>, std::less<>> hosts;
    std::vector<Cluster::Member> members;
    std::map<std::string, size_t, std::less<>> seen;
    members.reserve(spec->endpoints.size());
    for (const EndpointSpec& e : spec->endpoints) {
      std::string key = KeyOf(e);
      auto h = hosts.find(key);
      if (h == hosts.end()) {
        auto old = c.hosts.find(key);
        std::unique_ptr<Host> host;
        if (old != c.hosts.end()) {
          host = std::move(old->second);
        } else {
          host = std::make_unique<Host>();
          host->key = key;
        }
        host->eds_flags = EdsFlags(e.eds_health);
        h = hosts.emplace(key, std::move(host)).first;
      }
      const size_t k = seen[key]++;
      auto ids = old_ids.find(key);
      const uint32_t id =
          ids != old_ids.end() && k < ids->second.size() ? ids->second[k] : next_host_id_++;
      members.push_back(Cluster::Member{e, h->second.get(), id});
    }
    c.hosts = std::move(hosts);
    c.members = std::move(members);
    c.by_member_id.clear();
    for (const Cluster::Member& m : c.members) c.by_member_id[m.id] = m.host;
    std::vector<std::string> keys;
    keys.reserve(c.hosts.size());
    for (const auto& [key, h] : c.hosts) keys.push_back(key);

    // Active health checks: a checker whose config is unchanged keeps its hosts' state.
    const auto& checks = spec->failover.health_checks;
    std::vector<std::unique_ptr<health::Checker>> checkers(checks.size());
    for (size_t i = 0; i < checks.size(); ++i) {
      auto p = probers.find({spec->name, i});
      if (p == probers.end()) {
        checkers[i] = std::move(c.checkers[i]);
        continue;
      }
      Cluster* cp = &c;
      auto prober = std::make_unique<ReportingProber>(
          std::move(p->second), [this, cp, i](const std::string& key, health::ProbeResult r) {
            OnProbeDone(*cp, i, key, r);
          });
      checkers[i] = std::make_unique<health::Checker>(checks[i].schedule, std::move(prober),
                                                      options_.clock, options_.random,
                                                      [this, cp](std::string_view key, bool) {
                                                        auto h = cp->hosts.find(key);
                                                        if (h != cp->hosts.end())
                                                          RecomputeFlags(*cp, *h->second);
                                                      });
      checkers[i]->SetClusterActive(c.active);
    }
    c.checkers = std::move(checkers);
    for (auto& checker : c.checkers) checker->SetHosts(keys);

    // Outlier detection: a detector whose config is unchanged keeps its ejections.
    const bool keep_detector = c.detector != nullptr && before != nullptr &&
                               before->failover.outlier == spec->failover.outlier;
    if (!spec->failover.outlier) {
      c.detector.reset();
    } else if (!keep_detector) {
      Cluster* cp = &c;
      c.detector = std::make_unique<outlier::Detector>(
          *spec->failover.outlier, options_.clock, options_.random,
          [this, cp](std::string_view key, bool, outlier::EjectionType) {
            auto h = cp->hosts.find(key);
            if (h != cp->hosts.end()) RecomputeFlags(*cp, *h->second);
          });
      c.next_interval = options_.clock->Now() + spec->failover.outlier->interval;
    }
    if (c.detector) c.detector->SetHosts(keys);

    if (c.resources == nullptr || c.resources->limits() != spec->failover.limits) {
      c.resources = std::make_shared<ResourceManager>(spec->failover.limits);
    }
    for (auto& [key, h] : c.hosts) RecomputeFlags(c, *h);
    next.emplace(spec->name, std::move(cluster));
  }
  clusters_ = std::move(next);
  by_id_.clear();
  for (auto& [name, c] : clusters_) by_id_[c->id] = c.get();
  Publish();
  return absl::OkStatus();
}

void ClusterManager::RecomputeFlags(Cluster& cluster, Host& host) {
  uint32_t flags = host.eds_flags;
  for (const auto& checker : cluster.checkers) {
    if (checker == nullptr) continue;
    const health::HostHealth* h = checker->Find(host.key);
    if (h == nullptr) continue;
    if (h->state == health::HostHealth::State::kPending) flags |= kPendingActiveHc;
    if (h->state == health::HostHealth::State::kUnhealthy) flags |= kFailedActiveHc;
  }
  if (cluster.detector) {
    const outlier::HostInfo* info = cluster.detector->Find(host.key);
    if (info != nullptr && info->ejected) flags |= kFailedOutlierCheck;
  }
  if (flags != host.flags) {
    host.flags = flags;
    cluster.dirty = true;
  }
}

void ClusterManager::OnProbeDone(Cluster& cluster, size_t, const std::string& key,
                                 health::ProbeResult result) {
  auto h = cluster.hosts.find(key);
  if (h == cluster.hosts.end()) return;
  // Envoy returns an ejected host on a passing check unless told not to; the detector knows
  // whether it was.
  if (result == health::ProbeResult::kSuccess && cluster.detector) {
    cluster.detector->OnActiveHealthCheckSuccess(key);
  }
  RecomputeFlags(cluster, *h->second);
}

void ClusterManager::Tick() {
  queue_.Drain(&drained_);
  for (const Observation& o : drained_) {
    auto c = by_id_.find(o.cluster);
    if (c == by_id_.end()) continue;  // a cluster that left while requests were in flight
    Cluster& cluster = *c->second;
    if (!cluster.active) {
      cluster.active = true;
      for (auto& checker : cluster.checkers) checker->SetClusterActive(true);
    }
    if (!cluster.detector) continue;
    auto h = cluster.by_member_id.find(o.host);
    if (h == cluster.by_member_id.end()) continue;
    cluster.detector->Report(h->second->key, o.result);
  }
  const Clock::TimePoint now = options_.clock->Now();
  for (auto& [name, c] : clusters_) {
    if (c->detector && now >= c->next_interval) {
      c->detector->RunInterval();
      c->next_interval = now + c->detector->config().interval;
    }
    for (auto& checker : c->checkers) checker->Tick();
  }
  for (const auto& [name, c] : clusters_) {
    if (c->dirty) {
      Publish();
      break;
    }
  }
}

void ClusterManager::Publish() {
  auto views = std::make_shared<ClusterViews>();
  views->epoch = next_epoch_++;
  for (auto& [name, c] : clusters_) {
    if (c->dirty || c->view == nullptr) {
      auto view = std::make_shared<ClusterView>();
      view->name = name;
      view->id = c->id;
      view->epoch = ++c->epoch;
      view->locality_weights = c->spec->locality_weights;
      view->resources = c->resources;
      view->hosts.reserve(c->members.size());
      for (const Cluster::Member& m : c->members) {
        HostView h;
        h.address = m.endpoint.address;
        h.port = m.endpoint.port;
        h.weight = m.endpoint.weight;
        h.priority = m.endpoint.priority;
        h.locality = m.endpoint.locality;
        h.joined_at = m.endpoint.joined_at;
        h.flags = m.host->flags;
        h.health = CombinedHealth(h.flags);
        h.id = m.id;
        view->hosts.push_back(std::move(h));
      }
      c->view = std::move(view);
      c->dirty = false;
    }
    views->clusters.emplace(name, c->view);
  }
  views_ = std::move(views);
  if (options_.publish) options_.publish(views_);
}

std::vector<ClusterReport> ClusterManager::Report() const {
  const Clock::TimePoint now = options_.clock->Now();
  const auto wall_now = options_.clock->WallNow();
  auto wall = [&](Clock::TimePoint t) {
    return wall_now - std::chrono::duration_cast<std::chrono::system_clock::duration>(now - t);
  };
  std::vector<ClusterReport> out;
  out.reserve(clusters_.size());
  for (const auto& [name, c] : clusters_) {
    ClusterReport r;
    r.name = name;
    for (const auto& checker : c->checkers) r.health_checks.push_back(checker->stats());
    if (c->detector) r.outlier = c->detector->stats();
    r.limits = c->resources->limits();
    r.connections = c->resources->connections().current();
    r.pending_requests = c->resources->pending_requests().current();
    r.requests = c->resources->requests().current();
    r.retries = c->resources->retries().current();
    for (const Cluster::Member& m : c->members) {
      HostReport h;
      h.key = m.host->key;
      h.flags = m.host->flags;
      h.health = CombinedHealth(h.flags);
      h.weight = m.endpoint.weight;
      h.priority = m.endpoint.priority;
      h.locality = m.endpoint.locality;
      for (const auto& checker : c->checkers) {
        HostReport::ActiveCheck a;
        if (const health::HostHealth* hh = checker->Find(h.key)) {
          a.state = hh->state;
          a.last_result = hh->last_result;
          a.failures = hh->failures;
          a.probes = hh->probes;
          if (hh->probes > 0) a.last_probe = wall(hh->last_probe);
        }
        h.active.push_back(a);
      }
      if (c->detector) {
        HostReport::Outlier o;
        if (const outlier::HostInfo* info = c->detector->Find(h.key)) {
          o.ejected = info->ejected;
          o.last_type = info->last_type;
          o.times_ejected = info->times_ejected;
          if (info->times_ejected > 0) o.ejected_at = wall(info->ejected_at);
          if (info->ejected) o.uneject_at = wall(info->uneject_at);
        }
        h.outlier = o;
      }
      r.hosts.push_back(std::move(h));
    }
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace weft::upstream
