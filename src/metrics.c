/*
 * metrics — Prometheus metrics: per-worker counters without locks, summed
 * and rendered as text exposition format 0.0.4 at scrape time.
 *
 * Two tables declare everything:
 *   - store_table: the counter cells a worker slot holds.  Each store is an
 *     array of up to three dimensions (route x method x code, shard x op...);
 *     metrics_new() turns the table into offsets inside one flat uint64_t
 *     array per worker.
 *   - family_table: every exposed family (name, type, label names, help) and
 *     the function that produces its samples, either from the summed cells
 *     or from the snapshot / /proc read at scrape time.  The table is the
 *     only place a family name appears; metrics_render() walks it in order
 *     and writes "# HELP", "# TYPE" once per family, then its samples.
 *
 * Worker slot layout (one per worker, each starting on its own 64-byte
 * cache line, size rounded up to a multiple of 64 so that no two workers
 * ever share a line):
 *     [ metrics *m | cells[0 .. ncells) | padding ]
 * A cell is written only by the worker that owns the slot, with a relaxed
 * load + relaxed store (no read-modify-write instruction is needed with a
 * single writer); the scraper reads it with a relaxed load, so a value is
 * never torn but families may be mutually a little out of date.
 *
 * Histograms keep one cell per bucket (non-cumulative, the last one is
 * +Inf) plus the sum in nanoseconds; _count is the sum of the buckets, so
 * the exposed _count always equals the +Inf bucket.
 *
 * Invariants (checked with assert): family names are valid, unique metric
 * names; counters and only counters end in _total; each sample carries
 * exactly the labels its family declares, in order (plus "le" for
 * histogram buckets); route names are distinct, so no series is emitted
 * twice.
 */
#include "metrics.h"

#include <assert.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "http.h"
#include "mem.h"

/* ---- label dimensions ------------------------------------------------- */

/* Method label names indexed by enum http_method; kept local so that this
 * module does not depend on http.c. */
static const char *const method_names[HTTP_M__COUNT] = {
    [HTTP_M_OTHER] = "OTHER", [HTTP_M_GET] = "GET",       [HTTP_M_HEAD] = "HEAD",
    [HTTP_M_POST] = "POST",   [HTTP_M_PUT] = "PUT",       [HTTP_M_DELETE] = "DELETE",
    [HTTP_M_OPTIONS] = "OPTIONS", [HTTP_M_PATCH] = "PATCH",
};

/* Status codes with their own code label, sorted; anything else is "other". */
static const int known_codes[] = {
    100, 200, 201, 202, 204, 206, 301, 304, 400, 401, 403, 404, 405, 408, 409,
    411, 412, 413, 414, 415, 416, 417, 422, 429, 431, 500, 501, 503, 505, 507,
};
#define NKNOWN_CODES (sizeof known_codes / sizeof known_codes[0])
#define NCODES (NKNOWN_CODES + 1) /* last index = "other" */

static const char *const op_names[METRICS_OP__COUNT] = {
    [METRICS_OP_GET] = "get", [METRICS_OP_PUT] = "put", [METRICS_OP_DELETE] = "delete",
};

static const char *const reject_names[METRICS_REJECT__COUNT] = {
    [METRICS_REJECT_MAX_CONNECTIONS] = "max_connections", [METRICS_REJECT_SHUTDOWN] = "shutdown",
};

/* Duration buckets: upper bounds in nanoseconds and their le labels.  The
 * last bucket (+Inf) has no bound. */
static const uint64_t bucket_bound_ns[] = {
    50000ull,     100000ull,     250000ull,     500000ull,     1000000ull,    2500000ull,
    5000000ull,   10000000ull,   25000000ull,   50000000ull,   100000000ull,  250000000ull,
    500000000ull, 1000000000ull, 2500000000ull, 5000000000ull, 10000000000ull,
};
static const char *const bucket_le[] = {
    "0.00005", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
    "0.05",    "0.1",    "0.25",    "0.5",    "1",     "2.5",    "5",     "10",   "+Inf",
};
#define NBUCKETS (sizeof bucket_le / sizeof bucket_le[0])
_Static_assert(sizeof bucket_bound_ns / sizeof bucket_bound_ns[0] + 1 == NBUCKETS,
               "one le label per bound plus +Inf");

enum conn_event { CONN_OPENED = 0, CONN_CLOSED, CONN__COUNT };

enum dim { DIM_ONE, DIM_ROUTE, DIM_METHOD, DIM_CODE, DIM_HIST, DIM_SHARD, DIM_OP, DIM_CONN, DIM_REASON };

/* ---- storage table ----------------------------------------------------- */

/* X(store, outer dimension, middle, inner) */
#define METRICS_STORES(X)                                        \
    X(STORE_HTTP_REQUESTS, DIM_ROUTE, DIM_METHOD, DIM_CODE)      \
    X(STORE_HTTP_DURATION, DIM_ROUTE, DIM_HIST, DIM_ONE)         \
    X(STORE_HTTP_REQ_BYTES, DIM_ROUTE, DIM_ONE, DIM_ONE)         \
    X(STORE_HTTP_RESP_BYTES, DIM_ROUTE, DIM_ONE, DIM_ONE)        \
    X(STORE_SHARD_OPS, DIM_SHARD, DIM_OP, DIM_ONE)               \
    X(STORE_CONN_EVENTS, DIM_CONN, DIM_ONE, DIM_ONE)             \
    X(STORE_CONN_REJECTED, DIM_REASON, DIM_ONE, DIM_ONE)

