/*
 * metrics — Prometheus metrics, declared once in a table, counted per
 * worker thread without locks, summed at scrape time.
 *
 * Every family (name, type, help, labels) is declared in one table in
 * metrics.c; the same table drives the counters' layout and the text
 * exposition (format 0.0.4, accepted by `promtool check metrics`).
 *
 * Hot path: each worker thread owns a metrics_worker slot and bumps plain
 * counters in it with relaxed atomic stores (single writer per slot), so no
 * lock and no shared cache line.  The scraper sums all slots with relaxed
 * loads; a scrape may see an increment of one family but not yet of
 * another, never a torn value.
 *
 * Families (labels in braces):
 *   shardkv_http_requests_total{route,method,code}           counter
 *   shardkv_http_request_duration_seconds{route}             histogram
 *   shardkv_http_request_bytes_total{route} / _response_bytes_total{route}  counter
 *   shardkv_requests_total{shard}                            counter (key operations per shard)
 *   shardkv_shard_ops_total{shard,op}  op=get|put|delete     counter
 *   shardkv_shard_size{shard}  shardkv_shard_bytes{shard}    gauge (read from the store at scrape)
 *   shardkv_shard_ring_share{shard}                          gauge
 *   requests_total{shard}, shard_size{shard}                 seed-000 aliases of the two above
 *   shardkv_shard_state{shard,state}  state=ok|disk_full|degraded  gauge (1 for the current state)
 *   shardkv_wal_batches_total{shard}, shardkv_wal_records_total{shard},
 *   shardkv_wal_bytes_total{shard}, shardkv_wal_fsyncs_total{shard},
 *   shardkv_wal_fsync_seconds_total{shard}, shardkv_wal_errors_total{shard}   counter
 *   shardkv_wal_log_bytes{shard}                             gauge (bytes in the log segments)
 *   shardkv_snapshots_total{shard,result}  result=ok|failed  counter
 *   shardkv_cache_hits_total, shardkv_cache_misses_total,
 *   shardkv_keys_expired_total, shardkv_keys_evicted_total   counter (node)
 *   shardkv_memory_limit_bytes, shardkv_keys_limit           gauge (0 = none)
 *   shardkv_connections                                      gauge (open now)
 *   shardkv_connections_accepted_total, shardkv_connections_rejected_total{reason}  counter
 *   shardkv_ready, shardkv_uptime_seconds, shardkv_shard_map_version, shardkv_build_info{version}
 *   shardkv_hot_key_requests{shard,rank,key}                 gauge (hotkeys.h: top 3 per shard)
 *   process_cpu_seconds_total, process_resident_memory_bytes,
 *   process_virtual_memory_bytes, process_open_fds, process_max_fds,
 *   process_start_time_seconds                                (from /proc/self)
 */
#ifndef SKV_METRICS_H
#define SKV_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

enum metrics_op { METRICS_OP_GET = 0, METRICS_OP_PUT, METRICS_OP_DELETE, METRICS_OP__COUNT };
enum metrics_reject { METRICS_REJECT_MAX_CONNECTIONS = 0, METRICS_REJECT_SHUTDOWN, METRICS_REJECT__COUNT };

typedef struct metrics metrics;               /* opaque registry */
typedef struct metrics_worker metrics_worker; /* opaque per-thread slot */

/*
 * Creates the registry.  route_names[0..nroutes) label the route dimension
 * (the strings must outlive the registry); methods are enum http_method
 * (http.h); status codes are bucketed into a fixed set of known codes plus
 * "other".  Aborts on OOM (small, fixed-size allocation).
 */
metrics *metrics_new(unsigned nworkers, uint32_t nshards, const char *const *route_names, unsigned nroutes);
void metrics_free(metrics *m);

/* The slot of worker id (0..nworkers-1).  Only that worker's thread may
 * write through it. */
metrics_worker *metrics_worker_slot(metrics *m, unsigned id);

/* One HTTP request finished. */
void metrics_http_observe(metrics_worker *w, unsigned route, int method, int status,
                          uint64_t duration_ns, size_t request_bytes, size_t response_bytes);
/* One key operation reached a shard. */
void metrics_shard_op(metrics_worker *w, uint32_t shard, int op);
void metrics_conn_opened(metrics_worker *w);
void metrics_conn_closed(metrics_worker *w);
void metrics_conn_rejected(metrics_worker *w, int reason);

/* Key operations that reached shard so far, summed over workers (for
 * /shards).  Thread-safe against the writers. */
uint64_t metrics_shard_requests(const metrics *m, uint32_t shard);

/* A shard's log activity since start (filled by commit_stats_of). */
typedef struct metrics_log_stats {
    uint64_t batches;           /* batches written to the log */
    uint64_t records;           /* records in them */
    uint64_t bytes_written;     /* bytes appended to the log */
    uint64_t fsyncs;            /* fdatasync calls on the log */
    double fsync_seconds;       /* time spent in them */
    uint64_t write_errors;      /* failed appends or syncs (disk full, I/O error) */
    uint64_t snapshots;         /* snapshots written */
    uint64_t snapshot_failures;
    uint64_t log_bytes;         /* bytes in the shard's log segments now */
} metrics_log_stats;

/* One sample of shardkv_hot_key_requests (filled by hotkeys_metric_samples). */
typedef struct metrics_hot_key {
    uint32_t shard;
    uint32_t rank;              /* 1 = the shard's hottest key */
    const char *key;            /* label text: NUL-terminated UTF-8 */
    uint64_t count;             /* the key's recent requests (decayed, upper bound) */
} metrics_hot_key;

/* Values read at scrape time from the rest of the server. */
typedef struct metrics_snapshot {
    uint32_t nshards;
    const uint64_t *shard_keys;    /* [nshards] */
    const uint64_t *shard_bytes;   /* [nshards] */
    const double *shard_share;     /* [nshards] */
    const int *shard_state;        /* [nshards] enum shard_state, or NULL */
    const metrics_log_stats *wal;
    uint64_t cache_hits, cache_misses, keys_expired, keys_evicted;
    uint64_t memory_limit, keys_limit;   /* [nshards], or NULL (no log: before recovery ends) */
    uint64_t shard_map_version;
    int ready;
    double uptime_seconds;
    const char *version;
    const metrics_hot_key *hot_keys;  /* [nhot_keys], or NULL */
    size_t nhot_keys;
} metrics_snapshot;

/* Appends the whole exposition to out.  Thread-safe against the writers. */
void metrics_render(metrics *m, const metrics_snapshot *snap, skv_buf *out);

#endif
