// A step-driven xDS client for protocol tests: the test decides every request (ACK, NACK, stale
// nonce, odd subscriptions) and reads every response, so it can check what a server does rather
// than what a well-behaved client library would paper over. One reader thread per stream moves
// responses into a queue; Next() waits on that queue with a timeout, so a missing or an extra
// push shows up as a test failure instead of a hang.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "envoy/config/core/v3/base.pb.h"
#include "envoy/service/discovery/v3/ads.grpc.pb.h"
#include "envoy/service/discovery/v3/discovery.pb.h"
#include "google/protobuf/any.pb.h"
#include "google/protobuf/struct.pb.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/support/sync_stream.h"

namespace weft::test {

using envoy::service::discovery::v3::DeltaDiscoveryRequest;
using envoy::service::discovery::v3::DeltaDiscoveryResponse;
using envoy::service::discovery::v3::DiscoveryRequest;
using envoy::service::discovery::v3::DiscoveryResponse;

// Which RPC a stream uses: aggregated (ADS) or one of the per-type services.
enum class XdsService { kAds, kCluster, kEndpoint, kListener, kRoute, kSecret };

namespace internal {

// Owns one bidi stream and its reader thread. Req/Resp are the SotW or Delta message pair.
template <typename Req, typename Resp>
class StreamCore {
 public:
  using Opener =
      std::function<std::unique_ptr<grpc::ClientReaderWriter<Req, Resp>>(grpc::ClientContext*)>;
  explicit StreamCore(const Opener& open) {
    stream_ = open(&context_);
    reader_ = std::thread([this] { ReadLoop(); });
  }
  ~StreamCore() {
    context_.TryCancel();
    Finish();
  }

  bool Send(const Req& request) {
    std::lock_guard<std::mutex> lock(write_mu_);
    if (writes_done_) return false;
    return stream_->Write(request);
  }

  std::optional<Resp> Next(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, timeout, [this] { return !queue_.empty() || ended_; });
    if (queue_.empty()) return std::nullopt;
    Resp r = std::move(queue_.front());
    queue_.pop_front();
    return r;
  }

  // True when the server ended the stream (all queued responses may still be read).
  bool WaitForEnd(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [this] { return ended_; });
  }

  // Half-closes, gives the server `grace` to end the stream, then cancels; returns its status.
  grpc::Status Close(std::chrono::milliseconds grace) {
    {
      std::lock_guard<std::mutex> lock(write_mu_);
      if (!writes_done_) {
        writes_done_ = true;
        stream_->WritesDone();
      }
    }
    if (!WaitForEnd(grace)) context_.TryCancel();
    return Finish();
  }

  // Cancels without a half-close: what a crashed or partitioned client looks like.
  void Cancel() { context_.TryCancel(); }

  grpc::ClientContext* context() { return &context_; }

 private:
  void ReadLoop() {
    Resp r;
    while (stream_->Read(&r)) {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(r));
      r.Clear();
      cv_.notify_all();
    }
    std::lock_guard<std::mutex> lock(mu_);
    ended_ = true;
    cv_.notify_all();
  }

  grpc::Status Finish() {
    if (reader_.joinable()) reader_.join();
    if (!finished_) {
      finished_ = true;
      status_ = stream_->Finish();
    }
    return status_;
  }

  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<Req, Resp>> stream_;
  std::thread reader_;
  std::mutex write_mu_;
  bool writes_done_ = false;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Resp> queue_;
  bool ended_ = false;
  bool finished_ = false;
  grpc::Status status_;
};

}  // namespace internal

// Insecure channel to 127.0.0.1:port, with receive/send limits raised so that a test can send
// oversized requests and see the server's answer rather than the client's own refusal.
std::shared_ptr<grpc::Channel> XdsChannel(int port);

// State-of-the-World stream (StreamAggregatedResources or Stream<Type>s).
// A step-driven xDS stream: Send requests, take responses with a timeout. SotwClient and
// DeltaClient differ only in the messages and the RPC they open.
template <typename Req, typename Resp>
class XdsStreamClient {
 public:
  bool Send(const Req& request) { return core_->Send(request); }
  std::optional<Resp> Next(std::chrono::milliseconds timeout) { return core_->Next(timeout); }
  std::optional<Resp> ExpectNone(std::chrono::milliseconds window) { return core_->Next(window); }
  bool WaitForEnd(std::chrono::milliseconds timeout) { return core_->WaitForEnd(timeout); }
  grpc::Status Close(std::chrono::milliseconds grace = std::chrono::seconds(2)) {
    return core_->Close(grace);
  }
  void Cancel() { core_->Cancel(); }

