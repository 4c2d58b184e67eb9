/*
 * counter — sharded counters: the routes and the increment paths.  The
 * storage format and the budget invariant are in counter.h; the routes and
 * the reasoning in docs/counters.md.
 *
 *   POST /v1/counters/{name}/incr?by=N, /decr?by=N   add or subtract (creates the counter) -> new total
 *   GET|HEAD /v1/counters/{name}                      value, k, shards, per sub-counter values
 *   PUT /v1/counters/{name} {"k": K}                  create with an explicit K
 *   DELETE /v1/counters/{name}
 *   POST /counter {"name"}, PUT /counter/increment|decrement {"counter_id"},
 *   GET /counter?counter_id=, GET /counter/value?counter_id=          (seed 002)
 *
 * Which sub-counter an increment lands on.  With an Idempotency-Key: the
 * first element below K of the key's chain (counter_idem_index), which
 * does not depend on K; a request first looks for a remembered answer on
 * every shard of the chain (idem_replay), so a retry is answered even after
 * the counter was deleted and created again with another K.  Otherwise the
 * worker's own: worker w owns the sub-counters i with i % T == w (T
 * workers; i = w % K when K <= T) and rotates over them, and when that
 * shard's lock is busy (pthread_mutex_trylock) the next sub-counter whose
 * lock is free is taken instead; at --max-keys, one that already has a
 * record (prefer_stored).
 *
 * Fast and slow paths.  Every change to a counter's sub-counters holds the
 * counter's stripe lock (a writer-preferring rwlock chosen by the name
 * hash): shared for the fast path, exclusive for the slow path, creation
 * and deletion.  The fast path reads the definition (visible, i.e.
 * durable) and the newest state of every sub-counter (pending writes
 * included: "peek"), and applies delta to sub-counter i when |delta| <=
 * FAST_DELTA_MAX and the new value stays GUARD = (T + 1) * FAST_DELTA_MAX
 * inside i's budget: at most T fast increments are in flight at once (one
 * per worker, each between its peek and its write), so the exact check in
 * the compute callback, under the shard lock, then never fails.  The slow
 * path holds the lock exclusively; when the change fits its sub-counter as
 * the fast path's would (a creation, a definition still pending) it is
 * applied at once, else it plans a rebalance (counter_plan), writes the
 * budget shrinks and waits until they are durable (--fsync always: under
 * everysec|never nothing waits for the disk), then writes the grows and
 * finally the change itself: any mix of visible or recovered states keeps
 * the sum of the budgets within int64.  Its waits block the worker thread
 * for a group commit; it runs near the int64 limits, for |delta| >
 * FAST_DELTA_MAX, on creation and on deletion.
 *
 * Durability of a lazily created counter: the increment that creates it
 * waits (blocking, exclusive lock held) until the definition is durable
 * before it writes a sub-counter, so an acknowledged increment never hangs
 * off a definition a crash could lose.
 *
 * Deletion writes the definition's delete (the answer write), nothing
 * else: sub-counters deleted on other shards could be durable before it
 * and bring the counter back with a partial value after a crash or a
 * failed write.  The left-overs count as absent for another generation, a
 * re-created counter overwrites them, and counter_reclaim_task frees them
 * (and the id record) once the definition's delete is durable.
 *
 * Limits: a request that writes several records (a creation, a rebalance
 * that writes sub-counters for the first time) is checked once, for every
 * record it adds, before it writes anything (admit_adds), so a refused
 * request (507 memory_limit) changes nothing.  Rewrites of stored records
 * add nothing and are never refused.
 */
#include "counter.h"

#include <assert.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "api_internal.h"
#include "commit.h"
#include "err.h"
#include "log.h"
#include "mem.h"
#include "sweeper.h"

#define FAST_DELTA_MAX (INT64_C(1) << 40)
#define STRIPES 64

/* ---- pure helpers ----------------------------------------------------------------------------- */

void counter_default_budget(uint32_t k, uint32_t index, int64_t *lo, int64_t *hi) {
    const uint64_t up = (uint64_t)INT64_MAX, down = (uint64_t)1 << 63; /* |INT64_MIN| */
    *hi = (int64_t)(up / k + (index < up % k ? 1 : 0));
    uint64_t d = down / k + (index < down % k ? 1 : 0);
    *lo = d == down ? INT64_MIN : -(int64_t)d;
}

size_t counter_i128_format(__int128 v, char *out) {
    char tmp[48];
    size_t n = 0;
    unsigned __int128 u = v < 0 ? (unsigned __int128)0 - (unsigned __int128)v : (unsigned __int128)v;
    do {
        tmp[n++] = (char)('0' + (int)(u % 10));
        u /= 10;
    } while (u);
    size_t len = 0;
    if (v < 0) out[len++] = '-';
    while (n) out[len++] = tmp[--n];
    out[len] = '\0';
    return len;
}

