/*
 * docidx — one shard's indexes of the collections' documents, kept
 * atomically with the shard's visible table.
 *
 * A document is the internal key (store.h)
 *   0x00 'D' u32 shard, collection name, 0x00, primary key text
 * with the document's compact JSON as value.  For every collection that
 * has documents on the shard, a docidx holds a *part*:
 *   - the primary index: the set of the documents' primary keys;
 *   - one secondary index per indexed field of the collection's
 *     definition: the set of (value text, primary key) pairs.
 * Index keys are byte strings ordered by index.h:
 *   primary key  = 0x00 + 8 bytes big-endian (int64 with its sign bit
 *                  flipped) when the text is a canonical 64-bit integer,
 *                  else 0x01 + the text's bytes
 *                  (so integers sort numerically, before other texts);
 *   secondary key = u32 big-endian length of the value text, the value
 *                  text, then the primary key encoding.
 * All documents with one value are thus contiguous and in primary-key
 * order, which is what a paginated query walks (docidx_visit).
 *
 * Maintenance.  docidx_change() is called under the shard lock for every
 * change of a document key in the visible table — from the shard observer
 * (commit, replay, delete) and from the scan that builds the indexes after
 * recovery — so an index never shows a state the table does not: a write
 * pending under --fsync always is not indexed until it becomes visible.
 * The primary index does not depend on any definition (documents of a
 * dropped collection stay findable until they are deleted).  Secondary
 * indexes belong to one definition, named by an id that is never reused:
 * when the definition that is current for a collection is another (it was
 * dropped and defined again, or the part was built without one), the part
 * rebuilds its secondary indexes from the primary index and the table.
 *
 * Answers re-check every document against the query (docidx_visit parses
 * it and compares the value) so that a stale index entry, were there one,
 * could never return a document that does not match.
 *
 * Thread-safety: every function taking a shard must be called with that
 * shard's lock held; the docidx belongs to that shard.
 * Invariants (docidx_check): each primary index equals the set of the
 * collection's document keys in the table; each secondary index equals the
 * set of (value, key) of those documents under the bound definition.
 */
#ifndef SKV_DOCIDX_H
#define SKV_DOCIDX_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "ht.h"
#include "schema.h"
#include "shard.h"

typedef struct docidx docidx;

docidx *docidx_new(uint32_t shard_id);
void docidx_free(docidx *d);

/* 1 with *coll and *pk (slices into key) when key is a document key
 * (STORE_NS_DOC), else 0. */
int docidx_parse_key(skv_slice key, skv_slice *coll, skv_slice *pk);
/* Resets out to the document key of (shard, coll, pk); returns it. */
skv_slice docidx_doc_key(skv_buf *out, uint32_t shard_id, skv_slice coll, skv_slice pk);

/*
 * The document (coll, pk) changed in s's visible table: old is what was
 * there (NULL when absent), now what is there now (NULL when removed).
 * def / def_id: the collection's current definition and its id (NULL / 0
 * when the collection is not defined: only the primary index is kept).
 * Shard lock held.
 */
void docidx_change(docidx *d, shard *s, const schema *def, uint64_t def_id, skv_slice coll, skv_slice pk,
                   const ht_entry *old, const ht_entry *now);

/* A query on one shard: the documents of coll in primary-key order, all of
 * them (index < 0) or those whose indexed field def->indexes[index] has
 * the canonical text value; after the primary key text `after` when
 * has_after. */
typedef struct docidx_query {
    skv_slice coll;
    const schema *def;
    uint64_t def_id;
    int index;
    skv_slice value;
    skv_slice after;
    int has_after;
} docidx_query;

/* Called for each match with its primary key text and the document (valid
 * during the call only).  Returns 0 to continue, non-zero to stop. */
typedef int (*docidx_visit_fn)(void *arg, skv_slice pk, const ht_entry *doc);

/* Calls fn for the matches of q on s, in order, until fn stops.  Returns
 * 1 when fn stopped the walk, 0 when the matches ran out.  Shard lock held. */
int docidx_visit(docidx *d, shard *s, const docidx_query *q, docidx_visit_fn fn, void *arg);

/* Documents of coll on this shard.  Shard lock held. */
size_t docidx_count(docidx *d, skv_slice coll);

/* Appends the primary key texts of up to max documents of coll, each as a
 * u32 (native order) length then the bytes; returns how many.  Shard lock held. */
size_t docidx_keys(docidx *d, skv_slice coll, size_t max, skv_buf *out);

/* Calls fn with the name of every collection with documents on the shard
 * (fn must not change d).  Shard lock held. */
void docidx_each_collection(docidx *d, void (*fn)(void *arg, skv_slice coll), void *arg);

/* The current definition of coll and its id (NULL when none). */
typedef const schema *(*docidx_def_fn)(void *arg, skv_slice coll, uint64_t *id);

/* Invariant checker for assert() and tests (walks the shard's table and
 * every index; O(n log n)).  Secondary indexes are checked for the parts
 * bound to the definition def_of names.  Shard lock held.  Returns 1 when
 * valid. */
int docidx_check(docidx *d, shard *s, docidx_def_fn def_of, void *arg);

#endif
