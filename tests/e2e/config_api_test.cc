// The config API end to end: a real weft-cp, driven by the real `weftctl` binary (exit codes and
// output are the contract scripts rely on), observed by real xDS clients — Debian's libgrpc++
// proxyless resolver and step-driven SotW streams — and by the admin endpoints.
//
// ctest runs every TEST_CASE in its own process, so the gRPC xDS bootstrap (a process-wide
// singleton read on first use) can be set per test case.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <grpcpp/grpcpp.h>
#include <algorithm>
#include <atomic>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tests/e2e/e2e_util.h"
#include "tests/e2e/echo_backends.h"
#include "tests/e2e/test_certs.h"
#include "tests/support/process.h"
#include "tests/support/xds_client.h"
#include "weft/config/v1/config_service.grpc.pb.h"

#ifndef WEFT_SOURCE_DIR
#error "WEFT_SOURCE_DIR must be defined (tests/e2e/CMakeLists.txt)"
#endif

namespace weft::test {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// --- weftctl -----------------------------------------------------------------------------------

struct CtlResult {
  int exit_code = -1;  // -1: did not exit normally (killed, or still running at the timeout)
  std::string out;
  std::string err;
  milliseconds took{0};
};

std::ostream& operator<<(std::ostream& os, const CtlResult& r) {
  return os << "exit " << r.exit_code << " after " << r.took.count() << " ms\n--- stdout ---\n"
            << r.out << "--- stderr ---\n"
            << r.err;
}

// Runs build/bin/weftctl with `args` as a Subprocess; stdout and stderr are kept apart (a shell
// redirects stderr) so a test can check which stream a message went to.
CtlResult RunWeftctl(const std::vector<std::string>& args, milliseconds timeout = seconds(60)) {
  static TempDir logs("weftctl-out");
  static int counter = 0;
  std::string base = logs.Join("run-" + std::to_string(counter++));
  std::vector<std::string> argv = {"/bin/sh", "-c", "exec \"$@\" 2>\"$WEFTCTL_STDERR\"", "sh",
                                   BinDir() + "/weftctl"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string error;
  auto start = steady_clock::now();
  auto p = Subprocess::Start(argv, {{"WEFTCTL_STDERR", base + ".err"}}, base + ".out", &error);
  CtlResult r;
  if (!p) {
    r.err = "cannot start weftctl: " + error;
    return r;
  }
  std::optional<int> status = p->Wait(timeout);
  r.took = std::chrono::duration_cast<milliseconds>(steady_clock::now() - start);
  if (status && WIFEXITED(*status)) r.exit_code = WEXITSTATUS(*status);
  r.out = p->Log();
  r.err = ReadFile(base + ".err").value_or("");
  return r;
}

// --- weft-cp -----------------------------------------------------------------------------------

// weft-cp with an (empty) config dir, a durable data dir, and the config API port.
class ApiCp {
 public:
  explicit ApiCp(const std::string& data_dir) : config_("weft-api-config"), data_dir_(data_dir) {}
  ~ApiCp() {
    if (CurrentTestFailed() && cp_.process) {
      std::fprintf(stderr, "---- weft-cp log (tail) ----\n%s\n---- end of weft-cp log ----\n",
                   cp_.LogTail(12000).c_str());
    }
  }

  void Start(const std::vector<std::string>& extra_args = {}) {
    std::string error;
    std::vector<std::string> args = {"--data-dir", data_dir_,     "--debounce-ms",
                                     "20",         "--log-level", "debug"};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    auto cp = StartWeftCp(config_.path(), args, &error);
    INFO(error);
    REQUIRE(cp.has_value());
    cp_ = std::move(*cp);
  }

  // SIGKILL: no shutdown path runs, as in a crash or an OOM kill.
  void Kill9() {
    REQUIRE(cp_.process);
    cp_.process->Kill(SIGKILL);
    REQUIRE(cp_.process->Wait(seconds(5)).has_value());
    cp_ = WeftCp();
  }

  // SIGSTOP / SIGCONT: a server that stops answering for a while (swapped out, paused VM).
  void Signal(int sig) {
    REQUIRE(cp_.process);
    cp_.process->Kill(sig);
  }

  int xds_port() const { return cp_.xds_port; }
  int admin_port() const { return cp_.admin_port; }
  std::string server() const { return "127.0.0.1:" + std::to_string(cp_.api_port); }

  CtlResult Ctl(std::vector<std::string> args, milliseconds timeout = seconds(60)) const {
    args.insert(args.begin(), {"--server", server()});
    return RunWeftctl(args, timeout);
  }

  std::string Admin(std::string_view path) const {
    HttpResponse r = HttpGet(cp_.admin_port, path);
    INFO("GET " << path << " -> " << r.status << "\n" << r.body);
    REQUIRE(r.status == 200);
    return r.body;
  }

  // True once /debug/proxies lists every node in `ids`.
  bool WaitForProxies(const std::vector<std::string>& ids) const {
    return WaitFor(
        [&] {
          auto json = ParseJson(HttpGet(cp_.admin_port, "/debug/proxies").body);
          if (!json) return false;
          for (const auto& id : ids) {
            if (!FindProxy(*json, id)) return false;
          }
          return true;
        },
        seconds(10), milliseconds(20));
  }

 private:
  TempDir config_;
  std::string data_dir_;
  WeftCp cp_;
};

// Writes `contents` to a fresh file in `dir` and returns its path.
std::string WriteYaml(const TempDir& dir, const std::string& name, const std::string& contents) {
  std::string path = dir.Join(name);
  REQUIRE(WriteFileAtomic(path, contents));
  return path;
}

std::string ServiceYaml(const std::string& name, int port, const std::vector<int>& endpoints) {
  std::string out = "kind: Service\nname: " + name + "\nports: [{port: " + std::to_string(port) +
                    ", protocol: GRPC}]\n";
  if (!endpoints.empty()) out += "endpoints:\n";
  for (int p : endpoints) out += "- {address: 127.0.0.1, port: " + std::to_string(p) + "}\n";
  return out;
}

// --- xDS clients -------------------------------------------------------------------------------

// An ADS SotW stream subscribed to every cluster (wildcard CDS) whose background thread answers
// each response: ACK, nothing at all (a stuck proxy: the stream stays open, no answer is sent), or
// NACK.
class ScriptedProxy {
 public:
  enum class Mode { kAck, kSilent, kNack };

  ScriptedProxy(int xds_port, std::string node_id)
      : node_id_(std::move(node_id)), client_(xds_port) {
    auto node = MakeNode(node_id_);
    client_.Send(SotwRequest(kCds, {}, &node));
    thread_ = std::thread([this] { Loop(); });
  }
  ~ScriptedProxy() {
    stop_ = true;
    thread_.join();
  }

  void set_mode(Mode mode) { mode_ = mode; }
  const std::string& node_id() const { return node_id_; }
  int responses() const { return responses_; }
  std::vector<std::string> cluster_names() const {
    std::lock_guard lock(mu_);
    return last_names_;
  }

  static constexpr std::string_view kNackMessage = "weft-test: this proxy refuses the new clusters";

 private:
  void Loop() {
    std::string last_good;
    while (!stop_) {
      auto r = client_.Next(milliseconds(20));
      if (!r) continue;
      {
        std::lock_guard lock(mu_);
        last_names_ = Names(*r);
      }
      ++responses_;
      switch (mode_.load()) {
        case Mode::kAck:
          client_.Send(SotwAck(*r, {}));
          last_good = r->version_info();
          break;
        case Mode::kSilent:
          break;
        case Mode::kNack:
          client_.Send(SotwNack(*r, {}, last_good, kNackMessage));
          break;
      }
    }
  }

  std::string node_id_;
  SotwClient client_;
  std::atomic<Mode> mode_{Mode::kAck};
  std::atomic<bool> stop_{false};
  std::atomic<int> responses_{0};
  mutable std::mutex mu_;
  std::vector<std::string> last_names_;
  std::thread thread_;
};

// --- 1. proxyless gRPC over a YAML Service -----------------------------------------------------

TEST_CASE("config_api: proxyless gRPC reaches the endpoints of a Service applied with weftctl",
          "[e2e][api][proxyless]") {
  EchoBackend b1("backend-1"), b2("backend-2"), b3("backend-3");
  REQUIRE(b1.ok());
  REQUIRE(b2.ok());
  REQUIRE(b3.ok());

  TempDir data("weft-api-data");
  TempDir files("weft-api-files");
  ApiCp cp(data.path());
  cp.Start();

  std::string v1 =
      WriteYaml(files, "echo-v1.yaml", ServiceYaml("echo", 8080, {b1.port(), b2.port()}));
  CtlResult applied = cp.Ctl({"apply", "-f", v1, "--wait"});
  INFO(applied);
  REQUIRE(applied.exit_code == 0);
  CHECK(Contains(applied.out, "Service/default/echo created"));
  CHECK(Contains(applied.out, "in sync"));

  SetGrpcXdsBootstrap(cp.xds_port(), "proxyless-1");
  // Namespace `default` gets the short listener name `echo` (docs/config.md).
  auto stub = ConnectEcho("xds:///echo", cp.admin_port());

  auto before = SprayUntilAll(*stub, {"backend-1", "backend-2"}, seconds(10));
  INFO("before the update: " << Show(before));
  CHECK(before["backend-1"] > 0);
  CHECK(before["backend-2"] > 0);
  CHECK(before.size() == 2);  // nothing else answered, no RPC failed

  // Move traffic from backend 1 to backend 3; RPCs keep flowing while weftctl runs.
  std::string v2 =
      WriteYaml(files, "echo-v2.yaml", ServiceYaml("echo", 8080, {b2.port(), b3.port()}));
  std::atomic<bool> saw_b3{false};
  std::atomic<bool> stop{false};
  std::map<std::string, int> during;
  auto changed_at = steady_clock::now();
  steady_clock::time_point b3_at;
  std::thread sprayer([&] {
    while (!stop && steady_clock::now() - changed_at < seconds(5)) {
      auto c = Spray(*stub, 1);
      for (const auto& [k, v] : c) during[k] += v;
      if (c.count("backend-3") > 0) {
        b3_at = steady_clock::now();
        saw_b3 = true;
        return;
      }
      std::this_thread::sleep_for(milliseconds(2));
    }
  });
  CtlResult updated = cp.Ctl({"apply", "-f", v2, "--wait", "--timeout", "5"});
  sprayer.join();
  INFO(updated);
  CHECK(updated.exit_code == 0);
  CHECK(Contains(updated.out, "Service/default/echo updated"));
  CHECK(Contains(updated.out, "all 1 proxies in sync"));
  INFO("RPCs during the update: " << Show(during));
  REQUIRE(saw_b3);
  auto latency = std::chrono::duration_cast<milliseconds>(b3_at - changed_at);
  INFO("backend-3 first answered " << latency.count() << " ms after weftctl apply started");
  CHECK(latency < seconds(1));

  auto after = Spray(*stub, 30);
  INFO("after the update: " << Show(after));
  CHECK(after.count("backend-1") == 0);
  CHECK(after["backend-2"] > 0);
  CHECK(after["backend-3"] > 0);
  CHECK(after["backend-2"] + after["backend-3"] == 30);
}

// --- 2. refused applies change nothing ---------------------------------------------------------

TEST_CASE("config_api: weftctl apply refuses invalid configs with field paths and changes nothing",
          "[e2e][api]") {
  TempDir data("weft-api-data");
  TempDir files("weft-api-files");
  ApiCp cp(data.path());
  cp.Start();

  std::string base =
      WriteYaml(files, "base.yaml",
                ServiceYaml("echo", 8080, {9001}) + "---\n" + ServiceYaml("other", 8080, {9002}) +
                    "---\n"
                    "kind: Route\n"
                    "name: r\n"
                    "hosts: [echo]\n"
                    "rules:\n"
                    "- destinations: [{service: other}]\n");
  CtlResult applied = cp.Ctl({"apply", "-f", base, "--wait"});
  INFO(applied);
  REQUIRE(applied.exit_code == 0);

  CtlResult get_before = cp.Ctl({"get"});
  REQUIRE(get_before.exit_code == 0);
  REQUIRE(Contains(get_before.out, "Service/default/echo"));
  REQUIRE(Contains(get_before.out, "Route/default/r"));
  std::string snapshots_before = cp.Admin("/debug/snapshots");
  REQUIRE(Contains(snapshots_before, "echo.default:8080"));

  struct Case {
    std::string name;
    std::string file;
    std::string yaml;
    std::vector<std::string> expected;  // substrings of stderr
  };
  std::vector<Case> cases = {
      {"unknown LB algorithm (YAML enum)",
       "bad-policy.yaml",
       "kind: Policy\n"
       "name: echo\n"
       "service: echo\n"
       "lb:\n"
       "  algorithm: FASTEST_POSSIBLE\n",
       {"bad-policy.yaml:5: lb.algorithm: ", "FASTEST_POSSIBLE"}},
      {"route to an unknown service",
       "bad-route.yaml",
       "kind: Route\n"
       "name: r\n"
       "hosts: [echo]\n"
       "rules:\n"
       "- destinations: [{service: nope}]\n",
       {"Route/default/r.rules[0].destinations[0].service", "nope"}},
      {"duplicate names in one apply",
       "dup.yaml",
       ServiceYaml("fresh", 8080, {9003}) + "---\n" + ServiceYaml("fresh", 9090, {9004}),
       {"Service/default/fresh", "twice"}},
      {"bad regex in a route match",
       "bad-regex.yaml",
       "kind: Route\n"
       "name: r2\n"
       "hosts: [echo]\n"
       "rules:\n"
       "- match: {path: {regex: \"/v[0-9+/.*\"}}\n"
       "  destinations: [{service: other}]\n",
       {"Route/default/r2.rules[0].match.path.regex", "invalid regex"}},
  };
  for (const Case& c : cases) {
    INFO("case: " << c.name);
    std::string path = WriteYaml(files, c.file, c.yaml);
    CtlResult r = cp.Ctl({"apply", "-f", path, "--wait", "--timeout", "2"});
    INFO(r);
    CHECK(r.exit_code == 1);
    for (const auto& e : c.expected) CHECK(Contains(r.err, e));
    CtlResult get_after = cp.Ctl({"get"});
    CHECK(get_after.exit_code == 0);
    CHECK(get_after.out == get_before.out);
  }

  // A dry run of a valid change: reported, not stored, not served.
  std::string valid = WriteYaml(files, "valid.yaml", ServiceYaml("newcomer", 8080, {9005}));
  CtlResult dry = cp.Ctl({"apply", "-f", valid, "--dry-run"});
  INFO(dry);
  CHECK(dry.exit_code == 0);
  CHECK(Contains(dry.out, "Service/default/newcomer created"));
  CHECK(Contains(dry.out, "dry run"));
  CtlResult get_newcomer = cp.Ctl({"get", "Service/default/newcomer"});
  CHECK(get_newcomer.exit_code == 1);
  CHECK(cp.Ctl({"get"}).out == get_before.out);

  // Give a (wrong) publish time to show up before comparing what is served.
  std::this_thread::sleep_for(milliseconds(200));
  CHECK(cp.Admin("/debug/snapshots") == snapshots_before);
}

// --- 3. apply --wait follows the proxies' ACKs -------------------------------------------------

// weft-cp with two ScriptedProxies, proxy-a and proxy-b, connected to it.
struct TwoProxies {
  TwoProxies() : cp(data.path()) {
    cp.Start();
    a.emplace(cp.xds_port(), "proxy-a");
    b.emplace(cp.xds_port(), "proxy-b");
    REQUIRE(cp.WaitForProxies({"proxy-a", "proxy-b"}));
  }

  // Writes Service `name` (port 8080, one endpoint) to <name>.yaml and runs
  // `weftctl apply -f <name>.yaml --wait --timeout <timeout>`.
  CtlResult ApplyService(const std::string& name, int endpoint, const std::string& timeout) {
    std::string file = WriteYaml(files, name + ".yaml", ServiceYaml(name, 8080, {endpoint}));
    return cp.Ctl({"apply", "-f", file, "--wait", "--timeout", timeout});
  }

  TempDir data{"weft-api-data"};
  TempDir files{"weft-api-files"};
  ApiCp cp;
  std::optional<ScriptedProxy> a;
  std::optional<ScriptedProxy> b;
};

TEST_CASE_METHOD(TwoProxies,
                 "config_api: weftctl apply --wait returns once every proxy ACKed and names the "
                 "laggards",
                 "[e2e][api]") {
  CtlResult r1 = ApplyService("one", 9001, "10");
  INFO(r1);
  REQUIRE(r1.exit_code == 0);
  CHECK(Contains(r1.out, "all 2 proxies in sync"));
  // Both were really sent the new cluster before weftctl said so.
  CHECK(a->cluster_names() == std::vector<std::string>{"one.default:8080"});
  CHECK(b->cluster_names() == std::vector<std::string>{"one.default:8080"});

  // proxy-b goes quiet: its stream stays open but it never answers again.
  b->set_mode(ScriptedProxy::Mode::kSilent);
  int b_responses = b->responses();
  CtlResult r2 = ApplyService("two", 9002, "2");
  INFO(r2);
  CHECK(r2.exit_code == 3);
  CHECK(Contains(r2.out, "Service/default/two created"));
  CHECK(Contains(r2.err, "timed out"));
  CHECK(Contains(r2.err, "laggard: proxy-b"));
  CHECK_FALSE(Contains(r2.err, "proxy-a"));
  CHECK(r2.took >= milliseconds(1900));
  CHECK(r2.took < seconds(10));
  // It was pushed the change and did not answer (rather than never being sent it).
  CHECK(b->responses() > b_responses);
}

TEST_CASE_METHOD(TwoProxies,
                 "config_api: weftctl apply --wait exits 1 when a proxy NACKs the change",
                 "[e2e][api]") {
  CtlResult r1 = ApplyService("one", 9001, "10");
  INFO(r1);
  REQUIRE(r1.exit_code == 0);

  b->set_mode(ScriptedProxy::Mode::kNack);
  CtlResult r2 = ApplyService("two", 9002, "10");
  INFO(r2);
  CHECK(r2.exit_code == 1);
  CHECK(Contains(r2.err, "refused by proxies"));
  CHECK(Contains(r2.err, "proxy-b"));
  CHECK(Contains(r2.err, std::string(ScriptedProxy::kNackMessage)));
  CHECK_FALSE(Contains(r2.err, "proxy-a"));
  CHECK(r2.took < seconds(8));  // answered by the NACK, not by the timeout

  // `weftctl status` shows the same NACK.
  CtlResult st = cp.Ctl({"status"});
  INFO(st);
  CHECK(st.exit_code == 0);
  CHECK(Contains(st.out, std::string(ScriptedProxy::kNackMessage)));
}

// --- 4. durability -----------------------------------------------------------------------------

TEST_CASE("config_api: objects applied with weftctl survive a SIGKILL of weft-cp", "[e2e][api]") {
  TempDir data("weft-api-data");
  const std::string mesh = std::string(WEFT_SOURCE_DIR) + "/deploy/examples/mesh";

  std::string snapshots_before;
  std::string get_before;
  {
    ApiCp cp(data.path());
    cp.Start();
    CtlResult applied = cp.Ctl({"apply", "-f", mesh, "--wait", "--timeout", "10"});
    INFO(applied);
    REQUIRE(applied.exit_code == 0);
    CHECK(Contains(applied.out, "Service/default/payments created"));
    CHECK(Contains(applied.out, "Route/default/payments-canary created"));
    CHECK(Contains(applied.out, "Policy/default/payments-v2 created"));
    snapshots_before = cp.Admin("/debug/snapshots");
    CtlResult got = cp.Ctl({"get"});
    REQUIRE(got.exit_code == 0);
    get_before = got.out;
    cp.Kill9();
  }
  CHECK(Contains(snapshots_before, "payments.default:8080"));
  CHECK(Contains(snapshots_before, "payments-v2.default:8080"));

  ApiCp restarted(data.path());
  restarted.Start();
  // The store is loaded before the ready file is written, but publishing is asynchronous.
  std::string snapshots_after;
  bool same = WaitFor(
      [&] {
        snapshots_after = HttpGet(restarted.admin_port(), "/debug/snapshots").body;
        return snapshots_after == snapshots_before;
      },
      seconds(5), milliseconds(20));
  INFO("before the kill: " << snapshots_before);
  INFO("after the restart: " << snapshots_after);
  CHECK(same);
  CtlResult got = restarted.Ctl({"get"});
  INFO(got);
  CHECK(got.exit_code == 0);
  CHECK(got.out == get_before);
}

// --- 5. status, proxy-config, delete, usage, unreachable ---------------------------------------

TEST_CASE("config_api: weftctl status and proxy-config show what a connected proxy was sent",
          "[e2e][api]") {
  TempDir data("weft-api-data");
  TempDir files("weft-api-files");
  ApiCp cp(data.path());
  cp.Start();

  std::string svc =
      WriteYaml(files, "svc.yaml",
                ServiceYaml("alpha", 8080, {9001}) + "---\n" + ServiceYaml("beta", 9090, {9002}));
  CtlResult applied = cp.Ctl({"apply", "-f", svc, "--wait"});
  INFO(applied);
  REQUIRE(applied.exit_code == 0);

  ScriptedProxy p(cp.xds_port(), "sidecar-7");
  REQUIRE(cp.WaitForProxies({"sidecar-7"}));
  CtlResult waited = cp.Ctl({"wait", "--timeout", "10"});
  INFO(waited);
  REQUIRE(waited.exit_code == 0);

  auto snapshots = ParseJson(cp.Admin("/debug/snapshots"));
  REQUIRE(snapshots.has_value());
  std::string cluster_version =
      JsonString(*JsonAt(*snapshots, "groups"), "default.cluster.version");
  INFO("/debug/snapshots: " << ToJson(*snapshots));
  REQUIRE_FALSE(cluster_version.empty());

  CtlResult st = cp.Ctl({"status"});
  INFO(st);
  CHECK(st.exit_code == 0);
  CHECK(Contains(st.out, "1 proxies connected"));
  bool found_row = false;
  for (size_t pos = 0, eol; pos < st.out.size(); pos = eol + 1) {
    eol = st.out.find('\n', pos);
    if (eol == std::string::npos) eol = st.out.size();
    std::string line = st.out.substr(pos, eol - pos);
    if (Contains(line, "sidecar-7") && Contains(line, "cluster") && Contains(line, "sotw") &&
        Contains(line, "yes")) {
      // Sent and ACKed: the version appears twice on the row.
      size_t first = line.find(cluster_version);
      found_row = first != std::string::npos &&
                  line.find(cluster_version, first + cluster_version.size()) != std::string::npos;
    }
  }
  CHECK(found_row);

  CtlResult node_only = cp.Ctl({"status", "--node", "someone-else"});
  CHECK(node_only.exit_code == 0);
  CHECK_FALSE(Contains(node_only.out, "sidecar-7"));

  CtlResult pc = cp.Ctl({"proxy-config", "sidecar-7"});
  INFO(pc);
  CHECK(pc.exit_code == 0);
  auto pc_json = ParseJson(pc.out);
  REQUIRE(pc_json.has_value());
  CHECK(JsonString(*JsonAt(*pc_json, "node_id"), "") == "sidecar-7");
  CHECK(Contains(pc.out, "\"alpha.default:8080\""));
  CHECK(Contains(pc.out, "\"beta.default:9090\""));

  CtlResult missing = cp.Ctl({"proxy-config", "nobody"});
  CHECK(missing.exit_code == 1);
  CHECK(Contains(missing.err, "nobody"));
}

TEST_CASE("config_api: weftctl delete refuses to break references and deletes what is unreferenced",
          "[e2e][api]") {
  TempDir data("weft-api-data");
  TempDir files("weft-api-files");
  ApiCp cp(data.path());
  cp.Start();

  std::string all =
      WriteYaml(files, "all.yaml",
                ServiceYaml("front", 8080, {9001}) + "---\n" + ServiceYaml("back", 8080, {9002}) +
                    "---\n" + ServiceYaml("lonely", 8080, {9003}) +
                    "---\n"
                    "kind: Route\n"
                    "name: front-to-back\n"
                    "hosts: [front]\n"
                    "rules:\n"
                    "- destinations: [{service: back}]\n");
  CtlResult applied = cp.Ctl({"apply", "-f", all, "--wait"});
  INFO(applied);
  REQUIRE(applied.exit_code == 0);
  std::string snapshots_before = cp.Admin("/debug/snapshots");

  CtlResult refused = cp.Ctl({"delete", "Service/default/back"});
  INFO(refused);
  CHECK(refused.exit_code == 1);
  CHECK(Contains(refused.err, "Route/default/front-to-back"));
  CHECK(Contains(refused.err, "back"));
  CHECK(cp.Ctl({"get", "Service/default/back"}).exit_code == 0);

  CtlResult deleted = cp.Ctl({"delete", "Service/default/lonely", "--wait"});
  INFO(deleted);
  CHECK(deleted.exit_code == 0);
  CHECK(Contains(deleted.out, "Service/default/lonely deleted"));
  CtlResult gone = cp.Ctl({"get", "Service/default/lonely"});
  CHECK(gone.exit_code == 1);
  CHECK(Contains(gone.err, "not found"));
  std::string snapshots_after = cp.Admin("/debug/snapshots");
  CHECK(Contains(snapshots_before, "lonely.default:8080"));
  CHECK_FALSE(Contains(snapshots_after, "lonely.default:8080"));
  CHECK(Contains(snapshots_after, "back.default:8080"));

  CtlResult again = cp.Ctl({"delete", "Service/default/lonely"});
  CHECK(again.exit_code == 1);

  // Route first, then the service it referenced.
  CHECK(cp.Ctl({"delete", "Route/default/front-to-back"}).exit_code == 0);
  CHECK(cp.Ctl({"delete", "Service/default/back"}).exit_code == 0);
}

TEST_CASE("config_api: weftctl exit codes for usage errors and an unreachable server",
          "[e2e][api]") {
  CtlResult unknown = RunWeftctl({"--server", "127.0.0.1:1", "frobnicate"});
  INFO(unknown);
  CHECK(unknown.exit_code == 2);
  CHECK(Contains(unknown.err, "frobnicate"));

  CtlResult no_cmd = RunWeftctl({});
  CHECK(no_cmd.exit_code == 2);
  CtlResult bad_flag = RunWeftctl({"--no-such-flag", "get"});
  CHECK(bad_flag.exit_code == 2);
  CtlResult apply_no_file = RunWeftctl({"--server", "127.0.0.1:1", "apply"});
  CHECK(apply_no_file.exit_code == 2);

  // Nothing listens: the connection is refused and every command fails fast.
  for (const char* cmd : {"get", "status", "wait"}) {
    INFO("command " << cmd);
    CtlResult r = RunWeftctl({"--server", "127.0.0.1:1", cmd}, seconds(30));
    INFO(r);
    CHECK(r.exit_code == 4);
    CHECK(r.took < seconds(3));
  }

  // A server that accepts TCP connections but never speaks: only the RPC deadline ends it.
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  REQUIRE(::listen(fd, 16) == 0);
  socklen_t len = sizeof(addr);
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  std::string mute = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  for (const char* cmd : {"get", "status"}) {
    INFO("command " << cmd << " against a mute server");
    CtlResult r = RunWeftctl({"--server", mute, "--rpc-timeout", "1", cmd}, seconds(30));
    INFO(r);
    CHECK(r.exit_code == 4);
    CHECK(r.took < seconds(4));
  }
  ::close(fd);
}

// --- 6. the gRPC API refuses what it does not understand -----------------------------------------

TEST_CASE(
    "config_api: a request carrying unknown field numbers is refused, naming object and field",
    "[e2e][api]") {
  TempDir data("weft-api-data");
  ApiCp cp(data.path());
  cp.Start();
  auto stub = config::v1::ConfigService::NewStub(
      grpc::CreateChannel(cp.server(), grpc::InsecureChannelCredentials()));
  auto call_apply = [&](const config::v1::ApplyRequest& req, config::v1::ApplyResponse* resp) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + seconds(10));
    return stub->Apply(&ctx, req, resp);
  };