enum store {
#define METRICS__STORE_ENUM(id, a, b, c) id,
    METRICS_STORES(METRICS__STORE_ENUM)
#undef METRICS__STORE_ENUM
    STORE__COUNT
};

static const enum dim store_dims[STORE__COUNT][3] = {
#define METRICS__STORE_DIMS(id, a, b, c) [id] = { a, b, c },
    METRICS_STORES(METRICS__STORE_DIMS)
#undef METRICS__STORE_DIMS
};

#define CACHE_LINE 64

struct metrics_worker {
    _Alignas(CACHE_LINE) const metrics *m;
    uint64_t cells[];
};

struct metrics {
    unsigned nworkers;
    unsigned nroutes;
    uint32_t nshards;
    const char *const *route_names;
    size_t store_off[STORE__COUNT];
    size_t store_size[STORE__COUNT][3]; /* extent of each dimension */
    size_t ncells;
    size_t stride;        /* bytes between two worker slots */
    void *raw;            /* what skv_calloc returned */
    unsigned char *slots; /* raw rounded up to a cache line */
};

static size_t dim_extent(const metrics *m, enum dim d) {
    switch (d) {
    case DIM_ONE: return 1;
    case DIM_ROUTE: return m->nroutes;
    case DIM_METHOD: return HTTP_M__COUNT;
    case DIM_CODE: return NCODES;
    case DIM_HIST: return NBUCKETS + 1; /* buckets, then the sum in ns */
    case DIM_SHARD: return m->nshards;
    case DIM_OP: return METRICS_OP__COUNT;
    case DIM_CONN: return CONN__COUNT;
    case DIM_REASON: return METRICS_REJECT__COUNT;
    }
    return 0;
}

/* Index of cell (a, b, c) of a store in the flat cell array. */
static inline size_t cell_index(const metrics *m, enum store s, size_t a, size_t b, size_t c) {
    return m->store_off[s] + (a * m->store_size[s][1] + b) * m->store_size[s][2] + c;
}

/* Single writer per slot: load + store, both relaxed, cannot lose updates. */
static inline void cell_add(uint64_t *cell, uint64_t v) {
    __atomic_store_n(cell, __atomic_load_n(cell, __ATOMIC_RELAXED) + v, __ATOMIC_RELAXED);
}

static metrics_worker *slot_at(const metrics *m, unsigned id) {
    return (metrics_worker *)(void *)(m->slots + (size_t)id * m->stride);
}

/* ---- family table ------------------------------------------------------ */

enum family_type { FAMILY_COUNTER, FAMILY_GAUGE, FAMILY_HISTOGRAM };
static const char *const family_type_names[] = { "counter", "gauge", "histogram" };

typedef struct render_ctx render_ctx;
typedef void render_fn(render_ctx *c, int arg);

struct family {
    const char *name;
    enum family_type type;
    const char *labels; /* comma-separated label names, in emission order */
    render_fn *render;
    int arg;            /* passed to render: which store / field */
    const char *help;
};

enum snap_field { SNAP_KEYS, SNAP_BYTES, SNAP_SHARE };
enum wal_field { WAL_BATCHES, WAL_RECORDS, WAL_BYTES, WAL_FSYNCS, WAL_FSYNC_SECONDS, WAL_ERRORS, WAL_LOG_BYTES };
enum gauge_field { GAUGE_READY, GAUGE_UPTIME, GAUGE_MAP_VERSION, GAUGE_HITS, GAUGE_MISSES, GAUGE_EXPIRED,
                  GAUGE_EVICTED, GAUGE_MEMORY_LIMIT, GAUGE_KEYS_LIMIT };
enum proc_field { PROC_CPU, PROC_RSS, PROC_VSIZE, PROC_OPEN_FDS, PROC_MAX_FDS, PROC_START_TIME };

static render_fn render_http_requests, render_http_duration, render_route_counter,
    render_shard_requests, render_shard_ops, render_snap_shard, render_conn_open,
    render_conn_accepted, render_conn_rejected, render_gauge, render_build_info, render_process,
    render_shard_state, render_wal, render_snapshots, render_hot_keys;

