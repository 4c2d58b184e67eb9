/*
 * hotkeys — per-(worker, shard) Space-Saving summaries of the most
 * requested keys, merged at read time.  The algorithm, its error bound and
 * the invariants are in hotkeys.h; this comment describes the layout and
 * the concurrency protocol.
 *
 * Layout.  A worker's summaries are one cache-line-aligned array
 * sums[nshards], allocated once; no two workers share a line.  A summary
 * keeps its counters as parallel arrays, so that the two scans of the hot
 * path (find the key's counter by hash; find the smallest count) each read
 * a few contiguous lines and the key bytes are only touched on a hash match
 * or a replacement:
 *     hseq, epoch, requests | hint[64] | tag[32] | count[32] | error[32] |
 *     seq[32] | full_len[32] | hash[32] | key[32][128 bytes, as 16 u64 words]
 * hint maps the top 6 bits of a hash to the counter that last held such a
 * key, so a hot key is usually found without a scan; otherwise one vector
 * pass over the 32-bit tags tells a miss, and a miss takes one vector pass
 * over the counts to find the smallest (counts are 32-bit: with the halving
 * every HOTKEYS_DECAY_SECONDS they stay far below 2^32; they saturate).
 *
 * Concurrency.  Only the owning worker writes a summary; every field that a
 * reader loads is written with relaxed atomic stores (the worker reads its
 * own fields plainly: no other thread writes them).  Two sequence counters
 * make multi-field changes appear whole (seqlock: odd while changing):
 *   - seq[i] covers a replacement of counter i (hash, length, key, count,
 *     error change together);
 *   - hseq covers an epoch shift (every count and error, requests, epoch).
 * A hit changes one word (count[i]) and a request one word (requests), so
 * they need no sequence bump.  A reader copies a summary: hseq even, then
 * each counter under its seq[i] (retrying that counter while it changes),
 * then hseq again, retrying the whole copy if an epoch shift happened in
 * between (once per HOTKEYS_DECAY_SECONDS).  A replacement takes a few
 * ns, so a reader's retries are rare and short.
 */
#include "hotkeys.h"

#include <assert.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mem.h"

#define CAP HOTKEYS_CAPACITY
#define KEY_WORDS (HOTKEYS_KEY_MAX / 8)
#define EPOCH_MS ((uint64_t)HOTKEYS_DECAY_SECONDS * 1000)
#define HINT_BITS 6
#define CACHE_LINE 64

_Static_assert(HOTKEYS_KEY_MAX % 8 == 0, "keys are stored as whole 64-bit words");
_Static_assert(CAP <= 255, "hint entries are bytes");

typedef struct summary {
    _Alignas(CACHE_LINE) uint32_t hseq; /* odd while an epoch shift is being applied */
    uint64_t epoch;                     /* decay epoch the counts are expressed in */
    uint64_t requests;                  /* requests counted, decayed like the counts */
    uint8_t hint[1u << HINT_BITS];      /* hash >> (64 - HINT_BITS) -> a counter index (a guess) */
    _Alignas(16) uint32_t tag[CAP];     /* hash >> 32: the vector scan for a key */
    _Alignas(16) uint32_t count[CAP];   /* 0 = free counter; saturates (decay keeps it far below) */
    uint32_t error[CAP];
    uint32_t seq[CAP];                  /* odd while counter i is being replaced */
    uint32_t full_len[CAP];             /* saturates at UINT32_MAX */
    uint64_t hash[CAP];
    uint64_t key[CAP][KEY_WORDS];       /* first min(full_len, KEY_MAX) bytes */
} summary;

/* Four 32-bit lanes (GCC/clang vector extensions: SSE2 on x86-64, NEON on
 * arm64, plain code elsewhere): the two scans of the hot path without a
 * data-dependent branch. */
typedef uint32_t v4u32 __attribute__((vector_size(16)));
#define NVEC (CAP / 4)
_Static_assert(CAP % 4 == 0, "whole vectors of counters");

