// weft-cp's X.509 issuer (control-plane/ca/issuer.h) on a fake clock: roots, intermediates,
// operator-provided CAs, and what a workload certificate holds and refuses.
#include <catch2/catch.hpp>

#include <string>

#include "absl/strings/str_cat.h"
#include "control-plane/ca/issuer.h"
#include "data-plane/tls/certs.h"
#include "tests/unit/tls_test_util.h"

namespace weft::ca {
namespace {

using std::chrono::hours;
using std::chrono::minutes;

constexpr char kId[] = "spiffe://weft/ns/shop/sa/cart";

std::string Csr(const std::string& id, std::vector<std::string> dns = {}) {
  auto key = tls::GenerateKey();
  REQUIRE(key.ok());
  auto csr = tls::MakeCsr(*key, id, dns);
  REQUIRE(csr.ok());
  return *csr;
}

LeafSpec Spec(std::string id = kId) {
  LeafSpec s;
  s.spiffe_id = std::move(id);
  return s;
}

TEST_CASE("ca: a generated root is a ten-year CA for the trust domain") {
  FakeClock clock(testing::kTestEpoch);
  auto root = testing::TestRoot(clock);
  CHECK(root->self_signed());
  CHECK(root->trust_bundle_pem() == root->certificate_pem());
  auto info = tls::InspectCertificates(root->certificate_pem());
  REQUIRE(info.ok());
  REQUIRE(info->size() == 1);
  const tls::CertificateInfo& c = (*info)[0];
  CHECK(c.is_ca);
  CHECK(c.key_type == "prime256v1");
  CHECK(c.uri_sans == std::vector<std::string>{"spiffe://weft"});
  CHECK(c.subject == "CN=Weft Root CA,O=weft");
  auto life = c.not_after - clock.WallNow();
  CHECK(life >= hours(24 * 3650) - minutes(1));
  CHECK(life <= hours(24 * 3650) + minutes(1));
  CHECK(root->key_pem().find("BEGIN PRIVATE KEY") != std::string::npos);
  CHECK(tls::KeyMatchesCertificate(root->key_pem(), root->certificate_pem()).value());
}

TEST_CASE("ca: a workload certificate is a SPIFFE X509-SVID valid for 24 h, back-dated") {
  FakeClock clock(testing::kTestEpoch);
  auto root = testing::TestRoot(clock);
  auto issued = root->SignCsr(Csr(kId), Spec());
  REQUIRE(issued.ok());
  CHECK(issued->chain_pem == issued->certificate_pem);  // signed by the root itself
  auto info = tls::InspectCertificates(issued->certificate_pem);
  REQUIRE(info.ok());
  const tls::CertificateInfo& c = (*info)[0];
  CHECK(c.subject.empty());
  CHECK(c.spiffe_id == kId);
  CHECK(c.uri_sans == std::vector<std::string>{kId});
  CHECK_FALSE(c.is_ca);
  CHECK(c.key_type == "prime256v1");
  CHECK(c.serial_hex == issued->serial_hex);
  CHECK(c.not_before == clock.WallNow() - minutes(5));
  CHECK(c.not_after == clock.WallNow() + hours(24));
  CHECK(issued->not_after == c.not_after);
  CHECK(tls::VerifyChain(issued->chain_pem, root->trust_bundle_pem(), clock.WallNow()).ok());
  // Expired a day later; not yet valid before its (back-dated) start.
  absl::Status late =
      tls::VerifyChain(issued->chain_pem, root->trust_bundle_pem(), clock.WallNow() + hours(25));
  CHECK(late.message() == absl::StrCat("certificate has expired (certificate 0, ", kId, ")"));
  CHECK_FALSE(
      tls::VerifyChain(issued->chain_pem, root->trust_bundle_pem(), clock.WallNow() - hours(1))
          .ok());
  // Two certificates for the same identity have different serials.
  auto again = root->SignCsr(Csr(kId), Spec());
  REQUIRE(again.ok());
  CHECK(again->serial_hex != issued->serial_hex);

  // DNS names when granted, and a lifetime never beyond the CA's.
  LeafSpec serving = Spec();
  serving.dns_names = {"weft-cp.weft-system"};
  serving.ttl = hours(24 * 365 * 20);
  auto server = root->SignCsr(Csr(kId, {"weft-cp.weft-system"}), serving);
  REQUIRE(server.ok());
  CHECK(server->not_after == root->not_after());
  CHECK(tls::InspectCertificates(server->certificate_pem)->at(0).dns_sans ==
        std::vector<std::string>{"weft-cp.weft-system"});
}

TEST_CASE("ca: a CSR that asks for more than was granted is refused") {
  FakeClock clock(testing::kTestEpoch);
  auto root = testing::TestRoot(clock);
  auto other = root->SignCsr(Csr("spiffe://weft/ns/shop/sa/admin"), Spec());
  REQUIRE_FALSE(other.ok());
  CHECK(other.status().code() == absl::StatusCode::kPermissionDenied);
  CHECK(other.status().message() == absl::StrCat("CSR asks for identity spiffe://weft/ns/shop/sa/"
                                                 "admin; granted: ",
                                                 kId));
  auto dns = root->SignCsr(Csr(kId, {"evil.example"}), Spec());
  CHECK(dns.status().code() == absl::StatusCode::kPermissionDenied);
  CHECK(dns.status().message().find("DNS name evil.example") != std::string::npos);

  auto garbage = root->SignCsr(
      "-----BEGIN CERTIFICATE REQUEST-----\nMAMCAQE=\n"
      "-----END CERTIFICATE REQUEST-----\n",
      Spec());
  CHECK(garbage.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(root->SignCsr("", Spec()).status().message() == "CSR: not a PEM certificate request");
  // A certificate in place of a CSR.
  CHECK(root->SignCsr(root->certificate_pem(), Spec()).status().code() ==
        absl::StatusCode::kInvalidArgument);
  LeafSpec no_id;
  CHECK(root->SignCsr(Csr(kId), no_id).status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("ca: an intermediate signs; workloads get the chain up to the root") {
  FakeClock clock(testing::kTestEpoch);
  auto root = testing::TestRoot(clock);
  CaSpec spec;
  spec.common_name = "Weft Intermediate CA";
  auto mid = Issuer::NewIntermediate(*root, spec, clock);
  REQUIRE(mid.ok());
  CHECK_FALSE((*mid)->self_signed());
  CHECK((*mid)->trust_bundle_pem() == root->trust_bundle_pem());
  auto issued = (*mid)->SignCsr(Csr(kId), Spec());
  REQUIRE(issued.ok());
  auto chain = tls::InspectCertificates(issued->chain_pem);
  REQUIRE(chain.ok());
  REQUIRE(chain->size() == 2);
  CHECK((*chain)[1].subject == "CN=Weft Intermediate CA,O=weft");
  CHECK(tls::VerifyChain(issued->chain_pem, root->trust_bundle_pem(), clock.WallNow()).ok());
  // Without the intermediate the leaf does not verify.
  CHECK_FALSE(
      tls::VerifyChain(issued->certificate_pem, root->trust_bundle_pem(), clock.WallNow()).ok());
}

TEST_CASE("ca: an operator-provided CA is checked before it signs anything") {
  FakeClock clock(testing::kTestEpoch);
  auto root = testing::TestRoot(clock);
  auto mid = Issuer::NewIntermediate(*root, CaSpec{}, clock);
  REQUIRE(mid.ok());
  const Issuer& m = **mid;

  // An operator's intermediate with its root as the bundle, and an operator's root alone.
  auto loaded = Issuer::Load(m.chain_pem(), m.key_pem(), root->trust_bundle_pem(), clock);
  REQUIRE(loaded.ok());
  CHECK((*loaded)->SignCsr(Csr(kId), Spec()).ok());
  auto own_root = Issuer::Load(root->certificate_pem(), root->key_pem(), "", clock);
  REQUIRE(own_root.ok());
  CHECK((*own_root)->self_signed());

  auto refused = [&](std::string_view chain, std::string_view key, std::string_view bundle) {
    auto r = Issuer::Load(chain, key, bundle, clock);
    REQUIRE_FALSE(r.ok());
    return std::string(r.status().message());
  };
  CHECK(refused(m.chain_pem(), root->key_pem(), root->trust_bundle_pem()) ==
        "CA key does not match the CA certificate");
  CHECK(refused(m.chain_pem(), m.key_pem(), "") ==
        "the CA certificate is not self-signed: give the root(s) it chains to as the trust bundle");
  auto other_root = testing::TestRoot(clock, "other");
  CHECK(refused(m.chain_pem(), m.key_pem(), other_root->trust_bundle_pem())
            .find("CA certificate does not verify against the trust bundle: unable to get local "
                  "issuer certificate") == 0);
  testing::TestCert leaf = testing::IssueCert(*root, kId);
  CHECK(refused(leaf.chain_pem, leaf.key_pem, root->trust_bundle_pem()) ==
        "CA certificate is not a CA (basicConstraints CA:TRUE)");
  CHECK(refused("", m.key_pem(), "") == "CA certificate: no PEM certificate found");
  CHECK(refused(m.chain_pem(), "nope", "").find("CA key: not an unencrypted PEM private key") == 0);
  clock.Advance(hours(24 * 366 * 11));
  CHECK(refused(root->certificate_pem(), root->key_pem(), "") ==
        "CA certificate (or its chain) is not valid now");
}

TEST_CASE("ca: SPIFFE IDs are built from checked parts") {
  CHECK(SpiffeId("weft", "shop", "cart").value() == "spiffe://weft/ns/shop/sa/cart");
  CHECK_FALSE(SpiffeId("Weft", "shop", "cart").ok());
  CHECK_FALSE(SpiffeId("weft", "", "cart").ok());
  CHECK_FALSE(SpiffeId("weft", "shop", "a/b").ok());
  CHECK_FALSE(SpiffeId("weft", "..", "cart").ok());
  CHECK_FALSE(SpiffeId("weft", "shop", "a,URI:spiffe://x").ok());
}

}  // namespace
}  // namespace weft::ca
