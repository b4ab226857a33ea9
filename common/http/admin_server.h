// A small HTTP/1.1 server for admin and debug endpoints (/metrics, /config_dump, ...): low
// traffic, usually on loopback. One thread runs a poll() loop over non-blocking sockets, so an
// idle or slow client costs a file descriptor and never holds up the others; each connection
// has a deadline to finish sending its request and an idle deadline between keep-alive
// requests.
//
// Handlers run on the server thread, one at a time, so they must be quick (render a snapshot,
// flip a flag) and must not block on anything that could wait for the admin server itself.
// Whatever state a handler reads must be safe to read from that thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace weft::http {

struct Request {
  std::string method;        // "GET", "HEAD" or "POST"
  std::string path;          // percent-decoded, without the query string
  std::string query_string;  // raw, without '?'
  // Decoded query parameters ('+' is a space); for a repeated key the first value wins.
  std::map<std::string, std::string> query;
  std::vector<std::pair<std::string, std::string>> headers;  // in arrival order, names as sent
  std::string body;

  // The first header called `name` (case-insensitive), or "" if there is none.
  std::string_view Header(std::string_view name) const;
  // query[key] if present, else `fallback`.
  std::string_view Query(std::string_view key, std::string_view fallback = "") const;
};

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  // Extra headers. Content-Length and Transfer-Encoding are the server's business and are
  // dropped; "Connection: close" makes the server close the connection after this response.
  std::vector<std::pair<std::string, std::string>> headers;
};

using Handler = std::function<Response(const Request&)>;

// One admin endpoint. Every route states whether it changes state, and that decides the methods
// it answers: a read-only route answers GET and HEAD, a mutating one only POST. A link, an
// <img> or <script> tag, a prefetch or a crawler all send GET, so none of them can drain a proxy
// or change its log level. Anything else gets 405 with the route's `Allow` header.
// There is no default: a route built without a kind (zero) is refused by Start.
struct Route {
  enum Kind {
    kReadOnly = 1,  // GET, HEAD
    kMutating = 2,  // POST
  };
  Kind kind;
  std::string path;  // matched exactly
  Handler handler;
};

struct AdminServerOptions {
  // Time a client has to send one whole request (headers and body) once it has started, and
  // to accept each chunk of a response. Bounds what a slow or stalled client can hold.
  std::chrono::milliseconds request_timeout{10'000};
  // A keep-alive connection with no request in progress is closed after this long.
  std::chrono::milliseconds idle_timeout{60'000};
  // Further connections wait in the listen backlog until one closes.
  int max_connections = 64;
};

class AdminServer {
 public:
  static constexpr size_t kMaxHeaderBytes = 8 * 1024;   // request line + headers, else 431
  static constexpr size_t kMaxBodyBytes = 1024 * 1024;  // else 413

  // Binds `address` ("127.0.0.1:0", "[::1]:0", "0.0.0.0:9901"; port 0 picks a free port) and
  // starts serving. A HEAD gets the GET response without its body; a method the route does not
  // take gets 405, an unknown path 404 with the list of routes.
  static absl::StatusOr<std::unique_ptr<AdminServer>> Start(std::string_view address,
                                                            std::vector<Route> routes,
                                                            AdminServerOptions options = {});

  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;
  // Stops the thread and closes every socket; a handler already running finishes first.
  ~AdminServer();

  uint16_t port() const { return port_; }

 private:
  class Loop;
  AdminServer() = default;

  uint16_t port_ = 0;
  std::unique_ptr<Loop> loop_;
};

// POST /logging?level=debug|info|warning|error|off sets the process's log level (Envoy's
// endpoint name); without `level` it only reports the current one. Both programs serve it.
Route LogLevelRoute();

// The admin server's request framing and parsing, exposed for its fuzz target
// (fuzz/targets/admin_request_fuzz.cc). Strict like the proxy's: no obs-fold, no whitespace
// before a colon, no Transfer-Encoding (411, or 400 together with Content-Length), one
// Content-Length value, only HTTP/1.0 and 1.1.
enum class ParseOutcome {
  kIncomplete,      // the head has not ended yet and is within kMaxHeaderBytes
  kBodyIncomplete,  // the head is parsed (keep_alive, http10, expect_continue set), body pending
  kDone,            // `request` is filled; `consumed` bytes belong to it
  kError,           // answer error_status with error_message and close
};
struct ParsedRequest {
  Request request;
  size_t consumed = 0;
  bool keep_alive = true;
  bool http10 = false;
  bool expect_continue = false;
  int error_status = 0;
  std::string error_message;
};
// Parses one request at the start of `in`; blank lines before it must already be skipped.
ParseOutcome ParseRequest(std::string_view in, ParsedRequest* out);

// Splits "host:port" or "[v6-address]:port" (brackets removed from the returned host). The host
// must be non-empty; an unbracketed IPv6 address is rejected as ambiguous. Port 0 is allowed.
absl::StatusOr<std::pair<std::string, uint16_t>> ParseHostPort(std::string_view address);

// Percent-decodes `in`; with `plus_as_space`, '+' becomes ' ' (query strings). A malformed
// escape such as "%zz" is kept as written rather than rejected.
std::string PercentDecode(std::string_view in, bool plus_as_space);

// Parses "a=1&b=x%20y" into decoded key/value pairs; the first value of a repeated key wins.
std::map<std::string, std::string> ParseQueryString(std::string_view query);

}  // namespace weft::http
