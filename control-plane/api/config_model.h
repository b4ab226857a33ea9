// The live config model: Weft objects from the config directory (read-only) and from the config
// API (durable, in the store), checked together and translated into xDS for the publisher.
//
// Every write is checked against the resulting model — schema, references, and the very
// validators the proxies use to ACK or NACK — before it is stored, so a bad config is refused
// at apply time and never reaches a proxy. Checking and translating cost what a write changes
// (control-plane/model/model_state.h), and the publisher gets only the resources that changed.
//
// Locks: writers (Apply, Delete, SetFileConfig) are serialized, so the model, the store and the
// publisher see changes in one order; readers (Get, List, revision) read a committed view and
// never wait for a write's validation and translation, only for its last step (swapping the
// changed entries in).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/xds/resource.h"
#include "control-plane/cache/publisher.h"
#include "control-plane/model/model_state.h"
#include "control-plane/store/store.h"
#include "weft/config/v1/config.pb.h"
#include "weft/config/v1/config_service.pb.h"

namespace weft::cp {

inline constexpr std::string_view kStorePrefix = "/weft/config/";

class ConfigModel {
 public:
  // Loads what the store holds. `store` and `publisher` must outlive the model.
  static absl::StatusOr<std::unique_ptr<ConfigModel>> Create(Store* store, Publisher* publisher);

  // Replaces the objects and raw resources that come from the config directory. Refused (the
  // last good ones kept, the reason in last_error()) when the result would not validate.
  // An object that is the very one committed (same pointer) is not compared again.
  void SetFileConfig(const std::vector<ModelState::ObjectPtr>& objects,
                     const std::vector<xds::ResourcePtr>& raw_resources,
                     const std::map<std::string, std::vector<xds::ResourcePtr>>& raw_groups = {});

  // Asked right before a write commits (after validation, also for one that changes nothing):
  // a non-OK answer (the client's deadline passed, it went away) refuses the write with it.
  using CommitGate = std::function<absl::Status()>;

  absl::StatusOr<config::v1::ApplyResponse> Apply(
      const std::vector<config::v1::ConfigObject>& objects, bool dry_run,
      const CommitGate& gate = nullptr);
  absl::StatusOr<config::v1::DeleteResponse> Delete(const std::vector<std::string>& keys,
                                                    const CommitGate& gate = nullptr);
  absl::StatusOr<config::v1::StoredObject> Get(const std::string& key) const;
  config::v1::ListResponse List(const std::string& kind, const std::string& ns) const;

  int64_t revision() const;
  // Why the current file config could not be merged (e.g. it clashes with stored objects), or
  // why the stored config does not validate.
  std::string last_error() const;

 private:
  ConfigModel(Store* store, Publisher* publisher) : store_(store), publisher_(publisher) {}
  struct Entry {
    ModelState::ObjectPtr object;
    int64_t mod_revision = 0;  // 0 for objects from files
    bool file = false;
  };
  // Takes a valid result to the publisher and the readers' view.
  void CommitLocked(const std::vector<ModelState::Change>& changes, ModelState::Result result,
                    int64_t revision, bool file);

  Store* store_;
  Publisher* publisher_;
  std::mutex write_mu_;  // serializes writers
  ModelState state_;     // write_mu_
  // The raw resources state_ last accepted (write_mu_).
  std::vector<xds::ResourcePtr> raw_resources_;
  std::map<std::string, std::vector<xds::ResourcePtr>> raw_groups_;
  mutable std::shared_mutex read_mu_;
  // The committed view, by key; changed only with both locks held, so a writer reads it
  // with write_mu_ alone.
  std::map<std::string, Entry> committed_;
  int64_t revision_ = 0;
  std::string last_error_;
};

}  // namespace weft::cp
