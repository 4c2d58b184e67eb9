"""
Sharded counters (docs/counters.md): the canonical /v1/counters routes, the
seed 002 routes (/counter, /counter/increment, /counter/decrement,
/counter/value), exact sums under concurrent increments, the int64 limits
(409 counter_overflow, never a wrapped value, also under concurrency),
restarts (graceful and kill -9) and Idempotency-Key retries (also after the
counter was deleted and created again with another K), deletes that fail at
the disk or are cut short by a crash, the reclaiming of a deleted counter's
sub-counters, and --max-keys / --max-memory (a refused request changes
nothing).
"""
import re
import resource
import signal
import threading
import time
import urllib.parse

import pytest
import requests

import skvtest
from skvtest import TMUL, assert_error_shape

T = 10 * TMUL
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


# ---- helpers -------------------------------------------------------------------------------------


def curl(s, name, action=""):
    path = "/v1/counters/" + urllib.parse.quote(name, safe="")
    return s.url(path + ("/" + action if action else ""))


def incr(s, name, by=None, sess=requests, expect=(200, 201), headers=None, decr=False):
    url = curl(s, name, "decr" if decr else "incr")
    if by is not None:
        url += f"?by={by}"
    r = sess.post(url, timeout=T, headers=headers or {})
    if expect:
        assert r.status_code in expect, (name, by, r.status_code, r.text)
    return r


def value(s, name):
    r = requests.get(curl(s, name), timeout=T)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert sum(sc["value"] for sc in doc["sub_counters"]) == doc["value"], doc
    return doc["value"]


def info(s, name):
    r = requests.get(curl(s, name), timeout=T)
    assert r.status_code == 200, r.text
    return r.json()


def seed_create(s, name, headers=None):
    return requests.post(s.url("/counter"), json={"name": name}, timeout=T, headers=headers or {})


def seed_change(s, counter_id, op="increment", headers=None):
    return requests.put(s.url("/counter/" + op), json={"counter_id": counter_id}, timeout=T, headers=headers or {})


def seed_value(s, counter_id, path="/counter/value"):
    return requests.get(s.url(path), params={"counter_id": counter_id}, timeout=T)


# ---- canonical routes ----------------------------------------------------------------------------


def test_incr_creates_and_returns_the_new_total(server):
    r = incr(server, "hits")
    assert r.status_code == 201, r.text
    doc = r.json()
    assert doc["name"] == "hits" and doc["value"] == 1 and doc["created"] is True and doc["k"] == 8
    assert r.headers["X-Shard"] == str(doc["shard"])
    r = incr(server, "hits", 5)
    assert r.status_code == 200 and r.json()["value"] == 6 and r.json()["created"] is False
    r = incr(server, "hits", 2, decr=True)
    assert r.status_code == 200 and r.json()["value"] == 4 and r.json()["delta"] == -2
    r = incr(server, "hits", -10)  # a negative by on incr subtracts
    assert r.json()["value"] == -6
    r = incr(server, "hits", -7, decr=True)  # and on decr adds
    assert r.json()["value"] == 1

    doc = info(server, "hits")
    assert doc["value"] == 1 and doc["k"] == 8
    assert re.fullmatch(r"[0-9a-f]{16}", doc["id"])
    assert sorted(doc["shards"]) == list(range(8))
    assert [sc["shard"] for sc in doc["sub_counters"]] == doc["shards"]

    r = requests.head(curl(server, "hits"), timeout=T)
    assert r.status_code == 200 and r.content == b"" and int(r.headers["Content-Length"]) > 0


def test_unknown_counter_is_404(server):
    for r in (requests.get(curl(server, "nope"), timeout=T),
              requests.delete(curl(server, "nope"), timeout=T),
              seed_value(server, "nope"),
              seed_value(server, "nope", "/counter"),
              seed_change(server, "nope"),
              seed_change(server, "nope", "decrement")):
        assert r.status_code == 404, r.text
        assert_error_shape(r.content, code="counter_not_found")
    # the seed's increment does not create
    assert requests.get(curl(server, "nope"), timeout=T).status_code == 404


