#include "data-plane/http/filters/fault/fault.h"

#include <algorithm>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/strings.h"
#include "common/xds/fault_check.h"

namespace weft::http::fault {
namespace {

using envoy::extensions::filters::http::fault::v3::FaultAbort;
using envoy::extensions::filters::http::fault::v3::HTTPFault;
using envoy::type::v3::FractionalPercent;
using Fraction = FaultFilterConfig::Fraction;

Fraction ToFraction(const FractionalPercent& p) {
  Fraction f;
  f.numerator = p.numerator();
  switch (p.denominator()) {
    case FractionalPercent::TEN_THOUSAND:
      f.denominator = 10'000;
      break;
    case FractionalPercent::MILLION:
      f.denominator = 1'000'000;
      break;
    default:
      f.denominator = 100;
      break;
  }
  return f;
}

// The first value of an untrusted header as an unsigned number (Envoy reads only the first
// value; ours arrive joined with ',').
template <typename T>
std::optional<T> HeaderNumber(const router::HeaderLookup* headers, std::string_view name) {
  if (headers == nullptr) return std::nullopt;
  std::optional<std::string_view> v = headers->Get(name);
  if (!v) return std::nullopt;
  std::string_view first = v->substr(0, v->find(','));
  T out;
  if (!absl::SimpleAtoi(Sv(first), &out)) return std::nullopt;
  return out;
}

// A header may only lower the configured share (Envoy's HeaderPercentageProvider).
Fraction WithHeader(Fraction configured, const router::HeaderLookup* headers,
                    std::string_view header) {
  if (auto n = HeaderNumber<uint32_t>(headers, header)) {
    configured.numerator = std::min(*n, configured.numerator);
  }
  return configured;
}

bool Draw(const Fraction& f, upstream::Random& random) {
  return random.Uniform(f.denominator) < f.numerator;
}

}  // namespace

absl::StatusOr<std::shared_ptr<const FaultFilterConfig>> FaultFilterConfig::Create(
    const HTTPFault& config) {
  ValidationErrors errors;
  xds::CheckFaultFilter(config, &errors);
  if (!errors.ok()) return errors.ToStatus("fault filter: ");
  std::shared_ptr<FaultFilterConfig> out(new FaultFilterConfig());
  if (config.has_abort()) {
    const FaultAbort& a = config.abort();
    out->abort_percent_ = ToFraction(a.percentage());
    switch (a.error_type_case()) {
      case FaultAbort::kHttpStatus:
        out->abort_kind_ = AbortKind::kHttp;
        out->abort_code_ = a.http_status();
        break;
      case FaultAbort::kGrpcStatus:
        out->abort_kind_ = AbortKind::kGrpc;
        out->abort_code_ = a.grpc_status();
        break;
      default:
        out->abort_kind_ = AbortKind::kHeader;
        break;
    }
  }
  if (config.has_delay()) {
    const auto& d = config.delay();
    out->delay_percent_ = ToFraction(d.percentage());
    if (d.has_fixed_delay()) {
      out->delay_kind_ = DelayKind::kFixed;
      out->fixed_delay_ = std::chrono::milliseconds(d.fixed_delay().seconds() * 1000 +
                                                    d.fixed_delay().nanos() / 1'000'000);
    } else {
      out->delay_kind_ = DelayKind::kHeader;
    }
  }
  out->upstream_cluster_ = config.upstream_cluster();
  out->downstream_nodes_.assign(config.downstream_nodes().begin(), config.downstream_nodes().end());
  for (int i = 0; i < config.headers_size(); ++i) {
    ValidationErrors::Scope s(&errors, absl::StrCat("headers[", i, "]"));
    auto m = router::HeaderMatcher::Compile(config.headers(i), &errors);
    if (m) out->headers_.push_back(*std::move(m));
  }
  if (!errors.ok()) return errors.ToStatus("fault filter: ");
  if (config.has_max_active_faults()) out->max_active_faults_ = config.max_active_faults().value();
  return std::shared_ptr<const FaultFilterConfig>(std::move(out));
}

bool FaultFilterConfig::Matches(const RequestInfo& r) const {
  if (!upstream_cluster_.empty() && r.cluster != upstream_cluster_) return false;
  if (!downstream_nodes_.empty()) {
    std::optional<std::string_view> node =
        r.headers ? r.headers->Get(kDownstreamNodeHeader) : std::nullopt;
    if (!node || std::find(downstream_nodes_.begin(), downstream_nodes_.end(), *node) ==
                     downstream_nodes_.end()) {
      return false;
    }
  }
  RequestHeaders headers(r.line, r.headers);
  for (const router::HeaderMatcher& m : headers_) {
    if (!m.Match(&headers)) return false;
  }
  return true;
}

std::optional<std::chrono::milliseconds> FaultFilterConfig::DrawDelay(
    const router::HeaderLookup* headers, upstream::Random& random) const {
  if (delay_kind_ == DelayKind::kNone) return std::nullopt;
  const bool from_header = delay_kind_ == DelayKind::kHeader;
  Fraction f =
      from_header ? WithHeader(delay_percent_, headers, kDelayPercentageHeader) : delay_percent_;
  if (!Draw(f, random)) return std::nullopt;
  std::chrono::milliseconds d = fixed_delay_;
  if (from_header) {
    auto ms = HeaderNumber<uint64_t>(headers, kDelayRequestHeader);
    if (!ms) return std::nullopt;
    // Far beyond any request timeout; kept representable.
    d = std::chrono::milliseconds(std::min<uint64_t>(*ms, uint64_t{1} << 40));
  }
  if (d.count() <= 0) return std::nullopt;
  return d;
}

std::optional<Abort> FaultFilterConfig::DrawAbort(const router::HeaderLookup* headers,
                                                  upstream::Random& random) const {
  if (abort_kind_ == AbortKind::kNone) return std::nullopt;
  const bool from_header = abort_kind_ == AbortKind::kHeader;
  Fraction f =
      from_header ? WithHeader(abort_percent_, headers, kAbortPercentageHeader) : abort_percent_;
  if (!Draw(f, random)) return std::nullopt;
  switch (abort_kind_) {
    case AbortKind::kHttp:
      return Abort{abort_code_, std::nullopt};
    case AbortKind::kGrpc:
      return Abort{200, abort_code_};
    default:
      break;
  }
  // An HTTP status from the header wins; else a gRPC status; else no abort.
  if (auto code = HeaderNumber<uint32_t>(headers, kAbortRequestHeader);
      code && *code >= 200 && *code < 600) {
    return Abort{*code, std::nullopt};
  }
  if (auto grpc = HeaderNumber<uint32_t>(headers, kAbortGrpcRequestHeader)) {
    return Abort{200, *grpc};
  }
  return std::nullopt;
}

bool FaultFilterConfig::TryActivate(Decision* d) const {
  if (d->active.held()) return true;  // one slot per request, whatever it injects
  const uint64_t max = max_active_faults_.value_or(UINT64_MAX);
  if (active_->load(std::memory_order_relaxed) >= max) {
    d->overflow = true;
    return false;
  }
  active_->fetch_add(1, std::memory_order_relaxed);
  d->active = ActiveFault(active_);
  return true;
}

Decision FaultFilterConfig::Decide(const RequestInfo& request, upstream::Random& random) const {
  Decision d;
  if (!Matches(request)) return d;
  if (auto delay = DrawDelay(request.headers, random); delay && TryActivate(&d)) {
    d.delay = delay;
    d.abort = DrawAbort(request.headers, random);
    return d;
  }
  if (auto abort = DrawAbort(request.headers, random); abort && TryActivate(&d)) {
    d.abort = abort;
  }
  return d;
}

}  // namespace weft::http::fault
