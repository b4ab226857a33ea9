// The active health checks' probes, over the proxy's event loop (data-plane/net): HTTP/1.1,
// TCP and gRPC (grpc.health.v1.Health/Check over HTTP/2, on nghttp2), each a health::Prober
// the checker drives.
//
// What each one does, with Envoy's semantics (api/envoy/config/core/v3/health_check.proto):
// - HTTP: `GET path` (or `method`) with `Host:` the configured host or else the cluster's name,
//   `User-Agent: Envoy/HC` (upstreams commonly recognise health checks by it), plus
//   request_headers_to_add / minus request_headers_to_remove. A status in expected_statuses
//   (default [200, 201)) passes; one in retriable_statuses is a failure that counts towards
//   the unhealthy threshold; any other is conclusive (unhealthy at once). The connection is
//   kept for the next probe (reuse_connection, Envoy's default) unless the answer closes it; a
//   kept connection the server closed before answering is retried once on a fresh one.
// - TCP: connects, sends `send` (if any), and passes once every `receive` block has arrived,
//   in order, anywhere in the stream (Envoy's "fuzzy" match); without `receive`, connecting
//   passes. Payloads are hex text or binary. A fresh connection per probe: a kept idle
//   connection says nothing about whether the host still accepts new ones.
// - gRPC: one HTTP/2 connection per host, kept; each probe is a stream carrying a
//   HealthCheckRequest with `service_name`, `:authority` the configured authority or else the
//   cluster's name, plus initial_metadata. It passes on HTTP 200, grpc-status 0 and SERVING;
//   anything else (NOT_SERVING, SERVICE_UNKNOWN, an error status, a reset) is a failure.
// A connection that cannot be made, or breaks, is a failure; no answer in time is a timeout
// (the connection is closed).
//
// Threading: the loop's thread only, as the checker that owns the prober. A prober destroyed
// with probes in flight closes their connections and never calls their callbacks.
#pragma once

#include <memory>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "data-plane/net/event_loop.h"
#include "data-plane/upstream/health/health_checker.h"
#include "envoy/config/core/v3/health_check.pb.h"

namespace weft::upstream::health {

// What the probers of one proxy share: the loop they run on and the deadlines of the probes in
// flight. Tick() must run on the loop's tick (every 50 ms is plenty: timeouts are seconds).
class ProbeLoop {
 public:
  explicit ProbeLoop(net::EventLoop* loop, Clock* clock = &RealClock::Get())
      : loop_(loop), clock_(clock) {}
  net::EventLoop* loop() const { return loop_; }
  Clock* clock() const { return clock_; }
  // Ends every probe whose deadline has passed (as a timeout).
  void Tick();

  // A probe with a deadline (probers' internals).
  class Timed {
   public:
    virtual ~Timed() = default;
    virtual void OnDeadline() = 0;
    Clock::TimePoint deadline{};
  };
  void Watch(Timed* t) { timed_.insert(t); }
  void Unwatch(Timed* t) { timed_.erase(t); }
  size_t watched() const { return timed_.size(); }

 private:
  net::EventLoop* loop_;
  Clock* clock_;
  std::set<Timed*> timed_;
};

// The prober for `config` (its http_health_check, tcp_health_check or grpc_health_check) of
// `cluster`. Fails naming the field for what is not implemented (custom checks, HTTP/2 or
// HTTP/3 codecs for HTTP checks, payload matching on HTTP responses) or not valid (bad hex).
absl::StatusOr<std::unique_ptr<Prober>> NewProber(
    ProbeLoop* loop, const std::string& cluster,
    const envoy::config::core::v3::HealthCheck& config);

}  // namespace weft::upstream::health
