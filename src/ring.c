/*
 * ring — placement of keys on shards (contract in ring.h).
 *
 * Layout.  A ring holds its config and, for the "ring" strategy, two
 * parallel arrays in ring order: points[i] (a 128-bit value as hi, lo) and
 * owners[i] (the shard that owns the arc ending at points[i]).  shares[s]
 * is the fraction of the hash space shard s owns, computed once at build.
 *
 * Hash space.  Both hashes are treated as 128-bit points: md5 fills both
 * halves, xxh3 only hi (lo = 0), so the same comparison, search and arc
 * arithmetic serve both.  A key hashing to h belongs to the first point
 * >= h; past the last point it wraps to points[0].  The arc owned by
 * points[i] is (points[i-1], points[i]], and points[0] owns the wrap-around
 * arc (points[n-1], top] + [0, points[0]].
 *
 * Duplicates.  The seed fills a Python dict in label order
 * (shard_1#0, shard_1#1, ..., shard_N#V-1); a label hashing to a point
 * already present overwrites its owner.  We sort (point, label order) and
 * keep the last label of each run of equal points, which is the same rule.
 *
 * Invariants (ring_check): points strictly increasing, every owner below
 * shards, every shard owns at least one point ("ring" strategy), and no
 * points at all for modulo and jump.
 *
 * Threads.  A built ring is read-only; lookups allocate nothing (md5 uses
 * OpenSSL's one-shot MD5() with its context on the stack; the EVP API
 * would allocate a context per digest).
 */
#include "ring.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* MD5() is deprecated in OpenSSL 3 only in favour of EVP, which allocates a
 * context per call; the one-shot function stays available and is exact. */
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/md5.h>
#include <xxhash.h>

#include "buf.h"
#include "err.h"
#include "mem.h"

__extension__ typedef unsigned __int128 ring_u128;

struct ring {
    ring_config cfg;
    size_t npoints;
    ring_point *points;     /* sorted, strictly increasing */
    uint32_t *owners;       /* owners[i] owns points[i] */
    double *shares;         /* shares[shard], sums to 1 */
};

/* A vnode while building: its point and its label's position in the
 * seed's dict fill order, the tie-breaker for equal points. */
typedef struct ring_build_node {
    ring_point point;
    uint32_t order;
    uint32_t shard;
} ring_build_node;

/* ---- names ------------------------------------------------------------ */

static const char *const ring_strategy_names[] = { "ring", "modulo", "jump" };
static const char *const ring_hash_names[] = { "xxh3", "md5" };

const char *ring_strategy_name(int strategy) {
    if (strategy < 0 || strategy > RING_STRATEGY_JUMP) return "unknown";
    return ring_strategy_names[strategy];
}

const char *ring_hash_name(int hash) {
    if (hash < 0 || hash > RING_HASH_MD5) return "unknown";
    return ring_hash_names[hash];
}

int ring_strategy_parse(const char *s) {
    for (int i = 0; i <= RING_STRATEGY_JUMP; i++)
        if (s && strcmp(s, ring_strategy_names[i]) == 0) return i;
    return -1;
}

int ring_hash_parse(const char *s) {
    for (int i = 0; i <= RING_HASH_MD5; i++)
        if (s && strcmp(s, ring_hash_names[i]) == 0) return i;
    return -1;
}

/* ---- points ----------------------------------------------------------- */

static int ring_point_cmp(ring_point a, ring_point b) {
    if (a.hi != b.hi) return a.hi < b.hi ? -1 : 1;
    if (a.lo != b.lo) return a.lo < b.lo ? -1 : 1;
    return 0;
}

/* (a - b) mod 2^128. */
static ring_point ring_point_sub(ring_point a, ring_point b) {
    ring_point d;
    d.lo = a.lo - b.lo;
    d.hi = a.hi - b.hi - (a.lo < b.lo ? 1u : 0u);
    return d;
}

/* A distance in the 128-bit space as a fraction of the whole space.  For
 * xxh3 the space is 2^64 values of hi, and lo is always 0, so the same
 * scaling gives the same fraction. */
