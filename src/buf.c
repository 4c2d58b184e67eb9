#include "buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "mem.h"

skv_slice skv_slice_cstr(const char *s) { return (skv_slice){ s, strlen(s) }; }

int skv_slice_eq(skv_slice a, skv_slice b) {
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

int skv_slice_eq_cstr(skv_slice a, const char *s) { return skv_slice_eq(a, skv_slice_cstr(s)); }

int skv_slice_ieq_cstr(skv_slice a, const char *s) {
    size_t n = strlen(s);
    if (n != a.len) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a.ptr[i], y = (unsigned char)s[i];
        if (x >= 'A' && x <= 'Z') x = (unsigned char)(x + 32);
        if (y >= 'A' && y <= 'Z') y = (unsigned char)(y + 32);
        if (x != y) return 0;
    }
    return 1;
}

int skv_slice_to_u64(skv_slice s, uint64_t *out) {
    if (s.len == 0 || s.len > 20) return SKV_EINVAL;
    if (s.len > 1 && s.ptr[0] == '0') return SKV_EINVAL;
    uint64_t v = 0;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.ptr[i];
        if (c < '0' || c > '9') return SKV_EINVAL;
        uint64_t d = (uint64_t)(c - '0');
        if (v > (UINT64_MAX - d) / 10) return SKV_ERANGE;
        v = v * 10 + d;
    }
    *out = v;
    return SKV_OK;
}

int skv_slice_to_i64(skv_slice s, int64_t *out) {
    int neg = s.len > 0 && s.ptr[0] == '-';
    skv_slice digits = neg ? skv_slice_make(s.ptr + 1, s.len - 1) : s;
    uint64_t u;
    int rc = skv_slice_to_u64(digits, &u);
    if (rc) return rc;
    if (neg) {
        if (u > (uint64_t)INT64_MAX + 1) return SKV_ERANGE;
        if (u == 0) return SKV_EINVAL; /* "-0" */
        *out = (int64_t)(0 - u);
    } else {
        if (u > (uint64_t)INT64_MAX) return SKV_ERANGE;
        *out = (int64_t)u;
    }
    return SKV_OK;
}

void skv_buf_init(skv_buf *b) { b->data = NULL; b->len = b->cap = 0; }

void skv_buf_free(skv_buf *b) {
    free(b->data);
    skv_buf_init(b);
}

void skv_buf_reserve(skv_buf *b, size_t extra) {
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap *= 2;
    b->data = skv_realloc(b->data, cap);
    b->cap = cap;
    b->data[b->len] = '\0';
}

void skv_buf_append(skv_buf *b, const void *data, size_t len) {
    skv_buf_reserve(b, len);
    if (len) memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void skv_buf_append_cstr(skv_buf *b, const char *s) { skv_buf_append(b, s, strlen(s)); }

size_t skv_u64_to_dec(uint64_t v, char *out) {
    char tmp[21];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return n;
}

void skv_buf_append_u64(skv_buf *b, uint64_t v) {
    char tmp[24];
    size_t n = skv_u64_to_dec(v, tmp);
    skv_buf_append(b, tmp, n);
}

void skv_buf_append_i64(skv_buf *b, int64_t v) {
    if (v < 0) {
        skv_buf_append(b, "-", 1);
        skv_buf_append_u64(b, (uint64_t)0 - (uint64_t)v);
    } else {
        skv_buf_append_u64(b, (uint64_t)v);
    }
}

void skv_buf_vprintf(skv_buf *b, const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    if (n < 0) { va_end(ap2); return; }
    if ((size_t)n < sizeof small) {
        skv_buf_append(b, small, (size_t)n);
    } else {
        skv_buf_reserve(b, (size_t)n);
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
        b->len += (size_t)n;
    }
    va_end(ap2);
}

void skv_buf_printf(skv_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    skv_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

size_t skv_utf8_seq_len(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; }
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) return 0;
    if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
    return len;
}

void skv_buf_append_json_str(skv_buf *b, const char *s, size_t len) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    skv_buf_reserve(b, len + 2);
    while (i < len) {
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            char esc[2] = { '\\', (char)c };
            skv_buf_append(b, esc, 2);
            i++;
        } else if (c < 0x20) {
            char esc[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
            skv_buf_append(b, esc, 6);
            i++;
        } else if (c < 0x80) {
            skv_buf_append(b, &p[i], 1);
            i++;
        } else {
            size_t n = skv_utf8_seq_len(p + i, len - i);
            if (n == 0) {
                skv_buf_append(b, "\\ufffd", 6);
                i++;
            } else {
                skv_buf_append(b, &p[i], n);
                i += n;
            }
        }
    }
}

void skv_buf_consume(skv_buf *b, size_t n) {
    if (n >= b->len) {
        skv_buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}
