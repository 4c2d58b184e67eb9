/*
 * Unit tests for config: the defaults, every kind of flag (strings, ports,
 * counts, sizes with K/M/G suffixes, durations in ms/s/m, enums, booleans),
 * range and syntax errors (SKV_EINVAL with a one-line reason on stderr),
 * SHARDKV_* environment variables and their precedence below flags,
 * --help/--version, unknown options and positional arguments.
 *
 * config_load writes to stdout/stderr; every call here goes through load(),
 * which captures both into temporary files so that the messages can be
 * checked and the test output stays readable.  Every SHARDKV_* variable the
 * module reads is unset before each test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <unistd.h>

#include "config.h"
#include "err.h"
#include "log.h"
#include "ring.h"

/* ---- capture ------------------------------------------------------------------- */

static char captured_out[16384];
static char captured_err[4096];

static void slurp(FILE *f, char *out, size_t cap) {
    rewind(f);
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
}

static int load_argv(skv_config *c, int argc, char **argv) {
    fflush(stdout);
    fflush(stderr);
    FILE *fo = tmpfile(), *fe = tmpfile();
    assert_non_null(fo);
    assert_non_null(fe);
    int saved_out = dup(1), saved_err = dup(2);
    assert_true(saved_out >= 0 && saved_err >= 0);
    dup2(fileno(fo), 1);
    dup2(fileno(fe), 2);
    int rc = config_load(c, argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    slurp(fo, captured_out, sizeof captured_out);
    slurp(fe, captured_err, sizeof captured_err);
    fclose(fo);
    fclose(fe);
    return rc;
}

/* load(&c, "--a", "--b") : config_load with argv = { "shardkv", ... }. */
#define load(c, ...)                                                                   \
    load_argv((c), (int)(sizeof((char *[]){ "shardkv", __VA_ARGS__ }) / sizeof(char *)), \
              (char *[]){ "shardkv", __VA_ARGS__, NULL })

static int load_none(skv_config *c) {
    char *argv[] = { "shardkv", NULL };
    return load_argv(c, 1, argv);
}

/* An error prints exactly one line to stderr, naming the program. */
static void assert_one_line_error(void) {
    assert_true(strncmp(captured_err, "shardkv: ", 9) == 0);
    size_t n = strlen(captured_err);
    assert_true(n > 10);
    assert_int_equal(captured_err[n - 1], '\n');
    assert_null(memchr(captured_err, '\n', n - 1));
}

static void assert_rejected(skv_config *c, int rc) {
    (void)c;
    assert_int_equal(rc, SKV_EINVAL);
    assert_one_line_error();
}

static const char *const env_vars[] = {
    "SHARDKV_HOST", "SHARDKV_PORT", "SHARDKV_METRICS_PORT", "SHARDKV_DATA_DIR", "SHARDKV_SHARDS",
    "SHARDKV_THREADS", "SHARDKV_PLACEMENT", "SHARDKV_HASH", "SHARDKV_VNODES", "SHARDKV_LOG_LEVEL",
    "SHARDKV_LOG_FORMAT", "SHARDKV_ACCESS_LOG", "SHARDKV_MAX_HEADER_BYTES", "SHARDKV_MAX_URI_BYTES",
    "SHARDKV_MAX_BODY_BYTES", "SHARDKV_MAX_KEY_BYTES", "SHARDKV_MAX_VALUE_BYTES", "SHARDKV_MAX_CONNECTIONS",
    "SHARDKV_IDLE_TIMEOUT", "SHARDKV_REQUEST_TIMEOUT", "SHARDKV_SHUTDOWN_TIMEOUT",
};

static int clean_env(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof env_vars / sizeof env_vars[0]; i++) unsetenv(env_vars[i]);
    return 0;
}

/* ---- defaults ------------------------------------------------------------------ */

