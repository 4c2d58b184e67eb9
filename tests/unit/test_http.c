/*
 * Unit tests for the http module: request heads (happy paths, resumption,
 * every error status, smuggling defences, derived fields), the chunked
 * decoder, percent-decoding and query lookup.
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
#include "http.h"

static const http_limits default_limits = { .max_head_bytes = 8192, .max_uri_bytes = 2048 };

static int parse_lim(const char *s, size_t len, const http_limits *lim, http_request *req) {
    return http_parse_head(s, len, 0, lim, req);
}

static int parse(const char *s, http_request *req) {
    return parse_lim(s, strlen(s), &default_limits, req);
}

/* Parses s and expects HTTP_BAD with the given status. */
static void expect_status(const char *s, int status) {
    http_request req;
    int rc = parse(s, &req);
    if (rc != HTTP_BAD || req.error_status != status)
        fail_msg("for %s: rc %d status %d, expected status %d", s, rc, req.error_status, status);
    assert_non_null(req.error_reason);
}

static void expect_ok(const char *s) {
    http_request req;
    int rc = parse(s, &req);
    if (rc != (int)strlen(s)) fail_msg("for %s: rc %d status %d", s, rc, req.error_status);
}

static void assert_slice(skv_slice s, const char *want) {
    if (!skv_slice_eq_cstr(s, want))
        fail_msg("slice '%.*s' != '%s'", (int)s.len, s.ptr ? s.ptr : "", want);
}

/* Offset of a slice into buf, or -1 for a NULL slice. */
static long off(skv_slice s, const char *buf) { return s.ptr ? (long)(s.ptr - buf) : -1; }

static void assert_same_slice(skv_slice a, const char *abuf, skv_slice b, const char *bbuf) {
    assert_int_equal(off(a, abuf), off(b, bbuf));
    assert_int_equal(a.len, b.len);
}

/* Two parses of equal bytes (possibly at different addresses) agree. */
static void assert_same_request(const http_request *a, const char *abuf, const http_request *b,
                                const char *bbuf) {
    assert_int_equal(a->method, b->method);
    assert_same_slice(a->method_name, abuf, b->method_name, bbuf);
    assert_same_slice(a->target, abuf, b->target, bbuf);
    assert_same_slice(a->path, abuf, b->path, bbuf);
    assert_same_slice(a->query, abuf, b->query, bbuf);
    assert_int_equal(a->minor_version, b->minor_version);
    assert_int_equal(a->num_headers, b->num_headers);
    for (size_t i = 0; i < a->num_headers; i++) {
        assert_same_slice(a->headers[i].name, abuf, b->headers[i].name, bbuf);
        assert_same_slice(a->headers[i].value, abuf, b->headers[i].value, bbuf);
    }
    assert_int_equal(a->content_length, b->content_length);
    assert_int_equal(a->chunked, b->chunked);
    assert_int_equal(a->keep_alive, b->keep_alive);
    assert_int_equal(a->expect_continue, b->expect_continue);
    assert_same_slice(a->host, abuf, b->host, bbuf);
    assert_same_slice(a->content_type, abuf, b->content_type, bbuf);
    assert_same_slice(a->if_match, abuf, b->if_match, bbuf);
    assert_same_slice(a->if_none_match, abuf, b->if_none_match, bbuf);
    assert_same_slice(a->idempotency_key, abuf, b->idempotency_key, bbuf);
}

/* ---- heads: happy paths -------------------------------------------------- */

static void test_simple_get(void **state) {
    (void)state;
    const char *s = "GET /v1/kv/a%20b?x=1&y HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\n\r\n";
    http_request req;
    assert_int_equal(parse(s, &req), (int)strlen(s));
    assert_int_equal(req.method, HTTP_M_GET);
    assert_slice(req.method_name, "GET");
    assert_slice(req.target, "/v1/kv/a%20b?x=1&y");
    assert_slice(req.path, "/v1/kv/a%20b");
    assert_slice(req.query, "x=1&y");
    assert_int_equal(req.minor_version, 1);
    assert_int_equal(req.num_headers, 2);
    assert_slice(req.headers[0].name, "Host");
    assert_slice(req.headers[0].value, "example.com");
    assert_slice(req.headers[1].name, "User-Agent");
    assert_slice(req.headers[1].value, "t");
    assert_slice(req.host, "example.com");
    assert_int_equal(req.content_length, -1);
    assert_int_equal(req.chunked, 0);
    assert_int_equal(req.keep_alive, 1);
    assert_int_equal(req.expect_continue, 0);
    assert_null(req.content_type.ptr);
    assert_int_equal(req.content_type.len, 0);
    assert_null(req.if_match.ptr);
    assert_null(req.if_none_match.ptr);
    assert_null(req.idempotency_key.ptr);
}

static void test_no_query(void **state) {
    (void)state;
    http_request req;
    assert_true(parse("GET /a HTTP/1.1\r\nHost: h\r\n\r\n", &req) > 0);
    assert_slice(req.path, "/a");
    assert_int_equal(req.query.len, 0);
    assert_true(parse("GET /a? HTTP/1.1\r\nHost: h\r\n\r\n", &req) > 0);
    assert_slice(req.path, "/a");
    assert_int_equal(req.query.len, 0);
}

static void test_pipelined(void **state) {
    (void)state;
    const char *a = "PUT /v1/kv/k HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n";
    const char *b = "GET /v1/kv/k HTTP/1.1\r\nHost: h\r\n\r\n";
    char buf[256];
    snprintf(buf, sizeof buf, "%sabc%s", a, b);
    http_request req;
    int n = parse_lim(buf, strlen(buf), &default_limits, &req);
    assert_int_equal(n, (int)strlen(a));
    assert_int_equal(req.method, HTTP_M_PUT);
    assert_int_equal(req.content_length, 3);
    assert_memory_equal(buf + n, "abc", 3);
    const char *rest = buf + n + 3;
    int m = parse_lim(rest, strlen(rest), &default_limits, &req);
    assert_int_equal(m, (int)strlen(b));
    assert_int_equal(req.method, HTTP_M_GET);
    assert_slice(req.path, "/v1/kv/k");
}

