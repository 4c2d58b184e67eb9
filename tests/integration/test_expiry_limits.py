"""
TTLs (PUT /v1/kv/{key}?ttl=SECONDS: lazy and active expiry, durable across
restarts), the memory and key limits (--max-memory, --max-keys, --eviction
reject|lru) and seed 003's /cache/stats.
"""
import time

import pytest
import requests

import skvtest
from skvtest import TMUL, assert_error_shape

T = 5 * TMUL


def kv(s, key):
    return s.url("/v1/kv/" + key)


def stats(s):
    r = requests.get(s.url("/cache/stats"), timeout=T)
    assert r.status_code == 200, r.text
    return r.json()


def wait_until(pred, seconds):
    deadline = time.monotonic() + seconds * TMUL
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def test_ttl_expires_lazily_and_actively_and_stays_gone(start_server):
    s = start_server("--shards", "4")
    sess = requests.Session()
    assert sess.put(kv(s, "old"), data=b"v1", timeout=T).status_code == 201  # replaced by a TTL write below
    r = sess.put(kv(s, "old") + "?ttl=1", data=b"v2", timeout=T)
    assert r.status_code == 200, r.text
    assert r.json()["expires_at_ms"] > time.time() * 1000
    assert sess.put(kv(s, "lazy") + "?ttl=1", data=b"x", timeout=T).status_code == 201
    for i in range(50):
        assert sess.put(kv(s, f"active{i}") + "?ttl=1", data=b"x", timeout=T).status_code == 201
    assert sess.put(kv(s, "forever"), data=b"stays", timeout=T).status_code == 201
    g = sess.get(kv(s, "lazy"), timeout=T)
    assert g.status_code == 200 and int(g.headers["X-Expires-At-Ms"]) > 0
    # The sweeper removes expired keys nobody reads; a read of one finds it gone either way.
    assert wait_until(lambda: stats(s)["expired"] >= 50, 10), stats(s)
    assert sess.get(kv(s, "lazy"), timeout=T).status_code == 404
    assert sess.get(kv(s, "old"), timeout=T).status_code == 404  # not v1: the expired write replaced it
    assert sess.delete(kv(s, "active3"), timeout=T).status_code == 404
    assert s.shards()["total_keys"] == 1
    st = stats(s)
    assert st["keys_count"] == 1 and st["misses"] >= 2 and st["hits"] >= 1

    for restart in (s.restart, lambda: (s.kill9(), s.start())):
        restart()
        assert sess.get(kv(s, "old"), timeout=T).status_code == 404
        assert sess.get(kv(s, "lazy"), timeout=T).status_code == 404
        assert sess.get(kv(s, "forever"), timeout=T).content == b"stays"
        assert s.shards()["total_keys"] == 1
    s.assert_no_sanitizer_reports()


def test_ttl_survives_restart_until_it_expires(start_server):
    s = start_server("--snapshot-bytes", "4K", "--shards", "2")
    sess = requests.Session()
    for i in range(100):  # enough to roll the log into snapshots, which carry the TTL too
        assert sess.put(kv(s, f"k{i}") + "?ttl=3", data=b"x" * 64, timeout=T).status_code == 201
    s.restart()
    g = sess.get(kv(s, "k7"), timeout=T)
    if g.status_code == 200:  # not yet expired (a slow sanitized run may be past 3 s)
        assert int(g.headers["X-Expires-At-Ms"]) > 0
    assert wait_until(lambda: sess.get(kv(s, "k7"), timeout=T).status_code == 404, 10)
    s.restart()
    assert sess.get(kv(s, "k7"), timeout=T).status_code == 404
    s.assert_no_sanitizer_reports()


@pytest.mark.parametrize("ttl", ["0", "-1", "abc", "1.5", "", "315360001", "99999999999999999999"])
def test_bad_ttl_is_400_and_changes_nothing(start_server, ttl):
    s = start_server()
    r = requests.put(kv(s, "t") + "?ttl=" + ttl, data=b"x", timeout=T)
    assert r.status_code == 400
    assert_error_shape(r.json(), 400, "bad_ttl")
    assert requests.get(kv(s, "t"), timeout=T).status_code == 404


def test_max_keys_reject(start_server):
    s = start_server("--max-keys", "10", "--shards", "2")
    sess = requests.Session()
    for i in range(10):
        assert sess.put(kv(s, f"k{i}"), data=b"x", timeout=T).status_code == 201
    r = sess.put(kv(s, "k10"), data=b"x", timeout=T)
    assert r.status_code == 507
    assert_error_shape(r.json(), 507, "memory_limit")
    assert sess.get(kv(s, "k10"), timeout=T).status_code == 404
    assert sess.delete(kv(s, "k0"), timeout=T).status_code == 200  # deletes always pass
    assert sess.put(kv(s, "k10"), data=b"x", timeout=T).status_code == 201
    st = stats(s)
    assert st["keys_count"] == 10 and st["max_keys_limit"] == 10 and st["eviction_policy"] == "reject"


