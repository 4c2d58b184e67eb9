/*
 * Unit tests for ht: basic operations, growth and shrink through incremental
 * rehashing, forced hash collisions, binary and empty keys, scan
 * completeness while the table is modified and resized between calls, and
 * allocation failure of ht_entry_new; ht_position and ht_scan_one (one
 * larger-table bucket per call, position ranges, and the position filter of
 * the scan module staying exact across grow, shrink and a big shrink in the
 * middle of a scan).  Run under ASan with detect_leaks=1 to
 * check that ht_free releases everything.
 *
 * Keys of "numbered" entries are "key:<id>" and their value holds the id as
 * 4 raw bytes, so scan callbacks can tell which entry they saw.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <xxhash.h>

#include "ht.h"
#include "mem.h"

#define INITIAL_BYTES (16 * sizeof(ht_entry *))

static uint64_t hash_of(const void *key, size_t len) { return XXH3_64bits(key, len); }

static ht_entry *make_entry(const void *key, size_t key_len, const void *val, size_t val_len) {
    ht_entry *e = ht_entry_new(hash_of(key, key_len), key, key_len, val, val_len);
    assert_non_null(e);
    return e;
}

static ht_entry *make_str(const char *key, const char *val) {
    return make_entry(key, strlen(key), val, strlen(val));
}

static ht_entry *find_str(ht *t, const char *key) {
    return ht_find(t, hash_of(key, strlen(key)), key, strlen(key));
}

static size_t id_key(uint32_t id, char *buf, size_t cap) {
    int n = snprintf(buf, cap, "key:%u", id);
    assert_true(n > 0 && (size_t)n < cap);
    return (size_t)n;
}

static ht_entry *make_id(uint32_t id) {
    char key[32];
    size_t n = id_key(id, key, sizeof key);
    return make_entry(key, n, &id, sizeof id);
}

static void put_id(ht *t, uint32_t id) { assert_null(ht_put(t, make_id(id))); }

static ht_entry *find_id(ht *t, uint32_t id) {
    char key[32];
    size_t n = id_key(id, key, sizeof key);
    return ht_find(t, hash_of(key, n), key, n);
}

static void assert_has_id(ht *t, uint32_t id) {
    ht_entry *e = find_id(t, id);
    assert_non_null(e);
    uint32_t got;
    assert_int_equal(e->val_len, sizeof got);
    memcpy(&got, ht_entry_value(e), sizeof got);
    assert_int_equal(got, id);
}

static void remove_id(ht *t, uint32_t id) {
    char key[32];
    size_t n = id_key(id, key, sizeof key);
    ht_entry *e = ht_remove(t, hash_of(key, n), key, n);
    assert_non_null(e);
    assert_null(e->next);
    free(e);
}

/* Drives pending rehashing to completion through lookups, then performs
 * put+remove pairs (which check the resize policy) until the table settles.
 * The probe is skipped when its put alone would trigger growth. */
static void settle(ht *t) {
    for (int i = 0; i < 1000000; i++) {
        if (ht_is_rehashing(t)) {
            assert_null(find_str(t, "no-such-key"));
            continue;
        }
        size_t before = ht_overhead_bytes(t);
        if (ht_count(t) + 1 >= before / sizeof(ht_entry *)) return;
        ht_entry *probe = make_str("settle-probe", "");
        assert_null(ht_put(t, probe));
        free(ht_remove(t, probe->hash, "settle-probe", strlen("settle-probe")));
        if (!ht_is_rehashing(t) && ht_overhead_bytes(t) == before) return;
    }
    fail_msg("table never settled");
}

/* ---- scan helpers ---- */

typedef struct scan_seen {
    uint32_t *hits; /* indexed by id */
    size_t cap;
    size_t entries;
} scan_seen;

static void scan_record(void *arg, const ht_entry *e) {
    scan_seen *s = arg;
    uint32_t id;
    assert_int_equal(e->val_len, sizeof id);
    memcpy(&id, ht_entry_value(e), sizeof id);
    assert_true(id < s->cap);
    s->hits[id]++;
    s->entries++;
}

static scan_seen seen_new(size_t cap) {
    scan_seen s = { calloc(cap, sizeof(uint32_t)), cap, 0 };
    assert_non_null(s.hits);
    return s;
}

/* Records keys in visiting order (for chain-order checks). */
typedef struct scan_order {
    char keys[8][8];
    int n;
} scan_order;

static void scan_record_order(void *arg, const ht_entry *e) {
    scan_order *o = arg;
    assert_true(o->n < 8 && e->key_len < 8);
    memcpy(o->keys[o->n], ht_entry_key(e), e->key_len);
    o->keys[o->n][e->key_len] = '\0';
    o->n++;
}

static void full_scan_order(ht *t, scan_order *o) {
    memset(o, 0, sizeof(*o));
    uint64_t cursor = 0;
    do cursor = ht_scan(t, cursor, scan_record_order, o);
    while (cursor != 0);
}

/* ---- tests ---- */

static void test_empty(void **state) {
    (void)state;
    ht *t = ht_new();
    assert_true(ht_check(t));
    assert_int_equal(ht_count(t), 0);
    assert_int_equal(ht_overhead_bytes(t), INITIAL_BYTES);
    assert_false(ht_is_rehashing(t));
    assert_null(find_str(t, "missing"));
    assert_null(ht_remove(t, hash_of("missing", 7), "missing", 7));
    assert_null(ht_find(t, 0, NULL, 0));

    scan_seen s = seen_new(1);
    uint64_t cursor = 0;
    int calls = 0;
    do {
        cursor = ht_scan(t, cursor, scan_record, &s);
        calls++;
    } while (cursor != 0 && calls < 100);
    assert_int_equal(cursor, 0);
    assert_int_equal(calls, 16);
    assert_int_equal(s.entries, 0);
    free(s.hits);
    assert_true(ht_check(t));
    ht_free(t);
    ht_free(NULL);
}

