#include "tests/support/process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace weft::test {

namespace {

std::string ErrnoText(std::string_view what) {
  return std::string(what) + ": " + std::strerror(errno);
}

}  // namespace

std::unique_ptr<Subprocess> Subprocess::Start(const std::vector<std::string>& argv,
                                              const std::map<std::string, std::string>& env,
                                              const std::string& log_path, std::string* error) {
  if (argv.empty()) {
    *error = "empty argv";
    return nullptr;
  }
  // Everything the child needs is built before fork: after fork only async-signal-safe calls are
  // allowed, and gRPC threads may hold the allocator lock.
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view entry(*e);
    std::string key(entry.substr(0, entry.find('=')));
    if (env.count(key) == 0) env_strings.emplace_back(entry);
  }
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_copy = argv;
  std::vector<char*> args;
  for (auto& a : argv_copy) args.push_back(a.data());
  args.push_back(nullptr);

  int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    *error = ErrnoText("open " + log_path);
    return nullptr;
  }
  // The child reports an exec failure through this pipe; on success exec closes it (CLOEXEC).
  int exec_pipe[2];
  if (::pipe2(exec_pipe, O_CLOEXEC) != 0) {
    *error = ErrnoText("pipe2");
    ::close(log_fd);
    return nullptr;
  }
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    *error = ErrnoText("fork");
    ::close(log_fd);
    ::close(exec_pipe[0]);
    ::close(exec_pipe[1]);
    return nullptr;
  }
  if (pid == 0) {
    // If the test binary dies (crash, ctest timeout), the server must not outlive it.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
    ::execve(args[0], args.data(), envp.data());
    int err = errno;
    ssize_t ignored = ::write(exec_pipe[1], &err, sizeof(err));
    (void)ignored;
    ::_exit(127);
  }
  ::close(log_fd);
  ::close(exec_pipe[1]);
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(exec_pipe[0], &child_errno, sizeof(child_errno));
  } while (n < 0 && errno == EINTR);
  ::close(exec_pipe[0]);
  if (n == sizeof(child_errno)) {
    ::waitpid(pid, nullptr, 0);
    *error = "exec " + argv[0] + ": " + std::strerror(child_errno);
    return nullptr;
  }
  return std::unique_ptr<Subprocess>(new Subprocess(pid, log_path));
}

Subprocess::~Subprocess() {
  if (!exit_status_) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
}

bool Subprocess::Kill(int signal) {
  if (exit_status_) return false;
  return ::kill(pid_, signal) == 0;
}

std::optional<int> Subprocess::Wait(std::chrono::milliseconds timeout) {
  if (exit_status_) return exit_status_;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exit_status_ = status;
      return exit_status_;
    }
    if (r < 0 && errno != EINTR) return std::nullopt;
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

bool Subprocess::Running() { return !Wait(std::chrono::milliseconds(0)).has_value(); }

std::string Subprocess::Log() const { return ReadFile(log_path_).value_or(""); }

std::string Subprocess::LogTail(size_t max_bytes) const {
  std::string log = Log();
  if (log.size() <= max_bytes) return log;
  return "...\n" + log.substr(log.size() - max_bytes);
}

std::string BinDir() {
  if (const char* dir = std::getenv("WEFT_BIN_DIR"); dir != nullptr && *dir != '\0') return dir;
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return ".";
  return exe.parent_path().string();
}

TempDir::TempDir(std::string_view prefix) {
  const char* tmp = std::getenv("TMPDIR");
  std::string templ = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/" +
                      std::string(prefix) + "-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) {
    std::fprintf(stderr, "mkdtemp %s: %s\n", templ.c_str(), std::strerror(errno));
    std::abort();
  }
  path_ = templ;
}

TempDir::~TempDir() {
  if (std::getenv("WEFT_TEST_KEEP_TMP") != nullptr) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::Join(std::string_view name) const { return path_ + "/" + std::string(name); }

bool WaitFor(const std::function<bool()>& predicate, std::chrono::milliseconds timeout,
             std::chrono::milliseconds interval) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (predicate()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return predicate();
    std::this_thread::sleep_for(interval);
  }
}

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

