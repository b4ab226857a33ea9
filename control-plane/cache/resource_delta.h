// What a source changed in the resources it publishes, per scope: "" for what every node gets,
// else a node group's own (snapshot_cache.h). The translation hands these to the publisher, so
// a change costs what it changed rather than a copy of the whole mesh.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/xds/resource.h"

namespace weft::cp {

struct ResourceDelta {
  struct Scope {
    std::vector<xds::ResourcePtr> upserts;
    std::vector<std::pair<xds::ResourceType, std::string>> removals;
  };
  std::map<std::string, Scope> scopes;  // "" = shared by every node

  void Upsert(const std::string& scope, xds::ResourcePtr r) {
    scopes[scope].upserts.push_back(std::move(r));
  }
  void Remove(const std::string& scope, xds::ResourceType type, std::string name) {
    scopes[scope].removals.emplace_back(type, std::move(name));
  }
  bool empty() const {
    for (const auto& [name, s] : scopes) {
      if (!s.upserts.empty() || !s.removals.empty()) return false;
    }
    return true;
  }
  size_t size() const {
    size_t n = 0;
    for (const auto& [name, s] : scopes) n += s.upserts.size() + s.removals.size();
    return n;
  }
};

}  // namespace weft::cp
