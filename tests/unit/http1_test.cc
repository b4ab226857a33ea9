#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "data-plane/http1/http1.h"

#include "common/http/reason_phrase.h"

namespace weft::http1 {
namespace {

using namespace std::string_literals;

struct Parsed {
  ParseStatus status = ParseStatus::kIncomplete;
  MessageHead head;
  ParseError error;
};

Parsed Request(std::string_view data, const Limits& limits = {}) {
  Parsed p;
  p.status = ParseRequestHead(data, limits, &p.head, &p.error);
  return p;
}

Parsed Response(std::string_view data, std::string_view method = "GET", const Limits& limits = {}) {
  Parsed p;
  p.status = ParseResponseHead(data, method, limits, &p.head, &p.error);
  return p;
}

// The status a request is refused with; 0 when it is not refused.
int RequestError(std::string_view data, const Limits& limits = {}) {
  Parsed p = Request(data, limits);
  return p.status == ParseStatus::kError ? p.error.status : 0;
}

int ResponseError(std::string_view data, std::string_view method = "GET") {
  Parsed p = Response(data, method);
  return p.status == ParseStatus::kError ? p.error.status : 0;
}

bool Inside(std::string_view view, std::string_view data) {
  return view.data() >= data.data() && view.data() + view.size() <= data.data() + data.size();
}

std::string Get(std::string_view headers, std::string_view version = "HTTP/1.1") {
  return "GET / "s.append(version).append("\r\n").append(headers).append("\r\n");
}

// ---------------------------------------------------------------------------------------------
// Requests

TEST_CASE("A simple GET parses into views over the buffer") {
  const std::string data =
      "GET /path?q=1 HTTP/1.1\r\n"
      "Host: example.com\r\n"
      "User-Agent:  curl/8.0 \t\r\n"
      "Accept: */*\r\n"
      "X-Empty:\r\n"
      "\r\n";
  Parsed p = Request(data);
  REQUIRE(p.status == ParseStatus::kDone);
  const MessageHead& h = p.head;
  CHECK(h.method == "GET");
  CHECK(h.target == "/path?q=1");
  CHECK(h.version_minor == 1);
  CHECK(h.host == "example.com");
  CHECK(h.body == BodyKind::kNone);
  CHECK(h.keep_alive);
  CHECK_FALSE(h.expect_continue);
  CHECK_FALSE(h.upgrade);
  CHECK(h.head_size == data.size());
  REQUIRE(h.headers.size() == 4);
  CHECK(h.headers[0].name == "Host");
  CHECK(h.headers[1].value == "curl/8.0");
  CHECK(h.headers[3].name == "X-Empty");
  CHECK(h.headers[3].value.empty());
  for (const Header& header : h.headers) {
    CHECK(Inside(header.name, data));
    CHECK(Inside(header.value, data));
  }
  CHECK(Inside(h.method, data));
  CHECK(Inside(h.target, data));

  std::string_view value;
  CHECK(h.Find("user-agent", &value));
  CHECK(value == "curl/8.0");
  CHECK(h.Find("ACCEPT", &value));
  CHECK(value == "*/*");
  CHECK_FALSE(h.Find("Cookie", &value));
  CHECK(value.empty());
  CHECK(h.Find("x-empty", nullptr));
}

TEST_CASE("Request targets in every form") {
  for (std::string_view line : {"GET http://example.com/a?b HTTP/1.1", "OPTIONS * HTTP/1.1",
                                "CONNECT example.com:443 HTTP/1.1", "GET /caf\xc3\xa9 HTTP/1.1",
                                "M-SEARCH /%20x HTTP/1.1"}) {
    INFO(line);
    std::string data = std::string(line) + "\r\nHost: example.com\r\n\r\n";
    Parsed p = Request(data);
    REQUIRE(p.status == ParseStatus::kDone);
    CHECK(std::string(p.head.method) + " " + std::string(p.head.target) + " HTTP/1.1" == line);
  }
}

TEST_CASE("The path and authority routing sees, whatever the target's form") {
  struct Case {
    std::string_view target, host_header, path, host;
  };
  for (const Case& c : std::vector<Case>{
           {"/a?b", "h", "/a?b", "h"},
           {"http://good/admin/x", "evil", "/admin/x", "good"},
           {"HTTPS://Good:8443/p?q=1", "evil", "/p?q=1", "Good:8443"},
           {"http://good", "evil", "", "good"},
           {"http://good?q", "evil", "?q", "good"},
           {"http://[::1]:80/", "evil", "/", "[::1]:80"},
           {"*", "h", "*", "h"},
       }) {
    INFO(c.target);
    std::string method = c.target == "*" ? "OPTIONS" : "GET";
    std::string data = method + " " + std::string(c.target) +
                       " HTTP/1.1\r\nHost: " + std::string(c.host_header) + "\r\n\r\n";
    Parsed p = Request(data);
    REQUIRE(p.status == ParseStatus::kDone);
    CHECK(p.head.target == c.target);
    CHECK(p.head.path == c.path);
    CHECK(p.head.host == c.host);
  }
  // HTTP/1.0 needs no Host: the target's authority is the host.
  Parsed p = Request("GET http://good/x HTTP/1.0\r\n\r\n");
  REQUIRE(p.status == ParseStatus::kDone);
  CHECK(p.head.host == "good");
  // Targets that name no HTTP resource.
  for (std::string_view target : {"ftp://good/x", "http:///x", "http://user@good/x", "http//good/x",
                                  "x/y", "http://good\\@evil/x", "http://:80/x", "urn:x"}) {
    INFO(target);
    CHECK(RequestError("GET " + std::string(target) + " HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
  }
  CHECK(RequestError("GET * HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
  // The Host header is still required in HTTP/1.1 (RFC 9112 §3.2).
  CHECK(RequestError("GET http://good/x HTTP/1.1\r\n\r\n") == 400);
}

TEST_CASE("Pipelined requests: head_size is where the next one starts") {
  const std::string first = "GET /a HTTP/1.1\r\nHost: a\r\n\r\n";
  const std::string second = "POST /b HTTP/1.1\r\nHost: b\r\nContent-Length: 3\r\n\r\n";
  const std::string data = first + second + "xyz";
  Parsed p = Request(data);
  REQUIRE(p.status == ParseStatus::kDone);
  CHECK(p.head.target == "/a");
  CHECK(p.head.body == BodyKind::kNone);
  REQUIRE(p.head.head_size == first.size());

  Parsed q = Request(std::string_view(data).substr(p.head.head_size));
  REQUIRE(q.status == ParseStatus::kDone);
  CHECK(q.head.method == "POST");
  CHECK(q.head.target == "/b");
  CHECK(q.head.host == "b");
  CHECK(q.head.body == BodyKind::kContentLength);
  CHECK(q.head.content_length == 3);
  CHECK(q.head.head_size == second.size());
}

TEST_CASE("Every prefix of a request is incomplete until the head ends") {
  const std::string head =
      "POST /upload/some/longer/path/for/the/swar/loops HTTP/1.1\r\n"
      "Host: uploads.internal.example.com:8443\r\n"
      "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)\r\n"
      "Accept:\ttext/html,application/xhtml+xml;q=0.9,*/*;q=0.8\r\n"
      "Content-Length: 11\r\n"
      "Expect: 100-continue\r\n"
      "\r\n";
  const std::string data = head + "hello world";
  MessageHead h;
  ParseError error;
  for (size_t n = 0; n <= data.size(); ++n) {
    INFO("prefix " << n);
    ParseStatus s = ParseRequestHead(std::string_view(data).substr(0, n), {}, &h, &error);
    if (n < head.size()) {
      REQUIRE(s == ParseStatus::kIncomplete);
    } else {
      REQUIRE(s == ParseStatus::kDone);
      CHECK(h.head_size == head.size());
      CHECK(h.body == BodyKind::kContentLength);
      CHECK(h.content_length == 11);
      CHECK(h.expect_continue);
      CHECK(h.headers.size() == 5);
    }
  }
}

TEST_CASE("Empty lines before the request line are skipped and counted") {
  const std::string data = "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
  Parsed p = Request(data);
  REQUIRE(p.status == ParseStatus::kDone);
  CHECK(p.head.method == "GET");
  CHECK(p.head.head_size == data.size());
  CHECK(Request("\r\n").status == ParseStatus::kIncomplete);
  CHECK(Request("\r\n\r").status == ParseStatus::kIncomplete);
  CHECK(RequestError("\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n") == 400);
  CHECK(RequestError("\r\rGET / HTTP/1.1\r\nHost: a\r\n\r\n") == 400);
}

TEST_CASE("A MessageHead is reused: every field is reset and the vector keeps its capacity") {
  MessageHead h;
  ParseError error;
  std::string big = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n";
  for (int i = 0; i < 20; ++i) big += "X-" + std::to_string(i) + ": v\r\n";
  big += "Connection: close, upgrade\r\nUpgrade: websocket\r\n\r\n";
  REQUIRE(ParseRequestHead(big, {}, &h, &error) == ParseStatus::kDone);
  CHECK(h.upgrade);
  CHECK_FALSE(h.keep_alive);
  const size_t capacity = h.headers.capacity();
  REQUIRE(ParseRequestHead("GET /x HTTP/1.1\r\nHost: b\r\n\r\n", {}, &h, &error) ==
          ParseStatus::kDone);
  CHECK(h.headers.size() == 1);
  CHECK(h.headers.capacity() == capacity);
  CHECK(h.body == BodyKind::kNone);
  CHECK(h.content_length == 0);
  CHECK_FALSE(h.expect_continue);
  CHECK_FALSE(h.upgrade);
  CHECK(h.keep_alive);
  CHECK(h.host == "b");
}

TEST_CASE("Content-Length decides the request body") {
  auto parse = [](std::string_view headers) { return Request(Get(headers)); };
  Parsed p = parse("Host: a\r\nContent-Length: 0\r\n");
  REQUIRE(p.status == ParseStatus::kDone);
  CHECK(p.head.body == BodyKind::kNone);

  p = parse("Host: a\r\nContent-Length: 42\r\n");
  REQUIRE(p.status == ParseStatus::kDone);
  CHECK(p.head.body == BodyKind::kContentLength);
  CHECK(p.head.content_length == 42);

  p = parse("Host: a\r\nContent-Length: 007\r\n");
  REQUIRE(p.status == ParseStatus::kDone);
  CHECK(p.head.content_length == 7);

  // Repeats are fine as long as every value is the same.
  p = parse("Host: a\r\nContent-Length: 5, 5\r\ncontent-length: 5\r\n");
  REQUIRE(p.status == ParseStatus::kDone);
  CHECK(p.head.content_length == 5);

  p = parse("Host: a\r\nContent-Length: 9223372036854775807\r\n");
  REQUIRE(p.status == ParseStatus::kDone);
  CHECK(p.head.content_length == 9223372036854775807ULL);
}

TEST_CASE("Transfer-Encoding: chunked makes a chunked request body") {
  for (std::string_view te : {"chunked", "Chunked", "CHUNKED", " chunked ", ", chunked"}) {
    INFO(te);
    Parsed p = Request(Get("Host: a\r\nTransfer-Encoding: " + std::string(te) + "\r\n"));
    REQUIRE(p.status == ParseStatus::kDone);
    CHECK(p.head.body == BodyKind::kChunked);
  }
}

TEST_CASE("Requests that could be framed two ways are refused") {
  struct Case {
    const char* name;
    std::string data;
    int status;
  };
  const std::string post = "POST / HTTP/1.1\r\nHost: a\r\n";
  const std::vector<Case> cases = {
      // Content-Length and Transfer-Encoding.
      {"CL then TE", post + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"TE then CL", post + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400},
      {"CL 0 and TE", post + "Content-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"different CLs", post + "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", 400},
      {"different CL list", post + "Content-Length: 5, 6\r\n\r\n", 400},
      {"CL list, empty member", post + "Content-Length: 5,\r\n\r\n", 400},
      {"CL empty", post + "Content-Length:\r\n\r\n", 400},
      {"CL plus sign", post + "Content-Length: +5\r\n\r\n", 400},
      {"CL negative", post + "Content-Length: -1\r\n\r\n", 400},
      {"CL hex", post + "Content-Length: 0x5\r\n\r\n", 400},
      {"CL inner space", post + "Content-Length: 5 5\r\n\r\n", 400},
      {"CL decimal point", post + "Content-Length: 5.0\r\n\r\n", 400},
      {"CL 2^63", post + "Content-Length: 9223372036854775808\r\n\r\n", 400},
      {"CL 2^64", post + "Content-Length: 18446744073709551616\r\n\r\n", 400},
      {"CL huge", post + "Content-Length: 99999999999999999999999999\r\n\r\n", 400},
      // Transfer codings.
      {"TE gzip, chunked", post + "Transfer-Encoding: gzip, chunked\r\n\r\n", 501},
      {"TE gzip", post + "Transfer-Encoding: gzip\r\n\r\n", 501},
      {"TE identity", post + "Transfer-Encoding: identity\r\n\r\n", 501},
      {"TE xchunked", post + "Transfer-Encoding: xchunked\r\n\r\n", 501},
      {"TE chunked with params", post + "Transfer-Encoding: chunked;q=1\r\n\r\n", 501},
      {"TE two headers, gzip first",
       post + "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", 501},
      {"TE chunked, gzip", post + "Transfer-Encoding: chunked, gzip\r\n\r\n", 400},
      {"TE chunked, chunked", post + "Transfer-Encoding: chunked, chunked\r\n\r\n", 400},
      {"TE chunked twice",
       post + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"TE chunked then gzip header",
       post + "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", 400},
      {"TE empty", post + "Transfer-Encoding: \r\n\r\n", 400},
      {"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      // Header syntax.
      {"space before colon", post + "Content-Length : 5\r\n\r\n", 400},
      {"tab before colon", post + "Content-Length\t: 5\r\n\r\n", 400},
      {"space in name", post + "Content Length: 5\r\n\r\n", 400},
      {"bad name char", post + "X@Y: 1\r\n\r\n", 400},
      {"non-ASCII name", post + "X\xc3\xa9: 1\r\n\r\n", 400},
      {"empty name", post + ": 1\r\n\r\n", 400},
      {"no colon", post + "Content-Length\r\n\r\n", 400},
      {"obs-fold", post + "X-A: 1\r\n 2\r\n\r\n", 400},
      {"obs-fold tab", post + "X-A: 1\r\n\t2\r\n\r\n", 400},
      {"space before first header", "POST / HTTP/1.1\r\n Host: a\r\n\r\n", 400},
      {"NUL in value", post + "X-A: a\0b\r\n\r\n"s, 400},
      {"CTL in value", post + "X-A: a\x01z\r\n\r\n", 400},
      {"DEL in value", post + "X-A: a\x7fz\r\n\r\n", 400},
      {"ESC in value", post + "X-A: \x1b[0m\r\n\r\n", 400},
      // Line endings.
      {"bare LF after request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", 400},
      {"bare LF after header", "GET / HTTP/1.1\r\nHost: a\n\r\n", 400},
      {"bare LF ending head", "GET / HTTP/1.1\r\nHost: a\r\n\n", 400},
      {"bare LF inside value", "GET / HTTP/1.1\r\nHost: a\nb\r\n\r\n", 400},
      {"bare LF only", "GET / HTTP/1.1\nHost: a\n\n", 400},
      {"bare CR in value", "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400},
      {"bare CR ending head", "GET / HTTP/1.1\r\nHost: a\r\n\rX", 400},
      // Host.
      {"HTTP/1.1 without Host", "GET / HTTP/1.1\r\nX: y\r\n\r\n", 400},
      {"two Host headers", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
      {"two Host headers, same value", "GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", 400},
      // Request line.
      {"double space", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"trailing space", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400},
      {"space in target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"tab separator", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"CTL in target", "GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"DEL in target", "GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"bad method char", "GE(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"leading space", " GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"HTTP/0.9", "GET /\r\n\r\n", 400},
      {"lower-case version", "GET / http/1.1\r\nHost: a\r\n\r\n", 400},
      {"version HTTP/1", "GET / HTTP/1\r\nHost: a\r\n\r\n", 400},
      {"version HTTP/1.10", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400},
      {"version HTTP/1.1x", "GET / HTTP/1.1x\r\nHost: a\r\n\r\n", 400},
      {"version HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505},
      {"version HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
      {"version HTTP/0.9", "GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505},
      {"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    Parsed p = Request(c.data);
    REQUIRE(p.status == ParseStatus::kError);
    CHECK(p.error.status == c.status);
    CHECK_FALSE(p.error.reason.empty());
    // No prefix may be accepted, and an early refusal must give the same answer.
    for (size_t n = 0; n < c.data.size(); ++n) {
      INFO("prefix " << n);
      Parsed q = Request(std::string_view(c.data).substr(0, n));
      REQUIRE(q.status != ParseStatus::kDone);
      if (q.status == ParseStatus::kError) CHECK(q.error.status == c.status);
    }
  }
}

TEST_CASE("What can never be HTTP is refused before the head is complete") {
  CHECK(RequestError("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"s) == 400);
  CHECK(RequestError(" GET") == 400);
  CHECK(RequestError("GET / HTTP/1.1\nHost") == 400);
  CHECK(RequestError("GET / HTTP/1.1\r\nHost: a\n") == 400);
  CHECK(RequestError("GET / HTTP/1.1\r\nHost: a\rX") == 400);
}

TEST_CASE("Every control character but tab is refused anywhere in a value") {
  // Positions cover both the 8-byte and the tail loop of the value check.
  const std::string value = "abcdefghijklmnopqrstuvw";
  for (size_t pos = 0; pos < value.size(); ++pos) {
    for (int c = 0; c < 256; ++c) {
      std::string v = value;
      v[pos] = static_cast<char>(c);
      std::string data = Get("Host: a\r\nX-V: " + v + "\r\n");
      Parsed p = Request(data);
      const bool allowed = c == '\t' || (c >= 0x20 && c != 0x7f);
      INFO("pos " << pos << " byte " << c);
      if (allowed) {
        REQUIRE(p.status == ParseStatus::kDone);
        std::string_view got;
        REQUIRE(p.head.Find("x-v", &got));
        // Only the ends are trimmed.
        const bool ws = c == ' ' || c == '\t';
        CHECK(got.size() == (ws && (pos == 0 || pos == v.size() - 1) ? v.size() - 1 : v.size()));
      } else {
        REQUIRE(p.status == ParseStatus::kError);
        CHECK(p.error.status == 400);
      }
    }
  }
}

TEST_CASE("Targets refuse SP and control characters at every position") {
  const std::string target = "/abcdefghijklmnopqrstu";
  for (size_t pos = 1; pos < target.size(); ++pos) {
    for (int c : {0x00, 0x01, 0x09, 0x0b, 0x1f, 0x20, 0x7f}) {
      std::string t = target;
      t[pos] = static_cast<char>(c);
      INFO("pos " << pos << " byte " << c);
      CHECK(RequestError("GET " + t + " HTTP/1.1\r\nHost: a\r\n\r\n") == 400);
    }
    std::string t = target;
    t[pos] = '\x80';
    CHECK(RequestError("GET " + t + " HTTP/1.1\r\nHost: a\r\n\r\n") == 0);
  }
}

TEST_CASE("Heads over the size limit get 431") {
  Limits limits;
  limits.max_head_bytes = 64;
  const std::string head = "GET / HTTP/1.1\r\nHost: a\r\n";  // 26 bytes
  auto with_value = [&](size_t total) {
    // A head of exactly `total` bytes.
    std::string data = head + "X: ";
    data += std::string(total - data.size() - 4, 'v') + "\r\n\r\n";
    REQUIRE(data.size() == total);
    return data;
  };

  SECTION("a head of exactly the limit parses, one byte more does not") {
    std::string fits = with_value(64);
    CHECK(Request(fits, limits).status == ParseStatus::kDone);
    CHECK(Request(fits + "pipelined bytes beyond the limit", limits).status == ParseStatus::kDone);
    CHECK(RequestError(with_value(65), limits) == 431);
    CHECK(RequestError(with_value(1000), limits) == 431);
  }
  SECTION("an incomplete head is refused once it reaches the limit") {
    std::string partial = head + "X: " + std::string(100, 'v');
    CHECK(Request(partial.substr(0, 63), limits).status == ParseStatus::kIncomplete);
    CHECK(RequestError(partial.substr(0, 64), limits) == 431);
    CHECK(RequestError(partial, limits) == 431);
  }
  SECTION("leading empty lines count") {
    std::string data = std::string(40, '\r');
    for (size_t i = 1; i < data.size(); i += 2) data[i] = '\n';
    CHECK(RequestError(data + head + "\r\n", limits) == 431);
  }
  SECTION("default limit") {
    std::string data = head + "Cookie: " + std::string(60 * 1024, 'c') + "\r\n\r\n";
    CHECK(RequestError(data) == 431);
    CHECK(RequestError(data.substr(0, 60 * 1024)) == 431);
    CHECK(Request(data.substr(0, 60 * 1024 - 1)).status == ParseStatus::kIncomplete);
  }
}

TEST_CASE("More than max_headers headers get 431") {
  Limits limits;
  limits.max_headers = 4;
  std::string data = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n";
  CHECK(Request(data + "\r\n", limits).status == ParseStatus::kDone);
  CHECK(RequestError(data + "D: 4\r\n\r\n", limits) == 431);
  std::string many = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; i < 100; ++i) many += "X: y\r\n";
  CHECK(RequestError(many + "\r\n") == 431);
}

TEST_CASE("Keep-alive follows the version and the Connection header") {
  struct Case {
    std::string_view version;
    std::string_view headers;
    bool keep_alive;
  };
  for (const Case& c : std::vector<Case>{
           {"HTTP/1.1", "", true},
           {"HTTP/1.1", "Connection: close\r\n", false},
           {"HTTP/1.1", "Connection: Close\r\n", false},
           {"HTTP/1.1", "Connection: foo, CLOSE\r\n", false},
           {"HTTP/1.1", "Connection: keep-alive\r\n", true},
           {"HTTP/1.1", "Connection: closed\r\n", true},
           {"HTTP/1.1", "Connection: te\r\nConnection: close\r\n", false},
           {"HTTP/1.0", "", false},
           {"HTTP/1.0", "Connection: keep-alive\r\n", true},
           {"HTTP/1.0", "Connection: Keep-Alive\r\n", true},
           {"HTTP/1.0", "Connection: keep-alive, close\r\n", false},
           {"HTTP/1.0", "Connection: close\r\n", false},
       }) {
    INFO(c.version << " " << c.headers);
    Parsed p = Request(Get("Host: a\r\n" + std::string(c.headers), c.version));
    REQUIRE(p.status == ParseStatus::kDone);
    CHECK(p.head.version_minor == (c.version == "HTTP/1.0" ? 0 : 1));
    CHECK(p.head.keep_alive == c.keep_alive);
  }
  // HTTP/1.0 needs no Host.
  Parsed p = Request("GET / HTTP/1.0\r\n\r\n");
  REQUIRE(p.status == ParseStatus::kDone);
  CHECK(p.head.host.empty());
  CHECK_FALSE(p.head.keep_alive);
}

TEST_CASE("ConnectionOptions lists what every Connection header names") {
  // The head's views point into the data: keep it alive.
  const std::string data =
      Get("Connection: close, X-A ,, x-b\r\nX-A: 1\r\nconnection: x-c\r\nHost: h\r\n");
  Parsed p = Request(data);
  REQUIRE(p.status == ParseStatus::kDone);
  CHECK(p.head.connection_options);
  std::vector<std::string_view> names;
  ConnectionOptions(p.head, &names);
  CHECK(names == std::vector<std::string_view>{"close", "X-A", "x-b", "x-c"});
  // Only close, keep-alive and upgrade: nothing more to look up.
  const std::string plain = Get("Connection: keep-alive, Upgrade\r\nHost: h\r\n");
  p = Request(plain);
  REQUIRE(p.status == ParseStatus::kDone);
  CHECK_FALSE(p.head.connection_options);
  names.clear();
  ConnectionOptions(p.head, &names);
  CHECK(names.empty());
}

TEST_CASE("Upgrade needs both the Connection token and the Upgrade header, in HTTP/1.1") {
  auto upgrade = [](std::string_view headers, std::string_view version = "HTTP/1.1") {
    Parsed p = Request(Get("Host: a\r\n" + std::string(headers), version));
    REQUIRE(p.status == ParseStatus::kDone);
    return p.head.upgrade;
  };
  CHECK(upgrade("Connection: Upgrade\r\nUpgrade: websocket\r\n"));
  CHECK(upgrade("Connection: keep-alive, upgrade\r\nUpgrade: h2c\r\n"));
  CHECK_FALSE(upgrade("Upgrade: websocket\r\n"));
  CHECK_FALSE(upgrade("Connection: upgrade\r\n"));
  CHECK_FALSE(upgrade("Connection: upgrade\r\nUpgrade:\r\n"));
  CHECK_FALSE(upgrade("Connection: upgrade\r\nUpgrade: websocket\r\n", "HTTP/1.0"));
}

TEST_CASE("Expect: 100-continue is noted for HTTP/1.1 only") {
  auto expect = [](std::string_view headers, std::string_view version = "HTTP/1.1") {
    Parsed p = Request(Get("Host: a\r\nContent-Length: 3\r\n" + std::string(headers), version));
    REQUIRE(p.status == ParseStatus::kDone);
    return p.head.expect_continue;
  };
  CHECK(expect("Expect: 100-continue\r\n"));
  CHECK(expect("expect: 100-Continue \r\n"));
  CHECK_FALSE(expect(""));
  CHECK_FALSE(expect("Expect: 200-ok\r\n"));
  CHECK_FALSE(expect("Expect: 100-continue\r\n", "HTTP/1.0"));
}

// ---------------------------------------------------------------------------------------------
// Responses

TEST_CASE("Response bodies: length, chunked, until close") {
  Parsed p = Response("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
  REQUIRE(p.status == ParseStatus::kDone);
  CHECK(p.head.status == 200);
  CHECK(p.head.reason == "OK");
  CHECK(p.head.body == BodyKind::kContentLength);
  CHECK(p.head.content_length == 5);
  CHECK(p.head.keep_alive);
  CHECK(p.head.head_size == 38);

  p = Response("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  REQUIRE(p.status == ParseStatus::kDone);
  CHECK(p.head.body == BodyKind::kNone);
  CHECK(p.head.keep_alive);

  p = Response("HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n");
  REQUIRE(p.status == ParseStatus::kDone);
  CHECK(p.head.status == 404);
  CHECK(p.head.reason == "Not Found");
  CHECK(p.head.body == BodyKind::kChunked);

  p = Response("HTTP/1.1 200 OK\r\nServer: x\r\n\r\n");
  REQUIRE(p.status == ParseStatus::kDone);
  CHECK(p.head.body == BodyKind::kUntilClose);
  CHECK_FALSE(p.head.keep_alive);

  p = Response("HTTP/1.0 200 OK\r\n\r\n");
  REQUIRE(p.status == ParseStatus::kDone);
  CHECK(p.head.version_minor == 0);
  CHECK(p.head.body == BodyKind::kUntilClose);
  CHECK_FALSE(p.head.keep_alive);

  p = Response("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n");
  REQUIRE(p.status == ParseStatus::kDone);
  CHECK(p.head.body == BodyKind::kContentLength);
  CHECK(p.head.keep_alive);

  p = Response("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n");
  REQUIRE(p.status == ParseStatus::kDone);
  CHECK_FALSE(p.head.keep_alive);
}

TEST_CASE("Bodiless responses: HEAD, 1xx, 204, 304, 2xx to CONNECT") {
  struct Case {
    std::string_view method;
    std::string_view data;
  };
  for (const Case& c : std::vector<Case>{
           {"HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"},
           {"HEAD", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"},
           {"HEAD", "HTTP/1.1 200 OK\r\n\r\n"},
           {"GET", "HTTP/1.1 204 No Content\r\n\r\n"},
           {"GET", "HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\n\r\n"},
           {"GET", "HTTP/1.1 100 Continue\r\n\r\n"},
           {"GET", "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"},
           {"CONNECT", "HTTP/1.1 200 Connection Established\r\n\r\n"},
           {"CONNECT", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"},
       }) {
    INFO(c.method << " " << c.data);
    Parsed p = Response(c.data, c.method);
    REQUIRE(p.status == ParseStatus::kDone);
    CHECK(p.head.body == BodyKind::kNone);
    CHECK(p.head.keep_alive);
    CHECK(p.head.head_size == c.data.size());
  }
  // Only 2xx to CONNECT opens a tunnel; a refusal has an ordinary body.
  Parsed p = Response("HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 3\r\n\r\n",
                      "CONNECT");
  REQUIRE(p.status == ParseStatus::kDone);
  CHECK(p.head.body == BodyKind::kContentLength);
}

TEST_CASE("An interim 100 Continue is followed by the final response in the same buffer") {
  const std::string interim = "HTTP/1.1 100 Continue\r\n\r\n";
  const std::string data = interim + "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
  Parsed p = Response(data, "POST");
  REQUIRE(p.status == ParseStatus::kDone);
  CHECK(p.head.status == 100);
  CHECK(p.head.body == BodyKind::kNone);
  REQUIRE(p.head.head_size == interim.size());
  Parsed q = Response(std::string_view(data).substr(p.head.head_size), "POST");
  REQUIRE(q.status == ParseStatus::kDone);
  CHECK(q.head.status == 201);
  CHECK(q.head.body == BodyKind::kContentLength);
  CHECK(q.head.head_size + 2 == data.size() - interim.size());
}

TEST_CASE("101 Switching Protocols carries the upgrade") {
  Parsed p = Response(
      "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
  REQUIRE(p.status == ParseStatus::kDone);
  CHECK(p.head.upgrade);
  CHECK(p.head.body == BodyKind::kNone);
}

TEST_CASE("Status lines: reason may be empty, with or without its space") {
  for (std::string_view line : {"HTTP/1.1 200 \r\n", "HTTP/1.1 200\r\n"}) {
    Parsed p = Response(std::string(line) + "Content-Length: 0\r\n\r\n");
    REQUIRE(p.status == ParseStatus::kDone);
    CHECK(p.head.status == 200);
    CHECK(p.head.reason.empty());
  }
  Parsed p = Response("HTTP/1.1 599 Some  custom\treason \xc3\xa9\r\n\r\n");
  REQUIRE(p.status == ParseStatus::kDone);
  CHECK(p.head.status == 599);
  CHECK(p.head.reason == "Some  custom\treason \xc3\xa9");
}

TEST_CASE("Malformed responses are refused") {
  struct Case {
    std::string_view data;
    int status;
  };
  for (const Case& c : std::vector<Case>{
           {"HTTP/1.1 099 X\r\n\r\n", 400},
           {"HTTP/1.1 600 X\r\n\r\n", 400},
           {"HTTP/1.1 20 X\r\n\r\n", 400},
           {"HTTP/1.1 2000\r\n\r\n", 400},
           {"HTTP/1.1 20x OK\r\n\r\n", 400},
           {"HTTP/1.1  200 OK\r\n\r\n", 400},
           {"HTTP/1.1\r\n\r\n", 400},
           {"HTTP/1.1 200 O\x01K\r\n\r\n", 400},
           {"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", 400},
           {"HTTP/2 200\r\n\r\n", 400},
           {"http/1.1 200 OK\r\n\r\n", 400},
           {"ICY 200 OK\r\n\r\n", 400},
           {"HTTP/1.2 200 OK\r\n\r\n", 505},
           {"\r\nHTTP/1.1 200 OK\r\n\r\n", 400},
           {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
           {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400},
           {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
           {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400},
           {"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
           {"HTTP/1.1 200 OK\r\nX : y\r\n\r\n", 400},
           {"HTTP/1.1 200 OK\r\nX: y\r\n z\r\n\r\n", 400},
       }) {
    INFO(c.data);
    CHECK(ResponseError(c.data) == c.status);
  }
}

TEST_CASE("A response that cannot become HTTP is refused from its first bytes") {
  for (std::string_view data : {"xyz", "NOT HTTP", "SSH-2.0-Open", "HTTX", "http/1.1 200"}) {
    INFO(data);
    CHECK(ResponseError(data) == 400);
  }
  for (std::string_view data : {"", "H", "HTT", "HTTP/", "HTTP/1.1 2"}) {
    INFO(data);
    CHECK(Response(data).status == ParseStatus::kIncomplete);
  }
}

TEST_CASE("Every prefix of a response is incomplete until the head ends") {
  const std::string head =
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
      "Transfer-Encoding: chunked\r\n\r\n";
  const std::string data = head + "5\r\nhello\r\n0\r\n\r\n";
  for (size_t n = 0; n <= data.size(); ++n) {
    INFO("prefix " << n);
    Parsed p = Response(std::string_view(data).substr(0, n));
    if (n < head.size()) {
      REQUIRE(p.status == ParseStatus::kIncomplete);
    } else {
      REQUIRE(p.status == ParseStatus::kDone);
      CHECK(p.head.head_size == head.size());
      CHECK(p.head.body == BodyKind::kChunked);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Chunked bodies

struct ScanResult {
  ChunkedScanner::Result result = ChunkedScanner::Result::kMore;
  size_t consumed = 0;  // over all pieces, when kDone
  uint64_t payload = 0;
};

// Feeds `data` split at the given increasing positions, stopping at the first non-kMore result.
ScanResult ScanPieces(std::string_view data, const std::vector<size_t>& cuts,
                      size_t max_trailer_bytes = 60 * 1024) {
  ChunkedScanner scanner(max_trailer_bytes);
  ScanResult r;
  size_t start = 0;
  std::vector<size_t> ends = cuts;
  ends.push_back(data.size());
  for (size_t end : ends) {
    size_t consumed = 0;
    r.result = scanner.Scan(data.substr(start, end - start), &consumed);
    if (r.result == ChunkedScanner::Result::kMore) REQUIRE(consumed == end - start);
    if (r.result != ChunkedScanner::Result::kMore) {
      r.consumed = start + consumed;
      break;
    }
    start = end;
  }
  r.payload = scanner.payload_bytes();
  return r;
}

ScanResult ScanWhole(std::string_view data, size_t max_trailer_bytes = 60 * 1024) {
  return ScanPieces(data, {}, max_trailer_bytes);
}

const std::string kChunkedBody =
    "5;name=value;q=\"quoted ext\"\r\nhello\r\n"
    "1A\r\nabcdefghijklmnopqrstuvwxyz\r\n"
    "b\r\nhello world\r\n"
    "0;last\r\n"
    "X-Checksum: abc\r\n"
    "Server-Timing: db;dur=53\r\n"
    "\r\n";
constexpr uint64_t kChunkedPayload = 5 + 26 + 11;

TEST_CASE("Chunked: extensions, trailers, and what follows the body") {
  const std::string data = kChunkedBody + "GET /next HTTP/1.1\r\n";
  ScanResult r = ScanWhole(data);
  REQUIRE(r.result == ChunkedScanner::Result::kDone);
  CHECK(r.consumed == kChunkedBody.size());
  CHECK(r.payload == kChunkedPayload);

  r = ScanWhole("0\r\n\r\n");
  REQUIRE(r.result == ChunkedScanner::Result::kDone);
  CHECK(r.consumed == 5);
  CHECK(r.payload == 0);

  r = ScanWhole("0000000000000003\r\nabc\r\n0\r\n\r\nX");
  REQUIRE(r.result == ChunkedScanner::Result::kDone);
  CHECK(r.consumed == 28);
  CHECK(r.payload == 3);
}

TEST_CASE("Chunked: any split into two pieces, and byte by byte, gives the same answer") {
  const std::string data = kChunkedBody + "NEXT";
  for (size_t cut = 0; cut <= data.size(); ++cut) {
    INFO("cut " << cut);
    ScanResult r = ScanPieces(data, {cut});
    REQUIRE(r.result == ChunkedScanner::Result::kDone);
    CHECK(r.consumed == kChunkedBody.size());
    CHECK(r.payload == kChunkedPayload);
  }
  std::vector<size_t> every;
  for (size_t i = 1; i < data.size(); ++i) every.push_back(i);
  ScanResult r = ScanPieces(data, every);
  REQUIRE(r.result == ChunkedScanner::Result::kDone);
  CHECK(r.consumed == kChunkedBody.size());
  CHECK(r.payload == kChunkedPayload);
}

TEST_CASE("Chunked: a large chunk in many reads") {
  const size_t size = 1 << 20;
  ChunkedScanner scanner;
  size_t consumed = 0;
  REQUIRE(scanner.Scan("100000\r\n", &consumed) == ChunkedScanner::Result::kMore);
  CHECK(consumed == 8);
  const std::string block(4096, 'x');
  for (size_t sent = 0; sent < size; sent += block.size()) {
    REQUIRE(scanner.Scan(block, &consumed) == ChunkedScanner::Result::kMore);
    CHECK(consumed == block.size());
  }
  CHECK(scanner.payload_bytes() == size);
  REQUIRE(scanner.Scan("\r\n0\r\n\r\nrest", &consumed) == ChunkedScanner::Result::kDone);
  CHECK(consumed == 7);
}

TEST_CASE("Chunked: malformed bodies are refused wherever they are split") {
  struct Case {
    const char* name;
    std::string data;
    size_t max_trailer_bytes = 60 * 1024;
  };
  const std::vector<Case> cases = {
      {"no size", "\r\nhello\r\n0\r\n\r\n"},
      {"bad hex", "5g\r\nhello\r\n0\r\n\r\n"},
      {"not hex", "x\r\n"},
      {"sign", "+5\r\nhello\r\n0\r\n\r\n"},
      {"negative", "-5\r\nhello\r\n0\r\n\r\n"},
      {"0x prefix", "0x5\r\nhello\r\n0\r\n\r\n"},
      {"space before size", " 5\r\nhello\r\n0\r\n\r\n"},
      {"space after size", "5 \r\nhello\r\n0\r\n\r\n"},
      {"space before extension", "5 ;a=b\r\nhello\r\n0\r\n\r\n"},
      {"17 digits", "00000000000000005\r\nhello\r\n0\r\n\r\n"},
      {"overflow", "10000000000000000\r\nhello\r\n0\r\n\r\n"},
      {"2^63", "8000000000000000\r\n"},
      {"2^64 - 1", "ffffffffffffffff\r\n"},
      {"bare LF after size", "5\nhello\r\n0\r\n\r\n"},
      {"bare CR after size", "5\rhello\r\n0\r\n\r\n"},
      {"bare LF after extension", "5;a\nhello\r\n0\r\n\r\n"},
      {"CTL in extension", "5;a\x01\r\nhello\r\n0\r\n\r\n"},
      {"data too long", "5\r\nhelloX\r\n0\r\n\r\n"},
      {"data too short", "5\r\nhell\r\n0\r\n\r\n"},
      {"bare LF after data", "5\r\nhello\n0\r\n\r\n"},
      {"missing LF after data", "5\r\nhello\r0\r\n\r\n"},
      {"bare LF after last chunk", "0\n\r\n"},
      {"bare LF ending trailer", "0\r\nX: a\n\r\n"},
      {"bare LF final", "0\r\n\n"},
      {"bare CR final", "0\r\n\rX"},
      {"obs-fold in trailer", "0\r\nX: a\r\n b\r\n\r\n"},
      {"CTL in trailer", "0\r\nX: a\x7f\r\n\r\n"},
      {"NUL in trailer", "0\r\nX: \0\r\n\r\n"s},
      {"long extension", "5;" + std::string(5000, 'e') + "\r\nhello\r\n0\r\n\r\n"},
      // Found by the differential test against llhttp (tests/differential): extensions and
      // trailer lines outside the grammar were passed on; a strict next hop refuses them and a
      // lenient one may read them its own way.
      {"space inside extension name", "0;kikk 3\r\n\r\n"},
      {"empty extension name", "5;\r\nhello\r\n0\r\n\r\n"},
      {"extension name not a token", "5;a@b\r\nhello\r\n0\r\n\r\n"},
      {"extension without value", "5;a=\r\nhello\r\n0\r\n\r\n"},
      {"extension value not a token", "5;a=b/c\r\nhello\r\n0\r\n\r\n"},
      {"unterminated quoted extension", "5;a=\"b\r\nhello\r\n0\r\n\r\n"},
      {"text after quoted extension", "5;a=\"b\"c\r\nhello\r\n0\r\n\r\n"},
      {"trailer without colon", "0\r\nH\r\n\r\n"},
      {"trailer with empty name", "0\r\n: v\r\n\r\n"},
      {"trailer name not a token", "0\r\n/u\x9b: v\r\n\r\n"},
      {"space before trailer colon", "0\r\nX : v\r\n\r\n"},
      {"long trailers", "0\r\nX: " + std::string(100, 't') + "\r\nY: z\r\n\r\n", 64},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    REQUIRE(ScanWhole(c.data, c.max_trailer_bytes).result == ChunkedScanner::Result::kError);
    for (size_t cut = 0; cut <= c.data.size(); ++cut) {
      INFO("cut " << cut);
      REQUIRE(ScanPieces(c.data, {cut}, c.max_trailer_bytes).result ==
              ChunkedScanner::Result::kError);
    }
  }
  // The default bound.
  CHECK(ScanWhole("0\r\nX: " + std::string(60 * 1024, 't') + "\r\n\r\n").result ==
        ChunkedScanner::Result::kError);
}

TEST_CASE("Chunked: extensions in every form the grammar allows") {
  for (std::string ext : {";a", ";a=b", ";a = b", "; a", ";a;b=c;d", ";a=\"q \\\" ;=\"", ";a=\"\"",
                          ";a=b ;c", ";a\t=\t\"x\"\t"}) {
    INFO(ext);
    CHECK(ScanWhole("5" + ext + "\r\nhello\r\n0" + ext + "\r\nX-T: v\r\nE:\r\n\r\n").result ==
          ChunkedScanner::Result::kDone);
  }
}

TEST_CASE("Chunked: bounds are inclusive") {
  // 16 digits is the most accepted; 2^63 - 1 is the largest size.
  CHECK(ScanWhole("7fffffffffffffff\r\n").result == ChunkedScanner::Result::kMore);
  CHECK(ScanWhole("5;" + std::string(4096, 'e') + "\r\nhello\r\n0\r\n\r\n").result ==
        ChunkedScanner::Result::kDone);
  // Trailer bytes are the field lines with their CRLFs.
  const std::string trailer = "0\r\nX: abc\r\n\r\n";
  CHECK(ScanWhole(trailer, 8).result == ChunkedScanner::Result::kDone);
  CHECK(ScanWhole(trailer, 7).result == ChunkedScanner::Result::kError);
  CHECK(ScanWhole("0\r\n\r\n", 0).result == ChunkedScanner::Result::kDone);
}

TEST_CASE("Chunked: a finished or failed scanner stays so until Reset") {
  ChunkedScanner scanner;
  size_t consumed = 99;
  REQUIRE(scanner.Scan("", &consumed) == ChunkedScanner::Result::kMore);
  CHECK(consumed == 0);
  REQUIRE(scanner.Scan("3\r\nabc\r\n0\r\n\r\n", &consumed) == ChunkedScanner::Result::kDone);
  CHECK(consumed == 13);
  CHECK(scanner.Scan("more", &consumed) == ChunkedScanner::Result::kDone);
  CHECK(consumed == 0);

  scanner.Reset();
  CHECK(scanner.payload_bytes() == 0);
  REQUIRE(scanner.Scan("z\r\n", &consumed) == ChunkedScanner::Result::kError);
  CHECK(scanner.Scan("0\r\n\r\n", &consumed) == ChunkedScanner::Result::kError);

  scanner.Reset();
  REQUIRE(scanner.Scan("2\r\nab\r\n0\r\n\r\n", &consumed) == ChunkedScanner::Result::kDone);
  CHECK(scanner.payload_bytes() == 2);
}

// ---------------------------------------------------------------------------------------------
// Helpers

TEST_CASE("IsHopByHop") {
  for (std::string_view name : {"Connection", "keep-alive", "Proxy-Connection", "TE", "Trailer",
                                "transfer-encoding", "UPGRADE"}) {
    INFO(name);
    CHECK(IsHopByHop(name));
  }
  for (std::string_view name : {"Content-Length", "Host", "Trailers", "T", "", "Keep-Alivex",
                                "Upgrade-Insecure-Requests"}) {
    INFO(name);
    CHECK_FALSE(IsHopByHop(name));
  }
}

TEST_CASE("EqualsIgnoreCase folds ASCII letters only") {
  CHECK(EqualsIgnoreCase("Content-Length", "content-LENGTH"));
  CHECK(EqualsIgnoreCase("", ""));
  CHECK_FALSE(EqualsIgnoreCase("a", "ab"));
  CHECK_FALSE(EqualsIgnoreCase("@", "`"));  // differ only in bit 0x20
  CHECK_FALSE(EqualsIgnoreCase("[", "{"));
  CHECK_FALSE(EqualsIgnoreCase("\xc3\xa9", "\xc3\x89"));
}

TEST_CASE("ReasonPhrase") {
  using weft::http::ReasonPhrase;
  CHECK(ReasonPhrase(100) == "Continue");
  CHECK(ReasonPhrase(200) == "OK");
  CHECK(ReasonPhrase(206) == "Partial Content");
  CHECK(ReasonPhrase(308) == "Permanent Redirect");
  CHECK(ReasonPhrase(400) == "Bad Request");
  CHECK(ReasonPhrase(404) == "Not Found");
  CHECK(ReasonPhrase(431) == "Request Header Fields Too Large");
  CHECK(ReasonPhrase(501) == "Not Implemented");
  CHECK(ReasonPhrase(505) == "HTTP Version Not Supported");
  CHECK(ReasonPhrase(299) == "Unknown");
  CHECK(ReasonPhrase(0) == "Unknown");
}

}  // namespace
}  // namespace weft::http1
