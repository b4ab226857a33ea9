#include "data-plane/xds/config_state.h"

#include <optional>

#include "absl/strings/str_cat.h"
#include "common/json.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/xds/validate.h"
#include "google/protobuf/util/json_util.h"

namespace weft::proxy {

using google::protobuf::Any;
using xds::ResourceType;

absl::Status ConfigState::Validate(const std::vector<Any>& anys,
                                   std::vector<xds::ResourcePtr>* out) const {
  if (absl::Status s = xds::ValidateResources(anys); !s.ok()) return s;
  out->reserve(anys.size());
  for (size_t i = 0; i < anys.size(); ++i) {
    auto r = xds::MakeResource(anys[i]);
    if (!r.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("resources[", i, "]: ", r.status().message()));
    }
    out->push_back(*std::move(r));
  }
  return absl::OkStatus();
}

absl::Status ConfigState::ApplySotw(ResourceType type,
                                    const google::protobuf::RepeatedPtrField<Any>& resources) {
  std::vector<Any> anys(resources.begin(), resources.end());
  for (size_t i = 0; i < anys.size(); ++i) {
    if (anys[i].type_url() != xds::TypeUrl(type)) {
      return absl::InvalidArgumentError(absl::StrCat("resources[", i, "]: type \"",
                                                     anys[i].type_url(), "\" in a ",
                                                     Sv(xds::ShortName(type)), " response"));
    }
  }
  std::vector<xds::ResourcePtr> accepted;
  RETURN_IF_ERROR(Validate(anys, &accepted));
  ResourceMap& map = by_type_[xds::Index(type)];
  if (xds::IsFullStateType(type)) map.clear();
  // The whole set again: whatever cannot be served is found anew.
  if (type == ResourceType::kListener) unserved_.clear();
  for (auto& r : accepted) map[r->name] = std::move(r);
  PruneUnreferenced();
  ++generation_;
  return absl::OkStatus();
}

absl::Status ConfigState::ApplyDelta(
    ResourceType type,
    const google::protobuf::RepeatedPtrField<envoy::service::discovery::v3::Resource>& resources,
    const google::protobuf::RepeatedPtrField<std::string>& removed) {
  std::vector<Any> anys;
  anys.reserve(resources.size());
  for (int i = 0; i < resources.size(); ++i) {
    if (!resources[i].has_resource()) {
      return absl::InvalidArgumentError(absl::StrCat("resources[", i, "].resource: missing"));
    }
    if (resources[i].resource().type_url() != xds::TypeUrl(type)) {
      return absl::InvalidArgumentError(absl::StrCat("resources[", i, "]: type \"",
                                                     resources[i].resource().type_url(), "\" in a ",
                                                     Sv(xds::ShortName(type)), " response"));
    }
    anys.push_back(resources[i].resource());
  }
  std::vector<xds::ResourcePtr> accepted;
  RETURN_IF_ERROR(Validate(anys, &accepted));
  ResourceMap& map = by_type_[xds::Index(type)];
  if (type == ResourceType::kListener) {
    // Named again: whether they can be served now is found anew.
    for (const std::string& name : removed) unserved_.erase(name);
    for (const auto& r : accepted) unserved_.erase(r->name);
  }
  for (const std::string& name : removed) map.erase(name);
  for (auto& r : accepted) map[r->name] = std::move(r);
  PruneUnreferenced();
  ++generation_;
  return absl::OkStatus();
}

void ConfigState::Restore(ResourceType type, const std::string& name, const ConfigState& from) {
  ResourceMap& map = by_type_[xds::Index(type)];
  const ResourceMap& source = from.by_type_[xds::Index(type)];
  auto it = source.find(name);
  if (it == source.end()) {
    map.erase(name);
  } else {
    map[name] = it->second;
    // This update may have pruned what the previous version referred to.
    std::optional<ResourceType> child;
    if (type == ResourceType::kListener) child = ResourceType::kRoute;
    if (type == ResourceType::kCluster) child = ResourceType::kEndpoint;
    if (child) {
      ResourceMap& children = by_type_[xds::Index(*child)];
      const ResourceMap& held = from.by_type_[xds::Index(*child)];
      for (const std::string& dep : it->second->dependencies) {
        auto d = held.find(dep);
        if (d != held.end()) children.emplace(dep, d->second);
      }
    }
  }
  PruneUnreferenced();
}

std::set<std::string> ConfigState::Wanted(ResourceType type) const {
  std::set<std::string> out;
  ResourceType parent;
  if (type == ResourceType::kEndpoint) {
    parent = ResourceType::kCluster;
  } else if (type == ResourceType::kRoute) {
    parent = ResourceType::kListener;
  } else {
    return out;
  }
  for (const auto& [name, r] : by_type_[xds::Index(parent)]) {
    out.insert(r->dependencies.begin(), r->dependencies.end());
  }
  return out;
}

void ConfigState::PruneUnreferenced() {
  for (ResourceType t : {ResourceType::kEndpoint, ResourceType::kRoute}) {
    std::set<std::string> wanted = Wanted(t);
    ResourceMap& map = by_type_[xds::Index(t)];
    for (auto it = map.begin(); it != map.end();) {
      it = wanted.contains(it->first) ? std::next(it) : map.erase(it);
    }
  }
}

std::vector<std::string> ConfigState::Warming() const {
  std::vector<std::string> out;
  for (auto [parent, child] : {std::pair{ResourceType::kCluster, ResourceType::kEndpoint},
                               std::pair{ResourceType::kListener, ResourceType::kRoute}}) {
    for (const auto& [name, r] : by_type_[xds::Index(parent)]) {
      for (const std::string& dep : r->dependencies) {
        if (!by_type_[xds::Index(child)].contains(dep)) {
          out.push_back(absl::StrCat(Sv(xds::ShortName(parent)), "/", name));
          break;
        }
      }
    }
  }
  return out;
}

std::string ConfigState::ConfigDumpJson() const {
  std::string out = absl::StrCat("{\"generation\":", generation_, ",\"warming\":[");
  std::vector<std::string> warming = Warming();
  for (size_t i = 0; i < warming.size(); ++i) {
    if (i > 0) out.push_back(',');
    AppendJsonString(warming[i], &out);
  }
  out += "],\"unserved_listeners\":{";
  bool first_unserved = true;
  for (const auto& [name, why] : unserved_) {
    absl::StrAppend(&out, first_unserved ? "" : ",", JsonString(name), ":", JsonString(why));
    first_unserved = false;
  }
  out += "},\"resources\":{";
  bool first_type = true;
  for (ResourceType t : xds::kAllResourceTypes) {
    if (!first_type) out.push_back(',');
    first_type = false;
    absl::StrAppend(&out, JsonString(xds::ShortName(t)), ":[");
    bool first = true;
    for (const auto& [name, r] : by_type_[xds::Index(t)]) {
      std::string body;
      if (!google::protobuf::util::MessageToJsonString(r->body, &body).ok()) body = "null";
      if (!first) out.push_back(',');
      first = false;
      absl::StrAppend(&out, "{\"name\":", JsonString(name),
                      ",\"version\":", JsonString(r->version_text), ",\"resource\":", body, "}");
    }
    out += "]";
  }
  out += "}}";
  return out;
}

}  // namespace weft::proxy
