#include "common/http/admin_server.h"

#include "common/http/reason_phrase.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status.h"
#include "common/strings.h"

namespace weft::http {
namespace {

using SteadyClock = std::chrono::steady_clock;
using TimePoint = SteadyClock::time_point;

constexpr size_t kMaxHeaderCount = 100;
// After the last response on a connection we stop sending but keep reading for a while: closing
// with unread input makes the kernel send a reset, which can destroy the response (typically a
// 413 or 431) before the client has read it.
constexpr std::chrono::milliseconds kLinger{2000};
constexpr std::chrono::milliseconds kAcceptBackoff{100};
constexpr size_t kReadChunk = 16 * 1024;
// A client pipelining requests faster than it reads responses is not read further until it
// catches up; one maximal request always fits.
constexpr size_t kMaxBuffered = AdminServer::kMaxHeaderBytes + AdminServer::kMaxBodyBytes + 4096;

char AsciiLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (AsciiLower(a[i]) != AsciiLower(b[i])) return false;
  }
  return true;
}

// RFC 9110 token characters (method and header names).
bool IsTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

bool IsToken(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), IsTokenChar);
}

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Comma-separated list membership, as used by Connection.
bool HasToken(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    if (EqualsIgnoreCase(TrimOws(list.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Header values from handlers must not be able to inject lines into the response.
std::string SanitizeValue(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c != '\r' && c != '\n' && c != '\0') out += c;
  }
  return out;
}

std::string ErrnoText(int err) { return std::strerror(err); }

// Parsed request line and the headers that affect framing and connection reuse.
struct Head {
  std::string method;
  std::string target;
  int minor_version = 1;
  std::vector<std::pair<std::string, std::string>> headers;
  size_t body_length = 0;
  bool keep_alive = true;
  bool expect_continue = false;
};

// A failed parse: the status to answer with and a short reason for the body.
struct ParseError {
  int status = 0;
  std::string message;
};

// Parses the request line and header lines (`text` excludes the terminating blank line).
ParseError ParseHead(std::string_view text, Head* head) {
  std::vector<std::string_view> lines;
  while (true) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }

  std::string_view request_line = lines[0];
  size_t sp1 = request_line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : request_line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || request_line.find(' ', sp2 + 1) != std::string_view::npos) {
    return {400, "malformed request line"};
  }
  std::string_view method = request_line.substr(0, sp1);
  std::string_view target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = request_line.substr(sp2 + 1);
  if (!IsToken(method)) return {400, "malformed method"};
  if (target.empty() || std::any_of(target.begin(), target.end(), [](char c) {
        return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f;
      })) {
    return {400, "malformed request target"};
  }
  if (version == "HTTP/1.1") {
    head->minor_version = 1;
  } else if (version == "HTTP/1.0") {
    head->minor_version = 0;
  } else if (version.size() == 8 && version.substr(0, 5) == "HTTP/" && IsDigit(version[5]) &&
             version[6] == '.' && IsDigit(version[7])) {
    return {505, "only HTTP/1.0 and HTTP/1.1 are supported"};
  } else {
    return {400, "malformed HTTP version"};
  }
  head->method = std::string(method);
  head->target = std::string(target);

  bool has_length = false;
  bool has_transfer_encoding = false;
  bool connection_close = false;
  bool connection_keep_alive = false;
  for (size_t i = 1; i < lines.size(); ++i) {
    std::string_view line = lines[i];
    if (line.empty() || line.front() == ' ' || line.front() == '\t') {
      return {400, "malformed header line (folded headers are not supported)"};
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) return {400, "header line without ':'"};
    std::string_view name = line.substr(0, colon);
    std::string_view value = TrimOws(line.substr(colon + 1));
    // Whitespace before the colon is a known request-smuggling vector; RFC 9112 says reject.
    if (!IsToken(name)) return {400, "malformed header name"};
    if (std::any_of(value.begin(), value.end(), [](char c) {
          return (static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f;
        })) {
      return {400, "control character in header value"};
    }
    if (head->headers.size() >= kMaxHeaderCount) return {431, "too many header fields"};
    head->headers.emplace_back(std::string(name), std::string(value));

    if (EqualsIgnoreCase(name, "Content-Length")) {
      if (value.empty() || value.size() > 12 ||
          !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return {400, "malformed Content-Length"};
      }
      size_t length = 0;
      for (char c : value) length = length * 10 + static_cast<size_t>(c - '0');
      if (has_length && length != head->body_length) return {400, "conflicting Content-Length"};
      has_length = true;
      head->body_length = length;
    } else if (EqualsIgnoreCase(name, "Transfer-Encoding")) {
      has_transfer_encoding = true;
    } else if (EqualsIgnoreCase(name, "Connection")) {
      connection_close |= HasToken(value, "close");
      connection_keep_alive |= HasToken(value, "keep-alive");
    } else if (EqualsIgnoreCase(name, "Expect")) {
      if (!EqualsIgnoreCase(value, "100-continue")) return {417, "unsupported Expect"};
      head->expect_continue = head->minor_version == 1;
    }
  }
  if (has_transfer_encoding) {
    // Both framings at once is the classic smuggling setup; refuse it outright.
    if (has_length) return {400, "both Transfer-Encoding and Content-Length"};
    return {411, "chunked request bodies are not supported; send Content-Length"};
  }
  if (head->body_length > AdminServer::kMaxBodyBytes) {
    return {413, absl::StrCat("request body over ", AdminServer::kMaxBodyBytes, " bytes")};
  }
  head->keep_alive =
      head->minor_version == 1 ? !connection_close : (connection_keep_alive && !connection_close);
  return {};
}

// Finds the blank line ending the head. Returns the head's length without the final line break
// and sets `*consumed` to the length including it, or npos if the head is incomplete.
size_t FindHeadEnd(std::string_view in, size_t* consumed) {
  size_t limit = std::min(in.size(), AdminServer::kMaxHeaderBytes + 3);
  for (size_t i = in.find('\n'); i != std::string_view::npos && i + 1 < limit;
       i = in.find('\n', i + 1)) {
    if (in[i + 1] == '\n') {
      *consumed = i + 2;
      return i;
    }
    if (in[i + 1] == '\r' && i + 2 < in.size() && in[i + 2] == '\n') {
      *consumed = i + 3;
      return i;
    }
  }
  return std::string_view::npos;
}

struct Connection {
  int fd = -1;
  std::string in;
  std::string out;
  size_t out_offset = 0;
  bool close_after_write = false;  // the queued response is the last one
  bool draining = false;           // write side shut; discarding input until EOF or deadline
  bool peer_eof = false;
  bool dead = false;
  bool continue_sent = false;
  TimePoint request_start;  // when the request now in `in` began
  TimePoint last_activity;  // connect, last finished request, or last write progress
  TimePoint drain_deadline;

  bool writing() const { return out_offset < out.size(); }
};

}  // namespace

