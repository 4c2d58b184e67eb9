/*
 * Unit tests for wal: the record codec (a known-answer byte layout, round
 * trips with binary and large values, every truncation, every flipped bit,
 * each field rule), and the log on disk in a fresh mkdtemp directory per
 * test: append/sync/scan round trips, rolling and reading from a seq,
 * torn tails cut at every offset of the last record (and the log reopened
 * and extended from the reported offset), zero-filled tails, corruption in
 * the middle and in earlier segments, seqs going backwards, bad headers,
 * dropping covered segments, and fault injection through a custom skv_io
 * (ENOSPC/EFBIG/EDQUOT/EIO on the N-th write, half writes, one-byte short
 * writes, failing fdatasync), and atomic record groups (WAL_FLAG_GROUP_NEXT:
 * delivered whole; a group left open by the end of the log is a torn tail
 * at its first record, cut at every offset of its closing record, with a
 * bad CRC or zero-filled; a group cut by the end of an earlier segment is
 * corruption).
 *
 * The known-answer record and segment header bytes were produced by a
 * separate Python encoder (struct.pack("<...") plus a bitwise CRC-32C).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "crc32c.h"
#include "err.h"
#include "io.h"
#include "log.h"
#include "wal.h"

/* ---- helpers: records ---------------------------------------------------------------------- */

static wal_record make_rec(uint64_t seq, int op, const char *key, size_t key_len, const char *val, size_t val_len) {
    wal_record r;
    memset(&r, 0, sizeof r);
    r.seq = seq;
    r.op = op;
    r.flags = (uint32_t)(seq & 3);
    r.expires_ms = seq * 1000;
    r.key = skv_slice_make(key, key_len);
    r.value = skv_slice_make(val, val_len);
    return r;
}

static void assert_rec_equal(const wal_record *a, const wal_record *b) {
    assert_int_equal(a->seq, b->seq);
    assert_int_equal(a->op, b->op);
    assert_int_equal(a->flags & 0xffu, b->flags & 0xffu);
    assert_int_equal(a->expires_ms, b->expires_ms);
    assert_true(skv_slice_eq(a->key, b->key));
    assert_true(skv_slice_eq(a->value, b->value));
}

/* The record that append_seq writes for seq: key "k<seq>", value of seq % 97
 * bytes derived from seq (every 5th seq a DELETE). */
typedef struct gen_rec {
    char key[32];
    char val[128];
    wal_record r;
} gen_rec;

static void gen(gen_rec *g, uint64_t seq) {
    int klen = snprintf(g->key, sizeof g->key, "k%llu", (unsigned long long)seq);
    size_t vlen = seq % 5 == 0 ? 0 : (size_t)(seq % 97);
    for (size_t i = 0; i < vlen; i++) g->val[i] = (char)((seq * 31 + i) & 0xff);
    g->r = make_rec(seq, seq % 5 == 0 ? WAL_OP_DELETE : WAL_OP_PUT, g->key, (size_t)klen, g->val, vlen);
}

static size_t gen_size(uint64_t seq) {
    gen_rec g;
    gen(&g, seq);
    return wal_record_size(g.r.key.len, g.r.value.len);
}

static void append_seq(wal *w, uint64_t seq) {
    gen_rec g;
    skv_buf b;
    skv_buf_init(&b);
    gen(&g, seq);
    wal_record_encode(&b, &g.r);
    assert_int_equal(wal_append(w, b.data, b.len), 0);
    skv_buf_free(&b);
}

/* Collects the seqs handed to the scan callback and checks each record
 * against gen(); stop_at makes the callback return 42 at that seq. */
typedef struct collector {
    uint64_t seqs[4096];
    size_t n;
    uint64_t stop_at;
    int check_content;
} collector;

static int collect(void *arg, const wal_record *r) {
    collector *c = arg;
    if (c->check_content) {
        gen_rec g;
        gen(&g, r->seq);
        assert_rec_equal(r, &g.r);
    }
    if (c->n < 4096) c->seqs[c->n] = r->seq;
    c->n++;
    return r->seq == c->stop_at ? 42 : 0;
}

/* ---- helpers: files ------------------------------------------------------------------------- */

typedef struct fx {
    char root[64];
    char dir[128];
} fx;

static int fx_setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    if (f == NULL) return -1;
    snprintf(f->root, sizeof f->root, "/tmp/skv_wal_test_XXXXXX");
    if (mkdtemp(f->root) == NULL) return -1;
    snprintf(f->dir, sizeof f->dir, "%s/shard-3", f->root);
    *state = f;
    return 0;
}

static void rm_tree(const char *path) {
    DIR *d = opendir(path);
    if (d != NULL) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
            char sub[512];
            snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
            struct stat st;
            if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
                rm_tree(sub);
            else
                unlink(sub);
        }
        closedir(d);
    }
    rmdir(path);
}

static int fx_teardown(void **state) {
    fx *f = *state;
    rm_tree(f->root);
    free(f);
    return 0;
}

static void seg_path(char *out, size_t cap, const char *dir, uint64_t first_seq) {
    snprintf(out, cap, "%s/wal-%020llu.log", dir, (unsigned long long)first_seq);
}

static uint64_t file_size(const char *path) {
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (uint64_t)st.st_size;
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static char *read_all(const char *path, size_t *len) {
    size_t n = (size_t)file_size(path);
    char *p = malloc(n + 1);
    assert_non_null(p);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(read(fd, p, n), (ssize_t)n);
    close(fd);
    *len = n;
    return p;
}

static void write_all(const char *path, const void *data, size_t len) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
}

static void append_bytes(const char *path, const void *data, size_t len) {
    int fd = open(path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
}

static void flip_byte(const char *path, uint64_t off, unsigned char mask) {
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    unsigned char c;
    assert_int_equal(pread(fd, &c, 1, (off_t)off), 1);
    c ^= mask;
    assert_int_equal(pwrite(fd, &c, 1, (off_t)off), 1);
    close(fd);
}

static int count_segments(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    if (d == NULL) return 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strncmp(de->d_name, "wal-", 4) == 0) n++;
    closedir(d);
    return n;
}

/* Writes seqs [from, to] into the wal, syncs and marks the commit point. */
static void append_range(wal *w, uint64_t from, uint64_t to) {
    for (uint64_t s = from; s <= to; s++) append_seq(w, s);
    assert_int_equal(wal_sync(w), 0);
    wal_commit_point(w);
}

static int scan(const char *dir, uint64_t from_seq, collector *c, wal_scan_report *rep) {
    memset(c, 0, sizeof *c);
    c->check_content = 1;
    return wal_scan(dir, from_seq, collect, c, rep);
}

/* Offset of seq's record in a segment that holds seqs first..: header + sizes. */
static uint64_t offset_of(uint64_t first, uint64_t seq) {
    uint64_t off = WAL_SEGMENT_HEADER;
    for (uint64_t s = first; s < seq; s++) off += gen_size(s);
    return off;
}

/* ---- fault-injecting skv_io ----------------------------------------------------------------- */

static struct {
    long writes;        /* write calls so far */
    long fail_write_at; /* this call returns write_err (0 = never) */
    int write_err;
    long half_write_at; /* this call writes only half of its buffer */
    int one_byte;       /* every write writes at most one byte */
    long syncs;
    long fail_sync_at;  /* this fdatasync returns -EIO */
    long truncates;
} fault;

static ssize_t fault_write(int fd, const void *buf, size_t len) {
    fault.writes++;
    if (fault.writes == fault.fail_write_at) return fault.write_err;
    if (fault.writes == fault.half_write_at && len > 1) len /= 2;
    if (fault.one_byte && len > 1) len = 1;
    return skv_io_posix.write(fd, buf, len);
}
static int fault_fdatasync(int fd) {
    fault.syncs++;
    if (fault.syncs == fault.fail_sync_at) return -EIO;
    return skv_io_posix.fdatasync(fd);
}
static int fault_fsync(int fd) { return skv_io_posix.fsync(fd); }
static int fault_ftruncate(int fd, off_t len) {
    fault.truncates++;
    return skv_io_posix.ftruncate(fd, len);
}
static const skv_io fault_io = { fault_write, fault_fdatasync, fault_fsync, fault_ftruncate };

static void fault_reset(void) { memset(&fault, 0, sizeof fault); }

/* ==== records ================================================================================ */

