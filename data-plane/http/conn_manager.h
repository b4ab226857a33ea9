// The HTTP connection manager: one per downstream connection, over a server codec chosen once
// for the connection. Each request is an active stream that
//  - picks its route (virtual host, route, cluster of a weighted split or cluster_header)
//    before the filters run, so every filter sees the same choice;
//  - runs the listener's filter chain (filter.h), the router last;
//  - enforces the connection manager's timeouts: request_timeout (408 until the request is in),
//    request_headers_timeout (408 for a head that does not complete), the route's idle_timeout
//    (408 / reset, flag SI), the connection idle timeout;
//  - answers locally with a reason (filters call SendLocalReply: status, one-line body,
//    response flag, details) and counts the flag ("listener.<name>.response_flags.<F>");
//  - writes the access log line and the listener / route stats when it ends.
// The manager also drains (a listener being removed: "connection: close" on the next response,
// then close once idle), turns an accepted upgrade into a byte tunnel (network::BytePump), and
// passes the connection's write watermarks to the streams' filters.
//
// Threading: one worker's; the manager is driven by its connection's events and the worker's
// tick (OnTick).
#pragma once

#include <chrono>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "data-plane/http/codec.h"
#include "data-plane/http/filter.h"
#include "data-plane/http1/http1.h"
#include "data-plane/network/connection.h"
#include "data-plane/network/pump.h"
#include "data-plane/router/route_table.h"

namespace weft::proxy {
struct ListenerStats;
struct RouteStats;
class CounterScope;
}  // namespace weft::proxy

namespace weft::http {

class UpstreamClusters;

// An HttpConnectionManager as compiled into the config snapshot.
struct ConnectionManagerConfig {
  std::string stat_prefix;
  std::string rds_name;  // empty when the routes are inline
  std::shared_ptr<const router::RouteTable> inline_routes;
  // Envoy's defaults: idle 1 h, no request timeout, 60 KiB of headers, 100 headers.
  std::chrono::milliseconds idle_timeout{std::chrono::hours(1)};
  std::chrono::milliseconds request_timeout{0};
  std::chrono::milliseconds request_headers_timeout{0};
  weft::http1::Limits limits;
  bool generate_request_id = true;
  uint32_t max_requests_per_connection = 0;  // 0: unlimited
  // upgrade_configs: type (lower-case, "websocket") and whether it is enabled. A route's
  // upgrade_configs can switch a listed type on or off; a type not listed is never allowed (as
  // Envoy), and its Upgrade header is dropped.
  std::vector<std::pair<std::string, bool>> upgrades;
  FilterChain filters;  // `http_filters` in order, the router last
};

// What the manager needs from the worker, per listener.
class ConnectionManagerContext {
 public:
  virtual ~ConnectionManagerContext() = default;
  virtual const ConnectionManagerConfig& config() const = 0;
  virtual const std::string& listener_name() const = 0;
  virtual std::shared_ptr<const router::RouteTable> routes() const = 0;
  virtual proxy::ListenerStats& stats() = 0;
  virtual proxy::RouteStats* StatsForRoute(const router::RouteTable& table,
                                           const router::Route& route) = 0;
  // "http.<stat_prefix>." (filters) and "listener.<name>.response_flags." (flags).
  virtual proxy::CounterScope& filter_counters() = 0;
  virtual proxy::CounterScope& flag_counters() = 0;
  virtual upstream::Random& random() = 0;
  virtual UpstreamClusters& clusters() = 0;
  virtual bool draining() const = 0;
  virtual Clock::TimePoint now() const = 0;
  virtual std::chrono::system_clock::time_point wall_now() const = 0;
  // Null when there is no access log.
  virtual void AccessLog(std::string line) = 0;
  virtual bool access_log_enabled() const = 0;
  virtual void DeferDelete(std::unique_ptr<net::Deferred> object) = 0;
  // The connection is closed: the owner forgets `manager` (through DeferDelete).
  virtual void OnConnectionClosed(class ConnectionManager& manager) = 0;
};

using ServerCodecFactory = std::function<std::unique_ptr<ServerCodec>(
    network::Connection&, ServerCodecCallbacks&, const ConnectionManagerConfig&)>;
// The HTTP/1 codec (the only one so far; HTTP/2 is chosen here by ALPN or preface later).
ServerCodecFactory DefaultServerCodecFactory();

class ConnectionManager final : public network::ConnectionCallbacks,
                                public ServerCodecCallbacks,
                                public network::BytePump::Callbacks,
                                public net::Deferred {
 public:
  ConnectionManager(std::shared_ptr<ConnectionManagerContext> context,
                    std::unique_ptr<network::Connection> connection,
                    const ServerCodecFactory& codec_factory = DefaultServerCodecFactory());
  ~ConnectionManager() override;
  ConnectionManager(const ConnectionManager&) = delete;
  ConnectionManager& operator=(const ConnectionManager&) = delete;

  void OnTick(Clock::TimePoint now);
  // Closes now (worker shutdown); streams are reset.
  void Close();
  bool closed() const { return closed_; }
  bool idle() const;
  network::Connection& connection() { return *connection_; }
  size_t active_streams() const { return streams_.size(); }

  // --- network::ConnectionCallbacks ---
  void OnRead(net::Buffer& data, bool end_stream) override;
  void OnEvent(network::ConnectionEvent event) override;
  void OnWatermark(bool above_high) override;
  // --- ServerCodecCallbacks ---
  RequestDecoder& NewStream(ResponseEncoder& encoder) override;
  // --- BytePump::Callbacks ---
  void OnPumpDone() override;

  // The owner's bookkeeping (the worker's list of connections).
  std::list<ConnectionManager*>::iterator owner_slot;

 private:
  class ActiveStream;
  friend class ActiveStream;

  void OnStreamDone(ActiveStream* stream);
  void StartTunnel(ActiveStream* stream, std::unique_ptr<network::Connection> upstream);
  void HandleCodecError(const DispatchResult& result);
  void MarkClosed();

  std::shared_ptr<ConnectionManagerContext> context_;
  std::unique_ptr<network::Connection> connection_;
  std::unique_ptr<ServerCodec> codec_;
  std::list<std::unique_ptr<ActiveStream>> streams_;
  // An accepted upgrade: the pump, the upstream connection and the stream it ends.
  std::unique_ptr<network::BytePump> pump_;
  std::unique_ptr<network::Connection> tunnel_upstream_;
  ActiveStream* tunnel_stream_ = nullptr;
  uint32_t requests_ = 0;
  Clock::TimePoint idle_since_{};
  Clock::TimePoint head_started_{};
  bool peer_eof_ = false;
  bool closed_ = false;
  bool dispatching_ = false;
};

}  // namespace weft::http
