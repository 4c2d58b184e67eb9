/*
 * http — strict, zero-copy, resumable HTTP/1.1 request parser (see http.h).
 *
 * Head parsing runs in two steps:
 *   1. find the end of the head: the first '\n' that ends an empty line
 *      ("\r\n\r\n", "\n\n", "\n\r\n").  On a resumed call the search starts
 *      three bytes before the bytes that were already offered, so every
 *      byte is searched about once.  One empty line before the request line
 *      is ignored (RFC 9112 2.2: clients may send a CRLF after a body);
 *      it counts towards the head length.
 *   2. once the end is known, the limits are checked and the head is parsed
 *      in a single pass.  Every loop stops at '\n', and the head ends in
 *      '\n', so the parser never reads past the head without bounds checks.
 *
 * Limits are a pure function of the bytes seen so far, checked in the same
 * order whether the head is complete or not, so feeding a head in pieces
 * gives the same answer as feeding it at once (provided max_head_bytes >=
 * max_uri_bytes + 34, i.e. a head may hold the longest allowed request line):
 *   a. the request line is longer than max_uri_bytes + 32       -> 414
 *   b. the request line is complete and its target (the bytes between the
 *      first and the second space) is longer than max_uri_bytes -> 414
 *   c. the head, or what has arrived of it, exceeds max_head_bytes -> 431
 *
 * Chunked decoder: a byte-level state machine over
 *   chunk-size [BWS ";" ext] CRLF data CRLF ... "0" [ext] CRLF
 *   *(trailer-field CRLF) CRLF
 * Chunk framing lines must end in CRLF (no bare LF: a lenient decoder behind
 * a strict proxy is a smuggling vector).  Size and trailer lines are at most
 * HTTP_CHUNK_LINE_MAX bytes; the whole trailer section at most
 * HTTP_TRAILER_MAX bytes.  Data bytes are appended in bulk.
 *
 * Invariants: http_request_is_sane() (every slice inside the head) holds on
 * every positive return; http_chunked_is_sane() between calls.
 */
#include "http.h"

#include <assert.h>
#include <limits.h>
#include <string.h>
#include <strings.h>

#include "err.h"

#define HTTP_CHUNK_LINE_MAX 4096u        /* size line or trailer line */
#define HTTP_TRAILER_MAX    (64u * 1024u) /* whole trailer section */

/* ---- character classes ---------------------------------------------- */

enum {
    CC_TCHAR  = 1, /* token character (RFC 9110 5.6.2) */
    CC_TARGET = 2, /* allowed in a request target: visible ASCII */
    CC_VALUE  = 4, /* allowed in a field value: HTAB, SP, VCHAR, obs-text */
    CC_HEX    = 8,
};

static const unsigned char http_cc[256] = {
     0,  0,  0,  0,  0,  0,  0,  0,  0,  4,  0,  0,  0,  0,  0,  0, /* 0x00 */
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0, /* 0x10 */
     4,  7,  6,  7,  7,  7,  7,  7,  6,  6,  7,  7,  6,  7,  7,  6, /* 0x20 */
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15,  6,  6,  6,  6,  6,  6, /* 0x30 */
     6, 15, 15, 15, 15, 15, 15,  7,  7,  7,  7,  7,  7,  7,  7,  7, /* 0x40 */
     7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  6,  6,  6,  7,  7, /* 0x50 */
     7, 15, 15, 15, 15, 15, 15,  7,  7,  7,  7,  7,  7,  7,  7,  7, /* 0x60 */
     7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  6,  7,  6,  7,  0, /* 0x70 */
     4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4, /* 0x80 */
     4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4, /* 0x90 */
     4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4, /* 0xa0 */
     4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4, /* 0xb0 */
     4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4, /* 0xc0 */
     4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4, /* 0xd0 */
     4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4, /* 0xe0 */
     4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4, /* 0xf0 */
};

