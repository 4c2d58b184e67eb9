/*
 * Unit tests for shard: shard_apply's contract (PUT/DELETE, the three
 * conditions holding and failing with nothing changed, ENOTFOUND, ENOMEM
 * through the allocator's fault injection), the sequence numbers (one per
 * applied mutation, deletes included, none for a refused one), the
 * keys/bytes accounting against a simple array model driven by a fixed-seed
 * PRNG, shard_list limits, and four threads writing distinct and shared
 * keys, after which every returned version must be unique and the
 * invariants hold.
 *
 * The newer features, with a fake clock in shard->clock_ms: TTL (readable
 * before expires_ms, absent from it on with misses/expired counted and the
 * accounting back, conditions treating an expired key as absent, pending
 * ones included, shard_expire_some over tables that need many calls and
 * that shrink during the pass, replay of expired and unexpired records);
 * computed writes (increments, flags/TTL from the callback, errors that
 * change nothing and use no seq, pending entries seen under a sync log);
 * the observer (create, replace, delete, expiry, eviction, replay, pending
 * writes observed at commit, discarded ones never); idempotency (answer
 * rendered and replayed, SKV_EEXISTS / SKV_EINVAL / SKV_EAGAIN, the
 * two-record atomic group in the log buffer, expiry of the remembered
 * answer, recovery of both records); LRU eviction (exact order when the
 * samples cover the shard, internal keys never evicted, SKV_ENOTFOUND only
 * when nothing evictable is left, the logged delete).
 *
 * The log plumbing is driven by hand as commit.c drives it: a kick
 * counter, then shard_take_batch + shard_commit_batch under the lock and
 * the waiters delivered.  Key hashes are XXH3-64 of the key, as
 * store_key_hash() gives them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <xxhash.h>

#include "err.h"
#include "mem.h"
#include "shard.h"
#include "store.h"
#include "wal.h"

/* ---- helpers ----------------------------------------------------------------- */

static uint64_t key_hash(const char *k, size_t n) { return XXH3_64bits(k, n); }

static int do_write(shard *s, int op, const char *key, const char *val, uint32_t flags, int cond, uint64_t expected,
                    shard_result *res) {
    shard_write w;
    memset(&w, 0, sizeof w);
    w.op = op;
    w.key = skv_slice_cstr(key);
    if (val) w.value = skv_slice_cstr(val);
    w.flags = flags;
    w.cond = cond;
    w.expected_version = expected;
    res->version = 999999;
    res->created = 99;
    return shard_apply(s, key_hash(w.key.ptr, w.key.len), &w, res);
}

static int put(shard *s, const char *key, const char *val, shard_result *res) {
    return do_write(s, SHARD_OP_PUT, key, val, 0, SHARD_COND_NONE, 0, res);
}

static int put_if(shard *s, const char *key, const char *val, int cond, uint64_t expected, shard_result *res) {
    return do_write(s, SHARD_OP_PUT, key, val, 0, cond, expected, res);
}

static int del(shard *s, const char *key, shard_result *res) {
    return do_write(s, SHARD_OP_DELETE, key, NULL, 0, SHARD_COND_NONE, 0, res);
}

static int del_if(shard *s, const char *key, int cond, uint64_t expected, shard_result *res) {
    return do_write(s, SHARD_OP_DELETE, key, NULL, 0, cond, expected, res);
}

/* What shard_get saw. */
typedef struct seen {
    int calls;
    uint64_t version;
    uint32_t flags;
    size_t key_len, val_len;
    char val[512];
} seen;

static void capture(void *arg, const ht_entry *e) {
    seen *g = arg;
    g->calls++;
    g->version = e->version;
    g->flags = e->flags;
    g->key_len = e->key_len;
    g->val_len = e->val_len;
    size_t n = e->val_len < sizeof g->val - 1 ? e->val_len : sizeof g->val - 1;
    memcpy(g->val, ht_entry_value(e), n);
    g->val[n] = '\0';
}

static int get(shard *s, const char *key, seen *g) {
    memset(g, 0, sizeof *g);
    return shard_get(s, key_hash(key, strlen(key)), skv_slice_cstr(key), capture, g);
}

/* Asserts key holds val at version. */
static void assert_has(shard *s, const char *key, const char *val, uint64_t version) {
    seen g;
    assert_int_equal(get(s, key, &g), SKV_OK);
    assert_int_equal(g.calls, 1);
    assert_string_equal(g.val, val);
    assert_int_equal(g.val_len, strlen(val));
    assert_int_equal(g.key_len, strlen(key));
    assert_true(g.version == version);
}

static void assert_missing(shard *s, const char *key) {
    seen g;
    assert_int_equal(get(s, key, &g), SKV_ENOTFOUND);
    assert_int_equal(g.calls, 0);
}

static size_t entry_bytes(size_t key_len, size_t val_len) { return sizeof(ht_entry) + key_len + val_len; }

/* Snapshot of everything a refused write must leave alone. */
typedef struct snapshot {
    uint64_t seq, keys, bytes;
} snapshot;

static snapshot snap(shard *s) {
    snapshot x = { s->seq, shard_keys(s), shard_bytes(s) };
    return x;
}

static void assert_unchanged(shard *s, snapshot before) {
    assert_true(s->seq == before.seq);
    assert_true(shard_keys(s) == before.keys);
    assert_true(shard_bytes(s) == before.bytes);
    assert_true(shard_check(s));
}

static int setup_shard(void **state) {
    shard *s = malloc(sizeof *s);
    if (!s) return -1;
    shard_init(s, 3);
    *state = s;
    return 0;
}

/* Internal keys for the eviction tests are built here (freed by
 * teardown_shard, even after a failure). */
static skv_buf ikeys;

static int teardown_shard(void **state) {
    shard *s = *state;
    skv_mem_fail_after(0);
    skv_buf_free(&ikeys);
    shard_destroy(s);
    free(s);
    return 0;
}

/* ---- basic PUT / GET / DELETE ---------------------------------------------------- */

static void test_init_empty(void **state) {
    shard *s = *state;
    assert_int_equal(s->id, 3);
    assert_true(s->seq == 0);
    assert_true(shard_keys(s) == 0);
    assert_true(shard_bytes(s) == 0);
    assert_true(shard_check(s));
    assert_missing(s, "nothing");
}

static void test_put_create_and_overwrite(void **state) {
    shard *s = *state;
    shard_result r;
    assert_int_equal(put(s, "alpha", "one", &r), SKV_OK);
    assert_true(r.version == 1);
    assert_int_equal(r.created, 1);
    assert_has(s, "alpha", "one", 1);
    assert_true(shard_keys(s) == 1);
    assert_true(shard_bytes(s) == entry_bytes(5, 3));

    assert_int_equal(put(s, "alpha", "a much longer value", &r), SKV_OK);
    assert_true(r.version == 2);
    assert_int_equal(r.created, 0);
    assert_has(s, "alpha", "a much longer value", 2);
    assert_true(shard_keys(s) == 1);
    assert_true(shard_bytes(s) == entry_bytes(5, 19));

    assert_int_equal(put(s, "beta", "", &r), SKV_OK); /* empty value */
    assert_true(r.version == 3);
    assert_int_equal(r.created, 1);
    assert_has(s, "beta", "", 3);
    assert_true(shard_keys(s) == 2);
    assert_true(shard_bytes(s) == entry_bytes(5, 19) + entry_bytes(4, 0));

    assert_int_equal(put(s, "alpha", "x", &r), SKV_OK); /* shrink */
    assert_true(r.version == 4);
    assert_true(shard_bytes(s) == entry_bytes(5, 1) + entry_bytes(4, 0));
    assert_true(s->seq == 4);
    assert_true(shard_check(s));
}

static void test_put_flags(void **state) {
    shard *s = *state;
    shard_result r;
    seen g;
    assert_int_equal(do_write(s, SHARD_OP_PUT, "j", "{}", SHARD_VAL_JSON, SHARD_COND_NONE, 0, &r), SKV_OK);
    assert_int_equal(get(s, "j", &g), SKV_OK);
    assert_int_equal(g.flags, SHARD_VAL_JSON);
    assert_int_equal(do_write(s, SHARD_OP_PUT, "j", "raw", 0, SHARD_COND_NONE, 0, &r), SKV_OK);
    assert_int_equal(get(s, "j", &g), SKV_OK);
    assert_int_equal(g.flags, 0);
}

static void test_binary_and_empty_keys(void **state) {
    shard *s = *state;
    shard_result r;
    shard_write w = { .op = SHARD_OP_PUT, .key = skv_slice_make("a\0b", 3), .value = skv_slice_make("v\0w", 3) };
    assert_int_equal(shard_apply(s, key_hash("a\0b", 3), &w, &r), SKV_OK);
    w.key = skv_slice_make("a\0c", 3);
    w.value = skv_slice_make("other", 5);
    assert_int_equal(shard_apply(s, key_hash("a\0c", 3), &w, &r), SKV_OK);
    w.key = skv_slice_make("", 0);
    w.value = skv_slice_make("empty-key", 9);
    assert_int_equal(shard_apply(s, key_hash("", 0), &w, &r), SKV_OK);
    assert_true(shard_keys(s) == 3);

    seen g;
    memset(&g, 0, sizeof g);
    assert_int_equal(shard_get(s, key_hash("a\0b", 3), skv_slice_make("a\0b", 3), capture, &g), SKV_OK);
    assert_int_equal(g.val_len, 3);
    assert_memory_equal(g.val, "v\0w", 3);
    memset(&g, 0, sizeof g);
    assert_int_equal(shard_get(s, key_hash("", 0), skv_slice_make("", 0), capture, &g), SKV_OK);
    assert_string_equal(g.val, "empty-key");
    /* "a" is a prefix of the binary keys but a different key. */
    assert_missing(s, "a");
    assert_true(shard_check(s));
}

static void test_delete(void **state) {
    shard *s = *state;
    shard_result r;
    assert_int_equal(put(s, "k1", "v1", &r), SKV_OK);
    assert_int_equal(put(s, "k2", "v2", &r), SKV_OK);
    assert_true(r.version == 2);

    assert_int_equal(del(s, "k1", &r), SKV_OK);
    assert_true(r.version == 3); /* a delete consumes a sequence number */
    assert_int_equal(r.created, 0);
    assert_missing(s, "k1");
    assert_has(s, "k2", "v2", 2);
    assert_true(shard_keys(s) == 1);
    assert_true(shard_bytes(s) == entry_bytes(2, 2));

    /* Missing key: ENOTFOUND, nothing changed, no seq consumed. */
    snapshot before = snap(s);
    assert_int_equal(del(s, "k1", &r), SKV_ENOTFOUND);
    assert_int_equal(r.created, 0);
    assert_unchanged(s, before);
    assert_int_equal(del(s, "never", &r), SKV_ENOTFOUND);
    assert_unchanged(s, before);

    /* Re-create after delete: created again, next seq. */
    assert_int_equal(put(s, "k1", "again", &r), SKV_OK);
    assert_int_equal(r.created, 1);
    assert_true(r.version == 4);

    assert_int_equal(del(s, "k1", &r), SKV_OK);
    assert_int_equal(del(s, "k2", &r), SKV_OK);
    assert_true(r.version == 6);
    assert_true(shard_keys(s) == 0);
    assert_true(shard_bytes(s) == 0);
    assert_true(shard_check(s));
}

