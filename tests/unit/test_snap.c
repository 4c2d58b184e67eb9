/*
 * Unit tests for snap: the exact bytes of a small snapshot (known-answer
 * file), write + load round trips (0, 1 and 50,000 entries with binary keys,
 * empty values and one 1 MiB value), finding the newest snapshot among
 * strictly parsed names and removing .tmp leftovers, corruption detection
 * (every byte changed, every truncation, bytes after the trailer, trailer
 * count / base_seq mismatches, wrong version, a DELETE entry, a renamed
 * file), dropping older snapshots, and fault injection through a custom
 * skv_io (every write failing in turn, fsync failing, short writes and EINTR).
 *
 * The known-answer file comes from Python 3 (struct.pack plus a bitwise
 * CRC-32C checked against crc32c("123456789") == 0xE3069283):
 *   header(shard 3, base_seq 42)
 *   + record(seq 7, PUT, flags 1, expires 1700000000000, key "k\0y", value "val")
 *   + record(seq 43, PUT, flags 0, expires 0, key "\xff", value "")
 *   + trailer(count 2, base_seq 42)
 * Each test gets its own mkdtemp directory, removed afterwards.
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

#include "crc32c.h"
#include "err.h"
#include "io.h"
#include "log.h"
#include "mem.h"
#include "snap.h"
#include "wal.h"

/* ---- files and directories ------------------------------------------------------------------- */

typedef struct fixture {
    char dir[64];
} fixture;

static int setup_dir(void **state) {
    fixture *f = calloc(1, sizeof *f);
    if (f == NULL) return -1;
    const char *base = getenv("TMPDIR");
    snprintf(f->dir, sizeof f->dir, "%s/skv-snap-XXXXXX", base && strlen(base) < 40 ? base : "/tmp");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (d == NULL) return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (unlink(path) != 0 && errno == EISDIR) remove_tree(path);
    }
    closedir(d);
    rmdir(dir);
}

static int teardown_dir(void **state) {
    fixture *f = *state;
    remove_tree(f->dir);
    free(f);
    return 0;
}

static const char *dir_of(void **state) { return ((fixture *)*state)->dir; }

static size_t count_files(const char *dir) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) n++;
    closedir(d);
    return n;
}

static int file_exists(const char *dir, const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

static void snap_name(char *out, size_t cap, const char *dir, uint64_t base_seq, const char *suffix) {
    snprintf(out, cap, "%s/snap-%020llu%s", dir, (unsigned long long)base_seq, suffix);
}

static void write_file(const char *path, const void *data, size_t len) {
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    assert_true(fd >= 0);
    assert_int_equal(io_write_all(&skv_io_posix, fd, data, len), 0);
    close(fd);
}

static void touch(const char *dir, const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    write_file(path, "x", 1);
}

/* Reads a whole (small) file; *len is its size.  Free with free(). */
static char *read_file(const char *path, size_t *len) {
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    char *data = malloc((size_t)st.st_size + 1);
    assert_non_null(data);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, data + got, (size_t)st.st_size - got);
        assert_true(n > 0);
        got += (size_t)n;
    }
    close(fd);
    *len = got;
    return data;
}

/* ---- deterministic entries ------------------------------------------------------------------- */

#define BIG_VALUE_LEN ((size_t)1 << 20)

typedef struct source {
    size_t n;        /* entries to produce */
    size_t next;     /* index of the next one */
    size_t big_at;   /* index of the 1 MiB value (n or more: none) */
    size_t val_max;  /* small values are up to val_max - 1 bytes */
    char *pattern;   /* BIG_VALUE_LEN bytes that values are cut from */
    char key[32];
} source;

static void source_init(source *s, size_t n, size_t big_at, size_t val_max) {
    memset(s, 0, sizeof *s);
    s->n = n;
    s->big_at = big_at;
    s->val_max = val_max;
    s->pattern = malloc(BIG_VALUE_LEN);
    assert_non_null(s->pattern);
    uint32_t x = 12345;
    for (size_t i = 0; i < BIG_VALUE_LEN; i++) {
        x = x * 1103515245u + 12345u;
        s->pattern[i] = (char)(x >> 16);
    }
}

