/*
 * coll — the collection registry: which collections exist, their
 * definitions, and the per-shard document indexes kept by the shard
 * observer.  The routes are in coll_http.c; docs/collections.md describes
 * the API.
 *
 * Storage.  A definition is the internal key (STORE_NS_SCHEMA, shard 0,
 * name) holding the normalized definition JSON (schema.h).  A document is
 * the internal key (STORE_NS_DOC, shard k, collection NUL primary-key text)
 * holding its compact JSON, on the shard k its shard key places it
 * (coll_place).  The built-in collection `users` (seed 004's table) exists
 * without a stored definition, so a fresh node holds no extra keys; it is
 * stored only when dropped (COLL_DROPPED_MARKER) or defined again.
 *
 * The registry follows the store: a definition is in force exactly while
 * its record is visible on shard 0.  The shard observer (installed on
 * every shard) sees every visible change: a definition record on shard 0
 * installs or removes a definition; a document key updates that shard's
 * docidx.  So a definition written under --fsync always takes effect when
 * it is durable, when its writer is answered.
 *
 * Start (coll_registry_new, after recovery, before the node is ready): the
 * built-ins are installed, shard 0's definition records read, then each
 * shard's table is scanned into its docidx and the observer installed,
 * under that shard's lock, so no change is missed or seen twice.  Documents
 * of collections that no longer exist (a drop interrupted by a crash) are
 * then deleted.
 */
#include "coll.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "coll_internal.h"
#include "err.h"
#include "log.h"
#include "mem.h"

#define COLL_STRIPES 64

struct coll_registry {
    store *st;
    pthread_rwlock_t lock;   /* defs, ndefs, next_id */
    coll_def **defs;         /* [ndefs] in force (COLL_MAX is checked by defines, not here) */
    size_t ndefs, cap;
    uint64_t next_id;
    docidx **idx;            /* [nshards]: idx[i] under shard i's lock */
    pthread_mutex_t stripes[COLL_STRIPES];
};

/* Seed 004's users table: user_id BIGINT PRIMARY KEY, name VARCHAR(100),
 * region VARCHAR(50), email VARCHAR(100), and its idx_users_region. */
static const char users_definition[] =
    "{\"name\":\"users\",\"primary_key\":\"user_id\",\"shard_key\":\"user_id\","
    "\"fields\":{\"user_id\":{\"type\":\"integer\"},\"name\":{\"type\":\"string\",\"max_length\":100},"
    "\"region\":{\"type\":\"string\",\"max_length\":50},\"email\":{\"type\":\"string\",\"max_length\":100}},"
    "\"indexes\":[\"region\"]}";

static const char *const builtin_names[] = { "users" };
static const char *const builtin_definitions[] = { users_definition };
#define NBUILTINS (sizeof builtin_names / sizeof builtin_names[0])

static int builtin_of(skv_slice name) {
    for (size_t i = 0; i < NBUILTINS; i++)
        if (skv_slice_eq_cstr(name, builtin_names[i])) return (int)i;
    return -1;
}

int coll_is_builtin(skv_slice name) { return builtin_of(name) >= 0; }

store *coll_store(coll_registry *reg) { return reg->st; }

docidx *coll_shard_index(coll_registry *reg, uint32_t i) { return reg->idx[i]; }

pthread_mutex_t *coll_stripe(coll_registry *reg, skv_slice coll, skv_slice pk) {
    uint64_t h = XXH3_64bits_withSeed(pk.ptr, pk.len, XXH3_64bits(coll.ptr, coll.len));
    return &reg->stripes[h % COLL_STRIPES];
}

skv_slice coll_schema_key(skv_buf *out, skv_slice name) {
    return store_internal_key(out, STORE_NS_SCHEMA, 0, name.ptr, name.len);
}

