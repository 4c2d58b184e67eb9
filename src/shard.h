/*
 * shard — one partition of the key space: the visible hash table, the
 * pending (not yet durable) writes, the sequence number, the log buffer and
 * the accounting of its keys and bytes.
 *
 * Every mutation goes through shard_apply(), the one place where a write
 * gets its per-shard sequence number (seq) and is logged.  seq grows by one
 * per accepted mutation; an entry's version is the seq of its last write.
 * The encoded record (wal.h) is appended to `buf`, which the commit module
 * writes to the shard's log in batches (group commit); that record stream
 * is also the future replication stream.
 *
 * Visibility.  Without a log (memory-only shards, unit tests) or when the
 * write need not wait for the disk (--fsync everysec|never, or an async
 * write on a key with nothing pending), the write is applied to `table` at
 * once.  Under --fsync always a write is pending: its ready-made entry (a
 * tombstone for a delete) sits in `pending`, readers do not see it, and
 * its waiter is called once the batch holding its record is on stable
 * storage; only then does shard_commit_batch() move it into `table`.  So a
 * reader never sees a value that a crash could still lose.  Conditions
 * (If-Match, create-only, delete of a missing key) are evaluated against the
 * newest state, pending included, so concurrent compare-and-set stays
 * exact.  "Newer version wins" everywhere: an entry never replaces one with
 * a higher version, which makes replay and fuzzy snapshots exact too.
 *
 * Expiry.  A PUT may carry expires_ms (absolute Unix ms).  An entry past
 * it is absent for every read and condition and is removed when met (on a
 * read, a write of its key, or shard_expire_some() from the background
 * sweeper).  Removal of an expired entry is not logged: its record carries
 * expires_ms, and replay treats an expired record as a delete, so an expired
 * key never comes back after a restart.
 *
 * Computed writes.  A PUT may carry a compute callback, called under the
 * lock with the newest live entry of the key: it produces the value to
 * store (a counter adds to the current value) or refuses the write.
 *
 * Observer.  One observer (the collections' index maintenance) may watch
 * the visible table: it is called under the lock whenever an entry becomes
 * visible, is replaced or disappears (commit, replay, delete, expiry,
 * eviction), so derived data changes atomically with the table.
 *
 * Concurrency: one mutex per shard, held for table operations, the record
 * encoding and the copy of a value into the caller's output, so work on
 * different shards never contends.  keys/bytes are published in atomics so
 * /shards and /metrics read them without the lock.
 *
 * Invariants (shard_check): keys == ht_count(table); bytes == sum of
 * ht_entry_size over table entries; every version <= seq; no tombstone in
 * table.
 */
#ifndef SKV_SHARD_H
#define SKV_SHARD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "buf.h"
#include "ht.h"
#include "wal.h"

enum shard_op { SHARD_OP_PUT = 1, SHARD_OP_DELETE = 2 };

enum shard_cond {
    SHARD_COND_NONE = 0,
    SHARD_COND_VERSION,  /* apply only if the key exists with version == expected_version */
    SHARD_COND_EXISTS,   /* apply only if the key exists (If-Match: *) */
    SHARD_COND_ABSENT,   /* apply only if the key does not exist (If-None-Match: *) */
};

/* Entry flags (ht_entry.flags); the low 8 bits are logged. */
#define SHARD_VAL_JSON 0x1u          /* the value is JSON text written by a JSON route */
#define SHARD_TOMBSTONE 0x80000000u  /* pending delete (never in `table`, never logged) */

/* Write-path health of a shard (sticky states, STYLE rule 9). */
enum shard_state {
    SHARD_OK = 0,
    SHARD_NOSPACE,   /* the last log write hit a full disk: writes get 507 until a retry succeeds */
    SHARD_DEGRADED,  /* an fsync failed (outcome unknown): writes get 503 until restart */
};

/* Someone waiting for a pending write to become durable.  deliver() is
 * called once, from the committing thread, after status is set; it must
 * hand the waiter back to its owner's thread and not block. */
typedef struct shard_waiter {
    struct shard_waiter *next;
    uint64_t seq;
    int status;                              /* 0, SKV_ENOSPACE or SKV_EIO */
    void (*deliver)(struct shard_waiter *w);
} shard_waiter;

typedef struct shard_result {
    uint64_t version;          /* seq given to the mutation; on SKV_EPRECOND the current version (0 = absent) */
    int created;               /* PUT created the key */
    int pending;               /* the waiter was registered: answer once it is delivered */
    uint32_t shard;            /* the shard's id */
} shard_result;

