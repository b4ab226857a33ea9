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

// The data path's answer to a validated update. `status` not OK: the update cannot be served at
// all and nothing changes. Otherwise it is served, except for `unserved_listeners` (name -> why,
// e.g. an address that cannot be bound): each keeps serving the version it had, or is not
// served when it is new, and the response is NACKed naming them (Envoy does the same).
struct ServeResult {
  absl::Status status;
  std::map<std::string, std::string> unserved_listeners;
};

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
  // Puts resource `name` of `type` back as `from` holds it (removes it when `from` does not),
  // with the EDS/RDS resources it needs from `from`: an update's listener that cannot be served
  // stays at its previous version while the rest of the update applies.
  void Restore(xds::ResourceType type, const std::string& name, const ConfigState& from);
  // Listeners an update named that the data path could not serve (name -> why), until a later
  // LDS update names them again: what the NACK said, for /listeners and /config_dump.
  const std::map<std::string, std::string>& unserved_listeners() const { return unserved_; }
  void SetUnserved(const std::string& listener, std::string why) { unserved_[listener] = why; }
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
  std::map<std::string, std::string> unserved_;
  uint64_t generation_ = 0;
};

}  // namespace weft::proxy
