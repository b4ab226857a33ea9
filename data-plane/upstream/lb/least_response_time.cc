// Least response time: peak EWMA (Finagle, Linkerd). Pick two distinct hosts at random and take
// the lower cost = rtt_estimate × (active + 1) / weight. The estimate jumps to any sample above
// it (peak: react to a slow host at once) and otherwise follows samples with time constant tau.
// Between samples it fades toward zero (as in tower's peak EWMA): a host that was avoided after a
// slow spell looks attractive again after a few time constants and gets probed, and among equal
// hosts the one idle longest wins, which spreads load. A host that has never been sampled costs
// the neutral prior (the balancer's typical RTT) so it is tried without being favoured.
#include <cmath>

#include "data-plane/upstream/lb/internal.h"

namespace weft::upstream::lb_internal {

double RttEstimateNs(const RttEwma& rtt, Clock::TimePoint now, double tau_ns, double prior_ns) {
  if (!rtt.has_sample) return prior_ns;
  const double dt = static_cast<double>((now - rtt.last_update).count());
  if (dt <= 0) return rtt.ewma_ns;
  return rtt.ewma_ns * std::exp(-dt / tau_ns);
}

void ObserveRtt(RttEwma& rtt, double sample_ns, Clock::TimePoint now, double tau_ns,
                double prior_ns) {
  if (!rtt.has_sample) {
    rtt = RttEwma{sample_ns, now, true};
    return;
  }
  const double estimate = RttEstimateNs(rtt, now, tau_ns, prior_ns);
  if (sample_ns >= estimate) {
    rtt.ewma_ns = sample_ns;
  } else {
    const double dt = std::max(0.0, static_cast<double>((now - rtt.last_update).count()));
    const double w = std::exp(-dt / tau_ns);
    // The estimate has already decayed by w; a long gap leaves mostly the new sample.
    rtt.ewma_ns = estimate * w + sample_ns * (1 - w);
  }
  rtt.last_update = now;
}

namespace {

class PeakEwmaPicker final : public Picker {
 public:
  PeakEwmaPicker(Pool pool, const PickerEnv& env)
      : pool_(std::move(pool)),
        env_(env),
        tau_ns_(static_cast<double>(env.config->ewma_decay.count())) {}

  Host* Pick(const LbContext&, Random& random) override {
    const size_t n = pool_.hosts.size();
    if (n == 1) return pool_.hosts[0];
    const size_t a = random.Uniform(n);
    size_t b = random.Uniform(n - 1);
    if (b >= a) ++b;  // distinct: with replacement the worst host would still win 1/n² picks
    const Clock::TimePoint now = env_.clock->Now();
    return Cost(b, now) < Cost(a, now) ? pool_.hosts[b] : pool_.hosts[a];
  }

 private:
  double Cost(size_t i, Clock::TimePoint now) const {
    const Host& h = *pool_.hosts[i];
    return RttEstimateNs(h.rtt(), now, tau_ns_, *env_.rtt_prior_ns) *
           static_cast<double>(h.active_requests() + 1) / pool_.weights[i];
  }

  Pool pool_;
  PickerEnv env_;
  double tau_ns_;
};

}  // namespace

std::unique_ptr<Picker> NewLeastResponseTimePicker(Pool pool, const PickerEnv& env, Random&) {
  return std::make_unique<PeakEwmaPicker>(std::move(pool), env);
}

}  // namespace weft::upstream::lb_internal
