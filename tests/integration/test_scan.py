"""Key scans: GET/HEAD /v1/kv?prefix=&limit=&cursor= (docs/scans.md).

The property test drives random PUT/DELETE between the pages of a scan with
small limits while the shard tables grow and shrink, and checks the
guarantees against a model: no key twice, every key present for the whole
scan returned (with its value at that moment), nothing that never existed,
the prefix respected.
"""
import base64
import http.client
import json
import random
import struct
import time
import urllib.parse

import pytest
import requests

from skvtest import HOST, TMUL, assert_error_shape, crc32c

T = 5 * TMUL


def kv_url(s, key):
    return s.url("/v1/kv/" + urllib.parse.quote(key, safe=""))


def scan(s, **params):
    return requests.get(s.url("/v1/kv"), params=params, timeout=T)


def raw_get(s, target):
    """GET with the target sent exactly as given; returns (status, body)."""
    conn = http.client.HTTPConnection(HOST, s.port, timeout=T)
    try:
        conn.request("GET", target)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def scan_all(s, prefix=None, limit=None):
    """Every page of one scan; returns (items, pages)."""
    items, pages, cursor = [], 0, None
    while True:
        params = {}
        if prefix is not None:
            params["prefix"] = prefix
        if limit is not None:
            params["limit"] = limit
        if cursor is not None:
            params["cursor"] = cursor
        r = scan(s, **params)
        assert r.status_code == 200, r.text
        doc = r.json()
        assert set(doc) == {"items", "next_cursor"}, doc
        assert limit is None or len(doc["items"]) <= limit
        items += doc["items"]
        pages += 1
        cursor = doc["next_cursor"]
        if cursor is None:
            return items, pages
        assert isinstance(cursor, str) and cursor
        assert pages < 100000


# ---- the cursor's wire format (src/cursor.h), to forge cursors -----------------------------

def cursor_unpack(text):
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    ver, kind, query, shard, a, b, klen = struct.unpack_from("<BBQIQQI", raw, 0)
    return {"version": ver, "kind": kind, "query": query, "shard": shard, "a": a, "b": b,
            "key": raw[34:34 + klen]}


def cursor_pack(c):
    raw = struct.pack("<BBQIQQI", c["version"], c["kind"], c["query"], c["shard"], c["a"], c["b"],
                      len(c["key"])) + c["key"]
    raw += struct.pack("<I", crc32c(raw))
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# ---- basics --------------------------------------------------------------------------------

def test_empty_store(server):
    r = scan(server)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json() == {"items": [], "next_cursor": None}


def test_pages_return_every_key_once(start_server):
    s = start_server("--shards", "4", "--fsync", "never")
    written = {}
    with requests.Session() as sess:
        for i in range(250):
            key = f"key:{i}"
            r = sess.put(kv_url(s, key), data=f"value {i}".encode(), timeout=T)
            assert r.status_code == 201
            written[key] = r.json()
    for limit in (1, 7, 100, 1000, None):
        items, pages = scan_all(s, limit=limit)
        keys = [it["key"] for it in items]
        assert len(keys) == len(set(keys)) == 250, limit
        assert set(keys) == set(written)
        if limit is None:
            assert pages == 3  # default limit 100
        for it in items:
            assert set(it) == {"key", "value", "version", "shard"}, it
            w = written[it["key"]]
            assert it["value"] == "value " + it["key"][4:]
            assert it["version"] == w["version"] and it["shard"] == w["shard"]
        # Scan order: by shard first.
        shards = [it["shard"] for it in items]
        assert shards == sorted(shards)


def test_head_and_methods(server):
    requests.put(kv_url(server, "h"), data=b"x", timeout=T)
    g = scan(server)
    h = requests.head(server.url("/v1/kv"), timeout=T)
    assert h.status_code == 200 and h.content == b""
    assert h.headers["Content-Length"] == str(len(g.content))
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        r = requests.request(method, server.url("/v1/kv"), timeout=T)
        assert r.status_code == 405, method
        assert r.headers["Allow"] == "GET, HEAD, OPTIONS"
        assert_error_shape(r.content, code="method_not_allowed")
    r = requests.options(server.url("/v1/kv"), timeout=T)
    assert r.status_code == 204 and r.headers["Allow"] == "GET, HEAD, OPTIONS"


