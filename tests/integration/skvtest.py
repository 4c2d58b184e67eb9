"""
skvtest — helpers for the shardkv integration tests: start and stop the real
binary, and a raw-socket HTTP/1.1 client for what `requests` cannot do
(pipelining, malformed requests, slow clients, chunked bodies, 100-continue).

Environment:
  SHARDKV_BIN        binary to test (default: <repo>/build/shardkv)
  SHARDKV_SANITIZED  "1" when the binary is built with ASan/UBSan: every
                     timeout is multiplied by TMUL.
"""
import json
import os
import pathlib
import signal
import socket
import subprocess
import time

import requests

REPO = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("SHARDKV_BIN") or str(REPO / "build" / "shardkv")
SANITIZED = os.environ.get("SHARDKV_SANITIZED") == "1"
TMUL = 3 if SANITIZED else 1
HOST = "127.0.0.1"
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer")


def free_port():
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def run_cli(*args, env=None, timeout=10):
    """Runs the binary to completion (CLI tests); returns CompletedProcess."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run([BIN, *args], capture_output=True, text=True, env=full_env, timeout=timeout * TMUL)


class Server:
    """One shardkv process on 127.0.0.1 with its stderr captured in a file."""

    def __init__(self, workdir, args=(), env=None, metrics=True, threads=2):
        self.workdir = pathlib.Path(workdir)
        self.args = list(args)
        self.env = env or {}
        self.metrics = metrics
        self.threads = threads
        self.proc = None
        self.port = None
        self.metrics_port = None
        self.stderr_path = None
        self.returncode = None
        self._stderr_file = None
        self._attempt = 0

    # ---- life cycle ----------------------------------------------------------------------

    def start(self, ready_timeout=10.0):
        last = ""
        for _ in range(5):
            if self._start_once(ready_timeout):
                return self
            last = self.stderr()
            if "in use" not in last:
                break
        raise RuntimeError(f"shardkv did not become ready; stderr:\n{last}")

    def _start_once(self, ready_timeout):
        self._attempt += 1
        self.port = free_port()
        self.metrics_port = free_port() if self.metrics else 0
        data_dir = self.workdir / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        self.stderr_path = self.workdir / f"shardkv-stderr-{self._attempt}.log"
        cmd = [BIN, "--host", HOST, "--port", str(self.port), "--metrics-port", str(self.metrics_port),
               "--threads", str(self.threads), "--data-dir", str(data_dir), *self.args]
        env = dict(os.environ)
        env.update(self.env)
        self._stderr_file = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=self._stderr_file, env=env)
        self.returncode = None
        deadline = time.monotonic() + ready_timeout * TMUL
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.returncode = self.proc.returncode
                self._stderr_file.close()
                return False
            try:
                r = requests.get(self.url("/health/ready"), timeout=1.0 * TMUL)
                if r.status_code == 200:
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"shardkv not ready within {ready_timeout * TMUL}s; stderr:\n{self.stderr()}")

    def signal(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout=10.0):
        """Waits for the process to exit; returns its exit code (raises on timeout)."""
        self.returncode = self.proc.wait(timeout=timeout * TMUL)
        if self._stderr_file and not self._stderr_file.closed:
            self._stderr_file.close()
        return self.returncode

    def stop(self, timeout=10.0):
        """SIGTERM and wait; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                return self.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise
        return self.wait(timeout)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self._stderr_file and not self._stderr_file.closed:
            self._stderr_file.close()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stderr(self):
        if self.stderr_path is None or not self.stderr_path.exists():
            return ""
        return self.stderr_path.read_bytes().decode("utf-8", "replace")

    def assert_clean_exit(self):
        """The process exited 0 and the sanitizers reported nothing."""
        err = self.stderr()
        for marker in SANITIZER_MARKERS:
            assert marker not in err, f"sanitizer report in stderr:\n{err}"
        assert self.returncode == 0, f"exit code {self.returncode}; stderr:\n{err}"

    # ---- addressing ----------------------------------------------------------------------

    def url(self, path):
        return f"http://{HOST}:{self.port}{path}"

    def murl(self, path):
        return f"http://{HOST}:{self.metrics_port}{path}"

    def raw(self, timeout=5.0, port=None):
        return RawConn(port or self.port, timeout)

    def shards(self, query=""):
        r = requests.get(self.url("/shards" + query), timeout=5 * TMUL)
        assert r.status_code == 200, r.text
        return r.json()