  config::v1::ApplyRequest req;
  auto* svc = req.add_objects()->mutable_service();
  svc->set_name("known");
  svc->add_ports()->set_port(8080);
  // What a client built from a newer schema would send: a field inside a port, and an object
  // kind this weft-cp has never heard of.
  svc->mutable_ports(0)
      ->GetReflection()
      ->MutableUnknownFields(svc->mutable_ports(0))
      ->AddVarint(99, 1);
  auto* future = req.add_objects();
  future->GetReflection()->MutableUnknownFields(future)->AddLengthDelimited(77, "name: x");
  config::v1::ApplyResponse resp;
  grpc::Status s = call_apply(req, &resp);
  INFO(s.error_message());
  CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(
      Contains(s.error_message(), "objects[0] (Service/default/known).ports[0]: field number 99"));
  CHECK(Contains(s.error_message(), "objects[1]: field number 77"));
  CHECK(Contains(s.error_message(), "refused rather than ignored"));
  CHECK(cp.Ctl({"get", "Service/default/known"}).exit_code == 1);  // nothing stored

  // The same object without the unknown field is fine.
  svc->mutable_ports(0)->GetReflection()->MutableUnknownFields(svc->mutable_ports(0))->Clear();
  req.mutable_objects()->RemoveLast();
  s = call_apply(req, &resp);
  INFO(s.error_message());
  CHECK(s.ok());
  CHECK(cp.Ctl({"get", "Service/default/known"}).exit_code == 0);

