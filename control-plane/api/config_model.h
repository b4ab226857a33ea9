// The live config model: Weft objects from the config directory (read-only) and from the config
// API (durable, in the store), checked together and translated into xDS for the publisher.
//
// Every write is checked against the whole resulting model — schema, references, and the very
// validators the proxies use to ACK or NACK — before it is stored, so a bad config is refused
// at apply time and never reaches a proxy.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/xds/resource.h"
#include "control-plane/cache/publisher.h"
#include "control-plane/model/model.h"
#include "control-plane/store/store.h"
#include "weft/config/v1/config.pb.h"
#include "weft/config/v1/config_service.pb.h"

namespace weft::cp {

inline constexpr std::string_view kStorePrefix = "/weft/config/";

class ConfigModel {
 public:
  // Loads what the store holds. `store` and `publisher` must outlive the model.
  static absl::StatusOr<std::unique_ptr<ConfigModel>> Create(Store* store, Publisher* publisher);

  // Replaces the objects and raw resources that come from the config directory.
  void SetFileConfig(std::vector<config::v1::ConfigObject> objects,
                     std::vector<xds::ResourcePtr> raw_resources);

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
  // Why the current file config could not be merged (e.g. it clashes with stored objects).
  std::string last_error() const;

 private:
  ConfigModel(Store* store, Publisher* publisher) : store_(store), publisher_(publisher) {}
  struct Stored {
    config::v1::ConfigObject object;
    int64_t mod_revision = 0;
  };
  // Validates and translates `stored` + file objects + raw resources together.
  absl::StatusOr<Translation> Build(const std::map<std::string, Stored>& stored) const;
  void PublishLocked(Translation translation);

  Store* store_;
  Publisher* publisher_;
  mutable std::mutex mu_;
  std::map<std::string, Stored> stored_;  // by object key
  std::vector<config::v1::ConfigObject> file_objects_;
  std::vector<xds::ResourcePtr> raw_resources_;
  int64_t revision_ = 0;
  std::string last_error_;
};

}  // namespace weft::cp
