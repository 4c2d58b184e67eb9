#include "shard.h"

#include <stdlib.h>

#include "err.h"

void shard_init(shard *s, uint32_t id) {
    pthread_mutex_init(&s->lock, NULL);
    s->table = ht_new();
    s->seq = 0;
    s->id = id;
    atomic_init(&s->keys, 0);
    atomic_init(&s->bytes, 0);
}

void shard_destroy(shard *s) {
    ht_free(s->table);
    s->table = NULL;
    pthread_mutex_destroy(&s->lock);
}

/* Publishes the accounting after a change of delta_keys / delta_bytes. */
static void account(shard *s, int64_t delta_keys, int64_t delta_bytes) {
    uint64_t k = atomic_load_explicit(&s->keys, memory_order_relaxed);
    uint64_t b = atomic_load_explicit(&s->bytes, memory_order_relaxed);
    atomic_store_explicit(&s->keys, k + (uint64_t)delta_keys, memory_order_relaxed);
    atomic_store_explicit(&s->bytes, b + (uint64_t)delta_bytes, memory_order_relaxed);
}

static int cond_holds(const shard_write *w, const ht_entry *cur) {
    switch (w->cond) {
    case SHARD_COND_VERSION: return cur && cur->version == w->expected_version;
    case SHARD_COND_EXISTS: return cur != NULL;
    case SHARD_COND_ABSENT: return cur == NULL;
    default: return 1;
    }
}

static int apply_put(shard *s, uint64_t key_hash, const shard_write *w, shard_result *res) {
    ht_entry *e = ht_entry_new(key_hash, w->key.ptr, w->key.len, w->value.ptr, w->value.len);
    if (!e) return SKV_ENOMEM;
    e->flags = w->flags;
    e->version = ++s->seq;
    ht_entry *old = ht_put(s->table, e);
    res->version = e->version;
    res->created = old == NULL;
    int64_t dbytes = (int64_t)ht_entry_size(e) - (old ? (int64_t)ht_entry_size(old) : 0);
    account(s, old ? 0 : 1, dbytes);
    free(old);
    return SKV_OK;
}

int shard_apply(shard *s, uint64_t key_hash, const shard_write *w, shard_result *res) {
    int rc = SKV_OK;
    res->version = 0;
    res->created = 0;
    pthread_mutex_lock(&s->lock);
    ht_entry *cur = ht_find(s->table, key_hash, w->key.ptr, w->key.len);
    if (!cond_holds(w, cur)) {
        res->version = cur ? cur->version : 0;
        rc = SKV_EPRECOND;
        goto out;
    }
    if (w->op == SHARD_OP_PUT) {
        rc = apply_put(s, key_hash, w, res);
    } else if (!cur) {
        rc = SKV_ENOTFOUND;
    } else {
        ht_entry *old = ht_remove(s->table, key_hash, w->key.ptr, w->key.len);
        res->version = ++s->seq;
        account(s, -1, -(int64_t)ht_entry_size(old));
        free(old);
    }
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

typedef struct check_ctx {
    uint64_t n, bytes, max_version;
} check_ctx;

static void check_one(void *arg, const ht_entry *e) {
    check_ctx *c = arg;
    c->n++;
    c->bytes += ht_entry_size(e);
    if (e->version > c->max_version) c->max_version = e->version;
}

int shard_check(shard *s) {
    check_ctx c = { 0, 0, 0 };
    pthread_mutex_lock(&s->lock);
    /* No writes happen while we hold the lock, so the table does not resize
     * under the scan and every entry is visited exactly once. */
    uint64_t cursor = 0;
    do {
        cursor = ht_scan(s->table, cursor, check_one, &c);
    } while (cursor != 0);
    int ok = ht_check(s->table) && c.n == ht_count(s->table) && c.n == shard_keys(s) &&
             c.bytes == shard_bytes(s) && c.max_version <= s->seq;
    pthread_mutex_unlock(&s->lock);
    return ok;
}