static double ring_point_fraction(ring_point d) {
    return (double)d.hi * 0x1p-64 + (double)d.lo * 0x1p-128;
}

static uint64_t ring_load_be64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
    return v;
}

ring_point ring_hash_key(const ring *r, const void *key, size_t len) {
    ring_point p = { 0, 0 };
    if (r->cfg.hash == RING_HASH_XXH3) {
        p.hi = XXH3_64bits(key, len);
        return p;
    }
    unsigned char digest[MD5_DIGEST_LENGTH];
    MD5(key, len, digest);
    p.hi = ring_load_be64(digest);
    p.lo = ring_load_be64(digest + 8);
    return p;
}

/* ---- building --------------------------------------------------------- */

static int ring_config_valid(const ring_config *cfg) {
    if (cfg->strategy < RING_STRATEGY_RING || cfg->strategy > RING_STRATEGY_JUMP) return 0;
    if (cfg->hash < RING_HASH_XXH3 || cfg->hash > RING_HASH_MD5) return 0;
    if (cfg->shards < 1 || cfg->shards > RING_MAX_SHARDS) return 0;
    if (cfg->vnodes < 1 || cfg->vnodes > RING_MAX_VNODES) return 0;
    return 1;
}

static int ring_build_node_cmp(const void *pa, const void *pb) {
    const ring_build_node *a = pa, *b = pb;
    int c = ring_point_cmp(a->point, b->point);
    if (c) return c;
    return a->order < b->order ? -1 : (a->order > b->order);
}

/* Hashes every label, sorts, and keeps the last label of each run of equal
 * points.  Fills r->points, r->owners, r->npoints. */
static void ring_build_points(ring *r) {
    uint32_t shards = r->cfg.shards, vnodes = r->cfg.vnodes;
    size_t total = (size_t)shards * vnodes;
    ring_build_node *nodes = skv_malloc(total * sizeof(*nodes));
    char label[48];
    for (uint32_t s = 0; s < shards; s++) {
        for (uint32_t v = 0; v < vnodes; v++) {
            int n = snprintf(label, sizeof(label), "shard_%u#%u", s + 1, v);
            size_t i = (size_t)s * vnodes + v;
            nodes[i].point = ring_hash_key(r, label, (size_t)n);
            nodes[i].order = (uint32_t)i;
            nodes[i].shard = s;
        }
    }
    qsort(nodes, total, sizeof(*nodes), ring_build_node_cmp);

    r->points = skv_malloc(total * sizeof(*r->points));
    r->owners = skv_malloc(total * sizeof(*r->owners));
    size_t n = 0;
    for (size_t i = 0; i < total; i++) {
        if (i + 1 < total && ring_point_cmp(nodes[i].point, nodes[i + 1].point) == 0)
            continue; /* a later label takes this point */
        r->points[n] = nodes[i].point;
        r->owners[n] = nodes[i].shard;
        n++;
    }
    r->npoints = n;
    free(nodes);
}

static void ring_compute_shares(ring *r) {
    uint32_t shards = r->cfg.shards;
    r->shares = skv_calloc(shards, sizeof(*r->shares));
    if (r->cfg.strategy != RING_STRATEGY_RING) {
        for (uint32_t s = 0; s < shards; s++) r->shares[s] = 1.0 / shards;
        return;
    }
    if (r->npoints == 1 || shards == 1) {
        r->shares[r->owners[0]] = 1.0; /* the whole space, without rounding */
        return;
    }
    for (size_t i = 0; i < r->npoints; i++) {
        ring_point prev = r->points[i ? i - 1 : r->npoints - 1];
        ring_point arc = ring_point_sub(r->points[i], prev);
        r->shares[r->owners[i]] += ring_point_fraction(arc);
    }
}

