#include <catch2/catch.hpp>

#include "common/proto_util.h"
#include "common/xds/sensitive.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb.h"
#include "envoy/extensions/transport_sockets/tls/v3/tls.pb.h"
#include "google/protobuf/util/json_util.h"
#include "tests/unit/resource_util.h"

namespace weft::xds {
namespace {

using envoy::extensions::transport_sockets::tls::v3::Secret;
using envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext;

using testing::FromYaml;

std::string Json(const google::protobuf::Message& m) {
  std::string out;
  REQUIRE(google::protobuf::util::MessageToJsonString(m, &out).ok());
  return out;
}

constexpr std::string_view kKey = "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBg\\n";

TEST_CASE("InlineKeyMaterial finds inline private keys, passwords, generic secrets, ticket keys",
          "[xds][sensitive]") {
  auto cert =
      FromYaml<Secret>(std::string("name: s\ntls_certificate:\n  certificate_chain: "
                                   "{inline_string: chain}\n  private_key: {inline_string: \"") +
                       std::string(kKey) + "\"}\n  password: {inline_bytes: cGFzcw==}\n");
  CHECK(InlineKeyMaterial(cert) ==
        std::vector<std::string>{"tls_certificate.private_key", "tls_certificate.password"});
  // Packed as a resource, the same paths.
  CHECK(InlineKeyMaterial(PackAny(cert)) ==
        std::vector<std::string>{"tls_certificate.private_key", "tls_certificate.password"});

  // A file on the proxy's own host is where the key lives, not the key.
  auto by_file = FromYaml<Secret>(
      "name: s\ntls_certificate:\n  certificate_chain: {filename: /c.pem}\n"
      "  private_key: {filename: /k.pem}\n");
  CHECK(InlineKeyMaterial(by_file).empty());

  auto generic = FromYaml<Secret>("name: g\ngeneric_secret: {secret: {inline_string: hunter2}}\n");
  CHECK(InlineKeyMaterial(generic) == std::vector<std::string>{"generic_secret.secret"});
  auto tickets = FromYaml<Secret>(
      "name: t\nsession_ticket_keys: {keys: [{filename: /a}, {inline_bytes: AAAA}]}\n");
  CHECK(InlineKeyMaterial(tickets) == std::vector<std::string>{"session_ticket_keys.keys[1]"});
  auto ca =
      FromYaml<Secret>("name: ca\nvalidation_context: {trusted_ca: {inline_string: ca-pem}}\n");
  CHECK(InlineKeyMaterial(ca).empty());

  // Nested in a TLS context, as a listener or cluster would carry it.
  auto ctx = FromYaml<UpstreamTlsContext>(
      "common_tls_context: {tls_certificates: [{certificate_chain: {inline_string: c}, "
      "private_key: {inline_string: k}}]}\n");
  CHECK(InlineKeyMaterial(ctx) ==
        std::vector<std::string>{"common_tls_context.tls_certificates[0].private_key"});
}

TEST_CASE("RedactSensitive replaces what sensitive fields hold, as Envoy's config dump does",
          "[xds][sensitive]") {
  auto cert = FromYaml<Secret>(std::string("name: s\ntls_certificate:\n  certificate_chain: "
                                           "{inline_string: the-chain}\n  private_key: "
                                           "{inline_string: \"") +
                               std::string(kKey) + "\"}\n");
  google::protobuf::Any any = PackAny(cert);
  CHECK(RedactSensitive(&any));
  Secret out;
  REQUIRE(any.UnpackTo(&out));
  CHECK(out.tls_certificate().private_key().inline_string() == kRedacted);
  CHECK(out.tls_certificate().certificate_chain().inline_string() == "the-chain");
  CHECK(Json(out).find("BEGIN PRIVATE KEY") == std::string::npos);
  CHECK(InlineKeyMaterial(out) == std::vector<std::string>{"tls_certificate.private_key"});

  auto by_file = FromYaml<Secret>("name: s\ntls_certificate: {private_key: {filename: /k.pem}}\n");
  CHECK(RedactSensitive(&by_file));
  CHECK(by_file.tls_certificate().private_key().filename() == kRedacted);

  auto ca =
      FromYaml<Secret>("name: ca\nvalidation_context: {trusted_ca: {inline_string: ca-pem}}\n");
  google::protobuf::Any ca_any = PackAny(ca);
  std::string before = ca_any.value();
  CHECK_FALSE(RedactSensitive(&ca_any));
  CHECK(ca_any.value() == before);
}

}  // namespace
}  // namespace weft::xds