static const struct family family_table[] = {
    { "shardkv_http_requests_total", FAMILY_COUNTER, "route,method,code", render_http_requests, 0,
      "HTTP requests answered, by route, method and status code (code=\"other\" outside the known set)." },
    { "shardkv_http_request_duration_seconds", FAMILY_HISTOGRAM, "route", render_http_duration, 0,
      "Time spent handling a request, from its complete arrival to its response being queued for the socket." },
    { "shardkv_http_request_bytes_total", FAMILY_COUNTER, "route", render_route_counter,
      STORE_HTTP_REQ_BYTES, "Bytes received in HTTP requests (head and body)." },
    { "shardkv_http_response_bytes_total", FAMILY_COUNTER, "route", render_route_counter,
      STORE_HTTP_RESP_BYTES, "Bytes sent in HTTP responses (head and body)." },
    { "shardkv_requests_total", FAMILY_COUNTER, "shard", render_shard_requests, 0,
      "Key operations that reached a shard." },
    { "shardkv_shard_ops_total", FAMILY_COUNTER, "shard,op", render_shard_ops, 0,
      "Key operations that reached a shard, by operation." },
    { "shardkv_shard_size", FAMILY_GAUGE, "shard", render_snap_shard, SNAP_KEYS,
      "Keys stored in a shard." },
    { "shardkv_shard_bytes", FAMILY_GAUGE, "shard", render_snap_shard, SNAP_BYTES,
      "Bytes of keys and values stored in a shard." },
    { "shardkv_shard_ring_share", FAMILY_GAUGE, "shard", render_snap_shard, SNAP_SHARE,
      "Fraction of the hash ring owned by a shard." },
    { "shardkv_shard_state", FAMILY_GAUGE, "shard,state", render_shard_state, 0,
      "Write-path state of a shard: 1 for the current one (disk_full: writes get 507 until space returns; "
      "degraded: an fsync failed, writes get 503 until restart)." },
    { "shardkv_wal_batches_total", FAMILY_COUNTER, "shard", render_wal, WAL_BATCHES,
      "Batches written to a shard's log (group commit: one write, and under --fsync always one fdatasync, each)." },
    { "shardkv_wal_records_total", FAMILY_COUNTER, "shard", render_wal, WAL_RECORDS,
      "Records written to a shard's log." },
    { "shardkv_wal_bytes_total", FAMILY_COUNTER, "shard", render_wal, WAL_BYTES,
      "Bytes appended to a shard's log." },
    { "shardkv_wal_fsyncs_total", FAMILY_COUNTER, "shard", render_wal, WAL_FSYNCS,
      "fdatasync calls on a shard's log." },
    { "shardkv_wal_fsync_seconds_total", FAMILY_COUNTER, "shard", render_wal, WAL_FSYNC_SECONDS,
      "Seconds spent in fdatasync on a shard's log." },
    { "shardkv_wal_errors_total", FAMILY_COUNTER, "shard", render_wal, WAL_ERRORS,
      "Failed log appends or syncs (disk full, I/O errors)." },
    { "shardkv_wal_log_bytes", FAMILY_GAUGE, "shard", render_wal, WAL_LOG_BYTES,
      "Bytes in a shard's log segments (a snapshot drops the segments it covers)." },
    { "shardkv_snapshots_total", FAMILY_COUNTER, "shard,result", render_snapshots, 0,
      "Snapshots of a shard written (result=ok) or abandoned after an error (result=failed)." },
    { "requests_total", FAMILY_COUNTER, "shard", render_shard_requests, 0,
      "Alias of shardkv_requests_total, kept for the seed-000 dashboards." },
    { "shard_size", FAMILY_GAUGE, "shard", render_snap_shard, SNAP_KEYS,
      "Alias of shardkv_shard_size, kept for the seed-000 dashboards." },
    { "shardkv_connections", FAMILY_GAUGE, "", render_conn_open, 0,
      "Client connections open now." },
    { "shardkv_connections_accepted_total", FAMILY_COUNTER, "", render_conn_accepted, 0,
      "Client connections accepted." },
    { "shardkv_connections_rejected_total", FAMILY_COUNTER, "reason", render_conn_rejected, 0,
      "Client connections closed right after accept, by reason." },
    { "shardkv_cache_hits_total", FAMILY_COUNTER, "", render_gauge, GAUGE_HITS,
      "Key reads that found a live key." },
    { "shardkv_cache_misses_total", FAMILY_COUNTER, "", render_gauge, GAUGE_MISSES,
      "Key reads that found nothing (or an expired key)." },
    { "shardkv_keys_expired_total", FAMILY_COUNTER, "", render_gauge, GAUGE_EXPIRED,
      "Keys removed because their TTL passed (on access or by the sweeper)." },
    { "shardkv_keys_evicted_total", FAMILY_COUNTER, "", render_gauge, GAUGE_EVICTED,
      "Cache keys evicted by --eviction lru at --max-memory / --max-keys." },
    { "shardkv_memory_limit_bytes", FAMILY_GAUGE, "", render_gauge, GAUGE_MEMORY_LIMIT,
      "--max-memory (0 = no limit); compare with sum(shardkv_shard_bytes)." },
    { "shardkv_keys_limit", FAMILY_GAUGE, "", render_gauge, GAUGE_KEYS_LIMIT,
      "--max-keys (0 = no limit); compare with sum(shardkv_shard_size)." },
    { "shardkv_ready", FAMILY_GAUGE, "", render_gauge, GAUGE_READY,
      "1 when the node serves requests, 0 while starting or draining." },
    { "shardkv_uptime_seconds", FAMILY_GAUGE, "", render_gauge, GAUGE_UPTIME,
      "Seconds since the node started." },
    { "shardkv_shard_map_version", FAMILY_GAUGE, "", render_gauge, GAUGE_MAP_VERSION,
      "Version of the shard map in use." },
    { "shardkv_build_info", FAMILY_GAUGE, "version", render_build_info, 0,
      "Constant 1, labelled with the build version." },
    { "shardkv_hot_key_requests", FAMILY_GAUGE, "shard,rank,key", render_hot_keys, 0,
      "Recent requests (halved every 10 s; an upper bound) of the 3 hottest keys of each shard, from the "
      "hot-key sketch (GET /v1/hotkeys); rank 1 is the hottest.  The key labels change as traffic changes: "
      "a series ends when its key leaves the top 3." },
    { "process_cpu_seconds_total", FAMILY_COUNTER, "", render_process, PROC_CPU,
      "Total user and system CPU time spent in seconds." },
    { "process_resident_memory_bytes", FAMILY_GAUGE, "", render_process, PROC_RSS,
      "Resident memory size in bytes." },
    { "process_virtual_memory_bytes", FAMILY_GAUGE, "", render_process, PROC_VSIZE,
      "Virtual memory size in bytes." },
    { "process_open_fds", FAMILY_GAUGE, "", render_process, PROC_OPEN_FDS,
      "Number of open file descriptors." },
    { "process_max_fds", FAMILY_GAUGE, "", render_process, PROC_MAX_FDS,
      "Maximum number of open file descriptors." },
    { "process_start_time_seconds", FAMILY_GAUGE, "", render_process, PROC_START_TIME,
      "Start time of the process since unix epoch in seconds." },
};
#define NFAMILIES (sizeof family_table / sizeof family_table[0])