static void test_entry_new_fields(void **state) {
    (void)state;
    ht_entry *e = ht_entry_new(0x1234, "abc", 3, "hello", 5);
    assert_non_null(e);
    assert_null(e->next);
    assert_int_equal(e->hash, 0x1234);
    assert_int_equal(e->version, 0);
    assert_int_equal(e->flags, 0);
    assert_int_equal(e->key_len, 3);
    assert_int_equal(e->val_len, 5);
    assert_memory_equal(ht_entry_key(e), "abc", 3);
    assert_memory_equal(ht_entry_value(e), "hello", 5);
    assert_int_equal(ht_entry_size(e), sizeof(ht_entry) + 8);
    free(e);
}

static void test_entry_new_too_long(void **state) {
    (void)state;
    if (SIZE_MAX <= UINT32_MAX) skip();
    char small[1] = { 0 };
    /* The lengths do not fit the 32-bit fields: rejected before any copy. */
    assert_null(ht_entry_new(1, small, (size_t)UINT32_MAX + 1, small, 0));
    assert_null(ht_entry_new(1, small, 0, small, (size_t)UINT32_MAX + 1));
}

static void test_put_find(void **state) {
    (void)state;
    ht *t = ht_new();
    assert_null(ht_put(t, make_str("alpha", "1")));
    assert_null(ht_put(t, make_str("beta", "22")));
    assert_null(ht_put(t, make_str("gamma", "333")));
    assert_int_equal(ht_count(t), 3);

    ht_entry *e = find_str(t, "beta");
    assert_non_null(e);
    assert_int_equal(e->val_len, 2);
    assert_memory_equal(ht_entry_value(e), "22", 2);
    assert_null(find_str(t, "delta"));
    assert_null(find_str(t, "bet"));   /* prefix of a key */
    assert_null(find_str(t, "betaa")); /* key is a prefix of it */
    /* Right hash, wrong bytes of equal length. */
    assert_null(ht_find(t, hash_of("beta", 4), "beto", 4));
    assert_true(ht_check(t));
    ht_free(t);
}

static void test_replace(void **state) {
    (void)state;
    ht *t = ht_new();
    assert_null(ht_put(t, make_str("k", "old")));
    ht_entry *fresh = make_str("k", "newer");
    ht_entry *old = ht_put(t, fresh);
    assert_non_null(old);
    assert_null(old->next);
    assert_memory_equal(ht_entry_value(old), "old", 3);
    free(old);
    assert_int_equal(ht_count(t), 1);
    assert_ptr_equal(find_str(t, "k"), fresh);
    assert_memory_equal(ht_entry_value(fresh), "newer", 5);
    assert_true(ht_check(t));
    ht_free(t);
}

static void test_replace_keeps_chain_position(void **state) {
    (void)state;
    ht *t = ht_new();
    const uint64_t h = 77;
    /* Same hash: one chain, head insertion gives c, b, a. */
    assert_null(ht_put(t, ht_entry_new(h, "a", 1, "1", 1)));
    assert_null(ht_put(t, ht_entry_new(h, "b", 1, "1", 1)));
    assert_null(ht_put(t, ht_entry_new(h, "c", 1, "1", 1)));
    scan_order o;
    full_scan_order(t, &o);
    assert_int_equal(o.n, 3);
    assert_string_equal(o.keys[0], "c");
    assert_string_equal(o.keys[1], "b");
    assert_string_equal(o.keys[2], "a");

    const char *order[] = { "b", "c", "a" }; /* middle, head, tail */
    for (int i = 0; i < 3; i++) {
        ht_entry *fresh = ht_entry_new(h, order[i], 1, "2", 1);
        ht_entry *old = ht_put(t, fresh);
        assert_non_null(old);
        assert_memory_equal(ht_entry_value(old), "1", 1);
        free(old);
        full_scan_order(t, &o);
        assert_int_equal(o.n, 3);
        assert_string_equal(o.keys[0], "c");
        assert_string_equal(o.keys[1], "b");
        assert_string_equal(o.keys[2], "a");
        assert_ptr_equal(ht_find(t, h, order[i], 1), fresh);
        assert_true(ht_check(t));
    }
    ht_free(t);
}

static void test_remove(void **state) {
    (void)state;
    ht *t = ht_new();
    assert_null(ht_put(t, make_str("x", "1")));
    assert_null(ht_put(t, make_str("y", "2")));
    ht_entry *e = ht_remove(t, hash_of("x", 1), "x", 1);
    assert_non_null(e);
    assert_null(e->next);
    assert_memory_equal(ht_entry_key(e), "x", 1);
    free(e);
    assert_int_equal(ht_count(t), 1);
    assert_null(find_str(t, "x"));
    assert_non_null(find_str(t, "y"));
    assert_null(ht_remove(t, hash_of("x", 1), "x", 1));
    /* The stored hash is part of the match: a different hash (same bucket
     * or not) does not find the key. */
    assert_null(ht_remove(t, hash_of("y", 1) ^ 1, "y", 1));
    assert_null(ht_remove(t, hash_of("y", 1) ^ (1ull << 63), "y", 1));
    assert_null(ht_find(t, hash_of("y", 1) ^ (1ull << 63), "y", 1));
    assert_int_equal(ht_count(t), 1);
    assert_true(ht_check(t));
    ht_free(t);
}

