#include "common/xds/resource.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/proto_util.h"
#include "common/strings.h"
#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"
#include "envoy/config/listener/v3/listener.pb.h"
#include "envoy/config/route/v3/route.pb.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb.h"

namespace weft::xds {
namespace {

using envoy::config::cluster::v3::Cluster;
using envoy::config::endpoint::v3::ClusterLoadAssignment;
using envoy::config::listener::v3::FilterChain;
using envoy::config::listener::v3::Listener;
using envoy::config::route::v3::RouteConfiguration;
using envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
using envoy::extensions::transport_sockets::tls::v3::Secret;

void AddUnique(std::string name, std::vector<std::string>* out) {
  if (name.empty()) return;
  if (std::find(out->begin(), out->end(), name) == out->end()) out->push_back(std::move(name));
}

// Anything that is not an HCM (tcp_proxy, unknown filters) has no RDS dependency; bad bytes are
// the validator's business, not ours.
void AddRdsDependency(const google::protobuf::Any& any, std::vector<std::string>* out) {
  if (TypeNameOfUrl(any.type_url()) != HttpConnectionManager::descriptor()->full_name()) return;
  HttpConnectionManager hcm;
  if (!hcm.ParseFromString(any.value())) return;
  if (hcm.has_rds()) AddUnique(hcm.rds().route_config_name(), out);
}

void AddFilterChainDependencies(const FilterChain& chain, std::vector<std::string>* out) {
  for (const auto& filter : chain.filters()) {
    if (filter.has_typed_config()) AddRdsDependency(filter.typed_config(), out);
  }
}

struct Extracted {
  std::string name;
  std::vector<std::string> dependencies;
};

Extracted Extract(ResourceType type, google::protobuf::Message* message) {
  Extracted out;
  switch (type) {
    case ResourceType::kCluster: {
      const auto& c = static_cast<const Cluster&>(*message);
      out.name = c.name();
      if (c.has_type() && c.type() == Cluster::EDS) {
        AddUnique(c.eds_cluster_config().service_name().empty()
                      ? c.name()
                      : c.eds_cluster_config().service_name(),
                  &out.dependencies);
      }
      break;
    }
    case ResourceType::kEndpoint:
      out.name = static_cast<const ClusterLoadAssignment&>(*message).cluster_name();
      break;
    case ResourceType::kListener: {
      const auto& l = static_cast<const Listener&>(*message);
      out.name = l.name();
      for (const auto& chain : l.filter_chains()) {
        AddFilterChainDependencies(chain, &out.dependencies);
      }
      if (l.has_default_filter_chain()) {
        AddFilterChainDependencies(l.default_filter_chain(), &out.dependencies);
      }
      if (l.api_listener().has_api_listener()) {
        AddRdsDependency(l.api_listener().api_listener(), &out.dependencies);
      }
      break;
    }
    case ResourceType::kRoute:
      out.name = static_cast<const RouteConfiguration&>(*message).name();
      break;
    case ResourceType::kSecret:
      out.name = static_cast<const Secret&>(*message).name();
      break;
  }
  return out;
}

std::unique_ptr<google::protobuf::Message> NewMessage(ResourceType type) {
  switch (type) {
    case ResourceType::kCluster:
      return std::make_unique<Cluster>();
    case ResourceType::kEndpoint:
      return std::make_unique<ClusterLoadAssignment>();
    case ResourceType::kListener:
      return std::make_unique<Listener>();
    case ResourceType::kRoute:
      return std::make_unique<RouteConfiguration>();
    case ResourceType::kSecret:
      return std::make_unique<Secret>();
  }
  return nullptr;
}

}  // namespace

absl::StatusOr<ResourcePtr> MakeResource(const google::protobuf::Any& any) {
  std::optional<ResourceType> type = ResourceTypeFromUrl(any.type_url());
  if (!type) {
    return absl::InvalidArgumentError(absl::StrCat("unsupported type \"", any.type_url(), "\""));
  }
  std::unique_ptr<google::protobuf::Message> message = NewMessage(*type);
  absl::Status unpacked = UnpackAny(any, message.get());
  if (!unpacked.ok()) return unpacked;
  Extracted extracted = Extract(*type, message.get());
  if (extracted.name.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(Sv(ShortName(*type)), " resource has an empty name"));
  }
  auto resource = std::make_shared<Resource>();
  resource->type = *type;
  resource->name = std::move(extracted.name);
  resource->dependencies = std::move(extracted.dependencies);
  // Re-pack so the version depends on content only, not on how the sender serialized it (map
  // entry order, field order).
  PackAny(*message, &resource->body);
  resource->version = StableHash64(resource->body.value());
  resource->version_text = HexVersion(resource->version);
  return ResourcePtr(std::move(resource));
}

}  // namespace weft::xds
