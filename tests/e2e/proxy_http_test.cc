// weft-proxy moving real HTTP: weft-cp serves raw Envoy resources from a config dir, weft-proxy
// (two workers) applies them, and three weft-test-upstream servers answer with their names.
// Every case counts what the upstreams actually received, through the proxy's listener.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <functional>
#include <map>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/strings.h"
#include "data-plane/net/event_loop.h"
#include "tests/e2e/e2e_util.h"
#include "tests/support/http_client.h"
#include "tests/support/process.h"
#include "tests/support/xds_client.h"

namespace weft::test {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

int JsonInt(std::string_view json, std::string_view key) {
  return JsonIntField(json, key).value_or(-1);
}

struct Upstream {
  std::unique_ptr<Subprocess> process;
  int port = 0;
};

Upstream StartUpstream(const TempDir& dir, const std::string& name) {
  Upstream u;
  std::string ready = dir.Join(name + ".ready");
  std::string error;
  u.process =
      Subprocess::Start({BinDir() + "/weft-test-upstream", "--name", name, "--ready-file", ready},
                        {}, dir.Join(name + ".log"), &error);
  INFO(error);
  REQUIRE(u.process);
  REQUIRE(WaitFor([&] { return ReadFile(ready).has_value(); }, seconds(10)));
  u.port = JsonInt(*ReadFile(ready), "port");
  REQUIRE(u.port > 0);
  return u;
}

std::string Endpoints(const std::vector<int>& ports) {
  std::string out;
  for (int p : ports) {
    out += "    - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: " +
           std::to_string(p) + " } } }\n";
  }
  return out;
}

std::string Cluster(const std::string& name, const std::vector<int>& ports,
                    const std::string& lb = "ROUND_ROBIN") {
  return "- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\n"
         "  name: " +
         name +
         "\n"
         "  type: EDS\n"
         "  eds_cluster_config: { eds_config: { ads: {} } }\n"
         "  connect_timeout: 1s\n"
         "  lb_policy: " +
         lb +
         "\n"
         "- \"@type\": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment\n"
         "  cluster_name: " +
         name +
         "\n"
         "  endpoints:\n"
         "  - lb_endpoints:\n" +
         Endpoints(ports);
}

constexpr std::string_view kListener =
    R"(- "@type": type.googleapis.com/envoy.config.listener.v3.Listener
  name: http
  address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
  filter_chains:
  - filters:
    - name: envoy.filters.network.http_connection_manager
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
        stat_prefix: http
        rds: { route_config_name: routes, config_source: { ads: {} } }
        upgrade_configs: [{ upgrade_type: websocket }]
        http_filters:
        - name: envoy.filters.http.router
          typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
)";

// Routes: /split → 80/20 over a and b; /no-ws/ → b (as /), WebSocket upgrades off; x-pick: b →
// b; /regex/<digits> → c; /direct → a local answer; /delay/<ms> → a with a 300 ms timeout;
// /old/ → a, rewritten; /go?to=elsewhere → a redirect; everything else → round robin over all
// three.
std::string Routes(const std::string& split = "80") {
  int a = std::stoi(split);
  return R"(- "@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
  name: routes
  virtual_hosts:
  - name: all
    domains: ["*"]
    routes:
    - match: { prefix: /split }
      route:
        weighted_clusters:
          clusters: [{ name: a, weight: )" +
         std::to_string(a) + " }, { name: b, weight: " + std::to_string(100 - a) + R"( }]
    - match: { prefix: /no-ws/ }
      route:
        cluster: b
        prefix_rewrite: /
        upgrade_configs: [{ upgrade_type: websocket, enabled: false }]
    - match:
        prefix: /
        headers: [{ name: x-pick, string_match: { exact: b } }]
      route: { cluster: b }
    - match: { safe_regex: { regex: "^/regex/[0-9]+$" } }
      route: { cluster: c }
    - match: { prefix: /direct }
      direct_response: { status: 200, body: { inline_string: "direct\n" } }
    - match: { prefix: /delay/ }
      route: { cluster: a, timeout: 0.3s }
    - match: { prefix: /old/ }
      route: { cluster: a, prefix_rewrite: /new/, host_rewrite_literal: rewritten.example }
      request_headers_to_add: [{ header: { key: x-added, value: "yes" } }]
      request_headers_to_remove: [x-secret]
    - match: { prefix: /go, query_parameters: [{ name: to, string_match: { exact: elsewhere } }] }
      redirect: { host_redirect: elsewhere.example, path_redirect: /landed, response_code: FOUND }
    - match: { prefix: / }
      route: { cluster: rr }
      response_headers_to_add: [{ header: { key: x-route, value: rr } }]
)";
}