ParseOutcome ParseRequest(std::string_view in, ParsedRequest* out) {
  size_t consumed = 0;
  size_t head_end = FindHeadEnd(in, &consumed);
  if (head_end == std::string_view::npos) {
    if (in.size() <= AdminServer::kMaxHeaderBytes) return ParseOutcome::kIncomplete;
    size_t first_line_end = in.find('\n');
    if (first_line_end == std::string_view::npos || first_line_end > AdminServer::kMaxHeaderBytes) {
      out->error_status = 414;
      out->error_message = "request line too long";
    } else {
      out->error_status = 431;
      out->error_message = "request header fields too large";
    }
    return ParseOutcome::kError;
  }

  Head head;
  ParseError error = ParseHead(in.substr(0, head_end), &head);
  if (error.status != 0) {
    out->error_status = error.status;
    out->error_message = std::move(error.message);
    return ParseOutcome::kError;
  }
  out->keep_alive = head.keep_alive;
  out->http10 = head.minor_version == 0;
  out->expect_continue = head.expect_continue;
  if (in.size() < consumed + head.body_length) return ParseOutcome::kBodyIncomplete;

  Request& request = out->request;
  request.method = std::move(head.method);
  std::string_view target = head.target;
  // Absolute form ("http://host/path") is legal from proxies; only the path matters here.
  if (size_t scheme = target.find("://");
      scheme != std::string_view::npos && target.front() != '/') {
    size_t slash = target.find('/', scheme + 3);
    target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
  }
  size_t question = target.find('?');
  request.path = PercentDecode(target.substr(0, question), false);
  if (question != std::string_view::npos) {
    request.query_string = std::string(target.substr(question + 1));
    request.query = ParseQueryString(request.query_string);
  }
  request.headers = std::move(head.headers);
  request.body = std::string(in.substr(consumed, head.body_length));
  out->consumed = consumed + head.body_length;
  return ParseOutcome::kDone;
}

