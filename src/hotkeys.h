/*
 * hotkeys — an approximate top-K of the most requested keys of each shard:
 * a fixed-memory Space-Saving sketch per (worker thread, shard), updated on
 * every key read and write, merged over the workers when someone asks
 * (GET /v1/hotkeys, the shardkv_hot_key_requests metric; docs/hotkeys.md).
 *
 * Algorithm (Metwally, Agrawal, El Abbadi, "Efficient computation of
 * frequent and top-k elements in data streams", 2005).  A summary holds
 * HOTKEYS_CAPACITY counters (key, count, error).  A request for a key that
 * has a counter adds 1 to its count.  Otherwise the key takes the counter
 * with the smallest count m (a free counter has m = 0): count = m + 1,
 * error = m.  So, for every key the summary holds and for any stream:
 *     count - error  <=  true count  <=  count
 * and a key it does not hold was requested at most m times (m = the
 * smallest count, 0 while a counter is free): every key with more than
 * requests / HOTKEYS_CAPACITY of the summary's requests is held.  While at
 * most HOTKEYS_CAPACITY distinct keys were seen, counts are exact (error 0).
 *
 * Decay.  Time is cut into epochs of HOTKEYS_DECAY_SECONDS; every count,
 * error and the request total are halved (shifted right) once per epoch
 * boundary, lazily: the owning worker applies the shifts on its next
 * update, a reader applies them to its copy.  "True count" above then means
 * the decayed count (each request weighs 1/2 per epoch boundary since it
 * was made); flooring adds less than 1 to each side of the bound.  Counters
 * that decay to 0 become free.
 *
 * Merge over workers (read time).  For a key held by some of a shard's
 * summaries: count = sum of its counts where held + sum of m_i of the
 * summaries that do not hold it (the most it can have there), error = sum
 * of its errors where held + the same m_i.  The bound above holds for the
 * merged entry, and every key with more than the sum of the m_i (at most
 * requests / HOTKEYS_CAPACITY of the shard) is listed.
 *
 * Keys.  The sketch keeps at most HOTKEYS_KEY_MAX bytes of a key; a longer
 * key is identified by its 64-bit hash (XXH3, store_key_hash), full length
 * and those bytes, and reported truncated.  Internal keys (starting with a
 * NUL byte: counters, documents, idempotency records) are never counted.
 *
 * Threads and memory.  Each worker owns its summaries (HOTKEYS_CAPACITY
 * counters per shard, 5 KiB; nothing is allocated after
 * hotkeys_new) and is their only writer: no lock, no read-modify-write
 * instruction.  Readers copy counters under per-counter sequence counters
 * (seqlock; the fields are relaxed atomics, so a copy is never torn) and a
 * per-summary one that covers the epoch shifts; a reader never writes the
 * summaries, so it cannot slow a worker down beyond sharing cache lines.
 *
 * Invariants (summary_is_valid, asserted after each epoch shift and by
 * hotkeys_check; too slow for every update): a held counter has count >= 1 and
 * error <= count (error < count until a halving rounds them together); no
 * two held counters have the same key; the counts of a summary sum to at
 * most its request total (exactly to it while nothing has decayed).
 */
#ifndef SKV_HOTKEYS_H
#define SKV_HOTKEYS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "metrics.h"

#define HOTKEYS_CAPACITY 32       /* counters per (worker, shard) summary */
#define HOTKEYS_KEY_MAX 128       /* key bytes kept; longer keys are reported truncated */
#define HOTKEYS_DECAY_SECONDS 10  /* counts halve once per this many seconds */
#define HOTKEYS_LIMIT_MAX 100     /* most keys one read asks for (?limit=) */
#define HOTKEYS_METRIC_TOP 3      /* keys per shard in shardkv_hot_key_requests */

typedef struct hotkeys hotkeys;               /* opaque: every summary of the node */
typedef struct hotkeys_worker hotkeys_worker; /* opaque: one worker's summaries */

