#include "common/xds/validate.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "common/proto_util.h"
#include "common/strings.h"
#include "common/xds/failover_check.h"
#include "common/xds/fault_check.h"
#include "common/xds/matcher_validate.h"
#include "common/xds/rbac_check.h"
#include "common/xds/resource_type.h"
#include "common/xds/supported.h"
#include "common/xds/tls_check.h"
#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"
#include "envoy/config/listener/v3/listener.pb.h"
#include "envoy/config/route/v3/route.pb.h"
#include "envoy/extensions/filters/http/fault/v3/fault.pb.h"
#include "envoy/extensions/filters/http/rbac/v3/rbac.pb.h"
#include "envoy/extensions/filters/http/router/v3/router.pb.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb.h"
#include "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.pb.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb.h"
#include "envoy/extensions/transport_sockets/tls/v3/tls.pb.h"
#include "google/protobuf/duration.pb.h"
#include "re2/re2.h"

namespace weft::xds {
namespace {

using Scope = ValidationErrors::Scope;
using envoy::config::cluster::v3::CircuitBreakers;
using envoy::config::cluster::v3::Cluster;
using envoy::config::cluster::v3::OutlierDetection;
using envoy::config::core::v3::Address;
using envoy::config::core::v3::HeaderValueOption;
using envoy::config::core::v3::HealthCheck;
using envoy::config::core::v3::SocketAddress;
using envoy::config::endpoint::v3::ClusterLoadAssignment;
using envoy::config::listener::v3::FilterChain;
using envoy::config::listener::v3::Listener;
using envoy::config::route::v3::HeaderMatcher;
using envoy::config::route::v3::RedirectAction;
using envoy::config::route::v3::Route;
using envoy::config::route::v3::RouteAction;
using envoy::config::route::v3::RouteConfiguration;
using envoy::config::route::v3::RouteMatch;
using envoy::config::route::v3::VirtualHost;
using envoy::extensions::filters::http::fault::v3::HTTPFault;
using envoy::extensions::filters::http::rbac::v3::RBAC;
using envoy::extensions::filters::http::router::v3::Router;
using envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
using envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
using envoy::extensions::transport_sockets::tls::v3::Secret;
using envoy::type::matcher::v3::RegexMatcher;
using envoy::type::matcher::v3::StringMatcher;
using google::protobuf::Duration;

std::string Indexed(std::string_view field, size_t i) {
  return absl::StrCat(Sv(field), "[", i, "]");
}

bool IsNegative(const Duration& d) { return d.seconds() < 0 || d.nanos() < 0; }
bool IsPositive(const Duration& d) { return !IsNegative(d) && (d.seconds() > 0 || d.nanos() > 0); }

void CheckPositiveDuration(bool has, const Duration& d, std::string_view field,
                           ValidationErrors* errors) {
  if (has && !IsPositive(d)) errors->AddAt(field, "must be greater than 0");
}
void CheckNonNegativeDuration(bool has, const Duration& d, std::string_view field,
                              ValidationErrors* errors) {
  if (has && IsNegative(d)) errors->AddAt(field, "must not be negative");
}

// Percentages carried as plain numbers (UInt32Value or Percent.value) must stay within 0..100.
void CheckPercent(double value, std::string_view field, ValidationErrors* errors) {
  if (value < 0 || value > 100) {
    errors->AddAt(field, absl::StrCat("must be between 0 and 100, got ", value));
  }
}

// A TLS setting that is accepted and not applied would carry traffic in the clear that the
// operator believes encrypted (or accept plaintext on a port meant for mTLS only).
constexpr std::string_view kNoTransportSockets =
    "transport sockets (TLS) are not supported by weft-proxy yet; refused rather than served in "
    "the clear";

// Full names of the typed_config messages we understand, from the generated descriptors.
std::string_view FullName(const google::protobuf::Descriptor* d) { return d->full_name(); }

// Refused as a whole until weft-proxy serves TLS (kNoTransportSockets); the TLS context inside
// is still checked, so an operator sees every mistake in it now and nothing new the day the
// refusal is lifted.
template <typename Context>
void CheckTransportSocket(const envoy::config::core::v3::TransportSocket& ts,
                          void (*check)(const Context&, ValidationErrors*),
                          ValidationErrors* errors) {
  errors->Add(kNoTransportSockets);
  if (ts.name() != kTlsTransportSocketName) {
    errors->AddAt("name", absl::StrCat("unknown transport socket \"", ts.name(), "\"; only \"",
                                       Sv(kTlsTransportSocketName), "\" exists"));
  }
  if (!ts.has_typed_config()) {
    errors->AddAt("typed_config", "must be set");
    return;
  }
  Scope s(errors, "typed_config");
  std::string_view type = TypeNameOfUrl(ts.typed_config().type_url());
  Context ctx;
  if (type != FullName(Context::descriptor())) {
    errors->Add(absl::StrCat("must be a ", Sv(FullName(Context::descriptor())), ", got \"",
                             ts.typed_config().type_url(), "\""));
  } else if (!ctx.ParseFromString(ts.typed_config().value())) {
    errors->Add(absl::StrCat("cannot parse ", Sv(FullName(Context::descriptor()))));
  } else {
    check(ctx, errors);
  }
}

// Compiles with RE2 exactly as the data plane will, so a pattern that would be NACKed is refused
// here with RE2's own explanation.
void CheckRegex(const std::string& pattern, std::string_view field, ValidationErrors* errors) {
  RE2 re(pattern, RE2::Quiet);
  if (!re.ok()) {
    errors->AddAt(field, absl::StrCat("invalid regex \"", pattern, "\": ", re.error()));
  }
}

void ValidateRegexMatcher(const RegexMatcher& m, ValidationErrors* errors) {
  if (m.regex().empty()) {
    errors->AddAt("regex", "must not be empty");
    return;
  }
  CheckRegex(m.regex(), "regex", errors);
}

}  // namespace

void ValidateStringMatcher(const StringMatcher& m, ValidationErrors* errors) {
  switch (m.match_pattern_case()) {
    case StringMatcher::kSafeRegex: {
      Scope s(errors, "safe_regex");
      ValidateRegexMatcher(m.safe_regex(), errors);
      break;
    }
    case StringMatcher::MATCH_PATTERN_NOT_SET:
      errors->Add("one of exact, prefix, suffix, safe_regex or contains must be set");
      break;
    default:
      break;
  }
}

namespace {

void ValidateSocketAddress(const SocketAddress& sa, bool allow_port_zero,
                           ValidationErrors* errors) {
  if (sa.address().empty()) errors->AddAt("address", "must not be empty");
  if (sa.has_named_port()) {
    errors->AddAt("named_port", "is not supported; use port_value");
    return;
  }
  uint32_t port = sa.port_value();
  if (port > 65535 || (port == 0 && !allow_port_zero)) {
    errors->AddAt("port_value",
                  absl::StrCat("must be in ", allow_port_zero ? 0 : 1, "..65535, got ", port));
  }
}

void ValidateAddress(const Address& a, bool allow_port_zero, ValidationErrors* errors) {
  switch (a.address_case()) {
    case Address::kSocketAddress: {
      Scope s(errors, "socket_address");
      ValidateSocketAddress(a.socket_address(), allow_port_zero, errors);
      break;
    }
    case Address::kPipe:
      if (a.pipe().path().empty()) errors->AddAt("pipe.path", "must not be empty");
      break;
    case Address::ADDRESS_NOT_SET:
      errors->Add("one of socket_address or pipe must be set");
      break;
  }
}

void ValidateHeadersToAdd(const google::protobuf::RepeatedPtrField<HeaderValueOption>& headers,
                          std::string_view field, ValidationErrors* errors) {
  for (int i = 0; i < headers.size(); ++i) {
    if (headers[i].header().key().empty()) {
      errors->AddAt(absl::StrCat(Indexed(field, i), ".header.key"), "must not be empty");
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Endpoints

void ValidateLoadAssignment(const ClusterLoadAssignment& cla, bool require_name,
                            ValidationErrors* errors) {
  if (require_name && cla.cluster_name().empty()) {
    errors->AddAt("cluster_name", "must not be empty");
  }
  std::set<uint32_t> priorities;
  for (int i = 0; i < cla.endpoints_size(); ++i) {
    Scope s(errors, Indexed("endpoints", i));
    const auto& locality = cla.endpoints(i);
    priorities.insert(locality.priority());
    if (locality.has_load_balancing_weight() && locality.load_balancing_weight().value() < 1) {
      errors->AddAt("load_balancing_weight", "must be at least 1");
    }
    for (int j = 0; j < locality.lb_endpoints_size(); ++j) {
      Scope es(errors, Indexed("lb_endpoints", j));
      const auto& lb = locality.lb_endpoints(j);
      if (lb.has_load_balancing_weight() && lb.load_balancing_weight().value() < 1) {
        errors->AddAt("load_balancing_weight", "must be at least 1");
      }
      switch (lb.host_identifier_case()) {
        case envoy::config::endpoint::v3::LbEndpoint::kEndpoint: {
          Scope as(errors, "endpoint.address");
          if (!lb.endpoint().has_address()) {
            errors->Add("must be set");
          } else {
            ValidateAddress(lb.endpoint().address(), /*allow_port_zero=*/false, errors);
          }
          break;
        }
        case envoy::config::endpoint::v3::LbEndpoint::kEndpointName:
          errors->AddAt("endpoint_name", "is not supported; set endpoint");
          break;
        case envoy::config::endpoint::v3::LbEndpoint::HOST_IDENTIFIER_NOT_SET:
          errors->AddAt("endpoint", "must be set");
          break;
      }
    }
  }
  // Priorities must be contiguous from 0: both Envoy and gRPC refuse a sparse priority list.
  uint32_t expected = 0;
  for (uint32_t p : priorities) {
    if (p != expected) {
      errors->AddAt("endpoints", absl::StrCat("priorities must be contiguous from 0; priority ",
                                              expected, " is missing"));
      break;
    }
    ++expected;
  }
  if (cla.has_policy()) {
    Scope s(errors, "policy");
    const auto& policy = cla.policy();
    if (policy.has_overprovisioning_factor() && policy.overprovisioning_factor().value() == 0) {
      errors->AddAt("overprovisioning_factor", "must be greater than 0");
    }
    for (int i = 0; i < policy.drop_overloads_size(); ++i) {
      if (policy.drop_overloads(i).category().empty()) {
        errors->AddAt(absl::StrCat(Indexed("drop_overloads", i), ".category"), "must not be empty");
      }
    }
    CheckPositiveDuration(policy.has_endpoint_stale_after(), policy.endpoint_stale_after(),
                          "endpoint_stale_after", errors);
  }
}

// ---------------------------------------------------------------------------------------------
// Cluster

bool IsPrime(uint64_t n) {
  if (n < 2) return false;
  for (uint64_t d = 2; d * d <= n; ++d) {
    if (n % d == 0) return false;
  }
  return true;
}

void ValidateThresholds(const google::protobuf::RepeatedPtrField<CircuitBreakers::Thresholds>& ts,
                        std::string_view field, ValidationErrors* errors) {
  for (int i = 0; i < ts.size(); ++i) {
    Scope s(errors, Indexed(field, i));
    if (!envoy::config::core::v3::RoutingPriority_IsValid(ts[i].priority())) {
      errors->AddAt("priority", absl::StrCat("unknown value ", ts[i].priority()));
    }
    if (ts[i].has_retry_budget() && ts[i].retry_budget().has_budget_percent()) {
      CheckPercent(ts[i].retry_budget().budget_percent().value(), "retry_budget.budget_percent",
                   errors);
    }
  }
}

void ValidateOutlierDetection(const OutlierDetection& od, ValidationErrors* errors) {
  CheckPositiveDuration(od.has_interval(), od.interval(), "interval", errors);
  CheckPositiveDuration(od.has_base_ejection_time(), od.base_ejection_time(), "base_ejection_time",
                        errors);
  CheckPositiveDuration(od.has_max_ejection_time(), od.max_ejection_time(), "max_ejection_time",
                        errors);
  CheckNonNegativeDuration(od.has_max_ejection_time_jitter(), od.max_ejection_time_jitter(),
                           "max_ejection_time_jitter", errors);
  const std::pair<const google::protobuf::UInt32Value*, const char*> percents[] = {
      {od.has_max_ejection_percent() ? &od.max_ejection_percent() : nullptr,
       "max_ejection_percent"},
      {od.has_enforcing_consecutive_5xx() ? &od.enforcing_consecutive_5xx() : nullptr,
       "enforcing_consecutive_5xx"},
      {od.has_enforcing_success_rate() ? &od.enforcing_success_rate() : nullptr,
       "enforcing_success_rate"},
      {od.has_enforcing_consecutive_gateway_failure() ? &od.enforcing_consecutive_gateway_failure()
                                                      : nullptr,
       "enforcing_consecutive_gateway_failure"},
      {od.has_enforcing_consecutive_local_origin_failure()
           ? &od.enforcing_consecutive_local_origin_failure()
           : nullptr,
       "enforcing_consecutive_local_origin_failure"},
      {od.has_enforcing_local_origin_success_rate() ? &od.enforcing_local_origin_success_rate()
                                                    : nullptr,
       "enforcing_local_origin_success_rate"},
      {od.has_failure_percentage_threshold() ? &od.failure_percentage_threshold() : nullptr,
       "failure_percentage_threshold"},
      {od.has_enforcing_failure_percentage() ? &od.enforcing_failure_percentage() : nullptr,
       "enforcing_failure_percentage"},
      {od.has_enforcing_failure_percentage_local_origin()
           ? &od.enforcing_failure_percentage_local_origin()
           : nullptr,
       "enforcing_failure_percentage_local_origin"},
  };
  for (const auto& [value, field] : percents) {
    if (value != nullptr) CheckPercent(value->value(), field, errors);
  }
}

void ValidateHealthCheck(const HealthCheck& hc, ValidationErrors* errors) {
  if (!hc.has_timeout()) {
    errors->AddAt("timeout", "must be set");
  } else {
    CheckPositiveDuration(true, hc.timeout(), "timeout", errors);
  }
  if (!hc.has_interval()) {
    errors->AddAt("interval", "must be set");
  } else {
    CheckPositiveDuration(true, hc.interval(), "interval", errors);
  }
  if (!hc.has_unhealthy_threshold()) errors->AddAt("unhealthy_threshold", "must be set");
  if (!hc.has_healthy_threshold()) errors->AddAt("healthy_threshold", "must be set");
  switch (hc.health_checker_case()) {
    case HealthCheck::kHttpHealthCheck:
      if (hc.http_health_check().path().empty()) {
        errors->AddAt("http_health_check.path", "must not be empty");
      }
      break;
    case HealthCheck::kCustomHealthCheck:
      if (hc.custom_health_check().name().empty()) {
        errors->AddAt("custom_health_check.name", "must not be empty");
      }
      break;
    case HealthCheck::HEALTH_CHECKER_NOT_SET:
      errors->Add(
          "one of http_health_check, tcp_health_check, grpc_health_check or custom_health_check "
          "must be set");
      break;
    default:
      break;
  }
}

void ValidateCluster(const Cluster& c, ValidationErrors* errors) {
  if (c.name().empty()) errors->AddAt("name", "must not be empty");
  CheckPositiveDuration(c.has_connect_timeout(), c.connect_timeout(), "connect_timeout", errors);
  if (c.has_transport_socket()) {
    Scope s(errors, "transport_socket");
    CheckTransportSocket(c.transport_socket(), &CheckUpstreamTlsContext, errors);
  }
  for (int i = 0; i < c.transport_socket_matches_size(); ++i) {
    errors->AddAt(Indexed("transport_socket_matches", i), kNoTransportSockets);
  }

  std::optional<Cluster::DiscoveryType> type;
  if (c.has_cluster_type()) {
    if (c.cluster_type().name().empty()) errors->AddAt("cluster_type.name", "must not be empty");
  } else if (!Cluster::DiscoveryType_IsValid(c.type())) {
    errors->AddAt("type", absl::StrCat("unknown value ", c.type()));
  } else {
    // An unset oneof reads as STATIC, which is also Envoy's default.
    type = c.type();
  }

  if (c.has_load_assignment()) {
    Scope s(errors, "load_assignment");
    ValidateLoadAssignment(c.load_assignment(), /*require_name=*/false, errors);
  }
  if (type == Cluster::LOGICAL_DNS) {
    const auto& eps = c.load_assignment().endpoints();
    if (eps.size() != 1 || eps[0].lb_endpoints_size() != 1) {
      errors->AddAt("load_assignment",
                    "LOGICAL_DNS clusters need exactly one locality with exactly one endpoint");
    }
  }
  if (type == Cluster::ORIGINAL_DST && c.load_assignment().endpoints_size() > 0) {
    errors->AddAt("load_assignment", "ORIGINAL_DST clusters must not list endpoints");
  }

  const int policy = c.lb_policy();
  if (!Cluster::LbPolicy_IsValid(policy)) {
    errors->AddAt("lb_policy", absl::StrCat("unknown value ", policy));
  } else {
    if (policy == Cluster::LOAD_BALANCING_POLICY_CONFIG &&
        c.load_balancing_policy().policies_size() == 0) {
      errors->AddAt("lb_policy", "LOAD_BALANCING_POLICY_CONFIG needs load_balancing_policy");
    }
    if (type == Cluster::ORIGINAL_DST && policy != Cluster::CLUSTER_PROVIDED) {
      errors->AddAt("lb_policy", "ORIGINAL_DST clusters need CLUSTER_PROVIDED");
    }
    if (policy == Cluster::CLUSTER_PROVIDED && type.has_value() && type != Cluster::ORIGINAL_DST) {
      errors->AddAt("lb_policy", "CLUSTER_PROVIDED is only valid for ORIGINAL_DST clusters");
    }
  }
  auto lb_config_mismatch = [&](std::string_view field, std::string_view needs) {
    errors->AddAt(field, absl::StrCat("is only valid with lb_policy ", Sv(needs), ", got ",
                                      Cluster::LbPolicy_Name(c.lb_policy())));
  };
  switch (c.lb_config_case()) {
    case Cluster::kRingHashLbConfig: {
      if (policy != Cluster::RING_HASH) lb_config_mismatch("ring_hash_lb_config", "RING_HASH");
      const auto& rh = c.ring_hash_lb_config();
      Scope s(errors, "ring_hash_lb_config");
      constexpr uint64_t kMaxRing = 8388608;
      if (rh.has_minimum_ring_size() && rh.minimum_ring_size().value() > kMaxRing) {
        errors->AddAt("minimum_ring_size", absl::StrCat("must be at most ", kMaxRing));
      }
      if (rh.has_maximum_ring_size() && rh.maximum_ring_size().value() > kMaxRing) {
        errors->AddAt("maximum_ring_size", absl::StrCat("must be at most ", kMaxRing));
      }
      if (rh.has_minimum_ring_size() && rh.has_maximum_ring_size() &&
          rh.minimum_ring_size().value() > rh.maximum_ring_size().value()) {
        errors->AddAt("minimum_ring_size", "must not exceed maximum_ring_size");
      }
      break;
    }
    case Cluster::kMaglevLbConfig: {
      if (policy != Cluster::MAGLEV) lb_config_mismatch("maglev_lb_config", "MAGLEV");
      const auto& m = c.maglev_lb_config();
      if (m.has_table_size() &&
          (m.table_size().value() >= 5000011 || !IsPrime(m.table_size().value()))) {
        errors->AddAt("maglev_lb_config.table_size", "must be a prime number below 5000011");
      }
      break;
    }
    case Cluster::kLeastRequestLbConfig: {
      if (policy != Cluster::LEAST_REQUEST) {
        lb_config_mismatch("least_request_lb_config", "LEAST_REQUEST");
      }
      const auto& lr = c.least_request_lb_config();
      if (lr.has_choice_count() && lr.choice_count().value() < 2) {
        errors->AddAt("least_request_lb_config.choice_count", "must be at least 2");
      }
      break;
    }
    case Cluster::kRoundRobinLbConfig:
      if (policy != Cluster::ROUND_ROBIN)
        lb_config_mismatch("round_robin_lb_config", "ROUND_ROBIN");
      break;
    case Cluster::kOriginalDstLbConfig:
      if (type != Cluster::ORIGINAL_DST) {
        errors->AddAt("original_dst_lb_config", "is only valid for ORIGINAL_DST clusters");
      }
      break;
    case Cluster::LB_CONFIG_NOT_SET:
      break;
  }

  if (c.has_common_lb_config()) {
    Scope s(errors, "common_lb_config");
    const auto& common = c.common_lb_config();
    if (common.has_healthy_panic_threshold()) {
      CheckPercent(common.healthy_panic_threshold().value(), "healthy_panic_threshold.value",
                   errors);
    }
    if (common.has_zone_aware_lb_config() && common.zone_aware_lb_config().has_routing_enabled()) {
      CheckPercent(common.zone_aware_lb_config().routing_enabled().value(),
                   "zone_aware_lb_config.routing_enabled.value", errors);
    }
    CheckNonNegativeDuration(common.has_update_merge_window(), common.update_merge_window(),
                             "update_merge_window", errors);
  }

  if (c.has_circuit_breakers()) {
    Scope s(errors, "circuit_breakers");
    ValidateThresholds(c.circuit_breakers().thresholds(), "thresholds", errors);
    ValidateThresholds(c.circuit_breakers().per_host_thresholds(), "per_host_thresholds", errors);
  }
  if (c.has_outlier_detection()) {
    Scope s(errors, "outlier_detection");
    ValidateOutlierDetection(c.outlier_detection(), errors);
  }
  for (int i = 0; i < c.health_checks_size(); ++i) {
    Scope s(errors, Indexed("health_checks", i));
    ValidateHealthCheck(c.health_checks(i), errors);
  }
  // What the failover engines implement of them. Until kClusterFailoverApplied the
  // supported-fields table refuses the three fields anyway; the detail is reported as well, so
  // fixing a config does not take two rounds once they are applied.
  CheckClusterFailover(c, errors);
  CheckPositiveDuration(c.has_dns_refresh_rate(), c.dns_refresh_rate(), "dns_refresh_rate", errors);
  CheckPositiveDuration(c.has_cleanup_interval(), c.cleanup_interval(), "cleanup_interval", errors);
}

// ---------------------------------------------------------------------------------------------
// Routes

}  // namespace

void ValidateHeaderMatcher(const HeaderMatcher& h, ValidationErrors* errors) {
  if (h.name().empty()) errors->AddAt("name", "must not be empty");
  switch (h.header_match_specifier_case()) {
    case HeaderMatcher::kSafeRegexMatch: {
      Scope s(errors, "safe_regex_match");
      ValidateRegexMatcher(h.safe_regex_match(), errors);
      break;
    }
    case HeaderMatcher::kStringMatch: {
      Scope s(errors, "string_match");
      ValidateStringMatcher(h.string_match(), errors);
      break;
    }
    case HeaderMatcher::kRangeMatch:
      if (h.range_match().start() >= h.range_match().end()) {
        errors->AddAt("range_match", "start must be less than end");
      }
      break;
    default:
      break;
  }
}

namespace {

void ValidateRetryPolicy(const envoy::config::route::v3::RetryPolicy& rp,
                         ValidationErrors* errors) {
  // Nobody means more than this; a huge value is a typo that would amplify an outage.
  constexpr uint32_t kMaxRetries = 100;
  if (rp.has_num_retries() && rp.num_retries().value() > kMaxRetries) {
    errors->AddAt("num_retries", absl::StrCat("must be at most ", kMaxRetries, ", got ",
                                              rp.num_retries().value()));
  }
  CheckNonNegativeDuration(rp.has_per_try_timeout(), rp.per_try_timeout(), "per_try_timeout",
                           errors);
  CheckNonNegativeDuration(rp.has_per_try_idle_timeout(), rp.per_try_idle_timeout(),
                           "per_try_idle_timeout", errors);
  if (rp.has_retry_back_off()) {
    Scope s(errors, "retry_back_off");
    const auto& b = rp.retry_back_off();
    if (!b.has_base_interval()) {
      errors->AddAt("base_interval", "must be set");
    } else {
      CheckPositiveDuration(true, b.base_interval(), "base_interval", errors);
    }
    CheckPositiveDuration(b.has_max_interval(), b.max_interval(), "max_interval", errors);
    if (b.has_base_interval() && b.has_max_interval() &&
        (b.max_interval().seconds() < b.base_interval().seconds() ||
         (b.max_interval().seconds() == b.base_interval().seconds() &&
          b.max_interval().nanos() < b.base_interval().nanos()))) {
      errors->AddAt("max_interval", "must not be less than base_interval");
    }
  }
  for (int i = 0; i < rp.retriable_status_codes_size(); ++i) {
    uint32_t code = rp.retriable_status_codes(i);
    if (code < 100 || code > 599) {
      errors->AddAt(Indexed("retriable_status_codes", i),
                    absl::StrCat("must be an HTTP status code (100..599), got ", code));
    }
  }
  for (int i = 0; i < rp.retriable_headers_size(); ++i) {
    Scope s(errors, Indexed("retriable_headers", i));
    ValidateHeaderMatcher(rp.retriable_headers(i), errors);
  }
  for (int i = 0; i < rp.retriable_request_headers_size(); ++i) {
    Scope s(errors, Indexed("retriable_request_headers", i));
    ValidateHeaderMatcher(rp.retriable_request_headers(i), errors);
  }
}

void ValidateRouteMatch(const RouteMatch& m, ValidationErrors* errors) {
  switch (m.path_specifier_case()) {
    case RouteMatch::kPath:
      if (!m.path().empty() && m.path()[0] != '/') errors->AddAt("path", "must start with '/'");
      break;
    case RouteMatch::kSafeRegex: {
      Scope s(errors, "safe_regex");
      ValidateRegexMatcher(m.safe_regex(), errors);
      break;
    }
    case RouteMatch::kPathSeparatedPrefix: {
      const std::string& p = m.path_separated_prefix();
      if (p.empty() || p[0] != '/' || p.back() == '/' || p.find_first_of("?#") != p.npos) {
        errors->AddAt("path_separated_prefix",
                      "must start with '/', not end with '/' and not contain '?' or '#'");
      }
      break;
    }
    case RouteMatch::kPathMatchPolicy:
      errors->AddAt("path_match_policy", "is not supported");
      break;
    case RouteMatch::PATH_SPECIFIER_NOT_SET:
      errors->Add(
          "one of prefix, path, safe_regex, path_separated_prefix or connect_matcher "
          "must be set");
      break;
    default:
      break;
  }
  for (int i = 0; i < m.headers_size(); ++i) {
    Scope s(errors, Indexed("headers", i));
    ValidateHeaderMatcher(m.headers(i), errors);
  }
  for (int i = 0; i < m.query_parameters_size(); ++i) {
    Scope s(errors, Indexed("query_parameters", i));
    const auto& q = m.query_parameters(i);
    if (q.name().empty()) errors->AddAt("name", "must not be empty");
    if (q.has_string_match()) {
      Scope ss(errors, "string_match");
      ValidateStringMatcher(q.string_match(), errors);
    }
  }
}

// The connection manager's and a route's upgrade_configs: each names its type (a route's
// entry switches the connection manager's type of that name on or off).
template <typename UpgradeConfigs>
void ValidateUpgradeTypes(const UpgradeConfigs& configs, ValidationErrors* errors) {
  for (int i = 0; i < configs.size(); ++i) {
    if (configs.Get(i).upgrade_type().empty()) {
      errors->AddAt(Indexed("upgrade_configs", i) + ".upgrade_type", "must not be empty");
    }
  }
}

void ValidateRouteAction(const RouteAction& a, const std::set<std::string>& plugin_names,
                         ValidationErrors* errors) {
  switch (a.cluster_specifier_case()) {
    case RouteAction::kCluster:
      if (a.cluster().empty()) errors->AddAt("cluster", "must not be empty");
      break;
    case RouteAction::kClusterHeader:
      if (a.cluster_header().empty()) errors->AddAt("cluster_header", "must not be empty");
      break;
    case RouteAction::kWeightedClusters: {
      Scope s(errors, "weighted_clusters");
      const auto& wc = a.weighted_clusters();
      if (wc.clusters_size() == 0) errors->AddAt("clusters", "must have at least one cluster");
      uint64_t sum = 0;
      for (int i = 0; i < wc.clusters_size(); ++i) {
        const auto& cw = wc.clusters(i);
        if (cw.name().empty() && cw.cluster_header().empty()) {
          errors->AddAt(absl::StrCat(Indexed("clusters", i), ".name"), "must not be empty");
        }
        sum += cw.weight().value();
      }
      if (wc.clusters_size() > 0 && sum == 0) {
        errors->AddAt("clusters", "sum of weights must be greater than 0");
      } else if (sum > UINT32_MAX) {
        errors->AddAt("clusters", "sum of weights must fit in 32 bits");
      }
      if (wc.has_total_weight() && wc.total_weight().value() != sum) {
        errors->AddAt("total_weight", absl::StrCat("is ", wc.total_weight().value(),
                                                   " but the weights sum to ", sum));
      }
      break;
    }
    case RouteAction::kClusterSpecifierPlugin:
      if (!plugin_names.contains(a.cluster_specifier_plugin())) {
        errors->AddAt("cluster_specifier_plugin",
                      absl::StrCat("names unknown plugin \"", a.cluster_specifier_plugin(), "\""));
      }
      break;
    case RouteAction::kInlineClusterSpecifierPlugin:
      break;
    case RouteAction::CLUSTER_SPECIFIER_NOT_SET:
      errors->Add(
          "one of cluster, cluster_header, weighted_clusters or cluster_specifier_plugin "
          "must be set");
      break;
  }
  if (a.has_regex_rewrite()) {
    Scope s(errors, "regex_rewrite.pattern");
    ValidateRegexMatcher(a.regex_rewrite().pattern(), errors);
  }
  if (a.has_host_rewrite_path_regex()) {
    Scope s(errors, "host_rewrite_path_regex.pattern");
    ValidateRegexMatcher(a.host_rewrite_path_regex().pattern(), errors);
  }
  CheckNonNegativeDuration(a.has_timeout(), a.timeout(), "timeout", errors);
  CheckNonNegativeDuration(a.has_idle_timeout(), a.idle_timeout(), "idle_timeout", errors);
  ValidateUpgradeTypes(a.upgrade_configs(), errors);
  if (a.has_max_stream_duration()) {
    Scope s(errors, "max_stream_duration");
    const auto& msd = a.max_stream_duration();
    CheckNonNegativeDuration(msd.has_max_stream_duration(), msd.max_stream_duration(),
                             "max_stream_duration", errors);
    CheckNonNegativeDuration(msd.has_grpc_timeout_header_max(), msd.grpc_timeout_header_max(),
                             "grpc_timeout_header_max", errors);
    CheckNonNegativeDuration(msd.has_grpc_timeout_header_offset(), msd.grpc_timeout_header_offset(),
                             "grpc_timeout_header_offset", errors);
  }
  if (a.has_retry_policy()) {
    Scope s(errors, "retry_policy");
    ValidateRetryPolicy(a.retry_policy(), errors);
  }
  for (int i = 0; i < a.hash_policy_size(); ++i) {
    const auto& hp = a.hash_policy(i);
    Scope s(errors, Indexed("hash_policy", i));
    if (hp.policy_specifier_case() == RouteAction::HashPolicy::POLICY_SPECIFIER_NOT_SET) {
      errors->Add("a hash policy specifier must be set");
    } else if (hp.has_header()) {
      if (hp.header().header_name().empty()) {
        errors->AddAt("header.header_name", "must not be empty");
      }
      if (hp.header().has_regex_rewrite()) {
        Scope rs(errors, "header.regex_rewrite.pattern");
        ValidateRegexMatcher(hp.header().regex_rewrite().pattern(), errors);
      }
    }
  }
  for (int i = 0; i < a.request_mirror_policies_size(); ++i) {
    const auto& mp = a.request_mirror_policies(i);
    if (mp.cluster().empty() && mp.cluster_header().empty()) {
      errors->AddAt(absl::StrCat(Indexed("request_mirror_policies", i), ".cluster"),
                    "must not be empty");
    }
  }
}

void ValidateRoute(const Route& r, const std::set<std::string>& plugin_names,
                   ValidationErrors* errors) {
  if (!r.has_match()) {
    errors->AddAt("match", "must be set");
  } else {
    Scope s(errors, "match");
    ValidateRouteMatch(r.match(), errors);
  }
  switch (r.action_case()) {
    case Route::kRoute: {
      Scope s(errors, "route");
      ValidateRouteAction(r.route(), plugin_names, errors);
      break;
    }
    case Route::kRedirect: {
      Scope s(errors, "redirect");
      const auto& rd = r.redirect();
      if (!RedirectAction::RedirectResponseCode_IsValid(rd.response_code())) {
        errors->AddAt("response_code", absl::StrCat("unknown value ", rd.response_code()));
      }
      if (rd.port_redirect() > 65535) {
        errors->AddAt("port_redirect",
                      absl::StrCat("must be at most 65535, got ", rd.port_redirect()));
      }
      if (rd.has_regex_rewrite()) {
        Scope rs(errors, "regex_rewrite.pattern");
        ValidateRegexMatcher(rd.regex_rewrite().pattern(), errors);
      }
      break;
    }
    case Route::kDirectResponse: {
      uint32_t status = r.direct_response().status();
      if (status < 200 || status > 599) {
        errors->AddAt("direct_response.status", absl::StrCat("must be in 200..599, got ", status));
      }
      break;
    }
    case Route::ACTION_NOT_SET:
      errors->Add(
          "one of route, redirect, direct_response, filter_action or "
          "non_forwarding_action must be set");
      break;
    default:
      break;
  }
  ValidateHeadersToAdd(r.request_headers_to_add(), "request_headers_to_add", errors);
  ValidateHeadersToAdd(r.response_headers_to_add(), "response_headers_to_add", errors);
}

// '*' is a wildcard only as the whole domain, its first or its last character.
bool ValidDomain(const std::string& d) {
  if (d.empty()) return false;
  size_t star = d.find('*');
  if (star == d.npos || d == "*") return true;
  if (d.find('*', star + 1) != d.npos) return false;
  return star == 0 || star == d.size() - 1;
}

void ValidateRouteConfiguration(const RouteConfiguration& rc, bool require_name,
                                ValidationErrors* errors) {
  if (require_name && rc.name().empty()) errors->AddAt("name", "must not be empty");
  std::set<std::string> plugin_names;
  for (int i = 0; i < rc.cluster_specifier_plugins_size(); ++i) {
    const std::string& name = rc.cluster_specifier_plugins(i).extension().name();
    if (name.empty()) {
      errors->AddAt(absl::StrCat(Indexed("cluster_specifier_plugins", i), ".extension.name"),
                    "must not be empty");
    }
    plugin_names.insert(name);
  }
  std::map<std::string, int> vhost_names;
  std::map<std::string, int> domains;  // lower-cased domain -> virtual host index
  for (int i = 0; i < rc.virtual_hosts_size(); ++i) {
    Scope s(errors, Indexed("virtual_hosts", i));
    const VirtualHost& vh = rc.virtual_hosts(i);
    if (vh.name().empty()) {
      errors->AddAt("name", "must not be empty");
    } else if (auto [it, inserted] = vhost_names.emplace(vh.name(), i); !inserted) {
      errors->AddAt("name", absl::StrCat("duplicate virtual host name \"", vh.name(),
                                         "\" (first at virtual_hosts[", it->second, "])"));
    }
    if (vh.domains_size() == 0) errors->AddAt("domains", "must not be empty");
    for (int j = 0; j < vh.domains_size(); ++j) {
      const std::string& d = vh.domains(j);
      if (!ValidDomain(d)) {
        errors->AddAt(Indexed("domains", j),
                      absl::StrCat("invalid domain \"", d,
                                   "\": must be non-empty with '*' only at the start or end"));
        continue;
      }
      std::string key = d;
      std::transform(key.begin(), key.end(), key.begin(),
                     [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
      if (auto [it, inserted] = domains.emplace(key, i); !inserted) {
        errors->AddAt(
            Indexed("domains", j),
            absl::StrCat("duplicate domain \"", d, "\" (also in virtual_hosts[", it->second, "])"));
      }
    }
    for (int j = 0; j < vh.routes_size(); ++j) {
      Scope rs(errors, Indexed("routes", j));
      ValidateRoute(vh.routes(j), plugin_names, errors);
    }
    if (vh.has_retry_policy()) {
      Scope rs(errors, "retry_policy");
      ValidateRetryPolicy(vh.retry_policy(), errors);
    }
    ValidateHeadersToAdd(vh.request_headers_to_add(), "request_headers_to_add", errors);
    ValidateHeadersToAdd(vh.response_headers_to_add(), "response_headers_to_add", errors);
  }
  ValidateHeadersToAdd(rc.request_headers_to_add(), "request_headers_to_add", errors);
  ValidateHeadersToAdd(rc.response_headers_to_add(), "response_headers_to_add", errors);
}

// ---------------------------------------------------------------------------------------------
// Listener

void ValidateHttpConnectionManager(const HttpConnectionManager& hcm, ValidationErrors* errors) {
  switch (hcm.route_specifier_case()) {
    case HttpConnectionManager::kRds:
      if (hcm.rds().route_config_name().empty()) {
        errors->AddAt("rds.route_config_name", "must not be empty");
      }
      break;
    case HttpConnectionManager::kRouteConfig: {
      Scope s(errors, "route_config");
      ValidateRouteConfiguration(hcm.route_config(), /*require_name=*/false, errors);
      break;
    }
    case HttpConnectionManager::ROUTE_SPECIFIER_NOT_SET:
      errors->Add("one of rds or route_config must be set");
      break;
  }
  ValidateUpgradeTypes(hcm.upgrade_configs(), errors);
  const int n = hcm.http_filters_size();
  for (int i = 0; i < n; ++i) {
    Scope s(errors, Indexed("http_filters", i));
    const auto& f = hcm.http_filters(i);
    if (f.name().empty()) errors->AddAt("name", "must not be empty");
    if (f.has_config_discovery()) continue;
    if (!f.has_typed_config()) {
      errors->AddAt("typed_config", "must be set");
      continue;
    }
    std::string_view type = TypeNameOfUrl(f.typed_config().type_url());
    bool is_router = type == FullName(Router::descriptor());
    if (is_router) {
      Router router;
      if (!router.ParseFromString(f.typed_config().value())) {
        errors->AddAt("typed_config", "cannot parse Router");
      }
      // gRPC and Envoy both need the router to terminate the chain.
      if (i != n - 1) errors->AddAt("typed_config", "the router filter must be the last filter");
    } else if (type == FullName(RBAC::descriptor())) {
      RBAC rbac;
      if (!rbac.ParseFromString(f.typed_config().value())) {
        errors->AddAt("typed_config", "cannot parse RBAC");
      } else {
        Scope ts(errors, "typed_config");
        CheckRbacFilter(rbac, errors);
      }
      // Refused even when optional: an authorization policy that is accepted and not enforced
      // leaves the operator believing it is in force.
      errors->AddAt("typed_config",
                    "the RBAC filter (envoy.filters.http.rbac) is not enforced by weft-proxy yet; "
                    "refused rather than ignored");
    } else if (type == FullName(HTTPFault::descriptor())) {
      HTTPFault fault;
      Scope ts(errors, "typed_config");
      if (!fault.ParseFromString(f.typed_config().value())) {
        errors->Add("cannot parse HTTPFault");
      } else {
        CheckFaultFilter(fault, errors);
      }
      if (!kFaultFilterApplied && !f.is_optional()) {
        errors->Add("the fault filter is not applied by weft-proxy yet");
      }
    } else if (!f.is_optional()) {
      errors->AddAt("typed_config",
                    absl::StrCat("unsupported HTTP filter type \"", f.typed_config().type_url(),
                                 "\" (filter \"", f.name(), "\")"));
    }
    if (i == n - 1 && !is_router) {
      errors->Add(
          "the last HTTP filter must be the router "
          "(envoy.extensions.filters.http.router.v3.Router)");
    }
  }
}

void ValidateFilterChain(const FilterChain& chain, ValidationErrors* errors) {
  if (chain.has_transport_socket()) {
    Scope s(errors, "transport_socket");
    CheckTransportSocket(chain.transport_socket(), &CheckDownstreamTlsContext, errors);
  }
  const int n = chain.filters_size();
  if (n == 0) errors->AddAt("filters", "must not be empty");
  for (int i = 0; i < n; ++i) {
    Scope s(errors, Indexed("filters", i));
    const auto& f = chain.filters(i);
    if (f.name().empty()) errors->AddAt("name", "must not be empty");
    if (f.has_config_discovery()) continue;
    if (!f.has_typed_config()) {
      errors->AddAt("typed_config", "must be set");
      continue;
    }
    Scope ts(errors, "typed_config");
    std::string_view type = TypeNameOfUrl(f.typed_config().type_url());
    if (type == FullName(HttpConnectionManager::descriptor())) {
      HttpConnectionManager hcm;
      if (!hcm.ParseFromString(f.typed_config().value())) {
        errors->Add("cannot parse HttpConnectionManager");
      } else {
        ValidateHttpConnectionManager(hcm, errors);
      }
    } else if (type == FullName(TcpProxy::descriptor())) {
      TcpProxy tcp;
      if (!tcp.ParseFromString(f.typed_config().value())) {
        errors->Add("cannot parse TcpProxy");
      } else {
        // Accepted and not proxied would leave the port open to nobody, or to the app directly.
        errors->Add("tcp_proxy is not supported by weft-proxy yet; refused rather than ignored");
        if (tcp.stat_prefix().empty()) errors->AddAt("stat_prefix", "must not be empty");
        if (tcp.cluster_specifier_case() == TcpProxy::CLUSTER_SPECIFIER_NOT_SET ||
            (tcp.has_cluster() && tcp.cluster().empty())) {
          errors->AddAt("cluster", "one of cluster or weighted_clusters must be set");
        }
      }
    } else {
      errors->Add(
          absl::StrCat("unsupported network filter type \"", f.typed_config().type_url(), "\""));
      continue;
    }
    // Both filters we know are terminal: they must close the chain.
    if (i != n - 1) errors->Add("a terminal filter must be the last filter in the chain");
  }
}

void ValidateListener(const Listener& l, ValidationErrors* errors) {
  if (l.name().empty()) errors->AddAt("name", "must not be empty");
  if (l.has_api_listener()) {
    Scope s(errors, "api_listener.api_listener");
    const auto& any = l.api_listener().api_listener();
    HttpConnectionManager hcm;
    if (TypeNameOfUrl(any.type_url()) != FullName(HttpConnectionManager::descriptor())) {
      errors->Add(absl::StrCat("must be an HttpConnectionManager, got \"", any.type_url(), "\""));
    } else if (!hcm.ParseFromString(any.value())) {
      errors->Add("cannot parse HttpConnectionManager");
    } else {
      ValidateHttpConnectionManager(hcm, errors);
    }
    return;  // gRPC ignores the rest of an API listener.
  }
  if (!l.has_address() && !l.has_internal_listener()) {
    errors->AddAt("address", "must be set (or api_listener)");
  } else if (l.has_address()) {
    Scope s(errors, "address");
    ValidateAddress(l.address(), /*allow_port_zero=*/true, errors);
  }
  if (l.filter_chains_size() == 0 && !l.has_default_filter_chain()) {
    errors->AddAt("filter_chains", "must not be empty (or set default_filter_chain)");
  }
  // Envoy refuses two chains it could never tell apart.
  std::map<std::string, int> matches;
  for (int i = 0; i < l.filter_chains_size(); ++i) {
    Scope s(errors, Indexed("filter_chains", i));
    const FilterChain& chain = l.filter_chains(i);
    auto [it, inserted] = matches.emplace(DeterministicBytes(chain.filter_chain_match()), i);
    if (!inserted) {
      errors->AddAt("filter_chain_match",
                    absl::StrCat("same match as filter_chains[", it->second, "]"));
    }
    ValidateFilterChain(chain, errors);
  }
  if (l.has_default_filter_chain()) {
    Scope s(errors, "default_filter_chain");
    ValidateFilterChain(l.default_filter_chain(), errors);
  }
}

// ---------------------------------------------------------------------------------------------

// Parses and validates; returns the resource's name when the type was known and the bytes
// parsed (even if invalid otherwise), so callers can still look for duplicates.
std::optional<std::string> ParseAndValidate(const google::protobuf::Any& any,
                                            ValidationErrors* errors) {
  std::optional<ResourceType> type = ResourceTypeFromUrl(any.type_url());
  if (!type) {
    errors->Add(absl::StrCat("unsupported type \"", any.type_url(), "\""));
    return std::nullopt;
  }
  auto parse = [&](google::protobuf::Message* m) {
    if (m->ParseFromString(any.value())) return true;
    errors->Add(absl::StrCat("cannot parse ", Sv(FullName(m->GetDescriptor()))));
    return false;
  };
  switch (*type) {
    case ResourceType::kCluster: {
      Cluster m;
      if (!parse(&m)) return std::nullopt;
      ValidateCluster(m, errors);
      CheckSupportedFields(m, errors);
      return m.name();
    }
    case ResourceType::kEndpoint: {
      ClusterLoadAssignment m;
      if (!parse(&m)) return std::nullopt;
      ValidateLoadAssignment(m, /*require_name=*/true, errors);
      CheckSupportedFields(m, errors);
      return m.cluster_name();
    }
    case ResourceType::kListener: {
      Listener m;
      if (!parse(&m)) return std::nullopt;
      ValidateListener(m, errors);
      CheckSupportedFields(m, errors);
      return m.name();
    }
    case ResourceType::kRoute: {
      RouteConfiguration m;
      if (!parse(&m)) return std::nullopt;
      ValidateRouteConfiguration(m, /*require_name=*/true, errors);
      CheckSupportedFields(m, errors);
      return m.name();
    }
    case ResourceType::kSecret: {
      Secret m;
      if (!parse(&m)) return std::nullopt;
      CheckSecret(m, errors);
      CheckSupportedFields(m, errors);
      return m.name();
    }
  }
  return std::nullopt;
}

}  // namespace

void ValidateResource(const google::protobuf::Any& any, ValidationErrors* errors) {
  ParseAndValidate(any, errors);
}

absl::Status ValidateResources(const std::vector<google::protobuf::Any>& resources) {
  ValidationErrors errors;
  // (type, name) -> index of the first resource with that name.
  std::map<std::pair<ResourceType, std::string>, size_t> seen;
  for (size_t i = 0; i < resources.size(); ++i) {
    Scope s(&errors, Indexed("resources", i));
    std::optional<std::string> name = ParseAndValidate(resources[i], &errors);
    if (!name || name->empty()) continue;
    ResourceType type = *ResourceTypeFromUrl(resources[i].type_url());
    auto [it, inserted] = seen.emplace(std::make_pair(type, *name), i);
    if (!inserted) {
      errors.AddAt(type == ResourceType::kEndpoint ? "cluster_name" : "name",
                   absl::StrCat("duplicate ", Sv(ShortName(type)), " name \"", *name,
                                "\" (first at resources[", it->second, "])"));
    }
  }
  return errors.ToStatus();
}

}  // namespace weft::xds
