// weft-proxy against hostile peers (issue 17): clients and upstreams that do what the protocol
// allows or forbids in ways that used to get past the proxy. Each case looks only at the wire:
// what the client receives, what an in-process scripted upstream records, the proxy's stats,
// access log and, for the memory bounds, its VmRSS from /proc. The proxy runs on static
// resources (no control plane) with one worker, so a test knows which pooled connection a
// request takes.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "data-plane/net/event_loop.h"
#include "tests/e2e/e2e_util.h"
#include "tests/support/http_client.h"
#include "tests/support/process.h"

namespace weft::test {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

int Connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (fd >= 0 && connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Everything a client connection receives until the peer ends it, and how it ended.
struct Received {
  std::string bytes;
  bool reset = false;      // ECONNRESET: the peer aborted the connection
  bool timed_out = false;  // neither EOF nor reset within the wait
};
Received ReceiveUntilEnd(int fd, milliseconds wait = seconds(5)) {
  Received r;
  auto deadline = std::chrono::steady_clock::now() + wait;
  char buf[64 * 1024];
  for (;;) {
    auto left =
        std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    if (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) <= 0) {
      r.timed_out = true;
      return r;
    }
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      r.bytes.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    r.reset = n < 0 && errno == ECONNRESET;
    return r;
  }
}

// For --io-uring on: false (with a warning) where this kernel refuses io_uring.
bool SendModeAvailable(const std::string& io_uring) {
  UNSCOPED_INFO("--io-uring " << io_uring);
  if (io_uring != "on") return true;
  auto loop = net::EventLoop::Create(net::SendMode::kUring);
  if (!loop.ok()) WARN("io_uring unavailable, path not tested: " << loop.status().message());
  return loop.ok();
}

// A request as the scripted upstream read it.
struct SeenRequest {
  std::string head;  // request line and headers, as received
  std::string body;
  std::string RequestLine() const { return head.substr(0, head.find("\r\n")); }
  // The values of header `name` (case-insensitive), joined by ",".
  std::string Header(const std::string& name) const {
    std::string out;
    size_t pos = head.find("\r\n");
    while (pos != std::string::npos && pos + 2 < head.size()) {
      size_t end = head.find("\r\n", pos + 2);
      std::string line = head.substr(pos + 2, end - pos - 2);
      size_t colon = line.find(':');
      if (colon != std::string::npos && Lower(line.substr(0, colon)) == Lower(name)) {
        size_t v = line.find_first_not_of(' ', colon + 1);
        if (!out.empty()) out += ",";
        out += v == std::string::npos ? "" : line.substr(v);
      }
      pos = end;
    }
    return out;
  }
  bool HasHeader(const std::string& name) const {
    return Lower(head).find("\r\n" + Lower(name) + ":") != std::string::npos;
  }
};

class ScriptedUpstream;

// One upstream connection as its handler sees it.
class UpstreamConn {
 public:
  UpstreamConn(ScriptedUpstream* server, int fd, int index)
      : server_(server), fd_(fd), index_(index) {}
  int index() const { return index_; }  // 0 for the first connection the upstream accepted
  int fd() const { return fd_; }
  // Reads one request head and its Content-Length or chunked body; nullopt on EOF or error.
  std::optional<SeenRequest> ReadRequest();
  // Reads one request head only (recorded); its body is left to TakeBody.
  std::optional<SeenRequest> ReadHead();
  // Up to `max` bytes of what follows the head: buffered ones first, then one recv. 0 on EOF.
  size_t TakeBody(size_t max);
  bool Send(std::string_view data) { return SendAll(fd_, data); }
  // A 200 with `body`, keep-alive.
  bool Ok(std::string_view body = "ok\n") {
    return Send("HTTP/1.1 200 OK\r\ncontent-length: " + std::to_string(body.size()) + "\r\n\r\n" +
                std::string(body));
  }

 private:
  bool Fill();
  std::optional<SeenRequest> TakeHead();
  ScriptedUpstream* server_;
  int fd_;
  int index_;
  std::string in_;
};

// An HTTP/1.1 origin in the test process whose behaviour each test scripts: every accepted
// connection runs `handler` on its own thread. Every request a handler reads is recorded.
class ScriptedUpstream {
 public:
  using Handler = std::function<void(UpstreamConn&)>;

