/*
 * http — a strict, zero-copy, resumable HTTP/1.1 request parser.
 *
 * Role: turn the bytes a connection has received into request heads and
 * bodies.  It knows nothing about sockets, routes or responses.
 *
 * Heads (request line + header fields + empty line) are parsed in place:
 * every skv_slice in http_request points into the caller's buffer and stays
 * valid until the caller moves or frees those bytes.  http_parse_head() is
 * resumable without rescanning: the caller passes how many bytes it had
 * already offered (prev_len), and the parser only searches the new bytes
 * (minus 3) for the end of the head; the full parse runs once per head.
 *
 * Strictness (RFC 9112): method is a token; target is origin-form ("/...")
 * or "*" for OPTIONS; version is HTTP/1.0 or HTTP/1.1; lines end in CRLF
 * (a bare LF is accepted as a line end, a bare CR is not); header names are
 * tokens with no whitespace before the colon; obsolete line folding,
 * NUL and other control bytes in values are rejected; duplicate or invalid
 * Content-Length, Content-Length together with Transfer-Encoding, and any
 * transfer coding other than a single "chunked" are rejected (request
 * smuggling defence).  HTTP/1.1 requests must carry Host.
 *
 * Bodies: Content-Length bodies are taken in place by the caller.  Chunked
 * bodies are decoded by http_chunked_feed() into a caller-owned skv_buf,
 * incrementally, as the bytes arrive; chunk extensions are skipped, trailers
 * are read and discarded.
 *
 * Thread-safety: none needed; all state lives in caller-owned structs.
 */
#ifndef SKV_HTTP_H
#define SKV_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define HTTP_MAX_HEADERS 64

/* Return values of the parse functions besides a byte count. */
#define HTTP_NEED_MORE (-2) /* head/body incomplete: read more and call again */
#define HTTP_BAD       (-1) /* malformed or over a limit: see ->error_status */

enum http_method {
    HTTP_M_OTHER = 0, /* a valid token we do not implement: answer 501 or 405 */
    HTTP_M_GET, HTTP_M_HEAD, HTTP_M_POST, HTTP_M_PUT, HTTP_M_DELETE,
    HTTP_M_OPTIONS, HTTP_M_PATCH,
    HTTP_M__COUNT
};

typedef struct http_header {
    skv_slice name;  /* as received; compare with skv_slice_ieq_cstr */
    skv_slice value; /* leading/trailing spaces and tabs trimmed */
} http_header;

typedef struct http_limits {
    size_t max_head_bytes;   /* request line + headers; over it -> 431 */
    size_t max_uri_bytes;    /* request target; over it -> 414 */
} http_limits;

typedef struct http_request {
    int method;              /* enum http_method */
    skv_slice method_name;
    skv_slice target;        /* raw request target, e.g. "/v1/kv/a%20b?x=1" */
    skv_slice path;          /* target up to '?', still percent-encoded */
    skv_slice query;         /* after '?', empty when none */
    int minor_version;       /* 0 or 1 */
    size_t num_headers;
    http_header headers[HTTP_MAX_HEADERS];

    /* Derived from the headers by http_parse_head(): */
    int64_t content_length;  /* -1 when absent */
    int chunked;             /* Transfer-Encoding: chunked */
    int keep_alive;          /* HTTP/1.1 default on, 1.0 default off; Connection header wins */
    int expect_continue;     /* Expect: 100-continue */
    skv_slice host;
    skv_slice content_type;  /* empty when absent */
    skv_slice if_match;      /* raw header value, empty when absent */
    skv_slice if_none_match;
    skv_slice idempotency_key;

    int error_status;        /* on HTTP_BAD: 400, 414, 417, 431, 501 or 505 */
    const char *error_reason;/* on HTTP_BAD: short static English text */
} http_request;

/*
 * Parses one request head at buf[0..len).
 * prev_len: bytes of this same head offered on the previous call (0 first).
 * Returns the head length in bytes (> 0; the body starts right after), or
 * HTTP_NEED_MORE, or HTTP_BAD with req->error_status/error_reason set.
 * On HTTP_NEED_MORE the limits are still enforced on what has arrived, so a
 * client cannot make the caller buffer more than max_head_bytes.
 * req is fully overwritten on a positive return; its contents are
 * unspecified otherwise.
 */
int http_parse_head(const char *buf, size_t len, size_t prev_len,
                    const http_limits *lim, http_request *req);

/* Returns the value of the first header called name (case-insensitive), or
 * an empty slice with ptr == NULL when absent. */
skv_slice http_header_get(const http_request *req, const char *name);

/* Parses a method token into enum http_method. */
int http_method_from_slice(skv_slice m);
/* Canonical upper-case name of a method ("GET"); "OTHER" for HTTP_M_OTHER. */
const char *http_method_name(int method);
/* Standard reason phrase for a status code ("Not Found"); never NULL. */
const char *http_status_reason(int status);

typedef struct http_chunked {
    int state;               /* private */
    uint64_t chunk_left;     /* private */
    size_t line_len;         /* private: length of the current size/trailer line */
    size_t total;            /* decoded body bytes so far */
} http_chunked;

void http_chunked_init(http_chunked *c);

/*
 * Feeds in[0..len) to the chunked decoder, appending decoded body bytes to
 * out.  Returns the number of input bytes consumed (0..len) and sets *done
 * to 1 once the last chunk and the trailer section have been consumed (the
 * bytes after that belong to the next request and are not consumed).
 * Returns HTTP_BAD on malformed framing (size line not hex, missing CRLF,
 * chunk size overflow, size/trailer line longer than 4 KiB) and
 * SKV_ETOOBIG (from err.h) when the decoded body would exceed max_body.
 * On error the decoder must not be fed again.
 */
long http_chunked_feed(http_chunked *c, const char *in, size_t len, skv_buf *out,
                       size_t max_body, int *done);

/*
 * Percent-decodes src into out (appended).  plus_as_space: also map '+' to
 * ' ' (query strings).  Returns 0, or SKV_EINVAL on a malformed escape
 * ("%G1", truncated "%4").  Decoded bytes may be anything, including NUL.
 */
int http_url_decode(skv_slice src, int plus_as_space, skv_buf *out);

/*
 * Looks up the first query parameter called name in query ("a=1&b=2", not
 * percent-decoded) and decodes its value into out (appended).  Returns 1 when
 * found, 0 when absent, SKV_EINVAL on a malformed escape.  A parameter with
 * no '=' has an empty value.
 */
int http_query_get(skv_slice query, const char *name, skv_buf *out);

#endif
