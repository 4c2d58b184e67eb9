/*
 * docidx — per-shard document indexes (see docidx.h).
 */
#include "docidx.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "index.h"
#include "mem.h"
#include "store.h"

typedef struct part {
    char *coll;
    size_t coll_len;
    index_tree *pk;          /* primary key encodings */
    uint64_t bound;          /* id of the definition the secondary indexes follow; 0 = none.
                                The definition itself is not kept: callers pass it with its id. */
    size_t nsec;
    index_tree **sec;        /* [nsec]: one per def->indexes[i] */
} part;

struct docidx {
    uint32_t shard_id;
    size_t nparts, cap;
    part **parts;
    skv_buf key, enc, val, tmp; /* scratch, used under the shard lock */
};

docidx *docidx_new(uint32_t shard_id) {
    docidx *d = skv_calloc(1, sizeof *d);
    d->shard_id = shard_id;
    skv_buf_init(&d->key);
    skv_buf_init(&d->enc);
    skv_buf_init(&d->val);
    skv_buf_init(&d->tmp);
    return d;
}

static void drop_secondary(part *p) {
    for (size_t i = 0; i < p->nsec; i++) index_free(p->sec[i]);
    free(p->sec);
    p->sec = NULL;
    p->nsec = 0;
    p->bound = 0;
}

static void part_free(part *p) {
    drop_secondary(p);
    index_free(p->pk);
    free(p->coll);
    free(p);
}

void docidx_free(docidx *d) {
    if (!d) return;
    for (size_t i = 0; i < d->nparts; i++) part_free(d->parts[i]);
    free(d->parts);
    skv_buf_free(&d->key);
    skv_buf_free(&d->enc);
    skv_buf_free(&d->val);
    skv_buf_free(&d->tmp);
    free(d);
}

/* ---- keys ---------------------------------------------------------------------------------- */

int docidx_parse_key(skv_slice key, skv_slice *coll, skv_slice *pk) {
    char ns;
    uint32_t id;
    skv_slice name;
    if (!store_internal_key_parse(key, &ns, &id, &name) || ns != STORE_NS_DOC) return 0;
    const char *sep = name.len ? memchr(name.ptr, '\0', name.len) : NULL;
    if (!sep) return 0;
    *coll = skv_slice_make(name.ptr, (size_t)(sep - name.ptr));
    *pk = skv_slice_make(sep + 1, name.len - coll->len - 1);
    return 1;
}

skv_slice docidx_doc_key(skv_buf *out, uint32_t shard_id, skv_slice coll, skv_slice pk) {
    store_internal_key(out, STORE_NS_DOC, shard_id, coll.ptr, coll.len);
    skv_buf_append(out, "", 1);
    skv_buf_append(out, pk.ptr, pk.len);
    return skv_slice_make(out->data, out->len);
}

/* Appends the order-preserving encoding of a primary key text. */
static void pk_encode(skv_slice pk, skv_buf *out) {
    int64_t v;
    char dec[24];
    if (skv_slice_to_i64(pk, &v) == SKV_OK && (size_t)snprintf(dec, sizeof dec, "%lld", (long long)v) == pk.len &&
        memcmp(dec, pk.ptr, pk.len) == 0) {
        uint64_t u = (uint64_t)v ^ (1ull << 63);
        unsigned char b[9];
        b[0] = 0;
        for (int i = 0; i < 8; i++) b[1 + i] = (unsigned char)(u >> (56 - 8 * i));
        skv_buf_append(out, b, sizeof b);
        return;
    }
    skv_buf_append(out, "\1", 1);
    skv_buf_append(out, pk.ptr, pk.len);
}

/* The primary key text of an encoding, into out (reset); 0 or SKV_EINVAL. */
static int pk_decode(const unsigned char *p, size_t n, skv_buf *out) {
    skv_buf_reset(out);
    if (n == 9 && p[0] == 0) {
        uint64_t u = 0;
        for (int i = 0; i < 8; i++) u = u << 8 | p[1 + i];
        skv_buf_append_i64(out, (int64_t)(u ^ (1ull << 63)));
        return SKV_OK;
    }
    if (n >= 1 && p[0] == 1) {
        skv_buf_append(out, p + 1, n - 1);
        return SKV_OK;
    }
    return SKV_EINVAL;
}