static int parse_hex16(skv_slice s, uint64_t *out) {
    if (s.len != 16) return SKV_EINVAL;
    uint64_t v = 0;
    for (size_t i = 0; i < 16; i++) {
        char ch = s.ptr[i];
        int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
        if (d < 0) return SKV_EINVAL;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return SKV_OK;
}

/* Splits s at single spaces into exactly n fields; 0 or SKV_EINVAL. */
static int split_fields(skv_slice s, skv_slice *f, size_t n) {
    size_t start = 0, got = 0;
    for (size_t i = 0; i <= s.len; i++) {
        if (i < s.len && s.ptr[i] != ' ') continue;
        if (got == n || i == start) return SKV_EINVAL;
        f[got++] = skv_slice_make(s.ptr + start, i - start);
        start = i + 1;
    }
    return got == n ? SKV_OK : SKV_EINVAL;
}

int counter_sub_parse(skv_slice text, counter_sub *out) {
    skv_slice f[4];
    if (split_fields(text, f, 4) != SKV_OK) return SKV_EINVAL;
    if (skv_slice_to_i64(f[0], &out->value) != SKV_OK || parse_hex16(f[1], &out->gen) != SKV_OK ||
        skv_slice_to_i64(f[2], &out->lo) != SKV_OK || skv_slice_to_i64(f[3], &out->hi) != SKV_OK)
        return SKV_EINVAL;
    return SKV_OK;
}

void counter_sub_format(const counter_sub *s, skv_buf *out) {
    skv_buf_printf(out, "%lld %016llx %lld %lld", (long long)s->value, (unsigned long long)s->gen, (long long)s->lo,
                   (long long)s->hi);
}

/* "name=<digits>" into a u64; 0 or SKV_EINVAL. */
static int field_u64(skv_slice f, const char *name, uint64_t *out) {
    size_t n = strlen(name);
    if (f.len <= n + 1 || memcmp(f.ptr, name, n) != 0 || f.ptr[n] != '=') return SKV_EINVAL;
    return skv_slice_to_u64(skv_slice_make(f.ptr + n + 1, f.len - n - 1), out);
}

static int field_hex(skv_slice f, const char *name, uint64_t *out) {
    size_t n = strlen(name);
    if (f.len <= n + 1 || memcmp(f.ptr, name, n) != 0 || f.ptr[n] != '=') return SKV_EINVAL;
    return parse_hex16(skv_slice_make(f.ptr + n + 1, f.len - n - 1), out);
}

int counter_def_parse(skv_slice text, uint32_t nshards, counter_def *out) {
    skv_slice f[4];
    uint64_t k, base;
    if (split_fields(text, f, 4) != SKV_OK || field_u64(f[0], "k", &k) != SKV_OK ||
        field_u64(f[1], "base", &base) != SKV_OK || field_hex(f[2], "gen", &out->gen) != SKV_OK ||
        field_hex(f[3], "id", &out->id) != SKV_OK)
        return SKV_EINVAL;
    if (k < 1 || k > nshards || base >= nshards) return SKV_EINVAL;
    out->k = (uint32_t)k;
    out->base = (uint32_t)base;
    return SKV_OK;
}

void counter_def_format(const counter_def *d, skv_buf *out) {
    skv_buf_printf(out, "k=%u base=%u gen=%016llx id=%016llx", d->k, d->base, (unsigned long long)d->gen,
                   (unsigned long long)d->id);
}

/* Gives out up to room[j] - given[j] of amount to each j, evenly first, then
 * whatever is left to anyone with room. */
static void spread(unsigned __int128 amount, uint32_t k, const unsigned __int128 *room, unsigned __int128 *given) {
    unsigned __int128 share = amount / k, rem = amount % k, left = 0;
    for (uint32_t j = 0; j < k; j++) {
        unsigned __int128 want = share + (j < rem ? 1 : 0);
        given[j] = want < room[j] ? want : room[j];
        left += want - given[j];
    }
    for (uint32_t j = 0; j < k && left; j++) {
        unsigned __int128 more = room[j] - given[j];
        if (more > left) more = left;
        given[j] += more;
        left -= more;
    }
}

int counter_plan(const counter_sub *subs, uint32_t k, int64_t delta, int fixed, uint32_t pref, uint32_t *index_out,
                 int64_t *lo, int64_t *hi) {
    __int128 total = 0;
    for (uint32_t j = 0; j < k; j++) total += subs[j].value;
    __int128 after = total + delta;
    if ((delta > 0 && after > INT64_MAX) || (delta < 0 && after < INT64_MIN)) return SKV_ERANGE;
    uint32_t index = k;
    for (uint32_t step = 0; step < (fixed ? 1u : k); step++) {
        uint32_t j = (pref + step) % k;
        int64_t nv;
        if (!__builtin_add_overflow(subs[j].value, delta, &nv)) {
            index = j;
            break;
        }
    }
    if (index == k) return SKV_ERANGE;
    /* Bracket old and new values, then split the remaining room. */
    __int128 top_sum = 0, bot_sum = 0;
    for (uint32_t j = 0; j < k; j++) {
        int64_t v = subs[j].value, nv = j == index ? v + delta : v;
        hi[j] = v > nv ? v : nv;
        lo[j] = v < nv ? v : nv;
        top_sum += hi[j];
        bot_sum += lo[j];
    }
    __int128 up = (__int128)INT64_MAX - top_sum, down = bot_sum - (__int128)INT64_MIN;
    unsigned __int128 *room = skv_calloc(k, sizeof *room), *given = skv_calloc(k, sizeof *given);
    for (uint32_t j = 0; j < k; j++) room[j] = (unsigned __int128)((__int128)INT64_MAX - hi[j]);
    spread(up > 0 ? (unsigned __int128)up : 0, k, room, given);
    for (uint32_t j = 0; j < k; j++) hi[j] = (int64_t)((__int128)hi[j] + (__int128)given[j]);
    for (uint32_t j = 0; j < k; j++) room[j] = (unsigned __int128)((__int128)lo[j] - (__int128)INT64_MIN);
    spread(down > 0 ? (unsigned __int128)down : 0, k, room, given);
    for (uint32_t j = 0; j < k; j++) lo[j] = (int64_t)((__int128)lo[j] - (__int128)given[j]);
    free(room);
    free(given);
    *index_out = index;
    return SKV_OK;
}

/* The next element of an Idempotency-Key's chain: uniform below x (x > 0). */
static uint32_t chain_step(uint64_t key_hash, uint32_t step, uint32_t x) {
    unsigned char in[12];
    for (int i = 0; i < 8; i++) in[i] = (unsigned char)(key_hash >> (8 * i));
    for (int i = 0; i < 4; i++) in[8 + i] = (unsigned char)(step >> (8 * i));
    return (uint32_t)(XXH3_64bits(in, sizeof in) % x);
}

uint32_t counter_idem_index(uint64_t key_hash, uint32_t nshards, uint32_t k) {
    assert(k >= 1 && k <= nshards); /* the chain ends at 0 < k */
    uint32_t x = (uint32_t)(key_hash % nshards);
    for (uint32_t step = 1; x >= k; step++) x = chain_step(key_hash, step, x);
    return x;
}

uint32_t counter_idem_chain(uint64_t key_hash, uint32_t nshards, uint32_t *out) {
    uint32_t x = (uint32_t)(key_hash % nshards), len = 0;
    for (uint32_t step = 1;; step++) {
        out[len++] = x;
        if (x == 0) return len;
        x = chain_step(key_hash, step, x);
    }
}

/* ---- stripe locks ----------------------------------------------------------------------------- */

static pthread_rwlock_t stripes[STRIPES];
static pthread_once_t stripes_once = PTHREAD_ONCE_INIT;

static void stripes_init(void) {
    pthread_rwlockattr_t a;
    pthread_rwlockattr_init(&a);
    /* Writer preference: a slow path is not starved by a stream of increments. */
    pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    for (int i = 0; i < STRIPES; i++) pthread_rwlock_init(&stripes[i], &a);
    pthread_rwlockattr_destroy(&a);
}

static pthread_rwlock_t *stripe_of(uint64_t name_hash) {
    pthread_once(&stripes_once, stripes_init);
    return &stripes[(name_hash >> 32) % STRIPES];
}

/* ---- waiting for the disk (slow path only) ----------------------------------------------------- */

/* A shard waiter the worker thread blocks on.  base must stay first. */
typedef struct sync_wait {
    shard_waiter base;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    int registered; /* the write went pending with this waiter */
} sync_wait;

static void sync_deliver(shard_waiter *sw) {
    sync_wait *s = (sync_wait *)sw;
    pthread_mutex_lock(&s->mu);
    s->done = 1;
    pthread_cond_signal(&s->cv); /* under the mutex: the waiter frees s once it sees done */
    pthread_mutex_unlock(&s->mu);
}

static void sync_wait_init(sync_wait *s) {
    memset(s, 0, sizeof *s);
    s->base.deliver = sync_deliver;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
}

/* Waits for a registered write; returns its status (0, SKV_ENOSPACE,
 * SKV_EIO) and releases s. */
static int sync_wait_finish(sync_wait *s) {
    int status = 0;
    if (s->registered) {
        pthread_mutex_lock(&s->mu);
        while (!s->done) pthread_cond_wait(&s->cv, &s->mu);
        pthread_mutex_unlock(&s->mu);
        status = s->base.status;
    }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    return status;
}

/* ---- one request ------------------------------------------------------------------------------ */

typedef struct ctr {
    api_worker *w;
    const http_request *req;
    skv_slice body;
    reply *r;
    store *st;
    int route;
    int seed;          /* seed 002 answer shapes */
    skv_buf name;      /* the counter's name */
    uint64_t name_hash;
    skv_buf key;       /* scratch: an internal key */
    skv_buf val;       /* scratch: a value read or written */
    skv_slice idem;    /* the Idempotency-Key (ptr NULL when absent) */
} ctr;

static skv_slice name_of(const ctr *c) { return skv_slice_make(c->name.data ? c->name.data : "", c->name.len); }

static void set_name(ctr *c, skv_slice name) {
    skv_buf_reset(&c->name);
    skv_buf_append(&c->name, name.ptr, name.len);
    c->name_hash = XXH3_64bits(name.ptr, name.len);
}

static uint32_t base_of(const ctr *c) { return (uint32_t)(c->name_hash % c->st->nshards); }

static skv_slice meta_key(ctr *c) {
    return store_internal_key(&c->key, STORE_NS_COUNTER_META, base_of(c), c->name.data, c->name.len);
}

/* The seed id record's key: NUL + 16 hex (a name never holds a NUL byte). */
static skv_slice id_key_in(skv_buf *out, uint32_t nshards, uint64_t id) {
    char n[18];
    n[0] = '\0';
    snprintf(n + 1, sizeof n - 1, "%016llx", (unsigned long long)id);
    return store_internal_key(out, STORE_NS_COUNTER_META, (uint32_t)(id % nshards), n, 17);
}

static skv_slice id_key(ctr *c, uint64_t id) { return id_key_in(&c->key, c->st->nshards, id); }

static skv_slice sub_key(ctr *c, const counter_def *d, uint32_t index) {
    return store_internal_key(&c->key, STORE_NS_COUNTER, counter_sub_shard(d, index, c->st->nshards), c->name.data,
                              c->name.len);
}

/* ---- shard access ----------------------------------------------------------------------------- */

typedef struct copy_ctx {
    skv_buf *out;
    uint64_t version;
    int found;
} copy_ctx;

static void copy_entry(void *arg, const ht_entry *e) {
    copy_ctx *cc = arg;
    skv_buf_reset(cc->out);
    skv_buf_append(cc->out, ht_entry_value(e), e->val_len);
    cc->version = e->version;
    cc->found = 1;
}

/* The visible (durable) value of key, on shard id, into cc; 0 or SKV_ENOTFOUND. */
static int get_visible(store *st, uint32_t id, uint64_t h, skv_slice key, copy_ctx *cc) {
    return shard_get(store_shard(st, id), h, key, copy_entry, cc);
}

/* The compute callback of a peek: copies the newest entry and refuses the write. */
static int peek_compute(void *arg, const ht_entry *cur, skv_buf *value, uint32_t *flags, uint64_t *expires_ms) {
    (void)value, (void)flags, (void)expires_ms;
    if (cur) copy_entry(arg, cur);
    return SKV_EEXISTS;
}

/* The newest value of key, writes still waiting for the disk included:
 * shard_apply with a compute callback that copies the entry and refuses, so
 * nothing is written and no seq is used.  0 or SKV_ENOTFOUND. */
static int get_newest(store *st, uint32_t id, uint64_t h, skv_slice key, copy_ctx *cc) {
    shard_write wr = { 0 };
    wr.op = SHARD_OP_PUT;
    wr.key = key;
    wr.compute = peek_compute;
    wr.compute_arg = cc;
    shard_result res;
    int rc = shard_apply(store_shard(st, id), h, &wr, &res);
    if (rc == SKV_EEXISTS) return cc->found ? SKV_OK : SKV_ENOTFOUND;
    /* The shard refuses writes (disk full, degraded): nothing new can go
     * pending there, so the visible state is the newest that counts. */
    return get_visible(st, id, h, key, cc);
}

/* get_visible / get_newest for a request (counted in the shard metrics). */
static int read_visible(ctr *c, skv_slice key, skv_buf *out, uint64_t *version) {
    uint64_t h;
    uint32_t id = store_locate(c->st, key, &h);
    metrics_shard_op(c->w->mw, id, METRICS_OP_GET);
    copy_ctx cc = { out, 0, 0 };
    int rc = get_visible(c->st, id, h, key, &cc);
    if (version) *version = cc.version;
    return rc;
}

static int read_newest(ctr *c, skv_slice key, skv_buf *out, uint64_t *version) {
    uint64_t h;
    uint32_t id = store_locate(c->st, key, &h);
    metrics_shard_op(c->w->mw, id, METRICS_OP_GET);
    copy_ctx cc = { out, 0, 0 };
    int rc = get_newest(c->st, id, h, key, &cc);
    if (version) *version = cc.version;
    return rc;
}

/* Applies wr directly (not an answer write); with sw, the caller waits for
 * it with sync_wait_finish(sw) (always call it). */
static int write_direct(ctr *c, shard_write *wr, sync_wait *sw) {
    uint64_t h;
    uint32_t id = store_locate(c->st, wr->key, &h);
    metrics_shard_op(c->w->mw, id, wr->op == SHARD_OP_PUT ? METRICS_OP_PUT : METRICS_OP_DELETE);
    if (sw) {
        sync_wait_init(sw);
        wr->waiter = &sw->base;
    }
    shard_result res;
    int rc = shard_apply(store_shard(c->st, id), h, wr, &res);
    if (sw) sw->registered = rc == SKV_OK && res.pending;
    return rc;
}

static int put_direct(ctr *c, skv_slice key, skv_slice value, sync_wait *sw) {
    shard_write wr = { 0 };
    wr.op = SHARD_OP_PUT;
    wr.key = key;
    wr.value = value;
    return write_direct(c, &wr, sw);
}

/* ---- errors ----------------------------------------------------------------------------------- */

static void reply_not_found(ctr *c) {
    skv_slice n = name_of(c);
    reply_error(c->r, 404, "counter_not_found", "counter '%.*s' does not exist", (int)(n.len > 200 ? 200 : n.len),
                n.ptr);
}

static void reply_corrupt(ctr *c) {
    reply_error(c->r, 500, "internal", "the stored definition of this counter cannot be read");
}

static const char overflow_msg[] = "the change would take the counter (or one of its sub-counters) out of the "
                                   "64-bit signed range; nothing was changed";

/* ---- definitions ------------------------------------------------------------------------------ */

/* Reads the counter's definition: newest (pending included) or visible.
 * 0, SKV_ENOTFOUND or SKV_EINVAL (unreadable). */
static int def_load(ctr *c, int newest, counter_def *d, uint64_t *version) {
    skv_slice key = meta_key(c);
    int rc = newest ? read_newest(c, key, &c->val, version) : read_visible(c, key, &c->val, version);
    if (rc != SKV_OK) return rc;
    if (counter_def_parse(skv_slice_make(c->val.data, c->val.len), c->st->nshards, d) != SKV_OK ||
        d->base != base_of(c)) {
        log_error("counter '%.*s': unreadable definition", (int)(c->name.len > 200 ? 200 : c->name.len), c->name.data);
        return SKV_EINVAL;
    }
    return SKV_OK;
}

static _Atomic uint64_t gen_seq;

static uint64_t new_gen(const ctr *c) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t in[4] = { (uint64_t)ts.tv_sec, (uint64_t)ts.tv_nsec, atomic_fetch_add(&gen_seq, 1), c->name_hash };
    return XXH3_64bits(in, sizeof in);
}

