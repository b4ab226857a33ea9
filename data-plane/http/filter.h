// HTTP filters: what runs between the codec and the upstream for each request. An
// HttpConnectionManager's `http_filters` are compiled once, in order, into FilterFactory
// objects held by the config snapshot; each request gets one Filter from each factory. The
// router (filters/router) is always the last: it takes the request upstream and hands the
// response back through the callbacks. In the spirit of Envoy's envoy/http/filter.h, leaner:
// one Filter class with decode and encode hooks, all defaulting to "continue".
//
// Iteration: decode hooks run in chain order, encode hooks in reverse. A hook returning kStop
// halts the iteration at that filter; the filter resumes it later with ContinueDecoding()
// (e.g. after a fault delay). While decoding is stopped at a filter's headers, body bytes that
// arrive wait in the stream (bounded: above the high watermark the downstream is read-disabled).
// DecodeData returning kStop means the filter took that piece (the router does).
//
// A filter may answer locally at any point before the response started (SendLocalReply): the
// stream ends there, the remaining decode hooks do not run, and the reply goes to the client
// directly (encode hooks of other filters do not see it).
//
// Threading: filters and their callbacks live on one worker; factories are immutable and
// shared by every worker.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "data-plane/http/header_map.h"
#include "data-plane/router/route_table.h"

namespace weft::network {
class Connection;
}
namespace weft::upstream {
class Random;
}
namespace weft::proxy {
struct ClusterStats;
struct RouteStats;
class CounterScope;
}  // namespace weft::proxy

namespace weft::http {

enum class FilterStatus : uint8_t { kContinue, kStop };

// Why a request ended as it did: Envoy's %RESPONSE_FLAGS% (plus RBAC, Envoy's name for it in
// response code details). A request may carry several (UF and URX).
enum class ResponseFlag : uint32_t {
  kNone = 0,
  kNoRoute = 1u << 0,                           // NR
  kNoClusterFound = 1u << 1,                    // NC
  kNoHealthyUpstream = 1u << 2,                 // UH
  kUpstreamConnectionFailure = 1u << 3,         // UF
  kUpstreamOverflow = 1u << 4,                  // UO
  kUpstreamRequestTimeout = 1u << 5,            // UT
  kUpstreamRetryLimitExceeded = 1u << 6,        // URX
  kUpstreamRemoteReset = 1u << 7,               // UR
  kUpstreamConnectionTermination = 1u << 8,     // UC
  kUpstreamProtocolError = 1u << 9,             // UPE
  kDownstreamProtocolError = 1u << 10,          // DPE
  kDownstreamConnectionTermination = 1u << 11,  // DC
  kStreamIdleTimeout = 1u << 12,                // SI
  kRbacDenied = 1u << 13,                       // RBAC
  kDelayInjected = 1u << 14,                    // DI
  kFaultInjected = 1u << 15,                    // FI
};
inline ResponseFlag operator|(ResponseFlag a, ResponseFlag b) {
  return static_cast<ResponseFlag>(static_cast<uint32_t>(a) | static_cast<uint32_t>(b));
}
// "UF,URX", or "-" when none.
std::string ResponseFlagsText(uint32_t flags);

// What the connection manager picked for the request before the filters ran: the route and,
// for a forwarding route, the cluster (weighted pick and cluster_header resolved), so a filter
// can ask "bound for which cluster" (the fault filter's upstream_cluster).
struct RouteSelection {
  std::shared_ptr<const router::RouteTable> table;  // keeps `route` alive
  const router::Route* route = nullptr;             // null: no route matched
  const router::RouteAction* action = nullptr;      // null unless a forwarding route
  const router::WeightedClusterEntry* entry = nullptr;
  std::string cluster;  // empty when none
  proxy::RouteStats* stats = nullptr;
  uint64_t random = 0;  // the stream's random value (runtime fractions, weighted picks)
};

// The request's record, for the access log and stats.
struct StreamInfo {
  Clock::TimePoint start{};
  std::chrono::system_clock::time_point wall_start{};
  std::string method;
  std::string path;  // as received (before rewrites)
  std::string authority;
  std::string request_id;
  std::string user_agent;
  std::string protocol;
  int status = 0;
  uint32_t flags = 0;           // ResponseFlag bits
  std::string details;          // response code details ("rbac_access_denied_matched_policy[p]")
  uint64_t bytes_received = 0;  // request body bytes
  uint64_t bytes_sent = 0;      // response body bytes
  std::string upstream_host;
  std::string upstream_cluster;
  void AddFlag(ResponseFlag f) { flags |= static_cast<uint32_t>(f); }
  bool HasFlag(ResponseFlag f) const { return (flags & static_cast<uint32_t>(f)) != 0; }
};

class Filter;
class UpstreamClusters;

class StreamFilterCallbacks {
 public:
  virtual ~StreamFilterCallbacks() = default;
  // Resumes decoding after the filter that stopped (the caller is that filter).
  virtual void ContinueDecoding() = 0;
  // Answers with `status` and a one-line `body` (content-type text/plain), records `flag` and
  // `details`; the stream ends. The filter must not touch the stream afterwards.
  virtual void SendLocalReply(int status, std::string_view body, ResponseFlag flag,
                              std::string_view details = {}) = 0;
  virtual const RouteSelection& route() const = 0;
  virtual StreamInfo& info() = 0;
  virtual Clock::TimePoint now() const = 0;
  // OnTimer(now) runs at the first tick at or after `deadline` (the worker ticks every 50 ms).
  // One deadline per filter; a later call replaces it, TimePoint::max() cancels.
  virtual void WakeAt(Filter* filter, Clock::TimePoint deadline) = 0;
  virtual const network::Connection& connection() const = 0;
  virtual upstream::Random& random() = 0;
  // Named counters and gauges under the connection manager's "http.<stat_prefix>." scope.
  virtual proxy::CounterScope& counters() = 0;

