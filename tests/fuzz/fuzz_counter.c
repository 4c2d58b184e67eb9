/*
 * libFuzzer target for the stored text formats of sharded counters
 * (counter.h): a sub-counter's "<value> <gen> <lo> <hi>" and a
 * definition's "k=<K> base=<B> gen=<16 hex> id=<16 hex>".  Only the pure
 * functions are called; the target links the rest of the server because
 * counter.c does.
 *
 * The input is used three ways:
 *   - as a sub-counter text: counter_sub_parse answers 0 or SKV_EINVAL and
 *     agrees with an independent strict reader (canonical decimal: no sign
 *     but '-', no leading zeros, no "-0", within int64; exactly 16
 *     lowercase hex digits; single spaces; nothing else), with the same
 *     fields; and for accepted text counter_sub_format gives back exactly
 *     the input (the format is canonical, so parse -> format -> parse is
 *     the identity and stored values are never rewritten differently);
 *   - as a definition text, for several shard counts: the same agreement
 *     with a reference reader, K in 1..nshards and base < nshards, the
 *     exact text back from counter_def_format, and an answer that only
 *     widens with the shard count (accepted for n shards means accepted,
 *     with the same fields, for every larger n);
 *   - as the fields of a sub-counter and of a definition: formatting them
 *     gives text the parsers accept, with the same fields, and which the
 *     reference reader reads the same.
 * The formatters append (the harness checks a prefix already in the
 * buffer is kept).  counter_i128_format is checked against a reference on
 * values made from the input.  Any violation aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "counter.h"
#include "err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                 \
        }                                                                            \
    } while (0)

#define PREFIX "prefix|"
#define PREFIX_LEN (sizeof PREFIX - 1)

/* ---- reference readers ---------------------------------------------------------------------- */

/* Canonical decimal in [lo, hi]: an optional '-', then "0" or a non-zero
 * digit and more digits; "-0" is not canonical. */
static int ref_decimal(const char *p, size_t n, __int128 lo, __int128 hi, __int128 *out) {
    const unsigned __int128 umax = ~(unsigned __int128)0;
    int neg = n > 0 && p[0] == '-';
    const char *d = p + neg;
    size_t nd = n - (size_t)neg;
    if (nd == 0 || nd > 40) return 0;
    if (d[0] == '0' && (nd > 1 || neg)) return 0;
    unsigned __int128 m = 0;
    for (size_t i = 0; i < nd; i++) {
        if (d[i] < '0' || d[i] > '9') return 0;
        unsigned dig = (unsigned)(d[i] - '0');
        if (m > (umax - dig) / 10) return 0;
        m = m * 10 + dig;
    }
    __int128 v;
    if (neg) {
        if (lo >= 0 || m - 1 > (unsigned __int128)(-(lo + 1))) return 0; /* m >= 1 here */
        v = -(__int128)(m - 1) - 1;
    } else {
        if (hi < 0 || m > (unsigned __int128)hi) return 0;
        v = (__int128)m;
    }
    if (v < lo) return 0;
    *out = v;
    return 1;
}

static int ref_hex16(const char *p, size_t n, uint64_t *out) {
    if (n != 16) return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        const char *at = memchr("0123456789abcdef", p[i], 16);
        if (!at || p[i] == '\0') return 0;
        v = v << 4 | (uint64_t)(at - "0123456789abcdef");
    }
    *out = v;
    return 1;
}

/* Splits at every ' ' into exactly nf non-empty fields. */
static int ref_split(const char *p, size_t n, skv_slice *f, size_t nf) {
    size_t got = 0, start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && p[i] != ' ') continue;
        if (i == start || got == nf) return 0;
        f[got++] = skv_slice_make(p + start, i - start);
        start = i + 1;
    }
    return got == nf;
}