static inline int cc_is(char c, int cls) { return (http_cc[(unsigned char)c] & cls) != 0; }

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* 1 when s[0..n) equals lower (lower-case letters, digits, '-') ignoring
 * ASCII case.  Only valid for token bytes: for them c | 0x20 maps an
 * upper-case letter to its lower-case form and changes nothing else that
 * could equal a letter, a digit or '-'. */
static int token_ieq(const char *s, size_t n, const char *lower, size_t lower_len) {
    if (n != lower_len) return 0;
    for (size_t i = 0; i < n; i++)
        if ((char)(s[i] | 0x20) != lower[i]) return 0;
    return 1;
}

static inline char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c; }

/* Same for arbitrary bytes (header values such as "chunked"). */
static int bytes_ieq(const char *s, size_t n, const char *lower, size_t lower_len) {
    if (n != lower_len) return 0;
    for (size_t i = 0; i < n; i++)
        if (ascii_lower(s[i]) != lower[i]) return 0;
    return 1;
}

#define TOKEN_IS(s, n, lit) token_ieq((s), (n), lit, sizeof(lit) - 1)
#define BYTES_ARE(s, n, lit) bytes_ieq((s), (n), lit, sizeof(lit) - 1)

static const skv_slice empty_slice = { NULL, 0 };

/* ---- methods and statuses --------------------------------------------- */

static const char *const method_names[HTTP_M__COUNT] = {
    [HTTP_M_OTHER] = "OTHER",   [HTTP_M_GET] = "GET",         [HTTP_M_HEAD] = "HEAD",
    [HTTP_M_POST] = "POST",     [HTTP_M_PUT] = "PUT",         [HTTP_M_DELETE] = "DELETE",
    [HTTP_M_OPTIONS] = "OPTIONS", [HTTP_M_PATCH] = "PATCH",
};

int http_method_from_slice(skv_slice m) {
    /* Methods are case-sensitive (RFC 9110 9.1). */
    switch (m.len) {
    case 3:
        if (memcmp(m.ptr, "GET", 3) == 0) return HTTP_M_GET;
        if (memcmp(m.ptr, "PUT", 3) == 0) return HTTP_M_PUT;
        break;
    case 4:
        if (memcmp(m.ptr, "HEAD", 4) == 0) return HTTP_M_HEAD;
        if (memcmp(m.ptr, "POST", 4) == 0) return HTTP_M_POST;
        break;
    case 5:
        if (memcmp(m.ptr, "PATCH", 5) == 0) return HTTP_M_PATCH;
        break;
    case 6:
        if (memcmp(m.ptr, "DELETE", 6) == 0) return HTTP_M_DELETE;
        break;
    case 7:
        if (memcmp(m.ptr, "OPTIONS", 7) == 0) return HTTP_M_OPTIONS;
        break;
    default:
        break;
    }
    return HTTP_M_OTHER;
}

const char *http_method_name(int method) {
    if (method < 0 || method >= HTTP_M__COUNT) return "OTHER";
    return method_names[method];
}

const char *http_status_reason(int status) {
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 507: return "Insufficient Storage";
    }
    return "Unknown";
}

skv_slice http_header_get(const http_request *req, const char *name) {
    size_t n = strlen(name);
    for (size_t i = 0; i < req->num_headers; i++) {
        skv_slice h = req->headers[i].name;
        if (h.len != n) continue;
        size_t j = 0;
        while (j < n && ascii_lower(h.ptr[j]) == ascii_lower(name[j])) j++;
        if (j == n) return req->headers[i].value;
    }
    return empty_slice;
}

/* ---- head: end search and limits -------------------------------------- */

static int head_fail(http_request *req, int status, const char *reason) {
    req->error_status = status;
    req->error_reason = reason;
    return HTTP_BAD;
}

