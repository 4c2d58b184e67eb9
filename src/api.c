/*
 * api — routing and the canonical and operational handlers.  The seed
 * routes live in seed.c and share the helpers declared in api_internal.h.
 */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>
#include <xxhash.h>

#include "api_internal.h"
#include "assets.h"
#include "coll.h"
#include "counter.h"
#include "scan.h"
#include "sweeper.h"
#include "commit.h"
#include "err.h"
#include "hotkeys.h"
#include "log.h"
#include "mem.h"

const char *const api_route_labels[API_ROUTE__COUNT] = {
#define API__ROUTE_LABEL(id, label) label,
    API_ROUTES(API__ROUTE_LABEL)
#undef API__ROUTE_LABEL
};

void api_worker_init(api_worker *w, api_env *env, unsigned id) {
    memset(w, 0, sizeof *w);
    w->env = env;
    w->id = id;
    w->mw = metrics_worker_slot(env->m, id);
    w->hot = env->hot ? hotkeys_worker_slot(env->hot, id) : NULL;
    skv_buf_init(&w->key);
    skv_buf_init(&w->tmp);
    skv_buf_init(&w->answer);
    skv_buf_init(&w->idem);
    skv_buf_reserve(&w->key, 256);
    skv_buf_reserve(&w->tmp, 1024);
}

void api_worker_destroy(api_worker *w) {
    skv_buf_free(&w->key);
    skv_buf_free(&w->tmp);
    skv_buf_free(&w->answer);
    skv_buf_free(&w->idem);
}

/* ---- shared helpers (api_internal.h) ------------------------------------------------------- */

int api_method_allowed(const http_request *req, reply *r, const char *allow, unsigned mask) {
    if (req->method != HTTP_M_OTHER && (mask & (1u << req->method))) return 1;
    char hdr[96];
    snprintf(hdr, sizeof hdr, "Allow: %s\r\n", allow);
    r->extra = hdr;
    if (req->method == HTTP_M_OPTIONS) {
        reply_start(r, 204);
        r->extra = NULL;
        reply_body(r, NULL, "", 0);
        return 0;
    }
    if (req->method == HTTP_M_OTHER)
        reply_error(r, 501, "not_implemented", "method %.*s is not implemented", (int)req->method_name.len,
                    req->method_name.ptr);
    else
        reply_error(r, 405, "method_not_allowed", "method %s is not allowed here; allowed: %s",
                    http_method_name(req->method), allow);
    r->extra = NULL;
    return 0;
}

int api_check_key(api_worker *w, skv_slice key, reply *r) {
    if (key.len == 0) {
        reply_error(r, 400, "missing_key", "the key is empty");
        return 0;
    }
    if (store_key_is_internal(key)) {
        reply_error(r, 400, "bad_key", "keys starting with a NUL byte (%%00) are reserved for shardkv's own records");
        return 0;
    }
    if (key.len > w->env->cfg->max_key_bytes) {
        reply_error(r, 400, "key_too_large", "key is %zu bytes; the limit is %zu (--max-key-bytes)", key.len,
                    w->env->cfg->max_key_bytes);
        return 0;
    }
    return 1;
}

int api_check_value(api_worker *w, size_t len, reply *r) {
    if (len > w->env->cfg->max_value_bytes) {
        reply_error(r, 413, "value_too_large", "value is %zu bytes; the limit is %zu (--max-value-bytes)", len,
                    w->env->cfg->max_value_bytes);
        return 0;
    }
    return 1;
}

void api_reply_write_error(reply *r, int rc, skv_slice key) {
    int n = key.len > 200 ? 200 : (int)key.len;
    switch (rc) {
    case SKV_ENOTFOUND: reply_error(r, 404, "not_found", "key '%.*s' not found", n, key.ptr); break;
    case SKV_EPRECOND: reply_error(r, 412, "precondition_failed", "the key's current version does not match the precondition"); break;
    case SKV_ENOMEM: reply_error(r, 507, "insufficient_storage", "out of memory storing the value"); break;
    case SKV_ENOSPACE:
        reply_error(r, 507, "insufficient_storage", "the disk is full: the write was not stored (reads still work)");
        break;
    case SKV_EIO:
        r->extra = "Retry-After: 5\r\n";
        reply_error(r, 503, "storage_unavailable",
                    "the shard refuses writes after an I/O error; restart the node to recover from its log");
        r->extra = NULL;
        break;
    default: reply_error(r, 500, "internal", "%s", skv_strerror(rc)); break;
    }
}

/* ?durability=sync|async; 0 after answering 400. */
int api_parse_durability(const http_request *req, int *async, reply *r) {
    skv_buf v;
    skv_buf_init(&v);
    int found = http_query_get(req->query, "durability", &v);
    int ok = 1;
    *async = 0;
    if (found == 1) {
        skv_slice val = skv_slice_make(v.data ? v.data : "", v.len);
        if (skv_slice_eq_cstr(val, "async")) *async = 1;
        else if (!skv_slice_eq_cstr(val, "sync")) ok = 0;
    } else if (found < 0) {
        ok = 0;
    }
    skv_buf_free(&v);
    if (!ok) reply_error(r, 400, "bad_durability", "durability must be sync (default) or async");
    return ok;
}

/* --max-memory / --max-keys: 0 when the write may proceed (maybe after
 * evictions), else SKV_ENOMEM.  Deletes always may. */
