// envoy.filters.http.rbac as a stream filter: the RBAC engine (rbac.h) asked once per request,
// at its headers. The shadow rules are evaluated and counted, never enforced; the enforced rules
// let the request go on, or answer 403 "RBAC: access denied" with response flag RBAC and
// Envoy's response code details (rbac_access_denied_matched_policy[<policy>]). Counters, under
// the connection manager's "http.<stat_prefix>." scope: rbac.allowed, rbac.denied,
// rbac.shadow_allowed, rbac.shadow_denied (with the configured stat prefixes), and per policy
// with track_per_rule_stats.
//
// The engine sees the connection's peer (source_ip, direct_remote_ip, remote_ip: weft-proxy
// neither reads x-forwarded-for nor PROXY protocol, so all three are the peer) and its local
// address (destination_ip, destination_port). No peer certificate yet: `authenticated`
// principals match nothing until mTLS, as in Envoy on a plaintext connection.
#pragma once

#include <memory>
#include <string_view>

#include "absl/status/statusor.h"
#include "data-plane/http/filter.h"
#include "data-plane/http/filters/rbac/rbac.h"

namespace weft::http::rbac {

inline constexpr std::string_view kFilterName = "envoy.filters.http.rbac";
inline constexpr std::string_view kTypeUrl =
    "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC";

std::shared_ptr<const FilterFactory> NewRbacFilterFactory(
    std::shared_ptr<const RbacFilterConfig> config);
// Compiles `config` (RbacFilterConfig::Create: fails with the field path of what is refused).
absl::StatusOr<std::shared_ptr<const FilterFactory>> NewRbacFilterFactory(
    const envoy::extensions::filters::http::rbac::v3::RBAC& config);

}  // namespace weft::http::rbac
