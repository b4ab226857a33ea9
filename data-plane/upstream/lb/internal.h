// Private to lb/: the per-pool algorithms behind LoadBalancer. priority_lb.cc decides which
// pool (priority × health × locality) serves a request; a Picker then chooses within it.
#pragma once

#include <cstdint>
#include <memory>
#include <queue>
#include <string_view>
#include <vector>

#include "data-plane/upstream/lb/load_balancer.h"

namespace weft::upstream::lb_internal {

// --- Hashing: stable across processes and builds, so every worker and proxy agrees. ---

// Murmur3's 64-bit finalizer: a bijection with full avalanche.
inline uint64_t Mix64(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

// FNV-1a over the bytes, then the finalizer: FNV alone mixes its last bytes poorly.
inline uint64_t Hash64(std::string_view data, uint64_t seed = 0) {
  uint64_t h = 0xcbf29ce484222325ULL ^ Mix64(seed);
  for (unsigned char c : data) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return Mix64(h);
}

// --- Pools and pickers ---

// The eligible hosts of one pool with their effective weights (after slow start), all > 0.
struct Pool {
  std::vector<Host*> hosts;
  std::vector<double> weights;
  bool EqualWeights() const;
};

// Balancer-wide state the pickers read.
struct PickerEnv {
  const LbConfig* config;
  Clock* clock;
  // Neutral RTT for hosts without samples (least response time).
  const double* rtt_prior_ns;
};

class Picker {
 public:
  virtual ~Picker() = default;
  // `pool` is non-empty.
  virtual Host* Pick(const LbContext& context, Random& random) = 0;
};

using PickerFactory = std::unique_ptr<Picker> (*)(Pool pool, const PickerEnv& env, Random& random);

std::unique_ptr<Picker> NewRandomPicker(Pool pool, const PickerEnv& env, Random& random);
std::unique_ptr<Picker> NewRoundRobinPicker(Pool pool, const PickerEnv& env, Random& random);
std::unique_ptr<Picker> NewWeightedRoundRobinPicker(Pool pool, const PickerEnv& env,
                                                    Random& random);
std::unique_ptr<Picker> NewLeastRequestPicker(Pool pool, const PickerEnv& env, Random& random);
std::unique_ptr<Picker> NewLeastResponseTimePicker(Pool pool, const PickerEnv& env, Random& random);
std::unique_ptr<Picker> NewRingHashPicker(Pool pool, const PickerEnv& env, Random& random);
std::unique_ptr<Picker> NewMaglevPicker(Pool pool, const PickerEnv& env, Random& random);

// Peak EWMA (least_response_time.cc), also called from OnRequestEnd.
double RttEstimateNs(const RttEwma& rtt, Clock::TimePoint now, double tau_ns, double prior_ns);
void ObserveRtt(RttEwma& rtt, double sample_ns, Clock::TimePoint now, double tau_ns,
                double prior_ns);

// --- Earliest-deadline-first scheduler ---
//
// Each entry is due every 1 / weight units of virtual time; the earliest deadline is picked
// next. First deadlines are staggered by a golden-ratio sequence of phases in (0, 1]: with equal
// phases, equal-weight entries always tie and the heavy ones run in bursts between the tie
// groups (5:1:1 gives "A A A A A B C"); staggered, the light ones land between the heavy one's
// turns. Everything is deterministic, so every worker produces the same sequence.
template <typename T>
class EdfScheduler {
 public:
  void Add(T item, double weight) {
    double phase = 0.5 + 0.6180339887498949 * static_cast<double>(added_++);
    phase -= static_cast<double>(static_cast<uint64_t>(phase));
    if (phase == 0) phase = 1;
    queue_.push(Entry{current_ + phase / weight, order_++, item, current_, weight, phase});
  }
  bool empty() const { return queue_.empty(); }

  // Picks the earliest entry and re-adds it with the weight `weight_of(item)` returns now, so
  // dynamic weights (least request) take effect from the next round.
  template <typename WeightFn>
  T PickAndAdd(WeightFn weight_of) {
    Entry e = queue_.top();
    queue_.pop();
    current_ = e.deadline;
    const double weight = weight_of(e.item);
    if (weight == e.weight) {
      // Deadlines are base + k / weight, not sums of 1 / weight: no drift, so ties stay exact
      // and the order stays the same over any number of rounds.
      e.phase += 1;
    } else {
      e.base = current_;
      e.weight = weight;
      e.phase = 1;
    }
    e.deadline = e.base + e.phase / e.weight;
    e.order = order_++;
    queue_.push(e);
    return e.item;
  }

 private:
  struct Entry {
    double deadline;
    uint64_t order;
    T item;
    double base;
    double weight;
    double phase;
  };
  struct Later {
    bool operator()(const Entry& a, const Entry& b) const {
      return a.deadline != b.deadline ? a.deadline > b.deadline : a.order > b.order;
    }
  };

  std::priority_queue<Entry, std::vector<Entry>, Later> queue_;
  double current_ = 0;
  uint64_t order_ = 0;
  uint64_t added_ = 0;
};

}  // namespace weft::upstream::lb_internal
