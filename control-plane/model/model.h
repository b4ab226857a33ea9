// The Weft config model: operator-facing objects (Service, Route, Policy, AuthorizationPolicy,
// proto/weft/config/v1/config.proto) parsed from YAML, validated with field-path errors and
// translated into the Envoy xDS resources weft-cp serves. Pure logic, no I/O, so every rule is
// unit-tested and the config directory, the config API and `weftctl` share one implementation.
// Naming and translation rules are documented in docs/config.md.
#pragma once

#include <cstdint>
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

// Validates (as ValidateConfig) and translates the objects into xDS resources, sorted by type
// then name. Deterministic: equal input (in any order) gives equal resources and versions.
absl::StatusOr<std::vector<xds::ResourcePtr>> Translate(
    const std::vector<config::v1::ConfigObject>& objects);

// Resource names (docs/config.md).
// Cluster and ClusterLoadAssignment of one service port: "<name>.<namespace>:<port>".
std::string ClusterName(std::string_view name, std::string_view ns, uint32_t port);

}  // namespace weft::cp
