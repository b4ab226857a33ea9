// Prints where weft-proxy's HTTP/1 parser ends each message of each input file, one line per
// file: "<path>\t<json>" (tests/differential/http1_framing.h). With --responses the first byte
// of a file picks the request method (0 GET, 1 HEAD, 2 POST, 3 CONNECT) as the response fuzz
// target reads it.
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

#include "tests/differential/http1_framing.h"

int main(int argc, char** argv) {
  bool responses = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--responses") {
      responses = true;
      continue;
    }
    std::ifstream in(argv[i], std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "http1_frames: cannot open %s\n", argv[i]);
      return 1;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    std::string data = ss.str();
    weft::http1::Framing framing;
    if (responses) {
      static constexpr std::string_view kMethods[] = {"GET", "HEAD", "POST", "CONNECT"};
      if (data.empty()) continue;
      framing = weft::http1::FrameResponses(std::string_view(data).substr(1),
                                            kMethods[static_cast<uint8_t>(data[0]) % 4]);
    } else {
      framing = weft::http1::FrameRequests(data);
    }
    std::printf("%s\t%s\n", argv[i], framing.ToJson().c_str());
  }
  return 0;
}
