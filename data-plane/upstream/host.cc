#include "data-plane/upstream/host.h"

#include <algorithm>
#include <utility>

namespace weft::upstream {

std::string_view HealthStatusName(HealthStatus health) {
  switch (health) {
    case HealthStatus::kHealthy:
      return "healthy";
    case HealthStatus::kUnhealthy:
      return "unhealthy";
    case HealthStatus::kDegraded:
      return "degraded";
    case HealthStatus::kDraining:
      return "draining";
  }
  return "unknown";
}

Host::Host(Options options)
    : address_(std::move(options.address)),
      port_(options.port),
      weight_(std::max<uint32_t>(1, options.weight)),
      locality_(options.shared_locality != nullptr
                    ? std::move(options.shared_locality)
                    : std::make_shared<const Locality>(std::move(options.locality))),
      priority_(options.priority),
      health_(options.health),
      created_at_(options.created_at),
      hash_key_(address_ + ":" + std::to_string(port_)) {}

void PrioritySet::Update(std::vector<HostPtr> hosts, std::vector<LocalityWeight> weights) {
  hosts_ = std::move(hosts);
  host_sets_.clear();
  for (const HostPtr& host : hosts_) {
    if (host->priority() >= host_sets_.size()) host_sets_.resize(host->priority() + 1);
  }
  for (size_t p = 0; p < host_sets_.size(); ++p) host_sets_[p].priority_ = static_cast<uint32_t>(p);
  for (const HostPtr& host : hosts_) {
    HostSet& set = host_sets_[host->priority()];
    set.hosts_.push_back(host.get());
    auto it = std::find_if(set.localities_.begin(), set.localities_.end(),
                           [&](const LocalityHosts& l) { return l.locality == host->locality(); });
    if (it == set.localities_.end()) {
      set.localities_.push_back(LocalityHosts{host->locality(), 0, {}});
      it = std::prev(set.localities_.end());
    }
    it->hosts.push_back(host.get());
  }
  for (HostSet& set : host_sets_) {
    set.locality_weighted_ = !weights.empty();
    for (LocalityHosts& l : set.localities_) {
      for (const LocalityWeight& w : weights) {
        if (w.locality == l.locality) l.weight = w.weight;
      }
    }
  }
  ++epoch_;
}

void PrioritySet::SetHealth(Host& host, HealthStatus health) {
  if (host.health_ == health) return;
  host.health_ = health;
  ++epoch_;
}

}  // namespace weft::upstream
