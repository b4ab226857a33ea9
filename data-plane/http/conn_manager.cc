#include "data-plane/http/conn_manager.h"

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/json.h"
#include "common/proto_util.h"
#include "common/strings.h"
#include "data-plane/http/http1/codec.h"
#include "data-plane/http/request_util.h"
#include "data-plane/router/matchers.h"
#include "data-plane/stats/proxy_stats.h"
#include "data-plane/upstream/lb/load_balancer.h"

namespace weft::http {
namespace {

using TimePoint = Clock::TimePoint;
constexpr TimePoint kNever = TimePoint::max();
// While decoding waits at a filter, body bytes wait in the stream up to this; then the client
// is paused until the filter goes on.
constexpr size_t kBufferedHighWater = 1 << 20;

struct FlagName {
  ResponseFlag flag;
  std::string_view name;
};
constexpr FlagName kFlagNames[] = {
    {ResponseFlag::kNoRoute, "NR"},
    {ResponseFlag::kNoClusterFound, "NC"},
    {ResponseFlag::kNoHealthyUpstream, "UH"},
    {ResponseFlag::kUpstreamConnectionFailure, "UF"},
    {ResponseFlag::kUpstreamOverflow, "UO"},
    {ResponseFlag::kUpstreamRequestTimeout, "UT"},
    {ResponseFlag::kUpstreamRetryLimitExceeded, "URX"},
    {ResponseFlag::kUpstreamRemoteReset, "UR"},
    {ResponseFlag::kUpstreamConnectionTermination, "UC"},
    {ResponseFlag::kUpstreamProtocolError, "UPE"},
    {ResponseFlag::kDownstreamProtocolError, "DPE"},
    {ResponseFlag::kDownstreamConnectionTermination, "DC"},
    {ResponseFlag::kStreamIdleTimeout, "SI"},
    {ResponseFlag::kRbacDenied, "RBAC"},
    {ResponseFlag::kDelayInjected, "DI"},
    {ResponseFlag::kFaultInjected, "FI"},
};

}  // namespace

std::string ResponseFlagsText(uint32_t flags) {
  if (flags == 0) return "-";
  std::string out;
  for (const FlagName& f : kFlagNames) {
    if ((flags & static_cast<uint32_t>(f.flag)) == 0) continue;
    if (!out.empty()) out.push_back(',');
    out.append(f.name);
  }
  return out;
}

ServerCodecFactory DefaultServerCodecFactory() {
  return [](network::Connection& connection, ServerCodecCallbacks& callbacks,
            const ConnectionManagerConfig& config) {
    return http1::NewServerCodec(connection, callbacks, config.limits);
  };
}

// ---------------------------------------------------------------------------------------------

class ConnectionManager::ActiveStream final : public RequestDecoder,
                                              public StreamFilterCallbacks,
                                              public net::Deferred {
 public:
  ActiveStream(ConnectionManager& cm, ResponseEncoder& encoder)
      : cm_(cm), ctx_(*cm.context_), encoder_(encoder) {
    info_.start = ctx_.now();
    info_.wall_start = ctx_.wall_now();
    info_.protocol = std::string(ProtocolName(encoder.protocol()));
    last_activity_ = info_.start;
    ctx_.stats().http.rq_active.Add(1);
    const auto& config = ctx_.config();
    if (config.request_timeout.count() > 0)
      request_deadline_ = info_.start + config.request_timeout;
  }

  std::list<std::unique_ptr<ActiveStream>>::iterator self;
  bool ended() const { return ended_; }
  bool response_started() const { return response_started_; }

  // --- RequestDecoder ---
  void DecodeHeaders(RequestHeaderMap& headers, bool end_stream) override {
    headers_ = &headers;
    headers_end_ = end_stream;
    request_complete_ = end_stream;
    if (end_stream) request_deadline_ = kNever;
    const auto& config = ctx_.config();
    info_.protocol = std::string(ProtocolName(encoder_.protocol()));
    info_.method.assign(headers.method());
    info_.path.assign(headers.path());
    info_.authority.assign(headers.authority());
    if (auto ua = headers.GetFirst("user-agent")) info_.user_agent.assign(*ua);
    if (auto id = headers.GetFirst("x-request-id"); id && !id->empty()) {
      info_.request_id.assign(*id);
    } else if (config.generate_request_id) {
      info_.request_id = Uuid4(ctx_.random());
      headers.Set("x-request-id", info_.request_id);
    }
    if (auto expect = headers.GetFirst("expect")) {
      const bool continue_wanted = router::EqualsIgnoreCase(*expect, "100-continue");
      headers.Remove("expect");
      // Answered here, as Envoy does: the body then streams as it comes.
      if (continue_wanted && !end_stream) encoder_.Encode100Continue();
    }
    SelectRoute(headers);
    if (auto upgrade = headers.GetFirst("upgrade")) {
      // An upgrade the listener allows goes upstream as such (without a body: a WebSocket
      // handshake is a GET); any other loses its Upgrade header and is a plain request.
      const auto* overrides =
          route_.action != nullptr ? &route_.action->upgrade_overrides : nullptr;
      if (!end_stream || !UpgradeAllowed(*upgrade, config.upgrades, overrides)) {
        headers.Remove("upgrade");
      }
    }
    if (route_.action != nullptr && route_.action->idle_timeout.has_value()) {
      idle_timeout_ = *route_.action->idle_timeout;
    }
    filters_.reserve(config.filters.factories.size());
    for (const auto& factory : config.filters.factories) {
      filters_.push_back(factory->Create(*this));
    }
    wake_.assign(filters_.size(), kNever);
    if (cm_.connection_->above_high_watermark()) {
      for (auto& f : filters_) f->OnDownstreamWatermark(true);
    }
    RunDecodeHeaders(0);
  }

  void DecodeData(std::string_view data, bool end_stream) override {
    if (ended_) return;
    info_.bytes_received += data.size();
    last_activity_ = ctx_.now();
    if (end_stream) {
      request_complete_ = true;
      request_deadline_ = kNever;
    }
    PassData(0, data, end_stream);
  }

  void DecodeTrailers(TrailerMap& trailers) override {
    if (ended_) return;
    request_complete_ = true;
    request_deadline_ = kNever;
    for (size_t i = 0; i < filters_.size() && i <= holder_; ++i) {
      if (filters_[i]->DecodeTrailers(trailers) == FilterStatus::kStop || ended_) return;
    }
  }

  void OnResetStream(StreamResetReason reason) override {
    if (ended_) return;
    info_.AddFlag(ResponseFlag::kDownstreamConnectionTermination);
    ctx_.stats().downstream_rq_rx_reset.Inc();
    Finish(/*reset=*/true);
  }

  // --- StreamFilterCallbacks ---
  void ContinueDecoding() override {
    if (ended_ || holder_ + 1 >= filters_.size()) return;
    const size_t from = holder_ + 1;
    RunDecodeHeaders(from);
    if (!ended_ && (!buffered_.empty() || buffered_end_)) FlushBuffered(from);
  }

  void SendLocalReply(int status, std::string_view body, ResponseFlag flag,
                      std::string_view details) override {
    if (ended_) return;
    if (flag != ResponseFlag::kNone) info_.AddFlag(flag);
    if (!details.empty()) info_.details.assign(details);
    if (response_started_) {
      ResetStream();
      return;
    }
    ResponseHeaderMap& r = local_;
    r.Clear();
    r.set_status(status);
    if (status != 204 && status != 304) r.Add("content-length", absl::StrCat(body.size()));
    if (!body.empty()) r.Add("content-type", "text/plain");
    response_started_ = true;
    info_.status = status;
    if (!request_complete_) cm_.codec_->CloseAfterResponse();
    const bool send_body = !body.empty() && info_.method != "HEAD";
    encoder_.EncodeHeaders(r, !send_body);
    if (send_body) {
      info_.bytes_sent += body.size();
      encoder_.EncodeData(body, true);
    }
    Finish(false);
  }

  const RouteSelection& route() const override { return route_; }
  StreamInfo& info() override { return info_; }
  Clock::TimePoint now() const override { return ctx_.now(); }
  void WakeAt(Filter* filter, Clock::TimePoint deadline) override {
    if (ended_) return;
    for (size_t i = 0; i < filters_.size(); ++i) {
      if (filters_[i].get() == filter) wake_[i] = deadline;
    }
  }
  const network::Connection& connection() const override { return *cm_.connection_; }
  upstream::Random& random() override { return ctx_.random(); }
  proxy::CounterScope& counters() override { return ctx_.filter_counters(); }
  UpstreamClusters& clusters() override { return ctx_.clusters(); }

  void EncodeHeaders(ResponseHeaderMap& headers, bool end_stream) override {
    if (ended_ || response_started_) return;
    for (size_t i = filters_.size(); i-- > 0;) {
      filters_[i]->EncodeHeaders(headers, end_stream);  // kStop is reserved: no filter holds
      if (ended_) return;
    }
    response_started_ = true;
    request_deadline_ = kNever;
    info_.status = headers.status();
    last_activity_ = ctx_.now();
    encoder_.EncodeHeaders(headers, end_stream);
    if (end_stream) Finish(false);
  }

  void EncodeData(std::string_view data, bool end_stream) override {
    if (ended_) return;
    for (size_t i = filters_.size(); i-- > 0;) {
      filters_[i]->EncodeData(data, end_stream);
      if (ended_) return;
    }
    info_.bytes_sent += data.size();
    last_activity_ = ctx_.now();
    encoder_.EncodeData(data, end_stream);
    if (end_stream) Finish(false);
  }

  void StartTunnel(ResponseHeaderMap& headers,
                   std::unique_ptr<network::Connection> upstream) override {
    if (ended_) return;
    response_started_ = true;
    tunnel_ = true;
    request_deadline_ = kNever;
    info_.status = headers.status();
    encoder_.EncodeHeaders(headers, false);
    cm_.StartTunnel(this, std::move(upstream));
  }

  void ResetStream() override {
    if (ended_) return;
    cm_.codec_->CloseAfterResponse();
    reset_ = true;
    Finish(true);
  }

  void ReadDisableDownstream(bool disable) override {
    if (ended_) return;
    if (disable) {
      ++read_disables_;
      cm_.connection_->ReadDisable(true);
    } else if (read_disables_ > 0) {
      --read_disables_;
      cm_.connection_->ReadDisable(false);
    }
  }

  // --- For the manager ---
  void OnTick(TimePoint now) {
    if (ended_ || tunnel_) return;
    if (now >= request_deadline_) {
      request_deadline_ = kNever;
      if (!response_started_) {
        ctx_.stats().http.rq_timeout.Inc();
        SendLocalReply(408, "request timeout\n", ResponseFlag::kNone, "request_overall_timeout");
        return;
      }
    }
    if (idle_timeout_.count() > 0 && now - last_activity_ >= idle_timeout_) {
      if (!response_started_) {
        SendLocalReply(408, "stream idle timeout\n", ResponseFlag::kStreamIdleTimeout,
                       "stream_idle_timeout");
      } else {
        info_.AddFlag(ResponseFlag::kStreamIdleTimeout);
        ResetStream();
      }
      return;
    }
    for (size_t i = 0; i < filters_.size(); ++i) {
      if (now < wake_[i]) continue;
      wake_[i] = kNever;
      filters_[i]->OnTimer(now);
      if (ended_) return;
    }
  }

  void OnDownstreamWatermark(bool above) {
    if (ended_) return;
    for (auto& f : filters_) f->OnDownstreamWatermark(above);
  }

  void OnTunnelDone(uint64_t received, uint64_t sent) {
    info_.bytes_received += received;
    info_.bytes_sent += sent;
    Finish(false);
  }

  // The connection went away under the stream.
  void Abandon() {
    if (ended_) return;
    info_.AddFlag(ResponseFlag::kDownstreamConnectionTermination);
    if (!response_started_ || !tunnel_) ctx_.stats().downstream_rq_rx_reset.Inc();
    Finish(true);
  }

 private:
  void SelectRoute(RequestHeaderMap& headers) {
    route_.table = ctx_.routes();
    route_.random = ctx_.random().Next();
    if (!route_.table) return;
    router::RequestView view;
    view.method = headers.method();
    view.authority = headers.authority();
    view.path = headers.path();
    view.headers = &headers;
    view.random_value = route_.random;
    route_.route = route_.table->Match(view);
    if (route_.route == nullptr) return;
    route_.stats = ctx_.StatsForRoute(*route_.table, *route_.route);
    route_.action = route_.route->route_action();
    if (route_.action == nullptr) return;
    const router::RouteAction& a = *route_.action;
    std::string_view cluster = a.cluster;
    if (a.cluster_specifier == router::RouteAction::ClusterSpecifier::kWeighted) {
      uint64_t pick = ctx_.random().Next();
      if (!a.random_value_header.empty()) {
        if (auto v = headers.Get(a.random_value_header)) pick = StableHash64(*v);
      }
      route_.entry = a.PickCluster(pick);
      cluster = {};
      if (route_.entry != nullptr) {
        cluster = route_.entry->cluster_header.empty()
                      ? std::string_view(route_.entry->name)
                      : headers.Get(route_.entry->cluster_header).value_or("");
      }
    } else if (a.cluster_specifier == router::RouteAction::ClusterSpecifier::kClusterHeader) {
      cluster = headers.Get(a.cluster).value_or("");
    }
    route_.cluster.assign(cluster);
  }

  // Runs decode-headers hooks from `from` on; holder_ becomes the filter that stopped (or the
  // last one), so filters up to holder_ have seen the headers.
  void RunDecodeHeaders(size_t from) {
    size_t i = from;
    for (; i < filters_.size(); ++i) {
      const FilterStatus status = filters_[i]->DecodeHeaders(*headers_, headers_end_);
      if (ended_) return;
      if (status == FilterStatus::kStop) break;
    }
    holder_ = i < filters_.size() ? i : filters_.size() - 1;
  }

  // Body bytes waiting for filters past the one that stopped go on from `from`.
  void FlushBuffered(size_t from) {
    std::string data;
    data.swap(buffered_);
    const bool end = buffered_end_;
    buffered_end_ = false;
    if (paused_for_buffer_) {
      paused_for_buffer_ = false;
      ReadDisableDownstream(false);
    }
    PassData(from, data, end);
  }

  void PassData(size_t from, std::string_view data, bool end_stream) {
    for (size_t i = from; i < filters_.size(); ++i) {
      if (i > holder_) {
        // Decoding waits at holder_: keep the bytes for the filters after it.
        buffered_.append(data);
        buffered_end_ = buffered_end_ || end_stream;
        if (buffered_.size() > kBufferedHighWater && !paused_for_buffer_) {
          paused_for_buffer_ = true;
          ReadDisableDownstream(true);
        }
        return;
      }
      if (filters_[i]->DecodeData(data, end_stream) == FilterStatus::kStop || ended_) return;
    }
  }

  void Finish(bool reset) {
    if (ended_) return;
    ended_ = true;
    while (read_disables_ > 0) {
      --read_disables_;
      cm_.connection_->ReadDisable(false);
    }
    for (auto& f : filters_) f->OnStreamEnd();
    const auto elapsed =
        std::chrono::duration_cast<std::chrono::nanoseconds>(ctx_.now() - info_.start);
    proxy::ListenerStats& stats = ctx_.stats();
    stats.http.rq_active.Add(-1);
    const int status = info_.status;
    if (!(reset && status == 0)) {
      stats.http.Completed(status, elapsed);
      if (route_.stats != nullptr) route_.stats->http.Completed(status, elapsed);
    }
    if (info_.HasFlag(ResponseFlag::kUpstreamRequestTimeout)) stats.http.rq_timeout.Inc();
    if (info_.flags != 0) {
      for (const FlagName& f : kFlagNames) {
        if (info_.HasFlag(f.flag)) ctx_.flag_counters().Counter(f.name).Inc();
      }
    }
    if (ctx_.access_log_enabled()) WriteAccessLog(elapsed);
    reset_ = reset_ || reset;
    cm_.OnStreamDone(this);
  }

  void WriteAccessLog(std::chrono::nanoseconds elapsed) {
    const double ms = std::chrono::duration<double, std::milli>(elapsed).count();
    std::string line;
    line.reserve(512);
    absl::StrAppend(
        &line, "{\"start_time\":\"", Iso8601(info_.wall_start),
        "\",\"method\":", JsonString(info_.method), ",\"path\":", JsonString(info_.path),
        ",\"protocol\":\"", info_.protocol, "\",\"response_code\":", info_.status,
        ",\"response_flags\":\"", ResponseFlagsText(info_.flags),
        "\",\"bytes_received\":", info_.bytes_received, ",\"bytes_sent\":", info_.bytes_sent,
        ",\"duration_ms\":", ms, ",\"upstream_host\":", JsonString(info_.upstream_host),
        ",\"upstream_cluster\":", JsonString(info_.upstream_cluster),
        ",\"route_name\":", JsonString(route_.route != nullptr ? route_.route->name() : ""),
        ",\"x_request_id\":", JsonString(info_.request_id),
        ",\"authority\":", JsonString(info_.authority),
        ",\"user_agent\":", JsonString(info_.user_agent),
        ",\"listener\":", JsonString(ctx_.listener_name()));
    if (!info_.details.empty()) {
      absl::StrAppend(&line, ",\"response_code_details\":", JsonString(info_.details));
    }
    line += "}\n";
    ctx_.AccessLog(std::move(line));
  }

  ConnectionManager& cm_;
  ConnectionManagerContext& ctx_;
  ResponseEncoder& encoder_;
  RequestHeaderMap* headers_ = nullptr;
  std::vector<std::unique_ptr<Filter>> filters_;
  std::vector<TimePoint> wake_;
  size_t holder_ = 0;  // the filter decoding waits at (the last one: nobody waits)
  std::string buffered_;
  bool buffered_end_ = false;
  bool paused_for_buffer_ = false;
  RouteSelection route_;
  StreamInfo info_;
  ResponseHeaderMap local_;
  TimePoint request_deadline_ = kNever;
  TimePoint last_activity_{};
  std::chrono::milliseconds idle_timeout_{0};
  uint32_t read_disables_ = 0;
  bool headers_end_ = false;
  bool request_complete_ = false;
  bool response_started_ = false;
  bool tunnel_ = false;
  bool reset_ = false;
  bool ended_ = false;
};

// ---------------------------------------------------------------------------------------------

ConnectionManager::ConnectionManager(std::shared_ptr<ConnectionManagerContext> context,
                                     std::unique_ptr<network::Connection> connection,
                                     const ServerCodecFactory& codec_factory)
    : context_(std::move(context)), connection_(std::move(connection)) {
  codec_ = codec_factory(*connection_, *this, context_->config());
  connection_->SetCallbacks(this);
  idle_since_ = context_->now();
  context_->stats().cx_total.Inc();
  context_->stats().cx_active.Add(1);
}

ConnectionManager::~ConnectionManager() {
  if (connection_) connection_->SetCallbacks(nullptr);
  if (tunnel_upstream_) tunnel_upstream_->SetCallbacks(nullptr);
}

bool ConnectionManager::idle() const {
  return streams_.empty() && !pump_ && !codec_->partial_head();
}

RequestDecoder& ConnectionManager::NewStream(ResponseEncoder& encoder) {
  ++requests_;
  head_started_ = {};
  const auto& config = context_->config();
  if ((config.max_requests_per_connection != 0 &&
       requests_ >= config.max_requests_per_connection) ||
      context_->draining() || peer_eof_) {
    codec_->CloseAfterResponse();
  }
  auto stream = std::make_unique<ActiveStream>(*this, encoder);
  ActiveStream* s = stream.get();
  streams_.push_back(std::move(stream));
  s->self = std::prev(streams_.end());
  return *s;
}

void ConnectionManager::OnRead(net::Buffer& data, bool end_stream) {
  if (closed_) return;
  if (end_stream) peer_eof_ = true;
  dispatching_ = true;
  DispatchResult result = codec_->Dispatch(data, end_stream);
  dispatching_ = false;
  if (closed_) return;
  if (!result.ok) {
    HandleCodecError(result);
    return;
  }
  if (codec_->partial_head()) {
    if (head_started_ == TimePoint{}) head_started_ = context_->now();
  } else {
    head_started_ = {};
  }
  if (end_stream && connection_->state() == network::Connection::State::kOpen) {
    if (streams_.empty() && !pump_) {
      // The client is done and nothing is owed to it.
      connection_->Close(network::CloseType::kFlushWrite);
    } else {
      codec_->CloseAfterResponse();
    }
  }
}

void ConnectionManager::HandleCodecError(const DispatchResult& result) {
  context_->stats().http_parse_error.Inc();
  ActiveStream* stream = streams_.empty() ? nullptr : streams_.back().get();
  if (stream != nullptr && !stream->ended() && !stream->response_started()) {
    stream->SendLocalReply(result.status, absl::StrCat(Sv(result.reason), "\n"),
                           ResponseFlag::kDownstreamProtocolError, result.reason);
    return;
  }
  if (stream != nullptr) stream->ResetStream();
  if (connection_->state() == network::Connection::State::kOpen) {
    connection_->Close(network::CloseType::kFlushWriteAndLinger);
  }
}

void ConnectionManager::OnStreamDone(ActiveStream* stream) {
  std::unique_ptr<ActiveStream> owned = std::move(*stream->self);
  streams_.erase(stream->self);
  const bool tunnel = stream == tunnel_stream_;
  context_->DeferDelete(std::move(owned));
  idle_since_ = context_->now();
  if (tunnel) return;  // the pump closes what is left
  codec_->OnStreamComplete();
  if (connection_->state() != network::Connection::State::kOpen) return;
  if (codec_->wants_close() || context_->draining()) {
    connection_->Close(network::CloseType::kFlushWriteAndLinger);
    return;
  }
  // A pipelined request may be waiting in the read buffer (no new event will say so).
  connection_->ReadAgain();
}

void ConnectionManager::StartTunnel(ActiveStream* stream,
                                    std::unique_ptr<network::Connection> upstream) {
  tunnel_stream_ = stream;
  tunnel_upstream_ = std::move(upstream);
  pump_ = std::make_unique<network::BytePump>(*connection_, *tunnel_upstream_, *this,
                                              std::chrono::steady_clock::now());
}

void ConnectionManager::OnPumpDone() {
  if (tunnel_stream_ != nullptr) {
    ActiveStream* s = tunnel_stream_;
    s->OnTunnelDone(pump_->bytes_a_to_b(), pump_->bytes_b_to_a());
    tunnel_stream_ = nullptr;
  }
  context_->DeferDelete(std::move(pump_));
  context_->DeferDelete(std::move(tunnel_upstream_));
  MarkClosed();
}

void ConnectionManager::OnEvent(network::ConnectionEvent event) {
  if (event == network::ConnectionEvent::kConnected) return;
  // Closed, by the peer or after our flush.
  std::vector<ActiveStream*> open;
  for (auto& s : streams_) open.push_back(s.get());
  for (ActiveStream* s : open) s->Abandon();
  MarkClosed();
}

void ConnectionManager::OnWatermark(bool above_high) {
  std::vector<ActiveStream*> open;
  for (auto& s : streams_) open.push_back(s.get());
  for (ActiveStream* s : open) s->OnDownstreamWatermark(above_high);
}

void ConnectionManager::MarkClosed() {
  if (closed_) return;
  closed_ = true;
  context_->stats().cx_active.Add(-1);
  context_->OnConnectionClosed(*this);
}

void ConnectionManager::Close() {
  if (closed_) return;
  if (pump_) {
    pump_->Abort();
    // Both closed now or soon; for a shutdown, now.
    if (tunnel_upstream_) tunnel_upstream_->Close(network::CloseType::kNoFlush);
  }
  std::vector<ActiveStream*> open;
  for (auto& s : streams_) open.push_back(s.get());
  for (ActiveStream* s : open) s->Abandon();
  connection_->Close(network::CloseType::kNoFlush);
  MarkClosed();
}

void ConnectionManager::OnTick(Clock::TimePoint now) {
  if (closed_) return;
  connection_->OnTick(now);
  if (pump_) {
    // A tunnel is a connection of its own: the connection idle timeout ends one nobody uses.
    if (pump_->CheckIdle(now, context_->config().idle_timeout)) {
      context_->stats().cx_idle_timeout.Inc();
    }
    return;
  }
  if (connection_->state() != network::Connection::State::kOpen) return;
  std::vector<ActiveStream*> open;
  for (auto& s : streams_) open.push_back(s.get());
  for (ActiveStream* s : open) s->OnTick(now);
  if (!streams_.empty() || closed_) return;
  const auto& config = context_->config();
  if (head_started_ != TimePoint{} && config.request_headers_timeout.count() > 0 &&
      now - head_started_ >= config.request_headers_timeout) {
    head_started_ = {};
    // A head that never completed: answered 408, then the connection closes.
    codec_->OpenStreamForError();
    if (!streams_.empty()) {
      streams_.back()->SendLocalReply(408, "request headers timeout\n", ResponseFlag::kNone,
                                      "request_header_timeout");
    }
    return;
  }
  if (config.idle_timeout.count() > 0 && now - idle_since_ >= config.idle_timeout &&
      !codec_->partial_head()) {
    context_->stats().cx_idle_timeout.Inc();
    connection_->Close(network::CloseType::kNoFlush);
    MarkClosed();
    return;
  }
  if (context_->draining() && idle()) {
    connection_->Close(network::CloseType::kNoFlush);
    MarkClosed();
  }
}

}  // namespace weft::http
