// The route table: a RouteConfiguration compiled into an immutable structure that answers
// "which route serves this request" without allocating.
//
// Threading: built once per RDS update on the main thread (RouteTable::Create), then published
// to workers as std::shared_ptr<const RouteTable>; every method is const and lock-free, so any
// number of workers may match concurrently. A Route* stays valid while the table is alive.
//
// Semantics follow Envoy (source/common/router/config_impl.cc) so a config written for Envoy
// routes the same way:
//  - virtual host: exact domain, then the longest suffix wildcard ("*.foo.com"), then the
//    longest prefix wildcard ("foo.*"), then "*"; case-insensitive. When nothing but "*" matches
//    "host:port", the lookup is retried with the port stripped (and ignore_port_in_host_matching
//    strips it up front).
//  - routes: first match wins; the path match ignores the query string and fragment.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "data-plane/router/matchers.h"
#include "envoy/config/route/v3/route.pb.h"

namespace weft::router {

// What the router needs to know about a request. Views only: the caller keeps the strings alive
// for the duration of the call.
struct RequestView {
  std::string_view method;     // ":method"
  std::string_view authority;  // ":authority" / Host, possibly with ":port"
  std::string_view path;       // ":path", including any query string
  // The scheme the client used (x-forwarded-proto as Envoy sees it); redirects keep it unless
  // they change it, and it decides whether a default port is dropped from the Location.
  std::string_view scheme = "http";
  const HeaderLookup* headers = nullptr;  // null: no headers
  // Per-request random value, used by match.runtime_fraction (Envoy draws it once per stream).
  uint64_t random_value = 0;
  // Downstream TLS facts, for match.tls_context.
  bool peer_certificate_presented = false;
  bool peer_certificate_validated = false;
};

// Write access to a header map, for applying header mutations.
class MutableHeaders : public HeaderLookup {
 public:
  virtual void Add(std::string_view lowercase_name, std::string_view value) = 0;  // one more
  virtual void Set(std::string_view lowercase_name, std::string_view value) = 0;  // replace all
  virtual void Remove(std::string_view lowercase_name) = 0;
};

// One step of a header mutation. A level (route, virtual host, route configuration, weighted
// cluster) contributes its removals and then its additions, as Envoy's HeaderParser does.
struct HeaderOp {
  enum class Kind {
    kRemove,
    kAppendIfExistsOrAdd,
    kAddIfAbsent,
    kOverwriteIfExistsOrAdd,
    kOverwriteIfExists
  };
  Kind kind;
  std::string name;   // lower-case
  std::string value;  // literal; Envoy's %VARIABLE% substitution is not supported
};

// Applies `ops` in order.
void ApplyHeaderOps(std::span<const HeaderOp> ops, MutableHeaders* headers);

// retry_on conditions as a bitmask (Envoy's names in comments).
namespace retry_on {
inline constexpr uint32_t k5xx = 1u << 0;                       // 5xx
inline constexpr uint32_t kGatewayError = 1u << 1;              // gateway-error
inline constexpr uint32_t kReset = 1u << 2;                     // reset
inline constexpr uint32_t kResetBeforeRequest = 1u << 3;        // reset-before-request
inline constexpr uint32_t kConnectFailure = 1u << 4;            // connect-failure
inline constexpr uint32_t kRetriable4xx = 1u << 5;              // retriable-4xx (409)
inline constexpr uint32_t kRefusedStream = 1u << 6;             // refused-stream
inline constexpr uint32_t kRetriableStatusCodes = 1u << 7;      // retriable-status-codes
inline constexpr uint32_t kRetriableHeaders = 1u << 8;          // retriable-headers
inline constexpr uint32_t kEnvoyRateLimited = 1u << 9;          // envoy-ratelimited
inline constexpr uint32_t kHttp3PostConnectFailure = 1u << 10;  // http3-post-connect-failure
inline constexpr uint32_t kGrpcCancelled = 1u << 16;            // cancelled
inline constexpr uint32_t kGrpcDeadlineExceeded = 1u << 17;     // deadline-exceeded
inline constexpr uint32_t kGrpcInternal = 1u << 18;             // internal
inline constexpr uint32_t kGrpcResourceExhausted = 1u << 19;    // resource-exhausted
inline constexpr uint32_t kGrpcUnavailable = 1u << 20;          // unavailable
}  // namespace retry_on

struct RetryOnParse {
  uint32_t bits = 0;
  bool all_known = true;  // false when some token was not recognised (it is ignored, as Envoy)
};
// Parses a comma-separated retry_on list (route config or x-envoy-retry-on header).
RetryOnParse ParseRetryOn(std::string_view retry_on);

struct RetryPolicy {
  uint32_t retry_on = 0;  // retry_on::* bits
  uint32_t num_retries = 1;
  std::chrono::milliseconds per_try_timeout{0};       // 0: none (the route timeout applies)
  std::chrono::milliseconds per_try_idle_timeout{0};  // 0: none
  std::vector<uint32_t> retriable_status_codes;
  std::chrono::milliseconds base_interval{25};  // Envoy's defaults
  std::chrono::milliseconds max_interval{250};
  int64_t host_selection_retry_max_attempts = 1;
  std::vector<HeaderMatcher> retriable_headers;          // response headers that allow a retry
  std::vector<HeaderMatcher> retriable_request_headers;  // all must match for any retry
};

// Inputs to consistent hashing (ring hash / maglev), evaluated by the load balancer.
struct HashPolicy {
  enum class Kind { kHeader, kCookie, kSourceIp, kQueryParameter, kFilterState };
  Kind kind;
  std::string name;  // header (lower-case), cookie, query parameter or filter-state key
  bool terminal = false;
  // kHeader: optional rewrite of the value before hashing.
  std::shared_ptr<const RE2> regex;
  std::string substitution;
  // kCookie: when set, the proxy generates the cookie if absent.
  std::optional<std::chrono::milliseconds> cookie_ttl;
  std::string cookie_path;
};

// A path rewrite: prefix_rewrite (replaces the matched prefix, or the whole path for exact and
// regex matches) or regex_rewrite (every match of the pattern, as Envoy's replaceAll). The query
// string is never rewritten.
struct PathRewrite {
  std::string prefix;
  bool has_prefix = false;
  std::shared_ptr<const RE2> regex;
  std::string substitution;
  bool empty() const { return !has_prefix && regex == nullptr; }
};

struct WeightedClusterEntry {
  std::string name;            // empty when cluster_header is used
  std::string cluster_header;  // lower-case
  uint32_t weight = 0;
  uint64_t cumulative_end = 0;  // exclusive end of this entry's slice of [0, total_weight)
  std::string host_rewrite_literal;
  // Fully merged: this cluster's mutations first, then the route's merged ones.
  std::vector<HeaderOp> request_header_ops;
  std::vector<HeaderOp> response_header_ops;
};

// The forwarding action of a route (envoy RouteAction), resolved.
struct RouteAction {
  enum class ClusterSpecifier { kCluster, kClusterHeader, kWeighted, kPlugin };
  ClusterSpecifier cluster_specifier = ClusterSpecifier::kCluster;
  // kCluster: the cluster; kClusterHeader: the header (lower-case); kPlugin: the plugin name.
  std::string cluster;
  std::vector<WeightedClusterEntry> weighted_clusters;
  uint64_t total_weight = 0;
  std::string random_value_header;  // weighted_clusters.header_name: pick from this header
  uint32_t cluster_not_found_status = 503;

