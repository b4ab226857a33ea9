// weft-proxy: the sidecar. Today it bootstraps, holds an ADS stream to weft-cp, validates and
// ACKs/NACKs what it is sent, keeps its last good config when the control plane goes away, and
// shows it all on its admin endpoint. The data path (listeners, routing, balancing) plugs into
// the same config state.
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/flags.h"
#include "common/http/admin_server.h"
#include "common/json.h"
#include "common/log.h"
#include "common/metrics/metrics.h"
#include "common/yaml_proto.h"
#include "data-plane/xds/xds_client.h"
#include "weft/bootstrap/v1/bootstrap.pb.h"

namespace {

// Admin endpoints, Envoy-style names: /ready, /config_dump, /stats/prometheus,
// /healthcheck/fail|ok, plus /xds (the control-plane connection).
std::vector<std::pair<std::string, weft::http::Handler>> AdminRoutes(
    weft::proxy::XdsClient* xds_client, weft::metrics::Registry* registry,
    std::atomic<bool>* failing_flag) {
  auto& xds = *xds_client;
  auto& failing = *failing_flag;
  auto json = [](std::string body) {
    weft::http::Response r;
    r.content_type = "application/json";
    r.body = std::move(body) + "\n";
    return r;
  };
  weft::http::Handler ready = [&xds, &failing](const weft::http::Request&) {
    weft::http::Response r;
    bool ready = xds.initialized() && !failing;
    r.status = ready ? 200 : 503;
    r.body = failing ? "failing (healthcheck/fail)\n" : (ready ? "LIVE\n" : "initializing\n");
    return r;
  };
  weft::http::Handler config_dump = [&xds, json](const weft::http::Request&) {
    return json(xds.ConfigDumpJson());
  };
  weft::http::Handler xds_status = [&xds, json](const weft::http::Request&) {
    const auto& st = xds.stats();
    return json(absl::StrCat(
        "{\"connected\":", st.connected ? "true" : "false", ",\"connects\":", st.connects.load(),
        ",\"disconnects\":", st.disconnects.load(), ",\"accepted\":", st.updates_accepted.load(),
        ",\"rejected\":", st.updates_rejected.load(),
        ",\"last_rejection\":", weft::JsonString(xds.last_rejection()), "}"));
  };
  weft::http::Handler prometheus = [&xds, registry](const weft::http::Request&) {
    const auto& st = xds.stats();
    weft::http::Response r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = registry->PrometheusText() +
             absl::StrCat("# HELP weft_proxy_xds_connected 1 while an ADS stream is up\n",
                          "# TYPE weft_proxy_xds_connected gauge\n", "weft_proxy_xds_connected ",
                          st.connected ? 1 : 0, "\n",
                          "# HELP weft_proxy_xds_updates_total xDS responses, by outcome\n",
                          "# TYPE weft_proxy_xds_updates_total counter\n",
                          "weft_proxy_xds_updates_total{result=\"accepted\"} ",
                          st.updates_accepted.load(), "\n",
                          "weft_proxy_xds_updates_total{result=\"rejected\"} ",
                          st.updates_rejected.load(), "\n");
    return r;
  };
  weft::http::Handler fail = [&failing](const weft::http::Request&) {
    failing = true;
    return weft::http::Response{200, "text/plain; charset=utf-8", "OK\n", {}};
  };
  weft::http::Handler ok = [&failing](const weft::http::Request&) {
    failing = false;
    return weft::http::Response{200, "text/plain; charset=utf-8", "OK\n", {}};
  };
  // One list built at once: growing it by emplace_back trips a GCC 12 -Warray-bounds false
  // positive here.
  return {{"/ready", ready},           {"/config_dump", config_dump},
          {"/xds", xds_status},        {"/stats/prometheus", prometheus},
          {"/healthcheck/fail", fail}, {"/healthcheck/ok", ok}};
}

}  // namespace

int main(int argc, char** argv) {
  std::string bootstrap_path;
  std::string log_level = "info";
  std::string admin_override;
  std::string ready_file;
  weft::FlagSet flags("weft-proxy", "--bootstrap FILE");
  flags.String("bootstrap", &bootstrap_path,
               "bootstrap YAML: node, xDS servers, admin address, static resources");
  flags.String("admin-address", &admin_override, "overrides the bootstrap's admin.address");
  flags.String("ready-file", &ready_file, "write {\"admin_port\":N} here once the admin listens");
  flags.String("log-level", &log_level, "debug, info, warning, error or off");
  if (auto s = flags.Parse(argc, argv); !s.ok()) {
    std::fprintf(stderr, "weft-proxy: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  if (flags.help_requested()) {
    std::fputs(flags.Help().c_str(), stdout);
    return 0;
  }
  if (flags.version_requested()) {
    std::printf("weft-proxy %s\n", std::string(weft::WeftVersion()).c_str());
    return 0;
  }
  if (!weft::SetLogLevelFromString(log_level)) {
    std::fprintf(stderr, "weft-proxy: --log-level: unknown level \"%s\"\n", log_level.c_str());
    return 2;
  }
  if (bootstrap_path.empty()) {
    std::fprintf(stderr, "weft-proxy: --bootstrap is required (see --help)\n");
    return 2;
  }
  weft::bootstrap::v1::Bootstrap bootstrap;
  auto text = weft::ReadFile(bootstrap_path);
  if (!text.ok()) {
    std::fprintf(stderr, "weft-proxy: %s\n", std::string(text.status().message()).c_str());
    return 1;
  }
  if (auto s = weft::YamlToProto(*text, bootstrap_path, &bootstrap); !s.ok()) {
    std::fprintf(stderr, "weft-proxy: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  if (bootstrap.node().id().empty()) {
    std::fprintf(stderr, "weft-proxy: %s: node.id: must not be empty\n", bootstrap_path.c_str());
    return 1;
  }

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  weft::metrics::Registry registry;
  auto* generation =
      registry.AddGauge("weft_proxy_config_generation", "Accepted xDS updates applied since start")
          ->Get();
  weft::proxy::XdsClient xds(bootstrap.node(), bootstrap.xds(),
                             [generation](const weft::proxy::ConfigState& state) {
                               generation->Set(static_cast<int64_t>(state.generation()));
                             });
  std::atomic<bool> failing{false};

  auto routes = AdminRoutes(&xds, &registry, &failing);
  std::string admin_address = !admin_override.empty()               ? admin_override
                              : bootstrap.admin().address().empty() ? "127.0.0.1:15000"
                                                                    : bootstrap.admin().address();
  auto admin = weft::http::AdminServer::Start(admin_address, std::move(routes));
  if (!admin.ok()) {
    WEFT_LOG(kError) << "admin.address: " << admin.status().message();
    return 1;
  }
  xds.Start();
  WEFT_LOG(kInfo) << "weft-proxy " << weft::WeftVersion() << " node " << bootstrap.node().id()
                  << ", admin on port " << (*admin)->port();
  if (!ready_file.empty()) {
    std::string tmp = ready_file + ".tmp";
    if (FILE* f = std::fopen(tmp.c_str(), "w")) {
      std::fprintf(f, "{\"admin_port\": %d}\n", (*admin)->port());
      std::fclose(f);
      std::rename(tmp.c_str(), ready_file.c_str());
    }
  }
  int sig = 0;
  sigwait(&signals, &sig);
  WEFT_LOG(kInfo) << "signal " << sig << ", shutting down";
  return 0;
}
