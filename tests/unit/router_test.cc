#include <catch2/catch.hpp>

#include <map>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "common/yaml_proto.h"
#include "data-plane/router/route_table.h"
#include "envoy/config/route/v3/route.pb.h"

namespace weft::router {
namespace {

using envoy::config::route::v3::RouteConfiguration;

// A header map good enough for tests: ordered entries, duplicates allowed.
class TestHeaders : public MutableHeaders {
 public:
  TestHeaders() = default;
  TestHeaders(std::initializer_list<std::pair<std::string, std::string>> init) : entries_(init) {}

  std::optional<std::string_view> Get(std::string_view name) const override {
    for (const auto& [k, v] : entries_) {
      if (k == name) return std::string_view(v);
    }
    return std::nullopt;
  }
  void Add(std::string_view name, std::string_view value) override {
    entries_.emplace_back(std::string(name), std::string(value));
  }
  void Set(std::string_view name, std::string_view value) override {
    Remove(name);
    Add(name, value);
  }
  void Remove(std::string_view name) override {
    std::erase_if(entries_, [&](const auto& e) { return e.first == name; });
  }
  std::vector<std::string> All(std::string_view name) const {
    std::vector<std::string> out;
    for (const auto& [k, v] : entries_) {
      if (k == name) out.push_back(v);
    }
    return out;
  }

