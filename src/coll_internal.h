/*
 * coll_internal — what the collection routes (coll_http.c) use of the
 * registry (coll.c).  Not part of the coll contract; nothing else includes it.
 *
 * Locks, in the only order they are ever nested:
 *   a definition's gate (shared by document writes, exclusive to start a drop)
 *   -> a write stripe (document writes of collections not sharded by their
 *      primary key: serialises "where is this id?" with the write)
 *   -> one shard lock
 *   -> the registry lock (taken by the shard observer: shared for a document
 *      change, exclusive for a definition change on shard 0).
 * Nothing waits for a shard lock while holding the registry lock, so the
 * observer can take it under a shard lock.  The cleanup jobs of dropped
 * collections are under the registry lock too.
 */
#ifndef SKV_COLL_INTERNAL_H
#define SKV_COLL_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "coll.h"
#include "docidx.h"
#include "schema.h"

#define COLL_MAX 256 /* collections per node (checked when one is defined) */

/* A definition in force.  Immutable except refs, dropping and drop_version;
 * freed when the last reference goes (the registry holds one while it is
 * current). */
typedef struct coll_def {
    schema *s;
    uint64_t id;             /* unique in this process, never reused (docidx binding) */
    uint64_t version;        /* version of its schema record; 0 for a built-in not stored */
    int builtin;             /* `users` */
    _Atomic int refs;
    _Atomic int dropping;    /* a drop was accepted: document writes answer 404.  Set by the one drop that
                                owns it (under the gate) and for good when the definition leaves the
                                registry; cleared only while the definition is current and its removal
                                cannot become visible any more (see drop_version) */
    _Atomic uint64_t drop_version; /* the owning drop's removal record (its version on shard 0) once written,
                                      else 0: while that record waits for the disk the drop is in flight; when
                                      it is gone from shard 0's pending writes although the definition is
                                      still current, the write failed and dropping is cleared */
    pthread_rwlock_t gate;   /* see above */
} coll_def;

/* The current, not dropping, definition of name with a reference (release
 * with coll_release), or NULL.  Any thread; takes the registry lock briefly. */
coll_def *coll_lookup(coll_registry *reg, skv_slice name);
void coll_release(coll_def *c);
/* The current definitions with references, sorted by name, in *out (free
 * the array after releasing each); returns how many. */
size_t coll_list(coll_registry *reg, coll_def ***out);
/* 1 when name is a built-in collection (it exists without a stored definition). */
int coll_is_builtin(skv_slice name);

store *coll_store(coll_registry *reg);
/* Shard i's document index; use it with shard i's lock held. */
docidx *coll_shard_index(coll_registry *reg, uint32_t i);
/* The write stripe of (collection, primary key text). */
pthread_mutex_t *coll_stripe(coll_registry *reg, skv_slice coll, skv_slice pk);

/* The shard a shard-key text places a document on: the node's ring, as
 * the seed hashes it (str(user_id) for users).  Logged at debug level. */
uint32_t coll_place(coll_registry *reg, skv_slice shard_text);

/* The internal key of name's stored definition (shard 0), into out. */
skv_slice coll_schema_key(skv_buf *out, skv_slice name);

/* 1 when a definition record of name (not a dropped marker) is stored,
 * counting one still waiting for the disk.  Takes shard 0's lock. */
int coll_definition_stored(coll_registry *reg, skv_slice name);

/* The value that marks a dropped built-in collection. */
#define COLL_DROPPED_MARKER "{\"dropped\":true}"

/*
 * A drop that wrote nothing (its write failed at once, was a replay or
 * lost a race): clears c's dropping flag, if c is still current.
 */
void coll_drop_abandon(coll_registry *reg, coll_def *c);

/*
 * 1 when name cannot be defined now: a drop of it is in flight (its
 * definition is current but dropping) or the documents of a dropped
 * collection of that name are still being deleted (a cleanup job runs,
 * see coll_maintain).  Documents of name left without a definition and
 * without a job (none are expected) get a job here, and the answer is 1.
 * Any thread; takes one shard lock at a time, then the registry lock.
 */
int coll_busy(coll_registry *reg, skv_slice name);

/* Cleanup jobs not finished yet (tests, diagnostics).  Any thread. */
size_t coll_cleanup_jobs(coll_registry *reg);

/* GET/HEAD of c's documents, all or those of one indexed value, a page at
 * a time (coll_query.c; one answer through r: 200, or 400 bad_limit,
 * bad_cursor, bad_filter, not_indexed, bad_query).  Worker thread. */
void coll_query(api_worker *w, const http_request *req, reply *r, coll_registry *reg, coll_def *c);

#endif
