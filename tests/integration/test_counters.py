"""
Sharded counters (docs/counters.md): the canonical /v1/counters routes, the
seed 002 routes (/counter, /counter/increment, /counter/decrement,
/counter/value), exact sums under concurrent increments, the int64 limits
(409 counter_overflow, never a wrapped value, also under concurrency),
restarts (graceful and kill -9) and Idempotency-Key retries.
"""
import re
import threading
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
