/*
 * conn — one client connection: reads, request framing, pipelining,
 * responses, backpressure, timeouts and the lingering close.
 *
 * Reading.  A connection with no partial request reads into its worker's
 * shared 64 KiB buffer; complete requests are answered straight from there
 * (zero copy) and only a partial tail is copied into the connection's own
 * buffer `in`, which then receives the following reads.  `in` never holds
 * more than one request's head and body plus what the client pipelined
 * after it, and it is bounded by --max-header-bytes + --max-body-bytes.
 *
 * Framing.  Requests are handled strictly in arrival order and each one is
 * answered before the next is parsed, so pipelined responses are in order by
 * construction.  Content-Length bodies are taken in place; chunked bodies
 * are decoded into `body`.  A request whose body has not fully arrived is
 * parsed again (head only) when more bytes come; `fed` remembers how much of
 * a chunked body the decoder has already consumed.
 *
 * Writing.  Responses are appended to `out`; after each batch of requests
 * one uv_try_write() sends them, and only what the kernel did not take is
 * handed to uv_write() (from `wbuf`, so `out` can keep filling).  When more
 * than OUT_HIGH_WATER bytes wait for a slow reader, reading stops until the
 * backlog drains (a client cannot make the server buffer without bound).
 *
 * Closing.  After a response with "Connection: close" the write side is shut
 * down and the connection lingers, discarding input, until the client closes
 * or LINGER_MS passes, so that the client reads the response instead of a
 * reset.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "mem.h"
#include "worker.h"

#define OUT_HIGH_WATER (4u * 1024 * 1024)
#define LINGER_MS 2000
#define IN_MIN_ALLOC (16 * 1024)
#define IN_MAX_STEP (256 * 1024)
#define HELD_IN_MAX (64 * 1024) /* input buffered behind a pending write before reading pauses */

struct conn {
    uv_tcp_t handle;
    uv_write_t wreq;
    uv_shutdown_t sreq;
    worker *w;
    conn *prev, *next;
    skv_buf in;             /* partial request bytes, starting at a request start */
    skv_buf out;            /* responses not yet handed to the kernel */
    skv_buf wbuf;           /* bytes owned by the in-flight uv_write */
    skv_buf body;           /* decoded chunked body */
    http_chunked chunked;
    size_t fed;             /* chunked body bytes (after the head) already decoded */
    size_t head_prev;       /* bytes already scanned for the end of the head */
    size_t need;            /* bytes `in` must hold for the current request */
    uint64_t last_active_ms;
    uint64_t req_start_ms;  /* 0 = no partial request */
    uint64_t linger_start_ms;
    int metrics_only;
    int writing;
    int reading_paused;
    int backlogged;         /* process() stopped at OUT_HIGH_WATER with requests left in `in` */
    int closing;            /* close once `out` is flushed */
    int lingering;
    int sent_continue;
    int in_close;           /* uv_close called */
    int held;               /* a response waits for its write to be durable */
    int zombie;             /* closed while held: freed when the write completes */
    shard_waiter waiter;    /* registered with the shard by a pending write */
    conn *inbox_next;       /* worker inbox link (completed writes) */
    skv_buf held_out;       /* the held response */
    struct {                /* what the deferred metrics and access log need */
        int route, method, keep_alive, seed_style;
        uint64_t t0;
        size_t req_bytes;
        char line[300];     /* method and target, for the access log */
    } hold;
    int eof;                /* the client closed its side */
    char peer[48];
};

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);
static void deliver(shard_waiter *wt);
static void conn_close(conn *c);
static void conn_flush(conn *c);
static void resume_reading(conn *c);
static void drain_backlog(conn *c);

/* ---- life cycle ---------------------------------------------------------------------------- */