  PathRewrite path_rewrite;
  std::string host_rewrite_literal;
  bool auto_host_rewrite = false;
  std::string host_rewrite_header;  // lower-case
  std::shared_ptr<const RE2> host_rewrite_path_regex;
  std::string host_rewrite_path_substitution;

  // upgrade_configs: per upgrade type (lower-case), whether this route allows it, overriding
  // the connection manager's list.
  std::vector<std::pair<std::string, bool>> upgrade_overrides;

  // 0 disables the timeout. Envoy's default is 15 s when unset.
  std::chrono::milliseconds timeout{15000};
  // Unset: the connection manager's stream idle timeout applies; 0 disables.
  std::optional<std::chrono::milliseconds> idle_timeout;
  std::optional<RetryPolicy> retry_policy;  // the route's, else the virtual host's
  std::vector<HashPolicy> hash_policies;

  // Picks a weighted cluster: `random` modulo the total weight, as Envoy. Null unless
  // cluster_specifier is kWeighted.
  const WeightedClusterEntry* PickCluster(uint64_t random) const;
};

struct RedirectAction {
  std::string scheme;  // empty: keep the request's
  std::string host;    // empty: keep the request's
  std::string port;    // ":8080", or empty
  std::string path;    // path_redirect; empty: keep (after path_rewrite)
  bool path_has_query = false;
  PathRewrite path_rewrite;
  bool strip_query = false;
  uint32_t status = 301;
};

struct DirectResponse {
  uint32_t status = 200;
  std::string body;
};

class VirtualHost;

class Route {
 public:
  enum class ActionKind { kRoute, kRedirect, kDirectResponse, kNonForwarding, kFilterAction };

