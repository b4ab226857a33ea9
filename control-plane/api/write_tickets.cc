#include "control-plane/api/write_tickets.h"

#include "absl/strings/str_cat.h"

namespace weft::cp {

void WriteTickets::InsertLocked(const std::string& id, Ticket t) {
  auto [it, inserted] = tickets_.insert_or_assign(id, t);
  if (!inserted) return;
  order_.push_back(id);
  while (order_.size() > capacity_) {
    auto old = tickets_.find(order_.front());
    // A commit in progress is never forgotten: Settle may be waiting for it.
    if (old != tickets_.end() && old->second.state != State::kCommitting) tickets_.erase(old);
    order_.pop_front();
  }
}

absl::Status WriteTickets::BeginCommit(const std::string& id) {
  if (id.empty()) return absl::OkStatus();
  std::lock_guard lock(mu_);
  auto it = tickets_.find(id);
  if (it != tickets_.end()) {
    if (it->second.state == State::kAbandoned) {
      return absl::AbortedError(
          "not applied: the client gave up on this request and was told it did not happen");
    }
    return absl::AlreadyExistsError(absl::StrCat("request id ", id, " was used before"));
  }
  InsertLocked(id, Ticket{State::kCommitting});
  return absl::OkStatus();
}

void WriteTickets::Finish(const std::string& id, bool committed, int64_t revision) {
  if (id.empty()) return;
  {
    std::lock_guard lock(mu_);
    InsertLocked(id, Ticket{committed ? State::kCommitted : State::kFailed, revision});
  }
  cv_.notify_all();
}

WriteTickets::Outcome WriteTickets::Settle(const std::string& id) {
  if (id.empty()) return Outcome{};
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] {
    auto it = tickets_.find(id);
    return it == tickets_.end() || it->second.state != State::kCommitting;
  });
  auto it = tickets_.find(id);
  if (it != tickets_.end() && it->second.state == State::kCommitted) {
    return Outcome{true, it->second.revision};
  }
  if (it == tickets_.end()) InsertLocked(id, Ticket{State::kAbandoned});
  return Outcome{};
}

}  // namespace weft::cp
