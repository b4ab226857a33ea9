#include "data-plane/http/filters/fault/filter.h"

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "data-plane/stats/proxy_stats.h"

namespace weft::http::fault {
namespace {

class FaultFilter final : public Filter {
 public:
  FaultFilter(StreamFilterCallbacks& callbacks, std::shared_ptr<const FaultFilterConfig> config)
      : cb_(callbacks), config_(std::move(config)) {}

  FilterStatus DecodeHeaders(RequestHeaderMap& headers, bool) override {
    RequestInfo request;
    request.line = {headers.method(), headers.path(), headers.authority(), headers.scheme()};
    request.headers = &static_cast<const router::HeaderLookup&>(headers);
    request.cluster = cb_.route().cluster;
    decision_ = config_->Decide(request, cb_.random());
    if (decision_.overflow) cb_.counters().Counter(kFaultsOverflowStat).Inc();
    if (decision_.delay) {
      cb_.counters().Counter(kDelaysInjectedStat).Inc();
      cb_.info().AddFlag(ResponseFlag::kDelayInjected);
      delaying_ = true;
      cb_.WakeAt(this, cb_.now() + *decision_.delay);
      return FilterStatus::kStop;
    }
    if (decision_.abort) {
      SendAbort();
      return FilterStatus::kStop;
    }
    return FilterStatus::kContinue;
  }

  void OnTimer(Clock::TimePoint) override {
    if (!delaying_) return;
    delaying_ = false;
    if (decision_.abort) {
      SendAbort();
      return;
    }
    // The fault is over: its max_active_faults slot goes back before the request goes on.
    decision_.active.Release();
    cb_.ContinueDecoding();
  }

  void OnStreamEnd() override {
    delaying_ = false;
    decision_.active.Release();
  }

 private:
  void SendAbort() {
    const Abort abort = *decision_.abort;
    cb_.counters().Counter(kAbortsInjectedStat).Inc();
    if (!abort.grpc_status) {
      cb_.SendLocalReply(static_cast<int>(abort.http_status), kAbortBody,
                         ResponseFlag::kFaultInjected, kAbortDetails);
      return;
    }
    // A gRPC client reads the status from grpc-status: a trailers-only response.
    StreamInfo& info = cb_.info();
    info.AddFlag(ResponseFlag::kFaultInjected);
    info.details.assign(kAbortDetails);
    ResponseHeaderMap& h = grpc_reply_;
    h.Clear();
    h.set_status(200);
    h.Add("content-type", "application/grpc");
    h.Add("grpc-status", absl::StrCat(*abort.grpc_status));
    h.Add("grpc-message", kAbortBody);
    h.Add("content-length", "0");
    cb_.EncodeHeaders(h, /*end_stream=*/true);
  }

  StreamFilterCallbacks& cb_;
  std::shared_ptr<const FaultFilterConfig> config_;
  Decision decision_;
  ResponseHeaderMap grpc_reply_;
  bool delaying_ = false;
};

class FaultFilterFactory final : public FilterFactory {
 public:
  explicit FaultFilterFactory(std::shared_ptr<const FaultFilterConfig> config)
      : config_(std::move(config)) {}
  std::unique_ptr<Filter> Create(StreamFilterCallbacks& callbacks) const override {
    return std::make_unique<FaultFilter>(callbacks, config_);
  }

 private:
  std::shared_ptr<const FaultFilterConfig> config_;
};

}  // namespace

std::shared_ptr<const FilterFactory> NewFaultFilterFactory(
    std::shared_ptr<const FaultFilterConfig> config) {
  return std::make_shared<FaultFilterFactory>(std::move(config));
}

absl::StatusOr<std::shared_ptr<const FilterFactory>> NewFaultFilterFactory(
    const envoy::extensions::filters::http::fault::v3::HTTPFault& config) {
  auto compiled = FaultFilterConfig::Create(config);
  if (!compiled.ok()) return compiled.status();
  return NewFaultFilterFactory(*std::move(compiled));
}

}  // namespace weft::http::fault
