// Snapshots per node group, and the notification that one changed.
//
// A node is served the snapshot of the first group that exists among: its node id, its node
// cluster, and "default". That lets an operator pin a config to one proxy or one service's
// proxies while everyone else shares the default.
//
// A group is either a whole snapshot of its own (SetSnapshot) or an overlay: its own resources
// on top of the default snapshot (Publish). An overlay group's snapshot is composed when a node
// of that group asks for it and shares the default's sets, so a mesh of 10 000 services (20 000
// groups, a few resources each) costs a few resources per group, and a change to the shared
// config costs nothing for groups no connected node belongs to.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <string>

#include "control-plane/cache/snapshot.h"

namespace weft::cp {

inline constexpr std::string_view kDefaultGroup = "default";

// What differs between two snapshots of one group, per type: names added, removed or whose
// version changed. Computed once per change of the group's snapshot, so a stream that was in
// sync with `from` looks only at these names instead of at everything it subscribed to.
struct SnapshotChange {
  uint64_t from = 0;
  uint64_t to = 0;
  std::array<std::vector<NameId>, xds::kResourceTypeCount> changed;
};

class SnapshotCache {
 public:
  // Called after snapshots changed, on the thread that changed them, once per SetSnapshot,
  // ClearSnapshot or Publish. It must not change the cache itself.
  using Listener = std::function<void()>;
  void SetListener(Listener listener);

  // Replaces a group's snapshot. Returns false (and notifies no one) if every type's version
  // is unchanged, so re-publishing identical config costs nothing downstream.
  bool SetSnapshot(const std::string& group, SnapshotPtr snapshot);
  void ClearSnapshot(const std::string& group);

  // One group's own resources, per type (null or empty: none of that type).
  using Overlay = Snapshot::Sets;
  using OverlayPtr = std::shared_ptr<const Overlay>;
  // Sets the default snapshot and, for each group in `groups`, its overlay (null: the group is
  // gone). Groups not named keep their overlay, now over the new default. One notification.
  // Returns false (and notifies no one) when nothing changed.
  bool Publish(SnapshotPtr default_snapshot, const std::map<std::string, OverlayPtr>& groups);

  // The snapshot for a node (see the group rule above); an empty snapshot if none applies.
  SnapshotPtr ForNode(const std::string& node_id, const std::string& node_cluster) const;
  // The same, plus the changes that lead to it from the snapshot with serial `since`, oldest
  // first, when the node's group still remembers them all. `*complete` is false when it does
  // not (another group, or too far behind): the caller then compares everything.
  SnapshotPtr ForNode(const std::string& node_id, const std::string& node_cluster, uint64_t since,
                      std::vector<std::shared_ptr<const SnapshotChange>>* changes,
                      bool* complete) const;
  std::string GroupForNode(const std::string& node_id, const std::string& node_cluster) const;
  // Every group's snapshot (overlay groups composed). Debugging: it touches every group.
  std::map<std::string, SnapshotPtr> All() const;
  // Whether `group` is an overlay on the default (its snapshot's own sets are what it adds).
  bool IsOverlay(const std::string& group) const;

 private:
  struct Group {
    SnapshotPtr whole;   // SetSnapshot
    OverlayPtr overlay;  // Publish: composed over the default snapshot
    // The composition of `overlay` over the default, built on demand (guarded by compose_mu_):
    // which default snapshot and overlay it was made from, and the changes between the
    // compositions streams saw.
    mutable SnapshotPtr composed;
    mutable uint64_t composed_base = 0;
    mutable OverlayPtr composed_overlay;
    mutable std::deque<std::shared_ptr<const SnapshotChange>> history;  // newest last
  };
  const Group* GroupForNodeLocked(const std::string& node_id,
                                  const std::string& node_cluster) const;
  // The group's current snapshot; for an overlay, composes it if the default or the overlay
  // moved. Requires mu_ (shared).
  SnapshotPtr CurrentLocked(const Group& g) const;
  const std::deque<std::shared_ptr<const SnapshotChange>>& HistoryLocked(const Group& g) const;
  // Appends the changes from default snapshot `from` to the current one to `out`; false if
  // the default's history no longer reaches back that far.
  bool DefaultChangesLocked(uint64_t from, SnapshotChange* out) const;
  void SetDefaultLocked(SnapshotPtr snapshot);
  static void PushHistory(std::deque<std::shared_ptr<const SnapshotChange>>* history,
                          std::shared_ptr<const SnapshotChange> change);

  mutable std::shared_mutex mu_;
  mutable std::mutex compose_mu_;
  std::map<std::string, Group, std::less<>> groups_;
  Listener listener_;
};

}  // namespace weft::cp