uint32_t coll_place(coll_registry *reg, skv_slice text) {
    ring *map = store_map(reg->st);
    ring_point p;
    uint32_t id = ring_shard_for_key(map, text.ptr, text.len, &p);
    if (LOG_ENABLED(LOG_LEVEL_DEBUG)) {
        char hash[48];
        ring_point_format(map, p, hash);
        log_debug("Key '%.*s' (hash: %s) assigned to shard %u", (int)(text.len > 200 ? 200 : text.len), text.ptr,
                  hash, id);
    }
    return id;
}

/* ---- definitions --------------------------------------------------------------------------- */

static coll_def *def_new(schema *s, uint64_t id, uint64_t version, int builtin) {
    coll_def *c = skv_calloc(1, sizeof *c);
    c->s = s;
    c->id = id;
    c->version = version;
    c->builtin = builtin;
    atomic_init(&c->refs, 1);
    atomic_init(&c->dropping, 0);
    pthread_rwlock_init(&c->gate, NULL);
    return c;
}

void coll_release(coll_def *c) {
    if (!c || atomic_fetch_sub(&c->refs, 1) != 1) return;
    pthread_rwlock_destroy(&c->gate);
    schema_free(c->s);
    free(c);
}

static int def_pos(const coll_registry *reg, skv_slice name) {
    for (size_t i = 0; i < reg->ndefs; i++)
        if (reg->defs[i]->s->name_len == name.len && memcmp(reg->defs[i]->s->name, name.ptr, name.len) == 0)
            return (int)i;
    return -1;
}

/* The current definition of name (registry lock held), or NULL. */
static coll_def *def_find(const coll_registry *reg, skv_slice name) {
    int i = def_pos(reg, name);
    return i < 0 ? NULL : reg->defs[i];
}

coll_def *coll_lookup(coll_registry *reg, skv_slice name) {
    pthread_rwlock_rdlock(&reg->lock);
    coll_def *c = def_find(reg, name);
    if (c && atomic_load(&c->dropping)) c = NULL;
    if (c) atomic_fetch_add(&c->refs, 1);
    pthread_rwlock_unlock(&reg->lock);
    return c;
}

static int by_name(const void *a, const void *b) {
    const coll_def *x = *(coll_def *const *)a, *y = *(coll_def *const *)b;
    return strcmp(x->s->name, y->s->name);
}

size_t coll_list(coll_registry *reg, coll_def ***out) {
    size_t n = 0;
    pthread_rwlock_rdlock(&reg->lock);
    *out = skv_malloc((reg->ndefs + 1) * sizeof **out);
    for (size_t i = 0; i < reg->ndefs; i++) {
        coll_def *c = reg->defs[i];
        if (atomic_load(&c->dropping)) continue;
        atomic_fetch_add(&c->refs, 1);
        (*out)[n++] = c;
    }
    pthread_rwlock_unlock(&reg->lock);
    qsort(*out, n, sizeof **out, by_name);
    return n;
}

/* Makes def (may be NULL) the definition of name in force, dropping the
 * previous one.  Registry lock held exclusively. */
static void def_set(coll_registry *reg, skv_slice name, coll_def *def) {
    int i = def_pos(reg, name);
    if (i >= 0) {
        coll_def *old = reg->defs[i];
        atomic_store(&old->dropping, 1);
        reg->defs[i] = reg->defs[--reg->ndefs];
        coll_release(old);
    }
    if (def) {
        if (reg->ndefs == reg->cap) {
            reg->cap = reg->cap ? 2 * reg->cap : 16;
            reg->defs = skv_realloc(reg->defs, reg->cap * sizeof *reg->defs);
        }
        reg->defs[reg->ndefs++] = def;
    }
}

