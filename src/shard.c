#include "shard.h"

#include <stdlib.h>
#include <xxhash.h>

#include "err.h"

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
    atomic_init(&s->keys, 0);
    atomic_init(&s->bytes, 0);
    atomic_init(&s->pending_count, 0);
}

void shard_destroy(shard *s) {
    ht_free(s->table);
    ht_free(s->pending);
    s->table = s->pending = NULL;
    skv_buf_free(&s->buf);
    pthread_mutex_destroy(&s->lock);
}

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
static void table_install(shard *s, ht_entry *e) {
    const char *key = ht_entry_key(e);
    ht_entry *cur = ht_find(s->table, e->hash, key, e->key_len);
    if (cur && cur->version >= e->version) {
        free(e);
        return;
    }
    if (e->flags & SHARD_TOMBSTONE) {
        if (cur) {
            ht_entry *old = ht_remove(s->table, e->hash, key, e->key_len);
            account(s, -1, -(int64_t)ht_entry_size(old));
            free(old);
        }
        free(e);
        return;
    }
    ht_entry *old = ht_put(s->table, e);
    account(s, old ? 0 : 1, (int64_t)ht_entry_size(e) - (old ? (int64_t)ht_entry_size(old) : 0));
    free(old);
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
    if (*pend) return ((*pend)->flags & SHARD_TOMBSTONE) ? NULL : *pend;
    return ht_find(s->table, h, key.ptr, key.len);
}

static int cond_holds(const shard_write *w, const ht_entry *cur) {
    switch (w->cond) {
    case SHARD_COND_VERSION: return cur && cur->version == w->expected_version;
    case SHARD_COND_EXISTS: return cur != NULL;
    case SHARD_COND_ABSENT: return cur == NULL;
    default: return 1;
    }
}

static void append_record(shard *s, const shard_write *w, uint64_t seq) {
    wal_record r = { 0 };
    r.seq = seq;
    r.op = w->op == SHARD_OP_PUT ? WAL_OP_PUT : WAL_OP_DELETE;
    r.flags = w->op == SHARD_OP_PUT ? (w->flags & 0xffu) : 0;
    r.key = w->key;
    if (w->op == SHARD_OP_PUT) r.value = w->value;
    wal_record_encode(&s->buf, &r);
    s->buf_last_seq = seq;
}

int shard_apply(shard *s, uint64_t key_hash, const shard_write *w, shard_result *res) {
    int rc = SKV_OK;
    res->version = 0;
    res->created = 0;
    res->pending = 0;
    pthread_mutex_lock(&s->lock);
    if (s->state != SHARD_OK) {
        rc = s->state == SHARD_NOSPACE ? SKV_ENOSPACE : SKV_EIO;
        goto out;
    }
    ht_entry *pend;
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
    /* Pending when the disk must come first, or when an older pending write
     * of this key must be overtaken in order. */
    int goes_pending = s->logged && s->sync_writes && (!w->async || pend);
    /* Allocate before taking a seq or logging anything: an ENOMEM changes
     * nothing.  An immediate delete allocates nothing, so deleting works
     * under memory pressure. */
    ht_entry *e = NULL;
    if (w->op == SHARD_OP_PUT)
        e = ht_entry_new(key_hash, w->key.ptr, w->key.len, w->value.ptr, w->value.len);
    else if (goes_pending)
        e = ht_entry_new(key_hash, w->key.ptr, w->key.len, "", 0);
    if (!e && (w->op == SHARD_OP_PUT || goes_pending)) {
        rc = SKV_ENOMEM;
        goto out;
    }
    uint64_t seq = ++s->seq;
    res->version = seq;
    res->created = w->op == SHARD_OP_PUT && !cur;
    if (s->logged) append_record(s, w, seq);
    if (e) {
        e->flags = w->op == SHARD_OP_PUT ? w->flags : SHARD_TOMBSTONE;
        e->version = seq;
    }
    if (goes_pending) {
        ht_entry *old = ht_put(s->pending, e);
        if (old) { /* keep it until its batch is durable (superseded_hash) */
            old->hash = superseded_hash(old->hash, old->version);
            free(ht_put(s->pending, old));
        }
        pending_adjust(s, 1);
        if (!w->async && w->waiter) {
            w->waiter->seq = seq;
            w->waiter->status = 0;
            w->waiter->next = NULL;
            if (s->waiters_tail) s->waiters_tail->next = w->waiter;
            else s->waiters = w->waiter;
            s->waiters_tail = w->waiter;
            res->pending = 1;
        }
    } else if (e) {
        table_install(s, e);
    } else {
        ht_entry *old = ht_remove(s->table, key_hash, w->key.ptr, w->key.len);
        if (old) {
            account(s, -1, -(int64_t)ht_entry_size(old));
            free(old);
        }
    }
    if (s->logged && s->kick) s->kick(s->kick_arg, s);
out:
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int shard_get(shard *s, uint64_t key_hash, skv_slice key, shard_read_fn fn, void *arg) {
    pthread_mutex_lock(&s->lock);
    ht_entry *e = ht_find(s->table, key_hash, key.ptr, key.len);
    if (e) fn(arg, e);
    pthread_mutex_unlock(&s->lock);
    return e ? SKV_OK : SKV_ENOTFOUND;
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
    e->flags = r->op == WAL_OP_PUT ? r->flags : SHARD_TOMBSTONE;
    e->version = r->seq;
    /* Uncontended during recovery, but /shards may read meanwhile. */
    pthread_mutex_lock(&s->lock);
    if (r->seq > s->seq) s->seq = r->seq;
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
