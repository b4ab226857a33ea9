#!/usr/bin/env python3
"""Writes the hand-made seed inputs of the HTTP/1, admin and gRPC framing fuzz targets into
fuzz/corpus/<target>/. Each seed is a case a parser must get right: the usual shapes plus the
known smuggling and framing traps. Re-running rewrites the same files."""
import hashlib
import os
import struct
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "corpus")

REQUESTS = {
    "get": b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "pipelined": b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nPOST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /c HTTP/1.1\r\nHost: a\r\n\r\n",
    "chunked": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nTrailer-A: x\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "cl_te": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te_gzip_chunked": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    "te_chunked_gzip": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
    "te_twice": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te_case_space": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  Chunked \r\n\r\n0\r\n\r\n",
    "te_vtab": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n",
    "cl_dup_same": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
    "cl_dup_diff": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    "cl_list": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc",
    "cl_plus": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc",
    "cl_hex": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x3\r\n\r\nabc",
    "cl_huge": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
    "cl_leading_zero": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 003\r\n\r\nabc",
    "obs_fold": b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
    "space_before_colon": b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length : 3\r\n\r\nabc",
    "bare_lf": b"GET / HTTP/1.1\nHost: a\n\n",
    "bare_cr": b"GET / HTTP/1.1\rHost: a\r\n\r\n",
    "nul_value": b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n",
    "http10_keepalive": b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n",
    "http10_te": b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "upgrade": b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x05hello",
    "connect": b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n\x16\x03\x01",
    "absolute_form": b"GET http://a/b?c HTTP/1.1\r\nHost: a\r\n\r\n",
    "leading_crlf": b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "expect": b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
    "chunk_leading_zeros": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n00000000000000005\r\nhello\r\n0\r\n\r\n",
    "chunk_overflow": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF\r\n",
    "chunk_0x": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
    "chunk_space": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n",
    "chunk_lf_only": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n",
    "chunk_no_crlf_after_data": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhelloX\r\n0\r\n\r\n",
    "no_host": b"GET / HTTP/1.1\r\n\r\n",
    "two_hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "h2_preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "version_2": b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
    "version_lower": b"GET / http/1.1\r\nHost: a\r\n\r\n",
    "double_space": b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
    "tab_in_line": b"GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n",
    "post_no_length": b"POST / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "utf8_target": b"GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n",
    "header_no_value": b"GET / HTTP/1.1\r\nHost: a\r\nX:\r\n\r\n",
    "header_empty_name": b"GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n",
    "long_header": b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 5000 + b"\r\n\r\n",
    "many_headers": b"GET / HTTP/1.1\r\nHost: a\r\n" + b"".join(b"X%d: y\r\n" % i for i in range(120)) + b"\r\n",
    "connection_close": b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "method_lower": b"get / HTTP/1.1\r\nHost: a\r\n\r\n",
    "asterisk": b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
}

RESPONSES = {  # first byte: request method (0 GET, 1 HEAD, 2 POST, 3 CONNECT)
    "ok_cl": b"\0HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 204 No Content\r\n\r\n",
    "chunked": b"\0HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    "until_close": b"\0HTTP/1.1 200 OK\r\n\r\nbody until close",
    "http10": b"\0HTTP/1.0 200 OK\r\n\r\nbody",
    "no_content_with_cl": b"\0HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
    "not_modified": b"\0HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
    "continue_then_ok": b"\2HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    "head": b"\1HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n",
    "connect_ok": b"\3HTTP/1.1 200 Connection established\r\n\r\n\x16\x03",
    "switching": b"\0HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n\x81",
    "cl_te": b"\0HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "bad_status": b"\0HTTP/1.1 2000 OK\r\n\r\n",
    "no_reason": b"\0HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
    "te_gzip": b"\0HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxxxx",
    "status_only": b"\0HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found",
}

CHUNKED = {  # first byte seeds the read splits
    "simple": b"\x01" + b"5\r\nhello\r\n0\r\n\r\n",
    "ext_trailers": b"\x07" + b"3;a=b;c\r\nabc\r\n0\r\nX-T: 1\r\nY: 2\r\n\r\nNEXT",
    "many": b"\x13" + b"".join(b"1\r\n%c\r\n" % (65 + i) for i in range(20)) + b"0\r\n\r\n",
    "upper_hex": b"\x02" + b"A\r\n0123456789\r\n0\r\n\r\n",
    "overflow": b"\x05" + b"10000000000000000\r\n",
    "bad_cr": b"\x09" + b"1\r\nab\r\n",
    "quoted_ext": b"\x0b" + b"1;a=\"x\\\"y\"\r\na\r\n0\r\n\r\n",
}

ADMIN = {
    "get": b"GET /stats?format=json&filter=a%20b HTTP/1.1\r\nHost: x\r\n\r\n",
    "post": b"POST /logging?level=debug HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    "pipelined": b"GET /ready HTTP/1.1\r\n\r\nHEAD /clusters HTTP/1.0\r\n\r\nPOST /healthcheck/fail HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
    "expect": b"POST /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbody",
    "chunked": b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "absolute": b"GET http://h:1/config_dump?x=%zz+y HTTP/1.1\r\n\r\n",
    "lf_only": b"GET / HTTP/1.1\nA: b\n\n",
    "origin": b"POST /logging HTTP/1.1\r\nHost: a\r\nOrigin: http://evil\r\nContent-Length: 0\r\n\r\n",
}


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field(num, payload):  # length-delimited field
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def frame(msg, compressed=0):
    return bytes([compressed]) + struct.pack(">I", len(msg)) + msg


def discovery_response(version, type_url, nonce, resources=()):
    body = field(1, version) + field(4, type_url) + field(5, nonce)
    for url, value in resources:
        body += field(2, field(1, url) + field(2, value))
    return body


CLA = b"type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
GRPC = {  # first byte: split seed; odd picks the 64 MiB limit, even a 256-byte one
    "one": b"\x01" + frame(discovery_response(b"1", CLA, b"n1", [(CLA, field(1, b"echo"))])),
    "two": b"\x03" + frame(discovery_response(b"1", CLA, b"a")) + frame(discovery_response(b"2", CLA, b"b")),
    "empty_message": b"\x01" + frame(b""),
    "compressed": b"\x01" + frame(b"\x0a\x01x", 1),
    "too_large_small_limit": b"\x02" + frame(discovery_response(b"1", CLA, b"x" * 300)),
    "huge_length": b"\x01\x00\xff\xff\xff\xff",
    "garbage": b"\x01" + frame(b"\xff\xff\xff"),
    "partial": b"\x01" + frame(discovery_response(b"1", CLA, b"n"))[:-3],
    "grpc_message": b"\x01" + b"bad%20request%zz%4",
}


def write(target, seeds):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(d, "seed-" + name), "wb") as f:
            f.write(data)


def main():
    write("http1_request_fuzz", REQUESTS)
    write("http1_response_fuzz", RESPONSES)
    write("http1_chunked_fuzz", CHUNKED)
    write("admin_request_fuzz", ADMIN)
    write("grpc_frame_fuzz", GRPC)
    return 0


if __name__ == "__main__":
    sys.exit(main())
