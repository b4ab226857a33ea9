#include "control-plane/store/store_base.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <set>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace weft::cp {

namespace internal {

// One watch: a queue of per-revision batches drained by the watch's own thread, so a slow
// consumer delays only itself and writers never run user code under the store lock.
class Watcher : public std::enable_shared_from_this<Watcher> {
 public:
  using Fn = std::function<void(const std::vector<WatchEvent>&)>;
  Watcher(int64_t after_revision, std::string prefix, Fn fn)
      : after_revision_(after_revision), prefix_(std::move(prefix)), fn_(std::move(fn)) {}

  // Queues the events of one revision that match this watch. Called in revision order.
  void Offer(int64_t revision, const std::vector<WatchEvent>& events) {
    if (revision <= after_revision_) return;
    std::vector<WatchEvent> batch;
    for (const WatchEvent& e : events) {
      if (e.kv.key.starts_with(prefix_)) batch.push_back(e);
    }
    if (batch.empty()) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
      queue_.push_back(std::move(batch));
    }
    cv_.notify_one();
  }

  void Start() {
    std::lock_guard<std::mutex> lock(join_mu_);
    thread_ = std::thread([self = shared_from_this()] { self->Run(); });
  }

  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      queue_.clear();
    }
    cv_.notify_one();
    std::lock_guard<std::mutex> lock(join_mu_);
    if (!thread_.joinable()) return;
    // Stopped from inside our own callback: joining would wait for ourselves. The thread holds
    // a reference to this object and exits after the callback returns.
    if (thread_.get_id() == std::this_thread::get_id()) {
      thread_.detach();
    } else {
      thread_.join();
    }
  }

 private:
  void Run() {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      std::vector<WatchEvent> batch = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      fn_(batch);
      lock.lock();
    }
  }

  const int64_t after_revision_;
  const std::string prefix_;
  const Fn fn_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::vector<WatchEvent>> queue_;  // guarded by mu_
  bool stop_ = false;                          // guarded by mu_
  std::mutex join_mu_;                         // serializes join/detach of thread_
  std::thread thread_;
};

// The set of live watches. Shared by the store and every handle so a handle can unregister
// itself even after the store is gone.
class WatchHub {
 public:
  void Add(std::shared_ptr<Watcher> w) {
    std::lock_guard<std::mutex> lock(mu_);
    watchers_.insert(std::move(w));
  }
  void Remove(const std::shared_ptr<Watcher>& w) {
    std::lock_guard<std::mutex> lock(mu_);
    watchers_.erase(w);
  }
  void Publish(int64_t revision, const std::vector<WatchEvent>& events) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& w : watchers_) w->Offer(revision, events);
  }
  void StopAll() {
    std::set<std::shared_ptr<Watcher>> watchers;
    {
      std::lock_guard<std::mutex> lock(mu_);
      watchers.swap(watchers_);
    }
    // Outside mu_: a running callback may be destroying its own handle, which takes mu_.
    for (const auto& w : watchers) w->Stop();
  }

 private:
  std::mutex mu_;
  std::set<std::shared_ptr<Watcher>> watchers_;
};

namespace {
class WatchHandle : public Store::Watch {
 public:
  WatchHandle(std::shared_ptr<WatchHub> hub, std::shared_ptr<Watcher> watcher)
      : hub_(std::move(hub)), watcher_(std::move(watcher)) {}
  ~WatchHandle() override {
    hub_->Remove(watcher_);
    watcher_->Stop();
  }

 private:
  std::shared_ptr<WatchHub> hub_;
  std::shared_ptr<Watcher> watcher_;
};
}  // namespace

}  // namespace internal

std::optional<std::string> PrefixEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    if (static_cast<unsigned char>(end.back()) != 0xff) {
      end.back() = static_cast<char>(static_cast<unsigned char>(end.back()) + 1);
      return end;
    }
    end.pop_back();
  }
  return std::nullopt;
}

StoreBase::StoreBase(const StoreOptions& options)
    : history_revisions_(std::max<int64_t>(1, options.history_revisions)),
      hub_(std::make_shared<internal::WatchHub>()) {}

StoreBase::~StoreBase() { StopWatches(); }

void StoreBase::StopWatches() { hub_->StopAll(); }

