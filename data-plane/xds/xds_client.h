// weft-proxy's ADS client: one stream to one control plane at a time, Delta or SotW, on its own
// thread. It subscribes to all listeners and clusters, then to the endpoints and routes those
// need; ACKs what validates and NACKs the rest with the validation error; reconnects with
// jittered backoff, trying each configured server in turn; and keeps the last good config
// while no control plane is reachable.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "data-plane/xds/config_state.h"
#include "envoy/config/core/v3/base.pb.h"
#include "weft/bootstrap/v1/bootstrap.pb.h"

namespace weft::grpc_client {
class Stream;
}  // namespace weft::grpc_client

namespace weft::proxy {

struct XdsClientStats {
  std::atomic<uint64_t> connects{0};
  std::atomic<uint64_t> disconnects{0};
  std::atomic<uint64_t> updates_accepted{0};
  std::atomic<uint64_t> updates_rejected{0};
  // Streams ended because a response exceeded xds.max_message_bytes.
  std::atomic<uint64_t> oversized_responses{0};
  std::atomic<bool> connected{false};
};

class XdsClient {
 public:
  // Called on the client's thread with each update that passed validation, before it is
  // committed; copy what you need (e.g. build a worker snapshot) and return quickly. An error
  // (something the data path cannot serve at all, e.g. a route table that does not compile)
  // rejects the update: the previous state stays and the error becomes the NACK's
  // error_detail. Unserved listeners (one that cannot bind) reject only themselves: the rest is
  // committed, they keep their previous version, and the NACK names them.
  using OnUpdate = std::function<ServeResult(const ConfigState&)>;

  XdsClient(envoy::config::core::v3::Node node, bootstrap::v1::Xds config, OnUpdate on_update);
  ~XdsClient();  // cancels the stream and joins the thread
  XdsClient(const XdsClient&) = delete;
  XdsClient& operator=(const XdsClient&) = delete;

  void Start();

  std::string ConfigDumpJson() const;
  // The last NACK this proxy sent (type and message), or empty.
  std::string last_rejection() const;
  const XdsClientStats& stats() const { return stats_; }
  // True once every subscribed type has been answered at least once and nothing is warming.
  bool initialized() const { return initialized_.load(); }

 private:
  void Run();
  void RunSotw(const std::string& server);
  void RunDelta(const std::string& server);
  void SleepBackoff(int attempt);
  // Registers the stream (so the destructor can cancel it) and starts it; false (logged) when
  // stopping or the server cannot be reached.
  bool OpenStream(grpc_client::Stream* stream, const std::string& server, const char* method);
  // Unregisters it; logs and counts a disconnect when the stream had been up.
  void EndStream(const std::string& server, const absl::Status& status, bool was_connected);
  // Applies one response under the lock, counts and logs the outcome; the error (if any) is
  // the NACK's error_detail. `what` names the response in logs ("version 3", "nonce 7").
  absl::Status Apply(xds::ResourceType type, const std::string& what,
                     const std::function<absl::Status(ConfigState&)>& apply);
  // Initialized once clusters and listeners have been answered and nothing is warming.
  void MaybeInitialized(bool clusters_and_listeners_answered);

  envoy::config::core::v3::Node node_;
  bootstrap::v1::Xds config_;
  OnUpdate on_update_;
  mutable std::mutex mu_;  // guards state_, last_rejection_, stream_
  ConfigState state_;
  std::string last_rejection_;
  grpc_client::Stream* stream_ = nullptr;
  std::atomic<bool> stop_{false};
  std::atomic<bool> initialized_{false};
  XdsClientStats stats_;
  std::thread thread_;
};

}  // namespace weft::proxy
