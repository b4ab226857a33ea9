// weft-cp: the control plane. Reads definitions (today: raw Envoy resources from --config-dir),
// publishes them as snapshots and serves them over xDS; admin endpoints show what every
// connected proxy was sent and what it ACKed or NACKed.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <limits>
#include <string>

#include <grpcpp/impl/codegen/service_type.h>
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/flags.h"
#include "common/json.h"
#include "common/log.h"
#include "control-plane/admin/admin.h"
#include "control-plane/api/config_model.h"
#include "control-plane/api/config_service.h"
#include "control-plane/ca/service.h"
#include "control-plane/cache/publisher.h"
#include "control-plane/cache/snapshot_cache.h"
#include "control-plane/server/xds_server.h"
#include "control-plane/sources/config_dir.h"
#include "control-plane/store/store.h"
#include "data-plane/tls/certs.h"

namespace {

std::string ConfigDirJson(const weft::cp::ConfigDirState& state, const std::string& dir) {
  std::string out =
      absl::StrCat("{\"config_dir\":", weft::JsonString(dir), ",\"generation\":", state.generation,
                   ",\"resources\":", state.resources.size(), ",\"errors\":[");
  for (size_t i = 0; i < state.errors.size(); ++i) {
    if (i > 0) out.push_back(',');
    absl::StrAppend(&out, "{\"file\":", weft::JsonString(state.errors[i].file),
                    ",\"message\":", weft::JsonString(state.errors[i].message), "}");
  }
  out += "]}";
  return out;
}

bool WriteReadyFile(const std::string& path, int xds_port, int admin_port, int api_port) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << "{\"xds_port\": " << xds_port << ", \"admin_port\": " << admin_port
      << ", \"api_port\": " << api_port << "}\n";
    if (!f) return false;
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_dir;
  std::string xds_address = "127.0.0.1:18000";
  std::string admin_address = "127.0.0.1:19000";
  std::string api_address = "127.0.0.1:18001";
  std::string data_dir;
  std::string ready_file;
  std::string log_level = "info";
  int64_t debounce_ms = 100;
  int64_t max_debounce_ms = 1000;
  int64_t max_request_bytes = 4 << 20;
  int64_t max_api_request_bytes = 64 << 20;
  bool insecure_serve_private_keys = false;
  weft::FlagSet flags("weft-cp", "[flags]");
  flags.String("config-dir", &config_dir,
               "directory of config files (Envoy filesystem-format resources), watched live");
  flags.String("xds-address", &xds_address, "gRPC xDS listen address (host:port; port 0 = any)");
  flags.String("admin-address", &admin_address,
               "admin HTTP listen address: /metrics, /debug/proxies, /debug/snapshots, /ready");
  flags.String("api-address", &api_address,
               "gRPC config API listen address (weft.config.v1.ConfigService, used by weftctl)");
  flags.String("data-dir", &data_dir,
               "directory for the durable config store (SQLite); empty keeps it in memory");
  flags.String("ready-file", &ready_file,
               "write {\"xds_port\":N,\"admin_port\":M,\"api_port\":K} here once serving");
  flags.Int("debounce-ms", &debounce_ms, "quiet period that batches bursts of config changes");
  flags.Int("max-debounce-ms", &max_debounce_ms, "upper bound on how long a change may wait");
  flags.Int("max-request-bytes", &max_request_bytes, "largest xDS request accepted");
  flags.Int("max-api-request-bytes", &max_api_request_bytes,
            "largest config API request accepted (an apply of every object at once)");
  flags.String("log-level", &log_level, "debug, info, warning, error or off");
  flags.Bool("insecure-serve-private-keys", &insecure_serve_private_keys,
             "serve inline private keys from --config-dir to the node groups their documents "
             "name (node_groups); node identities are not authenticated: local development only");

  weft::ca::CaFlags ca_flags;
  weft::ca::AddCaFlags(&flags, &ca_flags);
  if (auto s = flags.Parse(argc, argv); !s.ok()) {
    std::fprintf(stderr, "weft-cp: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  if (flags.help_requested()) {
    std::fputs(flags.Help().c_str(), stdout);
    return 0;
  }
  if (flags.version_requested()) {
    std::printf("weft-cp %s\n", std::string(weft::WeftVersion()).c_str());
    return 0;
  }
  if (!weft::SetLogLevelFromString(log_level)) {
    std::fprintf(stderr, "weft-cp: --log-level: unknown level \"%s\"\n", log_level.c_str());
    return 2;
  }

  // Debian builds Abseil without NDEBUG, which leaves absl::Mutex's deadlock detection on for
  // every lock gRPC takes: a few percent of weft-cp's CPU under load, for a debugging aid.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  // SDS Secrets are checked down to their key material (as proxies check them) before any
  // source is read.
  weft::tls::InstallSecretChecks();

  // Signals are taken synchronously by the main thread; block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  if (insecure_serve_private_keys) {
    WEFT_LOG(kWarning) << "--insecure-serve-private-keys: inline private keys in --config-dir are "
                          "served to the node groups their documents name. Node identities are "
                          "not authenticated: any client naming such a node id or cluster gets "
                          "them. For local development only.";
  }

  weft::metrics::Registry registry;
  weft::cp::SnapshotCache cache;
  weft::cp::XdsMetrics xds_metrics(&registry);
  weft::cp::XdsServer xds(&cache, &xds_metrics);
  cache.SetListener([&xds] { xds.OnSnapshotChanged(); });
  weft::cp::Publisher publisher(&cache, std::chrono::milliseconds(debounce_ms),
                                std::chrono::milliseconds(max_debounce_ms));

