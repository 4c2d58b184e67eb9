/*
 * api — the HTTP routes: the canonical API (/v1/kv/{key}), the operational
 * routes (/shards, /health, /health/live, /health/ready, /metrics, /v1/hotkeys) and the
 * seed systems' routes (/store, /put, /get, /delete, /kv), answering from
 * the store.
 *
 * The connection layer calls api_dispatch() once per complete request, on
 * the worker thread that owns the connection, with the body already
 * assembled.  The handler writes exactly one response through the reply
 * writer before returning and keeps no pointer into req or body.  It
 * returns the route id used as the metrics label.
 *
 * Bad input never changes stored data: every validation happens before the
 * one call into shard_apply().
 */
#ifndef SKV_API_H
#define SKV_API_H

#include <stdatomic.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "http.h"
#include "metrics.h"
#include "reply.h"
#include "store.h"

#define API_ROUTES(X)                 \
    X(KV, "/v1/kv/{key}")              \
    X(SHARDS, "/shards")               \
    X(HEALTH, "/health")               \
    X(LIVE, "/health/live")            \
    X(READY, "/health/ready")          \
    X(METRICS, "/metrics")             \
    X(ROOT, "/")                       \
    X(SEED_STORE, "/store")            \
    X(SEED_STORE_GET, "/store/{userId}") \
    X(SEED_PUT, "/put")                \
    X(SEED_GET, "/get")                \
    X(SEED_DELETE, "/delete")          \
    X(SEED_KV, "/kv")                  \
    X(KV_SCAN, "/v1/kv")               \
    X(COUNTER, "/v1/counters/{name}")  \
    X(SEED_COUNTER, "/counter")        \
    X(SEED_COUNTER_INCR, "/counter/increment") \
    X(SEED_COUNTER_DECR, "/counter/decrement") \
    X(SEED_COUNTER_VALUE, "/counter/value") \
    X(COLLECTIONS, "/v1/collections")  \
    X(COLLECTION, "/v1/collections/{name}") \
    X(COLLECTION_DOCS, "/v1/collections/{name}/docs") \
    X(COLLECTION_DOC, "/v1/collections/{name}/docs/{id}") \
    X(SEED_USERS, "/users")            \
    X(SEED_USER, "/users/{user_id}")   \
    X(CACHE_STATS, "/cache/stats")     \
    X(HOTKEYS, "/v1/hotkeys")          \
    X(PLACEMENT, "/v1/placement")      \
    X(UI, "/ui/{file}")                \
    X(DOCS, "/docs")                   \
    X(OPENAPI, "/openapi.json")        \
    X(NOT_FOUND, "unmatched")          \
    X(INVALID, "invalid")

enum api_route {
#define API__ROUTE_ENUM(id, label) API_ROUTE_##id,
    API_ROUTES(API__ROUTE_ENUM)
#undef API__ROUTE_ENUM
    API_ROUTE__COUNT
};

/* Labels for the metrics route dimension, indexed by enum api_route. */
extern const char *const api_route_labels[API_ROUTE__COUNT];

enum api_state { API_STATE_STARTING = 0, API_STATE_READY, API_STATE_DRAINING };

/* What the handlers share across workers (read-only after start, except
 * state, which the server moves STARTING -> READY -> DRAINING). */
typedef struct api_env {
    const skv_config *cfg;
    store *st;
    metrics *m;
    _Atomic int state;          /* enum api_state */
    uint64_t start_ms;          /* uv_hrtime()/1e6 at start */
    struct commit *commit;      /* set before state becomes READY; read only after */
    struct coll_registry *colls; /* collections (coll.h); set before READY */
    struct hotkeys *hot;        /* hot-key sketch (hotkeys.h), or NULL: nothing counted */
    unsigned nworkers;
} api_env;

/* Per worker thread: scratch buffers reused across requests so that the
 * hot path does not allocate once warm. */
typedef struct api_worker {
    api_env *env;
    metrics_worker *mw;
    struct hotkeys_worker *hot; /* this worker's hot-key summaries, or NULL */
    unsigned id;
    skv_buf key;                /* decoded key */
    skv_buf tmp;                /* JSON bodies and other scratch */
    skv_buf answer;             /* encoded answer of a write (api_write_answer) */
    skv_buf idem;               /* internal key of an Idempotency-Key */
    uint64_t rnd;               /* eviction sampling state */
} api_worker;

void api_worker_init(api_worker *w, api_env *env, unsigned id);
void api_worker_destroy(api_worker *w);

/* Handles one request on the main port; returns the route id. */
int api_dispatch(api_worker *w, const http_request *req, skv_slice body, reply *r);
/* Writes the error response of a write whose log write failed after it was
 * accepted (err: SKV_ENOSPACE -> 507, SKV_EIO -> 503). */
void api_write_failed(reply *r, int err);

/* Handles one request on the metrics port (only /metrics and the health
 * probes are served there); returns the route id. */
int api_dispatch_metrics_port(api_worker *w, const http_request *req, reply *r);

#endif
