/*
 * client — `shardkv get|put|del|scan|incr|stats|shards`: see client.h for
 * the contract and docs/cli.md for the user's view.
 *
 * Layout of this file, top to bottom:
 *   1. pure helpers: endpoint URLs, percent-encoding, timeouts;
 *   2. the response head parser and the body reader (pure, fuzzed);
 *   3. the transport: one socket, one deadline per request, poll() waits;
 *   4. output: escaping for terminals, the server's error messages;
 *   5. one function per command;
 *   6. the option table and client_main.
 *
 * Exit codes are decided in one place, exit_for_status(): 2xx -> 0,
 * 404 -> 1, any other status -> 2; every failure before a status exists
 * (usage, connection, timeout, malformed answer) is 2 as well.
 */
#include "client.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "err.h"

#ifndef SKV_VERSION
#define SKV_VERSION "dev"
#endif

/* ==== 1. pure helpers ==================================================== */

static int copy_part(char *dst, size_t cap, const char *src, size_t n) {
    if (n >= cap) return SKV_EINVAL;
    memcpy(dst, src, n);
    dst[n] = '\0';
    return SKV_OK;
}

/* Splits "host[:port]" or "[v6][:port]" into ep->host and ep->port. */
static int parse_authority(const char *a, size_t n, client_endpoint *ep, const char **why) {
    const char *host = a, *port = NULL;
    size_t host_len = n;
    if (n && a[0] == '[') {
        const char *close = memchr(a, ']', n);
        if (!close) { *why = "unclosed '[' in the host"; return SKV_EINVAL; }
        host = a + 1;
        host_len = (size_t)(close - host);
        size_t rest = n - (size_t)(close + 1 - a);
        if (rest && close[1] != ':') { *why = "unexpected text after ']'"; return SKV_EINVAL; }
        if (rest) port = close + 2;
    } else {
        const char *colon = memchr(a, ':', n);
        if (colon) {
            host_len = (size_t)(colon - a);
            port = colon + 1;
        }
    }
    if (host_len == 0) { *why = "empty host"; return SKV_EINVAL; }
    if (copy_part(ep->host, sizeof ep->host, host, host_len) != SKV_OK) { *why = "host too long"; return SKV_EINVAL; }
    if (!port) {
        strcpy(ep->port, "80");
    } else {
        size_t plen = n - (size_t)(port - a);
        unsigned long v = 0;
        if (plen == 0 || plen > 5) { *why = "bad port"; return SKV_EINVAL; }
        for (size_t i = 0; i < plen; i++) {
            if (port[i] < '0' || port[i] > '9') { *why = "bad port"; return SKV_EINVAL; }
            v = v * 10 + (unsigned long)(port[i] - '0');
        }
        if (v == 0 || v > 65535) { *why = "port out of range"; return SKV_EINVAL; }
        snprintf(ep->port, sizeof ep->port, "%lu", v);
    }
    if (copy_part(ep->authority, sizeof ep->authority, a, n) != SKV_OK) { *why = "host too long"; return SKV_EINVAL; }
    return SKV_OK;
}

int client_endpoint_parse(const char *url, client_endpoint *ep, const char **why) {
    memset(ep, 0, sizeof *ep);
    *why = NULL;
    const char *p = url;
    const char *sep = strstr(url, "://");
    if (sep) {
        if ((size_t)(sep - url) != 4 || strncasecmp(url, "http", 4) != 0) {
            *why = "only http:// endpoints are supported";
            return SKV_EINVAL;
        }
        p = sep + 3;
    }
    for (const char *q = p; *q; q++) {
        unsigned char ch = (unsigned char)*q;
        if (ch <= 0x20 || ch >= 0x7f) { *why = "spaces or control bytes in the endpoint"; return SKV_EINVAL; }
        if (ch == '?' || ch == '#') { *why = "query or fragment in the endpoint"; return SKV_EINVAL; }
    }
    size_t alen = strcspn(p, "/");
    if (memchr(p, '@', alen)) { *why = "user info in the endpoint"; return SKV_EINVAL; }
    if (parse_authority(p, alen, ep, why) != SKV_OK) return SKV_EINVAL;
    const char *path = p + alen;
    size_t plen = strlen(path);
    while (plen && path[plen - 1] == '/') plen--;
    if (copy_part(ep->base, sizeof ep->base, path, plen) != SKV_OK) { *why = "path too long"; return SKV_EINVAL; }
    return SKV_OK;
}

static int is_unreserved(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_' || c == '~';
}

void client_pct_encode(skv_slice in, skv_buf *out) {
    static const char hex[] = "0123456789ABCDEF";
    skv_buf_reserve(out, in.len * 3);
    for (size_t i = 0; i < in.len; i++) {
        unsigned char c = (unsigned char)in.ptr[i];
        if (is_unreserved(c)) {
            skv_buf_append(out, &in.ptr[i], 1);
        } else {
            char esc[3] = { '%', hex[c >> 4], hex[c & 15] };
            skv_buf_append(out, esc, 3);
        }
    }
}

int client_parse_timeout(const char *s, unsigned *ms) {
    /* Whole and fractional digits, then a unit: no strtod, so no locale,
     * no exponents, no "inf". */
    uint64_t whole = 0, frac = 0, scale = 1;
    const char *p = s;
    if (!(*p >= '0' && *p <= '9')) return SKV_EINVAL;
    while (*p >= '0' && *p <= '9') {
        whole = whole * 10 + (uint64_t)(*p++ - '0');
        if (whole > 100000000) return SKV_EINVAL;
    }
    if (*p == '.') {
        p++;
        if (!(*p >= '0' && *p <= '9')) return SKV_EINVAL;
        while (*p >= '0' && *p <= '9') {
            if (scale < 1000000000) {
                frac = frac * 10 + (uint64_t)(*p - '0');
                scale *= 10;
            }
            p++;
        }
    }
    uint64_t unit_ms;
    if (*p == '\0' || strcmp(p, "s") == 0) unit_ms = 1000;
    else if (strcmp(p, "ms") == 0) unit_ms = 1;
    else if (strcmp(p, "m") == 0) unit_ms = 60000;
    else return SKV_EINVAL;
    uint64_t total = whole * unit_ms + frac * unit_ms / scale;
    if (total == 0 && (whole || frac)) total = 1; /* a fraction of a millisecond */
    if (total == 0 || total > 24ull * 3600 * 1000) return SKV_EINVAL;
    *ms = (unsigned)total;
    return SKV_OK;
}

/* ==== 2. response head parser and body reader ============================ */

