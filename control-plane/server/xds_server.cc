#include "control-plane/server/xds_server.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <mutex>

#include "absl/container/flat_hash_map.h"
#include "common/log.h"
#include "control-plane/cache/snapshot_cache.h"
#include "control-plane/server/stream_state.h"
#include "envoy/service/cluster/v3/cds.grpc.pb.h"
#include "envoy/service/discovery/v3/ads.grpc.pb.h"
#include "envoy/service/endpoint/v3/eds.grpc.pb.h"
#include "envoy/service/listener/v3/lds.grpc.pb.h"
#include "envoy/service/route/v3/rds.grpc.pb.h"
#include "envoy/service/secret/v3/sds.grpc.pb.h"

namespace weft::cp {

using envoy::service::discovery::v3::DeltaDiscoveryRequest;
using envoy::service::discovery::v3::DeltaDiscoveryResponse;
using envoy::service::discovery::v3::DiscoveryRequest;
using envoy::service::discovery::v3::DiscoveryResponse;

// What the server needs from any stream, whatever its message types.
class StreamBase {
 public:
  virtual ~StreamBase() = default;
  virtual void Notify() = 0;
  virtual void AppendJson(std::string* out) = 0;
  virtual StreamSummary Summary() = 0;
};

class XdsServer::Impl {
 public:
  Impl(SnapshotCache* cache, XdsObserver* observer) : cache_(cache), observer_(observer) {}

  grpc::ServerBidiReactor<DiscoveryRequest, DiscoveryResponse>* NewSotw(
      grpc::CallbackServerContext* ctx, std::optional<xds::ResourceType> type, std::string service);
  grpc::ServerBidiReactor<DeltaDiscoveryRequest, DeltaDiscoveryResponse>* NewDelta(
      grpc::CallbackServerContext* ctx, std::optional<xds::ResourceType> type, std::string service);
  grpc::ServerUnaryReactor* Fetch(grpc::CallbackServerContext* ctx, const DiscoveryRequest* req,
                                  DiscoveryResponse* resp, xds::ResourceType type);

  void Add(uint64_t id, StreamBase* s) {
    std::lock_guard lock(mu_);
    streams_.emplace(id, s);
  }
  void Remove(uint64_t id) {
    std::lock_guard lock(mu_);
    streams_.erase(id);
  }
  void NotifyAll() {
    // Holding mu_ keeps every stream alive while it is notified (Remove() waits for us).
    std::lock_guard lock(mu_);
    for (auto& [id, s] : streams_) s->Notify();
  }
  size_t size() const {
    std::lock_guard lock(mu_);
    return streams_.size();
  }
  std::string Json() const {
    std::lock_guard lock(mu_);
    std::vector<std::pair<uint64_t, StreamBase*>> sorted(streams_.begin(), streams_.end());
    std::sort(sorted.begin(), sorted.end());
    std::string out = "{\"proxies\":[";
    for (size_t i = 0; i < sorted.size(); ++i) {
      if (i > 0) out.push_back(',');
      sorted[i].second->AppendJson(&out);
    }
    out += "]}";
    return out;
  }

  std::vector<StreamSummary> Summaries() const {
    std::lock_guard lock(mu_);
    std::vector<StreamSummary> out;
    out.reserve(streams_.size());
    for (const auto& [id, s] : streams_) out.push_back(s->Summary());
    std::sort(out.begin(), out.end(), [](const StreamSummary& a, const StreamSummary& b) {
      return a.stream_id < b.stream_id;
    });
    return out;
  }

  SnapshotCache* cache() const { return cache_; }
  XdsObserver* observer() const { return observer_; }
  uint64_t NextId() { return next_id_.fetch_add(1) + 1; }
  std::vector<std::unique_ptr<grpc::Service>>& services() { return services_; }

