// TCP health checks (see probers.h).
#include <map>
#include <utility>
#include <vector>

#include "common/xds/failover_check.h"
#include "data-plane/upstream/health/probers/internal.h"

namespace weft::upstream::health::probers_internal {
namespace {

class TcpProber final : public Prober {
 public:
  TcpProber(ProbeLoop* loop, std::string send, std::vector<std::string> receive)
      : loop_(loop), send_(std::move(send)), receive_(std::move(receive)) {}
  ~TcpProber() override;

  void Probe(const std::string& host, milliseconds timeout,
             std::function<void(ProbeResult)> done) override;

 private:
  class Conn;
  void Forget(const std::string& host);

  ProbeLoop* loop_;
  const std::string send_;
  const std::vector<std::string> receive_;
  std::map<std::string, std::unique_ptr<Conn>> in_flight_;
};

class TcpProber::Conn final : public Session {
 public:
  Conn(TcpProber* owner, std::string host, std::function<void(ProbeResult)> done)
      : Session(owner->loop_), owner_(owner), host_(std::move(host)), done_(std::move(done)) {}

 protected:
  void OnConnected() override {
    if (owner_->receive_.empty()) Finish(ProbeResult::kSuccess);
  }

  // Every block in order, anywhere in the stream: `seen_` holds what may still start the
  // next block (at most its length minus one byte once it was not found).
  void OnReadable(net::Buffer& in) override {
    seen_.append(in.readable().data(), in.size());
    in.Consume(in.size());
    const auto& blocks = owner_->receive_;
    while (next_ < blocks.size()) {
      const size_t at = seen_.find(blocks[next_]);
      if (at == std::string::npos) {
        const size_t keep = blocks[next_].size() - 1;
        if (seen_.size() > keep) seen_.erase(0, seen_.size() - keep);
        return;
      }
      seen_.erase(0, at + blocks[next_].size());
      ++next_;
    }
    Finish(ProbeResult::kSuccess);
  }

  void OnClosed() override { Finish(ProbeResult::kFailure); }
  void OnTimeout() override { Finish(ProbeResult::kTimeout); }

 private:
  friend class TcpProber;
  void Finish(ProbeResult result) {
    auto done = std::exchange(done_, nullptr);
    Close();
    owner_->Forget(host_);  // deletion waits for the loop's batch to end
    if (done) done(result);
  }

  TcpProber* owner_;
  std::string host_;
  std::function<void(ProbeResult)> done_;
  std::string seen_;
  size_t next_ = 0;
};

TcpProber::~TcpProber() {
  for (auto& [host, conn] : in_flight_) Session::Release(std::move(conn));
}

void TcpProber::Forget(const std::string& host) {
  auto it = in_flight_.find(host);
  if (it == in_flight_.end()) return;
  Session::Release(std::move(it->second));
  in_flight_.erase(it);
}

void TcpProber::Probe(const std::string& host, milliseconds timeout,
                      std::function<void(ProbeResult)> done) {
  Forget(host);  // the checker sends one probe per host at a time; be safe anyway
  auto address = ParseHostKey(host);
  auto conn = std::make_unique<Conn>(this, host, std::move(done));
  if (!address.ok() || !conn->Connect(*address)) {
    auto failed = std::exchange(conn->done_, nullptr);
    Session::Release(std::move(conn));
    failed(ProbeResult::kFailure);
    return;
  }
  Conn* c = conn.get();
  in_flight_[host] = std::move(conn);
  c->Arm(loop_->clock()->Now() + timeout);
  if (!send_.empty() && !c->Send(send_)) c->Finish(ProbeResult::kFailure);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Prober>> NewTcpProber(
    ProbeLoop* loop, const envoy::config::core::v3::HealthCheck::TcpHealthCheck& c) {
  std::string send;
  if (c.has_send()) {
    auto bytes = xds::HealthCheckPayload(c.send());
    if (!bytes.ok()) return bytes.status();
    send = std::move(*bytes);
  }
  std::vector<std::string> receive;
  for (const auto& block : c.receive()) {
    auto bytes = xds::HealthCheckPayload(block);
    if (!bytes.ok()) return bytes.status();
    receive.push_back(std::move(*bytes));
  }
  return std::make_unique<TcpProber>(loop, std::move(send), std::move(receive));
}

}  // namespace weft::upstream::health::probers_internal