static void test_defaults(void **state) {
    (void)state;
    skv_config c;
    memset(&c, 0xab, sizeof c);
    config_defaults(&c);
    assert_string_equal(c.host, "0.0.0.0");
    assert_int_equal(c.port, 8000);
    assert_int_equal(c.metrics_port, 8001);
    assert_string_equal(c.data_dir, "./data");
    assert_int_equal(c.shards, 8);
    assert_true(c.threads >= 1 && c.threads <= 256);
    assert_int_equal(c.placement, RING_STRATEGY_RING);
    assert_int_equal(c.hash, RING_HASH_XXH3);
    assert_int_equal(c.vnodes, 100);
    assert_int_equal(c.log_level, LOG_LEVEL_INFO);
    assert_int_equal(c.log_format, LOG_FORMAT_TEXT);
    assert_int_equal(c.access_log, 0);
    assert_int_equal(c.max_header_bytes, 16 * 1024);
    assert_int_equal(c.max_uri_bytes, 8 * 1024);
    assert_int_equal(c.max_body_bytes, 2 * 1024 * 1024);
    assert_int_equal(c.max_key_bytes, 4 * 1024);
    assert_int_equal(c.max_value_bytes, 1024 * 1024);
    assert_int_equal(c.max_connections, 10000);
    assert_int_equal(c.idle_timeout_ms, 60000);
    assert_int_equal(c.request_timeout_ms, 10000);
    assert_int_equal(c.shutdown_timeout_ms, 10000);
}

static void test_no_args_keeps_defaults(void **state) {
    (void)state;
    skv_config c, d;
    config_defaults(&c);
    config_defaults(&d);
    assert_int_equal(load_none(&c), SKV_OK);
    assert_memory_equal(&c, &d, sizeof c);
    assert_string_equal(captured_err, "");
    assert_string_equal(captured_out, "");
}

/* ---- each kind of flag ------------------------------------------------------------- */

static void test_string_flags(void **state) {
    (void)state;
    skv_config c;
    config_defaults(&c);
    assert_int_equal(load(&c, "--host=127.0.0.1", "--data-dir", "/tmp/skv data"), SKV_OK);
    assert_string_equal(c.host, "127.0.0.1");
    assert_string_equal(c.data_dir, "/tmp/skv data");

    char longest[256], too_long[257];
    memset(longest, 'h', sizeof longest - 1);
    longest[sizeof longest - 1] = '\0';
    memset(too_long, 'h', sizeof too_long - 1);
    too_long[sizeof too_long - 1] = '\0';
    char flag[300];
    snprintf(flag, sizeof flag, "--host=%s", longest); /* 255 chars fit in host[256] */
    assert_int_equal(load(&c, flag), SKV_OK);
    assert_string_equal(c.host, longest);
    snprintf(flag, sizeof flag, "--host=%s", too_long);
    assert_rejected(&c, load(&c, flag));
    assert_rejected(&c, load(&c, "--host="));

    char dir[1100];
    memset(dir, 'd', sizeof dir);
    dir[1023] = '\0';
    assert_int_equal(load(&c, "--data-dir", dir), SKV_OK); /* 1023 chars */
    assert_int_equal(strlen(c.data_dir), 1023);
    dir[1023] = 'd';
    dir[1024] = '\0';
    assert_rejected(&c, load(&c, "--data-dir", dir));
}

static void test_port_flags(void **state) {
    (void)state;
    skv_config c;
    config_defaults(&c);
    assert_int_equal(load(&c, "--port=0", "--metrics-port=65535"), SKV_OK);
    assert_int_equal(c.port, 0);
    assert_int_equal(c.metrics_port, 65535);
    assert_int_equal(load(&c, "--port", "9000", "--metrics-port", "0"), SKV_OK);
    assert_int_equal(c.port, 9000);
    assert_int_equal(c.metrics_port, 0);
    static const char *bad[] = { "--port=65536", "--port=-1", "--port=", "--port=80x", "--port=0x50", "--port= 80",
                                 "--port=+80", "--port=99999999999999999999", "--metrics-port=70000" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) assert_rejected(&c, load(&c, (char *)bad[i]));
    assert_int_equal(c.port, 9000);
}

