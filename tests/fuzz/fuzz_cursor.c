/*
 * libFuzzer target for the pagination cursor codec (cursor.h).
 *
 * The input is used three ways:
 *   - as cursor text: an independent strict base64url decoder and a reading
 *     of the wire layout say whether it is a well-formed cursor, and
 *     cursor_decode must agree (with the kind and query fingerprint the
 *     text carries); a decoded cursor has exactly the fields of the wire
 *     bytes, its key lies inside keybuf, and cursor_encode gives back
 *     exactly the input text;
 *   - as the wire bytes before base64, with the CRC recomputed (and once
 *     more with the version and key length made right as well), since
 *     random text almost never carries a right checksum; the copy is
 *     encoded by the harness's own encoder and checked as above;
 *   - as the fields of a cursor to encode: the text is base64url of the
 *     right length, and decodes to the same fields.
 * Every cursor that decodes is also decoded with another kind (kind ^ 1,
 * and by turns kind + 256 or -1) and another query (query ^ 1, by turns
 * query ^ 2^63), which must be refused with a reason that is neither the
 * "malformed" one nor the other mismatch's; a refused text must give the
 * same reason whatever kind and query are asked for (one other pair is
 * tried per input), and *why is NULL exactly on success.
 * keybuf is handed in holding junk, which the call must reset.  The query
 * fingerprint of the input's bytes is deterministic and differs by kind
 * and by how the bytes are split into parts.  Any
 * violation aborts, which libFuzzer reports as a crash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "crc32c.h"
#include "cursor.h"
#include "err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                 \
        }                                                                            \
    } while (0)

/* The wire layout of cursor.h, written out again here on purpose. */
#define W_FIXED 34 /* version, kind, query, shard, a, b, key_len */
#define W_CRC 4
#define W_KEY_OFF 34
#define W_VERSION 1

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static uint64_t le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static void put_le(uint8_t *p, uint64_t v, int n) {
    for (int i = 0; i < n; i++, v >>= 8) p[i] = (uint8_t)v;
}