static void test_many_keys_grow_shrink(void **state) {
    (void)state;
    enum { N = 200000 };
    ht *t = ht_new();
    int rehash_checks = 0;
    for (uint32_t i = 0; i < N; i++) {
        int was_rehashing = ht_is_rehashing(t);
        put_id(t, i);
        if (!was_rehashing && ht_is_rehashing(t) && ht_count(t) >= 1024) {
            /* A growth just started: every key must be reachable while
             * entries are split across both tables. */
            assert_true(ht_check(t));
            for (uint32_t j = 0; j <= i; j++) {
                assert_has_id(t, j);
                if (j == 50) {
                    assert_true(ht_is_rehashing(t)); /* still mid-rehash */
                    assert_true(ht_check(t));
                }
            }
            rehash_checks++;
        }
        if (i % 10007 == 0) assert_true(ht_check(t));
    }
    assert_true(rehash_checks >= 7); /* 1024 .. 131072 */
    assert_int_equal(ht_count(t), N);
    assert_true(ht_check(t));
    assert_true(ht_overhead_bytes(t) >= N * sizeof(ht_entry *));

    /* Remove in a scattered order (7919 is coprime with N). */
    int shrinks = 0;
    for (uint32_t i = 0; i < N; i++) {
        int was_rehashing = ht_is_rehashing(t);
        size_t before = ht_overhead_bytes(t);
        remove_id(t, (uint32_t)(((uint64_t)i * 7919) % N));
        if (!was_rehashing && ht_is_rehashing(t)) {
            assert_true(ht_overhead_bytes(t) < 2 * before); /* a shrink */
            assert_true(ht_check(t));
            for (uint32_t j = i + 1; j < N; j++) assert_has_id(t, (uint32_t)(((uint64_t)j * 7919) % N));
            shrinks++;
        }
        if (i % 10007 == 0) assert_true(ht_check(t));
    }
    assert_true(shrinks >= 3);
    assert_int_equal(ht_count(t), 0);
    assert_true(ht_check(t));
    settle(t);
    assert_int_equal(ht_overhead_bytes(t), INITIAL_BYTES);
    assert_true(ht_check(t));
    ht_free(t);
}

static void test_incremental_rehash(void **state) {
    (void)state;
    ht *t = ht_new();
    uint32_t id = 0;
    while (ht_count(t) < 32767) put_id(t, id++);
    settle(t);
    assert_int_equal(ht_overhead_bytes(t), 32768 * sizeof(ht_entry *));
    put_id(t, id++); /* count reaches the bucket count: growth starts */
    assert_true(ht_is_rehashing(t));
    assert_int_equal(ht_overhead_bytes(t), (32768 + 65536) * sizeof(ht_entry *));
    /* Each operation moves at most 4 non-empty buckets; about 63% of the
     * 32768 buckets are non-empty, so this takes thousands of lookups. */
    int ops = 0;
    while (ht_is_rehashing(t)) {
        assert_null(find_str(t, "absent"));
        ops++;
        if (ops % 512 == 0) assert_true(ht_check(t));
    }
    assert_true(ops >= 32768 / 44);
    assert_int_equal(ht_overhead_bytes(t), 65536 * sizeof(ht_entry *));
    for (uint32_t i = 0; i < id; i++) assert_has_id(t, i);
    assert_true(ht_check(t));
    ht_free(t);
}

static void test_same_hash_collisions(void **state) {
    (void)state;
    enum { N = 2000 };
    const uint64_t h = 0xDEADBEEFull;
    ht *t = ht_new();
    char key[32];
    for (uint32_t i = 0; i < N; i++) {
        size_t n = id_key(i, key, sizeof key);
        assert_null(ht_put(t, ht_entry_new(h, key, n, &i, sizeof i)));
    }
    assert_int_equal(ht_count(t), N);
    assert_true(ht_check(t));
    /* Every key is distinguished by its bytes alone. */
    for (uint32_t i = 0; i < N; i++) {
        size_t n = id_key(i, key, sizeof key);
        ht_entry *e = ht_find(t, h, key, n);
        assert_non_null(e);
        assert_memory_equal(ht_entry_value(e), &i, sizeof i);
    }
    assert_null(ht_find(t, h, "key:x", 5));
    /* Replace every third key, remove every other key. */
    for (uint32_t i = 0; i < N; i += 3) {
        size_t n = id_key(i, key, sizeof key);
        uint32_t v = i + 1000000;
        ht_entry *old = ht_put(t, ht_entry_new(h, key, n, &v, sizeof v));
        assert_non_null(old);
        free(old);
    }
    assert_int_equal(ht_count(t), N);
    for (uint32_t i = 0; i < N; i += 2) {
        size_t n = id_key(i, key, sizeof key);
        ht_entry *e = ht_remove(t, h, key, n);
        assert_non_null(e);
        free(e);
    }
    assert_int_equal(ht_count(t), N / 2);
    assert_true(ht_check(t));
    for (uint32_t i = 0; i < N; i++) {
        size_t n = id_key(i, key, sizeof key);
        ht_entry *e = ht_find(t, h, key, n);
        if (i % 2 == 0) {
            assert_null(e);
            continue;
        }
        assert_non_null(e);
        uint32_t want = i % 3 == 0 ? i + 1000000 : i;
        assert_memory_equal(ht_entry_value(e), &want, sizeof want);
    }
    ht_free(t);
}