/* Milliseconds of a monotonic clock; hotkeys_new(..., NULL) uses
 * CLOCK_MONOTONIC_COARSE (a few ns, no system call). */
typedef uint64_t (*hotkeys_clock_fn)(void);

/* Creates the summaries of nworkers workers x nshards shards (both >= 1).
 * clock may be NULL (the default clock) or a fake clock for tests.  Aborts
 * on OOM (fixed size: 5 KiB per worker and shard). */
hotkeys *hotkeys_new(unsigned nworkers, uint32_t nshards, hotkeys_clock_fn clock);
/* Frees everything; no worker or reader may use hk any more.  NULL is a no-op. */
void hotkeys_free(hotkeys *hk);

/* Worker id's summaries (id < nworkers).  Only that worker's thread may
 * pass the result to hotkeys_record. */
hotkeys_worker *hotkeys_worker_slot(hotkeys *hk, unsigned id);

/*
 * Counts one request for key on shard (the hot path: tens of ns, no
 * allocation, no lock).  hash is store_key_hash(key) (XXH3-64 of the key
 * bytes), which the caller already has from placement.  Ignores internal
 * keys, empty keys and shard >= nshards.  Only the thread owning w.
 */
void hotkeys_record(hotkeys_worker *w, uint32_t shard, skv_slice key, uint64_t hash);

/* 1 when every summary satisfies the invariants above.  Only while no
 * worker records (tests, shutdown). */
int hotkeys_check(const hotkeys *hk);

/* One merged entry of a shard (a read's result). */
typedef struct hotkeys_entry {
    uint32_t shard;
    uint32_t len;                  /* bytes in key: min(full_len, HOTKEYS_KEY_MAX) */
    uint32_t full_len;             /* the key's real length */
    int truncated;                 /* full_len > HOTKEYS_KEY_MAX */
    uint64_t hash;                 /* store_key_hash of the whole key */
    uint64_t count;                /* upper bound of the key's recent requests */
    uint64_t error;                /* count - error is a lower bound */
    char key[HOTKEYS_KEY_MAX];     /* first len bytes of the key (not NUL-terminated) */
} hotkeys_entry;

/*
 * Merges shard's summaries over the workers as of now and writes its
 * hottest entries into out[0..max), hottest first (count descending, then
 * error ascending, then key bytes); returns how many (<= max).  *requests
 * (may be NULL) gets the shard's decayed request total.  Any thread, at any
 * time, concurrently with the workers; allocates its scratch with
 * skv_malloc.  shard >= nshards gives 0 entries and 0 requests.
 */
size_t hotkeys_shard_top(hotkeys *hk, uint32_t shard, hotkeys_entry *out, size_t max, uint64_t *requests);

/*
 * Appends the GET /v1/hotkeys document (limit in 1..HOTKEYS_LIMIT_MAX):
 *   {"decay_seconds":10,"capacity":32,
 *    "shards":[{"shard":0,"requests":N,"keys":[{"key","count","error","truncated"}...]}...],
 *    "top":[{"key","shard","count","error","truncated"}...]}
 * with each shard's limit hottest keys and the limit hottest over all
 * shards.  Keys are JSON strings (skv_buf_append_json_str).  Any thread.
 */
void hotkeys_render_json(hotkeys *hk, size_t limit, skv_buf *out);

/*
 * The samples of shardkv_hot_key_requests: each shard's HOTKEYS_METRIC_TOP
 * hottest keys.  Fills *out (allocated here, free() it; NULL when there is
 * none) and returns its length; the label texts point into labels (reset
 * here, free with skv_buf_free after rendering).  A label text is the key
 * with control bytes and bytes that are not UTF-8 written as \xNN.  Any thread.
 */
size_t hotkeys_metric_samples(hotkeys *hk, metrics_hot_key **out, skv_buf *labels);

#endif
