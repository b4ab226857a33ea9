// Shared pieces of the proxyless gRPC e2e tests: in-process Echo backends, the gRPC xDS
// bootstrap, and counting which backend answered a batch of RPCs.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "grpcpp/grpcpp.h"
#include "weft/testing/v1/echo.grpc.pb.h"

namespace weft::test {

// An Echo server on 127.0.0.1 (port chosen by the kernel) that answers with its name.
class EchoBackend final : public weft::testing::v1::EchoService::Service {
 public:
  explicit EchoBackend(std::string name);
  ~EchoBackend() override;
  int port() const { return port_; }
  bool ok() const { return server_ != nullptr && port_ != 0; }

  grpc::Status Echo(grpc::ServerContext*, const weft::testing::v1::EchoRequest* request,
                    weft::testing::v1::EchoResponse* response) override;

 private:
  std::string name_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

// Points gRPC's xDS client at weft-cp on `xds_port` as node `node_id` (with a locality when
// `zone` is not empty). Must run before the first xds: channel: gRPC reads the bootstrap once
// per process. REQUIREs that the environment variable was set.
void SetGrpcXdsBootstrap(int xds_port, std::string_view node_id, std::string_view zone = "");

// Creates an Echo stub for `target` (an xds:/// URI) and REQUIREs the channel to connect within
// 10 s; on failure the test log shows weft-cp's /debug/proxies from `admin_port`.
std::unique_ptr<weft::testing::v1::EchoService::Stub> ConnectEcho(const std::string& target,
                                                                  int admin_port);

// Sends `n` Echo RPCs (5 s deadline each) and counts answers per backend ("error: CODE message"
// for failures).
std::map<std::string, int> Spray(weft::testing::v1::EchoService::Stub& stub, int n);

// Sprays in batches of 10 until every backend in `expected` has answered or `max_wait` passed.
// gRPC's round robin sends to the subchannels that are READY, and under load the second one can
// take longer to connect than a fixed number of RPCs: "every endpoint gets traffic" needs time,
// not a count.
std::map<std::string, int> SprayUntilAll(weft::testing::v1::EchoService::Stub& stub,
                                         const std::vector<std::string>& expected,
                                         std::chrono::milliseconds max_wait);

// "backend-1=3 backend-2=4 " for test logs.
std::string Show(const std::map<std::string, int>& counts);

}  // namespace weft::test