def test_prefix_filtering_and_encoding(server):
    keys = ["user/1", "user/2", "users", "user", "other/1", "a b", "a+b", "ключ/1", "ключ/2", "x/y%z"]
    for k in keys:
        assert requests.put(kv_url(server, k), data=b"v", timeout=T).status_code == 201

    def found(prefix_query):
        r = requests.get(server.url("/v1/kv?" + prefix_query), timeout=T)
        assert r.status_code == 200, r.text
        assert r.json()["next_cursor"] is None
        return sorted(it["key"] for it in r.json()["items"])

    assert found("prefix=user/") == ["user/1", "user/2"]
    assert found("prefix=user%2F") == ["user/1", "user/2"]
    assert found("prefix=user") == ["user", "user/1", "user/2", "users"]
    assert found("prefix=") == sorted(keys)
    assert found("") == sorted(keys)
    assert found("prefix=" + urllib.parse.quote("ключ/")) == ["ключ/1", "ключ/2"]
    assert found("prefix=a%2Bb") == ["a+b"]    # %2B is a plus sign ...
    assert found("prefix=a+b") == ["a b"]      # ... a raw '+' is a space (form encoding)
    assert found("prefix=x%2Fy%25") == ["x/y%z"]
    assert found("prefix=zzz") == []
    assert found("prefix=%00") == []           # internal keys are never listed
    for target in ("/v1/kv?prefix=%zz", "/v1/kv?limit=1%", "/v1/kv?other=%g0&prefix=a"):
        status, body = raw_get(server, target)  # (requests would re-encode it)
        assert status == 400, target
        assert_error_shape(body, code="bad_query")


def test_values_rendered_like_the_kv_routes(server):
    # Raw bytes become a JSON string; JSON written through a JSON route stays JSON.
    requests.put(kv_url(server, "raw"), data='say "hi"\n'.encode(), timeout=T)
    requests.put(kv_url(server, "bin"), data=b"\xff\x00a", timeout=T)
    r = requests.put(server.url("/kv"), json={"data": {"key": "doc", "value": {"a": [1, 2], "b": None}}}, timeout=T)
    assert r.status_code in (200, 201), r.text
    items = {it["key"]: it for it in scan(server).json()["items"]}
    assert items["raw"]["value"] == 'say "hi"\n'
    assert items["bin"]["value"] == "\ufffd\u0000a"
    assert items["doc"]["value"] == {"a": [1, 2], "b": None}


def test_ttl_entries_show_expiry_and_vanish(server):
    before_ms = int(time.time() * 1000)
    r = requests.put(kv_url(server, "short"), params={"ttl": "1"}, data=b"s", timeout=T)
    assert r.status_code == 201, r.text
    requests.put(kv_url(server, "long"), params={"ttl": "3600"}, data=b"l", timeout=T)
    requests.put(kv_url(server, "forever"), data=b"f", timeout=T)
    items = {it["key"]: it for it in scan(server).json()["items"]}
    assert set(items) == {"short", "long", "forever"}
    assert "expires_at_ms" not in items["forever"]
    assert before_ms + 1000 <= items["short"]["expires_at_ms"] <= before_ms + 1000 + 5000 * TMUL
    assert items["long"]["expires_at_ms"] >= before_ms + 3600 * 1000
    time.sleep(1.3)
    assert sorted(it["key"] for it in scan(server).json()["items"]) == ["forever", "long"]


def test_internal_records_are_hidden(server):
    # An Idempotency-Key makes the node remember the answer under an internal key.
    r = requests.put(kv_url(server, "visible"), data=b"v", headers={"Idempotency-Key": "abc-123"}, timeout=T)
    assert r.status_code == 201, r.text
    total = requests.get(server.url("/shards"), timeout=T).json()["total_keys"]
    items, _ = scan_all(server, limit=1)
    assert [it["key"] for it in items] == ["visible"]
    assert total >= 2  # the remembered answer is an entry too, just not a listed one


# ---- errors --------------------------------------------------------------------------------

@pytest.mark.parametrize("limit", ["0", "1001", "-1", "abc", "", "1.5", "01", "99999999999999999999999"])
def test_bad_limit(server, limit):
    r = requests.get(server.url("/v1/kv?limit=" + limit), timeout=T)
    assert r.status_code == 400, limit
    assert_error_shape(r.content, code="bad_limit")


