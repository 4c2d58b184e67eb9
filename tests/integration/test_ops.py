"""Operational routes: /shards, /health*, /metrics (both ports), and the root."""
import json
import os
import re
import subprocess

import pytest
import requests

import skvtest

from skvtest import TMUL, assert_error_shape

T = 5 * TMUL
PROMTOOL = "/usr/bin/promtool"


def test_shards_shape(start_server):
    s = start_server("--shards", "5")
    for i in range(50):
        assert requests.put(s.url(f"/v1/kv/k{i}"), data=b"v" * i, timeout=T).status_code == 201
    info = s.shards()
    assert info["placement"] == "ring" and info["hash"] == "xxh3" and info["vnodes"] == 100
    assert info["shard_map_version"] == 1
    shards = info["shards"]
    assert [sh["id"] for sh in shards] == list(range(5))
    for sh in shards:
        assert set(sh) >= {"id", "keys", "bytes", "share", "requests"}
        assert sh["keys"] >= 0 and sh["bytes"] >= 0 and 0 < sh["share"] < 1
        assert "data" not in sh
    assert abs(sum(sh["share"] for sh in shards) - 1.0) < 1e-3
    assert sum(sh["keys"] for sh in shards) == info["total_keys"] == 50
    assert sum(sh["bytes"] for sh in shards) == info["total_bytes"]
    assert info["total_bytes"] >= sum(range(50))
    assert sum(sh["requests"] for sh in shards) == 50


def test_shards_data_and_limit(server):
    for i in range(30):
        requests.put(server.url(f"/v1/kv/d{i}"), data=f"value{i}".encode(), timeout=T)
    full = server.shards("?data=1")
    merged = {}
    for sh in full["shards"]:
        assert len(sh["data"]) == sh["keys"]
        merged.update(sh["data"])
    assert merged == {f"d{i}": f"value{i}" for i in range(30)}

    limited = server.shards("?data=1&limit=1")
    for sh in limited["shards"]:
        assert len(sh["data"]) == min(1, sh["keys"])
        assert sh["keys"] == next(x["keys"] for x in full["shards"] if x["id"] == sh["id"])
    zero = server.shards("?data=true&limit=0")
    assert all(sh["data"] == {} for sh in zero["shards"])
    assert all("data" not in sh for sh in server.shards("?data=0")["shards"])


@pytest.mark.parametrize("limit", ["abc", "-1", "10001", "1.5", ""])
def test_shards_bad_limit(server, limit):
    r = requests.get(server.url(f"/shards?data=1&limit={limit}"), timeout=T)
    assert r.status_code == 400, r.text
    assert_error_shape(r.content, code="bad_limit")


def test_shards_data_is_bounded(start_server):
    # Listing holds the shard lock: the answer stops growing past 4 MiB and says so.
    s = start_server("--shards", "1")
    big = b"x" * (1024 * 1024)
    for i in range(6):
        assert requests.put(s.url(f"/v1/kv/big{i}"), data=big, timeout=T).status_code == 201
    r = requests.get(s.url("/shards?data=1&limit=100"), timeout=T)
    assert r.status_code == 200
    assert len(r.content) <= 4 * 1024 * 1024 + 4096
    shard = r.json()["shards"][0]
    assert shard["keys"] == 6
    assert shard.get("data_truncated") is True
    assert 0 < len(shard["data"]) < 6
    small = requests.get(s.url("/shards?data=1&limit=1"), timeout=T).json()["shards"][0]
    assert "data_truncated" not in small


def test_health(server):
    r = requests.get(server.url("/health"), timeout=T)
    assert r.status_code == 200
    doc = r.json()
    assert doc["status"] == "healthy"
    assert isinstance(doc["uptime_seconds"], (int, float)) and doc["uptime_seconds"] >= 0
    assert doc["shard_count"] == len(doc["shards"]) == 8
    assert doc["state"] == "ready"
    r = requests.get(server.url("/health/live"), timeout=T)
    assert r.status_code == 200 and r.json()["status"] == "alive"
    r = requests.get(server.url("/health/ready"), timeout=T)
    assert r.status_code == 200 and r.json()["status"] == "ready"
    # The probes are on the metrics port too; the KV API is not.
    assert requests.get(server.murl("/health/live"), timeout=T).status_code == 200
    assert requests.get(server.murl("/health/ready"), timeout=T).status_code == 200
    r = requests.get(server.murl("/v1/kv/x"), timeout=T)
    assert r.status_code == 404
    assert_error_shape(r.content)


def test_root_lists_routes(server):
    doc = requests.get(server.url("/"), timeout=T).json()
    assert doc["service"] == "shardkv"
    assert "/v1/kv/{key}" in doc["routes"] and "/store" in doc["routes"]


def test_root_is_the_dashboard_for_browsers_and_json_otherwise(server):
    j = requests.get(server.url("/"), timeout=T)
    h = requests.get(server.url("/"), headers={"Accept": "text/html,*/*"}, timeout=T)
    assert j.headers["Content-Type"] == "application/json" and h.headers["Content-Type"].startswith("text/html")
    assert j.headers["Vary"] == "Accept" and h.headers["Vary"] == "Accept"  # caches keep them apart
    ui = requests.get(server.url("/ui/"), timeout=T)
    assert ui.status_code == 200 and ui.content == h.content
    assert requests.get(server.url("/ui/nope.js"), timeout=T).status_code == 404
    with server.raw() as c:  # raw: requests would remove the dot segments itself
        c.send(skvtest.request_bytes("GET", "/ui/../openapi.json"))
        assert c.read_response().status == 404


