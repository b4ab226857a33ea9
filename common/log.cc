#include "common/log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <utility>

namespace weft {
namespace {
std::atomic<LogLevel> g_level{LogLevel::kInfo};

const char* LevelTag(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "D";
    case LogLevel::kInfo:
      return "I";
    case LogLevel::kWarning:
      return "W";
    case LogLevel::kError:
      return "E";
    case LogLevel::kOff:
      break;
  }
  return "?";
}

constexpr std::pair<std::string_view, LogLevel> kNames[] = {{"debug", LogLevel::kDebug},
                                                            {"info", LogLevel::kInfo},
                                                            {"warning", LogLevel::kWarning},
                                                            {"error", LogLevel::kError},
                                                            {"off", LogLevel::kOff}};
}  // namespace

void SetLogLevel(LogLevel level) { g_level.store(level, std::memory_order_relaxed); }
LogLevel GetLogLevel() { return g_level.load(std::memory_order_relaxed); }

std::string_view LogLevelName(LogLevel level) {
  for (const auto& [n, l] : kNames) {
    if (l == level) return n;
  }
  return "unknown";
}

bool SetLogLevelFromString(std::string_view name) {
  for (const auto& [n, l] : kNames) {
    if (n == name) {
      SetLogLevel(l);
      return true;
    }
  }
  return false;
}

namespace internal {
LogMessage::LogMessage(LogLevel level, const char* file, int line) : level_(level) {
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm;
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%H:%M:%S", &tm);
  const char* base = std::strrchr(file, '/');
  stream_ << LevelTag(level) << ' ' << buf << '.' << (ms < 100 ? (ms < 10 ? "00" : "0") : "") << ms
          << ' ' << (base ? base + 1 : file) << ':' << line << "] ";
}

LogMessage::~LogMessage() {
  stream_ << '\n';
  std::string s = stream_.str();
  // One write per line keeps lines from different threads from interleaving.
  std::fwrite(s.data(), 1, s.size(), stderr);
  (void)level_;
}
}  // namespace internal

}  // namespace weft
