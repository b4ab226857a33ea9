// What the proxy has accepted from xDS, type by type, and what it therefore needs next.
//
// Every response is validated whole with the same validators weft-cp uses (common/xds); a bad
// response changes nothing and its error becomes the NACK's error_detail, so the proxy always
// keeps serving its last good config. Pure logic: the transport lives in xds_client.h.
#pragma once

#include <array>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/xds/resource.h"
#include "envoy/service/discovery/v3/discovery.pb.h"

namespace weft::proxy {

class ConfigState {
 public:
  using ResourceMap = std::map<std::string, xds::ResourcePtr, std::less<>>;

  // State of the world: LDS/CDS carry the full set; EDS/RDS carry the named resources they hold.
  absl::Status ApplySotw(
      xds::ResourceType type,
      const google::protobuf::RepeatedPtrField<google::protobuf::Any>& resources);
  // Incremental: upserts and removals.
  absl::Status ApplyDelta(
      xds::ResourceType type,
      const google::protobuf::RepeatedPtrField<envoy::service::discovery::v3::Resource>& resources,
      const google::protobuf::RepeatedPtrField<std::string>& removed);

  const ResourceMap& resources(xds::ResourceType type) const { return by_type_[xds::Index(type)]; }
  // EDS names the accepted clusters need, RDS names the accepted listeners need.
  std::set<std::string> Wanted(xds::ResourceType type) const;
  // Clusters still waiting for their endpoints, listeners for their routes.
  std::vector<std::string> Warming() const;
  // Bumps on every accepted change; workers compare it to know when to rebuild.
  uint64_t generation() const { return generation_; }
  // Envoy-style config dump: every accepted resource as JSON, by type, with versions.
  std::string ConfigDumpJson() const;

 private:
  absl::Status Validate(const std::vector<google::protobuf::Any>& anys,
                        std::vector<xds::ResourcePtr>* out) const;
  // EDS/RDS resources nothing refers to any more go away, as the protocol says.
  void PruneUnreferenced();

  std::array<ResourceMap, xds::kResourceTypeCount> by_type_;
  uint64_t generation_ = 0;
};

}  // namespace weft::proxy
