"""
Hot keys (docs/hotkeys.md): GET /v1/hotkeys after a skewed load ranks the
hottest keys first with counts inside the sketch's bounds, merges the
workers, counts the seed routes, never lists internal keys (counters,
documents, idempotency records); ?limit= validation, methods, binary and
long keys; the shardkv_hot_key_requests metric passes promtool.
"""
import os
import random
import subprocess
import time
import urllib.parse

import pytest
import requests

from skvtest import TMUL, assert_error_shape, metric_samples

T = 10 * TMUL
PROMTOOL = "/usr/bin/promtool"
DECAY_SECONDS = 10
CAPACITY = 32
KEY_MAX = 128

HOT = {"hot-a": 600, "hot-b": 400, "hot-c": 250}
COLD_KEYS = 500
COLD_REQUESTS = 1750


def kv(s, key):
    return s.url("/v1/kv/" + urllib.parse.quote(key, safe=""))


def hotkeys(s, query="", expect=200):
    r = requests.get(s.url("/v1/hotkeys" + query), timeout=T)
    assert r.status_code == expect, r.text
    return r.json()


def check_shape(doc, nshards, limit):
    assert doc["decay_seconds"] == DECAY_SECONDS and doc["capacity"] == CAPACITY
    assert [sh["shard"] for sh in doc["shards"]] == list(range(nshards))
    for sh in doc["shards"]:
        assert set(sh) == {"shard", "requests", "keys"}
        assert isinstance(sh["requests"], int) and sh["requests"] >= 0
        assert len(sh["keys"]) <= limit
        counts = [k["count"] for k in sh["keys"]]
        assert counts == sorted(counts, reverse=True)
        for k in sh["keys"]:
            assert set(k) == {"key", "count", "error", "truncated"}
            assert isinstance(k["key"], str) and isinstance(k["truncated"], bool)
            assert 0 <= k["error"] <= k["count"] and k["count"] >= 1
    assert len(doc["top"]) <= limit
    counts = [k["count"] for k in doc["top"]]
    assert counts == sorted(counts, reverse=True)
    for k in doc["top"]:
        assert set(k) == {"key", "shard", "count", "error", "truncated"}
        entry = {"key": k["key"], "count": k["count"], "error": k["error"], "truncated": k["truncated"]}
        assert entry in doc["shards"][k["shard"]]["keys"]  # top is drawn from the shard lists
    everything = sorted((k["count"] for sh in doc["shards"] for k in sh["keys"]), reverse=True)
    assert counts == everything[:len(counts)]


def skewed_load(s, extra=()):
    """About 3000 requests, shuffled, over 4 keep-alive connections (so over
    both workers, most likely): reads and writes of 3 hot keys and 500 cold
    ones.  Returns the true request count per key and the elapsed seconds."""
    rnd = random.Random(20240605)
    ops = []
    for key, n in HOT.items():
        ops += [key] * n
    ops += [f"cold-{rnd.randrange(COLD_KEYS)}" for _ in range(COLD_REQUESTS)]
    ops += list(extra)
    rnd.shuffle(ops)
    sessions = [requests.Session() for _ in range(4)]
    truth = {}
    t0 = time.monotonic()
    for i, key in enumerate(ops):
        sess = sessions[i % len(sessions)]
        if i % 5 == 0:
            r = sess.put(kv(s, key), data=b"v%d" % i, timeout=T)
            assert r.status_code in (200, 201), r.text
        else:
            r = sess.get(kv(s, key), timeout=T)
            assert r.status_code in (200, 404), r.text
        truth[key] = truth.get(key, 0) + 1
    for sess in sessions:
        sess.close()
    return truth, time.monotonic() - t0


def fresh_epoch(need):
    """Counts are exact only within one decay epoch.  The node's epochs are
    whole multiples of DECAY_SECONDS of CLOCK_MONOTONIC (read coarsely, a
    few ms late), the clock time.monotonic() reads on Linux: waits, if need
    be, until need seconds of an epoch remain, and returns when the epoch
    ends by this clock.  Counts read before then are exact."""
    left = DECAY_SECONDS - time.monotonic() % DECAY_SECONDS
    if left < need + 0.05:
        time.sleep(left + 0.05)  # just past a boundary, also by the node's coarse clock
    now = time.monotonic()
    return now + DECAY_SECONDS - now % DECAY_SECONDS


def assert_count(count, real, exact):
    """count is real, or at most halved once when an epoch boundary passed."""
    if exact:
        assert count == real, (count, real)
    else:
        assert (real >> 1) - 1 <= count <= real, (count, real)


NEED = min(3.0 * TMUL, DECAY_SECONDS - 1)  # seconds one short test takes, at most


