// Protocol rules of one xDS stream, driven step by step with a fake clock and no sockets.
#include <catch2/catch.hpp>

#include "common/proto_util.h"
#include "control-plane/server/stream_state.h"
#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"
#include "envoy/config/listener/v3/listener.pb.h"
#include "envoy/config/route/v3/route.pb.h"
#include "envoy/extensions/filters/http/router/v3/router.pb.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb.h"
#include "tests/unit/resource_util.h"

namespace weft::cp {
namespace {

using envoy::service::discovery::v3::DeltaDiscoveryRequest;
using envoy::service::discovery::v3::DeltaDiscoveryResponse;
using envoy::service::discovery::v3::DiscoveryRequest;
using envoy::service::discovery::v3::DiscoveryResponse;
using xds::ResourceType;

using testing::Res;

xds::ResourcePtr Cluster(const std::string& name, int timeout_s = 1) {
  envoy::config::cluster::v3::Cluster c;
  c.set_name(name);
  c.set_type(envoy::config::cluster::v3::Cluster::EDS);
  c.mutable_eds_cluster_config()->mutable_eds_config()->mutable_ads();
  c.mutable_connect_timeout()->set_seconds(timeout_s);
  return Res(c);
}

xds::ResourcePtr Endpoints(const std::string& name, int port) {
  envoy::config::endpoint::v3::ClusterLoadAssignment cla;
  cla.set_cluster_name(name);
  auto* sa = cla.add_endpoints()
                 ->add_lb_endpoints()
                 ->mutable_endpoint()
                 ->mutable_address()
                 ->mutable_socket_address();
  sa->set_address("127.0.0.1");
  sa->set_port_value(port);
  return Res(cla);
}

xds::ResourcePtr Listener(const std::string& name, const std::string& route) {
  envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager hcm;
  hcm.mutable_rds()->set_route_config_name(route);
  hcm.mutable_rds()->mutable_config_source()->mutable_ads();
  auto* f = hcm.add_http_filters();
  f->set_name("router");
  *f->mutable_typed_config() = PackAny(envoy::extensions::filters::http::router::v3::Router());
  envoy::config::listener::v3::Listener l;
  l.set_name(name);
  *l.mutable_api_listener()->mutable_api_listener() = PackAny(hcm);
  return Res(l);
}

xds::ResourcePtr Route(const std::string& name, const std::string& cluster) {
  envoy::config::route::v3::RouteConfiguration rc;
  rc.set_name(name);
  auto* vh = rc.add_virtual_hosts();
  vh->set_name("vh");
  vh->add_domains("*");
  auto* r = vh->add_routes();
  r->mutable_match()->set_prefix("/");
  r->mutable_route()->set_cluster(cluster);
  return Res(rc);
}

struct Fixture {
  SnapshotCache cache;
  FakeClock clock;
  void Set(std::vector<xds::ResourcePtr> rs) {
    auto s = Snapshot::Build(std::move(rs));
    REQUIRE(s.ok());
    cache.SetSnapshot("default", *s);
  }
  std::unique_ptr<StreamState> NewStream(StreamState::Mode mode) {
    StreamState::Options o;
    o.id = 1;
    o.mode = mode;
    return std::make_unique<StreamState>(o, &cache, nullptr, &clock);
  }
};

DiscoveryRequest Sotw(ResourceType t, std::vector<std::string> names = {}, std::string nonce = "",
                      std::string version = "") {
  DiscoveryRequest r;
  r.set_type_url(std::string(xds::TypeUrl(t)));
  for (auto& n : names) r.add_resource_names(n);
  r.set_response_nonce(nonce);
  r.set_version_info(version);
  r.mutable_node()->set_id("node-1");
  return r;
}

std::vector<std::string> Names(const DiscoveryResponse& r) {
  std::vector<std::string> out;
  for (const auto& any : r.resources()) {
    auto res = xds::MakeResource(any);
    REQUIRE(res.ok());
    out.push_back((*res)->name);
  }
  return out;
}

std::vector<std::string> Names(const DeltaDiscoveryResponse& r) {
  std::vector<std::string> out;
  for (const auto& res : r.resources()) out.push_back(res.name());
  return out;
}

TEST_CASE("SotW: wildcard CDS, ACK, change, NACK and stale nonce") {
  Fixture f;
  f.Set({Cluster("a"), Cluster("b")});
  auto s = f.NewStream(StreamState::Mode::kSotw);
  DiscoveryResponse resp;
  REQUIRE(s->OnSotwRequest(Sotw(ResourceType::kCluster)).ok());
  REQUIRE(s->NextSotw(&resp));
  CHECK(Names(resp) == std::vector<std::string>{"a", "b"});
  CHECK_FALSE(resp.nonce().empty());
  CHECK_FALSE(s->NextSotw(&resp));

  // ACK: nothing more to say.
  std::string nonce1 = resp.nonce(), v1 = resp.version_info();
  REQUIRE(s->OnSotwRequest(Sotw(ResourceType::kCluster, {}, nonce1, v1)).ok());
  CHECK_FALSE(s->NextSotw(&resp));

  // Republishing identical content is not a change.
  f.Set({Cluster("b"), Cluster("a")});
  s->OnSnapshotChanged();
  CHECK_FALSE(s->NextSotw(&resp));

  // A real change sends the full set with a new version; b deleted means absent.
  f.Set({Cluster("a", 5)});
  s->OnSnapshotChanged();
  REQUIRE(s->NextSotw(&resp));
  CHECK(Names(resp) == std::vector<std::string>{"a"});
  CHECK(resp.version_info() != v1);
  std::string nonce2 = resp.nonce();

  // A stale nonce is ignored: even a NACK carrying it is not recorded.
  auto stale = Sotw(ResourceType::kCluster, {}, nonce1, v1);
  stale.mutable_error_detail()->set_message("old news");
  REQUIRE(s->OnSotwRequest(stale).ok());
  CHECK_FALSE(s->NextSotw(&resp));
  std::string json;
  s->AppendJson(&json);
  CHECK(json.find("old news") == std::string::npos);

  // NACK of the latest: recorded with its message; nothing is resent.
  auto nack = Sotw(ResourceType::kCluster, {}, nonce2, v1);
  nack.mutable_error_detail()->set_message("clusters[0].connect_timeout: too long");
  REQUIRE(s->OnSotwRequest(nack).ok());
  CHECK_FALSE(s->NextSotw(&resp));
  json.clear();
  s->AppendJson(&json);
  CHECK(json.find("\"nacks\":1") != std::string::npos);
  CHECK(json.find("clusters[0].connect_timeout: too long") != std::string::npos);
  CHECK(json.find("\"acked_version\":\"" + v1 + "\"") != std::string::npos);
}

TEST_CASE("SotW: named resources that appear later are pushed") {
  Fixture f;
  f.Set({Endpoints("a", 1)});
  auto s = f.NewStream(StreamState::Mode::kSotw);
  DiscoveryResponse resp;
  REQUIRE(s->OnSotwRequest(Sotw(ResourceType::kEndpoint, {"a", "late"})).ok());
  REQUIRE(s->NextSotw(&resp));
  CHECK(Names(resp) == std::vector<std::string>{"a"});
  REQUIRE(s->OnSotwRequest(Sotw(ResourceType::kEndpoint, {"a", "late"}, resp.nonce(), "v")).ok());
  CHECK_FALSE(s->NextSotw(&resp));
  f.Set({Endpoints("a", 1), Endpoints("late", 2), Endpoints("unwanted", 3)});
  s->OnSnapshotChanged();
  std::string before = resp.version_info();
  REQUIRE(s->NextSotw(&resp));
  // EDS is not a full-state type: only what changed is sent, under a new version.
  CHECK(Names(resp) == std::vector<std::string>{"late"});
  CHECK(resp.version_info() != before);
}

TEST_CASE("SotW: an EDS change carries only the changed assignment; LDS and CDS stay full") {
  Fixture f;
  f.Set({Cluster("a"), Cluster("b"), Endpoints("a", 1), Endpoints("b", 1)});
  auto s = f.NewStream(StreamState::Mode::kSotw);
  DiscoveryResponse cds, eds, resp;
  REQUIRE(s->OnSotwRequest(Sotw(ResourceType::kCluster)).ok());
  REQUIRE(s->NextSotw(&cds));
  REQUIRE(s->OnSotwRequest(Sotw(ResourceType::kCluster, {}, cds.nonce(), cds.version_info())).ok());
  REQUIRE(s->OnSotwRequest(Sotw(ResourceType::kEndpoint, {"a", "b"})).ok());
  REQUIRE(s->NextSotw(&eds));
  CHECK(Names(eds) == std::vector<std::string>{"a", "b"});
  REQUIRE(
      s->OnSotwRequest(Sotw(ResourceType::kEndpoint, {"a", "b"}, eds.nonce(), eds.version_info()))
          .ok());
  CHECK_FALSE(s->NextSotw(&resp));

  f.Set({Cluster("a"), Cluster("b"), Endpoints("a", 1), Endpoints("b", 2)});
  s->OnSnapshotChanged();
  REQUIRE(s->NextSotw(&resp));
  CHECK(resp.type_url() == eds.type_url());
  CHECK(Names(resp) == std::vector<std::string>{"b"});
  CHECK(resp.version_info() != eds.version_info());
  REQUIRE(
      s->OnSotwRequest(Sotw(ResourceType::kEndpoint, {"a", "b"}, resp.nonce(), resp.version_info()))
          .ok());

  // Dropping "a" and subscribing to it again (a cluster removed and re-added) resends it.
  REQUIRE(s->OnSotwRequest(Sotw(ResourceType::kEndpoint, {"b"}, resp.nonce(), resp.version_info()))
              .ok());
  DiscoveryResponse again;
  if (s->NextSotw(&again)) {
    REQUIRE(
        s->OnSotwRequest(Sotw(ResourceType::kEndpoint, {"b"}, again.nonce(), again.version_info()))
            .ok());
  }
  REQUIRE(
      s->OnSotwRequest(Sotw(ResourceType::kEndpoint, {"a", "b"}, resp.nonce(), resp.version_info()))
          .ok());
  REQUIRE(s->NextSotw(&again));
  CHECK(Names(again) == std::vector<std::string>{"a"});

  // A cluster change is answered in full: CDS is a full-state type.
  f.Set({Cluster("a", 9), Cluster("b"), Endpoints("a", 1), Endpoints("b", 2)});
  s->OnSnapshotChanged();
  REQUIRE(s->NextSotw(&resp));
  CHECK(resp.type_url() == cds.type_url());
  CHECK(Names(resp) == std::vector<std::string>{"a", "b"});
}

TEST_CASE("SotW: a changed cluster re-sends its endpoints even when they are unchanged") {
  Fixture f;
  f.Set({Cluster("a"), Endpoints("a", 1)});
  auto s = f.NewStream(StreamState::Mode::kSotw);
  DiscoveryResponse cds, eds;
  REQUIRE(s->OnSotwRequest(Sotw(ResourceType::kCluster)).ok());
  REQUIRE(s->NextSotw(&cds));
  REQUIRE(s->OnSotwRequest(Sotw(ResourceType::kCluster, {}, cds.nonce(), cds.version_info())).ok());
  REQUIRE(s->OnSotwRequest(Sotw(ResourceType::kEndpoint, {"a"})).ok());
  REQUIRE(s->NextSotw(&eds));
  REQUIRE(
      s->OnSotwRequest(Sotw(ResourceType::kEndpoint, {"a"}, eds.nonce(), eds.version_info())).ok());
  DiscoveryResponse resp;
  CHECK_FALSE(s->NextSotw(&resp));

  f.Set({Cluster("a", 9), Endpoints("a", 1)});
  s->OnSnapshotChanged();
  REQUIRE(s->NextSotw(&resp));
  CHECK(resp.type_url() == xds::kClusterTypeUrl);
  REQUIRE(s->NextSotw(&resp));
  CHECK(resp.type_url() == xds::kEndpointTypeUrl);
  CHECK(resp.version_info() == eds.version_info());  // same content, sent again to end warming
  CHECK_FALSE(s->NextSotw(&resp));
}

TEST_CASE("SotW: pushes go CDS, EDS, LDS, RDS when everything changes at once") {
  Fixture f;
  f.Set({});
  auto s = f.NewStream(StreamState::Mode::kSotw);
  DiscoveryResponse resp;
  // Subscribe in the "wrong" order; drain the empty first answers.
  REQUIRE(s->OnSotwRequest(Sotw(ResourceType::kRoute, {"r"})).ok());
  REQUIRE(s->OnSotwRequest(Sotw(ResourceType::kListener)).ok());
  REQUIRE(s->OnSotwRequest(Sotw(ResourceType::kEndpoint, {"c"})).ok());
  REQUIRE(s->OnSotwRequest(Sotw(ResourceType::kCluster)).ok());
  std::vector<std::string> order;
  while (s->NextSotw(&resp)) {
    order.push_back(resp.type_url());
    REQUIRE(s->OnSotwRequest(
                 Sotw(xds::ResourceTypeFromUrl(resp.type_url()).value(),
                      resp.type_url() == xds::kRouteTypeUrl      ? std::vector<std::string>{"r"}
                      : resp.type_url() == xds::kEndpointTypeUrl ? std::vector<std::string>{"c"}
                                                                 : std::vector<std::string>{},
                      resp.nonce(), resp.version_info()))
                .ok());
  }
  CHECK(order.size() == 4);
  f.Set({Route("r", "c"), Listener("l", "r"), Endpoints("c", 1), Cluster("c")});
  s->OnSnapshotChanged();
  order.clear();
  while (s->NextSotw(&resp)) order.push_back(std::string(TypeNameOfUrl(resp.type_url())));
  CHECK(order == std::vector<std::string>{"envoy.config.cluster.v3.Cluster",
                                          "envoy.config.endpoint.v3.ClusterLoadAssignment",
                                          "envoy.config.listener.v3.Listener",
                                          "envoy.config.route.v3.RouteConfiguration"});
}

DeltaDiscoveryRequest Delta(ResourceType t, std::vector<std::string> sub = {},
                            std::vector<std::string> unsub = {}, std::string nonce = "") {
  DeltaDiscoveryRequest r;
  r.set_type_url(std::string(xds::TypeUrl(t)));
  for (auto& n : sub) r.add_resource_names_subscribe(n);
  for (auto& n : unsub) r.add_resource_names_unsubscribe(n);
  r.set_response_nonce(nonce);
  return r;
}

TEST_CASE("Delta: only changes go out, deletions as removed_resources") {
  Fixture f;
  f.Set({Cluster("a"), Cluster("b")});
  auto s = f.NewStream(StreamState::Mode::kDelta);
  DeltaDiscoveryResponse resp;
  REQUIRE(s->OnDeltaRequest(Delta(ResourceType::kCluster, {"*"})).ok());
  REQUIRE(s->NextDelta(&resp));
  CHECK(Names(resp) == std::vector<std::string>{"a", "b"});
  REQUIRE(s->OnDeltaRequest(Delta(ResourceType::kCluster, {}, {}, resp.nonce())).ok());
  CHECK_FALSE(s->NextDelta(&resp));

  f.Set({Cluster("a"), Cluster("b", 7), Cluster("c")});
  s->OnSnapshotChanged();
  REQUIRE(s->NextDelta(&resp));
  CHECK(Names(resp) == std::vector<std::string>{"b", "c"});  // a unchanged: not resent
  CHECK(resp.removed_resources().empty());

  f.Set({Cluster("a"), Cluster("c")});
  s->OnSnapshotChanged();
  REQUIRE(s->NextDelta(&resp));
  CHECK(resp.resources().empty());
  CHECK(std::vector<std::string>(resp.removed_resources().begin(),
                                 resp.removed_resources().end()) == std::vector<std::string>{"b"});
  CHECK_FALSE(s->NextDelta(&resp));
}

TEST_CASE("Delta: a wildcard subscription is answered even when there is nothing to send") {
  Fixture f;
  f.Set({Endpoints("e", 1)});  // no clusters, no listeners
  auto s = f.NewStream(StreamState::Mode::kDelta);
  DeltaDiscoveryResponse resp;
  REQUIRE(s->OnDeltaRequest(Delta(ResourceType::kCluster)).ok());
  REQUIRE(s->OnDeltaRequest(Delta(ResourceType::kListener, {"*"})).ok());
  std::map<std::string, std::string> nonces;  // type URL -> nonce
  for (int i = 0; i < 2; ++i) {
    REQUIRE(s->NextDelta(&resp));
    CHECK(resp.resources().empty());
    CHECK(resp.removed_resources().empty());
    CHECK_FALSE(resp.nonce().empty());
    nonces[resp.type_url()] = resp.nonce();
  }
  CHECK(nonces.size() == 2);
  CHECK(nonces.contains(std::string(xds::TypeUrl(ResourceType::kCluster))));
  CHECK(nonces.contains(std::string(xds::TypeUrl(ResourceType::kListener))));
  // ACKed, nothing more: the empty answer is once per subscription, not per request.
  for (auto& [type_url, nonce] : nonces) {
    DeltaDiscoveryRequest ack;
    ack.set_type_url(type_url);
    ack.set_response_nonce(nonce);
    REQUIRE(s->OnDeltaRequest(ack).ok());
  }
  CHECK_FALSE(s->NextDelta(&resp));
  // A named subscription to something absent is not answered (clients time those out).
  REQUIRE(s->OnDeltaRequest(Delta(ResourceType::kRoute, {"missing"})).ok());
  CHECK_FALSE(s->NextDelta(&resp));
}

TEST_CASE("Delta: reconnect with initial_resource_versions gets only what differs") {
  Fixture f;
  f.Set({Cluster("a"), Cluster("b"), Cluster("c")});
  auto first = f.NewStream(StreamState::Mode::kDelta);
  DeltaDiscoveryResponse resp;
  REQUIRE(first->OnDeltaRequest(Delta(ResourceType::kCluster)).ok());
  REQUIRE(first->NextDelta(&resp));
  std::map<std::string, std::string> held;
  for (const auto& r : resp.resources()) held[r.name()] = r.version();
  REQUIRE(held.size() == 3);

  f.Set({Cluster("a"), Cluster("b", 4), Cluster("d")});
  auto second = f.NewStream(StreamState::Mode::kDelta);
  auto req = Delta(ResourceType::kCluster);
  for (auto& [n, v] : held) (*req.mutable_initial_resource_versions())[n] = v;
  REQUIRE(second->OnDeltaRequest(req).ok());
  REQUIRE(second->NextDelta(&resp));
  CHECK(Names(resp) == std::vector<std::string>{"b", "d"});
  CHECK(std::vector<std::string>(resp.removed_resources().begin(),
                                 resp.removed_resources().end()) == std::vector<std::string>{"c"});
}

TEST_CASE("Delta: a re-subscribe is answered even if the client already has it") {
  Fixture f;
  f.Set({Endpoints("a", 1)});
  auto s = f.NewStream(StreamState::Mode::kDelta);
  DeltaDiscoveryResponse resp;
  REQUIRE(s->OnDeltaRequest(Delta(ResourceType::kEndpoint, {"a"})).ok());
  REQUIRE(s->NextDelta(&resp));
  REQUIRE(s->OnDeltaRequest(Delta(ResourceType::kEndpoint, {}, {}, resp.nonce())).ok());
  CHECK_FALSE(s->NextDelta(&resp));
  REQUIRE(s->OnDeltaRequest(Delta(ResourceType::kEndpoint, {"a"})).ok());
  REQUIRE(s->NextDelta(&resp));
  CHECK(Names(resp) == std::vector<std::string>{"a"});
}

TEST_CASE("Delta: removed clusters go after the listeners and routes that dropped them") {
  Fixture f;
  f.Set({Cluster("old"), Listener("l", "r"), Route("r", "old")});
  auto s = f.NewStream(StreamState::Mode::kDelta);
  DeltaDiscoveryResponse resp;
  REQUIRE(s->OnDeltaRequest(Delta(ResourceType::kCluster)).ok());
  REQUIRE(s->OnDeltaRequest(Delta(ResourceType::kListener)).ok());
  REQUIRE(s->OnDeltaRequest(Delta(ResourceType::kRoute, {"r"})).ok());
  while (s->NextDelta(&resp)) {
  }
  f.Set({Cluster("new"), Listener("l", "r"), Route("r", "new")});
  s->OnSnapshotChanged();
  std::vector<std::string> seq;
  while (s->NextDelta(&resp)) {
    std::string t(TypeNameOfUrl(resp.type_url()));
    for (const auto& r : resp.resources()) seq.push_back(t + " +" + r.name());
    for (const auto& r : resp.removed_resources()) seq.push_back(t + " -" + r);
  }
  CHECK(seq == std::vector<std::string>{"envoy.config.cluster.v3.Cluster +new",
                                        "envoy.config.route.v3.RouteConfiguration +r",
                                        "envoy.config.cluster.v3.Cluster -old"});
}

TEST_CASE("per-type streams refuse other types") {
  Fixture f;
  StreamState::Options o;
  o.fixed_type = ResourceType::kCluster;
  o.service = "cds";
  StreamState s(o, &f.cache, nullptr, &f.clock);
  CHECK(s.OnSotwRequest(Sotw(ResourceType::kCluster)).ok());
  CHECK_FALSE(s.OnSotwRequest(Sotw(ResourceType::kListener)).ok());
}

TEST_CASE("push-to-ACK time is measured with the stream's clock") {
  Fixture f;
  f.Set({Cluster("a")});
  auto s = f.NewStream(StreamState::Mode::kSotw);
  DiscoveryResponse resp;
  REQUIRE(s->OnSotwRequest(Sotw(ResourceType::kCluster)).ok());
  REQUIRE(s->NextSotw(&resp));
  f.clock.Advance(std::chrono::milliseconds(42));
  REQUIRE(
      s->OnSotwRequest(Sotw(ResourceType::kCluster, {}, resp.nonce(), resp.version_info())).ok());
  std::string json;
  s->AppendJson(&json);
  CHECK(json.find("\"last_push_to_ack_ms\":42.000") != std::string::npos);
}

}  // namespace
}  // namespace weft::cp
