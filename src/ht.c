/*
 * ht — chained hash table with incremental rehashing (see ht.h).
 *
 * Layout: two tables.  Normally only t[0] is in use and t[1] has no bucket
 * array.  A resize allocates t[1] and then every ht_find/ht_put/ht_remove
 * moves a few t[0] buckets into it (rehash_step): at most HT_STEP_BUCKETS
 * non-empty buckets, visiting at most HT_STEP_EMPTY empty ones, so one
 * request never pays for more than a bounded amount of work.  When t[0] is
 * empty its array is freed and t[1] becomes t[0].  Rehashing is in progress
 * exactly when t[1].buckets != NULL.
 *
 * Sizes are powers of two, never below HT_INITIAL_SIZE; an entry lives in
 * bucket (hash & mask).  While rehashing, buckets of t[0] below rehash_idx
 * are empty and new entries go to t[1]; lookups probe t[0] (only if the
 * bucket may still hold entries) and then t[1].
 *
 * Resize policy (checked after ht_put and ht_remove, never on lookups, so
 * ht_find never allocates): grow when count >= buckets, shrink when
 * count < buckets/8 and buckets > HT_INITIAL_SIZE.  Both go to the smallest
 * power of two >= 2*count (at least HT_INITIAL_SIZE): a grown table is half
 * full and a shrunk one at most a quarter full, so neither immediately
 * triggers the opposite resize.
 *
 * ht_scan uses the reverse-binary cursor of Redis SCAN: the cursor's low
 * bits index a bucket and are incremented from the most significant mask
 * bit down, so all buckets of a larger table that expand one bucket of a
 * smaller table are visited consecutively, and a cursor stays meaningful
 * when the table size changes between calls.  Seen from the hash side, the
 * cursor order is the order of bit-reversed hashes (ht_position): every
 * bucket of every size is a contiguous range of positions.  ht_scan_one
 * visits one bucket of the larger table per call (filtering the smaller
 * table's chain) for callers that bound their work per call exactly.
 */
#include "ht.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

#define HT_INITIAL_SIZE ((size_t)16)
#define HT_STEP_BUCKETS 4  /* non-empty buckets moved per rehash step */
#define HT_STEP_EMPTY   40 /* empty buckets visited per rehash step, at most */

typedef struct ht_table {
    ht_entry **buckets; /* NULL for t[1] when not rehashing */
    size_t size;        /* power of two, or 0 when buckets == NULL */
    size_t mask;        /* size - 1 */
    size_t used;        /* entries linked in this table */
} ht_table;

struct ht {
    ht_table t[2];
    size_t rehash_idx; /* next t[0] bucket to move; meaningful while rehashing */
};

static inline int is_rehashing(const ht *t) { return t->t[1].buckets != NULL; }

static inline int key_matches(const ht_entry *e, uint64_t hash, const void *key, size_t key_len) {
    return e->hash == hash && e->key_len == key_len &&
           (key_len == 0 || memcmp(e->data, key, key_len) == 0);
}

ht_entry *ht_entry_new(uint64_t hash, const void *key, size_t key_len, const void *val, size_t val_len) {
    /* Lengths must fit the 32-bit fields; the sum cannot overflow size_t then. */
    if (key_len > UINT32_MAX || val_len > UINT32_MAX) return NULL;
    ht_entry *e = skv_try_malloc(sizeof(*e) + key_len + val_len);
    if (!e) return NULL;
    e->next = NULL;
    e->hash = hash;
    e->version = 0;
    e->key_len = (uint32_t)key_len;
    e->val_len = (uint32_t)val_len;
    e->flags = 0;
    e->atime = 0;
    e->expires_ms = 0;
    if (key_len) memcpy(e->data, key, key_len);
    if (val_len) memcpy(e->data + key_len, val, val_len);
    return e;
}

static void table_init(ht_table *tb, size_t size) {
    tb->buckets = skv_calloc(size, sizeof(*tb->buckets));
    tb->size = size;
    tb->mask = size - 1;
    tb->used = 0;
}

static void table_free_entries(ht_table *tb) {
    for (size_t i = 0; i < tb->size; i++) {
        ht_entry *e = tb->buckets[i];
        while (e) {
            ht_entry *next = e->next;
            free(e);
            e = next;
        }
    }
    free(tb->buckets);
    memset(tb, 0, sizeof(*tb));
}

ht *ht_new(void) {
    ht *t = skv_calloc(1, sizeof(*t));
    table_init(&t->t[0], HT_INITIAL_SIZE);
    return t;
}

void ht_free(ht *t) {
    if (!t) return;
    table_free_entries(&t->t[0]);
    table_free_entries(&t->t[1]);
    free(t);
}

