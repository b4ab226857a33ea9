#include "data-plane/net/socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/strings.h"

namespace weft::net {
namespace {

struct Sockaddr {
  sockaddr_storage storage{};
  socklen_t len = 0;
  int family = AF_INET;
};

absl::StatusOr<Sockaddr> Resolve(const SocketAddress& address) {
  Sockaddr out;
  std::string host = address.host;
  if (host.empty() || host == "localhost") host = "127.0.0.1";
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out.storage);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(address.port);
    out.len = sizeof(sockaddr_in);
    out.family = AF_INET;
    return out;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out.storage);
  if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(address.port);
    out.len = sizeof(sockaddr_in6);
    out.family = AF_INET6;
    return out;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("\"", host, "\" is not a numeric IPv4 or IPv6 address"));
}

std::string ErrnoText(std::string_view what) {
  return absl::StrCat(Sv(what), ": ", strerror(errno));
}

}  // namespace

std::string SocketAddress::ToString() const {
  if (host.find(':') != std::string::npos && host.front() != '[') {
    return absl::StrCat("[", host, "]:", port);
  }
  return absl::StrCat(host, ":", port);
}

absl::StatusOr<std::vector<int>> ListenReusePort(const SocketAddress& address, int count,
                                                 int backlog) {
  auto resolved = Resolve(address);
  if (!resolved.ok()) return resolved.status();
  std::vector<int> fds;
  auto fail = [&fds](std::string message) {
    for (int fd : fds) close(fd);
    return absl::UnavailableError(std::move(message));
  };
  for (int i = 0; i < count; ++i) {
    int fd = socket(resolved->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return fail(ErrnoText("socket"));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(fd, reinterpret_cast<sockaddr*>(&resolved->storage), resolved->len) != 0) {
      std::string message = ErrnoText(absl::StrCat("bind ", address.ToString()));
      close(fd);
      return fail(std::move(message));
    }
    if (listen(fd, backlog) != 0) {
      std::string message = ErrnoText("listen");
      close(fd);
      return fail(std::move(message));
    }
    fds.push_back(fd);
    if (i == 0 && address.port == 0) {
      // The rest must join the port the kernel picked for the first.
      uint16_t port = LocalPort(fd);
      if (resolved->family == AF_INET) {
        reinterpret_cast<sockaddr_in*>(&resolved->storage)->sin_port = htons(port);
      } else {
        reinterpret_cast<sockaddr_in6*>(&resolved->storage)->sin6_port = htons(port);
      }
    }
  }
  return fds;
}

uint16_t LocalPort(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  return 0;
}

absl::StatusOr<int> ConnectNonBlocking(const SocketAddress& address) {
  auto resolved = Resolve(address);
  if (!resolved.ok()) return resolved.status();
  int fd = socket(resolved->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::UnavailableError(ErrnoText("socket"));
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, reinterpret_cast<sockaddr*>(&resolved->storage), resolved->len) != 0 &&
      errno != EINPROGRESS) {
    // Report it through ConnectResult like an asynchronous failure, so callers have one path.
    int err = errno;
    close(fd);
    return absl::UnavailableError(
        absl::StrCat("connect ", address.ToString(), ": ", strerror(err)));
  }
  return fd;
}

int ConnectResult(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
  return err;
}

std::string PeerAddress(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "";
  char text[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
    return absl::StrCat(text, ":", ntohs(a->sin_port));
  }
  if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof text);
    return absl::StrCat("[", text, "]:", ntohs(a->sin6_port));
  }
  return "";
}

void Buffer::Consume(size_t n) {
  begin_ += n;
  if (begin_ >= end_) begin_ = end_ = 0;
}

void Buffer::Reserve(size_t capacity) {
  const size_t live = end_ - begin_;
  if (capacity <= capacity_) {
    // Enough room overall: slide the live bytes down.
    std::memmove(data_.get(), data_.get() + begin_, live);
  } else {
    std::unique_ptr<char[]> bigger(new char[capacity]);
    if (live > 0) std::memcpy(bigger.get(), data_.get() + begin_, live);
    data_ = std::move(bigger);
    capacity_ = capacity;
  }
  begin_ = 0;
  end_ = live;
}

void Buffer::Append(std::string_view bytes) {
  if (bytes.empty()) return;  // an empty buffer has no storage to copy into
  if (capacity_ - end_ < bytes.size()) {
    const size_t need = end_ - begin_ + bytes.size();
    Reserve(need <= capacity_ ? capacity_ : std::max({capacity_ * 2, need, size_t{4096}}));
  }
  std::memcpy(data_.get() + end_, bytes.data(), bytes.size());
  end_ += bytes.size();
}

long Buffer::ReadFrom(int fd, size_t max_read) {
  if (begin_ == end_) begin_ = end_ = 0;
  if (capacity_ - end_ < max_read) {
    const size_t need = end_ - begin_ + max_read;
    Reserve(need <= capacity_ ? capacity_ : std::max(capacity_ * 2, need));
  }
  ssize_t n;
  do {
    n = read(fd, data_.get() + end_, max_read);
  } while (n < 0 && errno == EINTR);
  if (n > 0) end_ += static_cast<size_t>(n);
  return n;
}

bool Buffer::WriteTo(int fd) {
  while (begin_ < end_) {
    ssize_t n = send(fd, data_.get() + begin_, end_ - begin_, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN || errno == EWOULDBLOCK;
    }
    begin_ += static_cast<size_t>(n);
  }
  begin_ = end_ = 0;
  return true;
}

void Buffer::ShrinkIfIdle() {
  if (empty() && capacity_ > 256 * 1024) {
    data_.reset();
    capacity_ = 0;
    begin_ = end_ = 0;
  }
}

}  // namespace weft::net
