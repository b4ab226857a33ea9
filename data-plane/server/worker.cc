#include "data-plane/server/worker.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <deque>
#include <list>
#include <optional>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/http/reason_phrase.h"
#include "common/json.h"
#include "common/log.h"
#include "common/proto_util.h"
#include "common/strings.h"
#include "data-plane/http/path/path.h"
#include "data-plane/http/request_util.h"
#include "data-plane/net/event_loop.h"
#include "data-plane/net/socket.h"

namespace weft::proxy {

ListenerSockets::~ListenerSockets() {
  for (int fd : fds_) close(fd);
}

uint16_t ListenerSockets::port() const { return fds_.empty() ? 0 : net::LocalPort(fds_[0]); }

absl::StatusOr<std::shared_ptr<AccessLogSink>> AccessLogSink::Open(const std::string& path) {
  if (path == "-") return std::shared_ptr<AccessLogSink>(new AccessLogSink(STDOUT_FILENO, false));
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::InvalidArgumentError(absl::StrCat("access log ", path, ": ", strerror(errno)));
  }
  return std::shared_ptr<AccessLogSink>(new AccessLogSink(fd, true));
}

AccessLogSink::~AccessLogSink() {
  if (owned_) close(fd_);
}

void AccessLogSink::Write(std::string_view lines) {
  while (!lines.empty()) {
    ssize_t n = write(fd_, lines.data(), lines.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // a full disk must not stall the data path
    lines.remove_prefix(static_cast<size_t>(n));
  }
}

namespace {

using Clock = net::EventLoop::Clock;
// Flow control: a side whose peer has this much unsent stops reading until it drains.
constexpr size_t kHighWater = 1 << 20;
constexpr size_t kLowWater = 256 << 10;
// While a response is pending, bytes of a pipelined next request are read only up to this.
constexpr size_t kMaxReadAhead = 64 << 10;
// After answering an error, how long to keep draining the client's input before closing, so the
// client reads the answer instead of a reset; and how much of it at most, so a client that
// never stops sending is cut off rather than read at line rate for that long.
constexpr auto kLingerTime = std::chrono::seconds(1);
constexpr size_t kLingerBytes = 1 << 20;

// Whether a header stays on this hop: the standard hop-by-hop set and whatever the message's
// Connection headers name (RFC 9110 §7.6.1, `nominated`). Host is needed to route whatever a
// client lists.
bool HopByHop(std::string_view name, const std::vector<std::string_view>& nominated) {
  if (http1::IsHopByHop(name)) return true;
  for (std::string_view n : nominated) {
    if (http1::EqualsIgnoreCase(n, name)) return !http1::EqualsIgnoreCase(name, "host");
  }
  return false;
}

// RFC 9110 §9.2.2: the methods whose repetition has the effect of one request.
bool IsIdempotent(std::string_view method) {
  for (std::string_view m : {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"}) {
    if (method == m) return true;
  }
  return false;
}

// Request headers as the router and the header mutations see them: views into the read
// buffer, plus owned strings for values the proxy adds.
class HeaderList final : public router::MutableHeaders {
 public:
  void Reset() {
    entries_.clear();
    owned_.clear();
  }
  void AddView(std::string_view name, std::string_view value) { entries_.push_back({name, value}); }

  std::optional<std::string_view> Get(std::string_view name) const override {
    const Entry* first = nullptr;
    int count = 0;
    for (const Entry& e : entries_) {
      if (!http1::EqualsIgnoreCase(e.name, name)) continue;
      if (first == nullptr) first = &e;
      ++count;
    }
    if (first == nullptr) return std::nullopt;
    if (count == 1) return first->value;
    // Matchers see repeated headers joined with ',' (as Envoy).
    std::string joined;
    for (const Entry& e : entries_) {
      if (!http1::EqualsIgnoreCase(e.name, name)) continue;
      if (!joined.empty()) joined.push_back(',');
      joined.append(e.value);
    }
    owned_.push_back(std::move(joined));
    return std::string_view(owned_.back());
  }
  void Add(std::string_view name, std::string_view value) override {
    owned_.emplace_back(name);
    std::string_view n = owned_.back();
    owned_.emplace_back(value);
    entries_.push_back({n, owned_.back()});
  }
  void Set(std::string_view name, std::string_view value) override {
    Remove(name);
    Add(name, value);
  }
  void Remove(std::string_view name) override {
    std::erase_if(entries_,
                  [name](const Entry& e) { return http1::EqualsIgnoreCase(e.name, name); });
  }
  void AppendTo(std::string* out) const {
    for (const Entry& e : entries_) absl::StrAppend(out, Sv(e.name), ": ", Sv(e.value), "\r\n");
  }

 private:
  struct Entry {
    std::string_view name;
    std::string_view value;
  };
  std::vector<Entry> entries_;
  mutable std::deque<std::string> owned_;  // deque: growing never moves earlier strings
};

}  // namespace

struct ListenerRuntime;
struct ClusterRuntime;
class HttpConnection;
class UpstreamConn;

class Worker::Impl {
 public:
  Impl(WorkerOptions options, std::atomic<uint64_t>* serving_generation)
      : options_(std::move(options)),
        stats_(options_.stats->worker(options_.index)),
        random_(0x9E3779B97F4A7C15ULL * static_cast<uint64_t>(options_.index + 1) ^
                static_cast<uint64_t>(Clock::now().time_since_epoch().count())),
        serving_generation_(serving_generation) {}
  ~Impl();

  absl::Status Init() {
    auto loop = net::EventLoop::Create(options_.send_mode);
    if (!loop.ok()) return loop.status();
    loop_ = std::move(*loop);
    if (options_.index == 0) {
      // Once per process: the workers share the kernel, so they share the outcome.
      if (loop_->uses_uring()) {
        WEFT_LOG(kInfo) << "workers batch their sends through io_uring";
      } else if (!loop_->uring_unavailable().empty()) {
        WEFT_LOG(kWarning) << "io_uring unavailable, workers send with send(2): "
                           << loop_->uring_unavailable();
      }
    }
    loop_->SetTick(std::chrono::milliseconds(50), [this] { Tick(); });
    return absl::OkStatus();
  }

  void Apply(std::shared_ptr<const WorkerSnapshot> snapshot);
  void Accept(ListenerRuntime* listener);
  void Tick();

  // Upstream connection pool, keyed by "address:port" so a changed cluster keeps its
  // connections to the hosts that remain.
  UpstreamConn* TakeIdle(const std::string& key);
  void ReturnIdle(UpstreamConn* conn);
  void CloseUpstream(UpstreamConn* conn);

  void Forget(HttpConnection* conn);
  void Log(std::string line) {
    if (!options_.access_log) return;
    access_log_buffer_ += line;
    if (access_log_buffer_.size() > 64 * 1024) FlushLog();
  }
  void FlushLog() {
    if (access_log_buffer_.empty() || !options_.access_log) return;
    options_.access_log->Write(access_log_buffer_);
    access_log_buffer_.clear();
  }
  RouteStats* StatsForRoute(const router::RouteTable& table, const router::Route& route);
  HostStats* StatsForHost(ClusterRuntime& cluster, const upstream::Host& host);
  // The cluster's runtime on this worker, built on its first request (see clusters_).
  ClusterRuntime* FindCluster(std::string_view name);
  // Hosts, balancer and stats for `cfg`; hosts that `old` (may be null) already has keep
  // their identity.
  std::shared_ptr<ClusterRuntime> BuildCluster(const std::shared_ptr<const ClusterConfig>& cfg,
                                               const ClusterRuntime* old);
  std::shared_ptr<ClusterRuntime> ClusterRef(ClusterRuntime* c);

  WorkerOptions options_;
  WorkerStats* stats_;
  std::unique_ptr<net::EventLoop> loop_;
  upstream::DefaultRandom random_;
  std::atomic<uint64_t>* serving_generation_;
  std::shared_ptr<const WorkerSnapshot> snapshot_;
  std::map<std::string, std::shared_ptr<ListenerRuntime>> listeners_;
  // Only clusters this worker has routed to. In a large mesh one sidecar talks to few of the
  // clusters it is sent, and hosts, balancer and stats for every cluster on every worker were
  // most of the proxy's memory; a runtime is built on first use and then kept up to date.
  std::unordered_map<std::string, std::shared_ptr<ClusterRuntime>> clusters_;
  std::unordered_map<const router::Route*, RouteStats*> route_stats_;
  std::unordered_map<std::string, std::vector<UpstreamConn*>> idle_;
  std::list<HttpConnection*> connections_;
  size_t connection_count_ = 0;
  std::string access_log_buffer_;
};

struct ListenerRuntime final : net::EventHandler {
  Worker::Impl* worker = nullptr;
  std::shared_ptr<const ListenerConfig> config;
  std::shared_ptr<ListenerSockets> sockets;
  std::shared_ptr<const router::RouteTable> routes;
  int fd = -1;
  ListenerStats* stats = nullptr;
  bool draining = false;
  void OnEvents(uint32_t) override { worker->Accept(this); }
};

struct ClusterRuntime {
  std::shared_ptr<const ClusterConfig> config;
  upstream::PrioritySet hosts;  // declared before lb: the balancer reads it until destroyed
  std::unique_ptr<upstream::LoadBalancer> lb;
  ClusterStats* stats = nullptr;
  // Filled on a host's first request: in a large mesh most hosts never see traffic from one
  // sidecar, and a stats block per host and worker would dominate the proxy's memory.
  std::unordered_map<const upstream::Host*, HostStats*> host_stats;
};

HostStats* Worker::Impl::StatsForHost(ClusterRuntime& cluster, const upstream::Host& host) {
  auto [it, inserted] = cluster.host_stats.try_emplace(&host, nullptr);
  if (inserted) {
    it->second = stats_->Host(absl::StrCat(cluster.config->name, "|", host.hash_key()));
  }
  return it->second;
}

ClusterRuntime* Worker::Impl::FindCluster(std::string_view name) {
  std::string key(name);
  auto it = clusters_.find(key);
  if (it != clusters_.end()) return it->second.get();
  if (!snapshot_) return nullptr;
  auto cfg = snapshot_->config->clusters.find(key);
  if (cfg == snapshot_->config->clusters.end()) return nullptr;
  auto runtime = BuildCluster(cfg->second, nullptr);
  ClusterRuntime* out = runtime.get();
  clusters_.emplace(std::move(key), std::move(runtime));
  return out;
}

std::shared_ptr<ClusterRuntime> Worker::Impl::BuildCluster(
    const std::shared_ptr<const ClusterConfig>& cfg, const ClusterRuntime* old) {
  auto runtime = std::make_shared<ClusterRuntime>();
  runtime->config = cfg;
  runtime->stats = old != nullptr ? old->stats : stats_->Cluster(cfg->name);
  // Hosts that stay keep their identity (and with it their in-flight counts and latency
  // estimate); only new or changed ones are created.
  std::unordered_map<std::string, upstream::HostPtr> previous;
  if (old != nullptr) {
    for (const auto& h : old->hosts.all_hosts()) previous[h->hash_key()] = h;
  }
  std::vector<upstream::HostPtr> hosts;
  hosts.reserve(cfg->endpoints.size());
  for (const EndpointConfig& e : cfg->endpoints) {
    auto p =
        previous.empty() ? previous.end() : previous.find(absl::StrCat(e.address, ":", e.port));
    if (p != previous.end() && p->second->weight() == e.weight &&
        p->second->priority() == e.priority &&
        p->second->locality() == *cfg->localities[e.locality] && p->second->health() == e.health) {
      hosts.push_back(p->second);
      continue;
    }
    upstream::Host::Options o;
    o.address = e.address;
    o.port = e.port;
    o.weight = e.weight;
    o.shared_locality = cfg->localities[e.locality];
    o.priority = e.priority;
    o.health = e.health;
    // From the config, not this worker's clock: a runtime built late (first request) must not
    // put long-standing hosts into slow start, and all workers ramp a host alike.
    o.created_at = e.joined_at;
    hosts.push_back(std::make_shared<upstream::Host>(std::move(o)));
  }
  runtime->hosts.Update(std::move(hosts), cfg->locality_weights);
  auto lb = upstream::LoadBalancer::Create(cfg->algorithm, cfg->lb, runtime->hosts,
                                           &RealClock::Get(), &random_);
  if (!lb.ok()) {
    WEFT_LOG(kWarning) << "cluster " << cfg->name << ": " << lb.status().message()
                       << "; using round robin";
    lb = upstream::LoadBalancer::Create(upstream::LbAlgorithm::kRoundRobin, upstream::LbConfig{},
                                        runtime->hosts, &RealClock::Get(), &random_);
  }
  runtime->lb = std::move(*lb);
  return runtime;
}

std::shared_ptr<ClusterRuntime> Worker::Impl::ClusterRef(ClusterRuntime* c) {
  auto it = clusters_.find(c->config->name);
  return it != clusters_.end() && it->second.get() == c ? it->second : nullptr;
}

class UpstreamConn final : public net::EventHandler, public net::Deferred {
 public:
  UpstreamConn(Worker::Impl* worker, int fd, std::string key, ClusterStats* stats)
      : worker_(worker), fd_(fd), key_(std::move(key)), cluster_stats_(stats) {}
  void OnEvents(uint32_t events) override;

  Worker::Impl* worker_;
  int fd_;
  std::string key_;
  ClusterStats* cluster_stats_;
  net::Buffer in_;
  net::Buffer out_;
  HttpConnection* owner_ = nullptr;  // null while idle in the pool
  bool connected_ = false;
  bool closed_ = false;
  bool eof_ = false;
  bool read_paused_ = false;
  // Edge-triggered bookkeeping: input may be waiting (an event came, and no short read, EOF or
  // EAGAIN has shown the socket empty since); rdhup_: the peer closed, so read to EOF.
  bool readable_ = false;
  bool rdhup_ = false;
  Clock::time_point connect_deadline_{};
};

class HttpConnection final : public net::EventHandler, public net::Deferred {
 public:
  HttpConnection(Worker::Impl* worker, int fd, std::shared_ptr<ListenerRuntime> listener)
      : worker_(worker), fd_(fd), listener_(std::move(listener)) {
    idle_since_ = worker_->loop_->now();
    listener_->stats->cx_total.Inc();
    listener_->stats->cx_active.Add(1);
  }

  void OnEvents(uint32_t events) override {
    if (closed_) return;
    if (events & EPOLLOUT) {
      Flush();
      if (closed_) return;
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
      readable_ = true;
      if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) rdhup_ = true;
      ReadDownstream();
    }
  }

  void OnUpstreamEvents(UpstreamConn* up, uint32_t events);
  void CheckTimeouts(Clock::time_point now);
  bool idle() const { return !rq_ && state_ == State::kHead && in_.empty(); }
  void Close();
  bool closed() const { return closed_; }
  std::list<HttpConnection*>::iterator self_;

 private:
  // kTunnel: an upgrade the upstream accepted (101); bytes flow both ways until it closes.
  enum class State { kHead, kBody, kWaitResponse, kTunnel, kClosing };

  struct Request {
    Clock::time_point start;
    std::chrono::system_clock::time_point wall_start;
    std::string method;
    std::string path;
    std::string authority;
    std::string request_id;
    std::string user_agent;
    int version_minor = 1;
    bool keep_alive = true;
    http1::BodyKind body = http1::BodyKind::kNone;
    uint64_t body_remaining = 0;
    http1::ChunkedScanner chunked;
    bool body_done = true;
    uint64_t bytes_received = 0;

    std::shared_ptr<const router::RouteTable> routes;
    const router::Route* route = nullptr;
    RouteStats* route_stats = nullptr;
    std::shared_ptr<ClusterRuntime> cluster;
    upstream::HostPtr host;
    HostStats* host_stats = nullptr;
    const std::vector<router::HeaderOp>* response_ops = nullptr;
    std::string upstream_head;  // kept for a retry while nothing of the body went out
    std::string upgrade;        // the Upgrade asked for, when the listener allows it
    uint32_t retries_left = 0;
    uint32_t retry_on = 0;  // the route's router::retry_on bits
    bool reused_connection = false;
    // Some byte of this request was handed to an upstream socket (by any attempt), so it may
    // have reached the application: only an idempotent method or the route's retry policy
    // allows sending it again (RFC 9110 §9.2.2).
    bool sent = false;
    Clock::time_point deadline = Clock::time_point::max();

    bool response_started = false;
    // Some of the response head has left for the client (flushed, or queued on the ring):
    // until then a broken response can still be answered with a 502.
    bool response_flushed = false;
    size_t response_mark = 0;  // out_'s size before the response head was appended
    int status = 0;
    http1::BodyKind response_body = http1::BodyKind::kNone;
    uint64_t response_remaining = 0;
    http1::ChunkedScanner response_chunked;
    bool upstream_keep_alive = true;
    uint64_t bytes_sent = 0;
    const char* flags = "-";
  };

  void ReadDownstream();
  // How much unprocessed input the current state may hold (see ReadDownstream).
  size_t InputLimit() const;
  // Output held for a peer: its buffer plus what its io_uring send still holds. Reading from
  // the other side pauses above kHighWater and resumes below kLowWater.
  size_t DownstreamBacklog() const { return out_.size() + worker_->loop_->SendingBytes(fd_); }
  size_t UpstreamBacklog() const {
    return up_->out_.size() + worker_->loop_->SendingBytes(up_->fd_);
  }
  void Process();
  void StartRequest();
  void ForwardRequestBody();
  bool Dispatch();
  void ConnectFailed(const char* why);
  // Sends the request again to another pick, if the retry policy has a retry left and the
  // request is still whole in memory.
  bool Retry();
  void ReadUpstream();
  void ProcessResponse();
  void StartTunnel(const http1::MessageHead& head);
  void TunnelPump();
  void UpstreamGone();
  void SendLocal(int status, std::string_view body, std::string_view extra_headers = {},
                 const char* flags = "-");
  void SendError(int status, std::string_view reason);
  // Answers what the client sent so far (a request may not have started) and closes.
  void RefuseAndClose(int status, std::string_view body, const char* flags);
  // Aborts the connection with a reset, so the client cannot take a truncated response for a
  // whole one; the access log says why (`flags`).
  void Reset(const char* flags);
  void FinishRequest();
  void ReleaseUpstream(bool reusable);
  void CloseAfterFlush();
  void Flush();
  // Everything written has reached the kernel (the io_uring path sends after the batch).
  bool OutputDrained() const { return out_.empty() && !worker_->loop_->Sending(fd_); }
  void WriteUpstream();
  void AccessLog();

  Worker::Impl* worker_;
  int fd_;
  std::shared_ptr<ListenerRuntime> listener_;
  net::Buffer in_;
  net::Buffer out_;
  State state_ = State::kHead;
  bool closed_ = false;
  bool peer_eof_ = false;
  bool read_paused_ = false;
  bool readable_ = false;  // see UpstreamConn
  bool rdhup_ = false;
  bool close_after_response_ = false;
  bool processing_ = false;        // inside Process(): completions must not re-enter it
  bool reading_upstream_ = false;  // inside ReadUpstream()
  bool write_shut_ = false;
  bool upstream_write_shut_ = false;  // tunnel: the client's half-close, passed on
  uint32_t requests_ = 0;
  Clock::time_point idle_since_;
  Clock::time_point head_started_{};
  Clock::time_point linger_deadline_{};
  size_t discarded_ = 0;  // input read and dropped while closing
  http1::MessageHead head_;
  // The upstream's response head and the headers passed on: per connection, not per response,
  // so their vectors keep their capacity.
  http1::MessageHead response_head_;
  HeaderList response_headers_;
  HeaderList headers_;
  std::vector<std::string_view> nominated_;  // what the current head's Connection names
  std::string scratch_;
  std::optional<Request> rq_;
  UpstreamConn* up_ = nullptr;
};

// ---------------------------------------------------------------------------------------------
// Downstream side.

size_t HttpConnection::InputLimit() const {
  switch (state_) {
    case State::kHead:
      // Past the head limit the head is complete or refused (431): nothing more is needed.
      return listener_->config->http.limits.max_head_bytes;
    case State::kWaitResponse:
      // A pipelined next request waits; read ahead only a little of it.
      return kMaxReadAhead;
    default:
      // Bodies, tunnels and the linger after an error are processed read by read; what they
      // pass on counts against the peer's watermark.
      return net::Buffer::kReadSize;
  }
}

// Reads and processes read by read, never holding more unprocessed input than the state's
// InputLimit(): however fast a client sends, a connection's input buffer stays within it.
void HttpConnection::ReadDownstream() {
  bool unprocessed = true;  // input or EOF that Process() has not seen yet
  while (!closed_ && !read_paused_ && readable_ && in_.size() < InputLimit()) {
    long n = in_.ReadFrom(fd_);
    if (n > 0) {
      // A short read emptied the socket: skip the read that would only return EAGAIN.
      if (static_cast<size_t>(n) < net::Buffer::kReadSize && !rdhup_) readable_ = false;
      Process();
      unprocessed = false;
      continue;
    }
    readable_ = false;
    if (n == 0) {
      peer_eof_ = true;
      unprocessed = true;
      break;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    if (rq_) listener_->stats->downstream_rq_rx_reset.Inc();
    Close();
    return;
  }
  if (!closed_ && unprocessed) Process();
}

void HttpConnection::Process() {
  processing_ = true;
  while (!closed_) {
    if (state_ == State::kTunnel) {
      TunnelPump();
      break;
    }
    if (state_ == State::kClosing) {
      discarded_ += in_.size();
      in_.Clear();
      if ((peer_eof_ && OutputDrained()) || discarded_ > kLingerBytes) Close();
      break;
    }
    if (state_ == State::kHead) {
      if (in_.empty()) {
        if (peer_eof_) Close();
        break;
      }
      if (head_started_ == Clock::time_point{}) head_started_ = worker_->loop_->now();
      http1::ParseError error;
      auto status =
          http1::ParseRequestHead(in_.readable(), listener_->config->http.limits, &head_, &error);
      if (status == http1::ParseStatus::kIncomplete) {
        if (peer_eof_) Close();
        break;
      }
      if (status == http1::ParseStatus::kError) {
        SendError(error.status, error.reason);
        break;
      }
      StartRequest();
      continue;
    }
    if (state_ == State::kBody) {
      ForwardRequestBody();
      if (closed_ || state_ == State::kBody) {
        if (!closed_ && peer_eof_) {
          // The client went away in the middle of its body.
          listener_->stats->downstream_rq_rx_reset.Inc();
          Close();
        }
        break;
      }
      continue;
    }
    // kWaitResponse: the next request (if pipelined) waits in in_ until this one is answered.
    if (peer_eof_) close_after_response_ = true;
    break;
  }
  processing_ = false;
  if (!closed_) Flush();
}

void HttpConnection::SendError(int status, std::string_view reason) {
  listener_->stats->http_parse_error.Inc();
  WEFT_LOG(kDebug) << "listener " << listener_->config->name << ": " << status << " " << reason;
  RefuseAndClose(status, absl::StrCat(Sv(reason), "\n"), "DPE");
}

void HttpConnection::RefuseAndClose(int status, std::string_view body, const char* flags) {
  if (!rq_) {
    rq_.emplace();
    rq_->start = worker_->loop_->now();
    rq_->wall_start = std::chrono::system_clock::now();
    listener_->stats->http.rq_active.Add(1);
  }
  rq_->keep_alive = false;
  SendLocal(status, body, {}, flags);
}

void HttpConnection::StartRequest() {
  const Clock::time_point now = worker_->loop_->now();
  rq_.emplace();
  Request& rq = *rq_;
  rq.start = now;
  rq.wall_start = std::chrono::system_clock::now();
  rq.method.assign(head_.method);
  rq.authority.assign(head_.host);
  rq.version_minor = head_.version_minor;
  rq.keep_alive = head_.keep_alive;
  rq.body = head_.body;
  rq.body_remaining = head_.body == http1::BodyKind::kContentLength ? head_.content_length : 0;
  rq.body_done = head_.body == http1::BodyKind::kNone;
  head_started_ = {};
  ++requests_;
  const auto& settings = listener_->config->http;
  if (settings.max_requests_per_connection != 0 &&
      requests_ >= settings.max_requests_per_connection) {
    rq.keep_alive = false;
  }
  listener_->stats->http.rq_active.Add(1);
  if (settings.request_timeout.count() > 0) rq.deadline = now + settings.request_timeout;

  // One path for every matcher, rewrite and the upstream: origin-form (an absolute-form target
  // without a path has "/"), normalised as the listener asks.
  if (head_.path.empty() || head_.path[0] == '?') {
    rq.path = absl::StrCat("/", Sv(head_.path));
  } else if (!settings.path_normalization.any()) {
    rq.path.assign(head_.path);
  } else if (!http::NormalizePath(head_.path, settings.path_normalization, &rq.path)) {
    rq.path.assign(head_.path);
    SendError(400, "path cannot be normalized");
    return;
  }

  headers_.Reset();
  std::string_view request_id;
  for (const http1::Header& h : head_.headers) {
    // An absolute-form target's authority replaces Host (head_.host is that authority).
    headers_.AddView(h.name, http1::EqualsIgnoreCase(h.name, "host") ? head_.host : h.value);
    if (http1::EqualsIgnoreCase(h.name, "x-request-id")) request_id = h.value;
    if (http1::EqualsIgnoreCase(h.name, "user-agent")) rq.user_agent.assign(h.value);
  }
  if (request_id.empty() && settings.generate_request_id) {
    rq.request_id = http::Uuid4(worker_->random_);
  } else {
    rq.request_id.assign(request_id);
  }

  rq.routes = listener_->routes;
  if (!rq.routes) {
    in_.Consume(head_.head_size);
    SendLocal(404, "no route configuration\n", {}, "NR");
    return;
  }
  router::RequestView view;
  view.method = head_.method;
  view.authority = head_.host;
  view.path = rq.path;
  view.headers = &headers_;
  view.random_value = worker_->random_.Next();
  const router::Route* route = rq.routes->Match(view);
  rq.route = route;
  if (route != nullptr) rq.route_stats = worker_->StatsForRoute(*rq.routes, *route);
  if (route == nullptr) {
    in_.Consume(head_.head_size);
    SendLocal(404, "", {}, "NR");
    return;
  }
  if (const auto* direct = route->direct_response()) {
    std::string extra;
    HeaderList response_headers;
    router::ApplyHeaderOps(route->response_header_ops(), &response_headers);
    response_headers.AppendTo(&extra);
    in_.Consume(head_.head_size);
    SendLocal(static_cast<int>(direct->status), direct->body, extra);
    return;
  }
  if (route->redirect() != nullptr) {
    std::string location = router::RedirectLocation(*route, view);
    in_.Consume(head_.head_size);
    SendLocal(static_cast<int>(route->redirect()->status), "",
              absl::StrCat("location: ", location, "\r\n"));
    return;
  }
  const router::RouteAction* action = route->route_action();
  if (action == nullptr) {
    in_.Consume(head_.head_size);
    SendLocal(404, "", {}, "NR");
    return;
  }

  // Which cluster: fixed, from a header, or a weighted pick.
  std::string_view cluster_name = action->cluster;
  const router::WeightedClusterEntry* entry = nullptr;
  if (action->cluster_specifier == router::RouteAction::ClusterSpecifier::kWeighted) {
    uint64_t pick = worker_->random_.Next();
    if (!action->random_value_header.empty()) {
      if (auto v = headers_.Get(action->random_value_header)) pick = StableHash64(*v);
    }
    entry = action->PickCluster(pick);
    if (entry != nullptr) {
      cluster_name = entry->name;
      if (!entry->cluster_header.empty()) {
        cluster_name = headers_.Get(entry->cluster_header).value_or("");
      }
    }
  } else if (action->cluster_specifier == router::RouteAction::ClusterSpecifier::kClusterHeader) {
    cluster_name = headers_.Get(action->cluster).value_or("");
  }
  ClusterRuntime* cluster = worker_->FindCluster(cluster_name);
  if (cluster == nullptr) {
    in_.Consume(head_.head_size);
    SendLocal(static_cast<int>(action->cluster_not_found_status), "", {}, "NC");
    return;
  }
  rq.cluster = worker_->ClusterRef(cluster);
  upstream::LbContext lb_context;
  if (!action->hash_policies.empty()) {
    for (const auto& policy : action->hash_policies) {
      if (policy.kind != router::HashPolicy::Kind::kHeader) continue;
      if (auto v = headers_.Get(policy.name)) {
        lb_context.hash_key = StableHash64(*v);
        break;
      }
    }
  }
  upstream::Host* host = cluster->lb->ChooseHost(lb_context);
  if (host == nullptr) {
    cluster->stats->no_healthy_host.Inc();
    in_.Consume(head_.head_size);
    SendLocal(503, "no healthy upstream\n", {}, "UH");
    return;
  }
  for (const auto& h : cluster->hosts.all_hosts()) {
    if (h.get() == host) {
      rq.host = h;
      break;
    }
  }
  rq.host_stats = worker_->StatsForHost(*cluster, *host);
  cluster->stats->http.rq_active.Add(1);
  if (rq.host_stats) rq.host_stats->http.rq_active.Add(1);
  if (rq.route_stats) rq.route_stats->http.rq_active.Add(1);
  cluster->lb->OnRequestStart(*host);

  if (action->timeout.count() > 0) rq.deadline = std::min(rq.deadline, now + action->timeout);
  if (action->retry_policy) {
    using namespace router::retry_on;
    if (action->retry_policy->retry_on &
        (kConnectFailure | kReset | kResetBeforeRequest | k5xx | kGatewayError)) {
      rq.retries_left = action->retry_policy->num_retries;
      rq.retry_on = action->retry_policy->retry_on;
    }
  }

  // The upstream request head: hop-by-hop headers go, framing is restated, then the route's
  // mutations apply.
  std::string path =
      action->path_rewrite.empty() ? rq.path : router::ApplyPathRewrite(*route, rq.path);
  headers_.Reset();
  nominated_.clear();
  http1::ConnectionOptions(head_, &nominated_);
  for (const http1::Header& h : head_.headers) {
    if (HopByHop(h.name, nominated_) || http1::EqualsIgnoreCase(h.name, "content-length") ||
        http1::EqualsIgnoreCase(h.name, "expect")) {
      continue;
    }
    headers_.AddView(h.name, http1::EqualsIgnoreCase(h.name, "host") ? head_.host : h.value);
  }
  std::string_view host_rewrite = entry != nullptr && !entry->host_rewrite_literal.empty()
                                      ? std::string_view(entry->host_rewrite_literal)
                                      : std::string_view(action->host_rewrite_literal);
  if (!host_rewrite.empty()) {
    headers_.Set("host", host_rewrite);
  } else if (action->auto_host_rewrite) {
    headers_.Set("host", host->hash_key());
  }
  if (!request_id.empty() || settings.generate_request_id) {
    headers_.Set("x-request-id", rq.request_id);
  }
  if (!headers_.Get("x-forwarded-proto")) headers_.Add("x-forwarded-proto", "http");
  // An upgrade the listener's upgrade_configs allow goes upstream as such (without a body: a
  // WebSocket handshake is a GET); any other loses its hop-by-hop Upgrade header above.
  if (head_.upgrade && rq.body_done) {
    for (const http1::Header& h : head_.headers) {
      if (http1::EqualsIgnoreCase(h.name, "upgrade") &&
          http::UpgradeAllowed(h.value, settings.upgrades, &action->upgrade_overrides)) {
        rq.upgrade.assign(h.value);
      }
    }
    if (!rq.upgrade.empty()) {
      headers_.Add("connection", "upgrade");
      headers_.Add("upgrade", rq.upgrade);
    }
  }
  router::ApplyHeaderOps(entry != nullptr ? entry->request_header_ops : route->request_header_ops(),
                         &headers_);
  rq.response_ops = entry != nullptr ? &entry->response_header_ops : &route->response_header_ops();

  std::string& up = rq.upstream_head;
  up.reserve(256 + head_.head_size);
  absl::StrAppend(&up, Sv(head_.method), " ", path, " HTTP/1.1\r\n");
  headers_.AppendTo(&up);
  if (rq.body == http1::BodyKind::kContentLength) {
    absl::StrAppend(&up, "content-length: ", rq.body_remaining, "\r\n");
  } else if (rq.body == http1::BodyKind::kChunked) {
    up += "transfer-encoding: chunked\r\n";
  }
  up += "\r\n";
  if (head_.expect_continue && head_.version_minor == 1 && !rq.body_done) {
    // Answer the client's Expect ourselves (as Envoy): the body then streams as it comes.
    out_.Append("HTTP/1.1 100 Continue\r\n\r\n");
  }
  in_.Consume(head_.head_size);
  state_ = rq.body_done ? State::kWaitResponse : State::kBody;
  const bool replayable = rq.body_done;
  if (!Dispatch()) return;
  if (!rq_) return;
  if (!replayable) rq_->upstream_head.clear();  // a streamed body cannot be replayed
  WriteUpstream();
}

// Sends the request head (and whatever body is at hand) to a pooled or new connection.
bool HttpConnection::Dispatch() {
  Request& rq = *rq_;
  ClusterRuntime& cluster = *rq.cluster;
  const std::string& key = rq.host->hash_key();
  UpstreamConn* conn = worker_->TakeIdle(key);
  if (conn != nullptr) {
    rq.reused_connection = true;
    cluster.stats->cx_reused.Inc();
  } else {
    rq.reused_connection = false;
    auto fd = net::ConnectNonBlocking({rq.host->address(), rq.host->port()});
    if (!fd.ok()) {
      ConnectFailed("connect");
      return false;
    }
    conn = new UpstreamConn(worker_, *fd, key, cluster.stats);
    conn->connect_deadline_ = worker_->loop_->now() + cluster.config->connect_timeout;
    cluster.stats->cx_total.Inc();
    cluster.stats->cx_active.Add(1);
    worker_->loop_->Add(*fd, conn);
  }
  conn->owner_ = this;
  up_ = conn;
  up_->out_.Append(rq.upstream_head);
  return true;
}

void HttpConnection::ConnectFailed(const char* why) {
  Request& rq = *rq_;
  rq.cluster->stats->cx_connect_fail.Inc();
  if (rq.host_stats) rq.host_stats->cx_connect_fail.Inc();
  WEFT_LOG(kDebug) << "upstream " << rq.host->hash_key() << ": " << why << " failed";
  if (up_ != nullptr) {
    UpstreamConn* dead = up_;
    up_ = nullptr;
    worker_->CloseUpstream(dead);
  }
  // Nothing reached the upstream: any method may go to another pick.
  if (!Retry()) SendLocal(503, "upstream connect error\n", {}, "UF");
}

bool HttpConnection::Retry() {
  Request& rq = *rq_;
  if (rq.retries_left > 0 && rq.body_done && !rq.upstream_head.empty()) {
    --rq.retries_left;
    rq.cluster->stats->rq_retry.Inc();
    rq.cluster->lb->OnRequestEnd(*rq.host, std::chrono::nanoseconds(0));
    upstream::Host* host = rq.cluster->lb->ChooseHost({});
    if (host != nullptr) {
      for (const auto& h : rq.cluster->hosts.all_hosts()) {
        if (h.get() == host) rq.host = h;
      }
      if (rq.host_stats) rq.host_stats->http.rq_active.Add(-1);
      rq.host_stats = worker_->StatsForHost(*rq.cluster, *host);
      if (rq.host_stats) rq.host_stats->http.rq_active.Add(1);
      rq.cluster->lb->OnRequestStart(*host);
      if (Dispatch()) WriteUpstream();
      return true;
    }
  }
  return false;
}

void HttpConnection::ForwardRequestBody() {
  Request& rq = *rq_;
  if (up_ == nullptr) return;
  std::string_view data = in_.readable();
  size_t take = 0;
  if (rq.body == http1::BodyKind::kContentLength) {
    take = static_cast<size_t>(std::min<uint64_t>(rq.body_remaining, data.size()));
    rq.body_remaining -= take;
    if (rq.body_remaining == 0) rq.body_done = true;
  } else if (rq.body == http1::BodyKind::kChunked) {
    auto result = rq.chunked.Scan(data, &take);
    if (result == http1::ChunkedScanner::Result::kError) {
      rq.keep_alive = false;
      listener_->stats->http_parse_error.Inc();
      SendLocal(400, "bad chunked body\n", {}, "DPE");
      return;
    }
    if (result == http1::ChunkedScanner::Result::kDone) rq.body_done = true;
  }
  if (take > 0) {
    up_->out_.Append(data.substr(0, take));
    in_.Consume(take);
    rq.bytes_received += take;
  }
  if (rq.body_done) state_ = State::kWaitResponse;
  WriteUpstream();
  if (up_ != nullptr && UpstreamBacklog() > kHighWater) read_paused_ = true;
}

void HttpConnection::WriteUpstream() {
  if (up_ == nullptr || !up_->connected_) return;
  const size_t before = up_->out_.size();
  const bool ok = worker_->loop_->Write(up_->fd_, up_->out_);
  // What left the buffer went to the socket, or to the ring, which may deliver it: either way
  // it may reach the upstream.
  if (rq_ && up_->out_.size() < before) rq_->sent = true;
  if (!ok) UpstreamGone();
}

// ---------------------------------------------------------------------------------------------
// Upstream side.

void UpstreamConn::OnEvents(uint32_t events) {
  if (closed_) return;
  if (owner_ != nullptr) {
    owner_->OnUpstreamEvents(this, events);
    return;
  }
  // Idle in the pool: any input or hang-up means the server is done with this connection.
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) worker_->CloseUpstream(this);
}

void HttpConnection::OnUpstreamEvents(UpstreamConn* up, uint32_t events) {
  if (up != up_) return;
  if (!up->connected_) {
    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    if (net::ConnectResult(up->fd_) != 0 || (events & EPOLLERR)) {
      ConnectFailed("connect");
      return;
    }
    up->connected_ = true;
  }
  if (events & EPOLLOUT) {
    WriteUpstream();
    if (closed_ || up_ == nullptr) return;
    if (state_ == State::kTunnel) {
      TunnelPump();  // a half-close waiting for the client's bytes to drain goes out now
      if (closed_ || up_ != up) return;
    }
    if (read_paused_ && UpstreamBacklog() < kLowWater) {
      read_paused_ = false;
      ReadDownstream();
      if (closed_ || up_ != up) return;
    }
  }
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
    up->readable_ = true;
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) up->rdhup_ = true;
    ReadUpstream();
  }
}