static int is_tchar(unsigned char c) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) return 1;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Field-value and reason-phrase bytes: HTAB, SP, VCHAR, obs-text. */
static int is_value_byte(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

/* Offset just past the "\r\n\r\n" that ends the head, searching from
 * `from`; 0 when not there yet. */
static size_t find_head_end(const char *buf, size_t len, size_t from) {
    for (size_t i = from; i + 4 <= len; i++) {
        const char *hit = memchr(buf + i, '\r', len - i);
        if (!hit) return 0;
        i = (size_t)(hit - buf);
        if (i + 4 <= len && memcmp(hit, "\r\n\r\n", 4) == 0) return i + 4;
    }
    return 0;
}

/* Parses "HTTP/1.x SSS reason\r\n" at p (the head, CRLF-terminated lines).
 * Returns the offset of the next line or SKV_EINVAL. */
static long parse_status_line(const char *p, size_t len, client_response *res) {
    if (len < 14 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') || p[8] != ' ') return SKV_EINVAL;
    res->minor_version = p[7] - '0';
    for (int i = 9; i < 12; i++)
        if (p[i] < '0' || p[i] > '9') return SKV_EINVAL;
    res->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    if (res->status < 100 || res->status > 599) return SKV_EINVAL;
    size_t i = 12;
    if (p[i] == ' ') i++;
    else if (p[i] != '\r') return SKV_EINVAL;
    size_t start = i;
    while (i < len && p[i] != '\r') {
        if (!is_value_byte((unsigned char)p[i])) return SKV_EINVAL;
        i++;
    }
    if (i + 1 >= len || p[i + 1] != '\n') return SKV_EINVAL;
    res->reason = skv_slice_make(p + start, i - start);
    return (long)(i + 2);
}

/* Parses one "name: value\r\n" field at p[0..len).  Returns the offset
 * of the next line or SKV_EINVAL. */
static long parse_field(const char *p, size_t len, client_header *h) {
    size_t i = 0;
    while (i < len && is_tchar((unsigned char)p[i])) i++;
    if (i == 0 || i >= len || p[i] != ':') return SKV_EINVAL; /* also obs-fold and space before ':' */
    h->name = skv_slice_make(p, i);
    i++;
    while (i < len && (p[i] == ' ' || p[i] == '\t')) i++;
    size_t start = i;
    while (i < len && p[i] != '\r') {
        if (!is_value_byte((unsigned char)p[i])) return SKV_EINVAL;
        i++;
    }
    if (i + 1 >= len || p[i + 1] != '\n') return SKV_EINVAL;
    size_t end = i;
    while (end > start && (p[end - 1] == ' ' || p[end - 1] == '\t')) end--;
    h->value = skv_slice_make(p + start, end - start);
    return (long)(i + 2);
}

/* 1*DIGIT up to INT64_MAX (leading zeros allowed, as RFC 9110 does). */
static int parse_length(skv_slice v, int64_t *out) {
    if (v.len == 0) return SKV_EINVAL;
    int64_t n = 0;
    for (size_t i = 0; i < v.len; i++) {
        if (v.ptr[i] < '0' || v.ptr[i] > '9') return SKV_EINVAL;
        int d = v.ptr[i] - '0';
        if (n > (INT64_MAX - d) / 10) return SKV_EINVAL;
        n = n * 10 + d;
    }
    *out = n;
    return SKV_OK;
}

/* 1 when the comma-separated token list v holds token (case-insensitive). */
static int list_has(skv_slice v, const char *token) {
    size_t tlen = strlen(token), i = 0;
    while (i < v.len) {
        while (i < v.len && (v.ptr[i] == ' ' || v.ptr[i] == '\t' || v.ptr[i] == ',')) i++;
        size_t s = i;
        while (i < v.len && v.ptr[i] != ',') i++;
        size_t e = i;
        while (e > s && (v.ptr[e - 1] == ' ' || v.ptr[e - 1] == '\t')) e--;
        if (e - s == tlen && strncasecmp(v.ptr + s, token, tlen) == 0) return 1;
    }
    return 0;
}

/* Derives framing and persistence from the fields. */
static int derive_fields(client_response *res) {
    int close = 0, keep = 0, te_seen = 0;
    res->content_length = -1;
    res->chunked = 0;
    for (size_t i = 0; i < res->num_headers; i++) {
        const client_header *h = &res->headers[i];
        if (skv_slice_ieq_cstr(h->name, "Content-Length")) {
            int64_t n;
            if (parse_length(h->value, &n) != SKV_OK) return SKV_EINVAL;
            if (res->content_length >= 0 && res->content_length != n) return SKV_EINVAL;
            res->content_length = n;
        } else if (skv_slice_ieq_cstr(h->name, "Transfer-Encoding")) {
            if (te_seen++ || !skv_slice_ieq_cstr(h->value, "chunked")) return SKV_EINVAL;
            res->chunked = 1;
        } else if (skv_slice_ieq_cstr(h->name, "Connection")) {
            close |= list_has(h->value, "close");
            keep |= list_has(h->value, "keep-alive");
        }
    }
    if (res->chunked && res->content_length >= 0) return SKV_EINVAL;
    res->keep_alive = !close && (res->minor_version == 1 || keep);
    return SKV_OK;
}

int client_parse_head(const char *buf, size_t len, client_response *res) {
    size_t end = find_head_end(buf, len, 0);
    if (end == 0) return len > CLIENT_MAX_HEAD_BYTES ? SKV_ETOOBIG : 0;
    if (end > CLIENT_MAX_HEAD_BYTES) return SKV_ETOOBIG;
    long off = parse_status_line(buf, end, res);
    if (off < 0) return SKV_EINVAL;
    size_t i = (size_t)off;
    res->num_headers = 0;
    while (i + 2 < end) {
        if (res->num_headers == CLIENT_MAX_HEADERS) return SKV_ETOOBIG;
        long n = parse_field(buf + i, end - i, &res->headers[res->num_headers]);
        if (n < 0) return SKV_EINVAL;
        res->num_headers++;
        i += (size_t)n;
    }
    if (i + 2 != end) return SKV_EINVAL; /* cannot happen: the head ends in an empty line */
    if (derive_fields(res) != SKV_OK) return SKV_EINVAL;
    return (int)end;
}

skv_slice client_header_get(const client_response *res, const char *name) {
    for (size_t i = 0; i < res->num_headers; i++)
        if (skv_slice_ieq_cstr(res->headers[i].name, name)) return res->headers[i].value;
    return skv_slice_make(NULL, 0);
}

enum { RD_HEAD, RD_BODY, RD_DONE, RD_ERROR };
enum { FR_LENGTH, FR_CHUNKED, FR_CLOSE };

/* The reader's invariants, checked in assert(). */
static int reader_is_sane(const client_reader *r) {
    if (r->state < RD_HEAD || r->state > RD_ERROR) return 0;
    if (r->body.len > r->max_body) return 0;
    if (r->state == RD_HEAD && r->head.len > CLIENT_MAX_HEAD_BYTES + 1) return 0;
    if (r->state == RD_BODY && r->framing == FR_LENGTH && r->left == 0) return 0;
    return 1;
}

void client_reader_init(client_reader *r, int head_request, size_t max_body) {
    memset(r, 0, sizeof *r);
    skv_buf_init(&r->head);
    skv_buf_init(&r->body);
    r->head_request = head_request;
    r->max_body = max_body;
    r->state = RD_HEAD;
}

void client_reader_free(client_reader *r) {
    skv_buf_free(&r->head);
    skv_buf_free(&r->body);
}

static int reader_fail(client_reader *r, int rc) {
    r->state = RD_ERROR;
    return rc;
}

/* Chooses the body framing once the final head is parsed. */
static int reader_start_body(client_reader *r) {
    client_response *res = &r->res;
    if (r->head_request || res->status == 204 || res->status == 304) {
        r->state = RD_DONE;
    } else if (res->chunked) {
        http_chunked_init(&r->chunked);
        r->framing = FR_CHUNKED;
        r->state = RD_BODY;
    } else if (res->content_length >= 0) {
        if ((uint64_t)res->content_length > r->max_body) return reader_fail(r, SKV_ETOOBIG);
        r->framing = FR_LENGTH;
        r->left = (uint64_t)res->content_length;
        r->state = r->left ? RD_BODY : RD_DONE;
    } else {
        r->framing = FR_CLOSE;
        res->keep_alive = 0;
        r->state = RD_BODY;
    }
    return SKV_OK;
}

/* Takes head bytes; *used is how many of in[] belong to the head.
 * Returns 1 when a head ended (final or 1xx), 0 when more is needed. */
static int reader_feed_head(client_reader *r, const char *in, size_t len, size_t *used) {
    size_t old = r->head.len;
    size_t room = CLIENT_MAX_HEAD_BYTES + 1 - old; /* one over: "too big" is then visible */
    size_t take = len < room ? len : room;
    skv_buf_append(&r->head, in, take);
    size_t end = find_head_end(r->head.data, r->head.len, old >= 3 ? old - 3 : 0);
    if (end == 0) {
        if (r->head.len > CLIENT_MAX_HEAD_BYTES) return reader_fail(r, SKV_ETOOBIG);
        *used = take;
        return 0;
    }
    *used = end - old;
    r->head.len = end;
    r->head.data[end] = '\0';
    int rc = client_parse_head(r->head.data, end, &r->res);
    if (rc < 0) return reader_fail(r, rc);
    if (r->res.status < 200) {
        if (r->res.status == 101) return reader_fail(r, SKV_EINVAL); /* we never ask to switch */
        skv_buf_reset(&r->head);
        return 1;
    }
    rc = reader_start_body(r);
    return rc < 0 ? rc : 1;
}

/* Takes body bytes; returns 1 when the body is complete, 0, or an error. */
static int reader_feed_body(client_reader *r, const char *in, size_t len, size_t *used) {
    *used = 0;
    if (r->framing == FR_LENGTH) {
        size_t n = (uint64_t)len < r->left ? len : (size_t)r->left;
        skv_buf_append(&r->body, in, n);
        r->left -= n;
        *used = n;
    } else if (r->framing == FR_CHUNKED) {
        int done = 0;
        long n = http_chunked_feed(&r->chunked, in, len, &r->body, r->max_body, &done);
        if (n == HTTP_BAD) return reader_fail(r, SKV_EINVAL);
        if (n < 0) return reader_fail(r, SKV_ETOOBIG);
        *used = (size_t)n;
        if (done) r->state = RD_DONE;
        return done;
    } else {
        if (len > r->max_body - r->body.len) return reader_fail(r, SKV_ETOOBIG);
        skv_buf_append(&r->body, in, len);
        *used = len;
        return 0;
    }
    if (r->left == 0) r->state = RD_DONE;
    return r->state == RD_DONE;
}

int client_reader_feed(client_reader *r, const char *in, size_t len, size_t *consumed) {
    assert(reader_is_sane(r));
    *consumed = 0;
    if (r->state == RD_ERROR) return SKV_EINVAL;
    if (len) r->fed = 1;
    size_t used = 0;
    while (r->state == RD_HEAD) {
        size_t n = 0;
        int rc = reader_feed_head(r, in + used, len - used, &n);
        used += n;
        if (rc <= 0) {
            *consumed = used;
            return rc;
        }
    }
    if (r->state == RD_BODY) {
        size_t n = 0;
        int rc = reader_feed_body(r, in + used, len - used, &n);
        used += n;
        if (rc < 0) return rc;
    }
    *consumed = used;
    assert(reader_is_sane(r));
    return r->state == RD_DONE;
}

int client_reader_eof(client_reader *r) {
    if (r->state == RD_DONE) return 1;
    if (r->state == RD_BODY && r->framing == FR_CLOSE) {
        r->state = RD_DONE;
        return 1;
    }
    if (r->state != RD_ERROR) r->state = RD_ERROR;
    return SKV_EIO;
}

int client_reader_started(const client_reader *r) { return r->fed; }

/* ==== 3. transport ======================================================= */

typedef struct client_ctx {
    client_endpoint ep;
    unsigned timeout_ms;
    int fd;         /* -1 when not connected */
    char err[600];  /* why the last request failed, for stderr */
} client_ctx;

/* One request; target and headers are built by the command. */
typedef struct client_req {
    const char *method;
    skv_buf target;  /* base path, path and query, percent-encoded */
    skv_buf headers; /* extra header lines, each ending in CRLF */
    skv_slice body;
    int has_body;    /* send Content-Length (also when 0) */
} client_req;

static void req_init(client_req *q, const client_ctx *c, const char *method, const char *path) {
    q->method = method;
    skv_buf_init(&q->target);
    skv_buf_init(&q->headers);
    skv_buf_append_cstr(&q->target, c->ep.base);
    skv_buf_append_cstr(&q->target, path);
    q->body = skv_slice_make("", 0);
    q->has_body = 0;
}

static void req_free(client_req *q) {
    skv_buf_free(&q->target);
    skv_buf_free(&q->headers);
}

/* Appends one percent-encoded path segment. */
static void req_add_segment(client_req *q, const char *s) {
    client_pct_encode(skv_slice_cstr(s), &q->target);
}

/* Appends name=value (value percent-encoded) to the query string. */
static void req_add_param(client_req *q, const char *name, const char *value) {
    skv_buf_append(&q->target, memchr(q->target.data, '?', q->target.len) ? "&" : "?", 1);
    skv_buf_append_cstr(&q->target, name);
    skv_buf_append(&q->target, "=", 1);
    client_pct_encode(skv_slice_cstr(value), &q->target);
}

static void req_add_header(client_req *q, const char *name, const char *value) {
    skv_buf_printf(&q->headers, "%s: %s\r\n", name, value);
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int set_err(client_ctx *c, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int set_err(client_ctx *c, int rc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    return rc;
}

static int timed_out(client_ctx *c, const char *doing) {
    if (c->timeout_ms % 1000 == 0)
        return set_err(c, SKV_EAGAIN, "timed out after %u s %s %s", c->timeout_ms / 1000, doing, c->ep.authority);
    return set_err(c, SKV_EAGAIN, "timed out after %u ms %s %s", c->timeout_ms, doing, c->ep.authority);
}

static void conn_close(client_ctx *c) {
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
}

/* Waits until fd is ready for events: SKV_OK (also for an error or hang-up
 * condition, which the next call reports), SKV_EAGAIN when the deadline
 * passed, SKV_ESYS when poll fails. */
static int wait_ready(int fd, short events, int64_t deadline) {
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0) return SKV_EAGAIN;
        struct pollfd p = { .fd = fd, .events = events };
        int n = poll(&p, 1, left > 1000000 ? 1000000 : (int)left);
        if (n > 0) return SKV_OK;
        if (n < 0 && errno != EINTR) return SKV_ESYS;
    }
}

/* Connects to one address, non-blocking so that the deadline holds, then
 * makes the socket blocking.  Returns the socket, or SKV_EAGAIN (deadline)
 * or SKV_ESYS with *saved_errno set. */
static int connect_addr(const struct addrinfo *ai, int64_t deadline, int *saved_errno) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) {
        *saved_errno = errno;
        return SKV_ESYS;
    }
    int rc = SKV_ESYS;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        if (errno != EINPROGRESS) {
            *saved_errno = errno;
            goto fail;
        }
        rc = wait_ready(fd, POLLOUT, deadline);
        if (rc != SKV_OK) {
            *saved_errno = errno;
            goto fail;
        }
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0) soerr = errno;
        if (soerr) {
            *saved_errno = soerr;
            rc = SKV_ESYS;
            goto fail;
        }
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
fail:
    close(fd);
    return rc;
}