static void test_binary_keys(void **state) {
    (void)state;
    ht *t = ht_new();
    const uint64_t h = 5; /* same hash for all: only bytes and length differ */
    static const char k1[] = { 'a', '\0', 'b' };
    static const char k2[] = { 'a', '\0', 'c' };
    static const char k3[] = { 'a', '\0' };
    static const char k4[] = { 'a' };
    static const char k5[] = { '\0', '\0', '\0' };
    static const char v1[] = { '\0', 'x', '\0' };
    assert_null(ht_put(t, ht_entry_new(h, k1, sizeof k1, v1, sizeof v1)));
    assert_null(ht_put(t, ht_entry_new(h, k2, sizeof k2, "2", 1)));
    assert_null(ht_put(t, ht_entry_new(h, k3, sizeof k3, "3", 1)));
    assert_null(ht_put(t, ht_entry_new(h, k4, sizeof k4, "4", 1)));
    assert_null(ht_put(t, ht_entry_new(h, k5, sizeof k5, "5", 1)));
    assert_int_equal(ht_count(t), 5);

    ht_entry *e = ht_find(t, h, k1, sizeof k1);
    assert_non_null(e);
    assert_int_equal(e->val_len, 3);
    assert_memory_equal(ht_entry_value(e), v1, 3);
    assert_memory_equal(ht_entry_value(ht_find(t, h, k2, sizeof k2)), "2", 1);
    assert_memory_equal(ht_entry_value(ht_find(t, h, k3, sizeof k3)), "3", 1);
    assert_memory_equal(ht_entry_value(ht_find(t, h, k4, sizeof k4)), "4", 1);
    assert_memory_equal(ht_entry_value(ht_find(t, h, k5, sizeof k5)), "5", 1);
    assert_null(ht_find(t, h, k5, 2));
    assert_null(ht_find(t, h, "a\0d", 3));

    e = ht_remove(t, h, k3, sizeof k3);
    assert_non_null(e);
    assert_memory_equal(ht_entry_key(e), k3, sizeof k3);
    free(e);
    assert_null(ht_find(t, h, k3, sizeof k3));
    assert_non_null(ht_find(t, h, k1, sizeof k1));
    assert_non_null(ht_find(t, h, k4, sizeof k4));
    assert_true(ht_check(t));
    ht_free(t);
}

static void test_zero_length_key_value(void **state) {
    (void)state;
    ht *t = ht_new();
    uint64_t h = hash_of("", 0);
    ht_entry *e = ht_entry_new(h, NULL, 0, NULL, 0);
    assert_non_null(e);
    assert_int_equal(ht_entry_size(e), sizeof(ht_entry));
    assert_null(ht_put(t, e));
    assert_null(ht_put(t, make_str("k", ""))); /* empty value, normal key */
    assert_ptr_equal(ht_find(t, h, NULL, 0), e);
    assert_ptr_equal(ht_find(t, h, "", 0), e);
    ht_entry *k = find_str(t, "k");
    assert_non_null(k);
    assert_int_equal(k->val_len, 0);

    ht_entry *fresh = ht_entry_new(h, "", 0, "v", 1);
    ht_entry *old = ht_put(t, fresh);
    assert_ptr_equal(old, e);
    free(old);
    assert_memory_equal(ht_entry_value(ht_find(t, h, NULL, 0)), "v", 1);
    old = ht_remove(t, h, NULL, 0);
    assert_ptr_equal(old, fresh);
    free(old);
    assert_null(ht_find(t, h, NULL, 0));
    assert_int_equal(ht_count(t), 1);
    assert_true(ht_check(t));
    ht_free(t);
}

static void test_scan_static_exactly_once(void **state) {
    (void)state;
    enum { N = 5000 };
    ht *t = ht_new();
    for (uint32_t i = 0; i < N; i++) put_id(t, i);
    settle(t);
    scan_seen s = seen_new(N);
    uint64_t cursor = 0;
    size_t calls = 0;
    do {
        cursor = ht_scan(t, cursor, scan_record, &s);
        calls++;
    } while (cursor != 0);
    /* Without rehashing a call visits exactly one bucket. */
    assert_int_equal(calls * sizeof(ht_entry *), ht_overhead_bytes(t));
    assert_int_equal(s.entries, N);
    for (uint32_t i = 0; i < N; i++) assert_int_equal(s.hits[i], 1);
    free(s.hits);
    ht_free(t);
}

static void test_scan_mid_rehash_static(void **state) {
    (void)state;
    ht *t = ht_new();
    uint32_t n = 0;
    while (ht_count(t) < 4095) put_id(t, n++);
    settle(t);
    put_id(t, n++); /* starts growth 4096 -> 8192 */
    assert_true(ht_is_rehashing(t));
    for (int i = 0; i < 100; i++) assert_null(find_str(t, "absent")); /* partly moved */
    assert_true(ht_is_rehashing(t));
    /* Entries split across two tables, nothing changes between calls:
     * every entry is returned exactly once. */
    scan_seen s = seen_new(n);
    uint64_t cursor = 0;
    do cursor = ht_scan(t, cursor, scan_record, &s);
    while (cursor != 0);
    assert_true(ht_is_rehashing(t)); /* scan itself does not rehash */
    assert_int_equal(s.entries, n);
    for (uint32_t i = 0; i < n; i++) assert_int_equal(s.hits[i], 1);
    free(s.hits);
    ht_free(t);
}

/*
 * Scan while the table changes between calls.  The table starts with ids
 * [0, initial); after every scan call churn_step inserts per_call new ids
 * (up to insert_max) and, from call del_after on, deletes del_per_call ids
 * in id order, skipping the stable ones (initial ids that are multiples of
 * stable_mod).  Stable ids are present for the whole scan, so each must be
 * seen at least once.
 */
