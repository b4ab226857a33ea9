// Store contract tests, run against both implementations so the in-memory store used by tests
// and --data-dir-less runs cannot drift from the durable one.
#include <signal.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "control-plane/store/store.h"

namespace weft::cp {
namespace {

using namespace std::chrono_literals;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "weft_store_XXXXXX").string();
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// One store of the given kind in a fresh directory; Reopen() simulates a restart.
class Harness {
 public:
  explicit Harness(std::string kind, StoreOptions options = {})
      : kind_(std::move(kind)), options_(options) {
    Reopen();
  }
  Store& operator*() { return *store_; }
  Store* operator->() { return store_.get(); }
  bool durable() const { return kind_ == "sqlite"; }
  const std::string& dir() const { return dir_.path(); }
  void Reopen() {
    store_.reset();
    if (kind_ == "memory") {
      store_ = NewMemoryStore(options_);
      return;
    }
    auto s = OpenSqliteStore(dir_.path(), options_);
    REQUIRE(s.ok());
    store_ = std::move(s).value();
  }

 private:
  std::string kind_;
  StoreOptions options_;
  TempDir dir_;
  std::unique_ptr<Store> store_;
};

#define FOR_EACH_STORE(var, ...)                                                  \
  const std::string var##_kind = GENERATE(as<std::string>{}, "memory", "sqlite"); \
  CAPTURE(var##_kind);                                                            \
  Harness var(var##_kind __VA_OPT__(, ) __VA_ARGS__)

// Records every callback; tests wait on the total number of events seen.
class Collector {
 public:
  std::function<void(const std::vector<WatchEvent>&)> Fn() {
    return [this](const std::vector<WatchEvent>& events) {
      std::lock_guard<std::mutex> lock(mu_);
      batches_.push_back(events);
      events_ += events.size();
      cv_.notify_all();
    };
  }
  bool WaitForEvents(size_t n, std::chrono::milliseconds timeout = 10s) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return events_ >= n; });
  }
  std::vector<std::vector<WatchEvent>> Batches() {
    std::lock_guard<std::mutex> lock(mu_);
    return batches_;
  }
  // "rev:P:key" / "rev:D:key" per event, flattened.
  std::vector<std::string> Summary() {
    std::vector<std::string> out;
    for (const auto& batch : Batches()) {
      for (const WatchEvent& e : batch) {
        out.push_back(std::to_string(e.kv.mod_revision) +
                      (e.type == WatchEvent::kPut ? ":P:" : ":D:") + e.kv.key);
      }
    }
    return out;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::vector<WatchEvent>> batches_;
  size_t events_ = 0;
};

int64_t MustPut(Store& s, std::string_view key, std::string_view value) {
  auto rev = s.Put(key, value);
  REQUIRE(rev.ok());
  return *rev;
}

KeyValue MustGet(Store& s, std::string_view key) {
  auto kv = s.Get(key);
  REQUIRE(kv.ok());
  REQUIRE(kv->has_value());
  return **kv;
}

std::vector<std::string> Keys(const std::vector<KeyValue>& kvs) {
  std::vector<std::string> keys;
  for (const auto& kv : kvs) keys.push_back(kv.key);
  return keys;
}

TEST_CASE("store: put, get, range, delete", "[store]") {
  FOR_EACH_STORE(s);
  CHECK(s->Revision() == 0);
  CHECK(MustPut(*s, "/svc/b", "2") == 1);
  CHECK(MustPut(*s, "/svc/a", "1") == 2);
  CHECK(MustPut(*s, "/route/x", "3") == 3);
  CHECK(MustPut(*s, "/svc", "root") == 4);

  KeyValue a = MustGet(*s, "/svc/a");
  CHECK(a.key == "/svc/a");
  CHECK(a.value == "1");
  auto missing = s->Get("/svc/zz");
  REQUIRE(missing.ok());
  CHECK_FALSE(missing->has_value());

  auto svc = s->Range("/svc/");
  REQUIRE(svc.ok());
  CHECK(Keys(*svc) == std::vector<std::string>{"/svc/a", "/svc/b"});
  auto all = s->Range("");
  REQUIRE(all.ok());
  CHECK(Keys(*all) == std::vector<std::string>{"/route/x", "/svc", "/svc/a", "/svc/b"});
  auto none = s->Range("/nope");
  REQUIRE(none.ok());
  CHECK(none->empty());

  auto del = s->Delete("/svc/a");
  REQUIRE(del.ok());
  CHECK(*del == 5);
  CHECK_FALSE(s->Get("/svc/a")->has_value());
  auto again = s->Delete("/svc/a");
  CHECK(again.status().code() == absl::StatusCode::kNotFound);
  CHECK(s->Revision() == 5);

  CHECK(s->Put("", "x").status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(s->Revision() == 5);
}

TEST_CASE("store: revisions bump once per write, versions count per key", "[store]") {
  FOR_EACH_STORE(s);
  CHECK(MustPut(*s, "a", "1") == 1);
  CHECK(MustPut(*s, "a", "2") == 2);
  CHECK(MustPut(*s, "b", "1") == 3);
  auto txn = s->Txn(
      {{Store::Op::kPut, "a", "3"}, {Store::Op::kPut, "c", "1"}, {Store::Op::kDelete, "b", ""}});
  REQUIRE(txn.ok());
  CHECK(*txn == 4);
  CHECK(s->Revision() == 4);

  KeyValue a = MustGet(*s, "a");
  CHECK(a.value == "3");
  CHECK(a.create_revision == 1);
  CHECK(a.mod_revision == 4);
  CHECK(a.version == 3);
  KeyValue c = MustGet(*s, "c");
  CHECK(c.create_revision == 4);
  CHECK(c.mod_revision == 4);
  CHECK(c.version == 1);
  CHECK_FALSE(s->Get("b")->has_value());

  // A key put again after a delete is a new key: create_revision and version restart.
  CHECK(MustPut(*s, "b", "again") == 5);
  KeyValue b = MustGet(*s, "b");
  CHECK(b.create_revision == 5);
  CHECK(b.version == 1);
}

TEST_CASE("store: a failing txn changes nothing", "[store]") {
  FOR_EACH_STORE(s);
  MustPut(*s, "keep", "v1");

  SECTION("delete of a missing key") {
    auto r = s->Txn({{Store::Op::kPut, "keep", "v2"},
                     {Store::Op::kPut, "new", "x"},
                     {Store::Op::kDelete, "missing", ""}});
    CHECK(r.status().code() == absl::StatusCode::kNotFound);
  }
  SECTION("same key twice") {
    auto r = s->Txn({{Store::Op::kPut, "keep", "v2"}, {Store::Op::kDelete, "keep", ""}});
    CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
  }
  SECTION("empty txn") { CHECK(s->Txn({}).status().code() == absl::StatusCode::kInvalidArgument); }
  SECTION("empty key") {
    auto r = s->Txn({{Store::Op::kPut, "new", "x"}, {Store::Op::kPut, "", "x"}});
    CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
  }

  CHECK(s->Revision() == 1);
  KeyValue keep = MustGet(*s, "keep");
  CHECK(keep.value == "v1");
  CHECK(keep.version == 1);
  CHECK_FALSE(s->Get("new")->has_value());
  if (s.durable()) s.Reopen();
  CHECK(s->Revision() == 1);
  CHECK(MustGet(*s, "keep").value == "v1");
  CHECK(MustPut(*s, "next", "x") == 2);  // no revision was burned by the failures
}

TEST_CASE("store: keys and values are binary-safe", "[store]") {
  FOR_EACH_STORE(s);
  const std::string value("a\0b\xff\x00\x01z", 7);
  const std::string key("k\0\xff", 3);
  MustPut(*s, "bin", value);
  MustPut(*s, key, value);
  MustPut(*s, "empty", "");
  MustPut(*s, std::string("\xff\xff", 2), "high");
  MustPut(*s, std::string("\xff\xff\x01", 3), "higher");
  MustPut(*s, std::string("\xfe", 1), "lower");

  if (s.durable()) s.Reopen();
  CHECK(MustGet(*s, "bin").value == value);
  CHECK(MustGet(*s, key).value == value);
  KeyValue empty = MustGet(*s, "empty");
  CHECK(empty.value.empty());
  auto under_k = s->Range(std::string("k\0", 2));
  REQUIRE(under_k.ok());
  REQUIRE(under_k->size() == 1);
  CHECK((*under_k)[0].key == key);
  // A prefix with no successor (all 0xff) still bounds the range correctly.
  auto high = s->Range(std::string("\xff\xff", 2));
  REQUIRE(high.ok());
  CHECK(Keys(*high) ==
        std::vector<std::string>{std::string("\xff\xff", 2), std::string("\xff\xff\x01", 3)});
  // Byte order is unsigned: 0xfe sorts after ASCII.
  auto all = s->Range("");
  REQUIRE(all.ok());
  CHECK(Keys(*all).back() == std::string("\xff\xff\x01", 3));
  CHECK(Keys(*all)[all->size() - 3] == std::string("\xfe", 1));
}

TEST_CASE("store: watch from 0 replays history, then delivers live events in order", "[store]") {
  FOR_EACH_STORE(s);
  MustPut(*s, "/a", "1");                                                              // 1
  MustPut(*s, "/b", "1");                                                              // 2
  REQUIRE(s->Txn({{Store::Op::kPut, "/c", "1"}, {Store::Op::kPut, "/a", "2"}}).ok());  // 3
  REQUIRE(s->Delete("/b").ok());                                                       // 4
  MustPut(*s, "other", "x");                                                           // 5
  if (s.durable()) s.Reopen();  // history is durable too

  Collector all;
  Collector slash;
  auto w_all = s->WatchFrom(0, "", all.Fn());
  REQUIRE(w_all.ok());
  auto w_slash = s->WatchFrom(2, "/", slash.Fn());
  REQUIRE(w_slash.ok());

  MustPut(*s, "/a", "3");                                                                   // 6
  REQUIRE(s->Txn({{Store::Op::kDelete, "/c", ""}, {Store::Op::kPut, "other", "y"}}).ok());  // 7

  REQUIRE(all.WaitForEvents(9));
  CHECK(all.Summary() == std::vector<std::string>{"1:P:/a", "2:P:/b", "3:P:/c", "3:P:/a", "4:D:/b",
                                                  "5:P:other", "6:P:/a", "7:D:/c", "7:P:other"});
  // One callback per revision; a txn's events arrive together.
  auto batches = all.Batches();
  REQUIRE(batches.size() == 7);
  CHECK(batches[2].size() == 2);
  const WatchEvent& a2 = batches[2][1];
  CHECK(a2.kv.value == "2");
  CHECK(a2.kv.version == 2);
  CHECK(a2.kv.create_revision == 1);
  CHECK(batches[3][0].kv.value.empty());

  REQUIRE(slash.WaitForEvents(5));
  CHECK(slash.Summary() ==
        std::vector<std::string>{"3:P:/c", "3:P:/a", "4:D:/b", "6:P:/a", "7:D:/c"});
}

TEST_CASE("store: watch from a compacted or future revision", "[store]") {
  StoreOptions options;
  options.history_revisions = 5;
  FOR_EACH_STORE(s, options);
  for (int i = 1; i <= 10; ++i) MustPut(*s, "k" + std::to_string(i), "v");
  if (s.durable()) s.Reopen();
  auto noop = [](const std::vector<WatchEvent>&) {};

  // History holds revisions 6..10, so "everything after 4" cannot be served.
  CHECK(s->WatchFrom(4, "", noop).status().code() == absl::StatusCode::kOutOfRange);
  CHECK(s->WatchFrom(0, "", noop).status().code() == absl::StatusCode::kOutOfRange);
  CHECK(s->WatchFrom(-1, "", noop).status().code() == absl::StatusCode::kInvalidArgument);

  Collector oldest;
  auto w1 = s->WatchFrom(5, "", oldest.Fn());
  REQUIRE(w1.ok());
  REQUIRE(oldest.WaitForEvents(5));
  CHECK(oldest.Summary() ==
        std::vector<std::string>{"6:P:k6", "7:P:k7", "8:P:k8", "9:P:k9", "10:P:k10"});

  Collector future;
  auto w2 = s->WatchFrom(12, "", future.Fn());
  REQUIRE(w2.ok());
  MustPut(*s, "k11", "v");
  MustPut(*s, "k12", "v");
  MustPut(*s, "k13", "v");
  REQUIRE(future.WaitForEvents(1));
  REQUIRE(oldest.WaitForEvents(8));
  CHECK(future.Summary() == std::vector<std::string>{"13:P:k13"});
}

TEST_CASE("store: destroying a watch stops callbacks and waits for a running one", "[store]") {
  FOR_EACH_STORE(s);

  SECTION("no callbacks after destruction") {
    Collector c;
    auto w = s->WatchFrom(0, "", c.Fn());
    REQUIRE(w.ok());
    MustPut(*s, "a", "1");
    REQUIRE(c.WaitForEvents(1));
    w->reset();
    MustPut(*s, "a", "2");
    MustPut(*s, "b", "1");
    std::this_thread::sleep_for(50ms);
    CHECK(c.Summary() == std::vector<std::string>{"1:P:a"});
  }

  SECTION("destructor waits for the running callback") {
    std::atomic<bool> started{false};
    std::atomic<bool> finished{false};
    auto w = s->WatchFrom(0, "", [&](const std::vector<WatchEvent>&) {
      started = true;
      std::this_thread::sleep_for(100ms);
      finished = true;
    });
    REQUIRE(w.ok());
    MustPut(*s, "a", "1");
    while (!started) std::this_thread::sleep_for(1ms);
    w->reset();
    CHECK(finished);
  }

  SECTION("a callback may use the store and destroy its own watch") {
    std::mutex mu;
    std::unique_ptr<Store::Watch> self;
    int calls = 0;
    std::string seen;
    {
      std::lock_guard<std::mutex> lock(mu);  // the callback waits until `self` is set
      auto w = s->WatchFrom(0, "", [&](const std::vector<WatchEvent>& events) {
        std::lock_guard<std::mutex> lock(mu);
        ++calls;
        auto kv = s->Get(events[0].kv.key);  // no deadlock: callbacks run without store locks
        if (kv.ok() && kv->has_value()) seen = (*kv)->value;
        self.reset();
      });
      REQUIRE(w.ok());
      self = std::move(w).value();
    }
    MustPut(*s, "a", "1");
    for (int i = 0; i < 1000; ++i) {
      std::lock_guard<std::mutex> lock(mu);
      if (self == nullptr) break;
      std::this_thread::sleep_for(1ms);
    }
    MustPut(*s, "a", "2");
    std::this_thread::sleep_for(50ms);
    std::lock_guard<std::mutex> lock(mu);
    CHECK(self == nullptr);
    CHECK(calls == 1);
    CHECK(seen == "1");
  }

  SECTION("handles may outlive the store") {
    Collector c;
    auto w = s->WatchFrom(0, "", c.Fn());
    REQUIRE(w.ok());
    MustPut(*s, "a", "1");
    REQUIRE(c.WaitForEvents(1));
    s.Reopen();  // destroys the store first
    w->reset();
  }
}

TEST_CASE("store: concurrent writers get gap-free revisions", "[store]") {
  FOR_EACH_STORE(s);
  constexpr int kThreads = 4;
  const int per_thread = s.durable() ? 50 : 500;  // each durable Put is an fsync
  const size_t total = static_cast<size_t>(kThreads * per_thread);

  Collector watched;
  auto w = s->WatchFrom(0, "", watched.Fn());
  REQUIRE(w.ok());

  std::vector<std::vector<int64_t>> revs(kThreads);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        // Half the writes hit a shared key so versions are contended too.
        const std::string key =
            i % 2 ? "shared" : "t" + std::to_string(t) + "/" + std::to_string(i);
        auto rev = s->Put(key, std::to_string(i));
        if (!rev.ok()) {
          ++failures;
          continue;
        }
        revs[t].push_back(*rev);
      }
    });
  }
  for (auto& th : threads) th.join();
  REQUIRE(failures == 0);

  std::vector<int64_t> all;
  for (const auto& r : revs) {
    CHECK(std::is_sorted(r.begin(), r.end()));  // a thread's own writes are ordered
    all.insert(all.end(), r.begin(), r.end());
  }
  std::sort(all.begin(), all.end());
  REQUIRE(all.size() == total);
  for (size_t i = 0; i < all.size(); ++i) REQUIRE(all[i] == static_cast<int64_t>(i + 1));
  CHECK(s->Revision() == static_cast<int64_t>(total));
  CHECK(MustGet(*s, "shared").version == static_cast<int64_t>(total / 2));

  REQUIRE(watched.WaitForEvents(total));
  int64_t expect = 1;
  for (const auto& batch : watched.Batches()) {
    REQUIRE(batch.size() == 1);
    REQUIRE(batch[0].kv.mod_revision == expect++);
  }
}