  // --- For the terminal filter (the router) ---
  virtual UpstreamClusters& clusters() = 0;
  // The response, through the encode hooks to the client.
  virtual void EncodeHeaders(ResponseHeaderMap& headers, bool end_stream) = 0;
  virtual void EncodeData(std::string_view data, bool end_stream) = 0;
  // The upstream accepted an upgrade (101): `headers` go to the client, then both connections
  // become a byte tunnel until one closes. The stream ends with the tunnel.
  virtual void StartTunnel(ResponseHeaderMap& headers,
                           std::unique_ptr<network::Connection> upstream) = 0;
  // The response cannot be completed (the upstream went away mid-body): the client's
  // connection is closed, which is all HTTP/1 can say.
  virtual void ResetStream() = 0;
  // Flow control from upstream to the client: the router read-disables its upstream while the
  // client's connection is above its high watermark (OnDownstreamWatermark), and asks the
  // stream to pause the client while the upstream's is (request bodies).
  virtual void ReadDisableDownstream(bool disable) = 0;
};

class Filter {
 public:
  virtual ~Filter() = default;
  virtual FilterStatus DecodeHeaders(RequestHeaderMap& headers, bool end_stream) {
    return FilterStatus::kContinue;
  }
  virtual FilterStatus DecodeData(std::string_view data, bool end_stream) {
    return FilterStatus::kContinue;
  }
  virtual FilterStatus DecodeTrailers(TrailerMap& trailers) { return FilterStatus::kContinue; }
  virtual FilterStatus EncodeHeaders(ResponseHeaderMap& headers, bool end_stream) {
    return FilterStatus::kContinue;
  }
  virtual FilterStatus EncodeData(std::string_view data, bool end_stream) {
    return FilterStatus::kContinue;
  }
  virtual void OnTimer(Clock::TimePoint now) {}
  // The client's connection crossed its write watermarks (router: pause the upstream).
  virtual void OnDownstreamWatermark(bool above_high) {}
  // The stream is over (answered, reset or abandoned): release what the filter holds. The last
  // call the filter gets.
  virtual void OnStreamEnd() {}
};

class FilterFactory {
 public:
  virtual ~FilterFactory() = default;
  virtual std::unique_ptr<Filter> Create(StreamFilterCallbacks& callbacks) const = 0;
};

// The compiled `http_filters` of one connection manager, router last.
struct FilterChain {
  std::vector<std::shared_ptr<const FilterFactory>> factories;
};

}  // namespace weft::http
