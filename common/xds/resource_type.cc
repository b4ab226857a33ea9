#include "common/xds/resource_type.h"

namespace weft::xds {

std::string_view TypeUrl(ResourceType type) {
  switch (type) {
    case ResourceType::kCluster:
      return kClusterTypeUrl;
    case ResourceType::kEndpoint:
      return kEndpointTypeUrl;
    case ResourceType::kListener:
      return kListenerTypeUrl;
    case ResourceType::kRoute:
      return kRouteTypeUrl;
    case ResourceType::kSecret:
      return kSecretTypeUrl;
  }
  return {};
}

std::string_view ShortName(ResourceType type) {
  static constexpr std::string_view kNames[] = {"cluster", "endpoint", "listener", "route",
                                                "secret"};
  return kNames[Index(type)];
}

std::optional<ResourceType> ResourceTypeFromUrl(std::string_view type_url) {
  for (ResourceType t : kAllResourceTypes) {
    if (TypeUrl(t) == type_url) return t;
  }
  return std::nullopt;
}

}  // namespace weft::xds
