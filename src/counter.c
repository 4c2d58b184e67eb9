#include "counter.h"

int counter_route_of(const http_request *req) {
    (void)req;
    return -1;
}

int counter_dispatch(api_worker *w, const http_request *req, skv_slice body, reply *r) {
    (void)w, (void)req, (void)body, (void)r;
    return -1;
}
