// gRPC health checks: grpc.health.v1.Health/Check over cleartext HTTP/2 (nghttp2), one kept
// connection per host, one stream per probe (see probers.h).
//
// The two messages are encoded here by hand (grpc/health/v1/health.proto): HealthCheckRequest
// is `string service = 1`, HealthCheckResponse is `ServingStatus status = 1` with SERVING = 1.
// Protobuf for two one-field messages would be more code than this.
#include <nghttp2/nghttp2.h>

#include <cstring>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/strings.h"
#include "data-plane/upstream/health/probers/internal.h"

namespace weft::upstream::health::probers_internal {
namespace {

constexpr int kServing = 1;

void AppendVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

// The length-prefixed message (gRPC over HTTP/2: flag byte, big-endian u32 length).
std::string FramedRequest(const std::string& service) {
  std::string message;
  if (!service.empty()) {
    message.push_back(0x0a);  // field 1, length-delimited
    AppendVarint(service.size(), &message);
    message += service;
  }
  std::string out(5, '\0');
  const auto n = static_cast<uint32_t>(message.size());
  out[1] = static_cast<char>(n >> 24);
  out[2] = static_cast<char>(n >> 16);
  out[3] = static_cast<char>(n >> 8);
  out[4] = static_cast<char>(n);
  return out + message;
}

// The status field of a framed HealthCheckResponse; nullopt when it does not parse. An absent
// field is UNKNOWN (0), as proto3 has it.
std::optional<int> ResponseStatus(std::string_view framed) {
  if (framed.size() < 5 || framed[0] != 0) return std::nullopt;  // compressed: not asked for
  const uint32_t n = (static_cast<uint32_t>(static_cast<uint8_t>(framed[1])) << 24) |
                     (static_cast<uint32_t>(static_cast<uint8_t>(framed[2])) << 16) |
                     (static_cast<uint32_t>(static_cast<uint8_t>(framed[3])) << 8) |
                     static_cast<uint32_t>(static_cast<uint8_t>(framed[4]));
  if (framed.size() != 5 + static_cast<size_t>(n)) return std::nullopt;
  std::string_view m = framed.substr(5);
  int status = 0;
  size_t i = 0;
  auto varint = [&](uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64 && i < m.size(); shift += 7) {
      const auto b = static_cast<uint8_t>(m[i++]);
      *v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;
  };
  while (i < m.size()) {
    uint64_t key = 0;
    uint64_t v = 0;
    if (!varint(&key)) return std::nullopt;
    switch (key & 7) {
      case 0:
        if (!varint(&v)) return std::nullopt;
        if (key >> 3 == 1) status = static_cast<int>(v);
        break;
      case 1:
        i += 8;
        break;
      case 2:
        if (!varint(&v) || v > m.size() - i) return std::nullopt;
        i += static_cast<size_t>(v);
        break;
      case 5:
        i += 4;
        break;
      default:
        return std::nullopt;
    }
    if (i > m.size()) return std::nullopt;
  }
  return status;
}

class GrpcProber final : public Prober {
 public:
  GrpcProber(ProbeLoop* loop, std::string authority, std::string body,
             std::vector<std::pair<std::string, std::string>> metadata)
      : loop_(loop),
        authority_(std::move(authority)),
        body_(std::move(body)),
        metadata_(std::move(metadata)) {}

  void Probe(const std::string& host, milliseconds timeout,
             std::function<void(ProbeResult)> done) override {
    Start(host, loop_->clock()->Now() + timeout, std::move(done), /*may_reuse=*/true);
  }

 private:
  class Conn;
  void Start(const std::string& host, Clock::TimePoint deadline,
             std::function<void(ProbeResult)> done, bool may_reuse);

  ProbeLoop* loop_;
  const std::string authority_;
  const std::string body_;
  const std::vector<std::pair<std::string, std::string>> metadata_;
  KeptConnections<Conn, GrpcProber> conns_;
};

class GrpcProber::Conn final : public Session {
 public:
  Conn(GrpcProber* owner, std::string host)
      : Session(owner->loop_), owner_(owner), host_(std::move(host)) {}
  ~Conn() override {
    if (session_ != nullptr) nghttp2_session_del(session_);
  }

