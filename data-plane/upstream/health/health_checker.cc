#include "data-plane/upstream/health/health_checker.h"

#include <algorithm>

#include "common/validation.h"
#include "common/xds/failover_check.h"

namespace weft::upstream::health {
namespace {

milliseconds Millis(const google::protobuf::Duration& d) {
  return milliseconds(d.seconds() * 1000 + d.nanos() / 1'000'000);
}

milliseconds Uniform(Random* random, milliseconds below) {
  if (below.count() <= 0) return milliseconds(0);
  return milliseconds(static_cast<int64_t>(random->Uniform(static_cast<uint64_t>(below.count()))));
}

}  // namespace

absl::StatusOr<Schedule> Schedule::FromProto(const envoy::config::core::v3::HealthCheck& hc) {
  // What the checker and the probers implement: the same check weft-cp and the NACK path run.
  ValidationErrors errors;
  xds::CheckHealthCheck(hc, &errors);
  if (!errors.ok()) return errors.ToStatus();
  Schedule s;
  if (hc.has_timeout()) s.timeout = Millis(hc.timeout());
  if (hc.has_interval()) s.interval = Millis(hc.interval());
  if (hc.has_initial_jitter()) s.initial_jitter = Millis(hc.initial_jitter());
  if (hc.has_interval_jitter()) s.interval_jitter = Millis(hc.interval_jitter());
  s.interval_jitter_percent = hc.interval_jitter_percent();
  if (hc.has_unhealthy_threshold()) s.unhealthy_threshold = hc.unhealthy_threshold().value();
  if (hc.has_healthy_threshold()) s.healthy_threshold = hc.healthy_threshold().value();
  if (hc.has_no_traffic_interval()) s.no_traffic_interval = Millis(hc.no_traffic_interval());
  if (hc.has_no_traffic_healthy_interval()) {
    s.no_traffic_healthy_interval = Millis(hc.no_traffic_healthy_interval());
  }
  if (hc.has_unhealthy_interval()) s.unhealthy_interval = Millis(hc.unhealthy_interval());
  if (hc.has_unhealthy_edge_interval()) {
    s.unhealthy_edge_interval = Millis(hc.unhealthy_edge_interval());
  }
  if (hc.has_healthy_edge_interval()) s.healthy_edge_interval = Millis(hc.healthy_edge_interval());
  // A threshold of 0 would never (or always) change state; Envoy treats it as 1.
  s.unhealthy_threshold = std::max<uint32_t>(1, s.unhealthy_threshold);
  s.healthy_threshold = std::max<uint32_t>(1, s.healthy_threshold);
  return s;
}

Checker::Checker(Schedule schedule, std::unique_ptr<Prober> prober, Clock* clock, Random* random,
                 OnChange on_change)
    : schedule_(schedule),
      prober_(std::move(prober)),
      clock_(clock),
      random_(random),
      on_change_(std::move(on_change)) {}

Checker::~Checker() { *alive_ = false; }

void Checker::SetHosts(const std::vector<std::string>& hosts) {
  const Clock::TimePoint now = clock_->Now();
  std::map<std::string, HostHealth, std::less<>> next;
  std::vector<std::string> newcomers;
  for (const std::string& key : hosts) {
    auto it = hosts_.find(key);
    if (it != hosts_.end()) {
      next.emplace(key, std::move(it->second));
      continue;
    }
    HostHealth h;
    if (!started_) {
      // Spread over one interval instead of probing every host of every cluster at once.
      h.state = HostHealth::State::kHealthy;
      h.next_probe = now + Uniform(random_, schedule_.interval);
    } else {
      h.state = HostHealth::State::kPending;
      h.next_probe = now + Uniform(random_, schedule_.initial_jitter);
      newcomers.push_back(key);
    }
    generation_[key] = next_generation_++;
    next.emplace(key, h);
  }
  for (auto it = generation_.begin(); it != generation_.end();) {
    it = next.contains(it->first) ? std::next(it) : generation_.erase(it);
  }
  hosts_ = std::move(next);
  started_ = true;
  if (on_change_) {
    for (const std::string& key : newcomers) on_change_(key, false);
  }
}

void Checker::SetClusterActive(bool active) {
  if (active && !active_) {
    const Clock::TimePoint now = clock_->Now();
    for (auto& [key, h] : hosts_) {
      if (h.in_flight || h.next_probe <= now + schedule_.interval) continue;
      h.next_probe = now + Uniform(random_, schedule_.interval);
    }
  }
  active_ = active;
}

const HostHealth* Checker::Find(std::string_view host) const {
  auto it = hosts_.find(host);
  return it == hosts_.end() ? nullptr : &it->second;
}

void Checker::Tick() {
  const Clock::TimePoint now = clock_->Now();
  // Probers may answer synchronously (a refused connect): collect first, then probe.
  std::vector<std::pair<std::string, uint64_t>> due;
  for (auto& [key, h] : hosts_) {
    if (h.in_flight || now < h.next_probe) continue;
    h.in_flight = true;
    due.emplace_back(key, generation_[key]);
  }
  for (auto& [key, generation] : due) {
    ++stats_.attempts;
    std::weak_ptr<bool> alive = alive_;
    prober_->Probe(key, schedule_.timeout,
                   [this, alive, key, generation = generation](ProbeResult result) {
                     if (auto a = alive.lock(); a && *a) OnResult(key, generation, result);
                   });
  }
}

void Checker::OnResult(const std::string& key, uint64_t generation, ProbeResult result) {
  auto g = generation_.find(key);
  auto it = hosts_.find(key);
  if (g == generation_.end() || g->second != generation || it == hosts_.end()) return;
  HostHealth& h = it->second;
  h.in_flight = false;
  h.last_probe = clock_->Now();
  h.last_result = result;
  ++h.probes;
  h.just_changed = false;
  switch (result) {
    case ProbeResult::kSuccess:
      ++stats_.successes;
      ++h.successes;
      h.failures = 0;
      if (h.state == HostHealth::State::kPending || (h.state == HostHealth::State::kUnhealthy &&
                                                     h.successes >= schedule_.healthy_threshold)) {
        SetState(key, h, HostHealth::State::kHealthy);
      }
      break;
    case ProbeResult::kFailure:
    case ProbeResult::kTimeout:
    case ProbeResult::kConclusiveFailure:
      if (result == ProbeResult::kTimeout) {
        ++stats_.timeouts;
      } else {
        ++stats_.failures;
      }
      ++h.failures;
      h.successes = 0;
      if (h.state == HostHealth::State::kPending) {
        SetState(key, h, HostHealth::State::kUnhealthy);  // was not getting traffic anyway
      } else if (h.state == HostHealth::State::kHealthy &&
                 (result == ProbeResult::kConclusiveFailure ||
                  h.failures >= schedule_.unhealthy_threshold)) {
        SetState(key, h, HostHealth::State::kUnhealthy);
      }
      break;
  }
  h.next_probe = h.last_probe + NextInterval(h);
}

void Checker::SetState(const std::string& key, HostHealth& h, HostHealth::State state) {
  const bool was_healthy = h.state == HostHealth::State::kHealthy;
  const bool is_healthy = state == HostHealth::State::kHealthy;
  h.state = state;
  if (was_healthy == is_healthy) return;
  h.just_changed = true;
  if (is_healthy) {
    ++stats_.healthy_transitions;
  } else {
    ++stats_.unhealthy_transitions;
  }
  if (on_change_) on_change_(key, is_healthy);
}

milliseconds Checker::NextInterval(const HostHealth& h) {
  const bool healthy = h.state == HostHealth::State::kHealthy;
  milliseconds base = schedule_.interval;
  if (!active_) {
    base = healthy && schedule_.no_traffic_healthy_interval.count() > 0
               ? schedule_.no_traffic_healthy_interval
               : schedule_.no_traffic_interval;
  } else if (!healthy && schedule_.unhealthy_interval.count() > 0) {
    base = schedule_.unhealthy_interval;
  }
  if (h.just_changed) {
    if (healthy && schedule_.healthy_edge_interval.count() > 0) {
      base = schedule_.healthy_edge_interval;
    } else if (!healthy && schedule_.unhealthy_edge_interval.count() > 0) {
      base = schedule_.unhealthy_edge_interval;
    }
  }
  return base + Jitter(base);
}

milliseconds Checker::Jitter(milliseconds interval) {
  milliseconds out = Uniform(random_, schedule_.interval_jitter);
  if (schedule_.interval_jitter_percent > 0) {
    out += Uniform(random_, interval * schedule_.interval_jitter_percent / 100);
  }
  return out;
}

}  // namespace weft::upstream::health
