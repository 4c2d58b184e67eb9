/*
 * server — the node process: worker threads, listeners, signals, and the
 * graceful-shutdown sequence.
 *
 * Threads: --threads workers, each with its own libuv loop and its own
 * SO_REUSEPORT listening socket on --port, so the kernel spreads
 * connections over the workers and a connection lives on one thread for its
 * whole life (no locks in the connection path).  Worker 0 also owns the
 * --metrics-port listener.  The main thread runs a small loop that only
 * waits for SIGTERM/SIGINT and for the workers to finish.
 *
 * Lifecycle: STARTING (sockets bound) -> READY (loops running; /health/ready
 * is 200) -> DRAINING (first signal: listeners closed, idle connections
 * closed, in-flight requests finished and answered with Connection: close)
 * -> exit 0 when every connection is gone.  A second signal, or
 * --shutdown-timeout, cuts the remaining connections.
 */
#ifndef SKV_SERVER_H
#define SKV_SERVER_H

#include "config.h"

typedef struct server server;

/* Binds every listening socket and builds the store.  Returns 0 and *out,
 * or a negative SKV_E* code after logging the reason (port in use, bad
 * address, bad placement config). */
int server_new(const skv_config *cfg, server **out);

/* Runs until the shutdown sequence completes.  Returns 0, or SKV_ESYS when
 * a worker thread could not be started (the others are stopped first). */
int server_run(server *s);

void server_free(server *s);

#endif
