// One worker's event loop: edge-triggered epoll, a cross-thread task queue and a coarse tick.
//
// Why not Boost.Asio: see docs/DESIGN.md ("Data plane: own epoll loop"). In short, the proxy
// needs only readiness on a few fd kinds, one timer resolution (the tick) and a wake-up, and a
// loop this size keeps the hot path free of per-operation allocations and keeps Asio's ~8 s per
// translation unit out of the build.
//
// Threading: everything except Post() and Stop() must be called on the loop's own thread.
#pragma once

#include <sys/epoll.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/status/statusor.h"

namespace weft::net {

class EventHandler {
 public:
  virtual ~EventHandler() = default;
  // `events` is the epoll mask (EPOLLIN, EPOLLOUT, EPOLLRDHUP, EPOLLHUP, EPOLLERR).
  virtual void OnEvents(uint32_t events) = 0;
};

// Objects whose destruction must wait until the current batch of events has been dispatched,
// because a later event in the same batch may still point at them.
class Deferred {
 public:
  virtual ~Deferred() = default;
};

class EventLoop {
 public:
  using Clock = std::chrono::steady_clock;

  static absl::StatusOr<std::unique_ptr<EventLoop>> Create();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Edge-triggered registration: handlers must read and write until EAGAIN (or remember that
  // they stopped early and retry themselves).
  bool Add(int fd, EventHandler* handler, uint32_t events = EPOLLIN | EPOLLOUT | EPOLLRDHUP);
  void Remove(int fd);
  void DeferDelete(std::unique_ptr<Deferred> object);

  // Runs `fn` on the loop thread. Thread-safe.
  void Post(std::function<void()> fn);
  // Calls `fn` about every `interval` on the loop thread (timeouts, flushing logs).
  void SetTick(std::chrono::milliseconds interval, std::function<void()> fn);

  // Runs until Stop(); returns on the loop's thread.
  void Run();
  void Stop();  // thread-safe

  // Time at the start of the current iteration: cheap, and consistent within a batch.
  Clock::time_point now() const { return now_; }

 private:
  EventLoop(int epoll_fd, int wake_fd) : epoll_fd_(epoll_fd), wake_fd_(wake_fd) {}
  void RunPosted();

  int epoll_fd_;
  int wake_fd_;
  Clock::time_point now_ = Clock::now();
  std::vector<std::unique_ptr<Deferred>> deferred_;
  std::chrono::milliseconds tick_interval_{100};
  std::function<void()> tick_;
  Clock::time_point next_tick_ = Clock::now();

  std::mutex mu_;  // guards posted_
  std::vector<std::function<void()>> posted_;
  bool stop_ = false;  // set by a posted task, so only the loop thread touches it
};

}  // namespace weft::net