/* Resolves the endpoint and connects to the first address that answers. */
static int conn_open(client_ctx *c, int64_t deadline) {
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
    struct addrinfo *list = NULL;
    int g = getaddrinfo(c->ep.host, c->ep.port, &hints, &list);
    if (g != 0) return set_err(c, SKV_ESYS, "cannot resolve %s: %s", c->ep.host, gai_strerror(g));
    int rc = SKV_ESYS, saved = 0;
    for (const struct addrinfo *ai = list; ai; ai = ai->ai_next) {
        rc = connect_addr(ai, deadline, &saved);
        if (rc >= 0) {
            c->fd = rc;
            rc = SKV_OK;
            break;
        }
        if (rc == SKV_EAGAIN) break;
    }
    freeaddrinfo(list);
    if (rc == SKV_EAGAIN) return timed_out(c, "connecting to");
    if (rc != SKV_OK) return set_err(c, rc, "cannot connect to %s: %s", c->ep.authority, strerror(saved));
    return SKV_OK;
}

static int send_all(client_ctx *c, const char *p, size_t n, int64_t deadline) {
    while (n) {
        int rc = wait_ready(c->fd, POLLOUT, deadline);
        if (rc == SKV_EAGAIN) return timed_out(c, "sending to");
        if (rc != SKV_OK) return set_err(c, rc, "poll: %s", strerror(errno));
        ssize_t k = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
            return set_err(c, SKV_EIO, "sending to %s: %s", c->ep.authority, strerror(errno));
        }
        p += k;
        n -= (size_t)k;
    }
    return SKV_OK;
}

