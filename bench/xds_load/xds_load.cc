// weft-xds-load: the control-plane scenario. Starts weft-cp on a generated config (S services
// × E endpoints, one file per service), opens N simulated proxies (ADS streams that ACK like
// real ones, Delta or SotW, each on its own connection), then:
//   1. initial sync: all N connect at once and subscribe to every cluster and its endpoints;
//   2. changes: rewrites one service's file at a time and measures how long until every proxy
//      has received (and ACKed) the new ClusterLoadAssignment;
//   3. --restart: SIGKILLs weft-cp, changes one service while it is down, restarts it on the
//      same ports and config dir, and measures how long until all N proxies, reconnecting at
//      once (Delta with initial_resource_versions as weft-proxy does, SotW with version_info),
//      are in sync again, and how many bytes and resources were resent.
// For each phase it reports weft-cp's CPU seconds and RSS (from /proc), per connected proxy.
//
//   build/bin/weft-xds-load --proxies 1000 --services 1000 --endpoints 10 --mode delta --restart
//
// The simulated proxies use gRPC's callback API: no thread per proxy, so the load tool's own
// scheduling stays out of the measurement as far as two shared cores allow. WEFT_CP_BIN picks
// another weft-cp binary (to compare builds under the same load).
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "common/flags.h"
#include "common/strings.h"
#include "envoy/service/discovery/v3/ads.grpc.pb.h"
#include "tests/support/process.h"

