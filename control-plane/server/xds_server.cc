#include "control-plane/server/xds_server.h"

#include <google/protobuf/arena.h>
#include <grpc/slice.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/proto_buffer_reader.h>
#include <grpcpp/impl/codegen/proto_utils.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

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

// What the server needs from any stream, whatever its message types. Reference-counted so
// that a fan-out can notify streams without holding the registry lock: gRPC's OnDone() drops
// the reactor's own reference, a fan-out in progress holds another.
class StreamBase {
 public:
  virtual void Notify() = 0;
  virtual void AppendJson(std::string* out) = 0;
  virtual StreamSummary Summary() = 0;
  void Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

 protected:
  virtual ~StreamBase() = default;

 private:
  std::atomic<int> refs_{1};
};

namespace {

// Runs a fan-out's per-stream work on the calling thread and a few helpers. Each stream's push
// is mostly gRPC framing and a loopback/TCP send (kernel time, paid by the sender), so with
// thousands of streams one thread is the bottleneck between a snapshot and the last proxy.
class FanOut {
 public:
  FanOut() {
    unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    for (unsigned i = 1; i < std::min(cores, 4u); ++i) threads_.emplace_back([this] { Help(); });
  }
  ~FanOut() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }

  // Calls fn(i) once for every i in [0, n); returns when all calls returned.
  void Run(size_t n, const std::function<void(size_t)>& fn) {
    // Below this, waking helpers costs more than it saves.
    constexpr size_t kMinParallel = 32;
    if (threads_.empty() || n < kMinParallel) {
      for (size_t i = 0; i < n; ++i) fn(i);
      return;
    }
    std::lock_guard run(run_mu_);
    {
      std::lock_guard lock(mu_);
      fn_ = &fn;
      n_ = n;
      next_.store(0);
      busy_ = threads_.size();
      ++generation_;
    }
    cv_.notify_all();
    Drain(fn, n);
    std::unique_lock lock(mu_);
    done_cv_.wait(lock, [&] { return busy_ == 0; });
    fn_ = nullptr;
  }

 private:
  void Drain(const std::function<void(size_t)>& fn, size_t n) {
    for (size_t i = next_.fetch_add(1); i < n; i = next_.fetch_add(1)) fn(i);
  }

  void Help() {
    uint64_t seen = 0;
    std::unique_lock lock(mu_);
    while (true) {
      cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      const auto* fn = fn_;
      size_t n = n_;
      lock.unlock();
      Drain(*fn, n);
      lock.lock();
      if (--busy_ == 0) done_cv_.notify_all();
    }
  }

  std::mutex run_mu_;  // one fan-out at a time
  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable done_cv_;
  const std::function<void(size_t)>* fn_ = nullptr;
  size_t n_ = 0;
  std::atomic<size_t> next_{0};
  size_t busy_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace

class XdsServer::Impl {
 public:
  Impl(SnapshotCache* cache, XdsObserver* observer) : cache_(cache), observer_(observer) {}

