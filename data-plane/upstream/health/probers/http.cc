// HTTP/1.1 health checks (see probers.h).
#include <map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "data-plane/http1/http1.h"
#include "data-plane/upstream/health/probers/internal.h"

namespace weft::upstream::health::probers_internal {
namespace {

using HttpHealthCheck = envoy::config::core::v3::HealthCheck::HttpHealthCheck;

struct Range {
  int64_t start;
  int64_t end;  // exclusive
  bool Contains(int status) const { return status >= start && status < end; }
};

std::string_view MethodName(envoy::config::core::v3::RequestMethod m) {
  using envoy::config::core::v3::RequestMethod;
  switch (m) {
    case envoy::config::core::v3::HEAD:
      return "HEAD";
    case envoy::config::core::v3::POST:
      return "POST";
    case envoy::config::core::v3::PUT:
      return "PUT";
    case envoy::config::core::v3::DELETE:
      return "DELETE";
    case envoy::config::core::v3::OPTIONS:
      return "OPTIONS";
    case envoy::config::core::v3::TRACE:
      return "TRACE";
    case envoy::config::core::v3::PATCH:
      return "PATCH";
    default:
      return "GET";
  }
}

class HttpProber final : public Prober {
 public:
  HttpProber(ProbeLoop* loop, std::string request, std::string method, std::vector<Range> expected,
             std::vector<Range> retriable)
      : loop_(loop),
        request_(std::move(request)),
        method_(std::move(method)),
        expected_(std::move(expected)),
        retriable_(std::move(retriable)) {}

  void Probe(const std::string& host, milliseconds timeout,
             std::function<void(ProbeResult)> done) override {
    Start(host, loop_->clock()->Now() + timeout, std::move(done), /*may_reuse=*/true);
  }

 private:
  class Conn;

  void Start(const std::string& host, Clock::TimePoint deadline,
             std::function<void(ProbeResult)> done, bool may_reuse);
  ProbeResult Classify(int status) const {
    for (const Range& r : expected_) {
      if (r.Contains(status)) return ProbeResult::kSuccess;
    }
    for (const Range& r : retriable_) {
      if (r.Contains(status)) return ProbeResult::kFailure;
    }
    return ProbeResult::kConclusiveFailure;
  }

  ProbeLoop* loop_;
  const std::string request_;
  const std::string method_;
  const std::vector<Range> expected_;
  const std::vector<Range> retriable_;
  KeptConnections<Conn, HttpProber> conns_;
};

class HttpProber::Conn final : public Session {
 public:
  Conn(HttpProber* owner, std::string host)
      : Session(owner->loop_), owner_(owner), host_(std::move(host)) {}

  bool busy() const { return done_ != nullptr; }
  bool reusable() const { return connected() && !busy(); }

  void Begin(Clock::TimePoint when, std::function<void(ProbeResult)> done, bool reused) {
    done_ = std::move(done);
    reused_ = reused;
    got_bytes_ = false;
    head_done_ = false;
    Arm(when);
    if (!Send(owner_->request_)) OnClosed();
  }

 protected:
  void OnConnected() override {}

  void OnReadable(net::Buffer& in) override {
    if (!busy()) {
      Close();  // nothing was asked: a server that talks unprompted is not reused
      return;
    }
    got_bytes_ = true;
    for (;;) {
      if (!head_done_) {
        http1::MessageHead head;
        http1::ParseError error;
        switch (http1::ParseResponseHead(in.readable(), owner_->method_, limits_, &head, &error)) {
          case http1::ParseStatus::kIncomplete:
            return;
          case http1::ParseStatus::kError:
            Close();
            Finish(ProbeResult::kFailure);
            return;
          case http1::ParseStatus::kDone:
            break;
        }
        in.Consume(head.head_size);
        if (head.status < 200) continue;  // 100 Continue and the like: the answer follows
        status_ = head.status;
        keep_alive_ = head.keep_alive;
        body_ = head.body;
        remaining_ = head.content_length;
        scanner_.Reset();
        head_done_ = true;
      }
      switch (body_) {
        case http1::BodyKind::kNone:
          Complete(in);
          return;
        case http1::BodyKind::kContentLength: {
          const uint64_t n = std::min<uint64_t>(remaining_, in.size());
          in.Consume(n);
          remaining_ -= n;
          if (remaining_ == 0) Complete(in);
          return;
        }
        case http1::BodyKind::kChunked: {
          size_t used = 0;
          switch (scanner_.Scan(in.readable(), &used)) {
            case http1::ChunkedScanner::Result::kMore:
              in.Consume(in.size());
              return;
            case http1::ChunkedScanner::Result::kDone:
              in.Consume(used);
              Complete(in);
              return;
            case http1::ChunkedScanner::Result::kError:
              Close();
              Finish(ProbeResult::kFailure);
              return;
          }
          return;
        }
        case http1::BodyKind::kUntilClose:
          in.Consume(in.size());  // the answer ends with the connection
          return;
      }
    }
  }