@pytest.mark.parametrize("by", ["abc", "0", "1.5", "", "+3", "01", "9223372036854775808", "-9223372036854775809",
                                "1e3"])
def test_bad_by_is_400(server, by):
    r = requests.post(curl(server, "b") + "/incr?by=" + urllib.parse.quote(by), timeout=T)
    assert r.status_code == 400, (by, r.text)
    assert_error_shape(r.content, code="bad_by")
    assert requests.get(curl(server, "b"), timeout=T).status_code == 404  # nothing was created


def test_decr_by_int64_min_is_400_but_incr_takes_it(server):
    r = requests.post(curl(server, "m") + f"/decr?by={INT64_MIN}", timeout=T)
    assert r.status_code == 400
    assert_error_shape(r.content, code="bad_by")
    r = incr(server, "m", INT64_MIN)
    assert r.json()["value"] == INT64_MIN


def test_methods_and_unknown_subroutes(server):
    cases = [
        ("PATCH", curl(server, "x"), "GET, HEAD, PUT, DELETE, OPTIONS"),
        ("POST", curl(server, "x"), "GET, HEAD, PUT, DELETE, OPTIONS"),
        ("GET", curl(server, "x", "incr"), "POST, OPTIONS"),
        ("PUT", curl(server, "x", "decr"), "POST, OPTIONS"),
        ("DELETE", server.url("/counter/increment"), "PUT, OPTIONS"),
        ("POST", server.url("/counter/value"), "GET, HEAD, OPTIONS"),
        ("DELETE", server.url("/counter"), "GET, HEAD, POST, OPTIONS"),
    ]
    for method, url, allow in cases:
        r = requests.request(method, url, timeout=T)
        assert r.status_code == 405, (method, url, r.text)
        assert r.headers["Allow"] == allow
        assert_error_shape(r.content, code="method_not_allowed")
    r = requests.options(curl(server, "x", "incr"), timeout=T)
    assert r.status_code == 204 and r.headers["Allow"] == "POST, OPTIONS"
    for path in ("/v1/counters/x/foo", "/v1/counters/x/incr/more", "/v1/counters/x/"):
        r = requests.post(server.url(path), timeout=T)
        assert r.status_code == 404, (path, r.text)
        assert_error_shape(r.content)


def test_names(server):
    # any bytes but NUL, percent-encoded in the path; '/' as %2F
    for name in ("a/b", "späce name", "100%", "x" * 300):
        r = incr(server, name, 3)
        assert r.json()["name"] == name
        assert value(server, name) == 3
    r = requests.post(server.url("/v1/counters/a%00b/incr"), timeout=T)
    assert r.status_code == 400
    assert_error_shape(r.content, code="bad_name")
    with server.raw() as c:  # requests would re-quote the bad escape
        c.send(skvtest.request_bytes("POST", "/v1/counters/a%G0/incr"))
        r = c.read_response()
    assert r.status == 400
    assert_error_shape(r.body, code="bad_name")
    r = requests.post(curl(server, "n" * 5000, "incr"), timeout=T)
    assert r.status_code == 400
    assert_error_shape(r.content, code="name_too_large")


def test_put_with_explicit_k(server):
    r = requests.put(curl(server, "three"), json={"k": 3}, timeout=T)
    assert r.status_code == 201, r.text
    doc = r.json()
    assert doc["k"] == 3 and len(set(doc["shards"])) == 3 and doc["created"] is True
    r = requests.put(curl(server, "three"), json={"k": 3}, timeout=T)
    assert r.status_code == 200 and r.json()["created"] is False and r.json()["shards"] == doc["shards"]
    r = requests.put(curl(server, "three"), json={"k": 4}, timeout=T)
    assert r.status_code == 409
    assert_error_shape(r.content, code="counter_exists")
    for i in range(30):
        incr(server, "three")
    got = info(server, "three")
    assert got["value"] == 30 and got["k"] == 3 and got["shards"] == doc["shards"]

    for body in ({"k": 0}, {"k": 9}, {"k": "2"}, {"k": 1.5}, [1]):
        r = requests.put(curl(server, "bad-k"), json=body, timeout=T)
        assert r.status_code == 400, (body, r.text)
    r = requests.put(curl(server, "bad-k"), data=b"{nope", timeout=T)
    assert r.status_code == 400
    assert_error_shape(r.content, code="invalid_json")
    assert requests.get(curl(server, "bad-k"), timeout=T).status_code == 404

    r = requests.put(curl(server, "default-k"), timeout=T)  # no body: the default K
    assert r.status_code == 201 and r.json()["k"] == 8
    assert info(server, "default-k")["value"] == 0

    r = requests.put(curl(server, "one"), json={"k": 1}, timeout=T)
    assert r.status_code == 201 and len(r.json()["shards"]) == 1


