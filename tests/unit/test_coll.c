/*
 * Unit tests for the collection registry (coll.c) on memory-only shards
 * (and shards with a log whose batches the test commits or fails by hand,
 * for writes waiting for the disk): what coll_registry_new loads from the
 * tables (stored definitions, the built-in users, a dropped marker, a
 * definition that does not parse), the documents it indexes, the cleanup
 * jobs it queues for orphans (and the documents it must keep), how the
 * observer keeps definitions and indexes following the tables afterwards,
 * the cleanup of a dropped collection's documents (coll_maintain: bounded
 * steps, waiting for pending writes, never touching a later definition's
 * documents), a drop whose removal fails, and placement of shard-key texts
 * through the ring.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "coll_internal.h"
#include "err.h"
#include "log.h"
#include "store.h"

#define NSHARDS 3

static store *new_store(int hash) {
    ring_config rc = { RING_STRATEGY_RING, hash, NSHARDS, 100, 0 };
    store *st = NULL;
    assert_int_equal(store_new(&rc, &st), SKV_OK);
    return st;
}

/* Applies a write (waiting for the disk on a shard with a sync log);
 * returns its version. */
static uint64_t apply(store *st, uint32_t shard_id, int op, skv_slice key, const char *value) {
    shard_write w = { 0 };
    w.op = op;
    w.key = key;
    w.value = skv_slice_cstr(value ? value : "");
    w.flags = SHARD_VAL_JSON;
    shard_result res;
    assert_int_equal(shard_apply(store_shard(st, shard_id), store_key_hash(key), &w, &res), SKV_OK);
    return res.version;
}

static uint64_t put_definition(store *st, const char *name, const char *json) {
    skv_buf k;
    skv_buf_init(&k);
    uint64_t v = apply(st, 0, json ? SHARD_OP_PUT : SHARD_OP_DELETE, coll_schema_key(&k, skv_slice_cstr(name)), json);
    skv_buf_free(&k);
    return v;
}

/* A log that the test drives: writes wait for the disk until
 * commit_batch() or fail_batch(). */
static void no_kick(void *arg, shard *s) { (void)arg, (void)s; }

static void attach_sync_log(store *st, uint32_t shard_id) {
    shard_attach_log(store_shard(st, shard_id), 1, no_kick, NULL);
}

static void end_batch(store *st, uint32_t shard_id, int ok) {
    shard *s = store_shard(st, shard_id);
    skv_buf batch;
    skv_buf_init(&batch);
    uint64_t last;
    shard_waiter *w;
    pthread_mutex_lock(&s->lock);
    shard_take_batch(s, &batch, &last, &w);
    if (ok) shard_commit_batch(s, &batch);
    else shard_discard_pending(s, &batch);
    pthread_mutex_unlock(&s->lock);
    assert_null(w);
    skv_buf_free(&batch);
}

static void commit_batch(store *st, uint32_t shard_id) { end_batch(st, shard_id, 1); }
static void fail_batch(store *st, uint32_t shard_id) { end_batch(st, shard_id, 0); }

/* Runs coll_maintain until no cleanup job is left (at most max calls);
 * returns the number of calls. */
static int maintain_until_idle(coll_registry *reg, int max) {
    int calls = 0;
    while (coll_cleanup_jobs(reg) > 0) {
        assert_true(calls < max);
        coll_maintain(reg);
        calls++;
    }
    return calls;
}

static void put_doc(store *st, uint32_t shard_id, const char *coll, const char *pk, const char *json) {
    skv_buf k;
    skv_buf_init(&k);
    apply(st, shard_id, json ? SHARD_OP_PUT : SHARD_OP_DELETE,
          docidx_doc_key(&k, shard_id, skv_slice_cstr(coll), skv_slice_cstr(pk)), json);
    skv_buf_free(&k);
}