static void test_count_flags(void **state) {
    (void)state;
    skv_config c;
    config_defaults(&c);
    assert_int_equal(load(&c, "--shards=1", "--threads=256", "--vnodes=10000", "--max-connections=1000000"), SKV_OK);
    assert_int_equal(c.shards, 1);
    assert_int_equal(c.threads, 256);
    assert_int_equal(c.vnodes, 10000);
    assert_int_equal(c.max_connections, 1000000);
    assert_int_equal(load(&c, "--shards=4096", "--threads=1", "--vnodes=1", "--max-connections=1"), SKV_OK);
    assert_int_equal(c.shards, RING_MAX_SHARDS);
    assert_int_equal(c.threads, 1);
    assert_int_equal(c.vnodes, 1);
    assert_int_equal(c.max_connections, 1);
    static const char *bad[] = {
        "--shards=0", "--shards=4097", "--shards=-1", "--shards=8k", "--shards=", "--shards=1.0",
        "--shards=4294967304", /* 2^32 + 8: must not wrap to 8 */
        "--threads=0", "--threads=257", "--vnodes=0", "--vnodes=10001", "--max-connections=0",
        "--max-connections=1000001",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = load(&c, (char *)bad[i]);
        if (rc != SKV_EINVAL) fail_msg("%s accepted", bad[i]);
        assert_one_line_error();
    }
    assert_int_equal(c.shards, RING_MAX_SHARDS);
}

static void test_size_flags(void **state) {
    (void)state;
    static const struct { const char *flag; size_t want; } ok[] = {
        { "--max-body-bytes=0", 0 },
        { "--max-body-bytes=1500", 1500 },
        { "--max-body-bytes=64K", 64 * 1024 },
        { "--max-body-bytes=64k", 64 * 1024 },
        { "--max-body-bytes=64KB", 64 * 1024 },
        { "--max-body-bytes=64kb", 64 * 1024 },
        { "--max-body-bytes=1m", 1024 * 1024 },
        { "--max-body-bytes=1M", 1024 * 1024 },
        { "--max-body-bytes=3MB", 3 * 1024 * 1024 },
        { "--max-body-bytes=1GB", 1ull << 30 },
        { "--max-body-bytes=1g", 1ull << 30 }, /* the maximum, 2^30 */
        { "--max-body-bytes=1073741824", 1ull << 30 },
        { "--max-body-bytes=0K", 0 },
    };
    skv_config c;
    config_defaults(&c);
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        c.max_body_bytes = 12345;
        int rc = load(&c, (char *)ok[i].flag);
        if (rc != SKV_OK) fail_msg("%s rejected: %s", ok[i].flag, captured_err);
        if (c.max_body_bytes != ok[i].want) fail_msg("%s gave %zu", ok[i].flag, c.max_body_bytes);
    }
    assert_int_equal(load(&c, "--max-header-bytes=256", "--max-uri-bytes=16", "--max-key-bytes=1",
                          "--max-value-bytes=1g"),
                     SKV_OK);
    assert_int_equal(c.max_header_bytes, 256);
    assert_int_equal(c.max_uri_bytes, 16);
    assert_int_equal(c.max_key_bytes, 1);
    assert_int_equal(c.max_value_bytes, 1ull << 30);
    assert_int_equal(load(&c, "--max-header-bytes=16M", "--max-uri-bytes=1m", "--max-key-bytes=16384K"), SKV_OK);
    assert_int_equal(c.max_header_bytes, 1u << 24);
    assert_int_equal(c.max_uri_bytes, 1u << 20);
    assert_int_equal(c.max_key_bytes, 1u << 24);
    /* The URI maximum is accepted, then clamped below the header limit. */
    assert_int_equal(load(&c, "--max-header-bytes=16M", "--max-uri-bytes=16m"), SKV_OK);
    assert_true(c.max_uri_bytes < c.max_header_bytes);

    static const char *bad[] = {
        "--max-body-bytes=", "--max-body-bytes=K", "--max-body-bytes=-1", "--max-body-bytes= 64K",
        "--max-body-bytes=64 K", "--max-body-bytes=1.5M", "--max-body-bytes=64KiB", "--max-body-bytes=64KK",
        "--max-body-bytes=64T", "--max-body-bytes=64X", "--max-body-bytes=64Kx", "--max-body-bytes=0x10",
        "--max-body-bytes=1073741825", "--max-body-bytes=2G", "--max-body-bytes=1025M",
        "--max-body-bytes=18446744073709551616", "--max-body-bytes=17179869184G", /* overflows 64 bits */
        "--max-body-bytes=18014398509481984K", "--max-header-bytes=255", "--max-header-bytes=16385K",
        "--max-uri-bytes=15", "--max-key-bytes=0", "--max-value-bytes=5g",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = load(&c, (char *)bad[i]);
        if (rc != SKV_EINVAL) fail_msg("%s accepted", bad[i]);
        assert_one_line_error();
    }
}

