/*
 * commit — makes shard mutations durable: group commit of the shards'
 * log records, the fsync policy, background snapshots and log compaction.
 *
 * Group commit.  shard_apply() appends encoded records to the shard's
 * buffer and kicks the shard's flusher.  A flusher thread (one per group of
 * shards, at most COMMIT_MAX_FLUSHERS) takes a shard's whole buffer at once,
 * writes it with one write(2) and, under --fsync always, one fdatasync, then
 * makes the batch's pending entries visible and delivers every waiter of the
 * batch to its worker loop.  One fsync per batch, never one per write, and
 * the event loops never block on the disk.
 *
 * Policies.  always: a write is acknowledged only after its record is on
 * stable storage.  everysec: acknowledged after it is applied in memory;
 * records reach write(2) within LAZY_FLUSH_MS (at once past 64 KiB) and are
 * fdatasync'ed about every second, so a power loss can lose up to about a
 * second of acknowledged writes and a crash of the process the last few
 * milliseconds.  never: like everysec without the periodic fsync.
 *
 * Failures.  A full disk (ENOSPC/EFBIG/EDQUOT) cuts the half-written batch
 * off the log.  Under always, that batch and everything pending after it
 * fail with SKV_ENOSPACE (507) and nothing of it becomes visible; under
 * everysec/never the batch is kept and retried, and new writes get 507 until
 * a retry succeeds.  Reads continue throughout.  A failed fdatasync leaves
 * the outcome unknown: the shard turns DEGRADED (sticky), its waiters fail
 * with SKV_EIO (503) and it refuses writes until the node restarts and
 * recovers from the log.
 *
 * Snapshots.  When a shard's log passes --snapshot-bytes, its flusher rolls
 * the log to a new segment at base = last logged seq and a snapshot thread
 * writes a fuzzy snapshot (snap.h) while writes continue; once it is
 * durable the flusher drops the segments and older snapshots it covers.
 */
#ifndef SKV_COMMIT_H
#define SKV_COMMIT_H

#include <stdint.h>

#include "io.h"
#include "metrics.h"
#include "store.h"

#define COMMIT_MAX_FLUSHERS 8

enum fsync_policy { FSYNC_ALWAYS = 0, FSYNC_EVERYSEC, FSYNC_NEVER };

typedef struct commit_config {
    const char *data_dir;
    int policy;                 /* enum fsync_policy */
    uint64_t snapshot_bytes;    /* log size that triggers a snapshot (0 = never) */
    const skv_io *io;
} commit_config;

typedef struct commit commit; /* opaque */

/* Per-shard recovery figures, for logs and /health. */
typedef struct commit_recovery {
    uint64_t snapshot_entries;
    uint64_t records_replayed;
    uint64_t last_seq;
    double seconds;
    int torn_tail;              /* a torn record was cut off the log */
} commit_recovery;

/*
 * Recovers every shard of st from cfg->data_dir (newest snapshot, then the
 * log; a torn tail is cut with a warning), opens the logs for appending,
 * attaches them to the shards and starts the flusher and snapshot threads.
 * Uses up to `parallel` threads for recovery.  Returns 0 and *out, or
 * SKV_EIO after logging which file and offset are bad and the command that
 * repairs it (the node must not start).
 */
int commit_start(const commit_config *cfg, store *st, unsigned parallel, commit **out);

/* Recovery figures of shard id (valid after commit_start). */
const commit_recovery *commit_recovery_of(const commit *c, uint32_t id);


/* Fills *out with shard id's log activity since start.  Thread-safe;
 * counters are read without a lock and may be a batch apart. */
void commit_stats_of(const commit *c, uint32_t id, metrics_log_stats *out);

/* Writes everything still buffered (and syncs it, except under never),
 * stops the threads, closes the logs.  Call after the workers stopped
 * writing; the store must not be written afterwards (the shards still
 * point at the stopped commit). */
void commit_stop(commit *c);

const char *commit_policy_name(int policy);
/* Returns the policy or -1. */
int commit_policy_parse(const char *s);

#endif