int ring_new(const ring_config *cfg, ring **out) {
    if (!cfg || !out || !ring_config_valid(cfg)) return SKV_EINVAL;
    ring *r = skv_calloc(1, sizeof(*r));
    r->cfg = *cfg;
    if (cfg->strategy == RING_STRATEGY_RING) ring_build_points(r);
    ring_compute_shares(r);
    assert(ring_check(r));
    *out = r;
    return SKV_OK;
}

void ring_free(ring *r) {
    if (!r) return;
    free(r->points);
    free(r->owners);
    free(r->shares);
    free(r);
}

const ring_config *ring_get_config(const ring *r) { return &r->cfg; }

/* ---- lookup ----------------------------------------------------------- */

/* Index of the first point >= p, or 0 when p is past the last point. */
static size_t ring_find_point(const ring *r, ring_point p) {
    size_t lo = 0, hi = r->npoints;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ring_point_cmp(r->points[mid], p) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo == r->npoints ? 0 : lo;
}

/* Lamping & Veach, "A Fast, Minimal Memory, Consistent Hash Algorithm":
 * a linear congruential walk that jumps forward to the next bucket count
 * at which the key would move. */
static uint32_t ring_jump(uint64_t key, uint32_t buckets) {
    int64_t b = -1, j = 0;
    while (j < (int64_t)buckets) {
        b = j;
        key = key * 2862933555777941757ULL + 1;
        j = (int64_t)((double)(b + 1) * ((double)(1LL << 31) / (double)((key >> 33) + 1)));
    }
    return (uint32_t)b;
}

uint32_t ring_shard_for_key(const ring *r, const void *key, size_t len, ring_point *point_out) {
    ring_point p = ring_hash_key(r, key, len);
    if (point_out) *point_out = p;
    return ring_shard_for_point(r, p, key, len);
}

uint32_t ring_shard_for_point(const ring *r, ring_point p, const void *key, size_t len) {
    uint32_t n = r->cfg.shards;
    switch (r->cfg.strategy) {
    case RING_STRATEGY_MODULO: {
        uint64_t id;
        if (len > 0 && skv_slice_to_u64(skv_slice_make(key, len), &id) == SKV_OK)
            return (uint32_t)(id % n);
        return (uint32_t)(p.hi % n);
    }
    case RING_STRATEGY_JUMP:
        return ring_jump(p.hi, n);
    default:
        return r->owners[ring_find_point(r, p)];
    }
}

/* ---- introspection ---------------------------------------------------- */

double ring_share(const ring *r, uint32_t shard) {
    if (shard >= r->cfg.shards) return 0.0;
    return r->shares[shard];
}

size_t ring_vnode_count(const ring *r) { return r->npoints; }

void ring_vnode(const ring *r, size_t i, ring_point *point, uint32_t *shard) {
    assert(i < r->npoints);
    if (point) *point = r->points[i];
    if (shard) *shard = r->owners[i];
}

size_t ring_point_format(const ring *r, ring_point p, char *out) {
    if (r->cfg.hash == RING_HASH_XXH3) return skv_u64_to_dec(p.hi, out);
    ring_u128 v = ((ring_u128)p.hi << 64) | p.lo;
    char tmp[40]; /* 2^128 - 1 has 39 digits */
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + (unsigned)(v % 10));
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return n;
}

int ring_check(const ring *r) {
    if (!r || !ring_config_valid(&r->cfg) || !r->shares) return 0;
    if (r->cfg.strategy != RING_STRATEGY_RING) return r->npoints == 0;
    if (r->npoints == 0 || !r->points || !r->owners) return 0;
    uint8_t *seen = skv_calloc(r->cfg.shards, 1);
    int ok = 1;
    for (size_t i = 0; i < r->npoints && ok; i++) {
        if (r->owners[i] >= r->cfg.shards) ok = 0;
        else seen[r->owners[i]] = 1;
        if (i > 0 && ring_point_cmp(r->points[i - 1], r->points[i]) >= 0) ok = 0;
    }
    for (uint32_t s = 0; s < r->cfg.shards && ok; s++)
        if (!seen[s]) ok = 0;
    free(seen);
    return ok;
}