// Read by read, as ReadDownstream: each read is passed on before the next, and reading stops
// while the client's backlog is above the watermark (ProcessResponse pauses it).
void HttpConnection::ReadUpstream() {
  if (up_ == nullptr || up_->read_paused_) return;
  UpstreamConn* up = up_;
  bool unprocessed = true;
  struct Reading {
    bool* flag;
    bool before;
    ~Reading() { *flag = before; }
  } reading{&reading_upstream_, reading_upstream_};
  reading_upstream_ = true;
  while (up->readable_ && !up->read_paused_ && up->in_.size() < net::Buffer::kReadSize) {
    long n = up->in_.ReadFrom(up->fd_);
    if (n > 0) {
      if (static_cast<size_t>(n) < net::Buffer::kReadSize && !up->rdhup_) up->readable_ = false;
      ProcessResponse();
      unprocessed = false;
      // Finished (the connection went back to the pool, or was closed) or the client is gone.
      if (closed_ || up_ != up) return;
      continue;
    }
    up->readable_ = false;
    if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
      up->eof_ = true;  // a reset is treated like a close, with whatever was read
      unprocessed = true;
    }
    break;
  }
  if (unprocessed) ProcessResponse();
}

void HttpConnection::ProcessResponse() {
  if (!rq_ || up_ == nullptr) return;
  if (state_ == State::kTunnel) {
    TunnelPump();
    return;
  }
  Request& rq = *rq_;
  UpstreamConn* up = up_;
  while (!rq.response_started) {
    http1::MessageHead& head = response_head_;
    http1::ParseError error;
    auto status =
        http1::ParseResponseHead(up->in_.readable(), rq.method, http1::Limits{}, &head, &error);
    if (status == http1::ParseStatus::kIncomplete) {
      if (up->eof_) UpstreamGone();
      return;
    }
    if (status == http1::ParseStatus::kError) {
      rq.cluster->stats->rq_reset.Inc();
      rq.cluster->stats->cx_protocol_error.Inc();
      up_ = nullptr;
      worker_->CloseUpstream(up);
      rq.keep_alive = rq.keep_alive && rq.body_done;
      SendLocal(502, "upstream sent an invalid response\n", {}, "UPE");
      return;
    }
    if (head.status < 200) {
      if (head.status == 101 && !rq.upgrade.empty()) {
        StartTunnel(head);
        return;
      }
      // Interim responses (100 Continue, 103) were answered or are dropped here; the final one
      // follows on the same connection.
      up->in_.Consume(head.head_size);
      if (head.status == 101) {
        up_ = nullptr;
        worker_->CloseUpstream(up);
        rq.keep_alive = false;
        SendLocal(502, "upgrades are not supported\n", {}, "UPE");
        return;
      }
      continue;
    }
    rq.response_started = true;
    rq.status = head.status;
    rq.response_body = head.body;
    rq.response_remaining = head.body == http1::BodyKind::kContentLength ? head.content_length : 0;
    rq.upstream_keep_alive = head.keep_alive;
    if (listener_->draining || close_after_response_) rq.keep_alive = false;
    // A body delimited by close can only reach the client the same way.
    if (head.body == http1::BodyKind::kUntilClose) rq.keep_alive = false;
    if (!rq.body_done) rq.keep_alive = false;  // answered before the request finished

    HeaderList& response_headers = response_headers_;  // reused, as the parsed head
    response_headers.Reset();
    nominated_.clear();
    http1::ConnectionOptions(head, &nominated_);
    for (const http1::Header& h : head.headers) {
      if (HopByHop(h.name, nominated_) || http1::EqualsIgnoreCase(h.name, "content-length")) {
        continue;
      }
      response_headers.AddView(h.name, h.value);
    }
    if (rq.response_ops != nullptr) router::ApplyHeaderOps(*rq.response_ops, &response_headers);
    scratch_.clear();
    absl::StrAppend(&scratch_, "HTTP/1.", rq.version_minor, " ", head.status, " ",
                    Sv(head.reason.empty() ? http::ReasonPhrase(head.status) : head.reason),
                    "\r\n");
    response_headers.AppendTo(&scratch_);
    if (head.body == http1::BodyKind::kContentLength) {
      absl::StrAppend(&scratch_, "content-length: ", head.content_length, "\r\n");
    } else if (head.body == http1::BodyKind::kChunked) {
      scratch_ += "transfer-encoding: chunked\r\n";
    } else if (head.body == http1::BodyKind::kNone && head.status != 204 && head.status != 304 &&
               rq.method != "HEAD") {
      scratch_ += "content-length: 0\r\n";
    }
    if (!rq.keep_alive) {
      scratch_ += "connection: close\r\n";
    } else if (rq.version_minor == 0) {
      scratch_ += "connection: keep-alive\r\n";
    }
    scratch_ += "\r\n";
    rq.response_mark = out_.size();
    out_.Append(scratch_);
    up->in_.Consume(head.head_size);
  }

  bool done = false;
  std::string_view data = up->in_.readable();
  size_t take = 0;
  switch (rq.response_body) {
    case http1::BodyKind::kNone:
      done = true;
      break;
    case http1::BodyKind::kContentLength:
      take = static_cast<size_t>(std::min<uint64_t>(rq.response_remaining, data.size()));
      rq.response_remaining -= take;
      done = rq.response_remaining == 0;
      break;
    case http1::BodyKind::kChunked: {
      auto result = rq.response_chunked.Scan(data, &take);
      if (result == http1::ChunkedScanner::Result::kError) {
        rq.cluster->stats->rq_reset.Inc();
        rq.cluster->stats->cx_protocol_error.Inc();
        if (rq.response_flushed) {
          Reset("UPE");  // the client has part of the response: only a reset can say so
          return;
        }
        // Nothing of it has left: take the head back and answer for the upstream.
        out_.Truncate(rq.response_mark);
        up_ = nullptr;
        worker_->CloseUpstream(up);
        rq.keep_alive = rq.keep_alive && rq.body_done;
        SendLocal(502, "upstream sent an invalid response\n", {}, "UPE");
        return;
      }
      done = result == http1::ChunkedScanner::Result::kDone;
      break;
    }
    case http1::BodyKind::kUntilClose:
      take = data.size();
      done = up->eof_;
      break;
  }
  if (take > 0) {
    out_.Append(data.substr(0, take));
    rq.bytes_sent += take;
    up->in_.Consume(take);
  }
  if (done) {
    // Reusable only when the exchange ended cleanly on both sides with nothing left over.
    ReleaseUpstream(rq.upstream_keep_alive && rq.body_done && up->in_.empty() && !up->eof_ &&
                    rq.response_body != http1::BodyKind::kUntilClose);
    FinishRequest();
    return;
  }
  if (up->eof_) {
    UpstreamGone();
    return;
  }
  if (DownstreamBacklog() > kHighWater) up->read_paused_ = true;
  Flush();
}

