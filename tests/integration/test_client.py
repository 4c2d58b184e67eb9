"""The command-line client (`shardkv get|put|del|scan|incr|stats|shards`,
docs/cli.md): the real binary as a client against a real node, and against
small fake servers for what a node never sends (chunked answers, bodies that
end at the close, malformed answers, silence).

Exit codes: 0 ok, 1 not found (404), 2 anything else."""
import json
import os
import pty
import socket
import subprocess
import threading
import urllib.parse

import pytest
import requests

from skvtest import BIN, HOST, SANITIZER_MARKERS, TMUL, free_port


def cli(*args, endpoint=None, stdin=b"", env=None, timeout=20):
    """Runs `shardkv ARGS` (bytes or str arguments); returns CompletedProcess
    with bytes stdout/stderr.  The endpoint goes before the arguments so that
    a `--` among them still works."""
    full_env = {k: v for k, v in os.environ.items() if k != "SHARDKV_ENDPOINT"}
    if env:
        full_env.update(env)
    argv = [BIN, args[0]]
    if endpoint:
        argv += ["--endpoint", endpoint]
    argv += list(args[1:])
    p = subprocess.run(argv, input=stdin, capture_output=True, env=full_env, timeout=timeout * TMUL)
    err = p.stderr.decode("utf-8", "replace")
    for marker in SANITIZER_MARKERS:
        assert marker not in err, f"sanitizer report from {argv}:\n{err}"
    return p


def ep(server):
    return f"http://{HOST}:{server.port}"


def kv_url(server, key):
    if isinstance(key, str):
        key = key.encode()
    return server.url("/v1/kv/" + urllib.parse.quote(key, safe=""))


def ok(p):
    assert p.returncode == 0, (p.returncode, p.stdout[:300], p.stderr)
    return p


# ---- get / put / del ---------------------------------------------------------------------------


def test_put_get_del_and_exit_codes(server):
    e = ep(server)
    p = ok(cli("put", "greeting", "hello", endpoint=e))
    assert p.stdout.startswith(b"created: version "), p.stdout
    assert ok(cli("get", "greeting", endpoint=e)).stdout == b"hello"   # exact bytes: no newline off a terminal
    p = ok(cli("put", "greeting", "hi", endpoint=e))
    assert p.stdout.startswith(b"replaced: version "), p.stdout
    assert requests.get(kv_url(server, "greeting"), timeout=5 * TMUL).content == b"hi"

    p = cli("get", "missing", endpoint=e)
    assert p.returncode == 1
    assert p.stdout == b""
    assert b"not found" in p.stderr and b"404" in p.stderr

    p = ok(cli("del", "greeting", endpoint=e))
    assert p.stdout.startswith(b"deleted: version "), p.stdout
    assert cli("del", "greeting", endpoint=e).returncode == 1
    assert cli("get", "greeting", endpoint=e).returncode == 1


def test_json_output(server):
    e = ep(server)
    put = json.loads(ok(cli("put", "--json", "j1", "value-1", endpoint=e)).stdout)
    assert put["key"] == "j1" and put["created"] is True and isinstance(put["shard"], int)
    got = json.loads(ok(cli("get", "j1", "--json", endpoint=e)).stdout)
    assert got == {"key": "j1", "value": "value-1", "version": put["version"], "shard": put["shard"]}
    # a JSON value written by a JSON route comes back as JSON
    r = requests.put(server.url("/kv"), json={"data": {"key": "doc", "value": {"a": [1, 2.5, None]}}}, timeout=5 * TMUL)
    assert r.status_code == 200, r.text
    got = json.loads(ok(cli("get", "doc", "--json", endpoint=e)).stdout)
    assert got["value"] == {"a": [1, 2.5, None]}
    deleted = json.loads(ok(cli("del", "j1", "--json", endpoint=e)).stdout)
    assert deleted["deleted"] is True and deleted["key"] == "j1"


