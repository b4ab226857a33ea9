// A worker: one thread, one event loop, its own SO_REUSEPORT listening sockets, connections,
// balancers and upstream connection pools. Nothing on the request path is shared with other
// workers, so nothing there locks; the only cross-thread input is the config snapshot, posted
// to the loop and swapped in between events.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "data-plane/net/event_loop.h"
#include "data-plane/server/proxy_config.h"
#include "data-plane/stats/proxy_stats.h"

namespace weft::proxy {

// The listening sockets of one listener, one per worker. Closed when the last worker that
// uses them lets go (a removed listener drains on every worker first).
class ListenerSockets {
 public:
  explicit ListenerSockets(std::vector<int> fds) : fds_(std::move(fds)) {}
  ~ListenerSockets();
  ListenerSockets(const ListenerSockets&) = delete;
  ListenerSockets& operator=(const ListenerSockets&) = delete;
  int fd(size_t worker) const { return fds_[worker]; }
  uint16_t port() const;

 private:
  std::vector<int> fds_;
};

// What a worker serves from: the compiled config and the sockets of its listeners.
struct WorkerSnapshot {
  std::shared_ptr<const ProxyConfig> config;
  std::map<std::string, std::shared_ptr<ListenerSockets>> sockets;  // by listener name
};

// Writes JSON access-log lines, buffered per worker and written in batches.
class AccessLogSink {
 public:
  // "-" is stdout; otherwise a file opened for appending. Empty: no access log.
  static absl::StatusOr<std::shared_ptr<AccessLogSink>> Open(const std::string& path);
  ~AccessLogSink();
  void Write(std::string_view lines);  // thread-safe: one write(2) per batch, O_APPEND

 private:
  explicit AccessLogSink(int fd, bool owned) : fd_(fd), owned_(owned) {}
  int fd_;
  bool owned_;
};

struct WorkerOptions {
  int index = 0;
  StatsStore* stats = nullptr;
  std::shared_ptr<AccessLogSink> access_log;  // may be null
  // Per-worker cap on downstream connections; beyond it new connections are closed at once.
  size_t max_connections = 0;  // 0: unlimited
  // Upstream connections kept idle per host and worker.
  size_t max_idle_per_host = 64;
  net::SendMode send_mode = net::SendMode::kAuto;
};

class Worker {
 public:
  explicit Worker(WorkerOptions options);
  ~Worker();  // stops and joins
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  absl::Status Start();
  void Stop();
  // Thread-safe: the worker swaps to `snapshot` on its own thread.
  void Publish(std::shared_ptr<const WorkerSnapshot> snapshot);
  // The generation of the snapshot the worker is serving.
  uint64_t serving_generation() const { return serving_generation_.load(); }

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
  std::thread thread_;
  std::atomic<uint64_t> serving_generation_{0};
};

}  // namespace weft::proxy
