// What weft-proxy's fault filter (data-plane/http/filters/fault) implements of
// envoy.extensions.filters.http.fault.v3.HTTPFault, as a check: the filter's Create() runs it
// first and validate.cc runs it for every fault filter of an HttpConnectionManager, so weft-cp
// refuses at apply time exactly what a proxy would NACK. Unimplemented fields (the response rate
// limit, runtime overrides, fields outside our proto subset) are errors with their field path.
#pragma once

#include "common/validation.h"
#include "envoy/extensions/filters/http/fault/v3/fault.pb.h"

namespace weft::xds {

// False until the connection manager applies the fault filter: validate.cc then refuses a
// (non-optional) fault filter after checking it, so that no proxy ACKs a fault it would not
// inject. The change that wires the filter in flips this.
inline constexpr bool kFaultFilterApplied = false;

void CheckFaultFilter(const envoy::extensions::filters::http::fault::v3::HTTPFault& config,
                      ValidationErrors* errors);

}  // namespace weft::xds
