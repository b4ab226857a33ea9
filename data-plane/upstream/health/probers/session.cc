#include <unistd.h>

#include <cerrno>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/strings.h"
#include "common/validation.h"
#include "common/xds/failover_check.h"
#include "data-plane/upstream/health/probers/internal.h"

namespace weft::upstream::health {

void ProbeLoop::Tick() {
  const Clock::TimePoint now = clock_->Now();
  std::vector<Timed*> due;
  for (Timed* t : timed_) {
    if (t->deadline <= now) due.push_back(t);
  }
  for (Timed* t : due) {
    // An earlier timeout may have ended this one too.
    if (timed_.erase(t) == 0) continue;
    t->OnDeadline();
  }
}

absl::StatusOr<std::unique_ptr<Prober>> NewProber(
    ProbeLoop* loop, const std::string& cluster,
    const envoy::config::core::v3::HealthCheck& config) {
  using HC = envoy::config::core::v3::HealthCheck;
  // What is refused is refused by the check weft-cp and the NACK path run too.
  ValidationErrors errors;
  xds::CheckHealthCheck(config, &errors);
  if (!errors.ok()) return errors.ToStatus();
  switch (config.health_checker_case()) {
    case HC::kHttpHealthCheck:
      return probers_internal::NewHttpProber(loop, cluster, config.http_health_check());
    case HC::kTcpHealthCheck:
      return probers_internal::NewTcpProber(loop, config.tcp_health_check());
    case HC::kGrpcHealthCheck:
      return probers_internal::NewGrpcProber(loop, cluster, config.grpc_health_check());
    default:
      break;
  }
  return absl::InvalidArgumentError(
      "one of http_health_check, tcp_health_check or grpc_health_check must be set");
}

namespace probers_internal {

absl::StatusOr<net::SocketAddress> ParseHostKey(const std::string& key) {
  const size_t colon = key.rfind(':');
  uint32_t port = 0;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(Sv(std::string_view(key).substr(colon + 1)), &port) || port == 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("bad host \"", key, "\""));
  }
  net::SocketAddress a;
  a.host = key.substr(0, colon);
  if (a.host.size() > 2 && a.host.front() == '[' && a.host.back() == ']') {
    a.host = a.host.substr(1, a.host.size() - 2);
  }
  a.port = static_cast<uint16_t>(port);
  return a;
}

Session::~Session() {
  if (armed_) loop_->Unwatch(this);
  if (fd_ >= 0) loop_->loop()->Close(fd_);
}

bool Session::Connect(const net::SocketAddress& address) {
  auto fd = net::ConnectNonBlocking(address);
  if (!fd.ok()) return false;
  fd_ = *fd;
  connecting_ = true;
  if (!loop_->loop()->Add(fd_, this)) {
    ::close(fd_);
    fd_ = -1;
    return false;
  }
  return true;
}

bool Session::Send(std::string_view bytes) {
  out_.Append(bytes);
  if (!connected()) return true;
  if (loop_->loop()->Write(fd_, out_)) return true;
  Close();
  return false;
}

void Session::Close() {
  Disarm();
  if (fd_ < 0) return;
  loop_->loop()->Close(fd_);
  fd_ = -1;
  connecting_ = false;
  in_.Clear();
  out_.Clear();
}

void Session::Arm(Clock::TimePoint when) {
  deadline = when;
  armed_ = true;
  loop_->Watch(this);
}

void Session::Disarm() {
  if (!armed_) return;
  armed_ = false;
  loop_->Unwatch(this);
}

void Session::Release(std::unique_ptr<Session> session) {
  if (session == nullptr) return;
  session->Close();
  net::EventLoop* loop = session->loop_->loop();
  loop->DeferDelete(std::move(session));
}

void Session::OnDeadline() {
  armed_ = false;  // the probe loop already let go of it
  OnTimeout();
}

void Session::OnEvents(uint32_t events) {
  if (fd_ < 0) return;
  if (connecting_) {
    if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0) return;
    if (net::ConnectResult(fd_) != 0) {
      Close();
      OnClosed();
      return;
    }
    connecting_ = false;
    if (!out_.empty() && !loop_->loop()->Write(fd_, out_)) {
      Close();
      OnClosed();
      return;
    }
    OnConnected();
    if (fd_ < 0) return;
  } else if ((events & EPOLLOUT) != 0 && !out_.empty()) {
    if (!loop_->loop()->Write(fd_, out_)) {
      Close();
      OnClosed();
      return;
    }
  }
  if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) == 0) return;
  // With the peer's FIN in the same event, read on to the end of the stream: edge-triggered
  // epoll will not report it again.
  const bool hangup = (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
  for (;;) {
    const long n = in_.ReadFrom(fd_);
    if (n > 0) {
      OnReadable(in_);
      if (fd_ < 0) return;
      if (static_cast<size_t>(n) < net::Buffer::kReadSize && !hangup) return;
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    Close();
    OnClosed();
    return;
  }
}

}  // namespace probers_internal
}  // namespace weft::upstream::health
