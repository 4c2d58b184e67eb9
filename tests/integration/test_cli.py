"""The command line: --help, --version, bad flags, environment variables, the
`ring` subcommand, and start-up failures."""
import json
import re
import signal
import socket
import subprocess
import time

import pytest
import requests

import skvtest
from skvtest import HOST, TMUL, free_port, run_cli

FLAGS = ["--host", "--port", "--metrics-port", "--data-dir", "--shards", "--threads", "--placement", "--hash",
         "--vnodes", "--log-level", "--log-format", "--access-log", "--max-header-bytes", "--max-uri-bytes",
         "--max-body-bytes", "--max-key-bytes", "--max-value-bytes", "--max-connections", "--idle-timeout",
         "--request-timeout", "--shutdown-timeout", "--help", "--version"]


def test_help_mentions_every_flag():
    p = run_cli("--help")
    assert p.returncode == 0, p.stderr
    for flag in FLAGS:
        assert flag in p.stdout, flag
    assert "SHARDKV_" in p.stdout
    assert "ring" in p.stdout


def test_version():
    p = run_cli("--version")
    assert p.returncode == 0
    assert p.stdout.startswith("shardkv ")
    assert len(p.stdout.split()) == 2 and p.stdout.split()[1][0].isdigit()


@pytest.mark.parametrize("args", [["--bogus"], ["--shards", "0"], ["--shards", "abc"], ["--placement", "nope"],
                                  ["--hash", "sha1"], ["--idle-timeout", "5h"], ["--max-body-bytes", "1T"],
                                  ["--port", "70000"], ["stray-argument"], ["--shards"]])
def test_bad_flags_exit_2(args):
    p = run_cli(*args)
    assert p.returncode == 2, (args, p.returncode, p.stderr)
    assert p.stderr.startswith("shardkv"), p.stderr
    assert p.stderr.strip(), "no message"
    assert "\n" not in p.stderr.strip(), "message should be one line"


def test_bad_env_var_exit_2():
    p = run_cli(env={"SHARDKV_SHARDS": "zero"})
    assert p.returncode == 2
    assert "SHARDKV_SHARDS" in p.stderr


def test_env_var_honoured(start_server):
    s = start_server(env={"SHARDKV_SHARDS": "3", "SHARDKV_PLACEMENT": "modulo"})
    info = s.shards()
    assert len(info["shards"]) == 3
    assert info["placement"] == "modulo"


def test_flag_beats_env(start_server):
    s = start_server("--shards", "5", env={"SHARDKV_SHARDS": "3"})
    assert len(s.shards()["shards"]) == 5


def test_size_and_duration_suffixes(start_server):
    s = start_server("--max-body-bytes", "1K", "--idle-timeout", "1m", "--request-timeout", "2s")
    r = requests.put(s.url("/v1/kv/a"), data=b"x" * 1024, timeout=5 * TMUL)
    assert r.status_code == 201
    with s.raw() as c:
        c.send(b"PUT /v1/kv/a HTTP/1.1\r\nHost: h\r\nContent-Length: 1025\r\n\r\n")
        assert c.read_response().status == 413


def test_ring_subcommand():
    p = run_cli("ring", "--shards", "4", "--keys", "10000")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip()
    p = run_cli("ring", "--shards", "4", "--keys", "10000", "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["shards"] == 4 and doc["keys"] == 10000
    assert sum(doc["counts"]) == 10000 and len(doc["counts"]) == 4
    p = run_cli("ring", "--shards", "3", "--keys", "1000", "--hash", "md5", "--placement", "jump", "--json")
    assert p.returncode == 0 and json.loads(p.stdout)["placement"] == "jump"
    p = run_cli("ring", "--help")
    assert p.returncode == 0 and "--keys" in p.stdout
    p = run_cli("ring", "--shards", "0")
    assert p.returncode == 2 and p.stderr.strip()


def test_ring_key_values_measure_a_low_cardinality_shard_key():
    p = run_cli("ring", "--hash", "md5", "--shards", "8", "--keys", "1000", "--json",
                "--key-values", "US=40,EU=30,APAC=20,LATAM=7,AFRICA=3")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["keys"] == 1000 and sum(doc["counts"]) == 1000
    assert sorted(c for c in doc["counts"] if c) == [30, 70, 200, 300, 400]  # one shard per region
    assert doc["moved_on_add"] == 0 or doc["moved_on_add"] in (0.03, 0.07, 0.2, 0.3, 0.4)
    for bad in ("", "US=", "US=x", ",", "US=1,,EU=2"):
        p = run_cli("ring", "--key-values", bad)
        assert p.returncode == 2 and "--key-values" in p.stderr, bad


def test_port_in_use_fails_clearly(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind((HOST, 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        p = run_cli("--host", HOST, "--port", str(port), "--metrics-port", "0", "--threads", "2",
                    "--data-dir", str(tmp_path / "d"))
        assert p.returncode not in (0, None)
        assert "in use" in p.stderr.lower() and str(port) in p.stderr, p.stderr
        # Same for the metrics port.
        p = run_cli("--host", HOST, "--port", str(free_port()), "--metrics-port", str(port), "--threads", "2",
                    "--data-dir", str(tmp_path / "d"))
        assert p.returncode not in (0, None)
        assert "in use" in p.stderr.lower() and "metrics" in p.stderr, p.stderr


def test_bad_host_fails_clearly(tmp_path):
    p = run_cli("--host", "not-an-address", "--port", "0", "--metrics-port", "0", "--data-dir", str(tmp_path / "d"))
    assert p.returncode not in (0, None)
    assert "not-an-address" in p.stderr


def test_port_zero_picks_a_port(tmp_path):
    """--port 0 binds some free port and logs it."""
    proc = subprocess.Popen([skvtest.BIN, "--host", HOST, "--port", "0", "--metrics-port", "0", "--threads", "1",
                             "--data-dir", str(tmp_path / "d")], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10 * TMUL
        line = b""
        while time.monotonic() < deadline and b"listening" not in line:
            line = proc.stderr.readline()
            if not line:
                break
        m = re.search(rb"http://[0-9.]+:(\d+)", line)
        assert m, line
        port = int(m.group(1))
        assert port > 0
        assert requests.get(f"http://{HOST}:{port}/health/live", timeout=5 * TMUL).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10 * TMUL)
    assert proc.returncode == 0, err
    for marker in skvtest.SANITIZER_MARKERS:
        assert marker.encode() not in err
