// weft-proxy's own gRPC stream (data-plane/grpc_client) against a real gRPC C++ server on a
// loopback port chosen at run time: messages both ways across flow-control windows, the
// server's status and message, cancellation from another thread, and transports that fail.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "data-plane/grpc_client/stream.h"
#include "envoy/service/discovery/v3/ads.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace {

using envoy::service::discovery::v3::AggregatedDiscoveryService;
using envoy::service::discovery::v3::DeltaDiscoveryRequest;
using envoy::service::discovery::v3::DeltaDiscoveryResponse;
using envoy::service::discovery::v3::DiscoveryRequest;
using envoy::service::discovery::v3::DiscoveryResponse;
using weft::grpc_client::Stream;
using weft::grpc_client::StreamOptions;
using SotwStream = grpc::ServerReaderWriter<DiscoveryResponse, DiscoveryRequest>;

constexpr char kSotw[] =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
constexpr char kDelta[] =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";

// SotW: answers each request with a response whose version_info is the request's type_url and
// whose nonce holds `payload` bytes. Delta: never answers, and records when the client's
// cancellation reaches it. A request with type_url "fail" ends the call with an error status.
class Service final : public AggregatedDiscoveryService::Service {
 public:
  explicit Service(size_t payload) : payload_(payload) {}

  grpc::Status StreamAggregatedResources(grpc::ServerContext*, SotwStream* stream) override {
    DiscoveryRequest req;
    while (stream->Read(&req)) {
      if (req.type_url() == "fail") {
        return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                            "denied: 100% sure, \xC3\xA9t\xC3\xA9");
      }
      DiscoveryResponse resp;
      resp.set_version_info(req.type_url());
      resp.set_nonce(std::string(payload_, 'x'));
      if (!stream->Write(resp)) break;
    }
    return grpc::Status::OK;
  }

  grpc::Status DeltaAggregatedResources(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<DeltaDiscoveryResponse, DeltaDiscoveryRequest>* stream) override {
    DeltaDiscoveryRequest req;
    while (stream->Read(&req)) {
    }
    if (ctx->IsCancelled()) saw_cancel = true;
    return grpc::Status::OK;
  }

  std::atomic<bool> saw_cancel{false};

 private:
  size_t payload_;
};

struct Server {
  explicit Server(size_t payload = 16) : service(payload) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&service);
    builder.SetMaxReceiveMessageSize(64 << 20);
    server = builder.BuildAndStart();
    REQUIRE(server != nullptr);
    REQUIRE(port != 0);
  }
  ~Server() { server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1)); }
  std::string target() const { return "127.0.0.1:" + std::to_string(port); }

  Service service;
  int port = 0;
  std::unique_ptr<grpc::Server> server;
};

DiscoveryRequest Request(const std::string& type_url, size_t padding = 0) {
  DiscoveryRequest req;
  req.set_type_url(type_url);
  req.set_response_nonce(std::string(padding, 'p'));
  return req;
}

// A TCP listener that accepts one connection, writes `reply` and closes it.
struct Junk {
  explicit Junk(std::string reply) {
    fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    REQUIRE(listen(fd, 4) == 0);
    socklen_t len = sizeof(addr);
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
    thread = std::thread([this, reply = std::move(reply)] {
      int c = accept(fd, nullptr, nullptr);
      if (c < 0) return;
      (void)!write(c, reply.data(), reply.size());
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      close(c);
    });
  }
  ~Junk() {
    shutdown(fd, SHUT_RDWR);
    thread.join();
    close(fd);
  }
  int fd = -1;
  int port = 0;
  std::thread thread;
};

}  // namespace

TEST_CASE("grpc_client: messages both ways, larger than the flow-control windows") {
  Server server(/*payload=*/6 << 20);  // above the 4 MiB stream and HTTP/2's default windows
  Stream stream;
  REQUIRE(stream.Start(server.target(), kSotw).ok());
  for (int i = 0; i < 3; ++i) {
    const std::string type = "type-" + std::to_string(i);
    REQUIRE(stream.Write(Request(type, /*padding=*/3 << 20)));
    DiscoveryResponse resp;
    REQUIRE(stream.Read(&resp));
    CHECK(resp.version_info() == type);
    CHECK(resp.nonce().size() == (6u << 20));
  }
  absl::Status status = stream.Finish();
  CHECK(status.code() == absl::StatusCode::kCancelled);
}

