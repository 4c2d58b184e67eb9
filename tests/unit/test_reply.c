/*
 * Unit tests for reply: the response head (status line first, then Date,
 * the handler's and the extra header lines, Content-Type, Content-Length,
 * Connection: close when the connection ends), the body, HEAD (no body
 * bytes, same Content-Length), the JSON error shape with and without the
 * seed-style "detail", ETag quoting and the Date line format.
 *
 * Responses are parsed back (status line, header lines, body) rather than
 * compared byte for byte, so the order of the header lines after the status
 * line is left to the module.  A 204 carries no Content-Length (RFC 9110
 * 8.6).  Error bodies are parsed with jansson, which also rejects invalid
 * UTF-8.  Date vectors come from Python's
 * time.strftime('%a, %d %b %Y %H:%M:%S GMT', time.gmtime(t)).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>
#include <jansson.h>

#include "buf.h"
#include "http.h"
#include "reply.h"

#define DATE_LINE "Date: Sat, 21 Nov 2026 12:00:00 GMT\r\n"

/* ---- parsing a response back -------------------------------------------------------- */

#define MAX_HEADERS 32

typedef struct parsed {
    char status_line[128];
    int nheaders;
    char name[MAX_HEADERS][64];
    char value[MAX_HEADERS][256];
    const char *body; /* into the buffer */
    size_t body_len;  /* bytes after the blank line */
    size_t total;     /* bytes of this response */
} parsed;

/* Parses the response starting at p (len bytes up to the end of the
 * buffer); the body is everything after the head up to `len`, unless
 * body_len_hint >= 0 says how much belongs to this response. */
static void parse_response(const char *p, size_t len, long body_len_hint, parsed *out) {
    memset(out, 0, sizeof *out);
    const char *end = p + len;
    const char *eol = memmem(p, len, "\r\n", 2);
    assert_non_null(eol);
    assert_true((size_t)(eol - p) < sizeof out->status_line);
    memcpy(out->status_line, p, (size_t)(eol - p));
    const char *q = eol + 2;
    for (;;) {
        eol = memmem(q, (size_t)(end - q), "\r\n", 2);
        assert_non_null(eol); /* every head line ends with CRLF */
        if (eol == q) break;  /* blank line: end of head */
        const char *colon = memchr(q, ':', (size_t)(eol - q));
        assert_non_null(colon);
        assert_true(out->nheaders < MAX_HEADERS);
        size_t nlen = (size_t)(colon - q);
        assert_true(nlen > 0 && nlen < sizeof out->name[0]);
        memcpy(out->name[out->nheaders], q, nlen);
        assert_int_equal(colon[1], ' '); /* "Name: value" */
        const char *v = colon + 2;
        size_t vlen = (size_t)(eol - v);
        assert_true(vlen < sizeof out->value[0]);
        memcpy(out->value[out->nheaders], v, vlen);
        out->nheaders++;
        q = eol + 2;
    }
    out->body = eol + 2;
    size_t rest = (size_t)(end - out->body);
    if (body_len_hint >= 0) {
        assert_true((size_t)body_len_hint <= rest);
        rest = (size_t)body_len_hint;
    }
    out->body_len = rest;
    out->total = (size_t)(out->body - p) + rest;
}

/* Number of header lines named name (case-insensitive); *value gets the last. */
static int header_count(const parsed *r, const char *name, const char **value) {
    int n = 0;
    for (int i = 0; i < r->nheaders; i++) {
        if (strcasecmp(r->name[i], name) == 0) {
            n++;
            if (value) *value = r->value[i];
        }
    }
    return n;
}

static const char *header(const parsed *r, const char *name) {
    const char *v = NULL;
    int n = header_count(r, name, &v);
    if (n != 1) fail_msg("header %s appears %d times", name, n);
    return v;
}

static void assert_no_header(const parsed *r, const char *name) { assert_int_equal(header_count(r, name, NULL), 0); }

static void assert_content_length(const parsed *r, size_t want) {
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%zu", want);
    assert_string_equal(header(r, "Content-Length"), tmp);
}