/* Moves every entry of t[0]'s bucket idx into t[1]. */
static void move_bucket(ht *t, size_t idx) {
    ht_table *from = &t->t[0], *to = &t->t[1];
    ht_entry *e = from->buckets[idx];
    from->buckets[idx] = NULL;
    while (e) {
        ht_entry *next = e->next;
        size_t dst = (size_t)e->hash & to->mask;
        e->next = to->buckets[dst];
        to->buckets[dst] = e;
        from->used--;
        to->used++;
        e = next;
    }
}

/* One bounded unit of rehashing work; finishes the resize when t[0] is empty. */
static void rehash_step(ht *t) {
    ht_table *from = &t->t[0];
    int moved = 0, empty_left = HT_STEP_EMPTY;
    while (moved < HT_STEP_BUCKETS && from->used > 0) {
        assert(t->rehash_idx < from->size);
        if (from->buckets[t->rehash_idx] == NULL) {
            t->rehash_idx++;
            if (--empty_left == 0) return;
            continue;
        }
        move_bucket(t, t->rehash_idx);
        t->rehash_idx++;
        moved++;
    }
    if (from->used == 0) {
        free(from->buckets);
        t->t[0] = t->t[1];
        memset(&t->t[1], 0, sizeof(t->t[1]));
        t->rehash_idx = 0;
    }
}

/* Smallest power of two >= 2*count, at least HT_INITIAL_SIZE. */
static size_t target_size(size_t count) {
    size_t want = count > SIZE_MAX / 2 ? SIZE_MAX : count * 2;
    size_t size = HT_INITIAL_SIZE;
    while (size < want && size <= SIZE_MAX / 2) size <<= 1;
    return size;
}

/* Starts a grow or shrink when the load factor calls for one. */
static void maybe_resize(ht *t) {
    if (is_rehashing(t)) return;
    size_t size = t->t[0].size, count = t->t[0].used;
    if (count < size && !(size > HT_INITIAL_SIZE && count < size / 8)) return;
    size_t new_size = target_size(count);
    if (new_size == size) return;
    table_init(&t->t[1], new_size);
    t->rehash_idx = 0;
}

/*
 * Returns the link (bucket head or a predecessor's next field) that points
 * at the entry with this key, or NULL.  *table receives its table index.
 */
static ht_entry **find_link(ht *t, uint64_t hash, const void *key, size_t key_len, int *table) {
    size_t idx = (size_t)hash & t->t[0].mask;
    if (!is_rehashing(t) || idx >= t->rehash_idx) {
        for (ht_entry **link = &t->t[0].buckets[idx]; *link; link = &(*link)->next) {
            if (key_matches(*link, hash, key, key_len)) {
                *table = 0;
                return link;
            }
        }
    }
    if (is_rehashing(t)) {
        idx = (size_t)hash & t->t[1].mask;
        for (ht_entry **link = &t->t[1].buckets[idx]; *link; link = &(*link)->next) {
            if (key_matches(*link, hash, key, key_len)) {
                *table = 1;
                return link;
            }
        }
    }
    return NULL;
}

ht_entry *ht_find(ht *t, uint64_t hash, const void *key, size_t key_len) {
    if (is_rehashing(t)) rehash_step(t);
    int table = 0;
    ht_entry **link = find_link(t, hash, key, key_len, &table);
    return link ? *link : NULL;
}

ht_entry *ht_put(ht *t, ht_entry *e) {
    assert(e && e->next == NULL);
    if (is_rehashing(t)) rehash_step(t);
    int table = 0;
    ht_entry **link = find_link(t, e->hash, ht_entry_key(e), e->key_len, &table);
    if (link) {
        ht_entry *old = *link;
        e->next = old->next;
        *link = e;
        old->next = NULL;
        return old;
    }
    ht_table *tb = &t->t[is_rehashing(t) ? 1 : 0];
    size_t idx = (size_t)e->hash & tb->mask;
    e->next = tb->buckets[idx];
    tb->buckets[idx] = e;
    tb->used++;
    maybe_resize(t);
    return NULL;
}

ht_entry *ht_remove(ht *t, uint64_t hash, const void *key, size_t key_len) {
    if (is_rehashing(t)) rehash_step(t);
    int table = 0;
    ht_entry **link = find_link(t, hash, key, key_len, &table);
    if (!link) return NULL;
    ht_entry *e = *link;
    *link = e->next;
    e->next = NULL;
    t->t[table].used--;
    maybe_resize(t);
    return e;
}

size_t ht_count(const ht *t) { return t->t[0].used + t->t[1].used; }

