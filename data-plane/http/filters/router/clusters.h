// What the router needs of upstream clusters, and nothing more: find a cluster by name, pick a
// host, count the request, get the host's connection pool, report how the request went. Today
// the worker implements it over its per-worker cluster runtimes; the cluster manager (main
// thread owns hosts and health, workers read immutable views) takes its place behind the same
// interface.
//
// Threading: one worker's; a cluster handed out stays usable while the caller holds it, even
// if a config change replaces it.
#pragma once

#include <chrono>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "data-plane/upstream/conn_pool.h"
#include "data-plane/upstream/host.h"
#include "data-plane/upstream/lb/load_balancer.h"

namespace weft::proxy {
struct ClusterStats;
struct HostStats;
}  // namespace weft::proxy

namespace weft::http {

class UpstreamCluster {
 public:
  virtual ~UpstreamCluster() = default;
  virtual const std::string& name() const = 0;
  virtual std::chrono::milliseconds connect_timeout() const = 0;
  virtual proxy::ClusterStats& stats() = 0;
  // A host for the request, or null when none is eligible. `tried` are hosts earlier attempts
  // of the same request went to: another is preferred when the cluster has one.
  virtual upstream::HostPtr ChooseHost(const upstream::LbContext& context,
                                       std::span<const upstream::Host* const> tried) = 0;
  virtual proxy::HostStats* StatsForHost(const upstream::Host& host) = 0;
  // Each start needs one end (latency feeds the balancer).
  virtual void OnRequestStart(upstream::Host& host) = 0;
  virtual void OnRequestEnd(upstream::Host& host, std::chrono::nanoseconds latency) = 0;
  virtual upstream::ConnPool& PoolFor(const upstream::Host& host) = 0;
};

class UpstreamClusters {
 public:
  virtual ~UpstreamClusters() = default;
  // Null when the config has no such cluster.
  virtual std::shared_ptr<UpstreamCluster> Find(std::string_view name) = 0;
};

}  // namespace weft::http
