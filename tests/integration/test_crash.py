"""
The crash test: concurrent writers, kill -9 at a random moment, restart on
the same data directory, and check that what the node recovered is exactly
what it acknowledged (docs/storage.md, --fsync always).

Each cycle, WRITERS threads with one keep-alive connection each run PUTs
(random binary values), create-only PUTs, compare-and-set PUTs and DELETEs
(If-Match with the last version the thread knows) and GETs on one shared
key space, so their writes conflict.  Every acknowledged write (PUT 200/201,
DELETE 200, with its version) and every value a GET returned is a fact:
under --fsync always a write is acknowledged, and visible to readers, only
once it is on stable storage.  At most one request per thread is in flight
(sent, unanswered) when the node is killed.

After the restart, for every key: the state must be the one of the newest
fact (by version; versions are per-shard sequence numbers) unless an
in-flight write of that key landed after it, in which case its effect is
also allowed (an in-flight PUT only with a higher version).  A value that
was never sent, or an older state, is a failure.  Versions continue: every
version acknowledged after a restart is above every version known before it
on that shard.  No read is stale: a GET returns at least the newest write
acknowledged (to anyone) before it was sent.  The data directory and this
model persist across cycles.

The same driver runs a SIGTERM variant (a graceful stop under load loses
nothing acknowledged either) and, as root, a variant whose data directory is
a tmpfs that fills and empties while the writers run (under --fsync always a
write answered 507 never happened).

SHARDKV_CRASH_CYCLES sets the number of cycles (default 20; e.g. 200 for a
soak run).  SHARDKV_CRASH_SEED fixes the random seed (printed on failure).
"""
import os
import random
import threading
import time
import urllib.parse

import skvtest
from skvtest import RawConn, request_bytes

CYCLES = int(os.environ.get("SHARDKV_CRASH_CYCLES", "20"))
WRITERS = 8
# Hot keys every writer fights over, and a larger cold set (hash tables grow
# and shrink while fuzzy snapshots copy them).
HOT = ([f"k{i:02d}".encode() for i in range(40)]
       + [b"bin\x00\xff\x01%d" % i for i in range(6)]
       + [f"dir/sp ace/\u00e9{i}".encode() for i in range(6)])
COLD = [f"cold{i:03d}".encode() for i in range(300)]
KEYS = HOT + COLD
SERVER_ARGS = ("--shards", "4", "--fsync", "always", "--snapshot-bytes", "256K")


def key_path(key):
    return "/v1/kv/" + urllib.parse.quote(key, safe="")


def etag_version(resp):
    tag = resp.headers.get("etag", "")
    assert tag.startswith('"') and tag.endswith('"'), resp
    return int(tag.strip('"'))


class Op:
    """One request of a writer: kind is put, cas, create, delete, cdelete or get."""

    __slots__ = ("tid", "n", "kind", "key", "value", "expect", "status", "version", "shard", "t_sent", "t_done")

    def __init__(self, tid, n, kind, key, value=None, expect=None):
        self.tid, self.n, self.kind, self.key, self.value, self.expect = tid, n, kind, key, value, expect
        self.status = self.version = self.shard = None
        self.t_sent = self.t_done = None  # time.monotonic() before sending / after the answer

    @property
    def is_put(self):
        return self.kind in ("put", "cas", "create")

    @property
    def is_delete(self):
        return self.kind in ("delete", "cdelete")

    def __repr__(self):
        v = "" if self.value is None else f" value={self.value[:24]!r}..({len(self.value)}B)"
        return (f"<{self.kind} t{self.tid}#{self.n} key={self.key!r}{v} if={self.expect} -> "
                f"{self.status} v{self.version} shard {self.shard}>")


