#include "cursor.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "crc32c.h"
#include "err.h"

#define CURSOR_VERSION 1
#define CURSOR_FIXED (1 + 1 + 8 + 4 + 8 + 8 + 4) /* before the key */
#define CURSOR_CRC 4

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void put_le(unsigned char *p, uint64_t v, int n) {
    for (int i = 0; i < n; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

uint64_t cursor_fingerprint(int kind, const skv_slice *parts, size_t nparts) {
    XXH3_state_t *st = XXH3_createState();
    if (!st) abort();
    XXH3_64bits_reset(st);
    unsigned char k = (unsigned char)kind;
    XXH3_64bits_update(st, &k, 1);
    for (size_t i = 0; i < nparts; i++) {
        unsigned char len[8];
        put_le(len, parts[i].len, 8);
        XXH3_64bits_update(st, len, sizeof len);
        if (parts[i].len) XXH3_64bits_update(st, parts[i].ptr, parts[i].len);
    }
    uint64_t h = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    return h;
}

static void b64_encode(const unsigned char *p, size_t n, skv_buf *out) {
    char q[4];
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        size_t left = n - i;
        if (left > 1) v |= (uint32_t)p[i + 1] << 8;
        if (left > 2) v |= p[i + 2];
        q[0] = b64[v >> 18 & 63];
        q[1] = b64[v >> 12 & 63];
        q[2] = b64[v >> 6 & 63];
        q[3] = b64[v & 63];
        skv_buf_append(out, q, left >= 3 ? 4 : left + 1);
    }
}

static int b64_value(char c) {
    const char *p = c ? strchr(b64, c) : NULL;
    return p ? (int)(p - b64) : -1;
}

/* Strict: only the alphabet, no padding, no impossible length, zero trailing bits. */
static int b64_decode(skv_slice in, skv_buf *out) {
    if (in.len % 4 == 1) return SKV_EINVAL;
    for (size_t i = 0; i < in.len; i += 4) {
        size_t left = in.len - i < 4 ? in.len - i : 4;
        uint32_t v = 0;
        for (size_t j = 0; j < 4; j++) {
            int d = j < left ? b64_value(in.ptr[i + j]) : 0;
            if (d < 0) return SKV_EINVAL;
            v = v << 6 | (uint32_t)d;
        }
        unsigned char b[3] = { (unsigned char)(v >> 16), (unsigned char)(v >> 8), (unsigned char)v };
        size_t nbytes = left - 1;
        for (size_t j = nbytes; j < 3; j++)
            if (b[j]) return SKV_EINVAL;
        skv_buf_append(out, b, nbytes);
    }
    return SKV_OK;
}

void cursor_encode(const skv_cursor *c, skv_buf *out) {
    unsigned char fixed[CURSOR_FIXED];
    size_t klen = c->key.len > CURSOR_MAX_KEY ? CURSOR_MAX_KEY : c->key.len;
    fixed[0] = CURSOR_VERSION;
    fixed[1] = (unsigned char)c->kind;
    put_le(fixed + 2, c->query, 8);
    put_le(fixed + 10, c->shard, 4);
    put_le(fixed + 14, c->a, 8);
    put_le(fixed + 22, c->b, 8);
    put_le(fixed + 30, klen, 4);
    skv_buf raw;
    skv_buf_init(&raw);
    skv_buf_append(&raw, fixed, sizeof fixed);
    if (klen) skv_buf_append(&raw, c->key.ptr, klen);
    unsigned char crc[CURSOR_CRC];
    put_le(crc, crc32c(0, raw.data, raw.len), CURSOR_CRC);
    skv_buf_append(&raw, crc, sizeof crc);
    b64_encode((const unsigned char *)raw.data, raw.len, out);
    skv_buf_free(&raw);
}

int cursor_decode(skv_slice text, int want_kind, uint64_t want_query, skv_cursor *c, skv_buf *keybuf,
                  const char **why) {
    skv_buf_reset(keybuf);
    *why = "not a cursor (malformed)";
    if (text.len == 0 || text.len > 2 * (CURSOR_FIXED + CURSOR_MAX_KEY + CURSOR_CRC)) return SKV_EINVAL;
    if (b64_decode(text, keybuf) != SKV_OK || keybuf->len < CURSOR_FIXED + CURSOR_CRC) return SKV_EINVAL;
    const unsigned char *p = (const unsigned char *)keybuf->data;
    size_t n = keybuf->len;
    if (crc32c(0, p, n - CURSOR_CRC) != (uint32_t)get_le(p + n - CURSOR_CRC, CURSOR_CRC)) {
        *why = "not a cursor (bad checksum)";
        return SKV_EINVAL;
    }
    uint64_t klen = get_le(p + 30, 4);
    if (p[0] != CURSOR_VERSION || klen > CURSOR_MAX_KEY || CURSOR_FIXED + klen + CURSOR_CRC != n) {
        *why = "not a cursor of this version";
        return SKV_EINVAL;
    }
    if (p[1] != want_kind) {
        *why = "a cursor of another kind of listing";
        return SKV_EINVAL;
    }
    if (get_le(p + 2, 8) != want_query) {
        *why = "a cursor of another query (different prefix, collection or filter)";
        return SKV_EINVAL;
    }
    c->kind = p[1];
    c->query = want_query;
    c->shard = (uint32_t)get_le(p + 10, 4);
    c->a = get_le(p + 14, 8);
    c->b = get_le(p + 22, 8);
    c->key = skv_slice_make(keybuf->data + CURSOR_FIXED, (size_t)klen);
    *why = NULL;
    return SKV_OK;
}