bool WriteFileAtomic(const std::string& path, std::string_view contents) {
  static std::atomic<int> counter{0};
  std::filesystem::path target(path);
  std::string tmp =
      (target.parent_path() / ("." + target.filename().string() + "." + std::to_string(::getpid()) +
                               "." + std::to_string(counter++) + ".tmp"))
          .string();
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  size_t off = 0;
  while (off < contents.size()) {
    ssize_t n = ::write(fd, contents.data() + off, contents.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      ::unlink(tmp.c_str());
      return false;
    }
    off += static_cast<size_t>(n);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return false;
  }
  return true;
}

namespace {}  // namespace

std::optional<int> JsonIntField(std::string_view json, std::string_view key) {
  std::string quoted = "\"" + std::string(key) + "\"";
  size_t at = json.find(quoted);
  if (at == std::string_view::npos) return std::nullopt;
  at = json.find(':', at + quoted.size());
  if (at == std::string_view::npos) return std::nullopt;
  ++at;
  while (at < json.size() && json[at] == ' ') ++at;
  if (at >= json.size() || json[at] < '0' || json[at] > '9') return std::nullopt;
  int value = 0;
  while (at < json.size() && json[at] >= '0' && json[at] <= '9')
    value = value * 10 + (json[at++] - '0');
  return value;
}

std::optional<WeftCp> StartWeftCp(const std::string& config_dir,
                                  const std::vector<std::string>& extra_args, std::string* error) {
  WeftCp cp;
  cp.work = std::make_unique<TempDir>("weft-cp");
  std::string ready_file = cp.work->Join("ready.json");
  // The TSan run points this at the normal build's weft-cp (tools/test.sh): gRPC's callback
  // API, inlined from headers over an uninstrumented libgrpc, drowns a TSan-built weft-cp in
  // false reports, while the proxy's threads are what that run is for.
  const char* cp_bin = std::getenv("WEFT_CP_BIN");
  std::vector<std::string> argv = {cp_bin != nullptr ? cp_bin : BinDir() + "/weft-cp",
                                   "--config-dir",
                                   config_dir,
                                   "--xds-address",
                                   "127.0.0.1:0",
                                   "--admin-address",
                                   "127.0.0.1:0",
                                   "--api-address",
                                   "127.0.0.1:0",
                                   "--ready-file",
                                   ready_file};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  cp.process = Subprocess::Start(argv, {}, cp.work->Join("weft-cp.log"), error);
  if (!cp.process) return std::nullopt;
  bool ready = WaitFor(
      [&] {
        if (!cp.process->Running()) return true;
        auto text = ReadFile(ready_file);
        if (!text) return false;
        auto xds = JsonIntField(*text, "xds_port");
        auto admin = JsonIntField(*text, "admin_port");
        auto api = JsonIntField(*text, "api_port");
        if (!xds || !admin || !api) return false;
        cp.xds_port = *xds;
        cp.admin_port = *admin;
        cp.api_port = *api;
        return true;
      },
      std::chrono::seconds(10), std::chrono::milliseconds(20));
  if (!cp.process->Running()) {
    *error = "weft-cp exited before becoming ready (status " +
             std::to_string(cp.process->Wait(std::chrono::milliseconds(0)).value_or(-1)) +
             "); log:\n" + cp.process->LogTail();
    return std::nullopt;
  }
  if (!ready || cp.xds_port == 0) {
    *error = "weft-cp wrote no valid ready file within 10 s; log:\n" + cp.process->LogTail();
    return std::nullopt;
  }
  return cp;
}

namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Decodes a chunked body; returns nullopt if it is incomplete.
std::optional<std::string> Dechunk(std::string_view raw) {
  std::string out;
  size_t pos = 0;
  while (true) {
    size_t eol = raw.find("\r\n", pos);
    if (eol == std::string_view::npos) return std::nullopt;
    size_t size = std::strtoul(std::string(raw.substr(pos, eol - pos)).c_str(), nullptr, 16);
    pos = eol + 2;
    if (size == 0) return out;
    if (raw.size() < pos + size + 2) return std::nullopt;
    out.append(raw.substr(pos, size));
    pos += size + 2;
  }
}

}  // namespace

