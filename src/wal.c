/*
 * wal — segment files of framed, checksummed records (layout, validity and
 * recovery rules: wal.h).  This file adds the implementation's own rules:
 *
 * Writing.  A wal holds the newest segment open with O_APPEND, so every
 * write lands at the end of the file whatever a failed write or a
 * truncation did to the file offset.  It tracks
 *   size         bytes of the current segment written successfully,
 *   commit_size  the rewind point (wal_commit_point), <= size,
 *   segs         every segment oldest first, the current one last; the
 *                sizes of the older ones are summed in older_bytes.
 * All writes, syncs and truncations go through the skv_io table.  A new
 * segment is created with O_EXCL, its header written and fdatasynced, and
 * the directory fsynced before the first record can go into it, so a
 * segment that a sync acknowledged records in can always be found again.
 *
 * Reading.  wal_scan streams each segment through one buffer that starts at
 * WAL_READ_CHUNK bytes and grows only to the largest record met (its
 * declared length is checked against the file size first, so a corrupt
 * length cannot make it allocate more than the file holds).  Records are
 * handed to the callback as slices into that buffer, valid during the call.
 *
 * Besides the record rules of wal.h, the scan also treats as corruption: a
 * header whose first_seq differs from the file name, a shard id differing
 * between segments, a record seq below its segment's first_seq, and a
 * segment whose first_seq is not above every seq of the segments before it
 * (wal_drop_before relies on that).  A last segment whose header is
 * incomplete, or all zero bytes to the end of the file, is a torn segment
 * creation: torn_tail with tail_offset 0, and wal_open(end_offset 0)
 * replaces it.
 */
#include "wal.h"

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

#include "crc32c.h"
#include "err.h"
#include "log.h"
#include "mem.h"

#define WAL_MAGIC "SKVWAL01"
#define WAL_FORMAT_VERSION 1u
#define WAL_NAME_PREFIX "wal-"
#define WAL_NAME_SUFFIX ".log"
#define WAL_NAME_DIGITS 20
#define WAL_NAME_LEN (4 + WAL_NAME_DIGITS + 4)
#define WAL_PATH_CAP 512 /* = sizeof wal_scan_report.last_segment */
#define WAL_READ_CHUNK ((size_t)64 << 10)

/* ---- little-endian byte access -------------------------------------------------------------- */

static void put_u16(unsigned char *p, uint16_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}
static void put_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint16_t get_u16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t get_u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get_u64(const unsigned char *p) { return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32; }

static const char *errno_text(int err, char *buf, size_t cap) { return strerror_r(err, buf, cap); }

/* ---- records -------------------------------------------------------------------------------- */

/* Why a record does not decode; the scan needs to tell a bad CRC apart. */
typedef enum rec_status {
    REC_OK = 0,
    REC_NEED_MORE,
    REC_BAD_LENGTH,
    REC_BAD_CRC,
    REC_BAD_OP,
    REC_BAD_RESERVED,
    REC_BAD_KEY_LEN,
    REC_BAD_LENGTHS,
    REC_BAD_DELETE_VALUE,
} rec_status;

static const char *rec_status_text(rec_status s) {
    switch (s) {
    case REC_OK: return "ok";
    case REC_NEED_MORE: return "incomplete record";
    case REC_BAD_LENGTH: return "record length out of range";
    case REC_BAD_CRC: return "record checksum mismatch";
    case REC_BAD_OP: return "unknown record op";
    case REC_BAD_RESERVED: return "reserved record bytes not zero";
    case REC_BAD_KEY_LEN: return "empty key";
    case REC_BAD_LENGTHS: return "key and value lengths do not add up to the record length";
    case REC_BAD_DELETE_VALUE: return "delete record with a value";
    }
    return "?";
}

size_t wal_record_size(size_t key_len, size_t val_len) {
    return WAL_RECORD_HEADER + WAL_BODY_FIXED + key_len + val_len;
}