/* Length of the one ignored empty line before the request line. */
static size_t leading_empty_line(const char *buf, size_t len) {
    if (len >= 1 && buf[0] == '\n') return 1;
    if (len >= 2 && buf[0] == '\r' && buf[1] == '\n') return 2;
    return 0;
}

/* Returns the head length (index after the '\n' that ends the first empty
 * line at or after skip), or 0 when the head is not complete yet. */
static size_t find_head_end(const char *buf, size_t len, size_t from, size_t skip) {
    const char *end = buf + len;
    const char *p = buf + (from > skip ? from : skip);
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) break;
        size_t i = (size_t)(nl - buf);
        size_t line_start = (i > 0 && buf[i - 1] == '\r') ? i - 1 : i;
        /* i >= skip, so line_start >= skip; when line_start == skip > 0 the
         * byte before is the '\n' of the ignored line: an empty request
         * line, which ends the head and is rejected by the parser. */
        if (line_start > 0 && buf[line_start - 1] == '\n') return i + 1;
        p = nl + 1;
    }
    return 0;
}

static size_t add_sat(size_t a, size_t b) { return a > SIZE_MAX - b ? SIZE_MAX : a + b; }

/* Rules a-c of the file comment on buf[0..len) (a whole head or a prefix
 * of one).  Returns 0 or HTTP_BAD. */
static int check_limits(const char *buf, size_t len, size_t skip, const http_limits *lim,
                        http_request *req) {
    size_t line_max = add_sat(lim->max_uri_bytes, 32);
    const char *line = buf + skip;
    size_t avail = len - skip;
    /* line_max < SIZE_MAX whenever avail > line_max */
    size_t scan = avail <= line_max ? avail : line_max + 1;
    const char *nl = memchr(line, '\n', scan);
    if (!nl) {
        if (avail > line_max) return head_fail(req, 414, "request line too long");
    } else {
        size_t line_len = (size_t)(nl - line);
        const char *sp = memchr(line, ' ', line_len);
        if (sp) {
            const char *target = sp + 1;
            size_t rest = line_len - (size_t)(target - line);
            const char *sp2 = memchr(target, ' ', rest);
            size_t target_len = sp2 ? (size_t)(sp2 - target) : rest;
            if (target_len > lim->max_uri_bytes) return head_fail(req, 414, "request target too long");
        }
    }
    if (len > lim->max_head_bytes) return head_fail(req, 431, "request head too large");
    return 0;
}

/* ---- head: the single parsing pass ------------------------------------ */

/* Per-head state for the derived fields that does not live in req. */
typedef struct head_state {
    int host_seen;
    int te_seen;
    int conn_close;
    int conn_keep_alive;
    int expect_bad;
} head_state;

/* Digits only, no sign, no spaces; leading zeros are harmless. */
static int parse_content_length(skv_slice v, int64_t *out) {
    if (v.len == 0) return SKV_EINVAL;
    uint64_t n = 0;
    for (size_t i = 0; i < v.len; i++) {
        char c = v.ptr[i];
        if (c < '0' || c > '9') return SKV_EINVAL;
        uint64_t d = (uint64_t)(c - '0');
        if (n > ((uint64_t)INT64_MAX - d) / 10) return SKV_ERANGE;
        n = n * 10 + d;
    }
    *out = (int64_t)n;
    return SKV_OK;
}

/* Connection is a comma-separated list of tokens; "close" wins. */
static void parse_connection(skv_slice v, head_state *st) {
    const char *p = v.ptr, *end = v.ptr + v.len;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end;
        const char *s = p;
        while (s < e && (*s == ' ' || *s == '\t')) s++;
        const char *t = e;
        while (t > s && (t[-1] == ' ' || t[-1] == '\t')) t--;
        if (BYTES_ARE(s, (size_t)(t - s), "close")) st->conn_close = 1;
        else if (BYTES_ARE(s, (size_t)(t - s), "keep-alive")) st->conn_keep_alive = 1;
        if (!comma) break;
        p = comma + 1;
    }
}