/*
 * Produces the value of a computed PUT from cur, the newest live entry of
 * the key (NULL when absent), under the shard lock: appends the new value
 * to value (empty on entry) and may change *flags and *expires_ms (preset
 * from the shard_write).  Returns 0 to store it, or an error code
 * (e.g. SKV_ERANGE) that the write returns with nothing changed.
 */
typedef int (*shard_compute_fn)(void *arg, const ht_entry *cur, skv_buf *value, uint32_t *flags,
                                uint64_t *expires_ms);

typedef struct shard_write {
    int op;                    /* enum shard_op */
    skv_slice key;
    skv_slice value;           /* PUT only (ignored when compute is set) */
    uint32_t flags;            /* PUT only: SHARD_VAL_* */
    uint64_t expires_ms;       /* PUT only: absolute Unix ms when the key expires (0 = never) */
    shard_compute_fn compute;  /* PUT only: computes the value from the current one (optional) */
    void *compute_arg;
    int cond;                  /* enum shard_cond */
    uint64_t expected_version; /* SHARD_COND_VERSION */
    int async;                 /* acknowledge before the log is durable (?durability=async) */
    shard_waiter *waiter;      /* registered when the write is pending and not async */
    /* Idempotency (optional; see shard_apply).  idem_key is the internal
     * key (store.h, STORE_NS_IDEMPOTENCY) naming this shard. */
    skv_slice idem_key;
    uint64_t idem_fingerprint; /* of the request (method, target, body) */
    uint64_t idem_expires_ms;  /* when the remembered answer is forgotten */
    /* Renders the answer to remember from the write's result (called under
     * the lock after the seq is assigned; appends to answer). */
    void (*render)(void *arg, const shard_result *res, skv_buf *answer);
    void *render_arg;
    skv_buf *replay;           /* out: the remembered answer on SKV_EEXISTS */
} shard_write;


typedef struct shard shard;

/* The visible table changed: old was replaced or removed (NULL when the key
 * was absent), now is the entry that became visible (NULL on removal).
 * Called with the shard lock held; must not call back into the shard. */
typedef void (*shard_observer_fn)(void *arg, shard *s, const ht_entry *old, const ht_entry *now);

/* Read and eviction statistics (seed 003's cache statistics). */
typedef struct shard_stats {
    uint64_t hits, misses, expired, evicted;
} shard_stats;
/* Called with the shard locked after records were appended to buf. */
typedef void (*shard_kick_fn)(void *arg, shard *s);

struct shard {
    pthread_mutex_t lock;
    ht *table;                 /* visible, durable state */
    ht *pending;               /* writes waiting for the disk (--fsync always): the newest per key under
                                  its key hash, overtaken ones under another hash until their batch is
                                  durable (so an acknowledged write is always readable) */
    uint64_t seq;              /* last assigned sequence number; under lock */
    _Atomic uint64_t seq_published; /* seq, readable without the lock (a write's seq is published before
                                       the lock is released) */
    uint32_t id;
    int logged;                /* records go to buf (a log is attached) */
    int sync_writes;           /* --fsync always: writes wait for the disk */
    int state;                 /* enum shard_state; under lock */
    skv_buf buf;               /* encoded records not yet handed to the log; under lock */
    uint64_t buf_last_seq;     /* seq of the last record in buf */
    shard_waiter *waiters, *waiters_tail; /* in seq order; under lock */
    shard_kick_fn kick;
    void *kick_arg;
    shard_observer_fn observer;
    void *observer_arg;
    uint64_t (*clock_ms)(void); /* wall clock in Unix ms (replaceable by tests) */
    skv_buf scratch;           /* computed values; under lock */
    _Atomic uint64_t hits, misses, expired, evicted;
    _Atomic uint64_t user_keys; /* visible entries that are not internal keys (evictable) */
    _Atomic uint64_t keys;     /* published copies for lock-free readers */
    _Atomic uint64_t bytes;
    _Atomic uint64_t pending_count;
};

void shard_init(shard *s, uint32_t id);
void shard_destroy(shard *s);

/* Sets the observer (before any write or replay). */
void shard_set_observer(shard *s, shard_observer_fn fn, void *arg);

/* The wall clock (CLOCK_REALTIME) in Unix ms; the default shard clock. */
uint64_t shard_wall_ms(void);

/* 1 when e has expired at now_ms. */
static inline int shard_entry_expired(const ht_entry *e, uint64_t now_ms) {
    return e->expires_ms != 0 && e->expires_ms <= now_ms;
}

/* Attaches the log plumbing (before any write): records go to buf and kick
 * is called after each append; sync_writes selects the pending path. */
void shard_attach_log(shard *s, int sync_writes, shard_kick_fn kick, void *arg);