  // `socket_buffer` (bytes, 0: the kernel's default): SO_RCVBUF and SO_SNDBUF of every
  // accepted connection, so a slow upstream holds little in its own kernel buffers.
  explicit ScriptedUpstream(Handler handler, int socket_buffer = 0) : handler_(std::move(handler)) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(listen_fd_ >= 0);
    int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (socket_buffer > 0) {
      setsockopt(listen_fd_, SOL_SOCKET, SO_RCVBUF, &socket_buffer, sizeof socket_buffer);
      setsockopt(listen_fd_, SOL_SOCKET, SO_SNDBUF, &socket_buffer, sizeof socket_buffer);
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(listen(listen_fd_, 64) == 0);
    socklen_t len = sizeof addr;
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { AcceptLoop(); });
  }
  ~ScriptedUpstream() {
    stopping_ = true;
    shutdown(listen_fd_, SHUT_RDWR);
    acceptor_.join();
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (int fd : open_) shutdown(fd, SHUT_RDWR);
    }
    for (auto& t : threads_) t.join();
    close(listen_fd_);
  }
  int port() const { return port_; }
  int connections() const { return accepted_.load(); }
  std::vector<SeenRequest> requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  // How many recorded requests have `line` as their request line.
  int Count(const std::string& line) const {
    int n = 0;
    for (const auto& r : requests()) n += r.RequestLine() == line;
    return n;
  }
  void Record(SeenRequest r) {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.push_back(std::move(r));
  }

 private:
  void AcceptLoop() {
    while (!stopping_) {
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        return;  // shut down
      }
      int index = accepted_++;
      std::lock_guard<std::mutex> lock(mu_);
      open_.push_back(fd);
      threads_.emplace_back([this, fd, index] {
        UpstreamConn conn(this, fd, index);
        handler_(conn);
        std::lock_guard<std::mutex> l(mu_);
        std::erase(open_, fd);
        close(fd);
      });
    }
  }

  Handler handler_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> accepted_{0};
  std::thread acceptor_;
  mutable std::mutex mu_;
  std::vector<int> open_;
  std::vector<std::thread> threads_;
  std::vector<SeenRequest> requests_;
};

