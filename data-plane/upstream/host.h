// Upstream hosts as one worker sees them. Discovery (EDS) produces the membership, health
// checking and outlier detection produce health, and the balancers in lb/ only read both: the
// three concerns stay apart, as in Pingora's load-balancing crate.
//
// Threading: every worker owns its own PrioritySet and Host objects (a copy of the cluster's
// membership), so the per-host request statistics below are plain integers, never shared.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"

namespace weft::upstream {

struct Locality {
  std::string region;
  std::string zone;
  std::string sub_zone;
  bool operator==(const Locality&) const = default;
};

enum class HealthStatus : uint8_t {
  kHealthy,
  kUnhealthy,
  // Serves, but only when healthy hosts cannot carry the load (Envoy's DEGRADED).
  kDegraded,
  // Leaving on purpose: gets no new requests and does not count against its priority's health.
  kDraining,
};
// "healthy", "unhealthy", "degraded", "draining".
std::string_view HealthStatusName(HealthStatus health);

// Peak-EWMA round-trip estimate, maintained by the least-response-time balancer. Stored on the
// host so that it survives balancer rebuilds after membership changes.
struct RttEwma {
  double ewma_ns = 0;
  Clock::TimePoint last_update{};
  bool has_sample = false;
};

class Host {
 public:
  struct Options {
    std::string address;
    uint16_t port = 0;
    uint32_t weight = 1;  // values below 1 are raised to 1
    Locality locality;
    // When set, used instead of `locality`: the hosts of one locality share one copy (a mesh
    // has few localities and many hosts).
    std::shared_ptr<const Locality> shared_locality;
    uint32_t priority = 0;
    HealthStatus health = HealthStatus::kHealthy;
    // When the host joined the cluster; slow start ramps its weight from here.
    Clock::TimePoint created_at{};
  };
  explicit Host(Options options);

  const std::string& address() const { return address_; }
  uint16_t port() const { return port_; }
  // "address:port": the identity hashed by ring hash and Maglev, stable across workers.
  const std::string& hash_key() const { return hash_key_; }
  uint32_t weight() const { return weight_; }
  const Locality& locality() const { return *locality_; }
  uint32_t priority() const { return priority_; }
  HealthStatus health() const { return health_; }
  Clock::TimePoint created_at() const { return created_at_; }

  // Requests sent to this host that have not finished yet (this worker only).
  uint64_t active_requests() const { return active_requests_; }
  const RttEwma& rtt() const { return rtt_; }
  RttEwma& mutable_rtt() { return rtt_; }
  void RequestStarted() { ++active_requests_; }
  void RequestFinished() {
    if (active_requests_ > 0) --active_requests_;
  }
  // Tests and benchmarks set load directly.
  void set_active_requests(uint64_t n) { active_requests_ = n; }

 private:
  // Health changes go through PrioritySet::SetHealth so balancers notice them.
  friend class PrioritySet;

  std::string address_;
  uint16_t port_;
  uint32_t weight_;
  std::shared_ptr<const Locality> locality_;
  uint32_t priority_;
  HealthStatus health_;
  Clock::TimePoint created_at_;
  std::string hash_key_;
  uint64_t active_requests_ = 0;
  RttEwma rtt_;
};

using HostPtr = std::shared_ptr<Host>;

struct LocalityWeight {
  Locality locality;
  uint32_t weight = 0;
};

// The hosts of one locality within one priority.
struct LocalityHosts {
  Locality locality;
  // 0 when the priority has locality weights but none for this locality: it gets no traffic
  // through locality-weighted choice (Envoy does the same).
  uint32_t weight = 0;
  std::vector<Host*> hosts;
};

// The hosts of one priority, grouped by locality in order of first appearance.
class HostSet {
 public:
  uint32_t priority() const { return priority_; }
  const std::vector<Host*>& hosts() const { return hosts_; }
  const std::vector<LocalityHosts>& localities() const { return localities_; }
  // True when the update carried weights for this priority's localities.
  bool locality_weighted() const { return locality_weighted_; }

 private:
  friend class PrioritySet;
  uint32_t priority_ = 0;
  std::vector<Host*> hosts_;
  std::vector<LocalityHosts> localities_;
  bool locality_weighted_ = false;
};

// All hosts of one cluster on one worker, indexed by priority (0 is the most preferred).
// Balancers hold a const reference and compare epoch() before each pick, so any change made
// through Update or SetHealth is picked up without callbacks or locks.
class PrioritySet {
 public:
  // Replaces the membership. Hosts are grouped by their priority and locality; `weights` apply
  // to every priority that has hosts in a listed locality. An empty `weights` turns
  // locality-weighted choice off.
  void Update(std::vector<HostPtr> hosts, std::vector<LocalityWeight> weights = {});
  void SetHealth(Host& host, HealthStatus health);

  // Dense: priorities without hosts between used ones are present and empty.
  const std::vector<HostSet>& host_sets() const { return host_sets_; }
  const std::vector<HostPtr>& all_hosts() const { return hosts_; }
  uint64_t epoch() const { return epoch_; }

 private:
  std::vector<HostPtr> hosts_;
  std::vector<HostSet> host_sets_;
  uint64_t epoch_ = 1;
};

}  // namespace weft::upstream
