#include "tests/support/xds_client.h"

#include <algorithm>
#include <cstdlib>

#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"
#include "envoy/config/listener/v3/listener.pb.h"
#include "envoy/config/route/v3/route.pb.h"
#include "envoy/extensions/filters/http/router/v3/router.pb.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb.h"
#include "envoy/service/cluster/v3/cds.grpc.pb.h"
#include "envoy/service/discovery/v3/ads.grpc.pb.h"
#include "envoy/service/endpoint/v3/eds.grpc.pb.h"
#include "envoy/service/listener/v3/lds.grpc.pb.h"
#include "envoy/service/route/v3/rds.grpc.pb.h"
#include "envoy/service/secret/v3/sds.grpc.pb.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/dynamic_message.h"
#include "google/protobuf/util/json_util.h"

namespace weft::test {

namespace {

using DiscoveryCore = internal::StreamCore<DiscoveryRequest, DiscoveryResponse>;
using DeltaCore = internal::StreamCore<DeltaDiscoveryRequest, DeltaDiscoveryResponse>;

template <typename Service>
std::unique_ptr<typename Service::Stub> StubFor(const std::shared_ptr<grpc::Channel>& channel) {
  return Service::NewStub(channel);
}

}  // namespace

std::shared_ptr<grpc::Channel> XdsChannel(int port) {
  grpc::ChannelArguments args;
  args.SetMaxSendMessageSize(64 << 20);
  args.SetMaxReceiveMessageSize(64 << 20);
  // Each client gets its own connection so that one stream's failure cannot mask another's.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port),
                                   grpc::InsecureChannelCredentials(), args);
}

SotwClient::SotwClient(std::shared_ptr<grpc::Channel> channel, XdsService service)
    : XdsStreamClient(std::move(channel)) {
  auto ch = channel_;
  DiscoveryCore::Opener open = [ch, service](grpc::ClientContext* ctx)
      -> std::unique_ptr<grpc::ClientReaderWriter<DiscoveryRequest, DiscoveryResponse>> {
    switch (service) {
      case XdsService::kAds:
        return StubFor<envoy::service::discovery::v3::AggregatedDiscoveryService>(ch)
            ->StreamAggregatedResources(ctx);
      case XdsService::kCluster:
        return StubFor<envoy::service::cluster::v3::ClusterDiscoveryService>(ch)->StreamClusters(
            ctx);
      case XdsService::kEndpoint:
        return StubFor<envoy::service::endpoint::v3::EndpointDiscoveryService>(ch)->StreamEndpoints(
            ctx);
      case XdsService::kListener:
        return StubFor<envoy::service::listener::v3::ListenerDiscoveryService>(ch)->StreamListeners(
            ctx);
      case XdsService::kRoute:
        return StubFor<envoy::service::route::v3::RouteDiscoveryService>(ch)->StreamRoutes(ctx);
      case XdsService::kSecret:
        return StubFor<envoy::service::secret::v3::SecretDiscoveryService>(ch)->StreamSecrets(ctx);
    }
    return nullptr;
  };
  core_ = std::make_unique<DiscoveryCore>(open);
}

DeltaClient::DeltaClient(std::shared_ptr<grpc::Channel> channel, XdsService service)
    : XdsStreamClient(std::move(channel)) {
  auto ch = channel_;
  DeltaCore::Opener open = [ch, service](grpc::ClientContext* ctx)
      -> std::unique_ptr<grpc::ClientReaderWriter<DeltaDiscoveryRequest, DeltaDiscoveryResponse>> {
    switch (service) {
      case XdsService::kAds:
        return StubFor<envoy::service::discovery::v3::AggregatedDiscoveryService>(ch)
            ->DeltaAggregatedResources(ctx);
      case XdsService::kCluster:
        return StubFor<envoy::service::cluster::v3::ClusterDiscoveryService>(ch)->DeltaClusters(
            ctx);
      case XdsService::kEndpoint:
        return StubFor<envoy::service::endpoint::v3::EndpointDiscoveryService>(ch)->DeltaEndpoints(
            ctx);
      case XdsService::kListener:
        return StubFor<envoy::service::listener::v3::ListenerDiscoveryService>(ch)->DeltaListeners(
            ctx);
      case XdsService::kRoute:
        return StubFor<envoy::service::route::v3::RouteDiscoveryService>(ch)->DeltaRoutes(ctx);
      case XdsService::kSecret:
        return StubFor<envoy::service::secret::v3::SecretDiscoveryService>(ch)->DeltaSecrets(ctx);
    }
    return nullptr;
  };
  core_ = std::make_unique<DeltaCore>(open);
}

