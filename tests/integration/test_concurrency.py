"""Many clients at once: every request succeeds and the counts add up."""
import threading

import requests

from skvtest import TMUL

T = 10 * TMUL
THREADS = 8
KEYS_PER_THREAD = 150  # one PUT and one GET each: 300 requests per thread


def test_parallel_clients(start_server):
    s = start_server("--shards", "4")
    errors = []

    def client(tid):
        try:
            with requests.Session() as sess:
                for i in range(KEYS_PER_THREAD):
                    r = sess.put(s.url(f"/v1/kv/t{tid}-{i}"), data=f"{tid}:{i}".encode(), timeout=T)
                    if r.status_code != 201:
                        errors.append(("put", tid, i, r.status_code, r.text))
                        return
                for i in range(KEYS_PER_THREAD):
                    r = sess.get(s.url(f"/v1/kv/t{tid}-{i}"), timeout=T)
                    if r.status_code != 200 or r.content != f"{tid}:{i}".encode():
                        errors.append(("get", tid, i, r.status_code, r.content[:100]))
                        return
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(("exception", tid, repr(e)))

    threads = [threading.Thread(target=client, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60 * TMUL)
    assert not any(t.is_alive() for t in threads), "client threads hung"
    assert not errors, errors[:5]
    info = s.shards()
    assert info["total_keys"] == THREADS * KEYS_PER_THREAD
    assert sum(sh["requests"] for sh in info["shards"]) == 2 * THREADS * KEYS_PER_THREAD


def test_parallel_writers_same_key(start_server):
    """Concurrent replaces of one key: versions stay unique and increasing."""
    s = start_server()
    versions = []
    lock = threading.Lock()

    def writer(tid):
        with requests.Session() as sess:
            for i in range(50):
                r = sess.put(s.url("/v1/kv/hot"), data=f"{tid}-{i}".encode(), timeout=T)
                assert r.status_code in (200, 201)
                with lock:
                    versions.append(int(r.headers["ETag"].strip('"')))

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60 * TMUL)
    assert len(versions) == 200
    assert len(set(versions)) == 200, "two writes got the same version"
    final = requests.get(s.url("/v1/kv/hot"), timeout=T)
    assert int(final.headers["ETag"].strip('"')) == max(versions)
