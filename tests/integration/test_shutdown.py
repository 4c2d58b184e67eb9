"""Graceful shutdown on SIGTERM: drain, finish in-flight requests, exit 0."""
import signal
import socket
import threading
import time

import requests

from skvtest import HOST, TMUL, request_bytes

T = 5 * TMUL


def wait_refused(port, timeout):
    """True once new connections to port are refused (the listeners closed)."""
    deadline = time.monotonic() + timeout * TMUL
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                pass
        except (ConnectionRefusedError, ConnectionResetError):
            return True
        except OSError:
            return True
        time.sleep(0.02)
    return False


def test_sigterm_with_idle_keepalive_connections(start_server):
    s = start_server()
    conns = []
    for _ in range(4):
        c = s.raw()
        c.send(request_bytes("GET", "/health/live"))
        assert c.read_response().status == 200
        conns.append(c)
    t0 = time.monotonic()
    s.signal(signal.SIGTERM)
    assert s.wait(timeout=5) == 0
    assert time.monotonic() - t0 < 2 * TMUL, "idle connections held up the shutdown"
    for c in conns:
        assert c.closed_by_peer(2)
        c.close()
    s.assert_clean_exit()
    assert "shutdown complete" in s.stderr()


def test_sigterm_finishes_inflight_request(start_server):
    s = start_server("--request-timeout", "60s", "--shutdown-timeout", "30s")
    with s.raw(timeout=10) as c:
        c.send(b"PUT /v1/kv/inflight HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nhello")
        time.sleep(0.1)  # the first half is in the server
        s.signal(signal.SIGTERM)
        # Once the listeners are closed the server is draining.
        assert wait_refused(s.port, 5), "listener still accepting after SIGTERM"
        assert s.alive(), "server exited with a request in flight"
        c.send(b"world")
        r = c.read_response()
        assert r.status == 201, r
        assert r.headers["connection"].lower() == "close"
        assert c.closed_by_peer(3)
    assert s.wait(timeout=5) == 0
    s.assert_clean_exit()


def test_ready_probe_and_new_connections_after_sigterm(start_server):
    s = start_server("--request-timeout", "60s", "--shutdown-timeout", "30s")
    # Keep the node busy with a half request so it stays up while draining.
    with s.raw(timeout=10) as c:
        c.send(b"PUT /v1/kv/x HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nab")
        time.sleep(0.1)
        s.signal(signal.SIGTERM)
        assert wait_refused(s.port, 5)
        assert wait_refused(s.metrics_port, 5)
        c.send(b"cd")
        assert c.read_response().status == 201
    assert s.wait(timeout=5) == 0


def test_shutdown_timeout_cuts_stuck_request(start_server):
    s = start_server("--request-timeout", "60s", "--shutdown-timeout", "500ms")
    with s.raw(timeout=10) as c:
        c.send(b"PUT /v1/kv/stuck HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\npartial")
        time.sleep(0.1)
        t0 = time.monotonic()
        s.signal(signal.SIGTERM)
        assert s.wait(timeout=5) == 0
        assert time.monotonic() - t0 < 3 * TMUL
        assert c.closed_by_peer(2)
    s.assert_clean_exit()
    assert "shutdown timeout" in s.stderr()


def test_second_signal_forces_exit(start_server):
    s = start_server("--request-timeout", "60s", "--shutdown-timeout", "60s")
    with s.raw(timeout=10) as c:
        c.send(b"PUT /v1/kv/stuck HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\npartial")
        time.sleep(0.1)
        s.signal(signal.SIGTERM)
        assert wait_refused(s.port, 5)
        assert s.alive()
        s.signal(signal.SIGINT)
        assert s.wait(timeout=5) == 0
    s.assert_clean_exit()


def test_sigterm_under_load(start_server):
    """Requests racing the signal either succeed or see a closed connection;
    the process still exits 0 with a clean sanitizer report."""
    s = start_server()
    stop = threading.Event()
    results = {"ok": 0, "failed": 0}

    def load():
        with requests.Session() as sess:
            i = 0
            while not stop.is_set() and i < 5000:
                i += 1
                try:
                    r = sess.put(s.url(f"/v1/kv/l{i % 50}"), data=b"x" * 100, timeout=2 * TMUL)
                    results["ok" if r.status_code in (200, 201) else "failed"] += 1
                except requests.RequestException:
                    results["failed"] += 1
                    if not s.alive():
                        return

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    s.signal(signal.SIGTERM)
    assert s.wait(timeout=10) == 0
    stop.set()
    for t in threads:
        t.join(timeout=10 * TMUL)
    assert results["ok"] > 0
    s.assert_clean_exit()
