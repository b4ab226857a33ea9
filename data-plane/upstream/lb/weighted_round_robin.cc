// Weighted round robin over an EDF scheduler: host i gets weight_i / sum of the picks in every
// window, spread out rather than in bursts, and the sequence is deterministic.
#include "data-plane/upstream/lb/internal.h"

namespace weft::upstream::lb_internal {
namespace {

class WeightedRoundRobinPicker final : public Picker {
 public:
  explicit WeightedRoundRobinPicker(Pool pool) : pool_(std::move(pool)) {
    for (size_t i = 0; i < pool_.hosts.size(); ++i) edf_.Add(i, pool_.weights[i]);
  }

  Host* Pick(const LbContext&, Random&) override {
    return pool_.hosts[edf_.PickAndAdd([this](size_t i) { return pool_.weights[i]; })];
  }

 private:
  Pool pool_;
  EdfScheduler<size_t> edf_;
};

}  // namespace

std::unique_ptr<Picker> NewWeightedRoundRobinPicker(Pool pool, const PickerEnv&, Random&) {
  return std::make_unique<WeightedRoundRobinPicker>(std::move(pool));
}

}  // namespace weft::upstream::lb_internal