  void OnClosed() override {
    if (!busy()) return;  // an idle kept connection went away: the next probe reconnects
    if (head_done_ && body_ == http1::BodyKind::kUntilClose) {
      Finish(owner_->Classify(status_));
      return;
    }
    if (reused_ && !got_bytes_) {
      // The server closed the kept connection as the probe went out (its idle timeout): not
      // the host's failure. Once more, on a fresh connection, within the same deadline.
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
  void Complete(net::Buffer& in) {
    // Bytes beyond the answer were not asked for: do not reuse what sent them.
    if (!keep_alive_ || !in.empty()) Close();
    Finish(owner_->Classify(status_));
  }
  void Finish(ProbeResult result) {
    Disarm();
    head_done_ = false;
    auto done = std::exchange(done_, nullptr);
    if (done) done(result);  // last: the callback may start the next probe on this connection
  }

  HttpProber* owner_;
  std::string host_;
  std::function<void(ProbeResult)> done_;
  http1::Limits limits_;
  bool reused_ = false;
  bool got_bytes_ = false;
  bool head_done_ = false;
  int status_ = 0;
  bool keep_alive_ = true;
  http1::BodyKind body_ = http1::BodyKind::kNone;
  uint64_t remaining_ = 0;
  http1::ChunkedScanner scanner_;
};

void HttpProber::Start(const std::string& host, Clock::TimePoint deadline,
                       std::function<void(ProbeResult)> done, bool may_reuse) {
  conns_.Start(this, host, deadline, std::move(done), may_reuse);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Prober>> NewHttpProber(ProbeLoop* loop, const std::string& cluster,
                                                      const HttpHealthCheck& c) {
  auto ranges = [](const auto& list) {
    std::vector<Range> out;
    for (const auto& r : list) out.push_back(Range{r.start(), r.end()});
    return out;
  };
  std::vector<Range> expected = ranges(c.expected_statuses());
  if (expected.empty()) expected.push_back(Range{200, 201});  // Envoy's default
  const std::string method(MethodName(c.method()));
  // Envoy applies removals, then additions.
  std::vector<std::pair<std::string, std::string>> headers = {{"User-Agent", "Envoy/HC"}};
  for (const std::string& name : c.request_headers_to_remove()) {
    for (auto it = headers.begin(); it != headers.end();) {
      it = http1::EqualsIgnoreCase(it->first, name) ? headers.erase(it) : std::next(it);
    }
  }
  for (const auto& option : c.request_headers_to_add()) {
    const auto& h = option.header();
    headers.emplace_back(h.key(), h.raw_value().empty() ? h.value() : h.raw_value());
  }
  std::string request = absl::StrCat(
      method, " ", c.path(), " HTTP/1.1\r\nHost: ", c.host().empty() ? cluster : c.host(), "\r\n");
  for (const auto& [name, value] : headers) absl::StrAppend(&request, name, ": ", value, "\r\n");
  if (method == "POST" || method == "PUT" || method == "PATCH") request += "Content-Length: 0\r\n";
  request += "\r\n";
  return std::make_unique<HttpProber>(loop, std::move(request), method, std::move(expected),
                                      ranges(c.retriable_statuses()));
}

}  // namespace weft::upstream::health::probers_internal
