/*
 * Unit tests for docidx, driven through a real shard and its observer (as
 * the collection registry installs it): documents written with
 * shard_apply are indexed at once, updates move them between index values,
 * deletes remove them; queries walk a value in primary-key order (integers
 * numerically, before other texts) and resume strictly after a key; a
 * write waiting for the disk (--fsync always) is indexed only when its
 * batch commits; a new definition rebinds the secondary indexes; documents
 * of an undefined collection keep a primary index only.  docidx_check runs
 * after every step.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "docidx.h"
#include "err.h"
#include "schema.h"
#include "shard.h"
#include "store.h"

#define SHARD_ID 3

/* The test's "registry": one current definition for the collection "people". */
static const schema *cur_def;
static uint64_t cur_id;

static const schema *def_of(void *arg, skv_slice coll, uint64_t *id) {
    (void)arg;
    if (!cur_def || !skv_slice_eq(coll, skv_slice_make(cur_def->name, cur_def->name_len))) return NULL;
    *id = cur_id;
    return cur_def;
}

static void observe(void *arg, shard *s, const ht_entry *old, const ht_entry *now) {
    docidx *d = arg;
    const ht_entry *e = now ? now : old;
    skv_slice coll, pk;
    if (!docidx_parse_key(skv_slice_make(ht_entry_key(e), e->key_len), &coll, &pk)) return;
    uint64_t id = 0;
    const schema *def = def_of(NULL, coll, &id);
    docidx_change(d, s, def, id, coll, pk, old, now);
}

typedef struct fixture {
    shard s;
    docidx *d;
    schema *people, *people2, *tags;
    skv_buf key;
} fixture;

static schema *parse_def(const char *text) {
    json_t *j = json_loads(text, 0, NULL);
    schema *s = NULL;
    schema_error err;
    if (schema_parse(j, &s, &err) != SKV_OK) fail_msg("%s", err.message);
    json_decref(j);
    return s;
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    shard_init(&f->s, SHARD_ID);
    f->d = docidx_new(SHARD_ID);
    f->people = parse_def("{\"name\":\"people\",\"primary_key\":\"id\",\"fields\":{\"id\":{\"type\":\"integer\"},"
                          "\"vip\":{\"type\":\"boolean\"}},\"indexes\":[\"region\",\"vip\"]}");
    f->people2 = parse_def("{\"name\":\"people\",\"primary_key\":\"id\",\"fields\":{\"id\":{\"type\":\"integer\"}},"
                           "\"indexes\":[\"team\"]}");
    f->tags = parse_def("{\"name\":\"tags\",\"primary_key\":\"t\"}");
    cur_def = f->people;
    cur_id = 1;
    skv_buf_init(&f->key);
    shard_set_observer(&f->s, observe, f->d);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    shard_destroy(&f->s);
    docidx_free(f->d);
    schema_free(f->people);
    schema_free(f->people2);
    schema_free(f->tags);
    skv_buf_free(&f->key);
    free(f);
    return 0;
}

static void check(fixture *f) {
    pthread_mutex_lock(&f->s.lock);
    assert_true(docidx_check(f->d, &f->s, def_of, NULL));
    pthread_mutex_unlock(&f->s.lock);
}

static int write_doc(fixture *f, const char *coll, const char *pk, const char *json, shard_waiter *waiter) {
    shard_write w = { 0 };
    w.key = docidx_doc_key(&f->key, SHARD_ID, skv_slice_cstr(coll), skv_slice_cstr(pk));
    w.op = json ? SHARD_OP_PUT : SHARD_OP_DELETE;
    if (json) w.value = skv_slice_cstr(json);
    w.flags = SHARD_VAL_JSON;
    w.waiter = waiter;
    shard_result res;
    return shard_apply(&f->s, store_key_hash(w.key), &w, &res);
}

static void put(fixture *f, const char *pk, const char *json) { assert_int_equal(write_doc(f, "people", pk, json, NULL), SKV_OK); }
static void del(fixture *f, const char *pk) { assert_int_equal(write_doc(f, "people", pk, NULL, NULL), SKV_OK); }

typedef struct seen {
    char pks[32][32];
    size_t n, stop_at;
} seen;

static int record(void *arg, skv_slice pk, const ht_entry *doc) {
    seen *s = arg;
    (void)doc;
    snprintf(s->pks[s->n], sizeof s->pks[0], "%.*s", (int)pk.len, pk.ptr);
    s->n++;
    return s->stop_at && s->n >= s->stop_at;
}

/* The primary keys a query returns, joined with commas. */
static const char *query(fixture *f, const char *coll, const schema *def, uint64_t id, int index, const char *value,
                         const char *after) {
    static char out[512];
    docidx_query q = { skv_slice_cstr(coll), def, id, index, skv_slice_cstr(value ? value : ""),
                       skv_slice_cstr(after ? after : ""), after != NULL };
    seen s = { .n = 0 };
    pthread_mutex_lock(&f->s.lock);
    docidx_visit(f->d, &f->s, &q, record, &s);
    pthread_mutex_unlock(&f->s.lock);
    out[0] = '\0';
    for (size_t i = 0; i < s.n; i++) {
        if (i) strcat(out, ",");
        strcat(out, s.pks[i]);
    }
    return out;
}

