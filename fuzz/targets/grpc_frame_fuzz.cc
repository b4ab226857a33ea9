// The gRPC message framing of weft-proxy's ADS client (data-plane/grpc_client/framing.h): DATA
// bytes as a server sends them, split at arbitrary points, cut into DiscoveryResponses; and the
// trailer decoders. The first byte seeds the split points and picks the size limit.
#include <cstdint>
#include <string>
#include <string_view>

#include "data-plane/grpc_client/framing.h"
#include "envoy/service/discovery/v3/discovery.pb.h"
#include "fuzz/check.h"

using envoy::service::discovery::v3::DiscoveryResponse;
using weft::grpc_client::MessageReader;

namespace {

struct Run {
  int messages = 0;
  bool failed = false;
  std::string last;  // serialization of the last message, to compare runs
};

Run Read(std::string_view data, uint32_t seed, size_t limit, bool split) {
  MessageReader reader;
  Run run;
  size_t at = 0;
  while (at < data.size() && !run.failed) {
    size_t n = data.size() - at;
    if (split) {
      seed = seed * 1103515245u + 12345u;
      n = std::min(n, size_t{1} + (seed >> 16) % 64);
    }
    reader.Append(data.substr(at, n));
    at += n;
    while (true) {
      DiscoveryResponse message;
      std::optional<absl::Status> s = reader.Next(&message, limit);
      if (!s) break;
      if (!s->ok()) {
        WEFT_FUZZ_CHECK(!s->message().empty());
        run.failed = true;
        break;
      }
      ++run.messages;
      run.last = message.SerializeAsString();
    }
  }
  if (!run.failed)
    WEFT_FUZZ_CHECK(reader.buffered() < weft::grpc_client::kFrameHeaderBytes + limit);
  return run;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  if (size == 0) return 0;
  uint32_t seed = bytes[0];
  size_t limit = (bytes[0] & 1) ? 64u << 20 : 256;
  std::string_view data(reinterpret_cast<const char*>(bytes + 1), size - 1);
  Run whole = Read(data, seed, limit, false);
  Run split = Read(data, seed, limit, true);
  WEFT_FUZZ_CHECK(whole.messages == split.messages && whole.failed == split.failed &&
                  whole.last == split.last);
  // The trailers' decoders take whatever the server sent.
  std::string decoded = weft::grpc_client::PercentDecodeGrpcMessage(data);
  WEFT_FUZZ_CHECK(decoded.size() <= data.size());
  int status = size >= 3 ? (bytes[1] << 8 | bytes[2]) : 0;
  (void)weft::grpc_client::FromHttpStatus(status);
  // What the client frames, the reader reads back.
  if (!whole.failed && whole.messages > 0) {
    DiscoveryResponse m;
    WEFT_FUZZ_CHECK(m.ParseFromString(whole.last));
    std::string framed;
    weft::grpc_client::AppendFrame(m, &framed);
    MessageReader reader;
    reader.Append(framed);
    DiscoveryResponse back;
    auto s = reader.Next(&back, 64u << 20);
    WEFT_FUZZ_CHECK(s && s->ok() && back.SerializeAsString() == m.SerializeAsString());
  }
  return 0;
}
