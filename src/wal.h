/*
 * wal — a shard's write-ahead log: segment files of framed, checksummed
 * records with per-shard sequence numbers.  This log is also the future
 * replication stream: it can be read from any sequence number it still
 * holds (wal_scan with from_seq).
 *
 * Files, in a shard's directory (<data-dir>/shard-<id>/):
 *   wal-<first_seq, 20 digits>.log     segments, in first_seq order
 *
 * Segment layout (all integers little-endian):
 *   header, 32 bytes:
 *     0  magic "SKVWAL01" (8)
 *     8  u32 format version (1)
 *    12  u32 shard id
 *    16  u64 first_seq: every record in the segment has seq >= first_seq
 *    24  u32 reserved (0)
 *    28  u32 crc32c of bytes 0..27
 *   then records, back to back:
 *     0  u32 body_len   (= WAL_BODY_FIXED + key_len + val_len)
 *     4  u32 crc32c of the body
 *     8  body:
 *        0  u64 seq
 *        8  u8  op (WAL_OP_PUT = 1, WAL_OP_DELETE = 2)
 *        9  u8  flags (entry flags, e.g. SHARD_VAL_JSON)
 *       10  u16 reserved (0)
 *       12  u32 key_len
 *       16  u32 val_len (0 for DELETE)
 *       20  u64 expires_ms (absolute Unix ms; 0 = never)
 *       28  key bytes, then value bytes
 *
 * A record is valid when body_len is in [WAL_BODY_FIXED, WAL_MAX_BODY],
 * the CRC matches, op is known, reserved is 0, key_len >= 1 and
 * key_len + val_len + WAL_BODY_FIXED == body_len.  Within a shard, seqs
 * strictly increase across records and segments (gaps are allowed: a seq
 * whose write failed is never logged).
 *
 * Recovery (wal_scan): segments are read in order.  An invalid or
 * incomplete record at the tail of the LAST segment is a torn write from a
 * crash: it is reported (tail_offset) so the caller can cut it off with a
 * warning.  "At the tail" means the record's declared end reaches past the
 * end of the file and no valid record starts in the bytes after it (a
 * damaged length field in a middle record is corruption), or everything
 * from its start to the end of the file is zero bytes, or its CRC is bad
 * and no byte follows its declared end.  Any
 * other invalid record, a bad segment header, or a seq going backwards is
 * corruption: the scan stops with SKV_EIO and names the file and offset,
 * and the node refuses to start (`shardkv check --repair` cuts the log there
 * after saying what would be lost).
 *
 * Fsync policies are the caller's (commit.c); this module writes and syncs
 * when told.  Not thread-safe: one writer per shard, serialised by the caller.
 */
#ifndef SKV_WAL_H
#define SKV_WAL_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "io.h"

#define WAL_SEGMENT_HEADER 32
#define WAL_RECORD_HEADER 8
#define WAL_BODY_FIXED 28
#define WAL_MAX_BODY (WAL_BODY_FIXED + (64u << 20) + (1u << 30)) /* key <= 64 MiB, value <= 1 GiB */

enum wal_op { WAL_OP_PUT = 1, WAL_OP_DELETE = 2 };

/* Record flag owned by the log: the next record belongs to the same atomic
 * group (e.g. a write and its idempotency record).  wal_scan delivers a
 * group only once its last record (without the flag) is read; a group cut
 * by the end of the log is a torn tail, dropped whole.  The other flag bits
 * are the writer's (entry flags). */
#define WAL_FLAG_GROUP_NEXT 0x80u

typedef struct wal_record {
    uint64_t seq;
    int op;                 /* enum wal_op */
    uint32_t flags;         /* low 8 bits stored */
    uint64_t expires_ms;
    skv_slice key;
    skv_slice value;        /* empty for DELETE */
} wal_record;

/* Bytes the encoded record takes (header + body). */
size_t wal_record_size(size_t key_len, size_t val_len);

/* Appends the encoded record to out. */
void wal_record_encode(skv_buf *out, const wal_record *r);

/* Return values of wal_record_decode besides SKV_OK. */
#define WAL_NEED_MORE 1

/*
 * Decodes the record at p[0..avail).  Returns SKV_OK with *r (slices into p)
 * and *consumed set; WAL_NEED_MORE when avail is shorter than the record's
 * header or declared length; SKV_EINVAL when the record is invalid (bad
 * length, CRC, op, reserved bytes or lengths).
 */
int wal_record_decode(const char *p, size_t avail, wal_record *r, size_t *consumed);

/* Number of records in an encoded batch p[0..len) (walks the length fields
 * only; the batch must be whole records, as wal_record_encode made them). */
size_t wal_count_records(const char *p, size_t len);

/* ---- writing -------------------------------------------------------------------------------- */

typedef struct wal wal; /* opaque: a shard's open log */

/*
 * Opens the log of shard_id in dir for appending, after recovery: the
 * newest segment is opened at end_offset (bytes past it are cut off, which
 * is how a torn tail is removed), or a new segment starting at next_seq is
 * created when the directory has none (or when end_offset is 0).  Creates
 * dir if needed.  Returns 0 and *out, or SKV_EIO after logging why.
 */
int wal_open(const char *dir, uint32_t shard_id, uint64_t next_seq, uint64_t end_offset,
             const skv_io *io, wal **out);
void wal_close(wal *w);

/* Appends already-encoded records (full writes).  Returns 0, SKV_ENOSPACE
 * (ENOSPC/EFBIG/EDQUOT) or SKV_EIO; after an error the caller calls
 * wal_rewind() to cut off what may have been half written. */
int wal_append(wal *w, const void *data, size_t len);
/* Cuts the current segment back to its size at the last wal_commit_point(). */
int wal_rewind(wal *w);
/* Marks everything appended so far as the rewind point (after a good sync). */
void wal_commit_point(wal *w);
/* fdatasync of the current segment: 0 or SKV_EIO (outcome unknown). */
int wal_sync(wal *w);
/* Starts a new segment whose first record will have seq >= next_seq
 * (syncs and closes the current one, fsyncs the directory). */
int wal_roll(wal *w, uint64_t next_seq);
/* Deletes every segment whose records all have seq < seq_limit (they are
 * covered by a snapshot), never the current one; fsyncs the directory. */
int wal_drop_before(wal *w, uint64_t seq_limit);
/* Bytes in all segments of this log (for the snapshot trigger). */
uint64_t wal_bytes(const wal *w);

/* ---- reading -------------------------------------------------------------------------------- */

typedef int (*wal_record_fn)(void *arg, const wal_record *r);

typedef struct wal_scan_report {
    uint64_t records;       /* records passed to fn */
    uint64_t last_seq;      /* highest seq seen (0 when none) */
    int torn_tail;          /* the last segment ended in a torn record */
    uint64_t tail_offset;   /* valid length of the last segment (where to cut) */
    char last_segment[512]; /* path of the last segment ("" when none) */
    char error_file[512];   /* on SKV_EIO: the file and ... */
    uint64_t error_offset;  /* ... the offset of the bad record or header */
    char error[160];        /* ... and what is wrong */
} wal_scan_report;

/*
 * Reads every segment of the log in dir in order and calls fn for each valid
 * record with seq > from_seq (fn returning non-zero stops the scan and is
 * returned).  Returns 0 (a torn tail is not an error: see report), SKV_EIO
 * on corruption (report says where), or fn's value.  A missing or empty
 * directory is an empty log.
 */
int wal_scan(const char *dir, uint64_t from_seq, wal_record_fn fn, void *arg, wal_scan_report *report);

#endif
