#include "common/xds/failover_check.h"

#include <set>
#include <string>
#include <string_view>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/strings.h"
#include "common/xds/unknown_fields.h"

namespace weft::xds {
namespace {

using Scope = ValidationErrors::Scope;
using envoy::config::cluster::v3::CircuitBreakers;
using envoy::config::core::v3::HealthCheck;

constexpr std::string_view kUnsupported = "is not supported by weft-proxy";

std::string Indexed(std::string_view field, int i) { return absl::StrCat(Sv(field), "[", i, "]"); }

bool HasControl(std::string_view s) {
  for (char c : s) {
    if (c == '\r' || c == '\n' || c == '\0') return true;
  }
  return false;
}

void CheckPositive(bool has, const google::protobuf::Duration& d, std::string_view field,
                   ValidationErrors* errors) {
  if (has && (d.seconds() < 0 || d.nanos() < 0 || (d.seconds() == 0 && d.nanos() == 0))) {
    errors->AddAt(field, "must be greater than 0");
  }
}

template <typename Ranges>
void CheckStatusRanges(const Ranges& ranges, std::string_view field, ValidationErrors* errors) {
  for (int i = 0; i < ranges.size(); ++i) {
    const auto& r = ranges[i];
    if (r.start() < 100 || r.end() > 600 || r.start() >= r.end()) {
      errors->AddAt(Indexed(field, i),
                    absl::StrCat("must be a status range [start, end) within [100, 600), got [",
                                 r.start(), ", ", r.end(), ")"));
    }
  }
}

// Header mutations of a probe: the probe owns Host (:authority) and the pseudo-headers.
template <typename Options>
void CheckHeaders(const Options& headers, std::string_view field,
                  std::initializer_list<std::string_view> reserved, ValidationErrors* errors) {
  std::string reserved_names;
  for (std::string_view r : reserved) {
    absl::StrAppend(&reserved_names, reserved_names.empty() ? "" : ", ", Sv(r));
  }
  for (int i = 0; i < headers.size(); ++i) {
    const auto& h = headers[i].header();
    const std::string& value = h.raw_value().empty() ? h.value() : h.raw_value();
    const std::string name = absl::AsciiStrToLower(h.key());
    bool bad = name.empty() || name[0] == ':' || name.find(':') != std::string::npos ||
               name.find(' ') != std::string::npos || HasControl(name) || HasControl(value);
    for (std::string_view r : reserved) bad = bad || name == r;
    if (bad) {
      errors->AddAt(absl::StrCat(Indexed(field, i), ".header"),
                    absl::StrCat("\"", h.key(),
                                 "\": a header name (no ':' or spaces, not a "
                                 "pseudo-header or ",
                                 Sv(reserved_names), ") with a value without control characters"));
    }
  }
}

void CheckHttp(const HealthCheck::HttpHealthCheck& h, ValidationErrors* errors) {
  Scope s(errors, "http_health_check");
  if (h.codec_client_type() != envoy::type::v3::HTTP1) {
    errors->AddAt("codec_client_type",
                  "only HTTP1 is supported by weft-proxy for HTTP health checks");
  }
  if (h.has_send()) errors->AddAt("send", kUnsupported);
  if (h.receive_size() > 0) errors->AddAt("receive", kUnsupported);
  if (h.has_response_buffer_size()) errors->AddAt("response_buffer_size", kUnsupported);
  if (h.has_service_name_matcher()) errors->AddAt("service_name_matcher", kUnsupported);
  if (h.method() == envoy::config::core::v3::CONNECT) {
    errors->AddAt("method", "CONNECT is not allowed for health checks");
  } else if (!envoy::config::core::v3::RequestMethod_IsValid(h.method())) {
    errors->AddAt("method", absl::StrCat("unknown value ", h.method()));
  }
  if (h.path().empty() || h.path()[0] != '/' || HasControl(h.path()) ||
      h.path().find(' ') != std::string::npos) {
    errors->AddAt("path", "must be an origin-form path (\"/...\", no spaces)");
  }
  if (HasControl(h.host())) errors->AddAt("host", "must not hold control characters");
  CheckStatusRanges(h.expected_statuses(), "expected_statuses", errors);
  CheckStatusRanges(h.retriable_statuses(), "retriable_statuses", errors);
  CheckHeaders(h.request_headers_to_add(), "request_headers_to_add", {"host"}, errors);
  for (int i = 0; i < h.request_headers_to_remove_size(); ++i) {
    const std::string name = absl::AsciiStrToLower(h.request_headers_to_remove(i));
    if (name.empty() || name[0] == ':' || name == "host") {
      errors->AddAt(Indexed("request_headers_to_remove", i),
                    "the probe's Host and pseudo-headers cannot be removed");
    }
  }
}

void CheckTcp(const HealthCheck::TcpHealthCheck& t, ValidationErrors* errors) {
  Scope s(errors, "tcp_health_check");
  if (t.has_send()) {
    Scope ss(errors, "send");
    if (auto bytes = HealthCheckPayload(t.send()); !bytes.ok()) {
      errors->AddAt("text", std::string(bytes.status().message()));
    }
  }
  for (int i = 0; i < t.receive_size(); ++i) {
    Scope rs(errors, Indexed("receive", i));
    auto bytes = HealthCheckPayload(t.receive(i));
    if (!bytes.ok()) {
      errors->AddAt("text", std::string(bytes.status().message()));
    } else if (bytes->empty()) {
      errors->Add("must not be empty (a block that always matches)");
    }
  }
}

void CheckGrpc(const HealthCheck::GrpcHealthCheck& g, ValidationErrors* errors) {
  Scope s(errors, "grpc_health_check");
  if (HasControl(g.authority())) errors->AddAt("authority", "must not hold control characters");
  if (HasControl(g.service_name())) {
    errors->AddAt("service_name", "must not hold control characters");
  }
  CheckHeaders(g.initial_metadata(), "initial_metadata", {"host", "te", "content-type"}, errors);
}

void CheckThresholds(const CircuitBreakers::Thresholds& t, ValidationErrors* errors) {
  if (t.track_remaining()) errors->AddAt("track_remaining", kUnsupported);
  if (t.has_max_connection_pools()) errors->AddAt("max_connection_pools", kUnsupported);
}

}  // namespace

absl::StatusOr<std::string> HealthCheckPayload(const HealthCheck::Payload& p) {
  if (p.payload_case() == HealthCheck::Payload::kBinary) return p.binary();
  const std::string& hex = p.text();
  auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (hex.size() % 2 != 0) {
    return absl::InvalidArgumentError("hex payload has an odd number of digits");
  }
  std::string out;
  out.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int hi = digit(hex[i]);
    const int lo = digit(hex[i + 1]);
    if (hi < 0 || lo < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", hex.substr(i, 2), "\" is not a hex byte"));
    }
    out.push_back(static_cast<char>(hi * 16 + lo));
  }
  return out;
}

