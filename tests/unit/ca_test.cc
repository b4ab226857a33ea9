// weft-cp's CA (control-plane/ca/ca.h) over a memory store on a fake clock: bootstrap tokens,
// signing for the identity a token grants, the root kept across restarts, operator CAs, and the
// trust bundle Secret.
#include <catch2/catch.hpp>

#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/proto_util.h"
#include "common/xds/tls_check.h"
#include "common/xds/validate.h"
#include "control-plane/ca/ca.h"
#include "data-plane/tls/certs.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb.h"
#include "tests/unit/tls_test_util.h"

namespace weft::ca {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

v1::TokenScope Scope(std::string ns, std::string sa, std::string node = "") {
  v1::TokenScope s;
  s.set_namespace_(std::move(ns));
  s.set_service_account(std::move(sa));
  s.set_node_id(std::move(node));
  return s;
}

struct Fixture {
  FakeClock clock{testing::kTestEpoch};
  std::unique_ptr<cp::Store> store = cp::NewMemoryStore();
  CaOptions options;
  std::unique_ptr<Authority> Open() {
    auto a = Authority::Open(store.get(), clock, options);
    INFO(a.status().ToString());
    REQUIRE(a.ok());
    return *std::move(a);
  }
};

v1::SignRequest Request(const std::string& id, std::string node = "n1",
                        std::string* key_out = nullptr) {
  auto key = tls::GenerateKey();
  REQUIRE(key.ok());
  auto csr = tls::MakeCsr(*key, id);
  REQUIRE(csr.ok());
  v1::SignRequest r;
  r.set_csr_pem(*csr);
  r.set_node_id(std::move(node));
  if (key_out != nullptr) *key_out = *key;
  return r;
}

TEST_CASE("ca: a token signs for its identity only, until revoked or expired") {
  Fixture f;
  auto ca = f.Open();
  CHECK(ca->origin() == "generated");
  auto token = ca->tokens().Create(Scope("shop", "cart"), hours(1), "cart's sidecars");
  REQUIRE(token.ok());
  CHECK(token->token().rfind("weft1." + token->info().id() + ".", 0) == 0);
  CHECK(token->info().spiffe_id() == "spiffe://weft/ns/shop/sa/cart");
  // Only a hash is kept.
  auto stored = f.store->Get(std::string(kTokenPrefix) + token->info().id());
  REQUIRE(stored.ok());
  REQUIRE(stored->has_value());
  std::string secret = token->token().substr(token->token().rfind('.') + 1);
  CHECK((*stored)->value.find(secret) == std::string::npos);

  std::string key;
  auto signed_ = ca->Sign(Request("spiffe://weft/ns/shop/sa/cart", "n1", &key), token->token());
  INFO(signed_.status().ToString());
  REQUIRE(signed_.ok());
  CHECK(signed_->spiffe_id() == "spiffe://weft/ns/shop/sa/cart");
  CHECK(tls::KeyMatchesCertificate(key, signed_->certificate_chain_pem()).value());
  CHECK(tls::VerifyChain(signed_->certificate_chain_pem(), signed_->trust_bundle_pem(),
                         f.clock.WallNow())
            .ok());
  CHECK(signed_->not_after().seconds() - signed_->not_before().seconds() == 24 * 3600 + 300);

  // Another identity in the CSR.
  auto other = ca->Sign(Request("spiffe://weft/ns/shop/sa/admin"), token->token());
  CHECK(other.status().code() == absl::StatusCode::kPermissionDenied);
  CHECK(other.status().message().find("granted: spiffe://weft/ns/shop/sa/cart") !=
        std::string::npos);

  // Tokens that are not right.
  auto refused = [&](std::string_view t) {
    auto r = ca->Sign(Request("spiffe://weft/ns/shop/sa/cart"), t);
    CHECK(r.status().code() == absl::StatusCode::kUnauthenticated);
    return std::string(r.status().message());
  };
  CHECK(refused("") == "malformed bootstrap token (expected weft1.<id>.<secret>)");
  CHECK(refused("weft1.zz.yy") == "malformed bootstrap token (expected weft1.<id>.<secret>)");
  std::string wrong_secret = token->token();
  wrong_secret.back() = wrong_secret.back() == 'A' ? 'B' : 'A';
  CHECK(refused(wrong_secret) == "invalid bootstrap token");
  CHECK(refused("weft1.0123456789abcdef.c2VjcmV0") == "invalid bootstrap token");

  // Expiry, on the CA's clock.
  f.clock.Advance(hours(2));
  CHECK(refused(token->token())
            .find(absl::StrCat("bootstrap token ", token->info().id(), " expired at 2027-")) == 0);

  // Revocation: refused at once, kept in the list with --all, revoking twice is harmless.
  auto forever = ca->tokens().Create(Scope("shop", "cart"), std::nullopt, "");
  REQUIRE(forever.ok());
  CHECK_FALSE(forever->info().has_expires());
  CHECK(ca->Sign(Request("spiffe://weft/ns/shop/sa/cart"), forever->token()).ok());
  auto revoked = ca->tokens().Revoke(forever->info().id());
  REQUIRE(revoked.ok());
  CHECK(revoked->has_revoked());
  CHECK(refused(forever->token()) ==
        absl::StrCat("bootstrap token ", forever->info().id(), " was revoked"));
  f.clock.Advance(minutes(1));
  CHECK(ca->tokens().Revoke(forever->info().id())->revoked().seconds() ==
        revoked->revoked().seconds());
  CHECK(ca->tokens().Revoke("0123456789abcdef").status().code() == absl::StatusCode::kNotFound);
  CHECK(ca->tokens().List(false)->size() == 1);  // the expired one; revoked are hidden
  CHECK(ca->tokens().List(true)->size() == 2);

  CHECK(ca->tokens().Create(Scope("shop", ""), std::nullopt, "").status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(ca->tokens().Create(Scope("sh/op", "x"), std::nullopt, "").status().code() ==
        absl::StatusCode::kInvalidArgument);
}

TEST_CASE("ca: a per-node token works from its node only") {
  Fixture f;
  auto ca = f.Open();
  auto token = ca->tokens().Create(Scope("shop", "cart", "cart-7f9c"), std::nullopt, "");
  REQUIRE(token.ok());
  CHECK(ca->Sign(Request("spiffe://weft/ns/shop/sa/cart", "cart-7f9c"), token->token()).ok());
  auto elsewhere = ca->Sign(Request("spiffe://weft/ns/shop/sa/cart", "web-1"), token->token());
  CHECK(elsewhere.status().code() == absl::StatusCode::kPermissionDenied);
  CHECK(elsewhere.status().message() ==
        absl::StrCat("bootstrap token ", token->info().id(),
                     " is bound to node \"cart-7f9c\", not \"web-1\""));
}

TEST_CASE("ca: lifetimes follow the request within the CA's bounds") {
  Fixture f;
  f.options.workload_ttl = hours(12);
  auto ca = f.Open();
  auto token = ca->tokens().Create(Scope("shop", "cart"), std::nullopt, "");
  REQUIRE(token.ok());
  auto life = [&](int64_t asked) {
    v1::SignRequest r = Request("spiffe://weft/ns/shop/sa/cart");
    if (asked >= 0) r.mutable_ttl()->set_seconds(asked);
    auto s = ca->Sign(r, token->token());
    REQUIRE(s.ok());
    return s->not_after().seconds() - f.clock.WallNow().time_since_epoch() / seconds(1);
  };
  CHECK(life(-1) == 12 * 3600);
  CHECK(life(0) == 12 * 3600);
  CHECK(life(60) == 60);
  CHECK(life(5) == 60);  // the minimum
  CHECK(life(48 * 3600) == 12 * 3600);
}

TEST_CASE("ca: the root is generated once and kept in the store") {
  Fixture f;
  std::string bundle;
  std::string token;
  {
    auto ca = f.Open();
    bundle = ca->trust_bundle_pem();
    token = ca->tokens().Create(Scope("shop", "cart"), std::nullopt, "")->token();
  }
  auto again = f.Open();  // a restart on the same store
  CHECK(again->origin() == "stored");
  CHECK(again->trust_bundle_pem() == bundle);
  auto s = again->Sign(Request("spiffe://weft/ns/shop/sa/cart"), token);
  REQUIRE(s.ok());
  CHECK(tls::VerifyChain(s->certificate_chain_pem(), bundle, f.clock.WallNow()).ok());

  CaOptions other = f.options;
  other.trust_domain = "corp";
  auto refused = Authority::Open(f.store.get(), f.clock, other);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().message() ==
        "the stored CA is for trust domain \"weft\", not \"corp\"; changing it would change every "
        "identity it issued");
}

TEST_CASE("ca: an operator's intermediate signs, chained to the operator's root") {
  Fixture f;
  auto root = testing::TestRoot(f.clock, "corp");
  CaSpec spec;
  spec.trust_domain = "corp";
  auto mid = Issuer::NewIntermediate(*root, spec, f.clock);
  REQUIRE(mid.ok());
  testing::TempFiles files;
  f.options.trust_domain = "corp";
  f.options.cert_file = files.Write("ca.pem", (*mid)->chain_pem());
  f.options.key_file = files.Write("ca-key.pem", (*mid)->key_pem());
  f.options.bundle_file = files.Write("root.pem", root->trust_bundle_pem());
  auto ca = f.Open();
  CHECK(ca->origin() == "operator");
  CHECK(ca->trust_bundle_pem() == root->trust_bundle_pem());
  auto token = ca->tokens().Create(Scope("shop", "cart"), std::nullopt, "");
  REQUIRE(token.ok());
  auto s = ca->Sign(Request("spiffe://corp/ns/shop/sa/cart"), token->token());
  REQUIRE(s.ok());
  CHECK(tls::InspectCertificates(s->certificate_chain_pem())->size() == 2);
  CHECK(tls::VerifyChain(s->certificate_chain_pem(), root->trust_bundle_pem(), f.clock.WallNow())
            .ok());
  // Nothing was stored: the files are the operator's source of truth.
  CHECK_FALSE(f.store->Get(kAuthorityKey)->has_value());

  f.options.bundle_file.clear();
  auto refused = Authority::Open(f.store.get(), f.clock, f.options);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().message().find("ca.pem: the CA certificate is not self-signed") !=
        std::string::npos);
  f.options.key_file.clear();
  CHECK(Authority::Open(f.store.get(), f.clock, f.options).status().message() ==
        "an operator CA needs both its certificate and its key");
}

TEST_CASE("ca: the trust bundle goes out as the SDS Secret ROOTCA, valid for proxies") {
  Fixture f;
  auto ca = f.Open();
  xds::ResourcePtr r = ca->TrustBundleSecret();
  CHECK(r->type == xds::ResourceType::kSecret);
  CHECK(r->name == "ROOTCA");
  envoy::extensions::transport_sockets::tls::v3::Secret secret;
  REQUIRE(r->body.UnpackTo(&secret));
  CHECK(secret.validation_context().trusted_ca().inline_string() == ca->trust_bundle_pem());
  tls::InstallSecretChecks();
  CHECK(xds::ValidateResources({r->body}).ok());
  xds::InstallSecretMaterialCheck(nullptr);
}

}  // namespace
}  // namespace weft::ca