TEST_CASE("grpc_client: the server's status code and percent-encoded message come back") {
  Server server;
  Stream stream;
  REQUIRE(stream.Start("dns:///" + server.target(), kSotw).ok());
  REQUIRE(stream.Write(Request("a")));
  DiscoveryResponse resp;
  REQUIRE(stream.Read(&resp));
  REQUIRE(stream.Write(Request("fail")));
  CHECK_FALSE(stream.Read(&resp));
  CHECK_FALSE(stream.Write(Request("b")));
  absl::Status status = stream.Finish();
  CHECK(status.code() == absl::StatusCode::kPermissionDenied);
  CHECK(status.message() == "denied: 100% sure, \xC3\xA9t\xC3\xA9");
}

TEST_CASE("grpc_client: an unknown method is UNIMPLEMENTED") {
  Server server;
  Stream stream;
  REQUIRE(stream.Start(server.target(), "/weft.Nope/Nothing").ok());
  stream.Write(Request("a"));  // may already see the answer
  DiscoveryResponse resp;
  CHECK_FALSE(stream.Read(&resp));
  CHECK(stream.Finish().code() == absl::StatusCode::kUnimplemented);
}

TEST_CASE("grpc_client: Cancel from another thread ends a blocked Read, and the server sees it") {
  Server server;
  Stream stream;
  REQUIRE(stream.Start(server.target(), kDelta).ok());
  DeltaDiscoveryRequest req;
  req.set_type_url("t");
  REQUIRE(stream.Write(req));
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    stream.Cancel();
  });
  auto start = std::chrono::steady_clock::now();
  DeltaDiscoveryResponse resp;
  CHECK_FALSE(stream.Read(&resp));
  canceller.join();
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
  CHECK(stream.Finish().code() == absl::StatusCode::kCancelled);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!server.service.saw_cancel && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(server.service.saw_cancel);
}

TEST_CASE("grpc_client: a response above the size limit fails the call, not the process") {
  Server server(/*payload=*/2 << 20);
  StreamOptions options;
  options.max_message_bytes = 1 << 20;
  Stream stream(options);
  REQUIRE(stream.Start(server.target(), kSotw).ok());
  REQUIRE(stream.Write(Request("a")));
  DiscoveryResponse resp;
  CHECK_FALSE(stream.Read(&resp));
  absl::Status status = stream.Finish();
  CHECK(status.code() == absl::StatusCode::kResourceExhausted);
  CHECK(status.message().find("exceeds the limit") != std::string_view::npos);
}

TEST_CASE("grpc_client: unreachable servers, bad targets and non-HTTP/2 peers are errors") {
  SECTION("nothing listens") {
    // A port that was just free: bound, never listened on, closed.
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    socklen_t len = sizeof(addr);
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    close(fd);
    Stream stream;
    absl::Status s = stream.Start("127.0.0.1:" + std::to_string(ntohs(addr.sin_port)), kSotw);
    CHECK(s.code() == absl::StatusCode::kUnavailable);
    CHECK(s.message().find("connect") != std::string_view::npos);
  }
  SECTION("not host:port") {
    Stream stream;
    CHECK(stream.Start("just-a-host", kSotw).code() == absl::StatusCode::kInvalidArgument);
    CHECK(stream.Start("[::1", kSotw).code() == absl::StatusCode::kInvalidArgument);
  }
  SECTION("an HTTP/1.1 server") {
    Junk http1("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    Stream stream;
    REQUIRE(stream.Start("127.0.0.1:" + std::to_string(http1.port), kSotw).ok());
    stream.Write(Request("a"));
    DiscoveryResponse resp;
    CHECK_FALSE(stream.Read(&resp));
    absl::Status s = stream.Finish();
    CHECK(s.code() == absl::StatusCode::kUnavailable);
    INFO(s.message());
    CHECK(s.message().find("HTTP/2") != std::string_view::npos);
  }
}
