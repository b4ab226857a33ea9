#include <catch2/catch.hpp>

#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "control-plane/sources/config_dir.h"

namespace weft::cp {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/weft-config-dir-XXXXXX";
    char* made = mkdtemp(tmpl);
    REQUIRE(made != nullptr);
    path_ = made;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string Full(const std::string& rel) const { return path_ + "/" + rel; }

  // Writes via a temporary file and rename, as editors and ConfigMap updates do.
  void Write(const std::string& rel, const std::string& content) const {
    fs::path target = Full(rel);
    fs::create_directories(target.parent_path());
    fs::path tmp = target.parent_path() / ("." + target.filename().string() + ".tmp");
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      out << content;
    }
    fs::rename(tmp, target);
  }
  void Remove(const std::string& rel) const { fs::remove(Full(rel)); }

 private:
  std::string path_;
};

std::string ClusterDoc(const std::string& name, int port = 8080) {
  return absl::StrCat(R"(
- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: )",
                      name, R"(
  type: STATIC
  connect_timeout: 1s
  load_assignment:
    cluster_name: )",
                      name, R"(
    endpoints:
    - lb_endpoints:
      - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: )",
                      port, "}}}\n");
}

std::string Clusters(std::initializer_list<std::string> names) {
  std::string out = "resources:";
  for (const std::string& n : names) out += ClusterDoc(n);
  return out;
}

constexpr char kRoutesWithBadRegex[] = R"(resources:
- "@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
  name: routes
  virtual_hosts:
  - name: all
    domains: ["*"]
    routes:
    - match:
        safe_regex:
          regex: "a(b"
      route: {cluster: a}
)";

// Observes callbacks; state is checked through Current(), which must agree with them.
struct Watcher {
  std::atomic<int> calls{0};
  ConfigDirSource::Callback callback() {
    return [this](const ConfigDirState&) { calls.fetch_add(1); };
  }
};

bool WaitFor(const std::function<bool()>& done) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return done();
}

std::vector<std::string> Names(const ConfigDirState& s) {
  std::vector<std::string> names;
  for (const auto& r : s.resources) names.push_back(r->name);
  return names;
}

std::string Describe(const ConfigDirState& s) {
  std::string out = absl::StrCat("resources: ", absl::StrJoin(Names(s), ","), "\nerrors:\n");
  for (const auto& e : s.errors) absl::StrAppend(&out, "  ", e.file, " => ", e.message, "\n");
  return out;
}

std::unique_ptr<ConfigDirSource> MustCreate(const TempDir& dir, Watcher* w) {
  auto source = ConfigDirSource::Create(dir.path(), w->callback());
  INFO(source.status().ToString());
  REQUIRE(source.ok());
  return std::move(*source);
}

TEST_CASE("a missing directory is an error") {
  auto source = ConfigDirSource::Create("/nonexistent/weft-config", nullptr);
  CHECK_FALSE(source.ok());
}

TEST_CASE("files in the tree are loaded at Create, kind documents and junk files are skipped") {
  TempDir dir;
  dir.Write("a.yaml", Clusters({"a"}));
  dir.Write("sub/b.yml", Clusters({"b"}) + "---\nkind: Service\nname: ignored\n");
  dir.Write(
      "c.json",
      R"({"resources": [{"@type": "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment", "cluster_name": "c"}]})");
  dir.Write("notes.txt", "not: config\n");
  dir.Write("a.yaml~", "garbage: [\n");
  dir.Write(".hidden.yaml", "garbage: [\n");
  Watcher w;
  auto source = MustCreate(dir, &w);
  ConfigDirState s = source->Current();
  INFO(Describe(s));
  CHECK(s.errors.empty());
  CHECK(Names(s) == std::vector<std::string>{"a", "c", "b"});  // sorted by path
  CHECK(s.generation >= 1);
}