static int admit(api_worker *w, const shard_write *wr, uint32_t id, uint64_t h) {
    const skv_config *cfg = w->env->cfg;
    if (wr->op != SHARD_OP_PUT || !sweeper_limited(cfg)) return SKV_OK;
    size_t need = sizeof(ht_entry) + wr->key.len + wr->value.len, have = 0;
    /* Replacing a key adds no key and only the bytes it grows by: a write
     * that adds nothing is never refused (a computed value's size is not
     * known yet: it is judged as the same size as the current one). */
    if (shard_peek_size(store_shard(w->env->st, id), h, wr->key, &have) == SKV_OK &&
        (wr->compute || have >= need))
        return SKV_OK;
    w->rnd += 0x9E3779B97F4A7C15ull;
    return sweeper_admit(w->env->st, cfg, need - (have < need ? have : 0), w->rnd ^ uv_hrtime());
}

void api_reply_memory_limit(reply *r) {
    reply_error(r, 507, "memory_limit",
                "the node is at its memory or key limit (--max-memory, --max-keys) and --eviction is reject, or "
                "nothing is left to evict");
}

int api_json_content_type(skv_slice ct) {
    if (!ct.ptr || ct.len == 0) return 1;
    size_t n = 0;
    while (n < ct.len && ct.ptr[n] != ';') n++;
    while (n > 0 && (ct.ptr[n - 1] == ' ' || ct.ptr[n - 1] == '\t')) n--;
    skv_slice media = skv_slice_make(ct.ptr, n);
    if (skv_slice_ieq_cstr(media, "application/json") || skv_slice_ieq_cstr(media, "text/plain") ||
        skv_slice_ieq_cstr(media, "application/x-www-form-urlencoded"))
        return 1;
    return n > 5 && strncasecmp(media.ptr + n - 5, "+json", 5) == 0 && memchr(media.ptr, '/', n) != NULL;
}

/* ---- answers and idempotency ------------------------------------------------------------------ */

#define ANSWER_VERSION 1
#define ANSWER_HEADER 15 /* u8 version, u16 status, u64 etag, u32 shard */
#define IDEM_KEY_MAX 255

void api_answer_begin(skv_buf *out, int status, uint64_t etag, uint32_t shard_id) {
    unsigned char h[ANSWER_HEADER];
    h[0] = ANSWER_VERSION;
    h[1] = (unsigned char)status;
    h[2] = (unsigned char)(status >> 8);
    for (int i = 0; i < 8; i++) h[3 + i] = (unsigned char)(etag >> (8 * i));
    for (int i = 0; i < 4; i++) h[11 + i] = (unsigned char)(shard_id >> (8 * i));
    skv_buf_reset(out);
    skv_buf_append(out, h, sizeof h);
}

void api_answer_send(reply *r, skv_slice a, int replayed) {
    const unsigned char *h = (const unsigned char *)a.ptr;
    if (a.len < ANSWER_HEADER || h[0] != ANSWER_VERSION) {
        reply_error(r, 500, "internal", "a remembered answer could not be read");
        return;
    }
    int status = h[1] | h[2] << 8;
    uint64_t etag = 0;
    uint32_t shard_id = 0;
    for (int i = 0; i < 8; i++) etag |= (uint64_t)h[3 + i] << (8 * i);
    for (int i = 0; i < 4; i++) shard_id |= (uint32_t)h[11 + i] << (8 * i);
    reply_start(r, status);
    if (etag) reply_etag(r, etag);
    if (shard_id != API_NO_SHARD) reply_header_u64(r, "X-Shard", shard_id);
    if (replayed) reply_header_cstr(r, "Idempotent-Replayed", "true");
    reply_body(r, "application/json", a.ptr + ANSWER_HEADER, a.len - ANSWER_HEADER);
}

int api_idempotency_key(const http_request *req, skv_slice *out, reply *r) {
    *out = http_header_get(req, "Idempotency-Key");
    if (!out->ptr) return 0;
    int ok = out->len >= 1 && out->len <= IDEM_KEY_MAX;
    for (size_t i = 0; ok && i < out->len; i++) ok = out->ptr[i] > 0x20 && out->ptr[i] < 0x7f;
    if (ok) return 1;
    reply_error(r, 400, "bad_idempotency_key", "Idempotency-Key must be 1 to %d visible ASCII characters",
                IDEM_KEY_MAX);
    return -1;
}

/* What makes two requests "the same" for an Idempotency-Key. */
static uint64_t request_fingerprint(const http_request *req, skv_slice body) {
    XXH3_state_t *st = XXH3_createState();
    if (!st) abort();
    XXH3_64bits_reset(st);
    XXH3_64bits_update(st, req->method_name.ptr, req->method_name.len);
    XXH3_64bits_update(st, " ", 1);
    XXH3_64bits_update(st, req->target.ptr, req->target.len);
    XXH3_64bits_update(st, "\n", 1);
    if (body.len) XXH3_64bits_update(st, body.ptr, body.len);
    uint64_t h = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    return h;
}

/* 1 when an answer is remembered (or being written) under the internal key
 * ikey; counts no cache hit or miss. */
static int remembered(store *st, uint32_t id, skv_slice ikey) {
    size_t size;
    return shard_peek_size(store_shard(st, id), store_key_hash(ikey), ikey, &size) == SKV_OK;
}

typedef struct render_wrap {
    api_render_fn render;
    void *arg;
    int async;                 /* the first answer goes out as 202: remember that */
} render_wrap;

static void render_wrapped(void *arg, const shard_result *res, skv_buf *out) {
    render_wrap *rw = arg;
    rw->render(rw->arg, res, out);
    unsigned char *h = (unsigned char *)out->data;
    int status = out->len >= ANSWER_HEADER ? (h[1] | h[2] << 8) : 0;
    if (rw->async && status >= 200 && status < 300) { /* as reply_start turns it (r->accepted) */
        h[1] = 202 & 0xff;
        h[2] = 202 >> 8;
    }
}

