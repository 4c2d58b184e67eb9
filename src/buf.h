/*
 * buf — byte slices and growable byte buffers.
 *
 * skv_slice is a borrowed view (pointer + length) into memory somebody else
 * owns; it is never freed through the slice.  Parsers return slices into the
 * caller's buffer (zero copy), valid until that buffer is modified.
 *
 * skv_buf owns its bytes.  Growth goes through skv_realloc (aborts on OOM):
 * every buffer in the server is bounded by a configured limit before it
 * grows, so growth is never client-unbounded.  data is NUL-terminated
 * whenever cap > 0 (len excludes the terminator) so that it can be handed to
 * C string functions when it holds text.
 */
#ifndef SKV_BUF_H
#define SKV_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

typedef struct skv_slice {
    const char *ptr;
    size_t len;
} skv_slice;

#define SKV_SLICE_LIT(s) ((skv_slice){ (s), sizeof(s) - 1 })

static inline skv_slice skv_slice_make(const char *p, size_t n) { return (skv_slice){ p, n }; }
skv_slice skv_slice_cstr(const char *s);
/* 1 when a and b hold the same bytes. */
int skv_slice_eq(skv_slice a, skv_slice b);
/* 1 when a equals the C string s, ASCII case-insensitively. */
int skv_slice_ieq_cstr(skv_slice a, const char *s);
int skv_slice_eq_cstr(skv_slice a, const char *s);
/* Parses a whole slice as an unsigned/signed decimal integer without sign
 * surprises: no spaces, no '+', no leading zeros beyond "0", no overflow.
 * Returns 0 or SKV_EINVAL / SKV_ERANGE. */
int skv_slice_to_u64(skv_slice s, uint64_t *out);
int skv_slice_to_i64(skv_slice s, int64_t *out);

typedef struct skv_buf {
    char *data;
    size_t len;
    size_t cap;
} skv_buf;

void skv_buf_init(skv_buf *b);
void skv_buf_free(skv_buf *b);
/* Ensures room for extra more bytes (plus the terminator). */
void skv_buf_reserve(skv_buf *b, size_t extra);
void skv_buf_append(skv_buf *b, const void *data, size_t len);
void skv_buf_append_cstr(skv_buf *b, const char *s);
void skv_buf_append_u64(skv_buf *b, uint64_t v);
void skv_buf_append_i64(skv_buf *b, int64_t v);
void skv_buf_printf(skv_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void skv_buf_vprintf(skv_buf *b, const char *fmt, va_list ap);
/* Length of the valid UTF-8 sequence at s (1..4 bytes, n available), or 0
 * when invalid (overlong, surrogate, above U+10FFFF, cut short). */
size_t skv_utf8_seq_len(const unsigned char *s, size_t n);

/* Appends s as the inside of a JSON string (escapes quotes, controls and
 * invalid UTF-8 as \ufffd). */
void skv_buf_append_json_str(skv_buf *b, const char *s, size_t len);
/* Drops the first n bytes (memmove of the rest). */
void skv_buf_consume(skv_buf *b, size_t n);
static inline void skv_buf_reset(skv_buf *b) { b->len = 0; if (b->cap) b->data[0] = '\0'; }

/* Formats v in decimal into out (at least 21 bytes); returns the length. */
size_t skv_u64_to_dec(uint64_t v, char *out);

#endif