REQUIRED_METRICS = [
    "shardkv_requests_total{shard=", "shardkv_shard_size{", "shardkv_shard_bytes{", "shardkv_http_requests_total{",
    "shardkv_http_request_duration_seconds_bucket{", "process_cpu_seconds_total", "shardkv_connections",
]


def scrape(url):
    r = requests.get(url, timeout=T)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    return r.text


def sample(text, name, labels):
    """The value of the sample name{labels...}; labels is a dict that must match a subset."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            return float(m.group(4))
    return None


def test_metrics_on_both_ports(server):
    requests.put(server.url("/v1/kv/m"), data=b"x", timeout=T)
    for text in (scrape(server.url("/metrics")), scrape(server.murl("/metrics"))):
        for name in REQUIRED_METRICS:
            assert name in text, name
        # The seed-000 aliases.
        assert "\nrequests_total{shard=" in text and "\nshard_size{shard=" in text
        assert sample(text, "shardkv_shard_size", {"shard": "0"}) is not None


@pytest.mark.skipif(not os.access(PROMTOOL, os.X_OK), reason="promtool not installed")
def test_metrics_pass_promtool(server):
    # Touch many routes and codes so that most label combinations appear.
    requests.put(server.url("/v1/kv/p"), data=b"x", timeout=T)
    requests.get(server.url("/v1/kv/p"), timeout=T)
    requests.get(server.url("/v1/kv/none"), timeout=T)
    requests.post(server.url("/store"), json={"userId": 1, "data": "d"}, timeout=T)
    requests.get(server.url("/nope"), timeout=T)
    for url in (server.url("/metrics"), server.murl("/metrics")):
        text = scrape(url)
        p = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True,
                           timeout=30 * TMUL)
        assert p.returncode == 0, p.stdout + p.stderr


def test_per_shard_counters_move(start_server):
    s = start_server("--shards", "3")
    before = scrape(s.murl("/metrics"))
    for sh in range(3):
        assert sample(before, "shardkv_requests_total", {"shard": str(sh)}) == 0
        assert sample(before, "shardkv_shard_size", {"shard": str(sh)}) == 0
    # userId 4 is pinned to shard 1: one put, two gets.
    requests.post(s.url("/store"), json={"userId": 4, "data": "Diana"}, timeout=T)
    requests.get(s.url("/store/4"), timeout=T)
    requests.get(s.url("/store/4"), timeout=T)
    after = scrape(s.murl("/metrics"))
    assert sample(after, "shardkv_requests_total", {"shard": "1"}) == 3
    assert sample(after, "requests_total", {"shard": "1"}) == 3
    assert sample(after, "shardkv_requests_total", {"shard": "0"}) == 0
    assert sample(after, "shardkv_shard_size", {"shard": "1"}) == 1
    assert sample(after, "shard_size", {"shard": "1"}) == 1
    assert sample(after, "shardkv_shard_bytes", {"shard": "1"}) > 0
    assert sample(after, "shardkv_shard_ops_total", {"shard": "1", "op": "get"}) == 2
    assert sample(after, "shardkv_shard_ops_total", {"shard": "1", "op": "put"}) == 1
    ok = sample(after, "shardkv_http_requests_total", {"route": "/store/{userId}", "method": "GET", "code": "200"})
    assert ok == 2
    assert s.shards()["shards"][1]["requests"] == 3
    assert sample(after, "shardkv_connections", {}) >= 1


def test_access_and_debug_logging(start_server):
    """--access-log and --log-level debug write one line per request and per
    placement decision, with client text escaped (no line injection)."""
    s = start_server("--access-log", "on", "--log-level", "debug", "--hash", "md5")
    requests.put(s.url("/v1/kv/line%0Abreak%22q"), data=b"x", timeout=T)
    requests.post(s.url("/store"), json={"userId": 3, "data": 1}, timeout=T)
    requests.get(s.url("/nope?a=%0A"), timeout=T)
    with s.raw() as c:
        c.send(b"GARBAGE\r\n\r\n")
        assert c.read_response().status == 400
    s.stop()
    err = s.stderr()
    lines = err.splitlines()
    assert any("access" in l and "/v1/kv/line%0Abreak%22q" in l and " 201 " in l for l in lines), err
    assert any("access" in l and " 400 " in l for l in lines), err
    assert any("assigned to shard" in l for l in lines), err
    assert any("pinned" in l and "store:3" in l for l in lines), err
    assert not any(l.startswith("break") for l in lines), err


def test_json_log_format(start_server):
    s = start_server("--log-format", "json", "--log-level", "debug")
    requests.put(s.url("/v1/kv/j%22%0A"), data=b"x", timeout=T)
    s.stop()
    for line in s.stderr().splitlines():
        if line.startswith("{"):
            doc = json.loads(line)
            assert {"ts", "level", "msg"} <= set(doc)