def test_limit_bounds_accepted(server):
    assert scan(server, limit="1").status_code == 200
    assert scan(server, limit="1000").status_code == 200


def test_bad_cursors(start_server):
    s = start_server("--shards", "3")
    for i in range(30):
        requests.put(kv_url(s, f"a{i}"), data=b"v", timeout=T)
    r = scan(s, prefix="a", limit=2)
    good = r.json()["next_cursor"]
    assert good
    assert scan(s, prefix="a", limit=2, cursor=good).status_code == 200

    def bad(cursor, prefix="a"):
        r = scan(s, prefix=prefix, cursor=cursor)
        assert r.status_code == 400, (cursor, r.text)
        assert_error_shape(r.content, code="bad_cursor")

    bad("garbage!")
    bad("null")
    bad(good[:-3])                  # truncated
    bad(good + "A")                 # impossible length / trailing bytes
    flipped = good[:5] + ("B" if good[5] != "B" else "C") + good[6:]
    bad(flipped)                    # checksum
    bad(good, prefix="b")           # another prefix
    bad(good, prefix="")
    c = cursor_unpack(good)
    assert c["version"] == 1 and c["kind"] == 1 and c["key"] == b""
    bad(cursor_pack(dict(c, kind=2)))           # another kind of listing
    bad(cursor_pack(dict(c, shard=3)))          # no such shard
    bad(cursor_pack(dict(c, b=c["b"] + 1)))     # another shard map version
    bad(cursor_pack(dict(c, key=b"k")))         # scans carry no key
    assert scan(s, prefix="a", cursor=cursor_pack(c)).status_code == 200  # the round trip is faithful
    status, body = raw_get(s, "/v1/kv?prefix=a&cursor=%zz")
    assert status == 400
    assert_error_shape(body, code="bad_query")
    # An empty cursor starts from the beginning.
    assert scan(s, prefix="a", cursor="").json()["items"] == scan(s, prefix="a").json()["items"]


def test_sparse_pages_may_be_empty_but_continue(start_server):
    # 20000 keys in one shard: a table of 32768 buckets, more than one page
    # visits; a prefix that matches only a few keys gives empty pages with a
    # next_cursor before it finds them.
    s = start_server("--shards", "1", "--fsync", "never")
    conn = http.client.HTTPConnection(HOST, s.port, timeout=T)
    for i in range(20000):
        conn.request("PUT", f"/v1/kv/k{i}", body=b"")
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 201
    for i in range(5):
        conn.request("PUT", f"/v1/kv/rare{i}", body=b"r")
        resp = conn.getresponse()
        resp.read()
    conn.close()
    items, pages = scan_all(s, prefix="rare")
    assert sorted(it["key"] for it in items) == [f"rare{i}" for i in range(5)]
    assert pages >= 32768 // 4096


# ---- the property test ---------------------------------------------------------------------

class Client:
    """A keep-alive HTTP/1.1 connection (http.client is much faster than requests here)."""

    def __init__(self, port):
        self.conn = http.client.HTTPConnection(HOST, port, timeout=T)

    def call(self, method, path, body=None):
        self.conn.request(method, path, body=body)
        resp = self.conn.getresponse()
        return resp.status, resp.read()

    def close(self):
        self.conn.close()


class IdSet:
    """A set of ints with O(1) add and random removal."""

    def __init__(self, items=()):
        self.items = list(items)

    def __len__(self):
        return len(self.items)

    def add(self, i):
        self.items.append(i)

    def pop_random(self, rng):
        k = rng.randrange(len(self.items))
        self.items[k], self.items[-1] = self.items[-1], self.items[k]
        return self.items.pop()


def key_of(i):
    return ("p/" if i % 4 == 0 else "q/") + str(i)


