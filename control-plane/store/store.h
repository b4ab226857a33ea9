// Durable control-plane state behind one interface shaped like etcd's KV + Watch API, so the
// rest of the control plane does not care whether state lives in SQLite, memory, or (later) a
// replicated store.
//
// Semantics (shared by every implementation):
// - Revisions: one store-wide counter. Every successful Put/Delete/Txn bumps it by exactly one
//   and returns the new value; a failed write changes nothing and does not bump it. A fresh
//   store is at revision 0.
// - Per key: create_revision is the revision that created the key (reset when a deleted key is
//   put again), mod_revision the last write, version counts puts since creation (1 = new).
// - Keys and values are arbitrary bytes (values are serialized protobufs); keys must be
//   non-empty. Range(prefix) returns keys starting with `prefix` (empty = all), sorted bytewise.
// - Txn is all-or-nothing at ONE revision. It is rejected (nothing changes, no revision bump)
//   when it is empty, names the same key twice (InvalidArgument: the outcome would depend on op
//   order, etcd rejects this too), or deletes a key that does not exist (NotFound: an Apply
//   that expects to remove something that is not there is working from stale state).
// - Watches: see WatchFrom.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace weft::cp {

struct KeyValue {
  std::string key;
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t version = 0;
};

struct WatchEvent {
  enum Type { kPut, kDelete } type = kPut;
  // kPut: the key's new state. kDelete: only `key` and `mod_revision` (= the deletion's
  // revision) are set; value is empty, create_revision and version are 0.
  KeyValue kv;
};

class Store {
 public:
  virtual ~Store() = default;

  // Each write bumps the store-wide revision by one and returns it.
  virtual absl::StatusOr<int64_t> Put(std::string_view key, std::string_view value) = 0;
  // Several puts/deletes applied atomically at ONE new revision (an Apply of many objects).
  struct Op {
    enum Kind { kPut, kDelete } kind = kPut;
    std::string key;
    std::string value;
  };
  virtual absl::StatusOr<int64_t> Txn(const std::vector<Op>& ops) = 0;
  virtual absl::StatusOr<int64_t> Delete(std::string_view key) = 0;  // NotFound if absent
  virtual absl::StatusOr<std::optional<KeyValue>> Get(std::string_view key) const = 0;
  virtual absl::StatusOr<std::vector<KeyValue>> Range(std::string_view prefix) const = 0;
  // To list-then-watch without missing a change, read Revision() BEFORE Range() and watch from
  // it: changes that land in between are then delivered again (harmless: compare mod_revision)
  // instead of being lost.
  virtual int64_t Revision() const = 0;

  // Calls `fn` for every change with revision > `from_revision` to a key starting with `prefix`:
  // first the history the store still holds, then live changes, in revision order, without gaps
  // or duplicates. (Note: exclusive, unlike etcd's start_revision; "I have seen up to R".)
  //
  // Each call carries the matching events of exactly one revision (a Txn's events arrive
  // together, in op order). Calls come from a thread owned by this watch: one watch's calls
  // never overlap, different watches run concurrently, and writers never wait for callbacks.
  // Events queue in memory while a callback is slow. Callbacks may read and write the store.
  //
  // Destroying the returned handle stops the watch: no call starts afterwards and the
  // destructor waits for a running one (unless it runs inside that watch's own callback, where
  // waiting would deadlock: then it returns at once and the callback finishes on its own).
  // Destroying the store stops all its watches the same way; handles may outlive the store.
  //
  // Errors: InvalidArgument if from_revision < 0; OutOfRange if revisions after
  // from_revision were already compacted (the caller must re-list and watch from a newer
  // revision, like etcd's ErrCompacted). A from_revision in the future is accepted: events
  // arrive once the store gets past it.
  class Watch {
   public:
    virtual ~Watch() = default;
  };
  virtual absl::StatusOr<std::unique_ptr<Watch>> WatchFrom(
      int64_t from_revision, std::string_view prefix,
      std::function<void(const std::vector<WatchEvent>&)> fn) = 0;
};

struct StoreOptions {
  // Watch history keeps the newest N revisions; older ones are compacted on write.
  int64_t history_revisions = 10000;
};

// SQLite in `dir`/weft.db (dir created if missing). WAL mode, synchronous=FULL: once a write
// returns, a SIGKILL (or power loss) loses nothing. One process at a time: a second open of the
// same dir fails with FailedPrecondition (lock file `dir`/weft.lock), since two writers would
// hand out the same revisions.
absl::StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const std::string& dir,
                                                       const StoreOptions& options = {});
// Same interface in memory (tests, --data-dir unset).
std::unique_ptr<Store> NewMemoryStore(const StoreOptions& options = {});

}  // namespace weft::cp
