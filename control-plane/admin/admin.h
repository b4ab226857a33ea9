// weft-cp's admin surface: Prometheus metrics for the xDS server and the debug endpoints that
// make the control plane's view visible (/debug/proxies, /debug/snapshots, /debug/config,
// /ready, /metrics).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/http/admin_server.h"
#include "common/metrics/metrics.h"
#include "control-plane/server/xds_server.h"

namespace weft::cp {

class SnapshotCache;

// XdsObserver that feeds Prometheus metrics.
class XdsMetrics final : public XdsObserver {
 public:
  explicit XdsMetrics(metrics::Registry* registry);
  void OnStreamOpened() override;
  void OnStreamClosed() override;
  void OnPush(xds::ResourceType type, size_t resources) override;
  void OnAck(xds::ResourceType type, std::chrono::nanoseconds push_to_ack) override;
  void OnNack(xds::ResourceType type) override;
  void OnStaleNonce(xds::ResourceType type) override;

 private:
  metrics::Gauge* connected_;
  metrics::Counter* streams_total_;
  std::array<metrics::Counter*, xds::kResourceTypeCount> pushes_{};
  std::array<metrics::Counter*, xds::kResourceTypeCount> resources_sent_{};
  std::array<metrics::Counter*, xds::kResourceTypeCount> acks_{};
  std::array<metrics::Counter*, xds::kResourceTypeCount> nacks_{};
  std::array<metrics::Counter*, xds::kResourceTypeCount> stale_{};
  std::array<metrics::Histogram*, xds::kResourceTypeCount> push_to_ack_{};
};

struct AdminDeps {
  const SnapshotCache* cache = nullptr;
  const XdsServer* xds = nullptr;
  metrics::Registry* registry = nullptr;
  std::function<bool()> ready;               // true once serving
  std::function<std::string()> config_json;  // sources' state: accepted files, errors
};

// Read-only debug endpoints plus POST /logging (the log level).
std::vector<http::Route> AdminRoutes(AdminDeps deps);
std::string SnapshotsJson(const SnapshotCache& cache);

}  // namespace weft::cp
