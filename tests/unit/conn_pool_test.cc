// The HTTP/1 connection pool over fake connections: connect, reuse, what ends a connection,
// connect failures and timeouts, cancelling, detaching for a tunnel.
#include <catch2/catch.hpp>
#include <optional>
#include <string>
#include <vector>

#include "data-plane/stats/proxy_stats.h"
#include "data-plane/upstream/conn_pool.h"
#include "tests/unit/fake_connection.h"

namespace weft::upstream {
namespace {

using namespace std::chrono_literals;
using testing::FakeConnection;

struct Client final : http::ResponseDecoder, PoolCallbacks {
  PoolStream* stream = nullptr;
  std::optional<PoolFailure> failure;
  int status = 0;
  std::string body;
  bool ended = false;
  std::optional<http::StreamResetReason> reset;
  void OnPoolReady(PoolStream& s) override { stream = &s; }
  void OnPoolFailure(PoolFailure f, std::string_view) override { failure = f; }
  void DecodeHeaders(http::ResponseHeaderMap& h, bool end) override {
    status = h.status();
    ended = end;
  }
  void DecodeData(std::string_view d, bool end) override {
    body.append(d);
    ended = ended || end;
  }
  void DecodeTrailers(http::TrailerMap&) override {}
  void OnResetStream(http::StreamResetReason r, std::string_view) override { reset = r; }
  void Send() {
    http::RequestHeaderMap h;
    h.set_method("GET");
    h.set_path("/");
    h.set_authority("up");
    stream->encoder().EncodeHeaders(h, true);
  }
};

std::unique_ptr<net::EventLoop> NewLoop() {
  auto l = net::EventLoop::Create(net::SendMode::kSyscalls);
  REQUIRE(l.ok());
  return std::move(*l);
}

struct Fixture {
  std::unique_ptr<net::EventLoop> loop = NewLoop();
  std::vector<FakeConnection*> made;
  bool refuse = false;
  proxy::ClusterStats stats;
  std::unique_ptr<ConnPool> pool = NewHttp1ConnPool(*loop, [this] { return Make(); });
  absl::StatusOr<std::unique_ptr<network::Connection>> Make() {
    if (refuse) return absl::UnavailableError("no route to host");
    auto c = std::make_unique<FakeConnection>();
    c->state_ = network::Connection::State::kConnecting;
    made.push_back(c.get());
    return std::unique_ptr<network::Connection>(std::move(c));
  }
  StreamOptions options() {
    StreamOptions o;
    o.connect_timeout = 1000ms;
    o.cluster_stats = &stats;
    return o;
  }
  void Connect(FakeConnection* c) {
    c->state_ = network::Connection::State::kOpen;
    c->RaiseEvent(network::ConnectionEvent::kConnected);
  }
};

TEST_CASE("http1 pool: a connection is made, carries a stream, and is reused", "[pool]") {
  Fixture f;
  Client a;
  CHECK(f.pool->NewStream(a, a, f.options()) != nullptr);  // pending: connecting
  REQUIRE(f.made.size() == 1);
  CHECK(f.stats.cx_total.Value() == 1);
  f.Connect(f.made[0]);
  REQUIRE(a.stream != nullptr);
  CHECK_FALSE(a.stream->reused());
  a.Send();
  CHECK(f.made[0]->TakeWritten() == "GET / HTTP/1.1\r\nhost: up\r\n\r\n");
  f.made[0]->Deliver("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  CHECK(a.status == 200);
  CHECK(a.body == "ok");
  a.stream->Done();

  Client b;
  CHECK(f.pool->NewStream(b, b, f.options()) == nullptr);  // ready at once
  REQUIRE(b.stream != nullptr);
  CHECK(b.stream->reused());
  CHECK(f.made.size() == 1);
  CHECK(f.stats.cx_reused.Value() == 1);
  b.Send();
  f.made[0]->Deliver("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
  CHECK(b.status == 204);
  b.stream->Done();  // not reusable: closed
  CHECK(f.made[0]->state() == network::Connection::State::kClosed);
  CHECK(f.stats.cx_active.Value() == 0);
  CHECK(f.pool->empty());
}

TEST_CASE("http1 pool: an idle connection the server closes is dropped", "[pool]") {
  Fixture f;
  Client a;
  f.pool->NewStream(a, a, f.options());
  f.Connect(f.made[0]);
  a.Send();
  f.made[0]->Deliver("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  a.stream->Done();
  f.made[0]->Deliver("", /*end_stream=*/true);
  CHECK(f.pool->empty());
  Client b;
  f.pool->NewStream(b, b, f.options());
  CHECK(f.made.size() == 2);
}

TEST_CASE("http1 pool: connect failures, timeouts, cancels, a busy connection closing", "[pool]") {
  SECTION("refused at once") {
    Fixture f;
    f.refuse = true;
    Client a;
    CHECK(f.pool->NewStream(a, a, f.options()) == nullptr);
    CHECK(a.failure == PoolFailure::kConnectFailure);
  }
  SECTION("refused later") {
    Fixture f;
    Client a;
    f.pool->NewStream(a, a, f.options());
    f.made[0]->RaiseEvent(network::ConnectionEvent::kRemoteClose);
    CHECK(a.failure == PoolFailure::kConnectFailure);
    CHECK(f.stats.cx_active.Value() == 0);
  }
  SECTION("timeout") {
    Fixture f;
    Client a;
    f.pool->NewStream(a, a, f.options());
    f.pool->OnTick(f.loop->now() + 500ms);
    CHECK_FALSE(a.failure.has_value());
    f.pool->OnTick(f.loop->now() + 1500ms);
    CHECK(a.failure == PoolFailure::kTimeout);
    CHECK(f.pool->empty());
  }
  SECTION("cancelled: the connection stays for the next stream") {
    Fixture f;
    Client a;
    auto* pending = f.pool->NewStream(a, a, f.options());
    f.pool->Cancel(pending);
    f.Connect(f.made[0]);
    CHECK(a.stream == nullptr);
    Client b;
    CHECK(f.pool->NewStream(b, b, f.options()) == nullptr);
    CHECK(b.stream != nullptr);
  }
  SECTION("the server closes in the middle: the stream is reset") {
    Fixture f;
    Client a;
    f.pool->NewStream(a, a, f.options());
    f.Connect(f.made[0]);
    a.Send();
    CHECK(a.stream->request_written());
    f.made[0]->RaiseEvent(network::ConnectionEvent::kRemoteClose);
    CHECK(a.reset == http::StreamResetReason::kConnectionTermination);
    CHECK(f.pool->empty());
  }
  SECTION("detached for a tunnel") {
    Fixture f;
    Client a;
    f.pool->NewStream(a, a, f.options());
    f.Connect(f.made[0]);
    auto conn = a.stream->Detach();
    CHECK(conn.get() == f.made[0]);
    CHECK(f.pool->empty());
    CHECK(f.stats.cx_active.Value() == 0);
  }
}

}  // namespace
}  // namespace weft::upstream
