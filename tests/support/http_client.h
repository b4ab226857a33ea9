// A blocking HTTP/1.1 client for proxy e2e tests: one keep-alive connection, requests with any
// method, headers and body, and raw bytes for the malformed-input cases. Deliberately separate
// from the proxy's own parser, so a bug there cannot hide itself in the tests.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace weft::test {

struct ClientResponse {
  int status = 0;  // 0: connection failed, closed, or timed out before a full response
  std::map<std::string, std::string> headers;  // lower-case names; repeated ones joined by ","
  std::string body;
  std::string Header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

class HttpClient {
 public:
  // `host`: an IPv4 address; any of 127/8 reaches this machine (a listener on 0.0.0.0:P is then
  // reached on 127.0.0.2:P even where another socket holds 127.0.0.1:P).
  explicit HttpClient(int port, std::chrono::milliseconds timeout = std::chrono::seconds(5),
                      std::string host = "127.0.0.1");
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends one request (adding Host and Content-Length unless given) and reads the response.
  // Reconnects first when the previous response closed the connection.
  ClientResponse Request(std::string_view method, std::string_view path,
                         const std::vector<std::pair<std::string, std::string>>& headers = {},
                         std::string_view body = {});
  ClientResponse Get(std::string_view path,
                     const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    return Request("GET", path, headers, body_none_);
  }
  // Writes `bytes` as they are and reads one response (the proxy's answer to malformed input).
  ClientResponse Raw(std::string_view bytes);
  // Writes bytes without reading (e.g. the first half of a request).
  bool Send(std::string_view bytes);
  // Reads one response.
  ClientResponse Read(std::string_view request_method = "GET");
  // True when the server has closed the connection (reads EOF within `wait`).
  bool PeerClosed(std::chrono::milliseconds wait);
  bool connected() const { return fd_ >= 0; }

 private:
  bool Connect();
  void Disconnect();
  // Reads until `buffer_` holds `n` bytes; false on EOF, error or timeout.
  bool Fill(size_t n);

  int port_;
  std::string host_;
  std::chrono::milliseconds timeout_;
  int fd_ = -1;
  std::string buffer_;
  std::string_view body_none_;
};

}  // namespace weft::test
