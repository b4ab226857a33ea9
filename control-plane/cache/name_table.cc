#include "control-plane/cache/name_table.h"

#include <cstdlib>
#include <mutex>

#include "common/log.h"
#include "common/strings.h"

namespace weft::cp {

NameTable& NameTable::Global() {
  // Leaked on purpose: streams and snapshots may still be torn down after static destructors.
  static NameTable* table = new NameTable();
  return *table;
}

NameTable::~NameTable() {
  for (auto& c : chunks_) delete[] c.load(std::memory_order_relaxed);
}

std::optional<NameId> NameTable::Find(std::string_view name) const {
  std::shared_lock lock(mu_);
  auto it = ids_.find(Sv(name));
  if (it == ids_.end()) return std::nullopt;
  return it->second;
}

NameId NameTable::Intern(std::string_view name) {
  {
    std::shared_lock lock(mu_);
    auto it = ids_.find(Sv(name));
    if (it != ids_.end()) return it->second;
  }
  std::unique_lock lock(mu_);
  auto it = ids_.find(Sv(name));
  if (it != ids_.end()) return it->second;
  NameId id = next_;
  size_t chunk = id >> kChunkBits;
  if (chunk >= kMaxChunks) {
    WEFT_LOG(kError) << "name table full (" << id << " names); aborting";
    std::abort();
  }
  std::string* block = chunks_[chunk].load(std::memory_order_relaxed);
  if (block == nullptr) {
    block = new std::string[size_t{1} << kChunkBits];
    chunks_[chunk].store(block, std::memory_order_release);
  }
  std::string& slot = block[id & kChunkMask];
  slot.assign(name.data(), name.size());
  ++next_;
  ids_.emplace(absl::string_view(slot.data(), slot.size()), id);
  return id;
}

}  // namespace weft::cp
