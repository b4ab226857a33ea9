// Our proto subset leaves out upstream fields we do not implement, and protobuf keeps such
// fields of a received message as "unknown" rather than failing. For a filter configuration
// that would silently drop a setting (an RBAC policy's CEL `condition`, a fault filter's
// runtime override), so the filter checks call this to refuse them by field number.
#pragma once

#include "common/validation.h"
#include "google/protobuf/message.h"

namespace weft::xds {

// Records "<path>: field number N is not supported" for every unknown field in `message` and
// in the messages it holds (repeated and map fields included, with their index or key in the
// path), under the current scope of `errors`.
void CheckNoUnknownFields(const google::protobuf::Message& message, ValidationErrors* errors);

}  // namespace weft::xds
