/*
 * seed — the HTTP routes of the five seed systems, kept as documented
 * aliases so that their clients, demos and load tests run unchanged:
 *
 *   POST /store  {"userId": 15, "data": ...}  -> {"message": "Data stored in shard K"}   (seed 000)
 *   GET  /store/{userId}                       -> {"userId", "data", "shard", "version"}
 *   POST|PUT /put {"key", "value"}, GET /get?key=, DELETE|GET /delete?key=              (seed 001)
 *   PUT /kv {"data": {"key", "value"}}, GET /kv?key=, DELETE /kv?key=                   (seed 003)
 *
 * Values arrive as JSON.  A JSON string is stored as its raw bytes (so the
 * canonical GET /v1/kv/{key} returns the text itself); any other JSON value
 * is stored as compact JSON text flagged SHARD_VAL_JSON and comes back as
 * the same JSON.  /store places the record under the key "store:<userId>",
 * which the store pins to shard userId % N, as the seed does.
 *
 * Bodies must be JSON objects: 400 when malformed or when a field is
 * missing or of the wrong type, 415 for a Content-Type that cannot carry
 * JSON (absent, text/plain and curl's default form type are accepted, since
 * the seeds' curl examples send those).  Errors carry the FastAPI-style
 * "detail" string beside the usual error object.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "err.h"

/* Parses the body as a JSON object; NULL after answering 415 or 400.
 * The caller owns the result (json_decref). */
