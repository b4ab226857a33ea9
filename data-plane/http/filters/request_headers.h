// Header matchers in Envoy see the request line as pseudo-headers (":method", ":path",
// ":authority", ":scheme"); an HTTP/1 header map does not hold them. The filter engines wrap
// the request's headers in this view so that a matcher on ":method" works whatever the codec.
#pragma once

#include <optional>
#include <string_view>

#include "data-plane/router/matchers.h"

namespace weft::http {

// The request line's parts. Views: the caller keeps them alive.
struct RequestLine {
  std::string_view method;     // ":method"
  std::string_view path;       // ":path", query included
  std::string_view authority;  // ":authority"
  std::string_view scheme;     // ":scheme"
};

class RequestHeaders final : public router::HeaderLookup {
 public:
  // `rest` may be null (no other headers).
  RequestHeaders(const RequestLine& line, const router::HeaderLookup* rest)
      : line_(line), rest_(rest) {}

  std::optional<std::string_view> Get(std::string_view name) const override {
    if (!name.empty() && name[0] == ':') {
      std::string_view v;
      if (name == ":method") {
        v = line_.method;
      } else if (name == ":path") {
        v = line_.path;
      } else if (name == ":authority") {
        v = line_.authority;
      } else if (name == ":scheme") {
        v = line_.scheme;
      }
      if (!v.empty()) return v;
      // An absent part: let a header map that does carry pseudo-headers answer.
    }
    if (rest_ == nullptr) return std::nullopt;
    return rest_->Get(name);
  }

 private:
  const RequestLine& line_;
  const router::HeaderLookup* rest_;
};

}  // namespace weft::http
