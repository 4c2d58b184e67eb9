"""Protocol and routing errors: status codes, the JSON error shape, and that a
rejected request changes nothing."""
import requests

from skvtest import TMUL, assert_error_shape, request_bytes

T = 5 * TMUL


def raw_one(server, data, head=False):
    """Sends data on a new connection and returns the one response."""
    with server.raw() as c:
        c.send(data)
        return c.read_response(head=head)


def raw_rejected(server, data):
    """Sends data; returns the response and checks the server then closes."""
    with server.raw() as c:
        c.send(data)
        r = c.read_response()
        assert r.headers.get("connection", "").lower() == "close", r
        assert c.closed_by_peer(3), "server kept the connection open after a framing error"
        return r


def test_unknown_route_404(server):
    r = requests.get(server.url("/no/such/route"), timeout=T)
    assert r.status_code == 404
    assert r.headers["Content-Type"] == "application/json"
    doc = assert_error_shape(r.content, code="not_found")
    assert set(doc) == {"error"} and set(doc["error"]) == {"code", "message"}


def test_405_has_allow(server):
    r = requests.post(server.url("/v1/kv/x"), data=b"v", timeout=T)
    assert r.status_code == 405
    allow = [m.strip() for m in r.headers["Allow"].split(",")]
    assert {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"} <= set(allow)
    assert "POST" not in allow
    assert_error_shape(r.content, code="method_not_allowed")
    assert requests.get(server.url("/v1/kv/x"), timeout=T).status_code == 404

    r = requests.put(server.url("/shards"), data=b"", timeout=T)
    assert r.status_code == 405 and "GET" in r.headers["Allow"]
    r = requests.get(server.url("/store"), timeout=T)
    assert r.status_code == 405 and "POST" in r.headers["Allow"]
    assert_error_shape(r.content)


def test_options_204_with_allow(server):
    for path, must in (("/v1/kv/k", {"GET", "PUT", "DELETE"}), ("/shards", {"GET"}), ("/store", {"POST"}),
                       ("/kv", {"GET", "PUT", "DELETE"})):
        r = requests.options(server.url(path), timeout=T)
        assert r.status_code == 204, (path, r.text)
        assert must <= {m.strip() for m in r.headers["Allow"].split(",")}, (path, r.headers)
        assert r.content == b""


def test_options_star(server):
    r = raw_one(server, b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n")
    assert r.status == 204
    assert "GET" in r.headers["allow"] and "PUT" in r.headers["allow"]
    assert "content-length" not in r.headers  # RFC 9110 8.6
    # "*" is only for OPTIONS.
    r = raw_rejected(server, b"GET * HTTP/1.1\r\nHost: h\r\n\r\n")
    assert r.status == 400


def test_bad_request_mid_pipeline(server):
    good = request_bytes("PUT", "/v1/kv/before", body=b"1")
    after = request_bytes("PUT", "/v1/kv/after", body=b"2")
    with server.raw() as c:
        c.send(good + b"BAD REQUEST\r\n\r\n" + after)
        r1, r2 = c.read_responses(2)
        assert r1.status == 201
        assert r2.status == 400 and r2.headers["connection"].lower() == "close"
        assert c.closed_by_peer(3)
    assert requests.get(server.url("/v1/kv/before"), timeout=T).status_code == 200
    assert requests.get(server.url("/v1/kv/after"), timeout=T).status_code == 404


def test_unknown_method_501(server):
    r = raw_one(server, request_bytes("BREW", "/v1/kv/pot"))
    assert r.status == 501, r
    assert_error_shape(r.body, code="not_implemented")
    assert "Allow" in {k for k, _ in r.header_list}


def test_bad_request_lines_400(server):
    for data in (b"GARBAGE\r\n\r\n",
                 b"GET  /v1/kv/x HTTP/1.1\r\nHost: h\r\n\r\n",
                 b"GET /v1/kv/x HTTP/1.1 extra\r\nHost: h\r\n\r\n",
                 b"GET v1/kv/x HTTP/1.1\r\nHost: h\r\n\r\n",
                 b"GET /v1/kv/x HTTQ/1.1\r\nHost: h\r\n\r\n",
                 b"GET /v1/kv/x HTTP/1.1\r\n\r\n",                      # no Host
                 b"GET /v1/kv/x HTTP/1.1\r\nHost: h\r\nBad Name: v\r\n\r\n",
                 b"GET /v1/kv/x HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n",
                 b"PUT /v1/kv/x HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
                 b"PUT /v1/kv/x HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
                 b"PUT /v1/kv/x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"):
        r = raw_rejected(server, data)
        assert r.status == 400, (data, r)
        assert_error_shape(r.body)
    assert server.shards()["total_keys"] == 0


def test_http2_version_505(server):
    r = raw_rejected(server, b"GET /health HTTP/2.0\r\nHost: h\r\n\r\n")
    assert r.status == 505
    assert_error_shape(r.body, code="http_version_not_supported")


def test_unsupported_transfer_coding_501(server):
    r = raw_rejected(server, b"PUT /v1/kv/x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n")
    assert r.status == 501
    assert_error_shape(r.body)


def test_unknown_expectation_417(server):
    r = raw_rejected(server, b"PUT /v1/kv/x HTTP/1.1\r\nHost: h\r\nExpect: teapot\r\nContent-Length: 1\r\n\r\nx")
    assert r.status == 417
    assert_error_shape(r.body)
    assert server.shards()["total_keys"] == 0


def test_uri_too_long_414(server):
    r = raw_rejected(server, request_bytes("GET", "/v1/kv/" + "u" * 9000))
    assert r.status == 414
    assert_error_shape(r.body, code="uri_too_long")


def test_header_too_large_431(start_server):
    s = start_server("--max-header-bytes", "1024")
    r = raw_rejected(s, request_bytes("GET", "/health", headers={"X-Big": "b" * 2000}))
    assert r.status == 431
    assert_error_shape(r.body, code="headers_too_large")
    # Many small headers add up too.
    hdrs = {f"X-H{i}": "v" * 40 for i in range(40)}
    r = raw_rejected(s, request_bytes("GET", "/health", headers=hdrs))
    assert r.status == 431
    # More header fields than the parser holds.
    r = raw_rejected(s, b"GET /health HTTP/1.1\r\nHost: h\r\n" + b"".join(b"X%d: v\r\n" % i for i in range(70)) + b"\r\n")
    assert r.status == 431
    # A head just under the limit is fine.
    r = raw_one(s, request_bytes("GET", "/health", headers={"X-Big": "b" * 800}))
    assert r.status == 200


def test_body_too_large_413_closes(start_server):
    s = start_server("--max-body-bytes", "100")
    with s.raw() as c:
        c.send(request_bytes("PUT", "/v1/kv/big", body=b"z" * 200))
        r = c.read_response()
        assert r.status == 413
        assert_error_shape(r.body, code="body_too_large")
        assert r.headers.get("connection", "").lower() == "close"
        assert c.closed_by_peer(3)
    # Announced but not sent: rejected from the head alone.
    with s.raw() as c:
        c.send(b"PUT /v1/kv/big HTTP/1.1\r\nHost: h\r\nContent-Length: 1000000\r\n\r\n")
        r = c.read_response()
        assert r.status == 413
        assert c.closed_by_peer(3)
    # Chunked bodies are measured after decoding.
    with s.raw() as c:
        c.send(b"PUT /v1/kv/big HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"64\r\n" + b"a" * 100 + b"\r\n1\r\nb\r\n0\r\n\r\n")
        r = c.read_response()
        assert r.status == 413
        assert c.closed_by_peer(3)
    # Exactly at the limit is accepted.
    r = requests.put(s.url("/v1/kv/big"), data=b"k" * 100, timeout=T)
    assert r.status_code == 201
    assert requests.get(s.url("/v1/kv/big"), timeout=T).content == b"k" * 100


def test_bad_chunked_body_400(server):
    r = raw_rejected(server, b"PUT /v1/kv/c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n")
    assert r.status == 400
    assert_error_shape(r.body)
    assert requests.get(server.url("/v1/kv/c"), timeout=T).status_code == 404


def test_rejected_requests_change_nothing(start_server):
    s = start_server("--max-key-bytes", "16", "--max-value-bytes", "8", "--max-body-bytes", "64")
    url = s.url("/v1/kv/keep")
    assert requests.put(url, data=b"orig", timeout=T).status_code == 201
    attempts = [
        ("PUT", {"If-Match": '"99"'}, b"new", 412),
        ("PUT", {"If-None-Match": "*"}, b"new", 412),
        ("PUT", {"If-Match": "nope"}, b"new", 400),
        ("PUT", {}, b"123456789", 413),
        ("DELETE", {"If-Match": '"7"'}, b"", 412),
        ("POST", {}, b"new", 405),
    ]
    for method, headers, body, status in attempts:
        r = requests.request(method, url, headers=headers, data=body, timeout=T)
        assert r.status_code == status, (method, headers, r.text)
        assert_error_shape(r.content)
    r = raw_rejected(s, request_bytes("PUT", "/v1/kv/keep", body=b"x" * 65))
    assert r.status == 413
    r = requests.get(url, timeout=T)
    assert r.status_code == 200 and r.content == b"orig" and r.headers["ETag"] == '"1"'
    info = s.shards()
    assert info["total_keys"] == 1


def test_every_error_is_json(server):
    cases = [
        ("GET", "/nope", 404), ("DELETE", "/v1/kv/missing", 404), ("PATCH", "/v1/kv/x", 405),
        ("GET", "/shards?limit=x", 400), ("POST", "/health", 405), ("PUT", "/metrics", 405),
        ("GET", "/store/notanumber", 400), ("GET", "/get", 400), ("GET", "/get?key=missing", 404),
    ]
    for method, path, status in cases:
        r = requests.request(method, server.url(path), timeout=T)
        assert r.status_code == status, (method, path, r.status_code, r.text)
        assert r.headers["Content-Type"] == "application/json", (method, path)
        assert_error_shape(r.content)
