// The shared TLS checks (common/xds/tls_check): Secrets in full, and the TLS contexts of
// transport sockets, which stay refused as a whole until weft-proxy serves TLS but are still
// checked so that every mistake in them is reported.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/proto_util.h"
#include "common/strings.h"
#include "common/validation.h"
#include "common/xds/tls_check.h"
#include "common/xds/validate.h"
#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/listener/v3/listener.pb.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb.h"
#include "envoy/extensions/transport_sockets/tls/v3/tls.pb.h"
#include "tests/unit/resource_util.h"

namespace weft::xds {
namespace {

using envoy::config::cluster::v3::Cluster;
using envoy::config::listener::v3::Listener;
using envoy::extensions::transport_sockets::tls::v3::DownstreamTlsContext;
using envoy::extensions::transport_sockets::tls::v3::Secret;
using envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext;
using testing::FromYaml;

// base64 of 30 03 02 01 01, a DER SEQUENCE { INTEGER 1 }: structurally a DER object, which is all
// the shared check (no crypto library) can see.
constexpr std::string_view kDer = "MAMCAQE=";

std::string Pem(std::string_view label, std::string_view body = kDer) {
  return absl::StrCat("-----BEGIN ", Sv(label), "-----\n", Sv(body), "\n-----END ", Sv(label),
                      "-----\n");
}

std::vector<std::string> Errors(const google::protobuf::Message& m) {
  ValidationErrors errors;
  ValidateResource(PackAny(m), &errors);
  return errors.errors();
}

bool Has(const std::vector<std::string>& errors, std::initializer_list<std::string_view> parts) {
  for (const std::string& e : errors) {
    bool all = true;
    for (std::string_view p : parts) all = all && e.find(p) != std::string::npos;
    if (all) return true;
  }
  return false;
}

Secret CertSecret(const std::string& chain, const std::string& key) {
  Secret s;
  s.set_name("default");
  s.mutable_tls_certificate()->mutable_certificate_chain()->set_inline_string(chain);
  s.mutable_tls_certificate()->mutable_private_key()->set_inline_string(key);
  return s;
}

TEST_CASE("tls check: well-formed certificate and validation secrets pass") {
  auto e = Errors(CertSecret(Pem("CERTIFICATE") + Pem("CERTIFICATE"), Pem("PRIVATE KEY")));
  INFO(absl::StrJoin(e, "\n"));
  CHECK(e.empty());
  // `openssl ecparam -genkey` output, and text outside blocks as `openssl pkcs12` writes it.
  e = Errors(CertSecret("Bag Attributes\n    localKeyID: 01\n" + Pem("CERTIFICATE"),
                        Pem("EC PARAMETERS") + Pem("EC PRIVATE KEY")));
  CHECK(e.empty());
  e = Errors(FromYaml<Secret>(absl::StrCat(R"(
name: ROOTCA
validation_context:
  trusted_ca: {inline_string: ")",
                                           Pem("CERTIFICATE"), R"("}
  match_typed_subject_alt_names:
  - {san_type: URI, matcher: {prefix: "spiffe://weft/ns/shop/"}}
  - {san_type: DNS, matcher: {exact: db.shop}}
  max_verify_depth: 3
)")));
  INFO(absl::StrJoin(e, "\n"));
  CHECK(e.empty());
}

TEST_CASE("tls check: malformed key material is refused with its path") {
  auto e = Errors(CertSecret(Pem("CERTIFICATE") + Pem("PRIVATE KEY"), Pem("PRIVATE KEY")));
  CHECK(Has(e, {"tls_certificate.certificate_chain", "PEM block 1 is \"PRIVATE KEY\"",
                "a private key does not belong here"}));
  e = Errors(CertSecret("not pem at all", Pem("PRIVATE KEY")));
  CHECK(Has(e, {"tls_certificate.certificate_chain: no PEM block found"}));
  e = Errors(CertSecret(Pem("CERTIFICATE", "!!!notbase64"), Pem("PRIVATE KEY")));
  CHECK(Has(e, {"certificate_chain: PEM block \"CERTIFICATE\" is not valid base64"}));
  e = Errors(CertSecret(Pem("CERTIFICATE", "aGVsbG8="), Pem("PRIVATE KEY")));  // "hello"
  CHECK(Has(e, {"certificate_chain: PEM block \"CERTIFICATE\" does not hold a DER structure"}));
  e = Errors(CertSecret("-----BEGIN CERTIFICATE-----\nMAMCAQE=\n", Pem("PRIVATE KEY")));
  CHECK(Has(e, {"has no \"-----END CERTIFICATE-----\" line"}));
  e = Errors(CertSecret(Pem("CERTIFICATE"), Pem("ENCRYPTED PRIVATE KEY")));
  CHECK(Has(e, {"tls_certificate.private_key: is encrypted"}));
  e = Errors(CertSecret(Pem("CERTIFICATE"), Pem("PRIVATE KEY") + Pem("PRIVATE KEY")));
  CHECK(Has(e, {"private_key: must hold exactly one private key, found 2"}));
  e = Errors(CertSecret(Pem("CERTIFICATE"), Pem("CERTIFICATE")));
  CHECK(Has(e, {"private_key: unexpected PEM block \"CERTIFICATE\""}));
  e = Errors(CertSecret(Pem("CERTIFICATE"),
                        "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nMAMCAQE=\n"
                        "-----END RSA PRIVATE KEY-----\n"));
  CHECK(Has(e, {"private_key", "has headers (an encrypted key?)"}));
}

TEST_CASE("tls check: secret fields weft does not apply are refused") {
  auto e = Errors(FromYaml<Secret>("name: s\ngeneric_secret: {secret: {inline_string: x}}\n"));
  CHECK(Has(e, {"generic_secret: is not applied by weft-proxy"}));
  e = Errors(FromYaml<Secret>("name: s\nsession_ticket_keys: {keys: [{inline_string: x}]}\n"));
  CHECK(Has(e, {"session_ticket_keys: is not applied by weft-proxy"}));
  Secret s = CertSecret(Pem("CERTIFICATE"), Pem("PRIVATE KEY"));
  s.mutable_tls_certificate()->mutable_password()->set_inline_string("pw");
  e = Errors(s);
  CHECK(Has(e, {"tls_certificate.password: is not applied"}));
  e = Errors(FromYaml<Secret>(absl::StrCat(R"(
name: ROOTCA
validation_context:
  trusted_ca: {inline_string: ")",
                                           Pem("CERTIFICATE"), R"("}
  allow_expired_certificate: true
  crl: {inline_string: x}
  trust_chain_verification: ACCEPT_UNTRUSTED
  match_typed_subject_alt_names:
  - {san_type: OTHER_NAME, oid: "1.2.3", matcher: {exact: a}}
  - {san_type: URI}
  - {matcher: {exact: b}}
  max_verify_depth: 0
)")));
  INFO(absl::StrJoin(e, "\n"));
  CHECK(Has(e, {"validation_context.allow_expired_certificate: is not applied"}));
  CHECK(Has(e, {"validation_context.crl: is not applied"}));
  CHECK(Has(e, {"validation_context.trust_chain_verification: is not applied"}));
  CHECK(Has(e, {"match_typed_subject_alt_names[0].san_type: OTHER_NAME is not applied"}));
  CHECK(Has(e, {"match_typed_subject_alt_names[0].oid: is not applied"}));
  CHECK(Has(e, {"match_typed_subject_alt_names[1].matcher: must be set"}));
  CHECK(Has(e, {"match_typed_subject_alt_names[2].san_type: must be set"}));
  CHECK(Has(e, {"validation_context.max_verify_depth: must be in 1..100, got 0"}));
  e = Errors(FromYaml<Secret>("name: ROOTCA\nvalidation_context: {}\n"));
  CHECK(Has(e, {"validation_context.trusted_ca: must be set"}));
}

Listener TlsListener(const DownstreamTlsContext& ctx) {
  Listener l = FromYaml<Listener>(R"(
name: l
address: {socket_address: {address: 127.0.0.1, port_value: 0}}
filter_chains:
- transport_socket: {name: envoy.transport_sockets.tls}
)");
  PackAny(ctx, l.mutable_filter_chains(0)->mutable_transport_socket()->mutable_typed_config());
  return l;
}

constexpr std::string_view kTs = "filter_chains[0].transport_socket";
constexpr std::string_view kNotYet = "transport sockets (TLS) are not supported by weft-proxy yet";

TEST_CASE("tls check: a good DownstreamTlsContext is still refused, for that reason only") {
  auto ctx = FromYaml<DownstreamTlsContext>(R"(
require_client_certificate: true
common_tls_context:
  tls_params: {tls_minimum_protocol_version: TLSv1_2, cipher_suites: [ECDHE-ECDSA-AES128-GCM-SHA256]}
  tls_certificate_sds_secret_configs: [{name: default, sds_config: {ads: {}}}]
  validation_context_sds_secret_config: {name: ROOTCA, sds_config: {ads: {}}}
  alpn_protocols: [h2, http/1.1]
session_timeout: 3600s
)");
  auto e = Errors(TlsListener(ctx));
  INFO(absl::StrJoin(e, "\n"));
  CHECK(Has(e, {kTs, kNotYet}));
  // Nothing about the context itself: only the refusal (and filters, which the chain lacks).
  for (const std::string& err : e) {
    if (err.find("typed_config") != std::string::npos) FAIL(err);
  }
}

TEST_CASE("tls check: DownstreamTlsContext mistakes are reported under the transport socket") {
  auto ctx = FromYaml<DownstreamTlsContext>(R"(
require_client_certificate: true
common_tls_context:
  tls_params:
    tls_minimum_protocol_version: TLSv1_1
    tls_maximum_protocol_version: TLSv1_3
    cipher_suites: [AES128-SHA, TLS_AES_128_GCM_SHA256]
    ecdh_curves: [P-521]
  alpn_protocols: [h3, h2, h2]
session_timeout: 0s
)");
  auto e = Errors(TlsListener(ctx));
  INFO(absl::StrJoin(e, "\n"));
  std::string p = absl::StrCat(Sv(kTs), ".typed_config.common_tls_context.");
  CHECK(Has(e, {p + "tls_params.tls_minimum_protocol_version: TLSv1_1 is refused"}));
  CHECK(Has(e, {p + "tls_params.cipher_suites[0]: \"AES128-SHA\" is refused; allowed: ECDHE"}));
  CHECK(Has(e, {p + "tls_params.cipher_suites[1]", "TLS 1.3 suites are not configurable"}));
  CHECK(Has(e, {p + "tls_params.cipher_suites: leaves no usable TLS 1.2 suite"}));
  CHECK(Has(e, {p + "tls_params.ecdh_curves[0]: \"P-521\" is not supported"}));
  CHECK(Has(e, {p + "tls_certificates: a server needs a certificate"}));
  CHECK(Has(e, {p + "alpn_protocols[0]: \"h3\" is not supported"}));
  CHECK(Has(e, {p + "alpn_protocols[2]: duplicate \"h2\""}));
  CHECK(Has(e, {"typed_config.require_client_certificate: needs a validation context"}));
  CHECK(Has(e, {"typed_config.session_timeout: must be greater than 0"}));

  // The wrong context type, and a transport socket that is not TLS.
  Listener l = TlsListener(ctx);
  PackAny(UpstreamTlsContext(),
          l.mutable_filter_chains(0)->mutable_transport_socket()->mutable_typed_config());
  l.mutable_filter_chains(0)->mutable_transport_socket()->set_name("raw_buffer");
  e = Errors(l);
  CHECK(Has(e, {kTs, ".name: unknown transport socket \"raw_buffer\""}));
  CHECK(Has(e, {kTs,
                ".typed_config: must be a "
                "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"}));
}

TEST_CASE("tls check: UpstreamTlsContext always verifies the server, SNI is a DNS name") {
  Cluster c = FromYaml<Cluster>("name: c\ntransport_socket: {name: envoy.transport_sockets.tls}\n");
  auto ctx = FromYaml<UpstreamTlsContext>(R"(
sni: 10.0.0.1
common_tls_context:
  tls_certificate_sds_secret_configs: [{name: default}, {name: other, sds_config: {ads: {}}}]
)");
  PackAny(ctx, c.mutable_transport_socket()->mutable_typed_config());
  auto e = Errors(c);
  INFO(absl::StrJoin(e, "\n"));
  CHECK(Has(e, {"transport_socket: transport sockets (TLS) are not supported"}));
  CHECK(Has(e, {"transport_socket.typed_config.common_tls_context.validation_context: must be "
                "set: weft-proxy verifies every upstream certificate"}));
  CHECK(Has(e, {"typed_config.sni: \"10.0.0.1\" is an IP address"}));
  CHECK(Has(e, {"tls_certificate_sds_secret_configs[0].sds_config: must be set"}));
  CHECK(Has(e, {"common_tls_context.tls_certificates: has 2 certificates"}));

  ctx = FromYaml<UpstreamTlsContext>(R"(
sni: "bad name"
common_tls_context:
  combined_validation_context:
    default_validation_context:
      trusted_ca: {inline_string: x}
      match_typed_subject_alt_names: [{san_type: URI, matcher: {exact: "spiffe://weft/ns/a/sa/b"}}]
)");
  PackAny(ctx, c.mutable_transport_socket()->mutable_typed_config());
  e = Errors(c);
  INFO(absl::StrJoin(e, "\n"));
  CHECK(Has(e, {"combined_validation_context.default_validation_context.trusted_ca: comes from "
                "validation_context_sds_secret_config"}));
  CHECK(Has(e, {"combined_validation_context.validation_context_sds_secret_config: must be set"}));
  CHECK(Has(e, {"sni: \"bad name\" is not a DNS name"}));
}

int g_material_calls = 0;
void FakeMaterialCheck(const Secret& s, ValidationErrors* errors) {
  ++g_material_calls;
  errors->AddAt("tls_certificate.private_key", "does not match the certificate");
}

TEST_CASE("tls check: the installed material check runs on well-formed secrets only") {
  InstallSecretMaterialCheck(&FakeMaterialCheck);
  g_material_calls = 0;
  auto e = Errors(CertSecret(Pem("CERTIFICATE"), Pem("PRIVATE KEY")));
  CHECK(g_material_calls == 1);
  CHECK(Has(e, {"tls_certificate.private_key: does not match the certificate"}));
  e = Errors(CertSecret("garbage", Pem("PRIVATE KEY")));
  CHECK(g_material_calls == 1);
  InstallSecretMaterialCheck(nullptr);
  CHECK(Errors(CertSecret(Pem("CERTIFICATE"), Pem("PRIVATE KEY"))).empty());
}

}  // namespace
}  // namespace weft::xds
