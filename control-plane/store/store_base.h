// What every Store implementation shares: validation of writes, revision/version bookkeeping,
// compaction policy and the watch machinery. A backend only persists a computed change and
// answers reads; all of it runs under one mutex held here, so backends need no locking.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "control-plane/store/store.h"

namespace weft::cp {

namespace internal {
class WatchHub;
}  // namespace internal

class StoreBase : public Store {
 public:
  ~StoreBase() override;
  StoreBase(const StoreBase&) = delete;
  StoreBase& operator=(const StoreBase&) = delete;

  absl::StatusOr<int64_t> Put(std::string_view key, std::string_view value) final;
  absl::StatusOr<int64_t> Txn(const std::vector<Op>& ops) final;
  absl::StatusOr<int64_t> Delete(std::string_view key) final;
  absl::StatusOr<std::optional<KeyValue>> Get(std::string_view key) const final;
  absl::StatusOr<std::vector<KeyValue>> Range(std::string_view prefix) const final;
  int64_t Revision() const final { return revision_.load(std::memory_order_acquire); }
  absl::StatusOr<std::unique_ptr<Watch>> WatchFrom(
      int64_t from_revision, std::string_view prefix,
      std::function<void(const std::vector<WatchEvent>&)> fn) final;

 protected:
  explicit StoreBase(const StoreOptions& options);

  // Backends call this once they know their persisted state, before the store is shared.
  void InitRevisions(int64_t revision, int64_t compacted_revision);
  // Backends call this first thing in their destructor, so no callback can reach a
  // half-destroyed store.
  void StopWatches();

  // All hooks run with mu_ held.
  virtual absl::StatusOr<std::optional<KeyValue>> GetLocked(std::string_view key) const = 0;
  virtual absl::StatusOr<std::vector<KeyValue>> RangeLocked(std::string_view prefix) const = 0;
  // Persists one revision atomically: `events` (in op order; puts carry the full new KeyValue)
  // plus their history rows, the new revision, and drops history at or below
  // `compacted_revision`. On error nothing may have changed.
  virtual absl::Status CommitLocked(int64_t revision, const std::vector<WatchEvent>& events,
                                    int64_t compacted_revision) = 0;
  // History events with mod_revision > after_revision and key starting with `prefix`, ordered
  // by revision, then op order.
  virtual absl::StatusOr<std::vector<WatchEvent>> HistoryLocked(int64_t after_revision,
                                                                std::string_view prefix) const = 0;

 private:
  const int64_t history_revisions_;
  mutable std::mutex mu_;
  std::atomic<int64_t> revision_{0};  // written under mu_, read lock-free by Revision()
  int64_t compacted_revision_ = 0;    // guarded by mu_
  std::shared_ptr<internal::WatchHub> hub_;
};

// Smallest string greater than every string with this prefix, or nullopt when none exists
// (empty prefix or all 0xff bytes). For range scans on sorted keys.
std::optional<std::string> PrefixEnd(std::string_view prefix);

}  // namespace weft::cp
