// weft-cp's config files (common/yaml_proto, control-plane/model): YAML split into documents,
// Weft objects (a top-level `kind`) parsed, validated as one set and translated to xDS; raw
// Envoy resources (`resources:`) parsed as a DiscoveryResponse and validated, as the config
// directory source does. Errors must name a place; nothing may crash or hang.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/validation.h"
#include "common/xds/resource.h"
#include "common/xds/validate.h"
#include "common/yaml_proto.h"
#include "control-plane/model/model.h"
#include "envoy/service/discovery/v3/discovery.pb.h"
#include "fuzz/check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto docs = weft::ParseYamlDocuments(text, "fuzz.yaml");
  if (!docs.ok()) {
    WEFT_FUZZ_CHECK(docs.status().message().substr(0, 10) == "fuzz.yaml:");
    return 0;
  }
  std::vector<weft::YamlDocument> weft_docs;
  for (const weft::YamlDocument& doc : *docs) {
    (void)doc.LineOf("resources[0].name");
    (void)doc.JsonWithout("kind");
    if (doc.empty) continue;
    if (doc.is_map && doc.lines.contains("kind")) {
      weft_docs.push_back(doc);
      continue;
    }
    envoy::service::discovery::v3::DiscoveryResponse response;
    if (!weft::YamlDocumentToProto(doc, &response).ok()) continue;
    for (const google::protobuf::Any& any : response.resources()) {
      weft::ValidationErrors errors;
      weft::xds::ValidateResource(any, &errors);
      if (errors.ok()) (void)weft::xds::MakeResource(any);
    }
  }
  auto objects = weft::cp::ParseConfigDocuments(weft_docs);
  if (!objects.ok() || objects->empty()) return 0;
  for (const auto& o : *objects) (void)weft::cp::ObjectKey(o);
  auto translation = weft::cp::TranslateForNodes(*objects);
  if (translation.ok()) {
    // What weft-cp serves must pass the proxies' own validation.
    std::vector<google::protobuf::Any> anys;
    for (const auto& r : translation->shared) anys.push_back(r->body);
    WEFT_FUZZ_CHECK(weft::xds::ValidateResources(anys).ok());
  }
  return 0;
}
