/*
 * snap — shard snapshots.  The file layout and the meaning of a snapshot are
 * in snap.h; this file is how they are written, found, loaded and dropped.
 *
 * Writing (snap_write): snap-<base_seq>.tmp is created (truncated if a stale
 * one exists), the header, the entries (wal records, op PUT, seq = version)
 * and the trailer are encoded into one skv_buf that is flushed with full
 * writes every SNAP_FLUSH_BYTES, then the file is fsynced, closed, renamed to
 * snap-<base_seq>.snap and the directory is fsynced.  All writes and the file
 * fsync go through the caller's skv_io, so tests can fail any of them.  On a
 * failure before the rename the .tmp is unlinked; a failure of the directory
 * fsync after the rename leaves a complete, valid .snap behind (the caller
 * gets SKV_EIO and keeps its log, so loading that file later is harmless).
 *
 * Loading (snap_load): the file is streamed through a read window that
 * starts at SNAP_READ_BYTES (or the file size when smaller) and grows only
 * when one record is larger than the window, to exactly that record's size,
 * so a snapshot of any size loads in memory bounded by its largest record.
 * A record's declared length is checked against the file size before the
 * window grows, so a corrupt length cannot ask for more memory than the file
 * holds.  At each record boundary the next 8 bytes are either the trailer
 * magic or a record header; they cannot be confused because "SKVS" read as
 * a u32 body_len (0x53564b53) exceeds WAL_MAX_BODY.  The load is one pass:
 * fn sees each entry as soon as it checks out, before the trailer has been
 * verified, so a caller that gets SKV_EIO must throw away what it loaded.
 *
 * Names are parsed strictly: "snap-" + exactly 20 decimal digits that fit a
 * u64 + ".snap" (or ".tmp"); anything else in the directory is ignored,
 * except that snap_find_latest deletes every "snap-*.tmp".
 *
 * Invariants: while loading, unread bytes are window[start..end), end <=
 * cap, and offset (the file offset of window[start]) + unread <= the file
 * size (reader_ok).  Not thread-safe per file; different shards are
 * independent.
 */
#include "snap.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "crc32c.h"
#include "err.h"
#include "log.h"
#include "mem.h"

#define SNAP_HEADER_SIZE 32
#define SNAP_TRAILER_SIZE 32
#define SNAP_FORMAT_VERSION 1u
#define SNAP_HEADER_MAGIC "SKVSNAP1"
#define SNAP_TRAILER_MAGIC "SKVSNEND"
#define SNAP_MAGIC_LEN 8
#define SNAP_PREFIX "snap-"
#define SNAP_PREFIX_LEN 5
#define SNAP_DIGITS 20
#define SNAP_FLUSH_BYTES ((size_t)256 << 10)
#define SNAP_READ_BYTES ((size_t)256 << 10)
#define SNAP_MAX_KEY ((uint64_t)64 << 20)

/* The trailer is told from a record by its first 4 bytes alone. */
_Static_assert(0x53564b53u > WAL_MAX_BODY, "trailer magic must not read as a valid record length");

/* ---- little-endian fields and the two 32-byte frames ----------------------------------------- */

static void put_u32(char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (char)(v >> (8 * i));
}
static void put_u64(char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (char)(v >> (8 * i));
}
static uint32_t get_u32(const char *p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | (unsigned char)p[i];
    return v;
}
static uint64_t get_u64(const char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | (unsigned char)p[i];
    return v;
}

static void encode_header(char out[SNAP_HEADER_SIZE], uint32_t shard_id, uint64_t base_seq) {
    memcpy(out, SNAP_HEADER_MAGIC, SNAP_MAGIC_LEN);
    put_u32(out + 8, SNAP_FORMAT_VERSION);
    put_u32(out + 12, shard_id);
    put_u64(out + 16, base_seq);
    put_u32(out + 24, 0);
    put_u32(out + 28, crc32c(0, out, 28));
}

