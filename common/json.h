// Minimal JSON text helpers for hand-built debug output (admin endpoints), where pulling in a
// JSON library or protobuf's JSON printer would cost more than it gives.
#pragma once

#include <string>
#include <string_view>

namespace weft {

// Appends `s` as a quoted JSON string with the required escapes.
void AppendJsonString(std::string_view s, std::string* out);
std::string JsonString(std::string_view s);

}  // namespace weft
