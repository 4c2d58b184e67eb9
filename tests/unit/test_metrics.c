/*
 * Unit tests for metrics: summing over worker slots, histogram shape,
 * status-code bucketing, label escaping, empty and concurrent scrapes, and
 * validation of the exposition by promtool when it is installed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "http.h"
#include "metrics.h"

static const char *const routes[] = { "kv", "health", "metrics" };
#define NROUTES 3
#define NSHARDS 4

static const uint64_t snap_keys[NSHARDS] = { 10, 20, 30, 40 };
static const uint64_t snap_bytes[NSHARDS] = { 100, 200, 300, 400 };
static const double snap_share[NSHARDS] = { 0.25, 0.125, 0.5, 0.125 };

static const int snap_state[NSHARDS] = { 0, 1, 2, 0 };
static const metrics_log_stats snap_wal[NSHARDS] = {
    { .batches = 3, .records = 9, .bytes_written = 900, .fsyncs = 3, .fsync_seconds = 0.25, .log_bytes = 932 },
    { .write_errors = 1 },
    { .snapshots = 2, .snapshot_failures = 1 },
    { 0 },
};

static metrics_snapshot test_snapshot(void) {
    metrics_snapshot s = {
        .nshards = NSHARDS, .shard_keys = snap_keys, .shard_bytes = snap_bytes,
        .shard_share = snap_share, .shard_state = snap_state, .wal = snap_wal, .shard_map_version = 7, .ready = 1,
        .uptime_seconds = 12.5, .version = "0.1.0",
    };
    return s;
}

static void render(metrics *m, skv_buf *out) {
    metrics_snapshot s = test_snapshot();
    skv_buf_reset(out);
    metrics_render(m, &s, out);
}

/* Value of the sample whose name+labels part is exactly series, or -1 when
 * no such line exists, -2 when it occurs twice (no cmocka assert here: the
 * reader thread of the concurrency test calls it). */
static double sample_value(const skv_buf *out, const char *series) {
    size_t n = strlen(series);
    double found = -1;
    int hits = 0;
    const char *line = out->data;
    while (line && *line) {
        const char *eol = strchr(line, '\n');
        if (strncmp(line, series, n) == 0 && line[n] == ' ') {
            found = strtod(line + n + 1, NULL);
            hits++;
        }
        line = eol ? eol + 1 : NULL;
    }
    return hits > 1 ? -2 : found;
}

static int count_lines_with_prefix(const skv_buf *out, const char *prefix) {
    int hits = 0;
    size_t n = strlen(prefix);
    for (const char *line = out->data; line && *line;) {
        if (strncmp(line, prefix, n) == 0) hits++;
        const char *eol = strchr(line, '\n');
        line = eol ? eol + 1 : NULL;
    }
    return hits;
}

static int promtool_available(void) { return access("/usr/bin/promtool", X_OK) == 0; }

/* Runs promtool check metrics on the exposition; returns its exit status. */
static int promtool_check(const skv_buf *out) {
    char path[] = "/tmp/test_metrics_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, out->data, out->len), (ssize_t)out->len);
    close(fd);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "/usr/bin/promtool check metrics < %s", path);
    int status = system(cmd);
    unlink(path);
    if (status == -1 || !WIFEXITED(status)) return -1;
    return WEXITSTATUS(status);
}