/* ---- fixture ----------------------------------------------------------------------- */

typedef struct fixture {
    skv_buf out;
    reply r;
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    if (!f) return -1;
    skv_buf_init(&f->out);
    f->r.out = &f->out;
    f->r.date = DATE_LINE;
    f->r.keep_alive = 1;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    skv_buf_free(&f->out);
    free(f);
    return 0;
}

static void parse_all(fixture *f, parsed *p) { parse_response(f->out.data, f->out.len, -1, p); }

/* ---- tests ---------------------------------------------------------------------------- */

static void test_basic_response(void **state) {
    fixture *f = *state;
    reply *r = &f->r;
    reply_start(r, 200);
    assert_int_equal(r->status, 200);
    reply_header_cstr(r, "X-Shard", "3");
    reply_header(r, "X-Key", "abcdef", 3); /* length-bounded value */
    reply_body(r, "text/plain", "hello", 5);

    parsed p;
    parse_all(f, &p);
    assert_string_equal(p.status_line, "HTTP/1.1 200 OK");
    assert_string_equal(header(&p, "Date"), "Sat, 21 Nov 2026 12:00:00 GMT");
    assert_string_equal(header(&p, "X-Shard"), "3");
    assert_string_equal(header(&p, "X-Key"), "abc");
    assert_string_equal(header(&p, "Content-Type"), "text/plain");
    assert_content_length(&p, 5);
    const char *conn = NULL;
    if (header_count(&p, "Connection", &conn)) /* keep-alive: absent or anything but "close" */
        assert_true(strcasecmp(conn, "close") != 0);
    assert_no_header(&p, "ETag");
    assert_int_equal(p.body_len, 5);
    assert_memory_equal(p.body, "hello", 5);
    /* The Date line is written verbatim, the status line first. */
    assert_non_null(strstr(f->out.data, DATE_LINE));
    assert_true(strncmp(f->out.data, "HTTP/1.1 200 OK\r\n", 17) == 0);
}

