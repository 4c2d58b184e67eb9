"""
Durability (docs/storage.md): restarts keep the data and its versions, the
fsync policies and ?durability=async, torn tails and real corruption of the
log, `shardkv check [--repair]`, the data directory lock and layout check, a
full disk (tmpfs and RLIMIT_FSIZE), snapshots and log compaction, recovery
figures and /health.  The crash test (kill -9 under load) is test_crash.py.
"""
import os
import random
import re
import resource
import signal
import socket
import struct
import threading
import time
import urllib.parse

import pytest
import requests

import skvtest
from skvtest import TMUL, assert_error_shape

T = 5 * TMUL
RECOVERED = re.compile(r"shard (\d+): recovered (\d+) keys \(snapshot (\d+) entries, (\d+) log records replayed, "
                       r"seq (\d+)\) in [0-9.]+s")


# ---- helpers -------------------------------------------------------------------------------------


def kv(s, key):
    if isinstance(key, str):
        key = key.encode()
    return s.url("/v1/kv/" + urllib.parse.quote(key, safe=""))


def version_of(r):
    return int(r.headers["ETag"].strip('"'))


def put(sess, s, key, value, expect=(200, 201), **kw):
    r = sess.put(kv(s, key), data=value, timeout=T, **kw)
    if expect:
        assert r.status_code in expect, (key, r.status_code, r.text)
    return r


def get(sess, s, key):
    return sess.get(kv(s, key), timeout=T)


def assert_state(sess, s, model, gone=()):
    """model: key -> (value, version); gone: keys that must be absent."""
    for key, (value, version) in model.items():
        r = get(sess, s, key)
        assert r.status_code == 200, (key, r.status_code, r.text)
        assert r.content == value, (key, r.content[:80], value[:80])
        assert version_of(r) == version, (key, r.headers["ETag"], version)
    for key in gone:
        r = get(sess, s, key)
        assert r.status_code == 404, (key, r.status_code, r.content[:80])


def recovery_lines(text):
    """shard id -> (keys, snapshot entries, records replayed, seq) from the last recovery in text."""
    out = {}
    for m in RECOVERED.finditer(text):
        out[int(m.group(1))] = tuple(int(m.group(i)) for i in range(2, 6))
    return out


def shard_dir(s, sid):
    return s.data_dir / f"shard-{sid}"


def last_segment(s, sid):
    segs = skvtest.segments(shard_dir(s, sid))
    assert segs, f"no log segment in shard {sid}"
    return segs[-1]


def check_cli(data_dir, *extra):
    return skvtest.run_cli("check", "--data-dir", str(data_dir), *extra, timeout=30)


def health(s):
    r = requests.get(s.url("/health"), timeout=T)
    assert r.status_code == 200, r.text
    return r.json()


# ---- restart keeps everything --------------------------------------------------------------------


def test_restart_keeps_data_versions_and_deletes(start_server):
    s = start_server()
    rng = random.Random(7)
    sess = requests.Session()
    model, gone, shard_max, writes = {}, set(), {}, 0

    def note(r):
        sid = int(r.headers["X-Shard"])
        shard_max[sid] = max(shard_max.get(sid, 0), version_of(r))

    keys = [f"key-{i}" for i in range(60)] + ["bin\x00\xff".encode("latin-1") + bytes([i]) for i in range(5)] \
        + ["dir/with space/é"]
    for key in keys:
        value = rng.randbytes(rng.randrange(0, 3000))
        r = put(sess, s, key, value, expect=(201,))
        model[key] = (value, version_of(r))
        note(r)
        writes += 1
    for key in keys[:20]:  # overwrites
        value = b"second " + rng.randbytes(100)
        r = put(sess, s, key, value, expect=(200,))
        assert version_of(r) > model[key][1]
        model[key] = (value, version_of(r))
        note(r)
        writes += 1
    for key in keys[20:32]:  # deletes
        r = sess.delete(kv(s, key), timeout=T)
        assert r.status_code == 200, r.text
        note(r)
        del model[key]
        gone.add(key)
        writes += 1
    # seed routes: /store (pinned shards), /kv with JSON values, /put
    store = {}
    for uid in range(1, 6):
        data = {"name": f"user{uid}", "tags": ["a", uid], "nested": {"x": uid * 1.5}}
        r = sess.post(s.url("/store"), json={"userId": uid, "data": data}, timeout=T)
        assert r.status_code == 200, r.text
        store[uid] = (data, r.json()["version"])
        writes += 1
    kvjson = {}
    for i, value in enumerate([{"a": [1, 2, {"b": None}]}, [1, "two", 3.5], "plain text", 42, True]):
        r = sess.put(s.url("/kv"), json={"data": {"key": f"json{i}", "value": value}}, timeout=T)
        assert r.status_code == 200, r.text
        kvjson[f"json{i}"] = (value, r.json()["data"]["version"])
        writes += 1
    r = sess.post(s.url("/put"), json={"key": "seed001", "value": "sample_value"}, timeout=T)
    assert r.status_code == 200, r.text
    seed001_version = r.json()["version"]
    writes += 1
    before_shards = s.shards()

    s.restart()

    assert_state(sess, s, model, gone)
    for uid, (data, version) in store.items():
        r = sess.get(s.url(f"/store/{uid}"), timeout=T)
        assert r.status_code == 200, r.text
        assert r.json()["data"] == data and r.json()["version"] == version, r.text
    for key, (value, version) in kvjson.items():
        r = sess.get(s.url("/kv"), params={"key": key}, timeout=T)
        assert r.status_code == 200, r.text
        assert r.json()["data"]["value"] == value and r.json()["data"]["version"] == version, r.text
    r = sess.get(s.url("/get"), params={"key": "seed001"}, timeout=T)
    assert r.status_code == 200 and r.json()["value"] == "sample_value" and r.json()["version"] == seed001_version
    after_shards = s.shards()
    assert [(x["id"], x["keys"], x["bytes"]) for x in after_shards["shards"]] == \
        [(x["id"], x["keys"], x["bytes"]) for x in before_shards["shards"]]

    # One log record per write, each replayed once.
    lines = recovery_lines(s.stderr())
    assert sorted(lines) == list(range(8)), s.stderr()
    assert sum(v[2] for v in lines.values()) == writes
    for x in after_shards["shards"]:
        assert lines[x["id"]][0] == x["keys"]
    doc = health(s)
    assert sum(x["recovery"]["records_replayed"] for x in doc["shards"]) == writes

    # Versions continue above everything acknowledged before the restart, on every shard.
    seen = set()
    i = 0
    while len(seen) < 8 and i < 2000:
        r = put(sess, s, f"after-{i}", b"x")
        sid = int(r.headers["X-Shard"])
        if sid not in seen:
            assert version_of(r) > shard_max.get(sid, 0), (sid, version_of(r), shard_max)
            seen.add(sid)
        i += 1
    assert len(seen) == 8
    s.assert_no_sanitizer_reports()


