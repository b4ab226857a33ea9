// The HTTP/1 codec behind the connection manager (data-plane/http/http1/codec.h), on a fake
// connection: server side, requests arrive in pieces and each complete one is answered before
// the next is parsed, as the manager does; client side, a request is sent and the response
// bytes are decoded. The first byte picks the side, the method and the read sizes.
// A server codec must complete exactly the requests the plain parser frames
// (tests/differential/http1_framing.h), before any refusal or connection end.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "data-plane/http/http1/codec.h"
#include "fuzz/check.h"
#include "tests/differential/http1_framing.h"
#include "tests/unit/fake_connection.h"

using weft::http::DispatchResult;
using weft::http::RequestDecoder;
using weft::http::RequestHeaderMap;
using weft::http::ResponseEncoder;
using weft::http::ResponseHeaderMap;
using weft::http::TrailerMap;

namespace {

struct Stream final : RequestDecoder {
  bool ended = false;
  bool reset = false;
  void DecodeHeaders(RequestHeaderMap& h, bool end_stream) override {
    (void)h.method();
    (void)h.path();
    (void)h.authority();
    ended = end_stream;
  }
  void DecodeData(std::string_view, bool end_stream) override { ended = ended || end_stream; }
  void DecodeTrailers(TrailerMap&) override { ended = true; }
  void OnResetStream(weft::http::StreamResetReason) override { reset = true; }
};

struct Server final : weft::http::ServerCodecCallbacks {
  std::vector<std::unique_ptr<Stream>> streams;
  ResponseEncoder* encoder = nullptr;
  RequestDecoder& NewStream(ResponseEncoder& e) override {
    encoder = &e;
    streams.push_back(std::make_unique<Stream>());
    return *streams.back();
  }
};

struct Response final : weft::http::ResponseDecoder {
  int headers = 0;
  bool ended = false;
  void DecodeHeaders(ResponseHeaderMap& h, bool end_stream) override {
    (void)h.status();
    ++headers;
    ended = end_stream;
  }
  void DecodeData(std::string_view, bool end_stream) override { ended = ended || end_stream; }
  void DecodeTrailers(TrailerMap&) override { ended = true; }
  void OnResetStream(weft::http::StreamResetReason, std::string_view) override {}
};

size_t NextPiece(uint32_t* seed, size_t left) {
  *seed = *seed * 1103515245u + 12345u;
  return std::min(left, size_t{1} + (*seed >> 16) % 97);
}

void FuzzServer(std::string_view data, uint32_t seed) {
  weft::testing::FakeConnection conn;
  Server server;
  auto codec = weft::http::http1::NewServerCodec(conn, server, weft::http1::Limits{});
  size_t answered = 0;
  bool failed = false;
  bool closed = false;
  for (size_t at = 0; at < data.size() && !failed && !closed;) {
    size_t n = NextPiece(&seed, data.size() - at);
    conn.input().Append(data.substr(at, n));
    at += n;
    // Dispatch, answering each complete request, until no new request completes.
    for (int guard = 0; guard < 64; ++guard) {
      DispatchResult r = codec->Dispatch(conn.input(), false);
      if (!r.ok) {
        WEFT_FUZZ_CHECK(r.status >= 400 && r.status < 600 && !r.reason.empty());
        failed = true;
        break;
      }
      if (server.streams.size() <= answered || !server.streams[answered]->ended) break;
      ResponseHeaderMap response;
      response.set_status(200);
      response.Add("content-length", "2");
      server.encoder->EncodeHeaders(response, false);
      server.encoder->EncodeData("ok", true);
      ++answered;
      codec->OnStreamComplete();
      (void)conn.TakeWritten();
      if (codec->wants_close()) {
        closed = true;
        break;
      }
    }
  }
  weft::http1::Framing framing = weft::http1::FrameRequests(data);
  if (framing.end == weft::http1::Framing::End::kIncomplete ||
      framing.end == weft::http1::Framing::End::kClosed) {
    // Everything the parser frames completed in the codec, and nothing more (a refusal can
    // only come at or after the last framed message).
    WEFT_FUZZ_CHECK(answered <= framing.ends.size());
    if (!failed) WEFT_FUZZ_CHECK(answered == framing.ends.size());
  }
}

void FuzzClient(std::string_view data, uint32_t seed, std::string_view method) {
  weft::testing::FakeConnection conn;
  auto codec = weft::http::http1::NewClientCodec(conn);
  Response response;
  weft::http::RequestEncoder& encoder = codec->NewStream(response);
  RequestHeaderMap h;
  h.set_method(method);
  h.set_path("/p");
  h.set_authority("up");
  encoder.EncodeHeaders(h, true);
  for (size_t at = 0; at < data.size();) {
    size_t n = NextPiece(&seed, data.size() - at);
    conn.input().Append(data.substr(at, n));
    at += n;
    DispatchResult r = codec->Dispatch(conn.input(), at == data.size());
    if (!r.ok) {
      WEFT_FUZZ_CHECK(!r.reason.empty());
      return;
    }
    if (response.ended) break;
  }
  if (!response.ended) codec->OnConnectionClosed("fuzz: end of input");
  WEFT_FUZZ_CHECK(response.headers <= 1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  if (size == 0) return 0;
  static constexpr std::string_view kMethods[] = {"GET", "HEAD", "POST", "CONNECT"};
  const uint8_t selector = bytes[0];
  std::string_view data(reinterpret_cast<const char*>(bytes + 1), size - 1);
  if (selector & 1) {
    FuzzClient(data, selector, kMethods[(selector >> 1) % 4]);
  } else {
    FuzzServer(data, selector);
  }
  return 0;
}
