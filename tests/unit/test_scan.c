/*
 * Unit tests for scan_page (no HTTP): exactly-once paging over a static
 * store at many limits, scan order, prefixes, internal and expired keys, the
 * bucket bound (pages with no items), the item callback's stop, keys with
 * equal 64-bit hashes (forged into a table), and a property test: random
 * PUT/DELETE between pages of a scan while the shard tables grow and
 * shrink, checked against a model.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "ht.h"
#include "ring.h"
#include "scan.h"
#include "shard.h"
#include "store.h"

/* ---- store helpers ---- */

static store *new_store(uint32_t shards) {
    ring_config c;
    memset(&c, 0, sizeof c);
    c.strategy = RING_STRATEGY_RING;
    c.hash = RING_HASH_XXH3;
    c.shards = shards;
    c.vnodes = 100;
    store *st = NULL;
    assert_int_equal(store_new(&c, &st), SKV_OK);
    return st;
}

static uint64_t put_full(store *st, skv_slice key, skv_slice val, uint64_t expires_ms) {
    shard_write w;
    memset(&w, 0, sizeof w);
    w.op = SHARD_OP_PUT;
    w.key = key;
    w.value = val;
    w.expires_ms = expires_ms;
    uint64_t h;
    uint32_t id = store_locate(st, key, &h);
    shard_result res;
    assert_int_equal(shard_apply(store_shard(st, id), h, &w, &res), SKV_OK);
    return res.version;
}

static uint64_t put(store *st, const char *key, const char *val) {
    return put_full(st, skv_slice_cstr(key), skv_slice_cstr(val), 0);
}

static void del(store *st, const char *key) {
    shard_write w;
    memset(&w, 0, sizeof w);
    w.op = SHARD_OP_DELETE;
    w.key = skv_slice_cstr(key);
    uint64_t h;
    uint32_t id = store_locate(st, w.key, &h);
    shard_result res;
    assert_int_equal(shard_apply(store_shard(st, id), h, &w, &res), SKV_OK);
}

static size_t table_buckets(store *st, uint32_t id) {
    return ht_overhead_bytes(store_shard(st, id)->table) / sizeof(ht_entry *);
}

/* ---- collecting pages ---- */

typedef struct item {
    uint32_t shard;
    uint64_t pos;
    uint64_t version;
    uint64_t expires_ms;
    char key[40];
    char value[40];
} item;

typedef struct collector {
    item *items;
    size_t n, cap;
    size_t stop_every;  /* ask the page to stop after every n-th item (0 = never) */
    size_t calls;
} collector;

static int collect(void *arg, uint32_t shard_id, const ht_entry *e) {
    collector *c = arg;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 256;
        c->items = realloc(c->items, c->cap * sizeof *c->items);
        assert_non_null(c->items);
    }
    item *it = &c->items[c->n++];
    memset(it, 0, sizeof *it);
    it->shard = shard_id;
    it->pos = ht_position(e->hash);
    it->version = e->version;
    it->expires_ms = e->expires_ms;
    assert_true(e->key_len < sizeof it->key && e->val_len < sizeof it->value);
    memcpy(it->key, ht_entry_key(e), e->key_len);
    memcpy(it->value, ht_entry_value(e), e->val_len);
    c->calls++;
    return c->stop_every && c->calls % c->stop_every == 0;
}

/* Pages through the whole scan; checks every page's bounds and the global
 * order (shard, then position, strictly increasing). Returns the pages. */
static size_t scan_all(store *st, const char *prefix, size_t limit, size_t max_buckets, collector *c) {
    scan_pos pos = { 0, 0 };
    size_t pages = 0;
    for (;;) {
        size_t before = c->n, got = 0;
        int done = scan_page(st, skv_slice_cstr(prefix), limit, max_buckets, &pos, collect, c, &got);
        pages++;
        assert_int_equal(got, c->n - before);
        assert_true(got <= limit);
        if (done) {
            assert_int_equal(pos.shard, st->nshards);
            break;
        }
        assert_true(pos.shard < st->nshards);
        assert_true(pages < 10000000);
    }
    for (size_t i = 1; i < c->n; i++) {
        const item *a = &c->items[i - 1], *b = &c->items[i];
        assert_true(a->shard < b->shard || (a->shard == b->shard && a->pos < b->pos));
    }
    return pages;
}

