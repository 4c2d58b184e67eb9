/*
 * io — the replaceable file-I/O layer under the log and the snapshots.
 *
 * Every durable write in shardkv goes through an skv_io table so that tests
 * can inject faults (fail the N-th write with ENOSPC, the N-th fdatasync
 * with EIO, short writes) without touching the code under test.  The
 * helpers below are the one durable-write routine: full writes with EINTR
 * and short-write retries, fdatasync, temp file + rename + directory fsync.
 *
 * Functions return 0 or -errno (never set errno for the caller to read).
 * Thread-safe: the table is read-only; skv_io_posix is the production one.
 */
#ifndef SKV_IO_H
#define SKV_IO_H

#include <stddef.h>
#include <sys/types.h>

typedef struct skv_io {
    /* Same contracts as the POSIX calls, but returning -errno on failure. */
    ssize_t (*write)(int fd, const void *buf, size_t len);
    int (*fdatasync)(int fd);
    int (*fsync)(int fd);
    int (*ftruncate)(int fd, off_t len);
} skv_io;

extern const skv_io skv_io_posix;

/* Writes all len bytes (retrying EINTR and short writes).  Returns 0 or
 * -errno; on error an unknown prefix of buf may have been written. */
int io_write_all(const skv_io *io, int fd, const void *buf, size_t len);

/* fsync of a directory, so that a create/rename/unlink in it is durable. */
int io_fsync_dir(const char *dir);

/* Joins dir and name into out (cap bytes); returns 0 or -ENAMETOOLONG. */
int io_path(char *out, size_t cap, const char *dir, const char *name);

/* mkdir -p for one level (EEXIST is success). */
int io_mkdir(const char *dir);

#endif