 private:
  std::vector<std::pair<std::string, std::string>> entries_;
};

RouteConfiguration Config(std::string_view yaml) {
  RouteConfiguration rc;
  absl::Status s = YamlToProto(yaml, "test.yaml", &rc);
  INFO(s.ToString());
  REQUIRE(s.ok());
  return rc;
}

std::shared_ptr<const RouteTable> Table(std::string_view yaml) {
  auto table = RouteTable::Create(Config(yaml));
  INFO(table.status().ToString());
  REQUIRE(table.ok());
  return *table;
}

std::string CreateError(std::string_view yaml) {
  auto table = RouteTable::Create(Config(yaml));
  REQUIRE_FALSE(table.ok());
  return std::string(table.status().message());
}

RequestView Req(std::string_view host, std::string_view path,
                const HeaderLookup* headers = nullptr) {
  RequestView r;
  r.method = "GET";
  r.authority = host;
  r.path = path;
  r.headers = headers;
  return r;
}

// The name of the matched route, or "" when none matched.
std::string RouteName(const RouteTable& t, const RequestView& r) {
  const Route* route = t.Match(r);
  return route == nullptr ? "" : route->name();
}

std::string VhostName(const RouteTable& t, std::string_view host) {
  const VirtualHost* vh = t.FindVirtualHost(host);
  return vh == nullptr ? "" : vh->name();
}

// One catch-all route per virtual host; the route is named after its host.
constexpr std::string_view kHosts = R"(
name: hosts
virtual_hosts:
- name: exact
  domains: ["foo.bar.com", "api.com:9000"]
  routes: [{name: exact, match: {prefix: "/"}, route: {cluster: c}}]
- name: suffix
  domains: ["*.bar.com"]
  routes: [{name: suffix, match: {prefix: "/"}, route: {cluster: c}}]
- name: longer-suffix
  domains: ["*.b.bar.com"]
  routes: [{name: longer-suffix, match: {prefix: "/"}, route: {cluster: c}}]
- name: prefix
  domains: ["foo.*"]
  routes: [{name: prefix, match: {prefix: "/"}, route: {cluster: c}}]
- name: plain
  domains: ["api.com", "[::1]"]
  routes: [{name: plain, match: {prefix: "/"}, route: {cluster: c}}]
- name: default
  domains: ["*"]
  routes: [{name: default, match: {prefix: "/"}, route: {cluster: c}}]
)";

TEST_CASE("Virtual host selection: exact, then longest suffix, then prefix, then *") {
  auto t = Table(kHosts);
  CHECK(VhostName(*t, "foo.bar.com") == "exact");
  CHECK(VhostName(*t, "x.bar.com") == "suffix");
  CHECK(VhostName(*t, "a.b.bar.com") == "longer-suffix");
  CHECK(VhostName(*t, "foo.x.bar.com") == "suffix");  // suffix beats prefix
  CHECK(VhostName(*t, "foo.example") == "prefix");
  CHECK(VhostName(*t, "elsewhere") == "default");
  CHECK(VhostName(*t, "") == "default");
  // The wildcard stands for at least one character.
  CHECK(VhostName(*t, "bar.com") == "default");
  CHECK(VhostName(*t, ".bar.com") == "default");
  CHECK(RouteName(*t, Req("x.bar.com", "/anything")) == "suffix");
}

TEST_CASE("Virtual host selection is case-insensitive") {
  auto t = Table(kHosts);
  CHECK(VhostName(*t, "FOO.Bar.COM") == "exact");
  CHECK(VhostName(*t, "X.BAR.COM") == "suffix");
  CHECK(VhostName(*t, "Foo.Example") == "prefix");
  auto upper = Table(R"(
virtual_hosts:
- {name: up, domains: ["Upper.COM", "*.Wild.COM"], routes: [{match: {prefix: "/"}, route: {cluster: c}}]}
)");
  CHECK(VhostName(*upper, "upper.com") == "up");
  CHECK(VhostName(*upper, "a.wild.com") == "up");
}

TEST_CASE("Virtual host selection: port kept when a domain has it, else stripped") {
  auto t = Table(kHosts);
  CHECK(VhostName(*t, "api.com:9000") == "exact");  // listed with its port
  CHECK(VhostName(*t, "api.com:9001") == "plain");  // no domain has the port: strip it
  CHECK(VhostName(*t, "x.bar.com:8080") == "suffix");
  // The whole Envoy order runs on "host:port" before the port is stripped, so a prefix wildcard
  // that matches with the port wins over an exact domain without it.
  CHECK(VhostName(*t, "foo.bar.com:8080") == "prefix");
  CHECK(VhostName(*t, "x.bar.com:443") == "suffix");
  CHECK(VhostName(*t, "[::1]:8080") == "plain");
  CHECK(VhostName(*t, "[::1]") == "plain");
  CHECK(VhostName(*t, "nowhere:80") == "default");

  auto ignore = Table(R"(
ignore_port_in_host_matching: true
virtual_hosts:
- {name: a, domains: ["a.com:80"], routes: [{match: {prefix: "/"}, route: {cluster: c}}]}
- {name: b, domains: ["a.com"], routes: [{match: {prefix: "/"}, route: {cluster: c}}]}
)");
  CHECK(VhostName(*ignore, "a.com:80") == "b");

  auto no_default = Table(R"(
virtual_hosts:
- {name: a, domains: ["a.com"], routes: [{match: {prefix: "/"}, route: {cluster: c}}]}
)");
  CHECK(no_default->Match(Req("b.com", "/")) == nullptr);
  CHECK(no_default->Match(Req("a.com", "/")) != nullptr);
}

TEST_CASE("Path matching: prefix, exact path, regex, path_separated_prefix; query ignored") {
  auto t = Table(R"(
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - {name: exact, match: {path: "/exact"}, route: {cluster: c}}
  - {name: regex, match: {safe_regex: {regex: "/users/[0-9]+"}}, route: {cluster: c}}
  - {name: sep, match: {path_separated_prefix: "/api"}, route: {cluster: c}}
  - {name: prefix, match: {prefix: "/p"}, route: {cluster: c}}
)");
  CHECK(RouteName(*t, Req("h", "/exact")) == "exact");
  CHECK(RouteName(*t, Req("h", "/exact?x=/users/1")) == "exact");
  CHECK(RouteName(*t, Req("h", "/exact#frag")) == "exact");
  CHECK(RouteName(*t, Req("h", "/exact/")).empty());
  CHECK(RouteName(*t, Req("h", "/users/42")) == "regex");
  CHECK(RouteName(*t, Req("h", "/users/42?q=1")) == "regex");
  CHECK(RouteName(*t, Req("h", "/users/42/x")).empty());  // full match only
  CHECK(RouteName(*t, Req("h", "/api")) == "sep");
  CHECK(RouteName(*t, Req("h", "/api/v1")) == "sep");
  CHECK(RouteName(*t, Req("h", "/api?x")) == "sep");
  CHECK(RouteName(*t, Req("h", "/apix")).empty());
  CHECK(RouteName(*t, Req("h", "/px")) == "prefix");
  CHECK(RouteName(*t, Req("h", "/EXACT")).empty());  // case-sensitive by default
}

TEST_CASE("case_sensitive: false folds case for prefix, path and separated prefix") {
  auto t = Table(R"(
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - {name: exact, match: {path: "/Exact", case_sensitive: false}, route: {cluster: c}}
  - {name: sep, match: {path_separated_prefix: "/API", case_sensitive: false}, route: {cluster: c}}
  - {name: prefix, match: {prefix: "/Pre", case_sensitive: false}, route: {cluster: c}}
  - {name: strict, match: {prefix: "/Strict"}, route: {cluster: c}}
)");
  CHECK(RouteName(*t, Req("h", "/eXACT")) == "exact");
  CHECK(RouteName(*t, Req("h", "/api/x")) == "sep");
  CHECK(RouteName(*t, Req("h", "/PREFIX")) == "prefix");
  CHECK(RouteName(*t, Req("h", "/strict")).empty());
  CHECK(RouteName(*t, Req("h", "/Strict")) == "strict");
}

TEST_CASE("Header matchers: string_match, legacy fields, present, range, invert, missing") {
  auto t = Table(R"(
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - {name: exact, match: {prefix: "/exact", headers: [{name: X-Env, string_match: {exact: prod}}]}, route: {cluster: c}}
  - {name: legacy-prefix, match: {prefix: "/lp", headers: [{name: x-env, prefix_match: pro}]}, route: {cluster: c}}
  - {name: contains-ic, match: {prefix: "/ci", headers: [{name: x-env, string_match: {contains: ROD, ignore_case: true}}]}, route: {cluster: c}}
  - {name: regex, match: {prefix: "/re", headers: [{name: x-env, safe_regex_match: {regex: "p.*d"}}]}, route: {cluster: c}}
  - {name: present, match: {prefix: "/present", headers: [{name: x-env, present_match: true}]}, route: {cluster: c}}
  - {name: absent, match: {prefix: "/absent", headers: [{name: x-env, present_match: false}]}, route: {cluster: c}}
  - {name: no-spec, match: {prefix: "/nospec", headers: [{name: x-env}]}, route: {cluster: c}}
  - {name: invert, match: {prefix: "/invert", headers: [{name: x-env, string_match: {exact: prod}, invert_match: true}]}, route: {cluster: c}}
  - {name: invert-present, match: {prefix: "/ip", headers: [{name: x-env, present_match: true, invert_match: true}]}, route: {cluster: c}}
  - {name: range, match: {prefix: "/range", headers: [{name: x-n, range_match: {start: 10, end: 20}}]}, route: {cluster: c}}
  - {name: empty-ok, match: {prefix: "/empty", headers: [{name: x-env, string_match: {exact: ""}, treat_missing_header_as_empty: true}]}, route: {cluster: c}}
  - {name: two, match: {prefix: "/two", headers: [{name: a, string_match: {exact: "1"}}, {name: b, string_match: {exact: "2"}}]}, route: {cluster: c}}
)");
  TestHeaders prod{{"x-env", "prod"}};
  TestHeaders dev{{"x-env", "dev"}};
  TestHeaders none;
  CHECK(RouteName(*t, Req("h", "/exact", &prod)) == "exact");
  CHECK(RouteName(*t, Req("h", "/exact", &dev)).empty());
  CHECK(RouteName(*t, Req("h", "/exact", nullptr)).empty());
  CHECK(RouteName(*t, Req("h", "/lp", &prod)) == "legacy-prefix");
  CHECK(RouteName(*t, Req("h", "/ci", &prod)) == "contains-ic");
  CHECK(RouteName(*t, Req("h", "/re", &prod)) == "regex");
  CHECK(RouteName(*t, Req("h", "/re", &dev)).empty());
  CHECK(RouteName(*t, Req("h", "/present", &dev)) == "present");
  CHECK(RouteName(*t, Req("h", "/present", &none)).empty());
  CHECK(RouteName(*t, Req("h", "/absent", &none)) == "absent");
  CHECK(RouteName(*t, Req("h", "/absent", &dev)).empty());
  CHECK(RouteName(*t, Req("h", "/nospec", &dev)) == "no-spec");
  CHECK(RouteName(*t, Req("h", "/nospec", &none)).empty());
  CHECK(RouteName(*t, Req("h", "/invert", &dev)) == "invert");
  CHECK(RouteName(*t, Req("h", "/invert", &prod)).empty());
  CHECK(RouteName(*t, Req("h", "/invert", &none)).empty());  // Envoy: missing never matches
  CHECK(RouteName(*t, Req("h", "/ip", &none)) == "invert-present");
  CHECK(RouteName(*t, Req("h", "/ip", &dev)).empty());
  TestHeaders n15{{"x-n", "15"}}, n20{{"x-n", "20"}}, nx{{"x-n", "abc"}};
  CHECK(RouteName(*t, Req("h", "/range", &n15)) == "range");
  CHECK(RouteName(*t, Req("h", "/range", &n20)).empty());  // end is exclusive
  CHECK(RouteName(*t, Req("h", "/range", &nx)).empty());
  CHECK(RouteName(*t, Req("h", "/empty", &none)) == "empty-ok");
  TestHeaders both{{"a", "1"}, {"b", "2"}}, one{{"a", "1"}};
  CHECK(RouteName(*t, Req("h", "/two", &both)) == "two");
  CHECK(RouteName(*t, Req("h", "/two", &one)).empty());
}

TEST_CASE("Query parameter matchers, decoded, first occurrence") {
  auto t = Table(R"(
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - {name: exact, match: {prefix: "/", query_parameters: [{name: debug, string_match: {exact: "on now"}}]}, route: {cluster: c}}
  - {name: present, match: {prefix: "/", query_parameters: [{name: trace, present_match: true}]}, route: {cluster: c}}
  - {name: fallback, match: {prefix: "/"}, route: {cluster: c}}
)");
  CHECK(RouteName(*t, Req("h", "/x?debug=on+now")) == "exact");
  CHECK(RouteName(*t, Req("h", "/x?a=1&debug=on%20now")) == "exact");
  CHECK(RouteName(*t, Req("h", "/x?debug=off&debug=on+now")) == "fallback");
  CHECK(RouteName(*t, Req("h", "/x?trace")) == "present");
  CHECK(RouteName(*t, Req("h", "/x?trace=")) == "present");
  CHECK(RouteName(*t, Req("h", "/x?tracex=1")) == "fallback");
  CHECK(RouteName(*t, Req("h", "/x")) == "fallback");
  CHECK(RouteName(*t, Req("h", "/x#debug=on+now")) == "fallback");
}

TEST_CASE("gRPC match needs an application/grpc content-type") {
  auto t = Table(R"(
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - {name: grpc, match: {prefix: "/", grpc: {}}, route: {cluster: c}}
  - {name: other, match: {prefix: "/"}, route: {cluster: c}}
)");
  TestHeaders grpc{{"content-type", "application/grpc"}};
  TestHeaders grpc_proto{{"content-type", "application/grpc+proto"}};
  TestHeaders grpcweb{{"content-type", "application/grpc-web"}};
  TestHeaders json{{"content-type", "application/json"}};
  CHECK(RouteName(*t, Req("h", "/svc/M", &grpc)) == "grpc");
  CHECK(RouteName(*t, Req("h", "/svc/M", &grpc_proto)) == "grpc");
  CHECK(RouteName(*t, Req("h", "/svc/M", &grpcweb)) == "other");
  CHECK(RouteName(*t, Req("h", "/svc/M", &json)) == "other");
  CHECK(RouteName(*t, Req("h", "/svc/M")) == "other");
}

TEST_CASE("The first matching route wins") {
  auto t = Table(R"(
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - {name: first, match: {prefix: "/a"}, route: {cluster: c}}
  - {name: second, match: {prefix: "/a/b"}, route: {cluster: c}}
  - {name: third, match: {prefix: "/"}, route: {cluster: c}}
)");
  CHECK(RouteName(*t, Req("h", "/a/b/c")) == "first");
  CHECK(RouteName(*t, Req("h", "/b")) == "third");
}

TEST_CASE("runtime_fraction uses the request's random value") {
  auto t = Table(R"(
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - {name: canary, match: {prefix: "/", runtime_fraction: {default_value: {numerator: 25}}}, route: {cluster: canary}}
  - {name: stable, match: {prefix: "/"}, route: {cluster: stable}}
)");
  RequestView r = Req("h", "/");
  r.random_value = 124;  // 124 % 100 = 24 < 25
  CHECK(RouteName(*t, r) == "canary");
  r.random_value = 25;
  CHECK(RouteName(*t, r) == "stable");
}

TEST_CASE("Weighted clusters: deterministic slices and distribution within 2%") {
  auto t = Table(R"(
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - match: {prefix: "/"}
    route:
      weighted_clusters:
        clusters:
        - {name: a, weight: 20}
        - {name: never, weight: 0}
        - {name: b, weight: 30}
        - {name: c, weight: 50}
)");
  const Route* route = t->Match(Req("h", "/"));
  REQUIRE(route != nullptr);
  const RouteAction* a = route->route_action();
  REQUIRE(a != nullptr);
  CHECK(a->cluster_specifier == RouteAction::ClusterSpecifier::kWeighted);
  CHECK(a->total_weight == 100);
  CHECK(a->PickCluster(0)->name == "a");
  CHECK(a->PickCluster(19)->name == "a");
  CHECK(a->PickCluster(20)->name == "b");
  CHECK(a->PickCluster(49)->name == "b");
  CHECK(a->PickCluster(50)->name == "c");
  CHECK(a->PickCluster(199)->name == "c");

  std::mt19937_64 rng(42);
  std::map<std::string, int> counts;
  constexpr int kPicks = 10000;
  for (int i = 0; i < kPicks; ++i) counts[a->PickCluster(rng())->name]++;
  CHECK(counts.count("never") == 0);
  CHECK(std::abs(counts["a"] / double(kPicks) - 0.20) < 0.02);
  CHECK(std::abs(counts["b"] / double(kPicks) - 0.30) < 0.02);
  CHECK(std::abs(counts["c"] / double(kPicks) - 0.50) < 0.02);

  auto single = Table(R"(
virtual_hosts:
- {name: v, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: one}}]}
)");
  const RouteAction* s = single->Match(Req("h", "/"))->route_action();
  CHECK(s->cluster == "one");
  CHECK(s->PickCluster(7) == nullptr);
}