std::string_view Request::Header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (EqualsIgnoreCase(n, name)) return v;
  }
  return {};
}

std::string_view Request::Query(std::string_view key, std::string_view fallback) const {
  auto it = query.find(std::string(key));
  return it == query.end() ? fallback : std::string_view(it->second);
}

std::string PercentDecode(std::string_view in, bool plus_as_space) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%' && i + 2 < in.size() && HexValue(in[i + 1]) >= 0 && HexValue(in[i + 2]) >= 0) {
      out += static_cast<char>(HexValue(in[i + 1]) * 16 + HexValue(in[i + 2]));
      i += 2;
    } else if (c == '+' && plus_as_space) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

std::map<std::string, std::string> ParseQueryString(std::string_view query) {
  std::map<std::string, std::string> out;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    if (!pair.empty()) {
      size_t eq = pair.find('=');
      std::string key = PercentDecode(pair.substr(0, eq), true);
      std::string value =
          eq == std::string_view::npos ? std::string() : PercentDecode(pair.substr(eq + 1), true);
      out.emplace(std::move(key), std::move(value));  // emplace keeps the first value
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return out;
}

absl::StatusOr<std::pair<std::string, uint16_t>> ParseHostPort(std::string_view address) {
  std::string_view host;
  std::string_view port;
  if (!address.empty() && address.front() == '[') {
    size_t close = address.find(']');
    if (close == std::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("missing ']' in \"", Sv(address), "\""));
    }
    host = address.substr(1, close - 1);
    std::string_view rest = address.substr(close + 1);
    if (rest.empty() || rest.front() != ':') {
      return absl::InvalidArgumentError(
          absl::StrCat("expected \"[host]:port\", got \"", Sv(address), "\""));
    }
    port = rest.substr(1);
  } else {
    size_t colon = address.rfind(':');
    if (colon == std::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("expected \"host:port\", got \"", Sv(address), "\""));
    }
    host = address.substr(0, colon);
    port = address.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "IPv6 addresses need brackets, as in \"[::1]:9901\"; got \"", Sv(address), "\""));
    }
  }
  if (host.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("missing host in \"", Sv(address), "\""));
  }
  if (port.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return absl::InvalidArgumentError(absl::StrCat("bad port in \"", Sv(address), "\""));
  }
  uint32_t value = 0;
  for (char c : port) value = value * 10 + static_cast<uint32_t>(c - '0');
  if (value > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("port out of range in \"", Sv(address), "\""));
  }
  return std::make_pair(std::string(host), static_cast<uint16_t>(value));
}

class AdminServer::Loop {
 public:
  Loop(int listen_fd, int wake_read, int wake_write, std::map<std::string, Route> routes,
       AdminServerOptions options)
      : listen_fd_(listen_fd),
        wake_read_(wake_read),
        wake_write_(wake_write),
        routes_(std::move(routes)),
        options_(options) {
    thread_ = std::thread([this] { Run(); });
  }

  ~Loop() {
    char byte = 1;
    while (write(wake_write_, &byte, 1) < 0 && errno == EINTR) {
    }
    thread_.join();
    for (auto& c : connections_) close(c->fd);
    close(listen_fd_);
    close(wake_read_);
    close(wake_write_);
  }

 private:
  void Run();
  void AcceptAll(TimePoint now);
  void HandleIo(Connection& c, short revents);
  bool ReadAvailable(Connection& c);
  bool Flush(Connection& c);
  void Pump(Connection& c);
  bool ProcessOne(Connection& c);
  void OnDeadline(Connection& c);
  TimePoint Deadline(const Connection& c) const;
  bool WantsRead(const Connection& c) const;
  Response Dispatch(const Request& request) const;
  void QueueError(Connection& c, int status, std::string_view message);
  static void AppendResponse(const Response& response, bool head_only, bool close, bool http10,
                             std::string* out);

