#include "control-plane/cache/snapshot_cache.h"

namespace weft::cp {

void SnapshotCache::SetListener(Listener listener) {
  std::unique_lock lock(mu_);
  listener_ = std::move(listener);
}

bool SnapshotCache::SetSnapshot(const std::string& group, SnapshotPtr snapshot) {
  Listener listener;
  {
    std::unique_lock lock(mu_);
    auto it = groups_.find(group);
    if (it != groups_.end()) {
      bool same = true;
      for (xds::ResourceType t : xds::kAllResourceTypes) {
        if (it->second->version(t) != snapshot->version(t)) same = false;
      }
      if (same) return false;
      it->second = std::move(snapshot);
    } else {
      groups_.emplace(group, std::move(snapshot));
    }
    listener = listener_;
  }
  // Outside the lock: the listener reads snapshots back through ForNode().
  if (listener) listener();
  return true;
}

void SnapshotCache::ClearSnapshot(const std::string& group) {
  Listener listener;
  {
    std::unique_lock lock(mu_);
    if (groups_.erase(group) == 0) return;
    listener = listener_;
  }
  if (listener) listener();
}

std::string SnapshotCache::GroupForNode(const std::string& node_id,
                                        const std::string& node_cluster) const {
  std::shared_lock lock(mu_);
  if (!node_id.empty() && groups_.count(node_id)) return node_id;
  if (!node_cluster.empty() && groups_.count(node_cluster)) return node_cluster;
  return std::string(kDefaultGroup);
}

SnapshotPtr SnapshotCache::ForNode(const std::string& node_id,
                                   const std::string& node_cluster) const {
  std::shared_lock lock(mu_);
  for (const std::string* key : {&node_id, &node_cluster}) {
    if (key->empty()) continue;
    auto it = groups_.find(*key);
    if (it != groups_.end()) return it->second;
  }
  auto it = groups_.find(kDefaultGroup);
  return it != groups_.end() ? it->second : Snapshot::Empty();
}

std::map<std::string, SnapshotPtr> SnapshotCache::All() const {
  std::shared_lock lock(mu_);
  return {groups_.begin(), groups_.end()};
}

}  // namespace weft::cp