static void list_remove(worker *w, conn *c) {
    if (c->prev) c->prev->next = c->next;
    else w->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

static void conn_free(conn *c) {
    worker *w = c->w;
    list_remove(w, c);
    w->nconns--;
    if (!c->metrics_only) atomic_fetch_sub(&w->srv->open_conns, 1);
    metrics_conn_closed(w->api.mw);
    skv_buf_free(&c->in);
    skv_buf_free(&c->out);
    skv_buf_free(&c->wbuf);
    skv_buf_free(&c->body);
    skv_buf_free(&c->held_out);
    free(c);
}

static void on_closed(uv_handle_t *h) {
    conn *c = h->data;
    /* A pending write still points at c->waiter: free once it is delivered. */
    if (c->held) c->zombie = 1;
    else conn_free(c);
}

static void conn_close(conn *c) {
    if (c->in_close) return;
    c->in_close = 1;
    uv_close((uv_handle_t *)&c->handle, on_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
    conn *c = req->data;
    if (status < 0 || c->w->forced) {
        conn_close(c);
        return;
    }
    /* Keep reading (and discarding) until the client closes or LINGER_MS. */
    c->lingering = 1;
    c->linger_start_ms = uv_now(&c->w->loop);
    resume_reading(c);
}

/* All output is out: shut down the write side and linger. */
static void conn_finish(conn *c) {
    if (c->in_close || c->lingering) return;
    if (c->eof) {
        conn_close(c);
        return;
    }
    c->sreq.data = c;
    if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->handle, on_shutdown) != 0) conn_close(c);
    else c->lingering = 1, c->linger_start_ms = uv_now(&c->w->loop);
}

/* ---- writing ------------------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

static void resume_reading(conn *c) {
    if (!c->reading_paused || c->in_close) return;
    c->reading_paused = 0;
    uv_read_start((uv_stream_t *)&c->handle, on_alloc, on_read);
}

static void process_pending(conn *c);

static void on_written(uv_write_t *req, int status) {
    conn *c = req->data;
    c->writing = 0;
    skv_buf_reset(&c->wbuf);
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->out.len > 0) {
        conn_flush(c);
        if (c->writing || c->in_close) return; /* on_written comes back */
    }
    if (c->closing) {
        conn_finish(c);
        return;
    }
    if (c->reading_paused) {
        process_pending(c);
        drain_backlog(c);
        if (!c->closing && !c->backlogged && c->out.len < OUT_HIGH_WATER) resume_reading(c);
    }
}

static void conn_flush(conn *c) {
    if (c->writing || c->in_close) return;
    if (c->out.len == 0) {
        if (c->closing) conn_finish(c);
        return;
    }
    uv_buf_t b = uv_buf_init(c->out.data, (unsigned)c->out.len);
    int n = uv_try_write((uv_stream_t *)&c->handle, &b, 1);
    if (n == (int)c->out.len) {
        skv_buf_reset(&c->out);
        if (c->closing) conn_finish(c);
        return;
    }
    if (n < 0 && n != UV_EAGAIN) {
        conn_close(c);
        return;
    }
    if (n < 0) n = 0;
    /* Hand the rest to uv_write from wbuf; `out` keeps collecting responses. */
    skv_buf tmp = c->wbuf;
    c->wbuf = c->out;
    c->out = tmp;
    skv_buf_reset(&c->out);
    b = uv_buf_init(c->wbuf.data + n, (unsigned)(c->wbuf.len - (size_t)n));
    c->wreq.data = c;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->handle, &b, 1, on_written) != 0) {
        conn_close(c);
        return;
    }
    c->writing = 1;
}

/* ---- requests ------------------------------------------------------------------------------ */

static void reply_init(conn *c, reply *r, const http_request *req, int keep_alive) {
    memset(r, 0, sizeof *r);
    r->out = &c->out;
    r->date = c->w->date;
    r->head_only = req && req->method == HTTP_M_HEAD;
    r->keep_alive = keep_alive && !c->w->draining;
}

/* Answers a request the framing layer rejects, and closes after it. */
static void reject(conn *c, int status, const char *code, const char *reason) {
    reply r;
    reply_init(c, &r, NULL, 0);
    size_t before = c->out.len;
    reply_error(&r, status, code, "%s", reason);
    metrics_http_observe(c->w->api.mw, API_ROUTE_INVALID, HTTP_M_OTHER, status, 0, 0, c->out.len - before);
    c->closing = 1;
    if (c->w->srv->cfg->access_log) {
        char line[256];
        int n = snprintf(line, sizeof line, "access %s \"-\" %d (%s)\n", c->peer, status, reason);
        if (n > 0) log_access(line, (unsigned long)(n < (int)sizeof line ? n : (int)sizeof line - 1));
    }
}

static const char *status_code_name(int status) {
    switch (status) {
    case 408: return "request_timeout";
    case 413: return "body_too_large";
    case 414: return "uri_too_long";
    case 417: return "expectation_failed";
    case 431: return "headers_too_large";
    case 501: return "not_implemented";
    case 505: return "http_version_not_supported";
    default: return "bad_request";
    }
}

