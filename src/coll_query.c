/*
 * coll_query — listings of a collection's documents (coll_internal.h):
 *   GET /v1/collections/{name}/docs[?<indexed field>=<value>]&limit=&cursor=
 *   GET /users[?region=<region>]&limit=&cursor=
 *   -> 200 {"items": [documents...], "next_cursor": "..." | null}
 *
 * A listing walks the shards in id order and, inside a shard, the matching
 * documents in primary-key order (docidx.h: integers numerically, before
 * other texts), one shard lock at a time.  The cursor (cursor.h, kind
 * CURSOR_INDEX with a filter, CURSOR_COLLECTION_SCAN without) carries the
 * shard and the last primary key returned, b = the shard map version, and
 * is bound to the collection, its definition's version and the filter.
 * The next page starts strictly after that position, so:
 *   - no document is returned twice by one listing;
 *   - a document that matched from the first page to the last is returned
 *     (a document never changes shard: its shard key cannot change);
 *   - a document returned matched when its page was made (docidx_visit
 *     re-checks each one against the filter).
 * next_cursor is null on the last page: a page that fills up looks for one
 * more match (on the following shards if needed) before handing a cursor.
 * A page holds at most limit documents (default 100, at most 1000) and
 * stops after the document that takes its body past 4 MiB.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "coll_internal.h"
#include "cursor.h"
#include "err.h"

#define COLL_DEFAULT_LIMIT 100
#define COLL_MAX_LIMIT 1000
#define COLL_MAX_PAGE_BYTES (4u * 1024 * 1024) /* a page stops after the document that passes this */

typedef struct query_ctx {
    api_worker *w;
    const http_request *req;
    reply *r;
    coll_registry *reg;
    store *st;
} query_ctx;

static skv_slice buf_slice(const skv_buf *b) { return skv_slice_make(b->data ? b->data : "", b->len); }
static skv_slice coll_name(const coll_def *c) { return skv_slice_make(c->s->name, c->s->name_len); }

typedef struct list_params {
    size_t limit;
    int index;          /* position in the definition's indexes; -1 = every document */
    skv_buf value;      /* canonical text of the filter's value */
    skv_buf cursor;     /* the cursor's text (empty: first page) */
} list_params;

/* Handles one query parameter; 0 after answering 400. */
static int list_param(query_ctx *x, coll_def *c, skv_slice name, skv_slice value, list_params *p) {
    if (skv_slice_eq_cstr(name, "limit")) {
        uint64_t n;
        if (skv_slice_to_u64(value, &n) != SKV_OK || n < 1 || n > COLL_MAX_LIMIT) {
            reply_error(x->r, 400, "bad_limit", "limit must be an integer between 1 and %d", COLL_MAX_LIMIT);
            return 0;
        }
        p->limit = (size_t)n;
        return 1;
    }
    if (skv_slice_eq_cstr(name, "cursor")) {
        skv_buf_reset(&p->cursor);
        skv_buf_append(&p->cursor, value.ptr, value.len);
        return 1;
    }
    if (p->index >= 0) {
        reply_error(x->r, 400, "bad_filter", "a listing takes one filter (one indexed field = value)");
        return 0;
    }
    int f = schema_field_find(c->s, name);
    for (size_t i = 0; f >= 0 && i < c->s->nindexes; i++)
        if (c->s->indexes[i] == (size_t)f) p->index = (int)i;
    if (p->index < 0) {
        skv_buf idx;
        skv_buf_init(&idx);
        for (size_t i = 0; i < c->s->nindexes; i++)
            skv_buf_printf(&idx, "%s%s", i ? ", " : "", c->s->fields[c->s->indexes[i]].name);
        reply_error(x->r, 400, "not_indexed", "'%.*s' is not an indexed field of collection '%s' (indexed: %s)",
                    (int)(name.len > 64 ? 64 : name.len), name.ptr, c->s->name, idx.len ? idx.data : "none");
        skv_buf_free(&idx);
        return 0;
    }
    const schema_field *fd = &c->s->fields[f];
    if (schema_value_parse(fd, value, &p->value) != SKV_OK) {
        reply_error(x->r, 400, "bad_filter", "the value of '%s' must be %s %s", fd->name,
                    fd->type == SCHEMA_INTEGER ? "an" : "a", schema_type_name(fd->type));
        return 0;
    }
    return 1;
}

/* Reads limit, cursor and the filter from the query string; 0 after 400. */
static int parse_list_params(query_ctx *x, coll_def *c, list_params *p) {
    skv_slice q = x->req->query;
    skv_buf name, value;
    skv_buf_init(&name);
    skv_buf_init(&value);
    int ok = 1;
    for (size_t i = 0; ok && i < q.len;) {
        size_t j = i;
        while (j < q.len && q.ptr[j] != '&') j++;
        skv_slice pair = skv_slice_make(q.ptr + i, j - i);
        i = j + 1;
        if (pair.len == 0) continue;
        const char *eq = memchr(pair.ptr, '=', pair.len);
        size_t nlen = eq ? (size_t)(eq - pair.ptr) : pair.len;
        skv_buf_reset(&name);
        skv_buf_reset(&value);
        if (http_url_decode(skv_slice_make(pair.ptr, nlen), 1, &name) != SKV_OK ||
            (eq && http_url_decode(skv_slice_make(eq + 1, pair.len - nlen - 1), 1, &value) != SKV_OK)) {
            reply_error(x->r, 400, "bad_query", "the query string is not valid percent-encoding");
            ok = 0;
        } else {
            ok = list_param(x, c, buf_slice(&name), buf_slice(&value), p);
        }
    }
    skv_buf_free(&name);
    skv_buf_free(&value);
    return ok;
}