TEST_CASE("Path rewrites keep the query string") {
  auto t = Table(R"(
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - {name: prefix, match: {prefix: "/old/"}, route: {cluster: c, prefix_rewrite: "/new/"}}
  - {name: ci, match: {prefix: "/CI/", case_sensitive: false}, route: {cluster: c, prefix_rewrite: "/"}}
  - {name: exact, match: {path: "/exact"}, route: {cluster: c, prefix_rewrite: "/other"}}
  - name: regex
    match: {prefix: "/v1/"}
    route:
      cluster: c
      regex_rewrite: {pattern: {regex: "^/v1/([^/]+)/item/([0-9]+)$"}, substitution: "/items/\\2?owner=\\1"}
  - name: all
    match: {prefix: "/x"}
    route: {cluster: c, regex_rewrite: {pattern: {regex: "a"}, substitution: "b"}}
  - {name: none, match: {prefix: "/"}, route: {cluster: c}}
)");
  auto rewrite = [&](std::string_view path) {
    const Route* r = t->Match(Req("h", path));
    REQUIRE(r != nullptr);
    return ApplyPathRewrite(*r, path);
  };
  CHECK(rewrite("/old/thing?a=1&b=2") == "/new/thing?a=1&b=2");
  CHECK(rewrite("/old/") == "/new/");
  CHECK(rewrite("/ci/x?q") == "/x?q");
  CHECK(rewrite("/exact?q=1") == "/other?q=1");
  CHECK(rewrite("/v1/bob/item/7?z=1") == "/items/7?owner=bob?z=1");
  CHECK(rewrite("/xaa?a=a") == "/xbb?a=a");  // every match, never the query
  CHECK(rewrite("/untouched?q") == "/untouched?q");
}

