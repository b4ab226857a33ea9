// Snapshots per node group, and the notification that one changed.
//
// A node is served the snapshot of the first group that exists among: its node id, its node
// cluster, and "default". That lets an operator pin a config to one proxy or one service's
// proxies while everyone else shares the default.
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
// version changed. Computed once per SetSnapshot, so a stream that was in sync with `from`
// looks only at these names instead of at everything it subscribed to.
struct SnapshotChange {
  uint64_t from = 0;
  uint64_t to = 0;
  std::array<std::vector<NameId>, xds::kResourceTypeCount> changed;
};

class SnapshotCache {
 public:
  // Called after any group's snapshot changed, on the thread that called SetSnapshot. It must
  // not call SetSnapshot itself.
  using Listener = std::function<void()>;
  void SetListener(Listener listener);

  // Replaces a group's snapshot. Returns false (and notifies no one) if every type's version
  // is unchanged, so re-publishing identical config costs nothing downstream.
  bool SetSnapshot(const std::string& group, SnapshotPtr snapshot);
  void ClearSnapshot(const std::string& group);

  // The snapshot for a node (see the group rule above); an empty snapshot if none applies.
  SnapshotPtr ForNode(const std::string& node_id, const std::string& node_cluster) const;
  // The same, plus the changes that lead to it from the snapshot with serial `since`, oldest
  // first, when the node's group still remembers them all. `*complete` is false when it does
  // not (another group, or too far behind): the caller then compares everything.
  SnapshotPtr ForNode(const std::string& node_id, const std::string& node_cluster, uint64_t since,
                      std::vector<std::shared_ptr<const SnapshotChange>>* changes,
                      bool* complete) const;
  std::string GroupForNode(const std::string& node_id, const std::string& node_cluster) const;
  std::map<std::string, SnapshotPtr> All() const;

 private:
  struct Group {
    SnapshotPtr snapshot;
    std::deque<std::shared_ptr<const SnapshotChange>> history;  // newest last
  };
  const Group* GroupForNodeLocked(const std::string& node_id,
                                  const std::string& node_cluster) const;

  mutable std::shared_mutex mu_;
  std::map<std::string, Group, std::less<>> groups_;
  Listener listener_;
};

}  // namespace weft::cp
