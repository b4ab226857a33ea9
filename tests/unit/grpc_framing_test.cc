// gRPC message framing of weft-proxy's ADS client (data-plane/grpc_client/framing.h).
#include <catch2/catch.hpp>
#include <string>

#include "data-plane/grpc_client/framing.h"
#include "envoy/service/discovery/v3/discovery.pb.h"

namespace weft::grpc_client {
namespace {

using envoy::service::discovery::v3::DiscoveryResponse;

TEST_CASE("framed messages come back whole however the bytes are split") {
  DiscoveryResponse a;
  a.set_version_info("1");
  a.set_type_url(std::string(300, 'x'));
  DiscoveryResponse b;
  b.set_nonce("n");
  std::string wire;
  AppendFrame(a, &wire);
  AppendFrame(b, &wire);
  for (size_t step : {size_t{1}, size_t{4}, size_t{7}, wire.size()}) {
    MessageReader reader;
    std::vector<DiscoveryResponse> got;
    for (size_t at = 0; at < wire.size(); at += step) {
      reader.Append(std::string_view(wire).substr(at, step));
      DiscoveryResponse m;
      while (auto s = reader.Next(&m, 1024)) {
        REQUIRE(s->ok());
        got.push_back(m);
      }
    }
    INFO(step);
    REQUIRE(got.size() == 2);
    CHECK(got[0].type_url() == a.type_url());
    CHECK(got[1].nonce() == "n");
    CHECK(reader.buffered() == 0);
  }
}

TEST_CASE("a message over the limit is refused from its prefix, before it is buffered") {
  MessageReader reader;
  reader.Append(std::string("\0\x7f\xff\xff\xff", 5));
  DiscoveryResponse m;
  auto s = reader.Next(&m, 64u << 20);
  REQUIRE(s);
  CHECK(s->code() == absl::StatusCode::kResourceExhausted);
  // A limit above INT_MAX is capped: ParseFromArray takes an int.
  MessageReader huge;
  huge.Append(std::string("\0\xff\xff\xff\xff", 5));
  auto t = huge.Next(&m, ~size_t{0});
  REQUIRE(t);
  CHECK(t->code() == absl::StatusCode::kResourceExhausted);
}

TEST_CASE("compressed or undecodable messages fail the stream") {
  DiscoveryResponse m;
  MessageReader compressed;
  compressed.Append(std::string("\1\0\0\0\0", 5));
  auto s = compressed.Next(&m, 100);
  REQUIRE(s);
  CHECK(s->code() == absl::StatusCode::kInternal);
  MessageReader garbage;
  garbage.Append(std::string("\0\0\0\0\2\xff\xff", 7));
  auto t = garbage.Next(&m, 100);
  REQUIRE(t);
  CHECK_FALSE(t->ok());
}

TEST_CASE("grpc-message percent-decoding and the HTTP status mapping") {
  CHECK(PercentDecodeGrpcMessage("a%20b%zz%4") == "a b%zz%4");
  CHECK(FromHttpStatus(503) == absl::StatusCode::kUnavailable);
  CHECK(FromHttpStatus(404) == absl::StatusCode::kUnimplemented);
  CHECK(FromHttpStatus(200) == absl::StatusCode::kUnknown);
}

}  // namespace
}  // namespace weft::grpc_client
