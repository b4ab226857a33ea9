#include "control-plane/cache/publisher.h"

#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace weft::cp {

Publisher::Publisher(SnapshotCache* cache, Duration debounce, Duration max_delay)
    : cache_(cache), debounce_(debounce), max_delay_(std::max(max_delay, debounce)) {
  thread_ = std::thread([this] { Run(); });
}

Publisher::~Publisher() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Publisher::Update(const std::string& source, std::vector<xds::ResourcePtr> resources,
                       int64_t revision, GroupResources group_resources) {
  {
    std::lock_guard lock(mu_);
    sources_[source] = std::move(resources);
    source_groups_[source] = std::move(group_resources);
    revisions_[source] = revision;
    auto now = std::chrono::steady_clock::now();
    if (!dirty_) first_change_ = now;
    last_change_ = now;
    dirty_ = true;
  }
  cv_.notify_all();
}

void Publisher::Flush() {
  std::unique_lock lock(mu_);
  if (dirty_) PublishLocked(lock);
}

int64_t Publisher::PublishedRevision(const std::string& source) const {
  std::lock_guard lock(mu_);
  auto it = published_revisions_.find(source);
  return it == published_revisions_.end() ? 0 : it->second;
}

uint64_t Publisher::published() const {
  std::lock_guard lock(mu_);
  return published_;
}

std::string Publisher::last_error() const {
  std::lock_guard lock(mu_);
  return last_error_;
}

void Publisher::PublishLocked(std::unique_lock<std::mutex>& lock) {
  std::vector<xds::ResourcePtr> all;
  for (const auto& [name, resources] : sources_)
    all.insert(all.end(), resources.begin(), resources.end());
  dirty_ = false;
  // group -> shared + every source's resources for that group.
  std::map<std::string, std::vector<xds::ResourcePtr>> groups;
  for (const auto& [src, by_group] : source_groups_) {
    for (const auto& [group, resources] : by_group) {
      // The default group is what every other node is served; a source cannot own it.
      if (group == kDefaultGroup) continue;
      auto [it, inserted] = groups.try_emplace(group, all);
      it->second.insert(it->second.end(), resources.begin(), resources.end());
    }
  }
  auto snapshot = Snapshot::Build(std::move(all));
  std::map<std::string, SnapshotPtr> group_snapshots;
  std::string error;
  if (!snapshot.ok()) error = std::string(snapshot.status().message());
  for (auto& [group, resources] : groups) {
    if (!error.empty()) break;
    auto built = Snapshot::Build(std::move(resources));
    if (!built.ok()) {
      error = absl::StrCat("group ", group, ": ", built.status().message());
    } else {
      group_snapshots.emplace(group, *std::move(built));
    }
  }
  if (!error.empty()) {
    // Keep serving the last good snapshots; the sources' own validation should make this rare.
    // All or nothing, so a group is never served a mix of old and new config.
    last_error_ = std::move(error);
    WEFT_LOG(kError) << "config not published, last good snapshot kept: " << last_error_;
    return;
  }
  last_error_.clear();
  ++published_;
  auto revisions = revisions_;
  std::vector<std::string> gone;
  for (const std::string& g : published_groups_) {
    if (!group_snapshots.contains(g)) gone.push_back(g);
  }
  published_groups_.clear();
  for (const auto& [g, snap] : group_snapshots) published_groups_.insert(g);
  // SetSnapshot notifies every stream; do it without holding our lock so Update() never waits
  // on a fan-out. Groups first: a node that moves from the default to its group snapshot never
  // sees new shared config without its inbound resources.
  lock.unlock();
  bool changed = false;
  for (auto& [g, snap] : group_snapshots) changed |= cache_->SetSnapshot(g, std::move(snap));
  changed |= cache_->SetSnapshot(std::string(kDefaultGroup), *std::move(snapshot));
  for (const std::string& g : gone) cache_->ClearSnapshot(g);
  lock.lock();
  // Only now is that content in the cache: waiters on a revision must not see it earlier.
  for (const auto& [src, rev] : revisions) {
    published_revisions_[src] = std::max(published_revisions_[src], rev);
  }
  if (changed) WEFT_LOG(kDebug) << "published snapshot";
}

void Publisher::Run() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    if (!dirty_) {
      cv_.wait(lock, [&] { return stop_ || dirty_; });
      continue;
    }
    auto deadline = std::min(last_change_ + debounce_, first_change_ + max_delay_);
    if (std::chrono::steady_clock::now() < deadline) {
      cv_.wait_until(lock, deadline);
      continue;
    }
    PublishLocked(lock);
  }
}

}  // namespace weft::cp
