#include "data-plane/grpc_client/framing.h"

#include <google/protobuf/message_lite.h>

#include <cstdint>

#include "absl/strings/str_cat.h"

namespace weft::grpc_client {
namespace {

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::optional<absl::Status> MessageReader::Next(google::protobuf::MessageLite* message,
                                                size_t max_bytes) {
  size_t avail = in_.size() - parsed_;
  if (avail < kFrameHeaderBytes) return std::nullopt;
  const auto* p = reinterpret_cast<const uint8_t*>(in_.data() + parsed_);
  uint32_t len = (uint32_t{p[1]} << 24) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 8) | p[4];
  if (p[0] != 0) {
    return absl::InternalError("compressed message, but no compression was negotiated");
  }
  // ParseFromArray takes an int: no limit may let a length past INT_MAX through.
  size_t limit = std::min<size_t>(max_bytes, INT32_MAX);
  if (len > limit) {
    return absl::ResourceExhaustedError(
        absl::StrCat("received message of ", len, " bytes exceeds the limit of ", limit));
  }
  if (avail < kFrameHeaderBytes + len) return std::nullopt;
  bool ok = message->ParseFromArray(p + kFrameHeaderBytes, static_cast<int>(len));
  parsed_ += kFrameHeaderBytes + len;
  if (parsed_ == in_.size()) {
    // Drop the buffer of a large response rather than keep it for the life of the stream.
    if (in_.capacity() > (256u << 10)) {
      std::string().swap(in_);
    } else {
      in_.clear();
    }
    parsed_ = 0;
  } else if (parsed_ > (1u << 20)) {
    in_.erase(0, parsed_);
    parsed_ = 0;
  }
  if (!ok) {
    return absl::InternalError(
        absl::StrCat("cannot decode a ", message->GetTypeName(), " from the response"));
  }
  return absl::OkStatus();
}

void AppendFrame(const google::protobuf::MessageLite& message, std::string* out) {
  size_t len = message.ByteSizeLong();
  size_t at = out->size();
  out->resize(at + kFrameHeaderBytes + len);
  auto* p = reinterpret_cast<uint8_t*>(out->data() + at);
  p[0] = 0;
  p[1] = static_cast<uint8_t>(len >> 24);
  p[2] = static_cast<uint8_t>(len >> 16);
  p[3] = static_cast<uint8_t>(len >> 8);
  p[4] = static_cast<uint8_t>(len);
  message.SerializeWithCachedSizesToArray(p + kFrameHeaderBytes);
}

std::string PercentDecodeGrpcMessage(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    int hi = 0;
    int lo = 0;
    if (in[i] == '%' && i + 2 < in.size() && (hi = HexDigit(in[i + 1])) >= 0 &&
        (lo = HexDigit(in[i + 2])) >= 0) {
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(in[i]);
    }
  }
  return out;
}

absl::StatusCode FromHttpStatus(int status) {
  switch (status) {
    case 400:
      return absl::StatusCode::kInternal;
    case 401:
      return absl::StatusCode::kUnauthenticated;
    case 403:
      return absl::StatusCode::kPermissionDenied;
    case 404:
      return absl::StatusCode::kUnimplemented;
    case 429:
    case 502:
    case 503:
    case 504:
      return absl::StatusCode::kUnavailable;
    default:
      return absl::StatusCode::kUnknown;
  }
}

}  // namespace weft::grpc_client