static void test_record_known_bytes(void **state) {
    (void)state;
    static const unsigned char expect[41] = {
        0x21, 0x00, 0x00, 0x00, 0x3f, 0xc8, 0x0b, 0x4e, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03,
        0x02, 0x01, 0x01, 0xab, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00,
        0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0x61, 0x62, 0x78, 0x79, 0x7a,
    };
    wal_record r = make_rec(0x0102030405060708ull, WAL_OP_PUT, "ab", 2, "xyz", 3);
    r.flags = 0x1AB; /* only the low 8 bits are stored */
    r.expires_ms = 0x1122334455667788ull;
    skv_buf b;
    skv_buf_init(&b);
    skv_buf_append(&b, "pre", 3); /* encode appends */
    wal_record_encode(&b, &r);
    assert_int_equal(wal_record_size(2, 3), sizeof expect);
    assert_int_equal(b.len, 3 + sizeof expect);
    assert_memory_equal(b.data + 3, expect, sizeof expect);
    assert_int_equal(b.data[b.len], '\0');

    wal_record d;
    size_t consumed = 0;
    assert_int_equal(wal_record_decode((const char *)expect, sizeof expect, &d, &consumed), SKV_OK);
    assert_int_equal(consumed, sizeof expect);
    assert_int_equal(d.seq, 0x0102030405060708ull);
    assert_int_equal(d.op, WAL_OP_PUT);
    assert_int_equal(d.flags, 0xAB);
    assert_int_equal(d.expires_ms, 0x1122334455667788ull);
    assert_true(skv_slice_eq(d.key, SKV_SLICE_LIT("ab")));
    assert_true(skv_slice_eq(d.value, SKV_SLICE_LIT("xyz")));
    assert_ptr_equal(d.key.ptr, (const char *)expect + 36); /* slices point into the input */
    skv_buf_free(&b);
}

static void test_record_round_trip(void **state) {
    (void)state;
    static const char bin_key[] = { 'a', 0, (char)0xff, '\n', 0, 'z' };
    static const char bin_val[] = { 0, 0, (char)0x80, (char)0xfe, 0 };
    size_t big_len = (size_t)5 << 20;
    char *big = malloc(big_len);
    assert_non_null(big);
    for (size_t i = 0; i < big_len; i++) big[i] = (char)(i * 7 + (i >> 13));

    wal_record recs[] = {
        make_rec(1, WAL_OP_PUT, "k", 1, "v", 1),
        make_rec(2, WAL_OP_PUT, "key", 3, NULL, 0), /* empty value */
        make_rec(3, WAL_OP_DELETE, "gone", 4, NULL, 0),
        make_rec(4, WAL_OP_PUT, bin_key, sizeof bin_key, bin_val, sizeof bin_val),
        make_rec(0, WAL_OP_PUT, "zero-seq", 8, "x", 1),
        make_rec(UINT64_MAX, WAL_OP_DELETE, bin_key, sizeof bin_key, NULL, 0),
        make_rec(7, WAL_OP_PUT, "big", 3, big, big_len),
    };
    size_t n = sizeof recs / sizeof recs[0];
    recs[4].flags = 0xff;
    recs[4].expires_ms = UINT64_MAX;

    skv_buf b;
    skv_buf_init(&b);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        wal_record_encode(&b, &recs[i]);
        total += wal_record_size(recs[i].key.len, recs[i].value.len);
        assert_int_equal(b.len, total);
    }
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        wal_record d;
        size_t consumed = 0;
        assert_int_equal(wal_record_decode(b.data + off, b.len - off, &d, &consumed), SKV_OK);
        assert_int_equal(consumed, wal_record_size(recs[i].key.len, recs[i].value.len));
        assert_rec_equal(&d, &recs[i]);
        off += consumed;
    }
    assert_int_equal(off, b.len);
    skv_buf_free(&b);
    free(big);
}

static void test_record_need_more_every_truncation(void **state) {
    (void)state;
    gen_rec g;
    gen(&g, 96); /* 96-byte value */
    skv_buf b;
    skv_buf_init(&b);
    wal_record_encode(&b, &g.r);
    for (size_t avail = 0; avail < b.len; avail++) {
        wal_record d;
        size_t consumed = 12345;
        assert_int_equal(wal_record_decode(b.data, avail, &d, &consumed), WAL_NEED_MORE);
        assert_int_equal(consumed, 12345); /* untouched */
    }
    skv_buf_free(&b);
}

/* Every single-bit flip and every whole-byte inversion of a small record
 * is refused, with the exact length available and with slack after it. */
static void test_record_every_flip_detected(void **state) {
    (void)state;
    wal_record r = make_rec(77, WAL_OP_PUT, "key", 3, "value!", 6);
    skv_buf b;
    skv_buf_init(&b);
    wal_record_encode(&b, &r);
    size_t n = b.len;
    char padded[256];
    assert_true(n + 64 <= sizeof padded);
    for (size_t i = 0; i < n; i++)
        for (int m = 0; m <= 8; m++) {
            unsigned char mask = m == 8 ? 0xff : (unsigned char)(1u << m);
            memset(padded, 0, sizeof padded);
            memcpy(padded, b.data, n);
            padded[i] = (char)(padded[i] ^ mask);
            wal_record d;
            size_t consumed;
            assert_int_not_equal(wal_record_decode(padded, n, &d, &consumed), SKV_OK);
            assert_int_not_equal(wal_record_decode(padded, n + 64, &d, &consumed), SKV_OK);
        }
    skv_buf_free(&b);
}

/* Builds a record from raw body fields with a correct CRC. */
static size_t raw_record(unsigned char *out, uint32_t body_len, int op, uint16_t reserved, uint32_t key_len,
                         uint32_t val_len, size_t payload) {
    unsigned char *body = out + 8;
    memset(out, 0, 8 + WAL_BODY_FIXED + payload);
    body[0] = 9; /* seq 9 */
    body[8] = (unsigned char)op;
    body[10] = (unsigned char)reserved;
    body[11] = (unsigned char)(reserved >> 8);
    for (int i = 0; i < 4; i++) {
        body[12 + i] = (unsigned char)(key_len >> (8 * i));
        body[16 + i] = (unsigned char)(val_len >> (8 * i));
    }
    memset(body + WAL_BODY_FIXED, 'x', payload);
    size_t crc_len = body_len < WAL_BODY_FIXED + payload ? body_len : WAL_BODY_FIXED + payload;
    uint32_t crc = crc32c(0, body, crc_len);
    for (int i = 0; i < 4; i++) {
        out[i] = (unsigned char)(body_len >> (8 * i));
        out[4 + i] = (unsigned char)(crc >> (8 * i));
    }
    return 8 + WAL_BODY_FIXED + payload;
}

static int decode_raw(const unsigned char *p, size_t n) {
    wal_record d;
    size_t consumed;
    return wal_record_decode((const char *)p, n, &d, &consumed);
}

static void test_record_invalid_fields(void **state) {
    (void)state;
    unsigned char rec[128];
    size_t n;
    /* The builder itself makes a valid record. */
    n = raw_record(rec, WAL_BODY_FIXED + 5, WAL_OP_PUT, 0, 2, 3, 5);
    assert_int_equal(decode_raw(rec, n), SKV_OK);
    n = raw_record(rec, WAL_BODY_FIXED + 5, WAL_OP_DELETE, 0, 5, 0, 5);
    assert_int_equal(decode_raw(rec, n), SKV_OK);

    /* body_len below the fixed part (even 0) and above the maximum: refused
     * as soon as the length is readable, not "need more". */
    for (uint32_t bl = 0; bl < WAL_BODY_FIXED; bl++) {
        n = raw_record(rec, bl, WAL_OP_PUT, 0, 1, 0, 1);
        assert_int_equal(decode_raw(rec, n), SKV_EINVAL);
        assert_int_equal(decode_raw(rec, 8), SKV_EINVAL);
    }
    n = raw_record(rec, WAL_MAX_BODY + 1, WAL_OP_PUT, 0, 1, 0, 1);
    assert_int_equal(decode_raw(rec, n), SKV_EINVAL);
    n = raw_record(rec, UINT32_MAX, WAL_OP_PUT, 0, 1, 0, 1);
    assert_int_equal(decode_raw(rec, n), SKV_EINVAL);
    /* ... while the maximum itself only needs more bytes. */
    n = raw_record(rec, WAL_MAX_BODY, WAL_OP_PUT, 0, 1, WAL_MAX_BODY - WAL_BODY_FIXED - 1, 1);
    assert_int_equal(decode_raw(rec, n), WAL_NEED_MORE);

    /* Unknown ops. */
    static const int bad_ops[] = { 0, 3, 4, 0x81, 0xff };
    for (size_t i = 0; i < sizeof bad_ops / sizeof bad_ops[0]; i++) {
        n = raw_record(rec, WAL_BODY_FIXED + 2, bad_ops[i], 0, 1, 1, 2);
        assert_int_equal(decode_raw(rec, n), SKV_EINVAL);
    }
    /* Reserved bytes. */
    n = raw_record(rec, WAL_BODY_FIXED + 2, WAL_OP_PUT, 0x0001, 1, 1, 2);
    assert_int_equal(decode_raw(rec, n), SKV_EINVAL);
    n = raw_record(rec, WAL_BODY_FIXED + 2, WAL_OP_PUT, 0x8000, 1, 1, 2);
    assert_int_equal(decode_raw(rec, n), SKV_EINVAL);
    /* Empty key. */
    n = raw_record(rec, WAL_BODY_FIXED + 2, WAL_OP_PUT, 0, 0, 2, 2);
    assert_int_equal(decode_raw(rec, n), SKV_EINVAL);
    /* Lengths that do not add up: one short, one over, and a pair whose
     * 32-bit sum wraps around to the right value. */
    n = raw_record(rec, WAL_BODY_FIXED + 4, WAL_OP_PUT, 0, 1, 2, 4);
    assert_int_equal(decode_raw(rec, n), SKV_EINVAL);
    n = raw_record(rec, WAL_BODY_FIXED + 4, WAL_OP_PUT, 0, 2, 3, 4);
    assert_int_equal(decode_raw(rec, n), SKV_EINVAL);
    n = raw_record(rec, WAL_BODY_FIXED + 4, WAL_OP_PUT, 0, 0xFFFFFFFFu, 5, 4);
    assert_int_equal(decode_raw(rec, n), SKV_EINVAL);
    n = raw_record(rec, WAL_BODY_FIXED + 4, WAL_OP_PUT, 0, 5, 0xFFFFFFFFu, 4);
    assert_int_equal(decode_raw(rec, n), SKV_EINVAL);
    /* A DELETE carrying a value. */
    n = raw_record(rec, WAL_BODY_FIXED + 4, WAL_OP_DELETE, 0, 2, 2, 4);
    assert_int_equal(decode_raw(rec, n), SKV_EINVAL);
    /* A correct record with a wrong CRC. */
    n = raw_record(rec, WAL_BODY_FIXED + 5, WAL_OP_PUT, 0, 2, 3, 5);
    rec[4] ^= 1;
    assert_int_equal(decode_raw(rec, n), SKV_EINVAL);
}

