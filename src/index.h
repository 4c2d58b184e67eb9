/*
 * index — an ordered set of byte strings: the structure behind the
 * collections' per-shard indexes (docidx.h).
 *
 * An AVL tree of keys compared as unsigned bytes (memcmp), a key that is a
 * prefix of another sorting first.  Callers encode what they index so that
 * this byte order is the order they want (docidx: length-prefixed value,
 * then an order-preserving encoding of the primary key), and read ranges
 * with index_scan(): every key >= (or >) a starting key, in order, until
 * the visitor says stop.  Insert, remove and the start of a scan cost
 * O(log n); the height stays below 1.45 log2(n + 2).
 *
 * Memory: one allocation per key (node and key bytes together), through
 * skv_malloc: an index mirrors data the store already accepted and has no
 * way to refuse a change, so running out of memory aborts (mem.h policy).
 *
 * Invariants (index_check): keys strictly increasing in order; every
 * node's height is 1 + the larger child height and the two child heights
 * differ by at most 1; count equals the number of nodes.
 *
 * Not thread-safe: the owner serialises access (docidx: the shard lock).
 */
#ifndef SKV_INDEX_H
#define SKV_INDEX_H

#include <stddef.h>

typedef struct index_tree index_tree; /* opaque */

index_tree *index_new(void);
/* Frees the tree and its keys (NULL is a no-op). */
void index_free(index_tree *t);

/* Inserts a copy of key[0..len).  Returns 1 when inserted, 0 when it was
 * already there (nothing changes). */
int index_insert(index_tree *t, const void *key, size_t len);
/* Removes key.  Returns 1 when removed, 0 when it was not there. */
int index_remove(index_tree *t, const void *key, size_t len);
/* 1 when key is in the set. */
int index_contains(const index_tree *t, const void *key, size_t len);
size_t index_count(const index_tree *t);

/* Visitor of index_scan: key is valid only during the call.  Returns 0 to
 * continue with the next key, anything else to stop. */
typedef int (*index_visit_fn)(void *arg, const void *key, size_t len);

/*
 * Calls fn for every key >= from[0..from_len) (> when after is 1), in
 * increasing order, until fn returns non-zero or the keys run out.
 * Returns the number of calls.  fn must not modify t.
 */
size_t index_scan(const index_tree *t, const void *from, size_t from_len, int after, index_visit_fn fn, void *arg);

/* Invariant checker for assert(): 1 when every invariant holds (walks the
 * whole tree). */
int index_check(const index_tree *t);

#endif
