#include "data-plane/grpc_client/stream.h"

#include "data-plane/grpc_client/framing.h"

#include <fcntl.h>
#include <google/protobuf/message_lite.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <string_view>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/strings.h"

namespace weft::grpc_client {
namespace {

using Clock = std::chrono::steady_clock;

// Receive windows: large enough that a multi-megabyte SotW response streams without waiting
// for a WINDOW_UPDATE round trip per 64 KiB (HTTP/2's default), small enough to bound what a
// server can push ahead of our reads.
constexpr int32_t kStreamWindow = 4 << 20;
constexpr int32_t kConnectionWindow = 8 << 20;

bool SplitTarget(std::string_view target, std::string* host, std::string* port) {
  if (target.substr(0, 7) == "dns:///") target.remove_prefix(7);
  if (!target.empty() && target[0] == '[') {
    size_t close = target.find(']');
    if (close == std::string_view::npos || close + 2 > target.size() || target[close + 1] != ':') {
      return false;
    }
    *host = std::string(target.substr(1, close - 1));
    *port = std::string(target.substr(close + 2));
  } else {
    size_t colon = target.rfind(':');
    if (colon == std::string_view::npos) return false;
    *host = std::string(target.substr(0, colon));
    *port = std::string(target.substr(colon + 1));
  }
  return !host->empty() && !port->empty();
}

std::string Errno(const char* what) { return absl::StrCat(what, ": ", std::strerror(errno)); }

}  // namespace

struct Stream::Connection {
  int fd = -1;
  nghttp2_session* session = nullptr;
  int32_t stream_id = -1;
  std::string out;  // framed messages nghttp2 has not taken yet
  size_t out_taken = 0;
  MessageReader reader;        // DATA bytes not returned as messages yet
  bool remote_closed = false;  // the server ended its side: no more messages will come
  bool stream_closed = false;
  uint32_t reset_code = 0;
  int http_status = 0;
  std::optional<int> grpc_status;
  std::string grpc_message;
  absl::Status local_error;  // a response we refused (too large, undecodable)
  absl::Status transport_error;
  std::string protocol_error;  // nghttp2's last complaint about what the peer sent
  bool reset_by_us = false;

  ~Connection() {
    if (session != nullptr) nghttp2_session_del(session);
    if (fd >= 0) close(fd);
  }

  void Fail(absl::Status s) {
    if (transport_error.ok()) transport_error = std::move(s);
  }

  static Connection* From(void* user_data) { return static_cast<Connection*>(user_data); }

  static ssize_t OnSend(nghttp2_session*, const uint8_t* data, size_t length, int, void* user) {
    Connection* c = From(user);
    for (;;) {
      ssize_t n = ::send(c->fd, data, length, MSG_NOSIGNAL);
      if (n >= 0) return n;
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return NGHTTP2_ERR_WOULDBLOCK;
      c->Fail(absl::UnavailableError(Errno("send")));
      return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
  }

  static ssize_t OnReadBody(nghttp2_session*, int32_t, uint8_t* buf, size_t length,
                            uint32_t* /*data_flags*/, nghttp2_data_source*, void* user) {
    Connection* c = From(user);
    size_t pending = c->out.size() - c->out_taken;
    // The request body stays open for the life of the call: nothing queued means "later".
    if (pending == 0) return NGHTTP2_ERR_DEFERRED;
    size_t n = std::min(pending, length);
    std::memcpy(buf, c->out.data() + c->out_taken, n);
    c->out_taken += n;
    if (c->out_taken == c->out.size()) {
      c->out.clear();
      c->out_taken = 0;
    }
    return static_cast<ssize_t>(n);
  }

  static int OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void* user) {
    Connection* c = From(user);
    if (frame->hd.type != NGHTTP2_HEADERS || frame->hd.stream_id != c->stream_id) return 0;
    std::string_view n(reinterpret_cast<const char*>(name), namelen);
    std::string_view v(reinterpret_cast<const char*>(value), valuelen);
    if (n == ":status") {
      (void)absl::SimpleAtoi(Sv(v), &c->http_status);
    } else if (n == "grpc-status") {
      int code = 0;
      c->grpc_status =
          absl::SimpleAtoi(Sv(v), &code) ? code : static_cast<int>(absl::StatusCode::kUnknown);
    } else if (n == "grpc-message") {
      c->grpc_message = PercentDecodeGrpcMessage(v);
    }
    return 0;
  }

  static int OnData(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data, size_t len,
                    void* user) {
    Connection* c = From(user);
    if (stream_id == c->stream_id) c->reader.Append({reinterpret_cast<const char*>(data), len});
    return 0;
  }

  static int OnFrame(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    Connection* c = From(user);
    if (frame->hd.stream_id == c->stream_id && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0 &&
        (frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA)) {
      c->remote_closed = true;
    }
    return 0;
  }

  static int OnError(nghttp2_session*, int, const char* msg, size_t len, void* user) {
    From(user)->protocol_error.assign(msg, len);
    return 0;
  }

  static int OnClose(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* user) {
    Connection* c = From(user);
    if (stream_id == c->stream_id) {
      c->stream_closed = true;
      c->remote_closed = true;
      c->reset_code = error_code;
    }
    return 0;
  }

