/*
 * Unit tests for store: construction (bad ring configs refused, shards
 * numbered, map version 1), the key hash (XXH3-64), the "store:<int>" pin
 * with Python's modulo for negative ids, keys that look like pins but are
 * not canonical integers (they must go where the ring says), and the
 * pinned-key formatter.
 *
 * Expected pins come from Python 3: [i % n for i in ids] with the ids and
 * shard counts of pin_ids / pin_expect below.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <fcntl.h>
#include <unistd.h>
#include <xxhash.h>

#include "err.h"
#include "log.h"
#include "ring.h"
#include "store.h"

static ring_config make_cfg(int strategy, int hash, uint32_t shards, uint32_t vnodes) {
    ring_config c;
    memset(&c, 0, sizeof c);
    c.strategy = strategy;
    c.hash = hash;
    c.shards = shards;
    c.vnodes = vnodes;
    c.version = 0;
    return c;
}

static store *new_store(int strategy, int hash, uint32_t shards) {
    ring_config c = make_cfg(strategy, hash, shards, 100);
    store *st = NULL;
    assert_int_equal(store_new(&c, &st), SKV_OK);
    assert_non_null(st);
    return st;
}

static uint32_t shard_of(store *st, const char *key) { return store_shard_for_key(st, skv_slice_cstr(key)); }

static uint32_t ring_of(store *st, const char *key) {
    return ring_shard_for_key(store_map(st), key, strlen(key), NULL);
}

/* ---- construction -------------------------------------------------------------- */

static void test_new_bad_config(void **state) {
    (void)state;
    ring_config bad[] = {
        make_cfg(RING_STRATEGY_RING, RING_HASH_XXH3, 0, 100),
        make_cfg(RING_STRATEGY_RING, RING_HASH_XXH3, RING_MAX_SHARDS + 1, 100),
        make_cfg(RING_STRATEGY_RING, RING_HASH_XXH3, 4, 0),
        make_cfg(RING_STRATEGY_RING, RING_HASH_XXH3, 4, RING_MAX_VNODES + 1),
        make_cfg(-1, RING_HASH_XXH3, 4, 100),
        make_cfg(RING_STRATEGY_JUMP + 1, RING_HASH_XXH3, 4, 100),
        make_cfg(RING_STRATEGY_RING, -1, 4, 100),
        make_cfg(RING_STRATEGY_RING, RING_HASH_MD5 + 1, 4, 100),
        make_cfg(RING_STRATEGY_MODULO, RING_HASH_XXH3, 0, 100),
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        store *sentinel = (store *)(uintptr_t)0x1234;
        store *st = sentinel;
        assert_int_equal(store_new(&bad[i], &st), SKV_EINVAL);
        assert_ptr_equal(st, sentinel); /* *out untouched on error */
    }
    store_free(NULL); /* harmless */
}

static void test_new_ok(void **state) {
    (void)state;
    static const uint32_t counts[] = { 1, 3, 8, 64 };
    for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++) {
        ring_config c = make_cfg(RING_STRATEGY_RING, RING_HASH_MD5, counts[k], 7);
        c.version = 77; /* ignored: the first map is version 1 */
        store *st = NULL;
        assert_int_equal(store_new(&c, &st), SKV_OK);
        assert_int_equal(st->nshards, counts[k]);
        for (uint32_t i = 0; i < st->nshards; i++) {
            shard *s = store_shard(st, i);
            assert_ptr_equal(s, &st->shards[i]);
            assert_int_equal(s->id, i);
            assert_true(shard_keys(s) == 0);
            assert_true(shard_check(s));
        }
        const ring_config *rc = ring_get_config(store_map(st));
        assert_true(rc->version == 1);
        assert_int_equal(rc->shards, counts[k]);
        assert_int_equal(rc->vnodes, 7);
        assert_int_equal(rc->strategy, RING_STRATEGY_RING);
        assert_int_equal(rc->hash, RING_HASH_MD5);
        assert_true(c.version == 77); /* the caller's config is not modified */
        store_free(st);
    }
}

