// What a snapshot change tells streams (the names that differ, chained across publishes) and
// the bytes a snapshot shares between streams.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "common/proto_util.h"
#include "control-plane/cache/snapshot_cache.h"
#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"
#include "tests/unit/resource_util.h"

namespace weft::cp {
namespace {

using xds::ResourceType;

using testing::Endpoints;

xds::ResourcePtr Cluster(const std::string& name, int timeout_s = 1) {
  envoy::config::cluster::v3::Cluster c;
  c.set_name(name);
  c.mutable_connect_timeout()->set_seconds(timeout_s);
  return testing::Res(c);
}

SnapshotPtr Build(std::vector<xds::ResourcePtr> rs) {
  auto s = Snapshot::Build(std::move(rs));
  REQUIRE(s.ok());
  return *s;
}

std::vector<std::string> Names(const std::vector<NameId>& ids) {
  std::vector<std::string> out;
  for (NameId id : ids) out.push_back(NameTable::Global().Name(id));
  std::sort(out.begin(), out.end());
  return out;
}

using Strings = std::vector<std::string>;

TEST_CASE("a snapshot change lists the names added, removed or changed, per type") {
  SnapshotCache cache;
  auto s1 = Build({Cluster("a"), Cluster("b"), Endpoints("a", 1), Endpoints("b", 1)});
  auto s2 = Build({Cluster("a"), Cluster("c"), Endpoints("a", 2), Endpoints("b", 1)});
  cache.SetSnapshot("default", s1);
  cache.SetSnapshot("default", s2);
  std::vector<std::shared_ptr<const SnapshotChange>> changes;
  bool complete = false;
  SnapshotPtr got = cache.ForNode("n", "c", s1->serial(), &changes, &complete);
  CHECK(got == s2);
  REQUIRE(complete);
  REQUIRE(changes.size() == 1);
  CHECK(Names(changes[0]->changed[xds::Index(ResourceType::kCluster)]) == Strings{"b", "c"});
  CHECK(Names(changes[0]->changed[xds::Index(ResourceType::kEndpoint)]) == Strings{"a"});
  CHECK(changes[0]->changed[xds::Index(ResourceType::kListener)].empty());

  // Up to date: nothing to look at.
  got = cache.ForNode("n", "c", s2->serial(), &changes, &complete);
  CHECK(complete);
  CHECK(changes.empty());
}

TEST_CASE("changes chain across publishes, and an unknown start means compare everything") {
  SnapshotCache cache;
  std::vector<SnapshotPtr> snaps;
  for (int i = 0; i < 20; ++i) {
    snaps.push_back(Build({Cluster("a", 1 + i), Cluster("x" + std::to_string(i))}));
    cache.SetSnapshot("default", snaps.back());
  }
  std::vector<std::shared_ptr<const SnapshotChange>> changes;
  bool complete = false;
  cache.ForNode("n", "c", snaps[17]->serial(), &changes, &complete);
  REQUIRE(complete);
  REQUIRE(changes.size() == 2);
  CHECK(changes[0]->from == snaps[17]->serial());
  CHECK(changes[1]->to == snaps[19]->serial());
  // Too far behind for the kept history.
  cache.ForNode("n", "c", snaps[0]->serial(), &changes, &complete);
  CHECK_FALSE(complete);
  CHECK(changes.empty());

  // A node whose group appears is compared in full: its serial is from another group.
  cache.SetSnapshot("c", Build({Cluster("only-c")}));
  cache.ForNode("n", "c", snaps[19]->serial(), &changes, &complete);
  CHECK_FALSE(complete);
}

TEST_CASE("re-publishing identical content records no change") {
  SnapshotCache cache;
  auto s1 = Build({Cluster("a")});
  cache.SetSnapshot("default", s1);
  CHECK_FALSE(cache.SetSnapshot("default", Build({Cluster("a")})));
  std::vector<std::shared_ptr<const SnapshotChange>> changes;
  bool complete = false;
  CHECK(cache.ForNode("n", "c", s1->serial(), &changes, &complete) == s1);
  CHECK(complete);
}

TEST_CASE("memoized bytes are shared while held, per subset object") {
  auto snap = Build({Cluster("a")});
  int builds = 0;
  auto build = [&] {
    ++builds;
    return std::string("bytes");
  };
  auto subset = std::make_shared<const std::vector<int>>(std::vector<int>{1});
  auto other = std::make_shared<const std::vector<int>>(std::vector<int>{1});
  auto x = snap->Memo(0, ResourceType::kCluster, subset, build);
  auto y = snap->Memo(0, ResourceType::kCluster, subset, build);
  CHECK(x == y);
  CHECK(builds == 1);
  // Another selection, another kind or type: other bytes.
  snap->Memo(0, ResourceType::kCluster, other, build);
  snap->Memo(1, ResourceType::kCluster, subset, build);
  snap->Memo(0, ResourceType::kEndpoint, subset, build);
  snap->Memo(0, ResourceType::kCluster, nullptr, build);
  CHECK(builds == 5);
  // Once nobody holds them, they are rebuilt on demand.
  x.reset();
  y.reset();
  snap->Memo(0, ResourceType::kCluster, subset, build);
  CHECK(builds == 6);
}

TEST_CASE("memoized objects live with the snapshot while their subset does") {
  auto snap = Build({Cluster("a")});
  int builds = 0;
  auto build = [&]() -> std::shared_ptr<const void> {
    ++builds;
    return std::make_shared<const int>(builds);
  };
  auto subset = std::make_shared<const std::vector<int>>(std::vector<int>{1});
  auto x = snap->MemoObject(0, ResourceType::kEndpoint, subset, build);
  auto y = snap->MemoObject(0, ResourceType::kEndpoint, subset, build);
  CHECK(x == y);
  CHECK(builds == 1);
  // Nobody else holds it: still shared (streams take turns, none keeps the selection).
  x.reset();
  y.reset();
  auto z = snap->MemoObject(0, ResourceType::kEndpoint, subset, build);
  CHECK(*std::static_pointer_cast<const int>(z) == 1);
  CHECK(builds == 1);
  snap->MemoObject(0, ResourceType::kEndpoint, nullptr, build);
  snap->MemoObject(1, ResourceType::kEndpoint, subset, build);
  CHECK(builds == 3);
  // A new subset at the address of a dead one is not mistaken for it.
  const void* address = subset.get();
  subset.reset();
  for (int i = 0; i < 200 && builds < 1000; ++i) {
    auto fresh = std::make_shared<const std::vector<int>>(std::vector<int>{2});
    int before = builds;
    snap->MemoObject(0, ResourceType::kEndpoint, fresh, build);
    CHECK(builds == before + 1);
    if (fresh.get() == address) break;
  }
}

}  // namespace
}  // namespace weft::cp
