/*
 * libFuzzer target for the wal record codec.
 *
 * The input is a segment's record area.  It is decoded record by record,
 * twice: as given, and as a copy whose record CRCs were recomputed along the
 * chain of declared lengths (random bytes almost never carry a right CRC,
 * so without the copy the field checks behind the CRC would go unexplored).
 * For every position:
 *   - the result is one of SKV_OK, WAL_NEED_MORE, SKV_EINVAL, and consumed
 *     is written only on SKV_OK, within what was available;
 *   - a decoded record satisfies every rule of wal.h, its slices lie inside
 *     the record, and encoding it again gives back the identical bytes;
 *   - every shorter prefix of a decoded record is WAL_NEED_MORE;
 * after SKV_EINVAL the next byte is tried, after WAL_NEED_MORE the input is
 * done.  Any violation aborts, which libFuzzer reports as a crash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "crc32c.h"
#include "err.h"
#include "wal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                 \
        }                                                                            \
    } while (0)

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void check_slice_inside(skv_slice s, const char *start, size_t len) {
    CHECK(s.ptr != NULL || s.len == 0);
    if (s.ptr == NULL) return;
    CHECK(s.ptr >= start && s.ptr <= start + len);
    CHECK(s.len <= (size_t)(start + len - s.ptr));
}

static void check_record(const char *rec, size_t avail, const wal_record *r, size_t consumed) {
    CHECK(consumed >= WAL_RECORD_HEADER + WAL_BODY_FIXED);
    CHECK(consumed <= avail);
    CHECK(consumed - WAL_RECORD_HEADER <= WAL_MAX_BODY);
    CHECK(r->op == WAL_OP_PUT || r->op == WAL_OP_DELETE);
    CHECK(r->flags <= 0xff);
    CHECK(r->key.len >= 1);
    CHECK(r->op == WAL_OP_PUT || r->value.len == 0);
    CHECK(consumed == wal_record_size(r->key.len, r->value.len));
    check_slice_inside(r->key, rec, consumed);
    check_slice_inside(r->value, rec, consumed);

    skv_buf b;
    skv_buf_init(&b);
    wal_record_encode(&b, r);
    CHECK(b.len == consumed);
    CHECK(memcmp(b.data, rec, consumed) == 0);
    skv_buf_free(&b);

    /* Every prefix needs more; checking the short ones and the longest
     * one covers all branches without quadratic work. */
    for (size_t a = 0; a < consumed; a = a < 16 ? a + 1 : consumed - 1) {
        wal_record r2;
        size_t c2 = 0;
        CHECK(wal_record_decode(rec, a, &r2, &c2) == WAL_NEED_MORE);
        CHECK(c2 == 0);
        if (a == consumed - 1) break;
    }
}

static void decode_all(const uint8_t *p, size_t n) {
    size_t off = 0;
    while (off <= n) {
        wal_record r;
        size_t consumed = SIZE_MAX;
        const char *rec = (const char *)p + off;
        int rc = wal_record_decode(rec, n - off, &r, &consumed);
        CHECK(rc == SKV_OK || rc == WAL_NEED_MORE || rc == SKV_EINVAL);
        if (rc != SKV_OK) {
            CHECK(consumed == SIZE_MAX);
            if (rc == WAL_NEED_MORE) break;
            off++;
            continue;
        }
        check_record(rec, n - off, &r, consumed);
        off += consumed;
    }
}

/* Recomputes the CRC of each record along the chain of declared lengths. */
static void fix_crcs(uint8_t *p, size_t n) {
    size_t off = 0;
    while (n - off >= WAL_RECORD_HEADER) {
        uint32_t body_len = le32(p + off);
        if (body_len < WAL_BODY_FIXED || body_len > n - off - WAL_RECORD_HEADER) break;
        uint32_t crc = crc32c(0, p + off + WAL_RECORD_HEADER, body_len);
        for (int i = 0; i < 4; i++) p[off + 4 + i] = (uint8_t)(crc >> (8 * i));
        off += WAL_RECORD_HEADER + body_len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    decode_all(data, size);
    if (size >= WAL_RECORD_HEADER) {
        uint8_t *copy = malloc(size);
        CHECK(copy != NULL);
        memcpy(copy, data, size);
        fix_crcs(copy, size);
        decode_all(copy, size);
        free(copy);
    }
    return 0;
}