/* ---- key hash --------------------------------------------------------------------------- */

static void test_key_hash_is_xxh3(void **state) {
    (void)state;
    static const char *keys[] = { "", "a", "user:1", "store:42", "a somewhat longer key with spaces, 40 b." };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        assert_true(store_key_hash(skv_slice_cstr(keys[i])) == XXH3_64bits(keys[i], strlen(keys[i])));
    /* Binary key with NUL bytes; all bytes count. */
    assert_true(store_key_hash(skv_slice_make("a\0b", 3)) == XXH3_64bits("a\0b", 3));
    assert_true(store_key_hash(skv_slice_make("a\0b", 3)) != store_key_hash(skv_slice_make("a\0c", 3)));
    /* Known answer: XXH3-64 of the empty input (xxhsum -H3 < /dev/null). */
    assert_true(store_key_hash(skv_slice_make("", 0)) == 0x2d06800538d394c2ull);
    /* Long key (beyond XXH3's short-input paths). */
    char big[1000];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (char)(i * 31);
    assert_true(store_key_hash(skv_slice_make(big, sizeof big)) == XXH3_64bits(big, sizeof big));
}

/* ---- pinned keys ------------------------------------------------------------------------- */

static const int64_t pin_ids[] = { 0, 1, 2, 3, -1, -2, -3, -4, 5, -7, 1000000007, -1000000007,
                                   INT64_MAX, INT64_MIN, INT64_MIN + 1 };
#define NPIN (sizeof pin_ids / sizeof pin_ids[0])

static const struct {
    uint32_t shards;
    uint32_t expect[NPIN];
} pin_expect[] = {
    { 1, { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 } },
    { 3, { 0, 1, 2, 0, 2, 1, 0, 2, 2, 2, 2, 1, 1, 1, 2 } },
    { 8, { 0, 1, 2, 3, 7, 6, 5, 4, 5, 1, 7, 1, 7, 0, 1 } },
    { 10, { 0, 1, 2, 3, 9, 8, 7, 6, 5, 3, 7, 3, 7, 2, 3 } },
    { 4096, { 0, 1, 2, 3, 4095, 4094, 4093, 4092, 5, 4089, 2567, 1529, 4095, 0, 1 } },
};

static void test_pinned_python_modulo(void **state) {
    (void)state;
    static const int strategies[] = { RING_STRATEGY_RING, RING_STRATEGY_MODULO, RING_STRATEGY_JUMP };
    for (size_t s = 0; s < sizeof strategies / sizeof strategies[0]; s++) {
        for (size_t k = 0; k < sizeof pin_expect / sizeof pin_expect[0]; k++) {
            /* A 4096-shard md5 ring is slow to build; xxh3 is enough. */
            store *st = new_store(strategies[s], RING_HASH_XXH3, pin_expect[k].shards);
            for (size_t i = 0; i < NPIN; i++) {
                char key[32];
                size_t n = store_pinned_key(pin_ids[i], key);
                uint32_t got = store_shard_for_key(st, skv_slice_make(key, n));
                if (got != pin_expect[k].expect[i])
                    fail_msg("strategy %d, %u shards, key %s: shard %u, want %u", strategies[s],
                             pin_expect[k].shards, key, got, pin_expect[k].expect[i]);
            }
            store_free(st);
        }
    }
}

static void test_pinned_literal_keys(void **state) {
    (void)state;
    store *st = new_store(RING_STRATEGY_RING, RING_HASH_MD5, 3);
    assert_int_equal(shard_of(st, "store:-1"), 2); /* Python: -1 % 3 == 2 */
    assert_int_equal(shard_of(st, "store:-2"), 1);
    assert_int_equal(shard_of(st, "store:-3"), 0);
    assert_int_equal(shard_of(st, "store:0"), 0);
    assert_int_equal(shard_of(st, "store:4"), 1);
    assert_int_equal(shard_of(st, "store:-9223372036854775808"), 1);
    assert_int_equal(shard_of(st, "store:9223372036854775807"), 1);
    /* The slice length bounds the key: "store:12" read as "store:1". */
    assert_int_equal(store_shard_for_key(st, skv_slice_make("store:12", 7)), 1);
    store_free(st);
}

