/*
 * Unit tests for buf: slices, the strict decimal parsers (the edges that
 * decide whether "store:<id>", versions and ?limit= are accepted), buffer
 * growth through append/printf, JSON string escaping with its UTF-8
 * validation, consume and the decimal formatter.
 *
 * Parser vectors are written out by hand; the 2^64 and 2^63 boundaries are
 * the values of Python's 2**64 - 1, -(2**63) and 2**63.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "err.h"

/* ---- slices --------------------------------------------------------------- */

static void test_slice_basics(void **state) {
    (void)state;
    skv_slice a = skv_slice_cstr("hello");
    assert_int_equal(a.len, 5);
    assert_true(skv_slice_eq(a, SKV_SLICE_LIT("hello")));
    assert_false(skv_slice_eq(a, SKV_SLICE_LIT("hell")));
    assert_false(skv_slice_eq(a, SKV_SLICE_LIT("hellO")));
    assert_true(skv_slice_eq(skv_slice_make(NULL, 0), SKV_SLICE_LIT("")));
    assert_true(skv_slice_eq_cstr(a, "hello"));
    assert_false(skv_slice_eq_cstr(a, "hello!"));
    assert_true(skv_slice_ieq_cstr(SKV_SLICE_LIT("Content-LENGTH"), "content-length"));
    assert_false(skv_slice_ieq_cstr(SKV_SLICE_LIT("Content-Lengtx"), "content-length"));
    assert_false(skv_slice_ieq_cstr(SKV_SLICE_LIT("abc"), "ab"));
    /* Only ASCII letters fold: '@' (0x40) and '`' (0x60) differ by 32 too. */
    assert_false(skv_slice_ieq_cstr(SKV_SLICE_LIT("@"), "`"));
    /* Embedded NUL: slices compare bytes, not C strings. */
    assert_false(skv_slice_eq(skv_slice_make("a\0b", 3), skv_slice_make("a\0c", 3)));
    assert_true(skv_slice_eq(skv_slice_make("a\0b", 3), skv_slice_make("a\0b", 3)));
}

/* ---- skv_slice_to_u64 ------------------------------------------------------- */

static int u64_of(const char *s, uint64_t *out) { return skv_slice_to_u64(skv_slice_cstr(s), out); }
static int i64_of(const char *s, int64_t *out) { return skv_slice_to_i64(skv_slice_cstr(s), out); }

static void test_u64_valid(void **state) {
    (void)state;
    static const struct { const char *s; uint64_t v; } ok[] = {
        { "0", 0 },
        { "1", 1 },
        { "9", 9 },
        { "10", 10 },
        { "42", 42 },
        { "4294967296", 4294967296ull },
        { "9223372036854775807", 9223372036854775807ull },
        { "9223372036854775808", 9223372036854775808ull },
        { "18446744073709551614", 18446744073709551614ull },
        { "18446744073709551615", UINT64_MAX },
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        uint64_t v = 12345;
        assert_int_equal(u64_of(ok[i].s, &v), SKV_OK);
        assert_true(v == ok[i].v);
    }
}

static void test_u64_invalid(void **state) {
    (void)state;
    static const char *bad[] = { "", "00", "01", "007", "-0", "-1", "+1", " 1", "1 ", "1a", "a1", "0x10",
                                 "1.0", "1e3", "١", "\t1" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = 777;
        assert_int_equal(u64_of(bad[i], &v), SKV_EINVAL);
        assert_true(v == 777); /* untouched on error */
    }
    /* A NUL inside the slice is not a digit. */
    uint64_t v = 777;
    assert_int_equal(skv_slice_to_u64(skv_slice_make("1\0", 2), &v), SKV_EINVAL);
    assert_int_equal(skv_slice_to_u64(skv_slice_make(NULL, 0), &v), SKV_EINVAL);
    assert_true(v == 777);
}

