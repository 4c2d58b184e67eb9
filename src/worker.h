/*
 * worker — private to server.c and conn.c: one event-loop thread and the
 * connections it owns.  Everything in a worker is touched only by its own
 * thread, except `wake` (uv_async_send from the main thread) and the
 * server's shared atomics.
 */
#ifndef SKV_WORKER_H
#define SKV_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <uv.h>

#include "api.h"
#include "config.h"
#include "http.h"

typedef struct server server;
typedef struct conn conn;

#define WORKER_READ_BUF (64 * 1024)

typedef struct worker {
    unsigned id;
    server *srv;
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_tcp_t metrics_listener;
    int listen_fd;              /* handed to the loop at start */
    int metrics_fd;             /* -1 unless worker 0 with a metrics port */
    int listening, metrics_listening;
    int started;                /* thread created: the loop owns the sockets */
    uv_async_t wake;            /* main thread -> worker: look at srv->state */
    uv_timer_t tick;            /* timeouts, Date header */
    pthread_t thread;
    api_worker api;
    http_limits limits;
    conn *conns;                /* doubly linked list of open connections */
    unsigned nconns;
    int draining;
    int forced;
    long date_sec;
    char date[64];              /* cached "Date: ...\r\n" */
    char *rbuf;                 /* shared read buffer for connections with no partial request */
    int rbuf_busy;
    uv_async_t inbox_async;     /* flusher -> worker: durable writes completed */
    pthread_mutex_t inbox_mu;
    conn *inbox;                /* connections whose pending write completed; under inbox_mu */
} worker;

struct commit;

struct server {
    const skv_config *cfg;
    struct commit *commit;      /* durability; NULL until recovery is done */
    struct sweeper *sweeper;    /* expiry thread; NULL until recovery is done */
    int lock_fd;                /* flock on <data-dir>/LOCK */
    api_env env;
    unsigned nworkers;
    worker *workers;
    _Atomic unsigned open_conns;  /* across workers, for --max-connections */
    _Atomic int force_close;      /* second signal or shutdown timeout */
    uv_loop_t main_loop;
    uv_signal_t sigterm, sigint;
    uv_timer_t shutdown_timer;
    uv_async_t worker_exited;
    _Atomic unsigned workers_exited;
    int bound_port;
};

/* conn.c */
void conn_accept(worker *w, uv_stream_t *listener, int metrics_only);
/* Closes idle and lingering connections; marks those with a response in
 * flight and no request pending to close once it is written.  The others
 * (a request still arriving or held back) close after their response, which
 * says "Connection: close" while draining; the tick calls this again until
 * none is left.  force: close every connection now. */
void conn_drain_all(worker *w, int force);
/* Enforces idle, request and linger timeouts; called from the tick timer. */
void conn_sweep(worker *w, uint64_t now_ms);
/* Answers the connections whose pending writes completed (inbox_async). */
void conn_inbox_run(worker *w);

#endif
