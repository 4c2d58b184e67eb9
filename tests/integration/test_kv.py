"""The canonical API: PUT/GET/HEAD/DELETE /v1/kv/{key} and its preconditions."""
import urllib.parse

import requests

from skvtest import TMUL, assert_error_shape, request_bytes

T = 5 * TMUL


def kv(server, key, quote=True):
    return server.url("/v1/kv/" + (urllib.parse.quote(key, safe="") if quote else key))


def test_put_get_replace_delete(server):
    url = kv(server, "alpha")
    r = requests.put(url, data=b"one", timeout=T)
    assert r.status_code == 201, r.text
    assert r.headers["ETag"] == '"1"'
    shard = r.headers["X-Shard"]
    assert shard.isdigit()
    body = r.json()
    assert body["key"] == "alpha" and body["created"] is True and body["version"] == 1
    assert body["shard"] == int(shard)

    r = requests.get(url, timeout=T)
    assert r.status_code == 200
    assert r.content == b"one"
    assert r.headers["ETag"] == '"1"'
    assert r.headers["X-Shard"] == shard
    assert r.headers["Content-Type"] == "application/octet-stream"

    r = requests.put(url, data=b"two", timeout=T)
    assert r.status_code == 200, r.text
    assert r.json()["created"] is False
    etag2 = r.headers["ETag"]
    assert etag2.startswith('"') and etag2.endswith('"') and etag2 != '"1"'
    assert int(etag2.strip('"')) > 1

    r = requests.get(url, timeout=T)
    assert r.content == b"two" and r.headers["ETag"] == etag2

    r = requests.delete(url, timeout=T)
    assert r.status_code == 200
    assert r.json()["deleted"] is True
    assert r.headers["X-Shard"] == shard

    r = requests.get(url, timeout=T)
    assert r.status_code == 404
    assert_error_shape(r.content, code="not_found")


def test_head_has_length_but_no_body(server):
    url = kv(server, "headkey")
    requests.put(url, data=b"0123456789", timeout=T)
    r = requests.head(url, timeout=T)
    assert r.status_code == 200
    assert r.headers["Content-Length"] == "10"
    assert r.headers["ETag"] == '"1"'
    assert r.content == b""
    r = requests.head(kv(server, "nothere"), timeout=T)
    assert r.status_code == 404 and r.content == b""


def test_binary_value_with_nul(server):
    value = bytes(range(256)) * 4 + b"\x00\x00end\x00"
    url = kv(server, "bin")
    assert requests.put(url, data=value, timeout=T).status_code == 201
    r = requests.get(url, timeout=T)
    assert r.content == value
    assert r.headers["Content-Length"] == str(len(value))


def test_empty_value(server):
    url = kv(server, "empty")
    r = requests.put(url, data=b"", timeout=T)
    assert r.status_code == 201, r.text
    r = requests.get(url, timeout=T)
    assert r.status_code == 200 and r.content == b""


def test_percent_encoded_key(server):
    url = server.url("/v1/kv/a%2Fb%20c")
    r = requests.put(url, data=b"slash space", timeout=T)
    assert r.status_code == 201
    assert r.json()["key"] == "a/b c"
    assert requests.get(url, timeout=T).content == b"slash space"
    # Same key spelled with other (valid) escapes.
    assert requests.get(server.url("/v1/kv/%61%2f%62%20%63"), timeout=T).content == b"slash space"
    # It appears decoded in the shard listing.
    data = {}
    for sh in server.shards("?data=1")["shards"]:
        data.update(sh["data"])
    assert data == {"a/b c": "slash space"}


def test_utf8_key(server):
    key = "ключ/日本語 ✓"
    url = kv(server, key)
    r = requests.put(url, data="значение".encode(), timeout=T)
    assert r.status_code == 201
    assert r.json()["key"] == key
    r = requests.get(url, timeout=T)
    assert r.content.decode() == "значение"


def test_bad_percent_encoding_is_400(server):
    # requests would re-quote "%G1", so this one goes over a raw socket.
    for target in ("/v1/kv/bad%G1", "/v1/kv/trunc%4"):
        with server.raw() as c:
            c.send(request_bytes("GET", target))
            r = c.read_response()
            assert r.status == 400, r
            assert_error_shape(r.body, code="bad_key")