def halvings(elapsed):
    """The most epoch boundaries (each halves every count) that a load
    lasting elapsed seconds, read right after it, can have crossed: the
    boundaries are every DECAY_SECONDS of the node's monotonic clock, not
    aligned with the load's start."""
    return int(elapsed // DECAY_SECONDS) + 1


def test_skewed_load_hottest_first(start_server):
    s = start_server("--shards", "4", "--fsync", "never")
    t0 = time.monotonic()
    truth, _ = skewed_load(s)
    doc = hotkeys(s, "?limit=5")
    k = halvings(time.monotonic() - t0)
    check_shape(doc, 4, 5)
    top = doc["top"]
    assert [e["key"] for e in top[:3]] == ["hot-a", "hot-b", "hot-c"], top
    for e in top[:3]:
        real = truth[e["key"]]
        # Space-Saving: count - error <= true <= count; decay only lowers both.
        assert e["count"] - e["error"] <= real, e
        assert e["count"] >= (real >> k) - 1, (e, real, k)
        assert not e["truncated"]
        # The same key in its shard's list.
        assert e["key"] in [x["key"] for x in doc["shards"][e["shard"]]["keys"]]
    # A shard holding a hot key lists its hottest hot key first.
    for e in top[:3]:
        same_shard = [y["key"] for y in top[:3] if y["shard"] == e["shard"]]
        assert doc["shards"][e["shard"]]["keys"][0]["key"] == max(same_shard, key=HOT.get)
    total = sum(truth.values())
    assert (total >> k) - 4 * 2 <= sum(sh["requests"] for sh in doc["shards"]) <= total
    # Placement agrees with the KV API's X-Shard.
    for e in top[:3]:
        assert int(requests.get(kv(s, e["key"]), timeout=T).headers["X-Shard"]) == e["shard"]


def test_default_limit_and_limits(start_server):
    s = start_server("--shards", "3", "--fsync", "never")
    epoch_end = fresh_epoch(NEED)
    for i in range(40):  # 40 distinct keys, i % 4 + 1 requests each
        for _ in range(i % 4 + 1):
            requests.get(kv(s, f"k{i}"), timeout=T)
    doc = hotkeys(s)
    check_shape(doc, 3, 10)
    assert len(doc["top"]) == 10
    one = hotkeys(s, "?limit=1")
    check_shape(one, 3, 1)
    assert len(one["top"]) == 1 and one["top"][0]["count"] == doc["top"][0]["count"]
    big = hotkeys(s, "?limit=100")
    exact = time.monotonic() < epoch_end
    check_shape(big, 3, 100)
    assert len(big["top"]) == 40  # few keys per shard: every one is listed, exactly
    assert all(e["error"] == 0 for e in big["top"])
    for e in big["top"]:
        assert_count(e["count"], int(e["key"][1:]) % 4 + 1, exact)
    for bad in ("0", "101", "-1", "abc", "", "1.5", "10%zz", "99999999999999999999999"):
        r = requests.get(s.url("/v1/hotkeys?limit=" + bad), timeout=T)
        assert r.status_code == 400, (bad, r.text)
        assert_error_shape(r.content, code="bad_limit")


def test_methods(server):
    r = requests.head(server.url("/v1/hotkeys"), timeout=T)
    assert r.status_code == 200 and r.content == b""
    assert r.headers["Content-Type"].startswith("application/json")
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        r = requests.request(method, server.url("/v1/hotkeys"), timeout=T)
        assert r.status_code == 405, (method, r.status_code)
        assert r.headers["Allow"] == "GET, HEAD, OPTIONS"
        assert_error_shape(r.content, code="method_not_allowed")
    r = requests.options(server.url("/v1/hotkeys"), timeout=T)
    assert r.status_code == 204 and "GET" in r.headers["Allow"]


def test_internal_keys_never_listed(start_server):
    s = start_server("--shards", "4", "--fsync", "never")
    epoch_end = fresh_epoch(NEED)
    for i in range(30):
        assert requests.post(s.url(f"/v1/counters/visits{i % 3}/incr?by=2"), timeout=T).status_code in (200, 201)
        requests.get(s.url(f"/v1/counters/visits{i % 3}"), timeout=T)
        requests.put(kv(s, "idem-user-key"), data=b"x", headers={"Idempotency-Key": f"op-{i % 2}"}, timeout=T)
    for uid in range(10):
        r = requests.post(s.url("/users/"), json={"user_id": uid, "name": "U", "region": "US", "email": "u@x"},
                          timeout=T)
        assert r.status_code in (200, 201), r.text
        requests.get(s.url(f"/users/{uid}"), timeout=T)
    doc = hotkeys(s, "?limit=100")
    exact = time.monotonic() < epoch_end
    check_shape(doc, 4, 100)
    keys = [e["key"] for sh in doc["shards"] for e in sh["keys"]]
    assert keys == ["idem-user-key"], keys  # the user key, never the \0-prefixed internal ones
    assert_count(doc["top"][0]["count"], 30, exact)
    metrics = requests.get(s.url("/metrics"), timeout=T).text
    labels = [lab["key"] for name, lab, _ in metric_samples(metrics) if name == "shardkv_hot_key_requests"]
    assert labels == ["idem-user-key"]


def test_seed_routes_are_counted(start_server):
    s = start_server("--shards", "2", "--fsync", "never")
    for i in range(20):
        assert requests.post(s.url("/put"), json={"key": "seed-hot", "value": i}, timeout=T).status_code in (200, 201)
        assert requests.get(s.url("/get?key=seed-hot"), timeout=T).status_code == 200
        requests.put(s.url("/kv"), json={"data": {"key": "seed3", "value": {"n": i}}}, timeout=T)
    requests.post(s.url("/store"), json={"userId": 7, "data": "d"}, timeout=T)
    doc = hotkeys(s, "?limit=10")
    by_key = {e["key"]: e for e in doc["top"]}
    assert (40 >> halvings(0)) <= by_key["seed-hot"]["count"] <= 40  # 20 writes + 20 reads
    assert "seed3" in by_key and "store:7" in by_key


def test_binary_and_long_keys(start_server):
    s = start_server("--shards", "2", "--fsync", "never")
    epoch_end = fresh_epoch(NEED)
    long_key = "L" * 300
    weird = ["a%00b", "quote%22back%5Cslash", "new%0Aline", "bin%FF%FE", "caf%C3%A9"]
    for _ in range(3):
        for path in weird:
            assert requests.put(s.url("/v1/kv/" + path), data=b"x", timeout=T).status_code in (200, 201)
        assert requests.put(kv(s, long_key), data=b"x", timeout=T).status_code in (200, 201)
    doc = hotkeys(s, "?limit=100")
    exact = time.monotonic() < epoch_end
    check_shape(doc, 2, 100)
    by_key = {e["key"]: e for e in doc["top"]}
    assert by_key["L" * KEY_MAX]["truncated"] is True
    assert_count(by_key["L" * KEY_MAX]["count"], 3, exact)
    assert by_key["a\x00b"]["truncated"] is False
    assert 'quote"back\\slash' in by_key and "new\nline" in by_key and "café" in by_key
    assert "bin\ufffd\ufffd" in by_key  # bytes that are not UTF-8, as the rest of the API writes them
    text = requests.get(s.murl("/metrics"), timeout=T).text
    labels = {lab["key"] for name, lab, _ in metric_samples(text) if name == "shardkv_hot_key_requests"}
    assert labels  # top 3 per shard: some of the keys above
    assert all("\n" not in lab for lab in labels)
    if os.access(PROMTOOL, os.X_OK):
        p = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True,
                           timeout=30 * TMUL)
        assert p.returncode == 0, p.stdout + p.stderr


