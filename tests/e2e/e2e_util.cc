#define CATCH_CONFIG_EXTERNAL_INTERFACES
#include "tests/e2e/e2e_util.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <exception>

#include "tests/support/xds_client.h"

namespace weft::test {

namespace {

bool g_failed = false;

// Records failures so fixtures can dump the server log while they unwind.
class FailureListener : public Catch::TestEventListenerBase {
 public:
  using TestEventListenerBase::TestEventListenerBase;
  void testCaseStarting(const Catch::TestCaseInfo& info) override {
    g_failed = false;
    TestEventListenerBase::testCaseStarting(info);
  }
  bool assertionEnded(const Catch::AssertionStats& stats) override {
    if (!stats.assertionResult.isOk()) g_failed = true;
    return TestEventListenerBase::assertionEnded(stats);
  }
};

}  // namespace

CATCH_REGISTER_LISTENER(FailureListener)

bool CurrentTestFailed() { return g_failed || std::uncaught_exceptions() > 0; }

std::string ClusterRes(std::string_view name, int variant) {
  return "{\"@type\": \"" + std::string(kCds) + "\", \"name\": \"" + std::string(name) +
         "\", \"type\": \"EDS\", \"eds_cluster_config\": {\"eds_config\": {\"ads\": {}}}, "
         "\"connect_timeout\": \"" +
         std::to_string(variant) + "s\", \"lb_policy\": \"ROUND_ROBIN\"}";
}

std::string ClaRes(std::string_view cluster, const std::vector<int>& ports, std::string_view zone) {
  std::string eps;
  for (int port : ports) {
    if (!eps.empty()) eps += ", ";
    eps +=
        "{\"endpoint\": {\"address\": {\"socket_address\": {\"address\": \"127.0.0.1\", "
        "\"port_value\": " +
        std::to_string(port) + "}}}}";
  }
  return "{\"@type\": \"" + std::string(kEds) + "\", \"cluster_name\": \"" + std::string(cluster) +
         "\", \"endpoints\": [{\"locality\": {\"region\": \"r1\", " + "\"zone\": \"" +
         std::string(zone) + "\"}, \"load_balancing_weight\": 1, \"lb_endpoints\": [" + eps +
         "]}]}";
}

std::string ListenerRes(std::string_view name, std::string_view route, int port) {
  return "{\"@type\": \"" + std::string(kLds) + "\", \"name\": \"" + std::string(name) +
         "\", \"address\": {\"socket_address\": {\"address\": \"127.0.0.1\", \"port_value\": " +
         std::to_string(port) +
         "}}, \"filter_chains\": [{\"filters\": [{\"name\": "
         "\"envoy.filters.network.http_connection_manager\", \"typed_config\": {\"@type\": "
         "\"type.googleapis.com/"
         "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\", "
         "\"stat_prefix\": \"ingress\", \"rds\": {\"config_source\": {\"ads\": {}}, "
         "\"route_config_name\": \"" +
         std::string(route) +
         "\"}, \"http_filters\": [{\"name\": \"envoy.filters.http.router\", \"typed_config\": "
         "{\"@type\": \"type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\"}}]"
         "}}]}]}";
}

std::string RouteRes(std::string_view name, std::string_view cluster, std::string_view prefix) {
  return "{\"@type\": \"" + std::string(kRds) + "\", \"name\": \"" + std::string(name) +
         "\", \"virtual_hosts\": [{\"name\": \"vh\", \"domains\": [\"*\"], \"routes\": "
         "[{\"match\": {\"prefix\": \"" +
         std::string(prefix) + "\"}, \"route\": {\"cluster\": \"" + std::string(cluster) +
         "\"}}]}]}";
}

std::string ResourcesFile(const std::vector<std::string>& resources) {
  std::string out = "resources:\n";
  for (const auto& r : resources) out += "- " + r + "\n";
  if (resources.empty()) out = "resources: []\n";
  return out;
}

CpFixture::CpFixture() : config_("weft-e2e-config") {}

CpFixture::~CpFixture() {
  if (CurrentTestFailed() && cp_.process) {
    std::fprintf(stderr, "---- weft-cp log (tail) ----\n%s\n---- end of weft-cp log ----\n",
                 cp_.LogTail(12000).c_str());
  }
}

void CpFixture::Write(std::string_view file, std::string_view contents) {
  REQUIRE(WriteFileAtomic(config_.Join(file), contents));
}

void CpFixture::Remove(std::string_view file) {
  REQUIRE(::unlink(config_.Join(file).c_str()) == 0);
}

void CpFixture::Start(const std::vector<std::string>& extra_args) {
  std::vector<std::string> args = {"--debounce-ms", "20", "--log-level", "debug"};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  std::string error;
  auto cp = StartWeftCp(config_.path(), args, &error);
  INFO(error);
  REQUIRE(cp.has_value());
  cp_ = std::move(*cp);
}

std::string CpFixture::Get(std::string_view path) {
  HttpResponse r = HttpGet(cp_.admin_port, path);
  INFO("GET " << path << " -> " << r.status << "\n" << r.body);
  REQUIRE(r.status == 200);
  return r.body;
}

google::protobuf::Struct CpFixture::GetJson(std::string_view path) {
  std::string body = Get(path);
  auto json = ParseJson(body);
  INFO("GET " << path << " body: " << body);
  REQUIRE(json.has_value());
  return *json;
}

double CpFixture::Metric(std::string_view name, const std::map<std::string, std::string>& labels) {
  HttpResponse r = HttpGet(cp_.admin_port, "/metrics");
  if (r.status != 200) return -1;
  return MetricValue(r.body, name, labels).value_or(-1);
}

}  // namespace weft::test
