// The TLS engine (data-plane/tls) between two engines in memory: handshakes, mTLS with SAN
// checks, refusals with their reasons, ALPN, resumption, and context swaps on SDS updates.
// Certificates come from weft-cp's Issuer on a fake clock; both ends verify at that clock.
#include <catch2/catch.hpp>

#include <string>

#include "absl/strings/str_cat.h"
#include "common/proto_util.h"
#include "common/xds/tls_check.h"
#include "common/xds/validate.h"
#include "data-plane/tls/certs.h"
#include "data-plane/tls/tls.h"
#include "tests/unit/resource_util.h"
#include "tests/unit/tls_test_util.h"

namespace weft::tls {
namespace {

using envoy::extensions::transport_sockets::tls::v3::DownstreamTlsContext;
using envoy::extensions::transport_sockets::tls::v3::Secret;
using envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext;
using R = Engine::Result;
using testing::IssueCert;
using testing::Pump;
using testing::TestCert;

constexpr char kServerId[] = "spiffe://weft/ns/shop/sa/cart";
constexpr char kClientId[] = "spiffe://weft/ns/shop/sa/web";

struct Fixture {
  FakeClock clock{testing::kTestEpoch};
  std::unique_ptr<ca::Issuer> root = testing::TestRoot(clock);
  TestCert server_cert = IssueCert(*root, kServerId);
  TestCert client_cert = IssueCert(*root, kClientId);