static int item_cmp_key(const void *a, const void *b) {
    return strcmp(((const item *)a)->key, ((const item *)b)->key);
}

/* ---- tests ---- */

static void test_empty_store(void **state) {
    (void)state;
    store *st = new_store(4);
    collector c = { 0 };
    size_t pages = scan_all(st, "", 10, SCAN_MAX_BUCKETS, &c);
    assert_int_equal(pages, 1);
    assert_int_equal(c.n, 0);
    scan_pos done = { 4, 0 };
    size_t got = 99;
    assert_int_equal(scan_page(st, skv_slice_cstr(""), 10, 10, &done, collect, &c, &got), 1);
    assert_int_equal(got, 0);
    store_free(st);
}

static void test_static_exactly_once(void **state) {
    (void)state;
    enum { N = 3000 };
    store *st = new_store(4);
    char key[32], val[32];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "key:%d", i);
        snprintf(val, sizeof val, "v%d", i);
        put(st, key, val);
    }
    static const size_t limits[] = { 1, 2, 7, 100, 1000 };
    for (size_t l = 0; l < sizeof limits / sizeof limits[0]; l++) {
        collector c = { 0 };
        size_t pages = scan_all(st, "", limits[l], SCAN_MAX_BUCKETS, &c);
        assert_int_equal(c.n, N);
        assert_true(pages >= N / limits[l]);
        qsort(c.items, c.n, sizeof *c.items, item_cmp_key);
        for (size_t i = 1; i < c.n; i++) assert_true(strcmp(c.items[i - 1].key, c.items[i].key) != 0);
        for (size_t i = 0; i < c.n; i++) {
            int id = atoi(c.items[i].key + 4);
            snprintf(val, sizeof val, "v%d", id);
            assert_string_equal(c.items[i].value, val);
            assert_int_equal(c.items[i].shard, store_shard_for_key(st, skv_slice_cstr(c.items[i].key)));
        }
        free(c.items);
    }
    store_free(st);
}

static void test_prefix(void **state) {
    (void)state;
    store *st = new_store(3);
    char key[32];
    for (int i = 0; i < 500; i++) {
        snprintf(key, sizeof key, "%s%d", i % 3 == 0 ? "user/" : i % 3 == 1 ? "users" : "other/", i);
        put(st, key, "x");
    }
    put(st, "user", "short"); /* shorter than the prefix */
    collector c = { 0 };
    scan_all(st, "user/", 7, SCAN_MAX_BUCKETS, &c);
    assert_int_equal(c.n, 167);
    for (size_t i = 0; i < c.n; i++) assert_memory_equal(c.items[i].key, "user/", 5);
    free(c.items);
    memset(&c, 0, sizeof c);
    scan_all(st, "user", 50, SCAN_MAX_BUCKETS, &c);
    assert_int_equal(c.n, 167 + 167 + 1);
    free(c.items);
    memset(&c, 0, sizeof c);
    scan_all(st, "nothing-has-this-prefix", 5, SCAN_MAX_BUCKETS, &c);
    assert_int_equal(c.n, 0);
    free(c.items);
    store_free(st);
}

static void test_internal_keys_skipped(void **state) {
    (void)state;
    store *st = new_store(2);
    skv_buf kb;
    skv_buf_init(&kb);
    for (uint32_t i = 0; i < 200; i++) {
        char name[16];
        int n = snprintf(name, sizeof name, "c%u", i);
        skv_slice k = store_internal_key(&kb, STORE_NS_COUNTER, i, name, (size_t)n);
        put_full(st, k, skv_slice_cstr("1"), 0);
    }
    put(st, "visible", "yes");
    collector c = { 0 };
    scan_all(st, "", 3, SCAN_MAX_BUCKETS, &c);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.items[0].key, "visible");
    free(c.items);
    /* Even a prefix starting with NUL finds nothing. */
    memset(&c, 0, sizeof c);
    scan_pos pos = { 0, 0 };
    while (!scan_page(st, skv_slice_make("\0C", 2), 10, SCAN_MAX_BUCKETS, &pos, collect, &c, NULL)) {}
    assert_int_equal(c.n, 0);
    skv_buf_free(&kb);
    store_free(st);
}

static uint64_t fake_now;
static uint64_t fake_clock(void) { return fake_now; }