/* Fills the derived fields from one header.  Returns 0 or HTTP_BAD. */
static int apply_header(http_request *req, head_state *st, const http_header *h) {
    const char *n = h->name.ptr;
    size_t nl = h->name.len;
    skv_slice v = h->value;

    switch (nl) {
    case 4:
        if (!TOKEN_IS(n, nl, "host")) break;
        if (st->host_seen) return head_fail(req, 400, "duplicate Host");
        st->host_seen = 1;
        req->host = v;
        break;
    case 6:
        if (!TOKEN_IS(n, nl, "expect")) break;
        if (BYTES_ARE(v.ptr, v.len, "100-continue")) {
            /* RFC 9110 10.1.1: ignore 100-continue from HTTP/1.0 clients */
            req->expect_continue = req->minor_version >= 1;
        } else {
            st->expect_bad = 1;
        }
        break;
    case 8:
        if (TOKEN_IS(n, nl, "if-match") && !req->if_match.ptr) req->if_match = v;
        break;
    case 10:
        if (TOKEN_IS(n, nl, "connection")) parse_connection(v, st);
        break;
    case 12:
        if (TOKEN_IS(n, nl, "content-type") && !req->content_type.ptr) req->content_type = v;
        break;
    case 13:
        if (TOKEN_IS(n, nl, "if-none-match") && !req->if_none_match.ptr) req->if_none_match = v;
        break;
    case 14: {
        if (!TOKEN_IS(n, nl, "content-length")) break;
        int64_t cl;
        if (parse_content_length(v, &cl) != SKV_OK) return head_fail(req, 400, "invalid Content-Length");
        if (req->content_length >= 0 && req->content_length != cl)
            return head_fail(req, 400, "conflicting Content-Length");
        req->content_length = cl;
        break;
    }
    case 15:
        if (TOKEN_IS(n, nl, "idempotency-key") && !req->idempotency_key.ptr) req->idempotency_key = v;
        break;
    case 17:
        if (!TOKEN_IS(n, nl, "transfer-encoding")) break;
        if (st->te_seen) return head_fail(req, 400, "repeated Transfer-Encoding");
        st->te_seen = 1;
        if (!BYTES_ARE(v.ptr, v.len, "chunked")) return head_fail(req, 501, "unsupported transfer coding");
        req->chunked = 1;
        break;
    default:
        break;
    }
    return 0;
}

/* Request line at p (the head ends in '\n' at or after p).  On success
 * returns 0 and moves *pp past the line end. */

/* For an absolute-form target ("http://host:port/path?q"), the start of its
 * origin part ("/path?q"), or NULL when the target is not absolute-form or
 * has no path. */
static const char *absolute_form_origin(skv_slice t) {
    size_t skip;
    if (t.len > 7 && strncasecmp(t.ptr, "http://", 7) == 0) skip = 7;
    else if (t.len > 8 && strncasecmp(t.ptr, "https://", 8) == 0) skip = 8;
    else return NULL;
    const char *slash = memchr(t.ptr + skip, '/', t.len - skip);
    if (!slash || slash == t.ptr + skip) return NULL; /* no path, or no authority */
    return slash;
}

