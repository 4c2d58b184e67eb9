#include "shard.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "err.h"
#include "mem.h"

void shard_init(shard *s, uint32_t id) {
    pthread_mutex_init(&s->lock, NULL);
    s->table = ht_new();
    s->pending = ht_new();
    s->seq = 0;
    s->id = id;
    s->logged = 0;
    s->sync_writes = 0;
    s->state = SHARD_OK;
    skv_buf_init(&s->buf);
    s->buf_last_seq = 0;
    s->waiters = s->waiters_tail = NULL;
    s->kick = NULL;
    s->kick_arg = NULL;
    s->observer = NULL;
    s->observer_arg = NULL;
    s->clock_ms = shard_wall_ms;
    skv_buf_init(&s->scratch);
    atomic_init(&s->hits, 0);
    atomic_init(&s->misses, 0);
    atomic_init(&s->expired, 0);
    atomic_init(&s->evicted, 0);
    atomic_init(&s->seq_published, 0);
    atomic_init(&s->user_keys, 0);
    atomic_init(&s->keys, 0);
    atomic_init(&s->bytes, 0);
    atomic_init(&s->pending_count, 0);
}

void shard_destroy(shard *s) {
    ht_free(s->table);
    ht_free(s->pending);
    s->table = s->pending = NULL;
    skv_buf_free(&s->buf);
    skv_buf_free(&s->scratch);
    pthread_mutex_destroy(&s->lock);
}

uint64_t shard_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void shard_set_observer(shard *s, shard_observer_fn fn, void *arg) {
    s->observer = fn;
    s->observer_arg = arg;
}

static void stat_inc(_Atomic uint64_t *v) { atomic_fetch_add_explicit(v, 1, memory_order_relaxed); }

void shard_stats_get(shard *s, shard_stats *out) {
    out->hits = atomic_load_explicit(&s->hits, memory_order_relaxed);
    out->misses = atomic_load_explicit(&s->misses, memory_order_relaxed);
    out->expired = atomic_load_explicit(&s->expired, memory_order_relaxed);
    out->evicted = atomic_load_explicit(&s->evicted, memory_order_relaxed);
}

/* Coarse clock for LRU: seconds, wrapping after 136 years. */
static uint32_t lru_clock(const shard *s) { return (uint32_t)(s->clock_ms() / 1000); }

void shard_attach_log(shard *s, int sync_writes, shard_kick_fn kick, void *arg) {
    s->logged = 1;
    s->sync_writes = sync_writes;
    s->kick = kick;
    s->kick_arg = arg;
}

/* Publishes the accounting after a change of delta_keys / delta_bytes. */
static void account(shard *s, int64_t delta_keys, int64_t delta_bytes) {
    uint64_t k = atomic_load_explicit(&s->keys, memory_order_relaxed);
    uint64_t b = atomic_load_explicit(&s->bytes, memory_order_relaxed);
    atomic_store_explicit(&s->keys, k + (uint64_t)delta_keys, memory_order_relaxed);
    atomic_store_explicit(&s->bytes, b + (uint64_t)delta_bytes, memory_order_relaxed);
}

static void pending_adjust(shard *s, int64_t delta) {
    uint64_t n = atomic_load_explicit(&s->pending_count, memory_order_relaxed);
    atomic_store_explicit(&s->pending_count, n + (uint64_t)delta, memory_order_relaxed);
}

/*
 * Puts e into the table unless the table already holds a newer version of
 * its key ("newer version wins").  A tombstone removes an older entry.
 * Takes ownership of e.
 */
/* Removes the visible entry of key (if any), telling the observer. */
static int is_internal(const ht_entry *e) { return e->key_len > 0 && ht_entry_key(e)[0] == '\0'; }

static void user_keys_adjust(shard *s, const ht_entry *e, int64_t delta) {
    if (is_internal(e)) return;
    uint64_t n = atomic_load_explicit(&s->user_keys, memory_order_relaxed);
    atomic_store_explicit(&s->user_keys, n + (uint64_t)delta, memory_order_relaxed);
}

static void table_remove(shard *s, uint64_t h, const char *key, size_t key_len) {
    ht_entry *old = ht_remove(s->table, h, key, key_len);
    if (!old) return;
    account(s, -1, -(int64_t)ht_entry_size(old));
    user_keys_adjust(s, old, -1);
    if (s->observer) s->observer(s->observer_arg, s, old, NULL);
    free(old);
}

