#include "tests/unit/stream_state_reference.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "common/json.h"
#include "common/log.h"
#include "common/proto_util.h"
#include "common/strings.h"

namespace weft::cp::reference {
namespace {

using envoy::service::discovery::v3::DeltaDiscoveryRequest;
using envoy::service::discovery::v3::DeltaDiscoveryResponse;
using envoy::service::discovery::v3::DiscoveryRequest;
using envoy::service::discovery::v3::DiscoveryResponse;

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

}  // namespace

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

bool StreamState::Subscribed(const TypeState& ts, const std::string& name) const {
  return ts.wildcard || ts.names.contains(name);
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
  SnapshotPtr current = CurrentSnapshot();
  if (current == evaluated_) return;
  // Only types whose content changed need a look: an endpoint change leaves CDS, LDS and RDS
  // alone. Every type that is not dirty is consistent with evaluated_.
  for (xds::ResourceType t : xds::kAllResourceTypes) {
    TypeState& ts = types_[xds::Index(t)];
    if (ts.requested && (evaluated_ == nullptr || evaluated_->version(t) != current->version(t))) {
      ts.dirty = true;
    }
  }
  evaluated_ = std::move(current);
}

void StreamState::MarkDependencies(const xds::Resource& resource, bool delta) {
  auto dep_type = DependentType(resource.type);
  if (!dep_type || resource.dependencies.empty()) return;
  TypeState& dep = types_[xds::Index(*dep_type)];
  if (!dep.requested) return;
  for (const std::string& name : resource.dependencies) {
    if (!Subscribed(dep, name)) continue;  // the client will subscribe; that answer warms it
    dep.dirty = true;
    dep.sent.erase(name);
    if (!delta) dep.must_respond = true;
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
  absl::flat_hash_set<std::string> names;
  for (const std::string& n : request.resource_names()) {
    if (n == "*") {
      wildcard = true;
    } else {
      names.insert(n);
    }
  }
  // Legacy wildcard: LDS/CDS with no names on the first request (and staying empty after).
  if (names.empty() && xds::IsFullStateType(*type) && (!ts.requested || ts.wildcard)) {
    wildcard = true;
  }
  bool added = wildcard && !ts.wildcard;
  for (const std::string& n : names) {
    if (!ts.names.contains(n)) added = true;
  }
  // A first request for the type, or a fresh one (no nonce) on this stream, always gets an
  // answer: that is what un-sticks a cluster warming after a reconnect.
  if (!ts.requested || nonce.empty() || added) ts.must_respond = true;
  if (ts.requested && nonce.empty()) ts.sent.clear();
  if (!xds::IsFullStateType(*type)) {
    for (const std::string& n : names) {
      if (!ts.names.contains(n)) ts.sent.erase(n);
    }
  }
  ts.requested = true;
  ts.wildcard = wildcard;
  ts.names = std::move(names);
  ts.dirty = true;
  return absl::OkStatus();
}

bool StreamState::NextSotw(DiscoveryResponse* out) {
  Refresh();
  const SnapshotPtr snap = evaluated_;
  for (xds::ResourceType type : xds::kAllResourceTypes) {
    TypeState& ts = types_[xds::Index(type)];
    if (!ts.dirty) continue;
    ts.dirty = false;
    if (!ts.requested) continue;

    std::vector<const xds::Resource*> relevant;
    if (ts.wildcard) {
      for (const auto& [name, r] : snap->resources(type)) relevant.push_back(r.get());
    } else {
      for (const std::string& name : ts.names) {
        if (const xds::Resource* r = snap->Find(type, name)) relevant.push_back(r);
      }
      std::sort(relevant.begin(), relevant.end(),
                [](const xds::Resource* a, const xds::Resource* b) { return a->name < b->name; });
    }
    bool changed = ts.must_respond;
    for (const xds::Resource* r : relevant) {
      auto it = ts.sent.find(r->name);
      if (it == ts.sent.end() || it->second != r->version) changed = true;
    }
    // A previously sent resource that is gone: for LDS/CDS (full state) and for a still
    // subscribed name, the client must hear about it.
    if (!changed) {
      for (const auto& [name, v] : ts.sent) {
        if (snap->Find(type, name) == nullptr && Subscribed(ts, name)) changed = true;
        if (ts.wildcard && snap->Find(type, name) == nullptr) changed = true;
      }
    }
    if (!changed) continue;

    out->Clear();
    std::string acc;
    absl::flat_hash_map<std::string, uint64_t> sent;
    sent.reserve(relevant.size());
    std::vector<const xds::Resource*> differing;
    for (const xds::Resource* r : relevant) {
      absl::StrAppend(&acc, r->name, "\n", r->version_text, "\n");
      auto prev = ts.sent.find(r->name);
      if (prev == ts.sent.end() || prev->second != r->version) {
        MarkDependencies(*r, false);
        differing.push_back(r);
      }
      sent.emplace(r->name, r->version);
    }
    // RDS, EDS and SDS responses carry only what changed; LDS and CDS the full set.
    const auto& payload = xds::IsFullStateType(type) ? relevant : differing;
    for (const xds::Resource* r : payload) *out->add_resources() = r->body;
    ts.sent = std::move(sent);
    // A wildcard names the snapshot's version of the type; a named subscription the hash of
    // what it selects.
    ts.sent_version = ts.wildcard ? snap->version(type) : HexVersion(StableHash64(acc));
    ts.nonce = NextNonce();
    ts.sent_at = clock_->Now();
    ts.awaiting_ack = true;
    ts.must_respond = false;
    ++ts.pushes;
    out->set_version_info(ts.sent_version);
    out->set_type_url(std::string(xds::TypeUrl(type)));
    out->set_nonce(ts.nonce);
    out->mutable_control_plane()->set_identifier("weft-cp");
    if (observer_) observer_->OnPush(type, payload.size());
    return true;
  }
  drained_ = evaluated_;
  return false;
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
      for (auto& [name, v] : ts.inflight) ts.acked[name] = v;
      for (const std::string& name : ts.inflight_removed) ts.acked.erase(name);
      ts.inflight.clear();
      ts.inflight_removed.clear();
      ts.acked_version = ts.sent_version;
      RecordAck(*type, ts);
    }
  }

