/*
 * shard — one partition of the key space: a hash table, a lock, a
 * sequence number and the accounting of its keys and bytes.
 *
 * Every mutation of a shard goes through shard_apply(), which is the one
 * place where a write gets its per-shard sequence number (seq) and becomes
 * visible.  seq starts at 0 and grows by one per applied mutation; an
 * entry's version is the seq of its last write, so versions are unique and
 * increasing within a shard.  This is the hook for the write-ahead log and
 * the replication stream: a mutation is (seq, op, key, value).
 *
 * Concurrency: one mutex per shard, held only for the table operation and
 * the copy of the value into the caller's output, so work on different
 * shards never contends.  keys/bytes are also published in atomics so that
 * /shards and /metrics can read them without taking the lock.
 *
 * Invariants (shard_check): keys == ht_count(table); bytes == sum of
 * ht_entry_size over entries; every entry's version <= seq.
 */
#ifndef SKV_SHARD_H
#define SKV_SHARD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "buf.h"
#include "ht.h"

enum shard_op { SHARD_OP_PUT = 1, SHARD_OP_DELETE = 2 };

enum shard_cond {
    SHARD_COND_NONE = 0,
    SHARD_COND_VERSION,  /* apply only if the key exists with version == expected_version */
    SHARD_COND_EXISTS,   /* apply only if the key exists (If-Match: *) */
    SHARD_COND_ABSENT,   /* apply only if the key does not exist (If-None-Match: *) */
};

/* Entry flags (ht_entry.flags). */
#define SHARD_VAL_JSON 0x1u /* the value is JSON text written by a JSON route */

typedef struct shard_write {
    int op;                    /* enum shard_op */
    skv_slice key;
    skv_slice value;           /* PUT only */
    uint32_t flags;            /* PUT only: SHARD_VAL_* */
    int cond;                  /* enum shard_cond */
    uint64_t expected_version; /* SHARD_COND_VERSION */
} shard_write;

typedef struct shard_result {
    uint64_t version;          /* seq given to the mutation; on SKV_EPRECOND the current version (0 = absent) */
    int created;               /* PUT created the key */
} shard_result;

typedef struct shard {
    pthread_mutex_t lock;
    ht *table;
    uint64_t seq;              /* last assigned sequence number; under lock */
    uint32_t id;
    _Atomic uint64_t keys;     /* published copies for lock-free readers */
    _Atomic uint64_t bytes;
} shard;

void shard_init(shard *s, uint32_t id);
void shard_destroy(shard *s);

/*
 * Applies one mutation.  key_hash is store_key_hash(key).  Returns 0 and
 * fills *res; SKV_EPRECOND when the condition does not hold (nothing
 * changed, res->version = current version or 0); SKV_ENOTFOUND for a
 * DELETE of a missing key (nothing changed); SKV_ENOMEM when the entry
 * could not be allocated (nothing changed).
 */
int shard_apply(shard *s, uint64_t key_hash, const shard_write *w, shard_result *res);

/* Called with the shard locked; e is valid only during the call. */
typedef void (*shard_read_fn)(void *arg, const ht_entry *e);

/* Looks up key and calls fn under the lock.  Returns 0, or SKV_ENOTFOUND
 * (fn not called). */
int shard_get(shard *s, uint64_t key_hash, skv_slice key, shard_read_fn fn, void *arg);

/* Calls fn (under the lock) for up to limit entries, in table order.
 * Returns the number of entries visited. */
size_t shard_list(shard *s, size_t limit, shard_read_fn fn, void *arg);

static inline uint64_t shard_keys(shard *s) { return atomic_load_explicit(&s->keys, memory_order_relaxed); }
static inline uint64_t shard_bytes(shard *s) { return atomic_load_explicit(&s->bytes, memory_order_relaxed); }

/* Invariant checker for assert(); takes the lock.  Returns 1 when valid. */
int shard_check(shard *s);

#endif
