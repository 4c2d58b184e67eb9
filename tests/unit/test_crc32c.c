/*
 * Unit tests for crc32c: known-answer vectors through both the dispatched
 * path (SSE4.2 on any x86-64 built in the last 15 years) and the slicing-by-8
 * fallback, incremental updates against one-shot for every split point,
 * agreement of the two paths on pseudo-random data at every alignment, and
 * concurrent first use from several threads (the lazy init must be safe).
 *
 * Vectors: "123456789" is the catalogue check value; the 32-byte zero, 0xFF,
 * ascending and descending buffers are the iSCSI vectors of RFC 3720
 * B.4; the fox sentence and the 1000-byte ramp were computed with a bitwise
 * Python implementation (reflected poly 0x82F63B78, init/xorout ~0).
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

#include "crc32c.h"

/* xorshift64*: deterministic pseudo-random bytes. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng_next(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}
static void fill_random(unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(rng_next() >> 56);
}

/* ---- concurrent first use (must run first: before anything initialised the tables) -------- */

#define THREADS 8
static pthread_barrier_t start_barrier;

static void *first_use_thread(void *arg) {
    (void)arg;
    pthread_barrier_wait(&start_barrier);
    uint32_t ok = 1;
    for (int i = 0; i < 200; i++) {
        ok &= crc32c(0, "123456789", 9) == 0xE3069283u;
        ok &= crc32c_sw(0, "123456789", 9) == 0xE3069283u;
    }
    return ok ? (void *)1 : NULL;
}

static void test_concurrent_first_use(void **state) {
    (void)state;
    pthread_t t[THREADS];
    assert_int_equal(pthread_barrier_init(&start_barrier, NULL, THREADS), 0);
    for (int i = 0; i < THREADS; i++) assert_int_equal(pthread_create(&t[i], NULL, first_use_thread, NULL), 0);
    for (int i = 0; i < THREADS; i++) {
        void *ret = NULL;
        assert_int_equal(pthread_join(t[i], &ret), 0);
        assert_non_null(ret);
    }
    pthread_barrier_destroy(&start_barrier);
}

/* ---- known answers ---------------------------------------------------------------------- */

typedef uint32_t (*crc_fn)(uint32_t, const void *, size_t);

static void check_vectors(crc_fn fn) {
    unsigned char buf[1000];
    assert_int_equal(fn(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(fn(0, "", 0), 0u);
    assert_int_equal(fn(0, NULL, 0), 0u);
    assert_int_equal(fn(0x12345678u, NULL, 0), 0x12345678u); /* empty update keeps the value */

    memset(buf, 0, 32);
    assert_int_equal(fn(0, buf, 32), 0x8A9136AAu);
    memset(buf, 0xFF, 32);
    assert_int_equal(fn(0, buf, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++) buf[i] = (unsigned char)i;
    assert_int_equal(fn(0, buf, 32), 0x46DD794Eu);
    for (int i = 0; i < 32; i++) buf[i] = (unsigned char)(31 - i);
    assert_int_equal(fn(0, buf, 32), 0x113FDB5Cu);

    const char *fox = "The quick brown fox jumps over the lazy dog";
    assert_int_equal(fn(0, fox, strlen(fox)), 0x22620404u);
    for (int i = 0; i < 1000; i++) buf[i] = (unsigned char)(i & 0xff);
    assert_int_equal(fn(0, buf, 1000), 0x1A318E30u);
}

static void test_vectors_dispatched(void **state) {
    (void)state;
    check_vectors(crc32c);
}

static void test_vectors_software(void **state) {
    (void)state;
    check_vectors(crc32c_sw);
}

/* Same vectors starting at every misalignment of the input pointer. */
static void test_vectors_unaligned(void **state) {
    (void)state;
    unsigned char store[16 + 9];
    for (size_t off = 0; off < 16; off++) {
        memcpy(store + off, "123456789", 9);
        assert_int_equal(crc32c(0, store + off, 9), 0xE3069283u);
        assert_int_equal(crc32c_sw(0, store + off, 9), 0xE3069283u);
    }
}

/* ---- incremental == one-shot ------------------------------------------------------------- */

static void check_splits(crc_fn fn, const unsigned char *buf, size_t n) {
    uint32_t whole = fn(0, buf, n);
    for (size_t i = 0; i <= n; i++) assert_int_equal(fn(fn(0, buf, i), buf + i, n - i), whole);
    /* Three pieces, a spread of second split points. */
    for (size_t i = 0; i <= n; i += 7)
        for (size_t j = i; j <= n; j += 13) {
            uint32_t c = fn(0, buf, i);
            c = fn(c, buf + i, j - i);
            c = fn(c, buf + j, n - j);
            assert_int_equal(c, whole);
        }
}

static void test_incremental_all_splits(void **state) {
    (void)state;
    unsigned char buf[300];
    fill_random(buf, sizeof buf);
    check_splits(crc32c, buf, sizeof buf);
    check_splits(crc32c_sw, buf, sizeof buf);
    assert_int_equal(crc32c(crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
    uint32_t c = 0;
    for (int i = 0; i < 9; i++) c = crc32c_sw(c, &"123456789"[i], 1);
    assert_int_equal(c, 0xE3069283u);
}

/* ---- both paths agree --------------------------------------------------------------------- */

static void test_paths_agree_random(void **state) {
    (void)state;
    size_t big = 1u << 20;
    unsigned char *buf = malloc(big + 16);
    assert_non_null(buf);
    fill_random(buf, big + 16);
    for (size_t off = 0; off < 16; off++)
        for (size_t len = 0; len <= 300; len++) {
            uint32_t seed = (uint32_t)rng_next();
            assert_int_equal(crc32c(seed, buf + off, len), crc32c_sw(seed, buf + off, len));
        }
    for (size_t off = 0; off < 8; off++) assert_int_equal(crc32c(0, buf + off, big), crc32c_sw(0, buf + off, big));
    /* A single flipped bit anywhere changes the value (CRC detects all 1-bit errors). */
    uint32_t base = crc32c(0, buf, 4096);
    for (size_t bit = 0; bit < 4096 * 8; bit += 97) {
        buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        assert_int_not_equal(crc32c(0, buf, 4096), base);
        buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
    }
    free(buf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_first_use),
        cmocka_unit_test(test_vectors_dispatched),
        cmocka_unit_test(test_vectors_software),
        cmocka_unit_test(test_vectors_unaligned),
        cmocka_unit_test(test_incremental_all_splits),
        cmocka_unit_test(test_paths_agree_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