static void table_install(shard *s, ht_entry *e) {
    const char *key = ht_entry_key(e);
    ht_entry *cur = ht_find(s->table, e->hash, key, e->key_len);
    if (cur && cur->version >= e->version) {
        free(e);
        return;
    }
    if (e->flags & SHARD_TOMBSTONE) {
        if (cur) table_remove(s, e->hash, key, e->key_len);
        free(e);
        return;
    }
    if (!e->atime) e->atime = lru_clock(s);
    ht_entry *old = ht_put(s->table, e);
    account(s, old ? 0 : 1, (int64_t)ht_entry_size(e) - (old ? (int64_t)ht_entry_size(old) : 0));
    if (!old) user_keys_adjust(s, e, 1);
    if (s->observer) s->observer(s->observer_arg, s, old, e);
    free(old);
}

/* Removes an expired visible entry (not logged: see shard.h). */
static void expire_entry(shard *s, ht_entry *e) {
    stat_inc(&s->expired);
    table_remove(s, e->hash, ht_entry_key(e), e->key_len);
}

/*
 * A pending entry overtaken by a newer pending write of its key stays in
 * `pending` under another hash until its own batch is durable, so that its
 * state becomes visible then (an acknowledged write must be readable, even
 * while a newer write of the key still waits for the disk).  The hash is
 * the key's hash xor an odd multiple of the version: never the key's own
 * hash (version >= 1), different per version, so lookups by key never see
 * it.
 */
static uint64_t superseded_hash(uint64_t key_hash, uint64_t version) {
    return key_hash ^ (version * 0x9E3779B97F4A7C15ull);
}

/* The newest entry for a key: pending first (it is always newer), then the
 * table.  A pending tombstone means "absent" (NULL) with *pend set. */
static ht_entry *newest(shard *s, uint64_t h, skv_slice key, ht_entry **pend) {
    *pend = ht_count(s->pending) ? ht_find(s->pending, h, key.ptr, key.len) : NULL;
    if (*pend) {
        if ((*pend)->flags & SHARD_TOMBSTONE) return NULL;
        return shard_entry_expired(*pend, s->clock_ms()) ? NULL : *pend;
    }
    ht_entry *e = ht_find(s->table, h, key.ptr, key.len);
    if (e && shard_entry_expired(e, s->clock_ms())) {
        expire_entry(s, e);
        return NULL;
    }
    return e;
}

static int cond_holds(const shard_write *w, const ht_entry *cur) {
    switch (w->cond) {
    case SHARD_COND_VERSION: return cur && cur->version == w->expected_version;
    case SHARD_COND_EXISTS: return cur != NULL;
    case SHARD_COND_ABSENT: return cur == NULL;
    default: return 1;
    }
}

static void append_record(shard *s, int op, skv_slice key, skv_slice value, uint32_t flags, uint64_t expires_ms,
                          uint64_t seq) {
    wal_record r = { 0 };
    r.seq = seq;
    r.op = op == SHARD_OP_PUT ? WAL_OP_PUT : WAL_OP_DELETE;
    r.flags = flags & 0xffu;
    r.key = key;
    if (op == SHARD_OP_PUT) {
        r.value = value;
        r.expires_ms = expires_ms;
    }
    wal_record_encode(&s->buf, &r);
    s->buf_last_seq = seq;
}

/* Remembered answers (idempotency records): u64 fingerprint, then the answer. */
#define IDEM_FP_BYTES 8

static void idem_value(const shard_write *w, const skv_buf *answer, skv_buf *out) {
    unsigned char fp[IDEM_FP_BYTES];
    for (int i = 0; i < IDEM_FP_BYTES; i++) fp[i] = (unsigned char)(w->idem_fingerprint >> (8 * i));
    skv_buf_reset(out);
    skv_buf_append(out, fp, sizeof fp);
    if (answer->len) skv_buf_append(out, answer->data, answer->len);
}

/* The write's Idempotency-Key was seen before: SKV_EEXISTS with the answer,
 * SKV_EINVAL for another request, SKV_EAGAIN while it waits for the disk. */