TEST_CASE("parse errors name the file, the line and the field") {
  TempDir dir;
  dir.Write("typo.yaml", Clusters({"a"}) + "  lb_polcy: RANDOM\n");
  dir.Write("type.yaml",
            "resources:\n- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Clusterz\n"
            "  name: x\n");
  dir.Write("other.yaml", "just: a map\n");
  std::string deep = Clusters({"d"});
  deep.replace(deep.find("    endpoints:"), 0, "    bogus: 1\n");
  dir.Write("z-deep.yaml", deep);
  Watcher w;
  auto source = MustCreate(dir, &w);
  ConfigDirState s = source->Current();
  INFO(Describe(s));
  CHECK(s.resources.empty());
  REQUIRE(s.errors.size() == 4);
  // Sorted: other, type, typo.
  CHECK(s.errors[0].message == dir.Full("other.yaml") +
                                   ":1: expected a DiscoveryResponse with \"resources\" (or a "
                                   "Weft document with \"kind\")");
  CHECK(s.errors[1].file == dir.Full("type.yaml"));
  CHECK(s.errors[1].message.rfind(dir.Full("type.yaml") + ":2: resources[0]: ", 0) == 0);
  CHECK(s.errors[1].message.find("Clusterz") != std::string::npos);
  CHECK(s.errors[2].message.rfind(dir.Full("typo.yaml") + ":11: resources[0].lb_polcy: ", 0) == 0);
  CHECK(s.errors[3].message.rfind(
            dir.Full("z-deep.yaml") + ":8: resources[0].load_assignment.bogus: ", 0) == 0);
}

TEST_CASE("validation errors point at the offending line") {
  TempDir dir;
  dir.Write("routes.yaml", kRoutesWithBadRegex);
  Watcher w;
  auto source = MustCreate(dir, &w);
  ConfigDirState s = source->Current();
  INFO(Describe(s));
  REQUIRE(s.errors.size() == 1);
  CHECK(s.errors[0].message.rfind(
            dir.Full("routes.yaml") +
                ":10: resources[0].virtual_hosts[0].routes[0].match.safe_regex.regex: invalid "
                "regex \"a(b\"",
            0) == 0);
  CHECK(s.errors[0].message.find("missing )") != std::string::npos);
}

TEST_CASE("node_groups scopes a document's resources to those groups") {
  TempDir dir;
  dir.Write("shared.yaml", Clusters({"everyone"}));
  dir.Write("scoped.yaml", "node_groups: [payments, web]\n" + Clusters({"only-some"}));
  dir.Write("bad-default.yaml", "node_groups: [default]\n" + Clusters({"d"}));
  dir.Write("bad-empty.yaml", "node_groups: []\n" + Clusters({"e"}));
  dir.Write("bad-type.yaml", "node_groups: payments\n" + Clusters({"f"}));
  Watcher w;
  auto source = MustCreate(dir, &w);
  ConfigDirState s = source->Current();
  INFO(Describe(s));
  CHECK(Names(s) == std::vector<std::string>{"everyone"});
  REQUIRE(s.group_resources.size() == 2);
  CHECK(s.group_resources.at("payments").size() == 1);
  CHECK(s.group_resources.at("payments")[0]->name == "only-some");
  CHECK(s.group_resources.at("web")[0]->name == "only-some");
  REQUIRE(s.errors.size() == 3);
  CHECK(s.errors[0].message.find("bad-default.yaml:1: node_groups: \"default\" is every node") !=
        std::string::npos);
  CHECK(s.errors[1].message.find("bad-empty.yaml:1: node_groups: must name at least one") !=
        std::string::npos);
  CHECK(s.errors[2].message.find("bad-type.yaml:1: node_groups: must be a list") !=
        std::string::npos);
}