// The upstream accepted the upgrade: its 101 goes to the client, then both connections carry
// opaque bytes. The route timeout no longer applies; the tunnel lasts while both ends want it.
void HttpConnection::StartTunnel(const http1::MessageHead& head) {
  Request& rq = *rq_;
  rq.response_started = true;
  rq.status = 101;
  rq.keep_alive = false;
  rq.deadline = Clock::time_point::max();
  std::string_view upgrade = rq.upgrade;
  HeaderList response_headers;
  nominated_.clear();
  http1::ConnectionOptions(head, &nominated_);
  for (const http1::Header& h : head.headers) {
    if (http1::EqualsIgnoreCase(h.name, "upgrade")) upgrade = h.value;
    if (HopByHop(h.name, nominated_) || http1::EqualsIgnoreCase(h.name, "content-length")) continue;
    response_headers.AddView(h.name, h.value);
  }
  if (rq.response_ops != nullptr) router::ApplyHeaderOps(*rq.response_ops, &response_headers);
  scratch_.clear();
  absl::StrAppend(&scratch_, "HTTP/1.1 101 ",
                  Sv(head.reason.empty() ? http::ReasonPhrase(101) : head.reason), "\r\n");
  response_headers.AppendTo(&scratch_);
  absl::StrAppend(&scratch_, "connection: upgrade\r\nupgrade: ", Sv(upgrade), "\r\n\r\n");
  out_.Append(scratch_);
  up_->in_.Consume(head.head_size);  // the views above are no longer needed
  state_ = State::kTunnel;
  idle_since_ = worker_->loop_->now();
  TunnelPump();
}