  const int listen_fd_;
  const int wake_read_;
  const int wake_write_;
  const std::map<std::string, Route> routes_;
  const AdminServerOptions options_;
  // Everything below is touched only by the server thread (and by ~Loop after the join).
  std::vector<std::unique_ptr<Connection>> connections_;
  TimePoint accept_paused_until_;
  std::thread thread_;
};

void AdminServer::Loop::Run() {
  std::vector<pollfd> fds;
  while (true) {
    TimePoint now = SteadyClock::now();
    size_t max_connections = static_cast<size_t>(std::max(options_.max_connections, 1));
    bool accepting = connections_.size() < max_connections && now >= accept_paused_until_;
    TimePoint next = TimePoint::max();
    if (!accepting && connections_.size() < max_connections) next = accept_paused_until_;

    fds.clear();
    fds.push_back({wake_read_, POLLIN, 0});
    fds.push_back({accepting ? listen_fd_ : -1, POLLIN, 0});  // poll skips negative fds
    for (const auto& c : connections_) {
      short events = 0;
      if (WantsRead(*c)) events |= POLLIN;
      if (c->writing()) events |= POLLOUT;
      fds.push_back({c->fd, events, 0});
      next = std::min(next, Deadline(*c));
    }
    int timeout_ms = -1;
    if (next != TimePoint::max()) {
      auto wait = std::chrono::ceil<std::chrono::milliseconds>(next - now).count();
      timeout_ms = static_cast<int>(std::clamp<int64_t>(wait, 0, 60'000));
    }
    int n = poll(fds.data(), fds.size(), timeout_ms);
    if (n < 0) {
      if (errno != EINTR) {
        WEFT_LOG(kError) << "admin server: poll: " << ErrnoText(errno);
        std::this_thread::sleep_for(kAcceptBackoff);
      }
      continue;
    }
    if (fds[0].revents != 0) break;  // the destructor wants us gone

    // Only connections that were polled have a slot in `fds`; accepted ones come after them.
    size_t polled = connections_.size();
    if (fds[1].revents != 0) AcceptAll(SteadyClock::now());
    for (size_t i = 0; i < polled; ++i) {
      if (fds[i + 2].revents != 0) HandleIo(*connections_[i], fds[i + 2].revents);
    }
    now = SteadyClock::now();
    for (auto& c : connections_) {
      if (!c->dead && now >= Deadline(*c)) OnDeadline(*c);
    }
    std::erase_if(connections_, [](const std::unique_ptr<Connection>& c) {
      if (c->dead) close(c->fd);
      return c->dead;
    });
  }
}

void AdminServer::Loop::AcceptAll(TimePoint now) {
  // Bounded so a persistent odd error cannot spin here forever.
  for (int attempts = 0; attempts < 64; ++attempts) {
    if (connections_.size() >= static_cast<size_t>(std::max(options_.max_connections, 1))) return;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) return;
      if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        // The listener stays readable; without a pause the loop would spin on it.
        WEFT_LOG(kWarning) << "admin server: accept: " << ErrnoText(err);
        accept_paused_until_ = now + kAcceptBackoff;
        return;
      }
      continue;  // ECONNABORTED, EINTR and network errors concern one pending connection
    }
    // Responses are small and written whole; Nagle would only add delayed-ACK stalls.
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    auto c = std::make_unique<Connection>();
    c->fd = fd;
    c->last_activity = now;
    connections_.push_back(std::move(c));
  }
}

bool AdminServer::Loop::WantsRead(const Connection& c) const {
  if (c.draining) return true;
  if (c.peer_eof || c.close_after_write) return false;
  return c.in.size() < kMaxBuffered;
}

TimePoint AdminServer::Loop::Deadline(const Connection& c) const {
  if (c.draining) return c.drain_deadline;
  if (c.writing()) return c.last_activity + options_.request_timeout;
  if (!c.in.empty()) return c.request_start + options_.request_timeout;
  return c.last_activity + options_.idle_timeout;
}

