/*
 * Unit tests for sweeper: the key and memory limits on the write path
 * (sweeper_admit) under --eviction reject (SKV_ENOMEM at the limit, OK
 * again once a delete made room, nothing evicted) and --eviction lru
 * (evicts least recently used cache keys until the write fits, never an
 * internal key, SKV_ENOMEM when nothing evictable is left), the node totals,
 * and the background expiry thread.
 *
 * Stores are built with store_new (ring placement, xxh3, 100 vnodes) and
 * written through shard_apply, as the API does.  The shards' clocks are
 * replaced by a fake one where time matters (LRU order, expiry).  Entry
 * sizes are sizeof(ht_entry) + key + value, as shard accounting counts
 * them.  The only wait (the expiry thread) is bounded and polls; no test
 * asserts a duration.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <stdatomic.h>
#include <time.h>

#include "config.h"
#include "err.h"
#include "log.h"
#include "ring.h"
#include "shard.h"
#include "store.h"
#include "sweeper.h"

#define T0 1700000000000ull
#define WAIT_MS 5000

static _Atomic uint64_t fake_now;
static uint64_t fake_clock(void) { return atomic_load(&fake_now); }

/* ---- helpers ------------------------------------------------------------------------------------ */

typedef struct fx {
    store *st;
    skv_config cfg;
    skv_buf key; /* internal keys are built here */
} fx;

static store *new_store(uint32_t shards) {
    ring_config c;
    memset(&c, 0, sizeof c);
    c.strategy = RING_STRATEGY_RING;
    c.hash = RING_HASH_XXH3;
    c.shards = shards;
    c.vnodes = 100;
    store *st = NULL;
    assert_int_equal(store_new(&c, &st), SKV_OK);
    for (uint32_t i = 0; i < st->nshards; i++) store_shard(st, i)->clock_ms = fake_clock;
    return st;
}

static int fx_setup_n(void **state, uint32_t shards) {
    fx *f = calloc(1, sizeof *f);
    if (!f) return -1;
    atomic_store(&fake_now, T0);
    f->st = new_store(shards);
    config_defaults(&f->cfg);
    skv_buf_init(&f->key);
    *state = f;
    return 0;
}

static int fx_setup(void **state) { return fx_setup_n(state, 4); }
static int fx_setup_one(void **state) { return fx_setup_n(state, 1); }

static int fx_teardown(void **state) {
    fx *f = *state;
    store_free(f->st);
    skv_buf_free(&f->key);
    free(f);
    return 0;
}

static int write_key(store *st, int op, skv_slice key, const char *val, uint64_t expires_ms) {
    uint64_t h;
    uint32_t id = store_locate(st, key, &h);
    shard_write w;
    memset(&w, 0, sizeof w);
    w.op = op;
    w.key = key;
    if (val) w.value = skv_slice_cstr(val);
    w.expires_ms = expires_ms;
    shard_result r;
    return shard_apply(store_shard(st, id), h, &w, &r);
}

static void put(store *st, const char *key, const char *val) {
    assert_int_equal(write_key(st, SHARD_OP_PUT, skv_slice_cstr(key), val, 0), SKV_OK);
}

static void put_ttl(store *st, const char *key, const char *val, uint64_t expires_ms) {
    assert_int_equal(write_key(st, SHARD_OP_PUT, skv_slice_cstr(key), val, expires_ms), SKV_OK);
}

static void del(store *st, const char *key) {
    assert_int_equal(write_key(st, SHARD_OP_DELETE, skv_slice_cstr(key), NULL, 0), SKV_OK);
}

static void noop_read(void *arg, const ht_entry *e) {
    (void)arg;
    (void)e;
}

static int get_key(store *st, skv_slice key) {
    uint64_t h;
    uint32_t id = store_locate(st, key, &h);
    return shard_get(store_shard(st, id), h, key, noop_read, NULL);
}

static int present(store *st, const char *key) { return get_key(st, skv_slice_cstr(key)) == SKV_OK; }

/* An internal counter key "name" pinned to shard_id (modulo the shard count). */
static skv_slice internal_key(fx *f, uint32_t shard_id, const char *name) {
    return store_internal_key(&f->key, STORE_NS_COUNTER, shard_id, name, strlen(name));
}

static void put_internal(fx *f, uint32_t shard_id, const char *name) {
    assert_int_equal(write_key(f->st, SHARD_OP_PUT, internal_key(f, shard_id, name), "1", 0), SKV_OK);
}

static int has_internal(fx *f, uint32_t shard_id, const char *name) {
    return get_key(f->st, internal_key(f, shard_id, name)) == SKV_OK;
}

