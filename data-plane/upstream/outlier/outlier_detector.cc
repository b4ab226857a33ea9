#include "data-plane/upstream/outlier/outlier_detector.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/validation.h"
#include "common/xds/failover_check.h"

namespace weft::upstream::outlier {
namespace {

milliseconds Millis(const google::protobuf::Duration& d) {
  return milliseconds(d.seconds() * 1000 + d.nanos() / 1'000'000);
}

// Envoy counts 502, 503 and 504 as gateway failures (and as 5xx).
bool IsGatewayError(int status) { return status == 502 || status == 503 || status == 504; }

}  // namespace

std::string_view EjectionTypeName(EjectionType type) {
  switch (type) {
    case EjectionType::kConsecutive5xx:
      return "consecutive_5xx";
    case EjectionType::kConsecutiveGatewayFailure:
      return "consecutive_gateway_failure";
    case EjectionType::kConsecutiveLocalOriginFailure:
      return "consecutive_local_origin_failure";
    case EjectionType::kSuccessRate:
      return "success_rate";
    case EjectionType::kLocalOriginSuccessRate:
      return "local_origin_success_rate";
    case EjectionType::kFailurePercentage:
      return "failure_percentage";
    case EjectionType::kLocalOriginFailurePercentage:
      return "local_origin_failure_percentage";
    case EjectionType::kLatency:
      return "latency";
  }
  return "unknown";
}

absl::StatusOr<Config> Config::FromProto(const envoy::config::cluster::v3::OutlierDetection& p) {
  ValidationErrors errors;
  xds::CheckOutlierDetection(p, &errors);
  if (!errors.ok()) return errors.ToStatus();
  Config c;
  if (p.has_interval()) c.interval = Millis(p.interval());
  if (p.has_base_ejection_time()) c.base_ejection_time = Millis(p.base_ejection_time());
  if (p.has_max_ejection_time()) c.max_ejection_time = Millis(p.max_ejection_time());
  if (p.has_max_ejection_time_jitter()) {
    c.max_ejection_time_jitter = Millis(p.max_ejection_time_jitter());
  }
  // Envoy: a cap below the base would shorten every ejection; the base wins.
  c.max_ejection_time = std::max(c.max_ejection_time, c.base_ejection_time);
  auto u32 = [](bool has, const google::protobuf::UInt32Value& v, uint32_t* out) {
    if (has) *out = v.value();
  };
  auto pct = [](bool has, const google::protobuf::UInt32Value& v, double* out) {
    if (has) *out = v.value();
  };
  u32(p.has_max_ejection_percent(), p.max_ejection_percent(), &c.max_ejection_percent);
  if (p.has_always_eject_one_host()) c.always_eject_one_host = p.always_eject_one_host().value();
  if (p.has_successful_active_health_check_uneject_host()) {
    c.successful_active_health_check_uneject_host =
        p.successful_active_health_check_uneject_host().value();
  }
  c.split_external_local_origin_errors = p.split_external_local_origin_errors();
  u32(p.has_consecutive_5xx(), p.consecutive_5xx(), &c.consecutive_5xx);
  pct(p.has_enforcing_consecutive_5xx(), p.enforcing_consecutive_5xx(),
      &c.enforcing_consecutive_5xx);
  u32(p.has_consecutive_gateway_failure(), p.consecutive_gateway_failure(),
      &c.consecutive_gateway_failure);
  pct(p.has_enforcing_consecutive_gateway_failure(), p.enforcing_consecutive_gateway_failure(),
      &c.enforcing_consecutive_gateway_failure);
  u32(p.has_consecutive_local_origin_failure(), p.consecutive_local_origin_failure(),
      &c.consecutive_local_origin_failure);
  pct(p.has_enforcing_consecutive_local_origin_failure(),
      p.enforcing_consecutive_local_origin_failure(),
      &c.enforcing_consecutive_local_origin_failure);
  pct(p.has_enforcing_success_rate(), p.enforcing_success_rate(), &c.enforcing_success_rate);
  pct(p.has_enforcing_local_origin_success_rate(), p.enforcing_local_origin_success_rate(),
      &c.enforcing_local_origin_success_rate);
  u32(p.has_success_rate_minimum_hosts(), p.success_rate_minimum_hosts(),
      &c.success_rate_minimum_hosts);
  u32(p.has_success_rate_request_volume(), p.success_rate_request_volume(),
      &c.success_rate_request_volume);
  if (p.has_success_rate_stdev_factor()) {
    c.success_rate_stdev_factor = p.success_rate_stdev_factor().value() / 1000.0;
  }
  u32(p.has_failure_percentage_threshold(), p.failure_percentage_threshold(),
      &c.failure_percentage_threshold);
  pct(p.has_enforcing_failure_percentage(), p.enforcing_failure_percentage(),
      &c.enforcing_failure_percentage);
  pct(p.has_enforcing_failure_percentage_local_origin(),
      p.enforcing_failure_percentage_local_origin(), &c.enforcing_failure_percentage_local_origin);
  u32(p.has_failure_percentage_minimum_hosts(), p.failure_percentage_minimum_hosts(),
      &c.failure_percentage_minimum_hosts);
  u32(p.has_failure_percentage_request_volume(), p.failure_percentage_request_volume(),
      &c.failure_percentage_request_volume);
  return c;
}

Detector::Detector(Config config, Clock* clock, Random* random, OnChange on_change)
    : config_(std::move(config)),
      clock_(clock),
      random_(random),
      on_change_(std::move(on_change)) {}

void Detector::SetHosts(const std::vector<std::string>& hosts) {
  std::map<std::string, Host, std::less<>> next;
  for (const std::string& key : hosts) {
    auto it = hosts_.find(key);
    if (it != hosts_.end()) {
      next.emplace(key, std::move(it->second));
    } else {
      next.emplace(key, Host{});
    }
  }
  hosts_ = std::move(next);
  ejected_ = 0;
  for (const auto& [key, h] : hosts_) ejected_ += h.info.ejected ? 1 : 0;
  stats_.ejections_active = ejected_;
}

const HostInfo* Detector::Find(std::string_view host) const {
  auto it = hosts_.find(host);
  return it == hosts_.end() ? nullptr : &it->second.info;
}

bool Detector::Enforce(double percent) {
  if (percent >= 100) return true;
  if (percent <= 0) return false;
  return random_->UniformDouble() * 100 < percent;
}

void Detector::Report(std::string_view key, const Result& r) {
  auto it = hosts_.find(key);
  if (it == hosts_.end()) return;  // a host that left while the request was in flight
  Host& h = it->second;
  switch (r.kind) {
    case Result::Kind::kHttpResponse:
      if (r.latency.count() > 0) {
        h.latency_sum += r.latency;
        ++h.latency_count;
      }
      OnHttpStatus(h, key, r.status);
      return;
    case Result::Kind::kLocalConnectSuccess:
      if (config_.split_external_local_origin_errors) {
        ++h.local.total;
        ++h.local.success;
        h.consecutive_local = 0;
      }
      return;
    case Result::Kind::kLocalConnectFailure:
    case Result::Kind::kLocalReset:
    case Result::Kind::kLocalTimeout:
      if (config_.split_external_local_origin_errors) {
        OnLocalFailure(h, key);
      } else {
        // Not split: Envoy counts what the proxy saw locally as the upstream's failure, a
        // timeout as 504 and a failed connection as 503.
        OnHttpStatus(h, key, r.kind == Result::Kind::kLocalTimeout ? 504 : 503);
      }
      return;
  }
}

void Detector::OnHttpStatus(Host& h, std::string_view key, int status) {
  ++h.external.total;
  if (status < 500) {
    ++h.external.success;
    h.consecutive_5xx = 0;
    h.consecutive_gateway = 0;
    return;
  }
  if (h.info.ejected) return;
  ++h.consecutive_5xx;
  if (IsGatewayError(status)) {
    ++h.consecutive_gateway;
  } else {
    h.consecutive_gateway = 0;
  }
  if (config_.consecutive_gateway_failure > 0 &&
      h.consecutive_gateway >= config_.consecutive_gateway_failure) {
    h.consecutive_gateway = 0;
    MaybeEject(h, key, EjectionType::kConsecutiveGatewayFailure,
               config_.enforcing_consecutive_gateway_failure);
    if (h.info.ejected) return;
  }
  if (config_.consecutive_5xx > 0 && h.consecutive_5xx >= config_.consecutive_5xx) {
    h.consecutive_5xx = 0;
    MaybeEject(h, key, EjectionType::kConsecutive5xx, config_.enforcing_consecutive_5xx);
  }
}

void Detector::OnLocalFailure(Host& h, std::string_view key) {
  ++h.local.total;
  if (h.info.ejected) return;
  ++h.consecutive_local;
  if (config_.consecutive_local_origin_failure > 0 &&
      h.consecutive_local >= config_.consecutive_local_origin_failure) {
    h.consecutive_local = 0;
    MaybeEject(h, key, EjectionType::kConsecutiveLocalOriginFailure,
               config_.enforcing_consecutive_local_origin_failure);
  }
}

void Detector::MaybeEject(Host& h, std::string_view key, EjectionType type, double enforcing) {
  const auto t = static_cast<size_t>(type);
  ++stats_.ejections_detected[t];
  if (h.info.ejected || !Enforce(enforcing)) return;
  // Envoy compares the share already out with the limit, so one host can always go while none
  // is out (unless the limit is 0, which always_eject_one_host overrides).
  const double out_percent =
      hosts_.empty() ? 0.0 : 100.0 * static_cast<double>(ejected_) / hosts_.size();
  const bool allowed = out_percent < config_.max_ejection_percent ||
                       (config_.always_eject_one_host && ejected_ == 0);
  if (!allowed) {
    ++stats_.ejections_overflow;
    return;
  }
  const Clock::TimePoint now = clock_->Now();
  ++h.info.multiplier;
  ++h.info.times_ejected;
  Clock::Duration length = config_.base_ejection_time * h.info.multiplier;
  length = std::min<Clock::Duration>(length, config_.max_ejection_time);
  if (config_.max_ejection_time_jitter.count() > 0) {
    length += Clock::Duration(static_cast<int64_t>(
        random_->UniformDouble() *
        static_cast<double>(Clock::Duration(config_.max_ejection_time_jitter).count())));
  }
  h.info.ejected = true;
  h.info.last_type = type;
  h.info.ejected_at = now;
  h.info.uneject_at = now + length;
  h.latency_strikes = 0;
  ++ejected_;
  stats_.ejections_active = ejected_;
  ++stats_.ejections_enforced[t];
  if (on_change_) on_change_(key, true, type);
}

void Detector::Uneject(Host& h, std::string_view key) {
  if (!h.info.ejected) return;
  h.info.ejected = false;
  h.consecutive_5xx = h.consecutive_gateway = h.consecutive_local = 0;
  --ejected_;
  stats_.ejections_active = ejected_;
  if (on_change_) on_change_(key, false, h.info.last_type);
}

void Detector::OnActiveHealthCheckSuccess(std::string_view key) {
  if (!config_.successful_active_health_check_uneject_host) return;
  auto it = hosts_.find(key);
  if (it != hosts_.end()) Uneject(it->second, key);
}

std::vector<std::pair<std::string, double>> Detector::Rates(bool local, uint64_t volume) const {
  std::vector<std::pair<std::string, double>> out;
  for (const auto& [key, h] : hosts_) {
    if (h.info.ejected) continue;
    const Window& w = local ? h.local : h.external;
    if (w.total < volume || w.total == 0) continue;
    out.emplace_back(key, 100.0 * static_cast<double>(w.success) / static_cast<double>(w.total));
  }
  return out;
}

void Detector::SuccessRate(bool local) {
  auto rates = Rates(local, config_.success_rate_request_volume);
  if (rates.size() < config_.success_rate_minimum_hosts || rates.empty()) return;
  double mean = 0;
  for (const auto& [k, r] : rates) mean += r;
  mean /= static_cast<double>(rates.size());
  double variance = 0;
  for (const auto& [k, r] : rates) variance += (r - mean) * (r - mean);
  variance /= static_cast<double>(rates.size());
  const double threshold = mean - config_.success_rate_stdev_factor * std::sqrt(variance);
  const EjectionType type =
      local ? EjectionType::kLocalOriginSuccessRate : EjectionType::kSuccessRate;
  const double enforcing =
      local ? config_.enforcing_local_origin_success_rate : config_.enforcing_success_rate;
  for (const auto& [key, rate] : rates) {
    if (rate < threshold) MaybeEject(hosts_.find(key)->second, key, type, enforcing);
  }
}

void Detector::FailurePercentage(bool local) {
  auto rates = Rates(local, config_.failure_percentage_request_volume);
  if (rates.size() < config_.failure_percentage_minimum_hosts || rates.empty()) return;
  const EjectionType type =
      local ? EjectionType::kLocalOriginFailurePercentage : EjectionType::kFailurePercentage;
  const double enforcing = local ? config_.enforcing_failure_percentage_local_origin
                                 : config_.enforcing_failure_percentage;
  for (const auto& [key, rate] : rates) {
    if (100.0 - rate >= config_.failure_percentage_threshold) {
      MaybeEject(hosts_.find(key)->second, key, type, enforcing);
    }
  }
}

void Detector::Latency() {
  const LatencyRule& rule = *config_.latency;
  std::vector<std::pair<Host*, double>> means;
  for (auto& [key, h] : hosts_) {
    if (h.info.ejected || h.latency_count < rule.request_volume || h.latency_count == 0) {
      h.latency_strikes = 0;
      continue;
    }
    means.emplace_back(
        &h, static_cast<double>(h.latency_sum.count()) / static_cast<double>(h.latency_count));
  }
  if (means.size() < rule.minimum_hosts || means.empty()) {
    for (auto& [h, m] : means) h->latency_strikes = 0;
    return;
  }
  std::vector<double> sorted;
  for (const auto& [h, m] : means) sorted.push_back(m);
  std::sort(sorted.begin(), sorted.end());
  const size_t n = sorted.size();
  const double median = n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
  for (auto& [key, h] : hosts_) {
    auto m = std::find_if(means.begin(), means.end(), [&](const auto& e) { return e.first == &h; });
    if (m == means.end()) continue;
    if (m->second > rule.factor * median) {
      if (++h.latency_strikes >= rule.intervals) {
        h.latency_strikes = 0;
        MaybeEject(h, key, EjectionType::kLatency, rule.enforcing);
      }
    } else {
      h.latency_strikes = 0;
    }
  }
}

void Detector::RunInterval() {
  const Clock::TimePoint now = clock_->Now();
  for (auto& [key, h] : hosts_) {
    if (h.info.ejected) {
      if (now >= h.info.uneject_at) Uneject(h, key);
    } else if (h.info.multiplier > 0) {
      // A host that stayed in rotation for an interval earns back one step of its penalty.
      --h.info.multiplier;
    }
  }
  SuccessRate(/*local=*/false);
  FailurePercentage(/*local=*/false);
  if (config_.split_external_local_origin_errors) {
    SuccessRate(/*local=*/true);
    FailurePercentage(/*local=*/true);
  }
  if (config_.latency) Latency();
  for (auto& [key, h] : hosts_) {
    h.external = {};
    h.local = {};
    h.latency_sum = Clock::Duration(0);
    h.latency_count = 0;
  }
}

}  // namespace weft::upstream::outlier
