// network::Connection and BytePump over real sockets (socketpair, loopback listeners) and a
// real event loop run on the test's thread: bounded reads, read-disable, watermarks, flush and
// linger on close, connect success and failure, and the pump's flow control and half-close.
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <functional>
#include <string>

#include "data-plane/net/event_loop.h"
#include "data-plane/net/socket.h"
#include "data-plane/network/connection.h"
#include "data-plane/network/pump.h"

namespace weft::network {
namespace {

using namespace std::chrono_literals;

std::unique_ptr<net::EventLoop> NewLoop(net::SendMode mode = net::SendMode::kAuto) {
  auto loop = net::EventLoop::Create(mode);
  REQUIRE(loop.ok());
  return std::move(*loop);
}

// Runs the loop until `done` holds (checked every 5 ms) or `limit` passes; returns whether it
// did. `done` may have side effects (it is the test's peer): it is not called after it held.
bool RunUntil(net::EventLoop& loop, const std::function<bool()>& done,
              std::chrono::milliseconds limit = 3000ms) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  bool result = false;
  loop.SetTick(5ms, [&] {
    if (result) return;
    result = done();
    if (result || std::chrono::steady_clock::now() >= deadline) loop.Stop();
  });
  loop.Run();
  return result;
}

// Sends as much of `bytes` past *sent as the socket takes now.
void SendSome(int fd, const std::string& bytes, size_t* sent) {
  while (*sent < bytes.size()) {
    ssize_t n = send(fd, bytes.data() + *sent, bytes.size() - *sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    *sent += static_cast<size_t>(n);
  }
}

void NonBlocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

// A socketpair: `ours` goes to a Connection, `theirs` is the test's peer (non-blocking).
struct Pair {
  int ours = -1;
  int theirs = -1;
  Pair() {
    int fds[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
    ours = fds[0];
    theirs = fds[1];
    NonBlocking(ours);
    NonBlocking(theirs);
  }
  ~Pair() {
    if (theirs >= 0) close(theirs);
  }
  void Send(std::string_view bytes) const {
    REQUIRE(send(theirs, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(bytes.size()));
  }
  std::string Drain() const {
    std::string out;
    char buf[65536];
    for (;;) {
      ssize_t n = recv(theirs, buf, sizeof buf, 0);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }
  // 0 when the peer saw EOF, -1 (EAGAIN) when nothing is there yet.
  ssize_t Peek() const {
    char c;
    return recv(theirs, &c, 1, MSG_PEEK);
  }
};

struct Recorder : ConnectionCallbacks {
  std::string data;
  bool eof = false;
  int reads = 0;
  size_t consume_limit = SIZE_MAX;  // take at most this much per call
  std::vector<ConnectionEvent> events;
  std::vector<bool> watermarks;
  std::function<void()> on_read;
  void OnRead(net::Buffer& in, bool end_stream) override {
    ++reads;
    size_t take = std::min(in.size(), consume_limit);
    data.append(in.readable().substr(0, take));
    in.Consume(take);
    eof = end_stream;
    if (on_read) on_read();
  }
  void OnEvent(ConnectionEvent event) override { events.push_back(event); }
  void OnWatermark(bool above) override { watermarks.push_back(above); }
  bool Saw(ConnectionEvent e) const {
    return std::find(events.begin(), events.end(), e) != events.end();
  }
};

TEST_CASE("network: a connection reads what arrives and writes in one send per event",
          "[network]") {
  auto loop = NewLoop();
  Pair pair;
  auto conn = NewServerConnection(*loop, pair.ours, nullptr, NewPlainTransportSocket());
  Recorder rec;
  rec.on_read = [&] {
    if (rec.reads != 1) return;
    conn->Write("head;");
    conn->Write("body");
  };
  conn->SetCallbacks(&rec);
  pair.Send("hello");
  REQUIRE(RunUntil(*loop, [&] { return rec.data == "hello"; }));
  std::string got;
  REQUIRE(RunUntil(*loop, [&] {
    got += pair.Drain();
    return got == "head;body";
  }));
  CHECK(conn->bytes_read() == 5);
  CHECK(conn->bytes_written() == 9);
  shutdown(pair.theirs, SHUT_WR);
  REQUIRE(RunUntil(*loop, [&] { return rec.eof; }));
  CHECK(conn->state() == Connection::State::kOpen);  // half-closed: the owner decides
}

TEST_CASE("network: reads stop at the read limit until the owner takes bytes", "[network]") {
  auto loop = NewLoop();
  Pair pair;
  ConnectionOptions options;
  options.read_limit = 8 << 10;
  auto conn = NewServerConnection(*loop, pair.ours, nullptr, NewPlainTransportSocket(), options);
  Recorder rec;
  rec.consume_limit = 0;  // a head that never completes
  conn->SetCallbacks(&rec);
  std::string big(4 << 20, 'x');
  size_t sent = 0;
  // The peer keeps sending; the proxy must not take more than the limit (plus one read).
  REQUIRE_FALSE(RunUntil(
      *loop,
      [&] {
        SendSome(pair.theirs, big, &sent);
        return false;
      },
      200ms));
  CHECK(conn->bytes_read() <= options.read_limit + net::Buffer::kReadSize);
  CHECK(sent < big.size());  // the socket buffers filled: the peer is held back
  // Once the owner consumes, reading resumes.
  rec.consume_limit = SIZE_MAX;
  conn->ReadAgain();
  REQUIRE(RunUntil(*loop, [&] {
    SendSome(pair.theirs, big, &sent);
    return rec.data.size() == big.size();
  }));
}

TEST_CASE("network: read-disable is counted and re-enabling delivers what waited", "[network]") {
  auto loop = NewLoop();
  Pair pair;
  auto conn = NewServerConnection(*loop, pair.ours, nullptr, NewPlainTransportSocket());
  Recorder rec;
  conn->SetCallbacks(&rec);
  conn->ReadDisable(true);
  conn->ReadDisable(true);
  pair.Send("abc");
  RunUntil(
      *loop, [] { return false; }, 50ms);
  CHECK(rec.reads == 0);
  conn->ReadDisable(false);
  RunUntil(
      *loop, [] { return false; }, 50ms);
  CHECK(rec.reads == 0);
  conn->ReadDisable(false);
  REQUIRE(RunUntil(*loop, [&] { return rec.data == "abc"; }));
}

TEST_CASE("network: write watermarks rise and fall with what the peer takes", "[network]") {
  for (auto mode : {net::SendMode::kSyscalls, net::SendMode::kAuto}) {
    auto loop = NewLoop(mode);
    Pair pair;
    ConnectionOptions options;
    options.high_watermark = 64 << 10;
    options.low_watermark = 16 << 10;
    auto conn = NewServerConnection(*loop, pair.ours, nullptr, NewPlainTransportSocket(), options);
    Recorder rec;
    conn->SetCallbacks(&rec);
    std::string chunk(1 << 20, 'y');
    loop->Post([&] { conn->Write(chunk); });
    REQUIRE(RunUntil(*loop, [&] { return !rec.watermarks.empty(); }));
    CHECK(rec.watermarks.front() == true);
    CHECK(conn->above_high_watermark());
    std::string got;
    REQUIRE(RunUntil(*loop, [&] {
      got += pair.Drain();
      return rec.watermarks.size() == 2;
    }));
    CHECK(rec.watermarks.back() == false);
    REQUIRE(RunUntil(*loop, [&] {
      got += pair.Drain();
      return got.size() == chunk.size();
    }));
  }
}

TEST_CASE("network: a flushing close sends everything, lingers, then closes", "[network]") {
  auto loop = NewLoop();
  Pair pair;
  auto conn = NewServerConnection(*loop, pair.ours, nullptr, NewPlainTransportSocket());
  Recorder rec;
  conn->SetCallbacks(&rec);
  loop->Post([&] {
    conn->Write("bye");
    conn->Close(CloseType::kFlushWriteAndLinger);
    conn->Write("dropped");  // after Close: not sent
  });
  std::string got;
  REQUIRE(RunUntil(*loop, [&] {
    got += pair.Drain();
    return pair.Peek() == 0;  // the half-close reached the peer
  }));
  CHECK(got == "bye");
  CHECK(conn->state() == Connection::State::kClosing);  // still reading (and dropping) input
  pair.Send("late input");
  RunUntil(
      *loop, [] { return false; }, 30ms);
  CHECK(rec.data.empty());
  shutdown(pair.theirs, SHUT_WR);
  REQUIRE(RunUntil(*loop, [&] { return rec.Saw(ConnectionEvent::kLocalClose); }));
  CHECK(conn->state() == Connection::State::kClosed);
}

TEST_CASE("network: a linger ends at its deadline even when the peer stays", "[network]") {
  auto loop = NewLoop();
  Pair pair;
  ConnectionOptions options;
  options.linger = 20ms;
  auto conn = NewServerConnection(*loop, pair.ours, nullptr, NewPlainTransportSocket(), options);
  Recorder rec;
  conn->SetCallbacks(&rec);
  loop->Post([&] { conn->Close(CloseType::kFlushWriteAndLinger); });
  REQUIRE(RunUntil(*loop, [&] {
    conn->OnTick(std::chrono::steady_clock::now());
    return rec.Saw(ConnectionEvent::kLocalClose);
  }));
}

TEST_CASE("network: client connections connect, and a refused connect reports a close",
          "[network]") {
  auto loop = NewLoop();
  auto listener = net::ListenReusePort({"127.0.0.1", 0}, 1);
  REQUIRE(listener.ok());
  const uint16_t port = net::LocalPort((*listener)[0]);
  auto conn = NewClientConnection(*loop, {"127.0.0.1", port}, NewPlainTransportSocket());
  REQUIRE(conn.ok());
  Recorder rec;
  (*conn)->SetCallbacks(&rec);
  (*conn)->Write("early");  // buffered until connected
  REQUIRE(RunUntil(*loop, [&] { return rec.Saw(ConnectionEvent::kConnected); }));
  int accepted = -1;
  REQUIRE(RunUntil(*loop, [&] {
    accepted = accept4((*listener)[0], nullptr, nullptr, SOCK_NONBLOCK);
    return accepted >= 0;
  }));
  std::string got;
  REQUIRE(RunUntil(*loop, [&] {
    char buf[64];
    ssize_t n = recv(accepted, buf, sizeof buf, 0);
    if (n > 0) got.append(buf, static_cast<size_t>(n));
    return got == "early";
  }));
  close(accepted);
  close((*listener)[0]);
  // Nothing listens there any more.
  auto refused = NewClientConnection(*loop, {"127.0.0.1", port}, NewPlainTransportSocket());
  if (refused.ok()) {
    Recorder rec2;
    (*refused)->SetCallbacks(&rec2);
    REQUIRE(RunUntil(*loop, [&] { return rec2.Saw(ConnectionEvent::kRemoteClose); }));
    CHECK_FALSE(rec2.Saw(ConnectionEvent::kConnected));
    CHECK((*refused)->close_reason().find("connect") != std::string_view::npos);
  }
}

struct PumpDone : BytePump::Callbacks {
  bool done = false;
  void OnPumpDone() override { done = true; }
};

TEST_CASE("network: the pump moves bytes both ways, passes a half-close, ends on b's close",
          "[network]") {
  auto loop = NewLoop();
  Pair client;
  Pair server;
  client.Send("before");  // already buffered when the pump starts
  auto a = NewServerConnection(*loop, client.ours, nullptr, NewPlainTransportSocket());
  auto b = NewServerConnection(*loop, server.ours, nullptr, NewPlainTransportSocket());
  PumpDone done;
  auto pump = std::make_unique<BytePump>(*a, *b, done, loop->now());
  std::string at_server;
  REQUIRE(RunUntil(*loop, [&] {
    at_server += server.Drain();
    return at_server == "before";
  }));
  client.Send("+more");
  server.Send("reply");
  std::string at_client;
  REQUIRE(RunUntil(*loop, [&] {
    at_server += server.Drain();
    at_client += client.Drain();
    return at_server == "before+more" && at_client == "reply";
  }));
  shutdown(client.theirs, SHUT_WR);
  REQUIRE(RunUntil(*loop, [&] { return server.Peek() == 0; }));  // passed on
  server.Send("last");
  shutdown(server.theirs, SHUT_WR);
  REQUIRE(RunUntil(*loop, [&] {
    at_client += client.Drain();
    return done.done;
  }));
  CHECK(at_client == "replylast");
  CHECK(pump->bytes_a_to_b() == 11);
  CHECK(pump->bytes_b_to_a() == 9);
}

TEST_CASE("network: the pump pauses a fast side while the other's output is high", "[network]") {
  auto loop = NewLoop(net::SendMode::kSyscalls);
  Pair client;
  Pair server;
  ConnectionOptions options;
  options.high_watermark = 32 << 10;
  options.low_watermark = 8 << 10;
  auto a = NewServerConnection(*loop, client.ours, nullptr, NewPlainTransportSocket(), options);
  auto b = NewServerConnection(*loop, server.ours, nullptr, NewPlainTransportSocket(), options);
  PumpDone done;
  BytePump pump(*a, *b, done, loop->now());
  // The server never reads: what the client sends piles up in b's output until a is paused.
  std::string big(4 << 20, 'z');
  size_t sent = 0;
  RunUntil(
      *loop,
      [&] {
        SendSome(client.theirs, big, &sent);
        return false;
      },
      300ms);
  CHECK(a->read_disabled());
  CHECK(sent < big.size());
  CHECK(b->buffered_output() < (1 << 20));
  // The server drains: everything arrives.
  std::string got;
  REQUIRE(RunUntil(
      *loop,
      [&] {
        SendSome(client.theirs, big, &sent);
        got += server.Drain();
        return got.size() == big.size();
      },
      10000ms));
  CHECK_FALSE(a->read_disabled());
}

}  // namespace
}  // namespace weft::network
