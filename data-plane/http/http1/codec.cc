#include "data-plane/http/http1/codec.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/http/reason_phrase.h"
#include "common/strings.h"

namespace weft::http {

std::string_view ProtocolName(Protocol protocol) {
  switch (protocol) {
    case Protocol::kHttp10:
      return "HTTP/1.0";
    case Protocol::kHttp11:
      return "HTTP/1.1";
    case Protocol::kHttp2:
      return "HTTP/2";
  }
  return "HTTP/1.1";
}

namespace http1 {
namespace {

namespace p = weft::http1;
using p::BodyKind;
using p::EqualsIgnoreCase;

// True when `list` (a Connection header value) names `name` as one of its tokens.
bool ListNames(std::string_view list, std::string_view name) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view token = list.substr(0, comma);
    while (!token.empty() && (token.front() == ' ' || token.front() == '\t'))
      token.remove_prefix(1);
    while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
    if (EqualsIgnoreCase(token, name)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

// Headers the proxy itself sets from the message's framing: never copied.
bool IsFraming(std::string_view name) {
  return EqualsIgnoreCase(name, "content-length") || EqualsIgnoreCase(name, "expect");
}

void AppendHeaders(const HeaderMap& map, std::string* out) {
  for (size_t i = 0; i < map.size(); ++i) {
    HeaderMap::Entry e = map.at(i);
    absl::StrAppend(out, Sv(e.name), ": ", Sv(e.value), "\r\n");
  }
}

// Chunked framing for one piece of body.
void AppendChunk(std::string_view data, std::string* out) {
  absl::StrAppend(out, absl::Hex(data.size()), "\r\n");
  out->append(data);
  out->append("\r\n");
}

// A piece of body as it goes on the wire: chunk-framed (the last one with the final chunk)
// or as it is.
void WriteBody(network::Connection& conn, std::string_view data, bool end_stream, bool chunked,
               std::string* scratch) {
  if (!chunked) {
    conn.Write(data);
    return;
  }
  scratch->clear();
  if (!data.empty()) AppendChunk(data, scratch);
  if (end_stream) *scratch += "0\r\n\r\n";
  conn.Write(*scratch);
}

// An absolute-form target ("http://host:port/path?q") as :authority and origin-form :path.
// False when `target` is not absolute-form.
bool SplitAbsolute(std::string_view target, std::string_view* authority, std::string_view* path) {
  size_t scheme_end = target.find("://");
  if (scheme_end == std::string_view::npos || scheme_end == 0) return false;
  for (char c : target.substr(0, scheme_end)) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' ||
          c == '-' || c == '.')) {
      return false;
    }
  }
  std::string_view rest = target.substr(scheme_end + 3);
  size_t slash = rest.find_first_of("/?");
  *authority = rest.substr(0, slash);
  // userinfo ("user@host") is not allowed in http(s) URIs (RFC 9110 §4.2.4).
  if (authority->empty() || authority->find('@') != std::string_view::npos) return false;
  *path = slash == std::string_view::npos ? std::string_view("/") : rest.substr(slash);
  return true;
}

// ---------------------------------------------------------------------------------------------

class ServerCodecImpl final : public ServerCodec, public ResponseEncoder {
 public:
  ServerCodecImpl(network::Connection& conn, ServerCodecCallbacks& callbacks,
                  const p::Limits& limits)
      : conn_(conn), callbacks_(callbacks), limits_(limits) {}

  DispatchResult Dispatch(net::Buffer& data, bool end_stream) override {
    for (;;) {
      switch (state_) {
        case State::kHead: {
          if (data.empty()) {
            partial_head_ = false;
            return {};
          }
          p::ParseError error;
          auto status = p::ParseRequestHead(data.readable(), limits_, &head_, &error);
          if (status == p::ParseStatus::kIncomplete) {
            partial_head_ = true;
            return {};
          }
          partial_head_ = false;
          if (status == p::ParseStatus::kError) {
            StartStream();
            state_ = State::kDone;
            wants_close_ = true;
            return DispatchResult::Error(error.status, error.reason);
          }
          StartStream();
          FillRequest();
          data.Consume(head_.head_size);
          const bool bodiless = body_ == BodyKind::kNone;
          request_complete_ = bodiless;
          state_ = bodiless ? State::kWaitResponse : State::kBody;
          const uint64_t gen = generation_;
          decoder_->DecodeHeaders(headers_, bodiless);
          if (gen != generation_ || state_ == State::kDone) return {};
          break;
        }
        case State::kBody: {
          DispatchResult r = DecodeBody(data);
          if (!r.ok) return r;
          if (state_ == State::kBody) {
            if (end_stream && data.empty()) {
              // The client went away in the middle of its body.
              state_ = State::kDone;
              wants_close_ = true;
              if (decoder_ != nullptr)
                decoder_->OnResetStream(StreamResetReason::kConnectionTermination);
            }
            return {};
          }
          break;
        }
        case State::kWaitResponse:
        case State::kUpgraded:
        case State::kDone:
          return {};
      }
    }
  }

