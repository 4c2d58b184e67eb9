#include "sweeper.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "err.h"
#include "log.h"
#include "mem.h"

#define SWEEP_BUCKETS 256          /* table positions visited per shard per slice */
#define SWEEP_AGAIN_RATIO 4        /* another slice at once when >= 1/4 of a slice expired */
#define SWEEP_MAX_SLICES 16        /* ... but at most this many per interval */
#define EVICT_SAMPLES 5            /* entries compared per eviction (Redis's maxmemory-samples) */
#define EVICT_MAX_PER_WRITE 64     /* evictions one write may cause before it is refused */

struct sweeper {
    store *st;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    uint64_t *cursors;             /* [nshards] */
    sweeper_task tasks[SWEEPER_MAX_TASKS];
    size_t ntasks;
};

static void sweep_shard(sweeper *sw, uint32_t id) {
    shard *s = store_shard(sw->st, id);
    for (int i = 0; i < SWEEP_MAX_SLICES; i++) {
        uint64_t keys = shard_keys(s);
        size_t removed = shard_expire_some(s, &sw->cursors[id], SWEEP_BUCKETS);
        if (removed == 0 || removed * SWEEP_AGAIN_RATIO < (keys < SWEEP_BUCKETS ? keys : SWEEP_BUCKETS)) break;
    }
}

static void *sweeper_main(void *arg) {
    sweeper *sw = arg;
    pthread_mutex_lock(&sw->mu);
    while (!sw->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += SWEEP_INTERVAL_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&sw->cv, &sw->mu, &ts);
        if (sw->stop) break;
        pthread_mutex_unlock(&sw->mu);
        for (uint32_t id = 0; id < sw->st->nshards; id++) sweep_shard(sw, id);
        for (size_t i = 0; i < sw->ntasks; i++) sw->tasks[i].fn(sw->tasks[i].arg);
        pthread_mutex_lock(&sw->mu);
    }
    pthread_mutex_unlock(&sw->mu);
    return NULL;
}

int sweeper_start(store *st, const skv_config *cfg, const sweeper_task *tasks, size_t ntasks, sweeper **out) {
    (void)cfg;
    sweeper *sw = skv_calloc(1, sizeof *sw);
    sw->st = st;
    for (size_t i = 0; i < ntasks && i < SWEEPER_MAX_TASKS; i++) sw->tasks[sw->ntasks++] = tasks[i];
    sw->cursors = skv_calloc(st->nshards, sizeof *sw->cursors);
    pthread_mutex_init(&sw->mu, NULL);
    pthread_cond_init(&sw->cv, NULL);
    if (pthread_create(&sw->thread, NULL, sweeper_main, sw) != 0) {
        log_error("cannot start the expiry thread");
        pthread_mutex_destroy(&sw->mu);
        pthread_cond_destroy(&sw->cv);
        free(sw->cursors);
        free(sw);
        return SKV_ESYS;
    }
    *out = sw;
    return SKV_OK;
}

void sweeper_stop(sweeper *sw) {
    if (!sw) return;
    pthread_mutex_lock(&sw->mu);
    sw->stop = 1;
    pthread_cond_signal(&sw->cv);
    pthread_mutex_unlock(&sw->mu);
    pthread_join(sw->thread, NULL);
    pthread_mutex_destroy(&sw->mu);
    pthread_cond_destroy(&sw->cv);
    free(sw->cursors);
    free(sw);
}

static int over_limit(store *st, const skv_config *cfg, size_t bytes) {
    uint64_t keys, used;
    store_totals(st, &keys, &used);
    if (cfg->max_keys && keys >= cfg->max_keys) return 1;
    return cfg->max_memory && used + bytes > cfg->max_memory;
}

/* xorshift64*: cheap sampling positions, no shared state. */
static uint64_t next_rnd(uint64_t *x) {
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return *x * 0x2545F4914F6CDD1Dull;
}

int sweeper_admit(store *st, const skv_config *cfg, size_t bytes, uint64_t rnd) {
    if (!sweeper_limited(cfg) || !over_limit(st, cfg, bytes)) return SKV_OK;
    if (cfg->eviction != EVICT_LRU) return SKV_ENOMEM;
    uint64_t x = rnd | 1;
    for (int i = 0; i < EVICT_MAX_PER_WRITE; i++) {
        /* Evict from the shard holding the most bytes among two random ones. */
        uint32_t a = (uint32_t)(next_rnd(&x) % st->nshards), b = (uint32_t)(next_rnd(&x) % st->nshards);
        if (shard_user_keys(store_shard(st, a)) == 0) a = b;
        if (shard_user_keys(store_shard(st, b)) == 0) b = a;
        uint32_t id = shard_bytes(store_shard(st, a)) >= shard_bytes(store_shard(st, b)) ? a : b;
        uint64_t freed = 0;
        int rc = shard_evict_one(store_shard(st, id), EVICT_SAMPLES, next_rnd(&x), &freed);
        if (rc == SKV_ENOTFOUND) {
            /* That shard has no cache keys: try every shard once before giving up. */
            for (uint32_t j = 0; j < st->nshards && rc == SKV_ENOTFOUND; j++)
                rc = shard_evict_one(store_shard(st, j), EVICT_SAMPLES, next_rnd(&x), &freed);
            if (rc == SKV_ENOTFOUND) return SKV_ENOMEM;
        }
        if (rc != SKV_OK) return rc == SKV_ENOMEM ? SKV_ENOMEM : rc;
        if (!over_limit(st, cfg, bytes)) return SKV_OK;
    }
    return SKV_ENOMEM;
}

void sweeper_totals_get(store *st, sweeper_totals *out) {
    *out = (sweeper_totals){ 0 };
    store_totals(st, &out->keys, &out->bytes);
    for (uint32_t i = 0; i < st->nshards; i++) {
        shard_stats ss;
        shard_stats_get(store_shard(st, i), &ss);
        out->hits += ss.hits;
        out->misses += ss.misses;
        out->expired += ss.expired;
        out->evicted += ss.evicted;
    }
}
