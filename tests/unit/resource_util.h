// Test helper: a message packed and turned into an xds::Resource, failing the test if it is not
// one we serve.
#pragma once

#include <catch2/catch.hpp>

#include "common/proto_util.h"
#include "common/xds/resource.h"

namespace weft::testing {

inline xds::ResourcePtr Res(const google::protobuf::Message& m) {
  auto r = xds::MakeResource(PackAny(m));
  REQUIRE(r.ok());
  return *r;
}

}  // namespace weft::testing