  Protocol protocol() const override {
    return version_minor_ == 0 ? Protocol::kHttp10 : Protocol::kHttp11;
  }
  bool partial_head() const override { return partial_head_; }
  void CloseAfterResponse() override { close_after_response_ = true; }
  bool wants_close() const override { return wants_close_; }
  void OnStreamComplete() override {
    ++generation_;
    decoder_ = nullptr;
    if (!response_complete_ || !request_complete_ || close_after_response_) wants_close_ = true;
    if (state_ == State::kUpgraded) return;
    state_ = wants_close_ ? State::kDone : State::kHead;
  }

  void OpenStreamForError() override {
    StartStream();
    state_ = State::kDone;
    wants_close_ = true;
    partial_head_ = false;
  }

  // --- ResponseEncoder ---
  void Encode100Continue() override {
    if (version_minor_ == 1 && !response_started_) conn_.Write("HTTP/1.1 100 Continue\r\n\r\n");
  }

  void EncodeHeaders(const ResponseHeaderMap& h, bool end_stream) override {
    response_started_ = true;
    const int status = h.status();
    const bool bodiless = status < 200 || status == 204 || status == 304 || head_request_;
    bool keep = keep_alive_ && !close_after_response_ && request_complete_;
    scratch_.clear();
    absl::StrAppend(&scratch_, "HTTP/1.", version_minor_, " ", status, " ",
                    Sv(http::ReasonPhrase(status)), "\r\n");
    AppendHeaders(h, &scratch_);
    chunked_ = false;
    if (status == 101) {
      scratch_ += "connection: upgrade\r\n";
      state_ = State::kUpgraded;
      keep = true;  // no "connection: close" on a 101
    } else if (!bodiless && !h.Has("content-length")) {
      if (end_stream) {
        scratch_ += "content-length: 0\r\n";
      } else if (version_minor_ == 1) {
        scratch_ += "transfer-encoding: chunked\r\n";
        chunked_ = true;
      } else {
        keep = false;  // HTTP/1.0: the body ends with the connection
      }
    }
    if (status != 101) {
      if (!keep) {
        scratch_ += "connection: close\r\n";
        wants_close_ = true;
      } else if (version_minor_ == 0) {
        scratch_ += "connection: keep-alive\r\n";
      }
    }
    scratch_ += "\r\n";
    bodiless_response_ = bodiless;
    conn_.Write(scratch_);
    if (end_stream) response_complete_ = true;
  }

  void EncodeData(std::string_view data, bool end_stream) override {
    if (!bodiless_response_ || state_ == State::kUpgraded) {
      WriteBody(conn_, data, end_stream, chunked_, &scratch_);
    }
    if (end_stream) response_complete_ = true;
  }

  void EncodeTrailers(const TrailerMap&) override {
    // HTTP/1 trailers are dropped (as Envoy without enable_trailers); the body ends here.
    EncodeData({}, true);
  }

 private:
  enum class State : uint8_t { kHead, kBody, kWaitResponse, kUpgraded, kDone };

  void StartStream() {
    ++generation_;
    response_started_ = false;
    response_complete_ = false;
    request_complete_ = false;
    bodiless_response_ = false;
    chunked_ = false;
    headers_.Clear();
    decoder_ = &callbacks_.NewStream(*this);
  }