static int parse_request_line(const char **pp, http_request *req) {
    const char *p = *pp;

    const char *m = p;
    while (cc_is(*p, CC_TCHAR)) p++;
    if (p == m || *p != ' ') return head_fail(req, 400, "malformed method");
    req->method_name = skv_slice_make(m, (size_t)(p - m));
    req->method = http_method_from_slice(req->method_name);
    p++;

    const char *t = p;
    while (cc_is(*p, CC_TARGET)) p++;
    if (p == t || *p != ' ') return head_fail(req, 400, "malformed request target");
    req->target = skv_slice_make(t, (size_t)(p - t));
    req->path = req->target; /* narrowed to the origin part below */
    if (t[0] != '/' && !(req->target.len == 1 && t[0] == '*' && req->method == HTTP_M_OPTIONS)) {
        /* absolute-form (RFC 9112 3.2.2), which servers must accept: route on
         * the path after the authority; "http://h" without a path is 400. */
        const char *o = absolute_form_origin(req->target);
        if (!o) return head_fail(req, 400, "request target must be origin-form or absolute-form");
        req->path = skv_slice_make(o, req->target.len - (size_t)(o - t));
    }
    p++;

    /* "HTTP/" DIGIT "." DIGIT; none of these bytes is '\n', so when they
     * match, the line end that follows is still inside the head. */
    for (int i = 0; i < 5; i++)
        if (p[i] != "HTTP/"[i]) return head_fail(req, 400, "malformed HTTP version");
    if (p[5] < '0' || p[5] > '9' || p[6] != '.' || p[7] < '0' || p[7] > '9')
        return head_fail(req, 400, "malformed HTTP version");
    int major = p[5] - '0', minor = p[7] - '0';
    p += 8;
    if (*p == '\r') p++;
    if (*p != '\n') return head_fail(req, 400, "malformed request line");
    p++;
    if (major != 1) return head_fail(req, 505, "HTTP version not supported");
    req->minor_version = minor >= 1 ? 1 : 0; /* 1.x with x > 1 is served as 1.1 */
    *pp = p;
    return 0;
}

/* One header line at p; *pp moves past its line end. */
static int parse_header_line(const char **pp, http_header *h, http_request *req) {
    const char *p = *pp;
    if (*p == ' ' || *p == '\t') return head_fail(req, 400, "obsolete line folding");
    const char *name = p;
    while (cc_is(*p, CC_TCHAR)) p++;
    if (p == name || *p != ':') return head_fail(req, 400, "malformed header name");
    h->name = skv_slice_make(name, (size_t)(p - name));
    p++;
    while (*p == ' ' || *p == '\t') p++;
    const char *value = p;
    while (cc_is(*p, CC_VALUE)) p++;
    const char *value_end = p;
    if (*p == '\r') p++;
    if (*p != '\n') return head_fail(req, 400, "invalid character in header value");
    p++;
    while (value_end > value && (value_end[-1] == ' ' || value_end[-1] == '\t')) value_end--;
    h->value = skv_slice_make(value, (size_t)(value_end - value));
    *pp = p;
    return 0;
}

static void request_reset(http_request *req) {
    req->num_headers = 0;
    req->query = empty_slice;
    req->content_length = -1;
    req->chunked = 0;
    req->keep_alive = 0;
    req->expect_continue = 0;
    req->host = empty_slice;
    req->content_type = empty_slice;
    req->if_match = empty_slice;
    req->if_none_match = empty_slice;
    req->idempotency_key = empty_slice;
    req->error_status = 0;
    req->error_reason = NULL;
}

static int slice_inside(skv_slice s, const char *lo, const char *hi) {
    if (s.ptr == NULL) return s.len == 0;
    return s.ptr >= lo && s.ptr <= hi && s.len <= (size_t)(hi - s.ptr);
}

/* Invariant checker: every slice of a parsed request lies in buf[0..len). */
static int http_request_is_sane(const http_request *req, const char *buf, size_t len) {
    const char *hi = buf + len;
    if (req->method < 0 || req->method >= HTTP_M__COUNT) return 0;
    if (req->minor_version != 0 && req->minor_version != 1) return 0;
    if (req->num_headers > HTTP_MAX_HEADERS) return 0;
    if (req->chunked && req->content_length >= 0) return 0;
    const skv_slice *s[] = { &req->method_name, &req->target, &req->path, &req->query, &req->host,
                             &req->content_type, &req->if_match, &req->if_none_match,
                             &req->idempotency_key };
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
        if (!slice_inside(*s[i], buf, hi)) return 0;
    for (size_t i = 0; i < req->num_headers; i++)
        if (!slice_inside(req->headers[i].name, buf, hi) || !slice_inside(req->headers[i].value, buf, hi))
            return 0;
    return 1;
}