static int idem_found(const shard_write *w, const ht_entry *e, int is_pending) {
    const unsigned char *v = (const unsigned char *)ht_entry_value(e);
    uint64_t fp = 0;
    if (e->val_len < IDEM_FP_BYTES) return SKV_EINVAL;
    for (int i = 0; i < IDEM_FP_BYTES; i++) fp |= (uint64_t)v[i] << (8 * i);
    if (fp != w->idem_fingerprint) return SKV_EINVAL;
    if (is_pending) return SKV_EAGAIN;
    if (w->replay) {
        skv_buf_reset(w->replay);
        skv_buf_append(w->replay, ht_entry_value(e) + IDEM_FP_BYTES, e->val_len - IDEM_FP_BYTES);
    }
    return SKV_EEXISTS;
}

/* Makes e (a new version of its key) visible now, or pending until its
 * batch is durable. */
static void place_entry(shard *s, ht_entry *e, int goes_pending) {
    if (goes_pending) {
        ht_entry *old = ht_put(s->pending, e);
        if (old) { /* keep it until its batch is durable (superseded_hash) */
            old->hash = superseded_hash(old->hash, old->version);
            free(ht_put(s->pending, old));
        }
        pending_adjust(s, 1);
    } else {
        table_install(s, e);
    }
}

static void add_waiter(shard *s, shard_waiter *w, uint64_t seq) {
    w->seq = seq;
    w->status = 0;
    w->next = NULL;
    if (s->waiters_tail) s->waiters_tail->next = w;
    else s->waiters = w;
    s->waiters_tail = w;
}

int shard_apply(shard *s, uint64_t key_hash, const shard_write *w, shard_result *res) {
    int rc = SKV_OK;
    res->version = 0;
    res->created = 0;
    res->pending = 0;
    res->shard = s->id;
    ht_entry *e = NULL, *ie = NULL;
    pthread_mutex_lock(&s->lock);
    if (s->state != SHARD_OK) {
        rc = s->state == SHARD_NOSPACE ? SKV_ENOSPACE : SKV_EIO;
        goto out;
    }
    /* A retry is answered before any condition is evaluated again. */
    uint64_t idem_hash = 0;
    ht_entry *pend;
    if (w->idem_key.len) {
        idem_hash = XXH3_64bits(w->idem_key.ptr, w->idem_key.len);
        ht_entry *seen = newest(s, idem_hash, w->idem_key, &pend);
        if (seen) {
            rc = idem_found(w, seen, seen == pend);
            goto out;
        }
    }
    ht_entry *cur = newest(s, key_hash, w->key, &pend);
    if (!cond_holds(w, cur)) {
        res->version = cur ? cur->version : 0;
        rc = SKV_EPRECOND;
        goto out;
    }
    if (w->op == SHARD_OP_DELETE && !cur) {
        rc = SKV_ENOTFOUND;
        goto out;
    }
    skv_slice value = w->value;
    uint32_t flags = w->flags;
    uint64_t expires_ms = w->expires_ms;
    if (w->op == SHARD_OP_PUT && w->compute) {
        skv_buf_reset(&s->scratch);
        rc = w->compute(w->compute_arg, cur, &s->scratch, &flags, &expires_ms);
        if (rc != SKV_OK) goto out;
        value = skv_slice_make(s->scratch.data ? s->scratch.data : "", s->scratch.len);
    }
    /* Pending when the disk must come first, or when an older pending write
     * of this key must be overtaken in order. */
    int goes_pending = s->logged && s->sync_writes && (!w->async || pend);
    /* Allocate before taking a seq or logging anything: an ENOMEM changes
     * nothing.  An immediate delete allocates nothing, so deleting works
     * under memory pressure. */
    if (w->op == SHARD_OP_PUT)
        e = ht_entry_new(key_hash, w->key.ptr, w->key.len, value.ptr, value.len);
    else if (goes_pending)
        e = ht_entry_new(key_hash, w->key.ptr, w->key.len, "", 0);
    if (!e && (w->op == SHARD_OP_PUT || goes_pending)) {
        rc = SKV_ENOMEM;
        goto out;
    }
    uint64_t seq = ++s->seq;
    res->version = seq;
    res->created = w->op == SHARD_OP_PUT && !cur;
    if (w->idem_key.len) {
        /* Render the answer now that the result is known, and store it with
         * the write (same atomic log group, same visibility). */
        skv_buf answer, iv;
        skv_buf_init(&answer);
        skv_buf_init(&iv);
        if (w->render) w->render(w->render_arg, res, &answer);
        idem_value(w, &answer, &iv);
        ie = ht_entry_new(idem_hash, w->idem_key.ptr, w->idem_key.len, iv.data, iv.len);
        if (w->replay) {
            skv_buf_reset(w->replay);
            if (answer.len) skv_buf_append(w->replay, answer.data, answer.len);
        }
        skv_buf_free(&answer);
        if (!ie) {
            skv_buf_free(&iv);
            s->seq--; /* nothing was logged with it */
            rc = SKV_ENOMEM;
            goto out;
        }
        if (s->logged) {
            append_record(s, w->op, w->key, value, flags | WAL_FLAG_GROUP_NEXT, expires_ms, seq);
            append_record(s, SHARD_OP_PUT, w->idem_key, skv_slice_make(iv.data, iv.len), 0, w->idem_expires_ms,
                          ++s->seq);
        } else {
            ++s->seq;
        }
        skv_buf_free(&iv);
        ie->version = s->seq;
        ie->expires_ms = w->idem_expires_ms;
    } else if (s->logged) {
        append_record(s, w->op, w->key, value, flags, expires_ms, seq);
    }
    if (e) {
        e->flags = w->op == SHARD_OP_PUT ? flags : SHARD_TOMBSTONE;
        e->expires_ms = w->op == SHARD_OP_PUT ? expires_ms : 0;
        e->version = seq;
        place_entry(s, e, goes_pending);
        e = NULL;
    } else {
        table_remove(s, key_hash, w->key.ptr, w->key.len);
    }
    if (ie) {
        place_entry(s, ie, goes_pending);
        ie = NULL;
    }
    if (goes_pending && !w->async && w->waiter) {
        add_waiter(s, w->waiter, s->seq);
        res->pending = 1;
    }
    if (s->logged && s->kick) s->kick(s->kick_arg, s);
out:
    atomic_store_explicit(&s->seq_published, s->seq, memory_order_release);
    pthread_mutex_unlock(&s->lock);
    free(e);
    return rc;
}