static int ref_sub(const char *p, size_t n, counter_sub *out) {
    skv_slice f[4];
    __int128 v, lo, hi;
    if (!ref_split(p, n, f, 4)) return 0;
    if (!ref_decimal(f[0].ptr, f[0].len, INT64_MIN, INT64_MAX, &v) || !ref_hex16(f[1].ptr, f[1].len, &out->gen) ||
        !ref_decimal(f[2].ptr, f[2].len, INT64_MIN, INT64_MAX, &lo) ||
        !ref_decimal(f[3].ptr, f[3].len, INT64_MIN, INT64_MAX, &hi))
        return 0;
    out->value = (int64_t)v;
    out->lo = (int64_t)lo;
    out->hi = (int64_t)hi;
    return 1;
}

/* "name=" then the rest of the field. */
static int ref_named(skv_slice f, const char *name, skv_slice *rest) {
    size_t n = strlen(name);
    if (f.len < n + 1 || memcmp(f.ptr, name, n) != 0 || f.ptr[n] != '=') return 0;
    *rest = skv_slice_make(f.ptr + n + 1, f.len - n - 1);
    return 1;
}

static int ref_def(const char *p, size_t n, uint32_t nshards, counter_def *out) {
    skv_slice f[4], r[4];
    __int128 k, base;
    if (!ref_split(p, n, f, 4) || !ref_named(f[0], "k", &r[0]) || !ref_named(f[1], "base", &r[1]) ||
        !ref_named(f[2], "gen", &r[2]) || !ref_named(f[3], "id", &r[3]))
        return 0;
    if (!ref_decimal(r[0].ptr, r[0].len, 1, nshards, &k) || r[0].ptr[0] == '-') return 0;
    if (!ref_decimal(r[1].ptr, r[1].len, 0, (__int128)nshards - 1, &base) || r[1].ptr[0] == '-') return 0;
    if (!ref_hex16(r[2].ptr, r[2].len, &out->gen) || !ref_hex16(r[3].ptr, r[3].len, &out->id)) return 0;
    out->k = (uint32_t)k;
    out->base = (uint32_t)base;
    return 1;
}

/* ---- checks --------------------------------------------------------------------------------- */

static int same_sub(const counter_sub *a, const counter_sub *b) {
    return a->value == b->value && a->gen == b->gen && a->lo == b->lo && a->hi == b->hi;
}

static int same_def(const counter_def *a, const counter_def *b) {
    return a->k == b->k && a->base == b->base && a->gen == b->gen && a->id == b->id;
}

/* out holds PREFIX then exactly want[0..n). */
static void check_appended(const skv_buf *out, const char *want, size_t n) {
    CHECK(out->len == PREFIX_LEN + n);
    CHECK(memcmp(out->data, PREFIX, PREFIX_LEN) == 0);
    CHECK(n == 0 || memcmp(out->data + PREFIX_LEN, want, n) == 0);
    CHECK(out->data[out->len] == '\0');
}

static void check_sub_text(const char *p, size_t n) {
    counter_sub got, want;
    int rc = counter_sub_parse(skv_slice_make(p, n), &got);
    CHECK(rc == SKV_OK || rc == SKV_EINVAL);
    int ok = ref_sub(p, n, &want);
    CHECK((rc == SKV_OK) == ok);
    if (!ok) return;
    CHECK(same_sub(&got, &want));
    skv_buf out;
    skv_buf_init(&out);
    skv_buf_append_cstr(&out, PREFIX);
    counter_sub_format(&got, &out);
    check_appended(&out, p, n);
    skv_buf_free(&out);
}