class Writer(threading.Thread):
    def __init__(self, tid, port, cycle, rng_seed, killed, full_disk=False):
        super().__init__(daemon=True)
        self.tid, self.port, self.cycle, self.killed = tid, port, cycle, killed
        self.full_disk = full_disk  # 507 is an expected answer (and means: not written)
        self.rng = random.Random(rng_seed)
        self.acked = []       # writes answered with success
        self.reads = []       # GETs answered 200
        self.misses = []      # GETs answered 404
        self.inflight = None  # sent (or about to be) and unanswered when the connection died
        self.maybe = []       # writes whose outcome is unknown (in flight at the end, 503 while stopping)
        self.sent = []        # every write op sent (for "never sent" diagnostics)
        self.problems = []    # unexpected answers or failures before the kill
        self.known = {}       # key -> last version this thread knows

    def _next_op(self, n):
        rng = self.rng
        key = rng.choice(HOT) if rng.random() < 0.7 else rng.choice(COLD)
        r = rng.random()
        if r < 0.15:
            return Op(self.tid, n, "get", key)
        size = rng.randrange(0, 200) if rng.random() < 0.9 else rng.randrange(200, 16384)
        value = f"c{self.cycle}t{self.tid}n{n}|".encode() + rng.randbytes(size)
        known = self.known.get(key)
        if r < 0.5:
            return Op(self.tid, n, "put", key, value)
        if r < 0.75:
            if known is None:
                return Op(self.tid, n, "create", key, value)
            return Op(self.tid, n, "cas", key, value, known)
        if r < 0.87 or known is None:
            return Op(self.tid, n, "delete", key)
        return Op(self.tid, n, "cdelete", key, expect=known)

    def _request(self, op):
        headers = {}
        if op.kind in ("cas", "cdelete"):
            headers["If-Match"] = f'"{op.expect}"'
        elif op.kind == "create":
            headers["If-None-Match"] = "*"
        method = "GET" if op.kind == "get" else "DELETE" if op.is_delete else "PUT"
        return request_bytes(method, key_path(op.key), headers, op.value or b"")

    def _answer(self, op, resp):
        op.status = resp.status
        if resp.status in (200, 201) and "x-shard" in resp.headers:
            op.shard = int(resp.headers["x-shard"])
        if op.kind == "get":
            if resp.status == 200:
                op.version, op.value = etag_version(resp), resp.body
                self.reads.append(op)
                self.known[op.key] = op.version
            elif resp.status == 404:
                self.misses.append(op)
                self.known.pop(op.key, None)
            else:
                self.problems.append(f"unexpected answer {op}: {resp.body[:200]!r}")
            return
        ok = (200, 201) if op.is_put else (200,)
        if resp.status in ok:
            op.version = etag_version(resp)
            self.acked.append(op)
            if op.is_put:
                self.known[op.key] = op.version
            else:
                self.known.pop(op.key, None)
        elif resp.status == 412 or (resp.status == 404 and op.is_delete):
            self.known.pop(op.key, None)  # a conflict: learn the version again with a GET
        elif resp.status == 507 and self.full_disk:
            pass  # under --fsync always a refused write never happened
        elif resp.status == 503 and self.killed.is_set():
            self.maybe.append(op)  # draining after SIGTERM: refused (counted as unknown, to be safe)
        else:
            self.problems.append(f"unexpected answer {op}: {resp.body[:200]!r}")

    def run(self):
        try:
            conn = RawConn(self.port, timeout=10)
        except OSError as e:
            if not self.killed.is_set():
                self.problems.append(f"writer {self.tid} could not connect: {e!r}")
            return
        n = 0
        try:
            while True:
                n += 1
                op = self._next_op(n)
                if op.kind != "get":
                    self.sent.append(op)
                self.inflight = op
                op.t_sent = time.monotonic()
                conn.send(self._request(op))
                resp = conn.read_response()
                op.t_done = time.monotonic()
                self.inflight = None
                self._answer(op, resp)
        except (OSError, skvtest.ConnectionClosed) as e:
            if not self.killed.is_set():
                self.problems.append(f"writer {self.tid} lost its connection before the kill: {e!r}")
        finally:
            conn.close()
            if self.inflight is not None and self.inflight.kind != "get":
                self.maybe.append(self.inflight)


