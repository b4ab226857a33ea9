// Leveled logging to stderr. A message is formatted only when its level is enabled, so a
// disabled WEFT_LOG(kDebug) on a hot path costs one branch.
#pragma once

#include <sstream>
#include <string_view>

namespace weft {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3, kOff = 4 };

void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
// "debug", "info", "warning", "error" or "off".
std::string_view LogLevelName(LogLevel level);
// Accepts debug|info|warning|error|off; returns false (and changes nothing) otherwise.
bool SetLogLevelFromString(std::string_view name);

namespace internal {
class LogMessage {
 public:
  LogMessage(LogLevel level, const char* file, int line);
  ~LogMessage();
  LogMessage(const LogMessage&) = delete;
  LogMessage& operator=(const LogMessage&) = delete;
  std::ostream& stream() { return stream_; }

 private:
  LogLevel level_;
  std::ostringstream stream_;
};
// Turns the stream expression into void so WEFT_LOG works as one expression (safe in an
// unbraced if/else).
struct Voidify {
  void operator&(std::ostream&) {}
};
}  // namespace internal

}  // namespace weft

#define WEFT_LOG(level)                             \
  (::weft::LogLevel::level < ::weft::GetLogLevel()) \
      ? (void)0                                     \
      : ::weft::internal::Voidify() &               \
            ::weft::internal::LogMessage(::weft::LogLevel::level, __FILE__, __LINE__).stream()
