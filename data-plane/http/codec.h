// HTTP codecs: bytes of a connection in, per-stream callbacks out, and back. The connection
// manager and the router only see these interfaces, so an HTTP/2 codec (many streams on one
// connection) plugs in beside the HTTP/1 one (data-plane/http/http1/) without touching them.
// In the spirit of Envoy's envoy/http/codec.h: a server codec's Dispatch() turns bytes into
// NewStream + DecodeHeaders / DecodeData / DecodeTrailers on a RequestDecoder and encodes the
// responses given to its ResponseEncoder; a client codec opens streams on an upstream
// connection (NewStream) and decodes the responses.
//
// Header maps handed to a decoder stay valid until that stream ends (completes or resets).
// Decoded data are views into the connection's read buffer, valid during the call only: a
// receiver that keeps bytes copies them.
//
// Threading: a codec belongs to its connection's worker.
#pragma once

#include <cstdint>
#include <string_view>

#include "data-plane/http/header_map.h"
#include "data-plane/net/socket.h"

namespace weft::http {

enum class Protocol : uint8_t { kHttp10, kHttp11, kHttp2 };
std::string_view ProtocolName(Protocol protocol);  // "HTTP/1.1"

enum class StreamResetReason : uint8_t {
  kConnectionFailure,      // the upstream connection could not be established
  kConnectionTermination,  // the connection closed under the stream
  kLocalReset,             // this side gave up (timeout, downstream gone)
  kRemoteReset,            // the peer reset the stream
  kProtocolError,          // the peer's bytes could not be parsed
};

struct DispatchResult {
  bool ok = true;
  // When !ok: the status a server answers (400, 431, 501, 505; 408 is the manager's), and why.
  int status = 400;
  std::string_view reason;
  static DispatchResult Error(int status, std::string_view reason) {
    return {false, status, reason};
  }
};

// --- Server side -----------------------------------------------------------------------------

class ResponseEncoder {
 public:
  virtual ~ResponseEncoder() = default;
  virtual void Encode100Continue() = 0;
  // Framing follows from the map: its content-length, else end_stream (an empty body), else
  // chunked (HTTP/1.1) or until close (HTTP/1.0).
  virtual void EncodeHeaders(const ResponseHeaderMap& headers, bool end_stream) = 0;
  virtual void EncodeData(std::string_view data, bool end_stream) = 0;
  virtual void EncodeTrailers(const TrailerMap& trailers) = 0;
  virtual Protocol protocol() const = 0;
};

class RequestDecoder {
 public:
  virtual ~RequestDecoder() = default;
  virtual void DecodeHeaders(RequestHeaderMap& headers, bool end_stream) = 0;
  virtual void DecodeData(std::string_view data, bool end_stream) = 0;
  virtual void DecodeTrailers(TrailerMap& trailers) = 0;
  // The stream cannot go on (the client went away or reset it).
  virtual void OnResetStream(StreamResetReason reason) = 0;
};

class ServerCodecCallbacks {
 public:
  virtual ~ServerCodecCallbacks() = default;
  // A new request starts; before its headers are complete (a head that fails to parse still
  // has a stream to answer on).
  virtual RequestDecoder& NewStream(ResponseEncoder& encoder) = 0;
};

class ServerCodec {
 public:
  virtual ~ServerCodec() = default;
  // Consumes what it parsed from `data`. A parse error is returned once; the manager answers it
  // on the stream that is open (if its response has not started) and closes the connection.
  virtual DispatchResult Dispatch(net::Buffer& data, bool end_stream) = 0;
  virtual Protocol protocol() const = 0;
  // Bytes of a request head have arrived and its end has not (for request_headers_timeout).
  virtual bool partial_head() const = 0;
  // No further request on this connection: the next response says so (HTTP/1 "connection:
  // close"; HTTP/2 GOAWAY).
  virtual void CloseAfterResponse() = 0;
  // After a stream ended: whether the connection must close (the request or response said so,
  // a body was left unread, CloseAfterResponse).
  virtual bool wants_close() const = 0;
  // The stream's response is complete and the codec may parse the next request (HTTP/1 parses
  // one at a time; HTTP/2 ignores it).
  virtual void OnStreamComplete() = 0;
  // Opens a stream (NewStream) to answer a request whose head never completed (the manager's
  // 408 for request_headers_timeout); no request follows on the connection.
  virtual void OpenStreamForError() = 0;
};

// --- Client side -----------------------------------------------------------------------------

class RequestEncoder {
 public:
  virtual ~RequestEncoder() = default;
  virtual void EncodeHeaders(const RequestHeaderMap& headers, bool end_stream) = 0;
  virtual void EncodeData(std::string_view data, bool end_stream) = 0;
  virtual void EncodeTrailers(const TrailerMap& trailers) = 0;
};

class ResponseDecoder {
 public:
  virtual ~ResponseDecoder() = default;
  // 1xx other than an accepted 101 are dropped by the codec.
  virtual void DecodeHeaders(ResponseHeaderMap& headers, bool end_stream) = 0;
  virtual void DecodeData(std::string_view data, bool end_stream) = 0;
  virtual void DecodeTrailers(TrailerMap& trailers) = 0;
  // `detail` says why, for logs ("connection reset by peer", "bad status line").
  virtual void OnResetStream(StreamResetReason reason, std::string_view detail) = 0;
};

class ClientCodec {
 public:
  virtual ~ClientCodec() = default;
  virtual RequestEncoder& NewStream(ResponseDecoder& decoder) = 0;
  // Parse errors reset the stream (kProtocolError); the result says whether the connection is
  // still usable.
  virtual DispatchResult Dispatch(net::Buffer& data, bool end_stream) = 0;
  // The connection closed: an open stream is reset with kConnectionTermination.
  virtual void OnConnectionClosed(std::string_view detail) = 0;
  // No stream open and the connection may carry another request.
  virtual bool idle_and_reusable() const = 0;
  // Any byte of the current stream's request has been written.
  virtual bool request_started() const = 0;
  // Drops the current stream without resetting it (the caller abandons it; the connection must
  // not be reused).
  virtual void AbandonStream() = 0;
};

}  // namespace weft::http
