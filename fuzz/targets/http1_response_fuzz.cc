// HTTP/1 response heads and response streams (data-plane/http1). The first input byte picks the
// request method the response answers (HEAD and CONNECT change framing).
#include <cstdint>
#include <string_view>

#include "data-plane/http1/http1.h"
#include "fuzz/check.h"
#include "tests/differential/http1_framing.h"

using weft::http1::Limits;
using weft::http1::MessageHead;
using weft::http1::ParseError;
using weft::http1::ParseResponseHead;
using weft::http1::ParseStatus;

namespace {

constexpr std::string_view kMethods[] = {"GET", "HEAD", "POST", "CONNECT"};

ParseStatus Parse(std::string_view data, std::string_view method, MessageHead* head) {
  ParseError error;
  head->headers.clear();
  ParseStatus s = ParseResponseHead(data, method, Limits{}, head, &error);
  if (s == ParseStatus::kError) WEFT_FUZZ_CHECK(error.status >= 400 && error.status < 600);
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  if (size == 0) return 0;
  std::string_view method = kMethods[bytes[0] % 4];
  std::string_view data(reinterpret_cast<const char*>(bytes + 1), size - 1);
  MessageHead head;
  if (Parse(data, method, &head) == ParseStatus::kDone) {
    size_t h = head.head_size;
    WEFT_FUZZ_CHECK(h > 0 && h <= data.size());
    WEFT_FUZZ_CHECK(head.status >= 100 && head.status <= 999);
    MessageHead again;
    WEFT_FUZZ_CHECK(Parse(data.substr(0, h), method, &again) == ParseStatus::kDone &&
                    again.head_size == h && again.body == head.body);
    WEFT_FUZZ_CHECK(Parse(data.substr(0, h - 1), method, &again) == ParseStatus::kIncomplete);
    if (head.status < 200 || head.status == 204 || head.status == 304 || method == "HEAD") {
      WEFT_FUZZ_CHECK(head.body == weft::http1::BodyKind::kNone);
    }
  }
  weft::http1::Framing framing = weft::http1::FrameResponses(data, method);
  size_t last = 0;
  for (size_t end : framing.ends) {
    WEFT_FUZZ_CHECK(end > last && end <= data.size());
    last = end;
  }
  return 0;
}