static void test_u64_overflow(void **state) {
    (void)state;
    uint64_t v = 777;
    assert_int_equal(u64_of("18446744073709551616", &v), SKV_ERANGE);
    assert_int_equal(u64_of("18446744073709551620", &v), SKV_ERANGE);
    assert_int_equal(u64_of("19000000000000000000", &v), SKV_ERANGE);
    assert_int_equal(u64_of("99999999999999999999", &v), SKV_ERANGE);
    assert_true(v == 777);
    /* 21 digits: rejected (the contract allows EINVAL or ERANGE here). */
    int rc = u64_of("100000000000000000000", &v);
    assert_true(rc == SKV_EINVAL || rc == SKV_ERANGE);
    assert_true(v == 777);
}

/* ---- skv_slice_to_i64 ------------------------------------------------------- */

static void test_i64_valid(void **state) {
    (void)state;
    static const struct { const char *s; int64_t v; } ok[] = {
        { "0", 0 },
        { "1", 1 },
        { "-1", -1 },
        { "-10", -10 },
        { "123456789", 123456789 },
        { "-123456789", -123456789 },
        { "9223372036854775807", INT64_MAX },
        { "-9223372036854775807", -INT64_MAX },
        { "-9223372036854775808", INT64_MIN },
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t v = 12345;
        assert_int_equal(i64_of(ok[i].s, &v), SKV_OK);
        assert_true(v == ok[i].v);
    }
}

static void test_i64_invalid(void **state) {
    (void)state;
    static const char *bad[] = { "", "-", "--1", "-+1", "+1", "+0", "-0", "-00", "-01", "00", "01", " 1", "- 1",
                                 "1-", "-a", "1 " };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t v = 777;
        assert_int_equal(i64_of(bad[i], &v), SKV_EINVAL);
        assert_true(v == 777);
    }
}

static void test_i64_range(void **state) {
    (void)state;
    int64_t v = 777;
    assert_int_equal(i64_of("9223372036854775808", &v), SKV_ERANGE);   /* INT64_MAX + 1 */
    assert_int_equal(i64_of("-9223372036854775809", &v), SKV_ERANGE);  /* INT64_MIN - 1 */
    assert_int_equal(i64_of("18446744073709551615", &v), SKV_ERANGE);
    assert_int_equal(i64_of("-18446744073709551615", &v), SKV_ERANGE);
    assert_int_equal(i64_of("18446744073709551616", &v), SKV_ERANGE);
    assert_int_equal(i64_of("-18446744073709551616", &v), SKV_ERANGE);
    assert_true(v == 777);
}

static void assert_json(const char *s, size_t len, const char *expect);

/* ---- skv_buf ------------------------------------------------------------------ */

static void assert_buf_sane(const skv_buf *b) {
    if (b->cap == 0) {
        assert_int_equal(b->len, 0);
        return;
    }
    assert_non_null(b->data);
    assert_true(b->len < b->cap);
    assert_int_equal(b->data[b->len], '\0');
}

static void test_buf_init_reset_free(void **state) {
    (void)state;
    skv_buf b;
    skv_buf_init(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    skv_buf_reset(&b); /* no-op on an empty buffer */
    assert_buf_sane(&b);
    skv_buf_append(&b, "", 0);
    assert_buf_sane(&b);
    assert_true(b.cap > 0);
    assert_string_equal(b.data, "");
    skv_buf_append_cstr(&b, "abc");
    assert_string_equal(b.data, "abc");
    skv_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    skv_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.cap, 0);
    skv_buf_free(&b); /* twice is harmless */
}

static void test_buf_append_growth(void **state) {
    (void)state;
    skv_buf b;
    skv_buf_init(&b);
    char expect[5000];
    size_t n = 0;
    for (int i = 0; i < 1000; i++) {
        char c = (char)('a' + i % 26);
        skv_buf_append(&b, &c, 1);
        expect[n++] = c;
        assert_buf_sane(&b);
        assert_int_equal(b.len, n);
    }
    assert_memory_equal(b.data, expect, n);
    /* A big append at once. */
    char big[3000];
    memset(big, 'Z', sizeof big);
    skv_buf_append(&b, big, sizeof big);
    memcpy(expect + n, big, sizeof big);
    n += sizeof big;
    assert_buf_sane(&b);
    assert_int_equal(b.len, n);
    assert_memory_equal(b.data, expect, n);
    /* Binary bytes including NUL survive. */
    skv_buf_reset(&b);
    skv_buf_append(&b, "a\0b", 3);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.data, "a\0b", 3);
    skv_buf_free(&b);
}

