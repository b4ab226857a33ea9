#include "data-plane/stats/proxy_stats.h"

#include <algorithm>
#include <functional>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "common/strings.h"

namespace weft::proxy {

void LatencyHistogram::Record(std::chrono::nanoseconds latency) {
  double ms = static_cast<double>(latency.count()) / 1e6;
  size_t i = static_cast<size_t>(std::lower_bound(kBoundsMs.begin(), kBoundsMs.end(), ms) -
                                 kBoundsMs.begin());
  counts_[i].Inc();
  auto us = static_cast<uint64_t>(latency.count() / 1000);
  sum_us_.store(sum_us_.load(std::memory_order_relaxed) + us, std::memory_order_relaxed);
}

void LatencyHistogram::Merged::Add(const LatencyHistogram& h) {
  for (size_t i = 0; i < kBuckets; ++i) {
    uint64_t c = h.counts_[i].Value();
    counts[i] += c;
    count += c;
  }
  sum_ms += static_cast<double>(h.sum_us_.load(std::memory_order_relaxed)) / 1000.0;
}

double LatencyHistogram::Merged::QuantileMs(double q) const {
  if (count == 0) return 0;
  double rank = q * static_cast<double>(count);
  uint64_t seen = 0;
  for (size_t i = 0; i < kBuckets; ++i) {
    if (counts[i] == 0) continue;
    if (static_cast<double>(seen + counts[i]) >= rank) {
      double lo = i == 0 ? 0 : kBoundsMs[i - 1];
      // The +Inf bucket has no upper edge: report its lower edge.
      if (i == kBoundsMs.size()) return lo;
      double hi = kBoundsMs[i];
      double within = (rank - static_cast<double>(seen)) / static_cast<double>(counts[i]);
      return lo + (hi - lo) * std::clamp(within, 0.0, 1.0);
    }
    seen += counts[i];
  }
  return kBoundsMs.back();
}

void HttpStats::Completed(int status, std::chrono::nanoseconds elapsed) {
  rq_total.Inc();
  switch (status / 100) {
    case 1:
      rq_1xx.Inc();
      break;
    case 2:
      rq_2xx.Inc();
      break;
    case 3:
      rq_3xx.Inc();
      break;
    case 4:
      rq_4xx.Inc();
      break;
    default:
      rq_5xx.Inc();
      break;
  }
  latency.Record(elapsed);
}

namespace {

template <typename T>
T* FindOrCreate(std::mutex& mu, std::map<std::string, std::unique_ptr<T>>& map,
                const std::string& name) {
  std::lock_guard<std::mutex> lock(mu);
  auto& slot = map[name];
  if (!slot) slot = std::make_unique<T>();
  return slot.get();
}

// One scalar statistic of a block type: its name and how to read it.
template <typename T>
struct Field {
  std::string_view name;
  bool gauge;
  std::function<int64_t(const T&)> read;
};

template <typename T>
std::vector<Field<T>> HttpFields(std::function<const HttpStats&(const T&)> http) {
  auto counter = [http](std::string_view name, LocalCounter HttpStats::*member) {
    return Field<T>{name, false, [http, member](const T& t) {
                      return static_cast<int64_t>((http(t).*member).Value());
                    }};
  };
  return {counter("rq_total", &HttpStats::rq_total),
          counter("rq_1xx", &HttpStats::rq_1xx),
          counter("rq_2xx", &HttpStats::rq_2xx),
          counter("rq_3xx", &HttpStats::rq_3xx),
          counter("rq_4xx", &HttpStats::rq_4xx),
          counter("rq_5xx", &HttpStats::rq_5xx),
          counter("rq_timeout", &HttpStats::rq_timeout),
          Field<T>{"rq_active", true, [http](const T& t) { return http(t).rq_active.Value(); }}};
}

template <typename T>
Field<T> CounterField(std::string_view name, LocalCounter T::*member) {
  return {name, false, [member](const T& t) { return static_cast<int64_t>((t.*member).Value()); }};
}
template <typename T>
Field<T> GaugeField(std::string_view name, LocalGauge T::*member) {
  return {name, true, [member](const T& t) { return (t.*member).Value(); }};
}

template <typename T>
std::vector<Field<T>> Fields();

// A block's own fields followed by those of its HttpStats member `http`.
template <typename T>
std::vector<Field<T>> WithHttp(std::vector<Field<T>> own) {
  for (auto& h : HttpFields<T>([](const T& t) -> const HttpStats& { return t.http; })) {
    own.push_back(std::move(h));
  }
  return own;
}

template <>
std::vector<Field<ListenerStats>> Fields() {
  using L = ListenerStats;
  return WithHttp<L>(
      {CounterField("downstream_cx_total", &L::cx_total),
       GaugeField("downstream_cx_active", &L::cx_active),
       CounterField("downstream_cx_overflow", &L::cx_overflow),
       CounterField("downstream_cx_idle_timeout", &L::cx_idle_timeout),
       CounterField("downstream_rq_rx_reset", &L::downstream_rq_rx_reset),
       CounterField("http_parse_error", &L::http_parse_error),
       CounterField("downstream_rq_header_timeout", &L::downstream_rq_header_timeout)});
}
template <>
std::vector<Field<RouteStats>> Fields() {
  return WithHttp<RouteStats>({});
}
template <>
std::vector<Field<ClusterStats>> Fields() {
  using C = ClusterStats;
  return WithHttp<C>({CounterField("upstream_cx_total", &C::cx_total),
                      GaugeField("upstream_cx_active", &C::cx_active),
                      CounterField("upstream_cx_connect_fail", &C::cx_connect_fail),
                      CounterField("upstream_cx_reused", &C::cx_reused),
                      CounterField("upstream_no_healthy_host", &C::no_healthy_host),
                      CounterField("upstream_rq_retry", &C::rq_retry),
                      CounterField("upstream_rq_reset", &C::rq_reset),
                      CounterField("upstream_cx_protocol_error", &C::cx_protocol_error)});
}
template <>
std::vector<Field<HostStats>> Fields() {
  using H = HostStats;
  return WithHttp<H>({CounterField("cx_connect_fail", &H::cx_connect_fail)});
}

const HttpStats& HttpOf(const ListenerStats& s) { return s.http; }
const HttpStats& HttpOf(const RouteStats& s) { return s.http; }
const HttpStats& HttpOf(const ClusterStats& s) { return s.http; }
const HttpStats& HttpOf(const HostStats& s) { return s.http; }

std::string PromEscape(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}

// Label text for a block name; hosts are "cluster|address".
std::string Labels(absl::string_view kind, std::string_view name) {
  if (kind == "host") {
    size_t bar = name.rfind('|');
    return absl::StrCat("cluster=\"", PromEscape(name.substr(0, bar)), "\",host=\"",
                        PromEscape(name.substr(bar + 1)), "\"");
  }
  return absl::StrCat(kind, "=\"", PromEscape(name), "\"");
}

}  // namespace

ListenerStats* WorkerStats::Listener(const std::string& name) {
  return FindOrCreate(mu_, listeners_, name);
}
RouteStats* WorkerStats::Route(const std::string& name) { return FindOrCreate(mu_, routes_, name); }
ClusterStats* WorkerStats::Cluster(const std::string& name) {
  return FindOrCreate(mu_, clusters_, name);
}
HostStats* WorkerStats::Host(const std::string& key) { return FindOrCreate(mu_, hosts_, key); }

StatsStore::StatsStore(int workers) {
  for (int i = 0; i < workers; ++i) workers_.push_back(std::make_unique<WorkerStats>());
}

namespace {

// Visits every block name of one kind with the merged scalar values and histogram.
template <typename T>
void MergeKind(std::vector<std::unique_ptr<WorkerStats>>& workers,
               std::map<std::string, std::unique_ptr<T>> WorkerStats::*member,
               const std::function<void(const std::string&, const std::vector<int64_t>&,
                                        const LatencyHistogram::Merged&)>& visit) {
  const auto fields = Fields<T>();
  std::map<std::string, std::pair<std::vector<int64_t>, LatencyHistogram::Merged>> merged;
  for (auto& w : workers) {
    std::lock_guard<std::mutex> lock(w->mu_);
    for (const auto& [name, block] : (*w).*member) {
      auto& [values, hist] = merged[name];
      values.resize(fields.size());
      for (size_t i = 0; i < fields.size(); ++i) values[i] += fields[i].read(*block);
      hist.Add(HttpOf(*block).latency);
    }
  }
  for (const auto& [name, entry] : merged) visit(name, entry.first, entry.second);
}

}  // namespace

namespace {
// Named counters summed over workers, by name.
std::map<std::string, uint64_t> MergeNamed(std::vector<std::unique_ptr<WorkerStats>>& workers) {
  std::map<std::string, uint64_t> out;
  for (auto& w : workers) {
    std::lock_guard<std::mutex> lock(w->mu_);
    for (const auto& [name, c] : w->named_) out[name] += c->Value();
  }
  return out;
}
}  // namespace

std::string StatsStore::PrometheusText() {
  std::string out;
  auto render = [&out]<typename T>(absl::string_view kind, const std::vector<Field<T>>& fields,
                                   auto&& merge) {
    // Prometheus wants every sample of a metric grouped under one TYPE line.
    std::vector<std::string> metric(fields.size());
    for (size_t i = 0; i < fields.size(); ++i) {
      metric[i] = absl::StrCat("weft_proxy_", kind, "_", Sv(fields[i].name),
                               fields[i].gauge ? "" : "_total");
    }
    std::vector<std::string> per_field(fields.size());
    std::string buckets;
    merge([&](const std::string& name, const std::vector<int64_t>& values,
              const LatencyHistogram::Merged& hist) {
      std::string labels = Labels(kind, name);
      for (size_t i = 0; i < fields.size(); ++i) {
        absl::StrAppend(&per_field[i], metric[i], "{", labels, "} ", values[i], "\n");
      }
      uint64_t cumulative = 0;
      for (size_t i = 0; i < LatencyHistogram::kBuckets; ++i) {
        cumulative += hist.counts[i];
        std::string le = i < LatencyHistogram::kBoundsMs.size()
                             ? absl::StrCat(LatencyHistogram::kBoundsMs[i] / 1000.0)
                             : "+Inf";
        absl::StrAppend(&buckets, "weft_proxy_", kind, "_rq_duration_seconds_bucket{", labels,
                        ",le=\"", le, "\"} ", cumulative, "\n");
      }
      absl::StrAppend(&buckets, "weft_proxy_", kind, "_rq_duration_seconds_sum{", labels, "} ",
                      hist.sum_ms / 1000.0, "\n", "weft_proxy_", kind,
                      "_rq_duration_seconds_count{", labels, "} ", hist.count, "\n");
    });
    for (size_t i = 0; i < fields.size(); ++i) {
      if (per_field[i].empty()) continue;
      absl::StrAppend(&out, "# HELP ", metric[i], " ", kind, " ", Sv(fields[i].name), "\n",
                      "# TYPE ", metric[i], " ", fields[i].gauge ? "gauge" : "counter", "\n",
                      per_field[i]);
    }
    if (!buckets.empty()) {
      absl::StrAppend(&out, "# HELP weft_proxy_", kind, "_rq_duration_seconds ", kind,
                      " request duration\n", "# TYPE weft_proxy_", kind,
                      "_rq_duration_seconds histogram\n", buckets);
    }
  };
  render("listener", Fields<ListenerStats>(),
         [this](auto&& visit) { MergeKind(workers_, &WorkerStats::listeners_, visit); });
  render("route", Fields<RouteStats>(),
         [this](auto&& visit) { MergeKind(workers_, &WorkerStats::routes_, visit); });
  render("cluster", Fields<ClusterStats>(),
         [this](auto&& visit) { MergeKind(workers_, &WorkerStats::clusters_, visit); });
  render("host", Fields<HostStats>(),
         [this](auto&& visit) { MergeKind(workers_, &WorkerStats::hosts_, visit); });
  // Counters named at run time (filters, response flags): one family, the name as a label.
  auto named = MergeNamed(workers_);
  if (!named.empty()) {
    absl::StrAppend(&out,
                    "# HELP weft_proxy_named_total counters named by filters and response flags\n"
                    "# TYPE weft_proxy_named_total counter\n");
    for (const auto& [name, value] : named) {
      absl::StrAppend(&out, "weft_proxy_named_total{name=\"", PromEscape(name), "\"} ", value,
                      "\n");
    }
  }
  return out;
}

std::string StatsStore::PlainText() {
  std::string out;
  auto render = [&out]<typename T>(absl::string_view prefix, const std::vector<Field<T>>& fields,
                                   auto&& merge) {
    merge([&](const std::string& name, const std::vector<int64_t>& values,
              const LatencyHistogram::Merged& hist) {
      for (size_t i = 0; i < fields.size(); ++i) {
        absl::StrAppend(&out, prefix, ".", name, ".", Sv(fields[i].name), ": ", values[i], "\n");
      }
      absl::StrAppend(&out, prefix, ".", name, ".rq_time: P50(", hist.QuantileMs(0.5), ") P90(",
                      hist.QuantileMs(0.9), ") P99(", hist.QuantileMs(0.99), ") count(", hist.count,
                      ")\n");
    });
  };
  render("listener", Fields<ListenerStats>(),
         [this](auto&& visit) { MergeKind(workers_, &WorkerStats::listeners_, visit); });
  render("route", Fields<RouteStats>(),
         [this](auto&& visit) { MergeKind(workers_, &WorkerStats::routes_, visit); });
  render("cluster", Fields<ClusterStats>(),
         [this](auto&& visit) { MergeKind(workers_, &WorkerStats::clusters_, visit); });
  render("host", Fields<HostStats>(),
         [this](auto&& visit) { MergeKind(workers_, &WorkerStats::hosts_, visit); });
  return out;
}

LocalCounter& CounterScope::Counter(std::string_view name) {
  auto it = cache_.find(name);
  if (it != cache_.end()) return *it->second;
  LocalCounter* c = stats_->Named(absl::StrCat(prefix_, Sv(name)));
  cache_.emplace(std::string(name), c);
  return *c;
}

LocalCounter* WorkerStats::Named(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = named_[name];
  if (!slot) slot = std::make_unique<LocalCounter>();
  return slot.get();
}

StatsStore::HostSummary StatsStore::HostTotals(const std::string& key) {
  HostSummary s;
  for (auto& w : workers_) {
    std::lock_guard<std::mutex> lock(w->mu_);
    auto it = w->hosts_.find(key);
    if (it == w->hosts_.end()) continue;
    s.rq_total += it->second->http.rq_total.Value();
    s.rq_error += it->second->http.rq_5xx.Value();
    s.rq_active += it->second->http.rq_active.Value();
    s.cx_connect_fail += it->second->cx_connect_fail.Value();
  }
  return s;
}

}  // namespace weft::proxy