/* Appends the secondary-key prefix of a value text. */
static void value_prefix(skv_slice value, skv_buf *out) {
    uint32_t n = (uint32_t)value.len;
    unsigned char b[4] = { (unsigned char)(n >> 24), (unsigned char)(n >> 16), (unsigned char)(n >> 8), (unsigned char)n };
    skv_buf_append(out, b, sizeof b);
    skv_buf_append(out, value.ptr, value.len);
}

/* ---- parts --------------------------------------------------------------------------------- */

static part *find_part(docidx *d, skv_slice coll, size_t *pos) {
    for (size_t i = 0; i < d->nparts; i++) {
        part *p = d->parts[i];
        if (p->coll_len == coll.len && memcmp(p->coll, coll.ptr, coll.len) == 0) {
            if (pos) *pos = i;
            return p;
        }
    }
    return NULL;
}

static part *add_part(docidx *d, skv_slice coll) {
    if (d->nparts == d->cap) {
        d->cap = d->cap ? 2 * d->cap : 4;
        d->parts = skv_realloc(d->parts, d->cap * sizeof *d->parts);
    }
    part *p = skv_calloc(1, sizeof *p);
    p->coll = skv_strndup(coll.ptr, coll.len);
    p->coll_len = coll.len;
    p->pk = index_new();
    d->parts[d->nparts++] = p;
    return p;
}

static void remove_part(docidx *d, size_t pos) {
    part_free(d->parts[pos]);
    d->parts[pos] = d->parts[--d->nparts];
}

/* Parses a document's JSON (NULL when it is not JSON; the caller decrefs). */
static json_t *doc_json(const ht_entry *e) {
    return json_loadb(ht_entry_value(e), e->val_len, JSON_ALLOW_NUL, NULL);
}

/* The secondary key of (value of index i in doc, pk encoding in d->enc)
 * into d->tmp; 0 when the document has no value of the field's type. */
static int sec_key(docidx *d, const schema *def, size_t i, json_t *doc) {
    const schema_field *f = &def->fields[def->indexes[i]];
    skv_buf_reset(&d->val);
    if (!doc || schema_value_text(f, json_object_get(doc, f->name), &d->val) != SKV_OK) return 0;
    skv_buf_reset(&d->tmp);
    value_prefix(skv_slice_make(d->val.data, d->val.len), &d->tmp);
    skv_buf_append(&d->tmp, d->enc.data, d->enc.len);
    return 1;
}

/* Adds (add = 1) or removes the secondary entries of one document, whose
 * primary key encoding is in d->enc. */
static void sec_apply(docidx *d, part *p, const schema *def, const ht_entry *e, int add) {
    json_t *doc = doc_json(e);
    for (size_t i = 0; i < p->nsec; i++) {
        if (!sec_key(d, def, i, doc)) continue;
        if (add) index_insert(p->sec[i], d->tmp.data, d->tmp.len);
        else index_remove(p->sec[i], d->tmp.data, d->tmp.len);
    }
    json_decref(doc);
}

typedef struct rebuild_ctx {
    docidx *d;
    shard *s;
    part *p;
    const schema *def;
    skv_buf pk;
} rebuild_ctx;

static int rebuild_one(void *arg, const void *key, size_t len) {
    rebuild_ctx *c = arg;
    docidx *d = c->d;
    if (pk_decode(key, len, &c->pk) != SKV_OK) return 0;
    skv_slice dk = docidx_doc_key(&d->key, d->shard_id, skv_slice_make(c->p->coll, c->p->coll_len),
                                  skv_slice_make(c->pk.data, c->pk.len));
    const ht_entry *e = ht_find(c->s->table, store_key_hash(dk), dk.ptr, dk.len);
    if (!e) return 0;
    skv_buf_reset(&d->enc);
    skv_buf_append(&d->enc, key, len);
    sec_apply(d, c->p, c->def, e, 1);
    return 0;
}

/* Makes p's secondary indexes those of def (id def_id), rebuilt from the
 * primary index and the table. */
static void bind(docidx *d, shard *s, part *p, const schema *def, uint64_t def_id) {
    drop_secondary(p);
    if (!def) return;
    p->bound = def_id;
    p->nsec = def->nindexes;
    p->sec = skv_calloc(p->nsec + 1, sizeof *p->sec);
    for (size_t i = 0; i < p->nsec; i++) p->sec[i] = index_new();
    if (p->nsec == 0) return;
    rebuild_ctx c = { d, s, p, def, { NULL, 0, 0 } };
    index_scan(p->pk, "", 0, 0, rebuild_one, &c);
    skv_buf_free(&c.pk);
}