// For --io-uring on: false (with a warning) where this kernel refuses io_uring.
bool SendModeAvailable(const std::string& io_uring) {
  INFO("--io-uring " << io_uring);
  if (io_uring != "on") return true;
  auto loop = net::EventLoop::Create(net::SendMode::kUring);
  if (!loop.ok()) WARN("io_uring unavailable, path not tested: " << loop.status().message());
  return loop.ok();
}

struct Mesh {
  TempDir dir{"weft-proxy-http"};
  CpFixture cp;
  std::map<std::string, Upstream> upstreams;
  std::unique_ptr<Subprocess> proxy;
  int admin_port = 0;
  int port = 0;          // the proxy's "http" listener
  std::string listener;  // its Listener resource

  // io_uring: weft-proxy's --io-uring (auto, on, off): how its workers send.
  // xds_mode: the bootstrap's xds.mode (DELTA, SOTW), empty for the default.
  explicit Mesh(int workers = 2, std::string listener_yaml = std::string(kListener),
                std::string io_uring = "auto", std::string xds_mode = "")
      : listener(std::move(listener_yaml)) {
    for (const char* name : {"a", "b", "c"}) upstreams[name] = StartUpstream(dir, name);
    WriteConfig(Routes(), All());
    cp.Start();
    StartProxy(workers, io_uring, xds_mode);
  }
  ~Mesh() {
    if (CurrentTestFailed() && proxy) {
      std::fprintf(stderr, "---- weft-proxy log ----\n%s\n", proxy->LogTail().c_str());
    }
  }
  std::vector<int> All() { return {upstreams["a"].port, upstreams["b"].port, upstreams["c"].port}; }
  void WriteConfig(const std::string& routes, const std::vector<int>& rr) {
    cp.Write("mesh.yaml", "resources:\n" + listener + routes + Cluster("a", {upstreams["a"].port}) +
                              Cluster("b", {upstreams["b"].port}) +
                              Cluster("c", {upstreams["c"].port}) + Cluster("rr", rr));
  }
  void StartProxy(int workers, const std::string& io_uring, const std::string& xds_mode) {
    std::string bootstrap = dir.Join("bootstrap.yaml");
    REQUIRE(WriteFileAtomic(bootstrap,
                            "node: { id: sidecar-1, cluster: web }\n"
                            "xds:\n  servers: [\"127.0.0.1:" +
                                std::to_string(cp.xds_port()) +
                                "\"]\n  initial_backoff: 0.05s\n  max_backoff: 0.2s\n" +
                                (xds_mode.empty() ? "" : "  mode: " + xds_mode + "\n") +
                                "admin: { address: \"127.0.0.1:0\" }\n"
                                "concurrency: " +
                                std::to_string(workers) + "\n"));
    std::string ready = dir.Join("proxy.ready");
    std::string error;
    proxy =
        Subprocess::Start({BinDir() + "/weft-proxy", "--bootstrap", bootstrap, "--ready-file",
                           ready, "--access-log", dir.Join("access.log"), "--io-uring", io_uring},
                          {}, dir.Join("proxy.log"), &error);
    INFO(error);
    REQUIRE(proxy);
    REQUIRE(WaitFor([&] { return ReadFile(ready).has_value(); }, seconds(10)));
    admin_port = JsonInt(*ReadFile(ready), "admin_port");
    REQUIRE(admin_port > 0);
    INFO(proxy->LogTail());
    REQUIRE(WaitFor([&] { return HttpGet(admin_port, "/ready").status == 200; }, seconds(10)));
    std::string listeners = HttpGet(admin_port, "/listeners").body;
    INFO(listeners);
    port = JsonInt(listeners, "port");
    REQUIRE(port > 0);
  }
  // Waits until the proxy routes /probe-<i> requests as `done` says (a config push landed).
  void WaitRouted(const std::function<bool(HttpClient&)>& done) {
    HttpClient client(port);
    INFO(proxy->LogTail());
    REQUIRE(WaitFor([&] { return done(client); }, seconds(5), milliseconds(20)));
  }
  std::string Metric(std::string_view name, const std::map<std::string, std::string>& labels) {
    auto v = MetricValue(HttpGet(admin_port, "/stats/prometheus").body, name, labels);
    return v ? std::to_string(static_cast<long long>(*v)) : "absent";
  }
};

std::map<std::string, int> Spread(HttpClient& client, int n, const std::string& path,
                                  int* failures) {
  std::map<std::string, int> seen;
  for (int i = 0; i < n; ++i) {
    ClientResponse r = client.Get(path);
    if (r.status != 200) {
      ++*failures;
      continue;
    }
    ++seen[r.Header("x-upstream")];
  }
  return seen;
}

