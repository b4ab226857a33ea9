#include <catch2/catch.hpp>

#include "common/proto_util.h"
#include "common/yaml_proto.h"
#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/service/discovery/v3/discovery.pb.h"

namespace weft {
namespace {

using envoy::config::cluster::v3::Cluster;

TEST_CASE("YAML maps onto protobuf fields, enums, durations and nested messages") {
  Cluster c;
  absl::Status s = YamlToProto(R"(
name: payments
type: STATIC
lb_policy: ROUND_ROBIN
connect_timeout: 0.25s
load_assignment:
  cluster_name: payments
  endpoints:
  - lb_endpoints:
    - endpoint:
        address:
          socket_address: { address: 127.0.0.1, port_value: 8080 }
      load_balancing_weight: 3
)",
                               "c.yaml", &c);
  REQUIRE(s.ok());
  CHECK(c.name() == "payments");
  CHECK(c.type() == Cluster::STATIC);
  CHECK(c.connect_timeout().nanos() == 250000000);
  const auto& ep = c.load_assignment().endpoints(0).lb_endpoints(0);
  CHECK(ep.endpoint().address().socket_address().address() == "127.0.0.1");
  CHECK(ep.endpoint().address().socket_address().port_value() == 8080);
  CHECK(ep.load_balancing_weight().value() == 3);
}

TEST_CASE("quoted scalars stay strings; plain ones resolve per YAML 1.2") {
  auto docs = ParseYamlDocuments("a: '1'\nb: 1\nc: true\nd: ~\ne: 007\nf: x y\n", "t.yaml");
  REQUIRE(docs.ok());
  REQUIRE(docs->size() == 1);
  CHECK((*docs)[0].json == R"({"a":"1","b":1,"c":true,"d":null,"e":"007","f":"x y"})");
  CHECK((*docs)[0].top_scalars.at("f") == "x y");
}

TEST_CASE("an unknown field is an error naming file, line and field") {
  Cluster c;
  absl::Status s = YamlToProto("name: x\n\nlb_polcy: RANDOM\n", "bad.yaml", &c);
  REQUIRE_FALSE(s.ok());
  std::string msg(s.message());
  INFO(msg);
  CHECK(msg.rfind("bad.yaml:3: ", 0) == 0);
  CHECK(msg.find("lb_polcy") != std::string::npos);
}

TEST_CASE("every unknown field is reported with its line, not only the first") {
  Cluster c;
  absl::Status s = YamlToProto(R"(name: x
lb_polcy: RANDOM
conect_timeout: 1s
load_assignment:
  endpoints:
  - lb_endpoints:
    - endpoint: { adress: {} }
  - lb_endpoints: []
    prority: 2
)",
                               "two.yaml", &c);
  REQUIRE_FALSE(s.ok());
  std::string msg(s.message());
  INFO(msg);
  CHECK(msg ==
        "two.yaml:2: lb_polcy: Cannot find field.; "
        "two.yaml:3: conect_timeout: Cannot find field.; "
        "two.yaml:7: load_assignment.endpoints[0].lb_endpoints[0].endpoint.adress: Cannot find "
        "field.; "
        "two.yaml:9: load_assignment.endpoints[1].prority: Cannot find field.");
}

TEST_CASE("unknown fields inside Any resources and map values are all reported") {
  envoy::service::discovery::v3::DiscoveryResponse resp;
  absl::Status s = YamlToProto(R"(
resources:
- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: a
  typ: EDS
- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: b
  connectTimeout: 1s
  typed_extension_protocol_options:
    opts:
      "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
      nme: c
  metadata: { filter_metadata: { anything: { goes: here } } }
  colour: blue
)",
                               "any.yaml", &resp);
  REQUIRE_FALSE(s.ok());
  std::string msg(s.message());
  INFO(msg);
  // camelCase names are fields too; Struct holds anything.
  CHECK(msg.find("connectTimeout") == std::string::npos);
  CHECK(msg.find("goes") == std::string::npos);
  CHECK(msg ==
        "any.yaml:5: resources[0].typ: Cannot find field.; "
        "any.yaml:12: resources[1].typed_extension_protocol_options.opts.nme: Cannot find "
        "field.; "
        "any.yaml:14: resources[1].colour: Cannot find field.");
}