static void source_free(source *s) { free(s->pattern); }

/* Entry i: a binary key of 1..13 bytes (holding 0x00 and 0xff), a value
 * that is empty every 7th entry, 1 MiB at big_at, else up to val_max bytes. */
static void make_entry(const source *s, size_t i, char *keybuf, wal_record *r) {
    memset(r, 0, sizeof *r);
    size_t klen = 1 + i % 13;
    for (size_t j = 0; j < klen; j++) keybuf[j] = (char)((i >> (8 * (j % 4))) + j * 0x55);
    keybuf[0] = (char)(i % 3 == 0 ? 0x00 : 0xff);
    r->op = WAL_OP_PUT;
    r->seq = 1000 + 3 * (uint64_t)i;
    r->flags = (uint32_t)(i & 0xff);
    r->expires_ms = i % 5 == 0 ? 0 : 1700000000000ull + i;
    r->key = skv_slice_make(keybuf, klen);
    if (i == s->big_at)
        r->value = skv_slice_make(s->pattern, BIG_VALUE_LEN);
    else if (i % 7 == 0 || s->val_max == 0)
        r->value = skv_slice_make(s->pattern, 0);
    else
        r->value = skv_slice_make(s->pattern + i % 4096, i % s->val_max);
}

static int source_next(void *arg, wal_record *r) {
    source *s = arg;
    if (s->next == s->n) return 0;
    make_entry(s, s->next, s->key, r);
    s->next++;
    return 1;
}

typedef struct checker {
    const source *s;
    size_t seen;
    size_t stop_after; /* 0: never stop */
} checker;

static int check_entry(void *arg, const wal_record *r) {
    checker *c = arg;
    char key[32];
    wal_record want;
    assert_true(c->seen < c->s->n);
    make_entry(c->s, c->seen, key, &want);
    assert_int_equal(r->seq, want.seq);
    assert_int_equal(r->op, WAL_OP_PUT);
    assert_int_equal(r->flags, want.flags);
    assert_int_equal(r->expires_ms, want.expires_ms);
    assert_int_equal(r->key.len, want.key.len);
    assert_memory_equal(r->key.ptr, want.key.ptr, want.key.len);
    assert_int_equal(r->value.len, want.value.len);
    if (want.value.len) assert_memory_equal(r->value.ptr, want.value.ptr, want.value.len);
    c->seen++;
    return c->stop_after && c->seen == c->stop_after ? 77 : 0;
}

static int ignore_entry(void *arg, const wal_record *r) {
    (void)r;
    (*(size_t *)arg)++;
    return 0;
}

/* Writes n entries as snapshot base_seq of shard 9 and loads it back. */
static void round_trip(const char *dir, size_t n, size_t big_at, uint64_t base_seq) {
    source s;
    source_init(&s, n, big_at, 40);
    assert_int_equal(snap_write(dir, 9, base_seq, source_next, &s, &skv_io_posix), SKV_OK);
    assert_int_equal(s.next, n);

    snap_info info;
    assert_int_equal(snap_find_latest(dir, &info), 1);
    assert_int_equal(info.base_seq, base_seq);
    char want_path[512];
    snap_name(want_path, sizeof want_path, dir, base_seq, ".snap");
    assert_string_equal(info.path, want_path);

    checker c = { &s, 0, 0 };
    assert_int_equal(snap_load(&info, check_entry, &c), SKV_OK);
    assert_int_equal(c.seen, n);
    assert_int_equal(info.entries, n);
    assert_int_equal(info.base_seq, base_seq);
    struct stat st;
    assert_int_equal(stat(want_path, &st), 0);
    assert_int_equal(info.bytes, (uint64_t)st.st_size);
    assert_string_equal(info.error, "");
    assert_int_equal(count_files(dir), 1);
    source_free(&s);
}

/* ---- known-answer file and round trips ------------------------------------------------------- */

