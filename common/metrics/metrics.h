// Process metrics rendered in the Prometheus text exposition format (0.0.4).
//
// Recording is the hot path and never locks: Counter::Inc is one relaxed fetch_add, and
// Histogram::Observe is a bucket search plus two atomic adds. Locks are taken only when a
// family or a label combination is created and when the registry is rendered, so callers look
// up a labelled child once and keep the pointer:
//
//   static auto* requests = weft::metrics::Registry::Default().AddCounter(
//       "weft_xds_requests_total", "xDS requests received.", {"type_url"});
//   weft::metrics::Counter* cds = requests->WithLabels({"cds"});  // cache this
//   cds->Inc();
//
// Metric and label names are fixed by the code, so invalid ones, re-registering a name with a
// different type or labels, and a wrong number of label values are programming errors: they
// log and abort rather than return a status every call site would have to ignore.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace weft::metrics {

class Counter {
 public:
  void Inc(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void Set(int64_t v) { value_.store(v, std::memory_order_relaxed); }
  void Add(int64_t n) { value_.fetch_add(n, std::memory_order_relaxed); }
  void Sub(int64_t n) { value_.fetch_sub(n, std::memory_order_relaxed); }
  int64_t Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

// Latency buckets in seconds, from 0.5 ms to 10 s.
const std::vector<double>& DefaultBuckets();

class Histogram {
 public:
  // `bounds` must be strictly increasing and finite; the +Inf bucket is implicit.
  explicit Histogram(std::vector<double> bounds);

  void Observe(double value);
  template <typename Rep, typename Period>
  void ObserveDuration(std::chrono::duration<Rep, Period> d) {
    Observe(std::chrono::duration<double>(d).count());
  }

  struct Snapshot {
    std::vector<double> bounds;
    // Cumulative: cumulative[i] counts observations <= bounds[i]; the last entry is +Inf and
    // equals count.
    std::vector<uint64_t> cumulative;
    uint64_t count = 0;
    double sum = 0;
  };
  // Buckets are read one by one while writers continue, so a snapshot may miss observations
  // that land during it; count is derived from the buckets so it always matches +Inf.
  Snapshot Read() const;
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  const std::vector<double> bounds_;
  // Per-bucket (non-cumulative) counts; index bounds_.size() is the +Inf bucket.
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;
  std::atomic<double> sum_{0};
};

enum class MetricType { kCounter, kGauge, kHistogram };

class FamilyBase {
 public:
  virtual ~FamilyBase() = default;
  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  virtual MetricType type() const = 0;
  // Appends this family's HELP, TYPE and sample lines; nothing if it has no children yet.
  virtual void Render(std::string* out) const = 0;

 protected:
  FamilyBase(std::string name, std::string help, std::vector<std::string> label_names)
      : name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)) {}
  // Aborts when `values` does not match label_names().
  void CheckLabelValues(const std::vector<std::string>& values) const;

 private:
  std::string name_;
  std::string help_;
  std::vector<std::string> label_names_;
};

// All children of one metric name, keyed by label values. Children are never removed, so the
// pointers handed out stay valid for the family's (in practice the process's) lifetime.
template <typename M>
class Family final : public FamilyBase {
 public:
  // One value per label name, in the order the names were registered.
  M* WithLabels(const std::vector<std::string>& values);
  // The single child of a family registered without labels.
  M* Get() { return WithLabels({}); }

  MetricType type() const override;
  void Render(std::string* out) const override;

 private:
  friend class Registry;
  Family(std::string name, std::string help, std::vector<std::string> label_names,
         std::vector<double> bounds)
      : FamilyBase(std::move(name), std::move(help), std::move(label_names)),
        bounds_(std::move(bounds)) {}

  const std::vector<double> bounds_;  // histograms only
  mutable std::mutex mu_;
  // Ordered so the exposition is deterministic.
  std::map<std::vector<std::string>, std::unique_ptr<M>> children_;
};

class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // The process-wide registry. Components may instead take a Registry* so tests stay isolated.
  static Registry& Default();

  // Registering an existing name again with the same type and label names returns the existing
  // family, so independent components can share a metric without coordinating.
  Family<Counter>* AddCounter(std::string_view name, std::string_view help,
                              std::vector<std::string> label_names = {});
  Family<Gauge>* AddGauge(std::string_view name, std::string_view help,
                          std::vector<std::string> label_names = {});
  Family<Histogram>* AddHistogram(std::string_view name, std::string_view help,
                                  std::vector<std::string> label_names = {},
                                  std::vector<double> bounds = DefaultBuckets());

  // Text exposition format 0.0.4, families sorted by name, children by label values.
  // Serve with Content-Type "text/plain; version=0.0.4; charset=utf-8".
  std::string PrometheusText() const;

 private:
  FamilyBase* Add(MetricType type, std::string_view name, std::string_view help,
                  std::vector<std::string> label_names, std::vector<double> bounds);

  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<FamilyBase>, std::less<>> families_;
};

inline constexpr std::string_view kPrometheusContentType =
    "text/plain; version=0.0.4; charset=utf-8";

// Exposed for tests and for callers that render extra samples themselves.
std::string EscapeLabelValue(std::string_view value);
std::string EscapeHelp(std::string_view help);
std::string FormatDouble(double value);

}  // namespace weft::metrics