TEST_CASE("Redirects: scheme, host, port, path, prefix rewrite, strip_query, codes") {
  auto t = Table(R"(
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - {name: https, match: {prefix: "/secure"}, redirect: {https_redirect: true}}
  - {name: host, match: {prefix: "/moved"}, redirect: {host_redirect: "new.example.com", response_code: FOUND}}
  - {name: port, match: {prefix: "/port"}, redirect: {port_redirect: 8443, scheme_redirect: https}}
  - {name: prefix, match: {prefix: "/old/"}, redirect: {prefix_rewrite: "/new/", response_code: PERMANENT_REDIRECT}}
  - {name: strip, match: {prefix: "/strip"}, redirect: {path_redirect: "/clean", strip_query: true, response_code: SEE_OTHER}}
  - {name: path, match: {prefix: "/path"}, redirect: {path_redirect: "/there", response_code: TEMPORARY_REDIRECT}}
  - {name: pathq, match: {prefix: "/pq"}, redirect: {path_redirect: "/there?x=1", strip_query: true}}
  - {name: regex, match: {prefix: "/r/"}, redirect: {regex_rewrite: {pattern: {regex: "^/r/(.*)$"}, substitution: "/s/\\1"}}}
  - {name: hostport, match: {prefix: "/hp"}, redirect: {host_redirect: "h.example:99", port_redirect: 1234}}
  - {name: fwd, match: {prefix: "/"}, route: {cluster: c}}
)");
  auto location = [&](std::string_view host, std::string_view path, std::string_view scheme,
                      uint32_t* status = nullptr) {
    RequestView r = Req(host, path);
    r.scheme = scheme;
    const Route* route = t->Match(r);
    REQUIRE(route != nullptr);
    REQUIRE(route->redirect() != nullptr);
    if (status != nullptr) *status = route->redirect()->status;
    return RedirectLocation(*route, r);
  };
  uint32_t status = 0;
  CHECK(location("a.com", "/secure?x=1", "http", &status) == "https://a.com/secure?x=1");
  CHECK(status == 301);
  CHECK(location("a.com:80", "/secure", "http") == "https://a.com/secure");  // default port
  CHECK(location("a.com:8080", "/secure", "http") == "https://a.com:8080/secure");
  CHECK(location("a.com", "/moved/x?q", "https", &status) == "https://new.example.com/moved/x?q");
  CHECK(status == 302);
  CHECK(location("a.com:8080", "/port/x", "http") == "https://a.com:8443/port/x");
  CHECK(location("a.com", "/old/doc?v=2", "http", &status) == "http://a.com/new/doc?v=2");
  CHECK(status == 308);
  CHECK(location("a.com", "/strip?secret=1", "http", &status) == "http://a.com/clean");
  CHECK(status == 303);
  CHECK(location("a.com", "/path?keep=1", "http", &status) == "http://a.com/there?keep=1");
  CHECK(status == 307);
  CHECK(location("a.com", "/pq?dropped=1", "http") == "http://a.com/there?x=1");
  CHECK(location("a.com", "/r/a/b?q", "http") == "http://a.com/s/a/b?q");
  CHECK(location("a.com", "/hp", "http") == "http://h.example:1234/hp");
  CHECK(location("[::1]:80", "/secure", "http") == "https://[::1]/secure");

  const Route* fwd = t->Match(Req("a.com", "/other"));
  REQUIRE(fwd != nullptr);
  CHECK(fwd->redirect() == nullptr);
  CHECK(RedirectLocation(*fwd, Req("a.com", "/other")).empty());
}