static void test_status_lines(void **state) {
    fixture *f = *state;
    static const struct { int status; const char *line; } cases[] = {
        { 200, "HTTP/1.1 200 OK" },
        { 201, "HTTP/1.1 201 Created" },
        { 204, "HTTP/1.1 204 No Content" },
        { 400, "HTTP/1.1 400 Bad Request" },
        { 404, "HTTP/1.1 404 Not Found" },
        { 405, "HTTP/1.1 405 Method Not Allowed" },
        { 408, "HTTP/1.1 408 Request Timeout" },
        { 412, "HTTP/1.1 412 Precondition Failed" },
        { 413, "HTTP/1.1 413 Content Too Large" },
        { 414, "HTTP/1.1 414 URI Too Long" },
        { 431, "HTTP/1.1 431 Request Header Fields Too Large" },
        { 500, "HTTP/1.1 500 Internal Server Error" },
        { 503, "HTTP/1.1 503 Service Unavailable" },
        { 507, "HTTP/1.1 507 Insufficient Storage" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        skv_buf_reset(&f->out);
        reply_start(&f->r, cases[i].status);
        reply_body(&f->r, NULL, "", 0);
        parsed p;
        parse_all(f, &p);
        assert_string_equal(p.status_line, cases[i].line);
        assert_int_equal(f->r.status, cases[i].status);
        assert_no_header(&p, "Content-Type"); /* none given */
        if (cases[i].status == 204)
            assert_no_header(&p, "Content-Length"); /* RFC 9110 8.6: never in a 204 */
        else
            assert_content_length(&p, 0);
    }
    /* A code without a registered reason still gives a well-formed line. */
    skv_buf_reset(&f->out);
    reply_start(&f->r, 299);
    reply_body(&f->r, NULL, "", 0);
    parsed p;
    parse_all(f, &p);
    char want[128];
    snprintf(want, sizeof want, "HTTP/1.1 299 %s", http_status_reason(299));
    assert_string_equal(p.status_line, want);
}

static void test_head_drops_body_keeps_length(void **state) {
    fixture *f = *state;
    reply *r = &f->r;
    r->head_only = 1;
    reply_start(r, 200);
    reply_etag(r, 7);
    reply_body(r, "application/octet-stream", "0123456789", 10);
    parsed p;
    parse_all(f, &p);
    assert_content_length(&p, 10);
    assert_string_equal(header(&p, "Content-Type"), "application/octet-stream");
    assert_string_equal(header(&p, "ETag"), "\"7\"");
    assert_int_equal(p.body_len, 0); /* nothing after the blank line */
    assert_true(f->out.len >= 4 && memcmp(f->out.data + f->out.len - 4, "\r\n\r\n", 4) == 0);
}

static void test_connection_close(void **state) {
    fixture *f = *state;
    reply *r = &f->r;
    r->keep_alive = 0;
    reply_start(r, 200);
    reply_body(r, "text/plain", "bye", 3);
    parsed p;
    parse_all(f, &p);
    assert_string_equal(header(&p, "Connection"), "close");
    assert_content_length(&p, 3);
    assert_memory_equal(p.body, "bye", 3);
    /* Together with HEAD. */
    skv_buf_reset(&f->out);
    r->head_only = 1;
    reply_start(r, 404);
    reply_body(r, "text/plain", "gone", 4);
    parse_all(f, &p);
    assert_string_equal(header(&p, "Connection"), "close");
    assert_content_length(&p, 4);
    assert_int_equal(p.body_len, 0);
}

static void test_extra_header_lines(void **state) {
    fixture *f = *state;
    reply *r = &f->r;
    r->extra = "Allow: GET, HEAD, PUT, DELETE\r\nRetry-After: 1\r\n";
    reply_start(r, 405);
    reply_body(r, "text/plain", "x", 1);
    parsed p;
    parse_all(f, &p);
    assert_string_equal(p.status_line, "HTTP/1.1 405 Method Not Allowed");
    assert_string_equal(header(&p, "Allow"), "GET, HEAD, PUT, DELETE");
    assert_string_equal(header(&p, "Retry-After"), "1");
    assert_content_length(&p, 1);
}

static void test_header_u64_and_etag(void **state) {
    fixture *f = *state;
    reply *r = &f->r;
    reply_start(r, 200);
    reply_header_u64(r, "X-Zero", 0);
    reply_header_u64(r, "X-Max", UINT64_MAX);
    reply_body(r, NULL, "", 0);
    parsed p;
    parse_all(f, &p);
    assert_string_equal(header(&p, "X-Zero"), "0");
    assert_string_equal(header(&p, "X-Max"), "18446744073709551615");

    static const struct { uint64_t v; const char *tag; } tags[] = {
        { 0, "\"0\"" },
        { 1, "\"1\"" },
        { 42, "\"42\"" },
        { 1000000, "\"1000000\"" },
        { UINT64_MAX, "\"18446744073709551615\"" },
    };
    for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++) {
        skv_buf_reset(&f->out);
        reply_start(r, 200);
        reply_etag(r, tags[i].v);
        reply_body(r, NULL, "", 0);
        parse_all(f, &p);
        assert_string_equal(header(&p, "ETag"), tags[i].tag);
    }
}

static void test_json_buf_body(void **state) {
    fixture *f = *state;
    reply *r = &f->r;
    skv_buf json;
    skv_buf_init(&json);
    skv_buf_append_cstr(&json, "{\"key\":\"k\",\"version\":3}");
    reply_start(r, 201);
    reply_json_buf(r, &json);
    parsed p;
    parse_all(f, &p);
    assert_string_equal(p.status_line, "HTTP/1.1 201 Created");
    assert_string_equal(header(&p, "Content-Type"), "application/json");
    assert_content_length(&p, json.len);
    assert_int_equal(p.body_len, json.len);
    assert_memory_equal(p.body, json.data, json.len);
    skv_buf_free(&json);
}

