// Raw Envoy resources from a watched directory (Envoy's filesystem format: a DiscoveryResponse
// in YAML or JSON whose `resources` are @type'd). Files are re-read on inotify events; a file
// that fails to parse or validate is reported (file:line: field.path: problem) and its last good
// contents keep serving.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/xds/resource.h"
#include "weft/config/v1/config.pb.h"

namespace weft::cp {

struct ConfigFileError {
  std::string file;
  std::string message;  // "file:line: field.path: problem"
};

struct ConfigDirState {
  // Every accepted resource across all files (last good version of each file) that goes to
  // every node.
  std::vector<xds::ResourcePtr> resources;
  // Accepted resources of documents scoped to node groups (`node_groups: [...]` next to
  // `resources`), by group: served only to the nodes of those groups.
  std::map<std::string, std::vector<xds::ResourcePtr>> group_resources;
  // Weft schema objects (documents with `kind`), parsed but not yet cross-validated: the
  // config model checks them together with what the config API stored. Immutable and shared:
  // an object from a file that did not change is the same pointer in the next state, so a
  // consumer can skip it without comparing contents (one edit in a 10 000-file mesh must not
  // cost 10 000 comparisons).
  std::vector<std::shared_ptr<const config::v1::ConfigObject>> objects;
  // Files currently rejected (their last good contents, if any, are still in `resources`).
  std::vector<ConfigFileError> errors;
  uint64_t generation = 0;  // bumps on every change
};

struct ConfigDirOptions {
  // Resources holding inline key material (a private key, a generic secret: common/xds/
  // sensitive.h) are refused unless this is set, and even then only in documents scoped to
  // node groups. Node identities are not authenticated yet: anyone who names such a node id or
  // cluster gets them, so this is for local development only.
  bool serve_inline_keys = false;
};

class ConfigDirSource {
 public:
  using Callback = std::function<void(const ConfigDirState&)>;
  virtual ~ConfigDirSource() = default;

  // Loads `dir` once (synchronously) and then watches it on a background thread, calling
  // `on_change` with the full state whenever the accepted resources or the error list change.
  static absl::StatusOr<std::unique_ptr<ConfigDirSource>> Create(std::string dir,
                                                                 Callback on_change,
                                                                 ConfigDirOptions options = {});
  virtual ConfigDirState Current() const = 0;
};

}  // namespace weft::cp
