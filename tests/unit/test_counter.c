/*
 * Unit tests of counter's pure parts: the default budgets, the stored text
 * of sub-counters and definitions, 128-bit formatting and the slow-path
 * planner (counter_plan), including a seeded random walk that checks the
 * budget invariant and exact refusals at the int64 limits, and the
 * Idempotency-Key chain (counter_idem_index / counter_idem_chain).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "counter.h"
#include "err.h"

static skv_slice S(const char *s) { return skv_slice_cstr(s); }

static void test_default_budgets_cover_int64_exactly(void **state) {
    (void)state;
    const uint32_t ks[] = { 1, 2, 3, 7, 8, 10, 16, 255, 256, 1000 };
    for (size_t t = 0; t < sizeof ks / sizeof ks[0]; t++) {
        uint32_t k = ks[t];
        __int128 sum_lo = 0, sum_hi = 0;
        int64_t min_hi = INT64_MAX, max_hi = 0;
        for (uint32_t i = 0; i < k; i++) {
            int64_t lo, hi;
            counter_default_budget(k, i, &lo, &hi);
            assert_true(lo < 0 && hi > 0);
            sum_lo += lo;
            sum_hi += hi;
            if (hi < min_hi) min_hi = hi;
            if (hi > max_hi) max_hi = hi;
        }
        assert_true(sum_hi == INT64_MAX);
        assert_true(sum_lo == INT64_MIN);
        assert_true(max_hi - min_hi <= 1);
    }
    int64_t lo, hi;
    counter_default_budget(1, 0, &lo, &hi);
    assert_true(lo == INT64_MIN && hi == INT64_MAX);
}

static void test_sub_text_round_trip(void **state) {
    (void)state;
    const counter_sub cases[] = {
        { 0, 0, INT64_MIN, INT64_MAX },
        { -1, 0x0123456789abcdefull, -5, 7 },
        { INT64_MAX, UINT64_MAX, 0, INT64_MAX },
        { INT64_MIN, 1, INT64_MIN, 0 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        skv_buf b;
        skv_buf_init(&b);
        counter_sub_format(&cases[i], &b);
        counter_sub got;
        assert_int_equal(counter_sub_parse(skv_slice_make(b.data, b.len), &got), SKV_OK);
        assert_true(got.value == cases[i].value && got.gen == cases[i].gen && got.lo == cases[i].lo &&
                    got.hi == cases[i].hi);
        skv_buf_free(&b);
    }
    counter_sub s;
    assert_int_equal(counter_sub_parse(S("5 00000000000000ff -10 10"), &s), SKV_OK);
    assert_true(s.value == 5 && s.gen == 0xff && s.lo == -10 && s.hi == 10);
    const char *bad[] = {
        "",
        "5",
        "5 00000000000000ff -10",
        "5 00000000000000ff -10 10 1",
        "5  00000000000000ff -10 10",
        "5 00000000000000ff -10 10 ",
        "05 00000000000000ff -10 10",
        "+5 00000000000000ff -10 10",
        "5 00000000000000FF -10 10",
        "5 ff -10 10",
        "5 00000000000000ff -10 9223372036854775808",
        "x 00000000000000ff -10 10",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(counter_sub_parse(S(bad[i]), &s), SKV_EINVAL);
}

static void test_def_text_round_trip(void **state) {
    (void)state;
    counter_def d = { 3, 6, 0xfeedfacecafebeefull, 0x0011223344556677ull }, got;
    skv_buf b;
    skv_buf_init(&b);
    counter_def_format(&d, &b);
    assert_string_equal(b.data, "k=3 base=6 gen=feedfacecafebeef id=0011223344556677");
    assert_int_equal(counter_def_parse(skv_slice_make(b.data, b.len), 8, &got), SKV_OK);
    assert_true(got.k == 3 && got.base == 6 && got.gen == d.gen && got.id == d.id);
    /* K and base must fit the node's shard count */
    assert_int_equal(counter_def_parse(skv_slice_make(b.data, b.len), 6, &got), SKV_EINVAL);
    assert_int_equal(counter_def_parse(skv_slice_make(b.data, b.len), 2, &got), SKV_EINVAL);
    skv_buf_free(&b);
    const char *bad[] = {
        "k=0 base=0 gen=0000000000000000 id=0000000000000000",
        "k=1 base=0 gen=0000000000000000",
        "base=0 k=1 gen=0000000000000000 id=0000000000000000",
        "k=1 base=0 gen=000000000000000 id=0000000000000000",
        "k= base=0 gen=0000000000000000 id=0000000000000000",
        "k=1 base=-1 gen=0000000000000000 id=0000000000000000",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(counter_def_parse(S(bad[i]), 8, &got), SKV_EINVAL);
    counter_def e = { 2, 7, 1, 2 };
    assert_int_equal(counter_sub_shard(&e, 0, 8), 7);
    assert_int_equal(counter_sub_shard(&e, 1, 8), 0);
}