static size_t docs(coll_registry *reg, const char *coll) {
    size_t n = 0;
    store *st = coll_store(reg);
    for (uint32_t i = 0; i < st->nshards; i++) {
        shard *s = store_shard(st, i);
        pthread_mutex_lock(&s->lock);
        n += docidx_count(coll_shard_index(reg, i), skv_slice_cstr(coll));
        pthread_mutex_unlock(&s->lock);
    }
    return n;
}

static int defined(coll_registry *reg, const char *name) {
    coll_def *c = coll_lookup(reg, skv_slice_cstr(name));
    coll_release(c);
    return c != NULL;
}

/* The value of a document on a shard (static buffer), or NULL. */
static const char *doc_value(store *st, uint32_t shard_id, const char *coll, const char *pk) {
    static char out[256];
    skv_buf k;
    skv_buf_init(&k);
    skv_slice key = docidx_doc_key(&k, shard_id, skv_slice_cstr(coll), skv_slice_cstr(pk));
    shard *s = store_shard(st, shard_id);
    pthread_mutex_lock(&s->lock);
    const ht_entry *e = ht_find(s->table, store_key_hash(key), key.ptr, key.len);
    if (e) {
        size_t n = e->val_len < sizeof out - 1 ? e->val_len : sizeof out - 1;
        memcpy(out, ht_entry_value(e), n);
        out[n] = '\0';
    }
    pthread_mutex_unlock(&s->lock);
    skv_buf_free(&k);
    return e ? out : NULL;
}

static const schema *def_of(void *arg, skv_slice coll, uint64_t *id) {
    coll_def *c = coll_lookup(arg, coll);
    if (!c) return NULL;
    *id = c->id;
    coll_release(c); /* the registry keeps its reference: single-threaded test */
    return c->s;
}

/* Every shard's and every index's invariants. */
static void check_all(coll_registry *reg) {
    store *st = coll_store(reg);
    for (uint32_t i = 0; i < st->nshards; i++) {
        shard *s = store_shard(st, i);
        assert_true(shard_check(s));
        pthread_mutex_lock(&s->lock);
        int ok = docidx_check(coll_shard_index(reg, i), s, def_of, reg);
        pthread_mutex_unlock(&s->lock);
        assert_true(ok);
    }
}

static const char books[] = "{\"name\":\"books\",\"primary_key\":\"isbn\",\"indexes\":[\"author\"]}";

static void test_fresh_node_has_users_only(void **state) {
    (void)state;
    store *st = new_store(RING_HASH_XXH3);
    coll_registry *reg = NULL;
    assert_int_equal(coll_registry_new(st, NULL, &reg), SKV_OK);
    assert_true(defined(reg, "users"));
    assert_false(defined(reg, "books"));
    coll_def **all;
    assert_int_equal(coll_list(reg, &all), 1);
    assert_true(all[0]->builtin);
    assert_int_equal(all[0]->version, 0);
    coll_release(all[0]);
    free(all);
    uint64_t keys, bytes;
    store_totals(st, &keys, &bytes);
    assert_int_equal(keys, 0); /* nothing stored for the built-in */
    assert_true(coll_is_builtin(skv_slice_cstr("users")));
    assert_false(coll_is_builtin(skv_slice_cstr("books")));
    coll_registry_free(reg);
    for (uint32_t i = 0; i < NSHARDS; i++) assert_null(store_shard(st, i)->observer);
    store_free(st);
}