static void test_sums_worker_slots(void **state) {
    (void)state;
    metrics *m = metrics_new(3, NSHARDS, routes, NROUTES);
    for (unsigned w = 0; w < 3; w++) {
        metrics_worker *slot = metrics_worker_slot(m, w);
        for (unsigned i = 0; i <= w; i++) {
            metrics_http_observe(slot, 0, HTTP_M_GET, 200, 1000, 10, 100);
            metrics_shard_op(slot, 2, METRICS_OP_PUT);
        }
        metrics_http_observe(slot, 1, HTTP_M_HEAD, 204, 1000, 5, 7);
        metrics_shard_op(slot, 1, METRICS_OP_GET);
        metrics_shard_op(slot, 1, METRICS_OP_DELETE);
        metrics_conn_opened(slot);
        metrics_conn_opened(slot);
        metrics_conn_closed(slot);
        metrics_conn_rejected(slot, METRICS_REJECT_MAX_CONNECTIONS);
    }
    metrics_conn_rejected(metrics_worker_slot(m, 1), METRICS_REJECT_SHUTDOWN);
    skv_buf out;
    skv_buf_init(&out);
    render(m, &out);
    assert_true(sample_value(&out, "shardkv_http_requests_total{route=\"kv\",method=\"GET\",code=\"200\"}") == 6);
    assert_true(sample_value(&out, "shardkv_http_requests_total{route=\"health\",method=\"HEAD\",code=\"204\"}") == 3);
    assert_true(sample_value(&out, "shardkv_http_request_bytes_total{route=\"kv\"}") == 60);
    assert_true(sample_value(&out, "shardkv_http_response_bytes_total{route=\"kv\"}") == 600);
    assert_true(sample_value(&out, "shardkv_http_request_bytes_total{route=\"metrics\"}") == 0);
    assert_true(sample_value(&out, "shardkv_shard_ops_total{shard=\"2\",op=\"put\"}") == 6);
    assert_true(sample_value(&out, "shardkv_shard_ops_total{shard=\"1\",op=\"get\"}") == 3);
    assert_true(sample_value(&out, "shardkv_shard_ops_total{shard=\"0\",op=\"get\"}") == 0);
    assert_true(sample_value(&out, "shardkv_requests_total{shard=\"1\"}") == 6);
    assert_true(sample_value(&out, "shardkv_requests_total{shard=\"2\"}") == 6);
    assert_true(sample_value(&out, "requests_total{shard=\"2\"}") == 6);
    assert_true(sample_value(&out, "shardkv_requests_total{shard=\"3\"}") == 0);
    assert_true(sample_value(&out, "shardkv_connections") == 3);
    assert_true(sample_value(&out, "shardkv_connections_accepted_total") == 6);
    assert_true(sample_value(&out, "shardkv_connections_rejected_total{reason=\"max_connections\"}") == 3);
    assert_true(sample_value(&out, "shardkv_connections_rejected_total{reason=\"shutdown\"}") == 1);
    /* snapshot-driven gauges */
    assert_true(sample_value(&out, "shardkv_shard_size{shard=\"3\"}") == 40);
    assert_true(sample_value(&out, "shard_size{shard=\"1\"}") == 20);
    assert_true(sample_value(&out, "shardkv_shard_bytes{shard=\"2\"}") == 300);
    assert_true(sample_value(&out, "shardkv_shard_ring_share{shard=\"1\"}") == 0.125);
    assert_true(sample_value(&out, "shardkv_shard_map_version") == 7);
    assert_true(sample_value(&out, "shardkv_ready") == 1);
    assert_true(sample_value(&out, "shardkv_uptime_seconds") == 12.5);
    assert_true(sample_value(&out, "shardkv_build_info{version=\"0.1.0\"}") == 1);
    /* out-of-range inputs are ignored or folded, never out of bounds */
    metrics_http_observe(metrics_worker_slot(m, 0), NROUTES, HTTP_M_GET, 200, 1, 1, 1);
    metrics_shard_op(metrics_worker_slot(m, 0), NSHARDS, METRICS_OP_GET);
    metrics_shard_op(metrics_worker_slot(m, 0), 0, METRICS_OP__COUNT);
    metrics_conn_rejected(metrics_worker_slot(m, 0), METRICS_REJECT__COUNT);
    metrics_http_observe(metrics_worker_slot(m, 0), 2, 99, 200, 1, 1, 1);
    render(m, &out);
    assert_true(sample_value(&out, "shardkv_http_requests_total{route=\"kv\",method=\"GET\",code=\"200\"}") == 6);
    assert_true(sample_value(&out, "shardkv_http_requests_total{route=\"metrics\",method=\"OTHER\",code=\"200\"}") == 1);
    assert_true(sample_value(&out, "shardkv_requests_total{shard=\"0\"}") == 0);
    skv_buf_free(&out);
    metrics_free(m);
}

