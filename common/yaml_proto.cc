#include "common/yaml_proto.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <sstream>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/json.h"
#include "common/strings.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/util/json_util.h"
#include "re2/re2.h"

namespace weft {
namespace {

// YAML 1.2 core-schema resolution of a plain (unquoted) scalar.
void AppendPlainScalar(const std::string& s, std::string* out) {
  static const RE2 kInt("[-+]?[0-9]+");
  static const RE2 kFloat(R"([-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?)");
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") {
    *out += "null";
  } else if (s == "true" || s == "True" || s == "TRUE") {
    *out += "true";
  } else if (s == "false" || s == "False" || s == "FALSE") {
    *out += "false";
  } else if (RE2::FullMatch(s, kInt) || RE2::FullMatch(s, kFloat)) {
    // JSON forbids a leading '+' and leading zeros; quoting keeps the value for the parser,
    // which accepts numeric strings for numeric fields.
    if (s[0] == '+' || (s.size() > 1 && s[0] == '0' && s[1] != '.') || s[0] == '.' ||
        s.back() == '.') {
      AppendJsonString(s, out);
    } else {
      *out += s;
    }
  } else {
    AppendJsonString(s, out);
  }
}

class Converter {
 public:
  explicit Converter(YamlDocument* doc) : doc_(doc) {}

  absl::Status Convert(const YAML::Node& node, const std::string& path) {
    if (node.Mark().line >= 0) doc_->lines.emplace(path, node.Mark().line + 1);
    switch (node.Type()) {
      case YAML::NodeType::Null:
      case YAML::NodeType::Undefined:
        out_ += "null";
        return absl::OkStatus();
      case YAML::NodeType::Scalar:
        if (node.Tag() == "!" || node.Tag() == "tag:yaml.org,2002:str") {
          AppendJsonString(node.Scalar(), &out_);
        } else {
          AppendPlainScalar(node.Scalar(), &out_);
        }
        return absl::OkStatus();
      case YAML::NodeType::Sequence: {
        out_ += '[';
        size_t i = 0;
        for (const auto& item : node) {
          if (i > 0) out_ += ',';
          absl::Status s = Convert(item, absl::StrCat(path, "[", i, "]"));
          if (!s.ok()) return s;
          ++i;
        }
        out_ += ']';
        return absl::OkStatus();
      }
      case YAML::NodeType::Map: {
        out_ += '{';
        bool first = true;
        for (const auto& kv : node) {
          if (kv.first.Type() != YAML::NodeType::Scalar) {
            return absl::InvalidArgumentError(
                absl::StrFormat("%s:%d: %s: map keys must be scalars", doc_->source,
                                kv.first.Mark().line + 1, path.empty() ? "<root>" : path));
          }
          const std::string& key = kv.first.Scalar();
          const size_t begin = out_.size();
          if (!first) out_ += ',';
          first = false;
          AppendJsonString(key, &out_);
          out_ += ':';
          std::string child = path.empty() ? key : absl::StrCat(path, ".", key);
          doc_->lines.emplace(child, kv.first.Mark().line + 1);
          absl::Status s = Convert(kv.second, child);
          if (!s.ok()) return s;
          if (path.empty()) {
            doc_->top_ranges[key] = {begin, out_.size()};
          }
        }
        out_ += '}';
        return absl::OkStatus();
      }
    }
    return absl::OkStatus();
  }

  std::string& out() { return out_; }

 private:
  YamlDocument* doc_;
  std::string out_;
};

// protobuf's JSON parser reports "(parent.path) field: problem", "(path): problem" or
// "field: problem", with paths relative to the innermost Any. Rewrite that as
// "full.path: problem" and find the line: a relative path is resolved against the document's
// known paths when exactly one of them ends with it.
std::pair<std::string, std::string> NormalizeJsonError(const YamlDocument& doc,
                                                       const std::string& message) {
  static const RE2 kParenField(R"(^\(([^)]*)\) ([A-Za-z0-9_@"]+): (.*)$)");
  static const RE2 kParenOnly(R"(^\(([^)]*)\): (.*)$)");
  static const RE2 kField(R"(^([A-Za-z_@][A-Za-z0-9_.\[\]@"]*): (.*)$)");
  std::string parent, field, rest, path;
  if (RE2::FullMatch(message, kParenField, &parent, &field, &rest)) {
    path = parent.empty() ? field : absl::StrCat(parent, ".", field);
  } else if (RE2::FullMatch(message, kParenOnly, &path, &rest)) {
  } else if (RE2::FullMatch(message, kField, &path, &rest)) {
  } else {
    return {"", message};
  }
  if (!path.empty() && !doc.lines.contains(path)) {
    std::string suffix = absl::StrCat(".", path);
    const std::string* match = nullptr;
    for (const auto& [known, line] : doc.lines) {
      if (known.size() > suffix.size() &&
          known.compare(known.size() - suffix.size(), suffix.size(), suffix) == 0) {
        if (match != nullptr) {
          match = nullptr;  // ambiguous: keep the relative path
          break;
        }
        match = &known;
      }
    }
    if (match != nullptr) path = *match;
  }
  if (path.empty()) return {"", rest};
  return {path, absl::StrCat(path, ": ", rest)};
}