// Moves what either side sent to the other, passes the client's half-close on, and ends the
// exchange once the upstream has closed and the client has everything.
void HttpConnection::TunnelPump() {
  Request& rq = *rq_;
  UpstreamConn* up = up_;
  if (!in_.empty() || !up->in_.empty()) idle_since_ = worker_->loop_->now();
  if (!in_.empty()) {
    rq.bytes_received += in_.size();
    up->out_.Append(in_.readable());
    in_.Clear();
    WriteUpstream();
    if (closed_ || up_ == nullptr) return;
    if (UpstreamBacklog() > kHighWater) read_paused_ = true;
  }
  if (!up->in_.empty()) {
    rq.bytes_sent += up->in_.size();
    out_.Append(up->in_.readable());
    up->in_.Clear();
    if (DownstreamBacklog() > kHighWater) up->read_paused_ = true;
  }
  if (peer_eof_ && !upstream_write_shut_ && up->connected_ && up->out_.empty()) {
    worker_->loop_->ShutdownWrite(up->fd_);
    upstream_write_shut_ = true;
  }
  if (up->eof_) {
    ReleaseUpstream(false);
    FinishRequest();  // not keep-alive: the client gets the rest, then the connection closes
    return;
  }
  Flush();
}

// The upstream closed or failed before the response was complete.
void HttpConnection::UpstreamGone() {
  Request& rq = *rq_;
  UpstreamConn* up = up_;
  up_ = nullptr;
  if (up != nullptr) worker_->CloseUpstream(up);
  rq.cluster->stats->rq_reset.Inc();
  if (!rq.response_started) {
    // A pooled connection the server had just closed, before any byte of the request went
    // out: nothing can have been processed, so an idempotent request is sent again, once.
    // Anything that was written may have been acted on (RFC 9110 §9.2.2): only the route's
    // retry policy can ask for it to be sent again.
    const bool replayable = rq.body_done && !rq.upstream_head.empty();
    if (rq.reused_connection && !rq.sent && replayable && IsIdempotent(rq.method)) {
      rq.reused_connection = false;
      if (Dispatch()) WriteUpstream();
      return;
    }
    using namespace router::retry_on;
    const bool policy_covers = (rq.retry_on & (kReset | k5xx | kGatewayError)) != 0 ||
                               ((rq.retry_on & kResetBeforeRequest) != 0 && !rq.sent);
    if (policy_covers && Retry()) return;
    rq.keep_alive = rq.keep_alive && rq.body_done;
    SendLocal(503, "upstream connect error or disconnect/reset before headers\n", {}, "UC");
    return;
  }
  Reset("UC");
}

