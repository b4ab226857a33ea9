// HTTP/1 request heads and request streams (data-plane/http1): no crash, and framing that does
// not depend on how the bytes were split into reads.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "data-plane/http1/http1.h"
#include "fuzz/check.h"
#include "tests/differential/http1_framing.h"

using weft::http1::Limits;
using weft::http1::MessageHead;
using weft::http1::ParseError;
using weft::http1::ParseRequestHead;
using weft::http1::ParseStatus;

namespace {

ParseStatus Parse(std::string_view data, MessageHead* head) {
  ParseError error;
  head->headers.clear();
  ParseStatus s = ParseRequestHead(data, Limits{}, head, &error);
  if (s == ParseStatus::kError) WEFT_FUZZ_CHECK(error.status >= 400 && error.status < 600);
  return s;
}

bool Within(std::string_view outer, std::string_view inner) {
  return inner.empty() || (inner.data() >= outer.data() &&
                           inner.data() + inner.size() <= outer.data() + outer.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  std::string_view data(reinterpret_cast<const char*>(bytes), size);
  MessageHead head;
  ParseStatus full = Parse(data, &head);
  if (full == ParseStatus::kDone) {
    size_t h = head.head_size;
    WEFT_FUZZ_CHECK(h > 0 && h <= size);
    std::string_view used = data.substr(0, h);
    WEFT_FUZZ_CHECK(Within(used, head.method) && Within(used, head.target) &&
                    Within(used, head.host));
    for (const auto& header : head.headers) {
      WEFT_FUZZ_CHECK(Within(used, header.name) && Within(used, header.value));
    }
    // The head alone parses the same; any shorter prefix is incomplete (the proxy re-parses as
    // bytes arrive, so an earlier verdict would frame differently).
    MessageHead again;
    WEFT_FUZZ_CHECK(Parse(used, &again) == ParseStatus::kDone && again.head_size == h);
    WEFT_FUZZ_CHECK(again.body == head.body && again.content_length == head.content_length);
    WEFT_FUZZ_CHECK(Parse(data.substr(0, h - 1), &again) == ParseStatus::kIncomplete);
    if (h > 2) WEFT_FUZZ_CHECK(Parse(data.substr(0, h / 2), &again) == ParseStatus::kIncomplete);
  } else {
    // A prefix that frames a head means the whole input frames the same head.
    MessageHead prefix;
    if (size > 1 && Parse(data.substr(0, size / 2), &prefix) == ParseStatus::kDone) {
      WEFT_FUZZ_CHECK(false && "a prefix parsed but the whole input did not");
    }
  }
  weft::http1::Framing framing = weft::http1::FrameRequests(data);
  size_t last = 0;
  for (size_t end : framing.ends) {
    WEFT_FUZZ_CHECK(end > last && end <= size);
    last = end;
  }
  return 0;
}
