#include "tests/differential/http1_framing.h"

#include "data-plane/http1/http1.h"

namespace weft::http1 {
namespace {

// Consumes one message body starting at `at`; returns false when the stream ended (framing
// filled in).
bool SkipBody(std::string_view data, const MessageHead& head, size_t* at, Framing* framing) {
  switch (head.body) {
    case BodyKind::kNone:
      return true;
    case BodyKind::kContentLength:
      if (data.size() - *at < head.content_length) {
        framing->end = Framing::End::kIncomplete;
        return false;
      }
      *at += static_cast<size_t>(head.content_length);
      return true;
    case BodyKind::kChunked: {
      ChunkedScanner scanner;
      size_t consumed = 0;
      switch (scanner.Scan(data.substr(*at), &consumed)) {
        case ChunkedScanner::Result::kDone:
          *at += consumed;
          return true;
        case ChunkedScanner::Result::kMore:
          framing->end = Framing::End::kIncomplete;
          return false;
        case ChunkedScanner::Result::kError:
          framing->end = Framing::End::kRefused;
          framing->refusal_status = 400;
          framing->reason = "bad chunked body";
          return false;
      }
      return false;
    }
    case BodyKind::kUntilClose:
      framing->end = Framing::End::kUntilClose;
      return false;
  }
  return false;
}

template <typename ParseFn>
Framing Frame(std::string_view data, ParseFn parse, bool responses, bool connect = false) {
  Framing framing;
  size_t at = 0;
  Limits limits;
  while (true) {
    if (at == data.size()) {
      framing.end = Framing::End::kIncomplete;
      return framing;
    }
    MessageHead head;
    ParseError error;
    switch (parse(data.substr(at), limits, &head, &error)) {
      case ParseStatus::kIncomplete:
        framing.end = Framing::End::kIncomplete;
        return framing;
      case ParseStatus::kError:
        framing.end = Framing::End::kRefused;
        framing.refusal_status = error.status;
        framing.reason = std::string(error.reason);
        return framing;
      case ParseStatus::kDone:
        break;
    }
    at += head.head_size;
    // Methods are case-sensitive (RFC 9110 §9.1): "connect" is some other method.
    if (!responses && (head.upgrade || head.method == "CONNECT")) {
      // What follows depends on the upstream's answer; the head is where both must agree.
      framing.ends.push_back(at);
      framing.end = Framing::End::kTunnel;
      return framing;
    }
    if (!SkipBody(data, head, &at, &framing)) return framing;
    framing.ends.push_back(at);
    // A response to an upgrade (101), or a 2xx to CONNECT, ends HTTP on the connection, whatever
    // it says about keep-alive.
    if (responses && (head.status == 101 || (head.status / 100 == 2 && connect))) {
      framing.end = Framing::End::kTunnel;
      return framing;
    }
    if (!head.keep_alive) {
      framing.end = Framing::End::kClosed;
      return framing;
    }
  }
}

}  // namespace

std::string Framing::ToJson() const {
  std::string out = "{\"ends\":[";
  for (size_t i = 0; i < ends.size(); ++i) {
    if (i > 0) out += ',';
    out += std::to_string(ends[i]);
  }
  out += "],\"end\":\"";
  switch (end) {
    case End::kIncomplete:
      out += "incomplete";
      break;
    case End::kRefused:
      out += "refused";
      break;
    case End::kTunnel:
      out += "tunnel";
      break;
    case End::kUntilClose:
      out += "until_close";
      break;
    case End::kClosed:
      out += "closed";
      break;
  }
  out += "\"";
  if (end == End::kRefused) out += ",\"status\":" + std::to_string(refusal_status);
  out += "}";
  return out;
}

Framing FrameRequests(std::string_view data) {
  return Frame(
      data,
      [](std::string_view d, const Limits& l, MessageHead* h, ParseError* e) {
        return ParseRequestHead(d, l, h, e);
      },
      false);
}

Framing FrameResponses(std::string_view data, std::string_view request_method) {
  return Frame(
      data,
      [request_method](std::string_view d, const Limits& l, MessageHead* h, ParseError* e) {
        return ParseResponseHead(d, request_method, l, h, e);
      },
      true, request_method == "CONNECT");
}

}  // namespace weft::http1
