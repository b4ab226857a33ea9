#include "common/xds/supported.h"

#include <map>
#include <mutex>
#include <set>
#include <string_view>
#include <vector>

#include <unordered_map>
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/proto_util.h"
#include "common/strings.h"
#include "common/xds/failover_check.h"
#include "envoy/config/listener/v3/listener.pb.h"
#include "google/protobuf/any.pb.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/unknown_field_set.h"

namespace weft::xds {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::DescriptorPool;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// The fields weft-proxy applies, per message. Words are field names; a word may carry a suffix:
//   name=A|B  an enum field of which only these values are applied (the default is always fine);
//   name!     accepted as a whole, not looked into (opaque data, or meant for other clients);
//   name~     an Any whose type the validators judge (filters): looked into when its type has
//             an entry here, otherwise left to validate.cc.
// A message without an entry is refused wherever it is set, except those in kWholeMessages.
// Keep entries next to the code that applies them in mind: data-plane/server/proxy_config.cc
// (listeners, clusters, endpoints), data-plane/router/ (routes) and the HTTP path.
struct Entry {
  std::string_view message;
  std::string_view fields;
};
constexpr Entry kTable[] = {
    // --- Listener (proxy_config.cc CompileListener, worker accept) ---
    // api_listener: for proxyless gRPC clients; weft-proxy serves socket listeners only.
    // traffic_direction: informational (Envoy uses it for tracing only).
    {"envoy.config.listener.v3.Listener",
     "name address filter_chains metadata! traffic_direction api_listener!"},
    {"envoy.config.listener.v3.FilterChain", "filters name metadata!"},
    {"envoy.config.listener.v3.Filter", "name typed_config~"},
    {"envoy.config.core.v3.Address", "socket_address"},
    {"envoy.config.core.v3.SocketAddress", "protocol=TCP address port_value"},

    // --- TLS (data-plane/tls builds contexts from these; checked by common/xds/tls_check.cc) ---
    // Secrets are applied by the TLS context store. No Listener or Cluster entry lists
    // transport_socket yet, so none of the contexts below is reachable from them until
    // weft-proxy serves TLS; adding that word is what turns TLS on.
    {"envoy.extensions.transport_sockets.tls.v3.Secret", "name tls_certificate validation_context"},
    {"envoy.extensions.transport_sockets.tls.v3.TlsCertificate", "certificate_chain private_key"},
    {"envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext",
     "trusted_ca match_typed_subject_alt_names max_verify_depth"},
    {"envoy.extensions.transport_sockets.tls.v3.SubjectAltNameMatcher",
     "san_type=EMAIL|DNS|URI|IP_ADDRESS matcher"},
    {"envoy.config.core.v3.TransportSocket", "name typed_config~"},
    {"envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
     "common_tls_context require_client_certificate disable_stateless_session_resumption "
     "disable_stateful_session_resumption session_timeout"},
    {"envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
     "common_tls_context sni max_session_keys"},
    {"envoy.extensions.transport_sockets.tls.v3.CommonTlsContext",
     "tls_params tls_certificates tls_certificate_sds_secret_configs validation_context "
     "validation_context_sds_secret_config combined_validation_context alpn_protocols"},
    {"envoy.extensions.transport_sockets.tls.v3.CommonTlsContext."
     "CombinedCertificateValidationContext",
     "default_validation_context validation_context_sds_secret_config"},
    {"envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig", "name sds_config"},
    {"envoy.extensions.transport_sockets.tls.v3.TlsParameters",
     "tls_minimum_protocol_version=TLSv1_2|TLSv1_3 tls_maximum_protocol_version=TLSv1_2|TLSv1_3 "
     "cipher_suites ecdh_curves"},

    // --- HTTP connection manager ---
    // stat_prefix: required by Envoy's schema.
    {"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
     "codec_type=AUTO|HTTP1 stat_prefix rds route_config http_filters "
     "common_http_protocol_options max_request_headers_kb request_timeout "
     "request_headers_timeout generate_request_id upgrade_configs normalize_path merge_slashes"},
    {"envoy.extensions.filters.network.http_connection_manager.v3.Rds",
     "config_source route_config_name"},
    {"envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter",
     "name typed_config~ is_optional"},
    {"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager."
     "UpgradeConfig",
     "upgrade_type enabled"},
    {"envoy.config.core.v3.HttpProtocolOptions",
     "idle_timeout max_headers_count max_requests_per_connection"},
    // Everything reaches weft-proxy over its one ADS stream.
    {"envoy.config.core.v3.ConfigSource", "ads resource_api_version=V3"},
    {"envoy.config.core.v3.AggregatedConfigSource", ""},
    {"envoy.extensions.filters.http.router.v3.Router", ""},

    // --- Routes (data-plane/router, applied by the worker) ---
    {"envoy.config.route.v3.RouteConfiguration",
     "name virtual_hosts request_headers_to_add request_headers_to_remove response_headers_to_add "
     "response_headers_to_remove most_specific_header_mutations_wins "
     "max_direct_response_body_size_bytes ignore_port_in_host_matching metadata!"},
    {"envoy.config.route.v3.VirtualHost",
     "name domains routes request_headers_to_add request_headers_to_remove "
     "response_headers_to_add response_headers_to_remove retry_policy metadata!"},
    {"envoy.config.route.v3.Route",
     "name match route redirect direct_response metadata! request_headers_to_add "
     "request_headers_to_remove response_headers_to_add response_headers_to_remove"},
    {"envoy.config.route.v3.RouteMatch",
     "prefix path safe_regex path_separated_prefix case_sensitive runtime_fraction headers "
     "query_parameters grpc tls_context"},
    {"envoy.config.route.v3.RouteMatch.GrpcRouteMatchOptions", ""},
    {"envoy.config.route.v3.RouteMatch.TlsContextMatchOptions", "presented validated"},
    {"envoy.config.route.v3.RouteAction",
     "cluster cluster_header weighted_clusters cluster_not_found_response_code prefix_rewrite "
     "regex_rewrite host_rewrite_literal auto_host_rewrite timeout retry_policy hash_policy "
     "upgrade_configs"},
    {"envoy.config.route.v3.RouteAction.UpgradeConfig", "upgrade_type enabled"},
    {"envoy.config.route.v3.RouteAction.HashPolicy", "header"},
    {"envoy.config.route.v3.RouteAction.HashPolicy.Header", "header_name"},
    {"envoy.config.route.v3.WeightedCluster", "clusters total_weight header_name"},
    {"envoy.config.route.v3.WeightedCluster.ClusterWeight",
     "name cluster_header weight request_headers_to_add request_headers_to_remove "
     "response_headers_to_add response_headers_to_remove host_rewrite_literal"},
    {"envoy.config.route.v3.RetryPolicy", "retry_on num_retries"},
    {"envoy.config.route.v3.RedirectAction",
     "https_redirect scheme_redirect host_redirect port_redirect path_redirect prefix_rewrite "
     "regex_rewrite response_code strip_query"},
    {"envoy.config.route.v3.DirectResponseAction", "status body"},
    {"envoy.config.core.v3.DataSource", "inline_bytes inline_string"},
    {"envoy.config.route.v3.HeaderMatcher",
     "name exact_match safe_regex_match range_match present_match prefix_match suffix_match "
     "contains_match string_match invert_match treat_missing_header_as_empty"},
    {"envoy.config.route.v3.QueryParameterMatcher", "name string_match present_match"},
    {"envoy.type.matcher.v3.StringMatcher", "exact prefix suffix safe_regex contains ignore_case"},
    {"envoy.type.matcher.v3.RegexMatcher", "google_re2 regex"},
    {"envoy.type.matcher.v3.RegexMatcher.GoogleRE2", ""},
    {"envoy.type.matcher.v3.RegexMatchAndSubstitute", "pattern substitution"},
    {"envoy.config.core.v3.HeaderValueOption", "header append append_action keep_empty_value"},
    {"envoy.config.core.v3.HeaderValue", "key value raw_value"},
    // No runtime layer: a runtime_key always falls back to the default, as Envoy without one.
    {"envoy.config.core.v3.RuntimeFractionalPercent", "default_value runtime_key"},
    {"envoy.config.core.v3.RuntimeDouble", "default_value runtime_key"},

    // --- Clusters and endpoints (proxy_config.cc CompileCluster, the balancers) ---
    {"envoy.config.cluster.v3.Cluster",
     "name type=STATIC|EDS eds_cluster_config connect_timeout "
     "lb_policy=ROUND_ROBIN|LEAST_REQUEST|RING_HASH|RANDOM|MAGLEV|LOAD_BALANCING_POLICY_CONFIG "
     "load_assignment ring_hash_lb_config maglev_lb_config least_request_lb_config "
     "round_robin_lb_config common_lb_config load_balancing_policy metadata!"},
    {"envoy.config.cluster.v3.Cluster.EdsClusterConfig", "eds_config service_name"},
    {"envoy.config.cluster.v3.Cluster.CommonLbConfig",
     "healthy_panic_threshold locality_weighted_lb_config"},
    {"envoy.config.cluster.v3.Cluster.CommonLbConfig.LocalityWeightedLbConfig", ""},
    {"envoy.config.cluster.v3.Cluster.RoundRobinLbConfig", "slow_start_config"},
    {"envoy.config.cluster.v3.Cluster.LeastRequestLbConfig",
     "choice_count active_request_bias slow_start_config"},
    {"envoy.config.cluster.v3.Cluster.SlowStartConfig",
     "slow_start_window aggression min_weight_percent"},
    {"envoy.config.cluster.v3.Cluster.RingHashLbConfig", "minimum_ring_size maximum_ring_size"},
    {"envoy.config.cluster.v3.Cluster.MaglevLbConfig", "table_size"},
    // The policy is chosen by name; a typed_config that carries settings is refused below.
    {"envoy.config.cluster.v3.LoadBalancingPolicy", "policies"},
    {"envoy.config.cluster.v3.LoadBalancingPolicy.Policy", "typed_extension_config"},
    {"envoy.config.core.v3.TypedExtensionConfig", "name typed_config"},
    {"envoy.config.endpoint.v3.ClusterLoadAssignment", "cluster_name endpoints"},
    {"envoy.config.endpoint.v3.LocalityLbEndpoints",
     "locality metadata! lb_endpoints load_balancing_weight priority"},
    // hostname: informational (weft-proxy connects to the address).
    {"envoy.config.endpoint.v3.LbEndpoint",
     "endpoint health_status metadata! load_balancing_weight"},
    {"envoy.config.endpoint.v3.Endpoint", "address hostname"},
};

// Applied once the cluster manager serves them (failover_check.h, kClusterFailoverApplied).
// Not walked: CheckClusterFailover judges them field by field (unknown fields included), and
// the walker would only repeat its findings less precisely.
constexpr Entry kFailoverTable[] = {
    {"envoy.config.cluster.v3.Cluster", "health_checks! outlier_detection! circuit_breakers!"},
};

// Plain values, looked into by nobody: wrappers, durations, percentages, localities.
constexpr std::string_view kWholeMessages[] = {
    "google.protobuf.Duration",        "google.protobuf.BoolValue",
    "google.protobuf.UInt32Value",     "google.protobuf.UInt64Value",
    "google.protobuf.DoubleValue",     "google.protobuf.Int64Value",
    "google.protobuf.StringValue",     "envoy.type.v3.Percent",
    "envoy.type.v3.FractionalPercent", "envoy.type.v3.Int64Range",
    "envoy.config.core.v3.Locality",
};

constexpr std::string_view kRefused = "is not applied by weft-proxy; refused rather than ignored";

struct FieldRule {
  enum class Kind { kWalk, kOpaque, kFilterAny };
  Kind kind = Kind::kWalk;
  std::set<int> enum_values;  // empty: any value
};

struct MessageRule {
  // By field number: a set field without a rule is refused.
  std::map<int, FieldRule> fields;
};

struct Table {
  std::unordered_map<const Descriptor*, MessageRule> rules;
  std::set<const Descriptor*> whole;
  std::vector<std::string> unresolved;
};

const Table& GetTable() {
  static const Table* table = [] {
    auto* t = new Table;
    const DescriptorPool* pool = DescriptorPool::generated_pool();
    // Entries of kFailoverTable are resolved either way (so the test keeps them honest) and
    // applied only once the switch is on.
    std::vector<std::pair<const Entry*, bool>> entries;
    for (const Entry& e : kTable) entries.emplace_back(&e, true);
    for (const Entry& e : kFailoverTable) entries.emplace_back(&e, kClusterFailoverApplied);
    for (const auto& [entry, apply] : entries) {
      const Entry& e = *entry;
      const Descriptor* d = pool->FindMessageTypeByName(std::string(e.message));
      if (d == nullptr) {
        t->unresolved.push_back(std::string(e.message));
        continue;
      }
      MessageRule scratch;
      MessageRule& rule = apply ? t->rules[d] : scratch;
      for (absl::string_view piece : absl::StrSplit(Sv(e.fields), ' ', absl::SkipEmpty())) {
        std::string_view word(piece.data(), piece.size());
        FieldRule fr;
        std::string_view name = word;
        std::string_view values;
        if (size_t eq = word.find('='); eq != std::string_view::npos) {
          name = word.substr(0, eq);
          values = word.substr(eq + 1);
        } else if (word.back() == '!') {
          name = word.substr(0, word.size() - 1);
          fr.kind = FieldRule::Kind::kOpaque;
        } else if (word.back() == '~') {
          name = word.substr(0, word.size() - 1);
          fr.kind = FieldRule::Kind::kFilterAny;
        }
        const FieldDescriptor* f = d->FindFieldByName(std::string(name));
        if (f == nullptr) {
          t->unresolved.push_back(absl::StrCat(Sv(e.message), ".", Sv(name)));
          continue;
        }
        for (absl::string_view v : absl::StrSplit(Sv(values), '|', absl::SkipEmpty())) {
          const auto* ev =
              f->enum_type() != nullptr ? f->enum_type()->FindValueByName(std::string(v)) : nullptr;
          if (ev == nullptr) {
            t->unresolved.push_back(absl::StrCat(Sv(e.message), ".", Sv(name), "=", v));
            continue;
          }
          fr.enum_values.insert(ev->number());
        }
        rule.fields[f->number()] = std::move(fr);
      }
    }
    for (std::string_view name : kWholeMessages) {
      const Descriptor* d = pool->FindMessageTypeByName(std::string(name));
      if (d == nullptr) {
        t->unresolved.push_back(std::string(name));
      } else {
        t->whole.insert(d);
      }
    }
    return t;
  }();
  return *table;
}

std::string FieldPath(const FieldDescriptor* f, int index) {
  if (index < 0) return std::string(f->name());
  return absl::StrCat(f->name(), "[", index, "]");
}

class Walker {
 public:
  // A Duration the wire can carry but protobuf defines as invalid (google/protobuf/duration.proto:
  // +-315,576,000,000 s, nanos within a second and of the seconds' sign). The JSON parser refuses
  // these; binary xDS does not, and the proxy's arithmetic on them overflowed.
  void CheckDuration(const Message& m) {
    const Reflection* r = m.GetReflection();
    const int64_t seconds = r->GetInt64(m, m.GetDescriptor()->FindFieldByNumber(1));
    const int32_t nanos = r->GetInt32(m, m.GetDescriptor()->FindFieldByNumber(2));
    constexpr int64_t kMaxSeconds = 315'576'000'000;
    if (seconds > kMaxSeconds || seconds < -kMaxSeconds) {
      errors_->AddAt("seconds", absl::StrCat("out of range for a Duration (at most ", kMaxSeconds,
                                             " either way)"));
    }
    if (nanos > 999'999'999 || nanos < -999'999'999) {
      errors_->AddAt("nanos", "out of range for a Duration (at most 999999999 either way)");
    } else if ((seconds > 0 && nanos < 0) || (seconds < 0 && nanos > 0)) {
      errors_->AddAt("nanos", "must have the sign of seconds");
    }
  }