static void test_index_follows_writes(void **state) {
    fixture *f = *state;
    put(f, "10", "{\"id\":10,\"region\":\"US\",\"vip\":true}");
    put(f, "9", "{\"id\":9,\"region\":\"US\"}");
    put(f, "100", "{\"id\":100,\"region\":\"US\",\"vip\":false}");
    put(f, "-5", "{\"id\":-5,\"region\":\"US\"}");
    put(f, "7", "{\"id\":7,\"region\":\"EU\",\"vip\":true}");
    check(f);
    /* Primary-key order is numeric for integers. */
    assert_string_equal(query(f, "people", f->people, 1, 0, "US", NULL), "-5,9,10,100");
    assert_string_equal(query(f, "people", f->people, 1, 0, "EU", NULL), "7");
    assert_string_equal(query(f, "people", f->people, 1, 1, "true", NULL), "7,10");
    assert_string_equal(query(f, "people", f->people, 1, -1, NULL, NULL), "-5,7,9,10,100");
    /* Resuming strictly after a key, present or not. */
    assert_string_equal(query(f, "people", f->people, 1, 0, "US", "9"), "10,100");
    assert_string_equal(query(f, "people", f->people, 1, 0, "US", "11"), "100");
    assert_string_equal(query(f, "people", f->people, 1, 0, "US", "100"), "");
    assert_string_equal(query(f, "people", f->people, 1, 0, "USA", NULL), "");

    /* An update moves the document to its new value; the old one no longer returns it. */
    put(f, "9", "{\"id\":9,\"region\":\"EU\",\"vip\":true}");
    check(f);
    assert_string_equal(query(f, "people", f->people, 1, 0, "US", NULL), "-5,10,100");
    assert_string_equal(query(f, "people", f->people, 1, 0, "EU", NULL), "7,9");
    assert_string_equal(query(f, "people", f->people, 1, 1, "true", NULL), "7,9,10");
    /* A field that loses its value leaves the index. */
    put(f, "10", "{\"id\":10}");
    assert_string_equal(query(f, "people", f->people, 1, 0, "US", NULL), "-5,100");
    assert_string_equal(query(f, "people", f->people, 1, 1, "true", NULL), "7,9");
    del(f, "7");
    check(f);
    assert_string_equal(query(f, "people", f->people, 1, 0, "EU", NULL), "9");
    pthread_mutex_lock(&f->s.lock);
    assert_int_equal(docidx_count(f->d, skv_slice_cstr("people")), 4);
    pthread_mutex_unlock(&f->s.lock);
    /* The visitor can stop the walk. */
    docidx_query q = { skv_slice_cstr("people"), f->people, 1, -1, skv_slice_cstr(""), skv_slice_cstr(""), 0 };
    seen s = { .n = 0, .stop_at = 2 };
    pthread_mutex_lock(&f->s.lock);
    assert_int_equal(docidx_visit(f->d, &f->s, &q, record, &s), 1);
    pthread_mutex_unlock(&f->s.lock);
    assert_int_equal(s.n, 2);
}

static void test_string_keys_order(void **state) {
    fixture *f = *state;
    const char *pks[] = { "b", "a", "10", "9", "007", "-1", "" };
    for (size_t i = 0; i < sizeof pks / sizeof pks[0]; i++)
        assert_int_equal(write_doc(f, "tags", pks[i], "{}", NULL), SKV_OK);
    check(f);
    /* Canonical integers first, numerically; then other texts bytewise ("007" is not canonical). */
    assert_string_equal(query(f, "tags", f->tags, 9, -1, NULL, NULL), "-1,9,10,,007,a,b");
    assert_string_equal(query(f, "tags", f->tags, 9, -1, NULL, "10"), ",007,a,b");
    skv_buf keys;
    skv_buf_init(&keys);
    pthread_mutex_lock(&f->s.lock);
    assert_int_equal(docidx_keys(f->d, skv_slice_cstr("tags"), 3, &keys), 3);
    pthread_mutex_unlock(&f->s.lock);
    uint32_t len;
    memcpy(&len, keys.data, sizeof len);
    assert_int_equal(len, 2);
    assert_memory_equal(keys.data + sizeof len, "-1", 2);
    skv_buf_free(&keys);
}

static void noop_deliver(shard_waiter *w) { (void)w; }
static void noop_kick(void *arg, shard *s) { (void)arg, (void)s; }