  const bool first = !ts.requested;
  if (first) {
    // Resources the client already holds from an earlier stream: skip those still current.
    for (const auto& [name, version] : request.initial_resource_versions()) {
      ts.sent[name] = ParseVersion(version);
    }
    if (request.resource_names_subscribe().empty() && xds::IsFullStateType(*type)) {
      ts.wildcard = true;
    }
  }
  for (const std::string& name : request.resource_names_subscribe()) {
    if (name == "*") {
      ts.wildcard = true;
      continue;
    }
    ts.names.insert(name);
    // A subscribe must be answered even if we think the client has it, except for what it
    // declared in initial_resource_versions on this very stream.
    if (!first || !request.initial_resource_versions().contains(name)) ts.sent.erase(name);
  }
  for (const std::string& name : request.resource_names_unsubscribe()) {
    if (name == "*") {
      ts.wildcard = false;
      continue;
    }
    ts.names.erase(name);
    if (!ts.wildcard) {
      ts.sent.erase(name);
      ts.acked.erase(name);
    }
  }
  // The first wildcard request is answered even with nothing to send.
  if (first && ts.wildcard) ts.must_respond = true;
  ts.requested = true;
  ts.dirty = true;
  return absl::OkStatus();
}

bool StreamState::NextDelta(DeltaDiscoveryResponse* out) {
  Refresh();
  const SnapshotPtr snap = evaluated_;
  // Two passes: removals deferred behind LDS/RDS in the first go out in the second.
  for (int pass = 0; pass < 2; ++pass) {
    for (xds::ResourceType type : xds::kAllResourceTypes) {
      TypeState& ts = types_[xds::Index(type)];
      if (!ts.dirty) continue;
      if (!ts.requested) {
        ts.dirty = false;
        continue;
      }

      std::vector<const xds::Resource*> updates;
      auto consider = [&](const xds::Resource& r) {
        auto it = ts.sent.find(r.name);
        if (it == ts.sent.end() || it->second != r.version) updates.push_back(&r);
      };
      if (ts.wildcard) {
        for (const auto& [name, r] : snap->resources(type)) consider(*r);
      } else {
        for (const std::string& name : ts.names) {
          if (const xds::Resource* r = snap->Find(type, name)) consider(*r);
        }
        std::sort(updates.begin(), updates.end(),
                  [](const xds::Resource* a, const xds::Resource* b) { return a->name < b->name; });
      }
      std::vector<std::string> removals;
      for (const auto& [name, v] : ts.sent) {
        if (snap->Find(type, name) == nullptr || !Subscribed(ts, name)) removals.push_back(name);
      }
      std::sort(removals.begin(), removals.end());
      // Make-before-break: clusters and endpoints that went away are removed only after the
      // listeners and routes that may still point at them have been updated.
      bool defer_removals =
          (type == xds::ResourceType::kCluster || type == xds::ResourceType::kEndpoint) &&
          (types_[xds::Index(xds::ResourceType::kListener)].dirty ||
           types_[xds::Index(xds::ResourceType::kRoute)].dirty);
      const bool send_removals = !defer_removals && !removals.empty();
      ts.dirty = defer_removals && !removals.empty();
      const bool must_respond = ts.must_respond;
      ts.must_respond = false;
      if (updates.empty() && !send_removals && !must_respond) continue;

      out->Clear();
      ts.inflight.clear();
      ts.inflight_removed.clear();
      for (const xds::Resource* r : updates) {
        auto* res = out->add_resources();
        res->set_name(r->name);
        res->set_version(r->version_text);
        *res->mutable_resource() = r->body;
        ts.sent[r->name] = r->version;
        ts.inflight.emplace_back(r->name, r->version);
        MarkDependencies(*r, true);
      }
      if (send_removals) {
        for (const std::string& name : removals) {
          out->add_removed_resources(name);
          ts.sent.erase(name);
          ts.inflight_removed.push_back(name);
        }
      }
      ts.nonce = NextNonce();
      ts.sent_version = snap->version(type);
      ts.sent_at = clock_->Now();
      ts.awaiting_ack = true;
      ++ts.pushes;
      out->set_system_version_info(ts.sent_version);
      out->set_type_url(std::string(xds::TypeUrl(type)));
      out->set_nonce(ts.nonce);
      out->mutable_control_plane()->set_identifier("weft-cp");
      if (observer_) observer_->OnPush(type, updates.size());
      return true;
    }
  }
  drained_ = evaluated_;
  return false;
}

