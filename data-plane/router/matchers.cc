#include "data-plane/router/matchers.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/strings.h"

namespace weft::router {
namespace {

using ProtoHeaderMatcher = envoy::config::route::v3::HeaderMatcher;
using ProtoStringMatcher = envoy::type::matcher::v3::StringMatcher;

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c; }

// `lowered_needle` is already lower-case.
bool ContainsIgnoreCase(std::string_view haystack, std::string_view lowered_needle) {
  if (lowered_needle.empty()) return true;
  if (haystack.size() < lowered_needle.size()) return false;
  for (size_t i = 0; i + lowered_needle.size() <= haystack.size(); ++i) {
    size_t j = 0;
    while (j < lowered_needle.size() && Lower(haystack[i + j]) == lowered_needle[j]) ++j;
    if (j == lowered_needle.size()) return true;
  }
  return false;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decodes `in` ('+' is a space in query strings). Returns `in` itself when there is
// nothing to decode, which is the common case and needs no memory.
std::string_view DecodeQueryComponent(std::string_view in, std::string* scratch) {
  if (in.find_first_of("%+") == std::string_view::npos) return in;
  scratch->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '+') {
      scratch->push_back(' ');
    } else if (c == '%' && i + 2 < in.size() && HexValue(in[i + 1]) >= 0 &&
               HexValue(in[i + 2]) >= 0) {
      scratch->push_back(static_cast<char>(HexValue(in[i + 1]) * 16 + HexValue(in[i + 2])));
      i += 2;
    } else {
      // A malformed escape is kept literally, as Envoy does.
      scratch->push_back(c);
    }
  }
  return *scratch;
}

}  // namespace

std::string AsciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = Lower(c);
  return out;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != Lower(b[i])) return false;
  }
  return true;
}

bool StartsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && EqualsIgnoreCase(s.substr(0, prefix.size()), prefix);
}

bool EndsWithIgnoreCase(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && EqualsIgnoreCase(s.substr(s.size() - suffix.size()), suffix);
}

std::shared_ptr<const RE2> CompileRegex(const envoy::type::matcher::v3::RegexMatcher& m,
                                        ValidationErrors* errors) {
  if (m.regex().empty()) {
    errors->AddAt("regex", "must not be empty");
    return nullptr;
  }
  RE2::Options options;
  options.set_log_errors(false);  // the error goes into the NACK, not to stderr
  auto re = std::make_shared<const RE2>(m.regex(), options);
  if (!re->ok()) {
    errors->AddAt("regex", absl::StrCat("invalid regex \"", m.regex(), "\": ", re->error()));
    return nullptr;
  }
  return re;
}

// ---------------------------------------------------------------------------------------------
// StringMatcher

StringMatcher::StringMatcher(Kind kind, std::string pattern, bool ignore_case,
                             std::shared_ptr<const RE2> regex)
    : kind_(kind),
      pattern_(ignore_case ? AsciiLower(pattern) : std::move(pattern)),
      ignore_case_(ignore_case),
      regex_(std::move(regex)) {}

std::optional<StringMatcher> StringMatcher::Compile(const ProtoStringMatcher& m,
                                                    ValidationErrors* errors) {
  switch (m.match_pattern_case()) {
    case ProtoStringMatcher::kExact:
      return StringMatcher(Kind::kExact, m.exact(), m.ignore_case());
    case ProtoStringMatcher::kPrefix:
      return StringMatcher(Kind::kPrefix, m.prefix(), m.ignore_case());
    case ProtoStringMatcher::kSuffix:
      return StringMatcher(Kind::kSuffix, m.suffix(), m.ignore_case());
    case ProtoStringMatcher::kContains:
      return StringMatcher(Kind::kContains, m.contains(), m.ignore_case());
    case ProtoStringMatcher::kSafeRegex: {
      ValidationErrors::Scope s(errors, "safe_regex");
      auto re = CompileRegex(m.safe_regex(), errors);
      if (re == nullptr) return std::nullopt;
      // Envoy ignores ignore_case for regexes; (?i) in the pattern is the way to get it.
      return StringMatcher(Kind::kRegex, "", false, std::move(re));
    }
    case ProtoStringMatcher::MATCH_PATTERN_NOT_SET:
      break;
  }
  errors->Add("one of exact, prefix, suffix, safe_regex or contains must be set");
  return std::nullopt;
}