  explicit Walker(ValidationErrors* errors) : table_(GetTable()), errors_(errors) {}

  void Walk(const Message& m) {
    const Descriptor* d = m.GetDescriptor();
    const Reflection* r = m.GetReflection();
    const auto& unknown = r->GetUnknownFields(m);
    for (int i = 0; i < unknown.field_count(); ++i) {
      errors_->Add(absl::StrCat("field number ", unknown.field(i).number(),
                                " is not part of weft's xDS subset, so it ", Sv(kRefused)));
    }
    if (d->full_name() == "google.protobuf.Duration") CheckDuration(m);
    if (table_.whole.contains(d)) return;
    auto rule = table_.rules.find(d);
    if (rule == table_.rules.end()) {
      errors_->Add(absl::StrCat("(", d->full_name(), ") ", Sv(kRefused)));
      return;
    }
    std::vector<const FieldDescriptor*> set;
    r->ListFields(m, &set);
    for (const FieldDescriptor* f : set) {
      auto fr = rule->second.fields.find(f->number());
      if (fr == rule->second.fields.end()) {
        errors_->AddAt(f->name(), kRefused);
        continue;
      }
      WalkField(m, f, fr->second);
    }
  }

 private:
  void WalkField(const Message& m, const FieldDescriptor* f, const FieldRule& rule) {
    const Reflection* r = m.GetReflection();
    if (rule.kind == FieldRule::Kind::kOpaque) return;
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_ENUM && !rule.enum_values.empty()) {
      auto check = [&](int value, int index) {
        if (value == 0 || rule.enum_values.contains(value)) return;
        const auto* ev = f->enum_type()->FindValueByNumber(value);
        errors_->AddAt(
            FieldPath(f, index),
            absl::StrCat(ev != nullptr ? ev->name() : absl::StrCat(value), " ", Sv(kRefused)));
      };
      if (f->is_repeated()) {
        for (int i = 0; i < r->FieldSize(m, f); ++i) check(r->GetRepeatedEnumValue(m, f, i), i);
      } else {
        check(r->GetEnumValue(m, f), -1);
      }
      return;
    }
    if (f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) return;
    if (f->is_map()) return;  // no map field is listed as walked
    if (f->is_repeated()) {
      for (int i = 0; i < r->FieldSize(m, f); ++i) {
        ValidationErrors::Scope s(errors_, FieldPath(f, i));
        WalkMessage(r->GetRepeatedMessage(m, f, i), rule);
      }
    } else {
      ValidationErrors::Scope s(errors_, f->name());
      WalkMessage(r->GetMessage(m, f), rule);
    }
  }

