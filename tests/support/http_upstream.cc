// weft-test-upstream: a small, real HTTP/1.1 origin server for end-to-end tests of the proxy.
// It tells the test what arrived (path, Host, x- headers, body) so a test can check what the
// proxy forwarded, and it can misbehave on request (delays, statuses, chunked or big responses,
// connection close) so a test can check how the proxy copes.
//
//   weft-test-upstream [--address 127.0.0.1:0] [--ready-file F] [--name NAME]
//
// Every response carries `x-upstream: NAME`, `x-seen-path: <request target>`,
// `x-seen-host: <Host>` and, for every request header named x-*, `x-echo-<name>: <value>`.
//
//   any path      200, body "NAME\n", content-type text/plain
//   /echo         the request body back: chunked if the request was chunked, else content-length
//   /status/NNN   that status (200..599), body "NAME\n" (none for 204 and 304)
//   /delay/MS     sleeps MS milliseconds (at most 60 000), then 200
//   /chunked      a chunked response of 5 chunks, "chunk-I NAME\n" for I = 0..4
//   /big/N        N bytes of body (a repeating a..z pattern), at most 1 GiB
//   /close        200 with `connection: close`, then closes the connection
//   /upgrade      with an Upgrade header: 101 with that Upgrade, then every byte that arrives is
//                 sent back; when the client half-closes, "bye NAME\n" and close. Without: 426
//   /__count      the number of requests served so far, as text; /__count itself is not counted,
//                 so a test can poll it without moving it
//
// One thread per connection; HTTP/1.1 keep-alive and pipelining; request bodies by
// Content-Length or chunked; `Expect: 100-continue` is answered. Anything malformed gets a 400
// (431 for huge headers, 413 for huge bodies) and the connection is closed: this process never
// crashes on what a client sends. SIGTERM or SIGINT closes the listener and every connection,
// then exits 0.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <unordered_set>
#include <utility>
#include <vector>

#include "common/http/reason_phrase.h"

namespace weft::test {
namespace {

constexpr size_t kMaxHeadBytes = 64 * 1024;
constexpr size_t kMaxLineBytes = 8 * 1024;  // one chunk-size or trailer line
constexpr uint64_t kMaxRequestBody = 64ull << 20;
constexpr uint64_t kMaxBigBody = 1ull << 30;
constexpr int64_t kMaxDelayMs = 60'000;
constexpr size_t kMaxConnections = 4096;
constexpr int kChunkedResponseChunks = 5;

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && ToLower(a) == ToLower(b);
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// RFC 9110 tchar: what a method or a header name may be made of.
bool IsTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != '\0';
}

bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!IsTokenChar(c)) return false;
  }
  return true;
}

// Header values may hold visible characters, spaces, tabs and obs-text, never CR, LF or NUL:
// that is what makes echoing them back safe.
bool IsFieldValue(std::string_view s) {
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) return false;
  }
  return true;
}

bool IsRequestTarget(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f) return false;
  }
  return true;
}

// Decimal digits only (no sign, no spaces), without overflow.
std::optional<uint64_t> ParseDecimal(std::string_view s) {
  if (s.empty() || s.size() > 19) return std::nullopt;
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<uint64_t> ParseHex(std::string_view s) {
  if (s.empty() || s.size() > 15) return std::nullopt;
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 16);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

// State shared by every connection thread.
class Server {
 public:
  explicit Server(std::string name) : name_(std::move(name)) {}

  const std::string& name() const { return name_; }
  bool stopping() const { return stopping_.load(); }
  uint64_t CountRequest() { return ++requests_; }
  uint64_t requests() const { return requests_.load(); }

  // False when the server is full or stopping; the caller then closes the socket itself.
  bool AddConnection(int fd) {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || connections_.size() >= kMaxConnections) return false;
    connections_.insert(fd);
    return true;
  }

  // Removing and closing under the lock keeps Stop() from shutting down a reused descriptor.
  void CloseConnection(int fd) {
    std::lock_guard<std::mutex> lock(mu_);
    connections_.erase(fd);
    ::close(fd);
    if (connections_.empty()) idle_.notify_all();
  }

  // Wakes every blocked recv, send and delay; connection threads then exit on their own.
  void Stop() {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    for (int fd : connections_) ::shutdown(fd, SHUT_RDWR);
    idle_.notify_all();
  }

  bool WaitUntilNoConnections(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return idle_.wait_for(lock, timeout, [this] { return connections_.empty(); });
  }

  // Sleeps `ms`, cut short by Stop(). Returns false when stopping.
  bool Sleep(std::chrono::milliseconds ms) {
    std::unique_lock<std::mutex> lock(mu_);
    return !idle_.wait_for(lock, ms, [this] { return stopping_.load(); });
  }

 private:
  const std::string name_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> requests_{0};
  std::mutex mu_;
  std::condition_variable idle_;  // also signalled on Stop()
  std::unordered_set<int> connections_;
};

