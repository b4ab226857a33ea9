// The cluster manager: one owner, on the proxy's main side, for every cluster's hosts and their
// health, and the immutable views of them that the workers balance over.
//
// Health comes from independent producers and is kept as independent flags per host, as Envoy
// does (envoy/upstream/host_description.h, Host::HealthFlag): the EDS health status sent by the
// control plane, the active health checkers (one per cluster and health check, for the whole
// proxy: a host sees one probe per interval, whatever the number of workers), and outlier
// detection (one detector per cluster, fed what every worker observed). A host's combined
// health, the one the balancers read (panic threshold, priority failover, degraded hosts), is:
//   draining  when EDS says DRAINING (leaving on purpose: no new requests, and it counts neither
//             for nor against its priority's health);
//   unhealthy when any failure flag is set (EDS UNHEALTHY/TIMEOUT, a failed or still pending
//             active check, an outlier ejection);
//   degraded  when EDS says DEGRADED;
//   healthy   otherwise.
//
// Flow:
//   xDS ──Update(specs)──> ClusterManager ──publish(ClusterViews)──> every worker (WorkerHosts)
//                               ^                                        │
//                               └──── ObservationQueue <── ObservationBatcher (per worker)
// Workers report each request's outcome (status, latency, connect failure, timeout, reset) to
// their own batcher, which hands full batches to the shared queue on the worker's tick; the
// main side drains the queue on its tick, so a detector counts the results of all workers.
//
// Threading: ClusterManager belongs to one thread (the main side's event loop; probers call
// back there too). ObservationQueue is the only thread-safe piece: workers push, the main side
// drains, one short lock per batch (never per request). ObservationBatcher and WorkerHosts
// belong to one worker. Views are immutable once published and shared by every worker; the
// circuit breakers they carry are the cluster's (atomics shared by the workers).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "data-plane/upstream/health/health_checker.h"
#include "data-plane/upstream/host.h"
#include "data-plane/upstream/lb/load_balancer.h"
#include "data-plane/upstream/outlier/outlier_detector.h"
#include "data-plane/upstream/resource_manager.h"
#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/core/v3/health_check.pb.h"