TEST_CASE("Direct responses carry status and inline body") {
  auto t = Table(R"(
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - {name: str, match: {path: "/health"}, direct_response: {status: 200, body: {inline_string: "ok\n"}}}
  - {name: bytes, match: {path: "/b"}, direct_response: {status: 503, body: {inline_bytes: "aGk="}}}
  - {name: empty, match: {path: "/gone"}, direct_response: {status: 410}}
)");
  const Route* r = t->Match(Req("h", "/health"));
  REQUIRE(r != nullptr);
  REQUIRE(r->action_kind() == Route::ActionKind::kDirectResponse);
  CHECK(r->direct_response()->status == 200);
  CHECK(r->direct_response()->body == "ok\n");
  CHECK(r->route_action() == nullptr);
  CHECK(t->Match(Req("h", "/b"))->direct_response()->body == "hi");
  CHECK(t->Match(Req("h", "/gone"))->direct_response()->status == 410);
  CHECK(t->Match(Req("h", "/gone"))->direct_response()->body.empty());

  std::string err = CreateError(R"(
max_direct_response_body_size_bytes: 4
virtual_hosts:
- {name: v, domains: ["*"], routes: [{match: {path: "/"}, direct_response: {status: 200, body: {inline_string: "too long"}}}]}
)");
  CHECK_THAT(err, Catch::Contains("virtual_hosts[0].routes[0].direct_response.body: is 8 bytes"));
}

