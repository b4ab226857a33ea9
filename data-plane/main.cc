// weft-proxy: the sidecar. It bootstraps, holds an ADS stream to weft-cp, validates and
// ACKs/NACKs what it is sent, keeps its last good config when the control plane goes away, and
// serves HTTP/1.1 on the listeners that config describes: N workers, each with its own event
// loop and SO_REUSEPORT sockets, routing and balancing from an immutable snapshot.
#include <malloc.h>
#include <signal.h>
#include <unistd.h>

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
#include "data-plane/server/server.h"
#include "data-plane/xds/xds_client.h"
#include "weft/bootstrap/v1/bootstrap.pb.h"

namespace {

// Admin endpoints, Envoy-style names: /ready, /config_dump, /stats/prometheus, plus /xds (the
// control-plane connection). /healthcheck/fail|ok and /logging change state: POST only.
std::vector<weft::http::Route> AdminRoutes(weft::proxy::XdsClient* xds_client,
                                           weft::proxy::ProxyServer* proxy_server,
                                           weft::metrics::Registry* registry,
                                           std::atomic<bool>* failing_flag, bool use_xds) {
  auto& xds = *xds_client;
  auto& server = *proxy_server;
  auto& failing = *failing_flag;
  auto json = [](std::string body) {
    weft::http::Response r;
    r.content_type = "application/json";
    r.body = std::move(body) + "\n";
    return r;
  };
  weft::http::Handler ready = [&xds, &server, &failing, use_xds](const weft::http::Request&) {
    weft::http::Response r;
    bool ready = (!use_xds || xds.initialized()) && server.WorkersCurrent() && !failing;
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
  weft::http::Handler prometheus = [&xds, &server, registry](const weft::http::Request&) {
    const auto& st = xds.stats();
    weft::http::Response r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body =
        registry->PrometheusText() + server.stats().PrometheusText() +
        absl::StrCat(
            "# HELP weft_proxy_xds_connected 1 while an ADS stream is up\n",
            "# TYPE weft_proxy_xds_connected gauge\n", "weft_proxy_xds_connected ",
            st.connected ? 1 : 0, "\n",
            "# HELP weft_proxy_xds_updates_total xDS responses, by outcome\n",
            "# TYPE weft_proxy_xds_updates_total counter\n",
            "weft_proxy_xds_updates_total{result=\"accepted\"} ", st.updates_accepted.load(), "\n",
            "weft_proxy_xds_updates_total{result=\"rejected\"} ", st.updates_rejected.load(), "\n",
            "# HELP weft_proxy_xds_oversized_responses_total ADS streams ended by a "
            "response over xds.max_message_bytes\n",
            "# TYPE weft_proxy_xds_oversized_responses_total counter\n",
            "weft_proxy_xds_oversized_responses_total ", st.oversized_responses.load(), "\n");
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
  weft::http::Handler stats = [&server](const weft::http::Request&) {
    return weft::http::Response{200, "text/plain; charset=utf-8", server.stats().PlainText(), {}};
  };
  weft::http::Handler listeners = [&server, json](const weft::http::Request&) {
    return json(server.ListenersJson());
  };
  weft::http::Handler clusters = [&server, json](const weft::http::Request& request) {
    if (request.Query("format") == "json") {
      return json(server.ClustersJson());
    }
    return weft::http::Response{200, "text/plain; charset=utf-8", server.ClustersText(), {}};
  };
  using weft::http::Route;
  // One list built at once: growing it by emplace_back trips a GCC 12 -Warray-bounds false
  // positive here.
  return {{Route::kReadOnly, "/ready", ready},
          {Route::kReadOnly, "/config_dump", config_dump},
          {Route::kReadOnly, "/xds", xds_status},
          {Route::kReadOnly, "/stats/prometheus", prometheus},
          {Route::kReadOnly, "/stats", stats},
          {Route::kReadOnly, "/listeners", listeners},
          {Route::kReadOnly, "/clusters", clusters},
          {Route::kMutating, "/healthcheck/fail", fail},
          {Route::kMutating, "/healthcheck/ok", ok},
          weft::http::LogLevelRoute()};
}

}  // namespace

int main(int argc, char** argv) {
  // glibc raises its mmap threshold to the size of any mmap-ed block that is freed, so after
  // one large transient (an admin /clusters or /config_dump body, a full xDS response) every
  // later one lands in a thread's heap and stays resident there once freed. A fixed threshold
  // keeps large transients in mmap: freed blocks go straight back to the kernel.
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);
  std::string bootstrap_path;
  std::string log_level = "info";
  std::string admin_override;
  std::string ready_file;
  std::string access_log;
  int64_t concurrency = -1;
  int64_t max_connections = -1;
  std::string io_uring = "auto";
  weft::FlagSet flags("weft-proxy", "--bootstrap FILE");
  flags.String("bootstrap", &bootstrap_path,
               "bootstrap YAML: node, xDS servers, admin address, static resources");
  flags.String("admin-address", &admin_override, "overrides the bootstrap's admin.address");
  flags.String("ready-file", &ready_file, "write {\"admin_port\":N} here once the admin listens");
  flags.String("log-level", &log_level, "debug, info, warning, error or off");
  flags.Int("concurrency", &concurrency,
            "worker threads (overrides the bootstrap; 0: one per core)");
  flags.String("access-log", &access_log,
               "JSON access log: a file, or - for stdout (overrides the bootstrap)");
  flags.Int("max-connections", &max_connections,
            "downstream connections across workers (overrides the bootstrap; 0: unlimited)");
  flags.String("io-uring", &io_uring,
               "auto: workers batch sends through io_uring where the kernel allows it; on: "
               "every send through io_uring, refuse to start without it; off: plain send(2)");
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
  weft::net::SendMode send_mode;
  if (io_uring == "auto") {
    send_mode = weft::net::SendMode::kAuto;
  } else if (io_uring == "on") {
    send_mode = weft::net::SendMode::kUring;
  } else if (io_uring == "off") {
    send_mode = weft::net::SendMode::kSyscalls;
  } else {
    std::fprintf(stderr, "weft-proxy: --io-uring: expected auto, on or off, got \"%s\"\n",
                 io_uring.c_str());
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

  weft::proxy::ServerOptions server_options;
  int64_t workers = concurrency >= 0 ? concurrency : bootstrap.concurrency();
  if (workers == 0) workers = std::max<long>(1, sysconf(_SC_NPROCESSORS_ONLN));
  server_options.concurrency = static_cast<int>(workers);
  server_options.access_log_path = !access_log.empty() ? access_log : bootstrap.access_log_path();
  server_options.bind_address = bootstrap.bind_address();
  server_options.send_mode = send_mode;
  server_options.max_connections =
      static_cast<size_t>(max_connections >= 0 ? max_connections : bootstrap.max_connections());
  *server_options.static_resources.mutable_listeners() = bootstrap.static_resources().listeners();
  *server_options.static_resources.mutable_clusters() = bootstrap.static_resources().clusters();
  auto server = weft::proxy::ProxyServer::Create(std::move(server_options));
  if (!server.ok()) {
    std::fprintf(stderr, "weft-proxy: %s: %s\n", bootstrap_path.c_str(),
                 std::string(server.status().message()).c_str());
    return 1;
  }
  weft::proxy::ProxyServer* proxy = server->get();
  // Static resources serve at once, before (or without) a control plane.
  proxy->UpdateStatic();

  weft::metrics::Registry registry;
  auto* generation =
      registry.AddGauge("weft_proxy_config_generation", "Accepted xDS updates applied since start")
          ->Get();
  weft::proxy::XdsClient xds(bootstrap.node(), bootstrap.xds(),
                             [generation, proxy](const weft::proxy::ConfigState& state) {
                               weft::proxy::ServeResult r = proxy->Update(state);
                               if (r.status.ok()) {
                                 generation->Set(static_cast<int64_t>(state.generation()));
                               }
                               return r;
                             });
  std::atomic<bool> failing{false};
  const bool use_xds = bootstrap.xds().servers_size() > 0;

  auto routes = AdminRoutes(&xds, proxy, &registry, &failing, use_xds);
  std::string admin_address = !admin_override.empty()               ? admin_override
                              : bootstrap.admin().address().empty() ? "127.0.0.1:15000"
                                                                    : bootstrap.admin().address();
  auto admin = weft::http::AdminServer::Start(admin_address, std::move(routes));
  if (!admin.ok()) {
    WEFT_LOG(kError) << "admin.address: " << admin.status().message();
    return 1;
  }
  if (use_xds) xds.Start();
  WEFT_LOG(kInfo) << "weft-proxy " << weft::WeftVersion() << " node " << bootstrap.node().id()
                  << ", " << workers << " workers, admin on port " << (*admin)->port();
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
