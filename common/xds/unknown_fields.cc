#include "common/xds/unknown_fields.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/strings.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/unknown_field_set.h"

namespace weft::xds {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// A map entry as the path shows it: ["name"] for string keys (the only kind our filter
// configs have), the entry's position otherwise.
std::string MapKeyComponent(const Message& entry, int index) {
  const FieldDescriptor* key = entry.GetDescriptor()->map_key();
  if (key->cpp_type() == FieldDescriptor::CPPTYPE_STRING) {
    return absl::StrCat("[\"", entry.GetReflection()->GetString(entry, key), "\"]");
  }
  return absl::StrCat("[", index, "]");
}

}  // namespace

void CheckNoUnknownFields(const Message& message, ValidationErrors* errors,
                          std::string_view problem) {
  const Reflection* r = message.GetReflection();
  const google::protobuf::UnknownFieldSet& unknown = r->GetUnknownFields(message);
  for (int i = 0; i < unknown.field_count(); ++i) {
    errors->Add(absl::StrCat("field number ", unknown.field(i).number(), " ", Sv(problem)));
  }
  std::vector<const FieldDescriptor*> fields;
  r->ListFields(message, &fields);
  for (const FieldDescriptor* f : fields) {
    if (f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) continue;
    if (f->is_map()) {
      const FieldDescriptor* value = f->message_type()->map_value();
      if (value->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) continue;
      for (int j = 0; j < r->FieldSize(message, f); ++j) {
        const Message& entry = r->GetRepeatedMessage(message, f, j);
        ValidationErrors::Scope s(errors, absl::StrCat(f->name(), MapKeyComponent(entry, j)));
        CheckNoUnknownFields(entry.GetReflection()->GetMessage(entry, value), errors, problem);
      }
    } else if (f->is_repeated()) {
      for (int j = 0; j < r->FieldSize(message, f); ++j) {
        ValidationErrors::Scope s(errors, absl::StrCat(f->name(), "[", j, "]"));
        CheckNoUnknownFields(r->GetRepeatedMessage(message, f, j), errors, problem);
      }
    } else {
      ValidationErrors::Scope s(errors, f->name());
      CheckNoUnknownFields(r->GetMessage(message, f), errors, problem);
    }
  }
}

}  // namespace weft::xds
