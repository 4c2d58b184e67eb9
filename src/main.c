/*
 * main — command dispatch: `shardkv [serve] [options]` runs a node,
 * `shardkv ring ...` prints placement statistics, `shardkv check ...`
 * verifies (and repairs) a stopped node's data directory, and
 * `shardkv get|put|del|scan|incr|stats|shards ...` talk to a running node
 * as a client (client.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "client.h"
#include "config.h"
#include "err.h"
#include "log.h"
#include "ringstat.h"
#include "server.h"

static int serve(int argc, char **argv) {
    skv_config cfg;
    config_defaults(&cfg);
    int rc = config_load(&cfg, argc, argv);
    if (rc == 1) return 0;
    if (rc != SKV_OK) return 2;
    log_init(cfg.log_level, cfg.log_format);
    if (mkdir(cfg.data_dir, 0755) != 0 && errno != EEXIST) {
        log_error("cannot create --data-dir %s: %s", cfg.data_dir, strerror(errno));
        return 1;
    }
    server *s = NULL;
    if (server_new(&cfg, &s) != SKV_OK) return 1;
    rc = server_run(s);
    server_free(s);
    return rc == SKV_OK ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "ring") == 0) return ringstat_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "check") == 0) return check_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "serve") == 0) return serve(argc - 1, argv + 1);
    if (argc > 1 && client_is_command(argv[1])) return client_main(argc - 1, argv + 1);
    return serve(argc, argv);
}
