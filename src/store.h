/*
 * store — the node's shards and the shard map that places keys on them.
 *
 * The shard map is versioned data: a ring (ring.h) built from the
 * placement config with a version number, not a constant.  Lookups read
 * the current ring through an atomic pointer so a later resharding can swap
 * in a new map without stopping the workers.  (This single-node version
 * builds one map at start and never swaps it.)
 *
 * Placement rule on top of the ring, kept for seed 000 (POST /store places
 * by userId % N): a key of the form "store:<integer>" (canonical decimal,
 * optionally negative) is pinned to shard python_mod(integer, N), whatever
 * the strategy.  Every other key goes where the ring says.
 *
 * Internal keys.  The data models built on the store (counters, documents,
 * idempotency records) keep their entries in the same shard tables under
 * keys that start with a NUL byte, which user keys may not:
 *   0x00, namespace byte (STORE_NS_*), shard id (u32 big-endian), name bytes
 * An internal key is pinned to the shard it names (modulo the shard count),
 * so a model decides its own placement (a counter spreads its sub-counters
 * over chosen shards; a document goes where its shard key hashes).  Scans
 * of the user key space skip internal keys.
 *
 * Key hashes for the shard tables are XXH3-64 of the key bytes.
 * Thread-safety: every function may be called from any worker thread.
 */
#ifndef SKV_STORE_H
#define SKV_STORE_H

#include <stdatomic.h>
#include <stdint.h>

#include "buf.h"
#include "ring.h"
#include "shard.h"

#define STORE_PINNED_PREFIX "store:"

/* Namespaces of internal keys. */
#define STORE_NS_COUNTER 'C'      /* a sub-counter: name = counter name */
#define STORE_NS_COUNTER_META 'M' /* a counter's definition (seed id, K): name = counter name */
#define STORE_NS_IDEMPOTENCY 'I'  /* a remembered answer: name = Idempotency-Key */
#define STORE_NS_DOC 'D'          /* a document: name = collection, 0x00, primary key */
#define STORE_NS_SCHEMA 'S'       /* a collection definition: name = collection */
#define STORE_INTERNAL_HEADER 6   /* 0x00, namespace, u32 shard */

typedef struct store {
    uint32_t nshards;
    shard *shards;             /* [nshards] */
    _Atomic(ring *) map;       /* current shard map */
} store;

/* Builds the shards and the first shard map (version 1).  Returns 0 and
 * *out (free with store_free), or SKV_EINVAL for a bad ring config. */
int store_new(const ring_config *cfg, store **out);
void store_free(store *st);

static inline ring *store_map(store *st) { return atomic_load_explicit(&st->map, memory_order_acquire); }

uint64_t store_key_hash(skv_slice key);

/* The shard that owns key under the current map (with the "store:<int>"
 * pin).  Logs the decision at debug level (key, hash, shard), as the seeds do. */
uint32_t store_shard_for_key(store *st, skv_slice key);

/* store_shard_for_key() and store_key_hash() together, hashing the key once
 * when the map hashes with xxh3 too (the request hot path). */
uint32_t store_locate(store *st, skv_slice key, uint64_t *key_hash);

/* The key "store:<user_id>" for a seed-000 userId, in out (>= 32 bytes); returns its length. */
size_t store_pinned_key(int64_t user_id, char *out);

static inline shard *store_shard(store *st, uint32_t id) { return &st->shards[id]; }

/* 1 when key is an internal key (starts with a NUL byte). */
static inline int store_key_is_internal(skv_slice key) { return key.len > 0 && key.ptr[0] == '\0'; }

/* Resets out to the internal key (ns, shard_id, name); returns it as a slice into out. */
skv_slice store_internal_key(skv_buf *out, char ns, uint32_t shard_id, const void *name, size_t name_len);

/* Parses an internal key: 1 with *ns, *shard_id and *name, or 0 when key is
 * not one (too short or not starting with NUL). */
int store_internal_key_parse(skv_slice key, char *ns, uint32_t *shard_id, skv_slice *name);

/* Keys and bytes over all shards (lock-free reads of the published counts). */
void store_totals(store *st, uint64_t *keys, uint64_t *bytes);

#endif
