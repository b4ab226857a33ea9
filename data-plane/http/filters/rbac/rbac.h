// The RBAC engine of weft-proxy's envoy.filters.http.rbac filter: an
// envoy.extensions.filters.http.rbac.v3.RBAC compiled once (on the xDS thread, into the config
// snapshot) into an immutable matcher tree that decides, per request, whether it is allowed.
// Pure: no I/O, no connection manager; the filter adapter feeds it a RequestInfo and acts on the
// Decision (403 "RBAC: access denied", stats, access log). Envoy's semantics
// (source/extensions/filters/common/rbac/), so a policy written for Envoy or produced by weft-cp
// from an AuthorizationPolicy decides the same:
//  - a policy matches when any of its permissions and any of its principals match;
//  - ALLOW: allowed iff some policy matches; DENY: denied iff some policy matches; LOG: always
//    allowed, and "should log" iff some policy matches;
//  - the policy reported is the first matching one in name order ("" when none matched);
//  - `rules` absent: nothing enforced; present with no policies: ALLOW denies every request.
//
// Thread safety: immutable after Create(); Evaluate() may run on any number of threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/xds/cidr.h"
#include "data-plane/http/filters/request_headers.h"
#include "data-plane/router/matchers.h"
#include "envoy/config/rbac/v3/rbac.pb.h"
#include "envoy/extensions/filters/http/rbac/v3/rbac.pb.h"

namespace weft::http::rbac {

struct Endpoint {
  xds::IpAddress ip;
  uint16_t port = 0;
};

// The peer's certificate facts, as Envoy's AuthenticatedMatcher reads them.
struct PeerCertificate {
  std::vector<std::string> uri_sans;
  std::vector<std::string> dns_sans;
  std::string subject;  // RFC 2253 form, as Envoy's subjectPeerCertificate()
};

// What the engine looks at. Views only: the caller keeps everything alive during Evaluate().
struct RequestInfo {
  // ":method", ":path" (query included; url_path matchers drop it), ":authority", ":scheme":
  // header permissions on these names are answered from here, whatever `headers` holds.
  RequestLine line;
  const router::HeaderLookup* headers = nullptr;  // the other request headers; null: none
  // The downstream connection's peer (Envoy's connection remote address: `source_ip`).
  std::optional<Endpoint> source;
  // The directly connected peer after any PROXY protocol header (`direct_remote_ip`); unset:
  // same as `source`.
  std::optional<Endpoint> direct_remote;
  // The original client as the connection manager derived it, e.g. from x-forwarded-for
  // (`remote_ip`); unset: same as `direct_remote`.
  std::optional<Endpoint> remote;
  // The local address the connection was accepted on (`destination_ip`, `destination_port`).
  std::optional<Endpoint> destination;
  std::string_view requested_server_name;  // SNI; empty without TLS
  // Null on a plaintext connection: `authenticated` principals then never match, exactly as in
  // Envoy without TLS. On a TLS connection without a client certificate: all fields empty.
  const PeerCertificate* tls = nullptr;
};

enum class Action { kAllow, kDeny, kLog };

struct Decision {
  bool allowed = true;
  // The first policy (by name) that matched, or "" when none did. Points into the Engine.
  std::string_view matched_policy;
  // LOG action only: some policy matched, so the access log should record the request.
  bool should_log = false;
};

// One rule set: `rules` or `shadow_rules`.
class Engine {
 public:
  // Fails with the field path of the first problems (see common/xds/rbac_check.h).
  static absl::StatusOr<Engine> Create(const envoy::config::rbac::v3::RBAC& rules);

  Decision Evaluate(const RequestInfo& request) const;
  Action action() const { return action_; }
  size_t policy_count() const { return policies_.size(); }

  struct Matcher;  // the compiled permission / principal tree (rbac.cc)
  struct Policy {
    std::string name;
    std::vector<Matcher> permissions;
    std::vector<Matcher> principals;
  };

  Engine(Engine&&) noexcept;
  Engine& operator=(Engine&&) noexcept;
  ~Engine();

 private:
  Engine();
  Action action_ = Action::kAllow;
  std::vector<Policy> policies_;  // sorted by name
};

// Stat names relative to the connection manager's "http.<stat_prefix>.", as Envoy names them:
// "rbac.[<rules_stat_prefix>.]allowed", "…denied", and for the shadow rules
// "rbac.[<rules_stat_prefix>.][<shadow_rules_stat_prefix>.]shadow_allowed", "…shadow_denied".
struct StatNames {
  std::string allowed;
  std::string denied;
  std::string shadow_allowed;
  std::string shadow_denied;
  // With track_per_rule_stats: the prefixes of "<prefix><policy>.allowed" / ".denied" and of
  // "<shadow prefix><policy>.shadow_allowed" / ".shadow_denied".
  std::string policy_prefix;
  std::string shadow_policy_prefix;
};

// The filter: both rule sets and the stat names.
class RbacFilterConfig {
 public:
  static absl::StatusOr<std::shared_ptr<const RbacFilterConfig>> Create(
      const envoy::extensions::filters::http::rbac::v3::RBAC& config);

  struct Result {
    std::optional<Decision> enforced;  // nullopt: no `rules`, the request goes on
    std::optional<Decision> shadow;    // nullopt: no `shadow_rules`; never enforced
  };
  Result Evaluate(const RequestInfo& request) const;

  const Engine* rules() const { return rules_ ? &*rules_ : nullptr; }
  const Engine* shadow_rules() const { return shadow_ ? &*shadow_ : nullptr; }
  const StatNames& stat_names() const { return stats_; }
  bool track_per_rule_stats() const { return track_per_rule_stats_; }

 private:
  RbacFilterConfig() = default;
  std::optional<Engine> rules_;
  std::optional<Engine> shadow_;
  StatNames stats_;
  bool track_per_rule_stats_ = false;
};

// The local reply for a denied request, as Envoy sends it.
inline constexpr int kDeniedStatus = 403;
inline constexpr std::string_view kDeniedBody = "RBAC: access denied";
// Envoy's %RESPONSE_CODE_DETAILS% for a denial: "rbac_access_denied_matched_policy[<policy>]",
// "none" when no policy matched, white space in the name replaced by '_'.
std::string ResponseCodeDetails(std::string_view matched_policy);

}  // namespace weft::http::rbac
