// The xDS protocol engine: ADS (SotW and Delta) and the per-type discovery services, on gRPC's
// callback API (one reactor per stream, no thread per stream). It serves whatever snapshot the
// SnapshotCache holds for a node and pushes changes when the cache changes.
//
// Threading: gRPC calls the reactors on its own threads; OnSnapshotChanged() runs on the
// publisher's thread, which spreads the streams over itself and a few helper threads. Each
// stream serializes its own work with a mutex; writes are one at a time, and a stream that
// falls behind coalesces changes instead of queueing responses. Responses go out as raw bytes
// (StreamState serializes them; resources common to many streams are one shared buffer).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/xds/resource_type.h"

namespace grpc {
class ServerBuilder;
}

namespace weft::cp {

class SnapshotCache;

// Hooks for metrics; every method may be called concurrently from many streams.
class XdsObserver {
 public:
  virtual ~XdsObserver() = default;
  virtual void OnStreamOpened() {}
  virtual void OnStreamClosed() {}
  virtual void OnPush(xds::ResourceType type, size_t resources) {}
  virtual void OnAck(xds::ResourceType type, std::chrono::nanoseconds push_to_ack) {}
  virtual void OnNack(xds::ResourceType type) {}
  virtual void OnStaleNonce(xds::ResourceType type) {}
};

// One stream's state in brief, for the config API's Status and `weftctl wait`.
struct StreamSummary {
  struct Type {
    xds::ResourceType type;
    std::string sent_version;
    std::string acked_version;
    bool awaiting_ack = false;
    std::string nack_error;  // set while the latest response stands NACKed
    double last_push_to_ack_ms = -1;
    size_t resources = 0;
    std::vector<std::string> sent_names;
  };
  uint64_t stream_id = 0;
  std::string node_id;
  std::string cluster;
  std::string mode;
  std::string peer;
  // Sent everything the latest snapshot for its group holds for it, and ACKed all of it.
  bool in_sync = false;
  std::vector<Type> types;
};

class XdsServer {
 public:
  // `cache` and `observer` (may be null) must outlive the server.
  XdsServer(SnapshotCache* cache, XdsObserver* observer);
  ~XdsServer();
  XdsServer(const XdsServer&) = delete;
  XdsServer& operator=(const XdsServer&) = delete;

  // Adds the ADS and per-type services to `builder`; the services live as long as this object.
  void Register(grpc::ServerBuilder* builder);

  // Re-evaluates every stream against the cache; wire this to SnapshotCache::SetListener.
  void OnSnapshotChanged();

  size_t connected_streams() const;
  // Per connected proxy and resource type: subscriptions, versions sent and ACKed, NACKs with
  // their error_detail, push-to-ACK time, and per-resource sent/ACKed versions.
  std::string ProxiesJson() const;
  std::vector<StreamSummary> Summaries() const;

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace weft::cp
