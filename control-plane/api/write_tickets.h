// Outcomes of config API writes by the client's request id, so that a client which stopped
// waiting for an answer (its deadline passed, the connection dropped) can learn what happened
// instead of guessing: Settle says whether the write committed and, if it has not started
// committing, makes sure it never will, even if the request is still on its way (a deadline is
// relative to when the server reads the request, so a server that reads it late would
// otherwise commit after the client gave up).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>

#include "absl/status/status.h"

namespace weft::cp {

class WriteTickets {
 public:
  // Remembers this many request ids (oldest forgotten first): far more than any client keeps
  // in flight.
  explicit WriteTickets(size_t capacity = 100000) : capacity_(capacity) {}

  // A write calls this right before it commits; it must not commit unless OK (Aborted when the
  // client has settled it already). An empty id (a client that does not settle) always passes.
  absl::Status BeginCommit(const std::string& id);
  // After a successful BeginCommit: what came of it.
  void Finish(const std::string& id, bool committed, int64_t revision);

  struct Outcome {
    bool committed = false;
    int64_t revision = 0;
  };
  // Waits for a commit in progress to finish, then reports it; a write that has not begun to
  // commit never will.
  Outcome Settle(const std::string& id);

 private:
  enum class State { kCommitting, kCommitted, kFailed, kAbandoned };
  struct Ticket {
    State state;
    int64_t revision = 0;
  };
  void InsertLocked(const std::string& id, Ticket t);

  const size_t capacity_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Ticket> tickets_;
  std::deque<std::string> order_;  // insertion order, for forgetting the oldest
};

}  // namespace weft::cp