/* The fingerprint of a listing: collection, its definition's version, filter. */
static uint64_t list_fingerprint(const coll_def *c, const list_params *p, int kind) {
    char version[24];
    int n = snprintf(version, sizeof version, "%llu", (unsigned long long)c->version);
    skv_slice parts[4] = { coll_name(c), skv_slice_make(version, (size_t)n), SKV_SLICE_LIT(""), buf_slice(&p->value) };
    if (p->index >= 0) {
        const schema_field *f = &c->s->fields[c->s->indexes[p->index]];
        parts[2] = skv_slice_make(f->name, f->name_len);
    }
    return cursor_fingerprint(kind, parts, p->index >= 0 ? 4 : 2);
}

typedef struct page_ctx {
    skv_buf *b;
    size_t count, limit;
    int more;           /* a match beyond the page exists */
    uint32_t shard;     /* the shard being walked */
    uint32_t last_shard;
    skv_buf last;       /* primary key of the last document of the page */
} page_ctx;

static int page_add(void *arg, skv_slice pk, const ht_entry *doc) {
    page_ctx *p = arg;
    if (p->count >= p->limit || (p->count > 0 && p->b->len >= COLL_MAX_PAGE_BYTES)) {
        p->more = 1;
        return 1;
    }
    if (p->count++) skv_buf_append(p->b, ",", 1);
    skv_buf_append(p->b, ht_entry_value(doc), doc->val_len);
    skv_buf_reset(&p->last);
    skv_buf_append(&p->last, pk.ptr, pk.len);
    p->last_shard = p->shard;
    return 0;
}

void coll_query(api_worker *w, const http_request *req, reply *r, coll_registry *reg, coll_def *c) {
    query_ctx ctx = { w, req, r, reg, coll_store(reg) };
    query_ctx *x = &ctx;
    list_params p = { COLL_DEFAULT_LIMIT, -1, { NULL, 0, 0 }, { NULL, 0, 0 } };
    skv_buf keybuf, b;
    skv_buf_init(&keybuf);
    skv_buf_init(&b);
    page_ctx pc = { &b, 0, 0, 0, 0, 0, { NULL, 0, 0 } };
    if (!parse_list_params(x, c, &p)) goto out;
    int kind = p.index >= 0 ? CURSOR_INDEX : CURSOR_COLLECTION_SCAN;
    uint64_t query = list_fingerprint(c, &p, kind);
    uint64_t map_version = ring_get_config(store_map(x->st))->version;
    skv_cursor cur = { 0 };
    if (p.cursor.len) {
        const char *why = NULL;
        if (cursor_decode(buf_slice(&p.cursor), kind, query, &cur, &keybuf, &why) != SKV_OK) {
            if (!why) why = "not a cursor of this listing";
        } else if (cur.shard >= x->st->nshards || cur.key.len == 0) {
            why = "the cursor does not fit this node's shards";
        } else if (cur.b != map_version) {
            why = "the shard map changed since the cursor was made; start the listing again";
        }
        if (why) {
            reply_error(x->r, 400, "bad_cursor", "bad cursor: %s", why);
            goto out;
        }
    }
    docidx_query q = { coll_name(c), c->s, c->id, p.index, buf_slice(&p.value), cur.key, 0 };
    pc.limit = p.limit;
    skv_buf_reserve(&b, 1024);
    skv_buf_append_cstr(&b, "{\"items\":[");
    for (uint32_t i = p.cursor.len ? cur.shard : 0; i < x->st->nshards && !pc.more; i++) {
        shard *s = store_shard(x->st, i);
        q.has_after = p.cursor.len && i == cur.shard;
        pc.shard = i;
        metrics_shard_op(x->w->mw, i, METRICS_OP_GET);
        pthread_mutex_lock(&s->lock);
        docidx_visit(coll_shard_index(x->reg, i), s, &q, page_add, &pc);
        pthread_mutex_unlock(&s->lock);
    }
    skv_buf_append_cstr(&b, "],\"next_cursor\":");
    if (!pc.more) {
        skv_buf_append_cstr(&b, "null}");
    } else {
        skv_cursor next = { .kind = kind, .query = query, .shard = pc.last_shard, .a = 0, .b = map_version,
                            .key = buf_slice(&pc.last) };
        skv_buf_append(&b, "\"", 1);
        cursor_encode(&next, &b);
        skv_buf_append_cstr(&b, "\"}");
    }
    reply_json(x->r, 200, &b);
out:
    skv_buf_free(&p.value);
    skv_buf_free(&p.cursor);
    skv_buf_free(&keybuf);
    skv_buf_free(&pc.last);
    skv_buf_free(&b);
}