int api_write_answer(api_worker *w, const http_request *req, skv_slice body, reply *r, shard_write *wr,
                     api_render_fn render, void *arg) {
    skv_slice ikey;
    int has_key = api_idempotency_key(req, &ikey, r);
    if (has_key < 0) return SKV_EINVAL;
    store *st = w->env->st;
    if (!api_parse_durability(req, &wr->async, r)) return SKV_EINVAL;
    wr->waiter = r->waiter;
    uint64_t h;
    uint32_t id = store_locate(st, wr->key, &h);
    if (has_key) wr->idem_key = store_internal_key(&w->idem, STORE_NS_IDEMPOTENCY, id, ikey.ptr, ikey.len);
    /* A retry answered from memory adds nothing: it is not subject to the limits. */
    if (!(has_key && remembered(st, id, wr->idem_key)) && admit(w, wr, id, h) != SKV_OK) {
        api_reply_memory_limit(r);
        return SKV_ENOMEM;
    }
    metrics_shard_op(w->mw, id, wr->op == SHARD_OP_PUT ? METRICS_OP_PUT : METRICS_OP_DELETE);
    if (w->hot) hotkeys_record(w->hot, id, wr->key, h); /* skips internal keys */
    skv_buf *answer = &w->answer;
    render_wrap rw = { render, arg, wr->async };
    if (has_key) {
        wr->idem_fingerprint = request_fingerprint(req, body);
        wr->idem_expires_ms = shard_wall_ms() + w->env->cfg->idempotency_window_ms;
        wr->render = render_wrapped;
        wr->render_arg = &rw;
        wr->replay = answer;
    }
    shard_result res;
    int rc = shard_apply(store_shard(st, id), h, wr, &res);
    switch (rc) {
    case SKV_OK:
        if (!has_key) render(arg, &res, answer);
        r->held = res.pending;
        r->accepted = wr->async;
        api_answer_send(r, skv_slice_make(answer->data, answer->len), 0);
        break;
    case SKV_EEXISTS: api_answer_send(r, skv_slice_make(answer->data, answer->len), 1); break;
    case SKV_EINVAL:
        reply_error(r, 422, "idempotency_key_reused",
                    "this Idempotency-Key was used for a different request (method, target or body)");
        break;
    case SKV_EAGAIN:
        r->extra = "Retry-After: 1\r\n";
        reply_error(r, 409, "idempotency_in_progress",
                    "the first request with this Idempotency-Key is still being written; retry shortly");
        r->extra = NULL;
        break;
    default: api_reply_write_error(r, rc, wr->key); break;
    }
    return rc == SKV_EEXISTS ? SKV_OK : rc;
}

void api_write_failed(reply *r, int err) { api_reply_write_error(r, err, skv_slice_make("", 0)); }

int api_read(api_worker *w, skv_slice key, uint32_t *shard_out, shard_read_fn fn, void *arg) {
    store *st = w->env->st;
    uint64_t h;
    uint32_t id = store_locate(st, key, &h);
    *shard_out = id;
    metrics_shard_op(w->mw, id, METRICS_OP_GET);
    if (w->hot) hotkeys_record(w->hot, id, key, h);
    return shard_get(store_shard(st, id), h, key, fn, arg);
}

void api_append_value_json(skv_buf *b, const ht_entry *e) {
    if (e->flags & SHARD_VAL_JSON) {
        skv_buf_append(b, ht_entry_value(e), e->val_len);
    } else {
        skv_buf_append(b, "\"", 1);
        skv_buf_append_json_str(b, ht_entry_value(e), e->val_len);
        skv_buf_append(b, "\"", 1);
    }
}

/* ---- canonical /v1/kv/{key} ---------------------------------------------------------------- */

/* Parses a strong entity tag ("5", or a bare 5) into a version.  Weak tags
 * (W/"5") are refused: If-Match compares strongly (RFC 9110 13.1.1). */
static int parse_etag(skv_slice v, uint64_t *out) {
    if (v.len >= 2 && v.ptr[0] == 'W' && v.ptr[1] == '/') return SKV_EINVAL;
    if (v.len >= 2 && v.ptr[0] == '"' && v.ptr[v.len - 1] == '"') v = skv_slice_make(v.ptr + 1, v.len - 2);
    return skv_slice_to_u64(v, out);
}

/* Fills the write condition from If-Match / If-None-Match; 0 after replying 400. */
static int parse_conditions(const http_request *req, int is_put, shard_write *wr, reply *r) {
    wr->cond = SHARD_COND_NONE;
    if (req->if_match.ptr && req->if_none_match.ptr) {
        reply_error(r, 400, "bad_precondition", "use either If-Match or If-None-Match, not both");
        return 0;
    }
    if (req->if_match.ptr) {
        if (skv_slice_eq_cstr(req->if_match, "*")) {
            wr->cond = SHARD_COND_EXISTS;
        } else if (parse_etag(req->if_match, &wr->expected_version) == SKV_OK) {
            wr->cond = SHARD_COND_VERSION;
        } else {
            reply_error(r, 400, "bad_precondition", "If-Match must be * or one strong version (an ETag such as \"12\")");
            return 0;
        }
    }
    if (req->if_none_match.ptr) {
        if (!is_put || !skv_slice_eq_cstr(req->if_none_match, "*")) {
            reply_error(r, 400, "bad_precondition", "If-None-Match is supported only as * on PUT (create only)");
            return 0;
        }
        wr->cond = SHARD_COND_ABSENT;
    }
    return 1;
}

