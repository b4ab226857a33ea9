// Test helper: a message packed and turned into an xds::Resource, failing the test if it is not
// one we serve.
#pragma once

#include <catch2/catch.hpp>

#include <string>
#include <string_view>

#include "common/proto_util.h"
#include "common/xds/resource.h"
#include "common/yaml_proto.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"

namespace weft::testing {

inline xds::ResourcePtr Res(const google::protobuf::Message& m) {
  auto r = xds::MakeResource(PackAny(m));
  REQUIRE(r.ok());
  return *r;
}

// `yaml` parsed into a T, failing the test with the parser's message if it does not parse.
template <typename T>
T FromYaml(std::string_view yaml) {
  T message;
  absl::Status s = YamlToProto(yaml, "test.yaml", &message);
  INFO(s.ToString());
  REQUIRE(s.ok());
  return message;
}

// A ClusterLoadAssignment for `name` with one endpoint on `port`.
inline xds::ResourcePtr Endpoints(const std::string& name, int port) {
  envoy::config::endpoint::v3::ClusterLoadAssignment cla;
  cla.set_cluster_name(name);
  cla.add_endpoints()
      ->add_lb_endpoints()
      ->mutable_endpoint()
      ->mutable_address()
      ->mutable_socket_address()
      ->set_port_value(port);
  return Res(cla);
}

}  // namespace weft::testing