static const char kat_file[] =
    "\x53\x4b\x56\x53\x4e\x41\x50\x31\x01\x00\x00\x00\x03\x00\x00\x00\x2a\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xe8\x5e\x3b\xa8"
    "\x22\x00\x00\x00\x37\xc4\x61\xab\x07\x00\x00\x00\x00\x00\x00\x00\x01\x01\x00\x00\x03\x00\x00\x00\x03\x00\x00\x00\x00\x68\xe5\xcf"
    "\x8b\x01\x00\x00\x6b\x00\x79\x76\x61\x6c\x1d\x00\x00\x00\xa4\x98\x02\x98\x2b\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x01\x00"
    "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\x53\x4b\x56\x53\x4e\x45\x4e\x44\x02\x00\x00\x00\x00\x00\x00\x00\x2a"
    "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x38\x20\xcc\xc4";
#define KAT_LEN (sizeof kat_file - 1)

typedef struct list_source {
    const wal_record *recs;
    size_t n, next;
} list_source;

static int list_next(void *arg, wal_record *r) {
    list_source *l = arg;
    if (l->next == l->n) return 0;
    *r = l->recs[l->next++];
    return 1;
}

static const wal_record kat_recs[] = {
    { 7, WAL_OP_PUT, 1, 1700000000000ull, { "k\0y", 3 }, { "val", 3 } },
    { 43, WAL_OP_PUT, 0, 0, { "\xff", 1 }, { "", 0 } },
};

/* Writes the known-answer snapshot (or n of its records) as base_seq 42 of shard 3. */
static void write_kat(const char *dir, size_t n) {
    list_source l = { kat_recs, n, 0 };
    assert_int_equal(snap_write(dir, 3, 42, list_next, &l, &skv_io_posix), SKV_OK);
}

static int kat_seen(void *arg, const wal_record *r) {
    size_t *i = arg;
    const wal_record *want = &kat_recs[*i];
    assert_int_equal(r->seq, want->seq);
    assert_int_equal(r->flags, want->flags);
    assert_int_equal(r->expires_ms, want->expires_ms);
    assert_int_equal(r->key.len, want->key.len);
    assert_memory_equal(r->key.ptr, want->key.ptr, want->key.len);
    assert_int_equal(r->value.len, want->value.len);
    (*i)++;
    return 0;
}

static void test_known_answer_file(void **state) {
    const char *dir = dir_of(state);
    write_kat(dir, 2);
    char path[512];
    snap_name(path, sizeof path, dir, 42, ".snap");
    size_t len;
    char *data = read_file(path, &len);
    assert_int_equal(len, KAT_LEN);
    assert_memory_equal(data, kat_file, KAT_LEN);
    free(data);

    snap_info info;
    memset(&info, 0, sizeof info);
    snprintf(info.path, sizeof info.path, "%s", path);
    size_t seen = 0;
    assert_int_equal(snap_load(&info, kat_seen, &seen), SKV_OK);
    assert_int_equal(seen, 2);
    assert_int_equal(info.entries, 2);
    assert_int_equal(info.base_seq, 42);
    assert_int_equal(info.bytes, KAT_LEN);
}

static void test_round_trip_empty(void **state) {
    round_trip(dir_of(state), 0, SIZE_MAX, 0);
    char path[512];
    snap_name(path, sizeof path, dir_of(state), 0, ".snap");
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 64); /* header + trailer */
}

static void test_round_trip_one(void **state) { round_trip(dir_of(state), 1, SIZE_MAX, 18446744073709551615ull); }

static void test_round_trip_many(void **state) { round_trip(dir_of(state), 50000, 25000, 123456789); }

static void test_round_trip_big_first_and_last(void **state) {
    round_trip(dir_of(state), 3, 0, 5);
    remove_tree(dir_of(state));
    assert_int_equal(mkdir(dir_of(state), 0700), 0);
    round_trip(dir_of(state), 3, 2, 6);
}

static void test_overwrite_same_base_and_stale_tmp(void **state) {
    const char *dir = dir_of(state);
    char tmp[512];
    snap_name(tmp, sizeof tmp, dir, 42, ".tmp");
    write_file(tmp, "stale garbage that is longer than nothing", 41);
    write_kat(dir, 1); /* truncates the stale .tmp */
    write_kat(dir, 2); /* replaces the .snap */
    assert_int_equal(count_files(dir), 1);
    char path[512];
    snap_name(path, sizeof path, dir, 42, ".snap");
    size_t len;
    char *data = read_file(path, &len);
    assert_int_equal(len, KAT_LEN);
    assert_memory_equal(data, kat_file, KAT_LEN);
    free(data);
}