  // A kept connection can carry the next probe until the server sent GOAWAY.
  bool reusable() const { return connected() && session_ != nullptr && !goaway_ && !busy(); }
  bool busy() const { return done_ != nullptr; }

  // Opens the HTTP/2 session and sends the request (once connected); what nghttp2 refuses
  // fails the probe.
  void Begin(Clock::TimePoint when, std::function<void(ProbeResult)> done, bool reused) {
    done_ = std::move(done);
    reused_ = reused;
    got_bytes_ = false;
    http_status_ = 0;
    grpc_status_.reset();
    response_.clear();
    Arm(when);
    if ((session_ == nullptr && !NewSession()) || !Submit() || !Flush()) Fail();
  }

 protected:
  void OnConnected() override {}

  void OnReadable(net::Buffer& in) override {
    if (busy()) got_bytes_ = true;
    const ssize_t used = nghttp2_session_mem_recv(
        session_, reinterpret_cast<const uint8_t*>(in.readable().data()), in.size());
    in.Consume(in.size());
    if (used < 0) {
      Close();
      if (busy()) Finish(ProbeResult::kFailure);
      return;
    }
    if (!Flush() && busy()) Finish(ProbeResult::kFailure);
  }

  void OnClosed() override {
    if (!busy()) return;
    if (reused_ && !got_bytes_) {
      // The server closed the kept connection as the probe went out: once more, fresh.
      owner_->Start(host_, deadline, std::exchange(done_, nullptr), /*may_reuse=*/false);
      return;
    }
    Finish(ProbeResult::kFailure);
  }

  void OnTimeout() override {
    Close();
    Finish(ProbeResult::kTimeout);
  }

 private:
  void Fail() {
    Close();
    Finish(ProbeResult::kFailure);
  }

  void Finish(ProbeResult result) {
    Disarm();
    stream_id_ = -1;
    auto done = std::exchange(done_, nullptr);
    if (done) done(result);
  }

