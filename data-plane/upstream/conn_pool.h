// Upstream connection pools: the router asks a pool for a stream to one host and gets it when
// a connection is ready. One interface for every protocol: HTTP/1 now (one stream per
// connection, idle connections kept for reuse), a multiplexed HTTP/2 pool and a TCP pool next.
//
// A pool belongs to one worker and one upstream address ("address:port"), so a changed cluster
// keeps its connections to the hosts that remain.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "data-plane/http/codec.h"
#include "data-plane/net/socket.h"
#include "data-plane/network/connection.h"

namespace weft::proxy {
struct ClusterStats;
struct HostStats;
}  // namespace weft::proxy

namespace weft::upstream {

enum class PoolFailure : uint8_t {
  kConnectFailure,  // refused, unreachable, reset during connect
  kTimeout,         // connect_timeout passed
  kOverflow,        // the pool may not open another connection
};

// A stream on a pooled connection, from OnPoolReady until Done() or Reset().
class PoolStream {
 public:
  virtual ~PoolStream() = default;
  virtual http::RequestEncoder& encoder() = 0;
  // The connection carried requests before this one (a server may close it at any moment).
  virtual bool reused() const = 0;
  // Some byte of this stream's request has been handed to the connection.
  virtual bool request_written() const = 0;
  // The response is complete: the connection goes back to the pool if the codec allows.
  virtual void Done() = 0;
  // The stream is abandoned (retry, timeout, client gone): the connection is closed.
  virtual void Reset() = 0;
  virtual void ReadDisable(bool disable) = 0;
  // The connection leaves the pool (an accepted upgrade becomes a tunnel); the stream ends.
  virtual std::unique_ptr<network::Connection> Detach() = 0;
};

class PoolCallbacks {
 public:
  virtual ~PoolCallbacks() = default;
  virtual void OnPoolReady(PoolStream& stream) = 0;
  virtual void OnPoolFailure(PoolFailure failure, std::string_view detail) = 0;
  // The upstream connection's output crossed its watermarks (a request body faster than the
  // upstream reads it): pause or resume the client.
  virtual void OnUpstreamWatermark(bool above_high) {}
};

struct StreamOptions {
  std::chrono::milliseconds connect_timeout{5000};
  proxy::ClusterStats* cluster_stats = nullptr;  // cx_* counters; may be null
  proxy::HostStats* host_stats = nullptr;        // may be null
};

class ConnPool {
 public:
  virtual ~ConnPool() = default;
  class Pending {
   public:
    virtual ~Pending() = default;
  };
  // Calls back exactly once, possibly before returning (an idle connection); returns a handle
  // for Cancel() while the stream is pending, else null. `decoder` gets the response.
  virtual Pending* NewStream(http::ResponseDecoder& decoder, PoolCallbacks& callbacks,
                             const StreamOptions& options) = 0;
  // No callback follows; a connection being opened for it stays for the next stream.
  virtual void Cancel(Pending* pending) = 0;
  // Connect timeouts and lingering closes; the worker calls it from its tick.
  virtual void OnTick(std::chrono::steady_clock::time_point now) = 0;
  // Closes idle connections; open streams go on.
  virtual void Drain() = 0;
  // No connection at all (idle, busy or connecting): the pool may be dropped.
  virtual bool empty() const = 0;
};

// Makes the connections a pool uses (tests pass fakes).
using ConnectionFactory = std::function<absl::StatusOr<std::unique_ptr<network::Connection>>()>;

struct Http1PoolOptions {
  size_t max_idle = 64;  // idle connections kept for reuse
};

// `loop` defers deletions and supplies the clock.
std::unique_ptr<ConnPool> NewHttp1ConnPool(net::EventLoop& loop, ConnectionFactory connect,
                                           const Http1PoolOptions& options = {});
// A factory connecting over plain TCP to `address`.
ConnectionFactory TcpConnectionFactory(net::EventLoop& loop, net::SocketAddress address);

}  // namespace weft::upstream
