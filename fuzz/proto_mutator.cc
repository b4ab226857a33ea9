#include "fuzz/proto_mutator.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "google/protobuf/descriptor.h"
#include "google/protobuf/stubs/logging.h"

namespace weft::fuzz {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::DescriptorPool;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::MessageFactory;
using google::protobuf::Reflection;

// Bounds that keep a mutated message small enough to stay fast: recursion in matchers and
// repeated fields can otherwise grow a message every step.
constexpr int kMaxDepth = 20;
constexpr int kMaxRepeated = 48;

// Values that mean something to xDS validation, matching and compilation.
constexpr std::string_view kStrings[] = {
    "",
    "*",
    "/",
    "/a",
    "a",
    "a.b",
    "*.example.com",
    "example.com",
    "example.com:80",
    "[::1]:80",
    "127.0.0.1",
    "::1",
    "0.0.0.0",
    "10.0.0.0",
    "fe80::",
    "^",
    ".*",
    "(a|b)+",
    "[",
    "(",
    "\\",
    "a{1000}",
    "\\1",
    "(?P<n>a)",
    "%",
    "%2F",
    "?",
    "#",
    "\r\n",
    std::string_view("\0", 1),
    "\x7f",
    "\xc3\xa9",
    ":path",
    ":authority",
    ":method",
    "host",
    "x-forwarded-for",
    "content-type",
    "transfer-encoding",
    "GET",
    "envoy.filters.http.router",
    "envoy.filters.network.http_connection_manager",
    "envoy.filters.http.rbac",
    "envoy.filters.http.fault",
    "envoy.filters.network.tcp_proxy",
    "envoy.transport_sockets.tls",
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
    "HttpConnectionManager",
    "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
    "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
    "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault",
    "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
    "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
    "type.googleapis.com/google.protobuf.Empty",
    "spiffe://cluster.local/ns/default/sa/a",
};

// The message types a google.protobuf.Any in our resources is meant to hold.
constexpr std::string_view kAnyTypes[] = {
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
    "envoy.extensions.filters.http.router.v3.Router",
    "envoy.extensions.filters.http.rbac.v3.RBAC",
    "envoy.extensions.filters.http.fault.v3.HTTPFault",
    "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
    "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
    "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
};

struct Node {
  Message* message;
  int depth;
};

struct Walk {
  std::vector<Node> nodes;
  std::vector<std::string> strings;  // string values seen, for references between objects
};

bool IsAny(const Message& m) { return m.GetDescriptor()->full_name() == "google.protobuf.Any"; }

void Collect(Message* m, int depth, Walk* walk) {
  walk->nodes.push_back({m, depth});
  const Reflection* r = m->GetReflection();
  std::vector<const FieldDescriptor*> fields;
  r->ListFields(*m, &fields);
  for (const FieldDescriptor* f : fields) {
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      if (IsAny(*m) || depth >= kMaxDepth) continue;
      if (f->is_repeated()) {
        for (int i = 0; i < r->FieldSize(*m, f); ++i) {
          Collect(r->MutableRepeatedMessage(m, f, i), depth + 1, walk);
        }
      } else {
        Collect(r->MutableMessage(m, f), depth + 1, walk);
      }
    } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_STRING && !IsAny(*m)) {
      if (f->is_repeated()) {
        for (int i = 0; i < r->FieldSize(*m, f) && i < 8; ++i) {
          walk->strings.push_back(r->GetRepeatedString(*m, f, i));
        }
      } else {
        walk->strings.push_back(r->GetString(*m, f));
      }
    }
  }
}

template <typename T>
T MutateInt(T old, std::mt19937_64& rng) {
  // Wrapping arithmetic in the unsigned type: signed overflow would be UB in the mutator itself.
  using U = std::make_unsigned_t<T>;
  switch (rng() % 9) {
    case 0:
      return 0;
    case 1:
      return 1;
    case 2:
      return std::numeric_limits<T>::max();
    case 3:
      return std::numeric_limits<T>::min();
    case 4:
      return static_cast<T>(static_cast<U>(old) + 1);
    case 5:
      return static_cast<T>(static_cast<U>(old) - 1);
    case 6:
      return static_cast<T>(rng() % 1001);
    case 7:
      return static_cast<T>(U{1} << (rng() % (sizeof(T) * 8 - 1)));
    default:
      return static_cast<T>(rng());
  }
}