def test_conditional_writes(server):
    e = ep(server)
    v1 = json.loads(ok(cli("put", "cas", "one", "--json", endpoint=e)).stdout)["version"]
    p = cli("put", "cas", "two", "--if-match", str(v1 + 1000), endpoint=e)
    assert p.returncode == 2
    assert b"412" in p.stderr and b"precondition_failed" in p.stderr
    v2 = json.loads(ok(cli("put", "cas", "two", "--if-match", str(v1), "--json", endpoint=e)).stdout)["version"]
    assert v2 > v1
    assert cli("put", "cas", "three", "--if-none-match", endpoint=e).returncode == 2
    ok(cli("put", "fresh", "x", "--if-none-match", endpoint=e))
    ok(cli("put", "cas", "four", "--if-match", "*", endpoint=e))
    assert cli("put", "never-there", "x", "--if-match", "*", endpoint=e).returncode == 2
    assert cli("del", "cas", "--if-match", str(v1), endpoint=e).returncode == 2
    assert ok(cli("get", "cas", endpoint=e)).stdout == b"four"
    v4 = json.loads(ok(cli("get", "cas", "--json", endpoint=e)).stdout)["version"]
    ok(cli("del", "cas", "--if-match", str(v4), endpoint=e))
    assert cli("get", "cas", endpoint=e).returncode == 1


def test_ttl_and_a_400_from_the_server(server):
    e = ep(server)
    p = ok(cli("put", "session", "tok", "--ttl", "60", endpoint=e))
    assert b"expires at " in p.stdout
    out = json.loads(ok(cli("put", "session", "tok", "--ttl", "60", "--json", endpoint=e)).stdout)
    assert out["expires_at_ms"] > 0
    got = json.loads(ok(cli("get", "session", "--json", endpoint=e)).stdout)
    assert got["expires_at_ms"] == out["expires_at_ms"]
    p = cli("put", "session", "tok", "--ttl", "abc", endpoint=e)
    assert p.returncode == 2
    assert b"(400 bad_ttl)" in p.stderr, p.stderr
    assert p.stdout == b""


def test_idempotency_key_replays(server):
    e = ep(server)
    first = ok(cli("put", "order:1", "paid", "--idempotency-key", "pay-1", endpoint=e)).stdout
    second = ok(cli("put", "order:1", "paid", "--idempotency-key", "pay-1", endpoint=e)).stdout
    assert b"(replayed)" not in first
    assert second.startswith(first.rstrip(b"\n")) and b"(replayed)" in second
    p = cli("put", "order:1", "other body", "--idempotency-key", "pay-1", endpoint=e)
    assert p.returncode == 2 and b"422" in p.stderr
    assert cli("put", "k", "v", "--idempotency-key", "bad\tkey", endpoint=e).returncode == 2


def test_binary_value_from_stdin_round_trips(server):
    e = ep(server)
    value = bytes(range(256)) * 8 + os.urandom(200_000) + b"\r\n\x00tail\n"
    ok(cli("put", "bin", "-", stdin=value, endpoint=e))
    assert ok(cli("get", "bin", endpoint=e)).stdout == value
    assert requests.get(kv_url(server, "bin"), timeout=5 * TMUL).content == value
    ok(cli("put", "empty", "-", stdin=b"", endpoint=e))
    assert ok(cli("get", "empty", endpoint=e)).stdout == b""
    # a value that starts with '-' after --
    ok(cli("put", "neg", "--", "-5", endpoint=e))
    assert ok(cli("get", "neg", endpoint=e)).stdout == b"-5"


def test_value_too_large_is_the_servers_413(server):
    e = ep(server)
    p = cli("put", "big", "-", stdin=b"x" * 1_500_000, endpoint=e)
    assert p.returncode == 2
    assert b"413" in p.stderr and b"value_too_large" in p.stderr
    # over --max-body-bytes the node answers and closes while we still send
    p = cli("put", "big", "-", stdin=b"x" * 3_000_000, endpoint=e)
    assert p.returncode == 2 and p.stderr.strip()


@pytest.mark.parametrize("key", ["a/b", "with space", "plus+sign", "pct%41", "q?x=1&y#z", "ünïcödé", "~._-",
                                 b"\xff\xfe raw bytes", b"tab\there"])
def test_keys_are_percent_encoded(server, key):
    e = ep(server)
    ok(cli("put", key, "v:" + repr(key), endpoint=e))
    r = requests.get(kv_url(server, key), timeout=5 * TMUL)
    assert r.status_code == 200 and r.text == "v:" + repr(key)
    assert ok(cli("get", key, endpoint=e)).stdout == ("v:" + repr(key)).encode()
    ok(cli("del", key, endpoint=e))
    assert requests.get(kv_url(server, key), timeout=5 * TMUL).status_code == 404