TEST_CASE("duplicate names are refused within a file and across files") {
  TempDir dir;
  dir.Write("one.yaml", Clusters({"a", "b", "a"}));
  dir.Write("x.yaml", Clusters({"c"}));
  dir.Write("y.yaml", Clusters({"c", "d"}));
  Watcher w;
  auto source = MustCreate(dir, &w);
  ConfigDirState s = source->Current();
  INFO(Describe(s));
  CHECK(Names(s) == std::vector<std::string>{"c"});
  REQUIRE(s.errors.size() == 2);
  CHECK(s.errors[0].file == dir.Full("one.yaml"));
  CHECK(s.errors[0].message.find("resources[2].name: duplicate cluster name \"a\" (first at " +
                                 dir.Full("one.yaml") + ":3)") != std::string::npos);
  CHECK(s.errors[1].file == dir.Full("y.yaml"));
  CHECK(s.errors[1].message.find(
            dir.Full("y.yaml") +
            ":3: resources[0].name: duplicate cluster name \"c\" (already defined in " +
            dir.Full("x.yaml") + ")") != std::string::npos);
}

TEST_CASE("changes are picked up, a bad file keeps its last good resources, deletion removes") {
  TempDir dir;
  dir.Write("a.yaml", Clusters({"a"}));
  Watcher w;
  auto source = MustCreate(dir, &w);
  ConfigDirState initial = source->Current();
  REQUIRE(Names(initial) == std::vector<std::string>{"a"});
  const uint64_t a_version = initial.resources[0]->version;

  SECTION("adding a file") {
    dir.Write("sub/dir/b.yaml", Clusters({"b"}));
    REQUIRE(WaitFor([&] { return source->Current().resources.size() == 2; }));
    // The callback runs after the new state is published, so it may trail Current().
    CHECK(WaitFor([&] { return w.calls.load() >= 1; }));
    CHECK(source->Current().generation > initial.generation);
  }

  SECTION("modifying a file changes the version") {
    dir.Write("a.yaml", "resources:" + ClusterDoc("a", 9090));
    REQUIRE(WaitFor([&] {
      auto s = source->Current();
      return s.resources.size() == 1 && s.resources[0]->version != a_version;
    }));
    CHECK(WaitFor([&] { return w.calls.load() >= 1; }));
  }

  SECTION("a file turning bad keeps serving its last good version, then recovers") {
    dir.Write("a.yaml", Clusters({"a"}) + "  lb_polcy: RANDOM\n");
    REQUIRE(WaitFor([&] { return !source->Current().errors.empty(); }));
    ConfigDirState s = source->Current();
    INFO(Describe(s));
    REQUIRE(s.resources.size() == 1);
    CHECK(s.resources[0]->version == a_version);
    CHECK(s.errors[0].file == dir.Full("a.yaml"));

    dir.Write("a.yaml", Clusters({"a", "a2"}));
    REQUIRE(WaitFor([&] {
      auto s = source->Current();
      return s.errors.empty() && s.resources.size() == 2;
    }));
  }

  SECTION("deleting a file removes its resources") {
    dir.Remove("a.yaml");
    REQUIRE(WaitFor([&] { return source->Current().resources.empty(); }));
    CHECK(source->Current().errors.empty());
  }

  SECTION("a duplicate added in another file is rejected, and accepted once the clash goes") {
    dir.Write("b.yaml", Clusters({"a", "b"}));
    REQUIRE(WaitFor([&] { return !source->Current().errors.empty(); }));
    CHECK(Names(source->Current()) == std::vector<std::string>{"a"});
    dir.Remove("a.yaml");
    REQUIRE(WaitFor([&] { return source->Current().resources.size() == 2; }));
    CHECK(source->Current().errors.empty());
  }

  SECTION("rewriting identical content does not call back") {
    dir.Write("a.yaml", Clusters({"a"}));
    dir.Write("z.yaml", Clusters({"z"}));  // a marker that the rescan happened
    REQUIRE(WaitFor([&] { return source->Current().resources.size() == 2; }));
    REQUIRE(WaitFor([&] { return w.calls.load() >= 1; }));
    int calls = w.calls.load();
    dir.Write("a.yaml", Clusters({"a"}));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    CHECK(w.calls.load() == calls);
  }
}

// Rescans reread only the files that may have changed (an event named them or stat() differs):
// the cases below must still be seen.

