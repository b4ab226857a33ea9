// envoy.filters.http.fault as a stream filter over the fault engine (fault.h). At the request's
// headers the engine draws; then
//  - a delay stops decoding and wakes the filter through the connection manager's timers
//    (StreamFilterCallbacks::WakeAt, so the worker's tick, or a unit test's fake clock, drives
//    it), flag DI; body bytes that arrive meanwhile wait in the stream;
//  - an abort (at once, or when the delay is over) is a local reply, flag FI, details
//    "fault_filter_abort": an HTTP status with the one-line body "fault filter abort", or for a
//    gRPC abort a trailers-only gRPC response (HTTP 200, grpc-status, grpc-message);
//  - otherwise the request goes on, after the delay if there was one.
// Counters under "http.<stat_prefix>.": fault.delays_injected, fault.aborts_injected,
// fault.faults_overflow (a fault drawn while max_active_faults were active: not injected).
#pragma once

#include <memory>
#include <string_view>

#include "absl/status/statusor.h"
#include "data-plane/http/filter.h"
#include "data-plane/http/filters/fault/fault.h"

namespace weft::http::fault {

inline constexpr std::string_view kFilterName = "envoy.filters.http.fault";
inline constexpr std::string_view kTypeUrl =
    "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault";
inline constexpr std::string_view kAbortDetails = "fault_filter_abort";

std::shared_ptr<const FilterFactory> NewFaultFilterFactory(
    std::shared_ptr<const FaultFilterConfig> config);
// Compiles `config` (FaultFilterConfig::Create: fails with the field path of what is refused).
absl::StatusOr<std::shared_ptr<const FilterFactory>> NewFaultFilterFactory(
    const envoy::extensions::filters::http::fault::v3::HTTPFault& config);

}  // namespace weft::http::fault
