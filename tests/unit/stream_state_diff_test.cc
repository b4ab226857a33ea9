// Differential test: random sequences of snapshots (across node groups) and client requests
// (subscribe, unsubscribe, wildcard, ACK, NACK, stale and missing nonces, reconnect versions,
// unserved types) go through both the indexed StreamState and the reference one it replaced
// (stream_state_reference.h), three streams at a time on one cache. Every response must be
// byte-identical, and /debug/proxies JSON and the Summary equal, after every step: indexing,
// interning and shared response bodies are optimizations, not protocol changes.
#include <catch2/catch.hpp>

#include <random>

#include "common/proto_util.h"
#include "control-plane/server/stream_state.h"
#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"
#include "envoy/config/listener/v3/listener.pb.h"
#include "envoy/config/route/v3/route.pb.h"
#include "envoy/extensions/filters/http/router/v3/router.pb.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb.h"
#include "tests/unit/resource_util.h"
#include "tests/unit/stream_state_reference.h"

namespace weft::cp {
namespace {

using envoy::service::discovery::v3::DeltaDiscoveryRequest;
using envoy::service::discovery::v3::DeltaDiscoveryResponse;
using envoy::service::discovery::v3::DiscoveryRequest;
using envoy::service::discovery::v3::DiscoveryResponse;
using xds::ResourceType;

constexpr int kPerType = 6;  // names 0..5 may exist; 6 and 7 never do

using testing::Res;

std::string NameFor(ResourceType t, int i) {
  switch (t) {
    case ResourceType::kCluster:
    case ResourceType::kEndpoint:
      return "c" + std::to_string(i);
    case ResourceType::kListener:
      return "l" + std::to_string(i);
    case ResourceType::kRoute:
      return "r" + std::to_string(i);
    case ResourceType::kSecret:
      return "s" + std::to_string(i);
  }
  return "";
}

xds::ResourcePtr Make(ResourceType t, int i, int variant) {
  std::string name = NameFor(t, i);
  switch (t) {
    case ResourceType::kCluster: {
      envoy::config::cluster::v3::Cluster c;
      c.set_name(name);
      c.mutable_connect_timeout()->set_seconds(1 + variant);
      if (variant != 2) {  // variant 2 is a STATIC cluster: no endpoints to warm behind
        c.set_type(envoy::config::cluster::v3::Cluster::EDS);
        c.mutable_eds_cluster_config()->mutable_eds_config()->mutable_ads();
      }
      return Res(c);
    }
    case ResourceType::kEndpoint: {
      envoy::config::endpoint::v3::ClusterLoadAssignment cla;
      cla.set_cluster_name(name);
      auto* sa = cla.add_endpoints()
                     ->add_lb_endpoints()
                     ->mutable_endpoint()
                     ->mutable_address()
                     ->mutable_socket_address();
      sa->set_address("127.0.0.1");
      sa->set_port_value(1000 + variant);
      return Res(cla);
    }
    case ResourceType::kListener: {
      envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager hcm;
      hcm.mutable_rds()->set_route_config_name(NameFor(ResourceType::kRoute, (i + variant) % 8));
      hcm.mutable_rds()->mutable_config_source()->mutable_ads();
      auto* f = hcm.add_http_filters();
      f->set_name("router");
      *f->mutable_typed_config() = PackAny(envoy::extensions::filters::http::router::v3::Router());
      envoy::config::listener::v3::Listener l;
      l.set_name(name);
      *l.mutable_api_listener()->mutable_api_listener() = PackAny(hcm);
      return Res(l);
    }
    case ResourceType::kRoute: {
      envoy::config::route::v3::RouteConfiguration rc;
      rc.set_name(name);
      auto* vh = rc.add_virtual_hosts();
      vh->set_name("vh");
      vh->add_domains("*");
      auto* r = vh->add_routes();
      r->mutable_match()->set_prefix("/");
      r->mutable_route()->set_cluster(NameFor(ResourceType::kCluster, variant));
      return Res(rc);
    }
    case ResourceType::kSecret: {
      envoy::extensions::transport_sockets::tls::v3::Secret s;
      s.set_name(name);
      s.mutable_generic_secret()->mutable_secret()->set_inline_string("v" +
                                                                      std::to_string(variant));
      return Res(s);
    }
  }
  return nullptr;
}

class Scenario {
 public:
  Scenario(uint32_t seed, bool delta, std::optional<ResourceType> fixed)
      : rng_(seed), delta_(delta), fixed_(fixed) {
    for (ResourceType t : xds::kAllResourceTypes) {
      for (int i = 0; i < kPerType; ++i) {
        for (int v = 0; v < 3; ++v) variants_[xds::Index(t)][i][v] = Make(t, i, v);
      }
    }
    // Several streams on one cache: streams with equal subscriptions share serialized bodies
    // (Snapshot::Memo), which must never leak one stream's resources into another's response.
    for (int k = 0; k < kStreams; ++k) {
      StreamState::Options o;
      o.id = 7 + k;
      o.mode = delta ? StreamState::Mode::kDelta : StreamState::Mode::kSotw;
      o.peer = "ipv4:127.0.0.1:1";
      o.fixed_type = fixed;
      o.service = fixed ? std::string(xds::ShortName(*fixed)) : "ads";
      reference::StreamState::Options ro;
      ro.id = o.id;
      ro.mode = delta ? reference::StreamState::Mode::kDelta : reference::StreamState::Mode::kSotw;
      ro.peer = o.peer;
      ro.fixed_type = fixed;
      ro.service = o.service;
      Pair& p = pairs_[k];
      p.fresh = std::make_unique<StreamState>(o, &cache_, nullptr, &clock_);
      p.ref = std::make_unique<reference::StreamState>(ro, &cache_, nullptr, &clock_);
    }
    SetSnapshot("default");
  }