namespace weft::upstream {

// ---------------------------------------------------------------------------------------------
// Health flags

// Why a host is not (fully) healthy. Independent bits: each producer sets and clears its own.
enum HostFlag : uint32_t {
  kFailedEdsHealth = 1u << 0,     // EDS: UNHEALTHY or TIMEOUT
  kDegradedEdsHealth = 1u << 1,   // EDS: DEGRADED
  kEdsStatusDraining = 1u << 2,   // EDS: DRAINING
  kFailedActiveHc = 1u << 3,      // an active health check failed
  kPendingActiveHc = 1u << 4,     // a host that joined is not checked yet (no traffic until then)
  kFailedOutlierCheck = 1u << 5,  // ejected by outlier detection
};
// Envoy's /clusters names, "/"-joined ("/failed_active_hc/failed_outlier_check"), or "healthy".
std::string HostFlagsString(uint32_t flags);
// The balancers' view of a set of flags (see the file comment).
HealthStatus CombinedHealth(uint32_t flags);

// ---------------------------------------------------------------------------------------------
// Input: what xDS says a cluster is

struct EndpointSpec {
  std::string address;
  uint16_t port = 0;
  uint32_t weight = 1;
  uint32_t priority = 0;
  std::shared_ptr<const Locality> locality;  // null: the empty locality
  HealthStatus eds_health = HealthStatus::kHealthy;
  Clock::TimePoint joined_at{};  // slow start ramps from here, on every worker alike
};

struct HealthCheckSpec {
  health::Schedule schedule;
  // What the prober needs (kind, path, statuses, payloads, service name); compared whole to
  // tell whether a checker can stay when the cluster changes.
  envoy::config::core::v3::HealthCheck config;
};

// The failover settings of a Cluster resource: its health checks, outlier detection and
// circuit breakers, with Envoy's defaults. Fails with the field path on what the engines do not
// implement (the same checks common/xds runs when it validates a Cluster).
struct FailoverSpec {
  std::vector<HealthCheckSpec> health_checks;
  std::optional<outlier::Config> outlier;
  ResourceLimits limits;
  static absl::StatusOr<FailoverSpec> FromProto(const envoy::config::cluster::v3::Cluster& c);
};

struct ClusterSpec {
  std::string name;
  std::vector<EndpointSpec> endpoints;
  std::vector<LocalityWeight> locality_weights;
  FailoverSpec failover;
  // Equal versions mean nothing changed (the cluster and its endpoints together).
  uint64_t version = 0;
};

// ---------------------------------------------------------------------------------------------
// Output: immutable views for the workers

struct HostView {
  std::string address;
  uint16_t port = 0;
  uint32_t weight = 1;
  uint32_t priority = 0;
  std::shared_ptr<const Locality> locality;
  Clock::TimePoint joined_at{};
  HealthStatus health = HealthStatus::kHealthy;  // CombinedHealth(flags)
  uint32_t flags = 0;
  // Stable while the host stays in the cluster, never reused: what workers report results by.
  uint32_t id = 0;
};

struct ClusterView {
  std::string name;
  uint32_t id = 0;  // what workers report results by; a re-added cluster gets a new one
  // Grows with every change of this cluster's hosts or their health.
  uint64_t epoch = 0;
  std::vector<HostView> hosts;
  std::vector<LocalityWeight> locality_weights;
  // The cluster's circuit breakers and retry budget, shared by every worker. Replaced only when
  // the limits change; a request releases into the manager it acquired from.
  std::shared_ptr<ResourceManager> resources;
};

struct ClusterViews {
  uint64_t epoch = 0;  // grows with every publication
  std::map<std::string, std::shared_ptr<const ClusterView>, std::less<>> clusters;
  const ClusterView* Find(std::string_view name) const {
    auto it = clusters.find(name);
    return it == clusters.end() ? nullptr : it->second.get();
  }
};

// ---------------------------------------------------------------------------------------------
// Worker → main: what requests came to

struct Observation {
  uint32_t cluster = 0;  // ClusterView::id
  uint32_t host = 0;     // HostView::id
  outlier::Result result;
};

// Thread-safe: any number of workers push, the main side drains. Bounded: when the main side
// falls behind, what does not fit is dropped and counted rather than held.
class ObservationQueue {
 public:
  explicit ObservationQueue(size_t max_pending = 1 << 20) : max_pending_(max_pending) {}
  // Takes the contents of `batch` and leaves it empty (with capacity to reuse: when the queue
  // was empty the two vectors are swapped, so steady state allocates nothing).
  void Push(std::vector<Observation>& batch);
  // Moves everything pending into `out` (cleared first).
  void Drain(std::vector<Observation>* out);
  uint64_t dropped() const;
  uint64_t pushed() const;

 private:
  const size_t max_pending_;
  mutable std::mutex mu_;
  std::vector<Observation> pending_;
  uint64_t dropped_ = 0;
  uint64_t pushed_ = 0;
};

// One worker's outgoing batch: Record on the request path (appends, no lock), Flush on the
// worker's tick (and by itself when the batch is full).
class ObservationBatcher {
 public:
  explicit ObservationBatcher(ObservationQueue* queue, size_t flush_at = 4096)
      : queue_(queue), flush_at_(flush_at) {
    batch_.reserve(flush_at);
  }
  void Record(uint32_t cluster, uint32_t host, const outlier::Result& result) {
    batch_.push_back(Observation{cluster, host, result});
    if (batch_.size() >= flush_at_) Flush();
  }
  void Flush() {
    if (!batch_.empty()) queue_->Push(batch_);
  }
  size_t pending() const { return batch_.size(); }

 private:
  ObservationQueue* queue_;
  size_t flush_at_;
  std::vector<Observation> batch_;
};

// ---------------------------------------------------------------------------------------------
// Worker side: a PrioritySet kept in line with the published view

// One cluster's hosts on one worker. Apply keeps the identity of hosts that stay with the same
// address, weight, priority and locality (their active-request counts and latency estimates
// survive), turns a health-only change into PrioritySet::SetHealth, and rebuilds membership
// only when it changed. Balancers built over set() notice every change through its epoch.
class WorkerHosts {
 public:
  void Apply(const ClusterView& view);
  const PrioritySet& set() const { return set_; }
  // The id to report a result for `host` by (0 for a host this set does not hold).
  uint32_t HostId(const Host& host) const;
  uint32_t cluster_id() const { return cluster_id_; }
  uint64_t epoch() const { return epoch_; }