/* ---- invariant checkers ------------------------------------------------ */

/* Only called inside assert(): unused, not wrong, under -DNDEBUG. */
#define CHECKER static __attribute__((unused))

CHECKER int is_name_char(char ch, int first) {
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_') return 1;
    return !first && ch >= '0' && ch <= '9';
}

CHECKER int is_metric_name(const char *s) {
    if (!*s) return 0;
    for (const char *p = s; *p; p++)
        if (!is_name_char(*p, p == s) && *p != ':') return 0;
    return 1;
}

CHECKER int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* "a,b,c": valid label names, none reserved ("__" prefix, "le"). */
CHECKER int is_label_list(const char *list) {
    const char *p = list;
    while (*p) {
        const char *start = p;
        while (*p && *p != ',') {
            if (!is_name_char(*p, p == start)) return 0;
            p++;
        }
        size_t len = (size_t)(p - start);
        if (len == 0) return 0;
        if (len >= 2 && start[0] == '_' && start[1] == '_') return 0;
        if (len == 2 && memcmp(start, "le", 2) == 0) return 0;
        if (*p == ',') {
            p++;
            if (!*p) return 0;
        }
    }
    return 1;
}

CHECKER int family_table_is_valid(void) {
    for (size_t i = 0; i < NFAMILIES; i++) {
        const struct family *f = &family_table[i];
        if (!is_metric_name(f->name) || !f->help[0] || !f->render) return 0;
        if (!is_label_list(f->labels)) return 0;
        if ((f->type == FAMILY_COUNTER) != ends_with(f->name, "_total")) return 0;
        for (size_t j = 0; j < i; j++)
            if (strcmp(family_table[j].name, f->name) == 0) return 0;
    }
    return 1;
}

CHECKER int routes_are_distinct(const char *const *names, unsigned n) {
    for (unsigned i = 0; i < n; i++) {
        if (!names[i]) return 0;
        for (unsigned j = 0; j < i; j++)
            if (strcmp(names[i], names[j]) == 0) return 0;
    }
    return 1;
}

CHECKER int layout_is_valid(const metrics *m) {
    size_t end = 0;
    for (int s = 0; s < STORE__COUNT; s++) {
        if (m->store_off[s] != end) return 0;
        end += m->store_size[s][0] * m->store_size[s][1] * m->store_size[s][2];
    }
    return end == m->ncells && m->stride % CACHE_LINE == 0 &&
           m->stride >= offsetof(metrics_worker, cells) + m->ncells * sizeof(uint64_t) &&
           ((uintptr_t)m->slots % CACHE_LINE) == 0;
}

/* ---- registry ---------------------------------------------------------- */

metrics *metrics_new(unsigned nworkers, uint32_t nshards, const char *const *route_names, unsigned nroutes) {
    assert(family_table_is_valid());
    assert(routes_are_distinct(route_names, nroutes));
    metrics *m = skv_calloc(1, sizeof *m);
    m->nworkers = nworkers;
    m->nshards = nshards;
    m->nroutes = nroutes;
    m->route_names = route_names;
    size_t off = 0;
    for (int s = 0; s < STORE__COUNT; s++) {
        m->store_off[s] = off;
        for (int d = 0; d < 3; d++) m->store_size[s][d] = dim_extent(m, store_dims[s][d]);
        off += m->store_size[s][0] * m->store_size[s][1] * m->store_size[s][2];
    }
    m->ncells = off;
    size_t bytes = offsetof(metrics_worker, cells) + m->ncells * sizeof(uint64_t);
    m->stride = (bytes + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE;
    m->raw = skv_calloc(1, (size_t)nworkers * m->stride + CACHE_LINE - 1);
    m->slots = (unsigned char *)(((uintptr_t)m->raw + CACHE_LINE - 1) & ~(uintptr_t)(CACHE_LINE - 1));
    for (unsigned i = 0; i < nworkers; i++) slot_at(m, i)->m = m;
    assert(layout_is_valid(m));
    return m;
}

void metrics_free(metrics *m) {
    if (!m) return;
    free(m->raw);
    free(m);
}

metrics_worker *metrics_worker_slot(metrics *m, unsigned id) {
    assert(id < m->nworkers);
    return slot_at(m, id);
}

/* ---- hot path ---------------------------------------------------------- */

static size_t code_index(int status) {
    size_t lo = 0, hi = NKNOWN_CODES;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (known_codes[mid] == status) return mid;
        if (known_codes[mid] < status) lo = mid + 1;
        else hi = mid;
    }
    return NKNOWN_CODES;
}

