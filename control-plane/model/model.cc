#include "control-plane/model/model.h"

#include "common/status.h"
#include "control-plane/model/model_state.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <tuple>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/proto_util.h"
#include "common/strings.h"
#include "common/validation.h"
#include "common/xds/validate.h"
#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"
#include "envoy/config/listener/v3/listener.pb.h"
#include "envoy/config/rbac/v3/rbac.pb.h"
#include "envoy/config/route/v3/route.pb.h"
#include "envoy/extensions/filters/http/rbac/v3/rbac.pb.h"
#include "envoy/extensions/filters/http/router/v3/router.pb.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb.h"
#include "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.pb.h"
#include "envoy/extensions/transport_sockets/tls/v3/tls.pb.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "re2/re2.h"

namespace weft::cp {
namespace {

namespace cfg = ::weft::config::v1;
namespace ec = ::envoy::config;
using HttpConnectionManager =
    ::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
using ::envoy::extensions::filters::http::router::v3::Router;
using ::google::protobuf::Any;
using ::google::protobuf::Duration;
using Scope = ValidationErrors::Scope;

constexpr std::string_view kKinds = "Service, Route, Policy or AuthorizationPolicy";

// What weft-proxy does not apply yet is refused here, with the reason, rather than translated
// into resources the proxy would NACK (or, worse, accepted and not enforced).
struct NotYet {
  std::string_view tcp =
      "TCP ports are not proxied by weft-proxy yet (no TCP proxy); refused rather than ignored";
  std::string_view health_check =
      "active health checks are not run by weft-proxy yet; refused rather than ignored";
  std::string_view outlier_detection =
      "outlier detection is not done by weft-proxy yet; refused rather than ignored";
  std::string_view circuit_breakers =
      "circuit breakers are not enforced by weft-proxy yet; refused rather than ignored";
};
constexpr NotYet kNotYet;
constexpr uint64_t kMaxRingSize = 8388608;  // Envoy's limit
constexpr uint32_t kMaxRetries = 100;       // same cap as the proxy's validator
constexpr std::string_view kAnyDomain = "*";

std::string Indexed(std::string_view field, size_t i) {
  return absl::StrCat(Sv(field), "[", i, "]");
}

std::string NamespaceOf(const std::string& ns) {
  return ns.empty() ? std::string(kDefaultNamespace) : ns;
}

// ---------------------------------------------------------------------------------------------
// Small checks

re2::StringPiece Rs(std::string_view s) { return re2::StringPiece(s.data(), s.size()); }

bool IsDnsLabel(std::string_view s) {
  static const RE2 kLabel("[a-z0-9]([-a-z0-9]*[a-z0-9])?");
  return s.size() <= 63 && RE2::FullMatch(Rs(s), kLabel);
}

void CheckDnsLabel(const std::string& value, std::string_view field, ValidationErrors* errors) {
  if (value.empty()) {
    errors->AddAt(field, "must not be empty");
  } else if (!IsDnsLabel(value)) {
    errors->AddAt(field, absl::StrCat("invalid name \"", value,
                                      "\": must be a DNS label (lower-case letters, digits and "
                                      "'-', at most 63 characters)"));
  }
}

bool IsHostname(std::string_view s) {
  static const RE2 kHost(
      "[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*\\.?");
  if (s.empty() || s.size() > 253 || !RE2::FullMatch(Rs(s), kHost)) return false;
  size_t start = 0;
  while (start < s.size()) {
    size_t dot = s.find('.', start);
    if (dot == std::string_view::npos) dot = s.size();
    if (dot - start > 63) return false;
    start = dot + 1;
  }
  return true;
}

bool IsIpLiteral(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

bool IsValidDuration(const Duration& d) {
  return d.nanos() > -1000000000 && d.nanos() < 1000000000 &&
         !((d.seconds() > 0 && d.nanos() < 0) || (d.seconds() < 0 && d.nanos() > 0));
}

void CheckPositiveDuration(bool has, const Duration& d, std::string_view field,
                           ValidationErrors* errors) {
  if (!has) return;
  if (!IsValidDuration(d) || d.seconds() < 0 || (d.seconds() == 0 && d.nanos() <= 0)) {
    errors->AddAt(field, "must be greater than 0");
  }
}

void CheckRegex(const std::string& pattern, std::string_view field, ValidationErrors* errors) {
  if (pattern.empty()) {
    errors->AddAt(field, "must not be empty");
    return;
  }
  RE2 re(pattern, RE2::Quiet);
  if (!re.ok()) {
    errors->AddAt(field, absl::StrCat("invalid regex \"", pattern, "\": ", re.error()));
  }
}

// RFC 7230 token characters; Envoy refuses anything else in a header name.
bool IsHeaderName(std::string_view s) {
  static const RE2 kToken("[A-Za-z0-9!#$%&'*+.^_`|~-]+");
  return RE2::FullMatch(Rs(s), kToken);
}

void CheckHeaderName(const std::string& name, std::string_view field, ValidationErrors* errors) {
  if (name.empty()) {
    errors->AddAt(field, "must not be empty");
  } else if (!IsHeaderName(name)) {
    errors->AddAt(field, absl::StrCat("invalid header name \"", name, "\""));
  }
}

// Route host: a domain with '*' only as its first or last character, optionally ":port".
bool IsRouteHost(const std::string& h) {
  static const RE2 kChars("[A-Za-z0-9.*:\\[\\]-]+");
  if (h.empty() || !RE2::FullMatch(h, kChars)) return false;
  size_t star = h.find('*');
  if (star == std::string::npos || h == "*") return true;
  if (h.find('*', star + 1) != std::string::npos) return false;
  return star == 0 || star == h.size() - 1;
}

const std::set<std::string>& KnownRetryOn() {
  static const auto* kSet = new std::set<std::string>{"5xx",
                                                      "gateway-error",
                                                      "reset",
                                                      "connect-failure",
                                                      "envoy-ratelimited",
                                                      "retriable-4xx",
                                                      "refused-stream",
                                                      "retriable-status-codes",
                                                      "retriable-headers",
                                                      "http3-post-connect-failure",
                                                      "cancelled",
                                                      "deadline-exceeded",
                                                      "internal",
                                                      "resource-exhausted",
                                                      "unavailable"};
  return *kSet;
}
constexpr std::string_view kDefaultRetryOn =
    "connect-failure,refused-stream,unavailable,cancelled,5xx";

// ---------------------------------------------------------------------------------------------
// The object set, indexed. Kept between changes: each change updates the entries of the
// objects it touches, and the reverse indexes say which other objects and outputs depend on
// them (a Route on the services it names, a Policy or AuthorizationPolicy on its service).

using ServiceKey = std::pair<std::string, std::string>;  // (namespace, name)

struct ServiceInfo {
  const cfg::Service* service = nullptr;
  std::string ns;
  std::string key;

  const cfg::ServicePort* Port(uint32_t port) const {
    for (const auto& p : service->ports()) {
      if (p.port() == port) return &p;
    }
    return nullptr;
  }
  std::string PortList() const {
    std::vector<uint32_t> ports;
    for (const auto& p : service->ports()) ports.push_back(p.port());
    return absl::StrJoin(ports, ", ");
  }
};

struct RouteInfo {
  const cfg::Route* route = nullptr;
  std::string ns;
  std::string key;
};

struct PolicyInfo {
  const cfg::Policy* policy = nullptr;
  ServiceKey service;  // (namespace, service) it names
};

struct AuthzInfo {
  const cfg::AuthorizationPolicy* policy = nullptr;
  std::string ns;
  std::string key;
  ServiceKey service;
};

// Where a Route's rules go: service ports (by service) and foreign hosts.
struct RouteTargets {
  std::map<ServiceKey, std::set<uint32_t>> ports;
  std::set<std::string> foreign;
};

struct Index {
  std::map<ServiceKey, ServiceInfo> services;
  std::map<std::string, RouteInfo> routes;     // by key
  std::map<std::string, PolicyInfo> policies;  // by key
  std::map<std::string, AuthzInfo> authz;      // by key
  // Reverse indexes, by the service (namespace, name) an object names, whether or not it
  // exists: routes by a host and by a destination, policies, authorization policies.
  std::map<ServiceKey, std::set<std::string>> routes_by_host;
  std::map<ServiceKey, std::set<std::string>> routes_by_destination;
  std::map<ServiceKey, std::set<std::string>> policies_by_service;
  std::map<ServiceKey, std::set<std::string>> authz_by_service;
  // Where each route's rules are attached, and the reverse.
  std::map<std::string, RouteTargets> targets;                     // by route key
  std::map<ServiceKey, std::set<std::string>> routes_on_service;   // attached routes
  std::map<std::string, std::set<std::string>> routes_on_foreign;  // host -> routes

  const ServiceInfo* FindService(const std::string& ns, const std::string& name) const {
    auto it = services.find({ns, name});
    return it == services.end() ? nullptr : &it->second;
  }
  // The Policy a service is subject to: the first in key order that names it (the others are
  // refused), or null.
  const std::string* PolicyKeyOf(const ServiceKey& service) const {
    auto it = policies_by_service.find(service);
    if (it == policies_by_service.end() || it->second.empty()) return nullptr;
    return &*it->second.begin();
  }
  const cfg::Policy* PolicyOf(const ServiceKey& service) const {
    const std::string* key = PolicyKeyOf(service);
    return key == nullptr ? nullptr : policies.at(*key).policy;
  }
};

template <typename K>
void EraseFrom(std::map<K, std::set<std::string>>* m, const K& k, const std::string& v) {
  auto it = m->find(k);
  if (it == m->end()) return;
  it->second.erase(v);
  if (it->second.empty()) m->erase(it);
}

// A Route host resolved to a service (port 0: every port).
struct HostRef {
  const ServiceInfo* service = nullptr;
  uint32_t port = 0;
};

// Route hosts name services as "name", "name.namespace", optionally with ":port"; a bare name
// means a service in the route's own namespace. Returns the service a host would name, whether
// or not it exists, and the port (0: none); nullopt for what cannot name a service.
std::optional<std::pair<ServiceKey, uint32_t>> HostTarget(const std::string& host,
                                                          const std::string& route_ns) {
  std::string name = host;
  uint32_t port = 0;
  size_t colon = host.rfind(':');
  if (colon != std::string::npos) {
    std::string digits = host.substr(colon + 1);
    if (digits.empty() || digits.size() > 5 ||
        digits.find_first_not_of("0123456789") != std::string::npos) {
      return std::nullopt;
    }
    if (!absl::SimpleAtoi(Sv(digits), &port)) return std::nullopt;
    name = host.substr(0, colon);
  }
  size_t dot = name.find('.');
  if (dot == std::string::npos) return std::make_pair(ServiceKey(route_ns, name), port);
  return std::make_pair(ServiceKey(name.substr(dot + 1), name.substr(0, dot)), port);
}

// The service a host names, if it exists; anything else is a foreign host.
std::optional<HostRef> ResolveHost(const Index& index, const std::string& host,
                                   const std::string& route_ns, bool* bad_port) {
  *bad_port = false;
  auto target = HostTarget(host, route_ns);
  if (!target) return std::nullopt;
  const ServiceInfo* svc = index.FindService(target->first.first, target->first.second);
  if (svc == nullptr) return std::nullopt;
  if (target->second != 0 && svc->Port(target->second) == nullptr) {
    *bad_port = true;
    return std::nullopt;
  }
  return HostRef{svc, target->second};
}

// Where a route's rules go in the current index (Route rules attach per service port; a route
// listing "a" and "a.default" attaches once).
RouteTargets AttachRoute(const Index& index, const RouteInfo& route) {
  RouteTargets out;
  for (const std::string& host : route.route->hosts()) {
    bool bad_port = false;
    std::optional<HostRef> ref = ResolveHost(index, host, route.ns, &bad_port);
    if (bad_port) continue;
    if (!ref) {
      out.foreign.insert(host);
      continue;
    }
    auto& ports = out.ports[{ref->service->ns, ref->service->service->name()}];
    for (const cfg::ServicePort& p : ref->service->service->ports()) {
      if (ref->port == 0 || p.port() == ref->port) ports.insert(p.port());
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Structural validation

class Validator {
 public:
  Validator(const Index& index, ValidationErrors* errors) : index_(&index), errors_(errors) {}

  // Checks one object against the index (its references included); problems are recorded
  // under its key.
  void Validate(const std::string& key, const cfg::ConfigObject& o) {
    Scope s(errors_, key);
    switch (o.object_case()) {
      case cfg::ConfigObject::kService:
        ValidateService(o.service());
        break;
      case cfg::ConfigObject::kRoute:
        ValidateRoute(o.route());
        break;
      case cfg::ConfigObject::kPolicy:
        ValidatePolicy(o.policy(), key);
        break;
      case cfg::ConfigObject::kAuthorizationPolicy:
        ValidateAuthorizationPolicy(o.authorization_policy());
        break;
      case cfg::ConfigObject::OBJECT_NOT_SET:
        errors_->Add("one of service, route, policy or authorization_policy must be set");
        break;
    }
  }

 private:
  void ValidateMeta(const std::string& name, const std::string& ns) {
    CheckDnsLabel(name, "name", errors_);
    if (!ns.empty()) CheckDnsLabel(ns, "namespace", errors_);
  }

  void ValidateService(const cfg::Service& s) {
    ValidateMeta(s.name(), s.namespace_());
    if (s.ports_size() == 0) errors_->AddAt("ports", "must list at least one port");
    std::map<uint32_t, int> ports;
    std::map<std::string, int> port_names;
    for (int i = 0; i < s.ports_size(); ++i) {
      Scope ps(errors_, Indexed("ports", i));
      const cfg::ServicePort& p = s.ports(i);
      if (p.port() < 1 || p.port() > 65535) {
        errors_->AddAt("port", absl::StrCat("must be in 1..65535, got ", p.port()));
      } else if (auto [it, inserted] = ports.emplace(p.port(), i); !inserted) {
        errors_->AddAt(
            "port", absl::StrCat("duplicate port ", p.port(), " (also ports[", it->second, "])"));
      }
      if (!cfg::ServicePort::Protocol_IsValid(p.protocol())) {
        errors_->AddAt("protocol", absl::StrCat("unknown value ", p.protocol()));
      } else if (p.protocol() == cfg::ServicePort::TCP) {
        errors_->AddAt("protocol", kNotYet.tcp);
      }
      if (!p.name().empty()) {
        CheckDnsLabel(p.name(), "name", errors_);
        if (auto [it, inserted] = port_names.emplace(p.name(), i); !inserted) {
          errors_->AddAt("name", absl::StrCat("duplicate port name \"", p.name(), "\" (also ports[",
                                              it->second, "])"));
        }
      }
    }
    std::map<std::tuple<std::string, uint32_t, uint32_t>, int> seen;
    std::map<uint32_t, std::set<uint32_t>> priorities;  // service port -> priorities
    for (int i = 0; i < s.endpoints_size(); ++i) {
      Scope es(errors_, Indexed("endpoints", i));
      const cfg::Endpoint& e = s.endpoints(i);
      if (e.address().empty()) {
        errors_->AddAt("address", "must not be empty");
      } else if (!IsIpLiteral(e.address()) && !IsHostname(e.address())) {
        errors_->AddAt("address", absl::StrCat("invalid address \"", e.address(),
                                               "\": expected an IPv4 or IPv6 literal or a "
                                               "hostname"));
      }
      if (e.port() < 1 || e.port() > 65535) {
        errors_->AddAt("port", absl::StrCat("must be in 1..65535, got ", e.port()));
      }
      if (e.has_weight() && e.weight() < 1) errors_->AddAt("weight", "must be at least 1");
      if (!cfg::Endpoint::Health_IsValid(e.health())) {
        errors_->AddAt("health", absl::StrCat("unknown value ", e.health()));
      }
      uint32_t service_port = 0;
      if (e.has_service_port()) {
        if (!ports.contains(e.service_port())) {
          errors_->AddAt("service_port", absl::StrCat("unknown service port ", e.service_port(),
                                                      " (ports: ", PortList(s), ")"));
        } else {
          service_port = e.service_port();
        }
      } else if (s.ports_size() > 1) {
        errors_->AddAt("service_port", "required when the service has several ports");
      } else if (s.ports_size() == 1) {
        service_port = s.ports(0).port();
      }
      if (service_port != 0) priorities[service_port].insert(e.priority());
      auto [it, inserted] = seen.emplace(std::make_tuple(e.address(), e.port(), service_port), i);
      if (!inserted) {
        errors_->Add(absl::StrCat("duplicate endpoint ", e.address(), ":", e.port(),
                                  " (also endpoints[", it->second, "])"));
      }
    }
    // Envoy and gRPC both NACK a load assignment whose priorities have a gap.
    for (const auto& [port, prios] : priorities) {
      uint32_t expected = 0;
      for (uint32_t p : prios) {
        if (p != expected) {
          errors_->AddAt("endpoints",
                         absl::StrCat("priorities must be contiguous from 0; priority ", expected,
                                      " is missing (service port ", port, ")"));
          break;
        }
        ++expected;
      }
    }
  }

  static std::string PortList(const cfg::Service& s) {
    std::vector<uint32_t> ports;
    for (const auto& p : s.ports()) ports.push_back(p.port());
    return absl::StrJoin(ports, ", ");
  }

  void ValidateRoute(const cfg::Route& r) {
    ValidateMeta(r.name(), r.namespace_());
    const std::string ns = NamespaceOf(r.namespace_());
    if (r.hosts_size() == 0) errors_->AddAt("hosts", "must list at least one host");
    std::set<std::string> hosts;
    for (int i = 0; i < r.hosts_size(); ++i) {
      const std::string& h = r.hosts(i);
      std::string field = Indexed("hosts", i);
      if (!IsRouteHost(h)) {
        errors_->AddAt(field, absl::StrCat("invalid host \"", h,
                                           "\": a domain (with '*' only first or last) and an "
                                           "optional :port"));
        continue;
      }
      if (!hosts.insert(h).second) {
        errors_->AddAt(field, absl::StrCat("duplicate host \"", h, "\""));
      }
      bool bad_port = false;
      ResolveHost(*index_, h, ns, &bad_port);
      if (bad_port) {
        errors_->AddAt(field, absl::StrCat("host \"", h, "\" names a port its service lacks"));
      }
    }
    if (r.rules_size() == 0) errors_->AddAt("rules", "must list at least one rule");
    for (int i = 0; i < r.rules_size(); ++i) {
      Scope rs(errors_, Indexed("rules", i));
      ValidateRule(r.rules(i), ns);
    }
  }

  void ValidateRule(const cfg::RouteRule& rule, const std::string& ns) {
    std::vector<std::string> actions;
    if (rule.destinations_size() > 0) actions.push_back("destinations");
    if (rule.has_redirect()) actions.push_back("redirect");
    if (rule.has_direct_response()) actions.push_back("direct_response");
    if (actions.empty()) {
      errors_->Add("one of destinations, redirect or direct_response must be set");
    } else if (actions.size() > 1) {
      errors_->Add(
          absl::StrCat("only one of destinations, redirect or direct_response may be set, "
                       "got ",
                       absl::StrJoin(actions, " and ")));
    }
    const bool forwards = rule.destinations_size() > 0;
    bool prefix_match = !rule.match().has_path() || rule.match().path().has_prefix();

    if (rule.has_match()) {
      Scope ms(errors_, "match");
      const cfg::RouteMatch& m = rule.match();
      if (m.has_path()) {
        Scope ps(errors_, "path");
        const cfg::PathMatch& p = m.path();
        switch (p.kind_case()) {
          case cfg::PathMatch::kPrefix:
            if (!p.prefix().empty() && p.prefix()[0] != '/') {
              errors_->AddAt("prefix", "must start with '/'");
            }
            break;
          case cfg::PathMatch::kExact:
            if (p.exact().empty() || p.exact()[0] != '/') {
              errors_->AddAt("exact", "must start with '/'");
            }
            break;
          case cfg::PathMatch::kRegex:
            CheckRegex(p.regex(), "regex", errors_);
            break;
          case cfg::PathMatch::KIND_NOT_SET:
            errors_->Add("one of prefix, exact or regex must be set");
            break;
        }
      }
      for (int i = 0; i < m.headers_size(); ++i) {
        Scope hs(errors_, Indexed("headers", i));
        const cfg::HeaderMatch& h = m.headers(i);
        CheckHeaderName(h.name(), "name", errors_);
        if (h.kind_case() == cfg::HeaderMatch::kRegex) CheckRegex(h.regex(), "regex", errors_);
        if (h.kind_case() == cfg::HeaderMatch::KIND_NOT_SET) {
          errors_->Add("one of exact, prefix, regex or present must be set");
        }
      }
      for (int i = 0; i < m.query_size(); ++i) {
        Scope qs(errors_, Indexed("query", i));
        const cfg::QueryMatch& q = m.query(i);
        if (q.name().empty()) errors_->AddAt("name", "must not be empty");
        switch (q.kind_case()) {
          case cfg::QueryMatch::kRegex:
            CheckRegex(q.regex(), "regex", errors_);
            break;
          case cfg::QueryMatch::kPresent:
            // Envoy's query matcher has no "absent" form.
            if (!q.present()) errors_->AddAt("present", "only true is supported");
            break;
          case cfg::QueryMatch::KIND_NOT_SET:
            errors_->Add("one of exact, regex or present must be set");
            break;
          default:
            break;
        }
      }
    }

    uint64_t weight_sum = 0;
    for (int i = 0; i < rule.destinations_size(); ++i) {
      Scope ds(errors_, Indexed("destinations", i));
      const cfg::Destination& d = rule.destinations(i);
      weight_sum += d.has_weight() ? d.weight() : 1;
      if (d.service().empty()) {
        errors_->AddAt("service", "must not be empty");
        continue;
      }
      const ServiceInfo* svc = index_->FindService(ns, d.service());
      if (svc == nullptr) {
        errors_->AddAt("service", absl::StrCat("unknown service \"", d.service(), "\""));
        continue;
      }
      const cfg::ServicePort* port = nullptr;
      if (d.has_port()) {
        port = svc->Port(d.port());
        if (port == nullptr) {
          errors_->AddAt("port", absl::StrCat("service \"", d.service(), "\" has no port ",
                                              d.port(), " (ports: ", svc->PortList(), ")"));
        }
      } else if (svc->service->ports_size() > 1) {
        errors_->AddAt("port", absl::StrCat("required because service \"", d.service(),
                                            "\" has several ports (", svc->PortList(), ")"));
      } else if (svc->service->ports_size() == 1) {
        port = &svc->service->ports(0);
      }
      if (port != nullptr && port->protocol() == cfg::ServicePort::TCP) {
        errors_->AddAt("port", absl::StrCat("port ", port->port(), " of service \"", d.service(),
                                            "\" is TCP; routes need an HTTP, HTTP2 or GRPC port"));
      }
    }
    if (rule.destinations_size() > 0 && weight_sum == 0) {
      errors_->AddAt("destinations", "weights must sum to more than 0");
    } else if (weight_sum > std::numeric_limits<uint32_t>::max()) {
      errors_->AddAt("destinations", "weights must sum to less than 2^32");
    }

    if (rule.has_redirect()) {
      Scope rs(errors_, "redirect");
      const cfg::Redirect& rd = rule.redirect();
      uint32_t code = rd.response_code();
      if (code != 0 && code != 301 && code != 302 && code != 303 && code != 307 && code != 308) {
        errors_->AddAt("response_code",
                       absl::StrCat("must be 301, 302, 303, 307 or 308, got ", code));
      }
      if (!rd.path().empty() && !rd.prefix_rewrite().empty()) {
        errors_->AddAt("prefix_rewrite", "cannot be combined with path");
      }
      if (!rd.path().empty() && rd.path()[0] != '/') errors_->AddAt("path", "must start with '/'");
      if (!rd.prefix_rewrite().empty() && !prefix_match) {
        errors_->AddAt("prefix_rewrite", "needs a prefix path match");
      }
      if (!rd.host().empty() && !IsHostname(rd.host())) {
        errors_->AddAt("host", absl::StrCat("invalid host \"", rd.host(), "\""));
      }
    }
    if (rule.has_direct_response()) {
      uint32_t status = rule.direct_response().status();
      if (status < 200 || status > 599) {
        errors_->AddAt("direct_response.status", absl::StrCat("must be in 200..599, got ", status));
      }
    }
    if (rule.has_rewrite()) {
      Scope rw(errors_, "rewrite");
      if (!forwards) errors_->Add("only valid with destinations");
      if (rule.rewrite().has_prefix() && !prefix_match) {
        errors_->AddAt("prefix", "needs a prefix path match");
      }
      if (!rule.rewrite().host().empty() && !IsRouteHost(rule.rewrite().host())) {
        errors_->AddAt("host", absl::StrCat("invalid host \"", rule.rewrite().host(), "\""));
      }
    }
    if (rule.has_timeout()) {
      if (!forwards) errors_->AddAt("timeout", "only valid with destinations");
      CheckPositiveDuration(true, rule.timeout(), "timeout", errors_);
    }
    if (rule.has_retries()) {
      Scope rs(errors_, "retries");
      const cfg::Retries& r = rule.retries();
      if (!forwards) errors_->Add("only valid with destinations");
      if (r.attempts() > kMaxRetries) {
        errors_->AddAt("attempts",
                       absl::StrCat("must be at most ", kMaxRetries, ", got ", r.attempts()));
      }
      CheckPositiveDuration(r.has_per_try_timeout(), r.per_try_timeout(), "per_try_timeout",
                            errors_);
      for (int i = 0; i < r.retry_on_size(); ++i) {
        if (!KnownRetryOn().contains(r.retry_on(i))) {
          errors_->AddAt(Indexed("retry_on", i),
                         absl::StrCat("unknown retry condition \"", r.retry_on(i), "\" (expected ",
                                      absl::StrJoin(KnownRetryOn(), ", "), ")"));
        }
      }
    }
    ValidateHeaderOps(rule.request_headers(), "request_headers");
    ValidateHeaderOps(rule.response_headers(), "response_headers");
  }

  void ValidateHeaderOps(const cfg::HeaderOps& ops, std::string_view field) {
    Scope s(errors_, field);
    std::map<std::string, std::string> sorted_set(ops.set().begin(), ops.set().end());
    std::map<std::string, std::string> sorted_add(ops.add().begin(), ops.add().end());
    for (const auto& [k, v] : sorted_set) {
      CheckHeaderName(k, absl::StrCat("set[\"", k, "\"]"), errors_);
    }
    for (const auto& [k, v] : sorted_add) {
      CheckHeaderName(k, absl::StrCat("add[\"", k, "\"]"), errors_);
    }
    for (int i = 0; i < ops.remove_size(); ++i) {
      CheckHeaderName(ops.remove(i), Indexed("remove", i), errors_);
    }
  }

  void ValidatePolicy(const cfg::Policy& p, const std::string& key) {
    ValidateMeta(p.name(), p.namespace_());
    if (p.has_health_check()) errors_->AddAt("health_check", kNotYet.health_check);
    if (p.has_outlier_detection()) {
      errors_->AddAt("outlier_detection", kNotYet.outlier_detection);
    }
    if (p.has_circuit_breakers()) {
      errors_->AddAt("circuit_breakers", kNotYet.circuit_breakers);
    }
    const std::string ns = NamespaceOf(p.namespace_());
    if (p.service().empty()) {
      errors_->AddAt("service", "must not be empty");
    } else if (const ServiceInfo* svc = index_->FindService(ns, p.service()); svc == nullptr) {
      errors_->AddAt("service", absl::StrCat("unknown service \"", p.service(), "\""));
    } else if (const std::string* first = index_->PolicyKeyOf({ns, p.service()});
               first != nullptr && *first != key) {
      // The first Policy in key order is the service's.
      errors_->AddAt("service", absl::StrCat("service \"", p.service(), "\" already has ", *first));
    }
    if (p.has_lb()) {
      Scope ls(errors_, "lb");
      const cfg::LoadBalancer& lb = p.lb();
      using A = cfg::LoadBalancer;
      const int alg = lb.algorithm();
      if (!A::Algorithm_IsValid(alg)) {
        errors_->AddAt("algorithm", absl::StrCat("unknown value ", alg));
      }
      // With an unknown algorithm, "only valid with X" would only add noise.
      const bool known = A::Algorithm_IsValid(alg);
      auto needs = [&](std::string_view field, std::string_view which) {
        if (known) errors_->AddAt(field, absl::StrCat("only valid with algorithm ", Sv(which)));
      };
      if (lb.has_ring_hash()) {
        if (alg != A::RING_HASH) needs("ring_hash", "RING_HASH");
        const cfg::RingHash& rh = lb.ring_hash();
        if (rh.has_min_ring_size() &&
            (rh.min_ring_size() < 1 || rh.min_ring_size() > kMaxRingSize)) {
          errors_->AddAt("ring_hash.min_ring_size", absl::StrCat("must be in 1..", kMaxRingSize));
        }
        if (rh.has_max_ring_size() &&
            (rh.max_ring_size() < 1 || rh.max_ring_size() > kMaxRingSize)) {
          errors_->AddAt("ring_hash.max_ring_size", absl::StrCat("must be in 1..", kMaxRingSize));
        }
        if (rh.has_min_ring_size() && rh.has_max_ring_size() &&
            rh.min_ring_size() > rh.max_ring_size()) {
          errors_->AddAt("ring_hash.min_ring_size", "must not exceed max_ring_size");
        }
      }
      if (lb.has_hash_on()) {
        Scope hs(errors_, "hash_on");
        if (known && alg != A::RING_HASH && alg != A::MAGLEV) {
          errors_->Add("only valid with algorithm RING_HASH or MAGLEV");
        }
        const cfg::HashOn& h = lb.hash_on();
        switch (h.kind_case()) {
          case cfg::HashOn::kHeader:
            CheckHeaderName(h.header(), "header", errors_);
            break;
          case cfg::HashOn::kCookie:
            if (h.cookie().empty()) errors_->AddAt("cookie", "must not be empty");
            break;
          case cfg::HashOn::kSourceIp:
            if (!h.source_ip()) errors_->AddAt("source_ip", "only true is meaningful");
            break;
          case cfg::HashOn::KIND_NOT_SET:
            errors_->Add("one of header, cookie or source_ip must be set");
            break;
        }
      }
      if (lb.has_least_request()) {
        if (alg != A::LEAST_REQUEST && alg != A::LEAST_RESPONSE_TIME) {
          needs("least_request", "LEAST_REQUEST or LEAST_RESPONSE_TIME");
        }
        const cfg::LeastRequest& lr = lb.least_request();
        if (lr.has_choice_count() && lr.choice_count() < 2) {
          errors_->AddAt("least_request.choice_count", "must be at least 2");
        }
        if (lr.has_active_request_bias() &&
            (!std::isfinite(lr.active_request_bias()) || lr.active_request_bias() < 0)) {
          errors_->AddAt("least_request.active_request_bias", "must be a number >= 0");
        }
      }
      if (lb.has_slow_start_window()) {
        if (known && (alg == A::RANDOM || alg == A::RING_HASH || alg == A::MAGLEV)) {
          errors_->AddAt("slow_start_window",
                         "only valid with ROUND_ROBIN, WEIGHTED_ROUND_ROBIN, LEAST_REQUEST or "
                         "LEAST_RESPONSE_TIME");
        }
        CheckPositiveDuration(true, lb.slow_start_window(), "slow_start_window", errors_);
      }
      if (lb.has_panic_threshold_percent() && lb.panic_threshold_percent() > 100) {
        errors_->AddAt("panic_threshold_percent",
                       absl::StrCat("must be at most 100, got ", lb.panic_threshold_percent()));
      }
    }
    if (p.has_health_check()) {
      Scope hs(errors_, "health_check");
      const cfg::HealthCheck& hc = p.health_check();
      CheckPositiveDuration(hc.has_interval(), hc.interval(), "interval", errors_);
      CheckPositiveDuration(hc.has_timeout(), hc.timeout(), "timeout", errors_);
      if (hc.has_healthy_threshold() && hc.healthy_threshold() < 1) {
        errors_->AddAt("healthy_threshold", "must be at least 1");
      }
      if (hc.has_unhealthy_threshold() && hc.unhealthy_threshold() < 1) {
        errors_->AddAt("unhealthy_threshold", "must be at least 1");
      }
      int checkers = hc.has_http_path() + hc.has_grpc_service() + hc.tcp();
      if (checkers != 1) errors_->Add("exactly one of http_path, grpc_service or tcp must be set");
      if (hc.has_http_path() && (hc.http_path().empty() || hc.http_path()[0] != '/')) {
        errors_->AddAt("http_path", "must start with '/'");
      }
    }
    if (p.has_outlier_detection()) {
      Scope os(errors_, "outlier_detection");
      const cfg::OutlierDetection& od = p.outlier_detection();
      if (od.has_consecutive_5xx() && od.consecutive_5xx() < 1) {
        errors_->AddAt("consecutive_5xx", "must be at least 1");
      }
      CheckPositiveDuration(od.has_interval(), od.interval(), "interval", errors_);
      CheckPositiveDuration(od.has_base_ejection_time(), od.base_ejection_time(),
                            "base_ejection_time", errors_);
      if (od.has_max_ejection_percent() && od.max_ejection_percent() > 100) {
        errors_->AddAt("max_ejection_percent",
                       absl::StrCat("must be at most 100, got ", od.max_ejection_percent()));
      }
    }
    if (p.has_tls()) {
      Scope ts(errors_, "tls");
      if (!cfg::Tls::Mode_IsValid(p.tls().mode())) {
        errors_->AddAt("mode", absl::StrCat("unknown value ", p.tls().mode()));
      } else if (p.tls().mode() != cfg::Tls::DISABLE) {
        errors_->AddAt("mode",
                       "TLS is not supported by weft-proxy yet; refused rather than sending this "
                       "service's traffic in the clear");
      }
      if (!p.tls().sni().empty() && !IsHostname(p.tls().sni())) {
        errors_->AddAt("sni", absl::StrCat("invalid server name \"", p.tls().sni(), "\""));
      }
    }
    CheckPositiveDuration(p.has_connect_timeout(), p.connect_timeout(), "connect_timeout", errors_);
  }

  void ValidateAuthorizationPolicy(const cfg::AuthorizationPolicy& p) {
    // Until weft-proxy enforces its RBAC filter, a stored policy would be believed in force.
    errors_->Add(
        "AuthorizationPolicy is not enforced by weft-proxy yet (no RBAC filter); refused rather "
        "than accepted and ignored");
    ValidateMeta(p.name(), p.namespace_());
    const std::string ns = NamespaceOf(p.namespace_());
    if (p.service().empty()) {
      errors_->AddAt("service", "must not be empty");
    } else if (index_->FindService(ns, p.service()) == nullptr) {
      errors_->AddAt("service", absl::StrCat("unknown service \"", p.service(), "\""));
    }
    if (!cfg::AuthorizationPolicy::Action_IsValid(p.action())) {
      errors_->AddAt("action", absl::StrCat("unknown value ", p.action()));
    }
    static const RE2 kMethod("[A-Z]+");
    for (int i = 0; i < p.rules_size(); ++i) {
      Scope rs(errors_, Indexed("rules", i));
      const cfg::AuthorizationRule& r = p.rules(i);
      for (int j = 0; j < r.from().identities_size(); ++j) {
        if (r.from().identities(j).empty()) {
          errors_->AddAt(Indexed("from.identities", j), "must not be empty");
        }
      }
      for (int j = 0; j < r.from().namespaces_size(); ++j) {
        CheckDnsLabel(r.from().namespaces(j), Indexed("from.namespaces", j), errors_);
      }
      for (int j = 0; j < r.to().paths_size(); ++j) {
        const std::string& path = r.to().paths(j);
        size_t star = path.find('*');
        if (path.empty() || path[0] != '/' ||
            (star != std::string::npos && star != path.size() - 1)) {
          errors_->AddAt(Indexed("to.paths", j),
                         absl::StrCat("invalid path \"", path,
                                      "\": must start with '/'; '*' only as the last character"));
        }
      }
      for (int j = 0; j < r.to().methods_size(); ++j) {
        if (!RE2::FullMatch(r.to().methods(j), kMethod)) {
          errors_->AddAt(Indexed("to.methods", j),
                         absl::StrCat("invalid method \"", r.to().methods(j),
                                      "\": must be upper-case letters"));
        }
      }
      for (int j = 0; j < r.when_size(); ++j) {
        Scope ws(errors_, Indexed("when", j));
        CheckHeaderName(r.when(j).header(), "header", errors_);
        if (r.when(j).values_size() == 0) errors_->AddAt("values", "must not be empty");
      }
    }
  }

  const Index* index_;
  ValidationErrors* errors_;
};

// ---------------------------------------------------------------------------------------------
// Translation

// One translated resource and the object blamed for problems in it. For route configurations,
// the object behind each virtual host and route, so a NACK-worthy route is blamed on its rule.
struct Translated {
  Any any;
  std::string origin;
  // Node groups this resource belongs to; empty: shared by every node.
  std::vector<std::string> groups;
  std::vector<std::string> vhost_origins;
  std::vector<std::vector<std::string>> route_origins;
};

void SetAds(ec::core::v3::ConfigSource* source) {
  source->mutable_ads();
  source->set_resource_api_version(ec::core::v3::V3);
}

void SetDuration(const Duration& from, Duration* to) { *to = from; }

google::protobuf::Value StringValue(std::string_view s) {
  google::protobuf::Value v;
  v.set_string_value(std::string(s));
  return v;
}

std::string LowerName(std::string_view upper) {
  std::string out(upper);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view ProtocolName(cfg::ServicePort::Protocol p) {
  switch (p) {
    case cfg::ServicePort::HTTP:
      return "http";
    case cfg::ServicePort::HTTP2:
      return "http2";
    case cfg::ServicePort::GRPC:
      return "grpc";
    case cfg::ServicePort::TCP:
      return "tcp";
    default:
      return "http";
  }
}

// One virtual host of the sidecar's outbound route configuration, serialized: the outbound
// RouteConfiguration is these concatenated, so a change rebuilds only the virtual hosts of the
// services it touches.
struct VhostFragment {
  std::string name;
  std::vector<std::string> domains;
  std::string bytes;  // deterministic VirtualHost
  std::string vhost_origin;
  std::vector<std::string> route_origins;
};

// What one service translates into: its resources in translation order (clusters and
// endpoints per port, proxyless listeners and routes, inbound listeners and clusters) and its
// outbound virtual hosts.
struct ServiceOutput {
  std::vector<Translated> resources;
  std::vector<VhostFragment> vhosts;
};

class Translator {
 public:
  explicit Translator(const Index& index) : index_(index) {}

  ServiceOutput Service(const ServiceInfo& svc) {
    for (const cfg::ServicePort& port : svc.service->ports()) {
      AddCluster(svc, port);
      AddLoadAssignment(svc, port);
    }
    AddProxylessListeners(svc);
    AddInbound(svc);
    ServiceOutput out;
    out.resources = std::move(out_);
    out_.clear();
    out.vhosts = ServiceVhosts(svc);
    return out;
  }

  // Only the service's ClusterLoadAssignments (what an endpoint change alters), in order.
  std::vector<Translated> Endpoints(const ServiceInfo& svc) {
    for (const cfg::ServicePort& port : svc.service->ports()) AddLoadAssignment(svc, port);
    std::vector<Translated> out = std::move(out_);
    out_.clear();
    return out;
  }

  // The virtual host of a foreign Route host (one no service answers to): the rules of every
  // Route listing it, in key order, and no default route.
  VhostFragment Foreign(const std::string& host) {
    ec::route::v3::VirtualHost vh;
    vh.set_name(host);
    vh.add_domains(host);
    VhostFragment f;
    const std::set<std::string>& routes = index_.routes_on_foreign.at(host);
    for (const std::string& key : routes) {
      const RouteInfo& route = index_.routes.at(key);
      for (int i = 0; i < route.route->rules_size(); ++i) {
        TranslateRule(route, i, vh.add_routes());
        f.route_origins.push_back(absl::StrCat(route.key, ".rules[", i, "]"));
      }
    }
    f.vhost_origin = *routes.begin();
    Finish(vh, &f);
    return f;
  }

  // The sidecar's outbound side: one listener on 127.0.0.1:15001 routing by Host through the
  // `outbound_http` route configuration, whose virtual hosts are `vhosts` in order.
  static std::vector<Translated> Outbound(const std::vector<const VhostFragment*>& vhosts) {
    std::vector<Translated> out;
    std::string bytes;
    std::string name(kOutboundHttpName);
    size_t size = LenField(1, name.size());
    for (const VhostFragment* f : vhosts) size += LenField(2, f->bytes.size());
    bytes.reserve(size);
    // RouteConfiguration { name = 1; repeated VirtualHost virtual_hosts = 2; }: fields in number
    // order, as the deterministic serializer writes them.
    PutLen(&bytes, 1, name);
    for (const VhostFragment* f : vhosts) PutLen(&bytes, 2, f->bytes);
    Translated t;
    t.any.set_type_url(TypeUrlOf(*ec::route::v3::RouteConfiguration::descriptor()));
    t.any.set_value(std::move(bytes));
    t.origin = name;
    for (const VhostFragment* f : vhosts) {
      t.vhost_origins.push_back(f->vhost_origin);
      t.route_origins.push_back(f->route_origins);
    }
    out.push_back(std::move(t));

    ec::listener::v3::Listener l;
    l.set_name(name);
    auto* sa = l.mutable_address()->mutable_socket_address();
    sa->set_address(std::string(kOutboundHttpAddress));
    sa->set_port_value(kOutboundHttpPort);
    auto* filter = l.add_filter_chains()->add_filters();
    filter->set_name("envoy.filters.network.http_connection_manager");
    HttpConnectionManager hcm = Hcm(kOutboundHttpName);
    AllowWebSockets(&hcm);
    PackAny(hcm, filter->mutable_typed_config());
    Translated lt;
    PackAny(l, &lt.any);
    lt.origin = name;
    out.push_back(std::move(lt));
    return out;
  }

 private:
  static size_t VarintSize(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) {
      v >>= 7;
      ++n;
    }
    return n;
  }
  static size_t LenField(uint32_t field, size_t len) {
    return VarintSize(uint64_t{field} << 3 | 2) + VarintSize(len) + len;
  }
  static void PutVarint(std::string* out, uint64_t v) {
    while (v >= 0x80) {
      out->push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    out->push_back(static_cast<char>(v));
  }
  static void PutLen(std::string* out, uint32_t field, std::string_view bytes) {
    PutVarint(out, uint64_t{field} << 3 | 2);
    PutVarint(out, bytes.size());
    out->append(bytes.data(), bytes.size());
  }

  static void Finish(const ec::route::v3::VirtualHost& vh, VhostFragment* f) {
    f->name = vh.name();
    f->domains.assign(vh.domains().begin(), vh.domains().end());
    f->bytes = DeterministicBytes(vh);
  }

  // The service's outbound virtual hosts, one per non-TCP port: domains `<name>.<ns>:<port>`
  // (plus `<name>.<ns>` for the first port, and the short forms in namespace default).
  std::vector<VhostFragment> ServiceVhosts(const ServiceInfo& svc) {
    std::vector<VhostFragment> out;
    const cfg::Service& s = *svc.service;
    bool first = true;
    for (const cfg::ServicePort& port : s.ports()) {
      if (port.protocol() == cfg::ServicePort::TCP) continue;
      ec::route::v3::VirtualHost vh;
      std::string qualified = absl::StrCat(s.name(), ".", svc.ns);
      vh.set_name(absl::StrCat(qualified, ":", port.port()));
      // Short names belong to the default namespace only, so two namespaces never claim the
      // same domain.
      bool short_names = svc.ns == kDefaultNamespace;
      if (first) {
        if (short_names) vh.add_domains(s.name());
        vh.add_domains(qualified);
      }
      if (short_names) vh.add_domains(absl::StrCat(s.name(), ":", port.port()));
      vh.add_domains(absl::StrCat(qualified, ":", port.port()));
      first = false;
      VhostFragment f;
      f.vhost_origin = svc.key;
      f.route_origins = AddServiceRoutes(svc, port, &vh);
      Finish(vh, &f);
      out.push_back(std::move(f));
    }
    return out;
  }

  void Emit(const google::protobuf::Message& m, std::string origin) {
    Translated t;
    PackAny(m, &t.any);
    t.origin = std::move(origin);
    out_.push_back(std::move(t));
  }

  void AddCluster(const ServiceInfo& svc, const cfg::ServicePort& port) {
    using ec::cluster::v3::Cluster;
    using A = cfg::LoadBalancer;
    Cluster c;
    c.set_name(ClusterName(svc.service->name(), svc.ns, port.port()));
    c.set_type(Cluster::EDS);
    SetAds(c.mutable_eds_cluster_config()->mutable_eds_config());
    c.mutable_connect_timeout()->set_seconds(1);

    auto& weft_meta = (*c.mutable_metadata()->mutable_filter_metadata())["weft"];
    auto& fields = *weft_meta.mutable_fields();
    fields["service"] = StringValue(svc.service->name());
    fields["namespace"] = StringValue(svc.ns);
    fields["protocol"] = StringValue(ProtocolName(port.protocol()));

    const cfg::Policy* p = index_.PolicyOf({svc.ns, svc.service->name()});
    A::Algorithm alg = p != nullptr ? p->lb().algorithm() : A::ROUND_ROBIN;
    // Envoy has no built-in WRR/least-response-time policy on this API surface; the nearest
    // built-in keeps Envoy correct and weft-proxy reads the real choice from the metadata.
    fields["lb_algorithm"] = StringValue(LowerName(A::Algorithm_Name(alg)));
    switch (alg) {
      case A::RANDOM:
        c.set_lb_policy(Cluster::RANDOM);
        break;
      case A::LEAST_REQUEST:
      case A::LEAST_RESPONSE_TIME:
        c.set_lb_policy(Cluster::LEAST_REQUEST);
        break;
      case A::RING_HASH:
        c.set_lb_policy(Cluster::RING_HASH);
        break;
      case A::MAGLEV:
        c.set_lb_policy(Cluster::MAGLEV);
        break;
      default:
        c.set_lb_policy(Cluster::ROUND_ROBIN);
        break;
    }
    if (p != nullptr) {
      const cfg::LoadBalancer& lb = p->lb();
      if (lb.has_ring_hash() && alg == A::RING_HASH) {
        auto* rh = c.mutable_ring_hash_lb_config();
        if (lb.ring_hash().has_min_ring_size()) {
          rh->mutable_minimum_ring_size()->set_value(lb.ring_hash().min_ring_size());
        }
        if (lb.ring_hash().has_max_ring_size()) {
          rh->mutable_maximum_ring_size()->set_value(lb.ring_hash().max_ring_size());
        }
      }
      if (c.lb_policy() == Cluster::LEAST_REQUEST &&
          (lb.has_least_request() || lb.has_slow_start_window())) {
        auto* lr = c.mutable_least_request_lb_config();
        if (lb.least_request().has_choice_count()) {
          lr->mutable_choice_count()->set_value(lb.least_request().choice_count());
        }
        if (lb.least_request().has_active_request_bias()) {
          lr->mutable_active_request_bias()->set_default_value(
              lb.least_request().active_request_bias());
          lr->mutable_active_request_bias()->set_runtime_key("weft.lb.active_request_bias");
        }
        if (lb.has_slow_start_window()) {
          SetDuration(lb.slow_start_window(),
                      lr->mutable_slow_start_config()->mutable_slow_start_window());
        }
      } else if (c.lb_policy() == Cluster::ROUND_ROBIN && lb.has_slow_start_window()) {
        SetDuration(lb.slow_start_window(), c.mutable_round_robin_lb_config()
                                                ->mutable_slow_start_config()
                                                ->mutable_slow_start_window());
      }
      if (lb.has_panic_threshold_percent()) {
        c.mutable_common_lb_config()->mutable_healthy_panic_threshold()->set_value(
            lb.panic_threshold_percent());
      }
      if (lb.locality_failover()) {
        google::protobuf::Value v;
        v.set_bool_value(true);
        fields["locality_failover"] = v;
      }
      if (p->has_connect_timeout()) SetDuration(p->connect_timeout(), c.mutable_connect_timeout());
      if (p->has_circuit_breakers()) {
        const cfg::CircuitBreakers& cb = p->circuit_breakers();
        auto* t = c.mutable_circuit_breakers()->add_thresholds();
        if (cb.has_max_connections()) t->mutable_max_connections()->set_value(cb.max_connections());
        if (cb.has_max_pending_requests()) {
          t->mutable_max_pending_requests()->set_value(cb.max_pending_requests());
        }
        if (cb.has_max_requests()) t->mutable_max_requests()->set_value(cb.max_requests());
        if (cb.has_max_retries()) t->mutable_max_retries()->set_value(cb.max_retries());
      }
      if (p->has_outlier_detection()) {
        const cfg::OutlierDetection& od = p->outlier_detection();
        auto* o = c.mutable_outlier_detection();
        if (od.has_consecutive_5xx()) o->mutable_consecutive_5xx()->set_value(od.consecutive_5xx());
        if (od.has_interval()) SetDuration(od.interval(), o->mutable_interval());
        if (od.has_base_ejection_time()) {
          SetDuration(od.base_ejection_time(), o->mutable_base_ejection_time());
        }
        if (od.has_max_ejection_percent()) {
          o->mutable_max_ejection_percent()->set_value(od.max_ejection_percent());
        }
      }
      if (p->has_health_check()) {
        const cfg::HealthCheck& hc = p->health_check();
        auto* h = c.add_health_checks();
        if (hc.has_interval()) {
          SetDuration(hc.interval(), h->mutable_interval());
        } else {
          h->mutable_interval()->set_seconds(10);
        }
        if (hc.has_timeout()) {
          SetDuration(hc.timeout(), h->mutable_timeout());
        } else {
          h->mutable_timeout()->set_seconds(1);
        }
        h->mutable_healthy_threshold()->set_value(
            hc.has_healthy_threshold() ? hc.healthy_threshold() : 2);
        h->mutable_unhealthy_threshold()->set_value(
            hc.has_unhealthy_threshold() ? hc.unhealthy_threshold() : 3);
        if (hc.has_http_path()) {
          h->mutable_http_health_check()->set_path(hc.http_path());
        } else if (hc.has_grpc_service()) {
          h->mutable_grpc_health_check()->set_service_name(hc.grpc_service());
        } else {
          h->mutable_tcp_health_check();
        }
      }
      if (p->tls().mode() != cfg::Tls::DISABLE) {
        ::envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext tls;
        tls.set_sni(p->tls().sni().empty() ? absl::StrCat(svc.service->name(), ".", svc.ns)
                                           : p->tls().sni());
        auto* common = tls.mutable_common_tls_context();
        auto* validation = common->mutable_validation_context_sds_secret_config();
        validation->set_name("ROOTCA");
        SetAds(validation->mutable_sds_config());
        if (p->tls().mode() == cfg::Tls::MUTUAL || p->tls().mode() == cfg::Tls::MESH) {
          auto* cert = common->add_tls_certificate_sds_secret_configs();
          cert->set_name("default");
          SetAds(cert->mutable_sds_config());
        }
        c.mutable_transport_socket()->set_name("envoy.transport_sockets.tls");
        PackAny(tls, c.mutable_transport_socket()->mutable_typed_config());
      }
    }
    const std::string* policy_key = index_.PolicyKeyOf({svc.ns, svc.service->name()});
    Emit(c, p != nullptr ? *policy_key : svc.key);
  }

  void AddLoadAssignment(const ServiceInfo& svc, const cfg::ServicePort& port) {
    using ec::endpoint::v3::ClusterLoadAssignment;
    const cfg::Service& s = *svc.service;
    // (priority, region, zone, sub_zone) -> endpoints, so the output is sorted.
    using LocalityKey = std::tuple<uint32_t, std::string, std::string, std::string>;
    std::map<LocalityKey, std::vector<const cfg::Endpoint*>> groups;
    for (const cfg::Endpoint& e : s.endpoints()) {
      uint32_t sp =
          e.has_service_port() ? e.service_port() : (s.ports_size() == 1 ? s.ports(0).port() : 0);
      if (sp != port.port()) continue;
      groups[{e.priority(), e.region(), e.zone(), e.sub_zone()}].push_back(&e);
    }
    ClusterLoadAssignment cla;
    cla.set_cluster_name(ClusterName(s.name(), svc.ns, port.port()));
    for (auto& [key, endpoints] : groups) {
      std::sort(endpoints.begin(), endpoints.end(),
                [](const cfg::Endpoint* a, const cfg::Endpoint* b) {
                  return std::make_pair(a->address(), a->port()) <
                         std::make_pair(b->address(), b->port());
                });
      auto* locality = cla.add_endpoints();
      // gRPC NACKs a locality without `locality` or `load_balancing_weight`; always set both.
      auto* l = locality->mutable_locality();
      l->set_region(std::get<1>(key));
      l->set_zone(std::get<2>(key));
      l->set_sub_zone(std::get<3>(key));
      locality->set_priority(std::get<0>(key));
      uint64_t sum = 0;
      for (const cfg::Endpoint* e : endpoints) {
        uint32_t weight = e->has_weight() ? e->weight() : 1;
        sum += weight;
        auto* lb = locality->add_lb_endpoints();
        auto* sa = lb->mutable_endpoint()->mutable_address()->mutable_socket_address();
        sa->set_address(e->address());
        sa->set_port_value(e->port());
        if (!IsIpLiteral(e->address())) lb->mutable_endpoint()->set_hostname(e->address());
        lb->mutable_load_balancing_weight()->set_value(weight);
        switch (e->health()) {
          case cfg::Endpoint::UNHEALTHY:
            lb->set_health_status(ec::core::v3::UNHEALTHY);
            break;
          case cfg::Endpoint::DRAINING:
            lb->set_health_status(ec::core::v3::DRAINING);
            break;
          default:
            lb->set_health_status(ec::core::v3::HEALTHY);
            break;
        }
        if (!e->service_account().empty()) {
          (*(*lb->mutable_metadata()->mutable_filter_metadata())["weft"]
                .mutable_fields())["service_account"] = StringValue(e->service_account());
        }
      }
      locality->mutable_load_balancing_weight()->set_value(static_cast<uint32_t>(
          std::clamp<uint64_t>(sum, 1, std::numeric_limits<uint32_t>::max())));
    }
    Emit(cla, svc.key);
  }

  // An HttpConnectionManager that fetches `route_config_name` over ADS and ends in the router.
  static HttpConnectionManager Hcm(std::string_view route_config_name) {
    HttpConnectionManager hcm;
    hcm.set_codec_type(HttpConnectionManager::AUTO);
    hcm.set_stat_prefix(std::string(route_config_name));
    auto* rds = hcm.mutable_rds();
    SetAds(rds->mutable_config_source());
    rds->set_route_config_name(std::string(route_config_name));
    auto* router = hcm.add_http_filters();
    router->set_name("envoy.filters.http.router");
    PackAny(Router(), router->mutable_typed_config());
    return hcm;
  }

  // Sidecar listeners pass WebSocket upgrades through, as Istio's do by default.
  static void AllowWebSockets(HttpConnectionManager* hcm) {
    hcm->add_upgrade_configs()->set_upgrade_type("websocket");
  }

  // Proxyless gRPC clients dial xds:///NAME and ask LDS for exactly NAME.
  void AddProxylessListeners(const ServiceInfo& svc) {
    const cfg::Service& s = *svc.service;
    bool first = true;
    for (const cfg::ServicePort& port : s.ports()) {
      if (port.protocol() == cfg::ServicePort::TCP) continue;
      std::vector<std::string> names;
      std::string qualified = absl::StrCat(s.name(), ".", svc.ns);
      names.push_back(absl::StrCat(qualified, ":", port.port()));
      if (first) names.push_back(qualified);
      if (svc.ns == kDefaultNamespace) {
        names.push_back(absl::StrCat(s.name(), ":", port.port()));
        if (first) names.push_back(s.name());
      }
      first = false;
      for (const std::string& name : names) {
        ec::listener::v3::Listener l;
        l.set_name(name);
        PackAny(Hcm(name), l.mutable_api_listener()->mutable_api_listener());
        Emit(l, svc.key);

        ec::route::v3::RouteConfiguration rc;
        rc.set_name(name);
        Translated t;
        auto* vh = rc.add_virtual_hosts();
        vh->set_name(name);
        vh->mutable_domains()->Add(std::string(kAnyDomain));
        t.vhost_origins.push_back(svc.key);
        t.route_origins.push_back(AddServiceRoutes(svc, port, vh));
        PackAny(rc, &t.any);
        t.origin = svc.key;
        out_.push_back(std::move(t));
      }
    }
  }

  // The attached Route rules for this service port, then the default route to its cluster.
  // Returns the origin of each route.
  std::vector<std::string> AddServiceRoutes(const ServiceInfo& svc, const cfg::ServicePort& port,
                                            ec::route::v3::VirtualHost* vh) {
    std::vector<std::string> origins;
    const ServiceKey key(svc.ns, svc.service->name());
    if (auto it = index_.routes_on_service.find(key); it != index_.routes_on_service.end()) {
      for (const std::string& route_key : it->second) {
        if (!index_.targets.at(route_key).ports.at(key).contains(port.port())) continue;
        const RouteInfo& route = index_.routes.at(route_key);
        for (int i = 0; i < route.route->rules_size(); ++i) {
          TranslateRule(route, i, vh->add_routes());
          origins.push_back(absl::StrCat(route.key, ".rules[", i, "]"));
        }
      }
    }
    auto* def = vh->add_routes();
    def->set_name("default");
    def->mutable_match()->set_prefix("");
    auto* action = def->mutable_route();
    action->set_cluster(ClusterName(svc.service->name(), svc.ns, port.port()));
    AddHashPolicy(svc, action);
    origins.push_back(svc.key);
    return origins;
  }

  void AddHashPolicy(const ServiceInfo& svc, ec::route::v3::RouteAction* action) {
    const cfg::Policy* policy = index_.PolicyOf({svc.ns, svc.service->name()});
    if (policy == nullptr || !policy->lb().has_hash_on()) return;
    if (action->hash_policy_size() > 0) return;
    const cfg::HashOn& h = policy->lb().hash_on();
    auto* hp = action->add_hash_policy();
    switch (h.kind_case()) {
      case cfg::HashOn::kHeader:
        hp->mutable_header()->set_header_name(h.header());
        break;
      case cfg::HashOn::kCookie:
        hp->mutable_cookie()->set_name(h.cookie());
        break;
      default:
        hp->mutable_connection_properties()->set_source_ip(true);
        break;
    }
  }

  static void AddHeaderOps(const cfg::HeaderOps& ops,
                           google::protobuf::RepeatedPtrField<ec::core::v3::HeaderValueOption>* add,
                           google::protobuf::RepeatedPtrField<std::string>* remove) {
    using ec::core::v3::HeaderValueOption;
    // Proto maps iterate in no particular order; sort for stable versions.
    std::map<std::string, std::string> set(ops.set().begin(), ops.set().end());
    std::map<std::string, std::string> append(ops.add().begin(), ops.add().end());
    for (const auto& [k, v] : set) {
      auto* h = add->Add();
      h->mutable_header()->set_key(k);
      h->mutable_header()->set_value(v);
      h->set_append_action(HeaderValueOption::OVERWRITE_IF_EXISTS_OR_ADD);
    }
    for (const auto& [k, v] : append) {
      auto* h = add->Add();
      h->mutable_header()->set_key(k);
      h->mutable_header()->set_value(v);
      h->set_append_action(HeaderValueOption::APPEND_IF_EXISTS_OR_ADD);
    }
    for (const std::string& r : ops.remove()) *remove->Add() = r;
  }

  void TranslateRule(const RouteInfo& route, int index, ec::route::v3::Route* out) {
    const cfg::RouteRule& rule = route.route->rules(index);
    out->set_name(rule.name().empty() ? absl::StrCat(route.key, ".rules[", index, "]")
                                      : absl::StrCat(route.key, "/", rule.name()));
    auto* m = out->mutable_match();
    const cfg::PathMatch& path = rule.match().path();
    switch (path.kind_case()) {
      case cfg::PathMatch::kExact:
        m->set_path(path.exact());
        break;
      case cfg::PathMatch::kRegex:
        m->mutable_safe_regex()->set_regex(path.regex());
        break;
      case cfg::PathMatch::kPrefix:
        m->set_prefix(path.prefix().empty() ? "/" : path.prefix());
        break;
      default:
        m->set_prefix("/");
        break;
    }
    for (const cfg::HeaderMatch& h : rule.match().headers()) {
      auto* hm = m->add_headers();
      hm->set_name(h.name());
      bool invert = h.invert();
      switch (h.kind_case()) {
        case cfg::HeaderMatch::kExact:
          hm->mutable_string_match()->set_exact(h.exact());
          break;
        case cfg::HeaderMatch::kPrefix:
          hm->mutable_string_match()->set_prefix(h.prefix());
          break;
        case cfg::HeaderMatch::kRegex:
          hm->mutable_string_match()->mutable_safe_regex()->set_regex(h.regex());
          break;
        default:
          // "present: false" is "present, inverted": both Envoy and gRPC understand that form.
          hm->set_present_match(true);
          if (!h.present()) invert = !invert;
          break;
      }
      hm->set_invert_match(invert);
    }
    for (const cfg::QueryMatch& q : rule.match().query()) {
      auto* qm = m->add_query_parameters();
      qm->set_name(q.name());
      switch (q.kind_case()) {
        case cfg::QueryMatch::kExact:
          qm->mutable_string_match()->set_exact(q.exact());
          break;
        case cfg::QueryMatch::kRegex:
          qm->mutable_string_match()->mutable_safe_regex()->set_regex(q.regex());
          break;
        default:
          qm->set_present_match(true);
          break;
      }
    }

    AddHeaderOps(rule.request_headers(), out->mutable_request_headers_to_add(),
                 out->mutable_request_headers_to_remove());
    AddHeaderOps(rule.response_headers(), out->mutable_response_headers_to_add(),
                 out->mutable_response_headers_to_remove());

    if (rule.has_redirect()) {
      using ec::route::v3::RedirectAction;
      const cfg::Redirect& rd = rule.redirect();
      auto* r = out->mutable_redirect();
      if (!rd.host().empty()) r->set_host_redirect(rd.host());
      if (!rd.path().empty()) r->set_path_redirect(rd.path());
      if (!rd.prefix_rewrite().empty()) r->set_prefix_rewrite(rd.prefix_rewrite());
      if (rd.https()) r->set_https_redirect(true);
      switch (rd.response_code()) {
        case 302:
          r->set_response_code(RedirectAction::FOUND);
          break;
        case 303:
          r->set_response_code(RedirectAction::SEE_OTHER);
          break;
        case 307:
          r->set_response_code(RedirectAction::TEMPORARY_REDIRECT);
          break;
        case 308:
          r->set_response_code(RedirectAction::PERMANENT_REDIRECT);
          break;
        default:
          r->set_response_code(RedirectAction::MOVED_PERMANENTLY);
          break;
      }
      return;
    }
    if (rule.has_direct_response()) {
      auto* d = out->mutable_direct_response();
      d->set_status(rule.direct_response().status());
      if (!rule.direct_response().body().empty()) {
        d->mutable_body()->set_inline_string(rule.direct_response().body());
      }
      return;
    }

    auto* action = out->mutable_route();
    // Merge repeated destinations and drop zero weights: same traffic split, simpler config.
    std::map<std::string, uint64_t> weights;
    std::vector<std::string> order;
    std::vector<const ServiceInfo*> services;
    for (const cfg::Destination& d : rule.destinations()) {
      const ServiceInfo* svc = index_.FindService(route.ns, d.service());
      if (svc == nullptr) continue;
      uint32_t port = d.has_port()
                          ? d.port()
                          : (svc->service->ports_size() > 0 ? svc->service->ports(0).port() : 0);
      std::string cluster = ClusterName(svc->service->name(), svc->ns, port);
      uint32_t weight = d.has_weight() ? d.weight() : 1;
      if (weight == 0) continue;
      if (!weights.contains(cluster)) order.push_back(cluster);
      weights[cluster] += weight;
      services.push_back(svc);
    }
    if (order.size() == 1) {
      action->set_cluster(order[0]);
    } else {
      auto* wc = action->mutable_weighted_clusters();
      for (const std::string& cluster : order) {
        auto* cw = wc->add_clusters();
        cw->set_name(cluster);
        cw->mutable_weight()->set_value(static_cast<uint32_t>(weights[cluster]));
      }
    }
    for (const ServiceInfo* svc : services) AddHashPolicy(*svc, action);
    if (rule.rewrite().has_prefix()) action->set_prefix_rewrite(rule.rewrite().prefix());
    if (!rule.rewrite().host().empty()) action->set_host_rewrite_literal(rule.rewrite().host());
    if (rule.has_timeout()) SetDuration(rule.timeout(), action->mutable_timeout());
    if (rule.has_retries()) {
      const cfg::Retries& r = rule.retries();
      auto* rp = action->mutable_retry_policy();
      rp->set_retry_on(r.retry_on_size() == 0 ? std::string(kDefaultRetryOn)
                                              : absl::StrJoin(r.retry_on(), ","));
      rp->mutable_num_retries()->set_value(r.attempts());
      if (r.has_per_try_timeout()) SetDuration(r.per_try_timeout(), rp->mutable_per_try_timeout());
    }
  }

  // The node groups a service's sidecars fall in: "<name>.<ns>" and, in the default namespace,
  // the short name a sidecar declares as its node cluster. A service called "default" does not
  // get the short group: it would replace the snapshot every other node shares.
  static std::vector<std::string> GroupsOf(const ServiceInfo& svc) {
    std::vector<std::string> groups = {absl::StrCat(svc.service->name(), ".", svc.ns)};
    if (svc.ns == kDefaultNamespace && svc.service->name() != kDefaultNamespace) {
      groups.push_back(svc.service->name());
    }
    return groups;
  }

  void EmitForGroups(const google::protobuf::Message& m, std::string origin,
                     const std::vector<std::string>& groups) {
    Emit(m, std::move(origin));
    out_.back().groups = groups;
  }

  // A Principal/Permission list as one: the element itself, or `or` of all of them.
  template <typename T, typename AddSet>
  static T AnyOf(std::vector<T> items, AddSet mutable_set) {
    if (items.size() == 1) return std::move(items[0]);
    T out;
    for (T& item : items) *(out.*mutable_set)()->add_rules() = std::move(item);
    return out;
  }

  static ec::rbac::v3::Principal PrincipalAnyOf(std::vector<ec::rbac::v3::Principal> items) {
    if (items.size() == 1) return std::move(items[0]);
    ec::rbac::v3::Principal out;
    for (auto& item : items) *out.mutable_or_ids()->add_ids() = std::move(item);
    return out;
  }

  static ec::rbac::v3::Principal Authenticated(bool prefix, const std::string& value) {
    ec::rbac::v3::Principal p;
    auto* m = p.mutable_authenticated()->mutable_principal_name();
    if (prefix) {
      m->set_prefix(value);
    } else {
      m->set_exact(value);
    }
    return p;
  }

  static ec::rbac::v3::Permission HeaderPermission(const std::string& name,
                                                   const std::string& exact) {
    ec::rbac::v3::Permission p;
    p.mutable_header()->set_name(name);
    p.mutable_header()->mutable_string_match()->set_exact(exact);
    return p;
  }

  // One AuthorizationRule: every set part must match, any value within a part.
  static ec::rbac::v3::Policy RbacPolicy(const cfg::AuthorizationRule& rule) {
    using ec::rbac::v3::Permission;
    using ec::rbac::v3::Principal;
    ec::rbac::v3::Policy policy;

    std::vector<Principal> from;
    std::vector<Principal> ids;
    for (const std::string& id : rule.from().identities()) ids.push_back(Authenticated(false, id));
    if (!ids.empty()) from.push_back(PrincipalAnyOf(std::move(ids)));
    // Namespaces are matched on the caller's SPIFFE identity, the only place the namespace of
    // a mesh peer is known to the receiving proxy.
    std::vector<Principal> nss;
    for (const std::string& ns : rule.from().namespaces()) {
      nss.push_back(Authenticated(true, absl::StrCat("spiffe://weft/ns/", ns, "/")));
    }
    if (!nss.empty()) from.push_back(PrincipalAnyOf(std::move(nss)));
    if (from.empty()) {
      policy.add_principals()->set_any(true);
    } else if (from.size() == 1) {
      // Principals in the list are OR-ed already: no need for an or_ids wrapper.
      if (from[0].has_or_ids()) {
        *policy.mutable_principals() = from[0].or_ids().ids();
      } else {
        *policy.add_principals() = std::move(from[0]);
      }
    } else {
      auto* both = policy.add_principals()->mutable_and_ids();
      for (Principal& p : from) *both->add_ids() = std::move(p);
    }

    std::vector<Permission> to;
    std::vector<Permission> paths;
    for (const std::string& path : rule.to().paths()) {
      Permission p;
      auto* m = p.mutable_url_path()->mutable_path();
      if (!path.empty() && path.back() == '*') {
        m->set_prefix(path.substr(0, path.size() - 1));
      } else {
        m->set_exact(path);
      }
      paths.push_back(std::move(p));
    }
    if (!paths.empty()) to.push_back(AnyOf(std::move(paths), &Permission::mutable_or_rules));
    std::vector<Permission> methods;
    for (const std::string& m : rule.to().methods())
      methods.push_back(HeaderPermission(":method", m));
    if (!methods.empty()) to.push_back(AnyOf(std::move(methods), &Permission::mutable_or_rules));
    for (const cfg::AuthorizationRule::When& w : rule.when()) {
      std::vector<Permission> values;
      for (const std::string& v : w.values()) values.push_back(HeaderPermission(w.header(), v));
      to.push_back(AnyOf(std::move(values), &Permission::mutable_or_rules));
    }
    if (to.empty()) {
      policy.add_permissions()->set_any(true);
    } else {
      *policy.add_permissions() = AnyOf(std::move(to), &Permission::mutable_and_rules);
    }
    return policy;
  }

  // The RBAC filters for a service: DENY first so an explicit deny always wins, then ALLOW.
  // Policies with the same action merge into one filter, one RBAC policy per rule: Envoy
  // allows (or denies) when any of them matches.
  void AddRbacFilters(const ServiceInfo& svc, HttpConnectionManager* hcm) const {
    using RbacFilter = ::envoy::extensions::filters::http::rbac::v3::RBAC;
    for (auto action : {cfg::AuthorizationPolicy::DENY, cfg::AuthorizationPolicy::ALLOW}) {
      RbacFilter rbac;
      bool any = false;
      auto mine = index_.authz_by_service.find({svc.ns, svc.service->name()});
      if (mine == index_.authz_by_service.end()) return;
      for (const std::string& authz_key : mine->second) {
        const AuthzInfo& a = index_.authz.at(authz_key);
        if (a.policy->action() != action) continue;
        any = true;
        auto* rules = rbac.mutable_rules();
        rules->set_action(action == cfg::AuthorizationPolicy::DENY ? ec::rbac::v3::RBAC::DENY
                                                                   : ec::rbac::v3::RBAC::ALLOW);
        for (int i = 0; i < a.policy->rules_size(); ++i) {
          (*rules->mutable_policies())[absl::StrCat(a.key, ".rules[", i, "]")] =
              RbacPolicy(a.policy->rules(i));
        }
      }
      if (!any) continue;
      auto* f = hcm->add_http_filters();
      f->set_name(action == cfg::AuthorizationPolicy::DENY ? "envoy.filters.http.rbac.deny"
                                                           : "envoy.filters.http.rbac.allow");
      PackAny(rbac, f->mutable_typed_config());
    }
  }

  // The sidecar's inbound side, one listener per service port on 0.0.0.0:<port> forwarding to
  // the local app on 127.0.0.1:<port>; AuthorizationPolicy is enforced here, where the callee
  // is known. Only the service's own sidecars get these (see GroupsOf).
  void AddInbound(const ServiceInfo& svc) {
    const std::vector<std::string> groups = GroupsOf(svc);
    for (const cfg::ServicePort& port : svc.service->ports()) {
      const std::string name = InboundName(svc.service->name(), svc.ns, port.port());

      ec::cluster::v3::Cluster c;
      c.set_name(name);
      c.set_type(ec::cluster::v3::Cluster::STATIC);
      c.mutable_connect_timeout()->set_seconds(1);
      auto* cla = c.mutable_load_assignment();
      cla->set_cluster_name(name);
      auto* sa = cla->add_endpoints()
                     ->add_lb_endpoints()
                     ->mutable_endpoint()
                     ->mutable_address()
                     ->mutable_socket_address();
      sa->set_address(std::string(kInboundAppAddress));
      sa->set_port_value(port.port());
      EmitForGroups(c, svc.key, groups);

      ec::listener::v3::Listener l;
      l.set_name(name);
      auto* la = l.mutable_address()->mutable_socket_address();
      la->set_address(std::string(kInboundAddress));
      la->set_port_value(port.port());
      auto* filter = l.add_filter_chains()->add_filters();
      if (port.protocol() == cfg::ServicePort::TCP) {
        ::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy tcp;
        tcp.set_stat_prefix(name);
        tcp.set_cluster(name);
        filter->set_name("envoy.filters.network.tcp_proxy");
        PackAny(tcp, filter->mutable_typed_config());
      } else {
        HttpConnectionManager hcm;
        hcm.set_codec_type(HttpConnectionManager::AUTO);
        hcm.set_stat_prefix(name);
        auto* rc = hcm.mutable_route_config();
        rc->set_name(name);
        auto* vh = rc->add_virtual_hosts();
        vh->set_name(name);
        vh->add_domains(std::string(kAnyDomain));
        auto* route = vh->add_routes();
        route->mutable_match()->set_prefix("");
        route->mutable_route()->set_cluster(name);
        AddRbacFilters(svc, &hcm);
        AllowWebSockets(&hcm);
        auto* router = hcm.add_http_filters();
        router->set_name("envoy.filters.http.router");
        PackAny(Router(), router->mutable_typed_config());
        filter->set_name("envoy.filters.network.http_connection_manager");
        PackAny(hcm, filter->mutable_typed_config());
      }
      EmitForGroups(l, svc.key, groups);
    }
  }

  const Index& index_;
  std::vector<Translated> out_;
};

// Blames an xDS validation error ("virtual_hosts[1].routes[2].route.timeout: ...") on the
// object that produced that part of the resource.
std::string BlameOrigin(const Translated& t, const std::string& error) {
  static const RE2 kRoute(R"(^virtual_hosts\[(\d+)\](?:\.routes\[(\d+)\])?)");
  int vh = -1, route = -1;
  std::string route_str;
  if (RE2::PartialMatch(error, kRoute, &vh, &route_str)) {
    if (!route_str.empty() && !absl::SimpleAtoi(Sv(route_str), &route)) route = -1;
    if (vh >= 0 && static_cast<size_t>(vh) < t.route_origins.size()) {
      if (route >= 0 && static_cast<size_t>(route) < t.route_origins[vh].size()) {
        return t.route_origins[vh][route];
      }
      return t.vhost_origins[vh];
    }
  }
  return t.origin;
}

// The proxy's validators on one translated resource; problems blamed on their objects.
void CheckTranslated(const Translated& t, std::set<std::string>* seen,
                     std::vector<std::string>* out) {
  ValidationErrors resource_errors;
  xds::ValidateResource(t.any, &resource_errors);
  if (resource_errors.ok()) return;
  std::optional<xds::ResourceType> type = xds::ResourceTypeFromUrl(t.any.type_url());
  std::string type_name = type ? std::string(xds::ShortName(*type)) : t.any.type_url();
  for (const std::string& e : resource_errors.errors()) {
    std::string message = absl::StrCat(BlameOrigin(t, e), ": translated ", type_name,
                                       " would be refused by the proxy: ", e);
    // The same rule appears in several route configurations.
    if (seen->insert(message).second) out->push_back(std::move(message));
  }
}

// Whether a virtual host would pass the proxy's checks on its own (in a route configuration
// of the outbound name); what only shows across virtual hosts is checked by the indexes.
bool VhostValid(const VhostFragment& f) {
  ec::route::v3::RouteConfiguration rc;
  rc.set_name(std::string(kOutboundHttpName));
  if (!rc.add_virtual_hosts()->ParseFromString(f.bytes)) return false;
  ValidationErrors errors;
  xds::ValidateResource(PackAny(rc), &errors);
  return errors.ok();
}

std::string LowerCase(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

bool EndpointsOnly(const cfg::ConfigObject& a, const cfg::ConfigObject& b) {
  if (!a.has_service() || !b.has_service()) return false;
  cfg::Service x = a.service();
  cfg::Service y = b.service();
  x.clear_endpoints();
  y.clear_endpoints();
  return DeterministicBytes(x) == DeterministicBytes(y);
}

using ResourceKey = std::pair<xds::ResourceType, std::string>;

// A translated resource ready to serve. The outbound route configuration is assembled from
// deterministic pieces: its bytes are already what re-packing would give, so it is not parsed
// again (at 10 000 services it is megabytes).
absl::StatusOr<xds::ResourcePtr> ToResource(const Translated& t) {
  if (t.origin == kOutboundHttpName && t.any.type_url() == xds::kRouteTypeUrl) {
    auto r = std::make_shared<xds::Resource>();
    r->type = xds::ResourceType::kRoute;
    r->name = std::string(kOutboundHttpName);
    r->body = t.any;
    r->version = StableHash64(r->body.value());
    r->version_text = HexVersion(r->version);
    return xds::ResourcePtr(std::move(r));
  }
  absl::StatusOr<xds::ResourcePtr> r = xds::MakeResource(t.any);
  if (!r.ok()) return absl::InternalError(absl::StrCat(t.origin, ": ", r.status().message()));
  return r;
}

// What a service, or the outbound side, translated into: the resources in translation order
// and who gets them.
struct Output {
  std::vector<Translated> translated;
  std::vector<xds::ResourcePtr> resources;  // same order
};

struct ServiceUnit {
  Output out;
  std::vector<VhostFragment> vhosts;
};

}  // namespace

struct ModelState::Impl {
  std::map<std::string, ObjectPtr> objects;
  Index index;
  std::map<std::string, std::vector<std::string>> object_errors;  // only keys with problems
  // Translated as of the last valid state.
  std::map<ServiceKey, ServiceUnit> services;
  std::map<std::string, VhostFragment> foreign;
  Output outbound;
  // Uniqueness across the outbound virtual hosts, over what is committed.
  std::map<std::string, int> domains;  // lower-cased
  std::map<std::string, int> vhost_names;
  // Who serves each name: translated resources and raw ones, by scope ("" = every node).
  std::map<ResourceKey, std::vector<std::string>> translated_scopes;
  std::map<ResourceKey, std::vector<std::string>> raw_scopes;
  // Not yet translated since the last valid state.
  std::set<ServiceKey> dirty_services;
  std::set<ServiceKey> dirty_endpoints;
  std::set<std::string> dirty_foreign;
  bool dirty_outbound = false;

  // --- indexing -------------------------------------------------------------------------------

  void MarkTargets(const std::string& route) {
    auto it = index.targets.find(route);
    if (it == index.targets.end()) return;
    for (const auto& [svc, ports] : it->second.ports) dirty_services.insert(svc);
    for (const std::string& h : it->second.foreign) dirty_foreign.insert(h);
    dirty_outbound = true;
  }

  void Detach(const std::string& route) {
    MarkTargets(route);
    auto it = index.targets.find(route);
    if (it == index.targets.end()) return;
    for (const auto& [svc, ports] : it->second.ports) {
      EraseFrom(&index.routes_on_service, svc, route);
    }
    for (const std::string& h : it->second.foreign) EraseFrom(&index.routes_on_foreign, h, route);
    index.targets.erase(it);
  }

  void Attach(const std::string& route) {
    auto r = index.routes.find(route);
    if (r == index.routes.end()) return;
    RouteTargets t = AttachRoute(index, r->second);
    for (const auto& [svc, ports] : t.ports) index.routes_on_service[svc].insert(route);
    for (const std::string& h : t.foreign) index.routes_on_foreign[h].insert(route);
    index.targets[route] = std::move(t);
    MarkTargets(route);
  }

  // Everything that depends on service `k`: its own output, the objects that name it (to be
  // validated again), the routes whose attachment may change and those whose destinations
  // (cluster names, hash policies) come from it.
  void TouchService(const ServiceKey& k, std::set<std::string>* revalidate,
                    std::set<std::string>* reattach) {
    dirty_services.insert(k);
    dirty_outbound = true;
    for (const auto* m : {&index.routes_by_host, &index.routes_by_destination,
                          &index.policies_by_service, &index.authz_by_service}) {
      if (auto it = m->find(k); it != m->end())
        revalidate->insert(it->second.begin(), it->second.end());
    }
    if (auto it = index.routes_by_host.find(k); it != index.routes_by_host.end()) {
      reattach->insert(it->second.begin(), it->second.end());
    }
    TouchDestinations(k);
  }

  // Rules pointing at service `k` carry its cluster names and hash policy.
  void TouchDestinations(const ServiceKey& k) {
    if (auto it = index.routes_by_destination.find(k); it != index.routes_by_destination.end()) {
      for (const std::string& route : it->second) MarkTargets(route);
    }
  }

  void Unindex(const std::string& key, const cfg::ConfigObject& o,
               std::set<std::string>* revalidate, std::set<std::string>* reattach) {
    switch (o.object_case()) {
      case cfg::ConfigObject::kService: {
        ServiceKey k(NamespaceOf(o.service().namespace_()), o.service().name());
        index.services.erase(k);
        TouchService(k, revalidate, reattach);
        break;
      }
      case cfg::ConfigObject::kRoute: {
        const std::string ns = NamespaceOf(o.route().namespace_());
        for (const std::string& h : o.route().hosts()) {
          if (auto t = HostTarget(h, ns)) EraseFrom(&index.routes_by_host, t->first, key);
        }
        for (const auto& rule : o.route().rules()) {
          for (const auto& d : rule.destinations()) {
            EraseFrom(&index.routes_by_destination, ServiceKey(ns, d.service()), key);
          }
        }
        Detach(key);
        index.routes.erase(key);
        break;
      }
      case cfg::ConfigObject::kPolicy: {
        ServiceKey k(NamespaceOf(o.policy().namespace_()), o.policy().service());
        index.policies.erase(key);
        EraseFrom(&index.policies_by_service, k, key);
        dirty_services.insert(k);
        TouchDestinations(k);
        if (auto it = index.policies_by_service.find(k); it != index.policies_by_service.end()) {
          revalidate->insert(it->second.begin(), it->second.end());
        }
        break;
      }
      case cfg::ConfigObject::kAuthorizationPolicy: {
        const auto& a = o.authorization_policy();
        ServiceKey k(NamespaceOf(a.namespace_()), a.service());
        index.authz.erase(key);
        EraseFrom(&index.authz_by_service, k, key);
        dirty_services.insert(k);
        break;
      }
      case cfg::ConfigObject::OBJECT_NOT_SET:
        break;
    }
    revalidate->insert(key);
  }

  void AddToIndex(const std::string& key, const cfg::ConfigObject& o,
                  std::set<std::string>* revalidate, std::set<std::string>* reattach) {
    revalidate->insert(key);
    switch (o.object_case()) {
      case cfg::ConfigObject::kService: {
        ServiceInfo info;
        info.service = &o.service();
        info.ns = NamespaceOf(o.service().namespace_());
        info.key = key;
        ServiceKey k(info.ns, o.service().name());
        index.services.emplace(k, std::move(info));
        TouchService(k, revalidate, reattach);
        break;
      }
      case cfg::ConfigObject::kRoute: {
        const std::string ns = NamespaceOf(o.route().namespace_());
        index.routes.emplace(key, RouteInfo{&o.route(), ns, key});
        for (const std::string& h : o.route().hosts()) {
          if (auto t = HostTarget(h, ns)) index.routes_by_host[t->first].insert(key);
        }
        for (const auto& rule : o.route().rules()) {
          for (const auto& d : rule.destinations()) {
            index.routes_by_destination[ServiceKey(ns, d.service())].insert(key);
          }
        }
        reattach->insert(key);
        break;
      }
      case cfg::ConfigObject::kPolicy: {
        ServiceKey k(NamespaceOf(o.policy().namespace_()), o.policy().service());
        index.policies.emplace(key, PolicyInfo{&o.policy(), k});
        index.policies_by_service[k].insert(key);
        dirty_services.insert(k);
        TouchDestinations(k);
        revalidate->insert(index.policies_by_service[k].begin(),
                           index.policies_by_service[k].end());
        break;
      }
      case cfg::ConfigObject::kAuthorizationPolicy: {
        const auto& a = o.authorization_policy();
        ServiceKey k(NamespaceOf(a.namespace_()), a.service());
        index.authz.emplace(key, AuthzInfo{&a, k.first, key, k});
        index.authz_by_service[k].insert(key);
        dirty_services.insert(k);
        break;
      }
      case cfg::ConfigObject::OBJECT_NOT_SET:
        break;
    }
  }

  std::vector<std::string> AllObjectErrors() const {
    std::vector<std::string> out;
    for (const auto& [key, errors] : object_errors)
      out.insert(out.end(), errors.begin(), errors.end());
    return out;
  }

  // --- translation ----------------------------------------------------------------------------

  // A translation of what is dirty, not yet committed.
  struct Candidate {
    std::map<ServiceKey, std::optional<ServiceUnit>> services;  // nullopt: gone
    std::map<std::string, std::optional<VhostFragment>> foreign;
    std::optional<Output> outbound;  // set when rebuilt (empty: no outbound side any more)
    std::vector<std::string> errors;
  };

  std::vector<const VhostFragment*> OutboundVhosts(const Candidate& c) const {
    std::vector<const VhostFragment*> out;
    for (const auto& [k, info] : index.services) {
      auto cand = c.services.find(k);
      const ServiceUnit* unit = nullptr;
      if (cand != c.services.end()) {
        if (cand->second) unit = &*cand->second;
      } else if (auto it = services.find(k); it != services.end()) {
        unit = &it->second;
      }
      if (unit == nullptr) continue;
      for (const VhostFragment& f : unit->vhosts) out.push_back(&f);
    }
    for (const auto& [host, routes] : index.routes_on_foreign) {
      auto cand = c.foreign.find(host);
      if (cand != c.foreign.end()) {
        if (cand->second) out.push_back(&*cand->second);
      } else if (auto it = foreign.find(host); it != foreign.end()) {
        out.push_back(&it->second);
      }
    }
    return out;
  }

  // Whether the changed virtual hosts keep names and domains unique and each passes the proxy's
  // checks: if not, the assembled table is checked whole, for errors as the proxy would give.
  bool OutboundFastCheck(const Candidate& c) const {
    std::map<std::string, int> domain_delta, name_delta;
    auto count = [&](const VhostFragment& f, int d) {
      name_delta[f.name] += d;
      for (const std::string& dom : f.domains) domain_delta[LowerCase(dom)] += d;
    };
    std::map<std::string, const VhostFragment*> before;  // by name, of what changes
    auto old_service = [&](const ServiceKey& k) {
      if (auto it = services.find(k); it != services.end()) {
        for (const VhostFragment& f : it->second.vhosts) {
          count(f, -1);
          before[f.name] = &f;
        }
      }
    };
    for (const auto& [k, unit] : c.services) old_service(k);
    for (const auto& [h, f] : c.foreign) {
      if (auto it = foreign.find(h); it != foreign.end()) {
        count(it->second, -1);
        before[it->second.name] = &it->second;
      }
    }
    auto check_new = [&](const VhostFragment& f) {
      count(f, +1);
      auto b = before.find(f.name);
      return (b != before.end() && b->second->bytes == f.bytes) || VhostValid(f);
    };
    for (const auto& [k, unit] : c.services) {
      if (!unit) continue;
      for (const VhostFragment& f : unit->vhosts) {
        if (!check_new(f)) return false;
      }
    }
    for (const auto& [h, f] : c.foreign) {
      if (f && !check_new(*f)) return false;
    }
    for (const auto& [name, d] : name_delta) {
      auto it = vhost_names.find(name);
      if ((it == vhost_names.end() ? 0 : it->second) + d > 1) return false;
    }
    for (const auto& [dom, d] : domain_delta) {
      auto it = domains.find(dom);
      if ((it == domains.end() ? 0 : it->second) + d > 1) return false;
    }
    return true;
  }

  Candidate Translate(Result* result) const {
    Candidate c;
    Translator tr(index);
    std::set<std::string> seen;
    for (const ServiceKey& k : dirty_services) {
      auto it = index.services.find(k);
      if (it == index.services.end()) {
        if (services.contains(k)) c.services.emplace(k, std::nullopt);
        continue;
      }
      ServiceOutput out = tr.Service(it->second);
      ServiceUnit unit;
      unit.out.translated = std::move(out.resources);
      unit.vhosts = std::move(out.vhosts);
      c.services.emplace(k, std::move(unit));
      ++result->services;
    }
    for (const ServiceKey& k : dirty_endpoints) {
      if (dirty_services.contains(k)) continue;
      auto it = index.services.find(k);
      auto old = services.find(k);
      if (it == index.services.end() || old == services.end()) continue;
      // The same ports, so the same resources in the same order: swap the endpoints in.
      ServiceUnit unit = old->second;
      std::vector<Translated> endpoints = tr.Endpoints(it->second);
      size_t next = 0;
      for (size_t i = 0; i < unit.out.translated.size() && next < endpoints.size(); ++i) {
        if (unit.out.translated[i].any.type_url() == xds::kEndpointTypeUrl) {
          unit.out.translated[i] = std::move(endpoints[next++]);
          unit.out.resources[i] = nullptr;
        }
      }
      c.services.emplace(k, std::move(unit));
      ++result->endpoint_only;
    }
    for (const std::string& h : dirty_foreign) {
      if (!index.routes_on_foreign.contains(h)) {
        if (foreign.contains(h)) c.foreign.emplace(h, std::nullopt);
        continue;
      }
      c.foreign.emplace(h, tr.Foreign(h));
      ++result->foreign;
    }
    // The proxy's checks, on what was translated again, in translation order.
    for (const auto& [k, unit] : c.services) {
      if (!unit) continue;
      const bool endpoints_only = !dirty_services.contains(k);
      for (const Translated& t : unit->out.translated) {
        if (endpoints_only && t.any.type_url() != xds::kEndpointTypeUrl) continue;
        CheckTranslated(t, &seen, &c.errors);
      }
    }
    if (dirty_outbound || !c.services.empty() || !c.foreign.empty()) {
      bool rebuild = dirty_outbound || !c.foreign.empty();
      for (const auto& [k, unit] : c.services) {
        if (dirty_services.contains(k)) rebuild = true;
      }
      if (rebuild) {
        result->outbound = true;
        c.outbound.emplace();
        // No services, no sidecar listener: raw-resource users get exactly what they wrote.
        if (!index.services.empty()) {
          c.outbound->translated = Translator::Outbound(OutboundVhosts(c));
          if (!OutboundFastCheck(c)) {
            for (const Translated& t : c.outbound->translated) CheckTranslated(t, &seen, &c.errors);
          }
        }
      }
    }
    return c;
  }

  // Resources of a unit; those whose content did not change keep their object.
  absl::Status Materialize(Output* out, const Output* before) const {
    std::map<ResourceKey, const xds::ResourcePtr*> old;
    if (before != nullptr) {
      for (const xds::ResourcePtr& r : before->resources)
        old.emplace(ResourceKey(r->type, r->name), &r);
    }
    out->resources.resize(out->translated.size());
    for (size_t i = 0; i < out->translated.size(); ++i) {
      if (out->resources[i] != nullptr) continue;
      absl::StatusOr<xds::ResourcePtr> r = ToResource(out->translated[i]);
      if (!r.ok()) return r.status();
      auto it = old.find(ResourceKey((*r)->type, (*r)->name));
      out->resources[i] =
          it != old.end() && (*it->second)->version == (*r)->version ? *it->second : *std::move(r);
    }
    return absl::OkStatus();
  }

  static std::vector<std::string> Scopes(const Translated& t) {
    return t.groups.empty() ? std::vector<std::string>{""} : t.groups;
  }

  // What changes between two outputs, added to `delta`; `added` collects new or changed names.
  static void DiffOutputs(const Output* before, const Output* after, ResourceDelta* delta,
                          std::vector<std::pair<ResourceKey, std::vector<std::string>>>* added,
                          std::vector<std::pair<ResourceKey, std::vector<std::string>>>* removed) {
    std::map<ResourceKey, std::pair<const xds::ResourcePtr*, const Translated*>> old;
    if (before != nullptr) {
      for (size_t i = 0; i < before->resources.size(); ++i) {
        const xds::ResourcePtr& r = before->resources[i];
        old.emplace(ResourceKey(r->type, r->name), std::make_pair(&r, &before->translated[i]));
      }
    }
    if (after != nullptr) {
      for (size_t i = 0; i < after->resources.size(); ++i) {
        const xds::ResourcePtr& r = after->resources[i];
        std::vector<std::string> scopes = Scopes(after->translated[i]);
        auto it = old.find(ResourceKey(r->type, r->name));
        if (it != old.end()) {
          std::vector<std::string> old_scopes = Scopes(*it->second.second);
          if ((*it->second.first)->version == r->version && old_scopes == scopes) {
            old.erase(it);
            continue;
          }
          for (const std::string& sc : old_scopes) {
            if (std::find(scopes.begin(), scopes.end(), sc) == scopes.end()) {
              delta->Remove(sc, r->type, r->name);
            }
          }
          removed->emplace_back(it->first, old_scopes);
          old.erase(it);
        }
        for (const std::string& sc : scopes) delta->Upsert(sc, r);
        added->emplace_back(ResourceKey(r->type, r->name), scopes);
      }
    }
    for (const auto& [key, ptrs] : old) {
      std::vector<std::string> scopes = Scopes(*ptrs.second);
      for (const std::string& sc : scopes) delta->Remove(sc, key.first, key.second);
      removed->emplace_back(key, scopes);
    }
  }

  static bool Clashes(const std::vector<std::string>& a, const std::vector<std::string>& b) {
    for (const std::string& x : a) {
      for (const std::string& y : b) {
        if (x.empty() || y.empty() || x == y) return true;
      }
    }
    return false;
  }

  static std::string ClashError(const ResourceKey& key, const std::vector<std::string>& scopes) {
    const std::string& group = scopes.front();
    return absl::StrCat(group.empty() ? "" : absl::StrCat("node group ", group, ": "), "duplicate ",
                        Sv(xds::ShortName(key.first)), " name \"", key.second,
                        "\" (a translated resource clashes with a raw resource in --config-dir)");
  }

  // Commits a valid candidate, filling `delta`. Fails (changing nothing) on a clash with a raw
  // resource.
  absl::Status Commit(Candidate c, ResourceDelta* delta) {
    for (auto& [k, unit] : c.services) {
      if (!unit) continue;
      auto old = services.find(k);
      RETURN_IF_ERROR(Materialize(&unit->out, old != services.end() ? &old->second.out : nullptr));
    }
    if (c.outbound) RETURN_IF_ERROR(Materialize(&*c.outbound, &outbound));
    std::vector<std::pair<ResourceKey, std::vector<std::string>>> added, removed;
    ResourceDelta d;
    for (auto& [k, unit] : c.services) {
      auto old = services.find(k);
      DiffOutputs(old != services.end() ? &old->second.out : nullptr, unit ? &unit->out : nullptr,
                  &d, &added, &removed);
    }
    if (c.outbound) DiffOutputs(&outbound, &*c.outbound, &d, &added, &removed);
    for (const auto& [key, scopes] : added) {
      auto raw = raw_scopes.find(key);
      if (raw != raw_scopes.end() && Clashes(raw->second, scopes)) {
        return absl::InvalidArgumentError(ClashError(key, scopes));
      }
    }
    // Valid: from here nothing fails.
    for (const auto& [key, scopes] : removed) translated_scopes.erase(key);
    for (const auto& [key, scopes] : added) translated_scopes[key] = scopes;
    auto count = [&](const VhostFragment& f, int delta_count) {
      if ((vhost_names[f.name] += delta_count) == 0) vhost_names.erase(f.name);
      for (const std::string& dom : f.domains) {
        std::string l = LowerCase(dom);
        if ((domains[l] += delta_count) == 0) domains.erase(l);
      }
    };
    for (auto& [k, unit] : c.services) {
      auto old = services.find(k);
      if (old != services.end()) {
        for (const VhostFragment& f : old->second.vhosts) count(f, -1);
        services.erase(old);
      }
      if (unit) {
        for (const VhostFragment& f : unit->vhosts) count(f, +1);
        services.emplace(k, *std::move(unit));
      }
    }
    for (auto& [h, f] : c.foreign) {
      auto old = foreign.find(h);
      if (old != foreign.end()) {
        count(old->second, -1);
        foreign.erase(old);
      }
      if (f) {
        count(*f, +1);
        foreign.emplace(h, *std::move(f));
      }
    }
    if (c.outbound) outbound = *std::move(c.outbound);
    dirty_services.clear();
    dirty_endpoints.clear();
    dirty_foreign.clear();
    dirty_outbound = false;
    *delta = std::move(d);
    return absl::OkStatus();
  }

  void AppendOutputs(Translation* out) const {
    auto add = [&](const Output& o) {
      for (size_t i = 0; i < o.resources.size(); ++i) {
        if (o.translated[i].groups.empty()) {
          out->shared.push_back(o.resources[i]);
        } else {
          for (const std::string& g : o.translated[i].groups)
            out->per_group[g].push_back(o.resources[i]);
        }
      }
    };
    for (const auto& [k, unit] : services) add(unit.out);
    add(outbound);
  }
};

absl::Status ModelState::Result::status() const {
  if (errors.empty()) return absl::OkStatus();
  ValidationErrors out;
  for (const std::string& e : errors) out.Add(e);
  return out.ToStatus();
}

ModelState::ModelState() : impl_(std::make_unique<Impl>()) {}
ModelState::~ModelState() = default;

ModelState::Result ModelState::Apply(std::vector<Change> changes) {
  Impl& m = *impl_;
  Result r;
  std::set<std::string> revalidate, reattach;
  for (Change& c : changes) {
    auto it = m.objects.find(c.key);
    ObjectPtr old = it != m.objects.end() ? it->second : nullptr;
    r.undo.push_back(Change{c.key, old});
    if (old == nullptr && c.object == nullptr) continue;
    if (old != nullptr && c.object != nullptr && EndpointsOnly(*old, *c.object)) {
      // The shortest path: nothing else reads a service's endpoints.
      ServiceKey k(NamespaceOf(c.object->service().namespace_()), c.object->service().name());
      m.index.services.at(k).service = &c.object->service();
      m.dirty_endpoints.insert(k);
      revalidate.insert(c.key);
      m.objects[c.key] = std::move(c.object);
      continue;
    }
    if (old != nullptr) m.Unindex(c.key, *old, &revalidate, &reattach);
    if (c.object != nullptr) {
      m.objects[c.key] = c.object;
      m.AddToIndex(c.key, *c.object, &revalidate, &reattach);
    } else {
      m.objects.erase(c.key);
    }
  }
  for (const std::string& route : reattach) {
    m.Detach(route);
    m.Attach(route);
  }
  for (const std::string& key : revalidate) {
    auto it = m.objects.find(key);
    if (it == m.objects.end()) {
      m.object_errors.erase(key);
      continue;
    }
    ValidationErrors errors;
    Validator(m.index, &errors).Validate(key, *it->second);
    ++r.validated;
    if (errors.ok()) {
      m.object_errors.erase(key);
    } else {
      m.object_errors[key] = errors.errors();
    }
  }
  // Translating a structurally broken set could dereference dangling references.
  if (!m.object_errors.empty()) {
    r.errors = m.AllObjectErrors();
    return r;
  }
  Impl::Candidate c = m.Translate(&r);
  if (!c.errors.empty()) {
    r.errors = std::move(c.errors);
    return r;
  }
  if (absl::Status s = m.Commit(std::move(c), &r.delta); !s.ok()) {
    r.errors = {std::string(s.message())};
  }
  return r;
}

absl::Status ModelState::SetRawResources(
    const std::vector<xds::ResourcePtr>& shared,
    const std::map<std::string, std::vector<xds::ResourcePtr>>& groups) {
  Impl& m = *impl_;
  std::map<ResourceKey, std::vector<std::string>> next;
  for (const xds::ResourcePtr& r : shared) next[ResourceKey(r->type, r->name)].push_back("");
  for (const auto& [g, rs] : groups) {
    for (const xds::ResourcePtr& r : rs) next[ResourceKey(r->type, r->name)].push_back(g);
  }
  for (const auto& [key, scopes] : next) {
    auto t = m.translated_scopes.find(key);
    if (t != m.translated_scopes.end() && Impl::Clashes(t->second, scopes)) {
      return absl::InvalidArgumentError(Impl::ClashError(key, t->second));
    }
  }
  m.raw_scopes = std::move(next);
  return absl::OkStatus();
}

const ModelState::ObjectPtr* ModelState::Find(const std::string& key) const {
  auto it = impl_->objects.find(key);
  return it == impl_->objects.end() ? nullptr : &it->second;
}

const std::map<std::string, ModelState::ObjectPtr>& ModelState::objects() const {
  return impl_->objects;
}

Translation ModelState::Resources() const {
  Translation out;
  impl_->AppendOutputs(&out);
  auto by_type_name = [](const xds::ResourcePtr& a, const xds::ResourcePtr& b) {
    return std::tie(a->type, a->name) < std::tie(b->type, b->name);
  };
  std::sort(out.shared.begin(), out.shared.end(), by_type_name);
  for (auto& [group, resources] : out.per_group) {
    std::sort(resources.begin(), resources.end(), by_type_name);
  }
  return out;
}

ResourceDelta ModelState::All() const {
  Translation t = Resources();
  ResourceDelta d;
  for (xds::ResourcePtr& r : t.shared) d.Upsert("", std::move(r));
  for (auto& [g, rs] : t.per_group) {
    for (xds::ResourcePtr& r : rs) d.Upsert(g, std::move(r));
  }
  return d;
}

namespace {

// The objects of a list as model changes, with what only a list can get wrong (an empty
// object, a key twice) reported as ValidateConfig always has.
std::vector<ModelState::Change> ListChanges(const std::vector<cfg::ConfigObject>& objects,
                                            std::vector<std::string>* errors) {
  std::vector<ModelState::Change> changes;
  std::map<std::string, size_t> keys;
  ValidationErrors list_errors;
  for (size_t i = 0; i < objects.size(); ++i) {
    const cfg::ConfigObject& o = objects[i];
    if (o.object_case() == cfg::ConfigObject::OBJECT_NOT_SET) {
      list_errors.AddAt(Indexed("objects", i),
                        "one of service, route, policy or authorization_policy must be set");
      continue;
    }
    std::string key = ObjectKey(o);
    if (auto [it, inserted] = keys.emplace(key, i); !inserted) {
      list_errors.AddAt(
          key, absl::StrCat("duplicate object (objects[", it->second, "] and objects[", i, "])"));
      continue;
    }
    changes.push_back(
        ModelState::Change{std::move(key), std::make_shared<const cfg::ConfigObject>(o)});
  }
  *errors = list_errors.errors();
  return changes;
}

absl::StatusOr<Translation> TranslateList(const std::vector<cfg::ConfigObject>& objects) {
  std::vector<std::string> errors;
  std::vector<ModelState::Change> changes = ListChanges(objects, &errors);
  ModelState state;
  ModelState::Result r = state.Apply(std::move(changes));
  // What the list got wrong, then what the objects do.
  errors.insert(errors.end(), r.errors.begin(), r.errors.end());
  if (!errors.empty()) {
    ValidationErrors out;
    for (const std::string& e : errors) out.Add(e);
    return out.ToStatus();
  }
  return state.Resources();
}

}  // namespace

std::string ClusterName(std::string_view name, std::string_view ns, uint32_t port) {
  return absl::StrCat(Sv(name), ".", Sv(ns), ":", port);
}

std::string_view ObjectKind(const cfg::ConfigObject& object) {
  switch (object.object_case()) {
    case cfg::ConfigObject::kService:
      return "Service";
    case cfg::ConfigObject::kRoute:
      return "Route";
    case cfg::ConfigObject::kPolicy:
      return "Policy";
    case cfg::ConfigObject::kAuthorizationPolicy:
      return "AuthorizationPolicy";
    case cfg::ConfigObject::OBJECT_NOT_SET:
      break;
  }
  return "";
}

std::string ObjectKey(const cfg::ConfigObject& object) {
  const std::string* name = nullptr;
  const std::string* ns = nullptr;
  switch (object.object_case()) {
    case cfg::ConfigObject::kService:
      name = &object.service().name();
      ns = &object.service().namespace_();
      break;
    case cfg::ConfigObject::kRoute:
      name = &object.route().name();
      ns = &object.route().namespace_();
      break;
    case cfg::ConfigObject::kPolicy:
      name = &object.policy().name();
      ns = &object.policy().namespace_();
      break;
    case cfg::ConfigObject::kAuthorizationPolicy:
      name = &object.authorization_policy().name();
      ns = &object.authorization_policy().namespace_();
      break;
    case cfg::ConfigObject::OBJECT_NOT_SET:
      return "";
  }
  return absl::StrCat(Sv(ObjectKind(object)), "/", NamespaceOf(*ns), "/", *name);
}

absl::StatusOr<std::vector<cfg::ConfigObject>> ParseConfigDocuments(
    const std::vector<YamlDocument>& docs) {
  std::vector<cfg::ConfigObject> out;
  std::vector<std::string> errors;
  for (const YamlDocument& doc : docs) {
    if (doc.empty || !doc.is_map || !doc.lines.contains("kind")) continue;
    const std::string where = absl::StrCat(doc.source, ":", doc.LineOf("kind"), ": kind: ");
    auto kind_it = doc.top_scalars.find("kind");
    if (kind_it == doc.top_scalars.end()) {
      errors.push_back(absl::StrCat(where, "must be a string"));
      continue;
    }
    const std::string& kind = kind_it->second;
    cfg::ConfigObject object;
    google::protobuf::Message* target = nullptr;
    if (kind == "Service") {
      target = object.mutable_service();
    } else if (kind == "Route") {
      target = object.mutable_route();
    } else if (kind == "Policy") {
      target = object.mutable_policy();
    } else if (kind == "AuthorizationPolicy") {
      target = object.mutable_authorization_policy();
    } else {
      errors.push_back(
          absl::StrCat(where, "unknown kind \"", kind, "\" (expected ", Sv(kKinds), ")"));
      continue;
    }
    // `kind` selects the message; the remaining top-level fields are that message.
    YamlDocument stripped = doc;
    stripped.json = doc.JsonWithout("kind");
    absl::Status parsed = YamlDocumentToProto(stripped, target);
    if (!parsed.ok()) {
      // Already "source:line: full.path: problem": `stripped` keeps the document's lines.
      errors.emplace_back(parsed.message().data(), parsed.message().size());
      continue;
    }
    out.push_back(std::move(object));
  }
  if (!errors.empty()) return absl::InvalidArgumentError(absl::StrJoin(errors, "; "));
  return out;
}

absl::Status ValidateConfig(const std::vector<cfg::ConfigObject>& objects) {
  return TranslateList(objects).status();
}

absl::StatusOr<Translation> TranslateForNodes(const std::vector<cfg::ConfigObject>& objects) {
  return TranslateList(objects);
}

absl::StatusOr<std::vector<xds::ResourcePtr>> Translate(
    const std::vector<cfg::ConfigObject>& objects) {
  absl::StatusOr<Translation> t = TranslateForNodes(objects);
  if (!t.ok()) return t.status();
  return std::move(t->shared);
}

std::string InboundName(std::string_view name, std::string_view ns, uint32_t port) {
  return absl::StrCat("inbound|", port, "|", Sv(name), ".", Sv(ns));
}

}  // namespace weft::cp
