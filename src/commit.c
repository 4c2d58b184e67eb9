#include "commit.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "log.h"
#include "mem.h"
#include "snap.h"
#include "wal.h"

#define RETRY_MS 200
#define LAZY_FLUSH_MS 2              /* everysec/never: records reach write(2) within this */
#define LAZY_FLUSH_BYTES (64 * 1024) /* ... or as soon as a shard buffers this much */

typedef struct flusher {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int kicked;
    _Atomic int idle;   /* everysec/never: asleep with nothing buffered; the next write wakes it */
    unsigned id;
    struct commit *c;
} flusher;

/* Per-shard durability state, owned by the shard's flusher thread. */
typedef struct shard_log {
    wal *log;
    char dir[1024];
    skv_buf batch;              /* the batch being written (flusher only) */
    int unsynced;               /* everysec: written since the last fdatasync */
    _Atomic int snapshotting;   /* a snapshot job is queued or running */
    _Atomic uint64_t drop_before;  /* set by the snapshot thread: segments below are covered */
    _Atomic int snapshot_failed;
    commit_recovery rec;
    /* commit_stats, written by the flusher and snapshot threads, read by scrapes */
    _Atomic uint64_t st_batches, st_records, st_bytes, st_fsyncs, st_fsync_ns, st_errors;
    _Atomic uint64_t st_snapshots, st_snapshot_failures, st_log_bytes;
} shard_log;

struct commit {
    commit_config cfg;
    store *st;
    shard_log *logs;            /* [nshards] */
    unsigned nflushers;
    flusher *flushers;
    _Atomic int stop;
    /* snapshot thread: a FIFO of shard ids */
    pthread_t snap_thread;
    pthread_mutex_t snap_mu;
    pthread_cond_t snap_cv;
    uint32_t *snap_queue;
    uint64_t *snap_base;
    size_t snap_head, snap_len;
    int snap_running;
};

const char *commit_policy_name(int policy) {
    static const char *const names[] = { "always", "everysec", "never" };
    return policy >= 0 && policy <= FSYNC_NEVER ? names[policy] : "unknown";
}

int commit_policy_parse(const char *s) {
    for (int i = 0; i <= FSYNC_NEVER; i++)
        if (strcmp(s, commit_policy_name(i)) == 0) return i;
    return -1;
}