static void test_load_from_tables(void **state) {
    (void)state;
    store *st = new_store(RING_HASH_XXH3);
    put_definition(st, "books", books);
    put_definition(st, "users", COLL_DROPPED_MARKER);
    put_definition(st, "broken", "{\"name\":\"broken\"}"); /* no primary_key: cannot load */
    put_doc(st, 1, "books", "b1", "{\"isbn\":\"b1\",\"author\":\"x\"}");
    put_doc(st, 2, "books", "b2", "{\"isbn\":\"b2\",\"author\":\"x\"}");
    put_doc(st, 2, "users", "7", "{\"user_id\":7}");       /* users was dropped: an orphan */
    put_doc(st, 0, "gone", "g", "{\"id\":\"g\"}");          /* no definition at all: an orphan */
    put_doc(st, 1, "broken", "k", "{\"id\":\"k\"}");        /* its definition failed: kept */
    coll_registry *reg = NULL;
    assert_int_equal(coll_registry_new(st, NULL, &reg), SKV_OK);
    assert_true(defined(reg, "books"));
    assert_false(defined(reg, "users"));
    assert_false(defined(reg, "broken"));
    /* The orphans are not deleted by the start: they get cleanup jobs. */
    assert_int_equal(coll_cleanup_jobs(reg), 2);
    assert_int_equal(docs(reg, "users"), 1);
    assert_int_equal(docs(reg, "gone"), 1);
    assert_true(coll_busy(reg, skv_slice_cstr("gone")));
    assert_true(coll_busy(reg, skv_slice_cstr("users")));
    maintain_until_idle(reg, 10);
    assert_false(coll_busy(reg, skv_slice_cstr("gone")));
    coll_def *b = coll_lookup(reg, skv_slice_cstr("books"));
    assert_non_null(b);
    assert_int_equal(b->version, 1); /* the record's version (first write of shard 0) */
    assert_false(b->builtin);
    coll_release(b);
    assert_int_equal(docs(reg, "books"), 2);
    assert_int_equal(docs(reg, "users"), 0);
    assert_int_equal(docs(reg, "gone"), 0);
    assert_int_equal(docs(reg, "broken"), 1);
    assert_true(coll_definition_stored(reg, skv_slice_cstr("books")));
    assert_true(coll_definition_stored(reg, skv_slice_cstr("broken")));
    assert_false(coll_definition_stored(reg, skv_slice_cstr("users"))); /* a marker is no definition */
    assert_false(coll_definition_stored(reg, skv_slice_cstr("gone")));
    /* Keys left: 3 definition records, 2 books, the broken collection's document. */
    uint64_t keys, bytes;
    store_totals(st, &keys, &bytes);
    assert_int_equal(keys, 6);
    coll_registry_free(reg);
    store_free(st);
}

static void test_observer_follows_definitions_and_documents(void **state) {
    (void)state;
    store *st = new_store(RING_HASH_XXH3);
    coll_registry *reg = NULL;
    assert_int_equal(coll_registry_new(st, NULL, &reg), SKV_OK);
    put_definition(st, "books", books);
    assert_true(defined(reg, "books"));
    put_doc(st, 1, "books", "b1", "{\"isbn\":\"b1\",\"author\":\"x\"}");
    put_doc(st, 1, "books", "b2", "{\"isbn\":\"b2\"}");
    assert_int_equal(docs(reg, "books"), 2);
    put_doc(st, 1, "books", "b2", NULL);
    assert_int_equal(docs(reg, "books"), 1);
    /* A dropped marker removes the built-in; removing the marker brings it back. */
    coll_def *old = coll_lookup(reg, skv_slice_cstr("users"));
    put_definition(st, "users", COLL_DROPPED_MARKER);
    assert_false(defined(reg, "users"));
    assert_true(atomic_load(&old->dropping)); /* holders of the old definition see it dropped */
    coll_release(old);
    skv_buf k;
    skv_buf_init(&k);
    apply(st, 0, SHARD_OP_DELETE, coll_schema_key(&k, skv_slice_cstr("users")), NULL);
    assert_true(defined(reg, "users"));
    /* Dropping users queued a cleanup (nothing to delete). */
    assert_int_equal(maintain_until_idle(reg, 10) > 0, 1);
    /* Deleting a definition record removes the collection; its documents go in the background. */
    apply(st, 0, SHARD_OP_DELETE, coll_schema_key(&k, skv_slice_cstr("books")), NULL);
    assert_false(defined(reg, "books"));
    assert_int_equal(coll_cleanup_jobs(reg), 1);
    assert_true(coll_busy(reg, skv_slice_cstr("books")));
    assert_int_equal(docs(reg, "books"), 1);
    maintain_until_idle(reg, 10);
    assert_int_equal(docs(reg, "books"), 0);
    assert_false(coll_busy(reg, skv_slice_cstr("books")));
    skv_buf_free(&k);
    check_all(reg);
    coll_registry_free(reg);
    store_free(st);
}

