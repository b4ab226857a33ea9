// A minimal io_uring submission and completion queue, over raw syscalls.
//
// Why: on the VMs we measure on a system call costs ~1.2 µs, and a proxied request makes four
// (read and send on each side). Sends queued here go to the kernel in one io_uring_enter per
// event-loop batch. Why not liburing: Debian 12's default install lacks it, and the proxy needs
// a few opcodes, not a library.
//
// Threading: one thread owns a Uring (the kernel is told so where it supports it).
#pragma once

#include <linux/io_uring.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"

namespace weft::net {

class Uring {
 public:
  // Fails where the kernel refuses io_uring (too old, kernel.io_uring_disabled, a seccomp
  // filter); callers fall back to plain syscalls.
  // waits_in_enter: the creating thread is the only one to submit, and it learns of
  // completions only by waiting in Enter (not in epoll_wait); the kernel then defers completion
  // work to that wait (IORING_SETUP_DEFER_TASKRUN, 6.1) where it can.
  static absl::StatusOr<std::unique_ptr<Uring>> Create(unsigned entries,
                                                       bool waits_in_enter = false);
  ~Uring();
  Uring(const Uring&) = delete;
  Uring& operator=(const Uring&) = delete;

  // A zeroed submission entry to fill. If the queue is full, what is queued is submitted first.
  io_uring_sqe* Next();
  // Entries filled but not yet handed to the kernel.
  unsigned queued() const { return queued_; }
  // Submits the queued entries and, with wait_for > 0, waits for that many completions.
  // Returns false on an unexpected error (errno set).
  bool Enter(unsigned wait_for);
  // Appends the completions that are ready to `out` and frees their slots.
  void Reap(std::vector<io_uring_cqe>* out);
  // The kernel signals `fd` (an eventfd) when a request completes later than its submission,
  // so a thread asleep in epoll_wait learns of it.
  bool SignalAsyncCompletions(int fd);

 private:
  Uring() = default;

  int fd_ = -1;
  void* ring_ = nullptr;
  size_t ring_size_ = 0;
  io_uring_sqe* sqes_ = nullptr;
  size_t sqes_size_ = 0;
  unsigned* sq_head_ = nullptr;
  unsigned* sq_tail_ = nullptr;
  unsigned* sq_array_ = nullptr;
  unsigned sq_mask_ = 0;
  unsigned sq_entries_ = 0;
  unsigned* cq_head_ = nullptr;
  unsigned* cq_tail_ = nullptr;
  unsigned cq_mask_ = 0;
  io_uring_cqe* cqes_ = nullptr;
  unsigned queued_ = 0;
};

}  // namespace weft::net