bool UpstreamConn::Fill() {
  char buf[64 * 1024];
  for (;;) {
    ssize_t n = recv(fd_, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    in_.append(buf, static_cast<size_t>(n));
    return true;
  }
}

std::optional<SeenRequest> UpstreamConn::TakeHead() {
  size_t end;
  while ((end = in_.find("\r\n\r\n")) == std::string::npos) {
    if (!Fill()) return std::nullopt;
  }
  SeenRequest r;
  r.head = in_.substr(0, end + 2);
  in_.erase(0, end + 4);
  return r;
}

std::optional<SeenRequest> UpstreamConn::ReadHead() {
  auto r = TakeHead();
  if (r) server_->Record(*r);
  return r;
}

size_t UpstreamConn::TakeBody(size_t max) {
  if (in_.empty() && !Fill()) return 0;
  size_t n = std::min(max, in_.size());
  in_.erase(0, n);
  return n;
}

std::optional<SeenRequest> UpstreamConn::ReadRequest() {
  auto head = TakeHead();
  if (!head) return std::nullopt;
  SeenRequest& r = *head;
  size_t end;
  if (std::string length = r.Header("content-length"); !length.empty()) {
    size_t n = std::stoul(length);
    while (in_.size() < n) {
      if (!Fill()) return std::nullopt;
    }
    r.body = in_.substr(0, n);
    in_.erase(0, n);
  } else if (Lower(r.Header("transfer-encoding")) == "chunked") {
    while ((end = in_.find("0\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return std::nullopt;
    }
    r.body = in_.substr(0, end + 5);
    in_.erase(0, end + 5);
  }
  server_->Record(r);
  return r;
}

// Answers every request with 200 "ok" until the proxy closes the connection.
void ServeOk(UpstreamConn& c) {
  while (c.ReadRequest()) {
    if (!c.Ok()) return;
  }
}

// A static cluster named `name` with one endpoint.
std::string StaticCluster(const std::string& name, int port) {
  return "  - name: " + name +
         "\n"
         "    type: STATIC\n"
         "    connect_timeout: 1s\n"
         "    load_assignment:\n"
         "      cluster_name: " +
         name +
         "\n"
         "      endpoints:\n"
         "      - lb_endpoints:\n"
         "        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: " +
         std::to_string(port) + " } } }\n";
}

// weft-proxy on static resources: one listener whose connection manager gets `hcm_lines`
// (indented YAML lines, may be empty) and the inline `virtual_hosts` (YAML at 10 spaces), and
// the clusters in `clusters` (StaticCluster entries).
class Proxy {
 public:
  Proxy(const std::string& hcm_lines, const std::string& virtual_hosts, const std::string& clusters,
        const std::string& io_uring = "auto") {
    std::string bootstrap = dir_.Join("bootstrap.yaml");
    REQUIRE(WriteFileAtomic(
        bootstrap,
        "node: { id: hostile, cluster: test }\n"
        "admin: { address: \"127.0.0.1:0\" }\n"
        "concurrency: 1\n"
        "static_resources:\n"
        "  listeners:\n"
        "  - name: http\n"
        "    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }\n"
        "    filter_chains:\n"
        "    - filters:\n"
        "      - name: envoy.filters.network.http_connection_manager\n"
        "        typed_config:\n"
        "          \"@type\": type.googleapis.com/"
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n"
        "          stat_prefix: http\n" +
            hcm_lines +
            "          http_filters:\n"
            "          - name: envoy.filters.http.router\n"
            "            typed_config: { \"@type\": "
            "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }\n"
            "          route_config:\n"
            "            name: local\n"
            "            virtual_hosts:\n" +
            virtual_hosts + "  clusters:\n" + clusters));
    std::string ready = dir_.Join("proxy.ready");
    std::string error;
    // In an ASan build, freed blocks wait in a quarantine of 256 MiB by default: the resident
    // set would then show the allocator's history, not what the proxy holds. A small one
    // still catches use after free. (Other builds ignore the variable.)
    const char* asan = std::getenv("ASAN_OPTIONS");
    std::string asan_options = std::string(asan != nullptr ? asan : "") + ":quarantine_size_mb=4";
    process_ =
        Subprocess::Start({BinDir() + "/weft-proxy", "--bootstrap", bootstrap, "--ready-file",
                           ready, "--access-log", dir_.Join("access.log"), "--io-uring", io_uring},
                          {{"ASAN_OPTIONS", asan_options}}, dir_.Join("proxy.log"), &error);
    INFO(error);
    REQUIRE(process_);
    WaitFor([&] { return ReadFile(ready).has_value() || !process_->Running(); }, seconds(10));
    if (!process_->Running()) FAIL("weft-proxy exited: " << process_->LogTail());
    admin_port_ = JsonIntField(*ReadFile(ready), "admin_port").value_or(-1);
    REQUIRE(admin_port_ > 0);
    REQUIRE(WaitFor([&] { return HttpGet(admin_port_, "/ready").status == 200; }, seconds(10)));
    std::string listeners = HttpGet(admin_port_, "/listeners").body;
    INFO(listeners);
    port_ = JsonIntField(listeners, "port").value_or(-1);
    REQUIRE(port_ > 0);
  }
  ~Proxy() {
    if (CurrentTestFailed() && process_) {
      std::fprintf(stderr, "---- weft-proxy log ----\n%s\n", process_->LogTail().c_str());
    }
  }
  int port() const { return port_; }
  pid_t pid() const { return process_->pid(); }
  bool Running() { return process_->Running(); }
  // A counter or gauge from /stats/prometheus, or -1 when absent.
  long long Metric(std::string_view name, const std::map<std::string, std::string>& labels) {
    auto v = MetricValue(HttpGet(admin_port_, "/stats/prometheus").body, name, labels);
    return v ? static_cast<long long>(*v) : -1;
  }
  // The access log once it holds at least `lines` lines (it is flushed every 50 ms).
  std::string AccessLog(size_t lines) {
    std::string log;
    WaitFor(
        [&] {
          log = ReadFile(dir_.Join("access.log")).value_or("");
          return static_cast<size_t>(std::count(log.begin(), log.end(), '\n')) >= lines;
        },
        seconds(3));
    return log;
  }

 private:
  TempDir dir_{"weft-hostile"};
  std::unique_ptr<Subprocess> process_;
  int admin_port_ = 0;
  int port_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Item 2: an absolute-form request target is routed by its path and its authority.

// Virtual host "good": /admin is refused by the proxy itself, the rest goes to cluster "up";
// any other authority gets a local 200 naming the catch-all.
constexpr char kGoodAndCatchAll[] =
    "            - name: good\n"
    "              domains: [good, \"good:*\"]\n"
    "              routes:\n"
    "              - match: { prefix: /admin }\n"
    "                direct_response: { status: 403, body: { inline_string: \"denied\\n\" } }\n"
    "              - match: { prefix: / }\n"
    "                route: { cluster: up }\n"
    "            - name: other\n"
    "              domains: [\"*\"]\n"
    "              routes:\n"
    "              - match: { prefix: \"\" }\n"
    "                direct_response: { status: 200, body: { inline_string: \"catch-all\\n\" } "
    "}\n";

TEST_CASE("hostile: an absolute-form target is routed by its path and authority",
          "[e2e][hostile]") {
  ScriptedUpstream up(ServeOk);
  Proxy proxy("", kGoodAndCatchAll, StaticCluster("up", up.port()));
  HttpClient client(proxy.port());

  // The /admin rule sees the path, whatever form the target takes.
  ClientResponse r = client.Raw("GET http://good/admin/x HTTP/1.1\r\nHost: good\r\n\r\n");
  CHECK(r.status == 403);
  CHECK(r.body == "denied\n");
  // The authority in the target replaces Host (RFC 9112 §3.2.2), for routing too.
  r = client.Raw("GET http://good/admin/x HTTP/1.1\r\nHost: elsewhere\r\n\r\n");
  CHECK(r.status == 403);
  r = client.Raw("GET HTTP://Good:80/admin HTTP/1.1\r\nHost: elsewhere\r\n\r\n");
  CHECK(r.status == 403);
  r = client.Raw("GET http://elsewhere/admin HTTP/1.1\r\nHost: good\r\n\r\n");
  CHECK(r.body == "catch-all\n");

  // The upstream receives origin-form, with the target's authority as Host.
  r = client.Raw("GET http://good/public/page?q=1 HTTP/1.1\r\nHost: elsewhere\r\n\r\n");
  CHECK(r.status == 200);
  r = client.Raw("GET https://good HTTP/1.1\r\nHost: good\r\n\r\n");
  CHECK(r.status == 200);
  auto seen = up.requests();
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].RequestLine() == "GET /public/page?q=1 HTTP/1.1");
  CHECK(seen[0].Header("host") == "good");
  CHECK(seen[1].RequestLine() == "GET / HTTP/1.1");

  // Targets that name no HTTP resource are refused rather than routed.
  for (std::string_view target : {"ftp://good/admin", "http:///admin", "http://user@good/admin",
                                  "http//good/admin", "admin/x", "http://good\\@evil/admin"}) {
    INFO(target);
    HttpClient bad(proxy.port());
    r = bad.Raw("GET " + std::string(target) + " HTTP/1.1\r\nHost: good\r\n\r\n");
    CHECK(r.status == 400);
  }
  CHECK(up.requests().size() == 2);
}

TEST_CASE("hostile: normalize_path and merge_slashes give every matcher one canonical path",
          "[e2e][hostile]") {
  ScriptedUpstream up(ServeOk);
  Proxy proxy("          normalize_path: true\n          merge_slashes: true\n", kGoodAndCatchAll,
              StaticCluster("up", up.port()));
  HttpClient client(proxy.port());
  for (std::string_view target :
       {"/public/../admin/x", "//admin//x", "/./admin", "/%61dmin/x", "/public/%2e%2e/admin",
        "/public/%2E%2e//admin", "/../../admin", "http://good/public/../admin"}) {
    INFO(target);
    ClientResponse r = client.Raw("GET " + std::string(target) + " HTTP/1.1\r\nHost: good\r\n\r\n");
    CHECK(r.status == 403);
  }
  // What reaches the upstream is the canonical path; the query is left alone.
  ClientResponse r =
      client.Raw("GET /a/./b/../c//d/%7euser%2fx?x=/../y//z HTTP/1.1\r\nHost: good\r\n\r\n");
  CHECK(r.status == 200);
  auto seen = up.requests();
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].RequestLine() == "GET /a/c/d/~user%2Fx?x=/../y//z HTTP/1.1");
  // A malformed escape cannot be normalised: refused.
  HttpClient bad(proxy.port());
  CHECK(bad.Raw("GET /a%zz HTTP/1.1\r\nHost: good\r\n\r\n").status == 400);
}

