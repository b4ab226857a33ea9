// What weft-proxy's RBAC filter (data-plane/http/filters/rbac) implements of
// envoy.extensions.filters.http.rbac.v3.RBAC, as a check: the filter's Create() runs it first,
// and validate.cc runs it for every RBAC filter of an HttpConnectionManager, so weft-cp refuses
// at apply time exactly what a proxy would NACK. Anything the filter does not implement is an
// error naming its field path, never ignored (an ignored permission would allow or deny more
// than the operator wrote).
#pragma once

#include "common/validation.h"
#include "envoy/config/rbac/v3/rbac.pb.h"
#include "envoy/extensions/filters/http/rbac/v3/rbac.pb.h"

namespace weft::xds {

// The whole filter config: rules, shadow_rules, the stat prefixes, track_per_rule_stats, and
// no field outside our proto subset.
void CheckRbacFilter(const envoy::extensions::filters::http::rbac::v3::RBAC& config,
                     ValidationErrors* errors);

// One rule set (`rules` or `shadow_rules`).
void CheckRbacRules(const envoy::config::rbac::v3::RBAC& rules, ValidationErrors* errors);

}  // namespace weft::xds