/* The cleanup deletes the documents the dropped definition had, never one
 * of a definition of the same name made afterwards, even with the same id
 * and before the cleanup ran. */
static void test_cleanup_spares_a_later_definitions_documents(void **state) {
    (void)state;
    store *st = new_store(RING_HASH_XXH3);
    coll_registry *reg = NULL;
    assert_int_equal(coll_registry_new(st, NULL, &reg), SKV_OK);
    put_definition(st, "books", books);
    const char *ids[] = { "b1", "b2", "b3", "b4", "b5", "b6" };
    for (uint32_t k = 0; k < 6; k++) put_doc(st, k % NSHARDS, "books", ids[k], "{\"isbn\":\"old\",\"author\":\"x\"}");
    put_definition(st, "books", NULL); /* the drop */
    assert_int_equal(coll_cleanup_jobs(reg), 1);
    /* Defined again at once (a race the routes make unlikely, not impossible). */
    put_definition(st, "books", books);
    assert_true(defined(reg, "books"));
    assert_true(coll_busy(reg, skv_slice_cstr("books"))); /* the old documents are still being deleted */
    put_doc(st, 0, "books", "b1", "{\"isbn\":\"b1\",\"author\":\"new\"}"); /* same id, same shard */
    put_doc(st, 1, "books", "b2", "{\"isbn\":\"b2\",\"author\":\"new\"}");
    put_doc(st, 2, "books", "b9", "{\"isbn\":\"b9\",\"author\":\"new\"}");
    maintain_until_idle(reg, 10);
    assert_int_equal(docs(reg, "books"), 3);
    assert_string_equal(doc_value(st, 0, "books", "b1"), "{\"isbn\":\"b1\",\"author\":\"new\"}");
    assert_string_equal(doc_value(st, 1, "books", "b2"), "{\"isbn\":\"b2\",\"author\":\"new\"}");
    assert_non_null(doc_value(st, 2, "books", "b9"));
    assert_null(doc_value(st, 2, "books", "b3"));
    assert_null(doc_value(st, 0, "books", "b4"));
    check_all(reg);
    coll_registry_free(reg);
    store_free(st);
}

/* Steps are bounded (512 deletes per shard per call) and a pass resumes
 * from its cursor past more than a step's worth of a later definition's
 * documents that sort first. */
static void test_cleanup_is_bounded_and_resumes(void **state) {
    (void)state;
    store *st = new_store(RING_HASH_XXH3);
    coll_registry *reg = NULL;
    assert_int_equal(coll_registry_new(st, NULL, &reg), SKV_OK);
    put_definition(st, "big", "{\"name\":\"big\",\"primary_key\":\"id\"}");
    char pk[32];
    for (int i = 0; i < 1300; i++) {
        snprintf(pk, sizeof pk, "z%05d", i);
        put_doc(st, 1, "big", pk, "{\"gen\":1}");
    }
    put_definition(st, "big", NULL);
    coll_maintain(reg);
    assert_int_equal(docs(reg, "big"), 1300 - 512);
    put_definition(st, "big", "{\"name\":\"big\",\"primary_key\":\"id\"}");
    for (int i = 0; i < 5000; i++) {
        snprintf(pk, sizeof pk, "a%05d", i);
        put_doc(st, 1, "big", pk, "{\"gen\":2}");
    }
    int calls = maintain_until_idle(reg, 40);
    assert_true(calls >= 2);
    assert_int_equal(docs(reg, "big"), 5000);
    assert_null(doc_value(st, 1, "big", "z00000"));
    assert_null(doc_value(st, 1, "big", "z01299"));
    assert_non_null(doc_value(st, 1, "big", "a04999"));
    check_all(reg);
    coll_registry_free(reg);
    store_free(st);
}

/* Document writes still waiting for the disk when the definition was
 * removed: the job waits for them, deletes them once visible, and ends when
 * they fail instead. */
