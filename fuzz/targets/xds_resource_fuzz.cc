// One xDS resource type (chosen at compile time: WEFT_FUZZ_XDS_MESSAGE / WEFT_FUZZ_XDS_TYPE) as
// weft-proxy receives it: decoded from an Any, validated (common/xds: the same code weft-cp
// refuses config with), applied to the proxy's ConfigState, and, when accepted, compiled into
// what the workers serve (BuildProxyConfig). Inputs are serialized messages of that type and
// mutate structurally (fuzz/proto_mutator.h).
#include <cstdint>
#include <string>
#include <vector>

#include "common/xds/resource.h"
#include "common/xds/validate.h"
#include "data-plane/server/proxy_config.h"
#include "data-plane/xds/config_state.h"
#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"
#include "envoy/config/listener/v3/listener.pb.h"
#include "envoy/config/route/v3/route.pb.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb.h"
#include "fuzz/check.h"
#include "fuzz/proto_mutator.h"

using weft::xds::ResourceType;

WEFT_FUZZ_PROTO_MUTATOR(WEFT_FUZZ_XDS_MESSAGE)

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  weft::fuzz::QuietProtobufLogs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr ResourceType kType = ResourceType::WEFT_FUZZ_XDS_TYPE;
  google::protobuf::RepeatedPtrField<google::protobuf::Any> anys;
  google::protobuf::Any* any = anys.Add();
  any->set_type_url(std::string(weft::xds::TypeUrl(kType)));
  any->set_value(reinterpret_cast<const char*>(data), size);

  // The control plane's apply-time check and the proxy's must give one verdict.
  absl::Status cp_verdict = weft::xds::ValidateResources({*any});
  auto made = weft::xds::MakeResource(*any);
  if (made.ok()) {
    auto again = weft::xds::MakeResource(*any);
    WEFT_FUZZ_CHECK(again.ok() && (*again)->version == (*made)->version &&
                    (*again)->name == (*made)->name);
  }

  weft::proxy::ConfigState state;
  absl::Status applied = state.ApplySotw(kType, anys);
  WEFT_FUZZ_CHECK(applied.ok() == cp_verdict.ok());
  if (!applied.ok()) {
    WEFT_FUZZ_CHECK(!applied.message().empty());
    return 0;
  }
  (void)state.ConfigDumpJson();
  (void)state.Wanted(ResourceType::kEndpoint);
  (void)state.Wanted(ResourceType::kRoute);
  (void)state.Warming();
  if constexpr (kType != ResourceType::kSecret) {
    std::vector<std::string> warnings;
    std::vector<std::string> errors;
    auto config = weft::proxy::BuildProxyConfig(
        state.resources(ResourceType::kListener), state.resources(ResourceType::kRoute),
        state.resources(ResourceType::kCluster), state.resources(ResourceType::kEndpoint), 1,
        nullptr, &warnings, &errors);
    // Built again on top of itself, as an unchanged update is.
    if (config != nullptr) {
      (void)weft::proxy::BuildProxyConfig(
          state.resources(ResourceType::kListener), state.resources(ResourceType::kRoute),
          state.resources(ResourceType::kCluster), state.resources(ResourceType::kEndpoint), 2,
          config.get(), &warnings, &errors);
    }
  }
  return 0;
}
