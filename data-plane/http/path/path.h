// Request path normalisation, as an HTTP connection manager's `normalize_path` and
// `merge_slashes` ask for it (Envoy's semantics). It runs before routing, so every matcher, every
// rewrite and the upstream see one canonical path: a rule on /admin also holds for
// /public/../admin, /%61dmin or //admin when the listener asks for normalisation.
#pragma once

#include <string>
#include <string_view>

namespace weft::http {

struct PathNormalization {
  // RFC 3986 §6.2.2: percent-encoded unreserved characters decoded, other escapes upper-cased
  // (§6.2.2.1, §6.2.2.2), then dot segments removed (§5.2.4, §6.2.2.3). No case folding.
  bool normalize = false;
  // Runs of '/' collapsed into one.
  bool merge_slashes = false;
  bool any() const { return normalize || merge_slashes; }
};

// Normalises the path part of an origin-form `path` ("/a/../b?q": the query is left as it is)
// into *out. A path that does not start with '/' ("*") is copied unchanged. False when the
// path cannot be normalised (a malformed percent escape): the request must be refused.
bool NormalizePath(std::string_view path, const PathNormalization& options, std::string* out);

}  // namespace weft::http
