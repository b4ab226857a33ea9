#include "control-plane/api/config_model.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/log.h"
#include "common/proto_util.h"
#include "common/status.h"
#include "common/strings.h"
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

bool Same(const ModelState::ObjectPtr& a, const ModelState::ObjectPtr& b) {
  return a == b || (a != nullptr && DeterministicBytes(*a) == DeterministicBytes(*b));
}
}  // namespace

absl::StatusOr<std::unique_ptr<ConfigModel>> ConfigModel::Create(Store* store,
                                                                 Publisher* publisher) {
  std::unique_ptr<ConfigModel> model(new ConfigModel(store, publisher));
  auto kvs = store->Range(kStorePrefix);
  if (!kvs.ok()) return kvs.status();
  std::lock_guard lock(model->write_mu_);
  std::vector<ModelState::Change> changes;
  changes.reserve(kvs->size());
  for (const KeyValue& kv : *kvs) {
    auto object = std::make_shared<ConfigObject>();
    if (!object->ParseFromString(kv.value)) {
      return absl::DataLossError(absl::StrCat("store: cannot parse object at ", kv.key));
    }
    std::string key = kv.key.substr(kStorePrefix.size());
    model->committed_[key] = Entry{object, kv.mod_revision, false};
    changes.push_back({std::move(key), std::move(object)});
  }
  model->revision_ = store->Revision();
  ModelState::Result r = model->state_.Apply(std::move(changes));
  if (r.ok()) {
    model->publisher_->Apply(std::string(kModelSource), r.delta, model->revision_);
  } else {
    // Serving nothing from the model beats serving half of it; the error is visible in Status,
    // and the next write must fix it.
    model->last_error_ = std::string(r.status().message());
    WEFT_LOG(kError) << "stored config does not validate: " << model->last_error_;
  }
  return model;
}

void ConfigModel::CommitLocked(const std::vector<ModelState::Change>& changes,
                               ModelState::Result result, int64_t revision, bool file) {
  publisher_->Apply(std::string(kModelSource), result.delta, revision);
  std::unique_lock lock(read_mu_);
  for (const ModelState::Change& c : changes) {
    if (c.object == nullptr) {
      committed_.erase(c.key);
    } else {
      committed_[c.key] = Entry{c.object, file ? 0 : revision, file};
    }
  }
  revision_ = revision;
  last_error_.clear();
}

void ConfigModel::SetFileConfig(
    const std::vector<ModelState::ObjectPtr>& objects,
    const std::vector<xds::ResourcePtr>& raw_resources,
    const std::map<std::string, std::vector<xds::ResourcePtr>>& groups) {
  std::lock_guard lock(write_mu_);
  std::vector<ModelState::Change> changes;
  std::set<std::string> keys;
  std::string error;
  for (const ModelState::ObjectPtr& o : objects) {
    std::string key = ObjectKey(*o);
    if (!keys.insert(key).second) {
      error = absl::StrCat(key, ": defined twice in --config-dir");
      break;
    }
    auto it = committed_.find(key);
    if (it != committed_.end() && !it->second.file) {
      error = absl::StrCat(key, ": defined both in --config-dir and through the config API");
      break;
    }
    if (it != committed_.end() && Same(it->second.object, o)) continue;
    changes.push_back({std::move(key), o});
  }
  for (const auto& [key, e] : committed_) {
    if (e.file && !keys.contains(key)) changes.push_back({key, nullptr});
  }
  auto refuse = [&](std::string why) {
    std::unique_lock rl(read_mu_);
    last_error_ = std::move(why);
    WEFT_LOG(kWarning) << "config dir objects refused, last good kept: " << last_error_;
  };
  if (!error.empty()) return refuse(std::move(error));

  // Raw resources and translated ones must not clash; whichever goes first must not see a
  // clash the other removes, so try both orders.
  ModelState::Result r;
  absl::Status raw = state_.SetRawResources(raw_resources, groups);
  if (raw.ok()) {
    r = state_.Apply(changes);
    if (!r.ok()) {
      state_.Apply(r.undo);
      (void)state_.SetRawResources(raw_resources_, raw_groups_);  // agreed with the old objects
      return refuse(std::string(r.status().message()));
    }
  } else {
    r = state_.Apply(changes);
    if (!r.ok()) {
      state_.Apply(r.undo);
      return refuse(std::string(r.status().message()));
    }
    if (absl::Status again = state_.SetRawResources(raw_resources, groups); !again.ok()) {
      state_.Apply(r.undo);
      return refuse(std::string(again.message()));
    }
  }
  raw_resources_ = raw_resources;
  raw_groups_ = groups;
  CommitLocked(changes, std::move(r), revision_, /*file=*/true);
}

