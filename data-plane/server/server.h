// The proxy's process-level side of the data path: owns the workers, binds listener sockets,
// compiles each accepted config into a snapshot and publishes it to every worker. Also answers
// the admin endpoints that describe the data path (/listeners, /clusters, /stats).
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data-plane/server/proxy_config.h"
#include "data-plane/server/worker.h"
#include "data-plane/stats/proxy_stats.h"
#include "data-plane/xds/config_state.h"

namespace weft::proxy {

struct ServerOptions {
  int concurrency = 1;
  std::string access_log_path;  // "" off, "-" stdout
  size_t max_connections = 0;   // whole process; 0 unlimited
  std::string bind_address;     // replaces every listener's host when set (bootstrap field)
  bootstrap::v1::StaticResources static_resources;
  net::SendMode send_mode = net::SendMode::kAuto;  // --io-uring
};

class ProxyServer {
 public:
  static absl::StatusOr<std::unique_ptr<ProxyServer>> Create(ServerOptions options);
  ~ProxyServer();

  // Serves the bootstrap's static resources merged with `state` (xDS wins on a name clash).
  // Called with every validated xDS update, on the xDS thread; thread-safe. An error status
  // means the update cannot be served at all (a route table that does not compile); nothing
  // changes and the caller NACKs with the error. A listener whose address cannot be bound is
  // reported in `unserved_listeners` and the rest is served: a listener that was serving keeps
  // its previous version and sockets, a new one is not served (shown in /listeners with the
  // error) until an update binds it.
  ServeResult Update(const ConfigState& state);
  // Serves the static resources alone (no control plane configured, or before it answers).
  void UpdateStatic();

  uint64_t generation() const;
  // True once every worker serves the latest published generation.
  bool WorkersCurrent() const;

  std::string ListenersJson() const;
  // Envoy-style text, or JSON with ?format=json.
  std::string ClustersText() const;
  std::string ClustersJson() const;
  StatsStore& stats() { return *stats_; }

 private:
  explicit ProxyServer(ServerOptions options) : options_(std::move(options)) {}
  // `unserved` (listener -> why): what earlier updates could not serve and that is still so.
  ServeResult Publish(const ConfigState::ResourceMap& listeners,
                      const ConfigState::ResourceMap& routes,
                      const ConfigState::ResourceMap& clusters,
                      const ConfigState::ResourceMap& endpoints, uint64_t generation,
                      const std::map<std::string, std::string>& unserved = {});

  ServerOptions options_;
  std::unique_ptr<StatsStore> stats_;
  std::vector<std::unique_ptr<Worker>> workers_;
  ConfigState::ResourceMap static_listeners_;
  ConfigState::ResourceMap static_clusters_;

  mutable std::mutex mu_;  // guards what follows
  std::shared_ptr<const WorkerSnapshot> current_;
  // Listener -> why the version last sent for it is not served (it is absent, or an older
  // version serves).
  std::map<std::string, std::string> unserved_;
  uint64_t published_ = 0;
};

}  // namespace weft::proxy
