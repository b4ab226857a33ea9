#include "common/metrics/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "common/strings.h"

namespace weft::metrics {
namespace {

[[noreturn]] void Fatal(std::string_view message) {
  WEFT_LOG(kError) << "metrics: " << message;
  std::abort();
}

bool IsMetricName(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

bool IsLabelName(std::string_view name) {
  if (name.empty() || name.substr(0, 2) == "__") return false;  // "__" is reserved
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

const char* TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

// `{a="x",b="y"}` with `extra` (already formatted, e.g. `le="0.5"`) appended; empty when there
// are no labels at all.
std::string LabelSet(const std::vector<std::string>& names, const std::vector<std::string>& values,
                     std::string_view extra = "") {
  if (names.empty() && extra.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += ',';
    absl::StrAppend(&out, names[i], "=\"", EscapeLabelValue(values[i]), "\"");
  }
  if (!extra.empty()) {
    if (!names.empty()) out += ',';
    out += extra;
  }
  out += '}';
  return out;
}

void AppendHeader(const FamilyBase& family, std::string* out) {
  absl::StrAppend(out, "# HELP ", family.name(), " ", EscapeHelp(family.help()), "\n");
  absl::StrAppend(out, "# TYPE ", family.name(), " ", TypeName(family.type()), "\n");
}

}  // namespace

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string EscapeHelp(std::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string FormatDouble(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  // Shortest text that round-trips, so 0.1 prints as "0.1" rather than 0.10000000000000001.
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  if (ec != std::errc()) return "NaN";
  return std::string(buf, end);
}

const std::vector<double>& DefaultBuckets() {
  static const auto* buckets = new std::vector<double>{
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  return *buckets;
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      buckets_(std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1)) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double value) {
  // NaN compares false with everything; send it to +Inf explicitly rather than bucket 0.
  size_t index = std::isnan(value)
                     ? bounds_.size()
                     : static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) -
                                           bounds_.begin());
  buckets_[index].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot s;
  s.bounds = bounds_;
  s.cumulative.resize(bounds_.size() + 1);
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative[i] = running;
  }
  s.count = running;
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

void FamilyBase::CheckLabelValues(const std::vector<std::string>& values) const {
  if (values.size() != label_names_.size()) {
    Fatal(absl::StrCat(name_, ": got ", values.size(), " label values for labels [",
                       absl::StrJoin(label_names_, ","), "]"));
  }
}

template <typename M>
M* Family<M>::WithLabels(const std::vector<std::string>& values) {
  CheckLabelValues(values);
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = children_[values];
  if (slot == nullptr) {
    if constexpr (std::is_same_v<M, Histogram>) {
      slot = std::make_unique<Histogram>(bounds_);
    } else {
      slot = std::make_unique<M>();
    }
  }
  return slot.get();
}

template <typename M>
MetricType Family<M>::type() const {
  if constexpr (std::is_same_v<M, Counter>) {
    return MetricType::kCounter;
  } else if constexpr (std::is_same_v<M, Gauge>) {
    return MetricType::kGauge;
  } else {
    return MetricType::kHistogram;
  }
}

template <typename M>
void Family<M>::Render(std::string* out) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (children_.empty()) return;
  AppendHeader(*this, out);
  for (const auto& [values, child] : children_) {
    if constexpr (std::is_same_v<M, Histogram>) {
      Histogram::Snapshot s = child->Read();
      for (size_t i = 0; i <= s.bounds.size(); ++i) {
        std::string le = absl::StrCat(
            "le=\"", i < s.bounds.size() ? FormatDouble(s.bounds[i]) : std::string("+Inf"), "\"");
        absl::StrAppend(out, name(), "_bucket", LabelSet(label_names(), values, le), " ",
                        s.cumulative[i], "\n");
      }
      std::string labels = LabelSet(label_names(), values);
      absl::StrAppend(out, name(), "_sum", labels, " ", FormatDouble(s.sum), "\n");
      absl::StrAppend(out, name(), "_count", labels, " ", s.count, "\n");
    } else {
      absl::StrAppend(out, name(), LabelSet(label_names(), values), " ", child->Value(), "\n");
    }
  }
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

Registry& Registry::Default() {
  static auto* registry = new Registry();  // never destroyed: metrics may be touched at exit
  return *registry;
}

FamilyBase* Registry::Add(MetricType type, std::string_view name, std::string_view help,
                          std::vector<std::string> label_names, std::vector<double> bounds) {
  if (!IsMetricName(name)) Fatal(absl::StrCat("invalid metric name \"", Sv(name), "\""));
  for (const std::string& label : label_names) {
    if (!IsLabelName(label) || (type == MetricType::kHistogram && label == "le")) {
      Fatal(absl::StrCat(Sv(name), ": invalid label name \"", label, "\""));
    }
    if (std::count(label_names.begin(), label_names.end(), label) > 1) {
      Fatal(absl::StrCat(Sv(name), ": duplicate label name \"", label, "\""));
    }
  }
  if (type == MetricType::kHistogram) {
    for (size_t i = 0; i < bounds.size(); ++i) {
      if (!std::isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1])) {
        Fatal(absl::StrCat(Sv(name), ": bucket bounds must be finite and strictly increasing"));
      }
    }
  }