  void Step() {
    cur_ = &pairs_[Pick(kStreams)];
    int action = Pick(100);
    if (action < 14) {
      static const char* kGroups[] = {"default", "default", "default", "grp", "node-1"};
      SetSnapshot(kGroups[Pick(5)]);
    } else if (action < 17) {
      std::string g = Pick(2) ? "grp" : "node-1";
      Trace("clear " + g);
      cache_.ClearSnapshot(g);
      Notify();
    } else if (action < 20) {
      clock_.Advance(std::chrono::milliseconds(1 + Pick(50)));
    } else if (action < 60) {
      Request();
    } else {
      Pull(1 + Pick(3));
    }
    Compare();
  }

  void Drain() {
    for (Pair& p : pairs_) {
      cur_ = &p;
      Pull(100);
    }
  }

  const std::string& trace() const { return trace_; }

 private:
  int Pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }
  bool Chance(int percent) { return Pick(100) < percent; }
  void Trace(const std::string& s) { trace_ += s + "\n"; }

  ResourceType RandomType() {
    if (fixed_) return *fixed_;
    return xds::kAllResourceTypes[Pick(xds::kResourceTypeCount)];
  }

  void SetSnapshot(const std::string& group) {
    std::vector<xds::ResourcePtr> rs;
    std::string desc;
    for (ResourceType t : xds::kAllResourceTypes) {
      for (int i = 0; i < kPerType; ++i) {
        if (Chance(30)) continue;
        int v = Pick(3);
        rs.push_back(variants_[xds::Index(t)][i][v]);
        desc += " " + NameFor(t, i) + "/" + std::string(xds::ShortName(t)).substr(0, 1) +
                std::to_string(v);
      }
    }
    auto s = Snapshot::Build(std::move(rs));
    REQUIRE(s.ok());
    Trace("snapshot " + group + ":" + desc);
    cache_.SetSnapshot(group, *s);
    // Not every change reaches a stream before its next read: sometimes skip the notify.
    if (Chance(80)) Notify();
  }

  void Notify() {
    for (Pair& p : pairs_) {
      p.fresh->OnSnapshotChanged();
      p.ref->OnSnapshotChanged();
    }
  }

  std::vector<std::string> RandomNames(ResourceType t, int max) {
    std::vector<std::string> out;
    int n = Pick(max + 1);
    for (int k = 0; k < n; ++k) out.push_back(NameFor(t, Pick(kPerType + 2)));
    return out;
  }

  std::string RandomNonce(ResourceType t) {
    const std::string& last = cur_->last_nonce[xds::Index(t)];
    int c = Pick(100);
    if (c < 60 && !last.empty()) return last;
    if (c < 75) return "";
    return std::to_string(Pick(4));  // stale, or by chance an older one
  }

  void Request() {
    ResourceType t = RandomType();
    std::string type_url(xds::TypeUrl(t));
    if (Chance(3)) type_url = "type.googleapis.com/envoy.config.route.v3.VirtualHost";
    if (fixed_ && Chance(50)) type_url = "";  // per-type services may omit it
    absl::Status a, b;
    if (!delta_) {
      DiscoveryRequest r;
      r.set_type_url(type_url);
      r.mutable_node()->set_id("node-1");
      r.mutable_node()->set_cluster("grp");
      std::vector<std::string> names = RandomNames(t, 5);
      if (Chance(10)) names.push_back("*");
      if (Chance(25)) names.clear();
      for (const auto& n : names) r.add_resource_names(n);
      std::string nonce = RandomNonce(t);
      r.set_response_nonce(nonce);
      r.set_version_info(Chance(80) ? cur_->last_version[xds::Index(t)] : "junk");
      if (!nonce.empty() && Chance(15)) {
        r.mutable_error_detail()->set_code(3);
        r.mutable_error_detail()->set_message("bad " + std::to_string(Pick(100)));
      }
      Trace(cur_->Name() + " sotw " + r.ShortDebugString());
      a = cur_->fresh->OnSotwRequest(r);
      b = cur_->ref->OnSotwRequest(r);
    } else {
      DeltaDiscoveryRequest r;
      r.set_type_url(type_url);
      r.mutable_node()->set_id("node-1");
      r.mutable_node()->set_cluster("grp");
      for (const auto& n : RandomNames(t, 4)) r.add_resource_names_subscribe(n);
      if (Chance(8)) r.add_resource_names_subscribe("*");
      if (Chance(40)) {
        for (const auto& n : RandomNames(t, 3)) r.add_resource_names_unsubscribe(n);
        if (Chance(8)) r.add_resource_names_unsubscribe("*");
      }
      if (Chance(30)) {
        for (const auto& n : RandomNames(t, 4)) {
          auto snap = cache_.ForNode("node-1", "grp");
          const xds::Resource* res = snap->Find(t, n);
          int c = Pick(3);
          (*r.mutable_initial_resource_versions())[n] = c == 0 && res ? res->version_text
                                                        : c == 1      ? "0123456789abcdef"
                                                                      : "junk";
        }
      }
      std::string nonce = RandomNonce(t);
      r.set_response_nonce(nonce);
      if (!nonce.empty() && Chance(15)) {
        r.mutable_error_detail()->set_code(3);
        r.mutable_error_detail()->set_message("bad " + std::to_string(Pick(100)));
      }
      Trace(cur_->Name() + " delta " + r.ShortDebugString());
      a = cur_->fresh->OnDeltaRequest(r);
      b = cur_->ref->OnDeltaRequest(r);
    }
    INFO(trace_);
    REQUIRE(a.ok() == b.ok());
    REQUIRE(a.message() == b.message());
  }