  // Every other request is checked too.
  config::v1::StatusRequest status_req;
  status_req.GetReflection()->MutableUnknownFields(&status_req)->AddVarint(5, 1);
  config::v1::StatusResponse status_resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + seconds(10));
  s = stub->Status(&ctx, status_req, &status_resp);
  CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(Contains(s.error_message(), "StatusRequest: field number 5"));
}

// --- 7. private keys go nowhere they were not scoped to ------------------------------------------

constexpr std::string_view kSds =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";
// A real key (weft-cp checks that it matches its certificate); what matters is whether these
// bytes leave weft-cp.
std::string KeyBody() { return WorkloadCertificate().key_line; }

std::string SecretFile(std::string_view name, std::string_view scope) {
  std::string out;
  if (!scope.empty()) out += "node_groups: [" + std::string(scope) + "]\n";
  out +=
      "resources:\n"
      "- \"@type\": " +
      std::string(kSds) +
      "\n"
      "  name: " +
      std::string(name) +
      "\n"
      "  tls_certificate:\n"
      "    certificate_chain: {inline_string: " +
      QuotedPem(WorkloadCertificate().chain_pem) +
      "}\n"
      "    private_key: {inline_string: " +
      QuotedPem(WorkloadCertificate().key_pem) + "}\n";
  return out;
}