/* ---- conditions ---------------------------------------------------------------------- */

/* Asserts a refused write: EPRECOND, the current version reported, and
 * nothing changed (value, version, counters, seq). */
static void assert_refused(shard *s, int rc, const shard_result *r, const char *key, const char *cur_val,
                           uint64_t cur_version, snapshot before) {
    assert_int_equal(rc, SKV_EPRECOND);
    assert_true(r->version == cur_version);
    assert_int_equal(r->created, 0);
    if (cur_val)
        assert_has(s, key, cur_val, cur_version);
    else
        assert_missing(s, key);
    assert_unchanged(s, before);
}

static void test_cond_version(void **state) {
    shard *s = *state;
    shard_result r;
    assert_int_equal(put(s, "other", "o", &r), SKV_OK); /* seq 1 */
    assert_int_equal(put(s, "k", "v1", &r), SKV_OK);     /* seq 2 */
    assert_true(r.version == 2);

    /* Holds: PUT with the current version. */
    assert_int_equal(put_if(s, "k", "v2", SHARD_COND_VERSION, 2, &r), SKV_OK);
    assert_true(r.version == 3);
    assert_int_equal(r.created, 0);
    assert_has(s, "k", "v2", 3);

    /* Fails: stale, future, zero, and another key's version. */
    static const uint64_t wrong[] = { 2, 4, 0, 1, UINT64_MAX };
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        snapshot before = snap(s);
        int rc = put_if(s, "k", "nope", SHARD_COND_VERSION, wrong[i], &r);
        assert_refused(s, rc, &r, "k", "v2", 3, before);
        rc = del_if(s, "k", SHARD_COND_VERSION, wrong[i], &r);
        assert_refused(s, rc, &r, "k", "v2", 3, before);
    }

    /* Fails on a missing key, whatever the expected version; version 0. */
    static const uint64_t any[] = { 0, 1, 3 };
    for (size_t i = 0; i < sizeof any / sizeof any[0]; i++) {
        snapshot before = snap(s);
        int rc = put_if(s, "absent", "x", SHARD_COND_VERSION, any[i], &r);
        assert_refused(s, rc, &r, "absent", NULL, 0, before);
        rc = del_if(s, "absent", SHARD_COND_VERSION, any[i], &r);
        assert_refused(s, rc, &r, "absent", NULL, 0, before);
    }

    /* Holds: DELETE with the current version. */
    assert_int_equal(del_if(s, "k", SHARD_COND_VERSION, 3, &r), SKV_OK);
    assert_true(r.version == 4);
    assert_missing(s, "k");
    assert_true(shard_check(s));
}

static void test_cond_exists(void **state) {
    shard *s = *state;
    shard_result r;
    /* Fails on a missing key. */
    snapshot before = snap(s);
    int rc = put_if(s, "k", "v", SHARD_COND_EXISTS, 0, &r);
    assert_refused(s, rc, &r, "k", NULL, 0, before);
    rc = del_if(s, "k", SHARD_COND_EXISTS, 0, &r);
    assert_refused(s, rc, &r, "k", NULL, 0, before);

    assert_int_equal(put(s, "k", "v1", &r), SKV_OK);
    assert_true(r.version == 1);
    /* Holds: expected_version is ignored. */
    assert_int_equal(put_if(s, "k", "v2", SHARD_COND_EXISTS, 12345, &r), SKV_OK);
    assert_true(r.version == 2);
    assert_int_equal(r.created, 0);
    assert_has(s, "k", "v2", 2);
    assert_int_equal(del_if(s, "k", SHARD_COND_EXISTS, 0, &r), SKV_OK);
    assert_true(r.version == 3);
    assert_missing(s, "k");

    /* Fails again now that it is deleted. */
    before = snap(s);
    rc = put_if(s, "k", "v3", SHARD_COND_EXISTS, 0, &r);
    assert_refused(s, rc, &r, "k", NULL, 0, before);
}

static void test_cond_absent(void **state) {
    shard *s = *state;
    shard_result r;
    /* Holds: creates. */
    assert_int_equal(put_if(s, "k", "v1", SHARD_COND_ABSENT, 777, &r), SKV_OK);
    assert_true(r.version == 1);
    assert_int_equal(r.created, 1);
    assert_has(s, "k", "v1", 1);

    /* Fails: exists; current version reported. */
    snapshot before = snap(s);
    int rc = put_if(s, "k", "v2", SHARD_COND_ABSENT, 0, &r);
    assert_refused(s, rc, &r, "k", "v1", 1, before);
    rc = del_if(s, "k", SHARD_COND_ABSENT, 0, &r);
    assert_refused(s, rc, &r, "k", "v1", 1, before);

    /* DELETE if absent of a missing key: the condition holds, then the
     * delete finds nothing -> ENOTFOUND, nothing changed. */
    before = snap(s);
    rc = del_if(s, "missing", SHARD_COND_ABSENT, 0, &r);
    assert_int_equal(rc, SKV_ENOTFOUND);
    assert_unchanged(s, before);
}

/* ---- sequence numbers ---------------------------------------------------------------- */

static void test_versions_strictly_increasing(void **state) {
    shard *s = *state;
    shard_result r;
    uint64_t last = 0;
    char key[32];
    for (int i = 0; i < 300; i++) {
        snprintf(key, sizeof key, "k%d", i % 7);
        int rc = (i % 3 == 2) ? del(s, key, &r) : put(s, key, "v", &r);
        if (rc == SKV_OK) {
            assert_true(r.version == last + 1); /* exactly one per applied mutation */
            last = r.version;
        } else {
            assert_int_equal(rc, SKV_ENOTFOUND);
        }
        assert_true(s->seq == last);
    }
    assert_true(last > 200);
    assert_true(shard_check(s));
}

/* ---- out of memory ------------------------------------------------------------------------ */

static void test_enomem_leaves_shard_unchanged(void **state) {
    shard *s = *state;
    shard_result r;
    assert_int_equal(put(s, "keep", "old value", &r), SKV_OK);
    assert_true(r.version == 1);

    snapshot before = snap(s);
    skv_mem_fail_after(1);
    /* New key. */
    int rc = put(s, "new", "value", &r);
    assert_int_equal(rc, SKV_ENOMEM);
    assert_int_equal(r.created, 0);
    /* Overwrite: the old value stays. */
    rc = put(s, "keep", "replacement", &r);
    assert_int_equal(rc, SKV_ENOMEM);
    /* Conditional write whose condition holds: still ENOMEM. */
    rc = put_if(s, "keep", "replacement", SHARD_COND_VERSION, 1, &r);
    assert_int_equal(rc, SKV_ENOMEM);
    /* A refused condition is reported as such before any allocation. */
    rc = put_if(s, "keep", "replacement", SHARD_COND_ABSENT, 0, &r);
    assert_int_equal(rc, SKV_EPRECOND);
    assert_true(r.version == 1);
    skv_mem_fail_after(0);

    assert_unchanged(s, before);
    assert_missing(s, "new");
    assert_has(s, "keep", "old value", 1);

    /* No sequence number was consumed by the failed writes. */
    assert_int_equal(put(s, "new", "value", &r), SKV_OK);
    assert_true(r.version == 2);
    assert_int_equal(r.created, 1);

    /* The second allocation fails: the first write goes through. */
    skv_mem_fail_after(2);
    assert_int_equal(put(s, "a", "1", &r), SKV_OK);
    assert_true(r.version == 3);
    before = snap(s);
    assert_int_equal(put(s, "b", "2", &r), SKV_ENOMEM);
    skv_mem_fail_after(0);
    assert_unchanged(s, before);
    assert_missing(s, "b");
}

static void test_delete_under_memory_pressure(void **state) {
    shard *s = *state;
    shard_result r;
    assert_int_equal(put(s, "k", "v", &r), SKV_OK);
    /* A delete needs no client-sized allocation, so it works while every
     * skv_try_malloc fails (freeing memory is what a full node needs). */
    skv_mem_fail_after(1);
    assert_int_equal(del(s, "k", &r), SKV_OK);
    assert_true(r.version == 2);
    skv_mem_fail_after(0);
    assert_missing(s, "k");
    assert_true(shard_keys(s) == 0 && shard_bytes(s) == 0);
    assert_true(shard_check(s));
}

/* ---- random operations against a model ------------------------------------------------------ */

#define MODEL_KEYS 150
#define MODEL_MAX_VAL 96

typedef struct model_entry {
    int present;
    uint64_t version;
    uint32_t flags;
    size_t val_len;
    char val[MODEL_MAX_VAL];
} model_entry;

typedef struct model {
    model_entry e[MODEL_KEYS];
    uint64_t seq;
} model;

static uint64_t rng_state;

