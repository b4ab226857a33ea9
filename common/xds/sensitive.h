// Key material in xDS resources: the fields Envoy marks `(udpa.annotations.sensitive)` — a TLS
// certificate's private key, its password and PKCS#12 bundle, a private key provider's config,
// a generic secret, session ticket keys. weft-cp serves resources holding such material inline
// only where an operator scoped them (control-plane.md, "Secrets"), and no debug or dump output
// of either program shows it: it is redacted as Envoy's /config_dump does.
#pragma once

#include <string>
#include <vector>

#include "google/protobuf/any.pb.h"
#include "google/protobuf/message.h"

namespace weft::xds {

inline constexpr std::string_view kRedacted = "[redacted]";

// Paths of the sensitive fields in `message` (and in every Any it holds whose type is known)
// that carry the material itself, inline (`inline_bytes`, `inline_string`, or a private key
// provider's typed config), e.g. "tls_certificate.private_key". A `filename` or
// `environment_variable` names where the proxy finds the key on its own host and is not key
// material.
std::vector<std::string> InlineKeyMaterial(const google::protobuf::Message& message);
std::vector<std::string> InlineKeyMaterial(const google::protobuf::Any& resource);

// Replaces every string and bytes field under a sensitive field with "[redacted]", as Envoy
// does (filenames included: they say where keys live), in `message` and inside the Anys it
// holds. Returns whether anything was redacted.
bool RedactSensitive(google::protobuf::Message* message);
bool RedactSensitive(google::protobuf::Any* resource);

}  // namespace weft::xds
