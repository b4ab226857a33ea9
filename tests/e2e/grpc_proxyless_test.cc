// Wire compatibility with an xDS client we did not write: Debian's libgrpc++ (1.51) resolves
// xds:///svc through weft-cp (LDS -> RDS -> CDS -> EDS over ADS, SotW) and load-balances real
// RPCs over the backends weft-cp names. If gRPC NACKs anything, the RPCs fail or go to the wrong
// backends, and /debug/proxies shows the NACK text.
//
// The xDS client inside gRPC is a process-wide singleton built from the bootstrap on first use,
// so this file holds a single test case (ctest runs each case in its own process anyway).
#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "tests/e2e/e2e_util.h"
#include "tests/e2e/echo_backends.h"
#include "tests/support/process.h"
#include "tests/support/xds_client.h"

namespace weft::test {
namespace {

using std::chrono::milliseconds;

std::string ListenerFile() {
  return ResourcesFile(
      {"{\"@type\": \"type.googleapis.com/envoy.config.listener.v3.Listener\", \"name\": \"svc\", "
       "\"api_listener\": {\"api_listener\": {\"@type\": \"type.googleapis.com/"
       "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\", "
       "\"rds\": {\"config_source\": {\"ads\": {}}, \"route_config_name\": \"svc-route\"}, "
       "\"http_filters\": [{\"name\": \"router\", \"typed_config\": {\"@type\": "
       "\"type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\"}}]}}}"});
}

std::string RouteFile() {
  return ResourcesFile(
      {"{\"@type\": \"type.googleapis.com/envoy.config.route.v3.RouteConfiguration\", \"name\": "
       "\"svc-route\", \"virtual_hosts\": [{\"name\": \"svc\", \"domains\": [\"*\"], \"routes\": "
       "[{\"match\": {\"prefix\": \"\"}, \"route\": {\"cluster\": \"svc-cluster\"}}]}]}"});
}

std::string ClusterFile() {
  return ResourcesFile(
      {"{\"@type\": \"type.googleapis.com/envoy.config.cluster.v3.Cluster\", \"name\": "
       "\"svc-cluster\", \"type\": \"EDS\", \"eds_cluster_config\": {\"eds_config\": {\"ads\": "
       "{}}}, \"lb_policy\": \"ROUND_ROBIN\", \"connect_timeout\": \"1s\"}"});
}

std::string EndpointsFile(const std::vector<int>& ports) {
  return ResourcesFile({ClaRes("svc-cluster", ports, "z1")});
}

TEST_CASE("Debian's gRPC xDS client routes RPCs to the backends weft-cp names",
          "[e2e][proxyless]") {
  EchoBackend b1("backend-1"), b2("backend-2"), b3("backend-3");
  REQUIRE(b1.ok());
  REQUIRE(b2.ok());
  REQUIRE(b3.ok());

  CpFixture cp;
  cp.Write("listener.yaml", ListenerFile());
  cp.Write("route.yaml", RouteFile());
  cp.Write("cluster.yaml", ClusterFile());
  cp.Write("endpoints.yaml", EndpointsFile({b1.port(), b2.port()}));
  cp.Start();

  // Must be set before the first xds: channel: gRPC reads the bootstrap once per process.
  SetGrpcXdsBootstrap(cp.xds_port(), "proxyless-1", "z1");
  auto stub = ConnectEcho("xds:///svc", cp.admin_port());

  auto counts = SprayUntilAll(*stub, {"backend-1", "backend-2"}, std::chrono::seconds(10));
  INFO("before the EDS change: " << Show(counts));
  CHECK(counts["backend-1"] > 0);
  CHECK(counts["backend-2"] > 0);
  CHECK(counts.size() == 2);  // nothing else answered, no RPC failed

  // Move traffic from backend 1 to backend 3 with an EDS-only change.
  auto changed_at = std::chrono::steady_clock::now();
  cp.Write("endpoints.yaml", EndpointsFile({b2.port(), b3.port()}));
  std::map<std::string, int> during;
  bool saw_b3 = WaitFor(
      [&] {
        auto c = Spray(*stub, 1);
        for (const auto& [k, v] : c) during[k] += v;
        return c.count("backend-3") > 0;
      },
      std::chrono::seconds(5), milliseconds(5));
  auto latency =
      std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - changed_at);
  INFO("first answer from backend-3 after " << latency.count()
                                            << " ms; RPCs meanwhile: " << Show(during));
  REQUIRE(saw_b3);
  CHECK(latency < std::chrono::seconds(1));
  auto after = Spray(*stub, 20);
  INFO("after the EDS change: " << Show(after));
  CHECK(after.count("backend-1") == 0);
  CHECK(after["backend-2"] > 0);
  CHECK(after["backend-3"] > 0);

  // All four types ACKed by gRPC, none NACKed.
  std::string body;
  bool all_acked = WaitFor(
      [&] {
        body = HttpGet(cp.admin_port(), "/debug/proxies").body;
        auto json = ParseJson(body);
        if (!json) return false;
        auto proxy = FindProxy(*json, "proxyless-1");
        if (!proxy) return false;
        for (const char* type : {"listener", "route", "cluster", "endpoint"}) {
          std::string acked = JsonString(*proxy, std::string("types.") + type + ".acked_version");
          std::string sent = JsonString(*proxy, std::string("types.") + type + ".sent_version");
          if (acked.empty() || acked != sent) return false;
        }
        return true;
      },
      std::chrono::seconds(3), milliseconds(50));
  INFO("/debug/proxies: " << body);
  CHECK(all_acked);
  auto json = ParseJson(body);
  REQUIRE(json.has_value());
  auto proxy = FindProxy(*json, "proxyless-1");
  REQUIRE(proxy.has_value());
  CHECK(JsonString(*proxy, "mode") == "sotw");
  CHECK(JsonString(*proxy, "service") == "ads");
  for (const char* type : {"listener", "route", "cluster", "endpoint"}) {
    const auto* nack = JsonAt(*proxy, std::string("types.") + type + ".nack");
    INFO("type " << type);
    CHECK((nack == nullptr || nack->has_null_value()));
  }
}

}  // namespace
}  // namespace weft::test
