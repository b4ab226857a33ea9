#include "common/xds/cidr.h"

#include <arpa/inet.h>

#include "absl/strings/str_cat.h"
#include "common/strings.h"

namespace weft::xds {
namespace {

// Clears every bit of `bytes` past the first `prefix_len`.
void Mask(std::array<uint8_t, 16>* bytes, size_t size, uint32_t prefix_len) {
  for (size_t i = 0; i < size; ++i) {
    const uint32_t first_bit = static_cast<uint32_t>(i) * 8;
    if (prefix_len >= first_bit + 8) continue;
    const uint32_t keep = prefix_len > first_bit ? prefix_len - first_bit : 0;
    (*bytes)[i] &= static_cast<uint8_t>(0xff00u >> keep);
  }
}

}  // namespace

std::optional<IpAddress> IpAddress::Parse(std::string_view text) {
  // inet_pton needs a terminated string; the longest IPv6 text form is 45 characters.
  if (text.empty() || text.size() > 45) return std::nullopt;
  char buf[46];
  text.copy(buf, text.size());
  buf[text.size()] = '\0';
  IpAddress out;
  if (inet_pton(AF_INET, buf, out.bytes.data()) == 1) return out;
  if (inet_pton(AF_INET6, buf, out.bytes.data()) == 1) {
    out.v6 = true;
    return out;
  }
  return std::nullopt;
}

std::string IpAddress::ToString() const {
  char buf[INET6_ADDRSTRLEN];
  if (inet_ntop(v6 ? AF_INET6 : AF_INET, bytes.data(), buf, sizeof(buf)) == nullptr) return "";
  return buf;
}

CidrRange::CidrRange(const IpAddress& address, uint32_t prefix_len)
    : address_(address), prefix_len_(prefix_len) {
  Mask(&address_.bytes, address_.size(), prefix_len_);
}

std::optional<CidrRange> CidrRange::Create(const envoy::config::core::v3::CidrRange& proto,
                                           ValidationErrors* errors) {
  std::optional<IpAddress> address = IpAddress::Parse(proto.address_prefix());
  if (!address) {
    errors->AddAt("address_prefix", absl::StrCat("not a numeric IPv4 or IPv6 address: \"",
                                                 proto.address_prefix(), "\""));
    return std::nullopt;
  }
  const uint32_t prefix_len = proto.has_prefix_len() ? proto.prefix_len().value() : 0;
  const uint32_t max = address->v6 ? 128 : 32;
  if (prefix_len > max) {
    errors->AddAt("prefix_len", absl::StrCat("must be at most ", max, " for an IPv",
                                             address->v6 ? 6 : 4, " address, got ", prefix_len));
    return std::nullopt;
  }
  return CidrRange(*address, prefix_len);
}

bool CidrRange::Contains(const IpAddress& address) const {
  if (address.v6 != address_.v6) return false;
  IpAddress masked = address;
  Mask(&masked.bytes, masked.size(), prefix_len_);
  return masked.bytes == address_.bytes;
}

}  // namespace weft::xds