static void test_duration_flags(void **state) {
    (void)state;
    static const struct { const char *flag; unsigned want; } ok[] = {
        { "--idle-timeout=250ms", 250 },
        { "--idle-timeout=10s", 10000 },
        { "--idle-timeout=2m", 120000 },
        { "--idle-timeout=1500", 1500 },
        { "--idle-timeout=1", 1 },
        { "--idle-timeout=1440m", 86400000 },
        { "--idle-timeout=86400s", 86400000 },
        { "--idle-timeout=86400000ms", 86400000 },
    };
    skv_config c;
    config_defaults(&c);
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int rc = load(&c, (char *)ok[i].flag);
        if (rc != SKV_OK) fail_msg("%s rejected: %s", ok[i].flag, captured_err);
        if (c.idle_timeout_ms != ok[i].want) fail_msg("%s gave %u", ok[i].flag, c.idle_timeout_ms);
    }
    assert_int_equal(load(&c, "--request-timeout=3s", "--shutdown-timeout=0"), SKV_OK);
    assert_int_equal(c.request_timeout_ms, 3000);
    assert_int_equal(c.shutdown_timeout_ms, 0);
    assert_int_equal(load(&c, "--shutdown-timeout", "1m"), SKV_OK);
    assert_int_equal(c.shutdown_timeout_ms, 60000);

    static const char *bad[] = {
        "--idle-timeout=0", "--idle-timeout=0s", "--idle-timeout=", "--idle-timeout=ms", "--idle-timeout=s",
        "--idle-timeout=1h", "--idle-timeout=1.5s", "--idle-timeout=-5", "--idle-timeout=10 s",
        "--idle-timeout=10sec", "--idle-timeout=10mss", "--idle-timeout=1441m", "--idle-timeout=86401s",
        "--idle-timeout=86400001", "--idle-timeout=18446744073709551615m", "--idle-timeout=99999999999999999999",
        "--request-timeout=0ms", "--shutdown-timeout=86400001",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = load(&c, (char *)bad[i]);
        if (rc != SKV_EINVAL) fail_msg("%s accepted", bad[i]);
        assert_one_line_error();
    }
}

static void test_enum_flags(void **state) {
    (void)state;
    skv_config c;
    config_defaults(&c);
    assert_int_equal(load(&c, "--placement=modulo", "--hash=md5", "--log-level=debug", "--log-format=json"), SKV_OK);
    assert_int_equal(c.placement, RING_STRATEGY_MODULO);
    assert_int_equal(c.hash, RING_HASH_MD5);
    assert_int_equal(c.log_level, LOG_LEVEL_DEBUG);
    assert_int_equal(c.log_format, LOG_FORMAT_JSON);
    assert_int_equal(load(&c, "--placement=jump", "--hash=xxh3", "--log-level=off", "--log-format=text"), SKV_OK);
    assert_int_equal(c.placement, RING_STRATEGY_JUMP);
    assert_int_equal(c.hash, RING_HASH_XXH3);
    assert_int_equal(c.log_level, LOG_LEVEL_OFF);
    assert_int_equal(c.log_format, LOG_FORMAT_TEXT);
    assert_int_equal(load(&c, "--placement=ring", "--log-level=warn"), SKV_OK);
    assert_int_equal(c.placement, RING_STRATEGY_RING);
    assert_int_equal(c.log_level, LOG_LEVEL_WARN);
    assert_int_equal(load(&c, "--log-level=error"), SKV_OK);
    assert_int_equal(c.log_level, LOG_LEVEL_ERROR);
    assert_int_equal(load(&c, "--log-level=info"), SKV_OK);
    assert_int_equal(c.log_level, LOG_LEVEL_INFO);

    static const char *bad[] = { "--placement=consistent", "--placement=", "--hash=sha1", "--hash=",
                                 "--log-level=verbose", "--log-level=", "--log-format=xml", "--log-format=" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = load(&c, (char *)bad[i]);
        if (rc != SKV_EINVAL) fail_msg("%s accepted", bad[i]);
        assert_one_line_error();
    }
    assert_int_equal(c.placement, RING_STRATEGY_RING);
}