static void stat_add(_Atomic uint64_t *v, uint64_t n) { atomic_fetch_add_explicit(v, n, memory_order_relaxed); }
static uint64_t stat_get(const _Atomic uint64_t *v) {
    return atomic_load_explicit((_Atomic uint64_t *)v, memory_order_relaxed);
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* wal_sync, counted and timed. */
static int sync_log(shard_log *sl) {
    uint64_t t0 = now_ns();
    int rc = wal_sync(sl->log);
    stat_add(&sl->st_fsyncs, 1);
    stat_add(&sl->st_fsync_ns, now_ns() - t0);
    if (rc != SKV_OK) stat_add(&sl->st_errors, 1);
    return rc;
}

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- recovery ------------------------------------------------------------------------------ */

static int replay_cb(void *arg, const wal_record *r) {
    shard *s = arg;
    return shard_replay(s, r) == SKV_OK ? 0 : SKV_ENOMEM;
}

static int recover_shard(commit *c, uint32_t id) {
    shard *s = store_shard(c->st, id);
    shard_log *sl = &c->logs[id];
    uint64_t t0 = now_ms();
    snap_info si;
    memset(&si, 0, sizeof si);
    uint64_t base = 0;
    int rc = snap_find_latest(sl->dir, &si);
    if (rc < 0) {
        log_error("shard %u: cannot read %s", id, sl->dir);
        return SKV_EIO;
    }
    if (rc == 1) {
        rc = snap_load(&si, replay_cb, s);
        if (rc != SKV_OK) {
            log_error("shard %u: snapshot %s is corrupt at offset %llu: %s. The log segments it replaced are gone, "
                      "so the node cannot start from this directory; restore the data directory from a backup "
                      "(shardkv check --data-dir %s reports every file)",
                      id, si.path, (unsigned long long)si.error_offset, si.error, c->cfg.data_dir);
            return SKV_EIO;
        }
        base = si.base_seq;
        if (base > s->seq) s->seq = base;
        sl->rec.snapshot_entries = si.entries;
    }
    wal_scan_report rep;
    memset(&rep, 0, sizeof rep);
    rc = wal_scan(sl->dir, base, replay_cb, s, &rep);
    if (rc != SKV_OK) {
        if (rc == SKV_EIO)
            log_error("shard %u: log corruption in %s at offset %llu: %s. shardkv refuses to start rather than "
                      "drop acknowledged writes. To cut the log at that point (losing the records after it), "
                      "stop the node and run: shardkv check --data-dir %s --repair",
                      id, rep.error_file, (unsigned long long)rep.error_offset, rep.error, c->cfg.data_dir);
        else
            log_error("shard %u: recovery failed: %s", id, skv_strerror(rc));
        return SKV_EIO;
    }
    if (rep.torn_tail)
        log_warn("shard %u: cut a torn record off the end of %s at offset %llu (a write interrupted by a crash; "
                 "it was never acknowledged)",
                 id, rep.last_segment, (unsigned long long)rep.tail_offset);
    if (rep.last_seq > s->seq) s->seq = rep.last_seq;
    atomic_store_explicit(&s->seq_published, s->seq, memory_order_release);
    rc = wal_open(sl->dir, id, s->seq + 1, rep.last_segment[0] ? rep.tail_offset : 0, c->cfg.io, &sl->log);
    if (rc != SKV_OK) {
        log_error("shard %u: cannot open its log in %s", id, sl->dir);
        return SKV_EIO;
    }
    sl->rec.records_replayed = rep.records;
    sl->rec.torn_tail = rep.torn_tail;
    sl->rec.last_seq = s->seq;
    atomic_store_explicit(&sl->st_log_bytes, wal_bytes(sl->log), memory_order_relaxed);
    sl->rec.seconds = (double)(now_ms() - t0) / 1000.0;
    log_info("shard %u: recovered %llu keys (snapshot %llu entries, %llu log records replayed, seq %llu) in %.3fs", id,
             (unsigned long long)shard_keys(s), (unsigned long long)sl->rec.snapshot_entries,
             (unsigned long long)rep.records, (unsigned long long)s->seq, sl->rec.seconds);
    return SKV_OK;
}

typedef struct recover_job {
    commit *c;
    _Atomic uint32_t next;
    _Atomic int failed;
} recover_job;

static void *recover_thread(void *arg) {
    recover_job *j = arg;
    for (;;) {
        uint32_t id = atomic_fetch_add(&j->next, 1);
        if (id >= j->c->st->nshards || atomic_load(&j->failed)) break;
        if (recover_shard(j->c, id) != SKV_OK) atomic_store(&j->failed, 1);
    }
    return NULL;
}

static int recover_all(commit *c, unsigned parallel) {
    recover_job j;
    j.c = c;
    atomic_init(&j.next, 0);
    atomic_init(&j.failed, 0);
    if (parallel < 1) parallel = 1;
    if (parallel > c->st->nshards) parallel = c->st->nshards;
    pthread_t *t = skv_calloc(parallel, sizeof *t);
    unsigned started = 0;
    for (unsigned i = 1; i < parallel; i++)
        if (pthread_create(&t[started], NULL, recover_thread, &j) == 0) started++;
    recover_thread(&j); /* this thread works too */
    for (unsigned i = 0; i < started; i++) pthread_join(t[i], NULL);
    free(t);
    return atomic_load(&j.failed) ? SKV_EIO : SKV_OK;
}

/* ---- flushing ------------------------------------------------------------------------------ */

static void kick(void *arg, shard *s) {
    commit *c = arg;
    /* Writes that do not wait for the disk are picked up by the flusher's
     * short timer (LAZY_FLUSH_MS); a wake-up per write would cost a context
     * switch each.  A big buffer is flushed at once, and an idle flusher
     * (asleep without its short timer) is woken by the first write. */
    flusher *f = &c->flushers[s->id % c->nflushers];
    if (c->cfg.policy != FSYNC_ALWAYS && s->buf.len < LAZY_FLUSH_BYTES) {
        atomic_thread_fence(memory_order_seq_cst); /* pairs with the flusher's: buf.len before idle */
        if (!atomic_load(&f->idle)) return;
    }
    pthread_mutex_lock(&f->mu);
    if (!f->kicked) {
        f->kicked = 1;
        pthread_cond_signal(&f->cv);
    }
    pthread_mutex_unlock(&f->mu);
}

static void deliver_all(shard_waiter *w, int status) {
    while (w) {
        shard_waiter *next = w->next; /* deliver() may hand w to another thread */
        w->status = status;
        w->deliver(w);
        w = next;
    }
}

static void queue_snapshot(commit *c, uint32_t id, uint64_t base) {
    pthread_mutex_lock(&c->snap_mu);
    size_t n = c->st->nshards;
    size_t slot = (c->snap_head + c->snap_len) % n;
    c->snap_queue[slot] = id;
    c->snap_base[slot] = base;
    c->snap_len++;
    pthread_cond_signal(&c->snap_cv);
    pthread_mutex_unlock(&c->snap_mu);
}

/* Drops the segments and older snapshots a finished snapshot covers. */
static void drop_covered(commit *c, uint32_t id) {
    shard_log *sl = &c->logs[id];
    uint64_t drop = atomic_exchange(&sl->drop_before, 0);
    if (drop) {
        if (wal_drop_before(sl->log, drop) != SKV_OK) log_warn("shard %u: could not drop old log segments", id);
        atomic_store_explicit(&sl->st_log_bytes, wal_bytes(sl->log), memory_order_relaxed);
        snap_drop_older(sl->dir, drop - 1);
    }
}

/* After a good flush: roll and snapshot when the log grew past the threshold,
 * and drop what a finished snapshot covers. */
static void maintain(commit *c, uint32_t id, uint64_t last_logged) {
    shard_log *sl = &c->logs[id];
    drop_covered(c, id);
    if (!c->cfg.snapshot_bytes || atomic_load(&sl->snapshotting) || last_logged == 0) return;
    if (wal_bytes(sl->log) < c->cfg.snapshot_bytes) return;
    if (wal_roll(sl->log, last_logged + 1) != SKV_OK) {
        log_warn("shard %u: could not roll the log for a snapshot; will retry", id);
        return;
    }
    atomic_store(&sl->snapshotting, 1);
    queue_snapshot(c, id, last_logged);
}

/* Writes one shard's buffered records; returns 1 when it wrote something. */
static int flush_shard(commit *c, uint32_t id) {
    shard *s = store_shard(c->st, id);
    shard_log *sl = &c->logs[id];
    uint64_t last = 0;
    shard_waiter *waiters = NULL;
    pthread_mutex_lock(&s->lock);
    if (s->buf.len == 0 || s->state == SHARD_DEGRADED) {
        pthread_mutex_unlock(&s->lock);
        drop_covered(c, id); /* a snapshot finished while the shard is idle (it kicked us) */
        return 0;
    }
    shard_take_batch(s, &sl->batch, &last, &waiters);
    pthread_mutex_unlock(&s->lock);

    int rc = wal_append(sl->log, sl->batch.data, sl->batch.len);
    if (rc != SKV_OK) stat_add(&sl->st_errors, 1);
    if (rc == SKV_OK && c->cfg.policy == FSYNC_ALWAYS) rc = sync_log(sl);
    if (rc == SKV_OK) {
        wal_commit_point(sl->log);
        stat_add(&sl->st_batches, 1);
        stat_add(&sl->st_records, wal_count_records(sl->batch.data, sl->batch.len));
        stat_add(&sl->st_bytes, sl->batch.len);
        atomic_store_explicit(&sl->st_log_bytes, wal_bytes(sl->log), memory_order_relaxed);
    } else if (rc == SKV_ENOSPACE && wal_rewind(sl->log) != SKV_OK) rc = SKV_EIO;

    shard_waiter *failed = NULL;
    pthread_mutex_lock(&s->lock);
    if (rc == SKV_OK) {
        shard_commit_batch(s, &sl->batch);
        if (s->state == SHARD_NOSPACE) {
            log_info("shard %u: log writes succeed again; accepting writes", id);
            s->state = SHARD_OK;
        }
        sl->unsynced = c->cfg.policy == FSYNC_EVERYSEC;
    } else if (rc == SKV_ENOSPACE && c->cfg.policy != FSYNC_ALWAYS) {
        /* Acknowledged already: keep the records and retry; refuse new writes meanwhile. */
        if (s->state == SHARD_OK) log_error("shard %u: disk full writing the log; writes refused until space returns", id);
        s->state = SHARD_NOSPACE;
        shard_requeue_batch(s, &sl->batch, last);
    } else {
        failed = shard_discard_pending(s, &sl->batch);
        if (rc == SKV_ENOSPACE) {
            log_error("shard %u: disk full writing the log; the batch failed (507), reads continue", id);
        } else {
            log_error("shard %u: log write or fdatasync failed (outcome unknown): the shard refuses writes until the "
                      "node restarts and recovers from its log",
                      id);
            s->state = SHARD_DEGRADED;
        }
    }
    pthread_mutex_unlock(&s->lock);
    skv_buf_reset(&sl->batch);
    deliver_all(waiters, rc);
    deliver_all(failed, rc == SKV_OK ? SKV_EIO : rc);
    if (rc == SKV_OK) maintain(c, id, last);
    return rc == SKV_OK;
}

static void sync_shard(commit *c, uint32_t id) {
    shard_log *sl = &c->logs[id];
    if (!sl->unsynced) return;
    sl->unsynced = 0;
    if (sync_log(sl) != SKV_OK) {
        shard *s = store_shard(c->st, id);
        pthread_mutex_lock(&s->lock);
        s->state = SHARD_DEGRADED;
        pthread_mutex_unlock(&s->lock);
        log_error("shard %u: periodic fdatasync failed: the shard refuses writes until restart", id);
    }
}

/* 1 when a shard of f has records buffered. */
static int any_buffered(commit *c, const flusher *f) {
    for (uint32_t id = f->id; id < c->st->nshards; id += c->nflushers) {
        shard *s = store_shard(c->st, id);
        pthread_mutex_lock(&s->lock); /* only when the flusher is about to sleep */
        size_t len = s->buf.len;
        pthread_mutex_unlock(&s->lock);
        if (len) return 1;
    }
    return 0;
}

static int any_retry(commit *c, const flusher *f) {
    for (uint32_t id = f->id; id < c->st->nshards; id += c->nflushers) {
        shard *s = store_shard(c->st, id);
        pthread_mutex_lock(&s->lock);
        int full = s->state == SHARD_NOSPACE;
        pthread_mutex_unlock(&s->lock);
        if (full) return 1;
    }
    return 0;
}

/* How long an idle flusher sleeps (a kick wakes it earlier).  Under
 * everysec/never with nothing buffered it marks itself idle, so that the
 * next write kicks it: a write racing with this check either sees idle set
 * or is seen by any_buffered (fences on both sides). */
static uint64_t sleep_ms(commit *c, flusher *f, uint64_t next_sync) {
    if (any_retry(c, f)) return RETRY_MS; /* a full disk is retried every RETRY_MS, not sooner */
    if (c->cfg.policy == FSYNC_ALWAYS) return 1000;
    atomic_store(&f->idle, 1);
    atomic_thread_fence(memory_order_seq_cst); /* idle before buf.len (see kick) */
    if (any_buffered(c, f)) {
        atomic_store(&f->idle, 0);
        return LAZY_FLUSH_MS;
    }
    if (c->cfg.policy != FSYNC_EVERYSEC) return 1000;
    uint64_t now = now_ms();
    return next_sync > now ? next_sync - now : 0;
}

static void *flusher_main(void *arg) {
    flusher *f = arg;
    commit *c = f->c;
    uint64_t next_sync = now_ms() + 1000;
    for (;;) {
        int stopping = atomic_load(&c->stop);
        /* How long to sleep is decided before taking f->mu: the checks take
         * shard locks, and a writer holds its shard lock when it takes f->mu
         * (kick), so holding f->mu here would invert that order. */
        uint64_t wait_ms = sleep_ms(c, f, next_sync);
        pthread_mutex_lock(&f->mu);
        if (!f->kicked && !stopping) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += (time_t)(wait_ms / 1000);
            ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
            pthread_cond_timedwait(&f->cv, &f->mu, &ts);
        }
        f->kicked = 0;
        atomic_store(&f->idle, 0);
        pthread_mutex_unlock(&f->mu);
        /* Group commit: let the writers that are running queue behind the
         * first one before the batch is taken (one fsync for all of them). */
        if (c->cfg.policy == FSYNC_ALWAYS) sched_yield();
        for (uint32_t id = f->id; id < c->st->nshards; id += c->nflushers) flush_shard(c, id);
        if (c->cfg.policy == FSYNC_EVERYSEC && (now_ms() >= next_sync || stopping)) {
            for (uint32_t id = f->id; id < c->st->nshards; id += c->nflushers) sync_shard(c, id);
            next_sync = now_ms() + 1000;
        }
        if (stopping) break;
    }
    return NULL;
}

