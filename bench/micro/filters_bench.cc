// Per-request cost of the HTTP filter engines: an RBAC chain shaped like weft-cp's
// AuthorizationPolicy output (identity, path prefix, method, header per rule) for 1 and 20
// rules, the request matching the last rule or none, and a fault decision at 10 % abort.
#include <benchmark/benchmark.h>

#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "data-plane/http/filters/fault/fault.h"
#include "data-plane/http/filters/rbac/rbac.h"

namespace weft::http {
namespace {

class Headers final : public router::HeaderLookup {
 public:
  std::optional<std::string_view> Get(std::string_view name) const override {
    auto it = h_.find(std::string(name));
    if (it == h_.end()) return std::nullopt;
    return std::string_view(it->second);
  }
  std::map<std::string, std::string> h_ = {{"x-tenant", "acme"}, {"user-agent", "bench"}};
};

std::shared_ptr<const rbac::RbacFilterConfig> Rules(int n) {
  envoy::extensions::filters::http::rbac::v3::RBAC config;
  auto* rules = config.mutable_rules();
  rules->set_action(envoy::config::rbac::v3::RBAC::ALLOW);
  for (int i = 0; i < n; ++i) {
    auto& policy =
        (*rules->mutable_policies())[absl::StrCat("AuthorizationPolicy/default/p", i, ".rules[0]")];
    policy.add_principals()->mutable_authenticated()->mutable_principal_name()->set_exact(
        absl::StrCat("spiffe://weft/ns/default/sa/caller", i));
    auto* all = policy.add_permissions()->mutable_and_rules();
    all->add_rules()->mutable_url_path()->mutable_path()->set_prefix(absl::StrCat("/api/", i, "/"));
    auto* method = all->add_rules()->mutable_header();
    method->set_name(":method");
    method->mutable_string_match()->set_exact("POST");
    auto* tenant = all->add_rules()->mutable_header();
    tenant->set_name("x-tenant");
    tenant->mutable_string_match()->set_exact("acme");
  }
  auto c = rbac::RbacFilterConfig::Create(config);
  return c.ok() ? *c : nullptr;
}

void BM_RbacEvaluate(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const bool match = state.range(1) != 0;
  auto config = Rules(n);
  if (config == nullptr) {
    state.SkipWithError("create failed");
    return;
  }
  Headers headers;
  rbac::PeerCertificate peer;
  peer.uri_sans = {absl::StrCat("spiffe://weft/ns/default/sa/caller", match ? n - 1 : n)};
  std::string path = absl::StrCat("/api/", n - 1, "/items/42?page=2");
  rbac::RequestInfo r;
  r.line = {.method = "POST", .path = path, .authority = "svc", .scheme = "http"};
  r.headers = &headers;
  r.tls = &peer;
  for (auto _ : state) benchmark::DoNotOptimize(config->Evaluate(r));
}
BENCHMARK(BM_RbacEvaluate)->ArgsProduct({{1, 20}, {0, 1}})->ArgNames({"rules", "match"});

void BM_FaultDecide(benchmark::State& state) {
  envoy::extensions::filters::http::fault::v3::HTTPFault proto;
  proto.mutable_abort()->set_http_status(503);
  proto.mutable_abort()->mutable_percentage()->set_numerator(10);
  auto config = fault::FaultFilterConfig::Create(proto);
  if (!config.ok()) {
    state.SkipWithError("create failed");
    return;
  }
  Headers headers;
  upstream::DefaultRandom random(1);
  fault::RequestInfo r;
  r.headers = &headers;
  for (auto _ : state) benchmark::DoNotOptimize((*config)->Decide(r, random));
}
BENCHMARK(BM_FaultDecide);

}  // namespace
}  // namespace weft::http