size_t ht_overhead_bytes(const ht *t) {
    return (t->t[0].size + t->t[1].size) * sizeof(ht_entry *);
}

int ht_is_rehashing(const ht *t) { return is_rehashing(t); }

/* Reverses the bit order of a 64-bit word. */
static uint64_t rev64(uint64_t v) {
    v = ((v >> 1) & 0x5555555555555555ULL) | ((v & 0x5555555555555555ULL) << 1);
    v = ((v >> 2) & 0x3333333333333333ULL) | ((v & 0x3333333333333333ULL) << 2);
    v = ((v >> 4) & 0x0F0F0F0F0F0F0F0FULL) | ((v & 0x0F0F0F0F0F0F0F0FULL) << 4);
    return __builtin_bswap64(v);
}

/* Increments the bits of v under mask in reverse order (most significant first). */
static uint64_t rev_increment(uint64_t v, uint64_t mask) {
    v |= ~mask;
    v = rev64(v);
    v++;
    return rev64(v);
}

static void emit_bucket(const ht_entry *e, void (*fn)(void *arg, const ht_entry *e), void *arg) {
    while (e) {
        const ht_entry *next = e->next;
        fn(arg, e);
        e = next;
    }
}

uint64_t ht_scan(ht *t, uint64_t cursor, void (*fn)(void *arg, const ht_entry *e), void *arg) {
    uint64_t v = cursor;
    if (!is_rehashing(t)) {
        const ht_table *tb = &t->t[0];
        emit_bucket(tb->buckets[v & tb->mask], fn, arg);
        return rev_increment(v, tb->mask);
    }
    /* Visit the cursor's bucket in the smaller table, then every bucket of
     * the larger table that it expands to (they differ only in the mask
     * bits the smaller table lacks, which rev_increment walks first). */
    const ht_table *small = &t->t[0], *large = &t->t[1];
    if (small->size > large->size) {
        small = &t->t[1];
        large = &t->t[0];
    }
    uint64_t m0 = small->mask, m1 = large->mask;
    emit_bucket(small->buckets[v & m0], fn, arg);
    do {
        emit_bucket(large->buckets[v & m1], fn, arg);
        v = rev_increment(v, m1);
    } while (v & (m0 ^ m1));
    return v;
}

uint64_t ht_position(uint64_t x) { return rev64(x); }

/* Calls fn for the entries of chain e whose hash is idx under mask. */
static void emit_matching(const ht_entry *e, uint64_t idx, uint64_t mask, void (*fn)(void *arg, const ht_entry *e),
                          void *arg) {
    while (e) {
        const ht_entry *next = e->next;
        if ((e->hash & mask) == idx) fn(arg, e);
        e = next;
    }
}

uint64_t ht_scan_one(ht *t, uint64_t cursor, void (*fn)(void *arg, const ht_entry *e), void *arg) {
    if (!is_rehashing(t)) return ht_scan(t, cursor, fn, arg);
    const ht_table *small = &t->t[0], *large = &t->t[1];
    if (small->size > large->size) {
        small = &t->t[1];
        large = &t->t[0];
    }
    uint64_t idx = cursor & large->mask;
    /* The smaller table's bucket also holds the entries of the other
     * larger-table buckets that it expands to: keep only idx's. */
    emit_matching(small->buckets[idx & small->mask], idx, large->mask, fn, arg);
    emit_bucket(large->buckets[idx], fn, arg);
    return rev_increment(cursor, large->mask);
}

/* Checks one table: power-of-two size, entries in their hash's bucket, used
 * matches the linked entries.  Walks at most limit entries (cycle guard). */
static int table_check(const ht_table *tb, size_t limit) {
    if (!tb->buckets) return tb->size == 0 && tb->used == 0;
    if (tb->size < HT_INITIAL_SIZE || (tb->size & tb->mask) != 0 || tb->mask != tb->size - 1) return 0;
    size_t n = 0;
    for (size_t i = 0; i < tb->size; i++) {
        for (const ht_entry *e = tb->buckets[i]; e; e = e->next) {
            if (((size_t)e->hash & tb->mask) != i) return 0;
            if (++n > limit) return 0;
        }
    }
    return n == tb->used;
}

int ht_check(const ht *t) {
    if (!t || !t->t[0].buckets) return 0;
    if (!table_check(&t->t[0], t->t[0].used) || !table_check(&t->t[1], t->t[1].used)) return 0;
    if (!is_rehashing(t)) return t->rehash_idx == 0;
    if (t->rehash_idx > t->t[0].size || t->t[0].size == t->t[1].size) return 0;
    for (size_t i = 0; i < t->rehash_idx; i++)
        if (t->t[0].buckets[i]) return 0;
    return 1;
}