void StoreBase::InitRevisions(int64_t revision, int64_t compacted_revision) {
  std::lock_guard<std::mutex> lock(mu_);
  revision_.store(revision, std::memory_order_release);
  compacted_revision_ = compacted_revision;
}

absl::StatusOr<int64_t> StoreBase::Put(std::string_view key, std::string_view value) {
  return Txn({Op{Op::kPut, std::string(key), std::string(value)}});
}

absl::StatusOr<int64_t> StoreBase::Delete(std::string_view key) {
  return Txn({Op{Op::kDelete, std::string(key), ""}});
}

absl::StatusOr<int64_t> StoreBase::Txn(const std::vector<Op>& ops) {
  if (ops.empty()) return absl::InvalidArgumentError("empty transaction");
  std::set<std::string_view> seen;
  for (const Op& op : ops) {
    if (op.key.empty()) return absl::InvalidArgumentError("empty key");
    if (!seen.insert(op.key).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("key appears twice in one transaction: ", absl::string_view(op.key)));
    }
  }

  std::lock_guard<std::mutex> lock(mu_);
  const int64_t revision = revision_.load(std::memory_order_relaxed) + 1;
  std::vector<WatchEvent> events;
  events.reserve(ops.size());
  for (const Op& op : ops) {
    ASSIGN_OR_RETURN(std::optional<KeyValue> current, GetLocked(op.key));
    WatchEvent e;
    e.kv.key = op.key;
    e.kv.mod_revision = revision;
    if (op.kind == Op::kDelete) {
      if (!current) {
        return absl::NotFoundError(absl::StrCat("no such key: ", absl::string_view(op.key)));
      }
      e.type = WatchEvent::kDelete;
    } else {
      e.type = WatchEvent::kPut;
      e.kv.value = op.value;
      e.kv.create_revision = current ? current->create_revision : revision;
      e.kv.version = current ? current->version + 1 : 1;
    }
    events.push_back(std::move(e));
  }
  const int64_t compacted = std::max(compacted_revision_, revision - history_revisions_);
  RETURN_IF_ERROR(CommitLocked(revision, events, compacted));
  revision_.store(revision, std::memory_order_release);
  compacted_revision_ = compacted;
  // Still under mu_, so watchers see revisions in order and WatchFrom cannot slip between the
  // commit and its notification.
  hub_->Publish(revision, events);
  return revision;
}

absl::StatusOr<std::optional<KeyValue>> StoreBase::Get(std::string_view key) const {
  std::lock_guard<std::mutex> lock(mu_);
  return GetLocked(key);
}

absl::StatusOr<std::vector<KeyValue>> StoreBase::Range(std::string_view prefix) const {
  std::lock_guard<std::mutex> lock(mu_);
  return RangeLocked(prefix);
}

absl::StatusOr<std::unique_ptr<Store::Watch>> StoreBase::WatchFrom(
    int64_t from_revision, std::string_view prefix,
    std::function<void(const std::vector<WatchEvent>&)> fn) {
  if (from_revision < 0) return absl::InvalidArgumentError("negative watch revision");
  if (!fn) return absl::InvalidArgumentError("watch callback is empty");
  auto watcher =
      std::make_shared<internal::Watcher>(from_revision, std::string(prefix), std::move(fn));
  {
    // Replay and registration under mu_: no write can land between the two.
    std::lock_guard<std::mutex> lock(mu_);
    if (from_revision < compacted_revision_) {
      return absl::OutOfRangeError(absl::StrCat("watch from revision ", from_revision,
                                                ": history up to revision ", compacted_revision_,
                                                " is compacted"));
    }
    if (from_revision < revision_.load(std::memory_order_relaxed)) {
      ASSIGN_OR_RETURN(std::vector<WatchEvent> past, HistoryLocked(from_revision, prefix));
      std::vector<WatchEvent> batch;
      for (size_t i = 0; i < past.size(); ++i) {
        batch.push_back(std::move(past[i]));
        if (i + 1 == past.size() || past[i + 1].kv.mod_revision != batch.back().kv.mod_revision) {
          const int64_t rev = batch.back().kv.mod_revision;
          watcher->Offer(rev, batch);
          batch.clear();
        }
      }
    }
    hub_->Add(watcher);
  }
  watcher->Start();
  return std::make_unique<internal::WatchHandle>(hub_, std::move(watcher));
}

}  // namespace weft::cp
