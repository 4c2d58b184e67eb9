/*
 * Unit tests for commit: group commit of the shards' logs against a real
 * data directory (mkdtemp under /tmp, removed after each test) and a store
 * of NSHARDS shards built as server.c builds it (ring placement, xxh3, 100
 * vnodes, shard map version 1), started and stopped with commit_start /
 * commit_stop, exactly as a node does.
 *
 * Covered: under --fsync always a write becomes visible only once its batch
 * is durable and its waiter is delivered (status 0, from the flusher
 * thread); writes arriving during an fdatasync form the next batch (one
 * fsync for all); the log statistics; a failing fdatasync degrades the
 * shard (waiter SKV_EIO, writes refused, reads continue, the other shards
 * unaffected, a restart clears it); a full disk under always fails the batch
 * and everything queued behind it with nothing visible and the half-written
 * batch cut off the log; a full disk under everysec keeps the acknowledged
 * writes, refuses new ones until a retry succeeds and loses nothing across
 * a restart; recovery of keys, versions and sequence numbers under every
 * policy; snapshots that compact the log with exact recovery; a torn tail
 * cut at start; a corrupt log or an unusable data directory refusing to
 * start.
 *
 * Faults come from a custom skv_io that only touches files under one
 * shard's directory (found through /proc/self/fd): fail write(2) with an
 * errno (optionally after writing half the buffer for real), fail
 * fdatasync, or hold the next write/fdatasync until the test releases it,
 * which lets the test look at the shard while a batch is on its way to the
 * disk.  Every wait is bounded (WAIT_MS) and fails the test on timeout; no
 * test asserts a duration.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "commit.h"
#include "err.h"
#include "io.h"
#include "log.h"
#include "metrics.h"
#include "ring.h"
#include "shard.h"
#include "store.h"
#include "wal.h"

#define NSHARDS 4
#define WAIT_MS 10000          /* bound of every wait: a timeout fails the test */
#define POLL_MS 2
#define MAX_WAITERS 1024
#define MODEL_MAX 64
#define FIRST_SEGMENT "wal-00000000000000000001.log"

/* ---- time ------------------------------------------------------------------------------------ */

static uint64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static struct timespec deadline_after(uint64_t ms) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

static void sleep_ms(unsigned ms) {
    struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static void cond_init_monotonic(pthread_cond_t *cv) {
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &attr);
    pthread_condattr_destroy(&attr);
}

/* ---- fault-injecting skv_io ----------------------------------------------------------------- */

/* Faults apply only to files whose path starts with target (one shard's
 * directory).  target is written before a flag is armed and never while
 * one is, so the flag's atomic store orders it for the flusher threads. */
static struct {
    char target[PATH_MAX];
    _Atomic int write_errno;     /* write(2) fails with -write_errno */
    _Atomic int half_write;      /* ... after the first faulted call wrote half its buffer */
    _Atomic int sync_errno;      /* fdatasync fails with -sync_errno */
    _Atomic int hold_write;      /* the next write/fdatasync blocks until fault_release() */
    _Atomic int hold_sync;
    _Atomic unsigned write_faults, sync_faults; /* faults injected */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int held, released;          /* under mu */
} fault;

static int fd_in_target(int fd) {
    char link[64], path[PATH_MAX];
    if (fault.target[0] == '\0') return 0;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n < 0) return 0;
    path[n] = '\0';
    return strncmp(path, fault.target, strlen(fault.target)) == 0;
}

/* A held call: tell the test it is here, then wait (bounded) for release. */
static void fault_block(void) {
    struct timespec until = deadline_after(WAIT_MS);
    pthread_mutex_lock(&fault.mu);
    fault.held = 1;
    pthread_cond_broadcast(&fault.cv);
    while (!fault.released)
        if (pthread_cond_timedwait(&fault.cv, &fault.mu, &until) == ETIMEDOUT) break;
    pthread_mutex_unlock(&fault.mu);
}

static ssize_t fault_write(int fd, const void *buf, size_t len) {
    if ((atomic_load(&fault.write_errno) || atomic_load(&fault.hold_write)) && fd_in_target(fd)) {
        if (atomic_exchange(&fault.hold_write, 0)) fault_block();
        int err = atomic_load(&fault.write_errno);
        if (err) {
            atomic_fetch_add(&fault.write_faults, 1);
            if (atomic_exchange(&fault.half_write, 0) && len > 1) return skv_io_posix.write(fd, buf, len / 2);
            return -err;
        }
    }
    return skv_io_posix.write(fd, buf, len);
}

static int fault_fdatasync(int fd) {
    if ((atomic_load(&fault.sync_errno) || atomic_load(&fault.hold_sync)) && fd_in_target(fd)) {
        if (atomic_exchange(&fault.hold_sync, 0)) fault_block();
        int err = atomic_load(&fault.sync_errno);
        if (err) {
            atomic_fetch_add(&fault.sync_faults, 1);
            return -err;
        }
    }
    return skv_io_posix.fdatasync(fd);
}