typedef struct churn {
    uint32_t initial;
    uint32_t insert_max;  /* stop inserting at this id */
    uint32_t per_call;    /* inserts per scan call */
    uint32_t del_after;   /* scan calls before deletions start */
    uint32_t del_per_call;
    uint32_t stable_mod;
    uint32_t next_id;     /* next id to insert */
    uint32_t del_next;    /* next id considered for deletion */
    size_t calls;
    size_t stable_bytes;  /* bucket bytes when last seen not rehashing */
    int saw_grow, saw_shrink;
} churn;

static int is_stable(const churn *c, uint32_t id) { return id < c->initial && id % c->stable_mod == 0; }

static void churn_step(ht *t, churn *c) {
    for (uint32_t i = 0; i < c->per_call && c->next_id < c->insert_max; i++) put_id(t, c->next_id++);
    if (c->calls >= c->del_after) {
        for (uint32_t i = 0; i < c->del_per_call && c->del_next < c->next_id;) {
            uint32_t id = c->del_next++;
            if (is_stable(c, id)) continue;
            remove_id(t, id);
            i++;
        }
    }
    if (!ht_is_rehashing(t)) {
        size_t now = ht_overhead_bytes(t);
        if (now > c->stable_bytes) c->saw_grow = 1;
        if (now < c->stable_bytes) c->saw_shrink = 1;
        c->stable_bytes = now;
    }
}

static void run_churn_scan(churn *c) {
    ht *t = ht_new();
    for (uint32_t i = 0; i < c->initial; i++) put_id(t, i);
    c->next_id = c->initial;
    settle(t);
    c->stable_bytes = ht_overhead_bytes(t);
    scan_seen s = seen_new(c->insert_max > c->initial ? c->insert_max : c->initial);
    uint64_t cursor = 0;
    do {
        cursor = ht_scan(t, cursor, scan_record, &s);
        c->calls++;
        churn_step(t, c);
        if (c->calls % 64 == 0) assert_true(ht_check(t));
        assert_true(c->calls < 10000000);
    } while (cursor != 0);
    for (uint32_t id = 0; id < c->initial; id++)
        if (is_stable(c, id)) assert_true(s.hits[id] >= 1);
    assert_true(ht_check(t));
    free(s.hits);
    ht_free(t);
}

static void test_scan_while_growing(void **state) {
    (void)state;
    churn c = { .initial = 1000, .insert_max = 20000, .per_call = 3,
                .del_per_call = 1, .stable_mod = 4 };
    run_churn_scan(&c);
    assert_true(c.saw_grow);
}

static void test_scan_while_shrinking(void **state) {
    (void)state;
    churn c = { .initial = 20000, .del_per_call = 40, .stable_mod = 64 };
    run_churn_scan(&c);
    assert_true(c.saw_shrink);
}

static void test_scan_grow_then_shrink(void **state) {
    (void)state;
    churn c = { .initial = 3000, .insert_max = 9000, .per_call = 16,
                .del_after = 400, .del_per_call = 64, .stable_mod = 10 };
    run_churn_scan(&c);
    assert_true(c.saw_grow);
    assert_true(c.saw_shrink);
}

static void test_scan_while_rehash_advances(void **state) {
    (void)state;
    ht *t = ht_new();
    uint32_t n = 0;
    while (ht_count(t) < 2047) put_id(t, n++);
    settle(t);
    put_id(t, n++); /* growth 2048 -> 4096 begins */
    assert_true(ht_is_rehashing(t));
    scan_seen s = seen_new(n);
    uint64_t cursor = 0;
    int finished_mid_scan = 0;
    do {
        cursor = ht_scan(t, cursor, scan_record, &s);
        assert_null(find_str(t, "absent")); /* one rehash step per call */
        if (!ht_is_rehashing(t)) finished_mid_scan = 1;
    } while (cursor != 0);
    assert_true(finished_mid_scan);
    for (uint32_t i = 0; i < n; i++) assert_true(s.hits[i] >= 1);
    free(s.hits);
    ht_free(t);
}

static void test_entry_new_oom(void **state) {
    (void)state;
    ht *t = ht_new();
    ht_entry *pending[100];
    for (uint32_t i = 0; i < 100; i++) pending[i] = make_id(i);

    skv_mem_fail_after(1);
    assert_null(ht_entry_new(1, "k", 1, "v", 1));
    assert_null(ht_entry_new(1, "k", 1, "v", 1)); /* sticky until reset */
    /* Table growth uses internal allocations, which do not fail. */
    for (uint32_t i = 0; i < 100; i++) assert_null(ht_put(t, pending[i]));
    skv_mem_fail_after(0);

    ht_entry *e = ht_entry_new(1, "k", 1, "v", 1);
    assert_non_null(e);
    free(e);
    assert_int_equal(ht_count(t), 100);
    for (uint32_t i = 0; i < 100; i++) assert_has_id(t, i);
    assert_true(ht_check(t));
    ht_free(t);
}

static void test_free_mid_rehash(void **state) {
    (void)state;
    ht *t = ht_new();
    uint32_t n = 0;
    while (!ht_is_rehashing(t) || ht_count(t) < 1024) put_id(t, n++);
    for (int i = 0; i < 20; i++) assert_null(find_str(t, "absent"));
    assert_true(ht_is_rehashing(t));
    assert_true(ht_check(t));
    ht_free(t); /* entries in both tables: LeakSanitizer checks they are freed */
}