def test_delete(server):
    incr(server, "gone", 41)
    incr(server, "gone")
    r = requests.delete(curl(server, "gone"), timeout=T)
    assert r.status_code == 200, r.text
    assert r.json()["deleted"] is True and r.json()["value"] == 42
    assert requests.get(curl(server, "gone"), timeout=T).status_code == 404
    # a new counter of the same name starts from zero (the old sub-counters do not come back)
    r = incr(server, "gone", 5)
    assert r.status_code == 201 and r.json()["value"] == 5
    assert value(server, "gone") == 5


def test_durability_query(server):
    r = requests.post(curl(server, "async", "incr") + "?durability=async", timeout=T)
    assert r.status_code == 202, r.text
    r = requests.post(curl(server, "async", "incr") + "?durability=maybe", timeout=T)
    assert r.status_code == 400
    assert_error_shape(r.content, code="bad_durability")
    assert value(server, "async") == 1


def test_metrics_count_counter_routes_and_shard_ops(server):
    before = skvtest.metric_sum(server, "shardkv_shard_ops_total", op="put")
    incr(server, "metered")
    incr(server, "metered")
    assert skvtest.metric_sum(server, "shardkv_shard_ops_total", op="put") >= before + 2
    assert skvtest.metric_sum(server, "shardkv_http_requests_total", route="/v1/counters/{name}") >= 2


# ---- seed 002 --------------------------------------------------------------------------------------


def test_seed_routes(server):
    r = seed_create(server, "example-counter")
    assert r.status_code == 201, r.text
    doc = r.json()
    cid = doc["counter_id"]
    assert re.fullmatch(r"[0-9a-f]{16}", cid)
    assert doc["counter_name"] == "example-counter" and len(set(doc["shards"])) == 8
    r = seed_create(server, "example-counter")
    assert r.status_code == 200 and r.json()["counter_id"] == cid

    # by id and by name (the seed README's curl examples use the name)
    assert seed_change(server, cid).json()["value"] == 1
    r = seed_change(server, "example-counter")
    assert r.status_code == 200 and r.json() == {"counter_id": cid, "counter_name": "example-counter", "value": 2}
    assert seed_change(server, cid, "decrement").json()["value"] == 1
    for ident in (cid, "example-counter"):
        for path in ("/counter/value", "/counter"):
            r = seed_value(server, ident, path)
            assert r.status_code == 200, r.text
            assert r.json()["counter_id"] == cid and r.json()["value"] == 1
    # the same counter on the canonical routes
    doc = info(server, "example-counter")
    assert doc["id"] == cid and doc["value"] == 1

    # the README's exact curl bodies (no JSON Content-Type)
    r = requests.put(server.url("/counter/increment"), data='{"counter_id": "example-counter"}', timeout=T)
    assert r.status_code == 200 and r.json()["value"] == 2