bool StringMatcher::Match(std::string_view value) const {
  switch (kind_) {
    case Kind::kExact:
      return ignore_case_ ? EqualsIgnoreCase(value, pattern_) : value == pattern_;
    case Kind::kPrefix:
      return ignore_case_ ? StartsWithIgnoreCase(value, pattern_) : value.starts_with(pattern_);
    case Kind::kSuffix:
      return ignore_case_ ? EndsWithIgnoreCase(value, pattern_) : value.ends_with(pattern_);
    case Kind::kContains:
      return ignore_case_ ? ContainsIgnoreCase(value, pattern_)
                          : value.find(pattern_) != std::string_view::npos;
    case Kind::kRegex:
      return regex_ != nullptr && RE2::FullMatch(value, *regex_);
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// HeaderMatcher

std::optional<HeaderMatcher> HeaderMatcher::Compile(const ProtoHeaderMatcher& m,
                                                    ValidationErrors* errors) {
  HeaderMatcher h;
  if (m.name().empty()) {
    errors->AddAt("name", "must not be empty");
    return std::nullopt;
  }
  h.name_ = AsciiLower(m.name());
  h.invert_ = m.invert_match();
  h.missing_as_empty_ = m.treat_missing_header_as_empty();
  using Str = StringMatcher::Kind;
  switch (m.header_match_specifier_case()) {
    case ProtoHeaderMatcher::kExactMatch:
      // Legacy quirk kept for compatibility: an empty exact_match accepts any value.
      if (m.exact_match().empty()) {
        h.kind_ = Kind::kAnyValue;
      } else {
        h.kind_ = Kind::kString;
        h.string_.emplace(Str::kExact, m.exact_match(), false);
      }
      break;
    case ProtoHeaderMatcher::kPrefixMatch:
      h.kind_ = Kind::kString;
      h.string_.emplace(Str::kPrefix, m.prefix_match(), false);
      break;
    case ProtoHeaderMatcher::kSuffixMatch:
      h.kind_ = Kind::kString;
      h.string_.emplace(Str::kSuffix, m.suffix_match(), false);
      break;
    case ProtoHeaderMatcher::kContainsMatch:
      h.kind_ = Kind::kString;
      h.string_.emplace(Str::kContains, m.contains_match(), false);
      break;
    case ProtoHeaderMatcher::kSafeRegexMatch: {
      ValidationErrors::Scope s(errors, "safe_regex_match");
      auto re = CompileRegex(m.safe_regex_match(), errors);
      if (re == nullptr) return std::nullopt;
      h.kind_ = Kind::kString;
      h.string_.emplace(Str::kRegex, "", false, std::move(re));
      break;
    }
    case ProtoHeaderMatcher::kStringMatch: {
      ValidationErrors::Scope s(errors, "string_match");
      h.string_ = StringMatcher::Compile(m.string_match(), errors);
      if (!h.string_) return std::nullopt;
      h.kind_ = Kind::kString;
      break;
    }
    case ProtoHeaderMatcher::kRangeMatch:
      if (m.range_match().start() >= m.range_match().end()) {
        errors->AddAt("range_match", "start must be less than end");
        return std::nullopt;
      }
      h.kind_ = Kind::kRange;
      h.range_start_ = m.range_match().start();
      h.range_end_ = m.range_match().end();
      break;
    case ProtoHeaderMatcher::kPresentMatch:
      h.kind_ = Kind::kPresent;
      h.present_ = m.present_match();
      break;
    case ProtoHeaderMatcher::HEADER_MATCH_SPECIFIER_NOT_SET:
      // Envoy: no specifier means "the header is present".
      h.kind_ = Kind::kPresent;
      h.present_ = true;
      break;
  }
  return h;
}

bool HeaderMatcher::Match(const HeaderLookup* headers) const {
  std::optional<std::string_view> value;
  if (headers != nullptr) value = headers->Get(name_);
  if (!value.has_value()) {
    if (!missing_as_empty_) {
      // Envoy's rule for an absent header: only a presence check can succeed.
      return kind_ == Kind::kPresent && (invert_ ? present_ : !present_);
    }
    value = std::string_view();
  }
  bool match = false;
  switch (kind_) {
    case Kind::kPresent:
      match = present_;
      break;
    case Kind::kAnyValue:
      match = true;
      break;
    case Kind::kRange: {
      int64_t v = 0;
      match = absl::SimpleAtoi(Sv(*value), &v) && v >= range_start_ && v < range_end_;
      break;
    }
    case Kind::kString:
      match = string_->Match(*value);
      break;
  }
  return match != invert_;
}

// ---------------------------------------------------------------------------------------------
// Query parameters

std::optional<std::string_view> FindQueryParameter(std::string_view query, std::string_view name,
                                                   std::string* scratch) {
  std::string name_scratch;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    std::string_view key = pair.substr(0, eq);
    if (DecodeQueryComponent(key, &name_scratch) != name) continue;
    if (eq == std::string_view::npos) return std::string_view();
    return DecodeQueryComponent(pair.substr(eq + 1), scratch);
  }
  return std::nullopt;
}

std::optional<QueryParameterMatcher> QueryParameterMatcher::Compile(
    const envoy::config::route::v3::QueryParameterMatcher& m, ValidationErrors* errors) {
  if (m.name().empty()) {
    errors->AddAt("name", "must not be empty");
    return std::nullopt;
  }
  QueryParameterMatcher q;
  q.name_ = m.name();
  if (m.has_string_match()) {
    ValidationErrors::Scope s(errors, "string_match");
    q.string_ = StringMatcher::Compile(m.string_match(), errors);
    if (!q.string_) return std::nullopt;
  }
  return q;
}

bool QueryParameterMatcher::Match(std::string_view query) const {
  std::string scratch;  // only used (and only allocates) for long values that need decoding
  std::optional<std::string_view> value = FindQueryParameter(query, name_, &scratch);
  if (!value.has_value()) return false;
  if (!string_.has_value()) return true;  // present_match, or nothing set (Envoy: presence)
  return string_->Match(*value);
}

}  // namespace weft::router