 private:
  PrioritySet set_;
  std::unordered_map<const Host*, uint32_t> ids_;
  std::vector<LocalityWeight> locality_weights_;
  uint32_t cluster_id_ = 0;
  uint64_t epoch_ = 0;
};

// ---------------------------------------------------------------------------------------------
// The main side

// Builds the prober for one health check of `cluster` (HTTP, TCP or gRPC; probers.h).
using ProberFactory = std::function<absl::StatusOr<std::unique_ptr<health::Prober>>(
    const std::string& cluster, const envoy::config::core::v3::HealthCheck& config)>;

// One host as /clusters shows it.
struct HostReport {
  std::string key;  // "address:port"
  HealthStatus health = HealthStatus::kHealthy;
  uint32_t flags = 0;
  uint32_t weight = 1;
  uint32_t priority = 0;
  std::shared_ptr<const Locality> locality;
  // Per health check, in config order.
  struct ActiveCheck {
    health::HostHealth::State state = health::HostHealth::State::kPending;
    health::ProbeResult last_result = health::ProbeResult::kSuccess;
    std::chrono::system_clock::time_point last_probe{};  // epoch when never probed
    uint32_t failures = 0;                               // in a row
    uint64_t probes = 0;
  };
  std::vector<ActiveCheck> active;
  // Outlier detection (absent when the cluster has none).
  struct Outlier {
    bool ejected = false;
    outlier::EjectionType last_type = outlier::EjectionType::kConsecutive5xx;
    std::chrono::system_clock::time_point ejected_at{};  // the last ejection
    std::chrono::system_clock::time_point uneject_at{};  // while ejected
    uint64_t times_ejected = 0;
  };
  std::optional<Outlier> outlier;
};

struct ClusterReport {
  std::string name;
  std::vector<HostReport> hosts;
  std::vector<health::CheckerStats> health_checks;  // per health check
  std::optional<outlier::Stats> outlier;
  ResourceLimits limits;
  // Current use of the circuit breakers, across workers.
  uint64_t connections = 0;
  uint64_t pending_requests = 0;
  uint64_t requests = 0;
  uint64_t retries = 0;
};

class ClusterManager {
 public:
  struct Options {
    Clock* clock = nullptr;
    Random* random = nullptr;
    ProberFactory probers;  // may be empty when no cluster has health checks
    // Called on the manager's thread with every new set of views (after Update, and after a
    // Tick that changed health). The server posts them to the workers.
    std::function<void(std::shared_ptr<const ClusterViews>)> publish;
    size_t max_queued_observations = 1 << 20;
  };
  explicit ClusterManager(Options options);
  ~ClusterManager();
  ClusterManager(const ClusterManager&) = delete;
  ClusterManager& operator=(const ClusterManager&) = delete;

  // Replaces the set of clusters. A cluster whose version is unchanged is left as it is; a
  // changed one keeps the health state of the hosts that stay, and its checkers and detector
  // when their config is unchanged. Fails (changing nothing) when a prober cannot be built.
  // Publishes.
  absl::Status Update(std::vector<std::shared_ptr<const ClusterSpec>> clusters);

  // Call often (the main loop's tick): feeds the detectors what workers reported, runs the
  // outlier intervals that are due, sends due probes, and publishes when health changed.
  void Tick();

  // Where workers push their batches. Thread-safe.
  ObservationQueue& observations() { return queue_; }
  std::shared_ptr<const ClusterViews> views() const { return views_; }

  // For /clusters and the stats.
  std::vector<ClusterReport> Report() const;
  // Envoy-style "cluster::host::name::value" lines for the flags, active checks and ejections,
  // and "cluster::default_priority::max_requests::1024" style lines for the circuit breakers.
  std::string AdminText() const;
  std::string AdminJson() const;
  // weft_proxy_cluster_health_check_*, _outlier_*, _membership_*, _circuit_breakers_* families.
  std::string PrometheusText() const;

 private:
  struct Host;
  struct Cluster;

  void Publish();
  void RecomputeFlags(Cluster& cluster, Host& host);
  void OnProbeDone(Cluster& cluster, size_t check, const std::string& key,
                   health::ProbeResult result);
  absl::Status Rebuild(Cluster& cluster, const std::shared_ptr<const ClusterSpec>& spec);

  Options options_;
  ObservationQueue queue_;
  std::map<std::string, std::unique_ptr<Cluster>, std::less<>> clusters_;
  std::unordered_map<uint32_t, Cluster*> by_id_;
  std::vector<Observation> drained_;
  std::shared_ptr<const ClusterViews> views_;
  uint32_t next_cluster_id_ = 1;
  uint32_t next_host_id_ = 1;
  uint64_t next_epoch_ = 1;
};

}  // namespace weft::upstream
