// Writes the xDS fuzz targets' seed inputs: every resource the YAML files on the command line
// hold (raw Envoy resources) or translate to (Weft objects, through weft-cp's model), serialized,
// into <out>/xds_<type>_fuzz/ and, for route configurations, <out>/route_table_fuzz/. File
// names are the content hash, so re-running adds nothing twice.
//   seed_gen OUT_DIR FILE.yaml...
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "common/proto_util.h"
#include "common/xds/resource.h"
#include "common/yaml_proto.h"
#include "control-plane/model/model.h"
#include "envoy/service/discovery/v3/discovery.pb.h"

namespace {

void Write(const std::filesystem::path& dir, const std::string& bytes) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir / absl::StrFormat("seed-%016x", weft::StableHash64(bytes)), std::ios::binary)
      << bytes;
}

void WriteResource(const std::filesystem::path& out, const google::protobuf::Any& any) {
  auto type = weft::xds::ResourceTypeFromUrl(any.type_url());
  if (!type) return;
  Write(out / absl::StrFormat("xds_%s_fuzz", std::string(weft::xds::ShortName(*type))),
        any.value());
  if (*type == weft::xds::ResourceType::kRoute) Write(out / "route_table_fuzz", any.value());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: seed_gen OUT_DIR FILE.yaml...\n");
    return 2;
  }
  std::filesystem::path out = argv[1];
  std::vector<weft::config::v1::ConfigObject> objects;
  for (int i = 2; i < argc; ++i) {
    auto text = weft::ReadFile(argv[i]);
    if (!text.ok()) return 1;
    auto docs = weft::ParseYamlDocuments(*text, argv[i]);
    if (!docs.ok()) {
      std::fprintf(stderr, "%s\n", std::string(docs.status().message()).c_str());
      return 1;
    }
    std::vector<weft::YamlDocument> weft_docs;
    for (const auto& doc : *docs) {
      if (doc.is_map && doc.lines.contains("kind")) {
        weft_docs.push_back(doc);
        continue;
      }
      envoy::service::discovery::v3::DiscoveryResponse response;
      if (doc.is_map && doc.lines.contains("resources") &&
          weft::YamlDocumentToProto(doc, &response).ok()) {
        for (const auto& any : response.resources()) WriteResource(out, any);
      }
    }
    auto parsed = weft::cp::ParseConfigDocuments(weft_docs);
    if (parsed.ok()) objects.insert(objects.end(), parsed->begin(), parsed->end());
  }
  auto translation = weft::cp::TranslateForNodes(objects);
  if (!translation.ok()) {
    std::fprintf(stderr, "%s\n", std::string(translation.status().message()).c_str());
    return 1;
  }
  for (const auto& r : translation->shared) WriteResource(out, r->body);
  for (const auto& [group, resources] : translation->per_group) {
    for (const auto& r : resources) WriteResource(out, r->body);
  }
  return 0;
}