/* The fast path's definition: visible (durable) with nothing newer pending
 * (a delete or a rewrite).  0, SKV_EAGAIN (the slow path decides) or
 * SKV_EINVAL. */
static int def_load_settled(ctr *c, counter_def *d) {
    uint64_t vnew, vvis;
    int rc = def_load(c, 1, d, &vnew);
    if (rc != SKV_OK) return rc == SKV_ENOTFOUND ? SKV_EAGAIN : rc;
    counter_def seen;
    rc = def_load(c, 0, &seen, &vvis);
    if (rc != SKV_OK) return rc == SKV_ENOTFOUND ? SKV_EAGAIN : rc;
    return vvis == vnew ? SKV_OK : SKV_EAGAIN;
}

enum def_state { DEF_ABSENT, DEF_DURABLE, DEF_PENDING };

/* Under the exclusive lock: the definition's state.  DEF_ABSENT fills *d
 * with a new definition of k sub-counters.  Returns 0 or an error of
 * def_load. */
static int def_state(ctr *c, uint32_t k, counter_def *d, int *state) {
    uint64_t vnew, vvis;
    int rc = def_load(c, 1, d, &vnew);
    if (rc == SKV_ENOTFOUND) {
        d->k = k;
        d->base = base_of(c);
        d->id = c->name_hash;
        d->gen = new_gen(c);
        *state = DEF_ABSENT;
        return SKV_OK;
    }
    if (rc != SKV_OK) return rc;
    counter_def seen;
    *state = def_load(c, 0, &seen, &vvis) == SKV_OK && vvis == vnew ? DEF_DURABLE : DEF_PENDING;
    return SKV_OK;
}

/* Writes the seed id record (before the definition, on the same shard, so a
 * durable definition implies a durable id record). */
static int id_write(ctr *c, const counter_def *d) {
    skv_slice key = id_key(c, d->id);
    return put_direct(c, key, name_of(c), NULL);
}

/* The definition's text into c->val and its key. */
static skv_slice def_text(ctr *c, const counter_def *d) {
    skv_buf_reset(&c->val);
    counter_def_format(d, &c->val);
    return skv_slice_make(c->val.data, c->val.len);
}

/* Under the exclusive lock: creates the definition (state DEF_ABSENT) or
 * rewrites it (DEF_PENDING) and waits until it is durable. */
static int def_make_durable(ctr *c, const counter_def *d, int state) {
    if (state == DEF_DURABLE) return SKV_OK;
    int rc = state == DEF_ABSENT ? id_write(c, d) : SKV_OK;
    if (rc != SKV_OK) return rc;
    skv_slice value = def_text(c, d);
    sync_wait sw;
    rc = put_direct(c, meta_key(c), value, &sw);
    int st = sync_wait_finish(&sw);
    return rc != SKV_OK ? rc : st;
}

/* ---- sub-counters ----------------------------------------------------------------------------- */

/* The state of sub-counter index from its stored text (NULL when absent). */
static void sub_resolve(const counter_def *d, uint32_t index, const char *text, size_t len, counter_sub *out) {
    if (text && counter_sub_parse(skv_slice_make(text, len), out) == SKV_OK && out->gen == d->gen) return;
    out->value = 0;
    out->gen = d->gen;
    counter_default_budget(d->k, index, &out->lo, &out->hi);
}

/* What is stored under a sub-counter's key, whatever its generation. */
typedef struct sub_seen {
    int exists; /* a record: writing it adds no key */
} sub_seen;

/* Reads the k sub-counters (newest or visible) into subs, and with seen
 * what is stored under their keys. */
static void subs_read(ctr *c, const counter_def *d, int newest, counter_sub *subs, sub_seen *seen) {
    for (uint32_t i = 0; i < d->k; i++) {
        skv_slice key = sub_key(c, d, i);
        int rc = newest ? read_newest(c, key, &c->val, NULL) : read_visible(c, key, &c->val, NULL);
        sub_resolve(d, i, rc == SKV_OK ? c->val.data : NULL, c->val.len, &subs[i]);
        if (seen) seen[i].exists = rc == SKV_OK;
    }
}

static __int128 subs_total(const counter_sub *subs, uint32_t k) {
    __int128 t = 0;
    for (uint32_t i = 0; i < k; i++) t += subs[i].value;
    return t;
}

/* ---- limits (--max-memory, --max-keys) --------------------------------------------------------- */

/* What a request will add: new records (keys) and their bytes
 * (ht_entry_size).  Rewrites of stored records
 * count nothing, as api_write_answer judges a computed rewrite (the same
 * size as the current record): a sub-counter's text that grows by a few
 * digits is never refused.  Idempotency records are not counted either
 * (as for every route). */
typedef struct adds {
    uint64_t keys;
    size_t bytes;
} adds;

/* Counts one record write: its key's length, the new value's length, and
 * whether a record is stored there already. */
static void adds_record(adds *a, size_t key_len, size_t new_len, int exists) {
    if (exists) return;
    a->bytes += sizeof(ht_entry) + key_len + new_len;
    a->keys++;
}

/* The length of s's stored text. */
static size_t sub_len(ctr *c, const counter_sub *s) {
    skv_buf_reset(&c->val);
    counter_sub_format(s, &c->val);
    return c->val.len;
}

/* Counts creating the definition d: the id record (a rewrite when one is
 * stored, e.g. left by a deleted counter) and the definition. */
static void adds_definition(ctr *c, const counter_def *d, adds *a) {
    size_t name_len = c->name.len;
    skv_slice ik = id_key(c, d->id);
    size_t ik_len = ik.len;
    int id_exists = read_newest(c, ik, &c->val, NULL) == SKV_OK;
    adds_record(a, ik_len, name_len, id_exists);
    size_t def_len = def_text(c, d).len;
    adds_record(a, meta_key(c).len, def_len, 0);
}

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Evicts one more user key (--eviction lru): sweeper_admit makes room for
 * one key, a request that adds several needs more.  0 or SKV_ENOMEM. */
static int evict_one_more(store *st, uint64_t rnd) {
    uint64_t freed;
    for (uint32_t j = 0; j < st->nshards; j++) {
        int rc = shard_evict_one(store_shard(st, (uint32_t)((rnd + j) % st->nshards)), 5, rnd >> 7, &freed);
        if (rc != SKV_ENOTFOUND) return rc == SKV_OK ? SKV_OK : SKV_ENOMEM;
    }
    return SKV_ENOMEM;
}

/*
 * The limit check of a counter request that writes several records: once,
 * before anything is written, for every record it adds.  0 when they fit
 * (after evictions under --eviction lru), else SKV_ENOMEM: nothing may be
 * written.  The node may end at --max-keys, not past it; a request that
 * adds no record is never refused.  api_write_answer checks the last write
 * again (a new record only): the records written before it leave it room.
 */