static void test_replace_during_rehash(void **state) {
    (void)state;
    ht *t = ht_new();
    uint32_t n = 0;
    while (ht_count(t) < 1023) put_id(t, n++);
    settle(t);
    put_id(t, n++);
    assert_true(ht_is_rehashing(t));
    char key[32];
    for (uint32_t i = 0; i < n; i++) {
        size_t kn = id_key(i, key, sizeof key);
        uint32_t v = i + 7;
        int rehashing = ht_is_rehashing(t);
        ht_entry *old = ht_put(t, make_entry(key, kn, &v, sizeof v));
        assert_non_null(old);
        free(old);
        if (rehashing && i % 64 == 0) assert_true(ht_check(t));
    }
    assert_int_equal(ht_count(t), n);
    for (uint32_t i = 0; i < n; i++) {
        size_t kn = id_key(i, key, sizeof key);
        ht_entry *e = ht_find(t, hash_of(key, kn), key, kn);
        assert_non_null(e);
        uint32_t want = i + 7;
        assert_memory_equal(ht_entry_value(e), &want, sizeof want);
    }
    assert_true(ht_check(t));
    ht_free(t);
}

static void test_remove_during_rehash(void **state) {
    (void)state;
    ht *t = ht_new();
    uint32_t n = 0;
    while (ht_count(t) < 1023) put_id(t, n++);
    settle(t);
    put_id(t, n++);
    assert_true(ht_is_rehashing(t));
    for (uint32_t i = 0; i < n; i += 2) {
        remove_id(t, i);
        if (i % 32 == 0) assert_true(ht_check(t));
    }
    assert_int_equal(ht_count(t), n / 2);
    for (uint32_t i = 0; i < n; i++) {
        if (i % 2 == 0) assert_null(find_id(t, i));
        else assert_has_id(t, i);
    }
    assert_true(ht_check(t));
    ht_free(t);
}

static void test_check_detects_corruption(void **state) {
    (void)state;
    ht *t = ht_new();
    for (uint32_t i = 0; i < 10; i++) put_id(t, i);
    assert_true(ht_check(t));
    ht_entry *e = find_id(t, 3);
    assert_non_null(e);

    /* Entry in the wrong bucket. */
    uint64_t saved_hash = e->hash;
    e->hash ^= 1;
    assert_false(ht_check(t));
    e->hash = saved_hash;
    assert_true(ht_check(t));

    /* An entry linked behind the table's back: count mismatch. */
    ht_entry *stray = ht_entry_new(e->hash, "stray", 5, "", 0);
    assert_non_null(stray);
    ht_entry *saved_next = e->next;
    stray->next = saved_next;
    e->next = stray;
    assert_false(ht_check(t));
    /* A cycle must not hang the checker. */
    e->next = e;
    assert_false(ht_check(t));
    e->next = saved_next;
    free(stray);
    assert_true(ht_check(t));

    /* An entry lost from its chain: count mismatch the other way. */
    assert_null(ht_put(t, ht_entry_new(99, "p", 1, "", 0)));
    ht_entry *head = ht_entry_new(99, "q", 1, "", 0);
    assert_null(ht_put(t, head)); /* head of the bucket, "p" behind it */
    ht_entry *behind = head->next;
    assert_non_null(behind);
    head->next = NULL;
    assert_false(ht_check(t));
    head->next = behind;
    assert_true(ht_check(t));
    ht_free(t);
}

static void test_growth_and_shrink_policy(void **state) {
    (void)state;
    ht *t = ht_new();
    for (uint32_t i = 0; i < 15; i++) put_id(t, i);
    assert_false(ht_is_rehashing(t));
    assert_int_equal(ht_overhead_bytes(t), INITIAL_BYTES);
    put_id(t, 15); /* count == buckets: grow to 2*16 */
    assert_true(ht_is_rehashing(t));
    settle(t);
    assert_int_equal(ht_overhead_bytes(t), 32 * sizeof(ht_entry *));
    /* Shrink only below buckets/8 = 4 entries, to the initial size. */
    for (uint32_t i = 0; i < 12; i++) remove_id(t, i);
    settle(t);
    assert_int_equal(ht_count(t), 4);
    assert_int_equal(ht_overhead_bytes(t), 32 * sizeof(ht_entry *));
    remove_id(t, 12);
    settle(t);
    assert_int_equal(ht_overhead_bytes(t), INITIAL_BYTES);
    for (uint32_t i = 13; i < 16; i++) assert_has_id(t, i);
    /* Never below the initial size. */
    for (uint32_t i = 13; i < 16; i++) remove_id(t, i);
    settle(t);
    assert_int_equal(ht_count(t), 0);
    assert_int_equal(ht_overhead_bytes(t), INITIAL_BYTES);
    assert_true(ht_check(t));
    ht_free(t);
}

/* ---- ht_position / ht_scan_one ---- */

static void test_position(void **state) {
    (void)state;
    assert_true(ht_position(0) == 0);
    assert_true(ht_position(1) == 1ULL << 63);
    assert_true(ht_position(1ULL << 63) == 1);
    assert_true(ht_position(0x00000000000000F0ULL) == 0x0F00000000000000ULL);
    assert_true(ht_position(0x0123456789ABCDEFULL) == 0xF7B3D591E6A2C480ULL);
    assert_true(ht_position(UINT64_MAX) == UINT64_MAX);
    uint64_t x = 1;
    for (int i = 0; i < 1000; i++, x = x * 6364136223846793005ULL + 1442695040888963407ULL)
        assert_true(ht_position(ht_position(x)) == x);
}