TEST_CASE("the same unknown field in two resources is reported once each, with full paths") {
  envoy::service::discovery::v3::DiscoveryResponse resp;
  absl::Status s = YamlToProto(R"(resources:
- { "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster, name: a, bogus: 1 }
- { "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster, name: b, bogus: 2 }
)",
                               "same.yaml", &resp);
  REQUIRE_FALSE(s.ok());
  CHECK(s.message() ==
        "same.yaml:2: resources[0].bogus: Cannot find field.; "
        "same.yaml:3: resources[1].bogus: Cannot find field.");
}

TEST_CASE("another error comes with the unknown fields, in document order") {
  Cluster c;
  absl::Status s = YamlToProto("name: x\nlb_policy: FASTEST\nbogus: 1\n", "mixed.yaml", &c);
  REQUIRE_FALSE(s.ok());
  std::string msg(s.message());
  INFO(msg);
  CHECK(msg.rfind("mixed.yaml:2: lb_policy: ", 0) == 0);
  CHECK(msg.find("FASTEST") != std::string::npos);
  CHECK(msg.find("; mixed.yaml:3: bogus: Cannot find field.") != std::string::npos);
}

TEST_CASE("a bad enum value deep inside names the nested line") {
  Cluster c;
  absl::Status s = YamlToProto(R"(name: x
load_assignment:
  endpoints:
  - lb_endpoints:
    - health_status: SORT_OF
)",
                               "deep.yaml", &c);
  REQUIRE_FALSE(s.ok());
  std::string msg(s.message());
  INFO(msg);
  CHECK(msg.rfind("deep.yaml:5: ", 0) == 0);
  CHECK(msg.find("SORT_OF") != std::string::npos);
}

TEST_CASE("YAML syntax errors carry line and column, never crash") {
  Cluster c;
  absl::Status s = YamlToProto("name: [unterminated\nfoo: bar\n", "syntax.yaml", &c);
  REQUIRE_FALSE(s.ok());
  std::string msg(s.message());
  INFO(msg);
  CHECK(msg.rfind("syntax.yaml:", 0) == 0);
  CHECK(msg.find("YAML syntax error") != std::string::npos);
  CHECK_FALSE(YamlToProto("- a\n- b\n", "list.yaml", &c).ok());
  CHECK_FALSE(YamlToProto("a: 1\n---\nb: 2\n", "two.yaml", &c).ok());
  CHECK_FALSE(YamlToProto("name: *nope\n", "alias.yaml", &c).ok());
}

TEST_CASE("Envoy's filesystem format: typed resources through Any") {
  envoy::service::discovery::v3::DiscoveryResponse resp;
  absl::Status s = YamlToProto(R"(
resources:
- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: a
  type: EDS
- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: b
)",
                               "cds.yaml", &resp);
  REQUIRE(s.ok());
  REQUIRE(resp.resources_size() == 2);
  Cluster b;
  REQUIRE(UnpackAny(resp.resources(1), &b).ok());
  CHECK(b.name() == "b");

  s = YamlToProto(R"(
resources:
- "@type": type.googleapis.com/envoy.config.cluster.v3.Nope
  name: a
)",
                  "cds.yaml", &resp);
  REQUIRE_FALSE(s.ok());
  INFO(s.message());
  CHECK(s.message().find("envoy.config.cluster.v3.Nope") != std::string::npos);
  CHECK(s.message().find("cds.yaml:") == 0);
}

TEST_CASE("multi-document files split with their start lines") {
  auto docs = ParseYamlDocuments("kind: A\n---\nkind: B\nx: 1\n", "m.yaml");
  REQUIRE(docs.ok());
  REQUIRE(docs->size() == 2);
  CHECK((*docs)[0].top_scalars.at("kind") == "A");
  CHECK((*docs)[1].top_scalars.at("kind") == "B");
  CHECK((*docs)[1].LineOf("x") == 4);
}

}  // namespace
}  // namespace weft

namespace weft {
namespace {
TEST_CASE("JsonWithout drops one top-level field wherever it stands") {
  auto docs = ParseYamlDocuments("kind: A\nname: x\nspec: {kind: inner}\n", "k.yaml");
  REQUIRE(docs.ok());
  const YamlDocument& d = (*docs)[0];
  CHECK(d.JsonWithout("kind") == R"({"name":"x","spec":{"kind":"inner"}})");
  CHECK(d.JsonWithout("name") == R"({"kind":"A","spec":{"kind":"inner"}})");
  CHECK(d.JsonWithout("spec") == R"({"kind":"A","name":"x"})");
  CHECK(d.JsonWithout("absent") == d.json);
  auto single = ParseYamlDocuments("kind: A\n", "s.yaml");
  REQUIRE(single.ok());
  CHECK((*single)[0].JsonWithout("kind") == "{}");
}
}  // namespace
}  // namespace weft

namespace weft {
namespace {
// yaml-cpp alone never returns on these: it starts empty documents at the stray comma forever
// (found by fuzz/targets/config_yaml_fuzz; the inputs are also in its corpus).
TEST_CASE("a stray ',' where a document starts is a syntax error, not a hang") {
  for (std::string_view text : {",", ", a", "---\n,", "[a]\n,", "kind: Service\n---\n  ,\n"}) {
    auto docs = ParseYamlDocuments(text, "c.yaml");
    INFO(text);
    REQUIRE_FALSE(docs.ok());
    CHECK(docs.status().message().find("c.yaml:") == 0);
    CHECK(docs.status().message().find("unexpected ','") != std::string_view::npos);
  }
  // Commas where YAML allows them still parse.
  for (std::string_view text : {"a: [1,]", "a: {b: 1,}", "a, b", "a: b\n  ,"}) {
    INFO(text);
    CHECK(ParseYamlDocuments(text, "c.yaml").ok());
  }
}
}  // namespace
}  // namespace weft