int shard_peek_size(shard *s, uint64_t key_hash, skv_slice key, size_t *size) {
    pthread_mutex_lock(&s->lock);
    ht_entry *pend;
    ht_entry *e = newest(s, key_hash, key, &pend);
    if (e) *size = ht_entry_size(e);
    pthread_mutex_unlock(&s->lock);
    return e ? SKV_OK : SKV_ENOTFOUND;
}

int shard_get(shard *s, uint64_t key_hash, skv_slice key, shard_read_fn fn, void *arg) {
    pthread_mutex_lock(&s->lock);
    ht_entry *e = ht_find(s->table, key_hash, key.ptr, key.len);
    if (e && shard_entry_expired(e, s->clock_ms())) {
        expire_entry(s, e);
        e = NULL;
    }
    if (e) {
        e->atime = lru_clock(s);
        fn(arg, e);
    }
    pthread_mutex_unlock(&s->lock);
    stat_inc(e ? &s->hits : &s->misses);
    return e ? SKV_OK : SKV_ENOTFOUND;
}

typedef struct expire_ctx {
    uint64_t now;
    ht_entry *found[64];
    size_t n;
} expire_ctx;

static void collect_expired(void *arg, const ht_entry *e) {
    expire_ctx *c = arg;
    if (c->n < sizeof c->found / sizeof c->found[0] && shard_entry_expired(e, c->now)) c->found[c->n++] = (ht_entry *)e;
}

size_t shard_expire_some(shard *s, uint64_t *cursor, size_t max_buckets) {
    size_t removed = 0;
    pthread_mutex_lock(&s->lock);
    expire_ctx c;
    c.now = s->clock_ms();
    for (size_t i = 0; i < max_buckets; i++) {
        c.n = 0;
        /* ht_scan must not see the table change: collect, then remove; a
         * position with more expired entries than fit is visited again. */
        uint64_t next = ht_scan(s->table, *cursor, collect_expired, &c);
        for (size_t j = 0; j < c.n; j++) expire_entry(s, c.found[j]);
        removed += c.n;
        if (c.n < sizeof c.found / sizeof c.found[0]) *cursor = next;
        if (*cursor == 0) break;
    }
    pthread_mutex_unlock(&s->lock);
    return removed;
}

