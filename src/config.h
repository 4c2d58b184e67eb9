/*
 * config — the server configuration: defaults, `SHARDKV_*` environment
 * variables, command-line flags (flags win over the environment), --help.
 *
 * One skv_config is filled at start-up by config_load() and then only read,
 * by every thread, for the life of the process; it is the only process-wide
 * state besides the log level.  Every limit the server enforces lives here
 * with its default, so --help is the single list of them.
 */
#ifndef SKV_CONFIG_H
#define SKV_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct skv_config {
    char host[256];
    int port;                 /* 0 = pick a free port (logged) */
    int metrics_port;         /* 0 = no separate metrics listener */
    char data_dir[1024];
    uint32_t shards;
    unsigned threads;
    int placement;            /* enum ring_strategy */
    int hash;                 /* enum ring_hash */
    uint32_t vnodes;
    int log_level;            /* enum log_level */
    int log_format;           /* enum log_format */
    int access_log;           /* 1 = one line per request on stderr */
    int fsync_policy;         /* enum fsync_policy (commit.h) */
    size_t snapshot_bytes;    /* log size per shard that triggers a snapshot; 0 = never */
    size_t max_memory;        /* bytes of entries (keys, values, per-entry overhead); 0 = no limit */
    size_t max_keys;          /* entries; 0 = no limit */
    int eviction;             /* enum config_eviction: what happens at max_memory / max_keys */
    unsigned idempotency_window_ms; /* how long an Idempotency-Key's answer is remembered */

    /* Limits. */
    size_t max_header_bytes;  /* request line + headers -> 431 */
    size_t max_uri_bytes;     /* request target -> 414 */
    size_t max_body_bytes;    /* request body -> 413 */
    size_t max_key_bytes;     /* key -> 400 key_too_large */
    size_t max_value_bytes;   /* value -> 413 value_too_large */
    unsigned max_connections; /* over it: 503 and close */
    unsigned idle_timeout_ms;     /* keep-alive connection with no request */
    unsigned request_timeout_ms;  /* first byte of a request to its last byte -> 408 */
    unsigned shutdown_timeout_ms; /* graceful drain before forced close */
} skv_config;

enum config_eviction { EVICT_REJECT = 0, EVICT_LRU };

/* Fills c with the defaults. */
void config_defaults(skv_config *c);

/*
 * Applies SHARDKV_* variables from the environment, then argv (argv[0] is
 * the program or subcommand name).  Returns 0 when the server should run,
 * 1 when --help or --version was printed (exit 0), or SKV_EINVAL after
 * printing a one-line reason to stderr (exit 2).
 */
int config_load(skv_config *c, int argc, char **argv);

/* Prints the --help text. */
void config_usage(FILE *out);

#endif
