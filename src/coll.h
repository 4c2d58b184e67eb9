/*
 * coll — collections of JSON documents with secondary indexes.  PLACEHOLDER: being written.
 */
#ifndef SKV_COLL_H
#define SKV_COLL_H

#include "api.h"

typedef struct coll_registry coll_registry;

/* After recovery, before the node is ready: loads the collection
 * definitions, creates the default `users` collection when absent, builds
 * the indexes from the shards and starts maintaining them.  Returns 0 and
 * *out, or an SKV_E* code after logging why. */
int coll_registry_new(store *st, const skv_config *cfg, coll_registry **out);
/* Detaches from the shards and frees (after the workers stopped). */
void coll_registry_free(coll_registry *reg);

/* The route id of a collection route (/v1/collections..., /users...), or -1. */
int coll_route_of(const http_request *req);
/* Handles a collection route (one answer through r); returns the route id. */
int coll_dispatch(api_worker *w, const http_request *req, skv_slice body, reply *r);

#endif