TEST_CASE("proxy_http: round robin spreads 300 requests 100/100/100", "[e2e][proxy]") {
  Mesh mesh;
  HttpClient client(mesh.port);
  int failures = 0;
  auto seen = Spread(client, 300, "/anything", &failures);
  CHECK(failures == 0);
  CHECK(seen["a"] == 100);
  CHECK(seen["b"] == 100);
  CHECK(seen["c"] == 100);
  // The route's response header and the generated request id made it through.
  ClientResponse r = client.Get("/x");
  CHECK(r.Header("x-route") == "rr");
  CHECK(r.Header("x-echo-x-request-id").size() == 36);
  // The same request id is kept when the client sends one.
  r = client.Get("/x", {{"x-request-id", "abc-123"}});
  CHECK(r.Header("x-echo-x-request-id") == "abc-123");
  // Stats per listener, cluster and host agree with what the upstreams saw.
  CHECK(mesh.Metric("weft_proxy_cluster_rq_2xx_total", {{"cluster", "rr"}}) == "302");
  CHECK(mesh.Metric("weft_proxy_host_rq_total_total",
                    {{"cluster", "rr"},
                     {"host", "127.0.0.1:" + std::to_string(mesh.upstreams["a"].port)}}) != "0");
  CHECK(mesh.Metric("weft_proxy_listener_rq_2xx_total", {{"listener", "http"}}) == "302");
  std::string clusters = HttpGet(mesh.admin_port, "/clusters").body;
  CHECK(clusters.find("rr::127.0.0.1:" + std::to_string(mesh.upstreams["c"].port) +
                      "::rq_total::") != std::string::npos);
  // The access log has one JSON line per request.
  REQUIRE(WaitFor(
      [&] {
        auto log = ReadFile(mesh.dir.Join("access.log"));
        return log && std::count(log->begin(), log->end(), '\n') >= 302;
      },
      seconds(3)));
  auto log = *ReadFile(mesh.dir.Join("access.log"));
  CHECK(log.find("\"x_request_id\":\"abc-123\"") != std::string::npos);
  CHECK(log.find("\"upstream_cluster\":\"rr\"") != std::string::npos);
}

TEST_CASE("proxy_http: an 80/20 split holds within 3% over 2000 requests", "[e2e][proxy]") {
  Mesh mesh;
  HttpClient client(mesh.port);
  int failures = 0;
  auto seen = Spread(client, 2000, "/split", &failures);
  CHECK(failures == 0);
  INFO("a=" << seen["a"] << " b=" << seen["b"]);
  CHECK(std::abs(seen["a"] - 1600) <= 60);
  CHECK(std::abs(seen["b"] - 400) <= 60);
  CHECK(seen["c"] == 0);
}

TEST_CASE("proxy_http: header and regex matches pick their clusters", "[e2e][proxy]") {
  Mesh mesh;
  HttpClient client(mesh.port);
  for (int i = 0; i < 10; ++i) {
    CHECK(client.Get("/any", {{"x-pick", "b"}}).Header("x-upstream") == "b");
    CHECK(client.Get("/regex/" + std::to_string(i * 17)).Header("x-upstream") == "c");
  }
  // Near misses fall through to round robin: all three upstreams answer.
  std::set<std::string> names;
  for (int i = 0; i < 6; ++i) {
    names.insert(client.Get("/regex/12x", {{"x-pick", "B"}}).Header("x-upstream"));
  }
  CHECK(names.size() == 3);
  ClientResponse direct = client.Get("/direct");
  CHECK(direct.status == 200);
  CHECK(direct.body == "direct\n");
  // Prefix and host rewrite, request headers added and removed on the way.
  ClientResponse rewritten = client.Get("/old/thing?q=1", {{"x-secret", "s3"}, {"x-kept", "k"}});
  CHECK(rewritten.Header("x-upstream") == "a");
  CHECK(rewritten.Header("x-seen-path") == "/new/thing?q=1");
  CHECK(rewritten.Header("x-seen-host") == "rewritten.example");
  CHECK(rewritten.Header("x-echo-x-added") == "yes");
  CHECK(rewritten.Header("x-echo-x-kept") == "k");
  CHECK(rewritten.Header("x-echo-x-secret").empty());
  // A query-parameter match answered with a redirect by the proxy itself.
  ClientResponse redirect = client.Get("/go?to=elsewhere");
  CHECK(redirect.status == 302);
  // As Envoy: the query string survives a path_redirect that has none of its own.
  CHECK(redirect.Header("location") == "http://elsewhere.example/landed?to=elsewhere");
  CHECK(client.Get("/go?to=nowhere").Header("x-route") == "rr");
}