  ContextConfig Server(bool require_client = false) const {
    ContextConfig c;
    c.role = Role::kServer;
    c.certificate_chain_pem = server_cert.chain_pem;
    c.private_key_pem = server_cert.key_pem;
    if (require_client) {
      c.trusted_ca_pem = root->trust_bundle_pem();
      c.require_client_certificate = true;
    }
    return c;
  }
  ContextConfig Client(bool with_cert = false) const {
    ContextConfig c;
    c.role = Role::kClient;
    c.trusted_ca_pem = root->trust_bundle_pem();
    c.sni = "cart.shop";
    if (with_cert) {
      c.certificate_chain_pem = client_cert.chain_pem;
      c.private_key_pem = client_cert.key_pem;
    }
    return c;
  }
  std::shared_ptr<const Context> Make(const ContextConfig& c) const {
    auto ctx = Context::Create(c, clock);
    INFO(ctx.status().ToString());
    REQUIRE(ctx.ok());
    return *ctx;
  }
};

std::unique_ptr<Engine> NewEngine(std::shared_ptr<const Context> ctx) {
  auto e = Engine::Create(std::move(ctx));
  REQUIRE(e.ok());
  return *std::move(e);
}

SanMatcher UriMatcher(std::string_view yaml_matcher) {
  envoy::extensions::transport_sockets::tls::v3::SubjectAltNameMatcher m =
      testing::FromYaml<envoy::extensions::transport_sockets::tls::v3::SubjectAltNameMatcher>(
          yaml_matcher);
  ValidationErrors errors;
  auto compiled = router::StringMatcher::Compile(m.matcher(), &errors);
  REQUIRE(compiled);
  return SanMatcher{SanMatcher::Type::kUri, *compiled, std::string(yaml_matcher)};
}

TEST_CASE("tls: two engines handshake over memory and carry data both ways") {
  Fixture f;
  auto client = NewEngine(f.Make(f.Client()));
  auto server = NewEngine(f.Make(f.Server()));
  REQUIRE(Pump(*client, *server));
  CHECK(client->version() == "TLSv1.3");
  CHECK(server->version() == "TLSv1.3");
  CHECK(client->cipher().find("TLS_") == 0);
  CHECK(client->peer().verified);
  CHECK(client->peer().spiffe_id == kServerId);
  CHECK_FALSE(server->peer().presented_certificate);  // no client certificate asked for
  CHECK(server->server_name() == "cart.shop");
  CHECK(client->server_name() == "cart.shop");
  CHECK(client->PeerChainPem().find("BEGIN CERTIFICATE") != std::string::npos);

  // 1 MiB each way: more than one record, more than one read chunk.
  std::string big(1 << 20, 'x');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  REQUIRE(client->Write(big) == R::kOk);
  testing::Carry(*client, *server);
  std::string got;
  while (server->Read(&got) == R::kOk) {
  }
  CHECK(got == big);
  REQUIRE(server->Write("pong") == R::kOk);
  testing::Carry(*server, *client);
  got.clear();
  CHECK(client->Read(&got) == R::kOk);
  CHECK(got == "pong");
  CHECK(client->Read(&got) == R::kWantRead);

  // close_notify ends the stream cleanly; a bare EOF does not.
  server->Shutdown();
  testing::Carry(*server, *client);
  got.clear();
  CHECK(client->Read(&got) == R::kClosed);
  client->FeedEof();
  server->FeedEof();
  CHECK(server->Read(&got) == R::kError);
  CHECK(server->error().find("without close_notify") != std::string::npos);
}

TEST_CASE("tls: mTLS with SPIFFE identities and SAN checks on both sides") {
  Fixture f;
  ContextConfig sc = f.Server(/*require_client=*/true);
  sc.san_matchers.push_back(
      UriMatcher("{san_type: URI, matcher: {prefix: \"spiffe://weft/ns/shop/\"}}"));
  ContextConfig cc = f.Client(/*with_cert=*/true);
  cc.san_matchers.push_back(
      UriMatcher(absl::StrCat("{san_type: URI, matcher: {exact: \"", kServerId, "\"}}")));
  auto server_ctx = f.Make(sc);
  auto client = NewEngine(f.Make(cc));
  auto server = NewEngine(server_ctx);
  REQUIRE(Pump(*client, *server));
  CHECK(server->peer().presented_certificate);
  CHECK(server->peer().verified);
  CHECK(server->peer().spiffe_id == kClientId);
  CHECK(client->peer().spiffe_id == kServerId);

  SECTION("a client whose identity matches no matcher is refused by the server") {
    TestCert other = IssueCert(*f.root, "spiffe://weft/ns/billing/sa/web");
    ContextConfig oc = f.Client();
    oc.certificate_chain_pem = other.chain_pem;
    oc.private_key_pem = other.key_pem;
    auto c = NewEngine(f.Make(oc));
    auto s = NewEngine(server_ctx);
    CHECK_FALSE(Pump(*c, *s));
    INFO(s->error());
    CHECK(s->error().find("peer certificate rejected: its subject alt names "
                          "(URI:spiffe://weft/ns/billing/sa/web) match none of "
                          "match_typed_subject_alt_names") != std::string::npos);
    // TLS 1.3: the client finished first and learns of the refusal from the alert.
    std::string got;
    CHECK(c->Read(&got) == R::kError);
    INFO(c->error());
    CHECK(c->error().find("alert") != std::string::npos);
  }
  SECTION("a server whose identity is not the expected one is refused by the client") {
    ContextConfig wrong = f.Client(true);
    wrong.san_matchers.push_back(
        UriMatcher("{san_type: URI, matcher: {exact: \"spiffe://weft/ns/shop/sa/db\"}}"));
    auto c = NewEngine(f.Make(wrong));
    auto s = NewEngine(server_ctx);
    CHECK_FALSE(Pump(*c, *s));
    INFO(c->error());
    CHECK(c->error().find("(URI:spiffe://weft/ns/shop/sa/cart) match none of") !=
          std::string::npos);
  }
  SECTION("a client without a certificate is refused when one is required") {
    auto c = NewEngine(f.Make(f.Client(/*with_cert=*/false)));
    auto s = NewEngine(server_ctx);
    CHECK_FALSE(Pump(*c, *s));
    INFO(s->error());
    CHECK(s->error().find("peer did not return a certificate") != std::string::npos);
  }
}

TEST_CASE("tls: a certificate from another CA is refused with the reason") {
  Fixture f;
  auto other_root = testing::TestRoot(f.clock, "other");
  TestCert foreign = IssueCert(*other_root, kClientId);
  ContextConfig cc = f.Client();
  cc.certificate_chain_pem = foreign.chain_pem;
  cc.private_key_pem = foreign.key_pem;
  auto c = NewEngine(f.Make(cc));
  auto s = NewEngine(f.Make(f.Server(/*require_client=*/true)));
  CHECK_FALSE(Pump(*c, *s));
  INFO(s->error());
  CHECK(s->error() == absl::StrCat("peer certificate rejected: unable to get local issuer "
                                   "certificate (certificate 0: ",
                                   kClientId, ")"));

  // And the other way round: a server the client's CA did not sign.
  ContextConfig sc = f.Server();
  TestCert other_server = IssueCert(*other_root, kServerId);
  sc.certificate_chain_pem = other_server.chain_pem;
  sc.private_key_pem = other_server.key_pem;
  auto c2 = NewEngine(f.Make(f.Client()));
  auto s2 = NewEngine(f.Make(sc));
  CHECK_FALSE(Pump(*c2, *s2));
  CHECK(c2->error().find("unable to get local issuer certificate") != std::string::npos);
  std::string got;
  CHECK(s2->Read(&got) == R::kError);  // the client's alert
}

TEST_CASE("tls: an expired certificate is refused, naming when it expired") {
  Fixture f;
  TestCert short_lived = IssueCert(*f.root, kServerId, std::chrono::hours(1));
  ContextConfig sc = f.Server();
  sc.certificate_chain_pem = short_lived.chain_pem;
  sc.private_key_pem = short_lived.key_pem;
  auto server_ctx = f.Make(sc);
  auto client_ctx = f.Make(f.Client());
  {
    auto c = NewEngine(client_ctx);
    auto s = NewEngine(server_ctx);
    REQUIRE(Pump(*c, *s));  // valid now
  }
  f.clock.Advance(std::chrono::hours(2));
  auto c = NewEngine(client_ctx);
  auto s = NewEngine(server_ctx);
  CHECK_FALSE(Pump(*c, *s));
  INFO(c->error());
  CHECK(c->error().find("peer certificate rejected: certificate has expired (certificate 0: "
                        "spiffe://weft/ns/shop/sa/cart, not valid after 2027-") !=
        std::string::npos);
  std::string got;
  CHECK(s->Read(&got) == R::kError);
  INFO(s->error());
  CHECK(s->error().find("certificate expired") != std::string::npos);  // the alert's name
}

TEST_CASE("tls: ALPN picks the server's first choice the client offers") {
  Fixture f;
  auto negotiate = [&](std::vector<std::string> server, std::vector<std::string> client) {
    ContextConfig sc = f.Server();
    sc.alpn = std::move(server);
    ContextConfig cc = f.Client();
    cc.alpn = std::move(client);
    auto c = NewEngine(f.Make(cc));
    auto s = NewEngine(f.Make(sc));
    REQUIRE(Pump(*c, *s));
    CHECK(c->alpn() == s->alpn());
    return std::string(c->alpn());
  };
  CHECK(negotiate({"h2", "http/1.1"}, {"http/1.1", "h2"}) == "h2");
  CHECK(negotiate({"http/1.1", "h2"}, {"h2", "http/1.1"}) == "http/1.1");
  CHECK(negotiate({"h2", "http/1.1"}, {"http/1.1"}) == "http/1.1");
  CHECK(negotiate({"h2", "http/1.1"}, {}).empty());
  CHECK(negotiate({}, {"h2"}).empty());
  CHECK(negotiate({"h2"}, {"http/1.1"}).empty());  // no overlap: on without ALPN, as Envoy
}

// A handshake, then the client reads the server's session tickets (TLS 1.3 sends them after
// the handshake). `clean`: both sides send close_notify before they go (a server's session
// cache drops sessions of connections that did not). Returns whether a session was resumed.
bool Connect(const std::shared_ptr<const Context>& client_ctx,
             const std::shared_ptr<const Context>& server_ctx, bool clean = false) {
  auto c = NewEngine(client_ctx);
  auto s = NewEngine(server_ctx);
  REQUIRE(Pump(*c, *s));
  REQUIRE(s->Write("hello") == R::kOk);
  testing::Carry(*s, *c);
  std::string got;
  REQUIRE(c->Read(&got) == R::kOk);
  CHECK(got == "hello");
  CHECK(c->resumed() == s->resumed());
  CHECK(c->peer().spiffe_id == kServerId);
  if (clean) {
    c->Shutdown();
    s->Shutdown();
    testing::Carry(*c, *s);
    testing::Carry(*s, *c);
  }
  return c->resumed();
}

TEST_CASE("tls: sessions resume, on TLS 1.3 and 1.2, and only under the same validation") {
  Fixture f;
  SECTION("TLS 1.3 tickets") {
    auto client_ctx = f.Make(f.Client());
    auto server_ctx = f.Make(f.Server());
    CHECK_FALSE(Connect(client_ctx, server_ctx));
    CHECK(Connect(client_ctx, server_ctx));
    CHECK(Connect(client_ctx, server_ctx));
  }
  SECTION("TLS 1.2 tickets and session ids") {
    ContextConfig cc = f.Client();
    cc.tls12_only = true;
    auto client_ctx = f.Make(cc);
    ContextConfig sc = f.Server();
    auto server_ctx = f.Make(sc);
    CHECK_FALSE(Connect(client_ctx, server_ctx));
    CHECK(Connect(client_ctx, server_ctx));
    sc.stateless_resumption = false;  // session ids from the server's cache
    auto stateful = f.Make(sc);
    CHECK_FALSE(Connect(client_ctx, stateful, /*clean=*/true));
    CHECK(Connect(client_ctx, stateful, /*clean=*/true));
  }
  SECTION("resumption off") {
    ContextConfig sc = f.Server();
    sc.stateless_resumption = false;
    sc.stateful_resumption = false;
    auto server_ctx = f.Make(sc);
    auto client_ctx = f.Make(f.Client());
    CHECK_FALSE(Connect(client_ctx, server_ctx));
    CHECK_FALSE(Connect(client_ctx, server_ctx));
    ContextConfig no_cache = f.Client();
    no_cache.max_session_keys = 0;
    auto uncached = f.Make(no_cache);
    auto resuming_server = f.Make(f.Server());
    CHECK_FALSE(Connect(uncached, resuming_server));
    CHECK_FALSE(Connect(uncached, resuming_server));
  }
  SECTION("a server with other validation settings does not resume") {
    TicketKeys keys = NewTicketKeys();
    auto client_ctx = f.Make(f.Client(/*with_cert=*/true));
    auto a = Context::Create(f.Server(/*require_client=*/true), f.clock, &keys);
    REQUIRE(a.ok());
    CHECK_FALSE(Connect(client_ctx, *a));
    CHECK(Connect(client_ctx, *a));
    // Same ticket keys, same validation: resumes on a rebuilt context (certificate rotation).
    auto b = Context::Create(f.Server(/*require_client=*/true), f.clock, &keys);
    REQUIRE(b.ok());
    CHECK(Connect(client_ctx, *b));
    // Same ticket keys, a SAN matcher added: the old session does not pass the new rule.
    ContextConfig stricter = f.Server(/*require_client=*/true);
    stricter.san_matchers.push_back(
        UriMatcher("{san_type: URI, matcher: {prefix: \"spiffe://weft/ns/shop/\"}}"));
    auto c = Context::Create(stricter, f.clock, &keys);
    REQUIRE(c.ok());
    CHECK_FALSE(Connect(client_ctx, *c));
  }
}

TEST_CASE("tls: TLS 1.2 and 1.3 only; a version mismatch fails the handshake") {
  Fixture f;
  ContextConfig sc = f.Server();
  sc.tls12_only = true;
  ContextConfig cc = f.Client();
  cc.tls13_only = true;
  auto c = NewEngine(f.Make(cc));
  auto s = NewEngine(f.Make(sc));
  CHECK_FALSE(Pump(*c, *s));
  INFO(s->error());
  CHECK(s->error().find("TLS handshake failed: ") == 0);
  CHECK(s->error().find("unsupported protocol") != std::string::npos);

  ContextConfig both = f.Server();
  both.tls12_only = both.tls13_only = true;
  CHECK_FALSE(Context::Create(both, f.clock).ok());
  ContextConfig weak = f.Server();
  weak.cipher_suites = {"AES128-SHA"};  // CBC, RSA key exchange: not even when asked for
  auto refused = Context::Create(weak, f.clock);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().message() == "cipher_suites: \"AES128-SHA\" is not allowed");
}

Secret CertSecret(const std::string& name, const TestCert& cert) {
  Secret s;
  s.set_name(name);
  s.mutable_tls_certificate()->mutable_certificate_chain()->set_inline_string(cert.chain_pem);
  s.mutable_tls_certificate()->mutable_private_key()->set_inline_string(cert.key_pem);
  return s;
}
Secret CaSecret(const std::string& name, const std::string& bundle) {
  Secret s;
  s.set_name(name);
  s.mutable_validation_context()->mutable_trusted_ca()->set_inline_string(bundle);
  return s;
}

constexpr std::string_view kDownstream = R"(
require_client_certificate: true
common_tls_context:
  tls_certificate_sds_secret_configs: [{name: default, sds_config: {ads: {}}}]
  combined_validation_context:
    default_validation_context:
      match_typed_subject_alt_names: [{san_type: URI, matcher: {prefix: "spiffe://weft/ns/shop/"}}]
    validation_context_sds_secret_config: {name: ROOTCA, sds_config: {ads: {}}}
  alpn_protocols: [http/1.1]
)";
constexpr std::string_view kUpstream = R"(
sni: cart.shop
common_tls_context:
  tls_certificate_sds_secret_configs: [{name: default, sds_config: {ads: {}}}]
  validation_context_sds_secret_config: {name: ROOTCA, sds_config: {ads: {}}}
  alpn_protocols: [h2, http/1.1]
)";

