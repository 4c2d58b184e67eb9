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
import re
import signal
import socket
import struct
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

    def __init__(self, workdir, args=(), env=None, metrics=True, threads=2, data_dir=None, preexec_fn=None):
        self.workdir = pathlib.Path(workdir)
        # The data directory survives restarts (start() again, restart()).
        self.data_dir = pathlib.Path(data_dir) if data_dir is not None else self.workdir / "data"
        self.preexec_fn = preexec_fn    # e.g. resource limits for fault tests
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
        data_dir = self.data_dir
        self.workdir.mkdir(parents=True, exist_ok=True)
        data_dir.mkdir(parents=True, exist_ok=True)
        self.stderr_path = self.workdir / f"shardkv-stderr-{self._attempt}.log"
        cmd = [BIN, "--host", HOST, "--port", str(self.port), "--metrics-port", str(self.metrics_port),
               "--threads", str(self.threads), "--data-dir", str(data_dir), *self.args]
        env = dict(os.environ)
        env.update(self.env)
        self._stderr_file = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=self._stderr_file, env=env, preexec_fn=self.preexec_fn)
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

    def kill9(self):
        """SIGKILL (a crash) and wait; no exit-code assertion.  start() or
        restart() brings the node back on the same data directory."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.returncode = self.proc.wait(timeout=10 * TMUL)
        if self._stderr_file and not self._stderr_file.closed:
            self._stderr_file.close()
        return self.returncode

    def restart(self, graceful=True, ready_timeout=10.0):
        """Stops the node (SIGTERM, asserting a clean exit; or SIGKILL when
        graceful is False) and starts it again on the same data directory
        (on a new port)."""
        if graceful:
            self.stop()
            self.assert_clean_exit()
        else:
            self.kill9()
        return self.start(ready_timeout=ready_timeout)

    def stderr_logs(self):
        """Paths of the stderr files of every start of this node, oldest first."""
        return sorted(self.workdir.glob("shardkv-stderr-*.log"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))

    def all_stderr(self):
        return "".join(p.read_bytes().decode("utf-8", "replace") for p in self.stderr_logs())

    def assert_no_sanitizer_reports(self):
        """No start of this node (crashed ones included) printed a sanitizer report."""
        for p in self.stderr_logs():
            err = p.read_bytes().decode("utf-8", "replace")
            for marker in SANITIZER_MARKERS:
                assert marker not in err, f"sanitizer report in {p}:\n{err}"

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


def metric_samples(text):
    """Parses a Prometheus text exposition into (name, labels dict, value) triples."""
    out = []
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)$", line)
        if m:
            out.append((m.group(1), dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or "")),
                        float(m.group(4))))
    return out


def metric_sum(server, name, **labels):
    """Sum of the samples of name whose labels include the given ones (0 when none)."""
    text = requests.get(server.murl("/metrics"), timeout=5 * TMUL).text
    return sum(v for n, got, v in metric_samples(text)
               if n == name and all(got.get(k) == str(w) for k, w in labels.items()))


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


# ---- nodes that must refuse to start -----------------------------------------------------------


def run_node_expect_exit(data_dir, *args, timeout=5.0, env=None):
    """Starts the binary on data_dir (free ports, 127.0.0.1) expecting it to
    exit on its own within timeout (a refused start).  Returns
    (exit code, stderr); the exit code is None when it was still running and
    had to be killed."""
    cmd = [BIN, "--host", HOST, "--port", str(free_port()), "--metrics-port", "0", "--threads", "2",
           "--data-dir", str(data_dir), *args]
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=full_env)
    try:
        _, err = proc.communicate(timeout=timeout * TMUL)
        return proc.returncode, err.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        return None, err.decode("utf-8", "replace")


# ---- the on-disk formats of docs/storage.md (log segments, snapshots) --------------------------

WAL_MAGIC = b"SKVWAL01"
SNAP_MAGIC = b"SKVSNAP1"
SNAP_END_MAGIC = b"SKVSNEND"
SEGMENT_HEADER = 32
RECORD_HEADER = 8
BODY_FIXED = 28
OP_PUT, OP_DELETE = 1, 2


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C_TABLE = _crc32c_table()


def crc32c(data, crc=0):
    """CRC-32C (Castagnoli), table-driven; crc32c(b"123456789") == 0xE3069283."""
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = _CRC32C_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def encode_record(seq, op, key, value=b"", flags=0, expires_ms=0):
    """One log record (u32 body_len, u32 crc32c(body), body), as docs/storage.md describes."""
    if isinstance(key, str):
        key = key.encode()
    body = struct.pack("<QBBHIIQ", seq, op, flags, 0, len(key), len(value), expires_ms) + key + value
    return struct.pack("<II", len(body), crc32c(body)) + body


class Record:
    def __init__(self, offset, size, seq, op, flags, key, value):
        self.offset, self.size = offset, size     # where the framed record starts in its file, bytes
        self.seq, self.op, self.flags, self.key, self.value = seq, op, flags, key, value

    def __repr__(self):
        return f"<Record @{self.offset}+{self.size} seq={self.seq} op={self.op} key={self.key!r}>"


def parse_records(data, start):
    """Parses records back to back from data[start:], checking every CRC;
    returns (records, end offset of the last good one)."""
    out = []
    off = start
    while off + RECORD_HEADER <= len(data):
        body_len, crc = struct.unpack_from("<II", data, off)
        if body_len < BODY_FIXED or off + RECORD_HEADER + body_len > len(data):
            break
        body = data[off + RECORD_HEADER:off + RECORD_HEADER + body_len]
        if crc32c(body) != crc:
            break
        seq, op, flags, _, klen, vlen, _ = struct.unpack_from("<QBBHIIQ", body, 0)
        if BODY_FIXED + klen + vlen != body_len:
            break
        key = body[BODY_FIXED:BODY_FIXED + klen]
        value = body[BODY_FIXED + klen:]
        out.append(Record(off, RECORD_HEADER + body_len, seq, op, flags, key, value))
        off += RECORD_HEADER + body_len
    return out, off


def parse_segment(path):
    """(header dict, [Record], valid end offset) of a log segment; asserts a good header."""
    data = pathlib.Path(path).read_bytes()
    assert len(data) >= SEGMENT_HEADER and data[:8] == WAL_MAGIC, f"{path}: not a log segment"
    version, shard_id, first_seq, _, crc = struct.unpack_from("<IIQII", data, 8)
    assert crc == crc32c(data[:28]), f"{path}: bad header CRC"
    recs, end = parse_records(data, SEGMENT_HEADER)
    return {"version": version, "shard": shard_id, "first_seq": first_seq}, recs, end


def segments(shard_dir):
    """Log segments of a shard directory, oldest first (by name = first seq)."""
    return sorted(pathlib.Path(shard_dir).glob("wal-*.log"))


def snapshots(shard_dir):
    return sorted(pathlib.Path(shard_dir).glob("snap-*.snap"))


def name_seq(path):
    """The 20-digit sequence number in a wal-*/snap-* file name."""
    return int(pathlib.Path(path).stem.split("-", 1)[1])
