// The Weft config model: operator-facing objects (Service, Route, Policy, AuthorizationPolicy,
// proto/weft/config/v1/config.proto) parsed from YAML, validated with field-path errors and
// translated into the Envoy xDS resources weft-cp serves. Pure logic, no I/O, so every rule is
// unit-tested and the config directory, the config API and `weftctl` share one implementation.
// Naming and translation rules are documented in docs/config.md.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/xds/resource.h"
#include "common/yaml_proto.h"
#include "weft/config/v1/config.pb.h"

namespace weft::cp {

inline constexpr std::string_view kDefaultNamespace = "default";
// The sidecar's outbound HTTP listener and its route configuration.
inline constexpr std::string_view kOutboundHttpName = "outbound_http";
inline constexpr std::string_view kOutboundHttpAddress = "127.0.0.1";
inline constexpr uint32_t kOutboundHttpPort = 15001;
// The sidecar's inbound listeners bind every address on the service port and forward to the
// local app on loopback.
inline constexpr std::string_view kInboundAddress = "0.0.0.0";
inline constexpr std::string_view kInboundAppAddress = "127.0.0.1";

// Parses the YAML documents that carry a top-level `kind` (Service, Route, Policy,
// AuthorizationPolicy); documents without one (raw Envoy resources) and empty documents are
// skipped. The object's fields sit next to `kind`. Every problem is reported, each as
// "file:line: field.path: problem"; one bad document fails the whole call.
absl::StatusOr<std::vector<config::v1::ConfigObject>> ParseConfigDocuments(
    const std::vector<YamlDocument>& docs);

// "Service", "Route", "Policy", "AuthorizationPolicy", or "" when no object is set.
std::string_view ObjectKind(const config::v1::ConfigObject& object);
// "Kind/namespace/name"; an empty namespace reads as "default".
std::string ObjectKey(const config::v1::ConfigObject& object);

// Checks the objects as one consistent set: field values, references between objects,
// duplicates, and finally the translated xDS resources against the proxy's own validators
// (common/xds/validate.h), so nothing a proxy would NACK is accepted. Every problem is
// reported with its path under the object key, e.g.
//   Route/default/r.rules[0].destinations[1].service: unknown service "nope"
absl::Status ValidateConfig(const std::vector<config::v1::ConfigObject>& objects);

// Validates (as ValidateConfig) and translates the objects into the xDS resources shared by
// every node, sorted by type then name. Deterministic: equal input (in any order) gives equal
// resources and versions.
absl::StatusOr<std::vector<xds::ResourcePtr>> Translate(
    const std::vector<config::v1::ConfigObject>& objects);

// Translated resources split by who gets them. `shared` goes to every node; `per_group` holds
// what only some nodes get (a service's inbound listeners and clusters), keyed by node group
// (control-plane/cache/snapshot_cache.h): "<name>.<ns>" and, in namespace default, "<name>".
// A node in such a group is served shared + that group's resources.
struct Translation {
  std::vector<xds::ResourcePtr> shared;
  std::map<std::string, std::vector<xds::ResourcePtr>> per_group;
};

// As Translate, keeping the per-group resources. Each list is sorted by type then name.
absl::StatusOr<Translation> TranslateForNodes(const std::vector<config::v1::ConfigObject>& objects);

// Resource names (docs/config.md).
// Cluster and ClusterLoadAssignment of one service port: "<name>.<namespace>:<port>".
std::string ClusterName(std::string_view name, std::string_view ns, uint32_t port);
// Inbound Listener and its STATIC Cluster of one service port: "inbound|<port>|<name>.<ns>".
std::string InboundName(std::string_view name, std::string_view ns, uint32_t port);

}  // namespace weft::cp
