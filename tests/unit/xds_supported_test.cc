// The "nothing configured is ignored" check: a field weft-proxy does not apply is refused with
// its path, wherever it sits (inside a typed_config too), and so is a field our subset lacks.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "common/proto_util.h"
#include "common/validation.h"
#include "common/xds/supported.h"
#include "common/xds/validate.h"
#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/listener/v3/listener.pb.h"
#include "envoy/config/route/v3/route.pb.h"
#include "envoy/extensions/filters/http/router/v3/router.pb.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb.h"
#include "tests/unit/resource_util.h"

namespace weft::xds {
namespace {

using envoy::config::cluster::v3::Cluster;
using envoy::config::listener::v3::Listener;
using envoy::config::route::v3::RouteConfiguration;
using HttpConnectionManager =
    envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;

using testing::FromYaml;

std::vector<std::string> Unsupported(const google::protobuf::Message& m) {
  ValidationErrors errors;
  CheckSupportedFields(m, &errors);
  return errors.errors();
}

constexpr std::string_view kNotApplied =
    "is not applied by weft-proxy; refused rather than ignored";

Listener HttpListener(std::string_view hcm_extra) {
  Listener l = FromYaml<Listener>(R"(
name: l
address: {socket_address: {address: 127.0.0.1, port_value: 0}}
filter_chains:
- filters:
  - name: hcm
)");
  HttpConnectionManager hcm = FromYaml<HttpConnectionManager>(
      std::string("stat_prefix: l\nrds: {route_config_name: r, config_source: {ads: {}}}\n") +
      std::string(hcm_extra));
  auto* router = hcm.add_http_filters();
  router->set_name("envoy.filters.http.router");
  PackAny(envoy::extensions::filters::http::router::v3::Router(), router->mutable_typed_config());
  PackAny(hcm, l.mutable_filter_chains(0)->mutable_filters(0)->mutable_typed_config());
  return l;
}

TEST_CASE("supported fields: the table names real messages and fields") {
  CHECK(UnresolvedSupportTableEntries().empty());
}

TEST_CASE("supported fields: what weft-proxy applies passes") {
  CHECK(Unsupported(HttpListener("request_timeout: 5s\nupgrade_configs: [{upgrade_type: ws}]\n"))
            .empty());
  CHECK(Unsupported(FromYaml<RouteConfiguration>(R"(
name: r
virtual_hosts:
- name: a
  domains: ["*"]
  routes:
  - match: {prefix: /, headers: [{name: x, string_match: {exact: y}}]}
    route: {cluster: c, timeout: 1s, retry_policy: {num_retries: 2, retry_on: connect-failure}}
)"))
            .empty());
  CHECK(Unsupported(FromYaml<Cluster>(R"(
name: c
type: EDS
eds_cluster_config: {eds_config: {ads: {}, resource_api_version: V3}}
lb_policy: LEAST_REQUEST
least_request_lb_config: {choice_count: 3}
metadata: {filter_metadata: {weft: {lb_algorithm: least_response_time}}}
)"))
            .empty());
  // Meant for proxyless gRPC clients; weft-proxy serves socket listeners only.
  CHECK(Unsupported(FromYaml<Listener>("name: grpc\napi_listener: {}\n")).empty());
}

TEST_CASE("supported fields: a field that is not applied is refused with its path") {
  auto e = Unsupported(FromYaml<Listener>(R"(
name: l
address: {socket_address: {address: 127.0.0.1, port_value: 0}}
per_connection_buffer_limit_bytes: 1024
filter_chains: [{filter_chain_match: {destination_port: 80}}]
)"));
  CHECK(e ==
        std::vector<std::string>{"filter_chains[0].filter_chain_match: " + std::string(kNotApplied),
                                 "per_connection_buffer_limit_bytes: " + std::string(kNotApplied)});

  // Inside the connection manager's typed_config too.
  e = Unsupported(HttpListener("stream_idle_timeout: 5s\n"));
  REQUIRE(e.size() == 1);
  CHECK(e[0] == "filter_chains[0].filters[0].typed_config.stream_idle_timeout: " +
                    std::string(kNotApplied));

  e = Unsupported(FromYaml<Cluster>("name: c\noutlier_detection: {}\n"));
  CHECK(e == std::vector<std::string>{"outlier_detection: " + std::string(kNotApplied)});
}

TEST_CASE("supported fields: enum values the proxy does not implement are refused") {
  auto e = Unsupported(FromYaml<Cluster>("name: c\ntype: STRICT_DNS\n"));
  CHECK(e == std::vector<std::string>{"type: STRICT_DNS " + std::string(kNotApplied)});
  e = Unsupported(HttpListener("codec_type: HTTP2\n"));
  CHECK(e ==
        std::vector<std::string>{"filter_chains[0].filters[0].typed_config.codec_type: HTTP2 " +
                                 std::string(kNotApplied)});
}

TEST_CASE("supported fields: a field outside our proto subset is refused, not dropped") {
  Cluster c;
  c.set_name("c");
  // Field 99 is in no Cluster of our subset: protobuf keeps it as an unknown field.
  c.GetReflection()->MutableUnknownFields(&c)->AddVarint(99, 1);
  auto e = Unsupported(c);
  REQUIRE(e.size() == 1);
  CHECK(e[0] ==
        "field number 99 is not part of weft's xDS subset, so it " + std::string(kNotApplied));
  // Through the validators every resource is held to it.
  ValidationErrors errors;
  ValidateResource(PackAny(c), &errors);
  CHECK(errors.errors() == e);
}

TEST_CASE("supported fields: typed settings nothing reads are refused") {
  Cluster c = FromYaml<Cluster>(R"(
name: c
lb_policy: LOAD_BALANCING_POLICY_CONFIG
load_balancing_policy:
  policies:
  - typed_extension_config:
      name: envoy.load_balancing_policies.round_robin
)");
  // An empty typed_config configures nothing.
  c.mutable_load_balancing_policy()
      ->mutable_policies(0)
      ->mutable_typed_extension_config()
      ->mutable_typed_config()
      ->set_type_url("type.googleapis.com/acme.RoundRobin");
  CHECK(Unsupported(c).empty());
  c.mutable_load_balancing_policy()
      ->mutable_policies(0)
      ->mutable_typed_extension_config()
      ->mutable_typed_config()
      ->set_value("\x08\x01");
  auto e = Unsupported(c);
  CHECK(e == std::vector<std::string>{
                 "load_balancing_policy.policies[0].typed_extension_config.typed_config: "
                 "(acme.RoundRobin) " +
                 std::string(kNotApplied)});
}

TEST_CASE("supported fields: one filter chain per listener, and no TCP proxy yet") {
  Listener l = HttpListener("");
  *l.add_filter_chains() = l.filter_chains(0);
  auto e = Unsupported(l);
  REQUIRE(e.size() == 1);
  CHECK(e[0].find("filter_chains: has 2 chains; weft-proxy serves one filter chain") == 0);

  Listener tcp = FromYaml<Listener>(R"(
name: t
address: {socket_address: {address: 127.0.0.1, port_value: 0}}
filter_chains:
- filters:
  - name: tcp
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
      stat_prefix: t
      cluster: c
)");
  ValidationErrors errors;
  ValidateResource(PackAny(tcp), &errors);
  REQUIRE(errors.size() == 1);
  CHECK(errors.errors()[0] ==
        "filter_chains[0].filters[0].typed_config: tcp_proxy is not supported by weft-proxy yet; "
        "refused rather than ignored");
}

}  // namespace
}  // namespace weft::xds

namespace weft::xds {
namespace {
// Binary xDS can carry Durations protobuf calls invalid (its JSON parser refuses them, so YAML
// cannot); one of 2^63 ms overflowed BuildProxyConfig's arithmetic (found by
// fuzz/targets/xds_resource_fuzz, input in fuzz/corpus/xds_cluster_fuzz/crash-duration-overflow).
TEST_CASE("supported fields: a Duration outside protobuf's range is refused with its path") {
  envoy::config::cluster::v3::Cluster c;
  c.set_name("c");
  c.mutable_connect_timeout()->set_seconds(int64_t{1} << 62);
  CHECK(Unsupported(c) == std::vector<std::string>{"connect_timeout.seconds: out of range for a "
                                                   "Duration (at most 315576000000 either way)"});
  c.mutable_connect_timeout()->set_seconds(1);
  c.mutable_connect_timeout()->set_nanos(-5);
  CHECK(Unsupported(c) ==
        std::vector<std::string>{"connect_timeout.nanos: must have the sign of seconds"});
  c.mutable_connect_timeout()->set_nanos(1'000'000'000);
  CHECK(Unsupported(c) ==
        std::vector<std::string>{
            "connect_timeout.nanos: out of range for a Duration (at most 999999999 either way)"});
  c.mutable_connect_timeout()->set_seconds(315'576'000'000);
  c.mutable_connect_timeout()->set_nanos(999'999'999);
  CHECK(Unsupported(c).empty());
}
}  // namespace
}  // namespace weft::xds