struct Request {
  std::string method;
  std::string target;
  bool http10 = false;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string host;
  bool keep_alive = true;
  bool chunked = false;
  bool expect_continue = false;
  uint64_t content_length = 0;
  std::string body;
  std::vector<std::string> chunks;  // the request's chunks, when it was chunked

  std::string_view Path() const {
    std::string_view t = target;
    // absolute-form (what a forward proxy would send): keep only the path.
    if (auto scheme = t.find("://"); scheme != std::string_view::npos && t.front() != '/') {
      auto slash = t.find('/', scheme + 3);
      t = slash == std::string_view::npos ? std::string_view("/") : t.substr(slash);
    }
    return t.substr(0, t.find_first_of("?#"));
  }
};

// A protocol error: the status to answer with before closing.
struct Fail {
  int status;
  std::string message;
};

class Connection {
 public:
  Connection(Server* server, int fd) : server_(server), fd_(fd) {}

  void Run() {
    while (!server_->stopping()) {
      Request req;
      std::optional<Fail> fail;
      if (!ReadRequest(&req, &fail)) {
        if (fail) SendError(*fail);
        return;
      }
      if (!Respond(req) || !req.keep_alive) return;
    }
  }

 private:
  // Appends what the socket has to in_. False on EOF, error or shutdown.
  bool Fill() {
    char buf[64 * 1024];
    while (true) {
      ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n > 0) {
        in_.append(buf, static_cast<size_t>(n));
        return true;
      }
      if (n < 0 && errno == EINTR) continue;
      return false;
    }
  }

  bool SendAll(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        return false;
      }
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // One line ending in LF (a preceding CR is dropped), at most kMaxLineBytes.
  bool ReadLine(std::string* line, std::optional<Fail>* fail) {
    size_t eol;
    while ((eol = in_.find('\n')) == std::string::npos) {
      if (in_.size() > kMaxLineBytes) {
        *fail = Fail{400, "line too long"};
        return false;
      }
      if (!Fill()) return false;
    }
    if (eol > kMaxLineBytes) {
      *fail = Fail{400, "line too long"};
      return false;
    }
    size_t len = eol > 0 && in_[eol - 1] == '\r' ? eol - 1 : eol;
    line->assign(in_, 0, len);
    in_.erase(0, eol + 1);
    return true;
  }

  bool ReadBytes(uint64_t n, std::string* out) {
    while (in_.size() < n) {
      if (!Fill()) return false;
    }
    out->append(in_, 0, n);
    in_.erase(0, n);
    return true;
  }

  // Reads and validates one request, body included. False when the connection should end: with
  // *fail set if the client deserves an error response first.
  bool ReadRequest(Request* req, std::optional<Fail>* fail) {
    // A client may send stray blank lines between requests (RFC 9112 §2.2).
    size_t head_end = std::string::npos;
    while (true) {
      while (!in_.empty() && (in_.front() == '\r' || in_.front() == '\n')) in_.erase(0, 1);
      if (size_t p = in_.find("\n\r\n"); p != std::string::npos) {
        head_end = p + 3;
      } else if (size_t q = in_.find("\n\n"); q != std::string::npos) {
        head_end = q + 2;
      }
      if (head_end != std::string::npos) break;
      if (in_.size() > kMaxHeadBytes) {
        *fail = Fail{431, "request head too large"};
        return false;
      }
      if (!Fill()) {
        if (!in_.empty()) *fail = Fail{400, "connection closed mid-request"};
        return false;
      }
    }
    if (head_end > kMaxHeadBytes) {
      *fail = Fail{431, "request head too large"};
      return false;
    }
    std::string head = in_.substr(0, head_end);
    in_.erase(0, head_end);
    if (!ParseHead(head, req, fail)) return false;

    if (req->expect_continue && !req->http10 && (req->chunked || req->content_length > 0)) {
      if (!SendAll("HTTP/1.1 100 Continue\r\n\r\n")) return false;
    }
    if (req->chunked) return ReadChunkedBody(req, fail);
    if (!ReadBytes(req->content_length, &req->body)) {
      *fail = Fail{400, "connection closed mid-body"};
      return false;
    }
    return true;
  }

  bool ParseHead(std::string_view head, Request* req, std::optional<Fail>* fail) {
    std::vector<std::string_view> lines;
    while (!head.empty()) {
      size_t eol = head.find('\n');
      std::string_view line = head.substr(0, eol);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      lines.push_back(line);
      head.remove_prefix(eol == std::string_view::npos ? head.size() : eol + 1);
    }
    while (!lines.empty() && lines.back().empty()) lines.pop_back();
    if (lines.empty()) {
      *fail = Fail{400, "empty request"};
      return false;
    }

    // request-line = method SP request-target SP HTTP-version, single spaces.
    std::string_view rl = lines[0];
    size_t sp1 = rl.find(' ');
    size_t sp2 = sp1 == std::string_view::npos ? sp1 : rl.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || rl.find(' ', sp2 + 1) != std::string_view::npos) {
      *fail = Fail{400, "malformed request line"};
      return false;
    }
    std::string_view method = rl.substr(0, sp1);
    std::string_view target = rl.substr(sp1 + 1, sp2 - sp1 - 1);
    std::string_view version = rl.substr(sp2 + 1);
    if (!IsToken(method) || !IsRequestTarget(target)) {
      *fail = Fail{400, "malformed request line"};
      return false;
    }
    if (version == "HTTP/1.0") {
      req->http10 = true;
    } else if (version != "HTTP/1.1") {
      *fail = Fail{400, "unsupported HTTP version"};
      return false;
    }
    req->method = std::string(method);
    req->target = std::string(target);

    bool have_host = false;
    bool have_length = false;
    bool have_te = false;
    bool conn_close = false;
    bool conn_keep_alive = false;
    for (size_t i = 1; i < lines.size(); ++i) {
      std::string_view line = lines[i];
      size_t colon = line.find(':');
      // Obsolete line folding and whitespace before the colon are both refused (RFC 9112 §5).
      if (colon == std::string_view::npos || !IsToken(line.substr(0, colon))) {
        *fail = Fail{400, "malformed header line"};
        return false;
      }
      std::string name = ToLower(line.substr(0, colon));
      std::string_view value = Trim(line.substr(colon + 1));
      if (!IsFieldValue(value)) {
        *fail = Fail{400, "invalid header value"};
        return false;
      }
      if (name == "host") {
        if (have_host) {
          *fail = Fail{400, "duplicate host"};
          return false;
        }
        have_host = true;
        req->host = std::string(value);
      } else if (name == "content-length") {
        auto n = ParseDecimal(value);
        if (!n || (have_length && *n != req->content_length)) {
          *fail = Fail{400, "invalid content-length"};
          return false;
        }
        have_length = true;
        req->content_length = *n;
      } else if (name == "transfer-encoding") {
        // Only a final "chunked" is something we can frame; anything else is refused.
        std::string_view last = value;
        if (size_t comma = value.rfind(','); comma != std::string_view::npos) {
          last = Trim(value.substr(comma + 1));
        }
        if (!EqualsIgnoreCase(last, "chunked") || have_te) {
          *fail = Fail{400, "unsupported transfer-encoding"};
          return false;
        }
        have_te = true;
        req->chunked = true;
      } else if (name == "connection") {
        std::string_view rest = value;
        while (!rest.empty()) {
          size_t comma = rest.find(',');
          std::string_view token = Trim(rest.substr(0, comma));
          if (EqualsIgnoreCase(token, "close")) conn_close = true;
          if (EqualsIgnoreCase(token, "keep-alive")) conn_keep_alive = true;
          rest.remove_prefix(comma == std::string_view::npos ? rest.size() : comma + 1);
        }
      } else if (name == "expect") {
        req->expect_continue = EqualsIgnoreCase(value, "100-continue");
      }
      req->headers.emplace_back(std::move(name), std::string(value));
    }
    // Both framings at once is the classic request-smuggling shape: refuse rather than guess.
    if (have_te && have_length) {
      *fail = Fail{400, "both content-length and transfer-encoding"};
      return false;
    }
    if (req->http10 && req->chunked) {
      *fail = Fail{400, "chunked in HTTP/1.0"};
      return false;
    }
    if (req->content_length > kMaxRequestBody) {
      *fail = Fail{413, "request body too large"};
      return false;
    }
    req->keep_alive = req->http10 ? conn_keep_alive && !conn_close : !conn_close;
    return true;
  }

  bool ReadChunkedBody(Request* req, std::optional<Fail>* fail) {
    std::string line;
    while (true) {
      if (!ReadLine(&line, fail)) {
        if (!*fail) *fail = Fail{400, "connection closed mid-body"};
        return false;
      }
      std::string_view size_text = line;
      size_text = Trim(size_text.substr(0, size_text.find(';')));  // drop chunk extensions
      auto size = ParseHex(size_text);
      if (!size) {
        *fail = Fail{400, "invalid chunk size"};
        return false;
      }
      if (*size == 0) break;
      if (req->body.size() + *size > kMaxRequestBody) {
        *fail = Fail{413, "request body too large"};
        return false;
      }
      std::string chunk;
      if (!ReadBytes(*size, &chunk) || !ReadLine(&line, fail)) {
        if (!*fail) *fail = Fail{400, "connection closed mid-body"};
        return false;
      }
      if (!line.empty()) {
        *fail = Fail{400, "chunk data longer than its size"};
        return false;
      }
      req->body += chunk;
      req->chunks.push_back(std::move(chunk));
    }
    // Trailer fields, ignored, up to the blank line.
    for (int i = 0;; ++i) {
      if (i > 100) {
        *fail = Fail{400, "too many trailers"};
        return false;
      }
      if (!ReadLine(&line, fail)) {
        if (!*fail) *fail = Fail{400, "connection closed mid-body"};
        return false;
      }
      if (line.empty()) return true;
    }
  }

  // Status line and the headers every response carries; the caller adds framing and the end.
  std::string Head(const Request& req, int status, bool keep_alive) const {
    std::string h = "HTTP/1.1 " + std::to_string(status) + " " +
                    std::string(weft::http::ReasonPhrase(status)) +
                    "\r\nx-upstream: " + server_->name() + "\r\nx-seen-path: " + req.target +
                    "\r\nx-seen-host: " + req.host + "\r\n";
    for (const auto& [name, value] : req.headers) {
      if (name.size() > 2 && name.compare(0, 2, "x-") == 0) {
        h += "x-echo-" + name + ": " + value + "\r\n";
      }
    }
    if (!keep_alive) {
      h += "connection: close\r\n";
    } else if (req.http10) {
      h += "connection: keep-alive\r\n";
    }
    return h;
  }

  bool SendSimple(const Request& req, int status, std::string_view body,
                  std::string_view content_type = "text/plain") {
    std::string out = Head(req, status, req.keep_alive);
    bool no_body = status == 204 || status == 304;
    if (!no_body) {
      out += "content-type: " + std::string(content_type) +
             "\r\ncontent-length: " + std::to_string(body.size()) + "\r\n";
    }
    out += "\r\n";
    if (!no_body && req.method != "HEAD") out += body;
    return SendAll(out);
  }

  bool SendChunked(const Request& req, const std::vector<std::string>& chunks,
                   std::string_view content_type) {
    // HTTP/1.0 has no chunked framing: fall back to reading until close.
    if (req.http10) {
      std::string body;
      for (const auto& c : chunks) body += c;
      std::string out =
          Head(req, 200, false) + "content-type: " + std::string(content_type) + "\r\n\r\n";
      if (req.method != "HEAD") out += body;
      SendAll(out);
      return false;  // the body ends at close
    }
    std::string out = Head(req, 200, req.keep_alive) +
                      "content-type: " + std::string(content_type) +
                      "\r\ntransfer-encoding: chunked\r\n\r\n";
    if (!SendAll(out)) return false;
    if (req.method == "HEAD") return true;
    // Each chunk goes out in its own send (TCP_NODELAY is on), so a proxy really sees the
    // response arrive in pieces.
    char size[32];
    for (const auto& c : chunks) {
      if (c.empty()) continue;
      std::snprintf(size, sizeof(size), "%zx\r\n", c.size());
      if (!SendAll(std::string(size) + c + "\r\n")) return false;
    }
    return SendAll("0\r\n\r\n");
  }

  bool SendBig(const Request& req, uint64_t n) {
    std::string out =
        Head(req, 200, req.keep_alive) +
        "content-type: application/octet-stream\r\ncontent-length: " + std::to_string(n) +
        "\r\n\r\n";
    if (!SendAll(out)) return false;
    if (req.method == "HEAD") return true;
    std::string block(64 * 1024, 'a');
    for (size_t i = 0; i < block.size(); ++i) block[i] = static_cast<char>('a' + i % 26);
    // Offsets continue the pattern across blocks because 64 Ki is not a multiple of 26.
    uint64_t sent = 0;
    while (sent < n) {
      size_t off = static_cast<size_t>(sent % 26);
      size_t len = static_cast<size_t>(std::min<uint64_t>(n - sent, block.size() - 26));
      if (!SendAll(std::string_view(block).substr(off, len))) return false;
      sent += len;
    }
    return true;
  }

  std::string_view ContentType(const Request& req) const {
    for (const auto& [name, value] : req.headers) {
      if (name == "content-type") return value;
    }
    return "application/octet-stream";
  }

  // Writes the response. False when the connection must end.
  bool Respond(Request& req) {
    std::string_view path = req.Path();
    if (path == "/__count") {
      return SendSimple(req, 200, std::to_string(server_->requests()) + "\n");
    }
    server_->CountRequest();
    const std::string body = server_->name() + "\n";

    if (path == "/echo") {
      if (req.chunked) {
        return SendChunked(req, req.chunks, ContentType(req)) && req.keep_alive;
      }
      return SendSimple(req, 200, req.body, ContentType(req));
    }
    if (path.starts_with("/status/")) {
      auto code = ParseDecimal(path.substr(8));
      if (!code || *code < 200 || *code > 599) return SendSimple(req, 400, "bad status\n");
      return SendSimple(req, static_cast<int>(*code), body);
    }
    if (path.starts_with("/delay/")) {
      auto ms = ParseDecimal(path.substr(7));
      if (!ms || *ms > static_cast<uint64_t>(kMaxDelayMs)) {
        return SendSimple(req, 400, "bad delay\n");
      }
      if (!server_->Sleep(std::chrono::milliseconds(*ms))) return false;
      return SendSimple(req, 200, body);
    }
    if (path == "/chunked") {
      std::vector<std::string> chunks;
      for (int i = 0; i < kChunkedResponseChunks; ++i) {
        chunks.push_back("chunk-" + std::to_string(i) + " " + body);
      }
      return SendChunked(req, chunks, "text/plain") && req.keep_alive;
    }
    if (path.starts_with("/big/")) {
      auto n = ParseDecimal(path.substr(5));
      if (!n || *n > kMaxBigBody) return SendSimple(req, 400, "bad size\n");
      return SendBig(req, *n);
    }
    if (path == "/upgrade") return Tunnel(req);
    if (path == "/close") {
      req.keep_alive = false;
      SendSimple(req, 200, body);
      return false;
    }
    return SendSimple(req, 200, body);
  }

  // 101, then an echo until the client half-closes, which ends the connection. Without an
  // Upgrade header a 426 that keeps the connection as it says it does (a server that closes
  // one it declared kept-alive races the proxy's reuse of it).
  bool Tunnel(const Request& req) {
    std::string_view upgrade;
    for (const auto& [name, value] : req.headers) {
      if (name == "upgrade") upgrade = value;
    }
    if (upgrade.empty()) return SendSimple(req, 426, "upgrade required\n");
    std::string head = "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: " +
                       std::string(upgrade) + "\r\nx-upstream: " + server_->name() + "\r\n\r\n";
    if (!SendAll(head)) return false;
    // Bytes the client sent right behind its request head are the tunnel's first bytes.
    while (true) {
      if (!in_.empty()) {
        std::string data = std::move(in_);
        in_.clear();
        if (!SendAll(data)) return false;
      }
      if (!Fill()) break;
    }
    SendAll("bye " + server_->name() + "\n");
    return false;
  }

  void SendError(const Fail& fail) {
    std::string body = fail.message + "\n";
    SendAll("HTTP/1.1 " + std::to_string(fail.status) + " " +
            std::string(weft::http::ReasonPhrase(fail.status)) +
            "\r\nx-upstream: " + server_->name() +
            "\r\ncontent-type: text/plain\r\nconnection: close\r\ncontent-length: " +
            std::to_string(body.size()) + "\r\n\r\n" + body);
  }

  Server* server_;
  int fd_;
  std::string in_;
};