static void test_i128_format(void **state) {
    (void)state;
    char out[48];
    assert_int_equal(counter_i128_format(0, out), 1);
    assert_string_equal(out, "0");
    counter_i128_format(-1, out);
    assert_string_equal(out, "-1");
    counter_i128_format((__int128)INT64_MAX + 1, out);
    assert_string_equal(out, "9223372036854775808");
    counter_i128_format((__int128)INT64_MIN - 1, out);
    assert_string_equal(out, "-9223372036854775809");
    __int128 min128 = -(__int128)(((unsigned __int128)1 << 127) - 1) - 1;
    assert_int_equal(counter_i128_format(min128, out), 40);
    assert_string_equal(out, "-170141183460469231731687303715884105728");
}

/* Fresh sub-counters of a K-way counter (default budgets). */
static void fresh(counter_sub *subs, uint32_t k) {
    for (uint32_t i = 0; i < k; i++) {
        subs[i].value = 0;
        subs[i].gen = 1;
        counter_default_budget(k, i, &subs[i].lo, &subs[i].hi);
    }
}

/* The plan's budgets bracket the old and new values and stay within int64 in sum. */
static void check_plan(const counter_sub *subs, uint32_t k, int64_t delta, uint32_t index, const int64_t *lo,
                       const int64_t *hi) {
    __int128 sum_lo = 0, sum_hi = 0;
    for (uint32_t j = 0; j < k; j++) {
        int64_t v = subs[j].value, nv = j == index ? v + delta : v;
        assert_true(lo[j] <= v && lo[j] <= nv && hi[j] >= v && hi[j] >= nv);
        sum_lo += lo[j];
        sum_hi += hi[j];
    }
    assert_true(sum_hi == INT64_MAX);
    assert_true(sum_lo == INT64_MIN);
}

static void apply_plan(counter_sub *subs, uint32_t k, int64_t delta, uint32_t index, const int64_t *lo,
                       const int64_t *hi) {
    for (uint32_t j = 0; j < k; j++) {
        subs[j].lo = lo[j];
        subs[j].hi = hi[j];
    }
    subs[index].value += delta;
}

static void test_plan_limits(void **state) {
    (void)state;
    counter_sub subs[8];
    int64_t lo[8], hi[8];
    uint32_t index;
    fresh(subs, 8);
    assert_int_equal(counter_plan(subs, 8, INT64_MAX, 0, 3, &index, lo, hi), SKV_OK);
    assert_int_equal(index, 3);
    check_plan(subs, 8, INT64_MAX, index, lo, hi);
    assert_true(hi[3] == INT64_MAX);
    apply_plan(subs, 8, INT64_MAX, index, lo, hi);
    /* at INT64_MAX: +1 refused, -1 taken (by any sub-counter) */
    assert_int_equal(counter_plan(subs, 8, 1, 0, 5, &index, lo, hi), SKV_ERANGE);
    assert_int_equal(counter_plan(subs, 8, INT64_MAX, 0, 0, &index, lo, hi), SKV_ERANGE);
    assert_int_equal(counter_plan(subs, 8, -1, 0, 5, &index, lo, hi), SKV_OK);
    assert_int_equal(index, 5);
    check_plan(subs, 8, -1, index, lo, hi);
    apply_plan(subs, 8, -1, index, lo, hi);
    assert_int_equal(counter_plan(subs, 8, 1, 1, 5, &index, lo, hi), SKV_OK);
    check_plan(subs, 8, 1, index, lo, hi);

    fresh(subs, 8);
    assert_int_equal(counter_plan(subs, 8, INT64_MIN, 0, 0, &index, lo, hi), SKV_OK);
    check_plan(subs, 8, INT64_MIN, index, lo, hi);
    apply_plan(subs, 8, INT64_MIN, index, lo, hi);
    assert_int_equal(counter_plan(subs, 8, -1, 0, 0, &index, lo, hi), SKV_ERANGE);
    assert_int_equal(counter_plan(subs, 8, 1, 0, 0, &index, lo, hi), SKV_OK);
}

