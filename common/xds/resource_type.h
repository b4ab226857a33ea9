// The xDS resource types Weft serves and consumes, with their type URLs and push order.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace weft::xds {

// Declared in push order: CDS -> EDS -> LDS -> RDS -> SDS (make-before-break, see
// shared/reference/xds-protocol.md). Iterating 0..kCount-1 visits types in that order.
enum class ResourceType : uint8_t { kCluster = 0, kEndpoint, kListener, kRoute, kSecret };
inline constexpr size_t kResourceTypeCount = 5;
inline constexpr std::array<ResourceType, kResourceTypeCount> kAllResourceTypes = {
    ResourceType::kCluster, ResourceType::kEndpoint, ResourceType::kListener, ResourceType::kRoute,
    ResourceType::kSecret};

inline constexpr std::string_view kClusterTypeUrl =
    "type.googleapis.com/envoy.config.cluster.v3.Cluster";
inline constexpr std::string_view kEndpointTypeUrl =
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
inline constexpr std::string_view kListenerTypeUrl =
    "type.googleapis.com/envoy.config.listener.v3.Listener";
inline constexpr std::string_view kRouteTypeUrl =
    "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
inline constexpr std::string_view kSecretTypeUrl =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

std::string_view TypeUrl(ResourceType type);
// Short name used in stats, logs and JSON: cluster, endpoint, listener, route, secret.
std::string_view ShortName(ResourceType type);
std::optional<ResourceType> ResourceTypeFromUrl(std::string_view type_url);
// LDS and CDS carry the full set in SotW (a missing name means deleted); the others are partial.
inline bool IsFullStateType(ResourceType t) {
  return t == ResourceType::kCluster || t == ResourceType::kListener;
}
inline size_t Index(ResourceType t) { return static_cast<size_t>(t); }

}  // namespace weft::xds
