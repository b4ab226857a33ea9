#include "data-plane/http/filters/rbac/rbac.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/strings.h"
#include "common/xds/rbac_check.h"

namespace weft::http::rbac {

namespace proto = envoy::config::rbac::v3;
using ValidationScope = ValidationErrors::Scope;

// One node of a permission or principal tree. A flat struct rather than a class per kind: the
// tree is built once and only walked, and one switch keeps every rule in one place.
struct Engine::Matcher {
  enum class Kind {
    kAnd,
    kOr,
    kNot,
    kAny,
    kHeader,
    kUrlPath,
    kDestinationIp,
    kDestinationPortRange,  // destination_port too, as [port, port + 1)
    kRequestedServerName,
    kAuthenticated,
    kSourceIp,
    kDirectRemoteIp,
    kRemoteIp,
  };
  Kind kind = Kind::kAny;
  std::vector<Matcher> children;                // and / or / not (one)
  std::optional<router::HeaderMatcher> header;  // kHeader
  std::optional<router::StringMatcher> string;  // path, SNI, authenticated (unset: any peer)
  std::optional<xds::CidrRange> cidr;           // the IP kinds
  uint32_t port_start = 0;                      // kDestinationPortRange, end exclusive
  uint32_t port_end = 0;

  bool Match(const RequestInfo& r, const router::HeaderLookup* headers) const;
};

namespace {

using Matcher = Engine::Matcher;
using Kind = Matcher::Kind;

const Endpoint* DirectRemote(const RequestInfo& r) {
  if (r.direct_remote) return &*r.direct_remote;
  return r.source ? &*r.source : nullptr;
}
const Endpoint* Remote(const RequestInfo& r) { return r.remote ? &*r.remote : DirectRemote(r); }

bool InRange(const std::optional<xds::CidrRange>& cidr, const Endpoint* e) {
  return e != nullptr && cidr->Contains(e->ip);
}

// Envoy's AuthenticatedMatcher: any URI SAN, then any DNS SAN, then the subject.
bool MatchPeer(const router::StringMatcher& m, const PeerCertificate& peer) {
  for (const std::string& uri : peer.uri_sans) {
    if (m.Match(uri)) return true;
  }
  for (const std::string& dns : peer.dns_sans) {
    if (m.Match(dns)) return true;
  }
  return m.Match(peer.subject);
}

// Compilation. The config was checked (CheckRbacRules) first, so the compile functions below
// only fail where the router's matchers find something the check did not; they still record it.
Matcher CompileString(Kind kind, const envoy::type::matcher::v3::StringMatcher& m,
                      ValidationErrors* errors) {
  Matcher out;
  out.kind = kind;
  out.string = router::StringMatcher::Compile(m, errors);
  return out;
}

Matcher CompileCidr(Kind kind, const envoy::config::core::v3::CidrRange& range,
                    ValidationErrors* errors) {
  Matcher out;
  out.kind = kind;
  out.cidr = xds::CidrRange::Create(range, errors);
  return out;
}

Matcher CompileHeader(const envoy::config::route::v3::HeaderMatcher& h, ValidationErrors* errors) {
  Matcher out;
  out.kind = Kind::kHeader;
  ValidationScope s(errors, "header");
  out.header = router::HeaderMatcher::Compile(h, errors);
  return out;
}

Matcher CompilePath(const envoy::type::matcher::v3::PathMatcher& p, ValidationErrors* errors) {
  ValidationScope s(errors, "url_path.path");
  return CompileString(Kind::kUrlPath, p.path(), errors);
}

template <typename Items, typename CompileOne>
Matcher CompileSet(Kind kind, const Items& items, CompileOne compile_one,
                   ValidationErrors* errors) {
  Matcher out;
  out.kind = kind;
  out.children.reserve(items.size());
  for (int i = 0; i < items.size(); ++i) {
    ValidationScope s(errors, absl::StrCat("[", i, "]"));
    out.children.push_back(compile_one(items.Get(i), errors));
  }
  return out;
}

Matcher Not(Matcher inner) {
  Matcher out;
  out.kind = Kind::kNot;
  out.children.push_back(std::move(inner));
  return out;
}

Matcher CompilePermission(const proto::Permission& p, ValidationErrors* errors) {
  switch (p.rule_case()) {
    case proto::Permission::kAndRules: {
      ValidationScope s(errors, "and_rules.rules");
      return CompileSet(Kind::kAnd, p.and_rules().rules(), CompilePermission, errors);
    }
    case proto::Permission::kOrRules: {
      ValidationScope s(errors, "or_rules.rules");
      return CompileSet(Kind::kOr, p.or_rules().rules(), CompilePermission, errors);
    }
    case proto::Permission::kHeader:
      return CompileHeader(p.header(), errors);
    case proto::Permission::kUrlPath:
      return CompilePath(p.url_path(), errors);
    case proto::Permission::kDestinationIp: {
      ValidationScope s(errors, "destination_ip");
      return CompileCidr(Kind::kDestinationIp, p.destination_ip(), errors);
    }
    case proto::Permission::kDestinationPort: {
      Matcher out;
      out.kind = Kind::kDestinationPortRange;
      out.port_start = p.destination_port();
      out.port_end = p.destination_port() + 1;
      return out;
    }
    case proto::Permission::kDestinationPortRange: {
      Matcher out;
      out.kind = Kind::kDestinationPortRange;
      out.port_start = static_cast<uint32_t>(p.destination_port_range().start());
      out.port_end = static_cast<uint32_t>(p.destination_port_range().end());
      return out;
    }
    case proto::Permission::kNotRule: {
      ValidationScope s(errors, "not_rule");
      return Not(CompilePermission(p.not_rule(), errors));
    }
    case proto::Permission::kRequestedServerName: {
      ValidationScope s(errors, "requested_server_name");
      return CompileString(Kind::kRequestedServerName, p.requested_server_name(), errors);
    }
    case proto::Permission::kAny:
      return Matcher{};
    default:
      // Refused by CheckRbacRules; recorded again in case a caller skipped the check.
      errors->Add("unsupported permission");
      return Matcher{};
  }
}

Matcher CompilePrincipal(const proto::Principal& p, ValidationErrors* errors) {
  switch (p.identifier_case()) {
    case proto::Principal::kAndIds: {
      ValidationScope s(errors, "and_ids.ids");
      return CompileSet(Kind::kAnd, p.and_ids().ids(), CompilePrincipal, errors);
    }
    case proto::Principal::kOrIds: {
      ValidationScope s(errors, "or_ids.ids");
      return CompileSet(Kind::kOr, p.or_ids().ids(), CompilePrincipal, errors);
    }
    case proto::Principal::kAuthenticated: {
      Matcher out;
      out.kind = Kind::kAuthenticated;
      if (p.authenticated().has_principal_name()) {
        ValidationScope s(errors, "authenticated.principal_name");
        out.string = router::StringMatcher::Compile(p.authenticated().principal_name(), errors);
      }
      return out;
    }
    case proto::Principal::kSourceIp: {
      ValidationScope s(errors, "source_ip");
      return CompileCidr(Kind::kSourceIp, p.source_ip(), errors);
    }
    case proto::Principal::kDirectRemoteIp: {
      ValidationScope s(errors, "direct_remote_ip");
      return CompileCidr(Kind::kDirectRemoteIp, p.direct_remote_ip(), errors);
    }
    case proto::Principal::kRemoteIp: {
      ValidationScope s(errors, "remote_ip");
      return CompileCidr(Kind::kRemoteIp, p.remote_ip(), errors);
    }
    case proto::Principal::kHeader:
      return CompileHeader(p.header(), errors);
    case proto::Principal::kUrlPath:
      return CompilePath(p.url_path(), errors);
    case proto::Principal::kNotId: {
      ValidationScope s(errors, "not_id");
      return Not(CompilePrincipal(p.not_id(), errors));
    }
    case proto::Principal::kAny:
      return Matcher{};
    default:
      errors->Add("unsupported principal");
      return Matcher{};
  }
}

bool AnyMatch(const std::vector<Matcher>& ms, const RequestInfo& r,
              const router::HeaderLookup* headers) {
  for (const Matcher& m : ms) {
    if (m.Match(r, headers)) return true;
  }
  return false;
}

}  // namespace

bool Engine::Matcher::Match(const RequestInfo& r, const router::HeaderLookup* headers) const {
  switch (kind) {
    case Kind::kAnd:
      for (const Matcher& m : children) {
        if (!m.Match(r, headers)) return false;
      }
      return true;
    case Kind::kOr:
      return AnyMatch(children, r, headers);
    case Kind::kNot:
      return !children[0].Match(r, headers);
    case Kind::kAny:
      return true;
    case Kind::kHeader:
      return header->Match(headers);
    case Kind::kUrlPath: {
      // Envoy matches the path without query and fragment; no path, no match.
      const std::string_view path = r.line.path;
      if (path.empty()) return false;
      return string->Match(path.substr(0, path.find_first_of("?#")));
    }
    case Kind::kDestinationIp:
      return InRange(cidr, r.destination ? &*r.destination : nullptr);
    case Kind::kDestinationPortRange:
      return r.destination && r.destination->port >= port_start && r.destination->port < port_end;
    case Kind::kRequestedServerName:
      return string->Match(r.requested_server_name);
    case Kind::kAuthenticated:
      if (r.tls == nullptr) return false;  // the connection was not authenticated
      return !string || MatchPeer(*string, *r.tls);
    case Kind::kSourceIp:
      return InRange(cidr, r.source ? &*r.source : nullptr);
    case Kind::kDirectRemoteIp:
      return InRange(cidr, DirectRemote(r));
    case Kind::kRemoteIp:
      return InRange(cidr, Remote(r));
  }
  return false;
}

Engine::Engine() = default;
Engine::Engine(Engine&&) noexcept = default;
Engine& Engine::operator=(Engine&&) noexcept = default;
Engine::~Engine() = default;

absl::StatusOr<Engine> Engine::Create(const proto::RBAC& rules) {
  ValidationErrors errors;
  xds::CheckRbacRules(rules, &errors);
  if (!errors.ok()) return errors.ToStatus("RBAC: ");
  Engine engine;
  switch (rules.action()) {
    case proto::RBAC::DENY:
      engine.action_ = Action::kDeny;
      break;
    case proto::RBAC::LOG:
      engine.action_ = Action::kLog;
      break;
    default:
      engine.action_ = Action::kAllow;
      break;
  }
  for (const auto& [name, p] : rules.policies()) {
    ValidationScope s(&errors, absl::StrCat("policies[\"", name, "\"]"));
    Policy policy;
    policy.name = name;
    {
      ValidationScope ps(&errors, "permissions");
      policy.permissions =
          CompileSet(Kind::kOr, p.permissions(), CompilePermission, &errors).children;
    }
    {
      ValidationScope ps(&errors, "principals");
      policy.principals = CompileSet(Kind::kOr, p.principals(), CompilePrincipal, &errors).children;
    }
    engine.policies_.push_back(std::move(policy));
  }
  if (!errors.ok()) return errors.ToStatus("RBAC: ");
  std::sort(engine.policies_.begin(), engine.policies_.end(),
            [](const Policy& a, const Policy& b) { return a.name < b.name; });
  return engine;
}

Decision Engine::Evaluate(const RequestInfo& request) const {
  RequestHeaders headers(request.line, request.headers);
  const Policy* matched = nullptr;
  for (const Policy& p : policies_) {
    if (AnyMatch(p.permissions, request, &headers) && AnyMatch(p.principals, request, &headers)) {
      matched = &p;
      break;
    }
  }
  Decision d;
  if (matched != nullptr) d.matched_policy = matched->name;
  switch (action_) {
    case Action::kAllow:
      d.allowed = matched != nullptr;
      break;
    case Action::kDeny:
      d.allowed = matched == nullptr;
      break;
    case Action::kLog:
      d.allowed = true;
      d.should_log = matched != nullptr;
      break;
  }
  return d;
}

namespace {

// Envoy's statPrefixJoin: a '.' between the two unless the first is empty or ends with one.
std::string Join(std::string_view prefix, std::string_view token) {
  if (prefix.empty()) return std::string(token);
  if (prefix.back() == '.') return absl::StrCat(Sv(prefix), Sv(token));
  return absl::StrCat(Sv(prefix), ".", Sv(token));
}

StatNames MakeStatNames(std::string_view rules_prefix, std::string_view shadow_prefix) {
  const std::string enforced = Join("rbac.", rules_prefix);
  const std::string shadow = Join(enforced, shadow_prefix);
  StatNames n;
  n.allowed = Join(enforced, "allowed");
  n.denied = Join(enforced, "denied");
  n.shadow_allowed = Join(shadow, "shadow_allowed");
  n.shadow_denied = Join(shadow, "shadow_denied");
  n.policy_prefix = Join(enforced, "policy.");
  n.shadow_policy_prefix = Join(shadow, "policy.");
  return n;
}

}  // namespace

absl::StatusOr<std::shared_ptr<const RbacFilterConfig>> RbacFilterConfig::Create(
    const envoy::extensions::filters::http::rbac::v3::RBAC& config) {
  ValidationErrors errors;
  xds::CheckRbacFilter(config, &errors);
  if (!errors.ok()) return errors.ToStatus("RBAC filter: ");
  std::shared_ptr<RbacFilterConfig> out(new RbacFilterConfig());
  if (config.has_rules()) {
    auto engine = Engine::Create(config.rules());
    if (!engine.ok()) return engine.status();
    out->rules_.emplace(*std::move(engine));
  }
  if (config.has_shadow_rules()) {
    auto engine = Engine::Create(config.shadow_rules());
    if (!engine.ok()) return engine.status();
    out->shadow_.emplace(*std::move(engine));
  }
  out->stats_ = MakeStatNames(config.rules_stat_prefix(), config.shadow_rules_stat_prefix());
  out->track_per_rule_stats_ = config.track_per_rule_stats();
  return std::shared_ptr<const RbacFilterConfig>(std::move(out));
}

RbacFilterConfig::Result RbacFilterConfig::Evaluate(const RequestInfo& request) const {
  Result r;
  if (shadow_) r.shadow = shadow_->Evaluate(request);
  if (rules_) r.enforced = rules_->Evaluate(request);
  return r;
}

std::string ResponseCodeDetails(std::string_view matched_policy) {
  std::string name = matched_policy.empty() ? std::string("none") : std::string(matched_policy);
  for (char& c : name) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') c = '_';
  }
  return absl::StrCat("rbac_access_denied_matched_policy[", name, "]");
}

}  // namespace weft::http::rbac