TEST_CASE("hostile: without normalize_path the path is matched and forwarded as sent",
          "[e2e][hostile]") {
  ScriptedUpstream up(ServeOk);
  Proxy proxy("", kGoodAndCatchAll, StaticCluster("up", up.port()));
  HttpClient client(proxy.port());
  CHECK(client.Raw("GET /public/../admin HTTP/1.1\r\nHost: good\r\n\r\n").status == 200);
  auto seen = up.requests();
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].RequestLine() == "GET /public/../admin HTTP/1.1");
}

// ---------------------------------------------------------------------------------------------
// Item 6: headers named in Connection are hop-by-hop (RFC 9110 §7.6.1), both ways.

// One virtual host for every authority, sending everything to `route` (a RouteAction).
std::string AllTo(const std::string& route) {
  return "            - name: all\n"
         "              domains: [\"*\"]\n"
         "              routes:\n"
         "              - match: { prefix: / }\n"
         "                route: " +
         route + "\n";
}
const std::string kAllToUp = AllTo("{ cluster: up }");

TEST_CASE("hostile: headers named in Connection do not cross the proxy, either way",
          "[e2e][hostile]") {
  ScriptedUpstream up([](UpstreamConn& c) {
    while (c.ReadRequest()) {
      if (!c.Send("HTTP/1.1 200 OK\r\n"
                  "Connection: X-Resp-Secret, keep-alive\r\n"
                  "connection: x-resp-other\r\n"
                  "X-Resp-Secret: from upstream\r\n"
                  "X-Resp-Other: also\r\n"
                  "Keep-Alive: timeout=5\r\n"
                  "Proxy-Connection: keep-alive\r\n"
                  "X-Resp-Kept: yes\r\n"
                  "content-length: 3\r\n\r\nok\n")) {
        return;
      }
    }
  });
  Proxy proxy("", kAllToUp, StaticCluster("up", up.port()));
  HttpClient client(proxy.port());
  ClientResponse r = client.Get("/x", {{"Connection", "x-secret, X-Other"},
                                       {"Connection", "x-third"},
                                       {"X-Secret", "s3cret"},
                                       {"x-other", "2"},
                                       {"X-Third", "3"},
                                       {"X-Kept", "k"},
                                       {"Keep-Alive", "300"},
                                       {"TE", "trailers"},
                                       {"Proxy-Connection", "keep-alive"},
                                       {"Trailer", "x-sum"}});
  CHECK(r.status == 200);
  CHECK(r.body == "ok\n");
  auto seen = up.requests();
  REQUIRE(seen.size() == 1);
  INFO(seen[0].head);
  CHECK(seen[0].Header("x-kept") == "k");
  for (std::string name : {"x-secret", "x-other", "x-third", "keep-alive", "te", "proxy-connection",
                           "trailer", "connection"}) {
    INFO(name);
    CHECK_FALSE(seen[0].HasHeader(name));
  }
  // The response: what the upstream's Connection named is gone, the rest arrives.
  CHECK(r.Header("x-resp-kept") == "yes");
  for (std::string name : {"x-resp-secret", "x-resp-other", "keep-alive", "proxy-connection"}) {
    INFO(name);
    CHECK(r.Header(name).empty());
  }
  // The connection itself stays usable.
  CHECK(client.Get("/again").status == 200);
}

