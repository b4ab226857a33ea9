// Our proto subset leaves out upstream fields we do not implement, and protobuf keeps such
// fields of a received message as "unknown" rather than failing. For a filter configuration
// that would silently drop a setting (an RBAC policy's CEL `condition`, a fault filter's
// runtime override), so the filter checks call this to refuse them by field number.
#pragma once

#include <string_view>

#include "common/validation.h"
#include "google/protobuf/message.h"

namespace weft::xds {

inline constexpr std::string_view kNotInProtoSubset =
    "is not supported by weft (not in its proto subset)";

// Records "<path>: field number N <problem>" for every unknown field in `message` and in the
// messages it holds (repeated and map fields included, with their index or key in the path),
// under the current scope of `errors`.
void CheckNoUnknownFields(const google::protobuf::Message& message, ValidationErrors* errors,
                          std::string_view problem = kNotInProtoSubset);

}  // namespace weft::xds
