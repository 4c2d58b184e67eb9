/*
 * coll — collections of JSON documents with secondary indexes
 * (docs/collections.md).
 *
 * A collection has a name, a primary-key field, a shard-key field (default:
 * the primary key) and indexed fields; documents are JSON objects checked
 * against optional field types and lengths (schema.h), stored in the shard
 * tables as internal keys on the shard their shard key places them, and
 * indexed per shard under the shard lock (docidx.h).  The built-in
 * collection `users` is seed 004's table.  The registry (coll.c) keeps the
 * definitions in force and the indexes; the routes are in coll_http.c and
 * coll_query.c.
 *
 * Dropping a collection removes its definition; its documents are deleted
 * afterwards, in the background (coll_maintain), once the removal is
 * visible, hence durable under --fsync always.
 *
 * Threads: coll_registry_new/free run on the main thread with no worker
 * serving data routes; coll_route_of/coll_dispatch on any worker thread;
 * coll_maintain on the sweeper thread.
 */
#ifndef SKV_COLL_H
#define SKV_COLL_H

#include "api.h"

typedef struct coll_registry coll_registry;

/* After recovery, before the node is ready: loads the collection
 * definitions, creates the default `users` collection when absent, builds
 * the indexes from the shards and starts maintaining them.  Documents of
 * collections without a definition (a drop whose cleanup a crash cut
 * short) get a cleanup job; nothing is deleted here, so the start stays
 * fast.  Returns 0 and *out, or an SKV_E* code after logging why. */
int coll_registry_new(store *st, const skv_config *cfg, coll_registry **out);
/* Detaches from the shards and frees (after the workers and the sweeper
 * stopped).  Unfinished cleanup jobs are dropped: the next start finds
 * their documents without a definition and makes new ones. */
void coll_registry_free(coll_registry *reg);

/*
 * Background upkeep, a sweeper task (sweeper.h; arg is the registry): runs
 * the cleanup jobs of dropped collections a bounded step each (at most 512
 * deletes per shard per call: conditional on the document's version, so a
 * document of a later definition of the same name is never touched), and
 * clears the dropping flag of a definition whose removal failed to reach
 * the disk.  Sweeper thread only (one caller at a time).
 */
void coll_maintain(void *reg);

/* The route id of a collection route (/v1/collections..., /users...), or -1. */
int coll_route_of(const http_request *req);
/* Handles a collection route (one answer through r); returns the route id,
 * or -1 (nothing written) when the path is not a collection route. */
int coll_dispatch(api_worker *w, const http_request *req, skv_slice body, reply *r);

#endif
