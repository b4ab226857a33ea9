// The admin server's request parser (common/http/admin_server): framing, the request line,
// headers, query strings and percent-decoding, over a stream of pipelined requests as the
// server's loop consumes them.
#include <cstdint>
#include <string>
#include <string_view>

#include "common/http/admin_server.h"
#include "fuzz/check.h"

using weft::http::ParsedRequest;
using weft::http::ParseOutcome;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  for (int i = 0; i < 16; ++i) {
    size_t blank = in.find_first_not_of("\r\n");
    in.remove_prefix(blank == std::string_view::npos ? in.size() : blank);
    if (in.empty()) return 0;
    ParsedRequest parsed;
    ParseOutcome outcome = weft::http::ParseRequest(in, &parsed);
    if (outcome == ParseOutcome::kError) {
      WEFT_FUZZ_CHECK(parsed.error_status >= 400 && parsed.error_status < 600);
      WEFT_FUZZ_CHECK(!parsed.error_message.empty());
      return 0;
    }
    if (outcome != ParseOutcome::kDone) return 0;
    WEFT_FUZZ_CHECK(parsed.consumed > 0 && parsed.consumed <= in.size());
    const weft::http::Request& r = parsed.request;
    WEFT_FUZZ_CHECK(!r.method.empty());
    (void)r.Header("content-type");
    (void)r.Query("level", "info");
    // A parse of exactly the consumed bytes gives the same request.
    ParsedRequest again;
    WEFT_FUZZ_CHECK(weft::http::ParseRequest(in.substr(0, parsed.consumed), &again) ==
                    ParseOutcome::kDone);
    WEFT_FUZZ_CHECK(again.consumed == parsed.consumed && again.request.path == r.path &&
                    again.request.body == r.body);
    in.remove_prefix(parsed.consumed);
  }
  return 0;
}