/* Parses the complete head buf[skip..head_len). */
static int parse_head(const char *buf, size_t skip, size_t head_len, http_request *req) {
    const char *p = buf + skip;
    head_state st = { 0 };
    request_reset(req);

    int rc = parse_request_line(&p, req);
    if (rc) return rc;

    for (;;) {
        if (*p == '\r' && p[1] == '\n') { p += 2; break; }
        if (*p == '\n') { p++; break; }
        if (req->num_headers == HTTP_MAX_HEADERS) return head_fail(req, 431, "too many header fields");
        http_header *h = &req->headers[req->num_headers];
        rc = parse_header_line(&p, h, req);
        if (rc) return rc;
        req->num_headers++;
        rc = apply_header(req, &st, h);
        if (rc) return rc;
    }
    /* The search and this pass agree on where the first empty line is. */
    assert(p == buf + head_len);

    if (req->chunked && req->content_length >= 0)
        return head_fail(req, 400, "both Content-Length and Transfer-Encoding");
    if (req->chunked && req->minor_version == 0)
        return head_fail(req, 400, "Transfer-Encoding in an HTTP/1.0 request");
    if (req->minor_version == 1 && !st.host_seen) return head_fail(req, 400, "missing Host");
    if (st.expect_bad) return head_fail(req, 417, "unsupported expectation");

    if (st.conn_close) req->keep_alive = 0;
    else if (st.conn_keep_alive) req->keep_alive = 1;
    else req->keep_alive = req->minor_version == 1;

    skv_slice origin = req->path;
    const char *q = memchr(origin.ptr, '?', origin.len);
    if (q) {
        req->path = skv_slice_make(origin.ptr, (size_t)(q - origin.ptr));
        req->query = skv_slice_make(q + 1, origin.len - req->path.len - 1);
    }
    return (int)head_len;
}

int http_parse_head(const char *buf, size_t len, size_t prev_len, const http_limits *lim,
                    http_request *req) {
    assert(buf != NULL || len == 0);
    assert(lim != NULL && req != NULL);
    if (len == 0) return HTTP_NEED_MORE;

    size_t skip = leading_empty_line(buf, len);
    if (prev_len > len) prev_len = 0; /* not the same head: search it all */
    size_t from = prev_len > 3 ? prev_len - 3 : 0;
    size_t head_len = find_head_end(buf, len, from, skip);

    if (head_len == 0) {
        /* Nothing can be over a limit while the buffer is below both. */
        if (len <= lim->max_head_bytes && len - skip <= add_sat(lim->max_uri_bytes, 32))
            return HTTP_NEED_MORE;
        int rc = check_limits(buf, len, skip, lim, req);
        return rc ? rc : HTTP_NEED_MORE;
    }
    if (head_len > (size_t)INT_MAX) return head_fail(req, 431, "request head too large");
    if (head_len > lim->max_head_bytes || head_len - skip > lim->max_uri_bytes) {
        int rc = check_limits(buf, head_len, skip, lim, req);
        if (rc) return rc;
    }
    int rc = parse_head(buf, skip, head_len, req);
    assert(rc < 0 || http_request_is_sane(req, buf, head_len));
    return rc;
}

/* ---- chunked bodies ---------------------------------------------------- */

enum {
    CH_SIZE,          /* hex digits of the chunk size */
    CH_SIZE_WS,       /* BWS after the size: only ';' may follow */
    CH_EXT,           /* chunk extension, skipped */
    CH_SIZE_LF,       /* CR seen at the end of the size line */
    CH_DATA,
    CH_DATA_CR,
    CH_DATA_LF,
    CH_TRAILER_START, /* start of a trailer line or of the final empty line */
    CH_TRAILER_NAME,
    CH_TRAILER_VALUE,
    CH_TRAILER_LF,
    CH_FINAL_LF,
    CH_DONE,
    CH_ERROR,
};