/* Feeds s one more byte per call with prev_len and checks the outcome
 * against a one-shot parse. */
static void check_bytewise(const char *s, size_t len) {
    http_request one, inc;
    int want = parse_lim(s, len, &default_limits, &one);
    char *copy = malloc(len);
    memcpy(copy, s, len);
    int got = HTTP_NEED_MORE;
    size_t prev = 0;
    for (size_t n = 1; n <= len; n++) {
        got = http_parse_head(copy, n, prev, &default_limits, &inc);
        if (got != HTTP_NEED_MORE) break;
        prev = n;
    }
    assert_int_equal(got, want);
    if (want > 0) assert_same_request(&one, s, &inc, copy);
    else if (want == HTTP_BAD) assert_int_equal(one.error_status, inc.error_status);
    free(copy);
}

static void test_bytewise_same_as_oneshot(void **state) {
    (void)state;
    static const char *const cases[] = {
        "GET / HTTP/1.1\r\nHost: h\r\n\r\n",
        ("POST /x?y=%41 HTTP/1.0\r\nContent-Length: 12\r\nContent-Type: text/plain\r\n"
         "Connection: keep-alive\r\n\r\n"),
        "PUT /k HTTP/1.1\nHost: h\nTransfer-Encoding: chunked\n\n",
        "\r\nGET /after-crlf HTTP/1.1\r\nHost: h\r\nIf-Match: \"e\"\r\n\r\n",
        "DELETE /k HTTP/1.1\r\nHost: h\r\nIdempotency-Key: abc\r\n\n",
        "GET /bad HTTP/1.1\r\nHost: h\r\nX : y\r\n\r\n",
        "GET / HTTP/2.0\r\nHost: h\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_bytewise(cases[i], strlen(cases[i]));
}

static void test_bytewise_limits(void **state) {
    (void)state;
    char buf[4096];
    /* target over 2048 -> 414 both ways */
    int n = snprintf(buf, sizeof buf, "GET /%0*d HTTP/1.1\r\nHost: h\r\n\r\n", 2100, 0);
    check_bytewise(buf, (size_t)n);
    /* request line without end over the limit: 414 before the end arrives */
    memset(buf, 'a', sizeof buf);
    memcpy(buf, "GET /", 5);
    http_request req;
    assert_int_equal(http_parse_head(buf, 2048 + 33, 100, &default_limits, &req), HTTP_BAD);
    assert_int_equal(req.error_status, 414);
    assert_int_equal(http_parse_head(buf, 2048 + 32, 100, &default_limits, &req), HTTP_NEED_MORE);
}

static void test_need_more(void **state) {
    (void)state;
    http_request req;
    assert_int_equal(parse("", &req), HTTP_NEED_MORE);
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: h\r\n", &req), HTTP_NEED_MORE);
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: h\r\n\r", &req), HTTP_NEED_MORE);
    assert_int_equal(parse("\r\n", &req), HTTP_NEED_MORE);
    /* prev_len larger than len is not trusted */
    const char *s = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
    assert_int_equal(http_parse_head(s, strlen(s), 1000, &default_limits, &req), (int)strlen(s));
}

static void test_leading_empty_line(void **state) {
    (void)state;
    http_request req;
    const char *s = "\r\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n";
    assert_int_equal(parse(s, &req), (int)strlen(s));
    assert_slice(req.path, "/x");
    s = "\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n";
    assert_int_equal(parse(s, &req), (int)strlen(s));
    /* only one empty line is forgiven */
    expect_status("\r\n\r\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    expect_status("\r\n\r\n", 400);
}

static void test_bare_lf(void **state) {
    (void)state;
    http_request req;
    const char *s = "GET /lf HTTP/1.1\nHost: h\nX-A: b\n\n";
    assert_int_equal(parse(s, &req), (int)strlen(s));
    assert_int_equal(req.num_headers, 2);
    assert_slice(req.headers[1].value, "b");
    s = "GET /lf HTTP/1.1\r\nHost: h\n\r\n";
    assert_int_equal(parse(s, &req), (int)strlen(s));
}

static void test_methods(void **state) {
    (void)state;
    static const struct { const char *name; int m; } cases[] = {
        { "GET", HTTP_M_GET },       { "HEAD", HTTP_M_HEAD },       { "POST", HTTP_M_POST },
        { "PUT", HTTP_M_PUT },       { "DELETE", HTTP_M_DELETE },   { "OPTIONS", HTTP_M_OPTIONS },
        { "PATCH", HTTP_M_PATCH },   { "PROPFIND", HTTP_M_OTHER },  { "get", HTTP_M_OTHER },
        { "GETX", HTTP_M_OTHER },    { "X-Custom!", HTTP_M_OTHER },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[128];
        snprintf(buf, sizeof buf, "%s /m HTTP/1.1\r\nHost: h\r\n\r\n", cases[i].name);
        http_request req;
        assert_int_equal(parse(buf, &req), (int)strlen(buf));
        assert_int_equal(req.method, cases[i].m);
        assert_slice(req.method_name, cases[i].name);
    }
    for (int m = 0; m < HTTP_M__COUNT; m++) {
        const char *name = http_method_name(m);
        assert_non_null(name);
        if (m != HTTP_M_OTHER) assert_int_equal(http_method_from_slice(skv_slice_cstr(name)), m);
    }
    assert_string_equal(http_method_name(HTTP_M_OTHER), "OTHER");
    assert_string_equal(http_method_name(HTTP_M_DELETE), "DELETE");
    assert_string_equal(http_method_name(99), "OTHER");
    assert_string_equal(http_method_name(-1), "OTHER");
    expect_status("G(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    expect_status(" GET / HTTP/1.1\r\nHost: h\r\n\r\n", 400);
}

static void test_status_reasons(void **state) {
    (void)state;
    static const int codes[] = { 100, 200, 201, 202, 204, 206, 301, 304, 400, 401, 403, 404, 405,
                                 408, 409, 411, 412, 413, 414, 415, 416, 417, 422, 429, 431, 500,
                                 501, 503, 505, 507 };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *r = http_status_reason(codes[i]);
        assert_non_null(r);
        if (strcmp(r, "Unknown") == 0) fail_msg("no reason for %d", codes[i]);
    }
    assert_string_equal(http_status_reason(200), "OK");
    assert_string_equal(http_status_reason(404), "Not Found");
    assert_string_equal(http_status_reason(431), "Request Header Fields Too Large");
    assert_string_equal(http_status_reason(799), "Unknown");
    assert_string_equal(http_status_reason(-1), "Unknown");
}

static void test_request_target_forms(void **state) {
    (void)state;
    http_request req;
    assert_true(parse("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", &req) > 0);
    assert_slice(req.target, "*");
    assert_slice(req.path, "*");
    expect_status("GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    /* absolute-form is accepted (RFC 9112 3.2.2): routing uses its path */
    assert_true(parse("GET http://h:8000/v1/kv/a?x=1 HTTP/1.1\r\nHost: h\r\n\r\n", &req) > 0);
    assert_slice(req.target, "http://h:8000/v1/kv/a?x=1");
    assert_slice(req.path, "/v1/kv/a");
    assert_slice(req.query, "x=1");
    assert_true(parse("GET HTTPS://h/ HTTP/1.1\r\nHost: h\r\n\r\n", &req) > 0);
    assert_slice(req.path, "/");
    expect_status("GET http://h HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    expect_status("GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    expect_status("GET ftp://h/x HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    expect_status("GET x HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    expect_status("GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    expect_status("GET / HTTP/1.1 \r\nHost: h\r\n\r\n", 400);
    expect_status("GET /a\x01 HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    expect_status("GET /a\x7f HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    expect_status("GET /\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    expect_status("GET /\tx HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    expect_status("GET /\n\n", 400);
    expect_status("GET\r\n\r\n", 400);
}

static void test_versions(void **state) {
    (void)state;
    http_request req;
    assert_true(parse("GET / HTTP/1.0\r\n\r\n", &req) > 0);
    assert_int_equal(req.minor_version, 0);
    assert_true(parse("GET / HTTP/1.2\r\nHost: h\r\n\r\n", &req) > 0);
    assert_int_equal(req.minor_version, 1);
    expect_status("GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505);
    expect_status("GET / HTTP/0.9\r\n\r\n", 505);
    expect_status("GET / HTTP/3.1\r\n\r\n", 505);
    expect_status("GET / HTTP/1.10\r\nHost: h\r\n\r\n", 400);
    expect_status("GET / http/1.1\r\nHost: h\r\n\r\n", 400);
    expect_status("GET / HTTP/1\r\nHost: h\r\n\r\n", 400);
    expect_status("GET / HTTP/1.x\r\nHost: h\r\n\r\n", 400);
    expect_status("GET /\r\nHost: h\r\n\r\n", 400);
    expect_status("GET / HTTP/1.1\rX\r\n\r\n", 400);
}

static void test_valid_variants(void **state) {
    (void)state;
    expect_ok("GET /a/b/c?d=e&f=g HTTP/1.1\r\nHost: h\r\n\r\n");
    expect_ok("GET /~user/!$&'()*+,;=:@-._ HTTP/1.1\r\nHost: h\r\n\r\n");
    expect_ok("GET / HTTP/1.1\r\nHost: h\r\nX-Weird_Name!#$%&'*+.^`|~: v\r\n\r\n");
    expect_ok("GET / HTTP/1.1\r\nHost: h\r\nX-Tab:\tv\tw\t\r\n\r\n");
    expect_ok("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 007\r\n\r\n");
    expect_ok("GET / HTTP/1.1\r\nHost: h\r\nUser-Agent: \"quoted\" (comment) \x80\xff\r\n\r\n");
}

/* ---- heads: limits ----------------------------------------------------- */

static void test_uri_too_long(void **state) {
    (void)state;
    http_limits lim = { .max_head_bytes = 1024, .max_uri_bytes = 64 };
    char buf[2048];
    http_request req;
    int n = snprintf(buf, sizeof buf, "GET /%0*d HTTP/1.1\r\nHost: h\r\n\r\n", 63, 0);
    assert_int_equal(parse_lim(buf, (size_t)n, &lim, &req), n); /* target exactly 64 */
    n = snprintf(buf, sizeof buf, "GET /%0*d HTTP/1.1\r\nHost: h\r\n\r\n", 64, 0);
    assert_int_equal(parse_lim(buf, (size_t)n, &lim, &req), HTTP_BAD);
    assert_int_equal(req.error_status, 414);
    /* complete request line, head still incomplete */
    n = snprintf(buf, sizeof buf, "GET /%0*d HTTP/1.1\r\nHost: h\r\nX-Pad: %0*d", 80, 0, 10, 0);
    assert_int_equal(parse_lim(buf, (size_t)n, &lim, &req), HTTP_BAD);
    assert_int_equal(req.error_status, 414);
    /* partial request line already over max_uri + 32 */
    n = snprintf(buf, sizeof buf, "GET /%0*d", 100, 0);
    assert_int_equal(parse_lim(buf, (size_t)n, &lim, &req), HTTP_BAD);
    assert_int_equal(req.error_status, 414);
    assert_int_equal(parse_lim(buf, 64 + 32, &lim, &req), HTTP_NEED_MORE);
}

static void test_head_too_large(void **state) {
    (void)state;
    http_limits lim = { .max_head_bytes = 256, .max_uri_bytes = 64 };
    char buf[1024];
    http_request req;
    int n = snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\nHost: h\r\nX-Big: %0*d\r\n\r\n", 300, 0);
    assert_int_equal(parse_lim(buf, (size_t)n, &lim, &req), HTTP_BAD);
    assert_int_equal(req.error_status, 431);
    /* incomplete head over the limit: no need to wait for the end */
    assert_int_equal(parse_lim(buf, 257, &lim, &req), HTTP_BAD);
    assert_int_equal(req.error_status, 431);
    assert_int_equal(parse_lim(buf, 256, &lim, &req), HTTP_NEED_MORE);
    /* a head of exactly max_head_bytes is fine */
    n = snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\nHost: h\r\nX: %0*d\r\n\r\n", 256 - 32, 0);
    assert_int_equal(n, 256);
    assert_int_equal(parse_lim(buf, (size_t)n, &lim, &req), 256);
}

static void test_too_many_headers(void **state) {
    (void)state;
    char buf[4096];
    size_t n = (size_t)snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\nHost: h\r\n");
    for (int i = 1; i < HTTP_MAX_HEADERS; i++) n += (size_t)snprintf(buf + n, sizeof buf - n, "X-%d: v\r\n", i);
    snprintf(buf + n, sizeof buf - n, "\r\n");
    http_request req;
    assert_int_equal(parse(buf, &req), (int)strlen(buf));
    assert_int_equal(req.num_headers, HTTP_MAX_HEADERS);
    n += (size_t)snprintf(buf + n, sizeof buf - n, "X-last: v\r\n\r\n");
    expect_status(buf, 431);
}

/* ---- heads: smuggling defences ----------------------------------------- */

static void test_transfer_encoding(void **state) {
    (void)state;
    http_request req;
    assert_true(parse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", &req) > 0);
    assert_int_equal(req.chunked, 1);
    assert_int_equal(req.content_length, -1);
    assert_true(parse("POST / HTTP/1.1\r\nHost: h\r\ntransfer-encoding: ChUnKeD \r\n\r\n", &req) > 0);
    assert_int_equal(req.chunked, 1);
    expect_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 501);
    expect_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501);
    expect_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 501);
    expect_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n", 400);
    expect_status("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
}

static void test_cl_and_te(void **state) {
    (void)state;
    expect_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
    expect_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400);
}

static void test_content_length(void **state) {
    (void)state;
    http_request req;
    assert_true(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", &req) > 0);
    assert_int_equal(req.content_length, 0);
    assert_true(parse("POST / HTTP/1.1\r\nHost: h\r\ncontent-length: 9223372036854775807\r\n\r\n", &req) > 0);
    assert_int_equal(req.content_length, INT64_MAX);
    assert_true(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n", &req) > 0);
    assert_int_equal(req.content_length, 7);
    expect_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 7\r\nContent-Length: 8\r\n\r\n", 400);
    static const char *const bad[] = { "+5", "1 2", "-1", "", "0x10", "5,5", "5;", "9223372036854775808",
                                       "18446744073709551620", "18446744073709551616", "92233720368547758070",
                                       "99999999999999999999999" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char buf[256];
        snprintf(buf, sizeof buf, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: %s\r\n\r\n", bad[i]);
        expect_status(buf, 400);
    }
}

static void test_malformed_header_lines(void **state) {
    (void)state;
    /* obsolete line folding */
    expect_status("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n b\r\n\r\n", 400);
    expect_status("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n\tb\r\n\r\n", 400);
    /* whitespace before the colon */
    expect_status("GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400);
    expect_status("GET / HTTP/1.1\r\nHost: h\r\nContent-Length\t: 5\r\n\r\n", 400);
    /* no colon, empty name, bad name byte */
    expect_status("GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", 400);
    expect_status("GET / HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n", 400);
    expect_status("GET / HTTP/1.1\r\nHost: h\r\nX(y): v\r\n\r\n", 400);
    /* bare CR inside a value and as a line end */
    expect_status("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n", 400);
    expect_status("GET / HTTP/1.1\r\nHost: h\rX-A: b\r\n\r\n", 400);
    expect_status("GET / HTTP/1.1\r\nHost: h\r\n\r\r\n\r\n", 400);
    /* controls in values */
    expect_status("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x7f\r\n\r\n", 400);
    expect_status("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x01\r\n\r\n", 400);
}

static void test_nul_in_value(void **state) {
    (void)state;
    static const char s[] = "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\0b\r\n\r\n";
    http_request req;
    assert_int_equal(parse_lim(s, sizeof s - 1, &default_limits, &req), HTTP_BAD);
    assert_int_equal(req.error_status, 400);
    static const char t[] = "GET /\0 HTTP/1.1\r\nHost: h\r\n\r\n";
    assert_int_equal(parse_lim(t, sizeof t - 1, &default_limits, &req), HTTP_BAD);
    assert_int_equal(req.error_status, 400);
}

static void test_value_trimming_and_obs_text(void **state) {
    (void)state;
    http_request req;
    assert_true(parse("GET / HTTP/1.1\r\nHost:h\r\nX-A: \t a b \t \r\nX-E:\r\nX-F:   \r\nX-U: caf\xc3\xa9\r\n\r\n",
                      &req) > 0);
    assert_slice(req.host, "h");
    assert_slice(http_header_get(&req, "x-a"), "a b");
    skv_slice e = http_header_get(&req, "X-E");
    assert_non_null(e.ptr);
    assert_int_equal(e.len, 0);
    assert_int_equal(http_header_get(&req, "x-f").len, 0);
    assert_slice(http_header_get(&req, "X-U"), "caf\xc3\xa9");
}

static void test_host_rules(void **state) {
    (void)state;
    http_request req;
    expect_status("GET / HTTP/1.1\r\n\r\n", 400);
    expect_status("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
    assert_true(parse("GET / HTTP/1.0\r\n\r\n", &req) > 0);
    assert_null(req.host.ptr);
    assert_true(parse("GET / HTTP/1.1\r\nHost:\r\n\r\n", &req) > 0);
    assert_non_null(req.host.ptr);
    assert_int_equal(req.host.len, 0);
    assert_true(parse("GET / HTTP/1.1\r\nhOsT: x:81\r\n\r\n", &req) > 0);
    assert_slice(req.host, "x:81");
}

/* ---- heads: derived fields --------------------------------------------- */

static int keep_alive_of(const char *s) {
    http_request req;
    int rc = parse(s, &req);
    if (rc <= 0) fail_msg("parse of %s failed: %d", s, rc);
    return req.keep_alive;
}

static void test_keep_alive(void **state) {
    (void)state;
    assert_int_equal(keep_alive_of("GET / HTTP/1.1\r\nHost: h\r\n\r\n"), 1);
    assert_int_equal(keep_alive_of("GET / HTTP/1.0\r\n\r\n"), 0);
    assert_int_equal(keep_alive_of("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"), 0);
    assert_int_equal(keep_alive_of("GET / HTTP/1.1\r\nHost: h\r\nConnection: CLOSE\r\n\r\n"), 0);
    assert_int_equal(keep_alive_of("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), 1);
    assert_int_equal(keep_alive_of("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), 1);
    assert_int_equal(keep_alive_of("GET / HTTP/1.0\r\nConnection: keep-alive, Upgrade\r\n\r\n"), 1);
    assert_int_equal(keep_alive_of("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive ,close\r\n\r\n"), 0);
    assert_int_equal(keep_alive_of("GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\n\r\n"), 1);
    assert_int_equal(keep_alive_of("GET / HTTP/1.0\r\nConnection: Upgrade, ,\r\n\r\n"), 0);
    assert_int_equal(keep_alive_of("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n"
                                   "Connection: close\r\n\r\n"), 0);
    assert_int_equal(keep_alive_of("GET / HTTP/1.1\r\nHost: h\r\nConnection: closed\r\n\r\n"), 1);
}

static void test_derived_headers(void **state) {
    (void)state;
    http_request req;
    const char *s = "PUT /v1/kv/k HTTP/1.1\r\n"
                    "HOST: node1\r\n"
                    "content-type: application/json\r\n"
                    "If-Match: \"abc\"\r\n"
                    "if-none-match: *\r\n"
                    "Idempotency-Key:  key-1 \r\n"
                    "Content-Length: 42\r\n"
                    "Content-Type: text/plain\r\n"
                    "\r\n";
    assert_int_equal(parse(s, &req), (int)strlen(s));
    assert_slice(req.host, "node1");
    assert_slice(req.content_type, "application/json"); /* first one wins */
    assert_slice(req.if_match, "\"abc\"");
    assert_slice(req.if_none_match, "*");
    assert_slice(req.idempotency_key, "key-1");
    assert_int_equal(req.content_length, 42);
    assert_int_equal(req.num_headers, 7);
}

static void test_expect(void **state) {
    (void)state;
    http_request req;
    assert_true(parse("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n", &req) > 0);
    assert_int_equal(req.expect_continue, 1);
    assert_true(parse("PUT / HTTP/1.1\r\nHost: h\r\nexpect: 100-Continue\r\n\r\n", &req) > 0);
    assert_int_equal(req.expect_continue, 1);
    assert_true(parse("PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", &req) > 0);
    assert_int_equal(req.expect_continue, 0); /* HTTP/1.0: ignored */
    expect_status("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n", 417);
    expect_status("PUT / HTTP/1.1\r\nHost: h\r\nExpect:\r\n\r\n", 417);
    /* framing errors come first */
    expect_status("PUT / HTTP/1.1\r\nExpect: foo\r\n\r\n", 400);
}

static void test_header_get(void **state) {
    (void)state;
    http_request req;
    assert_true(parse("GET / HTTP/1.1\r\nHost: h\r\nX-Dup: 1\r\nx-dup: 2\r\n\r\n", &req) > 0);
    assert_slice(http_header_get(&req, "X-DUP"), "1");
    assert_slice(http_header_get(&req, "host"), "h");
    skv_slice none = http_header_get(&req, "X-None");
    assert_null(none.ptr);
    assert_int_equal(none.len, 0);
    assert_null(http_header_get(&req, "X-Du").ptr);
}

/* ---- chunked bodies ----------------------------------------------------- */

/* Decodes in[0..len) in one call. */
static long chunked_all(const char *in, size_t len, size_t max_body, skv_buf *out, int *done) {
    http_chunked c;
    http_chunked_init(&c);
    return http_chunked_feed(&c, in, len, out, max_body, done);
}

/* Decodes in[0..len) one byte per call; returns bytes consumed or error. */
static long chunked_bytewise(const char *in, size_t len, size_t max_body, skv_buf *out, int *done) {
    http_chunked c;
    http_chunked_init(&c);
    *done = 0;
    size_t i = 0;
    while (i < len && !*done) {
        long r = http_chunked_feed(&c, in + i, 1, out, max_body, done);
        if (r < 0) return r;
        assert_true(r == 1 || (r == 0 && *done));
        i += (size_t)r;
    }
    return (long)i;
}

static void check_chunked_n(const char *in, size_t len, const char *body, size_t body_len,
                            size_t trailing) {
    skv_buf a, b;
    skv_buf_init(&a);
    skv_buf_init(&b);
    int da = 0, db = 0;
    long ra = chunked_all(in, len, 1 << 20, &a, &da);
    long rb = chunked_bytewise(in, len, 1 << 20, &b, &db);
    assert_int_equal(ra, (long)(len - trailing));
    assert_int_equal(rb, ra);
    assert_int_equal(da, 1);
    assert_int_equal(db, 1);
    assert_int_equal(a.len, body_len);
    assert_int_equal(b.len, body_len);
    if (body_len) {
        assert_memory_equal(a.data, body, body_len);
        assert_memory_equal(b.data, body, body_len);
    }
    skv_buf_free(&a);
    skv_buf_free(&b);
}

static void check_chunked(const char *in, const char *body, size_t trailing) {
    check_chunked_n(in, strlen(in), body, strlen(body), trailing);
}

static void test_chunked_basic(void **state) {
    (void)state;
    check_chunked("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world", 0);
    check_chunked("0\r\n\r\n", "", 0);
    check_chunked("A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n", "0123456789abcdefghij", 0);
    check_chunked("000003\r\nabc\r\n00\r\n\r\n", "abc", 0);
    /* bytes after the body belong to the next request */
    check_chunked("3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n", "abc", 16);
}

static void test_chunked_ext_and_trailers(void **state) {
    (void)state;
    check_chunked("3;name=value\r\nabc\r\n2 ; x=\"q y\"\r\nde\r\n0;last\r\n\r\n", "abcde", 0);
    check_chunked("3\r\nabc\r\n0\r\nX-Checksum: 1234\r\nX-Other:  v \r\n\r\n", "abc", 0);
    static const char nul[] = "3\r\na\0b\r\n0\r\n\r\n"; /* data is binary */
    check_chunked_n(nul, sizeof nul - 1, "a\0b", 3, 0);
}

static void test_chunked_done_and_sticky_error(void **state) {
    (void)state;
    http_chunked c;
    skv_buf out;
    skv_buf_init(&out);
    int done = 0;
    http_chunked_init(&c);
    const char *in = "2\r\nab\r\n0\r\n\r\nXYZ";
    assert_int_equal(http_chunked_feed(&c, in, strlen(in), &out, 100, &done), 12);
    assert_int_equal(done, 1);
    assert_int_equal(c.total, 2);
    assert_int_equal(http_chunked_feed(&c, "XYZ", 3, &out, 100, &done), 0);
    assert_int_equal(done, 1);
    /* an error sticks */
    http_chunked_init(&c);
    assert_int_equal(http_chunked_feed(&c, "zz", 2, &out, 100, &done), HTTP_BAD);
    assert_int_equal(done, 0);
    assert_int_equal(http_chunked_feed(&c, "0\r\n\r\n", 5, &out, 100, &done), HTTP_BAD);
    /* incomplete input is consumed and remembered */
    http_chunked_init(&c);
    skv_buf_reset(&out);
    assert_int_equal(http_chunked_feed(&c, "4\r\nab", 5, &out, 100, &done), 5);
    assert_int_equal(done, 0);
    assert_int_equal(http_chunked_feed(&c, "cd\r\n0\r\n\r\n", 9, &out, 100, &done), 9);
    assert_int_equal(done, 1);
    assert_int_equal(out.len, 4);
    assert_memory_equal(out.data, "abcd", 4);
    assert_int_equal(http_chunked_feed(&c, "", 0, &out, 100, &done), 0);
    assert_int_equal(done, 1);
    skv_buf_free(&out);
}

static void check_chunked_error(const char *in, size_t len, size_t max_body, long want) {
    skv_buf out;
    skv_buf_init(&out);
    int done = 0;
    long r = chunked_all(in, len, max_body, &out, &done);
    if (r != want) fail_msg("whole: %ld != %ld for %s", r, want, in);
    skv_buf_reset(&out);
    r = chunked_bytewise(in, len, max_body, &out, &done);
    if (r != want) fail_msg("bytewise: %ld != %ld for %s", r, want, in);
    skv_buf_free(&out);
}

static void test_chunked_too_big(void **state) {
    (void)state;
    const char *in = "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    check_chunked_error(in, strlen(in), 10, SKV_ETOOBIG);
    check_chunked_error(in, strlen(in), 5, SKV_ETOOBIG);
    /* exactly the limit is fine */
    skv_buf out;
    skv_buf_init(&out);
    int done = 0;
    assert_int_equal(chunked_all(in, strlen(in), 11, &out, &done), (long)strlen(in));
    assert_int_equal(done, 1);
    skv_buf_free(&out);
    /* a huge announced size is refused before its data arrives */
    check_chunked_error("ffffffff\r\n", 10, 1 << 20, SKV_ETOOBIG);
}

static void test_chunked_bad_framing(void **state) {
    (void)state;
    static const char *const bad[] = {
        "g\r\n",                       /* not hex */
        "\r\n",                        /* no digits */
        "-1\r\n",
        "0x5\r\nhello\r\n0\r\n\r\n",
        "5\nhello\r\n0\r\n\r\n",       /* bare LF after size */
        "5\r\nhelloX\r\n0\r\n\r\n",    /* data longer than announced */
        "5\r\nhello\n0\r\n\r\n",       /* bare LF after data */
        "5\r\nhello\r\n0\r\n\n",       /* bare LF at the end */
        "5 \r\nhello\r\n0\r\n\r\n",    /* whitespace without extension */
        "5;a\nb\r\n",                  /* LF inside an extension */
        "5;a\x01\r\n",                 /* control in an extension */
        "0\r\nX-T: a\nb\r\n\r\n",      /* bare LF in a trailer */
        "0\r\n folded\r\n\r\n",        /* trailer starting with whitespace */
        "0\r\nNoColon\r\n\r\n",
        "0\r\nX-T: a\x01\r\n\r\n",
        "0\r\n\rx",
        "10000000000000000\r\n",       /* 2^64: overflow */
        "fffffffffffffffff\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) check_chunked_error(bad[i], strlen(bad[i]), SIZE_MAX, HTTP_BAD);
}

static void test_chunked_line_limits(void **state) {
    (void)state;
    /* size line: 4096 bytes is fine, 4097 is not */
    size_t n = 4096;
    char *in = malloc(n + 64);
    memset(in, '0', n);
    memcpy(in + n - 1, "3", 1);
    memcpy(in + n, "\r\nabc\r\n0\r\n\r\n", 12);
    skv_buf out;
    skv_buf_init(&out);
    int done = 0;
    assert_int_equal(chunked_all(in, n + 12, 100, &out, &done), (long)(n + 12));
    assert_int_equal(done, 1);
    memset(in, '0', n);
    memcpy(in + n, "3\r\nabc\r\n0\r\n\r\n", 13);
    check_chunked_error(in, n + 13, 100, HTTP_BAD);
    /* extension pushes the line over the limit */
    memcpy(in, "3;", 2);
    memset(in + 2, 'e', n);
    memcpy(in + n + 2, "\r\n", 2);
    check_chunked_error(in, n + 4, 100, HTTP_BAD);
    /* trailer line of exactly the limit, then one over it */
    memcpy(in, "0\r\nX:", 5);
    memset(in + 5, 'v', n - 2);
    memcpy(in + n + 3, "\r\n\r\n", 4);
    assert_int_equal(chunked_all(in, n + 7, 100, &out, &done), (long)(n + 7));
    assert_int_equal(done, 1);
    memcpy(in, "0\r\nX:", 5);
    memset(in + 5, 'v', n);
    memcpy(in + n + 5, "\r\n\r\n", 4);
    check_chunked_error(in, n + 9, 100, HTTP_BAD);
    free(in);
    skv_buf_free(&out);
}

/* ---- url decoding and queries ------------------------------------------ */

static void test_url_decode(void **state) {
    (void)state;
    skv_buf out;
    skv_buf_init(&out);
    assert_int_equal(http_url_decode(SKV_SLICE_LIT("a%20b%2Fc+d"), 0, &out), 0);
    assert_string_equal(out.data, "a b/c+d");
    skv_buf_reset(&out);
    assert_int_equal(http_url_decode(SKV_SLICE_LIT("a+b%2B"), 1, &out), 0);
    assert_string_equal(out.data, "a b+");
    skv_buf_reset(&out);
    assert_int_equal(http_url_decode(SKV_SLICE_LIT("%00x%fF%C3%a9"), 0, &out), 0);
    assert_int_equal(out.len, 5);
    assert_memory_equal(out.data, "\0x\xff\xc3\xa9", 5);
    /* appends */
    skv_buf_reset(&out);
    skv_buf_append_cstr(&out, "pre-");
    assert_int_equal(http_url_decode(SKV_SLICE_LIT("x"), 0, &out), 0);
    assert_string_equal(out.data, "pre-x");
    assert_int_equal(http_url_decode(skv_slice_make(NULL, 0), 0, &out), 0);
    assert_string_equal(out.data, "pre-x");
    /* malformed escapes leave out untouched */
    static const char *const bad[] = { "%G1", "%4", "%", "ab%", "%%41", "%4g", "x%1" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(http_url_decode(skv_slice_cstr(bad[i]), 0, &out), SKV_EINVAL);
        assert_string_equal(out.data, "pre-x");
        assert_int_equal(out.len, 5);
    }
    skv_buf_free(&out);
}

static void check_query(const char *q, const char *name, int want, const char *value) {
    skv_buf out;
    skv_buf_init(&out);
    int rc = http_query_get(skv_slice_cstr(q), name, &out);
    if (rc != want) fail_msg("query %s name %s: %d != %d", q, name, rc, want);
    if (want == 1) {
        assert_int_equal(out.len, strlen(value));
        if (out.len) assert_memory_equal(out.data, value, out.len);
    }
    skv_buf_free(&out);
}

static void test_query_get(void **state) {
    (void)state;
    check_query("a=1&b=2", "a", 1, "1");
    check_query("a=1&b=2", "b", 1, "2");
    check_query("a=1&b=2", "c", 0, NULL);
    check_query("a=1&b=2", "", 0, NULL);
    check_query("ab=1&a=2", "a", 1, "2");
    check_query("a=1&a=2", "a", 1, "1");
    check_query("flag&x=y", "flag", 1, "");
    check_query("x=&y=1", "x", 1, "");
    check_query("&&x=1&&", "x", 1, "1");
    check_query("v=a+b%20c%3D", "v", 1, "a b c=");
    check_query("v=a=b", "v", 1, "a=b");
    check_query("my%20key=1", "my key", 1, "1");
    check_query("my+key=1", "my key", 1, "1");
    check_query("k%4=1&k=2", "k", 1, "2");
    check_query("v=%zz", "v", SKV_EINVAL, NULL);
    check_query("v=%4", "v", SKV_EINVAL, NULL);
    check_query("", "a", 0, NULL);
    skv_buf out;
    skv_buf_init(&out);
    assert_int_equal(http_query_get(skv_slice_make(NULL, 0), "a", &out), 0);
    /* on the query slice a parsed request gives */
    http_request req;
    assert_true(parse("GET /x?limit=10&prefix=a%2Fb HTTP/1.1\r\nHost: h\r\n\r\n", &req) > 0);
    assert_int_equal(http_query_get(req.query, "prefix", &out), 1);
    assert_string_equal(out.data, "a/b");
    skv_buf_free(&out);
}

static void test_split_every_point(void **state) {
    (void)state;
    const char *s = "\r\nPOST /v1/kv/x?y=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n"
                    "Content-Type: a/b\r\nConnection: close\r\n\r\nok";
    size_t len = strlen(s);
    http_request one, two;
    int want = parse_lim(s, len, &default_limits, &one);
    assert_int_equal(want, (int)len - 2);
    for (size_t split = 0; split <= len; split++) {
        int got = http_parse_head(s, split, 0, &default_limits, &two);
        if (got == HTTP_NEED_MORE) got = http_parse_head(s, len, split, &default_limits, &two);
        assert_int_equal(got, want);
        assert_same_request(&one, s, &two, s);
    }
}

static void test_bytewise_pipelined(void **state) {
    (void)state;
    const char *s = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n";
    http_request req;
    size_t prev = 0;
    int got = HTTP_NEED_MORE;
    for (size_t n = 1; n <= strlen(s) && got == HTTP_NEED_MORE; n++) {
        got = http_parse_head(s, n, prev, &default_limits, &req);
        prev = n;
    }
    assert_int_equal(got, 28);
    assert_slice(req.path, "/1");
}

static void test_fields_reset_between_heads(void **state) {
    (void)state;
    http_request req;
    assert_true(parse("PUT /a HTTP/1.1\r\nHost: h\r\nContent-Type: x\r\nIf-Match: \"1\"\r\nIf-None-Match: *\r\n"
                      "Idempotency-Key: k\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\n", &req) > 0);
    assert_true(parse("GET /b?q HTTP/1.0\r\n\r\n", &req) > 0);
    assert_int_equal(req.num_headers, 0);
    assert_null(req.host.ptr);
    assert_null(req.content_type.ptr);
    assert_null(req.if_match.ptr);
    assert_null(req.if_none_match.ptr);
    assert_null(req.idempotency_key.ptr);
    assert_int_equal(req.content_length, -1);
    assert_int_equal(req.chunked, 0);
    assert_int_equal(req.expect_continue, 0);
    assert_int_equal(req.keep_alive, 0);
    assert_int_equal(req.error_status, 0);
    assert_slice(req.query, "q");
}

static void test_error_reasons_are_set(void **state) {
    (void)state;
    static const struct { const char *req; int status; } cases[] = {
        { "BAD\r\n\r\n", 400 },
        { "GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: br\r\n\r\n", 501 },
        { "GET / HTTP/4.0\r\n\r\n", 505 },
        { "GET / HTTP/1.1\r\nHost: h\r\nExpect: x\r\n\r\n", 417 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        http_request req;
        assert_int_equal(parse(cases[i].req, &req), HTTP_BAD);
        assert_int_equal(req.error_status, cases[i].status);
        assert_non_null(req.error_reason);
        assert_true(strlen(req.error_reason) > 0);
    }
}

/* Deterministic xorshift for the randomized-but-repeatable tests below. */
static uint32_t rng_next(uint32_t *st) {
    uint32_t x = *st;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *st = x;
}

static void test_chunked_large_random(void **state) {
    (void)state;
    uint32_t rng = 12345;
    skv_buf enc, want;
    skv_buf_init(&enc);
    skv_buf_init(&want);
    while (want.len < 100000) {
        size_t n = 1 + rng_next(&rng) % 3000;
        skv_buf_printf(&enc, (rng_next(&rng) & 1) ? "%zx" : "%zX", n);
        if (rng_next(&rng) % 4 == 0) skv_buf_append_cstr(&enc, ";e=1");
        skv_buf_append_cstr(&enc, "\r\n");
        for (size_t i = 0; i < n; i++) {
            char c = (char)rng_next(&rng);
            skv_buf_append(&enc, &c, 1);
            skv_buf_append(&want, &c, 1);
        }
        skv_buf_append_cstr(&enc, "\r\n");
    }
    skv_buf_append_cstr(&enc, "0\r\nT: v\r\n\r\n");
    check_chunked_n(enc.data, enc.len, want.data, want.len, 0);
    /* and in random pieces */
    http_chunked c;
    http_chunked_init(&c);
    skv_buf out;
    skv_buf_init(&out);
    int done = 0;
    size_t pos = 0;
    while (pos < enc.len) {
        size_t n = 1 + rng_next(&rng) % 700;
        if (n > enc.len - pos) n = enc.len - pos;
        long r = http_chunked_feed(&c, enc.data + pos, n, &out, want.len, &done);
        assert_int_equal(r, (long)n);
        pos += n;
    }
    assert_int_equal(done, 1);
    assert_int_equal(c.total, want.len);
    assert_int_equal(out.len, want.len);
    assert_memory_equal(out.data, want.data, want.len);
    skv_buf_free(&out);
    skv_buf_free(&enc);
    skv_buf_free(&want);
}

static void test_url_decode_all_bytes(void **state) {
    (void)state;
    skv_buf enc, out;
    skv_buf_init(&enc);
    skv_buf_init(&out);
    for (int i = 0; i < 256; i++) skv_buf_printf(&enc, (i & 1) ? "%%%02x" : "%%%02X", i);
    assert_int_equal(http_url_decode(skv_slice_make(enc.data, enc.len), 0, &out), 0);
    assert_int_equal(out.len, 256);
    for (int i = 0; i < 256; i++) assert_int_equal((unsigned char)out.data[i], i);
    skv_buf_free(&enc);
    skv_buf_free(&out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_get),
        cmocka_unit_test(test_no_query),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_bytewise_same_as_oneshot),
        cmocka_unit_test(test_bytewise_limits),
        cmocka_unit_test(test_need_more),
        cmocka_unit_test(test_leading_empty_line),
        cmocka_unit_test(test_bare_lf),
        cmocka_unit_test(test_methods),
        cmocka_unit_test(test_status_reasons),
        cmocka_unit_test(test_request_target_forms),
        cmocka_unit_test(test_versions),
        cmocka_unit_test(test_valid_variants),
        cmocka_unit_test(test_uri_too_long),
        cmocka_unit_test(test_head_too_large),
        cmocka_unit_test(test_too_many_headers),
        cmocka_unit_test(test_transfer_encoding),
        cmocka_unit_test(test_cl_and_te),
        cmocka_unit_test(test_content_length),
        cmocka_unit_test(test_malformed_header_lines),
        cmocka_unit_test(test_nul_in_value),
        cmocka_unit_test(test_value_trimming_and_obs_text),
        cmocka_unit_test(test_host_rules),
        cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_derived_headers),
        cmocka_unit_test(test_expect),
        cmocka_unit_test(test_header_get),
        cmocka_unit_test(test_chunked_basic),
        cmocka_unit_test(test_chunked_ext_and_trailers),
        cmocka_unit_test(test_chunked_done_and_sticky_error),
        cmocka_unit_test(test_chunked_too_big),
        cmocka_unit_test(test_chunked_bad_framing),
        cmocka_unit_test(test_chunked_line_limits),
        cmocka_unit_test(test_url_decode),
        cmocka_unit_test(test_query_get),
        cmocka_unit_test(test_split_every_point),
        cmocka_unit_test(test_bytewise_pipelined),
        cmocka_unit_test(test_fields_reset_between_heads),
        cmocka_unit_test(test_error_reasons_are_set),
        cmocka_unit_test(test_chunked_large_random),
        cmocka_unit_test(test_url_decode_all_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
