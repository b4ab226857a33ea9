// Snapshots per node group, and the notification that one changed.
//
// A node is served the snapshot of the first group that exists among: its node id, its node
// cluster, and "default". That lets an operator pin a config to one proxy or one service's
// proxies while everyone else shares the default.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <string>

#include "control-plane/cache/snapshot.h"

namespace weft::cp {

inline constexpr std::string_view kDefaultGroup = "default";

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
  std::string GroupForNode(const std::string& node_id, const std::string& node_cluster) const;
  std::map<std::string, SnapshotPtr> All() const;

 private:
  mutable std::shared_mutex mu_;
  std::map<std::string, SnapshotPtr, std::less<>> groups_;
  Listener listener_;
};

}  // namespace weft::cp
