/*
 * Unit tests for the client module's pure parts: the response head parser
 * (happy paths, every strictness rule, limits), the body reader (every
 * framing, fed in one piece and byte by byte, interim 1xx answers, EOF
 * handling, limits), endpoint URLs, percent-encoding and timeouts.
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
#include "client.h"
#include "err.h"
#include "http.h"

static int parse(const char *s, client_response *res) { return client_parse_head(s, strlen(s), res); }

static void assert_slice(skv_slice s, const char *want) {
    if (!skv_slice_eq_cstr(s, want)) fail_msg("slice '%.*s' != '%s'", (int)s.len, s.ptr ? s.ptr : "", want);
}

static void expect_bad(const char *s) {
    client_response res;
    int rc = parse(s, &res);
    if (rc != SKV_EINVAL) fail_msg("for %s: rc %d, expected SKV_EINVAL", s, rc);
}

static void expect_ok(const char *s) {
    client_response res;
    int rc = parse(s, &res);
    if (rc != (int)strlen(s)) fail_msg("for %s: rc %d", s, rc);
}

/* ---- head parser -------------------------------------------------------- */

static void test_head_simple(void **state) {
    (void)state;
    const char *s = "HTTP/1.1 201 Created\r\nContent-Length: 12\r\nETag: \"3\"\r\nX-Shard:  4 \t\r\n\r\nbody follows";
    client_response res;
    int rc = parse(s, &res);
    assert_int_equal(rc, (int)(strstr(s, "body") - s));
    assert_int_equal(res.status, 201);
    assert_int_equal(res.minor_version, 1);
    assert_slice(res.reason, "Created");
    assert_int_equal(res.num_headers, 3);
    assert_slice(res.headers[0].name, "Content-Length");
    assert_slice(res.headers[2].value, "4");
    assert_int_equal(res.content_length, 12);
    assert_false(res.chunked);
    assert_true(res.keep_alive);
    assert_slice(client_header_get(&res, "etag"), "\"3\"");
    assert_null(client_header_get(&res, "X-Missing").ptr);
    /* slices point into the caller's buffer */
    assert_true(res.reason.ptr > s && res.reason.ptr < s + rc);
}

static void test_head_incomplete(void **state) {
    (void)state;
    const char *s = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    client_response res;
    for (size_t n = 0; n < strlen(s); n++) assert_int_equal(client_parse_head(s, n, &res), 0);
    assert_int_equal(client_parse_head(s, strlen(s), &res), (int)strlen(s));
}

static void test_head_reason_forms(void **state) {
    (void)state;
    client_response res;
    assert_int_equal(parse("HTTP/1.1 200 \r\n\r\n", &res), 17);
    assert_int_equal(res.reason.len, 0);
    assert_int_equal(parse("HTTP/1.1 404\r\n\r\n", &res), 16);
    assert_int_equal(res.status, 404);
    assert_int_equal(res.reason.len, 0);
    expect_ok("HTTP/1.1 200 All good, really\t(yes)\r\n\r\n");
    expect_ok("HTTP/1.1 200 caf\xc3\xa9\r\n\r\n"); /* obs-text */
}

static void test_head_versions_and_persistence(void **state) {
    (void)state;
    client_response res;
    expect_ok("HTTP/1.0 200 OK\r\n\r\n");
    parse("HTTP/1.0 200 OK\r\n\r\n", &res);
    assert_false(res.keep_alive);
    parse("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n\r\n", &res);
    assert_true(res.keep_alive);
    parse("HTTP/1.1 200 OK\r\nConnection: foo, close\r\n\r\n", &res);
    assert_false(res.keep_alive);
    parse("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\n", &res);
    assert_true(res.keep_alive);
    parse("HTTP/1.1 200 OK\r\nConnection: closed\r\n\r\n", &res); /* not the token "close" */
    assert_true(res.keep_alive);
}

