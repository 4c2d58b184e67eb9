"""Collections of JSON documents with secondary indexes (docs/collections.md):
/v1/collections..., the seed-004 routes /users..., placement by the shard
key through the node's ring (the seed's MD5 ring key for key with --hash
md5), index queries with stable cursors, region-sharded collections,
restarts (graceful and kill -9), drops (documents deleted in the background
once the drop is durable; a drop that fails on a full disk; a crash right
after a drop; a name defined again at once) and a property test against a
Python model.  Every loop is bounded; nothing asserts on timing."""
import bisect
import hashlib
import json
import os
import random
import resource
import signal
import threading
import time

import pytest
import requests

import skvtest
from skvtest import TMUL, assert_error_shape

T = 5 * TMUL
JSON = {"Content-Type": "application/json"}


# ---- helpers ------------------------------------------------------------------------------------


def post(s, path, body, headers=None, session=requests):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return session.post(s.url(path), data=data, headers=headers or JSON, timeout=T)


def put(s, path, body, headers=None, session=requests):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return session.put(s.url(path), data=data, headers={**JSON, **(headers or {})}, timeout=T)


def get(s, path, session=requests, **kw):
    return session.get(s.url(path), timeout=T, **kw)


def delete(s, path, headers=None, session=requests):
    return session.delete(s.url(path), headers=headers or {}, timeout=T)


def user(uid, region="US", name=None, email=None):
    return {"user_id": uid, "name": name or f"user {uid}", "region": region, "email": email or f"u{uid}@example.com"}


def walk(s, path, limit, session=requests, between=None):
    """Follows next_cursor to the end; returns (items, pages).  between(page)
    runs after each page (the property test mutates there)."""
    items, pages, cursor = [], 0, None
    for _ in range(10000):
        sep = "&" if "?" in path else "?"
        url = f"{path}{sep}limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        r = get(s, url, session=session)
        assert r.status_code == 200, r.text
        page = r.json()
        assert set(page) == {"items", "next_cursor"}
        assert len(page["items"]) <= limit
        items += page["items"]
        pages += 1
        if between:
            between(pages)
        cursor = page["next_cursor"]
        if cursor is None:
            return items, pages
    raise AssertionError("the listing did not end")


class SeedRing:
    """Seed 004's ConsistentHashing: MD5 of the key string, 100 vnodes per
    node labelled "<node>#<v>", a later label winning a shared point."""

    def __init__(self, n, vnodes=100):
        ring = {}
        for i in range(n):
            for v in range(vnodes):
                ring[self.h(f"shard_{i + 1}#{v}")] = i
        self.points = sorted(ring)
        self.owner = [ring[p] for p in self.points]

    @staticmethod
    def h(key):
        return int(hashlib.md5(key.encode()).hexdigest(), 16)

    def shard(self, key):
        i = bisect.bisect_left(self.points, self.h(key))
        return self.owner[i % len(self.points)]


def define(s, body):
    r = post(s, "/v1/collections", body)
    assert r.status_code == 201, r.text
    return r.json()


def wait_until(check, what, timeout=15):
    """Polls check() until it returns something true (returned), for at most
    timeout seconds (times TMUL)."""
    deadline = time.monotonic() + timeout * TMUL
    while True:
        v = check()
        if v:
            return v
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def define_after_drop(s, body, session=requests):
    """Defines a collection whose name may have just been dropped: while the
    old documents are being deleted the answer is 409 collection_busy with
    Retry-After: 1, and then 201."""
    def attempt():
        r = post(s, "/v1/collections", body, session=session)
        if r.status_code == 409:
            assert_error_shape(r.text, code="collection_busy")
            assert r.headers["Retry-After"] == "1"
            return None
        assert r.status_code == 201, r.text
        return r.json()
    return wait_until(attempt, f"collection {body['name']} to be definable again")


def wait_total_keys(s, n):
    """Waits until /shards counts n keys (a drop's documents go in the background)."""
    wait_until(lambda: s.shards()["total_keys"] == n, f"total_keys == {n} (now {s.shards()['total_keys']})")


BY_REGION = {"name": "by_region", "primary_key": "user_id", "shard_key": "region",
             "fields": {"user_id": {"type": "integer"}, "region": {"type": "string", "max_length": 50}},
             "indexes": ["region"]}


# ---- the seed's users routes -----------------------------------------------------------------------


def test_users_seed_routes(server):
    u = user(1, name="Alice", email="alice@example.com")
    r = post(server, "/users/", u)
    assert r.status_code == 200, r.text  # FastAPI's default status, as the seed
    assert r.json() == u
    assert r.headers["ETag"] and r.headers["X-Shard"]
    r = get(server, "/users/1")
    assert r.status_code == 200 and r.json() == u
    assert r.headers["Content-Type"] == "application/json"
    # Duplicate id: 409 with the seed's "detail" next to the error object.
    r = post(server, "/users", user(1, region="EU"))
    assert r.status_code == 409
    assert_error_shape(r.text, code="duplicate_id", seed=True)
    assert get(server, "/users/1").json()["region"] == "US"  # unchanged
    r = get(server, "/users/999")
    assert r.status_code == 404
    assert assert_error_shape(r.text, code="document_not_found", seed=True)["detail"] == "User not found"
    head = requests.head(server.url("/users/1"), timeout=T)
    assert head.status_code == 200 and head.content == b""
    # PUT and DELETE by id also work on the alias.
    r = put(server, "/users/1", {"name": "Alice B", "region": "EU", "email": "a@b"})
    assert r.status_code == 200 and r.json() == {"user_id": 1, "name": "Alice B", "region": "EU", "email": "a@b"}
    assert delete(server, "/users/1").status_code == 200
    assert get(server, "/users/1").status_code == 404


