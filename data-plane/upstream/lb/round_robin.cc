// Round robin: a rotating index when all effective weights are equal. With unequal weights
// (configured, or while a host is in slow start) it becomes the weighted EDF picker, as in Envoy.
#include "data-plane/upstream/lb/internal.h"

namespace weft::upstream::lb_internal {
namespace {

class RoundRobinPicker final : public Picker {
 public:
  RoundRobinPicker(Pool pool, Random& random)
      // A random start keeps workers (and proxies) that were configured at the same moment
      // from sending their first requests to the same host.
      : hosts_(std::move(pool.hosts)), next_(random.Uniform(hosts_.size())) {}

  Host* Pick(const LbContext&, Random&) override {
    Host* host = hosts_[next_];
    if (++next_ == hosts_.size()) next_ = 0;
    return host;
  }

 private:
  std::vector<Host*> hosts_;
  size_t next_;
};

}  // namespace

std::unique_ptr<Picker> NewRoundRobinPicker(Pool pool, const PickerEnv& env, Random& random) {
  if (!pool.EqualWeights()) return NewWeightedRoundRobinPicker(std::move(pool), env, random);
  return std::make_unique<RoundRobinPicker>(std::move(pool), random);
}

}  // namespace weft::upstream::lb_internal