void wal_record_encode(skv_buf *out, const wal_record *r) {
    assert(r->op == WAL_OP_PUT || r->op == WAL_OP_DELETE);
    assert(r->key.len >= 1);
    assert(r->op == WAL_OP_PUT || r->value.len == 0);
    assert(r->key.len <= WAL_MAX_BODY - WAL_BODY_FIXED &&
           r->value.len <= WAL_MAX_BODY - WAL_BODY_FIXED - r->key.len);
    size_t body_len = WAL_BODY_FIXED + r->key.len + r->value.len;
    skv_buf_reserve(out, WAL_RECORD_HEADER + body_len);
    unsigned char *rec = (unsigned char *)out->data + out->len;
    unsigned char *body = rec + WAL_RECORD_HEADER;
    put_u64(body, r->seq);
    body[8] = (unsigned char)r->op;
    body[9] = (unsigned char)(r->flags & 0xffu);
    put_u16(body + 10, 0);
    put_u32(body + 12, (uint32_t)r->key.len);
    put_u32(body + 16, (uint32_t)r->value.len);
    put_u64(body + 20, r->expires_ms);
    memcpy(body + WAL_BODY_FIXED, r->key.ptr, r->key.len);
    if (r->value.len > 0) memcpy(body + WAL_BODY_FIXED + r->key.len, r->value.ptr, r->value.len);
    put_u32(rec, (uint32_t)body_len);
    put_u32(rec + 4, crc32c(0, body, body_len));
    out->len += WAL_RECORD_HEADER + body_len;
    out->data[out->len] = '\0';
}

size_t wal_count_records(const char *p, size_t len) {
    size_t n = 0, off = 0;
    while (len - off >= WAL_RECORD_HEADER) {
        off += WAL_RECORD_HEADER + (size_t)get_u32((const unsigned char *)p + off);
        if (off > len) break;
        n++;
    }
    return n;
}

static rec_status record_parse(const unsigned char *p, size_t avail, wal_record *r, size_t *consumed) {
    if (avail < WAL_RECORD_HEADER) return REC_NEED_MORE;
    uint32_t body_len = get_u32(p);
    if (body_len < WAL_BODY_FIXED || body_len > WAL_MAX_BODY) return REC_BAD_LENGTH;
    if (avail - WAL_RECORD_HEADER < body_len) return REC_NEED_MORE;
    const unsigned char *body = p + WAL_RECORD_HEADER;
    if (crc32c(0, body, body_len) != get_u32(p + 4)) return REC_BAD_CRC;
    int op = body[8];
    if (op != WAL_OP_PUT && op != WAL_OP_DELETE) return REC_BAD_OP;
    if (get_u16(body + 10) != 0) return REC_BAD_RESERVED;
    uint32_t key_len = get_u32(body + 12), val_len = get_u32(body + 16);
    if (key_len == 0) return REC_BAD_KEY_LEN;
    if ((uint64_t)key_len + val_len + WAL_BODY_FIXED != body_len) return REC_BAD_LENGTHS;
    if (op == WAL_OP_DELETE && val_len != 0) return REC_BAD_DELETE_VALUE;
    const char *key = (const char *)body + WAL_BODY_FIXED;
    r->seq = get_u64(body);
    r->op = op;
    r->flags = body[9];
    r->expires_ms = get_u64(body + 20);
    r->key = skv_slice_make(key, key_len);
    r->value = skv_slice_make(key + key_len, val_len);
    *consumed = WAL_RECORD_HEADER + (size_t)body_len;
    return REC_OK;
}

int wal_record_decode(const char *p, size_t avail, wal_record *r, size_t *consumed) {
    switch (record_parse((const unsigned char *)p, avail, r, consumed)) {
    case REC_OK: return SKV_OK;
    case REC_NEED_MORE: return WAL_NEED_MORE;
    default: return SKV_EINVAL;
    }
}

/* ---- segment headers and names -------------------------------------------------------------- */

static void seg_header_encode(unsigned char h[WAL_SEGMENT_HEADER], uint32_t shard_id, uint64_t first_seq) {
    memcpy(h, WAL_MAGIC, 8);
    put_u32(h + 8, WAL_FORMAT_VERSION);
    put_u32(h + 12, shard_id);
    put_u64(h + 16, first_seq);
    put_u32(h + 24, 0);
    put_u32(h + 28, crc32c(0, h, 28));
}

/* NULL when the header is valid (then *shard_id and *first_seq are set), else why not. */
static const char *seg_header_check(const unsigned char h[WAL_SEGMENT_HEADER], uint32_t *shard_id,
                                    uint64_t *first_seq) {
    if (memcmp(h, WAL_MAGIC, 8) != 0) return "bad segment magic";
    if (crc32c(0, h, 28) != get_u32(h + 28)) return "segment header checksum mismatch";
    if (get_u32(h + 8) != WAL_FORMAT_VERSION) return "unsupported segment format version";
    if (get_u32(h + 24) != 0) return "reserved segment header bytes not zero";
    *shard_id = get_u32(h + 12);
    *first_seq = get_u64(h + 16);
    return NULL;
}

