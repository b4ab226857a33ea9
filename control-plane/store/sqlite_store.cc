// SQLite-backed Store. One connection, used only under StoreBase's mutex; every revision is
// one IMMEDIATE transaction, and with WAL + synchronous=FULL the WAL is fsynced before COMMIT
// returns, so an acknowledged write survives SIGKILL and power loss.
//
// Schema:
//   kv(key, value, create_rev, mod_rev, version)  current state; key is a BLOB so arbitrary
//       bytes work and ordering is memcmp, the same as std::string's (Range is a PK scan).
//   history(rev, idx, key, type, value, create_rev, version)  one row per event, idx = op order
//       within the revision; rows at or below meta.compact_rev are deleted on write.
//   meta(revision, compact_rev)  single row. The revision is stored rather than derived from
//       max(mod_rev) because deletes and compaction would otherwise lose it.
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "common/strings.h"
#include "control-plane/store/store_base.h"

namespace weft::cp {
namespace {

constexpr int kBusyTimeoutMs = 5000;

absl::Status SqlError(sqlite3* db, int rc, std::string_view what) {
  std::string msg = absl::StrCat("sqlite ", Sv(what), ": ", sqlite3_errstr(rc));
  if (db != nullptr) absl::StrAppend(&msg, " (", sqlite3_errmsg(db), ")");
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(msg);
    case SQLITE_FULL:
      return absl::ResourceExhaustedError(msg);
    default:
      return absl::InternalError(msg);
  }
}

// sqlite3_bind_blob with a null pointer binds NULL, and an empty std::string_view may have a
// null data(); bind a zero-length blob instead so empty values stay values.
int BindBlob(sqlite3_stmt* s, int index, std::string_view bytes) {
  return sqlite3_bind_blob(s, index, bytes.empty() ? "" : bytes.data(),
                           static_cast<int>(bytes.size()), SQLITE_TRANSIENT);
}

std::string ColumnBlob(sqlite3_stmt* s, int column) {
  const void* p = sqlite3_column_blob(s, column);  // before _bytes, as SQLite documents
  const int n = sqlite3_column_bytes(s, column);
  return p == nullptr ? std::string() : std::string(static_cast<const char*>(p), n);
}

// Resets a statement when leaving scope so it never holds a read transaction open.
class StmtScope {
 public:
  explicit StmtScope(sqlite3_stmt* s) : s_(s) {}
  ~StmtScope() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  StmtScope(const StmtScope&) = delete;
  StmtScope& operator=(const StmtScope&) = delete;

 private:
  sqlite3_stmt* s_;
};

class SqliteStore final : public StoreBase {
 public:
  explicit SqliteStore(const StoreOptions& options) : StoreBase(options) {}

  ~SqliteStore() override {
    StopWatches();
    for (sqlite3_stmt* s :
         {get_, range_from_, range_between_, upsert_, delete_, history_add_, history_compact_,
          history_read_, meta_write_, begin_, commit_, rollback_}) {
      sqlite3_finalize(s);  // no-op on nullptr
    }
    if (db_ != nullptr) sqlite3_close(db_);
    if (lock_fd_ >= 0) close(lock_fd_);
  }

  absl::Status Open(const std::string& dir) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return absl::InternalError(absl::StrCat("create ", dir, ": ", ec.message()));