/*
 * Applies one mutation.  key_hash is store_key_hash(key).  Returns 0 and
 * fills *res (res->pending when w->waiter was registered); SKV_EPRECOND
 * when the condition does not hold (res->version = current version or 0);
 * SKV_ENOTFOUND for a DELETE of a missing key; SKV_ENOMEM when the entry
 * could not be allocated; SKV_ENOSPACE / SKV_EIO when the shard's state
 * refuses writes; the compute callback's error.  On any error nothing
 * changed and no seq was used.
 *
 * Idempotency: when w->idem_key is set, the remembered answer under it is
 * looked up first, atomically with the write.  Found and durable (visible):
 * SKV_EEXISTS with the answer copied into *w->replay and nothing applied;
 * found with another fingerprint: SKV_EINVAL; found but still waiting for
 * the disk: SKV_EAGAIN (the first request is in flight).  Not found: the
 * write is applied and render() makes the answer, which is stored under
 * idem_key (expiring at idem_expires_ms) in the same atomic log group as
 * the write, so a crash keeps both or neither.
 */
int shard_apply(shard *s, uint64_t key_hash, const shard_write *w, shard_result *res);

/* Called with the shard locked; e is valid only during the call. */
typedef void (*shard_read_fn)(void *arg, const ht_entry *e);

/* Looks up key in the visible table and calls fn under the lock.  Returns
 * 0, or SKV_ENOTFOUND (fn not called).  An expired entry is removed and not
 * found.  Counts a hit or a miss and marks the entry used (LRU). */
int shard_get(shard *s, uint64_t key_hash, skv_slice key, shard_read_fn fn, void *arg);

/* Calls fn (under the lock) for up to limit entries, in table order.
 * Returns the number of entries visited. */
size_t shard_list(shard *s, size_t limit, shard_read_fn fn, void *arg);

/* Background expiry: visits up to max_buckets bucket positions of the
 * table from *cursor (0 = start; left at 0 after a full pass) and removes
 * the expired entries.  Returns how many were removed. */
size_t shard_expire_some(shard *s, uint64_t *cursor, size_t max_buckets);

/* LRU eviction (approximate, as Redis: samples `samples` entries around a
 * random position and evicts the least recently used user key; internal
 * keys are never evicted).  The eviction is a logged delete, so the key
 * does not come back after a restart.  Returns 0 with *freed (bytes), or
 * SKV_ENOTFOUND when the shard has nothing evictable. */
int shard_evict_one(shard *s, size_t samples, uint64_t random, uint64_t *freed);

void shard_stats_get(shard *s, shard_stats *out);

/* Size (ht_entry_size) of the newest live state of key, pending included,
 * without touching statistics or LRU: 0 and *size, or SKV_ENOTFOUND. */
int shard_peek_size(shard *s, uint64_t key_hash, skv_slice key, size_t *size);

/* Visible user (non-internal) keys: what LRU eviction can take. */
static inline uint64_t shard_user_keys(shard *s) {
    return atomic_load_explicit(&s->user_keys, memory_order_relaxed);
}

/* ---- used by the commit module and recovery (shard lock held by the caller where noted) ---- */

/* Takes buf (swapped into *out, which must be empty), its last seq, and the
 * waiter list.  Lock held. */
void shard_take_batch(shard *s, skv_buf *out, uint64_t *last_seq, shard_waiter **waiters);
/* The batch is durable: moves its pending entries into the table (newer
 * version wins).  Lock held. */
void shard_commit_batch(shard *s, const skv_buf *batch);
/* The batch could not be logged: drops its pending entries and everything
 * pending after it (whose conditions may have depended on it), clears buf
 * and returns the waiters registered since (to fail with the batch's).
 * Lock held. */
shard_waiter *shard_discard_pending(shard *s, const skv_buf *batch);
/* Puts a batch that must be retried back in front of buf.  Lock held. */
void shard_requeue_batch(shard *s, skv_buf *batch, uint64_t last_seq);

/* Recovery: applies a logged or snapshotted record to the table with
 * "newer version wins" and raises seq to it (takes the lock).  Returns 0
 * or SKV_ENOMEM. */
int shard_replay(shard *s, const wal_record *rec);

/* Invariant checker for assert(); takes the lock.  Returns 1 when valid. */
int shard_check(shard *s);

/* The last assigned seq, without the lock: every write that finished
 * before the call has a seq <= the result. */
static inline uint64_t shard_seq(shard *s) { return atomic_load_explicit(&s->seq_published, memory_order_acquire); }

static inline uint64_t shard_keys(shard *s) { return atomic_load_explicit(&s->keys, memory_order_relaxed); }
static inline uint64_t shard_bytes(shard *s) { return atomic_load_explicit(&s->bytes, memory_order_relaxed); }

#endif