def test_recovery_figures_in_log_and_health(start_server):
    s = start_server("--shards", "3")
    sess = requests.Session()
    max_version = {}
    for i in range(40):
        r = put(sess, s, f"r{i}", b"v%d" % i)
        sid = int(r.headers["X-Shard"])
        max_version[sid] = max(max_version.get(sid, 0), version_of(r))
    for i in range(10):
        r = sess.delete(kv(s, f"r{i}"), timeout=T)
        assert r.status_code == 200
        sid = int(r.headers["X-Shard"])
        max_version[sid] = max(max_version.get(sid, 0), version_of(r))
    s.restart()
    lines = recovery_lines(s.stderr())
    assert sorted(lines) == [0, 1, 2], s.stderr()
    shards = {x["id"]: x for x in s.shards()["shards"]}
    for sid, (keys, snap_entries, replayed, seq) in lines.items():
        assert keys == shards[sid]["keys"]
        assert snap_entries == 0
        assert seq == max_version.get(sid, 0)
        assert replayed == seq  # no gaps: every seq of this run was logged
    assert sum(v[2] for v in lines.values()) == 50
    doc = health(s)
    for x in doc["shards"]:
        assert x["recovery"]["records_replayed"] == lines[x["id"]][2]
        assert x["recovery"]["torn_tail"] is False
        assert x["recovery"]["seconds"] >= 0


def test_log_metrics_count_batches_records_and_fsyncs(start_server):
    s = start_server("--shards", "4")
    sess = requests.Session()
    n = 60
    for i in range(n):
        assert put(sess, s, f"m{i}", b"x" * 10).status_code == 201
    assert sess.delete(kv(s, "m0"), timeout=T).status_code == 200
    records = skvtest.metric_sum(s, "shardkv_wal_records_total")
    batches = skvtest.metric_sum(s, "shardkv_wal_batches_total")
    assert records == n + 1
    assert 1 <= batches <= records
    assert skvtest.metric_sum(s, "shardkv_wal_fsyncs_total") >= batches  # --fsync always: one per batch
    assert skvtest.metric_sum(s, "shardkv_wal_fsync_seconds_total") > 0
    assert skvtest.metric_sum(s, "shardkv_wal_bytes_total") > n * 10
    assert skvtest.metric_sum(s, "shardkv_wal_errors_total") == 0
    assert skvtest.metric_sum(s, "shardkv_shard_state", state="ok") == 4
    assert skvtest.metric_sum(s, "shardkv_shard_state", state="degraded") == 0
    s.restart()  # counters start again; the log size is read back
    assert skvtest.metric_sum(s, "shardkv_wal_records_total") == 0
    on_disk = sum(p.stat().st_size for sid in range(4) for p in skvtest.segments(shard_dir(s, sid)))
    assert skvtest.metric_sum(s, "shardkv_wal_log_bytes") == on_disk
    s.assert_no_sanitizer_reports()


def test_health_shows_every_shard_ok(start_server):
    s = start_server("--shards", "5")
    sess = requests.Session()
    for i in range(20):
        put(sess, s, f"h{i}", b"v")
    doc = health(s)
    assert doc["status"] == "healthy" and doc["state"] == "ready" and doc["fsync"] == "always"
    assert [x["id"] for x in doc["shards"]] == list(range(5))
    for x in doc["shards"]:
        assert x["status"] == "ok", doc
        assert x["pending"] == 0
    assert sum(x["keys"] for x in doc["shards"]) == doc["keys"] == 20


# ---- fsync policies and ?durability ----------------------------------------------------------------