/* ---- snapshots ----------------------------------------------------------------------------- */

#define SNAP_BATCH_BUCKETS 64

/* Pulls entries out of a live shard: a few buckets per lock hold, copied. */
typedef struct snap_cursor {
    shard *s;
    uint64_t cursor;
    int done;
    skv_buf copies;         /* encoded copies of the current chunk */
    size_t pos;
} snap_cursor;

static void copy_entry(void *arg, const ht_entry *e) {
    snap_cursor *sc = arg;
    wal_record r = { 0 };
    r.seq = e->version;
    r.op = WAL_OP_PUT;
    r.flags = e->flags & 0xffu;
    r.expires_ms = e->expires_ms;
    r.key = skv_slice_make(ht_entry_key(e), e->key_len);
    r.value = skv_slice_make(ht_entry_value(e), e->val_len);
    wal_record_encode(&sc->copies, &r);
}

static int snap_next(void *arg, wal_record *r) {
    snap_cursor *sc = arg;
    while (sc->pos >= sc->copies.len) {
        if (sc->done) return 0;
        skv_buf_reset(&sc->copies);
        sc->pos = 0;
        pthread_mutex_lock(&sc->s->lock);
        for (int i = 0; i < SNAP_BATCH_BUCKETS && !sc->done; i++) {
            sc->cursor = ht_scan(sc->s->table, sc->cursor, copy_entry, sc);
            if (sc->cursor == 0) sc->done = 1;
        }
        pthread_mutex_unlock(&sc->s->lock);
    }
    size_t used = 0;
    if (wal_record_decode(sc->copies.data + sc->pos, sc->copies.len - sc->pos, r, &used) != SKV_OK) abort();
    sc->pos += used;
    return 1;
}

