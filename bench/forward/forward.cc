// weft-bench-forward: the cheapest proxy sockets allow, as the data-plane benchmark's floor.
//
// Each accepted connection is paired with one upstream connection and bytes are copied both ways,
// with no parsing, no pool, no timers, no stats. For HTTP/1.1 keep-alive with one request in
// flight per connection it makes the same kernel crossings an L7 proxy must (read the request,
// send it on, read the response, send it back), so its CPU per request and its share of the
// machine's throughput bound what any socket proxy can reach on this machine. weft's distance
// from it is what weft's own code costs.
//
//   weft-bench-forward --listen 127.0.0.1:PORT --upstream 127.0.0.1:PORT [--workers N]
//                      [--io epoll|uring]
//
// --io epoll: level-triggered epoll, one read per readiness event, send to the peer.
// --io uring: io_uring (data-plane/net/uring.h): a recv per side, its send to the peer linked in
//   front of the next recv and completing silently (IOSQE_CQE_SKIP_SUCCESS), so a request costs
//   one io_uring_enter per direction instead of epoll_wait + read + send.
// Benchmark tool only: a failed upstream connect drops the client, errors close the pair.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "data-plane/net/uring.h"

namespace {

struct Options {
  sockaddr_in listen{};
  sockaddr_in upstream{};
  int workers = 1;
  bool uring = false;
};

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "weft-bench-forward: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

bool ParseAddress(const std::string& text, sockaddr_in* out) {
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos) return false;
  *out = {};
  out->sin_family = AF_INET;
  out->sin_port = htons(static_cast<uint16_t>(std::atoi(text.c_str() + colon + 1)));
  return inet_pton(AF_INET, text.substr(0, colon).c_str(), &out->sin_addr) == 1;
}

int Listener(const sockaddr_in& address) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) Die("socket");
  const int one = 1;
  // One listener per worker on the same port: the kernel spreads connections over workers.
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  if (bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) Die("bind");
  if (listen(fd, 1024) != 0) Die("listen");
  return fd;
}

// A blocking connect: once per client connection, outside what the benchmark measures.
int ConnectUpstream(const sockaddr_in& address) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
    close(fd);
    return -1;
  }
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

void NoDelayNonBlocking(int fd) {
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

// --- epoll ---------------------------------------------------------------------------------

struct EpollPair;
struct EpollSide {
  EpollPair* pair;
  int fd;
  int peer_fd;
};
struct EpollPair {
  EpollSide side[2];
};

// Sends all of data to a non-blocking socket, waiting in poll() if its buffer is full (never
// with the benchmark's 1 KB messages; correctness only).
bool SendAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = send(fd, data, size, MSG_NOSIGNAL);
    if (n > 0) {
      data += n;
      size -= static_cast<size_t>(n);
    } else if (n < 0 && errno == EAGAIN) {
      pollfd p{fd, POLLOUT, 0};
      poll(&p, 1, -1);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      return false;
    }
  }
  return true;
}

constexpr uint64_t kSkipped = 1;

void RunEpoll(const Options& options) {
  const int listener = Listener(options.listen);
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) Die("epoll_create1");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;
  epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev);
  std::vector<char> buffer(64 * 1024);
  epoll_event events[64];
  for (;;) {
    const int n = epoll_wait(ep, events, 64, -1);
    for (int i = 0; i < n; ++i) {
      if (events[i].data.u64 == kSkipped) continue;
      auto* side = static_cast<EpollSide*>(events[i].data.ptr);
      if (side == nullptr) {
        const int client = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (client < 0) continue;
        const int upstream = ConnectUpstream(options.upstream);
        if (upstream < 0) {
          close(client);
          continue;
        }
        NoDelayNonBlocking(client);
        NoDelayNonBlocking(upstream);
        auto* pair = new EpollPair;
        pair->side[0] = {pair, client, upstream};
        pair->side[1] = {pair, upstream, client};
        for (EpollSide& s : pair->side) {
          epoll_event add{};
          add.events = EPOLLIN;
          add.data.ptr = &s;
          epoll_ctl(ep, EPOLL_CTL_ADD, s.fd, &add);
        }
        continue;
      }
      const ssize_t got = read(side->fd, buffer.data(), buffer.size());
      if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (got <= 0 || !SendAll(side->peer_fd, buffer.data(), static_cast<size_t>(got))) {
        EpollPair* pair = side->pair;
        // This batch may still hold an event for the other side: drop it before freeing.
        for (int j = i + 1; j < n; ++j) {
          auto* other = static_cast<EpollSide*>(events[j].data.ptr);
          if (events[j].data.u64 > kSkipped && other->pair == pair) events[j].data.u64 = kSkipped;
        }
        close(pair->side[0].fd);
        close(pair->side[1].fd);
        delete pair;
      }
    }
  }
}

// --- io_uring ------------------------------------------------------------------------------