static void access_log(conn *c, const http_request *req, int status, size_t bytes, uint64_t ns) {
    skv_buf line;
    skv_buf_init(&line);
    skv_buf_printf(&line, "access %s \"%.*s ", c->peer, (int)req->method_name.len, req->method_name.ptr);
    /* The target is client text: escape it so the line stays one line. */
    skv_buf_append_json_str(&line, req->target.ptr, req->target.len > 512 ? 512 : req->target.len);
    skv_buf_printf(&line, " HTTP/1.%d\" %d %zu %.3fms\n", req->minor_version, status, bytes, (double)ns / 1e6);
    log_access(line.data, line.len);
    skv_buf_free(&line);
}

/* The response of a pending write waits in held_out until the write is
 * durable (conn_write_done); processing of this connection pauses. */
static void hold(conn *c, const http_request *req, const reply *r, int route, size_t before, uint64_t t0,
                 size_t req_bytes) {
    c->held = 1;
    skv_buf_reset(&c->held_out);
    skv_buf_append(&c->held_out, c->out.data + before, c->out.len - before);
    c->out.len = before;
    if (c->out.cap) c->out.data[before] = '\0';
    c->hold.route = route;
    c->hold.method = req->method;
    c->hold.keep_alive = r->keep_alive;
    c->hold.seed_style = r->seed_style;
    c->hold.t0 = t0;
    c->hold.req_bytes = req_bytes;
    snprintf(c->hold.line, sizeof c->hold.line, "%.*s %.*s", (int)req->method_name.len, req->method_name.ptr,
             (int)(req->target.len > 256 ? 256 : req->target.len), req->target.ptr);
}

static void dispatch(conn *c, const http_request *req, skv_slice body) {
    worker *w = c->w;
    reply r;
    reply_init(c, &r, req, req->keep_alive);
    r.waiter = &c->waiter;
    size_t before = c->out.len;
    uint64_t t0 = uv_hrtime();
    int route = c->metrics_only ? api_dispatch_metrics_port(&w->api, req, &r)
                                : api_dispatch(&w->api, req, body, &r);
    if (r.held) {
        hold(c, req, &r, route, before, t0, body.len);
        return;
    }
    uint64_t ns = uv_hrtime() - t0;
    size_t bytes = c->out.len - before;
    metrics_http_observe(w->api.mw, (unsigned)route, req->method, r.status, ns, body.len, bytes);
    if (w->srv->cfg->access_log) access_log(c, req, r.status, bytes, ns);
    if (!r.keep_alive) c->closing = 1;
}

