// The RBAC filter's engine (data-plane/http/filters/rbac) and its config check
// (common/xds/rbac_check.h), against Envoy's semantics.
#include "data-plane/http/filters/rbac/rbac.h"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/strings.h"
#include "common/xds/rbac_check.h"
#include "tests/unit/filter_test_util.h"

namespace weft::http::rbac {
namespace {

using ::weft::testing::FakeHeaders;
using ::weft::testing::FromYaml;
using ::weft::testing::HasError;
using ProtoRbac = ::envoy::config::rbac::v3::RBAC;
using FilterProto = ::envoy::extensions::filters::http::rbac::v3::RBAC;
using Catch::Matchers::Contains;

Endpoint Ep(std::string_view ip, uint16_t port = 0) {
  auto a = xds::IpAddress::Parse(ip);
  REQUIRE(a.has_value());
  return Endpoint{*a, port};
}

Engine MustEngine(std::string_view yaml) {
  auto engine = Engine::Create(FromYaml<ProtoRbac>(yaml));
  INFO(engine.status().ToString());
  REQUIRE(engine.ok());
  return *std::move(engine);
}

std::string CreateError(std::string_view yaml) {
  auto engine = Engine::Create(FromYaml<ProtoRbac>(yaml));
  REQUIRE_FALSE(engine.ok());
  return std::string(engine.status().message());
}

// An ALLOW engine with one policy "p" made of one permission and one principal.
Engine AllowIf(std::string_view permission, std::string_view principal = "{any: true}") {
  return MustEngine(absl::StrCat("action: ALLOW\npolicies:\n  p:\n    permissions: [",
                                 Sv(permission), "]\n    principals: [", Sv(principal), "]\n"));
}

bool Allowed(const Engine& e, const RequestInfo& r) { return e.Evaluate(r).allowed; }

RequestInfo Get(std::string_view path = "/", const router::HeaderLookup* headers = nullptr) {
  RequestInfo r;
  r.line = {.method = "GET", .path = path, .authority = "svc", .scheme = "http"};
  r.headers = headers;
  r.source = Ep("10.1.2.3", 40000);
  r.destination = Ep("10.0.0.9", 8080);
  return r;
}

TEST_CASE("RBAC: ALLOW allows iff a policy matches; DENY denies iff; LOG always allows") {
  const char* policies = R"(
policies:
  b-admin:
    permissions: [{url_path: {path: {prefix: /admin}}}]
    principals: [{any: true}]
  a-health:
    permissions: [{url_path: {path: {exact: /healthz}}}]
    principals: [{any: true}]
)";
  Engine allow = MustEngine(absl::StrCat("action: ALLOW", policies));
  Engine deny = MustEngine(absl::StrCat("action: DENY", policies));
  Engine log = MustEngine(absl::StrCat("action: LOG", policies));
  CHECK(allow.action() == Action::kAllow);
  CHECK(deny.action() == Action::kDeny);
  CHECK(log.action() == Action::kLog);

  Decision d = allow.Evaluate(Get("/admin/x"));
  CHECK(d.allowed);
  CHECK(d.matched_policy == "b-admin");
  CHECK_FALSE(d.should_log);
  d = allow.Evaluate(Get("/other"));
  CHECK_FALSE(d.allowed);
  CHECK(d.matched_policy.empty());

  d = deny.Evaluate(Get("/healthz"));
  CHECK_FALSE(d.allowed);
  CHECK(d.matched_policy == "a-health");
  CHECK(deny.Evaluate(Get("/other")).allowed);