static void test_load_stops_when_fn_says(void **state) {
    const char *dir = dir_of(state);
    source s;
    source_init(&s, 10, SIZE_MAX, 40);
    assert_int_equal(snap_write(dir, 1, 1, source_next, &s, &skv_io_posix), SKV_OK);
    snap_info info;
    assert_int_equal(snap_find_latest(dir, &info), 1);
    checker c = { &s, 0, 3 };
    assert_int_equal(snap_load(&info, check_entry, &c), 77);
    assert_int_equal(c.seen, 3);
    source_free(&s);
}

static void test_load_missing_file(void **state) {
    snap_info info;
    memset(&info, 0, sizeof info);
    snprintf(info.path, sizeof info.path, "%s/snap-00000000000000000001.snap", dir_of(state));
    size_t n = 0;
    assert_int_equal(snap_load(&info, ignore_entry, &n), SKV_EIO);
    assert_non_null(strstr(info.error, "cannot open"));
    assert_int_equal(n, 0);
}

/* The read window grows (through skv_try_malloc) only for a record larger
 * than it: loading ~600 KiB of small records needs no growth at all, a
 * 1 MiB value does, and when that allocation fails the load says so. */
static void test_load_window_grows_only_for_big_records(void **state) {
    const char *dir = dir_of(state);
    source s;
    source_init(&s, 4000, SIZE_MAX, 300);
    assert_int_equal(snap_write(dir, 1, 1, source_next, &s, &skv_io_posix), SKV_OK);
    snap_info info;
    assert_int_equal(snap_find_latest(dir, &info), 1);
    assert_true(info.base_seq == 1);
    checker c = { &s, 0, 0 };
    skv_mem_fail_after(1);
    int rc = snap_load(&info, check_entry, &c);
    skv_mem_fail_after(0);
    assert_int_equal(rc, SKV_OK);
    assert_true(info.bytes > (512u << 10));
    assert_int_equal(c.seen, 4000);
    source_free(&s);

    source_init(&s, 10, 5, 300);
    assert_int_equal(snap_write(dir, 1, 2, source_next, &s, &skv_io_posix), SKV_OK);
    assert_int_equal(snap_find_latest(dir, &info), 1);
    assert_true(info.base_seq == 2);
    c = (checker){ &s, 0, 0 };
    skv_mem_fail_after(1);
    rc = snap_load(&info, check_entry, &c);
    skv_mem_fail_after(0);
    assert_int_equal(rc, SKV_ENOMEM);
    assert_int_equal(c.seen, 5);
    assert_non_null(strstr(info.error, "out of memory"));
    c = (checker){ &s, 0, 0 };
    assert_int_equal(snap_load(&info, check_entry, &c), SKV_OK);
    assert_int_equal(c.seen, 10);
    source_free(&s);
}

/* ---- finding and dropping -------------------------------------------------------------------- */

static void test_find_latest(void **state) {
    const char *dir = dir_of(state);
    snap_info info;
    assert_int_equal(snap_find_latest(dir, &info), 0);

    char missing[512];
    snprintf(missing, sizeof missing, "%s/nope", dir);
    assert_int_equal(snap_find_latest(missing, &info), 0);

    touch(dir, "snap-00000000000000000005.snap");
    touch(dir, "snap-00000000000000000100.snap");
    touch(dir, "snap-00000000000000000099.snap");
    /* not snapshots: ignored and kept */
    const char *junk[] = {
        "snap-101.snap",
        "snap-000000000000000000200.snap",  /* 21 digits */
        "snap-99999999999999999999.snap",   /* 20 digits above UINT64_MAX */
        "snap-0000000000000000020a.snap",
        "snap-+0000000000000000200.snap",
        "snap-00000000000000000200.snap.bak",
        "snap-00000000000000000200.snapx",
        "xsnap-00000000000000000200.snap",
        "wal-00000000000000000200.log",
    };
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) touch(dir, junk[i]);
    char subdir[512];
    snprintf(subdir, sizeof subdir, "%s/snap-00000000000000000300.snap", dir);
    assert_int_equal(mkdir(subdir, 0700), 0);
    /* unfinished snapshots: removed */
    touch(dir, "snap-00000000000000000200.tmp");
    touch(dir, "snap-00000000000000000001.tmp");
    touch(dir, "snap-whatever.tmp");

    memset(&info, 0xAB, sizeof info);
    assert_int_equal(snap_find_latest(dir, &info), 1);
    assert_int_equal(info.base_seq, 100);
    char want[512];
    snap_name(want, sizeof want, dir, 100, ".snap");
    assert_string_equal(info.path, want);

    assert_false(file_exists(dir, "snap-00000000000000000200.tmp"));
    assert_false(file_exists(dir, "snap-00000000000000000001.tmp"));
    assert_false(file_exists(dir, "snap-whatever.tmp"));
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) assert_true(file_exists(dir, junk[i]));
    assert_int_equal(count_files(dir), 3 + sizeof junk / sizeof junk[0] + 1);
}

