#include "data-plane/net/uring.h"

#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace weft::net {
namespace {

// Older kernels reject flags they do not know: try the richest set first.
// SUBMIT_ALL (5.18): one bad entry does not stop the rest of a batch. SINGLE_ISSUER and
// DEFER_TASKRUN only on request: a worker's ring is created on the thread that starts the worker,
// not the one that runs it, and the worker waits in epoll_wait, where deferred work never runs.
constexpr unsigned kDeferFlags =
    IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
constexpr unsigned kSetupFlags[] = {IORING_SETUP_SUBMIT_ALL, 0};

template <typename T>
T* At(void* base, uint32_t offset) {
  return reinterpret_cast<T*>(static_cast<char*>(base) + offset);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Uring>> Uring::Create(unsigned entries, bool waits_in_enter) {
  io_uring_params params{};
  int fd = -1;
  if (waits_in_enter) {
    params.flags = kDeferFlags;
    fd = static_cast<int>(syscall(__NR_io_uring_setup, entries, &params));
  }
  for (unsigned flags : kSetupFlags) {
    if (fd >= 0 || (waits_in_enter && errno != EINVAL)) break;
    params = {};
    params.flags = flags;
    fd = static_cast<int>(syscall(__NR_io_uring_setup, entries, &params));
    if (fd < 0 && errno != EINVAL) break;
  }
  if (fd < 0) return absl::UnavailableError(absl::StrCat("io_uring_setup: ", strerror(errno)));
  std::unique_ptr<Uring> ring(new Uring);
  ring->fd_ = fd;
  if (!(params.features & IORING_FEAT_SINGLE_MMAP)) {
    return absl::UnavailableError("io_uring: kernel older than 5.4 (no IORING_FEAT_SINGLE_MMAP)");
  }
  const size_t sq_size = params.sq_off.array + params.sq_entries * sizeof(unsigned);
  const size_t cq_size = params.cq_off.cqes + params.cq_entries * sizeof(io_uring_cqe);
  ring->ring_size_ = std::max(sq_size, cq_size);
  void* ring_memory = mmap(nullptr, ring->ring_size_, PROT_READ | PROT_WRITE,
                           MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
  if (ring_memory == MAP_FAILED) {
    return absl::UnavailableError(absl::StrCat("io_uring rings: mmap: ", strerror(errno)));
  }
  ring->ring_ = ring_memory;
  ring->sqes_size_ = params.sq_entries * sizeof(io_uring_sqe);
  void* sqes = mmap(nullptr, ring->sqes_size_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                    fd, IORING_OFF_SQES);
  if (sqes == MAP_FAILED) {
    return absl::UnavailableError(absl::StrCat("io_uring entries: mmap: ", strerror(errno)));
  }
  ring->sqes_ = static_cast<io_uring_sqe*>(sqes);
  ring->sq_head_ = At<unsigned>(ring_memory, params.sq_off.head);
  ring->sq_tail_ = At<unsigned>(ring_memory, params.sq_off.tail);
  ring->sq_array_ = At<unsigned>(ring_memory, params.sq_off.array);
  ring->sq_mask_ = *At<unsigned>(ring_memory, params.sq_off.ring_mask);
  ring->sq_entries_ = params.sq_entries;
  ring->cq_head_ = At<unsigned>(ring_memory, params.cq_off.head);
  ring->cq_tail_ = At<unsigned>(ring_memory, params.cq_off.tail);
  ring->cq_mask_ = *At<unsigned>(ring_memory, params.cq_off.ring_mask);
  ring->cqes_ = At<io_uring_cqe>(ring_memory, params.cq_off.cqes);
  return ring;
}

Uring::~Uring() {
  if (sqes_ != nullptr) munmap(sqes_, sqes_size_);
  if (ring_ != nullptr) munmap(ring_, ring_size_);
  if (fd_ >= 0) close(fd_);
}

io_uring_sqe* Uring::Next() {
  const unsigned tail = *sq_tail_;
  if (tail - std::atomic_ref(*sq_head_).load(std::memory_order_acquire) >= sq_entries_) {
    Enter(0);
  }
  const unsigned index = tail & sq_mask_;
  sq_array_[index] = index;
  io_uring_sqe* sqe = &sqes_[index];
  std::memset(sqe, 0, sizeof(*sqe));
  // Published now, with the entry still blank: the kernel reads entries only in io_uring_enter,
  // which this thread alone calls, after the caller has filled it.
  std::atomic_ref(*sq_tail_).store(tail + 1, std::memory_order_release);
  ++queued_;
  return sqe;
}

bool Uring::Enter(unsigned wait_for) {
  for (;;) {
    const long n = syscall(__NR_io_uring_enter, fd_, queued_, wait_for,
                           wait_for > 0 ? IORING_ENTER_GETEVENTS : 0u, nullptr, 0);
    if (n >= 0) {
      queued_ -= std::min(queued_, static_cast<unsigned>(n));
      return true;
    }
    if (errno == EINTR) continue;
    // EBUSY / EAGAIN: the completion queue is full or the kernel is short of memory; the
    // caller reaps and comes back.
    return errno == EBUSY || errno == EAGAIN;
  }
}

void Uring::Reap(std::vector<io_uring_cqe>* out) {
  unsigned head = *cq_head_;
  const unsigned tail = std::atomic_ref(*cq_tail_).load(std::memory_order_acquire);
  for (; head != tail; ++head) out->push_back(cqes_[head & cq_mask_]);
  std::atomic_ref(*cq_head_).store(head, std::memory_order_release);
}

bool Uring::SignalAsyncCompletions(int fd) {
  return syscall(__NR_io_uring_register, fd_, IORING_REGISTER_EVENTFD_ASYNC, &fd, 1) == 0;
}

}  // namespace weft::net
