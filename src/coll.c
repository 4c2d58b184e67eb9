#include "coll.h"

#include <stdlib.h>

#include "mem.h"

struct coll_registry {
    store *st;
};

int coll_registry_new(store *st, const skv_config *cfg, coll_registry **out) {
    (void)cfg;
    coll_registry *reg = skv_calloc(1, sizeof *reg);
    reg->st = st;
    *out = reg;
    return 0;
}

void coll_registry_free(coll_registry *reg) { free(reg); }

int coll_route_of(const http_request *req) {
    (void)req;
    return -1;
}

int coll_dispatch(api_worker *w, const http_request *req, skv_slice body, reply *r) {
    (void)w, (void)req, (void)body, (void)r;
    return -1;
}