static uint64_t rng_next(void) { /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

static size_t model_key(int i, char *out) { return (size_t)snprintf(out, 32, "model-key-%d", i * 7919); }

static void model_totals(const model *m, uint64_t *keys, uint64_t *bytes) {
    char key[32];
    *keys = *bytes = 0;
    for (int i = 0; i < MODEL_KEYS; i++) {
        if (!m->e[i].present) continue;
        (*keys)++;
        *bytes += entry_bytes(model_key(i, key), m->e[i].val_len);
    }
}

/* One random operation, applied to both, results compared. */
static void model_step(shard *s, model *m) {
    int i = (int)(rng_next() % MODEL_KEYS);
    model_entry *me = &m->e[i];
    char key[32];
    size_t klen = model_key(i, key);

    shard_write w;
    memset(&w, 0, sizeof w);
    w.op = rng_next() % 3 == 0 ? SHARD_OP_DELETE : SHARD_OP_PUT;
    w.key = skv_slice_make(key, klen);
    char val[MODEL_MAX_VAL];
    size_t vlen = (size_t)(rng_next() % MODEL_MAX_VAL);
    for (size_t j = 0; j < vlen; j++) val[j] = (char)rng_next(); /* binary */
    if (w.op == SHARD_OP_PUT) {
        w.value = skv_slice_make(val, vlen);
        w.flags = (uint32_t)(rng_next() & SHARD_VAL_JSON);
    }
    uint64_t c = rng_next() % 8;
    w.cond = c < 4 ? SHARD_COND_NONE : c == 4 ? SHARD_COND_EXISTS : c == 5 ? SHARD_COND_ABSENT : SHARD_COND_VERSION;
    if (w.cond == SHARD_COND_VERSION) /* right version half of the time */
        w.expected_version = rng_next() % 2 ? me->version : rng_next() % (m->seq + 2);

    /* Expected outcome. */
    int holds;
    switch (w.cond) {
    case SHARD_COND_EXISTS: holds = me->present; break;
    case SHARD_COND_ABSENT: holds = !me->present; break;
    case SHARD_COND_VERSION: holds = me->present && me->version == w.expected_version; break;
    default: holds = 1; break;
    }
    int expect_rc;
    uint64_t expect_version = 0;
    int expect_created = 0;
    if (!holds) {
        expect_rc = SKV_EPRECOND;
        expect_version = me->present ? me->version : 0;
    } else if (w.op == SHARD_OP_DELETE && !me->present) {
        expect_rc = SKV_ENOTFOUND;
    } else {
        expect_rc = SKV_OK;
        expect_version = ++m->seq;
        expect_created = w.op == SHARD_OP_PUT && !me->present;
        if (w.op == SHARD_OP_PUT) {
            me->present = 1;
            me->version = expect_version;
            me->flags = w.flags;
            me->val_len = vlen;
            memcpy(me->val, val, vlen);
        } else {
            me->present = 0;
            me->version = 0;
        }
    }

    shard_result r;
    int rc = shard_apply(s, key_hash(key, klen), &w, &r);
    assert_int_equal(rc, expect_rc);
    if (rc != SKV_ENOTFOUND) assert_true(r.version == expect_version);
    assert_int_equal(r.created, expect_created);
}

static void model_compare(shard *s, const model *m) {
    uint64_t keys, bytes;
    model_totals(m, &keys, &bytes);
    assert_true(shard_check(s));
    assert_true(shard_keys(s) == keys);
    assert_true(shard_bytes(s) == bytes);
    assert_true(s->seq == m->seq);
    char key[32];
    for (int i = 0; i < MODEL_KEYS; i++) {
        size_t klen = model_key(i, key);
        seen g;
        memset(&g, 0, sizeof g);
        int rc = shard_get(s, key_hash(key, klen), skv_slice_make(key, klen), capture, &g);
        if (!m->e[i].present) {
            assert_int_equal(rc, SKV_ENOTFOUND);
            continue;
        }
        assert_int_equal(rc, SKV_OK);
        assert_true(g.version == m->e[i].version);
        assert_int_equal(g.flags, m->e[i].flags);
        assert_int_equal(g.val_len, m->e[i].val_len);
        assert_memory_equal(g.val, m->e[i].val, m->e[i].val_len);
    }
}

static void test_random_ops_match_model(void **state) {
    shard *s = *state;
    model *m = calloc(1, sizeof *m);
    assert_non_null(m);
    rng_state = 0x5eed0000c0ffee11ull;
    for (int step = 1; step <= 20000; step++) {
        model_step(s, m);
        if (step % 2500 == 0) model_compare(s, m);
    }
    model_compare(s, m);
    /* Drain: delete everything; accounting returns to zero. */
    char key[32];
    for (int i = 0; i < MODEL_KEYS; i++) {
        if (!m->e[i].present) continue;
        shard_result r;
        model_key(i, key);
        assert_int_equal(del(s, key, &r), SKV_OK);
        assert_true(r.version == ++m->seq);
        m->e[i].present = 0;
    }
    model_compare(s, m);
    assert_true(shard_keys(s) == 0 && shard_bytes(s) == 0);
    free(m);
}

/* ---- shard_list ---------------------------------------------------------------------------- */

#define LIST_KEYS 50

typedef struct list_seen {
    int calls;
    int hits[LIST_KEYS];
} list_seen;

static void list_capture(void *arg, const ht_entry *e) {
    list_seen *ls = arg;
    ls->calls++;
    int id = -1;
    char key[32];
    assert_true(e->key_len < sizeof key);
    memcpy(key, ht_entry_key(e), e->key_len);
    key[e->key_len] = '\0';
    assert_int_equal(sscanf(key, "list-%d", &id), 1);
    assert_true(id >= 0 && id < LIST_KEYS);
    ls->hits[id]++;
}

static size_t list(shard *s, size_t limit, list_seen *ls) {
    memset(ls, 0, sizeof *ls);
    return shard_list(s, limit, list_capture, ls);
}

static void test_list_limit(void **state) {
    shard *s = *state;
    list_seen ls;
    assert_int_equal(list(s, 10, &ls), 0); /* empty shard */
    assert_int_equal(ls.calls, 0);

    shard_result r;
    char key[32];
    for (int i = 0; i < LIST_KEYS; i++) {
        snprintf(key, sizeof key, "list-%d", i);
        assert_int_equal(put(s, key, "v", &r), SKV_OK);
    }

    assert_int_equal(list(s, 0, &ls), 0);
    assert_int_equal(ls.calls, 0);

    static const size_t limits[] = { 1, 2, 10, 49, 50, 51, 1000, SIZE_MAX };
    for (size_t k = 0; k < sizeof limits / sizeof limits[0]; k++) {
        size_t want = limits[k] < LIST_KEYS ? limits[k] : LIST_KEYS;
        assert_int_equal(list(s, limits[k], &ls), want);
        assert_int_equal(ls.calls, (int)want);
        int distinct = 0;
        for (int i = 0; i < LIST_KEYS; i++) {
            assert_true(ls.hits[i] <= 1); /* no entry twice */
            distinct += ls.hits[i];
        }
        assert_int_equal(distinct, (int)want);
    }

    /* After deletes the list shrinks with the shard. */
    for (int i = 0; i < LIST_KEYS; i += 2) {
        snprintf(key, sizeof key, "list-%d", i);
        assert_int_equal(del(s, key, &r), SKV_OK);
    }
    assert_int_equal(list(s, 1000, &ls), LIST_KEYS / 2);
    for (int i = 0; i < LIST_KEYS; i++) assert_int_equal(ls.hits[i], i % 2);
}

/* ---- concurrency ------------------------------------------------------------------------------ */

#define THREADS 4
#define OPS_PER_THREAD 6000
#define OWN_KEYS 40
#define SHARED_KEYS 8

typedef struct worker {
    shard *s;
    int id;
    uint64_t rng;
    uint64_t applied;          /* successful mutations */
    uint64_t *versions;        /* versions of successful mutations, in order */
    int own_present[OWN_KEYS]; /* final state of this thread's own keys */
    uint64_t own_version[OWN_KEYS];
    int failures;              /* result mismatches on own keys */
} worker;

static uint64_t worker_rand(worker *w) {
    w->rng ^= w->rng >> 12;
    w->rng ^= w->rng << 25;
    w->rng ^= w->rng >> 27;
    return w->rng * 2685821657736338717ull;
}

static void *worker_main(void *arg) {
    worker *w = arg;
    char key[48], val[64];
    for (int i = 0; i < OPS_PER_THREAD; i++) {
        int shared = worker_rand(w) % 2 == 0;
        int k = (int)(worker_rand(w) % (shared ? SHARED_KEYS : OWN_KEYS));
        size_t klen = (size_t)(shared ? snprintf(key, sizeof key, "shared:%d", k)
                                      : snprintf(key, sizeof key, "t%d:%d", w->id, k));
        size_t vlen = (size_t)snprintf(val, sizeof val, "%d-%d-%0*d", w->id, i, (int)(worker_rand(w) % 30), 0);
        shard_write wr;
        memset(&wr, 0, sizeof wr);
        wr.op = worker_rand(w) % 3 == 0 ? SHARD_OP_DELETE : SHARD_OP_PUT;
        wr.key = skv_slice_make(key, klen);
        wr.value = skv_slice_make(val, vlen);
        uint64_t c = worker_rand(w) % 4;
        wr.cond = c == 0 ? SHARD_COND_NONE : c == 1 ? SHARD_COND_EXISTS : c == 2 ? SHARD_COND_ABSENT : SHARD_COND_VERSION;
        if (wr.cond == SHARD_COND_VERSION) {
            /* Read the current version first; on shared keys another
             * thread may win the race, which is the point. */
            seen g;
            memset(&g, 0, sizeof g);
            shard_get(w->s, key_hash(key, klen), wr.key, capture, &g);
            wr.expected_version = g.version;
        }
        shard_result r;
        int rc = shard_apply(w->s, key_hash(key, klen), &wr, &r);
        if (rc == SKV_OK) {
            w->versions[w->applied++] = r.version;
        } else if (rc != SKV_EPRECOND && rc != SKV_ENOTFOUND) {
            w->failures++;
        }
        if (shared) continue;
        /* Own keys are touched by this thread only: the outcome is known. */
        int present = w->own_present[k];
        int holds = wr.cond == SHARD_COND_NONE || (wr.cond == SHARD_COND_EXISTS && present) ||
                    (wr.cond == SHARD_COND_ABSENT && !present) ||
                    (wr.cond == SHARD_COND_VERSION && present && w->own_version[k] == wr.expected_version);
        int want = !holds ? SKV_EPRECOND : (wr.op == SHARD_OP_DELETE && !present) ? SKV_ENOTFOUND : SKV_OK;
        if (rc != want) w->failures++;
        if (rc == SKV_OK) {
            w->own_present[k] = wr.op == SHARD_OP_PUT;
            w->own_version[k] = wr.op == SHARD_OP_PUT ? r.version : 0;
            if (wr.op == SHARD_OP_PUT && r.created != !present) w->failures++;
        }
    }
    return NULL;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_concurrent_writers(void **state) {
    shard *s = *state;
    worker ws[THREADS];
    pthread_t th[THREADS];
    memset(ws, 0, sizeof ws);
    for (int t = 0; t < THREADS; t++) {
        ws[t].s = s;
        ws[t].id = t;
        ws[t].rng = 0x9e3779b97f4a7c15ull * (uint64_t)(t + 1);
        ws[t].versions = calloc(OPS_PER_THREAD, sizeof(uint64_t));
        assert_non_null(ws[t].versions);
    }
    for (int t = 0; t < THREADS; t++) assert_int_equal(pthread_create(&th[t], NULL, worker_main, &ws[t]), 0);
    for (int t = 0; t < THREADS; t++) assert_int_equal(pthread_join(th[t], NULL), 0);

    assert_true(shard_check(s));
    uint64_t total = 0;
    for (int t = 0; t < THREADS; t++) {
        assert_int_equal(ws[t].failures, 0);
        /* Each thread sees its own successful writes in increasing order. */
        for (uint64_t i = 1; i < ws[t].applied; i++) assert_true(ws[t].versions[i] > ws[t].versions[i - 1]);
        total += ws[t].applied;
    }
    assert_true(s->seq == total);

    /* Every version 1..seq was handed out exactly once. */
    uint64_t *all = calloc(total ? total : 1, sizeof *all);
    assert_non_null(all);
    uint64_t n = 0;
    for (int t = 0; t < THREADS; t++)
        for (uint64_t i = 0; i < ws[t].applied; i++) all[n++] = ws[t].versions[i];
    qsort(all, n, sizeof *all, cmp_u64);
    for (uint64_t i = 0; i < n; i++) assert_true(all[i] == i + 1);
    free(all);

    /* Own keys end as their thread last left them. */
    uint64_t own_keys = 0;
    char key[48];
    for (int t = 0; t < THREADS; t++) {
        for (int k = 0; k < OWN_KEYS; k++) {
            snprintf(key, sizeof key, "t%d:%d", t, k);
            seen g;
            int rc = get(s, key, &g);
            if (ws[t].own_present[k]) {
                own_keys++;
                assert_int_equal(rc, SKV_OK);
                assert_true(g.version == ws[t].own_version[k]);
            } else {
                assert_int_equal(rc, SKV_ENOTFOUND);
            }
        }
        free(ws[t].versions);
    }
    uint64_t shared_keys = 0;
    for (int k = 0; k < SHARED_KEYS; k++) {
        snprintf(key, sizeof key, "shared:%d", k);
        seen g;
        shared_keys += get(s, key, &g) == SKV_OK;
    }
    assert_true(shard_keys(s) == own_keys + shared_keys);
}

/* ==== TTL, computed writes, observer, idempotency, eviction ================================= */

/* A fake wall clock (Unix ms) for shard->clock_ms.  Whole seconds matter
 * for LRU (the shard's atime is in seconds). */
#define T0 1700000000000ull
static uint64_t fake_now;
static uint64_t fake_clock(void) { return fake_now; }

static void use_fake_clock(shard *s, uint64_t now) {
    fake_now = now;
    s->clock_ms = fake_clock;
}

static int put_ttl(shard *s, const char *key, const char *val, uint64_t expires_ms, shard_result *res) {
    shard_write w;
    memset(&w, 0, sizeof w);
    w.op = SHARD_OP_PUT;
    w.key = skv_slice_cstr(key);
    w.value = skv_slice_cstr(val);
    w.expires_ms = expires_ms;
    return shard_apply(s, key_hash(key, strlen(key)), &w, res);
}

static shard_stats stats(shard *s) {
    shard_stats st;
    memset(&st, 0xa5, sizeof st);
    shard_stats_get(s, &st);
    return st;
}

/* The expires_ms of a visible key (via shard_get). */
static void capture_expiry(void *arg, const ht_entry *e) { *(uint64_t *)arg = e->expires_ms; }

static uint64_t expiry_of(shard *s, const char *key) {
    uint64_t exp = 12345;
    assert_int_equal(shard_get(s, key_hash(key, strlen(key)), skv_slice_cstr(key), capture_expiry, &exp), SKV_OK);
    return exp;
}

/* ---- log plumbing, as commit.c drives it --------------------------------------------------- */

static int kicks;
static void count_kick(void *arg, shard *s) {
    (void)s;
    (*(int *)arg)++;
    assert_int_equal(pthread_mutex_trylock(&s->lock), EBUSY); /* called under the lock */
}

static int delivered;
static void count_delivery(shard_waiter *w) {
    assert_int_equal(w->status, 0);
    delivered++;
}

/* Hands the shard's buffered records to the "disk" and commits them, as the
 * flusher does after a good fdatasync; then delivers the waiters.  Returns
 * the number of records in the batch. */
static size_t commit_all(shard *s) {
    skv_buf batch;
    skv_buf_init(&batch);
    uint64_t last = 0;
    shard_waiter *ws = NULL;
    pthread_mutex_lock(&s->lock);
    shard_take_batch(s, &batch, &last, &ws);
    shard_commit_batch(s, &batch);
    pthread_mutex_unlock(&s->lock);
    size_t n = wal_count_records(batch.data, batch.len);
    while (ws) {
        shard_waiter *next = ws->next;
        ws->deliver(ws);
        ws = next;
    }
    skv_buf_free(&batch);
    return n;
}

/* Decodes the records in the shard's buffer into out[max]; returns how many. */
static size_t buffered_records(shard *s, wal_record *out, size_t max) {
    size_t off = 0, n = 0;
    while (off < s->buf.len) {
        size_t used = 0;
        assert_true(n < max);
        assert_int_equal(wal_record_decode(s->buf.data + off, s->buf.len - off, &out[n], &used), SKV_OK);
        off += used;
        n++;
    }
    return n;
}

/* ---- observer recording ---------------------------------------------------------------------- */

typedef struct obs_side {
    int present;
    uint64_t version;
    uint32_t flags;
    uint64_t expires_ms;
    char key[64];
    size_t key_len;
    char val[64];
} obs_side;

typedef struct obs_event {
    obs_side old, now;
} obs_event;

typedef struct obs_log {
    shard *s;
    int n;
    int bad_shard, unlocked;
    obs_event ev[64];
} obs_log;

static void obs_copy(obs_side *d, const ht_entry *e) {
    memset(d, 0, sizeof *d);
    if (!e) return;
    d->present = 1;
    d->version = e->version;
    d->flags = e->flags;
    d->expires_ms = e->expires_ms;
    assert_true(e->key_len < sizeof d->key && e->val_len < sizeof d->val);
    memcpy(d->key, ht_entry_key(e), e->key_len);
    d->key_len = e->key_len;
    memcpy(d->val, ht_entry_value(e), e->val_len);
}

static void record_observer(void *arg, shard *s, const ht_entry *old, const ht_entry *now) {
    obs_log *l = arg;
    if (s != l->s) l->bad_shard++;
    if (pthread_mutex_trylock(&s->lock) == 0) { /* must be called under the lock */
        l->unlocked++;
        pthread_mutex_unlock(&s->lock);
    }
    assert_true(old || now);
    assert_true(l->n < 64);
    obs_copy(&l->ev[l->n].old, old);
    obs_copy(&l->ev[l->n].now, now);
    l->n++;
}

static void watch(shard *s, obs_log *l) {
    memset(l, 0, sizeof *l);
    l->s = s;
    shard_set_observer(s, record_observer, l);
}

static void assert_side(const obs_side *d, const char *key, const char *val, uint64_t version) {
    if (!key) {
        assert_int_equal(d->present, 0);
        return;
    }
    assert_int_equal(d->present, 1);
    assert_int_equal(d->key_len, strlen(key));
    assert_memory_equal(d->key, key, d->key_len);
    assert_string_equal(d->val, val);
    assert_true(d->version == version);
}

/* Asserts event i of l: old (key/val/version, NULL key = absent) -> now. */
static void assert_event(const obs_log *l, int i, const char *old_key, const char *old_val, uint64_t old_version,
                         const char *new_key, const char *new_val, uint64_t new_version) {
    assert_true(i < l->n);
    assert_side(&l->ev[i].old, old_key, old_val, old_version);
    assert_side(&l->ev[i].now, new_key, new_val, new_version);
}

/* ---- TTL ---------------------------------------------------------------------------------------- */

static void test_ttl_read_before_and_after(void **state) {
    shard *s = *state;
    use_fake_clock(s, T0);
    shard_result r;
    assert_int_equal(put(s, "perm", "forever", &r), SKV_OK);
    assert_int_equal(put_ttl(s, "tmp", "short-lived", T0 + 1000, &r), SKV_OK);
    assert_true(r.version == 2);
    assert_int_equal(r.created, 1);
    assert_true(shard_keys(s) == 2);
    assert_true(shard_bytes(s) == entry_bytes(4, 7) + entry_bytes(3, 11));
    assert_true(expiry_of(s, "tmp") == T0 + 1000);
    assert_true(expiry_of(s, "perm") == 0);

    fake_now = T0 + 999; /* one ms before: still there */
    assert_has(s, "tmp", "short-lived", 2);
    shard_stats st = stats(s);
    assert_true(st.hits == 3 && st.misses == 0 && st.expired == 0 && st.evicted == 0);

    fake_now = T0 + 1000; /* expires_ms itself is past */
    assert_missing(s, "tmp");
    st = stats(s);
    assert_true(st.hits == 3 && st.misses == 1 && st.expired == 1);
    assert_true(shard_keys(s) == 1);
    assert_true(shard_bytes(s) == entry_bytes(4, 7));
    assert_true(shard_check(s));
    /* A second read is a plain miss: nothing left to expire. */
    assert_missing(s, "tmp");
    st = stats(s);
    assert_true(st.misses == 2 && st.expired == 1);
    assert_has(s, "perm", "forever", 1);
    assert_true(s->seq == 2); /* expiry is not a mutation */

    /* Re-written without a TTL, the key lives on at any time. */
    assert_int_equal(put_ttl(s, "tmp", "back", 0, &r), SKV_OK);
    assert_int_equal(r.created, 1);
    fake_now = UINT64_MAX - 1;
    assert_has(s, "tmp", "back", 3);
    assert_true(shard_check(s));
}

static void test_ttl_conditions_see_expired_as_absent(void **state) {
    shard *s = *state;
    use_fake_clock(s, T0);
    shard_result r;
    assert_int_equal(put_ttl(s, "a", "1", T0 + 10, &r), SKV_OK); /* seq 1 */
    assert_int_equal(put_ttl(s, "b", "2", T0 + 10, &r), SKV_OK); /* seq 2 */
    assert_int_equal(put_ttl(s, "c", "3", T0 + 10, &r), SKV_OK); /* seq 3 */
    assert_int_equal(put_ttl(s, "d", "4", T0 + 10, &r), SKV_OK); /* seq 4 */
    /* Before expiry: create-only fails with the current version. */
    assert_int_equal(put_if(s, "a", "x", SHARD_COND_ABSENT, 0, &r), SKV_EPRECOND);
    assert_true(r.version == 1);
    fake_now = T0 + 10;

    /* If-None-Match: * holds and creates. */
    assert_int_equal(put_if(s, "a", "new", SHARD_COND_ABSENT, 0, &r), SKV_OK);
    assert_true(r.version == 5);
    assert_int_equal(r.created, 1);
    assert_has(s, "a", "new", 5);
    assert_true(expiry_of(s, "a") == 0); /* the new value has no TTL */

    /* DELETE of an expired key: ENOTFOUND, no seq, the entry is gone. */
    snapshot before = snap(s);
    assert_int_equal(del(s, "b", &r), SKV_ENOTFOUND);
    assert_true(s->seq == before.seq);
    assert_true(shard_keys(s) == before.keys - 1);
    assert_true(shard_check(s));

    /* If-Match: * and If-Match: <old version> fail with version 0. */
    assert_int_equal(put_if(s, "c", "x", SHARD_COND_EXISTS, 0, &r), SKV_EPRECOND);
    assert_true(r.version == 0);
    assert_int_equal(del_if(s, "d", SHARD_COND_VERSION, 4, &r), SKV_EPRECOND);
    assert_true(r.version == 0);
    assert_true(s->seq == 5);
    shard_stats st = stats(s);
    assert_true(st.expired == 4); /* a, b, c, d: each removed once when met */
    assert_true(shard_keys(s) == 1);
    assert_true(shard_bytes(s) == entry_bytes(1, 3));
    assert_true(shard_check(s));
}

static void test_ttl_expire_some_across_calls(void **state) {
    shard *s = *state;
    use_fake_clock(s, T0);
    shard_result r;
    char key[32];
    enum { N = 3000 };
    uint64_t live_bytes = 0;
    /* Every third key lives (no TTL or a later one); the rest expire at T0 + 500. */
    for (int i = 0; i < N; i++) {
        int n = snprintf(key, sizeof key, "ttl-%d", i);
        uint64_t exp = i % 3 == 0 ? (i % 2 ? T0 + 1000000 : 0) : T0 + 500 - (uint64_t)(i % 7);
        assert_int_equal(put_ttl(s, key, "value", exp, &r), SKV_OK);
        if (i % 3 == 0) live_bytes += entry_bytes((size_t)n, 5);
    }
    /* Nothing has expired yet: a full pass removes nothing. */
    uint64_t cursor = 0;
    size_t removed = 0, calls = 0;
    do {
        removed += shard_expire_some(s, &cursor, 8);
        calls++;
    } while (cursor != 0 && calls < 100000);
    assert_int_equal(removed, 0);
    assert_true(cursor == 0);

    fake_now = T0 + 500;
    calls = 0;
    do {
        removed += shard_expire_some(s, &cursor, 8);
        calls++;
        if (calls % 37 == 0) assert_true(shard_check(s));
    } while (cursor != 0 && calls < 100000);
    assert_true(cursor == 0);
    assert_true(calls > 10); /* bounded work per call: the pass took many */
    assert_int_equal(removed, N - N / 3);
    assert_true(shard_keys(s) == N / 3);
    assert_true(shard_bytes(s) == live_bytes);
    assert_true(stats(s).expired == N - N / 3);
    assert_true(shard_check(s));
    for (int i = 0; i < N; i += 3) {
        snprintf(key, sizeof key, "ttl-%d", i);
        seen g;
        assert_int_equal(get(s, key, &g), SKV_OK);
    }
    /* A second pass finds nothing more. */
    calls = 0;
    size_t again = 0;
    do {
        again += shard_expire_some(s, &cursor, 64);
    } while (cursor != 0 && ++calls < 100000);
    assert_int_equal(again, 0);
    assert_true(stats(s).misses == 0); /* the sweeper does not count reads */
}

/* Almost everything expires at once: the table shrinks while the pass is
 * under way, and the pass must still remove every expired entry and keep
 * every live one. */
static void test_ttl_expire_some_while_shrinking(void **state) {
    shard *s = *state;
    use_fake_clock(s, T0);
    shard_result r;
    char key[32];
    enum { N = 4096 };
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "shrink-%d", i);
        assert_int_equal(put_ttl(s, key, "v", i % 100 == 0 ? 0 : T0 + 1, &r), SKV_OK);
    }
    fake_now = T0 + 1;
    uint64_t cursor = 0;
    size_t removed = 0, calls = 0;
    do {
        removed += shard_expire_some(s, &cursor, 3);
        calls++;
    } while (cursor != 0 && calls < 100000);
    assert_true(cursor == 0);
    assert_true(calls > 1);
    assert_int_equal(removed, N - (N + 99) / 100);
    assert_true(shard_keys(s) == (N + 99) / 100);
    assert_true(shard_check(s));
    for (int i = 0; i < N; i += 100) {
        snprintf(key, sizeof key, "shrink-%d", i);
        seen g;
        assert_int_equal(get(s, key, &g), SKV_OK);
    }
}