static void test_find_latest_only_tmp(void **state) {
    const char *dir = dir_of(state);
    touch(dir, "snap-00000000000000000007.tmp");
    snap_info info;
    assert_int_equal(snap_find_latest(dir, &info), 0);
    assert_int_equal(count_files(dir), 0);
}

static void test_find_latest_unreadable_dir(void **state) {
    char notdir[512];
    snprintf(notdir, sizeof notdir, "%s/plainfile", dir_of(state));
    write_file(notdir, "x", 1);
    snap_info info;
    assert_int_equal(snap_find_latest(notdir, &info), SKV_EIO);
    assert_int_equal(snap_drop_older(notdir, 5), SKV_EIO);
}

static void test_drop_older(void **state) {
    const char *dir = dir_of(state);
    touch(dir, "snap-00000000000000000005.snap");
    touch(dir, "snap-00000000000000000010.snap");
    touch(dir, "snap-00000000000000000020.snap");
    touch(dir, "snap-00000000000000000003.tmp");
    touch(dir, "snap-3.snap");
    touch(dir, "wal-00000000000000000001.log");

    assert_int_equal(snap_drop_older(dir, 10), SKV_OK);
    assert_false(file_exists(dir, "snap-00000000000000000005.snap"));
    assert_true(file_exists(dir, "snap-00000000000000000010.snap"));
    assert_true(file_exists(dir, "snap-00000000000000000020.snap"));
    assert_true(file_exists(dir, "snap-00000000000000000003.tmp"));
    assert_true(file_exists(dir, "snap-3.snap"));
    assert_true(file_exists(dir, "wal-00000000000000000001.log"));

    assert_int_equal(snap_drop_older(dir, 10), SKV_OK); /* nothing left to drop */
    assert_int_equal(snap_drop_older(dir, UINT64_MAX), SKV_OK);
    assert_int_equal(count_files(dir), 3);

    char missing[512];
    snprintf(missing, sizeof missing, "%s/nope", dir);
    assert_int_equal(snap_drop_older(missing, 10), SKV_OK);
}

/* ---- corruption ------------------------------------------------------------------------------ */

/* Writes data as the snapshot file of base_seq 42 and loads it. */
static int load_bytes(const char *dir, const char *data, size_t len, snap_info *info) {
    memset(info, 0, sizeof *info);
    snap_name(info->path, sizeof info->path, dir, 42, ".snap");
    write_file(info->path, data, len);
    size_t n = 0;
    return snap_load(info, ignore_entry, &n);
}

static void expect_corrupt(const char *dir, const char *data, size_t len, uint64_t offset) {
    snap_info info;
    assert_int_equal(load_bytes(dir, data, len, &info), SKV_EIO);
    assert_true(info.error[0] != '\0');
    if (offset != UINT64_MAX) assert_int_equal(info.error_offset, offset);
}