static void test_head_bad_status_line(void **state) {
    (void)state;
    expect_bad("HTTP/2 200 OK\r\n\r\n");
    expect_bad("HTTP/1.2 200 OK\r\n\r\n");
    expect_bad("http/1.1 200 OK\r\n\r\n");
    expect_bad("HTTP/1.1  200 OK\r\n\r\n");
    expect_bad("HTTP/1.1 20 OK\r\n\r\n");
    expect_bad("HTTP/1.1 2000 OK\r\n\r\n");
    expect_bad("HTTP/1.1 099 OK\r\n\r\n");
    expect_bad("HTTP/1.1 600 OK\r\n\r\n");
    expect_bad("HTTP/1.1 2x0 OK\r\n\r\n");
    expect_bad("HTTP/1.1 200 O\x01K\r\n\r\n");
    expect_bad("HTTP/1.1 200 OK\n\r\n\r\n");    /* bare LF ends no line */
    expect_bad("HTTP/1.1 200 O\rK\r\n\r\n");   /* bare CR */
    expect_bad("\r\nHTTP/1.1 200 OK\r\n\r\n"); /* leading empty line */
    expect_bad("ICY 200 OK\r\n\r\n");
}

static void test_head_bad_fields(void **state) {
    (void)state;
    expect_bad("HTTP/1.1 200 OK\r\nName : v\r\n\r\n");          /* space before the colon */
    expect_bad("HTTP/1.1 200 OK\r\n: v\r\n\r\n");               /* empty name */
    expect_bad("HTTP/1.1 200 OK\r\nNa(me: v\r\n\r\n");          /* not a token */
    expect_bad("HTTP/1.1 200 OK\r\nName v\r\n\r\n");            /* no colon */
    expect_bad("HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n");        /* obs-fold */
    expect_bad("HTTP/1.1 200 OK\r\nA: b\x7f\r\n\r\n");          /* DEL */
    expect_bad("HTTP/1.1 200 OK\r\nA: b\nc: d\r\n\r\n");        /* bare LF inside */
    expect_bad("HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n");           /* bare CR inside */
    client_response res;
    const char nul[] = "HTTP/1.1 200 OK\r\nA: b\0c\r\n\r\n";
    assert_int_equal(client_parse_head(nul, sizeof nul - 1, &res), SKV_EINVAL);
}

