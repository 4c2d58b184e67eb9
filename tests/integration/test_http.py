"""HTTP/1.1 connection behaviour over raw sockets: keep-alive, pipelining,
split requests, chunked bodies, 100-continue, HEAD, HTTP/1.0, Connection: close,
large bodies and backpressure."""
import socket
import time

import requests

from skvtest import TMUL, request_bytes

T = 5 * TMUL


def test_keep_alive_many_requests(server):
    with server.raw() as c:
        for i in range(200):
            c.send(request_bytes("PUT", f"/v1/kv/ka{i}", body=f"val{i}"))
            r = c.read_response()
            assert r.status == 201 and "connection" not in r.headers
            c.send(request_bytes("GET", f"/v1/kv/ka{i}"))
            r = c.read_response()
            assert r.status == 200 and r.body == f"val{i}".encode()
    assert server.shards()["total_keys"] == 200


def test_pipelining_50_mixed(server):
    reqs, expect = [], []
    for i in range(10):
        reqs.append(request_bytes("PUT", f"/v1/kv/p{i}", body=f"body-{i}" * (i + 1)))
        expect.append((201, None, False))
        reqs.append(request_bytes("GET", f"/v1/kv/p{i}"))
        expect.append((200, (f"body-{i}" * (i + 1)).encode(), False))
        reqs.append(request_bytes("HEAD", f"/v1/kv/p{i}"))
        expect.append((200, b"", True))
        reqs.append(request_bytes("DELETE", f"/v1/kv/p{i}") if i % 2 else request_bytes("GET", "/health/live"))
        expect.append((200, None if i % 2 else b'{"status":"alive"}', False))
        reqs.append(request_bytes("GET", f"/v1/kv/p{i}"))
        expect.append((404 if i % 2 else 200, None, False))
    assert len(reqs) == 50
    with server.raw() as c:
        c.send(b"".join(reqs))
        resps = c.read_responses(50, head_flags=[e[2] for e in expect])
        for i, (r, (status, body, head)) in enumerate(zip(resps, expect)):
            assert r.status == status, (i, r)
            if body is not None:
                assert r.body == body, (i, r)
            if head:
                assert int(r.headers["content-length"]) > 0
        # Nothing extra: the HEAD responses carried no body bytes.
        c.send(request_bytes("GET", "/health/live"))
        assert c.read_response().body == b'{"status":"alive"}'
    assert server.shards()["total_keys"] == 5


def test_request_split_byte_by_byte(server):
    data = request_bytes("PUT", "/v1/kv/split", headers={"X-Pad": "p" * 50}, body=b"byte by byte")
    data += request_bytes("GET", "/v1/kv/split")
    with server.raw() as c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(data)):
            c.send(data[i:i + 1])
            if i % 16 == 0:
                time.sleep(0.001)
        r1, r2 = c.read_responses(2)
        assert r1.status == 201
        assert r2.status == 200 and r2.body == b"byte by byte"


def test_chunked_put_with_extensions_and_trailers(server):
    body = (b"5;name=value\r\nhello\r\n"
            b"1\r\n \r\n"
            b"A;x=\"q\";y\r\n0123456789\r\n"
            b"0\r\nX-Trailer: yes\r\nX-Other: 1\r\n\r\n")
    head = b"PUT /v1/kv/chunky HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    with server.raw() as c:
        c.send(head + body + request_bytes("GET", "/v1/kv/chunky"))
        r1, r2 = c.read_responses(2)
        assert r1.status == 201, r1
        assert r2.body == b"hello 0123456789"
    # The same body delivered in small pieces.
    with server.raw() as c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        data = head.replace(b"chunky", b"chunky2") + body
        for i in range(0, len(data), 7):
            c.send(data[i:i + 7])
            time.sleep(0.001)
        assert c.read_response().status == 201
    assert requests.get(server.url("/v1/kv/chunky2"), timeout=T).content == b"hello 0123456789"


def test_chunked_small_chunks_near_body_limit(start_server):
    """Chunk framing does not count against the body limit: a body of 60 KiB
    in one-byte chunks (about 6 times as many bytes on the wire) fits a
    64 KiB --max-body-bytes, whether it arrives at once or in pieces."""
    s = start_server("--max-body-bytes", "64K")
    value = bytes(ord("a") + i % 26 for i in range(60000))
    body = b"".join(b"1;ext=x\r\n" + value[i:i + 1] + b"\r\n" for i in range(len(value))) + b"0\r\n\r\n"
    head = b"PUT /v1/kv/%s HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    with s.raw(timeout=20) as c:
        c.send(head % b"one" + body)
        assert c.read_response().status == 201
        data = head % b"two" + body
        for i in range(0, len(data), 100_000):
            c.send(data[i:i + 100_000])
            time.sleep(0.01)
        assert c.read_response().status == 201
    for key in ("one", "two"):
        assert requests.get(s.url(f"/v1/kv/{key}"), timeout=T).content == value
    # One byte more than the limit is still refused.
    with s.raw(timeout=20) as c:
        over = b"".join(b"1\r\nz\r\n" for _ in range(64 * 1024 + 1)) + b"0\r\n\r\n"
        c.send(head % b"three")
        try:
            c.send(over)
        except (BrokenPipeError, ConnectionResetError):
            pass
        r = c.read_response()
        assert r.status == 413, r