TEST_CASE("retry_on parsing") {
  RetryOnParse all = ParseRetryOn(
      "5xx, gateway-error,reset,connect-failure ,retriable-4xx,refused-stream,"
      "retriable-status-codes,cancelled,deadline-exceeded,internal,resource-exhausted,"
      "unavailable");
  CHECK(all.all_known);
  uint32_t expected =
      retry_on::k5xx | retry_on::kGatewayError | retry_on::kReset | retry_on::kConnectFailure |
      retry_on::kRetriable4xx | retry_on::kRefusedStream | retry_on::kRetriableStatusCodes |
      retry_on::kGrpcCancelled | retry_on::kGrpcDeadlineExceeded | retry_on::kGrpcInternal |
      retry_on::kGrpcResourceExhausted | retry_on::kGrpcUnavailable;
  CHECK(all.bits == expected);
  RetryOnParse some = ParseRetryOn("5xx,bogus,,");
  CHECK(some.bits == retry_on::k5xx);
  CHECK_FALSE(some.all_known);
  CHECK(ParseRetryOn("").bits == 0);
}

TEST_CASE("Retry policy, timeouts and hash policies are resolved") {
  auto t = Table(R"(
virtual_hosts:
- name: v
  domains: ["*"]
  retry_policy: {retry_on: "connect-failure", num_retries: 5}
  routes:
  - name: own
    match: {prefix: "/own"}
    route:
      cluster: c
      timeout: 2.5s
      idle_timeout: 0s
      retry_policy:
        retry_on: "5xx,retriable-status-codes"
        retriable_status_codes: [409, 429]
        per_try_timeout: 0.5s
        retry_back_off: {base_interval: 0.1s}
      hash_policy:
      - {header: {header_name: X-User}}
      - {cookie: {name: sess, ttl: 60s, path: "/"}, terminal: true}
      - {connection_properties: {source_ip: true}}
      - {query_parameter: {name: uid}}
  - {name: inherit, match: {prefix: "/inherit"}, route: {cluster: c, timeout: 0s}}
  - name: default-retries
    match: {prefix: "/"}
    route: {cluster: c, retry_policy: {retry_on: "reset"}}
)");
  const RouteAction* own = t->Match(Req("h", "/own"))->route_action();
  CHECK(own->timeout == std::chrono::milliseconds(2500));
  REQUIRE(own->idle_timeout.has_value());
  CHECK(own->idle_timeout->count() == 0);
  REQUIRE(own->retry_policy.has_value());
  CHECK(own->retry_policy->retry_on == (retry_on::k5xx | retry_on::kRetriableStatusCodes));
  CHECK(own->retry_policy->num_retries == 1);
  CHECK(own->retry_policy->retriable_status_codes == std::vector<uint32_t>{409, 429});
  CHECK(own->retry_policy->per_try_timeout == std::chrono::milliseconds(500));
  CHECK(own->retry_policy->base_interval == std::chrono::milliseconds(100));
  CHECK(own->retry_policy->max_interval == std::chrono::milliseconds(1000));
  REQUIRE(own->hash_policies.size() == 4);
  CHECK(own->hash_policies[0].kind == HashPolicy::Kind::kHeader);
  CHECK(own->hash_policies[0].name == "x-user");
  CHECK(own->hash_policies[1].kind == HashPolicy::Kind::kCookie);
  CHECK(own->hash_policies[1].terminal);
  CHECK(own->hash_policies[1].cookie_ttl == std::chrono::milliseconds(60000));
  CHECK(own->hash_policies[2].kind == HashPolicy::Kind::kSourceIp);
  CHECK(own->hash_policies[3].kind == HashPolicy::Kind::kQueryParameter);
  CHECK(own->hash_policies[3].name == "uid");

  const RouteAction* inherit = t->Match(Req("h", "/inherit"))->route_action();
  CHECK(inherit->timeout.count() == 0);  // disabled
  CHECK_FALSE(inherit->idle_timeout.has_value());
  REQUIRE(inherit->retry_policy.has_value());
  CHECK(inherit->retry_policy->retry_on == retry_on::kConnectFailure);
  CHECK(inherit->retry_policy->num_retries == 5);

  const RouteAction* dflt = t->Match(Req("h", "/x"))->route_action();
  CHECK(dflt->timeout == std::chrono::seconds(15));
  CHECK(dflt->retry_policy->num_retries == 1);

  auto bare = Table(R"(
virtual_hosts:
- {name: v, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: c}}]}
)");
  CHECK_FALSE(bare->Match(Req("h", "/"))->route_action()->retry_policy.has_value());
}