def test_seed_errors(server):
    seed_create(server, "s")
    cases = [
        requests.post(server.url("/counter"), data=b"", timeout=T),
        requests.post(server.url("/counter"), data=b"{bad", timeout=T),
        requests.post(server.url("/counter"), json=["s"], timeout=T),
        requests.post(server.url("/counter"), json={"nom": "s"}, timeout=T),
        requests.post(server.url("/counter"), json={"name": {"a": 1}}, timeout=T),
        requests.post(server.url("/counter"), json={"name": ""}, timeout=T),
        requests.put(server.url("/counter/increment"), json={}, timeout=T),
        requests.put(server.url("/counter/decrement"), json={"counter_id": None}, timeout=T),
        requests.get(server.url("/counter/value"), timeout=T),
    ]
    for r in cases:
        assert r.status_code == 400, (r.request.method, r.request.url, r.request.body, r.text)
        assert_error_shape(r.content, seed=True)
    with server.raw() as c:  # requests would re-quote the bad escape
        c.send(skvtest.request_bytes("GET", "/counter/value?counter_id=%zz"))
        r = c.read_response()
    assert r.status == 400
    assert_error_shape(r.body, code="bad_counter_id", seed=True)
    assert seed_value(server, "s").json()["value"] == 0


# ---- concurrency -------------------------------------------------------------------------------


def run_threads(n, fn):
    errors = []

    def wrap(i):
        try:
            fn(i)
        except Exception as e:  # reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=wrap, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120 * TMUL)
    assert not any(t.is_alive() for t in threads), "a client thread hung"
    assert not errors, errors[:3]


def test_concurrent_increments_sum_exactly(server):
    seen = []

    def client(i):
        with requests.Session() as sess:
            for _ in range(200):
                r = incr(server, "conc", sess=sess)
                seen.append(r.json()["value"])

    run_threads(8, client)
    doc = info(server, "conc")
    assert doc["value"] == 1600
    assert sum(sc["value"] for sc in doc["sub_counters"]) == 1600
    assert sum(1 for sc in doc["sub_counters"] if sc["value"] != 0) > 1, doc  # spread over the sub-counters
    assert len(seen) == 1600 and all(1 <= v <= 1600 for v in seen)


def test_concurrent_mixed_changes(server):
    def client(i):
        with requests.Session() as sess:
            for _ in range(100):
                incr(server, "mixed", 3 if i % 2 else 2, sess=sess, decr=i % 2 == 0)

    run_threads(8, client)
    assert value(server, "mixed") == 4 * 100 * 3 - 4 * 100 * 2


def test_concurrent_increments_at_the_limit_are_exact(server):
    incr(server, "edge", INT64_MAX - 50)
    results = []

    def client(i):
        with requests.Session() as sess:
            for _ in range(12):
                r = incr(server, "edge", sess=sess, expect=(200, 409))
                results.append(r.status_code)
                if r.status_code == 409:
                    assert_error_shape(r.content, code="counter_overflow")
                else:
                    assert r.json()["value"] <= INT64_MAX

    run_threads(8, client)
    assert results.count(200) == 50 and results.count(409) == 96 - 50
    assert value(server, "edge") == INT64_MAX


# ---- int64 limits ----------------------------------------------------------------------------------


def test_overflow_at_int64_max(server):
    r = incr(server, "big", INT64_MAX)
    assert r.json()["value"] == INT64_MAX
    for by in (1, 2, INT64_MAX):
        r = incr(server, "big", by, expect=(409,))
        assert_error_shape(r.content, code="counter_overflow")
    assert value(server, "big") == INT64_MAX
    assert incr(server, "big", decr=True).json()["value"] == INT64_MAX - 1
    assert incr(server, "big").json()["value"] == INT64_MAX
    incr(server, "big", expect=(409,))
    # far down again, through INT64_MIN's side
    assert incr(server, "big", INT64_MAX, decr=True).json()["value"] == 0
    assert incr(server, "big", INT64_MIN).json()["value"] == INT64_MIN
    assert value(server, "big") == INT64_MIN


def test_overflow_at_int64_min(server):
    assert incr(server, "small", INT64_MAX, decr=True).json()["value"] == -INT64_MAX
    assert incr(server, "small", decr=True).json()["value"] == INT64_MIN
    r = incr(server, "small", decr=True, expect=(409,))
    assert_error_shape(r.content, code="counter_overflow")
    incr(server, "small", -1, expect=(409,))
    assert value(server, "small") == INT64_MIN
    assert incr(server, "small").json()["value"] == INT64_MIN + 1


