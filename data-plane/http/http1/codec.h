// The HTTP/1.1 codec: data-plane/http1's strict parser behind the codec interfaces, and the one
// place HTTP/1 text is written (request and status lines, headers, chunked framing).
//
// Server side: one request at a time. A request's head becomes a RequestHeaderMap (an
// absolute-form target split into :path and :authority, which wins over Host, as RFC 9112
// §3.2.2 and Envoy say); its body streams as DecodeData (chunked bodies de-framed, trailers
// checked and dropped, as Envoy does by default). Pipelined bytes wait in the connection's
// buffer until the response is complete and the manager calls OnStreamComplete. Hop-by-hop
// headers, and every header the Connection header names, are removed in both directions
// (RFC 9110 §7.6.1); an upgrade request keeps its Upgrade header for the manager to judge.
//
// Client side: one stream per connection at a time; responses decoded likewise, 1xx dropped
// except a 101 the request asked for, after which the codec parses nothing (the connection is
// handed to a byte pump).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "data-plane/http/codec.h"
#include "data-plane/http1/http1.h"
#include "data-plane/network/connection.h"

namespace weft::http::http1 {

std::unique_ptr<ServerCodec> NewServerCodec(network::Connection& connection,
                                            ServerCodecCallbacks& callbacks,
                                            const weft::http1::Limits& limits);
std::unique_ptr<ClientCodec> NewClientCodec(network::Connection& connection);

// Copies a parsed head's headers into `map`, leaving out hop-by-hop headers and those the
// Connection header names. `keep_upgrade`: an upgrade request or 101 keeps "upgrade".
void CopyEndToEndHeaders(const weft::http1::MessageHead& head, bool keep_upgrade, HeaderMap* map);

}  // namespace weft::http::http1