struct Flags {
  std::string address = "127.0.0.1:0";
  std::string ready_file;
  std::string name = "upstream";
};

constexpr char kUsage[] =
    "usage: weft-test-upstream [--address HOST:PORT] [--ready-file FILE] [--name NAME]\n"
    "  --address     listen address (default 127.0.0.1:0: the kernel picks the port)\n"
    "  --ready-file  written with {\"port\":N} (via a temporary and a rename) once listening\n"
    "  --name        shown in bodies and in the x-upstream header (default \"upstream\")\n";

// 0 = parsed, 1 = --help, 2 = usage error.
int ParseFlags(int argc, char** argv, Flags* flags) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") return 1;
    std::string_view value;
    size_t eq = arg.find('=');
    std::string_view key = arg.substr(0, eq);
    std::string* dest = key == "--address"      ? &flags->address
                        : key == "--ready-file" ? &flags->ready_file
                        : key == "--name"       ? &flags->name
                                                : nullptr;
    if (dest == nullptr) {
      std::fprintf(stderr, "weft-test-upstream: unknown flag %s\n%s", argv[i], kUsage);
      return 2;
    }
    if (eq != std::string_view::npos) {
      value = arg.substr(eq + 1);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      std::fprintf(stderr, "weft-test-upstream: %s needs a value\n", argv[i]);
      return 2;
    }
    *dest = std::string(value);
  }
  if (flags->name.empty() || !IsFieldValue(flags->name)) {
    std::fprintf(stderr, "weft-test-upstream: --name must be a non-empty header value\n");
    return 2;
  }
  return 0;
}