/* A definition from JSON text (NULL after logging why). */
static schema *parse_definition(const char *text, size_t len, skv_slice name) {
    json_error_t jerr;
    json_t *j = json_loadb(text, len, 0, &jerr);
    schema *s = NULL;
    schema_error err;
    if (!j) {
        log_error("collection '%.*s': stored definition is not JSON: %s", (int)name.len, name.ptr, jerr.text);
    } else if (schema_parse(j, &s, &err) != SKV_OK) {
        log_error("collection '%.*s': stored definition refused: %s", (int)name.len, name.ptr, err.message);
    } else if (!skv_slice_eq(skv_slice_make(s->name, s->name_len), name)) {
        log_error("collection '%.*s': stored definition names '%s'", (int)name.len, name.ptr, s->name);
        schema_free(s);
        s = NULL;
    }
    json_decref(j);
    return s;
}

/* The definition record of name became `now` (NULL: removed).  Registry
 * lock not held (taken exclusively here). */
static void schema_record_changed(coll_registry *reg, skv_slice name, const ht_entry *now) {
    if (!schema_name_valid(name)) return;
    int b = builtin_of(name);
    schema *s = NULL;
    int builtin = 0;
    uint64_t version = 0;
    if (!now && b >= 0) {
        s = parse_definition(builtin_definitions[b], strlen(builtin_definitions[b]), name);
        builtin = 1;
    } else if (now && !skv_slice_eq_cstr(skv_slice_make(ht_entry_value(now), now->val_len), COLL_DROPPED_MARKER)) {
        s = parse_definition(ht_entry_value(now), now->val_len, name);
        version = now->version;
    }
    pthread_rwlock_wrlock(&reg->lock);
    def_set(reg, name, s ? def_new(s, ++reg->next_id, version, builtin) : NULL);
    pthread_rwlock_unlock(&reg->lock);
}

/* ---- the observer -------------------------------------------------------------------------- */

static void doc_changed(coll_registry *reg, shard *s, skv_slice key, const ht_entry *old, const ht_entry *now) {
    skv_slice coll, pk;
    if (!docidx_parse_key(key, &coll, &pk)) return;
    pthread_rwlock_rdlock(&reg->lock);
    coll_def *c = def_find(reg, coll);
    docidx_change(reg->idx[s->id], s, c ? c->s : NULL, c ? c->id : 0, coll, pk, old, now);
    pthread_rwlock_unlock(&reg->lock);
}

/* Shard observer: called under s's lock for every visible change. */
static void observe(void *arg, shard *s, const ht_entry *old, const ht_entry *now) {
    coll_registry *reg = arg;
    const ht_entry *e = now ? now : old;
    skv_slice key = skv_slice_make(ht_entry_key(e), e->key_len);
    char ns;
    uint32_t id;
    skv_slice name;
    if (!store_internal_key_parse(key, &ns, &id, &name)) return;
    if (ns == STORE_NS_DOC) doc_changed(reg, s, key, old, now);
    else if (ns == STORE_NS_SCHEMA && s->id == 0) schema_record_changed(reg, name, now);
}

/* ---- start and stop ------------------------------------------------------------------------ */

typedef struct load_ctx {
    coll_registry *reg;
    const ht_entry **docs;
    size_t ndocs, cap;
} load_ctx;

/* ht_scan visitor: definitions are applied at once (they do not touch the
 * table); documents are collected, since indexing them may touch it. */
static void load_entry(void *arg, const ht_entry *e) {
    load_ctx *c = arg;
    skv_slice key = skv_slice_make(ht_entry_key(e), e->key_len);
    char ns;
    uint32_t id;
    skv_slice name;
    if (!store_internal_key_parse(key, &ns, &id, &name)) return;
    if (ns == STORE_NS_SCHEMA) {
        schema_record_changed(c->reg, name, e);
    } else if (ns == STORE_NS_DOC) {
        if (c->ndocs == c->cap) {
            c->cap = c->cap ? 2 * c->cap : 256;
            c->docs = skv_realloc(c->docs, c->cap * sizeof *c->docs);
        }
        c->docs[c->ndocs++] = e;
    }
}