void HttpConnection::ReleaseUpstream(bool reusable) {
  UpstreamConn* up = up_;
  up_ = nullptr;
  if (up == nullptr) return;
  if (reusable) {
    worker_->ReturnIdle(up);
  } else {
    worker_->CloseUpstream(up);
  }
}

// ---------------------------------------------------------------------------------------------
// Completion.

void HttpConnection::SendLocal(int status, std::string_view body, std::string_view extra_headers,
                               const char* flags) {
  Request& rq = *rq_;
  if (up_ != nullptr) ReleaseUpstream(false);
  // An unread request body would be taken for the next request: close instead.
  if (!rq.body_done) rq.keep_alive = false;
  if (listener_->draining || close_after_response_) rq.keep_alive = false;
  rq.status = status;
  rq.flags = flags;
  rq.response_started = true;
  scratch_.clear();
  absl::StrAppend(&scratch_, "HTTP/1.", rq.version_minor, " ", status, " ",
                  Sv(http::ReasonPhrase(status)), "\r\n", Sv(extra_headers));
  if (status != 204 && status != 304) {
    absl::StrAppend(&scratch_, "content-length: ", body.size(), "\r\n");
    if (!body.empty()) scratch_ += "content-type: text/plain\r\n";
  }
  if (!rq.keep_alive) scratch_ += "connection: close\r\n";
  scratch_ += "\r\n";
  if (rq.method != "HEAD") {
    scratch_.append(body);
    rq.bytes_sent += body.size();
  }
  out_.Append(scratch_);
  FinishRequest();
}

