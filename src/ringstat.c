/*
 * ringstat — the `shardkv ring` subcommand (contract in ringstat.h).
 *
 * It builds three rings with the same strategy, hash and vnodes: the one
 * measured (N shards), one with a shard added (N+1) and one with the last
 * shard removed (N-1).  Each key "<prefix><i>" for i in [0, keys) is looked
 * up in all three, which gives the per-shard counts of the N-shard ring and
 * the fraction of keys whose shard differs after the resize.  Nothing is
 * stored per key, so memory does not grow with --keys.
 *
 * Figures.  mean = keys / N; max/mean and min/mean of the per-shard counts;
 * stddev/mean is the population standard deviation of the counts over the
 * mean (coefficient of variation).  The ideal fractions of moved keys are
 * 1/(N+1) on add and 1/N on remove: what a placement moves when it moves
 * only the keys the new shard must take or the old shard must give up.
 * The add figure is skipped at RING_MAX_SHARDS, the remove one at N = 1.
 */
#include "ringstat.h"

#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "mem.h"
#include "ring.h"

#define RINGSTAT_MAX_KEYS 1000000000ULL
#define RINGSTAT_MAX_PREFIX 1024
#define RINGSTAT_LIST_SHARDS 32 /* per-shard lines in text output up to this N */

typedef struct ringstat_opts {
    int strategy;
    int hash;
    uint32_t shards;
    uint32_t vnodes;
    uint64_t keys;
    const char *prefix;
    const char *values;     /* --key-values list, or NULL */
    int json;
} ringstat_opts;

typedef struct ringstat_result {
    uint64_t *counts;       /* [shards] keys per shard in the N-shard ring */
    double max_over_mean, min_over_mean, stddev_over_mean;
    int has_add, has_remove;
    uint64_t moved_add, moved_remove;
} ringstat_result;

static const char ringstat_usage[] =
    "usage: shardkv ring [options]\n"
    "Measures how a placement spreads keys over shards and how many keys move\n"
    "when one shard is added (N -> N+1) or the last one removed (N -> N-1).\n"
    "\n"
    "  --shards N          shard count, 1..4096 (default 8)\n"
    "  --placement S       ring | modulo | jump (default ring)\n"
    "  --hash H            xxh3 | md5 (default xxh3)\n"
    "  --vnodes V          virtual nodes per shard for ring, 1..10000 (default 100)\n"
    "  --keys K            keys to place, 1..1000000000 (default 1000000)\n"
    "  --key-prefix P      keys are P0, P1, ... (default \"key:\")\n"
    "  --key-values LIST   instead of P0, P1, ...: the keys take only these values\n"
    "                      (e.g. a shard key like region), LIST = v1[=w1],v2[=w2],...\n"
    "                      where w is the value's share of the --keys keys (default 1)\n"
    "  --json              print one JSON object instead of text\n"
    "  --help              print this help\n"
    "\n"
    "--placement ring --hash md5 --vnodes 100 places keys exactly as the seed's\n"
    "MD5 ring (shard i is its shard_<i+1>).\n";

/* Prints "shardkv ring: <message>" and a hint to stderr; returns 2. */
__attribute__((format(printf, 1, 2)))
static int ringstat_usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("shardkv ring: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry 'shardkv ring --help'.\n", stderr);
    return 2;
}

/* Parses a canonical decimal in [min, max]. */
static int ringstat_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out) {
    uint64_t v;
    if (skv_slice_to_u64(skv_slice_cstr(s), &v) != SKV_OK || v < min || v > max) return 0;
    *out = v;
    return 1;
}

enum { RINGSTAT_OPT_SHARDS = 256, RINGSTAT_OPT_PLACEMENT, RINGSTAT_OPT_HASH,
       RINGSTAT_OPT_VNODES, RINGSTAT_OPT_KEYS, RINGSTAT_OPT_PREFIX, RINGSTAT_OPT_VALUES, RINGSTAT_OPT_JSON };

