#include "common/xds/sensitive.h"

#include <memory>
#include <set>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/proto_util.h"
#include "common/strings.h"
#include "google/protobuf/descriptor.h"

namespace weft::xds {
namespace {

using google::protobuf::Any;
using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

constexpr std::string_view kTls = "envoy.extensions.transport_sockets.tls.v3.";

// The fields Envoy's API marks sensitive, by message and field name: our proto subset keeps
// upstream's names but not its annotations.
bool IsSensitive(const FieldDescriptor* f) {
  static const auto* kFields = new std::set<std::pair<std::string, std::string>>{
      {absl::StrCat(Sv(kTls), "TlsCertificate"), "private_key"},
      {absl::StrCat(Sv(kTls), "TlsCertificate"), "password"},
      {absl::StrCat(Sv(kTls), "TlsCertificate"), "pkcs12"},
      {absl::StrCat(Sv(kTls), "PrivateKeyProvider"), "typed_config"},
      {absl::StrCat(Sv(kTls), "GenericSecret"), "secret"},
      {absl::StrCat(Sv(kTls), "TlsSessionTicketKeys"), "keys"},
  };
  return kFields->contains({f->containing_type()->full_name(), f->name()});
}

bool IsAny(const Descriptor* d) { return d->full_name() == Any::descriptor()->full_name(); }

// The message an Any holds, when its type is compiled in and its bytes parse.
std::unique_ptr<Message> Unpack(const Any& any) {
  const Descriptor* d = google::protobuf::DescriptorPool::generated_pool()->FindMessageTypeByName(
      std::string(TypeNameOfUrl(any.type_url())));
  if (d == nullptr) return nullptr;
  const Message* prototype = google::protobuf::MessageFactory::generated_factory()->GetPrototype(d);
  if (prototype == nullptr) return nullptr;
  std::unique_ptr<Message> m(prototype->New());
  if (!m->ParseFromString(any.value())) return nullptr;
  return m;
}

// Whether `m`, the value of a sensitive field, carries the material itself.
bool HoldsInline(const Message& m) {
  const Descriptor* d = m.GetDescriptor();
  if (IsAny(d)) return !static_cast<const Any&>(m).type_url().empty();
  const Reflection* r = m.GetReflection();
  for (std::string_view name : {"inline_bytes", "inline_string"}) {
    const FieldDescriptor* f = d->FindFieldByName(std::string(name));
    if (f != nullptr && r->HasField(m, f)) return true;
  }
  return false;
}

template <typename Fn>
void ForEachMessageField(const Message& m, Fn fn) {
  const Reflection* r = m.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  r->ListFields(m, &fields);
  for (const FieldDescriptor* f : fields) {
    if (f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) continue;
    if (f->is_repeated()) {
      for (int i = 0; i < r->FieldSize(m, f); ++i) {
        fn(f, r->GetRepeatedMessage(m, f, i), absl::StrCat(f->name(), "[", i, "]"));
      }
    } else {
      fn(f, r->GetMessage(m, f), f->name());
    }
  }
}

void Find(const Message& m, const std::string& path, std::vector<std::string>* out) {
  if (IsAny(m.GetDescriptor())) {
    if (std::unique_ptr<Message> inner = Unpack(static_cast<const Any&>(m))) {
      Find(*inner, path, out);
    }
    return;
  }
  ForEachMessageField(m, [&](const FieldDescriptor* f, const Message& child, std::string name) {
    std::string here = path.empty() ? std::move(name) : absl::StrCat(path, ".", name);
    if (IsSensitive(f)) {
      if (HoldsInline(child)) out->push_back(std::move(here));
      return;
    }
    Find(child, here, out);
  });
}

// Every string and bytes field below `m`, Anys included.
void RedactAll(Message* m) {
  const Reflection* r = m->GetReflection();
  std::vector<const FieldDescriptor*> fields;
  r->ListFields(*m, &fields);
  const std::string redacted(kRedacted);
  for (const FieldDescriptor* f : fields) {
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_STRING) {
      if (f->is_repeated()) {
        for (int i = 0; i < r->FieldSize(*m, f); ++i) r->SetRepeatedString(m, f, i, redacted);
      } else {
        r->SetString(m, f, redacted);
      }
    } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      if (f->is_repeated()) {
        for (int i = 0; i < r->FieldSize(*m, f); ++i) RedactAll(r->MutableRepeatedMessage(m, f, i));
      } else {
        RedactAll(r->MutableMessage(m, f));
      }
    }
  }
}

bool Redact(Message* m) {
  if (IsAny(m->GetDescriptor())) {
    auto* any = static_cast<Any*>(m);
    std::unique_ptr<Message> inner = Unpack(*any);
    if (inner == nullptr || !Redact(inner.get())) return false;
    any->set_value(DeterministicBytes(*inner));
    return true;
  }
  bool changed = false;
  const Reflection* r = m->GetReflection();
  std::vector<const FieldDescriptor*> fields;
  r->ListFields(*m, &fields);
  for (const FieldDescriptor* f : fields) {
    if (f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) continue;
    const int n = f->is_repeated() ? r->FieldSize(*m, f) : 1;
    for (int i = 0; i < n; ++i) {
      Message* child =
          f->is_repeated() ? r->MutableRepeatedMessage(m, f, i) : r->MutableMessage(m, f);
      if (IsSensitive(f)) {
        RedactAll(child);
        changed = true;
      } else {
        changed |= Redact(child);
      }
    }
  }
  return changed;
}

}  // namespace

std::vector<std::string> InlineKeyMaterial(const Message& message) {
  std::vector<std::string> out;
  Find(message, "", &out);
  return out;
}

std::vector<std::string> InlineKeyMaterial(const Any& resource) {
  return InlineKeyMaterial(static_cast<const Message&>(resource));
}

bool RedactSensitive(Message* message) { return Redact(message); }
bool RedactSensitive(Any* resource) { return Redact(static_cast<Message*>(resource)); }

}  // namespace weft::xds
