// Process and filesystem plumbing for end-to-end tests: start real binaries on loopback ports
// chosen at run time, wait for them without fixed sleeps, and always clean up, even when a
// REQUIRE aborts the test case half-way.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace weft::test {

// A child process whose stdout and stderr go to a log file. The destructor SIGKILLs and reaps it,
// so a failed assertion never leaks a server that keeps a port or a watched directory busy.
class Subprocess {
 public:
  // Returns nullptr (with the reason in *error) when fork/exec fails. `env` is added to (and
  // overrides) the parent's environment.
  static std::unique_ptr<Subprocess> Start(const std::vector<std::string>& argv,
                                           const std::map<std::string, std::string>& env,
                                           const std::string& log_path, std::string* error);
  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }
  // False once the process has been reaped.
  bool Kill(int signal);
  // Waits up to `timeout` for exit; returns the raw wait status, or nullopt if still running.
  std::optional<int> Wait(std::chrono::milliseconds timeout);
  bool Running();
  // The last `max_bytes` of the log, for failure messages.
  std::string LogTail(size_t max_bytes = 6000) const;
  std::string Log() const;

 private:
  Subprocess(pid_t pid, std::string log_path) : pid_(pid), log_path_(std::move(log_path)) {}
  pid_t pid_;
  std::string log_path_;
  std::optional<int> exit_status_;
};

// The directory holding the built binaries: $WEFT_BIN_DIR, else the directory of this test
// executable (CMake puts tests and binaries together in build/bin).
std::string BinDir();

// A fresh directory under $TMPDIR (or /tmp), removed recursively on destruction unless
// WEFT_TEST_KEEP_TMP is set (useful to read logs after a failure).
class TempDir {
 public:
  explicit TempDir(std::string_view prefix = "weft-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string Join(std::string_view name) const;

 private:
  std::string path_;
};

// Polls `predicate` every `interval` until it holds or `timeout` passes; returns its last value.
bool WaitFor(const std::function<bool()>& predicate, std::chrono::milliseconds timeout,
             std::chrono::milliseconds interval = std::chrono::milliseconds(10));

std::optional<std::string> ReadFile(const std::string& path);
// Writes a hidden temporary next to `path`, then renames it over `path`, so a watcher never sees
// a half-written file. The temporary is dot-prefixed and ends in ".tmp" so a directory watcher
// that filters by extension does not treat it as config.
bool WriteFileAtomic(const std::string& path, std::string_view contents);

// The non-negative integer after "key": in `json` (the first occurrence), e.g. a port from a
// ready file. Deliberately not protobuf's JSON parser: the TSan-labelled e2e tests use it, and
// protobuf maps in Debian's uninstrumented libprotobuf crash under TSan.
std::optional<int> JsonIntField(std::string_view json, std::string_view key);

// A running weft-cp with the ports it reported in its ready file.
struct WeftCp {
  std::unique_ptr<TempDir> work;  // ready file and log live here
  std::unique_ptr<Subprocess> process;
  int xds_port = 0;
  int admin_port = 0;
  int api_port = 0;  // weft.config.v1.ConfigService (weftctl --server)
  std::string LogTail(size_t max_bytes = 6000) const {
    return process ? process->LogTail(max_bytes) : std::string();
  }
};

// Starts build/bin/weft-cp with --config-dir, loopback ports picked by the kernel and a ready
// file, and waits up to 10 s for the ready file. Returns nullopt (reason in *error, including the
// log tail) if it exits or never becomes ready.
std::optional<WeftCp> StartWeftCp(const std::string& config_dir,
                                  const std::vector<std::string>& extra_args, std::string* error);

struct HttpResponse {
  int status = 0;  // 0 when the connection or the parse failed
  std::string headers;
  std::string body;
};

// One blocking HTTP/1.1 GET to 127.0.0.1:port with Connection: close. Understands
// Content-Length, chunked and read-to-EOF bodies. Meant for admin endpoints, not for load.
HttpResponse HttpGet(int port, std::string_view path,
                     std::chrono::milliseconds timeout = std::chrono::seconds(5));

// Value of one sample in Prometheus text format: the first line for metric `name` whose labels
// include all of `labels`. nullopt when absent.
std::optional<double> MetricValue(std::string_view text, std::string_view name,
                                  const std::map<std::string, std::string>& labels = {});

}  // namespace weft::test
