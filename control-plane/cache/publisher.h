// Merges what each source (config dir, config API, ...) currently defines and publishes it to
// the snapshot cache, debounced: a burst of changes becomes one snapshot. The quiet period
// (default 100 ms) restarts on every change, but a snapshot goes out at the latest `max_delay`
// after the first change of a burst, so a steady trickle of edits cannot starve proxies.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

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
  // (snapshot_cache.h): each group present in any source gets a snapshot of every source's
  // shared resources plus that group's, and groups no source mentions any more are cleared.
  void Update(const std::string& source, std::vector<xds::ResourcePtr> resources,
              int64_t revision = 0, GroupResources group_resources = {});
  // Publishes pending changes now (start-up, tests).
  void Flush();

  uint64_t published() const;
  // The revision `source` had when the snapshot now in the cache was built.
  int64_t PublishedRevision(const std::string& source) const;
  // Why the last merge was refused (e.g. the same cluster defined by two sources), or empty.
  std::string last_error() const;

 private:
  void Run();
  void PublishLocked(std::unique_lock<std::mutex>& lock);

  SnapshotCache* cache_;
  const Duration debounce_;
  const Duration max_delay_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::vector<xds::ResourcePtr>> sources_;
  std::map<std::string, GroupResources> source_groups_;
  // Groups this publisher has set in the cache, so it clears only its own.
  std::set<std::string> published_groups_;
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
