// HTTP/1.1 message framing for the proxy: a zero-copy head parser and a chunked-body scanner.
//
// The proxy forwards bodies as they arrive (never buffering a whole body), so it only needs to
// know where each message ends: a head parsed into views over the read buffer, then a body of
// known length, chunked (scanned, forwarded verbatim), or delimited by connection close.
//
// Parsing is strict on purpose: anything two implementations could frame differently is the raw
// material of request smuggling, so it is refused rather than guessed (RFC 9112 §6.3, §11.2):
// Content-Length together with Transfer-Encoding, differing Content-Length values, a transfer
// coding other than a final "chunked", whitespace before the colon, obs-fold, bare LF, control
// characters in values, an HTTP/1.1 request without Host.
//
// Pure functions and small state machines: no allocation beyond the header vector, no I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace weft::http1 {

struct Header {
  std::string_view name;   // as received (case preserved); compare case-insensitively
  std::string_view value;  // leading/trailing spaces and tabs trimmed
};

enum class BodyKind : uint8_t {
  kNone,           // no body (e.g. GET without length, 204/304, response to HEAD)
  kContentLength,  // exactly content_length bytes
  kChunked,        // Transfer-Encoding: chunked; use ChunkedScanner
  kUntilClose,     // responses only: the body ends when the connection closes
};

struct MessageHead {
  // Requests.
  std::string_view method;
  std::string_view target;  // request-target as sent (origin-form "/path?q" or absolute-form)
  // The target's path and query, what routing sees and the upstream is sent (origin-form): the
  // target itself, except for an absolute-form target ("http://host/p?q", RFC 9112 §3.2.2),
  // whose part after the authority it is. That part may be empty or start with '?': its path
  // is then "/" (RFC 9110 §4.2.3). "*" for OPTIONS *, the authority for CONNECT.
  std::string_view path;
  // Responses.
  int status = 0;
  std::string_view reason;

  int version_minor = 1;  // HTTP/1.<minor>; only 0 and 1 are accepted
  std::vector<Header> headers;

  // Derived from the headers.
  BodyKind body = BodyKind::kNone;
  uint64_t content_length = 0;  // when body == kContentLength
  // Whether the connection may carry another message after this one: HTTP/1.1 unless
  // "Connection: close"; HTTP/1.0 only with "Connection: keep-alive".
  bool keep_alive = true;
  bool expect_continue = false;  // request had "Expect: 100-continue"
  bool upgrade = false;          // "Connection: upgrade" with an Upgrade header
  // Connection names headers other than Keep-Alive and Upgrade: see ConnectionOptions.
  bool connection_options = false;
  // Requests: the Host header value (empty when absent), or the authority of an absolute-form
  // target, which replaces it (RFC 9112 §3.2.2).
  std::string_view host;
  size_t head_size = 0;  // bytes of the head, including the final CRLFCRLF

  // Case-insensitive lookup of the first header named `name`; empty view and false if absent.
  bool Find(std::string_view name, std::string_view* value) const;
};

enum class ParseStatus : uint8_t {
  kIncomplete,  // need more bytes (and the head is still within the size limit)
  kDone,        // *head is filled; head->head_size bytes were consumed
  kError,       // *error is filled; the connection must answer error->status and close
};

struct ParseError {
  int status = 400;         // 400, 431 (head too large), 501 (unknown transfer coding), 505
  std::string_view reason;  // static text for logs and the error body, e.g. "bad header name"
};

struct Limits {
  size_t max_head_bytes = 60 * 1024;  // Envoy's default max_request_headers_kb is 60
  size_t max_headers = 100;           // Envoy's default max_headers_count
};

// Parses a request head at the start of `data`. Leading empty lines (CRLF) before the request
// line are skipped, as RFC 9112 §2.2 allows; they count towards head_size. Views in *head point
// into `data`.
ParseStatus ParseRequestHead(std::string_view data, const Limits& limits, MessageHead* head,
                             ParseError* error);

