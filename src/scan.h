/*
 * scan — paginated scans of the user key space.  PLACEHOLDER: being written.
 */
#ifndef SKV_SCAN_H
#define SKV_SCAN_H

#include "api.h"

/* GET/HEAD /v1/kv?prefix=&limit=&cursor= (one answer through r); returns API_ROUTE_KV_SCAN. */
int scan_kv_handle(api_worker *w, const http_request *req, reply *r);

#endif