// What a node gets when it asks for `secret` on a fresh ADS stream: the first SotW request of
// a type is always answered, so an empty answer means "not yours".
DiscoveryResponse AskForSecret(int xds_port, const std::string& node_id,
                               const std::string& secret) {
  SotwClient client(xds_port);
  auto node = MakeNode(node_id, "");
  REQUIRE(client.Send(SotwRequest(kSds, {secret}, &node)));
  auto r = client.Next(seconds(5));
  REQUIRE(r.has_value());
  return *r;
}

bool CarriesKey(const DiscoveryResponse& r) { return Contains(r.SerializeAsString(), KeyBody()); }

TEST_CASE(
    "config_api: no private key over an unscoped ADS stream, scoped keys only with "
    "--insecure-serve-private-keys, redacted in proxy-config",
    "[e2e][api][secrets]") {
  SECTION("off by default: a key is refused, scoped or not, and no node gets it") {
    TempDir config("weft-secrets");
    REQUIRE(WriteFileAtomic(config.Join("unscoped.yaml"), SecretFile("server-cert", "")));
    REQUIRE(WriteFileAtomic(config.Join("scoped.yaml"), SecretFile("trusted-cert", "trusted")));
    std::string error;
    auto cp = StartWeftCp(config.path(), {}, &error);
    INFO(error);
    REQUIRE(cp.has_value());
    std::string dir_state = HttpGet(cp->admin_port, "/debug/config").body;
    INFO(dir_state);
    CHECK(Contains(dir_state, "unscoped.yaml"));
    CHECK(Contains(dir_state,
                   "resources[0].tls_certificate.private_key: holds an inline private key"));
    CHECK(Contains(dir_state, "scoped.yaml"));
    CHECK(Contains(dir_state, "served only with --insecure-serve-private-keys"));
    CHECK_FALSE(Contains(dir_state, KeyBody()));
    for (const char* node : {"stranger", "trusted"}) {
      INFO("node " << node);
      for (const char* secret : {"server-cert", "trusted-cert"}) {
        DiscoveryResponse r = AskForSecret(cp->xds_port, node, secret);
        CHECK(r.resources_size() == 0);
        CHECK_FALSE(CarriesKey(r));
      }
    }
    CHECK_FALSE(Contains(cp->process->Log(), KeyBody()));
  }

  SECTION("turned on: only the scoped group gets it, with a warning; never shown in dumps") {
    TempDir config("weft-secrets");
    REQUIRE(WriteFileAtomic(config.Join("unscoped.yaml"), SecretFile("server-cert", "")));
    REQUIRE(WriteFileAtomic(config.Join("scoped.yaml"), SecretFile("trusted-cert", "trusted")));
    std::string error;
    auto cp = StartWeftCp(config.path(), {"--insecure-serve-private-keys"}, &error);
    INFO(error);
    REQUIRE(cp.has_value());
    CHECK(Contains(cp->process->Log(), "--insecure-serve-private-keys"));
    CHECK(Contains(cp->process->Log(), "local development only"));
    // Unscoped stays refused even with the flag.
    std::string dir_state = HttpGet(cp->admin_port, "/debug/config").body;
    INFO(dir_state);
    CHECK(Contains(dir_state, "unscoped.yaml"));
    CHECK_FALSE(Contains(dir_state, "/scoped.yaml"));

    DiscoveryResponse stranger = AskForSecret(cp->xds_port, "stranger", "trusted-cert");
    CHECK(stranger.resources_size() == 0);
    CHECK_FALSE(CarriesKey(stranger));
    CHECK_FALSE(CarriesKey(AskForSecret(cp->xds_port, "stranger", "server-cert")));

    // The group it was scoped to gets it: the node id names the group.
    SotwClient trusted(cp->xds_port);
    auto node = MakeNode("trusted", "");
    REQUIRE(trusted.Send(SotwRequest(kSds, {"trusted-cert"}, &node)));
    auto r = trusted.Next(seconds(5));
    REQUIRE(r.has_value());
    CHECK(Names(*r) == std::vector<std::string>{"trusted-cert"});
    CHECK(CarriesKey(*r));
    REQUIRE(trusted.Send(SotwAck(*r, {"trusted-cert"})));

    // What the node was sent, as an operator sees it: redacted.
    std::string pc;
    REQUIRE(WaitFor(
        [&] {
          CtlResult res = RunWeftctl(
              {"--server", "127.0.0.1:" + std::to_string(cp->api_port), "proxy-config", "trusted"});
          pc = res.out;
          return res.exit_code == 0 && Contains(pc, "trusted-cert");
        },
        seconds(10), milliseconds(100)));
    INFO(pc);
    CHECK(Contains(pc, "[redacted]"));
    CHECK(Contains(pc, "BEGIN CERTIFICATE"));  // only the key fields are redacted
    CHECK_FALSE(Contains(pc, KeyBody()));
    for (const char* path : {"/debug/snapshots", "/debug/proxies", "/debug/config"}) {
      INFO(path);
      CHECK_FALSE(Contains(HttpGet(cp->admin_port, path).body, KeyBody()));
    }
  }
}

