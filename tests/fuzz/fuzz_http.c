/*
 * libFuzzer target for the http module.
 *
 * For each input and two sets of limits:
 *   - parse the head in one call, and again in two calls split at an
 *     input-derived point (second call with prev_len), and require the same
 *     outcome; every slice must lie inside the head;
 *   - decode a chunked body (the bytes after a chunked head, or else the
 *     whole input) in one call and one byte per call, and require the same
 *     consumed count, status and decoded bytes;
 *   - percent-decode the target and look up a few query parameters.
 * Any disagreement aborts, which libFuzzer reports as a crash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                             \
        }                                                                        \
    } while (0)

static uint64_t fnv1a(const uint8_t *p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static void check_slice_inside(skv_slice s, const char *buf, size_t len) {
    if (s.ptr == NULL) {
        CHECK(s.len == 0);
        return;
    }
    CHECK(s.ptr >= buf && s.ptr <= buf + len);
    CHECK(s.len <= (size_t)(buf + len - s.ptr));
}

static void check_request_inside(const http_request *r, const char *buf, size_t len) {
    check_slice_inside(r->method_name, buf, len);
    check_slice_inside(r->target, buf, len);
    check_slice_inside(r->path, buf, len);
    check_slice_inside(r->query, buf, len);
    check_slice_inside(r->host, buf, len);
    check_slice_inside(r->content_type, buf, len);
    check_slice_inside(r->if_match, buf, len);
    check_slice_inside(r->if_none_match, buf, len);
    check_slice_inside(r->idempotency_key, buf, len);
    CHECK(r->num_headers <= HTTP_MAX_HEADERS);
    for (size_t i = 0; i < r->num_headers; i++) {
        check_slice_inside(r->headers[i].name, buf, len);
        check_slice_inside(r->headers[i].value, buf, len);
        CHECK(r->headers[i].name.len > 0);
    }
    CHECK(r->method >= 0 && r->method < HTTP_M__COUNT);
    CHECK(r->minor_version == 0 || r->minor_version == 1);
    CHECK(r->target.len > 0);
    CHECK(!(r->chunked && r->content_length >= 0));
}

/* Reference decimal parse: value of digits[0..n) or -1 when it is not all
 * digits or does not fit in int64_t. */
static int64_t reference_decimal(const char *digits, size_t n) {
    if (n == 0) return -1;
    for (size_t i = 0; i < n; i++)
        if (digits[i] < '0' || digits[i] > '9') return -1;
    while (n > 1 && digits[0] == '0') { digits++; n--; }
    if (n > 19) return -1;
    char tmp[20];
    memcpy(tmp, digits, n);
    tmp[n] = '\0';
    unsigned long long v = strtoull(tmp, NULL, 10);
    return v > (unsigned long long)INT64_MAX ? -1 : (int64_t)v;
}

/* The derived framing fields agree with an independent reading of the
 * header list. */
static void check_framing(const http_request *r) {
    int te = 0, cl = 0;
    for (size_t i = 0; i < r->num_headers; i++) {
        skv_slice n = r->headers[i].name, v = r->headers[i].value;
        if (skv_slice_ieq_cstr(n, "content-length")) {
            int64_t want = reference_decimal(v.ptr, v.len);
            CHECK(want >= 0 && want == r->content_length);
            cl = 1;
        } else if (skv_slice_ieq_cstr(n, "transfer-encoding")) {
            CHECK(skv_slice_ieq_cstr(v, "chunked"));
            te++;
        }
    }
    CHECK(te <= 1 && !(te && cl));
    CHECK(r->chunked == te);
    if (!cl) CHECK(r->content_length == -1);
    if (r->minor_version == 1) CHECK(r->host.ptr != NULL);
}

static void check_same_slice(skv_slice a, skv_slice b) {
    CHECK(a.ptr == b.ptr);
    CHECK(a.len == b.len);
}

static void check_same_request(const http_request *a, const http_request *b) {
    CHECK(a->method == b->method);
    check_same_slice(a->method_name, b->method_name);
    check_same_slice(a->target, b->target);
    check_same_slice(a->path, b->path);
    check_same_slice(a->query, b->query);
    CHECK(a->minor_version == b->minor_version);
    CHECK(a->num_headers == b->num_headers);
    for (size_t i = 0; i < a->num_headers; i++) {
        check_same_slice(a->headers[i].name, b->headers[i].name);
        check_same_slice(a->headers[i].value, b->headers[i].value);
    }
    CHECK(a->content_length == b->content_length);
    CHECK(a->chunked == b->chunked);
    CHECK(a->keep_alive == b->keep_alive);
    CHECK(a->expect_continue == b->expect_continue);
    check_same_slice(a->host, b->host);
    check_same_slice(a->content_type, b->content_type);
    check_same_slice(a->if_match, b->if_match);
    check_same_slice(a->if_none_match, b->if_none_match);
    check_same_slice(a->idempotency_key, b->idempotency_key);
}