static void encode_trailer(char out[SNAP_TRAILER_SIZE], uint64_t count, uint64_t base_seq) {
    memcpy(out, SNAP_TRAILER_MAGIC, SNAP_MAGIC_LEN);
    put_u64(out + 8, count);
    put_u64(out + 16, base_seq);
    put_u32(out + 24, 0);
    put_u32(out + 28, crc32c(0, out, 28));
}

/* ---- names ----------------------------------------------------------------------------------- */

/* 1 and *seq when name is exactly "snap-" + 20 digits (fitting a u64) + suffix. */
static int parse_name(const char *name, const char *suffix, uint64_t *seq) {
    size_t suffix_len = strlen(suffix);
    if (strlen(name) != SNAP_PREFIX_LEN + SNAP_DIGITS + suffix_len) return 0;
    if (memcmp(name, SNAP_PREFIX, SNAP_PREFIX_LEN) != 0) return 0;
    if (memcmp(name + SNAP_PREFIX_LEN + SNAP_DIGITS, suffix, suffix_len) != 0) return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < SNAP_DIGITS; i++) {
        char c = name[SNAP_PREFIX_LEN + i];
        if (c < '0' || c > '9') return 0;
        uint64_t d = (uint64_t)(c - '0');
        if (v > (UINT64_MAX - d) / 10) return 0;
        v = v * 10 + d;
    }
    *seq = v;
    return 1;
}

/* Any "snap-*.tmp": an unfinished snapshot, whatever is between. */
static int is_leftover_tmp(const char *name) {
    size_t n = strlen(name);
    return n > SNAP_PREFIX_LEN + 4 && memcmp(name, SNAP_PREFIX, SNAP_PREFIX_LEN) == 0 &&
           memcmp(name + n - 4, ".tmp", 4) == 0;
}

static int snap_file_path(char *out, size_t cap, const char *dir, uint64_t base_seq, const char *suffix) {
    char name[64];
    snprintf(name, sizeof name, SNAP_PREFIX "%020llu%s", (unsigned long long)base_seq, suffix);
    return io_path(out, cap, dir, name);
}

static const char *errno_text(int e, char *buf, size_t cap) { return strerror_r(e, buf, cap); }

/* ---- writing --------------------------------------------------------------------------------- */

typedef struct snap_writer {
    const skv_io *io;
    int fd;
    skv_buf buf;
    const char *path; /* the .tmp, for messages */
} snap_writer;

/* Logs a failed step and maps its -errno to the module's codes. */
static int write_failed(const char *path, const char *step, int neg_errno) {
    char eb[128];
    log_error("snapshot %s: %s failed: %s", path, step, errno_text(-neg_errno, eb, sizeof eb));
    if (neg_errno == -ENOSPC || neg_errno == -EFBIG || neg_errno == -EDQUOT) return SKV_ENOSPACE;
    return SKV_EIO;
}

/* Writes out what is buffered; a buffer that grew for one huge record is given back. */
static int writer_flush(snap_writer *w) {
    if (w->buf.len > 0) {
        int e = io_write_all(w->io, w->fd, w->buf.data, w->buf.len);
        if (e != 0) return write_failed(w->path, "write", e);
    }
    skv_buf_reset(&w->buf);
    if (w->buf.cap > 2 * SNAP_FLUSH_BYTES) {
        skv_buf_free(&w->buf);
        skv_buf_reserve(&w->buf, SNAP_FLUSH_BYTES);
    }
    return SKV_OK;
}

/* What snap_load accepts: op PUT, a key, and a body that fits a wal record. */
static int entry_ok(const wal_record *r) {
    if (r->op != WAL_OP_PUT || r->key.len < 1 || r->key.len > SNAP_MAX_KEY) return 0;
    return (uint64_t)WAL_BODY_FIXED + r->key.len + r->value.len <= WAL_MAX_BODY;
}