/* Reads until r holds a whole response.  *extra: the server sent bytes
 * after it (the connection is then not reused). */
static int recv_response(client_ctx *c, client_reader *r, int64_t deadline, int *extra) {
    char buf[65536];
    *extra = 0;
    for (;;) {
        int rc = wait_ready(c->fd, POLLIN, deadline);
        if (rc == SKV_EAGAIN) return timed_out(c, "waiting for the answer of");
        if (rc != SKV_OK) return set_err(c, rc, "poll: %s", strerror(errno));
        ssize_t k = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (k < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
        /* A reset is never a clean end, not even of a body that lasts
         * until the close; before any byte it is a stale connection. */
        if (k < 0 && errno == ECONNRESET && !client_reader_started(r))
            return set_err(c, SKV_EIO, "%s closed the connection without answering", c->ep.authority);
        if (k < 0) return set_err(c, SKV_EIO, "receiving from %s: %s", c->ep.authority, strerror(errno));
        if (k == 0) {
            if (client_reader_eof(r) == 1) return SKV_OK;
            if (client_reader_started(r)) return set_err(c, SKV_EIO, "the answer of %s was cut short", c->ep.authority);
            return set_err(c, SKV_EIO, "%s closed the connection without answering", c->ep.authority);
        }
        size_t used = 0;
        int f = client_reader_feed(r, buf, (size_t)k, &used);
        if (f == SKV_ETOOBIG) return set_err(c, SKV_EIO, "the answer of %s is too large", c->ep.authority);
        if (f < 0) return set_err(c, SKV_EIO, "malformed HTTP answer from %s", c->ep.authority);
        if (f == 1) {
            *extra = used < (size_t)k;
            return SKV_OK;
        }
    }
}

/* Sends the request and reads the answer on the open connection.  A
 * server may answer and close before it has read a whole body (413), so
 * a failed send is followed by an attempt to read that answer. */
static int exchange(client_ctx *c, const skv_buf *head, skv_slice body, client_reader *r, int64_t deadline) {
    int rc = send_all(c, head->data, head->len, deadline);
    if (rc == SKV_OK && body.len) rc = send_all(c, body.ptr, body.len, deadline);
    if (rc == SKV_EAGAIN) return rc;
    char send_err[sizeof c->err];
    memcpy(send_err, c->err, sizeof send_err);
    int extra = 0;
    int rrc = recv_response(c, r, deadline, &extra);
    if (rrc == SKV_OK) {
        if (rc != SKV_OK || extra || !r->res.keep_alive) conn_close(c);
        return SKV_OK;
    }
    conn_close(c);
    if (rc != SKV_OK && rrc != SKV_EAGAIN && !client_reader_started(r)) {
        memcpy(c->err, send_err, sizeof c->err);
        return rc;
    }
    return rrc;
}

static void build_head(const client_ctx *c, const client_req *q, skv_buf *head) {
    skv_buf_printf(head, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: shardkv-cli/%s\r\nAccept: */*\r\n", q->method,
                   q->target.len ? q->target.data : "/", c->ep.authority, SKV_VERSION);
    if (q->has_body) skv_buf_printf(head, "Content-Length: %zu\r\n", q->body.len);
    skv_buf_append(head, q->headers.data, q->headers.len);
    skv_buf_append(head, "\r\n", 2);
}

/*
 * Runs one request against one deadline (connect included) and leaves the
 * answer in r (initialised here; the caller frees it).  A kept-alive
 * connection that the server closed meanwhile gets one fresh retry when
 * nothing was answered and the method is GET.  Returns SKV_OK or an error
 * with c->err set.
 */
static int request(client_ctx *c, const client_req *q, client_reader *r) {
    int64_t deadline = now_ms() + c->timeout_ms;
    skv_buf head;
    skv_buf_init(&head);
    build_head(c, q, &head);
    int rc;
    client_reader_init(r, 0, CLIENT_MAX_BODY_BYTES);
    for (int attempt = 0;; attempt++) {
        int reused = c->fd >= 0;
        if (!reused && (rc = conn_open(c, deadline)) != SKV_OK) break;
        rc = exchange(c, &head, q->body, r, deadline);
        if (rc == SKV_OK || rc == SKV_EAGAIN) break;
        if (!reused || attempt > 0 || strcmp(q->method, "GET") != 0 || client_reader_started(r)) break;
        client_reader_free(r);
        client_reader_init(r, 0, CLIENT_MAX_BODY_BYTES);
    }
    skv_buf_free(&head);
    return rc;
}

/* ==== 4. output ========================================================== */

/*
 * Writes s[0..n) so that it stays on one line of a terminal and cannot
 * drive it: backslash, tab, newline and CR as \\ \t \n \r, other C0 bytes
 * and DEL as \xHH, the C1 controls (UTF-8 C2 80..C2 9F) as \u00HH; the
 * rest, UTF-8 included, as it is.
 */
static void put_escaped(FILE *out, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '\\') fputs("\\\\", out);
        else if (ch == '\t') fputs("\\t", out);
        else if (ch == '\n') fputs("\\n", out);
        else if (ch == '\r') fputs("\\r", out);
        else if (ch < 0x20 || ch == 0x7f) fprintf(out, "\\x%02x", ch);
        else if (ch == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] >= 0x80 && (unsigned char)s[i + 1] <= 0x9f)
            fprintf(out, "\\u%04x", (unsigned char)s[++i]);
        else fputc(ch, out);
    }
}

static int exit_for_status(int status) {
    if (status >= 200 && status < 300) return 0;
    return status == 404 ? 1 : 2;
}

static json_t *parse_json(const skv_buf *b) {
    return json_loadb(b->data ? b->data : "", b->len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
}

/* Prints "shardkv: <the server's message> (<status> <code>)" to stderr. */
static void report_status(const client_reader *r) {
    json_t *doc = parse_json(&r->body);
    json_t *e = json_object_get(doc, "error");
    json_t *msg = json_object_get(e, "message"), *code = json_object_get(e, "code");
    fputs("shardkv: ", stderr);
    if (json_is_string(msg)) {
        put_escaped(stderr, json_string_value(msg), json_string_length(msg));
    } else if (r->body.len) {
        size_t n = strcspn(r->body.data, "\n");
        put_escaped(stderr, r->body.data, n < 200 ? n : 200);
    } else {
        fputs("the server refused the request", stderr);
    }
    fprintf(stderr, " (%d", r->res.status);
    if (json_is_string(code)) {
        fputc(' ', stderr);
        put_escaped(stderr, json_string_value(code), json_string_length(code));
    } else if (r->res.reason.len) {
        fputc(' ', stderr);
        put_escaped(stderr, r->res.reason.ptr, r->res.reason.len);
    }
    fputs(")\n", stderr);
    json_decref(doc);
}

/* Runs the request; returns 0 for a 2xx answer, else the exit code after
 * printing why to stderr.  r is always initialised (the caller frees it). */
static int call(client_ctx *c, const client_req *q, client_reader *r) {
    if (request(c, q, r) != SKV_OK) {
        fprintf(stderr, "shardkv: %s\n", c->err);
        return 2;
    }
    int code = exit_for_status(r->res.status);
    if (code) report_status(r);
    return code;
}

/* The body as it is, then a newline unless it ends in one. */
static void print_body_line(const skv_buf *b) {
    fwrite(b->data ? b->data : "", 1, b->len, stdout);
    if (b->len == 0 || b->data[b->len - 1] != '\n') fputc('\n', stdout);
}

static int malformed(const client_ctx *c, const char *what) {
    fprintf(stderr, "shardkv: unexpected answer from %s: %s\n", c->ep.authority, what);
    return 2;
}

/* An integer or real as text ("?" for anything else). */
static void put_number(FILE *out, const json_t *v) {
    if (json_is_integer(v)) fprintf(out, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v)) fprintf(out, "%.3f", json_real_value(v));
    else fputc('?', out);
}

