#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "err.h"
#include "log.h"
#include "mem.h"

int store_new(const ring_config *cfg, store **out) {
    ring *r = NULL;
    ring_config c = *cfg;
    c.version = 1;
    int rc = ring_new(&c, &r);
    if (rc) return rc;
    store *st = skv_calloc(1, sizeof *st);
    st->nshards = cfg->shards;
    st->shards = skv_calloc(cfg->shards, sizeof *st->shards);
    for (uint32_t i = 0; i < cfg->shards; i++) shard_init(&st->shards[i], i);
    atomic_init(&st->map, r);
    *out = st;
    return SKV_OK;
}

void store_free(store *st) {
    if (!st) return;
    for (uint32_t i = 0; i < st->nshards; i++) shard_destroy(&st->shards[i]);
    free(st->shards);
    ring_free(atomic_load(&st->map));
    free(st);
}

uint64_t store_key_hash(skv_slice key) { return XXH3_64bits(key.ptr, key.len); }

size_t store_pinned_key(int64_t user_id, char *out) {
    return (size_t)snprintf(out, 32, STORE_PINNED_PREFIX "%lld", (long long)user_id);
}

/* 1 and *shard when key is "store:<int64>". */
static int pinned_shard(skv_slice key, uint32_t nshards, uint32_t *shard_out) {
    const size_t plen = sizeof(STORE_PINNED_PREFIX) - 1;
    if (key.len <= plen || memcmp(key.ptr, STORE_PINNED_PREFIX, plen) != 0) return 0;
    int64_t id;
    if (skv_slice_to_i64(skv_slice_make(key.ptr + plen, key.len - plen), &id) != SKV_OK) return 0;
    int64_t m = id % (int64_t)nshards;
    if (m < 0) m += nshards; /* Python's modulo: the seed's userId % N is never negative */
    *shard_out = (uint32_t)m;
    return 1;
}

skv_slice store_internal_key(skv_buf *out, char ns, uint32_t shard_id, const void *name, size_t name_len) {
    unsigned char h[STORE_INTERNAL_HEADER] = { 0, (unsigned char)ns, (unsigned char)(shard_id >> 24),
                                               (unsigned char)(shard_id >> 16), (unsigned char)(shard_id >> 8),
                                               (unsigned char)shard_id };
    skv_buf_reset(out);
    skv_buf_append(out, h, sizeof h);
    if (name_len) skv_buf_append(out, name, name_len);
    return skv_slice_make(out->data, out->len);
}

int store_internal_key_parse(skv_slice key, char *ns, uint32_t *shard_id, skv_slice *name) {
    if (key.len < STORE_INTERNAL_HEADER || key.ptr[0] != '\0') return 0;
    const unsigned char *p = (const unsigned char *)key.ptr;
    *ns = (char)p[1];
    *shard_id = (uint32_t)p[2] << 24 | (uint32_t)p[3] << 16 | (uint32_t)p[4] << 8 | p[5];
    *name = skv_slice_make(key.ptr + STORE_INTERNAL_HEADER, key.len - STORE_INTERNAL_HEADER);
    return 1;
}

/* The placement decision for key, given its XXH3 hash when known (has_h). */
static uint32_t place(store *st, skv_slice key, int has_h, uint64_t h) {
    uint32_t id;
    char ns;
    skv_slice name;
    if (store_internal_key_parse(key, &ns, &id, &name)) return id % st->nshards;
    if (pinned_shard(key, st->nshards, &id)) {
        log_debug("Key '%.*s' pinned by userId %% %u to shard %u", (int)(key.len > 200 ? 200 : key.len), key.ptr,
                  st->nshards, id);
        return id;
    }
    ring *r = store_map(st);
    ring_point p;
    if (has_h && ring_get_config(r)->hash == RING_HASH_XXH3) p = (ring_point){ h, 0 };
    else p = ring_hash_key(r, key.ptr, key.len);
    id = ring_shard_for_point(r, p, key.ptr, key.len);
    if (!LOG_ENABLED(LOG_LEVEL_DEBUG)) return id;
    char hash[48];
    ring_point_format(r, p, hash);
    log_debug("Key '%.*s' (hash: %s) assigned to shard %u", (int)(key.len > 200 ? 200 : key.len), key.ptr, hash, id);
    return id;
}

uint32_t store_shard_for_key(store *st, skv_slice key) { return place(st, key, 0, 0); }

uint32_t store_locate(store *st, skv_slice key, uint64_t *key_hash) {
    *key_hash = store_key_hash(key);
    return place(st, key, 1, *key_hash);
}

void store_totals(store *st, uint64_t *keys, uint64_t *bytes) {
    *keys = *bytes = 0;
    for (uint32_t i = 0; i < st->nshards; i++) {
        *keys += shard_keys(&st->shards[i]);
        *bytes += shard_bytes(&st->shards[i]);
    }
}
