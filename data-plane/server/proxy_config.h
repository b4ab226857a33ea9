// The immutable configuration the workers serve from: accepted xDS resources (plus the
// bootstrap's static ones) compiled into route tables, cluster definitions and listener
// settings. Built on the xDS thread, published to every worker as a shared_ptr, never mutated
// afterwards (read-copy-update: a worker drops its old snapshot when it takes the new one).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "data-plane/http/path/path.h"
#include "data-plane/http1/http1.h"
#include "data-plane/net/socket.h"
#include "data-plane/router/route_table.h"
#include "data-plane/upstream/lb/load_balancer.h"
#include "data-plane/xds/config_state.h"
#include "weft/bootstrap/v1/bootstrap.pb.h"

namespace weft::proxy {

struct HttpListenerSettings {
  std::string stat_prefix;
  std::string rds_name;  // empty when the routes are inline
  std::shared_ptr<const router::RouteTable> inline_routes;
  // Envoy's defaults: idle 1 h, no request timeout, 60 KiB of headers, 100 headers.
  std::chrono::milliseconds idle_timeout{std::chrono::hours(1)};
  std::chrono::milliseconds request_timeout{0};
  std::chrono::milliseconds request_headers_timeout{0};
  http1::Limits limits;
  bool generate_request_id = true;
  uint32_t max_requests_per_connection = 0;  // 0: unlimited
  // normalize_path, merge_slashes: applied to every request's path before routing.
  http::PathNormalization path_normalization;
  // HCM upgrade_configs: type (lower-case, "websocket") and whether it is enabled. An allowed
  // upgrade is passed to the upstream and, once it answers 101, the connection becomes a byte
  // tunnel. A route's upgrade_configs can switch a listed type on or off; a type not listed
  // here is never allowed (as Envoy), and its Upgrade header is dropped.
  std::vector<std::pair<std::string, bool>> upgrades;
};

struct ListenerConfig {
  std::string name;
  net::SocketAddress address;
  HttpListenerSettings http;
  uint64_t version = 0;  // the resource's content version
};

// Ordered for size: 10,000 of these in a 1000-cluster mesh (56 bytes each, not 64).
struct EndpointConfig {
  std::string address;
  // When the endpoint appeared as it is now (any change of weight, priority, locality or
  // health counts as new): slow start ramps from here on every worker.
  Clock::TimePoint joined_at{};
  uint32_t weight = 1;
  uint32_t priority = 0;
  uint32_t locality = 0;  // index into ClusterConfig::localities
  uint16_t port = 0;
  upstream::HealthStatus health = upstream::HealthStatus::kHealthy;
};
static_assert(sizeof(EndpointConfig) <= sizeof(std::string) + 24);

struct ClusterConfig {
  std::string name;
  upstream::LbAlgorithm algorithm = upstream::LbAlgorithm::kRoundRobin;
  upstream::LbConfig lb;
  std::chrono::milliseconds connect_timeout{5000};  // Envoy's default
  std::vector<EndpointConfig> endpoints;
  // One entry per locality group of the assignment, shared by its hosts on every worker.
  std::vector<std::shared_ptr<const upstream::Locality>> localities;
  std::vector<upstream::LocalityWeight> locality_weights;
  uint64_t version = 0;  // cluster and endpoints together: equal versions mean nothing changed
};

struct ProxyConfig {
  uint64_t generation = 0;
  std::map<std::string, std::shared_ptr<const ListenerConfig>> listeners;
  std::map<std::string, std::shared_ptr<const router::RouteTable>> routes;
  std::map<std::string, std::shared_ptr<const ClusterConfig>> clusters;
};

// Compiles the accepted resources. `previous` (may be null) lends unchanged route tables so a
// routes-only or endpoints-only update does not recompile everything, and the join times of
// endpoints that stay. `now` stamps the endpoints that are new. A route table that fails
// to compile is an error (the update must be refused, with the field path); a listener this
// proxy does not serve (no HTTP connection manager) is a warning and is left out.
std::shared_ptr<const ProxyConfig> BuildProxyConfig(
    const ConfigState::ResourceMap& listeners, const ConfigState::ResourceMap& routes,
    const ConfigState::ResourceMap& clusters, const ConfigState::ResourceMap& endpoints,
    uint64_t generation, const ProxyConfig* previous, std::vector<std::string>* warnings,
    std::vector<std::string>* errors, Clock::TimePoint now = RealClock::Get().Now());

// The bootstrap's static listeners and clusters as resources, ready to be served without a
// control plane (and under the xDS ones, which win on a name clash).
absl::Status StaticResources(const bootstrap::v1::StaticResources& config,
                             ConfigState::ResourceMap* listeners,
                             ConfigState::ResourceMap* clusters);

}  // namespace weft::proxy
