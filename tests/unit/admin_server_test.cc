#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <string>

#include "common/http/admin_server.h"
#include "common/log.h"

namespace weft::http {
namespace {

using namespace std::chrono_literals;

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

struct ClientResponse {
  int status = 0;                              // 0: no response (EOF, reset or timeout)
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string Header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

// A blocking test client with a receive timeout, so a server bug fails the test instead of
// hanging it.
class Client {
 public:
  explicit Client(uint16_t port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{5, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~Client() { close(fd_); }
  bool connected() const { return connected_; }

  bool Send(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  ClientResponse Read(bool head_request = false) {
    ClientResponse r;
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return r;
    }
    std::string head = buf_.substr(0, end);
    buf_.erase(0, end + 4);
    size_t line_end = head.find("\r\n");
    std::string status_line = head.substr(0, line_end);
    if (status_line.rfind("HTTP/1.1 ", 0) != 0) return r;
    int status = std::stoi(status_line.substr(9, 3));
    while (line_end != std::string::npos) {
      size_t next = head.find("\r\n", line_end + 2);
      std::string line = head.substr(line_end + 2, next - line_end - 2);
      size_t colon = line.find(':');
      r.headers[Lower(line.substr(0, colon))] = line.substr(colon + 2);
      line_end = next;
    }
    size_t length =
        head_request
            ? 0
            : std::stoul(r.Header("content-length").empty() ? "0" : r.Header("content-length"));
    while (buf_.size() < length) {
      if (!Fill()) return r;
    }
    r.body = buf_.substr(0, length);
    buf_.erase(0, length);
    r.status = status;
    return r;
  }

  // True once the server has closed the connection (EOF or reset) with nothing left unread.
  bool Closed() {
    if (!buf_.empty()) return false;
    char c;
    ssize_t n = recv(fd_, &c, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
  }

 private:
  bool Fill() {
    char tmp[4096];
    ssize_t n = recv(fd_, tmp, sizeof(tmp), 0);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string buf_;
};

ClientResponse Get(uint16_t port, const std::string& target) {
  Client client(port);
  client.Send("GET " + target + " HTTP/1.1\r\nHost: x\r\n\r\n");
  return client.Read();
}

Response Echo(const Request& req) {
  Response r;
  r.content_type = "application/octet-stream";
  r.body = req.method + " " + req.path + " [" + req.query_string + "] ";
  for (const auto& [k, v] : req.query) r.body += k + "=" + v + ";";
  r.body += " ua=" + std::string(req.Header("user-agent"));
  r.body += " body=" + req.body;
  return r;
}

// /hello, /echo and /bye are read-only; /post (an echo too) is mutating.
std::vector<Route> TestRoutes() {
  std::vector<Route> routes;
  routes.push_back({Route::kReadOnly, "/hello", [](const Request&) {
                      Response r;
                      r.body = "hi\n";
                      r.headers.emplace_back("X-Test", "yes\r\nInjected: no");
                      return r;
                    }});
  routes.push_back({Route::kReadOnly, "/echo", Echo});
  routes.push_back({Route::kMutating, "/post", Echo});
  routes.push_back({Route::kReadOnly, "/bye", [](const Request&) {
                      Response r;
                      r.status = 202;
                      r.body = "closing";
                      r.headers.emplace_back("Connection", "close");
                      return r;
                    }});
  return routes;
}

std::unique_ptr<AdminServer> StartServer(AdminServerOptions options = {}) {
  auto server = AdminServer::Start("127.0.0.1:0", TestRoutes(), options);
  REQUIRE(server.ok());
  REQUIRE((*server)->port() != 0);
  return std::move(server).value();
}

TEST_CASE("ParseHostPort") {
  auto v4 = ParseHostPort("127.0.0.1:9901");
  REQUIRE(v4.ok());
  CHECK(v4->first == "127.0.0.1");
  CHECK(v4->second == 9901);
  auto v6 = ParseHostPort("[::1]:0");
  REQUIRE(v6.ok());
  CHECK(v6->first == "::1");
  CHECK(v6->second == 0);
  CHECK(ParseHostPort("localhost:65535").ok());
  CHECK_FALSE(ParseHostPort("127.0.0.1").ok());
  CHECK_FALSE(ParseHostPort(":80").ok());
  CHECK_FALSE(ParseHostPort("::1:80").ok());
  CHECK_FALSE(ParseHostPort("[::1]80").ok());
  CHECK_FALSE(ParseHostPort("[::1:80").ok());
  CHECK_FALSE(ParseHostPort("host:65536").ok());
  CHECK_FALSE(ParseHostPort("host:8a").ok());
  CHECK_FALSE(ParseHostPort("host:").ok());
}

TEST_CASE("Query strings are split and percent-decoded") {
  CHECK(PercentDecode("a%20b+c%2Fd%zz%4", true) == "a b c/d%zz%4");
  CHECK(PercentDecode("a+b%41", false) == "a+bA");
  auto q = ParseQueryString("a=1&b=x%20y&c=hello+world&d&&a=2&e=");
  CHECK(q == std::map<std::string, std::string>{
                 {"a", "1"}, {"b", "x y"}, {"c", "hello world"}, {"d", ""}, {"e", ""}});
}

TEST_CASE("ParseRequest frames one request at a time, as the server loop consumes them") {
  std::string in =
      "POST /logging?level=debug HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
      "GET /x HTTP/1.0\r\n\r\n";
  ParsedRequest first;
  REQUIRE(ParseRequest(in, &first) == ParseOutcome::kDone);
  CHECK(first.request.method == "POST");
  CHECK(first.request.path == "/logging");
  CHECK(first.request.Query("level") == "debug");
  CHECK(first.request.body == "abc");
  CHECK(first.keep_alive);
  ParsedRequest second;
  REQUIRE(ParseRequest(std::string_view(in).substr(first.consumed), &second) ==
          ParseOutcome::kDone);
  CHECK(second.http10);
  CHECK_FALSE(second.keep_alive);
  CHECK(first.consumed + second.consumed == in.size());

  ParsedRequest waiting;
  CHECK(ParseRequest("POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 9\r\n\r\nab",
                     &waiting) == ParseOutcome::kBodyIncomplete);
  CHECK(waiting.expect_continue);
  ParsedRequest partial;
  CHECK(ParseRequest("GET / HTTP/1.1\r\nHost:", &partial) == ParseOutcome::kIncomplete);
  ParsedRequest bad;
  CHECK(ParseRequest("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n",
                     &bad) == ParseOutcome::kError);
  CHECK(bad.error_status == 400);
}

TEST_CASE("Start rejects bad addresses and routes") {
  CHECK_FALSE(AdminServer::Start("nonsense", TestRoutes()).ok());
  std::vector<Route> no_slash;
  no_slash.push_back({Route::kReadOnly, "x", [](const Request&) { return Response{}; }});
  CHECK_FALSE(AdminServer::Start("127.0.0.1:0", std::move(no_slash)).ok());
  auto routes = TestRoutes();
  routes.push_back(TestRoutes()[0]);
  CHECK_FALSE(AdminServer::Start("127.0.0.1:0", std::move(routes)).ok());
  // A route must say what it is: one built without a kind is refused, not served as GET.
  std::vector<Route> unsaid(1);
  unsaid[0].path = "/healthcheck/fail";
  unsaid[0].handler = [](const Request&) { return Response{}; };
  auto refused = AdminServer::Start("127.0.0.1:0", std::move(unsaid));
  CHECK(refused.status().message().find("read-only or mutating") != std::string_view::npos);

  // The port is taken while the first server lives.
  auto server = StartServer();
  auto clash = AdminServer::Start("127.0.0.1:" + std::to_string(server->port()), TestRoutes());
  CHECK(clash.status().code() == absl::StatusCode::kUnavailable);
}

TEST_CASE("GET a route") {
  auto server = StartServer();
  ClientResponse r = Get(server->port(), "/hello");
  CHECK(r.status == 200);
  CHECK(r.body == "hi\n");
  CHECK(r.Header("content-length") == "3");
  CHECK(r.Header("content-type") == "text/plain; charset=utf-8");
  // CR/LF in a handler's header value cannot start a new header line.
  CHECK(r.Header("x-test") == "yesInjected: no");
  CHECK(r.Header("injected").empty());
}

TEST_CASE("Query, path decoding and headers reach the handler") {
  auto server = StartServer();
  Client client(server->port());
  client.Send(
      "GET /ec%68o?a=1&b=x%20y&c=hello+world&d HTTP/1.1\r\nHost: x\r\nUSER-AGENT: t/1\r\n\r\n");
  ClientResponse r = client.Read();
  CHECK(r.status == 200);
  CHECK(r.Header("content-type") == "application/octet-stream");
  CHECK(r.body ==
        "GET /echo [a=1&b=x%20y&c=hello+world&d] a=1;b=x y;c=hello world;d=; ua=t/1 body=");
}

TEST_CASE("Unknown path is a 404 listing the paths") {
  auto server = StartServer();
  ClientResponse r = Get(server->port(), "/nope");
  CHECK(r.status == 404);
  CHECK(r.body.find("/nope") != std::string::npos);
  CHECK(r.body.find("/echo") != std::string::npos);
  CHECK(r.body.find("/hello") != std::string::npos);
}

TEST_CASE("A read-only route answers GET and HEAD only, a mutating one POST only") {
  auto server = StartServer();
  auto send = [&](const std::string& method, const std::string& path) {
    Client client(server->port());
    client.Send(method + " " + path + " HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    return client.Read(method == "HEAD");
  };
  for (const char* method : {"POST", "DELETE", "PUT", "OPTIONS"}) {
    INFO(method);
    ClientResponse r = send(method, "/echo");
    CHECK(r.status == 405);
    CHECK(r.Header("allow") == "GET, HEAD");
  }
  CHECK(send("GET", "/echo").status == 200);
  CHECK(send("HEAD", "/echo").status == 200);
  // GET is what a link, an <img> tag or a prefetch sends: it must not reach a mutating handler.
  for (const char* method : {"GET", "HEAD", "PUT", "DELETE"}) {
    INFO(method);
    ClientResponse r = send(method, "/post");
    CHECK(r.status == 405);
    CHECK(r.Header("allow") == "POST");
  }
  ClientResponse post = send("POST", "/post");
  CHECK(post.status == 200);
  CHECK(post.body.find("POST /post") == 0);
  // Unknown paths stay 404 whatever the method; the list says how to call each route.
  ClientResponse missing = send("DELETE", "/nope");
  CHECK(missing.status == 404);
  CHECK(missing.body.find("POST /post") != std::string::npos);
  CHECK(missing.body.find("GET  /echo") != std::string::npos);
}

TEST_CASE("A mutating route refuses a browser's cross-origin request") {
  auto server = StartServer();
  auto post = [&](const std::string& headers) {
    Client client(server->port());
    client.Send("POST /post HTTP/1.1\r\nHost: 127.0.0.1:15000\r\n" + headers +
                "Content-Length: 0\r\n\r\n");
    return client.Read();
  };
  // A form on another site may POST here; its Origin gives it away.
  CHECK(post("Origin: http://evil.example\r\n").status == 403);
  CHECK(post("Origin: null\r\n").status == 403);
  CHECK(post("Origin: http://127.0.0.1:15001\r\n").status == 403);
  // Tools send no Origin; a page served from this very address may.
  CHECK(post("").status == 200);
  CHECK(post("Origin: http://127.0.0.1:15000\r\n").status == 200);
  // Read-only routes do not care: a cross-origin GET cannot read the answer anyway.
  Client client(server->port());
  client.Send("GET /echo HTTP/1.1\r\nOrigin: http://evil.example\r\n\r\n");
  CHECK(client.Read().status == 200);
}

TEST_CASE("POST /logging sets the log level; GET cannot") {
  std::vector<Route> routes;
  routes.push_back(LogLevelRoute());
  auto server = AdminServer::Start("127.0.0.1:0", std::move(routes));
  REQUIRE(server.ok());
  LogLevel before = GetLogLevel();
  auto send = [&](const std::string& request_line) {
    Client client((*server)->port());
    client.Send(request_line + " HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    return client.Read();
  };
  CHECK(send("GET /logging?level=debug").status == 405);
  CHECK(GetLogLevel() == before);
  ClientResponse set = send("POST /logging?level=error");
  CHECK(set.status == 200);
  CHECK(set.body == "level: error\n");
  CHECK(GetLogLevel() == LogLevel::kError);
  CHECK(send("POST /logging?level=loud").status == 400);
  CHECK(GetLogLevel() == LogLevel::kError);
  CHECK(send("POST /logging").body == "level: error\n");
  SetLogLevel(before);
}

TEST_CASE("Keep-alive serves several requests on one connection") {
  auto server = StartServer();
  Client client(server->port());
  REQUIRE(client.Send("GET /hello HTTP/1.1\r\n\r\n"));
  ClientResponse first = client.Read();
  CHECK(first.status == 200);
  CHECK(first.Header("connection").empty());
  REQUIRE(client.Send("GET /echo?n=2 HTTP/1.1\r\n\r\n"));
  ClientResponse second = client.Read();
  CHECK(second.status == 200);
  CHECK(second.body.find("n=2;") != std::string::npos);

  // Pipelined: two requests in one write, answered in order.
  REQUIRE(client.Send("GET /echo?n=3 HTTP/1.1\r\n\r\nGET /echo?n=4 HTTP/1.1\r\n\r\n"));
  CHECK(client.Read().body.find("n=3;") != std::string::npos);
  CHECK(client.Read().body.find("n=4;") != std::string::npos);
}

TEST_CASE("Connection: close and HTTP/1.0 end the connection") {
  auto server = StartServer();
  {
    Client client(server->port());
    client.Send("GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n");
    ClientResponse r = client.Read();
    CHECK(r.status == 200);
    CHECK(r.Header("connection") == "close");
    CHECK(client.Closed());
  }
  {
    Client client(server->port());
    client.Send("GET /hello HTTP/1.0\r\n\r\n");
    ClientResponse r = client.Read();
    CHECK(r.status == 200);
    CHECK(r.Header("connection") == "close");
    CHECK(client.Closed());
  }
  {
    Client client(server->port());
    client.Send("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    CHECK(client.Read().Header("connection") == "keep-alive");
    client.Send("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    CHECK(client.Read().status == 200);
  }
  {
    // A handler can ask for the connection to be closed.
    Client client(server->port());
    client.Send("GET /bye HTTP/1.1\r\n\r\n");
    ClientResponse r = client.Read();
    CHECK(r.status == 202);
    CHECK(r.body == "closing");
    CHECK(r.Header("connection") == "close");
    CHECK(client.Closed());
  }
}

TEST_CASE("HEAD returns the headers without the body") {
  auto server = StartServer();
  Client client(server->port());
  client.Send("HEAD /hello HTTP/1.1\r\n\r\n");
  ClientResponse r = client.Read(/*head_request=*/true);
  CHECK(r.status == 200);
  CHECK(r.Header("content-length") == "3");
  // The connection is still in sync: no stray body bytes precede the next response.
  client.Send("GET /hello HTTP/1.1\r\n\r\n");
  CHECK(client.Read().body == "hi\n");
}

TEST_CASE("POST bodies are delivered; oversize and chunked bodies are refused") {
  auto server = StartServer();
  {
    Client client(server->port());
    client.Send("POST /post HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello");
    client.Send(" world");  // the body may arrive in pieces
    ClientResponse r = client.Read();
    CHECK(r.status == 200);
    CHECK(r.body.find("POST /post") == 0);
    CHECK(r.body.find("body=hello world") != std::string::npos);
  }
  {
    Client client(server->port());
    std::string big(100 * 1024, 'x');
    client.Send("POST /post HTTP/1.1\r\nContent-Length: " + std::to_string(big.size()) +
                "\r\n\r\n" + big);
    ClientResponse r = client.Read();
    CHECK(r.status == 200);
    CHECK(r.body.size() > big.size());
  }
  {
    Client client(server->port());
    client.Send("POST /post HTTP/1.1\r\nContent-Length: 2000000\r\n\r\nabc");
    ClientResponse r = client.Read();
    CHECK(r.status == 413);
    CHECK(r.Header("connection") == "close");
    CHECK(client.Closed());
  }
  {
    Client client(server->port());
    client.Send("POST /post HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    CHECK(client.Read().status == 411);
    CHECK(client.Closed());
  }
  {
    Client client(server->port());
    client.Send("POST /post HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab");
    CHECK(client.Read().status == 400);
  }
  {
    // Expect: 100-continue gets the interim response before the body is sent.
    Client client(server->port());
    client.Send("POST /post HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
    ClientResponse interim = client.Read();
    CHECK(interim.status == 100);
    client.Send("data");
    ClientResponse r = client.Read();
    CHECK(r.status == 200);
    CHECK(r.body.find("body=data") != std::string::npos);
  }
}

TEST_CASE("Oversize headers get 431") {
  auto server = StartServer();
  Client client(server->port());
  std::string request = "GET /hello HTTP/1.1\r\nX-Big: " + std::string(9000, 'a') + "\r\n\r\n";
  client.Send(request);
  ClientResponse r = client.Read();
  CHECK(r.status == 431);
  CHECK(r.Header("connection") == "close");
  CHECK(client.Closed());

  // Just under the limit is fine.
  Client ok(server->port());
  ok.Send("GET /hello HTTP/1.1\r\nX-Big: " + std::string(8000, 'a') + "\r\n\r\n");
  CHECK(ok.Read().status == 200);
}

TEST_CASE("Malformed requests get 400 (or 505)") {
  auto server = StartServer();
  for (std::string bad :
       {"garbage\r\n\r\n", "GET /hello\r\n\r\n", "GET  /hello HTTP/1.1\r\n\r\n",
        "GET /hello HTTP/1.1 extra\r\n\r\n", "GET /hello FTP/1.1\r\n\r\n",
        "GET /hello HTTP/1.1\r\nBad Header: x\r\n\r\n", "GET /hello HTTP/1.1\r\nNoColon\r\n\r\n",
        "GET /hello HTTP/1.1\r\n folded: x\r\n\r\n",
        "POST /post HTTP/1.1\r\nContent-Length: -1\r\n\r\n"}) {
    INFO(bad);
    Client client(server->port());
    client.Send(bad);
    ClientResponse r = client.Read();
    CHECK(r.status == 400);
    CHECK(r.Header("connection") == "close");
    CHECK(client.Closed());
  }
  Client client(server->port());
  client.Send("GET /hello HTTP/2.0\r\n\r\n");
  CHECK(client.Read().status == 505);
}

TEST_CASE("A slow client does not block others and times out with 408") {
  AdminServerOptions options;
  options.request_timeout = 300ms;
  auto server = StartServer(options);
  Client slow(server->port());
  REQUIRE(slow.Send("GET /hello HTTP/1.1\r\nHost:"));

  auto start = std::chrono::steady_clock::now();
  ClientResponse r = Get(server->port(), "/hello");
  CHECK(r.status == 200);
  CHECK(std::chrono::steady_clock::now() - start < 250ms);

  ClientResponse timed_out = slow.Read();
  CHECK(timed_out.status == 408);
  CHECK(slow.Closed());
}

TEST_CASE("Idle keep-alive connections are closed after the idle timeout") {
  AdminServerOptions options;
  options.idle_timeout = 200ms;
  auto server = StartServer(options);
  Client client(server->port());
  client.Send("GET /hello HTTP/1.1\r\n\r\n");
  CHECK(client.Read().status == 200);
  auto start = std::chrono::steady_clock::now();
  CHECK(client.Closed());
  CHECK(std::chrono::steady_clock::now() - start < 3s);
}

TEST_CASE("The server stops cleanly while a client is connected and idle") {
  auto server = StartServer();
  Client idle(server->port());
  REQUIRE(idle.connected());
  idle.Send("GET /hello HTTP/1.1\r\n\r\n");
  CHECK(idle.Read().status == 200);
  Client never_spoke(server->port());
  REQUIRE(never_spoke.connected());

  auto start = std::chrono::steady_clock::now();
  server.reset();
  CHECK(std::chrono::steady_clock::now() - start < 1s);
  CHECK(idle.Closed());
  CHECK(never_spoke.Closed());
}

TEST_CASE("IPv6 loopback works when the host has it") {
  auto server = AdminServer::Start("[::1]:0", TestRoutes());
  if (!server.ok()) {
    WARN("no IPv6 loopback here: " << server.status().ToString());
    return;
  }
  CHECK((*server)->port() != 0);
}

}  // namespace
}  // namespace weft::http