static void test_expired_skipped(void **state) {
    (void)state;
    store *st = new_store(2);
    fake_now = 1700000000000ULL;
    for (uint32_t i = 0; i < st->nshards; i++) store_shard(st, i)->clock_ms = fake_clock;
    char key[32];
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof key, "ttl:%d", i);
        put_full(st, skv_slice_cstr(key), skv_slice_cstr("v"), i % 2 ? fake_now + 1000 : fake_now + 5000);
    }
    put(st, "forever", "v");
    collector c = { 0 };
    scan_all(st, "", 1000, SCAN_MAX_BUCKETS, &c);
    assert_int_equal(c.n, 101);
    for (size_t i = 0; i < c.n; i++) {
        if (strcmp(c.items[i].key, "forever") == 0) assert_int_equal(c.items[i].expires_ms, 0);
        else assert_true(c.items[i].expires_ms == fake_now + 1000 || c.items[i].expires_ms == fake_now + 5000);
    }
    free(c.items);
    fake_now += 1000; /* the odd ones expire (expires_ms itself is past) */
    memset(&c, 0, sizeof c);
    scan_all(st, "", 9, SCAN_MAX_BUCKETS, &c);
    assert_int_equal(c.n, 51);
    for (size_t i = 0; i < c.n; i++)
        if (strcmp(c.items[i].key, "forever") != 0) assert_int_equal(atoi(c.items[i].key + 4) % 2, 0);
    free(c.items);
    store_free(st);
}

static void test_bucket_bound(void **state) {
    (void)state;
    enum { N = 40 };
    store *st = new_store(4);
    char key[32];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "b:%d", i);
        put(st, key, "v");
    }
    size_t buckets = 0;
    for (uint32_t i = 0; i < st->nshards; i++) buckets += table_buckets(st, i);
    /* One bucket per page: as many pages as buckets, most of them empty. */
    collector c = { 0 };
    size_t pages = scan_all(st, "", 1000, 1, &c);
    assert_int_equal(c.n, N);
    assert_int_equal(pages, buckets);
    free(c.items);
    /* Three buckets per page. */
    memset(&c, 0, sizeof c);
    pages = scan_all(st, "", 1000, 3, &c);
    assert_int_equal(c.n, N);
    assert_int_equal(pages, (buckets + 2) / 3);
    free(c.items);
    /* A page that hits the bound with nothing found says "not done". */
    scan_pos pos = { 0, 0 };
    memset(&c, 0, sizeof c);
    int empty_not_done = 0;
    while (!scan_page(st, skv_slice_cstr("none"), 10, 2, &pos, collect, &c, NULL)) empty_not_done++;
    assert_true(empty_not_done > 0);
    assert_int_equal(c.n, 0);
    store_free(st);
}

static void test_callback_stop(void **state) {
    (void)state;
    enum { N = 500 };
    store *st = new_store(2);
    char key[32];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "s:%d", i);
        put(st, key, "v");
    }
    collector c = { 0 };
    c.stop_every = 3;
    size_t pages = scan_all(st, "", 100, SCAN_MAX_BUCKETS, &c);
    assert_int_equal(c.n, N);
    assert_true(pages >= N / 3);
    free(c.items);
    store_free(st);
}

/* Links an entry with a chosen hash straight into a shard's table (the
 * shard's accounting is not updated; only scans look at it). */
static void forge(store *st, uint32_t shard_id, uint64_t hash, const char *key) {
    ht_entry *e = ht_entry_new(hash, key, strlen(key), "f", 1);
    assert_non_null(e);
    assert_null(ht_put(store_shard(st, shard_id)->table, e));
}

