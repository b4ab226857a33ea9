// A network::Connection without a socket, for codec, connection manager and router tests:
// what is written is collected, and the test plays the peer by calling Deliver().
#pragma once

#include <string>
#include <string_view>

#include "data-plane/net/socket.h"
#include "data-plane/network/connection.h"

namespace weft::testing {

class FakeConnection final : public network::Connection {
 public:
  FakeConnection() : transport_(network::NewPlainTransportSocket()) {}

  // --- The test's side ---
  // The peer sends `bytes` (and, with end_stream, half-closes).
  void Deliver(std::string_view bytes, bool end_stream = false) {
    in_.Append(bytes);
    if (end_stream) eof_ = true;
    if (read_disable_ == 0 && callbacks_ != nullptr) callbacks_->OnRead(in_, eof_);
  }
  // Everything written so far, and clears it.
  std::string TakeWritten() {
    std::string out;
    out.swap(written_);
    return out;
  }
  const std::string& written() const { return written_; }
  void RaiseEvent(network::ConnectionEvent event) {
    if (event != network::ConnectionEvent::kConnected) state_ = State::kClosed;
    if (callbacks_ != nullptr) callbacks_->OnEvent(event);
  }
  void SetAboveHigh(bool above) {
    above_ = above;
    if (callbacks_ != nullptr) callbacks_->OnWatermark(above);
  }
  net::Buffer& input() { return in_; }
  bool shut_write() const { return shut_write_; }
  network::CloseType close_type() const { return close_type_; }
  int read_again_calls = 0;

  // --- network::Connection ---
  void SetCallbacks(network::ConnectionCallbacks* callbacks) override { callbacks_ = callbacks; }
  void Write(std::string_view bytes) override {
    if (state_ == State::kOpen || state_ == State::kConnecting) written_.append(bytes);
  }
  void ShutdownWrite() override { shut_write_ = true; }
  void Close(network::CloseType type) override {
    close_type_ = type;
    state_ = type == network::CloseType::kNoFlush ? State::kClosed : State::kClosing;
  }
  void ReadDisable(bool disable) override {
    if (disable) {
      ++read_disable_;
    } else if (read_disable_ > 0) {
      --read_disable_;
    }
  }
  bool read_disabled() const override { return read_disable_ > 0; }
  size_t buffered_output() const override { return written_.size(); }
  bool above_high_watermark() const override { return above_; }
  State state() const override { return state_; }
  void ReadAgain() override { ++read_again_calls; }
  const sockaddr_storage& peer_address() const override { return peer_; }
  const sockaddr_storage& local_address() const override { return local_; }
  network::TransportSocket& transport() override { return *transport_; }
  void OnTick(std::chrono::steady_clock::time_point) override {}
  std::string_view close_reason() const override { return "fake"; }
  uint64_t bytes_read() const override { return 0; }
  uint64_t bytes_written() const override { return 0; }

  sockaddr_storage peer_{};
  sockaddr_storage local_{};
  State state_ = State::kOpen;

 private:
  network::ConnectionCallbacks* callbacks_ = nullptr;
  std::unique_ptr<network::TransportSocket> transport_;
  net::Buffer in_;
  bool eof_ = false;
  std::string written_;
  int read_disable_ = 0;
  bool above_ = false;
  bool shut_write_ = false;
  network::CloseType close_type_ = network::CloseType::kNoFlush;
};

}  // namespace weft::testing