  const std::string& name() const { return proto_.name(); }
  const VirtualHost& virtual_host() const { return *virtual_host_; }
  ActionKind action_kind() const { return action_kind_; }
  // Non-null exactly for the matching action_kind().
  const RouteAction* route_action() const {
    return action_kind_ == ActionKind::kRoute ? &route_action_ : nullptr;
  }
  const RedirectAction* redirect() const {
    return action_kind_ == ActionKind::kRedirect ? &redirect_ : nullptr;
  }
  const DirectResponse* direct_response() const {
    return action_kind_ == ActionKind::kDirectResponse ? &direct_response_ : nullptr;
  }
  // Header mutations merged over route, virtual host and route configuration (most specific
  // first unless most_specific_header_mutations_wins, as Envoy: later steps win).
  const std::vector<HeaderOp>& request_header_ops() const { return request_header_ops_; }
  const std::vector<HeaderOp>& response_header_ops() const { return response_header_ops_; }
  // The route as configured, for the rarely used fields nothing above resolves.
  const envoy::config::route::v3::Route& proto() const { return proto_; }

  // True when the request matches this route. Public for tests and tools; Match() is the way in.
  bool Matches(const RequestView& request) const;

 private:
  friend class RouteTable;
  enum class PathKind { kPrefix, kExact, kRegex, kSeparatedPrefix, kConnect };

  // `path` is the request path without query and fragment; `query` follows the '?'.
  bool Matches(const RequestView& request, std::string_view path, std::string_view query) const;
  bool PathMatches(std::string_view path) const;
  // How much of `path` (without query) prefix_rewrite replaces.
  size_t MatchedLength(std::string_view path) const;
  friend std::string ApplyPathRewrite(const Route& route, std::string_view path);
  friend std::string RedirectLocation(const Route& route, const RequestView& request);

  envoy::config::route::v3::Route proto_;
  const VirtualHost* virtual_host_ = nullptr;

  PathKind path_kind_ = PathKind::kPrefix;
  std::string path_;  // prefix / exact path / separated prefix (lower-case if !case_sensitive_)
  std::shared_ptr<const RE2> path_regex_;
  bool case_sensitive_ = true;
  std::vector<HeaderMatcher> headers_;
  std::vector<QueryParameterMatcher> query_parameters_;
  bool grpc_ = false;
  std::optional<bool> tls_presented_;
  std::optional<bool> tls_validated_;
  bool has_runtime_fraction_ = false;
  uint64_t fraction_numerator_ = 0;
  uint64_t fraction_denominator_ = 100;

  ActionKind action_kind_ = ActionKind::kRoute;
  RouteAction route_action_;
  RedirectAction redirect_;
  DirectResponse direct_response_;
  std::vector<HeaderOp> request_header_ops_;
  std::vector<HeaderOp> response_header_ops_;
};

class VirtualHost {
 public:
  enum class TlsRequirement { kNone, kExternalOnly, kAll };
  const std::string& name() const { return name_; }
  const std::vector<std::string>& domains() const { return domains_; }
  TlsRequirement require_tls() const { return require_tls_; }
  const std::vector<Route>& routes() const { return routes_; }

