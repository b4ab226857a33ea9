#include <catch2/catch.hpp>

#include "common/proto_util.h"
#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"
#include "envoy/service/discovery/v3/discovery.pb.h"

namespace weft {
namespace {

envoy::config::cluster::v3::Cluster SampleCluster() {
  envoy::config::cluster::v3::Cluster c;
  c.set_name("payments");
  c.set_type(envoy::config::cluster::v3::Cluster::EDS);
  c.set_lb_policy(envoy::config::cluster::v3::Cluster::LEAST_REQUEST);
  c.mutable_connect_timeout()->set_seconds(2);
  (*c.mutable_metadata()->mutable_filter_metadata())["weft"].mutable_fields()->insert(
      {"team", google::protobuf::Value()});
  return c;
}

TEST_CASE("Any pack and unpack round trip, with type mismatch errors") {
  auto c = SampleCluster();
  google::protobuf::Any any = PackAny(c);
  CHECK(any.type_url() == "type.googleapis.com/envoy.config.cluster.v3.Cluster");
  envoy::config::cluster::v3::Cluster back;
  REQUIRE(UnpackAny(any, &back).ok());
  CHECK(back.name() == "payments");
  CHECK(back.lb_policy() == envoy::config::cluster::v3::Cluster::LEAST_REQUEST);

  envoy::config::endpoint::v3::ClusterLoadAssignment cla;
  absl::Status s = UnpackAny(any, &cla);
  CHECK(s.message() ==
        "expected type envoy.config.endpoint.v3.ClusterLoadAssignment, got "
        "\"type.googleapis.com/envoy.config.cluster.v3.Cluster\"");
  any.set_value("\xff\xff garbage");
  CHECK_FALSE(UnpackAny(any, &back).ok());
}

TEST_CASE("content versions are stable and change with content") {
  auto a = SampleCluster();
  auto b = SampleCluster();
  CHECK(ContentVersion(a) == ContentVersion(b));
  CHECK(ContentVersion(a).size() == 16);
  b.set_name("payments-v2");
  CHECK(ContentVersion(a) != ContentVersion(b));
  // Pinned value: versions must not drift between builds or restarts of weft-cp.
  CHECK(HexVersion(StableHash64("weft")) == HexVersion(StableHash64(std::string("weft"))));
  CHECK(HexVersion(StableHash64("")) == "cbf29ce484222325");
  CHECK(HexVersion(StableHash64("a")) == "af63dc4c8601ec8c");
}

TEST_CASE("DiscoveryResponse survives a wire round trip") {
  envoy::service::discovery::v3::DiscoveryResponse resp;
  resp.set_version_info("v1");
  resp.set_type_url("type.googleapis.com/envoy.config.cluster.v3.Cluster");
  resp.set_nonce("n1");
  *resp.add_resources() = PackAny(SampleCluster());
  std::string bytes = DeterministicBytes(resp);
  envoy::service::discovery::v3::DiscoveryResponse back;
  REQUIRE(back.ParseFromString(bytes));
  CHECK(back.nonce() == "n1");
  REQUIRE(back.resources_size() == 1);
  envoy::config::cluster::v3::Cluster c;
  REQUIRE(UnpackAny(back.resources(0), &c).ok());
  CHECK(c.connect_timeout().seconds() == 2);
  CHECK(TypeNameOfUrl(back.type_url()) == "envoy.config.cluster.v3.Cluster");
}

}  // namespace
}  // namespace weft
