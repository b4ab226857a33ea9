// weft-proxy's bootstrap file (common/yaml_proto into weft.bootstrap.v1.Bootstrap) and its
// static resources, as main.cc and the server read them: parsed, then the static listeners and
// clusters validated as xDS resources.
#include <cstdint>
#include <string_view>

#include "common/yaml_proto.h"
#include "data-plane/server/proxy_config.h"
#include "fuzz/check.h"
#include "weft/bootstrap/v1/bootstrap.pb.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  weft::bootstrap::v1::Bootstrap bootstrap;
  absl::Status s = weft::YamlToProto(text, "bootstrap.yaml", &bootstrap);
  if (!s.ok()) {
    WEFT_FUZZ_CHECK(s.message().substr(0, 15) == "bootstrap.yaml:");
    return 0;
  }
  weft::proxy::ConfigState::ResourceMap listeners;
  weft::proxy::ConfigState::ResourceMap clusters;
  (void)weft::proxy::StaticResources(bootstrap.static_resources(), &listeners, &clusters);
  return 0;
}
