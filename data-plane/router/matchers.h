// Compiled forms of the xDS string, header and query-parameter matchers. Compiled once when a
// route table is built (regexes, lower-cased names and patterns) so that matching a request does
// no allocation and no parsing of configuration. Semantics follow Envoy's
// (source/common/http/header_utility.cc, source/common/router/config_utility.cc) so a config
// routes the same way through weft-proxy as through Envoy.
//
// Thread safety: every class here is immutable after Compile(); Match() may be called from any
// number of threads at once (RE2 matching is thread-safe).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/validation.h"
#include "envoy/config/route/v3/route_components.pb.h"
#include "envoy/type/matcher/v3/regex.pb.h"
#include "envoy/type/matcher/v3/string.pb.h"
#include "re2/re2.h"

namespace weft::router {

// Read access to a request's headers, implemented by the HTTP layer over its own header map.
class HeaderLookup {
 public:
  virtual ~HeaderLookup() = default;
  // The value of header `lowercase_name`, or nullopt when absent. A header that occurs several
  // times must be presented as its values joined with ',' — that is what Envoy's header matchers
  // see, so configs written for Envoy behave the same.
  virtual std::optional<std::string_view> Get(std::string_view lowercase_name) const = 0;
};

// ASCII-only case folding: header names, host names and the matchers' ignore_case are defined
// over ASCII, and avoiding locale-dependent tolower keeps matching allocation- and lock-free.
std::string AsciiLower(std::string_view s);
bool EqualsIgnoreCase(std::string_view a, std::string_view b);
bool StartsWithIgnoreCase(std::string_view s, std::string_view prefix);
bool EndsWithIgnoreCase(std::string_view s, std::string_view suffix);

// Compiles an RE2 with Envoy's options (no logging of bad patterns to stderr). On failure records
// "regex: invalid regex ..." under the current scope of `errors` and returns nullptr.
std::shared_ptr<const RE2> CompileRegex(const envoy::type::matcher::v3::RegexMatcher& m,
                                        ValidationErrors* errors);

// envoy.type.matcher.v3.StringMatcher.
class StringMatcher {
 public:
  // Records problems (with field paths) under the current scope of `errors`.
  static std::optional<StringMatcher> Compile(const envoy::type::matcher::v3::StringMatcher& m,
                                              ValidationErrors* errors);
  enum class Kind { kExact, kPrefix, kSuffix, kContains, kRegex };
  StringMatcher(Kind kind, std::string pattern, bool ignore_case,
                std::shared_ptr<const RE2> regex = nullptr);

  bool Match(std::string_view value) const;

 private:
  Kind kind_;
  std::string pattern_;  // lower-cased when ignore_case_
  bool ignore_case_;
  std::shared_ptr<const RE2> regex_;  // shared: matchers are copied while building a table
};

// envoy.config.route.v3.HeaderMatcher, including the legacy *_match fields, invert_match and
// treat_missing_header_as_empty.
class HeaderMatcher {
 public:
  static std::optional<HeaderMatcher> Compile(const envoy::config::route::v3::HeaderMatcher& m,
                                              ValidationErrors* errors);
  // `headers` may be null (no headers at all).
  bool Match(const HeaderLookup* headers) const;
  const std::string& name() const { return name_; }

 private:
  enum class Kind { kPresent, kAnyValue, kRange, kString };
  HeaderMatcher() = default;
  std::string name_;  // lower-case
  Kind kind_ = Kind::kPresent;
  bool present_ = true;
  int64_t range_start_ = 0;
  int64_t range_end_ = 0;
  std::optional<StringMatcher> string_;
  bool invert_ = false;
  bool missing_as_empty_ = false;
};

// envoy.config.route.v3.QueryParameterMatcher: looks at the first occurrence of the parameter
// (as Envoy does), with names and values percent-decoded and '+' read as a space.
class QueryParameterMatcher {
 public:
  static std::optional<QueryParameterMatcher> Compile(
      const envoy::config::route::v3::QueryParameterMatcher& m, ValidationErrors* errors);
  // `query` is the part of the path after '?', without the '?'.
  bool Match(std::string_view query) const;

 private:
  QueryParameterMatcher() = default;
  std::string name_;
  std::optional<StringMatcher> string_;  // unset: presence is enough
};

// The value of the first query parameter called `name` (decoded), or nullopt. `scratch` holds
// the decoded text when decoding was needed. Used by query matchers and hash policies.
std::optional<std::string_view> FindQueryParameter(std::string_view query, std::string_view name,
                                                   std::string* scratch);

}  // namespace weft::router