  // Hands nghttp2's queued frames to the socket, as far as it takes them.
  bool Flush() {
    int rv = nghttp2_session_send(session);
    if (rv != 0) Fail(absl::UnavailableError(absl::StrCat("HTTP/2: ", nghttp2_strerror(rv))));
    return transport_error.ok();
  }

  // Waits for the socket (readable, or writable when frames are queued) or the wake fd, then
  // feeds what arrived to nghttp2. False when the connection can make no more progress.
  bool PollOnce(int wake_fd, const std::atomic<bool>& cancelled) {
    bool want_write = nghttp2_session_want_write(session) != 0;
    if (!want_write && nghttp2_session_want_read(session) == 0) {
      Fail(absl::UnavailableError(
          protocol_error.empty() ? "the connection was closed"
                                 : absl::StrCat("HTTP/2 connection failed: ", protocol_error)));
      return false;
    }
    pollfd fds[2] = {{fd, static_cast<short>(POLLIN | (want_write ? POLLOUT : 0)), 0},
                     {wake_fd, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) return true;
      Fail(absl::UnavailableError(Errno("poll")));
      return false;
    }
    if (cancelled.load()) return false;
    if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) == 0) return true;
    uint8_t buf[16 * 1024];
    for (;;) {
      ssize_t r = ::recv(fd, buf, sizeof(buf), 0);
      if (r > 0) {
        ssize_t used = nghttp2_session_mem_recv(session, buf, static_cast<size_t>(r));
        if (used < 0) {
          Fail(absl::UnavailableError(
              absl::StrCat("HTTP/2: ", nghttp2_strerror(static_cast<int>(used)))));
          return false;
        }
        if (static_cast<size_t>(r) < sizeof(buf)) return true;
        continue;
      }
      if (r == 0) {
        Fail(absl::UnavailableError("the server closed the connection"));
        return false;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
      Fail(absl::UnavailableError(Errno("recv")));
      return false;
    }
  }

  // One message, if complete. Returns nullopt when more bytes are needed.
  std::optional<bool> TryParse(google::protobuf::MessageLite* message, size_t max_bytes) {
    std::optional<absl::Status> s = reader.Next(message, max_bytes);
    if (!s) return std::nullopt;
    if (!s->ok()) local_error = *std::move(s);
    return local_error.ok();
  }
};

Stream::Stream(StreamOptions options)
    : options_(std::move(options)), wake_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

Stream::~Stream() {
  conn_.reset();
  if (wake_fd_ >= 0) close(wake_fd_);
}

void Stream::Cancel() {
  cancelled_ = true;
  uint64_t one = 1;
  if (wake_fd_ >= 0) (void)!write(wake_fd_, &one, sizeof(one));
}

absl::Status Stream::Start(const std::string& target, const std::string& method) {
  if (cancelled_) return absl::CancelledError("cancelled");
  if (wake_fd_ < 0) return absl::InternalError("eventfd failed");
  std::string host;
  std::string port;
  if (!SplitTarget(target, &host, &port)) {
    return absl::InvalidArgumentError(
        absl::StrCat("target \"", target, "\" is not host:port or [v6]:port"));
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* list = nullptr;
  if (int rv = getaddrinfo(host.c_str(), port.c_str(), &hints, &list); rv != 0) {
    return absl::UnavailableError(absl::StrCat("resolve ", host, ": ", gai_strerror(rv)));
  }
  auto conn = std::make_unique<Connection>();
  std::string error = "no address";
  const auto deadline = Clock::now() + options_.connect_timeout;
  for (addrinfo* ai = list; ai != nullptr && conn->fd < 0; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      error = Errno("socket");
      continue;
    }
    int rv = connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rv != 0 && errno == EINPROGRESS) {
      for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) {
          errno = ETIMEDOUT;
          break;
        }
        pollfd fds[2] = {{fd, POLLOUT, 0}, {wake_fd_, POLLIN, 0}};
        int n = poll(fds, 2, static_cast<int>(left.count()));
        if (cancelled_) {
          close(fd);
          freeaddrinfo(list);
          return absl::CancelledError("cancelled");
        }
        if (n < 0 && errno == EINTR) continue;
        if (n > 0) {
          int so_error = 0;
          socklen_t len = sizeof(so_error);
          getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
          errno = so_error;
          rv = so_error == 0 ? 0 : -1;
        }
        break;
      }
    }
    if (rv == 0) {
      conn->fd = fd;
    } else {
      error = Errno("connect");
      close(fd);
    }
  }
  freeaddrinfo(list);
  if (conn->fd < 0) return absl::UnavailableError(absl::StrCat("connect to ", target, ": ", error));

  int one = 1;
  setsockopt(conn->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  // No HTTP/2 PINGs: gRPC servers answer pings on an idle call with GOAWAY (too_many_pings).
  // TCP keepalive finds a control-plane host that vanished without a FIN instead.
  int idle = 30;
  int interval = 10;
  int count = 3;
  setsockopt(conn->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
  setsockopt(conn->fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
  setsockopt(conn->fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval));
  setsockopt(conn->fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count));

  nghttp2_session_callbacks* callbacks = nullptr;
  if (nghttp2_session_callbacks_new(&callbacks) != 0) return absl::InternalError("nghttp2 oom");
  nghttp2_session_callbacks_set_send_callback(callbacks, &Connection::OnSend);
  nghttp2_session_callbacks_set_on_header_callback(callbacks, &Connection::OnHeader);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, &Connection::OnData);
  nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, &Connection::OnFrame);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, &Connection::OnClose);
  nghttp2_session_callbacks_set_error_callback2(callbacks, &Connection::OnError);
  int rv = nghttp2_session_client_new(&conn->session, callbacks, conn.get());
  nghttp2_session_callbacks_del(callbacks);
  if (rv != 0) return absl::InternalError(absl::StrCat("nghttp2: ", nghttp2_strerror(rv)));

  nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
                                       {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, kStreamWindow}};
  nghttp2_submit_settings(conn->session, NGHTTP2_FLAG_NONE, settings, 2);
  nghttp2_session_set_local_window_size(conn->session, NGHTTP2_FLAG_NONE, 0, kConnectionWindow);

  std::string authority = absl::StartsWith(target, "dns:///") ? target.substr(7) : target;
  auto nv = [](std::string_view name, std::string_view value) {
    return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                      reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(),
                      value.size(), NGHTTP2_NV_FLAG_NONE};
  };
  const nghttp2_nv headers[] = {
      nv(":method", "POST"),
      nv(":scheme", "http"),
      nv(":path", method),
      nv(":authority", authority),
      nv("content-type", "application/grpc"),
      nv("te", "trailers"),
      nv("user-agent", options_.user_agent),
  };
  nghttp2_data_provider body{};
  body.read_callback = &Connection::OnReadBody;
  conn->stream_id = nghttp2_submit_request(conn->session, nullptr, headers,
                                           sizeof(headers) / sizeof(headers[0]), &body, nullptr);
  if (conn->stream_id < 0) {
    return absl::InternalError(absl::StrCat("nghttp2: ", nghttp2_strerror(conn->stream_id)));
  }
  conn_ = std::move(conn);
  if (!conn_->Flush()) return conn_->transport_error;
  return absl::OkStatus();
}