// ---------------------------------------------------------------------------------------------

bool StreamState::InSync() const {
  if (drained_ == nullptr || drained_ != CurrentSnapshot()) return false;
  for (const TypeState& ts : types_) {
    if (!ts.requested) continue;
    if (ts.dirty || ts.awaiting_ack || (ts.nacks > 0 && ts.nack_nonce == ts.nonce)) return false;
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
    for (const auto& [name, v] : ts.sent) t.sent_names.push_back(name);
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
    std::vector<std::string> names(ts.names.begin(), ts.names.end());
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
    std::vector<std::string> rnames;
    rnames.reserve(ts.sent.size());
    for (const auto& [name, v] : ts.sent) rnames.push_back(name);
    for (const auto& [name, v] : ts.acked) {
      if (!ts.sent.contains(name)) rnames.push_back(name);
    }
    std::sort(rnames.begin(), rnames.end());
    for (size_t i = 0; i < rnames.size(); ++i) {
      if (i > 0) out->push_back(',');
      AppendJsonString(rnames[i], out);
      out->append(":{\"sent\":");
      auto s = ts.sent.find(rnames[i]);
      out->append(s == ts.sent.end() ? "null" : JsonString(HexVersion(s->second)));
      out->append(",\"acked\":");
      auto a = ts.acked.find(rnames[i]);
      out->append(a == ts.acked.end() ? "null" : JsonString(HexVersion(a->second)));
      out->push_back('}');
    }
    out->append("}}");
  }
  out->append("}}");
}

}  // namespace weft::cp::reference