static void maybe_continue(conn *c, const http_request *req, size_t body_have) {
    if (!req->expect_continue || c->sent_continue || body_have > 0 || req->minor_version == 0) return;
    skv_buf_append_cstr(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
    c->sent_continue = 1;
}

static void request_done(conn *c) {
    c->fed = 0;
    c->head_prev = 0;
    c->need = 0;
    c->sent_continue = 0;
    c->req_start_ms = 0;
    skv_buf_reset(&c->body);
    http_chunked_init(&c->chunked);
}

/*
 * A chunked body still arriving: the raw chunks already decoded into `body`
 * are dropped from `in` (the head stays, for the next parse), so `in` is
 * bounded by the decoded size, not by the client's framing overhead.  Input
 * still in the worker's shared buffer is left alone; it is copied into `in`
 * and compacted on the next read.
 */
static void drop_decoded_framing(conn *c, const char *data, size_t body_start) {
    if (data != c->in.data || c->fed == 0) return;
    char *from = c->in.data + body_start;
    memmove(from, from + c->fed, c->in.len - body_start - c->fed);
    c->in.len -= c->fed;
    c->in.data[c->in.len] = '\0';
    c->fed = 0;
    c->sent_continue = 1; /* the body is flowing: no 100 Continue from now on */
}

/*
 * Handles the complete requests in data[0..len) and returns how many bytes
 * they took; the rest is the start of an incomplete request (or garbage
 * after a close).
 */
static size_t process(conn *c, const char *data, size_t len) {
    worker *w = c->w;
    const skv_config *cfg = w->srv->cfg;
    size_t pos = 0;
    http_request req;
    while (pos < len && !c->closing && !c->in_close && !c->held) {
        if (c->out.len >= OUT_HIGH_WATER) { /* backpressure: finish writing first */
            c->backlogged = 1;
            break;
        }
        const char *p = data + pos;
        size_t avail = len - pos;
        int hl = http_parse_head(p, avail, c->head_prev, &w->limits, &req);
        if (hl == HTTP_NEED_MORE) {
            c->head_prev = avail;
            c->need = 0;
            break;
        }
        if (hl == HTTP_BAD) {
            reject(c, req.error_status, status_code_name(req.error_status), req.error_reason);
            break;
        }
        size_t head_len = (size_t)hl;
        skv_slice body;
        size_t total;
        if (req.chunked) {
            int done = 0;
            long used = http_chunked_feed(&c->chunked, p + head_len + c->fed, avail - head_len - c->fed, &c->body,
                                          cfg->max_body_bytes, &done);
            if (used == SKV_ETOOBIG) {
                reject(c, 413, "body_too_large", "request body exceeds --max-body-bytes");
                break;
            }
            if (used < 0) {
                reject(c, 400, "bad_chunked_body", "malformed chunked transfer coding");
                break;
            }
            c->fed += (size_t)used;
            if (!done) {
                maybe_continue(c, &req, c->fed);
                c->need = 0;
                drop_decoded_framing(c, data, pos + head_len);
                break;
            }
            body = skv_slice_make(c->body.data ? c->body.data : "", c->body.len);
            total = head_len + c->fed;
        } else {
            uint64_t cl = req.content_length > 0 ? (uint64_t)req.content_length : 0;
            if (cl > cfg->max_body_bytes) {
                reject(c, 413, "body_too_large", "request body exceeds --max-body-bytes");
                break;
            }
            if (avail - head_len < cl) {
                maybe_continue(c, &req, avail - head_len);
                c->need = head_len + (size_t)cl;
                break;
            }
            body = skv_slice_make(p + head_len, (size_t)cl);
            total = head_len + (size_t)cl;
        }
        dispatch(c, &req, body);
        request_done(c);
        pos += total;
    }
    return pos;
}

/* Runs the requests already buffered in `in` (after a pause). */
static void process_pending(conn *c) {
    c->backlogged = 0;
    if (c->in.len == 0) return;
    size_t used = process(c, c->in.data, c->in.len);
    skv_buf_consume(&c->in, used);
    if (c->in.len == 0) c->req_start_ms = 0;
    else if (used > 0) c->req_start_ms = uv_now(&c->w->loop);
    conn_flush(c);
}

/* Requests left behind by backpressure: keep running them while the kernel
 * takes the output at once; stop when a write is in flight (on_written
 * comes back here) or nothing is left. */
static void drain_backlog(conn *c) {
    while (c->backlogged && !c->writing && !c->closing && !c->in_close) process_pending(c);
}

/* ---- reading ------------------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    conn *c = h->data;
    worker *w = c->w;
    (void)suggested;
    if (c->in.len == 0 && !w->rbuf_busy && !c->lingering) {
        w->rbuf_busy = 1;
        *buf = uv_buf_init(w->rbuf, WORKER_READ_BUF);
        return;
    }
    if (c->lingering) skv_buf_reset(&c->in); /* discard */
    /* Grow toward a large announced body step by step (the buffer doubles),
     * so memory follows the bytes that really arrive, not the header. */
    size_t want = IN_MIN_ALLOC;
    if (c->need > c->in.len && c->need - c->in.len > want) want = c->need - c->in.len;
    if (want > IN_MAX_STEP) want = IN_MAX_STEP;
    skv_buf_reserve(&c->in, want);
    *buf = uv_buf_init(c->in.data + c->in.len, (unsigned)(c->in.cap - c->in.len - 1));
}