static void test_head_framing_rules(void **state) {
    (void)state;
    client_response res;
    parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n", &res);
    assert_true(res.chunked);
    assert_int_equal(res.content_length, -1);
    parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n", &res);
    assert_int_equal(res.content_length, 5);
    parse("HTTP/1.1 200 OK\r\nContent-Length: 007\r\n\r\n", &res);
    assert_int_equal(res.content_length, 7);
    parse("HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775807\r\n\r\n", &res);
    assert_int_equal(res.content_length, INT64_MAX);
    expect_bad("HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775808\r\n\r\n");
    expect_bad("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n");
    expect_bad("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n");
    expect_bad("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n");
    expect_bad("HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n");
    expect_bad("HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n");
    expect_bad("HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n");
    expect_bad("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n");
    expect_bad("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
    expect_bad("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
    expect_bad("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n");
}

static void test_head_limits(void **state) {
    (void)state;
    skv_buf b;
    skv_buf_init(&b);
    skv_buf_append_cstr(&b, "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i < CLIENT_MAX_HEADERS; i++) skv_buf_printf(&b, "X-%d: v\r\n", i);
    skv_buf_append_cstr(&b, "\r\n");
    client_response res;
    assert_int_equal(client_parse_head(b.data, b.len, &res), (int)b.len);
    assert_int_equal(res.num_headers, CLIENT_MAX_HEADERS);
    b.len -= 2;
    skv_buf_append_cstr(&b, "X-last: v\r\n\r\n");
    assert_int_equal(client_parse_head(b.data, b.len, &res), SKV_ETOOBIG);

    /* a head longer than the limit: too big, complete or not */
    skv_buf_reset(&b);
    skv_buf_append_cstr(&b, "HTTP/1.1 200 OK\r\nX: ");
    while (b.len <= CLIENT_MAX_HEAD_BYTES) skv_buf_append_cstr(&b, "aaaaaaaaaaaaaaaa");
    assert_int_equal(client_parse_head(b.data, b.len, &res), SKV_ETOOBIG);
    skv_buf_append_cstr(&b, "\r\n\r\n");
    assert_int_equal(client_parse_head(b.data, b.len, &res), SKV_ETOOBIG);
    skv_buf_free(&b);
}

/* ---- reader -------------------------------------------------------------- */

/* Feeds s whole (step 0) or in steps of `step` bytes; returns the last
 * feed's result and the total consumed in *used. */
static int feed(client_reader *r, const char *s, size_t len, size_t step, size_t *used) {
    size_t off = 0;
    int rc = 0;
    if (step == 0) step = len ? len : 1;
    do {
        size_t n = len - off < step ? len - off : step, c = 0;
        rc = client_reader_feed(r, s + off, n, &c);
        assert_true(c <= n);
        off += c;
        if (rc != 0 || c < n) break;
    } while (off < len);
    *used = off;
    return rc;
}

/* The reader gives status and body for s, fed at every step size. */
static void expect_body(const char *s, size_t len, int head_request, int status, const char *body, size_t body_len,
                        size_t consumed) {
    size_t steps[] = { 0, 1, 2, 3, 7, 64 };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        client_reader r;
        client_reader_init(&r, head_request, 1 << 20);
        size_t used = 0;
        int rc = feed(&r, s, len, steps[i], &used);
        if (rc != 1) fail_msg("step %zu: rc %d", steps[i], rc);
        assert_int_equal(used, consumed);
        assert_int_equal(r.res.status, status);
        assert_int_equal(r.body.len, body_len);
        assert_memory_equal(r.body.data ? r.body.data : "", body, body_len);
        assert_int_equal(client_reader_eof(&r), 1); /* already complete */
        client_reader_free(&r);
    }
}

static void test_reader_content_length(void **state) {
    (void)state;
    const char s[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhe\0lo";
    expect_body(s, sizeof s - 1, 0, 200, "he\0lo", 5, sizeof s - 1);
    /* bytes after the response are not consumed */
    const char t[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiHTTP/1.1 200 OK\r\n";
    expect_body(t, sizeof t - 1, 0, 200, "hi", 2, 40);
    const char z[] = "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
    expect_body(z, sizeof z - 1, 0, 201, "", 0, sizeof z - 1);
}

static void test_reader_chunked(void **state) {
    (void)state;
    const char s[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\nEXTRA";
    expect_body(s, sizeof s - 1, 0, 200, "hello 0123456789", 16, sizeof s - 1 - 5);
}

static void test_reader_until_close(void **state) {
    (void)state;
    const char s[] = "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\nall of it";
    client_reader r;
    client_reader_init(&r, 0, 1 << 20);
    size_t used;
    assert_int_equal(feed(&r, s, sizeof s - 1, 4, &used), 0);
    assert_int_equal(used, sizeof s - 1);
    assert_false(r.res.keep_alive); /* the close ends the body: never reused */
    assert_int_equal(client_reader_eof(&r), 1);
    assert_int_equal(r.body.len, 9);
    assert_memory_equal(r.body.data, "all of it", 9);
    client_reader_free(&r);
}

static void test_reader_no_body(void **state) {
    (void)state;
    const char a[] = "HTTP/1.1 204 No Content\r\n\r\nX";
    expect_body(a, sizeof a - 1, 0, 204, "", 0, sizeof a - 2);
    const char b[] = "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n";
    expect_body(b, sizeof b - 1, 0, 304, "", 0, sizeof b - 1);
    const char c[] = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
    expect_body(c, sizeof c - 1, 1, 200, "", 0, sizeof c - 1); /* HEAD */
}

static void test_reader_interim(void **state) {
    (void)state;
    const char s[] = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\nX: y\r\n\r\n"
                     "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    expect_body(s, sizeof s - 1, 0, 200, "ok", 2, sizeof s - 1);
    client_reader r;
    client_reader_init(&r, 0, 1 << 20);
    size_t used;
    const char up[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n";
    assert_int_equal(client_reader_feed(&r, up, sizeof up - 1, &used), SKV_EINVAL);
    assert_int_equal(client_reader_feed(&r, "x", 1, &used), SKV_EINVAL); /* sticky */
    client_reader_free(&r);
}

static void test_reader_truncated(void **state) {
    (void)state;
    client_reader r;
    size_t used;
    client_reader_init(&r, 0, 1 << 20);
    assert_false(client_reader_started(&r));
    assert_int_equal(client_reader_eof(&r), SKV_EIO); /* closed without answering */
    client_reader_free(&r);

    client_reader_init(&r, 0, 1 << 20);
    assert_int_equal(client_reader_feed(&r, "HTTP/1.1 200 OK\r\n", 17, &used), 0);
    assert_true(client_reader_started(&r));
    assert_int_equal(client_reader_eof(&r), SKV_EIO);
    client_reader_free(&r);

    const char cl[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc";
    client_reader_init(&r, 0, 1 << 20);
    assert_int_equal(client_reader_feed(&r, cl, sizeof cl - 1, &used), 0);
    assert_int_equal(client_reader_eof(&r), SKV_EIO);
    client_reader_free(&r);

    const char ch[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabc";
    client_reader_init(&r, 0, 1 << 20);
    assert_int_equal(client_reader_feed(&r, ch, sizeof ch - 1, &used), 0);
    assert_int_equal(client_reader_eof(&r), SKV_EIO);
    client_reader_free(&r);
}

static void test_reader_errors_and_limits(void **state) {
    (void)state;
    client_reader r;
    size_t used;
    const char big[] = "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n";
    client_reader_init(&r, 0, 10);
    assert_int_equal(client_reader_feed(&r, big, sizeof big - 1, &used), SKV_ETOOBIG);
    client_reader_free(&r);

    const char chunks[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n123456\r\n5\r\n12345\r\n0\r\n\r\n";
    client_reader_init(&r, 0, 10);
    assert_int_equal(client_reader_feed(&r, chunks, sizeof chunks - 1, &used), SKV_ETOOBIG);
    client_reader_free(&r);

    const char close_big[] = "HTTP/1.1 200 OK\r\n\r\n0123456789X";
    client_reader_init(&r, 0, 10);
    assert_int_equal(client_reader_feed(&r, close_big, sizeof close_big - 1, &used), SKV_ETOOBIG);
    client_reader_free(&r);

    const char bad_chunk[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
    client_reader_init(&r, 0, 100);
    assert_int_equal(client_reader_feed(&r, bad_chunk, sizeof bad_chunk - 1, &used), SKV_EINVAL);
    client_reader_free(&r);

    /* an endless head is cut at the limit, fed in pieces */
    client_reader_init(&r, 0, 100);
    char junk[4096];
    memset(junk, 'a', sizeof junk);
    memcpy(junk, "HTTP/1.1 200 OK\r\nX: ", 20);
    int rc = client_reader_feed(&r, junk, sizeof junk, &used);
    memcpy(junk, "aaaaaaaaaaaaaaaaaaaa", 20);
    for (int i = 0; i < 100 && rc == 0; i++) rc = client_reader_feed(&r, junk, sizeof junk, &used);
    assert_int_equal(rc, SKV_ETOOBIG);
    assert_true(r.head.len <= CLIENT_MAX_HEAD_BYTES + 1);
    client_reader_free(&r);
}

/* ---- endpoint, percent-encoding, timeouts --------------------------------- */

static void expect_endpoint(const char *url, const char *host, const char *port, const char *authority,
                            const char *base) {
    client_endpoint ep;
    const char *why = "unset";
    int rc = client_endpoint_parse(url, &ep, &why);
    if (rc != SKV_OK) fail_msg("%s: %s", url, why);
    assert_string_equal(ep.host, host);
    assert_string_equal(ep.port, port);
    assert_string_equal(ep.authority, authority);
    assert_string_equal(ep.base, base);
}

static void expect_bad_endpoint(const char *url) {
    client_endpoint ep;
    const char *why = NULL;
    if (client_endpoint_parse(url, &ep, &why) != SKV_EINVAL) fail_msg("%s accepted", url);
    assert_non_null(why);
}

static void test_endpoint(void **state) {
    (void)state;
    expect_endpoint("http://127.0.0.1:8000", "127.0.0.1", "8000", "127.0.0.1:8000", "");
    expect_endpoint("HTTP://localhost", "localhost", "80", "localhost", "");
    expect_endpoint("localhost:9000", "localhost", "9000", "localhost:9000", "");
    expect_endpoint("http://[::1]:8000/", "::1", "8000", "[::1]:8000", "");
    expect_endpoint("http://[::1]", "::1", "80", "[::1]", "");
    expect_endpoint("http://kv.example:08080/proxy/kv//", "kv.example", "8080", "kv.example:08080", "/proxy/kv");
    expect_bad_endpoint("https://localhost:8000");
    expect_bad_endpoint("ftp://localhost");
    expect_bad_endpoint("http://");
    expect_bad_endpoint("http://:8000");
    expect_bad_endpoint("http://host:");
    expect_bad_endpoint("http://host:0");
    expect_bad_endpoint("http://host:65536");
    expect_bad_endpoint("http://host:12a");
    expect_bad_endpoint("http://host:123456");
    expect_bad_endpoint("http://user@host");
    expect_bad_endpoint("http://host/path?x=1");
    expect_bad_endpoint("http://host/#frag");
    expect_bad_endpoint("http://ho st");
    expect_bad_endpoint("http://[::1");
    expect_bad_endpoint("http://[::1]x");
    expect_bad_endpoint("http://[]:80");
    char longhost[400];
    memset(longhost, 'a', sizeof longhost - 1);
    longhost[sizeof longhost - 1] = '\0';
    expect_bad_endpoint(longhost);
}

static void expect_encoding(const char *in, size_t len, const char *want) {
    skv_buf b;
    skv_buf_init(&b);
    skv_buf_append_cstr(&b, "x"); /* appends */
    client_pct_encode(skv_slice_make(in, len), &b);
    assert_string_equal(b.data + 1, want);
    skv_buf_free(&b);
}

static void test_pct_encode(void **state) {
    (void)state;
    expect_encoding("", 0, "");
    expect_encoding("AZaz09-._~", 10, "AZaz09-._~");
    expect_encoding("a/b c+d&e=f?g#h%", 16, "a%2Fb%20c%2Bd%26e%3Df%3Fg%23h%25");
    expect_encoding("\0\x7f\x80\xff", 4, "%00%7F%80%FF");
    expect_encoding("caf\xc3\xa9", 5, "caf%C3%A9");
}

static void test_pct_round_trip_every_byte(void **state) {
    (void)state;
    char all[256];
    for (int i = 0; i < 256; i++) all[i] = (char)i;
    skv_buf enc, dec;
    skv_buf_init(&enc);
    skv_buf_init(&dec);
    client_pct_encode(skv_slice_make(all, sizeof all), &enc);
    assert_int_equal(enc.len, 256 * 3 - 66 * 2); /* 66 unreserved bytes stay single */
    assert_int_equal(http_url_decode(skv_slice_make(enc.data, enc.len), 1, &dec), SKV_OK);
    assert_int_equal(dec.len, 256);
    assert_memory_equal(dec.data, all, 256);
    skv_buf_free(&enc);
    skv_buf_free(&dec);
}

static void test_parse_timeout(void **state) {
    (void)state;
    unsigned ms = 0;
    assert_int_equal(client_parse_timeout("10", &ms), SKV_OK);
    assert_int_equal(ms, 10000);
    assert_int_equal(client_parse_timeout("2.5", &ms), SKV_OK);
    assert_int_equal(ms, 2500);
    assert_int_equal(client_parse_timeout("0.25s", &ms), SKV_OK);
    assert_int_equal(ms, 250);
    assert_int_equal(client_parse_timeout("500ms", &ms), SKV_OK);
    assert_int_equal(ms, 500);
    assert_int_equal(client_parse_timeout("1m", &ms), SKV_OK);
    assert_int_equal(ms, 60000);
    assert_int_equal(client_parse_timeout("0.0001", &ms), SKV_OK);
    assert_int_equal(ms, 1);
    assert_int_equal(client_parse_timeout("86400", &ms), SKV_OK);
    const char *bad[] = { "", "0", "0.0", "-1", "+1", "1.", ".5", "1e3", "1h", "10 s", "s", "86401", "nan",
                          "99999999999" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (client_parse_timeout(bad[i], &ms) != SKV_EINVAL) fail_msg("'%s' accepted", bad[i]);
}

static void test_is_command(void **state) {
    (void)state;
    const char *yes[] = { "get", "put", "del", "scan", "incr", "stats", "shards" };
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) assert_true(client_is_command(yes[i]));
    assert_false(client_is_command("serve"));
    assert_false(client_is_command("GET"));
    assert_false(client_is_command(""));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head_simple),
        cmocka_unit_test(test_head_incomplete),
        cmocka_unit_test(test_head_reason_forms),
        cmocka_unit_test(test_head_versions_and_persistence),
        cmocka_unit_test(test_head_bad_status_line),
        cmocka_unit_test(test_head_bad_fields),
        cmocka_unit_test(test_head_framing_rules),
        cmocka_unit_test(test_head_limits),
        cmocka_unit_test(test_reader_content_length),
        cmocka_unit_test(test_reader_chunked),
        cmocka_unit_test(test_reader_until_close),
        cmocka_unit_test(test_reader_no_body),
        cmocka_unit_test(test_reader_interim),
        cmocka_unit_test(test_reader_truncated),
        cmocka_unit_test(test_reader_errors_and_limits),
        cmocka_unit_test(test_endpoint),
        cmocka_unit_test(test_pct_encode),
        cmocka_unit_test(test_pct_round_trip_every_byte),
        cmocka_unit_test(test_parse_timeout),
        cmocka_unit_test(test_is_command),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