static json_t *parse_object(const http_request *req, skv_slice body, reply *r) {
    if (!api_json_content_type(req->content_type)) {
        reply_error(r, 415, "unsupported_media_type", "the body must be JSON (Content-Type: application/json), not %.*s",
                    (int)(req->content_type.len > 100 ? 100 : req->content_type.len), req->content_type.ptr);
        return NULL;
    }
    if (body.len == 0) {
        reply_error(r, 400, "invalid_json", "the request body must be a JSON object");
        return NULL;
    }
    json_error_t err;
    json_t *root = json_loadb(body.ptr, body.len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
    if (!root) {
        reply_error(r, 400, "invalid_json", "malformed JSON at line %d column %d: %s", err.line, err.column, err.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        reply_error(r, 400, "invalid_json", "the request body must be a JSON object");
        return NULL;
    }
    return root;
}

/* A JSON value to store: raw bytes for strings, compact JSON text otherwise.
 * *owned receives memory to free() (or NULL).  Returns 0 or SKV_ENOMEM. */
static int value_bytes(json_t *v, skv_slice *out, uint32_t *flags, char **owned) {
    *owned = NULL;
    if (json_is_string(v)) {
        *out = skv_slice_make(json_string_value(v), json_string_length(v));
        *flags = 0;
        return SKV_OK;
    }
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text) return SKV_ENOMEM;
    *owned = text;
    *out = skv_slice_cstr(text);
    *flags = SHARD_VAL_JSON;
    return SKV_OK;
}

/* The success answers of the seed write routes, rendered by seed_render
 * (so an Idempotency-Key retry gets them byte for byte). */
enum seed_shape { SHAPE_STORE, SHAPE_PUT, SHAPE_KV_PUT, SHAPE_DELETE, SHAPE_KV_DELETE };

typedef struct seed_answer {
    int shape;                 /* enum seed_shape */
    skv_slice key;
} seed_answer;

static void seed_render(void *arg, const shard_result *res, skv_buf *b) {
    const seed_answer *a = arg;
    unsigned long long v = (unsigned long long)res->version;
    api_answer_begin(b, 200, 0, API_NO_SHARD);
    switch (a->shape) {
    case SHAPE_STORE:
        skv_buf_printf(b, "{\"message\":\"Data stored in shard %u\",\"shard\":%u,\"version\":%llu}", res->shard,
                       res->shard, v);
        return;
    case SHAPE_PUT: skv_buf_append_cstr(b, "{\"status\":\"ok\",\"key\":\""); break;
    case SHAPE_KV_PUT: skv_buf_append_cstr(b, "{\"status\":\"ok\",\"data\":{\"key\":\""); break;
    case SHAPE_DELETE: skv_buf_append_cstr(b, "{\"status\":\"deleted\",\"key\":\""); break;
    default: skv_buf_append_cstr(b, "{\"status\":\"deleted\",\"data\":{\"key\":\""); break;
    }
    skv_buf_append_json_str(b, a->key.ptr, a->key.len);
    int nested = a->shape == SHAPE_KV_PUT || a->shape == SHAPE_KV_DELETE;
    skv_buf_printf(b, "\",\"shard\":%u,\"version\":%llu}%s", res->shard, v, nested ? "}" : "");
}

/* Stores value under key and answers (the shape's answer or the error). */
static void put_json(api_worker *w, const http_request *req, skv_slice body, skv_slice key, json_t *value, reply *r,
                     int shape) {
    if (!api_check_key(w, key, r)) return;
    shard_write wr = { 0 };
    char *owned;
    if (value_bytes(value, &wr.value, &wr.flags, &owned) != SKV_OK) {
        reply_error(r, 507, "insufficient_storage", "out of memory encoding the value");
        return;
    }
    if (api_check_value(w, wr.value.len, r)) {
        wr.op = SHARD_OP_PUT;
        wr.key = key;
        seed_answer a = { shape, key };
        api_write_answer(w, req, body, r, &wr, seed_render, &a);
    }
    free(owned);
}

/* ---- seed 000: POST /store, GET /store/{userId} -------------------------------------------- */

static int handle_store(api_worker *w, const http_request *req, skv_slice body, reply *r) {
    if (!api_method_allowed(req, r, "POST, OPTIONS", 1u << HTTP_M_POST)) return API_ROUTE_SEED_STORE;
    json_t *root = parse_object(req, body, r);
    if (!root) return API_ROUTE_SEED_STORE;
    json_t *uid = json_object_get(root, "userId");
    json_t *data = json_object_get(root, "data");
    if (!uid || !data) {
        reply_error(r, 400, "missing_field", "fields 'userId' (integer) and 'data' are required");
    } else if (!json_is_integer(uid)) {
        reply_error(r, 400, "bad_field", "'userId' must be an integer");
    } else {
        char keybuf[32];
        size_t klen = store_pinned_key((int64_t)json_integer_value(uid), keybuf);
        put_json(w, req, body, skv_slice_make(keybuf, klen), data, r, SHAPE_STORE);
    }
    json_decref(root);
    return API_ROUTE_SEED_STORE;
}

typedef struct found_ctx {
    skv_buf *b;
    uint64_t version;
    int found;
} found_ctx;

static void copy_value(void *arg, const ht_entry *e) {
    found_ctx *c = arg;
    api_append_value_json(c->b, e);
    c->version = e->version;
    c->found = 1;
}

static int handle_store_get(api_worker *w, const http_request *req, reply *r) {
    if (!api_method_allowed(req, r, "GET, HEAD, OPTIONS", API_GET_HEAD)) return API_ROUTE_SEED_STORE_GET;
    int64_t uid;
    skv_slice id = skv_slice_make(req->path.ptr + 7, req->path.len - 7);
    if (skv_slice_to_i64(id, &uid) != SKV_OK) {
        reply_error(r, 400, "bad_user_id", "userId must be an integer");
        return API_ROUTE_SEED_STORE_GET;
    }
    char keybuf[32];
    size_t klen = store_pinned_key(uid, keybuf);
    skv_buf *b = &w->tmp;
    skv_buf_reset(b);
    skv_buf_printf(b, "{\"userId\":%lld,\"data\":", (long long)uid);
    found_ctx fc = { b, 0, 0 };
    uint32_t shard_id;
    if (api_read(w, skv_slice_make(keybuf, klen), &shard_id, copy_value, &fc) != SKV_OK) {
        reply_error(r, 404, "not_found", "no data stored for userId %lld", (long long)uid);
        return API_ROUTE_SEED_STORE_GET;
    }
    skv_buf_printf(b, ",\"shard\":%u,\"version\":%llu}", shard_id, (unsigned long long)fc.version);
    reply_json(r, 200, b);
    return API_ROUTE_SEED_STORE_GET;
}

/* ---- seed 001: /put, /get, /delete --------------------------------------------------------- */

/* The key of a JSON object field: must be a string. */
static int json_key(json_t *obj, const char *field, skv_slice *out, reply *r) {
    json_t *k = json_object_get(obj, field);
    if (!k) {
        reply_error(r, 400, "missing_field", "field '%s' is required", field);
        return 0;
    }
    if (!json_is_string(k)) {
        reply_error(r, 400, "bad_field", "'%s' must be a string", field);
        return 0;
    }
    *out = skv_slice_make(json_string_value(k), json_string_length(k));
    return 1;
}

static int handle_put(api_worker *w, const http_request *req, skv_slice body, reply *r) {
    if (!api_method_allowed(req, r, "POST, PUT, OPTIONS", 1u << HTTP_M_POST | 1u << HTTP_M_PUT))
        return API_ROUTE_SEED_PUT;
    json_t *root = parse_object(req, body, r);
    if (!root) return API_ROUTE_SEED_PUT;
    skv_slice key;
    json_t *value = json_object_get(root, "value");
    if (json_key(root, "key", &key, r)) {
        if (!value) {
            reply_error(r, 400, "missing_field", "field 'value' is required");
        } else {
            put_json(w, req, body, key, value, r, SHAPE_PUT);
        }
    }
    json_decref(root);
    return API_ROUTE_SEED_PUT;
}

/* The ?key= query parameter, decoded into w->key; 0 after answering 400. */
static int query_key(api_worker *w, const http_request *req, skv_slice *out, reply *r) {
    skv_buf_reset(&w->key);
    int rc = http_query_get(req->query, "key", &w->key);
    if (rc < 0) {
        reply_error(r, 400, "bad_key", "the key parameter is not valid percent-encoding");
        return 0;
    }
    if (rc == 0) {
        reply_error(r, 400, "missing_key", "query parameter 'key' is required");
        return 0;
    }
    *out = skv_slice_make(w->key.data ? w->key.data : "", w->key.len);
    return api_check_key(w, *out, r);
}

/* GET /get?key= and GET /kv?key=: seed_kv selects seed 003's envelope. */
static int handle_get(api_worker *w, const http_request *req, reply *r, int seed_kv) {
    skv_slice key;
    if (!query_key(w, req, &key, r)) return 0;
    skv_buf *b = &w->tmp;
    skv_buf_reset(b);
    skv_buf_append_cstr(b, seed_kv ? "{\"data\":{\"key\":\"" : "{\"key\":\"");
    skv_buf_append_json_str(b, key.ptr, key.len);
    skv_buf_append_cstr(b, "\",\"value\":");
    found_ctx fc = { b, 0, 0 };
    uint32_t shard_id;
    if (api_read(w, key, &shard_id, copy_value, &fc) != SKV_OK) {
        api_reply_write_error(r, SKV_ENOTFOUND, key);
        return 0;
    }
    if (seed_kv)
        skv_buf_printf(b, ",\"source\":\"store\",\"shard\":%u,\"version\":%llu}}", shard_id, (unsigned long long)fc.version);
    else
        skv_buf_printf(b, ",\"shard\":%u,\"version\":%llu}", shard_id, (unsigned long long)fc.version);
    reply_start(r, 200);
    reply_etag(r, fc.version);
    reply_json_buf(r, b);
    return 1;
}

static int handle_delete(api_worker *w, const http_request *req, reply *r, int seed_kv) {
    skv_slice key;
    if (!query_key(w, req, &key, r)) return 0;
    shard_write wr = { 0 };
    wr.op = SHARD_OP_DELETE;
    wr.key = key;
    seed_answer a = { seed_kv ? SHAPE_KV_DELETE : SHAPE_DELETE, key };
    return api_write_answer(w, req, skv_slice_make("", 0), r, &wr, seed_render, &a) == SKV_OK;
}

/* ---- seed 003: /kv --------------------------------------------------------------------------- */

static int handle_kv_put(api_worker *w, const http_request *req, skv_slice body, reply *r) {
    json_t *root = parse_object(req, body, r);
    if (!root) return 0;
    json_t *data = json_object_get(root, "data");
    skv_slice key;
    if (!data || !json_is_object(data)) {
        reply_error(r, 400, "missing_field", "field 'data' must be an object {\"key\": ..., \"value\": ...}");
    } else if (json_key(data, "key", &key, r)) {
        json_t *value = json_object_get(data, "value");
        if (!value) reply_error(r, 400, "missing_field", "field 'data.value' is required");
        else put_json(w, req, body, key, value, r, SHAPE_KV_PUT);
    }
    json_decref(root);
    return 1;
}

static int handle_seed_kv(api_worker *w, const http_request *req, skv_slice body, reply *r) {
    const unsigned mask = API_GET_HEAD | 1u << HTTP_M_PUT | 1u << HTTP_M_DELETE;
    if (!api_method_allowed(req, r, "GET, HEAD, PUT, DELETE, OPTIONS", mask)) return API_ROUTE_SEED_KV;
    if (req->method == HTTP_M_PUT) handle_kv_put(w, req, body, r);
    else if (req->method == HTTP_M_DELETE) handle_delete(w, req, r, 1);
    else handle_get(w, req, r, 1);
    return API_ROUTE_SEED_KV;
}

/* ---- dispatch -------------------------------------------------------------------------------- */

int seed_route_of(const http_request *req) {
    skv_slice p = req->path;
    if (skv_slice_eq_cstr(p, "/store")) return API_ROUTE_SEED_STORE;
    if (p.len > 7 && memcmp(p.ptr, "/store/", 7) == 0) return API_ROUTE_SEED_STORE_GET;
    if (skv_slice_eq_cstr(p, "/put")) return API_ROUTE_SEED_PUT;
    if (skv_slice_eq_cstr(p, "/get")) return API_ROUTE_SEED_GET;
    if (skv_slice_eq_cstr(p, "/delete")) return API_ROUTE_SEED_DELETE;
    if (skv_slice_eq_cstr(p, "/kv")) return API_ROUTE_SEED_KV;
    return -1;
}

int seed_dispatch(api_worker *w, const http_request *req, skv_slice body, reply *r) {
    skv_slice p = req->path;
    r->seed_style = 1;
    if (skv_slice_eq_cstr(p, "/store")) return handle_store(w, req, body, r);
    if (p.len > 7 && memcmp(p.ptr, "/store/", 7) == 0) return handle_store_get(w, req, r);
    if (skv_slice_eq_cstr(p, "/put")) return handle_put(w, req, body, r);
    if (skv_slice_eq_cstr(p, "/get")) {
        if (api_method_allowed(req, r, "GET, HEAD, OPTIONS", API_GET_HEAD)) handle_get(w, req, r, 0);
        return API_ROUTE_SEED_GET;
    }
    if (skv_slice_eq_cstr(p, "/delete")) {
        /* GET too: the seed's README deletes with a plain `curl .../delete?key=`. */
        if (api_method_allowed(req, r, "DELETE, GET, OPTIONS", 1u << HTTP_M_DELETE | 1u << HTTP_M_GET))
            handle_delete(w, req, r, 0);
        return API_ROUTE_SEED_DELETE;
    }
    if (skv_slice_eq_cstr(p, "/kv")) return handle_seed_kv(w, req, body, r);
    r->seed_style = 0;
    return -1;
}