static void test_pending_not_indexed_until_committed(void **state) {
    fixture *f = *state;
    shard_attach_log(&f->s, 1, noop_kick, NULL);
    shard_waiter w1 = { .deliver = noop_deliver }, w2 = { .deliver = noop_deliver };
    assert_int_equal(write_doc(f, "people", "1", "{\"id\":1,\"region\":\"US\"}", &w1), SKV_OK);
    assert_string_equal(query(f, "people", f->people, 1, 0, "US", NULL), ""); /* pending: not visible */
    check(f);
    skv_buf batch;
    skv_buf_init(&batch);
    uint64_t last;
    shard_waiter *ws;
    pthread_mutex_lock(&f->s.lock);
    shard_take_batch(&f->s, &batch, &last, &ws);
    shard_commit_batch(&f->s, &batch);
    pthread_mutex_unlock(&f->s.lock);
    assert_string_equal(query(f, "people", f->people, 1, 0, "US", NULL), "1");
    check(f);
    /* A pending update leaves the visible (indexed) state alone until it commits. */
    assert_int_equal(write_doc(f, "people", "1", "{\"id\":1,\"region\":\"EU\"}", &w2), SKV_OK);
    assert_string_equal(query(f, "people", f->people, 1, 0, "US", NULL), "1");
    assert_string_equal(query(f, "people", f->people, 1, 0, "EU", NULL), "");
    skv_buf_reset(&batch);
    pthread_mutex_lock(&f->s.lock);
    shard_take_batch(&f->s, &batch, &last, &ws);
    shard_commit_batch(&f->s, &batch);
    pthread_mutex_unlock(&f->s.lock);
    assert_string_equal(query(f, "people", f->people, 1, 0, "US", NULL), "");
    assert_string_equal(query(f, "people", f->people, 1, 0, "EU", NULL), "1");
    check(f);
    skv_buf_free(&batch);
}

static void test_rebind_and_undefined(void **state) {
    fixture *f = *state;
    put(f, "1", "{\"id\":1,\"region\":\"US\",\"team\":\"red\"}");
    put(f, "2", "{\"id\":2,\"region\":\"EU\",\"team\":\"red\"}");
    /* The collection is dropped: its documents keep a primary index only. */
    cur_def = NULL;
    cur_id = 0;
    put(f, "3", "{\"id\":3,\"team\":\"blue\"}");
    check(f);
    assert_string_equal(query(f, "people", NULL, 0, -1, NULL, NULL), "1,2,3");
    /* Defined again with another index: the next change rebinds from the table. */
    cur_def = f->people2;
    cur_id = 2;
    put(f, "4", "{\"id\":4,\"team\":\"red\"}");
    check(f);
    assert_string_equal(query(f, "people", f->people2, 2, 0, "red", NULL), "1,2,4");
    assert_string_equal(query(f, "people", f->people2, 2, 0, "blue", NULL), "3");
    /* A query with a definition the part is not bound to rebinds it too. */
    assert_string_equal(query(f, "people", f->people, 7, 0, "US", NULL), "1");
    cur_def = f->people;
    cur_id = 7;
    check(f);
    /* Deleting the last document drops the collection's part. */
    for (int i = 1; i <= 4; i++) {
        char pk[16];
        snprintf(pk, sizeof pk, "%d", i);
        del(f, pk);
    }
    check(f);
    pthread_mutex_lock(&f->s.lock);
    assert_int_equal(docidx_count(f->d, skv_slice_cstr("people")), 0);
    pthread_mutex_unlock(&f->s.lock);
    assert_string_equal(query(f, "people", f->people, 7, 0, "US", NULL), "");
}

static void test_keys(void **state) {
    (void)state;
    skv_buf b;
    skv_buf_init(&b);
    skv_slice k = docidx_doc_key(&b, 258, skv_slice_cstr("users"), skv_slice_make("1\0x", 3));
    assert_int_equal(k.len, STORE_INTERNAL_HEADER + 5 + 1 + 3);
    assert_memory_equal(k.ptr, "\0D\0\0\1\2users\0001\0x", k.len);
    skv_slice coll, pk;
    assert_int_equal(docidx_parse_key(k, &coll, &pk), 1);
    assert_true(skv_slice_eq_cstr(coll, "users"));
    assert_true(skv_slice_eq(pk, skv_slice_make("1\0x", 3)));
    store_internal_key(&b, STORE_NS_SCHEMA, 0, "users", 5);
    assert_int_equal(docidx_parse_key(skv_slice_make(b.data, b.len), &coll, &pk), 0);
    assert_int_equal(docidx_parse_key(skv_slice_cstr("plain"), &coll, &pk), 0);
    store_internal_key(&b, STORE_NS_DOC, 0, "nosep", 5);
    assert_int_equal(docidx_parse_key(skv_slice_make(b.data, b.len), &coll, &pk), 0);
    skv_buf_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_index_follows_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_string_keys_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_not_indexed_until_committed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rebind_and_undefined, setup, teardown),
        cmocka_unit_test(test_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