/* Pulls every entry from next into the file; *count is how many. */
static int write_entries(snap_writer *w, snap_next_fn next, void *arg, uint64_t *count) {
    for (;;) {
        wal_record r;
        memset(&r, 0, sizeof r);
        int more = next(arg, &r);
        if (more == 0) return SKV_OK;
        if (more != 1) {
            log_error("snapshot %s: entry producer failed (%d)", w->path, more);
            return more < 0 ? more : SKV_EIO;
        }
        if (!entry_ok(&r)) {
            log_error("snapshot %s: refusing invalid entry (op %d, key %zu bytes, value %zu bytes)", w->path,
                      r.op, r.key.len, r.value.len);
            return SKV_EINVAL;
        }
        wal_record_encode(&w->buf, &r);
        (*count)++;
        if (w->buf.len >= SNAP_FLUSH_BYTES) {
            int rc = writer_flush(w);
            if (rc != SKV_OK) return rc;
        }
    }
}

/* Header, entries, trailer, fsync, close: everything that happens to the .tmp. */
static int write_tmp(snap_writer *w, uint32_t shard_id, uint64_t base_seq, snap_next_fn next, void *arg) {
    char frame[SNAP_HEADER_SIZE];
    encode_header(frame, shard_id, base_seq);
    skv_buf_append(&w->buf, frame, sizeof frame);

    uint64_t count = 0;
    int rc = write_entries(w, next, arg, &count);
    if (rc != SKV_OK) return rc;

    encode_trailer(frame, count, base_seq);
    skv_buf_append(&w->buf, frame, sizeof frame);
    rc = writer_flush(w);
    if (rc != SKV_OK) return rc;

    int e = w->io->fsync(w->fd);
    if (e != 0) return write_failed(w->path, "fsync", e);
    int fd = w->fd;
    w->fd = -1;
    if (close(fd) != 0) return write_failed(w->path, "close", -errno);
    return SKV_OK;
}

int snap_write(const char *dir, uint32_t shard_id, uint64_t base_seq, snap_next_fn next, void *arg,
               const skv_io *io) {
    char tmp_path[512], final_path[512];
    if (snap_file_path(tmp_path, sizeof tmp_path, dir, base_seq, ".tmp") != 0 ||
        snap_file_path(final_path, sizeof final_path, dir, base_seq, ".snap") != 0) {
        log_error("snapshot in %s: path too long", dir);
        return SKV_EIO;
    }

    snap_writer w = { .io = io, .fd = -1, .path = tmp_path };
    skv_buf_init(&w.buf);
    int created = 0;
    int rc;

    w.fd = open(tmp_path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
    if (w.fd < 0) {
        rc = write_failed(tmp_path, "open", -errno);
        goto cleanup;
    }
    created = 1;
    skv_buf_reserve(&w.buf, SNAP_FLUSH_BYTES);

    rc = write_tmp(&w, shard_id, base_seq, next, arg);
    if (rc != SKV_OK) goto cleanup;

    if (rename(tmp_path, final_path) != 0) {
        rc = write_failed(final_path, "rename", -errno);
        goto cleanup;
    }
    created = 0; /* the .tmp is gone either way from here */
    int e = io_fsync_dir(dir);
    if (e != 0) {
        rc = write_failed(dir, "directory fsync", e);
        goto cleanup;
    }
    log_info("snapshot %s written (shard %u, base_seq %llu)", final_path, shard_id, (unsigned long long)base_seq);

cleanup:
    if (w.fd >= 0) close(w.fd);
    if (rc != SKV_OK && created && unlink(tmp_path) != 0 && errno != ENOENT) {
        char eb[128];
        log_warn("snapshot %s: cannot remove after failure: %s", tmp_path, errno_text(errno, eb, sizeof eb));
    }
    skv_buf_free(&w.buf);
    return rc;
}

/* ---- finding and dropping -------------------------------------------------------------------- */

/* Opens dir; a missing directory is reported as *dp == NULL with 0. */
static int open_dir(const char *dir, DIR **dp) {
    *dp = opendir(dir);
    if (*dp != NULL || errno == ENOENT) return SKV_OK;
    char eb[128];
    log_error("snapshot directory %s: cannot read: %s", dir, errno_text(errno, eb, sizeof eb));
    return SKV_EIO;
}

/* Unlinks dir/name; ENOENT counts as done.  Returns 1 when removed, 0 when
 * it was not there, SKV_EIO otherwise. */
static int remove_file(const char *dir, const char *name) {
    char path[512];
    if (io_path(path, sizeof path, dir, name) != 0) return SKV_EIO;
    if (unlink(path) == 0) return 1;
    if (errno == ENOENT) return 0;
    char eb[128];
    log_warn("snapshot %s: cannot remove: %s", path, errno_text(errno, eb, sizeof eb));
    return SKV_EIO;
}

int snap_find_latest(const char *dir, snap_info *info) {
    memset(info, 0, sizeof *info);
    DIR *d;
    if (open_dir(dir, &d) != SKV_OK) return SKV_EIO;
    if (d == NULL) return 0;

    int found = 0, removed = 0;
    uint64_t best = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t seq;
        if (de->d_type == DT_DIR) continue;
        if (parse_name(de->d_name, ".snap", &seq)) {
            if (!found || seq > best) best = seq;
            found = 1;
        } else if (is_leftover_tmp(de->d_name)) {
            if (remove_file(dir, de->d_name) == 1) {
                log_warn("snapshot %s/%s: unfinished snapshot removed", dir, de->d_name);
                removed = 1;
            }
        }
    }
    closedir(d);

    if (removed && io_fsync_dir(dir) != 0) log_warn("snapshot directory %s: fsync failed", dir);
    if (!found) return 0;
    if (snap_file_path(info->path, sizeof info->path, dir, best, ".snap") != 0) return SKV_EIO;
    info->base_seq = best;
    return 1;
}

