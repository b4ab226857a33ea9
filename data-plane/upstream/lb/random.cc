// Random: uniform when weights are equal, otherwise weighted through a prefix-sum search.
#include <algorithm>

#include "data-plane/upstream/lb/internal.h"

namespace weft::upstream {
namespace {

uint64_t SplitMix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

}  // namespace

DefaultRandom::DefaultRandom(uint64_t seed) {
  for (uint64_t& s : s_) s = SplitMix64(seed);
}

uint64_t DefaultRandom::Next() {
  const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = Rotl(s_[3], 45);
  return result;
}

namespace lb_internal {

bool Pool::EqualWeights() const {
  return std::all_of(weights.begin(), weights.end(), [&](double w) { return w == weights[0]; });
}

namespace {

class RandomPicker final : public Picker {
 public:
  explicit RandomPicker(Pool pool) : hosts_(std::move(pool.hosts)) {
    if (!pool.EqualWeights()) {
      double sum = 0;
      for (double w : pool.weights) cumulative_.push_back(sum += w);
    }
  }

  Host* Pick(const LbContext&, Random& random) override {
    if (cumulative_.empty()) return hosts_[random.Uniform(hosts_.size())];
    const double x = random.UniformDouble() * cumulative_.back();
    const size_t i =
        std::upper_bound(cumulative_.begin(), cumulative_.end(), x) - cumulative_.begin();
    return hosts_[std::min(i, hosts_.size() - 1)];
  }

 private:
  std::vector<Host*> hosts_;
  std::vector<double> cumulative_;  // empty when weights are equal
};

}  // namespace

std::unique_ptr<Picker> NewRandomPicker(Pool pool, const PickerEnv&, Random&) {
  return std::make_unique<RandomPicker>(std::move(pool));
}

}  // namespace lb_internal
}  // namespace weft::upstream
