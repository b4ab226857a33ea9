// In-memory Store: a sorted map plus a history deque. StoreBase does the locking, validation
// and watch delivery; this only keeps the data.
#include <algorithm>
#include <deque>
#include <map>

#include "control-plane/store/store_base.h"

namespace weft::cp {
namespace {

class MemoryStore final : public StoreBase {
 public:
  explicit MemoryStore(const StoreOptions& options) : StoreBase(options) {}
  ~MemoryStore() override { StopWatches(); }

 protected:
  absl::StatusOr<std::optional<KeyValue>> GetLocked(std::string_view key) const override {
    auto it = kv_.find(key);
    if (it == kv_.end()) return std::nullopt;
    return it->second;
  }

  absl::StatusOr<std::vector<KeyValue>> RangeLocked(std::string_view prefix) const override {
    std::vector<KeyValue> out;
    for (auto it = kv_.lower_bound(prefix); it != kv_.end() && it->first.starts_with(prefix);
         ++it) {
      out.push_back(it->second);
    }
    return out;
  }

  absl::Status CommitLocked(int64_t revision, const std::vector<WatchEvent>& events,
                            int64_t compacted_revision) override {
    for (const WatchEvent& e : events) {
      if (e.type == WatchEvent::kPut) {
        kv_.insert_or_assign(e.kv.key, e.kv);
      } else {
        kv_.erase(e.kv.key);
      }
      history_.push_back(e);
    }
    while (!history_.empty() && history_.front().kv.mod_revision <= compacted_revision) {
      history_.pop_front();
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<WatchEvent>> HistoryLocked(int64_t after_revision,
                                                        std::string_view prefix) const override {
    auto it =
        std::upper_bound(history_.begin(), history_.end(), after_revision,
                         [](int64_t rev, const WatchEvent& e) { return rev < e.kv.mod_revision; });
    std::vector<WatchEvent> out;
    for (; it != history_.end(); ++it) {
      if (it->kv.key.starts_with(prefix)) out.push_back(*it);
    }
    return out;
  }

 private:
  std::map<std::string, KeyValue, std::less<>> kv_;
  std::deque<WatchEvent> history_;  // ordered by revision, then op order
};

}  // namespace

std::unique_ptr<Store> NewMemoryStore(const StoreOptions& options) {
  return std::make_unique<MemoryStore>(options);
}

}  // namespace weft::cp
