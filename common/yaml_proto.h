// YAML (and JSON, a YAML subset) to protobuf via the canonical proto3 JSON mapping, with errors
// that name the source, the line and the field path:
//   services.yaml:12: resources[0].lb_policy: invalid value "fastest" for enum ...
// Unknown fields are errors, never dropped: a typo must not silently change meaning.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/message.h"

namespace weft {

// One YAML document converted to JSON, with the line of every field path inside it.
struct YamlDocument {
  std::string source;  // file name (or "<input>") used in errors
  int line = 1;        // 1-based line where the document starts
  std::string json;    // canonical JSON text of the document
  // JSON field path ("a.b[2].c") -> 1-based line in the source.
  std::map<std::string, int, std::less<>> lines;
  // Top-level scalar fields ("kind", "name", ...) so callers can dispatch before parsing.
  std::map<std::string, std::string, std::less<>> top_scalars;
  bool is_map = false;
  bool empty = false;
  // Where each top-level field sits in `json` (byte range), for JsonWithout().
  std::map<std::string, std::pair<size_t, size_t>, std::less<>> top_ranges;

  // `json` minus one top-level field: how a document's `kind` selector is dropped before the
  // rest is parsed as the message it selects.
  std::string JsonWithout(std::string_view key) const;

  // Best-known line for `path`: the line of its longest known prefix.
  int LineOf(std::string_view path) const;
};

// Splits `text` into documents ("---" separated). Fails on YAML syntax errors with source:line.
absl::StatusOr<std::vector<YamlDocument>> ParseYamlDocuments(std::string_view text,
                                                             std::string_view source);

// Parses one document into `out`. Errors read "source:line: field.path: problem".
absl::Status YamlDocumentToProto(const YamlDocument& doc, google::protobuf::Message* out);

// Convenience for single-document input.
absl::Status YamlToProto(std::string_view text, std::string_view source,
                         google::protobuf::Message* out);

// Reads a whole file into memory; errors name the file.
absl::StatusOr<std::string> ReadFile(const std::string& path);

}  // namespace weft