static int fault_fsync(int fd) { return skv_io_posix.fsync(fd); }
static int fault_ftruncate(int fd, off_t len) { return skv_io_posix.ftruncate(fd, len); }

static const skv_io fault_io = { fault_write, fault_fdatasync, fault_fsync, fault_ftruncate };

/* Disarms everything; only while no flusher runs (setup, after stop). */
static void fault_reset(void) {
    fault.target[0] = '\0';
    atomic_store(&fault.write_errno, 0);
    atomic_store(&fault.half_write, 0);
    atomic_store(&fault.sync_errno, 0);
    atomic_store(&fault.hold_write, 0);
    atomic_store(&fault.hold_sync, 0);
    atomic_store(&fault.write_faults, 0);
    atomic_store(&fault.sync_faults, 0);
    fault.held = fault.released = 0;
}

static void fault_clear(void) {
    atomic_store(&fault.write_errno, 0);
    atomic_store(&fault.half_write, 0);
    atomic_store(&fault.sync_errno, 0);
}

/* Waits until a held call arrived; 1 when it did in time. */
static int fault_wait_held(void) {
    struct timespec until = deadline_after(WAIT_MS);
    pthread_mutex_lock(&fault.mu);
    while (!fault.held)
        if (pthread_cond_timedwait(&fault.cv, &fault.mu, &until) == ETIMEDOUT) break;
    int held = fault.held;
    pthread_mutex_unlock(&fault.mu);
    return held;
}

static void fault_release(void) {
    pthread_mutex_lock(&fault.mu);
    fault.released = 1;
    pthread_cond_broadcast(&fault.cv);
    pthread_mutex_unlock(&fault.mu);
}

/* ---- fixture: a data directory and a node (store + commit) on it ------------------------------ */

typedef struct fx fx;

/* A waiter whose deliver() records what happened and wakes the test. */
typedef struct test_waiter {
    shard_waiter w;          /* first: deliver() receives &w */
    fx *f;
    int registered;          /* shard_apply took it (res.pending) */
    int calls;               /* deliver() calls; under f->mu */
    int status;
    int on_test_thread;      /* deliver() ran on the test's own thread */
} test_waiter;

struct fx {
    char root[256];
    int policy;
    uint64_t snapshot_bytes;
    store *st;
    commit *c;
    pthread_t test_thread;
    uint64_t ops[NSHARDS];   /* seqs handed out per shard (shard_apply == 0) over the directory's life */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    test_waiter waiters[MAX_WAITERS];
    unsigned nwaiters;
};

static void rm_tree(const char *path) {
    DIR *d = opendir(path);
    if (d != NULL) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
            char sub[PATH_MAX + 256];
            snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
            struct stat sb;
            if (lstat(sub, &sb) == 0 && S_ISDIR(sb.st_mode))
                rm_tree(sub);
            else
                unlink(sub);
        }
        closedir(d);
    }
    rmdir(path);
}

static int fx_setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    if (f == NULL) return -1;
    char tmpl[] = "/tmp/skv_commit_test_XXXXXX";
    char *real = mkdtemp(tmpl) ? realpath(tmpl, NULL) : NULL;
    if (real == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->root, sizeof f->root, "%s", real);
    free(real);
    f->test_thread = pthread_self();
    pthread_mutex_init(&f->mu, NULL);
    cond_init_monotonic(&f->cv);
    fault_reset();
    *state = f;
    return 0;
}

/* Starts a node on f->root with policy; returns commit_start's result. */
static int node_try_start(fx *f, int policy, uint64_t snapshot_bytes) {
    ring_config rc = { RING_STRATEGY_RING, RING_HASH_XXH3, NSHARDS, 100, 1 };
    assert_int_equal(store_new(&rc, &f->st), SKV_OK);
    f->policy = policy;
    f->snapshot_bytes = snapshot_bytes;
    commit_config cc = { f->root, policy, snapshot_bytes, &fault_io };
    int rc_start = commit_start(&cc, f->st, 2, &f->c);
    if (rc_start != SKV_OK) {
        store_free(f->st);
        f->st = NULL;
        f->c = NULL;
    }
    return rc_start;
}

static void node_start(fx *f, int policy, uint64_t snapshot_bytes) {
    assert_int_equal(node_try_start(f, policy, snapshot_bytes), SKV_OK);
}

/* commit_stop, then the store (its shards still point at the commit). */
static void node_stop(fx *f) {
    commit_stop(f->c);
    store_free(f->st);
    f->c = NULL;
    f->st = NULL;
}

/* A node restart: a fresh store and commit over the same directory. */
static void node_restart(fx *f) {
    node_stop(f);
    node_start(f, f->policy, f->snapshot_bytes);
}

static int fx_teardown(void **state) {
    fx *f = *state;
    fault_release(); /* a flusher held by a failed test must not wait out its bound */
    if (f->c) node_stop(f);
    fault_reset();
    rm_tree(f->root);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    free(f);
    return 0;
}

/* ---- helpers: writes and waiters ---------------------------------------------------------- */