static void test_plan_sub_counter_overflow(void **state) {
    (void)state;
    /* total MAX - 10 fits a +5, but sub-counter 0 cannot take it */
    counter_sub subs[2] = { { INT64_MAX, 1, 0, INT64_MAX }, { -10, 1, INT64_MIN, 0 } };
    int64_t lo[2], hi[2];
    uint32_t index;
    assert_int_equal(counter_plan(subs, 2, 5, 0, 0, &index, lo, hi), SKV_OK);
    assert_int_equal(index, 1);
    check_plan(subs, 2, 5, index, lo, hi);
    /* fixed (an Idempotency-Key's choice): refused */
    assert_int_equal(counter_plan(subs, 2, 5, 1, 0, &index, lo, hi), SKV_ERANGE);
    /* a total already outside int64 (a lost rebalance): only moves toward the range */
    counter_sub broken[2] = { { INT64_MAX, 1, 0, INT64_MAX }, { 5, 1, 0, 5 } };
    assert_int_equal(counter_plan(broken, 2, 1, 0, 1, &index, lo, hi), SKV_ERANGE);
    assert_int_equal(counter_plan(broken, 2, -3, 0, 1, &index, lo, hi), SKV_OK);
    assert_int_equal(index, 1);
    assert_true(lo[1] <= 2 && hi[1] >= 5 && lo[0] <= INT64_MAX && hi[0] == INT64_MAX);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* A random walk of slow-path changes: the planner refuses exactly when the
 * total would leave int64, and the budgets keep summing to the int64 range. */
static void test_plan_random_walk(void **state) {
    (void)state;
    for (uint32_t k = 1; k <= 9; k += 2) {
        counter_sub subs[9];
        int64_t lo[9], hi[9];
        fresh(subs, k);
        __int128 model = 0;
        for (int step = 0; step < 4000; step++) {
            int64_t delta;
            switch (rnd() % 4) {
            case 0: delta = (int64_t)(rnd() % 7) - 3; break;
            case 1: delta = (int64_t)rnd(); break;
            case 2: delta = (int64_t)(rnd() >> (rnd() % 64)); break;
            default: delta = (rnd() & 1) ? INT64_MAX - (int64_t)(rnd() % 3) : INT64_MIN + (int64_t)(rnd() % 3); break;
            }
            uint32_t pref = (uint32_t)(rnd() % k), index;
            int fixed = (int)(rnd() % 2);
            int rc = counter_plan(subs, k, delta, fixed, pref, &index, lo, hi);
            __int128 after = model + delta;
            if (after > INT64_MAX || after < INT64_MIN) {
                assert_int_equal(rc, SKV_ERANGE);
                continue;
            }
            if (rc != SKV_OK) { /* only when the chosen sub-counter(s) would overflow */
                int64_t nv;
                if (fixed) assert_true(__builtin_add_overflow(subs[pref].value, delta, &nv));
                else
                    for (uint32_t j = 0; j < k; j++) assert_true(__builtin_add_overflow(subs[j].value, delta, &nv));
                continue;
            }
            if (fixed) assert_int_equal(index, pref);
            check_plan(subs, k, delta, index, lo, hi);
            apply_plan(subs, k, delta, index, lo, hi);
            model = after;
            __int128 total = 0;
            for (uint32_t j = 0; j < k; j++) {
                assert_true(subs[j].lo <= subs[j].value && subs[j].value <= subs[j].hi);
                total += subs[j].value;
            }
            assert_true(total == model);
        }
    }
}

/* The Idempotency-Key chain: strictly decreasing from hash % n down to 0,
 * and the index for every K is its first element below K. */
static void test_idem_chain_shape(void **state) {
    (void)state;
    const uint32_t ns[] = { 1, 2, 3, 7, 8, 16, 100, 1000 };
    static uint32_t chain[1000];
    for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++) {
        uint32_t n = ns[t];
        for (int i = 0; i < 300; i++) {
            uint64_t h = rnd();
            uint32_t len = counter_idem_chain(h, n, chain);
            assert_true(len >= 1 && len <= n);
            assert_int_equal(chain[0], h % n);
            assert_int_equal(chain[len - 1], 0);
            for (uint32_t j = 1; j < len; j++) assert_true(chain[j] < chain[j - 1]);
            for (uint32_t k = 1; k <= n; k += n > 64 ? 37 : 1) {
                uint32_t want = 0;
                for (uint32_t j = 0; j < len; j++) {
                    if (chain[j] < k) {
                        want = chain[j];
                        break;
                    }
                }
                assert_int_equal(counter_idem_index(h, n, k), want);
            }
            assert_int_equal(counter_idem_index(h, n, n), h % n); /* K = N: the plain modulo */
        }
    }
}

