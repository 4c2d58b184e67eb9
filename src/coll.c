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
 * Drops.  A drop (coll_http.c) only writes the definition's removal (a
 * built-in's dropped marker).  When the observer sees that removal become
 * visible — durable, under --fsync always — the registry queues a cleanup
 * job {name, seqs[i] = shard i's last seq}.  The drop's gate stopped the
 * collection's document writes before the removal was written, so every
 * document of the dropped definition has a version <= seqs[i] on its
 * shard i (written, or at least sequenced, before), while every document
 * of a later definition of the same name has a greater one (it can only be
 * written once that definition is in force, after the job was queued).
 * coll_maintain (the sweeper thread) walks each shard's primary index of
 * the name from a cursor and deletes the documents with version <= seqs[i]
 * (a delete conditional on that very version, logged, not waiting for the
 * disk); a job ends after one full pass over every shard finds no such
 * document visible and none waiting for the disk (those are waited for:
 * they become visible, then are deleted, or their write fails).  Jobs of
 * one name merge (the later seqs cover the earlier).  While a job of a name
 * runs, that name cannot be defined again (coll_busy: 409 collection_busy)
 * so a new collection never shows the old documents.
 *
 * A drop whose removal fails to reach the disk (507, 503) leaves the
 * definition current with its dropping flag set; the definition's
 * drop_version names the removal, and when no write of the definition
 * record waits for the disk any more (settle_drops, from lookups and
 * coll_maintain) the flag is cleared: the collection is usable again.
 *
 * Start (coll_registry_new, after recovery, before the node is ready): the
 * built-ins are installed, shard 0's definition records read, then each
 * shard's table is scanned into its docidx and the observer installed,
 * under that shard's lock, so no change is missed or seen twice.  Documents
 * of collections that no longer exist (a cleanup a crash cut short, or
 * deletes lost with it) get a cleanup job.  Jobs live in memory only.
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
#define CLEANUP_DELETES 512   /* deletes per job per shard per coll_maintain call */
#define CLEANUP_VISITS 4096   /* documents a job looks at per shard per call (bounds the lock hold) */

/* One shard's progress in a cleanup job (coll_maintain's only). */
typedef struct job_shard {
    skv_buf after;           /* the pass resumes after this primary key text */
    int has_after;
    size_t found;            /* documents to delete seen by this pass so far */
    int clean;               /* a full pass found none, and none waiting for the disk */
} job_shard;

/* The cleanup of a dropped collection's documents (see the top).  name,
 * seqs and gen under the registry lock; the rest is coll_maintain's. */
typedef struct coll_job {
    char name[SCHEMA_MAX_NAME + 1];
    size_t name_len;
    uint64_t *seqs;          /* [nshards]: documents with version <= seqs[i] on shard i are deleted */
    uint64_t gen;            /* bumped when seqs grow (a later drop of the name merged in) */
    uint64_t *work;          /* [nshards]: the seqs the current passes use */
    uint64_t work_gen;       /* gen of work (0: not started) */
    job_shard *sh;           /* [nshards] */
    size_t deleted;
    int warned;              /* a delete was refused (full disk...): logged once */
} coll_job;

struct coll_registry {
    store *st;
    pthread_rwlock_t lock;   /* defs, ndefs, next_id, jobs */
    coll_def **defs;         /* [ndefs] in force (COLL_MAX is checked by defines, not here) */
    size_t ndefs, cap;
    uint64_t next_id;
    coll_job **jobs;         /* [njobs] cleanup jobs, at most one per name */
    size_t njobs, jobs_cap;
    docidx **idx;            /* [nshards]: idx[i] under shard i's lock */
    pthread_mutex_t stripes[COLL_STRIPES];
};

static void job_add(coll_registry *reg, skv_slice name, const shard *held);
static void job_free(coll_job *j, uint32_t nshards);
static void settle_drops(coll_registry *reg);

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
    atomic_init(&c->drop_version, 0);
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

/* The current, not dropping, definition of name with a reference, or
 * NULL; *unsettled = 1 when it is dropping with its removal written (a
 * failed removal may be settled). */
static coll_def *lookup(coll_registry *reg, skv_slice name, int *unsettled) {
    pthread_rwlock_rdlock(&reg->lock);
    coll_def *c = def_find(reg, name);
    *unsettled = 0;
    if (c && atomic_load(&c->dropping)) {
        *unsettled = atomic_load(&c->drop_version) != 0;
        c = NULL;
    }
    if (c) atomic_fetch_add(&c->refs, 1);
    pthread_rwlock_unlock(&reg->lock);
    return c;
}

coll_def *coll_lookup(coll_registry *reg, skv_slice name) {
    int unsettled;
    coll_def *c = lookup(reg, name, &unsettled);
    if (unsettled) {
        /* A drop's removal was written: if it failed, the collection is back now. */
        settle_drops(reg);
        c = lookup(reg, name, &unsettled);
    }
    return c;
}

static int by_name(const void *a, const void *b) {
    const coll_def *x = *(coll_def *const *)a, *y = *(coll_def *const *)b;
    return strcmp(x->s->name, y->s->name);
}

size_t coll_list(coll_registry *reg, coll_def ***out) {
    size_t n = 0;
    settle_drops(reg);
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

/* The definition record of name became `now` (NULL: removed), seen by the
 * observer of shard s0 (lock held), or read by the start (s0 NULL).  A
 * definition in force that the observer sees removed (record deleted, or a
 * built-in's marker written) gets its documents' cleanup job.  Registry
 * lock not held (taken exclusively here). */
static void schema_record_changed(coll_registry *reg, skv_slice name, const ht_entry *now, const shard *s0) {
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
    int removal = !now || skv_slice_eq_cstr(skv_slice_make(ht_entry_value(now), now->val_len), COLL_DROPPED_MARKER);
    pthread_rwlock_wrlock(&reg->lock);
    int was_defined = def_pos(reg, name) >= 0;
    def_set(reg, name, s ? def_new(s, ++reg->next_id, version, builtin) : NULL);
    if (s0 && removal && was_defined && !s) {
        job_add(reg, name, s0);
        log_info("collection '%.*s' dropped; deleting its documents in the background", (int)name.len, name.ptr);
    }
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
    else if (ns == STORE_NS_SCHEMA && s->id == 0) schema_record_changed(reg, name, now, s);
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
        schema_record_changed(c->reg, name, e, NULL);
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

/* Queues the cleanup of the documents of collections that have no
 * definition (left by a cleanup that a crash cut short, or whose deletes
 * the crash lost).  Before the sweeper starts: the job runs once it does. */
static void queue_orphans(coll_registry *reg) {
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
        pthread_rwlock_wrlock(&reg->lock);
        job_add(reg, name, NULL);
        pthread_rwlock_unlock(&reg->lock);
        log_info("collection '%s' has documents but no definition (an unfinished drop); deleting them in the "
                 "background",
                 c.names[k]);
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
    for (size_t b = 0; b < NBUILTINS; b++) schema_record_changed(reg, skv_slice_cstr(builtin_names[b]), NULL, NULL);
    if (reg->ndefs != NBUILTINS) {
        log_error("the built-in collection definitions do not parse");
        coll_registry_free(reg);
        return SKV_EINVAL;
    }
    /* Shard 0 first: it holds the definitions the other shards' documents follow. */
    for (uint32_t i = 0; i < st->nshards; i++) load_shard(reg, i);
    queue_orphans(reg);
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
    for (size_t i = 0; i < reg->njobs; i++) job_free(reg->jobs[i], reg->st->nshards);
    free(reg->jobs);
    for (size_t i = 0; i < reg->ndefs; i++) coll_release(reg->defs[i]);
    free(reg->defs);
    for (size_t i = 0; i < COLL_STRIPES; i++) pthread_mutex_destroy(&reg->stripes[i]);
    pthread_rwlock_destroy(&reg->lock);
    free(reg);
}

/* ---- cleanup jobs -------------------------------------------------------------------------- */

static void job_free(coll_job *j, uint32_t nshards) {
    if (!j) return;
    for (uint32_t i = 0; i < nshards; i++) skv_buf_free(&j->sh[i].after);
    free(j->sh);
    free(j->seqs);
    free(j->work);
    free(j);
}

/* The job of name (registry lock held), or NULL. */
static coll_job *job_find(const coll_registry *reg, skv_slice name) {
    for (size_t i = 0; i < reg->njobs; i++)
        if (reg->jobs[i]->name_len == name.len && memcmp(reg->jobs[i]->name, name.ptr, name.len) == 0)
            return reg->jobs[i];
    return NULL;
}

/* Queues (or widens) the cleanup job of name with every shard's current
 * seq; held: a shard whose lock the caller holds (its seq is read
 * directly: its write in progress may not be published yet), or NULL.
 * Registry lock held exclusively. */
static void job_add(coll_registry *reg, skv_slice name, const shard *held) {
    uint32_t n = reg->st->nshards;
    coll_job *j = job_find(reg, name);
    if (!j) {
        j = skv_calloc(1, sizeof *j);
        memcpy(j->name, name.ptr, name.len);
        j->name_len = name.len;
        j->seqs = skv_calloc(n, sizeof *j->seqs);
        j->work = skv_calloc(n, sizeof *j->work);
        j->sh = skv_calloc(n, sizeof *j->sh);
        for (uint32_t i = 0; i < n; i++) skv_buf_init(&j->sh[i].after);
        if (reg->njobs == reg->jobs_cap) {
            reg->jobs_cap = reg->jobs_cap ? 2 * reg->jobs_cap : 4;
            reg->jobs = skv_realloc(reg->jobs, reg->jobs_cap * sizeof *reg->jobs);
        }
        reg->jobs[reg->njobs++] = j;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint64_t seq = held && held->id == i ? held->seq : shard_seq(store_shard(reg->st, i));
        if (seq > j->seqs[i]) j->seqs[i] = seq;
    }
    j->gen++;
}

size_t coll_cleanup_jobs(coll_registry *reg) {
    pthread_rwlock_rdlock(&reg->lock);
    size_t n = reg->njobs;
    pthread_rwlock_unlock(&reg->lock);
    return n;
}

typedef struct pending_ctx {
    skv_slice coll;
    uint64_t max_version;
    size_t n;
} pending_ctx;

static void count_pending(void *arg, const ht_entry *e) {
    pending_ctx *c = arg;
    skv_slice coll, pk;
    if (e->version <= c->max_version &&
        docidx_parse_key(skv_slice_make(ht_entry_key(e), e->key_len), &coll, &pk) && skv_slice_eq(coll, c->coll))
        c->n++;
}

/* Writes (puts and deletes) of documents of coll with version <=
 * max_version waiting for the disk on s (lock held).  Reads the shard's
 * pending table, which holds exactly the writes not yet visible. */
static size_t pending_documents(shard *s, skv_slice coll, uint64_t max_version) {
    pending_ctx c = { coll, max_version, 0 };
    if (ht_count(s->pending) == 0) return 0;
    uint64_t cursor = 0;
    do {
        cursor = ht_scan(s->pending, cursor, count_pending, &c);
    } while (cursor != 0);
    return c.n;
}

/* What one step of a job collects under the shard lock. */
typedef struct collect_ctx {
    uint64_t max_version;
    skv_buf *out;            /* per document: u32 length, primary key text, u64 version (native order) */
    size_t n, visited;
    skv_buf last;            /* the last primary key visited */
} collect_ctx;

static int collect_one(void *arg, skv_slice pk, const ht_entry *doc) {
    collect_ctx *c = arg;
    c->visited++;
    if (doc->version <= c->max_version) {
        uint32_t len = (uint32_t)pk.len;
        uint64_t version = doc->version;
        skv_buf_append(c->out, &len, sizeof len);
        skv_buf_append(c->out, pk.ptr, pk.len);
        skv_buf_append(c->out, &version, sizeof version);
        c->n++;
    }
    skv_buf_reset(&c->last);
    skv_buf_append(&c->last, pk.ptr, pk.len);
    return c->n >= CLEANUP_DELETES || c->visited >= CLEANUP_VISITS;
}

/* Deletes the collected documents of j on shard i, each only while it
 * still has the version seen (a later definition's document of the same
 * id is never touched).  Logged, not waiting for the disk. */
static void job_delete(coll_registry *reg, coll_job *j, uint32_t i, const skv_buf *docs, size_t n, skv_buf *key) {
    shard *s = store_shard(reg->st, i);
    skv_slice name = skv_slice_make(j->name, j->name_len);
    size_t off = 0;
    for (size_t k = 0; k < n; k++) {
        uint32_t len;
        uint64_t version;
        memcpy(&len, docs->data + off, sizeof len);
        skv_slice pk = skv_slice_make(docs->data + off + sizeof len, len);
        memcpy(&version, docs->data + off + sizeof len + len, sizeof version);
        off += sizeof len + len + sizeof version;
        shard_write wr = { 0 };
        wr.op = SHARD_OP_DELETE;
        wr.key = docidx_doc_key(key, i, name, pk);
        wr.cond = SHARD_COND_VERSION;
        wr.expected_version = version;
        wr.async = 1;
        shard_result res;
        int rc = shard_apply(s, store_key_hash(wr.key), &wr, &res);
        if (rc == SKV_OK) {
            j->deleted++;
        } else if (rc != SKV_EPRECOND && rc != SKV_ENOTFOUND) {
            /* The shard refuses writes (full disk, failed log): the next pass tries again. */
            if (!j->warned)
                log_warn("collection '%s': cannot delete the documents of the dropped collection on shard %u yet "
                         "(%s); retrying",
                         j->name, i, skv_strerror(rc));
            j->warned = 1;
            return;
        }
    }
}

/* One bounded step of job j on shard i: the next documents of its pass. */
static void job_step(coll_registry *reg, coll_job *j, uint32_t i, skv_buf *docs, skv_buf *key) {
    shard *s = store_shard(reg->st, i);
    job_shard *js = &j->sh[i];
    skv_slice name = skv_slice_make(j->name, j->name_len);
    collect_ctx c = { j->work[i], docs, 0, 0, { NULL, 0, 0 } };
    docidx_query q = { name, NULL, 0, -1, { "", 0 }, skv_slice_make(js->after.data ? js->after.data : "", js->after.len),
                       js->has_after };
    skv_buf_reset(docs);
    pthread_mutex_lock(&s->lock);
    int stopped = docidx_visit(reg->idx[i], s, &q, collect_one, &c);
    size_t waiting = stopped ? 0 : pending_documents(s, name, j->work[i]);
    pthread_mutex_unlock(&s->lock);
    job_delete(reg, j, i, docs, c.n, key);
    js->found += c.n;
    if (stopped) {
        skv_buf_reset(&js->after);
        skv_buf_append(&js->after, c.last.data, c.last.len);
        js->has_after = 1;
    } else if (js->found == 0 && waiting == 0) {
        js->clean = 1;
    } else {
        /* Another pass: what this one deleted must be gone, what waited for the disk settled. */
        js->found = 0;
        js->has_after = 0;
    }
    skv_buf_free(&c.last);
}

/* Clears the dropping flag of current definitions whose drop's removal
 * was written but is no longer waiting for the disk: it failed (had it
 * succeeded, the observer would have removed the definition).  Takes
 * shard 0's lock, then the registry lock: neither the commit nor the
 * observer can move in between. */
static void settle_drops(coll_registry *reg) {
    int any = 0;
    pthread_rwlock_rdlock(&reg->lock);
    for (size_t i = 0; i < reg->ndefs && !any; i++)
        any = atomic_load(&reg->defs[i]->dropping) && atomic_load(&reg->defs[i]->drop_version) != 0;
    pthread_rwlock_unlock(&reg->lock);
    if (!any) return;
    shard *s0 = store_shard(reg->st, 0);
    skv_buf key;
    skv_buf_init(&key);
    pthread_mutex_lock(&s0->lock);
    pthread_rwlock_rdlock(&reg->lock);
    for (size_t i = 0; i < reg->ndefs; i++) {
        coll_def *c = reg->defs[i];
        if (!atomic_load(&c->dropping) || atomic_load(&c->drop_version) == 0) continue;
        skv_slice k = coll_schema_key(&key, skv_slice_make(c->s->name, c->s->name_len));
        if (ht_count(s0->pending) && ht_find(s0->pending, store_key_hash(k), k.ptr, k.len)) continue; /* in flight */
        log_warn("collection '%s': its drop was not written (the log write failed); the collection stays", c->s->name);
        atomic_store(&c->drop_version, 0);
        atomic_store(&c->dropping, 0);
    }
    pthread_rwlock_unlock(&reg->lock);
    pthread_mutex_unlock(&s0->lock);
    skv_buf_free(&key);
}

void coll_drop_abandon(coll_registry *reg, coll_def *c) {
    pthread_rwlock_rdlock(&reg->lock);
    if (def_find(reg, skv_slice_make(c->s->name, c->s->name_len)) == c) {
        atomic_store(&c->drop_version, 0);
        atomic_store(&c->dropping, 0);
    }
    pthread_rwlock_unlock(&reg->lock);
}

int coll_busy(coll_registry *reg, skv_slice name) {
    pthread_rwlock_rdlock(&reg->lock);
    coll_def *c = def_find(reg, name);
    int current = c && !atomic_load(&c->dropping);
    int busy = (c && !current) || job_find(reg, name);
    pthread_rwlock_unlock(&reg->lock);
    if (busy || current) return busy; /* current: the define's write answers 409 collection_exists */
    size_t left = 0;
    for (uint32_t i = 0; i < reg->st->nshards; i++) {
        shard *s = store_shard(reg->st, i);
        pthread_mutex_lock(&s->lock);
        left += docidx_count(reg->idx[i], name) + pending_documents(s, name, UINT64_MAX);
        pthread_mutex_unlock(&s->lock);
    }
    if (!left) return 0;
    /* Documents without a definition and without a job: all of an older
     * definition, since a newer one must be in force before any is written. */
    pthread_rwlock_wrlock(&reg->lock);
    c = def_find(reg, name);
    busy = !c || atomic_load(&c->dropping);
    if (!c && !job_find(reg, name)) {
        job_add(reg, name, NULL);
        log_warn("collection '%.*s': %zu documents of an earlier collection of this name remain; deleting them",
                 (int)name.len, name.ptr, left);
    }
    pthread_rwlock_unlock(&reg->lock);
    return busy;
}

void coll_maintain(void *arg) {
    coll_registry *reg = arg;
    uint32_t nshards = reg->st->nshards;
    settle_drops(reg);
    pthread_rwlock_rdlock(&reg->lock);
    size_t n = reg->njobs;
    coll_job **jobs = n ? skv_malloc(n * sizeof *jobs) : NULL;
    for (size_t k = 0; k < n; k++) {
        coll_job *j = jobs[k] = reg->jobs[k];
        if (j->work_gen == j->gen) continue;
        /* New, or widened by a later drop: every shard starts a pass with the new seqs. */
        memcpy(j->work, j->seqs, nshards * sizeof *j->work);
        j->work_gen = j->gen;
        for (uint32_t i = 0; i < nshards; i++) {
            j->sh[i].has_after = 0;
            j->sh[i].found = 0;
            j->sh[i].clean = 0;
        }
    }
    pthread_rwlock_unlock(&reg->lock);
    if (!n) return;
    skv_buf docs, key;
    skv_buf_init(&docs);
    skv_buf_init(&key);
    size_t ndone = 0;
    for (size_t k = 0; k < n; k++) {
        coll_job *j = jobs[k];
        int clean = 1;
        for (uint32_t i = 0; i < nshards; i++) {
            if (!j->sh[i].clean) job_step(reg, j, i, &docs, &key);
            clean &= j->sh[i].clean;
        }
        if (clean) jobs[ndone++] = j;
    }
    skv_buf_free(&docs);
    skv_buf_free(&key);
    /* Finished jobs leave, unless a later drop widened them meanwhile. */
    size_t nfree = 0;
    pthread_rwlock_wrlock(&reg->lock);
    for (size_t k = 0; k < ndone; k++) {
        coll_job *j = jobs[k];
        if (j->gen != j->work_gen) continue;
        for (size_t p = 0; p < reg->njobs; p++)
            if (reg->jobs[p] == j) {
                reg->jobs[p] = reg->jobs[--reg->njobs];
                break;
            }
        jobs[nfree++] = j;
    }
    pthread_rwlock_unlock(&reg->lock);
    for (size_t k = 0; k < nfree; k++) {
        log_info("collection '%s': deleted the %zu remaining documents of the dropped collection", jobs[k]->name,
                 jobs[k]->deleted);
        job_free(jobs[k], nshards);
    }
    free(jobs);
}
