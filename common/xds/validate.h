// Semantic validation of xDS resources. The same code decides whether weft-proxy ACKs or NACKs
// an update and whether weft-cp accepts a config file or API call, so a bad config is refused
// before any proxy sees it. Every problem is reported with its field path.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/validation.h"
#include "common/xds/resource.h"
#include "google/protobuf/any.pb.h"

namespace weft::xds {

// Validates one resource (already parsed from `any`); errors are added under the current scope
// of `errors` (callers push e.g. "resources[3]").
void ValidateResource(const google::protobuf::Any& any, ValidationErrors* errors);

// Validates a whole response-worth of resources of mixed types: each one, plus duplicate names
// within a type ("resources[4].name: duplicate cluster name \"a\" (first at resources[1])").
absl::Status ValidateResources(const std::vector<google::protobuf::Any>& resources);

}  // namespace weft::xds
