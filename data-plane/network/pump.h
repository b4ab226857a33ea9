// A byte pump between two connections: what one side reads the other writes, with flow control
// in both directions (a side whose output is above its high watermark pauses the reading of the
// other) and half-closes passed on. The HTTP upgrade tunnel uses it once the upstream accepted
// (101); a TCP proxy will too.
//
// End of a tunnel, as the upgrade path wants it: `a`'s half-close is passed to `b`; `b`'s close
// ends the tunnel (what `b` sent reaches `a`, which is then closed with a flush and a linger). A
// reset on either side closes the other. The pump reports done once both connections are
// closed; the owners keep them alive until then.
//
// Threading: one worker's loop.
#pragma once

#include <chrono>
#include <cstdint>

#include "data-plane/network/connection.h"

namespace weft::network {

class BytePump final : public net::Deferred {
 public:
  class Callbacks {
   public:
    virtual ~Callbacks() = default;
    // Both connections are closed. Called from one of their callbacks: the owner hands the
    // pump and the connections to EventLoop::DeferDelete rather than destroying them here.
    virtual void OnPumpDone() = 0;
  };

  // Takes over both connections' callbacks; bytes already buffered on either side are moved
  // after the current event. `now` starts the idle clock.
  BytePump(Connection& a, Connection& b, Callbacks& callbacks,
           std::chrono::steady_clock::time_point now);
  BytePump(const BytePump&) = delete;
  BytePump& operator=(const BytePump&) = delete;

  // Closes both sides when no byte moved for `idle` (0: never); returns true when it did.
  bool CheckIdle(std::chrono::steady_clock::time_point now, std::chrono::milliseconds idle);
  // Closes both sides now (shutdown, config removal).
  void Abort();

  uint64_t bytes_a_to_b() const { return a_.moved; }
  uint64_t bytes_b_to_a() const { return b_.moved; }
  bool done() const { return done_; }

 private:
  struct Side final : ConnectionCallbacks {
    BytePump* pump = nullptr;
    Connection* conn = nullptr;
    Side* other = nullptr;
    bool is_b = false;
    bool eof = false;
    bool paused_other = false;  // this side's output is high: the other side's reads are off
    uint64_t moved = 0;         // bytes this side read and handed to the other
    void OnRead(net::Buffer& data, bool end_stream) override;
    void OnEvent(ConnectionEvent event) override;
    void OnWatermark(bool above_high) override;
  };
  void CheckDone();

  Side a_;
  Side b_;
  Callbacks& callbacks_;
  std::chrono::steady_clock::time_point last_activity_;
  bool done_ = false;
};

}  // namespace weft::network
