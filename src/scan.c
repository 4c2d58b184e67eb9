/*
 * scan — paginated key scans (see scan.h for the route and the contract).
 *
 * Why a scan never returns a key twice and never skips a stable one.
 *
 *  1. Order.  A key's position is ht_position(hash): its xxh3 hash with the
 *     bits reversed.  It never changes, and while the shard map stays the
 *     same neither does the key's shard.  In a table of 2^b buckets, bucket
 *     i holds exactly the positions whose top b bits are reverse(i): a
 *     contiguous range.  Growing splits every range into two consecutive
 *     halves, shrinking merges consecutive ranges, and during an incremental
 *     rehash a range is found in the bucket of either table.  So "the
 *     entries with positions in [x, y)" means the same thing at every table
 *     size, and the scan order (shard, then position) is a fixed total order
 *     of keys (up to keys with equal 64-bit hashes, see 4).
 *
 *  2. State.  The cursor holds (shard s, next N): every shard below s and
 *     every position below N in s has been examined.  It holds a position,
 *     not a bucket index, because an index means different ranges under
 *     different masks (that is why Redis SCAN may repeat keys after a
 *     shrink); a full 64-bit position is exact under every mask, so neither
 *     the table size at the previous page nor the largest size seen needs
 *     remembering.
 *
 *  3. Pages.  Under the shard lock a page repeatedly takes the bucket (of
 *     the larger table: ht_scan_one) holding N, whose range [lo, hi) has
 *     lo <= N < hi.  Its entries with positions >= N (those below N were
 *     examined before) are sorted by position and examined in that order;
 *     the page either finishes the range (N = hi) or stops right after an
 *     entry at position p (N = p + 1).  Either way the positions [old N,
 *     new N) were examined at one instant, under the lock, with every entry
 *     then present in them considered.  Successive examined ranges are
 *     disjoint and adjacent, and together they cover every position of
 *     every shard exactly once.
 *     - Never twice: a key is only returned from the range holding its
 *       position, and that range is examined once.
 *     - Never skipped: a key present for the whole scan is present when its
 *       range is examined, so it is returned (if it matches the prefix and
 *       has not expired), with its value at that moment.
 *     - Nothing invented: only entries present in the table are returned.
 *
 *  4. Equal hashes.  Two different keys with the same 64-bit hash share a
 *     position (for a million keys the chance that any pair does is about
 *     3e-8).  A page never stops between two entries of equal position, so
 *     even then neither is skipped nor repeated; the page may exceed limit.
 *
 *  A cursor made under another shard map (a future resharding) is refused:
 *  its b field holds the map version it was made with.
 */
#include "scan.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "cursor.h"
#include "err.h"
#include "mem.h"

/* One entry of the bucket being examined, with its position. */
typedef struct scan_cand {
    uint64_t pos;
    const ht_entry *e;
} scan_cand;

typedef struct scan_run {
    skv_slice prefix;
    size_t limit, max_buckets;
    scan_item_fn fn;
    void *arg;
    size_t items, buckets;
    int full;          /* the page has what it needs: stop at the next position boundary */
    uint64_t now_ms;   /* the current shard's clock */
    uint64_t from;     /* collect positions >= from */
    scan_cand *cand;   /* entries of the current bucket */
    size_t ncand, capcand;
} scan_run;

static void collect(void *arg, const ht_entry *e) {
    scan_run *run = arg;
    uint64_t pos = ht_position(e->hash);
    if (pos < run->from) return;
    if (run->ncand == run->capcand) {
        run->capcand = run->capcand ? run->capcand * 2 : 16;
        run->cand = skv_realloc(run->cand, run->capcand * sizeof *run->cand);
    }
    run->cand[run->ncand++] = (scan_cand){ pos, e };
}

static int cand_cmp(const void *a, const void *b) {
    uint64_t x = ((const scan_cand *)a)->pos, y = ((const scan_cand *)b)->pos;
    return x < y ? -1 : x > y;
}

static int entry_wanted(const scan_run *run, const ht_entry *e) {
    if (e->key_len > 0 && ht_entry_key(e)[0] == '\0') return 0; /* internal key */
    if (e->key_len < run->prefix.len) return 0;
    if (run->prefix.len && memcmp(ht_entry_key(e), run->prefix.ptr, run->prefix.len) != 0) return 0;
    return !shard_entry_expired(e, run->now_ms);
}

