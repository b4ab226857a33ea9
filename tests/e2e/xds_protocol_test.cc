// weft-cp against the xDS v3 protocol rules (shared/reference/xds-protocol.md), driven step by
// step over real gRPC streams to a real weft-cp process. Each test case starts its own server on
// kernel-chosen ports with its own config dir, so cases are independent and can run in parallel.
#include <utime.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"
#include "tests/e2e/e2e_util.h"
#include "tests/support/process.h"
#include "tests/support/xds_client.h"

namespace weft::test {
namespace {

using std::chrono::milliseconds;
using Strings = std::vector<std::string>;

// The contract promises pushes within a second; the slack absorbs a loaded CI machine.
constexpr milliseconds kPush{3000};
// How long "nothing happens" is watched. Debounce is 20 ms in these tests, so a push that was
// going to happen would be well under way.
constexpr milliseconds kQuiet{800};

const envoy::config::core::v3::Node kNode = MakeNode("n1", "c1");

std::string S(std::string_view s) { return std::string(s); }

Strings Sorted(Strings v) {
  std::sort(v.begin(), v.end());
  return v;
}

bool IsHexVersion(const std::string& v) {
  static const std::regex re("^[0-9a-f]{16}$");
  return std::regex_match(v, re);
}

std::string Describe(const DiscoveryResponse& r) {
  std::string names;
  for (const auto& n : Names(r)) names += n + " ";
  return "SotW response type=" + r.type_url() + " version=" + r.version_info() +
         " nonce=" + r.nonce() + " names=[" + names + "]";
}

std::string Describe(const DeltaDiscoveryResponse& r) {
  std::string names;
  for (const auto& [n, v] : Versions(r)) names += n + "@" + v + " ";
  std::string removed;
  for (const auto& n : r.removed_resources()) removed += n + " ";
  return "Delta response type=" + r.type_url() + " nonce=" + r.nonce() + " resources=[" + names +
         "] removed=[" + removed + "]";
}

// A SotW stream plus the subscription state a real client keeps: the names per type and the
// last response per type, so that every follow-up request restates both correctly.
class Sotw {
 public:
  explicit Sotw(int port, XdsService service = XdsService::kAds) : client_(port, service) {}

  void Subscribe(std::string_view type, const Strings& names) {
    DiscoveryRequest r = SotwRequest(type, names, first_ ? &kNode : nullptr);
    first_ = false;
    auto it = last_.find(S(type));
    if (it != last_.end()) {
      r.set_version_info(acked_version_[S(type)]);
      r.set_response_nonce(it->second.nonce());
    }
    subs_[S(type)] = names;
    REQUIRE(client_.Send(r));
  }

  // The next response, which must arrive within kPush (and be of `type` if given).
  DiscoveryResponse Expect(std::string_view type = "", milliseconds timeout = kPush) {
    auto r = client_.Next(timeout);
    INFO("waiting for a " << (type.empty() ? "any" : type) << " response");
    REQUIRE(r.has_value());
    INFO(Describe(*r));
    if (!type.empty()) REQUIRE(r->type_url() == type);
    CHECK(!r->nonce().empty());
    last_[r->type_url()] = *r;
    return *r;
  }

  void Ack(const DiscoveryResponse& r) {
    acked_version_[r.type_url()] = r.version_info();
    REQUIRE(client_.Send(SotwAck(r, subs_[r.type_url()])));
  }

  void Nack(const DiscoveryResponse& r, std::string_view message) {
    REQUIRE(client_.Send(SotwNack(r, subs_[r.type_url()], acked_version_[r.type_url()], message)));
  }

  DiscoveryResponse ExpectAndAck(std::string_view type) {
    DiscoveryResponse r = Expect(type);
    Ack(r);
    return r;
  }

  void ExpectQuiet(milliseconds window = kQuiet) {
    auto r = client_.ExpectNone(window);
    if (r) {
      last_[r->type_url()] = *r;
      FAIL_CHECK("unexpected push: " << Describe(*r));
    }
  }

  // Every response within `window` of quiet, each ACKed at once (as Envoy would).
  std::vector<DiscoveryResponse> CollectAcking(milliseconds window = kQuiet,
                                               milliseconds first_timeout = kPush) {
    std::vector<DiscoveryResponse> out;
    auto r = client_.Next(first_timeout);
    while (r) {
      last_[r->type_url()] = *r;
      Ack(*r);
      out.push_back(*r);
      r = client_.Next(window);
    }
    return out;
  }

  SotwClient& client() { return client_; }