// ---------------------------------------------------------------------------------------------
// Item 3: a request that may have reached the upstream is not sent again unless it may be.

// /victim-* requests on a connection that already served one are read and then the connection
// is closed without an answer (a server that closed a kept-alive connection just as the proxy
// reused it); everything else, and a /victim-* request on a fresh connection, gets 200.
void CloseReusedVictims(UpstreamConn& c) {
  for (int served = 0;; ++served) {
    auto r = c.ReadRequest();
    if (!r) return;
    if (served > 0 && r->RequestLine().find(" /victim") != std::string::npos) return;
    if (!c.Ok()) return;
  }
}

constexpr char kRetryRoutes[] =
    "            - name: all\n"
    "              domains: [\"*\"]\n"
    "              routes:\n"
    "              - match: { prefix: /victim-reset }\n"
    "                route:\n"
    "                  cluster: up\n"
    "                  retry_policy: { retry_on: reset, num_retries: 1 }\n"
    "              - match: { prefix: /victim-before }\n"
    "                route:\n"
    "                  cluster: up\n"
    "                  retry_policy: { retry_on: reset-before-request, num_retries: 1 }\n"
    "              - match: { prefix: / }\n"
    "                route: { cluster: up }\n";

TEST_CASE("hostile: a request is not replayed when the reused connection closes after it",
          "[e2e][hostile]") {
  const std::string io_uring = GENERATE("on", "off");
  if (!SendModeAvailable(io_uring)) return;
  ScriptedUpstream up(CloseReusedVictims);
  Proxy proxy("", kRetryRoutes, StaticCluster("up", up.port()), io_uring);
  HttpClient client(proxy.port());
  // Each case: a request that leaves a connection in the pool, then the victim on it.
  auto victim = [&](const std::string& method, const std::string& path) {
    REQUIRE(client.Get("/warm").status == 200);
    return client.Request(method, path);
  };

  // A bodiless POST with no retry policy reached the upstream: it must not arrive twice.
  ClientResponse r = victim("POST", "/victim-post");
  CHECK(r.status == 503);
  CHECK(up.Count("POST /victim-post HTTP/1.1") == 1);
  // Nor an idempotent GET: once written it may have been acted on, and no policy asks.
  r = victim("GET", "/victim-get");
  CHECK(r.status == 503);
  CHECK(up.Count("GET /victim-get HTTP/1.1") == 1);
  // A retry policy that asks for retries on reset sends it again, even a POST.
  r = victim("POST", "/victim-reset");
  CHECK(r.status == 200);
  CHECK(up.Count("POST /victim-reset HTTP/1.1") == 2);
  // reset-before-request only covers requests that never went out.
  r = victim("POST", "/victim-before");
  CHECK(r.status == 503);
  CHECK(up.Count("POST /victim-before HTTP/1.1") == 1);
  CHECK(proxy.Metric("weft_proxy_cluster_upstream_rq_retry_total", {{"cluster", "up"}}) == 1);
}

// ---------------------------------------------------------------------------------------------
// Item 8: timeouts and broken upstreams get the answer that says what happened.

