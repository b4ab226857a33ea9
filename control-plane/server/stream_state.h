// The per-stream xDS state machine, free of any transport: requests in, responses out. The gRPC
// reactors in xds_server.cc only move bytes; everything the protocol demands (nonces, ACK/NACK,
// subscriptions, "send only on change", warming, ordering) lives here and is unit-tested with a
// fake clock. Not thread-safe: the owning reactor serializes calls.
//
// Cost model: a stream keeps per type a sorted vector of interned name ids it subscribed to and
// two id -> version vectors (sent, ACKed), 12 bytes per resource held, all of them interned:
// streams in the same state (the common case: one group, same subscriptions, all ACKed) share
// one copy. A snapshot change is evaluated against the names the cache says changed
// (SnapshotCache::ForNode with `since`), not against everything subscribed; only a
// subscription change or a stream that fell behind the cache's history compares everything.
#pragma once

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/clock.h"
#include "common/xds/resource_type.h"
#include "control-plane/cache/snapshot_cache.h"
#include "control-plane/server/xds_server.h"
#include "envoy/config/core/v3/base.pb.h"
#include "envoy/service/discovery/v3/discovery.pb.h"

namespace weft::cp {

// Immutable sorted vectors are interned process-wide: a thousand proxies of one node group hold
// the same subscription and the same versions, and then share one copy of each.
template <typename T>
using SharedVector = std::shared_ptr<const std::vector<T>>;

// A sorted set of name ids (interned storage).
class IdSet {
 public:
  const std::vector<NameId>& ids() const;
  // Identifies the set's content among live sets (interning: equal sets are one object).
  const SharedVector<NameId>& shared() const { return ids_; }
  bool Contains(NameId id) const;
  size_t size() const { return ids_ ? ids_->size() : 0; }
  // `ids` must be sorted without duplicates.
  void Assign(std::vector<NameId> ids);

 private:
  SharedVector<NameId> ids_;
};

// name id -> version, sorted by id. Copies share one immutable vector (interned, so equal
// content is stored once across streams); every change builds a new one, in batches, so
// `acked = sent` costs nothing.
class VersionMap {
 public:
  struct Item {
    NameId id;
    uint32_t hi, lo;  // the 64-bit version without the padding a uint64_t member would add
    uint64_t version() const { return (uint64_t{hi} << 32) | lo; }
  };
  struct Change {
    NameId id;
    bool erase;
    uint64_t version;
  };
  static Item MakeItem(NameId id, uint64_t version) {
    return Item{id, static_cast<uint32_t>(version >> 32), static_cast<uint32_t>(version)};
  }

  std::optional<uint64_t> Find(NameId id) const;
  bool Contains(NameId id) const { return Find(id).has_value(); }
  size_t size() const { return items_ ? items_->size() : 0; }
  bool empty() const { return size() == 0; }
  const Item* begin() const { return items_ ? items_->data() : nullptr; }
  const Item* end() const { return items_ ? items_->data() + items_->size() : nullptr; }
  // Applies `changes` in order (for one id, the last one wins). Reorders `changes`.
  void Apply(std::vector<Change>* changes);
  // Replaces the content; `items` must be sorted by id without duplicates.
  void Assign(std::vector<Item> items);
  void Clear() { items_.reset(); }
  bool SameContent(const VersionMap& other) const;

 private:
  SharedVector<Item> items_;
};

// A serialized response in three pieces: the resources in the middle may be bytes shared with
// every other stream sending exactly them (Snapshot::Memo); head and tail carry what is per
// stream (version, nonce, removals). Concatenated, they are the message protobuf would write.
struct WireResponse {
  std::string head;
  std::shared_ptr<const std::string> body;  // may be null
  std::string tail;
  size_t size() const { return head.size() + (body ? body->size() : 0) + tail.size(); }
  std::string Flatten() const;
};

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
  // The cache changed: subscribed types get re-evaluated on the next Next*().
  void OnSnapshotChanged();

  // Fills the next response to send, in push order CDS -> EDS -> LDS -> RDS -> SDS, or returns
  // false when the client is up to date. The wire forms write the serialized message (the
  // bytes protobuf would produce for it), assembled from the resources' packed bytes without
  // building a message; the message forms parse those bytes (tests, Fetch).
  bool NextSotw(WireResponse* out);
  bool NextDelta(WireResponse* out);
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
    IdSet names;
    // What needs a look on the next Next*(): everything (a subscription changed, or the
    // snapshot moved in a way the cache could not describe), or only `pending`. `touched`
    // (a request arrived) costs nothing by itself but, like the others, holds back Delta
    // removals of clusters/endpoints behind listeners and routes.
    bool full = false;
    bool touched = false;
    std::vector<NameId> pending;
    bool must_respond = false;  // SotW: answer even if nothing changed
    // What the client was sent (SotW: the last response; Delta: the client's current view).
    VersionMap sent;
    VersionMap acked;
    // Delta bookkeeping for the response awaiting ACK.
    std::vector<std::pair<NameId, uint64_t>> inflight;
    std::vector<NameId> inflight_removed;
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

    bool NeedsEval() const { return full || touched || !pending.empty(); }
  };

  absl::StatusOr<xds::ResourceType> TypeOf(const std::string& type_url) const;
  void SeeNode(const envoy::config::core::v3::Node& node);
  SnapshotPtr CurrentSnapshot() const;
  // Catches up with the cache: records what changed since evaluated_ in each type's pending
  // names (or marks it for a full look) and makes the current snapshot evaluated_.
  void Refresh();
  bool Subscribed(const TypeState& ts, NameId id) const;
  void RecordAck(xds::ResourceType type, TypeState& ts);
  void RecordNack(xds::ResourceType type, TypeState& ts, const std::string& error);
  // A Cluster/Listener went out: its EDS/RDS must follow. Delta forgets that the client holds
  // them (erasures collected in dep_erase_, applied by FlushDependencies()).
  void MarkDependencies(xds::ResourceType type, const Snapshot::Entry& entry, bool delta);
  void FlushDependencies();
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
  // The snapshot dirtiness was last computed against: every type that needs no evaluation is
  // consistent with it. drained_ is the one the stream last caught up with completely.
  SnapshotPtr evaluated_;
  SnapshotPtr drained_;
  std::array<TypeState, xds::kResourceTypeCount> types_;
  std::array<std::vector<VersionMap::Change>, xds::kResourceTypeCount> dep_erase_;
};

}  // namespace weft::cp
