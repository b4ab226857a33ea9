#include "data-plane/router/route_table.h"

#include <algorithm>
#include <functional>
#include <limits>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/strings.h"

namespace weft::router {
namespace {

namespace pb = envoy::config::route::v3;
using envoy::config::core::v3::HeaderValueOption;
using ms = std::chrono::milliseconds;
using Scope = ValidationErrors::Scope;

std::string Indexed(std::string_view field, size_t i) {
  return absl::StrCat(Sv(field), "[", i, "]");
}

// Durations beyond this are "forever" for a proxy; clamping keeps the arithmetic in range.
constexpr int64_t kMaxDurationSeconds = int64_t{10} * 365 * 24 * 3600;

ms DurationMs(const google::protobuf::Duration& d, std::string_view field,
              ValidationErrors* errors) {
  if (d.seconds() < 0 || d.nanos() < 0) {
    errors->AddAt(field, "must not be negative");
    return ms(0);
  }
  int64_t seconds = std::min<int64_t>(d.seconds(), kMaxDurationSeconds);
  return ms(seconds * 1000 + d.nanos() / 1000000);
}

// One level's mutations: its removals, then its additions (Envoy's HeaderParser order).
std::vector<HeaderOp> LevelOps(const google::protobuf::RepeatedPtrField<HeaderValueOption>& add,
                               const google::protobuf::RepeatedPtrField<std::string>& remove,
                               std::string_view add_field, ValidationErrors* errors) {
  std::vector<HeaderOp> ops;
  for (const std::string& name : remove) {
    ops.push_back({HeaderOp::Kind::kRemove, AsciiLower(name), ""});
  }
  for (int i = 0; i < add.size(); ++i) {
    const HeaderValueOption& o = add[i];
    if (o.header().key().empty()) {
      errors->AddAt(absl::StrCat(Indexed(add_field, i), ".header.key"), "must not be empty");
      continue;
    }
    const std::string& value =
        o.header().value().empty() ? o.header().raw_value() : o.header().value();
    // Envoy adds nothing for an empty value unless asked to.
    if (value.empty() && !o.keep_empty_value()) continue;
    HeaderOp::Kind kind = HeaderOp::Kind::kAppendIfExistsOrAdd;
    if (o.has_append()) {
      // The deprecated flag, when present, decides (Envoy refuses configs that set both).
      kind = o.append().value() ? HeaderOp::Kind::kAppendIfExistsOrAdd
                                : HeaderOp::Kind::kOverwriteIfExistsOrAdd;
    } else {
      switch (o.append_action()) {
        case HeaderValueOption::ADD_IF_ABSENT:
          kind = HeaderOp::Kind::kAddIfAbsent;
          break;
        case HeaderValueOption::OVERWRITE_IF_EXISTS_OR_ADD:
          kind = HeaderOp::Kind::kOverwriteIfExistsOrAdd;
          break;
        case HeaderValueOption::OVERWRITE_IF_EXISTS:
          kind = HeaderOp::Kind::kOverwriteIfExists;
          break;
        default:
          kind = HeaderOp::Kind::kAppendIfExistsOrAdd;
          break;
      }
    }
    ops.push_back({kind, AsciiLower(o.header().key()), value});
  }
  return ops;
}

std::vector<HeaderOp> Concat(std::initializer_list<const std::vector<HeaderOp>*> levels) {
  std::vector<HeaderOp> out;
  for (const auto* level : levels) out.insert(out.end(), level->begin(), level->end());
  return out;
}

// Envoy: most specific first by default, so the route configuration's mutations are applied
// last and win; most_specific_header_mutations_wins reverses the order.
std::vector<HeaderOp> Merge(const std::vector<HeaderOp>& route, const std::vector<HeaderOp>& vhost,
                            const std::vector<HeaderOp>& config, bool most_specific_wins) {
  return most_specific_wins ? Concat({&config, &vhost, &route}) : Concat({&route, &vhost, &config});
}

void CheckRewrite(const std::shared_ptr<const RE2>& re, const std::string& substitution,
                  ValidationErrors* errors) {
  if (re == nullptr) return;
  std::string error;
  if (!re->CheckRewriteString(substitution, &error)) {
    errors->AddAt("substitution",
                  absl::StrCat("invalid substitution \"", substitution, "\": ", error));
  }
}

void CompilePathRewrite(const std::string& prefix, bool has_regex,
                        const envoy::type::matcher::v3::RegexMatchAndSubstitute& rr,
                        PathRewrite* out, ValidationErrors* errors) {
  if (!prefix.empty()) {
    out->prefix = prefix;
    out->has_prefix = true;
    if (has_regex) errors->AddAt("regex_rewrite", "cannot be combined with prefix_rewrite");
  }
  if (has_regex) {
    Scope s(errors, "regex_rewrite");
    {
      Scope p(errors, "pattern");
      out->regex = CompileRegex(rr.pattern(), errors);
    }
    out->substitution = rr.substitution();
    CheckRewrite(out->regex, out->substitution, errors);
  }
}

std::optional<RetryPolicy> CompileRetryPolicy(const pb::RetryPolicy& rp, ValidationErrors* errors) {
  RetryPolicy p;
  p.retry_on = ParseRetryOn(rp.retry_on()).bits;
  if (rp.has_num_retries()) p.num_retries = rp.num_retries().value();
  if (rp.has_per_try_timeout()) {
    p.per_try_timeout = DurationMs(rp.per_try_timeout(), "per_try_timeout", errors);
  }
  if (rp.has_per_try_idle_timeout()) {
    p.per_try_idle_timeout = DurationMs(rp.per_try_idle_timeout(), "per_try_idle_timeout", errors);
  }
  p.retriable_status_codes.assign(rp.retriable_status_codes().begin(),
                                  rp.retriable_status_codes().end());
  if (rp.has_retry_back_off()) {
    Scope s(errors, "retry_back_off");
    const auto& b = rp.retry_back_off();
    p.base_interval = DurationMs(b.base_interval(), "base_interval", errors);
    if (p.base_interval.count() <= 0) errors->AddAt("base_interval", "must be positive");
    // Envoy's default cap is ten times the base interval.
    p.max_interval = b.has_max_interval() ? DurationMs(b.max_interval(), "max_interval", errors)
                                          : p.base_interval * 10;
    if (p.max_interval < p.base_interval) {
      errors->AddAt("max_interval", "must not be less than base_interval");
    }
  }
  if (rp.host_selection_retry_max_attempts() > 0) {
    p.host_selection_retry_max_attempts = rp.host_selection_retry_max_attempts();
  }
  for (int i = 0; i < rp.retriable_headers_size(); ++i) {
    Scope s(errors, Indexed("retriable_headers", i));
    if (auto h = HeaderMatcher::Compile(rp.retriable_headers(i), errors)) {
      p.retriable_headers.push_back(std::move(*h));
    }
  }
  for (int i = 0; i < rp.retriable_request_headers_size(); ++i) {
    Scope s(errors, Indexed("retriable_request_headers", i));
    if (auto h = HeaderMatcher::Compile(rp.retriable_request_headers(i), errors)) {
      p.retriable_request_headers.push_back(std::move(*h));
    }
  }
  return p;
}

void CompileHashPolicies(const pb::RouteAction& a, std::vector<HashPolicy>* out,
                         ValidationErrors* errors) {
  for (int i = 0; i < a.hash_policy_size(); ++i) {
    Scope s(errors, Indexed("hash_policy", i));
    const auto& hp = a.hash_policy(i);
    HashPolicy p;
    p.terminal = hp.terminal();
    switch (hp.policy_specifier_case()) {
      case pb::RouteAction::HashPolicy::kHeader: {
        Scope hs(errors, "header");
        p.kind = HashPolicy::Kind::kHeader;
        p.name = AsciiLower(hp.header().header_name());
        if (p.name.empty()) errors->AddAt("header_name", "must not be empty");
        if (hp.header().has_regex_rewrite()) {
          Scope rs(errors, "regex_rewrite");
          {
            Scope ps(errors, "pattern");
            p.regex = CompileRegex(hp.header().regex_rewrite().pattern(), errors);
          }
          p.substitution = hp.header().regex_rewrite().substitution();
          CheckRewrite(p.regex, p.substitution, errors);
        }
        break;
      }
      case pb::RouteAction::HashPolicy::kCookie:
        p.kind = HashPolicy::Kind::kCookie;
        p.name = hp.cookie().name();
        if (p.name.empty()) errors->AddAt("cookie.name", "must not be empty");
        if (hp.cookie().has_ttl())
          p.cookie_ttl = DurationMs(hp.cookie().ttl(), "cookie.ttl", errors);
        p.cookie_path = hp.cookie().path();
        break;
      case pb::RouteAction::HashPolicy::kConnectionProperties:
        if (!hp.connection_properties().source_ip()) continue;  // hashes nothing
        p.kind = HashPolicy::Kind::kSourceIp;
        break;
      case pb::RouteAction::HashPolicy::kQueryParameter:
        p.kind = HashPolicy::Kind::kQueryParameter;
        p.name = hp.query_parameter().name();
        if (p.name.empty()) errors->AddAt("query_parameter.name", "must not be empty");
        break;
      case pb::RouteAction::HashPolicy::kFilterState:
        p.kind = HashPolicy::Kind::kFilterState;
        p.name = hp.filter_state().key();
        break;
      case pb::RouteAction::HashPolicy::POLICY_SPECIFIER_NOT_SET:
        errors->Add("a hash policy specifier must be set");
        continue;
    }
    out->push_back(std::move(p));
  }
}

void CompileRouteAction(const pb::RouteAction& a, const std::optional<RetryPolicy>& vhost_retry,
                        RouteAction* out, ValidationErrors* errors) {
  using CS = RouteAction::ClusterSpecifier;
  switch (a.cluster_specifier_case()) {
    case pb::RouteAction::kCluster:
      out->cluster_specifier = CS::kCluster;
      out->cluster = a.cluster();
      if (out->cluster.empty()) errors->AddAt("cluster", "must not be empty");
      break;
    case pb::RouteAction::kClusterHeader:
      out->cluster_specifier = CS::kClusterHeader;
      out->cluster = AsciiLower(a.cluster_header());
      if (out->cluster.empty()) errors->AddAt("cluster_header", "must not be empty");
      break;
    case pb::RouteAction::kWeightedClusters: {
      Scope s(errors, "weighted_clusters");
      out->cluster_specifier = CS::kWeighted;
      const auto& wc = a.weighted_clusters();
      out->random_value_header = AsciiLower(wc.header_name());
      uint64_t total = 0;
      for (int i = 0; i < wc.clusters_size(); ++i) {
        Scope cs(errors, Indexed("clusters", i));
        const auto& c = wc.clusters(i);
        WeightedClusterEntry e;
        e.name = c.name();
        e.cluster_header = AsciiLower(c.cluster_header());
        if (e.name.empty() && e.cluster_header.empty()) errors->AddAt("name", "must not be empty");
        e.weight = c.weight().value();
        total += e.weight;
        e.cumulative_end = total;
        e.host_rewrite_literal = c.host_rewrite_literal();
        // Cluster-level ops only for now; the route's merged ops are appended once known.
        e.request_header_ops = LevelOps(c.request_headers_to_add(), c.request_headers_to_remove(),
                                        "request_headers_to_add", errors);
        e.response_header_ops =
            LevelOps(c.response_headers_to_add(), c.response_headers_to_remove(),
                     "response_headers_to_add", errors);
        out->weighted_clusters.push_back(std::move(e));
      }
      if (total == 0) errors->AddAt("clusters", "sum of weights must be greater than 0");
      out->total_weight = total;
      break;
    }
    case pb::RouteAction::kClusterSpecifierPlugin:
      out->cluster_specifier = CS::kPlugin;
      out->cluster = a.cluster_specifier_plugin();
      break;
    case pb::RouteAction::kInlineClusterSpecifierPlugin:
      out->cluster_specifier = CS::kPlugin;
      out->cluster = a.inline_cluster_specifier_plugin().extension().name();
      break;
    case pb::RouteAction::CLUSTER_SPECIFIER_NOT_SET:
      errors->Add(
          "one of cluster, cluster_header, weighted_clusters or cluster_specifier_plugin "
          "must be set");
      break;
  }
  switch (a.cluster_not_found_response_code()) {
    case pb::RouteAction::NOT_FOUND:
      out->cluster_not_found_status = 404;
      break;
    case pb::RouteAction::INTERNAL_SERVER_ERROR:
      out->cluster_not_found_status = 500;
      break;
    default:
      out->cluster_not_found_status = 503;
      break;
  }
  CompilePathRewrite(a.prefix_rewrite(), a.has_regex_rewrite(), a.regex_rewrite(),
                     &out->path_rewrite, errors);
  if (a.has_path_rewrite_policy()) errors->AddAt("path_rewrite_policy", "is not supported");
  for (int i = 0; i < a.upgrade_configs_size(); ++i) {
    const auto& u = a.upgrade_configs(i);
    if (u.upgrade_type().empty()) {
      errors->AddAt(absl::StrCat("upgrade_configs[", i, "].upgrade_type"), "must not be empty");
      continue;
    }
    out->upgrade_overrides.emplace_back(AsciiLower(u.upgrade_type()),
                                        !u.has_enabled() || u.enabled().value());
  }
  switch (a.host_rewrite_specifier_case()) {
    case pb::RouteAction::kHostRewriteLiteral:
      out->host_rewrite_literal = a.host_rewrite_literal();
      break;
    case pb::RouteAction::kAutoHostRewrite:
      out->auto_host_rewrite = a.auto_host_rewrite().value();
      break;
    case pb::RouteAction::kHostRewriteHeader:
      out->host_rewrite_header = AsciiLower(a.host_rewrite_header());
      break;
    case pb::RouteAction::kHostRewritePathRegex: {
      Scope s(errors, "host_rewrite_path_regex");
      {
        Scope p(errors, "pattern");
        out->host_rewrite_path_regex = CompileRegex(a.host_rewrite_path_regex().pattern(), errors);
      }
      out->host_rewrite_path_substitution = a.host_rewrite_path_regex().substitution();
      CheckRewrite(out->host_rewrite_path_regex, out->host_rewrite_path_substitution, errors);
      break;
    }
    default:
      break;
  }
  if (a.has_timeout()) out->timeout = DurationMs(a.timeout(), "timeout", errors);
  if (a.has_idle_timeout())
    out->idle_timeout = DurationMs(a.idle_timeout(), "idle_timeout", errors);
  if (a.has_retry_policy()) {
    Scope s(errors, "retry_policy");
    out->retry_policy = CompileRetryPolicy(a.retry_policy(), errors);
  } else {
    out->retry_policy = vhost_retry;
  }
  CompileHashPolicies(a, &out->hash_policies, errors);
}

void CompileRedirect(const pb::RedirectAction& r, RedirectAction* out, ValidationErrors* errors) {
  if (r.scheme_rewrite_specifier_case() == pb::RedirectAction::kHttpsRedirect) {
    if (r.https_redirect()) out->scheme = "https";
  } else if (r.scheme_rewrite_specifier_case() == pb::RedirectAction::kSchemeRedirect) {
    out->scheme = AsciiLower(r.scheme_redirect());
  }
  out->host = r.host_redirect();
  if (r.port_redirect() > 65535) {
    errors->AddAt("port_redirect", absl::StrCat("must be at most 65535, got ", r.port_redirect()));
  } else if (r.port_redirect() != 0) {
    out->port = absl::StrCat(":", r.port_redirect());
  }
  switch (r.path_rewrite_specifier_case()) {
    case pb::RedirectAction::kPathRedirect:
      out->path = r.path_redirect();
      out->path_has_query = out->path.find('?') != std::string::npos;
      break;
    case pb::RedirectAction::kPrefixRewrite:
    case pb::RedirectAction::kRegexRewrite:
      CompilePathRewrite(r.prefix_rewrite(), r.has_regex_rewrite(), r.regex_rewrite(),
                         &out->path_rewrite, errors);
      break;
    default:
      break;
  }
  out->strip_query = r.strip_query();
  switch (r.response_code()) {
    case pb::RedirectAction::MOVED_PERMANENTLY:
      out->status = 301;
      break;
    case pb::RedirectAction::FOUND:
      out->status = 302;
      break;
    case pb::RedirectAction::SEE_OTHER:
      out->status = 303;
      break;
    case pb::RedirectAction::TEMPORARY_REDIRECT:
      out->status = 307;
      break;
    case pb::RedirectAction::PERMANENT_REDIRECT:
      out->status = 308;
      break;
    default:
      errors->AddAt("response_code", absl::StrCat("unknown value ", r.response_code()));
      break;
  }
}

// Sorted longest first, so the first hit is the longest wildcard match.
using WildcardBuilder =
    std::map<size_t, std::map<std::string, const VirtualHost*>, std::greater<size_t>>;

// The query string and fragment are not part of the path for matching.
std::pair<std::string_view, std::string_view> SplitPath(std::string_view full) {
  size_t end = full.find_first_of("?#");
  if (end == std::string_view::npos) return {full, {}};
  std::string_view path = full.substr(0, end);
  if (full[end] == '#') return {path, {}};
  std::string_view query = full.substr(end + 1);
  return {path, query.substr(0, query.find('#'))};
}

bool IsGrpc(const HeaderLookup* headers) {
  if (headers == nullptr) return false;
  std::optional<std::string_view> ct = headers->Get("content-type");
  if (!ct.has_value() || !ct->starts_with("application/grpc")) return false;
  // "application/grpc", "application/grpc+proto", "application/grpc;charset=..."
  return ct->size() == 16 || (*ct)[16] == '+' || (*ct)[16] == ';';
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Free helpers

RetryOnParse ParseRetryOn(std::string_view retry_on) {
  static constexpr std::pair<std::string_view, uint32_t> kNames[] = {
      {"5xx", retry_on::k5xx},
      {"gateway-error", retry_on::kGatewayError},
      {"reset", retry_on::kReset},
      {"reset-before-request", retry_on::kResetBeforeRequest},
      {"connect-failure", retry_on::kConnectFailure},
      {"retriable-4xx", retry_on::kRetriable4xx},
      {"refused-stream", retry_on::kRefusedStream},
      {"retriable-status-codes", retry_on::kRetriableStatusCodes},
      {"retriable-headers", retry_on::kRetriableHeaders},
      {"envoy-ratelimited", retry_on::kEnvoyRateLimited},
      {"http3-post-connect-failure", retry_on::kHttp3PostConnectFailure},
      {"cancelled", retry_on::kGrpcCancelled},
      {"deadline-exceeded", retry_on::kGrpcDeadlineExceeded},
      {"internal", retry_on::kGrpcInternal},
      {"resource-exhausted", retry_on::kGrpcResourceExhausted},
      {"unavailable", retry_on::kGrpcUnavailable},
  };
  RetryOnParse result;
  while (!retry_on.empty()) {
    size_t comma = retry_on.find(',');
    std::string_view token = retry_on.substr(0, comma);
    retry_on = comma == std::string_view::npos ? std::string_view() : retry_on.substr(comma + 1);
    while (!token.empty() && (token.front() == ' ' || token.front() == '\t'))
      token.remove_prefix(1);
    while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
    if (token.empty()) continue;
    bool known = false;
    for (const auto& [name, bit] : kNames) {
      if (token == name) {
        result.bits |= bit;
        known = true;
        break;
      }
    }
    if (!known) result.all_known = false;
  }
  return result;
}

void ApplyHeaderOps(std::span<const HeaderOp> ops, MutableHeaders* headers) {
  for (const HeaderOp& op : ops) {
    switch (op.kind) {
      case HeaderOp::Kind::kRemove:
        headers->Remove(op.name);
        break;
      case HeaderOp::Kind::kAppendIfExistsOrAdd:
        headers->Add(op.name, op.value);
        break;
      case HeaderOp::Kind::kAddIfAbsent:
        if (!headers->Get(op.name).has_value()) headers->Add(op.name, op.value);
        break;
      case HeaderOp::Kind::kOverwriteIfExistsOrAdd:
        headers->Set(op.name, op.value);
        break;
      case HeaderOp::Kind::kOverwriteIfExists:
        if (headers->Get(op.name).has_value()) headers->Set(op.name, op.value);
        break;
    }
  }
}

std::string_view StripPort(std::string_view authority) {
  size_t colon = authority.rfind(':');
  if (colon == std::string_view::npos) return authority;
  // An IPv6 literal is bracketed (RFC 3986 3.2.2): a colon inside the brackets is no port.
  size_t bracket = authority.rfind(']');
  if (bracket != std::string_view::npos && bracket > colon) return authority;
  if (bracket == std::string_view::npos && authority.find(':') != colon) return authority;
  for (char c : authority.substr(colon + 1)) {
    if (c < '0' || c > '9') return authority;
  }
  return authority.substr(0, colon);
}

const WeightedClusterEntry* RouteAction::PickCluster(uint64_t random) const {
  if (cluster_specifier != ClusterSpecifier::kWeighted || total_weight == 0) return nullptr;
  uint64_t v = random % total_weight;
  // First entry whose slice ends after v; zero-weight entries have empty slices and are skipped.
  auto it = std::upper_bound(
      weighted_clusters.begin(), weighted_clusters.end(), v,
      [](uint64_t value, const WeightedClusterEntry& e) { return value < e.cumulative_end; });
  return it == weighted_clusters.end() ? nullptr : &*it;
}

// ---------------------------------------------------------------------------------------------
// Route

bool Route::PathMatches(std::string_view path) const {
  switch (path_kind_) {
    case PathKind::kPrefix:
      return case_sensitive_ ? path.starts_with(path_) : StartsWithIgnoreCase(path, path_);
    case PathKind::kExact:
      return case_sensitive_ ? path == path_ : EqualsIgnoreCase(path, path_);
    case PathKind::kRegex:
      // Envoy ignores case_sensitive for regexes.
      return RE2::FullMatch(path, *path_regex_);
    case PathKind::kSeparatedPrefix: {
      if (path.size() < path_.size()) return false;
      std::string_view head = path.substr(0, path_.size());
      if (!(case_sensitive_ ? head == path_ : EqualsIgnoreCase(head, path_))) return false;
      return path.size() == path_.size() || path[path_.size()] == '/';
    }
    case PathKind::kConnect:
      return true;  // the method is checked by the caller
  }
  return false;
}

bool Route::Matches(const RequestView& request) const {
  auto [path, query] = SplitPath(request.path);
  return Matches(request, path, query);
}

bool Route::Matches(const RequestView& request, std::string_view path,
                    std::string_view query) const {
  // Cheap checks first; the regex path match, if any, last.
  if (path_kind_ == PathKind::kConnect) {
    if (request.method != "CONNECT") return false;
  } else if (path_kind_ != PathKind::kRegex && !PathMatches(path)) {
    return false;
  }
  if (has_runtime_fraction_ &&
      request.random_value % fraction_denominator_ >= fraction_numerator_) {
    return false;
  }
  if (grpc_ && !IsGrpc(request.headers)) return false;
  if (tls_presented_.has_value() && *tls_presented_ != request.peer_certificate_presented) {
    return false;
  }
  if (tls_validated_.has_value() && *tls_validated_ != request.peer_certificate_validated) {
    return false;
  }
  for (const HeaderMatcher& h : headers_) {
    if (!h.Match(request.headers)) return false;
  }
  for (const QueryParameterMatcher& q : query_parameters_) {
    if (!q.Match(query)) return false;
  }
  return path_kind_ != PathKind::kRegex || PathMatches(path);
}

size_t Route::MatchedLength(std::string_view path) const {
  switch (path_kind_) {
    case PathKind::kPrefix:
    case PathKind::kSeparatedPrefix:
      return std::min(path_.size(), path.size());
    case PathKind::kExact:
    case PathKind::kRegex:
      return path.size();
    case PathKind::kConnect:
      return 0;
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// RouteTable

struct RouteTable::BuildContext {
  std::vector<HeaderOp> config_request_ops;
  std::vector<HeaderOp> config_response_ops;
  std::vector<HeaderOp> vhost_request_ops;
  std::vector<HeaderOp> vhost_response_ops;
  bool most_specific_wins = false;
  std::optional<RetryPolicy> vhost_retry;
  uint64_t max_body_bytes = 4096;
};

void RouteTable::CompileRoute(const pb::Route& r, const BuildContext& ctx, Route* route,
                              ValidationErrors* errors) {
  route->proto_ = r;
  {
    Scope s(errors, "match");
    const pb::RouteMatch& m = r.match();
    if (!r.has_match()) errors->Add("must be set");
    route->case_sensitive_ = !m.has_case_sensitive() || m.case_sensitive().value();
    auto set_path = [&](Route::PathKind kind, const std::string& p) {
      route->path_kind_ = kind;
      route->path_ = route->case_sensitive_ ? p : AsciiLower(p);
    };
    switch (m.path_specifier_case()) {
      case pb::RouteMatch::kPrefix:
        set_path(Route::PathKind::kPrefix, m.prefix());
        break;
      case pb::RouteMatch::kPath:
        set_path(Route::PathKind::kExact, m.path());
        break;
      case pb::RouteMatch::kPathSeparatedPrefix:
        set_path(Route::PathKind::kSeparatedPrefix, m.path_separated_prefix());
        break;
      case pb::RouteMatch::kSafeRegex: {
        Scope rs(errors, "safe_regex");
        route->path_kind_ = Route::PathKind::kRegex;
        route->path_regex_ = CompileRegex(m.safe_regex(), errors);
        break;
      }
      case pb::RouteMatch::kConnectMatcher:
        route->path_kind_ = Route::PathKind::kConnect;
        break;
      case pb::RouteMatch::kPathMatchPolicy:
        errors->AddAt("path_match_policy", "is not supported");
        break;
      case pb::RouteMatch::PATH_SPECIFIER_NOT_SET:
        if (r.has_match()) {
          errors->Add(
              "one of prefix, path, safe_regex, path_separated_prefix or connect_matcher "
              "must be set");
        }
        break;
    }
    for (int i = 0; i < m.headers_size(); ++i) {
      Scope hs(errors, Indexed("headers", i));
      if (auto h = HeaderMatcher::Compile(m.headers(i), errors)) {
        route->headers_.push_back(std::move(*h));
      }
    }
    for (int i = 0; i < m.query_parameters_size(); ++i) {
      Scope qs(errors, Indexed("query_parameters", i));
      if (auto q = QueryParameterMatcher::Compile(m.query_parameters(i), errors)) {
        route->query_parameters_.push_back(std::move(*q));
      }
    }
    route->grpc_ = m.has_grpc();
    if (m.has_tls_context()) {
      if (m.tls_context().has_presented())
        route->tls_presented_ = m.tls_context().presented().value();
      if (m.tls_context().has_validated())
        route->tls_validated_ = m.tls_context().validated().value();
    }
    if (m.has_runtime_fraction()) {
      // No runtime layer: the default fraction is the configured one.
      const auto& f = m.runtime_fraction().default_value();
      route->has_runtime_fraction_ = true;
      route->fraction_numerator_ = f.numerator();
      switch (f.denominator()) {
        case envoy::type::v3::FractionalPercent::TEN_THOUSAND:
          route->fraction_denominator_ = 10000;
          break;
        case envoy::type::v3::FractionalPercent::MILLION:
          route->fraction_denominator_ = 1000000;
          break;
        default:
          route->fraction_denominator_ = 100;
          break;
      }
    }
    // Ignoring a matcher would make the route match more than configured: refuse instead.
    if (m.dynamic_metadata_size() > 0) errors->AddAt("dynamic_metadata", "is not supported");
  }

  std::vector<HeaderOp> route_request = LevelOps(
      r.request_headers_to_add(), r.request_headers_to_remove(), "request_headers_to_add", errors);
  std::vector<HeaderOp> route_response =
      LevelOps(r.response_headers_to_add(), r.response_headers_to_remove(),
               "response_headers_to_add", errors);
  route->request_header_ops_ =
      Merge(route_request, ctx.vhost_request_ops, ctx.config_request_ops, ctx.most_specific_wins);
  route->response_header_ops_ = Merge(route_response, ctx.vhost_response_ops,
                                      ctx.config_response_ops, ctx.most_specific_wins);

  switch (r.action_case()) {
    case pb::Route::kRoute: {
      Scope s(errors, "route");
      route->action_kind_ = Route::ActionKind::kRoute;
      CompileRouteAction(r.route(), ctx.vhost_retry, &route->route_action_, errors);
      // A weighted cluster's own mutations are the most specific of all (Envoy applies them
      // before the route's).
      for (WeightedClusterEntry& e : route->route_action_.weighted_clusters) {
        e.request_header_ops.insert(e.request_header_ops.end(), route->request_header_ops_.begin(),
                                    route->request_header_ops_.end());
        e.response_header_ops.insert(e.response_header_ops.end(),
                                     route->response_header_ops_.begin(),
                                     route->response_header_ops_.end());
      }
      break;
    }
    case pb::Route::kRedirect: {
      Scope s(errors, "redirect");
      route->action_kind_ = Route::ActionKind::kRedirect;
      CompileRedirect(r.redirect(), &route->redirect_, errors);
      break;
    }
    case pb::Route::kDirectResponse: {
      Scope s(errors, "direct_response");
      route->action_kind_ = Route::ActionKind::kDirectResponse;
      const auto& d = r.direct_response();
      route->direct_response_.status = d.status();
      if (d.status() < 200 || d.status() > 599) {
        errors->AddAt("status", absl::StrCat("must be in 200..599, got ", d.status()));
      }
      if (d.has_body()) {
        switch (d.body().specifier_case()) {
          case envoy::config::core::v3::DataSource::kInlineString:
            route->direct_response_.body = d.body().inline_string();
            break;
          case envoy::config::core::v3::DataSource::kInlineBytes:
            route->direct_response_.body = d.body().inline_bytes();
            break;
          case envoy::config::core::v3::DataSource::SPECIFIER_NOT_SET:
            break;
          default:
            // Reading files or the environment is not the route table's business (and would
            // make a config mean different things on different machines).
            errors->AddAt("body", "only inline_string and inline_bytes are supported");
            break;
        }
        if (route->direct_response_.body.size() > ctx.max_body_bytes) {
          errors->AddAt("body", absl::StrCat("is ", route->direct_response_.body.size(),
                                             " bytes, more than max_direct_response_body_size_"
                                             "bytes (",
                                             ctx.max_body_bytes, ")"));
        }
      }
      break;
    }
    case pb::Route::kNonForwardingAction:
      route->action_kind_ = Route::ActionKind::kNonForwarding;
      break;
    case pb::Route::kFilterAction:
      route->action_kind_ = Route::ActionKind::kFilterAction;
      break;
    case pb::Route::ACTION_NOT_SET:
      errors->Add(
          "one of route, redirect, direct_response, filter_action or "
          "non_forwarding_action must be set");
      break;
  }
}

size_t RouteTable::CaseInsensitiveHash::operator()(std::string_view s) const {
  // FNV-1a over the lower-cased bytes, so "Foo.COM" and "foo.com" hash alike.
  uint64_t h = 14695981039346656037ull;
  for (char c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + ('a' - 'A'));
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return static_cast<size_t>(h);
}

absl::StatusOr<std::shared_ptr<const RouteTable>> RouteTable::Create(
    const pb::RouteConfiguration& config, uint64_t version) {
  ValidationErrors errors;
  std::shared_ptr<RouteTable> table(new RouteTable());
  table->name_ = config.name();
  table->version_ = version;
  table->ignore_port_ = config.ignore_port_in_host_matching();
  for (const std::string& h : config.internal_only_headers()) {
    table->internal_only_headers_.push_back(AsciiLower(h));
  }
  if (config.ignore_path_parameters_in_path_matching()) {
    errors.AddAt("ignore_path_parameters_in_path_matching", "is not supported");
  }

  BuildContext ctx;
  ctx.most_specific_wins = config.most_specific_header_mutations_wins();
  if (config.has_max_direct_response_body_size_bytes()) {
    ctx.max_body_bytes = config.max_direct_response_body_size_bytes().value();
  }
  ctx.config_request_ops =
      LevelOps(config.request_headers_to_add(), config.request_headers_to_remove(),
               "request_headers_to_add", &errors);
  ctx.config_response_ops =
      LevelOps(config.response_headers_to_add(), config.response_headers_to_remove(),
               "response_headers_to_add", &errors);

  WildcardBuilder suffixes;
  WildcardBuilder prefixes;
  std::map<std::string, std::string> seen_domains;  // lower-case domain -> where
  for (int i = 0; i < config.virtual_hosts_size(); ++i) {
    Scope s(&errors, Indexed("virtual_hosts", i));
    const pb::VirtualHost& v = config.virtual_hosts(i);
    auto vh = std::make_unique<VirtualHost>();
    vh->name_ = v.name();
    switch (v.require_tls()) {
      case pb::VirtualHost::EXTERNAL_ONLY:
        vh->require_tls_ = VirtualHost::TlsRequirement::kExternalOnly;
        break;
      case pb::VirtualHost::ALL:
        vh->require_tls_ = VirtualHost::TlsRequirement::kAll;
        break;
      default:
        break;
    }
    for (int j = 0; j < v.domains_size(); ++j) {
      std::string d = AsciiLower(v.domains(j));
      std::string field = Indexed("domains", j);
      size_t star = d.find('*');
      bool valid =
          !d.empty() &&
          (star == std::string::npos || d == "*" ||
           (d.find('*', star + 1) == std::string::npos && (star == 0 || star == d.size() - 1)));
      if (!valid) {
        errors.AddAt(field,
                     absl::StrCat("invalid domain \"", v.domains(j),
                                  "\": must be non-empty with '*' only at the start or end"));
        continue;
      }
      if (auto [it, inserted] = seen_domains.emplace(d, absl::StrCat("virtual_hosts[", i, "]"));
          !inserted) {
        errors.AddAt(field, absl::StrCat("duplicate domain \"", v.domains(j), "\" (also in ",
                                         it->second, ")"));
        continue;
      }
      vh->domains_.push_back(d);
      if (d == "*") {
        table->default_ = vh.get();
      } else if (star == 0) {
        std::string key = d.substr(1);
        suffixes[key.size()].emplace(key, vh.get());
      } else if (star != std::string::npos) {
        std::string key = d.substr(0, d.size() - 1);
        prefixes[key.size()].emplace(key, vh.get());
      } else {
        table->exact_.emplace(d, vh.get());
      }
    }

    ctx.vhost_request_ops = LevelOps(v.request_headers_to_add(), v.request_headers_to_remove(),
                                     "request_headers_to_add", &errors);
    ctx.vhost_response_ops = LevelOps(v.response_headers_to_add(), v.response_headers_to_remove(),
                                      "response_headers_to_add", &errors);
    ctx.vhost_retry.reset();
    if (v.has_retry_policy()) {
      Scope rs(&errors, "retry_policy");
      ctx.vhost_retry = CompileRetryPolicy(v.retry_policy(), &errors);
    }
    vh->routes_.resize(v.routes_size());
    for (int j = 0; j < v.routes_size(); ++j) {
      Scope rs(&errors, Indexed("routes", j));
      CompileRoute(v.routes(j), ctx, &vh->routes_[j], &errors);
      vh->routes_[j].virtual_host_ = vh.get();
    }
    table->vhosts_.push_back(std::move(vh));
  }
  for (auto& [len, domains] : suffixes) {
    table->suffix_wildcards_.emplace_back(len, DomainMap(domains.begin(), domains.end()));
  }
  for (auto& [len, domains] : prefixes) {
    table->prefix_wildcards_.emplace_back(len, DomainMap(domains.begin(), domains.end()));
  }
  if (!errors.ok()) {
    return errors.ToStatus(absl::StrCat("route configuration \"", config.name(), "\": "));
  }
  return std::shared_ptr<const RouteTable>(std::move(table));
}

const VirtualHost* RouteTable::FindWildcard(const WildcardMaps& maps, std::string_view host,
                                            bool suffix) {
  for (const auto& [len, domains] : maps) {
    // The '*' must stand for at least one character, as in Envoy.
    if (len >= host.size()) continue;
    std::string_view key = suffix ? host.substr(host.size() - len) : host.substr(0, len);
    if (auto it = domains.find(key); it != domains.end()) return it->second;
  }
  return nullptr;
}

const VirtualHost* RouteTable::FindNonDefault(std::string_view host) const {
  if (!exact_.empty()) {
    if (auto it = exact_.find(host); it != exact_.end()) return it->second;
  }
  if (const VirtualHost* vh = FindWildcard(suffix_wildcards_, host, /*suffix=*/true)) return vh;
  return FindWildcard(prefix_wildcards_, host, /*suffix=*/false);
}

const VirtualHost* RouteTable::FindVirtualHost(std::string_view authority) const {
  std::string_view host = ignore_port_ ? StripPort(authority) : authority;
  if (const VirtualHost* vh = FindNonDefault(host)) return vh;
  // "foo.com:8080" falls back to "foo.com" before the catch-all.
  if (std::string_view stripped = StripPort(host); stripped.size() != host.size()) {
    if (const VirtualHost* vh = FindNonDefault(stripped)) return vh;
  }
  return default_;
}

const Route* RouteTable::Match(const RequestView& request) const {
  const VirtualHost* vh = FindVirtualHost(request.authority);
  if (vh == nullptr) return nullptr;
  auto [path, query] = SplitPath(request.path);
  for (const Route& route : vh->routes()) {
    if (route.Matches(request, path, query)) return &route;
  }
  return nullptr;
}

// ---------------------------------------------------------------------------------------------
// Rewrites

namespace {

const PathRewrite* RewriteOf(const Route& route) {
  if (const RouteAction* a = route.route_action()) return &a->path_rewrite;
  if (const RedirectAction* r = route.redirect()) return &r->path_rewrite;
  return nullptr;
}

// Envoy's processRequestHost: drop the request's port when the redirect sets one, or when the
// scheme changes and the port was the old scheme's default (http://foo:80 -> https://foo).
std::string RedirectHost(std::string_view host, std::string_view request_scheme,
                         std::string_view new_scheme, std::string_view new_port) {
  std::string_view stripped = StripPort(host);
  if (stripped.size() == host.size()) return std::string(host);
  std::string_view port = host.substr(stripped.size());
  bool remove = !new_port.empty();
  if (new_scheme != request_scheme) {
    remove |= request_scheme == "https" && port == ":443";
    remove |= request_scheme == "http" && port == ":80";
  }
  return std::string(remove ? stripped : host);
}

}  // namespace

std::string ApplyPathRewrite(const Route& route, std::string_view full_path) {
  const PathRewrite* rw = RewriteOf(route);
  if (rw == nullptr || rw->empty()) return std::string(full_path);
  size_t end = full_path.find_first_of("?#");
  std::string_view path = full_path.substr(0, end);
  std::string_view rest =
      end == std::string_view::npos ? std::string_view() : full_path.substr(end);
  std::string out;
  if (rw->has_prefix) {
    out = absl::StrCat(rw->prefix, Sv(path.substr(route.MatchedLength(path))));
  } else {
    out = std::string(path);
    RE2::GlobalReplace(&out, *rw->regex, rw->substitution);
  }
  out.append(rest);
  return out;
}

std::string RedirectLocation(const Route& route, const RequestView& request) {
  const RedirectAction* rd = route.redirect();
  if (rd == nullptr) return "";
  std::string_view request_scheme = request.scheme.empty() ? "http" : request.scheme;
  std::string_view scheme = rd->scheme.empty() ? request_scheme : std::string_view(rd->scheme);
  std::string host;
  if (!rd->host.empty()) {
    // An explicit port_redirect wins over a port written into host_redirect.
    host = rd->port.empty() ? rd->host : std::string(StripPort(rd->host));
  } else {
    host = RedirectHost(request.authority, request_scheme, scheme, rd->port);
  }
  std::string path;
  if (!rd->path.empty()) {
    path = rd->path;
    if (!rd->path_has_query) {
      // A query in path_redirect replaces the request's; otherwise the request's is kept.
      if (size_t q = request.path.find('?'); q != std::string_view::npos) {
        path.append(request.path.substr(q));
      }
    }
  } else {
    path = ApplyPathRewrite(route, request.path);
  }
  if (rd->strip_query && !rd->path_has_query) {
    if (size_t q = path.find('?'); q != std::string::npos) path.resize(q);
  }
  return absl::StrCat(Sv(scheme), "://", host, rd->port, path);
}

std::optional<std::string> RewrittenHost(const Route& route, const RequestView& request,
                                         const WeightedClusterEntry* picked) {
  const RouteAction* a = route.route_action();
  if (a == nullptr) return std::nullopt;
  if (picked != nullptr && !picked->host_rewrite_literal.empty()) {
    return picked->host_rewrite_literal;
  }
  if (!a->host_rewrite_literal.empty()) return a->host_rewrite_literal;
  if (!a->host_rewrite_header.empty() && request.headers != nullptr) {
    std::optional<std::string_view> v = request.headers->Get(a->host_rewrite_header);
    if (v.has_value() && !v->empty()) return std::string(*v);
    return std::nullopt;
  }
  if (a->host_rewrite_path_regex != nullptr) {
    std::string host(SplitPath(request.path).first);
    RE2::GlobalReplace(&host, *a->host_rewrite_path_regex, a->host_rewrite_path_substitution);
    return host;
  }
  return std::nullopt;
}

}  // namespace weft::router
