// A validated xDS resource ready to serve: its name, content version and the serialized bytes
// (packed once, shared by every stream and snapshot that holds it).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/xds/resource_type.h"
#include "google/protobuf/any.pb.h"

namespace weft::xds {

struct Resource {
  ResourceType type;
  std::string name;
  uint64_t version = 0;      // StableHash64 of the deterministic bytes
  std::string version_text;  // HexVersion(version), what goes on the wire
  google::protobuf::Any body;
  // Names of resources this one needs before it is warm: a Cluster's EDS service name, a
  // Listener's RDS route config names. The server re-sends them whenever this one is sent.
  std::vector<std::string> dependencies;
};
using ResourcePtr = std::shared_ptr<const Resource>;

// Builds a Resource from a packed message: checks the type URL is one we serve, parses it,
// extracts the name and dependencies and computes the version. Does not run the semantic
// validators (see validate.h); callers that accept user input run those first.
absl::StatusOr<ResourcePtr> MakeResource(const google::protobuf::Any& any);

}  // namespace weft::xds