static size_t bucket_index(uint64_t ns) {
    size_t i = 0;
    while (i < NBUCKETS - 1 && ns > bucket_bound_ns[i]) i++;
    return i;
}

void metrics_http_observe(metrics_worker *w, unsigned route, int method, int status,
                          uint64_t duration_ns, size_t request_bytes, size_t response_bytes) {
    const metrics *m = w->m;
    if (route >= m->nroutes) return; /* not a declared route: nothing to label it with */
    size_t meth = (method >= 0 && method < HTTP_M__COUNT) ? (size_t)method : HTTP_M_OTHER;
    cell_add(&w->cells[cell_index(m, STORE_HTTP_REQUESTS, route, meth, code_index(status))], 1);
    cell_add(&w->cells[cell_index(m, STORE_HTTP_DURATION, route, bucket_index(duration_ns), 0)], 1);
    cell_add(&w->cells[cell_index(m, STORE_HTTP_DURATION, route, NBUCKETS, 0)], duration_ns);
    cell_add(&w->cells[cell_index(m, STORE_HTTP_REQ_BYTES, route, 0, 0)], request_bytes);
    cell_add(&w->cells[cell_index(m, STORE_HTTP_RESP_BYTES, route, 0, 0)], response_bytes);
}

void metrics_shard_op(metrics_worker *w, uint32_t shard, int op) {
    const metrics *m = w->m;
    if (shard >= m->nshards || op < 0 || op >= METRICS_OP__COUNT) return;
    cell_add(&w->cells[cell_index(m, STORE_SHARD_OPS, shard, (size_t)op, 0)], 1);
}

void metrics_conn_opened(metrics_worker *w) {
    cell_add(&w->cells[cell_index(w->m, STORE_CONN_EVENTS, CONN_OPENED, 0, 0)], 1);
}

void metrics_conn_closed(metrics_worker *w) {
    cell_add(&w->cells[cell_index(w->m, STORE_CONN_EVENTS, CONN_CLOSED, 0, 0)], 1);
}

void metrics_conn_rejected(metrics_worker *w, int reason) {
    if (reason < 0 || reason >= METRICS_REJECT__COUNT) return;
    cell_add(&w->cells[cell_index(w->m, STORE_CONN_REJECTED, (size_t)reason, 0, 0)], 1);
}

/* ---- /proc/self -------------------------------------------------------- */

typedef struct proc_stats {
    int have_stat;   /* cpu, rss, vsize */
    int have_start;
    int have_fds;
    int have_max_fds;
    double cpu_seconds;
    uint64_t rss_bytes;
    uint64_t vsize_bytes;
    double start_time;
    uint64_t open_fds;
    uint64_t max_fds;
} proc_stats;

static uint64_t proc_boot_time(void) {
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return 0;
    char *line = NULL;
    size_t cap = 0;
    uint64_t btime = 0;
    while (getline(&line, &cap, f) > 0) {
        if (strncmp(line, "btime ", 6) == 0) {
            btime = strtoull(line + 6, NULL, 10);
            break;
        }
    }
    free(line);
    fclose(f);
    return btime;
}

/* Fields of /proc/self/stat after the ")" closing the command name; the
 * first one is field 3 (state), see proc(5). */
static void proc_read_stat(proc_stats *ps) {
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f) return;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p) return;
    uint64_t field[25] = { 0 };
    int got = 2;
    p++;
    while (got < 24) {
        while (*p == ' ') p++;
        if (!*p) break;
        char *end;
        got++;
        field[got] = strtoull(p, &end, 10); /* state (field 3) parses as 0 */
        while (*end && *end != ' ') end++;
        p = end;
    }
    if (got < 24) return;
    long ticks = sysconf(_SC_CLK_TCK);
    long page = sysconf(_SC_PAGESIZE);
    if (ticks <= 0 || page <= 0) return;
    ps->have_stat = 1;
    ps->cpu_seconds = (double)(field[14] + field[15]) / (double)ticks;
    ps->vsize_bytes = field[23];
    ps->rss_bytes = field[24] * (uint64_t)page;
    uint64_t btime = proc_boot_time();
    if (btime) {
        ps->have_start = 1;
        ps->start_time = (double)btime + (double)field[22] / (double)ticks;
    }
}

static void proc_read(proc_stats *ps) {
    memset(ps, 0, sizeof *ps);
    proc_read_stat(ps);
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        uint64_t n = 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            if (e->d_name[0] != '.') n++;
        closedir(d);
        ps->have_fds = 1;
        ps->open_fds = n;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        ps->have_max_fds = 1;
        ps->max_fds = (uint64_t)rl.rlim_cur;
    }
}

/* ---- exposition -------------------------------------------------------- */