@pytest.mark.parametrize("body,code,field", [
    ('{"user_id": 1, "name": ', "invalid_json", None),
    ("[1, 2]", "invalid_json", None),
    ("", "invalid_json", None),
    ({"name": "x", "region": "US"}, "missing_field", "user_id"),
    ({"user_id": "1"}, "wrong_type", "user_id"),
    ({"user_id": 1.5}, "wrong_type", "user_id"),
    ({"user_id": 1, "region": 7}, "wrong_type", "region"),
    ({"user_id": 1, "name": "n" * 101}, "field_too_long", "name"),
    ({"user_id": 1, "region": "r" * 51}, "field_too_long", "region"),
    ({"user_id": 1, "email": "e" * 101}, "field_too_long", "email"),
    ('{"user_id": 1, "user_id": 2}', "invalid_json", None),
    ('{"user_id": 123456789012345678901234567890}', "invalid_json", None),
])
def test_users_validation_errors(server, body, code, field):
    r = post(server, "/users", body)
    assert r.status_code == 400, r.text
    doc = assert_error_shape(r.text, code=code, seed=True)
    if field:
        assert f"'{field}'" in doc["error"]["message"]
    assert server.shards()["total_keys"] == 0  # a refused request changes nothing


def test_users_limits_and_methods(server):
    # Exactly at the limits is fine; characters are counted, not bytes.
    r = post(server, "/users", user(5, name="\u00e9" * 100, region="r" * 50, email="e" * 100))
    assert r.status_code == 200, r.text
    assert get(server, "/users/5").json()["name"] == "\u00e9" * 100
    # Optional fields may be absent or null; undeclared ones are kept.
    r = post(server, "/users", {"user_id": 6, "region": None, "extra": {"a": [1, 2]}})
    assert r.status_code == 200, r.text
    assert get(server, "/users/6").json() == {"user_id": 6, "region": None, "extra": {"a": [1, 2]}}
    for bad in ("abc", "1.0", "007", "99999999999999999999"):
        r = get(server, f"/users/{bad}")
        assert r.status_code == 400, bad
        assert_error_shape(r.text, code="bad_id", seed=True)
    r = requests.patch(server.url("/users/5"), data="{}", timeout=T)
    assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD, PUT, DELETE, OPTIONS"
    r = requests.delete(server.url("/users"), timeout=T)
    assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD, POST, OPTIONS"
    r = requests.options(server.url("/users"), timeout=T)
    assert r.status_code == 204 and "POST" in r.headers["Allow"]
    r = post(server, "/users", json.dumps(user(7)), headers={"Content-Type": "image/png"})
    assert r.status_code == 415
    assert_error_shape(r.text, code="unsupported_media_type")
    # Negative and large ids.
    for uid in (-1, 2**63 - 1, -2**63):
        assert post(server, "/users", user(uid)).status_code == 200
        assert get(server, f"/users/{uid}").json()["user_id"] == uid


def test_users_too_large_body(start_server):
    s = start_server("--max-body-bytes", "4096", "--max-value-bytes", "2048")
    r = post(s, "/users", {"user_id": 1, "extra": "x" * 3000})
    assert r.status_code == 413
    assert_error_shape(r.text, code="value_too_large")
    r = post(s, "/users", {"user_id": 1, "extra": "x" * 8000})
    assert r.status_code == 413
    assert_error_shape(r.text)


@pytest.mark.parametrize("shards", [3, 8])
def test_users_placed_by_the_seed_md5_ring(start_server, shards):
    s = start_server("--shards", str(shards), "--hash", "md5")
    ring = SeedRing(shards)
    for uid in list(range(60)) + [12345, 2**40 + 3]:
        r = post(s, "/users", user(uid))
        assert r.status_code == 200, r.text
        # The seed hashes str(user.user_id).
        assert int(r.headers["X-Shard"]) == ring.shard(str(uid)), uid
        assert int(get(s, f"/users/{uid}").headers["X-Shard"]) == ring.shard(str(uid))
    # The seed README's example: user 1 goes to shard_2 (our shard 1) with three shards.
    if shards == 3:
        assert int(get(s, "/users/1").headers["X-Shard"]) == 1
    counts = get(s, "/v1/collections/users").json()["shards"]
    assert sum(counts) == 62
    assert [sh["keys"] for sh in s.shards()["shards"]] == counts


def test_users_placed_by_modulo(start_server):
    s = start_server("--shards", "5", "--placement", "modulo")
    for uid in range(20):
        assert int(post(s, "/users", user(uid)).headers["X-Shard"]) == uid % 5


# ---- definitions ------------------------------------------------------------------------------------


def test_collection_definitions(server):
    r = get(server, "/v1/collections")
    assert r.status_code == 200
    assert [c["name"] for c in r.json()["items"]] == ["users"] and r.json()["next_cursor"] is None
    users = r.json()["items"][0]
    assert users["builtin"] is True and users["primary_key"] == "user_id" and users["indexes"] == ["region"]
    assert users["fields"]["name"] == {"type": "string", "max_length": 100}

    body = {"name": "books", "primary_key": "isbn", "fields": {"title": {"type": "string", "required": True},
                                                             "year": {"type": "integer"}},
            "indexes": ["year", "author"]}
    d = define(server, body)
    assert d["name"] == "books" and d["shard_key"] == "isbn" and d["builtin"] is False and d["version"] >= 1
    assert d["fields"]["isbn"] == {"type": "string", "required": True}
    assert d["fields"]["author"] == {"type": "string"}
    r = post(server, "/v1/collections", body)
    assert r.status_code == 409
    assert_error_shape(r.text, code="collection_exists")
    r = post(server, "/v1/collections", {"name": "users", "primary_key": "id"})
    assert r.status_code == 409  # the built-in exists without a stored definition
    assert [c["name"] for c in get(server, "/v1/collections").json()["items"]] == ["books", "users"]
    r = get(server, "/v1/collections/books")
    assert r.status_code == 200 and r.json()["documents"] == 0 and r.headers["ETag"] == f'"{d["version"]}"'
    assert len(r.json()["shards"]) == 8

    for bad, needle in [
        ({"primary_key": "id"}, "name"),
        ({"name": "x y", "primary_key": "id"}, "name"),
        ({"name": "x"}, "primary_key"),
        ({"name": "x", "primary_key": "id", "index": ["a"]}, "index"),
        ({"name": "x", "primary_key": "id", "fields": {"id": {"type": "object"}}}, "string or integer"),
        ({"name": "x", "primary_key": "id", "fields": {"a": {"type": "blob"}}}, "type"),
        ({"name": "x", "primary_key": "id", "indexes": ["tags"], "fields": {"tags": {"type": "array"}}}, "indexed"),
    ]:
        r = post(server, "/v1/collections", bad)
        assert r.status_code == 400, bad
        assert needle in assert_error_shape(r.text, code="bad_definition")["error"]["message"]
    assert post(server, "/v1/collections", "[]").status_code == 400
    r = requests.put(server.url("/v1/collections"), timeout=T)
    assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD, POST, OPTIONS"
    r = requests.post(server.url("/v1/collections/books"), timeout=T)
    assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD, DELETE, OPTIONS"