def test_many_large_increments_hit_the_limit_exactly(server):
    step = 2**61
    for i in range(1, 4):
        assert incr(server, "large", step).json()["value"] == i * step
    incr(server, "large", step, expect=(409,))
    assert incr(server, "large", INT64_MAX - 3 * step).json()["value"] == INT64_MAX
    incr(server, "large", expect=(409,))
    # small steps from every worker keep working below the limit
    for _ in range(20):
        incr(server, "large", decr=True)
    for _ in range(20):
        incr(server, "large")
    assert value(server, "large") == INT64_MAX


def test_single_sub_counter_overflow(server):
    requests.put(curl(server, "k1"), json={"k": 1}, timeout=T)
    incr(server, "k1", INT64_MAX - 1)
    incr(server, "k1")
    incr(server, "k1", expect=(409,))
    assert value(server, "k1") == INT64_MAX


# ---- restarts ------------------------------------------------------------------------------------


def fill(s):
    incr(s, "r-hits", 7)
    for _ in range(20):
        incr(s, "r-hits")
    requests.put(curl(s, "r-three"), json={"k": 3}, timeout=T)
    for _ in range(10):
        incr(s, "r-three", 2, decr=True)
    incr(s, "r-max", INT64_MAX)
    cid = seed_create(s, "r-seed").json()["counter_id"]
    seed_change(s, cid)
    seed_change(s, cid)
    return cid


def check(s, cid):
    assert value(s, "r-hits") == 27
    assert value(s, "r-three") == -20 and info(s, "r-three")["k"] == 3
    assert value(s, "r-max") == INT64_MAX
    incr(s, "r-max", expect=(409,))  # the budgets survived too
    assert seed_value(s, cid).json()["value"] == 2
    assert seed_change(s, cid).json()["value"] == 3
    assert incr(s, "r-hits").json()["value"] == 28


@pytest.mark.parametrize("graceful", [True, False], ids=["sigterm", "kill9"])
def test_restart_keeps_counters(start_server, graceful):
    s = start_server()
    cid = fill(s)
    s.restart(graceful=graceful)
    check(s, cid)
    s.restart(graceful=graceful)  # and again, after writes on the recovered state
    assert value(s, "r-hits") == 28
    assert seed_value(s, cid).json()["value"] == 3


# ---- idempotency -----------------------------------------------------------------------------------


def test_idempotent_increment_applied_once(server):
    h = {"Idempotency-Key": "incr-1"}
    first = incr(server, "idem", 5, headers=h)
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    for _ in range(3):
        again = incr(server, "idem", 5, headers=h)
        assert again.status_code == 201 and again.content == first.content
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.headers["X-Shard"] == first.headers["X-Shard"]
    assert value(server, "idem") == 5
    # the same key with another request
    r = incr(server, "idem", 6, headers=h, expect=(422,))
    assert_error_shape(r.content, code="idempotency_key_reused")
    r = incr(server, "idem", 5, headers=h, decr=True, expect=(422,))
    # other keys land where their key says, and apply once each
    for i in range(16):
        hk = {"Idempotency-Key": f"k-{i}"}
        incr(server, "idem", headers=hk)
        incr(server, "idem", headers=hk)
    assert value(server, "idem") == 21

    # a late retry of the creating increment after a delete replays and does not create the counter again
    requests.delete(curl(server, "idem"), timeout=T)
    again = incr(server, "idem", 5, headers=h)
    assert again.content == first.content and again.headers["Idempotent-Replayed"] == "true"
    assert requests.get(curl(server, "idem"), timeout=T).status_code == 404
    incr(server, "idem", 21)

    r = incr(server, "idem", headers={"Idempotency-Key": "x" * 300}, expect=(400,))
    assert_error_shape(r.content, code="bad_idempotency_key")
    assert value(server, "idem") == 21