static void test_bool_flag(void **state) {
    (void)state;
    static const struct { const char *v; int want; } ok[] = {
        { "on", 1 }, { "off", 0 }, { "true", 1 }, { "false", 0 }, { "yes", 1 }, { "no", 0 }, { "1", 1 }, { "0", 0 },
    };
    skv_config c;
    config_defaults(&c);
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char flag[40];
        snprintf(flag, sizeof flag, "--access-log=%s", ok[i].v);
        c.access_log = !ok[i].want;
        assert_int_equal(load(&c, flag), SKV_OK);
        assert_int_equal(c.access_log, ok[i].want);
    }
    static const char *bad[] = { "--access-log=maybe", "--access-log=", "--access-log=2", "--access-log=onn" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) assert_rejected(&c, load(&c, (char *)bad[i]));
}

/* The request line holds the target, so the URI limit is brought below the
 * header limit (by how much is the module's choice: room for the method and
 * the version). */
static void test_uri_limit_clamped_to_header_limit(void **state) {
    (void)state;
    skv_config c;
    config_defaults(&c);
    assert_int_equal(load(&c, "--max-header-bytes=1K"), SKV_OK);
    assert_int_equal(c.max_header_bytes, 1024);
    assert_true(c.max_uri_bytes < 1024); /* default 8K cannot exceed the header limit */
    assert_true(c.max_uri_bytes >= 16);
    config_defaults(&c);
    assert_int_equal(load(&c, "--max-header-bytes=256", "--max-uri-bytes=16M"), SKV_OK);
    assert_true(c.max_uri_bytes < 256 && c.max_uri_bytes >= 16);
    /* From the environment too. */
    setenv("SHARDKV_MAX_HEADER_BYTES", "2K", 1);
    config_defaults(&c);
    assert_int_equal(load_none(&c), SKV_OK);
    assert_int_equal(c.max_header_bytes, 2048);
    assert_true(c.max_uri_bytes < 2048);
    unsetenv("SHARDKV_MAX_HEADER_BYTES");
    config_defaults(&c);
    assert_int_equal(load(&c, "--max-header-bytes=1K", "--max-uri-bytes=512"), SKV_OK);
    assert_int_equal(c.max_uri_bytes, 512);
}

static void test_many_flags_at_once(void **state) {
    (void)state;
    skv_config c;
    config_defaults(&c);
    assert_int_equal(load(&c, "--host", "::1", "--port=8080", "--shards", "16", "--threads=4", "--placement", "jump",
                          "--max-body-bytes", "64K", "--idle-timeout", "250ms", "--access-log", "on"),
                     SKV_OK);
    assert_string_equal(c.host, "::1");
    assert_int_equal(c.port, 8080);
    assert_int_equal(c.shards, 16);
    assert_int_equal(c.threads, 4);
    assert_int_equal(c.placement, RING_STRATEGY_JUMP);
    assert_int_equal(c.max_body_bytes, 65536);
    assert_int_equal(c.idle_timeout_ms, 250);
    assert_int_equal(c.access_log, 1);
    /* The last occurrence wins. */
    assert_int_equal(load(&c, "--shards=2", "--shards=3"), SKV_OK);
    assert_int_equal(c.shards, 3);
}

/* ---- environment -------------------------------------------------------------------- */

static void test_env_applied(void **state) {
    (void)state;
    skv_config c;
    config_defaults(&c);
    setenv("SHARDKV_SHARDS", "16", 1);
    setenv("SHARDKV_MAX_BODY_BYTES", "64K", 1);
    setenv("SHARDKV_PLACEMENT", "modulo", 1);
    setenv("SHARDKV_ACCESS_LOG", "yes", 1);
    setenv("SHARDKV_IDLE_TIMEOUT", "5s", 1);
    setenv("SHARDKV_METRICS_PORT", "0", 1);
    setenv("SHARDKV_DATA_DIR", "/var/lib/shardkv", 1);
    assert_int_equal(load_none(&c), SKV_OK);
    assert_int_equal(c.shards, 16);
    assert_int_equal(c.max_body_bytes, 65536);
    assert_int_equal(c.placement, RING_STRATEGY_MODULO);
    assert_int_equal(c.access_log, 1);
    assert_int_equal(c.idle_timeout_ms, 5000);
    assert_int_equal(c.metrics_port, 0);
    assert_string_equal(c.data_dir, "/var/lib/shardkv");
    assert_int_equal(c.port, 8000); /* untouched */
    clean_env(NULL);
}