def test_get_on_a_terminal_adds_a_newline(server):
    e = ep(server)
    ok(cli("put", "tty", "hello", endpoint=e))
    master, slave = pty.openpty()
    try:
        p = subprocess.run([BIN, "get", "--endpoint", e, "tty"], stdout=slave, stderr=subprocess.PIPE,
                           timeout=20 * TMUL)
        os.close(slave)
        slave = None
        out = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    finally:
        if slave is not None:
            os.close(slave)
        os.close(master)
    assert p.returncode == 0, p.stderr
    assert out in (b"hello\r\n", b"hello\n"), out


# ---- scan -------------------------------------------------------------------------------------


def _write_keys(server, keys):
    with requests.Session() as s:
        for k in keys:
            r = s.put(kv_url(server, k), data=f"val-{k}".encode(), timeout=5 * TMUL)
            assert r.status_code in (200, 201), r.text


def test_scan_all_equals_the_set_written(server):
    e = ep(server)
    keys = {f"scan/{i:04d}" for i in range(320)}
    _write_keys(server, sorted(keys) + ["other/1", "other/2", "scan"])
    # readable: "key<TAB>value" lines, small pages so the cursor is followed many times
    p = ok(cli("scan", "--prefix", "scan/", "--all", "--page-size", "7", endpoint=e))
    lines = p.stdout.decode().splitlines()
    assert len(lines) == len(keys)
    got = dict(line.split("\t", 1) for line in lines)
    assert set(got) == keys
    assert all(got[k] == f"val-{k}" for k in keys)
    assert p.stderr == b""

    # --json: each page as the server sent it, one per line
    p = ok(cli("scan", "--prefix", "scan/", "--all", "--page-size", "50", "--json", endpoint=e))
    pages = [json.loads(line) for line in p.stdout.splitlines()]
    assert len(pages) >= 7
    items = [it["key"] for page in pages for it in page["items"]]
    assert len(items) == len(set(items)) and set(items) == keys
    assert pages[-1]["next_cursor"] is None and all(pg["next_cursor"] for pg in pages[:-1])

    # --json --merge: one document
    doc = json.loads(ok(cli("scan", "--prefix", "scan/", "--all", "--json", "--merge", endpoint=e)).stdout)
    assert doc["next_cursor"] is None
    merged = [it["key"] for it in doc["items"]]
    assert len(merged) == len(keys) and set(merged) == keys
    assert all(it["value"] == f"val-{it['key']}" and isinstance(it["version"], int) for it in doc["items"])

    # without a prefix every key is there
    p = ok(cli("scan", "--all", endpoint=e))
    assert {line.split("\t", 1)[0] for line in p.stdout.decode().splitlines()} == keys | {"other/1", "other/2", "scan"}


def test_scan_limit_then_cursor(server):
    e = ep(server)
    keys = {f"lim/{i}" for i in range(45)}
    _write_keys(server, sorted(keys))
    p = ok(cli("scan", "--prefix", "lim/", "--limit", "20", endpoint=e))
    first = [line.split(b"\t", 1)[0].decode() for line in p.stdout.splitlines()]
    assert len(first) == 20
    msg = p.stderr.decode()
    assert "--cursor " in msg and "--prefix" in msg
    cursor = msg.split("--cursor ", 1)[1].split()[0]
    p = ok(cli("scan", "--prefix", "lim/", "--cursor", cursor, "--limit", "1000", endpoint=e))
    rest = [line.split(b"\t", 1)[0].decode() for line in p.stdout.splitlines()]
    assert p.stderr == b""
    assert len(first) + len(rest) == len(keys) and set(first) | set(rest) == keys
    # default limit: 100 items
    _write_keys(server, [f"lim/x{i}" for i in range(80)])
    assert len(ok(cli("scan", "--prefix", "lim/", endpoint=e)).stdout.splitlines()) == 100
    # merged JSON stopped by --limit carries the cursor to continue with
    doc = json.loads(ok(cli("scan", "--prefix", "lim/", "--limit", "5", "--json", "--merge", endpoint=e)).stdout)
    assert len(doc["items"]) == 5 and doc["next_cursor"]


