// Immutable, versioned sets of xDS resources. A Snapshot never changes after Build(); new config
// means a new Snapshot, so streams can read one without locks while the next is being built.
#pragma once

#include <array>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/xds/resource.h"

namespace weft::cp {

class Snapshot {
 public:
  using ResourceMap = std::map<std::string, xds::ResourcePtr, std::less<>>;

  // Fails on duplicate names within a type (a NACK-worthy condition for every client).
  static absl::StatusOr<std::shared_ptr<const Snapshot>> Build(
      std::vector<xds::ResourcePtr> resources);
  static std::shared_ptr<const Snapshot> Empty();

  const ResourceMap& resources(xds::ResourceType type) const { return by_type_[xds::Index(type)]; }
  // Hash over the (name, version) pairs of one type; equal content, equal version.
  const std::string& version(xds::ResourceType type) const { return versions_[xds::Index(type)]; }
  const xds::Resource* Find(xds::ResourceType type, std::string_view name) const;
  size_t size() const;

 private:
  std::array<ResourceMap, xds::kResourceTypeCount> by_type_;
  std::array<std::string, xds::kResourceTypeCount> versions_;
};
using SnapshotPtr = std::shared_ptr<const Snapshot>;

}  // namespace weft::cp