static void test_buf_reserve(void **state) {
    (void)state;
    skv_buf b;
    skv_buf_init(&b);
    skv_buf_reserve(&b, 1000);
    assert_true(b.cap >= 1001);
    char *before = b.data;
    size_t cap = b.cap;
    for (int i = 0; i < 1000; i++) skv_buf_append(&b, "x", 1);
    assert_ptr_equal(b.data, before); /* no reallocation after reserving */
    assert_int_equal(b.cap, cap);
    assert_buf_sane(&b);
    skv_buf_free(&b);
}

/* Regression: growing a fresh buffer must write the terminator (header promise). */
static void test_buf_reserve_keeps_terminator(void **state) {
    (void)state;
    skv_buf b;
    skv_buf_init(&b);
    skv_buf_reserve(&b, 10);
    assert_true(b.cap > 0);
    assert_buf_sane(&b);
    assert_string_equal(b.data, "");
    skv_buf_free(&b);
    assert_json("", 0, "");
}

static void test_buf_append_numbers(void **state) {
    (void)state;
    skv_buf b;
    skv_buf_init(&b);
    skv_buf_append_u64(&b, 0);
    skv_buf_append_cstr(&b, ",");
    skv_buf_append_u64(&b, UINT64_MAX);
    skv_buf_append_cstr(&b, ",");
    skv_buf_append_i64(&b, -1);
    skv_buf_append_cstr(&b, ",");
    skv_buf_append_i64(&b, INT64_MIN);
    skv_buf_append_cstr(&b, ",");
    skv_buf_append_i64(&b, INT64_MAX);
    skv_buf_append_cstr(&b, ",");
    skv_buf_append_i64(&b, 0);
    assert_string_equal(b.data, "0,18446744073709551615,-1,-9223372036854775808,9223372036854775807,0");
    skv_buf_free(&b);
}

static void test_buf_printf(void **state) {
    (void)state;
    skv_buf b;
    skv_buf_init(&b);
    skv_buf_printf(&b, "%s=%d;", "a", 1);
    skv_buf_printf(&b, "%05u|%-3s|%x", 42u, "z", 255);
    assert_string_equal(b.data, "a=1;00042|z  |ff");
    skv_buf_printf(&b, "%s", "");
    assert_int_equal(b.len, strlen("a=1;00042|z  |ff"));
    assert_buf_sane(&b);
    skv_buf_free(&b);
}

/* Output of exactly 255, 256 and 257 bytes and much more: the formatter's
 * stack buffer is 256 bytes, so these straddle the two code paths. */
static void test_buf_printf_past_256(void **state) {
    (void)state;
    static const size_t sizes[] = { 1, 254, 255, 256, 257, 300, 1000, 5000 };
    char *src = malloc(6000);
    assert_non_null(src);
    for (size_t i = 0; i < 6000; i++) src[i] = (char)('A' + i % 23);
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        for (size_t prefix = 0; prefix < 3; prefix++) {
            skv_buf b;
            skv_buf_init(&b);
            /* prefix 0: empty buffer; 1: small content; 2: content near a
             * power-of-two boundary so the reserve must grow. */
            size_t pre = prefix == 0 ? 0 : prefix == 1 ? 3 : 62;
            skv_buf_append(&b, src, pre);
            skv_buf_printf(&b, "%.*s", (int)sizes[k], src + 100);
            assert_buf_sane(&b);
            assert_int_equal(b.len, pre + sizes[k]);
            assert_memory_equal(b.data, src, pre);
            assert_memory_equal(b.data + pre, src + 100, sizes[k]);
            /* Appending after a large printf continues at the right place. */
            skv_buf_printf(&b, "<%d>", 7);
            assert_int_equal(b.len, pre + sizes[k] + 3);
            assert_memory_equal(b.data + pre + sizes[k], "<7>", 3);
            assert_buf_sane(&b);
            skv_buf_free(&b);
        }
    }
    free(src);
}

