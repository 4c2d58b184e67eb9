/*
 * datadir — the data directory's own files: the LOCK that keeps a second
 * node off the directory, and META, which records the shard layout the
 * data was written with.
 *
 *   <data-dir>/LOCK      flock(LOCK_EX) held for the life of the node; holds its pid
 *   <data-dir>/META      "shardkv-data 1\nshards N\nplacement P\nhash H\nvnodes V\n"
 *   <data-dir>/shard-<i>/   one directory per shard (wal.h, snap.h)
 *
 * Keys are placed by the layout, so a node must not open data written with
 * another one (resharding is an online operation of the cluster release).
 */
#ifndef SKV_DATADIR_H
#define SKV_DATADIR_H

#include <stdint.h>

/* Takes the directory lock.  Returns the lock fd (keep it open; closing it
 * releases the lock) or SKV_EBUSY-like SKV_ESTATE after logging who holds
 * it, or SKV_EIO. */
int datadir_lock(const char *dir);

/* Checks META against the layout, writing it when absent.  Returns 0, or
 * SKV_ESTATE after logging both layouts, or SKV_EIO. */
int datadir_check_meta(const char *dir, uint32_t shards, const char *placement, const char *hash, uint32_t vnodes);

#endif