TEST_CASE("Header mutations merge route, virtual host and config levels like Envoy") {
  constexpr std::string_view kYaml = R"(
request_headers_to_add:
- {header: {key: x-level, value: config}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}
request_headers_to_remove: [x-config-removes]
response_headers_to_add:
- {header: {key: x-resp, value: config}}
virtual_hosts:
- name: v
  domains: ["*"]
  request_headers_to_add:
  - {header: {key: x-level, value: vhost}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}
  - {header: {key: x-config-removes, value: from-vhost}}
  response_headers_to_add:
  - {header: {key: x-resp, value: vhost}}
  routes:
  - name: r
    match: {prefix: "/"}
    request_headers_to_add:
    - {header: {key: X-Level, value: route}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}
    - {header: {key: x-absent, value: added}, append_action: ADD_IF_ABSENT}
    - {header: {key: x-present, value: kept}, append_action: ADD_IF_ABSENT}
    - {header: {key: x-only-if, value: new}, append_action: OVERWRITE_IF_EXISTS}
    - {header: {key: x-missing, value: new}, append_action: OVERWRITE_IF_EXISTS}
    - {header: {key: x-append, value: two}, append: true}
    - {header: {key: x-empty, value: ""}}
    - {header: {key: x-kept-empty, value: ""}, keep_empty_value: true}
    request_headers_to_remove: [X-Secret]
    response_headers_to_add:
    - {header: {key: x-resp, value: route}}
    route:
      weighted_clusters:
        clusters:
        - name: a
          weight: 1
          request_headers_to_add:
          - {header: {key: x-level, value: cluster}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}
)";
  auto t = Table(kYaml);
  const Route* r = t->Match(Req("h", "/"));
  REQUIRE(r != nullptr);

  TestHeaders h{{"x-secret", "s"},
                {"x-present", "orig"},
                {"x-only-if", "old"},
                {"x-append", "one"},
                {"x-config-removes", "z"}};
  ApplyHeaderOps(r->request_header_ops(), &h);
  // Route first, then virtual host, then config: the least specific level is applied last.
  CHECK(h.All("x-level") == std::vector<std::string>{"config"});
  CHECK(h.All("x-secret").empty());
  CHECK(h.All("x-absent") == std::vector<std::string>{"added"});
  CHECK(h.All("x-present") == std::vector<std::string>{"orig"});
  CHECK(h.All("x-only-if") == std::vector<std::string>{"new"});
  CHECK(h.All("x-missing").empty());
  CHECK(h.All("x-append") == std::vector<std::string>{"one", "two"});
  CHECK(h.All("x-empty").empty());
  CHECK(h.All("x-kept-empty") == std::vector<std::string>{""});
  // The config level's removal runs after the vhost added it.
  CHECK(h.All("x-config-removes").empty());

  TestHeaders resp;
  ApplyHeaderOps(r->response_header_ops(), &resp);
  CHECK(resp.All("x-resp") == std::vector<std::string>{"route", "vhost", "config"});

  // A weighted cluster's own mutations come first of all.
  const WeightedClusterEntry* a = r->route_action()->PickCluster(0);
  REQUIRE(a != nullptr);
  REQUIRE_FALSE(a->request_header_ops.empty());
  CHECK(a->request_header_ops.front().value == "cluster");
  CHECK(a->request_header_ops.size() == r->request_header_ops().size() + 1);

  RouteConfiguration rc = Config(kYaml);
  rc.set_most_specific_header_mutations_wins(true);
  auto reversed = RouteTable::Create(rc);
  REQUIRE(reversed.ok());
  TestHeaders h2;
  ApplyHeaderOps((*reversed)->Match(Req("h", "/"))->request_header_ops(), &h2);
  CHECK(h2.All("x-level") == std::vector<std::string>{"route"});
}