namespace {

using envoy::service::discovery::v3::AggregatedDiscoveryService;
using envoy::service::discovery::v3::DeltaDiscoveryRequest;
using envoy::service::discovery::v3::DeltaDiscoveryResponse;
using envoy::service::discovery::v3::DiscoveryRequest;
using envoy::service::discovery::v3::DiscoveryResponse;
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

// The same service as a Weft object (--schema weft): weft-cp translates it into its cluster,
// endpoints, listeners and routes ("svc-<s>.default:8080").
// `grpc` switches the port's protocol: a change of the cluster, listeners and routes.
std::string WeftServiceFile(int s, int endpoints, int shift, bool grpc = false) {
  std::string out =
      absl::StrCat("kind: Service\nname: svc-", s,
                   "\nports: [{port: 8080, protocol: ", grpc ? "GRPC" : "HTTP", "}]\nendpoints:\n");
  for (int e = 0; e < endpoints; ++e) {
    absl::StrAppend(&out, "- {address: 10.", s / 250 % 250, ".", s % 250, ".", e + 1,
                    ", port: ", 8000 + shift + e, "}\n");
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

// utime + stime of every thread of `pid`, in seconds.
double CpuSeconds(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  size_t close = s.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(s.substr(close + 2));
  std::string field;
  unsigned long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoul(field);
    if (i == 15) stime = std::stoul(field);
  }
  return static_cast<double>(utime + stime) / sysconf(_SC_CLK_TCK);
}

double SelfCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
         (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * (v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// Names are svc-<i>; a proxy keeps what it holds as one version per index (0 = not held), not
// as maps of strings, so a thousand simulated proxies stay cheap.
int ServiceIndex(std::string_view name) {
  if (!name.starts_with("svc-")) return -1;
  name.remove_prefix(4);
  // "svc-12" (raw) or "svc-12.default:8080" (Weft objects).
  size_t end = name.find('.');
  int i = -1;
  if (!absl::SimpleAtoi(weft::Sv(name.substr(0, end)), &i)) return -1;
  return i;
}

uint64_t ParseHex(const std::string& v) {
  uint64_t out = 0;
  if (!absl::SimpleHexAtoi(weft::Sv(v), &out) || out == 0) out = 1;  // held, version unknown
  return out;
}

// What every simulated proxy reads; written by the main thread between phases.
struct Plan {
  int services = 0;
  std::vector<std::string> names;  // svc-0 .. svc-(S-1): the EDS subscription
  std::atomic<int> round{0};       // the change being timed
  std::atomic<bool> restart_phase{false};
  std::atomic<int> restart_changed{-1};  // the service changed while weft-cp was down
};

// One ADS stream. Sessions are kept (not deleted) until their proxy is, so that Stop() can
// cancel one without racing its teardown.
template <typename Req, typename Resp>
class Session final : public grpc::ClientBidiReactor<Req, Resp> {
 public:
  using OnResponse = std::function<void(Session*, const Resp&)>;
  using OnEnd = std::function<void(Session*, const grpc::Status&)>;
  Session(OnResponse on_response, OnEnd on_end)
      : on_response_(std::move(on_response)), on_end_(std::move(on_end)) {
    // Block in the channel until weft-cp is (back) up instead of failing fast.
    ctx_.set_wait_for_ready(true);
  }
  grpc::ClientContext* context() { return &ctx_; }

  void Start() {
    this->StartRead(&response_);
    this->StartCall();
  }

  void Send(Req request) {
    std::lock_guard lock(mu_);
    if (writing_) {
      queue_.push_back(std::move(request));
      return;
    }
    writing_ = true;
    current_ = std::move(request);
    this->StartWrite(&current_);
  }

  // A request already sent, cleared: protobuf keeps a cleared repeated field's strings for
  // reuse, so refilling a SotW ACK's 1000 names costs no allocation. The simulated proxies
  // share the machine with weft-cp; what they spend is not spent serving them.
  Req Spare() {
    std::lock_guard lock(mu_);
    if (spare_.empty()) return Req();
    Req r = std::move(spare_.back());
    spare_.pop_back();
    return r;
  }

  void OnWriteDone(bool ok) override {
    {
      std::lock_guard lock(mu_);
      current_.Clear();
      if (spare_.size() < 2) spare_.push_back(std::move(current_));
      if (ok && !queue_.empty()) {
        current_ = std::move(queue_.front());
        queue_.erase(queue_.begin());
        this->StartWrite(&current_);
        return;
      }
      writing_ = false;
      queue_.clear();
    }
    // A stream that cannot send is of no use: end it, so the proxy reconnects.
    if (!ok) ctx_.TryCancel();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows with the status
    on_response_(this, response_);
    response_.Clear();
    this->StartRead(&response_);
  }

  void OnDone(const grpc::Status& status) override { on_end_(this, status); }

 private:
  OnResponse on_response_;
  OnEnd on_end_;
  grpc::ClientContext ctx_;
  Resp response_;
  std::mutex mu_;
  std::vector<Req> spare_;
  bool writing_ = false;
  Req current_;
  std::vector<Req> queue_;
};

// A simulated proxy: subscribes to every cluster (wildcard) and every ClusterLoadAssignment,
// ACKs everything, reconnects when the stream ends, and records when each timed change (and,
// after a restart, the resync) reached it.
class Sim {
 public:
  Sim(int id, bool delta, int port, Plan* plan, int rounds, std::string node_cluster)
      : id_(id), delta_(delta), plan_(plan), seen_(rounds + 1) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(64 << 20);
    // Each proxy gets its own connection, as real sidecars have.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    // Reconnect quickly after a restart: the resync time should be the control plane's, not
    // the client's backoff (real proxies back off longer, with jitter, which spreads the herd).
    // Not GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: gRPC also takes it as the connect timeout, and a
    // 100 ms handshake deadline under a reconnect storm turns into a storm of aborted
    // connections.
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 250);
    // gRPC's transparent retry can replay a stream's first messages on a second attempt while
    // the first one lingers half-open (seen with 1.51 across a restart: a stream that never
    // hears back). xDS clients reconnect themselves; so do these.
    args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
    channel_ = grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port),
                                         grpc::InsecureChannelCredentials(), args);
    stub_ = AggregatedDiscoveryService::NewStub(channel_);
    node_.set_id(absl::StrCat("sim-", id));
    // A node cluster naming a service puts the proxy in that service's node group (its
    // sidecars get its inbound listeners and clusters on top of the shared resources).
    node_.set_cluster(node_cluster);
    held_[0].assign(plan->services, 0);
    held_[1].assign(plan->services, 0);
  }

