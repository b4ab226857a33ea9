// weft-cp's CA end to end: a real weft-cp with a durable store, tokens made with the real
// `weftctl token`, and a client that does what a proxy will: generate its key, send a CSR over
// weft.ca.v1 with its bootstrap token, check the certificate against the trust bundle, which
// also arrives over SDS as the Secret ROOTCA.
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "data-plane/tls/certs.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb.h"
#include "tests/e2e/e2e_util.h"
#include "tests/e2e/test_certs.h"
#include "tests/support/process.h"
#include "tests/support/xds_client.h"
#include "weft/ca/v1/ca.grpc.pb.h"

namespace weft::test {
namespace {

using std::chrono::seconds;

struct Run {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// weftctl with `args`; stdout and stderr apart (create prints the token alone on stdout).
Run Weftctl(const TempDir& dir, std::vector<std::string> args) {
  static int n = 0;
  std::string base = dir.Join("weftctl-" + std::to_string(n++));
  std::vector<std::string> argv = {"/bin/sh", "-c", "exec \"$@\" 2>\"$ERR\"", "sh",
                                   BinDir() + "/weftctl"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string error;
  auto p = Subprocess::Start(argv, {{"ERR", base + ".err"}}, base + ".out", &error);
  REQUIRE(p);
  auto status = p->Wait(seconds(30));
  Run r;
  if (status && WIFEXITED(*status)) r.exit_code = WEXITSTATUS(*status);
  r.out = p->Log();
  r.err = ReadFile(base + ".err").value_or("");
  while (!r.out.empty() && r.out.back() == '\n') r.out.pop_back();
  return r;
}

struct Cp {
  TempDir dir{"weft-ca"};
  TempDir config{"weft-ca-config"};
  std::optional<WeftCp> cp;
  ~Cp() {
    if (CurrentTestFailed() && cp) {
      std::fprintf(stderr, "---- weft-cp log (tail) ----\n%s\n", cp->LogTail(12000).c_str());
    }
  }
  void Start(std::vector<std::string> extra = {}) {
    std::string error;
    extra.insert(extra.begin(), {"--data-dir", dir.Join("data")});
    cp = StartWeftCp(config.path(), extra, &error);
    INFO(error);
    REQUIRE(cp);
  }
  void Stop() {
    cp->process->Kill(15);
    // weft-cp takes a second or two to stop (gRPC shutdown); much longer on a loaded machine.
    REQUIRE(cp->process->Wait(seconds(60)));
    cp.reset();
  }
  std::string Api() const { return "127.0.0.1:" + std::to_string(cp->api_port); }
  std::string CreateToken(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {
        "--server", Api(), "token", "create", "--namespace", "shop", "--service-account", "cart"};
    args.insert(args.end(), extra.begin(), extra.end());
    Run r = Weftctl(dir, args);
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    REQUIRE(r.out.rfind("weft1.", 0) == 0);
    return r.out;
  }
  std::unique_ptr<ca::v1::CertificateService::Stub> Stub() const {
    return ca::v1::CertificateService::NewStub(XdsChannel(cp->xds_port));
  }
};

struct Signed {
  grpc::Status status;
  ca::v1::SignResponse response;
  std::string key_pem;
};

// What a proxy does: a fresh key, a CSR for `identity`, the token in the call's metadata.
Signed SignWith(ca::v1::CertificateService::Stub* stub, const std::string& token,
                const std::string& identity, const std::string& node = "cart-1") {
  Signed out;
  auto key = tls::GenerateKey();
  REQUIRE(key.ok());
  out.key_pem = *key;
  auto csr = tls::MakeCsr(*key, identity);
  REQUIRE(csr.ok());
  ca::v1::SignRequest req;
  req.set_csr_pem(*csr);
  req.set_node_id(node);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + seconds(10));
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  out.status = stub->Sign(&ctx, req, &out.response);
  return out;
}

constexpr char kCart[] = "spiffe://weft/ns/shop/sa/cart";

TEST_CASE("ca e2e: a CSR with a valid token gets a certificate that verifies against the bundle") {
  Cp cp;
  cp.Start();
  std::string token = cp.CreateToken({"--description", "cart sidecars"});
  auto stub = cp.Stub();

  Signed s = SignWith(stub.get(), token, kCart);
  INFO(s.status.error_message());
  REQUIRE(s.status.ok());
  CHECK(s.response.spiffe_id() == kCart);
  // The key never left the client, and the certificate is for it.
  CHECK(tls::KeyMatchesCertificate(s.key_pem, s.response.certificate_chain_pem()).value());
  auto now = std::chrono::system_clock::now();
  CHECK(tls::VerifyChain(s.response.certificate_chain_pem(), s.response.trust_bundle_pem(), now)
            .ok());
  auto leaf = tls::InspectCertificates(s.response.certificate_chain_pem());
  REQUIRE(leaf.ok());
  CHECK((*leaf)[0].spiffe_id == kCart);
  CHECK((*leaf)[0].uri_sans == std::vector<std::string>{kCart});
  CHECK((*leaf)[0].key_type == "prime256v1");
  CHECK((*leaf)[0].not_after - now <= std::chrono::hours(24));
  CHECK((*leaf)[0].not_after - now > std::chrono::hours(23));
  CHECK((*leaf)[0].not_before < now - std::chrono::minutes(4));  // back-dated

  // The bundle is public and is also what every node group gets over SDS.
  ca::v1::TrustBundle bundle;
  {
    grpc::ClientContext ctx;
    REQUIRE(stub->GetTrustBundle(&ctx, ca::v1::GetTrustBundleRequest(), &bundle).ok());
  }
  CHECK(bundle.trust_bundle_pem() == s.response.trust_bundle_pem());
  CHECK(bundle.trust_domain() == "weft");
  SotwClient sds(cp.cp->xds_port, XdsService::kSecret);
  auto node = MakeNode("cart-1", "cart.shop");
  REQUIRE(sds.Send(SotwRequest(
      "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret", {"ROOTCA"}, &node)));
  auto resp = sds.Next(seconds(10));
  REQUIRE(resp);
  REQUIRE(resp->resources_size() == 1);
  envoy::extensions::transport_sockets::tls::v3::Secret secret;
  REQUIRE(resp->resources(0).UnpackTo(&secret));
  CHECK(secret.name() == "ROOTCA");
  CHECK(secret.validation_context().trusted_ca().inline_string() == bundle.trust_bundle_pem());
  sds.Close();

  // The CA counts what it did.
  std::string metrics = HttpGet(cp.cp->admin_port, "/metrics").body;
  CHECK(MetricValue(metrics, "weft_cp_ca_certificates_issued_total") == 1);

  // A restart keeps the root, and the token still works.
  std::string old_bundle = bundle.trust_bundle_pem();
  cp.Stop();
  cp.Start();
  auto stub2 = cp.Stub();
  Signed again = SignWith(stub2.get(), token, kCart);
  REQUIRE(again.status.ok());
  CHECK(again.response.trust_bundle_pem() == old_bundle);
}

TEST_CASE("ca e2e: bad, missing and revoked tokens, and other identities, are refused") {
  Cp cp;
  cp.Start();
  std::string token = cp.CreateToken();
  auto stub = cp.Stub();

  Signed none = SignWith(stub.get(), "", kCart);
  CHECK(none.status.error_code() == grpc::StatusCode::UNAUTHENTICATED);
  CHECK(none.status.error_message().find("missing bootstrap token") != std::string::npos);
  Signed bad = SignWith(stub.get(), "weft1.0123456789abcdef.bm90LWEtdG9rZW4", kCart);
  CHECK(bad.status.error_code() == grpc::StatusCode::UNAUTHENTICATED);
  CHECK(bad.status.error_message() == "invalid bootstrap token");
  Signed garbage = SignWith(stub.get(), "hello", kCart);
  CHECK(garbage.status.error_code() == grpc::StatusCode::UNAUTHENTICATED);

  // A valid token cannot buy another identity.
  Signed other = SignWith(stub.get(), token, "spiffe://weft/ns/shop/sa/admin");
  CHECK(other.status.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(other.status.error_message() ==
        "CSR asks for identity spiffe://weft/ns/shop/sa/admin; granted: "
        "spiffe://weft/ns/shop/sa/cart");
  Signed foreign = SignWith(stub.get(), token, "spiffe://evil/ns/shop/sa/cart");
  CHECK(foreign.status.error_code() == grpc::StatusCode::PERMISSION_DENIED);

  // A per-node token, from another node.
  std::string bound = cp.CreateToken({"--node", "cart-7"});
  CHECK(SignWith(stub.get(), bound, kCart, "cart-7").status.ok());
  Signed elsewhere = SignWith(stub.get(), bound, kCart, "cart-8");
  CHECK(elsewhere.status.error_code() == grpc::StatusCode::PERMISSION_DENIED);

  // weftctl lists the tokens and revokes one; the revoked token is refused at once.
  std::string id = token.substr(6, 16);
  Run list = Weftctl(cp.dir, {"--server", cp.Api(), "token", "list"});
  REQUIRE(list.exit_code == 0);
  CHECK(list.out.find(id) != std::string::npos);
  CHECK(list.out.find(kCart) != std::string::npos);
  CHECK(list.out.find("cart-7") != std::string::npos);
  CHECK(list.out.find(token.substr(23)) == std::string::npos);  // never the secret
  CHECK(SignWith(stub.get(), token, kCart).status.ok());
  Run revoke = Weftctl(cp.dir, {"--server", cp.Api(), "token", "revoke", id});
  INFO(revoke.err);
  REQUIRE(revoke.exit_code == 0);
  Signed revoked = SignWith(stub.get(), token, kCart);
  CHECK(revoked.status.error_code() == grpc::StatusCode::UNAUTHENTICATED);
  CHECK(revoked.status.error_message() == "bootstrap token " + id + " was revoked");
  list = Weftctl(cp.dir, {"--server", cp.Api(), "token", "list"});
  CHECK(list.out.find(id) == std::string::npos);
  list = Weftctl(cp.dir, {"--server", cp.Api(), "token", "list", "--all"});
  CHECK(list.out.find(id) != std::string::npos);
  CHECK(Weftctl(cp.dir, {"--server", cp.Api(), "token", "revoke", "0123456789abcdef"}).exit_code ==
        1);
  CHECK(Weftctl(cp.dir, {"--server", cp.Api(), "token", "create"}).exit_code == 2);

  std::string metrics = HttpGet(cp.cp->admin_port, "/metrics").body;
  CHECK(MetricValue(metrics, "weft_cp_ca_sign_refused_total", {{"code", "UNAUTHENTICATED"}}) == 4);
  CHECK(MetricValue(metrics, "weft_cp_ca_sign_refused_total", {{"code", "PERMISSION_DENIED"}}) ==
        3);
}

// Scoped to the node group "cart.shop": inline keys go nowhere else (and only with
// --insecure-serve-private-keys).
std::string SecretFile(const std::string& chain, const std::string& key) {
  return "node_groups: [cart.shop]\n" +
         ResourcesFile({"{\"@type\": \"type.googleapis.com/"
                        "envoy.extensions.transport_sockets.tls.v3.Secret\", \"name\": "
                        "\"server-cert\", \"tls_certificate\": {\"certificate_chain\": "
                        "{\"inline_string\": " +
                        QuotedPem(chain) +
                        "}, \"private_key\": {\"inline_string\": " + QuotedPem(key) + "}}}"});
}

TEST_CASE("ca e2e: raw Secrets in --config-dir are checked down to their keys") {
  Cp cp;
  cp.Start({"--insecure-serve-private-keys"});
  std::string token = cp.CreateToken();
  auto stub = cp.Stub();
  Signed s = SignWith(stub.get(), token, kCart);
  REQUIRE(s.status.ok());
  auto other_key = tls::GenerateKey();
  REQUIRE(other_key.ok());

  // The wrong key: refused with the file and the field path, nothing served.
  REQUIRE(WriteFileAtomic(cp.config.Join("secret.yaml"),
                          SecretFile(s.response.certificate_chain_pem(), *other_key)));
  std::string config;
  REQUIRE(WaitFor(
      [&] {
        config = HttpGet(cp.cp->admin_port, "/debug/config").body;
        return config.find("secret.yaml") != std::string::npos;
      },
      seconds(10)));
  CHECK(config.find("resources[0].tls_certificate.private_key: does not match the first "
                    "certificate of certificate_chain") != std::string::npos);

  // The right one: accepted and served over SDS.
  REQUIRE(WriteFileAtomic(cp.config.Join("secret.yaml"),
                          SecretFile(s.response.certificate_chain_pem(), s.key_pem)));
  REQUIRE(WaitFor(
      [&] {
        return HttpGet(cp.cp->admin_port, "/debug/config").body.find("\"errors\":[]") !=
               std::string::npos;
      },
      seconds(10)));
  SotwClient sds(cp.cp->xds_port, XdsService::kSecret);
  auto node = MakeNode("cart-1", "cart.shop");
  REQUIRE(
      sds.Send(SotwRequest("type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
                           {"server-cert"}, &node)));
  std::optional<DiscoveryResponse> resp;
  REQUIRE(WaitFor(
      [&] {
        resp = sds.Next(std::chrono::milliseconds(500));
        return resp && resp->resources_size() == 1;
      },
      seconds(10)));
  envoy::extensions::transport_sockets::tls::v3::Secret secret;
  REQUIRE(resp->resources(0).UnpackTo(&secret));
  CHECK(secret.tls_certificate().private_key().inline_string() == s.key_pem);
  sds.Close();
}

}  // namespace
}  // namespace weft::test