// Binds and listens on "host:port" (IPv4, or [IPv6]); returns the fd, or -1 with a message.
int Listen(const std::string& address, int* port) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos) {
    std::fprintf(stderr, "weft-test-upstream: --address %s: want HOST:PORT\n", address.c_str());
    return -1;
  }
  std::string host = address.substr(0, colon);
  auto port_num = ParseDecimal(std::string_view(address).substr(colon + 1));
  if (!port_num || *port_num > 65535) {
    std::fprintf(stderr, "weft-test-upstream: --address %s: bad port\n", address.c_str());
    return -1;
  }
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = AF_INET;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    family = AF_INET6;
    auto* a6 = reinterpret_cast<sockaddr_in6*>(&ss);
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(static_cast<uint16_t>(*port_num));
    if (inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), &a6->sin6_addr) != 1) {
      family = -1;
    }
    len = sizeof(*a6);
  } else {
    auto* a4 = reinterpret_cast<sockaddr_in*>(&ss);
    a4->sin_family = AF_INET;
    a4->sin_port = htons(static_cast<uint16_t>(*port_num));
    if (inet_pton(AF_INET, host.c_str(), &a4->sin_addr) != 1) family = -1;
    len = sizeof(*a4);
  }
  if (family < 0) {
    std::fprintf(stderr, "weft-test-upstream: --address %s: bad host\n", address.c_str());
    return -1;
  }
  int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd < 0 || ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
      ::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd, 1024) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    std::fprintf(stderr, "weft-test-upstream: listen on %s: %s\n", address.c_str(),
                 std::strerror(errno));
    if (fd >= 0) ::close(fd);
    return -1;
  }
  *port = ntohs(family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                   : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  return fd;
}

