#include "data-plane/http/path/path.h"

#include <vector>

namespace weft::http {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// unreserved (RFC 3986 §2.3): escaping these changes nothing, so their escapes are decoded.
bool IsUnreserved(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

bool DecodeUnreserved(std::string_view in, std::string* out) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  out->clear();
  out->reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out->push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return false;  // "%" or "%X" at the end
    const int hi = HexValue(in[i + 1]);
    const int lo = HexValue(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    const char c = static_cast<char>(hi * 16 + lo);
    if (IsUnreserved(c)) {
      out->push_back(c);
    } else {
      out->push_back('%');
      out->push_back(kHex[hi]);
      out->push_back(kHex[lo]);
    }
    i += 2;
  }
  return true;
}

// RFC 3986 §5.2.4 on a path that starts with '/', segment by segment: "." is dropped, ".."
// drops the segment before it (never above the root), and a final "." or ".." leaves the
// trailing slash ("/a/b/.." is "/a/").
std::string RemoveDotSegments(std::string_view path) {
  std::vector<std::string_view> kept;
  std::string_view rest = path.substr(1);
  while (true) {
    const size_t slash = rest.find('/');
    const std::string_view segment = rest.substr(0, slash);
    const bool last = slash == std::string_view::npos;
    if (segment == "." || segment == "..") {
      if (segment == ".." && !kept.empty()) kept.pop_back();
      if (last) kept.push_back({});
    } else {
      kept.push_back(segment);
    }
    if (last) break;
    rest.remove_prefix(slash + 1);
  }
  std::string out;
  out.reserve(path.size());
  for (std::string_view segment : kept) {
    out.push_back('/');
    out.append(segment);
  }
  if (out.empty()) out = "/";
  return out;
}

}  // namespace

bool NormalizePath(std::string_view path, const PathNormalization& options, std::string* out) {
  if (path.empty() || path[0] != '/') {
    out->assign(path);
    return true;
  }
  const size_t query = path.find('?');
  std::string_view part = path.substr(0, query);
  std::string decoded;
  if (options.normalize) {
    if (!DecodeUnreserved(part, &decoded)) return false;
    *out = RemoveDotSegments(decoded);
  } else {
    out->assign(part);
  }
  if (options.merge_slashes) {
    size_t w = 0;
    for (size_t r = 0; r < out->size(); ++r) {
      if ((*out)[r] == '/' && w > 0 && (*out)[w - 1] == '/') continue;
      (*out)[w++] = (*out)[r];
    }
    out->resize(w);
  }
  if (query != std::string_view::npos) out->append(path.substr(query));
  return true;
}

}  // namespace weft::http