TEST_CASE("proxy_http: removing an endpoint takes effect within a second, no request fails",
          "[e2e][proxy]") {
  Mesh mesh;
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::atomic<int> after_c{0};
  std::atomic<bool> removed{false};
  std::atomic<int64_t> removed_at_ms{0};
  std::atomic<int64_t> last_c_ms{0};
  auto now_ms = [] {
    return std::chrono::duration_cast<milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  };
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&] {
      HttpClient client(mesh.port);
      while (!stop) {
        ClientResponse r = client.Get("/load");
        if (r.status != 200) {
          ++failures;
          continue;
        }
        if (r.Header("x-upstream") == "c") {
          last_c_ms = now_ms();
          if (removed) ++after_c;
        }
      }
    });
  }
  std::this_thread::sleep_for(milliseconds(300));
  removed_at_ms = now_ms();
  removed = true;
  mesh.WriteConfig(Routes(), {mesh.upstreams["a"].port, mesh.upstreams["b"].port});
  std::this_thread::sleep_for(milliseconds(1500));
  stop = true;
  for (auto& t : clients) t.join();
  CHECK(failures == 0);
  INFO("c answered " << after_c << " requests after the change, the last "
                     << (last_c_ms - removed_at_ms) << " ms after it");
  CHECK(last_c_ms - removed_at_ms < 1000);
}