static void test_every_byte_changed(void **state) {
    const char *dir = dir_of(state);
    static const unsigned char flips[] = { 0x01, 0x80, 0xff };
    char data[KAT_LEN];
    snap_info info;
    assert_int_equal(load_bytes(dir, kat_file, KAT_LEN, &info), SKV_OK);
    for (size_t i = 0; i < KAT_LEN; i++) {
        for (size_t f = 0; f < sizeof flips; f++) {
            memcpy(data, kat_file, KAT_LEN);
            data[i] = (char)(data[i] ^ flips[f]);
            assert_int_equal(load_bytes(dir, data, KAT_LEN, &info), SKV_EIO);
            assert_true(info.error[0] != '\0');
            assert_true(info.error_offset <= KAT_LEN);
        }
    }
}

static void test_every_truncation(void **state) {
    const char *dir = dir_of(state);
    for (size_t len = 0; len < KAT_LEN; len++) {
        snap_info info;
        assert_int_equal(load_bytes(dir, kat_file, len, &info), SKV_EIO);
        assert_true(info.error[0] != '\0');
        assert_true(info.error_offset <= len);
    }
}

static void test_bytes_after_trailer(void **state) {
    const char *dir = dir_of(state);
    char data[KAT_LEN + 64];
    memcpy(data, kat_file, KAT_LEN);
    memset(data + KAT_LEN, 0, 64);
    expect_corrupt(dir, data, KAT_LEN + 1, KAT_LEN);
    expect_corrupt(dir, data, KAT_LEN + 64, KAT_LEN);
    memcpy(data + KAT_LEN, kat_file + KAT_LEN - 32, 32); /* the trailer twice */
    expect_corrupt(dir, data, KAT_LEN + 32, KAT_LEN);
}

/* Builds a snapshot by hand: header fields, encoded records, trailer fields. */
static size_t build_file(char *out, uint32_t version, uint64_t head_seq, const wal_record *recs, size_t n,
                         uint64_t count, uint64_t tail_seq) {
    skv_buf b;
    skv_buf_init(&b);
    char h[32];
    memcpy(h, "SKVSNAP1", 8);
    memcpy(h + 8, &version, 4); /* the test host is little-endian (x86-64) */
    uint32_t shard = 3, zero = 0;
    memcpy(h + 12, &shard, 4);
    memcpy(h + 16, &head_seq, 8);
    memcpy(h + 24, &zero, 4);
    uint32_t crc = crc32c(0, h, 28);
    memcpy(h + 28, &crc, 4);
    skv_buf_append(&b, h, 32);
    for (size_t i = 0; i < n; i++) wal_record_encode(&b, &recs[i]);
    char t[32];
    memcpy(t, "SKVSNEND", 8);
    memcpy(t + 8, &count, 8);
    memcpy(t + 16, &tail_seq, 8);
    memcpy(t + 24, &zero, 4);
    crc = crc32c(0, t, 28);
    memcpy(t + 28, &crc, 4);
    skv_buf_append(&b, t, 32);
    memcpy(out, b.data, b.len);
    size_t len = b.len;
    skv_buf_free(&b);
    return len;
}

static void test_structural_mismatches(void **state) {
    const char *dir = dir_of(state);
    char data[512];
    snap_info info;
    size_t len = build_file(data, 1, 42, kat_recs, 2, 2, 42);
    assert_int_equal(len, KAT_LEN);
    assert_memory_equal(data, kat_file, KAT_LEN); /* the hand-built file matches the writer's */
    assert_int_equal(load_bytes(dir, data, len, &info), SKV_OK);

    size_t trailer_at = KAT_LEN - 32;
    len = build_file(data, 1, 42, kat_recs, 2, 3, 42); /* count too high */
    expect_corrupt(dir, data, len, trailer_at + 8);
    len = build_file(data, 1, 42, kat_recs, 2, 1, 42); /* count too low */
    expect_corrupt(dir, data, len, trailer_at + 8);
    len = build_file(data, 1, 42, kat_recs, 1, 2, 42); /* one record missing */
    expect_corrupt(dir, data, len, UINT64_MAX);
    len = build_file(data, 1, 42, kat_recs, 2, 2, 41); /* trailer base_seq differs */
    expect_corrupt(dir, data, len, trailer_at + 16);
    len = build_file(data, 2, 42, kat_recs, 2, 2, 42); /* unknown version */
    expect_corrupt(dir, data, len, 8);
    len = build_file(data, 1, 43, kat_recs, 2, 2, 43); /* header disagrees with the name */
    expect_corrupt(dir, data, len, 16);
    len = build_file(data, 1, 42, NULL, 0, 0, 42); /* no records at all is fine */
    assert_int_equal(load_bytes(dir, data, len, &info), SKV_OK);
    assert_int_equal(info.entries, 0);

    wal_record del[2] = { kat_recs[0], kat_recs[1] };
    del[1].op = WAL_OP_DELETE;
    del[1].value = skv_slice_make("", 0);
    len = build_file(data, 1, 42, del, 2, 2, 42); /* a DELETE has no place in a snapshot */
    expect_corrupt(dir, data, len, 32 + wal_record_size(3, 3));
}

