#include "data-plane/server/proxy_config.h"

#include <algorithm>
#include <string_view>
#include <tuple>
#include <unordered_map>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/proto_util.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/xds/validate.h"
#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"
#include "envoy/config/listener/v3/listener.pb.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb.h"

namespace weft::proxy {
namespace {

namespace ec = envoy::config;
using envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;

constexpr std::string_view kHcmName =
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";

// Durations beyond this are "forever" for a proxy (as in the route table): clamping keeps
// deadline arithmetic (now + timeout, in nanoseconds) in range. Validation refuses negative
// durations; a huge one overflowed here (found by fuzz/targets/xds_resource_fuzz).
constexpr int64_t kMaxDurationSeconds = int64_t{10} * 365 * 24 * 3600;

std::chrono::milliseconds Millis(const google::protobuf::Duration& d) {
  int64_t seconds = std::clamp<int64_t>(d.seconds(), 0, kMaxDurationSeconds);
  return std::chrono::milliseconds(seconds * 1000 + std::max(d.nanos(), 0) / 1000000);
}

// The HCM of the listener's (first) filter chain, if it has one.
bool FindHcm(const ec::listener::v3::Listener& listener, HttpConnectionManager* hcm) {
  for (const auto& chain : listener.filter_chains()) {
    for (const auto& filter : chain.filters()) {
      if (TypeNameOfUrl(filter.typed_config().type_url()) != kHcmName) continue;
      return UnpackAny(filter.typed_config(), hcm).ok();
    }
  }
  return false;
}

upstream::HealthStatus Health(ec::core::v3::HealthStatus status) {
  switch (status) {
    case ec::core::v3::UNHEALTHY:
    case ec::core::v3::TIMEOUT:
      return upstream::HealthStatus::kUnhealthy;
    case ec::core::v3::DRAINING:
      return upstream::HealthStatus::kDraining;
    case ec::core::v3::DEGRADED:
      return upstream::HealthStatus::kDegraded;
    default:
      return upstream::HealthStatus::kHealthy;
  }
}

// A mesh has few localities and many clusters: the clusters compiled in one build share one
// copy of each (most of them the empty locality).
class LocalityInterner {
 public:
  std::shared_ptr<const upstream::Locality> Get(const ec::core::v3::Locality& l) {
    auto& slot = by_value_[{l.region(), l.zone(), l.sub_zone()}];
    if (slot == nullptr) {
      slot = std::make_shared<const upstream::Locality>(
          upstream::Locality{l.region(), l.zone(), l.sub_zone()});
    }
    return slot;
  }

