// IP addresses and CIDR ranges (envoy.config.core.v3.CidrRange) in a compact binary form, shared
// by the validators (is the range well formed?) and weft-proxy's RBAC filter (does an address
// fall in it?), so both read a range the same way.
//
// Semantics follow Envoy's Network::Address::CidrRange: the address bits past the prefix are
// masked off ("10.1.2.3/8" is 10.0.0.0/8), a missing prefix_len is 0 (every address of that
// family), and an address only falls in a range of its own family (an IPv4-mapped IPv6 address
// does not match an IPv4 range).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/validation.h"
#include "envoy/config/core/v3/address.pb.h"

namespace weft::xds {

struct IpAddress {
  bool v6 = false;
  std::array<uint8_t, 16> bytes{};  // IPv4 uses the first 4

  // Numeric IPv4 ("10.0.0.1") or IPv6 ("::1", "[::1]" is not accepted); nullopt otherwise.
  static std::optional<IpAddress> Parse(std::string_view text);
  size_t size() const { return v6 ? 16 : 4; }
  std::string ToString() const;
  bool operator==(const IpAddress&) const = default;
};

class CidrRange {
 public:
  // Records problems under the current scope of `errors` ("address_prefix: ...",
  // "prefix_len: ...") and returns nullopt when the range is not usable.
  static std::optional<CidrRange> Create(const envoy::config::core::v3::CidrRange& proto,
                                         ValidationErrors* errors);
  CidrRange(const IpAddress& address, uint32_t prefix_len);  // prefix_len within the family

  bool Contains(const IpAddress& address) const;
  const IpAddress& address() const { return address_; }  // masked
  uint32_t prefix_len() const { return prefix_len_; }

 private:
  IpAddress address_;
  uint32_t prefix_len_;
};

}  // namespace weft::xds
