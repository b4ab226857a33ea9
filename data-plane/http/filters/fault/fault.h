// The engine of weft-proxy's envoy.filters.http.fault filter: an
// envoy.extensions.filters.http.fault.v3.HTTPFault compiled once into the config snapshot, and a
// per-request Decide() that draws, with an injectable random source, whether to delay and/or
// abort the request. Pure: the filter adapter arms the timer and sends the local reply.
// Envoy's semantics (source/extensions/filters/http/fault/fault_filter.cc):
//  - faults apply only to requests for `upstream_cluster` (when set), from one of
//    `downstream_nodes` (x-envoy-downstream-service-node, when set) and matching every `headers`
//    matcher;
//  - the delay is drawn first; a delayed request may then also be aborted (a second, independent
//    draw, as Envoy's after-the-delay check);
//  - `percentage` is a FractionalPercent: a draw in [0, denominator) below the numerator fires;
//    unset, it is 0 % (as Envoy: set it for header-controlled faults too);
//  - header_abort / header_delay take the status / delay from the request's
//    x-envoy-fault-abort-request (200..599), x-envoy-fault-abort-grpc-request and
//    x-envoy-fault-delay-request (ms); x-envoy-fault-abort-request-percentage and
//    x-envoy-fault-delay-request-percentage lower the configured numerator (never raise it);
//    only the first value of each header counts;
//  - max_active_faults caps the requests holding a fault at once (a fuzzy limit, as Envoy's):
//    over it, no fault is injected and the decision says `overflow`.
//
// Thread safety: Decide() may run on any number of threads at once; the active-fault count is
// the one shared state (a relaxed atomic, as Envoy's gauge).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "data-plane/http/filters/request_headers.h"
#include "data-plane/router/matchers.h"
#include "data-plane/upstream/lb/load_balancer.h"
#include "envoy/extensions/filters/http/fault/v3/fault.pb.h"

namespace weft::http::fault {

// The request headers Envoy's fault filter reads.
inline constexpr std::string_view kAbortRequestHeader = "x-envoy-fault-abort-request";
inline constexpr std::string_view kAbortGrpcRequestHeader = "x-envoy-fault-abort-grpc-request";
inline constexpr std::string_view kAbortPercentageHeader = "x-envoy-fault-abort-request-percentage";
inline constexpr std::string_view kDelayRequestHeader = "x-envoy-fault-delay-request";
inline constexpr std::string_view kDelayPercentageHeader = "x-envoy-fault-delay-request-percentage";
inline constexpr std::string_view kDownstreamNodeHeader = "x-envoy-downstream-service-node";
// The local reply's body, as Envoy's.
inline constexpr std::string_view kAbortBody = "fault filter abort";

struct RequestInfo {
  // The request line, for `headers` matchers on ":method", ":path", ":authority", ":scheme".
  RequestLine line;
  const router::HeaderLookup* headers = nullptr;  // the other request headers; null: none
  // The cluster the route selected for this request ("" when none), for `upstream_cluster`.
  std::string_view cluster;
};

struct Abort {
  uint32_t http_status = 0;
  // Set for a gRPC abort: the reply is HTTP 200 carrying this grpc-status (Envoy's rule).
  std::optional<uint32_t> grpc_status;
};

// Holds one of max_active_faults' slots while alive. Move-only.
class ActiveFault {
 public:
  ActiveFault() = default;
  explicit ActiveFault(std::shared_ptr<std::atomic<uint64_t>> count) : count_(std::move(count)) {}
  ActiveFault(ActiveFault&& other) noexcept = default;
  ActiveFault& operator=(ActiveFault&& other) noexcept {
    if (this != &other) {
      Release();
      count_ = std::move(other.count_);
    }
    return *this;
  }
  ~ActiveFault() { Release(); }
  void Release() {
    if (count_) count_->fetch_sub(1, std::memory_order_relaxed);
    count_.reset();
  }
  bool held() const { return count_ != nullptr; }

 private:
  std::shared_ptr<std::atomic<uint64_t>> count_;
};

struct Decision {
  // Delay the request this long, then go on (or abort, below). Response flag DI.
  std::optional<std::chrono::milliseconds> delay;
  // Answer with a local reply (after the delay, if any). Response flag FI.
  std::optional<Abort> abort;
  // A fault was drawn but max_active_faults was reached: count faults_overflow.
  bool overflow = false;
  // Set when a fault is injected. Keep it until the delay has elapsed (when no abort follows) or
  // the stream ends; dropping it frees the slot.
  ActiveFault active;
};

// Stat names relative to the connection manager's "http.<stat_prefix>.", as Envoy's.
inline constexpr std::string_view kDelaysInjectedStat = "fault.delays_injected";
inline constexpr std::string_view kAbortsInjectedStat = "fault.aborts_injected";
inline constexpr std::string_view kFaultsOverflowStat = "fault.faults_overflow";
inline constexpr std::string_view kActiveFaultsGauge = "fault.active_faults";

class FaultFilterConfig {
 public:
  // Fails with the field path of every problem (see common/xds/fault_check.h).
  static absl::StatusOr<std::shared_ptr<const FaultFilterConfig>> Create(
      const envoy::extensions::filters::http::fault::v3::HTTPFault& config);

  Decision Decide(const RequestInfo& request, upstream::Random& random) const;

  // The active_faults gauge.
  uint64_t active_faults() const { return active_->load(std::memory_order_relaxed); }

  struct Fraction {
    uint32_t numerator = 0;
    uint32_t denominator = 100;
  };

 private:
  FaultFilterConfig() = default;
  bool Matches(const RequestInfo& request) const;
  std::optional<std::chrono::milliseconds> DrawDelay(const router::HeaderLookup* headers,
                                                     upstream::Random& random) const;
  std::optional<Abort> DrawAbort(const router::HeaderLookup* headers,
                                 upstream::Random& random) const;
  bool TryActivate(Decision* d) const;

  enum class AbortKind { kNone, kHttp, kGrpc, kHeader };
  AbortKind abort_kind_ = AbortKind::kNone;
  uint32_t abort_code_ = 0;
  Fraction abort_percent_;
  enum class DelayKind { kNone, kFixed, kHeader };
  DelayKind delay_kind_ = DelayKind::kNone;
  std::chrono::milliseconds fixed_delay_{0};
  Fraction delay_percent_;
  std::string upstream_cluster_;
  std::vector<std::string> downstream_nodes_;
  std::vector<router::HeaderMatcher> headers_;
  std::optional<uint64_t> max_active_faults_;
  std::shared_ptr<std::atomic<uint64_t>> active_ = std::make_shared<std::atomic<uint64_t>>(0);
};

}  // namespace weft::http::fault
