// A connection: one fd, its transport socket, a read buffer and a write buffer with watermarks.
// Downstream (accepted) and upstream (connected) connections are the same class, so flow
// control is written once:
//  - reads stop while the read buffer holds `read_limit` bytes the owner has not consumed, and
//    while the owner has read-disabled the connection (a counter: each ReadDisable(true) needs
//    its ReadDisable(false)); a peer can therefore never make the proxy buffer more than the
//    limit, however fast it sends;
//  - Write() appends to the write buffer and sends once the current event's handler returns
//    (net::AfterEvent), so a head and a body written in one event go out in one send; the
//    owner hears OnWatermark(true) when the output (buffer plus the send still with the
//    kernel) rises above `high_watermark` and OnWatermark(false) when it falls below
//    `low_watermark`, and typically read-disables the connection that feeds this one.
//
// Lifetime: the owner holds the connection in a unique_ptr and hands it to
// EventLoop::DeferDelete once done (an event for it may still be queued in the same batch). An
// owner that closes with a flush keeps the connection until kLocalClose or kRemoteClose:
// destroying it drops what was not sent.
// Callbacks are never made from inside a call the owner makes (Write, Close, ReadDisable,
// ReadAgain), only from the connection's own events and the after-event work it queues, so an
// owner is never re-entered.
//
// Threading: a connection belongs to one worker's loop.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "data-plane/net/event_loop.h"
#include "data-plane/net/socket.h"
#include "data-plane/network/transport_socket.h"

namespace weft::network {

enum class ConnectionEvent : uint8_t {
  kConnected,    // upstream: the connect (and any handshake) finished
  kRemoteClose,  // the peer reset, a read or write failed, or the connect failed; fd closed
  kLocalClose,   // a Close(kFlushWrite / kFlushWriteAndLinger) finished; fd closed
};

enum class CloseType : uint8_t {
  kNoFlush,     // close now; unsent bytes are dropped
  kFlushWrite,  // send what is buffered, then close
  // Send what is buffered, half-close, then read and drop input until the peer closes or
  // `linger` passes: closing with unread input sends a reset that can destroy the answer
  // before the client reads it.
  kFlushWriteAndLinger,
};

class ConnectionCallbacks {
 public:
  virtual ~ConnectionCallbacks() = default;
  // New bytes are in `data` (the connection's read buffer): consume what is used; the rest
  // stays for the next call. `end_stream`: the peer half-closed (no more bytes will come).
  virtual void OnRead(net::Buffer& data, bool end_stream) = 0;
  virtual void OnEvent(ConnectionEvent event) = 0;
  virtual void OnWatermark(bool above_high) {}
};

struct ConnectionOptions {
  size_t read_limit = 1 << 20;
  size_t high_watermark = 1 << 20;
  size_t low_watermark = 256 << 10;
  std::chrono::milliseconds linger{1000};
};

// Text and parts of a socket address (IPv4 or IPv6; empty / 0 for anything else).
std::string AddressText(const sockaddr_storage& address);  // "127.0.0.1:41234", "[::1]:80"
std::string AddressIp(const sockaddr_storage& address);    // "127.0.0.1", "::1"
uint16_t AddressPort(const sockaddr_storage& address);

class Connection : public net::Deferred {
 public:
  enum class State : uint8_t { kConnecting, kOpen, kClosing, kClosed };

  virtual void SetCallbacks(ConnectionCallbacks* callbacks) = 0;
  virtual void Write(std::string_view bytes) = 0;
  // Half-close after everything written so far went out.
  virtual void ShutdownWrite() = 0;
  virtual void Close(CloseType type) = 0;
  virtual void ReadDisable(bool disable) = 0;
  virtual bool read_disabled() const = 0;
  // Output not yet taken by the kernel (the buffer plus a send in flight).
  virtual size_t buffered_output() const = 0;
  virtual bool above_high_watermark() const = 0;
  virtual State state() const = 0;
  // Calls OnRead again after the current event with what is buffered, reading more first if
  // the socket has some: for an owner that left bytes unconsumed and now can take them (the
  // next pipelined request once a response is done).
  virtual void ReadAgain() = 0;
  virtual const sockaddr_storage& peer_address() const = 0;
  // Asked of the kernel on first use (most requests never need it).
  virtual const sockaddr_storage& local_address() const = 0;
  virtual TransportSocket& transport() = 0;
  // Ends a linger that has lasted long enough; the owner calls it from the worker's tick.
  virtual void OnTick(std::chrono::steady_clock::time_point now) = 0;
  // Why the connection closed, for logs ("connection reset by peer", "connect: ...").
  virtual std::string_view close_reason() const = 0;
  // Bytes read and written over the connection's life (for tunnels' access log lines).
  virtual uint64_t bytes_read() const = 0;
  virtual uint64_t bytes_written() const = 0;
};

// Takes an accepted fd (non-blocking) and registers it with `loop`. `peer` is what accept4
// reported (null: asked of the kernel).
std::unique_ptr<Connection> NewServerConnection(net::EventLoop& loop, int fd,
                                                const sockaddr_storage* peer,
                                                std::unique_ptr<TransportSocket> transport,
                                                const ConnectionOptions& options = {});
// Starts a non-blocking connect; kConnected or kRemoteClose follows. Fails only when no socket
// can be created.
absl::StatusOr<std::unique_ptr<Connection>> NewClientConnection(
    net::EventLoop& loop, const net::SocketAddress& address,
    std::unique_ptr<TransportSocket> transport, const ConnectionOptions& options = {});

}  // namespace weft::network
