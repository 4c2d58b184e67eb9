/*
 * cursor — the opaque pagination cursors of every paginated answer
 * ({"items": [...], "next_cursor": "..."}): key scans (GET /v1/kv?prefix=)
 * and index queries (GET /users?region=, /v1/collections/{c}/docs?...).
 *
 * A cursor carries a kind (which listing made it), a fingerprint of the
 * query (prefix, collection, index and value), a position (shard, two
 * integers, an optional key) and a checksum.  It is encoded as URL-safe
 * base64 without padding, so it can be pasted into a query string as is.
 *
 * Decoding is strict: a cursor that is not valid base64url, is truncated,
 * has a bad checksum or version, or was made by another kind of listing or
 * for another query is refused (the routes answer 400 bad_cursor).  The
 * checksum is not a secret: a client can forge a cursor, but a forged one
 * only moves the listing to another position of the same query.
 *
 * Wire layout before base64 (little-endian): u8 version (1), u8 kind,
 * u64 query fingerprint, u32 shard, u64 a, u64 b, u32 key_len, key bytes,
 * u32 crc32c of everything before it.
 */
#ifndef SKV_CURSOR_H
#define SKV_CURSOR_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

enum cursor_kind { CURSOR_KV_SCAN = 1, CURSOR_INDEX = 2, CURSOR_COLLECTION_SCAN = 3 };

#define CURSOR_MAX_KEY 4096 /* longest key a cursor may carry */

typedef struct skv_cursor {
    int kind;               /* enum cursor_kind */
    uint64_t query;         /* fingerprint of the query (cursor_fingerprint) */
    uint32_t shard;         /* shard the listing is in */
    uint64_t a, b;          /* listing-defined positions (e.g. table cursor, hash) */
    skv_slice key;          /* listing-defined key (e.g. last primary key); may be empty */
} skv_cursor;

/* Fingerprint of a query: xxh3 of the parts, each length-prefixed. */
uint64_t cursor_fingerprint(int kind, const skv_slice *parts, size_t nparts);

/* Appends the encoded cursor to out (NUL-terminated).  c->key.len must be
 * <= CURSOR_MAX_KEY. */
void cursor_encode(const skv_cursor *c, skv_buf *out);

/*
 * Decodes text into *c, whose key points into keybuf (reset by the call).
 * Checks the checksum, the version, that the kind is want_kind and the
 * fingerprint is want_query.  Returns 0, or SKV_EINVAL with a static
 * explanation in *why ("not a cursor", "cursor of another query", ...).
 */
int cursor_decode(skv_slice text, int want_kind, uint64_t want_query, skv_cursor *c, skv_buf *keybuf,
                  const char **why);

#endif
