#include "data-plane/network/connection.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace weft::network {
namespace {

using TimePoint = std::chrono::steady_clock::time_point;

// How many read-and-dispatch rounds one event may run before other sockets get their turn.
constexpr int kMaxReadRounds = 16;

class PlainTransportSocket final : public TransportSocket {
 public:
  void SetCallbacks(TransportSocketCallbacks& callbacks) override { callbacks_ = &callbacks; }
  IoResult DoRead(net::Buffer& buffer) override {
    IoResult r;
    long n = buffer.ReadFrom(callbacks_->fd());
    if (n > 0) {
      r.bytes = static_cast<size_t>(n);
      r.drained = r.bytes < net::Buffer::kReadSize;
      return r;
    }
    if (n == 0) {
      r.status = IoResult::Status::kEof;
      return r;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      r.status = IoResult::Status::kAgain;
      return r;
    }
    r.status = IoResult::Status::kError;
    r.error = strerror(errno);
    return r;
  }
  IoResult DoWrite(net::Buffer& buffer) override {
    IoResult r;
    const size_t before = buffer.size();
    if (!callbacks_->loop().Write(callbacks_->fd(), buffer)) {
      r.status = IoResult::Status::kError;
      r.error = strerror(errno);
      return r;
    }
    r.bytes = before - buffer.size();
    return r;
  }
  void OnConnected() override {}
  void ShutdownWrite() override { callbacks_->loop().ShutdownWrite(callbacks_->fd()); }
  bool ready() const override { return true; }

 private:
  TransportSocketCallbacks* callbacks_ = nullptr;
};

class ConnectionImpl final : public Connection,
                             public net::EventHandler,
                             public net::AfterEvent,
                             public TransportSocketCallbacks {
 public:
  ConnectionImpl(net::EventLoop& loop, int fd, std::unique_ptr<TransportSocket> transport,
                 const ConnectionOptions& options, bool client)
      : loop_(loop),
        fd_(fd),
        transport_(std::move(transport)),
        options_(options),
        client_(client),
        state_(client ? State::kConnecting : State::kOpen) {
    transport_->SetCallbacks(*this);
  }
  ~ConnectionImpl() override {
    loop_.CancelAfterEvent(this);
    if (fd_ >= 0) loop_.Close(fd_);
  }

  bool Register() { return loop_.Add(fd_, this); }
  void SetPeer(const sockaddr_storage& peer) {
    peer_ = peer;
    have_peer_ = true;
  }

  // --- Connection ---
  void SetCallbacks(ConnectionCallbacks* callbacks) override { callbacks_ = callbacks; }

  void Write(std::string_view bytes) override {
    if (state_ == State::kClosed || state_ == State::kClosing || bytes.empty()) return;
    out_.Append(bytes);
    if (state_ == State::kOpen) loop_.RunAfterEvent(this);
  }

  void ShutdownWrite() override {
    if (state_ == State::kClosed || write_shut_) return;
    shutdown_pending_ = true;
    if (state_ == State::kOpen) loop_.RunAfterEvent(this);
  }

  void Close(CloseType type) override {
    if (state_ == State::kClosed) return;
    if (type == CloseType::kNoFlush || state_ == State::kConnecting) {
      CloseNow("closed");
      return;
    }
    if (state_ == State::kClosing) {
      // A stronger close than the one under way wins; a weaker one changes nothing.
      if (type == CloseType::kFlushWriteAndLinger) close_type_ = type;
      return;
    }
    state_ = State::kClosing;
    close_type_ = type;
    read_disable_count_ = 0;  // input is read and dropped from now on
    in_.Clear();
    loop_.RunAfterEvent(this);
  }

  void ReadDisable(bool disable) override {
    if (state_ == State::kClosed || state_ == State::kClosing) return;
    if (disable) {
      ++read_disable_count_;
      return;
    }
    if (read_disable_count_ == 0) return;
    if (--read_disable_count_ == 0 && (readable_ || !in_.empty() || peer_eof_)) {
      redeliver_ = !in_.empty() || peer_eof_;
      resume_read_ = true;
      loop_.RunAfterEvent(this);
    }
  }

  void ReadAgain() override {
    if (state_ != State::kOpen) return;
    redeliver_ = !in_.empty() || peer_eof_;
    resume_read_ = true;
    loop_.RunAfterEvent(this);
  }

  bool read_disabled() const override { return read_disable_count_ > 0; }
  size_t buffered_output() const override {
    return out_.size() + (fd_ >= 0 ? loop_.SendingBytes(fd_) : 0);
  }
  bool above_high_watermark() const override { return above_high_; }
  State state() const override { return state_; }
  const sockaddr_storage& peer_address() const override {
    if (!have_peer_ && fd_ >= 0) {
      socklen_t len = sizeof peer_;
      getpeername(fd_, reinterpret_cast<sockaddr*>(&peer_), &len);
      have_peer_ = true;
    }
    return peer_;
  }
  const sockaddr_storage& local_address() const override {
    if (!have_local_ && fd_ >= 0) {
      socklen_t len = sizeof local_;
      getsockname(fd_, reinterpret_cast<sockaddr*>(&local_), &len);
      have_local_ = true;
    }
    return local_;
  }
  TransportSocket& transport() override { return *transport_; }
  void OnTick(TimePoint now) override {
    if (state_ == State::kClosing && write_shut_ && now >= linger_deadline_) {
      linger_over_ = true;  // closed from the after-event work: no callback inside OnTick
      loop_.RunAfterEvent(this);
    }
  }
  std::string_view close_reason() const override { return close_reason_; }
  uint64_t bytes_read() const override { return bytes_read_; }
  uint64_t bytes_written() const override { return bytes_written_; }

  // --- TransportSocketCallbacks ---
  int fd() const override { return fd_; }
  net::EventLoop& loop() override { return loop_; }
  void SetReadable() override {
    readable_ = true;
    resume_read_ = true;
    loop_.RunAfterEvent(this);
  }
  void OnHandshakeComplete() override {
    if (client_ && !connected_raised_) {
      connected_raised_ = true;
      Raise(ConnectionEvent::kConnected);
    }
  }

  // --- EventHandler ---
  void OnEvents(uint32_t events) override {
    if (state_ == State::kClosed) return;
    if (state_ == State::kConnecting) {
      if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
      const int err = net::ConnectResult(fd_);
      if (err != 0 || (events & EPOLLERR)) {
        Fail(absl::StrCat("connect: ", strerror(err != 0 ? err : ECONNREFUSED)));
        return;
      }
      state_ = State::kOpen;
      transport_->OnConnected();
      if (transport_->ready()) OnHandshakeComplete();
      if (state_ == State::kClosed) return;
      loop_.RunAfterEvent(this);  // what was written while connecting goes out
    }
    if (events & EPOLLOUT) {
      Flush();
      if (state_ == State::kClosed) return;
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
      readable_ = true;
      if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) rdhup_ = true;
      if (read_disable_count_ > 0 && (events & (EPOLLHUP | EPOLLERR))) {
        // Reset while the owner is not reading: nothing more can be said on it.
        Fail("connection reset by peer");
        return;
      }
      ReadAndDispatch();
    }
  }

