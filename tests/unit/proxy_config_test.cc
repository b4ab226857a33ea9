// BuildProxyConfig: xDS resources → what the workers serve. Pure: no sockets, no threads.
#include "data-plane/server/proxy_config.h"

#include <catch2/catch.hpp>

#include "common/proto_util.h"
#include "common/yaml_proto.h"
#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"
#include "envoy/config/listener/v3/listener.pb.h"
#include "envoy/config/route/v3/route.pb.h"
#include "envoy/extensions/filters/http/router/v3/router.pb.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb.h"
#include "tests/unit/resource_util.h"

namespace weft::proxy {
namespace {

using HttpConnectionManagerMessage =
    envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;

template <typename Message>
void Add(ConfigState::ResourceMap* map, std::string_view yaml) {
  // The YAML names the Router filter in a typed_config: its type must be in the generated pool.
  // The data path never names it (the validators do, and this test does not link them), so
  // nothing else would link its generated code into this binary.
  (void)envoy::extensions::filters::http::router::v3::Router::descriptor();
  Message m;
  auto s = YamlToProto(yaml, "test.yaml", &m);
  INFO(s.message());
  REQUIRE(s.ok());
  auto r = testing::Res(m);
  (*map)[r->name] = r;
}

constexpr std::string_view kHcmListener = R"(
name: web
address: { socket_address: { address: 127.0.0.1, port_value: 8080 } }
filter_chains:
- filters:
  - name: hcm
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: ingress
      rds: { route_config_name: routes, config_source: { ads: {} } }
      request_timeout: 2s
      max_request_headers_kb: 8
      common_http_protocol_options: { idle_timeout: 30s, max_headers_count: 20 }
      upgrade_configs:
      - { upgrade_type: WebSocket }
      - { upgrade_type: CONNECT-UDP, enabled: false }
      http_filters:
      - name: envoy.filters.http.router
        typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
)";

struct Inputs {
  ConfigState::ResourceMap listeners, routes, clusters, endpoints;
  std::vector<std::string> warnings, errors;
  std::shared_ptr<const ProxyConfig> Build(const ProxyConfig* previous = nullptr) {
    warnings.clear();
    errors.clear();
    return BuildProxyConfig(listeners, routes, clusters, endpoints, 7, previous, &warnings,
                            &errors);
  }
};

TEST_CASE("proxy config: listeners take their HTTP settings from the connection manager") {
  Inputs in;
  Add<envoy::config::listener::v3::Listener>(&in.listeners, kHcmListener);
  auto config = in.Build();
  CHECK(in.errors.empty());
  REQUIRE(config->listeners.count("web") == 1);
  const ListenerConfig& l = *config->listeners.at("web");
  CHECK(l.address.host == "127.0.0.1");
  CHECK(l.address.port == 8080);
  CHECK(l.http.stat_prefix == "ingress");
  CHECK(l.http.rds_name == "routes");
  CHECK(l.http.request_timeout == std::chrono::seconds(2));
  CHECK(l.http.idle_timeout == std::chrono::seconds(30));
  CHECK(l.http.limits.max_head_bytes == 8 * 1024);
  CHECK(l.http.limits.max_headers == 20);
  CHECK(l.http.upgrades ==
        std::vector<std::pair<std::string, bool>>{{"websocket", true}, {"connect-udp", false}});
  CHECK(config->generation == 7);
}

TEST_CASE(
    "proxy config: a listener without an HTTP connection manager is left out with a warning") {
  Inputs in;
  Add<envoy::config::listener::v3::Listener>(&in.listeners, R"(
name: tcp
address: { socket_address: { address: 127.0.0.1, port_value: 9000 } }
filter_chains: [{ filters: [{ name: other }] }]
)");
  auto config = in.Build();
  CHECK(config->listeners.empty());
  REQUIRE(in.warnings.size() == 1);
  CHECK(in.warnings[0].find("tcp") != std::string::npos);
  CHECK(in.errors.empty());
}

TEST_CASE("proxy config: a route table that does not compile is an error naming it") {
  Inputs in;
  Add<envoy::config::route::v3::RouteConfiguration>(&in.routes, R"(
name: routes
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - match: { path_match_policy: { name: x, typed_config: { "@type": type.googleapis.com/google.protobuf.Empty } } }
    route: { cluster: c }
)");
  auto config = in.Build();
  CHECK(config->routes.empty());
  REQUIRE(in.errors.size() == 1);
  CHECK(in.errors[0].find("route_configuration \"routes\"") != std::string::npos);
  CHECK(in.errors[0].find("path_match_policy") != std::string::npos);
}

TEST_CASE("proxy config: EDS clusters take their endpoints, weights, localities and health") {
  Inputs in;
  Add<envoy::config::cluster::v3::Cluster>(&in.clusters, R"(
name: api
type: EDS
eds_cluster_config: { eds_config: { ads: {} }, service_name: api-eds }
connect_timeout: 0.25s
lb_policy: LEAST_REQUEST
least_request_lb_config: { choice_count: 3 }
common_lb_config: { healthy_panic_threshold: { value: 25 } }
)");
  Add<envoy::config::endpoint::v3::ClusterLoadAssignment>(&in.endpoints, R"(
cluster_name: api-eds
endpoints:
- locality: { region: r, zone: a }
  load_balancing_weight: 3
  lb_endpoints:
  - endpoint: { address: { socket_address: { address: 10.0.0.1, port_value: 80 } } }
    load_balancing_weight: 5
  - endpoint: { address: { socket_address: { address: 10.0.0.2, port_value: 80 } } }
    health_status: UNHEALTHY
- locality: { region: r, zone: b }
  priority: 1
  load_balancing_weight: 1
  lb_endpoints:
  - endpoint: { address: { socket_address: { address: 10.0.1.1, port_value: 81 } } }
    health_status: DRAINING
)");
  auto config = in.Build();
  REQUIRE(config->clusters.count("api") == 1);
  const ClusterConfig& c = *config->clusters.at("api");
  CHECK(c.algorithm == upstream::LbAlgorithm::kLeastRequest);
  CHECK(c.lb.choice_count == 3);
  CHECK(c.lb.panic_threshold_percent == 25);
  CHECK(c.connect_timeout == std::chrono::milliseconds(250));
  REQUIRE(c.endpoints.size() == 3);
  CHECK(c.endpoints[0].address == "10.0.0.1");
  CHECK(c.endpoints[0].weight == 5);
  CHECK(c.localities[c.endpoints[0].locality]->zone == "a");
  CHECK(c.endpoints[1].weight == 1);
  CHECK(c.endpoints[1].health == upstream::HealthStatus::kUnhealthy);
  CHECK(c.endpoints[2].priority == 1);
  CHECK(c.endpoints[2].port == 81);
  CHECK(c.endpoints[2].health == upstream::HealthStatus::kDraining);
  REQUIRE(c.locality_weights.size() == 2);
  CHECK(c.locality_weights[0].weight == 3);

  // A new endpoint version changes the cluster's version; an unchanged one keeps the object.
  auto again = in.Build(config.get());
  CHECK(again->clusters.at("api") == config->clusters.at("api"));
  Add<envoy::config::endpoint::v3::ClusterLoadAssignment>(&in.endpoints, R"(
cluster_name: api-eds
endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 10.0.0.9, port_value: 80 } } } }] }]
)");
  auto changed = in.Build(again.get());
  CHECK(changed->clusters.at("api") != config->clusters.at("api"));
  CHECK(changed->clusters.at("api")->endpoints.size() == 1);
}

