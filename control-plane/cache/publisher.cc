#include "control-plane/cache/publisher.h"

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/strings.h"

namespace weft::cp {
namespace {

std::string Describe(const std::string& scope, xds::ResourceType type, const std::string& name) {
  return absl::StrCat(scope.empty() ? "" : absl::StrCat("group ", scope, ": "),
                      Sv(xds::ShortName(type)), " \"", name, "\"");
}

}  // namespace

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

void Publisher::MarkLocked() {
  auto now = std::chrono::steady_clock::now();
  if (!dirty_) first_change_ = now;
  last_change_ = now;
  dirty_ = true;
}

void Publisher::Update(const std::string& source, std::vector<xds::ResourcePtr> resources,
                       int64_t revision, GroupResources group_resources) {
  {
    std::lock_guard lock(mu_);
    Content next;
    std::string error;
    auto put = [&](const std::string& scope, xds::ResourcePtr r) {
      Key key(r->type, r->name);
      auto [it, inserted] = next[scope].emplace(std::move(key), std::move(r));
      if (!inserted && error.empty()) {
        error = absl::StrCat(source, ": ", Describe(scope, it->first.first, it->first.second),
                             " defined twice");
      }
    };
    for (xds::ResourcePtr& r : resources) put("", std::move(r));
    for (auto& [group, rs] : group_resources) {
      // The default group is what every other node is served; a source cannot own it.
      if (group.empty() || group == kDefaultGroup) continue;
      for (xds::ResourcePtr& r : rs) put(group, std::move(r));
    }
    Content& old = sources_[source];
    // What differs, by version: identical content re-published marks nothing.
    for (const auto& [scope, by_key] : next) {
      auto o = old.find(scope);
      for (const auto& [key, r] : by_key) {
        const xds::ResourcePtr* before = nullptr;
        if (o != old.end()) {
          auto it = o->second.find(key);
          if (it != o->second.end()) before = &it->second;
        }
        if (before == nullptr || (*before)->version != r->version) pending_[scope].insert(key);
      }
    }
    for (const auto& [scope, by_key] : old) {
      auto n = next.find(scope);
      for (const auto& [key, r] : by_key) {
        if (n == next.end() || !n->second.contains(key)) pending_[scope].insert(key);
      }
    }
    old = std::move(next);
    if (error.empty()) {
      source_errors_.erase(source);
    } else {
      source_errors_[source] = error;
    }
    revisions_[source] = revision;
    MarkLocked();
  }
  cv_.notify_all();
}

void Publisher::Apply(const std::string& source, const ResourceDelta& delta, int64_t revision) {
  {
    std::lock_guard lock(mu_);
    Content& content = sources_[source];
    for (const auto& [scope, changes] : delta.scopes) {
      if (scope == kDefaultGroup) continue;
      auto& by_key = content[scope];
      auto& pending = pending_[scope];
      for (const auto& [type, name] : changes.removals) {
        Key key(type, name);
        if (by_key.erase(key) > 0) pending.insert(std::move(key));
      }
      for (const xds::ResourcePtr& r : changes.upserts) {
        Key key(r->type, r->name);
        by_key.insert_or_assign(key, r);
        pending.insert(std::move(key));
      }
      if (by_key.empty()) content.erase(scope);
    }
    revisions_[source] = revision;
    MarkLocked();
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

absl::Status Publisher::BuildLocked(
    Snapshot::Sets* base, std::map<std::string, SnapshotCache::OverlayPtr>* groups) const {
  if (!source_errors_.empty()) return absl::InvalidArgumentError(source_errors_.begin()->second);
  *base = base_;
  struct Changes {
    std::vector<xds::ResourcePtr> upserts;
    std::vector<std::string> removals;
  };
  // Shared names added, and per group the names it gained, for the clash checks below.
  std::vector<Key> shared_added;
  for (const auto& [scope, keys] : pending_) {
    std::array<Changes, xds::kResourceTypeCount> by_type;
    bool any = false;
    for (const Key& key : keys) {
      const xds::ResourcePtr* found = nullptr;
      const std::string* holder = nullptr;
      for (const auto& [source, content] : sources_) {
        auto s = content.find(scope);
        if (s == content.end()) continue;
        auto it = s->second.find(key);
        if (it == s->second.end()) continue;
        if (found != nullptr) {
          return absl::InvalidArgumentError(absl::StrCat(Describe(scope, key.first, key.second),
                                                         " is defined by both ", *holder, " and ",
                                                         source));
        }
        found = &it->second;
        holder = &source;
      }
      Changes& c = by_type[xds::Index(key.first)];
      if (found != nullptr) {
        c.upserts.push_back(*found);
      } else {
        c.removals.push_back(key.second);
      }
      any = true;
    }
    if (!any) continue;
    if (scope.empty()) {
      for (xds::ResourceType t : xds::kAllResourceTypes) {
        Changes& c = by_type[xds::Index(t)];
        if (c.upserts.empty() && c.removals.empty()) continue;
        ResourceSet::Ptr& set = (*base)[xds::Index(t)];
        for (const xds::ResourcePtr& r : c.upserts) {
          if (set == nullptr || set->Find(r->name) == nullptr)
            shared_added.emplace_back(t, r->name);
        }
        set = ResourceSet::Apply(set, std::move(c.upserts), c.removals);
      }
      continue;
    }
    auto old = overlays_.find(scope);
    auto overlay = std::make_shared<SnapshotCache::Overlay>();
    if (old != overlays_.end()) *overlay = *old->second;
    bool empty = true;
    for (xds::ResourceType t : xds::kAllResourceTypes) {
      Changes& c = by_type[xds::Index(t)];
      ResourceSet::Ptr& set = (*overlay)[xds::Index(t)];
      if (!c.upserts.empty() || !c.removals.empty()) {
        set = ResourceSet::Apply(set, std::move(c.upserts), c.removals);
      }
      if (set != nullptr && !set->empty()) empty = false;
    }
    (*groups)[scope] = empty ? nullptr : std::move(overlay);
  }
  // A group's snapshot is the shared resources plus its own: a name in both would be served
  // twice. Check the groups that changed against the new shared sets, and new shared names
  // against every group.
  for (const auto& [group, overlay] : *groups) {
    if (overlay == nullptr) continue;
    for (xds::ResourceType t : xds::kAllResourceTypes) {
      const ResourceSet::Ptr& own = (*overlay)[xds::Index(t)];
      const ResourceSet::Ptr& shared = (*base)[xds::Index(t)];
      if (own == nullptr || shared == nullptr) continue;
      const ResourceSet& small = own->size() < shared->size() ? *own : *shared;
      const ResourceSet& large = &small == own.get() ? *shared : *own;
      for (const ResourceSet::EntryPtr& e : small.entries()) {
        if (large.Find(e->id) != nullptr) {
          return absl::InvalidArgumentError(
              absl::StrCat(Describe(group, t, e->resource->name), " is also shared by every node"));
        }
      }
    }
  }
  for (const Key& key : shared_added) {
    if (!own_names_.contains(key)) continue;  // no group has it: the usual case, one lookup
    for (const auto& [group, overlay] : overlays_) {
      if (groups->contains(group)) continue;  // checked above
      const ResourceSet::Ptr& own = (*overlay)[xds::Index(key.first)];
      if (own != nullptr && own->Find(key.second) != nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat(Describe(group, key.first, key.second), " is also shared by every node"));
      }
    }
  }
  return absl::OkStatus();
}

void Publisher::CountOwnNames(const SnapshotCache::OverlayPtr& overlay, int delta) {
  if (overlay == nullptr) return;
  for (xds::ResourceType t : xds::kAllResourceTypes) {
    const ResourceSet::Ptr& own = (*overlay)[xds::Index(t)];
    if (own == nullptr) continue;
    for (const ResourceSet::EntryPtr& e : own->entries()) {
      Key key(t, e->resource->name);
      if ((own_names_[key] += delta) == 0) own_names_.erase(key);
    }
  }
}

void Publisher::PublishLocked(std::unique_lock<std::mutex>& lock) {
  // One publish at a time, so snapshots reach the cache in the order they were built.
  lock.unlock();
  std::lock_guard one(publish_mu_);
  lock.lock();
  if (!dirty_) return;
  dirty_ = false;
  Snapshot::Sets base;
  std::map<std::string, SnapshotCache::OverlayPtr> groups;
  absl::Status built = BuildLocked(&base, &groups);
  if (!built.ok()) {
    // Keep serving the last good snapshots and the changes not yet published; the sources'
    // own validation should make this rare. All or nothing, so a group is never served a mix
    // of old and new config.
    last_error_ = std::string(built.message());
    WEFT_LOG(kError) << "config not published, last good snapshot kept: " << last_error_;
    return;
  }
  last_error_.clear();
  pending_.clear();
  base_ = base;
  for (const auto& [group, overlay] : groups) {
    auto old = overlays_.find(group);
    if (old != overlays_.end()) {
      CountOwnNames(old->second, -1);
      overlays_.erase(old);
    }
    if (overlay != nullptr) {
      CountOwnNames(overlay, +1);
      overlays_.emplace(group, overlay);
    }
  }
  ++published_;
  auto revisions = revisions_;
  SnapshotPtr snapshot = Snapshot::FromSets(base);
  // Publish notifies every stream; do it without holding our lock so Update() never waits on a
  // fan-out.
  lock.unlock();
  bool changed = cache_->Publish(std::move(snapshot), groups);
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