static uint64_t keys(store *st) {
    uint64_t k, b;
    store_totals(st, &k, &b);
    return k;
}

static uint64_t bytes(store *st) {
    uint64_t k, b;
    store_totals(st, &k, &b);
    return b;
}

static uint64_t evicted(store *st) {
    sweeper_totals t;
    sweeper_totals_get(st, &t);
    return t.evicted;
}

/* Every key below is "key-NN" (6 bytes) with a 10-byte value. */
#define VAL "0123456789"
static const size_t E = sizeof(ht_entry) + 6 + 10;

static void put_n(store *st, int from, int to) {
    char key[16];
    for (int i = from; i < to; i++) {
        snprintf(key, sizeof key, "key-%02d", i);
        put(st, key, VAL);
    }
}

static void check_shards(store *st) {
    for (uint32_t i = 0; i < st->nshards; i++) assert_true(shard_check(store_shard(st, i)));
}

/* ---- no limit ------------------------------------------------------------------------------------- */

static void test_unlimited_admits_everything(void **state) {
    fx *f = *state;
    assert_false(sweeper_limited(&f->cfg));
    put_n(f->st, 0, 50);
    assert_int_equal(sweeper_admit(f->st, &f->cfg, 0, 1), SKV_OK);
    assert_int_equal(sweeper_admit(f->st, &f->cfg, SIZE_MAX / 2, 2), SKV_OK);
    f->cfg.eviction = EVICT_LRU;
    assert_int_equal(sweeper_admit(f->st, &f->cfg, SIZE_MAX / 2, 3), SKV_OK);
    assert_int_equal(keys(f->st), 50);
    assert_int_equal(evicted(f->st), 0);
}

/* ---- eviction: reject ----------------------------------------------------------------------------- */

static void test_reject_max_keys(void **state) {
    fx *f = *state;
    f->cfg.max_keys = 10;
    f->cfg.eviction = EVICT_REJECT;
    assert_true(sweeper_limited(&f->cfg));
    char key[16];
    for (int i = 0; i < 10; i++) {
        assert_int_equal(sweeper_admit(f->st, &f->cfg, E, (uint64_t)i), SKV_OK);
        snprintf(key, sizeof key, "key-%02d", i);
        put(f->st, key, VAL);
    }
    /* At the limit: refused, whatever the size, and nothing is evicted. */
    assert_int_equal(sweeper_admit(f->st, &f->cfg, E, 11), SKV_ENOMEM);
    assert_int_equal(sweeper_admit(f->st, &f->cfg, 0, 12), SKV_ENOMEM);
    assert_int_equal(keys(f->st), 10);
    assert_int_equal(evicted(f->st), 0);
    /* A delete makes room. */
    del(f->st, "key-03");
    assert_int_equal(sweeper_admit(f->st, &f->cfg, E, 13), SKV_OK);
    put(f->st, "key-10", VAL);
    assert_int_equal(sweeper_admit(f->st, &f->cfg, E, 14), SKV_ENOMEM);
    assert_int_equal(keys(f->st), 10);
    assert_int_equal(evicted(f->st), 0);
    check_shards(f->st);
}

static void test_reject_max_memory(void **state) {
    fx *f = *state;
    f->cfg.max_memory = 5 * E;
    f->cfg.eviction = EVICT_REJECT;
    put_n(f->st, 0, 4);
    assert_int_equal(bytes(f->st), 4 * E);
    /* Fits exactly: admitted; one byte more: refused. */
    assert_int_equal(sweeper_admit(f->st, &f->cfg, E, 1), SKV_OK);
    assert_int_equal(sweeper_admit(f->st, &f->cfg, E + 1, 2), SKV_ENOMEM);
    put_n(f->st, 4, 5);
    assert_int_equal(bytes(f->st), 5 * E);
    assert_int_equal(sweeper_admit(f->st, &f->cfg, 1, 3), SKV_ENOMEM);
    assert_int_equal(sweeper_admit(f->st, &f->cfg, E, 4), SKV_ENOMEM);
    assert_int_equal(keys(f->st), 5);
    assert_int_equal(evicted(f->st), 0);
    /* A delete makes room for one entry again. */
    del(f->st, "key-02");
    assert_int_equal(sweeper_admit(f->st, &f->cfg, E, 5), SKV_OK);
    assert_int_equal(sweeper_admit(f->st, &f->cfg, E + 1, 6), SKV_ENOMEM);
    /* Both limits at once: the key limit refuses too. */
    f->cfg.max_memory = 1000 * E;
    f->cfg.max_keys = 4;
    assert_int_equal(sweeper_admit(f->st, &f->cfg, 0, 7), SKV_ENOMEM);
    f->cfg.max_keys = 5;
    assert_int_equal(sweeper_admit(f->st, &f->cfg, E, 8), SKV_OK);
}