static void run_snapshot(commit *c, uint32_t id, uint64_t base) {
    shard_log *sl = &c->logs[id];
    snap_cursor sc = { store_shard(c->st, id), 0, 0, { NULL, 0, 0 }, 0 };
    uint64_t t0 = now_ms();
    int rc = snap_write(sl->dir, id, base, snap_next, &sc, c->cfg.io);
    skv_buf_free(&sc.copies);
    if (rc == SKV_OK) {
        log_info("shard %u: snapshot at seq %llu written in %.3fs", id, (unsigned long long)base,
                 (double)(now_ms() - t0) / 1000.0);
        stat_add(&sl->st_snapshots, 1);
        atomic_store(&sl->drop_before, base + 1);
        kick(c, store_shard(c->st, id)); /* the flusher drops the covered segments */
    } else {
        stat_add(&sl->st_snapshot_failures, 1);
        log_error("shard %u: snapshot at seq %llu failed: %s (the log keeps everything; will retry)", id,
                  (unsigned long long)base, skv_strerror(rc));
    }
    atomic_store(&sl->snapshotting, 0);
}

static void *snapshot_main(void *arg) {
    commit *c = arg;
    pthread_mutex_lock(&c->snap_mu);
    for (;;) {
        while (c->snap_len == 0 && c->snap_running) pthread_cond_wait(&c->snap_cv, &c->snap_mu);
        if (c->snap_len == 0) break;
        uint32_t id = c->snap_queue[c->snap_head];
        uint64_t base = c->snap_base[c->snap_head];
        c->snap_head = (c->snap_head + 1) % c->st->nshards;
        c->snap_len--;
        pthread_mutex_unlock(&c->snap_mu);
        run_snapshot(c, id, base);
        pthread_mutex_lock(&c->snap_mu);
    }
    pthread_mutex_unlock(&c->snap_mu);
    return NULL;
}