/* 1 with *first_seq when name is exactly "wal-<20 digits>.log" (and fits a u64). */
static int segment_name_parse(const char *name, uint64_t *first_seq) {
    if (strlen(name) != WAL_NAME_LEN || memcmp(name, WAL_NAME_PREFIX, 4) != 0 ||
        memcmp(name + 4 + WAL_NAME_DIGITS, WAL_NAME_SUFFIX, 4) != 0)
        return 0;
    uint64_t v = 0;
    for (int i = 0; i < WAL_NAME_DIGITS; i++) {
        char c = name[4 + i];
        if (c < '0' || c > '9') return 0;
        uint64_t d = (uint64_t)(c - '0');
        if (v > (UINT64_MAX - d) / 10) return 0;
        v = v * 10 + d;
    }
    *first_seq = v;
    return 1;
}

static int segment_path(char *out, size_t cap, const char *dir, uint64_t first_seq) {
    char name[WAL_NAME_LEN + 1];
    snprintf(name, sizeof name, WAL_NAME_PREFIX "%020llu" WAL_NAME_SUFFIX, (unsigned long long)first_seq);
    return io_path(out, cap, dir, name);
}

typedef struct wal_seg {
    uint64_t first_seq;
    uint64_t size;
} wal_seg;

typedef struct seg_list {
    wal_seg *v;
    size_t n, cap;
} seg_list;

static void seg_list_push(seg_list *l, uint64_t first_seq, uint64_t size) {
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        l->v = skv_realloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n++] = (wal_seg){ first_seq, size };
}

static int seg_cmp(const void *a, const void *b) {
    uint64_t x = ((const wal_seg *)a)->first_seq, y = ((const wal_seg *)b)->first_seq;
    return x < y ? -1 : x > y;
}

/* Lists dir's segments sorted by first_seq, with their sizes.  Returns 0 or
 * -errno (-ENOENT when dir does not exist). */
static int list_segments(const char *dir, seg_list *out) {
    DIR *d = opendir(dir);
    if (d == NULL) return -errno;
    int rc = 0;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        uint64_t first_seq;
        if (!segment_name_parse(de->d_name, &first_seq)) continue;
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, 0) != 0) {
            rc = -errno;
            goto cleanup;
        }
        seg_list_push(out, first_seq, (uint64_t)st.st_size);
        errno = 0;
    }
    if (errno != 0) rc = -errno;
    if (out->n > 1) qsort(out->v, out->n, sizeof *out->v, seg_cmp);
cleanup:
    closedir(d);
    return rc;
}

/* ---- writing -------------------------------------------------------------------------------- */

struct wal {
    char *dir;
    uint32_t shard_id;
    const skv_io *io;
    int fd;               /* the current segment (segs.v[segs.n - 1]), O_APPEND */
    seg_list segs;        /* oldest first; the size of the current one is `size` */
    uint64_t size;        /* bytes of the current segment written successfully */
    uint64_t commit_size; /* what wal_rewind cuts back to */
    uint64_t older_bytes; /* sum of the sizes of all segments but the current one */
};

__attribute__((unused)) static int wal_invariants(const wal *w) {
    if (w->fd < 0 || w->segs.n == 0) return 0;
    if (w->commit_size < WAL_SEGMENT_HEADER || w->commit_size > w->size) return 0;
    uint64_t older = 0;
    for (size_t i = 0; i + 1 < w->segs.n; i++) {
        if (w->segs.v[i].first_seq >= w->segs.v[i + 1].first_seq) return 0;
        older += w->segs.v[i].size;
    }
    return older == w->older_bytes;
}

static int map_write_error(int neg_errno) {
    return neg_errno == -ENOSPC || neg_errno == -EFBIG || neg_errno == -EDQUOT ? SKV_ENOSPACE : SKV_EIO;
}

/* Creates segment first_seq in dir: header written, fdatasynced, directory
 * fsynced.  Returns 0 with *out_fd, or SKV_ENOSPACE / SKV_EIO after logging
 * (a half-made file is removed). */
static int create_segment(const char *dir, uint32_t shard_id, uint64_t first_seq, const skv_io *io,
                          int *out_fd) {
    char path[WAL_PATH_CAP], ebuf[96];
    unsigned char hdr[WAL_SEGMENT_HEADER];
    const char *step = "create";
    int err;
    if (segment_path(path, sizeof path, dir, first_seq) != 0) {
        log_error("wal: segment path in %s too long", dir);
        return SKV_EIO;
    }
    int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        err = -errno;
        log_error("wal: cannot create %s: %s", path, errno_text(-err, ebuf, sizeof ebuf));
        return map_write_error(err);
    }
    seg_header_encode(hdr, shard_id, first_seq);
    err = io_write_all(io, fd, hdr, sizeof hdr);
    if (err == 0) {
        step = "fdatasync";
        err = io->fdatasync(fd);
    }
    if (err == 0) {
        step = "fsync the directory of";
        err = io_fsync_dir(dir);
    }
    if (err == 0) {
        *out_fd = fd;
        return 0;
    }
    log_error("wal: cannot %s new segment %s: %s", step, path, errno_text(-err, ebuf, sizeof ebuf));
    close(fd);
    unlink(path);
    return map_write_error(err);
}


