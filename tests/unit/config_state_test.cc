// ConfigState: what the proxy holds from xDS. Here: putting back a listener the data path could
// not serve, while the rest of its update stays applied. Pure: no sockets, no threads.
#include "data-plane/xds/config_state.h"

#include <catch2/catch.hpp>

#include "common/proto_util.h"
#include "common/yaml_proto.h"
#include "envoy/config/listener/v3/listener.pb.h"
#include "envoy/config/route/v3/route.pb.h"

namespace weft::proxy {
namespace {

using google::protobuf::Any;
using google::protobuf::RepeatedPtrField;
using xds::ResourceType;

// A listener on `port` whose routes come from RDS `route`.
Any Listener(const std::string& name, int port, const std::string& route) {
  envoy::config::listener::v3::Listener l;
  std::string yaml =
      "name: " + name +
      "\naddress: { socket_address: { address: 127.0.0.1, port_value: " + std::to_string(port) +
      R"( } }
filter_chains:
- filters:
  - name: hcm
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: s
      rds: { route_config_name: )" +
      route + R"(, config_source: { ads: {} } }
      http_filters:
      - name: envoy.filters.http.router
        typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
)";
  absl::Status s = YamlToProto(yaml, "listener.yaml", &l);
  INFO(s.message());
  REQUIRE(s.ok());
  return PackAny(l);
}

Any Route(const std::string& name) {
  envoy::config::route::v3::RouteConfiguration rc;
  rc.set_name(name);
  return PackAny(rc);
}

RepeatedPtrField<Any> Anys(std::initializer_list<Any> anys) {
  RepeatedPtrField<Any> out;
  for (const Any& a : anys) *out.Add() = a;
  return out;
}

RepeatedPtrField<envoy::service::discovery::v3::Resource> Delta(std::initializer_list<Any> anys) {
  RepeatedPtrField<envoy::service::discovery::v3::Resource> out;
  for (const Any& a : anys) *out.Add()->mutable_resource() = a;
  return out;
}

std::string VersionOf(const ConfigState& state, ResourceType type, const std::string& name) {
  auto it = state.resources(type).find(name);
  return it == state.resources(type).end() ? "" : it->second->version_text;
}

TEST_CASE("config state: a listener put back keeps its old version and the routes it needs") {
  ConfigState served;
  REQUIRE(served
              .ApplySotw(ResourceType::kListener,
                         Anys({Listener("a", 1000, "ra"), Listener("b", 2000, "rb")}))
              .ok());
  REQUIRE(served.ApplySotw(ResourceType::kRoute, Anys({Route("ra"), Route("rb")})).ok());
  const std::string b_before = VersionOf(served, ResourceType::kListener, "b");

  // One update: a changes port, b moves to another port and route, c is new.
  ConfigState update = served;
  REQUIRE(update
              .ApplySotw(ResourceType::kListener,
                         Anys({Listener("a", 1001, "ra"), Listener("b", 2001, "rb2"),
                               Listener("c", 3000, "rc")}))
              .ok());
  CHECK_FALSE(update.resources(ResourceType::kRoute).contains("rb"));  // pruned: nobody needs it
  const std::string a_after = VersionOf(update, ResourceType::kListener, "a");

  // b and c cannot be served.
  update.Restore(ResourceType::kListener, "b", served);
  update.SetUnserved("b", "b: bind failed");
  update.Restore(ResourceType::kListener, "c", served);
  update.SetUnserved("c", "c: bind failed");
  CHECK(VersionOf(update, ResourceType::kListener, "a") == a_after);  // the rest stays applied
  CHECK(VersionOf(update, ResourceType::kListener, "b") == b_before);
  CHECK_FALSE(update.resources(ResourceType::kListener).contains("c"));
  // b's old route came back with it; nothing asks for rb2 or rc.
  CHECK(update.resources(ResourceType::kRoute).contains("rb"));
  CHECK(update.Wanted(ResourceType::kRoute) == std::set<std::string>{"ra", "rb"});
  CHECK(update.Warming().empty());
  CHECK(update.unserved_listeners().size() == 2);
  CHECK(update.ConfigDumpJson().find("\"unserved_listeners\":{\"b\":\"b: bind failed\"") !=
        std::string::npos);

  SECTION("an RDS update keeps what the NACK said") {
    REQUIRE(update.ApplySotw(ResourceType::kRoute, Anys({Route("ra"), Route("rb")})).ok());
    CHECK(update.unserved_listeners().size() == 2);
  }
  SECTION("Delta: naming a listener again clears it, the others stay") {
    RepeatedPtrField<std::string> removed;
    removed.Add("c");
    REQUIRE(update.ApplyDelta(ResourceType::kListener, Delta({}), removed).ok());
    CHECK(update.unserved_listeners().size() == 1);
    REQUIRE(
        update.ApplyDelta(ResourceType::kListener, Delta({Listener("b", 2002, "rb")}), {}).ok());
    CHECK(update.unserved_listeners().empty());
  }
  SECTION("SotW: the whole set again clears them all") {
    REQUIRE(update.ApplySotw(ResourceType::kListener, Anys({Listener("a", 1001, "ra")})).ok());
    CHECK(update.unserved_listeners().empty());
  }
}

}  // namespace
}  // namespace weft::proxy
