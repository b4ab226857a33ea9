// Private to probers/: one connection to one host over the loop, shared by the three probers,
// and the builders NewProber dispatches to once xds::CheckHealthCheck accepted the config.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "data-plane/net/event_loop.h"
#include "data-plane/net/socket.h"
#include "data-plane/upstream/health/probers/probers.h"

namespace weft::upstream::health::probers_internal {

// "address:port" (the address may be IPv6 without brackets) → a socket address.
absl::StatusOr<net::SocketAddress> ParseHostKey(const std::string& key);

// A non-blocking connection with a deadline for the probe it carries. Subclasses get the
// connection's events; the owner (a prober) destroys a session with Release(), which closes
// the socket and defers the deletion past the loop's current batch of events.
class Session : public net::EventHandler, public net::Deferred, public ProbeLoop::Timed {
 public:
  explicit Session(ProbeLoop* loop) : loop_(loop) {}
  ~Session() override;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Starts connecting; false when the connect failed at once (the socket is then closed).
  bool Connect(const net::SocketAddress& address);
  bool open() const { return fd_ >= 0; }
  bool connected() const { return fd_ >= 0 && !connecting_; }
  // Queues bytes and writes what the socket takes (the rest on EPOLLOUT, or once connected).
  // False when the connection broke: it is closed, and OnClosed is not called.
  bool Send(std::string_view bytes);
  void Close();
  // The probe in flight ends at `deadline` (OnTimeout) unless Disarm()ed first.
  void Arm(Clock::TimePoint deadline);
  void Disarm();
  ProbeLoop* probe_loop() const { return loop_; }

  // Closes and hands the session to the loop for deletion after the current batch.
  static void Release(std::unique_ptr<Session> session);

  void OnEvents(uint32_t events) final;
  void OnDeadline() final;

 protected:
  virtual void OnConnected() = 0;
  // New bytes are in `in`; consume what was used.
  virtual void OnReadable(net::Buffer& in) = 0;
  // The connect failed, the peer closed, or the connection broke. The socket is closed.
  virtual void OnClosed() = 0;
  // The deadline passed. The socket is still open; close it if the probe is over.
  virtual void OnTimeout() = 0;

 private:
  ProbeLoop* loop_;
  int fd_ = -1;
  bool connecting_ = false;
  bool armed_ = false;
  net::Buffer in_;
  net::Buffer out_;
};

// Connections kept per host for the next probe (HTTP, gRPC). Conn is a Session built as
// Conn(owner, host), with reusable() and Begin(deadline, done, reused).
template <typename Conn, typename Owner>
class KeptConnections {
 public:
  ~KeptConnections() {
    for (auto& [host, conn] : conns_) Session::Release(std::move(conn));
  }
  // On the host's kept connection when it may be reused, else on a fresh one; a connect that
  // fails at once answers kFailure at once.
  void Start(Owner* owner, const std::string& host, Clock::TimePoint deadline,
             std::function<void(ProbeResult)> done, bool may_reuse) {
    std::unique_ptr<Conn>& slot = conns_[host];
    if (may_reuse && slot != nullptr && slot->reusable()) {
      slot->Begin(deadline, std::move(done), /*reused=*/true);
      return;
    }
    Session::Release(std::move(slot));
    auto address = ParseHostKey(host);
    auto conn = std::make_unique<Conn>(owner, host);
    if (!address.ok() || !conn->Connect(*address)) {
      Session::Release(std::move(conn));
      conns_.erase(host);
      done(ProbeResult::kFailure);
      return;
    }
    slot = std::move(conn);
    slot->Begin(deadline, std::move(done), /*reused=*/false);
  }

 private:
  std::map<std::string, std::unique_ptr<Conn>> conns_;
};

absl::StatusOr<std::unique_ptr<Prober>> NewHttpProber(
    ProbeLoop* loop, const std::string& cluster,
    const envoy::config::core::v3::HealthCheck::HttpHealthCheck& config);
absl::StatusOr<std::unique_ptr<Prober>> NewTcpProber(
    ProbeLoop* loop, const envoy::config::core::v3::HealthCheck::TcpHealthCheck& config);
absl::StatusOr<std::unique_ptr<Prober>> NewGrpcProber(
    ProbeLoop* loop, const std::string& cluster,
    const envoy::config::core::v3::HealthCheck::GrpcHealthCheck& config);

}  // namespace weft::upstream::health::probers_internal