typedef struct kv_get_ctx {
    reply *r;
    uint32_t shard_id;
} kv_get_ctx;

/* Runs under the shard lock: the value goes straight into the output. */
static void kv_get_found(void *arg, const ht_entry *e) {
    kv_get_ctx *c = arg;
    reply_start(c->r, 200);
    reply_etag(c->r, e->version);
    reply_header_u64(c->r, "X-Shard", c->shard_id);
    if (e->expires_ms) reply_header_u64(c->r, "X-Expires-At-Ms", e->expires_ms);
    reply_body(c->r, (e->flags & SHARD_VAL_JSON) ? "application/json" : "application/octet-stream",
               ht_entry_value(e), e->val_len);
}

typedef struct kv_answer {
    skv_slice key;
    int deleted;
    uint64_t expires_ms;
} kv_answer;

/* api_render_fn of the KV writes. */
static void kv_render(void *arg, const shard_result *res, skv_buf *b) {
    const kv_answer *a = arg;
    api_answer_begin(b, !a->deleted && res->created ? 201 : 200, res->version, res->shard);
    skv_buf_append_cstr(b, "{\"key\":\"");
    skv_buf_append_json_str(b, a->key.ptr, a->key.len);
    skv_buf_printf(b, "\",\"version\":%llu,\"shard\":%u", (unsigned long long)res->version, res->shard);
    if (a->expires_ms) skv_buf_printf(b, ",\"expires_at_ms\":%llu", (unsigned long long)a->expires_ms);
    if (a->deleted) skv_buf_append_cstr(b, ",\"deleted\":true}");
    else skv_buf_append_cstr(b, res->created ? ",\"created\":true}" : ",\"created\":false}");
}

/* ?ttl=SECONDS on a PUT: 0 when absent or valid (*expires_ms set), -1 after answering 400. */
#define KV_MAX_TTL_S (10ull * 365 * 86400)
static int parse_ttl(const http_request *req, uint64_t *expires_ms, reply *r) {
    char tmp[32];
    skv_buf v;
    skv_buf_init(&v);
    int found = http_query_get(req->query, "ttl", &v);
    int ok = found == 0;
    *expires_ms = 0;
    if (found == 1 && v.len > 0 && v.len < sizeof tmp) {
        memcpy(tmp, v.data, v.len);
        tmp[v.len] = '\0';
        char *end;
        unsigned long long s = strtoull(tmp, &end, 10);
        ok = *end == '\0' && tmp[0] >= '0' && tmp[0] <= '9' && s >= 1 && s <= KV_MAX_TTL_S;
        if (ok) *expires_ms = shard_wall_ms() + s * 1000;
    }
    skv_buf_free(&v);
    if (!ok) reply_error(r, 400, "bad_ttl", "ttl must be a whole number of seconds from 1 to %llu", KV_MAX_TTL_S);
    return ok ? 0 : -1;
}

static int handle_kv(api_worker *w, const http_request *req, skv_slice body, reply *r) {
    static const skv_slice prefix = SKV_SLICE_LIT("/v1/kv/");
    const unsigned mask = 1u << HTTP_M_GET | 1u << HTTP_M_HEAD | 1u << HTTP_M_PUT | 1u << HTTP_M_DELETE;
    if (!api_method_allowed(req, r, "GET, HEAD, PUT, DELETE, OPTIONS", mask)) return API_ROUTE_KV;
    skv_buf_reset(&w->key);
    skv_slice raw = skv_slice_make(req->path.ptr + prefix.len, req->path.len - prefix.len);
    if (http_url_decode(raw, 0, &w->key) != SKV_OK) {
        reply_error(r, 400, "bad_key", "the key is not valid percent-encoding");
        return API_ROUTE_KV;
    }
    skv_slice key = skv_slice_make(w->key.data ? w->key.data : "", w->key.len);
    if (!api_check_key(w, key, r)) return API_ROUTE_KV;
    if (req->method == HTTP_M_GET || req->method == HTTP_M_HEAD) {
        kv_get_ctx ctx = { r, 0 };
        if (api_read(w, key, &ctx.shard_id, kv_get_found, &ctx) != SKV_OK) api_reply_write_error(r, SKV_ENOTFOUND, key);
        return API_ROUTE_KV;
    }
    shard_write wr = { 0 };
    wr.key = key;
    if (!parse_conditions(req, req->method == HTTP_M_PUT, &wr, r)) return API_ROUTE_KV;
    kv_answer a = { key, req->method == HTTP_M_DELETE, 0 };
    if (req->method == HTTP_M_PUT) {
        if (!api_check_value(w, body.len, r)) return API_ROUTE_KV;
        if (parse_ttl(req, &wr.expires_ms, r) != 0) return API_ROUTE_KV;
        wr.op = SHARD_OP_PUT;
        wr.value = body;
        a.expires_ms = wr.expires_ms;
    } else {
        wr.op = SHARD_OP_DELETE;
    }
    api_write_answer(w, req, body, r, &wr, kv_render, &a);
    return API_ROUTE_KV;
}

/* ---- operational routes -------------------------------------------------------------------- */


static double uptime_seconds(const api_env *env) {
    return (double)(uv_hrtime() / 1000000 - env->start_ms) / 1000.0;
}

static const char *state_name(int state) {
    return state == API_STATE_READY ? "ready" : state == API_STATE_STARTING ? "starting" : "draining";
}

/* /shards?data=1 stops adding entries past this many bytes of answer (the
 * shard lock is held while listing). */
#define SHARDS_DATA_MAX_BYTES (4u * 1024 * 1024)