static void test_cleanup_waits_for_pending_documents(void **state) {
    (void)state;
    store *st = new_store(RING_HASH_XXH3);
    attach_sync_log(st, 1);
    coll_registry *reg = NULL;
    assert_int_equal(coll_registry_new(st, NULL, &reg), SKV_OK);
    put_definition(st, "books", books);
    put_doc(st, 1, "books", "p1", "{\"isbn\":\"p1\"}"); /* waits for the disk */
    put_doc(st, 2, "books", "v1", "{\"isbn\":\"v1\"}");
    assert_int_equal(docs(reg, "books"), 1);
    put_definition(st, "books", NULL);
    for (int i = 0; i < 3; i++) coll_maintain(reg);
    assert_int_equal(docs(reg, "books"), 0);
    assert_int_equal(coll_cleanup_jobs(reg), 1); /* p1 may still become visible */
    assert_true(coll_busy(reg, skv_slice_cstr("books")));
    commit_batch(st, 1);
    assert_int_equal(docs(reg, "books"), 1);
    maintain_until_idle(reg, 10);
    assert_int_equal(docs(reg, "books"), 0);
    commit_batch(st, 1); /* the cleanup's delete record */
    /* A pending document whose write fails. */
    put_definition(st, "mags", "{\"name\":\"mags\",\"primary_key\":\"id\"}");
    put_doc(st, 1, "mags", "m1", "{\"id\":\"m1\"}");
    put_definition(st, "mags", NULL);
    for (int i = 0; i < 3; i++) coll_maintain(reg);
    assert_int_equal(coll_cleanup_jobs(reg), 1);
    fail_batch(st, 1);
    maintain_until_idle(reg, 10);
    uint64_t keys, bytes;
    store_totals(st, &keys, &bytes);
    assert_int_equal(keys, 0);
    check_all(reg);
    coll_registry_free(reg);
    store_free(st);
}

/* Documents of a name with no definition and no job (not expected: a
 * leftover) make the name busy and get a job. */
static void test_leftover_documents_get_a_job(void **state) {
    (void)state;
    store *st = new_store(RING_HASH_XXH3);
    coll_registry *reg = NULL;
    assert_int_equal(coll_registry_new(st, NULL, &reg), SKV_OK);
    assert_false(coll_busy(reg, skv_slice_cstr("ghost")));
    put_doc(st, 2, "ghost", "g", "{\"id\":\"g\"}");
    assert_int_equal(coll_cleanup_jobs(reg), 0);
    assert_true(coll_busy(reg, skv_slice_cstr("ghost")));
    assert_int_equal(coll_cleanup_jobs(reg), 1);
    assert_true(coll_busy(reg, skv_slice_cstr("ghost")));
    assert_int_equal(coll_cleanup_jobs(reg), 1);
    maintain_until_idle(reg, 10);
    assert_int_equal(docs(reg, "ghost"), 0);
    assert_false(coll_busy(reg, skv_slice_cstr("ghost")));
    coll_registry_free(reg);
    store_free(st);
}

/* A drop as the route does it (dropping set, the removal written with its
 * version noted) whose removal waits for the disk: the collection is hidden
 * and busy; when the write fails the collection is back, when it succeeds
 * it is gone with a job. */
