"""Connection limits and timeouts."""
import time

import requests

from skvtest import TMUL, ConnectionClosed, assert_error_shape, request_bytes

T = 5 * TMUL


def test_max_connections(start_server):
    s = start_server("--max-connections", "5")
    conns = []
    try:
        deadline = time.monotonic() + 5 * TMUL
        while len(conns) < 5:
            c = s.raw()
            c.send(request_bytes("GET", "/health/live"))
            try:
                r = c.read_response()
            except ConnectionClosed:
                r = None
            if r is None or r.status == 503:  # the start-up probe's connection may not be closed yet
                c.close()
                assert time.monotonic() < deadline
                time.sleep(0.05)
                continue
            assert r.status == 200  # accepted and counted
            conns.append(c)
        with s.raw() as extra:
            r = extra.read_response()
            assert r.status == 503
            assert r.headers["connection"].lower() == "close"
            assert r.headers.get("retry-after") == "1"
            assert_error_shape(r.body, code="too_many_connections")
            assert extra.closed_by_peer(3)
        # The metrics port is not subject to the limit.
        assert requests.get(s.murl("/metrics"), timeout=T).status_code == 200
        # The five open ones still work.
        for c in conns:
            c.send(request_bytes("GET", "/health/live"))
            assert c.read_response().status == 200
        # Close two: new connections are accepted again.
        for c in conns[:2]:
            c.close()
        conns = conns[2:]
        deadline = time.monotonic() + 5 * TMUL
        while True:
            with s.raw() as c:
                c.send(request_bytes("GET", "/health/live"))
                try:
                    r = c.read_response()
                except ConnectionClosed:
                    r = None
                if r is not None and r.status == 200:
                    break
            assert time.monotonic() < deadline, "connections freed by the client were never reused"
            time.sleep(0.05)
        text = requests.get(s.murl("/metrics"), timeout=T).text
        assert 'shardkv_connections_rejected_total{reason="max_connections"}' in text
    finally:
        for c in conns:
            c.close()


def test_metrics_connections_take_no_client_slots(start_server):
    s = start_server("--max-connections", "2")
    scrapers = []
    try:
        for _ in range(3):  # more open scrape connections than the client limit
            c = s.raw(port=s.metrics_port)
            c.send(request_bytes("GET", "/metrics"))
            assert c.read_response().status == 200
            scrapers.append(c)
        clients = []
        try:
            deadline = time.monotonic() + 5 * TMUL
            while len(clients) < 2:
                c = s.raw()
                c.send(request_bytes("GET", "/health/live"))
                try:
                    r = c.read_response()
                except ConnectionClosed:
                    r = None
                if r is None or r.status == 503:  # the start-up probe may still hold a slot
                    c.close()
                    assert time.monotonic() < deadline, "scrape connections took the client slots"
                    time.sleep(0.05)
                    continue
                assert r.status == 200
                clients.append(c)
        finally:
            for c in clients:
                c.close()
    finally:
        for c in scrapers:
            c.close()


def test_request_timeout_408(start_server):
    s = start_server("--request-timeout", "500ms")
    with s.raw() as c:
        c.send(b"GET /health/live HTTP/1.1\r\nHost: h\r\nX-Half: ")
        t0 = time.monotonic()
        r = c.read_response()
        elapsed = time.monotonic() - t0
        assert r.status == 408
        assert_error_shape(r.body, code="request_timeout")
        assert r.headers["connection"].lower() == "close"
        assert c.closed_by_peer(3)
        assert 0.3 < elapsed < 3 * TMUL
    # A body that stops half-way times out too.
    with s.raw() as c:
        c.send(b"PUT /v1/kv/slow HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc")
        r = c.read_response()
        assert r.status == 408
        assert c.closed_by_peer(3)
    assert requests.get(s.url("/v1/kv/slow"), timeout=T).status_code == 404


def test_request_timeout_does_not_hit_idle_keepalive(start_server):
    s = start_server("--request-timeout", "300ms", "--idle-timeout", "10s")
    with s.raw() as c:
        c.send(request_bytes("GET", "/health/live"))
        assert c.read_response().status == 200
        time.sleep(0.8)
        c.send(request_bytes("GET", "/health/live"))
        assert c.read_response().status == 200


def test_idle_timeout_closes_keepalive(start_server):
    s = start_server("--idle-timeout", "500ms")
    with s.raw() as c:
        c.send(request_bytes("GET", "/health/live"))
        assert c.read_response().status == 200
        t0 = time.monotonic()
        assert c.closed_by_peer(5), "idle keep-alive connection was not closed"
        assert time.monotonic() - t0 > 0.3
    # A connection that never sends anything is idle too.
    with s.raw() as c:
        assert c.closed_by_peer(5)