typedef struct list_ctx {
    skv_buf *b;
    int first;
    int truncated;
} list_ctx;

static void list_entry(void *arg, const ht_entry *e) {
    list_ctx *c = arg;
    if (c->b->len + e->key_len + 2 * (size_t)e->val_len + 16 > SHARDS_DATA_MAX_BYTES) {
        c->truncated = 1;
        return;
    }
    skv_buf_append_cstr(c->b, c->first ? "\"" : ",\"");
    c->first = 0;
    skv_buf_append_json_str(c->b, ht_entry_key(e), e->key_len);
    skv_buf_append(c->b, "\":", 2);
    api_append_value_json(c->b, e);
}

static int handle_shards(api_worker *w, const http_request *req, reply *r) {
    if (!api_method_allowed(req, r, "GET, HEAD, OPTIONS", API_GET_HEAD)) return API_ROUTE_SHARDS;
    api_env *env = w->env;
    store *st = env->st;
    ring *map = store_map(st);
    const ring_config *rc = ring_get_config(map);
    skv_buf vb;
    skv_buf_init(&vb);
    int with_data = 0;
    uint64_t limit = 100;
    if (http_query_get(req->query, "data", &vb) == 1)
        with_data = !(skv_slice_eq_cstr(skv_slice_make(vb.data, vb.len), "0") ||
                      skv_slice_eq_cstr(skv_slice_make(vb.data, vb.len), "false"));
    skv_buf_reset(&vb);
    if (http_query_get(req->query, "limit", &vb) == 1 &&
        (skv_slice_to_u64(skv_slice_make(vb.data, vb.len), &limit) != SKV_OK || limit > 10000)) {
        skv_buf_free(&vb);
        reply_error(r, 400, "bad_limit", "limit must be an integer between 0 and 10000");
        return API_ROUTE_SHARDS;
    }
    skv_buf_free(&vb);

    skv_buf b;
    skv_buf_init(&b);
    uint64_t total_keys, total_bytes;
    store_totals(st, &total_keys, &total_bytes);
    skv_buf_printf(&b,
                   "{\"placement\":\"%s\",\"hash\":\"%s\",\"vnodes\":%u,\"shard_map_version\":%llu,"
                   "\"total_keys\":%llu,\"total_bytes\":%llu,\"shards\":[",
                   ring_strategy_name(rc->strategy), ring_hash_name(rc->hash), rc->vnodes,
                   (unsigned long long)rc->version, (unsigned long long)total_keys, (unsigned long long)total_bytes);
    for (uint32_t i = 0; i < st->nshards; i++) {
        shard *sh = store_shard(st, i);
        skv_buf_printf(&b, "%s{\"id\":%u,\"name\":\"shard_%u\",\"keys\":%llu,\"bytes\":%llu,\"share\":%.6f,\"requests\":%llu",
                       i ? "," : "", i, i, (unsigned long long)shard_keys(sh), (unsigned long long)shard_bytes(sh),
                       ring_share(map, i), (unsigned long long)metrics_shard_requests(env->m, i));
        if (with_data) {
            list_ctx lc = { &b, 1, 0 };
            skv_buf_append_cstr(&b, ",\"data\":{");
            shard_list(sh, (size_t)limit, list_entry, &lc);
            skv_buf_append(&b, "}", 1);
            if (lc.truncated) skv_buf_append_cstr(&b, ",\"data_truncated\":true");
        }
        skv_buf_append(&b, "}", 1);
    }
    skv_buf_append_cstr(&b, "]}");
    reply_json(r, 200, &b);
    skv_buf_free(&b);
    return API_ROUTE_SHARDS;
}

static const char *shard_state_name(int state) {
    return state == SHARD_OK ? "ok" : state == SHARD_NOSPACE ? "disk_full" : "degraded";
}

static int handle_health(api_worker *w, const http_request *req, reply *r) {
    if (!api_method_allowed(req, r, "GET, HEAD, OPTIONS", API_GET_HEAD)) return API_ROUTE_HEALTH;
    api_env *env = w->env;
    store *st = env->st;
    int state = atomic_load(&env->state);
    const commit *cm = state != API_STATE_STARTING ? env->commit : NULL;
    skv_buf shards;
    skv_buf_init(&shards);
    int all_ok = 1;
    for (uint32_t i = 0; i < st->nshards; i++) {
        shard *sh = store_shard(st, i);
        pthread_mutex_lock(&sh->lock);
        int ss = sh->state;
        pthread_mutex_unlock(&sh->lock);
        all_ok &= ss == SHARD_OK;
        skv_buf_printf(&shards, "%s{\"id\":%u,\"status\":\"%s\",\"keys\":%llu,\"bytes\":%llu,\"pending\":%llu", i ? "," : "",
                       i, shard_state_name(ss), (unsigned long long)shard_keys(sh), (unsigned long long)shard_bytes(sh),
                       (unsigned long long)atomic_load_explicit(&sh->pending_count, memory_order_relaxed));
        if (cm) {
            const commit_recovery *rec = commit_recovery_of(cm, i);
            skv_buf_printf(&shards,
                           ",\"recovery\":{\"snapshot_entries\":%llu,\"records_replayed\":%llu,\"seconds\":%.3f,"
                           "\"torn_tail\":%s}",
                           (unsigned long long)rec->snapshot_entries, (unsigned long long)rec->records_replayed,
                           rec->seconds, rec->torn_tail ? "true" : "false");
        }
        skv_buf_append(&shards, "}", 1);
    }
    uint64_t keys, bytes;
    store_totals(st, &keys, &bytes);
    skv_buf b;
    skv_buf_init(&b);
    skv_buf_printf(&b,
                   "{\"status\":\"%s\",\"state\":\"%s\",\"version\":\"%s\",\"uptime_seconds\":%.3f,"
                   "\"threads\":%u,\"fsync\":\"%s\",\"shard_count\":%u,\"keys\":%llu,\"bytes\":%llu,\"shards\":[",
                   all_ok ? "healthy" : "degraded", state_name(state), SKV_VERSION, uptime_seconds(env), env->nworkers,
                   commit_policy_name(env->cfg->fsync_policy), st->nshards, (unsigned long long)keys,
                   (unsigned long long)bytes);
    skv_buf_append(&b, shards.data, shards.len);
    skv_buf_append_cstr(&b, "]}");
    reply_json(r, 200, &b);
    skv_buf_free(&b);
    skv_buf_free(&shards);
    return API_ROUTE_HEALTH;
}