  void Pull(int max) {
    for (int k = 0; k < max; ++k) {
      WireResponse wire;
      std::string want;
      bool got, ref_got;
      std::string type_url, nonce, version;
      if (!delta_) {
        DiscoveryResponse r;
        got = cur_->fresh->NextSotw(&wire);
        ref_got = cur_->ref->NextSotw(&r);
        want = r.SerializeAsString();
        type_url = r.type_url();
        nonce = r.nonce();
        version = r.version_info();
        if (ref_got) Trace(cur_->Name() + " <- sotw " + r.ShortDebugString().substr(0, 300));
      } else {
        DeltaDiscoveryResponse r;
        got = cur_->fresh->NextDelta(&wire);
        ref_got = cur_->ref->NextDelta(&r);
        want = r.SerializeAsString();
        type_url = r.type_url();
        nonce = r.nonce();
        version = r.system_version_info();
        if (ref_got) Trace(cur_->Name() + " <- delta " + r.ShortDebugString().substr(0, 300));
      }
      INFO(trace_);
      REQUIRE(got == ref_got);
      if (!got) return;
      REQUIRE(wire.Flatten() == want);
      // Held like a write in flight: while it lives, other streams may share its body.
      cur_->in_flight = std::move(wire);
      auto t = xds::ResourceTypeFromUrl(type_url);
      REQUIRE(t.has_value());
      cur_->last_nonce[xds::Index(*t)] = nonce;
      cur_->last_version[xds::Index(*t)] = version;
    }
  }

  void Compare() {
    for (Pair& p : pairs_) {
      std::string a, b;
      p.fresh->AppendJson(&a);
      p.ref->AppendJson(&b);
      INFO(trace_);
      REQUIRE(a == b);
      StreamSummary x = p.fresh->Summary();
      StreamSummary y = p.ref->Summary();
      REQUIRE(x.in_sync == y.in_sync);
      REQUIRE(x.types.size() == y.types.size());
      for (size_t i = 0; i < x.types.size(); ++i) {
        REQUIRE(x.types[i].resources == y.types[i].resources);
        REQUIRE(x.types[i].sent_names == y.types[i].sent_names);
        REQUIRE(x.types[i].nack_error == y.types[i].nack_error);
      }
    }
  }

  std::mt19937 rng_;
  bool delta_;
  std::optional<ResourceType> fixed_;
  static constexpr int kStreams = 3;
  struct Pair {
    std::unique_ptr<StreamState> fresh;
    std::unique_ptr<reference::StreamState> ref;
    std::array<std::string, xds::kResourceTypeCount> last_nonce;
    std::array<std::string, xds::kResourceTypeCount> last_version;
    WireResponse in_flight;
    std::string Name() const { return "#" + std::to_string(fresh->id()); }
  };

  SnapshotCache cache_;
  FakeClock clock_;
  std::array<Pair, kStreams> pairs_;
  Pair* cur_ = nullptr;
  std::array<std::array<std::array<xds::ResourcePtr, 3>, kPerType>, xds::kResourceTypeCount>
      variants_;
  std::string trace_;
};

void Run(bool delta, int seeds, int steps) {
  for (int seed = 1; seed <= seeds; ++seed) {
    std::optional<ResourceType> fixed;
    if (seed % 5 == 0) fixed = xds::kAllResourceTypes[(seed / 5) % xds::kResourceTypeCount];
    Scenario s(static_cast<uint32_t>(seed), delta, fixed);
    for (int i = 0; i < steps; ++i) s.Step();
    s.Drain();
  }
}

TEST_CASE("indexed SotW streams answer exactly like the reference") { Run(false, 300, 150); }

TEST_CASE("indexed Delta streams answer exactly like the reference") { Run(true, 300, 150); }

}  // namespace
}  // namespace weft::cp