struct render_ctx {
    const metrics *m;
    const metrics_snapshot *snap; /* may be NULL */
    skv_buf *out;
    const uint64_t *totals;       /* cells summed over workers */
    const proc_stats *proc;
    const struct family *fam;     /* family being rendered */
    const char *label_next;       /* next declared label of fam */
    unsigned nlabels;             /* labels written in the current sample */
};

static void append_escaped(skv_buf *out, const char *s, int quotes) {
    const char *run = s;
    for (; *s; s++) {
        const char *rep = NULL;
        if (*s == '\\') rep = "\\\\";
        else if (*s == '\n') rep = "\\n";
        else if (*s == '"' && quotes) rep = "\\\"";
        if (!rep) continue;
        skv_buf_append(out, run, (size_t)(s - run));
        skv_buf_append(out, rep, 2);
        run = s + 1;
    }
    skv_buf_append(out, run, (size_t)(s - run));
}

/* Shortest of %.15g..%.17g that reads back as v; Prometheus spellings of
 * the non-finite values. */
static void append_double(skv_buf *out, double v) {
    if (isnan(v)) { skv_buf_append_cstr(out, "NaN"); return; }
    if (isinf(v)) { skv_buf_append_cstr(out, v > 0 ? "+Inf" : "-Inf"); return; }
    char tmp[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (prec == 17 || strtod(tmp, NULL) == v) break;
    }
    skv_buf_append_cstr(out, tmp);
}

/* 1 when key is the next label the family declares ("le" may close a
 * histogram sample); advances past it. */
static int label_is_expected(render_ctx *c, const char *key) {
    size_t len = strlen(key);
    if (c->fam->type == FAMILY_HISTOGRAM && *c->label_next == '\0' && strcmp(key, "le") == 0)
        return 1;
    if (strncmp(c->label_next, key, len) != 0) return 0;
    if (c->label_next[len] != ',' && c->label_next[len] != '\0') return 0;
    c->label_next += len + (c->label_next[len] == ',');
    return 1;
}

static void sample_begin(render_ctx *c, const char *suffix) {
    skv_buf_append_cstr(c->out, c->fam->name);
    if (suffix) skv_buf_append_cstr(c->out, suffix);
    c->label_next = c->fam->labels;
    c->nlabels = 0;
}

static void sample_label(render_ctx *c, const char *key, const char *value) {
    int expected = label_is_expected(c, key);
    assert(expected);
    (void)expected;
    skv_buf_append(c->out, c->nlabels++ ? "," : "{", 1);
    skv_buf_append_cstr(c->out, key);
    skv_buf_append(c->out, "=\"", 2);
    append_escaped(c->out, value, 1);
    skv_buf_append(c->out, "\"", 1);
}

static void sample_label_u64(render_ctx *c, const char *key, uint64_t value) {
    char tmp[24];
    skv_u64_to_dec(value, tmp);
    sample_label(c, key, tmp);
}

static void sample_close_labels(render_ctx *c) {
    assert(*c->label_next == '\0'); /* every declared label was written */
    skv_buf_append(c->out, c->nlabels ? "} " : " ", c->nlabels ? 2 : 1);
}

static void sample_end_u64(render_ctx *c, uint64_t v) {
    sample_close_labels(c);
    skv_buf_append_u64(c->out, v);
    skv_buf_append(c->out, "\n", 1);
}

static void sample_end_double(render_ctx *c, double v) {
    sample_close_labels(c);
    append_double(c->out, v);
    skv_buf_append(c->out, "\n", 1);
}

static uint64_t total(const render_ctx *c, enum store s, size_t a, size_t b, size_t k) {
    return c->totals[cell_index(c->m, s, a, b, k)];
}

static const char *route_name(const metrics *m, unsigned r) {
    return m->route_names[r];
}

static void render_http_requests(render_ctx *c, int arg) {
    (void)arg;
    for (unsigned r = 0; r < c->m->nroutes; r++) {
        for (size_t meth = 0; meth < HTTP_M__COUNT; meth++) {
            for (size_t code = 0; code < NCODES; code++) {
                uint64_t v = total(c, STORE_HTTP_REQUESTS, r, meth, code);
                if (!v) continue; /* keeps the scrape small: most combinations never happen */
                sample_begin(c, NULL);
                sample_label(c, "route", route_name(c->m, r));
                sample_label(c, "method", method_names[meth]);
                if (code < NKNOWN_CODES) sample_label_u64(c, "code", (uint64_t)known_codes[code]);
                else sample_label(c, "code", "other");
                sample_end_u64(c, v);
            }
        }
    }
}

static void render_http_duration(render_ctx *c, int arg) {
    (void)arg;
    for (unsigned r = 0; r < c->m->nroutes; r++) {
        uint64_t count = 0;
        for (size_t b = 0; b < NBUCKETS; b++) count += total(c, STORE_HTTP_DURATION, r, b, 0);
        if (!count) continue;
        uint64_t cumulative = 0;
        for (size_t b = 0; b < NBUCKETS; b++) {
            cumulative += total(c, STORE_HTTP_DURATION, r, b, 0);
            sample_begin(c, "_bucket");
            sample_label(c, "route", route_name(c->m, r));
            sample_label(c, "le", bucket_le[b]);
            sample_end_u64(c, cumulative);
        }
        sample_begin(c, "_sum");
        sample_label(c, "route", route_name(c->m, r));
        sample_end_double(c, (double)total(c, STORE_HTTP_DURATION, r, NBUCKETS, 0) / 1e9);
        sample_begin(c, "_count");
        sample_label(c, "route", route_name(c->m, r));
        sample_end_u64(c, count);
    }
}