static void test_histogram_cumulative(void **state) {
    (void)state;
    metrics *m = metrics_new(2, NSHARDS, routes, NROUTES);
    /* durations in ns: on a bound (le is inclusive), between bounds, beyond 10 s */
    static const uint64_t obs[] = { 50000, 50001, 999999, 1000000, 3000000000ull, 20000000000ull, 0 };
    const size_t nobs = sizeof obs / sizeof obs[0];
    uint64_t sum = 0;
    for (size_t i = 0; i < nobs; i++) {
        metrics_http_observe(metrics_worker_slot(m, (unsigned)(i % 2)), 1, HTTP_M_PUT, 201, obs[i], 0, 0);
        sum += obs[i];
    }
    skv_buf out;
    skv_buf_init(&out);
    render(m, &out);
#define BUCKET(le) "shardkv_http_request_duration_seconds_bucket{route=\"health\",le=\"" le "\"}"
    assert_true(sample_value(&out, BUCKET("0.00005")) == 2);
    assert_true(sample_value(&out, BUCKET("0.0001")) == 3);
    assert_true(sample_value(&out, BUCKET("0.0005")) == 3);
    assert_true(sample_value(&out, BUCKET("0.001")) == 5);
    assert_true(sample_value(&out, BUCKET("2.5")) == 5);
    assert_true(sample_value(&out, BUCKET("5")) == 6);
    assert_true(sample_value(&out, BUCKET("10")) == 6);
    assert_true(sample_value(&out, BUCKET("+Inf")) == (double)nobs);
#undef BUCKET
    assert_true(sample_value(&out, "shardkv_http_request_duration_seconds_count{route=\"health\"}") == (double)nobs);
    double got_sum = sample_value(&out, "shardkv_http_request_duration_seconds_sum{route=\"health\"}");
    assert_true(got_sum == (double)sum / 1e9);
    /* 18 buckets, monotonic */
    assert_int_equal(count_lines_with_prefix(&out, "shardkv_http_request_duration_seconds_bucket{route=\"health\""), 18);
    double prev = 0;
    for (const char *line = out.data; (line = strstr(line, "_bucket{route=\"health\"")) != NULL; line++) {
        double v = strtod(strchr(line, ' ') + 1, NULL);
        assert_true(v >= prev);
        prev = v;
    }
    /* routes without traffic have no histogram */
    assert_int_equal(count_lines_with_prefix(&out, "shardkv_http_request_duration_seconds_bucket{route=\"kv\""), 0);
    assert_int_equal(count_lines_with_prefix(&out, "shardkv_http_request_duration_seconds_count{route=\"kv\""), 0);
    skv_buf_free(&out);
    metrics_free(m);
}

static void test_status_code_buckets(void **state) {
    (void)state;
    metrics *m = metrics_new(1, 1, routes, NROUTES);
    metrics_worker *w = metrics_worker_slot(m, 0);
    static const int known[] = { 100, 200, 201, 202, 204, 206, 301, 304, 400, 401, 403, 404, 405, 408, 409,
                                 411, 412, 413, 414, 415, 416, 417, 422, 429, 431, 500, 501, 503, 505, 507 };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        metrics_http_observe(w, 0, HTTP_M_GET, known[i], 1, 0, 0);
    static const int unknown[] = { 0, -1, 99, 299, 302, 418, 502, 600, 100000 };
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        metrics_http_observe(w, 0, HTTP_M_GET, unknown[i], 1, 0, 0);
    skv_buf out;
    skv_buf_init(&out);
    render(m, &out);
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        char series[128];
        snprintf(series, sizeof series,
                 "shardkv_http_requests_total{route=\"kv\",method=\"GET\",code=\"%d\"}", known[i]);
        assert_true(sample_value(&out, series) == 1);
    }
    assert_true(sample_value(&out, "shardkv_http_requests_total{route=\"kv\",method=\"GET\",code=\"other\"}") ==
                (double)(sizeof unknown / sizeof unknown[0]));
    assert_true(sample_value(&out, "shardkv_http_requests_total{route=\"kv\",method=\"GET\",code=\"302\"}") == -1);
    /* only non-zero series: 30 known + other */
    assert_int_equal(count_lines_with_prefix(&out, "shardkv_http_requests_total{"), 31);
    skv_buf_free(&out);
    metrics_free(m);
}