static int admit_adds(ctr *c, const adds *a) {
    const skv_config *cfg = c->w->env->cfg;
    uint64_t need = a->keys;
    if (!sweeper_limited(cfg) || need == 0) return SKV_OK;
    c->w->rnd += 0x9E3779B97F4A7C15ull;
    uint64_t rnd = c->w->rnd ^ mono_ns();
    for (uint64_t round = 0;; round++) {
        uint64_t keys, used;
        store_totals(c->st, &keys, &used);
        int keys_over = cfg->max_keys && keys + need > cfg->max_keys;
        int mem_over = cfg->max_memory && used + a->bytes > cfg->max_memory;
        if (!keys_over && !mem_over) return SKV_OK;
        if (cfg->eviction != EVICT_LRU || round > need + 1) return SKV_ENOMEM;
        rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
        /* sweeper_admit makes room for the bytes and one key; more keys one by one */
        int rc = mem_over || keys >= cfg->max_keys ? sweeper_admit(c->st, cfg, a->bytes, rnd)
                                                   : evict_one_more(c->st, rnd);
        if (rc != SKV_OK) return SKV_ENOMEM;
    }
}

/* 1 when the node is at --max-keys. */
static int at_key_limit(ctr *c) {
    size_t max = c->w->env->cfg->max_keys;
    if (!max) return 0;
    uint64_t keys, used;
    store_totals(c->st, &keys, &used);
    return keys >= max;
}

/* ---- changes: the compute callback and the answers --------------------------------------------- */

typedef struct change {
    ctr *c;
    counter_def def;
    uint32_t index;     /* the sub-counter written */
    int64_t delta;
    int set_budget;     /* slow path: the sub-counter's new budget */
    int64_t lo, hi;
    int refuse;         /* write the sub-counter unchanged and answer 409 (an idempotent refusal) */
    int created;        /* the counter was created by this request */
    __int128 others;    /* the other sub-counters, read before the write */
    int64_t new_value;  /* out: the sub-counter's new value */
} change;

/* Runs under the shard lock with the newest entry of the sub-counter. */
static int change_compute(void *arg, const ht_entry *cur, skv_buf *value, uint32_t *flags, uint64_t *expires_ms) {
    change *ch = arg;
    counter_sub s;
    sub_resolve(&ch->def, ch->index, cur ? ht_entry_value(cur) : NULL, cur ? cur->val_len : 0, &s);
    if (ch->set_budget) {
        s.lo = ch->lo;
        s.hi = ch->hi;
    }
    int64_t nv = s.value;
    if (!ch->refuse && (__builtin_add_overflow(s.value, ch->delta, &nv) || nv < s.lo || nv > s.hi)) return SKV_ERANGE;
    if (nv < s.lo || nv > s.hi) return SKV_ERANGE;
    s.value = nv;
    ch->new_value = nv;
    counter_sub_format(&s, value);
    *flags = 0;
    *expires_ms = 0;
    return SKV_OK;
}

static void append_i128(skv_buf *b, __int128 v) {
    char num[48];
    size_t n = counter_i128_format(v, num);
    skv_buf_append(b, num, n);
}

static void append_name(skv_buf *b, const ctr *c) {
    skv_buf_append(b, "\"", 1);
    skv_buf_append_json_str(b, c->name.data ? c->name.data : "", c->name.len);
    skv_buf_append(b, "\"", 1);
}

/* api_render_fn of an increment or decrement. */
static void change_render(void *arg, const shard_result *res, skv_buf *out) {
    const change *ch = arg;
    const ctr *c = ch->c;
    if (ch->refuse) {
        api_answer_begin(out, 409, 0, API_NO_SHARD);
        skv_buf_printf(out, "{\"error\":{\"code\":\"counter_overflow\",\"message\":\"%s\"}", overflow_msg);
        if (c->seed) skv_buf_printf(out, ",\"detail\":\"%s\"", overflow_msg);
        skv_buf_append_cstr(out, "}");
        return;
    }
    __int128 total = ch->others + ch->new_value;
    if (c->seed) {
        api_answer_begin(out, 200, 0, res->shard);
        skv_buf_printf(out, "{\"counter_id\":\"%016llx\",\"counter_name\":", (unsigned long long)ch->def.id);
        append_name(out, c);
        skv_buf_append_cstr(out, ",\"value\":");
        append_i128(out, total);
        skv_buf_append_cstr(out, "}");
        return;
    }
    api_answer_begin(out, ch->created ? 201 : 200, 0, res->shard);
    skv_buf_append_cstr(out, "{\"name\":");
    append_name(out, c);
    skv_buf_append_cstr(out, ",\"value\":");
    append_i128(out, total);
    skv_buf_printf(out, ",\"delta\":%lld,\"k\":%u,\"shard\":%u,\"created\":%s}", (long long)ch->delta, ch->def.k,
                   res->shard, ch->created ? "true" : "false");
}

/* The answer write of a change on sub-counter ch->index. */
static void change_apply(change *ch) {
    ctr *c = ch->c;
    shard_write wr = { 0 };
    wr.op = SHARD_OP_PUT;
    wr.key = sub_key(c, &ch->def, ch->index);
    wr.compute = change_compute;
    wr.compute_arg = ch;
    api_write_answer(c->w, c->req, c->body, c->r, &wr, change_render, ch);
}

/* ---- choosing the sub-counter ------------------------------------------------------------------ */

static _Thread_local uint32_t rotation;

static uint64_t idem_hash(const ctr *c) { return XXH3_64bits(c->idem.ptr, c->idem.len); }

static uint32_t pick_sub(ctr *c, const counter_def *d) {
    uint32_t k = d->k;
    if (c->idem.ptr) return counter_idem_index(idem_hash(c), c->st->nshards, k);
    uint32_t t = c->w->env->nworkers ? c->w->env->nworkers : 1, me = c->w->id % t, pref;
    if (k <= t) {
        pref = me % k;
    } else {
        uint32_t owned = (k - 1 - me) / t + 1; /* indices me, me + t, ... below k */
        pref = me + t * (rotation++ % owned);
    }
    for (uint32_t step = 0; step < k; step++) {
        uint32_t i = (pref + step) % k;
        shard *sh = store_shard(c->st, counter_sub_shard(d, i, c->st->nshards));
        if (pthread_mutex_trylock(&sh->lock) == 0) {
            pthread_mutex_unlock(&sh->lock);
            return i;
        }
    }
    return pref;
}

/* The fast path may apply delta to s: small, and far enough inside the
 * budget that the at most nworkers + 1 increments in flight cannot push the
 * value out of it (see the file comment). */
static int fast_fits(const counter_sub *s, int64_t delta, unsigned nworkers) {
    if (delta > FAST_DELTA_MAX || delta < -FAST_DELTA_MAX) return 0;
    __int128 guard = (__int128)(nworkers + 1) * FAST_DELTA_MAX, nv = (__int128)s->value + delta;
    return delta >= 0 ? nv <= (__int128)s->hi - guard : nv >= (__int128)s->lo + guard;
}

/* At --max-keys, an increment without an Idempotency-Key moves from a
 * sub-counter that has no record yet (writing it would add a key) to one
 * that has, when one can take delta on the fast path. */
static uint32_t prefer_stored(ctr *c, const counter_sub *subs, const sub_seen *seen, uint32_t k, uint32_t i,
                              int64_t delta) {
    if (c->idem.ptr || seen[i].exists || !at_key_limit(c)) return i;
    for (uint32_t step = 1; step < k; step++) {
        uint32_t j = (i + step) % k;
        if (seen[j].exists && fast_fits(&subs[j], delta, c->w->env->nworkers)) return j;
    }
    return i;
}

/* 1 when the request's Idempotency-Key already has an answer (or one in
 * flight) on shard id. */
static int idem_seen(ctr *c, uint32_t shard_id) {
    if (!c->idem.ptr) return 0;
    skv_slice key = store_internal_key(&c->key, STORE_NS_IDEMPOTENCY, shard_id, c->idem.ptr, c->idem.len);
    return read_newest(c, key, &c->val, NULL) == SKV_OK;
}

/* The compute callback of a replay: a write that must never apply. */
static int replay_compute(void *arg, const ht_entry *cur, skv_buf *value, uint32_t *flags, uint64_t *expires_ms) {
    (void)arg, (void)cur, (void)value, (void)flags, (void)expires_ms;
    return SKV_EAGAIN;
}

/*
 * A retried increment: its Idempotency-Key has an answer on one of the
 * shards of its chain (counter.h), where the first request's sub-counter
 * was, whatever the counter's K was then (it may have been deleted and
 * created again with another K since, or not exist any more).  Answers
 * through api_write_answer on that shard with a write that never applies:
 * the remembered answer (replayed), 422 when it belongs to another request,
 * 409 idempotency_in_progress while it waits for the disk (or in the
 * moment it expired).  Returns 1 when it answered, 0 when nothing is
 * remembered (the request goes on).
 */
static int idem_replay(ctr *c) {
    if (!c->idem.ptr) return 0;
    uint32_t n = c->st->nshards, *chain = skv_calloc(n, sizeof *chain);
    uint32_t len = counter_idem_chain(idem_hash(c), n, chain), found = n;
    for (uint32_t j = 0; j < len && found == n; j++) {
        uint32_t shard_id = (base_of(c) + chain[j]) % n;
        if (idem_seen(c, shard_id)) found = shard_id;
    }
    free(chain);
    if (found == n) return 0;
    change ch = { 0 };
    ch.c = c;
    shard_write wr = { 0 };
    wr.op = SHARD_OP_PUT;
    wr.key = store_internal_key(&c->key, STORE_NS_COUNTER, found, c->name.data, c->name.len);
    wr.compute = replay_compute;
    api_write_answer(c->w, c->req, c->body, c->r, &wr, change_render, &ch);
    return 1;
}

