// weft-cp's AuthorizationPolicy translation (control-plane/model) produces only what the proxy's
// RBAC engine implements, and the engine then decides as the policies say.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "common/proto_util.h"
#include "common/yaml_proto.h"
#include "control-plane/model/model.h"
#include "data-plane/http/filters/rbac/rbac.h"
#include "envoy/config/listener/v3/listener.pb.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb.h"
#include "tests/unit/filter_test_util.h"

namespace weft::http::rbac {
namespace {

using Catch::Matchers::Contains;
using ::weft::testing::FakeHeaders;

constexpr char kMesh[] = R"(
kind: Service
name: payments
ports: [{port: 8080, protocol: HTTP}]
---
kind: AuthorizationPolicy
name: callers
service: payments
action: ALLOW
rules:
- from: {identities: ["spiffe://weft/ns/default/sa/web", "spiffe://weft/ns/default/sa/api"]}
  to: {paths: ["/pay/*", /healthz], methods: [POST, PUT]}
  when: [{header: X-Tenant, values: [acme, globex]}]
- from: {namespaces: [ops, audit]}
- to: {paths: [/ready]}
---
kind: AuthorizationPolicy
name: blocked
service: payments
action: DENY
rules:
- from: {namespaces: [sandbox]}
  to: {methods: [DELETE]}
- from: {identities: ["spiffe://weft/ns/default/sa/intruder"]}
)";

// The RBAC filters of the payments inbound listener, compiled by the engine, in chain order.
std::vector<std::shared_ptr<const RbacFilterConfig>> CompiledRbacFilters() {
  auto docs = ParseYamlDocuments(kMesh, "mesh.yaml");
  REQUIRE(docs.ok());
  auto objects = cp::ParseConfigDocuments(*docs);
  REQUIRE(objects.ok());
  auto t = cp::TranslateForNodes(*objects);
  std::vector<std::shared_ptr<const RbacFilterConfig>> out;
  if (!t.ok()) {
    // Until weft-proxy applies the RBAC filter (issue 12) the shared validators refuse it, and
    // weft-cp with them: then that refusal, about the RBAC filter, must be the only problem.
    WARN("translation refused: " << t.status().message());
    CHECK_THAT(std::string(t.status().message()), Contains("rbac", Catch::CaseSensitive::No));
    return out;
  }
  const std::string inbound = cp::InboundName("payments", "default", 8080);
  for (const auto& r : t->per_group.at("payments.default")) {
    if (r->type != xds::ResourceType::kListener || r->name != inbound) continue;
    envoy::config::listener::v3::Listener l;
    REQUIRE(UnpackAny(r->body, &l).ok());
    envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager hcm;
    REQUIRE(UnpackAny(l.filter_chains(0).filters(0).typed_config(), &hcm).ok());
    for (const auto& f : hcm.http_filters()) {
      envoy::extensions::filters::http::rbac::v3::RBAC config;
      if (!UnpackAny(f.typed_config(), &config).ok()) continue;  // the router
      auto compiled = RbacFilterConfig::Create(config);
      // Every field the model emits is one the engine implements.
      INFO(f.name() << ": " << compiled.status().ToString());
      REQUIRE(compiled.ok());
      out.push_back(*std::move(compiled));
    }
  }
  REQUIRE(out.size() == 2);
  return out;
}

struct Caller {
  std::string method = "GET";
  std::string path = "/";
  std::vector<std::string> uri_sans;  // empty: plaintext
  FakeHeaders headers;
};

// The chain's verdict: every enforcing filter must allow.
bool Allowed(const std::vector<std::shared_ptr<const RbacFilterConfig>>& chain, const Caller& c) {
  PeerCertificate peer;
  peer.uri_sans = c.uri_sans;
  RequestInfo r;
  r.line.method = c.method;
  r.line.path = c.path;
  r.headers = &c.headers;
  r.tls = c.uri_sans.empty() ? nullptr : &peer;
  for (const auto& f : chain) {
    auto result = f->Evaluate(r);
    if (result.enforced && !result.enforced->allowed) return false;
  }
  return true;
}

TEST_CASE("AuthorizationPolicy translation compiles in the RBAC engine and decides as written") {
  auto chain = CompiledRbacFilters();
  if (chain.empty()) return;  // refused until enforced (see above)
  // DENY first: the model puts the deny filter before the allow filter.
  REQUIRE(chain[0]->rules() != nullptr);
  CHECK(chain[0]->rules()->action() == Action::kDeny);
  CHECK(chain[1]->rules()->action() == Action::kAllow);

  const std::string web = "spiffe://weft/ns/default/sa/web";
  Caller c;
  c.method = "POST";
  c.path = "/pay/42?amount=1";
  c.uri_sans = {web};
  c.headers.Set("x-tenant", "globex");
  CHECK(Allowed(chain, c));  // identity, path prefix, method, header value
  c.headers.Set("x-tenant", "initech");
  CHECK_FALSE(Allowed(chain, c));  // header value not listed
  c.headers.Set("x-tenant", "acme");
  c.method = "GET";
  CHECK_FALSE(Allowed(chain, c));  // method not listed
  c.method = "PUT";
  c.path = "/healthz";
  CHECK(Allowed(chain, c));  // exact path
  c.path = "/healthz/x";
  CHECK_FALSE(Allowed(chain, c));
  c.path = "/pay/1";
  c.uri_sans.clear();
  CHECK_FALSE(Allowed(chain, c));  // no identity without TLS

  Caller ops;
  ops.uri_sans = {"spiffe://weft/ns/audit/sa/reader"};
  CHECK(Allowed(chain, ops));  // rule 2: namespace only, any request
  ops.uri_sans = {"spiffe://weft/ns/auditor/sa/reader"};
  CHECK_FALSE(Allowed(chain, ops));  // the namespace is a whole path segment

  Caller ready;
  ready.path = "/ready";
  CHECK(Allowed(chain, ready));  // rule 3: anyone, even plaintext

  Caller sandbox;
  sandbox.path = "/ready";
  sandbox.uri_sans = {"spiffe://weft/ns/sandbox/sa/x"};
  CHECK(Allowed(chain, sandbox));
  sandbox.method = "DELETE";
  CHECK_FALSE(Allowed(chain, sandbox));  // the DENY rule wins over the ALLOW rule 3
  Caller intruder;
  intruder.path = "/ready";
  intruder.uri_sans = {"spiffe://weft/ns/default/sa/intruder"};
  CHECK_FALSE(Allowed(chain, intruder));
}

}  // namespace
}  // namespace weft::http::rbac
