#include "data-plane/net/event_loop.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace weft::net {

absl::StatusOr<std::unique_ptr<EventLoop>> EventLoop::Create() {
  int epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) return absl::InternalError(absl::StrCat("epoll_create1: ", strerror(errno)));
  int wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake < 0) {
    close(epfd);
    return absl::InternalError(absl::StrCat("eventfd: ", strerror(errno)));
  }
  std::unique_ptr<EventLoop> loop(new EventLoop(epfd, wake));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;  // null marks the wake-up fd
  epoll_ctl(epfd, EPOLL_CTL_ADD, wake, &ev);
  return loop;
}

EventLoop::~EventLoop() {
  deferred_.clear();
  close(wake_fd_);
  close(epoll_fd_);
}

bool EventLoop::Add(int fd, EventHandler* handler, uint32_t events) {
  epoll_event ev{};
  ev.events = events | EPOLLET;
  ev.data.ptr = handler;
  return epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) == 0;
}

void EventLoop::Remove(int fd) { epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr); }

void EventLoop::DeferDelete(std::unique_ptr<Deferred> object) {
  deferred_.push_back(std::move(object));
}

void EventLoop::Post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    posted_.push_back(std::move(fn));
  }
  uint64_t one = 1;
  ssize_t n = write(wake_fd_, &one, sizeof one);
  (void)n;  // EAGAIN means the counter is already non-zero: the loop will wake anyway
}

void EventLoop::SetTick(std::chrono::milliseconds interval, std::function<void()> fn) {
  tick_interval_ = interval;
  tick_ = std::move(fn);
  next_tick_ = Clock::now() + interval;
}

void EventLoop::Stop() {
  Post([this] { stop_ = true; });
}

void EventLoop::RunPosted() {
  uint64_t value;
  while (read(wake_fd_, &value, sizeof value) > 0) {
  }
  std::vector<std::function<void()>> tasks;
  {
    std::lock_guard<std::mutex> lock(mu_);
    tasks.swap(posted_);
  }
  for (auto& task : tasks) task();
}

void EventLoop::Run() {
  constexpr int kMaxEvents = 256;
  epoll_event events[kMaxEvents];
  for (;;) {
    if (stop_) break;
    int timeout_ms = -1;
    if (tick_) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(next_tick_ - Clock::now());
      timeout_ms = left.count() < 0 ? 0 : static_cast<int>(left.count()) + 1;
    }
    int n = epoll_wait(epoll_fd_, events, kMaxEvents, timeout_ms);
    now_ = Clock::now();
    for (int i = 0; i < n; ++i) {
      auto* handler = static_cast<EventHandler*>(events[i].data.ptr);
      if (handler == nullptr) {
        RunPosted();
      } else {
        handler->OnEvents(events[i].events);
      }
    }
    deferred_.clear();
    if (tick_ && now_ >= next_tick_) {
      next_tick_ = now_ + tick_interval_;
      tick_();
      deferred_.clear();
    }
  }
  RunPosted();  // run what was posted before Stop (e.g. final flushes)
  deferred_.clear();
}

}  // namespace weft::net