/* ==== the log on disk ======================================================================== */

static void test_open_append_scan_round_trip(void **state) {
    fx *f = *state;
    wal *w = NULL;
    assert_int_equal(wal_open(f->dir, 3, 1, 0, &skv_io_posix, &w), 0); /* creates the directory */
    assert_non_null(w);
    char path[256];
    seg_path(path, sizeof path, f->dir, 1);
    assert_int_equal(file_size(path), WAL_SEGMENT_HEADER);
    assert_int_equal(wal_bytes(w), WAL_SEGMENT_HEADER);

    /* The header: Python-made known answer for shard 7 / first_seq 42 has the
     * same layout; here check shard 3 / first_seq 1 field by field. */
    size_t len;
    char *hdr = read_all(path, &len);
    assert_int_equal(len, 32);
    assert_memory_equal(hdr, "SKVWAL01\x01\0\0\0\x03\0\0\0\x01\0\0\0\0\0\0\0\0\0\0\0", 28);
    uint32_t crc = (uint32_t)(unsigned char)hdr[28] | (uint32_t)(unsigned char)hdr[29] << 8 |
                   (uint32_t)(unsigned char)hdr[30] << 16 | (uint32_t)(unsigned char)hdr[31] << 24;
    assert_int_equal(crc, crc32c(0, hdr, 28));
    free(hdr);

    /* Seqs 1..300 with every 7th missing (gaps are allowed). */
    uint64_t expect_bytes = WAL_SEGMENT_HEADER, count = 0;
    for (uint64_t s = 1; s <= 300; s++) {
        if (s % 7 == 0) continue;
        append_seq(w, s);
        expect_bytes += gen_size(s);
        count++;
    }
    assert_int_equal(wal_sync(w), 0);
    wal_commit_point(w);
    assert_int_equal(wal_bytes(w), expect_bytes);
    assert_int_equal(file_size(path), expect_bytes);
    wal_close(w);

    collector c;
    wal_scan_report rep;
    assert_int_equal(scan(f->dir, 0, &c, &rep), 0);
    assert_int_equal(rep.records, count);
    assert_int_equal(c.n, count);
    assert_int_equal(rep.last_seq, 300); /* 300 is not a multiple of 7 */
    assert_int_equal(rep.torn_tail, 0);
    assert_int_equal(rep.tail_offset, expect_bytes);
    assert_string_equal(rep.last_segment, path);
    assert_string_equal(rep.error, "");
    for (size_t i = 1; i < c.n; i++) assert_true(c.seqs[i] > c.seqs[i - 1]);
    /* A NULL callback only validates. */
    assert_int_equal(wal_scan(f->dir, 0, NULL, NULL, &rep), 0);
    assert_int_equal(rep.records, count);
}

static void test_the_python_header_vector(void **state) {
    fx *f = *state;
    static const unsigned char expect[32] = {
        0x53, 0x4b, 0x56, 0x57, 0x41, 0x4c, 0x30, 0x31, 0x01, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00,
        0x2a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xad, 0x97, 0x1c, 0xd9,
    };
    wal *w;
    assert_int_equal(wal_open(f->dir, 7, 42, 0, &skv_io_posix, &w), 0);
    wal_close(w);
    char path[256];
    seg_path(path, sizeof path, f->dir, 42);
    size_t len;
    char *hdr = read_all(path, &len);
    assert_int_equal(len, 32);
    assert_memory_equal(hdr, expect, 32);
    free(hdr);
}

static void test_scan_missing_and_empty_dir(void **state) {
    fx *f = *state;
    collector c;
    wal_scan_report rep;
    memset(&rep, 0x5a, sizeof rep);
    assert_int_equal(scan(f->dir, 0, &c, &rep), 0); /* does not exist */
    assert_int_equal(rep.records, 0);
    assert_int_equal(rep.last_seq, 0);
    assert_int_equal(rep.torn_tail, 0);
    assert_int_equal(rep.tail_offset, 0);
    assert_string_equal(rep.last_segment, "");
    assert_int_equal(mkdir(f->dir, 0755), 0);
    char other[256];
    snprintf(other, sizeof other, "%s/snap-00000000000000000001.snap", f->dir);
    write_all(other, "x", 1);
    snprintf(other, sizeof other, "%s/wal-1.log", f->dir); /* not the 20-digit form: ignored */
    write_all(other, "x", 1);
    assert_int_equal(scan(f->dir, 0, &c, &rep), 0);
    assert_int_equal(rep.records, 0);
    assert_string_equal(rep.last_segment, "");
    assert_int_equal(c.n, 0);
}

static void test_reopen_and_extend(void **state) {
    fx *f = *state;
    wal *w;
    collector c;
    wal_scan_report rep;
    assert_int_equal(wal_open(f->dir, 3, 1, 0, &skv_io_posix, &w), 0);
    append_range(w, 1, 10);
    wal_close(w);
    assert_int_equal(scan(f->dir, 0, &c, &rep), 0);
    assert_int_equal(rep.records, 10);
    assert_int_equal(wal_open(f->dir, 3, rep.last_seq + 1, rep.tail_offset, &skv_io_posix, &w), 0);
    assert_int_equal(wal_bytes(w), rep.tail_offset);
    append_range(w, 11, 25);
    wal_close(w);
    assert_int_equal(scan(f->dir, 0, &c, &rep), 0);
    assert_int_equal(rep.records, 25);
    assert_int_equal(rep.last_seq, 25);
    assert_int_equal(count_segments(f->dir), 1);
    assert_int_equal(rep.tail_offset, offset_of(1, 26));
}

