// Helpers shared by the HTTP filter engines' tests (rbac_test.cc, fault_test.cc).
#pragma once

#include <catch2/catch.hpp>

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "common/proto_util.h"
#include "common/validation.h"
#include "common/xds/validate.h"
#include "common/yaml_proto.h"
#include "data-plane/router/matchers.h"
#include "envoy/config/listener/v3/listener.pb.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb.h"

namespace weft::testing {

template <typename T>
T FromYaml(std::string_view yaml) {
  T message;
  absl::Status s = YamlToProto(yaml, "test.yaml", &message);
  INFO(s.ToString());
  REQUIRE(s.ok());
  return message;
}

// Request headers keyed by lower-case name; repeated headers already joined with ','.
class FakeHeaders final : public router::HeaderLookup {
 public:
  FakeHeaders() = default;
  FakeHeaders(std::initializer_list<std::pair<const std::string, std::string>> h) : h_(h) {}
  std::optional<std::string_view> Get(std::string_view name) const override {
    auto it = h_.find(std::string(name));
    if (it == h_.end()) return std::nullopt;
    return std::string_view(it->second);
  }
  void Set(const std::string& name, std::string value) { h_[name] = std::move(value); }

 private:
  std::map<std::string, std::string> h_;
};

// A listener whose one HCM has `filter` (typed_config of type `type_url`) before the router,
// run through the shared validators; returns every error.
inline std::vector<std::string> ValidateListenerWithFilter(const google::protobuf::Message& filter,
                                                           bool optional = false) {
  auto listener = FromYaml<envoy::config::listener::v3::Listener>(R"(
name: l
address: {socket_address: {address: 127.0.0.1, port_value: 8080}}
filter_chains:
- filters:
  - name: hcm
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: in
      route_config: {virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: /}, direct_response: {status: 200}}]}]}
      http_filters:
      - name: filter
      - name: envoy.filters.http.router
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
)");
  envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager hcm;
  REQUIRE(UnpackAny(listener.filter_chains(0).filters(0).typed_config(), &hcm).ok());
  PackAny(filter, hcm.mutable_http_filters(0)->mutable_typed_config());
  hcm.mutable_http_filters(0)->set_is_optional(optional);
  PackAny(hcm, listener.mutable_filter_chains(0)->mutable_filters(0)->mutable_typed_config());
  ValidationErrors errors;
  xds::ValidateResource(PackAny(listener), &errors);
  return errors.errors();
}

// True when some error contains every fragment.
inline bool HasError(const std::vector<std::string>& errors,
                     std::initializer_list<std::string_view> parts) {
  for (const std::string& e : errors) {
    bool all = true;
    for (std::string_view p : parts) all = all && e.find(p) != std::string::npos;
    if (all) return true;
  }
  return false;
}

}  // namespace weft::testing
