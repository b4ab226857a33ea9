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
#include <string>
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

class Buffer;
class Uring;

// Work that runs once the handler of the current event has returned (also after posted tasks
// and the tick). A connection written to several times during one event (a response head, then
// its body, often from another connection's event) sends once, after all of them. An object
// must leave the queue before it is destroyed (EventLoop::CancelAfterEvent).
class AfterEvent {
 public:
  virtual ~AfterEvent() = default;
  virtual void RunAfterEvent() = 0;

 private:
  friend class EventLoop;
  bool after_event_queued_ = false;
};

// How a loop sends. kUring queues every send on an io_uring and hands a whole batch to the
// kernel in one system call. kAuto does so where the kernel allows io_uring, except that a batch
// of one socket event sends directly (one call either way, and send(2) is cheaper); without
// io_uring it is kSyscalls: send(2) for everything.
enum class SendMode { kAuto, kUring, kSyscalls };

class EventLoop {
 public:
  using Clock = std::chrono::steady_clock;

  // kUring fails where the kernel refuses io_uring; kAuto then sends with plain syscalls.
  static absl::StatusOr<std::unique_ptr<EventLoop>> Create(SendMode send_mode = SendMode::kAuto);
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Edge-triggered registration: handlers must read and write until EAGAIN (or remember that
  // they stopped early and retry themselves).
  bool Add(int fd, EventHandler* handler, uint32_t events = EPOLLIN | EPOLLOUT | EPOLLRDHUP);
  void Remove(int fd);
  void DeferDelete(std::unique_ptr<Deferred> object);

  // Socket output, for fds registered with Add. All of a socket's output, its half-close and
  // its close must go through these three so they stay in order.
  //
  // Write hands `data` to the kernel and leaves what it could not take in `data`; the handler
  // gets EPOLLOUT when it may write again. On the io_uring path the bytes leave `data` at once
  // (the buffer's storage moves to the pending send) and go out with the batch; while a send is
  // pending, more data stays in `data` until EPOLLOUT, which comes whenever a send completes.
  // A send that fails later is reported as EPOLLERR | EPOLLHUP. Returns false on an immediate
  // fatal error.
  bool Write(int fd, Buffer& data);
  // shutdown(SHUT_WR), after any pending send.
  void ShutdownWrite(int fd);
  // Remove + close. Like close(2) after send(2), bytes the socket had no room for are dropped.
  void Close(int fd);
  // A send of this socket's is still with the kernel (io_uring path only).
  bool Sending(int fd) const {
    return fd >= 0 && static_cast<size_t>(fd) < sending_.size() && sending_[fd] != nullptr;
  }
  // Bytes of this socket's still with the kernel (io_uring path; 0 otherwise): output that
  // counts against a connection's write watermarks as much as its own buffer does.
  size_t SendingBytes(int fd) const;
  bool uses_uring() const { return ring_ != nullptr; }

  // Queues `work` to run after the current event (at most once until it ran).
  void RunAfterEvent(AfterEvent* work);
  void CancelAfterEvent(AfterEvent* work);
  // Why kAuto sends with plain syscalls (empty when it uses io_uring, or was not asked to).
  const std::string& uring_unavailable() const { return uring_unavailable_; }

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
  struct PendingSend;

  EventLoop(int epoll_fd, int wake_fd);
  void RunPosted();
  void QueueSend(PendingSend* send);
  // Queues the rest of a send the kernel took only part of; false when it is done.
  bool ResumeShortSend(PendingSend* send, int result);
  // Submits queued sends and handles completions until neither is left.
  void DrainSends();
  void Deliver(int fd, uint32_t events);
  void RunAfterEventQueue();

  int epoll_fd_;
  int wake_fd_;
  Clock::time_point now_ = Clock::now();
  std::vector<std::unique_ptr<Deferred>> deferred_;
  std::vector<AfterEvent*> after_event_;
  std::chrono::milliseconds tick_interval_{100};
  std::function<void()> tick_;
  Clock::time_point next_tick_ = Clock::now();

  // The io_uring send path (null: plain syscalls). Handlers by fd, to deliver send results;
  // the pending send by fd (at most one per socket keeps the bytes in order).
  std::unique_ptr<Uring> ring_;
  std::vector<EventHandler*> handlers_;
  std::vector<PendingSend*> sending_;
  std::vector<std::unique_ptr<PendingSend>> spare_sends_;
  size_t sends_in_flight_ = 0;
  bool ring_always_ = false;  // kUring: no direct sends
  std::string uring_unavailable_;
  bool lone_event_ = false;  // this batch holds one socket event: send directly

  std::mutex mu_;  // guards posted_
  std::vector<std::function<void()>> posted_;
  bool stop_ = false;  // set by a posted task, so only the loop thread touches it
};

}  // namespace weft::net
