// The health check probers against real upstreams on loopback ports picked at run time: a small
// HTTP/1.1 server whose answers each test scripts, TCP servers, and a gRPC C++ server with its
// standard health service. The probers run on a real event loop on its own thread.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "data-plane/net/event_loop.h"
#include "data-plane/upstream/health/probers/probers.h"
#include "envoy/service/discovery/v3/ads.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"

namespace weft::upstream::health {
namespace {

using envoy::config::core::v3::HealthCheck;
using std::chrono::milliseconds;

// A listening socket on 127.0.0.1, port chosen by the kernel.
int Listen(uint16_t* port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(listen(fd, 64) == 0);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return fd;
}

// A port nothing listens on (bound once, then closed).
uint16_t ClosedPort() {
  uint16_t port = 0;
  close(Listen(&port));
  return port;
}

// Connects complete in the kernel before the server's accept returns: counts are polled.
template <typename F>
bool WaitFor(F done) {
  for (int i = 0; i < 300; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return done();
}

std::string Key(uint16_t port) { return "127.0.0.1:" + std::to_string(port); }

// Accepts connections on its own thread and gives each to `serve` on a thread of its own,
// until destroyed. `serve` gets the connected socket (blocking) and owns it.
class Server {
 public:
  explicit Server(std::function<void(int)> serve) : serve_(std::move(serve)) {
    fd_ = Listen(&port_);
    thread_ = std::thread([this] { Run(); });
  }
  ~Server() {
    stop_ = true;
    thread_.join();
    for (auto& t : connections_) t.join();
    close(fd_);
  }
  uint16_t port() const { return port_; }
  int accepted() const { return accepted_.load(); }

 private:
  void Run() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      ++accepted_;
      connections_.emplace_back([this, c] { serve_(c); });
    }
  }
  std::function<void(int)> serve_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::thread thread_;
  std::vector<std::thread> connections_;
};

// Reads one request head (up to CRLFCRLF); false on EOF or after 5 s of nothing.
bool ReadHead(int fd, std::string* head) {
  head->clear();
  char c;
  while (head->find("\r\n\r\n") == std::string::npos) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 5000) <= 0) return false;
    if (read(fd, &c, 1) != 1) return false;
    head->push_back(c);
  }
  return true;
}

void WriteAll(int fd, std::string_view s) {
  while (!s.empty()) {
    ssize_t n = send(fd, s.data(), s.size(), MSG_NOSIGNAL);
    if (n <= 0) return;
    s.remove_prefix(static_cast<size_t>(n));
  }
}

// An HTTP/1.1 server: for every request head `answer` says what to write back; kClose closes
// without an answer, kSilent keeps the connection and says nothing. Heads are recorded.
struct HttpServer {
  static constexpr const char* kClose = "<close>";
  static constexpr const char* kSilent = "<silent>";
  using Answer = std::function<std::string(const std::string& head, int n)>;

  explicit HttpServer(Answer a) : answer(std::move(a)), server([this](int fd) { Serve(fd); }) {}

  void Serve(int fd) {
    std::string head;
    while (ReadHead(fd, &head)) {
      int n;
      {
        std::lock_guard<std::mutex> lock(mu);
        heads.push_back(head);
        n = static_cast<int>(heads.size());
      }
      const std::string reply = answer(head, n);
      if (reply == kClose) break;
      if (reply == kSilent) {
        char c;
        while (read(fd, &c, 1) > 0) {
        }
        break;
      }
      WriteAll(fd, reply);
      if (reply.find("Connection: close") != std::string::npos) break;
    }
    close(fd);
  }
  std::string Head(size_t i) {
    std::lock_guard<std::mutex> lock(mu);
    return i < heads.size() ? heads[i] : "";
  }

  Answer answer;
  std::mutex mu;
  std::vector<std::string> heads;
  Server server;
};

std::string Status(int code, std::string_view extra = "") {
  return "HTTP/1.1 " + std::to_string(code) + " X\r\nContent-Length: 2\r\n" + std::string(extra) +
         "\r\nok";
}