static void check_def_text(const char *p, size_t n) {
    static const uint32_t shard_counts[] = { 1, 2, 3, 16, 100, 65536, UINT32_MAX };
    int accepted_before = 0;
    counter_def first;
    for (size_t i = 0; i < sizeof shard_counts / sizeof shard_counts[0]; i++) {
        uint32_t nshards = shard_counts[i];
        counter_def got, want;
        int rc = counter_def_parse(skv_slice_make(p, n), nshards, &got);
        CHECK(rc == SKV_OK || rc == SKV_EINVAL);
        int ok = ref_def(p, n, nshards, &want);
        CHECK((rc == SKV_OK) == ok);
        CHECK(!accepted_before || ok); /* more shards never refuse what fewer accepted */
        if (!ok) continue;
        CHECK(same_def(&got, &want));
        CHECK(got.k >= 1 && got.k <= nshards && got.base < nshards);
        if (accepted_before) CHECK(same_def(&got, &first));
        else first = got;
        accepted_before = 1;
        skv_buf out;
        skv_buf_init(&out);
        skv_buf_append_cstr(&out, PREFIX);
        counter_def_format(&got, &out);
        check_appended(&out, p, n);
        skv_buf_free(&out);
    }
}

static uint64_t take_u64(const uint8_t *data, size_t size, size_t *at) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++, (*at)++) v = v << 8 | (*at < size ? data[*at] : 0);
    return v;
}

/* Fields from the input -> text -> the same fields. */
static void check_roundtrip_fields(const uint8_t *data, size_t size) {
    size_t at = 0;
    counter_sub s = { 0, 0, 0, 0 };
    s.value = (int64_t)take_u64(data, size, &at);
    s.gen = take_u64(data, size, &at);
    s.lo = (int64_t)take_u64(data, size, &at);
    s.hi = (int64_t)take_u64(data, size, &at);
    skv_buf out;
    skv_buf_init(&out);
    counter_sub_format(&s, &out);
    counter_sub back, ref;
    CHECK(counter_sub_parse(skv_slice_make(out.data, out.len), &back) == SKV_OK);
    CHECK(same_sub(&s, &back));
    CHECK(ref_sub(out.data, out.len, &ref) && same_sub(&s, &ref));

    uint64_t kb = take_u64(data, size, &at);
    counter_def d = { 0, 0, 0, 0 };
    d.k = (uint32_t)(kb >> 32);
    d.base = (uint32_t)kb;
    d.gen = take_u64(data, size, &at);
    d.id = take_u64(data, size, &at);
    if (d.k == 0) d.k = 1;
    uint32_t nshards = d.base == UINT32_MAX ? UINT32_MAX : d.base + 1;
    if (nshards < d.k) nshards = d.k;
    if (d.base >= nshards) d.base = nshards - 1;
    skv_buf_reset(&out);
    counter_def_format(&d, &out);
    counter_def dback, dref;
    CHECK(counter_def_parse(skv_slice_make(out.data, out.len), nshards, &dback) == SKV_OK);
    CHECK(same_def(&d, &dback));
    CHECK(ref_def(out.data, out.len, nshards, &dref) && same_def(&d, &dref));
    /* one shard fewer than it needs: refused */
    if (nshards > 1 && (d.k == nshards || d.base == nshards - 1))
        CHECK(counter_def_parse(skv_slice_make(out.data, out.len), nshards - 1, &dback) == SKV_EINVAL);
    skv_buf_free(&out);

    /* counter_i128_format against the reference reader */
    __int128 v = (__int128)(int64_t)take_u64(data, size, &at) * (__int128)take_u64(data, size, &at);
    char text[48];
    size_t len = counter_i128_format(v, text);
    CHECK(len < 41 && strlen(text) == len);
    __int128 parsed;
    __int128 i128_max = (__int128)(((unsigned __int128)1 << 127) - 1);
    CHECK(ref_decimal(text, len, -i128_max - 1, i128_max, &parsed) && parsed == v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* An exact-size copy so that any read past the end is caught. */
    char *text = malloc(size ? size : 1);
    CHECK(text != NULL);
    if (size) memcpy(text, data, size);
    check_sub_text(text, size);
    check_def_text(text, size);
    free(text);
    check_roundtrip_fields(data, size);
    return 0;
}