  ~Sim() { Stop(); }

  void Start() {
    std::lock_guard lock(mu_);
    OpenLocked();
  }

  void Stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    CancelCurrent();
    std::unique_lock lock(mu_);
    done_cv_.wait(lock, [&] { return live_ == 0; });
  }

  // Ends the current stream as a crashed control plane would; the proxy reconnects by itself.
  void CancelCurrent() {
    grpc::ClientContext* ctx = nullptr;
    {
      std::lock_guard lock(mu_);
      ctx = current_;
    }
    if (ctx != nullptr) ctx->TryCancel();
  }

  std::atomic<bool> initial_done{false};
  Clock::time_point initial_at;
  std::atomic<int> synced_round{-1};
  std::vector<Clock::time_point>& seen() { return seen_; }
  std::atomic<bool> resynced{false};
  Clock::time_point resynced_at;
  std::atomic<uint64_t> bytes{0};
  std::atomic<uint64_t> resources{0};
  std::atomic<uint64_t> responses{0};

  std::string Describe() {
    std::lock_guard lock(mu_);
    return absl::StrCat(node_.id(), ": streams ", sessions_, ", open ", live_,
                        ", CDS/EDS answered ", got_[0], "/", got_[1], ", last end \"", last_end_,
                        "\"");
  }

 private:
  using DeltaSession = Session<DeltaDiscoveryRequest, DeltaDiscoveryResponse>;
  using SotwSession = Session<DiscoveryRequest, DiscoveryResponse>;
  static int TypeIndex(const std::string& type_url) {
    return type_url == kCds ? 0 : type_url == kEds ? 1 : -1;
  }

  void OpenLocked() {
    ++sessions_;
    ++live_;
    got_[0] = got_[1] = false;
    eds_subscribed_ = false;
    if (delta_) {
      auto* s = new DeltaSession(
          [this](DeltaSession* s, const DeltaDiscoveryResponse& r) { OnDelta(s, r); },
          [this](DeltaSession*, const grpc::Status& st) { OnEnd(st); });
      delta_sessions_.emplace_back(s);
      current_ = s->context();
      stub_->async()->DeltaAggregatedResources(s->context(), s);
      DeltaDiscoveryRequest cds;
      *cds.mutable_node() = node_;
      cds.set_type_url(std::string(kCds));
      cds.add_resource_names_subscribe("*");
      AddInitialVersions(0, &cds);
      s->Send(std::move(cds));
      // A reconnecting proxy restates its named subscriptions at once (as weft-proxy does).
      if (sessions_ > 1) SubscribeEdsDelta(s);
      s->Start();
    } else {
      auto* s =
          new SotwSession([this](SotwSession* s, const DiscoveryResponse& r) { OnSotw(s, r); },
                          [this](SotwSession*, const grpc::Status& st) { OnEnd(st); });
      sotw_sessions_.emplace_back(s);
      current_ = s->context();
      stub_->async()->StreamAggregatedResources(s->context(), s);
      DiscoveryRequest cds;
      *cds.mutable_node() = node_;
      cds.set_type_url(std::string(kCds));
      cds.set_version_info(sotw_version_[0]);
      s->Send(std::move(cds));
      if (sessions_ > 1) SubscribeEdsSotw(s);
      s->Start();
    }
  }

  void OnEnd(const grpc::Status& status) {
    std::lock_guard lock(mu_);
    last_end_ = absl::StrCat(status.error_code(), " ", status.error_message());
    --live_;
    current_ = nullptr;
    if (stopping_) {
      done_cv_.notify_all();
      return;
    }
    OpenLocked();
  }

  void AddInitialVersions(int t, DeltaDiscoveryRequest* r) {
    for (int i = 0; i < plan_->services; ++i) {
      if (held_[t][i] != 0) {
        (*r->mutable_initial_resource_versions())[plan_->names[i]] =
            absl::StrFormat("%016x", held_[t][i]);
      }
    }
  }

  void SubscribeEdsDelta(DeltaSession* s) {
    DeltaDiscoveryRequest eds;
    eds.set_type_url(std::string(kEds));
    for (const auto& n : plan_->names) eds.add_resource_names_subscribe(n);
    AddInitialVersions(1, &eds);
    s->Send(std::move(eds));
    eds_subscribed_ = true;
  }

  void SubscribeEdsSotw(SotwSession* s) {
    DiscoveryRequest eds;
    eds.set_type_url(std::string(kEds));
    eds.set_version_info(sotw_version_[1]);
    for (const auto& n : plan_->names) eds.add_resource_names(n);
    s->Send(std::move(eds));
    eds_subscribed_ = true;
  }

  void Count(size_t bytes_in, size_t resources_in) {
    bytes += bytes_in;
    resources += resources_in;
    ++responses;
  }

  void OnDelta(DeltaSession* s, const DeltaDiscoveryResponse& r) {
    Count(r.ByteSizeLong(), r.resources_size());
    DeltaDiscoveryRequest ack;
    ack.set_type_url(r.type_url());
    ack.set_response_nonce(r.nonce());
    s->Send(std::move(ack));
    std::lock_guard lock(mu_);
    int t = TypeIndex(r.type_url());
    if (t < 0) return;
    got_[t] = true;
    bool has_changed = false;
    int changed = plan_->restart_changed.load();
    for (const auto& res : r.resources()) {
      int i = ServiceIndex(res.name());
      if (i < 0 || i >= plan_->services) continue;
      held_[t][i] = ParseHex(res.version());
      if (i == changed) has_changed = true;
    }
    for (const auto& name : r.removed_resources()) {
      int i = ServiceIndex(name);
      if (i >= 0 && i < plan_->services) held_[t][i] = 0;
    }
    if (t == 0 && !eds_subscribed_) SubscribeEdsDelta(s);
    if (t == 1) {
      size_t held = plan_->services - std::count(held_[1].begin(), held_[1].end(), 0);
      Progress(held, has_changed);
    }
  }

  void OnSotw(SotwSession* s, const DiscoveryResponse& r) {
    Count(r.ByteSizeLong(), r.resources_size());
    int t = TypeIndex(r.type_url());
    DiscoveryRequest ack = s->Spare();
    ack.set_type_url(r.type_url());
    ack.set_version_info(r.version_info());
    ack.set_response_nonce(r.nonce());
    if (t == 1) {
      for (const auto& n : plan_->names) ack.add_resource_names(n);
    }
    s->Send(std::move(ack));
    std::lock_guard lock(mu_);
    if (t < 0) return;
    got_[t] = true;
    sotw_version_[t] = r.version_info();
    if (t == 0 && !eds_subscribed_) SubscribeEdsSotw(s);
    if (t == 1) Progress(r.resources_size(), /*has_changed=*/true);
  }

  // An EDS response arrived holding `held` endpoints resources in all.
  void Progress(size_t held, bool has_changed) {
    Clock::time_point now = Clock::now();
    if (plan_->restart_phase.load()) {
      // In sync again: Delta got the change made while weft-cp was down (nothing else differs);
      // SotW got its full CDS and EDS state on the new stream.
      bool done = delta_ ? has_changed : (got_[0] && got_[1]);
      if (sessions_ > 1 && done && !resynced) {
        resynced_at = now;
        resynced = true;
      }
      return;
    }
    if (!initial_done) {
      if (held >= static_cast<size_t>(plan_->services)) {
        initial_at = now;
        initial_done = true;
      }
      return;
    }
    int r = plan_->round.load();
    if (r > synced_round.load()) {
      seen_[r] = now;
      synced_round = r;
    }
  }

  const int id_;
  const bool delta_;
  Plan* plan_;
  std::vector<Clock::time_point> seen_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<AggregatedDiscoveryService::Stub> stub_;
  envoy::config::core::v3::Node node_;

  std::mutex mu_;
  std::condition_variable done_cv_;
  bool stopping_ = false;
  int live_ = 0;
  int sessions_ = 0;
  grpc::ClientContext* current_ = nullptr;
  std::vector<std::unique_ptr<DeltaSession>> delta_sessions_;
  std::vector<std::unique_ptr<SotwSession>> sotw_sessions_;
  bool got_[2] = {false, false};  // on the current stream: CDS, EDS answered
  std::string last_end_;          // how the last stream ended
  bool eds_subscribed_ = false;
  std::vector<uint64_t> held_[2];  // Delta: version held per service, CDS and EDS
  std::string sotw_version_[2];    // SotW: last version_info accepted
};