@pytest.mark.parametrize("prefix", ["", "p/"])
def test_property_writes_between_pages(start_server, prefix):
    """Two shards; 1200 keys at the start, grown to 4600 (about 2300 per
    shard: the tables grow from 1024 to 4096 buckets), then deleted down to
    150 (the tables shrink to a few hundred buckets), all between the pages
    of one scan with limits 1..7.  Every 20th initial key is never deleted
    (only overwritten): those must all be returned."""
    s = start_server("--shards", "2", "--fsync", "never")
    rng = random.Random(4 if prefix else 5)
    c = Client(s.port)
    U = 8000
    value = {}      # id -> current value (absent = not present)
    version = {}    # id -> current version
    shard = {}      # id -> shard (from the PUT answers)
    ever = set()    # ids present at some moment of the scan
    seen = set()
    count = [0, 0]  # present keys per shard

    def put(i):
        v = f"{i}:{rng.randrange(10**9)}"
        st, body = c.call("PUT", "/v1/kv/" + key_of(i), v.encode())
        assert st in (200, 201), body
        doc = json.loads(body)
        if i not in value:
            count[doc["shard"]] += 1
        value[i], version[i], shard[i] = v, doc["version"], doc["shard"]
        ever.add(i)

    def delete(i):
        st, body = c.call("DELETE", "/v1/kv/" + key_of(i))
        assert st == 200, body
        del value[i], version[i]
        count[shard[i]] -= 1

    for i in range(1200):
        put(i)
    stable = set(range(0, 1200, 20))
    stable_list = sorted(stable)
    present = IdSet(i for i in value if i not in stable)   # deletable ids
    absent = IdSet(i for i in range(U) if i not in value)
    grow_to, shrink_to = 4600, 150
    phase = 1

    def churn_op():
        nonlocal phase
        n = len(value)
        if phase == 1 and n >= grow_to:
            phase = 2
        if phase == 2 and n <= shrink_to:
            phase = 3
        r = rng.random()
        if r < 0.1:
            put(rng.choice(stable_list))              # overwrite a stable key
        elif r < (0.95 if phase == 1 else 0.15 if phase == 2 else 0.55):
            if len(absent):
                i = absent.pop_random(rng)
                put(i)
                present.add(i)
        elif len(present):
            i = present.pop_random(rng)
            delete(i)
            absent.add(i)

    # A prefix scan examines about four keys per key it returns: write more
    # between its pages so that the resizes still happen mid-scan.
    ops_scale = 4 if prefix else 1
    cursor = None
    pages = 0
    mid_counts = {0: [], 1: []}  # shard -> counts of that shard seen while its scan was in progress
    while True:
        limit = rng.randint(1, 7)
        q = {"prefix": prefix, "limit": limit}
        if cursor:
            q["cursor"] = cursor
        st, body = c.call("GET", "/v1/kv?" + urllib.parse.urlencode(q))
        assert st == 200, body
        doc = json.loads(body)
        pages += 1
        assert len(doc["items"]) <= limit
        for it in doc["items"]:
            assert it["key"].startswith(prefix), it
            i = int(it["key"][2:])
            assert key_of(i) == it["key"]
            assert i not in seen, f"{it['key']} returned twice"
            seen.add(i)
            assert i in value, f"{it['key']} returned but not present"
            assert it["value"] == value[i] and it["version"] == version[i], (it, value[i], version[i])
            assert it["shard"] == shard[i]
        cursor = doc["next_cursor"]
        if cursor is None:
            break
        pos = cursor_unpack(cursor)
        if pos["a"] > 0:
            mid_counts[pos["shard"]].append(count[pos["shard"]])
        for _ in range(rng.randint(30, 50) * ops_scale):
            churn_op()
        assert pages < 20000
    c.close()

    assert not seen - ever, "returned keys that never existed"
    missing = [key_of(i) for i in stable if key_of(i).startswith(prefix) and i not in seen]
    assert not missing, f"stable keys never returned: {missing}"
    assert len([i for i in stable if key_of(i).startswith(prefix)]) == 60
    # The tables really resized while a shard's scan was in progress: from at
    # most 1000 keys (at most 2048 buckets) to over 2100 (4096 buckets) is a
    # grow; from over 2100 to under 400 (< 4096/8) starts a shrink.
    grew = any(min(cs[:k + 1]) <= 1000 and cs[k] >= 2100 for cs in mid_counts.values() for k in range(len(cs)))
    shrank = any(max(cs[:k + 1]) >= 2100 and cs[k] <= 400 for cs in mid_counts.values() for k in range(len(cs)))
    assert grew and shrank, {sh: (cs[:3], max(cs, default=0), cs[-3:]) for sh, cs in mid_counts.items()}