TEST_CASE("proxy config: balancer names from lb_policy and load_balancing_policy") {
  struct Case {
    const char* yaml;
    upstream::LbAlgorithm expected;
  };
  using A = upstream::LbAlgorithm;
  const Case cases[] = {
      {"lb_policy: ROUND_ROBIN", A::kRoundRobin},
      {"lb_policy: RANDOM", A::kRandom},
      {"lb_policy: RING_HASH", A::kRingHash},
      {"lb_policy: MAGLEV", A::kMaglev},
      {"lb_policy: LOAD_BALANCING_POLICY_CONFIG\nload_balancing_policy: { policies: [{ "
       "typed_extension_config: { name: weft.load_balancing_policies.weighted_round_robin, "
       "typed_config: { \"@type\": type.googleapis.com/google.protobuf.Empty } } }] }",
       A::kWeightedRoundRobin},
      {"lb_policy: LOAD_BALANCING_POLICY_CONFIG\nload_balancing_policy: { policies: [{ "
       "typed_extension_config: { name: unknown.policy, typed_config: { \"@type\": "
       "type.googleapis.com/google.protobuf.Empty } } }, { typed_extension_config: { name: "
       "weft.load_balancing_policies.least_response_time, typed_config: { \"@type\": "
       "type.googleapis.com/google.protobuf.Empty } } }] }",
       A::kLeastResponseTime},
  };
  for (const Case& c : cases) {
    INFO(c.yaml);
    Inputs in;
    Add<envoy::config::cluster::v3::Cluster>(
        &in.clusters, std::string("name: x\ntype: STATIC\n") + c.yaml +
                          "\nload_assignment: { cluster_name: x, endpoints: [{ lb_endpoints: [{ "
                          "endpoint: { address: { socket_address: { address: 127.0.0.1, "
                          "port_value: 1 } } } }] }] }\n");
    auto config = in.Build();
    REQUIRE(config->clusters.count("x") == 1);
    CHECK(config->clusters.at("x")->algorithm == c.expected);
    CHECK(config->clusters.at("x")->endpoints.size() == 1);  // STATIC: inline load_assignment
  }
}