int snap_drop_older(const char *dir, uint64_t keep_base_seq) {
    DIR *d;
    if (open_dir(dir, &d) != SKV_OK) return SKV_EIO;
    if (d == NULL) return SKV_OK;

    int rc = SKV_OK, removed = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t seq;
        if (de->d_type == DT_DIR || !parse_name(de->d_name, ".snap", &seq) || seq >= keep_base_seq) continue;
        int r = remove_file(dir, de->d_name);
        if (r == 1) removed = 1;
        if (r < 0) rc = SKV_EIO;
    }
    closedir(d);

    if (removed && io_fsync_dir(dir) != 0) {
        log_error("snapshot directory %s: fsync failed", dir);
        rc = SKV_EIO;
    }
    return rc;
}

/* ---- loading --------------------------------------------------------------------------------- */

typedef struct snap_reader {
    int fd;
    char *window;
    size_t cap;
    size_t start, end; /* unread bytes: window[start..end) */
    uint64_t offset;   /* file offset of window[start] */
    uint64_t size;     /* file size */
} snap_reader;

static int reader_ok(const snap_reader *rd) {
    return rd->start <= rd->end && rd->end <= rd->cap && rd->offset <= rd->size &&
           rd->end - rd->start <= rd->size - rd->offset;
}

static size_t reader_avail(const snap_reader *rd) { return rd->end - rd->start; }
static const char *reader_ptr(const snap_reader *rd) { return rd->window + rd->start; }

static void reader_skip(snap_reader *rd, size_t n) {
    assert(n <= reader_avail(rd));
    rd->start += n;
    rd->offset += n;
}

