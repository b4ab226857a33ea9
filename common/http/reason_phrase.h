// The standard reason phrase of an HTTP status code, shared by every place that writes a status
// line (the proxy, the admin server, the test upstream). No dependencies on purpose.
#pragma once

#include <string_view>

namespace weft::http {

// "OK", "Bad Request", ...; "Unknown" for codes without a registered phrase.
std::string_view ReasonPhrase(int status);

}  // namespace weft::http
