"""Key placement seen from outside (X-Shard): the seed's MD5 ring, modulo and jump."""
import bisect
import hashlib
import urllib.parse

import requests

from skvtest import TMUL

T = 5 * TMUL


class SeedConsistentHashing:
    """Seed 004's ConsistentHashing, reimplemented: MD5 of the label as a
    128-bit integer, 100 virtual nodes "shard_<i>#<v>" per shard, a key goes
    to the first node hash >= its hash, else to the smallest one."""

    def __init__(self, nodes, virtual_nodes=100):
        self.ring = {}
        for node in nodes:
            for v in range(virtual_nodes):
                self.ring[self._hash(f"{node}#{v}")] = node
        self.sorted = sorted(self.ring)

    @staticmethod
    def _hash(key):
        return int(hashlib.md5(key.encode()).hexdigest(), 16)

    def get_node(self, key):
        h = self._hash(key)
        i = bisect.bisect_left(self.sorted, h)  # first node_hash >= key_hash
        return self.ring[self.sorted[i] if i < len(self.sorted) else self.sorted[0]]


def put_shard(session, s, key, value=b"v"):
    r = session.put(s.url("/v1/kv/" + urllib.parse.quote(key, safe="")), data=value, timeout=T)
    assert r.status_code in (200, 201), r.text
    return int(r.headers["X-Shard"])


def get_shard(session, s, key):
    r = session.get(s.url("/v1/kv/" + urllib.parse.quote(key, safe="")), timeout=T)
    assert r.status_code == 200, r.text
    return int(r.headers["X-Shard"])


def test_md5_ring_matches_seed(start_server):
    s = start_server("--hash", "md5", "--placement", "ring", "--vnodes", "100", "--shards", "3")
    seed = SeedConsistentHashing([f"shard_{i}" for i in range(1, 4)])
    keys = [str(i) for i in range(200)] + ["alice", "bob", "user:42", "", "ключ", "a/b c", "x" * 300,
                                           "shard_1#0", "shard_3#99"]
    keys = [k for k in keys if k]
    info = s.shards()
    assert info["hash"] == "md5" and info["placement"] == "ring"
    mismatches = []
    with requests.Session() as sess:
        for k in keys:
            ours = put_shard(sess, s, k)
            theirs = int(seed.get_node(k).split("_")[1]) - 1  # our shard i == their shard_<i+1>
            if ours != theirs:
                mismatches.append((k, ours, theirs))
    assert not mismatches, mismatches[:10]
    # Every shard got some of the 200 keys.
    assert all(sh["keys"] > 0 for sh in s.shards()["shards"])


def test_modulo_placement(start_server):
    s = start_server("--placement", "modulo", "--shards", "7")
    with requests.Session() as sess:
        for i in list(range(60)) + [10**6 + 3, 2**63 + 5, 2**64 - 1]:
            assert put_shard(sess, s, str(i)) == i % 7, i
        # Non-canonical integers and other keys are hashed but stay in range and stable.
        for k in ("007", "-3", "+4", "abc", "1.5"):
            a = put_shard(sess, s, k)
            assert 0 <= a < 7 and get_shard(sess, s, k) == a


def test_jump_placement_in_range_and_stable(start_server):
    s = start_server("--placement", "jump", "--shards", "5")
    seen = {}
    with requests.Session() as sess:
        for i in range(200):
            k = f"jump-{i}"
            seen[k] = put_shard(sess, s, k)
            assert 0 <= seen[k] < 5
        for k, sh in seen.items():
            assert get_shard(sess, s, k) == sh
    assert set(seen.values()) == set(range(5))
    info = s.shards()
    assert info["placement"] == "jump"
    assert [sh["keys"] for sh in info["shards"]] == [list(seen.values()).count(i) for i in range(5)]


def test_store_pin_beats_ring(start_server):
    # /store keys are placed by userId % N whatever the strategy.
    s = start_server("--hash", "md5", "--shards", "4")
    for uid in (1, 2, 3, 4, 5, -1):
        r = requests.post(s.url("/store"), json={"userId": uid, "data": uid}, timeout=T)
        assert r.json()["shard"] == uid % 4
