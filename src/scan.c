#include "scan.h"

int scan_kv_handle(api_worker *w, const http_request *req, reply *r) {
    (void)w, (void)req;
    reply_error(r, 501, "not_implemented", "scans are being written");
    return API_ROUTE_KV_SCAN;
}