  void WalkMessage(const Message& m, const FieldRule& rule) {
    if (m.GetDescriptor() == google::protobuf::Any::descriptor()) {
      WalkAny(static_cast<const google::protobuf::Any&>(m), rule);
      return;
    }
    Walk(m);
  }

  // A typed_config is looked into when its type has an entry. A filter's typed_config of any
  // other type is the validators' business (they refuse unknown filters unless optional); any
  // other Any that carries settings is refused, since nothing would read them.
  void WalkAny(const google::protobuf::Any& any, const FieldRule& rule) {
    const Descriptor* d = DescriptorPool::generated_pool()->FindMessageTypeByName(
        std::string(TypeNameOfUrl(any.type_url())));
    if (d != nullptr && table_.rules.contains(d)) {
      std::unique_ptr<Message> inner(
          google::protobuf::MessageFactory::generated_factory()->GetPrototype(d)->New());
      if (!inner->ParseFromString(any.value())) return;  // the validators say so
      Walk(*inner);
      return;
    }
    if (rule.kind == FieldRule::Kind::kFilterAny || any.value().empty()) return;
    errors_->Add(absl::StrCat("(", Sv(TypeNameOfUrl(any.type_url())), ") ", Sv(kRefused)));
  }

  const Table& table_;
  ValidationErrors* errors_;
};

}  // namespace

void CheckSupportedFields(const Message& resource, ValidationErrors* errors) {
  Walker(errors).Walk(resource);
  // Only the first chain would be served, whatever the others' filter_chain_match says.
  if (const auto* l = dynamic_cast<const envoy::config::listener::v3::Listener*>(&resource);
      l != nullptr && l->filter_chains_size() > 1) {
    errors->AddAt("filter_chains",
                  absl::StrCat("has ", l->filter_chains_size(),
                               " chains; weft-proxy serves one filter chain per listener (no "
                               "filter chain matching yet), so the others would be ignored"));
  }
}

std::vector<std::string> UnresolvedSupportTableEntries() { return GetTable().unresolved; }

}  // namespace weft::xds