static void examine(scan_run *run, uint32_t shard_id, const ht_entry *e) {
    if (!entry_wanted(run, e)) return;
    int stop = run->fn(run->arg, shard_id, e);
    run->items++;
    if (stop || run->items >= run->limit) run->full = 1;
}

/* Examines the sorted candidates; returns 1 when the page stopped inside
 * them (pos->next set past the last one examined), 0 when all were. */
static int examine_bucket(scan_run *run, uint32_t shard_id, scan_pos *pos) {
    for (size_t i = 0; i < run->ncand; i++) {
        if (run->full && i > 0 && run->cand[i].pos != run->cand[i - 1].pos) {
            pos->next = run->cand[i - 1].pos + 1; /* < cand[i].pos, so no overflow */
            return 1;
        }
        examine(run, shard_id, run->cand[i].e);
    }
    return 0;
}

/* Scans shard pos->shard from pos->next under its lock.  Returns 1 when the
 * shard is finished, 0 when the page ended inside it. */
static int scan_shard(store *st, scan_run *run, scan_pos *pos) {
    shard *s = store_shard(st, pos->shard);
    int finished = 0;
    pthread_mutex_lock(&s->lock);
    run->now_ms = s->clock_ms();
    while (!run->full && run->buckets < run->max_buckets) {
        run->ncand = 0;
        run->from = pos->next;
        uint64_t next_cursor = ht_scan_one(s->table, ht_position(pos->next), collect, run);
        run->buckets++;
        if (run->ncand > 1) qsort(run->cand, run->ncand, sizeof *run->cand, cand_cmp);
        if (examine_bucket(run, pos->shard, pos)) break;
        if (next_cursor == 0) {
            finished = 1;
            break;
        }
        assert(ht_position(next_cursor) > pos->next); /* the range held pos->next */
        pos->next = ht_position(next_cursor);
    }
    pthread_mutex_unlock(&s->lock);
    return finished;
}

int scan_page(store *st, skv_slice prefix, size_t limit, size_t max_buckets, scan_pos *pos, scan_item_fn fn,
              void *arg, size_t *items) {
    scan_run run = { 0 };
    run.prefix = prefix;
    run.limit = limit ? limit : 1;
    run.max_buckets = max_buckets ? max_buckets : 1;
    run.fn = fn;
    run.arg = arg;
    while (pos->shard < st->nshards && !run.full && run.buckets < run.max_buckets) {
        if (!scan_shard(st, &run, pos)) break;
        pos->shard++;
        pos->next = 0;
    }
    free(run.cand);
    if (items) *items = run.items;
    return pos->shard >= st->nshards;
}

/* ---- the route ----------------------------------------------------------------------------- */

typedef struct render_ctx {
    skv_buf *b;
    int first;
} render_ctx;

/* Appends one item ({"key","value","version","shard"[,"expires_at_ms"]}). */
static int render_item(void *arg, uint32_t shard_id, const ht_entry *e) {
    render_ctx *c = arg;
    skv_buf *b = c->b;
    skv_buf_append_cstr(b, c->first ? "{\"key\":\"" : ",{\"key\":\"");
    c->first = 0;
    skv_buf_append_json_str(b, ht_entry_key(e), e->key_len);
    skv_buf_append_cstr(b, "\",\"value\":");
    api_append_value_json(b, e);
    skv_buf_printf(b, ",\"version\":%llu,\"shard\":%u", (unsigned long long)e->version, shard_id);
    if (e->expires_ms) skv_buf_printf(b, ",\"expires_at_ms\":%llu", (unsigned long long)e->expires_ms);
    skv_buf_append(b, "}", 1);
    return b->len >= SCAN_MAX_PAGE_BYTES;
}

