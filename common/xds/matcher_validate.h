// The validators of the matcher messages that routes and HTTP filters share, exported from
// validate.cc so a filter's check (rbac_check.h, fault_check.h) refuses exactly what a route
// would. Errors go under the current scope of `errors`.
#pragma once

#include "common/validation.h"
#include "envoy/config/route/v3/route_components.pb.h"
#include "envoy/type/matcher/v3/string.pb.h"

namespace weft::xds {

void ValidateStringMatcher(const envoy::type::matcher::v3::StringMatcher& m,
                           ValidationErrors* errors);
void ValidateHeaderMatcher(const envoy::config::route::v3::HeaderMatcher& h,
                           ValidationErrors* errors);

}  // namespace weft::xds
