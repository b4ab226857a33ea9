#include "control-plane/cache/publisher.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <vector>

#include "common/proto_util.h"
#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"
#include "tests/unit/resource_util.h"

namespace weft::cp {
namespace {

using ::envoy::config::cluster::v3::Cluster;

xds::ResourcePtr MakeCluster(const std::string& name) {
  Cluster c;
  c.set_name(name);
  c.mutable_connect_timeout()->set_seconds(1);
  google::protobuf::Any any;
  PackAny(c, &any);
  auto r = xds::MakeResource(any);
  REQUIRE(r.ok());
  return *r;
}

std::vector<std::string> ClusterNames(const SnapshotPtr& s) {
  std::vector<std::string> out;
  for (const auto& [name, r] : s->resources(xds::ResourceType::kCluster)) out.push_back(name);
  return out;
}

using Names = std::vector<std::string>;

TEST_CASE("Publisher gives each node group the shared resources plus its own", "[publisher]") {
  SnapshotCache cache;
  // A long debounce: only Flush() publishes, so the test is not timing-dependent.
  Publisher publisher(&cache, std::chrono::hours(1), std::chrono::hours(1));
  publisher.Update("raw", {MakeCluster("raw")});
  publisher.Update("model", {MakeCluster("shared")}, 7,
                   {{"payments", {MakeCluster("inbound|8080|payments.default")}},
                    {"payments.default", {MakeCluster("inbound|8080|payments.default")}},
                    {"ledger.prod", {MakeCluster("inbound|7070|ledger.prod")}}});
  publisher.Flush();
  CHECK(publisher.last_error().empty());
  CHECK(publisher.PublishedRevision("model") == 7);

  auto all = cache.All();
  CHECK(all.size() == 4);
  CHECK(ClusterNames(all.at("default")) == Names{"raw", "shared"});
  CHECK(ClusterNames(all.at("payments")) ==
        Names{"inbound|8080|payments.default", "raw", "shared"});
  CHECK(ClusterNames(all.at("ledger.prod")) == Names{"inbound|7070|ledger.prod", "raw", "shared"});
  // A sidecar whose node cluster is the service name gets its group; any other node the default.
  CHECK(cache.GroupForNode("sidecar-1", "payments") == "payments");
  CHECK(cache.GroupForNode("sidecar-2", "web") == "default");
  CHECK(ClusterNames(cache.ForNode("sidecar-2", "web")) == Names{"raw", "shared"});

  // A shared change reaches every group; a group no source mentions any more is cleared.
  publisher.Update("model", {MakeCluster("shared2")}, 8,
                   {{"payments", {MakeCluster("inbound|8080|payments.default")}}});
  publisher.Flush();
  all = cache.All();
  CHECK(all.size() == 2);
  CHECK(ClusterNames(all.at("payments")) ==
        Names{"inbound|8080|payments.default", "raw", "shared2"});
  CHECK(cache.GroupForNode("sidecar-3", "ledger.prod") == "default");
}

TEST_CASE("Publisher keeps every last good snapshot when a group clashes", "[publisher]") {
  SnapshotCache cache;
  Publisher publisher(&cache, std::chrono::hours(1), std::chrono::hours(1));
  publisher.Update("model", {MakeCluster("a")}, 1, {{"g", {MakeCluster("b")}}});
  publisher.Flush();
  REQUIRE(cache.All().size() == 2);
  // "a" in group g clashes with the shared "a": nothing is published, not even the default.
  publisher.Update("model", {MakeCluster("a"), MakeCluster("c")}, 2, {{"g", {MakeCluster("a")}}});
  publisher.Flush();
  CHECK_THAT(publisher.last_error(), Catch::Matchers::Contains("group g"));
  CHECK(ClusterNames(cache.All().at("default")) == Names{"a"});
  CHECK(ClusterNames(cache.All().at("g")) == Names{"a", "b"});
  CHECK(publisher.PublishedRevision("model") == 1);
}

TEST_CASE("Publisher never lets a source replace the default group", "[publisher]") {
  SnapshotCache cache;
  Publisher publisher(&cache, std::chrono::hours(1), std::chrono::hours(1));
  publisher.Update("model", {MakeCluster("a")}, 1, {{"default", {MakeCluster("b")}}});
  publisher.Flush();
  CHECK(cache.All().size() == 1);
  CHECK(ClusterNames(cache.All().at("default")) == Names{"a"});
}

TEST_CASE("Group snapshots reference the shared resources instead of copying them",
          "[publisher][sharing]") {
  SnapshotCache cache;
  Publisher publisher(&cache, std::chrono::hours(1), std::chrono::hours(1));
  std::vector<xds::ResourcePtr> shared;
  Publisher::GroupResources groups;
  for (int i = 0; i < 200; ++i) {
    shared.push_back(MakeCluster("c" + std::to_string(i)));
    shared.push_back(testing::Endpoints("c" + std::to_string(i), 1000 + i));
    groups["g" + std::to_string(i)] = {MakeCluster("inbound|" + std::to_string(i))};
  }
  publisher.Update("model", shared, 1, groups);
  publisher.Flush();
  auto all = cache.All();
  REQUIRE(all.size() == 201);
  const SnapshotPtr& def = all.at("default");
  for (const auto& [name, snap] : all) {
    INFO(name);
    for (xds::ResourceType t : xds::kAllResourceTypes) {
      // The very same set object, not a copy of its entries.
      CHECK(snap->base_set(t) == def->base_set(t));
    }
    if (name == "default") continue;
    CHECK(snap->size(xds::ResourceType::kCluster) == 201);
    CHECK(snap->own_set(xds::ResourceType::kCluster)->size() == 1);
    CHECK(snap->Find(xds::ResourceType::kCluster, "c7") != nullptr);
    CHECK(snap->Find(xds::ResourceType::kCluster, "inbound|" + name.substr(1)) != nullptr);
  }

  // One endpoint change: only the endpoints set is new, and in it every other entry is the
  // one published before; every group sees the change through the shared set.
  const ResourceSet::Ptr clusters_before = def->base_set(xds::ResourceType::kCluster);
  const ResourceSet::Ptr eds_before = def->base_set(xds::ResourceType::kEndpoint);
  ResourceDelta delta;
  delta.Upsert("", testing::Endpoints("c5", 9999));
  publisher.Apply("model", delta, 2);
  publisher.Flush();
  SnapshotPtr after = cache.ForNode("x", "g9");
  CHECK(after->base_set(xds::ResourceType::kCluster) == clusters_before);
  const ResourceSet::Ptr& eds_after = after->base_set(xds::ResourceType::kEndpoint);
  REQUIRE(eds_after != eds_before);
  REQUIRE(eds_after->size() == eds_before->size());
  size_t same = 0;
  for (size_t i = 0; i < eds_after->size(); ++i) {
    same += eds_after->entries()[i] == eds_before->entries()[i];
  }
  CHECK(same == eds_before->size() - 1);
  CHECK(eds_after->changed().size() == 1);
  CHECK(NameTable::Global().Name(eds_after->changed()[0]) == "c5");
  CHECK(publisher.PublishedRevision("model") == 2);

  // Re-publishing identical content changes nothing.
  publisher.Update("model", shared, 3, groups);  // c5 back to its first endpoints
  publisher.Flush();
  CHECK(cache.ForNode("x", "g9")->base_set(xds::ResourceType::kEndpoint)->changed().size() == 1);
  uint64_t published = publisher.published();
  publisher.Update("model", shared, 4, groups);
  publisher.Flush();
  CHECK(cache.ForNode("x", "g9")->version(xds::ResourceType::kEndpoint) ==
        cache.ForNode("y", "")->version(xds::ResourceType::kEndpoint));
  CHECK(publisher.published() == published + 1);
}

}  // namespace
}  // namespace weft::cp
