/*
 * api_internal — helpers shared by the route handlers in api.c and seed.c.
 * Not part of the api contract; nothing outside those two files includes it.
 */
#ifndef SKV_API_INTERNAL_H
#define SKV_API_INTERNAL_H

#include "api.h"

/* The method mask of read-only routes. */
#define API_GET_HEAD (1u << HTTP_M_GET | 1u << HTTP_M_HEAD)

/* 1 when req's method is in mask (bits 1 << enum http_method); otherwise
 * answers OPTIONS (204), an unknown method (501) or 405, all with Allow. */
int api_method_allowed(const http_request *req, reply *r, const char *allow, unsigned mask);

/* 1 when a Content-Type may carry a JSON body (none, application/json,
 * text/plain, form-urlencoded as the seeds' clients send, or any +json type). */
int api_json_content_type(skv_slice ct);

/* ?durability=sync|async into *async; 0 after answering 400 bad_durability. */
int api_parse_durability(const http_request *req, int *async, reply *r);
/* The Idempotency-Key header into *out: 0 when absent, 1 when valid (1 to
 * 255 visible ASCII characters), -1 after answering 400 bad_idempotency_key. */
int api_idempotency_key(const http_request *req, skv_slice *out, reply *r);
/* The 507 memory_limit answer of a write refused at --max-memory / --max-keys. */
void api_reply_memory_limit(reply *r);

/* Key/value limits; 0 after answering 400 key_too_large / missing_key or 413. */
int api_check_key(api_worker *w, skv_slice key, reply *r);
int api_check_value(api_worker *w, size_t len, reply *r);

/* Answers the error for a shard_apply/shard_get code (404, 412, 507, 500). */
void api_reply_write_error(reply *r, int rc, skv_slice key);

/*
 * Answers of writes.  A write route describes its success answer with a
 * render function (status, ETag, X-Shard and a JSON body, from the write's
 * result); api_write_answer() applies the write and sends that answer.  The
 * same rendering is what an Idempotency-Key remembers, so a retry gets the
 * first answer byte for byte (plus "Idempotent-Replayed: true").
 *
 * Encoded answer (also stored durably in idempotency records; version 1):
 *   u8 version, u16 status, u64 etag version (0 = no ETag), u32 shard
 *   (UINT32_MAX = no X-Shard), then the JSON body.
 */
#define API_NO_SHARD UINT32_MAX
/* Starts an answer in out (reset first); append the JSON body after it. */
void api_answer_begin(skv_buf *out, int status, uint64_t etag, uint32_t shard);
/* Sends an encoded answer through r; replayed adds Idempotent-Replayed. */
void api_answer_send(reply *r, skv_slice answer, int replayed);

/*
 * Places wr by wr->key, applies it (counted in the shard metrics) and answers: on success the
 * answer rendered by render(arg, res, out) (held until durable, 202 when
 * async); on error the matching JSON error.  Honours the Idempotency-Key
 * request header (1..255 visible ASCII characters): the first request's
 * answer is remembered durably for --idempotency-window in the write's
 * shard and replayed to retries with the same method, target and body;
 * another request with the same key gets 422 idempotency_key_reused, a
 * retry while the first is still waiting for the disk 409
 * idempotency_in_progress.  body is the request body (for the fingerprint).
 * Returns the shard_apply code (0 on success); the answer is always sent.
 */
typedef void (*api_render_fn)(void *arg, const shard_result *res, skv_buf *out);
int api_write_answer(api_worker *w, const http_request *req, skv_slice body, reply *r, shard_write *wr,
                     api_render_fn render, void *arg);

/* Places and reads one key; fn runs under the shard lock. */
int api_read(api_worker *w, skv_slice key, uint32_t *shard_out, shard_read_fn fn, void *arg);

/* Appends the value as JSON: raw when it is JSON text (SHARD_VAL_JSON),
 * else as a JSON string. */
void api_append_value_json(skv_buf *b, const ht_entry *e);

/* seed.c: the route id of a seed route, or -1 when the path is not one. */
int seed_route_of(const http_request *req);
/* seed.c: handles the seed systems' routes; returns the route id, or -1
 * when the path is not one of them (nothing written). */
int seed_dispatch(api_worker *w, const http_request *req, skv_slice body, reply *r);

#endif