static void put_json_string(FILE *out, const json_t *v) {
    if (json_is_string(v)) put_escaped(out, json_string_value(v), json_string_length(v));
    else fputc('?', out);
}

/* A JSON value for a line: strings escaped, anything else compact JSON. */
static void put_json_value(FILE *out, const json_t *v) {
    if (json_is_string(v)) {
        put_json_string(out, v);
        return;
    }
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    fputs(text ? text : "?", out);
    free(text);
}

/* Unix milliseconds as 2026-11-21T12:00:00.123Z. */
static void put_time_ms(FILE *out, long long ms) {
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    char text[32];
    if (ms < 0 || !gmtime_r(&secs, &tm) || !strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm)) {
        fprintf(out, "%lld ms", ms);
        return;
    }
    fprintf(out, "%s.%03dZ", text, (int)(ms % 1000));
}

/* ==== 5. commands ======================================================== */

typedef struct cli_opts {
    const char *endpoint, *ttl, *if_match, *idem_key, *prefix, *cursor, *by;
    unsigned timeout_ms, limit, page_size;
    int json, if_none_match, all, merge;
    unsigned given;  /* 1 << OPT_* of every option on the command line */
    char **args;     /* the positional arguments */
    int nargs;
} cli_opts;

/* Adds the headers of the write options (conditions, idempotency). */
static void add_write_headers(client_req *q, const cli_opts *o) {
    if (o->if_match) {
        size_t n = strlen(o->if_match);
        if (n && strspn(o->if_match, "0123456789") == n) {
            char tag[40];
            snprintf(tag, sizeof tag, "\"%s\"", o->if_match);
            req_add_header(q, "If-Match", tag);
        } else {
            req_add_header(q, "If-Match", o->if_match); /* "*", or a tag the server judges */
        }
    }
    if (o->if_none_match) req_add_header(q, "If-None-Match", "*");
    if (o->idem_key) req_add_header(q, "Idempotency-Key", o->idem_key);
}

/* Appends `,"name":<digits>` when v is a non-empty run of digits. */
static void append_digits_field(skv_buf *out, const char *name, skv_slice v) {
    if (!v.ptr || v.len == 0 || v.len > 20) return;
    for (size_t i = 0; i < v.len; i++)
        if (v.ptr[i] < '0' || v.ptr[i] > '9') return;
    skv_buf_printf(out, ",\"%s\":%.*s", name, (int)v.len, v.ptr);
}

/* get --json: {"key","value","version","shard"[,"expires_at_ms"]}, the
 * shape of a scan item; the value is a JSON string unless it was stored as
 * JSON (invalid UTF-8 becomes U+FFFD: plain `get` is the exact one). */
static void print_get_json(const char *key, const client_reader *r) {
    skv_buf out;
    skv_buf_init(&out);
    skv_buf_append_cstr(&out, "{\"key\":\"");
    skv_buf_append_json_str(&out, key, strlen(key));
    skv_buf_append_cstr(&out, "\",\"value\":");
    skv_slice type = client_header_get(&r->res, "Content-Type");
    json_t *as_json = NULL;
    if (type.ptr && type.len >= 16 && strncasecmp(type.ptr, "application/json", 16) == 0) as_json = parse_json(&r->body);
    if (as_json) {
        skv_buf_append(&out, r->body.data, r->body.len);
    } else {
        skv_buf_append(&out, "\"", 1);
        skv_buf_append_json_str(&out, r->body.data ? r->body.data : "", r->body.len);
        skv_buf_append(&out, "\"", 1);
    }
    json_decref(as_json);
    skv_slice etag = client_header_get(&r->res, "ETag");
    if (etag.ptr && etag.len >= 2 && etag.ptr[0] == '"' && etag.ptr[etag.len - 1] == '"')
        etag = skv_slice_make(etag.ptr + 1, etag.len - 2);
    append_digits_field(&out, "version", etag);
    append_digits_field(&out, "shard", client_header_get(&r->res, "X-Shard"));
    append_digits_field(&out, "expires_at_ms", client_header_get(&r->res, "X-Expires-At-Ms"));
    skv_buf_append_cstr(&out, "}\n");
    fwrite(out.data, 1, out.len, stdout);
    skv_buf_free(&out);
}

static int cmd_get(client_ctx *c, const cli_opts *o) {
    client_req q;
    client_reader r;
    req_init(&q, c, "GET", "/v1/kv/");
    req_add_segment(&q, o->args[0]);
    int code = call(c, &q, &r);
    if (code == 0 && o->json) {
        print_get_json(o->args[0], &r);
    } else if (code == 0) {
        fwrite(r.body.data ? r.body.data : "", 1, r.body.len, stdout);
        /* Only for a person at a terminal: keep the prompt off the value. */
        if (isatty(STDOUT_FILENO) && r.body.len && r.body.data[r.body.len - 1] != '\n') fputc('\n', stdout);
    }
    client_reader_free(&r);
    req_free(&q);
    return code;
}

/* "created: version 3, shard 4, expires at ...", for put and del. */
static int print_write_result(const client_ctx *c, const client_reader *r, int deleted) {
    json_t *doc = parse_json(&r->body);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return malformed(c, "the write's answer is not a JSON object");
    }
    const char *what = deleted ? "deleted" : json_is_true(json_object_get(doc, "created")) ? "created" : "replaced";
    printf("%s: version ", what);
    put_number(stdout, json_object_get(doc, "version"));
    fputs(", shard ", stdout);
    put_number(stdout, json_object_get(doc, "shard"));
    json_t *exp = json_object_get(doc, "expires_at_ms");
    if (json_is_integer(exp)) {
        fputs(", expires at ", stdout);
        put_time_ms(stdout, (long long)json_integer_value(exp));
    }
    if (r->res.status == 202) fputs(" (accepted, not yet durable)", stdout);
    skv_slice replayed = client_header_get(&r->res, "Idempotent-Replayed");
    if (replayed.ptr && skv_slice_ieq_cstr(replayed, "true")) fputs(" (replayed)", stdout);
    fputc('\n', stdout);
    json_decref(doc);
    return 0;
}

/* Reads all of stdin (binary) into b; 0 or 2 after a message. */
static int read_stdin(skv_buf *b) {
    char chunk[65536];
    for (;;) {
        ssize_t n = read(STDIN_FILENO, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            fprintf(stderr, "shardkv: cannot read the value from stdin: %s\n", strerror(errno));
            return 2;
        }
        if (n == 0) return 0;
        if (b->len + (size_t)n > CLIENT_MAX_BODY_BYTES) {
            fprintf(stderr, "shardkv: the value on stdin is larger than %lu bytes\n", CLIENT_MAX_BODY_BYTES);
            return 2;
        }
        skv_buf_append(b, chunk, (size_t)n);
    }
}

static int cmd_put(client_ctx *c, const cli_opts *o) {
    skv_buf input;
    skv_buf_init(&input);
    client_req q;
    client_reader r;
    int from_stdin = strcmp(o->args[1], "-") == 0;
    if (from_stdin && read_stdin(&input) != 0) {
        skv_buf_free(&input);
        return 2;
    }
    req_init(&q, c, "PUT", "/v1/kv/");
    req_add_segment(&q, o->args[0]);
    if (o->ttl) req_add_param(&q, "ttl", o->ttl);
    add_write_headers(&q, o);
    q.body = from_stdin ? skv_slice_make(input.data ? input.data : "", input.len) : skv_slice_cstr(o->args[1]);
    q.has_body = 1;
    int code = call(c, &q, &r);
    if (code == 0 && o->json) print_body_line(&r.body);
    else if (code == 0) code = print_write_result(c, &r, 0);
    client_reader_free(&r);
    req_free(&q);
    skv_buf_free(&input);
    return code;
}