// --- 8. apply is honest about time and size ----------------------------------------------------

std::string ManyServices(int n, int first = 0) {
  std::string out;
  for (int i = first; i < first + n; ++i) {
    if (!out.empty()) out += "---\n";
    out += ServiceYaml("svc-" + std::to_string(i), 8080, {9000 + i % 1000});
  }
  return out;
}

TEST_CASE("config_api: applying what is stored already is a no-op that keeps the revision",
          "[e2e][api]") {
  TempDir data("weft-api-data");
  TempDir files("weft-api-files");
  ApiCp cp(data.path());
  cp.Start();
  std::string f = WriteYaml(files, "mesh.yaml", ManyServices(3));
  CtlResult first = cp.Ctl({"apply", "-f", f});
  INFO(first);
  REQUIRE(first.exit_code == 0);
  // Revisions are store-wide: the CA's first start wrote its root, so the first apply's
  // revision is whatever came next; the no-op apply must keep it.
  size_t at = first.out.find("revision ");
  REQUIRE(at != std::string::npos);
  std::string rev = first.out.substr(at + 9, first.out.find('\n', at) - at - 9);
  CtlResult again = cp.Ctl({"apply", "-f", f, "--wait", "--timeout", "5"});
  INFO(again);
  CHECK(again.exit_code == 0);
  CHECK(Contains(again.out, "Service/default/svc-0 unchanged"));
  CHECK_FALSE(Contains(again.out, "created"));
  CHECK_FALSE(Contains(again.out, "updated"));
  CHECK(Contains(again.out, "revision " + rev + "\n"));
  CtlResult st = cp.Ctl({"status"});
  CHECK(Contains(st.out, "revision " + rev + " (serving " + rev + ")"));
}

