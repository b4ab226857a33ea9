// Socket plumbing for the workers: listening sockets shared through SO_REUSEPORT, non-blocking
// connects, and the byte buffer both sides of a proxied connection read into.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace weft::net {

// "host:port" → a resolved IPv4/IPv6 address. Numeric hosts only (the data path never blocks on
// DNS); "localhost" is accepted as 127.0.0.1.
struct SocketAddress {
  std::string host;
  uint16_t port = 0;
  std::string ToString() const;
};

// `count` listening sockets on the same address, each with SO_REUSEPORT so the kernel spreads
// connections across workers. Port 0 binds the first socket to a kernel-chosen port and the rest
// to that same port. Non-blocking, close-on-exec.
absl::StatusOr<std::vector<int>> ListenReusePort(const SocketAddress& address, int count,
                                                 int backlog = 4096);
// The local port an fd is bound to, or 0.
uint16_t LocalPort(int fd);

// Starts a non-blocking connect. The fd is ready for writing once connected; check the result
// with ConnectResult. Fails only when the socket cannot even be created.
absl::StatusOr<int> ConnectNonBlocking(const SocketAddress& address);
// 0 when the connect finished successfully, else the errno it failed with.
int ConnectResult(int fd);

// The peer's address as text ("127.0.0.1:41234"), for logs and x-forwarded-for.
std::string PeerAddress(int fd);

// A contiguous read buffer: data lives in [begin, end); reads append at end. Consumed bytes
// are dropped from the front lazily, so a parser can hold views into readable() until the next
// Consume/Read.
class Buffer {
 public:
  std::string_view readable() const { return {data_.get() + begin_, end_ - begin_}; }
  size_t size() const { return end_ - begin_; }
  bool empty() const { return begin_ == end_; }
  void Consume(size_t n);
  void Clear() { begin_ = end_ = 0; }
  // Drops what was appended after the first `size` readable bytes (size <= size()).
  void Truncate(size_t size) { end_ = begin_ + size; }
  void Append(std::string_view bytes);
  // One read(2) of up to `max_read` bytes; returns the bytes read, 0 on EOF, -1 with errno
  // EAGAIN when nothing is available, -1 with another errno on error. A result below
  // `max_read` means the socket had no more at that moment: with edge-triggered epoll the next
  // arrival raises a new event, so callers skip the read that would only say EAGAIN.
  long ReadFrom(int fd, size_t max_read = kReadSize);
  static constexpr size_t kReadSize = 64 * 1024;
  // Writes as much as the socket takes; returns false on a fatal error (EAGAIN is not fatal).
  bool WriteTo(int fd);
  // Gives memory back after a burst (a connection that once carried a large head).
  void ShrinkIfIdle();

 private:
  // Grows to `capacity` keeping the live bytes at the front.
  void Reserve(size_t capacity);

  // Not a vector: growing must not zero-fill, so untouched pages stay out of the RSS.
  std::unique_ptr<char[]> data_;
  size_t capacity_ = 0;
  size_t begin_ = 0;
  size_t end_ = 0;
};

}  // namespace weft::net
