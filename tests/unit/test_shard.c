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
 * Key hashes are XXH3-64 of the key, as store_key_hash() gives them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <xxhash.h>

#include "err.h"
#include "mem.h"
#include "shard.h"

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

static int teardown_shard(void **state) {
    shard *s = *state;
    skv_mem_fail_after(0);
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