static void test_binary_and_large_body(void **state) {
    fixture *f = *state;
    reply *r = &f->r;
    size_t n = 100000;
    char *body = malloc(n);
    assert_non_null(body);
    for (size_t i = 0; i < n; i++) body[i] = (char)(i * 7); /* includes NULs, CR, LF */
    reply_start(r, 200);
    reply_body(r, "application/octet-stream", body, n);
    parsed p;
    parse_all(f, &p);
    assert_content_length(&p, n);
    assert_int_equal(p.body_len, n);
    assert_memory_equal(p.body, body, n);
    free(body);
}

static void test_appends_after_existing_output(void **state) {
    fixture *f = *state;
    reply *r = &f->r;
    /* Pipelined responses share the buffer: a reply appends. */
    skv_buf_append_cstr(&f->out, "PREVIOUS");
    reply_start(r, 200);
    reply_body(r, "text/plain", "one", 3);
    reply_start(r, 404);
    reply_body(r, "text/plain", "two!", 4);
    assert_true(strncmp(f->out.data, "PREVIOUS", 8) == 0);
    parsed a, b;
    parse_response(f->out.data + 8, f->out.len - 8, 3, &a);
    assert_string_equal(a.status_line, "HTTP/1.1 200 OK");
    assert_memory_equal(a.body, "one", 3);
    parse_response(f->out.data + 8 + a.total, f->out.len - 8 - a.total, -1, &b);
    assert_string_equal(b.status_line, "HTTP/1.1 404 Not Found");
    assert_int_equal(b.body_len, 4);
    assert_memory_equal(b.body, "two!", 4);
    assert_int_equal(8 + a.total + b.total, f->out.len);
}

/* ---- errors ---------------------------------------------------------------------------- */

/* Parses the error body and checks its shape; returns the message. */
static json_t *parse_error_body(const parsed *p, const char *code, int seed_style) {
    json_error_t jerr;
    json_t *root = json_loadb(p->body, p->body_len, 0, &jerr);
    if (!root) fail_msg("error body is not JSON (%s): %.*s", jerr.text, (int)p->body_len, p->body);
    assert_true(json_is_object(root));
    assert_int_equal(json_object_size(root), seed_style ? 2 : 1);
    json_t *err = json_object_get(root, "error");
    assert_true(json_is_object(err));
    assert_int_equal(json_object_size(err), 2);
    assert_string_equal(json_string_value(json_object_get(err, "code")), code);
    const char *msg = json_string_value(json_object_get(err, "message"));
    assert_non_null(msg);
    if (seed_style) {
        const char *detail = json_string_value(json_object_get(root, "detail"));
        assert_non_null(detail);
        assert_string_equal(detail, msg);
    } else {
        assert_null(json_object_get(root, "detail"));
    }
    return root;
}

static const char *error_message(json_t *root) {
    return json_string_value(json_object_get(json_object_get(root, "error"), "message"));
}

static void test_error_shape(void **state) {
    fixture *f = *state;
    reply *r = &f->r;
    reply_error(r, 404, "not_found", "key '%s' not found", "user:1");
    assert_int_equal(r->status, 404);
    parsed p;
    parse_all(f, &p);
    assert_string_equal(p.status_line, "HTTP/1.1 404 Not Found");
    assert_string_equal(header(&p, "Content-Type"), "application/json");
    assert_content_length(&p, p.body_len);
    json_t *root = parse_error_body(&p, "not_found", 0);
    assert_string_equal(error_message(root), "key 'user:1' not found");
    json_decref(root);
    /* The exact documented form. */
    assert_int_equal(p.body_len, strlen("{\"error\":{\"code\":\"not_found\",\"message\":\"key 'user:1' not found\"}}"));
    assert_memory_equal(p.body, "{\"error\":{\"code\":\"not_found\",\"message\":\"key 'user:1' not found\"}}",
                        p.body_len);
}

static void test_error_seed_style_detail(void **state) {
    fixture *f = *state;
    reply *r = &f->r;
    r->seed_style = 1;
    reply_error(r, 400, "bad_request", "userId must be an integer, got %d chars", 3);
    parsed p;
    parse_all(f, &p);
    assert_string_equal(p.status_line, "HTTP/1.1 400 Bad Request");
    json_t *root = parse_error_body(&p, "bad_request", 1);
    assert_string_equal(error_message(root), "userId must be an integer, got 3 chars");
    json_decref(root);
}

