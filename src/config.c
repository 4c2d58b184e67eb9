#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commit.h"
#include "err.h"
#include "log.h"
#include "ring.h"

enum opt_kind { OPT_STR, OPT_PORT, OPT_UINT, OPT_SIZE, OPT_MS, OPT_PLACEMENT, OPT_HASH, OPT_LEVEL, OPT_FORMAT, OPT_BOOL, OPT_FSYNC, OPT_EVICT };

typedef struct opt_def {
    const char *name;   /* flag without dashes; env var is SHARDKV_ + upper-case with '_' */
    int kind;
    size_t offset;
    size_t size;        /* field size (strings: capacity; numbers: sizeof) */
    unsigned long long min, max;
    const char *arg;    /* placeholder in --help */
    const char *help;
} opt_def;

#define F(field) offsetof(skv_config, field), sizeof(((skv_config *)0)->field)

static const opt_def opts[] = {
    { "host", OPT_STR, F(host), 0, 0, "ADDR", "address to listen on" },
    { "port", OPT_PORT, F(port), 0, 65535, "N", "HTTP port (0 = any free port, logged at start)" },
    { "metrics-port", OPT_PORT, F(metrics_port), 0, 65535, "N", "separate Prometheus /metrics port (0 = off; /metrics is also on --port)" },
    { "data-dir", OPT_STR, F(data_dir), 0, 0, "DIR", "data directory (created at start; the write-ahead log lives here)" },
    { "shards", OPT_UINT, F(shards), 1, RING_MAX_SHARDS, "N", "number of shards on this node" },
    { "threads", OPT_UINT, F(threads), 1, 256, "N", "event-loop worker threads (default: number of cores)" },
    { "placement", OPT_PLACEMENT, F(placement), 0, 0, "ring|modulo|jump", "key placement strategy" },
    { "hash", OPT_HASH, F(hash), 0, 0, "xxh3|md5", "placement hash (md5 = the seeds' MD5 ring)" },
    { "vnodes", OPT_UINT, F(vnodes), 1, RING_MAX_VNODES, "N", "virtual nodes per shard (ring placement)" },
    { "log-level", OPT_LEVEL, F(log_level), 0, 0, "debug|info|warn|error|off", "log level (debug traces every placement)" },
    { "log-format", OPT_FORMAT, F(log_format), 0, 0, "text|json", "log line format" },
    { "access-log", OPT_BOOL, F(access_log), 0, 1, "on|off", "one log line per request" },
    { "fsync", OPT_FSYNC, F(fsync_policy), 0, 0, "always|everysec|never",
      "always: acknowledge writes once on disk; everysec: up to ~1 s of acknowledged writes lost on power loss" },
    { "snapshot-bytes", OPT_SIZE, F(snapshot_bytes), 0, 1ull << 40, "BYTES",
      "snapshot a shard and drop its old log once the log is this big (0 = never)" },
    { "max-memory", OPT_SIZE, F(max_memory), 0, 1ull << 50, "BYTES",
      "memory for keys and values, counted per entry (0 = no limit); over it see --eviction" },
    { "max-keys", OPT_SIZE, F(max_keys), 0, 1ull << 40, "N", "keys the node holds (0 = no limit); over it see --eviction" },
    { "eviction", OPT_EVICT, F(eviction), 0, 0, "reject|lru",
      "at --max-memory/--max-keys: reject writes with 507, or evict least recently used cache keys" },
    { "idempotency-window", OPT_MS, F(idempotency_window_ms), 1000, 604800000, "DURATION",
      "how long the answer of a write with an Idempotency-Key is remembered" },
    { "max-header-bytes", OPT_SIZE, F(max_header_bytes), 256, 1u << 24, "BYTES", "request line + headers (431 over it)" },
    { "max-uri-bytes", OPT_SIZE, F(max_uri_bytes), 16, 1u << 24, "BYTES", "request target (414 over it)" },
    { "max-body-bytes", OPT_SIZE, F(max_body_bytes), 0, 1ull << 30, "BYTES", "request body (413 over it)" },
    { "max-key-bytes", OPT_SIZE, F(max_key_bytes), 1, 1u << 24, "BYTES", "key size (400 key_too_large over it)" },
    { "max-value-bytes", OPT_SIZE, F(max_value_bytes), 0, 1ull << 30, "BYTES", "value size (413 value_too_large over it)" },
    { "max-connections", OPT_UINT, F(max_connections), 1, 1000000, "N", "open client connections (new ones get 503 and are closed)" },
    { "idle-timeout", OPT_MS, F(idle_timeout_ms), 1, 86400000, "DURATION", "close a keep-alive connection idle this long" },
    { "request-timeout", OPT_MS, F(request_timeout_ms), 1, 86400000, "DURATION", "max time to receive one request, head and body (408)" },
    { "shutdown-timeout", OPT_MS, F(shutdown_timeout_ms), 0, 86400000, "DURATION", "graceful drain on SIGTERM before connections are cut" },
};
#define NOPTS (sizeof opts / sizeof opts[0])