/* ---- increments -------------------------------------------------------------------------------- */

/* The shrink of sub-counter j's budget toward [lo, hi] (never below or above its value). */
static void shrink_of(const counter_sub *s, int64_t lo, int64_t hi, int64_t *slo, int64_t *shi) {
    *slo = s->lo > lo ? s->lo : lo;
    *shi = s->hi < hi ? s->hi : hi;
    if (*slo > s->value) *slo = s->value;
    if (*shi < s->value) *shi = s->value;
}

/* Counts the slow path's writes (admit_adds): the definition when it is
 * created, the shrinks and grows of a rebalance (lo, hi set) and the change
 * on sub-counter index. */
static void adds_change(change *ch, int state, const counter_sub *subs, const sub_seen *seen, const int64_t *lo,
                        const int64_t *hi, adds *a) {
    ctr *c = ch->c;
    uint32_t k = ch->def.k, index = ch->index;
    if (state == DEF_ABSENT) adds_definition(c, &ch->def, a);
    int index_written = 0;
    for (uint32_t j = 0; lo && j < k; j++) {
        counter_sub shrunk = subs[j], grown = subs[j];
        shrink_of(&subs[j], lo[j], hi[j], &shrunk.lo, &shrunk.hi);
        grown.lo = lo[j];
        grown.hi = hi[j];
        int shrinks = shrunk.lo != subs[j].lo || shrunk.hi != subs[j].hi;
        int grows = j != index && (grown.lo != shrunk.lo || grown.hi != shrunk.hi);
        if (!shrinks && !grows) continue;
        size_t len = sub_len(c, &shrunk), glen = grows ? sub_len(c, &grown) : 0;
        if (glen > len) len = glen;
        size_t key_len = sub_key(c, &ch->def, j).len;
        adds_record(a, key_len, len, seen[j].exists);
        if (j == index) index_written = 1;
    }
    counter_sub after = subs[index];
    if (!ch->refuse) after.value += ch->delta; /* fits: checked by fast_fits or counter_plan */
    if (ch->set_budget) {
        after.lo = ch->lo;
        after.hi = ch->hi;
    }
    size_t key_len = sub_key(c, &ch->def, index).len;
    adds_record(a, key_len, sub_len(c, &after), seen[index].exists || index_written);
}

/* Moves budget between the sub-counters for a change on index (lo, hi:
 * counter_plan's budgets): shrinks first, durable before any grow; then the
 * grows.  0, or the error to answer (after which nothing else is written). */
static int rebalance(change *ch, counter_sub *subs, const int64_t *lo, const int64_t *hi) {
    ctr *c = ch->c;
    uint32_t k = ch->def.k;
    sync_wait *waits = skv_calloc(k, sizeof *waits);
    int rc = SKV_OK;
    for (uint32_t j = 0; j < k; j++) {
        int64_t slo, shi;
        shrink_of(&subs[j], lo[j], hi[j], &slo, &shi);
        if (slo == subs[j].lo && shi == subs[j].hi) continue;
        change shrink = { c, ch->def, j, 0, 1, slo, shi, 0, 0, 0, 0 };
        shard_write wr = { 0 };
        wr.op = SHARD_OP_PUT;
        wr.key = sub_key(c, &ch->def, j);
        wr.compute = change_compute;
        wr.compute_arg = &shrink;
        int wrc = write_direct(c, &wr, &waits[j]);
        if (wrc != SKV_OK && rc == SKV_OK) rc = wrc;
        subs[j].lo = slo;
        subs[j].hi = shi;
    }
    for (uint32_t j = 0; j < k; j++) {
        int st = waits[j].base.deliver ? sync_wait_finish(&waits[j]) : SKV_OK;
        if (st != SKV_OK && rc == SKV_OK) rc = st;
    }
    free(waits);
    if (rc != SKV_OK) return rc;
    for (uint32_t j = 0; j < k; j++) {
        if (j == ch->index || (subs[j].lo == lo[j] && subs[j].hi == hi[j])) continue;
        change grow = { c, ch->def, j, 0, 1, lo[j], hi[j], 0, 0, 0, 0 };
        shard_write wr = { 0 };
        wr.op = SHARD_OP_PUT;
        wr.key = sub_key(c, &ch->def, j);
        wr.compute = change_compute;
        wr.compute_arg = &grow;
        (void)write_direct(c, &wr, NULL); /* a lost grow only leaves budget unused until the next slow path */
    }
    return SKV_OK;
}

/*
 * Slow path, under the exclusive lock; ch->def is the definition in state
 * (enum def_state: DEF_ABSENT creates it).  Chooses the sub-counter (pref,
 * or another that has a record at --max-keys), applies the change directly
 * when it fits there comfortably, else plans a rebalance (or refuses: 409,
 * remembered with an Idempotency-Key).  Checks the limits for everything it
 * will write before writing anything, then writes the definition (waiting
 * until it is durable), the rebalance and the change.
 */
static void change_slow(change *ch, int state, uint32_t pref) {
    ctr *c = ch->c;
    uint32_t k = ch->def.k;
    counter_sub *subs = skv_calloc(k, sizeof *subs);
    sub_seen *seen = skv_calloc(k, sizeof *seen);
    int64_t *lo = NULL, *hi = NULL;
    subs_read(c, &ch->def, 1, subs, seen);
    ch->index = prefer_stored(c, subs, seen, k, pref, ch->delta);
    if (!fast_fits(&subs[ch->index], ch->delta, c->w->env->nworkers)) {
        lo = skv_calloc(k, sizeof *lo);
        hi = skv_calloc(k, sizeof *hi);
        uint32_t index;
        if (counter_plan(subs, k, ch->delta, c->idem.ptr != NULL, ch->index, &index, lo, hi) == SKV_OK) {
            ch->index = index;
            ch->set_budget = 1;
            ch->lo = lo[index];
            ch->hi = hi[index];
        } else if (c->idem.ptr) { /* remember the refusal: the sub-counter is rewritten unchanged */
            ch->refuse = 1;
            free(lo), free(hi);
            lo = hi = NULL;
        } else {
            reply_error(c->r, 409, "counter_overflow", "%s", overflow_msg);
            goto out;
        }
    }
    adds a = { 0 };
    adds_change(ch, state, subs, seen, lo, hi, &a);
    if (admit_adds(c, &a) != SKV_OK) {
        api_reply_memory_limit(c->r);
        goto out;
    }
    int rc = def_make_durable(c, &ch->def, state);
    if (rc == SKV_OK && lo) rc = rebalance(ch, subs, lo, hi);
    if (rc == SKV_ENOSPACE || rc == SKV_EIO || rc == SKV_ENOMEM) {
        api_write_failed(c->r, rc);
        goto out;
    }
    if (rc != SKV_OK) { /* a stored sub-counter outside its own budget */
        reply_error(c->r, 500, "internal", "a sub-counter of this counter is inconsistent: %s", skv_strerror(rc));
        goto out;
    }
    ch->created = state == DEF_ABSENT;
    ch->others = subs_total(subs, k) - subs[ch->index].value;
    change_apply(ch);
out:
    free(subs);
    free(seen);
    free(lo);
    free(hi);
}

/* Fast path, under the shared lock: 1 when it answered, 0 when the slow
 * path must (then *pref is the sub-counter it chose). */
static int change_fast(change *ch, uint32_t *pref) {
    ctr *c = ch->c;
    uint32_t k = ch->def.k;
    counter_sub *subs = skv_calloc(k, sizeof *subs);
    sub_seen *seen = skv_calloc(k, sizeof *seen);
    uint32_t i = pick_sub(c, &ch->def);
    *pref = i;
    subs_read(c, &ch->def, 1, subs, seen);
    i = prefer_stored(c, subs, seen, k, i, ch->delta);
    int done = fast_fits(&subs[i], ch->delta, c->w->env->nworkers);
    if (done) {
        ch->index = i;
        ch->others = subs_total(subs, k) - subs[i].value;
        change_apply(ch);
    }
    free(subs);
    free(seen);
    return done;
}

/* Adds delta to the counter (creating it with the default K when create is
 * set; 404 otherwise).  Answers. */
static void counter_add(ctr *c, int64_t delta, int create) {
    if (idem_replay(c)) return;
    change ch = { 0 };
    ch.c = c;
    ch.delta = delta;
    pthread_rwlock_t *lock = stripe_of(c->name_hash);
    uint32_t pref = 0;
    int chose = 0;
    pthread_rwlock_rdlock(lock);
    int rc = def_load_settled(c, &ch.def);
    if (rc == SKV_OK) {
        chose = 1;
        rc = change_fast(&ch, &pref) ? SKV_OK : SKV_EAGAIN;
    }
    pthread_rwlock_unlock(lock);
    if (rc == SKV_EINVAL) reply_corrupt(c);
    if (rc != SKV_EAGAIN) return;

    pthread_rwlock_wrlock(lock);
    int state;
    rc = def_state(c, c->st->nshards, &ch.def, &state);
    if (rc != SKV_OK) {
        reply_corrupt(c);
    } else if (state == DEF_ABSENT && !create) {
        reply_not_found(c);
    } else {
        if (!chose || pref >= ch.def.k || c->idem.ptr) pref = pick_sub(c, &ch.def);
        change_slow(&ch, state, pref);
    }
    pthread_rwlock_unlock(lock);
}