static int sextet(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

/* Reference decoder, bit by bit: only the alphabet, no padding, the unused
 * low bits of the last character zero.  Returns the byte count or -1;
 * out has room for len * 3 / 4 bytes. */
static long ref_b64_decode(const char *s, size_t len, uint8_t *out) {
    uint32_t acc = 0;
    int bits = 0;
    long n = 0;
    for (size_t i = 0; i < len; i++) {
        int d = sextet(s[i]);
        if (d < 0) return -1;
        acc = acc << 6 | (uint32_t)d;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* 6 leftover bits: a lone character; otherwise they must be zero. */
    if (bits == 6 || acc != 0) return -1;
    return n;
}

static void ref_b64_encode(const uint8_t *p, size_t n, skv_buf *out) {
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = acc << 8 | p[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            skv_buf_append(out, &alphabet[(acc >> bits) & 63], 1);
        }
        acc &= (1u << bits) - 1;
    }
    if (bits) skv_buf_append(out, &alphabet[(acc << (6 - bits)) & 63], 1);
}

/* 1 when raw[0..n) is the wire form of a cursor (any kind, any query). */
static int ref_wire_valid(const uint8_t *raw, size_t n) {
    if (n < W_FIXED + W_CRC) return 0;
    if (crc32c(0, raw, n - W_CRC) != (uint32_t)le(raw + n - W_CRC, 4)) return 0;
    uint64_t klen = le(raw + 30, 4);
    return raw[0] == W_VERSION && klen <= CURSOR_MAX_KEY && W_FIXED + klen + W_CRC == n;
}

static void fill_junk(skv_buf *b) {
    skv_buf_reset(b);
    skv_buf_append_cstr(b, "junk left over from an earlier call");
}

/* Decodes text expecting a refusal; returns the reason. */
static const char *decode_refused(skv_slice text, int kind, uint64_t query, skv_buf *keybuf) {
    skv_cursor c;
    const char *why = NULL;
    fill_junk(keybuf);
    CHECK(cursor_decode(text, kind, query, &c, keybuf, &why) == SKV_EINVAL);
    CHECK(why != NULL);
    return why;
}

/* The whole check of one cursor text. */
static void check_text(const char *text, size_t len) {
    skv_slice t = skv_slice_make(text, len);
    uint8_t *raw = malloc(len * 3 / 4 + 1);
    CHECK(raw != NULL);
    long n = ref_b64_decode(text, len, raw);
    int valid = len > 0 && n >= 0 && ref_wire_valid(raw, (size_t)n);
    int kind = n >= 2 ? raw[1] : CURSOR_KV_SCAN;
    uint64_t query = n >= 10 ? le(raw + 2, 8) : 0;

    skv_buf keybuf;
    skv_buf_init(&keybuf);
    /* Each decode costs a pass over the text, so besides the main ones one
     * more variant is tried, chosen by the text. */
    unsigned pick = len ? (unsigned char)text[len / 2] % 4 : 0;
    if (!valid) {
        const char *why = decode_refused(t, kind, query, &keybuf);
        int other_kind = pick == 0 ? kind ^ 1 : pick == 1 ? CURSOR_INDEX : kind;
        uint64_t other_query = pick == 2 ? query ^ 1 : pick == 3 ? 0 : query;
        CHECK(decode_refused(t, other_kind, other_query, &keybuf) == why);
        goto out;
    }

    skv_cursor c;
    const char *why = "unset";
    fill_junk(&keybuf);
    CHECK(cursor_decode(t, kind, query, &c, &keybuf, &why) == SKV_OK);
    CHECK(why == NULL);
    size_t klen = (size_t)le(raw + 30, 4);
    CHECK(c.kind == kind);
    CHECK(c.query == query);
    CHECK(c.shard == (uint32_t)le(raw + 10, 4));
    CHECK(c.a == le(raw + 14, 8));
    CHECK(c.b == le(raw + 22, 8));
    CHECK(c.key.len == klen);
    if (klen) {
        CHECK(c.key.ptr >= keybuf.data && c.key.ptr + klen <= keybuf.data + keybuf.len);
        CHECK(memcmp(c.key.ptr, raw + W_KEY_OFF, klen) == 0);
    }

    /* Re-encoding appends exactly the input text, NUL-terminated. */
    skv_buf out;
    skv_buf_init(&out);
    skv_buf_append_cstr(&out, "prefix:");
    cursor_encode(&c, &out);
    CHECK(out.len == 7 + len);
    CHECK(memcmp(out.data, "prefix:", 7) == 0);
    CHECK(memcmp(out.data + 7, text, len) == 0);
    CHECK(out.data[out.len] == '\0');
    skv_buf_free(&out);

    /* The same text asked for by another listing or another query. */
    const char *why_kind = decode_refused(t, kind ^ 1, query, &keybuf);
    const char *why_query = decode_refused(t, kind, query ^ 1, &keybuf);
    CHECK(why_kind != why_query);
    if (pick == 0) CHECK(decode_refused(t, kind + 256, query, &keybuf) == why_kind);
    if (pick == 1) CHECK(decode_refused(t, -1, query, &keybuf) == why_kind);
    if (pick == 2) CHECK(decode_refused(t, kind, query ^ (UINT64_C(1) << 63), &keybuf) == why_query);
    if (pick == 3) {
        /* Both mismatches at once: one of the two reasons. */
        const char *why_both = decode_refused(t, kind ^ 2, ~query, &keybuf);
        CHECK(why_both == why_kind || why_both == why_query);
    }
    /* Neither is the reason given to malformed text. */
    const char *why_bad = decode_refused(skv_slice_make("!", 1), kind, query, &keybuf);
    CHECK(why_kind != why_bad && why_query != why_bad);
out:
    skv_buf_free(&keybuf);
    free(raw);
}

/* raw[0..n) as wire bytes: recompute the CRC, encode, check. */
static void check_wire(uint8_t *raw, size_t n) {
    if (n >= W_CRC) put_le(raw + n - W_CRC, crc32c(0, raw, n - W_CRC), 4);
    skv_buf text;
    skv_buf_init(&text);
    ref_b64_encode(raw, n, &text);
    /* An exact-size copy so that a read past the end is caught. */
    char *exact = malloc(text.len ? text.len : 1);
    CHECK(exact != NULL);
    if (text.len) memcpy(exact, text.data, text.len);
    check_text(exact, text.len);
    if (n >= W_FIXED + W_CRC && raw[0] == W_VERSION && le(raw + 30, 4) == n - W_FIXED - W_CRC) {
        /* made right on purpose: must have been accepted */
        CHECK(ref_wire_valid(raw, n));
    }
    free(exact);
    skv_buf_free(&text);
}

/* The input as fields to encode; the text must decode to them. */
static void check_encode(const uint8_t *data, size_t size) {
    uint8_t fixed[W_FIXED] = { 0 };
    memcpy(fixed, data, size < W_FIXED ? size : W_FIXED);
    skv_cursor c;
    c.kind = fixed[0];
    c.query = le(fixed + 1, 8);
    c.shard = (uint32_t)le(fixed + 9, 4);
    c.a = le(fixed + 13, 8);
    c.b = le(fixed + 21, 8);
    size_t klen = size > W_FIXED ? size - W_FIXED : 0;
    if (klen > CURSOR_MAX_KEY) klen = CURSOR_MAX_KEY;
    c.key = skv_slice_make(klen ? (const char *)data + W_FIXED : NULL, klen);

    skv_buf out;
    skv_buf_init(&out);
    cursor_encode(&c, &out);
    size_t wire = W_FIXED + klen + W_CRC;
    CHECK(out.len == wire / 3 * 4 + (wire % 3 ? wire % 3 + 1 : 0));
    CHECK(out.data[out.len] == '\0');
    for (size_t i = 0; i < out.len; i++) CHECK(sextet(out.data[i]) >= 0);

    skv_cursor d;
    skv_buf keybuf;
    skv_buf_init(&keybuf);
    fill_junk(&keybuf);
    const char *why = "unset";
    CHECK(cursor_decode(skv_slice_make(out.data, out.len), c.kind, c.query, &d, &keybuf, &why) == SKV_OK);
    CHECK(why == NULL);
    CHECK(d.kind == c.kind && d.query == c.query && d.shard == c.shard && d.a == c.a && d.b == c.b);
    CHECK(d.key.len == klen);
    CHECK(klen == 0 || memcmp(d.key.ptr, c.key.ptr, klen) == 0);
    skv_buf_free(&keybuf);
    skv_buf_free(&out);
}

/* The query fingerprint is deterministic and tells apart the kind and the
 * way the bytes are split into parts (each part is length-prefixed), so
 * ("ab", "c") and ("a", "bc") are different queries.  (A 64-bit hash could
 * collide; for these few inputs that chance is negligible.) */
static void check_fingerprint(const uint8_t *data, size_t size) {
    const char *p = (const char *)data;
    size_t half = size / 2;
    skv_slice whole[1] = { skv_slice_make(p, size) };
    skv_slice two[2] = { skv_slice_make(p, half), skv_slice_make(p + half, size - half) };
    skv_slice three[3] = { two[0], skv_slice_make(p + half, 0), two[1] };
    uint64_t f1 = cursor_fingerprint(CURSOR_INDEX, whole, 1);
    uint64_t f2 = cursor_fingerprint(CURSOR_INDEX, two, 2);
    uint64_t f3 = cursor_fingerprint(CURSOR_INDEX, three, 3);
    CHECK(f1 == cursor_fingerprint(CURSOR_INDEX, whole, 1));
    CHECK(f1 != f2 && f2 != f3 && f1 != f3);
    CHECK(f1 != cursor_fingerprint(CURSOR_KV_SCAN, whole, 1));
    CHECK(f1 != cursor_fingerprint(CURSOR_INDEX, whole, 0));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* An exact-size copy so that any read past the end is caught. */
    char *text = malloc(size ? size : 1);
    CHECK(text != NULL);
    if (size) memcpy(text, data, size);
    check_text(text, size);

    /* As wire bytes, checksum fixed; then version and key length too. */
    uint8_t *raw = malloc(size ? size : 1);
    CHECK(raw != NULL);
    if (size) memcpy(raw, data, size);
    check_wire(raw, size);
    size_t n = size;
    if (n >= W_FIXED + W_CRC) {
        if (n > W_FIXED + CURSOR_MAX_KEY + W_CRC) n = W_FIXED + CURSOR_MAX_KEY + W_CRC;
        raw[0] = W_VERSION;
        put_le(raw + 30, n - W_FIXED - W_CRC, 4);
        check_wire(raw, n);
    }
    free(raw);

    check_encode(data, size);
    check_fingerprint(data, size);
    free(text);
    return 0;
}
