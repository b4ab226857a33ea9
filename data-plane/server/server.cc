#include "data-plane/server/server.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/json.h"
#include "common/log.h"
#include "common/strings.h"

namespace weft::proxy {

absl::StatusOr<std::unique_ptr<ProxyServer>> ProxyServer::Create(ServerOptions options) {
  if (options.concurrency < 1) options.concurrency = 1;
  std::unique_ptr<ProxyServer> server(new ProxyServer(std::move(options)));
  ServerOptions& o = server->options_;
  if (auto s = StaticResources(o.static_resources, &server->static_listeners_,
                               &server->static_clusters_);
      !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("static_resources: ", s.message()));
  }
  std::shared_ptr<AccessLogSink> log;
  if (!o.access_log_path.empty()) {
    auto sink = AccessLogSink::Open(o.access_log_path);
    if (!sink.ok()) return sink.status();
    log = *sink;
  }
  server->stats_ = std::make_unique<StatsStore>(o.concurrency);
  for (int i = 0; i < o.concurrency; ++i) {
    WorkerOptions w;
    w.index = i;
    w.stats = server->stats_.get();
    w.access_log = log;
    w.send_mode = o.send_mode;
    if (o.max_connections != 0) {
      w.max_connections = (o.max_connections + static_cast<size_t>(o.concurrency) - 1) /
                          static_cast<size_t>(o.concurrency);
    }
    auto worker = std::make_unique<Worker>(std::move(w));
    if (auto s = worker->Start(); !s.ok()) return s;
    server->workers_.push_back(std::move(worker));
  }
  return server;
}

ProxyServer::~ProxyServer() {
  for (auto& w : workers_) w->Stop();
}

void ProxyServer::UpdateStatic() {
  ConfigState::ResourceMap none;
  ServeResult r = Publish(static_listeners_, none, static_clusters_, none, 0);
  if (!r.status.ok()) WEFT_LOG(kWarning) << "static_resources: " << r.status.message();
  for (const auto& [name, why] : r.unserved_listeners) {
    WEFT_LOG(kWarning) << "static_resources: " << why;
  }
}

ServeResult ProxyServer::Update(const ConfigState& state) {
  auto merged = [](const ConfigState::ResourceMap& base, const ConfigState::ResourceMap& over) {
    ConfigState::ResourceMap out = base;
    for (const auto& [name, r] : over) out[name] = r;
    return out;
  };
  return Publish(merged(static_listeners_, state.resources(xds::ResourceType::kListener)),
                 state.resources(xds::ResourceType::kRoute),
                 merged(static_clusters_, state.resources(xds::ResourceType::kCluster)),
                 state.resources(xds::ResourceType::kEndpoint), state.generation(),
                 state.unserved_listeners());
}

ServeResult ProxyServer::Publish(const ConfigState::ResourceMap& listeners,
                                 const ConfigState::ResourceMap& routes,
                                 const ConfigState::ResourceMap& clusters,
                                 const ConfigState::ResourceMap& endpoints, uint64_t generation,
                                 const std::map<std::string, std::string>& unserved) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> warnings;
  std::vector<std::string> errors;
  const ProxyConfig* previous = current_ ? current_->config.get() : nullptr;
  // Generations must only grow, also across static-only and xDS publications.
  uint64_t gen = std::max(published_ + 1, generation);
  std::shared_ptr<const ProxyConfig> config =
      BuildProxyConfig(listeners, routes, clusters, endpoints, gen, previous, &warnings, &errors);
  for (const std::string& w : warnings) WEFT_LOG(kWarning) << w;
  if (!errors.empty()) return {absl::InvalidArgumentError(absl::StrJoin(errors, "; ")), {}};

  ServeResult result;
  auto snapshot = std::make_shared<WorkerSnapshot>();
  std::map<std::string, std::string> unserved_now = unserved;
  // Listeners that cannot be bound, with the version that keeps serving instead (or null).
  std::map<std::string, std::shared_ptr<const ListenerConfig>> unbound;
  for (const auto& [name, listener] : config->listeners) {
    std::shared_ptr<const ListenerConfig> old_cfg;
    std::shared_ptr<ListenerSockets> old_sockets;
    if (current_) {
      auto c = current_->config->listeners.find(name);
      auto s = current_->sockets.find(name);
      if (c != current_->config->listeners.end() && s != current_->sockets.end()) {
        old_cfg = c->second;
        old_sockets = s->second;
      }
    }
    // Same name and address: keep the bound sockets (and with them, the accept queues).
    if (old_cfg && old_cfg->address.host == listener->address.host &&
        old_cfg->address.port == listener->address.port) {
      snapshot->sockets[name] = old_sockets;
      continue;
    }
    net::SocketAddress address = listener->address;
    if (!options_.bind_address.empty()) address.host = options_.bind_address;
    auto fds = net::ListenReusePort(address, static_cast<int>(workers_.size()));
    if (fds.ok()) {
      snapshot->sockets[name] = std::make_shared<ListenerSockets>(std::move(*fds));
      continue;
    }
    std::string why(fds.status().message());
    std::string error = absl::StrCat("listener \"", name, "\": address: ", why);
    if (old_cfg) {
      snapshot->sockets[name] = old_sockets;
      absl::StrAppend(&error, " (its previous version keeps serving)");
    }
    // Null: a new listener, not served until an update binds it.
    unbound[name] = old_cfg;
    unserved_now[name] = error;
    result.unserved_listeners[name] = std::move(error);
  }
  if (!unbound.empty()) {
    auto patched = std::make_shared<ProxyConfig>(*config);
    for (const auto& [name, old_cfg] : unbound) {
      if (old_cfg == nullptr) {
        patched->listeners.erase(name);
        continue;
      }
      patched->listeners[name] = old_cfg;
      // The update may have dropped the route table only the previous version uses.
      const std::string& rds = old_cfg->http.rds_name;
      if (!rds.empty() && !patched->routes.contains(rds) && previous != nullptr) {
        auto r = previous->routes.find(rds);
        if (r != previous->routes.end()) patched->routes[rds] = r->second;
      }
    }
    config = std::move(patched);
  }
  snapshot->config = config;
  unserved_ = std::move(unserved_now);
  current_ = snapshot;
  published_ = gen;
  for (auto& w : workers_) w->Publish(snapshot);
  return result;
}