void HttpConnection::FinishRequest() {
  Request& rq = *rq_;
  auto elapsed = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - rq.start);
  listener_->stats->http.rq_active.Add(-1);
  listener_->stats->http.Completed(rq.status, elapsed);
  if (rq.route_stats) {
    if (rq.host) rq.route_stats->http.rq_active.Add(-1);
    rq.route_stats->http.Completed(rq.status, elapsed);
  }
  if (rq.host) {
    rq.cluster->stats->http.rq_active.Add(-1);
    rq.cluster->stats->http.Completed(rq.status, elapsed);
    if (rq.host_stats) {
      rq.host_stats->http.rq_active.Add(-1);
      rq.host_stats->http.Completed(rq.status, elapsed);
    }
    rq.cluster->lb->OnRequestEnd(*rq.host, elapsed);
  }
  AccessLog();
  const bool keep_alive = rq.keep_alive;
  rq_.reset();
  idle_since_ = worker_->loop_->now();
  if (keep_alive) {
    state_ = State::kHead;
    // A pipelined request may already be buffered; Process() continues with it.
    read_paused_ = false;
    // Inside Process() its loop continues with any pipelined request. Otherwise read what
    // arrived while the response was pending: edge-triggered, so no new event will say so.
    if (!processing_) ReadDownstream();
    return;
  }
  CloseAfterFlush();
}