/* ---- life cycle ---------------------------------------------------------------------------- */

const commit_recovery *commit_recovery_of(const commit *c, uint32_t id) { return &c->logs[id].rec; }

void commit_stats_of(const commit *c, uint32_t id, metrics_log_stats *out) {
    const shard_log *sl = &c->logs[id];
    out->batches = stat_get(&sl->st_batches);
    out->records = stat_get(&sl->st_records);
    out->bytes_written = stat_get(&sl->st_bytes);
    out->fsyncs = stat_get(&sl->st_fsyncs);
    out->fsync_seconds = (double)stat_get(&sl->st_fsync_ns) / 1e9;
    out->write_errors = stat_get(&sl->st_errors);
    out->snapshots = stat_get(&sl->st_snapshots);
    out->snapshot_failures = stat_get(&sl->st_snapshot_failures);
    out->log_bytes = stat_get(&sl->st_log_bytes);
}

static void free_logs(commit *c) {
    for (uint32_t i = 0; i < c->st->nshards; i++) {
        if (c->logs[i].log) wal_close(c->logs[i].log);
        skv_buf_free(&c->logs[i].batch);
    }
    free(c->logs);
}

int commit_start(const commit_config *cfg, store *st, unsigned parallel, commit **out) {
    commit *c = skv_calloc(1, sizeof *c);
    c->cfg = *cfg;
    if (!c->cfg.io) c->cfg.io = &skv_io_posix;
    c->st = st;
    c->logs = skv_calloc(st->nshards, sizeof *c->logs);
    for (uint32_t i = 0; i < st->nshards; i++) {
        char name[32];
        snprintf(name, sizeof name, "shard-%u", i);
        if (io_path(c->logs[i].dir, sizeof c->logs[i].dir, cfg->data_dir, name) != 0 ||
            io_mkdir(c->logs[i].dir) != 0) {
            log_error("cannot create %s/%s: %s", cfg->data_dir, name, strerror(errno));
            free_logs(c);
            free(c);
            return SKV_EIO;
        }
    }
    if (recover_all(c, parallel) != SKV_OK) {
        free_logs(c);
        free(c);
        return SKV_EIO;
    }
    c->nflushers = st->nshards < COMMIT_MAX_FLUSHERS ? st->nshards : COMMIT_MAX_FLUSHERS;
    c->flushers = skv_calloc(c->nflushers, sizeof *c->flushers);
    for (uint32_t i = 0; i < st->nshards; i++)
        shard_attach_log(store_shard(st, i), cfg->policy == FSYNC_ALWAYS, kick, c);
    pthread_mutex_init(&c->snap_mu, NULL);
    pthread_cond_init(&c->snap_cv, NULL);
    c->snap_queue = skv_calloc(st->nshards, sizeof *c->snap_queue);
    c->snap_base = skv_calloc(st->nshards, sizeof *c->snap_base);
    c->snap_running = 1;
    if (pthread_create(&c->snap_thread, NULL, snapshot_main, c) != 0) abort();
    for (unsigned i = 0; i < c->nflushers; i++) {
        flusher *f = &c->flushers[i];
        f->id = i;
        f->c = c;
        pthread_mutex_init(&f->mu, NULL);
        pthread_cond_init(&f->cv, NULL);
        if (pthread_create(&f->thread, NULL, flusher_main, f) != 0) abort(); /* start-up: nothing to save yet */
    }
    *out = c;
    return SKV_OK;
}

