/*
 * coll_http — the routes of collections (docs/collections.md):
 *
 *   /v1/collections                   GET list, POST define (201; 409 exists)
 *   /v1/collections/{name}            GET definition and counts, DELETE drop
 *   /v1/collections/{name}/docs       POST create (201; 409 duplicate id),
 *                                     GET all documents or ?<indexed field>=<value>,
 *                                     both with &limit=&cursor=
 *   /v1/collections/{name}/docs/{id}  GET, PUT (create or replace), DELETE
 *   /users, /users/                   seed 004: POST create (200 + the user),
 *                                     GET ?region=&limit=&cursor=
 *   /users/{user_id}                  seed 004: GET (404 {"detail": "User not found"}), PUT, DELETE
 *
 * Writes go through api_write_answer (Idempotency-Key, ?durability=,
 * answers held until durable).  A create is a PUT with SHARD_COND_ABSENT
 * on the shard the document's shard key places it; a duplicate fails that
 * condition and is answered 409.
 *
 * Collections whose shard key is not the primary key (e.g. sharded by
 * region) keep no pointer from id to shard: a write of an id first looks
 * for it on every shard (newest state, writes waiting for the disk
 * included) under the id's write stripe, which makes "one document per id"
 * exact: a create of an existing id is 409 wherever it lives, a PUT that
 * would move a document to another shard is 409 shard_key_changed (delete
 * and create it instead), and a GET by id asks every shard.
 *
 * Listings and index queries are in coll_query.c.
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "coll_internal.h"
#include "err.h"
#include "mem.h"

typedef struct route {
    int id;          /* API_ROUTE_* */
    skv_slice name;  /* collection name segment (percent-encoded) */
    skv_slice doc;   /* document id segment (percent-encoded) */
    int seed;        /* /users routes */
} route;

static int has_prefix(skv_slice p, const char *s, size_t n) { return p.len >= n && memcmp(p.ptr, s, n) == 0; }

static int parse_route(skv_slice p, route *rt) {
    static const char base[] = "/v1/collections/";
    const size_t blen = sizeof base - 1;
    memset(rt, 0, sizeof *rt);
    if (skv_slice_eq_cstr(p, "/users") || skv_slice_eq_cstr(p, "/users/")) {
        *rt = (route){ API_ROUTE_SEED_USERS, SKV_SLICE_LIT("users"), { NULL, 0 }, 1 };
        return 1;
    }
    if (p.len > 7 && has_prefix(p, "/users/", 7)) {
        skv_slice id = skv_slice_make(p.ptr + 7, p.len - 7);
        if (memchr(id.ptr, '/', id.len)) return 0;
        *rt = (route){ API_ROUTE_SEED_USER, SKV_SLICE_LIT("users"), id, 1 };
        return 1;
    }
    if (skv_slice_eq_cstr(p, "/v1/collections")) {
        rt->id = API_ROUTE_COLLECTIONS;
        return 1;
    }
    if (p.len <= blen || !has_prefix(p, base, blen)) return 0;
    skv_slice rest = skv_slice_make(p.ptr + blen, p.len - blen);
    const char *slash = memchr(rest.ptr, '/', rest.len);
    if (!slash) {
        rt->id = API_ROUTE_COLLECTION;
        rt->name = rest;
        return 1;
    }
    rt->name = skv_slice_make(rest.ptr, (size_t)(slash - rest.ptr));
    skv_slice tail = skv_slice_make(slash + 1, rest.len - rt->name.len - 1);
    if (rt->name.len == 0) return 0;
    if (skv_slice_eq_cstr(tail, "docs")) {
        rt->id = API_ROUTE_COLLECTION_DOCS;
        return 1;
    }
    if (tail.len > 5 && has_prefix(tail, "docs/", 5)) {
        rt->id = API_ROUTE_COLLECTION_DOC;
        rt->doc = skv_slice_make(tail.ptr + 5, tail.len - 5);
        return 1;
    }
    return 0;
}

/* Everything a handler needs about its request. */
typedef struct req_ctx {
    api_worker *w;
    const http_request *req;
    skv_slice body;
    reply *r;
    coll_registry *reg;
    store *st;
    route rt;
    skv_buf name;    /* decoded collection name */
    skv_buf key;     /* internal keys */
} req_ctx;

static skv_slice name_of(const req_ctx *x) { return skv_slice_make(x->name.data ? x->name.data : "", x->name.len); }

