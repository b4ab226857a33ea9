#include "common/xds/fault_check.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "common/xds/matcher_validate.h"
#include "common/xds/unknown_fields.h"

namespace weft::xds {
namespace {

using Scope = ValidationErrors::Scope;
using envoy::extensions::filters::http::fault::v3::FaultAbort;
using envoy::extensions::filters::http::fault::v3::HTTPFault;
using envoy::type::v3::FractionalPercent;

uint32_t Denominator(FractionalPercent::DenominatorType d) {
  switch (d) {
    case FractionalPercent::TEN_THOUSAND:
      return 10'000;
    case FractionalPercent::MILLION:
      return 1'000'000;
    default:
      return 100;
  }
}

// Envoy treats a numerator above the denominator as 100 %; here it is refused as the typo it
// almost always is.
void CheckFraction(const FractionalPercent& p, ValidationErrors* errors) {
  Scope s(errors, "percentage");
  if (!FractionalPercent::DenominatorType_IsValid(p.denominator())) {
    errors->AddAt("denominator", absl::StrCat("unknown value ", p.denominator()));
    return;
  }
  const uint32_t denominator = Denominator(p.denominator());
  if (p.numerator() > denominator) {
    errors->AddAt("numerator", absl::StrCat("must be at most ", denominator,
                                            " (the denominator), got ", p.numerator()));
  }
}

void CheckAbort(const FaultAbort& a, ValidationErrors* errors) {
  Scope s(errors, "abort");
  switch (a.error_type_case()) {
    case FaultAbort::kHttpStatus:
      if (a.http_status() < 200 || a.http_status() >= 600) {
        errors->AddAt("http_status", absl::StrCat("must be in 200..599, got ", a.http_status()));
      }
      break;
    case FaultAbort::kGrpcStatus:
      if (a.grpc_status() > 16) {
        errors->AddAt("grpc_status",
                      absl::StrCat("must be a gRPC status code (0..16), got ", a.grpc_status()));
      }
      break;
    case FaultAbort::kHeaderAbort:
      break;
    case FaultAbort::ERROR_TYPE_NOT_SET:
      errors->Add("one of http_status, grpc_status or header_abort must be set");
      break;
  }
  CheckFraction(a.percentage(), errors);
}

void CheckDelay(const envoy::extensions::filters::common::fault::v3::FaultDelay& d,
                ValidationErrors* errors) {
  using Delay = envoy::extensions::filters::common::fault::v3::FaultDelay;
  Scope s(errors, "delay");
  switch (d.fault_delay_secifier_case()) {
    case Delay::kFixedDelay: {
      // Envoy counts delays in whole milliseconds and skips one of 0 ms.
      const auto& fd = d.fixed_delay();
      if (fd.seconds() < 0 || fd.nanos() < 0 || (fd.seconds() == 0 && fd.nanos() < 1'000'000)) {
        errors->AddAt("fixed_delay", "must be at least 1ms");
      } else if (fd.seconds() > 315'576'000'000) {
        errors->AddAt("fixed_delay", "is out of range");
      }
      break;
    }
    case Delay::kHeaderDelay:
      break;
    case Delay::FAULT_DELAY_SECIFIER_NOT_SET:
      errors->Add("one of fixed_delay or header_delay must be set");
      break;
  }
  CheckFraction(d.percentage(), errors);
}

}  // namespace

void CheckFaultFilter(const HTTPFault& config, ValidationErrors* errors) {
  CheckNoUnknownFields(config, errors);
  if (config.has_abort()) CheckAbort(config.abort(), errors);
  if (config.has_delay()) CheckDelay(config.delay(), errors);
  for (int i = 0; i < config.headers_size(); ++i) {
    Scope s(errors, absl::StrCat("headers[", i, "]"));
    ValidateHeaderMatcher(config.headers(i), errors);
  }
  if (config.has_response_rate_limit()) {
    errors->AddAt("response_rate_limit", "is not supported by weft-proxy's fault filter");
  }
  // weft-proxy has no runtime layer, so a runtime key would never take effect.
  const std::pair<const std::string&, std::string_view> runtime_keys[] = {
      {config.delay_percent_runtime(), "delay_percent_runtime"},
      {config.abort_percent_runtime(), "abort_percent_runtime"},
      {config.delay_duration_runtime(), "delay_duration_runtime"},
      {config.abort_http_status_runtime(), "abort_http_status_runtime"},
      {config.max_active_faults_runtime(), "max_active_faults_runtime"},
      {config.response_rate_limit_percent_runtime(), "response_rate_limit_percent_runtime"},
      {config.abort_grpc_status_runtime(), "abort_grpc_status_runtime"},
  };
  for (const auto& [value, field] : runtime_keys) {
    if (!value.empty()) errors->AddAt(field, "runtime overrides are not supported");
  }
}

}  // namespace weft::xds