class Model:
    """What the node must hold: per key the newest known state, plus the
    highest version known per shard."""

    def __init__(self):
        self.state = {k: (None, 0) for k in KEYS}   # key -> (value or None, version of the newest fact; 0 unknown)
        self.shard_max = {}                          # shard -> highest version known on it
        self.key_shard = {}
        self.sent_values = {}                        # value -> the op that sent it (every cycle)

    def check_cycle(self, cycle, writers, observed):
        """observed: key -> (value or None, version or None, shard or None).
        Returns a list of failures; updates the model to the observed state."""
        failures = []
        facts = {k: [] for k in KEYS}
        inflight = {k: [] for k in KEYS}
        shard_min_new = {}
        for w in writers:
            for op in w.sent:
                self.sent_values[op.value] = op
            last_per_shard = {}
            for op in w.acked + w.reads:
                facts[op.key].append(op)
                if op.shard is not None:
                    self.key_shard[op.key] = op.shard
            for op in w.acked:  # in the order this thread got them: its shards' seqs grow
                prev = last_per_shard.get(op.shard)
                if prev is not None and op.version <= prev.version:
                    failures.append(f"versions went backwards for one client: {prev} then {op}")
                last_per_shard[op.shard] = op
                shard_min_new[op.shard] = min(shard_min_new.get(op.shard, op.version), op.version)
            for op in w.maybe:
                inflight[op.key].append(op)
        failures += self.check_reads(cycle, writers)
        for shard, low in shard_min_new.items():
            before = self.shard_max.get(shard, 0)
            if low <= before:
                failures.append(f"cycle {cycle}: shard {shard} acknowledged version {low} after the restart, "
                                f"not above {before} known before it")

        for key in KEYS:
            base_value, base_version = self.state[key]
            newest = None
            by_version = {}
            for op in facts[key]:
                if op.version < base_version or (op.version == base_version and op.value != base_value):
                    failures.append(f"cycle {cycle}: key {key!r}: {op} is older than the state before the cycle "
                                    f"(v{base_version} {'absent' if base_value is None else base_value[:40]})")
                other = by_version.get(op.version)
                if other is not None and (other.is_delete != op.is_delete or other.value != op.value):
                    failures.append(f"key {key!r}: two different states with version {op.version}: {other} / {op}")
                by_version[op.version] = op
                if op.version > base_version and (newest is None or op.version > newest.version):
                    newest = op
            if newest is None:
                want_value, want_version = base_value, base_version
            elif newest.is_delete:
                want_value, want_version = None, newest.version
            else:
                want_value, want_version = newest.value, newest.version
            value, version, shard = observed[key]
            if shard is not None:
                self.key_shard[key] = shard
            ok = False
            if value is None:
                ok = want_value is None or any(op.is_delete for op in inflight[key])
            else:
                ok = (want_value is not None and value == want_value and version == want_version) or any(
                    op.is_put and op.value == value and version > want_version for op in inflight[key])
            if not ok:
                origin = self.sent_values.get(value) if value is not None else None
                failures.append(
                    f"cycle {cycle}: key {key!r} recovered as "
                    f"{'absent' if value is None else f'v{version} {value[:40]!r}'}"
                    f"{'' if value is None else (f' (sent by {origin})' if origin else ' (a value never sent!)')}; "
                    f"expected {'absent' if want_value is None else f'v{want_version} {want_value[:40]!r}'} "
                    f"from {newest or 'the previous cycle'}; in flight: {inflight[key]}")
            # The observed state is durable now: it is the next cycle's baseline.
            self.state[key] = (value, version if value is not None else want_version)
            known_max = max([version or 0, want_version] + [op.version for op in facts[key]])
            sid = self.key_shard.get(key)
            if sid is not None:
                self.shard_max[sid] = max(self.shard_max.get(sid, 0), known_max)
        return failures

    @staticmethod
    def check_reads(cycle, writers):
        """No stale reads: a GET sees at least every write acknowledged before
        it was sent (the node's promise that a client reads its own writes,
        and acknowledged means visible)."""
        failures = []
        writes = {}
        for w in writers:
            for op in w.acked:
                writes.setdefault(op.key, []).append(op)
        deletes = {}
        for w in writers:
            for op in w.sent:
                if op.is_delete and op.status in (None, 200, 503):  # acknowledged or outcome unknown
                    deletes.setdefault(op.key, []).append(op)
        for w in writers:
            for rd in w.reads + w.misses:
                before = [op for op in writes.get(rd.key, ()) if op.t_done < rd.t_sent]
                if not before:
                    continue
                last = max(before, key=lambda op: op.version)
                if rd.status == 200 and rd.version < last.version:
                    failures.append(f"cycle {cycle}: stale read {rd} (sent {rd.t_sent - last.t_done:.4f}s after "
                                    f"{last} was acknowledged)")
                elif rd.status == 404 and last.is_put and not any(
                        d.t_sent < rd.t_done and (d.version is None or d.version > last.version)
                        for d in deletes.get(rd.key, ())):
                    failures.append(f"cycle {cycle}: {rd} found nothing although {last} was acknowledged before "
                                    f"and no later delete was sent")
        return failures


def read_all(server):
    """key -> (value or None, version or None, shard or None), over one connection."""
    out = {}
    with server.raw(timeout=10) as c:
        for key in KEYS:
            c.send(request_bytes("GET", key_path(key)))
            r = c.read_response()
            if r.status == 200:
                out[key] = (r.body, etag_version(r), int(r.headers["x-shard"]))
            else:
                assert r.status == 404, (key, r)
                out[key] = (None, None, None)
    return out


def recovery_lines(text):
    return [line for line in text.splitlines() if "recovered" in line and "log records replayed" in line]


