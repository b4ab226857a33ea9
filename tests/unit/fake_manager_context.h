// The worker's side of a connection manager (ConnectionManagerContext) for unit tests: stats a
// test can read ("http.in." for filters, "listener.listener.response_flags." for flags), a
// seeded random source, a fake clock, the access log kept in memory. Clusters come from
// `upstream`, none by default.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "data-plane/http/conn_manager.h"
#include "data-plane/http/filters/router/clusters.h"
#include "data-plane/stats/proxy_stats.h"
#include "data-plane/upstream/lb/load_balancer.h"

namespace weft::testing {

struct NoClusters final : http::UpstreamClusters {
  std::shared_ptr<http::UpstreamCluster> Find(std::string_view) override { return nullptr; }
};

struct FakeManagerContext : http::ConnectionManagerContext {
  http::ConnectionManagerConfig config_;
  std::shared_ptr<const router::RouteTable> routes_;
  std::string name_ = "listener";
  proxy::WorkerStats worker_stats;
  proxy::ListenerStats stats_;
  proxy::CounterScope filter_counters_{&worker_stats, "http.in."};
  proxy::CounterScope flag_counters_{&worker_stats, "listener.listener.response_flags."};
  upstream::DefaultRandom random_{42};
  NoClusters no_clusters;
  http::UpstreamClusters* upstream = &no_clusters;
  FakeClock clock;
  std::vector<std::string> log;
  std::vector<std::unique_ptr<net::Deferred>> deferred;
  bool draining_ = false;
  int closed = 0;

  const http::ConnectionManagerConfig& config() const override { return config_; }
  const std::string& listener_name() const override { return name_; }
  std::shared_ptr<const router::RouteTable> routes() const override { return routes_; }
  proxy::ListenerStats& stats() override { return stats_; }
  proxy::RouteStats* StatsForRoute(const router::RouteTable&, const router::Route& r) override {
    return worker_stats.Route(r.name());
  }
  proxy::CounterScope& filter_counters() override { return filter_counters_; }
  proxy::CounterScope& flag_counters() override { return flag_counters_; }
  upstream::Random& random() override { return random_; }
  http::UpstreamClusters& clusters() override { return *upstream; }
  bool draining() const override { return draining_; }
  Clock::TimePoint now() const override { return clock.Now(); }
  std::chrono::system_clock::time_point wall_now() const override { return clock.WallNow(); }
  void AccessLog(std::string line) override { log.push_back(std::move(line)); }
  bool access_log_enabled() const override { return true; }
  void DeferDelete(std::unique_ptr<net::Deferred> o) override { deferred.push_back(std::move(o)); }
  void OnConnectionClosed(http::ConnectionManager&) override { ++closed; }
  // A named counter's value by its full name.
  uint64_t Count(std::string_view name) { return worker_stats.Named(std::string(name))->Value(); }
};

}  // namespace weft::testing
