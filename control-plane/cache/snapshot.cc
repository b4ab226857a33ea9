#include "control-plane/cache/snapshot.h"

#include <algorithm>
#include <atomic>

#include "absl/strings/str_cat.h"
#include "common/proto_util.h"
#include "common/strings.h"

namespace weft::cp {
namespace {

std::atomic<uint64_t> g_next_serial{0};
uint64_t NextSerial() { return g_next_serial.fetch_add(1) + 1; }

// splitmix64's finalizer over a combination of two words.
uint64_t Mix(uint64_t a, uint64_t b) {
  uint64_t x = a ^ (b + 0x9e3779b97f4a7c15ull + (a << 6) + (a >> 2));
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

uint64_t EntryDigest(const xds::Resource& r) { return Mix(StableHash64(r.name), r.version); }

// The version text of a set (or a union of sets) with this digest and size.
std::string SetVersion(uint64_t digest, size_t size) { return HexVersion(Mix(digest, size)); }

ResourceSet::EntryPtr MakeEntry(xds::ResourcePtr r) {
  NameTable& names = NameTable::Global();
  auto e = std::make_shared<ResourceSet::Entry>();
  e->id = names.Intern(r->name);
  e->dependencies.reserve(r->dependencies.size());
  for (const std::string& d : r->dependencies) e->dependencies.push_back(names.Intern(d));
  e->resource = std::move(r);
  return e;
}

bool ByName(const xds::ResourcePtr& a, const xds::ResourcePtr& b) { return a->name < b->name; }

}  // namespace

// ---------------------------------------------------------------------------------------------
// ResourceSet

void ResourceSet::Index() {
  index_.clear();
  index_.reserve(entries_.size());
  for (size_t i = 0; i < entries_.size(); ++i) {
    index_.emplace(entries_[i]->id, static_cast<uint32_t>(i));
  }
  version_ = SetVersion(digest_, entries_.size());
}

absl::StatusOr<ResourceSet::Ptr> ResourceSet::Build(std::vector<xds::ResourcePtr> resources) {
  std::sort(resources.begin(), resources.end(), ByName);
  auto set = std::make_shared<ResourceSet>();
  set->serial_ = NextSerial();
  set->entries_.reserve(resources.size());
  for (size_t i = 0; i < resources.size(); ++i) {
    if (!set->entries_.empty() && resources[i]->name == set->entries_.back()->resource->name) {
      return absl::InvalidArgumentError(absl::StrCat("duplicate ",
                                                     Sv(xds::ShortName(resources[i]->type)),
                                                     " name \"", resources[i]->name, "\""));
    }
    set->digest_ += EntryDigest(*resources[i]);
    set->entries_.push_back(MakeEntry(std::move(resources[i])));
  }
  set->Index();
  return Ptr(std::move(set));
}

ResourceSet::Ptr ResourceSet::Apply(const Ptr& base_or_null, std::vector<xds::ResourcePtr> upserts,
                                    const std::vector<std::string>& removals) {
  const Ptr& base = base_or_null != nullptr ? base_or_null : Empty();
  // One sorted list of changes: a removal is a null resource; an upsert of a name wins over its
  // removal.
  std::vector<std::pair<std::string_view, const xds::ResourcePtr*>> changes;
  changes.reserve(upserts.size() + removals.size());
  for (const xds::ResourcePtr& r : upserts) changes.emplace_back(r->name, &r);
  for (const std::string& n : removals) changes.emplace_back(n, nullptr);
  std::stable_sort(changes.begin(), changes.end(), [](const auto& a, const auto& b) {
    if (a.first != b.first) return a.first < b.first;
    return a.second != nullptr && b.second == nullptr;
  });

  auto set = std::make_shared<ResourceSet>();
  set->serial_ = NextSerial();
  set->parent_ = base->serial_;
  set->digest_ = base->digest_;
  const std::vector<EntryPtr>& old = base->entries_;
  set->entries_.reserve(old.size() + upserts.size());
  size_t i = 0;
  for (size_t j = 0; j < changes.size();) {
    std::string_view name = changes[j].first;
    const xds::ResourcePtr* put = changes[j].second;
    while (j < changes.size() && changes[j].first == name) ++j;  // the first (an upsert) wins
    while (i < old.size() && old[i]->resource->name < name) set->entries_.push_back(old[i++]);
    const EntryPtr* existing = i < old.size() && old[i]->resource->name == name ? &old[i] : nullptr;
    if (existing != nullptr) ++i;
    if (put != nullptr && existing != nullptr &&
        (*existing)->resource->version == (*put)->version) {
      set->entries_.push_back(*existing);  // same content: nothing changed
      continue;
    }
    if (existing != nullptr) {
      set->digest_ -= EntryDigest(*(*existing)->resource);
      if (put == nullptr) set->changed_.push_back((*existing)->id);
    }
    if (put != nullptr) {
      set->digest_ += EntryDigest(**put);
      set->entries_.push_back(MakeEntry(*put));
      set->changed_.push_back(set->entries_.back()->id);
    }
  }
  set->entries_.insert(set->entries_.end(), old.begin() + static_cast<ptrdiff_t>(i), old.end());
  set->Index();
  return set;
}

const ResourceSet::Ptr& ResourceSet::Empty() {
  static const Ptr* kEmpty = new Ptr(*Build({}));
  return *kEmpty;
}

const ResourceSet::Entry* ResourceSet::Find(std::string_view name) const {
  auto it =
      std::lower_bound(entries_.begin(), entries_.end(), name,
                       [](const EntryPtr& e, std::string_view n) { return e->resource->name < n; });
  return it != entries_.end() && (*it)->resource->name == name ? it->get() : nullptr;
}

// ---------------------------------------------------------------------------------------------
// Snapshot

std::shared_ptr<Snapshot> Snapshot::New() {
  auto snap = std::make_shared<Snapshot>();
  snap->serial_ = NextSerial();
  return snap;
}

absl::StatusOr<SnapshotPtr> Snapshot::Build(std::vector<xds::ResourcePtr> resources) {
  std::array<std::vector<xds::ResourcePtr>, xds::kResourceTypeCount> by_type;
  for (xds::ResourcePtr& r : resources) by_type[xds::Index(r->type)].push_back(std::move(r));
  Sets sets;
  for (xds::ResourceType t : xds::kAllResourceTypes) {
    absl::StatusOr<ResourceSet::Ptr> set = ResourceSet::Build(std::move(by_type[xds::Index(t)]));
    if (!set.ok()) return set.status();
    sets[xds::Index(t)] = *std::move(set);
  }
  return FromSets(sets);
}

SnapshotPtr Snapshot::FromSets(const Sets& sets) {
  auto snap = New();
  for (xds::ResourceType t : xds::kAllResourceTypes) {
    Layer& l = snap->layers_[xds::Index(t)];
    l.base = sets[xds::Index(t)] != nullptr ? sets[xds::Index(t)] : ResourceSet::Empty();
    l.version = l.base->version();
  }
  return snap;
}

SnapshotPtr Snapshot::Layered(const Snapshot& base, const Sets& own) {
  auto snap = New();
  for (xds::ResourceType t : xds::kAllResourceTypes) {
    const Layer& from = base.layers_[xds::Index(t)];
    Layer& l = snap->layers_[xds::Index(t)];
    l = Layer{from.base, from.own, from.version};
    const ResourceSet::Ptr& mine = own[xds::Index(t)];
    if (mine == nullptr || mine->empty()) continue;
    // A layered base would need a third layer; publishers layer groups on a flat default.
    l.own = mine;
    // Digests are sums over entries: the union's version is that of one flat set with the
    // same resources.
    l.version = SetVersion(from.base->digest() + mine->digest(), from.base->size() + mine->size());
  }
  return snap;
}

SnapshotPtr Snapshot::Empty() {
  static const SnapshotPtr kEmpty = FromSets({});
  return kEmpty;
}

size_t Snapshot::size(xds::ResourceType type) const {
  const Layer& l = layers_[xds::Index(type)];
  return l.base->size() + (l.own != nullptr ? l.own->size() : 0);
}

size_t Snapshot::size() const {
  size_t n = 0;
  for (xds::ResourceType t : xds::kAllResourceTypes) n += size(t);
  return n;
}

const xds::Resource* Snapshot::Find(xds::ResourceType type, std::string_view name) const {
  const Layer& l = layers_[xds::Index(type)];
  const Entry* e = l.own != nullptr ? l.own->Find(name) : nullptr;
  if (e == nullptr) e = l.base->Find(name);
  return e != nullptr ? e->resource.get() : nullptr;
}

void Snapshot::ForEach(xds::ResourceType type, const std::function<void(const Entry&)>& fn) const {
  const Layer& l = layers_[xds::Index(type)];
  const auto& a = l.base->entries();
  if (l.own == nullptr) {
    for (const ResourceSet::EntryPtr& e : a) fn(*e);
    return;
  }
  const auto& b = l.own->entries();
  size_t i = 0, j = 0;
  while (i < a.size() || j < b.size()) {
    if (j == b.size() || (i < a.size() && a[i]->resource->name < b[j]->resource->name)) {
      fn(*a[i++]);
    } else {
      fn(*b[j++]);
    }
  }
}

Snapshot::ResourceMap Snapshot::resources(xds::ResourceType type) const {
  ResourceMap out;
  ForEach(type, [&](const Entry& e) { out.emplace(e.resource->name, e.resource); });
  return out;
}

std::shared_ptr<const std::string> Snapshot::Memo(int kind, xds::ResourceType type,
                                                  const std::shared_ptr<const void>& subset,
                                                  const std::function<std::string()>& build) const {
  std::lock_guard lock(memo_mu_);
  MemoEntry& e = memo_[{kind, type, subset.get()}];
  std::shared_ptr<const void> held_subset = e.subset.lock();
  if (held_subset == subset) {
    if (auto bytes = e.bytes.lock()) return bytes;
  }
  // Built under the lock: streams asking for the same bytes meanwhile wait and share them.
  auto bytes = std::make_shared<const std::string>(build());
  e.subset = subset;
  e.bytes = bytes;
  if (memo_.size() >= memo_sweep_at_) {
    std::erase_if(memo_, [](const auto& kv) { return kv.second.bytes.expired(); });
    memo_sweep_at_ = 2 * memo_.size() + 64;
  }
  return bytes;
}

std::shared_ptr<const void> Snapshot::MemoObject(
    int kind, xds::ResourceType type, const std::shared_ptr<const void>& subset,
    const std::function<std::shared_ptr<const void>()>& build) const {
  std::lock_guard lock(memo_mu_);
  ObjectEntry& e = objects_[{kind, type, subset.get()}];
  if (e.object != nullptr && e.subset.lock() == subset) return e.object;
  e.subset = subset;
  e.object = build();
  if (objects_.size() >= objects_sweep_at_) {
    // Selections of subscriptions nobody holds any more.
    std::erase_if(objects_, [](const auto& kv) {
      return std::get<2>(kv.first) != nullptr && kv.second.subset.expired();
    });
    objects_sweep_at_ = 2 * objects_.size() + 64;
  }
  return e.object;
}

}  // namespace weft::cp