static wal_record rec_of(uint64_t seq, int op, const char *key, const char *val, uint32_t flags, uint64_t expires) {
    wal_record r;
    memset(&r, 0, sizeof r);
    r.seq = seq;
    r.op = op;
    r.flags = flags;
    r.expires_ms = expires;
    r.key = skv_slice_cstr(key);
    if (val) r.value = skv_slice_cstr(val);
    return r;
}

static void test_ttl_replay(void **state) {
    shard *s = *state;
    use_fake_clock(s, T0);
    obs_log l;
    watch(s, &l);
    wal_record rec;

    /* An older version, then an expired PUT of the same key: the key is gone. */
    rec = rec_of(1, WAL_OP_PUT, "gone", "old", 0, 0);
    assert_int_equal(shard_replay(s, &rec), SKV_OK);
    assert_has(s, "gone", "old", 1);
    rec = rec_of(2, WAL_OP_PUT, "gone", "expired", 0, T0 - 1);
    assert_int_equal(shard_replay(s, &rec), SKV_OK);
    assert_true(s->seq == 2);
    assert_missing(s, "gone");
    assert_true(shard_keys(s) == 0 && shard_bytes(s) == 0);
    assert_true(shard_check(s));
    assert_int_equal(l.n, 2);
    assert_event(&l, 0, NULL, NULL, 0, "gone", "old", 1);
    assert_event(&l, 1, "gone", "old", 1, NULL, NULL, 0);

    /* Expiring exactly now counts as expired. */
    rec = rec_of(3, WAL_OP_PUT, "edge", "x", 0, T0);
    assert_int_equal(shard_replay(s, &rec), SKV_OK);
    assert_missing(s, "edge");
    assert_true(s->seq == 3);

    /* An expired record of a key never seen: nothing installed, seq raised. */
    rec = rec_of(10, WAL_OP_PUT, "never", "v", SHARD_VAL_JSON, 1);
    assert_int_equal(shard_replay(s, &rec), SKV_OK);
    assert_missing(s, "never");
    assert_true(s->seq == 10);

    /* An unexpired PUT keeps its expires_ms (and loses the log's group flag). */
    rec = rec_of(11, WAL_OP_PUT, "live", "v", SHARD_VAL_JSON | WAL_FLAG_GROUP_NEXT, T0 + 5000);
    assert_int_equal(shard_replay(s, &rec), SKV_OK);
    seen g;
    assert_int_equal(get(s, "live", &g), SKV_OK);
    assert_true(g.version == 11);
    assert_int_equal(g.flags, SHARD_VAL_JSON);
    assert_true(expiry_of(s, "live") == T0 + 5000);
    assert_true(shard_check(s));
    /* ... and expires when its time comes. */
    fake_now = T0 + 5000;
    assert_missing(s, "live");
    assert_true(shard_keys(s) == 0 && shard_bytes(s) == 0);

    /* An older record replayed after a newer expired one of another key
     * does not disturb it; a stale expired record does not remove a newer
     * live version. */
    rec = rec_of(20, WAL_OP_PUT, "k", "new", 0, 0);
    assert_int_equal(shard_replay(s, &rec), SKV_OK);
    rec = rec_of(15, WAL_OP_PUT, "k", "stale-expired", 0, 1);
    assert_int_equal(shard_replay(s, &rec), SKV_OK);
    assert_has(s, "k", "new", 20);
    assert_true(s->seq == 20);
    assert_true(shard_check(s));
}