/* Creates segment first_seq after every segment in the list and makes it the
 * current one; the previous current segment, if open, is closed and from
 * then on counted in older_bytes. */
static int start_segment(wal *w, uint64_t first_seq) {
    if (w->segs.n > 0 && first_seq <= w->segs.v[w->segs.n - 1].first_seq) {
        log_error("wal: new segment %llu in %s would not sort after segment %llu", (unsigned long long)first_seq,
                  w->dir, (unsigned long long)w->segs.v[w->segs.n - 1].first_seq);
        return SKV_EINVAL;
    }
    int fd;
    int rc = create_segment(w->dir, w->shard_id, first_seq, w->io, &fd);
    if (rc != 0) return rc;
    if (w->fd >= 0) {
        close(w->fd);
        w->segs.v[w->segs.n - 1].size = w->size;
        w->older_bytes += w->size;
    }
    seg_list_push(&w->segs, first_seq, WAL_SEGMENT_HEADER);
    w->fd = fd;
    w->size = w->commit_size = WAL_SEGMENT_HEADER;
    return 0;
}

/* 1 when the file at path starts with a valid segment header. */
static int has_valid_header(const char *path) {
    unsigned char h[WAL_SEGMENT_HEADER];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = pread(fd, h, sizeof h, 0);
    close(fd);
    uint32_t shard;
    uint64_t first;
    return n == (ssize_t)sizeof h && seg_header_check(h, &shard, &first) == NULL;
}

/* wal_open with end_offset 0: a newest segment without a valid header is a
 * torn segment creation and is removed so that a new one takes its place; a
 * newest segment with a valid header is kept (the new one goes after it). */
static int remove_torn_newest(wal *w) {
    char path[WAL_PATH_CAP], ebuf[96];
    const wal_seg *last = &w->segs.v[w->segs.n - 1];
    if (segment_path(path, sizeof path, w->dir, last->first_seq) != 0) return SKV_EIO;
    if (has_valid_header(path)) return 0;
    log_warn("wal: removing %s (%llu bytes, no complete segment header)", path, (unsigned long long)last->size);
    if (unlink(path) != 0 && errno != ENOENT) {
        log_error("wal: cannot remove %s: %s", path, errno_text(errno, ebuf, sizeof ebuf));
        return SKV_EIO;
    }
    w->segs.n--;
    return 0;
}

/* Opens the newest segment for appending at end_offset, cutting off what follows. */
static int reopen_newest(wal *w, uint64_t end_offset) {
    char path[WAL_PATH_CAP], ebuf[96];
    wal_seg *last = &w->segs.v[w->segs.n - 1];
    if (segment_path(path, sizeof path, w->dir, last->first_seq) != 0) return SKV_EIO;
    if (end_offset < WAL_SEGMENT_HEADER || end_offset > last->size) {
        log_error("wal: end offset %llu does not fit %s (%llu bytes)", (unsigned long long)end_offset, path,
                  (unsigned long long)last->size);
        return SKV_EIO;
    }
    int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0) {
        log_error("wal: cannot open %s: %s", path, errno_text(errno, ebuf, sizeof ebuf));
        return SKV_EIO;
    }
    if (last->size > end_offset) {
        log_warn("wal: cutting %s from %llu to %llu bytes (torn tail)", path, (unsigned long long)last->size,
                 (unsigned long long)end_offset);
        int err = w->io->ftruncate(fd, (off_t)end_offset);
        if (err == 0) err = w->io->fdatasync(fd);
        if (err != 0) {
            log_error("wal: cannot cut %s: %s", path, errno_text(-err, ebuf, sizeof ebuf));
            close(fd);
            return SKV_EIO;
        }
    }
    for (size_t i = 0; i + 1 < w->segs.n; i++) w->older_bytes += w->segs.v[i].size;
    last->size = end_offset;
    w->fd = fd;
    w->size = w->commit_size = end_offset;
    return 0;
}