/* Keys that look like pins but are not "store:" + a canonical int64 go
 * through the ring, under every strategy. */
static const char *const not_pinned[] = {
    "store:007", "store:", "store:abc", "store:-0", "store:+1", "store: 1", "store:1 ", "store:1a", "store:0x10",
    "store:1.5", "store:--1", "store:-", "Store:1", "STORE:1", "xstore:1", "store;1", "store::1", "store:00",
    "store:9223372036854775808", "store:-9223372036854775809", "store:18446744073709551616", "store",
};
#define NNOT (sizeof not_pinned / sizeof not_pinned[0])

static void test_not_pinned_goes_through_ring(void **state) {
    (void)state;
    static const int strategies[] = { RING_STRATEGY_RING, RING_STRATEGY_MODULO, RING_STRATEGY_JUMP };
    static const int hashes[] = { RING_HASH_XXH3, RING_HASH_MD5 };
    for (size_t s = 0; s < 3; s++) {
        for (size_t h = 0; h < 2; h++) {
            store *st = new_store(strategies[s], hashes[h], 8);
            for (size_t i = 0; i < NNOT; i++) {
                uint32_t got = shard_of(st, not_pinned[i]);
                uint32_t want = ring_of(st, not_pinned[i]);
                if (got != want)
                    fail_msg("strategy %d hash %d key '%s': shard %u, ring says %u", strategies[s], hashes[h],
                             not_pinned[i], got, want);
            }
            store_free(st);
        }
    }
}

/* The check above would pass vacuously if the ring happened to agree with
 * the pin for every key; make sure the two rules are told apart. */
static void test_pin_and_ring_disagree_somewhere(void **state) {
    (void)state;
    store *st = new_store(RING_STRATEGY_RING, RING_HASH_MD5, 8);
    int disagree_pinned = 0, disagree_unpinned = 0;
    for (int64_t id = 0; id < 64; id++) {
        char key[32];
        store_pinned_key(id, key);
        assert_int_equal(shard_of(st, key), (uint32_t)(id % 8));
        disagree_pinned += ring_of(st, key) != (uint32_t)(id % 8);
        /* "store:0<id>" would pin to id % 8 if leading zeros were allowed. */
        char padded[40];
        snprintf(padded, sizeof padded, "store:0%lld", (long long)id);
        disagree_unpinned += shard_of(st, padded) != (uint32_t)(id % 8);
    }
    assert_true(disagree_pinned > 10);
    assert_true(disagree_unpinned > 10);
    store_free(st);
}

static void test_other_keys_follow_ring(void **state) {
    (void)state;
    store *st = new_store(RING_STRATEGY_RING, RING_HASH_XXH3, 5);
    char key[40];
    for (int i = 0; i < 500; i++) {
        snprintf(key, sizeof key, "user:%d", i);
        assert_int_equal(shard_of(st, key), ring_of(st, key));
        snprintf(key, sizeof key, "%d", i); /* plain integers are not pinned by the store */
        assert_int_equal(shard_of(st, key), ring_of(st, key));
    }
    store_free(st);
}

/* With debug logging on, the lookup also formats and logs the hash; the
 * answer must not change.  stderr goes to /dev/null meanwhile. */
