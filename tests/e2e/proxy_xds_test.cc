// weft-proxy against a real weft-cp: it subscribes, warms clusters and listeners through their
// EDS and RDS, ACKs, keeps its last good config when the control plane dies, and resyncs
// cheaply when it comes back.
#include <sys/wait.h>

#include <algorithm>
#include <catch2/catch.hpp>

#include "tests/e2e/e2e_util.h"
#include "tests/support/http_client.h"
#include "tests/support/process.h"
#include "tests/support/xds_client.h"

namespace weft::test {
namespace {

struct Proxy {
  TempDir dir{"weft-proxy"};
  std::unique_ptr<Subprocess> process;
  int admin_port = 0;

  void Start(int xds_port, std::string_view mode, std::string_view id = "sidecar-1",
             std::string_view cluster = "web") {
    std::string bootstrap = dir.Join("bootstrap.yaml");
    REQUIRE(WriteFileAtomic(
        bootstrap, "node: { id: " + std::string(id) + ", cluster: " + std::string(cluster) +
                       ", locality: { zone: z1 } }\n"
                       "xds:\n  servers: [\"127.0.0.1:" +
                       std::to_string(xds_port) + "\"]\n  mode: " + std::string(mode) +
                       "\n  initial_backoff: 0.05s\n  max_backoff: 0.2s\n"
                       "admin: { address: \"127.0.0.1:0\" }\n"));
    std::string ready = dir.Join("ready.json");
    std::string error;
    process = Subprocess::Start({BinDir() + "/weft-proxy", "--bootstrap", bootstrap, "--ready-file",
                                 ready, "--log-level", "debug"},
                                {}, dir.Join("proxy.log"), &error);
    INFO(error);
    REQUIRE(process);
    REQUIRE(WaitFor([&] { return ReadFile(ready).has_value(); }, std::chrono::seconds(10)));
    auto json = ParseJson(*ReadFile(ready));
    REQUIRE(json);
    admin_port = static_cast<int>(json->fields().at("admin_port").number_value());
  }
  std::string Get(std::string_view path) { return HttpGet(admin_port, path).body; }
};

std::string Mesh(std::vector<int> ports) {
  return ResourcesFile({ClusterRes("web"), ClaRes("web", ports),
                        ListenerRes("ingress", "web-route"), RouteRes("web-route", "web")});
}

// weft-cp's view: the proxy is in sync, and (on a fresh stream) ACKed a version of each type.
void CheckInSync(CpFixture& cp, bool expect_versions) {
  REQUIRE(WaitFor(
      [&] {
        auto proxies = ParseJson(cp.Get("/debug/proxies"));
        if (!proxies) return false;
        auto p = FindProxy(*proxies, "sidecar-1");
        if (!p) return false;
        const google::protobuf::Value* in_sync = JsonAt(*p, "in_sync");
        if (in_sync == nullptr || !in_sync->bool_value()) return false;
        if (!expect_versions) return true;
        for (const char* t : {"cluster", "endpoint", "listener", "route"}) {
          std::string sent = JsonString(*p, std::string("types.") + t + ".sent_version");
          std::string acked = JsonString(*p, std::string("types.") + t + ".acked_version");
          if (sent.empty() || sent != acked) return false;
        }
        return true;
      },
      std::chrono::seconds(5)));
}

void RunScenario(std::string_view mode) {
  CpFixture cp;
  cp.Write("mesh.yaml", Mesh({9001, 9002}));
  cp.Start();
  Proxy proxy;
  proxy.Start(cp.xds_port(), mode);

  // Subscribed, warmed through EDS and RDS, and ACKed everything.
  CheckInSync(cp, true);
  REQUIRE(WaitFor([&] { return HttpGet(proxy.admin_port, "/ready").status == 200; },
                  std::chrono::seconds(5)));
  std::string dump = proxy.Get("/config_dump");
  CHECK(dump.find("\"warming\":[]") != std::string::npos);
  CHECK(dump.find("\"name\":\"web-route\"") != std::string::npos);
  CHECK(dump.find("9002") != std::string::npos);  // endpoints are in the dump

  // An endpoint change reaches the proxy.
  cp.Write("mesh.yaml", Mesh({9001, 9003}));
  REQUIRE(WaitFor([&] { return proxy.Get("/config_dump").find("9003") != std::string::npos; },
                  std::chrono::seconds(3)));

  // The control plane dies: the proxy keeps serving its last good config.
  int port = cp.xds_port();
  cp.Kill();
  REQUIRE(
      WaitFor([&] { return proxy.Get("/xds").find("\"connected\":false") != std::string::npos; },
              std::chrono::seconds(5)));
  dump = proxy.Get("/config_dump");
  CHECK(dump.find("9003") != std::string::npos);
  CHECK(dump.find("\"name\":\"web-route\"") != std::string::npos);
  CHECK(HttpGet(proxy.admin_port, "/ready").status == 200);

  // It comes back on the same address: the proxy reconnects and is in sync again.
  cp.Start({"--xds-address", "127.0.0.1:" + std::to_string(port)});
  // Delta resumes from initial_resource_versions, so nothing needs sending; SotW resends.
  CheckInSync(cp, mode == "SOTW");
  if (mode == "DELTA") {
    // initial_resource_versions: nothing the proxy already had is sent again.
    CHECK(cp.Metric("weft_cp_xds_resources_sent_total", {{"type", "cluster"}}) == 0);
    CHECK(cp.Metric("weft_cp_xds_resources_sent_total", {{"type", "endpoint"}}) == 0);
  }
  CHECK(proxy.Get("/stats/prometheus").find("weft_proxy_xds_connected 1") != std::string::npos);
}

TEST_CASE("weft-proxy over Delta ADS: warm, ACK, survive and resync with the control plane") {
  RunScenario("DELTA");
}

TEST_CASE("weft-proxy over SotW ADS: warm, ACK, survive and resync with the control plane") {
  RunScenario("SOTW");
}

TEST_CASE("weft-proxy on an empty mesh is ready once the control plane says there is nothing") {
  CpFixture cp;
  cp.Start();
  for (std::string_view mode : {"DELTA", "SOTW"}) {
    Proxy proxy;
    proxy.Start(cp.xds_port(), mode, std::string("empty-") + std::string(mode));
    INFO(mode);
    CHECK(WaitFor([&] { return HttpGet(proxy.admin_port, "/ready").status == 200; },
                  std::chrono::seconds(5)));
  }
}

TEST_CASE("Only the sidecars of a Service get its inbound listener") {
  CpFixture cp;
  cp.Write("mesh.yaml",
           "kind: Service\nname: payments\nports: [{port: 18080}]\n"
           "endpoints: [{address: 127.0.0.1, port: 18081}]\n");
  cp.Start();
  Proxy payments;
  payments.Start(cp.xds_port(), "DELTA", "payments-1", "payments");
  Proxy web;
  web.Start(cp.xds_port(), "SOTW", "web-1", "web");
  for (Proxy* p : {&payments, &web}) {
    REQUIRE(WaitFor([&] { return HttpGet(p->admin_port, "/ready").status == 200; },
                    std::chrono::seconds(5)));
  }
  // The node cluster names the service: its group snapshot adds the inbound listener.
  REQUIRE(WaitFor(
      [&] {
        return payments.Get("/config_dump").find("inbound|18080|payments.default") !=
               std::string::npos;
      },
      std::chrono::seconds(5)));
  CHECK(payments.Get("/config_dump").find("outbound_http") != std::string::npos);
  // Any other sidecar shares the default snapshot: outbound only.
  REQUIRE(
      WaitFor([&] { return web.Get("/config_dump").find("outbound_http") != std::string::npos; },
              std::chrono::seconds(5)));
  CHECK(web.Get("/config_dump").find("inbound|") == std::string::npos);
}

// The mutating routes an admin server lists in its 404 page ("  POST /path"), and the others.
void AdminRoutes(int admin_port, std::vector<std::string>* mutating,
                 std::vector<std::string>* read_only) {
  std::string listing = HttpGet(admin_port, "/no-such-admin-path").body;
  size_t at = 0;
  while ((at = listing.find("\n  ", at)) != std::string::npos) {
    at += 3;
    size_t end = listing.find('\n', at);
    std::string line = listing.substr(at, end - at);
    if (line.rfind("POST ", 0) == 0) {
      mutating->push_back(line.substr(5));
    } else if (line.rfind("GET  ", 0) == 0) {
      read_only->push_back(line.substr(5));
    }
  }
}

// Every mutating route answers 405 (Allow: POST) to GET and HEAD, every read-only one 405
// (Allow: GET, HEAD) to POST; `expected` must be among the mutating ones.
void CheckAdminMethods(int admin_port, const std::vector<std::string>& expected) {
  std::vector<std::string> mutating, read_only;
  AdminRoutes(admin_port, &mutating, &read_only);
  for (const std::string& path : expected) {
    CHECK(std::find(mutating.begin(), mutating.end(), path) != mutating.end());
  }
  CHECK(std::find(read_only.begin(), read_only.end(), "/ready") != read_only.end());
  HttpClient client(admin_port);
  for (const std::string& path : mutating) {
    for (const char* method : {"GET", "HEAD"}) {
      INFO(method << " " << path);
      ClientResponse r = client.Request(method, path + "?level=off");
      CHECK(r.status == 405);
      CHECK(r.Header("allow") == "POST");
    }
  }
  for (const std::string& path : read_only) {
    INFO("POST " << path);
    ClientResponse r = client.Request("POST", path);
    CHECK(r.status == 405);
    CHECK(r.Header("allow") == "GET, HEAD");
  }
}

TEST_CASE("Admin endpoints that change state answer only POST, on weft-proxy and weft-cp") {
  CpFixture cp;
  cp.Start();
  Proxy proxy;
  proxy.Start(cp.xds_port(), "DELTA");
  REQUIRE(WaitFor([&] { return HttpGet(proxy.admin_port, "/ready").status == 200; },
                  std::chrono::seconds(5)));

  CheckAdminMethods(proxy.admin_port, {"/healthcheck/fail", "/healthcheck/ok", "/logging"});
  CheckAdminMethods(cp.admin_port(), {"/logging"});

  // The GETs above changed nothing: still ready, still logging at debug.
  HttpClient admin(proxy.admin_port);
  CHECK(admin.Get("/ready").status == 200);
  CHECK(admin.Request("POST", "/logging").body == "level: debug\n");
  // A page on another site can make a browser POST, but it cannot hide where it came from.
  CHECK(admin.Request("POST", "/healthcheck/fail", {{"Origin", "http://evil.example"}}).status ==
        403);
  CHECK(admin.Get("/ready").status == 200);

  // POST still does what it says.
  CHECK(admin.Request("POST", "/healthcheck/fail").status == 200);
  CHECK(admin.Get("/ready").status == 503);
  CHECK(admin.Request("POST", "/healthcheck/ok").status == 200);
  CHECK(admin.Get("/ready").status == 200);
  CHECK(admin.Request("POST", "/logging?level=info").body == "level: info\n");
  HttpClient cp_admin(cp.admin_port());
  CHECK(cp_admin.Request("POST", "/logging?level=warning").body == "level: warning\n");
  CHECK(cp_admin.Request("POST", "/logging?level=verbose").status == 400);
}

TEST_CASE("weft-proxy refuses a bad bootstrap with file, line and field, every one") {
  TempDir dir("weft-proxy-bad");
  std::string bootstrap = dir.Join("b.yaml");
  REQUIRE(WriteFileAtomic(bootstrap,
                          "node: { id: x }\nxds:\n  servrs: [\"127.0.0.1:1\"]\n  mdoe: SOTW\n"));
  std::string error;
  auto p = Subprocess::Start({BinDir() + "/weft-proxy", "--bootstrap", bootstrap}, {},
                             dir.Join("log"), &error);
  REQUIRE(p);
  auto code = p->Wait(std::chrono::seconds(5));
  REQUIRE(code.has_value());
  CHECK(WIFEXITED(*code));
  CHECK(WEXITSTATUS(*code) == 1);
  std::string log = p->Log();
  INFO(log);
  // Every unknown field, not only the first.
  CHECK(log.find("b.yaml:3: xds.servrs: Cannot find field.; ") != std::string::npos);
  CHECK(log.find("b.yaml:4: xds.mdoe: Cannot find field.") != std::string::npos);
}

TEST_CASE("weft-proxy refuses an unknown --io-uring value") {
  TempDir dir("weft-proxy-bad-flag");
  std::string bootstrap = dir.Join("b.yaml");
  REQUIRE(WriteFileAtomic(bootstrap, "node: { id: x }\n"));
  std::string error;
  auto p = Subprocess::Start(
      {BinDir() + "/weft-proxy", "--bootstrap", bootstrap, "--io-uring", "sometimes"}, {},
      dir.Join("log"), &error);
  REQUIRE(p);
  auto code = p->Wait(std::chrono::seconds(5));
  REQUIRE(code.has_value());
  CHECK(WIFEXITED(*code));
  CHECK(WEXITSTATUS(*code) == 2);
  std::string log = p->Log();
  INFO(log);
  CHECK(log.find("--io-uring: expected auto, on or off, got \"sometimes\"") != std::string::npos);
}

}  // namespace
}  // namespace weft::test
