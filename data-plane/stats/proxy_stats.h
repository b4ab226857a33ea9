// The data path's statistics: per listener, route, cluster and host, kept per worker and merged
// when read.
//
// Each worker owns its own blocks and is their only writer, so recording is a relaxed load and
// store (no locked instruction, no shared cache line between workers). Readers (the admin
// thread) load the same atomics and sum over workers. Blocks are created on config changes,
// never on the request path; the request path keeps pointers to them. Blocks live as long as
// the process, so a pointer held by an in-flight request stays valid across config changes.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace weft::proxy {

// Written by one thread, read by any.
class LocalCounter {
 public:
  void Inc(uint64_t n = 1) {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  uint64_t Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class LocalGauge {
 public:
  void Add(int64_t n) {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  int64_t Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

// Request latency in fixed buckets (milliseconds), so histograms from all workers add up.
class LatencyHistogram {
 public:
  static constexpr std::array<double, 16> kBoundsMs = {
      0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000};
  static constexpr size_t kBuckets = kBoundsMs.size() + 1;  // the last is +Inf

  void Record(std::chrono::nanoseconds latency);

  struct Merged {
    std::array<uint64_t, kBuckets> counts{};  // per bucket, not cumulative
    uint64_t count = 0;
    double sum_ms = 0;
    void Add(const LatencyHistogram& h);
    // Linear interpolation inside the bucket holding quantile q (0..1); 0 when empty.
    double QuantileMs(double q) const;
  };

 private:
  std::array<LocalCounter, kBuckets> counts_;
  std::atomic<uint64_t> sum_us_{0};
};

// What every HTTP stage counts: requests by class, timeouts, active, latency.
struct HttpStats {
  LocalCounter rq_total;
  LocalCounter rq_1xx;
  LocalCounter rq_2xx;
  LocalCounter rq_3xx;
  LocalCounter rq_4xx;
  LocalCounter rq_5xx;
  LocalCounter rq_timeout;
  LocalGauge rq_active;
  LatencyHistogram latency;

  void Completed(int status, std::chrono::nanoseconds elapsed);
};

struct ListenerStats {
  LocalCounter cx_total;
  LocalGauge cx_active;
  LocalCounter cx_overflow;                   // refused: max connections reached
  LocalCounter cx_idle_timeout;               // closed after the idle timeout
  LocalCounter downstream_rq_rx_reset;        // client went away mid-request
  LocalCounter http_parse_error;              // answered 400/431/501/505 and closed
  LocalCounter downstream_rq_header_timeout;  // no complete head within request_headers_timeout
  HttpStats http;
};

struct RouteStats {
  HttpStats http;
};

struct ClusterStats {
  LocalCounter cx_total;
  LocalGauge cx_active;
  LocalCounter cx_connect_fail;
  LocalCounter cx_reused;        // requests sent on a pooled connection
  LocalCounter no_healthy_host;  // 503 because the balancer had nothing to pick
  LocalCounter rq_retry;
  LocalCounter rq_reset;           // upstream closed or failed mid-response
  LocalCounter cx_protocol_error;  // the upstream's response was not valid HTTP/1.1
  HttpStats http;
};

struct HostStats {
  LocalCounter cx_connect_fail;
  HttpStats http;
};

class WorkerStats;

// Counters named at run time, as Envoy's filters name theirs ("http.<stat_prefix>.rbac.allowed",
// "listener.<name>.response_flags.UF"): a worker's view with its own cache, so only a name's
// first use takes the lock.
class CounterScope {
 public:
  CounterScope(WorkerStats* stats, std::string prefix)
      : stats_(stats), prefix_(std::move(prefix)) {}
  // "<prefix><name>"; created on first use, valid for the life of the process.
  LocalCounter& Counter(std::string_view name);
  const std::string& prefix() const { return prefix_; }

 private:
  WorkerStats* stats_;
  std::string prefix_;
  std::map<std::string, LocalCounter*, std::less<>> cache_;
};

// One worker's blocks, by name. Find* are called on config changes (they lock); the returned
// pointers are used lock-free.
class WorkerStats {
 public:
  // A named counter (see CounterScope), by its full name.
  LocalCounter* Named(const std::string& name);
  ListenerStats* Listener(const std::string& name);
  RouteStats* Route(const std::string& name);
  ClusterStats* Cluster(const std::string& name);
  // Key: "cluster|address:port".
  HostStats* Host(const std::string& key);

  // Readers (StatsStore) take mu_ to walk the maps; blocks are never removed.
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<ListenerStats>> listeners_;
  std::map<std::string, std::unique_ptr<RouteStats>> routes_;
  std::map<std::string, std::unique_ptr<ClusterStats>> clusters_;
  std::map<std::string, std::unique_ptr<HostStats>> hosts_;
  std::map<std::string, std::unique_ptr<LocalCounter>> named_;
};

// All workers' blocks; renders them merged.
class StatsStore {
 public:
  explicit StatsStore(int workers);
  WorkerStats* worker(int i) { return workers_[static_cast<size_t>(i)].get(); }
  int worker_count() const { return static_cast<int>(workers_.size()); }

  // Prometheus text (weft_proxy_listener_*, _route_*, _cluster_*, _host_*).
  std::string PrometheusText();
  // Envoy-style "name: value" lines, with p50/p90/p99 for every histogram.
  std::string PlainText();

  // Merged per-host figures for /clusters.
  struct HostSummary {
    uint64_t rq_total = 0;
    uint64_t rq_error = 0;  // 5xx
    int64_t rq_active = 0;
    uint64_t cx_connect_fail = 0;
  };
  HostSummary HostTotals(const std::string& key);

 private:
  std::vector<std::unique_ptr<WorkerStats>> workers_;
};

}  // namespace weft::proxy