static void test_debug_logging_same_answers(void **state) {
    (void)state;
    store *st = new_store(RING_STRATEGY_RING, RING_HASH_MD5, 8);
    uint32_t quiet[NNOT + NPIN];
    char pinned[NPIN][32];
    for (size_t i = 0; i < NNOT; i++) quiet[i] = shard_of(st, not_pinned[i]);
    for (size_t i = 0; i < NPIN; i++) {
        store_pinned_key(pin_ids[i], pinned[i]);
        quiet[NNOT + i] = shard_of(st, pinned[i]);
    }
    fflush(stderr);
    int saved = dup(2);
    int devnull = open("/dev/null", O_WRONLY);
    assert_true(saved >= 0 && devnull >= 0);
    dup2(devnull, 2);
    int old_level = log_current_level;
    log_init(LOG_LEVEL_DEBUG, LOG_FORMAT_TEXT);
    uint32_t loud[NNOT + NPIN];
    for (size_t i = 0; i < NNOT; i++) loud[i] = shard_of(st, not_pinned[i]);
    for (size_t i = 0; i < NPIN; i++) loud[NNOT + i] = shard_of(st, pinned[i]);
    /* A very long key is logged truncated, not overflowing anything. */
    char *big = malloc(5000);
    assert_non_null(big);
    memset(big, 'k', 5000);
    uint32_t big_shard = store_shard_for_key(st, skv_slice_make(big, 5000));
    log_init(old_level, LOG_FORMAT_TEXT);
    dup2(saved, 2);
    close(saved);
    close(devnull);
    assert_int_equal(big_shard, ring_shard_for_key(store_map(st), big, 5000, NULL));
    free(big);
    for (size_t i = 0; i < NNOT + NPIN; i++) assert_int_equal(loud[i], quiet[i]);
    store_free(st);
}

/* ---- store_pinned_key ------------------------------------------------------------------ */

/* store_locate (one hash on the hot path) must agree with the two separate
 * calls for every strategy and hash, pinned keys included. */
static void test_locate_matches_separate_calls(void **state) {
    (void)state;
    const int strategies[] = { RING_STRATEGY_RING, RING_STRATEGY_MODULO, RING_STRATEGY_JUMP };
    const int hashes[] = { RING_HASH_XXH3, RING_HASH_MD5 };
    for (size_t si = 0; si < 3; si++) {
        for (size_t hi = 0; hi < 2; hi++) {
            store *st = new_store(strategies[si], hashes[hi], 7);
            char key[48];
            for (int i = -50; i < 2000; i++) {
                snprintf(key, sizeof key, i % 3 == 0 ? "store:%d" : (i % 3 == 1 ? "%d" : "key-%d"), i);
                skv_slice k = skv_slice_cstr(key);
                uint64_t h = 0;
                assert_int_equal(store_locate(st, k, &h), store_shard_for_key(st, k));
                assert_true(h == store_key_hash(k));
            }
            store_free(st);
        }
    }
}

static void test_pinned_key_format(void **state) {
    (void)state;
    static const struct { int64_t id; const char *key; } cases[] = {
        { 0, "store:0" },
        { 1, "store:1" },
        { 42, "store:42" },
        { -1, "store:-1" },
        { 1000000, "store:1000000" },
        { INT64_MAX, "store:9223372036854775807" },
        { INT64_MIN, "store:-9223372036854775808" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[32];
        memset(out, 'X', sizeof out);
        size_t n = store_pinned_key(cases[i].id, out);
        assert_int_equal(n, strlen(cases[i].key));
        assert_string_equal(out, cases[i].key);
        assert_memory_equal(out, STORE_PINNED_PREFIX, strlen(STORE_PINNED_PREFIX));
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_bad_config),
        cmocka_unit_test(test_new_ok),
        cmocka_unit_test(test_key_hash_is_xxh3),
        cmocka_unit_test(test_pinned_python_modulo),
        cmocka_unit_test(test_pinned_literal_keys),
        cmocka_unit_test(test_not_pinned_goes_through_ring),
        cmocka_unit_test(test_pin_and_ring_disagree_somewhere),
        cmocka_unit_test(test_other_keys_follow_ring),
        cmocka_unit_test(test_debug_logging_same_answers),
        cmocka_unit_test(test_pinned_key_format),
        cmocka_unit_test(test_locate_matches_separate_calls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