def test_scan_escapes_control_bytes_and_a_bad_limit_is_refused(server):
    e = ep(server)
    ok(cli("put", "esc/a\tb", "line1\nline2\\", endpoint=e))
    p = ok(cli("scan", "--prefix", "esc/", endpoint=e))
    assert p.stdout == b"esc/a\\tb\tline1\\nline2\\\\\n"
    p = cli("scan", "--cursor", "not-a-cursor", endpoint=e)
    assert p.returncode == 2 and b"(400 bad_cursor)" in p.stderr


# ---- counters, stats, shards -------------------------------------------------------------------


def test_incr(server):
    e = ep(server)
    assert ok(cli("incr", "visits", endpoint=e)).stdout == b"1\n"
    assert ok(cli("incr", "visits", "--by", "10", endpoint=e)).stdout == b"11\n"
    assert ok(cli("incr", "visits", "--by", "-20", endpoint=e)).stdout == b"-9\n"
    assert ok(cli("incr", "visits", "--by=-1", endpoint=e)).stdout == b"-10\n"
    doc = json.loads(ok(cli("incr", "visits", "--json", endpoint=e)).stdout)
    assert doc["value"] == -9 and doc["name"] == "visits" and doc["delta"] == 1
    assert requests.get(server.url("/v1/counters/visits"), timeout=5 * TMUL).json()["value"] == -9
    p = cli("incr", "visits", "--by", "0", endpoint=e)
    assert p.returncode == 2 and b"bad_by" in p.stderr
    ok(cli("incr", "a/b c", "--by", "3", endpoint=e))
    assert requests.get(server.url("/v1/counters/a%2Fb%20c"), timeout=5 * TMUL).json()["value"] == 3
    # retried with the same key: applied once
    ok(cli("incr", "once", "--idempotency-key", "i-1", endpoint=e))
    assert ok(cli("incr", "once", "--idempotency-key", "i-1", endpoint=e)).stdout == b"1\n"


def test_stats(server):
    e = ep(server)
    ok(cli("put", "s1", "v", endpoint=e))
    ok(cli("get", "s1", endpoint=e))
    cli("get", "nope", endpoint=e)
    text = ok(cli("stats", endpoint=e)).stdout.decode()
    assert "healthy (ready)" in text
    for word in ("keys", "memory", "hits", "misses", "hit ratio", "evictions", "expired", "shards"):
        assert word in text, word
    doc = json.loads(ok(cli("stats", "--json", endpoint=e)).stdout)
    assert doc["health"]["status"] == "healthy" and doc["health"]["shard_count"] == 8
    assert doc["cache"]["hits"] >= 1 and doc["cache"]["misses"] >= 1 and doc["cache"]["keys_count"] >= 1


def test_shards(start_server):
    s = start_server("--shards", "5")
    e = ep(s)
    _write_keys(s, [f"sh{i}" for i in range(40)])
    lines = ok(cli("shards", endpoint=e)).stdout.decode().splitlines()
    assert lines[0].startswith("placement ring, hash xxh3")
    assert lines[1].split() == ["SHARD", "KEYS", "BYTES", "SHARE", "REQUESTS"]
    rows = [line.split() for line in lines[2:-1]]
    assert [int(r[0]) for r in rows] == list(range(5))
    assert sum(int(r[1]) for r in rows) == 40
    assert lines[-1].split()[:2] == ["total", "40"]
    doc = json.loads(ok(cli("shards", "--json", endpoint=e)).stdout)
    assert doc["total_keys"] == 40 and [sh["id"] for sh in doc["shards"]] == list(range(5))


# ---- endpoint, connection failures, usage -----------------------------------------------------


def test_endpoint_from_environment(server):
    env = {"SHARDKV_ENDPOINT": ep(server)}
    ok(cli("put", "envkey", "v", env=env))
    assert ok(cli("get", "envkey", env=env)).stdout == b"v"
    # the flag wins over the environment
    p = cli("get", "envkey", endpoint=f"http://{HOST}:{free_port()}", env=env)
    assert p.returncode == 2
    # host:port without a scheme, and a trailing slash
    assert ok(cli("get", "envkey", endpoint=f"{HOST}:{server.port}/")).stdout == b"v"


