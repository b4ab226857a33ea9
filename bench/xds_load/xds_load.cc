// weft-xds-load: the control-plane scenario. Starts weft-cp on a generated config (S services
// × E endpoints, one file per service), opens N simulated proxies (ADS streams that ACK like
// real ones, Delta or SotW), then changes one endpoint at a time and measures how long until
// every proxy has received and ACKed it; also weft-cp's RSS and CPU per connected proxy.
//
//   build/bin/weft-xds-load --proxies 1000 --services 1000 --endpoints 10 --mode delta
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/flags.h"
#include "tests/support/process.h"
#include "tests/support/xds_client.h"

namespace {

using weft::test::DeltaClient;
using weft::test::SotwClient;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kCds = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
constexpr std::string_view kEds =
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

std::string ServiceFile(int s, int endpoints, int shift) {
  std::string out = absl::StrCat(
      "resources:\n"
      "- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\n"
      "  name: svc-",
      s,
      "\n  type: EDS\n  eds_cluster_config: { eds_config: { ads: {} } }\n"
      "- \"@type\": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment\n"
      "  cluster_name: svc-",
      s,
      "\n  endpoints:\n  - locality: { zone: z1 }\n"
      "    load_balancing_weight: 1\n    lb_endpoints:\n");
  for (int e = 0; e < endpoints; ++e) {
    absl::StrAppend(&out, "    - endpoint: { address: { socket_address: { address: 10.", s / 250,
                    ".", s % 250, ".", e + 1, ", port_value: ", 8000 + shift + e, " } } }\n");
  }
  return out;
}

long RssKb(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

double CpuSeconds(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  size_t close = s.rfind(')');
  std::istringstream rest(s.substr(close + 2));
  std::string field;
  unsigned long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoul(field);
    if (i == 15) stime = std::stoul(field);
  }
  return static_cast<double>(utime + stime) / sysconf(_SC_CLK_TCK);
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * (v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

// One simulated proxy: subscribes to every cluster and its endpoints, ACKs everything, and
// records when the first EDS response of each change round arrived.
struct SimProxy {
  int id;
  bool delta;
  int services;
  std::atomic<int>* round;
  std::atomic<int> synced_round{-1};    // last round whose EDS arrived
  std::vector<Clock::time_point> seen;  // per round
  std::atomic<bool> initial_done{false};
  Clock::time_point initial_at;
  std::atomic<bool> stop{false};
  std::atomic<bool> failed{false};
  std::thread thread;

  void Run(int port, int rounds) {
    seen.assign(rounds + 1, Clock::time_point{});
    std::vector<std::string> names;
    for (int s = 0; s < services; ++s) names.push_back(absl::StrCat("svc-", s));
    auto node = weft::test::MakeNode(absl::StrCat("sim-", id), "sim");
    size_t eds_held = 0;
    auto on_eds = [&](size_t resources) {
      eds_held = delta ? eds_held + resources : resources;
      if (!initial_done && eds_held >= static_cast<size_t>(services)) {
        initial_at = Clock::now();
        initial_done = true;
        return;
      }
      int r = round->load();
      if (initial_done && r > synced_round.load()) {
        seen[r] = Clock::now();
        synced_round = r;
      }
    };
    if (delta) {
      DeltaClient c(port);
      if (!c.Send(weft::test::DeltaRequest(kCds, {"*"}, {}, &node))) return void(failed = true);
      bool eds_subscribed = false;
      while (!stop) {
        auto resp = c.Next(std::chrono::milliseconds(200));
        if (!resp) continue;
        c.Send(weft::test::DeltaAck(*resp));
        if (resp->type_url() == kCds && !eds_subscribed) {
          c.Send(weft::test::DeltaRequest(kEds, names));
          eds_subscribed = true;
        } else if (resp->type_url() == kEds) {
          on_eds(resp->resources_size());
        }
      }
      c.Cancel();
    } else {
      SotwClient c(port);
      if (!c.Send(weft::test::SotwRequest(kCds, {}, &node))) return void(failed = true);
      bool eds_subscribed = false;
      while (!stop) {
        auto resp = c.Next(std::chrono::milliseconds(200));
        if (!resp) continue;
        bool eds = resp->type_url() == kEds;
        c.Send(weft::test::SotwAck(*resp, eds ? names : std::vector<std::string>{}));
        if (resp->type_url() == kCds && !eds_subscribed) {
          c.Send(weft::test::SotwRequest(kEds, names));
          eds_subscribed = true;
        } else if (eds) {
          on_eds(resp->resources_size());
        }
      }
      c.Cancel();
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  int64_t proxies = 100, services = 1000, endpoints = 10, changes = 5, debounce_ms = 10;
  std::string mode = "delta";
  weft::FlagSet flags("weft-xds-load", "[flags]");
  flags.Int("proxies", &proxies, "simulated proxies (ADS streams)");
  flags.Int("services", &services, "clusters, one ClusterLoadAssignment each");
  flags.Int("endpoints", &endpoints, "endpoints per service");
  flags.Int("changes", &changes, "endpoint changes to time, one after another");
  flags.Int("debounce-ms", &debounce_ms, "weft-cp --debounce-ms");
  flags.String("mode", &mode, "delta or sotw");
  if (auto s = flags.Parse(argc, argv); !s.ok() || flags.help_requested()) {
    std::fputs(flags.Help().c_str(), s.ok() ? stdout : stderr);
    return s.ok() ? 0 : 2;
  }
  // Thousands of sockets and threads.
  rlimit nofile{65536, 65536};
  setrlimit(RLIMIT_NOFILE, &nofile);

  weft::test::TempDir dir("weft-xds-load");
  for (int s = 0; s < services; ++s) {
    weft::test::WriteFileAtomic(dir.Join(absl::StrCat("svc-", s, ".yaml")),
                                ServiceFile(s, static_cast<int>(endpoints), 0));
  }
  std::string error;
  auto cp = weft::test::StartWeftCp(
      dir.path(), {"--debounce-ms", std::to_string(debounce_ms), "--log-level", "warning"}, &error);
  if (!cp) {
    std::fprintf(stderr, "weft-xds-load: %s\n", error.c_str());
    return 1;
  }
  pid_t pid = cp->process->pid();
  long rss_idle = RssKb(pid);

  std::atomic<int> round{0};
  std::vector<std::unique_ptr<SimProxy>> sims;
  auto start = Clock::now();
  for (int i = 0; i < proxies; ++i) {
    auto p = std::make_unique<SimProxy>();
    p->id = i;
    p->delta = mode == "delta";
    p->services = static_cast<int>(services);
    p->round = &round;
    SimProxy* raw = p.get();
    p->thread = std::thread([raw, port = cp->xds_port, n = changes] { raw->Run(port, n); });
    sims.push_back(std::move(p));
  }
  auto all = [&](auto pred) {
    return std::all_of(sims.begin(), sims.end(), [&](const auto& p) { return pred(*p); });
  };
  bool synced =
      weft::test::WaitFor([&] { return all([](SimProxy& p) { return p.initial_done.load(); }); },
                          std::chrono::seconds(300), std::chrono::milliseconds(20));
  double initial_s = std::chrono::duration<double>(Clock::now() - start).count();
  long rss_loaded = RssKb(pid);
  std::printf("mode=%s proxies=%lld services=%lld endpoints/service=%lld debounce=%lldms\n",
              mode.c_str(), static_cast<long long>(proxies), static_cast<long long>(services),
              static_cast<long long>(endpoints), static_cast<long long>(debounce_ms));
  std::printf("initial sync of all proxies at once: %.2f s%s\n", initial_s,
              synced ? "" : " (TIMED OUT)");
  std::printf("weft-cp RSS: idle %.1f MB, with proxies %.1f MB -> %.1f KB per proxy\n",
              rss_idle / 1024.0, rss_loaded / 1024.0,
              proxies > 0 ? static_cast<double>(rss_loaded - rss_idle) / proxies : 0.0);

  std::vector<double> latencies_ms;
  double cpu0 = CpuSeconds(pid);
  for (int r = 1; r <= changes && synced; ++r) {
    int s = (r * 7919) % static_cast<int>(services);
    round = r;
    auto t0 = Clock::now();
    weft::test::WriteFileAtomic(dir.Join(absl::StrCat("svc-", s, ".yaml")),
                                ServiceFile(s, static_cast<int>(endpoints), r * 100));
    bool done = weft::test::WaitFor(
        [&] { return all([r](SimProxy& p) { return p.synced_round.load() >= r; }); },
        std::chrono::seconds(60), std::chrono::milliseconds(2));
    std::vector<double> round_ms;
    for (auto& p : sims) {
      if (p->synced_round >= r) {
        round_ms.push_back(std::chrono::duration<double, std::milli>(p->seen[r] - t0).count());
      }
    }
    std::printf(
        "change %d (svc-%d): all %s in %.1f ms; p50 %.1f ms, p99 %.1f ms (includes the "
        "file watch and %lld ms debounce)\n",
        r, s, done ? "received" : "NOT received", Percentile(round_ms, 1.0),
        Percentile(round_ms, 0.5), Percentile(round_ms, 0.99), static_cast<long long>(debounce_ms));
    latencies_ms.insert(latencies_ms.end(), round_ms.begin(), round_ms.end());
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  double cpu = CpuSeconds(pid) - cpu0;
  std::printf(
      "over %lld changes: p50 %.1f ms, p99 %.1f ms, max %.1f ms; weft-cp CPU %.3f s "
      "(%.2f ms per proxy per change)\n",
      static_cast<long long>(changes), Percentile(latencies_ms, 0.5),
      Percentile(latencies_ms, 0.99), Percentile(latencies_ms, 1.0), cpu,
      proxies > 0 && changes > 0 ? cpu * 1000 / (proxies * changes) : 0.0);
  for (auto& p : sims) p->stop = true;
  for (auto& p : sims) p->thread.join();
  return synced ? 0 : 1;
}
