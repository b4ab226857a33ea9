#include "control-plane/api/config_model.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/log.h"
#include "common/proto_util.h"
#include "common/status.h"
#include "common/strings.h"
#include "control-plane/cache/snapshot.h"
#include "control-plane/model/model.h"

namespace weft::cp {

using config::v1::ConfigObject;

namespace {
constexpr std::string_view kModelSource = "model";

std::string StoreKey(const std::string& object_key) {
  return absl::StrCat(Sv(kStorePrefix), object_key);
}

// "Kind/namespace/name" -> namespace.
std::string NamespaceOf(const std::string& key) {
  std::vector<std::string> parts = absl::StrSplit(key, '/');
  return parts.size() == 3 ? parts[1] : "";
}
}  // namespace

absl::StatusOr<std::unique_ptr<ConfigModel>> ConfigModel::Create(Store* store,
                                                                 Publisher* publisher) {
  std::unique_ptr<ConfigModel> model(new ConfigModel(store, publisher));
  auto kvs = store->Range(kStorePrefix);
  if (!kvs.ok()) return kvs.status();
  for (const KeyValue& kv : *kvs) {
    ConfigObject object;
    if (!object.ParseFromString(kv.value)) {
      return absl::DataLossError(absl::StrCat("store: cannot parse object at ", kv.key));
    }
    model->stored_[kv.key.substr(kStorePrefix.size())] = Stored{std::move(object), kv.mod_revision};
  }
  std::lock_guard lock(model->mu_);
  model->revision_ = store->Revision();
  auto resources = model->Build(model->stored_);
  if (resources.ok()) {
    model->PublishLocked(*std::move(resources));
  } else {
    // Serving nothing from the model beats serving half of it; the error is visible in Status.
    model->last_error_ = std::string(resources.status().message());
    WEFT_LOG(kError) << "stored config does not validate: " << model->last_error_;
  }
  return model;
}

absl::StatusOr<Translation> ConfigModel::Build(const std::map<std::string, Stored>& stored) const {
  std::vector<ConfigObject> objects = file_objects_;
  objects.reserve(objects.size() + stored.size());
  for (const auto& [key, s] : stored) objects.push_back(s.object);
  // Translation validates the whole model first (the same checks as ValidateConfig).
  auto translated = TranslateForNodes(objects);
  if (!translated.ok()) return translated.status();
  // Raw resources from files and translated ones share the default snapshot and every group's
  // snapshot: names must not clash in any of them.
  std::set<std::pair<xds::ResourceType, std::string>> raw;
  for (const xds::ResourcePtr& r : raw_resources_) raw.emplace(r->type, r->name);
  auto check = [&](const std::string& group,
                   const std::vector<xds::ResourcePtr>& resources) -> absl::Status {
    for (const xds::ResourcePtr& r : resources) {
      if (!raw.contains({r->type, r->name})) continue;
      return absl::InvalidArgumentError(
          absl::StrCat(group.empty() ? "" : absl::StrCat("node group ", group, ": "), "duplicate ",
                       Sv(xds::ShortName(r->type)), " name \"", r->name,
                       "\" (a translated resource clashes with a raw resource in --config-dir)"));
    }
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(check("", translated->shared));
  for (const auto& [group, resources] : translated->per_group) {
    RETURN_IF_ERROR(check(group, resources));
  }
  return translated;
}

void ConfigModel::PublishLocked(Translation translation) {
  publisher_->Update(std::string(kModelSource), std::move(translation.shared), revision_,
                     std::move(translation.per_group));
}

void ConfigModel::SetFileConfig(std::vector<ConfigObject> objects,
                                std::vector<xds::ResourcePtr> raw_resources) {
  std::lock_guard lock(mu_);
  auto old_objects = std::move(file_objects_);
  auto old_raw = std::move(raw_resources_);
  file_objects_ = std::move(objects);
  raw_resources_ = std::move(raw_resources);
  auto resources = Build(stored_);
  if (!resources.ok()) {
    // Keep the last good file objects so the model keeps serving what it served.
    last_error_ = std::string(resources.status().message());
    WEFT_LOG(kWarning) << "config dir objects refused, last good kept: " << last_error_;
    file_objects_ = std::move(old_objects);
    raw_resources_ = std::move(old_raw);
    return;
  }
  last_error_.clear();
  PublishLocked(*std::move(resources));
}

absl::StatusOr<config::v1::ApplyResponse> ConfigModel::Apply(
    const std::vector<ConfigObject>& objects, bool dry_run, const CommitGate& gate) {
  std::lock_guard lock(mu_);
  config::v1::ApplyResponse response;
  std::map<std::string, Stored> next = stored_;
  std::set<std::string> in_request;
  std::set<std::string> file_keys;
  for (const ConfigObject& o : file_objects_) file_keys.insert(ObjectKey(o));
  std::vector<Store::Op> ops;
  for (size_t i = 0; i < objects.size(); ++i) {
    const ConfigObject& o = objects[i];
    if (o.object_case() == ConfigObject::OBJECT_NOT_SET) {
      return absl::InvalidArgumentError(absl::StrCat("objects[", i, "]: empty object"));
    }
    std::string key = ObjectKey(o);
    if (!in_request.insert(key).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("objects[", i, "]: ", key, ": appears twice in one apply"));
    }
    if (file_keys.contains(key)) {
      return absl::FailedPreconditionError(
          absl::StrCat(key, ": defined in --config-dir; edit that file instead"));
    }
    auto it = stored_.find(key);
    std::string bytes = DeterministicBytes(o);
    if (it != stored_.end() && DeterministicBytes(it->second.object) == bytes) {
      response.add_unchanged(key);
      continue;
    }
    (it == stored_.end() ? response.add_created() : response.add_updated())->assign(key);
    next[key] = Stored{o, 0};
    ops.push_back(Store::Op{Store::Op::kPut, StoreKey(key), std::move(bytes)});
  }
  auto resources = Build(next);
  if (!resources.ok()) return resources.status();
  if (dry_run) return response;
  if (gate) RETURN_IF_ERROR(gate());
  if (ops.empty()) {
    response.set_revision(revision_);
    return response;
  }
  auto rev = store_->Txn(ops);
  if (!rev.ok()) return rev.status();
  for (const Store::Op& op : ops) next[op.key.substr(kStorePrefix.size())].mod_revision = *rev;
  stored_ = std::move(next);
  revision_ = *rev;
  last_error_.clear();
  PublishLocked(*std::move(resources));
  response.set_revision(*rev);
  return response;
}

absl::StatusOr<config::v1::DeleteResponse> ConfigModel::Delete(const std::vector<std::string>& keys,
                                                               const CommitGate& gate) {
  std::lock_guard lock(mu_);
  std::map<std::string, Stored> next = stored_;
  std::vector<Store::Op> ops;
  config::v1::DeleteResponse response;
  for (const std::string& key : keys) {
    if (next.erase(key) == 0) {
      return absl::NotFoundError(absl::StrCat(key, ": not found"));
    }
    ops.push_back(Store::Op{Store::Op::kDelete, StoreKey(key), ""});
    response.add_deleted(key);
  }
  if (ops.empty()) return response;
  auto resources = Build(next);
  if (!resources.ok()) return resources.status();
  if (gate) RETURN_IF_ERROR(gate());
  auto rev = store_->Txn(ops);
  if (!rev.ok()) return rev.status();
  stored_ = std::move(next);
  revision_ = *rev;
  PublishLocked(*std::move(resources));
  response.set_revision(*rev);
  return response;
}

absl::StatusOr<config::v1::StoredObject> ConfigModel::Get(const std::string& key) const {
  std::lock_guard lock(mu_);
  config::v1::StoredObject out;
  out.set_key(key);
  if (auto it = stored_.find(key); it != stored_.end()) {
    *out.mutable_object() = it->second.object;
    out.set_mod_revision(it->second.mod_revision);
    out.set_origin("api");
    return out;
  }
  for (const ConfigObject& o : file_objects_) {
    if (ObjectKey(o) == key) {
      *out.mutable_object() = o;
      out.set_origin("file");
      return out;
    }
  }
  return absl::NotFoundError(absl::StrCat(key, ": not found"));
}

config::v1::ListResponse ConfigModel::List(const std::string& kind, const std::string& ns) const {
  std::lock_guard lock(mu_);
  config::v1::ListResponse out;
  auto matches = [&](const ConfigObject& o, const std::string& key) {
    return (kind.empty() || ObjectKind(o) == kind) && (ns.empty() || NamespaceOf(key) == ns);
  };
  std::map<std::string, config::v1::StoredObject> sorted;
  for (const ConfigObject& o : file_objects_) {
    std::string key = ObjectKey(o);
    if (!matches(o, key)) continue;
    auto& s = sorted[key];
    s.set_key(key);
    *s.mutable_object() = o;
    s.set_origin("file");
  }
  for (const auto& [key, st] : stored_) {
    if (!matches(st.object, key)) continue;
    auto& s = sorted[key];
    s.set_key(key);
    *s.mutable_object() = st.object;
    s.set_mod_revision(st.mod_revision);
    s.set_origin("api");
  }
  for (auto& [key, s] : sorted) *out.add_objects() = std::move(s);
  out.set_revision(revision_);
  return out;
}

int64_t ConfigModel::revision() const {
  std::lock_guard lock(mu_);
  return revision_;
}

std::string ConfigModel::last_error() const {
  std::lock_guard lock(mu_);
  return last_error_;
}

}  // namespace weft::cp