int wal_open(const char *dir, uint32_t shard_id, uint64_t next_seq, uint64_t end_offset, const skv_io *io,
             wal **out) {
    char ebuf[96];
    int rc = SKV_EIO;
    wal *w = skv_calloc(1, sizeof *w);
    w->dir = skv_strdup(dir);
    w->shard_id = shard_id;
    w->io = io;
    w->fd = -1;
    int err = io_mkdir(dir);
    if (err == 0) err = list_segments(dir, &w->segs);
    if (err != 0) {
        log_error("wal: cannot open log directory %s: %s", dir, errno_text(-err, ebuf, sizeof ebuf));
        goto cleanup;
    }
    if (w->segs.n > 0 && end_offset == 0 && (rc = remove_torn_newest(w)) != 0) goto cleanup;
    if (w->segs.n == 0 || end_offset == 0) {
        for (size_t i = 0; i < w->segs.n; i++) w->older_bytes += w->segs.v[i].size;
        rc = start_segment(w, next_seq);
    } else {
        rc = reopen_newest(w, end_offset);
    }
cleanup:
    if (rc != 0) {
        wal_close(w);
        *out = NULL;
        return SKV_EIO;
    }
    assert(wal_invariants(w));
    *out = w;
    return 0;
}

void wal_close(wal *w) {
    if (w == NULL) return;
    if (w->fd >= 0) close(w->fd);
    free(w->segs.v);
    free(w->dir);
    free(w);
}

int wal_append(wal *w, const void *data, size_t len) {
    assert(wal_invariants(w));
    int err = io_write_all(w->io, w->fd, data, len);
    if (err != 0) return map_write_error(err);
    w->size += len;
    return 0;
}

int wal_rewind(wal *w) {
    assert(wal_invariants(w));
    /* O_APPEND: the next write goes to the new end, whatever the offset is. */
    if (w->io->ftruncate(w->fd, (off_t)w->commit_size) != 0) return SKV_EIO;
    w->size = w->commit_size;
    return 0;
}

void wal_commit_point(wal *w) {
    assert(wal_invariants(w));
    w->commit_size = w->size;
}

int wal_sync(wal *w) {
    assert(wal_invariants(w));
    return w->io->fdatasync(w->fd) == 0 ? 0 : SKV_EIO;
}

int wal_roll(wal *w, uint64_t next_seq) {
    assert(wal_invariants(w));
    const wal_seg *cur = &w->segs.v[w->segs.n - 1];
    if (next_seq == cur->first_seq && w->size == WAL_SEGMENT_HEADER) return 0; /* already fresh */
    if (next_seq <= cur->first_seq) return SKV_EINVAL;
    if (wal_sync(w) != 0) {
        log_error("wal: fdatasync failed before rolling the log in %s", w->dir);
        return SKV_EIO;
    }
    int rc = start_segment(w, next_seq);
    assert(wal_invariants(w));
    return rc;
}

int wal_drop_before(wal *w, uint64_t seq_limit) {
    assert(wal_invariants(w));
    char path[WAL_PATH_CAP], ebuf[96];
    int rc = 0;
    /* Segment i holds only seqs below segment i+1's first_seq. */
    size_t droppable = 0;
    while (droppable + 1 < w->segs.n && w->segs.v[droppable + 1].first_seq <= seq_limit) droppable++;
    size_t dropped = 0;
    for (; dropped < droppable; dropped++) {
        if (segment_path(path, sizeof path, w->dir, w->segs.v[dropped].first_seq) != 0) {
            rc = SKV_EIO;
            break;
        }
        if (unlink(path) != 0 && errno != ENOENT) {
            log_error("wal: cannot delete %s: %s", path, errno_text(errno, ebuf, sizeof ebuf));
            rc = SKV_EIO;
            break;
        }
        w->older_bytes -= w->segs.v[dropped].size;
    }
    if (dropped == 0) return rc;
    memmove(w->segs.v, w->segs.v + dropped, (w->segs.n - dropped) * sizeof *w->segs.v);
    w->segs.n -= dropped;
    int err = io_fsync_dir(w->dir);
    if (err != 0) {
        log_error("wal: cannot fsync %s: %s", w->dir, errno_text(-err, ebuf, sizeof ebuf));
        rc = SKV_EIO;
    }
    assert(wal_invariants(w));
    return rc;
}

uint64_t wal_bytes(const wal *w) { return w->older_bytes + w->size; }

/* ---- reading -------------------------------------------------------------------------------- */

/* A window [buf_off, buf_off + len) of one segment file of `size` bytes. */
typedef struct seg_reader {
    int fd;
    uint64_t size;
    unsigned char *buf;
    size_t cap;
    uint64_t buf_off;
    size_t len;
} seg_reader;

/* Makes file bytes [off, off + n) available at *out (off + n <= size).
 * Returns 0 or -errno (-EIO when the file is shorter than at open). */