TEST_CASE("proxy_http: malformed requests get 400 or 431 and the worker keeps serving",
          "[e2e][proxy]") {
  Mesh mesh(1);  // one worker: the same one must survive every bad request
  struct Case {
    const char* what;
    std::string bytes;
    int status;
  };
  std::vector<Case> cases = {
      {"CL and TE together",
       "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
       "0\r\n\r\n",
       400},
      {"two different Content-Lengths",
       "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcd", 400},
      {"space before colon", "GET /x HTTP/1.1\r\nHost : a\r\n\r\n", 400},
      {"obs-fold", "GET /x HTTP/1.1\r\nHost: a\r\nX-A: b\r\n  c\r\n\r\n", 400},
      {"no Host", "GET /x HTTP/1.1\r\n\r\n", 400},
      {"garbage", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400},
      {"huge header",
       "GET /x HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(70000, 'b') + "\r\n\r\n", 431},
      {"bad chunk size",
       "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
       400},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    HttpClient bad(mesh.port);
    ClientResponse r = bad.Raw(c.bytes);
    CHECK(r.status == c.status);
    CHECK(bad.PeerClosed(seconds(2)));
    HttpClient good(mesh.port);
    CHECK(good.Get("/after").status == 200);
  }
  CHECK(mesh.Metric("weft_proxy_listener_http_parse_error_total", {{"listener", "http"}}) == "8");
}

TEST_CASE("proxy_http: keep-alive, pipelining, chunked and streamed bodies, 100-continue",
          "[e2e][proxy]") {
  // Both send paths: every send through io_uring (where this kernel allows it), and send(2).
  const std::string io_uring = GENERATE("on", "off");
  if (!SendModeAvailable(io_uring)) return;
  Mesh mesh(1, std::string(kListener), io_uring);
  // The operator can tell which path the workers took.
  CHECK((mesh.proxy->Log().find("workers batch their sends through io_uring") !=
         std::string::npos) == (io_uring == "on"));
  HttpClient client(mesh.port);
  // Two pipelined requests in one write come back in order.
  REQUIRE(client.Send("GET /one HTTP/1.1\r\nHost: t\r\n\r\nGET /two HTTP/1.1\r\nHost: t\r\n\r\n"));
  ClientResponse one = client.Read();
  ClientResponse two = client.Read();
  CHECK(one.Header("x-seen-path") == "/one");
  CHECK(two.Header("x-seen-path") == "/two");
  // A chunked request body streams through and is echoed.
  ClientResponse echo = client.Request("POST", "/echo", {{"Transfer-Encoding", "chunked"}},
                                       "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
  CHECK(echo.status == 200);
  CHECK(echo.body == "hello world");
  // A large body (8 MB) both ways without the proxy holding it whole.
  std::string big(8 << 20, 'x');
  for (size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>('a' + (i / 4096) % 26);
  ClientResponse large = client.Request("POST", "/echo", {}, big);
  CHECK(large.status == 200);
  CHECK(large.body.size() == big.size());
  CHECK(large.body == big);
  // Chunked responses come back chunked and whole.
  ClientResponse chunked = client.Get("/chunked");
  CHECK(chunked.status == 200);
  CHECK(chunked.Header("transfer-encoding") == "chunked");
  CHECK_FALSE(chunked.body.empty());
  // Expect: 100-continue gets its interim response before the body is sent.
  REQUIRE(
      client.Send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
                  "Expect: 100-continue\r\n\r\n"));
  std::this_thread::sleep_for(milliseconds(100));
  REQUIRE(client.Send("abc"));
  ClientResponse cont = client.Read("POST");
  CHECK(cont.status == 200);
  CHECK(cont.body == "abc");
  // The upstream's status codes pass through; HTTP/1.0 without keep-alive closes.
  CHECK(client.Get("/status/418").status == 418);
  HttpClient old(mesh.port);
  ClientResponse r10 = old.Raw("GET /x HTTP/1.0\r\nHost: t\r\n\r\n");
  CHECK(r10.status == 200);
  CHECK(old.PeerClosed(seconds(2)));
}

TEST_CASE("proxy_http: the route timeout answers 504 and the connection stays usable",
          "[e2e][proxy]") {
  Mesh mesh(1);
  HttpClient client(mesh.port);
  CHECK(client.Get("/delay/50").status == 200);
  auto start = std::chrono::steady_clock::now();
  ClientResponse slow = client.Get("/delay/3000");
  auto took = std::chrono::steady_clock::now() - start;
  CHECK(slow.status == 504);
  CHECK(took >= milliseconds(250));
  CHECK(took < milliseconds(1500));
  CHECK(mesh.Metric("weft_proxy_cluster_rq_timeout_total", {{"cluster", "a"}}) == "1");
  // The proxy closed the timed-out exchange; a new request on a new connection is fine.
  HttpClient again(mesh.port);
  CHECK(again.Get("/any", {{"x-pick", "b"}}).status == 200);
}

// A raw client connection, for what HttpClient does not speak (an upgraded connection).
struct RawConn {
  explicit RawConn(int port) {
    fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  ~RawConn() { close(fd); }
  void Send(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      REQUIRE(n > 0);
      data.remove_prefix(static_cast<size_t>(n));
    }
  }
  // Reads until `got` holds `want` bytes in all (or EOF, or 5 s without data).
  void ReadAtLeast(size_t want) {
    char buf[64 * 1024];
    while (got.size() < want) {
      ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) return;
      got.append(buf, static_cast<size_t>(n));
    }
  }
  std::string ReadToEof() {
    char buf[64 * 1024];
    while (true) {
      ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
    return got;
  }
  // The response head at the front of `got`, removed from it.
  std::string TakeHead() {
    while (got.find("\r\n\r\n") == std::string::npos) {
      size_t before = got.size();
      ReadAtLeast(before + 1);
      if (got.size() == before) return "";
    }
    size_t end = got.find("\r\n\r\n") + 4;
    std::string head = got.substr(0, end);
    got.erase(0, end);
    return head;
  }
  int fd = -1;
  std::string got;
};

// Sends an upgrade handshake for `type` on `path` (`extra`: more header lines, then bytes after
// the head) and returns the response head.
std::string Handshake(RawConn& c, std::string_view path, std::string_view type,
                      std::string_view extra = "\r\n") {
  c.Send(absl::StrCat("GET ", Sv(path), " HTTP/1.1\r\nHost: ws\r\nConnection: Upgrade\r\nUpgrade: ",
                      Sv(type), "\r\n", Sv(extra)));
  return c.TakeHead();
}

TEST_CASE("proxy_http: a WebSocket upgrade becomes a tunnel both ways, other upgrades do not",
          "[e2e][proxy]") {
  const std::string io_uring = GENERATE("on", "off");
  if (!SendModeAvailable(io_uring)) return;
  Mesh mesh(1, std::string(kListener), io_uring);
  {
    RawConn c(mesh.port);
    // Bytes right behind the handshake belong to the tunnel.
    std::string head = Handshake(c, "/upgrade", "websocket", "x-pick: b\r\n\r\nhello ");
    INFO(head);
    CHECK(head.rfind("HTTP/1.1 101 ", 0) == 0);
    CHECK(head.find("upgrade: websocket\r\n") != std::string::npos);
    CHECK(head.find("connection: upgrade\r\n") != std::string::npos);
    CHECK(head.find("x-upstream: b\r\n") != std::string::npos);
    c.ReadAtLeast(6);
    CHECK(c.got == "hello ");
    c.got.clear();
    // More than the proxy's 1 MiB buffers, so both directions have to pause and resume.
    std::string big(3 << 20, 'x');
    for (size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>('a' + (i / 4096) % 26);
    std::thread sender([&] { c.Send(big); });
    c.ReadAtLeast(big.size());
    sender.join();
    CHECK(c.got.size() == big.size());
    CHECK(c.got == big);
    c.got.clear();
    // The client's half-close reaches the upstream, which says goodbye and closes.
    shutdown(c.fd, SHUT_WR);
    CHECK(c.ReadToEof() == "bye b\n");
  }
  {
    // Not in upgrade_configs: the Upgrade header is dropped, so the upstream sees a plain GET.
    RawConn c(mesh.port);
    std::string head = Handshake(c, "/upgrade", "h2c", "x-pick: b\r\n\r\n");
    INFO(head);
    CHECK(head.rfind("HTTP/1.1 426 ", 0) == 0);
  }
  {
    // A route can switch off what the connection manager allows.
    RawConn c(mesh.port);
    std::string head = Handshake(c, "/no-ws/upgrade", "websocket");
    INFO(head);
    CHECK(head.rfind("HTTP/1.1 426 ", 0) == 0);
  }
  {
    // A tunnel nobody uses ends after the connection idle timeout (here 0.5 s).
    std::string listener(kListener);
    listener += "        common_http_protocol_options: { idle_timeout: 0.5s }\n";
    Mesh idle(1, listener);
    RawConn c(idle.port);
    REQUIRE(Handshake(c, "/upgrade", "websocket", "x-pick: a\r\n\r\n").rfind("HTTP/1.1 101 ", 0) ==
            0);
    auto start = std::chrono::steady_clock::now();
    c.Send("ping");
    c.ReadAtLeast(4);
    CHECK(c.got == "ping");
    CHECK(c.ReadToEof() == "ping");  // closed by the proxy, nothing more
    auto took = std::chrono::steady_clock::now() - start;
    CHECK(took >= milliseconds(400));
    CHECK(took < seconds(3));
    CHECK(idle.Metric("weft_proxy_listener_downstream_cx_idle_timeout_total",
                      {{"listener", "http"}}) == "1");
  }
  // Both exchanges are over and accounted for.
  CHECK(WaitFor(
      [&] {
        return mesh.Metric("weft_proxy_listener_rq_active", {{"listener", "http"}}) == "0";
      },
      seconds(3)));
  CHECK(mesh.Metric("weft_proxy_cluster_rq_1xx_total", {{"cluster", "b"}}) == "1");  // the 101
  CHECK(mesh.Metric("weft_proxy_cluster_rq_4xx_total", {{"cluster", "b"}}) == "2");  // the 426s
}

TEST_CASE("proxy_http: a removed listener drains: in-flight requests finish, new ones are refused",
          "[e2e][proxy]") {
  Mesh mesh(1);
  HttpClient client(mesh.port);
  REQUIRE(client.Get("/x").status == 200);
  // A request in flight (the upstream answers after 200 ms) while the listener goes away.
  REQUIRE(client.Send("GET /delay/200 HTTP/1.1\r\nHost: t\r\n\r\n"));
  std::this_thread::sleep_for(milliseconds(20));
  mesh.cp.Write("mesh.yaml", "resources:\n" + Routes() + Cluster("a", {mesh.upstreams["a"].port}) +
                                 Cluster("b", {mesh.upstreams["b"].port}) +
                                 Cluster("c", {mesh.upstreams["c"].port}) +
                                 Cluster("rr", mesh.All()));
  ClientResponse inflight = client.Read();
  CHECK(inflight.status == 200);
  CHECK(inflight.Header("connection") == "close");  // drained: no further requests on it
  CHECK(client.PeerClosed(seconds(2)));
  REQUIRE(WaitFor(
      [&] {
        return HttpGet(mesh.admin_port, "/listeners").body.find("\"http\"") == std::string::npos;
      },
      seconds(5)));
  HttpClient fresh(mesh.port);
  CHECK(fresh.Get("/x").status == 0);  // nothing listens there any more
}

// A loopback port held without SO_REUSEPORT, so the proxy cannot bind it, until Release().
struct PortBlocker {
  int fd = -1;
  int port = 0;
  PortBlocker() {
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(listen(fd, 1) == 0);
    socklen_t len = sizeof addr;
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
  }
  ~PortBlocker() { Release(); }
  void Release() {
    if (fd >= 0) close(fd);
    fd = -1;
  }
};

// kListener renamed, on another port, with `hcm_line` (e.g. "generate_request_id: false")
// added to its connection manager and its routes from RDS `route`.
std::string ListenerVariant(const std::string& name, int port, const std::string& hcm_line = "",
                            const std::string& route = "routes") {
  std::string l(kListener);
  l.replace(l.find("name: http"), 10, "name: " + name);
  l.replace(l.find("port_value: 0"), 13, "port_value: " + std::to_string(port));
  l.replace(l.find("route_config_name: routes"), 25, "route_config_name: " + route);
  if (!hcm_line.empty()) {
    size_t at = l.find("stat_prefix: http\n") + 18;
    l.insert(at, "        " + hcm_line + "\n");
  }
  return l;
}

// The bound port of listener `name` in /listeners, or -1 when it is not listed.
int ListenerPort(int admin_port, const std::string& name) {
  std::string json = HttpGet(admin_port, "/listeners").body;
  size_t at = json.find("{\"name\":\"" + name + "\"");
  return at == std::string::npos ? -1 : JsonInt(json.substr(at), "port");
}

TEST_CASE("proxy_http: a NACKed update leaves the last good config serving", "[e2e][proxy]") {
  Mesh mesh;
  PortBlocker blocker;
  int taken = blocker.port;

  std::string bad_listener = ListenerVariant("second", taken);
  mesh.cp.Write("second.yaml", "resources:\n" + bad_listener);
  // weft-cp shows the NACK with the field path and the reason.
  REQUIRE(WaitFor(
      [&] {
        std::string proxies = mesh.cp.Get("/debug/proxies");
        return proxies.find("listener \\\"second\\\": address: bind 127.0.0.1:" +
                            std::to_string(taken)) != std::string::npos;
      },
      seconds(5)));
  // The old listener still serves, with its old routes.
  HttpClient client(mesh.port);
  CHECK(client.Get("/x", {{"x-pick", "b"}}).Header("x-upstream") == "b");
  // Once the port is free, a changed version of the listener is accepted and serves.
  blocker.Release();
  bad_listener.replace(bad_listener.find("stat_prefix: http"), 17, "stat_prefix: two");
  mesh.cp.Write("second.yaml", "resources:\n" + bad_listener);
  REQUIRE(WaitFor([&] { return ListenerPort(mesh.admin_port, "second") == taken; }, seconds(5)));
  HttpClient second(taken);
  CHECK(second.Get("/x", {{"x-pick", "b"}}).Header("x-upstream") == "b");
}

// The last listener NACK weft-cp shows for the (only) proxy, still JSON-escaped, or "". Plain
// string search: protobuf's JSON parser (maps) is not safe in this TSan-run test.
std::string ListenerNack(Mesh& mesh) {
  std::string json = mesh.cp.Get("/debug/proxies");
  size_t at = json.find("\"listener\":{\"subscribed\"");
  if (at == std::string::npos) return "";
  const std::string open = "\"nack\":{\"error\":\"";
  at = json.find(open, at);
  if (at == std::string::npos) return "";
  at += open.size();
  size_t end = json.find("\",\"nonce\":", at);
  return end == std::string::npos ? "" : json.substr(at, end - at);
}

void OneBadListener(const std::string& mode) {
  INFO("xds mode " << mode);
  Mesh mesh(2, std::string(kListener), "auto", mode);
  PortBlocker blocker;
  const std::string taken = std::to_string(blocker.port);
  auto write = [&](const std::string& listeners) {
    mesh.listener = listeners;
    mesh.WriteConfig(Routes(), mesh.All());  // one file, so one LDS update carries them all
  };
  // "third" has routes of its own: the same table under another name.
  std::string third_routes = Routes();
  third_routes.replace(third_routes.find("name: routes"), 12, "name: third-routes");
  // One LDS update: "http" changes (it stops generating request ids), "third" is new on a free
  // port, "second" is new on a port the test holds.
  write(ListenerVariant("http", 0, "generate_request_id: false") +
        ListenerVariant("third", 0, "", "third-routes") + ListenerVariant("second", blocker.port) +
        third_routes);
  INFO(mesh.proxy->LogTail());
  // The NACK names the listener that failed, and why.
  REQUIRE(WaitFor(
      [&] {
        return ListenerNack(mesh).find("listener \\\"second\\\": address: bind 127.0.0.1:" + taken +
                                       ": Address already in use") != std::string::npos;
      },
      seconds(5)));
  std::string nack = ListenerNack(mesh);
  INFO(nack);
  CHECK(nack.find("third") == std::string::npos);
  // The others are served: the new one answers, the changed one serves its new version.
  int third = ListenerPort(mesh.admin_port, "third");
  REQUIRE(third > 0);
  HttpClient via_third(third);
  // Its routes follow over RDS.
  CHECK(WaitFor(
      [&] {
        return via_third.Get("/x", {{"x-pick", "b"}}).Header("x-upstream") == "b";
      },
      seconds(2)));
  HttpClient via_http(mesh.port);
  CHECK(WaitFor([&] { return via_http.Get("/x").Header("x-echo-x-request-id").empty(); },
                seconds(2)));
  CHECK(ListenerPort(mesh.admin_port, "second") == -1);
  CHECK(HttpGet(mesh.admin_port, "/listeners").body.find("\"unserved\":{\"second\":") !=
        std::string::npos);
  std::string dump = HttpGet(mesh.admin_port, "/config_dump").body;
  CHECK(dump.find("\"name\":\"third\"") != std::string::npos);
  CHECK(dump.find("\"name\":\"second\"") == std::string::npos);

  // A served listener whose new version cannot bind keeps serving the version it had, with the
  // routes that version needs (the new one names others).
  write(ListenerVariant("http", 0, "generate_request_id: false") +
        ListenerVariant("third", blocker.port, "", "elsewhere") +
        ListenerVariant("second", blocker.port) + third_routes);
  REQUIRE(WaitFor(
      [&] {
        return ListenerNack(mesh).find("listener \\\"third\\\": address: bind 127.0.0.1:" + taken +
                                       ": Address already in use (its previous version keeps "
                                       "serving)") != std::string::npos;
      },
      seconds(5)));
  CHECK(ListenerPort(mesh.admin_port, "third") == third);
  CHECK(via_third.Get("/x", {{"x-pick", "b"}}).Header("x-upstream") == "b");
  std::string listeners = HttpGet(mesh.admin_port, "/listeners").body;
  CHECK(listeners.find("(its previous version keeps serving)") != std::string::npos);

  // Once the port is free, the next update binds it and the proxy is back in step.
  blocker.Release();
  write(ListenerVariant("http", 0, "generate_request_id: false") +
        ListenerVariant("third", 0, "", "third-routes") +
        ListenerVariant("second", blocker.port, "generate_request_id: true") + third_routes);
  REQUIRE(
      WaitFor([&] { return ListenerPort(mesh.admin_port, "second") == blocker.port; }, seconds(5)));
  HttpClient via_second(blocker.port);
  CHECK(via_second.Get("/x", {{"x-pick", "b"}}).Header("x-upstream") == "b");
  CHECK(ListenerPort(mesh.admin_port, "third") == third);
  std::string after = HttpGet(mesh.admin_port, "/listeners").body;
  INFO(after);
  CHECK(after.find("previous version") == std::string::npos);
  CHECK(after.find("\"unserved\":{}") != std::string::npos);
}

TEST_CASE("proxy_http: one listener that cannot bind does not hold back the others (Delta)",
          "[e2e][proxy]") {
  OneBadListener("DELTA");
}

TEST_CASE("proxy_http: one listener that cannot bind does not hold back the others (SotW)",
          "[e2e][proxy]") {
  OneBadListener("SOTW");
}

}  // namespace
}  // namespace weft::test

namespace weft::test {
namespace {

// The first `name` on $PATH (Subprocess execs a path, not a name).
std::string FindOnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string candidate = dirs.substr(start, end - start) + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return "";
}

TEST_CASE("proxy_http: config updates under steady load fail no request", "[e2e][proxy][load]") {
  Mesh mesh;
  const char* env = std::getenv("WEFT_LOAD_SECONDS");
  const int secs = env != nullptr ? std::max(2, std::atoi(env)) : 30;
  std::string wrk_log = mesh.dir.Join("wrk.log");
  std::string error;
  const std::string wrk_path = FindOnPath("wrk");
  INFO("wrk comes with tools/deps.sh");
  REQUIRE_FALSE(wrk_path.empty());
  auto wrk = Subprocess::Start({wrk_path, "-t2", "-c32", "-d" + std::to_string(secs) + "s",
                                "http://127.0.0.1:" + std::to_string(mesh.port) + "/load"},
                               {}, wrk_log, &error);
  INFO(error);
  REQUIRE(wrk);
  // Every ~300 ms another kind of change: endpoints, weights, a cluster added and removed, the
  // listener's own settings (same address: its sockets must stay).
  const int a = mesh.upstreams["a"].port, b = mesh.upstreams["b"].port,
            c = mesh.upstreams["c"].port;
  const std::vector<std::vector<int>> endpoint_sets = {{a, b}, {a, c}, {b, c}, {a, b, c}};
  int step = 0;
  auto deadline = std::chrono::steady_clock::now() + seconds(secs) - milliseconds(500);
  while (std::chrono::steady_clock::now() < deadline) {
    switch (step % 4) {
      case 0:
        mesh.WriteConfig(Routes(step % 8 == 0 ? "50" : "80"), endpoint_sets[step % 3]);
        break;
      case 1:
        mesh.cp.Write("extra.yaml", "resources:\n" + Cluster("d" + std::to_string(step), {a}));
        break;
      case 2:
        mesh.cp.Remove("extra.yaml");
        break;
      case 3: {
        std::string listener(kListener);
        listener.replace(listener.find("stat_prefix: http"), 17,
                         "stat_prefix: http" + std::to_string(step));
        mesh.cp.Write("mesh.yaml", "resources:\n" + listener + Routes() + Cluster("a", {a}) +
                                       Cluster("b", {b}) + Cluster("c", {c}) +
                                       Cluster("rr", endpoint_sets[3]));
        break;
      }
    }
    ++step;
    std::this_thread::sleep_for(milliseconds(300));
  }
  auto status = wrk->Wait(seconds(secs + 30));
  REQUIRE(status.has_value());
  std::string out = wrk->Log();
  INFO(out);
  CHECK(WIFEXITED(*status));
  CHECK(out.find("requests in") != std::string::npos);
  CHECK(out.find("Non-2xx") == std::string::npos);
  CHECK(out.find("Socket errors") == std::string::npos);
  CHECK(step > secs);
  // The proxy agrees: no 5xx, and its generation moved with every change.
  CHECK(mesh.Metric("weft_proxy_cluster_rq_5xx_total", {{"cluster", "rr"}}) == "0");
  CHECK(mesh.Metric("weft_proxy_listener_rq_5xx_total", {{"listener", "http"}}) == "0");
  std::string xds = HttpGet(mesh.admin_port, "/xds").body;
  CHECK(xds.find("\"rejected\":0") != std::string::npos);
}

}  // namespace
}  // namespace weft::test