static int http_chunked_is_sane(const http_chunked *c) {
    if (c->state < CH_SIZE || c->state > CH_ERROR) return 0;
    if (c->line_len > HTTP_CHUNK_LINE_MAX) return 0;
    if (c->state == CH_DATA && c->chunk_left == 0) return 0;
    return 1;
}

void http_chunked_init(http_chunked *c) {
    c->state = CH_SIZE;
    c->chunk_left = 0;
    c->line_len = 0;
    c->total = 0;
}

/* Counts one more byte of a size or trailer line against the limits. */
static int line_byte(http_chunked *c) {
    if (c->line_len >= HTTP_CHUNK_LINE_MAX) return HTTP_BAD;
    c->line_len++;
    if (c->state >= CH_TRAILER_START && c->state <= CH_TRAILER_LF) {
        /* in the trailer section chunk_left counts its bytes */
        if (++c->chunk_left > HTTP_TRAILER_MAX) return HTTP_BAD;
    }
    return 0;
}

/* Advances the framing state machine by one byte (every state but
 * CH_DATA, CH_DONE and CH_ERROR).  Returns 0, HTTP_BAD or SKV_ETOOBIG. */
static int chunked_step(http_chunked *c, char ch, size_t max_body) {
    switch (c->state) {
    case CH_SIZE: {
        int d = hex_value(ch);
        if (d >= 0) {
            if (c->chunk_left > (UINT64_MAX >> 4)) return HTTP_BAD;
            c->chunk_left = (c->chunk_left << 4) | (uint64_t)d;
            return line_byte(c);
        }
        if (c->line_len == 0) return HTTP_BAD; /* no digits */
        if (ch == '\r') { c->state = CH_SIZE_LF; return 0; }
        if (ch == ';') { c->state = CH_EXT; return line_byte(c); }
        if (ch == ' ' || ch == '\t') { c->state = CH_SIZE_WS; return line_byte(c); }
        return HTTP_BAD;
    }
    case CH_SIZE_WS:
        if (ch == ';') { c->state = CH_EXT; return line_byte(c); }
        if (ch == ' ' || ch == '\t') return line_byte(c);
        return HTTP_BAD;
    case CH_EXT:
        if (ch == '\r') { c->state = CH_SIZE_LF; return 0; }
        if (!cc_is(ch, CC_VALUE)) return HTTP_BAD;
        return line_byte(c);
    case CH_SIZE_LF:
        if (ch != '\n') return HTTP_BAD;
        c->line_len = 0;
        if (c->chunk_left == 0) {
            c->state = CH_TRAILER_START;
            return 0;
        }
        if (c->chunk_left > max_body || c->total > max_body - c->chunk_left) return SKV_ETOOBIG;
        c->state = CH_DATA;
        return 0;
    case CH_DATA_CR:
        if (ch != '\r') return HTTP_BAD;
        c->state = CH_DATA_LF;
        return 0;
    case CH_DATA_LF:
        if (ch != '\n') return HTTP_BAD;
        c->state = CH_SIZE;
        c->chunk_left = 0;
        c->line_len = 0;
        return 0;
    case CH_TRAILER_START:
        if (ch == '\r') { c->state = CH_FINAL_LF; return 0; }
        if (!cc_is(ch, CC_TCHAR)) return HTTP_BAD;
        c->state = CH_TRAILER_NAME;
        return line_byte(c);
    case CH_TRAILER_NAME:
        if (ch == ':') { c->state = CH_TRAILER_VALUE; return line_byte(c); }
        if (!cc_is(ch, CC_TCHAR)) return HTTP_BAD;
        return line_byte(c);
    case CH_TRAILER_VALUE:
        if (ch == '\r') { c->state = CH_TRAILER_LF; return 0; }
        if (!cc_is(ch, CC_VALUE)) return HTTP_BAD;
        return line_byte(c);
    case CH_TRAILER_LF:
        if (ch != '\n') return HTTP_BAD;
        c->state = CH_TRAILER_START;
        c->line_len = 0;
        return 0;
    case CH_FINAL_LF:
        if (ch != '\n') return HTTP_BAD;
        c->state = CH_DONE;
        return 0;
    default:
        return HTTP_BAD;
    }
}