def run_cycles(s, cycles, rng, seed, stop, during=None, full_disk=False):
    """Cycles of: writers run, stop(s) ends the node while they write, the node
    restarts on the same data directory and every key is checked against the
    model.  during(stop_event), when given, runs in a thread while the
    writers do.  Returns statistics."""
    model = Model()
    assert read_all(s) == {k: (None, None, None) for k in KEYS}
    stats = {"acked": 0, "reads": 0, "unknown": 0, "conflicts": 0, "torn": 0, "refused": 0}
    for cycle in range(cycles):
        t_cycle = time.monotonic()
        killed = threading.Event()
        writers = [Writer(i, s.port, cycle, rng.randrange(1 << 30), killed, full_disk) for i in range(WRITERS)]
        helper = threading.Thread(target=during, args=(killed,), daemon=True) if during else None
        for w in writers + ([helper] if helper else []):
            w.start()
        time.sleep(rng.uniform(0.2, 1.5))
        killed.set()
        stop(s)
        for w in writers + ([helper] if helper else []):
            w.join(timeout=15 * skvtest.TMUL)
            assert not w.is_alive(), f"{w} hangs after the stop"
        problems = [p for w in writers for p in w.problems]
        assert not problems, f"seed {seed} cycle {cycle}:\n" + "\n".join(problems[:20])
        stats["refused"] += sum(1 for w in writers for op in w.sent if op.status == 507)

        s.start()
        log = s.stderr()
        lines = recovery_lines(log)
        assert len(lines) == 4, f"expected one recovery line per shard:\n{log}"
        assert "ERROR" not in log, log
        stats["torn"] += log.count("torn record")
        observed = read_all(s)
        failures = model.check_cycle(cycle, writers, observed)
        assert not failures, f"seed {seed} cycle {cycle}:\n" + "\n".join(failures[:20]) + f"\nrecovery log:\n{log}"
        stats["acked"] += sum(len(w.acked) for w in writers)
        stats["reads"] += sum(len(w.reads) for w in writers)
        stats["unknown"] += sum(len(w.maybe) for w in writers)
        stats["conflicts"] += sum(1 for w in writers for op in w.sent if op.status == 412)
        assert time.monotonic() - t_cycle < 6 * skvtest.TMUL, f"cycle {cycle} took {time.monotonic() - t_cycle:.1f}s"
    return stats


def final_checks(s):
    """A graceful restart of the directory changes nothing, and the offline
    checker finds it clean."""
    before = read_all(s)
    s.stop()
    s.assert_clean_exit()
    chk = skvtest.run_cli("check", "--data-dir", str(s.data_dir), timeout=30)
    assert chk.returncode == 0, chk.stdout + chk.stderr
    s.start()
    assert read_all(s) == before
    s.assert_no_sanitizer_reports()


def test_kill9_recovers_exactly_what_was_acknowledged(start_server):
    seed = int(os.environ.get("SHARDKV_CRASH_SEED", str(random.randrange(1 << 30))))
    print(f"crash test seed {seed} (SHARDKV_CRASH_SEED), {CYCLES} cycles")
    s = start_server(*SERVER_ARGS)
    t0 = time.monotonic()
    stats = run_cycles(s, CYCLES, random.Random(seed), seed, lambda node: node.kill9())
    print(f"{CYCLES} cycles in {time.monotonic() - t0:.1f}s: {stats}")
    assert stats["acked"] > 50 * CYCLES, stats       # the writers really wrote
    assert stats["conflicts"] > 0, stats             # and really raced on the same keys
    final_checks(s)


def test_sigterm_under_write_load_keeps_everything_acknowledged(start_server):
    seed = int(os.environ.get("SHARDKV_CRASH_SEED", str(random.randrange(1 << 30))))
    print(f"seed {seed} (SHARDKV_CRASH_SEED)")
    s = start_server(*SERVER_ARGS)

    def graceful(node):
        node.stop(timeout=15)
        node.assert_clean_exit()

    stats = run_cycles(s, 4, random.Random(seed), seed, graceful)
    print(stats)
    assert stats["acked"] > 200, stats
    final_checks(s)


def test_kill9_while_the_disk_fills_and_empties(tmpfs, start_server):
    # The disk is full, then not, again and again, while the writers run:
    # under --fsync always a write refused with 507 never happens, and the
    # rest must survive kill -9 exactly as before.
    seed = int(os.environ.get("SHARDKV_CRASH_SEED", str(random.randrange(1 << 30))))
    print(f"seed {seed} (SHARDKV_CRASH_SEED)")
    mnt = tmpfs("8m")
    filler = mnt / "filler"
    s = start_server(*SERVER_ARGS, data_dir=mnt / "data")

    def flap(stop):
        while not stop.is_set():
            try:
                with open(filler, "wb") as f:
                    while True:
                        f.write(b"\0" * 65536)
            except OSError:
                pass  # full to the brim
            stop.wait(0.15)
            filler.unlink()
            stop.wait(0.1)

    stats = run_cycles(s, 5, random.Random(seed), seed, lambda node: node.kill9(), during=flap, full_disk=True)
    print(stats)
    assert stats["refused"] > 0 and stats["acked"] > 0, stats
    final_checks(s)
