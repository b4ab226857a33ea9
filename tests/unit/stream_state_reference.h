// Test-only: the StreamState as of commit 89cbee1 (string-keyed maps, every subscribed name
// compared on every change), changed only in its namespace and in following the same protocol
// rules (partial SotW responses for RDS/EDS/SDS). It is deliberately a second, naive
// implementation rather than shared code: the differential test (stream_state_diff_test.cc)
// holds the indexed StreamState to it — same responses byte for byte, same JSON — and shared
// code would hide shared bugs. Original header comment follows.
//
// The per-stream xDS state machine, free of any transport: requests in, responses out. The gRPC
// reactors in xds_server.cc only move bytes; everything the protocol demands (nonces, ACK/NACK,
// subscriptions, "send only on change", warming, ordering) lives here and is unit-tested with a
// fake clock. Not thread-safe: the owning reactor serializes calls.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "common/clock.h"
#include "common/xds/resource_type.h"
#include "control-plane/cache/snapshot_cache.h"
#include "control-plane/server/xds_server.h"
#include "envoy/config/core/v3/base.pb.h"
#include "envoy/service/discovery/v3/discovery.pb.h"

namespace weft::cp::reference {

class StreamState {
 public:
  enum class Mode { kSotw, kDelta };
  struct Options {
    uint64_t id = 0;
    Mode mode = Mode::kSotw;
    std::string service = "ads";                  // ads, cds, eds, lds, rds, sds
    std::optional<xds::ResourceType> fixed_type;  // per-type services serve one type
    std::string peer;
  };
  StreamState(Options options, const SnapshotCache* cache, XdsObserver* observer,
              const Clock* clock);

  // Protocol errors (a type the per-type service does not serve) come back as non-OK; the
  // caller ends the stream with that status.
  absl::Status OnSotwRequest(const envoy::service::discovery::v3::DiscoveryRequest& request);
  absl::Status OnDeltaRequest(const envoy::service::discovery::v3::DeltaDiscoveryRequest& request);
  // The cache changed: every subscribed type gets re-evaluated on the next Next*().
  void OnSnapshotChanged();

  // Fills the next response to send, in push order CDS -> EDS -> LDS -> RDS -> SDS, or returns
  // false when the client is up to date.
  bool NextSotw(envoy::service::discovery::v3::DiscoveryResponse* out);
  bool NextDelta(envoy::service::discovery::v3::DeltaDiscoveryResponse* out);

  void AppendJson(std::string* out) const;
  StreamSummary Summary() const;
  const std::string& node_id() const { return node_.id(); }
  uint64_t id() const { return options_.id; }

 private:
  struct TypeState {
    bool requested = false;
    bool wildcard = false;
    absl::flat_hash_set<std::string> names;
    bool dirty = false;
    bool must_respond = false;  // SotW: answer even if nothing changed
    // What the client was sent (SotW: the last response; Delta: the client's current view).
    absl::flat_hash_map<std::string, uint64_t> sent;
    absl::flat_hash_map<std::string, uint64_t> acked;
    // Delta bookkeeping for the response awaiting ACK.
    std::vector<std::pair<std::string, uint64_t>> inflight;
    std::vector<std::string> inflight_removed;
    std::string nonce;
    std::string sent_version;
    std::string acked_version;
    Clock::TimePoint sent_at{};
    bool awaiting_ack = false;
    double last_push_to_ack_ms = -1;
    uint64_t pushes = 0;
    uint64_t nacks = 0;
    std::string nack_error;
    std::string nack_nonce;
    std::chrono::system_clock::time_point nack_at{};
  };

  absl::StatusOr<xds::ResourceType> TypeOf(const std::string& type_url) const;
  void SeeNode(const envoy::config::core::v3::Node& node);
  SnapshotPtr CurrentSnapshot() const;
  // Catches up with the cache: marks the types whose content differs from evaluated_ dirty
  // and makes the current snapshot evaluated_.
  void Refresh();
  bool Subscribed(const TypeState& ts, const std::string& name) const;
  void RecordAck(xds::ResourceType type, TypeState& ts);
  void RecordNack(xds::ResourceType type, TypeState& ts, const std::string& error);
  void MarkDependencies(const xds::Resource& resource, bool delta);
  std::string NextNonce();
  // Sent all the latest snapshot holds for this stream, all of it ACKed, no standing NACK.
  bool InSync() const;

  Options options_;
  const SnapshotCache* cache_;
  XdsObserver* observer_;
  const Clock* clock_;
  envoy::config::core::v3::Node node_;
  bool node_seen_ = false;
  std::chrono::system_clock::time_point connected_at_;
  uint64_t nonce_counter_ = 0;
  // The snapshot dirtiness was last computed against: every type not dirty is consistent
  // with it. drained_ is the one the stream last caught up with completely.
  SnapshotPtr evaluated_;
  SnapshotPtr drained_;
  std::array<TypeState, xds::kResourceTypeCount> types_;
};

}  // namespace weft::cp::reference
