// The HTTP/1 connection pool: one stream per connection; a connection whose exchange ended
// cleanly (both sides keep-alive, nothing left over) waits idle for the next stream, newest
// first, and is closed when the server closes it or sends anything unasked.
#include <list>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/strings.h"
#include "data-plane/http/http1/codec.h"
#include "data-plane/stats/proxy_stats.h"
#include "data-plane/upstream/conn_pool.h"

namespace weft::upstream {
namespace {

using TimePoint = std::chrono::steady_clock::time_point;

class Http1Pool;

struct PendingStream final : ConnPool::Pending {
  http::ResponseDecoder* decoder = nullptr;
  PoolCallbacks* callbacks = nullptr;
  struct Client* client = nullptr;
};

struct Client final : network::ConnectionCallbacks, PoolStream, net::Deferred {
  enum class State : uint8_t { kConnecting, kIdle, kBusy, kGone };

  Http1Pool* pool = nullptr;
  std::unique_ptr<network::Connection> conn;
  std::unique_ptr<http::ClientCodec> codec;
  State state = State::kConnecting;
  PendingStream* pending = nullptr;    // connecting for this stream (null once cancelled)
  PoolCallbacks* callbacks = nullptr;  // kBusy
  http::ResponseDecoder* decoder = nullptr;
  http::RequestEncoder* request = nullptr;
  proxy::ClusterStats* stats = nullptr;
  TimePoint connect_deadline{};
  uint64_t streams = 0;  // streams this connection has carried, this one included
  std::list<std::unique_ptr<Client>>::iterator self;

  void Assign(http::ResponseDecoder& d, PoolCallbacks& cb) {
    state = State::kBusy;
    decoder = &d;
    callbacks = &cb;
    ++streams;
    request = &codec->NewStream(d);
  }

  // --- PoolStream ---
  http::RequestEncoder& encoder() override { return *request; }
  bool reused() const override { return streams > 1; }
  bool request_written() const override { return codec->request_started(); }
  void Done() override;
  void Reset() override;
  void ReadDisable(bool disable) override { conn->ReadDisable(disable); }
  std::unique_ptr<network::Connection> Detach() override;

  // --- ConnectionCallbacks ---
  void OnRead(net::Buffer& data, bool end_stream) override;
  void OnEvent(network::ConnectionEvent event) override;
  void OnWatermark(bool above) override {
    if (state == State::kBusy && callbacks != nullptr) callbacks->OnUpstreamWatermark(above);
  }
};

class Http1Pool final : public ConnPool {
 public:
  Http1Pool(net::EventLoop& loop, ConnectionFactory connect, const Http1PoolOptions& options)
      : loop_(loop), connect_(std::move(connect)), options_(options) {}
  ~Http1Pool() override {
    // Streams still open lose their connection; the pool goes with the worker.
    for (auto& c : clients_) {
      c->state = Client::State::kGone;
      if (c->stats != nullptr) c->stats->cx_active.Add(-1);
      c->conn->SetCallbacks(nullptr);
      c->conn->Close(network::CloseType::kNoFlush);
    }
  }

  Pending* NewStream(http::ResponseDecoder& decoder, PoolCallbacks& callbacks,
                     const StreamOptions& options) override {
    while (!idle_.empty()) {
      Client* c = idle_.back();
      idle_.pop_back();
      if (c->state != Client::State::kIdle ||
          c->conn->state() != network::Connection::State::kOpen) {
        continue;
      }
      if (options.cluster_stats != nullptr) options.cluster_stats->cx_reused.Inc();
      c->Assign(decoder, callbacks);
      callbacks.OnPoolReady(*c);
      return nullptr;
    }
    auto conn = connect_();
    if (!conn.ok()) {
      const absl::string_view message = conn.status().message();
      callbacks.OnPoolFailure(PoolFailure::kConnectFailure,
                              std::string_view(message.data(), message.size()));
      return nullptr;
    }
    auto client = std::make_unique<Client>();
    Client* c = client.get();
    c->pool = this;
    c->conn = std::move(*conn);
    c->codec = http::http1::NewClientCodec(*c->conn);
    c->conn->SetCallbacks(c);
    c->stats = options.cluster_stats;
    c->connect_deadline = loop_.now() + options.connect_timeout;
    if (c->stats != nullptr) {
      c->stats->cx_total.Inc();
      c->stats->cx_active.Add(1);
    }
    clients_.push_front(std::move(client));
    c->self = clients_.begin();
    auto pending = std::make_unique<PendingStream>();
    pending->decoder = &decoder;
    pending->callbacks = &callbacks;
    pending->client = c;
    c->pending = pending.get();
    pending_.push_back(std::move(pending));
    return pending_.back().get();
  }

  void Cancel(Pending* p) override {
    auto* pending = static_cast<PendingStream*>(p);
    if (pending->client != nullptr) pending->client->pending = nullptr;
    ForgetPending(pending);
  }