def test_if_match(server):
    url = kv(server, "cas")
    r = requests.put(url, data=b"v1", timeout=T)
    etag = r.headers["ETag"]

    r = requests.put(url, data=b"v2", headers={"If-Match": etag}, timeout=T)
    assert r.status_code == 200, r.text
    new_etag = r.headers["ETag"]
    assert new_etag != etag

    # The old version is stale now: 412 and nothing changes.
    r = requests.put(url, data=b"v3", headers={"If-Match": etag}, timeout=T)
    assert r.status_code == 412
    assert_error_shape(r.content, code="precondition_failed")
    r = requests.get(url, timeout=T)
    assert r.content == b"v2" and r.headers["ETag"] == new_etag

    # The unquoted form of the current version is accepted; a weak tag never
    # matches (If-Match compares strongly) and is refused without a change.
    r = requests.put(url, data=b"v4", headers={"If-Match": new_etag.strip('"')}, timeout=T)
    assert r.status_code == 200, r.text
    cur = r.headers["ETag"]
    r = requests.put(url, data=b"weak", headers={"If-Match": "W/" + cur}, timeout=T)
    assert r.status_code == 400
    assert_error_shape(r.content, code="bad_precondition")
    r = requests.put(url, data=b"v5", headers={"If-Match": cur}, timeout=T)
    assert r.status_code == 200, r.text

    # "*" matches any existing key.
    r = requests.put(url, data=b"v6", headers={"If-Match": "*"}, timeout=T)
    assert r.status_code == 200

    # A stale DELETE is refused too.
    r = requests.delete(url, headers={"If-Match": etag}, timeout=T)
    assert r.status_code == 412
    assert requests.get(url, timeout=T).content == b"v6"
    cur = requests.get(url, timeout=T).headers["ETag"]
    assert requests.delete(url, headers={"If-Match": cur}, timeout=T).status_code == 200


def test_if_match_star_on_missing_key(server):
    url = kv(server, "ghost")
    r = requests.put(url, data=b"x", headers={"If-Match": "*"}, timeout=T)
    assert r.status_code == 412
    assert_error_shape(r.content)
    assert requests.get(url, timeout=T).status_code == 404


def test_if_none_match_create_only(server):
    url = kv(server, "once")
    r = requests.put(url, data=b"first", headers={"If-None-Match": "*"}, timeout=T)
    assert r.status_code == 201
    r = requests.put(url, data=b"second", headers={"If-None-Match": "*"}, timeout=T)
    assert r.status_code == 412
    assert_error_shape(r.content)
    assert requests.get(url, timeout=T).content == b"first"


def test_bad_preconditions_are_400(server):
    url = kv(server, "pre")
    requests.put(url, data=b"keep", timeout=T)
    for headers in ({"If-Match": "abc"}, {"If-Match": '"1", "2"'}, {"If-None-Match": '"1"'},
                    {"If-Match": '"1"', "If-None-Match": "*"}):
        r = requests.put(url, data=b"changed", headers=headers, timeout=T)
        assert r.status_code == 400, (headers, r.text)
        assert_error_shape(r.content, code="bad_precondition")
    r = requests.get(url, timeout=T)
    assert r.content == b"keep" and r.headers["ETag"] == '"1"'


def test_delete_missing_is_404(server):
    r = requests.delete(kv(server, "never"), timeout=T)
    assert r.status_code == 404
    assert_error_shape(r.content, code="not_found")


def test_empty_key_is_400(server):
    # "/v1/kv/" names no key: an error, and nothing is stored.
    r = requests.put(server.url("/v1/kv/"), data=b"x", timeout=T)
    assert r.status_code in (400, 404)
    assert_error_shape(r.content)
    assert server.shards()["total_keys"] == 0


def test_key_too_large(start_server):
    s = start_server("--max-key-bytes", "8")
    ok = requests.put(kv(s, "12345678"), data=b"ok", timeout=T)
    assert ok.status_code == 201
    r = requests.put(kv(s, "123456789"), data=b"no", timeout=T)
    assert r.status_code == 400
    assert_error_shape(r.content, code="key_too_large")
    # The limit applies to the decoded key: 9 escaped bytes are still 9 bytes.
    r = requests.put(s.url("/v1/kv/" + "%41" * 9), data=b"no", timeout=T)
    assert r.status_code == 400
    assert s.shards()["total_keys"] == 1


def test_value_too_large(start_server):
    s = start_server("--max-value-bytes", "16")
    url = kv(s, "v")
    assert requests.put(url, data=b"x" * 16, timeout=T).status_code == 201
    with requests.Session() as sess:
        r = sess.put(url, data=b"y" * 17, timeout=T)
        assert r.status_code == 413
        assert_error_shape(r.content, code="value_too_large")
        # The connection stays usable and the old value is untouched.
        r = sess.get(url, timeout=T)
        assert r.status_code == 200 and r.content == b"x" * 16
