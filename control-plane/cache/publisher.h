// Merges what each source (config dir, config model, ...) currently defines and publishes it to
// the snapshot cache, debounced: a burst of changes becomes one snapshot. The quiet period
// (default 100 ms) restarts on every change, but a snapshot goes out at the latest `max_delay`
// after the first change of a burst, so a steady trickle of edits cannot starve proxies.
//
// Work per publish is proportional to what changed: sources hand in changes (or whole contents,
// which are diffed against what they had), and only the resource sets of changed types and
// groups are rebuilt; every group's snapshot is the shared sets plus its own, composed by the
// cache when a node of that group asks.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "control-plane/cache/resource_delta.h"
#include "control-plane/cache/snapshot_cache.h"

namespace weft::cp {

class Publisher {
 public:
  using Duration = std::chrono::milliseconds;
  Publisher(SnapshotCache* cache, Duration debounce, Duration max_delay);
  ~Publisher();
  Publisher(const Publisher&) = delete;
  Publisher& operator=(const Publisher&) = delete;

  using GroupResources = std::map<std::string, std::vector<xds::ResourcePtr>>;
  // Replaces everything `source` defines. `revision` is the source's own version of that
  // content (the config store's revision), reported back by PublishedRevision().
  // `resources` go to every node; `group_resources` only to the nodes of that group
  // (snapshot_cache.h). Groups no source mentions any more are cleared. What differs from the
  // source's previous content is found by comparing versions.
  void Update(const std::string& source, std::vector<xds::ResourcePtr> resources,
              int64_t revision = 0, GroupResources group_resources = {});
  // Applies changes to what `source` defines.
  void Apply(const std::string& source, const ResourceDelta& delta, int64_t revision);
  // Publishes pending changes now (start-up, tests).
  void Flush();

  uint64_t published() const;
  // The revision `source` had when the snapshot now in the cache was built.
  int64_t PublishedRevision(const std::string& source) const;
  // Why the last merge was refused (e.g. the same cluster defined by two sources), or empty.
  std::string last_error() const;

 private:
  using Key = std::pair<xds::ResourceType, std::string>;
  // scope ("" shared, else a group) -> resources by key.
  using Content = std::map<std::string, absl::flat_hash_map<Key, xds::ResourcePtr>>;

  void Run();
  void PublishLocked(std::unique_lock<std::mutex>& lock);
  void MarkLocked();
  // Builds the next shared sets and changed overlays from pending_; an error names a clash.
  absl::Status BuildLocked(Snapshot::Sets* base,
                           std::map<std::string, SnapshotCache::OverlayPtr>* groups) const;
  void CountOwnNames(const SnapshotCache::OverlayPtr& overlay, int delta);

  SnapshotCache* cache_;
  const Duration debounce_;
  const Duration max_delay_;
  std::mutex publish_mu_;  // taken before mu_
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Content> sources_;
  // A source whose own content repeats a name: refused until it no longer does.
  std::map<std::string, std::string> source_errors_;
  // Keys changed since the last successful publish, per scope.
  std::map<std::string, absl::flat_hash_set<Key>> pending_;
  // What is published: the shared sets, each group's own, and which groups hold a name.
  Snapshot::Sets base_;
  std::map<std::string, SnapshotCache::OverlayPtr> overlays_;
  absl::flat_hash_map<Key, int> own_names_;  // how many groups hold each name
  std::map<std::string, int64_t> revisions_;
  std::map<std::string, int64_t> published_revisions_;
  bool dirty_ = false;
  bool stop_ = false;
  std::chrono::steady_clock::time_point first_change_;
  std::chrono::steady_clock::time_point last_change_;
  uint64_t published_ = 0;
  std::string last_error_;
  std::thread thread_;
};

}  // namespace weft::cp
