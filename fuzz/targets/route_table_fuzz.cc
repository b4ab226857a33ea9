// Route table compilation (data-plane/router): any RouteConfiguration either compiles or is
// refused with a field path, never a crash; a compiled table matches, rewrites and redirects
// requests made from the config's own domains and paths without tripping a sanitizer. Inputs are
// serialized RouteConfigurations and mutate structurally (fuzz/proto_mutator.h). Compilation
// runs whether or not validation accepts the input: RouteTable::Create promises to fail
// cleanly on anything.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/validation.h"
#include "common/xds/validate.h"
#include "data-plane/router/route_table.h"
#include "envoy/config/route/v3/route.pb.h"
#include "fuzz/check.h"
#include "fuzz/proto_mutator.h"

using envoy::config::route::v3::RouteConfiguration;

WEFT_FUZZ_PROTO_MUTATOR(RouteConfiguration)

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  weft::fuzz::QuietProtobufLogs();
  return 0;
}

namespace {

class Headers : public weft::router::HeaderLookup {
 public:
  explicit Headers(std::string_view value) : value_(value) {}
  std::optional<std::string_view> Get(std::string_view name) const override {
    if (name == "absent") return std::nullopt;
    return value_;
  }

 private:
  std::string_view value_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  RouteConfiguration config;
  if (!config.ParseFromArray(data, static_cast<int>(size))) return 0;
  google::protobuf::Any any;
  any.PackFrom(config);
  weft::ValidationErrors errors;
  weft::xds::ValidateResource(any, &errors);
  auto table = weft::router::RouteTable::Create(config, 1);
  if (!table.ok()) {
    WEFT_FUZZ_CHECK(!table.status().message().empty());
    return 0;
  }
  // Requests built from what the config names, plus a few fixed ones.
  std::vector<std::string> hosts = {"example.com", "example.com:80", "", "[::1]:8080"};
  std::vector<std::string> paths = {"/", "/a/b?x=1&y", "", "//%2e%2e/", "/a#frag"};
  for (const auto& vh : config.virtual_hosts()) {
    for (const auto& d : vh.domains()) hosts.push_back(d);
    for (const auto& r : vh.routes()) {
      if (r.match().has_prefix()) paths.push_back(r.match().prefix() + "x?q=1");
      if (r.match().has_path()) paths.push_back(r.match().path());
      if (r.match().has_path_separated_prefix())
        paths.push_back(r.match().path_separated_prefix() + "/y");
    }
    if (hosts.size() > 32 || paths.size() > 32) break;
  }
  Headers headers(paths.empty() ? std::string_view() : std::string_view(paths.back()));
  uint64_t random = size;
  for (const auto& host : hosts) {
    for (const auto& path : paths) {
      weft::router::RequestView request;
      request.method = "GET";
      request.authority = host;
      request.path = path;
      request.headers = &headers;
      request.random_value = random++;
      const weft::router::Route* route = (*table)->Match(request);
      if (route == nullptr) continue;
      (void)weft::router::ApplyPathRewrite(*route, path);
      (void)weft::router::RedirectLocation(*route, request);
      if (const auto* action = route->route_action()) {
        (void)weft::router::RewrittenHost(*route, request, action->PickCluster(random));
      }
    }
  }
  return 0;
}