 private:
  SotwClient client_;
  bool first_ = true;
  std::map<std::string, Strings> subs_;
  std::map<std::string, DiscoveryResponse> last_;
  std::map<std::string, std::string> acked_version_;
};

class Delta {
 public:
  explicit Delta(int port, XdsService service = XdsService::kAds) : client_(port, service) {}

  void Subscribe(std::string_view type, const Strings& names,
                 const std::map<std::string, std::string>& initial = {}) {
    REQUIRE(client_.Send(DeltaRequest(type, names, initial, first_ ? &kNode : nullptr)));
    first_ = false;
  }

  DeltaDiscoveryResponse Expect(std::string_view type = "", milliseconds timeout = kPush) {
    auto r = client_.Next(timeout);
    INFO("waiting for a Delta " << (type.empty() ? "any" : type) << " response");
    REQUIRE(r.has_value());
    INFO(Describe(*r));
    if (!type.empty()) REQUIRE(r->type_url() == type);
    CHECK(!r->nonce().empty());
    return *r;
  }

  DeltaDiscoveryResponse ExpectAndAck(std::string_view type) {
    DeltaDiscoveryResponse r = Expect(type);
    REQUIRE(client_.Send(DeltaAck(r)));
    return r;
  }

  void ExpectQuiet(milliseconds window = kQuiet) {
    auto r = client_.ExpectNone(window);
    if (r) FAIL_CHECK("unexpected push: " << Describe(*r));
  }

  std::vector<DeltaDiscoveryResponse> CollectAcking(milliseconds window = kQuiet,
                                                    milliseconds first_timeout = kPush) {
    std::vector<DeltaDiscoveryResponse> out;
    auto r = client_.Next(first_timeout);
    while (r) {
      REQUIRE(client_.Send(DeltaAck(*r)));
      out.push_back(*r);
      r = client_.Next(window);
    }
    return out;
  }

  DeltaClient& client() { return client_; }