  std::lock_guard<std::mutex> lock(mu_);
  auto it = families_.find(name);
  if (it != families_.end()) {
    FamilyBase* existing = it->second.get();
    if (existing->type() != type || existing->label_names() != label_names) {
      Fatal(absl::StrCat(Sv(name), ": registered twice with a different type or labels"));
    }
    return existing;
  }
  std::unique_ptr<FamilyBase> family;
  std::string name_str(name);
  std::string help_str(help);
  bool unlabelled = label_names.empty();
  switch (type) {
    case MetricType::kCounter:
      family.reset(new Family<Counter>(name_str, help_str, std::move(label_names), {}));
      break;
    case MetricType::kGauge:
      family.reset(new Family<Gauge>(name_str, help_str, std::move(label_names), {}));
      break;
    case MetricType::kHistogram:
      family.reset(
          new Family<Histogram>(name_str, help_str, std::move(label_names), std::move(bounds)));
      break;
  }
  FamilyBase* raw = family.get();
  families_.emplace(name_str, std::move(family));
  // An unlabelled metric exists from registration on, so it is exported (as 0) before its
  // first event and a scrape can tell "nothing happened" from "not instrumented".
  if (unlabelled) {
    switch (type) {
      case MetricType::kCounter:
        static_cast<Family<Counter>*>(raw)->Get();
        break;
      case MetricType::kGauge:
        static_cast<Family<Gauge>*>(raw)->Get();
        break;
      case MetricType::kHistogram:
        static_cast<Family<Histogram>*>(raw)->Get();
        break;
    }
  }
  return raw;
}

Family<Counter>* Registry::AddCounter(std::string_view name, std::string_view help,
                                      std::vector<std::string> label_names) {
  return static_cast<Family<Counter>*>(
      Add(MetricType::kCounter, name, help, std::move(label_names), {}));
}

Family<Gauge>* Registry::AddGauge(std::string_view name, std::string_view help,
                                  std::vector<std::string> label_names) {
  return static_cast<Family<Gauge>*>(
      Add(MetricType::kGauge, name, help, std::move(label_names), {}));
}

Family<Histogram>* Registry::AddHistogram(std::string_view name, std::string_view help,
                                          std::vector<std::string> label_names,
                                          std::vector<double> bounds) {
  return static_cast<Family<Histogram>*>(
      Add(MetricType::kHistogram, name, help, std::move(label_names), std::move(bounds)));
}

std::string Registry::PrometheusText() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  for (const auto& [name, family] : families_) family->Render(&out);
  return out;
}

}  // namespace weft::metrics