/* Records ids (scan_seen) and the position range of one ht_scan_one call;
 * only positions >= from are recorded (the scan module's filter). */
typedef struct one_ctx {
    scan_seen seen;
    uint64_t from;
    uint64_t min_pos, max_pos; /* over this call's recorded entries */
    size_t in_call;
} one_ctx;

static void one_record(void *arg, const ht_entry *e) {
    one_ctx *c = arg;
    uint64_t pos = ht_position(e->hash);
    if (pos < c->from) return;
    if (c->in_call == 0 || pos < c->min_pos) c->min_pos = pos;
    if (c->in_call == 0 || pos > c->max_pos) c->max_pos = pos;
    c->in_call++;
    scan_record(&c->seen, e);
}

/* Size of the larger table (the sizes are distinct powers of two). */
static size_t larger_size(const ht *t) {
    size_t total = ht_overhead_bytes(t) / sizeof(ht_entry *), p = 1;
    while (p * 2 <= total) p *= 2;
    return p;
}

/* A full ht_scan_one pass over an unchanging table: one call per bucket of
 * the larger table, each call's entries inside [position(cursor & M),
 * position(next)), adjacent ranges, every id once. */
static void scan_one_pass_exact(ht *t, uint32_t n) {
    size_t large = larger_size(t);
    one_ctx c = { .seen = seen_new(n) };
    uint64_t cursor = 0, lo = 0;
    size_t calls = 0;
    do {
        assert_true(ht_position(cursor & (large - 1)) == lo);
        c.in_call = 0;
        uint64_t next = ht_scan_one(t, cursor, one_record, &c);
        if (c.in_call) {
            assert_true(c.min_pos >= lo);
            if (next != 0) assert_true(c.max_pos < ht_position(next));
        }
        lo = ht_position(next);
        cursor = next;
        calls++;
    } while (cursor != 0);
    assert_int_equal(calls, large);
    assert_int_equal(c.seen.entries, n);
    for (uint32_t i = 0; i < n; i++) assert_int_equal(c.seen.hits[i], 1);
    free(c.seen.hits);
}

static void test_scan_one_settled(void **state) {
    (void)state;
    ht *t = ht_new();
    uint32_t n = 3000;
    for (uint32_t i = 0; i < n; i++) put_id(t, i);
    settle(t);
    assert_false(ht_is_rehashing(t));
    scan_one_pass_exact(t, n);
    ht_free(t);
}

static void test_scan_one_mid_grow(void **state) {
    (void)state;
    ht *t = ht_new();
    uint32_t n = 0;
    while (ht_count(t) < 4095) put_id(t, n++);
    settle(t);
    put_id(t, n++); /* growth 4096 -> 8192 */
    for (int i = 0; i < 200; i++) assert_null(find_str(t, "absent"));
    assert_true(ht_is_rehashing(t));
    scan_one_pass_exact(t, n);
    assert_true(ht_is_rehashing(t)); /* ht_scan_one does not rehash */
    ht_free(t);
}

static void test_scan_one_mid_shrink(void **state) {
    (void)state;
    ht *t = ht_new();
    uint32_t n = 4000;
    for (uint32_t i = 0; i < n; i++) put_id(t, i);
    settle(t);
    size_t big = ht_overhead_bytes(t);
    uint32_t del = 0;
    while (!ht_is_rehashing(t)) remove_id(t, del++); /* until the shrink starts */
    assert_true(ht_overhead_bytes(t) > big);          /* both tables allocated */
    for (int i = 0; i < 30; i++) assert_null(find_str(t, "absent"));
    assert_true(ht_is_rehashing(t));
    /* ids [del, n) remain. */
    one_ctx c = { .seen = seen_new(n) };
    uint64_t cursor = 0;
    do cursor = ht_scan_one(t, cursor, scan_record, &c.seen);
    while (cursor != 0);
    assert_int_equal(c.seen.entries, n - del);
    for (uint32_t i = 0; i < n; i++) assert_int_equal(c.seen.hits[i], i < del ? 0 : 1);
    free(c.seen.hits);
    ht_free(t);
}

/*
 * The scan module's use of positions: visit with ht_scan_one from the
 * first unexamined position, record only positions >= it, and move it to
 * the end of the call's range.  With the table growing and shrinking
 * between calls, every entry is recorded at most once and every stable one
 * exactly once (plain cursors may repeat entries after a shrink).
 */
static void run_position_scan(churn *c) {
    ht *t = ht_new();
    for (uint32_t i = 0; i < c->initial; i++) put_id(t, i);
    c->next_id = c->initial;
    settle(t);
    c->stable_bytes = ht_overhead_bytes(t);
    uint32_t cap = c->insert_max > c->initial ? c->insert_max : c->initial;
    one_ctx oc = { .seen = seen_new(cap) };
    uint64_t next_pos = 0;
    for (;;) {
        oc.from = next_pos;
        oc.in_call = 0;
        uint64_t cursor = ht_scan_one(t, ht_position(next_pos), one_record, &oc);
        c->calls++;
        if (cursor == 0) break;
        assert_true(ht_position(cursor) > next_pos);
        if (oc.in_call) assert_true(oc.max_pos < ht_position(cursor));
        next_pos = ht_position(cursor);
        churn_step(t, c);
        assert_true(c->calls < 10000000);
    }
    for (uint32_t id = 0; id < cap; id++) {
        assert_true(oc.seen.hits[id] <= 1);
        if (is_stable(c, id)) assert_int_equal(oc.seen.hits[id], 1);
    }
    assert_true(ht_check(t));
    free(oc.seen.hits);
    ht_free(t);
}

