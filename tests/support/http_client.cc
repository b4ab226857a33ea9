#include "tests/support/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>

namespace weft::test {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return std::string(s);
}

}  // namespace

HttpClient::HttpClient(int port, std::chrono::milliseconds timeout, std::string host)
    : port_(port), host_(std::move(host)), timeout_(timeout) {
  Connect();
}

HttpClient::~HttpClient() { Disconnect(); }

bool HttpClient::Connect() {
  Disconnect();
  fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port_));
  if (inet_pton(AF_INET, host_.c_str(), &addr.sin_addr) != 1 ||
      connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    Disconnect();
    return false;
  }
  int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return true;
}

void HttpClient::Disconnect() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  buffer_.clear();
}

bool HttpClient::Send(std::string_view bytes) {
  if (fd_ < 0 && !Connect()) return false;
  while (!bytes.empty()) {
    ssize_t n = send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

bool HttpClient::Fill(size_t n) {
  auto deadline = std::chrono::steady_clock::now() + timeout_;
  while (buffer_.size() < n) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    char chunk[16384];
    ssize_t got = recv(fd_, chunk, sizeof chunk, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    buffer_.append(chunk, static_cast<size_t>(got));
  }
  return true;
}

ClientResponse HttpClient::Read(std::string_view request_method) {
  ClientResponse r;
  if (fd_ < 0) return r;
  size_t end;
  for (;;) {
    end = buffer_.find("\r\n\r\n");
    if (end != std::string::npos) break;
    if (!Fill(buffer_.size() + 1)) {
      Disconnect();
      return r;
    }
  }
  std::string head = buffer_.substr(0, end);
  buffer_.erase(0, end + 4);
  size_t line_end = head.find("\r\n");
  std::string status_line = head.substr(0, line_end);
  if (status_line.size() < 12 || status_line.compare(0, 7, "HTTP/1.") != 0) {
    Disconnect();
    return r;
  }
  int status = std::atoi(status_line.c_str() + 9);
  size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
  while (pos < head.size()) {
    size_t e = head.find("\r\n", pos);
    if (e == std::string::npos) e = head.size();
    std::string_view line(head.data() + pos, e - pos);
    size_t colon = line.find(':');
    if (colon != std::string_view::npos) {
      std::string name = Lower(line.substr(0, colon));
      std::string value = Trim(line.substr(colon + 1));
      auto& slot = r.headers[name];
      slot = slot.empty() ? value : slot + "," + value;
    }
    pos = e + 2;
  }
  if (status < 200) return Read(request_method);  // interim: the final response follows
  bool close_after = Lower(r.Header("connection")).find("close") != std::string::npos;
  bool bodiless = request_method == "HEAD" || status == 204 || status == 304;
  if (!bodiless && Lower(r.Header("transfer-encoding")).find("chunked") != std::string::npos) {
    for (;;) {
      size_t e;
      while ((e = buffer_.find("\r\n")) == std::string::npos) {
        if (!Fill(buffer_.size() + 1)) {
          Disconnect();
          return r;
        }
      }
      size_t size = std::strtoul(buffer_.c_str(), nullptr, 16);
      buffer_.erase(0, e + 2);
      if (!Fill(size + 2)) {
        Disconnect();
        return r;
      }
      r.body.append(buffer_, 0, size);
      buffer_.erase(0, size + 2);
      if (size == 0) break;  // (trailers are not used by these tests)
    }
  } else if (!bodiless && !r.Header("content-length").empty()) {
    size_t length = std::strtoul(r.Header("content-length").c_str(), nullptr, 10);
    if (!Fill(length)) {
      Disconnect();
      return r;
    }
    r.body = buffer_.substr(0, length);
    buffer_.erase(0, length);
  } else if (!bodiless) {
    while (Fill(buffer_.size() + 1)) {
    }
    r.body = buffer_;
    buffer_.clear();
    close_after = true;
  }
  r.status = status;
  if (close_after) Disconnect();
  return r;
}

ClientResponse HttpClient::Request(std::string_view method, std::string_view path,
                                   const std::vector<std::pair<std::string, std::string>>& headers,
                                   std::string_view body) {
  std::string req;
  req.append(method).append(" ").append(path).append(" HTTP/1.1\r\n");
  bool has_host = false;
  bool has_length = false;
  for (const auto& [name, value] : headers) {
    std::string n = Lower(name);
    has_host |= n == "host";
    has_length |= n == "content-length" || n == "transfer-encoding";
    req.append(name).append(": ").append(value).append("\r\n");
  }
  if (!has_host) req.append("Host: test\r\n");
  if (!has_length && (!body.empty() || method == "POST" || method == "PUT")) {
    req.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  }
  req.append("\r\n").append(body);
  if (fd_ < 0 && !Connect()) return {};
  if (!Send(req)) {
    // The server may have closed an idle keep-alive connection: one fresh try.
    if (!Connect() || !Send(req)) return {};
  }
  return Read(method);
}

ClientResponse HttpClient::Raw(std::string_view bytes) {
  if (!Send(bytes)) return {};
  return Read();
}

bool HttpClient::PeerClosed(std::chrono::milliseconds wait) {
  if (fd_ < 0) return true;
  auto saved = timeout_;
  timeout_ = wait;
  bool more = Fill(buffer_.size() + 1);
  timeout_ = saved;
  if (!more) {
    Disconnect();
    return true;
  }
  return false;
}

}  // namespace weft::test