    const std::string lock_path = dir + "/weft.lock";
    lock_fd_ = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd_ < 0) {
      return absl::InternalError(absl::StrCat("open ", lock_path, ": ", std::strerror(errno)));
    }
    if (flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("data dir ", dir, " is in use by another store (", lock_path, ")"));
    }

    const std::string db_path = dir + "/weft.db";
    int rc =
        sqlite3_open_v2(db_path.c_str(), &db_,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) return SqlError(db_, rc, absl::StrCat("open ", db_path));
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, kBusyTimeoutMs);

    // journal_mode answers with the mode it actually set; anything but wal means our
    // durability/concurrency assumptions do not hold.
    {
      sqlite3_stmt* s = nullptr;
      rc = sqlite3_prepare_v2(db_, "PRAGMA journal_mode=WAL", -1, &s, nullptr);
      if (rc != SQLITE_OK) return SqlError(db_, rc, "journal_mode");
      rc = sqlite3_step(s);
      std::string mode = rc == SQLITE_ROW ? reinterpret_cast<const char*>(sqlite3_column_text(s, 0))
                                          : std::string();
      sqlite3_finalize(s);
      if (mode != "wal") {
        return absl::InternalError(
            absl::StrCat("sqlite ", db_path, ": cannot enable WAL (mode: ", mode, ")"));
      }
    }
    RETURN_IF_ERROR(
        Exec("PRAGMA synchronous=FULL;"
             "CREATE TABLE IF NOT EXISTS kv(key BLOB PRIMARY KEY, value BLOB NOT NULL,"
             "  create_rev INTEGER NOT NULL, mod_rev INTEGER NOT NULL, version INTEGER NOT NULL)"
             "  WITHOUT ROWID;"
             "CREATE TABLE IF NOT EXISTS history(rev INTEGER NOT NULL, idx INTEGER NOT NULL,"
             "  key BLOB NOT NULL, type INTEGER NOT NULL, value BLOB NOT NULL,"
             "  create_rev INTEGER NOT NULL, version INTEGER NOT NULL, PRIMARY KEY(rev, idx))"
             "  WITHOUT ROWID;"
             "CREATE TABLE IF NOT EXISTS meta(id INTEGER PRIMARY KEY CHECK(id = 0),"
             "  revision INTEGER NOT NULL, compact_rev INTEGER NOT NULL);"
             "INSERT OR IGNORE INTO meta(id, revision, compact_rev) VALUES(0, 0, 0);"));

    RETURN_IF_ERROR(
        Prepare("SELECT value, create_rev, mod_rev, version FROM kv WHERE key = ?1", &get_));
    RETURN_IF_ERROR(Prepare(
        "SELECT key, value, create_rev, mod_rev, version FROM kv WHERE key >= ?1 ORDER BY key",
        &range_from_));
    RETURN_IF_ERROR(
        Prepare("SELECT key, value, create_rev, mod_rev, version FROM kv"
                " WHERE key >= ?1 AND key < ?2 ORDER BY key",
                &range_between_));
    RETURN_IF_ERROR(
        Prepare("INSERT OR REPLACE INTO kv(key, value, create_rev, mod_rev, version)"
                " VALUES(?1, ?2, ?3, ?4, ?5)",
                &upsert_));
    RETURN_IF_ERROR(Prepare("DELETE FROM kv WHERE key = ?1", &delete_));
    RETURN_IF_ERROR(
        Prepare("INSERT INTO history(rev, idx, key, type, value, create_rev, version)"
                " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                &history_add_));
    RETURN_IF_ERROR(Prepare("DELETE FROM history WHERE rev <= ?1", &history_compact_));
    RETURN_IF_ERROR(
        Prepare("SELECT rev, key, type, value, create_rev, version FROM history"
                " WHERE rev > ?1 ORDER BY rev, idx",
                &history_read_));
    RETURN_IF_ERROR(
        Prepare("UPDATE meta SET revision = ?1, compact_rev = ?2 WHERE id = 0", &meta_write_));
    // IMMEDIATE takes the write lock up front, so COMMIT cannot fail with BUSY halfway.
    RETURN_IF_ERROR(Prepare("BEGIN IMMEDIATE", &begin_));
    RETURN_IF_ERROR(Prepare("COMMIT", &commit_));
    RETURN_IF_ERROR(Prepare("ROLLBACK", &rollback_));

    sqlite3_stmt* s = nullptr;
    rc = sqlite3_prepare_v2(db_, "SELECT revision, compact_rev FROM meta WHERE id = 0", -1, &s,
                            nullptr);
    if (rc != SQLITE_OK) return SqlError(db_, rc, "read meta");
    rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
      sqlite3_finalize(s);
      return SqlError(db_, rc, "read meta");
    }
    const int64_t revision = sqlite3_column_int64(s, 0);
    const int64_t compact_rev = sqlite3_column_int64(s, 1);
    sqlite3_finalize(s);
    InitRevisions(revision, compact_rev);
    return absl::OkStatus();
  }

 protected:
  absl::StatusOr<std::optional<KeyValue>> GetLocked(std::string_view key) const override {
    StmtScope scope(get_);
    int rc = BindBlob(get_, 1, key);
    if (rc != SQLITE_OK) return SqlError(db_, rc, "get");
    rc = sqlite3_step(get_);
    if (rc == SQLITE_DONE) return std::nullopt;
    if (rc != SQLITE_ROW) return SqlError(db_, rc, "get");
    KeyValue kv;
    kv.key = std::string(key);
    kv.value = ColumnBlob(get_, 0);
    kv.create_revision = sqlite3_column_int64(get_, 1);
    kv.mod_revision = sqlite3_column_int64(get_, 2);
    kv.version = sqlite3_column_int64(get_, 3);
    return kv;
  }

  absl::StatusOr<std::vector<KeyValue>> RangeLocked(std::string_view prefix) const override {
    const std::optional<std::string> end = PrefixEnd(prefix);
    sqlite3_stmt* s = end ? range_between_ : range_from_;
    StmtScope scope(s);
    int rc = BindBlob(s, 1, prefix);
    if (rc == SQLITE_OK && end) rc = BindBlob(s, 2, *end);
    if (rc != SQLITE_OK) return SqlError(db_, rc, "range");
    std::vector<KeyValue> out;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
      KeyValue kv;
      kv.key = ColumnBlob(s, 0);
      kv.value = ColumnBlob(s, 1);
      kv.create_revision = sqlite3_column_int64(s, 2);
      kv.mod_revision = sqlite3_column_int64(s, 3);
      kv.version = sqlite3_column_int64(s, 4);
      out.push_back(std::move(kv));
    }
    if (rc != SQLITE_DONE) return SqlError(db_, rc, "range");
    return out;
  }

  absl::Status CommitLocked(int64_t revision, const std::vector<WatchEvent>& events,
                            int64_t compacted_revision) override {
    RETURN_IF_ERROR(StepDone(begin_, "begin"));
    absl::Status status = WriteLocked(revision, events, compacted_revision);
    if (status.ok()) status = StepDone(commit_, "commit");
    if (!status.ok()) {
      // Undo whatever part was written; if COMMIT itself failed SQLite may already have rolled
      // back, so this ROLLBACK's own error is expected and ignored.
      StmtScope scope(rollback_);
      sqlite3_step(rollback_);
    }
    return status;
  }

  absl::StatusOr<std::vector<WatchEvent>> HistoryLocked(int64_t after_revision,
                                                        std::string_view prefix) const override {
    StmtScope scope(history_read_);
    int rc = sqlite3_bind_int64(history_read_, 1, after_revision);
    if (rc != SQLITE_OK) return SqlError(db_, rc, "history");
    std::vector<WatchEvent> out;
    while ((rc = sqlite3_step(history_read_)) == SQLITE_ROW) {
      WatchEvent e;
      e.kv.key = ColumnBlob(history_read_, 1);
      // History is bounded (history_revisions), so filtering here beats a second index.
      if (!e.kv.key.starts_with(prefix)) continue;
      e.kv.mod_revision = sqlite3_column_int64(history_read_, 0);
      e.type = sqlite3_column_int(history_read_, 2) == WatchEvent::kDelete ? WatchEvent::kDelete
                                                                           : WatchEvent::kPut;
      e.kv.value = ColumnBlob(history_read_, 3);
      e.kv.create_revision = sqlite3_column_int64(history_read_, 4);
      e.kv.version = sqlite3_column_int64(history_read_, 5);
      out.push_back(std::move(e));
    }
    if (rc != SQLITE_DONE) return SqlError(db_, rc, "history");
    return out;
  }

 private:
  absl::Status WriteLocked(int64_t revision, const std::vector<WatchEvent>& events,
                           int64_t compacted_revision) {
    int idx = 0;
    for (const WatchEvent& e : events) {
      if (e.type == WatchEvent::kPut) {
        StmtScope scope(upsert_);
        int rc = BindBlob(upsert_, 1, e.kv.key);
        if (rc == SQLITE_OK) rc = BindBlob(upsert_, 2, e.kv.value);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int64(upsert_, 3, e.kv.create_revision);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int64(upsert_, 4, e.kv.mod_revision);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int64(upsert_, 5, e.kv.version);
        if (rc != SQLITE_OK) return SqlError(db_, rc, "put");
        RETURN_IF_ERROR(StepDone(upsert_, "put"));
      } else {
        StmtScope scope(delete_);
        int rc = BindBlob(delete_, 1, e.kv.key);
        if (rc != SQLITE_OK) return SqlError(db_, rc, "delete");
        RETURN_IF_ERROR(StepDone(delete_, "delete"));
      }
      StmtScope scope(history_add_);
      int rc = sqlite3_bind_int64(history_add_, 1, revision);
      if (rc == SQLITE_OK) rc = sqlite3_bind_int(history_add_, 2, idx++);
      if (rc == SQLITE_OK) rc = BindBlob(history_add_, 3, e.kv.key);
      if (rc == SQLITE_OK) rc = sqlite3_bind_int(history_add_, 4, e.type);
      if (rc == SQLITE_OK) rc = BindBlob(history_add_, 5, e.kv.value);
      if (rc == SQLITE_OK) rc = sqlite3_bind_int64(history_add_, 6, e.kv.create_revision);
      if (rc == SQLITE_OK) rc = sqlite3_bind_int64(history_add_, 7, e.kv.version);
      if (rc != SQLITE_OK) return SqlError(db_, rc, "history add");
      RETURN_IF_ERROR(StepDone(history_add_, "history add"));
    }
    {
      StmtScope scope(history_compact_);
      int rc = sqlite3_bind_int64(history_compact_, 1, compacted_revision);
      if (rc != SQLITE_OK) return SqlError(db_, rc, "compact");
      RETURN_IF_ERROR(StepDone(history_compact_, "compact"));
    }
    StmtScope scope(meta_write_);
    int rc = sqlite3_bind_int64(meta_write_, 1, revision);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(meta_write_, 2, compacted_revision);
    if (rc != SQLITE_OK) return SqlError(db_, rc, "meta");
    return StepDone(meta_write_, "meta");
  }

  // Runs a statement that returns no rows (binding is the caller's job).
  absl::Status StepDone(sqlite3_stmt* s, std::string_view what) {
    StmtScope scope(s);
    const int rc = sqlite3_step(s);
    if (rc != SQLITE_DONE) return SqlError(db_, rc, what);
    return absl::OkStatus();
  }

  absl::Status Exec(const char* sql) {
    char* err = nullptr;
    const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
    if (rc != SQLITE_OK) {
      absl::Status status = SqlError(db_, rc, "schema");
      sqlite3_free(err);
      return status;
    }
    return absl::OkStatus();
  }

  absl::Status Prepare(const char* sql, sqlite3_stmt** out) {
    const int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, out, nullptr);
    if (rc != SQLITE_OK) return SqlError(db_, rc, absl::StrCat("prepare ", sql));
    return absl::OkStatus();
  }

  int lock_fd_ = -1;
  sqlite3* db_ = nullptr;
  sqlite3_stmt* get_ = nullptr;
  sqlite3_stmt* range_from_ = nullptr;
  sqlite3_stmt* range_between_ = nullptr;
  sqlite3_stmt* upsert_ = nullptr;
  sqlite3_stmt* delete_ = nullptr;
  sqlite3_stmt* history_add_ = nullptr;
  sqlite3_stmt* history_compact_ = nullptr;
  sqlite3_stmt* history_read_ = nullptr;
  sqlite3_stmt* meta_write_ = nullptr;
  sqlite3_stmt* begin_ = nullptr;
  sqlite3_stmt* commit_ = nullptr;
  sqlite3_stmt* rollback_ = nullptr;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const std::string& dir,
                                                       const StoreOptions& options) {
  auto store = std::make_unique<SqliteStore>(options);
  RETURN_IF_ERROR(store->Open(dir));
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace weft::cp