TEST_CASE("hostile: a client that never finishes its head gets 408, counted as a timeout",
          "[e2e][hostile]") {
  ScriptedUpstream up(ServeOk);
  Proxy proxy("          request_headers_timeout: 0.3s\n", kAllToUp,
              StaticCluster("up", up.port()));
  int fd = Connect(proxy.port());
  REQUIRE(fd >= 0);
  auto start = std::chrono::steady_clock::now();
  REQUIRE(SendAll(fd, "GET /slow HTTP/1.1\r\nHost: a\r\nX-Half: "));
  Received r = ReceiveUntilEnd(fd);
  auto took = std::chrono::steady_clock::now() - start;
  close(fd);
  INFO(r.bytes);
  CHECK(r.bytes.rfind("HTTP/1.1 408 ", 0) == 0);
  CHECK(r.bytes.find("connection: close\r\n") != std::string::npos);
  CHECK_FALSE(r.timed_out);
  CHECK(took >= milliseconds(250));
  CHECK(took < seconds(2));
  CHECK(proxy.Metric("weft_proxy_listener_rq_timeout_total", {{"listener", "http"}}) == 1);
  CHECK(proxy.Metric("weft_proxy_listener_downstream_rq_header_timeout_total",
                     {{"listener", "http"}}) == 1);
  CHECK(proxy.Metric("weft_proxy_listener_http_parse_error_total", {{"listener", "http"}}) == 0);
  CHECK(proxy.AccessLog(1).find("\"response_code\":408") != std::string::npos);
  CHECK(up.requests().empty());
}

// Misbehaviour by path: what the upstream answers instead of a valid response.
void BrokenResponses(UpstreamConn& c) {
  while (auto r = c.ReadRequest()) {
    const std::string line = r->RequestLine();
    auto is = [&](std::string_view path) {
      return line.find(" " + std::string(path) + " ") != std::string::npos;
    };
    if (is("/garbage-line")) {
      c.Send("SSH-2.0-OpenSSH_9.2\r\n\r\n");
    } else if (is("/garbage-close")) {
      c.Send("NOT HTTP");
      return;
    } else if (is("/garbage-open")) {
      c.Send("xyz");  // no line end, and the connection stays open
    } else if (is("/chunked-bad-early")) {
      c.Send("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n");
    } else if (is("/chunked-bad-late")) {
      c.Send("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n");
      std::this_thread::sleep_for(milliseconds(300));
      c.Send("zz\r\n");
    } else {
      c.Ok();
      continue;
    }
    // Wait for the proxy to give up on this connection.
    while (c.ReadRequest()) {
    }
    return;
  }
}

TEST_CASE("hostile: an upstream that does not speak HTTP gets the client a 502, flagged UPE",
          "[e2e][hostile]") {
  ScriptedUpstream up(BrokenResponses);
  Proxy proxy("", kAllToUp, StaticCluster("up", up.port()));
  int cases = 0;
  for (std::string path : {"/garbage-line", "/garbage-close", "/garbage-open"}) {
    INFO(path);
    ++cases;
    HttpClient client(proxy.port());
    auto start = std::chrono::steady_clock::now();
    ClientResponse r = client.Get(path);
    CHECK(r.status == 502);
    // Not after the route timeout (15 s): as soon as the first bytes cannot be HTTP.
    CHECK(std::chrono::steady_clock::now() - start < seconds(2));
    // The client's connection is fine.
    CHECK(client.Get("/fine").status == 200);
  }
  CHECK(proxy.Metric("weft_proxy_cluster_upstream_cx_protocol_error_total", {{"cluster", "up"}}) ==
        cases);
  std::string log = proxy.AccessLog(2 * cases);
  INFO(log);
  CHECK(std::count(log.begin(), log.end(), '\n') == 2 * cases);
  size_t flagged = 0;
  for (size_t at = 0;
       (at = log.find("\"response_code\":502,\"response_flags\":\"UPE\"", at)) != std::string::npos;
       ++at) {
    ++flagged;
  }
  CHECK(flagged == static_cast<size_t>(cases));
}

