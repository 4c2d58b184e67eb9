/*
 * snap — shard snapshots: one file holding every entry of a shard, so that
 * the log segments it covers can be dropped.
 *
 * File: <shard dir>/snap-<base_seq, 20 digits>.snap, written as
 * snap-<base_seq>.tmp, fsynced, renamed, directory fsynced; a leftover .tmp
 * is an unfinished snapshot and is deleted at start.
 *
 * Layout (little-endian):
 *   header, 32 bytes: magic "SKVSNAP1" (8) | u32 format version (1) |
 *     u32 shard id | u64 base_seq | u32 reserved (0) | u32 crc32c(bytes 0..27)
 *   entries: each framed exactly as a wal record (wal.h) with op PUT and
 *     seq = the entry's version
 *   trailer, 32 bytes: magic "SKVSNEND" (8) | u64 entry count |
 *     u64 base_seq | u32 reserved (0) | u32 crc32c(bytes 0..27)
 *
 * A snapshot is "fuzzy": it is taken while writes continue, so it holds
 * every entry as of base_seq and possibly some later ones.  Recovery loads
 * it and replays the log from base_seq + 1 with "newer version wins"
 * (a record applies only when its seq is above the entry's version), which
 * makes the result exact.  An entry may appear twice (keep the higher
 * version).
 *
 * A snapshot is valid when header, every entry and the trailer check out and
 * the trailer's count matches; anything else is corruption (SKV_EIO with
 * the offset).  Not thread-safe per file; different shards are independent.
 */
#ifndef SKV_SNAP_H
#define SKV_SNAP_H

#include <stddef.h>
#include <stdint.h>

#include "io.h"
#include "wal.h"

/* Produces the next entry to write: returns 1 with *r filled (op PUT, seq =
 * version; slices valid until the next call), 0 when done. */
typedef int (*snap_next_fn)(void *arg, wal_record *r);

/* Writes a complete snapshot of shard_id with base_seq in dir (see layout),
 * pulling entries from next.  Returns 0 or SKV_ENOSPACE / SKV_EIO (the temp
 * file is removed on failure). */
int snap_write(const char *dir, uint32_t shard_id, uint64_t base_seq, snap_next_fn next, void *arg,
               const skv_io *io);

typedef struct snap_info {
    char path[512];
    uint64_t base_seq;
    uint64_t entries;
    uint64_t bytes;
    char error[160];        /* on SKV_EIO: what is wrong ... */
    uint64_t error_offset;  /* ... and where */
} snap_info;

/* Finds the newest snap-*.snap in dir (by base_seq) and deletes leftover
 * .tmp files.  Returns 1 with info->path/base_seq set, 0 when there is none,
 * or SKV_EIO when the directory cannot be read. */
int snap_find_latest(const char *dir, snap_info *info);

/* Loads the snapshot at info->path, calling fn for each entry (fn returning
 * non-zero stops and is returned).  Returns 0 with info filled, SKV_EIO on
 * corruption (info->error, info->error_offset), or fn's value. */
int snap_load(snap_info *info, wal_record_fn fn, void *arg);

/* Deletes every snapshot in dir older than keep_base_seq; fsyncs the dir. */
int snap_drop_older(const char *dir, uint64_t keep_base_seq);

#endif
