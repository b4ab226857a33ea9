#include "control-plane/admin/admin.h"

#include "absl/strings/str_cat.h"
#include "common/json.h"
#include "common/strings.h"
#include "control-plane/cache/snapshot_cache.h"

namespace weft::cp {

XdsMetrics::XdsMetrics(metrics::Registry* registry) {
  connected_ = registry->AddGauge("weft_cp_connected_proxies", "xDS streams currently open")->Get();
  streams_total_ =
      registry->AddCounter("weft_cp_xds_streams_total", "xDS streams opened since start")->Get();
  auto* pushes = registry->AddCounter("weft_cp_xds_pushes_total",
                                      "xDS responses sent, per resource type", {"type"});
  auto* sent = registry->AddCounter("weft_cp_xds_resources_sent_total",
                                    "Resources carried in xDS responses, per type", {"type"});
  auto* acks = registry->AddCounter("weft_cp_xds_acks_total", "ACKs received, per type", {"type"});
  auto* nacks =
      registry->AddCounter("weft_cp_xds_nacks_total", "NACKs received, per type", {"type"});
  auto* stale = registry->AddCounter("weft_cp_xds_stale_nonce_total",
                                     "Requests ignored for carrying a stale nonce", {"type"});
  auto* latency = registry->AddHistogram("weft_cp_xds_push_to_ack_seconds",
                                         "Time from sending a response to its ACK", {"type"});
  for (xds::ResourceType t : xds::kAllResourceTypes) {
    std::vector<std::string> labels = {std::string(xds::ShortName(t))};
    size_t i = xds::Index(t);
    pushes_[i] = pushes->WithLabels(labels);
    resources_sent_[i] = sent->WithLabels(labels);
    acks_[i] = acks->WithLabels(labels);
    nacks_[i] = nacks->WithLabels(labels);
    stale_[i] = stale->WithLabels(labels);
    push_to_ack_[i] = latency->WithLabels(labels);
  }
}

void XdsMetrics::OnStreamOpened() {
  connected_->Add(1);
  streams_total_->Inc();
}
void XdsMetrics::OnStreamClosed() { connected_->Sub(1); }
void XdsMetrics::OnPush(xds::ResourceType type, size_t resources) {
  pushes_[xds::Index(type)]->Inc();
  resources_sent_[xds::Index(type)]->Inc(resources);
}
void XdsMetrics::OnAck(xds::ResourceType type, std::chrono::nanoseconds push_to_ack) {
  acks_[xds::Index(type)]->Inc();
  push_to_ack_[xds::Index(type)]->ObserveDuration(push_to_ack);
}
void XdsMetrics::OnNack(xds::ResourceType type) { nacks_[xds::Index(type)]->Inc(); }
void XdsMetrics::OnStaleNonce(xds::ResourceType type) { stale_[xds::Index(type)]->Inc(); }

std::string SnapshotsJson(const SnapshotCache& cache) {
  std::string out = "{\"groups\":{";
  bool first_group = true;
  for (const auto& [group, snap] : cache.All()) {
    if (!first_group) out.push_back(',');
    first_group = false;
    // A group layered on the default lists only its own resources: the rest is the default's,
    // shared, and repeating it per group would make this page grow with groups x mesh.
    const bool overlay = cache.IsOverlay(group);
    absl::StrAppend(&out, JsonString(group), ":{");
    if (overlay) out += "\"extends\":\"default\",";
    bool first_type = true;
    for (xds::ResourceType t : xds::kAllResourceTypes) {
      if (!first_type) out.push_back(',');
      first_type = false;
      absl::StrAppend(&out, JsonString(xds::ShortName(t)),
                      ":{\"version\":", JsonString(snap->version(t)), ",\"resources\":{");
      bool first = true;
      auto add = [&](const Snapshot::Entry& e) {
        if (!first) out.push_back(',');
        first = false;
        absl::StrAppend(&out, JsonString(e.resource->name), ":",
                        JsonString(e.resource->version_text));
      };
      if (!overlay) {
        snap->ForEach(t, add);
      } else if (const ResourceSet::Ptr& own = snap->own_set(t)) {
        for (const ResourceSet::EntryPtr& e : own->entries()) add(*e);
      }
      out += "}}";
    }
    out += "}";
  }
  out += "}}";
  return out;
}

std::vector<http::Route> AdminRoutes(AdminDeps deps) {
  auto json = [](std::string body) {
    http::Response r;
    r.content_type = "application/json";
    r.body = std::move(body);
    r.body.push_back('\n');
    return r;
  };
  using http::Route;
  std::vector<Route> routes;
  routes.push_back({Route::kReadOnly, "/ready", [deps](const http::Request&) {
                      http::Response r;
                      bool ready = deps.ready && deps.ready();
                      r.status = ready ? 200 : 503;
                      r.body = ready ? "ready\n" : "not ready\n";
                      return r;
                    }});
  routes.push_back({Route::kReadOnly, "/metrics", [deps](const http::Request&) {
                      http::Response r;
                      r.content_type = "text/plain; version=0.0.4; charset=utf-8";
                      r.body = deps.registry->PrometheusText();
                      return r;
                    }});
  routes.push_back({Route::kReadOnly, "/debug/proxies",
                    [deps, json](const http::Request&) { return json(deps.xds->ProxiesJson()); }});
  routes.push_back({Route::kReadOnly, "/debug/snapshots", [deps, json](const http::Request&) {
                      return json(SnapshotsJson(*deps.cache));
                    }});
  routes.push_back({Route::kReadOnly, "/debug/config", [deps, json](const http::Request&) {
                      return json(deps.config_json ? deps.config_json() : "{}");
                    }});
  routes.push_back(http::LogLevelRoute());
  return routes;
}

}  // namespace weft::cp
