#include "control-plane/server/stream_state.h"

#include <algorithm>
#include <functional>
#include <mutex>
#include <span>
#include <string_view>
#include <unordered_map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "common/json.h"
#include "common/log.h"
#include "common/proto_util.h"
#include "common/strings.h"

namespace weft::cp {
namespace {

using envoy::service::discovery::v3::DeltaDiscoveryRequest;
using envoy::service::discovery::v3::DeltaDiscoveryResponse;
using envoy::service::discovery::v3::DiscoveryRequest;
using envoy::service::discovery::v3::DiscoveryResponse;

// Beyond this many changed names, comparing everything is as cheap as looking at each.
constexpr size_t kMaxPending = 4096;

// The type that warms behind a resource: a Cluster waits for its endpoints, a Listener for its
// routes.
std::optional<xds::ResourceType> DependentType(xds::ResourceType type) {
  if (type == xds::ResourceType::kCluster) return xds::ResourceType::kEndpoint;
  if (type == xds::ResourceType::kListener) return xds::ResourceType::kRoute;
  return std::nullopt;
}

// Versions we hand out are 16 hex digits; anything else a client claims (another control
// plane's version after a fail-over) parses to 0, which never matches, so it gets resent.
uint64_t ParseVersion(const std::string& text) {
  uint64_t v = 0;
  if (text.size() != 16 || !absl::SimpleHexAtoi(Sv(text), &v)) return 0;
  return v;
}

std::string Rfc3339(std::chrono::system_clock::time_point t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::FromChrono(t), absl::UTCTimeZone());
}

const std::string& NameOf(NameId id) { return NameTable::Global().Name(id); }

void SortUnique(std::vector<NameId>* v) {
  std::sort(v->begin(), v->end());
  v->erase(std::unique(v->begin(), v->end()), v->end());
}

bool SortedContains(const std::vector<NameId>& v, NameId id) {
  return std::binary_search(v.begin(), v.end(), id);
}

// Merges `ops` into `sorted` (ascending ids, no duplicates) in one pass: for each id only its
// last op counts, and it replaces any element with that id by what `emit` appends (nothing,
// for a removal). Subscription sets and sent/acked version maps both change this way.
template <typename T, typename Op, typename ElemId, typename OpId, typename Emit>
std::vector<T> MergeOps(std::span<const T> sorted, std::vector<Op>* ops, ElemId elem_id, OpId op_id,
                        Emit emit) {
  std::stable_sort(ops->begin(), ops->end(),
                   [&](const Op& a, const Op& b) { return op_id(a) < op_id(b); });
  std::vector<T> out;
  out.reserve(sorted.size() + ops->size());
  size_t i = 0;
  for (size_t j = 0; j < ops->size();) {
    NameId id = op_id((*ops)[j]);
    while (j + 1 < ops->size() && op_id((*ops)[j + 1]) == id) ++j;  // the last op for id wins
    const Op& op = (*ops)[j++];
    while (i < sorted.size() && elem_id(sorted[i]) < id) out.push_back(sorted[i++]);
    if (i < sorted.size() && elem_id(sorted[i]) == id) ++i;
    emit(op, &out);
  }
  out.insert(out.end(), sorted.begin() + static_cast<ptrdiff_t>(i), sorted.end());
  return out;
}

// Inserts (true) and erases (false) applied in order to a sorted set of ids.
void ApplySetOps(std::vector<NameId>* set, std::vector<std::pair<NameId, bool>>* ops) {
  if (ops->empty()) return;
  *set = MergeOps(
      std::span<const NameId>(*set), ops, [](NameId id) { return id; },
      [](const std::pair<NameId, bool>& op) { return op.first; },
      [](const std::pair<NameId, bool>& op, std::vector<NameId>* out) {
        if (op.second) out->push_back(op.first);
      });
}

bool ByName(const Snapshot::Entry* a, const Snapshot::Entry* b) {
  return a->resource->name < b->resource->name;
}

void SortIdsByName(std::vector<NameId>* ids) {
  std::sort(ids->begin(), ids->end(), [](NameId a, NameId b) { return NameOf(a) < NameOf(b); });
}

// ---------------------------------------------------------------------------------------------
// Wire format. Responses are written field by field in field-number order with proto3's rules
// (empty singular strings omitted), which is byte for byte what protobuf's serializer produces
// for the equivalent message; the resources' packed bytes are copied once, straight into the
// response, instead of being copied into a message and serialized from it.

constexpr std::string_view kControlPlaneId = "weft-cp";

size_t VarintSize(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

size_t LenFieldSize(uint32_t field, size_t len) {
  return VarintSize(uint64_t{field} << 3 | 2) + VarintSize(len) + len;
}

void PutLenHeader(std::string* out, uint32_t field, size_t len) {
  PutVarint(out, uint64_t{field} << 3 | 2);
  PutVarint(out, len);
}

void PutBytes(std::string* out, uint32_t field, std::string_view s) {
  PutLenHeader(out, field, s.size());
  out->append(s.data(), s.size());
}

// Singular proto3 string: absent when empty.
size_t OptStringSize(uint32_t field, std::string_view s) {
  return s.empty() ? 0 : LenFieldSize(field, s.size());
}
void PutOptString(std::string* out, uint32_t field, std::string_view s) {
  if (!s.empty()) PutBytes(out, field, s);
}

// google.protobuf.Any: type_url = 1, value = 2. An Any carrying unknown fields (never built by
// Weft, but possible in principle) goes through protobuf instead.
bool PlainAny(const google::protobuf::Any& any) {
  return any.GetReflection()->GetUnknownFields(any).empty();
}
size_t AnySize(const google::protobuf::Any& any) {
  if (!PlainAny(any)) return any.ByteSizeLong();
  return OptStringSize(1, any.type_url()) + OptStringSize(2, any.value());
}
void PutAny(std::string* out, const google::protobuf::Any& any) {
  if (!PlainAny(any)) {
    any.AppendToString(out);
    return;
  }
  PutOptString(out, 1, any.type_url());
  PutOptString(out, 2, any.value());
}

// envoy.config.core.v3.ControlPlane { identifier = 1 }
void PutControlPlane(std::string* out, uint32_t field) {
  PutLenHeader(out, field, LenFieldSize(1, kControlPlaneId.size()));
  PutBytes(out, 1, kControlPlaneId);
}

// Snapshot::Memo kinds.
constexpr int kSotwBody = 0;
constexpr int kDeltaBody = 1;
// Snapshot::MemoObject kinds.
constexpr int kSotwSelection = 0;  // SotwSelection

// DiscoveryResponse: version_info = 1, resources = 2, type_url = 4, nonce = 5,
// control_plane = 6. The body is the resources.
std::string SotwBody(const std::vector<const Snapshot::Entry*>& resources) {
  std::vector<size_t> any_sizes;
  any_sizes.reserve(resources.size());
  size_t size = 0;
  for (const Snapshot::Entry* e : resources) {
    any_sizes.push_back(AnySize(e->resource->body));
    size += LenFieldSize(2, any_sizes.back());
  }
  std::string out;
  out.reserve(size);
  for (size_t i = 0; i < resources.size(); ++i) {
    PutLenHeader(&out, 2, any_sizes[i]);
    PutAny(&out, resources[i]->resource->body);
  }
  return out;
}

void SotwFrame(WireResponse* out, const std::string& version, xds::ResourceType type,
               const std::string& nonce) {
  out->head.clear();
  PutOptString(&out->head, 1, version);
  out->tail.clear();
  PutOptString(&out->tail, 4, xds::TypeUrl(type));
  PutOptString(&out->tail, 5, nonce);
  PutControlPlane(&out->tail, 6);
}

// DeltaDiscoveryResponse: system_version_info = 1, resources = 2, type_url = 4, nonce = 5,
// removed_resources = 6, control_plane = 7; Resource: version = 1, resource = 2, name = 3.
std::string DeltaBody(const std::vector<const Snapshot::Entry*>& resources) {
  std::vector<std::pair<size_t, size_t>> sizes;  // (Any, Resource)
  sizes.reserve(resources.size());
  size_t size = 0;
  for (const Snapshot::Entry* e : resources) {
    const xds::Resource& r = *e->resource;
    size_t any = AnySize(r.body);
    size_t res = OptStringSize(1, r.version_text) + LenFieldSize(2, any) + OptStringSize(3, r.name);
    sizes.emplace_back(any, res);
    size += LenFieldSize(2, res);
  }
  std::string out;
  out.reserve(size);
  for (size_t i = 0; i < resources.size(); ++i) {
    const xds::Resource& r = *resources[i]->resource;
    PutLenHeader(&out, 2, sizes[i].second);
    PutOptString(&out, 1, r.version_text);
    PutLenHeader(&out, 2, sizes[i].first);
    PutAny(&out, r.body);
    PutOptString(&out, 3, r.name);
  }
  return out;
}

void DeltaFrame(WireResponse* out, const std::string& version, xds::ResourceType type,
                const std::vector<NameId>& removed, const std::string& nonce) {
  out->head.clear();
  PutOptString(&out->head, 1, version);
  out->tail.clear();
  PutOptString(&out->tail, 4, xds::TypeUrl(type));
  PutOptString(&out->tail, 5, nonce);
  for (NameId id : removed) PutBytes(&out->tail, 6, NameOf(id));
  PutControlPlane(&out->tail, 7);
}

// StableHash64 over "name\nversion\n" of each resource, without building the string: the SotW
// version of a named subscription, equal to what hashing the concatenation gives.
class StreamingHash {
 public:
  void Add(std::string_view s) {
    for (unsigned char c : s) {
      h_ ^= c;
      h_ *= 1099511628211ull;
    }
  }
  uint64_t value() const { return h_; }

 private:
  uint64_t h_ = 14695981039346656037ull;
};

// Interns immutable vectors of T by content. An entry lives as long as some stream holds it:
// the last reference's deleter removes it from the table.
template <typename T>
class Pool {
 public:
  static Pool& Get() {
    static Pool* pool = new Pool();  // leaked: streams may outlive static destruction
    return *pool;
  }

  SharedVector<T> Intern(std::vector<T> items) {
    const size_t hash = Hash(items);
    // A candidate whose last other holder lets go while we compare would run its deleter, which
    // takes mu_, when our reference drops: release candidates only after unlocking.
    std::vector<SharedVector<T>> candidates;
    std::lock_guard lock(mu_);
    auto [begin, end] = entries_.equal_range(hash);
    for (auto it = begin; it != end; ++it) {
      SharedVector<T> existing = it->second.weak.lock();
      if (existing && *existing == items) return existing;
      candidates.push_back(std::move(existing));
    }
    items.shrink_to_fit();
    const std::vector<T>* raw = new std::vector<T>(std::move(items));
    SharedVector<T> shared(raw, [this, hash](const std::vector<T>* p) {
      Erase(hash, p);
      delete p;
    });
    entries_.emplace(hash, Entry{raw, shared});
    return shared;
  }

 private:
  struct Entry {
    const std::vector<T>* raw;
    std::weak_ptr<const std::vector<T>> weak;
  };

  static size_t Hash(const std::vector<T>& items) {
    return std::hash<std::string_view>()(
        std::string_view(reinterpret_cast<const char*>(items.data()), items.size() * sizeof(T)));
  }

  void Erase(size_t hash, const std::vector<T>* p) {
    std::lock_guard lock(mu_);
    auto [begin, end] = entries_.equal_range(hash);
    for (auto it = begin; it != end; ++it) {
      if (it->second.raw == p) {
        entries_.erase(it);
        return;
      }
    }
  }

  std::mutex mu_;
  std::unordered_multimap<size_t, Entry> entries_;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// WireResponse, IdSet, VersionMap

std::string WireResponse::Flatten() const {
  std::string out;
  out.reserve(size());
  out += head;
  if (body) out += *body;
  out += tail;
  return out;
}

const std::vector<NameId>& IdSet::ids() const {
  static const std::vector<NameId> kEmpty;
  return ids_ ? *ids_ : kEmpty;
}

bool IdSet::Contains(NameId id) const { return SortedContains(ids(), id); }

void IdSet::Assign(std::vector<NameId> ids) {
  if (ids.empty()) {
    ids_.reset();
    return;
  }
  ids_ = Pool<NameId>::Get().Intern(std::move(ids));
}

bool operator==(const VersionMap::Item& a, const VersionMap::Item& b) {
  return a.id == b.id && a.hi == b.hi && a.lo == b.lo;
}

std::optional<uint64_t> VersionMap::Find(NameId id) const {
  if (!items_) return std::nullopt;
  auto it = std::lower_bound(items_->begin(), items_->end(), id,
                             [](const Item& item, NameId v) { return item.id < v; });
  if (it == items_->end() || it->id != id) return std::nullopt;
  return it->version();
}

void VersionMap::Apply(std::vector<Change>* changes) {
  if (changes->empty()) return;
  Assign(MergeOps(
      std::span<const Item>(begin(), size()), changes, [](const Item& item) { return item.id; },
      [](const Change& c) { return c.id; },
      [](const Change& c, std::vector<Item>* out) {
        if (!c.erase) out->push_back(MakeItem(c.id, c.version));
      }));
}

void VersionMap::Assign(std::vector<Item> items) {
  if (items.empty()) {
    items_.reset();
    return;
  }
  items_ = Pool<Item>::Get().Intern(std::move(items));
}

bool VersionMap::SameContent(const VersionMap& other) const {
  if (items_ == other.items_) return true;
  if (size() != other.size()) return false;
  return std::equal(begin(), end(), other.begin());
}

// ---------------------------------------------------------------------------------------------

StreamState::StreamState(Options options, const SnapshotCache* cache, XdsObserver* observer,
                         const Clock* clock)
    : options_(std::move(options)),
      cache_(cache),
      observer_(observer),
      clock_(clock),
      connected_at_(clock->WallNow()) {}

absl::StatusOr<xds::ResourceType> StreamState::TypeOf(const std::string& type_url) const {
  if (options_.fixed_type) {
    if (!type_url.empty() && type_url != xds::TypeUrl(*options_.fixed_type)) {
      return absl::InvalidArgumentError(
          absl::StrCat("type_url \"", type_url, "\" not served by ", options_.service, " stream"));
    }
    return *options_.fixed_type;
  }
  auto t = xds::ResourceTypeFromUrl(type_url);
  if (!t) return absl::NotFoundError(absl::StrCat("unsupported type_url \"", type_url, "\""));
  return *t;
}

void StreamState::SeeNode(const envoy::config::core::v3::Node& node) {
  // The node is only guaranteed on the first request; later copies may be absent or trimmed.
  if (node_seen_) return;
  node_ = node;
  node_seen_ = true;
}

SnapshotPtr StreamState::CurrentSnapshot() const {
  return cache_->ForNode(node_.id(), node_.cluster());
}

namespace {

// A SotW subscription's view of one snapshot: the resources it selects in response order
// (snapshot order for a wildcard, by name otherwise), their versions by id, and the version
// string of a named subscription.
struct SotwSelection {
  std::vector<const Snapshot::Entry*> relevant;
  VersionMap versions;
  std::string version;
};

SotwSelection SelectSotw(const Snapshot& snap, xds::ResourceType type, bool wildcard,
                         const std::vector<NameId>& names) {
  SotwSelection sel;
  if (wildcard) {
    sel.relevant.reserve(snap.size(type));
    snap.ForEach(type, [&](const Snapshot::Entry& e) { sel.relevant.push_back(&e); });
  } else {
    sel.relevant.reserve(names.size());
    for (NameId id : names) {
      if (const Snapshot::Entry* e = snap.Find(type, id)) sel.relevant.push_back(e);
    }
    std::sort(sel.relevant.begin(), sel.relevant.end(), ByName);
    StreamingHash hash;
    for (const Snapshot::Entry* e : sel.relevant) {
      hash.Add(e->resource->name);
      hash.Add("\n");
      hash.Add(e->resource->version_text);
      hash.Add("\n");
    }
    sel.version = HexVersion(hash.value());
  }
  std::vector<VersionMap::Item> items;
  items.reserve(sel.relevant.size());
  for (const Snapshot::Entry* e : sel.relevant) {
    items.push_back(VersionMap::MakeItem(e->id, e->resource->version));
  }
  std::sort(items.begin(), items.end(),
            [](const VersionMap::Item& a, const VersionMap::Item& b) { return a.id < b.id; });
  sel.versions.Assign(std::move(items));
  return sel;
}

}  // namespace

bool StreamState::Subscribed(const TypeState& ts, NameId id) const {
  return ts.wildcard || ts.names.Contains(id);
}

std::string StreamState::NextNonce() { return absl::StrCat(++nonce_counter_); }

void StreamState::RecordAck(xds::ResourceType type, TypeState& ts) {
  if (!ts.awaiting_ack) return;
  ts.awaiting_ack = false;
  auto elapsed = clock_->Now() - ts.sent_at;
  ts.last_push_to_ack_ms = std::chrono::duration<double, std::milli>(elapsed).count();
  if (observer_) observer_->OnAck(type, elapsed);
}

void StreamState::RecordNack(xds::ResourceType type, TypeState& ts, const std::string& error) {
  ts.awaiting_ack = false;
  ++ts.nacks;
  ts.nack_error = error;
  ts.nack_nonce = ts.nonce;
  ts.nack_at = clock_->WallNow();
  // The person who changed the config needs to see this, not just a counter.
  WEFT_LOG(kWarning) << "NACK from node \"" << node_.id() << "\" (stream " << options_.id
                     << ") for " << xds::ShortName(type) << " version " << ts.sent_version << ": "
                     << error;
  if (observer_) observer_->OnNack(type);
}

void StreamState::OnSnapshotChanged() { Refresh(); }

void StreamState::Refresh() {
  std::vector<std::shared_ptr<const SnapshotChange>> changes;
  bool complete = false;
  SnapshotPtr current = cache_->ForNode(node_.id(), node_.cluster(),
                                        evaluated_ ? evaluated_->serial() : 0, &changes, &complete);
  if (current == evaluated_) return;
  // Only types whose content changed need a look, and within them only the names that
  // changed: an endpoint change leaves CDS, LDS and RDS alone, and one ClusterLoadAssignment
  // is one lookup per stream. Every type that needs no evaluation is consistent with
  // evaluated_.
  for (xds::ResourceType t : xds::kAllResourceTypes) {
    TypeState& ts = types_[xds::Index(t)];
    if (!ts.requested) continue;
    if (evaluated_ != nullptr && evaluated_->version(t) == current->version(t)) continue;
    if (evaluated_ == nullptr || !complete) {
      ts.full = true;
    } else if (!ts.full) {
      for (const auto& c : changes) {
        const auto& ids = c->changed[xds::Index(t)];
        ts.pending.insert(ts.pending.end(), ids.begin(), ids.end());
      }
    }
    if (ts.full || ts.pending.size() > kMaxPending) {
      ts.full = true;
      ts.pending.clear();
    }
  }
  evaluated_ = std::move(current);
}

void StreamState::MarkDependencies(xds::ResourceType type, const Snapshot::Entry& entry,
                                   bool delta) {
  auto dep_type = DependentType(type);
  if (!dep_type || entry.dependencies.empty()) return;
  TypeState& dep = types_[xds::Index(*dep_type)];
  if (!dep.requested) return;
  for (NameId id : entry.dependencies) {
    if (!Subscribed(dep, id)) continue;  // the client will subscribe; that answer warms it
    dep.pending.push_back(id);
    // Forgetting that it was sent makes the next push carry it again, even unchanged: in SotW
    // too, where EDS and RDS responses only carry what changed.
    dep_erase_[xds::Index(*dep_type)].push_back({id, true, 0});
    if (!delta) dep.must_respond = true;
  }
}

void StreamState::FlushDependencies() {
  for (xds::ResourceType t : xds::kAllResourceTypes) {
    auto& erase = dep_erase_[xds::Index(t)];
    if (erase.empty()) continue;
    types_[xds::Index(t)].sent.Apply(&erase);
    erase.clear();
  }
}

// ---------------------------------------------------------------------------------------------
// State of the world

absl::Status StreamState::OnSotwRequest(const DiscoveryRequest& request) {
  if (request.has_node()) SeeNode(request.node());
  auto type = TypeOf(request.type_url());
  if (!type.ok()) {
    // ADS clients may ask for types we do not serve (e.g. VHDS); ignore those, as Envoy expects.
    if (!options_.fixed_type) return absl::OkStatus();
    return type.status();
  }
  TypeState& ts = types_[xds::Index(*type)];
  const std::string& nonce = request.response_nonce();
  if (!nonce.empty() && nonce != ts.nonce) {
    // A reply to a response the client has not seen the latest of: it will ask again.
    if (observer_) observer_->OnStaleNonce(*type);
    return absl::OkStatus();
  }
  if (!nonce.empty()) {
    if (request.has_error_detail()) {
      RecordNack(*type, ts, request.error_detail().message());
    } else {
      ts.acked = ts.sent;
      ts.acked_version = request.version_info();
      RecordAck(*type, ts);
    }
  }

  bool wildcard = false;
  std::vector<NameId> names;
  names.reserve(request.resource_names_size());
  bool has_star = std::find(request.resource_names().begin(), request.resource_names().end(),
                            "*") != request.resource_names().end();
  if (!has_star) {
    NameTable::Global().InternAll(request.resource_names(), &names);
  } else {
    wildcard = true;
    for (const std::string& n : request.resource_names()) {
      if (n != "*") names.push_back(NameTable::Global().Intern(n));
    }
  }
  SortUnique(&names);
  // Legacy wildcard: LDS/CDS with no names on the first request (and staying empty after).
  if (names.empty() && xds::IsFullStateType(*type) && (!ts.requested || ts.wildcard)) {
    wildcard = true;
  }
  bool added =
      (wildcard && !ts.wildcard) ||
      !std::includes(ts.names.ids().begin(), ts.names.ids().end(), names.begin(), names.end());
  // A first request for the type, or a fresh one (no nonce) on this stream, always gets an
  // answer: that is what un-sticks a cluster warming after a reconnect.
  if (!ts.requested || nonce.empty() || added) ts.must_respond = true;
  // A request without a nonce on a type already served restarts it: assume the client holds
  // nothing, so partial (RDS/EDS/SDS) responses resend everything.
  if (ts.requested && nonce.empty()) ts.sent.Clear();
  // Restating the same subscription (every SotW ACK does) changes nothing to compare.
  bool same = ts.requested && wildcard == ts.wildcard && names == ts.names.ids();
  ts.requested = true;
  ts.wildcard = wildcard;
  if (!same) {
    if (!xds::IsFullStateType(*type) && ts.sent.size() > 0) {
      // A name subscribed again may have been dropped and re-created by the client (a cluster
      // removed and added back waits for its endpoints): partial responses must resend it.
      std::vector<VersionMap::Change> resend;
      const std::vector<NameId>& before = ts.names.ids();
      for (NameId id : names) {
        if (!std::binary_search(before.begin(), before.end(), id) && ts.sent.Contains(id)) {
          resend.push_back({id, true, 0});
        }
      }
      if (!resend.empty()) ts.sent.Apply(&resend);
    }
    ts.names.Assign(std::move(names));
    ts.full = true;
  }
  ts.touched = true;
  return absl::OkStatus();
}

bool StreamState::NextSotw(WireResponse* out) {
  Refresh();
  const SnapshotPtr snap = evaluated_;
  for (xds::ResourceType type : xds::kAllResourceTypes) {
    TypeState& ts = types_[xds::Index(type)];
    if (!ts.NeedsEval()) continue;
    const bool full = ts.full;
    std::vector<NameId> pending = std::move(ts.pending);
    ts.pending.clear();
    ts.full = false;
    ts.touched = false;
    if (!ts.requested) continue;

    // Only a forced answer, a changed subscription or names a snapshot change touched can make
    // this stream differ from what it was sent: a plain ACK stops here.
    if (!ts.must_respond && !full && pending.empty()) continue;
    // What the subscription selects in this snapshot. Every stream with the same subscription
    // (the same interned name set, or wildcard) gets the same selection: build it once.
    auto select = [&]() -> std::shared_ptr<const SotwSelection> {
      return std::make_shared<const SotwSelection>(
          SelectSotw(*snap, type, ts.wildcard, ts.names.ids()));
    };
    std::shared_ptr<const SotwSelection> sel;
    if (ts.wildcard || ts.names.shared()) {
      std::shared_ptr<const void> subset;
      if (!ts.wildcard) subset = ts.names.shared();
      sel = std::static_pointer_cast<const SotwSelection>(
          snap->MemoObject(kSotwSelection, type, subset, select));
    } else {
      sel = select();
    }
    const std::vector<const Snapshot::Entry*>& relevant = sel->relevant;
    // Ids whose version differs from what the client was sent, by one merge of two id-sorted
    // arrays rather than a lookup per resource.
    std::vector<NameId> differ_ids;
    {
      const VersionMap::Item* a = sel->versions.begin();
      const VersionMap::Item* a_end = sel->versions.end();
      const VersionMap::Item* b = ts.sent.begin();
      const VersionMap::Item* b_end = ts.sent.end();
      for (; a != a_end; ++a) {
        while (b != b_end && b->id < a->id) ++b;
        if (b == b_end || b->id != a->id || b->version() != a->version()) {
          differ_ids.push_back(a->id);
        }
      }
    }
    bool changed = ts.must_respond || !differ_ids.empty();
    // A previously sent resource that is gone: for LDS/CDS (full state) and for a still
    // subscribed name, the client must hear about it.
    if (!changed && full) {
      for (const VersionMap::Item& item : ts.sent) {
        if (snap->Find(type, item.id) == nullptr && Subscribed(ts, item.id)) changed = true;
      }
    } else if (!changed) {
      SortUnique(&pending);
      for (NameId id : pending) {
        if (snap->Find(type, id) == nullptr && ts.sent.Contains(id) && Subscribed(ts, id)) {
          changed = true;
        }
      }
    }
    if (!changed) continue;

    // LDS and CDS responses are the full set; RDS, EDS and SDS may carry only what changed
    // since the last push, so one endpoint change is one ClusterLoadAssignment on the wire,
    // not all of them. The version still names the whole subscribed set.
    const bool partial = !xds::IsFullStateType(type);
    std::vector<const Snapshot::Entry*> differing;
    if (!differ_ids.empty()) {
      for (const Snapshot::Entry* e : relevant) {
        if (!std::binary_search(differ_ids.begin(), differ_ids.end(), e->id)) continue;
        MarkDependencies(type, *e, false);
        if (partial) differing.push_back(e);
      }
    }
    ts.sent = sel->versions;
    FlushDependencies();
    // A wildcard subscription holds exactly the snapshot's resources of the type: its version
    // is the snapshot's (what /debug/snapshots shows).
    ts.sent_version = ts.wildcard ? snap->version(type) : sel->version;
    ts.nonce = NextNonce();
    ts.sent_at = clock_->Now();
    ts.awaiting_ack = true;
    ts.must_respond = false;
    ++ts.pushes;
    // Everyone with this subscription (or every wildcard stream) gets the same resources from
    // this snapshot: serialize them once.
    const std::vector<const Snapshot::Entry*>& payload =
        partial && differing.size() < relevant.size() ? differing : relevant;
    if (&payload == &differing) {
      // Streams in step with each other would share these bytes, but they are a few resources.
      out->body = std::make_shared<const std::string>(SotwBody(differing));
    } else if (ts.wildcard || ts.names.shared()) {
      std::shared_ptr<const void> subset;
      if (!ts.wildcard) subset = ts.names.shared();
      out->body = snap->Memo(kSotwBody, type, subset, [&] { return SotwBody(relevant); });
    } else {
      out->body = nullptr;  // subscribed to nothing: no resources
    }
    SotwFrame(out, ts.sent_version, type, ts.nonce);
    if (observer_) observer_->OnPush(type, payload.size());
    return true;
  }
  drained_ = evaluated_;
  return false;
}

bool StreamState::NextSotw(DiscoveryResponse* out) {
  WireResponse wire;
  if (!NextSotw(&wire)) return false;
  if (!out->ParseFromString(wire.Flatten())) {
    WEFT_LOG(kError) << "NextSotw: wrote an unparsable response";
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Incremental (Delta)

absl::Status StreamState::OnDeltaRequest(const DeltaDiscoveryRequest& request) {
  if (request.has_node()) SeeNode(request.node());
  auto type = TypeOf(request.type_url());
  if (!type.ok()) {
    if (!options_.fixed_type) return absl::OkStatus();
    return type.status();
  }
  TypeState& ts = types_[xds::Index(*type)];
  const std::string& nonce = request.response_nonce();
  if (!nonce.empty() && nonce == ts.nonce) {
    if (request.has_error_detail()) {
      RecordNack(*type, ts, request.error_detail().message());
    } else if (ts.awaiting_ack) {
      std::vector<VersionMap::Change> acked;
      acked.reserve(ts.inflight.size() + ts.inflight_removed.size());
      for (const auto& [id, v] : ts.inflight) acked.push_back({id, false, v});
      for (NameId id : ts.inflight_removed) acked.push_back({id, true, 0});
      ts.acked.Apply(&acked);
      // Usually the client now holds exactly what it was sent: keep that once.
      if (ts.acked.SameContent(ts.sent)) ts.acked = ts.sent;
      std::vector<std::pair<NameId, uint64_t>>().swap(ts.inflight);
      std::vector<NameId>().swap(ts.inflight_removed);
      ts.acked_version = ts.sent_version;
      RecordAck(*type, ts);
    }
  }

  NameTable& table = NameTable::Global();
  const bool first = !ts.requested;
  std::vector<VersionMap::Change> sent_changes;
  std::vector<VersionMap::Change> acked_changes;
  std::vector<std::pair<NameId, bool>> name_ops;
  // Ids of initial_resource_versions, sorted: a reconnecting proxy lists everything it holds.
  std::vector<NameId> initial;
  if (first) {
    // Resources the client already holds from an earlier stream: skip those still current.
    std::vector<std::string_view> names;
    names.reserve(request.initial_resource_versions_size());
    for (const auto& [name, version] : request.initial_resource_versions()) names.push_back(name);
    table.InternAll(names, &initial);
    sent_changes.reserve(initial.size() + request.resource_names_subscribe_size());
    size_t i = 0;
    for (const auto& [name, version] : request.initial_resource_versions()) {
      sent_changes.push_back({initial[i++], false, ParseVersion(version)});
    }
    std::sort(initial.begin(), initial.end());
    if (request.resource_names_subscribe().empty() && xds::IsFullStateType(*type)) {
      ts.wildcard = true;
    }
  }
  std::vector<NameId> subscribe;
  table.InternAll(request.resource_names_subscribe(), &subscribe);
  for (int i = 0; i < request.resource_names_subscribe_size(); ++i) {
    const std::string& name = request.resource_names_subscribe(i);
    if (name == "*") {
      ts.wildcard = true;
      continue;
    }
    name_ops.emplace_back(subscribe[i], true);
    // A subscribe must be answered even if we think the client has it, except for what it
    // declared in initial_resource_versions on this very stream.
    if (!first || !SortedContains(initial, subscribe[i])) {
      sent_changes.push_back({subscribe[i], true, 0});
    }
  }
  for (const std::string& name : request.resource_names_unsubscribe()) {
    if (name == "*") {
      ts.wildcard = false;
      continue;
    }
    std::optional<NameId> id = table.Find(name);
    if (!id) continue;  // never interned: nothing can hold or subscribe to it
    name_ops.emplace_back(*id, false);
    if (!ts.wildcard) {
      sent_changes.push_back({*id, true, 0});
      acked_changes.push_back({*id, true, 0});
    }
  }
  if (!name_ops.empty()) {
    std::vector<NameId> names = ts.names.ids();
    ApplySetOps(&names, &name_ops);
    ts.names.Assign(std::move(names));
  }
  // A wildcard subscription gets an answer even when there is nothing to send (an empty mesh,
  // or a reconnect holding everything current): the client learns the set is empty rather
  // than waiting for an initial fetch timeout before it reports ready.
  if (first && ts.wildcard) ts.must_respond = true;
  ts.sent.Apply(&sent_changes);
  ts.acked.Apply(&acked_changes);
  if (first || request.resource_names_subscribe_size() > 0 ||
      request.resource_names_unsubscribe_size() > 0) {
    ts.full = true;
  }
  ts.requested = true;
  ts.touched = true;
  return absl::OkStatus();
}

bool StreamState::NextDelta(WireResponse* out) {
  Refresh();
  const SnapshotPtr snap = evaluated_;
  const TypeState& lds = types_[xds::Index(xds::ResourceType::kListener)];
  const TypeState& rds = types_[xds::Index(xds::ResourceType::kRoute)];
  // Two passes: removals deferred behind LDS/RDS in the first go out in the second.
  for (int pass = 0; pass < 2; ++pass) {
    for (xds::ResourceType type : xds::kAllResourceTypes) {
      TypeState& ts = types_[xds::Index(type)];
      if (!ts.NeedsEval()) continue;
      if (!ts.requested) {
        ts.full = ts.touched = false;
        ts.pending.clear();
        continue;
      }

      std::vector<const Snapshot::Entry*> updates;
      std::vector<NameId> removals;
      // Whether updates are every resource the subscription selects: such a body is the same
      // for every stream with this subscription (a fresh stream, a resync) and is shared.
      bool all_selected = false;
      auto consider = [&](const Snapshot::Entry& e) {
        auto v = ts.sent.Find(e.id);
        if (!v || *v != e.resource->version) updates.push_back(&e);
      };
      if (ts.full) {
        size_t selected = 0;
        if (ts.wildcard) {
          selected = snap->size(type);
          snap->ForEach(type, consider);
        } else {
          for (NameId id : ts.names.ids()) {
            if (const Snapshot::Entry* e = snap->Find(type, id)) {
              ++selected;
              consider(*e);
            }
          }
        }
        all_selected = !updates.empty() && updates.size() == selected;
        for (const VersionMap::Item& item : ts.sent) {
          if (snap->Find(type, item.id) == nullptr || !Subscribed(ts, item.id)) {
            removals.push_back(item.id);
          }
        }
      } else {
        SortUnique(&ts.pending);
        for (NameId id : ts.pending) {
          const Snapshot::Entry* e = snap->Find(type, id);
          bool subscribed = Subscribed(ts, id);
          if (e != nullptr && subscribed) consider(*e);
          if ((e == nullptr || !subscribed) && ts.sent.Contains(id)) removals.push_back(id);
        }
      }
      if (!(ts.full && ts.wildcard)) std::sort(updates.begin(), updates.end(), ByName);
      SortIdsByName(&removals);
      // Make-before-break: clusters and endpoints that went away are removed only after the
      // listeners and routes that may still point at them have been updated.
      bool defer_removals =
          (type == xds::ResourceType::kCluster || type == xds::ResourceType::kEndpoint) &&
          (lds.NeedsEval() || rds.NeedsEval());
      const bool send_removals = !defer_removals && !removals.empty();
      ts.full = ts.touched = false;
      ts.pending.clear();
      if (defer_removals && !removals.empty()) ts.pending = removals;
      const bool must_respond = ts.must_respond;
      ts.must_respond = false;
      if (updates.empty() && !send_removals && !must_respond) continue;

      std::vector<VersionMap::Change> sent_changes;
      sent_changes.reserve(updates.size() + (send_removals ? removals.size() : 0));
      std::vector<std::pair<NameId, uint64_t>>().swap(ts.inflight);
      std::vector<NameId>().swap(ts.inflight_removed);
      ts.inflight.reserve(updates.size());
      for (const Snapshot::Entry* e : updates) {
        sent_changes.push_back({e->id, false, e->resource->version});
        ts.inflight.emplace_back(e->id, e->resource->version);
        MarkDependencies(type, *e, true);
      }
      if (send_removals) {
        for (NameId id : removals) sent_changes.push_back({id, true, 0});
        ts.inflight_removed = removals;
      } else {
        removals.clear();
      }
      ts.sent.Apply(&sent_changes);
      FlushDependencies();
      ts.nonce = NextNonce();
      ts.sent_version = snap->version(type);
      ts.sent_at = clock_->Now();
      ts.awaiting_ack = true;
      ++ts.pushes;
      if (all_selected && (ts.wildcard || ts.names.shared())) {
        std::shared_ptr<const void> subset;
        if (!ts.wildcard) subset = ts.names.shared();
        out->body = snap->Memo(kDeltaBody, type, subset, [&] { return DeltaBody(updates); });
      } else {
        out->body = std::make_shared<const std::string>(DeltaBody(updates));
      }
      DeltaFrame(out, ts.sent_version, type, removals, ts.nonce);
      if (observer_) observer_->OnPush(type, updates.size());
      return true;
    }
  }
  drained_ = evaluated_;
  return false;
}

bool StreamState::NextDelta(DeltaDiscoveryResponse* out) {
  WireResponse wire;
  if (!NextDelta(&wire)) return false;
  if (!out->ParseFromString(wire.Flatten())) {
    WEFT_LOG(kError) << "NextDelta: wrote an unparsable response";
  }
  return true;
}

// ---------------------------------------------------------------------------------------------

bool StreamState::InSync() const {
  if (drained_ == nullptr || drained_ != CurrentSnapshot()) return false;
  for (const TypeState& ts : types_) {
    if (!ts.requested) continue;
    if (ts.NeedsEval() || ts.awaiting_ack || (ts.nacks > 0 && ts.nack_nonce == ts.nonce)) {
      return false;
    }
  }
  return true;
}

StreamSummary StreamState::Summary() const {
  StreamSummary out;
  out.stream_id = options_.id;
  out.node_id = node_.id();
  out.cluster = node_.cluster();
  out.mode = options_.mode == Mode::kSotw ? "sotw" : "delta";
  out.peer = options_.peer;
  for (xds::ResourceType type : xds::kAllResourceTypes) {
    const TypeState& ts = types_[xds::Index(type)];
    if (!ts.requested) continue;
    StreamSummary::Type t;
    t.type = type;
    t.sent_version = ts.sent_version;
    t.acked_version = ts.acked_version;
    t.awaiting_ack = ts.awaiting_ack;
    if (ts.nacks > 0 && ts.nack_nonce == ts.nonce) t.nack_error = ts.nack_error;
    t.last_push_to_ack_ms = ts.last_push_to_ack_ms;
    t.resources = ts.sent.size();
    for (const VersionMap::Item& item : ts.sent) t.sent_names.push_back(NameOf(item.id));
    std::sort(t.sent_names.begin(), t.sent_names.end());
    out.types.push_back(std::move(t));
  }
  out.in_sync = InSync();
  return out;
}

void StreamState::AppendJson(std::string* out) const {
  absl::StrAppend(out, "{\"stream_id\":", options_.id, ",\"node_id\":", JsonString(node_.id()),
                  ",\"cluster\":", JsonString(node_.cluster()), ",\"mode\":\"",
                  options_.mode == Mode::kSotw ? "sotw" : "delta",
                  "\",\"service\":", JsonString(options_.service),
                  ",\"peer\":", JsonString(options_.peer),
                  ",\"connected_at\":", JsonString(Rfc3339(connected_at_)),
                  ",\"user_agent\":", JsonString(node_.user_agent_name()),
                  ",\"in_sync\":", InSync() ? "true" : "false", ",\"types\":{");
  bool first_type = true;
  for (xds::ResourceType type : xds::kAllResourceTypes) {
    const TypeState& ts = types_[xds::Index(type)];
    if (!ts.requested) continue;
    if (!first_type) out->push_back(',');
    first_type = false;
    absl::StrAppend(out, JsonString(xds::ShortName(type)), ":{\"subscribed\":[");
    std::vector<std::string> names;
    names.reserve(ts.names.size() + 1);
    for (NameId id : ts.names.ids()) names.push_back(NameOf(id));
    if (ts.wildcard) names.insert(names.begin(), "*");
    std::sort(names.begin() + (ts.wildcard ? 1 : 0), names.end());
    for (size_t i = 0; i < names.size(); ++i) {
      if (i > 0) out->push_back(',');
      AppendJsonString(names[i], out);
    }
    absl::StrAppend(out, "],\"sent_version\":", JsonString(ts.sent_version),
                    ",\"sent_nonce\":", JsonString(ts.nonce),
                    ",\"acked_version\":", JsonString(ts.acked_version),
                    ",\"awaiting_ack\":", ts.awaiting_ack ? "true" : "false",
                    ",\"pushes\":", ts.pushes, ",\"nacks\":", ts.nacks,
                    ",\"last_push_to_ack_ms\":");
    if (ts.last_push_to_ack_ms >= 0) {
      absl::StrAppendFormat(out, "%.3f", ts.last_push_to_ack_ms);
    } else {
      out->append("null");
    }
    out->append(",\"nack\":");
    if (ts.nacks > 0) {
      absl::StrAppend(out, "{\"error\":", JsonString(ts.nack_error),
                      ",\"nonce\":", JsonString(ts.nack_nonce),
                      ",\"at\":", JsonString(Rfc3339(ts.nack_at)),
                      ",\"current\":", ts.nack_nonce == ts.nonce ? "true" : "false", "}");
    } else {
      out->append("null");
    }
    out->append(",\"resources\":{");
    std::vector<NameId> ids;
    ids.reserve(ts.sent.size());
    for (const VersionMap::Item& item : ts.sent) ids.push_back(item.id);
    for (const VersionMap::Item& item : ts.acked) {
      if (!ts.sent.Contains(item.id)) ids.push_back(item.id);
    }
    SortIdsByName(&ids);
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i > 0) out->push_back(',');
      AppendJsonString(NameOf(ids[i]), out);
      out->append(":{\"sent\":");
      auto s = ts.sent.Find(ids[i]);
      out->append(s ? JsonString(HexVersion(*s)) : "null");
      out->append(",\"acked\":");
      auto a = ts.acked.Find(ids[i]);
      out->append(a ? JsonString(HexVersion(*a)) : "null");
      out->push_back('}');
    }
    out->append("}}");
  }
  out->append("}}");
}

}  // namespace weft::cp
