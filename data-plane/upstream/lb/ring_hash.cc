// Ring hash (Ketama): each host owns virtual nodes on a 64-bit ring in proportion to its weight;
// a key goes to the first node at or after its hash. Removing a host moves only the keys that
// host owned. Each host gets weight × k nodes, k the smallest power of two that makes the ring at
// least min_ring_size. Unlike Envoy's sizing (scaled to the lightest host's share), a host's node
// count then does not change when another host joins or leaves, unless k crosses a power of two,
// so surviving hosts never trade keys among themselves. Rings larger than max_ring_size fall back
// to proportional scaling.
#include <algorithm>
#include <numeric>
#include <string>

#include "data-plane/upstream/lb/internal.h"

namespace weft::upstream::lb_internal {
namespace {

class RingHashPicker final : public Picker {
 public:
  RingHashPicker(const Pool& pool, const LbConfig& config) {
    double sum = 0;
    for (Host* host : pool.hosts) sum += host->weight();
    std::vector<uint64_t> nodes(pool.hosts.size());
    uint64_t k = 1;
    while (sum * static_cast<double>(k) < static_cast<double>(config.min_ring_size)) k *= 2;
    const double max_ring = static_cast<double>(config.max_ring_size);
    for (size_t i = 0; i < pool.hosts.size(); ++i) {
      const double weight = pool.hosts[i]->weight();
      nodes[i] = sum * static_cast<double>(k) <= max_ring
                     ? static_cast<uint64_t>(weight) * k
                     : std::max<uint64_t>(1, static_cast<uint64_t>(weight * max_ring / sum));
    }
    std::vector<std::pair<uint64_t, Host*>> ring;
    ring.reserve(std::accumulate(nodes.begin(), nodes.end(), uint64_t{0}));
    for (size_t i = 0; i < pool.hosts.size(); ++i) {
      const std::string prefix = pool.hosts[i]->hash_key() + "_";
      for (uint64_t n = 0; n < nodes[i]; ++n) {
        ring.emplace_back(Hash64(prefix + std::to_string(n)), pool.hosts[i]);
      }
    }
    // Colliding points are ordered by host identity so every worker builds the same ring.
    std::sort(ring.begin(), ring.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first < b.first : a.second->hash_key() < b.second->hash_key();
    });
    points_.reserve(ring.size());
    hosts_.reserve(ring.size());
    for (const auto& [point, host] : ring) {
      points_.push_back(point);
      hosts_.push_back(host);
    }
  }

  Host* Pick(const LbContext& context, Random& random) override {
    const uint64_t h = context.hash_key ? Mix64(*context.hash_key) : random.Next();
    size_t i = std::lower_bound(points_.begin(), points_.end(), h) - points_.begin();
    if (i == points_.size()) i = 0;
    if (context.attempt == 0) return hosts_[i];
    // The attempt-th point after it whose host differs from the key's own.
    Host* first = hosts_[i];
    uint32_t skipped = 0;
    for (size_t n = 1; n < hosts_.size(); ++n) {
      Host* h2 = hosts_[(i + n) % hosts_.size()];
      if (h2 != first && ++skipped == context.attempt) return h2;
    }
    return first;
  }

 private:
  // Split so the binary search walks a dense array of integers.
  std::vector<uint64_t> points_;
  std::vector<Host*> hosts_;
};

}  // namespace

std::unique_ptr<Picker> NewRingHashPicker(Pool pool, const PickerEnv& env, Random&) {
  return std::make_unique<RingHashPicker>(pool, *env.config);
}

}  // namespace weft::upstream::lb_internal