/* ---- eviction: lru -------------------------------------------------------------------------------- */

static void test_lru_max_keys_evicts_one(void **state) {
    fx *f = *state;
    f->cfg.max_keys = 10;
    f->cfg.eviction = EVICT_LRU;
    put_n(f->st, 0, 10);
    assert_int_equal(sweeper_admit(f->st, &f->cfg, E, 0x1234), SKV_OK);
    assert_int_equal(keys(f->st), 9); /* room for exactly the new key */
    assert_int_equal(evicted(f->st), 1);
    put(f->st, "key-10", VAL);
    char key[16];
    for (uint64_t rnd = 0; rnd < 20; rnd++) {
        assert_int_equal(sweeper_admit(f->st, &f->cfg, E, rnd), SKV_OK);
        assert_int_equal(keys(f->st), 9);
        snprintf(key, sizeof key, "new-%02d", (int)rnd);
        put(f->st, key, VAL); /* back to 10 */
    }
    assert_int_equal(evicted(f->st), 21);
    check_shards(f->st);
}

static void test_lru_max_memory_evicts_until_it_fits(void **state) {
    fx *f = *state;
    f->cfg.max_memory = 10 * E;
    f->cfg.eviction = EVICT_LRU;
    put_n(f->st, 0, 20); /* twice the limit (set after the fact) */
    assert_int_equal(bytes(f->st), 20 * E);
    assert_int_equal(sweeper_admit(f->st, &f->cfg, E, 99), SKV_OK);
    /* One eviction at a time, stopping as soon as the write fits. */
    assert_int_equal(bytes(f->st), 9 * E);
    assert_int_equal(keys(f->st), 9);
    assert_int_equal(evicted(f->st), 11);
    /* Under the limit: nothing more is evicted. */
    assert_int_equal(sweeper_admit(f->st, &f->cfg, E, 100), SKV_OK);
    assert_int_equal(keys(f->st), 9);
    /* A write larger than the whole limit cannot fit: everything evictable
     * goes, then SKV_ENOMEM. */
    assert_int_equal(sweeper_admit(f->st, &f->cfg, 11 * E, 101), SKV_ENOMEM);
    assert_int_equal(keys(f->st), 0);
    assert_int_equal(evicted(f->st), 20);
    check_shards(f->st);
}

/* One shard and five keys: the samples cover the shard, so the least
 * recently used key is the one evicted. */
static void test_lru_evicts_the_coldest(void **state) {
    fx *f = *state;
    f->cfg.max_keys = 5;
    f->cfg.eviction = EVICT_LRU;
    put_n(f->st, 0, 5);
    static const char *touch[] = { "key-00", "key-01", "key-03", "key-04" }; /* key-02 stays cold */
    for (size_t i = 0; i < 4; i++) {
        atomic_store(&fake_now, T0 + (i + 1) * 10000);
        assert_true(present(f->st, touch[i]));
    }
    assert_int_equal(sweeper_admit(f->st, &f->cfg, E, 7), SKV_OK);
    assert_false(present(f->st, "key-02"));
    assert_int_equal(keys(f->st), 4);
    /* Next coldest: key-00 (touched first). */
    put(f->st, "key-05", VAL); /* written now: the newest */
    assert_int_equal(sweeper_admit(f->st, &f->cfg, E, 8), SKV_OK);
    assert_false(present(f->st, "key-00"));
    assert_true(present(f->st, "key-05"));
}

static void test_lru_never_evicts_internal_keys(void **state) {
    fx *f = *state;
    f->cfg.eviction = EVICT_LRU;
    char name[16];
    for (uint32_t i = 0; i < 8; i++) {
        snprintf(name, sizeof name, "ctr-%u", i);
        put_internal(f, i, name); /* two per shard */
    }
    /* Only internal keys: nothing evictable. */
    f->cfg.max_keys = 8;
    for (uint64_t rnd = 0; rnd < 10; rnd++) assert_int_equal(sweeper_admit(f->st, &f->cfg, E, rnd), SKV_ENOMEM);
    assert_int_equal(keys(f->st), 8);
    assert_int_equal(evicted(f->st), 0);

    /* Three cache keys among them: evicted, and still over the limit. */
    put_n(f->st, 0, 3);
    assert_int_equal(sweeper_admit(f->st, &f->cfg, E, 11), SKV_ENOMEM);
    assert_int_equal(keys(f->st), 8);
    assert_int_equal(evicted(f->st), 3);
    for (uint32_t i = 0; i < 8; i++) {
        snprintf(name, sizeof name, "ctr-%u", i);
        assert_true(has_internal(f, i, name));
    }
    /* With room for the internal keys, the cache keys make the difference. */
    f->cfg.max_keys = 10;
    put_n(f->st, 0, 3);
    assert_int_equal(sweeper_admit(f->st, &f->cfg, E, 12), SKV_OK);
    assert_int_equal(keys(f->st), 9);
    assert_int_equal(evicted(f->st), 5);
    check_shards(f->st);
}