/* The TTL is logged with the write: the record carries expires_ms, and a
 * pending (sync) write of an expired TTL is absent for conditions. */
static void test_ttl_logged_and_pending(void **state) {
    shard *s = *state;
    use_fake_clock(s, T0);
    kicks = 0;
    shard_attach_log(s, 1, count_kick, &kicks);
    shard_result r;
    assert_int_equal(put_ttl(s, "p", "v", T0 + 100, &r), SKV_OK);
    assert_int_equal(kicks, 1);
    wal_record recs[4];
    assert_int_equal(buffered_records(s, recs, 4), 1);
    assert_true(recs[0].expires_ms == T0 + 100);
    assert_int_equal(recs[0].op, WAL_OP_PUT);
    assert_missing(s, "p"); /* pending: not visible */
    fake_now = T0 + 100;
    /* The pending write has expired: create-only holds. */
    assert_int_equal(put_if(s, "p", "w", SHARD_COND_ABSENT, 0, &r), SKV_OK);
    assert_int_equal(r.created, 1);
    assert_true(r.version == 2);
    assert_int_equal(commit_all(s), 2);
    assert_has(s, "p", "w", 2);
    assert_true(expiry_of(s, "p") == 0);
    assert_true(shard_check(s));
}

/* ---- computed writes ------------------------------------------------------------------------- */

typedef struct incr_arg {
    long delta, max;
    int calls;
    int saw_cur;
    uint64_t cur_version;
    int value_not_empty;
    uint32_t set_flags;
    uint64_t set_expires;
    uint32_t preset_flags;
    uint64_t preset_expires;
} incr_arg;

/* A counter: the current decimal value (0 when absent) plus delta;
 * SKV_ERANGE past max. */
static int incr_compute(void *arg, const ht_entry *cur, skv_buf *value, uint32_t *flags, uint64_t *expires_ms) {
    incr_arg *a = arg;
    a->calls++;
    if (value->len != 0) a->value_not_empty++;
    a->preset_flags = *flags;
    a->preset_expires = *expires_ms;
    long v = 0;
    a->saw_cur = cur != NULL;
    if (cur) {
        char tmp[32];
        size_t n = cur->val_len < sizeof tmp - 1 ? cur->val_len : sizeof tmp - 1;
        memcpy(tmp, ht_entry_value(cur), n);
        tmp[n] = '\0';
        v = strtol(tmp, NULL, 10);
        a->cur_version = cur->version;
    }
    v += a->delta;
    if (v > a->max) return SKV_ERANGE;
    skv_buf_printf(value, "%ld", v);
    if (a->set_flags) *flags = a->set_flags;
    if (a->set_expires) *expires_ms = a->set_expires;
    return SKV_OK;
}

static int incr(shard *s, const char *key, incr_arg *a, shard_waiter *waiter, shard_result *res) {
    shard_write w;
    memset(&w, 0, sizeof w);
    w.op = SHARD_OP_PUT;
    w.key = skv_slice_cstr(key);
    w.value = skv_slice_cstr("ignored");
    w.compute = incr_compute;
    w.compute_arg = a;
    w.waiter = waiter;
    return shard_apply(s, key_hash(key, strlen(key)), &w, res);
}

static void test_compute_increments(void **state) {
    shard *s = *state;
    use_fake_clock(s, T0);
    incr_arg a = { .delta = 5, .max = 100 };
    shard_result r;
    assert_int_equal(incr(s, "ctr", &a, NULL, &r), SKV_OK);
    assert_int_equal(a.saw_cur, 0);
    assert_int_equal(r.created, 1);
    assert_true(r.version == 1);
    assert_has(s, "ctr", "5", 1);
    assert_int_equal(incr(s, "ctr", &a, NULL, &r), SKV_OK);
    assert_int_equal(a.saw_cur, 1);
    assert_true(a.cur_version == 1);
    assert_int_equal(r.created, 0);
    a.delta = 37;
    assert_int_equal(incr(s, "ctr", &a, NULL, &r), SKV_OK);
    assert_has(s, "ctr", "47", 3);
    assert_int_equal(a.calls, 3);
    assert_int_equal(a.value_not_empty, 0);
    assert_true(shard_bytes(s) == entry_bytes(3, 2));

    /* The callback may set the flags and the TTL (preset from the write). */
    a.delta = 1;
    a.set_flags = SHARD_VAL_JSON;
    a.set_expires = T0 + 50;
    assert_int_equal(incr(s, "ctr", &a, NULL, &r), SKV_OK);
    assert_int_equal(a.preset_flags, 0);
    assert_true(a.preset_expires == 0);
    seen g;
    assert_int_equal(get(s, "ctr", &g), SKV_OK);
    assert_string_equal(g.val, "48");
    assert_int_equal(g.flags, SHARD_VAL_JSON);
    assert_true(expiry_of(s, "ctr") == T0 + 50);
    /* Once expired, the callback sees no current value. */
    fake_now = T0 + 50;
    a.set_flags = 0;
    a.set_expires = 0;
    a.delta = 2;
    assert_int_equal(incr(s, "ctr", &a, NULL, &r), SKV_OK);
    assert_int_equal(a.saw_cur, 0);
    assert_int_equal(r.created, 1);
    assert_has(s, "ctr", "2", 5);
    assert_true(shard_check(s));
}

