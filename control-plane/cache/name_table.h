// Resource names interned to 32-bit ids. Per-stream bookkeeping (what a proxy subscribed to,
// was sent and ACKed) then holds 4-byte ids in sorted vectors instead of hash maps of strings:
// with 1000 proxies each tracking 2000 names, that is most of weft-cp's memory per proxy.
//
// Process-wide and append-only: an id names the same string for the life of the process, so
// ids can be compared across snapshots and streams without a lock. The cost is that a name
// once seen (in config or in a client's subscription) is never freed; names are short and
// their number is bounded by the config plus what clients ask for.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"

namespace weft::cp {

using NameId = uint32_t;

class NameTable {
 public:
  static NameTable& Global();

  NameId Intern(std::string_view name);
  // Appends the ids of `names` (strings), taking the lock once for the common case where all
  // are known: a SotW client restates its whole subscription on every ACK.
  template <typename Range>
  void InternAll(const Range& names, std::vector<NameId>* out);
  // The id of a name already interned; nullopt if no one ever interned it (so nothing can be
  // subscribed to it or hold it).
  std::optional<NameId> Find(std::string_view name) const;
  // Lock-free: chunks are never moved or freed once published.
  const std::string& Name(NameId id) const {
    return chunks_[id >> kChunkBits].load(std::memory_order_acquire)[id & kChunkMask];
  }

  NameTable() = default;
  ~NameTable();
  NameTable(const NameTable&) = delete;
  NameTable& operator=(const NameTable&) = delete;

 private:
  static constexpr uint32_t kChunkBits = 12;
  static constexpr uint32_t kChunkMask = (1u << kChunkBits) - 1;
  static constexpr size_t kMaxChunks = 4096;  // 16.7 M names

  mutable std::shared_mutex mu_;
  absl::flat_hash_map<absl::string_view, NameId> ids_;  // views into chunks_
  std::array<std::atomic<std::string*>, kMaxChunks> chunks_{};
  uint32_t next_ = 0;
};

template <typename Range>
void NameTable::InternAll(const Range& names, std::vector<NameId>* out) {
  size_t first = out->size();
  bool missing = false;
  {
    std::shared_lock lock(mu_);
    for (const auto& n : names) {
      auto it = ids_.find(absl::string_view(n.data(), n.size()));
      if (it == ids_.end()) {
        missing = true;
        break;
      }
      out->push_back(it->second);
    }
  }
  if (!missing) return;
  out->resize(first);
  for (const auto& n : names) out->push_back(Intern(std::string_view(n.data(), n.size())));
}

}  // namespace weft::cp