 private:
  friend class RouteTable;
  std::string name_;
  std::vector<std::string> domains_;
  TlsRequirement require_tls_ = TlsRequirement::kNone;
  std::vector<Route> routes_;
};

class RouteTable {
 public:
  // Compiles `config`. Input is expected to have passed weft::xds validation, but anything that
  // cannot be compiled (a bad regex or rewrite, zero total weight, an unsupported matcher) is an
  // InvalidArgument naming every offending field path, never a crash.
  // `version` is the resource's content version, kept so an unchanged table can be reused.
  static absl::StatusOr<std::shared_ptr<const RouteTable>> Create(
      const envoy::config::route::v3::RouteConfiguration& config, uint64_t version = 0);

  // The route for `request`, or null when no virtual host or no route matches (404 in Envoy).
  const Route* Match(const RequestView& request) const;
  // Only the virtual host selection step; null when none matches.
  const VirtualHost* FindVirtualHost(std::string_view authority) const;

  const std::string& name() const { return name_; }
  uint64_t version() const { return version_; }
  const std::vector<std::unique_ptr<VirtualHost>>& virtual_hosts() const { return vhosts_; }
  // Headers that must be stripped from requests arriving from outside the mesh (lower-case).
  const std::vector<std::string>& internal_only_headers() const { return internal_only_headers_; }

 private:
  RouteTable() = default;

  struct BuildContext;  // levels shared by the routes of one virtual host
  static void CompileRoute(const envoy::config::route::v3::Route& proto, const BuildContext& ctx,
                           Route* route, ValidationErrors* errors);

  // Host lookups compare case-insensitively without lower-casing the request's host.
  struct CaseInsensitiveHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const;
  };
  struct CaseInsensitiveEq {
    using is_transparent = void;
    bool operator()(std::string_view a, std::string_view b) const { return EqualsIgnoreCase(a, b); }
  };
  using DomainMap =
      std::unordered_map<std::string, const VirtualHost*, CaseInsensitiveHash, CaseInsensitiveEq>;
  // Wildcard maps keyed by the fixed part, grouped by its length, longest first.
  using WildcardMaps = std::vector<std::pair<size_t, DomainMap>>;

  const VirtualHost* FindNonDefault(std::string_view host) const;
  static const VirtualHost* FindWildcard(const WildcardMaps& maps, std::string_view host,
                                         bool suffix);

  std::string name_;
  uint64_t version_ = 0;
  std::vector<std::unique_ptr<VirtualHost>> vhosts_;
  DomainMap exact_;
  WildcardMaps suffix_wildcards_;  // "*.foo.com" stored as ".foo.com"
  WildcardMaps prefix_wildcards_;  // "foo.*" stored as "foo."
  const VirtualHost* default_ = nullptr;
  bool ignore_port_ = false;
  std::vector<std::string> internal_only_headers_;
};

// `path` (with query) after the route's prefix_rewrite / regex_rewrite; the query string is kept.
// Unchanged when the route has no rewrite. For a redirect route, its own rewrite is used.
std::string ApplyPathRewrite(const Route& route, std::string_view path);

// The Location of a redirect route for `request` (empty for other routes).
std::string RedirectLocation(const Route& route, const RequestView& request);

// The host to send upstream when the route rewrites it (host_rewrite_literal, the value of
// host_rewrite_header, or host_rewrite_path_regex applied to the path); nullopt to keep the
// request's (auto_host_rewrite is decided later, by the upstream host).
std::optional<std::string> RewrittenHost(const Route& route, const RequestView& request,
                                         const WeightedClusterEntry* picked = nullptr);

// Strips ":port" from an authority ("[::1]:80" → "[::1]"); unchanged when there is none.
std::string_view StripPort(std::string_view authority);

}  // namespace weft::router