  d = log.Evaluate(Get("/admin"));
  CHECK(d.allowed);
  CHECK(d.should_log);
  CHECK(d.matched_policy == "b-admin");
  d = log.Evaluate(Get("/other"));
  CHECK(d.allowed);
  CHECK_FALSE(d.should_log);
}

TEST_CASE("RBAC: the reported policy is the first match in name order") {
  Engine e = MustEngine(R"(
action: DENY
policies:
  zeta: {permissions: [{any: true}], principals: [{any: true}]}
  alpha: {permissions: [{any: true}], principals: [{any: true}]}
  mid: {permissions: [{any: true}], principals: [{any: true}]}
)");
  CHECK(e.Evaluate(Get()).matched_policy == "alpha");
}

TEST_CASE("RBAC: a policy needs one permission AND one principal to match") {
  Engine e = MustEngine(R"(
action: ALLOW
policies:
  p:
    permissions: [{url_path: {path: {exact: /a}}}, {url_path: {path: {exact: /b}}}]
    principals: [{source_ip: {address_prefix: 10.0.0.0, prefix_len: 8}},
                 {source_ip: {address_prefix: 192.168.0.0, prefix_len: 16}}]
)");
  RequestInfo r = Get("/b");
  CHECK(Allowed(e, r));  // second permission, first principal
  r.source = Ep("192.168.4.4");
  CHECK(Allowed(e, r));  // second principal
  r.source = Ep("172.16.0.1");
  CHECK_FALSE(Allowed(e, r));  // no principal
  r = Get("/c");
  CHECK_FALSE(Allowed(e, r));  // no permission
}

TEST_CASE("RBAC: no policies under ALLOW denies everything; under DENY allows everything") {
  CHECK_FALSE(Allowed(MustEngine("action: ALLOW"), Get()));
  CHECK(Allowed(MustEngine("action: DENY"), Get()));
}

TEST_CASE("RBAC permissions: header, :method, url_path without the query") {
  FakeHeaders h{{"x-tenant", "acme"}, {"x-multi", "a,b"}};
  Engine tenant = AllowIf("{header: {name: X-Tenant, string_match: {exact: acme}}}");
  CHECK(Allowed(tenant, Get("/", &h)));
  FakeHeaders other{{"x-tenant", "evil"}};
  CHECK_FALSE(Allowed(tenant, Get("/", &other)));
  CHECK_FALSE(Allowed(tenant, Get("/", nullptr)));

  Engine inverted = AllowIf("{header: {name: x-tenant, exact_match: acme, invert_match: true}}");
  CHECK_FALSE(Allowed(inverted, Get("/", &h)));
  CHECK(Allowed(inverted, Get("/", &other)));

  // Repeated headers are seen joined with ',' (the header map's job), as Envoy.
  CHECK(Allowed(AllowIf("{header: {name: x-multi, string_match: {exact: 'a,b'}}}"), Get("/", &h)));

  // Method through the :method pseudo-header, whatever the header map holds.
  Engine post = AllowIf("{header: {name: ':method', string_match: {exact: POST}}}");
  RequestInfo r = Get();
  CHECK_FALSE(Allowed(post, r));
  r.line.method = "POST";
  CHECK(Allowed(post, r));
  Engine authority = AllowIf("{header: {name: ':authority', string_match: {exact: svc}}}");
  CHECK(Allowed(authority, Get()));
  // A header matcher on :path sees the query; url_path does not.
  CHECK(Allowed(AllowIf("{header: {name: ':path', string_match: {suffix: 'q=1'}}}"),
                Get("/pay?q=1")));

  Engine path = AllowIf("{url_path: {path: {exact: /pay}}}");
  CHECK(Allowed(path, Get("/pay")));
  CHECK(Allowed(path, Get("/pay?x=/other")));
  CHECK(Allowed(path, Get("/pay#frag")));
  CHECK_FALSE(Allowed(path, Get("/pay/more")));
  CHECK_FALSE(Allowed(path, Get("")));
  Engine regex = AllowIf("{url_path: {path: {safe_regex: {regex: '/v[0-9]+/.*'}}}}");
  CHECK(Allowed(regex, Get("/v2/items?x")));
  CHECK_FALSE(Allowed(regex, Get("/vx/items")));
  Engine icase = AllowIf("{url_path: {path: {prefix: /API, ignore_case: true}}}");
  CHECK(Allowed(icase, Get("/api/x")));
}

TEST_CASE("RBAC permissions: destination ip, port, port range; requested server name") {
  RequestInfo r = Get();
  CHECK(Allowed(AllowIf("{destination_ip: {address_prefix: 10.0.0.0, prefix_len: 24}}"), r));
  CHECK_FALSE(Allowed(AllowIf("{destination_ip: {address_prefix: 10.0.1.0, prefix_len: 24}}"), r));
  CHECK(Allowed(AllowIf("{destination_port: 8080}"), r));
  CHECK_FALSE(Allowed(AllowIf("{destination_port: 8081}"), r));
  // [start, end): end exclusive.
  CHECK(Allowed(AllowIf("{destination_port_range: {start: 8000, end: 8081}}"), r));
  CHECK_FALSE(Allowed(AllowIf("{destination_port_range: {start: 8000, end: 8080}}"), r));
  r.destination.reset();
  CHECK_FALSE(Allowed(AllowIf("{destination_port: 8080}"), r));
  CHECK_FALSE(Allowed(AllowIf("{destination_ip: {address_prefix: 0.0.0.0}}"), r));

  Engine sni = AllowIf("{requested_server_name: {suffix: .example.com}}");
  r = Get();
  CHECK_FALSE(Allowed(sni, r));  // no TLS: empty SNI
  r.requested_server_name = "api.example.com";
  CHECK(Allowed(sni, r));
}

TEST_CASE("RBAC principals: source_ip, direct_remote_ip and remote_ip, IPv4 and IPv6") {
  RequestInfo r = Get();
  r.source = Ep("2001:db8:1::5", 5000);
  CHECK(Allowed(
      AllowIf("{any: true}", "{source_ip: {address_prefix: '2001:db8::', prefix_len: 32}}"), r));
  CHECK_FALSE(Allowed(
      AllowIf("{any: true}", "{source_ip: {address_prefix: '2001:db9::', prefix_len: 32}}"), r));
  // Host bits past the prefix are ignored, as Envoy masks them.
  CHECK(Allowed(
      AllowIf("{any: true}", "{source_ip: {address_prefix: '2001:db8:1::ffff', prefix_len: 48}}"),
      r));
  CHECK(Allowed(
      AllowIf("{any: true}", "{source_ip: {address_prefix: '2001:db8:1::5', prefix_len: 128}}"),
      r));
  // No prefix_len: every address of the family.
  CHECK(Allowed(AllowIf("{any: true}", "{source_ip: {address_prefix: '::'}}"), r));
  // Families never mix, not even through an IPv4-mapped address.
  CHECK_FALSE(Allowed(AllowIf("{any: true}", "{source_ip: {address_prefix: 0.0.0.0}}"), r));
  r.source = Ep("::ffff:10.1.2.3");
  CHECK_FALSE(
      Allowed(AllowIf("{any: true}", "{source_ip: {address_prefix: 10.0.0.0, prefix_len: 8}}"), r));
  // A /17 splits a byte.
  r.source = Ep("10.1.127.1");
  Engine half = AllowIf("{any: true}", "{source_ip: {address_prefix: 10.1.0.0, prefix_len: 17}}");
  CHECK(Allowed(half, r));
  r.source = Ep("10.1.128.1");
  CHECK_FALSE(Allowed(half, r));

  // direct_remote_ip and remote_ip fall back to the connection's peer; remote_ip follows the
  // client address the connection manager derived (x-forwarded-for).
  Engine direct =
      AllowIf("{any: true}", "{direct_remote_ip: {address_prefix: 10.1.0.0, prefix_len: 16}}");
  Engine remote =
      AllowIf("{any: true}", "{remote_ip: {address_prefix: 203.0.113.0, prefix_len: 24}}");
  r = Get();
  CHECK(Allowed(direct, r));
  CHECK_FALSE(Allowed(remote, r));
  r.remote = Ep("203.0.113.7");
  CHECK(Allowed(remote, r));
  CHECK(Allowed(direct, r));
  r.direct_remote = Ep("198.51.100.1");
  CHECK_FALSE(Allowed(direct, r));
  RequestInfo none;
  CHECK_FALSE(Allowed(direct, none));
  CHECK_FALSE(Allowed(remote, none));
  CHECK_FALSE(Allowed(AllowIf("{any: true}", "{source_ip: {address_prefix: '::'}}"), none));
}

TEST_CASE("RBAC principals: authenticated matches the peer identity only over TLS") {
  Engine spiffe =
      AllowIf("{any: true}",
              "{authenticated: {principal_name: {exact: 'spiffe://weft/ns/default/sa/web'}}}");
  Engine anyone = AllowIf("{any: true}", "{authenticated: {}}");
  RequestInfo r = Get();
  CHECK_FALSE(Allowed(spiffe, r));  // plaintext: never, as Envoy without TLS
  CHECK_FALSE(Allowed(anyone, r));

  PeerCertificate peer;
  r.tls = &peer;
  CHECK(Allowed(anyone, r));  // a TLS connection, any subject
  CHECK_FALSE(Allowed(spiffe, r));
  peer.uri_sans = {"spiffe://weft/ns/default/sa/api", "spiffe://weft/ns/default/sa/web"};
  CHECK(Allowed(spiffe, r));  // any URI SAN
  peer.uri_sans = {"spiffe://weft/ns/default/sa/api"};
  CHECK_FALSE(Allowed(spiffe, r));
  Engine dns = AllowIf("{any: true}", "{authenticated: {principal_name: {suffix: .svc.local}}}");
  peer.dns_sans = {"web.svc.local"};
  CHECK(Allowed(dns, r));  // DNS SANs are tried after the URI SANs
  Engine subject = AllowIf("{any: true}", "{authenticated: {principal_name: {prefix: 'CN=web'}}}");
  CHECK_FALSE(Allowed(subject, r));
  peer.subject = "CN=web,O=weft";
  CHECK(Allowed(subject, r));  // then the subject
}

TEST_CASE("RBAC: and / or / not nest for permissions and principals") {
  // (path /pay* AND method POST) OR NOT (header x-debug present)
  Engine e = AllowIf(R"({or_rules: {rules: [
      {and_rules: {rules: [{url_path: {path: {prefix: /pay}}},
                           {header: {name: ':method', string_match: {exact: POST}}}]}},
      {not_rule: {header: {name: x-debug, present_match: true}}}]}})",
                     R"({and_ids: {ids: [
      {not_id: {source_ip: {address_prefix: 10.9.0.0, prefix_len: 16}}},
      {or_ids: {ids: [{source_ip: {address_prefix: 10.1.0.0, prefix_len: 16}},
                      {remote_ip: {address_prefix: '2001:db8::', prefix_len: 32}}]}}]}})");
  FakeHeaders debug{{"x-debug", "1"}};
  RequestInfo r = Get("/pay/1", &debug);
  CHECK_FALSE(Allowed(e, r));  // GET with x-debug: neither branch of the or
  r.line.method = "POST";
  CHECK(Allowed(e, r));  // the and branch
  r = Get("/other");
  CHECK(Allowed(e, r));  // the not branch (no x-debug)
  r.source = Ep("10.9.0.1");
  CHECK_FALSE(Allowed(e, r));  // the not_id excludes 10.9/16
  r.source = Ep("172.16.0.1");
  CHECK_FALSE(Allowed(e, r));  // not in the or_ids
  r.remote = Ep("2001:db8::1");
  CHECK(Allowed(e, r));
}

