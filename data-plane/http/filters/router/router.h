// The router: the terminal HTTP filter (envoy.filters.http.router). Route -> cluster -> host ->
// pool -> upstream stream, and the response back through the filter callbacks.
//
//  - Local answers: no route (404 NR), no cluster (cluster_not_found_response_code, NC), no
//    healthy host (503 UH), connect failure (503 UF), upstream closed or reset before the
//    response (503 UC), a bad response (502 UPE), timeout (504 UT), each with a one-line body
//    naming the cause; URX is added when retries ran out. Direct responses and redirects are
//    answers of the route, not errors.
//  - The upstream request: path rewrite, host rewrite (literal, from a header, from the path,
//    auto), x-request-id, x-forwarded-proto, the route's header mutations; the request's hash
//    key from every hash policy kind (header, cookie, source IP, query parameter; terminal),
//    computed once so a retry keeps it.
//  - Retries (retry_policy.retry_on): connect-failure, reset, reset-before-request, 5xx,
//    gateway-error, retriable-4xx, retriable-status-codes, up to num_retries, with Envoy's
//    jittered back-off (base 25 ms, max 250 ms, rounded up to the worker's tick), per-try
//    timeouts, each retry on another host where the cluster has one (ring hash and Maglev move
//    along the ring for the same key). Only a request whose body the router still holds whole
//    (up to 64 KiB) is retried. Separately, a request whose reused pooled connection closed
//    before any response is replayed once on a fresh connection when its method is idempotent
//    (RFC 9110 §9.2.2).
//  - Timeouts: the route's `timeout` (from the request's start to the response's headers),
//    retry_policy.per_try_timeout (per attempt).
//  - Flow control both ways: a client that reads slowly pauses the upstream, an upstream that
//    reads a body slowly pauses the client.
#pragma once

#include <memory>

#include "data-plane/http/filter.h"

namespace weft::http {

// The body of each local answer the router gives, one line each.
namespace local_reply {
inline constexpr std::string_view kNoRoute = "no route matched the request\n";
inline constexpr std::string_view kNoRouteTable = "no route configuration\n";
inline constexpr std::string_view kNoCluster = "no such cluster\n";
inline constexpr std::string_view kNoHealthyUpstream = "no healthy upstream\n";
inline constexpr std::string_view kConnectFailure = "upstream connect error\n";
inline constexpr std::string_view kConnectTimeout = "upstream connect timeout\n";
inline constexpr std::string_view kOverflow = "upstream overflow\n";
inline constexpr std::string_view kClosed = "upstream closed the connection before responding\n";
inline constexpr std::string_view kReset = "upstream reset the request before responding\n";
inline constexpr std::string_view kBadResponse = "upstream sent an invalid response\n";
inline constexpr std::string_view kTimeout = "upstream request timeout\n";
inline constexpr std::string_view kPerTryTimeout = "upstream per-try timeout\n";
inline constexpr std::string_view kBadUpgrade = "upstream answered an upgrade nobody asked for\n";
}  // namespace local_reply

std::shared_ptr<const FilterFactory> NewRouterFilterFactory();

}  // namespace weft::http