static void render_route_counter(render_ctx *c, int store) {
    for (unsigned r = 0; r < c->m->nroutes; r++) {
        sample_begin(c, NULL);
        sample_label(c, "route", route_name(c->m, r));
        sample_end_u64(c, total(c, (enum store)store, r, 0, 0));
    }
}

static void render_shard_requests(render_ctx *c, int arg) {
    (void)arg;
    for (uint32_t s = 0; s < c->m->nshards; s++) {
        uint64_t v = 0;
        for (size_t op = 0; op < METRICS_OP__COUNT; op++) v += total(c, STORE_SHARD_OPS, s, op, 0);
        sample_begin(c, NULL);
        sample_label_u64(c, "shard", s);
        sample_end_u64(c, v);
    }
}

static void render_shard_ops(render_ctx *c, int arg) {
    (void)arg;
    for (uint32_t s = 0; s < c->m->nshards; s++) {
        for (size_t op = 0; op < METRICS_OP__COUNT; op++) {
            sample_begin(c, NULL);
            sample_label_u64(c, "shard", s);
            sample_label(c, "op", op_names[op]);
            sample_end_u64(c, total(c, STORE_SHARD_OPS, s, op, 0));
        }
    }
}

static void render_snap_shard(render_ctx *c, int field) {
    const metrics_snapshot *snap = c->snap;
    if (!snap) return;
    for (uint32_t s = 0; s < snap->nshards; s++) {
        if (field == SNAP_KEYS && !snap->shard_keys) return;
        if (field == SNAP_BYTES && !snap->shard_bytes) return;
        if (field == SNAP_SHARE && !snap->shard_share) return;
        sample_begin(c, NULL);
        sample_label_u64(c, "shard", s);
        if (field == SNAP_KEYS) sample_end_u64(c, snap->shard_keys[s]);
        else if (field == SNAP_BYTES) sample_end_u64(c, snap->shard_bytes[s]);
        else sample_end_double(c, snap->shard_share[s]);
    }
}

static void render_shard_state(render_ctx *c, int arg) {
    static const char *const names[] = { "ok", "disk_full", "degraded" }; /* enum shard_state order */
    (void)arg;
    const metrics_snapshot *snap = c->snap;
    if (!snap || !snap->shard_state) return;
    for (uint32_t s = 0; s < snap->nshards; s++) {
        for (int st = 0; st < (int)(sizeof names / sizeof names[0]); st++) {
            sample_begin(c, NULL);
            sample_label_u64(c, "shard", s);
            sample_label(c, "state", names[st]);
            sample_end_u64(c, snap->shard_state[s] == st);
        }
    }
}

static void render_wal(render_ctx *c, int field) {
    const metrics_snapshot *snap = c->snap;
    if (!snap || !snap->wal) return;
    for (uint32_t s = 0; s < snap->nshards; s++) {
        const metrics_log_stats *w = &snap->wal[s];
        sample_begin(c, NULL);
        sample_label_u64(c, "shard", s);
        switch (field) {
        case WAL_BATCHES: sample_end_u64(c, w->batches); break;
        case WAL_RECORDS: sample_end_u64(c, w->records); break;
        case WAL_BYTES: sample_end_u64(c, w->bytes_written); break;
        case WAL_FSYNCS: sample_end_u64(c, w->fsyncs); break;
        case WAL_FSYNC_SECONDS: sample_end_double(c, w->fsync_seconds); break;
        case WAL_ERRORS: sample_end_u64(c, w->write_errors); break;
        default: sample_end_u64(c, w->log_bytes); break;
        }
    }
}

static void render_snapshots(render_ctx *c, int arg) {
    (void)arg;
    const metrics_snapshot *snap = c->snap;
    if (!snap || !snap->wal) return;
    for (uint32_t s = 0; s < snap->nshards; s++) {
        for (int failed = 0; failed <= 1; failed++) {
            sample_begin(c, NULL);
            sample_label_u64(c, "shard", s);
            sample_label(c, "result", failed ? "failed" : "ok");
            sample_end_u64(c, failed ? snap->wal[s].snapshot_failures : snap->wal[s].snapshots);
        }
    }
}

static void conn_totals(const render_ctx *c, uint64_t *opened, uint64_t *closed) {
    *opened = total(c, STORE_CONN_EVENTS, CONN_OPENED, 0, 0);
    *closed = total(c, STORE_CONN_EVENTS, CONN_CLOSED, 0, 0);
}

static void render_conn_open(render_ctx *c, int arg) {
    (void)arg;
    uint64_t opened, closed;
    conn_totals(c, &opened, &closed);
    /* Relaxed loads of two cells may see a close before its open. */
    sample_begin(c, NULL);
    sample_end_u64(c, opened > closed ? opened - closed : 0);
}

static void render_conn_accepted(render_ctx *c, int arg) {
    (void)arg;
    uint64_t opened, closed;
    conn_totals(c, &opened, &closed);
    sample_begin(c, NULL);
    sample_end_u64(c, opened);
}