/* Replaces the error answer api_write_answer just wrote (from byte mark of
 * the output) by a collection-specific one. */
static void reanswer(reply *r, size_t mark, int status, const char *extra, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static void reanswer(reply *r, size_t mark, int status, const char *extra, const char *code, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (mark != SIZE_MAX) {
        r->out->len = mark;
        if (r->out->cap) r->out->data[mark] = '\0';
    }
    r->extra = extra;
    reply_error(r, status, code, "%s", msg);
    r->extra = NULL;
}
#define NO_MARK SIZE_MAX
#define RETRY_SOON "Retry-After: 1\r\n"

static void collection_not_found_at(req_ctx *x, size_t mark) {
    skv_slice n = name_of(x);
    if (x->rt.seed) reanswer(x->r, mark, 404, NULL, "collection_not_found", "the users collection was dropped");
    else
        reanswer(x->r, mark, 404, NULL, "collection_not_found", "collection '%.*s' not found",
                 (int)(n.len > 100 ? 100 : n.len), n.ptr);
}

static void collection_not_found(req_ctx *x) { collection_not_found_at(x, NO_MARK); }

static void document_not_found(req_ctx *x, size_t mark, skv_slice pk) {
    skv_slice n = name_of(x);
    if (x->rt.seed) reanswer(x->r, mark, 404, NULL, "document_not_found", "User not found");
    else
        reanswer(x->r, mark, 404, NULL, "document_not_found", "document '%.*s' not found in collection '%.*s'",
                 (int)(pk.len > 100 ? 100 : pk.len), pk.ptr, (int)n.len, n.ptr);
}

/* ---- request bodies ------------------------------------------------------------------------ */

/* The body as a JSON object (the caller decrefs), or NULL after 415/400. */
static json_t *parse_body(req_ctx *x) {
    const http_request *req = x->req;
    if (!api_json_content_type(req->content_type)) {
        reply_error(x->r, 415, "unsupported_media_type", "the body must be JSON (Content-Type: application/json)");
        return NULL;
    }
    json_error_t err;
    json_t *root = x->body.len ? json_loadb(x->body.ptr, x->body.len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err)
                               : NULL;
    if (!root && x->body.len) {
        reply_error(x->r, 400, "invalid_json", "malformed JSON at line %d column %d: %s", err.line, err.column,
                    err.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        reply_error(x->r, 400, "invalid_json", "the request body must be a JSON object");
        return NULL;
    }
    return root;
}

/* ---- answers of writes --------------------------------------------------------------------- */

enum answer_kind { ANSWER_CREATE, ANSWER_PUT, ANSWER_DELETE, ANSWER_DEFINE, ANSWER_DROP };

typedef struct answer_ctx {
    int kind;
    int seed;
    skv_slice coll;
    const schema_field *pkf; /* documents */
    skv_slice pk;            /* documents: canonical text */
    skv_slice json;          /* the document, or the normalized definition */
    size_t documents;        /* drop */
    int rendered;            /* the write was applied by this request (not a replay) */
    uint64_t version;        /* the applied write's version (when rendered) */
} answer_ctx;

static void append_json_str(skv_buf *b, skv_slice s) {
    skv_buf_append(b, "\"", 1);
    skv_buf_append_json_str(b, s.ptr, s.len);
    skv_buf_append(b, "\"", 1);
}

/* Renders a write's answer (api_render_fn): may run under the shard lock. */
static void render(void *arg, const shard_result *res, skv_buf *out) {
    answer_ctx *a = arg;
    a->rendered = 1;
    a->version = res->version;
    int status = a->kind == ANSWER_CREATE || a->kind == ANSWER_DEFINE || (a->kind == ANSWER_PUT && res->created)
                     ? 201
                     : 200;
    if (a->seed && a->kind == ANSWER_CREATE) status = 200; /* FastAPI's default, as the seed answers */
    api_answer_begin(out, status, res->version, a->kind >= ANSWER_DEFINE ? API_NO_SHARD : res->shard);
    if (a->seed && a->kind != ANSWER_DELETE) {
        skv_buf_append(out, a->json.ptr, a->json.len);
        return;
    }
    switch (a->kind) {
    case ANSWER_DEFINE:
        skv_buf_append(out, a->json.ptr, a->json.len - 1); /* without its closing brace */
        skv_buf_printf(out, ",\"builtin\":false,\"version\":%llu}", (unsigned long long)res->version);
        return;
    case ANSWER_DROP:
        skv_buf_append_cstr(out, "{\"name\":");
        append_json_str(out, a->coll);
        skv_buf_printf(out, ",\"dropped\":true,\"documents\":%zu}", a->documents);
        return;
    default: break;
    }
    skv_buf_append_cstr(out, "{\"collection\":");
    append_json_str(out, a->coll);
    skv_buf_append_cstr(out, ",\"id\":");
    schema_value_json(a->pkf, a->pk, out);
    skv_buf_printf(out, ",\"version\":%llu,\"shard\":%u", (unsigned long long)res->version, res->shard);
    if (a->kind == ANSWER_DELETE) skv_buf_append_cstr(out, ",\"deleted\":true}");
    else skv_buf_append_cstr(out, res->created ? ",\"created\":true}" : ",\"created\":false}");
}

/* Applies wr and answers; returns the shard_apply code and *mark, the
 * output length before the answer (for reanswer). */
static int apply(req_ctx *x, shard_write *wr, answer_ctx *a, size_t *mark) {
    *mark = x->r->out->len;
    return api_write_answer(x->w, x->req, x->body, x->r, wr, render, a);
}

/* ---- collections: define, list, get, drop ------------------------------------------------ */

typedef struct define_arg {
    skv_slice json;
    int builtin;
} define_arg;

static int is_marker(const ht_entry *e) {
    return skv_slice_eq_cstr(skv_slice_make(ht_entry_value(e), e->val_len), COLL_DROPPED_MARKER);
}

/* A definition may be stored when none is in force: no record (and not a
 * built-in), or a built-in's dropped marker. */
static int define_compute(void *arg, const ht_entry *cur, skv_buf *value, uint32_t *flags, uint64_t *expires_ms) {
    define_arg *d = arg;
    (void)expires_ms;
    if (cur ? !is_marker(cur) : d->builtin) return SKV_EPRECOND;
    skv_buf_append(value, d->json.ptr, d->json.len);
    *flags = SHARD_VAL_JSON;
    return SKV_OK;
}

/* A built-in is dropped by storing its marker (it exists without a
 * record): only by the drop that owns the definition in force (arg; NULL:
 * this request drops nothing) and only over that definition's record
 * (none for the built-in's own definition). */
static int drop_builtin_compute(void *arg, const ht_entry *cur, skv_buf *value, uint32_t *flags,
                                uint64_t *expires_ms) {
    const coll_def *c = arg;
    (void)expires_ms;
    if (!c || (cur ? is_marker(cur) || cur->version != c->version : c->version != 0)) return SKV_ENOTFOUND;
    skv_buf_append_cstr(value, COLL_DROPPED_MARKER);
    *flags = SHARD_VAL_JSON;
    return SKV_OK;
}

static void define(req_ctx *x) {
    json_t *j = parse_body(x);
    if (!j) return;
    schema *s = NULL;
    schema_error err;
    skv_buf json;
    skv_buf_init(&json);
    if (schema_parse(j, &s, &err) != SKV_OK) {
        reply_error(x->r, 400, err.code, "%s", err.message);
        goto out;
    }
    skv_slice name = skv_slice_make(s->name, s->name_len);
    coll_def *cur = coll_lookup(x->reg, name);
    if (!cur && !coll_definition_stored(x->reg, name)) {
        /* The definition will be new: it must not see documents of an
         * earlier collection of this name, which a drop deletes in the
         * background.  (Otherwise the write below answers: 409, or the
         * remembered answer of an Idempotency-Key.) */
        if (coll_busy(x->reg, name)) {
            reanswer(x->r, NO_MARK, 409, RETRY_SOON, "collection_busy",
                     "a collection '%s' was just dropped and its documents are still being deleted; retry shortly",
                     s->name);
            goto out;
        }
        coll_def **all;
        size_t n = coll_list(x->reg, &all);
        for (size_t i = 0; i < n; i++) coll_release(all[i]);
        free(all);
        if (n >= COLL_MAX) {
            reanswer(x->r, NO_MARK, 409, NULL, "too_many_collections", "a node holds at most %d collections",
                     COLL_MAX);
            goto out;
        }
    }
    coll_release(cur);
    schema_to_json(s, &json);
    define_arg d = { skv_slice_make(json.data, json.len), coll_is_builtin(name) };
    shard_write wr = { 0 };
    wr.op = SHARD_OP_PUT;
    wr.key = coll_schema_key(&x->key, name);
    wr.compute = define_compute;
    wr.compute_arg = &d;
    wr.flags = SHARD_VAL_JSON;
    answer_ctx a = { .kind = ANSWER_DEFINE, .coll = name, .json = d.json };
    size_t mark;
    if (apply(x, &wr, &a, &mark) == SKV_EPRECOND)
        reanswer(x->r, mark, 409, NULL, "collection_exists", "collection '%s' already exists", s->name);
out:
    skv_buf_free(&json);
    schema_free(s);
    json_decref(j);
}

/* Appends c's definition with its version and document counts (total and
 * per shard, read one shard lock at a time). */
static void describe(req_ctx *x, coll_def *c, skv_buf *b) {
    skv_buf def;
    skv_buf_init(&def);
    schema_to_json(c->s, &def);
    skv_buf_append(b, def.data, def.len - 1);
    skv_buf_free(&def);
    skv_buf_printf(b, ",\"builtin\":%s,\"version\":%llu", c->builtin ? "true" : "false",
                   (unsigned long long)c->version);
    uint64_t total = 0;
    skv_buf shards;
    skv_buf_init(&shards);
    skv_slice name = skv_slice_make(c->s->name, c->s->name_len);
    for (uint32_t i = 0; i < x->st->nshards; i++) {
        shard *s = store_shard(x->st, i);
        pthread_mutex_lock(&s->lock);
        size_t n = docidx_count(coll_shard_index(x->reg, i), name);
        pthread_mutex_unlock(&s->lock);
        total += n;
        skv_buf_printf(&shards, "%s%zu", i ? "," : "", n);
    }
    skv_buf_printf(b, ",\"documents\":%llu,\"shards\":[", (unsigned long long)total);
    skv_buf_append(b, shards.data ? shards.data : "", shards.len);
    skv_buf_append_cstr(b, "]}");
    skv_buf_free(&shards);
}

static void list_collections(req_ctx *x) {
    coll_def **all;
    size_t n = coll_list(x->reg, &all);
    skv_buf b;
    skv_buf_init(&b);
    skv_buf_append_cstr(&b, "{\"items\":[");
    for (size_t i = 0; i < n; i++) {
        if (i) skv_buf_append(&b, ",", 1);
        describe(x, all[i], &b);
        coll_release(all[i]);
    }
    free(all);
    skv_buf_append_cstr(&b, "],\"next_cursor\":null}");
    reply_json(x->r, 200, &b);
    skv_buf_free(&b);
}

static void get_collection(req_ctx *x) {
    coll_def *c = coll_lookup(x->reg, name_of(x));
    if (!c) {
        collection_not_found(x);
        return;
    }
    skv_buf b;
    skv_buf_init(&b);
    describe(x, c, &b);
    reply_start(x->r, 200);
    if (c->version) reply_etag(x->r, c->version);
    reply_json_buf(x->r, &b);
    skv_buf_free(&b);
    coll_release(c);
}

static size_t document_count(req_ctx *x, skv_slice name) {
    size_t total = 0;
    for (uint32_t i = 0; i < x->st->nshards; i++) {
        shard *s = store_shard(x->st, i);
        pthread_mutex_lock(&s->lock);
        total += docidx_count(coll_shard_index(x->reg, i), name);
        pthread_mutex_unlock(&s->lock);
    }
    return total;
}

/*
 * Drop: document writes stop (dropping, set under the gate so no write is
 * between its check and its apply), then the definition record goes (a
 * built-in gets its dropped marker), with the condition that it is still
 * the record of the definition in force.  Nothing else: when the removal
 * becomes visible (durable under --fsync always) the registry queues the
 * deletion of the documents (coll.c).  Only the request that set dropping
 * writes; a concurrent drop, or one of a collection not in force, goes
 * through a write that cannot apply (404, or the remembered answer of its
 * Idempotency-Key).  When the removal fails at once, dropping is cleared
 * here; when it fails on the disk later (507/503 after the answer was
 * held), the registry sees it no longer pending and clears it (drop_version).
 */
static void drop_collection(req_ctx *x) {
    skv_slice name = name_of(x);
    if (!schema_name_valid(name)) {
        collection_not_found(x);
        return;
    }
    coll_def *c = coll_lookup(x->reg, name);
    int owner = 0;
    if (c) {
        pthread_rwlock_wrlock(&c->gate);
        owner = !atomic_exchange(&c->dropping, 1);
        pthread_rwlock_unlock(&c->gate);
    }
    shard_write wr = { 0 };
    wr.key = coll_schema_key(&x->key, name);
    if (coll_is_builtin(name)) {
        wr.op = SHARD_OP_PUT;
        wr.compute = drop_builtin_compute;
        wr.compute_arg = owner ? c : NULL;
        wr.flags = SHARD_VAL_JSON;
    } else {
        wr.op = SHARD_OP_DELETE;
        wr.cond = SHARD_COND_VERSION;
        wr.expected_version = owner ? c->version : 0; /* versions start at 1: 0 never matches */
    }
    answer_ctx a = { .kind = ANSWER_DROP, .coll = name, .documents = owner ? document_count(x, name) : 0 };
    size_t mark;
    int rc = apply(x, &wr, &a, &mark);
    if (rc == SKV_ENOTFOUND || rc == SKV_EPRECOND) collection_not_found_at(x, mark);
    if (owner) {
        if (rc == SKV_OK && a.rendered) atomic_store(&c->drop_version, a.version);
        else coll_drop_abandon(x->reg, c);
    }
    coll_release(c);
}

/* ---- documents ----------------------------------------------------------------------------- */

static const schema_field *pk_field(const coll_def *c) { return &c->s->fields[c->s->pk]; }
static int pk_sharded(const coll_def *c) { return c->s->shard_key == c->s->pk; }
static skv_slice coll_name(const coll_def *c) { return skv_slice_make(c->s->name, c->s->name_len); }

/* A validated document, ready to write. */
typedef struct doc_in {
    skv_buf pk;          /* canonical primary key text */
    skv_buf shard_text;  /* canonical shard key text */
    char *json;          /* compact JSON (free) */
    size_t json_len;
} doc_in;

static void doc_in_init(doc_in *d) {
    memset(d, 0, sizeof *d);
    skv_buf_init(&d->pk);
    skv_buf_init(&d->shard_text);
}

static void doc_in_free(doc_in *d) {
    skv_buf_free(&d->pk);
    skv_buf_free(&d->shard_text);
    free(d->json);
}

static skv_slice buf_slice(const skv_buf *b) { return skv_slice_make(b->data ? b->data : "", b->len); }

/* Puts the id of the URL into a body that lacks its primary key. */
static void default_pk(const schema_field *pkf, json_t *j, skv_slice url_pk) {
    json_t *v = json_object_get(j, pkf->name);
    if (v && !json_is_null(v)) return;
    int64_t n = 0;
    if (pkf->type == SCHEMA_INTEGER && skv_slice_to_i64(url_pk, &n) == SKV_OK)
        json_object_set_new(j, pkf->name, json_integer((json_int_t)n));
    else if (pkf->type == SCHEMA_STRING)
        json_object_set_new(j, pkf->name, json_stringn(url_pk.ptr, url_pk.len));
}

/* Validates body j as a document of c (url_pk: the id of a PUT's URL, or
 * NULL) into *d; 0 after answering 400, 413 or 507. */
static int doc_prepare(req_ctx *x, coll_def *c, json_t *j, const skv_slice *url_pk, doc_in *d) {
    const schema *s = c->s;
    const schema_field *pkf = pk_field(c);
    schema_error err;
    if (url_pk) default_pk(pkf, j, *url_pk);
    if (schema_validate(s, j, &err) != SKV_OK) {
        reply_error(x->r, 400, err.code, "%s", err.message);
        return 0;
    }
    schema_value_text(pkf, json_object_get(j, pkf->name), &d->pk);
    schema_value_text(&s->fields[s->shard_key], json_object_get(j, s->fields[s->shard_key].name), &d->shard_text);
    if (url_pk && !skv_slice_eq(buf_slice(&d->pk), *url_pk)) {
        reply_error(x->r, 400, "id_mismatch", "the body's '%s' differs from the id in the URL", pkf->name);
        return 0;
    }
    size_t key_len = STORE_INTERNAL_HEADER + s->name_len + 1 + d->pk.len;
    if (key_len > x->w->env->cfg->max_key_bytes) {
        reply_error(x->r, 400, "key_too_large", "the document's key is %zu bytes; the limit is %zu (--max-key-bytes)",
                    key_len, x->w->env->cfg->max_key_bytes);
        return 0;
    }
    d->json = json_dumps(j, JSON_COMPACT);
    if (!d->json) {
        reply_error(x->r, 507, "insufficient_storage", "out of memory encoding the document");
        return 0;
    }
    d->json_len = strlen(d->json);
    return api_check_value(x->w, d->json_len, x->r);
}

/* Where a document is, as of the newest writes (those waiting for the
 * disk included): the shard holding it, a shard where its delete waits. */
typedef struct where {
    int live, deleting; /* shard ids, -1 = none */
} where;

static void locate(req_ctx *x, coll_def *c, skv_slice pk, where *wh) {
    wh->live = wh->deleting = -1;
    for (uint32_t i = 0; i < x->st->nshards && wh->live < 0; i++) {
        skv_slice key = docidx_doc_key(&x->key, i, coll_name(c), pk);
        uint64_t h = store_key_hash(key);
        shard *s = store_shard(x->st, i);
        pthread_mutex_lock(&s->lock);
        /* The shard's pending table holds the newest write of a key while it waits for the disk. */
        const ht_entry *p = ht_count(s->pending) ? ht_find(s->pending, h, key.ptr, key.len) : NULL;
        if (p && (p->flags & SHARD_TOMBSTONE)) wh->deleting = (int)i;
        else if (p || ht_find(s->table, h, key.ptr, key.len)) wh->live = (int)i;
        pthread_mutex_unlock(&s->lock);
    }
}

static void duplicate_id(req_ctx *x, size_t mark, coll_def *c, skv_slice pk) {
    if (x->rt.seed)
        reanswer(x->r, mark, 409, NULL, "duplicate_id", "User %.*s already exists", (int)pk.len, pk.ptr);
    else
        reanswer(x->r, mark, 409, NULL, "duplicate_id", "a document with %s %.*s already exists in collection '%s'",
                 pk_field(c)->name, (int)(pk.len > 100 ? 100 : pk.len), pk.ptr, c->s->name);
}

/* The checks of a write of a collection sharded by another field than its
 * primary key (write stripe held): 1 to go on with *target set, 0 after
 * answering. */
static int check_placement(req_ctx *x, coll_def *c, int kind, skv_slice pk, uint32_t *target) {
    where wh;
    locate(x, c, pk, &wh);
    if (kind == ANSWER_DELETE) {
        if (wh.live < 0) {
            document_not_found(x, NO_MARK, pk);
            return 0;
        }
        *target = (uint32_t)wh.live;
        return 1;
    }
    if (wh.live >= 0 && (uint32_t)wh.live != *target) {
        if (kind == ANSWER_CREATE) duplicate_id(x, NO_MARK, c, pk);
        else
            reanswer(x->r, NO_MARK, 409, NULL, "shard_key_changed",
                     "the document lives on shard %d; changing its shard key '%s' would move it: delete it and create "
                     "it again",
                     wh.live, c->s->fields[c->s->shard_key].name);
        return 0;
    }
    if (wh.live < 0 && wh.deleting >= 0 && (uint32_t)wh.deleting != *target) {
        reanswer(x->r, NO_MARK, 409, RETRY_SOON, "write_in_progress",
                 "a delete of this document on shard %d is still being written; retry shortly", wh.deleting);
        return 0;
    }
    return 1;
}

/*
 * Writes one document (kind: create, put or delete) of c with primary key
 * pk: for create and put, d is the document and target the shard its
 * shard key names; a delete finds its shard.  cond / expected: the
 * request's precondition.  Answers.
 */
static void write_doc(req_ctx *x, coll_def *c, int kind, skv_slice pk, uint32_t target, const doc_in *d, int cond,
                      uint64_t expected) {
    pthread_rwlock_rdlock(&c->gate);
    if (atomic_load(&c->dropping)) {
        pthread_rwlock_unlock(&c->gate);
        collection_not_found(x);
        return;
    }
    pthread_mutex_t *stripe = pk_sharded(c) ? NULL : coll_stripe(x->reg, coll_name(c), pk);
    if (stripe) pthread_mutex_lock(stripe);
    if (!stripe || check_placement(x, c, kind, pk, &target)) {
        answer_ctx a = { .kind = kind, .seed = x->rt.seed, .coll = coll_name(c), .pkf = pk_field(c), .pk = pk };
        shard_write wr = { 0 };
        wr.key = docidx_doc_key(&x->key, target, coll_name(c), pk);
        wr.cond = kind == ANSWER_CREATE ? SHARD_COND_ABSENT : cond;
        wr.expected_version = expected;
        if (kind == ANSWER_DELETE) {
            wr.op = SHARD_OP_DELETE;
        } else {
            wr.op = SHARD_OP_PUT;
            wr.value = skv_slice_make(d->json, d->json_len);
            wr.flags = SHARD_VAL_JSON;
            a.json = wr.value;
        }
        size_t mark;
        int rc = apply(x, &wr, &a, &mark);
        if (rc == SKV_EPRECOND && kind == ANSWER_CREATE) duplicate_id(x, mark, c, pk);
        else if (rc == SKV_ENOTFOUND) document_not_found(x, mark, pk);
    }
    if (stripe) pthread_mutex_unlock(stripe);
    pthread_rwlock_unlock(&c->gate);
}

static void create_doc(req_ctx *x, coll_def *c) {
    json_t *j = parse_body(x);
    if (!j) return;
    doc_in d;
    doc_in_init(&d);
    if (doc_prepare(x, c, j, NULL, &d))
        write_doc(x, c, ANSWER_CREATE, buf_slice(&d.pk), coll_place(x->reg, buf_slice(&d.shard_text)), &d,
                  SHARD_COND_NONE, 0);
    doc_in_free(&d);
    json_decref(j);
}

/* Parses a strong entity tag ("5" or 5) into a version. */
static int parse_etag(skv_slice v, uint64_t *out) {
    if (v.len >= 2 && v.ptr[0] == 'W' && v.ptr[1] == '/') return SKV_EINVAL;
    if (v.len >= 2 && v.ptr[0] == '"' && v.ptr[v.len - 1] == '"') v = skv_slice_make(v.ptr + 1, v.len - 2);
    return skv_slice_to_u64(v, out);
}

/* If-Match ("<version>" or *) and, on PUT, If-None-Match: *; 0 after 400. */
static int parse_conditions(req_ctx *x, int is_put, int *cond, uint64_t *expected) {
    const http_request *req = x->req;
    *cond = SHARD_COND_NONE;
    *expected = 0;
    if (req->if_match.ptr && req->if_none_match.ptr) {
        reply_error(x->r, 400, "bad_precondition", "use either If-Match or If-None-Match, not both");
        return 0;
    }
    if (req->if_match.ptr) {
        if (skv_slice_eq_cstr(req->if_match, "*")) {
            *cond = SHARD_COND_EXISTS;
        } else if (parse_etag(req->if_match, expected) == SKV_OK) {
            *cond = SHARD_COND_VERSION;
        } else {
            reply_error(x->r, 400, "bad_precondition", "If-Match must be * or one strong version (an ETag such as \"12\")");
            return 0;
        }
    }
    if (req->if_none_match.ptr) {
        if (!is_put || !skv_slice_eq_cstr(req->if_none_match, "*")) {
            reply_error(x->r, 400, "bad_precondition", "If-None-Match is supported only as * on PUT (create only)");
            return 0;
        }
        *cond = SHARD_COND_ABSENT;
    }
    return 1;
}

static void put_doc(req_ctx *x, coll_def *c, skv_slice pk) {
    int cond;
    uint64_t expected;
    if (!parse_conditions(x, 1, &cond, &expected)) return;
    json_t *j = parse_body(x);
    if (!j) return;
    doc_in d;
    doc_in_init(&d);
    if (doc_prepare(x, c, j, &pk, &d))
        write_doc(x, c, ANSWER_PUT, pk, coll_place(x->reg, buf_slice(&d.shard_text)), &d, cond, expected);
    doc_in_free(&d);
    json_decref(j);
}

static void delete_doc(req_ctx *x, coll_def *c, skv_slice pk) {
    int cond;
    uint64_t expected;
    if (!parse_conditions(x, 0, &cond, &expected)) return;
    /* Sharded by its primary key, a document's shard is known from its id. */
    uint32_t target = pk_sharded(c) ? coll_place(x->reg, pk) : 0;
    write_doc(x, c, ANSWER_DELETE, pk, target, NULL, cond, expected);
}

typedef struct get_ctx {
    reply *r;
    uint32_t shard;
} get_ctx;

/* Under the shard lock: the document goes straight into the output. */
static void send_doc(void *arg, const ht_entry *e) {
    get_ctx *g = arg;
    reply_start(g->r, 200);
    reply_etag(g->r, e->version);
    reply_header_u64(g->r, "X-Shard", g->shard);
    reply_body(g->r, "application/json", ht_entry_value(e), e->val_len);
}

/* GET by id: one shard when the collection is sharded by its primary key,
 * else every shard in turn (no id -> shard pointer is kept). */
static void get_doc(req_ctx *x, coll_def *c, skv_slice pk) {
    uint32_t first = 0, last = x->st->nshards - 1;
    if (pk_sharded(c)) first = last = coll_place(x->reg, pk);
    for (uint32_t i = first; i <= last; i++) {
        skv_slice key = docidx_doc_key(&x->key, i, coll_name(c), pk);
        get_ctx g = { x->r, i };
        metrics_shard_op(x->w->mw, i, METRICS_OP_GET);
        if (shard_get(store_shard(x->st, i), store_key_hash(key), key, send_doc, &g) == SKV_OK) return;
    }
    document_not_found(x, NO_MARK, pk);
}

/* ---- dispatch -------------------------------------------------------------------------------- */

#define M(m) (1u << HTTP_M_##m)

static void handle(req_ctx *x) {
    const http_request *req = x->req;
    reply *r = x->r;
    int id = x->rt.id;
    if (id == API_ROUTE_COLLECTIONS) {
        if (!api_method_allowed(req, r, "GET, HEAD, POST, OPTIONS", API_GET_HEAD | M(POST))) return;
        if (req->method == HTTP_M_POST) define(x);
        else list_collections(x);
        return;
    }
    if (id == API_ROUTE_COLLECTION) {
        if (!api_method_allowed(req, r, "GET, HEAD, DELETE, OPTIONS", API_GET_HEAD | M(DELETE))) return;
        if (req->method == HTTP_M_DELETE) drop_collection(x);
        else get_collection(x);
        return;
    }
    int many = id == API_ROUTE_COLLECTION_DOCS || id == API_ROUTE_SEED_USERS;
    if (many ? !api_method_allowed(req, r, "GET, HEAD, POST, OPTIONS", API_GET_HEAD | M(POST))
             : !api_method_allowed(req, r, "GET, HEAD, PUT, DELETE, OPTIONS", API_GET_HEAD | M(PUT) | M(DELETE)))
        return;
    coll_def *c = coll_lookup(x->reg, name_of(x));
    if (!c) {
        collection_not_found(x);
        return;
    }
    if (many) {
        if (req->method == HTTP_M_POST) create_doc(x, c);
        else coll_query(x->w, x->req, x->r, x->reg, c);
        coll_release(c);
        return;
    }
    skv_buf raw, pk;
    skv_buf_init(&raw);
    skv_buf_init(&pk);
    const schema_field *pkf = pk_field(c);
    if (http_url_decode(x->rt.doc, 0, &raw) != SKV_OK || schema_value_parse(pkf, buf_slice(&raw), &pk) != SKV_OK ||
        pk.len == 0 || pk.len > SCHEMA_MAX_KEY_BYTES) {
        reply_error(r, 400, "bad_id", "the id must be %s %s ('%s')", pkf->type == SCHEMA_INTEGER ? "an" : "a",
                    pkf->type == SCHEMA_INTEGER ? "64-bit integer" : "string of 1 to 512 bytes", pkf->name);
    } else if (req->method == HTTP_M_PUT) {
        put_doc(x, c, buf_slice(&pk));
    } else if (req->method == HTTP_M_DELETE) {
        delete_doc(x, c, buf_slice(&pk));
    } else {
        get_doc(x, c, buf_slice(&pk));
    }
    skv_buf_free(&raw);
    skv_buf_free(&pk);
    coll_release(c);
}

int coll_route_of(const http_request *req) {
    route rt;
    return parse_route(req->path, &rt) ? rt.id : -1;
}

int coll_dispatch(api_worker *w, const http_request *req, skv_slice body, reply *r) {
    req_ctx x;
    memset(&x, 0, sizeof x);
    if (!parse_route(req->path, &x.rt)) return -1;
    x.w = w;
    x.req = req;
    x.body = body;
    x.r = r;
    x.reg = w->env->colls;
    x.st = w->env->st;
    r->seed_style = x.rt.seed;
    skv_buf_init(&x.name);
    skv_buf_init(&x.key);
    if (x.rt.name.len && http_url_decode(x.rt.name, 0, &x.name) != SKV_OK) skv_buf_reset(&x.name);
    if (!x.reg) {
        r->extra = RETRY_SOON;
        reply_error(r, 503, "recovering", "the collections are not loaded yet; retry shortly");
        r->extra = NULL;
    } else {
        handle(&x);
    }
    skv_buf_free(&x.name);
    skv_buf_free(&x.key);
    return x.rt.id;
}
