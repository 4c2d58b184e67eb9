/*
 * ht — the shard's hash table: chained buckets, power-of-two sizes, and
 * incremental rehashing (two tables while resizing, a few buckets moved on
 * every operation) so that no single request pays for a full resize.
 *
 * Entries are single allocations holding key and value bytes inline; the
 * table owns the entries it links.  Hashes are computed by the caller
 * (xxh3 of the key) and stored in the entry.  Not thread-safe: the owning
 * shard serialises access with its lock.
 *
 * Invariants (checked by ht_check): every entry sits in the bucket of its
 * hash in table 0 or table 1; while rehashing, buckets of table 0 below
 * rehash_idx are empty; count equals the number of linked entries.
 * Growth: when count >= buckets (load factor 1).  Shrink: when count <
 * buckets/8 and buckets > the initial size.
 */
#ifndef SKV_HT_H
#define SKV_HT_H

#include <stddef.h>
#include <stdint.h>

typedef struct ht_entry {
    struct ht_entry *next;
    uint64_t hash;
    uint64_t version;   /* per-shard sequence number of the last write */
    uint32_t key_len;
    uint32_t val_len;
    uint32_t flags;     /* owner-defined (e.g. value is JSON) */
    uint32_t atime;     /* owner-defined: last access (the shard's coarse clock, for LRU) */
    uint64_t expires_ms; /* owner-defined: absolute Unix ms after which the entry is gone (0 = never) */
    char data[];        /* key_len key bytes, then val_len value bytes */
} ht_entry;

static inline const char *ht_entry_key(const ht_entry *e) { return e->data; }
static inline const char *ht_entry_value(const ht_entry *e) { return e->data + e->key_len; }
/* Bytes an entry occupies, for memory accounting. */
static inline size_t ht_entry_size(const ht_entry *e) { return sizeof(*e) + e->key_len + e->val_len; }

/* Allocates an unlinked entry with copies of key and value (next = NULL,
 * version = flags = atime = expires_ms = 0).  Uses skv_try_malloc: returns NULL on OOM.
 * The caller owns it until it is passed to ht_put(); free with free(). */
ht_entry *ht_entry_new(uint64_t hash, const void *key, size_t key_len, const void *val, size_t val_len);

typedef struct ht ht; /* opaque */

ht *ht_new(void);
/* Frees the table and every entry in it. */
void ht_free(ht *t);

/* Returns the entry with this key, or NULL.  The pointer is valid until the
 * next modifying call on t. */
ht_entry *ht_find(ht *t, uint64_t hash, const void *key, size_t key_len);

/* Links e (ownership passes to the table).  If an entry with the same key
 * exists it is unlinked and returned (the caller frees it); else NULL. */
ht_entry *ht_put(ht *t, ht_entry *e);

/* Unlinks and returns the entry with this key (the caller frees it), or NULL. */
ht_entry *ht_remove(ht *t, uint64_t hash, const void *key, size_t key_len);

size_t ht_count(const ht *t);
/* Bytes used by the bucket arrays (entries are accounted by the caller). */
size_t ht_overhead_bytes(const ht *t);
int ht_is_rehashing(const ht *t);

/*
 * Cursor iteration (reverse-binary cursor, as Redis SCAN): start with 0, call
 * fn for the entries of one bucket position (in both tables while
 * rehashing), return the next cursor; 0 means done.  An entry present for the
 * whole iteration is returned at least once even across resizes; it may be
 * returned more than once when the table shrinks.  fn must not modify t.
 */
uint64_t ht_scan(ht *t, uint64_t cursor, void (*fn)(void *arg, const ht_entry *e), void *arg);

/*
 * Scan positions.  ht_position(x) is x with its 64 bits in reverse order;
 * the position of an entry is ht_position(e->hash).  In a table of 2^b
 * buckets, bucket i holds exactly the entries whose position has
 * ht_position(i) in its top b bits: a contiguous range of positions, split
 * into consecutive halves by every doubling.  A cursor c (as returned by
 * ht_scan / ht_scan_one, bits above the mask clear) stands for the position
 * ht_position(c), and the scans visit the ranges in increasing position
 * order whatever the table size is at each call.  Since ht_position is its
 * own inverse, ht_position(p) is also a cursor whose bucket (under any
 * mask) holds position p.  Pure function, any thread.
 */
uint64_t ht_position(uint64_t x);

/*
 * Like ht_scan, but one bucket of the larger table per call: calls fn for
 * exactly the entries whose hash matches cursor under the mask M of the
 * larger table (both tables while rehashing; the smaller table's bucket is
 * filtered), i.e. the entries with positions in
 * [ht_position(cursor & M), ht_position(next)) where next is the returned
 * cursor (up to 2^64 when next is 0, meaning the pass is complete).  Walks
 * at most two chains per call.  fn must not modify t; t is not modified.
 */
uint64_t ht_scan_one(ht *t, uint64_t cursor, void (*fn)(void *arg, const ht_entry *e), void *arg);

/* Invariant checker for assert(): returns 1 when every invariant holds. */
int ht_check(const ht *t);

#endif