 private:
  std::map<std::tuple<std::string, std::string, std::string>,
           std::shared_ptr<const upstream::Locality>>
      by_value_;
};

void AddEndpoints(const ec::endpoint::v3::ClusterLoadAssignment& cla, Clock::TimePoint now,
                  LocalityInterner& localities, ClusterConfig* out) {
  bool any_locality_weight = false;
  size_t count = 0;
  for (const auto& locality : cla.endpoints()) count += locality.lb_endpoints_size();
  out->endpoints.reserve(count);
  for (const auto& locality : cla.endpoints()) {
    const auto index = static_cast<uint32_t>(out->localities.size());
    out->localities.push_back(localities.Get(locality.locality()));
    if (locality.has_load_balancing_weight()) {
      any_locality_weight = true;
      out->locality_weights.push_back(
          {*out->localities.back(), locality.load_balancing_weight().value()});
    }
    for (const auto& lb_endpoint : locality.lb_endpoints()) {
      const auto& sa = lb_endpoint.endpoint().address().socket_address();
      EndpointConfig e;
      e.address = sa.address();
      e.port = static_cast<uint16_t>(sa.port_value());
      e.weight = lb_endpoint.has_load_balancing_weight()
                     ? std::max<uint32_t>(1, lb_endpoint.load_balancing_weight().value())
                     : 1;
      e.locality = index;
      e.priority = locality.priority();
      e.health = Health(lb_endpoint.health_status());
      e.joined_at = now;
      out->endpoints.push_back(std::move(e));
    }
  }
  if (!any_locality_weight) out->locality_weights.clear();
}

void SlowStart(const ec::cluster::v3::Cluster::SlowStartConfig& s, upstream::LbConfig* lb) {
  if (!s.has_slow_start_window()) return;
  lb->slow_start_window = Millis(s.slow_start_window());
  if (s.has_aggression()) lb->slow_start_aggression = s.aggression().default_value();
  if (s.has_min_weight_percent())
    lb->slow_start_min_weight_percent = s.min_weight_percent().value();
}

// Envoy's lb_policy enum, or the first load_balancing_policy entry we know. Weft's own names
// select the two balancers Envoy has no enum value for.
upstream::LbAlgorithm Algorithm(const ec::cluster::v3::Cluster& c, std::string* warning) {
  using A = upstream::LbAlgorithm;
  using C = ec::cluster::v3::Cluster;
  if (c.lb_policy() == C::LOAD_BALANCING_POLICY_CONFIG) {
    for (const auto& p : c.load_balancing_policy().policies()) {
      const std::string& name = p.typed_extension_config().name();
      if (name == "envoy.load_balancing_policies.round_robin") return A::kRoundRobin;
      if (name == "envoy.load_balancing_policies.random") return A::kRandom;
      if (name == "envoy.load_balancing_policies.least_request") return A::kLeastRequest;
      if (name == "envoy.load_balancing_policies.ring_hash") return A::kRingHash;
      if (name == "envoy.load_balancing_policies.maglev") return A::kMaglev;
      if (name == "weft.load_balancing_policies.weighted_round_robin") {
        return A::kWeightedRoundRobin;
      }
      if (name == "weft.load_balancing_policies.least_response_time" ||
          name == "weft.load_balancing_policies.peak_ewma") {
        return A::kLeastResponseTime;
      }
    }
    *warning = absl::StrCat("cluster ", c.name(),
                            ": load_balancing_policy.policies: no known policy, using round robin");
    return A::kRoundRobin;
  }
  switch (c.lb_policy()) {
    case C::LEAST_REQUEST:
      return A::kLeastRequest;
    case C::RING_HASH:
      return A::kRingHash;
    case C::RANDOM:
      return A::kRandom;
    case C::MAGLEV:
      return A::kMaglev;
    default:
      return A::kRoundRobin;
  }
}

// Endpoints equal to one of `before`'s keep its join time.
void CarryJoinTimes(const ClusterConfig& before, ClusterConfig* out) {
  if (before.endpoints.empty() || out->endpoints.empty()) return;
  std::unordered_map<std::string_view, std::vector<const EndpointConfig*>> by_address;
  for (const EndpointConfig& e : before.endpoints) by_address[e.address].push_back(&e);
  for (EndpointConfig& e : out->endpoints) {
    auto it = by_address.find(e.address);
    if (it == by_address.end()) continue;
    for (const EndpointConfig* b : it->second) {
      if (b->port == e.port && b->weight == e.weight && b->priority == e.priority &&
          b->health == e.health &&
          *before.localities[b->locality] == *out->localities[e.locality]) {
        e.joined_at = b->joined_at;
        break;
      }
    }
  }
}

std::shared_ptr<const ClusterConfig> CompileCluster(
    const ec::cluster::v3::Cluster& c, const ec::endpoint::v3::ClusterLoadAssignment* cla,
    uint64_t version, const ClusterConfig* before, Clock::TimePoint now,
    LocalityInterner& localities, std::vector<std::string>* warnings) {
  auto out = std::make_shared<ClusterConfig>();
  out->name = c.name();
  out->version = version;
  std::string warning;
  out->algorithm = Algorithm(c, &warning);
  if (!warning.empty()) warnings->push_back(std::move(warning));
  if (c.has_connect_timeout()) out->connect_timeout = Millis(c.connect_timeout());
  if (c.has_common_lb_config() && c.common_lb_config().has_healthy_panic_threshold()) {
    out->lb.panic_threshold_percent = c.common_lb_config().healthy_panic_threshold().value();
  }
  if (c.has_round_robin_lb_config()) {
    SlowStart(c.round_robin_lb_config().slow_start_config(), &out->lb);
  }
  if (c.has_least_request_lb_config()) {
    const auto& lr = c.least_request_lb_config();
    if (lr.has_choice_count()) out->lb.choice_count = lr.choice_count().value();
    if (lr.has_active_request_bias()) {
      out->lb.active_request_bias = lr.active_request_bias().default_value();
    }
    SlowStart(lr.slow_start_config(), &out->lb);
  }
  if (c.has_ring_hash_lb_config()) {
    const auto& rh = c.ring_hash_lb_config();
    if (rh.has_minimum_ring_size()) out->lb.min_ring_size = rh.minimum_ring_size().value();
    if (rh.has_maximum_ring_size()) out->lb.max_ring_size = rh.maximum_ring_size().value();
  }
  if (c.has_maglev_lb_config() && c.maglev_lb_config().has_table_size()) {
    out->lb.maglev_table_size = c.maglev_lb_config().table_size().value();
  }
  if (cla != nullptr) AddEndpoints(*cla, now, localities, out.get());
  if (before != nullptr) CarryJoinTimes(*before, out.get());
  return out;
}

std::shared_ptr<const ListenerConfig> CompileListener(const ec::listener::v3::Listener& l,
                                                      uint64_t version,
                                                      std::vector<std::string>* warnings,
                                                      std::vector<std::string>* errors) {
  if (!l.has_address() || !l.address().has_socket_address()) return nullptr;  // api_listener
  HttpConnectionManager hcm;
  if (!FindHcm(l, &hcm)) {
    warnings->push_back(absl::StrCat("listener ", l.name(),
                                     ": no HTTP connection manager filter; only HTTP is served"));
    return nullptr;
  }
  auto out = std::make_shared<ListenerConfig>();
  out->name = l.name();
  out->version = version;
  out->address.host = l.address().socket_address().address();
  out->address.port = static_cast<uint16_t>(l.address().socket_address().port_value());
  HttpListenerSettings& http = out->http;
  http.stat_prefix = hcm.stat_prefix().empty() ? l.name() : hcm.stat_prefix();
  if (hcm.has_rds()) {
    http.rds_name = hcm.rds().route_config_name();
  } else {
    auto table = router::RouteTable::Create(hcm.route_config());
    if (!table.ok()) {
      errors->push_back(
          absl::StrCat("listener \"", l.name(), "\": route_config: ", table.status().message()));
      return nullptr;
    }
    http.inline_routes = *table;
  }
  const auto& common = hcm.common_http_protocol_options();
  if (common.has_idle_timeout()) http.idle_timeout = Millis(common.idle_timeout());
  if (common.has_max_headers_count()) http.limits.max_headers = common.max_headers_count().value();
  if (common.has_max_requests_per_connection()) {
    http.max_requests_per_connection = common.max_requests_per_connection().value();
  }
  if (hcm.has_request_timeout()) http.request_timeout = Millis(hcm.request_timeout());
  if (hcm.has_request_headers_timeout()) {
    http.request_headers_timeout = Millis(hcm.request_headers_timeout());
  }
  if (hcm.has_max_request_headers_kb()) {
    http.limits.max_head_bytes = size_t{hcm.max_request_headers_kb().value()} * 1024;
  }
  if (hcm.has_generate_request_id()) http.generate_request_id = hcm.generate_request_id().value();
  // Envoy's default for normalize_path is false (without its runtime override), as here.
  http.path_normalization.normalize = hcm.has_normalize_path() && hcm.normalize_path().value();
  http.path_normalization.merge_slashes = hcm.merge_slashes();
  for (const auto& upgrade : hcm.upgrade_configs()) {
    http.upgrades.emplace_back(absl::AsciiStrToLower(upgrade.upgrade_type()),
                               !upgrade.has_enabled() || upgrade.enabled().value());
  }
  return out;
}

}  // namespace

std::shared_ptr<const ProxyConfig> BuildProxyConfig(
    const ConfigState::ResourceMap& listeners, const ConfigState::ResourceMap& routes,
    const ConfigState::ResourceMap& clusters, const ConfigState::ResourceMap& endpoints,
    uint64_t generation, const ProxyConfig* previous, std::vector<std::string>* warnings,
    std::vector<std::string>* errors, Clock::TimePoint now) {
  auto config = std::make_shared<ProxyConfig>();
  config->generation = generation;

  for (const auto& [name, resource] : routes) {
    if (previous != nullptr) {
      auto it = previous->routes.find(name);
      // Route tables are the expensive part (regexes); reuse one whose content is unchanged.
      if (it != previous->routes.end() && it->second->version() == resource->version) {
        config->routes[name] = it->second;
        continue;
      }
    }
    ec::route::v3::RouteConfiguration rc;
    if (!UnpackAny(resource->body, &rc).ok()) continue;
    auto table = router::RouteTable::Create(rc, resource->version);
    if (!table.ok()) {
      errors->push_back(
          absl::StrCat("route_configuration \"", name, "\": ", table.status().message()));
      continue;
    }
    config->routes[name] = *table;
  }

  LocalityInterner localities;
  for (const auto& [name, resource] : clusters) {
    ec::cluster::v3::Cluster c;
    if (!UnpackAny(resource->body, &c).ok()) continue;
    const ec::endpoint::v3::ClusterLoadAssignment* cla = nullptr;
    ec::endpoint::v3::ClusterLoadAssignment eds;
    uint64_t version = resource->version;
    if (c.type() == ec::cluster::v3::Cluster::EDS) {
      const std::string& service = c.eds_cluster_config().service_name().empty()
                                       ? c.name()
                                       : c.eds_cluster_config().service_name();
      auto it = endpoints.find(service);
      if (it != endpoints.end() && UnpackAny(it->second->body, &eds).ok()) {
        cla = &eds;
        version = version * 31 + it->second->version;
      }
    } else if (c.has_load_assignment()) {
      cla = &c.load_assignment();
    }
    const ClusterConfig* before = nullptr;
    if (previous != nullptr) {
      auto it = previous->clusters.find(name);
      if (it != previous->clusters.end()) {
        if (it->second->version == version) {
          config->clusters[name] = it->second;
          continue;
        }
        before = it->second.get();
      }
    }
    config->clusters[name] = CompileCluster(c, cla, version, before, now, localities, warnings);
  }

  for (const auto& [name, resource] : listeners) {
    if (previous != nullptr) {
      auto it = previous->listeners.find(name);
      if (it != previous->listeners.end() && it->second->version == resource->version) {
        config->listeners[name] = it->second;
        continue;
      }
    }
    ec::listener::v3::Listener l;
    if (!UnpackAny(resource->body, &l).ok()) continue;
    if (auto compiled = CompileListener(l, resource->version, warnings, errors)) {
      config->listeners[name] = std::move(compiled);
    }
  }
  return config;
}

absl::Status StaticResources(const bootstrap::v1::StaticResources& config,
                             ConfigState::ResourceMap* listeners,
                             ConfigState::ResourceMap* clusters) {
  // The checks an xDS response gets: a field the proxy does not apply is refused here too,
  // rather than served without it.
  auto add = [](const auto& messages, std::string_view what, ConfigState::ResourceMap* out) {
    std::vector<google::protobuf::Any> anys;
    for (const auto& m : messages) anys.push_back(PackAny(m));
    if (absl::Status s = xds::ValidateResources(anys); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(Sv(what), ": ", s.message()));
    }
    for (const auto& any : anys) {
      auto r = xds::MakeResource(any);
      if (!r.ok()) return r.status();
      (*out)[(*r)->name] = *r;
    }
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(add(config.listeners(), "listeners", listeners));
  return add(config.clusters(), "clusters", clusters);
}

}  // namespace weft::proxy