static const struct option ringstat_long_opts[] = {
    { "shards", required_argument, NULL, RINGSTAT_OPT_SHARDS },
    { "placement", required_argument, NULL, RINGSTAT_OPT_PLACEMENT },
    { "hash", required_argument, NULL, RINGSTAT_OPT_HASH },
    { "vnodes", required_argument, NULL, RINGSTAT_OPT_VNODES },
    { "keys", required_argument, NULL, RINGSTAT_OPT_KEYS },
    { "key-prefix", required_argument, NULL, RINGSTAT_OPT_PREFIX },
    { "key-values", required_argument, NULL, RINGSTAT_OPT_VALUES },
    { "json", no_argument, NULL, RINGSTAT_OPT_JSON },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

/* Applies one recognised option.  Returns 0, or 2 after printing why the
 * argument is bad. */
static int ringstat_apply_opt(ringstat_opts *o, int c, const char *arg) {
    uint64_t v;
    switch (c) {
    case RINGSTAT_OPT_SHARDS:
        if (!ringstat_parse_u64(arg, 1, RING_MAX_SHARDS, &v))
            return ringstat_usage_error("--shards wants an integer in 1..4096, not '%s'", arg);
        o->shards = (uint32_t)v;
        return 0;
    case RINGSTAT_OPT_VNODES:
        if (!ringstat_parse_u64(arg, 1, RING_MAX_VNODES, &v))
            return ringstat_usage_error("--vnodes wants an integer in 1..10000, not '%s'", arg);
        o->vnodes = (uint32_t)v;
        return 0;
    case RINGSTAT_OPT_KEYS:
        if (!ringstat_parse_u64(arg, 1, RINGSTAT_MAX_KEYS, &o->keys))
            return ringstat_usage_error("--keys wants an integer in 1..1000000000, not '%s'", arg);
        return 0;
    case RINGSTAT_OPT_PLACEMENT:
        o->strategy = ring_strategy_parse(arg);
        if (o->strategy < 0)
            return ringstat_usage_error("unknown placement '%s' (ring, modulo or jump)", arg);
        return 0;
    case RINGSTAT_OPT_HASH:
        o->hash = ring_hash_parse(arg);
        if (o->hash < 0) return ringstat_usage_error("unknown hash '%s' (xxh3 or md5)", arg);
        return 0;
    case RINGSTAT_OPT_PREFIX:
        if (strlen(arg) > RINGSTAT_MAX_PREFIX)
            return ringstat_usage_error("--key-prefix is longer than %d bytes", RINGSTAT_MAX_PREFIX);
        o->prefix = arg;
        return 0;
    case RINGSTAT_OPT_VALUES:
        if (!*arg) return ringstat_usage_error("--key-values wants a list like US=40,EU=35,APAC=25");
        o->values = arg;
        return 0;
    default: /* RINGSTAT_OPT_JSON */
        o->json = 1;
        return 0;
    }
}

/* Returns -1 to go on, or the exit code (0 after --help, 2 on misuse). */
static int ringstat_parse_args(int argc, char **argv, ringstat_opts *o) {
    /* optind = 0 makes getopt (glibc, musl) start afresh even if the
     * caller parsed its own options with it before. */
    optind = 0;
    opterr = 0;
    for (;;) {
        int idx = 0;
        int c = getopt_long(argc, argv, ":h", ringstat_long_opts, &idx);
        if (c == -1) break;
        if (c == 'h') {
            fputs(ringstat_usage, stdout);
            return 0;
        }
        if (c == ':') return ringstat_usage_error("option '%s' needs a value", argv[optind - 1]);
        if (c == '?' && optopt > 0 && optopt < 256) /* short option, maybe inside "-abc" */
            return ringstat_usage_error("unknown option '-%c'", optopt);
        if (c == '?') return ringstat_usage_error("unknown option '%s'", argv[optind - 1]);
        int rc = ringstat_apply_opt(o, c, optarg);
        if (rc) return rc;
    }
    if (optind < argc) return ringstat_usage_error("unexpected argument '%s'", argv[optind]);
    return -1;
}

static ring *ringstat_make_ring(const ringstat_opts *o, uint32_t shards) {
    ring_config cfg = { o->strategy, o->hash, shards, o->vnodes, 0 };
    ring *r = NULL;
    int rc = ring_new(&cfg, &r);
    if (rc) { /* options were range-checked, so this is a bug */
        fprintf(stderr, "shardkv ring: cannot build ring: %s\n", skv_strerror(rc));
        abort();
    }
    return r;
}

/* One value of --key-values: its text and weight.  Returns the next entry or NULL. */
static const char *ringstat_next_value(const char *p, skv_slice *value, uint64_t *weight) {
    const char *end = strchr(p, ',');
    if (!end) end = p + strlen(p);
    const char *eq = memchr(p, '=', (size_t)(end - p));
    *value = skv_slice_make(p, (size_t)((eq ? eq : end) - p));
    *weight = 1;
    if (eq) {
        char num[24];
        size_t n = (size_t)(end - eq - 1);
        if (n == 0 || n >= sizeof num) return NULL;
        memcpy(num, eq + 1, n);
        num[n] = '\0';
        if (!ringstat_parse_u64(num, 0, RINGSTAT_MAX_KEYS, weight)) return NULL;
    }
    return *end ? end + 1 : end;
}

/* Checks the --key-values list; returns the sum of the weights (0 when malformed). */
static uint64_t ringstat_values_weight(const char *list) {
    uint64_t total = 0, w;
    skv_slice v;
    for (const char *p = list; *p;) {
        p = ringstat_next_value(p, &v, &w);
        if (!p || v.len == 0) return 0;
        total += w;
    }
    return total;
}

/* --key-values: each value stands for its share of the keys. */
static void ringstat_place_values(const ringstat_opts *o, ringstat_result *res, ring *base, ring *grown,
                                  ring *shrunk) {
    uint64_t total = ringstat_values_weight(o->values), w;
    skv_slice v;
    for (const char *p = o->values; *p;) {
        p = ringstat_next_value(p, &v, &w);
        uint64_t n = (uint64_t)((double)o->keys * (double)w / (double)total + 0.5);
        uint32_t s = ring_shard_for_key(base, v.ptr, v.len, NULL);
        res->counts[s] += n;
        if (grown && ring_shard_for_key(grown, v.ptr, v.len, NULL) != s) res->moved_add += n;
        if (shrunk && ring_shard_for_key(shrunk, v.ptr, v.len, NULL) != s) res->moved_remove += n;
    }
}

static void ringstat_place(const ringstat_opts *o, ringstat_result *res) {
    ring *base = ringstat_make_ring(o, o->shards);
    ring *grown = res->has_add ? ringstat_make_ring(o, o->shards + 1) : NULL;
    ring *shrunk = res->has_remove ? ringstat_make_ring(o, o->shards - 1) : NULL;
    if (o->values) {
        ringstat_place_values(o, res, base, grown, shrunk);
        ring_free(base);
        ring_free(grown);
        ring_free(shrunk);
        return;
    }
    size_t plen = strlen(o->prefix);
    char *key = skv_malloc(plen + 24);
    memcpy(key, o->prefix, plen);
    for (uint64_t i = 0; i < o->keys; i++) {
        size_t len = plen + skv_u64_to_dec(i, key + plen);
        uint32_t s = ring_shard_for_key(base, key, len, NULL);
        res->counts[s]++;
        if (grown && ring_shard_for_key(grown, key, len, NULL) != s) res->moved_add++;
        if (shrunk && ring_shard_for_key(shrunk, key, len, NULL) != s) res->moved_remove++;
    }
    free(key);
    ring_free(base);
    ring_free(grown);
    ring_free(shrunk);
}

static void ringstat_balance(const ringstat_opts *o, ringstat_result *res) {
    double mean = (double)o->keys / o->shards;
    uint64_t max = 0, min = UINT64_MAX;
    double sq = 0;
    for (uint32_t s = 0; s < o->shards; s++) {
        uint64_t c = res->counts[s];
        if (c > max) max = c;
        if (c < min) min = c;
        sq += ((double)c - mean) * ((double)c - mean);
    }
    res->max_over_mean = (double)max / mean;
    res->min_over_mean = (double)min / mean;
    res->stddev_over_mean = sqrt(sq / o->shards) / mean;
}

static double ringstat_fraction(uint64_t part, uint64_t whole) {
    return (double)part / (double)whole;
}

static void ringstat_format_text(const ringstat_opts *o, const ringstat_result *res, skv_buf *out) {
    uint32_t n = o->shards;
    skv_buf_printf(out, "placement=%s hash=%s shards=%u", ring_strategy_name(o->strategy),
                   ring_hash_name(o->hash), n);
    if (o->strategy == RING_STRATEGY_RING) skv_buf_printf(out, " vnodes=%u", o->vnodes);
    if (o->values)
        skv_buf_printf(out, " keys=%llu taking the values %s\n\n", (unsigned long long)o->keys, o->values);
    else
        skv_buf_printf(out, " keys=%llu (%s0 .. %s%llu)\n\n", (unsigned long long)o->keys, o->prefix,
                       o->prefix, (unsigned long long)(o->keys - 1));
    if (n <= RINGSTAT_LIST_SHARDS) {
        ring *r = ringstat_make_ring(o, n); /* for the hash-space shares */
        skv_buf_printf(out, "shard          keys   of keys   of hash space\n");
        for (uint32_t s = 0; s < n; s++)
            skv_buf_printf(out, "%5u  %12llu   %6.2f%%         %6.2f%%\n", s,
                           (unsigned long long)res->counts[s],
                           100.0 * ringstat_fraction(res->counts[s], o->keys),
                           100.0 * ring_share(r, s));
        ring_free(r);
        skv_buf_printf(out, "\n");
    }
    skv_buf_printf(out, "balance  max/mean %.4f   min/mean %.4f   stddev/mean %.4f\n",
                   res->max_over_mean, res->min_over_mean, res->stddev_over_mean);
    if (res->has_add)
        skv_buf_printf(out, "add      %u -> %u shards: %.2f%% of keys move (ideal 1/%u = %.2f%%)\n",
                       n, n + 1, 100.0 * ringstat_fraction(res->moved_add, o->keys), n + 1,
                       100.0 / (n + 1));
    else
        skv_buf_printf(out, "add      skipped: %u is the most shards a ring can have\n", n);
    if (res->has_remove)
        skv_buf_printf(out, "remove   %u -> %u shards: %.2f%% of keys move (ideal 1/%u = %.2f%%)\n",
                       n, n - 1, 100.0 * ringstat_fraction(res->moved_remove, o->keys), n,
                       100.0 / n);
    else
        skv_buf_printf(out, "remove   skipped: a single shard cannot be removed\n");
}

static void ringstat_format_json(const ringstat_opts *o, const ringstat_result *res, skv_buf *out) {
    uint32_t n = o->shards;
    skv_buf_printf(out, "{\"placement\":\"%s\",\"hash\":\"%s\",\"shards\":%u,\"vnodes\":%u,"
                   "\"keys\":%llu,\"key_prefix\":\"", ring_strategy_name(o->strategy),
                   ring_hash_name(o->hash), n, o->vnodes, (unsigned long long)o->keys);
    skv_buf_append_json_str(out, o->prefix, strlen(o->prefix));
    skv_buf_append_cstr(out, "\",\"counts\":[");
    for (uint32_t s = 0; s < n; s++)
        skv_buf_printf(out, "%s%llu", s ? "," : "", (unsigned long long)res->counts[s]);
    skv_buf_printf(out, "],\"max_over_mean\":%.6f,\"min_over_mean\":%.6f,\"stddev_over_mean\":%.6f",
                   res->max_over_mean, res->min_over_mean, res->stddev_over_mean);
    if (res->has_add)
        skv_buf_printf(out, ",\"moved_on_add\":%.6f", ringstat_fraction(res->moved_add, o->keys));
    else
        skv_buf_append_cstr(out, ",\"moved_on_add\":null");
    skv_buf_printf(out, ",\"ideal_on_add\":%.6f", 1.0 / (n + 1));
    if (res->has_remove)
        skv_buf_printf(out, ",\"moved_on_remove\":%.6f,\"ideal_on_remove\":%.6f}\n",
                       ringstat_fraction(res->moved_remove, o->keys), 1.0 / n);
    else
        skv_buf_append_cstr(out, ",\"moved_on_remove\":null,\"ideal_on_remove\":null}\n");
}

int ringstat_main(int argc, char **argv) {
    ringstat_opts o = { RING_STRATEGY_RING, RING_HASH_XXH3, 8, 100, 1000000, "key:", NULL, 0 };
    int rc = ringstat_parse_args(argc, argv, &o);
    if (rc >= 0) return rc;
    if (o.values) {
        uint64_t total = ringstat_values_weight(o.values);
        if (total == 0) return ringstat_usage_error("--key-values wants a list like US=40,EU=35,APAC=25");
        /* The counts are rounded shares: measure against their sum. */
        uint64_t sum = 0, w;
        skv_slice v;
        for (const char *p = o.values; *p;) {
            p = ringstat_next_value(p, &v, &w);
            sum += (uint64_t)((double)o.keys * (double)w / (double)total + 0.5);
        }
        if (sum == 0) return ringstat_usage_error("--keys is too small for the --key-values weights");
        o.keys = sum;
    }

    ringstat_result res = { 0 };
    res.counts = skv_calloc(o.shards, sizeof(*res.counts));
    res.has_add = o.shards < RING_MAX_SHARDS;
    res.has_remove = o.shards > 1;
    ringstat_place(&o, &res);
    ringstat_balance(&o, &res);

    skv_buf out;
    skv_buf_init(&out);
    if (o.json) ringstat_format_json(&o, &res, &out);
    else ringstat_format_text(&o, &res, &out);
    fwrite(out.data, 1, out.len, stdout);
    fflush(stdout);
    skv_buf_free(&out);
    free(res.counts);
    return 0;
}