static void test_name_decides_nothing_when_foreign(void **state) {
    const char *dir = dir_of(state);
    write_kat(dir, 2);
    char from[512], to[512];
    snap_name(from, sizeof from, dir, 42, ".snap");
    snprintf(to, sizeof to, "%s/copy-of-a-snapshot", dir);
    assert_int_equal(rename(from, to), 0);
    snap_info info;
    memset(&info, 0, sizeof info);
    snprintf(info.path, sizeof info.path, "%s", to);
    size_t n = 0;
    assert_int_equal(snap_load(&info, ignore_entry, &n), SKV_OK);
    assert_int_equal(info.base_seq, 42);
    assert_int_equal(n, 2);

    snap_name(info.path, sizeof info.path, dir, 7, ".snap");
    assert_int_equal(rename(to, info.path), 0);
    assert_int_equal(snap_load(&info, ignore_entry, &n), SKV_EIO);
    assert_int_equal(info.error_offset, 16);
}

/* ---- fault injection ------------------------------------------------------------------------- */

static struct {
    long writes, fail_write_at;
    int write_err;
    long fsyncs, fail_fsync_at;
    int fsync_err;
    size_t max_chunk;
    long eintr_every;
} fault;

static ssize_t fault_write(int fd, const void *buf, size_t len) {
    fault.writes++;
    if (fault.writes == fault.fail_write_at) return fault.write_err;
    if (fault.eintr_every && fault.writes % fault.eintr_every == 0) return -EINTR;
    if (fault.max_chunk && len > fault.max_chunk) len = fault.max_chunk;
    return skv_io_posix.write(fd, buf, len);
}

static int fault_fsync(int fd) {
    fault.fsyncs++;
    if (fault.fsyncs == fault.fail_fsync_at) return fault.fsync_err;
    return skv_io_posix.fsync(fd);
}

static int no_fdatasync(int fd) {
    (void)fd;
    fail_msg("snap must fsync, not fdatasync");
    return -EIO;
}

static int no_ftruncate(int fd, off_t len) {
    (void)fd;
    (void)len;
    fail_msg("snap never truncates");
    return -EIO;
}

static const skv_io fault_io = { fault_write, no_fdatasync, fault_fsync, no_ftruncate };

/* About 2 MiB of entries: several buffer flushes. */
static int write_faulty(const char *dir, size_t n) {
    source s;
    source_init(&s, n, SIZE_MAX, 2000);
    int rc = snap_write(dir, 2, 77, source_next, &s, &fault_io);
    source_free(&s);
    return rc;
}

static void test_write_fails_on_each_write(void **state) {
    const char *dir = dir_of(state);
    memset(&fault, 0, sizeof fault);
    assert_int_equal(write_faulty(dir, 2000), SKV_OK);
    long total = fault.writes;
    assert_true(total >= 4); /* the buffer was flushed several times */
    assert_int_equal(fault.fsyncs, 1);
    assert_int_equal(snap_drop_older(dir, UINT64_MAX), SKV_OK);
    assert_int_equal(count_files(dir), 0);

    static const struct { int err, want; } cases[] = {
        { -ENOSPC, SKV_ENOSPACE }, { -EFBIG, SKV_ENOSPACE }, { -EDQUOT, SKV_ENOSPACE }, { -EIO, SKV_EIO },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (long at = 1; at <= total; at++) {
            memset(&fault, 0, sizeof fault);
            fault.fail_write_at = at;
            fault.write_err = cases[c].err;
            assert_int_equal(write_faulty(dir, 2000), cases[c].want);
            assert_int_equal(fault.writes, at); /* stopped at the first failure */
            assert_int_equal(fault.fsyncs, 0);
            assert_int_equal(count_files(dir), 0);
        }
    }
}