void config_defaults(skv_config *c) {
    memset(c, 0, sizeof *c);
    strcpy(c->host, "0.0.0.0");
    c->port = 8000;
    c->metrics_port = 8001;
    strcpy(c->data_dir, "./data");
    c->shards = 8;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    c->threads = ncpu > 0 ? (unsigned)(ncpu > 256 ? 256 : ncpu) : 1;
    c->placement = RING_STRATEGY_RING;
    c->hash = RING_HASH_XXH3;
    c->vnodes = 100;
    c->log_level = LOG_LEVEL_INFO;
    c->log_format = LOG_FORMAT_TEXT;
    c->access_log = 0;
    c->fsync_policy = FSYNC_ALWAYS;
    c->snapshot_bytes = 64u * 1024 * 1024;
    c->max_memory = 0;
    c->max_keys = 0;
    c->eviction = EVICT_REJECT;
    c->idempotency_window_ms = 86400000;
    c->max_header_bytes = 16 * 1024;
    c->max_uri_bytes = 8 * 1024;
    c->max_body_bytes = 2 * 1024 * 1024;
    c->max_key_bytes = 4 * 1024;
    c->max_value_bytes = 1024 * 1024;
    c->max_connections = 10000;
    c->idle_timeout_ms = 60000;
    c->request_timeout_ms = 10000;
    c->shutdown_timeout_ms = 10000;
}

/* "64K", "1m", "1048576" -> bytes. */
static int parse_size(const char *s, unsigned long long *out) {
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)*s)) return SKV_EINVAL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno) return SKV_ERANGE;
    unsigned long long mul = 1;
    if (*end) {
        switch (tolower((unsigned char)*end)) {
        case 'k': mul = 1ull << 10; break;
        case 'm': mul = 1ull << 20; break;
        case 'g': mul = 1ull << 30; break;
        default: return SKV_EINVAL;
        }
        end++;
        if (*end == 'b' || *end == 'B') end++;
        if (*end) return SKV_EINVAL;
    }
    if (v > ~0ull / mul) return SKV_ERANGE;
    *out = v * mul;
    return SKV_OK;
}

/* "250ms", "10s", "2m", "1500" (ms) -> milliseconds. */
static int parse_ms(const char *s, unsigned long long *out) {
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)*s)) return SKV_EINVAL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno) return SKV_ERANGE;
    unsigned long long mul;
    if (*end == '\0' || strcmp(end, "ms") == 0) mul = 1;
    else if (strcmp(end, "s") == 0) mul = 1000;
    else if (strcmp(end, "m") == 0) mul = 60000;
    else return SKV_EINVAL;
    if (v > ~0ull / mul) return SKV_ERANGE;
    *out = v * mul;
    return SKV_OK;
}

static int parse_bool(const char *s) {
    if (!strcmp(s, "1") || !strcmp(s, "on") || !strcmp(s, "true") || !strcmp(s, "yes")) return 1;
    if (!strcmp(s, "0") || !strcmp(s, "off") || !strcmp(s, "false") || !strcmp(s, "no")) return 0;
    return -1;
}

static void store_uint(void *field, size_t size, unsigned long long v) {
    if (size == sizeof(uint32_t)) *(uint32_t *)field = (uint32_t)v;
    else if (size == sizeof(uint64_t)) *(uint64_t *)field = (uint64_t)v;
    else *(int *)field = (int)v;
}