TEST_CASE("hostile: a malformed chunked response is a 502 before its head left, a reset after",
          "[e2e][hostile]") {
  ScriptedUpstream up(BrokenResponses);
  Proxy proxy("", kAllToUp, StaticCluster("up", up.port()));
  {
    // The whole broken response arrives at once: the client has seen nothing of it yet.
    HttpClient client(proxy.port());
    ClientResponse r = client.Get("/chunked-bad-early");
    CHECK(r.status == 502);
    CHECK(client.Get("/fine").status == 200);
  }
  {
    // The head and a chunk went out before the bad chunk came: only a reset can tell the client
    // that the response is broken (a clean close would read as a complete until-close body to
    // some clients, and as an empty reply to others).
    int fd = Connect(proxy.port());
    REQUIRE(fd >= 0);
    REQUIRE(SendAll(fd, "GET /chunked-bad-late HTTP/1.1\r\nHost: a\r\n\r\n"));
    Received r = ReceiveUntilEnd(fd);
    close(fd);
    INFO(r.bytes);
    CHECK(r.bytes.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
    CHECK(r.bytes.find("5\r\nhello\r\n") != std::string::npos);
    CHECK(r.reset);
  }
  CHECK(proxy.Metric("weft_proxy_cluster_upstream_cx_protocol_error_total", {{"cluster", "up"}}) ==
        2);
  CHECK(proxy.AccessLog(3).find("\"response_code\":502,\"response_flags\":\"UPE\"") !=
        std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Item 1: what a connection costs is bounded by the configured limits (the head limit, the
// 1 MiB body watermark), whatever its peer does. Measured as weft-proxy's peak resident set.

constexpr long kMiB = 1 << 20;

// A field of /proc/PID/status in KiB (VmRSS, VmHWM), or -1.
long StatusKb(pid_t pid, const std::string& field) {
  auto status = ReadFile("/proc/" + std::to_string(pid) + "/status");
  size_t at = status ? status->find(field + ":") : std::string::npos;
  return at == std::string::npos ? -1 : std::atol(status->c_str() + at + field.size() + 1);
}

// Resets the process's peak RSS (VmHWM) to its current RSS and returns that, in bytes: what
// VmHWM says afterwards is the peak of what follows, however short it was.
long ResetPeakRss(pid_t pid) {
  std::FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/clear_refs").c_str(), "w");
  REQUIRE(f != nullptr);
  std::fputs("5", f);
  std::fclose(f);
  return StatusKb(pid, "VmRSS") * 1024;
}
long PeakRss(pid_t pid) { return StatusKb(pid, "VmHWM") * 1024; }

// Paces a slow reader at `bytes_per_second`, however the kernel splits what it reads: Wait()
// sleeps while `done` bytes are ahead of schedule.
class Pace {
 public:
  explicit Pace(long bytes_per_second) : rate_(bytes_per_second) {}
  void Wait(long done) const {
    auto due = start_ + std::chrono::microseconds(done * 1'000'000 / rate_);
    std::this_thread::sleep_until(due);
  }

 private:
  const long rate_;
  const std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

// Sanitizer builds keep shadow memory and freed blocks around: their resident set says little
// about the proxy's buffers, so the bounds scale.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr long kRssSlack = 4;
#else
constexpr long kRssSlack = 1;
#endif

const std::string kSlowRoutes = AllTo("{ cluster: up, timeout: 120s }");

// The most a slow transfer can have in flight between the fast peer and the slow one without
// the proxy holding it: the proxy's receive buffer on the fast side and its send buffer on the
// slow side, each as large as the kernel lets autotuning grow it (tcp_rmem/tcp_wmem max; 32 MiB
// of receive buffer on some machines), plus the proxy's 1 MiB watermark and a margin for the
// test peers' own 64 KiB buffers.
long KernelInFlightBound() {
  auto max_of = [](const char* path) {
    auto text = ReadFile(path);
    REQUIRE(text.has_value());
    long lo = 0, def = 0, max = 0;
    REQUIRE(std::sscanf(text->c_str(), "%ld %ld %ld", &lo, &def, &max) == 3);
    return max;
  };
  return max_of("/proc/sys/net/ipv4/tcp_rmem") + max_of("/proc/sys/net/ipv4/tcp_wmem") +
         3 * kMiB;
}

// A body long enough that a proxy reading it all at once stands out from one that keeps pace,
// whatever the kernel holds in flight.
long SlowTransferBody() { return std::max(50 * kMiB, KernelInFlightBound() + 30 * kMiB); }

TEST_CASE("hostile: endless request heads cost about the head limit, then 431 and close",
          "[e2e][hostile][rss]") {
  const std::string io_uring = GENERATE("on", "off");
  if (!SendModeAvailable(io_uring)) return;
  ScriptedUpstream up(ServeOk);
  Proxy proxy("", kAllToUp, StaticCluster("up", up.port()), io_uring);
  REQUIRE(HttpClient(proxy.port()).Get("/warm").status == 200);
  const long before = ResetPeakRss(proxy.pid());

  // Four clients stream one header line without end, as fast as loopback takes it. Each stops
  // when the proxy drops the connection, or after kCap.
  constexpr long kCap = 64 * kMiB;
  std::vector<long> sent(4, 0);
  std::vector<std::thread> clients;
  for (size_t i = 0; i < sent.size(); ++i) {
    clients.emplace_back([&, i] {
      int fd = Connect(proxy.port());
      if (fd < 0) return;
      // Large writes: the kernel fills the proxy's receive buffer faster than 64 KiB reads
      // drain it, which is what made a read-until-EAGAIN loop accumulate.
      const std::string filler(4 * kMiB, 'a');
      if (SendAll(fd, "GET / HTTP/1.1\r\nHost: a\r\nX-Endless: ")) {
        while (sent[i] < kCap) {
          ssize_t n = send(fd, filler.data(), filler.size(), MSG_NOSIGNAL);
          if (n < 0 && errno == EINTR) continue;
          if (n <= 0) break;
          sent[i] += n;
        }
      }
      close(fd);
    });
  }
  for (auto& t : clients) t.join();
  const long growth = PeakRss(proxy.pid()) - before;
  INFO("peak RSS growth " << growth / 1024 << " KiB");
  for (long n : sent) {
    INFO("a client sent " << n / 1024 << " KiB");
    CHECK(n < kCap);  // the proxy ended the connection
  }
  // 60 KiB of head limit and a read's worth per connection; far below the hundreds of MiB a
  // read loop that runs until EAGAIN accumulates.
  CHECK(growth < 8 * kMiB * kRssSlack);
  CHECK(proxy.Metric("weft_proxy_listener_http_parse_error_total", {{"listener", "http"}}) == 4);
  CHECK(HttpClient(proxy.port()).Get("/after").status == 200);
}

TEST_CASE("hostile: an upload is read no faster than a slow upstream takes it",
          "[e2e][hostile][rss]") {
  const std::string io_uring = GENERATE("on", "off");
  if (!SendModeAvailable(io_uring)) return;
  const long kBody = SlowTransferBody();
  std::atomic<long> upstream_read{0};
  // The upstream takes 16 MiB/s: a few seconds for the whole body.
  ScriptedUpstream up(
      [&](UpstreamConn& c) {
        if (!c.ReadHead()) return;
        Pace pace(16 * kMiB);
        while (upstream_read < kBody) {
          size_t n = c.TakeBody(std::min<long>(256 * 1024, kBody - upstream_read));
          if (n == 0) return;
          upstream_read += static_cast<long>(n);
          pace.Wait(upstream_read);
        }
        c.Ok();
        while (c.ReadRequest()) {
        }
      },
      64 * 1024);
  Proxy proxy("", kSlowRoutes, StaticCluster("up", up.port()), io_uring);
  const long before = ResetPeakRss(proxy.pid());

  int fd = Connect(proxy.port());
  REQUIRE(fd >= 0);
  int small = 64 * 1024;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  REQUIRE(SendAll(fd, "POST /upload HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: " +
                          std::to_string(kBody) + "\r\n\r\n"));
  const std::string chunk(64 * 1024, 'u');
  long sent = 0;
  while (sent < kBody && SendAll(fd, chunk)) sent += static_cast<long>(chunk.size());
  // What the upstream had taken when the client was done: the proxy may hold its 1 MiB
  // watermark plus what kernel socket buffers take (KernelInFlightBound), not the body.
  const long read_when_sent = upstream_read.load();
  Received r = ReceiveUntilEnd(fd, seconds(30));
  close(fd);
  const long growth = PeakRss(proxy.pid()) - before;
  CHECK(sent == kBody);
  CHECK(r.bytes.rfind("HTTP/1.1 200 ", 0) == 0);
  INFO("peak RSS growth " << growth / 1024 << " KiB; the upstream had read "
                          << read_when_sent / kMiB << " MiB when the client had sent all");
  CHECK(read_when_sent > kBody - KernelInFlightBound());
  CHECK(growth < 8 * kMiB * kRssSlack);
}

TEST_CASE("hostile: a response is read from the upstream no faster than a slow client takes it",
          "[e2e][hostile][rss]") {
  const std::string io_uring = GENERATE("on", "off");
  if (!SendModeAvailable(io_uring)) return;
  const long kBody = SlowTransferBody();
  std::atomic<long> upstream_sent{-1};  // -1 until the whole response is with the proxy
  ScriptedUpstream up(
      [&](UpstreamConn& c) {
        if (!c.ReadRequest()) return;
        std::string head =
            "HTTP/1.1 200 OK\r\ncontent-length: " + std::to_string(kBody) + "\r\n\r\n";
        if (!c.Send(head)) return;
        const std::string chunk(256 * 1024, 'd');
        for (long n = 0; n < kBody; n += static_cast<long>(chunk.size())) {
          if (!c.Send(chunk)) return;
        }
        upstream_sent = kBody;
        while (c.ReadRequest()) {
        }
      },
      64 * 1024);
  Proxy proxy("", kSlowRoutes, StaticCluster("up", up.port()), io_uring);
  const long before = ResetPeakRss(proxy.pid());

  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int small = 64 * 1024;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(proxy.port()));
  REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(SendAll(fd, "GET /download HTTP/1.1\r\nHost: a\r\n\r\n"));
  // The client takes 20 MiB/s.
  Pace pace(20 * kMiB);
  long received = 0;
  long received_when_sent = -1;
  std::vector<char> buf(256 * 1024);
  const long total = kBody + 40;  // the head is shorter than this; the loop ends on the body
  while (received < total) {
    ssize_t n = recv(fd, buf.data(), buf.size(), 0);
    if (n <= 0) break;
    received += n;
    if (received_when_sent < 0 && upstream_sent.load() == kBody) received_when_sent = received;
    if (received >= kBody) break;
    pace.Wait(received);
  }
  close(fd);
  const long growth = PeakRss(proxy.pid()) - before;
  CHECK(received >= kBody);
  INFO("peak RSS growth " << growth / 1024 << " KiB; the client had read "
                          << received_when_sent / kMiB << " MiB when the upstream had sent all");
  CHECK(received_when_sent > kBody - KernelInFlightBound());
  CHECK(growth < 8 * kMiB * kRssSlack);
}

}  // namespace
}  // namespace weft::test