// Every key below `node` that the message `type` has no field for, as a document path ("a.b[2].c",
// the way Converter names them), removed from `node` as it goes. protobuf's JSON parser stops at
// the first problem; this walks the whole tree, so one pass reports every unknown field, and
// what remains can be parsed again for the first other problem. Shapes that do not fit (a scalar
// where a message belongs) are left to the parser. `node` is a handle: changes reach the tree.
void RemoveUnknownFields(YAML::Node node, const google::protobuf::Descriptor* type,
                         const std::string& path, std::vector<std::string>* out) {
  using google::protobuf::FieldDescriptor;
  if (!node.IsMap()) return;
  const std::string& name = type->full_name();
  bool is_any = false;
  if (name == "google.protobuf.Any") {
    const YAML::Node type_url = node["@type"];
    if (!type_url.IsScalar()) return;
    const std::string& url = type_url.Scalar();
    type = type->file()->pool()->FindMessageTypeByName(url.substr(url.rfind('/') + 1));
    if (type == nullptr) return;  // the parser's error
    is_any = true;
  }
  // Duration, Struct, wrappers and the like have a JSON form of their own (in an Any: "value").
  if (type->file()->package() == "google.protobuf" &&
      type->full_name() != "google.protobuf.Empty") {
    return;
  }
  std::vector<std::string> unknown;
  for (const auto& kv : node) {
    if (!kv.first.IsScalar()) continue;
    const std::string& key = kv.first.Scalar();
    if (is_any && key == "@type") continue;
    std::string child = path.empty() ? key : absl::StrCat(path, ".", key);
    // The parser accepts the proto field name and its JSON (lowerCamel) name.
    const FieldDescriptor* field = type->FindFieldByName(key);
    for (int i = 0; field == nullptr && i < type->field_count(); ++i) {
      if (type->field(i)->json_name() == key) field = type->field(i);
    }
    if (field == nullptr) {
      unknown.push_back(key);
      out->push_back(std::move(child));
      continue;
    }
    if (field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) continue;
    YAML::Node value = kv.second;
    if (field->is_map()) {
      const FieldDescriptor* mapped = field->message_type()->map_value();
      if (mapped->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE || !value.IsMap()) continue;
      for (const auto& entry : value) {
        if (!entry.first.IsScalar()) continue;
        RemoveUnknownFields(entry.second, mapped->message_type(),
                            absl::StrCat(child, ".", entry.first.Scalar()), out);
      }
    } else if (field->is_repeated()) {
      if (!value.IsSequence()) continue;
      for (size_t i = 0; i < value.size(); ++i) {
        RemoveUnknownFields(value[i], field->message_type(), absl::StrCat(child, "[", i, "]"), out);
      }
    } else {
      RemoveUnknownFields(value, field->message_type(), child, out);
    }
  }
  for (const std::string& key : unknown) node.remove(key);
}

// yaml-cpp 0.7 loops forever, building empty documents until memory runs out, on a ',' where a
// document should start (",", "[a]\n,"): its parser leaves the token unconsumed and starts the
// next document at the same place. A first pass over the events spots a document that begins
// where the previous one did and reports it instead. Found by fuzz/targets/config_yaml_fuzz.
class ProgressCheck : public YAML::EventHandler {
 public:
  bool stuck() const { return stuck_; }
  const YAML::Mark& mark() const { return mark_; }

  void OnDocumentStart(const YAML::Mark& mark) override {
    if (started_ && mark.pos == mark_.pos) stuck_ = true;
    started_ = true;
    mark_ = mark;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

 private:
  bool started_ = false;
  bool stuck_ = false;
  YAML::Mark mark_;
};

}  // namespace

std::string YamlDocument::JsonWithout(std::string_view key) const {
  auto it = top_ranges.find(key);
  if (it == top_ranges.end()) return json;
  auto [begin, end] = it->second;
  std::string out = json;
  // The first entry has no leading comma; take the one that follows it instead, if any.
  if (out[begin] != ',' && end < out.size() && out[end] == ',') ++end;
  out.erase(begin, end - begin);
  return out;
}

int YamlDocument::LineOf(std::string_view path) const {
  std::string p(path);
  while (true) {
    auto it = lines.find(p);
    if (it != lines.end()) return it->second;
    size_t cut = p.find_last_of(".[");
    if (cut == std::string::npos) break;
    p.resize(cut);
  }
  return line;
}