static int cmd_del(client_ctx *c, const cli_opts *o) {
    client_req q;
    client_reader r;
    req_init(&q, c, "DELETE", "/v1/kv/");
    req_add_segment(&q, o->args[0]);
    add_write_headers(&q, o);
    int code = call(c, &q, &r);
    if (code == 0 && o->json) print_body_line(&r.body);
    else if (code == 0) code = print_write_result(c, &r, 1);
    client_reader_free(&r);
    req_free(&q);
    return code;
}

static int cmd_incr(client_ctx *c, const cli_opts *o) {
    client_req q;
    client_reader r;
    req_init(&q, c, "POST", "/v1/counters/");
    req_add_segment(&q, o->args[0]);
    skv_buf_append_cstr(&q.target, "/incr");
    if (o->by) req_add_param(&q, "by", o->by);
    add_write_headers(&q, o);
    q.has_body = 1;
    int code = call(c, &q, &r);
    if (code == 0 && o->json) {
        print_body_line(&r.body);
    } else if (code == 0) {
        json_t *doc = parse_json(&r.body);
        json_t *v = json_object_get(doc, "value");
        if (json_is_integer(v)) printf("%lld\n", (long long)json_integer_value(v));
        else code = malformed(c, "no integer \"value\" in the counter's answer");
        json_decref(doc);
    }
    client_reader_free(&r);
    req_free(&q);
    return code;
}

/* ---- scan ---- */

typedef struct scan_state {
    skv_buf cursor;     /* where the next page starts; empty at the start */
    size_t items;       /* items received so far */
    json_t *merged;     /* --merge: every item, else NULL */
    int more;           /* stopped at --limit with a next_cursor */
} scan_state;

/* One item as "key<TAB>value". */
static void print_item(const json_t *item) {
    put_json_value(stdout, json_object_get(item, "key"));
    fputc('\t', stdout);
    put_json_value(stdout, json_object_get(item, "value"));
    fputc('\n', stdout);
}

/* Handles one page; returns 0 and sets *next (borrowed from doc, or NULL
 * at the end), or an exit code. */
static int scan_take_page(const client_ctx *c, const cli_opts *o, const client_reader *r, json_t *doc,
                          scan_state *s, const char **next) {
    json_t *items = json_object_get(doc, "items"), *cur = json_object_get(doc, "next_cursor");
    if (!json_is_array(items) || !(json_is_null(cur) || json_is_string(cur)))
        return malformed(c, "a scan page without \"items\" and \"next_cursor\"");
    *next = json_is_string(cur) ? json_string_value(cur) : NULL;
    if (*next && (**next == '\0' || strcmp(*next, s->cursor.data ? s->cursor.data : "") == 0))
        return malformed(c, "the scan cursor did not move");
    if (s->merged) json_array_extend(s->merged, items);
    else if (o->json) print_body_line(&r->body);
    else
        for (size_t i = 0; i < json_array_size(items); i++) print_item(json_array_get(items, i));
    s->items += json_array_size(items);
    return 0;
}

/* Fetches one page of up to `want` items; returns 0, 3 at the end of the
 * scan, or an exit code (1, 2). */
static int scan_page(client_ctx *c, const cli_opts *o, scan_state *s, unsigned want) {
    client_req q;
    client_reader r;
    char limit[16];
    snprintf(limit, sizeof limit, "%u", want);
    req_init(&q, c, "GET", "/v1/kv");
    if (o->prefix && *o->prefix) req_add_param(&q, "prefix", o->prefix);
    req_add_param(&q, "limit", limit);
    if (s->cursor.len) req_add_param(&q, "cursor", s->cursor.data);
    int code = call(c, &q, &r);
    json_t *doc = NULL;
    if (code == 0) {
        doc = parse_json(&r.body);
        const char *next = NULL;
        code = doc ? scan_take_page(c, o, &r, doc, s, &next) : malformed(c, "a scan page that is not JSON");
        skv_buf_reset(&s->cursor);
        if (code == 0 && next) skv_buf_append_cstr(&s->cursor, next);
        else if (code == 0) code = 3;
    }
    json_decref(doc);
    client_reader_free(&r);
    req_free(&q);
    return code;
}

static void print_merged(const scan_state *s) {
    json_t *doc = json_object();
    json_object_set(doc, "items", s->merged);
    json_object_set_new(doc, "next_cursor", s->more ? json_string(s->cursor.data) : json_null());
    char *text = json_dumps(doc, JSON_COMPACT);
    if (text) puts(text);
    free(text);
    json_decref(doc);
}

/* Follows the cursor until the scan ends or, without --all, until --limit
 * items arrived; pages are never asked for more than what is left. */
static int cmd_scan(client_ctx *c, const cli_opts *o) {
    scan_state s = { .merged = o->merge ? json_array() : NULL };
    skv_buf_init(&s.cursor);
    if (o->cursor) skv_buf_append_cstr(&s.cursor, o->cursor);
    int code;
    for (;;) {
        unsigned want = o->page_size;
        if (!o->all && o->limit - s.items < want) want = o->limit - (unsigned)s.items;
        code = scan_page(c, o, &s, want);
        if (code) break;
        if (!o->all && s.items >= o->limit) {
            s.more = 1;
            break;
        }
    }
    if (code == 3) code = 0;
    if (code == 0 && s.merged) print_merged(&s);
    if (code == 0 && s.more && !o->json) {
        fprintf(stderr, "shardkv: more keys; continue with --cursor %s", s.cursor.data);
        if (o->prefix && *o->prefix) fputs(" and the same --prefix", stderr);
        fputc('\n', stderr);
    }
    json_decref(s.merged);
    skv_buf_free(&s.cursor);
    return code;
}

/* ---- stats and shards ---- */

/* GETs path into r and parses it as a JSON object into *doc. */
static int get_json(client_ctx *c, const char *path, client_reader *r, json_t **doc) {
    client_req q;
    req_init(&q, c, "GET", path);
    int code = call(c, &q, r);
    req_free(&q);
    *doc = NULL;
    if (code) return code;
    *doc = parse_json(&r->body);
    if (json_is_object(*doc)) return 0;
    json_decref(*doc);
    *doc = NULL;
    return malformed(c, "an answer that is not a JSON object");
}

static void put_limit(FILE *out, const json_t *v) {
    if (json_is_integer(v) && json_integer_value(v) == 0) fputs("none", out);
    else put_number(out, v);
}

/* "8, all ok" or "8 (shard 3 degraded, shard 5 disk_full)". */
static void put_shard_states(FILE *out, const json_t *health) {
    put_number(out, json_object_get(health, "shard_count"));
    const json_t *shards = json_object_get(health, "shards");
    int bad = 0;
    for (size_t i = 0; i < json_array_size(shards); i++) {
        const json_t *sh = json_array_get(shards, i), *st = json_object_get(sh, "status");
        if (json_is_string(st) && strcmp(json_string_value(st), "ok") == 0) continue;
        fputs(bad++ ? ", shard " : " (shard ", out);
        put_number(out, json_object_get(sh, "id"));
        fputc(' ', out);
        put_json_string(out, st);
    }
    fputs(bad ? ")\n" : ", all ok\n", out);
}

