#include "control-plane/cache/snapshot_cache.h"

#include <algorithm>

namespace weft::cp {
namespace {

// Enough for a stream that missed a few publishes while its write was in flight; one further
// behind compares everything, which is still correct.
constexpr size_t kHistory = 16;

const ResourceSet::Ptr& OrEmpty(const ResourceSet::Ptr& s) {
  return s != nullptr ? s : ResourceSet::Empty();
}

// Names that differ between two sets of one type, appended to `out`.
void SetDiff(const ResourceSet::Ptr& a_or_null, const ResourceSet::Ptr& b_or_null,
             std::vector<NameId>* out) {
  const ResourceSet& a = *OrEmpty(a_or_null);
  const ResourceSet& b = *OrEmpty(b_or_null);
  if (&a == &b) return;
  // A set derived from the other knows what it changed.
  if (b.parent() == a.serial()) {
    out->insert(out->end(), b.changed().begin(), b.changed().end());
    return;
  }
  if (a.parent() == b.serial()) {
    out->insert(out->end(), a.changed().begin(), a.changed().end());
    return;
  }
  // Both are in name order: one merge pass.
  const auto& x = a.entries();
  const auto& y = b.entries();
  size_t i = 0, j = 0;
  while (i < x.size() || j < y.size()) {
    int cmp = i == x.size()   ? 1
              : j == y.size() ? -1
                              : x[i]->resource->name.compare(y[j]->resource->name);
    if (cmp < 0) {
      out->push_back(x[i++]->id);
    } else if (cmp > 0) {
      out->push_back(y[j++]->id);
    } else {
      if (x[i]->resource->version != y[j]->resource->version) out->push_back(y[j]->id);
      ++i;
      ++j;
    }
  }
}

std::shared_ptr<const SnapshotChange> Diff(const Snapshot& from, const Snapshot& to) {
  auto change = std::make_shared<SnapshotChange>();
  change->from = from.serial();
  change->to = to.serial();
  for (xds::ResourceType t : xds::kAllResourceTypes) {
    if (from.version(t) == to.version(t)) continue;
    auto& out = change->changed[xds::Index(t)];
    SetDiff(from.base_set(t), to.base_set(t), &out);
    SetDiff(from.own_set(t), to.own_set(t), &out);
  }
  return change;
}

bool SameVersions(const Snapshot& a, const Snapshot& b) {
  for (xds::ResourceType t : xds::kAllResourceTypes) {
    if (a.version(t) != b.version(t)) return false;
  }
  return true;
}

bool SameOverlay(const SnapshotCache::Overlay& a, const SnapshotCache::Overlay& b) {
  for (xds::ResourceType t : xds::kAllResourceTypes) {
    if (OrEmpty(a[xds::Index(t)])->version() != OrEmpty(b[xds::Index(t)])->version()) {
      return false;
    }
  }
  return true;
}

}  // namespace

void SnapshotCache::SetListener(Listener listener) {
  std::unique_lock lock(mu_);
  listener_ = std::move(listener);
}

void SnapshotCache::PushHistory(std::deque<std::shared_ptr<const SnapshotChange>>* history,
                                std::shared_ptr<const SnapshotChange> change) {
  history->push_back(std::move(change));
  if (history->size() > kHistory) history->pop_front();
}

bool SnapshotCache::SetSnapshot(const std::string& group, SnapshotPtr snapshot) {
  Listener listener;
  {
    std::unique_lock lock(mu_);
    auto it = groups_.find(group);
    if (it != groups_.end()) {
      Group& g = it->second;
      SnapshotPtr current = CurrentLocked(g);
      if (SameVersions(*current, *snapshot)) return false;
      std::lock_guard compose(compose_mu_);
      PushHistory(&g.history, Diff(*current, *snapshot));
      g.whole = std::move(snapshot);
      g.overlay.reset();
      g.composed.reset();
      g.composed_overlay.reset();
    } else {
      Group g;
      g.whole = std::move(snapshot);
      groups_.emplace(group, std::move(g));
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

void SnapshotCache::SetDefaultLocked(SnapshotPtr snapshot) {
  auto it = groups_.find(kDefaultGroup);
  if (it == groups_.end()) {
    Group g;
    g.whole = std::move(snapshot);
    groups_.emplace(std::string(kDefaultGroup), std::move(g));
    return;
  }
  Group& g = it->second;
  SnapshotPtr current = CurrentLocked(g);
  std::lock_guard compose(compose_mu_);
  PushHistory(&g.history, Diff(*current, *snapshot));
  g.whole = std::move(snapshot);
  g.overlay.reset();
}

bool SnapshotCache::Publish(SnapshotPtr default_snapshot,
                            const std::map<std::string, OverlayPtr>& groups) {
  Listener listener;
  {
    std::unique_lock lock(mu_);
    bool changed = false;
    auto def = groups_.find(kDefaultGroup);
    if (def == groups_.end() || !SameVersions(*CurrentLocked(def->second), *default_snapshot)) {
      SetDefaultLocked(std::move(default_snapshot));
      changed = true;
    }
    for (const auto& [name, overlay] : groups) {
      if (name == kDefaultGroup) continue;  // the default is every node's; no one overlays it
      auto it = groups_.find(name);
      if (overlay == nullptr) {
        if (it != groups_.end()) {
          groups_.erase(it);
          changed = true;
        }
        continue;
      }
      if (it == groups_.end()) {
        Group g;
        g.overlay = overlay;
        groups_.emplace(name, std::move(g));
        changed = true;
        continue;
      }
      Group& g = it->second;
      if (g.overlay != nullptr && (g.overlay == overlay || SameOverlay(*g.overlay, *overlay))) {
        continue;
      }
      std::lock_guard compose(compose_mu_);
      if (g.whole != nullptr) {
        // A whole snapshot turned overlay: streams compare everything once.
        g.whole.reset();
        g.history.clear();
        g.composed.reset();
      }
      g.overlay = overlay;
      changed = true;
    }
    if (!changed) return false;
    listener = listener_;
  }
  if (listener) listener();
  return true;
}

bool SnapshotCache::DefaultChangesLocked(uint64_t from, SnapshotChange* out) const {
  auto it = groups_.find(kDefaultGroup);
  if (it == groups_.end() || it->second.whole == nullptr) return from == 0;
  const Group& def = it->second;
  uint64_t want = def.whole->serial();
  if (want == from) return true;
  // Walk back from the newest change until it starts at `from`.
  std::vector<const SnapshotChange*> chain;
  for (auto c = def.history.rbegin(); c != def.history.rend(); ++c) {
    if ((*c)->to != want) return false;
    chain.push_back(c->get());
    if ((*c)->from == from) {
      for (const SnapshotChange* change : chain) {
        for (size_t t = 0; t < xds::kResourceTypeCount; ++t) {
          out->changed[t].insert(out->changed[t].end(), change->changed[t].begin(),
                                 change->changed[t].end());
        }
      }
      return true;
    }
    want = (*c)->from;
  }
  return false;
}

SnapshotPtr SnapshotCache::CurrentLocked(const Group& g) const {
  if (g.whole != nullptr) return g.whole;
  if (g.overlay == nullptr) return Snapshot::Empty();
  auto def = groups_.find(kDefaultGroup);
  SnapshotPtr base =
      def != groups_.end() && def->second.whole != nullptr ? def->second.whole : Snapshot::Empty();
  std::lock_guard compose(compose_mu_);
  if (g.composed != nullptr && g.composed_base == base->serial() &&
      g.composed_overlay == g.overlay) {
    return g.composed;
  }
  SnapshotPtr next = Snapshot::Layered(*base, *g.overlay);
  if (g.composed != nullptr) {
    auto change = std::make_shared<SnapshotChange>();
    change->from = g.composed->serial();
    change->to = next->serial();
    if (DefaultChangesLocked(g.composed_base, change.get())) {
      for (xds::ResourceType t : xds::kAllResourceTypes) {
        SetDiff((*g.composed_overlay)[xds::Index(t)], (*g.overlay)[xds::Index(t)],
                &change->changed[xds::Index(t)]);
      }
      PushHistory(&g.history, std::move(change));
    } else {
      g.history.clear();  // streams of this group compare everything once
    }
  }
  g.composed = next;
  g.composed_base = base->serial();
  g.composed_overlay = g.overlay;
  return next;
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
  return g != nullptr ? CurrentLocked(*g) : Snapshot::Empty();
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
  SnapshotPtr current = CurrentLocked(*g);
  if (current->serial() == since) {
    *complete = true;
    return current;
  }
  std::lock_guard compose(compose_mu_);
  // Walk back from the newest change until it starts at `since`.
  uint64_t want = current->serial();
  for (auto it = g->history.rbegin(); it != g->history.rend(); ++it) {
    if ((*it)->to != want) break;
    changes->push_back(*it);
    if ((*it)->from == since) {
      std::reverse(changes->begin(), changes->end());
      *complete = true;
      return current;
    }
    want = (*it)->from;
  }
  changes->clear();
  return current;
}

std::map<std::string, SnapshotPtr> SnapshotCache::All() const {
  std::shared_lock lock(mu_);
  std::map<std::string, SnapshotPtr> out;
  for (const auto& [name, g] : groups_) out.emplace(name, CurrentLocked(g));
  return out;
}

bool SnapshotCache::IsOverlay(const std::string& group) const {
  std::shared_lock lock(mu_);
  auto it = groups_.find(group);
  return it != groups_.end() && it->second.overlay != nullptr;
}

}  // namespace weft::cp