static void test_equal_hashes_not_split(void **state) {
    (void)state;
    store *st = new_store(1);
    /* Three keys sharing one hash, and neighbours on both sides. */
    const uint64_t h = 0x0123456789abcdefULL;
    forge(st, 0, h, "tie-a");
    forge(st, 0, h, "tie-b");
    forge(st, 0, h, "tie-c");
    forge(st, 0, h ^ (1ULL << 40), "near-1"); /* same bucket, other positions */
    forge(st, 0, h ^ (1ULL << 50), "near-2");
    forge(st, 0, UINT64_MAX, "last-position");
    forge(st, 0, 0, "first-position");
    for (size_t limit = 1; limit <= 4; limit++) {
        collector c = { 0 };
        scan_pos pos = { 0, 0 };
        size_t page_of[16], pages = 0;
        int saw_over_limit = 0;
        for (;;) {
            size_t before = c.n;
            int done = scan_page(st, skv_slice_cstr(""), limit, SCAN_MAX_BUCKETS, &pos, collect, &c, NULL);
            for (size_t i = before; i < c.n; i++) {
                assert_true(i < 16);
                page_of[i] = pages;
                /* Past the limit only the rest of the tie group may follow. */
                if (i - before >= limit) {
                    saw_over_limit = 1;
                    assert_memory_equal(c.items[i].key, "tie-", 4);
                    assert_memory_equal(c.items[i - 1].key, "tie-", 4);
                }
            }
            pages++;
            if (done) break;
        }
        assert_int_equal(c.n, 7);
        size_t tie_page = SIZE_MAX;
        for (size_t i = 0; i < c.n; i++) {
            if (strncmp(c.items[i].key, "tie-", 4) != 0) continue;
            if (tie_page == SIZE_MAX) tie_page = page_of[i];
            assert_int_equal(page_of[i], tie_page); /* never split */
        }
        if (limit == 1) assert_true(saw_over_limit);
        qsort(c.items, c.n, sizeof *c.items, item_cmp_key);
        for (size_t i = 1; i < c.n; i++) assert_true(strcmp(c.items[i - 1].key, c.items[i].key) != 0);
        free(c.items);
    }
    store_free(st);
}

/* ---- property test: writes between pages, tables growing and shrinking ---- */

enum { U = 16000 };

typedef struct model {
    uint64_t version[U];    /* current version, 0 = absent */
    char value[U][16];
    unsigned char stable[U];  /* present from the scan's start and never deleted */
    unsigned char ever[U];    /* present at some moment of the scan */
    unsigned char seen[U];
    uint64_t rng;
} model;

static uint64_t rnd(model *m) {
    m->rng ^= m->rng << 13;
    m->rng ^= m->rng >> 7;
    m->rng ^= m->rng << 17;
    return m->rng;
}

static void key_of(uint32_t id, char *out, size_t cap) {
    snprintf(out, cap, "%s%u", id % 4 == 0 ? "p/" : "q/", id);
}

static void m_put(store *st, model *m, uint32_t id) {
    char key[32];
    key_of(id, key, sizeof key);
    snprintf(m->value[id], sizeof m->value[id], "%llu", (unsigned long long)(rnd(m) % 1000000));
    m->version[id] = put(st, key, m->value[id]);
    m->ever[id] = 1;
}

static void m_del(store *st, model *m, uint32_t id) {
    char key[32];
    key_of(id, key, sizeof key);
    del(st, key);
    m->version[id] = 0;
    m->stable[id] = 0;
}

typedef struct churn_run {
    const char *prefix;
    size_t max_buckets;
    size_t grow_to;          /* phase 1: mostly inserts until this many keys are present */
    size_t shrink_to;        /* phase 2: mostly deletes until this many remain */
    size_t pages;
    int saw_grow, saw_shrink; /* the table of the shard being scanned resized between two of its pages */
} churn_run;

/* The first id from a random start whose presence is want_present (and,
 * when looking for one to delete, that is not stable); U when none. */
static uint32_t pick(model *m, int want_present) {
    uint32_t id = (uint32_t)(rnd(m) % U);
    for (uint32_t j = 0; j < U; j++, id = (id + 1) % U) {
        int present = m->version[id] != 0;
        if (present == want_present && !(want_present && m->stable[id])) return id;
    }
    return U;
}

/* One random write: an overwrite of a stable id (1 in 10), else an insert
 * or a delete, mostly inserts in phase 1 (until grow_to keys), mostly
 * deletes in phase 2 (until shrink_to), balanced in phase 3.  Stable ids
 * are overwritten, never deleted. */
static void churn_op(store *st, model *m, const churn_run *cr, size_t *present, int *phase) {
    if (*phase == 1 && *present >= cr->grow_to) *phase = 2;
    if (*phase == 2 && *present <= cr->shrink_to) *phase = 3;
    uint64_t r = rnd(m) % 10;
    if (r == 9) {
        m_put(st, m, (uint32_t)(rnd(m) % (U / 80)) * 80);
        return;
    }
    int insert = *phase == 1 ? r < 7 : *phase == 2 ? r < 1 : r < 4;
    uint32_t id = pick(m, !insert);
    if (id == U) return;
    if (insert) {
        m_put(st, m, id);
        (*present)++;
    } else {
        m_del(st, m, id);
        (*present)--;
    }
}