static void print_stats(const json_t *cache, const json_t *health) {
    printf("%-11s ", "status");
    put_json_string(stdout, json_object_get(health, "status"));
    fputs(" (", stdout);
    put_json_string(stdout, json_object_get(health, "state"));
    printf(")\n%-11s shardkv ", "node");
    put_json_string(stdout, json_object_get(health, "version"));
    fputs(", up ", stdout);
    put_number(stdout, json_object_get(health, "uptime_seconds"));
    fputs(" s, ", stdout);
    put_number(stdout, json_object_get(health, "threads"));
    fputs(" threads, fsync ", stdout);
    put_json_string(stdout, json_object_get(health, "fsync"));
    printf("\n%-11s ", "shards");
    put_shard_states(stdout, health);
    printf("%-11s ", "keys");
    put_number(stdout, json_object_get(cache, "keys_count"));
    fputs(" (limit ", stdout);
    put_limit(stdout, json_object_get(cache, "max_keys_limit"));
    printf(")\n%-11s ", "memory");
    put_number(stdout, json_object_get(cache, "memory_used_bytes"));
    fputs(" bytes (limit ", stdout);
    put_limit(stdout, json_object_get(cache, "max_memory_bytes"));
    printf(", eviction ");
    put_json_string(stdout, json_object_get(cache, "eviction_policy"));
    fputs(")\n", stdout);
    static const char *const counters[][2] = {
        { "hits", "hits" }, { "misses", "misses" }, { "hit ratio", "hit_ratio" },
        { "evictions", "evictions" }, { "expired", "expired" },
    };
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++) {
        printf("%-11s ", counters[i][0]);
        put_number(stdout, json_object_get(cache, counters[i][1]));
        fputc('\n', stdout);
    }
}

/* Trims trailing whitespace so that a body embeds cleanly. */
static int body_len_trimmed(const skv_buf *b) {
    size_t n = b->len;
    while (n && (b->data[n - 1] == '\n' || b->data[n - 1] == '\r' || b->data[n - 1] == ' ')) n--;
    return (int)n;
}

static int cmd_stats(client_ctx *c, const cli_opts *o) {
    client_reader rc_, rh;
    json_t *cache = NULL, *health = NULL;
    int code = get_json(c, "/cache/stats", &rc_, &cache);
    if (code == 0) {
        code = get_json(c, "/health", &rh, &health);
        if (code == 0 && o->json)
            printf("{\"cache\":%.*s,\"health\":%.*s}\n", body_len_trimmed(&rc_.body), rc_.body.data,
                   body_len_trimmed(&rh.body), rh.body.data);
        else if (code == 0)
            print_stats(cache, health);
        client_reader_free(&rh);
    }
    client_reader_free(&rc_);
    json_decref(cache);
    json_decref(health);
    return code;
}

static void print_shards(const json_t *doc) {
    fputs("placement ", stdout);
    put_json_string(stdout, json_object_get(doc, "placement"));
    fputs(", hash ", stdout);
    put_json_string(stdout, json_object_get(doc, "hash"));
    fputs(", ", stdout);
    put_number(stdout, json_object_get(doc, "vnodes"));
    fputs(" vnodes, shard map version ", stdout);
    put_number(stdout, json_object_get(doc, "shard_map_version"));
    printf("\n%5s %12s %14s %8s %12s\n", "SHARD", "KEYS", "BYTES", "SHARE", "REQUESTS");
    const json_t *shards = json_object_get(doc, "shards");
    long long requests = 0;
    for (size_t i = 0; i < json_array_size(shards); i++) {
        const json_t *sh = json_array_get(shards, i);
        requests += json_integer_value(json_object_get(sh, "requests"));
        printf("%5lld %12lld %14lld %7.2f%% %12lld\n", (long long)json_integer_value(json_object_get(sh, "id")),
               (long long)json_integer_value(json_object_get(sh, "keys")),
               (long long)json_integer_value(json_object_get(sh, "bytes")),
               100.0 * json_number_value(json_object_get(sh, "share")),
               (long long)json_integer_value(json_object_get(sh, "requests")));
    }
    printf("%5s %12lld %14lld %8s %12lld\n", "total", (long long)json_integer_value(json_object_get(doc, "total_keys")),
           (long long)json_integer_value(json_object_get(doc, "total_bytes")), "", requests);
}

static int cmd_shards(client_ctx *c, const cli_opts *o) {
    client_reader r;
    json_t *doc = NULL;
    int code = get_json(c, "/shards", &r, &doc);
    if (code == 0 && o->json) print_body_line(&r.body);
    else if (code == 0) print_shards(doc);
    json_decref(doc);
    client_reader_free(&r);
    return code;
}

/* ==== 6. options and dispatch ============================================ */

enum {
    OPT_ENDPOINT, OPT_TIMEOUT, OPT_JSON, OPT_HELP, OPT_TTL, OPT_IF_MATCH, OPT_IF_NONE_MATCH, OPT_IDEM_KEY,
    OPT_PREFIX, OPT_LIMIT, OPT_PAGE_SIZE, OPT_CURSOR, OPT_ALL, OPT_MERGE, OPT_BY, OPT__COUNT
};

static const struct option long_options[] = {
    [OPT_ENDPOINT] = { "endpoint", required_argument, NULL, 256 + OPT_ENDPOINT },
    [OPT_TIMEOUT] = { "timeout", required_argument, NULL, 256 + OPT_TIMEOUT },
    [OPT_JSON] = { "json", no_argument, NULL, 256 + OPT_JSON },
    [OPT_HELP] = { "help", no_argument, NULL, 256 + OPT_HELP },
    [OPT_TTL] = { "ttl", required_argument, NULL, 256 + OPT_TTL },
    [OPT_IF_MATCH] = { "if-match", required_argument, NULL, 256 + OPT_IF_MATCH },
    [OPT_IF_NONE_MATCH] = { "if-none-match", no_argument, NULL, 256 + OPT_IF_NONE_MATCH },
    [OPT_IDEM_KEY] = { "idempotency-key", required_argument, NULL, 256 + OPT_IDEM_KEY },
    [OPT_PREFIX] = { "prefix", required_argument, NULL, 256 + OPT_PREFIX },
    [OPT_LIMIT] = { "limit", required_argument, NULL, 256 + OPT_LIMIT },
    [OPT_PAGE_SIZE] = { "page-size", required_argument, NULL, 256 + OPT_PAGE_SIZE },
    [OPT_CURSOR] = { "cursor", required_argument, NULL, 256 + OPT_CURSOR },
    [OPT_ALL] = { "all", no_argument, NULL, 256 + OPT_ALL },
    [OPT_MERGE] = { "merge", no_argument, NULL, 256 + OPT_MERGE },
    [OPT_BY] = { "by", required_argument, NULL, 256 + OPT_BY },
    [OPT__COUNT] = { NULL, 0, NULL, 0 },
};

#define OPT_BIT(o) (1u << (o))
#define COMMON_OPTS (OPT_BIT(OPT_ENDPOINT) | OPT_BIT(OPT_TIMEOUT) | OPT_BIT(OPT_JSON) | OPT_BIT(OPT_HELP))
#define WRITE_OPTS (OPT_BIT(OPT_IF_MATCH) | OPT_BIT(OPT_IDEM_KEY))

typedef struct client_command {
    const char *name;
    int nargs;        /* positional arguments */
    unsigned options; /* OPT_BIT()s accepted */
    int (*run)(client_ctx *c, const cli_opts *o);
} client_command;

