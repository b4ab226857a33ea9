#include "data-plane/xds/xds_client.h"

#include <malloc.h>

#include <chrono>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "common/strings.h"
#include "data-plane/grpc_client/stream.h"
#include "envoy/service/discovery/v3/discovery.pb.h"

namespace weft::proxy {

using envoy::service::discovery::v3::DeltaDiscoveryRequest;
using envoy::service::discovery::v3::DeltaDiscoveryResponse;
using envoy::service::discovery::v3::DiscoveryRequest;
using envoy::service::discovery::v3::DiscoveryResponse;
using xds::ResourceType;

namespace {

std::chrono::milliseconds ToMs(const google::protobuf::Duration& d,
                               std::chrono::milliseconds fallback) {
  if (d.seconds() == 0 && d.nanos() == 0) return fallback;
  return std::chrono::milliseconds(d.seconds() * 1000 + d.nanos() / 1000000);
}

constexpr char kSotwMethod[] =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
constexpr char kDeltaMethod[] =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";

// gRPC's INVALID_ARGUMENT, the code Envoy puts in a NACK's error_detail.
constexpr int kInvalidArgument = 3;

grpc_client::StreamOptions StreamOptions(const bootstrap::v1::Xds& config) {
  grpc_client::StreamOptions options;
  options.user_agent = "weft-proxy";
  if (config.max_message_bytes() != 0) options.max_message_bytes = config.max_message_bytes();
  return options;
}

// Which of the dependent types the proxy subscribes to by name.
constexpr ResourceType kNamedTypes[] = {ResourceType::kEndpoint, ResourceType::kRoute};

}  // namespace

XdsClient::XdsClient(envoy::config::core::v3::Node node, bootstrap::v1::Xds config,
                     OnUpdate on_update)
    : node_(std::move(node)), config_(std::move(config)), on_update_(std::move(on_update)) {
  node_.set_user_agent_name("weft-proxy");
}

XdsClient::~XdsClient() {
  stop_ = true;
  {
    std::lock_guard lock(mu_);
    if (stream_ != nullptr) stream_->Cancel();
  }
  if (thread_.joinable()) thread_.join();
}

void XdsClient::Start() {
  thread_ = std::thread([this] { Run(); });
}

std::string XdsClient::ConfigDumpJson() const {
  std::lock_guard lock(mu_);
  return state_.ConfigDumpJson();
}

std::string XdsClient::last_rejection() const {
  std::lock_guard lock(mu_);
  return last_rejection_;
}

void XdsClient::SleepBackoff(int attempt) {
  auto initial = ToMs(config_.initial_backoff(), std::chrono::milliseconds(250));
  auto max = ToMs(config_.max_backoff(), std::chrono::seconds(30));
  auto base = initial * (1LL << std::min(attempt, 16));
  if (base > max) base = max;
  // Jitter keeps a fleet of proxies from reconnecting in lockstep after a control-plane restart.
  static thread_local std::mt19937_64 rng(std::random_device{}());
  std::uniform_real_distribution<double> jitter(0.5, 1.5);
  auto wait = std::chrono::milliseconds(static_cast<int64_t>(base.count() * jitter(rng)));
  auto deadline = std::chrono::steady_clock::now() + wait;
  while (!stop_ && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

bool XdsClient::OpenStream(grpc_client::Stream* stream, const std::string& server,
                           const char* method) {
  {
    std::lock_guard lock(mu_);
    if (stop_) return false;
    stream_ = stream;  // from here on the destructor can cancel it
  }
  absl::Status s = stream->Start(server, method);
  if (s.ok()) return true;
  EndStream(server, s, false);
  return false;
}

void XdsClient::EndStream(const std::string& server, const absl::Status& status,
                          bool was_connected) {
  if (status.code() == absl::StatusCode::kResourceExhausted) ++stats_.oversized_responses;
  if (was_connected) {
    ++stats_.disconnects;
    WEFT_LOG(kWarning) << "xds: stream to " << server << " ended: " << status.message()
                       << " (keeping last good config)";
  } else if (!stop_) {
    WEFT_LOG(kWarning) << "xds: cannot open a stream to " << server << ": " << status.message();
  }
  std::lock_guard lock(mu_);
  stream_ = nullptr;
}

absl::Status XdsClient::Apply(ResourceType type, const std::string& what,
                              const std::function<absl::Status(ConfigState&)>& apply) {
  absl::Status s;
  bool partly = false;
  {
    std::lock_guard lock(mu_);
    // Applied to a copy (maps of shared pointers: cheap) so a rejection leaves state_ whole.
    ConfigState candidate = state_;
    s = apply(candidate);
    ServeResult served;
    if (s.ok() && on_update_) {
      served = on_update_(candidate);
      s = served.status;
    }
    if (s.ok() && !served.unserved_listeners.empty()) {
      // The rest is served: commit it, with these listeners as they were, and NACK naming them.
      // The protocol ACKs or NACKs a response as a whole; what a Delta stream holds per resource
      // (its initial_resource_versions after a reconnect) shows the served versions.
      std::vector<std::string> why;
      for (const auto& [name, reason] : served.unserved_listeners) {
        candidate.Restore(ResourceType::kListener, name, state_);
        candidate.SetUnserved(name, reason);
        why.push_back(reason);
      }
      s = absl::InvalidArgumentError(absl::StrJoin(why, "; "));
      partly = true;
    }
    if (s.ok() || partly) state_ = std::move(candidate);
    if (!s.ok()) {
      last_rejection_ = absl::StrCat(Sv(xds::ShortName(type)), " ", what, ": ", s.message());
    }
  }
  if (s.ok()) {
    ++stats_.updates_accepted;
  } else {
    ++stats_.updates_rejected;
    WEFT_LOG(kWarning) << "xds: rejected " << xds::ShortName(type) << " " << what
                       << (partly ? " in part (the rest is served)" : "") << ": " << s.message();
  }
  return s;
}

void XdsClient::MaybeInitialized(bool clusters_and_listeners_answered) {
  if (!clusters_and_listeners_answered) return;
  std::lock_guard lock(mu_);
  if (state_.Warming().empty()) initialized_ = true;
}

void XdsClient::Run() {
  if (config_.servers().empty()) return;
  int attempt = 0;
  size_t next_server = 0;
  while (!stop_) {
    const std::string& server = config_.servers(next_server++ % config_.servers_size());
    uint64_t accepted_before = stats_.updates_accepted + stats_.updates_rejected;
    if (config_.mode() == bootstrap::v1::Xds::SOTW) {
      RunSotw(server);
    } else {
      RunDelta(server);
    }
    stats_.connected = false;
    if (stop_) break;
    // A stream that got answers was healthy: start the backoff over.
    attempt =
        (stats_.updates_accepted + stats_.updates_rejected > accepted_before) ? 0 : attempt + 1;
    SleepBackoff(attempt);
  }
}

namespace {

// Decoding, validating and compiling an update allocates several times the size of what is
// kept, interleaved with what is kept. Once the response itself is gone, hand the freed pages
// back to the kernel instead of leaving them resident until a later update reuses them.
template <typename Response>
void ReleaseUpdate(Response* resp) {
  *resp = Response();
  malloc_trim(0);
}

}  // namespace

void XdsClient::RunSotw(const std::string& server) {
  grpc_client::Stream stream(StreamOptions(config_));
  if (!OpenStream(&stream, server, kSotwMethod)) return;
  struct Track {
    std::string version;
    std::string nonce;
    std::set<std::string> names;
    bool requested = false;
    bool answered = false;
  };
  std::array<Track, xds::kResourceTypeCount> track;
  bool node_sent = false;
  auto send = [&](ResourceType t, const std::string* error) {
    Track& tr = track[xds::Index(t)];
    DiscoveryRequest req;
    if (!node_sent) *req.mutable_node() = node_;
    node_sent = true;
    req.set_type_url(std::string(xds::TypeUrl(t)));
    req.set_version_info(tr.version);
    req.set_response_nonce(tr.nonce);
    for (const std::string& n : tr.names) req.add_resource_names(n);
    if (error != nullptr) {
      req.mutable_error_detail()->set_code(kInvalidArgument);
      req.mutable_error_detail()->set_message(*error);
    }
    tr.requested = true;
    return stream.Write(req);
  };
  // Named subscriptions follow what the accepted clusters and listeners need.
  auto resubscribe = [&]() {
    for (ResourceType t : kNamedTypes) {
      std::set<std::string> wanted;
      {
        std::lock_guard lock(mu_);
        wanted = state_.Wanted(t);
      }
      Track& tr = track[xds::Index(t)];
      if (wanted == tr.names && (tr.requested || wanted.empty())) continue;
      tr.names = std::move(wanted);
      if (!send(t, nullptr)) return false;
    }
    return true;
  };
  if (!send(ResourceType::kCluster, nullptr) || !send(ResourceType::kListener, nullptr) ||
      !resubscribe()) {
    EndStream(server, stream.Finish(), false);
    return;
  }
  ++stats_.connects;
  stats_.connected = true;
  WEFT_LOG(kInfo) << "xds: connected to " << server << " (SotW)";
  // A fresh message per read: a reused one keeps its cleared resources and their buffers, i.e.
  // the largest response ever received would stay allocated for the stream's lifetime.
  for (DiscoveryResponse resp; !stop_ && stream.Read(&resp); resp = DiscoveryResponse()) {
    auto type = xds::ResourceTypeFromUrl(resp.type_url());
    if (!type) continue;
    Track& tr = track[xds::Index(*type)];
    absl::Status s =
        Apply(*type, absl::StrCat("version ", resp.version_info()),
              [&](ConfigState& state) { return state.ApplySotw(*type, resp.resources()); });
    tr.nonce = resp.nonce();
    tr.answered = true;
    std::string error(s.message());
    if (s.ok()) tr.version = resp.version_info();
    if (!send(*type, s.ok() ? nullptr : &error) || !resubscribe()) break;
    MaybeInitialized(track[xds::Index(ResourceType::kCluster)].answered &&
                     track[xds::Index(ResourceType::kListener)].answered);
    if (s.ok()) ReleaseUpdate(&resp);
  }
  EndStream(server, stream.Finish(), true);
}

void XdsClient::RunDelta(const std::string& server) {
  grpc_client::Stream stream(StreamOptions(config_));
  if (!OpenStream(&stream, server, kDeltaMethod)) return;
  std::array<std::set<std::string>, xds::kResourceTypeCount> subscribed;
  std::array<bool, xds::kResourceTypeCount> answered{};
  bool node_sent = false;
  auto base_request = [&](ResourceType t) {
    DeltaDiscoveryRequest req;
    if (!node_sent) *req.mutable_node() = node_;
    node_sent = true;
    req.set_type_url(std::string(xds::TypeUrl(t)));
    return req;
  };
  // What we already hold, so a reconnect only transfers what changed meanwhile.
  auto initial_versions = [&](ResourceType t, DeltaDiscoveryRequest* req) {
    std::lock_guard lock(mu_);
    for (const auto& [name, r] : state_.resources(t)) {
      (*req->mutable_initial_resource_versions())[name] = r->version_text;
    }
  };
  auto resubscribe = [&]() {
    for (ResourceType t : kNamedTypes) {
      std::set<std::string> wanted;
      {
        std::lock_guard lock(mu_);
        wanted = state_.Wanted(t);
      }
      std::set<std::string>& have = subscribed[xds::Index(t)];
      if (wanted == have) continue;
      DeltaDiscoveryRequest req = base_request(t);
      for (const std::string& n : wanted) {
        if (!have.contains(n)) req.add_resource_names_subscribe(n);
      }
      for (const std::string& n : have) {
        if (!wanted.contains(n)) req.add_resource_names_unsubscribe(n);
      }
      have = std::move(wanted);
      if (!stream.Write(req)) return false;
    }
    return true;
  };
  bool ok = true;
  for (ResourceType t : {ResourceType::kCluster, ResourceType::kListener}) {
    DeltaDiscoveryRequest req = base_request(t);
    initial_versions(t, &req);
    ok = ok && stream.Write(req);
  }
  for (ResourceType t : kNamedTypes) {
    std::set<std::string> wanted;
    {
      std::lock_guard lock(mu_);
      wanted = state_.Wanted(t);
    }
    if (wanted.empty()) continue;
    DeltaDiscoveryRequest req = base_request(t);
    for (const std::string& n : wanted) req.add_resource_names_subscribe(n);
    initial_versions(t, &req);
    subscribed[xds::Index(t)] = std::move(wanted);
    ok = ok && stream.Write(req);
  }
  if (ok) {
    ++stats_.connects;
    stats_.connected = true;
    WEFT_LOG(kInfo) << "xds: connected to " << server << " (Delta)";
    // Fresh per read, as in RunSotw.
    for (DeltaDiscoveryResponse resp; !stop_ && stream.Read(&resp);
         resp = DeltaDiscoveryResponse()) {
      auto type = xds::ResourceTypeFromUrl(resp.type_url());
      if (!type) continue;
      absl::Status s = Apply(*type, absl::StrCat("nonce ", resp.nonce()), [&](ConfigState& state) {
        return state.ApplyDelta(*type, resp.resources(), resp.removed_resources());
      });
      answered[xds::Index(*type)] = true;
      DeltaDiscoveryRequest ack = base_request(*type);
      ack.set_response_nonce(resp.nonce());
      if (!s.ok()) {
        ack.mutable_error_detail()->set_code(kInvalidArgument);
        ack.mutable_error_detail()->set_message(std::string(s.message()));
      }
      if (!stream.Write(ack) || !resubscribe()) break;
      MaybeInitialized(answered[xds::Index(ResourceType::kCluster)] &&
                       answered[xds::Index(ResourceType::kListener)]);
      if (s.ok()) ReleaseUpdate(&resp);
    }
  }
  EndStream(server, stream.Finish(), ok);
}

}  // namespace weft::proxy