static int handle_live(api_worker *w, const http_request *req, reply *r) {
    (void)w;
    if (!api_method_allowed(req, r, "GET, HEAD, OPTIONS", API_GET_HEAD)) return API_ROUTE_LIVE;
    static const char body[] = "{\"status\":\"alive\"}";
    reply_start(r, 200);
    reply_body(r, "application/json", body, sizeof body - 1);
    return API_ROUTE_LIVE;
}

static int handle_ready(api_worker *w, const http_request *req, reply *r) {
    if (!api_method_allowed(req, r, "GET, HEAD, OPTIONS", API_GET_HEAD)) return API_ROUTE_READY;
    int state = atomic_load(&w->env->state);
    if (state == API_STATE_READY) {
        static const char body[] = "{\"status\":\"ready\"}";
        reply_start(r, 200);
        reply_body(r, "application/json", body, sizeof body - 1);
        return API_ROUTE_READY;
    }
    skv_buf b;
    skv_buf_init(&b);
    skv_buf_printf(&b,
                   "{\"status\":\"not_ready\",\"reason\":\"%s\",\"error\":{\"code\":\"not_ready\","
                   "\"message\":\"the node is %s\"}}",
                   state_name(state), state == API_STATE_STARTING ? "starting" : "shutting down");
    r->extra = "Retry-After: 1\r\n";
    reply_start(r, 503);
    r->extra = NULL;
    reply_json_buf(r, &b);
    skv_buf_free(&b);
    return API_ROUTE_READY;
}

static void render_metrics(api_env *env, skv_buf *out) {
    store *st = env->st;
    uint32_t n = st->nshards;
    uint64_t *keys = skv_calloc(n, sizeof *keys);
    uint64_t *bytes = skv_calloc(n, sizeof *bytes);
    double *share = skv_calloc(n, sizeof *share);
    int *state = skv_calloc(n, sizeof *state);
    int api_state = atomic_load(&env->state);
    const commit *cm = api_state != API_STATE_STARTING ? env->commit : NULL;
    metrics_log_stats *logst = cm ? skv_calloc(n, sizeof *logst) : NULL;
    ring *map = store_map(st);
    for (uint32_t i = 0; i < n; i++) {
        shard *sh = store_shard(st, i);
        keys[i] = shard_keys(sh);
        bytes[i] = shard_bytes(sh);
        share[i] = ring_share(map, i);
        pthread_mutex_lock(&sh->lock);
        state[i] = sh->state;
        pthread_mutex_unlock(&sh->lock);
        if (logst) commit_stats_of(cm, i, &logst[i]);
    }
    sweeper_totals t;
    sweeper_totals_get(st, &t);
    metrics_hot_key *hot = NULL;
    skv_buf hot_labels;
    skv_buf_init(&hot_labels);
    size_t nhot = env->hot ? hotkeys_metric_samples(env->hot, &hot, &hot_labels) : 0;
    metrics_snapshot snap = { .nshards = n, .shard_keys = keys, .shard_bytes = bytes, .shard_share = share,
                              .shard_state = state, .wal = logst, .cache_hits = t.hits, .cache_misses = t.misses,
                              .keys_expired = t.expired, .keys_evicted = t.evicted,
                              .memory_limit = env->cfg->max_memory, .keys_limit = env->cfg->max_keys,
                              .shard_map_version = ring_get_config(map)->version,
                              .ready = api_state == API_STATE_READY, .uptime_seconds = uptime_seconds(env),
                              .version = SKV_VERSION, .hot_keys = hot, .nhot_keys = nhot };
    metrics_render(env->m, &snap, out);
    free(hot);
    skv_buf_free(&hot_labels);
    free(state);
    free(logst);
    free(keys);
    free(bytes);
    free(share);
}

