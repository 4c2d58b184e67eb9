"""
Idempotency-Key on write routes (docs/api.md): a retry gets the first
answer and applies nothing, also after a crash; the same key on another
request is 422; the answer is remembered for --idempotency-window.
Counters and collections have their own idempotency tests.
"""
import concurrent.futures

import pytest
import requests

from skvtest import TMUL, assert_error_shape

T = 5 * TMUL


def kv(s, key):
    return s.url("/v1/kv/" + key)


def idem(key):
    return {"Idempotency-Key": key}


@pytest.mark.parametrize("policy", ["always", "everysec"])
def test_retry_gets_the_first_answer_and_applies_once(start_server, policy):
    s = start_server("--fsync", policy)
    sess = requests.Session()
    first = sess.put(kv(s, "a"), data=b"one", headers=idem("req-1"), timeout=T)
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    # Someone else changes the key meanwhile; the retry must not undo that.
    assert sess.put(kv(s, "a"), data=b"two", timeout=T).status_code == 200
    again = sess.put(kv(s, "a"), data=b"one", headers=idem("req-1"), timeout=T)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert again.headers["ETag"] == first.headers["ETag"]
    assert again.headers["X-Shard"] == first.headers["X-Shard"]
    assert sess.get(kv(s, "a"), timeout=T).content == b"two"
    # A DELETE with a key: the retry answers 200 again, not 404.
    d1 = sess.delete(kv(s, "a"), headers=idem("req-2"), timeout=T)
    d2 = sess.delete(kv(s, "a"), headers=idem("req-2"), timeout=T)
    assert d1.status_code == d2.status_code == 200 and d1.json() == d2.json()


def test_same_key_other_request_is_422(start_server):
    s = start_server()
    sess = requests.Session()
    assert sess.put(kv(s, "b"), data=b"x", headers=idem("k"), timeout=T).status_code == 201
    for method, url, body in [("PUT", kv(s, "b"), b"y"), ("PUT", kv(s, "b") + "?durability=async", b"x"),
                              ("DELETE", kv(s, "b"), b"")]:
        r = sess.request(method, url, data=body, headers=idem("k"), timeout=T)
        assert r.status_code == 422, (method, url, r.text)
        assert_error_shape(r.json(), 422, "idempotency_key_reused")
    assert sess.get(kv(s, "b"), timeout=T).content == b"x"


@pytest.mark.parametrize("key", ["", "a" * 256, "with space", "tab\tkey", "ünïcode"])
def test_bad_idempotency_key_is_400(start_server, key):
    s = start_server()
    r = requests.put(kv(s, "c"), data=b"x", headers={"Idempotency-Key": key.encode()}, timeout=T)
    assert r.status_code == 400
    assert_error_shape(r.json(), 400, "bad_idempotency_key")
    assert requests.get(kv(s, "c"), timeout=T).status_code == 404


def test_remembered_across_kill9(start_server):
    s = start_server("--shards", "4")
    sess = requests.Session()
    answers = {}
    for i in range(40):
        r = sess.put(kv(s, f"k{i}"), data=b"v%d" % i, headers=idem(f"id-{i}"), timeout=T)
        assert r.status_code == 201
        answers[i] = r.json()
    s.kill9()
    s.start()
    for i in range(40):
        r = sess.put(kv(s, f"k{i}"), data=b"v%d" % i, headers=idem(f"id-{i}"), timeout=T)
        assert r.status_code == 201 and r.headers["Idempotent-Replayed"] == "true"
        assert r.json() == answers[i]
        assert sess.get(kv(s, f"k{i}"), timeout=T).headers["ETag"] == '"%d"' % answers[i]["version"]
    s.assert_no_sanitizer_reports()


def test_concurrent_retries_apply_once(start_server):
    s = start_server("--threads", "2")

    def attempt(_):
        with requests.Session() as sess:
            return sess.put(kv(s, "race"), data=b"v", headers=idem("once"), timeout=T)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(attempt, range(32)))
    ok = [r for r in results if r.status_code == 201]
    assert all(r.status_code in (201, 409) for r in results), [r.text for r in results]
    for r in results:
        if r.status_code == 409:  # the first one was still waiting for the disk
            assert_error_shape(r.json(), 409, "idempotency_in_progress")
    assert len({r.json()["version"] for r in ok}) == 1
    assert sum("Idempotent-Replayed" not in r.headers for r in ok) == 1
    assert requests.get(kv(s, "race"), timeout=T).headers["ETag"] == '"%d"' % ok[0].json()["version"]


def test_window_expires_the_answer(start_server):
    s = start_server("--idempotency-window", "1s")
    sess = requests.Session()
    assert sess.put(kv(s, "w"), data=b"x", headers=idem("short"), timeout=T).status_code == 201
    import time
    deadline = time.monotonic() + 10 * TMUL
    while time.monotonic() < deadline:
        r = sess.put(kv(s, "w"), data=b"x", headers=idem("short"), timeout=T)
        if "Idempotent-Replayed" not in r.headers:
            break
        time.sleep(0.1)
    assert r.status_code == 200 and "Idempotent-Replayed" not in r.headers  # applied again: a new request


@pytest.mark.parametrize("method,path,body", [
    ("POST", "/store", b'{"userId": 7, "data": {"a": 1}}'),
    ("POST", "/put", b'{"key": "s1", "value": "v"}'),
    ("PUT", "/kv", b'{"data": {"key": "s2", "value": 3}}'),
])
def test_seed_write_routes_honour_the_key(start_server, method, path, body):
    s = start_server()
    sess = requests.Session()
    first = sess.request(method, s.url(path), data=body, headers=idem("seed"), timeout=T)
    assert first.status_code == 200, first.text
    again = sess.request(method, s.url(path), data=body, headers=idem("seed"), timeout=T)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    other = sess.request(method, s.url(path), data=body + b" ", headers=idem("seed"), timeout=T)
    assert other.status_code == 422


def test_async_first_answer_is_replayed_as_202(start_server):
    s = start_server()
    sess = requests.Session()
    url = kv(s, "async") + "?durability=async"
    first = sess.put(url, data=b"x", headers=idem("a-1"), timeout=T)
    assert first.status_code == 202
    again = sess.put(url, data=b"x", headers=idem("a-1"), timeout=T)
    assert again.status_code == 202 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