static void test_compute_error_changes_nothing(void **state) {
    shard *s = *state;
    kicks = 0;
    shard_attach_log(s, 0, count_kick, &kicks); /* everysec: applied at once, but logged */
    obs_log l;
    watch(s, &l);
    incr_arg a = { .delta = 60, .max = 100 };
    shard_result r;
    assert_int_equal(incr(s, "ctr", &a, NULL, &r), SKV_OK);
    assert_int_equal(kicks, 1);
    assert_int_equal(l.n, 1);
    size_t buf_len = s->buf.len;
    snapshot before = snap(s);

    assert_int_equal(incr(s, "ctr", &a, NULL, &r), SKV_ERANGE); /* 120 > 100 */
    assert_int_equal(a.calls, 2);
    assert_unchanged(s, before);
    assert_has(s, "ctr", "60", 1);
    assert_int_equal(s->buf.len, buf_len); /* nothing logged */
    assert_int_equal(kicks, 1);
    assert_int_equal(l.n, 1);              /* nothing observed */

    /* A refused condition is decided before the callback runs. */
    shard_write w;
    memset(&w, 0, sizeof w);
    w.op = SHARD_OP_PUT;
    w.key = skv_slice_cstr("ctr");
    w.compute = incr_compute;
    w.compute_arg = &a;
    w.cond = SHARD_COND_ABSENT;
    assert_int_equal(shard_apply(s, key_hash("ctr", 3), &w, &r), SKV_EPRECOND);
    assert_int_equal(a.calls, 2);
    assert_unchanged(s, before);

    /* The next good write gets the next seq: none was used by the error. */
    a.delta = 40;
    assert_int_equal(incr(s, "ctr", &a, NULL, &r), SKV_OK);
    assert_true(r.version == 2);
    assert_has(s, "ctr", "100", 2);
    assert_true(shard_check(s));
}

/* Under --fsync always the callback sees the newest state, pending included. */
static void test_compute_sees_pending(void **state) {
    shard *s = *state;
    kicks = delivered = 0;
    shard_attach_log(s, 1, count_kick, &kicks);
    incr_arg a = { .delta = 1, .max = 1000 };
    shard_waiter ws[3];
    memset(ws, 0, sizeof ws);
    shard_result r;
    for (int i = 0; i < 3; i++) {
        ws[i].deliver = count_delivery;
        assert_int_equal(incr(s, "ctr", &a, &ws[i], &r), SKV_OK);
        assert_int_equal(r.pending, 1);
        assert_true(r.version == (uint64_t)i + 1);
        assert_int_equal(a.saw_cur, i > 0);
        if (i > 0) assert_true(a.cur_version == (uint64_t)i);
        assert_missing(s, "ctr"); /* nothing visible before the disk */
    }
    assert_int_equal(kicks, 3);
    wal_record recs[4];
    assert_int_equal(buffered_records(s, recs, 4), 3);
    assert_true(skv_slice_eq(recs[2].value, SKV_SLICE_LIT("3")));

    /* An error leaves the pending state alone. */
    a.max = 3;
    snapshot before = snap(s);
    assert_int_equal(incr(s, "ctr", &a, NULL, &r), SKV_ERANGE);
    assert_unchanged(s, before);

    assert_int_equal(commit_all(s), 3);
    assert_int_equal(delivered, 3);
    assert_has(s, "ctr", "3", 3);
    assert_true(shard_check(s));
}

/* ---- observer ----------------------------------------------------------------------------------- */

static void test_observer_immediate(void **state) {
    shard *s = *state;
    use_fake_clock(s, T0);
    obs_log l;
    watch(s, &l);
    shard_result r;
    assert_int_equal(put(s, "k", "v1", &r), SKV_OK);
    assert_int_equal(l.n, 1);
    assert_event(&l, 0, NULL, NULL, 0, "k", "v1", 1);
    assert_int_equal(put(s, "k", "v2", &r), SKV_OK);
    assert_event(&l, 1, "k", "v1", 1, "k", "v2", 2);
    assert_int_equal(del(s, "k", &r), SKV_OK);
    assert_event(&l, 2, "k", "v2", 2, NULL, NULL, 0);
    assert_int_equal(l.n, 3);

    /* Refused writes and reads are not observed. */
    assert_int_equal(del(s, "k", &r), SKV_ENOTFOUND);
    assert_int_equal(put_if(s, "k", "x", SHARD_COND_EXISTS, 0, &r), SKV_EPRECOND);
    assert_missing(s, "k");
    assert_int_equal(l.n, 3);

    /* Expiry on read, on a write of the key, and by the sweeper. */
    assert_int_equal(put_ttl(s, "e1", "a", T0 + 1, &r), SKV_OK); /* seq 4 */
    assert_int_equal(put_ttl(s, "e2", "b", T0 + 1, &r), SKV_OK); /* seq 5 */
    assert_int_equal(put_ttl(s, "e3", "c", T0 + 1, &r), SKV_OK); /* seq 6 */
    assert_int_equal(l.n, 6);
    fake_now = T0 + 1;
    assert_missing(s, "e1");
    assert_int_equal(l.n, 7);
    assert_event(&l, 6, "e1", "a", 4, NULL, NULL, 0);
    assert_int_equal(put(s, "e2", "fresh", &r), SKV_OK); /* seq 7 */
    assert_int_equal(l.n, 9);
    assert_event(&l, 7, "e2", "b", 5, NULL, NULL, 0);    /* the expired one leaves ... */
    assert_event(&l, 8, NULL, NULL, 0, "e2", "fresh", 7); /* ... the new one is created */
    uint64_t cursor = 0;
    size_t removed = 0;
    do removed += shard_expire_some(s, &cursor, 16);
    while (cursor != 0);
    assert_int_equal(removed, 1);
    assert_int_equal(l.n, 10);
    assert_event(&l, 9, "e3", "c", 6, NULL, NULL, 0);

    /* Eviction. */
    uint64_t freed = 0;
    assert_int_equal(shard_evict_one(s, 5, 0, &freed), SKV_OK);
    assert_int_equal(l.n, 11);
    assert_event(&l, 10, "e2", "fresh", 7, NULL, NULL, 0);
    assert_true(freed == entry_bytes(2, 5));

    /* Replay: create, replace, stale (ignored), delete, delete of nothing. */
    wal_record rec = rec_of(20, WAL_OP_PUT, "r", "one", 0, 0);
    assert_int_equal(shard_replay(s, &rec), SKV_OK);
    assert_event(&l, 11, NULL, NULL, 0, "r", "one", 20);
    rec = rec_of(21, WAL_OP_PUT, "r", "two", 0, 0);
    assert_int_equal(shard_replay(s, &rec), SKV_OK);
    assert_event(&l, 12, "r", "one", 20, "r", "two", 21);
    rec = rec_of(19, WAL_OP_PUT, "r", "stale", 0, 0);
    assert_int_equal(shard_replay(s, &rec), SKV_OK);
    assert_int_equal(l.n, 13);
    rec = rec_of(22, WAL_OP_DELETE, "r", NULL, 0, 0);
    assert_int_equal(shard_replay(s, &rec), SKV_OK);
    assert_event(&l, 13, "r", "two", 21, NULL, NULL, 0);
    rec = rec_of(23, WAL_OP_DELETE, "r", NULL, 0, 0);
    assert_int_equal(shard_replay(s, &rec), SKV_OK);
    assert_int_equal(l.n, 14);

    assert_int_equal(l.bad_shard, 0);
    assert_int_equal(l.unlocked, 0);
    assert_true(shard_check(s));
}

/* Under --fsync always a write is observed when it becomes visible. */
static void test_observer_pending(void **state) {
    shard *s = *state;
    kicks = delivered = 0;
    shard_attach_log(s, 1, count_kick, &kicks);
    obs_log l;
    watch(s, &l);
    shard_result r;
    shard_waiter w1 = { .deliver = count_delivery }, w2 = { .deliver = count_delivery };
    shard_write w;
    memset(&w, 0, sizeof w);
    w.op = SHARD_OP_PUT;
    w.key = skv_slice_cstr("k");
    w.value = skv_slice_cstr("v1");
    w.waiter = &w1;
    assert_int_equal(shard_apply(s, key_hash("k", 1), &w, &r), SKV_OK);
    assert_int_equal(r.pending, 1);
    assert_int_equal(l.n, 0);
    assert_int_equal(commit_all(s), 1);
    assert_int_equal(delivered, 1);
    assert_int_equal(l.n, 1);
    assert_event(&l, 0, NULL, NULL, 0, "k", "v1", 1);

    /* Two writes of the key in one batch: each observed in order at commit. */
    w.value = skv_slice_cstr("v2");
    w.waiter = &w1;
    assert_int_equal(shard_apply(s, key_hash("k", 1), &w, &r), SKV_OK);
    w.value = skv_slice_cstr("v3");
    w.waiter = &w2;
    assert_int_equal(shard_apply(s, key_hash("k", 1), &w, &r), SKV_OK);
    assert_int_equal(l.n, 1);
    assert_has(s, "k", "v1", 1);
    assert_int_equal(commit_all(s), 2);
    assert_int_equal(l.n, 3);
    assert_event(&l, 1, "k", "v1", 1, "k", "v2", 2);
    assert_event(&l, 2, "k", "v2", 2, "k", "v3", 3);

    /* A pending delete: observed at commit as a removal. */
    w.op = SHARD_OP_DELETE;
    w.value = skv_slice_make(NULL, 0);
    w.waiter = &w1;
    assert_int_equal(shard_apply(s, key_hash("k", 1), &w, &r), SKV_OK);
    assert_int_equal(l.n, 3);
    assert_has(s, "k", "v3", 3);
    assert_int_equal(commit_all(s), 1);
    assert_int_equal(l.n, 4);
    assert_event(&l, 3, "k", "v3", 3, NULL, NULL, 0);
    assert_missing(s, "k");

    /* A discarded batch is never observed. */
    w.op = SHARD_OP_PUT;
    w.value = skv_slice_cstr("lost");
    w.waiter = &w1;
    assert_int_equal(shard_apply(s, key_hash("k", 1), &w, &r), SKV_OK);
    skv_buf batch;
    skv_buf_init(&batch);
    uint64_t last;
    shard_waiter *ws;
    pthread_mutex_lock(&s->lock);
    shard_take_batch(s, &batch, &last, &ws);
    shard_waiter *more = shard_discard_pending(s, &batch);
    pthread_mutex_unlock(&s->lock);
    assert_ptr_equal(ws, &w1);
    assert_null(more);
    skv_buf_free(&batch);
    assert_int_equal(l.n, 4);
    assert_missing(s, "k");
    assert_int_equal(l.unlocked, 0);
    assert_true(shard_check(s));
}

/* ---- idempotency ------------------------------------------------------------------------------ */

typedef struct render_arg {
    int calls;
    int answer_not_empty;
} render_arg;

static void render_answer(void *arg, const shard_result *res, skv_buf *answer) {
    render_arg *a = arg;
    a->calls++;
    if (answer->len) a->answer_not_empty++;
    skv_buf_printf(answer, "version=%llu created=%d", (unsigned long long)res->version, res->created);
}

/* The internal key of an Idempotency-Key (name) on shard 3. */
static skv_slice idem_key(skv_buf *b, const char *name) {
    return store_internal_key(b, STORE_NS_IDEMPOTENCY, 3, name, strlen(name));
}

typedef struct idem_req {
    shard_write w;
    render_arg ra;
    skv_buf replay;
    skv_buf key;
} idem_req;