static void vprintf_helper(skv_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    skv_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

static void test_buf_vprintf_long_args(void **state) {
    (void)state;
    /* The long path formats twice; both passes must see the same args. */
    char a[400], c[400];
    memset(a, 'a', sizeof a - 1);
    a[sizeof a - 1] = '\0';
    memset(c, 'c', sizeof c - 1);
    c[sizeof c - 1] = '\0';
    skv_buf b;
    skv_buf_init(&b);
    vprintf_helper(&b, "%s-%d-%s", a, 12345, c);
    assert_int_equal(b.len, 399 + 1 + 5 + 1 + 399);
    assert_memory_equal(b.data, a, 399);
    assert_memory_equal(b.data + 399, "-12345-", 7);
    assert_memory_equal(b.data + 406, c, 399);
    assert_buf_sane(&b);
    skv_buf_free(&b);
}

static void test_buf_consume(void **state) {
    (void)state;
    skv_buf b;
    skv_buf_init(&b);
    skv_buf_consume(&b, 0); /* empty, never allocated */
    skv_buf_consume(&b, 5);
    assert_int_equal(b.len, 0);
    skv_buf_append_cstr(&b, "0123456789");
    skv_buf_consume(&b, 0);
    assert_string_equal(b.data, "0123456789");
    skv_buf_consume(&b, 3);
    assert_string_equal(b.data, "3456789");
    assert_int_equal(b.len, 7);
    skv_buf_consume(&b, 6);
    assert_string_equal(b.data, "9");
    skv_buf_consume(&b, 1); /* exactly all */
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    skv_buf_append_cstr(&b, "abc");
    skv_buf_consume(&b, 100); /* more than all */
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    skv_buf_append_cstr(&b, "xy");
    assert_string_equal(b.data, "xy");
    assert_buf_sane(&b);
    /* Large buffer: overlapping move must be correct. */
    skv_buf_reset(&b);
    for (int i = 0; i < 2000; i++) skv_buf_printf(&b, "%c", 'a' + i % 26);
    skv_buf_consume(&b, 1);
    assert_int_equal(b.len, 1999);
    for (size_t i = 0; i < b.len; i++) assert_int_equal(b.data[i], 'a' + (int)((i + 1) % 26));
    assert_buf_sane(&b);
    skv_buf_free(&b);
}

static void test_u64_to_dec(void **state) {
    (void)state;
    static const struct { uint64_t v; const char *s; } cases[] = {
        { 0, "0" },
        { 1, "1" },
        { 9, "9" },
        { 10, "10" },
        { 99, "99" },
        { 100, "100" },
        { 4294967295u, "4294967295" },
        { 9223372036854775808ull, "9223372036854775808" },
        { 10000000000000000000ull, "10000000000000000000" },
        { UINT64_MAX, "18446744073709551615" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[21];
        memset(out, 'X', sizeof out);
        size_t n = skv_u64_to_dec(cases[i].v, out);
        assert_int_equal(n, strlen(cases[i].s));
        assert_string_equal(out, cases[i].s); /* NUL-terminated */
        /* Round trip through the parser. */
        uint64_t back;
        assert_int_equal(skv_slice_to_u64(skv_slice_make(out, n), &back), SKV_OK);
        assert_true(back == cases[i].v);
    }
}

/* ---- JSON string escaping --------------------------------------------------- */

/* Escapes len bytes of s into a fresh buffer and compares with expect. */
static void assert_json(const char *s, size_t len, const char *expect) {
    skv_buf b;
    skv_buf_init(&b);
    skv_buf_append_json_str(&b, s, len);
    assert_buf_sane(&b);
    assert_string_equal(b.data, expect);
    assert_int_equal(b.len, strlen(expect));
    skv_buf_free(&b);
}

#define JSON_LIT(lit, expect) assert_json((lit), sizeof(lit) - 1, (expect))

/* The output is pre, then one or more "\ufffd", then post: the number of
 * replacement characters for a bad sequence is an implementation choice. */
static void assert_json_replaced(const char *s, size_t len, const char *pre, const char *post) {
    skv_buf b;
    skv_buf_init(&b);
    skv_buf_append_json_str(&b, s, len);
    size_t np = strlen(pre), nq = strlen(post);
    assert_true(b.len >= np + 6 + nq);
    assert_memory_equal(b.data, pre, np);
    assert_memory_equal(b.data + b.len - nq, post, nq);
    size_t mid = b.len - np - nq;
    assert_int_equal(mid % 6, 0);
    for (size_t i = 0; i < mid; i += 6) assert_memory_equal(b.data + np + i, "\\ufffd", 6);
    skv_buf_free(&b);
}

#define JSON_BAD(lit, pre, post) assert_json_replaced((lit), sizeof(lit) - 1, (pre), (post))

static void test_json_plain_and_escapes(void **state) {
    (void)state;
    JSON_LIT("hello world", "hello world");
    JSON_LIT("say \"hi\"", "say \\\"hi\\\"");
    JSON_LIT("a\\b", "a\\\\b");
    JSON_LIT("/", "/"); /* solidus need not be escaped */
    JSON_LIT("\x7f", "\x7f");  /* DEL is legal in JSON strings */
    JSON_LIT("~", "~");
}

static void test_json_control_chars(void **state) {
    (void)state;
    JSON_LIT("\n", "\\u000a");
    JSON_LIT("\r\t", "\\u000d\\u0009");
    JSON_LIT("\x01", "\\u0001");
    JSON_LIT("\x1f", "\\u001f");
    JSON_LIT("\x10", "\\u0010");
    JSON_LIT("\b\f", "\\u0008\\u000c");
    JSON_LIT(" ", " "); /* 0x20 is the first unescaped byte */
    /* An embedded NUL is data, escaped like any control. */
    assert_json("a\0b", 3, "a\\u0000b");
    /* Every control char maps to \u00XX with lower-case hex. */
    for (int c = 0; c < 0x20; c++) {
        char in = (char)c, expect[8];
        snprintf(expect, sizeof expect, "\\u%04x", c);
        assert_json(&in, 1, expect);
    }
}

static void test_json_valid_utf8_kept(void **state) {
    (void)state;
    JSON_LIT("caf\xc3\xa9", "caf\xc3\xa9");                     /* é, 2 bytes */
    JSON_LIT("\xc2\x80", "\xc2\x80");                           /* U+0080, smallest 2-byte */
    JSON_LIT("\xdf\xbf", "\xdf\xbf");                           /* U+07FF */
    JSON_LIT("\xe0\xa0\x80", "\xe0\xa0\x80");                   /* U+0800, smallest 3-byte */
    JSON_LIT("\xe2\x82\xac", "\xe2\x82\xac");                   /* € */
    JSON_LIT("\xed\x9f\xbf", "\xed\x9f\xbf");                   /* U+D7FF, just below surrogates */
    JSON_LIT("\xee\x80\x80", "\xee\x80\x80");                   /* U+E000, just above */
    JSON_LIT("\xef\xbf\xbd", "\xef\xbf\xbd");                   /* U+FFFD itself */
    JSON_LIT("\xef\xbf\xbf", "\xef\xbf\xbf");                   /* U+FFFF */
    JSON_LIT("\xf0\x90\x80\x80", "\xf0\x90\x80\x80");           /* U+10000 */
    JSON_LIT("\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80");           /* 😀 */
    JSON_LIT("\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf");           /* U+10FFFF */
    JSON_LIT("\xe6\x97\xa5\xe6\x9c\xac\"", "\xe6\x97\xa5\xe6\x9c\xac\\\"");
}

static void test_json_invalid_utf8_replaced(void **state) {
    (void)state;
    JSON_BAD("a\x80z", "a", "z");                 /* lone continuation byte */
    JSON_BAD("a\xbfz", "a", "z");
    JSON_BAD("a\xc0\x80z", "a", "z");             /* overlong NUL */
    JSON_BAD("a\xc1\xbfz", "a", "z");             /* overlong 2-byte */
    JSON_BAD("a\xe0\x80\x80z", "a", "z");         /* overlong 3-byte */
    JSON_BAD("a\xe0\x9f\xbfz", "a", "z");         /* overlong U+07FF */
    JSON_BAD("a\xf0\x80\x80\x80z", "a", "z");     /* overlong 4-byte */
    JSON_BAD("a\xf0\x8f\xbf\xbfz", "a", "z");     /* overlong U+FFFF */
    JSON_BAD("a\xed\xa0\x80z", "a", "z");         /* high surrogate U+D800 */
    JSON_BAD("a\xed\xbf\xbfz", "a", "z");         /* low surrogate U+DFFF */
    JSON_BAD("a\xf4\x90\x80\x80z", "a", "z");     /* U+110000 */
    JSON_BAD("a\xf5\x80\x80\x80z", "a", "z");     /* F5 never valid */
    JSON_BAD("a\xff", "a", "");
    JSON_BAD("a\xfe", "a", "");
    JSON_BAD("a\xc3", "a", "");                   /* truncated at the end */
    JSON_BAD("a\xe2\x82", "a", "");
    JSON_BAD("a\xf0\x9f\x98", "a", "");
    JSON_BAD("a\xc3z", "a", "z");                 /* lead byte then ASCII */
    JSON_BAD("a\xe2\x82z", "a", "z");
    JSON_BAD("\xe2\x82\"", "", "\\\"");           /* the quote after a bad sequence is still escaped */
    /* A bad byte does not swallow a valid sequence that follows it. */
    JSON_BAD("\x80\xc3\xa9", "", "\xc3\xa9");
    JSON_BAD("\xc3\xc3\xa9", "", "\xc3\xa9");
    /* Truncated input: the length bounds the scan even though the bytes
     * after it would complete the sequence. */
    assert_json_replaced("x\xe2\x82\xac", 3, "x", "");
    assert_json("x\xe2\x82\xac", 4, "x\xe2\x82\xac");
}

static void test_json_appends(void **state) {
    (void)state;
    skv_buf b;
    skv_buf_init(&b);
    skv_buf_append_cstr(&b, "{\"k\":\"");
    skv_buf_append_json_str(&b, "v\"1", 3);
    skv_buf_append_cstr(&b, "\"}");
    assert_string_equal(b.data, "{\"k\":\"v\\\"1\"}");
    /* A long input forces growth past the initial reserve (all escaped). */
    skv_buf_reset(&b);
    char in[1000];
    memset(in, '\n', sizeof in);
    skv_buf_append_json_str(&b, in, sizeof in);
    assert_int_equal(b.len, 6 * sizeof in);
    for (size_t i = 0; i < sizeof in; i++) assert_memory_equal(b.data + 6 * i, "\\u000a", 6);
    assert_buf_sane(&b);
    skv_buf_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slice_basics),
        cmocka_unit_test(test_u64_valid),
        cmocka_unit_test(test_u64_invalid),
        cmocka_unit_test(test_u64_overflow),
        cmocka_unit_test(test_i64_valid),
        cmocka_unit_test(test_i64_invalid),
        cmocka_unit_test(test_i64_range),
        cmocka_unit_test(test_buf_init_reset_free),
        cmocka_unit_test(test_buf_append_growth),
        cmocka_unit_test(test_buf_reserve),
        cmocka_unit_test(test_buf_reserve_keeps_terminator),
        cmocka_unit_test(test_buf_append_numbers),
        cmocka_unit_test(test_buf_printf),
        cmocka_unit_test(test_buf_printf_past_256),
        cmocka_unit_test(test_buf_vprintf_long_args),
        cmocka_unit_test(test_buf_consume),
        cmocka_unit_test(test_u64_to_dec),
        cmocka_unit_test(test_json_plain_and_escapes),
        cmocka_unit_test(test_json_control_chars),
        cmocka_unit_test(test_json_valid_utf8_kept),
        cmocka_unit_test(test_json_invalid_utf8_replaced),
        cmocka_unit_test(test_json_appends),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