/* ---- reads ------------------------------------------------------------------------------------ */

/* GET /v1/counters/{name} and the seed's value routes. */
static void counter_get(ctr *c) {
    counter_def d;
    int rc = def_load(c, 0, &d, NULL);
    if (rc == SKV_ENOTFOUND) {
        reply_not_found(c);
        return;
    }
    if (rc != SKV_OK) {
        reply_corrupt(c);
        return;
    }
    counter_sub *subs = skv_calloc(d.k, sizeof *subs);
    subs_read(c, &d, 0, subs, NULL);
    __int128 total = subs_total(subs, d.k);
    skv_buf b;
    skv_buf_init(&b);
    if (total > INT64_MAX || total < INT64_MIN) {
        /* Only after a crash under --fsync everysec|never lost part of a rebalance. */
        skv_buf_append_cstr(&b, "the counter's total is outside the 64-bit signed range (");
        append_i128(&b, total);
        skv_buf_append_cstr(&b, "); an increment or decrement toward the range repairs it");
        reply_error(c->r, 409, "counter_overflow", "%s", b.data);
    } else if (c->seed) {
        skv_buf_printf(&b, "{\"counter_id\":\"%016llx\",\"counter_name\":", (unsigned long long)d.id);
        append_name(&b, c);
        skv_buf_append_cstr(&b, ",\"value\":");
        append_i128(&b, total);
        skv_buf_append_cstr(&b, "}");
        reply_json(c->r, 200, &b);
    } else {
        skv_buf_append_cstr(&b, "{\"name\":");
        append_name(&b, c);
        skv_buf_printf(&b, ",\"id\":\"%016llx\",\"value\":", (unsigned long long)d.id);
        append_i128(&b, total);
        skv_buf_printf(&b, ",\"k\":%u,\"shards\":[", d.k);
        for (uint32_t i = 0; i < d.k; i++)
            skv_buf_printf(&b, "%s%u", i ? "," : "", counter_sub_shard(&d, i, c->st->nshards));
        skv_buf_append_cstr(&b, "],\"sub_counters\":[");
        for (uint32_t i = 0; i < d.k; i++)
            skv_buf_printf(&b, "%s{\"shard\":%u,\"value\":%lld}", i ? "," : "", counter_sub_shard(&d, i, c->st->nshards),
                           (long long)subs[i].value);
        skv_buf_append_cstr(&b, "]}");
        reply_json(c->r, 200, &b);
    }
    skv_buf_free(&b);
    free(subs);
}

/* ---- creation and deletion --------------------------------------------------------------------- */

typedef struct def_answer {
    const ctr *c;
    const counter_def *d;
    int created;
} def_answer;

static void append_shards(skv_buf *b, const counter_def *d, uint32_t nshards) {
    skv_buf_append_cstr(b, "[");
    for (uint32_t i = 0; i < d->k; i++) skv_buf_printf(b, "%s%u", i ? "," : "", counter_sub_shard(d, i, nshards));
    skv_buf_append_cstr(b, "]");
}

static void def_render(void *arg, const shard_result *res, skv_buf *out) {
    const def_answer *a = arg;
    const ctr *c = a->c;
    api_answer_begin(out, a->created ? 201 : 200, 0, res ? res->shard : API_NO_SHARD);
    if (c->seed) {
        skv_buf_printf(out, "{\"counter_id\":\"%016llx\",\"counter_name\":", (unsigned long long)a->d->id);
        append_name(out, c);
        skv_buf_append_cstr(out, ",\"shards\":");
        append_shards(out, a->d, c->st->nshards);
        skv_buf_printf(out, ",\"k\":%u,\"created\":%s}", a->d->k, a->created ? "true" : "false");
        return;
    }
    skv_buf_append_cstr(out, "{\"name\":");
    append_name(out, c);
    skv_buf_printf(out, ",\"id\":\"%016llx\",\"k\":%u,\"shards\":", (unsigned long long)a->d->id, a->d->k);
    append_shards(out, a->d, c->st->nshards);
    skv_buf_printf(out, ",\"created\":%s}", a->created ? "true" : "false");
}

/* 1 when creating d (the id record, then the definition as the answer
 * write) fits the limits: checked before the id record is written. */
static int admit_creation(ctr *c, const counter_def *d) {
    adds a = { 0 };
    adds_definition(c, d, &a);
    return admit_adds(c, &a) == SKV_OK;
}

/* Creates the counter with k sub-counters (strict: 409 when it exists with
 * another K).  Answers 201, or 200 when it exists. */
static void counter_create(ctr *c, uint32_t k, int strict) {
    pthread_rwlock_t *lock = stripe_of(c->name_hash);
    pthread_rwlock_wrlock(lock);
    counter_def d;
    int state;
    int rc = def_state(c, k, &d, &state);
    if (rc != SKV_OK) {
        reply_corrupt(c);
    } else if (state != DEF_ABSENT && strict && d.k != k) {
        reply_error(c->r, 409, "counter_exists", "the counter exists with k=%u", d.k);
    } else if (state == DEF_DURABLE && !c->idem.ptr) {
        def_answer a = { c, &d, 0 };
        def_render(&a, NULL, &c->w->answer);
        api_answer_send(c->r, skv_slice_make(c->w->answer.data, c->w->answer.len), 0);
    } else if (state == DEF_ABSENT && !admit_creation(c, &d)) {
        api_reply_memory_limit(c->r);
    } else if (state == DEF_ABSENT && (rc = id_write(c, &d)) != SKV_OK) {
        api_write_failed(c->r, rc);
    } else {
        /* Written (or rewritten, so the answer waits until it is durable) as the answer write. */
        def_answer a = { c, &d, state == DEF_ABSENT };
        shard_write wr = { 0 };
        wr.op = SHARD_OP_PUT;
        skv_slice value = def_text(c, &d);
        wr.value = value;
        wr.key = meta_key(c);
        api_write_answer(c->w, c->req, c->body, c->r, &wr, def_render, &a);
    }
    pthread_rwlock_unlock(lock);
}

typedef struct del_answer {
    const ctr *c;
    const counter_def *d;
    __int128 value;
    int applied; /* set by del_render: the delete was applied (not a replay) */
} del_answer;

static void del_render(void *arg, const shard_result *res, skv_buf *out) {
    del_answer *a = arg;
    a->applied = 1;
    api_answer_begin(out, 200, 0, res->shard);
    skv_buf_append_cstr(out, "{\"name\":");
    append_name(out, a->c);
    skv_buf_printf(out, ",\"id\":\"%016llx\",\"value\":", (unsigned long long)a->d->id);
    append_i128(out, a->value);
    skv_buf_append_cstr(out, ",\"deleted\":true}");
}

/* ---- reclaiming a deleted counter's sub-counters (counter_reclaim_task) ------------------------- */

typedef struct reclaim_item {
    struct reclaim_item *next;
    uint64_t due_ms; /* CLOCK_MONOTONIC */
    uint64_t gen;    /* of the deleted definition */
    uint64_t id;     /* its seed id (the id record's key) */
    uint32_t k, base;
    size_t name_len;
    char name[];
} reclaim_item;

#define RECLAIM_NAME_BYTES (1u << 20) /* names held in the queue at most */
#define RECLAIM_PER_CALL 64
#define RECLAIM_RETRY_MS 200

enum { RECLAIM_DONE, RECLAIM_LATER };

static pthread_mutex_t reclaim_mu = PTHREAD_MUTEX_INITIALIZER;
static reclaim_item *reclaim_head, *reclaim_tail; /* FIFO; under reclaim_mu */
static size_t reclaim_count, reclaim_bytes;

static uint64_t mono_ms(void) { return mono_ns() / 1000000u; }

/* Appends it to the queue (reclaim_mu held). */
static void reclaim_push(reclaim_item *it) {
    it->next = NULL;
    if (reclaim_tail) reclaim_tail->next = it;
    else reclaim_head = it;
    reclaim_tail = it;
    reclaim_count++;
    reclaim_bytes += it->name_len;
}

/* The first item due at now, taken off the queue, or NULL. */
static reclaim_item *reclaim_pop(uint64_t now) {
    pthread_mutex_lock(&reclaim_mu);
    reclaim_item *it = reclaim_head;
    if (it && it->due_ms <= now) {
        reclaim_head = it->next;
        if (!reclaim_head) reclaim_tail = NULL;
        reclaim_count--;
        reclaim_bytes -= it->name_len;
    } else {
        it = NULL;
    }
    pthread_mutex_unlock(&reclaim_mu);
    return it;
}

/* After an applied DELETE of d: queues its records (dropped when the queue
 * is full: they then stay until the name is used again).  Under --fsync
 * always a sync delete is durable once visible; an async one, or any under
 * everysec|never, is visible at once and given COUNTER_RECLAIM_DELAY_MS. */
static void reclaim_note(ctr *c, const counter_def *d, int async) {
    reclaim_item *it = skv_try_malloc(sizeof *it + c->name.len);
    if (!it) return;
    it->gen = d->gen;
    it->id = d->id;
    it->k = d->k;
    it->base = d->base;
    it->name_len = c->name.len;
    memcpy(it->name, c->name.data, c->name.len);
    int visible_is_durable = c->w->env->cfg->fsync_policy == FSYNC_ALWAYS && !async;
    it->due_ms = mono_ms() + (visible_is_durable ? 0 : COUNTER_RECLAIM_DELAY_MS);
    pthread_mutex_lock(&reclaim_mu);
    int room = reclaim_count < COUNTER_RECLAIM_MAX && reclaim_bytes + it->name_len <= RECLAIM_NAME_BYTES;
    if (room) reclaim_push(it);
    pthread_mutex_unlock(&reclaim_mu);
    if (!room) free(it);
}

