/*
 * counter — sharded counters (seed 002): a named 64-bit signed counter
 * spread over K sub-counters on distinct shards.  An increment lands on one
 * sub-counter; the value is the sum.  Every change goes through
 * shard_apply(), so the log, the fsync policy, snapshots and recovery apply
 * unchanged.  Routes, examples and the design notes: docs/counters.md.
 *
 * Storage (internal keys, store.h), all values text:
 *   definition  (STORE_NS_COUNTER_META, base, name)       "k=<K> base=<B> gen=<16 hex> id=<16 hex>"
 *   seed id     (STORE_NS_COUNTER_META, base, NUL + id)   the name
 *   sub i       (STORE_NS_COUNTER, (base + i) % N, name)  "<value> <gen> <lo> <hi>"
 * where N is the node's shard count, id = XXH3-64(name) (the seed's
 * counter_id is its 16 lowercase hex digits) and base = id % N, so the K
 * sub-counters sit on K distinct shards and the definition and the id
 * record on the first of them.  gen is drawn when the counter is created:
 * a sub-counter whose gen differs (left over from a deleted counter of the
 * same name: DELETE removes only the definition, and counter_reclaim_task
 * frees the rest once that is durable) counts as absent.  An absent sub-counter is 0 with the default budget of its index.
 *
 * Overflow is an error, not a wrap: [lo, hi] is the sub-counter's budget
 * (escrow).  Invariant: lo <= value <= hi for every sub-counter, and the
 * budgets of a counter sum to at most [INT64_MIN, INT64_MAX], so any mix of
 * sub-counter states (concurrent readers; under --fsync always, a crash
 * that kept some shards' last writes and not others') sums into int64.  An increment within its
 * sub-counter's budget is checked on that shard alone; one that is not (or
 * is large) takes the counter's slow path, which moves budget between the
 * sub-counters (shrinks written before grows, and awaited until durable
 * under --fsync always) or refuses when the total would leave int64.
 *
 * Thread-safety: every function may be called from any worker thread.
 */
#ifndef SKV_COUNTER_H
#define SKV_COUNTER_H

#include <stdint.h>

#include "api.h"
#include "buf.h"

/* The route id of a counter route (/v1/counters/..., /counter...), or -1. */
int counter_route_of(const http_request *req);
/* Handles a counter route (one answer through r); returns the route id. */
int counter_dispatch(api_worker *w, const http_request *req, skv_slice body, reply *r);

/* ---- the pure parts, exposed for the unit tests ------------------------------------------------ */

/* One sub-counter's stored state. */
typedef struct counter_sub {
    int64_t value;
    uint64_t gen;  /* the counter generation that wrote it */
    int64_t lo, hi; /* budget: lo <= value <= hi */
} counter_sub;

/* A counter's definition. */
typedef struct counter_def {
    uint32_t k;    /* sub-counters, 1..nshards */
    uint32_t base; /* shard of sub-counter 0 (and of the definition) */
    uint64_t gen;  /* generation, drawn at creation */
    uint64_t id;   /* XXH3-64 of the name */
} counter_def;

/* The default budget of sub-counter index (< k) of a K-way counter: an
 * even split of [INT64_MIN, INT64_MAX] (the remainders on the first ones),
 * so the K defaults sum to exactly the int64 range. */
void counter_default_budget(uint32_t k, uint32_t index, int64_t *lo, int64_t *hi);

/* Parses "<value> <gen> <lo> <hi>" (canonical decimal, gen 16 lowercase
 * hex).  Returns 0 or SKV_EINVAL. */
int counter_sub_parse(skv_slice text, counter_sub *out);
/* Appends the text form of s to out. */
void counter_sub_format(const counter_sub *s, skv_buf *out);

/* Parses a definition; SKV_EINVAL when malformed or when K or the base do
 * not fit nshards. */
int counter_def_parse(skv_slice text, uint32_t nshards, counter_def *out);
/* Appends the text form of d to out. */
void counter_def_format(const counter_def *d, skv_buf *out);
/* The shard of sub-counter index. */
static inline uint32_t counter_sub_shard(const counter_def *d, uint32_t index, uint32_t nshards) {
    return (uint32_t)(((uint64_t)d->base + index) % nshards);
}

/*
 * Plans a slow-path change of delta on the k sub-counters subs (their
 * current states).  The receiving sub-counter is fixed (when fixed is set)
 * or the first from pref on whose value delta fits int64.  Fills
 * *index_out and the new budgets lo[k], hi[k]: each brackets the sub-counter's
 * old and new value, and the remaining room up to INT64_MAX and down to
 * INT64_MIN is split evenly.  Returns 0, or SKV_ERANGE when the change would
 * move the total out of int64 (or further out), or when no allowed
 * sub-counter can take it without leaving int64.
 */
int counter_plan(const counter_sub *subs, uint32_t k, int64_t delta, int fixed, uint32_t pref, uint32_t *index_out,
                 int64_t *lo, int64_t *hi);

/* Formats v in decimal into out (at least 41 bytes); returns the length. */
size_t counter_i128_format(__int128 v, char *out);

/*
 * Which sub-counter an increment with an Idempotency-Key lands on.  The
 * key's chain is x0 = key_hash % nshards, then each next element drawn
 * uniformly below the previous one (from key_hash and the step), down to 0.
 * The index for K is the first element below K: uniform over [0, K), and
 * key_hash % nshards when K = nshards.  The chain does not depend on K, so
 * whatever K the counter had when a first request ran, its sub-counter's
 * index (and so the shard of its remembered answer) is on the chain: a
 * retry looks there (about ln(nshards) + 1 elements).  1 <= k <= nshards.
 */
uint32_t counter_idem_index(uint64_t key_hash, uint32_t nshards, uint32_t k);
/* Writes the chain to out (room for nshards elements; strictly decreasing,
 * the last one 0) and returns its length. */
uint32_t counter_idem_chain(uint64_t key_hash, uint32_t nshards, uint32_t *out);

/*
 * Background task (sweeper_task, src/sweeper.h; arg: the api_env): frees
 * the sub-counters and the id record that DELETE left behind, once the
 * definition's delete is durable (--fsync always: visible; everysec|never
 * or a ?durability=async DELETE: visible for COUNTER_RECLAIM_DELAY_MS, past
 * the periodic fsync).  Only sub-counters still of the deleted generation
 * are removed, and the id record only while no definition of the name
 * exists (conditional deletes), so a counter created again meanwhile is
 * never touched.  Never blocks: a busy counter is retried on a later call.
 * The queue of deleted counters lives in memory (COUNTER_RECLAIM_MAX
 * entries): after a restart, or when it overflows, left-overs stay until
 * the name is used again.
 */
#define COUNTER_RECLAIM_DELAY_MS 3000
#define COUNTER_RECLAIM_MAX 4096
void counter_reclaim_task(void *arg);

#endif
