"""Abusive and unlucky clients: abrupt resets, garbage, half-closed sockets,
many connections at once.  The node must stay up and answer correctly after
them (and the sanitized build must report nothing)."""
import random
import socket
import struct
import threading
import time

import requests

from skvtest import HOST, TMUL, ConnectionClosed, RawConn, request_bytes

T = 5 * TMUL


def reset_close(sock):
    """Closes with an RST instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def assert_healthy(s):
    r = requests.get(s.url("/health"), timeout=T)
    assert r.status_code == 200 and r.json()["status"] == "healthy"


def test_abrupt_resets(server):
    value = b"R" * (256 * 1024)
    assert requests.put(server.url("/v1/kv/r"), data=value, timeout=T).status_code == 201
    for i in range(30):
        c = RawConn(server.port)
        if i % 3 == 0:    # reset in the middle of big responses
            c.send(b"".join(request_bytes("GET", "/v1/kv/r") for _ in range(20)))
        elif i % 3 == 1:  # reset in the middle of a request body
            c.send(b"PUT /v1/kv/half HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n\r\n" + b"x" * 5000)
        else:             # reset in the middle of a head
            c.send(b"GET /v1/kv/r HTTP/1.1\r\nHo")
        time.sleep(0.005)
        reset_close(c.sock)
    assert_healthy(server)
    assert requests.get(server.url("/v1/kv/half"), timeout=T).status_code == 404
    assert requests.get(server.url("/v1/kv/r"), timeout=T).content == value


def test_client_half_close(server):
    # HTTP/1.0 style: send, shut the write side, read to EOF.
    c = RawConn(server.port)
    c.send(request_bytes("PUT", "/v1/kv/hc", body=b"v") + request_bytes("GET", "/v1/kv/hc"))
    c.sock.shutdown(socket.SHUT_WR)
    r1, r2 = c.read_responses(2)
    assert r1.status == 201 and r2.body == b"v"
    assert c.closed_by_peer(3)
    c.close()
    # Half-close in the middle of a request: no answer, just a close.
    c = RawConn(server.port)
    c.send(b"PUT /v1/kv/hc2 HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc")
    c.sock.shutdown(socket.SHUT_WR)
    assert c.closed_by_peer(3)
    c.close()
    assert requests.get(server.url("/v1/kv/hc2"), timeout=T).status_code == 404


def test_random_garbage(server):
    rng = random.Random(1234)
    alphabet = b"GETPUSDLHAO /\r\n:0123456789abcdefHTP.%?=&\x00\xff\t"
    for _ in range(60):
        n = rng.randint(1, 400)
        junk = bytes(rng.choice(alphabet) for _ in range(n)) + b"\r\n\r\n"
        c = RawConn(server.port, timeout=3)
        try:
            c.send(junk)
            c.sock.shutdown(socket.SHUT_WR)
            try:
                r = c.read_response()
                assert 100 <= r.status < 600
                if r.status >= 400:
                    assert r.body[:1] == b"{"
            except (ConnectionClosed, socket.timeout):
                pass
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            c.close()
    assert_healthy(server)


def test_mutated_valid_requests(server):
    """Byte flips in valid requests: each gets a well-formed answer or a close."""
    rng = random.Random(99)
    base = [request_bytes("PUT", "/v1/kv/mut", headers={"If-Match": "*"}, body=b"hello"),
            b"PUT /v1/kv/mc HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;e\r\nhello\r\n0\r\nT: 1\r\n\r\n",
            request_bytes("POST", "/store", headers={"Content-Type": "application/json"}, body=b'{"userId":1,"data":[1]}')]
    for i in range(150):
        data = bytearray(rng.choice(base))
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        c = RawConn(server.port, timeout=1)
        try:
            c.send(bytes(data))
            c.sock.shutdown(socket.SHUT_WR)  # an incomplete request ends at EOF instead of a timeout
            try:
                r = c.read_response()
                assert 100 <= r.status < 600
            except (ConnectionClosed, socket.timeout):
                pass
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            c.close()
    assert_healthy(server)


def test_many_simultaneous_connections(server):
    n = 200
    conns = [RawConn(server.port) for _ in range(n)]
    try:
        for i, c in enumerate(conns):
            c.send(request_bytes("PUT", f"/v1/kv/conn{i}", body=str(i)))
        for c in conns:
            assert c.read_response().status == 201
        for i, c in enumerate(conns):
            c.send(request_bytes("GET", f"/v1/kv/conn{i}"))
        for i, c in enumerate(conns):
            assert c.read_response().body == str(i).encode()
    finally:
        for c in conns:
            c.close()
    text = requests.get(server.murl("/metrics"), timeout=T).text
    assert "shardkv_connections_accepted_total" in text


def test_slow_reader_does_not_block_others(server):
    """A client that never reads its large responses must not stall the
    worker for everybody else."""
    value = b"S" * (1024 * 1024)
    requests.put(server.url("/v1/kv/slow"), data=value, timeout=T)
    hog = RawConn(server.port)
    hog.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        hog.send(b"".join(request_bytes("GET", "/v1/kv/slow") for _ in range(16)))
        time.sleep(0.2)
        errors = []

        def others():
            try:
                with requests.Session() as sess:
                    for _ in range(50):
                        assert sess.get(server.url("/health/live"), timeout=T).status_code == 200
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))

        threads = [threading.Thread(target=others) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30 * TMUL)
        assert not errors, errors
    finally:
        reset_close(hog.sock)
    assert_healthy(server)