@pytest.mark.parametrize("policy", ["everysec", "never"])
def test_relaxed_fsync_policies_keep_acknowledged_writes(start_server, policy):
    s = start_server("--fsync", policy)
    assert health(s)["fsync"] == policy
    sess = requests.Session()
    model = {}
    for i in range(50):
        value = os.urandom(200) + b"%d" % i
        r = put(sess, s, f"p{i}", value)
        model[f"p{i}"] = (value, version_of(r))
        assert get(sess, s, f"p{i}").content == value  # applied in memory at once
    s.restart()  # a graceful stop flushes (and syncs)
    assert_state(sess, s, model)
    for i in range(50, 100):
        value = os.urandom(200) + b"%d" % i
        r = put(sess, s, f"p{i}", value)
        model[f"p{i}"] = (value, version_of(r))
    for i in range(0, 10):
        assert sess.delete(kv(s, f"p{i}"), timeout=T).status_code == 200
        del model[f"p{i}"]
    time.sleep(1.5)  # idle: everything reached write(2) (and, under everysec, fdatasync)
    s.kill9()
    s.start()
    assert_state(sess, s, model, gone=[f"p{i}" for i in range(10)])
    s.assert_no_sanitizer_reports()


def test_async_durability_param(start_server):
    s = start_server()
    sess = requests.Session()
    r = sess.put(kv(s, "a1") + "?durability=async", data=b"async value", timeout=T)
    assert r.status_code == 202, r.text
    v1 = version_of(r)
    assert r.json()["version"] == v1
    deadline = time.monotonic() + 2 * TMUL
    while get(sess, s, "a1").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.02)
    r = get(sess, s, "a1")
    assert r.status_code == 200 and r.content == b"async value" and version_of(r) == v1

    r = sess.put(kv(s, "a2") + "?durability=sync", data=b"sync value", timeout=T)
    assert r.status_code == 201, r.text
    r = sess.delete(kv(s, "a2") + "?durability=async", timeout=T)
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 2 * TMUL
    while get(sess, s, "a2").status_code != 404 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert get(sess, s, "a2").status_code == 404

    r = sess.put(s.url("/kv?durability=async"), json={"data": {"key": "a3", "value": {"j": 1}}}, timeout=T)
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 2 * TMUL
    while sess.get(s.url("/kv"), params={"key": "a3"}, timeout=T).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.02)

    for bad in ("bogus", "", "ASYNC", "async,sync"):
        r = sess.put(kv(s, "a4") + "?durability=" + bad, data=b"nope", timeout=T)
        assert r.status_code == 400, (bad, r.status_code, r.text)
        assert r.headers["Content-Type"].startswith("application/json")
        assert_error_shape(r.content, code="bad_durability")
    r = sess.delete(kv(s, "a1") + "?durability=bogus", timeout=T)
    assert r.status_code == 400
    assert get(sess, s, "a4").status_code == 404  # a rejected request changes nothing
    assert get(sess, s, "a1").status_code == 200

    s.restart()
    r = get(sess, s, "a1")
    assert r.status_code == 200 and r.content == b"async value" and version_of(r) == v1
    assert get(sess, s, "a2").status_code == 404
    r = sess.get(s.url("/kv"), params={"key": "a3"}, timeout=T)
    assert r.status_code == 200 and r.json()["data"]["value"] == {"j": 1}
    assert get(sess, s, "a4").status_code == 404


# ---- torn tails and corruption -------------------------------------------------------------------


def write_keys(sess, s, prefix, n, size=120):
    """Writes n keys once each; returns key -> (value, version, shard)."""
    out = {}
    for i in range(n):
        key = f"{prefix}{i}"
        value = f"{key}=".encode() + os.urandom(size)
        r = put(sess, s, key, value, expect=(201,))
        out[key] = (value, version_of(r), int(r.headers["X-Shard"]))
    return out


TORN_VARIANTS = ["garbage", "zeros", "partial_record", "bad_crc_last", "cut_last", "new_segment_header"]


