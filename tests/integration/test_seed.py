"""The seed systems' routes: /store (seed 000), /put /get /delete (seed 001),
/kv (seed 003)."""
import json

import pytest
import requests

from skvtest import TMUL, assert_error_shape, request_bytes

T = 5 * TMUL
USER_IDS = [0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 100, 12345, 2**40 + 3, -1, -2, -3, -7, -8, -15, -12345]


def post_store(s, body, **kw):
    return requests.post(s.url("/store"), data=json.dumps(body) if not isinstance(body, (bytes, str)) else body,
                         headers=kw.pop("headers", {"Content-Type": "application/json"}), timeout=T, **kw)


@pytest.mark.parametrize("shards", [3, 8])
def test_store_places_by_user_id_modulo(start_server, shards):
    s = start_server("--shards", str(shards))
    for uid in USER_IDS:
        r = post_store(s, {"userId": uid, "data": f"user {uid}"})
        assert r.status_code == 200, r.text
        k = uid % shards  # Python modulo: never negative, as in the seed
        assert r.json()["message"] == f"Data stored in shard {k}", (uid, r.json())
        g = requests.get(s.url(f"/store/{uid}"), timeout=T)
        assert g.status_code == 200
        doc = g.json()
        assert doc["userId"] == uid and doc["data"] == f"user {uid}" and doc["shard"] == k
    info = s.shards("?data=1")
    assert info["total_keys"] == len(USER_IDS)
    for sh in info["shards"]:
        expected = {f"store:{u}" for u in USER_IDS if u % shards == sh["id"]}
        assert set(sh["data"]) == expected


def test_seed_000_demo(start_server):
    s = start_server("--shards", "3")
    people = [(1, "Alice"), (2, "Bob"), (3, "Charlie"), (4, "Diana")]
    expected = [1, 2, 0, 1]
    for (uid, name), shard in zip(people, expected):
        r = post_store(s, {"userId": uid, "data": name})
        assert r.status_code == 200
        assert r.json()["message"] == f"Data stored in shard {shard}"
    shards = s.shards("?data=1")["shards"]
    assert [sh["id"] for sh in shards] == [0, 1, 2]
    assert shards[0]["data"] == {"store:3": "Charlie"}
    assert shards[1]["data"] == {"store:1": "Alice", "store:4": "Diana"}
    assert shards[2]["data"] == {"store:2": "Bob"}
    assert [sh["keys"] for sh in shards] == [1, 2, 1]


def test_store_replace_and_structured_data(server):
    r = post_store(server, {"userId": 42, "data": {"name": "Zed", "tags": ["a", "b"], "age": 30}})
    assert r.status_code == 200
    v1 = r.json()["version"]
    r = post_store(server, {"userId": 42, "data": [1, 2, 3]})
    assert r.status_code == 200 and r.json()["version"] > v1
    doc = requests.get(server.url("/store/42"), timeout=T).json()
    assert doc["data"] == [1, 2, 3]


def test_store_get_missing_and_bad_id(server):
    r = requests.get(server.url("/store/777"), timeout=T)
    assert r.status_code == 404
    assert_error_shape(r.content, seed=True)
    r = requests.get(server.url("/store/abc"), timeout=T)
    assert r.status_code == 400
    assert_error_shape(r.content, seed=True)


@pytest.mark.parametrize("body", [
    b"{not json", b"", b"[1,2]", b'"str"', b'{"userId": 1, "userId": 2, "data": "dup"}',
    json.dumps({"data": "no id"}), json.dumps({"userId": 5}),
    json.dumps({"userId": "15", "data": "x"}), json.dumps({"userId": 15.0, "data": "x"}),
    json.dumps({"userId": 15.5, "data": "x"}), json.dumps({"userId": None, "data": "x"}),
    json.dumps({"userId": True, "data": "x"}),
])
def test_store_bad_bodies_400(server, body):
    r = post_store(server, body)
    assert r.status_code == 400, (body, r.text)
    assert_error_shape(r.content, seed=True)
    assert server.shards()["total_keys"] == 0


def test_store_content_types(server):
    body = json.dumps({"userId": 9, "data": "ct"})
    r = post_store(server, body, headers={"Content-Type": "application/xml"})
    assert r.status_code == 415
    assert_error_shape(r.content, seed=True)
    assert server.shards()["total_keys"] == 0
    # What curl -d sends by default, a charset parameter, no Content-Type at all.
    for ct in ("application/x-www-form-urlencoded", "application/json; charset=utf-8", "text/plain", None):
        headers = {"Content-Type": ct} if ct else {}
        r = requests.post(server.url("/store"), data=body.encode(), headers=headers, timeout=T)
        assert r.status_code == 200, (ct, r.text)


def test_seed_001_put_get_delete(server):
    r = requests.post(server.url("/put"), json={"key": "user:1", "value": "Alice"}, timeout=T)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["status"] == "ok" and doc["key"] == "user:1"
    shard = doc["shard"]
    r = requests.get(server.url("/get"), params={"key": "user:1"}, timeout=T)
    assert r.status_code == 200
    assert r.json()["value"] == "Alice" and r.json()["key"] == "user:1" and r.json()["shard"] == shard
    # PUT works as well as POST.
    r = requests.put(server.url("/put"), json={"key": "user:1", "value": "Alicia"}, timeout=T)
    assert r.status_code == 200
    assert requests.get(server.url("/get?key=user:1"), timeout=T).json()["value"] == "Alicia"
    # The same key is visible through the canonical API, as raw text.
    r = requests.get(server.url("/v1/kv/user%3A1"), timeout=T)
    assert r.status_code == 200 and r.content == b"Alicia"
    assert int(r.headers["X-Shard"]) == shard

    r = requests.delete(server.url("/delete?key=user:1"), timeout=T)
    assert r.status_code == 200 and r.json()["status"] == "deleted"
    r = requests.get(server.url("/get?key=user:1"), timeout=T)
    assert r.status_code == 404
    assert_error_shape(r.content, seed=True)

    # The seed README deletes with a plain GET.
    requests.post(server.url("/put"), json={"key": "k2", "value": 5}, timeout=T)
    r = requests.get(server.url("/delete?key=k2"), timeout=T)
    assert r.status_code == 200
    assert requests.get(server.url("/get?key=k2"), timeout=T).status_code == 404
    r = requests.get(server.url("/delete?key=k2"), timeout=T)
    assert r.status_code == 404