static const client_command commands[] = {
    { "get", 1, COMMON_OPTS, cmd_get },
    { "put", 2, COMMON_OPTS | WRITE_OPTS | OPT_BIT(OPT_TTL) | OPT_BIT(OPT_IF_NONE_MATCH), cmd_put },
    { "del", 1, COMMON_OPTS | WRITE_OPTS, cmd_del },
    { "scan", 0,
      COMMON_OPTS | OPT_BIT(OPT_PREFIX) | OPT_BIT(OPT_LIMIT) | OPT_BIT(OPT_PAGE_SIZE) | OPT_BIT(OPT_CURSOR) |
          OPT_BIT(OPT_ALL) | OPT_BIT(OPT_MERGE),
      cmd_scan },
    { "incr", 1, COMMON_OPTS | OPT_BIT(OPT_BY) | OPT_BIT(OPT_IDEM_KEY), cmd_incr },
    { "stats", 0, COMMON_OPTS, cmd_stats },
    { "shards", 0, COMMON_OPTS, cmd_shards },
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static const char usage_text[] =
    "Usage: shardkv COMMAND [ARGS] [OPTIONS]   (talks to a running node; docs/cli.md)\n"
    "  get KEY                 print the value: its exact bytes (a newline is added only on a terminal)\n"
    "  put KEY VALUE|-         store VALUE, or stdin with '-'  [--ttl SECONDS] [--if-match VERSION|*]\n"
    "                          [--if-none-match] [--idempotency-key K]\n"
    "  del KEY                 delete  [--if-match VERSION|*] [--idempotency-key K]\n"
    "  scan                    list keys and values, one \"key<TAB>value\" line each  [--prefix P]\n"
    "                          [--limit N (default 100) | --all] [--cursor C] [--page-size N] [--merge]\n"
    "  incr NAME               add to a sharded counter, print the new total  [--by N (may be negative)]\n"
    "                          [--idempotency-key K]\n"
    "  stats                   node health and cache statistics\n"
    "  shards                  keys, bytes, ring share and requests per shard\n"
    "Options of every command:\n"
    "  --endpoint URL          http://HOST[:PORT] [env SHARDKV_ENDPOINT, default " CLIENT_DEFAULT_ENDPOINT "]\n"
    "  --timeout T             connect + whole request, seconds or 500ms/2s/1m [10s]\n"
    "  --json                  print the server's JSON (scan: one page per line; with --merge one document)\n"
    "Exit status: 0 ok, 1 not found (404), 2 anything else (usage, connection, timeout, other HTTP status).\n"
    "Use -- before a KEY or VALUE that starts with '-'.\n";

int client_is_command(const char *name) {
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0) return 1;
    return 0;
}

/* Prints "shardkv CMD: <fmt with its one %s replaced by arg, escaped>; see
 * shardkv CMD --help" as one line, whatever bytes arg holds. */
static int usage_error(const char *cmd, const char *fmt, const char *arg) {
    const char *slot = strstr(fmt, "%s");
    fprintf(stderr, "shardkv %s: ", cmd);
    fwrite(fmt, 1, (size_t)(slot - fmt), stderr);
    put_escaped(stderr, arg, strlen(arg));
    fprintf(stderr, "%s; see shardkv %s --help\n", slot + 2, cmd);
    return SKV_EINVAL;
}

/* A decimal count from 1 to max. */
static int parse_count(const char *s, unsigned max, unsigned *out) {
    size_t n = strlen(s);
    if (n == 0 || n > 10 || strspn(s, "0123456789") != n) return SKV_EINVAL;
    unsigned long long v = strtoull(s, NULL, 10);
    if (v == 0 || v > max) return SKV_EINVAL;
    *out = (unsigned)v;
    return SKV_OK;
}

/* Header values go on the wire as they are: visible ASCII and inner spaces only. */
static int header_value_ok(const char *s) {
    if (!*s || *s == ' ') return 0;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) return 0;
    return s[strlen(s) - 1] != ' ';
}

/* Stores one option's value into o. */
static int apply_option(const char *cmd, int id, const char *arg, cli_opts *o) {
    switch (id) {
    case OPT_ENDPOINT: o->endpoint = arg; break;
    case OPT_TIMEOUT:
        if (client_parse_timeout(arg, &o->timeout_ms) != SKV_OK)
            return usage_error(cmd, "bad --timeout '%s' (seconds, or a number with ms, s or m)", arg);
        break;
    case OPT_JSON: o->json = 1; break;
    case OPT_TTL: o->ttl = arg; break;
    case OPT_IF_MATCH:
        if (!header_value_ok(arg)) return usage_error(cmd, "bad --if-match '%s'", arg);
        o->if_match = arg;
        break;
    case OPT_IF_NONE_MATCH: o->if_none_match = 1; break;
    case OPT_IDEM_KEY:
        if (!header_value_ok(arg)) return usage_error(cmd, "bad --idempotency-key '%s' (visible ASCII)", arg);
        o->idem_key = arg;
        break;
    case OPT_PREFIX: o->prefix = arg; break;
    case OPT_LIMIT:
        if (parse_count(arg, 1u << 31, &o->limit) != SKV_OK) return usage_error(cmd, "bad --limit '%s'", arg);
        break;
    case OPT_PAGE_SIZE:
        if (parse_count(arg, 1000, &o->page_size) != SKV_OK)
            return usage_error(cmd, "bad --page-size '%s' (1 to 1000)", arg);
        break;
    case OPT_CURSOR: o->cursor = arg; break;
    case OPT_ALL: o->all = 1; break;
    case OPT_MERGE: o->merge = 1; break;
    case OPT_BY: o->by = arg; break;
    default: break;
    }
    return SKV_OK;
}

/* Checks what the options and arguments say together. */
static int check_command_line(const client_command *cmd, cli_opts *o) {
    for (int id = 0; id < OPT__COUNT; id++)
        if ((o->given & OPT_BIT(id)) && !(cmd->options & OPT_BIT(id)))
            return usage_error(cmd->name, "--%s does not apply to this command", long_options[id].name);
    if (o->nargs != cmd->nargs) {
        const char *want = cmd->nargs == 0 ? "no arguments" : cmd->nargs == 1 ? "one argument" : "two arguments";
        return usage_error(cmd->name, "expected %s", want);
    }
    if (cmd->nargs && o->args[0][0] == '\0') return usage_error(cmd->name, "%s", "the key or name must not be empty");
    if (o->all && (o->given & OPT_BIT(OPT_LIMIT)))
        return usage_error(cmd->name, "%s", "--all and --limit exclude each other");
    if (o->merge && !o->json) return usage_error(cmd->name, "%s", "--merge needs --json");
    return SKV_OK;
}

/* Parses argv into o.  Returns 0, 1 for --help, or SKV_EINVAL after a
 * message. */
static int parse_command_line(const client_command *cmd, int argc, char **argv, cli_opts *o) {
    const char *env = getenv("SHARDKV_ENDPOINT");
    *o = (cli_opts){ .endpoint = env && *env ? env : CLIENT_DEFAULT_ENDPOINT, .timeout_ms = 10000, .limit = 100,
                     .page_size = 1000 };
    optind = 0; /* 0: glibc also resets its internal state */
    opterr = 0;
    for (;;) {
        int ch = getopt_long(argc, argv, ":h", long_options, NULL);
        if (ch == -1) break;
        if (ch == 'h') ch = 256 + OPT_HELP;
        if (ch == ':') return usage_error(cmd->name, "option '%s' needs a value", argv[optind - 1]);
        if (ch < 256 || ch >= 256 + OPT__COUNT) return usage_error(cmd->name, "unknown option '%s'", argv[optind - 1]);
        o->given |= OPT_BIT(ch - 256);
        if (apply_option(cmd->name, ch - 256, optarg, o) != SKV_OK) return SKV_EINVAL;
    }
    if (o->given & OPT_BIT(OPT_HELP)) return 1;
    o->args = argv + optind;
    o->nargs = argc - optind;
    return check_command_line(cmd, o);
}

int client_main(int argc, char **argv) {
    const client_command *cmd = NULL;
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, argv[0]) == 0) cmd = &commands[i];
    if (!cmd) return 2;
    cli_opts o;
    int rc = parse_command_line(cmd, argc, argv, &o);
    if (rc == 1) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (rc != SKV_OK) return 2;
    client_ctx c = { .timeout_ms = o.timeout_ms, .fd = -1 };
    const char *why = NULL;
    if (client_endpoint_parse(o.endpoint, &c.ep, &why) != SKV_OK) {
        fprintf(stderr, "shardkv %s: bad endpoint '", cmd->name);
        put_escaped(stderr, o.endpoint, strlen(o.endpoint));
        fprintf(stderr, "': %s\n", why);
        return 2;
    }
    int code = cmd->run(&c, &o);
    conn_close(&c);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "shardkv: cannot write the output: %s\n", strerror(errno));
        return 2;
    }
    return code;
}