static void idem_init(idem_req *q, int op, const char *key, const char *val, const char *ikey, uint64_t fp,
                      uint64_t idem_expires) {
    memset(q, 0, sizeof *q);
    skv_buf_init(&q->replay);
    skv_buf_init(&q->key);
    q->w.op = op;
    q->w.key = skv_slice_cstr(key);
    if (val) q->w.value = skv_slice_cstr(val);
    q->w.idem_key = idem_key(&q->key, ikey);
    q->w.idem_fingerprint = fp;
    q->w.idem_expires_ms = idem_expires;
    q->w.render = render_answer;
    q->w.render_arg = &q->ra;
    q->w.replay = &q->replay;
}

static void idem_free(idem_req *q) {
    skv_buf_free(&q->replay);
    skv_buf_free(&q->key);
}

static int idem_apply(shard *s, idem_req *q, shard_result *r) {
    return shard_apply(s, key_hash(q->w.key.ptr, q->w.key.len), &q->w, r);
}

static void assert_replay(const idem_req *q, const char *answer) {
    assert_int_equal(q->replay.len, strlen(answer));
    assert_memory_equal(q->replay.data, answer, q->replay.len);
}

static void test_idem_without_log(void **state) {
    shard *s = *state;
    use_fake_clock(s, T0);
    shard_result r;
    idem_req q;
    idem_init(&q, SHARD_OP_PUT, "k", "v1", "req-1", 0x1111222233334444ull, T0 + 60000);
    assert_int_equal(idem_apply(s, &q, &r), SKV_OK);
    assert_true(r.version == 1);
    assert_int_equal(r.created, 1);
    assert_int_equal(q.ra.calls, 1);
    assert_int_equal(q.ra.answer_not_empty, 0);
    assert_replay(&q, "version=1 created=1");
    assert_has(s, "k", "v1", 1);
    assert_true(s->seq == 2);          /* the remembered answer is a write too */
    assert_true(shard_keys(s) == 2);
    assert_true(shard_check(s));

    /* The retry (even with another body: only the fingerprint counts). */
    idem_req q2;
    idem_init(&q2, SHARD_OP_PUT, "k", "v2", "req-1", 0x1111222233334444ull, T0 + 99999);
    snapshot before = snap(s);
    assert_int_equal(idem_apply(s, &q2, &r), SKV_EEXISTS);
    assert_replay(&q2, "version=1 created=1");
    assert_int_equal(q2.ra.calls, 0);
    assert_unchanged(s, before);
    assert_has(s, "k", "v1", 1);

    /* Same key, another request. */
    idem_req q3;
    idem_init(&q3, SHARD_OP_PUT, "k", "v3", "req-1", 0x1111222233334445ull, T0 + 60000);
    assert_int_equal(idem_apply(s, &q3, &r), SKV_EINVAL);
    assert_int_equal(q3.ra.calls, 0);
    assert_unchanged(s, before);
    assert_has(s, "k", "v1", 1);

    /* Answered before any condition is evaluated again: the retry of a
     * create-only PUT gets its answer, not 412. */
    q2.w.cond = SHARD_COND_ABSENT;
    assert_int_equal(idem_apply(s, &q2, &r), SKV_EEXISTS);
    assert_replay(&q2, "version=1 created=1");

    /* Another key is independent. */
    idem_req q4;
    idem_init(&q4, SHARD_OP_DELETE, "k", NULL, "req-2", 7, T0 + 1000);
    assert_int_equal(idem_apply(s, &q4, &r), SKV_OK);
    assert_replay(&q4, "version=3 created=0");
    assert_missing(s, "k");
    /* The retried delete is answered even though the key is gone now. */
    skv_buf_reset(&q4.replay);
    assert_int_equal(idem_apply(s, &q4, &r), SKV_EEXISTS);
    assert_replay(&q4, "version=3 created=0");
    assert_true(s->seq == 4);

    /* A write refused by its condition remembers nothing. */
    idem_req q5;
    idem_init(&q5, SHARD_OP_PUT, "k", "x", "req-3", 9, T0 + 1000);
    q5.w.cond = SHARD_COND_EXISTS;
    assert_int_equal(idem_apply(s, &q5, &r), SKV_EPRECOND);
    assert_int_equal(idem_apply(s, &q5, &r), SKV_EPRECOND);
    assert_int_equal(q5.ra.calls, 0);
    assert_true(s->seq == 4);

    /* The remembered answer expires at idem_expires_ms: then the same
     * request is a new one. */
    fake_now = T0 + 1000; /* req-2 forgotten, req-1 still remembered */
    assert_int_equal(idem_apply(s, &q2, &r), SKV_EEXISTS);
    q4.w.op = SHARD_OP_PUT;
    q4.w.value = skv_slice_cstr("again");
    assert_int_equal(idem_apply(s, &q4, &r), SKV_OK);
    assert_true(r.version == 5);
    assert_replay(&q4, "version=5 created=1");
    fake_now = T0 + 60000;
    q2.w.cond = SHARD_COND_NONE;
    assert_int_equal(idem_apply(s, &q2, &r), SKV_OK);
    assert_true(r.version == 7);
    assert_replay(&q2, "version=7 created=0");
    assert_has(s, "k", "v2", 7);
    assert_true(stats(s).expired == 2);
    assert_true(shard_check(s));
    idem_free(&q);
    idem_free(&q2);
    idem_free(&q3);
    idem_free(&q4);
    idem_free(&q5);
}

static void test_idem_with_sync_log(void **state) {
    shard *s = *state;
    use_fake_clock(s, T0);
    kicks = delivered = 0;
    shard_attach_log(s, 1, count_kick, &kicks);
    shard_result r;
    shard_waiter wt = { .deliver = count_delivery };
    idem_req q;
    idem_init(&q, SHARD_OP_PUT, "k", "v1", "req-1", 42, T0 + 60000);
    q.w.flags = SHARD_VAL_JSON;
    q.w.waiter = &wt;
    assert_int_equal(idem_apply(s, &q, &r), SKV_OK);
    assert_int_equal(r.pending, 1);
    assert_true(r.version == 1);
    assert_replay(&q, "version=1 created=1");
    assert_true(wt.seq == 2); /* the waiter waits for the whole group */
    assert_int_equal(kicks, 1);

    /* The buffer: the write, flagged "group continues", then the answer. */
    wal_record recs[4];
    assert_int_equal(buffered_records(s, recs, 4), 2);
    assert_true(recs[0].seq == 1);
    assert_int_equal(recs[0].op, WAL_OP_PUT);
    assert_true(skv_slice_eq(recs[0].key, SKV_SLICE_LIT("k")));
    assert_true(skv_slice_eq(recs[0].value, SKV_SLICE_LIT("v1")));
    assert_int_equal(recs[0].flags, SHARD_VAL_JSON | WAL_FLAG_GROUP_NEXT);
    assert_true(recs[1].seq == 2);
    assert_int_equal(recs[1].op, WAL_OP_PUT);
    assert_true(skv_slice_eq(recs[1].key, q.w.idem_key));
    assert_int_equal(recs[1].flags & WAL_FLAG_GROUP_NEXT, 0);
    assert_true(recs[1].expires_ms == T0 + 60000);
    assert_true(recs[1].value.len >= strlen("version=1 created=1"));
    assert_int_equal(wal_count_records(s->buf.data, s->buf.len), 2);
    size_t buf_len = s->buf.len;
    skv_buf logged; /* what the flusher would write */
    skv_buf_init(&logged);
    skv_buf_append(&logged, s->buf.data, s->buf.len);

    /* While in flight: EAGAIN for the retry, EINVAL for another request. */
    idem_req q2;
    idem_init(&q2, SHARD_OP_PUT, "k", "v1", "req-1", 42, T0 + 60000);
    snapshot before = snap(s);
    assert_int_equal(idem_apply(s, &q2, &r), SKV_EAGAIN);
    assert_int_equal(q2.ra.calls, 0);
    assert_unchanged(s, before);
    assert_int_equal(s->buf.len, buf_len);
    assert_int_equal(kicks, 1);
    q2.w.idem_fingerprint = 43;
    assert_int_equal(idem_apply(s, &q2, &r), SKV_EINVAL);
    assert_unchanged(s, before);
    assert_missing(s, "k");

    /* Durable: visible, and the retry gets the remembered answer. */
    assert_int_equal(commit_all(s), 2);
    assert_int_equal(delivered, 1);
    assert_has(s, "k", "v1", 1);
    q2.w.idem_fingerprint = 42;
    before = snap(s);
    assert_int_equal(idem_apply(s, &q2, &r), SKV_EEXISTS);
    assert_replay(&q2, "version=1 created=1");
    assert_unchanged(s, before);
    assert_int_equal(s->buf.len, 0);
    assert_true(shard_check(s));

    /* Recovery: the group replayed into a fresh shard restores both the
     * value and the remembered answer. */
    shard t;
    shard_init(&t, 3);
    use_fake_clock(&t, T0);
    size_t off = 0;
    while (off < logged.len) {
        wal_record rec;
        size_t used = 0;
        assert_int_equal(wal_record_decode(logged.data + off, logged.len - off, &rec, &used), SKV_OK);
        assert_int_equal(shard_replay(&t, &rec), SKV_OK);
        off += used;
    }
    assert_true(t.seq == 2);
    assert_has(&t, "k", "v1", 1);
    seen g;
    assert_int_equal(get(&t, "k", &g), SKV_OK);
    assert_int_equal(g.flags, SHARD_VAL_JSON); /* the group flag is the log's, not the entry's */
    skv_buf_reset(&q2.replay);
    assert_int_equal(idem_apply(&t, &q2, &r), SKV_EEXISTS);
    assert_replay(&q2, "version=1 created=1");
    assert_true(t.seq == 2);
    assert_true(shard_check(&t));
    shard_destroy(&t);
    skv_buf_free(&logged);
    idem_free(&q);
    idem_free(&q2);
}

/* ---- LRU eviction ------------------------------------------------------------------------------ */

/* Puts key=val at the fake time now_s (seconds after T0). */
static void put_at(shard *s, uint64_t now_s, const char *key, const char *val) {
    shard_result r;
    fake_now = T0 + now_s * 1000;
    assert_int_equal(put(s, key, val, &r), SKV_OK);
}

static void touch_at(shard *s, uint64_t now_s, const char *key) {
    seen g;
    fake_now = T0 + now_s * 1000;
    assert_int_equal(get(s, key, &g), SKV_OK);
}

static void put_internal(shard *s, skv_buf *b, const char *name, const char *val) {
    skv_slice k = store_internal_key(b, STORE_NS_COUNTER, 3, name, strlen(name));
    shard_write w;
    memset(&w, 0, sizeof w);
    w.op = SHARD_OP_PUT;
    w.key = k;
    w.value = skv_slice_cstr(val);
    shard_result r;
    assert_int_equal(shard_apply(s, key_hash(k.ptr, k.len), &w, &r), SKV_OK);
}

static int has_internal(shard *s, skv_buf *b, const char *name) {
    skv_slice k = store_internal_key(b, STORE_NS_COUNTER, 3, name, strlen(name));
    seen g;
    memset(&g, 0, sizeof g);
    return shard_get(s, key_hash(k.ptr, k.len), k, capture, &g) == SKV_OK;
}

static int present(shard *s, const char *key) {
    uint64_t exp;
    return shard_get(s, key_hash(key, strlen(key)), skv_slice_cstr(key), capture_expiry, &exp) == SKV_OK;
}