absl::StatusOr<std::vector<YamlDocument>> ParseYamlDocuments(std::string_view text,
                                                             std::string_view source) {
  std::vector<YAML::Node> nodes;
  try {
    // yaml-cpp reports problems by throwing; this is config loading, never the request path.
    {
      std::istringstream in{std::string(text)};
      YAML::Parser parser(in);
      ProgressCheck check;
      while (!check.stuck() && parser.HandleNextDocument(check)) {
      }
      if (check.stuck()) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "%s:%d:%d: YAML syntax error: unexpected ',' where a document should start", source,
            check.mark().line + 1, check.mark().column + 1));
      }
    }
    nodes = YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrFormat("%s:%d:%d: YAML syntax error: %s", source,
                                                      e.mark.line + 1, e.mark.column + 1, e.msg));
  }
  std::vector<YamlDocument> docs;
  docs.reserve(nodes.size());
  for (const YAML::Node& node : nodes) {
    YamlDocument doc;
    doc.source = std::string(source);
    doc.line = node.Mark().line >= 0 ? node.Mark().line + 1 : 1;
    doc.empty = node.IsNull();
    doc.is_map = node.IsMap();
    if (doc.is_map) {
      for (const auto& kv : node) {
        if (kv.first.IsScalar() && kv.second.IsScalar()) {
          doc.top_scalars.emplace(kv.first.Scalar(), kv.second.Scalar());
        }
      }
    }
    Converter conv(&doc);
    try {
      absl::Status s = conv.Convert(node, "");
      if (!s.ok()) return s;
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s:%d: YAML error: %s", source, e.mark.line + 1, e.msg));
    }
    doc.json = std::move(conv.out());
    docs.push_back(std::move(doc));
  }
  return docs;
}

absl::Status YamlDocumentToProto(const YamlDocument& doc, google::protobuf::Message* out) {
  if (!doc.is_map) {
    return absl::InvalidArgumentError(absl::StrFormat("%s:%d: expected a map for %s", doc.source,
                                                      doc.line, out->GetDescriptor()->full_name()));
  }
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  out->Clear();
  auto status = google::protobuf::util::JsonStringToMessage(doc.json, out, options);
  if (status.ok()) return absl::OkStatus();
  std::string message(status.message().data(), status.message().size());
  auto [path, normalized] = NormalizeJsonError(doc, message);
  // The parser's error, then every unknown field (it stops at the first), then the first other
  // problem once those are gone; in document order.
  std::vector<std::tuple<int, std::string, std::string>> errors;
  std::vector<std::string> unknown;
  YamlDocument rest;
  try {
    // Our own JSON (valid YAML flow style) read back: only ever on this error path.
    YAML::Node tree = YAML::Load(doc.json);
    RemoveUnknownFields(tree, out->GetDescriptor(), "", &unknown);
    Converter conv(&rest);
    if (!unknown.empty() && conv.Convert(tree, "").ok()) rest.json = std::move(conv.out());
  } catch (const YAML::Exception&) {
    unknown.clear();
  }
  // The walk found the parser's unknown field too, with its full path (inside an Any the
  // parser's path is relative and may not resolve).
  constexpr std::string_view kUnknown = "Cannot find field.";
  if (unknown.empty() || !std::string_view(normalized).ends_with(kUnknown)) {
    errors.emplace_back(doc.LineOf(path), path, normalized);
  }
  for (const std::string& field : unknown) {
    errors.emplace_back(doc.LineOf(field), field, absl::StrCat(field, ": ", Sv(kUnknown)));
  }
  if (!rest.json.empty()) {
    std::unique_ptr<google::protobuf::Message> scratch(out->New());
    auto again = google::protobuf::util::JsonStringToMessage(rest.json, scratch.get(), options);
    if (!again.ok()) {
      auto [other_path, other] =
          NormalizeJsonError(doc, std::string(again.message().data(), again.message().size()));
      if (other != normalized) errors.emplace_back(doc.LineOf(other_path), other_path, other);
    }
  }
  std::sort(errors.begin(), errors.end());
  std::string text;
  for (const auto& [line, field, error] : errors) {
    absl::StrAppendFormat(&text, "%s%s:%d: %s", text.empty() ? "" : "; ", doc.source, line, error);
  }
  return absl::InvalidArgumentError(text);
}

absl::Status YamlToProto(std::string_view text, std::string_view source,
                         google::protobuf::Message* out) {
  auto docs = ParseYamlDocuments(text, source);
  if (!docs.ok()) return docs.status();
  if (docs->size() != 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: expected exactly one YAML document, found %d", source, docs->size()));
  }
  return YamlDocumentToProto((*docs)[0], out);
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat(path, ": read error"));
  return ss.str();
}

}  // namespace weft