static void test_label_escaping(void **state) {
    (void)state;
    static const char *const odd_routes[] = { "a\"b\\c\nd", "plain" };
    metrics *m = metrics_new(1, 1, odd_routes, 2);
    metrics_http_observe(metrics_worker_slot(m, 0), 0, HTTP_M_DELETE, 404, 2000, 1, 2);
    metrics_snapshot s = test_snapshot();
    s.nshards = 1;
    s.version = "v\"1\\\n";
    skv_buf out;
    skv_buf_init(&out);
    metrics_render(m, &s, &out);
    assert_true(sample_value(&out, "shardkv_http_requests_total{route=\"a\\\"b\\\\c\\nd\",method=\"DELETE\",code=\"404\"}") == 1);
    assert_true(sample_value(&out, "shardkv_http_request_bytes_total{route=\"a\\\"b\\\\c\\nd\"}") == 1);
    assert_true(sample_value(&out, "shardkv_build_info{version=\"v\\\"1\\\\\\n\"}") == 1);
    assert_null(strstr(out.data, "c\nd")); /* no raw newline inside a label */
    if (promtool_available()) assert_int_equal(promtool_check(&out), 0);
    skv_buf_free(&out);
    metrics_free(m);
}

static void test_shard_log_families(void **state) {
    (void)state;
    metrics *m = metrics_new(1, NSHARDS, routes, NROUTES);
    skv_buf out;
    skv_buf_init(&out);
    render(m, &out);
    assert_true(sample_value(&out, "shardkv_wal_batches_total{shard=\"0\"}") == 3);
    assert_true(sample_value(&out, "shardkv_wal_records_total{shard=\"0\"}") == 9);
    assert_true(sample_value(&out, "shardkv_wal_bytes_total{shard=\"0\"}") == 900);
    assert_true(sample_value(&out, "shardkv_wal_fsyncs_total{shard=\"0\"}") == 3);
    assert_true(sample_value(&out, "shardkv_wal_fsync_seconds_total{shard=\"0\"}") == 0.25);
    assert_true(sample_value(&out, "shardkv_wal_log_bytes{shard=\"0\"}") == 932);
    assert_true(sample_value(&out, "shardkv_wal_errors_total{shard=\"1\"}") == 1);
    assert_true(sample_value(&out, "shardkv_snapshots_total{shard=\"2\",result=\"ok\"}") == 2);
    assert_true(sample_value(&out, "shardkv_snapshots_total{shard=\"2\",result=\"failed\"}") == 1);
    assert_true(sample_value(&out, "shardkv_shard_state{shard=\"1\",state=\"disk_full\"}") == 1);
    assert_true(sample_value(&out, "shardkv_shard_state{shard=\"1\",state=\"ok\"}") == 0);
    assert_true(sample_value(&out, "shardkv_shard_state{shard=\"2\",state=\"degraded\"}") == 1);
    assert_int_equal(count_lines_with_prefix(&out, "shardkv_shard_state{"), NSHARDS * 3);
    if (promtool_available()) assert_int_equal(promtool_check(&out), 0);
    /* no log yet (recovering): the families are declared but empty */
    metrics_snapshot s = test_snapshot();
    s.wal = NULL;
    skv_buf_reset(&out);
    metrics_render(m, &s, &out);
    assert_int_equal(count_lines_with_prefix(&out, "shardkv_wal_batches_total{"), 0);
    assert_int_equal(count_lines_with_prefix(&out, "# TYPE shardkv_wal_batches_total counter"), 1);
    skv_buf_free(&out);
    metrics_free(m);
}