static void check_page_items(const churn_run *cr, model *m, const collector *c, size_t from) {
    size_t prefix_len = strlen(cr->prefix);
    for (size_t i = from; i < c->n; i++) {
        const item *it = &c->items[i];
        assert_memory_equal(it->key, cr->prefix, prefix_len);
        uint32_t id = (uint32_t)atoi(it->key + 2);
        assert_true(id < U);
        assert_false(m->seen[id]);        /* never twice */
        m->seen[id] = 1;
        assert_true(m->version[id] != 0); /* present when its page was made... */
        assert_true(it->version == m->version[id]); /* ...with its current value */
        assert_string_equal(it->value, m->value[id]);
    }
}

static void run_churn(churn_run *cr) {
    store *st = new_store(4);
    model *m = calloc(1, sizeof *m);
    assert_non_null(m);
    m->rng = 0x9e3779b97f4a7c15ULL;
    size_t present = 0;
    for (uint32_t id = 0; id < U; id += 4) { /* 4000 keys to start */
        m_put(st, m, id);
        present++;
    }
    for (uint32_t id = 0; id < U; id += 80) m->stable[id] = 1; /* 200 of them never deleted */

    collector c = { 0 };
    scan_pos pos = { 0, 0 };
    int phase = 1;
    uint32_t last_shard = UINT32_MAX;
    size_t last_size = 0;
    for (;;) {
        size_t limit = 1 + rnd(m) % 7, before = c.n;
        int done = scan_page(st, skv_slice_cstr(cr->prefix), limit, cr->max_buckets, &pos, collect, &c, NULL);
        cr->pages++;
        assert_true(c.n - before <= limit);
        check_page_items(cr, m, &c, before);
        if (done) break;
        for (size_t k = 20 + rnd(m) % 20; k > 0; k--) churn_op(st, m, cr, &present, &phase);
        /* Did the table being scanned settle at another size mid-scan? */
        ht *t = store_shard(st, pos.shard)->table;
        if (!ht_is_rehashing(t)) {
            size_t now = table_buckets(st, pos.shard);
            if (pos.shard == last_shard && pos.next > 0) {
                if (now > last_size) cr->saw_grow = 1;
                if (now < last_size) cr->saw_shrink = 1;
            }
            last_shard = pos.shard;
            last_size = now;
        }
        assert_true(cr->pages < 2000000);
    }
    size_t prefix_len = strlen(cr->prefix), stable_checked = 0;
    for (uint32_t id = 0; id < U; id++) {
        if (!m->ever[id]) assert_false(m->seen[id]); /* nothing invented */
        char key[32];
        key_of(id, key, sizeof key);
        if (m->stable[id] && strncmp(key, cr->prefix, prefix_len) == 0) {
            assert_true(m->seen[id]); /* never skipped */
            stable_checked++;
        }
    }
    assert_true(stable_checked >= 200);
    free(c.items);
    free(m);
    store_free(st);
}

static void test_churn_grow_and_shrink(void **state) {
    (void)state;
    churn_run cr = { .prefix = "", .max_buckets = SCAN_MAX_BUCKETS, .grow_to = 10000, .shrink_to = 300 };
    run_churn(&cr);
    assert_true(cr.saw_grow);
    assert_true(cr.saw_shrink);
}

static void test_churn_prefix_small_bucket_bound(void **state) {
    (void)state;
    churn_run cr = { .prefix = "p/", .max_buckets = 3, .grow_to = 10000, .shrink_to = 300 };
    run_churn(&cr);
    assert_true(cr.saw_grow);
    assert_true(cr.saw_shrink);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_store),
        cmocka_unit_test(test_static_exactly_once),
        cmocka_unit_test(test_prefix),
        cmocka_unit_test(test_internal_keys_skipped),
        cmocka_unit_test(test_expired_skipped),
        cmocka_unit_test(test_bucket_bound),
        cmocka_unit_test(test_callback_stop),
        cmocka_unit_test(test_equal_hashes_not_split),
        cmocka_unit_test(test_churn_grow_and_shrink),
        cmocka_unit_test(test_churn_prefix_small_bucket_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
