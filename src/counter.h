/*
 * counter — sharded counters (seed 002).  PLACEHOLDER: being written.
 */
#ifndef SKV_COUNTER_H
#define SKV_COUNTER_H

#include "api.h"

/* The route id of a counter route (/v1/counters/..., /counter...), or -1. */
int counter_route_of(const http_request *req);
/* Handles a counter route (one answer through r); returns the route id. */
int counter_dispatch(api_worker *w, const http_request *req, skv_slice body, reply *r);

#endif