  bool NewSession() {
    nghttp2_session_callbacks* callbacks = nullptr;
    if (nghttp2_session_callbacks_new(&callbacks) != 0) return false;
    nghttp2_session_callbacks_set_on_header_callback(callbacks, &Conn::OnHeader);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, &Conn::OnData);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, &Conn::OnFrame);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, &Conn::OnStreamClose);
    const int rv = nghttp2_session_client_new(&session_, callbacks, this);
    nghttp2_session_callbacks_del(callbacks);
    if (rv != 0) {
      session_ = nullptr;
      return false;
    }
    nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0}};
    return nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, 1) == 0;
  }

  bool Submit() {
    auto nv = [](std::string_view name, std::string_view value) {
      return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                        reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(),
                        value.size(), NGHTTP2_NV_FLAG_NONE};
    };
    std::vector<nghttp2_nv> headers = {
        nv(":method", "POST"),
        nv(":scheme", "http"),
        nv(":path", "/grpc.health.v1.Health/Check"),
        nv(":authority", owner_->authority_),
        nv("content-type", "application/grpc"),
        nv("te", "trailers"),
        nv("user-agent", "Envoy/HC"),
    };
    for (const auto& [name, value] : owner_->metadata_) headers.push_back(nv(name, value));
    body_sent_ = 0;
    nghttp2_data_provider body{};
    body.read_callback = &Conn::ReadBody;
    stream_id_ =
        nghttp2_submit_request(session_, nullptr, headers.data(), headers.size(), &body, this);
    return stream_id_ > 0;
  }

  // Hands what nghttp2 has queued to the socket. False when the connection broke.
  bool Flush() {
    for (;;) {
      const uint8_t* data = nullptr;
      const ssize_t n = nghttp2_session_mem_send(session_, &data);
      if (n < 0) {
        Close();
        return false;
      }
      if (n == 0) break;
      if (!Send(std::string_view(reinterpret_cast<const char*>(data), static_cast<size_t>(n)))) {
        return false;
      }
    }
    if (nghttp2_session_want_read(session_) == 0 && nghttp2_session_want_write(session_) == 0) {
      goaway_ = true;  // nothing more can happen on this session
    }
    return true;
  }

  static Conn* From(void* user) { return static_cast<Conn*>(user); }

  static ssize_t ReadBody(nghttp2_session*, int32_t, uint8_t* buf, size_t length, uint32_t* flags,
                          nghttp2_data_source*, void* user) {
    Conn* c = From(user);
    const std::string& body = c->owner_->body_;
    const size_t n = std::min(length, body.size() - c->body_sent_);
    std::memcpy(buf, body.data() + c->body_sent_, n);
    c->body_sent_ += n;
    if (c->body_sent_ == body.size()) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
  }

  static int OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void* user) {
    Conn* c = From(user);
    if (frame->hd.type != NGHTTP2_HEADERS || frame->hd.stream_id != c->stream_id_) return 0;
    std::string_view n(reinterpret_cast<const char*>(name), namelen);
    std::string_view v(reinterpret_cast<const char*>(value), valuelen);
    if (n == ":status") {
      if (!absl::SimpleAtoi(Sv(v), &c->http_status_)) c->http_status_ = 0;
    } else if (n == "grpc-status") {
      int code = 0;
      c->grpc_status_ = absl::SimpleAtoi(Sv(v), &code) ? code : 2;  // UNKNOWN
    }
    return 0;
  }

  static int OnData(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data, size_t len,
                    void* user) {
    Conn* c = From(user);
    // One small message is expected; a server that streams more is failing the check anyway.
    if (stream_id == c->stream_id_ && c->response_.size() < 64 * 1024) {
      c->response_.append(reinterpret_cast<const char*>(data), len);
    }
    return 0;
  }

  static int OnFrame(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    if (frame->hd.type == NGHTTP2_GOAWAY) From(user)->goaway_ = true;
    return 0;
  }

  static int OnStreamClose(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* user) {
    Conn* c = From(user);
    if (stream_id != c->stream_id_ || !c->busy()) return 0;
    bool serving = false;
    if (error_code == NGHTTP2_NO_ERROR && c->http_status_ == 200 && c->grpc_status_ == 0) {
      serving = ResponseStatus(c->response_) == kServing;
    }
    c->Finish(serving ? ProbeResult::kSuccess : ProbeResult::kFailure);
    return 0;
  }

  GrpcProber* owner_;
  std::string host_;
  nghttp2_session* session_ = nullptr;
  std::function<void(ProbeResult)> done_;
  int32_t stream_id_ = -1;
  size_t body_sent_ = 0;
  bool reused_ = false;
  bool got_bytes_ = false;
  bool goaway_ = false;
  int http_status_ = 0;
  std::optional<int> grpc_status_;
  std::string response_;
};

void GrpcProber::Start(const std::string& host, Clock::TimePoint deadline,
                       std::function<void(ProbeResult)> done, bool may_reuse) {
  conns_.Start(this, host, deadline, std::move(done), may_reuse);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Prober>> NewGrpcProber(
    ProbeLoop* loop, const std::string& cluster,
    const envoy::config::core::v3::HealthCheck::GrpcHealthCheck& c) {
  std::vector<std::pair<std::string, std::string>> metadata;
  for (const auto& option : c.initial_metadata()) {
    const auto& h = option.header();
    // HTTP/2 header names are lower case.
    metadata.emplace_back(absl::AsciiStrToLower(h.key()),
                          h.raw_value().empty() ? h.value() : h.raw_value());
  }
  return std::make_unique<GrpcProber>(loop, c.authority().empty() ? cluster : c.authority(),
                                      FramedRequest(c.service_name()), std::move(metadata));
}

}  // namespace weft::upstream::health::probers_internal