/* Decodes in[0..len) as a chunked body whole and byte by byte. */
static void fuzz_chunked(const char *in, size_t len, size_t max_body) {
    skv_buf whole, bytes;
    skv_buf_init(&whole);
    skv_buf_init(&bytes);

    http_chunked c;
    int done_whole = 0;
    http_chunked_init(&c);
    long r_whole = http_chunked_feed(&c, in, len, &whole, max_body, &done_whole);
    CHECK(r_whole == HTTP_BAD || r_whole == SKV_ETOOBIG || (r_whole >= 0 && (size_t)r_whole <= len));
    CHECK(whole.len <= max_body);
    CHECK(c.total == whole.len);

    int done_bytes = 0;
    long r_bytes = 0;
    http_chunked_init(&c);
    for (size_t i = 0; i < len && !done_bytes; i++) {
        long r = http_chunked_feed(&c, in + i, 1, &bytes, max_body, &done_bytes);
        if (r < 0) {
            r_bytes = r;
            break;
        }
        CHECK(r == 1 || (r == 0 && done_bytes));
        r_bytes += r;
    }
    CHECK(r_bytes == r_whole);
    CHECK(done_bytes == done_whole);
    CHECK(whole.len == bytes.len);
    CHECK(whole.len == 0 || memcmp(whole.data, bytes.data, whole.len) == 0);
    if (done_whole) {
        /* a finished decoder consumes nothing more */
        int d = 0;
        CHECK(http_chunked_feed(&c, in, len, &bytes, max_body, &d) == 0 && d == 1);
    }
    skv_buf_free(&whole);
    skv_buf_free(&bytes);
}

static void fuzz_decoders(const http_request *req) {
    skv_buf out;
    skv_buf_init(&out);
    int rc = http_url_decode(req->path, 0, &out);
    CHECK(rc == 0 || rc == SKV_EINVAL);
    CHECK(out.len <= req->path.len);
    skv_buf_reset(&out);
    rc = http_url_decode(req->query, 1, &out);
    CHECK(rc == 0 || rc == SKV_EINVAL);
    static const char *const names[] = { "a", "key", "limit", "" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        skv_buf_reset(&out);
        rc = http_query_get(req->query, names[i], &out);
        CHECK(rc == 0 || rc == 1 || rc == SKV_EINVAL);
        CHECK(out.len <= req->query.len);
    }
    skv_buf_free(&out);
    (void)http_header_get(req, "host");
    (void)http_header_get(req, "X-Missing");
    CHECK(http_method_name(req->method) != NULL);
}

static void fuzz_with_limits(const char *buf, size_t size, const http_limits *lim, size_t split) {
    http_request one, two;
    int r1 = http_parse_head(buf, size, 0, lim, &one);
    CHECK(r1 == HTTP_NEED_MORE || r1 == HTTP_BAD || (r1 > 0 && (size_t)r1 <= size));
    if (r1 == HTTP_BAD) {
        int s = one.error_status;
        CHECK(s == 400 || s == 414 || s == 417 || s == 431 || s == 501 || s == 505);
        CHECK(one.error_reason != NULL);
    }
    if (r1 == HTTP_NEED_MORE) CHECK(size <= lim->max_head_bytes);

    int r2 = http_parse_head(buf, split, 0, lim, &two);
    if (r2 == HTTP_NEED_MORE) r2 = http_parse_head(buf, size, split, lim, &two);
    CHECK(r2 == r1);
    if (r1 == HTTP_BAD) CHECK(two.error_status == one.error_status);
    if (r1 <= 0) return;

    size_t head_len = (size_t)r1;
    CHECK(head_len <= lim->max_head_bytes);
    CHECK(one.target.len <= lim->max_uri_bytes);
    check_request_inside(&one, buf, head_len);
    check_framing(&one);
    check_same_request(&one, &two);
    fuzz_decoders(&one);
    if (one.chunked) fuzz_chunked(buf + head_len, size - head_len, 256);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* An exact-size copy so that any read past the end is caught. */
    char *buf = malloc(size ? size : 1);
    if (size) memcpy(buf, data, size);
    size_t split = size ? (size_t)(fnv1a(data, size) % (size + 1)) : 0;

    static const http_limits small = { .max_head_bytes = 512, .max_uri_bytes = 128 };
    static const http_limits large = { .max_head_bytes = 8192, .max_uri_bytes = 2048 };
    fuzz_with_limits(buf, size, &small, split);
    fuzz_with_limits(buf, size, &large, split);

    /* The chunked decoder on arbitrary bytes, with a small and a large cap. */
    fuzz_chunked(buf, size, 64);
    fuzz_chunked(buf, size, 1 << 20);

    free(buf);
    return 0;
}