TEST_CASE("tls: the context store builds from Envoy's messages and swaps on a secret change") {
  Fixture f;
  ContextStore server_store(f.clock);
  ContextStore client_store(f.clock);
  auto downstream = testing::FromYaml<DownstreamTlsContext>(kDownstream);
  auto upstream = testing::FromYaml<UpstreamTlsContext>(kUpstream);
  // What the store takes is what the shared checks accept.
  {
    ValidationErrors errors;
    xds::CheckDownstreamTlsContext(downstream, &errors);
    xds::CheckUpstreamTlsContext(upstream, &errors);
    INFO(errors.ToStatus().ToString());
    CHECK(errors.ok());
  }

  // Secrets not there yet: pending, nothing to serve, the names to subscribe to.
  REQUIRE(server_store.SetServer("listener/in:0", downstream).ok());
  CHECK(server_store.Get("listener/in:0") == nullptr);
  CHECK(server_store.Missing("listener/in:0") == std::vector<std::string>{"default", "ROOTCA"});
  CHECK(server_store.ReferencedSecrets() == std::set<std::string>{"ROOTCA", "default"});

  REQUIRE(server_store
              .UpdateSecrets({CertSecret("default", f.server_cert),
                              CaSecret("ROOTCA", f.root->trust_bundle_pem())})
              .ok());
  REQUIRE(client_store
              .UpdateSecrets({CertSecret("default", f.client_cert),
                              CaSecret("ROOTCA", f.root->trust_bundle_pem())})
              .ok());
  REQUIRE(client_store.SetClient("cluster/cart", upstream).ok());
  auto v1 = server_store.Get("listener/in:0");
  REQUIRE(v1 != nullptr);
  CHECK(server_store.Missing("listener/in:0").empty());
  auto client_ctx = client_store.Get("cluster/cart");
  REQUIRE(client_ctx != nullptr);

  auto c1 = NewEngine(client_ctx);
  auto s1 = NewEngine(v1);
  REQUIRE(Pump(*c1, *s1));
  CHECK(s1->peer().spiffe_id == kClientId);
  CHECK(c1->alpn() == "http/1.1");
  std::string serial_v1 = c1->peer().leaf.serial_hex;

  // A connection that started on v1 and has not finished its handshake yet...
  auto c_old = NewEngine(client_ctx);
  auto s_old = NewEngine(server_store.Get("listener/in:0"));
  testing::Carry(*c_old, *s_old);  // (ClientHello sent)
  CHECK(c_old->Handshake() == R::kWantRead);

  // ...then the certificate rotates over SDS.
  TestCert rotated = IssueCert(*f.root, kServerId);
  REQUIRE(server_store.UpdateSecrets({CertSecret("default", rotated)}).ok());
  auto v2 = server_store.Get("listener/in:0");
  REQUIRE(v2 != nullptr);
  CHECK(v2 != v1);
  CHECK(v2->id() > v1->id());
  CHECK(v2->certificate()->serial_hex != serial_v1);
  auto c2 = NewEngine(client_ctx);
  auto s2 = NewEngine(v2);
  REQUIRE(Pump(*c2, *s2));
  CHECK(c2->peer().leaf.serial_hex == v2->certificate()->serial_hex);
  // The old connection finishes on the context it started with.
  REQUIRE(Pump(*c_old, *s_old));
  CHECK(c_old->peer().leaf.serial_hex == serial_v1);
  CHECK(&s_old->context() == v1.get());

  // The same secret again changes nothing.
  REQUIRE(server_store.UpdateSecrets({CertSecret("default", rotated)}).ok());
  CHECK(server_store.Get("listener/in:0") == v2);

  // A secret that cannot be used keeps the previous context and says why.
  TestCert mismatched{rotated.chain_pem, f.client_cert.key_pem};
  absl::Status bad = server_store.UpdateSecrets({CertSecret("default", mismatched)});
  INFO(bad.ToString());
  CHECK(bad.message().find("listener/in:0: private_key does not match the certificate") !=
        std::string::npos);
  CHECK(server_store.Get("listener/in:0") == v2);
  // A secret of the wrong kind, too.
  bad = server_store.UpdateSecrets({CaSecret("default", f.root->trust_bundle_pem())});
  CHECK(bad.message().find("secret \"default\" is not a tls_certificate") != std::string::npos);
  CHECK(server_store.Get("listener/in:0") == v2);

  // A removed secret leaves built contexts serving; removing the key drops its context.
  REQUIRE(server_store.UpdateSecrets({}, {"ROOTCA"}).ok());
  CHECK(server_store.Get("listener/in:0") == v2);
  server_store.Remove("listener/in:0");
  CHECK(server_store.Get("listener/in:0") == nullptr);
  CHECK(server_store.ReferencedSecrets().empty());
}

TEST_CASE("tls: the material check refuses keys that do not match, through ValidateResources") {
  Fixture f;
  InstallSecretChecks();
  auto errors_of = [](const Secret& s) {
    absl::Status st = xds::ValidateResources({PackAny(s)});
    return std::string(st.message());
  };
  CHECK(errors_of(CertSecret("default", f.server_cert)).empty());
  CHECK(errors_of(CaSecret("ROOTCA", f.root->trust_bundle_pem())).empty());
  std::string e =
      errors_of(CertSecret("default", {f.server_cert.chain_pem, f.client_cert.key_pem}));
  CHECK(e.find("resources[0].tls_certificate.private_key: does not match the first certificate") !=
        std::string::npos);
  // The CA's own certificate first: not a workload certificate.
  e = errors_of(CertSecret("default", {f.root->certificate_pem(), f.root->key_pem()}));
  CHECK(e.find("tls_certificate.certificate_chain: the first certificate is a CA certificate") !=
        std::string::npos);
  xds::InstallSecretMaterialCheck(nullptr);
}

}  // namespace
}  // namespace weft::tls