static void test_error_message_escaped(void **state) {
    fixture *f = *state;
    reply *r = &f->r;
    /* Quotes, backslash, controls and invalid UTF-8 from a client key. */
    reply_error(r, 400, "bad_key", "bad key \"%s\"", "a\\b\"c\n\x01\xff\xc3\xa9");
    parsed p;
    parse_all(f, &p);
    json_t *root = parse_error_body(&p, "bad_key", 0);
    assert_string_equal(error_message(root), "bad key \"a\\b\"c\n\x01\xef\xbf\xbd\xc3\xa9\"");
    json_decref(root);

    skv_buf_reset(&f->out);
    r->seed_style = 1;
    reply_error(r, 400, "bad_key", "%s", "tab\there");
    parse_all(f, &p);
    root = parse_error_body(&p, "bad_key", 1);
    assert_string_equal(error_message(root), "tab\there");
    json_decref(root);
}

static void test_error_long_message(void **state) {
    fixture *f = *state;
    reply *r = &f->r;
    char *big = malloc(5000);
    assert_non_null(big);
    memset(big, 'm', 4999);
    big[4999] = '\0';
    reply_error(r, 413, "value_too_large", "%s", big);
    parsed p;
    parse_all(f, &p);
    assert_string_equal(p.status_line, "HTTP/1.1 413 Content Too Large");
    assert_content_length(&p, p.body_len);
    json_t *root = parse_error_body(&p, "value_too_large", 0); /* possibly truncated, still valid */
    const char *msg = error_message(root);
    assert_true(strlen(msg) > 100);
    for (const char *c = msg; *c; c++) assert_int_equal(*c, 'm');
    json_decref(root);
    free(big);
}

static void test_error_head_and_close(void **state) {
    fixture *f = *state;
    reply *r = &f->r;
    r->head_only = 1;
    r->keep_alive = 0;
    reply_error(r, 503, "shutting_down", "server is shutting down");
    parsed p;
    parse_all(f, &p);
    assert_string_equal(p.status_line, "HTTP/1.1 503 Service Unavailable");
    assert_string_equal(header(&p, "Connection"), "close");
    assert_string_equal(header(&p, "Content-Type"), "application/json");
    assert_int_equal(p.body_len, 0);
    /* Content-Length is the length the GET body would have had. */
    const char *expect = "{\"error\":{\"code\":\"shutting_down\",\"message\":\"server is shutting down\"}}";
    assert_content_length(&p, strlen(expect));
}

static void test_error_with_extra_headers(void **state) {
    fixture *f = *state;
    reply *r = &f->r;
    r->extra = "Allow: GET, HEAD\r\n";
    reply_error(r, 405, "method_not_allowed", "method not allowed");
    parsed p;
    parse_all(f, &p);
    assert_string_equal(header(&p, "Allow"), "GET, HEAD");
    json_t *root = parse_error_body(&p, "method_not_allowed", 0);
    json_decref(root);
}

/* ---- Date line ------------------------------------------------------------------------ */

static void test_format_date(void **state) {
    (void)state;
    static const struct { long t; const char *line; } cases[] = {
        { 0, "Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n" },
        { 951782400, "Date: Tue, 29 Feb 2000 00:00:00 GMT\r\n" },
        { 1700000000, "Date: Tue, 14 Nov 2023 22:13:20 GMT\r\n" },
        { 4102444799, "Date: Thu, 31 Dec 2099 23:59:59 GMT\r\n" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[48];
        memset(out, 'X', sizeof out);
        reply_format_date(cases[i].t, out, sizeof out);
        assert_string_equal(out, cases[i].line);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_basic_response, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_drops_body_keeps_length, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_extra_header_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_u64_and_etag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_buf_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binary_and_large_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_appends_after_existing_output, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_seed_style_detail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_message_escaped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_long_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_head_and_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_with_extra_headers, setup, teardown),
        cmocka_unit_test(test_format_date),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