/* Applies one option value; returns 0 or SKV_EINVAL after printing why. */
static int apply(skv_config *c, const opt_def *o, const char *val, const char *origin) {
    void *field = (char *)c + o->offset;
    unsigned long long v = 0;
    int e = 0, rc = SKV_OK;
    switch (o->kind) {
    case OPT_STR:
        if (strlen(val) >= o->size || val[0] == '\0') rc = SKV_EINVAL;
        else strcpy(field, val);
        break;
    case OPT_PORT:
    case OPT_UINT: {
        char *end;
        errno = 0;
        if (!isdigit((unsigned char)val[0])) { rc = SKV_EINVAL; break; }
        v = strtoull(val, &end, 10);
        if (errno || *end) rc = SKV_EINVAL;
        break;
    }
    case OPT_SIZE: rc = parse_size(val, &v); break;
    case OPT_MS: rc = parse_ms(val, &v); break;
    case OPT_PLACEMENT: e = ring_strategy_parse(val); break;
    case OPT_HASH: e = ring_hash_parse(val); break;
    case OPT_LEVEL: e = log_level_parse(val); break;
    case OPT_FORMAT: e = log_format_parse(val); break;
    case OPT_BOOL: e = parse_bool(val); break;
    case OPT_FSYNC: e = commit_policy_parse(val); break;
    case OPT_EVICT: e = strcmp(val, "reject") == 0 ? EVICT_REJECT : strcmp(val, "lru") == 0 ? EVICT_LRU : -1; break;
    }
    if (o->kind >= OPT_PLACEMENT) {
        if (e < 0) rc = SKV_EINVAL;
        else *(int *)field = e;
    } else if (rc == SKV_OK && o->kind != OPT_STR) {
        if (v < o->min || v > o->max) rc = SKV_ERANGE;
        else if (o->size == sizeof(size_t) && o->kind == OPT_SIZE) *(size_t *)field = (size_t)v;
        else store_uint(field, o->size, v);
    }
    if (rc != SKV_OK) {
        if (rc == SKV_ERANGE)
            fprintf(stderr, "shardkv: %s: --%s=%s is out of range [%llu, %llu]\n", origin, o->name, val, o->min, o->max);
        else
            fprintf(stderr, "shardkv: %s: invalid value '%s' for --%s (expected %s)\n", origin, val, o->name, o->arg);
        return SKV_EINVAL;
    }
    return SKV_OK;
}