#define EVICT_MAX_WALK 65536 /* table positions one eviction may visit looking for a user key */

typedef struct lru_ctx {
    ht_entry *victim;
    size_t seen, samples;
} lru_ctx;

static void lru_consider(void *arg, const ht_entry *e) {
    lru_ctx *c = arg;
    if (c->seen >= c->samples || is_internal(e)) return;
    c->seen++;
    if (!c->victim || e->atime < c->victim->atime) c->victim = (ht_entry *)e;
}

int shard_evict_one(shard *s, size_t samples, uint64_t random, uint64_t *freed) {
    *freed = 0;
    pthread_mutex_lock(&s->lock);
    lru_ctx c = { NULL, 0, samples ? samples : 1 };
    if (shard_user_keys(s) == 0) { /* nothing evictable: do not walk the table */
        pthread_mutex_unlock(&s->lock);
        return SKV_ENOTFOUND;
    }
    /* Start at a random cursor position; wrap once.  Past the usual bound,
     * keep walking until a user key is found (they may be sparse among
     * internal records), but at most EVICT_MAX_WALK positions: a write must
     * not pay for a walk over the whole table. */
    uint64_t cursor = random, start_wraps = 0;
    for (size_t visited = 0;
         c.seen < c.samples && (visited < 4 * c.samples + 64 || (!c.victim && visited < EVICT_MAX_WALK));
         visited++) {
        cursor = ht_scan(s->table, cursor, lru_consider, &c);
        if (cursor == 0 && ++start_wraps > 1) break;
    }
    if (!c.victim) {
        pthread_mutex_unlock(&s->lock);
        return SKV_ENOTFOUND;
    }
    ht_entry *v = c.victim;
    *freed = ht_entry_size(v);
    uint64_t h = v->hash;
    char *key = skv_try_malloc(v->key_len);
    if (!key) {
        pthread_mutex_unlock(&s->lock);
        return SKV_ENOMEM;
    }
    memcpy(key, ht_entry_key(v), v->key_len);
    shard_write w = { 0 };
    w.op = SHARD_OP_DELETE;
    w.key = skv_slice_make(key, v->key_len);
    w.async = 1;
    pthread_mutex_unlock(&s->lock);
    /* The victim may have been rewritten meanwhile: this then deletes the
     * fresher value, which an LRU cache policy allows. */
    shard_result res;
    int rc = shard_apply(s, h, &w, &res);
    free(key);
    if (rc == SKV_OK) stat_inc(&s->evicted);
    return rc == SKV_ENOTFOUND ? SKV_OK : rc;
}

typedef struct list_ctx {
    size_t limit, seen;
    shard_read_fn fn;
    void *arg;
} list_ctx;

static void list_one(void *arg, const ht_entry *e) {
    list_ctx *c = arg;
    if (c->seen < c->limit) c->fn(c->arg, e);
    c->seen++;
}

size_t shard_list(shard *s, size_t limit, shard_read_fn fn, void *arg) {
    list_ctx c = { limit, 0, fn, arg };
    if (limit == 0) return 0;
    pthread_mutex_lock(&s->lock);
    uint64_t cursor = 0;
    do {
        cursor = ht_scan(s->table, cursor, list_one, &c);
    } while (cursor != 0 && c.seen < limit);
    pthread_mutex_unlock(&s->lock);
    return c.seen < limit ? c.seen : limit;
}

/* ---- commit side ------------------------------------------------------------------------- */

void shard_take_batch(shard *s, skv_buf *out, uint64_t *last_seq, shard_waiter **waiters) {
    skv_buf tmp = *out;
    *out = s->buf;
    s->buf = tmp;
    skv_buf_reset(&s->buf);
    *last_seq = s->buf_last_seq;
    *waiters = s->waiters;
    s->waiters = s->waiters_tail = NULL;
}

/* Calls fn for every record of an encoded batch (it was produced by
 * append_record, so it decodes). */
static void each_record(const skv_buf *batch, void (*fn)(shard *s, const wal_record *r), shard *s) {
    size_t off = 0;
    while (off < batch->len) {
        wal_record r;
        size_t used = 0;
        if (wal_record_decode(batch->data + off, batch->len - off, &r, &used) != SKV_OK) abort();
        fn(s, &r);
        off += used;
    }
}

