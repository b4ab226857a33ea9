// The header map and the HTTP/1 codec against a fake connection: requests and responses as
// maps and body pieces, the text written for them, and the rules in between (absolute-form
// targets, hop-by-hop and Connection-named headers, one request at a time, framing choices).
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "data-plane/http/header_map.h"
#include "data-plane/http/http1/codec.h"
#include "tests/unit/fake_connection.h"

namespace weft::http {
namespace {

using testing::FakeConnection;

TEST_CASE("header map: case-insensitive, joined repeats, host is the authority", "[http]") {
  RequestHeaderMap m;
  m.set_method("GET");
  m.set_path("/a?b");
  m.set_authority("example:80");
  m.Add("X-One", "1");
  m.Add("x-one", "2");
  m.Add("Accept", "*/*");
  CHECK(m.Get("x-one") == "1,2");
  CHECK(m.GetFirst("X-ONE") == "1");
  CHECK(m.Get(":path") == "/a?b");
  CHECK(m.Get("host") == "example:80");
  m.Set("host", "other");
  CHECK(m.authority() == "other");
  CHECK(m.size() == 3);
  // A value taken from the map itself survives the arena growing.
  for (int i = 0; i < 50; ++i) m.Add("x-copy", *m.GetFirst("accept"));
  CHECK(m.Get("x-copy")->substr(0, 3) == "*/*");
  m.Set("accept", *m.GetFirst("x-copy"));  // a value from an entry of the same map
  CHECK(m.Get("accept") == "*/*");
  m.Remove("x-one");
  CHECK_FALSE(m.Has("x-one"));
  ResponseHeaderMap r;
  r.set_status(204);
  CHECK(r.Get(":status") == "204");
}

struct Stream final : RequestDecoder {
  RequestHeaderMap* headers = nullptr;
  bool headers_end = false;
  std::string body;
  bool ended = false;
  int resets = 0;
  std::function<void()> on_headers;
  void DecodeHeaders(RequestHeaderMap& h, bool end_stream) override {
    headers = &h;
    headers_end = end_stream;
    ended = end_stream;
    if (on_headers) on_headers();
  }
  void DecodeData(std::string_view data, bool end_stream) override {
    body.append(data);
    if (end_stream) ended = true;
  }
  void DecodeTrailers(TrailerMap&) override {}
  void OnResetStream(StreamResetReason) override { ++resets; }
};

struct Server final : ServerCodecCallbacks {
  std::vector<std::unique_ptr<Stream>> streams;
  ResponseEncoder* encoder = nullptr;
  RequestDecoder& NewStream(ResponseEncoder& e) override {
    encoder = &e;
    streams.push_back(std::make_unique<Stream>());
    return *streams.back();
  }
};

struct ServerFixture {
  FakeConnection conn;
  Server server;
  std::unique_ptr<ServerCodec> codec = http1::NewServerCodec(conn, server, weft::http1::Limits{});
  DispatchResult Feed(std::string_view bytes, bool end = false) {
    conn.input().Append(bytes);
    return codec->Dispatch(conn.input(), end);
  }
  void Respond(int status, std::string_view body, bool with_length = true) {
    ResponseHeaderMap r;
    r.set_status(status);
    r.Add("x-r", "1");
    if (with_length) r.Add("content-length", std::to_string(body.size()));
    server.encoder->EncodeHeaders(r, body.empty() && with_length);
    if (!body.empty() || !with_length) server.encoder->EncodeData(body, true);
    codec->OnStreamComplete();
  }
};

TEST_CASE("http1 server: a request becomes a map; hop-by-hop and named headers go", "[http]") {
  ServerFixture f;
  REQUIRE(f.Feed("GET /x?y HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Secret\r\n"
                 "X-Secret: s\r\nKeep-Alive: 5\r\nTE: trailers\r\nX-Kept: k\r\n\r\n")
              .ok);
  REQUIRE(f.server.streams.size() == 1);
  Stream& s = *f.server.streams[0];
  REQUIRE(s.headers != nullptr);
  CHECK(s.headers_end);
  CHECK(s.headers->method() == "GET");
  CHECK(s.headers->path() == "/x?y");
  CHECK(s.headers->authority() == "h");
  CHECK(s.headers->Get("x-kept") == "k");
  CHECK_FALSE(s.headers->Has("x-secret"));
  CHECK_FALSE(s.headers->Has("keep-alive"));
  CHECK_FALSE(s.headers->Has("te"));
  CHECK_FALSE(s.headers->Has("connection"));
  f.Respond(200, "hello");
  CHECK(f.conn.TakeWritten() == "HTTP/1.1 200 OK\r\nx-r: 1\r\ncontent-length: 5\r\n\r\nhello");
  CHECK_FALSE(f.codec->wants_close());
}

TEST_CASE("http1 server: an absolute-form target routes by its path and authority", "[http]") {
  ServerFixture f;
  REQUIRE(f.Feed("GET http://good.example:8080/admin/x?q=1 HTTP/1.1\r\nHost: other\r\n\r\n").ok);
  Stream& s = *f.server.streams[0];
  CHECK(s.headers->path() == "/admin/x?q=1");
  CHECK(s.headers->authority() == "good.example:8080");
  f.Respond(200, "");
  f.Feed("GET http://bare HTTP/1.1\r\nHost: bare\r\n\r\n");
  CHECK(f.server.streams[1]->headers->path() == "/");
}

TEST_CASE("http1 server: bodies are decoded, pipelined requests wait for the response", "[http]") {
  ServerFixture f;
  REQUIRE(f.Feed("POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "5;ext=1\r\nhello\r\n3\r\n ab\r\n0\r\nTrailer: t\r\n\r\n"
                 "GET /b HTTP/1.1\r\nHost: h\r\n\r\n")
              .ok);
  REQUIRE(f.server.streams.size() == 1);  // the second waits
  Stream& s = *f.server.streams[0];
  CHECK_FALSE(s.headers_end);
  CHECK(s.body == "hello ab");
  CHECK(s.ended);
  CHECK_FALSE(s.headers->Has("transfer-encoding"));
  f.Respond(200, "ok");
  f.codec->Dispatch(f.conn.input(), false);  // what ReadAgain leads to
  REQUIRE(f.server.streams.size() == 2);
  CHECK(f.server.streams[1]->headers->path() == "/b");

  ServerFixture g;
  REQUIRE(g.Feed("PUT /c HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n"
                 "Expect: 100-continue\r\n\r\n01234")
              .ok);
  Stream& c = *g.server.streams[0];
  CHECK(c.headers->Get("content-length") == "10");
  CHECK(c.headers->Get("expect") == "100-continue");
  CHECK(c.body == "01234");
  CHECK_FALSE(c.ended);
  g.server.encoder->Encode100Continue();
  CHECK(g.conn.TakeWritten() == "HTTP/1.1 100 Continue\r\n\r\n");
  g.Feed("56789");
  CHECK(c.body == "0123456789");
  CHECK(c.ended);
}

TEST_CASE("http1 server: response framing follows the map, the version and the method", "[http]") {
  SECTION("no length, more to come: chunked") {
    ServerFixture f;
    f.Feed("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    ResponseHeaderMap r;
    r.set_status(200);
    f.server.encoder->EncodeHeaders(r, false);
    f.server.encoder->EncodeData("abc", false);
    f.server.encoder->EncodeData("", true);
    CHECK(f.conn.TakeWritten() ==
          "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
  }
  SECTION("HTTP/1.0 keep-alive, and HTTP/1.0 without length closes") {
    ServerFixture f;
    f.Feed("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    f.Respond(200, "x");
    CHECK(f.conn.TakeWritten() ==
          "HTTP/1.0 200 OK\r\nx-r: 1\r\ncontent-length: 1\r\nconnection: keep-alive\r\n\r\nx");
    CHECK_FALSE(f.codec->wants_close());
    f.Feed("GET / HTTP/1.0\r\n\r\n");
    f.Respond(200, "y", /*with_length=*/false);
    CHECK(f.conn.TakeWritten() == "HTTP/1.0 200 OK\r\nx-r: 1\r\nconnection: close\r\n\r\ny");
    CHECK(f.codec->wants_close());
  }
  SECTION("HEAD: the length of what is not sent") {
    ServerFixture f;
    f.Feed("HEAD / HTTP/1.1\r\nHost: h\r\n\r\n");
    ResponseHeaderMap r;
    r.set_status(200);
    r.Add("content-length", "42");
    f.server.encoder->EncodeHeaders(r, true);
    CHECK(f.conn.TakeWritten() == "HTTP/1.1 200 OK\r\ncontent-length: 42\r\n\r\n");
  }
  SECTION("an answer before the body is read closes the connection") {
    ServerFixture f;
    f.Feed("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\nabc");
    f.Respond(403, "no");
    CHECK(f.conn.TakeWritten().find("connection: close\r\n") != std::string::npos);
    CHECK(f.codec->wants_close());
  }
  SECTION("CloseAfterResponse (drain)") {
    ServerFixture f;
    f.Feed("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    f.codec->CloseAfterResponse();
    f.Respond(200, "");
    CHECK(f.conn.TakeWritten().find("connection: close\r\n") != std::string::npos);
    CHECK(f.codec->wants_close());
  }
}

TEST_CASE("http1 server: parse errors come back with their status, on a stream", "[http]") {
  ServerFixture f;
  auto r = f.Feed(
      "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n");
  CHECK_FALSE(r.ok);
  CHECK(r.status == 400);
  CHECK(f.server.streams.size() == 1);
  CHECK(f.codec->wants_close());

  ServerFixture g;
  auto big = g.Feed("GET / HTTP/1.1\r\nHost: h\r\nX: " + std::string(70 << 10, 'a'));
  CHECK_FALSE(big.ok);
  CHECK(big.status == 431);

  ServerFixture h;
  REQUIRE(h.Feed("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").status ==
          400);
  ServerFixture partial;
  REQUIRE(partial.Feed("GET / HTTP/1.1\r\nHo").ok);
  CHECK(partial.codec->partial_head());
}

TEST_CASE("http1 server: an upgrade keeps its Upgrade header and a 101 says upgrade", "[http]") {
  ServerFixture f;
  f.Feed("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
  Stream& s = *f.server.streams[0];
  CHECK(s.headers->Get("upgrade") == "websocket");
  CHECK_FALSE(s.headers->Has("connection"));
  ResponseHeaderMap r;
  r.set_status(101);
  r.Add("upgrade", "websocket");
  f.server.encoder->EncodeHeaders(r, false);
  CHECK(f.conn.TakeWritten() ==
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n");
}

struct Response final : ResponseDecoder {
  ResponseHeaderMap* headers = nullptr;
  bool headers_end = false;
  std::string body;
  bool ended = false;
  std::optional<StreamResetReason> reset;
  std::string detail;
  void DecodeHeaders(ResponseHeaderMap& h, bool end_stream) override {
    headers = &h;
    headers_end = end_stream;
    ended = end_stream;
  }
  void DecodeData(std::string_view data, bool end_stream) override {
    body.append(data);
    if (end_stream) ended = true;
  }
  void DecodeTrailers(TrailerMap&) override {}
  void OnResetStream(StreamResetReason reason, std::string_view d) override {
    reset = reason;
    detail = d;
  }
};

struct ClientFixture {
  FakeConnection conn;
  std::unique_ptr<ClientCodec> codec = http1::NewClientCodec(conn);
  DispatchResult Feed(std::string_view bytes, bool end = false) {
    conn.input().Append(bytes);
    return codec->Dispatch(conn.input(), end);
  }
  RequestEncoder& Send(Response& response, std::string_view method = "GET", bool end = true,
                       std::string_view length = "") {
    RequestEncoder& e = codec->NewStream(response);
    RequestHeaderMap h;
    h.set_method(method);
    h.set_path("/p");
    h.set_authority("up");
    h.Add("x-a", "1");
    if (!length.empty()) h.Add("content-length", length);
    e.EncodeHeaders(h, end);
    return e;
  }
};

TEST_CASE("http1 client: requests are written once, responses decoded, connections reused",
          "[http]") {
  ClientFixture f;
  Response r;
  f.Send(r);
  CHECK(f.conn.TakeWritten() == "GET /p HTTP/1.1\r\nhost: up\r\nx-a: 1\r\n\r\n");
  CHECK(f.codec->request_started());
  REQUIRE(f.Feed("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
                 "Connection: keep-alive\r\nX-B: 2\r\n\r\nab")
              .ok);
  REQUIRE(r.headers != nullptr);
  CHECK(r.headers->status() == 200);
  CHECK(r.headers->Get("content-length") == "3");
  CHECK_FALSE(r.headers->Has("connection"));
  CHECK_FALSE(r.ended);
  CHECK_FALSE(f.codec->idle_and_reusable());
  f.Feed("c");
  CHECK(r.body == "abc");
  CHECK(r.ended);
  CHECK(f.codec->idle_and_reusable());

  Response chunked;
  RequestEncoder& e = f.Send(chunked, "POST", /*end=*/false);
  e.EncodeData("xyz", true);
  CHECK(f.conn.TakeWritten() ==
        "POST /p HTTP/1.1\r\nhost: up\r\nx-a: 1\r\ntransfer-encoding: chunked\r\n\r\n"
        "3\r\nxyz\r\n0\r\n\r\n");
  f.Feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n");
  CHECK(chunked.body == "hi");
  CHECK(chunked.ended);
  CHECK(f.codec->idle_and_reusable());
}

TEST_CASE("http1 client: what makes a connection unusable", "[http]") {
  SECTION("body until close") {
    ClientFixture f;
    Response r;
    f.Send(r);
    f.Feed("HTTP/1.1 200 OK\r\n\r\npart");
    CHECK_FALSE(r.ended);
    f.conn.input().Clear();
    f.codec->OnConnectionClosed("closed");
    CHECK(r.ended);
    CHECK(r.body == "part");
    CHECK_FALSE(f.codec->idle_and_reusable());
  }
  SECTION("garbage status line") {
    ClientFixture f;
    Response r;
    f.Send(r);
    auto result = f.Feed("SPDY/9 200 OK\r\n\r\n");
    CHECK_FALSE(result.ok);
    REQUIRE(r.reset.has_value());
    CHECK(*r.reset == StreamResetReason::kProtocolError);
  }
  SECTION("closed before any response") {
    ClientFixture f;
    Response r;
    f.Send(r);
    f.Feed("", true);
    REQUIRE(r.reset.has_value());
    CHECK(*r.reset == StreamResetReason::kConnectionTermination);
  }
  SECTION("a 101 nobody asked for") {
    ClientFixture f;
    Response r;
    f.Send(r);
    CHECK_FALSE(f.Feed("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n").ok);
    CHECK(r.reset.has_value());
  }
  SECTION("connection: close") {
    ClientFixture f;
    Response r;
    f.Send(r);
    f.Feed("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
    CHECK(r.ended);
    CHECK_FALSE(f.codec->idle_and_reusable());
  }
}

TEST_CASE("http1 client: an upgrade the request asked for stops the parsing", "[http]") {
  ClientFixture f;
  Response r;
  RequestEncoder& e = f.codec->NewStream(r);
  RequestHeaderMap h;
  h.set_method("GET");
  h.set_path("/ws");
  h.set_authority("up");
  h.Add("upgrade", "websocket");
  e.EncodeHeaders(h, true);
  CHECK(f.conn.TakeWritten() ==
        "GET /ws HTTP/1.1\r\nhost: up\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n");
  f.Feed(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"
      "frame");
  REQUIRE(r.headers != nullptr);
  CHECK(r.headers->status() == 101);
  CHECK(r.headers->Get("upgrade") == "websocket");
  CHECK(f.conn.input().readable() == "frame");  // left for the tunnel
}

}  // namespace
}  // namespace weft::http
