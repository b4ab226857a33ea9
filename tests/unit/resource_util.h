// Test helper: a message packed and turned into an xds::Resource, failing the test if it is not
// one we serve.
#pragma once

#include <catch2/catch.hpp>

#include <string_view>

#include "common/proto_util.h"
#include "common/xds/resource.h"
#include "common/yaml_proto.h"

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

}  // namespace weft::testing