static int reader_get(seg_reader *rd, uint64_t off, size_t n, const unsigned char **out) {
    assert(off + n <= rd->size);
    if (off >= rd->buf_off && off + n <= rd->buf_off + rd->len) {
        *out = rd->buf + (off - rd->buf_off);
        return 0;
    }
    size_t keep = 0;
    if (off >= rd->buf_off && off < rd->buf_off + rd->len) {
        keep = (size_t)(rd->buf_off + rd->len - off);
        memmove(rd->buf, rd->buf + (off - rd->buf_off), keep);
    }
    rd->buf_off = off;
    rd->len = keep;
    if (n > rd->cap) {
        rd->cap = n > WAL_READ_CHUNK ? n : WAL_READ_CHUNK;
        rd->buf = skv_realloc(rd->buf, rd->cap);
    }
    while (rd->len < n) {
        uint64_t pos = rd->buf_off + rd->len;
        size_t want = rd->cap - rd->len;
        if (want > rd->size - pos) want = (size_t)(rd->size - pos);
        ssize_t got = pread(rd->fd, rd->buf + rd->len, want, (off_t)pos);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) return -errno;
        if (got == 0) return -EIO;
        rd->len += (size_t)got;
    }
    *out = rd->buf;
    return 0;
}

typedef struct scan_state {
    uint64_t from_seq;
    wal_record_fn fn;
    void *arg;
    wal_scan_report *rep;
    int have_prev; /* a record (or a segment header) set prev_seq / shard_id */
    uint64_t prev_seq;
    int have_shard;
    uint32_t shard_id;
    seg_reader rd;
    skv_buf group;        /* records of an unfinished atomic group, re-encoded */
    uint64_t group_off;   /* offset of its first record */
} scan_state;

/* Counts r and hands it to fn when it is past from_seq. */
static int deliver_one(scan_state *st, const wal_record *r) {
    if (r->seq <= st->from_seq) return 0;
    st->rep->records++;
    return st->fn != NULL ? st->fn(st->arg, r) : 0;
}

/* Hands r to fn, holding the records of an atomic group back until its last one. */
static int deliver(scan_state *st, const wal_record *r, uint64_t off) {
    if (r->flags & WAL_FLAG_GROUP_NEXT) {
        if (st->group.len == 0) st->group_off = off;
        wal_record_encode(&st->group, r);
        return 0;
    }
    size_t pos = 0;
    while (pos < st->group.len) {
        wal_record g;
        size_t used = 0;
        if (wal_record_decode(st->group.data + pos, st->group.len - pos, &g, &used) != SKV_OK) abort();
        pos += used;
        int rc = deliver_one(st, &g);
        if (rc != 0) return rc;
    }
    skv_buf_reset(&st->group);
    return deliver_one(st, r);
}