def test_idempotent_seed_and_admin_routes(server):
    h = {"Idempotency-Key": "create-1"}
    a = seed_create(server, "ic", headers=h)
    b = seed_create(server, "ic", headers=h)
    assert a.status_code == b.status_code == 201 and a.content == b.content
    assert b.headers["Idempotent-Replayed"] == "true"
    cid = a.json()["counter_id"]
    h = {"Idempotency-Key": "seed-incr-1"}
    assert seed_change(server, cid, headers=h).json()["value"] == 1
    r = seed_change(server, cid, headers=h)
    assert r.json()["value"] == 1 and r.headers["Idempotent-Replayed"] == "true"
    assert seed_value(server, cid).json()["value"] == 1

    h = {"Idempotency-Key": "del-1"}
    a = requests.delete(curl(server, "ic"), headers=h, timeout=T)
    b = requests.delete(curl(server, "ic"), headers=h, timeout=T)
    assert a.status_code == b.status_code == 200 and a.content == b.content
    assert b.headers["Idempotent-Replayed"] == "true"
    r = requests.delete(curl(server, "ic"), headers={"Idempotency-Key": "del-2"}, timeout=T)
    assert r.status_code == 404
    # a late retry of the first delete after the counter was created again: replayed, and harmless
    incr(server, "ic", 9)
    c = requests.delete(curl(server, "ic"), headers={"Idempotency-Key": "del-1"}, timeout=T)
    assert c.status_code == 200 and c.content == a.content and c.headers["Idempotent-Replayed"] == "true"
    assert value(server, "ic") == 9


def test_idempotent_refusal_is_replayed(server):
    incr(server, "iref", INT64_MAX)
    h = {"Idempotency-Key": "over-1"}
    a = incr(server, "iref", headers=h, expect=(409,))
    assert_error_shape(a.content, code="counter_overflow")
    incr(server, "iref", decr=True)
    b = incr(server, "iref", headers=h, expect=(409,))  # same answer, although it would fit now
    assert b.content == a.content and b.headers["Idempotent-Replayed"] == "true"
    assert value(server, "iref") == INT64_MAX - 1


def test_idempotent_increment_to_the_limit_replays(server):
    incr(server, "ilim", INT64_MAX - 1)
    h = {"Idempotency-Key": "to-max"}
    a = incr(server, "ilim", headers=h)
    assert a.json()["value"] == INT64_MAX
    b = incr(server, "ilim", headers=h)  # a retry is not an overflow
    assert b.status_code == 200 and b.content == a.content and b.headers["Idempotent-Replayed"] == "true"


def test_idempotent_retry_after_kill9(start_server):
    s = start_server()
    incr(s, "crash", 10)
    h = {"Idempotency-Key": "crash-retry-1"}
    first = incr(s, "crash", 3, headers=h)
    assert first.json()["value"] == 13
    hs = {"Idempotency-Key": "crash-retry-seed"}
    cid = seed_create(s, "crash-seed").json()["counter_id"]
    sfirst = seed_change(s, cid, headers=hs)
    s.kill9()
    s.start()
    again = incr(s, "crash", 3, headers=h)
    assert again.status_code == first.status_code and again.content == first.content
    assert again.headers["Idempotent-Replayed"] == "true"
    assert value(s, "crash") == 13
    sagain = seed_change(s, cid, headers=hs)
    assert sagain.content == sfirst.content and sagain.headers["Idempotent-Replayed"] == "true"
    assert seed_value(s, cid).json()["value"] == 1


# ---- deletion: nothing is freed before the definition's delete is durable ------------------------


def stats(s):
    r = requests.get(s.url("/cache/stats"), timeout=T)
    assert r.status_code == 200, r.text
    return r.json()


def spread_increments(s, name, n, prefix):
    """n increments (by 1..n) with distinct Idempotency-Keys, which land on many sub-counters."""
    for i in range(n):
        incr(s, name, i + 1, headers={"Idempotency-Key": f"{prefix}-{i}"})
    return n * (n + 1) // 2


def _limit_file_size():
    # As test_durability.py: the node gets EFBIG (a full disk) instead of SIGXFSZ.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))