 private:
  SnapshotCache* cache_;
  XdsObserver* observer_;
  std::atomic<uint64_t> next_id_{0};
  mutable std::mutex mu_;
  absl::flat_hash_map<uint64_t, StreamBase*> streams_;
  std::vector<std::unique_ptr<grpc::Service>> services_;
};

namespace {

bool Handle(StreamState& st, const DiscoveryRequest& r, absl::Status* s) {
  *s = st.OnSotwRequest(r);
  return s->ok();
}
bool Handle(StreamState& st, const DeltaDiscoveryRequest& r, absl::Status* s) {
  *s = st.OnDeltaRequest(r);
  return s->ok();
}
bool Next(StreamState& st, DiscoveryResponse* out) { return st.NextSotw(out); }
bool Next(StreamState& st, DeltaDiscoveryResponse* out) { return st.NextDelta(out); }

// One bidi stream. gRPC guarantees at most one read and we keep at most one write in flight;
// the state machine coalesces whatever changes while a write is outstanding.
template <typename Req, typename Resp>
class Stream final : public grpc::ServerBidiReactor<Req, Resp>, public StreamBase {
 public:
  Stream(XdsServer::Impl* server, grpc::CallbackServerContext* ctx, StreamState::Options options)
      : server_(server),
        id_(options.id),
        state_(std::move(options), server->cache(), server->observer(), &RealClock::Get()) {
    if (server_->observer()) server_->observer()->OnStreamOpened();
    server_->Add(id_, this);
    this->StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // The client went away or half-closed: nothing more will be asked of us.
      FinishWith(grpc::Status::OK);
      return;
    }
    absl::Status status;
    bool handled;
    {
      std::lock_guard lock(mu_);
      handled = Handle(state_, request_, &status);
    }
    if (!handled) {
      WEFT_LOG(kWarning) << "xds stream " << id_ << ": " << status.message();
      FinishWith(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::string(status.message())));
      return;
    }
    Pump();
    this->StartRead(&request_);
  }

  void OnWriteDone(bool ok) override {
    bool finish;
    {
      std::lock_guard lock(mu_);
      writing_ = false;
      finish = finish_pending_ || !ok;
    }
    if (finish) {
      FinishWith(ok ? pending_status_ : grpc::Status::CANCELLED);
      return;
    }
    Pump();
  }

  void OnDone() override {
    server_->Remove(id_);
    if (server_->observer()) server_->observer()->OnStreamClosed();
    delete this;
  }

  void Notify() override {
    {
      std::lock_guard lock(mu_);
      state_.OnSnapshotChanged();
    }
    Pump();
  }

  void AppendJson(std::string* out) override {
    std::lock_guard lock(mu_);
    state_.AppendJson(out);
  }

  StreamSummary Summary() override {
    std::lock_guard lock(mu_);
    return state_.Summary();
  }

 private:
  // Starts the next write if none is in flight. StartWrite is called without our lock held so
  // that a reaction running inline can never deadlock on it.
  void Pump() {
    {
      std::lock_guard lock(mu_);
      if (writing_ || finished_) return;
      if (!Next(state_, &response_)) return;
      writing_ = true;
    }
    this->StartWrite(&response_);
  }

  void FinishWith(grpc::Status status) {
    {
      std::lock_guard lock(mu_);
      if (finished_) return;
      if (writing_) {
        finish_pending_ = true;
        pending_status_ = std::move(status);
        return;
      }
      finished_ = true;
    }
    this->Finish(std::move(status));
  }

  XdsServer::Impl* server_;
  const uint64_t id_;
  std::mutex mu_;
  StreamState state_;
  Req request_;
  Resp response_;
  bool writing_ = false;
  bool finished_ = false;
  bool finish_pending_ = false;
  grpc::Status pending_status_;
};

StreamState::Options MakeOptions(XdsServer::Impl* server, grpc::CallbackServerContext* ctx,
                                 StreamState::Mode mode, std::optional<xds::ResourceType> type,
                                 std::string service) {
  StreamState::Options o;
  o.id = server->NextId();
  o.mode = mode;
  o.service = std::move(service);
  o.fixed_type = type;
  o.peer = ctx->peer();
  return o;
}

class AdsService final
    : public envoy::service::discovery::v3::AggregatedDiscoveryService::CallbackService {
 public:
  explicit AdsService(XdsServer::Impl* s) : s_(s) {}
  grpc::ServerBidiReactor<DiscoveryRequest, DiscoveryResponse>* StreamAggregatedResources(
      grpc::CallbackServerContext* ctx) override {
    return s_->NewSotw(ctx, std::nullopt, "ads");
  }
  grpc::ServerBidiReactor<DeltaDiscoveryRequest, DeltaDiscoveryResponse>* DeltaAggregatedResources(
      grpc::CallbackServerContext* ctx) override {
    return s_->NewDelta(ctx, std::nullopt, "ads");
  }

 private:
  XdsServer::Impl* s_;
};

// The per-type services differ only in method names.
#define WEFT_PER_TYPE_SERVICE(ClassName, Ns, StreamM, DeltaM, FetchM, Type, Short)  \
  class ClassName final : public Ns::CallbackService {                              \
   public:                                                                          \
    explicit ClassName(XdsServer::Impl* s) : s_(s) {}                               \
    grpc::ServerBidiReactor<DiscoveryRequest, DiscoveryResponse>* StreamM(          \
        grpc::CallbackServerContext* ctx) override {                                \
      return s_->NewSotw(ctx, Type, Short);                                         \
    }                                                                               \
    grpc::ServerBidiReactor<DeltaDiscoveryRequest, DeltaDiscoveryResponse>* DeltaM( \
        grpc::CallbackServerContext* ctx) override {                                \
      return s_->NewDelta(ctx, Type, Short);                                        \
    }                                                                               \
    grpc::ServerUnaryReactor* FetchM(grpc::CallbackServerContext* ctx,              \
                                     const DiscoveryRequest* req,                   \
                                     DiscoveryResponse* resp) override {            \
      return s_->Fetch(ctx, req, resp, Type);                                       \
    }                                                                               \
                                                                                    \
   private:                                                                         \
    XdsServer::Impl* s_;                                                            \
  }