static void test_scan_one_positions_grow(void **state) {
    (void)state;
    churn c = { .initial = 1000, .insert_max = 20000, .per_call = 3, .del_per_call = 1, .stable_mod = 4 };
    run_position_scan(&c);
    assert_true(c.saw_grow);
}

static void test_scan_one_positions_shrink(void **state) {
    (void)state;
    churn c = { .initial = 20000, .del_per_call = 40, .stable_mod = 64 };
    run_position_scan(&c);
    assert_true(c.saw_shrink);
}

static void test_scan_one_positions_grow_then_shrink(void **state) {
    (void)state;
    churn c = { .initial = 3000, .insert_max = 9000, .per_call = 16, .del_after = 400, .del_per_call = 64,
                .stable_mod = 10 };
    run_position_scan(&c);
    assert_true(c.saw_grow);
    assert_true(c.saw_shrink);
}

/*
 * The case that makes the position filter necessary: a scan stopped in the
 * middle of what becomes one bucket after a shrink.  The entries kept are
 * the 8 just before and the 8 just after the stop position, so the merged
 * bucket holding the stop position also holds already visited entries.
 */
static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void count_below(void *arg, const ht_entry *e) {
    uint64_t *c = arg;
    if (ht_position(e->hash) < c[0]) c[1]++;
}

static void test_scan_one_positions_after_big_shrink(void **state) {
    (void)state;
    enum { N = 4000, KEEP = 8 };
    ht *t = ht_new();
    uint64_t *pos = calloc(N, sizeof *pos), *sorted = calloc(N, sizeof *sorted);
    assert_non_null(pos);
    assert_non_null(sorted);
    for (uint32_t i = 0; i < N; i++) {
        put_id(t, i);
        pos[i] = ht_position(find_id(t, i)->hash);
        sorted[i] = pos[i];
    }
    settle(t);
    qsort(sorted, N, sizeof *sorted, cmp_u64);

    one_ctx oc = { .seen = seen_new(N) };
    uint64_t next_pos = 0;
    while (next_pos <= sorted[N / 2]) { /* first half, up to a bucket boundary */
        oc.from = next_pos;
        uint64_t cursor = ht_scan_one(t, ht_position(next_pos), one_record, &oc);
        assert_true(cursor != 0);
        next_pos = ht_position(cursor);
    }
    size_t visited = 0;
    while (visited < N && sorted[visited] < next_pos) visited++;
    assert_int_equal(oc.seen.entries, visited);
    assert_true(visited >= KEEP && visited + KEEP <= N);
    uint64_t lo = sorted[visited - KEEP], hi = sorted[visited + KEEP - 1];
    for (uint32_t i = 0; i < N; i++)
        if (pos[i] < lo || pos[i] > hi) remove_id(t, i);
    settle(t);
    assert_int_equal(ht_count(t), 2 * KEEP);
    assert_true(larger_size(t) <= 64); /* shrunk from thousands of buckets */

    /* Without the filter the next call would repeat visited entries. */
    uint64_t below[2] = { next_pos, 0 };
    ht_scan_one(t, ht_position(next_pos), count_below, below);
    assert_true(below[1] > 0);

    for (;;) {
        oc.from = next_pos;
        uint64_t cursor = ht_scan_one(t, ht_position(next_pos), one_record, &oc);
        if (cursor == 0) break;
        next_pos = ht_position(cursor);
    }
    for (uint32_t i = 0; i < N; i++) {
        int kept = pos[i] >= lo && pos[i] <= hi, seen_before = pos[i] < sorted[visited];
        assert_int_equal(oc.seen.hits[i], kept || seen_before ? 1 : 0);
    }
    free(oc.seen.hits);
    free(pos);
    free(sorted);
    ht_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_entry_new_fields),
        cmocka_unit_test(test_entry_new_too_long),
        cmocka_unit_test(test_put_find),
        cmocka_unit_test(test_replace),
        cmocka_unit_test(test_replace_keeps_chain_position),
        cmocka_unit_test(test_remove),
        cmocka_unit_test(test_many_keys_grow_shrink),
        cmocka_unit_test(test_incremental_rehash),
        cmocka_unit_test(test_same_hash_collisions),
        cmocka_unit_test(test_binary_keys),
        cmocka_unit_test(test_zero_length_key_value),
        cmocka_unit_test(test_scan_static_exactly_once),
        cmocka_unit_test(test_scan_mid_rehash_static),
        cmocka_unit_test(test_scan_while_growing),
        cmocka_unit_test(test_scan_while_shrinking),
        cmocka_unit_test(test_scan_grow_then_shrink),
        cmocka_unit_test(test_scan_while_rehash_advances),
        cmocka_unit_test(test_entry_new_oom),
        cmocka_unit_test(test_free_mid_rehash),
        cmocka_unit_test(test_replace_during_rehash),
        cmocka_unit_test(test_remove_during_rehash),
        cmocka_unit_test(test_check_detects_corruption),
        cmocka_unit_test(test_growth_and_shrink_policy),
        cmocka_unit_test(test_position),
        cmocka_unit_test(test_scan_one_settled),
        cmocka_unit_test(test_scan_one_mid_grow),
        cmocka_unit_test(test_scan_one_mid_shrink),
        cmocka_unit_test(test_scan_one_positions_grow),
        cmocka_unit_test(test_scan_one_positions_shrink),
        cmocka_unit_test(test_scan_one_positions_grow_then_shrink),
        cmocka_unit_test(test_scan_one_positions_after_big_shrink),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
