/*
 * scan — paginated scans of the user key space:
 *   GET / HEAD /v1/kv?prefix=&limit=&cursor=
 *   -> 200 {"items":[{"key","value","version","shard"[,"expires_at_ms"]}...],
 *           "next_cursor":"..." | null}
 *
 * A scan walks the shards in id order and, inside a shard, the positions of
 * the shard's hash table (ht.h: an entry's position is its key hash with the
 * bits reversed) in increasing order.  Where a scan stands is a scan_pos:
 * shard s and the first position `next` of s not yet examined.  The cursor
 * (cursor.h, kind CURSOR_KV_SCAN, fingerprint of the prefix) carries
 * a = next, b = the shard map version, shard = s.
 *
 * Guarantees (the argument is at the top of scan.c): a key is never
 * returned twice by one scan; a key present for the whole scan is returned
 * (when its key matches the prefix and it has not expired), with the value
 * it had at some moment during the scan, never an older one; nothing is
 * returned that was not present when its page was made.  Internal keys
 * (store.h) and expired entries are skipped.
 *
 * Bounded work: one page visits at most SCAN_MAX_BUCKETS bucket positions
 * over all shards and holds one shard lock at a time, so a page over a
 * sparse key space may hold fewer than limit items, even none, with a
 * non-null next_cursor.  A page also stops after the item that brings its
 * body past SCAN_MAX_PAGE_BYTES.
 */
#ifndef SKV_SCAN_H
#define SKV_SCAN_H

#include <stddef.h>
#include <stdint.h>

#include "api.h"
#include "buf.h"
#include "ht.h"
#include "store.h"

#define SCAN_DEFAULT_LIMIT 100
#define SCAN_MAX_LIMIT 1000
#define SCAN_MAX_BUCKETS 4096                   /* bucket positions visited per page (all shards) */
#define SCAN_MAX_PAGE_BYTES (4u * 1024 * 1024)  /* a page stops after the item that passes this */

/* Where a scan stands: all shards below `shard` and all positions below
 * `next` in shard `shard` have been examined.  {0, 0} is the start;
 * shard == nshards means the scan is complete. */
typedef struct scan_pos {
    uint32_t shard;
    uint64_t next;
} scan_pos;

/* Called with the shard lock held for every entry the page returns; e is
 * valid only during the call and must not be modified.  Returns 1 to end
 * the page after this entry (e.g. the answer is big enough), else 0. */
typedef int (*scan_item_fn)(void *arg, uint32_t shard, const ht_entry *e);

/*
 * Makes one page of the scan of st from *pos: calls fn for up to limit
 * (>= 1) live entries with user keys starting with prefix, in scan order,
 * visiting at most max_buckets (>= 1) bucket positions, and advances *pos
 * past everything it examined.  Takes each shard's lock in turn, never two
 * at once.  Returns 1 when the scan is complete (pos->shard == nshards),
 * else 0 (continue from *pos; the page may have returned nothing).  *items
 * (may be NULL) receives the number of fn calls.  The page exceeds limit
 * only when two keys share their whole 64-bit hash: such entries are never
 * split across pages.  pos->shard must be <= st->nshards.  Any thread.
 */
int scan_page(store *st, skv_slice prefix, size_t limit, size_t max_buckets, scan_pos *pos, scan_item_fn fn,
              void *arg, size_t *items);

/* GET/HEAD /v1/kv?prefix=&limit=&cursor= (one answer through r: 200, 400
 * bad_query (malformed percent-encoding) / bad_limit / bad_cursor, 405 +
 * Allow for other methods);
 * returns API_ROUTE_KV_SCAN.  Worker thread. */
int scan_kv_handle(api_worker *w, const http_request *req, reply *r);

#endif