TEST_CASE("config_api: a request above the size limit is refused as too large, exit 1",
          "[e2e][api]") {
  TempDir data("weft-api-data");
  TempDir files("weft-api-files");
  ApiCp cp(data.path());
  cp.Start({"--max-api-request-bytes", "10000"});
  std::string big = WriteYaml(files, "big.yaml", ManyServices(400));
  CtlResult r = cp.Ctl({"apply", "-f", big});
  INFO(r);
  CHECK(r.exit_code == 1);
  CHECK(Contains(r.err, "too large: "));
  CHECK(Contains(r.err, " bytes, limit 10000"));
  CHECK(cp.Ctl({"get", "Service/default/svc-0"}).exit_code == 1);
  // Below the limit it goes through.
  std::string small = WriteYaml(files, "small.yaml", ManyServices(10));
  CHECK(cp.Ctl({"apply", "-f", small}).exit_code == 0);
}

TEST_CASE(
    "config_api: an apply past its deadline is either committed and reported so, or not "
    "committed ever",
    "[e2e][api]") {
  TempDir data("weft-api-data");
  TempDir files("weft-api-files");
  ApiCp cp(data.path());
  cp.Start();

  SECTION("a request settled before it arrives is refused when it does") {
    auto stub = config::v1::ConfigService::NewStub(
        grpc::CreateChannel(cp.server(), grpc::InsecureChannelCredentials()));
    config::v1::SettleRequest settle;
    settle.set_request_id("gave-up-on-this");
    config::v1::SettleResponse settled;
    {
      grpc::ClientContext ctx;
      REQUIRE(stub->Settle(&ctx, settle, &settled).ok());
    }
    CHECK_FALSE(settled.committed());
    config::v1::ApplyRequest req;
    auto* svc = req.add_objects()->mutable_service();
    svc->set_name("late");
    svc->add_ports()->set_port(8080);
    req.set_request_id("gave-up-on-this");
    config::v1::ApplyResponse resp;
    grpc::ClientContext ctx;
    grpc::Status s = stub->Apply(&ctx, req, &resp);
    INFO(s.error_message());
    CHECK(s.error_code() == grpc::StatusCode::ABORTED);
    CHECK(Contains(s.error_message(), "not applied"));
    CHECK(cp.Ctl({"get", "Service/default/late"}).exit_code == 1);
    // A fresh id goes through; settling it afterwards reports the commit.
    req.set_request_id("fresh");
    grpc::ClientContext ctx2;
    REQUIRE(stub->Apply(&ctx2, req, &resp).ok());
    settle.set_request_id("fresh");
    grpc::ClientContext ctx3;
    REQUIRE(stub->Settle(&ctx3, settle, &settled).ok());
    CHECK(settled.committed());
    CHECK(settled.revision() == resp.revision());
  }

  SECTION("weftctl's answer matches what the server did when the deadline passes") {
    for (int round = 0; round < 3; ++round) {
      INFO("round " << round);
      std::string name = "paused-" + std::to_string(round);
      std::string f = WriteYaml(files, name + ".yaml", ServiceYaml(name, 8080, {9001}));
      // weft-cp stops answering; weftctl's 1 s deadline passes while its request waits.
      cp.Signal(SIGSTOP);
      CtlResult r;
      std::thread ctl([&] { r = cp.Ctl({"apply", "-f", f, "--rpc-timeout", "1"}); });
      std::this_thread::sleep_for(milliseconds(1500 + 200 * round));
      cp.Signal(SIGCONT);
      ctl.join();
      INFO(r);
      REQUIRE((r.exit_code == 0 || r.exit_code == 4));
      // Give a late commit every chance to show up, then compare with what weftctl said.
      std::this_thread::sleep_for(milliseconds(500));
      bool stored = cp.Ctl({"get", "Service/default/" + name}).exit_code == 0;
      if (r.exit_code == 0) {
        CHECK(Contains(r.err, "the answer came late"));
        CHECK(Contains(r.out, "revision "));
        CHECK(stored);
      } else {
        CHECK(Contains(r.err, "not applied"));
        CHECK(Contains(r.err, "nothing changed"));
        CHECK_FALSE(stored);
      }
    }
  }
}