void commit_stop(commit *c) {
    if (!c) return;
    atomic_store(&c->stop, 1);
    for (unsigned i = 0; i < c->nflushers; i++) {
        flusher *f = &c->flushers[i];
        pthread_mutex_lock(&f->mu);
        f->kicked = 1;
        pthread_cond_signal(&f->cv);
        pthread_mutex_unlock(&f->mu);
        pthread_join(f->thread, NULL);
    }
    pthread_mutex_lock(&c->snap_mu);
    c->snap_running = 0;
    c->snap_len = 0; /* a queued snapshot is simply not taken: the log keeps everything */
    pthread_cond_signal(&c->snap_cv);
    pthread_mutex_unlock(&c->snap_mu);
    pthread_join(c->snap_thread, NULL);
    /* Whatever a flusher could not write (disk full at exit) is lost only
     * for everysec/never, whose writes were acknowledged before the disk. */
    for (unsigned i = 0; i < c->nflushers; i++) {
        pthread_mutex_destroy(&c->flushers[i].mu);
        pthread_cond_destroy(&c->flushers[i].cv);
    }
    free(c->flushers);
    for (uint32_t i = 0; i < c->st->nshards; i++)
        if (c->logs[i].log && c->cfg.policy != FSYNC_NEVER) wal_sync(c->logs[i].log);
    free_logs(c);
    pthread_mutex_destroy(&c->snap_mu);
    pthread_cond_destroy(&c->snap_cv);
    free(c->snap_queue);
    free(c->snap_base);
    free(c);
}