double MutateDouble(double old, std::mt19937_64& rng) {
  switch (rng() % 10) {
    case 0:
      return 0;
    case 1:
      return 1;
    case 2:
      return -1;
    case 3:
      return 0.5;
    case 4:
      return std::numeric_limits<double>::quiet_NaN();
    case 5:
      return std::numeric_limits<double>::infinity();
    case 6:
      return -std::numeric_limits<double>::infinity();
    case 7:
      return 1e300;
    case 8:
      return std::isfinite(old) && std::fabs(old) < 1e300 ? old * 2 + 1 : 3;
    default:
      return static_cast<double>(rng() % 100001) / 1000.0;
  }
}

// A double outside float's range does not convert (UB); keep to the range's edges.
float ToFloat(double d) {
  if (std::isnan(d)) return std::numeric_limits<float>::quiet_NaN();
  double max = std::numeric_limits<float>::max();
  return static_cast<float>(d > max ? max : d < -max ? -max : d);
}

// proto3 `string` fields must hold UTF-8 or the serialized message no longer parses.
void MakeUtf8(std::string* s) {
  size_t i = 0;
  while (i < s->size()) {
    auto c = static_cast<uint8_t>((*s)[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    bool ok = n > 0 && i + n <= s->size();
    for (size_t k = 1; ok && k < n; ++k) ok = (static_cast<uint8_t>((*s)[i + k]) >> 6) == 2;
    if (ok && n == 2) ok = c >= 0xc2;
    if (ok && n == 3) {
      auto c1 = static_cast<uint8_t>((*s)[i + 1]);
      ok = !(c == 0xe0 && c1 < 0xa0) && !(c == 0xed && c1 >= 0xa0);
    }
    if (ok && n == 4) {
      auto c1 = static_cast<uint8_t>((*s)[i + 1]);
      ok = c <= 0xf4 && !(c == 0xf0 && c1 < 0x90) && !(c == 0xf4 && c1 >= 0x90);
    }
    if (!ok) {
      (*s)[i] = static_cast<char>(c & 0x7f);
      n = 1;
    }
    i += n;
  }
}

std::string MutateString(const std::string& old, bool utf8, const Walk& walk,
                         std::mt19937_64& rng) {
  std::string s;
  switch (rng() % 7) {
    case 0:
      s = std::string(kStrings[rng() % std::size(kStrings)]);
      break;
    case 1:
      if (!walk.strings.empty()) {
        s = walk.strings[rng() % walk.strings.size()];
        break;
      }
      [[fallthrough]];
    case 2:
      s = old + std::string(kStrings[rng() % std::size(kStrings)]);
      break;
    case 3:
      s = std::string(1 + rng() % 300, static_cast<char>('a' + rng() % 26));
      break;
    default: {
      s = old;
      size_t max = old.size() * 2 + 16;
      s.resize(max);
      size_t n = LLVMFuzzerMutate(reinterpret_cast<uint8_t*>(s.data()), old.size(), max);
      s.resize(n);
      break;
    }
  }
  if (utf8) MakeUtf8(&s);
  return s;
}

bool IsUtf8Field(const FieldDescriptor* f) { return f->type() == FieldDescriptor::TYPE_STRING; }

void SetScalar(Message* m, const FieldDescriptor* f, int index, const Walk& walk,
               std::mt19937_64& rng) {
  const Reflection* r = m->GetReflection();
  bool rep = f->is_repeated();
#define WEFT_SCALAR(CPP, Type, N, Mutate)                                                       \
  case FieldDescriptor::CPP: {                                                                  \
    Type old = rep ? (index < 0 ? Type{} : r->GetRepeated##N(*m, f, index)) : r->Get##N(*m, f); \
    Type v = Mutate;                                                                            \
    if (!rep) {                                                                                 \
      r->Set##N(m, f, v);                                                                       \
    } else if (index < 0) {                                                                     \
      r->Add##N(m, f, v);                                                                       \
    } else {                                                                                    \
      r->SetRepeated##N(m, f, index, v);                                                        \
    }                                                                                           \
    return;                                                                                     \
  }
  switch (f->cpp_type()) {
    WEFT_SCALAR(CPPTYPE_INT32, int32_t, Int32, MutateInt(old, rng))
    WEFT_SCALAR(CPPTYPE_INT64, int64_t, Int64, MutateInt(old, rng))
    WEFT_SCALAR(CPPTYPE_UINT32, uint32_t, UInt32, MutateInt(old, rng))
    WEFT_SCALAR(CPPTYPE_UINT64, uint64_t, UInt64, MutateInt(old, rng))
    WEFT_SCALAR(CPPTYPE_DOUBLE, double, Double, MutateDouble(old, rng))
    WEFT_SCALAR(CPPTYPE_FLOAT, float, Float, ToFloat(MutateDouble(old, rng)))
    WEFT_SCALAR(CPPTYPE_BOOL, bool, Bool, !old)
    WEFT_SCALAR(CPPTYPE_STRING, std::string, String, MutateString(old, IsUtf8Field(f), walk, rng))
    case FieldDescriptor::CPPTYPE_ENUM: {
      const auto* e = f->enum_type();
      // Mostly a declared value; sometimes an undeclared number (proto3 enums are open).
      int v = rng() % 8 == 0 ? static_cast<int>(rng() % 64)
                             : e->value(static_cast<int>(rng() % e->value_count()))->number();
      if (!rep) {
        r->SetEnumValue(m, f, v);
      } else if (index < 0) {
        r->AddEnumValue(m, f, v);
      } else {
        r->SetRepeatedEnumValue(m, f, index, v);
      }
      return;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return;
  }
#undef WEFT_SCALAR
}

// Sets one field of a fresh submessage so an added element is rarely empty.
void Populate(Message* m, const Walk& walk, std::mt19937_64& rng) {
  const Descriptor* d = m->GetDescriptor();
  if (d->field_count() == 0) return;
  const FieldDescriptor* f = d->field(static_cast<int>(rng() % d->field_count()));
  if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
    if (f->is_repeated()) {
      m->GetReflection()->AddMessage(m, f);
    } else {
      m->GetReflection()->MutableMessage(m, f);
    }
  } else {
    SetScalar(m, f, -1, walk, rng);
  }
}

// Unpacks an Any whose type we link, mutates what it holds and packs it again. False when the
// Any names no type we know.
bool MutateAny(Message* any, std::mt19937_64& rng) {
  const Descriptor* d = any->GetDescriptor();
  const FieldDescriptor* url_field = d->FindFieldByName("type_url");
  const FieldDescriptor* value_field = d->FindFieldByName("value");
  const Reflection* r = any->GetReflection();
  if (rng() % 8 == 0) {
    r->SetString(any, url_field,
                 "type.googleapis.com/" + std::string(kAnyTypes[rng() % std::size(kAnyTypes)]));
  }
  std::string url = r->GetString(*any, url_field);
  const Descriptor* type = DescriptorPool::generated_pool()->FindMessageTypeByName(
      url.substr(url.rfind('/') == std::string::npos ? 0 : url.rfind('/') + 1));
  if (type == nullptr) return false;
  const Message* prototype = MessageFactory::generated_factory()->GetPrototype(type);
  if (prototype == nullptr) return false;
  std::unique_ptr<Message> inner(prototype->New());
  (void)inner->ParseFromString(r->GetString(*any, value_field));
  MutateOnce(inner.get(), rng);
  r->SetString(any, value_field, inner->SerializeAsString());
  return true;
}

}  // namespace

void QuietProtobufLogs() { google::protobuf::SetLogHandler(nullptr); }

void MutateOnce(Message* root, std::mt19937_64& rng) {
  Walk walk;
  Collect(root, 0, &walk);
  const Node node = walk.nodes[rng() % walk.nodes.size()];
  Message* m = node.message;
  if (IsAny(*m) && rng() % 4 != 0 && MutateAny(m, rng)) return;
  const Descriptor* d = m->GetDescriptor();
  if (d->field_count() == 0) return;
  const FieldDescriptor* f = d->field(static_cast<int>(rng() % d->field_count()));
  const Reflection* r = m->GetReflection();
  const bool is_message = f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE;
  if (f->is_repeated()) {
    int size = r->FieldSize(*m, f);
    switch (size > 0 ? rng() % 4 : 3) {
      case 0: {  // drop an element
        int i = static_cast<int>(rng() % size);
        r->SwapElements(m, f, i, size - 1);
        r->RemoveLast(m, f);
        return;
      }
      case 1:  // change an element (a message element changes when it is the node picked)
        if (!is_message) {
          SetScalar(m, f, static_cast<int>(rng() % size), walk, rng);
          return;
        }
        [[fallthrough]];
      case 2:  // duplicate an element: duplicate names, keys and matchers
        if (size < kMaxRepeated && is_message) {
          std::unique_ptr<Message> copy(
              r->GetRepeatedMessage(*m, f, static_cast<int>(rng() % size)).New());
          copy->CopyFrom(r->GetRepeatedMessage(*m, f, static_cast<int>(rng() % size)));
          r->AddMessage(m, f)->CopyFrom(*copy);
          return;
        }
        [[fallthrough]];
      default:  // add an element
        if (size >= kMaxRepeated) return;
        if (is_message) {
          Message* added = r->AddMessage(m, f);
          if (node.depth < kMaxDepth) Populate(added, walk, rng);
        } else {
          SetScalar(m, f, -1, walk, rng);
        }
        return;
    }
  }
  if (r->HasField(*m, f) && rng() % 6 == 0) {
    r->ClearField(m, f);
  } else if (is_message) {
    if (node.depth >= kMaxDepth) return;
    bool was_set = r->HasField(*m, f);
    Message* sub = r->MutableMessage(m, f);
    if (!was_set || rng() % 2 == 0) Populate(sub, walk, rng);
  } else {
    SetScalar(m, f, -1, walk, rng);
  }
}

size_t MutateSerialized(const Message& prototype, uint8_t* data, size_t size, size_t max_size,
                        unsigned int seed) {
  std::mt19937_64 rng(seed);
  if (rng() % 16 == 0) return LLVMFuzzerMutate(data, size, max_size);
  std::unique_ptr<Message> message(prototype.New());
  if (!message->ParseFromArray(data, static_cast<int>(size))) {
    // Not a message (a byte-level mutation broke it): start over from what parsed, or nothing.
    message->Clear();
  }
  int steps = 1 + static_cast<int>(rng() % 3);
  for (int i = 0; i < steps; ++i) MutateOnce(message.get(), rng);
  std::string out;
  if (!message->SerializeToString(&out) || out.size() > max_size) {
    return LLVMFuzzerMutate(data, size, max_size);
  }
  std::memcpy(data, out.data(), out.size());
  return out.size();
}

size_t CrossOverSerialized(const Message& prototype, const uint8_t* data1, size_t size1,
                           const uint8_t* data2, size_t size2, uint8_t* out, size_t max_out_size,
                           unsigned int seed) {
  std::mt19937_64 rng(seed);
  std::unique_ptr<Message> a(prototype.New());
  std::unique_ptr<Message> b(prototype.New());
  if (!a->ParseFromArray(data1, static_cast<int>(size1))) a->Clear();
  if (!b->ParseFromArray(data2, static_cast<int>(size2))) b->Clear();
  Walk wa;
  Walk wb;
  Collect(a.get(), 0, &wa);
  Collect(b.get(), 0, &wb);
  const Message* donor = wb.nodes[rng() % wb.nodes.size()].message;
  const Descriptor* type = donor->GetDescriptor();
  std::vector<Message*> same;
  std::vector<std::pair<Message*, const FieldDescriptor*>> holders;
  for (const Node& n : wa.nodes) {
    if (n.message->GetDescriptor() == type) same.push_back(n.message);
    const Descriptor* d = n.message->GetDescriptor();
    for (int i = 0; i < d->field_count(); ++i) {
      if (d->field(i)->message_type() == type) holders.emplace_back(n.message, d->field(i));
    }
  }
  if (!holders.empty() && (same.empty() || rng() % 2 == 0)) {
    auto [m, f] = holders[rng() % holders.size()];
    const Reflection* r = m->GetReflection();
    if (f->is_repeated()) {
      if (r->FieldSize(*m, f) < kMaxRepeated) r->AddMessage(m, f)->CopyFrom(*donor);
    } else {
      r->MutableMessage(m, f)->CopyFrom(*donor);
    }
  } else if (!same.empty()) {
    Message* target = same[rng() % same.size()];
    if (target == a.get()) {
      a->CopyFrom(*donor);
    } else {
      target->CopyFrom(*donor);
    }
  } else {
    return 0;
  }
  std::string serialized;
  if (!a->SerializeToString(&serialized) || serialized.size() > max_out_size) return 0;
  std::memcpy(out, serialized.data(), serialized.size());
  return serialized.size();
}

}  // namespace weft::fuzz