bool Stream::Write(const google::protobuf::MessageLite& message) {
  if (!conn_ || cancelled_ || conn_->remote_closed || !conn_->transport_error.ok()) return false;
  Connection& c = *conn_;
  AppendFrame(message, &c.out);
  nghttp2_session_resume_data(c.session, c.stream_id);
  for (;;) {
    if (!c.Flush()) return false;
    bool drained = c.out.size() == c.out_taken;
    if (drained && nghttp2_session_want_write(c.session) == 0) return true;
    if (c.stream_closed) return false;
    if (!c.PollOnce(wake_fd_, cancelled_)) return false;
  }
}

bool Stream::Read(google::protobuf::MessageLite* message) {
  if (!conn_) return false;
  Connection& c = *conn_;
  for (;;) {
    if (!c.local_error.ok() || cancelled_) return false;
    if (std::optional<bool> parsed = c.TryParse(message, options_.max_message_bytes)) {
      // Send the WINDOW_UPDATE for what was just consumed without waiting for the next call.
      return *parsed && c.Flush();
    }
    if (c.remote_closed || !c.transport_error.ok()) return false;
    if (!c.Flush() || !c.PollOnce(wake_fd_, cancelled_)) return false;
  }
}

absl::Status Stream::Finish() {
  if (!conn_) return cancelled_ ? absl::CancelledError("cancelled") : absl::OkStatus();
  Connection& c = *conn_;
  if (!c.stream_closed && c.transport_error.ok()) {
    // Tell the server the call is over rather than leave it to notice the closed socket.
    nghttp2_submit_rst_stream(c.session, NGHTTP2_FLAG_NONE, c.stream_id, NGHTTP2_CANCEL);
    nghttp2_session_send(c.session);
    c.reset_by_us = true;
  }
  absl::Status status;
  if (!c.local_error.ok()) {
    status = c.local_error;
  } else if (c.grpc_status) {
    int code = *c.grpc_status;
    status = code >= 0 && code <= 16
                 ? absl::Status(static_cast<absl::StatusCode>(code), c.grpc_message)
                 : absl::UnknownError(c.grpc_message);
  } else if (cancelled_ || c.reset_by_us) {
    status = absl::CancelledError("cancelled by the client");
  } else if (c.http_status != 0 && c.http_status != 200) {
    status = absl::Status(FromHttpStatus(c.http_status),
                          absl::StrCat("HTTP status ", c.http_status, " without grpc-status"));
  } else if (!c.transport_error.ok()) {
    status = c.transport_error;
  } else if (c.stream_closed) {
    status = absl::UnavailableError(
        absl::StrCat("stream reset by the server (HTTP/2 error ", c.reset_code, ")"));
  } else {
    status = absl::UnavailableError("the call ended without a status");
  }
  conn_.reset();
  return status;
}

}  // namespace weft::grpc_client