void CheckHealthCheck(const HealthCheck& hc, ValidationErrors* errors) {
  CheckNoUnknownFields(hc, errors);
  CheckPositive(hc.has_initial_jitter(), hc.initial_jitter(), "initial_jitter", errors);
  CheckPositive(hc.has_no_traffic_interval(), hc.no_traffic_interval(), "no_traffic_interval",
                errors);
  CheckPositive(hc.has_no_traffic_healthy_interval(), hc.no_traffic_healthy_interval(),
                "no_traffic_healthy_interval", errors);
  CheckPositive(hc.has_unhealthy_interval(), hc.unhealthy_interval(), "unhealthy_interval", errors);
  CheckPositive(hc.has_unhealthy_edge_interval(), hc.unhealthy_edge_interval(),
                "unhealthy_edge_interval", errors);
  CheckPositive(hc.has_healthy_edge_interval(), hc.healthy_edge_interval(), "healthy_edge_interval",
                errors);
  if (hc.has_interval_jitter() &&
      (hc.interval_jitter().seconds() < 0 || hc.interval_jitter().nanos() < 0)) {
    errors->AddAt("interval_jitter", "must not be negative");
  }
  if (hc.has_alt_port()) errors->AddAt("alt_port", kUnsupported);
  if (hc.has_reuse_connection() && !hc.reuse_connection().value()) {
    errors->AddAt("reuse_connection", "false is not supported by weft-proxy");
  }
  if (hc.event_logger_size() > 0) {
    errors->AddAt("event_logger", "is not supported by weft-proxy (no health check event log)");
  }
  if (hc.always_log_health_check_failures()) {
    errors->AddAt("always_log_health_check_failures",
                  "is not supported by weft-proxy (no health check event log)");
  }
  if (hc.always_log_health_check_success()) {
    errors->AddAt("always_log_health_check_success",
                  "is not supported by weft-proxy (no health check event log)");
  }
  if (hc.has_tls_options()) errors->AddAt("tls_options", kUnsupported);
  switch (hc.health_checker_case()) {
    case HealthCheck::kHttpHealthCheck:
      CheckHttp(hc.http_health_check(), errors);
      break;
    case HealthCheck::kTcpHealthCheck:
      CheckTcp(hc.tcp_health_check(), errors);
      break;
    case HealthCheck::kGrpcHealthCheck:
      CheckGrpc(hc.grpc_health_check(), errors);
      break;
    case HealthCheck::kCustomHealthCheck:
      errors->AddAt("custom_health_check", kUnsupported);
      break;
    case HealthCheck::HEALTH_CHECKER_NOT_SET:
      break;  // validate.cc says one must be set
  }
}