static int load_failed(snap_info *info, uint64_t offset, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int load_failed(snap_info *info, uint64_t offset, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(info->error, sizeof info->error, fmt, ap);
    va_end(ap);
    info->error_offset = offset;
    return SKV_EIO;
}

/* Makes the window big enough for need bytes: moves the unread bytes to the
 * front, and grows to exactly need when the window is smaller. */
static int reader_make_room(snap_reader *rd, size_t need, snap_info *info) {
    size_t unread = reader_avail(rd);
    if (need > rd->cap) {
        char *bigger = skv_try_malloc(need);
        if (bigger == NULL) {
            snprintf(info->error, sizeof info->error, "out of memory for a record of %zu bytes", need);
            info->error_offset = rd->offset;
            return SKV_ENOMEM;
        }
        if (unread) memcpy(bigger, rd->window + rd->start, unread);
        free(rd->window);
        rd->window = bigger;
        rd->cap = need;
    } else if (rd->start > 0) {
        if (unread) memmove(rd->window, rd->window + rd->start, unread);
    }
    rd->start = 0;
    rd->end = unread;
    return SKV_OK;
}

/* Ensures need unread bytes; the caller has checked that the file holds them. */
static int reader_fill(snap_reader *rd, size_t need, snap_info *info) {
    assert(reader_ok(rd));
    assert(need <= rd->size - rd->offset);
    if (reader_avail(rd) >= need) return SKV_OK;
    if (rd->start + need > rd->cap) {
        int rc = reader_make_room(rd, need, info);
        if (rc != SKV_OK) return rc;
    }
    while (reader_avail(rd) < need) {
        size_t room = rd->cap - rd->end;
        uint64_t file_left = rd->size - rd->offset - reader_avail(rd);
        if (room > file_left) room = (size_t)file_left; /* never read past the size we checked against */
        ssize_t n = read(rd->fd, rd->window + rd->end, room);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            char eb[128];
            return load_failed(info, rd->offset + reader_avail(rd), "read failed: %s",
                               errno_text(errno, eb, sizeof eb));
        }
        if (n == 0) return load_failed(info, rd->offset + reader_avail(rd), "file shrank while being read");
        rd->end += (size_t)n;
    }
    assert(reader_ok(rd));
    return SKV_OK;
}

/* The header must be intact and, when the file has a snapshot name, agree with it. */
static int load_header(snap_reader *rd, snap_info *info) {
    if (rd->size < SNAP_HEADER_SIZE)
        return load_failed(info, 0, "truncated: %llu bytes, shorter than the header", (unsigned long long)rd->size);
    int rc = reader_fill(rd, SNAP_HEADER_SIZE, info);
    if (rc != SKV_OK) return rc;
    const char *h = reader_ptr(rd);
    if (memcmp(h, SNAP_HEADER_MAGIC, SNAP_MAGIC_LEN) != 0) return load_failed(info, 0, "bad header magic");
    if (get_u32(h + 28) != crc32c(0, h, 28)) return load_failed(info, 28, "header checksum mismatch");
    if (get_u32(h + 8) != SNAP_FORMAT_VERSION)
        return load_failed(info, 8, "unsupported format version %u", get_u32(h + 8));
    if (get_u32(h + 24) != 0) return load_failed(info, 24, "reserved header field is not zero");

    uint64_t base_seq = get_u64(h + 16), named_seq;
    const char *slash = strrchr(info->path, '/');
    if (parse_name(slash ? slash + 1 : info->path, ".snap", &named_seq) && named_seq != base_seq)
        return load_failed(info, 16, "header base_seq %llu does not match the file name",
                           (unsigned long long)base_seq);
    info->base_seq = base_seq;
    reader_skip(rd, SNAP_HEADER_SIZE);
    return SKV_OK;
}

/* Decodes one record at the current offset (the caller has ruled out the
 * trailer) into *r, valid until the next fill. */
static int load_record(snap_reader *rd, snap_info *info, wal_record *r, size_t *used) {
    uint64_t at = rd->offset, left = rd->size - rd->offset;
    uint32_t body_len = get_u32(reader_ptr(rd));
    if (body_len < WAL_BODY_FIXED || body_len > WAL_MAX_BODY)
        return load_failed(info, at, "bad record length %u", body_len);
    uint64_t rec_len = (uint64_t)WAL_RECORD_HEADER + body_len;
    if (rec_len > left)
        return load_failed(info, at, "truncated: record of %llu bytes runs past the end of the file",
                           (unsigned long long)rec_len);
    int rc = reader_fill(rd, (size_t)rec_len, info);
    if (rc != SKV_OK) return rc;
    rc = wal_record_decode(reader_ptr(rd), reader_avail(rd), r, used);
    if (rc != SKV_OK) return load_failed(info, at, "invalid record (checksum or field check failed)");
    assert(*used == rec_len);
    if (r->op != WAL_OP_PUT) return load_failed(info, at, "record op %d is not PUT", r->op);
    return SKV_OK;
}