/* The pending entry written by record r (the key's newest or a superseded
 * one), unlinked, or NULL when r was applied at once. */
static ht_entry *take_pending(shard *s, const wal_record *r) {
    uint64_t key_hash = XXH3_64bits(r->key.ptr, r->key.len), h = key_hash;
    ht_entry *e = ht_find(s->pending, h, r->key.ptr, r->key.len);
    if (!e) return NULL; /* a superseded entry always has a newer one for its key */
    if (e->version != r->seq) {
        h = superseded_hash(key_hash, r->seq);
        if (!ht_find(s->pending, h, r->key.ptr, r->key.len)) return NULL;
    }
    pending_adjust(s, -1);
    e = ht_remove(s->pending, h, r->key.ptr, r->key.len);
    e->hash = key_hash;
    return e;
}

static void commit_one(shard *s, const wal_record *r) {
    ht_entry *e = take_pending(s, r);
    if (e) table_install(s, e);
}

void shard_commit_batch(shard *s, const skv_buf *batch) {
    if (ht_count(s->pending)) each_record(batch, commit_one, s);
}

static void drop_one(shard *s, const wal_record *r) { free(take_pending(s, r)); }

shard_waiter *shard_discard_pending(shard *s, const skv_buf *batch) {
    each_record(batch, drop_one, s);
    each_record(&s->buf, drop_one, s);
    skv_buf_reset(&s->buf);
    shard_waiter *w = s->waiters;
    s->waiters = s->waiters_tail = NULL;
    return w;
}

void shard_requeue_batch(shard *s, skv_buf *batch, uint64_t last_seq) {
    if (s->buf.len) skv_buf_append(batch, s->buf.data, s->buf.len);
    else s->buf_last_seq = last_seq;
    skv_buf tmp = s->buf;
    s->buf = *batch;
    *batch = tmp;
    skv_buf_reset(batch);
}

int shard_replay(shard *s, const wal_record *r) {
    uint64_t h = XXH3_64bits(r->key.ptr, r->key.len);
    ht_entry *e = r->op == WAL_OP_PUT ? ht_entry_new(h, r->key.ptr, r->key.len, r->value.ptr, r->value.len)
                                      : ht_entry_new(h, r->key.ptr, r->key.len, "", 0);
    if (!e) return SKV_ENOMEM;
    e->flags = r->op == WAL_OP_PUT ? (r->flags & ~WAL_FLAG_GROUP_NEXT) : SHARD_TOMBSTONE;
    e->expires_ms = r->op == WAL_OP_PUT ? r->expires_ms : 0;
    e->version = r->seq;
    /* An expired record deletes what it replaced: the key never comes back. */
    if (shard_entry_expired(e, s->clock_ms())) e->flags = SHARD_TOMBSTONE;
    /* Uncontended during recovery, but /shards may read meanwhile. */
    pthread_mutex_lock(&s->lock);
    if (r->seq > s->seq) s->seq = r->seq;
    atomic_store_explicit(&s->seq_published, s->seq, memory_order_release);
    table_install(s, e);
    pthread_mutex_unlock(&s->lock);
    return SKV_OK;
}

/* ---- invariants -------------------------------------------------------------------------- */

typedef struct check_ctx {
    uint64_t n, bytes, max_version;
    int tombstones;
} check_ctx;

static void check_one(void *arg, const ht_entry *e) {
    check_ctx *c = arg;
    c->n++;
    c->bytes += ht_entry_size(e);
    if (e->version > c->max_version) c->max_version = e->version;
    if (e->flags & SHARD_TOMBSTONE) c->tombstones++;
}

int shard_check(shard *s) {
    check_ctx c = { 0, 0, 0, 0 };
    pthread_mutex_lock(&s->lock);
    /* No writes happen while we hold the lock, so the table does not resize
     * under the scan and every entry is visited exactly once. */
    uint64_t cursor = 0;
    do {
        cursor = ht_scan(s->table, cursor, check_one, &c);
    } while (cursor != 0);
    int ok = ht_check(s->table) && c.n == ht_count(s->table) && c.n == shard_keys(s) &&
             c.bytes == shard_bytes(s) && c.max_version <= s->seq && c.tombstones == 0;
    pthread_mutex_unlock(&s->lock);
    return ok;
}