  void FillRequest() {
    version_minor_ = head_.version_minor;
    keep_alive_ = head_.keep_alive;
    head_request_ = head_.method == "HEAD";
    body_ = head_.body;
    body_remaining_ = body_ == BodyKind::kContentLength ? head_.content_length : 0;
    chunked_in_.Reset();
    headers_.set_method(head_.method);
    std::string_view authority;
    std::string_view path;
    if (head_.method != "CONNECT" && SplitAbsolute(head_.target, &authority, &path)) {
      headers_.set_path(path);
      headers_.set_authority(authority);
    } else {
      headers_.set_path(head_.target);
      headers_.set_authority(head_.host);
    }
    headers_.set_scheme("http");
    CopyEndToEndHeaders(head_, head_.upgrade, &headers_);
    if (body_ == BodyKind::kContentLength) {
      headers_.Add("content-length", absl::StrCat(head_.content_length));
    }
    // The manager answers it (as Envoy does) and takes it out before the request goes on.
    if (head_.expect_continue) headers_.Add("expect", "100-continue");
  }

  DispatchResult DecodeBody(net::Buffer& data) {
    std::string_view in = data.readable();
    if (in.empty()) return {};
    const uint64_t gen = generation_;
    if (body_ == BodyKind::kContentLength) {
      const size_t take = static_cast<size_t>(std::min<uint64_t>(body_remaining_, in.size()));
      body_remaining_ -= take;
      const bool done = body_remaining_ == 0;
      if (done) Finish();
      decoder_->DecodeData(in.substr(0, take), done);
      data.Consume(take);
      return {};
    }
    size_t consumed = 0;
    pieces_.clear();
    auto result = chunked_in_.Scan(in, &consumed, &pieces_);
    if (result == p::ChunkedScanner::Result::kError) {
      state_ = State::kDone;
      wants_close_ = true;
      return DispatchResult::Error(400, "bad chunked body");
    }
    const bool done = result == p::ChunkedScanner::Result::kDone;
    if (done) Finish();
    for (size_t i = 0; i < pieces_.size(); ++i) {
      const bool last = done && i + 1 == pieces_.size();
      decoder_->DecodeData(pieces_[i], last);
      if (gen != generation_) break;
    }
    if (done && pieces_.empty() && gen == generation_) decoder_->DecodeData({}, true);
    data.Consume(consumed);
    return {};
  }

  void Finish() {
    request_complete_ = true;
    state_ = State::kWaitResponse;
  }

  network::Connection& conn_;
  ServerCodecCallbacks& callbacks_;
  p::Limits limits_;
  State state_ = State::kHead;
  p::MessageHead head_;
  RequestHeaderMap headers_;
  RequestDecoder* decoder_ = nullptr;
  uint64_t generation_ = 0;  // moves whenever a stream starts or ends under a callback
  BodyKind body_ = BodyKind::kNone;
  uint64_t body_remaining_ = 0;
  p::ChunkedScanner chunked_in_;
  std::vector<std::string_view> pieces_;
  int version_minor_ = 1;
  bool keep_alive_ = true;
  bool head_request_ = false;
  bool partial_head_ = false;
  bool request_complete_ = false;
  bool response_started_ = false;
  bool response_complete_ = false;
  bool bodiless_response_ = false;
  bool chunked_ = false;
  bool close_after_response_ = false;
  bool wants_close_ = false;
  std::string scratch_;
};

// ---------------------------------------------------------------------------------------------

class ClientCodecImpl final : public ClientCodec, public RequestEncoder {
 public:
  explicit ClientCodecImpl(network::Connection& conn) : conn_(conn) {}

  RequestEncoder& NewStream(ResponseDecoder& decoder) override {
    ++generation_;
    decoder_ = &decoder;
    state_ = State::kHead;
    request_started_ = false;
    request_complete_ = false;
    upgrade_requested_ = false;
    chunked_out_ = false;
    response_.Clear();
    return *this;
  }

  // --- RequestEncoder ---
  void EncodeHeaders(const RequestHeaderMap& h, bool end_stream) override {
    method_.assign(h.method());
    upgrade_requested_ = h.Has("upgrade");
    scratch_.clear();
    absl::StrAppend(&scratch_, Sv(h.method()), " ", Sv(h.path()), " HTTP/1.1\r\n");
    if (!h.authority().empty()) absl::StrAppend(&scratch_, "host: ", Sv(h.authority()), "\r\n");
    AppendHeaders(h, &scratch_);
    if (upgrade_requested_) scratch_ += "connection: upgrade\r\n";
    if (!end_stream && !h.Has("content-length")) {
      scratch_ += "transfer-encoding: chunked\r\n";
      chunked_out_ = true;
    }
    scratch_ += "\r\n";
    request_started_ = true;
    request_complete_ = end_stream;
    conn_.Write(scratch_);
  }

  void EncodeData(std::string_view data, bool end_stream) override {
    WriteBody(conn_, data, end_stream, chunked_out_, &scratch_);
    if (end_stream) request_complete_ = true;
  }