void HttpConnection::AccessLog() {
  if (!worker_->options_.access_log) return;
  const Request& rq = *rq_;
  double ms = std::chrono::duration<double, std::milli>(Clock::now() - rq.start).count();
  std::string line;
  line.reserve(512);
  absl::StrAppend(&line, "{\"start_time\":\"", Iso8601(rq.wall_start),
                  "\",\"method\":", JsonString(rq.method), ",\"path\":", JsonString(rq.path),
                  ",\"protocol\":\"HTTP/1.", rq.version_minor, "\",\"response_code\":", rq.status,
                  ",\"response_flags\":\"", rq.flags, "\",\"bytes_received\":", rq.bytes_received,
                  ",\"bytes_sent\":", rq.bytes_sent, ",\"duration_ms\":", ms,
                  ",\"upstream_host\":", JsonString(rq.host ? rq.host->hash_key() : ""),
                  ",\"upstream_cluster\":", JsonString(rq.cluster ? rq.cluster->config->name : ""),
                  ",\"route_name\":", JsonString(rq.route ? rq.route->name() : ""),
                  ",\"x_request_id\":", JsonString(rq.request_id),
                  ",\"authority\":", JsonString(rq.authority),
                  ",\"user_agent\":", JsonString(rq.user_agent),
                  ",\"listener\":", JsonString(listener_->config->name), "}\n");
  worker_->Log(std::move(line));
}

void HttpConnection::Flush() {
  if (closed_) return;
  if (rq_ && rq_->response_started && !out_.empty()) rq_->response_flushed = true;
  if (!out_.empty() && !worker_->loop_->Write(fd_, out_)) {
    if (rq_) listener_->stats->downstream_rq_rx_reset.Inc();
    Close();
    return;
  }
  if (up_ != nullptr && up_->read_paused_ && DownstreamBacklog() < kLowWater) {
    up_->read_paused_ = false;
    // Inside ReadUpstream its loop carries on; calling it again would nest once per drained
    // watermark's worth of a long response.
    if (!reading_upstream_) ReadUpstream();
    if (closed_) return;
  }
  if (state_ == State::kClosing && OutputDrained() && !write_shut_) {
    // Half-close, then drain the client's input briefly: closing with unread input would send
    // a reset that can destroy the answer before the client reads it.
    worker_->loop_->ShutdownWrite(fd_);
    write_shut_ = true;
    linger_deadline_ = worker_->loop_->now() + kLingerTime;
    if (peer_eof_) Close();
  }
}