// Parses a response head. `request_method` decides bodiless responses (HEAD, and 2xx to
// CONNECT); 1xx, 204 and 304 never have a body. Without Content-Length or chunked the body runs
// until close. 1xx responses (e.g. 100 Continue) parse as complete heads with no body: the
// caller forwards them and parses again for the final response.
ParseStatus ParseResponseHead(std::string_view data, std::string_view request_method,
                              const Limits& limits, MessageHead* head, ParseError* error);

// Follows chunked framing across any number of Scan calls so the bytes can be forwarded
// verbatim. Strict: hex sizes without sign or overflow, CRLF after every chunk, extensions
// allowed when they follow RFC 9112's grammar (";" name ["=" token / quoted-string], BWS
// around), bounded; trailers allowed as "name: value" lines (bounded by max_trailer_bytes).
class ChunkedScanner {
 public:
  enum class Result : uint8_t { kMore, kDone, kError };

  explicit ChunkedScanner(size_t max_trailer_bytes = 60 * 1024)
      : max_trailer_bytes_(max_trailer_bytes) {}

  // Consumes a prefix of `data`; *consumed is how many bytes belong to the body (all of `data`
  // for kMore). kDone: the body (with trailers and final CRLF) ended after *consumed bytes; the
  // rest belongs to the next message. kError: malformed; *consumed is unspecified.
  // `payload` (may be null) receives the chunk data within `data`, in order (a codec that
  // re-frames the body forwards those; trailers are checked and dropped).
  Result Scan(std::string_view data, size_t* consumed,
              std::vector<std::string_view>* payload = nullptr);

  // Payload bytes seen so far (sum of chunk sizes), for stats and limits.
  uint64_t payload_bytes() const { return payload_bytes_; }
  void Reset() { *this = ChunkedScanner(max_trailer_bytes_); }

 private:
  bool ExtensionByte(uint8_t c);

  enum class State : uint8_t {
    kSize,          // reading hex digits of a chunk size
    kExtension,     // after ';' up to CR
    kSizeLF,        // expecting LF after the size line's CR
    kData,          // inside chunk data
    kDataCR,        // expecting CR after data
    kDataLF,        // expecting LF after data
    kTrailerStart,  // at the start of a trailer line (or the final CRLF)
    kTrailerLine,   // inside a trailer line
    kTrailerLF,     // expecting LF ending a trailer line
    kFinalLF,       // expecting LF of the final CRLF
    kDone,
    kError,  // sticky: a malformed body cannot be resynchronized
  };
  State state_ = State::kSize;
  uint64_t remaining_ = 0;  // kData: bytes left in this chunk; kSize: the size so far
  int size_digits_ = 0;
  size_t extension_bytes_ = 0;
  // Where kExtension is within one extension (see ChunkedScanner::Scan).
  uint8_t ext_state_ = 0;
  size_t trailer_bytes_ = 0;
  bool trailer_value_ = false;  // kTrailerLine: past the line's ':'
  bool trailer_name_ = false;   // kTrailerLine: the name has at least one byte
  size_t max_trailer_bytes_;
  uint64_t payload_bytes_ = 0;
};

// True for hop-by-hop headers a proxy must not forward (RFC 9110 §7.6.1): Connection,
// Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade. Transfer-Encoding is
// listed, but a proxy forwarding a chunked body verbatim re-adds "Transfer-Encoding: chunked".
bool IsHopByHop(std::string_view name);

// Appends to *out the header names that `head`'s Connection headers list (views into their
// values). They are hop-by-hop for this connection only (RFC 9110 §7.6.1): a proxy removes them
// along with those IsHopByHop names.
void ConnectionOptions(const MessageHead& head, std::vector<std::string_view>* out);

// Case-insensitive ASCII comparison for header names and tokens.
bool EqualsIgnoreCase(std::string_view a, std::string_view b);

}  // namespace weft::http1