/* 1 when p follows definition def_id (0 = none). */
static int bound_to(const part *p, uint64_t def_id) { return p->bound == def_id; }

void docidx_change(docidx *d, shard *s, const schema *def, uint64_t def_id, skv_slice coll, skv_slice pk,
                   const ht_entry *old, const ht_entry *now) {
    size_t pos = 0;
    part *p = find_part(d, coll, &pos);
    if (!p) {
        if (!now) return;
        p = add_part(d, coll);
        pos = d->nparts - 1;
    }
    skv_buf_reset(&d->enc);
    pk_encode(pk, &d->enc);
    /* The primary index first: a rebuild below reads it. */
    if (now) index_insert(p->pk, d->enc.data, d->enc.len);
    else index_remove(p->pk, d->enc.data, d->enc.len);
    if (index_count(p->pk) == 0) {
        remove_part(d, pos);
        return;
    }
    if (!bound_to(p, def ? def_id : 0)) {
        bind(d, s, p, def, def_id); /* reads the table, which already shows `now` */
        return;
    }
    if (p->nsec == 0) return;
    if (old) sec_apply(d, p, def, old, 0);
    if (now) sec_apply(d, p, def, now, 1);
}

size_t docidx_count(docidx *d, skv_slice coll) {
    part *p = find_part(d, coll, NULL);
    return p ? index_count(p->pk) : 0;
}

typedef struct keys_ctx {
    skv_buf *out, pk;
    size_t n, max;
} keys_ctx;

static int key_one(void *arg, const void *key, size_t len) {
    keys_ctx *c = arg;
    if (c->n >= c->max) return 1;
    if (pk_decode(key, len, &c->pk) != SKV_OK) return 0;
    uint32_t n = (uint32_t)c->pk.len;
    skv_buf_append(c->out, &n, sizeof n);
    skv_buf_append(c->out, c->pk.data, c->pk.len);
    c->n++;
    return 0;
}

size_t docidx_keys(docidx *d, skv_slice coll, size_t max, skv_buf *out) {
    part *p = find_part(d, coll, NULL);
    if (!p) return 0;
    keys_ctx c = { out, { NULL, 0, 0 }, 0, max };
    index_scan(p->pk, "", 0, 0, key_one, &c);
    skv_buf_free(&c.pk);
    return c.n;
}

void docidx_each_collection(docidx *d, void (*fn)(void *arg, skv_slice coll), void *arg) {
    for (size_t i = 0; i < d->nparts; i++) fn(arg, skv_slice_make(d->parts[i]->coll, d->parts[i]->coll_len));
}

/* ---- queries ------------------------------------------------------------------------------- */

typedef struct visit_ctx {
    docidx *d;
    shard *s;
    part *p;
    const docidx_query *q;
    skv_slice prefix;        /* every match starts with it */
    const schema_field *field; /* the indexed field (NULL: all documents) */
    skv_buf pk, val;
    docidx_visit_fn fn;
    void *arg;
    int stopped;
} visit_ctx;

/* 1 when the document still has the queried value (the re-check). */
static int still_matches(visit_ctx *c, const ht_entry *e) {
    json_t *doc = doc_json(e);
    skv_buf_reset(&c->val);
    int ok = doc && schema_value_text(c->field, json_object_get(doc, c->field->name), &c->val) == SKV_OK &&
             skv_slice_eq(skv_slice_make(c->val.data, c->val.len), c->q->value);
    json_decref(doc);
    return ok;
}

static int visit_one(void *arg, const void *key, size_t len) {
    visit_ctx *c = arg;
    if (len < c->prefix.len || memcmp(key, c->prefix.ptr, c->prefix.len) != 0) return 1;
    const unsigned char *enc = (const unsigned char *)key + c->prefix.len;
    if (pk_decode(enc, len - c->prefix.len, &c->pk) != SKV_OK) return 0;
    skv_slice pk = skv_slice_make(c->pk.data, c->pk.len);
    skv_slice dk = docidx_doc_key(&c->d->key, c->d->shard_id, c->q->coll, pk);
    const ht_entry *e = ht_find(c->s->table, store_key_hash(dk), dk.ptr, dk.len);
    if (!e || shard_entry_expired(e, c->s->clock_ms())) return 0;
    if (c->field && !still_matches(c, e)) return 0;
    if (c->fn(c->arg, pk, e)) {
        c->stopped = 1;
        return 1;
    }
    return 0;
}

