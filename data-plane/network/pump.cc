#include "data-plane/network/pump.h"

namespace weft::network {

BytePump::BytePump(Connection& a, Connection& b, Callbacks& callbacks,
                   std::chrono::steady_clock::time_point now)
    : callbacks_(callbacks), last_activity_(now) {
  a_.pump = b_.pump = this;
  a_.conn = &a;
  b_.conn = &b;
  a_.other = &b_;
  b_.other = &a_;
  b_.is_b = true;
  a.SetCallbacks(&a_);
  b.SetCallbacks(&b_);
  a.ReadAgain();
  b.ReadAgain();
}

void BytePump::Side::OnRead(net::Buffer& data, bool end_stream) {
  if (!data.empty()) {
    moved += data.size();
    other->conn->Write(data.readable());
    data.Clear();
    pump->last_activity_ = std::chrono::steady_clock::time_point::max();  // see CheckIdle
  }
  if (!end_stream || eof) return;
  eof = true;
  if (is_b) {
    // The upstream ended the tunnel: the client gets what is left, then the connection closes.
    other->conn->Close(CloseType::kFlushWriteAndLinger);
    conn->Close(CloseType::kNoFlush);
    pump->CheckDone();
  } else {
    other->conn->ShutdownWrite();
  }
}

void BytePump::Side::OnEvent(ConnectionEvent event) {
  if (event == ConnectionEvent::kRemoteClose) {
    // A reset: the other side is closed with what it still has to send.
    if (other->conn->state() != Connection::State::kClosed) {
      other->conn->Close(is_b ? CloseType::kFlushWriteAndLinger : CloseType::kNoFlush);
    }
  }
  pump->CheckDone();
}

void BytePump::Side::OnWatermark(bool above_high) {
  if (above_high == paused_other) return;
  paused_other = above_high;
  other->conn->ReadDisable(above_high);
}

bool BytePump::CheckIdle(std::chrono::steady_clock::time_point now,
                         std::chrono::milliseconds idle) {
  // Bytes moving mark the clock as "now" lazily (OnRead has no clock): the first tick after
  // traffic restarts the idle period.
  if (last_activity_ == std::chrono::steady_clock::time_point::max()) {
    last_activity_ = now;
    return false;
  }
  if (done_ || idle.count() <= 0 || now - last_activity_ < idle) return false;
  Abort();
  return true;
}

void BytePump::Abort() {
  if (a_.conn->state() != Connection::State::kClosed) a_.conn->Close(CloseType::kFlushWrite);
  if (b_.conn->state() != Connection::State::kClosed) b_.conn->Close(CloseType::kNoFlush);
  CheckDone();
}

void BytePump::CheckDone() {
  if (done_) return;
  if (a_.conn->state() != Connection::State::kClosed ||
      b_.conn->state() != Connection::State::kClosed) {
    return;
  }
  done_ = true;
  callbacks_.OnPumpDone();
}

}  // namespace weft::network
