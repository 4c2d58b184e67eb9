/*
 * reply — writes HTTP/1.1 responses straight into a connection's output
 * buffer.
 *
 * A handler either calls reply_start(), any number of reply_header*(),
 * then exactly one of reply_body() / reply_json_buf(); or calls one of
 * reply_json() / reply_error(), which write the whole response.  The
 * writer adds Date, Content-Length (except on 204) and Connection itself and drops the body
 * bytes (not the Content-Length) for HEAD requests, so handlers never
 * special-case HEAD.  Because it writes into the output buffer directly, a
 * GET hit copies the value once, from the shard table to the socket buffer,
 * while the shard lock is held.
 *
 * Error bodies have one shape everywhere:
 *   {"error":{"code":"not_found","message":"key not found"}}
 * and, on the seed routes (r->seed_style), a FastAPI-style "detail" string
 * next to it.
 */
#ifndef SKV_REPLY_H
#define SKV_REPLY_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

typedef struct reply {
    skv_buf *out;           /* connection output buffer (borrowed) */
    const char *date;       /* "Date: ...\r\n" line, cached per worker (borrowed) */
    int head_only;          /* request was HEAD */
    int keep_alive;         /* 0 -> "Connection: close" */
    int seed_style;         /* add "detail" to error bodies */
    int status;             /* set by reply_start */
    const char *extra;      /* optional extra header lines ("Allow: GET\r\n"), written by reply_start */
    struct shard_waiter *waiter; /* for a write that must wait for the disk (set by the connection) */
    int held;               /* set by the handler: the response is held until waiter is delivered */
    int accepted;           /* the write was acknowledged before it is durable: 2xx becomes 202 */
} reply;

void reply_start(reply *r, int status);
void reply_header(reply *r, const char *name, const char *value, size_t len);
void reply_header_cstr(reply *r, const char *name, const char *value);
void reply_header_u64(reply *r, const char *name, uint64_t v);
/* ETag: "<version>" */
void reply_etag(reply *r, uint64_t version);
/* Ends the head and appends the body (omitted for HEAD). */
void reply_body(reply *r, const char *content_type, const void *body, size_t len);
/* Same, for a JSON body built in a buffer. */
void reply_json_buf(reply *r, const skv_buf *json);
/* Complete response with no extra headers: reply_start(status) + reply_json_buf(json). */
void reply_json(reply *r, int status, const skv_buf *json);
/* Complete error response: reply_start(status) + JSON error body.
 * code is a stable snake_case identifier; message is human text. */
void reply_error(reply *r, int status, const char *code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Formats the Date header line for time t into out (>= 48 bytes). */
void reply_format_date(long t, char *out, size_t cap);

#endif