  void EncodeTrailers(const TrailerMap&) override { EncodeData({}, true); }

  // --- ClientCodec ---
  DispatchResult Dispatch(net::Buffer& data, bool end_stream) override {
    for (;;) {
      switch (state_) {
        case State::kIdle:
          if (!data.empty() || end_stream) reusable_ = false;  // nobody asked: the server is odd
          return {};
        case State::kUpgraded:
          return {};
        case State::kHead: {
          if (data.empty() && !end_stream) return {};
          p::ParseError error;
          auto status = p::ParseResponseHead(data.readable(), method_, p::Limits{}, &head_, &error);
          if (status == p::ParseStatus::kIncomplete) {
            if (end_stream) {
              Reset(StreamResetReason::kConnectionTermination,
                    data.empty() ? "connection closed before the response"
                                 : "connection closed in the response head");
            }
            return {};
          }
          if (status == p::ParseStatus::kError) {
            Reset(StreamResetReason::kProtocolError, error.reason);
            return DispatchResult::Error(502, error.reason);
          }
          if (head_.status < 200) {
            if (head_.status == 101 && upgrade_requested_) {
              FillResponse();
              data.Consume(head_.head_size);
              state_ = State::kUpgraded;
              reusable_ = false;
              decoder_->DecodeHeaders(response_, false);
              return {};
            }
            if (head_.status == 101) {
              Reset(StreamResetReason::kProtocolError, "a 101 the request did not ask for");
              return DispatchResult::Error(502, "unexpected 101");
            }
            data.Consume(head_.head_size);  // 100 Continue, 103: the final response follows
            continue;
          }
          FillResponse();
          data.Consume(head_.head_size);
          body_ = head_.body;
          body_remaining_ = body_ == BodyKind::kContentLength ? head_.content_length : 0;
          chunked_in_.Reset();
          keep_alive_ = head_.keep_alive;
          const bool bodiless = body_ == BodyKind::kNone;
          state_ = bodiless ? State::kIdle : State::kBody;
          ResponseDecoder* decoder = decoder_;
          const uint64_t gen = generation_;
          if (bodiless) Complete(data);
          decoder->DecodeHeaders(response_, bodiless);
          if (bodiless || gen != generation_) return {};
          break;
        }
        case State::kBody: {
          DispatchResult r = DecodeBody(data, end_stream);
          if (!r.ok || state_ != State::kIdle) return r;
          return {};
        }
      }
    }
  }

  void OnConnectionClosed(std::string_view detail) override {
    reusable_ = false;
    if (state_ == State::kBody && body_ == BodyKind::kUntilClose) {
      net::Buffer empty;
      DecodeBody(empty, true);
      return;
    }
    if (decoder_ != nullptr && state_ != State::kUpgraded) {
      Reset(StreamResetReason::kConnectionTermination, detail);
    }
  }

  bool idle_and_reusable() const override {
    return state_ == State::kIdle && decoder_ == nullptr && reusable_;
  }
  bool request_started() const override { return request_started_; }
  void AbandonStream() override {
    ++generation_;
    decoder_ = nullptr;
    reusable_ = false;
    state_ = State::kIdle;
  }

 private:
  enum class State : uint8_t { kIdle, kHead, kBody, kUpgraded };

  void FillResponse() {
    response_.Clear();
    response_.set_status(head_.status);
    CopyEndToEndHeaders(head_, head_.status == 101, &response_);
    if (head_.body == BodyKind::kContentLength ||
        (head_.body == BodyKind::kNone && head_.Find("content-length", nullptr))) {
      std::string_view cl;
      head_.Find("content-length", &cl);
      if (head_.body == BodyKind::kContentLength) {
        response_.Add("content-length", absl::StrCat(head_.content_length));
      } else if (!cl.empty()) {
        response_.Add("content-length", cl);  // HEAD / 304: the length of what is not sent
      }
    }
  }

  // The response ended: the stream is over, the connection reusable if both sides agree.
  void Complete(const net::Buffer& rest) {
    ++generation_;
    decoder_ = nullptr;
    state_ = State::kIdle;
    reusable_ = reusable_ && keep_alive_ && request_complete_ && rest.empty() &&
                body_ != BodyKind::kUntilClose;
  }