TEST_CASE("RBAC filter: enforced and shadow rules decide separately") {
  auto config = RbacFilterConfig::Create(FromYaml<FilterProto>(R"(
rules:
  action: ALLOW
  policies:
    health: {permissions: [{url_path: {path: {exact: /healthz}}}], principals: [{any: true}]}
shadow_rules:
  action: DENY
  policies:
    no-admin: {permissions: [{url_path: {path: {prefix: /admin}}}], principals: [{any: true}]}
)"));
  REQUIRE(config.ok());
  auto r = (*config)->Evaluate(Get("/admin"));
  REQUIRE(r.enforced.has_value());
  REQUIRE(r.shadow.has_value());
  CHECK_FALSE(r.enforced->allowed);
  CHECK_FALSE(r.shadow->allowed);
  CHECK(r.shadow->matched_policy == "no-admin");
  r = (*config)->Evaluate(Get("/healthz"));
  CHECK(r.enforced->allowed);
  CHECK(r.shadow->allowed);

  // Shadow only: nothing is enforced.
  auto shadow_only = RbacFilterConfig::Create(FromYaml<FilterProto>(R"(
shadow_rules: {action: ALLOW}
)"));
  REQUIRE(shadow_only.ok());
  r = (*shadow_only)->Evaluate(Get());
  CHECK_FALSE(r.enforced.has_value());
  REQUIRE(r.shadow.has_value());
  CHECK_FALSE(r.shadow->allowed);
  CHECK((*shadow_only)->rules() == nullptr);

  auto empty = RbacFilterConfig::Create(FilterProto());
  REQUIRE(empty.ok());
  r = (*empty)->Evaluate(Get());
  CHECK_FALSE(r.enforced.has_value());
  CHECK_FALSE(r.shadow.has_value());
}

TEST_CASE("RBAC filter: stat names as Envoy's, with and without the prefixes") {
  auto plain = RbacFilterConfig::Create(FilterProto());
  REQUIRE(plain.ok());
  const StatNames& n = (*plain)->stat_names();
  CHECK(n.allowed == "rbac.allowed");
  CHECK(n.denied == "rbac.denied");
  CHECK(n.shadow_allowed == "rbac.shadow_allowed");
  CHECK(n.shadow_denied == "rbac.shadow_denied");
  CHECK(n.policy_prefix == "rbac.policy.");
  CHECK(n.shadow_policy_prefix == "rbac.policy.");

  auto prefixed = RbacFilterConfig::Create(FromYaml<FilterProto>(R"(
rules_stat_prefix: authz
shadow_rules_stat_prefix: trial
track_per_rule_stats: true
)"));
  REQUIRE(prefixed.ok());
  const StatNames& p = (*prefixed)->stat_names();
  CHECK(p.allowed == "rbac.authz.allowed");
  CHECK(p.denied == "rbac.authz.denied");
  CHECK(p.shadow_allowed == "rbac.authz.trial.shadow_allowed");
  CHECK(p.shadow_denied == "rbac.authz.trial.shadow_denied");
  CHECK(p.policy_prefix == "rbac.authz.policy.");
  CHECK(p.shadow_policy_prefix == "rbac.authz.trial.policy.");
  CHECK((*prefixed)->track_per_rule_stats());

  CHECK(ResponseCodeDetails("") == "rbac_access_denied_matched_policy[none]");
  CHECK(ResponseCodeDetails("ns a\tb") == "rbac_access_denied_matched_policy[ns_a_b]");
}

TEST_CASE("RBAC: unsupported or invalid config is refused with its field path") {
  auto refused = [](std::string_view permission, std::string_view principal = "{any: true}") {
    return CreateError(absl::StrCat("action: ALLOW\npolicies:\n  p:\n    permissions: [",
                                    Sv(permission), "]\n    principals: [", Sv(principal), "]\n"));
  };
  const std::string p0 = "policies[\"p\"].permissions[0]";
  const std::string i0 = "policies[\"p\"].principals[0]";
  CHECK_THAT(refused("{metadata: {filter: f, path: [{key: k}], value: {present_match: true}}}"),
             Contains(p0 + ".metadata: is not supported"));
  CHECK_THAT(refused("{matcher: {name: m}}"), Contains(p0 + ".matcher: is not supported"));
  CHECK_THAT(refused("{uri_template: {name: t}}"),
             Contains(p0 + ".uri_template: is not supported"));
  CHECK_THAT(refused("{not_rule: {metadata: {filter: f}}}"),
             Contains(p0 + ".not_rule.metadata: is not supported"));
  CHECK_THAT(refused("{any: true}", "{metadata: {filter: f}}"),
             Contains(i0 + ".metadata: is not supported"));
  CHECK_THAT(refused("{any: true}", "{or_ids: {ids: [{any: true}, {metadata: {filter: f}}]}}"),
             Contains(i0 + ".or_ids.ids[1].metadata: is not supported"));
  CHECK_THAT(refused("{}"), Contains(p0 + ": one of and_rules"));
  CHECK_THAT(refused("{any: true}", "{}"), Contains(i0 + ": one of and_ids"));
  CHECK_THAT(refused("{any: false}"), Contains(p0 + ".any: must be true"));
  CHECK_THAT(refused("{and_rules: {rules: []}}"),
             Contains(p0 + ".and_rules.rules: must not be empty"));
  CHECK_THAT(refused("{destination_port: 70000}"),
             Contains(p0 + ".destination_port: must be at most 65535"));
  CHECK_THAT(refused("{destination_port_range: {start: 90, end: 80}}"),
             Contains(p0 + ".destination_port_range: needs 0 <= start < end"));
  CHECK_THAT(refused("{destination_ip: {address_prefix: 10.0.0.300}}"),
             Contains(p0 + ".destination_ip.address_prefix: not a numeric IPv4 or IPv6 address"));
  CHECK_THAT(refused("{any: true}", "{source_ip: {address_prefix: 10.0.0.0, prefix_len: 33}}"),
             Contains(i0 + ".source_ip.prefix_len: must be at most 32"));
  CHECK_THAT(refused("{any: true}", "{remote_ip: {address_prefix: '::1', prefix_len: 129}}"),
             Contains(i0 + ".remote_ip.prefix_len: must be at most 128"));
  CHECK_THAT(refused("{any: true}", "{direct_remote_ip: {address_prefix: 'example.com'}}"),
             Contains(i0 + ".direct_remote_ip.address_prefix"));
  CHECK_THAT(refused("{header: {name: x, string_match: {safe_regex: {regex: '('}}}}"),
             Contains(p0 + ".header.string_match.safe_regex.regex: invalid regex"));
  CHECK_THAT(refused("{url_path: {path: {safe_regex: {regex: '[a'}}}}"),
             Contains(p0 + ".url_path.path.safe_regex.regex: invalid regex"));
  CHECK_THAT(refused("{url_path: {}}"), Contains(p0 + ".url_path.path: must be set"));
  CHECK_THAT(
      refused("{any: true}", "{authenticated: {principal_name: {safe_regex: {regex: '*'}}}}"),
      Contains(i0 + ".authenticated.principal_name.safe_regex.regex: invalid regex"));
  CHECK_THAT(refused("{requested_server_name: {}}"),
             Contains(p0 + ".requested_server_name: one of exact"));
  CHECK_THAT(CreateError("policies: {p: {principals: [{any: true}]}}"),
             Contains("policies[\"p\"].permissions: must not be empty"));
  CHECK_THAT(CreateError("policies: {p: {permissions: [{any: true}]}}"),
             Contains("policies[\"p\"].principals: must not be empty"));
  CHECK_THAT(CreateError("audit_logging_options: {audit_condition: ON_DENY}"),
             Contains("audit_logging_options: is not supported"));
  CHECK(Engine::Create(FromYaml<ProtoRbac>("audit_logging_options: {}")).ok());
}

TEST_CASE("RBAC: fields outside our proto subset are refused, not dropped") {
  // An upstream Policy's CEL `condition` (field 3) is not in our subset: it must not vanish.
  FilterProto config = FromYaml<FilterProto>(R"(
rules:
  policies:
    p: {permissions: [{any: true}], principals: [{any: true}]}
)");
  auto& policy = (*config.mutable_rules()->mutable_policies())["p"];
  policy.GetReflection()->MutableUnknownFields(&policy)->AddLengthDelimited(3, "");
  auto created = RbacFilterConfig::Create(config);
  REQUIRE_FALSE(created.ok());
  CHECK_THAT(std::string(created.status().message()),
             Contains("rules.policies[\"p\"]: field number 3 is not supported"));
  // The xds matcher (field 4 of the filter config) likewise.
  FilterProto matcher;
  matcher.GetReflection()->MutableUnknownFields(&matcher)->AddLengthDelimited(4, "");
  CHECK_FALSE(RbacFilterConfig::Create(matcher).ok());
}

TEST_CASE("RBAC: the shared validators run the same check inside a listener") {
  FilterProto config = FromYaml<FilterProto>(R"(
shadow_rules:
  policies:
    p: {permissions: [{any: true}], principals: [{source_ip: {address_prefix: 10.0.0.0, prefix_len: 40}}]}
)");
  auto errors = weft::testing::ValidateListenerWithFilter(config);
  CHECK(HasError(errors, {"filter_chains[0].filters[0].typed_config.http_filters[0].typed_config."
                          "shadow_rules.policies[\"p\"].principals[0].source_ip.prefix_len: "
                          "must be at most 32"}));
  config = FromYaml<FilterProto>(R"(
rules:
  policies:
    p: {permissions: [{destination_port_range: {start: 1, end: 0}}], principals: [{any: true}]}
)");
  errors = weft::testing::ValidateListenerWithFilter(config);
  CHECK(HasError(errors, {"http_filters[0].typed_config.rules.policies[\"p\"].permissions[0]."
                          "destination_port_range"}));
}

}  // namespace
}  // namespace weft::http::rbac