static void test_flags_override_env(void **state) {
    (void)state;
    skv_config c;
    config_defaults(&c);
    setenv("SHARDKV_SHARDS", "16", 1);
    setenv("SHARDKV_MAX_BODY_BYTES", "64K", 1);
    assert_int_equal(load(&c, "--shards=4", "--max-body-bytes", "1m"), SKV_OK);
    assert_int_equal(c.shards, 4);
    assert_int_equal(c.max_body_bytes, 1024 * 1024);
    /* A flag for one option leaves the other's environment value. */
    config_defaults(&c);
    assert_int_equal(load(&c, "--shards=4"), SKV_OK);
    assert_int_equal(c.shards, 4);
    assert_int_equal(c.max_body_bytes, 65536);
    /* A variable whose flag is given is not read at all, valid or not
     * (Kubernetes service links inject SHARDKV_PORT=tcp://...). */
    setenv("SHARDKV_PORT", "tcp://10.0.0.1:8000", 1);
    config_defaults(&c);
    assert_int_equal(load(&c, "--port", "9000"), SKV_OK);
    assert_int_equal(c.port, 9000);
    unsetenv("SHARDKV_PORT");
    /* Unset again: back to the defaults. */
    clean_env(NULL);
    config_defaults(&c);
    assert_int_equal(load_none(&c), SKV_OK);
    assert_int_equal(c.shards, 8);
    assert_int_equal(c.max_body_bytes, 2 * 1024 * 1024);
}

static void test_env_invalid(void **state) {
    (void)state;
    static const struct { const char *name, *value; } bad[] = {
        { "SHARDKV_SHARDS", "0" },         { "SHARDKV_SHARDS", "lots" },  { "SHARDKV_MAX_BODY_BYTES", "5G" },
        { "SHARDKV_MAX_BODY_BYTES", "1x" }, { "SHARDKV_PORT", "65536" }, { "SHARDKV_HASH", "crc32" },
        { "SHARDKV_IDLE_TIMEOUT", "1h" },  { "SHARDKV_ACCESS_LOG", "perhaps" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        skv_config c;
        config_defaults(&c);
        setenv(bad[i].name, bad[i].value, 1);
        int rc = load_none(&c);
        unsetenv(bad[i].name);
        if (rc != SKV_EINVAL) fail_msg("%s=%s accepted", bad[i].name, bad[i].value);
        assert_one_line_error();
        /* The message names the variable it came from. */
        assert_non_null(strstr(captured_err, bad[i].name));
    }
}

/* ---- help, version, bad command lines ---------------------------------------------------- */

static void test_help_and_version(void **state) {
    (void)state;
    skv_config c;
    config_defaults(&c);
    assert_int_equal(load(&c, "--help"), 1);
    assert_non_null(strstr(captured_out, "Usage"));
    assert_non_null(strstr(captured_out, "--max-body-bytes"));
    assert_int_equal(load(&c, "-h"), 1);
    assert_non_null(strstr(captured_out, "Usage"));
    assert_int_equal(load(&c, "--version"), 1);
    assert_string_equal(captured_out, "shardkv " SKV_VERSION "\n");
    assert_int_equal(load(&c, "-V"), 1);
    assert_string_equal(captured_out, "shardkv " SKV_VERSION "\n");
    /* --help wins over the options after it; options before it are parsed. */
    assert_int_equal(load(&c, "--shards=3", "--help", "--shards=0"), 1);
    assert_string_equal(captured_err, "");
}

static void test_usage_lists_every_option(void **state) {
    (void)state;
    static const char *names[] = {
        "--host=",        "--port=",           "--metrics-port=",   "--data-dir=",        "--shards=",
        "--threads=",     "--placement=",      "--hash=",           "--vnodes=",          "--log-level=",
        "--log-format=",  "--access-log=",     "--max-header-bytes=", "--max-uri-bytes=", "--max-body-bytes=",
        "--max-key-bytes=", "--max-value-bytes=", "--max-connections=", "--idle-timeout=", "--request-timeout=",
        "--shutdown-timeout=", "--help", "--version", "SHARDKV_",
    };
    FILE *f = tmpfile();
    assert_non_null(f);
    config_usage(f);
    static char text[16384];
    slurp(f, text, sizeof text);
    fclose(f);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strstr(text, names[i])) fail_msg("--help does not mention %s", names[i]);
}

