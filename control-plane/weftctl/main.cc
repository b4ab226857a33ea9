// weftctl: the operator's CLI for weft-cp. Commands arrive with the config-model issue.
#include <cstdio>
#include <string>

#include "common/flags.h"

int main(int argc, char** argv) {
  std::string server = "127.0.0.1:18000";
  weft::FlagSet flags("weftctl", "COMMAND [ARGS]");
  flags.String("server", &server, "weft-cp config API address");
  if (auto s = flags.Parse(argc, argv); !s.ok()) {
    std::fprintf(stderr, "weftctl: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  if (flags.help_requested() || flags.positional().empty()) {
    std::fputs(flags.Help().c_str(), stdout);
    return flags.help_requested() ? 0 : 2;
  }
  if (flags.positional()[0] == "version") {
    std::printf("weftctl %s\n", std::string(weft::WeftVersion()).c_str());
    return 0;
  }
  std::fprintf(stderr, "weftctl: unknown command \"%s\"\n", flags.positional()[0].c_str());
  return 2;
}