HttpResponse HttpGet(int port, std::string_view path, std::chrono::milliseconds timeout) {
  HttpResponse response;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return response;
  timeval tv{};
  tv.tv_sec = timeout.count() / 1000;
  tv.tv_usec = (timeout.count() % 1000) * 1000;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return response;
  }
  std::string request =
      "GET " + std::string(path) + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    ::close(fd);
    return response;
  }
  std::string raw;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[16384];
  // Stops at EOF, or as soon as the body is complete (a server may ignore Connection: close).
  while (std::chrono::steady_clock::now() < deadline) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    raw.append(buf, static_cast<size_t>(n));
    size_t header_end = raw.find("\r\n\r\n");
    if (header_end == std::string::npos) continue;
    std::string headers = Lower(std::string_view(raw).substr(0, header_end));
    std::string_view body = std::string_view(raw).substr(header_end + 4);
    if (size_t cl = headers.find("\r\ncontent-length:"); cl != std::string::npos) {
      size_t len = std::strtoul(headers.c_str() + cl + 17, nullptr, 10);
      if (body.size() >= len) break;
    } else if (headers.find("transfer-encoding: chunked") != std::string::npos) {
      if (Dechunk(body)) break;
    }
  }
  ::close(fd);
  size_t header_end = raw.find("\r\n\r\n");
  if (header_end == std::string::npos || raw.compare(0, 5, "HTTP/") != 0) return response;
  response.headers = raw.substr(0, header_end);
  size_t sp = raw.find(' ');
  response.status = std::atoi(raw.c_str() + sp + 1);
  std::string body = raw.substr(header_end + 4);
  std::string lower_headers = Lower(response.headers);
  if (size_t cl = lower_headers.find("\r\ncontent-length:"); cl != std::string::npos) {
    size_t len = std::strtoul(lower_headers.c_str() + cl + 17, nullptr, 10);
    if (body.size() > len) body.resize(len);
  } else if (lower_headers.find("transfer-encoding: chunked") != std::string::npos) {
    body = Dechunk(body).value_or(body);
  }
  response.body = std::move(body);
  return response;
}

namespace {

// Parses `{a="x",b="y"}` (escapes \" \\ \n) into a map; returns false on malformed input.
bool ParseLabels(std::string_view s, std::map<std::string, std::string>* out) {
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ',' || s[i] == ' ')) ++i;
    if (i >= s.size()) break;
    size_t eq = s.find('=', i);
    if (eq == std::string_view::npos || eq + 1 >= s.size() || s[eq + 1] != '"') return false;
    std::string key(s.substr(i, eq - i));
    std::string value;
    size_t j = eq + 2;
    for (; j < s.size() && s[j] != '"'; ++j) {
      if (s[j] == '\\' && j + 1 < s.size()) {
        ++j;
        value.push_back(s[j] == 'n' ? '\n' : s[j]);
      } else {
        value.push_back(s[j]);
      }
    }
    if (j >= s.size()) return false;
    (*out)[key] = value;
    i = j + 1;
  }
  return true;
}

}  // namespace

std::optional<double> MetricValue(std::string_view text, std::string_view name,
                                  const std::map<std::string, std::string>& labels) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (line.empty() || line[0] == '#') continue;
    if (line.substr(0, name.size()) != name) continue;
    std::string_view rest = line.substr(name.size());
    std::map<std::string, std::string> found;
    if (!rest.empty() && rest[0] == '{') {
      size_t close = rest.rfind('}');
      if (close == std::string_view::npos) continue;
      if (!ParseLabels(rest.substr(1, close - 1), &found)) continue;
      rest = rest.substr(close + 1);
    } else if (rest.empty() || rest[0] != ' ') {
      continue;  // a longer metric name sharing this prefix
    }
    bool match = true;
    for (const auto& [k, v] : labels) {
      auto it = found.find(k);
      if (it == found.end() || it->second != v) match = false;
    }
    if (!match) continue;
    while (!rest.empty() && rest[0] == ' ') rest.remove_prefix(1);
    std::string value(rest.substr(0, rest.find(' ')));
    if (value == "+Inf") return HUGE_VAL;
    char* end = nullptr;
    double d = std::strtod(value.c_str(), &end);
    if (end == value.c_str()) continue;
    return d;
  }
  return std::nullopt;
}

}  // namespace weft::test
