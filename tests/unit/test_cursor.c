/* Unit tests for src/cursor.c: round trips, strict decoding, foreign cursors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cursor.h"
#include "err.h"

static skv_cursor sample(const char *key) {
    skv_cursor c = { CURSOR_KV_SCAN, 0, 3, 0x0123456789abcdefull, UINT64_MAX, skv_slice_make(key, strlen(key)) };
    c.query = cursor_fingerprint(CURSOR_KV_SCAN, &c.key, 1);
    return c;
}

static int decode(const skv_buf *text, const skv_cursor *want, skv_cursor *got, skv_buf *kb, const char **why) {
    return cursor_decode(skv_slice_make(text->data, text->len), want->kind, want->query, got, kb, why);
}

static void test_round_trip(void **state) {
    (void)state;
    const char *keys[] = { "", "a", "ab", "abc", "user\0key", "a longer key with spaces/and?query=chars" };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        skv_cursor c = sample(keys[i]);
        if (i == 4) c.key.len = 8; /* embedded NUL */
        skv_buf text, kb;
        skv_buf_init(&text);
        skv_buf_init(&kb);
        cursor_encode(&c, &text);
        for (size_t j = 0; j < text.len; j++) /* URL-safe, no padding */
            assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", text.data[j]));
        skv_cursor got;
        const char *why;
        assert_int_equal(decode(&text, &c, &got, &kb, &why), SKV_OK);
        assert_int_equal(got.kind, c.kind);
        assert_int_equal(got.shard, c.shard);
        assert_true(got.a == c.a && got.b == c.b && got.query == c.query);
        assert_int_equal(got.key.len, c.key.len);
        if (c.key.len) assert_memory_equal(got.key.ptr, c.key.ptr, c.key.len);
        skv_buf_free(&text);
        skv_buf_free(&kb);
    }
}

static void test_foreign_and_malformed(void **state) {
    (void)state;
    skv_cursor c = sample("k");
    skv_buf text, kb, bad;
    skv_buf_init(&text);
    skv_buf_init(&kb);
    skv_buf_init(&bad);
    cursor_encode(&c, &text);
    skv_cursor got;
    const char *why;
    /* another kind, another query */
    assert_int_equal(cursor_decode(skv_slice_make(text.data, text.len), CURSOR_INDEX, c.query, &got, &kb, &why),
                     SKV_EINVAL);
    assert_non_null(strstr(why, "another kind"));
    assert_int_equal(cursor_decode(skv_slice_make(text.data, text.len), c.kind, c.query + 1, &got, &kb, &why),
                     SKV_EINVAL);
    assert_non_null(strstr(why, "another query"));
    /* every single-character change is refused (checksum or alphabet) */
    for (size_t i = 0; i < text.len; i++) {
        skv_buf_reset(&bad);
        skv_buf_append(&bad, text.data, text.len);
        bad.data[i] = bad.data[i] == 'A' ? 'B' : 'A';
        assert_int_equal(decode(&bad, &c, &got, &kb, &why), SKV_EINVAL);
    }
    /* truncations, padding, junk */
    for (size_t n = 0; n < text.len; n++) {
        skv_buf_reset(&bad);
        skv_buf_append(&bad, text.data, n);
        assert_int_equal(decode(&bad, &c, &got, &kb, &why), SKV_EINVAL);
    }
    const char *junk[] = { "", "=", "abc=", "%%%%", "not a cursor", "AAAA" };
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
        assert_int_equal(cursor_decode(skv_slice_make(junk[i], strlen(junk[i])), c.kind, c.query, &got, &kb, &why),
                         SKV_EINVAL);
        assert_non_null(why);
    }
    skv_buf_free(&text);
    skv_buf_free(&kb);
    skv_buf_free(&bad);
}

static void test_fingerprint_separates_parts(void **state) {
    (void)state;
    skv_slice ab[2] = { SKV_SLICE_LIT("ab"), SKV_SLICE_LIT("c") };
    skv_slice a_bc[2] = { SKV_SLICE_LIT("a"), SKV_SLICE_LIT("bc") };
    assert_true(cursor_fingerprint(1, ab, 2) != cursor_fingerprint(1, a_bc, 2));
    assert_true(cursor_fingerprint(1, ab, 2) != cursor_fingerprint(2, ab, 2));
    assert_true(cursor_fingerprint(1, ab, 2) == cursor_fingerprint(1, ab, 2));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_foreign_and_malformed),
        cmocka_unit_test(test_fingerprint_separates_parts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