@pytest.mark.skipif(not os.access(PROMTOOL, os.X_OK), reason="promtool not installed")
def test_metric_passes_promtool(start_server):
    s = start_server("--shards", "4", "--fsync", "never")
    t0 = time.monotonic()
    skewed_load(s, extra=["w\"e\\ird", "ctl\x01key"] * 5)
    for url in (s.url("/metrics"), s.murl("/metrics")):
        text = requests.get(url, timeout=T).text
        assert "# TYPE shardkv_hot_key_requests gauge" in text
        p = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True,
                           timeout=30 * TMUL)
        assert p.returncode == 0, p.stdout + p.stderr
        samples = [(lab, v) for name, lab, v in metric_samples(text) if name == "shardkv_hot_key_requests"]
        per_shard = {}
        for lab, v in samples:
            assert set(lab) == {"shard", "rank", "key"}
            per_shard.setdefault(lab["shard"], []).append((int(lab["rank"]), v, lab["key"]))
        assert per_shard and all(len(v) <= 3 for v in per_shard.values())
        for ranks in per_shard.values():
            assert [r for r, _, _ in sorted(ranks)] == list(range(1, len(ranks) + 1))
            values = [v for _, v, _ in sorted(ranks)]
            assert values == sorted(values, reverse=True)
        hot_a = [(lab, v) for lab, v in samples if lab["key"] == "hot-a"]
        assert len(hot_a) == 1 and hot_a[0][0]["rank"] == "1"  # the hottest key of the node
        assert (HOT["hot-a"] >> halvings(time.monotonic() - t0)) - 1 <= hot_a[0][1]


def test_idle_node_lists_nothing(server):
    doc = hotkeys(server)
    check_shape(doc, 8, 10)
    assert doc["top"] == [] and all(sh["requests"] == 0 and sh["keys"] == [] for sh in doc["shards"])
    text = requests.get(server.murl("/metrics"), timeout=T).text
    assert "# TYPE shardkv_hot_key_requests gauge" in text
    assert not [n for n, _, _ in metric_samples(text) if n == "shardkv_hot_key_requests"]
