// Runs Prometheus's own checker (promtool, Debian package "prometheus") over an exposition, so
// the tests judge our text format with the real parser rather than with our reading of the spec.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

namespace weft::test {

struct PromtoolResult {
  bool ok = false;
  std::string output;
};

// nullopt when promtool is not installed.
inline std::optional<PromtoolResult> PromtoolCheck(const std::string& text) {
  const char* promtool = "/usr/bin/promtool";
  if (access(promtool, X_OK) != 0) return std::nullopt;
  char path[] = "/tmp/weft_metrics_XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) return PromtoolResult{false, "mkstemp failed"};
  bool written = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  close(fd);
  PromtoolResult result;
  if (!written) {
    unlink(path);
    return PromtoolResult{false, "write failed"};
  }
  std::string command = std::string(promtool) + " check metrics < " + path + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) {
    unlink(path);
    return PromtoolResult{false, "popen failed"};
  }
  char buf[512];
  while (size_t n = fread(buf, 1, sizeof(buf), pipe)) result.output.append(buf, n);
  int status = pclose(pipe);
  unlink(path);
  result.ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  return result;
}

}  // namespace weft::test