struct hotkeys_worker {
    hotkeys_clock_fn clock;
    uint32_t nshards;
    summary *sums;                      /* [nshards], cache-line aligned inside raw */
    void *raw;                          /* what skv_calloc returned */
};

struct hotkeys {
    unsigned nworkers;
    uint32_t nshards;
    hotkeys_clock_fn clock;
    hotkeys_worker *workers;            /* [nworkers] */
};

/* ---- atomics ------------------------------------------------------------------------------- */

static inline void put64(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
static inline void put32(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
static inline uint64_t get64(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline uint32_t get32(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }

/* Writer: makes *seq odd before the protected stores. */
static inline void seq_begin(uint32_t *seq) {
    put32(seq, *seq + 1);
    __atomic_thread_fence(__ATOMIC_RELEASE);
}

/* Writer: makes *seq even again, after the protected stores. */
static inline void seq_end(uint32_t *seq) { __atomic_store_n(seq, *seq + 1, __ATOMIC_RELEASE); }

/* Reader: waits for an even *seq and returns it. */
static uint32_t seq_read_begin(const uint32_t *seq) {
    for (unsigned spins = 0;; spins++) {
        uint32_t s = __atomic_load_n(seq, __ATOMIC_ACQUIRE);
        if (!(s & 1)) return s;
        if (spins > 64) sched_yield();
    }
}

/* Reader: 1 when nothing changed since seq_read_begin returned s. */
static int seq_read_ok(const uint32_t *seq, uint32_t s) {
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    return get32(seq) == s;
}

/* ---- clock --------------------------------------------------------------------------------- */

static uint64_t default_clock_ms(void) {
    struct timespec ts;
#ifdef CLOCK_MONOTONIC_COARSE
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
#else
    clock_gettime(CLOCK_MONOTONIC, &ts);
#endif
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- invariants ---------------------------------------------------------------------------- */

/* Only called inside assert() (and by hotkeys_check). */
static int summary_is_valid(const summary *s) {
    uint64_t sum = 0;
    for (int i = 0; i < CAP; i++) {
        if (s->seq[i] & 1) return 0;
        if (!s->count[i]) continue;
        if (s->error[i] > s->count[i]) return 0;
        sum += s->count[i];
        size_t n = s->full_len[i] < HOTKEYS_KEY_MAX ? s->full_len[i] : HOTKEYS_KEY_MAX;
        for (int j = 0; j < i; j++)
            if (s->count[j] && s->hash[j] == s->hash[i] && s->full_len[j] == s->full_len[i] &&
                memcmp(s->key[j], s->key[i], n) == 0)
                return 0;
    }
    return !(s->hseq & 1) && sum <= s->requests;
}

int hotkeys_check(const hotkeys *hk) {
    for (unsigned w = 0; w < hk->nworkers; w++)
        for (uint32_t i = 0; i < hk->nshards; i++)
            if (!summary_is_valid(&hk->workers[w].sums[i])) return 0;
    return 1;
}

/* ---- lifecycle ----------------------------------------------------------------------------- */

static void summaries_init(hotkeys_worker *w, uint32_t n, uint64_t epoch) {
    w->raw = skv_calloc(1, (size_t)n * sizeof(summary) + CACHE_LINE - 1);
    w->sums = (summary *)(((uintptr_t)w->raw + CACHE_LINE - 1) & ~(uintptr_t)(CACHE_LINE - 1));
    for (uint32_t i = 0; i < n; i++) w->sums[i].epoch = epoch;
}

hotkeys *hotkeys_new(unsigned nworkers, uint32_t nshards, hotkeys_clock_fn clock) {
    assert(nworkers >= 1 && nshards >= 1);
    hotkeys *hk = skv_calloc(1, sizeof *hk);
    hk->nworkers = nworkers;
    hk->nshards = nshards;
    hk->clock = clock ? clock : default_clock_ms;
    hk->workers = skv_calloc(nworkers, sizeof *hk->workers);
    uint64_t epoch = hk->clock() / EPOCH_MS;
    for (unsigned w = 0; w < nworkers; w++) {
        hk->workers[w].clock = hk->clock;
        hk->workers[w].nshards = nshards;
        summaries_init(&hk->workers[w], nshards, epoch);
    }
    return hk;
}

void hotkeys_free(hotkeys *hk) {
    if (!hk) return;
    for (unsigned w = 0; w < hk->nworkers; w++) free(hk->workers[w].raw);
    free(hk->workers);
    free(hk);
}

hotkeys_worker *hotkeys_worker_slot(hotkeys *hk, unsigned id) {
    assert(id < hk->nworkers);
    return &hk->workers[id];
}

/* ---- hot path ------------------------------------------------------------------------------ */

static inline unsigned hint_of(uint64_t hash) { return (unsigned)(hash >> (64 - HINT_BITS)); }

static inline uint32_t len32(size_t len) { return len > UINT32_MAX ? UINT32_MAX : (uint32_t)len; }

static inline v4u32 vload(const uint32_t *p) {
    v4u32 v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* 1 when counter i holds key. */
static inline int holds(const summary *s, int i, skv_slice key, uint64_t hash) {
    if (!s->count[i] || s->hash[i] != hash || s->full_len[i] != len32(key.len)) return 0;
    size_t n = key.len < HOTKEYS_KEY_MAX ? key.len : HOTKEYS_KEY_MAX;
    return memcmp(s->key[i], key.ptr, n) == 0;
}

/* 1 when some counter's tag is t (holds() decides whether it is the key). */
static inline int any_tag(const summary *s, uint32_t t) {
    v4u32 want = { t, t, t, t }, acc = { 0, 0, 0, 0 };
    for (int v = 0; v < NVEC; v++) acc |= (v4u32)(vload(&s->tag[4 * v]) == want);
    return (acc[0] | acc[1] | acc[2] | acc[3]) != 0;
}

/* The counter holding key, or -1. */
static inline int find(const summary *s, skv_slice key, uint64_t hash) {
    int g = s->hint[hint_of(hash)];
    if (holds(s, g, key, hash)) return g;
    uint32_t t = (uint32_t)(hash >> 32);
    if (!any_tag(s, t)) return -1;
    for (int i = 0; i < CAP; i++)
        if (s->tag[i] == t && holds(s, i, key, hash)) return i;
    return -1;
}

/* The counter with the smallest count (a free one has 0), in *min. */
static inline int min_counter(const summary *s, uint32_t *min) {
    v4u32 m = vload(&s->count[0]), at = { 0, 1, 2, 3 }, idx = at, four = { 4, 4, 4, 4 };
    for (int v = 1; v < NVEC; v++) {
        idx += four;
        v4u32 c = vload(&s->count[4 * v]);
        v4u32 lt = (v4u32)(c < m);
        m = (c & lt) | (m & ~lt);
        at = (idx & lt) | (at & ~lt);
    }
    uint32_t best = m[0], best_at = at[0];
    for (int l = 1; l < 4; l++)
        if (m[l] < best) best = m[l], best_at = at[l];
    *min = best;
    return (int)best_at;
}

/* Halves everything once per epoch boundary crossed since s->epoch. */
static void shift_to(summary *s, uint64_t epoch) {
    uint64_t k = epoch - s->epoch;
    seq_begin(&s->hseq);
    for (int i = 0; i < CAP; i++) {
        put32(&s->count[i], k >= 32 ? 0 : s->count[i] >> k);
        put32(&s->error[i], k >= 32 ? 0 : s->error[i] >> k);
    }
    put64(&s->requests, k >= 64 ? 0 : s->requests >> k);
    put64(&s->epoch, epoch);
    seq_end(&s->hseq);
    assert(summary_is_valid(s));
}

/* Space-Saving replacement: key takes the counter with the smallest count. */
static void replace_min(summary *s, skv_slice key, uint64_t hash) {
    uint32_t m;
    int at = min_counter(s, &m);
    uint64_t words[KEY_WORDS];
    size_t n = key.len < HOTKEYS_KEY_MAX ? key.len : HOTKEYS_KEY_MAX;
    size_t nw = (n + 7) / 8; /* bytes past the key are never compared or copied out */
    words[nw - 1] = 0;
    memcpy(words, key.ptr, n);
    seq_begin(&s->seq[at]);
    put64(&s->hash[at], hash);
    put32(&s->tag[at], (uint32_t)(hash >> 32));
    put32(&s->full_len[at], len32(key.len));
    for (size_t w = 0; w < nw; w++) put64(&s->key[at][w], words[w]);
    put32(&s->error[at], m);
    put32(&s->count[at], m + (m < UINT32_MAX));
    seq_end(&s->seq[at]);
    s->hint[hint_of(hash)] = (uint8_t)at;
}

void hotkeys_record(hotkeys_worker *w, uint32_t shard, skv_slice key, uint64_t hash) {
    if (key.len == 0 || key.ptr[0] == '\0' || shard >= w->nshards) return;
    summary *s = &w->sums[shard];
    uint64_t epoch = w->clock() / EPOCH_MS;
    if (epoch > s->epoch) shift_to(s, epoch);
    put64(&s->requests, s->requests + 1);
    int i = find(s, key, hash);
    if (i >= 0) put32(&s->count[i], s->count[i] + (s->count[i] < UINT32_MAX));
    else replace_min(s, key, hash);
}

/* ---- reading ------------------------------------------------------------------------------- */

/* A counter copied out of one summary, with that summary's floor. */
typedef struct cand {
    hotkeys_entry e;
    uint64_t floor;  /* smallest count of its summary (0 when a counter is free) */
} cand;

/* Copies counter i of s into e (consistent: never a torn key). */
static void copy_counter(const summary *s, int i, hotkeys_entry *e) {
    for (;;) {
        uint32_t q = seq_read_begin(&s->seq[i]);
        e->count = get32(&s->count[i]);
        e->error = get32(&s->error[i]);
        e->hash = get64(&s->hash[i]);
        e->full_len = get32(&s->full_len[i]);
        e->len = e->full_len < HOTKEYS_KEY_MAX ? e->full_len : HOTKEYS_KEY_MAX;
        uint64_t words[KEY_WORDS];
        size_t nw = (e->len + 7) / 8;
        for (size_t w = 0; w < nw; w++) words[w] = get64(&s->key[i][w]);
        if (seq_read_ok(&s->seq[i], q)) {
            memcpy(e->key, words, e->len);
            e->truncated = e->full_len > HOTKEYS_KEY_MAX;
            return;
        }
    }
}

static int same_key(const hotkeys_entry *a, const hotkeys_entry *b) {
    return a->hash == b->hash && a->full_len == b->full_len && memcmp(a->key, b->key, a->len) == 0;
}

/* 1 when one of c[0..n) has e's key.  A copy is consistent per counter, not
 * across counters: a key evicted from a counter after that counter was
 * copied, and taken again by a later one, is seen twice. */
static int copied_already(const cand *c, size_t n, const hotkeys_entry *e) {
    for (size_t j = 0; j < n; j++)
        if (same_key(&c[j].e, e)) return 1;
    return 0;
}

/* Appends s's held counters, decayed to epoch now, to out; returns how
 * many.  *floor gets the smallest count (0 while a counter is free) and
 * *requests the decayed request total. */
static size_t copy_summary(const summary *s, uint64_t now, uint32_t shard, cand *out, uint64_t *floor,
                           uint64_t *requests) {
    hotkeys_entry tmp[CAP];
    uint64_t epoch, req;
    for (;;) {
        uint32_t q = seq_read_begin(&s->hseq);
        epoch = get64(&s->epoch);
        req = get64(&s->requests);
        for (int i = 0; i < CAP; i++) copy_counter(s, i, &tmp[i]);
        if (seq_read_ok(&s->hseq, q)) break;
    }
    uint64_t k = now > epoch ? now - epoch : 0;
    size_t n = 0;
    uint64_t m = UINT64_MAX;
    for (int i = 0; i < CAP; i++) {
        uint64_t c = k >= 32 ? 0 : tmp[i].count >> k;
        if (c < m) m = c;
        if (!c || copied_already(out, n, &tmp[i])) continue;
        out[n].e = tmp[i];
        out[n].e.shard = shard;
        out[n].e.count = c;
        out[n].e.error = k >= 32 ? 0 : tmp[i].error >> k;
        n++;
    }
    for (size_t i = 0; i < n; i++) out[i].floor = m;
    *floor = m;
    *requests = k >= 64 ? 0 : req >> k;
    return n;
}

/* Orders by key identity: hash, length, bytes. */
static int cmp_identity(const void *pa, const void *pb) {
    const hotkeys_entry *a = &((const cand *)pa)->e, *b = &((const cand *)pb)->e;
    if (a->hash != b->hash) return a->hash < b->hash ? -1 : 1;
    if (a->full_len != b->full_len) return a->full_len < b->full_len ? -1 : 1;
    return memcmp(a->key, b->key, a->len);
}

/* Hottest first: count descending, error ascending, key bytes, shard. */
static int cmp_rank(const hotkeys_entry *a, const hotkeys_entry *b) {
    if (a->count != b->count) return a->count > b->count ? -1 : 1;
    if (a->error != b->error) return a->error < b->error ? -1 : 1;
    int c = memcmp(a->key, b->key, a->len < b->len ? a->len : b->len);
    if (c) return c;
    if (a->full_len != b->full_len) return a->full_len < b->full_len ? -1 : 1;
    if (a->shard != b->shard) return a->shard < b->shard ? -1 : 1;
    return 0;
}

static int cmp_rank_cand(const void *a, const void *b) { return cmp_rank(&((const cand *)a)->e, &((const cand *)b)->e); }

static int cmp_rank_ptr(const void *a, const void *b) {
    return cmp_rank(*(const hotkeys_entry *const *)a, *(const hotkeys_entry *const *)b);
}

size_t hotkeys_shard_top(hotkeys *hk, uint32_t shard, hotkeys_entry *out, size_t max, uint64_t *requests) {
    if (requests) *requests = 0;
    if (shard >= hk->nshards) return 0;
    uint64_t now = hk->clock() / EPOCH_MS;
    cand *c = skv_malloc((size_t)hk->nworkers * CAP * sizeof *c);
    size_t n = 0;
    uint64_t floors = 0, total = 0;
    for (unsigned w = 0; w < hk->nworkers; w++) {
        uint64_t floor, req;
        n += copy_summary(&hk->workers[w].sums[shard], now, shard, c + n, &floor, &req);
        floors += floor;
        total += req;
    }
    /* Merge: a key a summary does not hold may have up to that summary's floor there. */
    qsort(c, n, sizeof *c, cmp_identity);
    size_t groups = 0;
    for (size_t i = 0; i < n;) {
        cand g = c[i];
        uint64_t held_floors = c[i].floor;
        size_t j = i + 1;
        for (; j < n && same_key(&c[j].e, &g.e); j++) {
            g.e.count += c[j].e.count;
            g.e.error += c[j].e.error;
            held_floors += c[j].floor;
        }
        uint64_t elsewhere = floors > held_floors ? floors - held_floors : 0;
        g.e.count += elsewhere;
        g.e.error += elsewhere;
        c[groups++] = g;
        i = j;
    }
    qsort(c, groups, sizeof *c, cmp_rank_cand);
    size_t k = groups < max ? groups : max;
    for (size_t i = 0; i < k; i++) out[i] = c[i].e;
    free(c);
    if (requests) *requests = total;
    return k;
}

/* ---- rendering ----------------------------------------------------------------------------- */

static void append_key_json(skv_buf *b, const hotkeys_entry *e) {
    skv_buf_append_cstr(b, "\"key\":\"");
    skv_buf_append_json_str(b, e->key, e->len);
    skv_buf_append(b, "\"", 1);
}

void hotkeys_render_json(hotkeys *hk, size_t limit, skv_buf *out) {
    if (limit < 1) limit = 1;
    if (limit > HOTKEYS_LIMIT_MAX) limit = HOTKEYS_LIMIT_MAX;
    hotkeys_entry *all = skv_malloc((size_t)hk->nshards * limit * sizeof *all);
    const hotkeys_entry **top = skv_malloc((size_t)hk->nshards * limit * sizeof *top);
    size_t ntop = 0;
    skv_buf_printf(out, "{\"decay_seconds\":%d,\"capacity\":%d,\"shards\":[", HOTKEYS_DECAY_SECONDS,
                   HOTKEYS_CAPACITY);
    for (uint32_t s = 0; s < hk->nshards; s++) {
        uint64_t requests;
        hotkeys_entry *e = all + (size_t)s * limit;
        size_t n = hotkeys_shard_top(hk, s, e, limit, &requests);
        skv_buf_printf(out, "%s{\"shard\":%u,\"requests\":%llu,\"keys\":[", s ? "," : "", s,
                       (unsigned long long)requests);
        for (size_t i = 0; i < n; i++) {
            skv_buf_append_cstr(out, i ? ",{" : "{");
            append_key_json(out, &e[i]);
            skv_buf_printf(out, ",\"count\":%llu,\"error\":%llu,\"truncated\":%s}", (unsigned long long)e[i].count,
                           (unsigned long long)e[i].error, e[i].truncated ? "true" : "false");
            top[ntop++] = &e[i];
        }
        skv_buf_append_cstr(out, "]}");
    }
    skv_buf_append_cstr(out, "],\"top\":[");
    qsort(top, ntop, sizeof *top, cmp_rank_ptr);
    for (size_t i = 0; i < ntop && i < limit; i++) {
        skv_buf_append_cstr(out, i ? ",{" : "{");
        append_key_json(out, top[i]);
        skv_buf_printf(out, ",\"shard\":%u,\"count\":%llu,\"error\":%llu,\"truncated\":%s}", top[i]->shard,
                       (unsigned long long)top[i]->count, (unsigned long long)top[i]->error,
                       top[i]->truncated ? "true" : "false");
    }
    skv_buf_append_cstr(out, "]}");
    free(top);
    free(all);
}

/* The key as a label value: UTF-8 text, control bytes and other bytes as \xNN. */
static void append_label_text(skv_buf *b, const char *key, size_t len) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)key;
    for (size_t i = 0; i < len;) {
        size_t n = p[i] >= 0x20 && p[i] < 0x7f ? 1 : p[i] >= 0x80 ? skv_utf8_seq_len(p + i, len - i) : 0;
        if (n) {
            skv_buf_append(b, p + i, n);
            i += n;
        } else {
            char esc[4] = { '\\', 'x', hex[p[i] >> 4], hex[p[i] & 15] };
            skv_buf_append(b, esc, 4);
            i++;
        }
    }
}

size_t hotkeys_metric_samples(hotkeys *hk, metrics_hot_key **out, skv_buf *labels) {
    size_t cap = (size_t)hk->nshards * HOTKEYS_METRIC_TOP;
    metrics_hot_key *h = skv_malloc(cap * sizeof *h);
    size_t *offset = skv_malloc(cap * sizeof *offset);
    hotkeys_entry e[HOTKEYS_METRIC_TOP];
    size_t n = 0;
    skv_buf_reset(labels);
    for (uint32_t s = 0; s < hk->nshards; s++) {
        size_t k = hotkeys_shard_top(hk, s, e, HOTKEYS_METRIC_TOP, NULL);
        for (size_t i = 0; i < k; i++, n++) {
            h[n].shard = s;
            h[n].rank = (uint32_t)i + 1;
            h[n].count = e[i].count;
            offset[n] = labels->len;
            append_label_text(labels, e[i].key, e[i].len);
            skv_buf_append(labels, "", 1); /* the terminator, kept inside the buffer */
        }
    }
    for (size_t i = 0; i < n; i++) h[i].key = labels->data + offset[i];
    free(offset);
    if (!n) {
        free(h);
        h = NULL;
    }
    *out = h;
    return n;
}
