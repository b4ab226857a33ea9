// /clusters and Prometheus renderings of the cluster manager's report.
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/json.h"
#include "data-plane/upstream/cluster_manager/cluster_manager.h"

namespace weft::upstream {
namespace {

using absl::StrAppend;
using absl::StrCat;

absl::string_view V(std::string_view s) { return absl::string_view(s.data(), s.size()); }

std::string_view StateName(health::HostHealth::State s) {
  switch (s) {
    case health::HostHealth::State::kPending:
      return "pending";
    case health::HostHealth::State::kHealthy:
      return "healthy";
    case health::HostHealth::State::kUnhealthy:
      return "unhealthy";
  }
  return "unknown";
}

std::string_view ResultName(health::ProbeResult r) {
  switch (r) {
    case health::ProbeResult::kSuccess:
      return "success";
    case health::ProbeResult::kFailure:
      return "failure";
    case health::ProbeResult::kTimeout:
      return "timeout";
    case health::ProbeResult::kConclusiveFailure:
      return "conclusive_failure";
  }
  return "unknown";
}

// "" for the epoch: it never happened.
std::string Time(std::chrono::system_clock::time_point t) {
  return t.time_since_epoch().count() <= 0 ? "" : Iso8601(t);
}

// Check 0 is "active_hc_", check i > 0 "active_hc<i>_": one check per cluster is the rule.
std::string CheckPrefix(size_t i) { return i == 0 ? "active_hc_" : StrCat("active_hc", i, "_"); }

std::string PromEscape(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::vector<std::string> FlagNames(uint32_t flags) {
  std::vector<std::string> out;
  if (flags == 0) return out;
  std::string s = HostFlagsString(flags);
  size_t start = 1;
  while (start < s.size()) {
    size_t end = s.find('/', start);
    if (end == std::string::npos) end = s.size();
    out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

}  // namespace

std::string ClusterManager::AdminText() const {
  std::string out;
  for (const ClusterReport& c : Report()) {
    const std::string cp = StrCat(c.name, "::");
    StrAppend(&out, cp, "default_priority::max_connections::", c.limits.max_connections, "\n", cp,
              "default_priority::max_pending_requests::", c.limits.max_pending_requests, "\n", cp,
              "default_priority::max_requests::", c.limits.max_requests, "\n", cp,
              "default_priority::max_retries::", c.limits.max_retries, "\n", cp,
              "default_priority::cx_active::", c.connections, "\n", cp,
              "default_priority::rq_pending_active::", c.pending_requests, "\n", cp,
              "default_priority::rq_active::", c.requests, "\n", cp,
              "default_priority::rq_retry_active::", c.retries, "\n");
    if (c.limits.retry_budget) {
      StrAppend(&out, cp,
                "default_priority::retry_budget_percent::", c.limits.retry_budget->budget_percent,
                "\n", cp, "default_priority::retry_budget_min_concurrency::",
                c.limits.retry_budget->min_retry_concurrency, "\n");
    }
    if (c.outlier) {
      StrAppend(&out, cp, "outlier::ejections_active::", c.outlier->ejections_active, "\n", cp,
                "outlier::ejections_overflow::", c.outlier->ejections_overflow, "\n");
      for (size_t t = 0; t < outlier::kEjectionTypes; ++t) {
        const auto type = V(outlier::EjectionTypeName(static_cast<outlier::EjectionType>(t)));
        StrAppend(&out, cp, "outlier::ejections_enforced_", type,
                  "::", c.outlier->ejections_enforced[t], "\n", cp, "outlier::ejections_detected_",
                  type, "::", c.outlier->ejections_detected[t], "\n");
      }
    }
    for (size_t i = 0; i < c.health_checks.size(); ++i) {
      const auto& s = c.health_checks[i];
      const std::string p = StrCat(cp, "health_check", i == 0 ? "" : StrCat(i), "::");
      StrAppend(&out, p, "attempt::", s.attempts, "\n", p, "success::", s.successes, "\n", p,
                "failure::", s.failures, "\n", p, "timeout::", s.timeouts, "\n");
    }
    for (const HostReport& h : c.hosts) {
      const std::string p = StrCat(cp, h.key, "::");
      StrAppend(&out, p, "health_flags::", HostFlagsString(h.flags), "\n", p,
                "health::", V(HealthStatusName(h.health)), "\n");
      for (size_t i = 0; i < h.active.size(); ++i) {
        const auto& a = h.active[i];
        const std::string hp = StrCat(p, CheckPrefix(i));
        StrAppend(&out, hp, "state::", V(StateName(a.state)), "\n", hp,
                  "failures_in_a_row::", a.failures, "\n", hp, "probes::", a.probes, "\n");
        if (a.probes > 0) {
          StrAppend(&out, hp, "last_result::", V(ResultName(a.last_result)), "\n", hp,
                    "last_probe::", Time(a.last_probe), "\n");
        }
      }
      if (h.outlier) {
        const auto& o = *h.outlier;
        StrAppend(&out, p, "outlier_ejected::", o.ejected ? "true" : "false", "\n", p,
                  "outlier_times_ejected::", o.times_ejected, "\n");
        if (o.times_ejected > 0) {
          StrAppend(&out, p, "outlier_last_ejection::", V(outlier::EjectionTypeName(o.last_type)),
                    "\n", p, "outlier_ejected_at::", Time(o.ejected_at), "\n");
        }
        if (o.ejected) StrAppend(&out, p, "outlier_uneject_at::", Time(o.uneject_at), "\n");
      }
    }
  }
  return out;
}

std::string ClusterManager::AdminJson() const {
  std::string out = "{\"clusters\":[";
  bool first_cluster = true;
  for (const ClusterReport& c : Report()) {
    StrAppend(&out, first_cluster ? "" : ",", "{\"name\":", JsonString(c.name),
              ",\"circuit_breakers\":{\"max_connections\":", c.limits.max_connections,
              ",\"max_pending_requests\":", c.limits.max_pending_requests,
              ",\"max_requests\":", c.limits.max_requests,
              ",\"max_retries\":", c.limits.max_retries, ",\"connections\":", c.connections,
              ",\"pending_requests\":", c.pending_requests, ",\"requests\":", c.requests,
              ",\"retries\":", c.retries);
    if (c.limits.retry_budget) {
      StrAppend(&out,
                ",\"retry_budget\":{\"budget_percent\":", c.limits.retry_budget->budget_percent,
                ",\"min_retry_concurrency\":", c.limits.retry_budget->min_retry_concurrency, "}");
    }
    out += "}";
    first_cluster = false;
    if (c.outlier) {
      StrAppend(&out, ",\"outlier_detection\":{\"ejections_active\":", c.outlier->ejections_active,
                ",\"ejections_overflow\":", c.outlier->ejections_overflow,
                ",\"ejections_enforced\":{");
      for (size_t t = 0; t < outlier::kEjectionTypes; ++t) {
        StrAppend(&out, t == 0 ? "" : ",", "\"",
                  V(outlier::EjectionTypeName(static_cast<outlier::EjectionType>(t))),
                  "\":", c.outlier->ejections_enforced[t]);
      }
      out += "}}";
    }
    out += ",\"health_checks\":[";
    for (size_t i = 0; i < c.health_checks.size(); ++i) {
      const auto& s = c.health_checks[i];
      StrAppend(&out, i == 0 ? "" : ",", "{\"attempts\":", s.attempts,
                ",\"successes\":", s.successes, ",\"failures\":", s.failures,
                ",\"timeouts\":", s.timeouts, "}");
    }
    out += "],\"hosts\":[";
    bool first = true;
    for (const HostReport& h : c.hosts) {
      StrAppend(&out, first ? "" : ",", "{\"address\":", JsonString(h.key), ",\"health\":\"",
                V(HealthStatusName(h.health)), "\",\"health_flags\":[");
      first = false;
      bool first_flag = true;
      for (const std::string& f : FlagNames(h.flags)) {
        StrAppend(&out, first_flag ? "" : ",", "\"", f, "\"");
        first_flag = false;
      }
      StrAppend(&out, "],\"weight\":", h.weight, ",\"priority\":", h.priority,
                ",\"active_health_checks\":[");
      for (size_t i = 0; i < h.active.size(); ++i) {
        const auto& a = h.active[i];
        StrAppend(&out, i == 0 ? "" : ",", "{\"state\":\"", V(StateName(a.state)),
                  "\",\"failures_in_a_row\":", a.failures, ",\"probes\":", a.probes);
        if (a.probes > 0) {
          StrAppend(&out, ",\"last_result\":\"", V(ResultName(a.last_result)),
                    "\",\"last_probe\":\"", Time(a.last_probe), "\"");
        }
        out += "}";
      }
      out += "]";
      if (h.outlier) {
        const auto& o = *h.outlier;
        StrAppend(&out, ",\"outlier\":{\"ejected\":", o.ejected ? "true" : "false",
                  ",\"times_ejected\":", o.times_ejected);
        if (o.times_ejected > 0) {
          StrAppend(&out, ",\"last_ejection\":\"", V(outlier::EjectionTypeName(o.last_type)),
                    "\",\"ejected_at\":\"", Time(o.ejected_at), "\"");
        }
        if (o.ejected) StrAppend(&out, ",\"uneject_at\":\"", Time(o.uneject_at), "\"");
        out += "}";
      }
      out += "}";
    }
    out += "]}";
  }
  out += "]}";
  return out;
}

std::string ClusterManager::PrometheusText() const {
  const std::vector<ClusterReport> report = Report();
  std::string out;
  // One family at a time: Prometheus wants a metric's samples together under its TYPE line.
  auto family = [&](std::string_view name, std::string_view type, std::string_view help,
                    auto&& samples) {
    std::string body;
    for (const ClusterReport& c : report) samples(c, PromEscape(c.name), &body);
    if (body.empty()) return;
    StrAppend(&out, "# HELP ", V(name), " ", V(help), "\n# TYPE ", V(name), " ", V(type), "\n",
              body);
  };
  auto checks = [&](std::string_view metric, std::string_view help, auto field) {
    family(metric, "counter", help,
           [&](const ClusterReport& c, const std::string& label, std::string* body) {
             uint64_t sum = 0;
             for (const auto& s : c.health_checks) sum += field(s);
             if (!c.health_checks.empty()) {
               StrAppend(body, V(metric), "{cluster=\"", label, "\"} ", sum, "\n");
             }
           });
  };
  checks("weft_proxy_cluster_health_check_attempt_total", "Active health check probes sent",
         [](const health::CheckerStats& s) { return s.attempts; });
  checks("weft_proxy_cluster_health_check_success_total", "Probes that passed",
         [](const health::CheckerStats& s) { return s.successes; });
  checks("weft_proxy_cluster_health_check_failure_total", "Probes that failed (timeouts apart)",
         [](const health::CheckerStats& s) { return s.failures; });
  checks("weft_proxy_cluster_health_check_timeout_total", "Probes that timed out",
         [](const health::CheckerStats& s) { return s.timeouts; });
  auto members = [&](std::string_view metric, std::string_view help, auto pred) {
    family(metric, "gauge", help,
           [&](const ClusterReport& c, const std::string& label, std::string* body) {
             uint64_t n = 0;
             for (const HostReport& h : c.hosts) n += pred(h) ? 1 : 0;
             StrAppend(body, V(metric), "{cluster=\"", label, "\"} ", n, "\n");
           });
  };
  members("weft_proxy_cluster_membership_hosts", "Hosts in the cluster",
          [](const HostReport&) { return true; });
  members("weft_proxy_cluster_membership_healthy", "Hosts whose combined health is healthy",
          [](const HostReport& h) { return h.health == HealthStatus::kHealthy; });
  members("weft_proxy_cluster_membership_degraded", "Hosts whose combined health is degraded",
          [](const HostReport& h) { return h.health == HealthStatus::kDegraded; });
  members("weft_proxy_cluster_health_check_failed_hosts", "Hosts failing an active health check",
          [](const HostReport& h) { return (h.flags & kFailedActiveHc) != 0; });
  family("weft_proxy_cluster_outlier_ejections_active", "gauge", "Hosts ejected right now",
         [](const ClusterReport& c, const std::string& label, std::string* body) {
           if (c.outlier) {
             StrAppend(body, "weft_proxy_cluster_outlier_ejections_active{cluster=\"", label,
                       "\"} ", c.outlier->ejections_active, "\n");
           }
         });
  family("weft_proxy_cluster_outlier_ejections_overflow_total", "counter",
         "Ejections not made because max_ejection_percent was reached",
         [](const ClusterReport& c, const std::string& label, std::string* body) {
           if (c.outlier) {
             StrAppend(body, "weft_proxy_cluster_outlier_ejections_overflow_total{cluster=\"",
                       label, "\"} ", c.outlier->ejections_overflow, "\n");
           }
         });
  for (bool enforced : {true, false}) {
    const std::string metric = StrCat("weft_proxy_cluster_outlier_ejections_",
                                      enforced ? "enforced" : "detected", "_total");
    family(metric, "counter",
           enforced ? "Ejections made, by rule" : "Ejections detected (enforced or not), by rule",
           [&](const ClusterReport& c, const std::string& label, std::string* body) {
             if (!c.outlier) return;
             for (size_t t = 0; t < outlier::kEjectionTypes; ++t) {
               StrAppend(
                   body, metric, "{cluster=\"", label, "\",type=\"",
                   V(outlier::EjectionTypeName(static_cast<outlier::EjectionType>(t))), "\"} ",
                   enforced ? c.outlier->ejections_enforced[t] : c.outlier->ejections_detected[t],
                   "\n");
             }
           });
  }
  auto breaker = [&](std::string_view what, std::string_view help, auto current, auto max) {
    const std::string open = StrCat("weft_proxy_cluster_circuit_breakers_", V(what), "_open");
    const std::string limit = StrCat("weft_proxy_cluster_circuit_breakers_", V(what), "_max");
    family(open, "gauge", StrCat(V(help), " in use, across workers"),
           [&](const ClusterReport& c, const std::string& label, std::string* body) {
             StrAppend(body, open, "{cluster=\"", label, "\"} ", current(c), "\n");
           });
    family(limit, "gauge", StrCat(V(help), ": the limit"),
           [&](const ClusterReport& c, const std::string& label, std::string* body) {
             StrAppend(body, limit, "{cluster=\"", label, "\"} ", max(c), "\n");
           });
  };
  breaker(
      "cx", "Upstream connections", [](const ClusterReport& c) { return c.connections; },
      [](const ClusterReport& c) { return c.limits.max_connections; });
  breaker(
      "rq_pending", "Requests waiting for a connection",
      [](const ClusterReport& c) { return c.pending_requests; },
      [](const ClusterReport& c) { return c.limits.max_pending_requests; });
  breaker(
      "rq", "Requests", [](const ClusterReport& c) { return c.requests; },
      [](const ClusterReport& c) { return c.limits.max_requests; });
  breaker(
      "rq_retry", "Retries", [](const ClusterReport& c) { return c.retries; },
      [](const ClusterReport& c) { return c.limits.max_retries; });
  StrAppend(&out,
            "# HELP weft_proxy_outlier_observations_dropped_total Request outcomes workers "
            "reported that the main side could not take in time\n"
            "# TYPE weft_proxy_outlier_observations_dropped_total counter\n"
            "weft_proxy_outlier_observations_dropped_total ",
            queue_.dropped(), "\n");
  return out;
}

}  // namespace weft::upstream