void AdminServer::Loop::OnDeadline(Connection& c) {
  if (c.draining || c.writing() || c.in.empty()) {
    c.dead = true;  // lingering done, client not reading, or idle keep-alive
    return;
  }
  QueueError(c, 408, "request not received in time");
  Pump(c);
}

void AdminServer::Loop::HandleIo(Connection& c, short revents) {
  if (revents & (POLLERR | POLLNVAL)) {
    c.dead = true;
    return;
  }
  if ((revents & (POLLIN | POLLHUP)) && !ReadAvailable(c)) {
    c.dead = true;
    return;
  }
  if (c.draining) {
    if (c.peer_eof || (revents & POLLHUP)) c.dead = true;
    return;
  }
  Pump(c);
  if (revents & POLLHUP) c.dead = true;  // both directions are gone; nothing can be delivered
}

bool AdminServer::Loop::ReadAvailable(Connection& c) {
  char buf[kReadChunk];
  while (true) {
    size_t room =
        c.draining ? sizeof(buf) : (c.in.size() < kMaxBuffered ? kMaxBuffered - c.in.size() : 0);
    if (room == 0) return true;
    ssize_t n = recv(c.fd, buf, std::min(room, sizeof(buf)), 0);
    if (n > 0) {
      if (c.draining) continue;
      if (c.in.empty()) c.request_start = SteadyClock::now();
      c.in.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) {
      c.peer_eof = true;
      return true;
    }
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK;
  }
}

