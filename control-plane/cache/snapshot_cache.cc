#include "control-plane/cache/snapshot_cache.h"

#include <algorithm>

namespace weft::cp {
namespace {

// Enough for a stream that missed a few publishes while its write was in flight; one further
// behind compares everything, which is still correct.
constexpr size_t kHistory = 16;

std::shared_ptr<const SnapshotChange> Diff(const Snapshot& from, const Snapshot& to) {
  auto change = std::make_shared<SnapshotChange>();
  change->from = from.serial();
  change->to = to.serial();
  for (xds::ResourceType t : xds::kAllResourceTypes) {
    if (from.version(t) == to.version(t)) continue;
    const auto& a = from.entries(t);
    const auto& b = to.entries(t);
    auto& out = change->changed[xds::Index(t)];
    // Both are in name order: one merge pass.
    size_t i = 0, j = 0;
    while (i < a.size() || j < b.size()) {
      int cmp = i == a.size()   ? 1
                : j == b.size() ? -1
                                : a[i].resource->name.compare(b[j].resource->name);
      if (cmp < 0) {
        out.push_back(a[i++].id);
      } else if (cmp > 0) {
        out.push_back(b[j++].id);
      } else {
        if (a[i].resource->version != b[j].resource->version) out.push_back(b[j].id);
        ++i;
        ++j;
      }
    }
  }
  return change;
}

}  // namespace

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
      Group& g = it->second;
      bool same = true;
      for (xds::ResourceType t : xds::kAllResourceTypes) {
        if (g.snapshot->version(t) != snapshot->version(t)) same = false;
      }
      if (same) return false;
      g.history.push_back(Diff(*g.snapshot, *snapshot));
      if (g.history.size() > kHistory) g.history.pop_front();
      g.snapshot = std::move(snapshot);
    } else {
      groups_.emplace(group, Group{std::move(snapshot), {}});
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

const SnapshotCache::Group* SnapshotCache::GroupForNodeLocked(
    const std::string& node_id, const std::string& node_cluster) const {
  for (const std::string* key : {&node_id, &node_cluster}) {
    if (key->empty()) continue;
    auto it = groups_.find(*key);
    if (it != groups_.end()) return &it->second;
  }
  auto it = groups_.find(kDefaultGroup);
  return it != groups_.end() ? &it->second : nullptr;
}

SnapshotPtr SnapshotCache::ForNode(const std::string& node_id,
                                   const std::string& node_cluster) const {
  std::shared_lock lock(mu_);
  const Group* g = GroupForNodeLocked(node_id, node_cluster);
  return g != nullptr ? g->snapshot : Snapshot::Empty();
}

SnapshotPtr SnapshotCache::ForNode(const std::string& node_id, const std::string& node_cluster,
                                   uint64_t since,
                                   std::vector<std::shared_ptr<const SnapshotChange>>* changes,
                                   bool* complete) const {
  changes->clear();
  *complete = false;
  std::shared_lock lock(mu_);
  const Group* g = GroupForNodeLocked(node_id, node_cluster);
  if (g == nullptr) return Snapshot::Empty();
  if (g->snapshot->serial() == since) {
    *complete = true;
    return g->snapshot;
  }
  // Walk back from the newest change until it starts at `since`.
  uint64_t want = g->snapshot->serial();
  for (auto it = g->history.rbegin(); it != g->history.rend(); ++it) {
    if ((*it)->to != want) break;
    changes->push_back(*it);
    if ((*it)->from == since) {
      std::reverse(changes->begin(), changes->end());
      *complete = true;
      return g->snapshot;
    }
    want = (*it)->from;
  }
  changes->clear();
  return g->snapshot;
}

std::map<std::string, SnapshotPtr> SnapshotCache::All() const {
  std::shared_lock lock(mu_);
  std::map<std::string, SnapshotPtr> out;
  for (const auto& [name, g] : groups_) out.emplace(name, g.snapshot);
  return out;
}

}  // namespace weft::cp