TEST_CASE("sqlite store: reopen sees all data and the same revision", "[store][sqlite]") {
  Harness s("sqlite");
  MustPut(*s, "a", "1");
  MustPut(*s, "a", "2");
  REQUIRE(s->Txn({{Store::Op::kPut, "b", "x"}, {Store::Op::kPut, "c", "y"}}).ok());
  REQUIRE(s->Delete("c").ok());
  CHECK(s->Revision() == 4);

  // One process per data dir: a second open would hand out the same revisions.
  auto second = OpenSqliteStore(s.dir());
  CHECK(second.status().code() == absl::StatusCode::kFailedPrecondition);

  s.Reopen();
  CHECK(s->Revision() == 4);
  KeyValue a = MustGet(*s, "a");
  CHECK(a.value == "2");
  CHECK(a.version == 2);
  CHECK(a.create_revision == 1);
  CHECK(a.mod_revision == 2);
  auto all = s->Range("");
  REQUIRE(all.ok());
  CHECK(Keys(*all) == std::vector<std::string>{"a", "b"});
  CHECK(MustPut(*s, "d", "z") == 5);
  CHECK(std::filesystem::exists(s.dir() + "/weft.db"));
}

TEST_CASE("sqlite store: an acknowledged put survives SIGKILL", "[store][sqlite]") {
  TempDir dir;
  struct Record {
    int64_t index;
    int64_t revision;
  };
  // Three crashes at different points, each run continuing the previous one's store.
  for (int kill_after : {1, 57, 150}) {
    CAPTURE(kill_after);
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      // Child: no Catch2 here, just report and _exit.
      close(fds[0]);
      auto store = OpenSqliteStore(dir.path());
      if (!store.ok()) _exit(2);
      for (int64_t i = 0; i < 200; ++i) {
        auto rev = (*store)->Put("run" + std::to_string(kill_after) + "/" + std::to_string(i),
                                 "value" + std::to_string(i));
        if (!rev.ok()) _exit(3);
        Record rec{i, *rev};
        if (write(fds[1], &rec, sizeof(rec)) != sizeof(rec)) _exit(4);
      }
      _exit(0);
    }
    close(fds[1]);
    std::vector<Record> reported;
    Record rec;
    size_t have = 0;
    bool killed = false;
    while (true) {
      const ssize_t n = read(fds[0], reinterpret_cast<char*>(&rec) + have, sizeof(rec) - have);
      if (n <= 0) break;  // EOF: the child is gone
      have += static_cast<size_t>(n);
      if (have < sizeof(rec)) continue;
      have = 0;
      reported.push_back(rec);
      if (!killed && reported.size() == static_cast<size_t>(kill_after)) {
        kill(pid, SIGKILL);
        killed = true;
      }
    }
    close(fds[0]);
    int wstatus = 0;
    REQUIRE(waitpid(pid, &wstatus, 0) == pid);
    REQUIRE(WIFSIGNALED(wstatus));
    CHECK(WTERMSIG(wstatus) == SIGKILL);
    REQUIRE(reported.size() >= static_cast<size_t>(kill_after));

    auto reopened = OpenSqliteStore(dir.path());
    REQUIRE(reopened.ok());
    Store& store = **reopened;
    CHECK(store.Revision() >= reported.back().revision);
    for (const Record& r : reported) {
      CAPTURE(r.index, r.revision);
      KeyValue kv =
          MustGet(store, "run" + std::to_string(kill_after) + "/" + std::to_string(r.index));
      CHECK(kv.mod_revision == r.revision);
      CHECK(kv.value == "value" + std::to_string(r.index));
    }
  }
}

}  // namespace
}  // namespace weft::cp