  using RawReactor = grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>;
  RawReactor* NewSotw(grpc::CallbackServerContext* ctx, std::optional<xds::ResourceType> type,
                      std::string service);
  RawReactor* NewDelta(grpc::CallbackServerContext* ctx, std::optional<xds::ResourceType> type,
                       std::string service);
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
    // The lock only covers taking references: streams opening, closing and being read stay
    // unblocked while each stream computes and starts its push.
    std::vector<StreamBase*> streams;
    {
      std::lock_guard lock(mu_);
      streams.reserve(streams_.size());
      for (auto& [id, s] : streams_) {
        s->Ref();
        streams.push_back(s);
      }
    }
    fan_out_.Run(streams.size(), [&](size_t i) {
      streams[i]->Notify();
      streams[i]->Unref();
    });
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
  FanOut fan_out_;
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
bool Next(StreamState& st, const DiscoveryRequest*, WireResponse* out) { return st.NextSotw(out); }
bool Next(StreamState& st, const DeltaDiscoveryRequest*, WireResponse* out) {
  return st.NextDelta(out);
}

// Hands a serialized response to gRPC without copying it: each slice owns (a reference to) its
// bytes, so the resources shared by many streams stay one copy until the last write is done.
grpc::ByteBuffer ToByteBuffer(WireResponse wire) {
  std::vector<grpc::Slice> slices;
  slices.reserve(3);
  auto own = [&](std::string bytes) {
    if (bytes.empty()) return;
    auto* owned = new std::string(std::move(bytes));
    slices.emplace_back(grpc_slice_new_with_user_data(
                            owned->data(), owned->size(),
                            [](void* p) { delete static_cast<std::string*>(p); }, owned),
                        grpc::Slice::STEAL_REF);
  };
  own(std::move(wire.head));
  if (wire.body && !wire.body->empty()) {
    using Held = std::shared_ptr<const std::string>;
    auto* held = new Held(std::move(wire.body));
    slices.emplace_back(grpc_slice_new_with_user_data(
                            const_cast<char*>((*held)->data()), (*held)->size(),
                            [](void* p) { delete static_cast<Held*>(p); }, held),
                        grpc::Slice::STEAL_REF);
  }
  own(std::move(wire.tail));
  return grpc::ByteBuffer(slices.data(), slices.size());
}

// One bidi stream. gRPC guarantees at most one read and we keep at most one write in flight;
// the state machine coalesces whatever changes while a write is outstanding. Raw bytes both
// ways: requests are parsed here into a message that lives only while it is handled, and
// responses come from StreamState already serialized, so nothing of either stays allocated
// between messages.
template <typename Req>
class Stream final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>,
                     public StreamBase {
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
      // On an arena: a SotW ACK restates every subscribed name (1000 strings for a proxy of a
      // 1000-service mesh), which would otherwise be 1000 mallocs and frees per ACK.
      google::protobuf::Arena arena;
      Req* request = google::protobuf::Arena::CreateMessage<Req>(&arena);
      bool parsed = grpc::GenericDeserialize<grpc::ProtoBufferReader, Req>(&request_, request).ok();
      request_.Clear();
      if (!parsed) {
        FinishWith(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "malformed request"));
        return;
      }
      std::lock_guard lock(mu_);
      handled = Handle(state_, *request, &status);
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
      response_.Clear();
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
    Unref();
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
      WireResponse wire;
      if (!Next(state_, static_cast<const Req*>(nullptr), &wire)) return;
      response_ = ToByteBuffer(std::move(wire));
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
  grpc::ByteBuffer request_;
  grpc::ByteBuffer response_;
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

using RawReactor = XdsServer::Impl::RawReactor;
using Ads = envoy::service::discovery::v3::AggregatedDiscoveryService;

class AdsService final : public Ads::WithRawCallbackMethod_StreamAggregatedResources<
                             Ads::WithRawCallbackMethod_DeltaAggregatedResources<Ads::Service>> {
 public:
  explicit AdsService(XdsServer::Impl* s) : s_(s) {}
  RawReactor* StreamAggregatedResources(grpc::CallbackServerContext* ctx) override {
    return s_->NewSotw(ctx, std::nullopt, "ads");
  }
  RawReactor* DeltaAggregatedResources(grpc::CallbackServerContext* ctx) override {
    return s_->NewDelta(ctx, std::nullopt, "ads");
  }

 private:
  XdsServer::Impl* s_;
};

// The per-type services differ only in method names.
#define WEFT_PER_TYPE_SERVICE(ClassName, Ns, StreamM, DeltaM, FetchM, Type, Short)              \
  class ClassName final                                                                         \
      : public Ns::WithRawCallbackMethod_##StreamM<                                             \
            Ns::WithRawCallbackMethod_##DeltaM<Ns::WithCallbackMethod_##FetchM<Ns::Service>>> { \
   public:                                                                                      \
    explicit ClassName(XdsServer::Impl* s) : s_(s) {}                                           \
    RawReactor* StreamM(grpc::CallbackServerContext* ctx) override {                            \
      return s_->NewSotw(ctx, Type, Short);                                                     \
    }                                                                                           \
    RawReactor* DeltaM(grpc::CallbackServerContext* ctx) override {                             \
      return s_->NewDelta(ctx, Type, Short);                                                    \
    }                                                                                           \
    grpc::ServerUnaryReactor* FetchM(grpc::CallbackServerContext* ctx,                          \
                                     const DiscoveryRequest* req,                               \
                                     DiscoveryResponse* resp) override {                        \
      return s_->Fetch(ctx, req, resp, Type);                                                   \
    }                                                                                           \
                                                                                                \
   private:                                                                                     \
    XdsServer::Impl* s_;                                                                        \
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

XdsServer::Impl::RawReactor* XdsServer::Impl::NewSotw(grpc::CallbackServerContext* ctx,
                                                      std::optional<xds::ResourceType> type,
                                                      std::string service) {
  return new Stream<DiscoveryRequest>(
      this, ctx, MakeOptions(this, ctx, StreamState::Mode::kSotw, type, std::move(service)));
}

XdsServer::Impl::RawReactor* XdsServer::Impl::NewDelta(grpc::CallbackServerContext* ctx,
                                                       std::optional<xds::ResourceType> type,
                                                       std::string service) {
  return new Stream<DeltaDiscoveryRequest>(
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