def test_connection_refused_exits_2():
    p = cli("get", "k", endpoint=f"http://{HOST}:{free_port()}")
    assert p.returncode == 2
    assert b"refused" in p.stderr.lower(), p.stderr
    assert p.stdout == b""


def test_timeout_when_the_server_never_answers():
    with socket.socket() as lsock:
        lsock.bind((HOST, 0))
        lsock.listen(8)  # never accepted: the kernel completes the connect, nobody answers
        port = lsock.getsockname()[1]
        for cmd in (["get", "k"], ["put", "k", "v"], ["scan", "--all"], ["stats"]):
            p = cli(*cmd, "--timeout", "300ms", endpoint=f"http://{HOST}:{port}")
            assert p.returncode == 2, (cmd, p.stderr)
            assert b"timed out after 300 ms" in p.stderr, p.stderr


@pytest.mark.parametrize("args", [["get"], ["get", "a", "b"], ["put", "k"], ["del"], ["incr"], ["stats", "x"],
                                  ["get", "k", "--bogus"], ["get", "k", "--ttl", "5"], ["scan", "--by", "1"],
                                  ["scan", "--all", "--limit", "5"], ["scan", "--limit", "0"],
                                  ["scan", "--page-size", "1001"], ["scan", "--merge"], ["get", ""],
                                  ["get", "k", "--timeout", "abc"], ["get", "k", "--timeout"],
                                  ["get", "k", "--endpoint", "https://localhost:8000"],
                                  ["get", "k", "--endpoint", "http://host:99999"],
                                  ["put", "k", "v", "--if-match", "1\r\nX: y"]])
def test_usage_errors_exit_2(args):
    p = cli(*args)
    assert p.returncode == 2, (args, p.returncode, p.stderr)
    assert p.stderr.startswith(b"shardkv"), p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert p.stdout == b""


def test_help():
    for cmd in ("get", "put", "scan", "shards"):
        p = cli(cmd, "--help")
        assert p.returncode == 0
        for word in (b"get KEY", b"put KEY", b"scan", b"incr NAME", b"--endpoint", b"--timeout", b"--json",
                     b"SHARDKV_ENDPOINT", b"Exit status"):
            assert word in p.stdout, word
    p = subprocess.run([BIN, "--help"], capture_output=True, timeout=10 * TMUL)
    assert b"shardkv get|put|del|scan|incr|stats|shards" in p.stdout


# ---- fake servers: framings and failures a node does not produce ------------------------------


