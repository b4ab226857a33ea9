// What a connection's bytes travel over: plain TCP now, TLS later (data-plane/tls wraps its
// engine, which works on memory BIOs, in a TransportSocket of its own). The connection
// (connection.h) owns one and never touches its fd for data directly, so flow control,
// watermarks and half-close are written once for every transport.
//
// Contract for an implementation:
//  - DoRead moves at most one batch of plaintext into `buffer` (one read(2) for plain TCP; for
//    TLS, ciphertext read from the fd and decrypted). When it keeps plaintext of its own beyond
//    what it returned (TLS records), it calls callbacks.SetReadable() so the connection reads
//    again without waiting for the next readiness edge.
//  - DoWrite takes plaintext from `buffer` and hands the bytes for the wire to
//    callbacks.loop().Write(fd, ...) (so sends stay batched through io_uring). What it could not
//    take stays in `buffer`; the connection retries on EPOLLOUT.
//  - A handshake (TLS) runs inside DoRead / DoWrite / OnConnected; ready() says when it is done,
//    and the transport calls callbacks.OnHandshakeComplete() once (the connection then raises
//    kConnected to its owner). Plain TCP is ready at once.
//
// Threading: a transport socket belongs to its connection's worker.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace weft::net {
class Buffer;
class EventLoop;
}  // namespace weft::net

namespace weft::network {

// The peer certificate's facts RBAC's `authenticated` principals read.
struct PeerCertificate {
  std::vector<std::string> uri_sans;
  std::vector<std::string> dns_sans;
  std::string subject;  // RFC 2253, as Envoy's subjectPeerCertificate()
};

struct IoResult {
  enum class Status : uint8_t {
    kOk,     // `bytes` moved (may be 0 for a write that had nothing to send)
    kAgain,  // nothing now; wait for the next readiness event
    kEof,    // the peer closed its sending side (reads)
    kError,  // the connection is unusable; `error` says why (errno text)
  };
  Status status = Status::kOk;
  size_t bytes = 0;
  // For reads: fewer bytes than asked for, so the socket had no more at that moment (with
  // edge-triggered epoll the next arrival raises a new event).
  bool drained = false;
  std::string_view error;
};

class TransportSocketCallbacks {
 public:
  virtual ~TransportSocketCallbacks() = default;
  virtual int fd() const = 0;
  virtual net::EventLoop& loop() = 0;
  // The transport holds plaintext it has not returned yet: read again.
  virtual void SetReadable() = 0;
  // The handshake finished (after OnConnected for clients, on the first bytes for servers).
  virtual void OnHandshakeComplete() = 0;
};

class TransportSocket {
 public:
  virtual ~TransportSocket() = default;
  virtual void SetCallbacks(TransportSocketCallbacks& callbacks) = 0;
  virtual IoResult DoRead(net::Buffer& buffer) = 0;
  virtual IoResult DoWrite(net::Buffer& buffer) = 0;
  // The TCP connect of a client connection finished; a TLS client starts its handshake here.
  virtual void OnConnected() = 0;
  // The sending side is done (after every written byte): TLS sends close_notify first.
  virtual void ShutdownWrite() = 0;
  virtual bool ready() const = 0;
  // The protocol the handshake chose (ALPN), empty when none.
  virtual std::string_view protocol() const { return {}; }
  // Null on a plaintext connection; on TLS without a client certificate, all fields empty.
  virtual const PeerCertificate* peer_certificate() const { return nullptr; }
  // SNI the client asked for (servers), empty without TLS.
  virtual std::string_view requested_server_name() const { return {}; }
};

// Plain TCP: read(2) into the buffer, writes through the loop.
std::unique_ptr<TransportSocket> NewPlainTransportSocket();

}  // namespace weft::network