/* The definition stored under key (newest or visible): 0 when it is of
 * generation gen, SKV_EEXISTS when of another, SKV_ENOTFOUND when there is
 * none, SKV_EINVAL when it cannot be read. */
static int def_of_gen(store *st, skv_slice key, int newest, uint64_t gen, skv_buf *val) {
    uint64_t h;
    uint32_t id = store_locate(st, key, &h);
    copy_ctx cc = { val, 0, 0 };
    int rc = newest ? get_newest(st, id, h, key, &cc) : get_visible(st, id, h, key, &cc);
    if (rc != SKV_OK) return SKV_ENOTFOUND;
    counter_def d;
    if (counter_def_parse(skv_slice_make(val->data, val->len), st->nshards, &d) != SKV_OK) return SKV_EINVAL;
    return d.gen == gen ? SKV_OK : SKV_EEXISTS;
}

/* Deletes key (on shard id, hash h) if it still has version; returns shard_apply's code. */
static int delete_if_version(store *st, uint32_t id, uint64_t h, skv_slice key, uint64_t version) {
    shard_write wr = { 0 };
    wr.op = SHARD_OP_DELETE;
    wr.key = key;
    wr.cond = SHARD_COND_VERSION; /* not if it was written again meanwhile */
    wr.expected_version = version;
    wr.async = 1;
    shard_result res;
    return shard_apply(store_shard(st, id), h, &wr, &res);
}

/* Deletes the id record of it while no definition of its name exists,
 * under the counter's stripe lock, which a creation holds from before it
 * writes the id record until its definition is written: so no creation is
 * half done.  SKV_EAGAIN when the lock is busy (the sweeper never blocks on
 * it), else shard_apply's code. */
static int reclaim_id(store *st, reclaim_item *it, skv_buf *key, skv_buf *val) {
    pthread_rwlock_t *lock = stripe_of(XXH3_64bits(it->name, it->name_len));
    if (pthread_rwlock_trywrlock(lock) != 0) return SKV_EAGAIN;
    int rc = SKV_OK;
    skv_slice ik = id_key_in(key, st->nshards, it->id);
    uint64_t h;
    uint32_t id = store_locate(st, ik, &h);
    copy_ctx cc = { val, 0, 0 };
    if (get_newest(st, id, h, ik, &cc) != SKV_OK || val->len != it->name_len ||
        memcmp(val->data, it->name, it->name_len) != 0)
        goto out; /* gone, or another name's (a hash collision) */
    uint64_t version = cc.version;
    skv_slice mk = store_internal_key(key, STORE_NS_COUNTER_META, it->base, it->name, it->name_len);
    if (def_of_gen(st, mk, 1, it->gen, val) != SKV_ENOTFOUND) goto out; /* created again (or unreadable) */
    ik = id_key_in(key, st->nshards, it->id);
    rc = delete_if_version(st, id, h, ik, version);
out:
    pthread_rwlock_unlock(lock);
    return rc;
}

/* Deletes the sub-counters of it that are still of its generation, and its
 * id record, once the definition's delete is durable.  RECLAIM_DONE or
 * RECLAIM_LATER. */
static int reclaim_one(store *st, reclaim_item *it, skv_buf *key, skv_buf *val) {
    uint32_t n = st->nshards;
    if (it->base >= n || it->k < 1 || it->k > n) return RECLAIM_DONE;
    skv_slice mk = store_internal_key(key, STORE_NS_COUNTER_META, it->base, it->name, it->name_len);
    int rc = def_of_gen(st, mk, 1, it->gen, val);
    if (rc == SKV_OK || rc == SKV_EINVAL) return RECLAIM_DONE; /* the delete failed (the counter lives on) */
    rc = def_of_gen(st, mk, 0, it->gen, val);
    if (rc == SKV_EINVAL) return RECLAIM_DONE;
    shard *home = store_shard(st, it->base);
    pthread_mutex_lock(&home->lock);
    int state = home->state;
    pthread_mutex_unlock(&home->lock);
    if (rc == SKV_OK || state != SHARD_OK) return RECLAIM_LATER; /* not on the disk yet */
    int later = 0;
    for (uint32_t i = 0; i < it->k; i++) {
        skv_slice sk = store_internal_key(key, STORE_NS_COUNTER, (it->base + i) % n, it->name, it->name_len);
        uint64_t h;
        uint32_t id = store_locate(st, sk, &h);
        copy_ctx cc = { val, 0, 0 };
        counter_sub sub;
        if (get_newest(st, id, h, sk, &cc) != SKV_OK ||
            counter_sub_parse(skv_slice_make(val->data, val->len), &sub) != SKV_OK || sub.gen != it->gen)
            continue;
        if (delete_if_version(st, id, h, sk, cc.version) == SKV_ENOSPACE) later = 1;
    }
    rc = reclaim_id(st, it, key, val);
    if (rc == SKV_ENOSPACE || rc == SKV_EAGAIN) later = 1;
    return later ? RECLAIM_LATER : RECLAIM_DONE;
}

void counter_reclaim_task(void *arg) {
    api_env *env = arg;
    skv_buf key, val;
    skv_buf_init(&key);
    skv_buf_init(&val);
    uint64_t now = mono_ms();
    for (int done = 0; done < RECLAIM_PER_CALL; done++) {
        reclaim_item *it = reclaim_pop(now);
        if (!it) break;
        if (reclaim_one(env->st, it, &key, &val) == RECLAIM_LATER) {
            it->due_ms = now + RECLAIM_RETRY_MS;
            pthread_mutex_lock(&reclaim_mu);
            reclaim_push(it);
            pthread_mutex_unlock(&reclaim_mu);
        } else {
            free(it);
        }
    }
    skv_buf_free(&key);
    skv_buf_free(&val);
}

/* DELETE: removes the definition (the answer write), nothing else.  The
 * sub-counters and the id record stay until that delete is durable, so no
 * crash or failed write can bring the counter back with a partial value or
 * without its id record: another generation ignores them, a re-created
 * counter overwrites them, counter_reclaim_task frees them. */
static void counter_delete(ctr *c) {
    pthread_rwlock_t *lock = stripe_of(c->name_hash);
    pthread_rwlock_wrlock(lock);
    counter_def d;
    int rc = def_load(c, 1, &d, NULL);
    shard_write wr = { 0 };
    wr.op = SHARD_OP_DELETE;
    if (rc == SKV_ENOTFOUND) {
        if (idem_seen(c, base_of(c))) { /* a retry: replay the first answer */
            d.id = c->name_hash;
            del_answer a = { c, &d, 0, 0 };
            wr.key = meta_key(c);
            api_write_answer(c->w, c->req, c->body, c->r, &wr, del_render, &a);
        } else {
            reply_not_found(c);
        }
    } else if (rc != SKV_OK) {
        reply_corrupt(c);
    } else {
        counter_sub *subs = skv_calloc(d.k, sizeof *subs);
        subs_read(c, &d, 1, subs, NULL);
        del_answer a = { c, &d, subs_total(subs, d.k), 0 };
        free(subs);
        wr.key = meta_key(c);
        /* Not on a replay: the counter may have been created again since. */
        if (api_write_answer(c->w, c->req, c->body, c->r, &wr, del_render, &a) == SKV_OK && a.applied)
            reclaim_note(c, &d, wr.async);
    }
    pthread_rwlock_unlock(lock);
}

/* ---- request parsing --------------------------------------------------------------------------- */

/* Validates a counter name and makes it the request's; 0 after answering 400. */
static int take_name(ctr *c, skv_slice name) {
    if (name.len == 0) {
        reply_error(c->r, 400, "missing_name", "the counter name is empty");
        return 0;
    }
    if (memchr(name.ptr, '\0', name.len)) {
        reply_error(c->r, 400, "bad_name", "a counter name may not contain a NUL byte");
        return 0;
    }
    size_t max = c->w->env->cfg->max_key_bytes;
    if (name.len > max) {
        reply_error(c->r, 400, "name_too_large", "the counter name is %zu bytes; the limit is %zu (--max-key-bytes)",
                    name.len, max);
        return 0;
    }
    set_name(c, name);
    return 1;
}

/* The checks of a write route before anything is written (api_write_answer
 * checks them again): ?durability= and the Idempotency-Key header (into c->idem).
 * 0 after answering 400. */
static int take_idem(ctr *c) {
    int async;
    c->idem = skv_slice_make(NULL, 0);
    if (!api_parse_durability(c->req, &async, c->r)) return 0;
    skv_slice k;
    int has = api_idempotency_key(c->req, &k, c->r);
    if (has < 0) return 0;
    if (has) c->idem = k;
    return 1;
}

/* ?by=N: 1 when absent; 0 after answering 400. */
static int parse_by(ctr *c, int negate, int64_t *delta) {
    skv_buf v;
    skv_buf_init(&v);
    int found = http_query_get(c->req->query, "by", &v);
    int64_t by = 1;
    int ok = found == 0 ||
             (found == 1 && skv_slice_to_i64(skv_slice_make(v.data ? v.data : "", v.len), &by) == SKV_OK && by != 0 &&
              !(negate && by == INT64_MIN));
    skv_buf_free(&v);
    if (!ok) {
        reply_error(c->r, 400, "bad_by",
                    "by must be a non-zero integer in the 64-bit signed range (and above its minimum for decr)");
        return 0;
    }
    *delta = negate ? -by : by;
    return 1;
}

