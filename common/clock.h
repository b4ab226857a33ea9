// Time sources. Code that schedules or measures takes a Clock so tests can drive time by hand.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

namespace weft {

class Clock {
 public:
  using Duration = std::chrono::nanoseconds;
  using TimePoint = std::chrono::time_point<std::chrono::steady_clock, Duration>;
  virtual ~Clock() = default;
  // Monotonic time, for intervals and deadlines.
  virtual TimePoint Now() const = 0;
  // Wall time since the Unix epoch, for logs and reports.
  virtual std::chrono::system_clock::time_point WallNow() const = 0;
};

class RealClock final : public Clock {
 public:
  TimePoint Now() const override { return std::chrono::steady_clock::now(); }
  std::chrono::system_clock::time_point WallNow() const override {
    return std::chrono::system_clock::now();
  }
  // Process-wide instance; stateless, so sharing it is safe.
  static RealClock& Get();
};

// A clock that moves only when told to. Thread-safe: tests may advance it while workers read.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(Duration start = std::chrono::seconds(1000)) : now_ns_(start.count()) {}
  TimePoint Now() const override { return TimePoint(Duration(now_ns_.load())); }
  std::chrono::system_clock::time_point WallNow() const override {
    return std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(Duration(now_ns_.load())));
  }
  void Advance(Duration d) { now_ns_.fetch_add(d.count()); }

 private:
  std::atomic<int64_t> now_ns_;
};

// RFC 3339 in UTC with milliseconds ("2026-12-03T16:40:00.123Z"), for logs and admin output.
std::string Iso8601(std::chrono::system_clock::time_point t);

}  // namespace weft