def test_unknown_collections(server):
    for path in ("/v1/collections/nope", "/v1/collections/nope/docs", "/v1/collections/nope/docs/1",
                 "/v1/collections/bad%20name/docs"):
        r = get(server, path)
        assert r.status_code == 404, path
        assert_error_shape(r.text, code="collection_not_found")
    assert post(server, "/v1/collections/nope/docs", {"id": "a"}).status_code == 404
    assert put(server, "/v1/collections/nope/docs/a", {}).status_code == 404
    assert delete(server, "/v1/collections/nope/docs/a").status_code == 404
    r = delete(server, "/v1/collections/nope")
    assert r.status_code == 404
    assert_error_shape(r.text, code="collection_not_found")
    assert get(server, "/v1/collections/users/other").status_code == 404


def test_drop_deletes_documents_and_definition(server):
    define(server, {"name": "tmp", "primary_key": "id", "indexes": ["k"]})
    for i in range(40):
        assert post(server, "/v1/collections/tmp/docs", {"id": f"d{i}", "k": "v"}).status_code == 201
    assert server.shards()["total_keys"] == 41
    r = delete(server, "/v1/collections/tmp")
    assert r.status_code == 200 and r.json() == {"name": "tmp", "dropped": True, "documents": 40}
    # The collection is gone at once; its documents go in the background.
    assert get(server, "/v1/collections/tmp").status_code == 404
    assert get(server, "/v1/collections/tmp/docs/d1").status_code == 404
    assert "tmp" not in [c["name"] for c in get(server, "/v1/collections").json()["items"]]
    wait_total_keys(server, 0)
    # Defined again, it starts empty (nothing of the old one is adopted).
    define_after_drop(server, {"name": "tmp", "primary_key": "id", "indexes": ["k"]})
    assert get(server, "/v1/collections/tmp/docs?k=v").json() == {"items": [], "next_cursor": None}
    assert get(server, "/v1/collections/tmp/docs/d1").status_code == 404
    # The built-in users can be dropped and defined again.
    assert post(server, "/users", user(1)).status_code == 200
    assert delete(server, "/v1/collections/users").json()["documents"] == 1
    r = get(server, "/users/1")
    assert r.status_code == 404
    assert_error_shape(r.text, code="collection_not_found", seed=True)
    assert delete(server, "/v1/collections/users").status_code == 404
    d = define_after_drop(server, {"name": "users", "primary_key": "user_id",
                                   "fields": {"user_id": {"type": "integer"}}})
    assert d["indexes"] == []
    assert get(server, "/users/1").status_code == 404
    assert post(server, "/users", {"user_id": 1, "anything": True}).status_code == 200


# ---- documents ----------------------------------------------------------------------------------------


def test_document_crud_and_conditions(server):
    define(server, {"name": "books", "primary_key": "isbn", "fields": {"year": {"type": "integer"}},
                    "indexes": ["year"]})
    r = post(server, "/v1/collections/books/docs", {"isbn": "978-0", "title": "A", "year": 1999})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["collection"] == "books" and created["id"] == "978-0" and created["created"] is True
    assert r.headers["ETag"] == f'"{created["version"]}"' and int(r.headers["X-Shard"]) == created["shard"]
    r = get(server, "/v1/collections/books/docs/978-0")
    assert r.json() == {"isbn": "978-0", "title": "A", "year": 1999}
    r = post(server, "/v1/collections/books/docs", {"isbn": "978-0"})
    assert r.status_code == 409
    assert_error_shape(r.text, code="duplicate_id")
    # PUT replaces (200) or creates (201); the id comes from the URL when the body lacks it.
    r = put(server, "/v1/collections/books/docs/978-0", {"title": "B", "year": 2000})
    assert r.status_code == 200 and r.json()["created"] is False
    v2 = r.json()["version"]
    assert get(server, "/v1/collections/books/docs/978-0").json() == {"title": "B", "year": 2000, "isbn": "978-0"}
    assert put(server, "/v1/collections/books/docs/x%2Fy", {"year": 1}).status_code == 201
    assert get(server, "/v1/collections/books/docs/x%2Fy").json()["isbn"] == "x/y"
    r = put(server, "/v1/collections/books/docs/978-0", {"isbn": "978-1"})
    assert r.status_code == 400
    assert_error_shape(r.text, code="id_mismatch")
    r = put(server, "/v1/collections/books/docs/978-0", {"year": "1999"})
    assert r.status_code == 400 and "'year'" in assert_error_shape(r.text, code="wrong_type")["error"]["message"]
    # If-Match / If-None-Match.
    r = put(server, "/v1/collections/books/docs/978-0", {"year": 1}, headers={"If-Match": '"1"'})
    assert r.status_code == 412
    r = put(server, "/v1/collections/books/docs/978-0", {"year": 2001}, headers={"If-Match": f'"{v2}"'})
    assert r.status_code == 200
    assert put(server, "/v1/collections/books/docs/978-0", {}, headers={"If-None-Match": "*"}).status_code == 412
    assert delete(server, "/v1/collections/books/docs/978-0", headers={"If-Match": '"1"'}).status_code == 412
    r = delete(server, "/v1/collections/books/docs/978-0")
    assert r.status_code == 200 and r.json()["deleted"] is True and r.json()["id"] == "978-0"
    r = delete(server, "/v1/collections/books/docs/978-0")
    assert r.status_code == 404
    assert_error_shape(r.text, code="document_not_found")
    assert get(server, "/v1/collections/books/docs/978-0").status_code == 404
    # ?durability=async answers 202 before the disk.
    r = post(server, "/v1/collections/books/docs?durability=async", {"isbn": "async", "year": 5})
    assert r.status_code == 202
    assert get(server, "/v1/collections/books/docs/async").status_code == 200
    r = requests.patch(server.url("/v1/collections/books/docs/async"), timeout=T)
    assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD, PUT, DELETE, OPTIONS"


