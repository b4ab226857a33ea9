#include "data-plane/http/request_util.h"

#include "data-plane/router/matchers.h"

namespace weft::http {

std::string Uuid4(upstream::Random& random) {
  uint64_t hi = random.Next();
  uint64_t lo = random.Next();
  hi = (hi & ~0xF000ULL) | 0x4000ULL;                         // version 4
  lo = (lo & 0x3FFFFFFFFFFFFFFFULL) | 0x8000000000000000ULL;  // RFC 4122 variant
  // Formatted by hand: snprintf showed up in profiles at every request.
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(36, '-');
  int pos = 0;
  auto put = [&](uint64_t v, int nibbles) {
    for (int i = nibbles - 1; i >= 0; --i)
      out[static_cast<size_t>(pos++)] = kHex[(v >> (4 * i)) & 0xF];
  };
  put(hi >> 32, 8);
  ++pos;
  put(hi >> 16, 4);
  ++pos;
  put(hi, 4);
  ++pos;
  put(lo >> 48, 4);
  ++pos;
  put(lo, 12);
  return out;
}

bool UpgradeAllowed(std::string_view type,
                    const std::vector<std::pair<std::string, bool>>& listener,
                    const std::vector<std::pair<std::string, bool>>* route) {
  const std::pair<std::string, bool>* configured = nullptr;
  for (const auto& entry : listener) {
    if (router::EqualsIgnoreCase(type, entry.first)) configured = &entry;
  }
  if (configured == nullptr) return false;
  if (route != nullptr) {
    for (const auto& [name, enabled] : *route) {
      if (router::EqualsIgnoreCase(type, name)) return enabled;
    }
  }
  return configured->second;
}

}  // namespace weft::http
