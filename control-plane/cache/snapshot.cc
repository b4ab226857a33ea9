#include "control-plane/cache/snapshot.h"

#include "absl/strings/str_cat.h"
#include "common/proto_util.h"
#include "common/strings.h"

namespace weft::cp {

absl::StatusOr<SnapshotPtr> Snapshot::Build(std::vector<xds::ResourcePtr> resources) {
  auto snap = std::make_shared<Snapshot>();
  for (xds::ResourcePtr& r : resources) {
    auto [it, inserted] = snap->by_type_[xds::Index(r->type)].emplace(r->name, r);
    if (!inserted) {
      return absl::InvalidArgumentError(
          absl::StrCat("duplicate ", Sv(xds::ShortName(r->type)), " name \"", r->name, "\""));
    }
  }
  for (xds::ResourceType t : xds::kAllResourceTypes) {
    std::string acc;
    for (const auto& [name, r] : snap->by_type_[xds::Index(t)]) {
      absl::StrAppend(&acc, name, "\n", r->version_text, "\n");
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

size_t Snapshot::size() const {
  size_t n = 0;
  for (const auto& m : by_type_) n += m.size();
  return n;
}

}  // namespace weft::cp