def fill_shard_log(sess, s, shard, nshards):
    """Fills shard's log up to the file size limit with pinned keys store:<n> (n % nshards == shard)
    until even a one-byte value is refused; the other shards keep their room."""
    j = 1000
    for size in (8192, 1024, 128, 16, 1):
        while True:
            key = f"store:{j * nshards + shard}"
            j += 1
            r = sess.put(s.url("/v1/kv/" + key), data=b"x" * size, timeout=T)
            if r.status_code in (200, 201):
                assert int(r.headers["X-Shard"]) == shard
                continue
            assert r.status_code == 507, r.text
            break


def test_failed_delete_leaves_the_counter_intact(start_server):
    # The definition's delete fails at the disk (its shard's log is full), so
    # the DELETE is not acknowledged: every sub-counter must still be there,
    # also after a crash.  (Sub-counters deleted eagerly on the other shards
    # would bring the counter back with a partial value.)
    s = start_server("--shards", "4", preexec_fn=_limit_file_size)
    sess = requests.Session()
    name = "kept-" + "n" * 60  # its delete record is larger than the smallest refused PUT
    requests.put(curl(s, name), json={"k": 4}, timeout=T)
    total = spread_increments(s, name, 12, "fd")
    before = info(s, name)
    assert before["value"] == total
    assert sum(1 for sc in before["sub_counters"] if sc["value"]) >= 2, before
    fill_shard_log(sess, s, before["shards"][0], 4)  # the definition's shard

    r = requests.delete(curl(s, name), timeout=T)
    assert r.status_code == 507, r.text
    assert_error_shape(r.content, code="insufficient_storage")
    assert info(s, name) == before
    s.kill9()
    s.preexec_fn = None  # restart without the limit
    s.start()
    assert info(s, name) == before
    assert incr(s, name).json()["value"] == total + 1


def test_acknowledged_delete_survives_kill9(start_server):
    s = start_server("--shards", "4")
    spread_increments(s, "del-crash", 10, "dc")
    r = requests.delete(curl(s, "del-crash"), timeout=T)
    assert r.status_code == 200 and r.json()["value"] == 55
    s.kill9()
    s.start()
    assert requests.get(curl(s, "del-crash"), timeout=T).status_code == 404
    # created again: the old generation's sub-counters (left or not) count as absent
    doc = incr(s, "del-crash", 7).json()
    assert doc["value"] == 7 and doc["created"] is True
    assert value(s, "del-crash") == 7
    spread_increments(s, "del-crash", 4, "dc2")
    assert value(s, "del-crash") == 17