  void Reset(StreamResetReason reason, std::string_view detail) {
    reusable_ = false;
    ResponseDecoder* decoder = decoder_;
    ++generation_;
    decoder_ = nullptr;
    state_ = State::kIdle;
    if (decoder != nullptr) decoder->OnResetStream(reason, detail);
  }

  DispatchResult DecodeBody(net::Buffer& data, bool end_stream) {
    std::string_view in = data.readable();
    ResponseDecoder* decoder = decoder_;
    const uint64_t gen = generation_;
    switch (body_) {
      case BodyKind::kContentLength: {
        const size_t take = static_cast<size_t>(std::min<uint64_t>(body_remaining_, in.size()));
        body_remaining_ -= take;
        const bool done = body_remaining_ == 0;
        if (take > 0 || done) {
          std::string_view piece = in.substr(0, take);
          data.Consume(take);  // views stay valid: Consume never moves bytes
          if (done) Complete(data);
          decoder->DecodeData(piece, done);
          if (done || gen != generation_) return {};
        }
        if (end_stream) {
          Reset(StreamResetReason::kConnectionTermination, "connection closed in the body");
        }
        return {};
      }
      case BodyKind::kChunked: {
        size_t consumed = 0;
        pieces_.clear();
        auto result = chunked_in_.Scan(in, &consumed, &pieces_);
        if (result == p::ChunkedScanner::Result::kError) {
          Reset(StreamResetReason::kProtocolError, "bad chunked body");
          return DispatchResult::Error(502, "bad chunked body");
        }
        const bool done = result == p::ChunkedScanner::Result::kDone;
        data.Consume(consumed);
        if (done) Complete(data);
        for (size_t i = 0; i < pieces_.size(); ++i) {
          decoder->DecodeData(pieces_[i], done && i + 1 == pieces_.size());
          if (!done && gen != generation_) return {};
        }
        if (done && pieces_.empty()) decoder->DecodeData({}, true);
        if (!done && end_stream) {
          Reset(StreamResetReason::kConnectionTermination, "connection closed in the body");
        }
        return {};
      }
      case BodyKind::kUntilClose: {
        data.Consume(in.size());
        if (end_stream) Complete(data);
        if (!in.empty() || end_stream) decoder->DecodeData(in, end_stream);
        return {};
      }
      case BodyKind::kNone:
        return {};
    }
    return {};
  }

  network::Connection& conn_;
  State state_ = State::kIdle;
  ResponseDecoder* decoder_ = nullptr;
  uint64_t generation_ = 0;
  p::MessageHead head_;
  ResponseHeaderMap response_;
  std::string method_;
  BodyKind body_ = BodyKind::kNone;
  uint64_t body_remaining_ = 0;
  p::ChunkedScanner chunked_in_;
  std::vector<std::string_view> pieces_;
  bool keep_alive_ = true;
  bool reusable_ = true;
  bool request_started_ = false;
  bool request_complete_ = false;
  bool upgrade_requested_ = false;
  bool chunked_out_ = false;
  std::string scratch_;
};

}  // namespace

void CopyEndToEndHeaders(const p::MessageHead& head, bool keep_upgrade, HeaderMap* map) {
  // The Connection header's tokens name more hop-by-hop headers (RFC 9110 §7.6.1).
  bool has_connection = false;
  for (const p::Header& h : head.headers) {
    if (EqualsIgnoreCase(h.name, "connection")) {
      has_connection = true;
      break;
    }
  }
  for (const p::Header& h : head.headers) {
    if (keep_upgrade && EqualsIgnoreCase(h.name, "upgrade")) {
      map->Add("upgrade", h.value);
      continue;
    }
    if (p::IsHopByHop(h.name) || IsFraming(h.name) || EqualsIgnoreCase(h.name, "host")) continue;
    if (has_connection) {
      bool named = false;
      for (const p::Header& c : head.headers) {
        if (EqualsIgnoreCase(c.name, "connection") && ListNames(c.value, h.name)) named = true;
      }
      if (named) continue;
    }
    map->Add(h.name, h.value);
  }
}

std::unique_ptr<ServerCodec> NewServerCodec(network::Connection& connection,
                                            ServerCodecCallbacks& callbacks,
                                            const weft::http1::Limits& limits) {
  return std::make_unique<ServerCodecImpl>(connection, callbacks, limits);
}

std::unique_ptr<ClientCodec> NewClientCodec(network::Connection& connection) {
  return std::make_unique<ClientCodecImpl>(connection);
}

}  // namespace http1
}  // namespace weft::http