static void env_name(const char *flag, char *out, size_t cap) {
    size_t n = (size_t)snprintf(out, cap, "SHARDKV_");
    for (const char *p = flag; *p && n + 1 < cap; p++)
        out[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    out[n] = '\0';
}

void config_usage(FILE *out) {
    skv_config d;
    config_defaults(&d);
    fprintf(out,
            "shardkv %s — a sharded, durable key-value service over HTTP\n\n"
            "Usage:\n"
            "  shardkv [serve] [OPTIONS]       run a node (the default command)\n"
            "  shardkv ring [OPTIONS]          placement balance and movement report (shardkv ring --help)\n"
            "  shardkv check --data-dir D [--repair]   verify a stopped node's snapshots and logs\n"
            "  shardkv get|put|del|scan|incr|stats|shards ...   client of a running node (shardkv get --help,\n"
            "                                  docs/cli.md); --endpoint URL or SHARDKV_ENDPOINT\n"
            "  shardkv --version | --help\n\n"
            "Options (each also read from the environment as SHARDKV_<NAME>, e.g. SHARDKV_MAX_BODY_BYTES;\n"
            "flags win; a variable whose flag is given is not read).  Sizes take K/M/G suffixes, durations ms/s/m:\n",
            SKV_VERSION);
    for (size_t i = 0; i < NOPTS; i++) {
        const opt_def *o = &opts[i];
        char left[64];
        snprintf(left, sizeof left, "--%s=%s", o->name, o->arg);
        fprintf(out, "  %-36s %s", left, o->help);
        const void *f = (const char *)&d + o->offset;
        switch (o->kind) {
        case OPT_STR: fprintf(out, " [%s]", (const char *)f); break;
        case OPT_PORT: fprintf(out, " [%d]", *(const int *)f); break;
        case OPT_UINT: fprintf(out, " [%u]", *(const uint32_t *)f); break;
        case OPT_SIZE: fprintf(out, " [%zu]", *(const size_t *)f); break;
        case OPT_MS: fprintf(out, " [%ums]", *(const unsigned *)f); break;
        case OPT_PLACEMENT: fprintf(out, " [%s]", ring_strategy_name(*(const int *)f)); break;
        case OPT_HASH: fprintf(out, " [%s]", ring_hash_name(*(const int *)f)); break;
        case OPT_LEVEL: fprintf(out, " [info]"); break;
        case OPT_FORMAT: fprintf(out, " [text]"); break;
        case OPT_BOOL: fprintf(out, " [%s]", *(const int *)f ? "on" : "off"); break;
        case OPT_FSYNC: fprintf(out, " [%s]", commit_policy_name(*(const int *)f)); break;
        case OPT_EVICT: fprintf(out, " [%s]", *(const int *)f == EVICT_LRU ? "lru" : "reject"); break;
        }
        fputc('\n', out);
    }
    fprintf(out,
            "  %-36s %s\n  %-36s %s\n\n"
            "Signals: SIGTERM/SIGINT stop accepting, finish in-flight requests and exit 0\n"
            "(a second signal cuts open connections at once).\n"
            "Docs: README.md, docs/api.md (and the node's /docs), docs/architecture.md, docs/storage.md,\n"
            "docs/sharding.md, docs/counters.md, docs/collections.md, docs/cli.md, docs/deploy.md\n",
            "--help", "print this help", "--version", "print the version");
}

/* Marks in given[] the options present in argv (errors are reported by the real pass). */
static void flags_given(int argc, char **argv, const struct option *longopts, unsigned char *given) {
    optind = 0;
    opterr = 0;
    for (;;) {
        int idx = -1;
        int ch = getopt_long(argc, argv, "hV", longopts, &idx);
        if (ch == -1) break;
        if (ch >= 256 && ch < 256 + (int)NOPTS) given[ch - 256] = 1;
    }
}

int config_load(skv_config *c, int argc, char **argv) {
    char name[96];
    struct option longopts[NOPTS + 3];
    for (size_t i = 0; i < NOPTS; i++)
        longopts[i] = (struct option){ opts[i].name, required_argument, NULL, (int)(i + 256) };
    longopts[NOPTS] = (struct option){ "help", no_argument, NULL, 'h' };
    longopts[NOPTS + 1] = (struct option){ "version", no_argument, NULL, 'V' };
    longopts[NOPTS + 2] = (struct option){ NULL, 0, NULL, 0 };

    /* The environment fills in what the command line does not say; a
     * variable whose flag is given is not even read (Kubernetes injects
     * SHARDKV_PORT=tcp://... for a Service named shardkv). */
    unsigned char given[NOPTS] = { 0 };
    flags_given(argc, argv, longopts, given);
    for (size_t i = 0; i < NOPTS; i++) {
        if (given[i]) continue;
        env_name(opts[i].name, name, sizeof name);
        const char *v = getenv(name);
        if (v && apply(c, &opts[i], v, name) != SKV_OK) return SKV_EINVAL;
    }

    optind = 0; /* 0, not 1: glibc then also forgets a half-read group of short options */
    opterr = 0;
    for (;;) {
        int idx = -1;
        int ch = getopt_long(argc, argv, "hV", longopts, &idx);
        if (ch == -1) break;
        if (ch == 'h') { config_usage(stdout); return 1; }
        if (ch == 'V') { printf("shardkv %s\n", SKV_VERSION); return 1; }
        if (ch >= 256 && ch < 256 + (int)NOPTS) {
            if (apply(c, &opts[ch - 256], optarg, "command line") != SKV_OK) return SKV_EINVAL;
            continue;
        }
        if (optopt >= 256 || (optind > 0 && optind <= argc && argv[optind - 1][0] == '-' && ch == '?'))
            fprintf(stderr, "shardkv: option '%s' is unknown or needs a value; see shardkv --help\n", argv[optind - 1]);
        else
            fprintf(stderr, "shardkv: bad option; see shardkv --help\n");
        return SKV_EINVAL;
    }
    if (optind < argc) {
        fprintf(stderr, "shardkv: unexpected argument '%s'; see shardkv --help\n", argv[optind]);
        return SKV_EINVAL;
    }
    /* The request line (method, target, version) must fit in the head limit. */
    if (c->max_uri_bytes + 64 > c->max_header_bytes) c->max_uri_bytes = c->max_header_bytes - 64;
    return SKV_OK;
}
