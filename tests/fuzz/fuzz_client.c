/*
 * libFuzzer target for the client's response parser (client.h).
 *
 * Input: byte 0 is flags (bit 0: the answer is to a HEAD request), byte 1
 * seeds the split points, the rest are the bytes a server sent.  Checks:
 *   - client_reader fed the bytes in one piece and fed them in pieces of
 *     pseudo-random sizes (1 byte to 300) reaches the same result: the same
 *     return code, the same consumed count, status, header count, framing
 *     fields and body bytes; at the end of the input both get the same
 *     client_reader_eof() answer;
 *   - a complete response's slices lie inside the reader's head buffer,
 *     its body is within max_body, and its status is 200..599;
 *   - client_parse_head() on an exact-size copy: a positive length is at
 *     most the input, ends in CRLF CRLF, and its slices lie inside the input;
 *     a final (non-1xx) head gives the reader the same status;
 *   - client_pct_encode() output has only unreserved bytes and %XX escapes
 *     and http_url_decode() gives the input back;
 *   - client_endpoint_parse() and client_parse_timeout() on the input as a
 *     string do not crash, and an accepted endpoint has a host, a numeric
 *     port and a base without a trailing '/'.
 * Any violation aborts, which libFuzzer reports as a crash.
 *
 * Sources: tests/fuzz/fuzz_client.c src/client.c src/http.c src/buf.c
 * src/mem.c src/err.c, linked with jansson.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "client.h"
#include "err.h"
#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                 \
        }                                                                            \
    } while (0)

#define MAX_BODY 4096

typedef struct outcome {
    int rc;          /* last feed result, or the eof result */
    size_t consumed;
} outcome;

static int inside(skv_slice s, const char *buf, size_t len) {
    if (s.len == 0) return 1;
    return s.ptr >= buf && s.ptr + s.len <= buf + len;
}

/* Feeds in[0..len) in pieces whose sizes come from seed (0: one piece). */
static outcome run_reader(client_reader *r, const char *in, size_t len, unsigned seed) {
    outcome o = { 0, 0 };
    uint32_t x = seed * 2654435761u + 1;
    while (o.consumed < len || len == 0) {
        size_t n = len - o.consumed;
        if (seed) {
            x = x * 1103515245u + 12345u;
            size_t piece = 1 + (x >> 16) % 300;
            if (piece < n) n = piece;
        }
        size_t used = 0;
        o.rc = client_reader_feed(r, in + o.consumed, n, &used);
        CHECK(used <= n);
        o.consumed += used;
        if (o.rc != 0) return o;
        CHECK(used == n); /* "need more" consumes everything */
        if (len == 0) break;
    }
    o.rc = client_reader_eof(r);
    CHECK(o.rc == 1 || o.rc == SKV_EIO);
    return o;
}

static void check_complete(const client_reader *r) {
    const client_response *res = &r->res;
    CHECK(res->status >= 200 && res->status <= 599);
    CHECK(res->minor_version == 0 || res->minor_version == 1);
    CHECK(r->body.len <= MAX_BODY);
    CHECK(res->num_headers <= CLIENT_MAX_HEADERS);
    CHECK(inside(res->reason, r->head.data, r->head.len));
    for (size_t i = 0; i < res->num_headers; i++) {
        CHECK(res->headers[i].name.len > 0);
        CHECK(inside(res->headers[i].name, r->head.data, r->head.len));
        CHECK(inside(res->headers[i].value, r->head.data, r->head.len));
    }
    CHECK(!(res->chunked && res->content_length >= 0));
    if (res->content_length >= 0 && !res->chunked && !r->head_request && res->status != 204 && res->status != 304)
        CHECK(r->body.len == (size_t)res->content_length);
}

static void check_reader(const char *in, size_t len, int head_request, unsigned seed) {
    client_reader a, b;
    client_reader_init(&a, head_request, MAX_BODY);
    client_reader_init(&b, head_request, MAX_BODY);
    outcome oa = run_reader(&a, in, len, 0);
    outcome ob = run_reader(&b, in, len, seed | 1);
    CHECK(oa.rc == ob.rc);
    if (oa.rc >= 0) CHECK(oa.consumed == ob.consumed); /* an error stops mid-piece */
    if (oa.rc == 1) {
        check_complete(&a);
        check_complete(&b);
        CHECK(a.res.status == b.res.status);
        CHECK(a.res.num_headers == b.res.num_headers);
        CHECK(a.res.content_length == b.res.content_length);
        CHECK(a.res.chunked == b.res.chunked);
        CHECK(a.res.keep_alive == b.res.keep_alive);
        CHECK(a.head.len == b.head.len && memcmp(a.head.data, b.head.data, a.head.len) == 0);
        CHECK(a.body.len == b.body.len);
        CHECK(a.body.len == 0 || memcmp(a.body.data, b.body.data, a.body.len) == 0);
    }
    client_reader_free(&a);
    client_reader_free(&b);
}