bool AdminServer::Loop::Flush(Connection& c) {
  while (c.writing()) {
    ssize_t n = send(c.fd, c.out.data() + c.out_offset, c.out.size() - c.out_offset, MSG_NOSIGNAL);
    if (n > 0) {
      c.out_offset += static_cast<size_t>(n);
      c.last_activity = SteadyClock::now();
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }
  return true;
}

// Handles buffered requests and writes responses until the connection must wait for the network.
// A new request is only parsed once the previous response is fully written, which bounds the
// memory a pipelining client can make us hold.
void AdminServer::Loop::Pump(Connection& c) {
  while (!c.dead) {
    bool queued = false;
    if (!c.writing() && !c.close_after_write) queued = ProcessOne(c);
    if (!Flush(c)) {
      c.dead = true;
      return;
    }
    if (c.writing()) return;  // wait for POLLOUT
    c.out.clear();
    c.out_offset = 0;
    if (c.close_after_write) {
      shutdown(c.fd, SHUT_WR);
      c.draining = true;
      c.in.clear();
      c.drain_deadline = SteadyClock::now() + kLinger;
      if (c.peer_eof) c.dead = true;
      return;
    }
    if (!queued) break;
  }
  // Whatever is left in `in` can never become a full request.
  if (c.peer_eof) c.dead = true;
}

bool AdminServer::Loop::ProcessOne(Connection& c) {
  // RFC 9112 asks servers to ignore blank lines before a request line.
  size_t blank = c.in.find_first_not_of("\r\n");
  c.in.erase(0, blank == std::string::npos ? c.in.size() : blank);
  if (c.in.empty()) return false;

  ParsedRequest parsed;
  switch (ParseRequest(c.in, &parsed)) {
    case ParseOutcome::kIncomplete:
      return false;
    case ParseOutcome::kError:
      QueueError(c, parsed.error_status, parsed.error_message);
      return true;
    case ParseOutcome::kBodyIncomplete:
      if (parsed.expect_continue && !c.continue_sent) {
        c.out += "HTTP/1.1 100 Continue\r\n\r\n";
        c.continue_sent = true;
        return true;
      }
      return false;
    case ParseOutcome::kDone:
      break;
  }
  Request& request = parsed.request;
  c.in.erase(0, parsed.consumed);
  c.continue_sent = false;
  TimePoint now = SteadyClock::now();
  c.last_activity = now;
  if (!c.in.empty()) c.request_start = now;  // a pipelined request starts its clock now

  Response response = Dispatch(request);
  bool close = !parsed.keep_alive;
  for (const auto& [name, value] : response.headers) {
    if (EqualsIgnoreCase(name, "Connection") && HasToken(value, "close")) close = true;
  }
  AppendResponse(response, request.method == "HEAD", close, parsed.http10, &c.out);
  c.close_after_write = close;
  WEFT_LOG(kDebug) << "admin server: " << request.method << " " << request.path << " -> "
                   << response.status;
  return true;
}

namespace {

Response MethodNotAllowed(const Route& route) {
  Response r;
  r.status = 405;
  if (route.kind == Route::kMutating) {
    r.body = absl::StrCat(route.path, " changes state: use POST\n");
    r.headers.emplace_back("Allow", "POST");
  } else {
    r.body = absl::StrCat(route.path, " is read-only: use GET or HEAD\n");
    r.headers.emplace_back("Allow", "GET, HEAD");
  }
  return r;
}

// A browser names the page that made a request in Origin. A mutating request from a page of
// another origin is a cross-site form post (forms may POST anywhere without asking), so it is
// refused; curl and other tools send no Origin.
bool CrossOrigin(const Request& request) {
  std::string_view origin = request.Header("Origin");
  if (origin.empty()) return false;
  std::string_view host = request.Header("Host");
  for (std::string_view scheme : {"http://", "https://"}) {
    if (origin.size() == scheme.size() + host.size() && origin.starts_with(scheme) &&
        EqualsIgnoreCase(origin.substr(scheme.size()), host) && !host.empty()) {
      return false;
    }
  }
  return true;
}

}  // namespace

Response AdminServer::Loop::Dispatch(const Request& request) const {
  auto it = routes_.find(request.path);
  if (it == routes_.end()) {
    Response r;
    r.status = 404;
    r.body = absl::StrCat("no handler for ", request.path, "\navailable paths:\n");
    for (const auto& [path, route] : routes_) {
      absl::StrAppend(&r.body, route.kind == Route::kMutating ? "  POST " : "  GET  ", path, "\n");
    }
    return r;
  }
  const Route& route = it->second;
  bool allowed = route.kind == Route::kMutating
                     ? request.method == "POST"
                     : request.method == "GET" || request.method == "HEAD";
  if (!allowed) return MethodNotAllowed(route);
  if (route.kind == Route::kMutating && CrossOrigin(request)) {
    Response r;
    r.status = 403;
    r.body = absl::StrCat(route.path, ": refused a request from another origin (",
                          Sv(request.Header("Origin")), ")\n");
    return r;
  }
  return route.handler(request);
}

void AdminServer::Loop::QueueError(Connection& c, int status, std::string_view message) {
  Response r;
  r.status = status;
  r.body = absl::StrCat(Sv(message), "\n");
  // After a framing error the rest of the input cannot be trusted, so this is the last response.
  AppendResponse(r, false, true, false, &c.out);
  c.close_after_write = true;
  WEFT_LOG(kDebug) << "admin server: rejected request: " << status << " " << message;
}

void AdminServer::Loop::AppendResponse(const Response& response, bool head_only, bool close,
                                       bool http10, std::string* out) {
  int status = response.status;
  if (status < 200 || status > 599) {
    WEFT_LOG(kError) << "admin server: handler returned status " << status << "; sending 500";
    status = 500;
  }
  // These statuses never carry a body, so they get no Content-Length either.
  bool bodyless = status == 204 || status == 304;
  absl::StrAppend(out, "HTTP/1.1 ", status, " ", Sv(ReasonPhrase(status)), "\r\n");
  if (!bodyless) {
    if (!response.content_type.empty()) {
      absl::StrAppend(out, "Content-Type: ", SanitizeValue(response.content_type), "\r\n");
    }
    absl::StrAppend(out, "Content-Length: ", response.body.size(), "\r\n");
  }
  for (const auto& [name, value] : response.headers) {
    if (!IsToken(name) || EqualsIgnoreCase(name, "Content-Length") ||
        EqualsIgnoreCase(name, "Transfer-Encoding") || EqualsIgnoreCase(name, "Connection")) {
      continue;
    }
    absl::StrAppend(out, name, ": ", SanitizeValue(value), "\r\n");
  }
  if (close) {
    absl::StrAppend(out, "Connection: close\r\n");
  } else if (http10) {
    absl::StrAppend(out, "Connection: keep-alive\r\n");
  }
  absl::StrAppend(out, "\r\n");
  if (!head_only && !bodyless) absl::StrAppend(out, response.body);
}

absl::StatusOr<std::unique_ptr<AdminServer>> AdminServer::Start(std::string_view address,
                                                                std::vector<Route> routes,
                                                                AdminServerOptions options) {
  std::map<std::string, Route> route_map;
  for (Route& route : routes) {
    const std::string path = route.path;
    if (path.empty() || path.front() != '/') {
      return absl::InvalidArgumentError(absl::StrCat("route \"", path, "\" must start with '/'"));
    }
    if (!route.handler) {
      return absl::InvalidArgumentError(absl::StrCat("route ", path, ": no handler"));
    }
    if (route.kind != Route::kReadOnly && route.kind != Route::kMutating) {
      return absl::InvalidArgumentError(
          absl::StrCat("route ", path, ": say whether it is read-only or mutating"));
    }
    if (!route_map.try_emplace(path, std::move(route)).second) {
      return absl::InvalidArgumentError(absl::StrCat("duplicate route ", path));
    }
  }
  ASSIGN_OR_RETURN(auto host_port, ParseHostPort(address));

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* results = nullptr;
  std::string port_text = std::to_string(host_port.second);
  int gai = getaddrinfo(host_port.first.c_str(), port_text.c_str(), &hints, &results);
  if (gai != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("admin address ", Sv(address), ": ", gai_strerror(gai)));
  }
  int listen_fd = -1;
  std::string last_error = "no usable address";
  for (addrinfo* ai = results; ai != nullptr && listen_fd < 0; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      last_error = absl::StrCat("socket: ", ErrnoText(errno));
      continue;
    }
    int one = 1;
    // Lets a restarted process rebind while old connections sit in TIME_WAIT.
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      last_error = absl::StrCat("bind: ", ErrnoText(errno));
      close(fd);
      continue;
    }
    if (listen(fd, 128) != 0) {
      last_error = absl::StrCat("listen: ", ErrnoText(errno));
      close(fd);
      continue;
    }
    listen_fd = fd;
  }
  freeaddrinfo(results);
  if (listen_fd < 0) {
    return absl::UnavailableError(absl::StrCat("admin address ", Sv(address), ": ", last_error));
  }

  sockaddr_storage bound{};
  socklen_t bound_len = sizeof(bound);
  if (getsockname(listen_fd, reinterpret_cast<sockaddr*>(&bound), &bound_len) != 0) {
    std::string err = ErrnoText(errno);
    close(listen_fd);
    return absl::InternalError(absl::StrCat("getsockname: ", err));
  }
  uint16_t port = bound.ss_family == AF_INET6
                      ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                      : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);

  int wake[2];
  if (pipe2(wake, O_NONBLOCK | O_CLOEXEC) != 0) {
    std::string err = ErrnoText(errno);
    close(listen_fd);
    return absl::InternalError(absl::StrCat("pipe2: ", err));
  }

  std::unique_ptr<AdminServer> server(new AdminServer());
  server->port_ = port;
  server->loop_ =
      std::make_unique<Loop>(listen_fd, wake[0], wake[1], std::move(route_map), options);
  return server;
}

AdminServer::~AdminServer() = default;

Route LogLevelRoute() {
  return {Route::kMutating, "/logging", [](const Request& request) {
            Response r;
            auto level = request.query.find("level");
            LogLevel before = GetLogLevel();
            if (level != request.query.end() && !SetLogLevelFromString(level->second)) {
              r.status = 400;
              r.body = absl::StrCat("unknown level \"", level->second,
                                    "\"; use debug, info, warning, error or off\n");
              return r;
            }
            if (level != request.query.end()) {
              WEFT_LOG(kWarning) << "admin: log level " << LogLevelName(before) << " -> "
                                 << level->second;
            }
            r.body = absl::StrCat("level: ", Sv(LogLevelName(GetLogLevel())), "\n");
            return r;
          }};
}

}  // namespace weft::http