TEST_CASE("proxy config: unchanged route tables are reused, changed ones recompiled") {
  Inputs in;
  auto add_routes = [&](std::string_view prefix) {
    Add<envoy::config::route::v3::RouteConfiguration>(
        &in.routes,
        "name: routes\nvirtual_hosts: [{ name: vh, domains: [\"*\"], routes: [{ "
        "match: { prefix: \"" +
            std::string(prefix) + "\" }, route: { cluster: c } }] }]\n");
  };
  add_routes("/a");
  auto first = in.Build();
  auto second = in.Build(first.get());
  CHECK(second->routes.at("routes") == first->routes.at("routes"));
  add_routes("/b");
  auto third = in.Build(second.get());
  CHECK(third->routes.at("routes") != first->routes.at("routes"));
}

TEST_CASE("proxy config: endpoints that stay keep their join time, new or changed ones get now") {
  Inputs in;
  Add<envoy::config::cluster::v3::Cluster>(&in.clusters, R"(
name: api
type: EDS
eds_cluster_config: { eds_config: { ads: {} } }
)");
  auto endpoints = [&](const std::string& second_weight, const std::string& third) {
    Add<envoy::config::endpoint::v3::ClusterLoadAssignment>(&in.endpoints, std::string(R"(
cluster_name: api
endpoints:
- lb_endpoints:
  - endpoint: { address: { socket_address: { address: 10.0.0.1, port_value: 80 } } }
  - endpoint: { address: { socket_address: { address: 10.0.0.2, port_value: 80 } } }
    load_balancing_weight: )") + second_weight + R"(
  - endpoint: { address: { socket_address: { address: 10.0.0.1, port_value: )" +
                                                                               third + " } } }\n");
  };
  const Clock::TimePoint t0 = Clock::TimePoint{} + std::chrono::seconds(100);
  const Clock::TimePoint t1 = t0 + std::chrono::seconds(5);
  endpoints("2", "81");
  auto first = BuildProxyConfig(in.listeners, in.routes, in.clusters, in.endpoints, 1, nullptr,
                                &in.warnings, &in.errors, t0);
  const ClusterConfig& a = *first->clusters.at("api");
  REQUIRE(a.endpoints.size() == 3);
  for (const EndpointConfig& e : a.endpoints) CHECK(e.joined_at == t0);

  // Same address, other port: a new endpoint. Weight changed: new too (slow start again).
  endpoints("3", "82");
  auto second = BuildProxyConfig(in.listeners, in.routes, in.clusters, in.endpoints, 2, first.get(),
                                 &in.warnings, &in.errors, t1);
  const ClusterConfig& b = *second->clusters.at("api");
  REQUIRE(b.endpoints.size() == 3);
  CHECK(b.endpoints[0].joined_at == t0);
  CHECK(b.endpoints[1].joined_at == t1);
  CHECK(b.endpoints[2].port == 82);
  CHECK(b.endpoints[2].joined_at == t1);
}

TEST_CASE("proxy config: static resources are held to the checks of an xDS response") {
  (void)envoy::extensions::filters::http::router::v3::Router::descriptor();
  bootstrap::v1::StaticResources statics;
  auto s = YamlToProto(kHcmListener, "bootstrap.yaml", statics.add_listeners());
  REQUIRE(s.ok());
  ConfigState::ResourceMap listeners, clusters;
  CHECK(StaticResources(statics, &listeners, &clusters).ok());
  CHECK(listeners.count("web") == 1);

  // A field weft-proxy does not apply is refused, as it would be over xDS.
  auto* hcm_any = statics.mutable_listeners(0)
                      ->mutable_filter_chains(0)
                      ->mutable_filters(0)
                      ->mutable_typed_config();
  HttpConnectionManagerMessage hcm;
  REQUIRE(hcm_any->UnpackTo(&hcm));
  hcm.mutable_stream_idle_timeout()->set_seconds(5);
  hcm_any->PackFrom(hcm);
  listeners.clear();
  absl::Status refused = StaticResources(statics, &listeners, &clusters);
  INFO(refused.message());
  CHECK(refused.message().find("stream_idle_timeout") != std::string_view::npos);
}

}  // namespace
}  // namespace weft::proxy

namespace weft::proxy {
namespace {
// The largest valid Duration (10 000 years) overflowed the millisecond conversion, and deadline
// arithmetic in nanoseconds would too: timeouts are clamped to 10 years, "forever" for a proxy
// (found by fuzz/targets/xds_resource_fuzz).
TEST_CASE("proxy config: huge timeouts are clamped instead of overflowing") {
  Inputs in;
  Add<envoy::config::cluster::v3::Cluster>(&in.clusters, R"(
name: slow
type: STATIC
connect_timeout: 315576000000s
load_assignment:
  cluster_name: slow
  endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 10.0.0.1, port_value: 80}}}}]}]
)");
  auto config = in.Build();
  REQUIRE(config->clusters.count("slow") == 1);
  CHECK(config->clusters.at("slow")->connect_timeout ==
        std::chrono::seconds(int64_t{10} * 365 * 24 * 3600));
}
}  // namespace
}  // namespace weft::proxy