class FakeServer:
    """Answers each request with the canned bytes for its path, then closes
    (or keeps the connection for the next request when keep is set)."""

    def __init__(self, answers, keep=False):
        self.answers = answers
        self.keep = keep
        self.sock = socket.socket()
        self.sock.bind((HOST, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.requests = []
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.settimeout(10 * TMUL)
                buf = b""
                try:
                    while True:
                        while b"\r\n\r\n" not in buf:
                            data = conn.recv(65536)
                            if not data:
                                raise ConnectionError
                            buf += data
                        head, buf = buf.split(b"\r\n\r\n", 1)
                        self.requests.append(head)
                        path = head.split(b" ")[1].decode()
                        conn.sendall(self.answers[path.split("?")[0]])
                        if not self.keep:
                            break
                except (ConnectionError, OSError):
                    pass

    def url(self):
        return f"http://{HOST}:{self.port}"

    def close(self):
        self.sock.close()


def answer(status, body, headers=b""):
    return b"HTTP/1.1 %s\r\n%sContent-Length: %d\r\n\r\n%s" % (status, headers, len(body), body)


@pytest.fixture
def fake():
    servers = []

    def make(answers, keep=False):
        s = FakeServer(answers, keep)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


def test_chunked_and_close_delimited_answers(fake):
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nETag: \"9\"\r\nX-Shard: 2\r\n\r\n"
               b"6\r\nhello \r\n3;ext=1\r\nchu\r\n4\r\nnked\r\n0\r\nX-Trailer: t\r\n\r\n")
    closing = b"HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\nuntil\x00the close"
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    f = fake({"/v1/kv/chunky": chunked, "/v1/kv/closey": closing, "/v1/kv/interim": interim})
    assert ok(cli("get", "chunky", endpoint=f.url())).stdout == b"hello chunked"
    got = json.loads(ok(cli("get", "chunky", "--json", endpoint=f.url())).stdout)
    assert got == {"key": "chunky", "value": "hello chunked", "version": 9, "shard": 2}
    assert ok(cli("get", "closey", endpoint=f.url())).stdout == b"until\x00the close"
    assert ok(cli("get", "interim", endpoint=f.url())).stdout == b"ok"
    assert any(b"GET /v1/kv/chunky HTTP/1.1" in r for r in f.requests)
    assert all(b"\r\nHost: " in r for r in f.requests)


def test_failures_from_a_fake_server(fake):
    answers = {
        "/v1/kv/smuggle": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "/v1/kv/short": b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
        "/v1/kv/silent": b"",
        "/v1/kv/plain500": b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 12\r\n\r\nupstream bad",
        "/v1/kv/json503": answer(b"503 Service Unavailable",
                                 b'{"error":{"code":"recovering","message":"still \\u001b[31m"}}',
                                 b"Content-Type: application/json\r\n"),
        "/v1/kv/gone": b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
        "/v1/kv/notjson": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        "/shards": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        "/v1/kv": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]",
    }
    f = fake(answers)
    u = f.url()
    p = cli("get", "smuggle", endpoint=u)
    assert p.returncode == 2 and b"malformed" in p.stderr
    p = cli("get", "short", endpoint=u)
    assert p.returncode == 2 and b"cut short" in p.stderr
    p = cli("get", "silent", endpoint=u)
    assert p.returncode == 2 and b"without answering" in p.stderr
    p = cli("get", "plain500", endpoint=u)
    assert p.returncode == 2 and p.stderr == b"shardkv: upstream bad (500 Internal Server Error)\n"
    p = cli("get", "json503", endpoint=u)
    assert p.returncode == 2 and p.stderr == b"shardkv: still \\x1b[31m (503 recovering)\n"  # no terminal escapes
    p = cli("get", "gone", endpoint=u)
    assert p.returncode == 1 and b"404" in p.stderr
    p = cli("shards", endpoint=u)
    assert p.returncode == 2 and b"unexpected answer" in p.stderr
    p = cli("scan", endpoint=u)
    assert p.returncode == 2 and b"unexpected answer" in p.stderr


def test_scan_pages_share_one_connection(fake):
    page1 = b'{"items":[{"key":"a","value":"1","version":1,"shard":0}],"next_cursor":"C1"}'
    page2 = b'{"items":[],"next_cursor":"C2"}'
    page3 = b'{"items":[{"key":"b","value":{"x":1},"version":2,"shard":1}],"next_cursor":null}'
    pages = iter([page1, page2, page3])

    class Pages(dict):
        def __getitem__(self, path):
            return answer(b"200 OK", next(pages))

    f = fake(Pages(), keep=True)
    p = ok(cli("scan", "--all", "--prefix", "a b+", endpoint=f.url()))
    assert p.stdout == b'a\t1\nb\t{"x":1}\n'   # an empty middle page does not end the scan
    assert f.connections == 1
    targets = [r.split(b" ")[1] for r in f.requests]
    assert targets == [b"/v1/kv?prefix=a%20b%2B&limit=1000", b"/v1/kv?prefix=a%20b%2B&limit=1000&cursor=C1",
                       b"/v1/kv?prefix=a%20b%2B&limit=1000&cursor=C2"]


def test_a_kept_connection_closed_by_the_server_is_retried_once(fake):
    bodies = iter([b'{"items":[{"key":"a","value":"1","version":1,"shard":0}],"next_cursor":"C1"}',
                   b'{"items":[{"key":"b","value":"2","version":1,"shard":0}],"next_cursor":null}'])

    class Pages(dict):
        def __getitem__(self, path):
            return answer(b"200 OK", next(bodies))

    f = fake(Pages(), keep=False)  # answers, then closes without saying "Connection: close"
    p = ok(cli("scan", "--all", endpoint=f.url()))
    assert p.stdout == b"a\t1\nb\t2\n"
    assert f.connections == 2