def test_deleted_sub_counters_are_reclaimed(start_server):
    # counter_reclaim_task (a sweeper task) frees the sub-counters once the
    # definition's delete is durable, and never a newer generation's.
    s = start_server("--shards", "4")
    for i in range(12):
        incr(s, "reclaimed", i + 1)
    assert stats(s)["keys_count"] >= 3
    assert requests.delete(curl(s, "reclaimed"), timeout=T).status_code == 200
    deadline = time.monotonic() + 5 * TMUL
    while stats(s)["keys_count"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stats(s)["keys_count"] == 0

    # deleted and created again at once: the new generation is left alone
    for i in range(8):
        incr(s, "again", 1)
    assert requests.delete(curl(s, "again"), timeout=T).status_code == 200
    incr(s, "again", 5)
    time.sleep(0.5)
    assert value(s, "again") == 5
    deadline = time.monotonic() + 5 * TMUL
    while stats(s)["keys_count"] != 3 and time.monotonic() < deadline:  # id record, definition, one sub-counter
        time.sleep(0.05)
    assert stats(s)["keys_count"] == 3
    assert value(s, "again") == 5


# ---- limits: a refused request changes nothing ---------------------------------------------------


def assert_memory_limit(r):
    assert r.status_code == 507, r.text
    assert r.json()["error"]["code"] == "memory_limit"


def test_max_keys_refusal_changes_nothing(start_server):
    s = start_server("--shards", "4", "--max-keys", "1")  # a counter has two records at least
    for r in (incr(s, "x", expect=None),
              incr(s, "x", headers={"Idempotency-Key": "mk-1"}, expect=None),
              requests.put(curl(s, "x"), json={"k": 2}, timeout=T)):
        assert_memory_limit(r)
    r = seed_create(s, "x")
    assert_memory_limit(r)
    assert_error_shape(r.content, code="memory_limit", seed=True)
    st = stats(s)
    assert st["keys_count"] == 0 and st["memory_used_bytes"] == 0, st
    assert requests.get(curl(s, "x"), timeout=T).status_code == 404
    s.stop()

    # room for exactly one counter: its id record, definition and first sub-counter
    s = start_server("--shards", "4", "--max-keys", "3")
    assert incr(s, "x").status_code == 201
    assert stats(s)["keys_count"] == 3
    assert_memory_limit(requests.put(curl(s, "y"), json={"k": 1}, timeout=T))
    assert_memory_limit(incr(s, "z", expect=None))
    assert stats(s)["keys_count"] == 3
    assert requests.get(curl(s, "y"), timeout=T).status_code == 404
    # increments of the existing counter add no key: they land on its stored sub-counter
    for _ in range(20):
        assert incr(s, "x").status_code == 200
    assert value(s, "x") == 21 and stats(s)["keys_count"] == 3
    # a budget move that would write sub-counters for the first time adds keys: refused, nothing moves
    assert_memory_limit(incr(s, "x", 2**50, expect=None))
    assert value(s, "x") == 21 and stats(s)["keys_count"] == 3


def test_max_memory_refusal_changes_nothing(start_server):
    s = start_server("--shards", "4", "--max-memory", "150")  # less than a counter's id record and definition
    assert_memory_limit(incr(s, "m", expect=None))
    assert_memory_limit(requests.put(curl(s, "m"), json={"k": 4}, timeout=T))
    st = stats(s)
    assert st["keys_count"] == 0 and st["memory_used_bytes"] == 0, st
    s.stop()
    s = start_server("--shards", "4", "--max-memory", "1K")
    assert incr(s, "m").status_code == 201
    used = stats(s)["memory_used_bytes"]
    assert 0 < used <= 1024
    for _ in range(10):  # rewrites of stored records: judged the same size, never refused
        incr(s, "m", 123456789)
    assert value(s, "m") == 1 + 10 * 123456789


def test_lru_evicts_enough_keys_for_a_new_counter(start_server):
    s = start_server("--shards", "4", "--max-keys", "5", "--eviction", "lru")
    sess = requests.Session()
    for i in range(5):
        assert sess.put(s.url(f"/v1/kv/u{i}"), data=b"v", timeout=T).status_code == 201
    r = incr(s, "lru-counter", 4)
    assert r.status_code == 201, r.text
    st = stats(s)
    assert st["keys_count"] == 5 and st["evictions"] == 3, st
    assert value(s, "lru-counter") == 4


# ---- late retries: the remembered answer is found whatever K the counter has now -----------------


def test_retry_after_recreate_with_another_k_replays(server):
    for first_k, later_ks in ((8, (1, 3, 8)), (1, (8, 5))):
        name = f"rk{first_k}"
        assert requests.put(curl(server, name), json={"k": first_k}, timeout=T).status_code == 201
        firsts = {}
        for i in range(16):
            h = {"Idempotency-Key": f"{name}-{i}"}
            firsts[i] = incr(server, name, i + 1, headers=h)
        first_shards = {r.headers["X-Shard"] for r in firsts.values()}
        assert len(first_shards) == 1 if first_k == 1 else len(first_shards) >= 4, first_shards
        assert value(server, name) == 136
        for k in later_ks:
            assert requests.delete(curl(server, name), timeout=T).status_code == 200
            assert requests.put(curl(server, name), json={"k": k}, timeout=T).status_code == 201
            for i, first in firsts.items():
                again = incr(server, name, i + 1, headers={"Idempotency-Key": f"{name}-{i}"})
                assert again.status_code == first.status_code and again.content == first.content, (k, i)
                assert again.headers["Idempotent-Replayed"] == "true"
            assert value(server, name) == 0, k  # nothing applied twice
            assert incr(server, name, 2, headers={"Idempotency-Key": f"{name}-new-{k}"}).json()["value"] == 2