static void test_zero_traffic(void **state) {
    (void)state;
    metrics *m = metrics_new(4, NSHARDS, routes, NROUTES);
    skv_buf out;
    skv_buf_init(&out);
    render(m, &out);
    assert_int_equal(count_lines_with_prefix(&out, "shardkv_http_requests_total{"), 0);
    assert_int_equal(count_lines_with_prefix(&out, "# TYPE shardkv_http_requests_total counter"), 1);
    assert_int_equal(count_lines_with_prefix(&out, "# HELP shardkv_http_requests_total "), 1);
    assert_int_equal(count_lines_with_prefix(&out, "# TYPE shardkv_http_request_duration_seconds histogram"), 1);
    assert_int_equal(count_lines_with_prefix(&out, "shardkv_http_request_duration_seconds_"), 0);
    assert_int_equal(count_lines_with_prefix(&out, "shardkv_shard_ops_total{"), NSHARDS * 3);
    assert_int_equal(count_lines_with_prefix(&out, "shardkv_requests_total{"), NSHARDS);
    assert_int_equal(count_lines_with_prefix(&out, "requests_total{"), NSHARDS);
    assert_int_equal(count_lines_with_prefix(&out, "shard_size{"), NSHARDS);
    assert_true(sample_value(&out, "shardkv_connections") == 0);
    assert_true(sample_value(&out, "shardkv_ready") == 1);
    /* the alias families say what they are */
    assert_non_null(strstr(out.data, "# HELP requests_total Alias of shardkv_requests_total"));
    assert_non_null(strstr(out.data, "# HELP shard_size Alias of shardkv_shard_size"));
    if (access("/proc/self/stat", R_OK) == 0) {
        assert_true(sample_value(&out, "process_open_fds") >= 3);
        assert_true(sample_value(&out, "process_max_fds") > 0);
        assert_true(sample_value(&out, "process_resident_memory_bytes") > 0);
        assert_true(sample_value(&out, "process_virtual_memory_bytes") > 0);
        assert_true(sample_value(&out, "process_cpu_seconds_total") >= 0);
        assert_true(sample_value(&out, "process_start_time_seconds") > 1e9);
    }
    /* newline-terminated, no empty lines */
    for (const char *line = out.data; *line;) {
        const char *eol = strchr(line, '\n');
        assert_non_null(eol);
        assert_true(eol > line);
        line = eol + 1;
    }
    if (promtool_available()) assert_int_equal(promtool_check(&out), 0);

    /* no snapshot and no workers: still a valid exposition */
    metrics *bare = metrics_new(0, 0, NULL, 0);
    skv_buf_reset(&out);
    metrics_render(bare, NULL, &out);
    assert_true(sample_value(&out, "shardkv_build_info{version=\"unknown\"}") == 1);
    assert_true(sample_value(&out, "shardkv_ready") == -1);
    if (promtool_available()) assert_int_equal(promtool_check(&out), 0);
    metrics_free(bare);
    skv_buf_free(&out);
    metrics_free(m);
}

static void test_promtool_with_traffic(void **state) {
    (void)state;
    if (!promtool_available()) {
        skip();
        return;
    }
    metrics *m = metrics_new(2, NSHARDS, routes, NROUTES);
    for (unsigned w = 0; w < 2; w++) {
        metrics_worker *slot = metrics_worker_slot(m, w);
        for (int method = 0; method < HTTP_M__COUNT; method++) {
            metrics_http_observe(slot, (unsigned)method % NROUTES, method, 200 + method, 1000u * (unsigned)method, 9, 99);
            metrics_http_observe(slot, 2, method, 503, 123456789, 9, 99);
        }
        metrics_shard_op(slot, 3, METRICS_OP_DELETE);
        metrics_conn_opened(slot);
        metrics_conn_rejected(slot, METRICS_REJECT_SHUTDOWN);
    }
    skv_buf out;
    skv_buf_init(&out);
    render(m, &out);
    assert_int_equal(promtool_check(&out), 0);
    skv_buf_free(&out);
    metrics_free(m);
}

/* ---- concurrency ---- */

#define OBSERVATIONS 100000

