/*
 * ring — placement of keys on shards: consistent hashing with virtual nodes,
 * modulo and jump consistent hashing, over xxh3 or MD5.
 *
 * A ring is immutable once built and shared read-only by every worker
 * thread; a new shard map is a new ring (with a higher version), swapped in
 * by the owner.  Lookups allocate nothing and take O(log(shards*vnodes)).
 *
 * Hashes.  xxh3: XXH3_64bits(key) (seed 0), a 64-bit point.  md5: the 128-bit
 * big-endian integer of MD5(key), exactly Python's
 * int(hashlib.md5(key).hexdigest(), 16), kept as (hi, lo) 64-bit halves.
 *
 * Strategies.
 *   ring   : each shard i (0-based) owns vnodes points at hash("shard_<i+1>#<v>")
 *            for v in [0, vnodes) — the labels of the seed's MD5 ring, whose
 *            shards are named shard_1..shard_N — and a key belongs to the
 *            first point >= hash(key), wrapping to the smallest point.  Two
 *            vnodes on the same point: the later label (higher shard, then
 *            higher v) wins, as when the seed fills its Python dict.
 *            With --hash md5 and 100 vnodes, placement is identical to the
 *            seed's ConsistentHashing class (our shard i == its shard_<i+1>).
 *   modulo : a key that is a canonical decimal integer in [0, 2^64) (the
 *            seeds' userId / user_id) goes to id % N; any other key to
 *            h64(key) % N.
 *   jump   : Lamping & Veach jump consistent hash of h64(key) over N buckets.
 * h64 is the xxh3 value, or the high 64 bits of the MD5 integer.
 */
#ifndef SKV_RING_H
#define SKV_RING_H

#include <stddef.h>
#include <stdint.h>

enum ring_strategy { RING_STRATEGY_RING = 0, RING_STRATEGY_MODULO, RING_STRATEGY_JUMP };
enum ring_hash { RING_HASH_XXH3 = 0, RING_HASH_MD5 };

#define RING_MAX_SHARDS 4096
#define RING_MAX_VNODES 10000

typedef struct ring_config {
    int strategy;       /* enum ring_strategy */
    int hash;           /* enum ring_hash */
    uint32_t shards;    /* 1..RING_MAX_SHARDS */
    uint32_t vnodes;    /* per shard, 1..RING_MAX_VNODES; used by "ring" only */
    uint64_t version;   /* shard-map version carried by this ring */
} ring_config;

typedef struct ring_point {
    uint64_t hi, lo;    /* xxh3: hi = hash, lo = 0 */
} ring_point;

typedef struct ring ring; /* opaque */

/* Builds a ring.  Returns 0 and *out (free with ring_free), or SKV_EINVAL
 * when a field is out of range. */
int ring_new(const ring_config *cfg, ring **out);
void ring_free(ring *r);

const ring_config *ring_get_config(const ring *r);

/* The hash of a key under the ring's hash function. */
ring_point ring_hash_key(const ring *r, const void *key, size_t len);

/* The shard (0..shards-1) that owns key.  If point_out is not NULL it
 * receives the key's hash (for tracing). */
uint32_t ring_shard_for_key(const ring *r, const void *key, size_t len, ring_point *point_out);

/* Same, for a key whose hash p the caller already computed with
 * ring_hash_key() (or, for xxh3, as {XXH3_64bits(key), 0}); the key itself
 * is still needed by modulo's integer rule. */
uint32_t ring_shard_for_point(const ring *r, ring_point p, const void *key, size_t len);

/* Fraction of the hash space owned by shard (sum over its arcs for "ring";
 * 1/N for modulo and jump).  The shares of all shards sum to 1. */
double ring_share(const ring *r, uint32_t shard);

/* Virtual nodes in ring order (0 for modulo/jump).  ring_vnode() returns
 * the point and owning shard of the i-th one. */
size_t ring_vnode_count(const ring *r);
void ring_vnode(const ring *r, size_t i, ring_point *point, uint32_t *shard);

/* Formats a point as decimal (md5: the full 128-bit integer, as the seed
 * logs it) into out (at least 40 bytes).  Returns the length. */
size_t ring_point_format(const ring *r, ring_point p, char *out);

const char *ring_strategy_name(int strategy);
const char *ring_hash_name(int hash);
/* Return the enum value or -1 when unknown. */
int ring_strategy_parse(const char *s);
int ring_hash_parse(const char *s);

/* Checker for assert(): points sorted, every shard present. Returns 1 when valid. */
int ring_check(const ring *r);

#endif