/* The index for K is uniform over [0, K), and the chain is short (about
 * ln N + 1 elements: what a retry looks up). */
static void test_idem_index_uniform(void **state) {
    (void)state;
    enum { N = 16, K = 5, DRAWS = 50000 };
    static uint32_t chain[1000];
    unsigned count[K] = { 0 };
    uint64_t chain_total = 0;
    for (int i = 0; i < DRAWS; i++) {
        uint64_t h = rnd();
        count[counter_idem_index(h, N, K)]++;
        chain_total += counter_idem_chain(h, 1000, chain);
    }
    for (int i = 0; i < K; i++) assert_true(count[i] > DRAWS / K * 95 / 100 && count[i] < DRAWS / K * 105 / 100);
    double mean = (double)chain_total / DRAWS; /* H(1000) = 7.49 */
    assert_true(mean > 6.5 && mean < 8.5);
}

/* Known answers: the chain places remembered answers, which outlive a
 * restart; it must not change by accident. */
static void test_idem_chain_known_answers(void **state) {
    (void)state;
    static uint32_t chain[1000];
    const uint32_t want1[] = { 895, 131, 61, 43, 29, 8, 4, 3, 1, 0 };
    const uint32_t want2[] = { 720, 612, 259, 148, 144, 59, 5, 1, 0 };
    assert_int_equal(counter_idem_chain(0x0123456789abcdefull, 1000, chain), 10);
    assert_memory_equal(chain, want1, sizeof want1);
    assert_int_equal(counter_idem_chain(0xfedcba9876543210ull, 1000, chain), 9);
    assert_memory_equal(chain, want2, sizeof want2);
    assert_int_equal(counter_idem_index(0x0123456789abcdefull, 1000, 50), 43);
    assert_int_equal(counter_idem_index(0xfedcba9876543210ull, 1000, 1), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_budgets_cover_int64_exactly),
        cmocka_unit_test(test_sub_text_round_trip),
        cmocka_unit_test(test_def_text_round_trip),
        cmocka_unit_test(test_i128_format),
        cmocka_unit_test(test_plan_limits),
        cmocka_unit_test(test_plan_sub_counter_overflow),
        cmocka_unit_test(test_plan_random_walk),
        cmocka_unit_test(test_idem_chain_shape),
        cmocka_unit_test(test_idem_index_uniform),
        cmocka_unit_test(test_idem_chain_known_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
