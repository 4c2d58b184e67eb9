/*
 * Unit tests for index (the AVL ordered set of byte strings): byte order
 * with prefixes, insert/remove answers, scans from any key (inclusive and
 * exclusive, early stop), and a randomized run against a sorted-array
 * model with the invariant checker after every operation (balance,
 * heights, order, count).  Deterministic: a fixed-seed generator.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "index.h"

typedef struct collect {
    char keys[64][16];
    size_t n, stop_after;
} collect;

static int collect_key(void *arg, const void *key, size_t len) {
    collect *c = arg;
    assert_true(len < sizeof c->keys[0]);
    memcpy(c->keys[c->n], key, len);
    c->keys[c->n][len] = '\0';
    c->n++;
    return c->stop_after && c->n >= c->stop_after;
}

static void insert_str(index_tree *t, const char *s) { assert_int_equal(index_insert(t, s, strlen(s)), 1); }

static void test_order_and_prefixes(void **state) {
    (void)state;
    index_tree *t = index_new();
    const char *in[] = { "b", "ab", "a", "", "abc", "ba", "\xff", "aa" };
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) insert_str(t, in[i]);
    assert_int_equal(index_insert(t, "ab", 2), 0); /* already there */
    assert_int_equal(index_count(t), 8);
    assert_true(index_check(t));
    collect c = { .n = 0 };
    assert_int_equal(index_scan(t, "", 0, 0, collect_key, &c), 8);
    const char *want[] = { "", "a", "aa", "ab", "abc", "b", "ba", "\xff" };
    for (size_t i = 0; i < 8; i++) assert_string_equal(c.keys[i], want[i]);
    index_free(t);
}

static void test_scan_bounds(void **state) {
    (void)state;
    index_tree *t = index_new();
    const char *in[] = { "k1", "k3", "k5", "k7" };
    for (size_t i = 0; i < 4; i++) insert_str(t, in[i]);
    collect c = { .n = 0 };
    index_scan(t, "k3", 2, 0, collect_key, &c); /* inclusive */
    assert_int_equal(c.n, 3);
    assert_string_equal(c.keys[0], "k3");
    c.n = 0;
    index_scan(t, "k3", 2, 1, collect_key, &c); /* exclusive */
    assert_int_equal(c.n, 2);
    assert_string_equal(c.keys[0], "k5");
    c.n = 0;
    index_scan(t, "k4", 2, 1, collect_key, &c); /* between keys */
    assert_int_equal(c.n, 2);
    assert_string_equal(c.keys[0], "k5");
    c.n = 0;
    index_scan(t, "k8", 2, 0, collect_key, &c); /* past the end */
    assert_int_equal(c.n, 0);
    c.n = 0;
    c.stop_after = 2;
    assert_int_equal(index_scan(t, "", 0, 0, collect_key, &c), 2); /* the visitor stops */
    assert_string_equal(c.keys[1], "k3");
    assert_int_equal(index_remove(t, "k3", 2), 1);
    assert_int_equal(index_remove(t, "k3", 2), 0);
    assert_false(index_contains(t, "k3", 2));
    assert_true(index_contains(t, "k5", 2));
    assert_true(index_check(t));
    index_free(t);
}

/* ---- randomized, against a sorted array ---------------------------------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) { /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

#define UNIVERSE 600

static void key_of(unsigned v, char *out) { snprintf(out, 8, "%u", v); } /* "10" sorts before "9": byte order */

static int cmp_keys(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

typedef struct model_walk {
    const char **sorted;
    size_t n, pos;
    int ok;
} model_walk;

static int match_model(void *arg, const void *key, size_t len) {
    model_walk *m = arg;
    if (m->pos >= m->n || strlen(m->sorted[m->pos]) != len || memcmp(m->sorted[m->pos], key, len) != 0) m->ok = 0;
    m->pos++;
    return 0;
}

static void test_random_against_model(void **state) {
    (void)state;
    static char names[UNIVERSE][8];
    int present[UNIVERSE] = { 0 };
    for (unsigned i = 0; i < UNIVERSE; i++) key_of(i, names[i]);
    index_tree *t = index_new();
    size_t count = 0;
    const char *sorted[UNIVERSE];
    for (int step = 0; step < 20000; step++) {
        unsigned v = (unsigned)(rnd() % UNIVERSE);
        const char *k = names[v];
        if (rnd() % 3) {
            assert_int_equal(index_insert(t, k, strlen(k)), !present[v]);
            count += !present[v];
            present[v] = 1;
        } else {
            assert_int_equal(index_remove(t, k, strlen(k)), present[v]);
            count -= present[v];
            present[v] = 0;
        }
        assert_int_equal(index_count(t), count);
        if (step % 97 != 0) continue;
        assert_true(index_check(t));
        /* A scan from a random key equals the model's tail. */
        size_t n = 0;
        for (unsigned i = 0; i < UNIVERSE; i++)
            if (present[i]) sorted[n++] = names[i];
        qsort(sorted, n, sizeof *sorted, cmp_keys);
        const char *from = names[rnd() % UNIVERSE];
        int after = (int)(rnd() & 1);
        size_t start = 0;
        while (start < n && (strcmp(sorted[start], from) < 0 || (after && strcmp(sorted[start], from) == 0))) start++;
        model_walk m = { sorted + start, n - start, 0, 1 };
        assert_int_equal(index_scan(t, from, strlen(from), after, match_model, &m), n - start);
        assert_true(m.ok);
    }
    /* Removing everything leaves an empty, valid tree. */
    for (unsigned i = 0; i < UNIVERSE; i++)
        if (present[i]) assert_int_equal(index_remove(t, names[i], strlen(names[i])), 1);
    assert_int_equal(index_count(t), 0);
    assert_true(index_check(t));
    index_free(t);
}

static void test_sequential_stays_balanced(void **state) {
    (void)state;
    index_tree *t = index_new();
    for (uint32_t i = 0; i < 100000; i++) {
        unsigned char k[4] = { (unsigned char)(i >> 24), (unsigned char)(i >> 16), (unsigned char)(i >> 8),
                               (unsigned char)i };
        index_insert(t, k, sizeof k);
    }
    assert_true(index_check(t)); /* heights checked: ascending inserts must not degrade into a list */
    assert_int_equal(index_count(t), 100000);
    index_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_prefixes),
        cmocka_unit_test(test_scan_bounds),
        cmocka_unit_test(test_random_against_model),
        cmocka_unit_test(test_sequential_stays_balanced),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