def test_max_memory_lru_evicts_the_least_recently_used(start_server):
    s = start_server("--max-memory", "64K", "--eviction", "lru", "--shards", "2")
    sess = requests.Session()
    value = b"v" * 900
    hot = [f"hot{i}" for i in range(5)]
    for k in hot:
        assert sess.put(kv(s, k), data=value, timeout=T).status_code == 201
    for i in range(300):  # ~300 KiB through a 64 KiB node
        assert sess.put(kv(s, f"cold{i}"), data=value, timeout=T).status_code in (200, 201)
        for k in hot:  # keep them recently used
            if i % 5 == 0:
                assert sess.get(kv(s, k), timeout=T).status_code in (200, 404)
    st = stats(s)
    assert st["memory_used_bytes"] <= 64 * 1024, st
    assert st["evictions"] > 0 and st["eviction_policy"] == "lru"
    survivors = sum(sess.get(kv(s, f"cold{i}"), timeout=T).status_code == 200 for i in range(300))
    assert 0 < survivors < 300
    # Evictions are logged deletes: what was evicted stays evicted after a restart.
    before = s.shards()["total_keys"]
    s.restart()
    assert s.shards()["total_keys"] == before
    s.assert_no_sanitizer_reports()


def test_lru_never_evicts_internal_records(start_server):
    # Idempotency records (like counters and documents) are not cache keys:
    # LRU evicts user keys only, and refuses the write once none is left.
    s = start_server("--max-keys", "3", "--eviction", "lru", "--shards", "2")
    sess = requests.Session()
    answers = {}
    for i in range(3):
        r = sess.put(kv(s, f"k{i}"), data=b"x", headers={"Idempotency-Key": f"idem-{i}"}, timeout=T)
        assert r.status_code == 201, r.text
        answers[i] = r.json()
    r = sess.put(kv(s, "k3"), data=b"x", timeout=T)
    assert r.status_code == 507, r.text
    st = stats(s)
    assert st["keys_count"] == 3 and st["evictions"] == 3, st  # k0..k2 went, the 3 records stayed
    for i in range(3):  # retries are still answered from the records, limit or not
        r = sess.put(kv(s, f"k{i}"), data=b"x", headers={"Idempotency-Key": f"idem-{i}"}, timeout=T)
        assert r.status_code == 201 and r.headers["Idempotent-Replayed"] == "true", r.text
        assert r.json() == answers[i]


def test_cache_stats_shape_and_methods(start_server):
    s = start_server()
    st = stats(s)
    for field in ("keys_count", "max_keys_limit", "memory_used_bytes", "hits", "misses", "evictions"):
        assert isinstance(st[field], int), (field, st)
    r = requests.post(s.url("/cache/stats"), timeout=T)
    assert r.status_code == 405 and "GET" in r.headers["Allow"]


def test_writes_that_add_nothing_pass_at_the_limit(start_server):
    s = start_server("--max-keys", "4", "--shards", "2")
    sess = requests.Session()
    for i in range(4):
        assert sess.put(kv(s, f"k{i}"), data=b"xxxx", timeout=T).status_code == 201
    assert sess.put(kv(s, "k4"), data=b"x", timeout=T).status_code == 507  # a new key
    r = sess.put(kv(s, "k1"), data=b"yy", timeout=T)  # replacing one adds no key
    assert r.status_code == 200, r.text
    assert sess.get(kv(s, "k1"), timeout=T).content == b"yy"
    assert stats(s)["keys_count"] == 4


def test_memory_limit_judges_only_the_growth(start_server):
    s = start_server("--max-memory", "8K", "--shards", "1")
    sess = requests.Session()
    i = 0
    while sess.put(kv(s, f"m{i}"), data=b"v" * 500, timeout=T).status_code == 201:
        i += 1
        assert i < 100
    assert i > 0
    assert sess.put(kv(s, "m0"), data=b"w" * 400, timeout=T).status_code == 200  # shrinks
    assert sess.put(kv(s, "m0"), data=b"w" * 400, timeout=T).status_code == 200  # same size
    r = sess.put(kv(s, "m0"), data=b"w" * 4000, timeout=T)  # grows past the limit
    assert r.status_code == 507, r.text
    assert sess.get(kv(s, "m0"), timeout=T).content == b"w" * 400
