#include "tests/e2e/echo_backends.h"

#include <stdlib.h>

#include <catch2/catch.hpp>
#include <chrono>

#include "tests/support/process.h"

namespace weft::test {

EchoBackend::EchoBackend(std::string name) : name_(std::move(name)) {
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
  builder.RegisterService(this);
  server_ = builder.BuildAndStart();
}

EchoBackend::~EchoBackend() {
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
}

grpc::Status EchoBackend::Echo(grpc::ServerContext*, const weft::testing::v1::EchoRequest* request,
                               weft::testing::v1::EchoResponse* response) {
  response->set_message(request->message());
  response->set_backend(name_);
  return grpc::Status::OK;
}

void SetGrpcXdsBootstrap(int xds_port, std::string_view node_id, std::string_view zone) {
  std::string bootstrap =
      "{\"xds_servers\":[{\"server_uri\":\"127.0.0.1:" + std::to_string(xds_port) +
      "\",\"channel_creds\":[{\"type\":\"insecure\"}],"
      "\"server_features\":[\"xds_v3\"]}],"
      "\"node\":{\"id\":\"" +
      std::string(node_id) + "\",\"cluster\":\"test\"";
  if (!zone.empty()) bootstrap += ",\"locality\":{\"zone\":\"" + std::string(zone) + "\"}";
  bootstrap += "}}";
  REQUIRE(::setenv("GRPC_XDS_BOOTSTRAP_CONFIG", bootstrap.c_str(), 1) == 0);
}

std::unique_ptr<weft::testing::v1::EchoService::Stub> ConnectEcho(const std::string& target,
                                                                  int admin_port) {
  auto channel = grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
  auto stub = weft::testing::v1::EchoService::NewStub(channel);
  bool connected =
      channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (!connected) {
    // The NACK text (if any) is the most useful thing to see here.
    INFO("/debug/proxies: " << HttpGet(admin_port, "/debug/proxies").body);
    REQUIRE(connected);
  }
  return stub;
}

std::map<std::string, int> Spray(weft::testing::v1::EchoService::Stub& stub, int n) {
  std::map<std::string, int> counts;
  for (int i = 0; i < n; ++i) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    weft::testing::v1::EchoRequest req;
    req.set_message("hello " + std::to_string(i));
    weft::testing::v1::EchoResponse resp;
    grpc::Status status = stub.Echo(&ctx, req, &resp);
    if (status.ok()) {
      counts[resp.backend()]++;
    } else {
      counts["error: " + std::to_string(status.error_code()) + " " + status.error_message()]++;
    }
  }
  return counts;
}

std::map<std::string, int> SprayUntilAll(weft::testing::v1::EchoService::Stub& stub,
                                         const std::vector<std::string>& expected,
                                         std::chrono::milliseconds max_wait) {
  std::map<std::string, int> counts;
  const auto deadline = std::chrono::steady_clock::now() + max_wait;
  for (;;) {
    for (const auto& [k, v] : Spray(stub, 10)) counts[k] += v;
    bool all = true;
    for (const std::string& b : expected) all = all && counts[b] > 0;
    if (all || std::chrono::steady_clock::now() >= deadline) return counts;
  }
}

std::string Show(const std::map<std::string, int>& counts) {
  std::string out;
  for (const auto& [k, v] : counts) out += k + "=" + std::to_string(v) + " ";
  return out;
}

}  // namespace weft::test