  // --- AfterEvent ---
  void RunAfterEvent() override {
    if (linger_over_) {
      CloseNow("linger ended");
      Raise(ConnectionEvent::kLocalClose);
      return;
    }
    if (resume_read_) {
      resume_read_ = false;
      ReadAndDispatch();
      if (state_ == State::kClosed) return;
    }
    Flush();
  }

 private:
  void Raise(ConnectionEvent event) {
    if (callbacks_ != nullptr) callbacks_->OnEvent(event);
  }

  void CloseNow(std::string_view reason) {
    if (state_ == State::kClosed) return;
    state_ = State::kClosed;
    if (close_reason_.empty()) close_reason_ = std::string(reason);
    loop_.CancelAfterEvent(this);
    loop_.Close(fd_);
    fd_ = -1;
  }

  void Fail(std::string_view reason) {
    CloseNow(reason);
    Raise(ConnectionEvent::kRemoteClose);
  }

  bool OutputDrained() const { return out_.empty() && !loop_.Sending(fd_); }

  void Flush() {
    if (state_ != State::kOpen && state_ != State::kClosing) return;
    if (!out_.empty()) {
      IoResult r = transport_->DoWrite(out_);
      if (r.status == IoResult::Status::kError) {
        Fail(r.error.empty() ? "write failed" : r.error);
        return;
      }
      bytes_written_ += r.bytes;
    }
    const size_t buffered = buffered_output();
    if (!above_high_ && buffered > options_.high_watermark) {
      above_high_ = true;
      if (callbacks_ != nullptr) callbacks_->OnWatermark(true);
      if (state_ == State::kClosed) return;
    } else if (above_high_ && buffered < options_.low_watermark) {
      above_high_ = false;
      if (callbacks_ != nullptr) callbacks_->OnWatermark(false);
      if (state_ == State::kClosed) return;
    }
    if (out_.empty() &&
        (shutdown_pending_ ||
         (state_ == State::kClosing && close_type_ == CloseType::kFlushWriteAndLinger)) &&
        !write_shut_) {
      // The loop orders the half-close after a send still in flight.
      transport_->ShutdownWrite();
      write_shut_ = true;
      shutdown_pending_ = false;
      if (state_ == State::kClosing) {
        linger_deadline_ = loop_.now() + options_.linger;
        if (peer_eof_) {
          CloseNow("closed after answer");
          Raise(ConnectionEvent::kLocalClose);
          return;
        }
      }
    }
    if (state_ == State::kClosing && close_type_ == CloseType::kFlushWrite && OutputDrained()) {
      CloseNow("closed");
      Raise(ConnectionEvent::kLocalClose);
    }
  }