void HttpConnection::Reset(const char* flags) {
  if (rq_) {
    rq_->flags = flags;
    AccessLog();
  }
  // SO_LINGER with a zero timeout: close(2) sends RST and drops what is unsent.
  linger abort{1, 0};
  setsockopt(fd_, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
  Close();
}

void HttpConnection::CloseAfterFlush() {
  state_ = State::kClosing;
  Flush();
  if (!closed_) Process();
}

void HttpConnection::Close() {
  if (closed_) return;
  closed_ = true;
  if (rq_) {
    // Abandoned mid-request: account for it so the gauges return to zero.
    Request& rq = *rq_;
    if (up_ != nullptr) ReleaseUpstream(false);
    listener_->stats->http.rq_active.Add(-1);
    if (rq.route_stats && rq.host) rq.route_stats->http.rq_active.Add(-1);
    if (rq.host) {
      rq.cluster->stats->http.rq_active.Add(-1);
      if (rq.host_stats) rq.host_stats->http.rq_active.Add(-1);
      rq.cluster->lb->OnRequestEnd(*rq.host, std::chrono::nanoseconds(0));
    }
    rq_.reset();
  }
  worker_->loop_->Close(fd_);
  listener_->stats->cx_active.Add(-1);
  worker_->Forget(this);
}

void HttpConnection::CheckTimeouts(Clock::time_point now) {
  if (closed_) return;
  if (state_ == State::kClosing) {
    if (write_shut_ && now >= linger_deadline_) Close();
    return;
  }
  if (rq_ && state_ == State::kTunnel) {
    // A tunnel is a connection of its own: the connection idle timeout ends one nobody uses.
    const auto idle = listener_->config->http.idle_timeout;
    if (idle.count() > 0 && now - idle_since_ >= idle) {
      listener_->stats->cx_idle_timeout.Inc();
      ReleaseUpstream(false);
      FinishRequest();
    }
    return;
  }
  if (rq_) {
    Request& rq = *rq_;
    if (up_ != nullptr && !up_->connected_ && now >= up_->connect_deadline_) {
      ConnectFailed("connect timeout");
      return;
    }
    if (now >= rq.deadline) {
      if (rq.cluster) rq.cluster->stats->http.rq_timeout.Inc();
      listener_->stats->http.rq_timeout.Inc();
      if (rq.host_stats) rq.host_stats->http.rq_timeout.Inc();
      if (!rq.response_started) {
        rq.keep_alive = false;
        SendLocal(504, "upstream request timeout\n", {}, "UT");
      } else {
        Reset("UT");
      }
    }
    return;
  }
  const auto& settings = listener_->config->http;
  if (head_started_ != Clock::time_point{} && settings.request_headers_timeout.count() > 0 &&
      now - head_started_ >= settings.request_headers_timeout) {
    listener_->stats->downstream_rq_header_timeout.Inc();
    listener_->stats->http.rq_timeout.Inc();
    head_started_ = {};
    RefuseAndClose(408, "request headers timeout\n", "-");
    return;
  }
  if (settings.idle_timeout.count() > 0 && now - idle_since_ >= settings.idle_timeout) {
    listener_->stats->cx_idle_timeout.Inc();
    Close();
    return;
  }
  if (listener_->draining && idle()) Close();
}

// ---------------------------------------------------------------------------------------------
// Worker.

Worker::Impl::~Impl() {
  for (HttpConnection* c : std::list<HttpConnection*>(connections_)) c->Close();
  for (auto& [key, conns] : idle_) {
    for (UpstreamConn* c : conns) {
      loop_->Close(c->fd_);
      delete c;
    }
  }
  idle_.clear();
  for (auto& [name, l] : listeners_) loop_->Remove(l->fd);
  FlushLog();
}

void Worker::Impl::Forget(HttpConnection* conn) {
  connections_.erase(conn->self_);
  --connection_count_;
  loop_->DeferDelete(std::unique_ptr<net::Deferred>(conn));
}

UpstreamConn* Worker::Impl::TakeIdle(const std::string& key) {
  auto it = idle_.find(key);
  if (it == idle_.end()) return nullptr;
  while (!it->second.empty()) {
    UpstreamConn* conn = it->second.back();
    it->second.pop_back();
    if (!conn->closed_) return conn;
  }
  return nullptr;
}

void Worker::Impl::ReturnIdle(UpstreamConn* conn) {
  conn->owner_ = nullptr;
  conn->read_paused_ = false;
  auto& list = idle_[conn->key_];
  if (list.size() >= options_.max_idle_per_host) {
    CloseUpstream(conn);
    return;
  }
  list.push_back(conn);
}

void Worker::Impl::CloseUpstream(UpstreamConn* conn) {
  if (conn->closed_) return;
  conn->closed_ = true;
  if (conn->owner_ == nullptr) {
    auto it = idle_.find(conn->key_);
    if (it != idle_.end()) std::erase(it->second, conn);
  }
  conn->owner_ = nullptr;
  conn->cluster_stats_->cx_active.Add(-1);
  loop_->Close(conn->fd_);
  loop_->DeferDelete(std::unique_ptr<net::Deferred>(conn));
}

namespace {

// Over the connection limit: a client gets a 503 it can act on rather than a bare close. What
// it already sent is read first (unread bytes would turn the close into a RST that can destroy
// the answer before it is read); nothing more is waited for.
void RefuseOverflow(int fd) {
  static constexpr std::string_view kAnswer =
      "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: 31\r\n"
      "connection: close\r\n\r\nproxy connection limit reached\n";
  char sink[4096];
  for (int i = 0; i < 16 && recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0; ++i) {
  }
  (void)send(fd, kAnswer.data(), kAnswer.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  shutdown(fd, SHUT_WR);
  close(fd);
}

}  // namespace

void Worker::Impl::Accept(ListenerRuntime* listener) {
  for (;;) {
    int fd = accept4(listener->fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;  // EAGAIN, or out of descriptors: the next readiness edge retries
    }
    if (listener->draining) {
      close(fd);
      continue;
    }
    if (options_.max_connections != 0 && connection_count_ >= options_.max_connections) {
      listener->stats->cx_overflow.Inc();
      RefuseOverflow(fd);
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto it = listeners_.find(listener->config->name);
    std::shared_ptr<ListenerRuntime> ref =
        it != listeners_.end() && it->second.get() == listener ? it->second : nullptr;
    if (!ref) {
      close(fd);
      continue;
    }
    auto* conn = new HttpConnection(this, fd, std::move(ref));
    connections_.push_front(conn);
    conn->self_ = connections_.begin();
    ++connection_count_;
    loop_->Add(fd, conn);
  }
}

void Worker::Impl::Tick() {
  const auto now = loop_->now();
  for (auto it = connections_.begin(); it != connections_.end();) {
    HttpConnection* c = *it++;  // CheckTimeouts may erase c from the list
    c->CheckTimeouts(now);
  }
  FlushLog();
}

RouteStats* Worker::Impl::StatsForRoute(const router::RouteTable& table,
                                        const router::Route& route) {
  auto it = route_stats_.find(&route);
  if (it != route_stats_.end()) return it->second;
  std::string name = route.name();
  if (name.empty()) {
    const auto& routes = route.virtual_host().routes();
    name = absl::StrCat(route.virtual_host().name(), "/", &route - routes.data());
  }
  RouteStats* stats = stats_->Route(absl::StrCat(table.name(), "/", name));
  route_stats_[&route] = stats;
  return stats;
}

void Worker::Impl::Apply(std::shared_ptr<const WorkerSnapshot> snapshot) {
  const ProxyConfig& config = *snapshot->config;

  // Runtimes this worker has built follow the config; the others are built on first use.
  std::unordered_map<std::string, std::shared_ptr<ClusterRuntime>> clusters;
  for (auto& [name, old] : clusters_) {
    auto cfg = config.clusters.find(name);
    if (cfg == config.clusters.end()) continue;  // removed: in-flight requests hold their own
    clusters[name] = old->config == cfg->second ? old : BuildCluster(cfg->second, old.get());
  }
  clusters_.swap(clusters);
  if (options_.index == 0) {
    // One worker registers every cluster's stats block, so /stats lists each cluster from the
    // start (merged over workers, one block suffices); the others add theirs on first use.
    const ProxyConfig* before = snapshot_ ? snapshot_->config.get() : nullptr;
    for (const auto& [name, cfg] : config.clusters) {
      if (before == nullptr || !before->clusters.contains(name)) stats_->Cluster(name);
    }
  }

  std::map<std::string, std::shared_ptr<ListenerRuntime>> listeners;
  for (const auto& [name, cfg] : config.listeners) {
    auto s = snapshot->sockets.find(name);
    if (s == snapshot->sockets.end()) continue;  // could not bind: not served
    auto old = listeners_.find(name);
    std::shared_ptr<ListenerRuntime> runtime;
    if (old != listeners_.end() && old->second->sockets == s->second) {
      runtime = old->second;
    } else {
      runtime = std::make_shared<ListenerRuntime>();
      runtime->worker = this;
      runtime->sockets = s->second;
      runtime->fd = s->second->fd(static_cast<size_t>(options_.index));
      runtime->stats = stats_->Listener(name);
      loop_->Add(runtime->fd, runtime.get(), EPOLLIN);
    }
    runtime->config = cfg;
    if (cfg->http.inline_routes) {
      runtime->routes = cfg->http.inline_routes;
    } else {
      auto r = config.routes.find(cfg->http.rds_name);
      runtime->routes = r == config.routes.end() ? nullptr : r->second;
    }
    listeners[name] = std::move(runtime);
  }
  for (auto& [name, old] : listeners_) {
    auto it = listeners.find(name);
    if (it != listeners.end() && it->second == old) continue;
    // Removed or rebound: stop accepting; open connections finish what they carry and close.
    loop_->Remove(old->fd);
    old->draining = true;
  }
  listeners_.swap(listeners);
  route_stats_.clear();  // route objects of replaced tables may be reused addresses
  snapshot_ = std::move(snapshot);
  serving_generation_->store(snapshot_->config->generation);
  // Wake idle keep-alive connections of drained listeners now rather than at their next tick.
  Tick();
}

Worker::Worker(WorkerOptions options)
    : impl_(std::make_unique<Impl>(std::move(options), &serving_generation_)) {}

Worker::~Worker() { Stop(); }

absl::Status Worker::Start() {
  if (auto s = impl_->Init(); !s.ok()) return s;
  thread_ = std::thread([this] { impl_->loop_->Run(); });
  return absl::OkStatus();
}

void Worker::Stop() {
  if (!thread_.joinable()) return;
  impl_->loop_->Stop();
  thread_.join();
  impl_.reset();
}

void Worker::Publish(std::shared_ptr<const WorkerSnapshot> snapshot) {
  Impl* impl = impl_.get();
  impl->loop_->Post(
      [impl, snapshot = std::move(snapshot)]() mutable { impl->Apply(std::move(snapshot)); });
}

}  // namespace weft::proxy