def test_idempotency_key_on_collection_writes(server):
    h = {**JSON, "Idempotency-Key": "create-7"}
    r1 = post(server, "/users", user(7), headers=h)
    assert r1.status_code == 200
    r2 = post(server, "/users", user(7), headers=h)
    assert r2.status_code == 200 and r2.content == r1.content
    assert r2.headers.get("Idempotent-Replayed") == "true"
    assert post(server, "/users", user(7)).status_code == 409  # without the key: a duplicate
    r = post(server, "/users", user(7, region="EU"), headers=h)  # same key, another body
    assert r.status_code == 422
    h = {"Idempotency-Key": "drop-books"}
    define(server, {"name": "books", "primary_key": "isbn"})
    r1 = delete(server, "/v1/collections/books", headers=h)
    r2 = delete(server, "/v1/collections/books", headers=h)
    assert r1.status_code == r2.status_code == 200 and r1.content == r2.content


# ---- index queries ------------------------------------------------------------------------------------


def test_index_query_pagination_and_cursors(server):
    regions = ["US", "EU", "APAC"]
    for uid in range(90):
        assert post(server, "/users", user(uid, regions[uid % 3])).status_code == 200
    for limit in (1, 7, 30, 1000):
        items, pages = walk(server, "/users?region=US", limit)
        ids = [d["user_id"] for d in items]
        assert sorted(ids) == [u for u in range(90) if u % 3 == 0], limit
        assert len(ids) == len(set(ids))
        assert pages == -(-30 // limit) or (limit >= 30 and pages == 1)
    # The canonical route and the alias answer the same query; no filter lists everything.
    a, _ = walk(server, "/v1/collections/users/docs?region=EU", 10)
    assert sorted(d["user_id"] for d in a) == [u for u in range(90) if u % 3 == 1]
    every, _ = walk(server, "/v1/collections/users/docs", 13)
    assert sorted(d["user_id"] for d in every) == list(range(90))
    assert get(server, "/users?region=Mars").json() == {"items": [], "next_cursor": None}
    # Percent-encoded and '+' values.
    assert post(server, "/users", user(500, "New York")).status_code == 200
    assert [d["user_id"] for d in get(server, "/users?region=New+York").json()["items"]] == [500]
    assert [d["user_id"] for d in get(server, "/users?region=New%20York").json()["items"]] == [500]

    first = get(server, "/users?region=US&limit=5").json()
    cursor = first["next_cursor"]
    assert cursor
    for path in (f"/users?region=EU&cursor={cursor}",            # another query
                 f"/users?cursor={cursor}",                       # another kind of listing
                 "/users?region=US&cursor=garbage",
                 f"/users?region=US&cursor={cursor[:-2]}",
                 f"/users?region=US&cursor={cursor[:-1]}A"):
        r = get(server, path)
        assert r.status_code == 400, path
        assert_error_shape(r.text, code="bad_cursor", seed=True)
    with server.raw() as c:  # a query string that is not valid percent-encoding
        c.send(b"GET /users?region=US&cursor=%ZZ HTTP/1.1\r\nHost: x\r\n\r\n")
        resp = c.read_response()
        assert resp.status == 400
        assert_error_shape(resp.body, code="bad_query", seed=True)
    kv_cursor = requests.get(server.url("/v1/kv?limit=1"), timeout=T)
    if kv_cursor.status_code == 200 and kv_cursor.json().get("next_cursor"):
        assert get(server, f"/users?region=US&cursor={kv_cursor.json()['next_cursor']}").status_code == 400
    for q, code in [("limit=0", "bad_limit"), ("limit=1001", "bad_limit"), ("limit=x", "bad_limit"),
                    ("name=Bob", "not_indexed"), ("nope=1", "not_indexed"), ("region=US&region=EU", "bad_filter")]:
        r = get(server, f"/users?{q}")
        assert r.status_code == 400, q
        assert_error_shape(r.text, code=code, seed=True)
    define(server, {"name": "flags", "primary_key": "id", "fields": {"n": {"type": "integer"},
                                                                   "on": {"type": "boolean"}},
                    "indexes": ["n", "on"]})
    for q in ("n=1.5", "n=007", "on=yes"):
        r = get(server, f"/v1/collections/flags/docs?{q}")
        assert r.status_code == 400 and assert_error_shape(r.text, code="bad_filter"), q
    assert post(server, "/v1/collections/flags/docs", {"id": "a", "n": -3, "on": True}).status_code == 201
    assert [d["id"] for d in get(server, "/v1/collections/flags/docs?n=-3").json()["items"]] == ["a"]
    assert [d["id"] for d in get(server, "/v1/collections/flags/docs?on=true").json()["items"]] == ["a"]
    assert get(server, "/v1/collections/flags/docs?on=false").json()["items"] == []


def test_index_follows_put_and_delete(server):
    for uid in range(20):
        post(server, "/users", user(uid, "US"))

    def region(r):
        return sorted(d["user_id"] for d in walk(server, f"/users?region={r}", 6)[0])

    assert region("US") == list(range(20))
    for uid in range(0, 20, 2):
        assert put(server, f"/users/{uid}", user(uid, "EU")).status_code == 200
    assert region("US") == list(range(1, 20, 2))
    assert region("EU") == list(range(0, 20, 2))
    for uid in range(0, 10):
        assert delete(server, f"/users/{uid}").status_code == 200
    assert region("US") == list(range(11, 20, 2))
    assert region("EU") == list(range(10, 20, 2))
    # Re-created with another region, it is found there only.
    assert post(server, "/users", user(3, "APAC")).status_code == 200
    assert region("APAC") == [3] and 3 not in region("US")


# ---- a collection sharded by region ------------------------------------------------------------------


def test_region_sharded_collection(start_server):
    s = start_server("--shards", "4", "--hash", "md5")
    define(s, BY_REGION)
    ring = SeedRing(4)
    before = [sh["keys"] for sh in s.shards()["shards"]]
    regions = {"EU": 25, "US": 10, "APAC": 3}
    uid = 0
    shard_of = {}
    for reg, n in regions.items():
        for _ in range(n):
            r = post(s, "/v1/collections/by_region/docs", {"user_id": uid, "region": reg})
            assert r.status_code == 201, r.text
            shard_of.setdefault(reg, set()).add(r.json()["shard"])
            uid += 1
    # A region lives on exactly one shard: the one its name hashes to (the seed's get_node(user.region)).
    for reg in regions:
        assert shard_of[reg] == {ring.shard(reg)}, reg
    after = [sh["keys"] for sh in s.shards()["shards"]]
    expect = list(before)
    for reg, n in regions.items():
        expect[ring.shard(reg)] += n
    assert after == expect  # /shards shows the imbalance the seed warns about
    counts = get(s, "/v1/collections/by_region").json()["shards"]
    assert counts == [a - b for a, b in zip(after, before)]
    assert max(counts) >= 25
    # A query of a region is answered by its shard, in id order.
    items, _ = walk(s, "/v1/collections/by_region/docs?region=EU", 4)
    assert [d["user_id"] for d in items] == list(range(25))
    # GET by id looks in every shard.
    r = get(s, "/v1/collections/by_region/docs/30")
    assert r.status_code == 200 and r.json()["region"] == "US" and int(r.headers["X-Shard"]) == ring.shard("US")
    assert get(s, "/v1/collections/by_region/docs/999").status_code == 404
    # One document per id across shards: a duplicate in another region is refused.
    r = post(s, "/v1/collections/by_region/docs", {"user_id": 30, "region": "EU"})
    assert r.status_code == 409
    assert_error_shape(r.text, code="duplicate_id")
    # Moving it by PUT is refused (it would change shard); same region is fine.
    other = next(reg for reg in ("EU", "APAC") if ring.shard(reg) != ring.shard("US"))
    r = put(s, "/v1/collections/by_region/docs/30", {"region": other})
    assert r.status_code == 409
    assert_error_shape(r.text, code="shard_key_changed")
    assert put(s, "/v1/collections/by_region/docs/30", {"region": "US", "note": 1}).status_code == 200
    assert get(s, "/v1/collections/by_region/docs/30").json() == {"region": "US", "note": 1, "user_id": 30}
    # Delete, then create it in another region.
    assert delete(s, "/v1/collections/by_region/docs/30").status_code == 200
    assert delete(s, "/v1/collections/by_region/docs/30").status_code == 404
    r = post(s, "/v1/collections/by_region/docs", {"user_id": 30, "region": other})
    assert r.status_code == 201 and r.json()["shard"] == ring.shard(other)
    assert 30 not in [d["user_id"] for d in walk(s, "/v1/collections/by_region/docs?region=US", 100)[0]]


def test_region_sharded_concurrent_creates_of_one_id(start_server):
    s = start_server("--shards", "4", "--threads", "4")
    define(s, BY_REGION)
    regions = [f"R{i}" for i in range(8)]
    for round_ in range(10):
        statuses = []
        barrier = threading.Barrier(len(regions))

        def create(reg):
            barrier.wait()
            r = post(s, "/v1/collections/by_region/docs", {"user_id": round_, "region": reg})
            statuses.append((r.status_code, reg))

        threads = [threading.Thread(target=create, args=(reg,)) for reg in regions]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        won = [reg for code, reg in statuses if code == 201]
        assert len(won) == 1, statuses
        assert all(code in (201, 409) for code, _ in statuses), statuses
        assert get(s, f"/v1/collections/by_region/docs/{round_}").json()["region"] == won[0]
    assert get(s, "/v1/collections/by_region").json()["documents"] == 10


# ---- restarts ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("graceful", [True, False])
def test_restart_keeps_documents_and_indexes(start_server, graceful):
    s = start_server("--shards", "4")
    define(s, BY_REGION)
    define(s, {"name": "books", "primary_key": "isbn", "indexes": ["author"]})
    model = {}
    for uid in range(60):
        u = user(uid, ["US", "EU", "APAC"][uid % 3])
        assert post(s, "/users", u).status_code == 200
        model[uid] = u
    for uid in range(0, 60, 4):
        u = user(uid, "EU", name="moved")
        assert put(s, f"/users/{uid}", u).status_code == 200
        model[uid] = u
    for uid in range(1, 60, 5):
        assert delete(s, f"/users/{uid}").status_code == 200
        del model[uid]
    for i in range(12):
        assert post(s, "/v1/collections/by_region/docs", {"user_id": i, "region": "EU" if i % 2 else "US"}).status_code == 201
        assert post(s, "/v1/collections/books/docs", {"isbn": f"b{i}", "author": f"a{i % 3}"}).status_code == 201
    keys_before = s.shards()["total_keys"]
    define(s, {"name": "gone", "primary_key": "id"})
    assert post(s, "/v1/collections/gone/docs", {"id": "x"}).status_code == 201
    assert delete(s, "/v1/collections/gone").status_code == 200
    wait_total_keys(s, keys_before)

    s.restart(graceful=graceful)

    for reg in ("US", "EU", "APAC"):
        items, _ = walk(s, f"/users?region={reg}", 7)
        assert sorted(d["user_id"] for d in items) == sorted(u for u, d in model.items() if d["region"] == reg), reg
        for d in items:
            assert d == model[d["user_id"]]
    assert get(s, "/users/1").status_code == 404
    assert get(s, "/users/4").json()["name"] == "moved"
    assert [d["user_id"] for d in walk(s, "/v1/collections/by_region/docs?region=EU", 2)[0]] == [1, 3, 5, 7, 9, 11]
    assert get(s, "/v1/collections/by_region/docs/4").json()["region"] == "US"
    assert sorted(d["isbn"] for d in get(s, "/v1/collections/books/docs?author=a1").json()["items"]) == ["b1", "b10", "b4", "b7"]
    assert [c["name"] for c in get(s, "/v1/collections").json()["items"]] == ["books", "by_region", "users"]
    assert get(s, "/v1/collections/gone").status_code == 404
    assert s.shards()["total_keys"] == keys_before
    # Writes after the restart keep the indexes right.
    assert put(s, "/users/2", user(2, "US")).status_code == 200
    assert 2 in [d["user_id"] for d in walk(s, "/users?region=US", 50)[0]]
    assert 2 not in [d["user_id"] for d in walk(s, "/users?region=APAC", 50)[0]]


def test_dropped_builtin_stays_dropped_after_restart(start_server):
    s = start_server()
    assert delete(s, "/v1/collections/users").status_code == 200
    s.restart()
    assert get(s, "/users/1").status_code == 404
    assert "users" not in [c["name"] for c in get(s, "/v1/collections").json()["items"]]
    define(s, {"name": "users", "primary_key": "user_id", "fields": {"user_id": {"type": "integer"}},
               "indexes": ["team"]})
    assert post(s, "/users", {"user_id": 1, "team": "x"}).status_code == 200
    s.restart(graceful=False)
    assert get(s, "/v1/collections/users").json()["indexes"] == ["team"]
    assert [d["user_id"] for d in get(s, "/users?team=x").json()["items"]] == [1]


# ---- drops: documents deleted in the background once the drop is durable ---------------------------


def _limit_file_size():
    # Ignored dispositions survive exec: the node gets EFBIG instead of being killed.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))


def fill_shard(s, shard, nshards, session):
    """PUTs keys pinned to one shard (store:<n>, n % nshards == shard) until
    even the smallest record gets 507 (its log hit the file size limit)."""
    n, puts = 1000, 0
    for size in (8192, 1024, 128, 16, 1):
        for _ in range(10000):
            key = f"store:{n * nshards + shard}"
            n += 1
            r = session.put(s.url("/v1/kv/" + key), data=b"x" * size, timeout=T)
            if r.status_code == 507:
                break
            assert r.status_code in (200, 201), r.text
            assert int(r.headers["X-Shard"]) == shard
            puts += 1
        else:
            raise AssertionError("the shard never filled up")
    return puts


def doc_ids(s, name, session=requests):
    items, _ = walk(s, f"/v1/collections/{name}/docs", 1000, session=session)
    return items


def test_drop_on_a_full_disk_answers_507_and_loses_nothing(start_server):
    """The definition's removal fails on shard 0's full log: the drop is 507,
    no document is deleted (not even on the other shards), and the collection
    stays usable; after a restart with space, the drop works."""
    s = start_server("--shards", "4", preexec_fn=_limit_file_size)
    sess = requests.Session()
    define(s, {"name": "books", "primary_key": "isbn", "indexes": ["k"]})
    shards = set()
    for i in range(40):
        r = post(s, "/v1/collections/books/docs", {"isbn": f"b{i}", "k": str(i % 3)}, session=sess)
        assert r.status_code == 201, r.text
        shards.add(r.json()["shard"])
    assert len(shards) > 1
    assert fill_shard(s, 0, 4, sess) > 0  # shard 0 holds the definitions
    r = delete(s, "/v1/collections/books", session=sess)
    assert r.status_code == 507, r.text
    assert_error_shape(r.text, code="insufficient_storage")
    # Usable at once: nothing was deleted and it is not stuck being dropped.
    c = get(s, "/v1/collections/books", session=sess)
    assert c.status_code == 200, c.text
    assert c.json()["documents"] == 40
    assert "books" in [x["name"] for x in get(s, "/v1/collections", session=sess).json()["items"]]
    time.sleep(0.5)  # several sweeper rounds: a background delete would have happened by now
    assert sorted(d["isbn"] for d in doc_ids(s, "books", session=sess)) == sorted(f"b{i}" for i in range(40))
    r = post(s, "/v1/collections", {"name": "books", "primary_key": "isbn"}, session=sess)
    assert r.status_code == 409
    assert_error_shape(r.text, code="collection_exists")
    # Writes to the shards that have space keep working.
    for i in range(40, 80):
        r = post(s, "/v1/collections/books/docs", {"isbn": f"b{i}", "k": "0"}, session=sess)
        assert r.status_code in (201, 507), r.text
        if r.status_code == 201:
            break
    else:
        raise AssertionError("no document landed on a shard with space")
    s.stop()
    s.preexec_fn = None
    s.start()
    c = get(s, "/v1/collections/books", session=sess).json()
    assert c["documents"] in (40, 41)
    keys = s.shards()["total_keys"]
    r = delete(s, "/v1/collections/books", session=sess)
    assert r.status_code == 200 and r.json()["documents"] == c["documents"]
    wait_total_keys(s, keys - 1 - c["documents"])
    assert get(s, "/v1/collections/books").status_code == 404


def test_kill9_right_after_a_drop(start_server):
    """A drop answered, then kill -9 before its background deletes ran (or
    reached the disk): after the restart the collection stays dropped and its
    documents go, and they never come back after another restart."""
    s = start_server("--shards", "4")
    define(s, {"name": "tmp", "primary_key": "id", "fields": {"id": {"type": "integer"}}, "indexes": ["k"]})
    keys0 = s.shards()["total_keys"]
    n = 300
    with s.raw(timeout=30) as c:
        c.send(b"".join(skvtest.request_bytes("PUT", f"/v1/collections/tmp/docs/{i}", body=b'{"id":%d,"k":"%d"}' % (i, i % 5),
                                              headers={"Content-Type": "application/json"}) for i in range(n)))
        assert [x.status for x in c.read_responses(n)] == [201] * n
    r = delete(s, "/v1/collections/tmp")
    assert r.status_code == 200 and r.json()["documents"] == n
    s.kill9()
    s.start()
    assert get(s, "/v1/collections/tmp").status_code == 404
    assert get(s, "/v1/collections/tmp/docs/1").status_code == 404
    wait_total_keys(s, keys0 - 1)
    s.restart(graceful=False)
    assert s.shards()["total_keys"] == keys0 - 1
    assert get(s, "/v1/collections/tmp").status_code == 404
    define_after_drop(s, {"name": "tmp", "primary_key": "id", "fields": {"id": {"type": "integer"}}})
    assert get(s, "/v1/collections/tmp").json()["documents"] == 0
    assert get(s, "/v1/collections/tmp/docs?limit=10").json() == {"items": [], "next_cursor": None}
    s.restart()
    assert get(s, "/v1/collections/tmp").json()["documents"] == 0


def test_drop_then_define_again_at_once_keeps_the_new_documents(start_server):
    """A name dropped and at once defined again (409 collection_busy until the
    old documents are gone), then the same ids written again: every new
    document stays, none of the old ones comes back."""
    s = start_server("--shards", "4")
    sess = requests.Session()
    body = {"name": "c", "primary_key": "id", "fields": {"id": {"type": "integer"}, "gen": {"type": "integer"}},
            "indexes": ["gen"]}
    n = 2000

    def write_all(gen):
        with s.raw(timeout=60) as c:
            c.send(b"".join(skvtest.request_bytes("PUT", f"/v1/collections/c/docs/{i}",
                                                  body=b'{"id":%d,"gen":%d}' % (i, gen),
                                                  headers={"Content-Type": "application/json"}) for i in range(n)))
            assert [x.status for x in c.read_responses(n)] == [201] * n

    define(s, body)
    write_all(1)
    for gen in (2, 3):
        assert delete(s, "/v1/collections/c", session=sess).status_code == 200
        define_after_drop(s, body, session=sess)
        write_all(gen)
        # The cleanup is over (the define waited for it), and stays over.
        for _ in range(2):
            got = doc_ids(s, "c", session=sess)
            assert len(got) == n and all(d["gen"] == gen for d in got)
            assert get(s, "/v1/collections/c", session=sess).json()["documents"] == n
            assert s.shards()["total_keys"] == n + 1
            time.sleep(0.3)
        assert get(s, f"/v1/collections/c/docs?gen={gen - 1}&limit=5", session=sess).json()["items"] == []
    s.restart(graceful=False)
    assert s.shards()["total_keys"] == n + 1
    assert all(d["gen"] == 3 for d in doc_ids(s, "c"))


def test_concurrent_drops_of_one_collection(start_server):
    """Only one of several concurrent drops of a collection drops it."""
    s = start_server("--threads", "4")
    for rnd in range(3):
        define_after_drop(s, {"name": "d", "primary_key": "id"})
        assert post(s, "/v1/collections/d/docs", {"id": "x"}).status_code == 201
        codes = []
        barrier = threading.Barrier(6)

        def drop():
            barrier.wait()
            codes.append(delete(s, "/v1/collections/d").status_code)

        threads = [threading.Thread(target=drop) for _ in range(6)]
        for t_ in threads:
            t_.start()
        for t_ in threads:
            t_.join(timeout=30 * TMUL)
        assert sorted(codes) == [200] + [404] * 5, codes
    wait_total_keys(s, 0)


def test_documents_written_during_a_drop_are_deleted_too(start_server):
    """Document writes still waiting for the disk when the drop stops the
    writes: the cleanup waits for them and deletes them as well, so nothing
    stays behind (keys_count) even before a restart."""
    s = start_server("--shards", "4", threads=4)
    sess = requests.Session()
    n = 200
    for _ in range(4):
        define_after_drop(s, {"name": "c", "primary_key": "id", "fields": {"id": {"type": "integer"}}}, session=sess)
        with s.raw(timeout=30) as c:
            c.send(b"".join(skvtest.request_bytes("PUT", f"/v1/collections/c/docs/{i}", body=b'{"id":%d}' % i,
                                                  headers={"Content-Type": "application/json"}) for i in range(n)))
            time.sleep(0.001)
            r = delete(s, "/v1/collections/c", session=sess)
            assert r.status_code == 200, r.text
            codes = [x.status for x in c.read_responses(n)]
        assert set(codes) <= {201, 404}, codes
        wait_until(lambda: sess.get(s.url("/cache/stats"), timeout=T).json()["keys_count"] == 0, "keys_count == 0")
        assert get(s, "/v1/collections/c", session=sess).status_code == 404
    s.restart()
    assert sess.get(s.url("/cache/stats"), timeout=T).json()["keys_count"] == 0


# ---- the property test ------------------------------------------------------------------------------


def test_property_region_queries_against_a_model(start_server):
    """Random creates, updates and deletes on users interleaved with the
    pages of region queries.  For each query: no id twice; every returned
    document is a state the document had during the query, with the queried
    region; every id that matched from the first page to the last is
    returned."""
    s = start_server("--shards", "5")
    rnd = random.Random(20261121)
    regions = ["US", "EU", "APAC"]
    ids = list(range(40))
    model = {}  # id -> current document
    sess = requests.Session()

    def mutate():
        uid = rnd.choice(ids)
        op = rnd.random()
        if op < 0.4:
            u = user(uid, rnd.choice(regions), name=f"n{rnd.randrange(1000)}")
            r = post(s, "/users", u, session=sess)
            if uid in model:
                assert r.status_code == 409, r.text
            else:
                assert r.status_code == 200, r.text
                model[uid] = u
        elif op < 0.75:
            u = user(uid, rnd.choice(regions), name=f"n{rnd.randrange(1000)}")
            r = put(s, f"/users/{uid}", u, session=sess)
            assert r.status_code == (200 if uid in model else 201), r.text
            model[uid] = u
        else:
            r = delete(s, f"/users/{uid}", session=sess)
            assert r.status_code == (200 if uid in model else 404), r.text
            model.pop(uid, None)

    for _ in range(30):
        mutate()
    for query in range(40):
        region = rnd.choice(regions)
        limit = rnd.randint(1, 6)
        # States during the query: every document value any id had, and the
        # ids that matched at every moment.
        states = {uid: [json.dumps(d, sort_keys=True)] for uid, d in model.items()}
        throughout = {uid for uid, d in model.items() if d["region"] == region}

        def between(page):
            for _ in range(rnd.randint(0, 4)):
                mutate()
                for uid, d in model.items():
                    states.setdefault(uid, []).append(json.dumps(d, sort_keys=True))
                throughout.intersection_update(uid for uid, d in model.items() if d["region"] == region)

        items, _ = walk(s, f"/users?region={region}", limit, session=sess, between=between)
        got = [d["user_id"] for d in items]
        assert len(got) == len(set(got)), f"query {query}: duplicates {got}"
        for d in items:
            assert d["region"] == region, (query, d)
            assert json.dumps(d, sort_keys=True) in states.get(d["user_id"], []), (query, d)
        missing = throughout - set(got)
        assert not missing, f"query {query} ({region}, limit {limit}) skipped {sorted(missing)}"
    # Finally, quiet: each region's listing is exactly the model.
    for region in regions:
        items, _ = walk(s, f"/users?region={region}", 4, session=sess)
        assert sorted(d["user_id"] for d in items) == sorted(u for u, d in model.items() if d["region"] == region)


def test_concurrent_writers_readers_and_definitions(start_server):
    """Writers on users, readers paginating region queries and a thread that
    defines and drops collections, all at once (lock order: a deadlock would
    hang here).  Afterwards each region listing equals what GET by id says."""
    s = start_server("--shards", "4", "--threads", "4")
    regions = ["US", "EU", "APAC"]
    errors = []

    def writer(seed):
        rnd = random.Random(seed)
        sess = requests.Session()
        for _ in range(150):
            uid = rnd.randrange(50)
            op = rnd.random()
            if op < 0.4:
                code = post(s, "/users", user(uid, rnd.choice(regions)), session=sess).status_code
                ok = code in (200, 409)
            elif op < 0.8:
                code = put(s, f"/users/{uid}", user(uid, rnd.choice(regions)), session=sess).status_code
                ok = code in (200, 201)
            else:
                code = delete(s, f"/users/{uid}", session=sess).status_code
                ok = code in (200, 404)
            if not ok:
                errors.append(("write", code))

    def reader(seed):
        rnd = random.Random(seed)
        sess = requests.Session()
        for _ in range(15):
            items, _ = walk(s, f"/users?region={rnd.choice(regions)}", rnd.randint(1, 9), session=sess)
            ids = [d["user_id"] for d in items]
            if len(ids) != len(set(ids)):
                errors.append(("duplicate", ids))

    def definer():
        sess = requests.Session()
        for i in range(15):
            name = f"churn{i % 3}"
            r = post(s, "/v1/collections", {"name": name, "primary_key": "id", "indexes": ["k"]}, session=sess)
            if r.status_code not in (201, 409):
                errors.append(("define", r.status_code, r.text))
            for j in range(5):
                post(s, f"/v1/collections/{name}/docs", {"id": f"d{j}", "k": "v"}, session=sess)
            r = delete(s, f"/v1/collections/{name}", session=sess)
            if r.status_code not in (200, 404):
                errors.append(("drop", r.status_code, r.text))

    threads = ([threading.Thread(target=writer, args=(i,)) for i in range(4)]
               + [threading.Thread(target=reader, args=(100 + i,)) for i in range(2)]
               + [threading.Thread(target=definer)])
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120 * TMUL)
        assert not t.is_alive(), "a thread is stuck (deadlock?)"
    assert not errors, errors[:5]
    truth = {}
    for uid in range(50):
        r = get(s, f"/users/{uid}")
        if r.status_code == 200:
            truth[uid] = r.json()["region"]
    for region in regions:
        items, _ = walk(s, f"/users?region={region}", 10)
        assert sorted(d["user_id"] for d in items) == sorted(u for u, rg in truth.items() if rg == region)
    for i in range(3):
        assert get(s, f"/v1/collections/churn{i}").status_code == 404
    wait_total_keys(s, len(truth))