 protected:
  using Core = internal::StreamCore<Req, Resp>;
  explicit XdsStreamClient(std::shared_ptr<grpc::Channel> channel) : channel_(std::move(channel)) {}
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<Core> core_;
};

class SotwClient : public XdsStreamClient<DiscoveryRequest, DiscoveryResponse> {
 public:
  SotwClient(std::shared_ptr<grpc::Channel> channel, XdsService service = XdsService::kAds);
  explicit SotwClient(int port, XdsService service = XdsService::kAds)
      : SotwClient(XdsChannel(port), service) {}
};

class DeltaClient : public XdsStreamClient<DeltaDiscoveryRequest, DeltaDiscoveryResponse> {
 public:
  DeltaClient(std::shared_ptr<grpc::Channel> channel, XdsService service = XdsService::kAds);
  explicit DeltaClient(int port, XdsService service = XdsService::kAds)
      : DeltaClient(XdsChannel(port), service) {}
};

// --- Request builders --------------------------------------------------------------------------

envoy::config::core::v3::Node MakeNode(std::string_view id, std::string_view cluster = "test");

// First request of a type on a SotW stream (no nonce, no version).
DiscoveryRequest SotwRequest(std::string_view type_url, const std::vector<std::string>& names,
                             const envoy::config::core::v3::Node* node = nullptr);
// ACK: echoes nonce and version. SotW requests always restate the subscription, so `names` must
// be the current subscription (an empty list would mean "wildcard" or "none", not "unchanged").
DiscoveryRequest SotwAck(const DiscoveryResponse& response, const std::vector<std::string>& names);
// NACK: echoes the nonce, keeps `last_good_version`, and carries `message` in error_detail.
DiscoveryRequest SotwNack(const DiscoveryResponse& response, const std::vector<std::string>& names,
                          std::string_view last_good_version, std::string_view message);

DeltaDiscoveryRequest DeltaRequest(std::string_view type_url,
                                   const std::vector<std::string>& subscribe,
                                   const std::map<std::string, std::string>& initial_versions = {},
                                   const envoy::config::core::v3::Node* node = nullptr);
DeltaDiscoveryRequest DeltaAck(const DeltaDiscoveryResponse& response);
DeltaDiscoveryRequest DeltaNack(const DeltaDiscoveryResponse& response, std::string_view message);

// --- Response inspection -----------------------------------------------------------------------

// The name of a packed xDS resource (`name`, or `cluster_name` for ClusterLoadAssignment), found
// by reflection over the generated descriptor pool. Empty if the type is unknown.
std::string ResourceName(const google::protobuf::Any& resource);
// Names in response order.
std::vector<std::string> Names(const DiscoveryResponse& response);
std::vector<std::string> Names(const DeltaDiscoveryResponse& response);
// name -> version of a Delta response.
std::map<std::string, std::string> Versions(const DeltaDiscoveryResponse& response);

// --- Admin JSON --------------------------------------------------------------------------------

std::optional<google::protobuf::Struct> ParseJson(std::string_view json);
// Follows a dotted path ("types.cluster.acked_version"; "[2]" indexes lists) from `value`.
const google::protobuf::Value* JsonAt(const google::protobuf::Value& value, std::string_view path);
const google::protobuf::Value* JsonAt(const google::protobuf::Struct& root, std::string_view path);
// String at `path`, or "" when absent or not a string.
std::string JsonString(const google::protobuf::Value& value, std::string_view path);
// The /debug/proxies entry for node `node_id` (the newest stream if several), or nullopt.
std::optional<google::protobuf::Value> FindProxy(const google::protobuf::Struct& proxies,
                                                 std::string_view node_id);
// Compact JSON for failure messages.
std::string ToJson(const google::protobuf::Message& message);

}  // namespace weft::test
