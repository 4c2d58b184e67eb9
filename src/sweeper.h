/*
 * sweeper — background upkeep of the shards' contents: active expiry of
 * keys past their TTL, and the memory and key limits (--max-memory,
 * --max-keys, --eviction).
 *
 * Expiry is also lazy (a read or write of an expired key removes it, see
 * shard.h); the sweeper bounds how long expired keys keep memory: every
 * SWEEP_INTERVAL_MS it walks a bounded slice of every shard's table (a
 * resumable cursor per shard) and walks again at once while a slice was
 * mostly expired keys, as Redis's active expiry does.
 *
 * Limits are enforced on the write path (sweeper_admit, called before a
 * write that adds data): under --eviction reject such a write gets
 * SKV_ENOMEM (507) while the node is at a limit; under lru the least
 * recently used cache keys (user keys only: counters, documents and
 * idempotency records are never evicted) are evicted first, each as a
 * logged delete.  Deletes are always admitted, so a full node can be
 * emptied.
 *
 * Thread-safety: sweeper_admit may be called from any worker thread.
 */
#ifndef SKV_SWEEPER_H
#define SKV_SWEEPER_H

#include <stdint.h>

#include "config.h"
#include "store.h"

#define SWEEP_INTERVAL_MS 100

typedef struct sweeper sweeper;

/* Background work of other modules, run on the sweeper thread after every
 * expiry pass (every SWEEP_INTERVAL_MS): e.g. deleting the documents of a
 * dropped collection once the drop is durable.  A task must bound its work
 * per call and must not block for long. */
typedef void (*sweeper_task_fn)(void *arg);
typedef struct sweeper_task {
    sweeper_task_fn fn;
    void *arg;
} sweeper_task;
#define SWEEPER_MAX_TASKS 4

/* Starts the expiry thread over st, also running tasks[0..ntasks)
 * (ntasks <= SWEEPER_MAX_TASKS).  Returns 0 and *out, or SKV_ESYS. */
int sweeper_start(store *st, const skv_config *cfg, const sweeper_task *tasks, size_t ntasks, sweeper **out);
/* Stops and joins the thread, frees. */
void sweeper_stop(sweeper *sw);

/* Before a write that adds about `bytes` bytes and maybe a key: 0 when it
 * may proceed (after evicting under lru), SKV_ENOMEM when a limit refuses
 * it.  rnd seeds the eviction sampling. */
int sweeper_admit(store *st, const skv_config *cfg, size_t bytes, uint64_t rnd);

/* 1 when a limit is configured. */
static inline int sweeper_limited(const skv_config *cfg) { return cfg->max_memory || cfg->max_keys; }

/* Node totals for /cache/stats and metrics. */
typedef struct sweeper_totals {
    uint64_t keys, bytes, hits, misses, expired, evicted;
} sweeper_totals;
void sweeper_totals_get(store *st, sweeper_totals *out);

#endif