/* Parses the body as a JSON object; NULL after answering 400.  The
 * Content-Type is not checked: the seed's curl examples send none (curl's
 * form default). */
static json_t *parse_object(ctr *c, int empty_ok) {
    if (c->body.len == 0) {
        if (empty_ok) return json_object();
        reply_error(c->r, 400, "invalid_json", "the request body must be a JSON object");
        return NULL;
    }
    json_error_t err;
    json_t *root = json_loadb(c->body.ptr, c->body.len, JSON_REJECT_DUPLICATES, &err);
    if (!root) {
        reply_error(c->r, 400, "invalid_json", "malformed JSON at line %d column %d: %s", err.line, err.column, err.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        reply_error(c->r, 400, "invalid_json", "the request body must be a JSON object");
        return NULL;
    }
    return root;
}

/* A string (or integer) field naming a counter; 0 after answering 400. */
static int json_name_field(ctr *c, json_t *obj, const char *field, skv_buf *out) {
    json_t *v = json_object_get(obj, field);
    if (!v) {
        reply_error(c->r, 400, "missing_field", "field '%s' is required", field);
        return 0;
    }
    skv_buf_reset(out);
    if (json_is_string(v)) skv_buf_append(out, json_string_value(v), json_string_length(v));
    else if (json_is_integer(v)) skv_buf_printf(out, "%lld", (long long)json_integer_value(v));
    else {
        reply_error(c->r, 400, "bad_field", "'%s' must be a string", field);
        return 0;
    }
    return 1;
}

/* Seed ids: a counter_id names the counter whose id record holds it, else
 * it is taken as the counter's name.  0 after answering 400. */
static int take_seed_id(ctr *c, skv_slice given) {
    uint64_t id;
    if (parse_hex16(given, &id) == SKV_OK && read_visible(c, id_key(c, id), &c->val, NULL) == SKV_OK) {
        skv_buf name;
        skv_buf_init(&name);
        skv_buf_append(&name, c->val.data, c->val.len);
        int ok = take_name(c, skv_slice_make(name.data, name.len));
        skv_buf_free(&name);
        return ok;
    }
    return take_name(c, given);
}

/* ?counter_id= on the seed's GET routes; 0 after answering 400. */
static int query_seed_id(ctr *c) {
    skv_buf v;
    skv_buf_init(&v);
    int found = http_query_get(c->req->query, "counter_id", &v);
    int ok = 0;
    if (found < 0) reply_error(c->r, 400, "bad_counter_id", "counter_id is not valid percent-encoding");
    else if (found == 0) reply_error(c->r, 400, "missing_field", "query parameter 'counter_id' is required");
    else ok = take_seed_id(c, skv_slice_make(v.data ? v.data : "", v.len));
    skv_buf_free(&v);
    return ok;
}

/* ---- handlers ---------------------------------------------------------------------------------- */

/* PUT /v1/counters/{name}: {"k": K} (optional; default: the shard count). */
static void handle_put(ctr *c) {
    json_t *root = parse_object(c, 1);
    if (!root) return;
    uint32_t n = c->st->nshards, k = n;
    json_t *kv = json_object_get(root, "k");
    if (kv && (!json_is_integer(kv) || json_integer_value(kv) < 1 || json_integer_value(kv) > (json_int_t)n)) {
        reply_error(c->r, 400, "bad_k", "k must be an integer from 1 to %u (the shard count)", n);
    } else {
        if (kv) k = (uint32_t)json_integer_value(kv);
        counter_create(c, k, 1);
    }
    json_decref(root);
}

static void handle_v1(ctr *c) {
    static const skv_slice prefix = SKV_SLICE_LIT("/v1/counters/");
    const http_request *req = c->req;
    skv_slice rest = skv_slice_make(req->path.ptr + prefix.len, req->path.len - prefix.len);
    const char *slash = memchr(rest.ptr, '/', rest.len);
    skv_slice raw = slash ? skv_slice_make(rest.ptr, (size_t)(slash - rest.ptr)) : rest;
    int action = 0; /* 0: the counter itself, 1: incr, -1: decr */
    if (slash) {
        skv_slice a = skv_slice_make(slash + 1, rest.len - raw.len - 1);
        action = skv_slice_eq_cstr(a, "incr") ? 1 : skv_slice_eq_cstr(a, "decr") ? -1 : 2;
    }
    if (action == 2) {
        reply_error(c->r, 404, "not_found", "no route for %.*s; counters have /incr and /decr",
                    (int)(req->path.len > 200 ? 200 : req->path.len), req->path.ptr);
        return;
    }
    if (action) {
        if (!api_method_allowed(req, c->r, "POST, OPTIONS", 1u << HTTP_M_POST)) return;
    } else {
        const unsigned mask = API_GET_HEAD | 1u << HTTP_M_PUT | 1u << HTTP_M_DELETE;
        if (!api_method_allowed(req, c->r, "GET, HEAD, PUT, DELETE, OPTIONS", mask)) return;
    }
    skv_buf_reset(&c->val);
    if (http_url_decode(raw, 0, &c->val) != SKV_OK) {
        reply_error(c->r, 400, "bad_name", "the counter name is not valid percent-encoding");
        return;
    }
    skv_buf decoded = c->val;
    skv_buf_init(&c->val);
    int ok = take_name(c, skv_slice_make(decoded.data ? decoded.data : "", decoded.len));
    skv_buf_free(&decoded);
    if (!ok) return;
    if (req->method == HTTP_M_GET || req->method == HTTP_M_HEAD) {
        counter_get(c);
        return;
    }
    if (!take_idem(c)) return;
    if (req->method == HTTP_M_PUT) {
        handle_put(c);
    } else if (req->method == HTTP_M_DELETE) {
        counter_delete(c);
    } else {
        int64_t delta;
        if (parse_by(c, action < 0, &delta)) counter_add(c, delta, 1);
    }
}

/* POST /counter {"name"} creates; GET /counter?counter_id= reads. */
static void handle_seed_counter(ctr *c) {
    const unsigned mask = API_GET_HEAD | 1u << HTTP_M_POST;
    if (!api_method_allowed(c->req, c->r, "GET, HEAD, POST, OPTIONS", mask)) return;
    if (c->req->method != HTTP_M_POST) {
        if (query_seed_id(c)) counter_get(c);
        return;
    }
    if (!take_idem(c)) return;
    json_t *root = parse_object(c, 0);
    if (!root) return;
    skv_buf name;
    skv_buf_init(&name);
    if (json_name_field(c, root, "name", &name) && take_name(c, skv_slice_make(name.data ? name.data : "", name.len)))
        counter_create(c, c->st->nshards, 0);
    skv_buf_free(&name);
    json_decref(root);
}

/* PUT /counter/increment|decrement {"counter_id"}. */
static void handle_seed_change(ctr *c, int64_t delta) {
    if (!api_method_allowed(c->req, c->r, "PUT, OPTIONS", 1u << HTTP_M_PUT)) return;
    if (!take_idem(c)) return;
    json_t *root = parse_object(c, 0);
    if (!root) return;
    skv_buf id;
    skv_buf_init(&id);
    if (json_name_field(c, root, "counter_id", &id) &&
        take_seed_id(c, skv_slice_make(id.data ? id.data : "", id.len)))
        counter_add(c, delta, 0);
    skv_buf_free(&id);
    json_decref(root);
}

int counter_route_of(const http_request *req) {
    skv_slice p = req->path;
    if (p.len > 13 && memcmp(p.ptr, "/v1/counters/", 13) == 0) return API_ROUTE_COUNTER;
    if (skv_slice_eq_cstr(p, "/counter")) return API_ROUTE_SEED_COUNTER;
    if (skv_slice_eq_cstr(p, "/counter/increment")) return API_ROUTE_SEED_COUNTER_INCR;
    if (skv_slice_eq_cstr(p, "/counter/decrement")) return API_ROUTE_SEED_COUNTER_DECR;
    if (skv_slice_eq_cstr(p, "/counter/value")) return API_ROUTE_SEED_COUNTER_VALUE;
    return -1;
}

int counter_dispatch(api_worker *w, const http_request *req, skv_slice body, reply *r) {
    int route = counter_route_of(req);
    if (route < 0) return -1;
    ctr c = { 0 };
    c.w = w;
    c.req = req;
    c.body = body;
    c.r = r;
    c.st = w->env->st;
    c.route = route;
    c.seed = route != API_ROUTE_COUNTER;
    skv_buf_init(&c.name);
    skv_buf_init(&c.key);
    skv_buf_init(&c.val);
    r->seed_style = c.seed;
    switch (route) {
    case API_ROUTE_COUNTER: handle_v1(&c); break;
    case API_ROUTE_SEED_COUNTER: handle_seed_counter(&c); break;
    case API_ROUTE_SEED_COUNTER_INCR: handle_seed_change(&c, 1); break;
    case API_ROUTE_SEED_COUNTER_DECR: handle_seed_change(&c, -1); break;
    default:
        if (api_method_allowed(req, r, "GET, HEAD, OPTIONS", API_GET_HEAD) && query_seed_id(&c)) counter_get(&c);
        break;
    }
    skv_buf_free(&c.name);
    skv_buf_free(&c.key);
    skv_buf_free(&c.val);
    return route;
}
