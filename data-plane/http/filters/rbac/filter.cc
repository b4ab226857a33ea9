#include "data-plane/http/filters/rbac/filter.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/strings.h"
#include "data-plane/network/connection.h"
#include "data-plane/stats/proxy_stats.h"

namespace weft::http::rbac {
namespace {

// Straight from the socket address: no text round trip on the request path.
std::optional<Endpoint> ToEndpoint(const sockaddr_storage& a) {
  Endpoint e;
  if (a.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&a);
    std::memcpy(e.ip.bytes.data(), &in->sin_addr, 4);
    e.port = ntohs(in->sin_port);
    return e;
  }
  if (a.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&a);
    e.ip.v6 = true;
    std::memcpy(e.ip.bytes.data(), &in6->sin6_addr, 16);
    e.port = ntohs(in6->sin6_port);
    return e;
  }
  return std::nullopt;  // a socket pair or a test's empty address: no IP to match
}

class RbacFilter final : public Filter {
 public:
  RbacFilter(StreamFilterCallbacks& callbacks, std::shared_ptr<const RbacFilterConfig> config)
      : cb_(callbacks), config_(std::move(config)) {}

  FilterStatus DecodeHeaders(RequestHeaderMap& headers, bool) override {
    RequestInfo request;
    request.line = {headers.method(), headers.path(), headers.authority(), headers.scheme()};
    request.headers = &static_cast<const router::HeaderLookup&>(headers);
    const network::Connection& conn = cb_.connection();
    request.source = ToEndpoint(conn.peer_address());
    request.destination = ToEndpoint(conn.local_address());
    const RbacFilterConfig::Result result = config_->Evaluate(request);
    const StatNames& n = config_->stat_names();
    if (result.shadow) {
      Count(*result.shadow, n.shadow_allowed, n.shadow_denied, n.shadow_policy_prefix, "shadow_");
    }
    if (!result.enforced) return FilterStatus::kContinue;
    const Decision& d = *result.enforced;
    Count(d, n.allowed, n.denied, n.policy_prefix, "");
    if (d.allowed) return FilterStatus::kContinue;
    cb_.SendLocalReply(kDeniedStatus, kDeniedBody, ResponseFlag::kRbacDenied,
                       ResponseCodeDetails(d.matched_policy));
    return FilterStatus::kStop;
  }

 private:
  // The rule set's counter, and with track_per_rule_stats the matched policy's
  // ("<prefix><policy>.[shadow_]allowed").
  void Count(const Decision& d, const std::string& allowed, const std::string& denied,
             const std::string& policy_prefix, std::string_view kind) {
    proxy::CounterScope& counters = cb_.counters();
    counters.Counter(d.allowed ? allowed : denied).Inc();
    if (!config_->track_per_rule_stats() || d.matched_policy.empty()) return;
    counters
        .Counter(absl::StrCat(policy_prefix, Sv(d.matched_policy), ".", Sv(kind),
                              d.allowed ? "allowed" : "denied"))
        .Inc();
  }

  StreamFilterCallbacks& cb_;
  std::shared_ptr<const RbacFilterConfig> config_;
};

class RbacFilterFactory final : public FilterFactory {
 public:
  explicit RbacFilterFactory(std::shared_ptr<const RbacFilterConfig> config)
      : config_(std::move(config)) {}
  std::unique_ptr<Filter> Create(StreamFilterCallbacks& callbacks) const override {
    return std::make_unique<RbacFilter>(callbacks, config_);
  }

 private:
  std::shared_ptr<const RbacFilterConfig> config_;
};

}  // namespace

std::shared_ptr<const FilterFactory> NewRbacFilterFactory(
    std::shared_ptr<const RbacFilterConfig> config) {
  return std::make_shared<RbacFilterFactory>(std::move(config));
}

absl::StatusOr<std::shared_ptr<const FilterFactory>> NewRbacFilterFactory(
    const envoy::extensions::filters::http::rbac::v3::RBAC& config) {
  auto compiled = RbacFilterConfig::Create(config);
  if (!compiled.ok()) return compiled.status();
  return NewRbacFilterFactory(*std::move(compiled));
}

}  // namespace weft::http::rbac