/* Largest amount of unparsed input a connection may hold. */
static size_t in_limit(const conn *c) {
    const skv_config *cfg = c->w->srv->cfg;
    return cfg->max_header_bytes + cfg->max_body_bytes + IN_MIN_ALLOC;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
    conn *c = stream->data;
    worker *w = c->w;
    int from_shared = buf->base == w->rbuf;
    if (from_shared) w->rbuf_busy = 0;
    if (nread == 0) return;
    if (nread < 0) {
        /* EOF or error: answer nothing more; send what is queued, then close. */
        if (c->in_close) return;
        c->eof = 1;
        uv_read_stop(stream);
        if (c->held) return; /* answer the pending write and what follows it first (write_done) */
        if (!c->writing && c->out.len == 0) conn_close(c);
        else c->closing = 1, conn_flush(c);
        return;
    }
    uint64_t now = uv_now(&w->loop);
    c->last_active_ms = now;
    if (c->lingering || c->closing) {
        skv_buf_reset(&c->in);
        return;
    }
    if (c->req_start_ms == 0) c->req_start_ms = now;
    size_t used;
    if (from_shared) {
        used = process(c, buf->base, (size_t)nread);
        if (used < (size_t)nread && !c->closing) skv_buf_append(&c->in, buf->base + used, (size_t)nread - used);
    } else {
        c->in.len += (size_t)nread;
        c->in.data[c->in.len] = '\0';
        used = process(c, c->in.data, c->in.len);
        skv_buf_consume(&c->in, used);
    }
    if (c->closing) skv_buf_reset(&c->in);
    if (c->in.len == 0) c->req_start_ms = 0;
    else if (used > 0) c->req_start_ms = now;
    if (c->in.len > in_limit(c)) {
        reject(c, 413, "request_too_large", "buffered request data exceeds --max-header-bytes + --max-body-bytes");
        skv_buf_reset(&c->in);
    }
    conn_flush(c);
    drain_backlog(c);
    int held_full = c->held && c->in.len > HELD_IN_MAX;
    if (!c->closing && !c->in_close && (c->backlogged || held_full || c->out.len >= OUT_HIGH_WATER) &&
        !c->reading_paused) {
        c->reading_paused = 1;
        uv_read_stop(stream);
    }
}

/* ---- accept, drain, sweep ------------------------------------------------------------------ */

/* Answers a connection refused at accept with a 503 and closes it at once:
 * a lingering close would let a connection flood hold descriptors. */
static void refuse(conn *c, int reason) {
    reply r;
    reply_init(c, &r, NULL, 0);
    r.extra = "Retry-After: 1\r\n";
    if (reason == METRICS_REJECT_MAX_CONNECTIONS)
        reply_error(&r, 503, "too_many_connections", "connection limit reached (--max-connections), retry later");
    else
        reply_error(&r, 503, "shutting_down", "the node is shutting down, retry on another node or later");
    uv_buf_t b = uv_buf_init(c->out.data, (unsigned)c->out.len);
    uv_try_write((uv_stream_t *)&c->handle, &b, 1);
    metrics_conn_rejected(c->w->api.mw, reason);
    conn_close(c);
}

void conn_accept(worker *w, uv_stream_t *listener, int metrics_only) {
    server *srv = w->srv;
    conn *c = skv_calloc(1, sizeof *c);
    c->w = w;
    c->metrics_only = metrics_only;
    c->waiter.deliver = deliver;
    http_chunked_init(&c->chunked);
    uv_tcp_init(&w->loop, &c->handle);
    c->handle.data = c;
    c->next = w->conns;
    if (w->conns) w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    /* Scrape connections on the metrics port do not take client slots. */
    unsigned open = metrics_only ? 0 : atomic_fetch_add(&srv->open_conns, 1) + 1;
    metrics_conn_opened(w->api.mw);
    if (uv_accept(listener, (uv_stream_t *)&c->handle) != 0) {
        conn_close(c);
        return;
    }
    c->last_active_ms = uv_now(&w->loop);
    int reject_reason = -1;
    if (open > srv->cfg->max_connections)
        reject_reason = METRICS_REJECT_MAX_CONNECTIONS;
    else if (w->draining)
        reject_reason = METRICS_REJECT_SHUTDOWN;
    if (reject_reason >= 0) {
        refuse(c, reject_reason);
        return;
    }
    uv_tcp_nodelay(&c->handle, 1);
    if (srv->cfg->access_log) {
        struct sockaddr_storage ss;
        int len = sizeof ss;
        if (uv_tcp_getpeername(&c->handle, (struct sockaddr *)&ss, &len) == 0) {
            if (ss.ss_family == AF_INET6) uv_ip6_name((struct sockaddr_in6 *)&ss, c->peer, sizeof c->peer);
            else uv_ip4_name((struct sockaddr_in *)&ss, c->peer, sizeof c->peer);
        }
    }
    if (!c->peer[0]) strcpy(c->peer, "-");
    uv_read_start((uv_stream_t *)&c->handle, on_alloc, on_read);
}

