// Resource limits that fail safely, crossed on purpose against a real weft-proxy: each is
// answered with a clear error and counted, and the proxy keeps serving within the limit.
#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <vector>

#include "tests/e2e/e2e_util.h"
#include "tests/support/http_client.h"
#include "tests/support/process.h"

namespace weft::test {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// weft-proxy on static resources only: one listener answering /ok itself.
struct StaticProxy {
  TempDir dir{"weft-limits"};
  std::unique_ptr<Subprocess> proxy;
  int admin_port = 0;
  int port = 0;

  explicit StaticProxy(const std::vector<std::string>& flags) {
    std::string bootstrap = dir.Join("bootstrap.yaml");
    REQUIRE(WriteFileAtomic(bootstrap, R"(node: { id: limits, cluster: limits }
admin: { address: "127.0.0.1:0" }
concurrency: 1
static_resources:
  listeners:
  - name: http
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: http
          route_config:
            name: local
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: / }
                direct_response: { status: 200, body: { inline_string: "ok\n" } }
          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
)"));
    std::string ready = dir.Join("proxy.ready");
    std::vector<std::string> argv = {BinDir() + "/weft-proxy", "--bootstrap", bootstrap,
                                     "--ready-file", ready};
    argv.insert(argv.end(), flags.begin(), flags.end());
    std::string error;
    proxy = Subprocess::Start(argv, {}, dir.Join("proxy.log"), &error);
    INFO(error);
    REQUIRE(proxy);
    REQUIRE(WaitFor([&] { return ReadFile(ready).has_value(); }, seconds(10)));
    admin_port = JsonIntField(*ReadFile(ready), "admin_port").value_or(-1);
    REQUIRE(admin_port > 0);
    REQUIRE(WaitFor([&] { return HttpGet(admin_port, "/ready").status == 200; }, seconds(10)));
    port = JsonIntField(HttpGet(admin_port, "/listeners").body, "port").value_or(-1);
    REQUIRE(port > 0);
  }
  double Metric(std::string_view name) {
    return MetricValue(HttpGet(admin_port, "/stats/prometheus").body, name, {{"listener", "http"}})
        .value_or(-1);
  }
};

TEST_CASE("limits: connections over --max-connections get a 503 and a close, and are counted",
          "[e2e][limits]") {
  StaticProxy p({"--max-connections", "2"});
  HttpClient first(p.port);
  auto second = std::make_unique<HttpClient>(p.port);
  REQUIRE(first.Get("/ok").status == 200);
  REQUIRE(second->Get("/ok").status == 200);
  // Both stay open (keep-alive): a third is one too many.
  HttpClient third(p.port);
  ClientResponse refused = third.Get("/ok");
  CHECK(refused.status == 503);
  CHECK(refused.body == "proxy connection limit reached\n");
  CHECK(third.PeerClosed(seconds(2)));
  CHECK(p.Metric("weft_proxy_listener_downstream_cx_overflow_total") == 1);
  // The two inside the limit are unaffected; once one closes, a new connection gets in.
  CHECK(first.Get("/ok").status == 200);
  second.reset();
  CHECK(WaitFor(
      [&] {
        HttpClient again(p.port);
        return again.Get("/ok").status == 200;
      },
      seconds(5), milliseconds(50)));
}

TEST_CASE(
    "limits: an xDS response over xds.max_message_bytes ends the stream, is counted, and "
    "the proxy keeps its last good config",
    "[e2e][limits]") {
  CpFixture cp;
  // 40 clusters: a CDS response of several KiB.
  std::string resources = "resources:\n";
  for (int i = 0; i < 40; ++i) {
    resources +=
        "- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\n"
        "  name: cluster-with-a-fairly-long-name-" +
        std::to_string(i) +
        "\n  type: STATIC\n  connect_timeout: 1s\n"
        "  load_assignment:\n    cluster_name: c\n    endpoints: [{lb_endpoints: "
        "[{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 9}}}}]}]\n";
  }
  cp.Write("clusters.yaml", resources);
  cp.Start();
  TempDir dir("weft-limits-xds");
  std::string bootstrap = dir.Join("bootstrap.yaml");
  REQUIRE(WriteFileAtomic(bootstrap,
                          "node: { id: small, cluster: small }\n"
                          "xds: { servers: [\"127.0.0.1:" +
                              std::to_string(cp.xds_port()) +
                              "\"], max_message_bytes: 1024, initial_backoff: 0.05s, "
                              "max_backoff: 0.2s }\n"
                              "admin: { address: \"127.0.0.1:0\" }\nconcurrency: 1\n"));
  std::string ready = dir.Join("proxy.ready");
  std::string error;
  auto proxy =
      Subprocess::Start({BinDir() + "/weft-proxy", "--bootstrap", bootstrap, "--ready-file", ready},
                        {}, dir.Join("proxy.log"), &error);
  INFO(error);
  REQUIRE(proxy);
  REQUIRE(WaitFor([&] { return ReadFile(ready).has_value(); }, seconds(10)));
  int admin = JsonIntField(*ReadFile(ready), "admin_port").value_or(-1);
  REQUIRE(admin > 0);
  auto oversized = [&] {
    return MetricValue(HttpGet(admin, "/stats/prometheus").body,
                       "weft_proxy_xds_oversized_responses_total")
        .value_or(-1);
  };
  INFO(proxy->LogTail());
  CHECK(WaitFor([&] { return oversized() >= 2; }, seconds(10), milliseconds(50)));
  CHECK(proxy->LogTail().find("exceeds the limit of 1024") != std::string::npos);
  // Nothing was accepted, so nothing is served, and the process is still up.
  CHECK(HttpGet(admin, "/ready").status == 503);
  CHECK(proxy->Running());
}

}  // namespace
}  // namespace weft::test