struct writer_arg {
    metrics_worker *slot;
    unsigned route;
};

static volatile int writers_done;

static void *writer_main(void *p) {
    struct writer_arg *a = p;
    for (unsigned i = 0; i < OBSERVATIONS; i++) {
        metrics_http_observe(a->slot, a->route, HTTP_M_GET, 200, (uint64_t)(i % 7) * 100000u, 3, 5);
        metrics_shard_op(a->slot, i % NSHARDS, METRICS_OP_GET);
        metrics_conn_opened(a->slot);
        metrics_conn_closed(a->slot);
    }
    return NULL;
}

struct reader_result {
    metrics *m;
    int renders;
    int went_backwards; /* cmocka asserts are not thread-safe: report instead */
};

static void *reader_main(void *p) {
    struct reader_result *r = p;
    skv_buf out;
    skv_buf_init(&out);
    double prev = 0;
    while (!__atomic_load_n(&writers_done, __ATOMIC_ACQUIRE) || r->renders < 3) {
        render(r->m, &out);
        double v = sample_value(&out, "shardkv_shard_ops_total{shard=\"0\",op=\"get\"}");
        if (v < prev) r->went_backwards++;
        prev = v;
        r->renders++;
    }
    skv_buf_free(&out);
    return NULL;
}

static void test_concurrent_observe_and_render(void **state) {
    (void)state;
    metrics *m = metrics_new(2, NSHARDS, routes, NROUTES);
    struct writer_arg args[2] = { { metrics_worker_slot(m, 0), 0 }, { metrics_worker_slot(m, 1), 0 } };
    struct reader_result rr = { m, 0, 0 };
    pthread_t writers[2], reader;
    __atomic_store_n(&writers_done, 0, __ATOMIC_RELEASE);
    assert_int_equal(pthread_create(&reader, NULL, reader_main, &rr), 0);
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&writers[i], NULL, writer_main, &args[i]), 0);
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_join(writers[i], NULL), 0);
    __atomic_store_n(&writers_done, 1, __ATOMIC_RELEASE);
    assert_int_equal(pthread_join(reader, NULL), 0);
    assert_true(rr.renders >= 3);
    assert_int_equal(rr.went_backwards, 0);

    skv_buf out;
    skv_buf_init(&out);
    render(m, &out);
    assert_true(sample_value(&out, "shardkv_http_requests_total{route=\"kv\",method=\"GET\",code=\"200\"}") == 2.0 * OBSERVATIONS);
    assert_true(sample_value(&out, "shardkv_http_request_duration_seconds_count{route=\"kv\"}") == 2.0 * OBSERVATIONS);
    assert_true(sample_value(&out, "shardkv_http_request_duration_seconds_bucket{route=\"kv\",le=\"+Inf\"}") == 2.0 * OBSERVATIONS);
    assert_true(sample_value(&out, "shardkv_http_request_bytes_total{route=\"kv\"}") == 6.0 * OBSERVATIONS);
    assert_true(sample_value(&out, "shardkv_http_response_bytes_total{route=\"kv\"}") == 10.0 * OBSERVATIONS);
    for (unsigned s = 0; s < NSHARDS; s++) {
        char series[64];
        snprintf(series, sizeof series, "shardkv_requests_total{shard=\"%u\"}", s);
        assert_true(sample_value(&out, series) == 2.0 * OBSERVATIONS / NSHARDS);
    }
    assert_true(sample_value(&out, "shardkv_connections_accepted_total") == 2.0 * OBSERVATIONS);
    assert_true(sample_value(&out, "shardkv_connections") == 0);
    skv_buf_free(&out);
    metrics_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sums_worker_slots),
        cmocka_unit_test(test_histogram_cumulative),
        cmocka_unit_test(test_status_code_buckets),
        cmocka_unit_test(test_label_escaping),
        cmocka_unit_test(test_shard_log_families),
        cmocka_unit_test(test_zero_traffic),
        cmocka_unit_test(test_promtool_with_traffic),
        cmocka_unit_test(test_concurrent_observe_and_render),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