static int scan_fail(scan_state *st, const char *path, uint64_t offset, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int scan_fail(scan_state *st, const char *path, uint64_t offset, const char *fmt, ...) {
    va_list ap;
    snprintf(st->rep->error_file, sizeof st->rep->error_file, "%s", path);
    st->rep->error_offset = offset;
    va_start(ap, fmt);
    vsnprintf(st->rep->error, sizeof st->rep->error, fmt, ap);
    va_end(ap);
    return SKV_EIO;
}

/* *zero = 1 when every byte from off to the end of the file is zero. */
static int all_zero_from(seg_reader *rd, uint64_t off, int *zero) {
    *zero = 1;
    while (off < rd->size) {
        size_t n = rd->size - off < WAL_READ_CHUNK ? (size_t)(rd->size - off) : WAL_READ_CHUNK;
        const unsigned char *p;
        int err = reader_get(rd, off, n, &p);
        if (err != 0) return err;
        for (size_t i = 0; i < n; i++)
            if (p[i] != 0) {
                *zero = 0;
                return 0;
            }
        off += n;
    }
    return 0;
}

/* How far past a suspect record valid_record_after() looks (a torn write is
 * at most one batch; damage in the middle has valid records close behind). */
#define WAL_RESYNC_WINDOW (64u << 20)

/* *found = 1 when a valid record with a seq above the last good one starts
 * somewhere in (off, off + WAL_RESYNC_WINDOW]. */
static int valid_record_after(scan_state *st, uint64_t off, int *found) {
    seg_reader *rd = &st->rd;
    *found = 0;
    uint64_t end = rd->size - off > WAL_RESYNC_WINDOW ? off + WAL_RESYNC_WINDOW : rd->size;
    for (uint64_t q = off + 1; q + WAL_RECORD_HEADER + WAL_BODY_FIXED <= end; q++) {
        const unsigned char *p;
        int err = reader_get(rd, q, WAL_RECORD_HEADER, &p);
        if (err != 0) return err;
        uint32_t len = get_u32(p);
        if (len < WAL_BODY_FIXED || len > WAL_MAX_BODY || q + WAL_RECORD_HEADER + len > rd->size) continue;
        err = reader_get(rd, q, WAL_RECORD_HEADER + (size_t)len, &p);
        if (err != 0) return err;
        wal_record r;
        size_t consumed;
        if (record_parse(p, WAL_RECORD_HEADER + (size_t)len, &r, &consumed) == REC_OK &&
            (!st->have_prev || r.seq > st->prev_seq)) {
            *found = 1;
            return 0;
        }
    }
    return 0;
}

/* The invalid bytes at off end the last segment: a torn write.  Records it. */
static int scan_torn(scan_state *st, uint64_t off) {
    st->rep->torn_tail = 1;
    st->rep->tail_offset = off;
    return 0;
}

/* An invalid record (or header, at off 0) at off whose declared end is
 * rec_end: a torn tail when it is in the last segment and either all zero
 * to the end of the file or a bad CRC with nothing after it; otherwise
 * corruption. */
static int scan_invalid(scan_state *st, const char *path, int is_last, uint64_t off, uint64_t rec_end,
                        int bad_crc, const char *why) {
    char ebuf[96];
    if (is_last) {
        if (bad_crc && rec_end == st->rd.size) return scan_torn(st, off);
        int zero;
        int err = all_zero_from(&st->rd, off, &zero);
        if (err != 0) return scan_fail(st, path, off, "read error: %s", errno_text(-err, ebuf, sizeof ebuf));
        if (zero) return scan_torn(st, off);
    }
    return scan_fail(st, path, off, "%s", why);
}

/* Checks the header of the open segment (size >= WAL_SEGMENT_HEADER). 1 =
 * valid, 0 = the scan ended (torn, *rc = 0) or failed (*rc). */
static int scan_header(scan_state *st, const char *path, uint64_t name_seq, int is_last, int *rc) {
    char ebuf[96];
    const unsigned char *h;
    int err = reader_get(&st->rd, 0, WAL_SEGMENT_HEADER, &h);
    if (err != 0) {
        *rc = scan_fail(st, path, 0, "read error: %s", errno_text(-err, ebuf, sizeof ebuf));
        return 0;
    }
    uint32_t shard;
    uint64_t first_seq;
    const char *why = seg_header_check(h, &shard, &first_seq);
    if (why != NULL) {
        *rc = scan_invalid(st, path, is_last, 0, WAL_SEGMENT_HEADER, 0, why);
        return 0;
    }
    if (first_seq != name_seq) {
        *rc = scan_fail(st, path, 0, "header first_seq %llu does not match the file name",
                        (unsigned long long)first_seq);
        return 0;
    }
    if (st->have_shard && shard != st->shard_id) {
        *rc = scan_fail(st, path, 0, "shard id %u differs from %u in the earlier segments", shard, st->shard_id);
        return 0;
    }
    if (st->have_prev && first_seq <= st->prev_seq) {
        *rc = scan_fail(st, path, 0, "first_seq %llu is not above seq %llu of the earlier segments",
                        (unsigned long long)first_seq, (unsigned long long)st->prev_seq);
        return 0;
    }
    st->have_shard = 1;
    st->shard_id = shard;
    return 1;
}

/* Validates the records of the open segment from its header on and hands
 * them to fn.  Returns 0 (clean or torn end), SKV_EIO, or fn's value. */
static int scan_records(scan_state *st, const char *path, uint64_t first_seq, int is_last) {
    char ebuf[96];
    seg_reader *rd = &st->rd;
    uint64_t off = WAL_SEGMENT_HEADER;
    while (off < rd->size) {
        const unsigned char *p;
        if (rd->size - off < WAL_RECORD_HEADER) {
            if (is_last) return scan_torn(st, off);
            return scan_fail(st, path, off, "incomplete record header at the end of a segment");
        }
        int err = reader_get(rd, off, WAL_RECORD_HEADER, &p);
        if (err != 0) return scan_fail(st, path, off, "read error: %s", errno_text(-err, ebuf, sizeof ebuf));
        uint32_t body_len = get_u32(p);
        uint64_t rec_end = off + WAL_RECORD_HEADER + body_len;
        if (rec_end > rd->size) {
            /* A damaged length field in a middle record also "runs past the
             * end": it is a torn write only if no valid record follows. */
            int found = 0;
            err = valid_record_after(st, off, &found);
            if (err != 0) return scan_fail(st, path, off, "read error: %s", errno_text(-err, ebuf, sizeof ebuf));
            if (is_last && !found) return scan_torn(st, off);
            return scan_fail(st, path, off, "record length %u runs past the end of the segment%s", body_len,
                             found ? " (valid records follow: a damaged length, not a torn write)" : "");
        }
        if (body_len < WAL_BODY_FIXED || body_len > WAL_MAX_BODY)
            return scan_invalid(st, path, is_last, off, rec_end, 0, rec_status_text(REC_BAD_LENGTH));
        err = reader_get(rd, off, WAL_RECORD_HEADER + (size_t)body_len, &p);
        if (err != 0) return scan_fail(st, path, off, "read error: %s", errno_text(-err, ebuf, sizeof ebuf));
        wal_record r;
        size_t consumed;
        rec_status s = record_parse(p, WAL_RECORD_HEADER + (size_t)body_len, &r, &consumed);
        if (s != REC_OK) return scan_invalid(st, path, is_last, off, rec_end, s == REC_BAD_CRC, rec_status_text(s));
        if (r.seq < first_seq)
            return scan_fail(st, path, off, "seq %llu below the segment's first_seq %llu", (unsigned long long)r.seq,
                             (unsigned long long)first_seq);
        if (st->have_prev && r.seq <= st->prev_seq)
            return scan_fail(st, path, off, "seq %llu is not above the previous seq %llu", (unsigned long long)r.seq,
                             (unsigned long long)st->prev_seq);
        st->have_prev = 1;
        st->prev_seq = r.seq;
        st->rep->last_seq = r.seq;
        int rc = deliver(st, &r, off);
        if (rc != 0) return rc;
        off = rec_end;
    }
    return 0;
}

static int scan_segment(scan_state *st, const char *path, uint64_t name_seq, int is_last) {
    char ebuf[96];
    int rc = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return scan_fail(st, path, 0, "cannot open: %s", errno_text(errno, ebuf, sizeof ebuf));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        rc = scan_fail(st, path, 0, "cannot stat: %s", errno_text(errno, ebuf, sizeof ebuf));
        goto cleanup;
    }
    st->rd.fd = fd;
    st->rd.size = (uint64_t)sb.st_size;
    st->rd.buf_off = 0;
    st->rd.len = 0;
    if (is_last) st->rep->tail_offset = st->rd.size;
    if (st->rd.size < WAL_SEGMENT_HEADER) {
        rc = is_last ? scan_torn(st, 0)
                     : scan_fail(st, path, 0, "segment shorter than its header (%llu bytes)",
                                 (unsigned long long)st->rd.size);
        goto cleanup;
    }
    if (scan_header(st, path, name_seq, is_last, &rc)) rc = scan_records(st, path, name_seq, is_last);
    if (rc == 0 && st->group.len > 0) {
        /* A group is written in one batch and never spans segments: cut by
         * the end of the log it is a torn write, anywhere else corruption. */
        if (!is_last) {
            rc = scan_fail(st, path, st->group_off, "atomic record group cut by the end of the segment");
        } else if (!st->rep->torn_tail || st->group_off < st->rep->tail_offset) {
            st->rep->torn_tail = 1;
            st->rep->tail_offset = st->group_off;
        }
        skv_buf_reset(&st->group);
    }
cleanup:
    st->rd.fd = -1;
    close(fd);
    return rc;
}