  std::unique_ptr<weft::cp::Store> store;
  if (data_dir.empty()) {
    store = weft::cp::NewMemoryStore();
  } else {
    auto opened = weft::cp::OpenSqliteStore(data_dir);
    if (!opened.ok()) {
      WEFT_LOG(kError) << "--data-dir: " << opened.status().message();
      return 1;
    }
    store = *std::move(opened);
  }
  auto model_or = weft::cp::ConfigModel::Create(store.get(), &publisher);
  if (!model_or.ok()) {
    WEFT_LOG(kError) << "config store: " << model_or.status().message();
    return 1;
  }
  std::unique_ptr<weft::cp::ConfigModel> model = *std::move(model_or);

  auto ca_or = weft::ca::CaServer::Start(ca_flags, store.get(), &registry);
  if (!ca_or.ok()) {
    WEFT_LOG(kError) << "CA: " << ca_or.status().message();
    return 1;
  }
  std::unique_ptr<weft::ca::CaServer> ca = *std::move(ca_or);
  // The trust bundle ("ROOTCA") is shared by every node group.
  if (ca) publisher.Update("ca", {ca->TrustBundleSecret()});

  auto* config_errors = registry
                            .AddGauge("weft_cp_config_files_rejected",
                                      "Config files currently rejected (last good kept)")
                            ->Get();
  auto* config_reloads =
      registry.AddCounter("weft_cp_config_reloads_total", "Config directory changes applied")
          ->Get();
  std::unique_ptr<weft::cp::ConfigDirSource> source;
  if (!config_dir.empty()) {
    auto created = weft::cp::ConfigDirSource::Create(
        config_dir,
        [&](const weft::cp::ConfigDirState& state) {
          config_errors->Set(static_cast<int64_t>(state.errors.size()));
          config_reloads->Inc();
          model->SetFileConfig(state.objects, state.resources, state.group_resources);
          publisher.Update("config-dir", state.resources, 0, state.group_resources);
        },
        weft::cp::ConfigDirOptions{.serve_inline_keys = insecure_serve_private_keys});
    if (!created.ok()) {
      WEFT_LOG(kError) << "--config-dir: " << created.status().message();
      return 1;
    }
    source = *std::move(created);
    auto state = source->Current();
    config_errors->Set(static_cast<int64_t>(state.errors.size()));
    model->SetFileConfig(state.objects, state.resources, state.group_resources);
    publisher.Update("config-dir", state.resources, 0, state.group_resources);
  }
  publisher.Flush();

  grpc::ServerBuilder builder;
  int xds_port = 0;
  builder.AddListeningPort(xds_address, grpc::InsecureServerCredentials(), &xds_port);
  builder.SetMaxReceiveMessageSize(static_cast<int>(max_request_bytes));
  // Proxies keep ADS streams open for days; keepalive pings find dead peers behind NATs.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  xds.Register(&builder);
  if (ca) ca->RegisterProxyServices(&builder);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || xds_port == 0) {
    WEFT_LOG(kError) << "cannot listen for xDS on " << xds_address;
    return 1;
  }

  weft::cp::ConfigServiceDeps api_deps;
  api_deps.model = model.get();
  api_deps.store = store.get();
  api_deps.publisher = &publisher;
  api_deps.cache = &cache;
  api_deps.xds = &xds;
  std::unique_ptr<grpc::Service> config_service = weft::cp::NewConfigService(api_deps);
  grpc::ServerBuilder api_builder;
  int api_port = 0;
  api_builder.AddListeningPort(api_address, grpc::InsecureServerCredentials(), &api_port);
  api_builder.SetMaxReceiveMessageSize(static_cast<int>(
      std::clamp<int64_t>(max_api_request_bytes, 1, std::numeric_limits<int>::max())));
  api_builder.RegisterService(config_service.get());
  if (ca) ca->RegisterOperatorServices(&api_builder);
  std::unique_ptr<grpc::Server> api_server = api_builder.BuildAndStart();
  if (!api_server || api_port == 0) {
    WEFT_LOG(kError) << "cannot listen for the config API on " << api_address;
    return 1;
  }

  std::atomic<bool> ready{false};
  weft::cp::AdminDeps deps;
  deps.cache = &cache;
  deps.xds = &xds;
  deps.registry = &registry;
  deps.ready = [&ready] { return ready.load(); };
  deps.config_json = [&]() -> std::string {
    if (!source) return "{\"config_dir\":null}";
    return ConfigDirJson(source->Current(), config_dir);
  };
  auto admin = weft::http::AdminServer::Start(admin_address, weft::cp::AdminRoutes(deps));
  if (!admin.ok()) {
    WEFT_LOG(kError) << "--admin-address: " << admin.status().message();
    return 1;
  }
  ready = true;
  WEFT_LOG(kInfo) << "weft-cp " << weft::WeftVersion() << " serving xDS on port " << xds_port
                  << ", config API on port " << api_port << ", admin on port " << (*admin)->port();
  if (!ready_file.empty() && !WriteReadyFile(ready_file, xds_port, (*admin)->port(), api_port)) {
    WEFT_LOG(kError) << "cannot write --ready-file " << ready_file;
    return 1;
  }

  int sig = 0;
  sigwait(&signals, &sig);
  WEFT_LOG(kInfo) << "signal " << sig << ", shutting down";
  ready = false;
  source.reset();
  auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(2);
  api_server->Shutdown(deadline);
  server->Shutdown(deadline);
  return 0;
}