envoy::config::core::v3::Node MakeNode(std::string_view id, std::string_view cluster) {
  envoy::config::core::v3::Node node;
  node.set_id(std::string(id));
  node.set_cluster(std::string(cluster));
  return node;
}

DiscoveryRequest SotwRequest(std::string_view type_url, const std::vector<std::string>& names,
                             const envoy::config::core::v3::Node* node) {
  DiscoveryRequest r;
  r.set_type_url(std::string(type_url));
  for (const auto& n : names) r.add_resource_names(n);
  if (node != nullptr) *r.mutable_node() = *node;
  return r;
}

DiscoveryRequest SotwAck(const DiscoveryResponse& response, const std::vector<std::string>& names) {
  DiscoveryRequest r = SotwRequest(response.type_url(), names);
  r.set_version_info(response.version_info());
  r.set_response_nonce(response.nonce());
  return r;
}

DiscoveryRequest SotwNack(const DiscoveryResponse& response, const std::vector<std::string>& names,
                          std::string_view last_good_version, std::string_view message) {
  DiscoveryRequest r = SotwRequest(response.type_url(), names);
  r.set_version_info(std::string(last_good_version));
  r.set_response_nonce(response.nonce());
  r.mutable_error_detail()->set_code(3);  // INVALID_ARGUMENT, as Envoy reports rejected config
  r.mutable_error_detail()->set_message(std::string(message));
  return r;
}

DeltaDiscoveryRequest DeltaRequest(std::string_view type_url,
                                   const std::vector<std::string>& subscribe,
                                   const std::map<std::string, std::string>& initial_versions,
                                   const envoy::config::core::v3::Node* node) {
  DeltaDiscoveryRequest r;
  r.set_type_url(std::string(type_url));
  for (const auto& n : subscribe) r.add_resource_names_subscribe(n);
  for (const auto& [k, v] : initial_versions) (*r.mutable_initial_resource_versions())[k] = v;
  if (node != nullptr) *r.mutable_node() = *node;
  return r;
}

DeltaDiscoveryRequest DeltaAck(const DeltaDiscoveryResponse& response) {
  DeltaDiscoveryRequest r;
  r.set_type_url(response.type_url());
  r.set_response_nonce(response.nonce());
  return r;
}

DeltaDiscoveryRequest DeltaNack(const DeltaDiscoveryResponse& response, std::string_view message) {
  DeltaDiscoveryRequest r = DeltaAck(response);
  r.mutable_error_detail()->set_code(3);
  r.mutable_error_detail()->set_message(std::string(message));
  return r;
}

// Descriptors of a static library's messages register only if their object file is linked, and
// ResourceName finds types by name only; touching each default instance forces the link.
void LinkResourceTypes() {
  // descriptor() is defined out of line, so calling it (unlike default_instance()) really
  // references each generated object file.
  static const bool linked = [] {
    const google::protobuf::Descriptor* all[] = {
        envoy::config::cluster::v3::Cluster::descriptor(),
        envoy::config::endpoint::v3::ClusterLoadAssignment::descriptor(),
        envoy::config::listener::v3::Listener::descriptor(),
        envoy::config::route::v3::RouteConfiguration::descriptor(),
        envoy::extensions::transport_sockets::tls::v3::Secret::descriptor(),
        envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager::
            descriptor(),
        envoy::extensions::filters::http::router::v3::Router::descriptor(),
    };
    return std::all_of(std::begin(all), std::end(all), [](auto* d) { return d != nullptr; });
  }();
  (void)linked;
}

