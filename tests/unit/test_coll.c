/*
 * Unit tests for the collection registry (coll.c) on memory-only shards:
 * what coll_registry_new loads from the tables (stored definitions, the
 * built-in users, a dropped marker, a definition that does not parse),
 * the documents it indexes, the orphans it deletes (and the ones it must
 * keep), and how the observer keeps definitions and indexes following the
 * tables afterwards.  Placement of shard-key texts through the ring.
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

static void apply(store *st, uint32_t shard_id, int op, skv_slice key, const char *value) {
    shard_write w = { 0 };
    w.op = op;
    w.key = key;
    w.value = skv_slice_cstr(value ? value : "");
    w.flags = SHARD_VAL_JSON;
    shard_result res;
    assert_int_equal(shard_apply(store_shard(st, shard_id), store_key_hash(key), &w, &res), SKV_OK);
}

static void put_definition(store *st, const char *name, const char *json) {
    skv_buf k;
    skv_buf_init(&k);
    apply(st, 0, SHARD_OP_PUT, coll_schema_key(&k, skv_slice_cstr(name)), json);
    skv_buf_free(&k);
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
    /* Deleting a definition record removes the collection; its documents are deleted by the caller. */
    apply(st, 0, SHARD_OP_DELETE, coll_schema_key(&k, skv_slice_cstr("books")), NULL);
    assert_false(defined(reg, "books"));
    size_t pending = 99;
    assert_int_equal(coll_delete_documents(reg, skv_slice_cstr("books"), &pending), 1);
    assert_int_equal(pending, 0);
    assert_int_equal(docs(reg, "books"), 0);
    skv_buf_free(&k);
    for (uint32_t i = 0; i < NSHARDS; i++) assert_true(shard_check(store_shard(st, i)));
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
        cmocka_unit_test(test_placement_and_stripes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
