#include "data-plane/http1/http1.h"

#include <algorithm>
#include <array>
#include <cstring>

namespace weft::http1 {
namespace {

// The largest body length accepted, from Content-Length or summed chunk sizes. Peers commonly
// hold lengths in a signed 64-bit integer; a larger value would be framed differently by them.
constexpr uint64_t kMaxBodyLength = (uint64_t{1} << 63) - 1;
// Chunk extensions are legal but unused in practice; the bound keeps a size line from growing
// without limit while the scanner is stateless about its content.
constexpr size_t kMaxChunkExtensionBytes = 4096;
// 16 hex digits hold any uint64_t; more can only be leading zeros or an overflow, and peers
// disagree about both.
constexpr int kMaxChunkSizeDigits = 16;

// tchar (RFC 9110 §5.6.2): methods, header names and transfer codings.
constexpr std::array<uint8_t, 256> MakeTokenTable() {
  std::array<uint8_t, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = 1;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = 1;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = 1;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<uint8_t>(c)] = 1;
  return t;
}
constexpr std::array<uint8_t, 256> kTokenChar = MakeTokenTable();

constexpr std::array<int8_t, 256> MakeHexTable() {
  std::array<int8_t, 256> t{};
  for (size_t i = 0; i < t.size(); ++i) t[i] = -1;
  for (int c = '0'; c <= '9'; ++c) t[c] = static_cast<int8_t>(c - '0');
  for (int c = 'a'; c <= 'f'; ++c) t[c] = static_cast<int8_t>(c - 'a' + 10);
  for (int c = 'A'; c <= 'F'; ++c) t[c] = static_cast<int8_t>(c - 'A' + 10);
  return t;
}
constexpr std::array<int8_t, 256> kHexValue = MakeHexTable();

// No early exit: names and methods are short and nearly always valid, so a data-independent
// loop beats a branch per byte.
bool IsToken(const char* p, const char* e) {
  uint8_t ok = 1;
  for (; p < e; ++p) ok &= kTokenChar[static_cast<uint8_t>(*p)];
  return ok != 0;
}

// Field values and reason phrases: anything but CTLs, except HTAB (RFC 9110 §5.5).
bool IsFieldByte(uint8_t c) { return (c >= 0x20 && c != 0x7f) || c == '\t'; }

// SWAR helpers: eight bytes per step over the long parts of a head (values, targets).
constexpr uint64_t kOnes = 0x0101010101010101ULL;
constexpr uint64_t kHighs = 0x8080808080808080ULL;

uint64_t Load8(const char* p) {
  uint64_t x;
  std::memcpy(&x, p, sizeof x);
  return x;
}
// Nonzero iff some byte of x is below n (n <= 128). Exact as a yes/no answer: a borrow can only
// start at a byte that is itself below n.
constexpr uint64_t AnyByteBelow(uint64_t x, uint8_t n) { return (x - kOnes * n) & ~x & kHighs; }
constexpr uint64_t AnyByteEqual(uint64_t x, uint8_t b) { return AnyByteBelow(x ^ (kOnes * b), 1); }

bool IsFieldValue(const char* p, const char* e) {
  for (; e - p >= 8; p += 8) {
    uint64_t x = Load8(p);
    if ((AnyByteBelow(x, 0x20) | AnyByteEqual(x, 0x7f)) != 0) {
      // Usually a tab, the one allowed CTL: settle this word byte by byte.
      for (int i = 0; i < 8; ++i) {
        if (!IsFieldByte(static_cast<uint8_t>(p[i]))) return false;
      }
    }
  }
  for (; p < e; ++p) {
    if (!IsFieldByte(static_cast<uint8_t>(*p))) return false;
  }
  return true;
}

// request-target: no CTL, no SP (RFC 9112 §3.2). Bytes >= 0x80 pass; raw UTF-8 paths exist in
// the wild and cannot change framing.
bool IsTarget(const char* p, const char* e) {
  for (; e - p >= 8; p += 8) {
    uint64_t x = Load8(p);
    if ((AnyByteBelow(x, 0x21) | AnyByteEqual(x, 0x7f)) != 0) return false;
  }
  for (; p < e; ++p) {
    auto c = static_cast<uint8_t>(*p);
    if (c <= 0x20 || c == 0x7f) return false;
  }
  return true;
}

char ToLower(char c) {
  return static_cast<uint8_t>(c - 'A') < 26 ? static_cast<char>(c | 0x20) : c;
}

bool IsDigit(char c) { return static_cast<uint8_t>(c - '0') < 10; }

std::string_view TrimOws(std::string_view s) {
  size_t b = 0;
  size_t e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t')) --e;
  return s.substr(b, e - b);
}

// Calls f on each OWS-trimmed element of a comma-separated list, empty ones included; stops
// with false as soon as f returns false.
template <typename F>
bool ForEachListElement(std::string_view list, F&& f) {
  while (true) {
    size_t comma = list.find(',');
    if (!f(TrimOws(list.substr(0, comma)))) return false;
    if (comma == std::string_view::npos) return true;
    list.remove_prefix(comma + 1);
  }
}

ParseStatus Fail(ParseError* error, int status, std::string_view reason) {
  error->status = status;
  error->reason = reason;
  return ParseStatus::kError;
}

// What the headers said about framing and the connection, judged once the head is complete so
// the verdict does not depend on header order.
struct HeadFacts {
  uint64_t content_length = 0;
  bool has_content_length = false;
  bool has_transfer_encoding = false;
  bool other_coding = false;  // a transfer coding other than chunked
  bool chunked_last = false;  // the last coding listed so far is chunked
  int chunked_count = 0;
  int host_count = 0;
  bool connection_close = false;
  bool connection_keep_alive = false;
  bool connection_upgrade = false;
  bool connection_other = false;  // a token naming another header
  bool has_upgrade = false;
  bool expect_continue = false;
};

// A list is allowed only when every member is the same number (RFC 9110 §8.6). Returns an error
// reason, or an empty view.
std::string_view NoteContentLength(std::string_view value, HeadFacts* facts) {
  std::string_view reason;
  ForEachListElement(value, [&](std::string_view v) {
    if (v.empty()) {
      reason = "bad Content-Length";
      return false;
    }
    uint64_t n = 0;
    for (char c : v) {
      auto d = static_cast<uint8_t>(c - '0');
      if (d > 9) {
        reason = "bad Content-Length";
        return false;
      }
      if (n > (kMaxBodyLength - d) / 10) {
        reason = "Content-Length too large";
        return false;
      }
      n = n * 10 + d;
    }
    if (facts->has_content_length && n != facts->content_length) {
      reason = "conflicting Content-Length values";
      return false;
    }
    facts->has_content_length = true;
    facts->content_length = n;
    return true;
  });
  return reason;
}

// Codings accumulate across Transfer-Encoding headers in order (RFC 9110 §5.3).
void NoteTransferEncoding(std::string_view value, HeadFacts* facts) {
  facts->has_transfer_encoding = true;
  ForEachListElement(value, [facts](std::string_view v) {
    if (v.empty()) return true;  // empty list elements are ignored (RFC 9110 §5.6.1)
    if (EqualsIgnoreCase(v, "chunked")) {
      ++facts->chunked_count;
      facts->chunked_last = true;
    } else {
      facts->other_coding = true;
      facts->chunked_last = false;
    }
    return true;
  });
}

void NoteConnection(std::string_view value, HeadFacts* facts) {
  ForEachListElement(value, [facts](std::string_view v) {
    if (EqualsIgnoreCase(v, "close")) {
      facts->connection_close = true;
    } else if (EqualsIgnoreCase(v, "keep-alive")) {
      facts->connection_keep_alive = true;
    } else if (EqualsIgnoreCase(v, "upgrade")) {
      facts->connection_upgrade = true;
    } else if (!v.empty()) {
      facts->connection_other = true;
    }
    return true;
  });
}

// Dispatches on length first: most headers match none of these and cost one switch.
template <bool kRequest>
std::string_view NoteHeader(const Header& h, HeadFacts* facts, MessageHead* head) {
  switch (h.name.size()) {
    case 4:
      if (kRequest && EqualsIgnoreCase(h.name, "host")) {
        if (++facts->host_count > 1) return "multiple Host headers";
        head->host = h.value;
      }
      break;
    case 6:
      if (kRequest && EqualsIgnoreCase(h.name, "expect") &&
          EqualsIgnoreCase(h.value, "100-continue")) {
        facts->expect_continue = true;
      }
      break;
    case 7:
      if (EqualsIgnoreCase(h.name, "upgrade") && !h.value.empty()) facts->has_upgrade = true;
      break;
    case 10:
      if (EqualsIgnoreCase(h.name, "connection")) NoteConnection(h.value, facts);
      break;
    case 14:
      if (EqualsIgnoreCase(h.name, "content-length")) return NoteContentLength(h.value, facts);
      break;
    case 17:
      if (EqualsIgnoreCase(h.name, "transfer-encoding")) NoteTransferEncoding(h.value, facts);
      break;
    default:
      break;
  }
  return {};
}

// HTTP-version (RFC 9112 §2.3): the minor version for HTTP/1.0 and HTTP/1.1, else a failure.
ParseStatus ParseVersion(std::string_view v, MessageHead* head, ParseError* error) {
  if (v.size() == 8 && std::memcmp(v.data(), "HTTP/1.", 7) == 0 && (v[7] == '0' || v[7] == '1')) {
    head->version_minor = v[7] - '0';
    return ParseStatus::kDone;
  }
  if (v.size() == 8 && v.substr(0, 5) == "HTTP/" && IsDigit(v[5]) && v[6] == '.' && IsDigit(v[7])) {
    return Fail(error, 505, "unsupported HTTP version");
  }
  return Fail(error, 400, "bad HTTP version");
}

// Splits an absolute-form target "http://authority/path?query" (RFC 9112 §3.2.2) into its
// authority and the rest. Only http and https name resources this proxy can route; an empty
// host and userinfo are refused (RFC 9110 §4.2.1, §4.2.4), and so is any character an authority
// cannot hold, so that the authority routed on is the one the target names.
bool SplitAbsoluteTarget(std::string_view target, std::string_view* authority,
                         std::string_view* rest) {
  size_t colon = target.find("://");
  if (colon == std::string_view::npos) return false;
  std::string_view scheme = target.substr(0, colon);
  if (!EqualsIgnoreCase(scheme, "http") && !EqualsIgnoreCase(scheme, "https")) return false;
  std::string_view after = target.substr(colon + 3);
  size_t end = std::min(after.find('/'), after.find('?'));
  if (end == std::string_view::npos) end = after.size();
  *authority = after.substr(0, end);
  *rest = after.substr(end);
  if (authority->empty() || (*authority)[0] == ':') return false;
  for (char c : *authority) {
    // unreserved / pct-encoded / sub-delims / ":" / "[" "]" (RFC 3986 §3.2)
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || IsDigit(c) ||
                    std::string_view("-._~%!$&'()*+,;=:[]").find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

// method SP request-target SP HTTP-version (RFC 9112 §3). Exactly one SP each: lenient splitting
// on runs of whitespace is how two parsers come to disagree about the target. *authority is set
// for an absolute-form target.
ParseStatus ParseRequestLine(std::string_view line, MessageHead* head, ParseError* error,
                             std::string_view* authority) {
  const char* p = line.data();
  const char* e = p + line.size();
  const auto* sp1 = static_cast<const char*>(std::memchr(p, ' ', line.size()));
  if (sp1 == nullptr) return Fail(error, 400, "malformed request line");
  if (sp1 == p || !IsToken(p, sp1)) return Fail(error, 400, "bad method");
  const char* t = sp1 + 1;
  const auto* sp2 = static_cast<const char*>(std::memchr(t, ' ', e - t));
  if (sp2 == nullptr) return Fail(error, 400, "malformed request line");
  if (sp2 == t || !IsTarget(t, sp2)) return Fail(error, 400, "bad request target");
  head->method = std::string_view(p, sp1 - p);
  head->target = std::string_view(t, sp2 - t);
  if (ParseVersion(std::string_view(sp2 + 1, e - sp2 - 1), head, error) != ParseStatus::kDone) {
    return ParseStatus::kError;
  }
  // The four forms of RFC 9112 §3.2; anything else names nothing a route could match.
  const std::string_view target = head->target;
  if (target[0] == '/' || head->method == "CONNECT") {
    head->path = target;
  } else if (target == "*") {
    if (head->method != "OPTIONS") return Fail(error, 400, "bad request target");
    head->path = target;
  } else if (!SplitAbsoluteTarget(target, authority, &head->path)) {
    return Fail(error, 400, "bad request target");
  }
  return ParseStatus::kDone;
}

// HTTP-version SP 3DIGIT SP [reason] (RFC 9112 §4). The SP before an empty reason is optional:
// senders omit it often enough that refusing would only break real servers, and it cannot
// change framing.
ParseStatus ParseStatusLine(std::string_view line, MessageHead* head, ParseError* error) {
  size_t sp = line.find(' ');
  if (sp == std::string_view::npos) return Fail(error, 400, "malformed status line");
  if (ParseVersion(line.substr(0, sp), head, error) != ParseStatus::kDone) {
    return ParseStatus::kError;
  }
  std::string_view rest = line.substr(sp + 1);
  if (rest.size() < 3 || !IsDigit(rest[0]) || !IsDigit(rest[1]) || !IsDigit(rest[2]) ||
      (rest.size() > 3 && rest[3] != ' ')) {
    return Fail(error, 400, "bad status code");
  }
  int status = (rest[0] - '0') * 100 + (rest[1] - '0') * 10 + (rest[2] - '0');
  if (status < 100 || status > 599) return Fail(error, 400, "bad status code");
  head->status = status;
  if (rest.size() > 3) {
    std::string_view reason = rest.substr(4);
    if (!IsFieldValue(reason.data(), reason.data() + reason.size())) {
      return Fail(error, 400, "bad reason phrase");
    }
    head->reason = reason;
  }
  return ParseStatus::kDone;
}

void ResetHead(MessageHead* head) {
  head->method = {};
  head->target = {};
  head->path = {};
  head->status = 0;
  head->reason = {};
  head->version_minor = 1;
  head->headers.clear();  // keeps capacity: callers reuse one MessageHead per connection
  head->body = BodyKind::kNone;
  head->content_length = 0;
  head->keep_alive = true;
  head->expect_continue = false;
  head->upgrade = false;
  head->connection_options = false;
  head->host = {};
  head->head_size = 0;
}

enum class LineEnd : uint8_t { kFound, kIncomplete, kBareLF, kBareCR };

// Finds the CRLF ending the line that starts at p. Lines are only split at CR; an LF anywhere
// else is caught by the character checks of the line's parts, or here while the line is
// incomplete so a bare-LF sender gets its 400 without waiting for the size limit.
LineEnd FindLineEnd(const char* p, const char* end, const char** cr) {
  if (p == end) return LineEnd::kIncomplete;
  const auto* c = static_cast<const char*>(std::memchr(p, '\r', end - p));
  if (c == nullptr) {
    return std::memchr(p, '\n', end - p) != nullptr ? LineEnd::kBareLF : LineEnd::kIncomplete;
  }
  if (c + 1 == end) return LineEnd::kIncomplete;
  if (c[1] != '\n') return LineEnd::kBareCR;
  *cr = c;
  return LineEnd::kFound;
}

template <bool kRequest>
ParseStatus ParseHead(std::string_view data, std::string_view request_method, const Limits& limits,
                      MessageHead* head, ParseError* error) {
  ResetHead(head);
  const char* const begin = data.data();
  // Only the first max_head_bytes can belong to an acceptable head, so nothing beyond is read.
  const char* const end = begin + std::min(data.size(), limits.max_head_bytes);
  const char* p = begin;

  auto need_more = [&] {
    if (data.size() >= limits.max_head_bytes) return Fail(error, 431, "head too large");
    return ParseStatus::kIncomplete;
  };
  auto line_error = [&](LineEnd r) {
    if (r == LineEnd::kIncomplete) return need_more();
    return Fail(error, 400, r == LineEnd::kBareLF ? "bare LF" : "bare CR");
  };

  if constexpr (kRequest) {
    // RFC 9112 §2.2: empty lines before a request line are ignored, e.g. a client's stray CRLF
    // after a previous POST body.
    while (true) {
      if (p == end) return need_more();
      if (*p != '\r') break;
      if (p + 1 == end) return need_more();
      if (p[1] != '\n') return Fail(error, 400, "bare CR");
      p += 2;
    }
  }

  const char* cr = nullptr;
  LineEnd r = FindLineEnd(p, end, &cr);
  if (r != LineEnd::kFound) {
    if constexpr (kRequest) {
      // Refuse what can never become a request line (a TLS ClientHello on a plaintext port, say)
      // now instead of when the size limit is reached.
      if (r == LineEnd::kIncomplete) {
        const auto* sp = static_cast<const char*>(std::memchr(p, ' ', end - p));
        if (sp == p || !IsToken(p, sp != nullptr ? sp : end)) {
          return Fail(error, 400, "bad method");
        }
      }
    } else if (r == LineEnd::kIncomplete && p != end &&
               std::memcmp(p, "HTTP/", std::min<size_t>(end - p, 5)) != 0) {
      // Likewise a response: a peer that is not an HTTP server is told apart at once, not when
      // it closes or the route times out.
      return Fail(error, 400, "malformed status line");
    }
    return line_error(r);
  }
  std::string_view start_line(p, cr - p);
  std::string_view authority;  // of an absolute-form target
  ParseStatus s = kRequest ? ParseRequestLine(start_line, head, error, &authority)
                           : ParseStatusLine(start_line, head, error);
  if (s != ParseStatus::kDone) return s;
  p = cr + 2;

  HeadFacts facts;
  while (true) {
    r = FindLineEnd(p, end, &cr);
    if (r != LineEnd::kFound) return line_error(r);
    if (cr == p) {
      p += 2;
      break;
    }
    // A line starting with whitespace is obs-fold (or, first, whitespace after the start line);
    // RFC 9112 §5.2 lets a server refuse it, and unfolding is a known smuggling vector.
    if (*p == ' ' || *p == '\t') return Fail(error, 400, "obs-fold or leading whitespace");
    const auto* colon = static_cast<const char*>(std::memchr(p, ':', cr - p));
    if (colon == nullptr) return Fail(error, 400, "header line without colon");
    if (!IsToken(p, colon)) {
      // RFC 9112 §5.1: whitespace before the colon MUST be rejected.
      if (colon[-1] == ' ' || colon[-1] == '\t') {
        return Fail(error, 400, "whitespace before colon");
      }
      return Fail(error, 400, "bad header name");
    }
    if (colon == p) return Fail(error, 400, "empty header name");
    if (!IsFieldValue(colon + 1, cr)) return Fail(error, 400, "bad header value");
    if (head->headers.size() >= limits.max_headers) return Fail(error, 431, "too many headers");
    const Header& h = head->headers.emplace_back(Header{
        std::string_view(p, colon - p), TrimOws(std::string_view(colon + 1, cr - colon - 1))});
    std::string_view bad = NoteHeader<kRequest>(h, &facts, head);
    if (!bad.empty()) return Fail(error, 400, bad);
    p = cr + 2;
  }
  head->head_size = p - begin;

  const bool http11 = head->version_minor == 1;
  if constexpr (kRequest) {
    if (http11 && facts.host_count == 0) return Fail(error, 400, "missing Host header");
    if (!authority.empty()) head->host = authority;
  }
  bool chunked = false;
  if (facts.has_transfer_encoding) {
    // RFC 9112 §6.1 and §6.3: each of these is a message two implementations may frame
    // differently, so none is guessed at.
    if (facts.has_content_length) {
      return Fail(error, 400, "both Content-Length and Transfer-Encoding");
    }
    if (!http11) return Fail(error, 400, "Transfer-Encoding in HTTP/1.0");
    if (facts.chunked_count > 1) return Fail(error, 400, "chunked applied more than once");
    if (facts.chunked_count == 1 && !facts.chunked_last) {
      return Fail(error, 400, "chunked is not the final transfer coding");
    }
    // Responses too: the body is forwarded with only "chunked" re-added, so any other coding
    // would be silently dropped.
    if (facts.other_coding) return Fail(error, 501, "unsupported transfer coding");
    if (facts.chunked_count == 0) return Fail(error, 400, "empty Transfer-Encoding");
    chunked = true;
  }

  head->keep_alive =
      http11 ? !facts.connection_close : facts.connection_keep_alive && !facts.connection_close;
  head->connection_options = facts.connection_other;
  // RFC 9110 §7.8: Upgrade in HTTP/1.0 is ignored.
  head->upgrade = http11 && facts.connection_upgrade && facts.has_upgrade;

  if constexpr (kRequest) {
    // RFC 9110 §10.1.1: 100-continue from an HTTP/1.0 client is ignored.
    head->expect_continue = http11 && facts.expect_continue;
    if (chunked) {
      head->body = BodyKind::kChunked;
    } else if (facts.content_length > 0) {
      head->body = BodyKind::kContentLength;
      head->content_length = facts.content_length;
    }
  } else {
    const int status = head->status;
    // RFC 9112 §6.3 rules 1 and 2.
    const bool bodiless = status < 200 || status == 204 || status == 304 ||
                          request_method == "HEAD" || (request_method == "CONNECT" && status < 300);
    if (bodiless) {
      head->body = BodyKind::kNone;
    } else if (chunked) {
      head->body = BodyKind::kChunked;
    } else if (facts.has_content_length) {
      if (facts.content_length > 0) {
        head->body = BodyKind::kContentLength;
        head->content_length = facts.content_length;
      }
    } else {
      head->body = BodyKind::kUntilClose;
      head->keep_alive = false;
    }
  }
  return ParseStatus::kDone;
}

}  // namespace

bool MessageHead::Find(std::string_view name, std::string_view* value) const {
  for (const Header& h : headers) {
    if (EqualsIgnoreCase(h.name, name)) {
      if (value != nullptr) *value = h.value;
      return true;
    }
  }
  if (value != nullptr) *value = {};
  return false;
}

ParseStatus ParseRequestHead(std::string_view data, const Limits& limits, MessageHead* head,
                             ParseError* error) {
  return ParseHead<true>(data, {}, limits, head, error);
}

ParseStatus ParseResponseHead(std::string_view data, std::string_view request_method,
                              const Limits& limits, MessageHead* head, ParseError* error) {
  return ParseHead<false>(data, request_method, limits, head, error);
}

// One byte of chunk extensions, after the size's ';':
//   chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )
// ext_state_: 0 before a name, 1 in it, 2 after it, 3 before a value, 4 in a token value,
// 5 in a quoted value, 6 after a backslash in it, 7 after a value. CR ends the line where a name
// or value may end (states 1, 2, 4, 7) and is otherwise refused.
bool ChunkedScanner::ExtensionByte(uint8_t c) {
  const bool ws = c == ' ' || c == '\t';
  const bool token = kTokenChar[c] != 0;
  switch (ext_state_) {
    case 0:  // BWS, then a name
      if (ws) return true;
      if (!token) return false;
      ext_state_ = 1;
      return true;
    case 1:  // name
    case 2:  // BWS after the name
    case 4:  // token value
    case 7:  // BWS after a value
      if (token && (ext_state_ == 1 || ext_state_ == 4)) return true;
      if (ws) {
        if (ext_state_ == 1) ext_state_ = 2;
        if (ext_state_ == 4) ext_state_ = 7;
        return true;
      }
      if (c == ';') {
        ext_state_ = 0;
        return true;
      }
      if (c == '=' && (ext_state_ == 1 || ext_state_ == 2)) {
        ext_state_ = 3;
        return true;
      }
      if (c == '\r') {
        state_ = State::kSizeLF;
        return true;
      }
      return false;
    case 3:  // BWS, then a value
      if (ws) return true;
      if (c == '"') {
        ext_state_ = 5;
        return true;
      }
      if (!token) return false;
      ext_state_ = 4;
      return true;
    case 5:  // quoted-string: qdtext / quoted-pair (RFC 9110 §5.6.4)
      if (c == '"') {
        ext_state_ = 7;
        return true;
      }
      if (c == '\\') {
        ext_state_ = 6;
        return true;
      }
      return c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c != 0x7f);
    case 6:
      ext_state_ = 5;
      return c == '\t' || (c >= 0x20 && c != 0x7f);
    default:
      return false;
  }
}

ChunkedScanner::Result ChunkedScanner::Scan(std::string_view data, size_t* consumed,
                                            std::vector<std::string_view>* payload) {
  *consumed = 0;
  if (state_ == State::kDone) return Result::kDone;
  if (state_ == State::kError) return Result::kError;
  const char* const begin = data.data();
  const char* const end = begin + data.size();
  const char* p = begin;
  auto fail = [this] {
    state_ = State::kError;
    return Result::kError;
  };
  // One byte per step except inside chunk data, which is skipped whole: framing bytes are a
  // handful per chunk.
  while (p < end) {
    const auto c = static_cast<uint8_t>(*p);
    switch (state_) {
      case State::kSize: {
        const int digit = kHexValue[c];
        if (digit >= 0) {
          if (++size_digits_ > kMaxChunkSizeDigits) return fail();
          remaining_ = (remaining_ << 4) | static_cast<uint64_t>(digit);
        } else if (size_digits_ == 0) {
          return fail();
        } else if (c == ';') {
          state_ = State::kExtension;
        } else if (c == '\r') {
          state_ = State::kSizeLF;
        } else {
          // Includes whitespace after the size: RFC 9112 allows BWS only before ';', and
          // accepting it is what lets parsers disagree about where the size ends.
          return fail();
        }
        ++p;
        break;
      }
      case State::kExtension:
        // Not interpreted, but held to the grammar (RFC 9112 §7.1.1): a parser that reads
        // extensions leniently is one that can be made to end a size line elsewhere, and a
        // strict one (llhttp) refuses what a lenient proxy would pass on.
        if ((c != '\r' && ++extension_bytes_ > kMaxChunkExtensionBytes) || !ExtensionByte(c)) {
          return fail();
        }
        ++p;
        break;
      case State::kSizeLF:
        if (c != '\n') return fail();
        ++p;
        size_digits_ = 0;
        extension_bytes_ = 0;
        ext_state_ = 0;
        if (remaining_ == 0) {
          state_ = State::kTrailerStart;
        } else {
          if (remaining_ > kMaxBodyLength - payload_bytes_) return fail();
          state_ = State::kData;
        }
        break;
      case State::kData: {
        const uint64_t n = std::min<uint64_t>(remaining_, static_cast<uint64_t>(end - p));
        if (payload != nullptr && n > 0) payload->emplace_back(p, static_cast<size_t>(n));
        p += n;
        remaining_ -= n;
        payload_bytes_ += n;
        if (remaining_ == 0) state_ = State::kDataCR;
        break;
      }
      case State::kDataCR:
        if (c != '\r') return fail();
        ++p;
        state_ = State::kDataLF;
        break;
      case State::kDataLF:
        if (c != '\n') return fail();
        ++p;
        state_ = State::kSize;
        break;
      case State::kTrailerStart:
        if (c == '\r') {
          ++p;
          state_ = State::kFinalLF;
          break;
        }
        // obs-fold in trailers is refused for the same reason as in the head.
        if (c == ' ' || c == '\t') return fail();
        state_ = State::kTrailerLine;  // this byte is checked and counted there
        break;
      case State::kTrailerLine:
        // A field line like the head's: a token name, ':', then field bytes.
        if (c == '\r') {
          if (!trailer_value_) return fail();
          state_ = State::kTrailerLF;
          trailer_value_ = trailer_name_ = false;
        } else if (trailer_value_) {
          if (!IsFieldByte(c)) return fail();
        } else if (c == ':') {
          if (!trailer_name_) return fail();
          trailer_value_ = true;
        } else if (kTokenChar[c] != 0) {
          trailer_name_ = true;
        } else {
          return fail();
        }
        if (++trailer_bytes_ > max_trailer_bytes_) return fail();
        ++p;
        break;
      case State::kTrailerLF:
        if (c != '\n' || ++trailer_bytes_ > max_trailer_bytes_) return fail();
        ++p;
        state_ = State::kTrailerStart;
        break;
      case State::kFinalLF:
        if (c != '\n') return fail();
        ++p;
        state_ = State::kDone;
        *consumed = p - begin;
        return Result::kDone;
      case State::kDone:
      case State::kError:
        return fail();  // unreachable: both return before the loop
    }
  }
  *consumed = data.size();
  return Result::kMore;
}

bool IsHopByHop(std::string_view name) {
  switch (name.size()) {
    case 2:
      return EqualsIgnoreCase(name, "te");
    case 7:
      return EqualsIgnoreCase(name, "trailer") || EqualsIgnoreCase(name, "upgrade");
    case 10:
      return EqualsIgnoreCase(name, "connection") || EqualsIgnoreCase(name, "keep-alive");
    case 16:
      return EqualsIgnoreCase(name, "proxy-connection");
    case 17:
      return EqualsIgnoreCase(name, "transfer-encoding");
    default:
      return false;
  }
}

void ConnectionOptions(const MessageHead& head, std::vector<std::string_view>* out) {
  if (!head.connection_options) return;
  for (const Header& h : head.headers) {
    if (!EqualsIgnoreCase(h.name, "connection")) continue;
    ForEachListElement(h.value, [out](std::string_view v) {
      if (!v.empty()) out->push_back(v);
      return true;
    });
  }
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (ToLower(a[i]) != ToLower(b[i])) return false;
  }
  return true;
}

}  // namespace weft::http1