static void render_conn_rejected(render_ctx *c, int arg) {
    (void)arg;
    for (size_t r = 0; r < METRICS_REJECT__COUNT; r++) {
        sample_begin(c, NULL);
        sample_label(c, "reason", reject_names[r]);
        sample_end_u64(c, total(c, STORE_CONN_REJECTED, r, 0, 0));
    }
}

static void render_gauge(render_ctx *c, int field) {
    const metrics_snapshot *snap = c->snap;
    if (!snap) return;
    sample_begin(c, NULL);
    switch (field) {
    case GAUGE_READY: sample_end_u64(c, snap->ready ? 1 : 0); break;
    case GAUGE_UPTIME: sample_end_double(c, snap->uptime_seconds); break;
    case GAUGE_MAP_VERSION: sample_end_u64(c, snap->shard_map_version); break;
    case GAUGE_HITS: sample_end_u64(c, snap->cache_hits); break;
    case GAUGE_MISSES: sample_end_u64(c, snap->cache_misses); break;
    case GAUGE_EXPIRED: sample_end_u64(c, snap->keys_expired); break;
    case GAUGE_EVICTED: sample_end_u64(c, snap->keys_evicted); break;
    case GAUGE_MEMORY_LIMIT: sample_end_u64(c, snap->memory_limit); break;
    default: sample_end_u64(c, snap->keys_limit); break;
    }
}

static void render_build_info(render_ctx *c, int arg) {
    (void)arg;
    const char *version = c->snap && c->snap->version ? c->snap->version : "unknown";
    sample_begin(c, NULL);
    sample_label(c, "version", version);
    sample_end_u64(c, 1);
}

static void render_hot_keys(render_ctx *c, int arg) {
    (void)arg;
    const metrics_snapshot *snap = c->snap;
    if (!snap || !snap->hot_keys) return;
    for (size_t i = 0; i < snap->nhot_keys; i++) {
        const metrics_hot_key *h = &snap->hot_keys[i];
        sample_begin(c, NULL);
        sample_label_u64(c, "shard", h->shard);
        sample_label_u64(c, "rank", h->rank);
        sample_label(c, "key", h->key);
        sample_end_u64(c, h->count);
    }
}

static void render_process(render_ctx *c, int field) {
    const proc_stats *ps = c->proc;
    switch (field) {
    case PROC_CPU:
        if (!ps->have_stat) return;
        sample_begin(c, NULL);
        sample_end_double(c, ps->cpu_seconds);
        return;
    case PROC_RSS:
        if (!ps->have_stat) return;
        sample_begin(c, NULL);
        sample_end_u64(c, ps->rss_bytes);
        return;
    case PROC_VSIZE:
        if (!ps->have_stat) return;
        sample_begin(c, NULL);
        sample_end_u64(c, ps->vsize_bytes);
        return;
    case PROC_OPEN_FDS:
        if (!ps->have_fds) return;
        sample_begin(c, NULL);
        sample_end_u64(c, ps->open_fds);
        return;
    case PROC_MAX_FDS:
        if (!ps->have_max_fds) return;
        sample_begin(c, NULL);
        sample_end_u64(c, ps->max_fds);
        return;
    case PROC_START_TIME:
        if (!ps->have_start) return;
        sample_begin(c, NULL);
        sample_end_double(c, ps->start_time);
        return;
    }
}

static void render_family_head(skv_buf *out, const struct family *f) {
    skv_buf_append_cstr(out, "# HELP ");
    skv_buf_append_cstr(out, f->name);
    skv_buf_append(out, " ", 1);
    append_escaped(out, f->help, 0);
    skv_buf_append_cstr(out, "\n# TYPE ");
    skv_buf_append_cstr(out, f->name);
    skv_buf_append(out, " ", 1);
    skv_buf_append_cstr(out, family_type_names[f->type]);
    skv_buf_append(out, "\n", 1);
}

void metrics_render(metrics *m, const metrics_snapshot *snap, skv_buf *out) {
    uint64_t *totals = skv_calloc(m->ncells ? m->ncells : 1, sizeof *totals);
    for (unsigned w = 0; w < m->nworkers; w++) {
        const uint64_t *cells = slot_at(m, w)->cells;
        for (size_t i = 0; i < m->ncells; i++) totals[i] += __atomic_load_n(&cells[i], __ATOMIC_RELAXED);
    }
    proc_stats ps;
    proc_read(&ps);
    render_ctx c = { .m = m, .snap = snap, .out = out, .totals = totals, .proc = &ps };
    for (size_t i = 0; i < NFAMILIES; i++) {
        c.fam = &family_table[i];
        render_family_head(out, c.fam);
        c.fam->render(&c, c.fam->arg);
    }
    free(totals);
}

uint64_t metrics_shard_requests(const metrics *m, uint32_t shard) {
    if (shard >= m->nshards) return 0;
    uint64_t v = 0;
    for (unsigned w = 0; w < m->nworkers; w++) {
        const metrics_worker *slot = slot_at(m, w);
        for (size_t op = 0; op < METRICS_OP__COUNT; op++)
            v += __atomic_load_n(&slot->cells[cell_index(m, STORE_SHARD_OPS, shard, op, 0)], __ATOMIC_RELAXED);
    }
    return v;
}
