// Per-request pieces (timestamps: weft::Iso8601 in common/clock.h) that both the connection manager
// and the worker's HTTP/1 path use (the worker keeps its own HTTP/1 path until it is cut over to
// the connection manager).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "data-plane/upstream/lb/load_balancer.h"

namespace weft::http {

// A random (version 4) UUID, for x-request-id.
std::string Uuid4(upstream::Random& random);

// Envoy's rule: the connection manager must list the upgrade type; the route's upgrade_configs
// (null when the route has none), where they name it, decide whether it is enabled, else the
// connection manager's entry does.
bool UpgradeAllowed(std::string_view type,
                    const std::vector<std::pair<std::string, bool>>& listener,
                    const std::vector<std::pair<std::string, bool>>* route);

}  // namespace weft::http