/* Five user keys with distinct last-access times and two internal keys
 * older than all of them: with samples covering the shard, eviction goes
 * in exact LRU order, whatever the random start, and never takes an
 * internal key. */
static void test_evict_lru_order(void **state) {
    shard *s = *state;
    use_fake_clock(s, T0);
    put_internal(s, &ikeys, "ctr-a", "1"); /* atime T0 */
    put_internal(s, &ikeys, "ctr-b", "2");
    put_at(s, 1, "k1", "v");
    put_at(s, 1, "k2", "v");
    put_at(s, 1, "k3", "v");
    put_at(s, 1, "k4", "v");
    put_at(s, 1, "k5", "v");
    /* Reads set the access times: k3 oldest, then k1, k5, k2, k4. */
    touch_at(s, 10, "k1");
    touch_at(s, 20, "k5");
    touch_at(s, 30, "k2");
    touch_at(s, 40, "k4");
    /* A write refreshes too: "k3" is rewritten at 5 (still the oldest). */
    put_at(s, 5, "k3", "w");
    assert_true(shard_keys(s) == 7);

    static const char *order[] = { "k3", "k1", "k5", "k2", "k4" };
    uint64_t bytes = shard_bytes(s);
    for (size_t i = 0; i < 5; i++) {
        uint64_t freed = 0;
        assert_int_equal(shard_evict_one(s, 16, 0x9e3779b97f4a7c15ull * (i + 1), &freed), SKV_OK);
        assert_true(freed == entry_bytes(2, 1));
        bytes -= freed;
        assert_true(shard_bytes(s) == bytes);
        assert_false(present(s, order[i]));
        for (size_t j = i + 1; j < 5; j++) assert_true(present(s, order[j]));
        assert_true(stats(s).evicted == i + 1);
        assert_true(shard_check(s));
        /* present() refreshed the survivors in list order: re-establish
         * the intended order for the next round. */
        for (size_t j = i + 1; j < 5; j++) touch_at(s, 100 + 10 * (i + 1) + j, order[j]);
    }
    /* Only internal keys left: nothing evictable. */
    uint64_t freed = 77;
    uint64_t seq = s->seq;
    for (uint64_t rnd = 0; rnd < 50; rnd++) {
        assert_int_equal(shard_evict_one(s, 5, rnd * 0x2545F4914F6CDD1Dull, &freed), SKV_ENOTFOUND);
        assert_true(freed == 0);
    }
    assert_true(s->seq == seq);
    assert_true(shard_keys(s) == 2);
    assert_true(has_internal(s, &ikeys, "ctr-a"));
    assert_true(has_internal(s, &ikeys, "ctr-b"));
    assert_true(stats(s).evicted == 5);
}

static void test_evict_empty_and_sampling(void **state) {
    shard *s = *state;
    use_fake_clock(s, T0);
    uint64_t freed = 5;
    assert_int_equal(shard_evict_one(s, 5, 0, &freed), SKV_ENOTFOUND);
    assert_true(freed == 0);
    /* Many keys: each eviction takes one user key and only one, with any
     * sample count (0 means 1) and any random start. */
    char key[32];
    for (int i = 0; i < 500; i++) {
        snprintf(key, sizeof key, "many-%d", i);
        put_at(s, (uint64_t)i, key, "value");
    }
    for (int i = 0; i < 50; i++) {
        snprintf(key, sizeof key, "internal-%d", i);
        put_internal(s, &ikeys, key, "x");
    }
    uint64_t rnd = 0x0123456789abcdefull;
    for (int i = 0; i < 500; i++) {
        rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
        assert_int_equal(shard_evict_one(s, (size_t)(i % 7), rnd, &freed), SKV_OK);
        assert_true(freed > 0);
        assert_true(shard_keys(s) == 550 - (uint64_t)i - 1);
        if (i % 50 == 0) assert_true(shard_check(s));
    }
    assert_int_equal(shard_evict_one(s, 3, rnd, &freed), SKV_ENOTFOUND);
    for (int i = 0; i < 50; i++) {
        snprintf(key, sizeof key, "internal-%d", i);
        assert_true(has_internal(s, &ikeys, key));
    }
    assert_true(stats(s).evicted == 500);
    assert_true(shard_check(s));
}

/* One cache key among many internal ones (counters, documents, remembered
 * answers): it is evictable, so shard_evict_one must find it from any
 * random start ("SKV_ENOTFOUND when the shard has nothing evictable"). */
static void test_evict_finds_a_rare_user_key(void **state) {
    shard *s = *state;
    use_fake_clock(s, T0);
    char name[32];
    for (int i = 0; i < 2000; i++) {
        snprintf(name, sizeof name, "internal-%d", i);
        put_internal(s, &ikeys, name, "x");
    }
    int not_found = 0;
    for (uint64_t i = 0; i < 32; i++) {
        shard_result r;
        assert_int_equal(put(s, "the-cache-key", "v", &r), SKV_OK);
        uint64_t freed = 0;
        int rc = shard_evict_one(s, 5, (i + 1) * 0x9E3779B97F4A7C15ull, &freed);
        if (rc == SKV_ENOTFOUND) {
            not_found++;
            assert_int_equal(del(s, "the-cache-key", &r), SKV_OK);
            continue;
        }
        assert_int_equal(rc, SKV_OK);
        assert_true(freed == entry_bytes(13, 1));
        assert_false(present(s, "the-cache-key"));
    }
    assert_int_equal(not_found, 0);
    assert_true(shard_keys(s) == 2000);
    assert_true(shard_check(s));
}

/* With a log attached the eviction is a logged delete (immediate, even
 * under --fsync always: an eviction need not wait for the disk). */
static void test_evict_is_logged(void **state) {
    shard *s = *state;
    use_fake_clock(s, T0);
    kicks = 0;
    shard_attach_log(s, 1, count_kick, &kicks);
    shard_result r;
    fake_now = T0;
    assert_int_equal(put(s, "old", "v", &r), SKV_OK);
    fake_now = T0 + 60000;
    assert_int_equal(put(s, "new", "v", &r), SKV_OK);
    assert_int_equal(commit_all(s), 2);
    assert_int_equal(kicks, 2);
    uint64_t freed = 0;
    assert_int_equal(shard_evict_one(s, 5, 0, &freed), SKV_OK);
    assert_true(freed == entry_bytes(3, 1));
    assert_int_equal(kicks, 3);
    assert_true(s->seq == 3);
    assert_false(present(s, "old")); /* gone at once */
    assert_true(present(s, "new"));
    wal_record recs[2];
    assert_int_equal(buffered_records(s, recs, 2), 1);
    assert_int_equal(recs[0].op, WAL_OP_DELETE);
    assert_true(recs[0].seq == 3);
    assert_true(skv_slice_eq(recs[0].key, SKV_SLICE_LIT("old")));
    assert_true(stats(s).evicted == 1);

    /* Replayed, the log brings back only "new". */
    shard t;
    shard_init(&t, 3);
    wal_record a = rec_of(1, WAL_OP_PUT, "old", "v", 0, 0), b = rec_of(2, WAL_OP_PUT, "new", "v", 0, 0);
    assert_int_equal(shard_replay(&t, &a), SKV_OK);
    assert_int_equal(shard_replay(&t, &b), SKV_OK);
    assert_int_equal(shard_replay(&t, &recs[0]), SKV_OK);
    assert_false(present(&t, "old"));
    assert_true(present(&t, "new"));
    assert_true(t.seq == 3);
    shard_destroy(&t);

    assert_int_equal(commit_all(s), 1);
    assert_true(shard_check(s));

    /* Under memory pressure (the key copy fails) nothing changes. */
    snapshot before = snap(s);
    skv_mem_fail_after(1);
    assert_int_equal(shard_evict_one(s, 5, 0, &freed), SKV_ENOMEM);
    skv_mem_fail_after(0);
    assert_unchanged(s, before);
    assert_true(present(s, "new"));
    assert_true(stats(s).evicted == 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_init_empty, setup_shard, teardown_shard),
        cmocka_unit_test_setup_teardown(test_put_create_and_overwrite, setup_shard, teardown_shard),
        cmocka_unit_test_setup_teardown(test_put_flags, setup_shard, teardown_shard),
        cmocka_unit_test_setup_teardown(test_binary_and_empty_keys, setup_shard, teardown_shard),
        cmocka_unit_test_setup_teardown(test_delete, setup_shard, teardown_shard),
        cmocka_unit_test_setup_teardown(test_cond_version, setup_shard, teardown_shard),
        cmocka_unit_test_setup_teardown(test_cond_exists, setup_shard, teardown_shard),
        cmocka_unit_test_setup_teardown(test_cond_absent, setup_shard, teardown_shard),
        cmocka_unit_test_setup_teardown(test_versions_strictly_increasing, setup_shard, teardown_shard),
        cmocka_unit_test_setup_teardown(test_enomem_leaves_shard_unchanged, setup_shard, teardown_shard),
        cmocka_unit_test_setup_teardown(test_delete_under_memory_pressure, setup_shard, teardown_shard),
        cmocka_unit_test_setup_teardown(test_random_ops_match_model, setup_shard, teardown_shard),
        cmocka_unit_test_setup_teardown(test_list_limit, setup_shard, teardown_shard),
        cmocka_unit_test_setup_teardown(test_concurrent_writers, setup_shard, teardown_shard),
        cmocka_unit_test_setup_teardown(test_ttl_read_before_and_after, setup_shard, teardown_shard),
        cmocka_unit_test_setup_teardown(test_ttl_conditions_see_expired_as_absent, setup_shard, teardown_shard),
        cmocka_unit_test_setup_teardown(test_ttl_expire_some_across_calls, setup_shard, teardown_shard),
        cmocka_unit_test_setup_teardown(test_ttl_expire_some_while_shrinking, setup_shard, teardown_shard),
        cmocka_unit_test_setup_teardown(test_ttl_replay, setup_shard, teardown_shard),
        cmocka_unit_test_setup_teardown(test_ttl_logged_and_pending, setup_shard, teardown_shard),
        cmocka_unit_test_setup_teardown(test_compute_increments, setup_shard, teardown_shard),
        cmocka_unit_test_setup_teardown(test_compute_error_changes_nothing, setup_shard, teardown_shard),
        cmocka_unit_test_setup_teardown(test_compute_sees_pending, setup_shard, teardown_shard),
        cmocka_unit_test_setup_teardown(test_observer_immediate, setup_shard, teardown_shard),
        cmocka_unit_test_setup_teardown(test_observer_pending, setup_shard, teardown_shard),
        cmocka_unit_test_setup_teardown(test_idem_without_log, setup_shard, teardown_shard),
        cmocka_unit_test_setup_teardown(test_idem_with_sync_log, setup_shard, teardown_shard),
        cmocka_unit_test_setup_teardown(test_evict_lru_order, setup_shard, teardown_shard),
        cmocka_unit_test_setup_teardown(test_evict_empty_and_sampling, setup_shard, teardown_shard),
        cmocka_unit_test_setup_teardown(test_evict_finds_a_rare_user_key, setup_shard, teardown_shard),
        cmocka_unit_test_setup_teardown(test_evict_is_logged, setup_shard, teardown_shard),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
