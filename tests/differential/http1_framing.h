// Where weft-proxy's HTTP/1 parser says each message of a byte stream ends: the head parser and
// the chunked scanner applied one message after another, as a connection does. Shared by the
// differential framing test (tests/differential) and the HTTP/1 fuzz targets (fuzz/).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace weft::http1 {

struct Framing {
  enum class End : uint8_t {
    kIncomplete,  // the stream ended inside a message (or between messages: no bytes left)
    kRefused,     // the parser refused the message after `ends`
    kTunnel,      // an upgrade or CONNECT (its head is the last end): the rest may not be HTTP
    kUntilClose,  // responses only: the last body runs to the end of the stream
    kClosed,      // the last message ends the connection (Connection: close, HTTP/1.0)
  };
  std::vector<size_t> ends;  // offset just past each complete message
  End end = End::kIncomplete;
  int refusal_status = 0;  // with kRefused: the status the proxy answers
  std::string reason;      // with kRefused: the parser's reason

  // One line of JSON: {"ends":[..],"end":"refused","status":400}.
  std::string ToJson() const;
};

// Frames requests from the start of `data`.
Framing FrameRequests(std::string_view data);
// Frames responses, each answering a request with `request_method`.
Framing FrameResponses(std::string_view data, std::string_view request_method);

}  // namespace weft::http1