  void OnTick(TimePoint now) override {
    for (auto it = clients_.begin(); it != clients_.end();) {
      Client* c = (it++)->get();  // Fail may remove c
      if (c->state == Client::State::kConnecting && now >= c->connect_deadline) {
        c->conn->Close(network::CloseType::kNoFlush);
        Fail(c, PoolFailure::kTimeout, "connect timeout");
      }
    }
  }

  void Drain() override {
    std::vector<Client*> idle;
    idle.swap(idle_);
    for (Client* c : idle) {
      if (c->state == Client::State::kIdle) Remove(c);
    }
  }

  bool empty() const override { return clients_.empty(); }

  // --- For clients ---
  void OnConnected(Client* c) {
    PendingStream* pending = c->pending;
    c->pending = nullptr;
    if (pending == nullptr) {
      MakeIdle(c);
      return;
    }
    http::ResponseDecoder* decoder = pending->decoder;
    PoolCallbacks* callbacks = pending->callbacks;
    ForgetPending(pending);
    c->Assign(*decoder, *callbacks);
    callbacks->OnPoolReady(*c);
  }

  // The connect failed or timed out (the connection is closed).
  void Fail(Client* c, PoolFailure failure, std::string_view detail) {
    PendingStream* pending = c->pending;
    c->pending = nullptr;
    Remove(c);
    if (pending == nullptr) return;
    PoolCallbacks* callbacks = pending->callbacks;
    ForgetPending(pending);
    callbacks->OnPoolFailure(failure, detail);
  }

  void MakeIdle(Client* c) {
    c->decoder = nullptr;
    c->callbacks = nullptr;
    if (idle_.size() >= options_.max_idle ||
        c->conn->state() != network::Connection::State::kOpen) {
      Remove(c);
      return;
    }
    c->state = Client::State::kIdle;
    c->conn->ReadDisable(false);
    idle_.push_back(c);
  }

  void Remove(Client* c) {
    if (c->state == Client::State::kGone) return;
    c->state = Client::State::kGone;
    std::erase(idle_, c);
    if (c->stats != nullptr) c->stats->cx_active.Add(-1);
    if (c->conn) {
      c->conn->SetCallbacks(nullptr);
      c->conn->Close(network::CloseType::kNoFlush);
    }
    std::unique_ptr<Client> owned = std::move(*c->self);
    clients_.erase(c->self);
    loop_.DeferDelete(std::move(owned));
  }

  net::EventLoop& loop() { return loop_; }

 private:
  void ForgetPending(PendingStream* pending) {
    std::erase_if(pending_,
                  [&](const std::unique_ptr<PendingStream>& p) { return p.get() == pending; });
  }

  net::EventLoop& loop_;
  ConnectionFactory connect_;
  Http1PoolOptions options_;
  std::list<std::unique_ptr<Client>> clients_;
  std::vector<Client*> idle_;  // newest last: reused first, the oldest time out on the server
  std::vector<std::unique_ptr<PendingStream>> pending_;
};

void Client::Done() {
  if (state != State::kBusy) return;
  if (codec->idle_and_reusable()) {
    pool->MakeIdle(this);
  } else {
    pool->Remove(this);
  }
}

void Client::Reset() {
  if (state != State::kBusy) return;
  codec->AbandonStream();
  pool->Remove(this);
}

std::unique_ptr<network::Connection> Client::Detach() {
  codec->AbandonStream();
  conn->SetCallbacks(nullptr);
  std::unique_ptr<network::Connection> out = std::move(conn);
  pool->Remove(this);
  return out;
}

void Client::OnRead(net::Buffer& data, bool end_stream) {
  if (state == State::kBusy) {
    codec->Dispatch(data, end_stream);
    return;
  }
  // Idle (or connecting): the server has nothing to say unasked; whatever comes ends it.
  if (state != State::kGone && (!data.empty() || end_stream)) pool->Remove(this);
}

void Client::OnEvent(network::ConnectionEvent event) {
  if (event == network::ConnectionEvent::kConnected) {
    if (state == State::kConnecting) pool->OnConnected(this);
    return;
  }
  // Closed.
  switch (state) {
    case State::kConnecting:
      pool->Fail(this, PoolFailure::kConnectFailure, conn->close_reason());
      return;
    case State::kBusy: {
      std::string reason(conn->close_reason());
      pool->Remove(this);
      codec->OnConnectionClosed(reason);  // resets the stream: the router decides
      return;
    }
    case State::kIdle:
      pool->Remove(this);
      return;
    case State::kGone:
      return;
  }
}

}  // namespace

std::unique_ptr<ConnPool> NewHttp1ConnPool(net::EventLoop& loop, ConnectionFactory connect,
                                           const Http1PoolOptions& options) {
  return std::make_unique<Http1Pool>(loop, std::move(connect), options);
}

ConnectionFactory TcpConnectionFactory(net::EventLoop& loop, net::SocketAddress address) {
  return [&loop, address = std::move(address)] {
    return network::NewClientConnection(loop, address, network::NewPlainTransportSocket());
  };
}

}  // namespace weft::upstream
