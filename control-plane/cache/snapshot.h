// Immutable, versioned sets of xDS resources. A Snapshot never changes after Build(); new config
// means a new Snapshot, so streams can read one without locks while the next is being built.
#pragma once

#include <array>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "common/xds/resource.h"
#include "control-plane/cache/name_table.h"

namespace weft::cp {

class Snapshot {
 public:
  using ResourceMap = std::map<std::string, xds::ResourcePtr, std::less<>>;
  // One resource as streams see it: its interned name and the ids of what it warms behind.
  struct Entry {
    const xds::Resource* resource;
    NameId id;
    std::vector<NameId> dependencies;  // of resource->dependencies, same order
  };

  // Fails on duplicate names within a type (a NACK-worthy condition for every client).
  static absl::StatusOr<std::shared_ptr<const Snapshot>> Build(
      std::vector<xds::ResourcePtr> resources);
  static std::shared_ptr<const Snapshot> Empty();

  const ResourceMap& resources(xds::ResourceType type) const { return by_type_[xds::Index(type)]; }
  // Hash over the (name, version) pairs of one type; equal content, equal version.
  const std::string& version(xds::ResourceType type) const { return versions_[xds::Index(type)]; }
  const xds::Resource* Find(xds::ResourceType type, std::string_view name) const;
  size_t size() const;

  // The same resources in name order, and found by interned name.
  const std::vector<Entry>& entries(xds::ResourceType type) const {
    return entries_[xds::Index(type)];
  }
  const Entry* Find(xds::ResourceType type, NameId id) const {
    const auto& index = index_[xds::Index(type)];
    auto it = index.find(id);
    return it == index.end() ? nullptr : &entries_[xds::Index(type)][it->second];
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
  struct MemoEntry {
    std::weak_ptr<const void> subset;
    std::weak_ptr<const std::string> bytes;
  };
  struct ObjectEntry {
    std::weak_ptr<const void> subset;
    std::shared_ptr<const void> object;
  };
  std::array<ResourceMap, xds::kResourceTypeCount> by_type_;
  std::array<std::string, xds::kResourceTypeCount> versions_;
  std::array<std::vector<Entry>, xds::kResourceTypeCount> entries_;
  std::array<absl::flat_hash_map<NameId, uint32_t>, xds::kResourceTypeCount> index_;
  uint64_t serial_ = 0;
  mutable std::mutex memo_mu_;
  mutable std::map<std::tuple<int, xds::ResourceType, const void*>, MemoEntry> memo_;
  mutable size_t memo_sweep_at_ = 64;
  mutable std::map<std::tuple<int, xds::ResourceType, const void*>, ObjectEntry> objects_;
  mutable size_t objects_sweep_at_ = 64;
};
using SnapshotPtr = std::shared_ptr<const Snapshot>;

}  // namespace weft::cp