/* Indexes shard i's table and installs the observer, atomically. */
static void load_shard(coll_registry *reg, uint32_t i) {
    shard *s = store_shard(reg->st, i);
    load_ctx c = { reg, NULL, 0, 0 };
    pthread_mutex_lock(&s->lock);
    uint64_t cursor = 0;
    do {
        cursor = ht_scan(s->table, cursor, load_entry, &c);
    } while (cursor != 0);
    /* Entries stay valid while the lock is held: only lookups run now. */
    for (size_t k = 0; k < c.ndocs; k++) {
        const ht_entry *e = c.docs[k];
        if (!shard_entry_expired(e, s->clock_ms()))
            doc_changed(reg, s, skv_slice_make(ht_entry_key(e), e->key_len), NULL, e);
    }
    shard_set_observer(s, observe, reg);
    pthread_mutex_unlock(&s->lock);
    free(c.docs);
}

typedef struct orphan_ctx {
    coll_registry *reg;
    char (*names)[SCHEMA_MAX_NAME + 1];
    size_t n, cap;
} orphan_ctx;

static void note_orphan(void *arg, skv_slice coll) {
    orphan_ctx *c = arg;
    if (def_find(c->reg, coll) || coll.len > SCHEMA_MAX_NAME) return;
    for (size_t i = 0; i < c->n; i++)
        if (skv_slice_eq_cstr(coll, c->names[i])) return;
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 8;
        c->names = skv_realloc(c->names, c->cap * sizeof *c->names);
    }
    memcpy(c->names[c->n], coll.ptr, coll.len);
    c->names[c->n++][coll.len] = '\0';
}

int coll_definition_stored(coll_registry *reg, skv_slice name) {
    skv_buf key;
    skv_buf_init(&key);
    skv_slice k = coll_schema_key(&key, name);
    uint64_t h = store_key_hash(k);
    shard *s0 = store_shard(reg->st, 0);
    pthread_mutex_lock(&s0->lock);
    /* The newest state: a write waiting for the disk first (see shard.h). */
    const ht_entry *e = ht_count(s0->pending) ? ht_find(s0->pending, h, k.ptr, k.len) : NULL;
    if (!e) e = ht_find(s0->table, h, k.ptr, k.len);
    int stored = e && !(e->flags & SHARD_TOMBSTONE) &&
                 !skv_slice_eq_cstr(skv_slice_make(ht_entry_value(e), e->val_len), COLL_DROPPED_MARKER);
    pthread_mutex_unlock(&s0->lock);
    skv_buf_free(&key);
    return stored;
}

/* Deletes the documents of collections that have no definition (left by
 * a drop that a crash interrupted). */
static void delete_orphans(coll_registry *reg) {
    orphan_ctx c = { reg, NULL, 0, 0 };
    for (uint32_t i = 0; i < reg->st->nshards; i++) {
        shard *s = store_shard(reg->st, i);
        pthread_mutex_lock(&s->lock);
        pthread_rwlock_rdlock(&reg->lock);
        docidx_each_collection(reg->idx[i], note_orphan, &c);
        pthread_rwlock_unlock(&reg->lock);
        pthread_mutex_unlock(&s->lock);
    }
    for (size_t k = 0; k < c.n; k++) {
        skv_slice name = skv_slice_cstr(c.names[k]);
        if (coll_definition_stored(reg, name)) { /* it failed to load: never delete its data */
            log_error("collection '%s': keeping its documents although its stored definition could not be loaded",
                      c.names[k]);
            continue;
        }
        size_t n = coll_delete_documents(reg, name, NULL);
        log_info("deleted %zu documents of the dropped collection '%s'", n, c.names[k]);
    }
    free(c.names);
}

