// Immutable, versioned sets of xDS resources. A Snapshot never changes after it is built; new
// config means a new Snapshot, so streams can read one without locks while the next is built.
//
// Sharing: a Snapshot is, per type, a ResourceSet (immutable, reference-counted) and, for a node
// group, a second, small ResourceSet of the group's own resources layered on top. A group's
// snapshot therefore references the resources every node shares instead of copying them, and a
// new snapshot shares the sets of every type that did not change with the one before it (an
// endpoint change builds one new ClusterLoadAssignment set, nothing else). Within a changed
// set, the entries of unchanged resources are shared too.
#pragma once

#include <array>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "common/xds/resource.h"
#include "control-plane/cache/name_table.h"

namespace weft::cp {

// The resources of one type, in name order, each with its interned name and the ids of what it
// warms behind. Immutable once built.
class ResourceSet {
 public:
  struct Entry {
    xds::ResourcePtr resource;
    NameId id;
    std::vector<NameId> dependencies;  // of resource->dependencies, same order
  };
  using EntryPtr = std::shared_ptr<const Entry>;
  using Ptr = std::shared_ptr<const ResourceSet>;

  // Fails on duplicate names (a NACK-worthy condition for every client).
  static absl::StatusOr<Ptr> Build(std::vector<xds::ResourcePtr> resources);
  // `base` (null: empty) with `removals` taken out and `upserts` put in (replacing resources of
  // the same name). Entries of resources that stay are shared with `base`; the new set records
  // which names differ from it, so a diff against `base` costs what changed.
  static Ptr Apply(const Ptr& base, std::vector<xds::ResourcePtr> upserts,
                   const std::vector<std::string>& removals);
  static const Ptr& Empty();

  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  const std::vector<EntryPtr>& entries() const { return entries_; }
  const Entry* Find(NameId id) const {
    auto it = index_.find(id);
    return it == index_.end() ? nullptr : entries_[it->second].get();
  }
  const Entry* Find(std::string_view name) const;
  // Sum over (name, version) of a mix of both: independent of order and updated in O(1) per
  // change, equal for equal content (across restarts and replicas too).
  uint64_t digest() const { return digest_; }
  const std::string& version() const { return version_; }
  uint64_t serial() const { return serial_; }
  // Names that differ from the set with serial `parent()` (this set was Apply'd to it).
  uint64_t parent() const { return parent_; }
  const std::vector<NameId>& changed() const { return changed_; }

 private:
  void Index();
  std::vector<EntryPtr> entries_;
  absl::flat_hash_map<NameId, uint32_t> index_;
  uint64_t digest_ = 0;
  std::string version_;
  uint64_t serial_ = 0;
  uint64_t parent_ = 0;
  std::vector<NameId> changed_;
};

class Snapshot {
 public:
  using Entry = ResourceSet::Entry;
  using ResourceMap = std::map<std::string, xds::ResourcePtr, std::less<>>;
  using Sets = std::array<ResourceSet::Ptr, xds::kResourceTypeCount>;

  // Fails on duplicate names within a type.
  static absl::StatusOr<std::shared_ptr<const Snapshot>> Build(
      std::vector<xds::ResourcePtr> resources);
  // A snapshot holding exactly these sets (null: empty).
  static std::shared_ptr<const Snapshot> FromSets(const Sets& sets);
  // `base`'s resources plus `own` (a node group's), sharing both: names must not clash (the
  // publisher checks; a clash would serve one of the two).
  static std::shared_ptr<const Snapshot> Layered(const Snapshot& base, const Sets& own);
  static std::shared_ptr<const Snapshot> Empty();

  // Hash over the (name, version) pairs of one type; equal content, equal version.
  const std::string& version(xds::ResourceType type) const {
    return layers_[xds::Index(type)].version;
  }
  size_t size(xds::ResourceType type) const;
  size_t size() const;
  const xds::Resource* Find(xds::ResourceType type, std::string_view name) const;
  const Entry* Find(xds::ResourceType type, NameId id) const {
    const Layer& l = layers_[xds::Index(type)];
    if (l.own != nullptr) {
      if (const Entry* e = l.own->Find(id)) return e;
    }
    return l.base->Find(id);
  }
  // Every resource of the type in name order. The entries live as long as the snapshot.
  void ForEach(xds::ResourceType type, const std::function<void(const Entry&)>& fn) const;
  // The same as a map by name (tests, debugging: it copies).
  ResourceMap resources(xds::ResourceType type) const;

  // The shared set and the group's own set (null unless layered) of one type.
  const ResourceSet::Ptr& base_set(xds::ResourceType type) const {
    return layers_[xds::Index(type)].base;
  }
  const ResourceSet::Ptr& own_set(xds::ResourceType type) const {
    return layers_[xds::Index(type)].own;
  }

  // Unique per built snapshot in this process; SnapshotCache records changes between serials.
  uint64_t serial() const { return serial_; }

  // Bytes derived from this snapshot that many streams send alike (the serialized list of all
  // resources a subscription selects): built once, shared while anyone holds them (responses
  // in flight), so a fan-out to a thousand proxies serializes a thousand-resource list once.
  // `subset` identifies the selection (null: every resource of the type); it is held weakly,
  // so a later object at the same address never matches.
  std::shared_ptr<const std::string> Memo(int kind, xds::ResourceType type,
                                          const std::shared_ptr<const void>& subset,
                                          const std::function<std::string()>& build) const;
  // The same for any object many streams derive alike (a subscription's resources in response
  // order with their versions), held with the snapshot while `subset` lives: unlike response
  // bytes nobody else keeps it between two streams' turns. `kind` names the object's type.
  std::shared_ptr<const void> MemoObject(
      int kind, xds::ResourceType type, const std::shared_ptr<const void>& subset,
      const std::function<std::shared_ptr<const void>()>& build) const;

 private:
  struct Layer {
    ResourceSet::Ptr base;  // never null
    ResourceSet::Ptr own;   // a group's own resources, or null
    std::string version;
  };
  struct MemoEntry {
    std::weak_ptr<const void> subset;
    std::weak_ptr<const std::string> bytes;
  };
  struct ObjectEntry {
    std::weak_ptr<const void> subset;
    std::shared_ptr<const void> object;
  };
  static std::shared_ptr<Snapshot> New();

  std::array<Layer, xds::kResourceTypeCount> layers_;
  uint64_t serial_ = 0;
  mutable std::mutex memo_mu_;
  mutable std::map<std::tuple<int, xds::ResourceType, const void*>, MemoEntry> memo_;
  mutable size_t memo_sweep_at_ = 64;
  mutable std::map<std::tuple<int, xds::ResourceType, const void*>, ObjectEntry> objects_;
  mutable size_t objects_sweep_at_ = 64;
};
using SnapshotPtr = std::shared_ptr<const Snapshot>;

}  // namespace weft::cp