uint64_t ProxyServer::generation() const {
  std::lock_guard<std::mutex> lock(mu_);
  return published_;
}

bool ProxyServer::WorkersCurrent() const {
  uint64_t gen = generation();
  for (const auto& w : workers_) {
    if (w->serving_generation() < gen) return false;
  }
  return true;
}

std::string ProxyServer::ListenersJson() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out = "{\"listeners\":[";
  bool first = true;
  if (current_) {
    for (const auto& [name, l] : current_->config->listeners) {
      auto s = current_->sockets.find(name);
      auto e = unserved_.find(name);
      absl::StrAppend(
          &out, first ? "" : ",", "{\"name\":", JsonString(name), ",\"address\":",
          JsonString(options_.bind_address.empty() ? l->address.host : options_.bind_address),
          ",\"configured_port\":", l->address.port,
          ",\"port\":", s != current_->sockets.end() ? s->second->port() : 0,
          ",\"route_config\":", JsonString(l->http.rds_name),
          ",\"error\":", JsonString(e != unserved_.end() ? e->second : ""), "}");
      first = false;
    }
  }
  // Listeners sent but not served at all (new ones that could not bind), with why.
  out += "],\"unserved\":{";
  first = true;
  for (const auto& [name, why] : unserved_) {
    if (current_ && current_->config->listeners.contains(name)) continue;
    absl::StrAppend(&out, first ? "" : ",", JsonString(name), ":", JsonString(why));
    first = false;
  }
  out += "}}";
  return out;
}

namespace {

std::string_view HealthName(upstream::HealthStatus h) {
  switch (h) {
    case upstream::HealthStatus::kHealthy:
      return "healthy";
    case upstream::HealthStatus::kUnhealthy:
      return "unhealthy";
    case upstream::HealthStatus::kDegraded:
      return "degraded";
    case upstream::HealthStatus::kDraining:
      return "draining";
  }
  return "unknown";
}

}  // namespace

std::string ProxyServer::ClustersText() const {
  std::shared_ptr<const WorkerSnapshot> snapshot;
  {
    std::lock_guard<std::mutex> lock(mu_);
    snapshot = current_;
  }
  std::string out;
  if (!snapshot) return out;
  for (const auto& [name, c] : snapshot->config->clusters) {
    absl::StrAppend(&out, name, "::lb_policy::", Sv(upstream::LbAlgorithmName(c->algorithm)), "\n");
    for (const EndpointConfig& e : c->endpoints) {
      std::string host = absl::StrCat(e.address, ":", e.port);
      auto totals = stats_->HostTotals(absl::StrCat(name, "|", host));
      std::string p = absl::StrCat(name, "::", host, "::");
      absl::StrAppend(&out, p, "health_flags::", Sv(HealthName(e.health)), "\n", p,
                      "weight::", e.weight, "\n", p, "priority::", e.priority, "\n", p,
                      "zone::", c->localities[e.locality]->zone, "\n", p,
                      "rq_active::", totals.rq_active, "\n", p, "rq_total::", totals.rq_total, "\n",
                      p, "rq_error::", totals.rq_error, "\n", p,
                      "cx_connect_fail::", totals.cx_connect_fail, "\n");
    }
  }
  return out;
}

std::string ProxyServer::ClustersJson() const {
  std::shared_ptr<const WorkerSnapshot> snapshot;
  {
    std::lock_guard<std::mutex> lock(mu_);
    snapshot = current_;
  }
  std::string out = "{\"clusters\":[";
  bool first_cluster = true;
  if (snapshot) {
    for (const auto& [name, c] : snapshot->config->clusters) {
      absl::StrAppend(&out, first_cluster ? "" : ",", "{\"name\":", JsonString(name),
                      ",\"lb_policy\":\"", Sv(upstream::LbAlgorithmName(c->algorithm)),
                      "\",\"hosts\":[");
      first_cluster = false;
      bool first = true;
      for (const EndpointConfig& e : c->endpoints) {
        std::string host = absl::StrCat(e.address, ":", e.port);
        auto totals = stats_->HostTotals(absl::StrCat(name, "|", host));
        absl::StrAppend(&out, first ? "" : ",", "{\"address\":", JsonString(host), ",\"health\":\"",
                        Sv(HealthName(e.health)), "\",\"weight\":", e.weight,
                        ",\"priority\":", e.priority,
                        ",\"locality\":{\"region\":", JsonString(c->localities[e.locality]->region),
                        ",\"zone\":", JsonString(c->localities[e.locality]->zone),
                        "},\"rq_active\":", totals.rq_active, ",\"rq_total\":", totals.rq_total,
                        ",\"rq_error\":", totals.rq_error,
                        ",\"cx_connect_fail\":", totals.cx_connect_fail, "}");
        first = false;
      }
      out += "]}";
    }
  }
  out += "]}";
  return out;
}

}  // namespace weft::proxy