bool WriteReadyFile(const std::string& path, int port) {
  std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr) return false;
  bool ok = std::fprintf(f, "{\"port\":%d}\n", port) > 0;
  ok = std::fclose(f) == 0 && ok;
  return ok && std::rename(tmp.c_str(), path.c_str()) == 0;
}

}  // namespace
}  // namespace weft::test

int main(int argc, char** argv) {
  using weft::test::Connection;
  using weft::test::Server;
  weft::test::Flags flags;
  if (int rc = weft::test::ParseFlags(argc, argv, &flags); rc != 0) {
    if (rc == 1) std::fputs(weft::test::kUsage, stdout);
    return rc == 1 ? 0 : rc;
  }

  // Signals are taken by one thread with sigwait: blocked here, before any thread exists, so
  // every thread inherits the mask and none is interrupted by them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  int port = 0;
  int listen_fd = weft::test::Listen(flags.address, &port);
  if (listen_fd < 0) return 1;
  Server server(flags.name);

  std::atomic<bool> signalled{false};
  std::thread([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    signalled = true;
    // Wakes the accept below (Linux returns EINVAL from accept on a shut-down listener).
    ::shutdown(listen_fd, SHUT_RDWR);
  }).detach();

  if (!flags.ready_file.empty() && !weft::test::WriteReadyFile(flags.ready_file, port)) {
    std::fprintf(stderr, "weft-test-upstream: cannot write --ready-file %s: %s\n",
                 flags.ready_file.c_str(), std::strerror(errno));
    return 1;
  }
  std::fprintf(stderr, "weft-test-upstream %s listening on %s (port %d)\n", flags.name.c_str(),
               flags.address.c_str(), port);

  while (!signalled) {
    int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (signalled) break;
      // Out of descriptors or an aborted handshake: back off briefly instead of spinning.
      if (errno != EINTR && errno != ECONNABORTED) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      continue;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (!server.AddConnection(fd)) {
      ::close(fd);
      continue;
    }
    try {
      std::thread([&server, fd] {
        Connection(&server, fd).Run();
        server.CloseConnection(fd);
      }).detach();
    } catch (const std::system_error&) {  // thread limit: drop this connection, keep serving
      server.CloseConnection(fd);
    }
  }
  ::close(listen_fd);
  server.Stop();
  bool drained = server.WaitUntilNoConnections(std::chrono::seconds(5));
  std::fprintf(stderr, "weft-test-upstream %s: stopped after %llu requests\n", flags.name.c_str(),
               static_cast<unsigned long long>(server.requests()));
  // Threads still running after the grace period would race static destructors: leave now.
  if (!drained) std::_Exit(0);
  return 0;
}