absl::StatusOr<config::v1::ApplyResponse> ConfigModel::Apply(
    const std::vector<ConfigObject>& objects, bool dry_run, const CommitGate& gate) {
  std::lock_guard lock(write_mu_);
  config::v1::ApplyResponse response;
  std::set<std::string> in_request;
  std::vector<ModelState::Change> changes;
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
    auto it = committed_.find(key);
    if (it != committed_.end() && it->second.file) {
      return absl::FailedPreconditionError(
          absl::StrCat(key, ": defined in --config-dir; edit that file instead"));
    }
    std::string bytes = DeterministicBytes(o);
    if (it != committed_.end() && DeterministicBytes(*it->second.object) == bytes) {
      response.add_unchanged(key);
      continue;
    }
    (it == committed_.end() ? response.add_created() : response.add_updated())->assign(key);
    ops.push_back(Store::Op{Store::Op::kPut, StoreKey(key), std::move(bytes)});
    changes.push_back({std::move(key), std::make_shared<const ConfigObject>(o)});
  }
  // An apply that changes nothing still answers whether the model is valid.
  ModelState::Result r = state_.Apply(changes);
  if (!r.ok()) {
    state_.Apply(r.undo);
    return r.status();
  }
  auto undo = [&] { state_.Apply(r.undo); };
  if (dry_run) {
    undo();
    return response;
  }
  if (gate) {
    if (absl::Status s = gate(); !s.ok()) {
      undo();
      return s;
    }
  }
  if (ops.empty()) {
    response.set_revision(revision_);
    return response;
  }
  auto rev = store_->Txn(ops);
  if (!rev.ok()) {
    undo();
    return rev.status();
  }
  CommitLocked(changes, std::move(r), *rev, /*file=*/false);
  response.set_revision(*rev);
  return response;
}

absl::StatusOr<config::v1::DeleteResponse> ConfigModel::Delete(const std::vector<std::string>& keys,
                                                               const CommitGate& gate) {
  std::lock_guard lock(write_mu_);
  std::vector<ModelState::Change> changes;
  std::vector<Store::Op> ops;
  std::set<std::string> seen;
  config::v1::DeleteResponse response;
  for (const std::string& key : keys) {
    auto it = committed_.find(key);
    if (it == committed_.end() || !seen.insert(key).second) {
      return absl::NotFoundError(absl::StrCat(key, ": not found"));
    }
    if (it->second.file) {
      return absl::FailedPreconditionError(
          absl::StrCat(key, ": defined in --config-dir; edit that file instead"));
    }
    changes.push_back({key, nullptr});
    ops.push_back(Store::Op{Store::Op::kDelete, StoreKey(key), ""});
    response.add_deleted(key);
  }
  if (ops.empty()) return response;
  ModelState::Result r = state_.Apply(changes);
  if (!r.ok()) {
    state_.Apply(r.undo);
    return r.status();
  }
  if (gate) {
    if (absl::Status s = gate(); !s.ok()) {
      state_.Apply(r.undo);
      return s;
    }
  }
  auto rev = store_->Txn(ops);
  if (!rev.ok()) {
    state_.Apply(r.undo);
    return rev.status();
  }
  CommitLocked(changes, std::move(r), *rev, /*file=*/false);
  response.set_revision(*rev);
  return response;
}

absl::StatusOr<config::v1::StoredObject> ConfigModel::Get(const std::string& key) const {
  std::shared_lock lock(read_mu_);
  auto it = committed_.find(key);
  if (it == committed_.end()) return absl::NotFoundError(absl::StrCat(key, ": not found"));
  config::v1::StoredObject out;
  out.set_key(key);
  *out.mutable_object() = *it->second.object;
  out.set_mod_revision(it->second.mod_revision);
  out.set_origin(it->second.file ? "file" : "api");
  return out;
}

config::v1::ListResponse ConfigModel::List(const std::string& kind, const std::string& ns) const {
  std::shared_lock lock(read_mu_);
  config::v1::ListResponse out;
  for (const auto& [key, e] : committed_) {
    if (!kind.empty() && ObjectKind(*e.object) != kind) continue;
    if (!ns.empty() && NamespaceOf(key) != ns) continue;
    config::v1::StoredObject* s = out.add_objects();
    s->set_key(key);
    *s->mutable_object() = *e.object;
    s->set_mod_revision(e.mod_revision);
    s->set_origin(e.file ? "file" : "api");
  }
  out.set_revision(revision_);
  return out;
}

int64_t ConfigModel::revision() const {
  std::shared_lock lock(read_mu_);
  return revision_;
}

std::string ConfigModel::last_error() const {
  std::shared_lock lock(read_mu_);
  return last_error_;
}

}  // namespace weft::cp
