#include "common/proto_util.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/strings.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace weft {

std::string TypeUrlOf(const google::protobuf::Descriptor& descriptor) {
  return absl::StrCat(Sv(kTypeUrlPrefix), descriptor.full_name());
}

std::string_view TypeNameOfUrl(std::string_view type_url) {
  size_t slash = type_url.rfind('/');
  return slash == std::string_view::npos ? type_url : type_url.substr(slash + 1);
}

std::string DeterministicBytes(const google::protobuf::Message& message) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }
  return out;
}

void PackAny(const google::protobuf::Message& message, google::protobuf::Any* any) {
  any->set_type_url(TypeUrlOf(*message.GetDescriptor()));
  any->set_value(DeterministicBytes(message));
}

google::protobuf::Any PackAny(const google::protobuf::Message& message) {
  google::protobuf::Any any;
  PackAny(message, &any);
  return any;
}

absl::Status UnpackAny(const google::protobuf::Any& any, google::protobuf::Message* out) {
  std::string_view want = out->GetDescriptor()->full_name();
  std::string_view got = TypeNameOfUrl(any.type_url());
  if (got != want) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected type ", Sv(want), ", got \"", any.type_url(), "\""));
  }
  if (!out->ParseFromString(any.value())) {
    return absl::InvalidArgumentError(absl::StrCat("cannot parse ", Sv(want), " from Any"));
  }
  return absl::OkStatus();
}

uint64_t StableHash64(std::string_view bytes) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::string HexVersion(uint64_t hash) { return absl::StrFormat("%016x", hash); }

std::string ContentVersion(const google::protobuf::Message& message) {
  return HexVersion(StableHash64(DeterministicBytes(message)));
}

}  // namespace weft