// --- cpscale: incremental publishing, seen by a Delta ADS client ----------------------------

// A sidecar of service `group` on a Delta ADS stream subscribed to everything ("*") of the four
// types; it ACKs each response and keeps what it holds (type -> name -> version), as Envoy does.
class DeltaSidecar {
 public:
  using Held = std::map<std::string, std::map<std::string, std::string>>;
  static constexpr std::string_view kTypes[] = {kCds, kEds, kLds, kRds};

  DeltaSidecar(int xds_port, const std::string& group, const Held& initial = {})
      : client_(xds_port) {
    auto node = MakeNode("sidecar-" + group, group);
    bool first = true;
    for (std::string_view type : kTypes) {
      auto it = initial.find(std::string(type));
      REQUIRE(client_.Send(DeltaRequest(type, {"*"},
                                        it != initial.end() ? it->second : Held::mapped_type{},
                                        first ? &node : nullptr)));
      first = false;
    }
    held_ = initial;
  }

  // Takes responses until none came for `quiet`, ACKing each; returns them.
  std::vector<DeltaDiscoveryResponse> Drain(milliseconds first = seconds(5),
                                            milliseconds quiet = milliseconds(700)) {
    std::vector<DeltaDiscoveryResponse> out;
    auto r = client_.Next(first);
    while (r) {
      REQUIRE(client_.Send(DeltaAck(*r)));
      auto& held = held_[r->type_url()];
      for (const auto& res : r->resources()) held[res.name()] = res.version();
      for (const std::string& name : r->removed_resources()) held.erase(name);
      out.push_back(*std::move(r));
      r = client_.Next(quiet);
    }
    return out;
  }