void CheckOutlierDetection(const envoy::config::cluster::v3::OutlierDetection& od,
                           ValidationErrors* errors) {
  CheckNoUnknownFields(od, errors);
  if (od.monitors_size() > 0) errors->AddAt("monitors", kUnsupported);
}

void CheckCircuitBreakers(const CircuitBreakers& cb, ValidationErrors* errors) {
  CheckNoUnknownFields(cb, errors);
  if (cb.per_host_thresholds_size() > 0) {
    errors->AddAt("per_host_thresholds", "per-host limits are not supported by weft-proxy");
  }
  bool seen_default = false;
  for (int i = 0; i < cb.thresholds_size(); ++i) {
    Scope s(errors, Indexed("thresholds", i));
    const auto& t = cb.thresholds(i);
    if (!envoy::config::core::v3::RoutingPriority_IsValid(t.priority())) {
      // validate.cc reports the unknown value.
    } else if (t.priority() != envoy::config::core::v3::DEFAULT) {
      errors->AddAt("priority",
                    "only DEFAULT is supported by weft-proxy (routes have no priority)");
    } else if (seen_default) {
      errors->AddAt("priority", "DEFAULT is listed twice; only one would apply");
    }
    seen_default = seen_default || t.priority() == envoy::config::core::v3::DEFAULT;
    CheckThresholds(t, errors);
  }
}

void CheckClusterFailover(const envoy::config::cluster::v3::Cluster& c, ValidationErrors* errors) {
  for (int i = 0; i < c.health_checks_size(); ++i) {
    Scope s(errors, Indexed("health_checks", i));
    CheckHealthCheck(c.health_checks(i), errors);
  }
  if (c.has_outlier_detection()) {
    Scope s(errors, "outlier_detection");
    CheckOutlierDetection(c.outlier_detection(), errors);
  }
  if (c.has_circuit_breakers()) {
    Scope s(errors, "circuit_breakers");
    CheckCircuitBreakers(c.circuit_breakers(), errors);
  }
}

}  // namespace weft::xds
