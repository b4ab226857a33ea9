// Protobuf helpers: Any packing with clear errors, deterministic bytes, and content hashes that
// stay the same across processes and restarts (they become xDS resource versions).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/any.pb.h"
#include "google/protobuf/message.h"

namespace weft {

inline constexpr std::string_view kTypeUrlPrefix = "type.googleapis.com/";

// "type.googleapis.com/<full name>" for a message type.
std::string TypeUrlOf(const google::protobuf::Descriptor& descriptor);
// The full message name after the last '/' of a type URL.
std::string_view TypeNameOfUrl(std::string_view type_url);

// Serialization with map entries sorted, so equal messages give equal bytes.
std::string DeterministicBytes(const google::protobuf::Message& message);

void PackAny(const google::protobuf::Message& message, google::protobuf::Any* any);
google::protobuf::Any PackAny(const google::protobuf::Message& message);

// Unpacks `any` into `out`; fails naming both types when they differ or the bytes are bad.
absl::Status UnpackAny(const google::protobuf::Any& any, google::protobuf::Message* out);

// 64-bit FNV-1a. Stable across runs and machines (unlike absl::Hash), cheap enough for versions.
uint64_t StableHash64(std::string_view bytes);
// 16 hex digits of StableHash64 over the deterministic serialization.
std::string ContentVersion(const google::protobuf::Message& message);
std::string HexVersion(uint64_t hash);

}  // namespace weft