static void check_head(const char *in, size_t len, int head_request) {
    client_response res;
    int n = client_parse_head(in, len, &res);
    CHECK(n == 0 || n == SKV_EINVAL || n == SKV_ETOOBIG || (n >= 16 && (size_t)n <= len));
    if (n <= 0) return;
    CHECK(memcmp(in + n - 4, "\r\n\r\n", 4) == 0);
    CHECK(inside(res.reason, in, (size_t)n));
    for (size_t i = 0; i < res.num_headers; i++) {
        CHECK(inside(res.headers[i].name, in, (size_t)n));
        CHECK(inside(res.headers[i].value, in, (size_t)n));
    }
    if (res.status < 200) return;
    /* The reader reads the same head the same way. */
    client_reader r;
    client_reader_init(&r, head_request, MAX_BODY);
    size_t used = 0;
    int rc = client_reader_feed(&r, in, (size_t)n, &used);
    CHECK(rc >= 0 || rc == SKV_ETOOBIG);
    if (rc >= 0) {
        CHECK(used == (size_t)n);
        CHECK(r.res.status == res.status);
        CHECK(r.head.len == (size_t)n);
    }
    client_reader_free(&r);
}

static int is_unreserved(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_' || c == '~';
}

static int upper_hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static void check_encoding(const char *in, size_t len) {
    skv_buf enc, dec;
    skv_buf_init(&enc);
    skv_buf_init(&dec);
    client_pct_encode(skv_slice_make(in, len), &enc);
    for (size_t i = 0; i < enc.len; i++) {
        unsigned char c = (unsigned char)enc.data[i];
        if (c == '%') {
            CHECK(i + 2 < enc.len);
            int hi = upper_hex(enc.data[i + 1]), lo = upper_hex(enc.data[i + 2]);
            CHECK(hi >= 0 && lo >= 0);
            CHECK(!is_unreserved((unsigned char)(hi << 4 | lo))); /* only what must be escaped is */
            i += 2;
        } else {
            CHECK(is_unreserved(c));
        }
    }
    CHECK(http_url_decode(skv_slice_make(enc.data ? enc.data : "", enc.len), 1, &dec) == SKV_OK);
    CHECK(dec.len == len);
    CHECK(len == 0 || memcmp(dec.data, in, len) == 0);
    skv_buf_free(&enc);
    skv_buf_free(&dec);
}

static void check_strings(const uint8_t *data, size_t size) {
    size_t n = size < 2000 ? size : 2000;
    char *s = malloc(n + 1);
    CHECK(s != NULL);
    memcpy(s, data, n);
    s[n] = '\0';
    client_endpoint ep;
    const char *why = NULL;
    if (client_endpoint_parse(s, &ep, &why) == SKV_OK) {
        CHECK(why == NULL);
        CHECK(ep.host[0] != '\0');
        size_t plen = strlen(ep.port);
        CHECK(plen > 0 && strspn(ep.port, "0123456789") == plen);
        long port = strtol(ep.port, NULL, 10);
        CHECK(port >= 1 && port <= 65535);
        size_t blen = strlen(ep.base);
        CHECK(blen == 0 || (ep.base[0] == '/' && ep.base[blen - 1] != '/'));
        CHECK(ep.authority[0] != '\0');
    } else {
        CHECK(why != NULL);
    }
    unsigned ms = 0;
    if (client_parse_timeout(s, &ms) == SKV_OK) CHECK(ms >= 1 && ms <= 24u * 3600 * 1000);
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int head_request = size > 0 && (data[0] & 1);
    unsigned seed = size > 1 ? data[1] : 0;
    size_t off = size < 2 ? size : 2;
    size_t len = size - off;
    /* An exact-size copy so that any read past the end is caught. */
    char *in = malloc(len ? len : 1);
    CHECK(in != NULL);
    if (len) memcpy(in, data + off, len);
    check_reader(in, len, head_request, seed);
    check_head(in, len, head_request);
    check_encoding(in, len);
    check_strings(data + off, len);
    free(in);
    return 0;
}