/* A node full of internal keys (counters, documents, remembered answers)
 * with one cache key: that key is evictable, so the write is admitted. */
static void test_lru_finds_a_rare_cache_key(void **state) {
    fx *f = *state;
    f->cfg.eviction = EVICT_LRU;
    char name[16];
    for (uint32_t i = 0; i < 2000; i++) {
        snprintf(name, sizeof name, "ctr-%u", i);
        put_internal(f, 0, name);
    }
    f->cfg.max_keys = 2001;
    int refused = 0;
    for (uint64_t rnd = 1; rnd <= 16; rnd++) {
        put(f->st, "the-cache-key", VAL);
        int rc = sweeper_admit(f->st, &f->cfg, E, rnd * 0x9E3779B97F4A7C15ull);
        if (rc == SKV_ENOMEM) {
            refused++;
            del(f->st, "the-cache-key");
            continue;
        }
        assert_int_equal(rc, SKV_OK);
        assert_false(present(f->st, "the-cache-key"));
    }
    assert_int_equal(refused, 0);
    assert_int_equal(keys(f->st), 2000);
}

/* ---- totals and the expiry thread ------------------------------------------------------------------ */

static void test_totals(void **state) {
    fx *f = *state;
    put_n(f->st, 0, 6);
    assert_true(present(f->st, "key-00"));
    assert_true(present(f->st, "key-01"));
    assert_false(present(f->st, "nope"));
    sweeper_totals t;
    memset(&t, 0xff, sizeof t);
    sweeper_totals_get(f->st, &t);
    assert_int_equal(t.keys, 6);
    assert_int_equal(t.bytes, 6 * E);
    assert_int_equal(t.hits, 2);
    assert_int_equal(t.misses, 1);
    assert_int_equal(t.expired, 0);
    assert_int_equal(t.evicted, 0);
}

static uint64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void test_expiry_thread(void **state) {
    fx *f = *state;
    char key[16];
    for (int i = 0; i < 400; i++) {
        snprintf(key, sizeof key, "key-%03d", i);
        put_ttl(f->st, key, VAL, i % 4 == 0 ? 0 : T0 + 1000);
    }
    sweeper *sw = NULL;
    assert_int_equal(sweeper_start(f->st, &f->cfg, NULL, 0, &sw), SKV_OK);
    assert_non_null(sw);
    atomic_store(&fake_now, T0 + 1000); /* 300 keys expire, nobody reads them */
    uint64_t deadline = mono_ms() + WAIT_MS;
    while (keys(f->st) > 100 && mono_ms() < deadline) {
        struct timespec ts = { 0, 5 * 1000000L };
        nanosleep(&ts, NULL);
    }
    sweeper_stop(sw);
    assert_int_equal(keys(f->st), 100);
    sweeper_totals t;
    sweeper_totals_get(f->st, &t);
    assert_int_equal(t.expired, 300);
    assert_int_equal(t.misses, 0);
    for (int i = 0; i < 400; i += 4) {
        snprintf(key, sizeof key, "key-%03d", i);
        assert_true(present(f->st, key));
    }
    check_shards(f->st);
    sweeper_stop(NULL); /* harmless */
}

int main(void) {
    log_init(LOG_LEVEL_OFF, LOG_FORMAT_TEXT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_unlimited_admits_everything, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_reject_max_keys, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_reject_max_memory, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_lru_max_keys_evicts_one, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_lru_max_memory_evicts_until_it_fits, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_lru_evicts_the_coldest, fx_setup_one, fx_teardown),
        cmocka_unit_test_setup_teardown(test_lru_never_evicts_internal_keys, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_lru_finds_a_rare_cache_key, fx_setup_one, fx_teardown),
        cmocka_unit_test_setup_teardown(test_totals, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_expiry_thread, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