def test_chunked_seed_route(server):
    payload = b'{"userId": 7, "data": "chunked"}'
    data = (b"POST /store HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"%x\r\n" % 10 + payload[:10] + b"\r\n" + b"%x\r\n" % (len(payload) - 10) + payload[10:] + b"\r\n0\r\n\r\n")
    with server.raw() as c:
        c.send(data)
        r = c.read_response()
        assert r.status == 200, r
        assert r.json()["shard"] == 7 % 8


def test_expect_100_continue(server):
    with server.raw() as c:
        c.send(b"PUT /v1/kv/cont HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 6\r\n\r\n")
        interim = c.read_response()
        assert interim.status == 100 and interim.version == "HTTP/1.1"
        assert interim.reason == "Continue"
        c.send(b"abcdef")
        final = c.read_response()
        assert final.status == 201
        # Only one 100 per request, and the next request starts clean.
        c.send(request_bytes("GET", "/v1/kv/cont"))
        r = c.read_response()
        assert r.status == 200 and r.body == b"abcdef"
    # Chunked with Expect.
    with server.raw() as c:
        c.send(b"PUT /v1/kv/cont2 HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n")
        assert c.read_response().status == 100
        c.send(b"3\r\nxyz\r\n0\r\n\r\n")
        assert c.read_response().status == 201
    # Body sent along with the head: no 100 needed, but the final answer is right.
    with server.raw() as c:
        c.send(b"PUT /v1/kv/cont3 HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok")
        r = c.read_response()
        if r.status == 100:
            r = c.read_response()
        assert r.status == 201


def test_expect_100_continue_rejected_early(start_server):
    s = start_server("--max-body-bytes", "10")
    with s.raw() as c:
        c.send(b"PUT /v1/kv/nope HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n")
        r = c.read_response()
        assert r.status == 413
        assert c.closed_by_peer(3)


def test_head_content_length_without_body(server):
    requests.put(server.url("/v1/kv/h"), data=b"x" * 1234, timeout=T)
    with server.raw() as c:
        c.send(request_bytes("HEAD", "/v1/kv/h") + request_bytes("HEAD", "/shards") + request_bytes("GET", "/v1/kv/h"))
        h1, h2, g = c.read_responses(3, head_flags=[True, True, False])
        assert h1.status == 200 and h1.headers["content-length"] == "1234" and h1.body == b""
        assert h2.status == 200 and int(h2.headers["content-length"]) > 0
        assert g.body == b"x" * 1234
        c.send(request_bytes("HEAD", "/nothing"))
        r = c.read_response(head=True)
        assert r.status == 404 and int(r.headers["content-length"]) > 0
        c.send(request_bytes("GET", "/health/live"))
        assert c.read_response().body == b'{"status":"alive"}'


def test_http10_closes_by_default(server):
    with server.raw() as c:
        c.send(b"GET /health/live HTTP/1.0\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and r.version == "HTTP/1.1"
        assert r.headers.get("connection", "").lower() == "close"
        assert c.closed_by_peer(3)
    with server.raw() as c:
        c.send(b"GET /health/live HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and r.headers.get("connection", "").lower() != "close"
        c.send(b"GET /health/live HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        assert c.read_response().status == 200


def test_connection_close_honoured(server):
    with server.raw() as c:
        c.send(request_bytes("GET", "/health/live", headers={"Connection": "close"})
               + request_bytes("GET", "/health/live"))
        r = c.read_response()
        assert r.status == 200 and r.headers["connection"].lower() == "close"
        # The pipelined request after the close is not answered.
        assert c.closed_by_peer(3)


def test_large_values_span_reads(server):
    big = bytes((i * 7) & 0xFF for i in range(900_000))
    with server.raw() as c:
        c.send(request_bytes("PUT", "/v1/kv/big", body=big) + request_bytes("GET", "/v1/kv/big")
               + request_bytes("GET", "/health/live"))
        r1, r2, r3 = c.read_responses(3)
        assert r1.status == 201
        assert r2.status == 200 and r2.body == big
        assert r3.status == 200


def test_backpressure_many_large_responses(server):
    value = b"B" * (512 * 1024)
    assert requests.put(server.url("/v1/kv/bp"), data=value, timeout=T).status_code == 201
    n = 24  # 12 MiB of responses, well over the server's output high-water mark
    with server.raw(timeout=20) as c:
        c.send(b"".join(request_bytes("GET", "/v1/kv/bp") for _ in range(n)) + request_bytes("GET", "/health/live"))
        time.sleep(0.3)  # let the server hit the high-water mark before reading
        resps = c.read_responses(n + 1)
        assert all(r.status == 200 and r.body == value for r in resps[:n])
        assert resps[n].body == b'{"status":"alive"}'
    # The same, with the client's write side shut right after the requests:
    # every request is still answered before the server closes.
    with server.raw(timeout=20) as c:
        c.send(b"".join(request_bytes("GET", "/v1/kv/bp") for _ in range(n)))
        c.sock.shutdown(socket.SHUT_WR)
        time.sleep(0.3)
        resps = c.read_responses(n)
        assert all(r.status == 200 and r.body == value for r in resps)
        assert c.closed_by_peer(3)


def test_requests_session_reuses_connection(server):
    with requests.Session() as sess:
        for i in range(50):
            assert sess.put(server.url(f"/v1/kv/s{i}"), data=b"x", timeout=T).status_code == 201
    text = requests.get(server.murl("/metrics"), timeout=T).text
    accepted = [line for line in text.splitlines() if line.startswith("shardkv_connections_accepted_total")]
    assert accepted and float(accepted[0].split()[-1]) < 10