/* ?limit=: 1 with *limit, or 0 after answering 400. */
static int parse_limit(const http_request *req, size_t *limit, reply *r) {
    skv_buf v;
    skv_buf_init(&v);
    uint64_t n = SCAN_DEFAULT_LIMIT;
    int found = http_query_get(req->query, "limit", &v);
    int ok = found == 0 ||
             (found == 1 && skv_slice_to_u64(skv_slice_make(v.data ? v.data : "", v.len), &n) == SKV_OK && n >= 1 &&
              n <= SCAN_MAX_LIMIT);
    skv_buf_free(&v);
    if (!ok) {
        reply_error(r, 400, "bad_limit", "limit must be an integer between 1 and %d", SCAN_MAX_LIMIT);
        return 0;
    }
    *limit = (size_t)n;
    return 1;
}

/* ?cursor= into *pos ({0,0} when absent or empty); 0 after answering 400. */
static int parse_cursor(store *st, const http_request *req, skv_slice prefix, scan_pos *pos, reply *r) {
    skv_buf text, keybuf;
    skv_buf_init(&text);
    skv_buf_init(&keybuf);
    const char *why = NULL;
    int found = http_query_get(req->query, "cursor", &text);
    pos->shard = 0;
    pos->next = 0;
    if (found < 0) {
        why = "not valid percent-encoding"; /* (refused earlier as bad_query) */
    } else if (found == 1 && text.len > 0) {
        skv_cursor c;
        uint64_t query = cursor_fingerprint(CURSOR_KV_SCAN, &prefix, 1);
        if (cursor_decode(skv_slice_make(text.data, text.len), CURSOR_KV_SCAN, query, &c, &keybuf, &why) != SKV_OK) {
            if (!why) why = "not a cursor of this scan";
        } else if (c.shard >= st->nshards || c.key.len != 0) {
            why = "the cursor does not fit this node's shards";
        } else if (c.b != ring_get_config(store_map(st))->version) {
            why = "the shard map changed since the cursor was made; start the scan again";
        } else {
            pos->shard = c.shard;
            pos->next = c.a;
        }
    }
    skv_buf_free(&text);
    skv_buf_free(&keybuf);
    if (why) {
        reply_error(r, 400, "bad_cursor", "bad cursor: %s", why);
        return 0;
    }
    return 1;
}

int scan_kv_handle(api_worker *w, const http_request *req, reply *r) {
    if (!api_method_allowed(req, r, "GET, HEAD, OPTIONS", API_GET_HEAD)) return API_ROUTE_KV_SCAN;
    store *st = w->env->st;
    /* Any malformed escape in the query string (as the other listings). */
    skv_buf_reset(&w->key);
    int bad_query = http_url_decode(req->query, 1, &w->key) != SKV_OK;
    skv_buf_reset(&w->key);
    if (bad_query || http_query_get(req->query, "prefix", &w->key) < 0) {
        reply_error(r, 400, "bad_query", "the query string is not valid percent-encoding");
        return API_ROUTE_KV_SCAN;
    }
    skv_slice prefix = skv_slice_make(w->key.data ? w->key.data : "", w->key.len);
    size_t limit;
    scan_pos pos;
    if (!parse_limit(req, &limit, r) || !parse_cursor(st, req, prefix, &pos, r)) return API_ROUTE_KV_SCAN;

    /* A local buffer: a page may reach SCAN_MAX_PAGE_BYTES, which the
     * worker's scratch buffer should not keep. */
    skv_buf b;
    skv_buf_init(&b);
    skv_buf_reserve(&b, 1024);
    skv_buf_append_cstr(&b, "{\"items\":[");
    render_ctx ctx = { &b, 1 };
    int done = scan_page(st, prefix, limit, SCAN_MAX_BUCKETS, &pos, render_item, &ctx, NULL);
    skv_buf_append_cstr(&b, "],\"next_cursor\":");
    if (done) {
        skv_buf_append_cstr(&b, "null}");
    } else {
        skv_cursor c = { .kind = CURSOR_KV_SCAN,
                         .query = cursor_fingerprint(CURSOR_KV_SCAN, &prefix, 1),
                         .shard = pos.shard,
                         .a = pos.next,
                         .b = ring_get_config(store_map(st))->version,
                         .key = skv_slice_make("", 0) };
        skv_buf_append(&b, "\"", 1);
        cursor_encode(&c, &b);
        skv_buf_append_cstr(&b, "\"}");
    }
    reply_json(r, 200, &b);
    skv_buf_free(&b);
    return API_ROUTE_KV_SCAN;
}
