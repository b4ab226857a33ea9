#include <catch2/catch.hpp>

#include "common/proto_util.h"
#include "common/xds/resource.h"
#include "common/yaml_proto.h"
#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"
#include "envoy/config/listener/v3/listener.pb.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb.h"

namespace weft::xds {
namespace {

using envoy::config::cluster::v3::Cluster;
using envoy::config::endpoint::v3::ClusterLoadAssignment;
using envoy::config::listener::v3::Listener;
using envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
using envoy::extensions::transport_sockets::tls::v3::Secret;

template <typename T>
google::protobuf::Any Pack(std::string_view yaml) {
  T message;
  absl::Status s = YamlToProto(yaml, "test.yaml", &message);
  INFO(s.ToString());
  REQUIRE(s.ok());
  return PackAny(message);
}

ResourcePtr MustMake(const google::protobuf::Any& any) {
  auto r = MakeResource(any);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  return *r;
}

TEST_CASE("MakeResource extracts name and EDS dependency of a cluster") {
  ResourcePtr eds = MustMake(Pack<Cluster>(
      "name: payments\ntype: EDS\neds_cluster_config: {service_name: payments-v2}\n"));
  CHECK(eds->type == ResourceType::kCluster);
  CHECK(eds->name == "payments");
  CHECK(eds->dependencies == std::vector<std::string>{"payments-v2"});

  ResourcePtr eds_default = MustMake(Pack<Cluster>("name: orders\ntype: EDS\n"));
  CHECK(eds_default->dependencies == std::vector<std::string>{"orders"});

  ResourcePtr stat = MustMake(Pack<Cluster>("name: s\ntype: STATIC\n"));
  CHECK(stat->dependencies.empty());
}

TEST_CASE("MakeResource collects RDS names from every HCM of a listener, once each") {
  HttpConnectionManager rds_a;
  rds_a.mutable_rds()->set_route_config_name("routes-a");
  HttpConnectionManager rds_b;
  rds_b.mutable_rds()->set_route_config_name("routes-b");
  HttpConnectionManager inline_routes;
  inline_routes.mutable_route_config()->set_name("inline");

  Listener l;
  l.set_name("ingress");
  auto* f = l.add_filter_chains()->add_filters();
  f->set_name("hcm");
  PackAny(rds_a, f->mutable_typed_config());
  f = l.add_filter_chains()->add_filters();
  PackAny(inline_routes, f->mutable_typed_config());
  f = l.add_filter_chains()->add_filters();
  PackAny(rds_a, f->mutable_typed_config());  // same name again
  PackAny(rds_b, l.mutable_default_filter_chain()->add_filters()->mutable_typed_config());

  ResourcePtr r = MustMake(PackAny(l));
  CHECK(r->type == ResourceType::kListener);
  CHECK(r->name == "ingress");
  CHECK(r->dependencies == std::vector<std::string>{"routes-a", "routes-b"});

  Listener api;
  api.set_name("xds-target");
  PackAny(rds_b, api.mutable_api_listener()->mutable_api_listener());
  CHECK(MustMake(PackAny(api))->dependencies == std::vector<std::string>{"routes-b"});
}

TEST_CASE("MakeResource names endpoints by cluster_name and secrets by name") {
  ResourcePtr cla = MustMake(Pack<ClusterLoadAssignment>("cluster_name: backend\n"));
  CHECK(cla->type == ResourceType::kEndpoint);
  CHECK(cla->name == "backend");
  ResourcePtr secret =
      MustMake(Pack<Secret>("name: cert\ngeneric_secret: {secret: {inline_string: s3cr3t}}\n"));
  CHECK(secret->type == ResourceType::kSecret);
  CHECK(secret->name == "cert");
}

TEST_CASE("MakeResource refuses foreign types, bad bytes and empty names") {
  google::protobuf::Any any;
  any.set_type_url("type.googleapis.com/envoy.config.core.v3.Address");
  auto r = MakeResource(any);
  REQUIRE_FALSE(r.ok());
  CHECK(std::string(r.status().message()) ==
        "unsupported type \"type.googleapis.com/envoy.config.core.v3.Address\"");

  any.set_type_url(std::string(kClusterTypeUrl));
  any.set_value("\xff\xff\xff");
  CHECK_FALSE(MakeResource(any).ok());

  r = MakeResource(Pack<Cluster>("type: STATIC\n"));
  REQUIRE_FALSE(r.ok());
  CHECK(std::string(r.status().message()).find("empty name") != std::string::npos);
}

TEST_CASE("the version is stable for equal content and changes with content") {
  auto a1 = MustMake(Pack<Cluster>("name: a\nconnect_timeout: 1s\n"));
  auto a2 = MustMake(Pack<Cluster>("connect_timeout: 1s\nname: a\n"));
  auto b = MustMake(Pack<Cluster>("name: a\nconnect_timeout: 2s\n"));
  CHECK(a1->version == a2->version);
  CHECK(a1->version_text == a2->version_text);
  CHECK(a1->version != b->version);
  CHECK(a1->version_text.size() == 16);
  CHECK(a1->version_text == HexVersion(a1->version));
  CHECK(a1->body.type_url() == kClusterTypeUrl);
}

}  // namespace
}  // namespace weft::xds