 private:
  DeltaClient client_;
  bool first_ = true;
};

// The /debug/proxies entry of node n1 for `type` (cluster, endpoint, ...), waiting until
// `predicate` holds for it. Returns the last entry seen.
google::protobuf::Value WaitForProxyType(
    CpFixture& cp, std::string_view type,
    const std::function<bool(const google::protobuf::Value&)>& predicate,
    std::string_view node = "n1") {
  google::protobuf::Value last;
  std::string body;
  bool ok = WaitFor(
      [&] {
        HttpResponse r = HttpGet(cp.admin_port(), "/debug/proxies");
        body = r.body;
        if (r.status != 200) return false;
        auto json = ParseJson(r.body);
        if (!json) return false;
        auto proxy = FindProxy(*json, node);
        if (!proxy) return false;
        const auto* t = JsonAt(*proxy, "types." + S(type));
        if (t == nullptr) return false;
        last = *t;
        return predicate(last);
      },
      std::chrono::seconds(3), milliseconds(50));
  INFO("/debug/proxies: " << body);
  CHECK(ok);
  return last;
}

std::set<std::string> AllHexTokens(const std::string& text) {
  std::set<std::string> out;
  static const std::regex re("[0-9a-f]{16}");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator();
       ++it) {
    out.insert(it->str());
  }
  return out;
}

// ------------------------------------------------------------------------------------------------

TEST_CASE("SotW ADS: wildcard CDS, nonce and version on every response, ACK goes quiet",
          "[e2e][sotw]") {
  CpFixture cp;
  cp.Write("clusters.yaml", ResourcesFile({ClusterRes("a"), ClusterRes("b")}));
  cp.Start();

  Sotw s(cp.xds_port());
  s.Subscribe(kCds, {});  // legacy wildcard: empty first request
  DiscoveryResponse r = s.Expect(kCds);
  CHECK(Sorted(Names(r)) == Strings{"a", "b"});
  CHECK(IsHexVersion(r.version_info()));
  s.Ack(r);
  s.ExpectQuiet();

  auto cluster = WaitForProxyType(cp, "cluster", [&](const google::protobuf::Value& t) {
    return JsonString(t, "acked_version") == r.version_info();
  });
  CHECK(JsonString(cluster, "sent_version") == r.version_info());
  CHECK(JsonString(cluster, "sent_nonce") == r.nonce());
  CHECK(JsonString(cluster, "resources.a.acked").size() == 16);

  auto proxies = cp.GetJson("/debug/proxies");
  auto proxy = FindProxy(proxies, "n1");
  REQUIRE(proxy.has_value());
  CHECK(JsonString(*proxy, "mode") == "sotw");
  CHECK(JsonString(*proxy, "service") == "ads");
  CHECK(JsonString(*proxy, "cluster") == "c1");

  CHECK(cp.Metric("weft_cp_connected_proxies") == 1);
  CHECK(cp.Metric("weft_cp_xds_pushes_total", {{"type", "cluster"}}) >= 1);
  CHECK(cp.Metric("weft_cp_xds_push_to_ack_seconds_count") >= 1);

  // A closed stream is forgotten.
  s.client().Close();
  CHECK(WaitFor([&] { return cp.Metric("weft_cp_connected_proxies") == 0; },
                std::chrono::seconds(3)));
  CHECK(!FindProxy(cp.GetJson("/debug/proxies"), "n1").has_value());
}

TEST_CASE("SotW: explicit '*' wildcard, on ADS and on the per-type CDS and LDS services",
          "[e2e][sotw]") {
  CpFixture cp;
  cp.Write("all.yaml", ResourcesFile({ClusterRes("a"), ClusterRes("b"), ListenerRes("l1", "r1"),
                                      RouteRes("r1", "a")}));
  cp.Start();

  Sotw ads(cp.xds_port());
  ads.Subscribe(kCds, {"*"});
  CHECK(Sorted(Names(ads.ExpectAndAck(kCds))) == Strings{"a", "b"});

  Sotw cds(cp.xds_port(), XdsService::kCluster);
  cds.Subscribe(kCds, {"*"});
  CHECK(Sorted(Names(cds.ExpectAndAck(kCds))) == Strings{"a", "b"});

  Sotw lds(cp.xds_port(), XdsService::kListener);
  lds.Subscribe(kLds, {});
  CHECK(Names(lds.ExpectAndAck(kLds)) == Strings{"l1"});

  // Per-type Delta as well.
  Delta dcds(cp.xds_port(), XdsService::kCluster);
  dcds.Subscribe(kCds, {"*"});
  CHECK(Sorted(Names(dcds.ExpectAndAck(kCds))) == Strings{"a", "b"});

  // Everyone sees a later change.
  cp.Write("all.yaml", ResourcesFile({ClusterRes("a"), ClusterRes("b"), ClusterRes("c"),
                                      ListenerRes("l1", "r1"), RouteRes("r1", "a")}));
  CHECK(Sorted(Names(ads.ExpectAndAck(kCds))) == Strings{"a", "b", "c"});
  CHECK(Sorted(Names(cds.ExpectAndAck(kCds))) == Strings{"a", "b", "c"});
  CHECK(Names(dcds.ExpectAndAck(kCds)) == Strings{"c"});
  lds.ExpectQuiet();
}

TEST_CASE("SotW NACK: recorded with its error text and nonce, counted, nothing resent",
          "[e2e][sotw][nack]") {
  CpFixture cp;
  cp.Write("clusters.yaml", ResourcesFile({ClusterRes("a"), ClusterRes("b")}));
  cp.Start();

  Sotw s(cp.xds_port());
  s.Subscribe(kCds, {});
  DiscoveryResponse r1 = s.Expect(kCds);
  const std::string kError = "e2e: cluster a rejected: unsupported lb_policy (test NACK 7f3a)";
  s.Nack(r1, kError);
  s.ExpectQuiet();

  auto cluster = WaitForProxyType(cp, "cluster", [&](const google::protobuf::Value& t) {
    return JsonString(t, "nack.error").find("test NACK 7f3a") != std::string::npos;
  });
  CHECK(JsonString(cluster, "nack.error") == kError);
  CHECK(JsonString(cluster, "nack.nonce") == r1.nonce());
  CHECK(JsonString(cluster, "acked_version").empty());
  CHECK(WaitFor(
      [&] {
        return cp.Metric("weft_cp_xds_nacks_total", {{"type", "cluster"}}) == 1;
      },
      std::chrono::seconds(2)));

  // A config change is the only thing that produces a new push after a NACK.
  cp.Write("clusters.yaml", ResourcesFile({ClusterRes("a"), ClusterRes("b", 2)}));
  DiscoveryResponse r2 = s.Expect(kCds);
  CHECK(r2.version_info() != r1.version_info());
  CHECK(r2.nonce() != r1.nonce());
  s.Ack(r2);
  s.ExpectQuiet();
  WaitForProxyType(cp, "cluster", [&](const google::protobuf::Value& t) {
    return JsonString(t, "acked_version") == r2.version_info();
  });
}

TEST_CASE("Delta NACK: recorded in /debug/proxies and counted", "[e2e][delta][nack]") {
  CpFixture cp;
  cp.Write("clusters.yaml", ResourcesFile({ClusterRes("a")}));
  cp.Start();

  Delta d(cp.xds_port());
  d.Subscribe(kCds, {"*"});
  DeltaDiscoveryResponse r = d.Expect(kCds);
  REQUIRE(d.client().Send(DeltaNack(r, "e2e delta nack 51c2")));
  d.ExpectQuiet();
  auto cluster = WaitForProxyType(cp, "cluster", [&](const google::protobuf::Value& t) {
    return JsonString(t, "nack.error").find("e2e delta nack 51c2") != std::string::npos;
  });
  CHECK(JsonString(cluster, "nack.nonce") == r.nonce());
  auto proxy = FindProxy(cp.GetJson("/debug/proxies"), "n1");
  REQUIRE(proxy.has_value());
  CHECK(JsonString(*proxy, "mode") == "delta");
  CHECK(cp.Metric("weft_cp_xds_nacks_total", {{"type", "cluster"}}) == 1);
}

TEST_CASE("SotW: requests carrying a stale nonce are ignored", "[e2e][sotw]") {
  CpFixture cp;
  cp.Write("clusters.yaml", ResourcesFile({ClusterRes("a")}));
  cp.Write("endpoints.yaml", ResourcesFile({ClaRes("a", {8001}), ClaRes("b", {8002})}));
  cp.Start();

  Sotw s(cp.xds_port());
  s.Subscribe(kEds, {"a"});
  DiscoveryResponse r1 = s.ExpectAndAck(kEds);
  CHECK(Names(r1) == Strings{"a"});

  cp.Write("endpoints.yaml", ResourcesFile({ClaRes("a", {8001, 8003}), ClaRes("b", {8002})}));
  DiscoveryResponse r2 = s.Expect(kEds);
  REQUIRE(r2.nonce() != r1.nonce());

  // Stale nonce r1: a NACK and a subscription change must both be ignored.
  DiscoveryRequest stale_nack = SotwNack(r1, {"a"}, r1.version_info(), "stale e2e nack");
  REQUIRE(s.client().Send(stale_nack));
  DiscoveryRequest stale_sub = SotwAck(r1, {"a", "b"});
  REQUIRE(s.client().Send(stale_sub));
  s.ExpectQuiet();
  auto endpoint = WaitForProxyType(cp, "endpoint", [&](const google::protobuf::Value& t) {
    return JsonString(t, "sent_nonce") == r2.nonce();
  });
  {
    INFO("endpoint state: " << ToJson(endpoint));
    CHECK(JsonString(endpoint, "nack.error").empty());
  }
  CHECK(cp.Metric("weft_cp_xds_nacks_total", {{"type", "endpoint"}}) <= 0);

  // The current nonce is honoured: ACK r2 and subscribe to b at once.
  REQUIRE(s.client().Send(SotwAck(r2, {"a", "b"})));
  DiscoveryResponse r3 = s.Expect(kEds);
  Strings names = Names(r3);
  CHECK(std::count(names.begin(), names.end(), "b") == 1);
}

TEST_CASE("Named subscriptions to missing names are pushed once the names appear",
          "[e2e][sotw][delta]") {
  CpFixture cp;
  cp.Write("clusters.yaml", ResourcesFile({ClusterRes("a")}));
  cp.Write("endpoints.yaml", ResourcesFile({ClaRes("a", {8001})}));
  cp.Start();

  Sotw s(cp.xds_port());
  s.Subscribe(kEds, {"a", "late"});
  DiscoveryResponse r1 = s.ExpectAndAck(kEds);
  CHECK(Names(r1) == Strings{"a"});
  s.Subscribe(kRds, {"late-route"});
  // Nothing to send for RDS yet; the server may answer with an empty set or stay silent.
  if (auto empty = s.client().Next(kQuiet)) {
    INFO(Describe(*empty));
    CHECK(empty->type_url() == kRds);
    CHECK(empty->resources_size() == 0);
    s.Ack(*empty);
  }

  Delta d(cp.xds_port());
  d.Subscribe(kEds, {"late"});
  if (auto first = d.client().Next(kQuiet)) {
    INFO(Describe(*first));
    CHECK(first->resources_size() == 0);
    REQUIRE(d.client().Send(DeltaAck(*first)));
  }

  cp.Write("late.yaml", ResourcesFile({ClaRes("late", {8009}), RouteRes("late-route", "a")}));
  // EDS is partial in SotW: `a` may or may not come along, `late` must.
  DiscoveryResponse r2 = s.ExpectAndAck(kEds);
  auto names = Names(r2);
  CHECK(std::find(names.begin(), names.end(), "late") != names.end());
  CHECK(Names(s.ExpectAndAck(kRds)) == Strings{"late-route"});
  CHECK(Names(d.ExpectAndAck(kEds)) == Strings{"late"});
  s.ExpectQuiet();
  d.ExpectQuiet();
}

TEST_CASE("SotW CDS/LDS: deletion is absence from the full set", "[e2e][sotw]") {
  CpFixture cp;
  cp.Write("clusters.yaml", ResourcesFile({ClusterRes("a"), ClusterRes("b")}));
  cp.Write("listeners.yaml",
           ResourcesFile({ListenerRes("l1", "r1", 10001), ListenerRes("l2", "r1", 10002)}));
  cp.Start();

  Sotw s(cp.xds_port());
  s.Subscribe(kCds, {});
  CHECK(Sorted(Names(s.ExpectAndAck(kCds))) == Strings{"a", "b"});
  s.Subscribe(kLds, {});
  CHECK(Sorted(Names(s.ExpectAndAck(kLds))) == Strings{"l1", "l2"});

  cp.Write("clusters.yaml", ResourcesFile({ClusterRes("a")}));
  CHECK(Names(s.ExpectAndAck(kCds)) == Strings{"a"});
  s.ExpectQuiet();
  cp.Remove("listeners.yaml");
  DiscoveryResponse lds = s.ExpectAndAck(kLds);
  CHECK(lds.resources_size() == 0);
  s.ExpectQuiet();
}

TEST_CASE("Delta: only changed resources are sent and deletions go in removed_resources",
          "[e2e][delta]") {
  CpFixture cp;
  std::string initial = ResourcesFile({ClusterRes("a"), ClusterRes("b")});
  cp.Write("clusters.yaml", initial);
  cp.Start();

  Delta d(cp.xds_port());
  d.Subscribe(kCds, {"*"});
  DeltaDiscoveryResponse r1 = d.ExpectAndAck(kCds);
  auto v1 = Versions(r1);
  CHECK(Sorted(Names(r1)) == Strings{"a", "b"});
  for (const auto& [name, v] : v1) CHECK(IsHexVersion(v));
  d.ExpectQuiet();

  // Touching the file without changing it must not push anything.
  cp.Write("clusters.yaml", initial);
  d.ExpectQuiet();

  cp.Write("clusters.yaml", ResourcesFile({ClusterRes("a"), ClusterRes("b", 2)}));
  DeltaDiscoveryResponse r2 = d.ExpectAndAck(kCds);
  CHECK(Names(r2) == Strings{"b"});
  CHECK(Versions(r2)["b"] != v1["b"]);
  CHECK(r2.removed_resources_size() == 0);
  d.ExpectQuiet();

  cp.Write("clusters.yaml", ResourcesFile({ClusterRes("a")}));
  DeltaDiscoveryResponse r3 = d.ExpectAndAck(kCds);
  CHECK(r3.resources_size() == 0);
  CHECK(Strings(r3.removed_resources().begin(), r3.removed_resources().end()) == Strings{"b"});
  d.ExpectQuiet();
}

TEST_CASE("Delta: re-subscribing resends and unsubscribed names are no longer pushed",
          "[e2e][delta]") {
  CpFixture cp;
  cp.Write("endpoints.yaml", ResourcesFile({ClaRes("a", {8001}), ClaRes("b", {8002})}));
  cp.Start();

  Delta d(cp.xds_port());
  d.Subscribe(kEds, {"a", "b"});
  DeltaDiscoveryResponse r1 = d.ExpectAndAck(kEds);
  CHECK(Sorted(Names(r1)) == Strings{"a", "b"});
  d.ExpectQuiet(milliseconds(300));

  // A name in resource_names_subscribe is sent even if the server thinks the client has it.
  d.Subscribe(kEds, {"a"});
  DeltaDiscoveryResponse r2 = d.ExpectAndAck(kEds);
  CHECK(Names(r2) == Strings{"a"});
  CHECK(Versions(r2)["a"] == Versions(r1)["a"]);

  DeltaDiscoveryRequest unsub = DeltaRequest(kEds, {});
  unsub.add_resource_names_unsubscribe("b");
  REQUIRE(d.client().Send(unsub));
  d.ExpectQuiet(milliseconds(300));
  cp.Write("endpoints.yaml", ResourcesFile({ClaRes("a", {8001}), ClaRes("b", {8002, 8003})}));
  d.ExpectQuiet();
  cp.Write("endpoints.yaml", ResourcesFile({ClaRes("a", {8001, 8004}), ClaRes("b", {8002})}));
  CHECK(Names(d.ExpectAndAck(kEds)) == Strings{"a"});
}

TEST_CASE("Delta reconnect with initial_resource_versions gets only what differs", "[e2e][delta]") {
  CpFixture cp;
  cp.Write("clusters.yaml", ResourcesFile({ClusterRes("a"), ClusterRes("b"), ClusterRes("c")}));
  cp.Start();

  Sotw observer(cp.xds_port());
  observer.Subscribe(kCds, {});
  observer.ExpectAndAck(kCds);
  std::map<std::string, std::string> known;
  {
    Delta d(cp.xds_port());
    d.Subscribe(kCds, {"*"});
    known = Versions(d.ExpectAndAck(kCds));
    REQUIRE(known.size() == 3);
    d.client().Close();
  }
  cp.Write("clusters.yaml", ResourcesFile({ClusterRes("a"), ClusterRes("b", 2), ClusterRes("d")}));
  // Let the change land before reconnecting.
  CHECK(Sorted(Names(observer.ExpectAndAck(kCds))) == Strings{"a", "b", "d"});

  Delta d(cp.xds_port());
  d.Subscribe(kCds, {"*"}, known);
  auto responses = d.CollectAcking();
  std::set<std::string> sent;
  std::set<std::string> removed;
  for (const auto& r : responses) {
    INFO(Describe(r));
    for (const auto& n : Names(r)) sent.insert(n);
    for (const auto& n : r.removed_resources()) removed.insert(n);
  }
  CHECK(sent == std::set<std::string>{"b", "d"});
  CHECK(removed == std::set<std::string>{"c"});
}

TEST_CASE("SotW reconnect while a cluster warms: the new stream gets EDS though unchanged",
          "[e2e][sotw][warming]") {
  CpFixture cp;
  cp.Write("clusters.yaml", ResourcesFile({ClusterRes("a")}));
  cp.Write("endpoints.yaml", ResourcesFile({ClaRes("a", {8001})}));
  cp.Start();

  DiscoveryResponse first_cla;
  {
    Sotw s(cp.xds_port());
    s.Subscribe(kCds, {});
    s.ExpectAndAck(kCds);
    s.Subscribe(kEds, {"a"});
    first_cla = s.ExpectAndAck(kEds);
    s.client().Close();
  }
  // A fresh stream (as after a control-plane restart or a switch to another replica): CDS first,
  // the cluster warms, then EDS for it must be answered although nothing changed.
  Sotw s(cp.xds_port());
  s.Subscribe(kCds, {});
  CHECK(Names(s.ExpectAndAck(kCds)) == Strings{"a"});
  s.Subscribe(kEds, {"a"});
  DiscoveryResponse cla = s.ExpectAndAck(kEds);
  CHECK(Names(cla) == Strings{"a"});
  CHECK(cla.version_info() == first_cla.version_info());

  // Same stream: when the cluster itself changes, it warms again, so its endpoints come too.
  cp.Write("clusters.yaml", ResourcesFile({ClusterRes("a", 2)}));
  auto responses = s.CollectAcking();
  Strings types;
  for (const auto& r : responses) types.push_back(r.type_url());
  INFO("types pushed after the cluster change: " << ::Catch::Detail::stringify(types));
  REQUIRE(types.size() >= 2);
  CHECK(types[0] == kCds);
  CHECK(types[1] == kEds);
  if (types.size() >= 2) CHECK(Names(responses[1]) == Strings{"a"});
}

TEST_CASE("Delta warming: a changed EDS cluster brings its unchanged endpoints along",
          "[e2e][delta][warming]") {
  CpFixture cp;
  cp.Write("clusters.yaml", ResourcesFile({ClusterRes("a"), ClusterRes("b")}));
  cp.Write("endpoints.yaml", ResourcesFile({ClaRes("a", {8001}), ClaRes("b", {8002})}));
  cp.Start();

  Delta d(cp.xds_port());
  d.Subscribe(kCds, {"*"});
  d.ExpectAndAck(kCds);
  d.Subscribe(kEds, {"a", "b"});
  CHECK(Sorted(Names(d.ExpectAndAck(kEds))) == Strings{"a", "b"});

  cp.Write("clusters.yaml", ResourcesFile({ClusterRes("a", 2), ClusterRes("b")}));
  auto responses = d.CollectAcking();
  REQUIRE(responses.size() >= 2);
  CHECK(responses[0].type_url() == kCds);
  CHECK(Names(responses[0]) == Strings{"a"});
  CHECK(responses[1].type_url() == kEds);
  CHECK(Names(responses[1]) == Strings{"a"});
}

TEST_CASE("Unchanged resources are never resent", "[e2e][sotw][delta]") {
  CpFixture cp;
  std::string clusters = ResourcesFile({ClusterRes("a"), ClusterRes("b")});
  cp.Write("clusters.yaml", clusters);
  cp.Write("endpoints.yaml", ResourcesFile({ClaRes("a", {8001}), ClaRes("b", {8002})}));
  cp.Start();

  Sotw s(cp.xds_port());
  s.Subscribe(kCds, {});
  DiscoveryResponse cds1 = s.ExpectAndAck(kCds);
  s.Subscribe(kEds, {"a", "b"});
  s.ExpectAndAck(kEds);
  Delta d(cp.xds_port());
  d.Subscribe(kCds, {"*"});
  d.ExpectAndAck(kCds);
  d.Subscribe(kEds, {"a", "b"});
  d.ExpectAndAck(kEds);
  s.ExpectQuiet(milliseconds(200));
  d.ExpectQuiet(milliseconds(200));

  SECTION("touching a file without changing its content pushes nothing") {
    cp.Write("clusters.yaml", clusters);
    REQUIRE(::utime((cp.config_dir() + "/clusters.yaml").c_str(), nullptr) == 0);
    s.ExpectQuiet();
    d.ExpectQuiet();
  }
  SECTION("the same content in a reformatted file pushes nothing") {
    cp.Write("clusters.yaml", "# reformatted\n" + clusters + "\n\n");
    s.ExpectQuiet();
    d.ExpectQuiet();
  }
  SECTION("changing only endpoints of b pushes EDS only, and in Delta only b") {
    cp.Write("endpoints.yaml", ResourcesFile({ClaRes("a", {8001}), ClaRes("b", {8002, 8003})}));
    auto sotw = s.CollectAcking();
    REQUIRE(!sotw.empty());
    for (const auto& r : sotw) {
      INFO(Describe(r));
      CHECK(r.type_url() == kEds);
    }
    auto delta = d.CollectAcking();
    REQUIRE(delta.size() == 1);
    CHECK(delta[0].type_url() == kEds);
    CHECK(Names(delta[0]) == Strings{"b"});
  }
  SECTION("a new file with an unrelated type pushes only that type") {
    cp.Write("listeners.yaml", ResourcesFile({ListenerRes("l1", "r1")}));
    s.ExpectQuiet();  // not subscribed to LDS
    d.ExpectQuiet();
  }
}

TEST_CASE("Push order is CDS, EDS, LDS, RDS when one change touches all four",
          "[e2e][sotw][delta][order]") {
  CpFixture cp;
  cp.Write("all.yaml", ResourcesFile({ClusterRes("a"), ClaRes("a", {8001}), ListenerRes("l1", "r1"),
                                      RouteRes("r1", "a")}));
  cp.Start();

  // Subscribed in the reverse of the push order, so a server that just follows request order fails.
  // A Cluster or Listener sent may bring its EDS/RDS along again (warming), so drain everything
  // after each subscription instead of expecting exactly one response.
  Sotw s(cp.xds_port());
  Delta d(cp.xds_port());
  for (auto type : {kRds, kLds, kEds, kCds}) {
    Strings names = type == kRds ? Strings{"r1"} : type == kEds ? Strings{"a"} : Strings{};
    s.Subscribe(type, names);
    REQUIRE(!s.CollectAcking(milliseconds(300)).empty());
    d.Subscribe(type, names.empty() ? Strings{"*"} : names);
    REQUIRE(!d.CollectAcking(milliseconds(300)).empty());
  }

  cp.Write("all.yaml", ResourcesFile({ClusterRes("a", 2), ClaRes("a", {8001, 8002}),
                                      ListenerRes("l1", "r1", 10002), RouteRes("r1", "a", "/x")}));
  Strings sotw_types;
  for (const auto& r : s.CollectAcking()) sotw_types.push_back(r.type_url());
  Strings delta_types;
  for (const auto& r : d.CollectAcking()) delta_types.push_back(r.type_url());
  const Strings expected = {S(kCds), S(kEds), S(kLds), S(kRds)};
  CHECK(sotw_types == expected);
  CHECK(delta_types == expected);
}

// Bad input must never reach a proxy: the last good resources keep serving, nothing is pushed,
// and the error is reported (log) while /debug/snapshots still shows the old versions.
TEST_CASE("Bad config files are rejected and the last good contents keep serving",
          "[e2e][badinput]") {
  struct Bad {
    std::string what;
    std::string contents;
    std::string log_hint;  // must appear in the log after the write
  };
  const std::string good = ResourcesFile({ClusterRes("a"), ClusterRes("b")});
  const std::vector<Bad> cases = {
      {"unparseable YAML", "resources: [ {\"@type\": \"" + S(kCds) + "\", name: a\n  - ]]]\n",
       "clusters.yaml"},
      {"unknown field",
       ResourcesFile({ClusterRes("a"),
                      "{\"@type\": \"" + S(kCds) + "\", \"name\": \"b\", \"bogus_field_e2e\": 1}"}),
       "bogus_field_e2e"},
      {"unknown @type",
       ResourcesFile({ClusterRes("a"),
                      "{\"@type\": \"type.googleapis.com/envoy.config.cluster.v3.NoSuchType\", "
                      "\"name\": \"b\"}"}),
       "NoSuchType"},
      {"duplicate names", ResourcesFile({ClusterRes("a"), ClusterRes("b"), ClusterRes("a", 3)}),
       "duplicate"},
  };
  for (const auto& bad : cases) {
    DYNAMIC_SECTION(bad.what) {
      CpFixture cp;
      cp.Write("clusters.yaml", good);
      cp.Start();
      Sotw s(cp.xds_port());
      s.Subscribe(kCds, {});
      DiscoveryResponse r1 = s.ExpectAndAck(kCds);
      Delta d(cp.xds_port());
      d.Subscribe(kCds, {"*"});
      auto delta_versions = Versions(d.ExpectAndAck(kCds));
      std::string snapshots_before = cp.Get("/debug/snapshots");
      size_t log_size = cp.Log().size();

      cp.Write("clusters.yaml", bad.contents);
      s.ExpectQuiet();
      d.ExpectQuiet(milliseconds(100));
      INFO("case: " << bad.what);
      CHECK(cp.Running());
      CHECK(WaitFor(
          [&] {
            std::string log = cp.Log();
            return log.size() > log_size && log.find(bad.log_hint, log_size) != std::string::npos;
          },
          std::chrono::seconds(2)));

      // Old versions still visible and still served to a new stream.
      std::string snapshots_after = cp.Get("/debug/snapshots");
      for (const auto& token : AllHexTokens(snapshots_before)) {
        INFO("snapshots before: " << snapshots_before << "\nafter: " << snapshots_after);
        CHECK(snapshots_after.find(token) != std::string::npos);
      }
      Sotw fresh(cp.xds_port());
      fresh.Subscribe(kCds, {});
      DiscoveryResponse r2 = fresh.ExpectAndAck(kCds);
      CHECK(r2.version_info() == r1.version_info());
      CHECK(Sorted(Names(r2)) == Strings{"a", "b"});

      // Fixing the file resumes normal service.
      cp.Write("clusters.yaml", ResourcesFile({ClusterRes("a"), ClusterRes("b", 4)}));
      CHECK(Sorted(Names(s.ExpectAndAck(kCds))) == Strings{"a", "b"});
      auto fixed = d.ExpectAndAck(kCds);
      CHECK(Names(fixed) == Strings{"b"});
      CHECK(Versions(fixed)["b"] != delta_versions["b"]);
    }
  }
}

TEST_CASE("An oversized request is refused with a gRPC error and other streams keep working",
          "[e2e][limits]") {
  CpFixture cp;
  cp.Write("clusters.yaml", ResourcesFile({ClusterRes("a")}));
  cp.Start();

  Sotw good(cp.xds_port());
  good.Subscribe(kCds, {});
  good.ExpectAndAck(kCds);

  SotwClient big(cp.xds_port());
  DiscoveryRequest huge = SotwRequest(kEds, {}, &kNode);
  std::string name(1000, 'x');
  for (int i = 0; i < 5 * 1024; ++i) {
    name.replace(0, 8, std::to_string(10000000 + i));
    huge.add_resource_names(name);
  }
  REQUIRE(huge.ByteSizeLong() > 5u * 1000 * 1000);
  big.Send(huge);  // may fail once the server resets the stream; the status is what matters
  CHECK(big.WaitForEnd(std::chrono::seconds(10)));
  grpc::Status status = big.Close();
  INFO("status: " << status.error_code() << " " << status.error_message());
  CHECK(!status.ok());
  CHECK(!big.Next(milliseconds(0)).has_value());

  REQUIRE(cp.Running());
  cp.Write("clusters.yaml", ResourcesFile({ClusterRes("a", 2)}));
  good.ExpectAndAck(kCds);
  Sotw fresh(cp.xds_port());
  fresh.Subscribe(kCds, {});
  CHECK(Names(fresh.ExpectAndAck(kCds)) == Strings{"a"});
  HttpResponse ready = HttpGet(cp.admin_port(), "/ready");
  CHECK(ready.status == 200);
}

}  // namespace
}  // namespace weft::test