long http_chunked_feed(http_chunked *c, const char *in, size_t len, skv_buf *out,
                       size_t max_body, int *done) {
    assert(http_chunked_is_sane(c));
    size_t i = 0;
    *done = 0;
    if (c->state == CH_ERROR) return HTTP_BAD;
    while (i < len && c->state != CH_DONE) {
        if (c->state == CH_DATA) {
            size_t n = len - i;
            if ((uint64_t)n > c->chunk_left) n = (size_t)c->chunk_left;
            skv_buf_append(out, in + i, n);
            c->total += n;
            c->chunk_left -= n;
            i += n;
            if (c->chunk_left == 0) c->state = CH_DATA_CR;
            continue;
        }
        int rc = chunked_step(c, in[i], max_body);
        if (rc) {
            c->state = CH_ERROR;
            return rc;
        }
        i++;
    }
    if (c->state == CH_DONE) *done = 1;
    assert(http_chunked_is_sane(c));
    return (long)i;
}

/* ---- percent-decoding and query strings -------------------------------- */

int http_url_decode(skv_slice src, int plus_as_space, skv_buf *out) {
    skv_buf_reserve(out, src.len); /* decoding never grows */
    char *d = out->data + out->len;
    for (size_t i = 0; i < src.len; i++) {
        char ch = src.ptr[i];
        if (ch == '%') {
            if (src.len - i < 3) goto malformed;
            int h = hex_value(src.ptr[i + 1]), l = hex_value(src.ptr[i + 2]);
            if (h < 0 || l < 0) goto malformed;
            *d++ = (char)(h << 4 | l);
            i += 2;
        } else if (ch == '+' && plus_as_space) {
            *d++ = ' ';
        } else {
            *d++ = ch;
        }
    }
    out->len = (size_t)(d - out->data);
    out->data[out->len] = '\0';
    return SKV_OK;
malformed:
    out->data[out->len] = '\0'; /* nothing appended */
    return SKV_EINVAL;
}

/* 1 when the raw (still encoded) key decodes to exactly name[0..n). */
static int query_key_is(const char *key, size_t key_len, const char *name, size_t n) {
    size_t j = 0;
    for (size_t i = 0; i < key_len; i++, j++) {
        char ch = key[i];
        if (ch == '%') {
            if (key_len - i < 3) return 0;
            int h = hex_value(key[i + 1]), l = hex_value(key[i + 2]);
            if (h < 0 || l < 0) return 0;
            ch = (char)(h << 4 | l);
            i += 2;
        } else if (ch == '+') {
            ch = ' ';
        }
        if (j >= n || name[j] != ch) return 0;
    }
    return j == n;
}

int http_query_get(skv_slice query, const char *name, skv_buf *out) {
    if (query.len == 0) return 0;
    size_t name_len = strlen(name);
    const char *p = query.ptr, *end = query.ptr + query.len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *seg_end = amp ? amp : end;
        if (seg_end > p) {
            const char *eq = memchr(p, '=', (size_t)(seg_end - p));
            const char *key_end = eq ? eq : seg_end;
            if (query_key_is(p, (size_t)(key_end - p), name, name_len)) {
                if (!eq) return 1;
                int rc = http_url_decode(skv_slice_make(eq + 1, (size_t)(seg_end - eq - 1)), 1, out);
                return rc ? rc : 1;
            }
        }
        if (!amp) break;
        p = amp + 1;
    }
    return 0;
}