  void ReadAndDispatch() {
    if (dispatching_) {
      // Called from inside OnRead (a transport's SetReadable): the loop below goes on.
      return;
    }
    dispatching_ = true;
    for (int round = 0; round < kMaxReadRounds; ++round) {
      if (state_ != State::kOpen && state_ != State::kClosing) break;
      if (read_disable_count_ > 0) break;
      bool fresh = false;
      bool eof_now = false;
      while (readable_ && !peer_eof_ && in_.size() < options_.read_limit) {
        IoResult r = transport_->DoRead(in_);
        if (r.status == IoResult::Status::kOk) {
          bytes_read_ += r.bytes;
          fresh = fresh || r.bytes > 0;
          if (r.drained && !rdhup_) readable_ = false;
          continue;
        }
        readable_ = false;
        if (r.status == IoResult::Status::kEof) {
          peer_eof_ = true;
          eof_now = true;
        } else if (r.status == IoResult::Status::kError) {
          dispatching_ = false;
          Fail(r.error.empty() ? "read failed" : r.error);
          return;
        }
      }
      if (state_ == State::kClosing) {
        in_.Clear();
        if (peer_eof_ && write_shut_) {
          dispatching_ = false;
          CloseNow("closed after answer");
          Raise(ConnectionEvent::kLocalClose);
          return;
        }
        if (!readable_ || peer_eof_) break;
        continue;
      }
      if (!fresh && !eof_now && !redeliver_) break;
      redeliver_ = false;
      const size_t before = in_.size();
      if (callbacks_ != nullptr) callbacks_->OnRead(in_, peer_eof_);
      if (state_ == State::kClosed) break;
      // Another round only when there is more to read and room to read it into.
      if (!readable_ || peer_eof_) break;
      if (in_.size() >= before) break;  // nothing taken: wait for the owner (ReadAgain)
    }
    dispatching_ = false;
    // Rounds ran out with input still waiting: carry on after the other sockets' events.
    if (readable_ && !peer_eof_ && read_disable_count_ == 0 && state_ == State::kOpen &&
        in_.size() < options_.read_limit) {
      resume_read_ = true;
      loop_.RunAfterEvent(this);
    }
  }

  net::EventLoop& loop_;
  int fd_;
  std::unique_ptr<TransportSocket> transport_;
  ConnectionOptions options_;
  ConnectionCallbacks* callbacks_ = nullptr;
  const bool client_;
  State state_;
  CloseType close_type_ = CloseType::kFlushWrite;
  net::Buffer in_;
  net::Buffer out_;
  uint32_t read_disable_count_ = 0;
  // Edge-triggered bookkeeping: input may be waiting (an event came, and no short read, EOF or
  // EAGAIN has shown the socket empty since); rdhup_: the peer closed, so read to EOF.
  bool readable_ = false;
  bool rdhup_ = false;
  bool peer_eof_ = false;
  bool redeliver_ = false;    // OnRead again even without new bytes (ReadAgain, ReadDisable)
  bool resume_read_ = false;  // the after-event work reads
  bool dispatching_ = false;
  bool above_high_ = false;
  bool shutdown_pending_ = false;
  bool write_shut_ = false;
  bool connected_raised_ = false;
  bool linger_over_ = false;
  TimePoint linger_deadline_{};
  std::string close_reason_;
  uint64_t bytes_read_ = 0;
  uint64_t bytes_written_ = 0;
  mutable sockaddr_storage peer_{};
  mutable sockaddr_storage local_{};
  mutable bool have_peer_ = false;
  mutable bool have_local_ = false;
};

}  // namespace

std::unique_ptr<TransportSocket> NewPlainTransportSocket() {
  return std::make_unique<PlainTransportSocket>();
}

std::string AddressIp(const sockaddr_storage& address) {
  char text[INET6_ADDRSTRLEN] = {};
  if (address.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&address)->sin_addr, text,
              sizeof text);
  } else if (address.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&address)->sin6_addr, text,
              sizeof text);
  }
  return text;
}

uint16_t AddressPort(const sockaddr_storage& address) {
  if (address.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in*>(&address)->sin_port);
  }
  if (address.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&address)->sin6_port);
  }
  return 0;
}

std::string AddressText(const sockaddr_storage& address) {
  if (address.ss_family == AF_INET6) {
    return absl::StrCat("[", AddressIp(address), "]:", AddressPort(address));
  }
  if (address.ss_family != AF_INET) return "";
  return absl::StrCat(AddressIp(address), ":", AddressPort(address));
}

std::unique_ptr<Connection> NewServerConnection(net::EventLoop& loop, int fd,
                                                const sockaddr_storage* peer,
                                                std::unique_ptr<TransportSocket> transport,
                                                const ConnectionOptions& options) {
  auto conn = std::make_unique<ConnectionImpl>(loop, fd, std::move(transport), options, false);
  if (peer != nullptr) conn->SetPeer(*peer);
  conn->Register();
  return conn;
}

absl::StatusOr<std::unique_ptr<Connection>> NewClientConnection(
    net::EventLoop& loop, const net::SocketAddress& address,
    std::unique_ptr<TransportSocket> transport, const ConnectionOptions& options) {
  auto fd = net::ConnectNonBlocking(address);
  if (!fd.ok()) return fd.status();
  auto conn = std::make_unique<ConnectionImpl>(loop, *fd, std::move(transport), options, true);
  if (!conn->Register()) {
    return absl::InternalError(absl::StrCat("epoll_ctl: ", strerror(errno)));
  }
  return conn;
}

}  // namespace weft::network
