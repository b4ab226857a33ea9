// The Weft config model kept between changes, so that a change costs what it changes: an apply,
// a delete or a file edit re-validates only the objects it touches and those that reference
// them, re-translates only the services (and foreign Route hosts) whose output can differ, and
// reports the resources whose content changed. Whole-mesh rules (references, one Policy per
// service, unique domains in the sidecar's route table, no clash with raw resources) are kept
// by indexes rather than by a rebuild. An endpoint-only change of a Service recomputes only its
// ClusterLoadAssignments.
//
// The result after any sequence of changes equals translating the final set of objects from
// scratch (TranslateForNodes, which is this class applied to an empty model): same resources,
// same versions, same errors. model_test checks that over random sequences.
//
// Not thread-safe: the config model serializes writers.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/xds/resource.h"
#include "control-plane/cache/resource_delta.h"
#include "control-plane/model/model.h"
#include "weft/config/v1/config.pb.h"

namespace weft::cp {

class ModelState {
 public:
  using ObjectPtr = std::shared_ptr<const config::v1::ConfigObject>;
  // Puts `object` under `key` (ObjectKey of it), or deletes `key` when null.
  struct Change {
    std::string key;
    ObjectPtr object;
  };
  struct Result {
    // Every problem of the resulting model, as ValidateConfig reports them; empty when valid.
    std::vector<std::string> errors;
    // When valid: the resources that changed since the last valid state ("" = every node's,
    // else a node group's).
    ResourceDelta delta;
    // Applying these puts the objects back as they were (a refused or dry-run change).
    std::vector<Change> undo;
    // What the change cost: objects validated, services translated whole, services whose
    // endpoints alone were translated, foreign hosts translated.
    size_t validated = 0, services = 0, endpoint_only = 0, foreign = 0;
    bool outbound = false;  // the sidecar's outbound route table was rebuilt

    bool ok() const { return errors.empty(); }
    absl::Status status() const;
  };

  ModelState();
  ~ModelState();
  ModelState(const ModelState&) = delete;
  ModelState& operator=(const ModelState&) = delete;

  // Applies `changes` (one per key) and validates what they touch. A model with problems keeps
  // the objects (apply `undo` to go back) but is not translated until it is valid again.
  Result Apply(std::vector<Change> changes);

  // The raw resources from --config-dir that share snapshots with the translated ones: a name
  // clash is refused (and the previous raw resources kept).
  absl::Status SetRawResources(const std::vector<xds::ResourcePtr>& shared,
                               const std::map<std::string, std::vector<xds::ResourcePtr>>& groups);

  const ObjectPtr* Find(const std::string& key) const;
  const std::map<std::string, ObjectPtr>& objects() const;
  // Every translated resource as of the last valid state, sorted by type then name.
  Translation Resources() const;
  // As a delta from nothing: what a fresh publisher needs.
  ResourceDelta All() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace weft::cp