/* Every entry up to the trailer magic, each handed to fn. */
static int load_entries(snap_reader *rd, snap_info *info, wal_record_fn fn, void *arg) {
    for (;;) {
        uint64_t left = rd->size - rd->offset;
        if (left < WAL_RECORD_HEADER)
            return load_failed(info, rd->offset, "truncated: %llu bytes where a record or the trailer should be",
                               (unsigned long long)left);
        int rc = reader_fill(rd, WAL_RECORD_HEADER, info);
        if (rc != SKV_OK) return rc;
        if (memcmp(reader_ptr(rd), SNAP_TRAILER_MAGIC, SNAP_MAGIC_LEN) == 0) return SKV_OK;

        wal_record r;
        size_t used;
        rc = load_record(rd, info, &r, &used);
        if (rc != SKV_OK) return rc;
        info->entries++;
        rc = fn(arg, &r);
        if (rc != 0) return rc;
        reader_skip(rd, used);
    }
}

/* The trailer must be intact, count what was read, and end the file. */
static int load_trailer(snap_reader *rd, snap_info *info) {
    uint64_t at = rd->offset, left = rd->size - rd->offset;
    if (left < SNAP_TRAILER_SIZE) return load_failed(info, at, "truncated trailer");
    int rc = reader_fill(rd, SNAP_TRAILER_SIZE, info);
    if (rc != SKV_OK) return rc;
    const char *t = reader_ptr(rd);
    if (get_u32(t + 28) != crc32c(0, t, 28)) return load_failed(info, at + 28, "trailer checksum mismatch");
    if (get_u32(t + 24) != 0) return load_failed(info, at + 24, "reserved trailer field is not zero");
    if (get_u64(t + 8) != info->entries)
        return load_failed(info, at + 8, "trailer counts %llu entries, the file holds %llu",
                           (unsigned long long)get_u64(t + 8), (unsigned long long)info->entries);
    if (get_u64(t + 16) != info->base_seq)
        return load_failed(info, at + 16, "trailer base_seq %llu differs from the header's %llu",
                           (unsigned long long)get_u64(t + 16), (unsigned long long)info->base_seq);
    if (left > SNAP_TRAILER_SIZE)
        return load_failed(info, at + SNAP_TRAILER_SIZE, "%llu bytes after the trailer",
                           (unsigned long long)(left - SNAP_TRAILER_SIZE));
    return SKV_OK;
}

int snap_load(snap_info *info, wal_record_fn fn, void *arg) {
    info->entries = 0;
    info->bytes = 0;
    info->error[0] = '\0';
    info->error_offset = 0;

    snap_reader rd = { .fd = -1 };
    int rc;
    rd.fd = open(info->path, O_RDONLY | O_CLOEXEC);
    if (rd.fd < 0) {
        char eb[128];
        rc = load_failed(info, 0, "cannot open: %s", errno_text(errno, eb, sizeof eb));
        goto cleanup;
    }
    struct stat st;
    if (fstat(rd.fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = load_failed(info, 0, "not a readable regular file");
        goto cleanup;
    }
    rd.size = (uint64_t)st.st_size;
    info->bytes = rd.size;
    rd.cap = rd.size < SNAP_READ_BYTES ? (size_t)rd.size : SNAP_READ_BYTES;
    rd.window = skv_malloc(rd.cap ? rd.cap : 1);

    rc = load_header(&rd, info);
    if (rc == SKV_OK) rc = load_entries(&rd, info, fn, arg);
    if (rc == SKV_OK) rc = load_trailer(&rd, info);

cleanup:
    if (rd.fd >= 0) close(rd.fd);
    free(rd.window);
    return rc;
}