static int conn_idle(const conn *c) {
    return c->in.len == 0 && c->out.len == 0 && !c->writing && c->req_start_ms == 0 && !c->held;
}

void conn_drain_all(worker *w, int force) {
    conn *next;
    for (conn *c = w->conns; c; c = next) {
        next = c->next;
        if (force || conn_idle(c) || c->lingering) conn_close(c);
        else c->closing = c->closing || (c->in.len == 0 && !c->reading_paused);
    }
}

void conn_sweep(worker *w, uint64_t now) {
    const skv_config *cfg = w->srv->cfg;
    conn *next;
    for (conn *c = w->conns; c; c = next) {
        next = c->next;
        if (c->in_close) continue;
        if (c->lingering) {
            if (now - c->linger_start_ms >= LINGER_MS) conn_close(c);
            continue;
        }
        /* Complete requests held back by backpressure are not "arriving":
         * the slow party is the reader, so no 408 for them. */
        int arriving = c->req_start_ms && !c->backlogged && !c->reading_paused;
        if (arriving && now - c->req_start_ms >= cfg->request_timeout_ms) {
            if (c->writing) {
                conn_close(c);
            } else {
                skv_buf_reset(&c->in);
                reject(c, 408, "request_timeout", "request not received within --request-timeout");
                conn_flush(c);
            }
            continue;
        }
        if (conn_idle(c) && now - c->last_active_ms >= cfg->idle_timeout_ms) conn_close(c);
    }
}

/* ---- durable-write completions ------------------------------------------------------------- */

/* The status code of a response we wrote ("HTTP/1.1 201 Created..."). */
static int http_status_of(const char *p, size_t n) {
    if (n < 12) return 0;
    return (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
}

/* Called by a flusher thread: hands the connection back to its worker. */
static void deliver(shard_waiter *wt) {
    conn *c = (conn *)(void *)((char *)wt - offsetof(conn, waiter));
    worker *w = c->w;
    pthread_mutex_lock(&w->inbox_mu);
    c->inbox_next = w->inbox;
    w->inbox = c;
    pthread_mutex_unlock(&w->inbox_mu);
    uv_async_send(&w->inbox_async);
}

/* On the worker: the held response goes out (or its error instead), and the
 * connection carries on with what it has buffered. */
static void write_done(conn *c) {
    worker *w = c->w;
    c->held = 0;
    if (c->zombie) {
        conn_free(c);
        return;
    }
    reply r;
    reply_init(c, &r, NULL, c->hold.keep_alive);
    size_t before = c->out.len;
    if (c->waiter.status == SKV_OK) {
        skv_buf_append(&c->out, c->held_out.data, c->held_out.len);
        r.status = http_status_of(c->held_out.data, c->held_out.len);
    } else {
        r.seed_style = c->hold.seed_style;
        r.keep_alive = c->hold.keep_alive;
        api_write_failed(&r, c->waiter.status);
    }
    skv_buf_reset(&c->held_out);
    uint64_t ns = uv_hrtime() - c->hold.t0;
    size_t bytes = c->out.len - before;
    metrics_http_observe(w->api.mw, (unsigned)c->hold.route, c->hold.method, r.status, ns, c->hold.req_bytes, bytes);
    if (w->srv->cfg->access_log) {
        char line[512];
        int n = snprintf(line, sizeof line, "access %s \"%s\" %d %zu %.3fms\n", c->peer, c->hold.line, r.status, bytes,
                         (double)ns / 1e6);
        if (n > 0) log_access(line, (unsigned long)(n < (int)sizeof line ? n : (int)sizeof line - 1));
    }
    if (!r.keep_alive) c->closing = 1;
    conn_flush(c);
    if (c->in_close) return;
    if (!c->closing) {
        process_pending(c);
        drain_backlog(c);
    }
    if (c->eof && !c->held) { /* the client had closed its side: answer, then close */
        c->closing = 1;
        conn_flush(c);
        return;
    }
    if (!c->closing && !c->eof && !c->held && !c->backlogged && c->out.len < OUT_HIGH_WATER) resume_reading(c);
}

void conn_inbox_run(worker *w) {
    pthread_mutex_lock(&w->inbox_mu);
    conn *list = w->inbox;
    w->inbox = NULL;
    pthread_mutex_unlock(&w->inbox_mu);
    /* The inbox is LIFO; order between connections does not matter. */
    while (list) {
        conn *next = list->inbox_next;
        write_done(list);
        list = next;
    }
}