struct Usage {
  double cpu_s;
  long rss_kb;
};

Usage UsageOf(pid_t pid) { return {CpuSeconds(pid), RssKb(pid)}; }

}  // namespace

int main(int argc, char** argv) {
  // As weft-cp does: Debian's Abseil leaves deadlock detection on for every lock gRPC takes.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  int64_t proxies = 100, services = 1000, endpoints = 10, changes = 5, debounce_ms = 10;
  std::string mode = "delta";
  std::string schema = "raw";
  int64_t groups = 0, routes = 0;
  std::string change_kind = "endpoints";
  bool restart = false;
  int64_t hold_s = 0;
  weft::FlagSet flags("weft-xds-load", "[flags]");
  flags.Int("proxies", &proxies, "simulated proxies (ADS streams, one connection each)");
  flags.Int("services", &services, "clusters, one ClusterLoadAssignment each");
  flags.Int("endpoints", &endpoints, "endpoints per service");
  flags.Int("changes", &changes, "endpoint changes to time, one after another");
  flags.Int("debounce-ms", &debounce_ms, "weft-cp --debounce-ms");
  flags.String("mode", &mode, "delta or sotw");
  flags.String("schema", &schema,
               "raw (Envoy resources, one cluster and its endpoints per file) or weft (one Weft "
               "Service per file, translated by weft-cp)");
  flags.Int("groups", &groups,
            "with --schema weft: proxies are the sidecars of this many services (node groups), "
            "round robin; 0: none (node cluster \"sim\")");
  flags.Int("routes", &routes,
            "with --schema weft: also this many Routes (svc-2i's traffic split 90/10 with "
            "svc-2i+1) and as many Policies (ring hash on svc-2i+1), as a mesh has them");
  flags.String("change-kind", &change_kind,
               "endpoints (move the changed service's endpoints) or, with --schema weft, protocol "
               "(switch its port to GRPC: its cluster, listeners and the outbound routes change; "
               "the proxies see the new cluster and its endpoints again)");
  flags.Bool("restart", &restart,
             "then SIGKILL weft-cp, change one service, restart it and time the full resync");
  flags.Int("hold-s", &hold_s,
            "pause this long after the initial sync (to attach perf, gdb or heaptrack to weft-cp)");
  if (auto s = flags.Parse(argc, argv); !s.ok() || flags.help_requested()) {
    std::fputs(flags.Help().c_str(), s.ok() ? stdout : stderr);
    return s.ok() ? 0 : 2;
  }
  if (mode != "delta" && mode != "sotw") {
    std::fprintf(stderr, "weft-xds-load: --mode must be delta or sotw\n");
    return 2;
  }
  if (schema != "raw" && schema != "weft") {
    std::fprintf(stderr, "weft-xds-load: --schema must be raw or weft\n");
    return 2;
  }
  const bool weft_schema = schema == "weft";
  if (routes > 0 && (!weft_schema || 2 * routes > services)) {
    std::fprintf(stderr,
                 "weft-xds-load: --routes needs --schema weft and 2 x routes <= services\n");
    return 2;
  }
  if (change_kind != "endpoints" && !(change_kind == "protocol" && weft_schema)) {
    std::fprintf(
        stderr, "weft-xds-load: --change-kind must be endpoints, or protocol with --schema weft\n");
    return 2;
  }
  auto service_file = [&](int s, int shift) {
    return weft_schema ? WeftServiceFile(s, static_cast<int>(endpoints), shift)
                       : ServiceFile(s, static_cast<int>(endpoints), shift);
  };
  // Thousands of sockets.
  rlimit nofile{65536, 65536};
  setrlimit(RLIMIT_NOFILE, &nofile);

  weft::test::TempDir dir("weft-xds-load");
  for (int s = 0; s < services; ++s) {
    weft::test::WriteFileAtomic(dir.Join(absl::StrCat("svc-", s, ".yaml")), service_file(s, 0));
  }
  for (int r = 0; r < routes; ++r) {
    int a = 2 * r % services, b = (2 * r + 1) % services;
    weft::test::WriteFileAtomic(
        dir.Join(absl::StrCat("route-", r, ".yaml")),
        absl::StrCat("kind: Route\nname: route-", r, "\nhosts: [svc-", a,
                     "]\nrules:\n- match: {path: {prefix: /canary/}}\n  destinations: [{service: "
                     "svc-",
                     a, ", weight: 90}, {service: svc-", b, ", weight: 10}]\n  timeout: 2s\n"));
    weft::test::WriteFileAtomic(
        dir.Join(absl::StrCat("policy-", r, ".yaml")),
        absl::StrCat("kind: Policy\nname: policy-", r, "\nservice: svc-", b,
                     "\nlb: {algorithm: RING_HASH, hash_on: {header: x-user}}\nconnect_timeout: "
                     "2s\n"));
  }
  std::vector<std::string> cp_args = {"--debounce-ms", std::to_string(debounce_ms), "--log-level",
                                      "warning"};
  std::string error;
  auto cp = weft::test::StartWeftCp(dir.path(), cp_args, &error);
  if (!cp) {
    std::fprintf(stderr, "weft-xds-load: %s\n", error.c_str());
    return 1;
  }
  pid_t pid = cp->process->pid();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  Usage idle = UsageOf(pid);
  std::printf(
      "mode=%s schema=%s change=%s proxies=%lld services=%lld endpoints/service=%lld groups=%lld "
      "routes=policies=%lld debounce=%lldms\n",
      mode.c_str(), schema.c_str(), change_kind.c_str(), static_cast<long long>(proxies),
      static_cast<long long>(services), static_cast<long long>(endpoints),
      static_cast<long long>(groups), static_cast<long long>(routes),
      static_cast<long long>(debounce_ms));
  std::printf("weft-cp idle: RSS %.1f MB, CPU %.2f s (start-up, loading the config)\n",
              idle.rss_kb / 1024.0, idle.cpu_s);
  auto per_proxy_kb = [&](long rss_kb) {
    return proxies > 0 ? static_cast<double>(rss_kb - idle.rss_kb) / proxies : 0.0;
  };

  Plan plan;
  plan.services = static_cast<int>(services);
  for (int s = 0; s < services; ++s) {
    plan.names.push_back(weft_schema ? absl::StrCat("svc-", s, ".default:8080")
                                     : absl::StrCat("svc-", s));
  }

  // 1. Initial sync, all at once.
  std::vector<std::unique_ptr<Sim>> sims;
  double self0 = SelfCpuSeconds();
  auto start = Clock::now();
  for (int i = 0; i < proxies; ++i) {
    std::string cluster =
        weft_schema && groups > 0 ? absl::StrCat("svc-", i % groups) : std::string("sim");
    sims.push_back(std::make_unique<Sim>(i, mode == "delta", cp->xds_port, &plan,
                                         static_cast<int>(changes), cluster));
  }
  for (auto& s : sims) s->Start();
  auto all = [&](auto pred) {
    return std::all_of(sims.begin(), sims.end(), [&](const auto& p) { return pred(*p); });
  };
  bool synced =
      weft::test::WaitFor([&] { return all([](Sim& p) { return p.initial_done.load(); }); },
                          std::chrono::seconds(300), std::chrono::milliseconds(5));
  double initial_s = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<double> initial_ms;
  for (auto& s : sims) {
    if (s->initial_done) initial_ms.push_back(Ms(s->initial_at - start));
  }
  Usage loaded = UsageOf(pid);
  std::printf(
      "initial sync, all at once: all in %.2f s%s (p50 %.0f ms); weft-cp CPU %.2f s (%.2f ms "
      "per proxy); %.1f MB received\n",
      initial_s, synced ? "" : " (TIMED OUT)", Percentile(initial_ms, 0.5),
      loaded.cpu_s - idle.cpu_s, proxies > 0 ? (loaded.cpu_s - idle.cpu_s) * 1000 / proxies : 0.0,
      [&] {
        uint64_t b = 0;
        for (auto& s : sims) b += s->bytes;
        return b / 1e6;
      }());
  // Steady state: what stays allocated per connected proxy once the burst is over.
  std::this_thread::sleep_for(std::chrono::seconds(1));
  Usage steady = UsageOf(pid);
  std::printf(
      "weft-cp RSS: idle %.1f MB, with %lld proxies %.1f MB -> %.1f KB per proxy; CPU while "
      "idle with them %.3f s/s\n",
      idle.rss_kb / 1024.0, static_cast<long long>(proxies), steady.rss_kb / 1024.0,
      per_proxy_kb(steady.rss_kb), steady.cpu_s - loaded.cpu_s);

  if (hold_s > 0) {
    std::printf("holding %lld s; weft-cp pid %d\n", static_cast<long long>(hold_s), pid);
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::seconds(hold_s));
  }

  // 2. Changes.
  std::vector<double> latencies_ms;
  double cpu_changes = 0;
  for (int r = 1; r <= changes && synced; ++r) {
    int s = (r * 7919) % static_cast<int>(services);
    double cpu0 = CpuSeconds(pid);
    plan.round = r;
    auto t0 = Clock::now();
    weft::test::WriteFileAtomic(dir.Join(absl::StrCat("svc-", s, ".yaml")),
                                change_kind == "protocol"
                                    ? WeftServiceFile(s, static_cast<int>(endpoints), 0, true)
                                    : service_file(s, r * 100));
    bool done =
        weft::test::WaitFor([&] { return all([r](Sim& p) { return p.synced_round.load() >= r; }); },
                            std::chrono::seconds(60), std::chrono::milliseconds(1));
    // Let the ACKs land before reading the CPU counter.
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    cpu_changes += CpuSeconds(pid) - cpu0;
    std::vector<double> round_ms;
    for (auto& p : sims) {
      if (p->synced_round >= r) round_ms.push_back(Ms(p->seen()[r] - t0));
    }
    std::printf(
        "change %d (svc-%d): all %s in %.1f ms; p50 %.1f ms, p99 %.1f ms (from the file write: "
        "includes the file watch and %lld ms debounce)\n",
        r, s, done ? "received" : "NOT received", Percentile(round_ms, 1.0),
        Percentile(round_ms, 0.5), Percentile(round_ms, 0.99), static_cast<long long>(debounce_ms));
    latencies_ms.insert(latencies_ms.end(), round_ms.begin(), round_ms.end());
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  if (changes > 0 && synced) {
    std::printf(
        "over %lld changes: p50 %.1f ms, p99 %.1f ms, max %.1f ms; weft-cp CPU %.3f s per change "
        "(%.3f ms per proxy per change, ACKs included)\n",
        static_cast<long long>(changes), Percentile(latencies_ms, 0.5),
        Percentile(latencies_ms, 0.99), Percentile(latencies_ms, 1.0), cpu_changes / changes,
        proxies > 0 ? cpu_changes * 1000 / (proxies * changes) : 0.0);
  }

  // 3. Restart.
  bool resynced_all = true;
  if (restart && synced) {
    uint64_t bytes0 = 0, resources0 = 0, responses0 = 0;
    for (auto& s : sims) {
      bytes0 += s->bytes;
      resources0 += s->resources;
      responses0 += s->responses;
    }
    int changed = static_cast<int>((changes + 1) * 7919 % services);
    plan.restart_changed = changed;
    plan.restart_phase = true;
    int xds_port = cp->xds_port;
    auto t_kill = Clock::now();
    cp->process->Kill(SIGKILL);
    cp->process->Wait(std::chrono::seconds(10));
    weft::test::WriteFileAtomic(dir.Join(absl::StrCat("svc-", changed, ".yaml")),
                                service_file(changed, 9000));
    std::vector<std::string> args = cp_args;
    args.insert(args.end(), {"--xds-address", absl::StrCat("127.0.0.1:", xds_port)});
    auto t_start = Clock::now();
    cp = weft::test::StartWeftCp(dir.path(), args, &error);
    if (!cp) {
      std::fprintf(stderr, "weft-xds-load: restart: %s\n", error.c_str());
      for (auto& s : sims) s->Stop();
      return 1;
    }
    auto t_ready = Clock::now();
    pid = cp->process->pid();
    // For a profiler to attach to the restarted process.
    std::printf("restarted weft-cp: pid %d\n", pid);
    std::fflush(stdout);
    resynced_all =
        weft::test::WaitFor([&] { return all([](Sim& p) { return p.resynced.load(); }); },
                            std::chrono::seconds(60), std::chrono::milliseconds(5));
    auto t_all = Clock::now();
    int listed = 0;
    for (auto& s : sims) {
      if (!s->resynced && listed++ < 5) std::printf("not in sync: %s\n", s->Describe().c_str());
    }
    Usage after = UsageOf(pid);
    std::vector<double> resync_ms;
    uint64_t bytes = 0, resources = 0, responses = 0;
    for (auto& s : sims) {
      if (s->resynced) resync_ms.push_back(Ms(s->resynced_at - t_start));
      bytes += s->bytes;
      resources += s->resources;
      responses += s->responses;
    }
    bytes -= bytes0;
    resources -= resources0;
    responses -= responses0;
    std::printf(
        "restart (SIGKILL, svc-%d changed while down, same port): weft-cp start -> ready %.0f ms; "
        "start -> all %lld in sync %s%.0f ms (per proxy p50 %.0f ms, p99 %.0f ms); kill -> all "
        "in sync %.0f ms\n",
        changed, Ms(t_ready - t_start), static_cast<long long>(proxies),
        resynced_all ? "" : "(TIMED OUT) ", Ms(t_all - t_start), Percentile(resync_ms, 0.5),
        Percentile(resync_ms, 0.99), Ms(t_all - t_kill));
    std::printf(
        "restart resent: %llu responses, %llu resources, %.2f MB (%.1f KB per proxy); new weft-cp "
        "CPU %.2f s (start-up included), RSS %.1f MB -> %.1f KB per proxy\n",
        static_cast<unsigned long long>(responses), static_cast<unsigned long long>(resources),
        bytes / 1e6, proxies > 0 ? bytes / 1e3 / proxies : 0.0, after.cpu_s, after.rss_kb / 1024.0,
        per_proxy_kb(after.rss_kb));
  }
  std::printf("load tool CPU: %.2f s in all\n", SelfCpuSeconds() - self0);
  for (auto& s : sims) s->Stop();
  return synced && resynced_all ? 0 : 1;
}