static void test_deliver(shard_waiter *w) {
    test_waiter *t = (test_waiter *)w;
    fx *f = t->f;
    pthread_mutex_lock(&f->mu);
    t->calls++;
    t->status = w->status;
    if (pthread_equal(pthread_self(), f->test_thread)) t->on_test_thread = 1;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

/* Waiters live in the fixture, so one left registered by a failed test is
 * still valid when teardown's commit_stop delivers it. */
static test_waiter *new_waiter(fx *f) {
    assert_true(f->nwaiters < MAX_WAITERS);
    test_waiter *t = &f->waiters[f->nwaiters++];
    memset(t, 0, sizeof *t);
    t->f = f;
    t->w.deliver = test_deliver;
    return t;
}

/* Waits (bounded) for t's delivery; returns its calls so far. */
static int wait_delivery(fx *f, test_waiter *t) {
    struct timespec until = deadline_after(WAIT_MS);
    pthread_mutex_lock(&f->mu);
    while (t->calls == 0)
        if (pthread_cond_timedwait(&f->cv, &f->mu, &until) == ETIMEDOUT) break;
    int calls = t->calls;
    pthread_mutex_unlock(&f->mu);
    return calls;
}

/* t was delivered exactly once, with status, from a thread of the commit module. */
static void assert_delivered(fx *f, test_waiter *t, int status) {
    assert_true(t->registered);
    assert_int_equal(wait_delivery(f, t), 1);
    assert_int_equal(t->status, status);
    assert_false(t->on_test_thread);
}

static int delivered_calls(fx *f, test_waiter *t) {
    pthread_mutex_lock(&f->mu);
    int calls = t->calls;
    pthread_mutex_unlock(&f->mu);
    return calls;
}

/* shard_apply on the key's shard, as the request path does it. */
static int apply(fx *f, int op, const char *key, const char *val, int cond, test_waiter *t, shard_result *res) {
    shard_write w;
    memset(&w, 0, sizeof w);
    w.op = op;
    w.key = skv_slice_cstr(key);
    if (val) w.value = skv_slice_cstr(val);
    w.cond = cond;
    w.waiter = t ? &t->w : NULL;
    uint64_t hash;
    uint32_t id = store_locate(f->st, w.key, &hash);
    int rc = shard_apply(store_shard(f->st, id), hash, &w, res);
    if (rc == SKV_OK) f->ops[id]++;
    if (t && rc == SKV_OK) t->registered = res->pending;
    return rc;
}

static int put(fx *f, const char *key, const char *val, test_waiter *t, shard_result *res) {
    return apply(f, SHARD_OP_PUT, key, val, SHARD_COND_NONE, t, res);
}

/* A write that must succeed and, when it waits for the disk, be delivered
 * with 0.  Returns its version. */
static uint64_t write_ok(fx *f, int op, const char *key, const char *val) {
    test_waiter *t = new_waiter(f);
    shard_result res;
    assert_int_equal(apply(f, op, key, val, SHARD_COND_NONE, t, &res), SKV_OK);
    assert_int_equal(res.pending, f->policy == FSYNC_ALWAYS);
    if (res.pending) assert_delivered(f, t, SKV_OK);
    return res.version;
}

static uint64_t put_ok(fx *f, const char *key, const char *val) { return write_ok(f, SHARD_OP_PUT, key, val); }

/* Waits for every registered waiter from index first on, each with status 0. */
static void wait_wave(fx *f, unsigned first) {
    for (unsigned i = first; i < f->nwaiters; i++)
        if (f->waiters[i].registered) assert_delivered(f, &f->waiters[i], SKV_OK);
}

/* ---- helpers: reading shards ------------------------------------------------------------- */

typedef struct seen {
    uint64_t version;
    char val[128];
} seen;

static void capture(void *arg, const ht_entry *e) {
    seen *g = arg;
    size_t n = e->val_len < sizeof g->val - 1 ? e->val_len : sizeof g->val - 1;
    g->version = e->version;
    memcpy(g->val, ht_entry_value(e), n);
    g->val[n] = '\0';
}

static int lookup(fx *f, const char *key, seen *g) {
    memset(g, 0, sizeof *g);
    skv_slice k = skv_slice_cstr(key);
    uint64_t hash;
    uint32_t id = store_locate(f->st, k, &hash);
    return shard_get(store_shard(f->st, id), hash, k, capture, g);
}

static void assert_visible(fx *f, const char *key, const char *val, uint64_t version) {
    seen g;
    assert_int_equal(lookup(f, key, &g), SKV_OK);
    assert_string_equal(g.val, val);
    assert_int_equal(g.version, version);
}

static void assert_absent(fx *f, const char *key) {
    seen g;
    assert_int_equal(lookup(f, key, &g), SKV_ENOTFOUND);
}

static uint32_t shard_of(fx *f, const char *key) { return store_shard_for_key(f->st, skv_slice_cstr(key)); }

/* The n-th key (n >= 0) of the form "k<j>" that the map places on shard id. */
static void key_on(fx *f, uint32_t id, unsigned n, char out[32]) {
    for (unsigned j = 0;; j++) {
        snprintf(out, 32, "k%u", j);
        if (shard_of(f, out) == id && n-- == 0) return;
    }
}

static int state_of(fx *f, uint32_t id) {
    shard *s = store_shard(f->st, id);
    pthread_mutex_lock(&s->lock);
    int st = s->state;
    pthread_mutex_unlock(&s->lock);
    return st;
}

static uint64_t seq_of(fx *f, uint32_t id) {
    shard *s = store_shard(f->st, id);
    pthread_mutex_lock(&s->lock);
    uint64_t seq = s->seq;
    pthread_mutex_unlock(&s->lock);
    return seq;
}

static metrics_log_stats stats_of(fx *f, uint32_t id) {
    metrics_log_stats ls;
    memset(&ls, 0, sizeof ls);
    commit_stats_of(f->c, id, &ls);
    return ls;
}

/* Polls pred(f, id) every POLL_MS until it holds or WAIT_MS pass. */
static int eventually(fx *f, int (*pred)(fx *f, uint32_t id), uint32_t id) {
    uint64_t until = mono_ms() + WAIT_MS;
    for (;;) {
        if (pred(f, id)) return 1;
        if (mono_ms() > until) return 0;
        sleep_ms(POLL_MS);
    }
}

static int is_nospace(fx *f, uint32_t id) { return state_of(f, id) == SHARD_NOSPACE; }
static int is_ok(fx *f, uint32_t id) { return state_of(f, id) == SHARD_OK; }

/* ---- helpers: files ------------------------------------------------------------------------ */

static void shard_dir(fx *f, uint32_t id, char *out, size_t cap) { snprintf(out, cap, "%s/shard-%u", f->root, id); }

static void shard_file(fx *f, uint32_t id, const char *name, char *out, size_t cap) {
    snprintf(out, cap, "%s/shard-%u/%s", f->root, id, name);
}

static int file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* Files in shard id's directory named prefix*suffix: how many, and their total size. */
static unsigned files_matching(fx *f, uint32_t id, const char *prefix, const char *suffix, uint64_t *bytes) {
    char dir[PATH_MAX];
    shard_dir(f, id, dir, sizeof dir);
    DIR *d = opendir(dir);
    unsigned n = 0;
    if (bytes) *bytes = 0;
    if (d == NULL) return 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name), pl = strlen(prefix), sl = strlen(suffix);
        if (len < pl + sl || strncmp(de->d_name, prefix, pl) != 0 || strcmp(de->d_name + len - sl, suffix) != 0)
            continue;
        n++;
        char path[PATH_MAX + 256];
        struct stat sb;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (bytes && stat(path, &sb) == 0) *bytes += (uint64_t)sb.st_size;
    }
    closedir(d);
    return n;
}

