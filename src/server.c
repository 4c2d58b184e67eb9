#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "coll.h"
#include "commit.h"
#include "counter.h"
#include "sweeper.h"
#include "datadir.h"
#include "err.h"
#include "hotkeys.h"
#include "log.h"
#include "mem.h"
#include "worker.h"

#define TICK_MS 100
#define LISTEN_BACKLOG 1024

/* ---- sockets ------------------------------------------------------------------------------- */

static int resolve(const char *host, int port, struct sockaddr_storage *ss) {
    memset(ss, 0, sizeof *ss);
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0) return SKV_OK;
    if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0) return SKV_OK;
    if (strcmp(host, "localhost") == 0) return uv_ip4_addr("127.0.0.1", port, (struct sockaddr_in *)ss) ? SKV_EINVAL : SKV_OK;
    return SKV_EINVAL;
}

static socklen_t addr_len(const struct sockaddr_storage *ss) {
    return ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

static void set_port(struct sockaddr_storage *ss, int port) {
    if (ss->ss_family == AF_INET6) ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    else ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
}

static int get_port(int fd) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) return -1;
    return ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
}

/* Opens a bound, non-listening socket; returns the fd or -errno. */
static int open_socket(const struct sockaddr_storage *ss, int reuseport) {
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    if (bind(fd, (const struct sockaddr *)ss, addr_len(ss)) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* open_socket() and listen(): connections wait in the backlog from now on,
 * before the worker loops run, so the port answers as soon as start-up is
 * logged.  Returns the fd or -errno. */
static int open_listener(const struct sockaddr_storage *ss, int reuseport) {
    int fd = open_socket(ss, reuseport);
    if (fd >= 0 && listen(fd, LISTEN_BACKLOG) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/*
 * Binds one SO_REUSEPORT socket per worker on host:port.  A probe bind
 * without SO_REUSEPORT first makes sure no other process listens there
 * (with SO_REUSEPORT a second node of the same user would otherwise silently
 * share the port); it also resolves port 0 to a free port.
 */
static int bind_workers(server *s) {
    const skv_config *cfg = s->cfg;
    struct sockaddr_storage ss;
    if (resolve(cfg->host, cfg->port, &ss) != SKV_OK) {
        log_error("cannot listen: '%s' is not an IPv4 or IPv6 address", cfg->host);
        return SKV_EINVAL;
    }
    int probe = open_socket(&ss, 0);
    if (probe < 0) {
        log_error("cannot listen on %s:%d: %s", cfg->host, cfg->port, strerror(-probe));
        return SKV_ESYS;
    }
    int port = get_port(probe);
    close(probe);
    set_port(&ss, port);
    for (unsigned i = 0; i < s->nworkers; i++) {
        int fd = open_listener(&ss, 1);
        if (fd < 0) {
            log_error("cannot listen on %s:%d: %s", cfg->host, port, strerror(-fd));
            return SKV_ESYS;
        }
        s->workers[i].listen_fd = fd;
    }
    s->bound_port = port;
    if (cfg->metrics_port > 0) {
        struct sockaddr_storage ms = ss;
        set_port(&ms, cfg->metrics_port);
        int fd = open_listener(&ms, 0);
        if (fd < 0) {
            log_error("cannot listen on %s:%d (metrics): %s", cfg->host, cfg->metrics_port, strerror(-fd));
            return SKV_ESYS;
        }
        s->workers[0].metrics_fd = fd;
    }
    return SKV_OK;
}

/* ---- workers ------------------------------------------------------------------------------- */

static void update_date(worker *w) {
    long now = (long)time(NULL);
    if (now == w->date_sec) return;
    w->date_sec = now;
    reply_format_date(now, w->date, sizeof w->date);
}

static void on_connection(uv_stream_t *listener, int status) {
    worker *w = listener->data;
    if (status < 0) {
        log_warn("accept failed on worker %u: %s", w->id, uv_strerror(status));
        return;
    }
    conn_accept(w, listener, listener == (uv_stream_t *)&w->metrics_listener);
}

static void close_listeners(worker *w) {
    if (w->listening) {
        uv_close((uv_handle_t *)&w->listener, NULL);
        w->listening = 0;
    }
    if (w->metrics_listening) {
        uv_close((uv_handle_t *)&w->metrics_listener, NULL);
        w->metrics_listening = 0;
    }
}

/* Stops the loop once draining and every connection is gone. */
static void close_loop_handles(worker *w) {
    uv_handle_t *hs[] = { (uv_handle_t *)&w->tick, (uv_handle_t *)&w->wake, (uv_handle_t *)&w->inbox_async };
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
        if (!uv_is_closing(hs[i])) uv_close(hs[i], NULL);
}

static void maybe_exit(worker *w) {
    if (!w->draining || w->nconns > 0) return;
    close_loop_handles(w);
}

static void on_inbox(uv_async_t *a) {
    worker *w = a->data;
    conn_inbox_run(w);
    maybe_exit(w);
}

static void on_wake(uv_async_t *a) {
    worker *w = a->data;
    server *s = w->srv;
    if (atomic_load(&s->env.state) != API_STATE_DRAINING) return;
    int force = atomic_load(&s->force_close);
    if (!w->draining) {
        w->draining = 1;
        close_listeners(w);
    }
    if (force) w->forced = 1;
    conn_drain_all(w, force);
    maybe_exit(w);
}

static void on_tick(uv_timer_t *t) {
    worker *w = t->data;
    update_date(w);
    conn_sweep(w, uv_now(&w->loop));
    if (w->draining) conn_drain_all(w, w->forced);
    maybe_exit(w);
}

static int listen_on(worker *w, uv_tcp_t *h, int fd) {
    uv_tcp_init(&w->loop, h);
    h->data = w;
    int rc = uv_tcp_open(h, fd);
    if (rc == 0) rc = uv_listen((uv_stream_t *)h, LISTEN_BACKLOG, on_connection);
    if (rc != 0) log_error("worker %u: listen failed: %s", w->id, uv_strerror(rc));
    return rc;
}

static void *worker_main(void *arg) {
    worker *w = arg;
    if (listen_on(w, &w->listener, w->listen_fd) == 0) w->listening = 1;
    if (w->metrics_fd >= 0 && listen_on(w, &w->metrics_listener, w->metrics_fd) == 0) w->metrics_listening = 1;
    uv_run(&w->loop, UV_RUN_DEFAULT);
    return NULL;
}

static void worker_init(server *s, worker *w, unsigned id) {
    memset(w, 0, sizeof *w);
    w->id = id;
    w->srv = s;
    w->listen_fd = -1;
    w->metrics_fd = -1;
    uv_loop_init(&w->loop);
    uv_async_init(&w->loop, &w->wake, on_wake);
    w->wake.data = w;
    uv_timer_init(&w->loop, &w->tick);
    w->tick.data = w;
    uv_async_init(&w->loop, &w->inbox_async, on_inbox);
    w->inbox_async.data = w;
    pthread_mutex_init(&w->inbox_mu, NULL);
    w->limits.max_head_bytes = s->cfg->max_header_bytes;
    w->limits.max_uri_bytes = s->cfg->max_uri_bytes;
    w->rbuf = skv_malloc(WORKER_READ_BUF);
    api_worker_init(&w->api, &s->env, id);
    update_date(w);
}

static void worker_destroy(worker *w) {
    /* Sockets never handed to a loop (start-up failed) are closed here;
     * the others were closed with their handles. */
    if (w->listen_fd >= 0 && !w->started) close(w->listen_fd);
    if (w->metrics_fd >= 0 && !w->started) close(w->metrics_fd);
    /* A loop that ran closed these itself (maybe_exit); one that never ran did not. */
    close_loop_handles(w);
    uv_run(&w->loop, UV_RUN_NOWAIT); /* let pending close callbacks run */
    pthread_mutex_destroy(&w->inbox_mu);
    uv_loop_close(&w->loop);
    api_worker_destroy(&w->api);
    free(w->rbuf);
}

/* ---- main thread: signals and shutdown ----------------------------------------------------- */

static void wake_workers(server *s) {
    for (unsigned i = 0; i < s->nworkers; i++) uv_async_send(&s->workers[i].wake);
}

static void on_shutdown_timeout(uv_timer_t *t) {
    server *s = t->data;
    log_warn("shutdown timeout: closing the remaining connections");
    atomic_store(&s->force_close, 1);
    wake_workers(s);
}

static void on_signal(uv_signal_t *h, int signum) {
    server *s = h->data;
    if (atomic_load(&s->env.state) == API_STATE_DRAINING) {
        log_warn("second %s: closing every connection now", strsignal(signum));
        atomic_store(&s->force_close, 1);
        wake_workers(s);
        return;
    }
    log_info("%s received: draining (no new connections; in-flight requests finish)", strsignal(signum));
    atomic_store(&s->env.state, API_STATE_DRAINING);
    wake_workers(s);
    uv_timer_start(&s->shutdown_timer, on_shutdown_timeout, s->cfg->shutdown_timeout_ms, 0);
}

static void on_worker_exited(uv_async_t *a) {
    server *s = a->data;
    /* uv_async_send coalesces: count the threads that really finished. */
    if (atomic_load(&s->workers_exited) < s->nworkers) return;
    uv_close((uv_handle_t *)&s->sigterm, NULL);
    uv_close((uv_handle_t *)&s->sigint, NULL);
    uv_close((uv_handle_t *)&s->shutdown_timer, NULL);
    uv_close((uv_handle_t *)&s->worker_exited, NULL);
}

/* ---- public -------------------------------------------------------------------------------- */

int server_new(const skv_config *cfg, server **out) {
    server *s = skv_calloc(1, sizeof *s);
    s->cfg = cfg;
    s->nworkers = cfg->threads;
    ring_config rc = { cfg->placement, cfg->hash, cfg->shards, cfg->vnodes, 1 };
    int err = store_new(&rc, &s->env.st);
    if (err) {
        log_error("bad placement configuration: %s", skv_strerror(err));
        free(s);
        return err;
    }
    s->lock_fd = -1;
    s->env.cfg = cfg;
    s->env.nworkers = s->nworkers;
    s->env.m = metrics_new(s->nworkers, cfg->shards, api_route_labels, API_ROUTE__COUNT);
    s->env.hot = hotkeys_new(s->nworkers, cfg->shards, NULL);
    atomic_init(&s->env.state, API_STATE_STARTING);
    s->env.start_ms = uv_hrtime() / 1000000;
    s->workers = skv_calloc(s->nworkers, sizeof *s->workers);
    for (unsigned i = 0; i < s->nworkers; i++) worker_init(s, &s->workers[i], i);
    uv_loop_init(&s->main_loop);
    s->lock_fd = datadir_lock(cfg->data_dir);
    if (s->lock_fd < 0) {
        err = s->lock_fd;
        s->lock_fd = -1;
        server_free(s);
        return err;
    }
    err = datadir_check_meta(cfg->data_dir, cfg->shards, ring_strategy_name(cfg->placement), ring_hash_name(cfg->hash),
                             cfg->vnodes);
    if (err == SKV_OK) err = bind_workers(s);
    if (err) {
        server_free(s);
        return err;
    }
    *out = s;
    return SKV_OK;
}

static void *worker_thread(void *arg) {
    worker *w = arg;
    worker_main(w);
    atomic_fetch_add(&w->srv->workers_exited, 1);
    uv_async_send(&w->srv->worker_exited);
    return NULL;
}

int server_run(server *s) {
    const skv_config *cfg = s->cfg;
    signal(SIGPIPE, SIG_IGN);
    uv_signal_init(&s->main_loop, &s->sigterm);
    uv_signal_init(&s->main_loop, &s->sigint);
    s->sigterm.data = s->sigint.data = s;
    uv_signal_start(&s->sigterm, on_signal, SIGTERM);
    uv_signal_start(&s->sigint, on_signal, SIGINT);
    uv_timer_init(&s->main_loop, &s->shutdown_timer);
    s->shutdown_timer.data = s;
    uv_async_init(&s->main_loop, &s->worker_exited, on_worker_exited);
    s->worker_exited.data = s;

    int failed = 0;
    for (unsigned i = 0; i < s->nworkers && !failed; i++) {
        worker *w = &s->workers[i];
        uv_timer_start(&w->tick, on_tick, TICK_MS, TICK_MS);
        w->started = 1;
        int e = pthread_create(&w->thread, NULL, worker_thread, w);
        if (e != 0) {
            log_error("cannot start worker thread %u: %s", i, strerror(e));
            w->started = 0;
            failed = 1;
        }
    }
    char metrics_where[32] = "off";
    if (cfg->metrics_port) snprintf(metrics_where, sizeof metrics_where, "port %d", cfg->metrics_port);
    if (!failed) {
        log_info("shardkv %s listening on http://%s:%d (metrics: %s) with %u threads, %u shards, placement %s/%s, "
                 "%u vnodes, fsync %s; recovering data from %s",
                 SKV_VERSION, cfg->host, s->bound_port, metrics_where, s->nworkers, cfg->shards,
                 ring_strategy_name(cfg->placement), ring_hash_name(cfg->hash), cfg->vnodes,
                 commit_policy_name(cfg->fsync_policy), cfg->data_dir);
        /* Workers already answer /health/live (200) and /health/ready (503) meanwhile. */
        commit_config cc = { cfg->data_dir, cfg->fsync_policy, cfg->snapshot_bytes, &skv_io_posix };
        if (commit_start(&cc, s->env.st, cfg->threads, &s->commit) != SKV_OK) {
            log_error("recovery failed: not starting");
            failed = 2;
        } else if (coll_registry_new(s->env.st, cfg, &s->env.colls) != SKV_OK) {
            log_error("loading the collections failed: not starting");
            commit_stop(s->commit);
            s->commit = NULL;
            failed = 2;
        } else if (sweeper_start(s->env.st, cfg,
                                 (sweeper_task[]){ { coll_maintain, s->env.colls }, { counter_reclaim_task, &s->env } },
                                 2, &s->sweeper) != SKV_OK) {
            coll_registry_free(s->env.colls);
            s->env.colls = NULL;
            commit_stop(s->commit);
            s->commit = NULL;
            failed = 2;
        }
    }
    if (failed) {
        /* Stop the workers that did start; the ones that did not count as exited. */
        for (unsigned i = 0; i < s->nworkers; i++)
            if (!s->workers[i].started) atomic_fetch_add(&s->workers_exited, 1);
        atomic_store(&s->env.state, API_STATE_DRAINING);
        atomic_store(&s->force_close, 1);
        wake_workers(s);
        uv_async_send(&s->worker_exited);
        uv_run(&s->main_loop, UV_RUN_DEFAULT);
        for (unsigned i = 0; i < s->nworkers; i++)
            if (s->workers[i].started) pthread_join(s->workers[i].thread, NULL);
        return failed == 2 ? SKV_EIO : SKV_ESYS;
    }
    s->env.commit = s->commit;
    atomic_store(&s->env.state, API_STATE_READY);
    log_info("ready: serving on http://%s:%d", cfg->host, s->bound_port);
    uv_run(&s->main_loop, UV_RUN_DEFAULT);
    for (unsigned i = 0; i < s->nworkers; i++) pthread_join(s->workers[i].thread, NULL);
    /* The workers are gone, so nothing writes any more: flush and sync what is buffered. */
    sweeper_stop(s->sweeper);
    s->sweeper = NULL;
    commit_stop(s->commit);
    s->commit = s->env.commit = NULL;
    coll_registry_free(s->env.colls);
    s->env.colls = NULL;
    log_info("shutdown complete");
    return SKV_OK;
}

void server_free(server *s) {
    if (!s) return;
    for (unsigned i = 0; i < s->nworkers; i++) worker_destroy(&s->workers[i]);
    uv_loop_close(&s->main_loop);
    free(s->workers);
    metrics_free(s->env.m);
    hotkeys_free(s->env.hot);
    store_free(s->env.st);
    if (s->lock_fd >= 0) close(s->lock_fd);
    free(s);
}