# ---- raw HTTP/1.1 client -----------------------------------------------------------------------


class Response:
    def __init__(self, status, reason, headers, body, version):
        self.status = status
        self.reason = reason
        self.header_list = headers          # [(name, value)] as received
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body
        self.version = version

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<Response {self.status} {self.headers} {self.body[:200]!r}>"


class ConnectionClosed(Exception):
    pass


class RawConn:
    """A plain TCP connection speaking hand-written HTTP/1.1."""

    def __init__(self, port, timeout=5.0):
        self.sock = socket.create_connection((HOST, port), timeout=timeout * TMUL)
        self.sock.settimeout(timeout * TMUL)
        self.buf = b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self):
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            raise ConnectionClosed(f"connection closed; unparsed bytes: {self.buf[:200]!r}")
        self.buf += data

    def read_response(self, head=False):
        """Reads one response (a 1xx interim response counts as one)."""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        end = self.buf.index(b"\r\n\r\n")
        head_bytes, self.buf = self.buf[:end], self.buf[end + 4:]
        lines = head_bytes.decode("latin-1").split("\r\n")
        version, status, reason = (lines[0].split(" ", 2) + [""])[:3]
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name, value.strip()))
        status = int(status)
        length = 0
        if not head and status >= 200 and status not in (204, 304):
            hdrs = {k.lower(): v for k, v in headers}
            assert "content-length" in hdrs, f"response without Content-Length: {lines}"
            length = int(hdrs["content-length"])
        while len(self.buf) < length:
            self._fill()
        body, self.buf = self.buf[:length], self.buf[length:]
        return Response(status, reason, headers, body, version)

    def read_responses(self, n, head_flags=None):
        return [self.read_response(head=bool(head_flags and head_flags[i])) for i in range(n)]

    def closed_by_peer(self, timeout=3.0):
        """True when the server closes the connection within timeout (EOF or
        reset) with no further bytes; False on timeout."""
        self.sock.settimeout(timeout * TMUL)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
                self.buf += data
                assert False, f"unexpected bytes before close: {self.buf[:200]!r}"
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False


def request_bytes(method, target, headers=None, body=b"", host=True, version="HTTP/1.1", length=True):
    """Builds one request; adds Host and Content-Length unless told not to."""
    if isinstance(body, str):
        body = body.encode()
    lines = [f"{method} {target} {version}"]
    hdrs = dict(headers or {})
    if host and "Host" not in hdrs:
        lines.append(f"Host: {HOST}")
    for k, v in hdrs.items():
        lines.append(f"{k}: {v}")
    if length and (body or method in ("PUT", "POST")) and "Content-Length" not in hdrs \
            and "Transfer-Encoding" not in hdrs:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def assert_error_shape(body, status=None, code=None, seed=False):
    """Every error body is {"error": {"code": str, "message": str}} (plus
    "detail" on the seed routes)."""
    doc = json.loads(body) if isinstance(body, (bytes, str)) else body
    assert isinstance(doc, dict), doc
    err = doc.get("error")
    assert isinstance(err, dict), doc
    assert isinstance(err.get("code"), str) and err["code"], doc
    assert isinstance(err.get("message"), str) and err["message"], doc
    if code is not None:
        assert err["code"] == code, doc
    if seed:
        assert isinstance(doc.get("detail"), str) and doc["detail"], doc
    return doc