static void test_roll_and_scan_from_seq(void **state) {
    fx *f = *state;
    wal *w;
    assert_int_equal(wal_open(f->dir, 3, 1, 0, &skv_io_posix, &w), 0);
    for (uint64_t first = 1; first <= 81; first += 20) {
        if (first > 1) assert_int_equal(wal_roll(w, first), 0);
        append_range(w, first, first + 19);
    }
    assert_int_equal(count_segments(f->dir), 5);
    uint64_t total = 0;
    for (uint64_t first = 1; first <= 81; first += 20) {
        char path[256];
        seg_path(path, sizeof path, f->dir, first);
        assert_int_equal(file_size(path), offset_of(first, first + 20));
        total += file_size(path);
    }
    assert_int_equal(wal_bytes(w), total);

    /* Rolling an untouched fresh segment to its own first_seq is a no-op;
     * going backwards is refused. */
    assert_int_equal(wal_roll(w, 101), 0);
    assert_int_equal(wal_roll(w, 101), 0);
    assert_int_equal(count_segments(f->dir), 6);
    assert_int_equal(wal_roll(w, 50), SKV_EINVAL);
    assert_int_equal(wal_bytes(w), total + WAL_SEGMENT_HEADER);
    wal_close(w);

    static const struct { uint64_t from, records, first; } cases[] = {
        { 0, 100, 1 }, { 1, 99, 2 }, { 20, 80, 21 }, { 21, 79, 22 }, { 37, 63, 38 },
        { 99, 1, 100 }, { 100, 0, 0 }, { 5000, 0, 0 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        collector c;
        wal_scan_report rep;
        assert_int_equal(scan(f->dir, cases[i].from, &c, &rep), 0);
        assert_int_equal(rep.records, cases[i].records);
        assert_int_equal(c.n, cases[i].records);
        if (c.n > 0) assert_int_equal(c.seqs[0], cases[i].first);
        assert_int_equal(rep.last_seq, 100);
        assert_int_equal(rep.torn_tail, 0);
        assert_int_equal(rep.tail_offset, WAL_SEGMENT_HEADER);
        char last[256];
        seg_path(last, sizeof last, f->dir, 101);
        assert_string_equal(rep.last_segment, last);
    }
}

static int check_big(void *arg, const wal_record *r) {
    size_t *count = arg;
    if (r->seq % 500 == 0) {
        /* the big ones: value bytes derived from seq and position */
        if (r->value.len != ((size_t)3 << 20) + r->seq) return -100;
        for (size_t i = 0; i < r->value.len; i += 4093)
            if (r->value.ptr[i] != (char)(i ^ r->seq)) return -101;
    } else {
        gen_rec g;
        gen(&g, r->seq);
        if (!skv_slice_eq(g.r.key, r->key) || !skv_slice_eq(g.r.value, r->value)) return -102;
    }
    (*count)++;
    return 0;
}

/* Many small records across read-buffer boundaries, with three 3 MiB
 * records in between (the buffer must grow, then keep streaming). */
static void test_large_and_many_records(void **state) {
    fx *f = *state;
    wal *w;
    size_t big_len = ((size_t)3 << 20) + 1500;
    char *big = malloc(big_len);
    assert_non_null(big);
    assert_int_equal(wal_open(f->dir, 3, 1, 0, &skv_io_posix, &w), 0);
    skv_buf b;
    skv_buf_init(&b);
    for (uint64_t s = 1; s <= 1600; s++) {
        if (s % 500 == 0) {
            size_t vlen = ((size_t)3 << 20) + s;
            for (size_t i = 0; i < vlen; i++) big[i] = (char)(i ^ s);
            wal_record r = make_rec(s, WAL_OP_PUT, "big", 3, big, vlen);
            skv_buf_reset(&b);
            wal_record_encode(&b, &r);
            assert_int_equal(wal_append(w, b.data, b.len), 0);
        } else {
            append_seq(w, s);
        }
    }
    assert_int_equal(wal_sync(w), 0);
    wal_close(w);
    skv_buf_free(&b);
    free(big);
    size_t count = 0;
    wal_scan_report rep;
    assert_int_equal(wal_scan(f->dir, 0, check_big, &count, &rep), 0);
    assert_int_equal(count, 1600);
    assert_int_equal(rep.records, 1600);
    assert_int_equal(rep.torn_tail, 0);
}

/* Two segments (seqs 1..10 and 11..20); the last record of the last
 * segment is cut at every offset inside it. */
static void test_torn_tail_every_offset(void **state) {
    fx *f = *state;
    wal *w;
    assert_int_equal(wal_open(f->dir, 3, 1, 0, &skv_io_posix, &w), 0);
    append_range(w, 1, 10);
    assert_int_equal(wal_roll(w, 11), 0);
    append_range(w, 11, 20);
    wal_close(w);
    char path[256];
    seg_path(path, sizeof path, f->dir, 11);
    size_t full_len;
    char *full = read_all(path, &full_len);
    uint64_t start = offset_of(11, 20);
    assert_int_equal(full_len, start + gen_size(20));

    for (uint64_t cut = start + 1; cut < full_len; cut++) {
        write_all(path, full, (size_t)cut);
        collector c;
        wal_scan_report rep;
        assert_int_equal(scan(f->dir, 0, &c, &rep), 0);
        assert_int_equal(rep.torn_tail, 1);
        assert_int_equal(rep.tail_offset, start);
        assert_int_equal(rep.records, 19);
        assert_int_equal(rep.last_seq, 19);
        assert_string_equal(rep.last_segment, path);

        /* Recovery: reopen at the reported offset and write on. */
        assert_int_equal(wal_open(f->dir, 3, 20, rep.tail_offset, &skv_io_posix, &w), 0);
        assert_int_equal(file_size(path), start);
        append_range(w, 21, 22);
        wal_close(w);
        assert_int_equal(scan(f->dir, 0, &c, &rep), 0);
        assert_int_equal(rep.torn_tail, 0);
        assert_int_equal(rep.records, 21);
        assert_int_equal(c.seqs[18], 19);
        assert_int_equal(c.seqs[19], 21);
        assert_int_equal(rep.tail_offset, start + gen_size(21) + gen_size(22));
        assert_int_equal(rep.tail_offset, file_size(path));
    }
    free(full);
}

/* A damaged length field in a MIDDLE record of the last segment also makes
 * the record "run past the end", but valid records follow it: corruption,
 * never a torn tail that would silently drop them. */
static void test_damaged_length_is_not_torn(void **state) {
    fx *f = *state;
    wal *w;
    assert_int_equal(wal_open(f->dir, 3, 1, 0, &skv_io_posix, &w), 0);
    append_range(w, 1, 10);
    wal_close(w);
    char path[256];
    seg_path(path, sizeof path, f->dir, 1);
    uint64_t off = offset_of(1, 4);
    flip_byte(path, off + 3, 0x40); /* body_len's high byte: the record now "ends" far past EOF */
    collector c;
    wal_scan_report rep;
    assert_int_equal(scan(f->dir, 0, &c, &rep), SKV_EIO);
    assert_int_equal(rep.torn_tail, 0);
    assert_int_equal(rep.error_offset, off);
    assert_string_equal(rep.error_file, path);
    /* The same damage in the LAST record is a torn tail. */
    flip_byte(path, off + 3, 0x40);
    off = offset_of(1, 10);
    flip_byte(path, off + 3, 0x40);
    assert_int_equal(scan(f->dir, 0, &c, &rep), 0);
    assert_int_equal(rep.torn_tail, 1);
    assert_int_equal(rep.tail_offset, off);
}

/* The newest segment cut inside its header: torn with tail_offset 0, and
 * wal_open(end_offset 0) replaces it. */
static void test_torn_segment_header(void **state) {
    fx *f = *state;
    wal *w;
    assert_int_equal(wal_open(f->dir, 3, 1, 0, &skv_io_posix, &w), 0);
    append_range(w, 1, 5);
    assert_int_equal(wal_roll(w, 6), 0);
    wal_close(w);
    char path[256];
    seg_path(path, sizeof path, f->dir, 6);
    size_t hlen;
    char *hdr = read_all(path, &hlen);
    assert_int_equal(hlen, WAL_SEGMENT_HEADER);
    for (size_t cut = 0; cut < WAL_SEGMENT_HEADER; cut++) {
        write_all(path, hdr, cut);
        collector c;
        wal_scan_report rep;
        assert_int_equal(scan(f->dir, 0, &c, &rep), 0);
        assert_int_equal(rep.torn_tail, 1);
        assert_int_equal(rep.tail_offset, 0);
        assert_int_equal(rep.records, 5);
        assert_int_equal(rep.last_seq, 5);
        assert_string_equal(rep.last_segment, path);
    }
    /* An all-zero "header" (and more zeros) in the last segment: torn too. */
    static const char zeros[100];
    write_all(path, zeros, sizeof zeros);
    collector c;
    wal_scan_report rep;
    assert_int_equal(scan(f->dir, 0, &c, &rep), 0);
    assert_int_equal(rep.torn_tail, 1);
    assert_int_equal(rep.tail_offset, 0);

    assert_int_equal(wal_open(f->dir, 3, rep.last_seq + 1, 0, &skv_io_posix, &w), 0);
    assert_int_equal(file_size(path), WAL_SEGMENT_HEADER);
    append_range(w, 6, 8);
    seg_path(path, sizeof path, f->dir, 1);
    assert_int_equal(wal_bytes(w), file_size(path) + offset_of(6, 9));
    wal_close(w);
    assert_int_equal(scan(f->dir, 0, &c, &rep), 0);
    assert_int_equal(rep.torn_tail, 0);
    assert_int_equal(rep.records, 8);
    assert_int_equal(count_segments(f->dir), 2);
    free(hdr);
}

/* wal_open(end_offset 0) keeps a newest segment whose header is valid and
 * starts the new one after it (or refuses when it would not sort after). */
static void test_open_fresh_keeps_valid_newest(void **state) {
    fx *f = *state;
    wal *w;
    assert_int_equal(wal_open(f->dir, 3, 1, 0, &skv_io_posix, &w), 0);
    append_range(w, 1, 5);
    wal_close(w);
    assert_int_equal(wal_open(f->dir, 3, 1, 0, &skv_io_posix, &w), SKV_EIO);
    assert_null(w);
    assert_int_equal(wal_open(f->dir, 3, 6, 0, &skv_io_posix, &w), 0);
    append_range(w, 6, 7);
    wal_close(w);
    assert_int_equal(count_segments(f->dir), 2);
    collector c;
    wal_scan_report rep;
    assert_int_equal(scan(f->dir, 0, &c, &rep), 0);
    assert_int_equal(rep.records, 7);
}

static void test_zero_filled_tail(void **state) {
    fx *f = *state;
    wal *w;
    static const char zeros[4096];
    collector c;
    wal_scan_report rep;
    char path[256];
    seg_path(path, sizeof path, f->dir, 1);

    /* Zeros right after the header. */
    assert_int_equal(wal_open(f->dir, 3, 1, 0, &skv_io_posix, &w), 0);
    wal_close(w);
    append_bytes(path, zeros, sizeof zeros);
    assert_int_equal(scan(f->dir, 0, &c, &rep), 0);
    assert_int_equal(rep.torn_tail, 1);
    assert_int_equal(rep.tail_offset, WAL_SEGMENT_HEADER);
    assert_int_equal(rep.records, 0);

    /* Zeros after records. */
    assert_int_equal(wal_open(f->dir, 3, 1, rep.tail_offset, &skv_io_posix, &w), 0);
    append_range(w, 1, 30);
    wal_close(w);
    uint64_t good = file_size(path);
    append_bytes(path, zeros, sizeof zeros);
    assert_int_equal(scan(f->dir, 0, &c, &rep), 0);
    assert_int_equal(rep.torn_tail, 1);
    assert_int_equal(rep.tail_offset, good);
    assert_int_equal(rep.records, 30);

    /* A partly written record followed by zeros is not all zero: the
     * record's declared end lies inside the file, its CRC is bad and bytes
     * follow, so this is corruption (the rule of wal.h). */
    assert_int_equal(wal_open(f->dir, 3, 31, good, &skv_io_posix, &w), 0);
    wal_close(w);
    append_bytes(path, "\x30\0\0\0", 4);
    append_bytes(path, zeros, sizeof zeros);
    assert_int_equal(scan(f->dir, 0, &c, &rep), SKV_EIO);
    assert_int_equal(rep.error_offset, good);

    /* Zeros with a non-zero byte at the very end: corruption. */
    assert_int_equal(wal_open(f->dir, 3, 31, good, &skv_io_posix, &w), 0);
    wal_close(w);
    append_bytes(path, zeros, sizeof zeros);
    append_bytes(path, "\x01", 1);
    assert_int_equal(scan(f->dir, 0, &c, &rep), SKV_EIO);
    assert_int_equal(rep.error_offset, good);
    assert_string_equal(rep.error_file, path);
}

static void test_bad_crc_at_the_tail(void **state) {
    fx *f = *state;
    wal *w;
    collector c;
    wal_scan_report rep;
    char path[256];
    seg_path(path, sizeof path, f->dir, 1);
    assert_int_equal(wal_open(f->dir, 3, 1, 0, &skv_io_posix, &w), 0);
    append_range(w, 1, 12);
    wal_close(w);
    uint64_t last = offset_of(1, 12);
    uint64_t end = file_size(path);

    /* Bad CRC, nothing after the declared end: torn. */
    flip_byte(path, end - 1, 0x10);
    assert_int_equal(scan(f->dir, 0, &c, &rep), 0);
    assert_int_equal(rep.torn_tail, 1);
    assert_int_equal(rep.tail_offset, last);
    assert_int_equal(rep.records, 11);

    /* The same with one byte after it: corruption at the record. */
    append_bytes(path, "\x07", 1);
    assert_int_equal(scan(f->dir, 0, &c, &rep), SKV_EIO);
    assert_int_equal(rep.error_offset, last);
    assert_string_equal(rep.error_file, path);
    assert_non_null(strstr(rep.error, "checksum"));
}

/* Every byte of a middle record except its length field, flipped in turn:
 * SKV_EIO naming the file and the record's offset; records before it were
 * delivered. */
static void test_corrupt_middle_record(void **state) {
    fx *f = *state;
    wal *w;
    char path[256];
    seg_path(path, sizeof path, f->dir, 1);
    assert_int_equal(wal_open(f->dir, 3, 1, 0, &skv_io_posix, &w), 0);
    append_range(w, 1, 20);
    wal_close(w);
    uint64_t start = offset_of(1, 9);
    uint64_t end = start + gen_size(9);
    for (uint64_t at = start + 4; at < end; at++) {
        flip_byte(path, at, 0x01);
        collector c;
        wal_scan_report rep;
        assert_int_equal(scan(f->dir, 0, &c, &rep), SKV_EIO);
        assert_string_equal(rep.error_file, path);
        assert_int_equal(rep.error_offset, start);
        assert_true(strlen(rep.error) > 0);
        assert_int_equal(c.n, 8);
        assert_int_equal(rep.last_seq, 8);
        flip_byte(path, at, 0x01);
    }
    /* Length fields that stay inside the file are caught as well. */
    flip_byte(path, start, 0x01);
    collector c;
    wal_scan_report rep;
    assert_int_equal(scan(f->dir, 0, &c, &rep), SKV_EIO);
    assert_int_equal(rep.error_offset, start);
    flip_byte(path, start, 0x01);
    assert_int_equal(scan(f->dir, 0, &c, &rep), 0);
    assert_int_equal(rep.records, 20);
}

/* Damage at the end of a segment that is not the last one is never torn. */
static void test_corrupt_non_last_segment(void **state) {
    fx *f = *state;
    wal *w;
    assert_int_equal(wal_open(f->dir, 3, 1, 0, &skv_io_posix, &w), 0);
    append_range(w, 1, 10);
    assert_int_equal(wal_roll(w, 11), 0);
    append_range(w, 11, 15);
    wal_close(w);
    char first[256];
    seg_path(first, sizeof first, f->dir, 1);
    size_t len;
    char *orig = read_all(first, &len);
    uint64_t last = offset_of(1, 10);
    collector c;
    wal_scan_report rep;

    flip_byte(first, len - 3, 0x40); /* bad CRC, nothing after: torn only if last */
    assert_int_equal(scan(f->dir, 0, &c, &rep), SKV_EIO);
    assert_string_equal(rep.error_file, first);
    assert_int_equal(rep.error_offset, last);

    write_all(first, orig, len - 5); /* truncated last record */
    assert_int_equal(scan(f->dir, 0, &c, &rep), SKV_EIO);
    assert_string_equal(rep.error_file, first);
    assert_int_equal(rep.error_offset, last);

    write_all(first, orig, (size_t)last + 3); /* truncated record header */
    assert_int_equal(scan(f->dir, 0, &c, &rep), SKV_EIO);
    assert_int_equal(rep.error_offset, last);

    write_all(first, orig, len);
    static const char zeros[64];
    append_bytes(first, zeros, sizeof zeros); /* zero tail */
    assert_int_equal(scan(f->dir, 0, &c, &rep), SKV_EIO);
    assert_int_equal(rep.error_offset, len);

    write_all(first, orig, 20); /* shorter than its header */
    assert_int_equal(scan(f->dir, 0, &c, &rep), SKV_EIO);
    assert_int_equal(rep.error_offset, 0);

    write_all(first, orig, len);
    assert_int_equal(scan(f->dir, 0, &c, &rep), 0);
    assert_int_equal(rep.records, 15);
    free(orig);
}

static void append_raw_seq(wal *w, uint64_t seq) {
    wal_record r = make_rec(seq, WAL_OP_PUT, "key", 3, "val", 3);
    skv_buf b;
    skv_buf_init(&b);
    wal_record_encode(&b, &r);
    assert_int_equal(wal_append(w, b.data, b.len), 0);
    skv_buf_free(&b);
}

static void test_seq_not_increasing(void **state) {
    fx *f = *state;
    wal *w;
    wal_scan_report rep;
    char path[256];
    uint64_t one = wal_record_size(3, 3);

    /* Backwards within a segment. */
    assert_int_equal(wal_open(f->dir, 3, 1, 0, &skv_io_posix, &w), 0);
    append_raw_seq(w, 5);
    append_raw_seq(w, 6);
    append_raw_seq(w, 4);
    append_raw_seq(w, 7);
    wal_close(w);
    assert_int_equal(wal_scan(f->dir, 0, NULL, NULL, &rep), SKV_EIO);
    assert_int_equal(rep.error_offset, WAL_SEGMENT_HEADER + 2 * one);
    assert_int_equal(rep.last_seq, 6);
    rm_tree(f->dir);

    /* Repeated. */
    assert_int_equal(wal_open(f->dir, 3, 1, 0, &skv_io_posix, &w), 0);
    append_raw_seq(w, 5);
    append_raw_seq(w, 5);
    wal_close(w);
    assert_int_equal(wal_scan(f->dir, 0, NULL, NULL, &rep), SKV_EIO);
    assert_int_equal(rep.error_offset, WAL_SEGMENT_HEADER + one);
    rm_tree(f->dir);

    /* Below the segment's first_seq. */
    assert_int_equal(wal_open(f->dir, 3, 10, 0, &skv_io_posix, &w), 0);
    append_raw_seq(w, 9);
    wal_close(w);
    assert_int_equal(wal_scan(f->dir, 0, NULL, NULL, &rep), SKV_EIO);
    assert_int_equal(rep.error_offset, WAL_SEGMENT_HEADER);
    rm_tree(f->dir);

    /* Backwards across segments: a record below the previous one... */
    assert_int_equal(wal_open(f->dir, 3, 1, 0, &skv_io_posix, &w), 0);
    append_raw_seq(w, 20);
    assert_int_equal(wal_roll(w, 10), 0);
    append_raw_seq(w, 15);
    wal_close(w);
    assert_int_equal(wal_scan(f->dir, 0, NULL, NULL, &rep), SKV_EIO);
    seg_path(path, sizeof path, f->dir, 10);
    assert_string_equal(rep.error_file, path);
    assert_int_equal(rep.error_offset, 0); /* ... is caught at the header already */
    assert_non_null(strstr(rep.error, "first_seq"));
}

static void test_bad_segment_headers(void **state) {
    fx *f = *state;
    wal *w;
    collector c;
    wal_scan_report rep;
    char first[256], second[256];
    seg_path(first, sizeof first, f->dir, 1);
    seg_path(second, sizeof second, f->dir, 6);
    assert_int_equal(wal_open(f->dir, 3, 1, 0, &skv_io_posix, &w), 0);
    append_range(w, 1, 5);
    assert_int_equal(wal_roll(w, 6), 0);
    append_range(w, 6, 8);
    wal_close(w);

    /* Any header byte flipped, in the first or the last segment. */
    for (uint64_t at = 0; at < WAL_SEGMENT_HEADER; at++) {
        flip_byte(first, at, 0x02);
        assert_int_equal(scan(f->dir, 0, &c, &rep), SKV_EIO);
        assert_string_equal(rep.error_file, first);
        assert_int_equal(rep.error_offset, 0);
        flip_byte(first, at, 0x02);
        flip_byte(second, at, 0x02);
        assert_int_equal(scan(f->dir, 0, &c, &rep), SKV_EIO);
        assert_string_equal(rep.error_file, second);
        assert_int_equal(rep.error_offset, 0);
        assert_int_equal(c.n, 5);
        flip_byte(second, at, 0x02);
    }
    assert_int_equal(scan(f->dir, 0, &c, &rep), 0);

    /* A header that does not match its file name. */
    char renamed[256];
    seg_path(renamed, sizeof renamed, f->dir, 7);
    assert_int_equal(rename(second, renamed), 0);
    assert_int_equal(scan(f->dir, 0, &c, &rep), SKV_EIO);
    assert_string_equal(rep.error_file, renamed);
    assert_non_null(strstr(rep.error, "file name"));
    assert_int_equal(rename(renamed, second), 0);

    /* A segment of another shard. */
    assert_int_equal(wal_open(f->dir, 4, 9, 0, &skv_io_posix, &w), 0);
    wal_close(w);
    assert_int_equal(scan(f->dir, 0, &c, &rep), SKV_EIO);
    seg_path(renamed, sizeof renamed, f->dir, 9);
    assert_string_equal(rep.error_file, renamed);
    assert_non_null(strstr(rep.error, "shard"));
}

static void test_scan_callback_stops(void **state) {
    fx *f = *state;
    wal *w;
    assert_int_equal(wal_open(f->dir, 3, 1, 0, &skv_io_posix, &w), 0);
    append_range(w, 1, 10);
    wal_close(w);
    collector c;
    memset(&c, 0, sizeof c);
    c.check_content = 1;
    c.stop_at = 4;
    wal_scan_report rep;
    assert_int_equal(wal_scan(f->dir, 2, collect, &c, &rep), 42);
    assert_int_equal(c.n, 2);
    assert_int_equal(rep.records, 2);
}

static void test_drop_before(void **state) {
    fx *f = *state;
    wal *w;
    assert_int_equal(wal_open(f->dir, 3, 1, 0, &skv_io_posix, &w), 0);
    for (uint64_t first = 1; first <= 31; first += 10) {
        if (first > 1) assert_int_equal(wal_roll(w, first), 0);
        append_range(w, first, first + 9);
    }
    char p1[256], p11[256], p21[256], p31[256];
    seg_path(p1, sizeof p1, f->dir, 1);
    seg_path(p11, sizeof p11, f->dir, 11);
    seg_path(p21, sizeof p21, f->dir, 21);
    seg_path(p31, sizeof p31, f->dir, 31);
    uint64_t s1 = file_size(p1), s11 = file_size(p11), s21 = file_size(p21), s31 = file_size(p31);
    assert_int_equal(wal_bytes(w), s1 + s11 + s21 + s31);

    assert_int_equal(wal_drop_before(w, 10), 0); /* seg 1 still holds seq 10 */
    assert_int_equal(count_segments(f->dir), 4);
    assert_int_equal(wal_drop_before(w, 11), 0); /* everything in seg 1 is < 11 */
    assert_false(file_exists(p1));
    assert_true(file_exists(p11));
    assert_int_equal(wal_bytes(w), s11 + s21 + s31);
    assert_int_equal(wal_drop_before(w, 20), 0);
    assert_int_equal(count_segments(f->dir), 3);
    assert_int_equal(wal_drop_before(w, 1000), 0); /* never the current one */
    assert_false(file_exists(p11));
    assert_false(file_exists(p21));
    assert_true(file_exists(p31));
    assert_int_equal(wal_bytes(w), s31);
    append_range(w, 41, 42);
    wal_close(w);

    collector c;
    wal_scan_report rep;
    assert_int_equal(scan(f->dir, 30, &c, &rep), 0);
    assert_int_equal(rep.records, 12);
    assert_int_equal(c.seqs[0], 31);
    assert_int_equal(rep.last_seq, 42);

    /* wal_bytes after reopening counts what is on disk. */
    assert_int_equal(wal_open(f->dir, 3, 43, rep.tail_offset, &skv_io_posix, &w), 0);
    assert_int_equal(wal_bytes(w), file_size(p31));
    wal_close(w);
}

/* ---- fault injection ------------------------------------------------------------------------ */

static void check_write_error(fx *f, int err, int expect) {
    wal *w;
    fault_reset();
    rm_tree(f->dir);
    assert_int_equal(wal_open(f->dir, 3, 1, 0, &fault_io, &w), 0);
    append_range(w, 1, 5);
    uint64_t committed = wal_bytes(w);
    char path[256];
    seg_path(path, sizeof path, f->dir, 1);

    /* A failure on the first write of an append. */
    fault.fail_write_at = fault.writes + 1;
    fault.write_err = err;
    gen_rec g;
    gen(&g, 6);
    skv_buf b;
    skv_buf_init(&b);
    wal_record_encode(&b, &g.r);
    assert_int_equal(wal_append(w, b.data, b.len), expect);
    assert_int_equal(wal_rewind(w), 0);
    assert_int_equal(file_size(path), committed);
    assert_int_equal(wal_bytes(w), committed);

    /* Half a record written, then the failure: rewind cuts the half. */
    fault.half_write_at = fault.writes + 1;
    fault.fail_write_at = fault.writes + 2;
    assert_int_equal(wal_append(w, b.data, b.len), expect);
    assert_int_equal(file_size(path), committed + b.len / 2);
    assert_int_equal(wal_rewind(w), 0);
    assert_int_equal(file_size(path), committed);

    /* An append that succeeded after the commit point is cut as well when a
     * later one fails: rewind goes back to the commit point. */
    assert_int_equal(wal_append(w, b.data, b.len), 0);
    fault.fail_write_at = fault.writes + 1;
    gen_rec g7;
    gen(&g7, 7);
    skv_buf b7;
    skv_buf_init(&b7);
    wal_record_encode(&b7, &g7.r);
    assert_int_equal(wal_append(w, b7.data, b7.len), expect);
    assert_int_equal(wal_rewind(w), 0);
    assert_int_equal(file_size(path), committed);

    /* Later appends work and the log is clean. */
    assert_int_equal(wal_append(w, b.data, b.len), 0);
    assert_int_equal(wal_append(w, b7.data, b7.len), 0);
    assert_int_equal(wal_sync(w), 0);
    wal_commit_point(w);
    assert_int_equal(wal_bytes(w), committed + b.len + b7.len);
    wal_close(w);
    skv_buf_free(&b);
    skv_buf_free(&b7);
    collector c;
    wal_scan_report rep;
    assert_int_equal(scan(f->dir, 0, &c, &rep), 0);
    assert_int_equal(rep.records, 7);
    assert_int_equal(rep.torn_tail, 0);
}

static void test_fault_write_errors(void **state) {
    fx *f = *state;
    check_write_error(f, -ENOSPC, SKV_ENOSPACE);
    check_write_error(f, -EFBIG, SKV_ENOSPACE);
    check_write_error(f, -EDQUOT, SKV_ENOSPACE);
    check_write_error(f, -EIO, SKV_EIO);
    check_write_error(f, -EBADF, SKV_EIO);
}

static void test_fault_short_writes(void **state) {
    fx *f = *state;
    wal *w;
    fault_reset();
    fault.one_byte = 1;
    assert_int_equal(wal_open(f->dir, 3, 1, 0, &fault_io, &w), 0);
    append_range(w, 1, 40);
    assert_true(fault.writes > 1000); /* really one byte at a time */
    assert_int_equal(wal_roll(w, 41), 0);
    append_range(w, 41, 45);
    wal_close(w);
    collector c;
    wal_scan_report rep;
    assert_int_equal(scan(f->dir, 0, &c, &rep), 0);
    assert_int_equal(rep.records, 45);
    assert_int_equal(rep.torn_tail, 0);
    /* EINTR is retried, too. */
    fault_reset();
    fault.fail_write_at = 1;
    fault.write_err = -EINTR;
    assert_int_equal(wal_open(f->dir, 3, 46, rep.tail_offset, &fault_io, &w), 0);
    append_range(w, 46, 46);
    assert_int_equal(fault.writes, 2);
    wal_close(w);
    assert_int_equal(scan(f->dir, 0, &c, &rep), 0);
    assert_int_equal(rep.records, 46);
}

static void test_fault_fdatasync(void **state) {
    fx *f = *state;
    wal *w;
    fault_reset();

    /* Creating the first segment fails: no wal, no file left behind. */
    fault.fail_sync_at = 1;
    assert_int_equal(wal_open(f->dir, 3, 1, 0, &fault_io, &w), SKV_EIO);
    assert_null(w);
    assert_int_equal(count_segments(f->dir), 0);

    fault_reset();
    assert_int_equal(wal_open(f->dir, 3, 1, 0, &fault_io, &w), 0);
    append_range(w, 1, 3);
    append_seq(w, 4);
    fault.fail_sync_at = fault.syncs + 1;
    assert_int_equal(wal_sync(w), SKV_EIO);
    assert_int_equal(wal_sync(w), 0); /* the layer does not make it sticky: the caller does */

    /* Roll: the sync of the current segment fails -> stays on it. */
    fault.fail_sync_at = fault.syncs + 1;
    assert_int_equal(wal_roll(w, 5), SKV_EIO);
    assert_int_equal(count_segments(f->dir), 1);
    /* Roll: the new segment's header sync fails -> no new file, still on the old one. */
    fault.fail_sync_at = fault.syncs + 2;
    assert_int_equal(wal_roll(w, 5), SKV_EIO);
    assert_int_equal(count_segments(f->dir), 1);
    append_range(w, 5, 6);
    assert_int_equal(wal_roll(w, 7), 0);
    append_range(w, 7, 7);
    wal_close(w);
    collector c;
    wal_scan_report rep;
    assert_int_equal(scan(f->dir, 0, &c, &rep), 0);
    assert_int_equal(rep.records, 7);
    assert_int_equal(count_segments(f->dir), 2);

    /* Reopening with a torn tail to cut: the cut's sync fails -> SKV_EIO. */
    char path[256];
    seg_path(path, sizeof path, f->dir, 7);
    append_bytes(path, "junk", 4);
    fault_reset();
    fault.fail_sync_at = 1;
    assert_int_equal(wal_open(f->dir, 3, 8, rep.tail_offset, &fault_io, &w), SKV_EIO);
    assert_int_equal(fault.truncates, 1);
    fault_reset();
    assert_int_equal(wal_open(f->dir, 3, 8, rep.tail_offset, &fault_io, &w), 0);
    assert_int_equal(file_size(path), rep.tail_offset);
    wal_close(w);
}

static void test_open_errors(void **state) {
    fx *f = *state;
    wal *w;
    assert_int_equal(wal_open(f->dir, 3, 1, 0, &skv_io_posix, &w), 0);
    append_range(w, 1, 2);
    uint64_t size = wal_bytes(w);
    wal_close(w);
    assert_int_equal(wal_open(f->dir, 3, 3, size + 1, &skv_io_posix, &w), SKV_EIO); /* past the end */
    assert_null(w);
    assert_int_equal(wal_open(f->dir, 3, 3, 5, &skv_io_posix, &w), SKV_EIO); /* inside the header */
    char path[256];
    seg_path(path, sizeof path, f->dir, 1);
    assert_int_equal(file_size(path), size); /* nothing was cut */

    /* The directory is a regular file. */
    char notdir[256];
    snprintf(notdir, sizeof notdir, "%s/plainfile", f->root);
    write_all(notdir, "x", 1);
    assert_int_equal(wal_open(notdir, 3, 1, 0, &skv_io_posix, &w), SKV_EIO);
    wal_scan_report rep;
    assert_int_equal(wal_scan(notdir, 0, NULL, NULL, &rep), SKV_EIO);
    assert_string_equal(rep.error_file, notdir);
}

/* ---- atomic record groups ------------------------------------------------------------------- */

/* Appends gen(seq), flagged WAL_FLAG_GROUP_NEXT when group_next (the next
 * record belongs to the same atomic group). */
static void append_grouped(wal *w, uint64_t seq, int group_next) {
    gen_rec g;
    skv_buf b;
    skv_buf_init(&b);
    gen(&g, seq);
    if (group_next) g.r.flags |= WAL_FLAG_GROUP_NEXT;
    wal_record_encode(&b, &g.r);
    assert_int_equal(wal_append(w, b.data, b.len), 0);
    skv_buf_free(&b);
}

/* Collects seqs and flags; checks the content against gen() apart from the
 * group flag. */
typedef struct gcollector {
    uint64_t seqs[64];
    uint32_t flags[64];
    size_t n;
    uint64_t stop_at;
} gcollector;

static int gcollect(void *arg, const wal_record *r) {
    gcollector *c = arg;
    gen_rec g;
    gen(&g, r->seq);
    wal_record plain = *r;
    plain.flags &= ~WAL_FLAG_GROUP_NEXT;
    assert_rec_equal(&plain, &g.r);
    assert_true(c->n < 64);
    c->seqs[c->n] = r->seq;
    c->flags[c->n] = r->flags;
    c->n++;
    return r->seq == c->stop_at ? 42 : 0;
}

static int gscan(const char *dir, uint64_t from_seq, gcollector *c, wal_scan_report *rep) {
    memset(c, 0, sizeof *c);
    return wal_scan(dir, from_seq, gcollect, c, rep);
}

static void assert_seqs(const gcollector *c, const uint64_t *want, size_t n) {
    assert_int_equal(c->n, n);
    for (size_t i = 0; i < n; i++) assert_int_equal(c->seqs[i], want[i]);
}

static void test_group_delivered_whole(void **state) {
    fx *f = *state;
    wal *w;
    assert_int_equal(wal_open(f->dir, 3, 1, 0, &skv_io_posix, &w), 0);
    append_grouped(w, 1, 0);
    append_grouped(w, 2, 1); /* group of two: 2, 3 */
    append_grouped(w, 3, 0);
    append_grouped(w, 4, 0); /* a normal record after it */
    append_grouped(w, 5, 1); /* group of three: 5, 6, 7 (the last record of the log) */
    append_grouped(w, 6, 1);
    append_grouped(w, 7, 0);
    assert_int_equal(wal_sync(w), 0);
    wal_close(w);
    char path[256];
    seg_path(path, sizeof path, f->dir, 1);

    gcollector c;
    wal_scan_report rep;
    assert_int_equal(gscan(f->dir, 0, &c, &rep), 0);
    static const uint64_t all[] = { 1, 2, 3, 4, 5, 6, 7 };
    assert_seqs(&c, all, 7);
    assert_int_equal(rep.records, 7);
    assert_int_equal(rep.last_seq, 7);
    assert_int_equal(rep.torn_tail, 0);
    assert_int_equal(rep.tail_offset, file_size(path));
    /* The flags arrive as written (the reader of a group may need them). */
    for (size_t i = 0; i < c.n; i++) {
        int grouped = c.seqs[i] == 2 || c.seqs[i] == 5 || c.seqs[i] == 6;
        assert_int_equal((c.flags[i] & WAL_FLAG_GROUP_NEXT) != 0, grouped);
        assert_int_equal(c.flags[i] & 3u, c.seqs[i] & 3u);
    }

    /* From a seq inside a group: only the records past it. */
    assert_int_equal(gscan(f->dir, 5, &c, &rep), 0);
    static const uint64_t tail[] = { 6, 7 };
    assert_seqs(&c, tail, 2);
    assert_int_equal(rep.records, 2);

    /* A callback stopping inside a group stops the scan with its value. */
    memset(&c, 0, sizeof c);
    c.stop_at = 5;
    assert_int_equal(wal_scan(f->dir, 0, gcollect, &c, &rep), 42);
    assert_int_equal(c.n, 5);

    /* Without a callback the scan validates and counts. */
    assert_int_equal(wal_scan(f->dir, 0, NULL, NULL, &rep), 0);
    assert_int_equal(rep.records, 7);
}

/* Writes seqs 1..3, then a group (4 flagged, 5 closing), closes; returns
 * the file bytes. */
static char *write_torn_group_log(fx *f, char *path, size_t cap, size_t *len) {
    wal *w;
    assert_int_equal(wal_open(f->dir, 3, 1, 0, &skv_io_posix, &w), 0);
    append_range(w, 1, 3);
    append_grouped(w, 4, 1);
    append_grouped(w, 5, 0);
    assert_int_equal(wal_sync(w), 0);
    wal_close(w);
    seg_path(path, cap, f->dir, 1);
    return read_all(path, len);
}

/* The scan of a log whose group (at group_off) never closed: a torn tail
 * at the group's first record, only the three records before delivered. */
static void assert_group_torn(fx *f, uint64_t group_off) {
    gcollector c;
    wal_scan_report rep;
    assert_int_equal(gscan(f->dir, 0, &c, &rep), 0);
    static const uint64_t before[] = { 1, 2, 3 };
    assert_seqs(&c, before, 3);
    assert_int_equal(rep.records, 3);
    assert_int_equal(rep.torn_tail, 1);
    assert_int_equal(rep.tail_offset, group_off);
}

static void test_group_torn_at_the_end(void **state) {
    fx *f = *state;
    char path[256];
    size_t len;
    char *full = write_torn_group_log(f, path, sizeof path, &len);
    uint64_t g4 = offset_of(1, 4), g5 = offset_of(1, 5);
    assert_int_equal(len, g5 + gen_size(5));

    /* The closing record missing entirely. */
    write_all(path, full, (size_t)g5);
    assert_group_torn(f, g4);
    /* ... or cut at every offset inside it. */
    for (uint64_t cut = g5 + 1; cut < len; cut++) {
        write_all(path, full, (size_t)cut);
        assert_group_torn(f, g4);
    }
    /* ... or complete but with a bad CRC (nothing after it). */
    write_all(path, full, len);
    flip_byte(path, len - 1, 0x01);
    assert_group_torn(f, g4);
    /* ... or zero bytes where it should be. */
    char *zeroed = malloc(len);
    assert_non_null(zeroed);
    memcpy(zeroed, full, len);
    memset(zeroed + g5, 0, len - g5);
    write_all(path, zeroed, len);
    assert_group_torn(f, g4);
    free(zeroed);
    /* The group's first record itself torn: an ordinary torn tail, same place. */
    write_all(path, full, (size_t)g4 + 10);
    assert_group_torn(f, g4);

    /* Recovery cuts the log at the group and writes on. */
    write_all(path, full, (size_t)g5 + 7);
    wal_scan_report rep;
    gcollector c;
    assert_int_equal(gscan(f->dir, 0, &c, &rep), 0);
    wal *w;
    assert_int_equal(wal_open(f->dir, 3, 6, rep.tail_offset, &skv_io_posix, &w), 0);
    assert_int_equal(file_size(path), g4);
    append_grouped(w, 6, 1);
    append_grouped(w, 7, 0);
    assert_int_equal(wal_sync(w), 0);
    wal_close(w);
    assert_int_equal(gscan(f->dir, 0, &c, &rep), 0);
    static const uint64_t after[] = { 1, 2, 3, 6, 7 };
    assert_seqs(&c, after, 5);
    assert_int_equal(rep.torn_tail, 0);
    assert_int_equal(rep.tail_offset, file_size(path));
    free(full);
}

/* A group of three whose first two records are whole: still dropped whole. */
static void test_group_of_three_torn(void **state) {
    fx *f = *state;
    wal *w;
    assert_int_equal(wal_open(f->dir, 3, 1, 0, &skv_io_posix, &w), 0);
    append_range(w, 1, 3);
    append_grouped(w, 4, 1);
    append_grouped(w, 5, 1);
    append_grouped(w, 6, 0);
    assert_int_equal(wal_sync(w), 0);
    wal_close(w);
    char path[256];
    seg_path(path, sizeof path, f->dir, 1);
    size_t len;
    char *full = read_all(path, &len);
    uint64_t g4 = offset_of(1, 4), g6 = offset_of(1, 6);
    for (uint64_t cut = g6; cut < len; cut += 5) {
        write_all(path, full, (size_t)cut);
        assert_group_torn(f, g4);
    }
    write_all(path, full, len);
    gcollector c;
    wal_scan_report rep;
    assert_int_equal(gscan(f->dir, 0, &c, &rep), 0);
    assert_int_equal(c.n, 6);
    assert_int_equal(rep.torn_tail, 0);
    free(full);
}

/* A group is written in one batch and never spans segments: one cut by
 * the end of an earlier segment is corruption, not a torn tail. */
static void test_group_cut_by_segment_end(void **state) {
    fx *f = *state;
    wal *w;
    assert_int_equal(wal_open(f->dir, 3, 1, 0, &skv_io_posix, &w), 0);
    append_range(w, 1, 3);
    append_grouped(w, 4, 1);
    assert_int_equal(wal_sync(w), 0);
    wal_commit_point(w);
    assert_int_equal(wal_roll(w, 5), 0);
    append_grouped(w, 5, 0);
    append_grouped(w, 6, 0);
    assert_int_equal(wal_sync(w), 0);
    wal_close(w);
    char first[256];
    seg_path(first, sizeof first, f->dir, 1);

    gcollector c;
    wal_scan_report rep;
    assert_int_equal(gscan(f->dir, 0, &c, &rep), SKV_EIO);
    static const uint64_t before[] = { 1, 2, 3 };
    assert_seqs(&c, before, 3); /* nothing of the group was delivered */
    assert_int_equal(rep.records, 3);
    assert_int_equal(rep.torn_tail, 0);
    assert_string_equal(rep.error_file, first);
    assert_int_equal(rep.error_offset, offset_of(1, 4));
    assert_true(rep.error[0] != '\0');

    /* The same layout with the group closed inside the first segment is fine. */
    rm_tree(f->dir);
    assert_int_equal(wal_open(f->dir, 3, 1, 0, &skv_io_posix, &w), 0);
    append_range(w, 1, 3);
    append_grouped(w, 4, 1);
    append_grouped(w, 5, 0);
    assert_int_equal(wal_sync(w), 0);
    wal_commit_point(w);
    assert_int_equal(wal_roll(w, 6), 0);
    append_grouped(w, 6, 0);
    assert_int_equal(wal_sync(w), 0);
    wal_close(w);
    assert_int_equal(gscan(f->dir, 0, &c, &rep), 0);
    assert_int_equal(c.n, 6);
    assert_int_equal(rep.torn_tail, 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void) {
    log_init(LOG_LEVEL_OFF, LOG_FORMAT_TEXT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_known_bytes),
        cmocka_unit_test(test_record_round_trip),
        cmocka_unit_test(test_record_need_more_every_truncation),
        cmocka_unit_test(test_record_every_flip_detected),
        cmocka_unit_test(test_record_invalid_fields),
        T(test_open_append_scan_round_trip),
        T(test_the_python_header_vector),
        T(test_scan_missing_and_empty_dir),
        T(test_reopen_and_extend),
        T(test_roll_and_scan_from_seq),
        T(test_large_and_many_records),
        T(test_torn_tail_every_offset),
        T(test_damaged_length_is_not_torn),
        T(test_torn_segment_header),
        T(test_open_fresh_keeps_valid_newest),
        T(test_zero_filled_tail),
        T(test_bad_crc_at_the_tail),
        T(test_corrupt_middle_record),
        T(test_corrupt_non_last_segment),
        T(test_seq_not_increasing),
        T(test_bad_segment_headers),
        T(test_scan_callback_stops),
        T(test_drop_before),
        T(test_fault_write_errors),
        T(test_fault_short_writes),
        T(test_fault_fdatasync),
        T(test_open_errors),
        T(test_group_delivered_whole),
        T(test_group_torn_at_the_end),
        T(test_group_of_three_torn),
        T(test_group_cut_by_segment_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