static int handle_metrics(api_worker *w, const http_request *req, reply *r) {
    if (!api_method_allowed(req, r, "GET, HEAD, OPTIONS", API_GET_HEAD)) return API_ROUTE_METRICS;
    skv_buf b;
    skv_buf_init(&b);
    render_metrics(w->env, &b);
    reply_start(r, 200);
    reply_body(r, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
    skv_buf_free(&b);
    return API_ROUTE_METRICS;
}

/* GET /v1/placement?key=K: where K lives (the dashboard's "where does this
 * key land"); touches no shard. */
static int handle_placement(api_worker *w, const http_request *req, reply *r) {
    if (!api_method_allowed(req, r, "GET, HEAD, OPTIONS", API_GET_HEAD)) return API_ROUTE_PLACEMENT;
    skv_buf_reset(&w->key);
    int found = http_query_get(req->query, "key", &w->key);
    if (found < 0) {
        reply_error(r, 400, "bad_query", "the query string is not valid percent-encoding");
        return API_ROUTE_PLACEMENT;
    }
    skv_slice key = skv_slice_make(w->key.data ? w->key.data : "", w->key.len);
    if (!api_check_key(w, key, r)) return API_ROUTE_PLACEMENT;
    store *st = w->env->st;
    uint64_t h;
    uint32_t id = store_locate(st, key, &h);
    char hash[48];
    ring_point_format(store_map(st), ring_hash_key(store_map(st), key.ptr, key.len), hash);
    skv_buf *b = &w->tmp;
    skv_buf_reset(b);
    skv_buf_append_cstr(b, "{\"key\":\"");
    skv_buf_append_json_str(b, key.ptr, key.len);
    skv_buf_printf(b, "\",\"shard\":%u,\"hash\":\"%s\"}", id, hash);
    reply_json(r, 200, b);
    return API_ROUTE_PLACEMENT;
}

/* GET /cache/stats: seed 003's cache statistics, over the whole node. */
static int handle_cache_stats(api_worker *w, const http_request *req, reply *r) {
    if (!api_method_allowed(req, r, "GET, HEAD, OPTIONS", API_GET_HEAD)) return API_ROUTE_CACHE_STATS;
    const skv_config *cfg = w->env->cfg;
    sweeper_totals t;
    sweeper_totals_get(w->env->st, &t);
    uint64_t lookups = t.hits + t.misses;
    skv_buf *b = &w->tmp;
    skv_buf_reset(b);
    skv_buf_printf(b,
                   "{\"keys_count\":%llu,\"max_keys_limit\":%llu,\"memory_used_bytes\":%llu,"
                   "\"max_memory_bytes\":%llu,\"eviction_policy\":\"%s\",\"hits\":%llu,\"misses\":%llu,"
                   "\"hit_ratio\":%.4f,\"evictions\":%llu,\"expired\":%llu}",
                   (unsigned long long)t.keys, (unsigned long long)cfg->max_keys, (unsigned long long)t.bytes,
                   (unsigned long long)cfg->max_memory, cfg->eviction == EVICT_LRU ? "lru" : "reject",
                   (unsigned long long)t.hits, (unsigned long long)t.misses,
                   lookups ? (double)t.hits / (double)lookups : 0.0, (unsigned long long)t.evicted,
                   (unsigned long long)t.expired);
    reply_json(r, 200, b);
    return API_ROUTE_CACHE_STATS;
}

/* GET /v1/hotkeys?limit=N: each shard's and the node's hottest keys (docs/hotkeys.md). */
static int handle_hotkeys(api_worker *w, const http_request *req, reply *r) {
    if (!api_method_allowed(req, r, "GET, HEAD, OPTIONS", API_GET_HEAD)) return API_ROUTE_HOTKEYS;
    skv_buf *b = &w->tmp;
    skv_buf_reset(b);
    uint64_t limit = 10;
    int found = http_query_get(req->query, "limit", b);
    if (found == 1 && skv_slice_to_u64(skv_slice_make(b->data ? b->data : "", b->len), &limit) != SKV_OK) found = -1;
    if (found < 0 || limit < 1 || limit > HOTKEYS_LIMIT_MAX) {
        reply_error(r, 400, "bad_limit", "limit must be an integer between 1 and %d", HOTKEYS_LIMIT_MAX);
        return API_ROUTE_HOTKEYS;
    }
    skv_buf_reset(b);
    if (w->env->hot) hotkeys_render_json(w->env->hot, (size_t)limit, b);
    else skv_buf_printf(b, "{\"decay_seconds\":%d,\"capacity\":%d,\"shards\":[],\"top\":[]}", HOTKEYS_DECAY_SECONDS,
                        HOTKEYS_CAPACITY);
    reply_json(r, 200, b);
    return API_ROUTE_HOTKEYS;
}

/* Serves a compiled-in file (assets.h) with its ETag; 304 when the client has it. */
static void send_asset(const http_request *req, reply *r, const asset *a) {
    skv_slice inm = http_header_get(req, "If-None-Match");
    int fresh = inm.ptr && skv_slice_eq_cstr(inm, a->etag);
    reply_start(r, fresh ? 304 : 200);
    if (skv_slice_eq_cstr(req->path, "/")) reply_header_cstr(r, "Vary", "Accept"); /* dashboard or JSON */
    reply_header_cstr(r, "ETag", a->etag);
    reply_header_cstr(r, "Cache-Control", "no-cache");
    reply_header_cstr(r, "X-Content-Type-Options", "nosniff");
    if (strncmp(a->content_type, "text/html", 9) == 0)
        reply_header_cstr(r, "Content-Security-Policy",
                          "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                          "connect-src 'self'; frame-ancestors 'none'");
    reply_body(r, a->content_type, a->data, a->len);
}

/* GET /ui/{file}, /docs, /openapi.json: the files of web/ compiled into the binary. */
static int handle_asset(const http_request *req, reply *r, int route, const char *path) {
    if (!api_method_allowed(req, r, "GET, HEAD, OPTIONS", API_GET_HEAD)) return route;
    const asset *a = assets_find(skv_slice_cstr(path));
    if (!a) reply_error(r, 404, "not_found", "no file %s in this build", path);
    else send_asset(req, r, a);
    return route;
}

static int handle_ui(const http_request *req, reply *r) {
    if (!api_method_allowed(req, r, "GET, HEAD, OPTIONS", API_GET_HEAD)) return API_ROUTE_UI;
    skv_slice rel = skv_slice_make(req->path.ptr + 1, req->path.len - 1); /* "ui/..." */
    if (skv_slice_eq_cstr(rel, "ui/")) rel = skv_slice_cstr("ui/index.html");
    const asset *a = assets_find(rel);
    if (!a) {
        reply_error(r, 404, "not_found", "no file %.*s in the dashboard", (int)(rel.len > 200 ? 200 : rel.len),
                    rel.ptr);
        return API_ROUTE_UI;
    }
    send_asset(req, r, a);
    return API_ROUTE_UI;
}

/* 1 when the client prefers HTML (a browser): "/" is then the dashboard. */
static int wants_html(const http_request *req) {
    skv_slice accept = http_header_get(req, "Accept");
    return accept.ptr && memmem(accept.ptr, accept.len, "text/html", 9) != NULL;
}

static int handle_root(api_worker *w, const http_request *req, reply *r) {
    (void)w;
    if (!api_method_allowed(req, r, "GET, HEAD, OPTIONS", API_GET_HEAD)) return API_ROUTE_ROOT;
    const asset *dash = wants_html(req) ? assets_find(skv_slice_cstr("ui/index.html")) : NULL;
    if (dash) {
        send_asset(req, r, dash);
        return API_ROUTE_ROOT;
    }
    skv_buf b;
    skv_buf_init(&b);
    skv_buf_printf(&b, "{\"service\":\"shardkv\",\"version\":\"%s\",\"routes\":[", SKV_VERSION);
    /* Every route the node answers: the route table minus the two labels of unanswered requests. */
    for (int i = 0; i < API_ROUTE__COUNT; i++) {
        if (i == API_ROUTE_NOT_FOUND || i == API_ROUTE_INVALID) continue;
        skv_buf_append_cstr(&b, i ? ",\"" : "\"");
        skv_buf_append_json_str(&b, api_route_labels[i], strlen(api_route_labels[i]));
        skv_buf_append(&b, "\"", 1);
    }
    skv_buf_append_cstr(&b, "]}");
    reply_start(r, 200);
    reply_header_cstr(r, "Vary", "Accept"); /* browsers get the dashboard */
    reply_json_buf(r, &b);
    skv_buf_free(&b);
    return API_ROUTE_ROOT;
}

/* ---- dispatch ------------------------------------------------------------------------------ */

static int path_is(const http_request *req, const char *p) { return skv_slice_eq_cstr(req->path, p); }

static int path_has_prefix(const http_request *req, const char *p, size_t n) {
    return req->path.len > n && memcmp(req->path.ptr, p, n) == 0;
}

/* Data routes answer 503 until recovery has loaded the shards. */
static int recovering(api_worker *w, reply *r) {
    if (atomic_load(&w->env->state) != API_STATE_STARTING) return 0;
    r->extra = "Retry-After: 1\r\n";
    reply_error(r, 503, "recovering", "the node is still recovering its data; retry shortly");
    r->extra = NULL;
    return 1;
}

int api_dispatch(api_worker *w, const http_request *req, skv_slice body, reply *r) {
    if (path_has_prefix(req, "/v1/kv/", 7)) return recovering(w, r) ? API_ROUTE_KV : handle_kv(w, req, body, r);
    if (path_is(req, "/v1/kv")) return recovering(w, r) ? API_ROUTE_KV_SCAN : scan_kv_handle(w, req, r);
    int route = counter_route_of(req);
    if (route >= 0) return recovering(w, r) ? route : counter_dispatch(w, req, body, r);
    route = coll_route_of(req);
    if (route >= 0) return recovering(w, r) ? route : coll_dispatch(w, req, body, r);
    if (path_is(req, "/shards")) return handle_shards(w, req, r);
    if (path_is(req, "/health")) return handle_health(w, req, r);
    if (path_is(req, "/health/live")) return handle_live(w, req, r);
    if (path_is(req, "/health/ready")) return handle_ready(w, req, r);
    if (path_is(req, "/metrics")) return handle_metrics(w, req, r);
    if (path_is(req, "/cache/stats")) return handle_cache_stats(w, req, r);
    if (path_is(req, "/v1/hotkeys")) return handle_hotkeys(w, req, r);
    if (path_is(req, "/v1/placement")) return handle_placement(w, req, r);
    if (path_is(req, "/")) return handle_root(w, req, r);
    if (path_has_prefix(req, "/ui/", 4) || path_is(req, "/ui/")) return handle_ui(req, r);
    if (path_is(req, "/docs") || path_is(req, "/docs/"))
        return handle_asset(req, r, API_ROUTE_DOCS, "docs/index.html");
    if (path_is(req, "/openapi.json")) return handle_asset(req, r, API_ROUTE_OPENAPI, "openapi.json");
    if (path_is(req, "*")) { /* "OPTIONS *" (the only method the parser allows with "*"): 204 + Allow */
        api_method_allowed(req, r, "GET, HEAD, POST, PUT, DELETE, OPTIONS", 0);
        return API_ROUTE_ROOT;
    }
    route = seed_route_of(req);
    if (route >= 0) return recovering(w, r) ? route : seed_dispatch(w, req, body, r);
    reply_error(r, 404, "not_found", "no route for %.*s", (int)(req->path.len > 200 ? 200 : req->path.len),
                req->path.ptr);
    return API_ROUTE_NOT_FOUND;
}

int api_dispatch_metrics_port(api_worker *w, const http_request *req, reply *r) {
    if (path_is(req, "/metrics")) return handle_metrics(w, req, r);
    if (path_is(req, "/health/live")) return handle_live(w, req, r);
    if (path_is(req, "/health/ready")) return handle_ready(w, req, r);
    reply_error(r, 404, "not_found", "the metrics port serves only /metrics, /health/live and /health/ready");
    return API_ROUTE_NOT_FOUND;
}
