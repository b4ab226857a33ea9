// One client-side gRPC bidirectional-streaming call over cleartext HTTP/2 (nghttp2), driven by
// one thread with blocking calls: what weft-proxy's ADS client needs, and no more.
//
// Why not libgrpc: a sidecar holds exactly one long-lived stream, and linking gRPC's runtime
// costs every proxy ~7 MB of resident library pages (libgrpc, libgrpc++, OpenSSL, c-ares, upb)
// and a handful of background threads. The wire format is small: HTTP/2 with prior knowledge,
// a POST to "/package.Service/Method", messages framed as [compressed flag][u32 length][bytes],
// and the outcome in the grpc-status / grpc-message trailers.
//
// Threading: Start/Write/Read/Finish belong to one thread; Cancel may be called from any thread
// at any time and makes a blocked call return.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/status.h"

namespace google::protobuf {
class MessageLite;
}  // namespace google::protobuf

namespace weft::grpc_client {

struct StreamOptions {
  std::string user_agent = "weft";
  std::chrono::milliseconds connect_timeout{5000};
  // A larger incoming message fails the call with RESOURCE_EXHAUSTED (gRPC's default is 4 MiB;
  // a state-of-the-world CDS response for a big mesh can exceed that).
  size_t max_message_bytes = 64u << 20;
};

class Stream {
 public:
  explicit Stream(StreamOptions options = {});
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // Resolves `target` ("host:port", "[v6]:port", optionally prefixed "dns:///"), connects and
  // opens the call `method` ("/package.Service/Method"). UNAVAILABLE when the server cannot be
  // reached, CANCELLED after Cancel().
  absl::Status Start(const std::string& target, const std::string& method);
  // Sends one message; returns once it is handed to the kernel, false once the call is over.
  bool Write(const google::protobuf::MessageLite& message);
  // Blocks for the next message: true with `message` filled, false once the call is over (the
  // reason is in Finish()).
  bool Read(google::protobuf::MessageLite* message);
  // Ends the call from any thread; a blocked Start, Read or Write returns.
  void Cancel();
  // Ends the call if it is still open and returns its outcome: the server's status (OK,
  // or its code and grpc-message), or how the transport failed.
  absl::Status Finish();

 private:
  struct Connection;
  StreamOptions options_;
  std::unique_ptr<Connection> conn_;
  int wake_fd_ = -1;  // eventfd: Cancel() wakes the poll loop through it
  std::atomic<bool> cancelled_{false};
};

}  // namespace weft::grpc_client