@pytest.mark.parametrize("variant", TORN_VARIANTS)
def test_torn_tail_is_cut_with_a_warning(start_server, variant):
    s = start_server("--shards", "2")
    sess = requests.Session()
    keys = write_keys(sess, s, "t", 30)
    # The victim's second write is the last record of its shard's log.
    victim = "t0"
    sid = keys[victim][2]
    first_value = b"victim first"
    r = put(sess, s, victim, first_value)
    first_version = version_of(r)
    r = put(sess, s, victim, b"victim second, cut by the crash")
    s.stop()
    s.assert_clean_exit()

    seg = last_segment(s, sid)
    _, recs, end = skvtest.parse_segment(seg)
    size = seg.stat().st_size
    assert end == size and recs[-1].key == victim.encode() and recs[-1].seq == version_of(r)
    last = recs[-1]
    model = {k: (v, ver) for k, (v, ver, _) in keys.items()}
    if variant == "garbage":
        junk = struct.pack("<I", 5000) + os.urandom(300)  # a length that runs past the end of the file
        with open(seg, "ab") as f:
            f.write(junk)
        model[victim] = (b"victim second, cut by the crash", last.seq)
    elif variant == "zeros":
        with open(seg, "ab") as f:
            f.write(b"\0" * 4096)  # preallocated, never written
        model[victim] = (b"victim second, cut by the crash", last.seq)
    elif variant == "partial_record":
        ghost = skvtest.encode_record(last.seq + 1, skvtest.OP_PUT, b"ghost", os.urandom(500))
        with open(seg, "ab") as f:
            f.write(ghost[:len(ghost) // 2])
        model[victim] = (b"victim second, cut by the crash", last.seq)
    elif variant == "bad_crc_last":
        ghost = bytearray(skvtest.encode_record(last.seq + 1, skvtest.OP_PUT, b"ghost", b"complete but unsynced"))
        ghost[-3] ^= 0x55
        with open(seg, "ab") as f:
            f.write(ghost)
        model[victim] = (b"victim second, cut by the crash", last.seq)
    elif variant == "new_segment_header":  # the crash hit while a new segment was being created
        hdr = b"SKVWAL01" + struct.pack("<IIQI", 1, sid, last.seq + 1, 0)
        hdr += struct.pack("<I", skvtest.crc32c(hdr))
        seg = seg.with_name(f"wal-{last.seq + 1:020d}.log")
        seg.write_bytes(hdr[:20])
        last = skvtest.Record(0, 0, last.seq, last.op, last.flags, last.key, last.value)
        model[victim] = (b"victim second, cut by the crash", last.seq)
    else:  # cut_last: the crash hit in the middle of the victim's second write
        os.truncate(seg, last.offset + last.size // 2)
        model[victim] = (first_value, first_version)

    chk = check_cli(s.data_dir)  # offline: a torn tail is normal after a crash
    assert chk.returncode == 0, chk.stdout + chk.stderr
    assert "torn tail" in chk.stdout, chk.stdout

    s.start()
    log = s.stderr()
    assert "torn record" in log and str(seg) in log, log
    tail_offset = last.offset + last.size if variant != "cut_last" else last.offset
    assert f"offset {tail_offset}" in log, log
    assert_state(sess, s, model, gone=["ghost"])
    doc = health(s)
    assert [x["recovery"]["torn_tail"] for x in doc["shards"]] == [x["id"] == sid for x in doc["shards"]]
    if variant == "new_segment_header":  # replaced by a complete one
        assert seg.stat().st_size == skvtest.SEGMENT_HEADER and skvtest.parse_segment(seg)[0]["shard"] == sid
    else:
        assert seg.stat().st_size == tail_offset  # the tail is gone from the file

    # Writing continues behind the cut; the next restart is clean.
    r = put(sess, s, victim, b"victim third")
    assert version_of(r) > model[victim][1]
    model[victim] = (b"victim third", version_of(r))
    s.restart()
    assert "torn record" not in s.stderr()
    assert_state(sess, s, model, gone=["ghost"])
    s.stop()
    s.assert_clean_exit()
    chk = check_cli(s.data_dir)
    assert chk.returncode == 0 and "torn tail" not in chk.stdout, chk.stdout
    s.start()


def test_corruption_in_the_middle_refuses_start_until_repaired(start_server):
    s = start_server("--shards", "2")
    sess = requests.Session()
    keys = write_keys(sess, s, "c", 60, size=64)
    s.stop()
    s.assert_clean_exit()

    sid = max((0, 1), key=lambda i: sum(1 for k in keys.values() if k[2] == i))
    seg = last_segment(s, sid)
    _, recs, end = skvtest.parse_segment(seg)
    assert len(recs) >= 10 and end == seg.stat().st_size
    bad = recs[len(recs) // 2]
    data = bytearray(seg.read_bytes())
    pos = bad.offset + skvtest.RECORD_HEADER + skvtest.BODY_FIXED + len(bad.key) + 10  # inside the value
    data[pos] ^= 0x01
    seg.write_bytes(bytes(data))

    t0 = time.monotonic()
    rc, err = skvtest.run_node_expect_exit(s.data_dir, *s.args, timeout=5)
    assert rc is not None, f"the node started on a corrupt log:\n{err}"
    assert rc != 0, err
    assert time.monotonic() - t0 < 5 * TMUL
    assert str(seg) in err and f"offset {bad.offset}" in err, err
    assert f"shardkv check --data-dir {s.data_dir} --repair" in err, err
    for marker in skvtest.SANITIZER_MARKERS:
        assert marker not in err, err

    chk = check_cli(s.data_dir)
    assert chk.returncode == 1, chk.stdout + chk.stderr
    assert "CORRUPT" in chk.stdout and str(seg) in chk.stdout and f"offset {bad.offset}" in chk.stdout, chk.stdout
    assert seg.stat().st_size == len(data)  # check alone changes nothing

    chk = check_cli(s.data_dir, "--repair")
    assert chk.returncode == 1, chk.stdout + chk.stderr
    dropped = len(data) - bad.offset
    assert f"truncating {seg} at offset {bad.offset} (dropping {dropped} bytes)" in chk.stdout, chk.stdout
    assert seg.stat().st_size == bad.offset

    chk = check_cli(s.data_dir)
    assert chk.returncode == 0, chk.stdout

    s.start()
    lost = {r.key.decode() for r in recs[len(recs) // 2:]}
    model = {k: (v, ver) for k, (v, ver, _) in keys.items() if k not in lost}
    assert_state(sess, s, model, gone=sorted(lost))
    # Versions in the repaired shard continue after the last kept record.
    r = put(sess, s, "after-repair", b"x")
    if int(r.headers["X-Shard"]) == sid:
        assert version_of(r) == recs[len(recs) // 2 - 1].seq + 1


def test_corrupt_segment_header_refuses_start(start_server):
    s = start_server("--shards", "1")
    sess = requests.Session()
    write_keys(sess, s, "h", 5)
    s.stop()
    s.assert_clean_exit()
    seg = last_segment(s, 0)
    data = bytearray(seg.read_bytes())
    data[12] ^= 0xff  # the shard id, covered by the header CRC
    seg.write_bytes(bytes(data))
    rc, err = skvtest.run_node_expect_exit(s.data_dir, *s.args, timeout=5)
    assert rc not in (None, 0), err
    assert str(seg) in err and "--repair" in err, err
    chk = check_cli(s.data_dir)
    assert chk.returncode == 1 and "CORRUPT" in chk.stdout, chk.stdout
    data[12] ^= 0xff
    seg.write_bytes(bytes(data))
    s.start()
    assert s.shards()["total_keys"] == 5


# ---- check, lock, layout --------------------------------------------------------------------------


def test_check_clean_directory_and_running_node(start_server):
    s = start_server("--shards", "3")
    sess = requests.Session()
    write_keys(sess, s, "k", 20)
    running = check_cli(s.data_dir)
    assert running.returncode == 2, running.stdout + running.stderr
    assert "in use" in running.stderr, running.stderr
    s.stop()
    s.assert_clean_exit()
    chk = check_cli(s.data_dir)
    assert chk.returncode == 0, chk.stdout + chk.stderr
    assert re.search(r"^summary: 3 shards, 0 snapshot entries, 20 log records, 0 damaged$", chk.stdout, re.M), chk.stdout
    for sid in range(3):
        assert re.search(rf"^shard {sid}\s+ok\b", chk.stdout, re.M), chk.stdout
    bad = skvtest.run_cli("check", "--data-dir", str(s.workdir / "missing"))
    assert bad.returncode == 2
    s.start()


def test_second_node_on_same_data_dir_is_refused(start_server):
    s = start_server()
    sess = requests.Session()
    put(sess, s, "mine", b"1")
    rc, err = skvtest.run_node_expect_exit(s.data_dir, *s.args, timeout=5)
    assert rc not in (None, 0), err
    assert "in use" in err and str(s.proc.pid) in err, err
    assert get(sess, s, "mine").content == b"1"  # the first node is unaffected
    s.stop()
    s.assert_clean_exit()
    assert "ERROR" not in s.stderr()


def test_different_layout_is_refused(start_server):
    s = start_server("--shards", "8")
    sess = requests.Session()
    put(sess, s, "layout", b"1")
    s.stop()
    s.assert_clean_exit()
    for args in (("--shards", "4"), ("--placement", "jump"), ("--hash", "md5"), ("--vnodes", "50")):
        rc, err = skvtest.run_node_expect_exit(s.data_dir, *args, timeout=5)
        assert rc not in (None, 0), (args, err)
        assert "different shard layout" in err, err
    s.start()
    assert get(sess, s, "layout").content == b"1"


# ---- full disk ------------------------------------------------------------------------------------


def fill_until_507(sess, s, prefix, size, limit):
    """PUTs unique keys until several in a row get 507; returns (acked, refused)."""
    acked, refused, streak = {}, [], 0
    for i in range(limit):
        key = f"{prefix}{i}"
        value = f"{key}:".encode() + os.urandom(size)
        r = sess.put(kv(s, key), data=value, timeout=T)
        if r.status_code in (200, 201):
            acked[key] = (value, version_of(r))
            streak = 0
        else:
            assert r.status_code == 507, (key, r.status_code, r.text)
            assert_error_shape(r.content, code="insufficient_storage")
            refused.append(key)
            streak += 1
            if streak >= 8:
                break
    return acked, refused


def wait_writable(sess, s, key, timeout=5.0):
    deadline = time.monotonic() + timeout * TMUL
    while True:
        r = sess.put(kv(s, key), data=b"space is back", timeout=T)
        if r.status_code in (200, 201) or time.monotonic() > deadline:
            return r
        assert r.status_code == 507, r.text
        time.sleep(0.1)


@pytest.mark.parametrize("policy", ["always", "everysec", "always-snapshots"])
def test_disk_full_tmpfs(tmpfs, start_server, policy):
    mnt = tmpfs("2m")
    filler = mnt / "filler"
    filler.write_bytes(b"\0" * (1200 * 1024))  # eats most of the space before the node writes
    args = ["--fsync", policy.split("-")[0], "--shards", "4"]
    if policy.endswith("snapshots"):  # snapshots and log rolls fail too, and must not lose anything
        args += ["--snapshot-bytes", "64K"]
    s = start_server(*args, data_dir=mnt / "data")
    sess = requests.Session()
    acked, refused = fill_until_507(sess, s, "f", 8000, 400)
    assert acked and refused, (len(acked), len(refused))
    assert skvtest.metric_sum(s, "shardkv_wal_errors_total") > 0
    if policy == "everysec":
        assert any(x["status"] == "disk_full" for x in health(s)["shards"]), health(s)
        assert skvtest.metric_sum(s, "shardkv_shard_state", state="disk_full") >= 1
    # Reads keep working; what was refused never became visible.
    assert_state(sess, s, acked, gone=refused)

    filler.unlink()
    r = wait_writable(sess, s, "after-free")
    assert r.status_code in (200, 201), r.text
    acked["after-free"] = (b"space is back", version_of(r))
    deadline = time.monotonic() + 5 * TMUL  # every shard's retry (every 200 ms) succeeds
    while any(x["status"] != "ok" for x in health(s)["shards"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    more, _ = fill_until_507(sess, s, "g", 100, 20)
    assert len(more) == 20
    acked.update(more)
    assert all(x["status"] == "ok" for x in health(s)["shards"]), health(s)
    assert_state(sess, s, acked, gone=refused)

    s.restart()
    assert_state(sess, s, acked, gone=refused)
    s.stop()
    s.assert_clean_exit()
    assert "ERROR" in s.stderr_logs()[0].read_text()  # the first run logged the full disk
    chk = check_cli(s.data_dir)
    assert chk.returncode == 0, chk.stdout + chk.stderr
    s.assert_no_sanitizer_reports()


def _limit_file_size():
    # Ignored dispositions survive exec: the node gets EFBIG instead of being killed.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))


def test_file_size_limit_gives_507_and_loses_nothing(start_server):
    s = start_server("--shards", "2", preexec_fn=_limit_file_size)
    sess = requests.Session()
    acked, refused = fill_until_507(sess, s, "e", 4000, 400)
    assert acked and refused, (len(acked), len(refused))
    assert_state(sess, s, acked, gone=refused)
    assert health(s)["status"] == "healthy"  # a full log is not a degraded shard under --fsync always
    s.stop()
    s.assert_clean_exit()
    assert "disk full" in s.stderr()

    s.preexec_fn = None  # restart without the limit
    s.start()
    assert_state(sess, s, acked, gone=refused)
    r = put(sess, s, refused[0], b"now it fits")
    assert r.status_code == 201
    s.assert_no_sanitizer_reports()


# ---- snapshots --------------------------------------------------------------------------------------


def snapshot_settled(s, nshards):
    """True when every shard has exactly one snapshot, no unfinished one, and
    every log segment left starts after its base."""
    for sid in range(nshards):
        d = shard_dir(s, sid)
        snaps = skvtest.snapshots(d)
        if len(snaps) != 1 or list(d.glob("*.tmp")):
            return False
        base = skvtest.name_seq(snaps[0])
        if any(skvtest.name_seq(seg) <= base for seg in skvtest.segments(d)):
            return False
    return True


def test_snapshots_compact_the_log_and_recover_exactly(start_server):
    s = start_server("--snapshot-bytes", "64K", "--shards", "4")
    rng = random.Random(11)
    model, gone = {}, set()
    written = 0
    with s.raw(timeout=10) as c:
        # Pipelined batches keep this fast; every answer is checked.
        while written < 2 * 1024 * 1024:
            batch = []
            for _ in range(32):
                key = f"s{rng.randrange(400)}"
                if key in model and rng.random() < 0.15:
                    batch.append(("DELETE", key, None))
                else:
                    value = key.encode() + b"|" + rng.randbytes(rng.randrange(200, 2400))
                    batch.append(("PUT", key, value))
                    written += len(value)
            c.send(b"".join(skvtest.request_bytes(m, "/v1/kv/" + k, body=v or b"") for m, k, v in batch))
            for (m, key, value), r in zip(batch, c.read_responses(len(batch))):
                if m == "PUT":
                    assert r.status in (200, 201), r
                    model[key] = (value, int(r.headers["etag"].strip('"')))
                    gone.discard(key)
                elif r.status == 200:
                    model.pop(key, None)
                    gone.add(key)
                else:
                    assert r.status == 404 and key not in model, (key, r)
    deadline = time.monotonic() + 5 * TMUL
    while not snapshot_settled(s, 4) and time.monotonic() < deadline:
        time.sleep(0.05)
    listing = {sid: sorted(p.name for p in shard_dir(s, sid).iterdir()) for sid in range(4)}
    assert snapshot_settled(s, 4), listing
    assert "snapshot at seq" in s.stderr()
    for sid in range(4):
        assert skvtest.metric_sum(s, "shardkv_snapshots_total", shard=sid, result="ok") >= 1
    assert skvtest.metric_sum(s, "shardkv_snapshots_total", result="failed") == 0
    log_bytes = skvtest.metric_sum(s, "shardkv_wal_log_bytes")
    on_disk = sum(p.stat().st_size for sid in range(4) for p in skvtest.segments(shard_dir(s, sid)))
    assert log_bytes == on_disk, (log_bytes, on_disk)
    sess = requests.Session()
    assert_state(sess, s, model, gone)

    s.stop()
    s.assert_clean_exit()
    chk = check_cli(s.data_dir)
    assert chk.returncode == 0, chk.stdout + chk.stderr
    m = re.search(r"^summary: 4 shards, (\d+) snapshot entries", chk.stdout, re.M)
    assert m and int(m.group(1)) > 0, chk.stdout
    s.start()
    lines = recovery_lines(s.stderr())
    assert sorted(lines) == [0, 1, 2, 3]
    assert all(v[1] > 0 for v in lines.values()), lines  # loaded from a snapshot
    assert sum(v[0] for v in lines.values()) == len(model)
    assert_state(sess, s, model, gone)
    assert s.shards()["total_keys"] == len(model)
    s.assert_no_sanitizer_reports()


def test_snapshot_of_an_idle_shard_drops_the_covered_log(start_server):
    # The write that crosses --snapshot-bytes is the last one: the covered
    # segment must still go once the snapshot is durable, without waiting
    # for another write.
    s = start_server("--snapshot-bytes", "64K", "--shards", "1")
    sess = requests.Session()
    big = os.urandom(70 * 1024)
    r = put(sess, s, "big", big)
    model = {"big": (big, version_of(r))}
    deadline = time.monotonic() + 3 * TMUL
    while not snapshot_settled(s, 1) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert snapshot_settled(s, 1), sorted(p.name for p in shard_dir(s, 0).iterdir())
    assert [skvtest.name_seq(p) for p in skvtest.snapshots(shard_dir(s, 0))] == [model["big"][1]]
    s.restart()
    assert recovery_lines(s.stderr())[0] == (1, 1, 0, model["big"][1])
    assert_state(sess, s, model)


# ---- connections and pending (not yet durable) writes ------------------------------------------------


def test_pipelined_writes_wait_for_the_disk_in_order(start_server):
    # A connection whose write is pending stops reading: pipelined requests
    # are answered in order and every GET sees the writes before it.
    s = start_server("--shards", "2")
    reqs, expect = [], []
    version = {}
    for i in range(120):
        key = f"pipe{i % 5}"
        if i % 3 == 2:
            reqs.append(skvtest.request_bytes("GET", "/v1/kv/" + key))
            expect.append(("GET", key, None))
        elif i % 11 == 10:
            reqs.append(skvtest.request_bytes("DELETE", "/v1/kv/" + key))
            expect.append(("DELETE", key, None))
        else:
            value = f"{key}={i}:".encode() + os.urandom(1500)  # > 64 KiB queued behind a pending write
            reqs.append(skvtest.request_bytes("PUT", "/v1/kv/" + key, body=value))
            expect.append(("PUT", key, value))
    with s.raw(timeout=10) as c:
        c.send(b"".join(reqs))
        resps = c.read_responses(len(reqs))
    state = {}
    for (method, key, value), r in zip(expect, resps):
        if method == "PUT":
            assert r.status in (200, 201), r
            v = int(r.headers["etag"].strip('"'))
            assert v > version.get(r.headers["x-shard"], 0)
            version[r.headers["x-shard"]] = v
            state[key] = (value, v)
        elif method == "DELETE":
            assert r.status == (200 if key in state else 404), r
            state.pop(key, None)
        elif key in state:
            assert r.status == 200 and r.body == state[key][0], (key, r, state[key])
            assert int(r.headers["etag"].strip('"')) == state[key][1]
        else:
            assert r.status == 404, r
    s.restart()
    assert_state(requests.Session(), s, state, gone=[f"pipe{i}" for i in range(5) if f"pipe{i}" not in state])


def test_clients_vanishing_during_pending_writes(start_server):
    # The client closes (or resets) its connection right after sending a
    # write: the node finishes the write without a client to answer and
    # keeps serving; the write is either fully there or not at all.
    s = start_server("--shards", "2")
    sent = {}
    for i in range(150):
        key = f"gone{i % 30}"
        value = f"{key}#{i}".encode() + os.urandom(i * 10)
        sent.setdefault(key, set()).add(value)
        c = s.raw()
        c.send(skvtest.request_bytes("PUT", "/v1/kv/" + key, body=value))
        if i % 2:
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST on close
        c.close()
    sess = requests.Session()
    deadline = time.monotonic() + 3 * TMUL
    while health(s)["shards"][0]["pending"] + health(s)["shards"][1]["pending"] and time.monotonic() < deadline:
        time.sleep(0.05)
    seen = {}
    for key, values in sent.items():
        r = get(sess, s, key)
        if r.status_code == 200:
            assert r.content in values
            seen[key] = (r.content, version_of(r))
        else:
            assert r.status_code == 404
    assert seen  # most of them landed
    put(sess, s, "still-serving", b"yes")
    s.restart()
    assert_state(sess, s, seen)
    s.assert_no_sanitizer_reports()


def test_acknowledged_write_is_readable_while_newer_writes_wait(start_server):
    # Under --fsync always the batch holding a write can become durable while
    # a newer write of the same key still waits for the disk: the
    # acknowledged one must be visible then (a client reads its own writes).
    s = start_server("--shards", "1")
    stop = threading.Event()

    def hammer(tag):
        with s.raw(timeout=10) as c:
            i = 0
            while not stop.is_set():
                c.send(skvtest.request_bytes("PUT", "/v1/kv/hot", body=b"%s%d" % (tag, i)))
                assert c.read_response().status in (200, 201)
                i += 1

    others = [threading.Thread(target=hammer, args=(t,), daemon=True) for t in (b"B", b"C")]
    for t in others:
        t.start()
    stale = []
    try:
        with s.raw(timeout=10) as c:
            for i in range(300):
                c.send(skvtest.request_bytes("PUT", "/v1/kv/hot", body=b"A%d" % i))
                w = c.read_response()
                assert w.status in (200, 201), w
                c.send(skvtest.request_bytes("GET", "/v1/kv/hot"))
                r = c.read_response()
                assert r.status == 200, r
                if int(r.headers["etag"].strip('"')) < int(w.headers["etag"].strip('"')):
                    stale.append((w.headers["etag"], r.headers["etag"], r.body))
    finally:
        stop.set()
        for t in others:
            t.join(timeout=10)
    assert not stale, f"{len(stale)} of 300 reads missed the reader's own acknowledged write, e.g. {stale[:3]}"
    assert health(s)["shards"][0]["pending"] == 0


def test_corrupt_snapshot_refuses_start_and_cannot_be_repaired(start_server):
    s = start_server("--snapshot-bytes", "64K", "--shards", "1")
    sess = requests.Session()
    put(sess, s, "big", os.urandom(70 * 1024))
    deadline = time.monotonic() + 3 * TMUL
    while not snapshot_settled(s, 1) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert snapshot_settled(s, 1)
    s.stop()
    s.assert_clean_exit()
    snap = skvtest.snapshots(shard_dir(s, 0))[0]
    data = bytearray(snap.read_bytes())
    data[len(data) // 2] ^= 0x10  # inside the one entry
    snap.write_bytes(bytes(data))
    rc, err = skvtest.run_node_expect_exit(s.data_dir, *s.args, timeout=5)
    assert rc not in (None, 0), err
    assert str(snap) in err and "offset" in err, err
    for extra in ((), ("--repair",)):
        chk = check_cli(s.data_dir, *extra)
        assert chk.returncode == 1, chk.stdout + chk.stderr
        assert "CORRUPT snapshot" in chk.stdout and "cannot be repaired" in chk.stdout, chk.stdout
    assert snap.read_bytes() == bytes(data)  # nothing was "repaired" away
    data[len(data) // 2] ^= 0x10
    snap.write_bytes(bytes(data))
    s.start()
    assert s.shards()["total_keys"] == 1


def test_pending_write_answered_before_close(start_server):
    # A write waiting for the disk is still answered when the request said
    # "Connection: close", came as HTTP/1.0, or the client half-closed its side.
    s = start_server()
    cases = [
        ("close", skvtest.request_bytes("PUT", "/v1/kv/c1", {"Connection": "close"}, body=b"v1"), False),
        ("http/1.0", skvtest.request_bytes("PUT", "/v1/kv/c2", body=b"v2", version="HTTP/1.0"), False),
        ("half-close", skvtest.request_bytes("PUT", "/v1/kv/c3", body=b"v3"), True),
    ]
    for name, req, half_close in cases:
        with s.raw() as c:
            c.send(req)
            if half_close:
                c.sock.shutdown(socket.SHUT_WR)
            r = c.read_response()
            assert r.status == 201, (name, r)
            assert c.closed_by_peer(3), name
    sess = requests.Session()
    s.restart()
    for i in (1, 2, 3):
        assert get(sess, s, f"c{i}").content == b"v%d" % i


# ---- readiness while recovering -------------------------------------------------------------------


def test_ready_is_503_and_data_routes_wait_while_recovering(start_server, tmp_path):
    """Holds the node in recovery deterministically: its stderr is a pipe
    the test has filled, so the main thread blocks writing the log line that
    precedes recovery while the workers already answer."""
    import fcntl
    import subprocess
    s = start_server("--shards", "2")
    assert requests.put(kv(s, "kept"), data=b"v", timeout=T).status_code == 201
    s.stop()
    s.assert_clean_exit()

    r_fd, w_fd = os.pipe()
    fcntl.fcntl(w_fd, 1031, 4096)  # F_SETPIPE_SZ: one page
    filled = 0
    fcntl.fcntl(w_fd, fcntl.F_SETFL, os.O_NONBLOCK)
    try:
        while True:
            filled += os.write(w_fd, b"#" * 512)
    except BlockingIOError:
        pass
    fcntl.fcntl(w_fd, fcntl.F_SETFL, 0)
    port, mport = skvtest.free_port(), skvtest.free_port()
    cmd = [skvtest.BIN, "--host", skvtest.HOST, "--port", str(port), "--metrics-port", str(mport),
           "--threads", "2", "--shards", "2", "--data-dir", str(s.data_dir)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=w_fd)
    os.close(w_fd)
    base = f"http://{skvtest.HOST}:{port}"
    drained = []
    reader = None
    try:
        deadline = time.monotonic() + T
        live = None
        while time.monotonic() < deadline:
            try:
                live = requests.get(base + "/health/live", timeout=T)
                break
            except requests.RequestException:
                time.sleep(0.02)
        assert live is not None and live.status_code == 200
        ready = requests.get(base + "/health/ready", timeout=T)
        assert ready.status_code == 503 and ready.headers["Retry-After"] == "1"
        assert requests.get(f"http://{skvtest.HOST}:{mport}/health/ready", timeout=T).status_code == 503
        for method, path in [("GET", "/v1/kv/kept"), ("PUT", "/v1/kv/new"), ("POST", "/put")]:
            r = requests.request(method, base + path, data=b"{}", timeout=T)
            assert r.status_code == 503, (method, path, r.text)
            assert_error_shape(r.json(), 503, "recovering")
            assert r.headers["Retry-After"] == "1"
        h = requests.get(base + "/health", timeout=T).json()
        assert h["state"] == "starting"
        metrics = requests.get(base + "/metrics", timeout=T).text
        assert re.search(r"^shardkv_ready 0$", metrics, re.M)
        assert "shardkv_wal_batches_total{" not in metrics  # no log open yet

        def drain():
            for chunk in iter(lambda: os.read(r_fd, 65536), b""):
                drained.append(chunk)

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()  # the node goes on
        deadline = time.monotonic() + 10 * TMUL
        while time.monotonic() < deadline:
            if requests.get(base + "/health/ready", timeout=T).status_code == 200:
                break
            time.sleep(0.02)
        assert requests.get(base + "/health/ready", timeout=T).status_code == 200
        assert requests.get(base + "/v1/kv/kept", timeout=T).content == b"v"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10 * TMUL) == 0
        if reader:
            reader.join(timeout=10 * TMUL)  # EOF once the node is gone
        os.close(r_fd)
    log = b"".join(drained).decode(errors="replace")
    assert "recovered" in log and "ready" in log