static void test_a_failed_drop_is_settled(void **state) {
    (void)state;
    store *st = new_store(RING_HASH_XXH3);
    attach_sync_log(st, 0);
    coll_registry *reg = NULL;
    assert_int_equal(coll_registry_new(st, NULL, &reg), SKV_OK);
    put_definition(st, "books", books);
    commit_batch(st, 0);
    put_doc(st, 1, "books", "b1", "{\"isbn\":\"b1\"}");
    for (int round = 0; round < 2; round++) {
        coll_def *c = coll_lookup(reg, skv_slice_cstr("books"));
        assert_non_null(c);
        assert_int_equal(atomic_exchange(&c->dropping, 1), 0);
        assert_null(coll_lookup(reg, skv_slice_cstr("books"))); /* dropping, removal not written yet */
        coll_maintain(reg);
        assert_true(atomic_load(&c->dropping));                 /* ... which is not a failure */
        atomic_store(&c->drop_version, put_definition(st, "books", NULL));
        assert_null(coll_lookup(reg, skv_slice_cstr("books")));
        assert_true(coll_busy(reg, skv_slice_cstr("books")));
        coll_maintain(reg);
        assert_true(atomic_load(&c->dropping));
        if (round == 0) {
            fail_batch(st, 0);
            coll_def *again = coll_lookup(reg, skv_slice_cstr("books"));
            assert_ptr_equal(again, c);
            assert_false(atomic_load(&c->dropping));
            assert_int_equal(atomic_load(&c->drop_version), 0);
            coll_release(again);
            assert_int_equal(coll_cleanup_jobs(reg), 0);
            assert_int_equal(docs(reg, "books"), 1);
        } else {
            commit_batch(st, 0);
            assert_null(coll_lookup(reg, skv_slice_cstr("books")));
            assert_int_equal(coll_cleanup_jobs(reg), 1);
            maintain_until_idle(reg, 10);
            assert_int_equal(docs(reg, "books"), 0);
        }
        coll_release(c);
    }
    /* A drop that wrote nothing gives the collection back at once. */
    put_definition(st, "mags", "{\"name\":\"mags\",\"primary_key\":\"id\"}");
    commit_batch(st, 0);
    coll_def *m = coll_lookup(reg, skv_slice_cstr("mags"));
    atomic_store(&m->dropping, 1);
    coll_drop_abandon(reg, m);
    assert_true(defined(reg, "mags"));
    coll_release(m);
    check_all(reg);
    coll_registry_free(reg);
    store_free(st);
}

static void test_placement_and_stripes(void **state) {
    (void)state;
    store *st = new_store(RING_HASH_MD5);
    coll_registry *reg = NULL;
    assert_int_equal(coll_registry_new(st, NULL, &reg), SKV_OK);
    /* Seed 004 with 3 shards: user 1 goes to shard_2 (our 1).  The shard
     * key text goes through the ring as any key does. */
    assert_int_equal(coll_place(reg, skv_slice_cstr("1")), 1);
    for (int i = 0; i < 50; i++) {
        char t[16];
        snprintf(t, sizeof t, "%d", i);
        assert_int_equal(coll_place(reg, skv_slice_cstr(t)), ring_shard_for_key(store_map(st), t, strlen(t), NULL));
    }
    pthread_mutex_t *a = coll_stripe(reg, skv_slice_cstr("users"), skv_slice_cstr("1"));
    assert_ptr_equal(a, coll_stripe(reg, skv_slice_cstr("users"), skv_slice_cstr("1")));
    skv_buf k;
    skv_buf_init(&k);
    skv_slice key = coll_schema_key(&k, skv_slice_cstr("users"));
    char ns;
    uint32_t id;
    skv_slice name;
    assert_int_equal(store_internal_key_parse(key, &ns, &id, &name), 1);
    assert_int_equal(ns, STORE_NS_SCHEMA);
    assert_int_equal(id, 0);
    assert_true(skv_slice_eq_cstr(name, "users"));
    skv_buf_free(&k);
    coll_registry_free(reg);
    store_free(st);
}

int main(void) {
    log_init(LOG_LEVEL_OFF, LOG_FORMAT_TEXT); /* the broken definition logs an error on purpose */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fresh_node_has_users_only),
        cmocka_unit_test(test_load_from_tables),
        cmocka_unit_test(test_observer_follows_definitions_and_documents),
        cmocka_unit_test(test_cleanup_spares_a_later_definitions_documents),
        cmocka_unit_test(test_cleanup_is_bounded_and_resumes),
        cmocka_unit_test(test_cleanup_waits_for_pending_documents),
        cmocka_unit_test(test_leftover_documents_get_a_job),
        cmocka_unit_test(test_a_failed_drop_is_settled),
        cmocka_unit_test(test_placement_and_stripes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