static void test_unknown_option(void **state) {
    (void)state;
    skv_config c;
    config_defaults(&c);
    assert_rejected(&c, load(&c, "--bogus"));
    assert_non_null(strstr(captured_err, "--bogus"));
    assert_rejected(&c, load(&c, "--bogus=1"));
    assert_rejected(&c, load(&c, "-x"));
    assert_rejected(&c, load(&c, "--shards=4", "--nope"));
    assert_rejected(&c, load(&c, "--help=yes")); /* takes no value */
    assert_rejected(&c, load(&c, "--shards")); /* needs a value */
    assert_rejected(&c, load(&c, "---shards=4"));
}

static void test_positional_argument(void **state) {
    (void)state;
    skv_config c;
    config_defaults(&c);
    assert_rejected(&c, load(&c, "extra"));
    assert_non_null(strstr(captured_err, "extra"));
    assert_rejected(&c, load(&c, "--shards=4", "serve"));
    assert_rejected(&c, load(&c, "serve", "--shards=4"));
    assert_rejected(&c, load(&c, "-"));
    assert_rejected(&c, load(&c, "--", "x"));
    /* A lone "--" ends the options and is fine. */
    config_defaults(&c);
    assert_int_equal(load(&c, "--shards=5", "--"), SKV_OK);
    assert_int_equal(c.shards, 5);
    /* And a normal parse right after the errors still works. */
    assert_int_equal(load(&c, "--shards=6"), SKV_OK);
    assert_int_equal(c.shards, 6);
}

/* Regression: a second config_load after one that stopped inside a group of
 * short options ("-hV") must parse its own argv (getopt reset with optind = 0). */
static void test_reload_after_short_option_group(void **state) {
    (void)state;
    skv_config c;
    config_defaults(&c);
    assert_int_equal(load(&c, "-hV"), 1);
    config_defaults(&c);
    assert_int_equal(load(&c, "--shards=3"), SKV_OK);
    assert_int_equal(c.shards, 3);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, clean_env, clean_env),
        cmocka_unit_test_setup_teardown(test_no_args_keeps_defaults, clean_env, clean_env),
        cmocka_unit_test_setup_teardown(test_string_flags, clean_env, clean_env),
        cmocka_unit_test_setup_teardown(test_port_flags, clean_env, clean_env),
        cmocka_unit_test_setup_teardown(test_count_flags, clean_env, clean_env),
        cmocka_unit_test_setup_teardown(test_size_flags, clean_env, clean_env),
        cmocka_unit_test_setup_teardown(test_duration_flags, clean_env, clean_env),
        cmocka_unit_test_setup_teardown(test_enum_flags, clean_env, clean_env),
        cmocka_unit_test_setup_teardown(test_bool_flag, clean_env, clean_env),
        cmocka_unit_test_setup_teardown(test_uri_limit_clamped_to_header_limit, clean_env, clean_env),
        cmocka_unit_test_setup_teardown(test_many_flags_at_once, clean_env, clean_env),
        cmocka_unit_test_setup_teardown(test_env_applied, clean_env, clean_env),
        cmocka_unit_test_setup_teardown(test_flags_override_env, clean_env, clean_env),
        cmocka_unit_test_setup_teardown(test_env_invalid, clean_env, clean_env),
        cmocka_unit_test_setup_teardown(test_help_and_version, clean_env, clean_env),
        cmocka_unit_test_setup_teardown(test_usage_lists_every_option, clean_env, clean_env),
        cmocka_unit_test_setup_teardown(test_unknown_option, clean_env, clean_env),
        cmocka_unit_test_setup_teardown(test_positional_argument, clean_env, clean_env),
        cmocka_unit_test_setup_teardown(test_reload_after_short_option_group, clean_env, clean_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