std::string OneCluster(const std::string& name, int port) {
  return "resources:" + ClusterDoc(name, port);
}

// In place: same inode, as `cat > file` or an editor without backup copies does.
void WriteInPlace(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
}

uint64_t VersionOf(const ConfigDirSource& source, const std::string& name) {
  for (const auto& r : source.Current().resources) {
    if (r->name == name) return r->version;
  }
  return 0;
}

TEST_CASE("in-place rewrites of the same size are picked up, one after another") {
  TempDir dir;
  std::string file = dir.path() + "/a.yaml";
  WriteInPlace(file, OneCluster("a", 8001));
  for (int i = 0; i < 20; ++i)
    WriteInPlace(dir.path() + "/other-" + std::to_string(i) + ".yaml",
                 OneCluster("o" + std::to_string(i), 9000));
  auto source = ConfigDirSource::Create(dir.path(), [](const ConfigDirState&) {});
  REQUIRE(source.ok());
  uint64_t other = VersionOf(**source, "o3");
  uint64_t last = VersionOf(**source, "a");
  for (int port : {8002, 8003, 8004}) {
    WriteInPlace(file, OneCluster("a", port));
    REQUIRE(WaitFor([&] { return VersionOf(**source, "a") != last; }));
    last = VersionOf(**source, "a");
  }
  // Settled on the last content; the other files were left alone.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  CHECK(VersionOf(**source, "a") == last);
  CHECK(VersionOf(**source, "o3") == other);
}

TEST_CASE("a ConfigMap-style symlink swap is seen through the unchanged file names") {
  // Kubernetes mounts: a.yaml -> ..data/a.yaml, ..data -> ..v1; an update writes ..v2 and
  // renames a new ..data link over the old one. No event names a.yaml.
  TempDir dir;
  fs::create_directory(dir.path() + "/..v1");
  WriteInPlace(dir.path() + "/..v1/a.yaml", OneCluster("a", 8001));
  fs::create_directory_symlink("..v1", dir.path() + "/..data");
  fs::create_symlink("..data/a.yaml", dir.path() + "/a.yaml");
  auto source = ConfigDirSource::Create(dir.path(), [](const ConfigDirState&) {});
  REQUIRE(source.ok());
  uint64_t before = VersionOf(**source, "a");
  REQUIRE(before != 0);

  fs::create_directory(dir.path() + "/..v2");
  WriteInPlace(dir.path() + "/..v2/a.yaml", OneCluster("a", 8002));
  fs::create_directory_symlink("..v2", dir.path() + "/..data_tmp");
  fs::rename(dir.path() + "/..data_tmp", dir.path() + "/..data");
  CHECK(WaitFor([&] { return VersionOf(**source, "a") != before; }));
}

// cpscale: one edit in a big mesh must not make the model compare every object again.
TEST_CASE("objects of files that did not change keep their identity across an edit") {
  TempDir dir;
  for (int i = 0; i < 3; ++i) {
    dir.Write(absl::StrCat("svc-", i, ".yaml"),
              absl::StrCat("kind: Service\nname: svc-", i, "\nports: [{port: 8080}]\n"));
  }
  auto source = ConfigDirSource::Create(dir.path(), [](const ConfigDirState&) {});
  REQUIRE(source.ok());
  ConfigDirState before = (*source)->Current();
  REQUIRE(before.objects.size() == 3);
  dir.Write("svc-1.yaml", "kind: Service\nname: svc-1\nports: [{port: 9090}]\n");
  ConfigDirState after;
  CHECK(WaitFor([&] {
    after = (*source)->Current();
    return after.generation > before.generation;
  }));
  REQUIRE(after.objects.size() == 3);
  CHECK(after.objects[0] == before.objects[0]);
  CHECK(after.objects[1] != before.objects[1]);
  CHECK(after.objects[1]->service().ports(0).port() == 9090);
  CHECK(after.objects[2] == before.objects[2]);
}

}  // namespace
}  // namespace weft::cp