std::string ResourceName(const google::protobuf::Any& resource) {
  LinkResourceTypes();
  std::string_view url = resource.type_url();
  std::string type_name(url.substr(url.rfind('/') + 1));
  const auto* descriptor =
      google::protobuf::DescriptorPool::generated_pool()->FindMessageTypeByName(type_name);
  if (descriptor == nullptr) return "";
  const auto* prototype =
      google::protobuf::MessageFactory::generated_factory()->GetPrototype(descriptor);
  if (prototype == nullptr) return "";
  std::unique_ptr<google::protobuf::Message> message(prototype->New());
  if (!message->ParseFromString(resource.value())) return "";
  const auto* field = descriptor->FindFieldByName("name");
  if (field == nullptr) field = descriptor->FindFieldByName("cluster_name");
  if (field == nullptr || field->type() != google::protobuf::FieldDescriptor::TYPE_STRING) {
    return "";
  }
  return message->GetReflection()->GetString(*message, field);
}

std::vector<std::string> Names(const DiscoveryResponse& response) {
  std::vector<std::string> out;
  for (const auto& r : response.resources()) out.push_back(ResourceName(r));
  return out;
}

std::vector<std::string> Names(const DeltaDiscoveryResponse& response) {
  std::vector<std::string> out;
  for (const auto& r : response.resources()) out.push_back(r.name());
  return out;
}

std::map<std::string, std::string> Versions(const DeltaDiscoveryResponse& response) {
  std::map<std::string, std::string> out;
  for (const auto& r : response.resources()) out[r.name()] = r.version();
  return out;
}

std::optional<google::protobuf::Struct> ParseJson(std::string_view json) {
  google::protobuf::Struct s;
  if (!google::protobuf::util::JsonStringToMessage(std::string(json), &s).ok()) {
    return std::nullopt;
  }
  return s;
}

const google::protobuf::Value* JsonAt(const google::protobuf::Value& value, std::string_view path) {
  const google::protobuf::Value* cur = &value;
  size_t i = 0;
  while (i < path.size() && cur != nullptr) {
    if (path[i] == '.') {
      ++i;
      continue;
    }
    if (path[i] == '[') {
      size_t close = path.find(']', i);
      if (close == std::string_view::npos || !cur->has_list_value()) return nullptr;
      int index = std::atoi(std::string(path.substr(i + 1, close - i - 1)).c_str());
      if (index < 0 || index >= cur->list_value().values_size()) return nullptr;
      cur = &cur->list_value().values(index);
      i = close + 1;
      continue;
    }
    size_t end = path.find_first_of(".[", i);
    if (end == std::string_view::npos) end = path.size();
    std::string key(path.substr(i, end - i));
    if (!cur->has_struct_value()) return nullptr;
    auto it = cur->struct_value().fields().find(key);
    if (it == cur->struct_value().fields().end()) return nullptr;
    cur = &it->second;
    i = end;
  }
  return cur;
}

const google::protobuf::Value* JsonAt(const google::protobuf::Struct& root, std::string_view path) {
  // Value::struct_value is a copy here; keep it alive for the caller with a thread-local.
  thread_local google::protobuf::Value holder;
  *holder.mutable_struct_value() = root;
  return JsonAt(holder, path);
}

std::string JsonString(const google::protobuf::Value& value, std::string_view path) {
  const auto* v = JsonAt(value, path);
  if (v == nullptr || !v->has_string_value()) return "";
  return v->string_value();
}

std::optional<google::protobuf::Value> FindProxy(const google::protobuf::Struct& proxies,
                                                 std::string_view node_id) {
  auto it = proxies.fields().find("proxies");
  if (it == proxies.fields().end() || !it->second.has_list_value()) return std::nullopt;
  std::optional<google::protobuf::Value> best;
  double best_id = -1;
  for (const auto& p : it->second.list_value().values()) {
    if (JsonString(p, "node_id") != node_id) continue;
    const auto* id = JsonAt(p, "stream_id");
    double sid = id != nullptr && id->has_number_value() ? id->number_value() : 0;
    if (sid >= best_id) {
      best_id = sid;
      best = p;
    }
  }
  return best;
}

std::string ToJson(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  auto status = google::protobuf::util::MessageToJsonString(message, &out, options);
  if (!status.ok()) return "<" + std::string(status.message()) + ">";
  return out;
}

}  // namespace weft::test