WEFT_PER_TYPE_SERVICE(CdsService, envoy::service::cluster::v3::ClusterDiscoveryService,
                      StreamClusters, DeltaClusters, FetchClusters, xds::ResourceType::kCluster,
                      "cds");
WEFT_PER_TYPE_SERVICE(EdsService, envoy::service::endpoint::v3::EndpointDiscoveryService,
                      StreamEndpoints, DeltaEndpoints, FetchEndpoints, xds::ResourceType::kEndpoint,
                      "eds");
WEFT_PER_TYPE_SERVICE(LdsService, envoy::service::listener::v3::ListenerDiscoveryService,
                      StreamListeners, DeltaListeners, FetchListeners, xds::ResourceType::kListener,
                      "lds");
WEFT_PER_TYPE_SERVICE(RdsService, envoy::service::route::v3::RouteDiscoveryService, StreamRoutes,
                      DeltaRoutes, FetchRoutes, xds::ResourceType::kRoute, "rds");
WEFT_PER_TYPE_SERVICE(SdsService, envoy::service::secret::v3::SecretDiscoveryService, StreamSecrets,
                      DeltaSecrets, FetchSecrets, xds::ResourceType::kSecret, "sds");
#undef WEFT_PER_TYPE_SERVICE

}  // namespace

grpc::ServerBidiReactor<DiscoveryRequest, DiscoveryResponse>* XdsServer::Impl::NewSotw(
    grpc::CallbackServerContext* ctx, std::optional<xds::ResourceType> type, std::string service) {
  return new Stream<DiscoveryRequest, DiscoveryResponse>(
      this, ctx, MakeOptions(this, ctx, StreamState::Mode::kSotw, type, std::move(service)));
}

grpc::ServerBidiReactor<DeltaDiscoveryRequest, DeltaDiscoveryResponse>* XdsServer::Impl::NewDelta(
    grpc::CallbackServerContext* ctx, std::optional<xds::ResourceType> type, std::string service) {
  return new Stream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>(
      this, ctx, MakeOptions(this, ctx, StreamState::Mode::kDelta, type, std::move(service)));
}

grpc::ServerUnaryReactor* XdsServer::Impl::Fetch(grpc::CallbackServerContext* ctx,
                                                 const DiscoveryRequest* req,
                                                 DiscoveryResponse* resp, xds::ResourceType type) {
  // REST-style fetch: a one-shot SotW exchange on a throwaway state machine.
  StreamState::Options o = MakeOptions(this, ctx, StreamState::Mode::kSotw, type, "fetch");
  StreamState state(std::move(o), cache_, nullptr, &RealClock::Get());
  DiscoveryRequest first = *req;
  first.clear_response_nonce();
  auto* reactor = ctx->DefaultReactor();
  absl::Status s = state.OnSotwRequest(first);
  if (!s.ok()) {
    reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::string(s.message())));
    return reactor;
  }
  state.NextSotw(resp);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

XdsServer::XdsServer(SnapshotCache* cache, XdsObserver* observer)
    : impl_(std::make_unique<Impl>(cache, observer)) {}

XdsServer::~XdsServer() = default;

void XdsServer::Register(grpc::ServerBuilder* builder) {
  auto& services = impl_->services();
  services.push_back(std::make_unique<AdsService>(impl_.get()));
  services.push_back(std::make_unique<CdsService>(impl_.get()));
  services.push_back(std::make_unique<EdsService>(impl_.get()));
  services.push_back(std::make_unique<LdsService>(impl_.get()));
  services.push_back(std::make_unique<RdsService>(impl_.get()));
  services.push_back(std::make_unique<SdsService>(impl_.get()));
  for (auto& s : services) builder->RegisterService(s.get());
}

void XdsServer::OnSnapshotChanged() { impl_->NotifyAll(); }
size_t XdsServer::connected_streams() const { return impl_->size(); }
std::string XdsServer::ProxiesJson() const { return impl_->Json(); }
std::vector<StreamSummary> XdsServer::Summaries() const { return impl_->Summaries(); }

}  // namespace weft::cp