struct UringPair;
struct UringSide {
  UringPair* pair;
  int fd;
  int peer_fd;
  char buffer[16 * 1024];
};
struct UringPair {
  UringSide side[2];
  int in_flight = 0;  // recvs whose completion has not been seen
  bool closing = false;
};

constexpr uint64_t kAcceptTag = 1;

void RunUring(const Options& options) {
  const int listener = Listener(options.listen);
  auto created = weft::net::Uring::Create(1024, /*waits_in_enter=*/true);
  if (!created.ok()) {
    std::fprintf(stderr, "weft-bench-forward: %s\n",
                 std::string(created.status().message()).c_str());
    std::exit(1);
  }
  weft::net::Uring& ring = **created;
  std::vector<io_uring_cqe> done;
  auto arm_accept = [&] {
    io_uring_sqe* sqe = ring.Next();
    sqe->opcode = IORING_OP_ACCEPT;
    sqe->fd = listener;
    sqe->accept_flags = SOCK_CLOEXEC;
    sqe->user_data = kAcceptTag;
  };
  auto arm_recv = [&](UringSide* side) {
    io_uring_sqe* sqe = ring.Next();
    sqe->opcode = IORING_OP_RECV;
    sqe->fd = side->fd;
    sqe->addr = reinterpret_cast<uint64_t>(side->buffer);
    sqe->len = sizeof(side->buffer);
    sqe->user_data = reinterpret_cast<uint64_t>(side);
    ++side->pair->in_flight;
  };
  auto close_pair = [&](UringPair* pair) {
    if (!pair->closing) {
      pair->closing = true;
      // Ends the other side's pending recv, so every operation of the pair completes.
      shutdown(pair->side[0].fd, SHUT_RDWR);
      shutdown(pair->side[1].fd, SHUT_RDWR);
    }
    if (pair->in_flight == 0) {
      close(pair->side[0].fd);
      close(pair->side[1].fd);
      delete pair;
    }
  };
  arm_accept();
  auto handle = [&](const io_uring_cqe& cqe) {
    if (cqe.user_data == kAcceptTag) {
      arm_accept();
      if (cqe.res < 0) return;
      const int client = cqe.res;
      const int upstream = ConnectUpstream(options.upstream);
      if (upstream < 0) {
        close(client);
        return;
      }
      const int one = 1;
      setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      auto* pair = new UringPair;
      pair->side[0].pair = pair->side[1].pair = pair;
      pair->side[0].fd = pair->side[1].peer_fd = client;
      pair->side[1].fd = pair->side[0].peer_fd = upstream;
      arm_recv(&pair->side[0]);
      arm_recv(&pair->side[1]);
      return;
    }
    // A recv's completion, or a failed send's (successful sends complete silently); a send
    // carries the side's address with the low bit set.
    const bool is_send = (cqe.user_data & 1) != 0;
    auto* side = reinterpret_cast<UringSide*>(cqe.user_data & ~uint64_t{1});
    UringPair* pair = side->pair;
    // A failed send is not counted: its linked recv, which always completes, holds the pair.
    if (!is_send) --pair->in_flight;
    if (is_send || cqe.res <= 0 || pair->closing) {
      close_pair(pair);
      return;
    }
    // The peer's send first, then this side's next recv into the same buffer once the send
    // has finished with it. MSG_WAITALL: a short send is retried by the kernel.
    io_uring_sqe* send = ring.Next();
    send->opcode = IORING_OP_SEND;
    send->fd = side->peer_fd;
    send->addr = reinterpret_cast<uint64_t>(side->buffer);
    send->len = static_cast<uint32_t>(cqe.res);
    send->msg_flags = MSG_NOSIGNAL | MSG_WAITALL;
    send->flags = IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS;
    send->user_data = reinterpret_cast<uint64_t>(side) | 1;
    // If the send fails, this recv completes with -ECANCELED.
    arm_recv(side);
  };
  for (;;) {
    if (!ring.Enter(1)) Die("io_uring_enter");
    done.clear();
    ring.Reap(&done);
    for (const io_uring_cqe& cqe : done) handle(cqe);
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  bool have_listen = false, have_upstream = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--listen") {
      have_listen = ParseAddress(value, &options.listen);
    } else if (flag == "--upstream") {
      have_upstream = ParseAddress(value, &options.upstream);
    } else if (flag == "--workers") {
      options.workers = std::max(1, std::atoi(value.c_str()));
    } else if (flag == "--io" && (value == "epoll" || value == "uring")) {
      options.uring = value == "uring";
    } else {
      have_listen = false;
      break;
    }
  }
  if (!have_listen || !have_upstream || argc % 2 == 0) {
    std::fprintf(stderr,
                 "usage: weft-bench-forward --listen IP:PORT --upstream IP:PORT [--workers N] "
                 "[--io epoll|uring]\n");
    return 2;
  }
  std::vector<std::thread> threads;
  for (int i = 0; i < options.workers; ++i) {
    threads.emplace_back([&options] { options.uring ? RunUring(options) : RunEpoll(options); });
  }
  for (std::thread& t : threads) t.join();
  return 0;
}