static uint64_t log_file_bytes(fx *f, uint32_t id) {
    uint64_t bytes;
    files_matching(f, id, "wal-", ".log", &bytes);
    return bytes;
}

static void append_file(const char *path, const void *data, size_t len) {
    int fd = open(path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
}

static void flip_byte(const char *path, off_t off) {
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    unsigned char c;
    assert_int_equal(pread(fd, &c, 1, off), 1);
    c ^= 0x5a;
    assert_int_equal(pwrite(fd, &c, 1, off), 1);
    close(fd);
}

/* Targets the faults at shard id's files. */
static void fault_target_shard(fx *f, uint32_t id) {
    shard_dir(f, id, fault.target, sizeof fault.target);
    strcat(fault.target, "/");
}

/* ---- helpers: a model of what the store must hold --------------------------------------------- */

typedef struct model_key {
    char key[32];
    char val[96];
    uint64_t version;
    int live;
} model_key;

typedef struct model {
    model_key k[MODEL_MAX];
    size_t n;
} model;

/* Applies op to key i without waiting; the caller ends the wave with wait_wave. */
static void model_write(fx *f, model *m, size_t i, int op, const char *val) {
    model_key *k = &m->k[i];
    shard_result res;
    assert_int_equal(apply(f, op, k->key, val, SHARD_COND_NONE, new_waiter(f), &res), SKV_OK);
    k->version = res.version;
    k->live = op == SHARD_OP_PUT;
    if (val) snprintf(k->val, sizeof k->val, "%s", val);
}

static void model_assert(fx *f, const model *m) {
    for (size_t i = 0; i < m->n; i++) {
        if (m->k[i].live)
            assert_visible(f, m->k[i].key, m->k[i].val, m->k[i].version);
        else
            assert_absent(f, m->k[i].key);
    }
    for (uint32_t id = 0; id < NSHARDS; id++) assert_true(shard_check(store_shard(f->st, id)));
}

/* Puts, overwrites, deletes and re-creations over n keys spread on all shards. */
static void model_fill(fx *f, model *m, size_t n) {
    char val[96];
    m->n = n;
    for (size_t i = 0; i < n; i++) snprintf(m->k[i].key, sizeof m->k[i].key, "key-%zu", i);
    for (int round = 0; round < 4; round++) {
        unsigned first = f->nwaiters;
        for (size_t i = 0; i < n; i++) {
            snprintf(val, sizeof val, "value %zu round %d", i, round);
            if (round == 0 || (round == 1 && i % 3 == 0) || (round == 3 && i % 8 == 1))
                model_write(f, m, i, SHARD_OP_PUT, val);
            else if (round == 2 && i % 4 == 1)
                model_write(f, m, i, SHARD_OP_DELETE, NULL);
        }
        wait_wave(f, first);
    }
}

/* ==== tests ================================================================================== */

static void test_policy_names(void **state) {
    (void)state;
    static const char *const names[] = { "always", "everysec", "never" };
    for (int p = FSYNC_ALWAYS; p <= FSYNC_NEVER; p++) {
        assert_string_equal(commit_policy_name(p), names[p]);
        assert_int_equal(commit_policy_parse(names[p]), p);
    }
    assert_int_equal(commit_policy_parse("sometimes"), -1);
    assert_int_equal(commit_policy_parse(""), -1);
    assert_int_equal(commit_policy_parse("ALWAYS"), -1);
    assert_string_equal(commit_policy_name(-1), "unknown");
    assert_string_equal(commit_policy_name(FSYNC_NEVER + 1), "unknown");
}

/* always: a write is invisible while its batch syncs and visible once the
 * waiter is delivered; writes that come meanwhile form one next batch. */
static void test_always_write_visible_only_once_durable(void **state) {
    fx *f = *state;
    node_start(f, FSYNC_ALWAYS, 0);
    const uint32_t id = 1;
    char keys[5][32], vals[5][32];
    test_waiter *tw[5];
    uint64_t versions[5], bytes = 0;
    for (int i = 0; i < 5; i++) {
        key_on(f, id, (unsigned)i, keys[i]);
        snprintf(vals[i], sizeof vals[i], "v%d", i);
        bytes += wal_record_size(strlen(keys[i]), strlen(vals[i]));
    }
    fault_target_shard(f, id);
    atomic_store(&fault.hold_sync, 1);

    shard_result res;
    tw[0] = new_waiter(f);
    assert_int_equal(put(f, keys[0], vals[0], tw[0], &res), SKV_OK);
    assert_true(res.pending);
    assert_true(res.created);
    versions[0] = res.version;
    assert_true(fault_wait_held()); /* the flusher is inside the batch's fdatasync */
    assert_absent(f, keys[0]);
    assert_int_equal(delivered_calls(f, tw[0]), 0);
    /* Conditions see the pending write; readers do not. */
    assert_int_equal(apply(f, SHARD_OP_PUT, keys[0], "x", SHARD_COND_ABSENT, NULL, &res), SKV_EPRECOND);
    assert_int_equal(res.version, versions[0]);
    for (int i = 1; i < 5; i++) {
        tw[i] = new_waiter(f);
        assert_int_equal(put(f, keys[i], vals[i], tw[i], &res), SKV_OK);
        assert_true(res.pending);
        versions[i] = res.version;
        assert_int_equal(versions[i], versions[i - 1] + 1);
    }
    for (int i = 0; i < 5; i++) assert_absent(f, keys[i]);
    fault_release();

    for (int i = 0; i < 5; i++) {
        assert_delivered(f, tw[i], SKV_OK);
        assert_visible(f, keys[i], vals[i], versions[i]);
    }
    metrics_log_stats ls = stats_of(f, id);
    assert_int_equal(ls.batches, 2); /* the first write, then the four that queued behind its fsync */
    assert_int_equal(ls.records, 5);
    assert_true(ls.fsyncs >= ls.batches);
    assert_int_equal(ls.bytes_written, bytes);
    assert_int_equal(ls.write_errors, 0);
    assert_int_equal(ls.log_bytes, WAL_SEGMENT_HEADER + bytes);
    assert_int_equal(log_file_bytes(f, id), WAL_SEGMENT_HEADER + bytes);
    for (uint32_t other = 0; other < NSHARDS; other++)
        if (other != id) assert_int_equal(stats_of(f, other).batches, 0);
    assert_true(shard_check(store_shard(f->st, id)));
}

/* always: a failed fdatasync fails the waiter with EIO and degrades the
 * shard until a restart; the other shards and reads carry on. */
static void test_always_fdatasync_error_degrades_the_shard(void **state) {
    fx *f = *state;
    node_start(f, FSYNC_ALWAYS, 0);
    const uint32_t id = 2;
    char before[32], lost[32], later[32], elsewhere[32];
    key_on(f, id, 0, before);
    key_on(f, id, 1, lost);
    key_on(f, id, 2, later);
    key_on(f, (id + 1) % NSHARDS, 0, elsewhere);
    uint64_t v_before = put_ok(f, before, "durable");

    fault_target_shard(f, id);
    atomic_store(&fault.sync_errno, EIO);
    test_waiter *t = new_waiter(f);
    shard_result res;
    assert_int_equal(put(f, lost, "unknown", t, &res), SKV_OK);
    assert_true(res.pending);
    assert_delivered(f, t, SKV_EIO);
    assert_int_equal(atomic_load(&fault.sync_faults), 1);

    assert_int_equal(state_of(f, id), SHARD_DEGRADED);
    assert_absent(f, lost);
    assert_visible(f, before, "durable", v_before); /* reads continue */
    uint64_t seq = seq_of(f, id);
    assert_int_equal(put(f, later, "refused", new_waiter(f), &res), SKV_EIO);
    assert_int_equal(apply(f, SHARD_OP_DELETE, before, NULL, SHARD_COND_NONE, NULL, &res), SKV_EIO);
    assert_int_equal(seq_of(f, id), seq);
    assert_absent(f, later);
    metrics_log_stats ls = stats_of(f, id);
    assert_int_equal(ls.write_errors, 1);
    assert_int_equal(ls.batches, 1); /* only the good one */
    assert_int_equal(ls.records, 1);

    /* Sticky: clearing the fault does not bring the shard back ... */
    fault_clear();
    assert_int_equal(put(f, later, "still refused", new_waiter(f), &res), SKV_EIO);
    assert_int_equal(state_of(f, id), SHARD_DEGRADED);
    /* ... and the other shards never noticed. */
    put_ok(f, elsewhere, "fine");
    assert_int_equal(state_of(f, (id + 1) % NSHARDS), SHARD_OK);

    /* A restart recovers from the log and accepts writes again. */
    node_restart(f);
    assert_int_equal(state_of(f, id), SHARD_OK);
    assert_visible(f, before, "durable", v_before);
    uint64_t v_later = put_ok(f, later, "after restart");
    assert_visible(f, later, "after restart", v_later);
}

/* always: a full disk fails the batch (cut off the log half written) and
 * what queued behind it; nothing of it is visible, the shard stays OK and
 * takes writes again once space is back. */
static void test_always_disk_full_fails_the_batch_and_what_follows(void **state) {
    fx *f = *state;
    node_start(f, FSYNC_ALWAYS, 0);
    const uint32_t id = 0;
    char kept[32], a[32], b[32], after[32];
    key_on(f, id, 0, kept);
    key_on(f, id, 1, a);
    key_on(f, id, 2, b);
    key_on(f, id, 3, after);
    uint64_t v_kept = put_ok(f, kept, "old");
    uint64_t log_before = log_file_bytes(f, id);

    fault_target_shard(f, id);
    atomic_store(&fault.half_write, 1);
    atomic_store(&fault.write_errno, ENOSPC);
    atomic_store(&fault.hold_write, 1);
    test_waiter *ta = new_waiter(f), *tb = new_waiter(f), *tk = new_waiter(f);
    shard_result res;
    assert_int_equal(put(f, a, "A", ta, &res), SKV_OK);
    assert_true(res.pending);
    assert_true(fault_wait_held()); /* the batch holding a is being written */
    assert_int_equal(put(f, b, "B", tb, &res), SKV_OK);
    assert_true(res.pending);
    assert_int_equal(put(f, kept, "new", tk, &res), SKV_OK); /* overwrite, queued behind */
    assert_true(res.pending);
    fault_release();

    assert_delivered(f, ta, SKV_ENOSPACE);
    assert_delivered(f, tb, SKV_ENOSPACE);
    assert_delivered(f, tk, SKV_ENOSPACE);
    assert_absent(f, a);
    assert_absent(f, b);
    assert_visible(f, kept, "old", v_kept);
    assert_int_equal(state_of(f, id), SHARD_OK);
    assert_int_equal(log_file_bytes(f, id), log_before); /* the half-written batch was cut off */
    metrics_log_stats ls = stats_of(f, id);
    assert_int_equal(ls.write_errors, 1);
    assert_int_equal(ls.batches, 1);
    assert_true(shard_check(store_shard(f->st, id)));

    /* Space is back: the next write goes through, and conditions no longer see the failed ones. */
    fault_clear();
    uint64_t v_after = put_ok(f, after, "space again");
    assert_visible(f, after, "space again", v_after);
    assert_int_equal(state_of(f, id), SHARD_OK);
    assert_int_equal(put(f, a, "A2", NULL, &res), SKV_OK); /* no waiter: made durable by the stop below */
    assert_true(res.created);
    uint64_t v_a2 = res.version;

    node_restart(f);
    assert_visible(f, kept, "old", v_kept);
    assert_visible(f, after, "space again", v_after);
    assert_visible(f, a, "A2", v_a2);
    assert_absent(f, b);
    assert_int_equal(commit_recovery_of(f->c, id)->torn_tail, 0);
}

/* everysec: a write is acknowledged in memory; a full disk keeps it, refuses
 * new writes until a retry succeeds, and loses nothing across a restart. */
static void test_everysec_disk_full_keeps_acknowledged_writes_and_retries(void **state) {
    fx *f = *state;
    node_start(f, FSYNC_EVERYSEC, 0);
    const uint32_t id = 3;
    char acked[32], refused[32], resumed[32];
    key_on(f, id, 0, acked);
    key_on(f, id, 1, refused);
    key_on(f, id, 2, resumed);

    fault_target_shard(f, id);
    atomic_store(&fault.half_write, 1);
    atomic_store(&fault.write_errno, ENOSPC);
    uint64_t v_acked = put_ok(f, acked, "acknowledged"); /* not pending: applied at once */
    assert_visible(f, acked, "acknowledged", v_acked);
    assert_true(eventually(f, is_nospace, id));
    assert_visible(f, acked, "acknowledged", v_acked);
    shard_result res;
    uint64_t seq = seq_of(f, id);
    assert_int_equal(put(f, refused, "no room", NULL, &res), SKV_ENOSPACE);
    assert_int_equal(seq_of(f, id), seq);
    assert_absent(f, refused);
    assert_true(stats_of(f, id).write_errors >= 1);
    assert_true(atomic_load(&fault.write_faults) >= 1);

    fault_clear();
    assert_true(eventually(f, is_ok, id)); /* the retry went through */
    assert_visible(f, acked, "acknowledged", v_acked);
    uint64_t v_resumed = put_ok(f, resumed, "resumed");
    metrics_log_stats ls = stats_of(f, id);
    assert_true(ls.batches >= 1);
    assert_true(ls.records >= 1);

    node_restart(f);
    assert_visible(f, acked, "acknowledged", v_acked);
    assert_visible(f, resumed, "resumed", v_resumed);
    assert_absent(f, refused);
    assert_int_equal(seq_of(f, id), v_resumed);
    assert_int_equal(commit_recovery_of(f->c, id)->records_replayed, 2);
}

/* Writes under policy, restart, and compare keys, versions, seqs and the
 * recovery figures; then the seqs continue where they were. */
static void recovery_scenario(fx *f, int policy) {
    node_start(f, policy, 0);
    for (uint32_t id = 0; id < NSHARDS; id++) {
        const commit_recovery *rec = commit_recovery_of(f->c, id);
        assert_int_equal(rec->records_replayed, 0);
        assert_int_equal(rec->snapshot_entries, 0);
        assert_int_equal(rec->last_seq, 0);
        assert_int_equal(rec->torn_tail, 0);
    }
    model m;
    memset(&m, 0, sizeof m);
    model_fill(f, &m, 48);
    uint64_t seqs[NSHARDS], keys[NSHARDS];
    for (uint32_t id = 0; id < NSHARDS; id++) {
        seqs[id] = seq_of(f, id);
        keys[id] = shard_keys(store_shard(f->st, id));
        assert_int_equal(seqs[id], f->ops[id]);
    }

    node_restart(f);
    model_assert(f, &m);
    uint64_t replayed = 0;
    for (uint32_t id = 0; id < NSHARDS; id++) {
        const commit_recovery *rec = commit_recovery_of(f->c, id);
        assert_int_equal(rec->records_replayed, f->ops[id]);
        assert_int_equal(rec->last_seq, seqs[id]);
        assert_int_equal(rec->snapshot_entries, 0);
        assert_int_equal(rec->torn_tail, 0);
        assert_int_equal(seq_of(f, id), seqs[id]);
        assert_int_equal(shard_keys(store_shard(f->st, id)), keys[id]);
        replayed += rec->records_replayed;
    }
    assert_true(replayed > m.n);
    uint32_t id0 = shard_of(f, m.k[0].key);
    assert_int_equal(put_ok(f, m.k[0].key, "next"), seqs[id0] + 1);
}

static void test_recovery_always(void **state) { recovery_scenario(*state, FSYNC_ALWAYS); }
static void test_recovery_everysec(void **state) { recovery_scenario(*state, FSYNC_EVERYSEC); }
static void test_recovery_never(void **state) { recovery_scenario(*state, FSYNC_NEVER); }

static int snapshot_compacted(fx *f, uint32_t id) {
    char first[PATH_MAX + 64];
    shard_file(f, id, FIRST_SEGMENT, first, sizeof first);
    return stats_of(f, id).snapshots >= 1 && files_matching(f, id, "snap-", ".snap", NULL) >= 1 &&
           !file_exists(first);
}

/* A small --snapshot-bytes: snapshots appear, the segments they cover go,
 * and recovery (snapshot + log tail) is exact. */
static void test_snapshot_compacts_the_log_and_recovery_is_exact(void **state) {
    fx *f = *state;
    node_start(f, FSYNC_ALWAYS, 4096);
    const uint32_t id = 1;
    model m;
    memset(&m, 0, sizeof m);
    m.n = 40;
    for (size_t i = 0; i < m.n; i++) key_on(f, id, (unsigned)i, m.k[i].key);
    char val[96];
    for (int round = 0; round < 10; round++) {
        unsigned first = f->nwaiters;
        for (size_t i = 0; i < m.n; i++) {
            snprintf(val, sizeof val, "round %02d of key %02zu, padded to a realistic size", round, i);
            model_write(f, &m, i, round == 9 && i % 5 == 0 ? SHARD_OP_DELETE : SHARD_OP_PUT, val);
        }
        wait_wave(f, first);
    }
    assert_true(eventually(f, snapshot_compacted, id));
    metrics_log_stats ls = stats_of(f, id);
    assert_true(ls.snapshots >= 1);
    assert_int_equal(ls.snapshot_failures, 0);
    assert_int_equal(ls.records, f->ops[id]);
    model_assert(f, &m);
    uint64_t seq = seq_of(f, id);

    node_restart(f);
    model_assert(f, &m);
    assert_int_equal(seq_of(f, id), seq);
    const commit_recovery *rec = commit_recovery_of(f->c, id);
    assert_true(rec->snapshot_entries >= 1);
    assert_true(rec->records_replayed < f->ops[id]);
    assert_int_equal(rec->last_seq, seq);
    assert_int_equal(files_matching(f, id, "snap-", ".tmp", NULL), 0);
    /* Once more, so that the state written since the snapshot also survives. */
    uint64_t v = put_ok(f, m.k[1].key, "after the restart");
    node_restart(f);
    assert_visible(f, m.k[1].key, "after the restart", v);
}

/* A torn record at the end of a log is cut off at start and reported. */
static void test_torn_tail_is_cut_at_start(void **state) {
    fx *f = *state;
    node_start(f, FSYNC_ALWAYS, 0);
    const uint32_t id = 2;
    char k[3][32];
    uint64_t v[3];
    for (unsigned i = 0; i < 3; i++) {
        key_on(f, id, i, k[i]);
        v[i] = put_ok(f, k[i], "kept");
    }
    node_stop(f);
    char seg[PATH_MAX + 64];
    shard_file(f, id, FIRST_SEGMENT, seg, sizeof seg);
    const unsigned char torn[10] = { 200, 0, 0, 0, 1, 2, 3, 4, 5, 6 }; /* declares 200 bytes, has 2 */
    append_file(seg, torn, sizeof torn);

    node_start(f, FSYNC_ALWAYS, 0);
    const commit_recovery *rec = commit_recovery_of(f->c, id);
    assert_int_equal(rec->torn_tail, 1);
    assert_int_equal(rec->records_replayed, 3);
    for (uint32_t other = 0; other < NSHARDS; other++)
        if (other != id) assert_int_equal(commit_recovery_of(f->c, other)->torn_tail, 0);
    for (unsigned i = 0; i < 3; i++) assert_visible(f, k[i], "kept", v[i]);
    char k4[32];
    key_on(f, id, 3, k4);
    uint64_t v4 = put_ok(f, k4, "appended after the cut");

    node_restart(f);
    assert_int_equal(commit_recovery_of(f->c, id)->torn_tail, 0);
    assert_int_equal(commit_recovery_of(f->c, id)->records_replayed, 4);
    assert_visible(f, k4, "appended after the cut", v4);
}

/* A damaged record inside the log is corruption: the node must not start. */
static void test_corrupt_log_refuses_to_start(void **state) {
    fx *f = *state;
    node_start(f, FSYNC_ALWAYS, 0);
    const uint32_t id = 3;
    char k[32];
    for (unsigned i = 0; i < 3; i++) {
        key_on(f, id, i, k);
        put_ok(f, k, "value");
    }
    node_stop(f);
    char seg[PATH_MAX + 64];
    shard_file(f, id, FIRST_SEGMENT, seg, sizeof seg);
    flip_byte(seg, WAL_SEGMENT_HEADER + WAL_RECORD_HEADER + WAL_BODY_FIXED); /* first record's key */
    assert_int_equal(node_try_start(f, FSYNC_ALWAYS, 0), SKV_EIO);
    assert_null(f->c);
    flip_byte(seg, WAL_SEGMENT_HEADER + WAL_RECORD_HEADER + WAL_BODY_FIXED); /* repaired by hand */
    node_start(f, FSYNC_ALWAYS, 0);
    assert_int_equal(commit_recovery_of(f->c, id)->records_replayed, 3);
}

/* A data directory whose shard directories cannot be made refuses to start. */
static void test_unusable_data_dir_refuses_to_start(void **state) {
    fx *f = *state;
    char path[PATH_MAX + 64];
    shard_dir(f, 1, path, sizeof path);
    int fd = open(path, O_CREAT | O_WRONLY, 0644); /* a file where shard-1/ should be */
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(node_try_start(f, FSYNC_ALWAYS, 0), SKV_EIO);
    assert_null(f->c);
    assert_null(f->st);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void) {
    log_init(LOG_LEVEL_OFF, LOG_FORMAT_TEXT);
    pthread_mutex_init(&fault.mu, NULL);
    cond_init_monotonic(&fault.cv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy_names),
        T(test_always_write_visible_only_once_durable),
        T(test_always_fdatasync_error_degrades_the_shard),
        T(test_always_disk_full_fails_the_batch_and_what_follows),
        T(test_everysec_disk_full_keeps_acknowledged_writes_and_retries),
        T(test_recovery_always),
        T(test_recovery_everysec),
        T(test_recovery_never),
        T(test_snapshot_compacts_the_log_and_recovery_is_exact),
        T(test_torn_tail_is_cut_at_start),
        T(test_corrupt_log_refuses_to_start),
        T(test_unusable_data_dir_refuses_to_start),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