TEST_CASE("Route upgrade_configs: per type, lower-cased, enabled unless said otherwise") {
  auto t = Table(R"(
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - match: {prefix: "/"}
    route:
      cluster: c
      upgrade_configs: [{upgrade_type: WebSocket}, {upgrade_type: CONNECT, enabled: false}]
)");
  const RouteAction* a = t->Match(Req("a", "/"))->route_action();
  REQUIRE(a != nullptr);
  CHECK(a->upgrade_overrides ==
        std::vector<std::pair<std::string, bool>>{{"websocket", true}, {"connect", false}});
  std::string error = CreateError(R"(
virtual_hosts:
- name: v
  domains: ["*"]
  routes: [{match: {prefix: "/"}, route: {cluster: c, upgrade_configs: [{}]}}]
)");
  CHECK(error.find("routes[0].route.upgrade_configs[0].upgrade_type: must not be empty") !=
        std::string::npos);
}

TEST_CASE("Host rewrite") {
  auto t = Table(R"(
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - {name: lit, match: {prefix: "/lit"}, route: {cluster: c, host_rewrite_literal: "up.internal"}}
  - {name: hdr, match: {prefix: "/hdr"}, route: {cluster: c, host_rewrite_header: X-Host}}
  - {name: none, match: {prefix: "/"}, route: {cluster: c}}
)");
  TestHeaders h{{"x-host", "from-header"}};
  RequestView lit = Req("a", "/lit");
  CHECK(RewrittenHost(*t->Match(lit), lit) == "up.internal");
  RequestView hdr = Req("a", "/hdr", &h);
  CHECK(RewrittenHost(*t->Match(hdr), hdr) == "from-header");
  RequestView none = Req("a", "/x");
  CHECK_FALSE(RewrittenHost(*t->Match(none), none).has_value());
}

TEST_CASE("Bad input is an error naming the field path, never a crash") {
  std::string err = CreateError(R"yaml(
name: rc
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - {match: {prefix: "/"}, route: {cluster: c}}
  - {match: {safe_regex: {regex: "(unclosed"}}, route: {cluster: c}}
  - {match: {prefix: "/", headers: [{name: x, safe_regex_match: {regex: "[z-a]"}}]}, route: {cluster: c}}
  - match: {prefix: "/"}
    route: {cluster: c, regex_rewrite: {pattern: {regex: "(a)"}, substitution: "\\2"}}
  - match: {prefix: "/"}
    route: {weighted_clusters: {clusters: [{name: a, weight: 0}]}}
)yaml");
  CHECK_THAT(err, Catch::StartsWith("route configuration \"rc\": "));
  CHECK_THAT(err,
             Catch::Contains("virtual_hosts[0].routes[1].match.safe_regex.regex: invalid regex"));
  CHECK_THAT(err,
             Catch::Contains(
                 "virtual_hosts[0].routes[2].match.headers[0].safe_regex_match.regex: invalid"));
  CHECK_THAT(err, Catch::Contains("virtual_hosts[0].routes[3].route.regex_rewrite.substitution"));
  CHECK_THAT(err,
             Catch::Contains(
                 "virtual_hosts[0].routes[4].route.weighted_clusters.clusters: sum of weights"));

  // Missing pieces that the validator would catch must not crash here either.
  err = CreateError(R"(
virtual_hosts:
- name: v
  domains: ["*", "a*b", "*"]
  routes: [{}, {match: {}}, {match: {prefix: "/"}, route: {}}]
)");
  CHECK_THAT(err, Catch::Contains("virtual_hosts[0].domains[1]: invalid domain"));
  CHECK_THAT(err, Catch::Contains("virtual_hosts[0].domains[2]: duplicate domain"));
  CHECK_THAT(err, Catch::Contains("virtual_hosts[0].routes[0].match: must be set"));
  CHECK_THAT(err, Catch::Contains("virtual_hosts[0].routes[1].match: one of prefix"));
  CHECK_THAT(err, Catch::Contains("virtual_hosts[0].routes[2].route: one of cluster"));

  // An empty config is valid and matches nothing.
  auto empty = RouteTable::Create(RouteConfiguration());
  REQUIRE(empty.ok());
  CHECK((*empty)->Match(Req("h", "/")) == nullptr);
}

TEST_CASE("StripPort") {
  CHECK(StripPort("a.com:80") == "a.com");
  CHECK(StripPort("a.com") == "a.com");
  CHECK(StripPort("[::1]:443") == "[::1]");
  CHECK(StripPort("[::1]") == "[::1]");
  CHECK(StripPort("::1") == "::1");
  CHECK(StripPort("a.com:http") == "a.com:http");
  CHECK(StripPort("") == "");
}

}  // namespace
}  // namespace weft::router