int wal_scan(const char *dir, uint64_t from_seq, wal_record_fn fn, void *arg, wal_scan_report *report) {
    char path[WAL_PATH_CAP], ebuf[96];
    memset(report, 0, sizeof *report);
    scan_state st = { .from_seq = from_seq, .fn = fn, .arg = arg, .rep = report, .rd = { .fd = -1 } };
    seg_list segs = { NULL, 0, 0 };
    int rc = 0;
    int err = list_segments(dir, &segs);
    if (err == -ENOENT) goto cleanup; /* no directory: an empty log */
    if (err != 0) {
        rc = scan_fail(&st, dir, 0, "cannot list the log directory: %s", errno_text(-err, ebuf, sizeof ebuf));
        goto cleanup;
    }
    if (segs.n > 0 && segment_path(report->last_segment, sizeof report->last_segment, dir,
                                   segs.v[segs.n - 1].first_seq) != 0) {
        report->last_segment[0] = '\0';
        rc = scan_fail(&st, dir, 0, "log directory path too long");
        goto cleanup;
    }
    for (size_t i = 0; i < segs.n && rc == 0; i++) {
        segment_path(path, sizeof path, dir, segs.v[i].first_seq); /* fits: last_segment's did */
        rc = scan_segment(&st, path, segs.v[i].first_seq, i + 1 == segs.n);
    }
cleanup:
    free(st.rd.buf);
    skv_buf_free(&st.group);
    free(segs.v);
    return rc;
}
