// Contexts are shared by every worker: handshakes on several threads at once against contexts
// taken from a store while the xDS side rotates the certificate underneath (run under TSan too).
#include <catch2/catch.hpp>

#include <atomic>
#include <thread>
#include <vector>

#include "data-plane/tls/tls.h"
#include "tests/unit/resource_util.h"
#include "tests/unit/tls_test_util.h"

namespace weft::tls {
namespace {

using envoy::extensions::transport_sockets::tls::v3::DownstreamTlsContext;
using envoy::extensions::transport_sockets::tls::v3::Secret;
using envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext;

Secret CertSecret(const testing::TestCert& cert) {
  Secret s;
  s.set_name("default");
  s.mutable_tls_certificate()->mutable_certificate_chain()->set_inline_string(cert.chain_pem);
  s.mutable_tls_certificate()->mutable_private_key()->set_inline_string(cert.key_pem);
  return s;
}

TEST_CASE("tls threads: workers handshake on shared contexts while secrets rotate") {
  FakeClock clock(testing::kTestEpoch);
  auto root = testing::TestRoot(clock);
  Secret ca;
  ca.set_name("ROOTCA");
  ca.mutable_validation_context()->mutable_trusted_ca()->set_inline_string(
      root->trust_bundle_pem());
  std::vector<Secret> rotations;
  for (int i = 0; i < 4; ++i) {
    rotations.push_back(CertSecret(testing::IssueCert(*root, "spiffe://weft/ns/a/sa/server")));
  }
  ContextStore servers(clock);
  REQUIRE(servers.UpdateSecrets({rotations[0], ca}).ok());
  REQUIRE(servers
              .SetServer("in", testing::FromYaml<DownstreamTlsContext>(R"(
common_tls_context:
  tls_certificate_sds_secret_configs: [{name: default, sds_config: {ads: {}}}]
)"))
              .ok());
  ContextStore clients(clock);
  REQUIRE(clients.UpdateSecrets({ca}).ok());
  REQUIRE(clients
              .SetClient("out", testing::FromYaml<UpstreamTlsContext>(R"(
sni: server.a
common_tls_context:
  validation_context_sds_secret_config: {name: ROOTCA, sds_config: {ads: {}}}
)"))
              .ok());

  std::atomic<int> ok{0}, resumed{0}, failed{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> workers;
  for (int w = 0; w < 3; ++w) {
    workers.emplace_back([&] {
      for (int i = 0; i < 30; ++i) {
        auto c = Engine::Create(clients.Get("out"));
        auto s = Engine::Create(servers.Get("in"));
        if (!c.ok() || !s.ok() || !testing::Pump(**c, **s)) {
          ++failed;
          continue;
        }
        std::string got;
        (*s)->Write("x");
        testing::Carry(**s, **c);
        (*c)->Read(&got);  // takes the session tickets too
        ++ok;
        if ((*c)->resumed()) ++resumed;
      }
    });
  }
  std::thread rotator([&] {
    for (size_t i = 1; !stop.load(); i = (i + 1) % rotations.size()) {
      (void)servers.UpdateSecrets({rotations[i]});
      std::this_thread::yield();
    }
  });
  for (auto& t : workers) t.join();
  stop = true;
  rotator.join();
  CHECK(failed == 0);
  CHECK(ok == 90);
  CHECK(resumed > 0);  // tickets outlive rotations: the store shares their keys
}

}  // namespace
}  // namespace weft::tls