int coll_registry_new(store *st, const skv_config *cfg, coll_registry **out) {
    (void)cfg;
    coll_registry *reg = skv_calloc(1, sizeof *reg);
    reg->st = st;
    pthread_rwlock_init(&reg->lock, NULL);
    for (size_t i = 0; i < COLL_STRIPES; i++) pthread_mutex_init(&reg->stripes[i], NULL);
    reg->idx = skv_calloc(st->nshards, sizeof *reg->idx);
    for (uint32_t i = 0; i < st->nshards; i++) reg->idx[i] = docidx_new(i);
    for (size_t b = 0; b < NBUILTINS; b++) schema_record_changed(reg, skv_slice_cstr(builtin_names[b]), NULL);
    if (reg->ndefs != NBUILTINS) {
        log_error("the built-in collection definitions do not parse");
        coll_registry_free(reg);
        return SKV_EINVAL;
    }
    /* Shard 0 first: it holds the definitions the other shards' documents follow. */
    for (uint32_t i = 0; i < st->nshards; i++) load_shard(reg, i);
    delete_orphans(reg);
    pthread_rwlock_rdlock(&reg->lock);
    log_info("collections: %zu defined", reg->ndefs);
    pthread_rwlock_unlock(&reg->lock);
    *out = reg;
    return SKV_OK;
}

void coll_registry_free(coll_registry *reg) {
    if (!reg) return;
    for (uint32_t i = 0; i < reg->st->nshards; i++) {
        shard *s = store_shard(reg->st, i);
        pthread_mutex_lock(&s->lock);
        if (s->observer == observe) shard_set_observer(s, NULL, NULL);
        pthread_mutex_unlock(&s->lock);
        docidx_free(reg->idx[i]);
    }
    free(reg->idx);
    for (size_t i = 0; i < reg->ndefs; i++) coll_release(reg->defs[i]);
    free(reg->defs);
    for (size_t i = 0; i < COLL_STRIPES; i++) pthread_mutex_destroy(&reg->stripes[i]);
    pthread_rwlock_destroy(&reg->lock);
    free(reg);
}

/* ---- deleting a collection's documents ----------------------------------------------------- */

/* 1 when e is a document of coll (ht_scan over the pending table). */
typedef struct pending_ctx {
    skv_slice coll;
    size_t n;
} pending_ctx;

static void count_pending(void *arg, const ht_entry *e) {
    pending_ctx *c = arg;
    skv_slice coll, pk;
    if (docidx_parse_key(skv_slice_make(ht_entry_key(e), e->key_len), &coll, &pk) && skv_slice_eq(coll, c->coll))
        c->n++;
}

/* Documents of coll waiting for the disk on s (lock held).  Reads the
 * shard's pending table, which holds exactly the writes not yet visible. */
static size_t pending_documents(shard *s, skv_slice coll) {
    pending_ctx c = { coll, 0 };
    if (ht_count(s->pending) == 0) return 0;
    uint64_t cursor = 0;
    do {
        cursor = ht_scan(s->pending, cursor, count_pending, &c);
    } while (cursor != 0);
    return c.n;
}

size_t coll_delete_documents(coll_registry *reg, skv_slice name, size_t *pending) {
    size_t deleted = 0, waiting = 0;
    skv_buf keys, key;
    skv_buf_init(&keys);
    skv_buf_init(&key);
    for (uint32_t i = 0; i < reg->st->nshards; i++) {
        shard *s = store_shard(reg->st, i);
        skv_buf_reset(&keys);
        pthread_mutex_lock(&s->lock);
        size_t n = docidx_keys(reg->idx[i], name, SIZE_MAX, &keys);
        waiting += pending_documents(s, name);
        pthread_mutex_unlock(&s->lock);
        size_t off = 0;
        for (size_t k = 0; k < n; k++) {
            uint32_t len;
            memcpy(&len, keys.data + off, sizeof len);
            skv_slice pk = skv_slice_make(keys.data + off + sizeof len, len);
            off += sizeof len + len;
            shard_write wr = { 0 };
            wr.op = SHARD_OP_DELETE;
            wr.key = docidx_doc_key(&key, i, name, pk);
            wr.async = 1;
            shard_result res;
            if (shard_apply(s, store_key_hash(wr.key), &wr, &res) == SKV_OK) deleted++;
        }
    }
    skv_buf_free(&keys);
    skv_buf_free(&key);
    if (pending) *pending = waiting;
    return deleted;
}
