// Maglev (Google, NSDI 2016): a lookup table of prime size M filled by letting hosts take turns
// claiming their next free slot along a per-host permutation (offset + j × skip) mod M. Lookup
// is one array index. Weights are honoured as in Envoy: a host with weight w takes a turn in
// w / max_weight of the rounds.
#include <algorithm>

#include "data-plane/upstream/lb/internal.h"

namespace weft::upstream::lb_internal {
namespace {

class MaglevPicker final : public Picker {
 public:
  MaglevPicker(const Pool& pool, uint64_t table_size) : table_(table_size, nullptr) {
    struct Entry {
      Host* host;
      uint64_t offset;
      uint64_t skip;
      double weight;
      double target = 0;
      uint64_t next = 0;
    };
    const double max_weight = *std::max_element(pool.weights.begin(), pool.weights.end());
    std::vector<Entry> entries;
    entries.reserve(pool.hosts.size());
    for (size_t i = 0; i < pool.hosts.size(); ++i) {
      const std::string& key = pool.hosts[i]->hash_key();
      entries.push_back(Entry{pool.hosts[i], Hash64(key, 0) % table_size,
                              Hash64(key, 1) % (table_size - 1) + 1, pool.weights[i] / max_weight});
    }
    // The table is filled in host-identity order so that every worker builds the same one.
    std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
      return a.host->hash_key() < b.host->hash_key();
    });
    uint64_t filled = 0;
    for (uint64_t round = 1; filled < table_size; ++round) {
      for (Entry& e : entries) {
        if (static_cast<double>(round) * e.weight < e.target) continue;
        e.target += 1.0;
        uint64_t slot = (e.offset + e.next * e.skip) % table_size;
        while (table_[slot] != nullptr) {
          ++e.next;
          slot = (e.offset + e.next * e.skip) % table_size;
        }
        table_[slot] = e.host;
        ++e.next;
        if (++filled == table_size) break;
      }
    }
  }

  Host* Pick(const LbContext& context, Random& random) override {
    uint64_t h = context.hash_key ? Mix64(*context.hash_key) : random.Next();
    if (context.attempt > 0) h = Mix64(h ^ (0x9E3779B97F4A7C15ULL * context.attempt));
    return table_[h % table_.size()];
  }

 private:
  std::vector<Host*> table_;
};

}  // namespace

std::unique_ptr<Picker> NewMaglevPicker(Pool pool, const PickerEnv& env, Random&) {
  return std::make_unique<MaglevPicker>(pool, env.config->maglev_table_size);
}

}  // namespace weft::upstream::lb_internal
