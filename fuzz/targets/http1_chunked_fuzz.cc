// The chunked body scanner (data-plane/http1): no crash, and the same verdict however the body
// is split across reads. The first input byte seeds the split points.
#include <cstdint>
#include <string_view>
#include <vector>

#include "data-plane/http1/http1.h"
#include "fuzz/check.h"

using weft::http1::ChunkedScanner;

namespace {

struct Outcome {
  ChunkedScanner::Result result;
  size_t consumed;  // total body bytes, meaningful for kDone
  uint64_t payload;
};

Outcome ScanPieces(std::string_view data, const std::vector<size_t>& cuts) {
  ChunkedScanner scanner(1024);
  size_t at = 0;
  size_t total = 0;
  for (size_t i = 0; i <= cuts.size(); ++i) {
    size_t end = i < cuts.size() ? cuts[i] : data.size();
    size_t consumed = 0;
    ChunkedScanner::Result r = scanner.Scan(data.substr(at, end - at), &consumed);
    if (r == ChunkedScanner::Result::kError) return {r, 0, 0};
    if (r == ChunkedScanner::Result::kDone) {
      WEFT_FUZZ_CHECK(consumed <= end - at);
      return {r, total + consumed, scanner.payload_bytes()};
    }
    WEFT_FUZZ_CHECK(consumed == end - at);
    total += consumed;
    at = end;
  }
  return {ChunkedScanner::Result::kMore, total, scanner.payload_bytes()};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  if (size == 0) return 0;
  uint32_t seed = bytes[0] * 2654435761u + 1;
  std::string_view data(reinterpret_cast<const char*>(bytes + 1), size - 1);
  Outcome whole = ScanPieces(data, {});
  std::vector<size_t> cuts;
  for (size_t at = 0; at < data.size();) {
    seed = seed * 1103515245u + 12345u;
    at += 1 + (seed >> 16) % 7;
    if (at < data.size()) cuts.push_back(at);
  }
  Outcome split = ScanPieces(data, cuts);
  WEFT_FUZZ_CHECK(whole.result == split.result);
  if (whole.result == ChunkedScanner::Result::kDone) {
    WEFT_FUZZ_CHECK(whole.consumed == split.consumed && whole.payload == split.payload);
  }
  // One byte at a time, as a slow peer sends it.
  std::vector<size_t> every;
  for (size_t i = 1; i < data.size() && data.size() < 512; ++i) every.push_back(i);
  if (data.size() < 512) {
    Outcome bytewise = ScanPieces(data, every);
    WEFT_FUZZ_CHECK(whole.result == bytewise.result);
    if (whole.result == ChunkedScanner::Result::kDone) {
      WEFT_FUZZ_CHECK(whole.consumed == bytewise.consumed);
    }
  }
  return 0;
}
