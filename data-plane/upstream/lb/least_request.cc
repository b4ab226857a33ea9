// Least request. Equal weights: sample choice_count hosts (with replacement, as Envoy) and take
// the one with the fewest active requests; sampling instead of scanning keeps a pick O(1) and
// avoids every worker herding onto the same "least loaded" host. Unequal weights: EDF where a
// host's weight is weight / (active + 1)^bias, re-read each time the host is picked.
#include <cmath>

#include "data-plane/upstream/lb/internal.h"

namespace weft::upstream::lb_internal {
namespace {

class PowerOfChoicesPicker final : public Picker {
 public:
  PowerOfChoicesPicker(Pool pool, uint32_t choices)
      : hosts_(std::move(pool.hosts)), choices_(choices) {}

  Host* Pick(const LbContext&, Random& random) override {
    Host* best = hosts_[random.Uniform(hosts_.size())];
    for (uint32_t i = 1; i < choices_; ++i) {
      Host* candidate = hosts_[random.Uniform(hosts_.size())];
      if (candidate->active_requests() < best->active_requests()) best = candidate;
    }
    return best;
  }

 private:
  std::vector<Host*> hosts_;
  uint32_t choices_;
};

class WeightedLeastRequestPicker final : public Picker {
 public:
  WeightedLeastRequestPicker(Pool pool, double bias) : pool_(std::move(pool)), bias_(bias) {
    for (size_t i = 0; i < pool_.hosts.size(); ++i) edf_.Add(i, Weight(i));
  }

  Host* Pick(const LbContext&, Random&) override {
    return pool_.hosts[edf_.PickAndAdd([this](size_t i) { return Weight(i); })];
  }

 private:
  double Weight(size_t i) const {
    const double active = static_cast<double>(pool_.hosts[i]->active_requests()) + 1;
    // The common bias of 1 avoids pow() on the hot path.
    return pool_.weights[i] / (bias_ == 1.0 ? active : std::pow(active, bias_));
  }

  Pool pool_;
  double bias_;
  EdfScheduler<size_t> edf_;
};

}  // namespace

std::unique_ptr<Picker> NewLeastRequestPicker(Pool pool, const PickerEnv& env, Random&) {
  if (pool.EqualWeights()) {
    return std::make_unique<PowerOfChoicesPicker>(std::move(pool), env.config->choice_count);
  }
  return std::make_unique<WeightedLeastRequestPicker>(std::move(pool),
                                                      env.config->active_request_bias);
}

}  // namespace weft::upstream::lb_internal