// The probers' loop on its own thread; ticks every 20 ms for probe deadlines.
struct Env {
  Env() {
    auto created = net::EventLoop::Create(net::SendMode::kAuto);
    REQUIRE(created.ok());
    loop = std::move(*created);
    probes = std::make_unique<ProbeLoop>(loop.get());
    loop->SetTick(milliseconds(20), [this] { probes->Tick(); });
    thread = std::thread([this] { loop->Run(); });
  }
  ~Env() {
    loop->Stop();
    thread.join();
  }
  template <typename F>
  auto On(F fn) {
    using Result = decltype(fn());
    std::promise<Result> done;
    auto result = done.get_future();
    loop->Post([&] {
      if constexpr (std::is_void_v<Result>) {
        fn();
        done.set_value();
      } else {
        done.set_value(fn());
      }
    });
    return result.get();
  }
  std::unique_ptr<Prober> Make(const HealthCheck& hc, const std::string& cluster = "svc") {
    auto p = On([&] { return NewProber(probes.get(), cluster, hc); });
    INFO(p.status().message());
    REQUIRE(p.ok());
    return std::move(*p);
  }
  absl::Status MakeError(const HealthCheck& hc) {
    return On([&] { return NewProber(probes.get(), "svc", hc).status(); });
  }
  ProbeResult Probe(Prober& p, const std::string& host, milliseconds timeout = milliseconds(2000)) {
    auto result = std::make_shared<std::promise<ProbeResult>>();
    auto future = result->get_future();
    loop->Post([&p, host, timeout, result] {
      p.Probe(host, timeout, [result](ProbeResult r) { result->set_value(r); });
    });
    REQUIRE(future.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
    return future.get();
  }
  void Destroy(std::unique_ptr<Prober>& p) {
    On([&] { p.reset(); });
  }

  std::unique_ptr<net::EventLoop> loop;
  std::unique_ptr<ProbeLoop> probes;
  std::thread thread;
};

HealthCheck Http(std::string path = "/healthz") {
  HealthCheck hc;
  hc.mutable_http_health_check()->set_path(std::move(path));
  return hc;
}

TEST_CASE("probers: HTTP passes on an expected status and sends Envoy's request") {
  HttpServer upstream([](const std::string&, int) { return Status(200); });
  Env env;
  HealthCheck hc = Http();
  auto* add = hc.mutable_http_health_check()->add_request_headers_to_add()->mutable_header();
  add->set_key("x-probe");
  add->set_value("yes");
  auto prober = env.Make(hc, "backend");
  CHECK(env.Probe(*prober, Key(upstream.server.port())) == ProbeResult::kSuccess);
  const std::string head = upstream.Head(0);
  CHECK_THAT(head, Catch::StartsWith("GET /healthz HTTP/1.1\r\nHost: backend\r\n"));
  CHECK_THAT(head, Catch::Contains("User-Agent: Envoy/HC\r\n"));
  CHECK_THAT(head, Catch::Contains("x-probe: yes\r\n"));
  // The connection is kept for the next probe.
  CHECK(env.Probe(*prober, Key(upstream.server.port())) == ProbeResult::kSuccess);
  CHECK(WaitFor([&] { return upstream.server.accepted() == 1; }));
  env.Destroy(prober);
}

TEST_CASE("probers: HTTP statuses: expected, retriable, conclusive") {
  HttpServer upstream([](const std::string& head, int) {
    const size_t sp = head.find(' ');
    const int code = std::stoi(head.substr(sp + 2, 3));  // "GET /NNN ..."
    return Status(code);
  });
  Env env;
  const std::string host = Key(upstream.server.port());
  auto check = [&](const std::string& path, auto configure) {
    HealthCheck hc = Http(path);
    configure(*hc.mutable_http_health_check());
    auto prober = env.Make(hc);
    ProbeResult r = env.Probe(*prober, host);
    env.Destroy(prober);
    return r;
  };
  auto none = [](auto&) {};
  CHECK(check("/200", none) == ProbeResult::kSuccess);
  CHECK(check("/204", none) == ProbeResult::kConclusiveFailure);  // Envoy's default: 200 only
  CHECK(check("/503", none) == ProbeResult::kConclusiveFailure);
  auto ranges = [](auto& http) {
    auto* e = http.add_expected_statuses();
    e->set_start(200);
    e->set_end(300);
    auto* r = http.add_retriable_statuses();
    r->set_start(503);
    r->set_end(504);
  };
  CHECK(check("/204", ranges) == ProbeResult::kSuccess);
  CHECK(check("/503", ranges) == ProbeResult::kFailure);
  CHECK(check("/500", ranges) == ProbeResult::kConclusiveFailure);
}

TEST_CASE("probers: HTTP reads chunked, sized and close-delimited bodies; HEAD has none") {
  HttpServer upstream([](const std::string& head, int) -> std::string {
    if (head.rfind("HEAD ", 0) == 0) return "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
    if (head.find("/chunked") != std::string::npos) {
      return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    }
    if (head.find("/close") != std::string::npos) {
      return "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end";
    }
    return "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" +
           std::string(5000, 'x');
  });
  Env env;
  const std::string host = Key(upstream.server.port());
  auto chunked = env.Make(Http("/chunked"));
  CHECK(env.Probe(*chunked, host) == ProbeResult::kSuccess);
  CHECK(env.Probe(*chunked, host) == ProbeResult::kSuccess);
  auto sized = env.Make(Http("/sized"));
  CHECK(env.Probe(*sized, host) == ProbeResult::kSuccess);
  CHECK(env.Probe(*sized, host) == ProbeResult::kSuccess);
  CHECK(
      WaitFor([&] { return upstream.server.accepted() == 2; }));  // one kept connection per prober
  auto until_close = env.Make(Http("/close"));
  CHECK(env.Probe(*until_close, host) == ProbeResult::kSuccess);
  CHECK(env.Probe(*until_close, host) == ProbeResult::kSuccess);
  CHECK(WaitFor([&] { return upstream.server.accepted() == 4; }));  // closed after each answer
  HealthCheck head = Http();
  head.mutable_http_health_check()->set_method(envoy::config::core::v3::HEAD);
  auto headp = env.Make(head);
  CHECK(env.Probe(*headp, host) == ProbeResult::kSuccess);
  CHECK(env.Probe(*headp, host) == ProbeResult::kSuccess);
  CHECK(WaitFor([&] { return upstream.server.accepted() == 5; }));
  for (auto* p : {&chunked, &sized, &until_close, &headp}) env.Destroy(*p);
}

TEST_CASE("probers: HTTP retries once on a fresh connection when a kept one was closed") {
  // The server answers the first request and then closes the connection without a word, as a
  // server's keep-alive timeout does.
  HttpServer upstream([](const std::string&, int n) -> std::string {
    return n % 2 == 1 ? Status(200) : HttpServer::kClose;
  });
  Env env;
  auto prober = env.Make(Http());
  const std::string host = Key(upstream.server.port());
  CHECK(env.Probe(*prober, host) == ProbeResult::kSuccess);
  // Request 2 meets the close; request 3, on a fresh connection, passes.
  CHECK(env.Probe(*prober, host) == ProbeResult::kSuccess);
  CHECK(WaitFor([&] { return upstream.server.accepted() == 2; }));
  env.Destroy(prober);
}

TEST_CASE("probers: HTTP failures: refused, garbage, cut off, silent (timeout)") {
  Env env;
  auto prober = env.Make(Http());
  CHECK(env.Probe(*prober, Key(ClosedPort())) == ProbeResult::kFailure);
  HttpServer garbage(
      [](const std::string&, int) { return std::string("SSH-2.0-OpenSSH\r\n\r\n"); });
  CHECK(env.Probe(*prober, Key(garbage.server.port())) == ProbeResult::kFailure);
  HttpServer cut([](const std::string&, int) -> std::string { return HttpServer::kClose; });
  CHECK(env.Probe(*prober, Key(cut.server.port())) == ProbeResult::kFailure);
  HttpServer silent([](const std::string&, int) -> std::string { return HttpServer::kSilent; });
  const auto start = std::chrono::steady_clock::now();
  CHECK(env.Probe(*prober, Key(silent.server.port()), milliseconds(300)) == ProbeResult::kTimeout);
  const auto took = std::chrono::steady_clock::now() - start;
  CHECK(took >= milliseconds(290));
  CHECK(took < milliseconds(1500));
  CHECK(env.On([&] { return env.probes->watched(); }) == 0);
  env.Destroy(prober);
}

TEST_CASE("probers: a prober destroyed with a probe in flight never calls back") {
  HttpServer silent([](const std::string&, int) -> std::string { return HttpServer::kSilent; });
  Env env;
  auto prober = env.Make(Http());
  std::atomic<bool> called{false};
  env.On([&] {
    prober->Probe(Key(silent.server.port()), milliseconds(200),
                  [&](ProbeResult) { called = true; });
  });
  std::this_thread::sleep_for(milliseconds(50));
  env.Destroy(prober);
  std::this_thread::sleep_for(milliseconds(400));
  CHECK(!called.load());
  CHECK(env.On([&] { return env.probes->watched(); }) == 0);
}

TEST_CASE("probers: HTTP config the prober refuses, naming the field") {
  Env env;
  auto error = [&](auto configure) {
    HealthCheck hc = Http();
    configure(*hc.mutable_http_health_check());
    return std::string(env.MakeError(hc).message());
  };
  CHECK_THAT(error([](auto& h) { h.set_codec_client_type(envoy::type::v3::HTTP2); }),
             Catch::StartsWith("http_health_check.codec_client_type"));
  CHECK_THAT(error([](auto& h) { h.set_method(envoy::config::core::v3::CONNECT); }),
             Catch::StartsWith("http_health_check.method"));
  CHECK_THAT(error([](auto& h) { h.set_path("no-slash"); }),
             Catch::StartsWith("http_health_check.path"));
  CHECK_THAT(error([](auto& h) {
               auto* r = h.add_expected_statuses();
               r->set_start(300);
               r->set_end(200);
             }),
             Catch::StartsWith("http_health_check.expected_statuses[0]"));
  CHECK_THAT(
      error([](auto& h) { h.add_request_headers_to_add()->mutable_header()->set_key("Host"); }),
      Catch::StartsWith("http_health_check.request_headers_to_add[0]"));
  CHECK_THAT(error([](auto& h) { h.add_receive()->set_text("00"); }),
             Catch::StartsWith("http_health_check.receive: is not supported"));
  HealthCheck custom;
  custom.mutable_custom_health_check()->set_name("x");
  CHECK(env.MakeError(custom).message() == "custom_health_check: is not supported by weft-proxy");
}

TEST_CASE("probers: TCP connect-only, and send/receive with blocks found in order") {
  Env env;
  Server accepting([](int fd) {
    char c;
    while (read(fd, &c, 1) > 0) {
    }
    close(fd);
  });
  HealthCheck connect_only;
  connect_only.mutable_tcp_health_check();
  auto tcp = env.Make(connect_only);
  CHECK(env.Probe(*tcp, Key(accepting.port())) == ProbeResult::kSuccess);
  CHECK(env.Probe(*tcp, Key(accepting.port())) == ProbeResult::kSuccess);
  CHECK(WaitFor([&] { return accepting.accepted() == 2; }));  // a fresh connection per probe
  CHECK(env.Probe(*tcp, Key(ClosedPort())) == ProbeResult::kFailure);

  // "ping" in, "...pong, the answer is 42..." out, in two writes.
  Server echo([](int fd) {
    char buf[4];
    size_t got = 0;
    while (got < 4) {
      ssize_t n = read(fd, buf + got, 4 - got);
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
    if (got == 4 && std::string(buf, 4) == "ping") {
      WriteAll(fd, "xxpo");
      std::this_thread::sleep_for(milliseconds(30));
      WriteAll(fd, "ng, the answer is 42\n");
    }
    char c;
    while (read(fd, &c, 1) > 0) {
    }
    close(fd);
  });
  HealthCheck hc;
  hc.mutable_tcp_health_check()->mutable_send()->set_text("70696E67");  // "ping"
  hc.mutable_tcp_health_check()->add_receive()->set_text("706f6e67");   // "pong"
  hc.mutable_tcp_health_check()->add_receive()->set_binary("42");
  auto pingpong = env.Make(hc);
  CHECK(env.Probe(*pingpong, Key(echo.port())) == ProbeResult::kSuccess);

  // The blocks must come in order: "42" then "pong" never matches.
  HealthCheck reversed;
  reversed.mutable_tcp_health_check()->mutable_send()->set_text("70696E67");
  reversed.mutable_tcp_health_check()->add_receive()->set_binary("42");
  reversed.mutable_tcp_health_check()->add_receive()->set_binary("pong");
  auto wrong = env.Make(reversed);
  CHECK(env.Probe(*wrong, Key(echo.port()), milliseconds(300)) == ProbeResult::kTimeout);

  // A server that closes without the expected bytes fails the probe.
  Server closer([](int fd) { close(fd); });
  CHECK(env.Probe(*pingpong, Key(closer.port())) == ProbeResult::kFailure);

  HealthCheck bad;
  bad.mutable_tcp_health_check()->mutable_send()->set_text("7G");
  CHECK_THAT(std::string(env.MakeError(bad).message()),
             Catch::Equals("tcp_health_check.send.text: \"7G\" is not a hex byte"));
  for (auto* p : {&tcp, &pingpong, &wrong}) env.Destroy(*p);
}

// A gRPC C++ server with the standard grpc.health.v1 service (grpc's own implementation).
struct GrpcServer {
  GrpcServer() {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    // A synchronous server needs one service of its own before it serves the health service.
    builder.RegisterService(&unused);
    server = builder.BuildAndStart();
    REQUIRE(server != nullptr);
    this->port = static_cast<uint16_t>(port);
  }
  ~GrpcServer() { server->Shutdown(std::chrono::system_clock::now()); }
  envoy::service::discovery::v3::AggregatedDiscoveryService::Service unused;
  std::unique_ptr<grpc::Server> server;
  uint16_t port = 0;
};

TEST_CASE("probers: gRPC health: SERVING passes, anything else fails") {
  GrpcServer upstream;
  upstream.server->GetHealthCheckService()->SetServingStatus("weft.Echo", true);
  Env env;
  auto probe = [&](const std::string& service) {
    HealthCheck hc;
    hc.mutable_grpc_health_check()->set_service_name(service);
    auto* md = hc.mutable_grpc_health_check()->add_initial_metadata()->mutable_header();
    md->set_key("x-probe");
    md->set_value("1");
    auto prober = env.Make(hc);
    ProbeResult first = env.Probe(*prober, Key(upstream.port));
    // The second probe runs on the kept HTTP/2 connection.
    ProbeResult second = env.Probe(*prober, Key(upstream.port));
    env.Destroy(prober);
    CHECK(first == second);
    return first;
  };
  CHECK(probe("") == ProbeResult::kSuccess);  // the server as a whole
  CHECK(probe("weft.Echo") == ProbeResult::kSuccess);
  CHECK(probe("weft.Unknown") == ProbeResult::kFailure);  // NOT_FOUND
  upstream.server->GetHealthCheckService()->SetServingStatus("weft.Echo", false);
  CHECK(probe("weft.Echo") == ProbeResult::kFailure);  // NOT_SERVING
}

TEST_CASE("probers: gRPC health against what is not a gRPC server") {
  Env env;
  HealthCheck hc;
  hc.mutable_grpc_health_check();
  auto prober = env.Make(hc);
  CHECK(env.Probe(*prober, Key(ClosedPort())) == ProbeResult::kFailure);
  HttpServer http1([](const std::string&, int) { return Status(200, "Connection: close\r\n"); });
  CHECK(env.Probe(*prober, Key(http1.server.port())) == ProbeResult::kFailure);
  HttpServer silent([](const std::string&, int) -> std::string { return HttpServer::kSilent; });
  CHECK(env.Probe(*prober, Key(silent.server.port()), milliseconds(300)) != ProbeResult::kSuccess);
  env.Destroy(prober);
}

TEST_CASE("probers: gRPC after the server restarts on the same port") {
  Env env;
  HealthCheck hc;
  hc.mutable_grpc_health_check();
  auto prober = env.Make(hc);
  uint16_t port;
  {
    GrpcServer first;
    port = first.port;
    CHECK(env.Probe(*prober, Key(port)) == ProbeResult::kSuccess);
  }
  // Gone: the kept connection is dead and a new one is refused.
  CHECK(env.Probe(*prober, Key(port)) == ProbeResult::kFailure);
  env.Destroy(prober);
}

}  // namespace
}  // namespace weft::upstream::health
