#include "control-plane/cache/snapshot.h"

#include <atomic>

#include "absl/strings/str_cat.h"
#include "common/proto_util.h"
#include "common/strings.h"

namespace weft::cp {

absl::StatusOr<SnapshotPtr> Snapshot::Build(std::vector<xds::ResourcePtr> resources) {
  static std::atomic<uint64_t> next_serial{0};
  auto snap = std::make_shared<Snapshot>();
  snap->serial_ = next_serial.fetch_add(1) + 1;
  for (xds::ResourcePtr& r : resources) {
    auto [it, inserted] = snap->by_type_[xds::Index(r->type)].emplace(r->name, r);
    if (!inserted) {
      return absl::InvalidArgumentError(
          absl::StrCat("duplicate ", Sv(xds::ShortName(r->type)), " name \"", r->name, "\""));
    }
  }
  NameTable& names = NameTable::Global();
  for (xds::ResourceType t : xds::kAllResourceTypes) {
    const ResourceMap& by_name = snap->by_type_[xds::Index(t)];
    std::vector<Entry>& entries = snap->entries_[xds::Index(t)];
    auto& index = snap->index_[xds::Index(t)];
    entries.reserve(by_name.size());
    index.reserve(by_name.size());
    std::string acc;
    for (const auto& [name, r] : by_name) {
      absl::StrAppend(&acc, name, "\n", r->version_text, "\n");
      Entry e{r.get(), names.Intern(name), {}};
      e.dependencies.reserve(r->dependencies.size());
      for (const std::string& d : r->dependencies) e.dependencies.push_back(names.Intern(d));
      index.emplace(e.id, static_cast<uint32_t>(entries.size()));
      entries.push_back(std::move(e));
    }
    snap->versions_[xds::Index(t)] = HexVersion(StableHash64(acc));
  }
  return SnapshotPtr(std::move(snap));
}

SnapshotPtr Snapshot::Empty() {
  static const SnapshotPtr kEmpty = *Build({});
  return kEmpty;
}

const xds::Resource* Snapshot::Find(xds::ResourceType type, std::string_view name) const {
  const ResourceMap& m = by_type_[xds::Index(type)];
  auto it = m.find(name);
  return it == m.end() ? nullptr : it->second.get();
}

std::shared_ptr<const std::string> Snapshot::Memo(int kind, xds::ResourceType type,
                                                  const std::shared_ptr<const void>& subset,
                                                  const std::function<std::string()>& build) const {
  std::lock_guard lock(memo_mu_);
  MemoEntry& e = memo_[{kind, type, subset.get()}];
  std::shared_ptr<const void> held_subset = e.subset.lock();
  if (held_subset == subset) {
    if (auto bytes = e.bytes.lock()) return bytes;
  }
  // Built under the lock: streams asking for the same bytes meanwhile wait and share them.
  auto bytes = std::make_shared<const std::string>(build());
  e.subset = subset;
  e.bytes = bytes;
  if (memo_.size() >= memo_sweep_at_) {
    std::erase_if(memo_, [](const auto& kv) { return kv.second.bytes.expired(); });
    memo_sweep_at_ = 2 * memo_.size() + 64;
  }
  return bytes;
}

std::shared_ptr<const void> Snapshot::MemoObject(
    int kind, xds::ResourceType type, const std::shared_ptr<const void>& subset,
    const std::function<std::shared_ptr<const void>()>& build) const {
  std::lock_guard lock(memo_mu_);
  ObjectEntry& e = objects_[{kind, type, subset.get()}];
  if (e.object != nullptr && e.subset.lock() == subset) return e.object;
  e.subset = subset;
  e.object = build();
  if (objects_.size() >= objects_sweep_at_) {
    // Selections of subscriptions nobody holds any more.
    std::erase_if(objects_, [](const auto& kv) {
      return std::get<2>(kv.first) != nullptr && kv.second.subset.expired();
    });
    objects_sweep_at_ = 2 * objects_.size() + 64;
  }
  return e.object;
}

size_t Snapshot::size() const {
  size_t n = 0;
  for (const auto& m : by_type_) n += m.size();
  return n;
}

}  // namespace weft::cp