  const Held& held() const { return held_; }

 private:
  DeltaClient client_;
  Held held_;
};

// "type name" of every resource the responses carried, and "type -name" of every removal.
std::vector<std::string> Pushed(const std::vector<DeltaDiscoveryResponse>& responses) {
  std::vector<std::string> out;
  for (const auto& r : responses) {
    std::string type = r.type_url().substr(r.type_url().rfind('.') + 1);
    for (const auto& res : r.resources()) out.push_back(type + " " + res.name());
    for (const std::string& name : r.removed_resources()) out.push_back(type + " -" + name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string HttpService(const std::string& name, int endpoint_port) {
  return "kind: Service\nname: " + name +
         "\nports: [{port: 8080, protocol: HTTP}]\nendpoints:\n"
         "- {address: 127.0.0.1, port: " +
         std::to_string(endpoint_port) +
         "}\n- {address: 127.0.0.2, port: " + std::to_string(endpoint_port) + "}\n";
}

std::string IncrementalMesh(int b_endpoint_port, int b_timeout_s) {
  return HttpService("a", 9001) + "---\n" + HttpService("b", b_endpoint_port) + "---\n" +
         HttpService("c", 9003) +
         "---\nkind: Route\nname: canary\nhosts: [a]\nrules:\n"
         "- match: {path: {prefix: /canary/}}\n"
         "  destinations: [{service: a, weight: 90}, {service: b, weight: 10}]\n"
         "---\nkind: Policy\nname: b-policy\nservice: b\n"
         "lb: {algorithm: RING_HASH, hash_on: {header: x-user}}\nconnect_timeout: " +
         std::to_string(b_timeout_s) + "s\n";
}

TEST_CASE(
    "config_api: an endpoint-only change pushes only that service's ClusterLoadAssignment and a "
    "policy change only its cluster, also after a restart",
    "[e2e][api][incremental]") {
  TempDir data("weft-api-data");
  TempDir files("weft-api-files");
  ApiCp cp(data.path());
  cp.Start();
  std::string f = WriteYaml(files, "mesh.yaml", IncrementalMesh(9002, 2));
  CtlResult applied = cp.Ctl({"apply", "-f", f});
  INFO(applied);
  REQUIRE(applied.exit_code == 0);

  // Two sidecars: one in a's node group (its inbound listener and cluster on top), one in c's.
  DeltaSidecar sa(cp.xds_port(), "a");
  DeltaSidecar sc(cp.xds_port(), "c");
  for (DeltaSidecar* s : {&sa, &sc}) {
    s->Drain();
    CHECK(s->held().at(std::string(kEds)).contains("b.default:8080"));
    CHECK(s->held().at(std::string(kRds)).contains("outbound_http"));
  }
  CHECK(sa.held().at(std::string(kLds)).contains("inbound|8080|a.default"));
  CHECK_FALSE(sc.held().at(std::string(kLds)).contains("inbound|8080|a.default"));
  const DeltaSidecar::Held before_a = sa.held(), before_c = sc.held();

  // b's endpoints move: one ClusterLoadAssignment to every sidecar, with a new version, and no
  // other push of any type.
  WriteYaml(files, "mesh.yaml", IncrementalMesh(9102, 2));
  applied = cp.Ctl({"apply", "-f", f});
  INFO(applied);
  REQUIRE(applied.exit_code == 0);
  CHECK(Contains(applied.out, "Service/default/b updated"));
  for (auto [s, before] : {std::pair{&sa, &before_a}, std::pair{&sc, &before_c}}) {
    auto pushed = s->Drain();
    CHECK(pushed.size() == 1);
    CHECK(Pushed(pushed) == std::vector<std::string>{"ClusterLoadAssignment b.default:8080"});
    DeltaSidecar::Held expected = *before;
    expected[std::string(kEds)]["b.default:8080"] =
        s->held().at(std::string(kEds)).at("b.default:8080");
    CHECK(expected[std::string(kEds)]["b.default:8080"] !=
          before->at(std::string(kEds)).at("b.default:8080"));
    CHECK(s->held() == expected);
  }

  // b's Policy gets another connect timeout: b's Cluster changes, nothing else does (no
  // listeners, no routes: the hash policy is the same). Its ClusterLoadAssignment comes along
  // unchanged, as Envoy needs to finish warming an updated cluster.
  WriteYaml(files, "mesh.yaml", IncrementalMesh(9102, 3));
  applied = cp.Ctl({"apply", "-f", f});
  INFO(applied);
  REQUIRE(applied.exit_code == 0);
  CHECK(Contains(applied.out, "Policy/default/b-policy updated"));
  for (DeltaSidecar* s : {&sa, &sc}) {
    const DeltaSidecar::Held before = s->held();
    CHECK(Pushed(s->Drain()) == std::vector<std::string>{"Cluster b.default:8080",
                                                         "ClusterLoadAssignment b.default:8080"});
    DeltaSidecar::Held expected = before;
    expected[std::string(kCds)]["b.default:8080"] =
        s->held().at(std::string(kCds)).at("b.default:8080");
    CHECK(expected[std::string(kCds)]["b.default:8080"] !=
          before.at(std::string(kCds)).at("b.default:8080"));
    CHECK(s->held() == expected);
  }

  // A reconnecting sidecar that lists what it holds is sent nothing, also by a restarted
  // weft-cp that rebuilt its model from the store (versions are content hashes).
  const DeltaSidecar::Held held_a = sa.held();
  cp.Kill9();
  cp.Start();
  DeltaSidecar again(cp.xds_port(), "a", held_a);
  CHECK(Pushed(again.Drain(seconds(2))).empty());
  CHECK(again.held() == held_a);
  // ... and is sent what changed since.
  WriteYaml(files, "mesh.yaml", IncrementalMesh(9202, 3));
  applied = cp.Ctl({"apply", "-f", f});
  REQUIRE(applied.exit_code == 0);
  CHECK(Pushed(again.Drain()) == std::vector<std::string>{"ClusterLoadAssignment b.default:8080"});
}

}  // namespace
}  // namespace weft::test