static void test_write_fails_on_fsync(void **state) {
    const char *dir = dir_of(state);
    memset(&fault, 0, sizeof fault);
    fault.fail_fsync_at = 1;
    fault.fsync_err = -EIO;
    assert_int_equal(write_faulty(dir, 100), SKV_EIO);
    assert_int_equal(count_files(dir), 0);

    memset(&fault, 0, sizeof fault);
    fault.fail_fsync_at = 1;
    fault.fsync_err = -ENOSPC;
    assert_int_equal(write_faulty(dir, 100), SKV_ENOSPACE);
    assert_int_equal(count_files(dir), 0);
}

static void test_short_writes_and_eintr(void **state) {
    const char *dir = dir_of(state);
    memset(&fault, 0, sizeof fault);
    fault.max_chunk = 777;
    fault.eintr_every = 5;
    source s;
    source_init(&s, 3000, 1500, 300);
    assert_int_equal(snap_write(dir, 2, 8, source_next, &s, &fault_io), SKV_OK);
    assert_true(fault.writes > 1000);
    snap_info info;
    assert_int_equal(snap_find_latest(dir, &info), 1);
    checker c = { &s, 0, 0 };
    assert_int_equal(snap_load(&info, check_entry, &c), SKV_OK);
    assert_int_equal(c.seen, 3000);
    source_free(&s);
}

static int failing_next(void *arg, wal_record *r) {
    size_t *calls = arg;
    if (++*calls < 3) return list_next(&(list_source){ kat_recs, 1, 0 }, r);
    return SKV_ENOMEM;
}

static int bad_entry_next(void *arg, wal_record *r) {
    int *which = arg;
    *r = kat_recs[0];
    if (*which == 0) r->op = WAL_OP_DELETE;
    if (*which == 1) r->key = skv_slice_make("", 0);
    return 1;
}

static void test_producer_failures(void **state) {
    const char *dir = dir_of(state);
    size_t calls = 0;
    assert_int_equal(snap_write(dir, 1, 1, failing_next, &calls, &skv_io_posix), SKV_ENOMEM);
    assert_int_equal(calls, 3);
    assert_int_equal(count_files(dir), 0);
    for (int which = 0; which < 2; which++) {
        assert_int_equal(snap_write(dir, 1, 1, bad_entry_next, &which, &skv_io_posix), SKV_EINVAL);
        assert_int_equal(count_files(dir), 0);
    }
    char missing[512];
    snprintf(missing, sizeof missing, "%s/nope", dir);
    list_source l = { kat_recs, 2, 0 };
    assert_int_equal(snap_write(missing, 1, 1, list_next, &l, &skv_io_posix), SKV_EIO);
}

int main(void) {
    log_init(LOG_LEVEL_OFF, LOG_FORMAT_TEXT); /* the fault tests fail on purpose hundreds of times */
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup_dir, teardown_dir)
    const struct CMUnitTest tests[] = {
        T(test_known_answer_file),
        T(test_round_trip_empty),
        T(test_round_trip_one),
        T(test_round_trip_many),
        T(test_round_trip_big_first_and_last),
        T(test_overwrite_same_base_and_stale_tmp),
        T(test_load_stops_when_fn_says),
        T(test_load_missing_file),
        T(test_load_window_grows_only_for_big_records),
        T(test_find_latest),
        T(test_find_latest_only_tmp),
        T(test_find_latest_unreadable_dir),
        T(test_drop_older),
        T(test_every_byte_changed),
        T(test_every_truncation),
        T(test_bytes_after_trailer),
        T(test_structural_mismatches),
        T(test_name_decides_nothing_when_foreign),
        T(test_write_fails_on_each_write),
        T(test_write_fails_on_fsync),
        T(test_short_writes_and_eintr),
        T(test_producer_failures),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