def test_seed_001_query_key_decoding(server):
    # "+" is a space in a query string; %XX escapes are decoded.
    requests.put(server.url("/v1/kv/a%20b%2Fc"), data=b"spaced", timeout=T)
    for q in ("key=a+b%2Fc", "key=a%20b/c", "x=1&key=a+b%2fc&y=2"):
        r = requests.get(server.url("/get?" + q), timeout=T)
        assert r.status_code == 200, (q, r.text)
        assert r.json()["value"] == "spaced" and r.json()["key"] == "a b/c"
        assert r.headers["ETag"] == '"1"'
    with server.raw() as c:  # requests would re-quote the bad escape
        c.send(request_bytes("GET", "/get?key=bad%zz"))
        r = c.read_response()
        assert r.status == 400
        assert_error_shape(r.body, code="bad_key", seed=True)


def test_seed_001_errors(server):
    for body in ({"value": "x"}, {"key": "k"}, {"key": 5, "value": "x"}):
        r = requests.post(server.url("/put"), json=body, timeout=T)
        assert r.status_code == 400, (body, r.text)
        assert_error_shape(r.content, seed=True)
    r = requests.get(server.url("/get"), timeout=T)
    assert r.status_code == 400
    assert_error_shape(r.content, seed=True)
    r = requests.post(server.url("/get?key=a"), timeout=T)
    assert r.status_code == 405
    assert server.shards()["total_keys"] == 0


VALUES = [
    {"name": "Ada", "langs": ["en", "fr"], "nested": {"deep": [1, {"x": None}]}},
    [1, "two", 3.5, False, None, {"k": "v"}],
    42, -7, 3.25, 12345678901234, True, False, None,
    "plain string", "", "unicode ✓ ключ \u0000 nul", {}, [],
]


def test_seed_003_kv_round_trips_every_json_type(server):
    for i, value in enumerate(VALUES):
        key = f"kv:{i}"
        r = requests.put(server.url("/kv"), json={"data": {"key": key, "value": value}}, timeout=T)
        assert r.status_code == 200, (value, r.text)
        assert r.json()["status"] == "ok" and r.json()["data"]["key"] == key
        r = requests.get(server.url("/kv"), params={"key": key}, timeout=T)
        assert r.status_code == 200
        got = r.json()["data"]
        assert got["key"] == key and got["source"] == "store"
        assert got["value"] == value and type(got["value"]) is type(value), (value, got)
        # /get and /store see the same value representation.
        assert requests.get(server.url("/get"), params={"key": key}, timeout=T).json()["value"] == value
    # Deleting through /kv.
    r = requests.delete(server.url("/kv"), params={"key": "kv:0"}, timeout=T)
    assert r.status_code == 200 and r.json()["status"] == "deleted"
    r = requests.get(server.url("/kv"), params={"key": "kv:0"}, timeout=T)
    assert r.status_code == 404
    doc = assert_error_shape(r.content, seed=True)
    assert "kv:0" in doc["detail"]


def test_seed_003_errors_include_detail(server):
    for body in ({"key": "k", "value": 1}, {"data": "notobj"}, {"data": {"value": 1}}, {"data": {"key": "k"}}):
        r = requests.put(server.url("/kv"), json=body, timeout=T)
        assert r.status_code == 400, (body, r.text)
        assert_error_shape(r.content, seed=True)
    r = requests.put(server.url("/kv"), data=b"{bad", headers={"Content-Type": "application/json"}, timeout=T)
    assert r.status_code == 400
    assert_error_shape(r.content, code="invalid_json", seed=True)
    assert server.shards()["total_keys"] == 0


def test_json_values_through_canonical_api(server):
    requests.post(server.url("/put"), json={"key": "s", "value": "raw text"}, timeout=T)
    requests.post(server.url("/put"), json={"key": "o", "value": {"a": [1, 2]}}, timeout=T)
    r = requests.get(server.url("/v1/kv/s"), timeout=T)
    assert r.content == b"raw text"
    assert r.headers["Content-Type"] == "application/octet-stream"
    r = requests.get(server.url("/v1/kv/o"), timeout=T)
    assert r.headers["Content-Type"] == "application/json"
    assert json.loads(r.content) == {"a": [1, 2]}
    # A canonical (binary) value read through the seed routes is a JSON string.
    requests.put(server.url("/v1/kv/b"), data='quote " and \\ and \n'.encode(), timeout=T)
    assert requests.get(server.url("/get?key=b"), timeout=T).json()["value"] == 'quote " and \\ and \n'


def test_seed_value_too_large(start_server):
    s = start_server("--max-value-bytes", "10")
    r = requests.post(s.url("/put"), json={"key": "k", "value": "x" * 11}, timeout=T)
    assert r.status_code == 413
    assert_error_shape(r.content, seed=True)
    r = requests.post(s.url("/store"), json={"userId": 1, "data": ["x" * 20]}, timeout=T)
    assert r.status_code == 413
    assert s.shards()["total_keys"] == 0
