// gRPC's message framing on an HTTP/2 stream ([compressed flag][u32 big-endian length][bytes])
// and the small decoders of its trailers, apart from the transport so they can be fuzzed
// (fuzz/targets/grpc_frame_fuzz.cc) and unit-tested without a connection.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace google::protobuf {
class MessageLite;
}  // namespace google::protobuf

namespace weft::grpc_client {

inline constexpr size_t kFrameHeaderBytes = 5;

// Collects DATA bytes and cuts them into messages.
class MessageReader {
 public:
  void Append(std::string_view data) { in_.append(data); }
  // The next message: nullopt while it is incomplete; OK with `message` parsed; an error
  // (compressed without negotiation, over `max_bytes`: RESOURCE_EXHAUSTED, undecodable), after
  // which the stream is unusable. A length over the limit is refused from the 5-byte prefix,
  // before any of the message is buffered.
  std::optional<absl::Status> Next(google::protobuf::MessageLite* message, size_t max_bytes);
  // Bytes received and not yet returned as messages.
  size_t buffered() const { return in_.size() - parsed_; }

 private:
  std::string in_;
  size_t parsed_ = 0;
};

// Appends `message` framed (uncompressed) to `out`.
void AppendFrame(const google::protobuf::MessageLite& message, std::string* out);

// grpc-message is percent-encoded (gRPC over HTTP/2, "Responses"); a malformed escape is kept.
std::string PercentDecodeGrpcMessage(std::string_view in);

// A call that ended without grpc-status: the gRPC spec's mapping from the HTTP status.
absl::StatusCode FromHttpStatus(int status);

}  // namespace weft::grpc_client
