// RouteTable::Match cost for 10 and 1000 routes in one virtual host, prefix routes and a
// regex-heavy variant. Routes are scanned in order (first match wins, as Envoy), so the request
// hits the last route: the worst case, and what a miss-heavy table costs.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "data-plane/router/route_table.h"
#include "envoy/config/route/v3/route.pb.h"

namespace weft::router {
namespace {

class NoHeaders : public HeaderLookup {
 public:
  std::optional<std::string_view> Get(std::string_view) const override { return std::nullopt; }
};

std::shared_ptr<const RouteTable> BuildTable(int num_routes, bool regex) {
  envoy::config::route::v3::RouteConfiguration rc;
  rc.set_name("bench");
  auto* other = rc.add_virtual_hosts();
  other->set_name("other");
  other->add_domains("other.example.com");
  other->add_routes()->mutable_match()->set_prefix("/");
  other->mutable_routes(0)->mutable_route()->set_cluster("other");
  auto* vh = rc.add_virtual_hosts();
  vh->set_name("svc");
  vh->add_domains("svc.example.com");
  vh->add_domains("*.svc.example.com");
  for (int i = 0; i < num_routes; ++i) {
    auto* r = vh->add_routes();
    if (regex) {
      r->mutable_match()->mutable_safe_regex()->set_regex(
          absl::StrCat("/api/v[0-9]+/svc", i, "/[a-z]+/[0-9]+"));
    } else {
      r->mutable_match()->set_prefix(absl::StrCat("/api/v1/svc", i, "/"));
    }
    r->mutable_route()->set_cluster(absl::StrCat("cluster", i));
  }
  auto table = RouteTable::Create(rc);
  return table.ok() ? *table : nullptr;
}

void BM_Match(benchmark::State& state, bool regex) {
  const int num_routes = static_cast<int>(state.range(0));
  auto table = BuildTable(num_routes, regex);
  if (table == nullptr) {
    state.SkipWithError("create failed");
    return;
  }
  std::string path = absl::StrCat("/api/v1/svc", num_routes - 1, "/items/42?page=2");
  NoHeaders headers;
  RequestView request;
  request.method = "GET";
  request.authority = "svc.example.com:8080";
  request.path = path;
  request.headers = &headers;
  if (table->Match(request) == nullptr) {
    state.SkipWithError("no match");
    return;
  }
  for (auto _ : state) {
    const Route* route = table->Match(request);
    benchmark::DoNotOptimize(route);
  }
}

void BM_MatchPrefix(benchmark::State& state) { BM_Match(state, false); }
void BM_MatchRegex(benchmark::State& state) { BM_Match(state, true); }

BENCHMARK(BM_MatchPrefix)->Arg(10)->Arg(1000);
BENCHMARK(BM_MatchRegex)->Arg(10)->Arg(1000);

}  // namespace
}  // namespace weft::router
