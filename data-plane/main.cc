// weft-proxy: the sidecar. Until the proxy-core issue lands it only knows its flags.
#include <cstdio>
#include <string>

#include "common/flags.h"

int main(int argc, char** argv) {
  std::string bootstrap;
  weft::FlagSet flags("weft-proxy", "--bootstrap FILE");
  flags.String("bootstrap", &bootstrap,
               "bootstrap YAML: node, xDS servers, admin, static resources");
  if (auto s = flags.Parse(argc, argv); !s.ok()) {
    std::fprintf(stderr, "weft-proxy: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  if (flags.help_requested()) {
    std::fputs(flags.Help().c_str(), stdout);
    return 0;
  }
  std::printf("weft-proxy %s\n", std::string(weft::WeftVersion()).c_str());
  return 0;
}