int docidx_visit(docidx *d, shard *s, const docidx_query *q, docidx_visit_fn fn, void *arg) {
    part *p = find_part(d, q->coll, NULL);
    if (!p) return 0;
    if (q->index >= 0 && (!q->def || (size_t)q->index >= q->def->nindexes)) return 0;
    if (q->index >= 0 && !bound_to(p, q->def_id)) bind(d, s, p, q->def, q->def_id);
    visit_ctx c;
    memset(&c, 0, sizeof c);
    c.d = d;
    c.s = s;
    c.p = p;
    c.q = q;
    c.fn = fn;
    c.arg = arg;
    skv_buf start;
    skv_buf_init(&start);
    index_tree *tree = p->pk;
    if (q->index >= 0) {
        tree = p->sec[q->index];
        c.field = &q->def->fields[q->def->indexes[q->index]];
        value_prefix(q->value, &start);
    }
    size_t prefix_len = start.len;
    if (q->has_after) pk_encode(q->after, &start);
    c.prefix = skv_slice_make(start.data ? start.data : "", prefix_len);
    index_scan(tree, start.data ? start.data : "", start.len, q->has_after, visit_one, &c);
    skv_buf_free(&start);
    skv_buf_free(&c.pk);
    skv_buf_free(&c.val);
    return c.stopped;
}

/* ---- invariants ---------------------------------------------------------------------------- */

typedef struct check_ctx {
    docidx *d;
    docidx_def_fn def_of;
    void *def_arg;
    size_t docs;       /* document keys seen in the table */
    size_t *per_part;  /* [nparts] */
    size_t *per_sec;   /* [nparts * SCHEMA_MAX_INDEXES] */
    int ok;
} check_ctx;

static void check_entry(void *arg, const ht_entry *e) {
    check_ctx *c = arg;
    skv_slice coll, pk;
    if (!docidx_parse_key(skv_slice_make(ht_entry_key(e), e->key_len), &coll, &pk)) return;
    docidx *d = c->d;
    size_t pos;
    part *p = find_part(d, coll, &pos);
    skv_buf_reset(&d->enc);
    pk_encode(pk, &d->enc);
    if (!p || !index_contains(p->pk, d->enc.data, d->enc.len)) {
        c->ok = 0;
        return;
    }
    c->per_part[pos]++;
    uint64_t id = 0;
    const schema *def = c->def_of(c->def_arg, coll, &id);
    if (!p->nsec || !def || id != p->bound) return;
    json_t *doc = doc_json(e);
    for (size_t i = 0; i < p->nsec; i++) {
        if (!sec_key(d, def, i, doc)) continue;
        if (!index_contains(p->sec[i], d->tmp.data, d->tmp.len)) c->ok = 0;
        c->per_sec[pos * SCHEMA_MAX_INDEXES + i]++;
    }
    json_decref(doc);
}

int docidx_check(docidx *d, shard *s, docidx_def_fn def_of, void *arg) {
    check_ctx c = { d, def_of, arg, 0, skv_calloc(d->nparts + 1, sizeof(size_t)),
                    skv_calloc((d->nparts + 1) * SCHEMA_MAX_INDEXES, sizeof(size_t)), 1 };
    /* Nothing modifies the table while the lock is held and the scan only
     * reads (find_part and index lookups do not touch the table). */
    uint64_t cursor = 0;
    do {
        cursor = ht_scan(s->table, cursor, check_entry, &c);
    } while (cursor != 0);
    for (size_t i = 0; i < d->nparts && c.ok; i++) {
        part *p = d->parts[i];
        if (!index_check(p->pk) || index_count(p->pk) != c.per_part[i] || index_count(p->pk) == 0) c.ok = 0;
        uint64_t id = 0;
        if (!p->nsec || !def_of(arg, skv_slice_make(p->coll, p->coll_len), &id) || id != p->bound) continue;
        for (size_t j = 0; j < p->nsec && c.ok; j++)
            if (!index_check(p->sec[j]) || index_count(p->sec[j]) != c.per_sec[i * SCHEMA_MAX_INDEXES + j]) c.ok = 0;
    }
    free(c.per_part);
    free(c.per_sec);
    return c.ok;
}
