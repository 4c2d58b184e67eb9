# bench/durable.bash — the durable, snapshot and recovery sections of
# bench/run, which sources this file and provides the helpers it uses
# (die, run_client, wrk_once, parse_wrk, stop_pid, child_of, proc_ticks,
# pick, ratio, json_str, port_open, ...). See bench/README.md.
#
#   durable   PUT throughput and latency of shardkv under --fsync always,
#             everysec and never, and of Redis with appendonly yes and
#             appendfsync always and everysec, at BENCH_DURABLE_CONNS. Every
#             run starts a fresh server on a fresh, empty data directory.
#   snapshot  PUTs under --fsync always at BENCH_SNAPSHOT_CONNS, with
#             --snapshot-bytes 0 and with BENCH_SNAPSHOT_BYTES: latency with
#             and without snapshots being written during the run.
#   recovery  for each count in BENCH_RECOVERY_KEYS: load that many keys,
#             stop, restart and time until ready; log only, then after a
#             snapshot (shardkv) or an AOF rewrite (Redis). Bytes on disk per key.
#
# Environment (defaults in brackets):
#   BENCH_DURABLE_CONNS ["1 16 64"]
#   BENCH_DURABLE_PIN [1]        1: shardkv and redis-server pinned to
#                                BENCH_SERVER_CPU (durable and snapshot
#                                sections); 0: not pinned (the client still is)
#   BENCH_DURABLE_SHARDS [""]    --shards for the durable section ("" = shardkv's default)
#   BENCH_SNAPSHOT_CONNS [64]  BENCH_SNAPSHOT_BYTES [1M]  BENCH_SNAPSHOT_KEYS [0]
#   BENCH_RECOVERY_KEYS ["1000000"], e.g. "1000000 10000000" (multiples of 100)
#   BENCH_RECOVERY_FSYNC [never]  BENCH_RECOVERY_REPEAT [BENCH_REPEAT]
#   REDIS_SERVER [redis-server]  REDIS_BENCHMARK [redis-benchmark]  REDIS_CLI [redis-cli]

BENCH_DURABLE_CONNS=${BENCH_DURABLE_CONNS:-1 16 64}
BENCH_DURABLE_PIN=${BENCH_DURABLE_PIN:-1}
BENCH_DURABLE_SHARDS=${BENCH_DURABLE_SHARDS:-}
BENCH_SNAPSHOT_CONNS=${BENCH_SNAPSHOT_CONNS:-64}
BENCH_SNAPSHOT_BYTES=${BENCH_SNAPSHOT_BYTES:-1M}
BENCH_SNAPSHOT_KEYS=${BENCH_SNAPSHOT_KEYS:-0}
BENCH_RECOVERY_KEYS=${BENCH_RECOVERY_KEYS:-1000000}
BENCH_RECOVERY_FSYNC=${BENCH_RECOVERY_FSYNC:-never}
BENCH_RECOVERY_REPEAT=${BENCH_RECOVERY_REPEAT:-$BENCH_REPEAT}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
REDIS_BENCHMARK=${REDIS_BENCHMARK:-redis-benchmark}
REDIS_CLI=${REDIS_CLI:-redis-cli}

# The durable configurations, in the order they run and print. At each
# connection count shardkv and Redis alternate, so that a noisy stretch of
# the shared machine hits both rather than one.
DURABLE_CONFIGS=(kv-always redis-always kv-everysec redis-everysec kv-never)
# Target: shardkv always >= 1.5 x Redis appendfsync always at 64 connections.
DURABLE_TARGET_CONNS=64
DURABLE_TARGET_RATIO=1.5
SNAPSHOT_CONFIGS=(off on)
LOAD_CONNS=4            # wrk connections of the recovery load (bench/load.lua)
TOUCH_KEYS=256          # keys re-PUT to make every shard of a loaded node snapshot

durable_check_config() {
    local v
    for v in BENCH_DURABLE_PIN BENCH_SNAPSHOT_CONNS BENCH_SNAPSHOT_KEYS BENCH_RECOVERY_REPEAT; do
        is_uint "${!v}" || die "$v must be a non-negative integer, got '${!v}'"
    done
    [ "$BENCH_DURABLE_PIN" = 0 ] || [ "$BENCH_DURABLE_PIN" = 1 ] || die "BENCH_DURABLE_PIN must be 0 or 1"
    ((BENCH_SNAPSHOT_CONNS >= 1)) || die "BENCH_SNAPSHOT_CONNS must be >= 1"
    ((BENCH_RECOVERY_REPEAT >= 1)) || die "BENCH_RECOVERY_REPEAT must be >= 1"
    [[ $BENCH_SNAPSHOT_BYTES =~ ^[1-9][0-9]*[KMG]?$ ]] || die "BENCH_SNAPSHOT_BYTES must be a size like 1M, got '$BENCH_SNAPSHOT_BYTES'"
    [ -z "$BENCH_DURABLE_SHARDS" ] || is_uint "$BENCH_DURABLE_SHARDS" || die "BENCH_DURABLE_SHARDS must be an integer"
    case $BENCH_RECOVERY_FSYNC in always | everysec | never) ;; *) die "BENCH_RECOVERY_FSYNC: always, everysec or never" ;; esac
    for v in $BENCH_DURABLE_CONNS; do
        if ! is_uint "$v" || ((v < 1)); then die "BENCH_DURABLE_CONNS entries must be integers >= 1, got '$v'"; fi
    done
    for v in $BENCH_RECOVERY_KEYS; do
        if ! is_uint "$v" || ((v < 100 || v % 100 != 0)); then
            die "BENCH_RECOVERY_KEYS entries must be multiples of 100, got '$v'"
        fi
    done
}

durable_find_tools() {
    if want_section durable || want_section recovery; then
        local t
        for t in "$REDIS_SERVER" "$REDIS_BENCHMARK" "$REDIS_CLI"; do
            command -v "$t" >/dev/null || die "$t not found (scripts/install-deps bench installs redis-server and redis-tools)"
        done
    fi
}

# Versions and the filesystem the data directories live on (that of $TMP).
durable_init() {
    REDIS_VERSION=""
    if command -v "$REDIS_SERVER" >/dev/null; then
        REDIS_VERSION=$( ("$REDIS_SERVER" --version 2>&1 || true) | sed -n 's/.* v=\([^ ]*\).*/\1/p')
    fi
    # "source fstype mountpoint" of the data directories.
    DATA_FS=$(df -PT "$TMP" 2>/dev/null | awk 'NR == 2 { print $1, $2, $7 }')
    DATA_FS=${DATA_FS:-unknown unknown unknown}
}

data_fs_text() {
    local f
    read -ra f <<<"$DATA_FS"
    printf '%s (%s on %s, mounted on %s)' "$TMP" "${f[1]}" "${f[0]}" "${f[2]}"
}

# ---------------------------------------------------------------- servers
KV_PORT="" KV_LOG="" REDIS_PORT="" REDIS_LOG=""

# pin_prefix PIN: the taskset words for a server, or nothing.
pin_prefix() {
    if [ "$1" = 1 ]; then echo "taskset -c $BENCH_SERVER_CPU"; fi
}

# kv_launch NAME DATA_DIR PIN BOUND_S ARGS...: starts shardkv in the
# background, killed after BOUND_S seconds; log in $TMP/NAME.log. Sets
# KV_PID and KV_LOG and clears KV_PORT; does not wait for anything.
kv_launch() {
    local name=$1 data=$2 pin=$3 bound=$4
    shift 4
    KV_LOG=$TMP/$name.log
    KV_PORT=""
    # shellcheck disable=SC2046
    timeout "$bound" $(pin_prefix "$pin") "$SHARDKV_BIN" --host 127.0.0.1 --port 0 --metrics-port 0 \
        --data-dir "$data" --shutdown-timeout 2s "$@" >"$KV_LOG" 2>&1 &
    KV_PID=$!
}

# Sets KV_PORT from the log once shardkv logged it; false while not yet.
kv_port_known() {
    [ -n "$KV_PORT" ] && return 0
    KV_PORT=$(grep -so 'listening on http://[^ ]*' "$KV_LOG" | head -n1 | sed 's/.*://') || true
    [ -n "$KV_PORT" ]
}

# http_status PORT PATH: the status code of a GET, or nothing.
http_status() {
    local line=""
    line=$( (exec 3<>"/dev/tcp/127.0.0.1/$1" &&
        printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$2" >&3 &&
        read -r -t 5 l <&3 && echo "$l") 2>/dev/null) || true
    echo "${line:9:3}"
}

# http_get PORT PATH: the whole response (head and body) of a GET.
http_get() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1" &&
        printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$2" >&3 &&
        timeout 30 cat <&3) 2>/dev/null || true
}

# kv_wait_ready BOUND_S: waits for /health/ready 200, polling every 10 ms.
kv_wait_ready() {
    local bound=$1 end
    end=$(awk -v t="$EPOCHREALTIME" -v b="$bound" 'BEGIN { printf "%.3f", t + b }')
    while :; do
        kill -0 "$KV_PID" 2>/dev/null || return 1
        if kv_port_known && [ "$(http_status "$KV_PORT" /health/ready)" = 200 ]; then return 0; fi
        awk -v t="$EPOCHREALTIME" -v e="$end" 'BEGIN { exit !(t > e) }' && return 1
        sleep 0.01
    done
}

# kv_start NAME DATA_DIR PIN BOUND_S ARGS...: kv_launch, then waits up to
# 60 s for the node to be ready.
kv_start() {
    kv_launch "$@"
    kv_wait_ready 60 || { cat "$KV_LOG" >&2; die "shardkv did not start ($1)"; }
}

# kv_stop [GRACE_TENTHS]: SIGTERM, wait for the exit (KILL after the grace).
kv_stop() {
    stop_pid "$KV_PID" "${1:-100}"
    KV_PID=""
}

# The number of keys the running node holds, from /health.
kv_keys() {
    http_get "$KV_PORT" /health | sed -n 's/.*"shard_count":[0-9]*,"keys":\([0-9]*\).*/\1/p'
}

kv_shard_count() {
    http_get "$KV_PORT" /health | sed -n 's/.*"shard_count":\([0-9]*\).*/\1/p'
}

# Seconds between two of shardkv's log lines: the first matching $1 and the
# first matching $2 (the log's own millisecond timestamps).
kv_log_seconds() {
    awk -v a="$1" -v b="$2" '
        function secs(ts,   t, h) { split(ts, t, "T"); split(t[2], h, ":"); return h[1] * 3600 + h[2] * 60 + h[3] }
        index($0, a) && x == "" { x = secs($1) }
        index($0, b) && y == "" { y = secs($1) }
        END { if (x != "" && y != "") printf "%.3f\n", y - x; else print "nan" }' "$KV_LOG"
}

redis_pid() { child_of "$REDIS_PID"; }

# redis_launch NAME DIR PIN BOUND_S PORT ARGS...: starts redis-server on
# 127.0.0.1:PORT in the background (no RDB saves; ARGS add the AOF
# settings), log in $TMP/NAME.log. Sets REDIS_PID, REDIS_LOG, REDIS_PORT.
redis_launch() {
    local name=$1 dir=$2 pin=$3 bound=$4 port=$5
    shift 5
    REDIS_LOG=$TMP/$name.log
    REDIS_PORT=$port
    mkdir -p "$dir"
    # shellcheck disable=SC2046
    timeout "$bound" $(pin_prefix "$pin") "$REDIS_SERVER" --bind 127.0.0.1 --port "$port" --dir "$dir" \
        --save '' --daemonize no --protected-mode yes --logfile '' "$@" >"$REDIS_LOG" 2>&1 &
    REDIS_PID=$!
}

# redis_ping: prints the first line of Redis's answer to PING (+PONG when it
# is ready, -LOADING while it loads), or nothing.
redis_ping() {
    local line=""
    line=$( (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT" && printf 'PING\r\n' >&3 &&
        read -r -t 5 l <&3 && echo "$l") 2>/dev/null) || true
    echo "${line%$'\r'}"
}

# redis_wait_pong BOUND_S: waits for +PONG, polling every 10 ms.
redis_wait_pong() {
    local bound=$1 end
    end=$(awk -v t="$EPOCHREALTIME" -v b="$bound" 'BEGIN { printf "%.3f", t + b }')
    while :; do
        kill -0 "$REDIS_PID" 2>/dev/null || return 1
        [ "$(redis_ping)" = "+PONG" ] && return 0
        awk -v t="$EPOCHREALTIME" -v e="$end" 'BEGIN { exit !(t > e) }' && return 1
        sleep 0.01
    done
}

# redis_start NAME DIR PIN BOUND_S ARGS...: redis_launch on a free port, then
# waits up to 60 s for PONG (tries another port if that one was taken).
redis_start() {
    local name=$1 dir=$2 pin=$3 bound=$4 attempt port
    shift 4
    for ((attempt = 0; attempt < 10; attempt++)); do
        port=$((20000 + RANDOM % 40000))
        port_open "$port" && continue
        redis_launch "$name" "$dir" "$pin" "$bound" "$port" "$@"
        redis_wait_pong 60 && return 0
        stop_pid "$REDIS_PID"
        REDIS_PID=""
        grep -q "Address already in use" "$REDIS_LOG" || break
    done
    cat "$REDIS_LOG" >&2
    die "redis-server did not start ($name)"
}

redis_cmd() { timeout 60 "$REDIS_CLI" -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }

# redis_stop: SHUTDOWN NOSAVE (the AOF is fsynced, no RDB written), then
# waits up to 60 s for the exit (then TERM, KILL).
redis_stop() {
    local i
    [ -n "$REDIS_PID" ] || return 0
    redis_cmd shutdown nosave >/dev/null 2>&1 || true
    for ((i = 0; i < 600; i++)); do
        kill -0 "$REDIS_PID" 2>/dev/null || break
        sleep 0.1
    done
    stop_pid "$REDIS_PID"
    REDIS_PID=""
}

vm_rss_mib() {  # pid: resident memory in MiB
    awk '/^VmRSS:/ { printf "%.1f\n", $2 / 1024; found = 1 } END { if (!found) print "nan" }' "/proc/$1/status" 2>/dev/null ||
        echo nan
}

elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", b - a }'; }

# Parses the "latency_us" line of bench/kv.lua's done() into the per-run
# arrays under key $1 (overriding wrk's rounded p50/p99 with exact ones).
declare -A P999 PMAX
parse_latency() {
    local key=$1 file=$2 line
    line=$(grep '^latency_us ' "$file" | tail -n1) || true
    [ -n "$line" ] || { cat "$file" >&2; die "no latency_us line in $file"; }
    read -r _ _ "P50[$key]" _ _ _ "P99[$key]" _ "P999[$key]" _ "PMAX[$key]" <<<"$line"
}

# ---------------------------------------------------------------- durable
# Per run, "config:conns:rep": D_RPS D_P50 D_P99 D_P999 D_MAX D_US D_REQS D_ERR
# D_BG (snapshots written, or Redis AOF rewrites started, during the whole
# life of the server); aggregates "config:conns": DM_*.
declare -A D_RPS D_P50 D_P99 D_P999 D_MAX D_US D_REQS D_ERR D_BG
declare -A DM_RPS DM_P50 DM_P99 DM_P999 DM_MAX DM_US DM_RATIO DM_ERR DM_REQS DM_BG
DURABLE_SHARDS_ARGS=()

durable_server_bound() { echo $((3 * (BENCH_WARMUP + BENCH_SECONDS) + 120)); }

durable_kv_run() {  # policy conns rep
    local policy=$1 conns=$2 rep=$3 key=kv-$1:$2:$3 raw=$RAW/durable-$2-kv-$1.r$3 data=$TMP/durable-data t0 t1 spid
    local args
    rm -rf "$data"
    kv_start durable-kv "$data" "$BENCH_DURABLE_PIN" "$(durable_server_bound)" --threads 1 --fsync "$policy" \
        "${DURABLE_SHARDS_ARGS[@]+"${DURABLE_SHARDS_ARGS[@]}"}"
    args=(-s "$BENCH_DIR/kv.lua" "http://127.0.0.1:$KV_PORT" -- put "$BENCH_PUT_KEYS" "$BENCH_VALUE_BYTES")
    printf '  run %s/%s  %4s conns  %-15s ...' "$rep" "$BENCH_REPEAT" "$conns" "shardkv $policy" >&2
    if ((BENCH_WARMUP > 0)); then wrk_once "$conns" "$BENCH_WARMUP" "$raw.warmup.txt" "${args[@]}"; fi
    spid=$(child_of "$KV_PID")
    t0=$(proc_ticks "$spid")
    wrk_once "$conns" "$BENCH_SECONDS" "$raw.txt" "${args[@]}"
    t1=$(proc_ticks "$spid")
    kill -0 "$KV_PID" 2>/dev/null || { cat "$KV_LOG" >&2; die "shardkv died during the run"; }
    parse_wrk "d:$key" "$raw.txt"
    parse_latency "d:$key" "$raw.txt"
    D_RPS[$key]=${RPS[d:$key]} D_P50[$key]=${P50[d:$key]} D_P99[$key]=${P99[d:$key]}
    D_P999[$key]=${P999[d:$key]} D_MAX[$key]=${PMAX[d:$key]} D_REQS[$key]=${REQS[d:$key]}
    D_ERR[$key]=$((${NON2XX[d:$key]} + ${SOCKERR[d:$key]}))
    D_US[$key]=$(us_per_req "$t0" "$t1" "${D_REQS[$key]}")
    kv_stop
    D_BG[$key]=$(grep -c 'snapshot at seq' "$KV_LOG" || true)
    cp "$KV_LOG" "$raw.server.log"
    rm -rf "$data"
    durable_print_run "$key"
}

us_per_req() {  # ticks0 ticks1 requests
    awk -v a="${1:-0}" -v b="${2:-0}" -v n="$3" -v hz="$CLK_TCK" \
        'BEGIN { printf "%.2f\n", (n > 0 && b > a) ? (b - a) * 1e6 / hz / n : 0 }'
}

# redis_bench CONNS N OUTFILE: one bounded redis-benchmark SET run of N
# requests on the client CPU (same key space and value size as kv.lua put).
redis_bench() {
    local conns=$1 n=$2 out=$3 bound
    bound=$((6 * (BENCH_SECONDS + BENCH_WARMUP) + 60))
    run_client "$bound" "$out" "$REDIS_BENCHMARK" -h 127.0.0.1 -p "$REDIS_PORT" -t set -d "$BENCH_VALUE_BYTES" \
        -r "$BENCH_PUT_KEYS" -c "$conns" -n "$n" --csv || { cat "$out" >&2; die "redis-benchmark failed"; }
    grep -q '^"SET",' "$out" || { cat "$out" >&2; die "cannot parse redis-benchmark output $out"; }
}

# Prints "rps p50_us p99_us max_us" of a redis-benchmark --csv report.
redis_bench_parse() {
    awk -F, '/^"SET",/ { gsub(/"/, ""); $0 = $0; printf "%s %.0f %.0f %.0f\n", $2, $5 * 1000, $7 * 1000, $8 * 1000 }' "$1"
}

# Requests for about SECONDS s at the rate of a redis-benchmark report (>= 1000).
redis_requests_for() {
    awk -v s="$2" '/^"SET",/ { gsub(/"/, ""); split($0, f, ","); n = int(f[2] * s); print (n < 1000) ? 1000 : n }' "$1"
}

# redis-benchmark has no duration option: a short calibration run gives the
# rate, then the warm-up and the measured run get as many requests as that
# rate serves in BENCH_WARMUP and BENCH_SECONDS seconds.
durable_redis_run() {  # policy conns rep
    local policy=$1 conns=$2 rep=$3 key=redis-$1:$2:$3 raw=$RAW/durable-$2-redis-$1.r$3 data=$TMP/durable-redis
    local n t0 t1 spid rps p50 p99 max
    rm -rf "$data"
    redis_start durable-redis "$data" "$BENCH_DURABLE_PIN" "$(durable_server_bound)" \
        --appendonly yes --appendfsync "$policy"
    printf '  run %s/%s  %4s conns  %-15s ...' "$rep" "$BENCH_REPEAT" "$conns" "redis $policy" >&2
    n=$((conns * 200 < 1000 ? 1000 : conns * 200))
    redis_bench "$conns" "$n" "$raw.calibrate.txt"
    if ((BENCH_WARMUP > 0)); then
        redis_bench "$conns" "$(redis_requests_for "$raw.calibrate.txt" "$BENCH_WARMUP")" "$raw.warmup.txt"
    else
        cp "$raw.calibrate.txt" "$raw.warmup.txt"
    fi
    n=$(redis_requests_for "$raw.warmup.txt" "$BENCH_SECONDS")
    spid=$(redis_pid)
    t0=$(proc_ticks "$spid")
    redis_bench "$conns" "$n" "$raw.txt"
    t1=$(proc_ticks "$spid")
    kill -0 "$REDIS_PID" 2>/dev/null || { cat "$REDIS_LOG" >&2; die "redis-server died during the run"; }
    read -r rps p50 p99 max <<<"$(redis_bench_parse "$raw.txt")"
    D_RPS[$key]=$rps D_P50[$key]=$p50 D_P99[$key]=$p99 D_P999[$key]=nan D_MAX[$key]=$max
    D_REQS[$key]=$n D_ERR[$key]=0
    D_US[$key]=$(us_per_req "$t0" "$t1" "$n")
    redis_stop
    D_BG[$key]=$(grep -c 'Background append only file rewriting started' "$REDIS_LOG" || true)
    cp "$REDIS_LOG" "$raw.server.log"
    rm -rf "$data"
    durable_print_run "$key"
}

durable_print_run() {
    printf ' %10.0f req/s  p50 %7.0f us  p99 %7.0f us  %s us/req\n' "${D_RPS[$1]}" "${D_P50[$1]}" "${D_P99[$1]}" \
        "${D_US[$1]}" >&2
}

section_durable() {
    [ -z "$BENCH_DURABLE_SHARDS" ] || DURABLE_SHARDS_ARGS=(--shards "$BENCH_DURABLE_SHARDS")
    echo "bench/run: [durable] PUT ${BENCH_VALUE_BYTES}-byte values over $BENCH_PUT_KEYS keys; data dirs in $(data_fs_text)" >&2
    local rep conns cfg
    for ((rep = 1; rep <= BENCH_REPEAT; rep++)); do
        for conns in $BENCH_DURABLE_CONNS; do
            for cfg in "${DURABLE_CONFIGS[@]}"; do
                case $cfg in
                    kv-*) durable_kv_run "${cfg#kv-}" "$conns" "$rep" ;;
                    redis-*) durable_redis_run "${cfg#redis-}" "$conns" "$rep" ;;
                esac
            done
        done
    done
    durable_aggregate
}

durable_aggregate() {
    local conns cfg key r rep rps p50 p99 p999 max us other
    for conns in $BENCH_DURABLE_CONNS; do
        for cfg in "${DURABLE_CONFIGS[@]}"; do
            key=$cfg:$conns
            rps=() p50=() p99=() p999=() max=() us=()
            DM_ERR[$key]=0 DM_REQS[$key]=0 DM_BG[$key]=0
            for ((rep = 1; rep <= BENCH_REPEAT; rep++)); do
                r=$key:$rep
                rps+=("${D_RPS[$r]}") p50+=("${D_P50[$r]}") p99+=("${D_P99[$r]}")
                p999+=("${D_P999[$r]}") max+=("${D_MAX[$r]}") us+=("${D_US[$r]}")
                DM_ERR[$key]=$((DM_ERR[$key] + D_ERR[$r]))
                DM_REQS[$key]=$((DM_REQS[$key] + D_REQS[$r]))
                DM_BG[$key]=$((DM_BG[$key] + D_BG[$r]))
            done
            DM_RPS[$key]=$(pick %.2f high "${rps[@]}")
            DM_P50[$key]=$(pick %.0f low "${p50[@]}")
            DM_P99[$key]=$(pick %.0f low "${p99[@]}")
            DM_MAX[$key]=$(pick %.0f low "${max[@]}")
            DM_US[$key]=$(pick %.2f low "${us[@]}")
            case $cfg in
                redis-*) DM_P999[$key]=nan ;;
                *) DM_P999[$key]=$(pick %.0f low "${p999[@]}") ;;
            esac
        done
        for cfg in "${DURABLE_CONFIGS[@]}"; do
            key=$cfg:$conns
            DM_RATIO[$key]=""
            case $cfg in
                kv-always | kv-everysec)
                    other=redis-${cfg#kv-}:$conns
                    DM_RATIO[$key]=$(ratio "${DM_RPS[$key]}" "${DM_RPS[$other]}")
                    ;;
            esac
        done
    done
}

durable_target() {  # config conns: ok, MISS or nothing
    [ "$1" = kv-always ] && [ "$2" = "$DURABLE_TARGET_CONNS" ] || return 0
    awk -v r="${DM_RATIO[$1:$2]}" -v w="$DURABLE_TARGET_RATIO" -v e="${DM_ERR[$1:$2]}" \
        'BEGIN { print (r >= w && e == 0) ? "ok" : "MISS" }'
}

durable_label() {
    case $1 in
        kv-*) echo "shardkv ${1#kv-}" ;;
        redis-*) echo "redis ${1#redis-}" ;;
    esac
}

durable_print_table() {
    local conns cfg key t shards
    shards=${BENCH_DURABLE_SHARDS:-default}
    printf '\n[durable] PUT %s-byte values, random keys among %s, fresh data dir per run in %s\n' \
        "$BENCH_VALUE_BYTES" "$BENCH_PUT_KEYS" "$(data_fs_text)"
    printf 'shardkv %s --threads 1 --shards %s; redis %s appendonly yes, save off; %s, %s of %s runs of %s s\n' \
        "$SHARDKV_VERSION" "$shards" "$REDIS_VERSION" \
        "$( ((BENCH_DURABLE_PIN)) && echo "servers pinned to CPU $BENCH_SERVER_CPU" || echo "servers not pinned")" \
        "$BENCH_STAT" "$BENCH_REPEAT" "$BENCH_SECONDS"
    printf 'clients on CPU %s: wrk -t1 (bench/kv.lua put) / redis-benchmark -t set -d %s -r %s --csv\n\n' \
        "$BENCH_CLIENT_CPU" "$BENCH_VALUE_BYTES" "$BENCH_PUT_KEYS"
    printf '%-16s %5s %10s %8s %8s %8s %8s %7s %9s %4s  %s\n' config conns "req/s" "p50 us" "p99 us" "p99.9 us" \
        "max us" "us/req" "vs redis" "bg" target
    for conns in $BENCH_DURABLE_CONNS; do
        for cfg in "${DURABLE_CONFIGS[@]}"; do
            key=$cfg:$conns
            t=$(durable_target "$cfg" "$conns")
            # shellcheck disable=SC2034  # read by bench/run's main
            [ "$t" = MISS ] && MISSED=1
            printf '%-16s %5s %10.0f %8.0f %8.0f %8s %8.0f %7.2f %9s %4s  %s\n' "$(durable_label "$cfg")" "$conns" \
                "${DM_RPS[$key]}" "${DM_P50[$key]}" "${DM_P99[$key]}" \
                "$(if [ "${DM_P999[$key]}" = nan ]; then echo -; else echo "${DM_P999[$key]}"; fi)" "${DM_MAX[$key]}" \
                "${DM_US[$key]}" "${DM_RATIO[$key]:--}" "${DM_BG[$key]}" "$t"
        done
    done
    printf '\nvs redis: shardkv req/s / Redis req/s with the same fsync policy and connections. bg: snapshots\n'
    printf '(shardkv) or AOF rewrites (Redis) during all runs of the row. us/req: server CPU per request.\n'
    printf 'target: shardkv always >= %s x redis always at %s conns, no errors\n' "$DURABLE_TARGET_RATIO" \
        "$DURABLE_TARGET_CONNS"
    for conns in $BENCH_DURABLE_CONNS; do
        for cfg in "${DURABLE_CONFIGS[@]}"; do
            [ "${DM_ERR[$cfg:$conns]}" = 0 ] ||
                echo "WARNING: $(durable_label "$cfg") at $conns conns: ${DM_ERR[$cfg:$conns]} failed requests (see $RAW/durable-$conns-*)"
        done
    done
}

durable_json() {
    local conns cfg key rep first=1
    section_done durable || return 0
    printf ',\n  "durable": {\n'
    printf '    "config": {"connections": [%s], "value_bytes": %s, "keys": %s, "seconds": %s, "warmup_seconds": %s, ' \
        "$(echo $BENCH_DURABLE_CONNS | tr ' ' ',')" "$BENCH_VALUE_BYTES" "$BENCH_PUT_KEYS" "$BENCH_SECONDS" "$BENCH_WARMUP"
    printf '"repeat": %s, "stat": "%s", "servers_pinned": %s, "server_cpu": %s, "client_cpu": %s, ' \
        "$BENCH_REPEAT" "$BENCH_STAT" "$( ((BENCH_DURABLE_PIN)) && echo true || echo false)" \
        "$BENCH_SERVER_CPU" "$BENCH_CLIENT_CPU"
    printf '"shardkv_threads": 1, "shardkv_shards": %s, "redis_version": %s, ' \
        "$(json_str "${BENCH_DURABLE_SHARDS:-default}")" "$(json_str "$REDIS_VERSION")"
    printf '"data_dir": %s, "filesystem": %s, "device": %s,\n' "$(json_str "$TMP")" \
        "$(json_str "$(awk '{print $2}' <<<"$DATA_FS")")" "$(json_str "$(awk '{print $1}' <<<"$DATA_FS")")"
    printf '      "target": {"connections": %s, "shardkv_always_over_redis_always": %s}},\n' \
        "$DURABLE_TARGET_CONNS" "$DURABLE_TARGET_RATIO"
    printf '    "results": [\n'
    for conns in $BENCH_DURABLE_CONNS; do
        for cfg in "${DURABLE_CONFIGS[@]}"; do
            key=$cfg:$conns
            ((first)) || printf ',\n'
            first=0
            printf '      {"server": "%s", "fsync": "%s", "connections": %s, "rps": %s, "p50_us": %s, "p99_us": %s, ' \
                "$(server_name "$cfg")" "${cfg#*-}" "$conns" "${DM_RPS[$key]}" "${DM_P50[$key]}" "${DM_P99[$key]}"
            printf '"p999_us": %s, "max_us": %s, "server_cpu_us_per_request": %s, "ratio_to_redis": %s, ' \
                "$(json_num "${DM_P999[$key]}")" "${DM_MAX[$key]}" "${DM_US[$key]}" "$(json_num "${DM_RATIO[$key]}")"
            printf '"requests": %s, "errors": %s, "background_jobs": %s, "target": %s}' "${DM_REQS[$key]}" \
                "${DM_ERR[$key]}" "${DM_BG[$key]}" "$(json_str "$(durable_target "$cfg" "$conns")")"
        done
    done
    printf '\n    ],\n    "runs": [\n'
    first=1
    for ((rep = 1; rep <= BENCH_REPEAT; rep++)); do
        for conns in $BENCH_DURABLE_CONNS; do
            for cfg in "${DURABLE_CONFIGS[@]}"; do
                key=$cfg:$conns:$rep
                [ -n "${D_RPS[$key]:-}" ] || continue
                ((first)) || printf ',\n'
                first=0
                printf '      {"repetition": %s, "server": "%s", "fsync": "%s", "connections": %s, "rps": %s, ' \
                    "$rep" "$(server_name "$cfg")" "${cfg#*-}" "$conns" "${D_RPS[$key]}"
                printf '"p50_us": %s, "p99_us": %s, "p999_us": %s, "max_us": %s, "server_cpu_us_per_request": %s, ' \
                    "${D_P50[$key]}" "${D_P99[$key]}" "$(json_num "${D_P999[$key]}")" "${D_MAX[$key]}" "${D_US[$key]}"
                printf '"requests": %s, "errors": %s, "background_jobs": %s}' "${D_REQS[$key]}" "${D_ERR[$key]}" \
                    "${D_BG[$key]}"
            done
        done
    done
    printf '\n    ]\n  }'
}

# "shardkv" or "redis" for a durable config (kv-always) or a recovery row's server (kv).
server_name() {
    case $1 in kv | kv-*) echo shardkv ;; *) echo redis ;; esac
}

# A number for JSON, or null for "", "-" and "nan".
json_num() {
    case ${1:-} in "" | - | nan) printf 'null' ;; *) printf '%s' "$1" ;; esac
}

# ---------------------------------------------------------------- snapshot
# Per run "off|on:rep": S_RPS S_P50 S_P99 S_P999 S_MAX S_US S_ERR S_SNAPS
# (snapshots written during the measured run) S_SNAP_MAX (longest of them, s).
declare -A S_RPS S_P50 S_P99 S_P999 S_MAX S_US S_ERR S_SNAPS S_SNAP_MAX S_REQS
declare -A SM_RPS SM_P50 SM_P99 SM_P999 SM_MAX SM_US SM_ERR SM_SNAPS SM_SNAP_MAX

# bench/load.lua into the running node: keys k0..k(N-1); bounded by N / 20000 + 120 s.
kv_load() {  # nkeys rawfile
    local n=$1 out=$2 bound batch=100
    bound=$((n / 20000 + 120))
    run_client $((bound + 30)) "$out" wrk -t1 -c"$LOAD_CONNS" -d"${bound}s" --timeout 10s -s "$BENCH_DIR/load.lua" \
        "http://127.0.0.1:$KV_PORT" -- "$n" "$batch" || { cat "$out" >&2; die "loading $n keys into shardkv failed"; }
    grep -q '^load: ok' "$out" || { cat "$out" >&2; die "loading $n keys into shardkv did not finish"; }
}

snapshot_run() {  # off|on rep
    local cfg=$1 rep=$2 key=$1:$2 raw=$RAW/snapshot-$1.r$2 data=$TMP/snapshot-data sb=0 t0 t1 spid n0 args
    [ "$cfg" = on ] && sb=$BENCH_SNAPSHOT_BYTES
    rm -rf "$data"
    kv_start snapshot "$data" "$BENCH_DURABLE_PIN" $(($(durable_server_bound) + BENCH_SNAPSHOT_KEYS / 10000)) \
        --threads 1 --fsync always --snapshot-bytes "$sb"
    printf '  run %s/%s  %4s conns  snapshots %-3s ...' "$rep" "$BENCH_REPEAT" "$BENCH_SNAPSHOT_CONNS" "$cfg" >&2
    ((BENCH_SNAPSHOT_KEYS == 0)) || kv_load "$BENCH_SNAPSHOT_KEYS" "$raw.load.txt"
    args=(-s "$BENCH_DIR/kv.lua" "http://127.0.0.1:$KV_PORT" -- put "$BENCH_PUT_KEYS" "$BENCH_VALUE_BYTES")
    if ((BENCH_WARMUP > 0)); then wrk_once "$BENCH_SNAPSHOT_CONNS" "$BENCH_WARMUP" "$raw.warmup.txt" "${args[@]}"; fi
    n0=$(wc -l <"$KV_LOG")
    spid=$(child_of "$KV_PID")
    t0=$(proc_ticks "$spid")
    wrk_once "$BENCH_SNAPSHOT_CONNS" "$BENCH_SECONDS" "$raw.txt" "${args[@]}"
    t1=$(proc_ticks "$spid")
    kill -0 "$KV_PID" 2>/dev/null || { cat "$KV_LOG" >&2; die "shardkv died during the run"; }
    # Snapshots finished during the measured run (log lines written during it).
    S_SNAPS[$key]=$(tail -n +"$((n0 + 1))" "$KV_LOG" | grep -c 'snapshot at seq .* written' || true)
    S_SNAP_MAX[$key]=$(tail -n +"$((n0 + 1))" "$KV_LOG" |
        awk '/snapshot at seq .* written in/ { s = $NF; sub(/s$/, "", s); if (s + 0 > m) m = s + 0 } END { printf "%.3f\n", m }')
    parse_wrk "s:$key" "$raw.txt"
    parse_latency "s:$key" "$raw.txt"
    S_RPS[$key]=${RPS[s:$key]} S_P50[$key]=${P50[s:$key]} S_P99[$key]=${P99[s:$key]}
    S_P999[$key]=${P999[s:$key]} S_MAX[$key]=${PMAX[s:$key]} S_REQS[$key]=${REQS[s:$key]}
    S_ERR[$key]=$((${NON2XX[s:$key]} + ${SOCKERR[s:$key]}))
    S_US[$key]=$(us_per_req "$t0" "$t1" "${S_REQS[$key]}")
    kv_stop
    cp "$KV_LOG" "$raw.server.log"
    rm -rf "$data"
    printf ' %10.0f req/s  p99 %7.0f us  p99.9 %7.0f us  max %7.0f us  %s snapshots\n' "${S_RPS[$key]}" \
        "${S_P99[$key]}" "${S_P999[$key]}" "${S_MAX[$key]}" "${S_SNAPS[$key]}" >&2
}

section_snapshot() {
    echo "bench/run: [snapshot] --fsync always, $BENCH_SNAPSHOT_CONNS conns, --snapshot-bytes 0 vs $BENCH_SNAPSHOT_BYTES" >&2
    local rep cfg key r rps p50 p99 p999 max us snaps smax
    for ((rep = 1; rep <= BENCH_REPEAT; rep++)); do
        for cfg in "${SNAPSHOT_CONFIGS[@]}"; do snapshot_run "$cfg" "$rep"; done
    done
    for cfg in "${SNAPSHOT_CONFIGS[@]}"; do
        rps=() p50=() p99=() p999=() max=() us=() snaps=() smax=()
        SM_ERR[$cfg]=0
        for ((rep = 1; rep <= BENCH_REPEAT; rep++)); do
            r=$cfg:$rep
            rps+=("${S_RPS[$r]}") p50+=("${S_P50[$r]}") p99+=("${S_P99[$r]}") p999+=("${S_P999[$r]}")
            max+=("${S_MAX[$r]}") us+=("${S_US[$r]}") snaps+=("${S_SNAPS[$r]}") smax+=("${S_SNAP_MAX[$r]}")
            SM_ERR[$cfg]=$((SM_ERR[$cfg] + S_ERR[$r]))
        done
        SM_RPS[$cfg]=$(pick %.2f high "${rps[@]}")
        SM_P50[$cfg]=$(pick %.0f low "${p50[@]}")
        SM_P99[$cfg]=$(pick %.0f low "${p99[@]}")
        SM_P999[$cfg]=$(pick %.0f low "${p999[@]}")
        SM_MAX[$cfg]=$(pick %.0f low "${max[@]}")
        SM_US[$cfg]=$(pick %.2f low "${us[@]}")
        SM_SNAPS[$cfg]=$(pick %.0f mid "${snaps[@]}")
        SM_SNAP_MAX[$cfg]=$(pick %.3f mid "${smax[@]}")
    done
}

snapshot_print_table() {
    local cfg
    printf '\n[snapshot] PUT under --fsync always, %s conns, shardkv --threads 1, %s of %s runs of %s s' \
        "$BENCH_SNAPSHOT_CONNS" "$BENCH_STAT" "$BENCH_REPEAT" "$BENCH_SECONDS"
    ((BENCH_SNAPSHOT_KEYS == 0)) || printf ', %s keys preloaded' "$BENCH_SNAPSHOT_KEYS"
    printf '\n\n%-22s %10s %8s %8s %8s %8s %7s %6s %9s\n' snapshots "req/s" "p50 us" "p99 us" "p99.9 us" "max us" \
        "us/req" snaps "longest s"
    for cfg in "${SNAPSHOT_CONFIGS[@]}"; do
        printf '%-22s %10.0f %8.0f %8.0f %8.0f %8.0f %7.2f %6s %9s\n' \
            "$(if [ "$cfg" = on ]; then echo "--snapshot-bytes $BENCH_SNAPSHOT_BYTES"; else echo "--snapshot-bytes 0"; fi)" \
            "${SM_RPS[$cfg]}" "${SM_P50[$cfg]}" "${SM_P99[$cfg]}" "${SM_P999[$cfg]}" "${SM_MAX[$cfg]}" "${SM_US[$cfg]}" \
            "${SM_SNAPS[$cfg]}" "${SM_SNAP_MAX[$cfg]}"
    done
    printf '\nsnaps: snapshots written during a measured run (median); longest s: the longest of them (median).\n'
    printf 'p99 with snapshots / without: %s\n' "$(ratio "${SM_P99[on]}" "${SM_P99[off]}")"
    [ "${SM_SNAPS[on]}" != 0 ] || echo "WARNING: no snapshot was written during the runs; lower BENCH_SNAPSHOT_BYTES"
    for cfg in "${SNAPSHOT_CONFIGS[@]}"; do
        [ "${SM_ERR[$cfg]}" = 0 ] || echo "WARNING: snapshots $cfg: ${SM_ERR[$cfg]} failed requests (see $RAW/snapshot-$cfg.r*)"
    done
}

snapshot_json() {
    local cfg rep key first=1
    section_done snapshot || return 0
    printf ',\n  "snapshot": {\n'
    printf '    "config": {"connections": %s, "snapshot_bytes": "%s", "preloaded_keys": %s, "put_keys": %s, ' \
        "$BENCH_SNAPSHOT_CONNS" "$BENCH_SNAPSHOT_BYTES" "$BENCH_SNAPSHOT_KEYS" "$BENCH_PUT_KEYS"
    printf '"value_bytes": %s, "fsync": "always", "seconds": %s, "repeat": %s, "stat": "%s", "servers_pinned": %s},\n' \
        "$BENCH_VALUE_BYTES" "$BENCH_SECONDS" "$BENCH_REPEAT" "$BENCH_STAT" \
        "$( ((BENCH_DURABLE_PIN)) && echo true || echo false)"
    printf '    "results": [\n'
    for cfg in "${SNAPSHOT_CONFIGS[@]}"; do
        ((first)) || printf ',\n'
        first=0
        printf '      {"snapshots": "%s", "rps": %s, "p50_us": %s, "p99_us": %s, "p999_us": %s, "max_us": %s, ' \
            "$cfg" "${SM_RPS[$cfg]}" "${SM_P50[$cfg]}" "${SM_P99[$cfg]}" "${SM_P999[$cfg]}" "${SM_MAX[$cfg]}"
        printf '"server_cpu_us_per_request": %s, "snapshots_written": %s, "longest_snapshot_s": %s, "errors": %s}' \
            "${SM_US[$cfg]}" "${SM_SNAPS[$cfg]}" "${SM_SNAP_MAX[$cfg]}" "${SM_ERR[$cfg]}"
    done
    printf '\n    ],\n    "runs": [\n'
    first=1
    for ((rep = 1; rep <= BENCH_REPEAT; rep++)); do
        for cfg in "${SNAPSHOT_CONFIGS[@]}"; do
            key=$cfg:$rep
            [ -n "${S_RPS[$key]:-}" ] || continue
            ((first)) || printf ',\n'
            first=0
            printf '      {"repetition": %s, "snapshots": "%s", "rps": %s, "p50_us": %s, "p99_us": %s, "p999_us": %s, ' \
                "$rep" "$cfg" "${S_RPS[$key]}" "${S_P50[$key]}" "${S_P99[$key]}" "${S_P999[$key]}"
            printf '"max_us": %s, "server_cpu_us_per_request": %s, "snapshots_written": %s, "longest_snapshot_s": %s, ' \
                "${S_MAX[$key]}" "${S_US[$key]}" "${S_SNAPS[$key]}" "${S_SNAP_MAX[$key]}"
            printf '"requests": %s, "errors": %s}' "${S_REQS[$key]}" "${S_ERR[$key]}"
        done
    done
    printf '\n    ]\n  }'
}

# ---------------------------------------------------------------- recovery
# Rows "server:keys:variant" (server kv|redis; variant log|snapshot):
# R_DISK (apparent bytes of the data dir), R_ALLOC (allocated bytes),
# R_LOAD_S (seconds to load the keys), R_SNAP_BYTES (--snapshot-bytes used);
# per restart "row:rep": R_READY (s until ready), R_SERVER (the server's own
# load time), R_RSS (MiB after recovery).
declare -A R_DISK R_ALLOC R_LOAD_S R_SNAP_BYTES R_READY R_SERVER R_RSS
declare -A RM_READY RM_SERVER RM_RSS
RECOVERY_ROWS=()

disk_bytes() { du -sb "$1" | awk '{print $1}'; }
alloc_bytes() { du -sk "$1" | awk '{print $1 * 1024}'; }

recovery_bound() { echo $(($1 / 10000 + 300)); }  # life of one server of the recovery section

# kv_touch N: re-PUTs keys k0..k(N-1) with their own values, pipelined on
# one connection; dies unless all N answer 2xx.
kv_touch() {
    local n=$1 i k v req="" ok
    for ((i = 0; i < n; i++)); do
        printf -v k 'k%015d' "$i"
        printf -v v 'v%015d' "$i"
        req+="PUT /v1/kv/$k HTTP/1.1"$'\r\n'"Host: 127.0.0.1"$'\r\n'"Content-Length: 16"$'\r\n'
        ((i < n - 1)) || req+="Connection: close"$'\r\n'
        req+=$'\r\n'"$v"
    done
    ok=$( (exec 3<>"/dev/tcp/127.0.0.1/$KV_PORT" && printf '%s' "$req" >&3 && timeout 30 cat <&3) 2>/dev/null |
        grep -o 'HTTP/1.1 2' | wc -l) || true
    [ "$ok" = "$n" ] || die "re-PUT of $n keys: only $ok answered 2xx"
}

# kv_restarts ROW N ARGS...: BENCH_RECOVERY_REPEAT restarts of the stopped
# node in $TMP/recovery-kv, each timed from exec to /health/ready 200.
kv_restarts() {
    local row=$1 n=$2 rep t0 t1 keys
    shift 2
    for ((rep = 1; rep <= BENCH_RECOVERY_REPEAT; rep++)); do
        t0=$EPOCHREALTIME
        kv_launch recovery-kv-restart "$TMP/recovery-kv" 0 "$(recovery_bound "$n")" "$@"
        kv_wait_ready "$(recovery_bound "$n")" || { cat "$KV_LOG" >&2; die "shardkv did not become ready after restart"; }
        t1=$EPOCHREALTIME
        R_READY[$row:$rep]=$(elapsed "$t0" "$t1")
        R_SERVER[$row:$rep]=$(kv_log_seconds "listening on" "ready: serving")
        R_RSS[$row:$rep]=$(vm_rss_mib "$(child_of "$KV_PID")")
        keys=$(kv_keys)
        [ "$keys" = "$n" ] || { cat "$KV_LOG" >&2; die "after restart shardkv holds '$keys' keys, not $n"; }
        cp "$KV_LOG" "$RAW/recovery-$n-kv-${row##*:}.r$rep.server.log"
        kv_stop 1200
        printf '    restart %s/%s: ready after %s s (server: %s s), %s MiB\n' "$rep" "$BENCH_RECOVERY_REPEAT" \
            "${R_READY[$row:$rep]}" "${R_SERVER[$row:$rep]}" "${R_RSS[$row:$rep]}" >&2
    done
}

recovery_kv() {  # nkeys
    local n=$1 data=$TMP/recovery-kv row t0 t1 nshards sb i
    local base=(--fsync "$BENCH_RECOVERY_FSYNC")
    rm -rf "$data"
    echo "  shardkv: loading $n keys (--fsync $BENCH_RECOVERY_FSYNC, --snapshot-bytes 0)" >&2
    kv_start recovery-kv-load "$data" 0 "$(recovery_bound "$n")" "${base[@]}" --snapshot-bytes 0
    t0=$EPOCHREALTIME
    kv_load "$n" "$RAW/recovery-$n-kv.load.txt"
    t1=$EPOCHREALTIME
    [ "$(kv_keys)" = "$n" ] || die "shardkv holds $(kv_keys) keys after loading $n"
    nshards=$(kv_shard_count)
    kv_stop 1200
    grep -q 'shutdown complete' "$KV_LOG" || { cat "$KV_LOG" >&2; die "shardkv did not shut down cleanly"; }

    row=kv:$n:log
    RECOVERY_ROWS+=("$row")
    R_LOAD_S[$row]=$(elapsed "$t0" "$t1") R_SNAP_BYTES[$row]=0
    R_DISK[$row]=$(disk_bytes "$data") R_ALLOC[$row]=$(alloc_bytes "$data")
    echo "  shardkv: $n keys in ${R_LOAD_S[$row]} s, ${R_DISK[$row]} bytes on disk; restarting (log only)" >&2
    kv_restarts "$row" "$n" "${base[@]}" --snapshot-bytes 0

    # A snapshot of every shard: restart with a threshold below each shard's
    # log, re-PUT a few keys so that every shard flushes (which rolls its log
    # and queues the snapshot), wait for all snapshots, re-PUT again so that
    # the flushers drop the segments the snapshots cover.
    sb=$((R_DISK[$row] / nshards / 2))
    ((sb >= 65536)) || sb=65536
    row=kv:$n:snapshot
    RECOVERY_ROWS+=("$row")
    R_LOAD_S[$row]=${R_LOAD_S[kv:$n:log]} R_SNAP_BYTES[$row]=$sb
    echo "  shardkv: restarting with --snapshot-bytes $sb to snapshot all $nshards shards" >&2
    kv_start recovery-kv-snap "$data" 0 "$(recovery_bound "$n")" "${base[@]}" --snapshot-bytes "$sb"
    kv_touch "$TOUCH_KEYS"
    for ((i = 0; i < 10 * (n / 50000 + 30); i++)); do
        (($(grep -o 'shard [0-9]*: snapshot at seq [0-9]* written' "$KV_LOG" | awk '{print $2}' | sort -u | wc -l) >= nshards)) &&
            break
        kill -0 "$KV_PID" 2>/dev/null || break
        sleep 0.1
    done
    (($(grep -o 'shard [0-9]*: snapshot at seq [0-9]* written' "$KV_LOG" | awk '{print $2}' | sort -u | wc -l) >= nshards)) ||
        { cat "$KV_LOG" >&2; die "not every shard wrote a snapshot"; }
    kv_touch "$TOUCH_KEYS"
    for ((i = 0; i < 100; i++)); do  # the flushers drop the covered segments right after the flush
        (($(find "$data" -name 'wal-*.log' | wc -l) <= nshards)) && break
        sleep 0.1
    done
    cp "$KV_LOG" "$RAW/recovery-$n-kv-snapshot.make.server.log"
    kv_stop 1200
    R_DISK[$row]=$(disk_bytes "$data") R_ALLOC[$row]=$(alloc_bytes "$data")
    echo "  shardkv: ${R_DISK[$row]} bytes on disk with snapshots; restarting" >&2
    kv_restarts "$row" "$n" "${base[@]}" --snapshot-bytes "$sb"
    rm -rf "$data"
}

# redis_restarts ROW N ARGS...: BENCH_RECOVERY_REPEAT restarts of the stopped
# Redis in $TMP/recovery-redis on REDIS_PORT, timed until PING answers PONG.
redis_restarts() {
    local row=$1 n=$2 rep t0 t1 keys port=$REDIS_PORT
    shift 2
    for ((rep = 1; rep <= BENCH_RECOVERY_REPEAT; rep++)); do
        t0=$EPOCHREALTIME
        redis_launch recovery-redis-restart "$TMP/recovery-redis" 0 "$(recovery_bound "$n")" "$port" "$@"
        redis_wait_pong "$(recovery_bound "$n")" || { cat "$REDIS_LOG" >&2; die "redis did not answer PONG after restart"; }
        t1=$EPOCHREALTIME
        R_READY[$row:$rep]=$(elapsed "$t0" "$t1")
        R_SERVER[$row:$rep]=$(sed -n 's/.*DB loaded from append only file: \([0-9.]*\) seconds.*/\1/p' "$REDIS_LOG" | tail -n1)
        R_SERVER[$row:$rep]=${R_SERVER[$row:$rep]:-nan}
        R_RSS[$row:$rep]=$(vm_rss_mib "$(redis_pid)")
        keys=$(redis_cmd dbsize)
        [ "$keys" = "$n" ] || { cat "$REDIS_LOG" >&2; die "after restart redis holds '$keys' keys, not $n"; }
        cp "$REDIS_LOG" "$RAW/recovery-$n-redis-${row##*:}.r$rep.server.log"
        redis_stop
        printf '    restart %s/%s: PONG after %s s (server: %s s), %s MiB\n' "$rep" "$BENCH_RECOVERY_REPEAT" \
            "${R_READY[$row:$rep]}" "${R_SERVER[$row:$rep]}" "${R_RSS[$row:$rep]}" >&2
    done
}

recovery_redis() {  # nkeys
    local n=$1 data=$TMP/recovery-redis row t0 t1 out i info
    local conf=(--appendonly yes --appendfsync everysec --auto-aof-rewrite-percentage 0)
    rm -rf "$data"
    echo "  redis: loading $n keys (appendfsync everysec, no automatic AOF rewrite)" >&2
    redis_start recovery-redis-load "$data" 0 "$(recovery_bound "$n")" "${conf[@]}"
    out=$RAW/recovery-$n-redis.load.txt
    t0=$EPOCHREALTIME
    # The same keys and values as bench/load.lua, as RESP, through redis-cli --pipe.
    run_client $((n / 20000 + 120)) "$out" bash -c '
        awk -v n="$1" '\''BEGIN { for (i = 0; i < n; i++) printf "*3\r\n$3\r\nSET\r\n$16\r\nk%015d\r\n$16\r\nv%015d\r\n", i, i }'\'' |
            "$2" -h 127.0.0.1 -p "$3" --pipe' _ "$n" "$REDIS_CLI" "$REDIS_PORT" ||
        { cat "$out" >&2; die "loading $n keys into redis failed"; }
    t1=$EPOCHREALTIME
    grep -q "errors: 0, replies: $n" "$out" || { cat "$out" >&2; die "loading $n keys into redis failed"; }
    [ "$(redis_cmd dbsize)" = "$n" ] || die "redis holds $(redis_cmd dbsize) keys after loading $n"
    redis_stop

    row=redis:$n:log
    RECOVERY_ROWS+=("$row")
    R_LOAD_S[$row]=$(elapsed "$t0" "$t1") R_SNAP_BYTES[$row]=0
    R_DISK[$row]=$(disk_bytes "$data") R_ALLOC[$row]=$(alloc_bytes "$data")
    echo "  redis: $n keys in ${R_LOAD_S[$row]} s, ${R_DISK[$row]} bytes on disk; restarting (AOF only)" >&2
    redis_restarts "$row" "$n" "${conf[@]}"

    # The counterpart of a snapshot: BGREWRITEAOF, whose base file is an RDB image.
    row=redis:$n:snapshot
    RECOVERY_ROWS+=("$row")
    R_LOAD_S[$row]=${R_LOAD_S[redis:$n:log]} R_SNAP_BYTES[$row]=0
    echo "  redis: BGREWRITEAOF" >&2
    redis_launch recovery-redis-rewrite "$data" 0 "$(recovery_bound "$n")" "$REDIS_PORT" "${conf[@]}"
    redis_wait_pong "$(recovery_bound "$n")" || { cat "$REDIS_LOG" >&2; die "redis did not start"; }
    redis_cmd bgrewriteaof >/dev/null
    for ((i = 0; i < 10 * $(recovery_bound "$n"); i++)); do
        info=$(redis_cmd info persistence | tr -d '\r')
        grep -q '^aof_rewrite_in_progress:0' <<<"$info" && grep -q '^aof_rewrite_scheduled:0' <<<"$info" && break
        sleep 0.1
    done
    grep -q '^aof_last_bgrewrite_status:ok' <<<"$info" || { cat "$REDIS_LOG" >&2; die "BGREWRITEAOF failed"; }
    redis_stop
    R_DISK[$row]=$(disk_bytes "$data") R_ALLOC[$row]=$(alloc_bytes "$data")
    echo "  redis: ${R_DISK[$row]} bytes on disk after the rewrite; restarting" >&2
    redis_restarts "$row" "$n" "${conf[@]}"
    rm -rf "$data"
}

section_recovery() {
    local n row rep ready server rss
    echo "bench/run: [recovery] keys: $BENCH_RECOVERY_KEYS; data dirs in $(data_fs_text)" >&2
    for n in $BENCH_RECOVERY_KEYS; do
        recovery_kv "$n"
        recovery_redis "$n"
    done
    for row in "${RECOVERY_ROWS[@]}"; do
        ready=() server=() rss=()
        for ((rep = 1; rep <= BENCH_RECOVERY_REPEAT; rep++)); do
            ready+=("${R_READY[$row:$rep]}") server+=("${R_SERVER[$row:$rep]}") rss+=("${R_RSS[$row:$rep]}")
        done
        RM_READY[$row]=$(pick %.3f low "${ready[@]}")
        RM_SERVER[$row]=$(pick %.3f low "${server[@]}")
        RM_RSS[$row]=$(pick %.1f mid "${rss[@]}")
    done
}

recovery_label() {  # row
    local s=${1%%:*} v=${1##*:}
    case $s:$v in
        kv:log) echo "shardkv log" ;;
        kv:snapshot) echo "shardkv snapshot+log" ;;
        redis:log) echo "redis aof" ;;
        redis:snapshot) echo "redis rewritten aof" ;;
    esac
}

recovery_print_table() {
    local row n
    printf '\n[recovery] 16-byte keys and values loaded over 127.0.0.1, then SIGTERM / SHUTDOWN NOSAVE and restarts;\n'
    printf 'data dirs in %s; files in the page cache (warm restart); %s of %s restarts\n' "$(data_fs_text)" \
        "$BENCH_STAT" "$BENCH_RECOVERY_REPEAT"
    printf 'shardkv default --threads (recovery uses as many threads), loaded with --fsync %s; redis appendfsync everysec,\n' \
        "$BENCH_RECOVERY_FSYNC"
    printf 'auto-aof-rewrite off. ready s: from exec until /health/ready is 200 (shardkv) or PING answers PONG (redis)\n\n'
    printf '%-22s %9s %8s %12s %7s %8s %9s %8s %9s\n' data keys "load s" "disk bytes" "B/key" "ready s" "server s" \
        "RSS MiB" "snap-bytes"
    for row in "${RECOVERY_ROWS[@]}"; do
        n=${row#*:}
        n=${n%%:*}
        printf '%-22s %9s %8.1f %12s %7.1f %8.3f %9s %8.1f %9s\n' "$(recovery_label "$row")" "$n" "${R_LOAD_S[$row]}" \
            "${R_DISK[$row]}" "$(awk -v d="${R_DISK[$row]}" -v n="$n" 'BEGIN { print d / n }')" "${RM_READY[$row]}" \
            "${RM_SERVER[$row]}" "${RM_RSS[$row]}" "$( ((R_SNAP_BYTES[$row] > 0)) && echo "${R_SNAP_BYTES[$row]}" || echo -)"
    done
    printf '\nserver s: shardkv from "listening" to "ready" in its log; redis "DB loaded from append only file".\n'
    printf 'disk bytes: apparent size of the data directory (du -sb); snap-bytes: --snapshot-bytes of that row.\n'
}

recovery_json() {
    local row rep n first=1 f2
    section_done recovery || return 0
    printf ',\n  "recovery": {\n'
    printf '    "config": {"keys": [%s], "key_bytes": 16, "value_bytes": 16, "shardkv_load_fsync": "%s", ' \
        "$(echo $BENCH_RECOVERY_KEYS | tr ' ' ',')" "$BENCH_RECOVERY_FSYNC"
    printf '"redis_appendfsync": "everysec", "redis_auto_aof_rewrite": false, "restarts": %s, "stat": "%s", ' \
        "$BENCH_RECOVERY_REPEAT" "$BENCH_STAT"
    printf '"page_cache": "warm", "data_dir": %s, "filesystem": %s},\n' "$(json_str "$TMP")" \
        "$(json_str "$(awk '{print $2}' <<<"$DATA_FS")")"
    printf '    "results": [\n'
    for row in "${RECOVERY_ROWS[@]}"; do
        n=${row#*:}
        n=${n%%:*}
        ((first)) || printf ',\n'
        first=0
        printf '      {"server": "%s", "keys": %s, "data": "%s", "load_seconds": %s, "disk_bytes": %s, ' \
            "$(server_name "${row%%:*}")" "$n" "${row##*:}" "${R_LOAD_S[$row]}" "${R_DISK[$row]}"
        printf '"disk_allocated_bytes": %s, "bytes_per_key": %s, "snapshot_bytes": %s, ' "${R_ALLOC[$row]}" \
            "$(awk -v d="${R_DISK[$row]}" -v n="$n" 'BEGIN { printf "%.2f", d / n }')" "${R_SNAP_BYTES[$row]}"
        printf '"ready_seconds": %s, "server_load_seconds": %s, "rss_mib": %s, "restarts": [' "${RM_READY[$row]}" \
            "$(json_num "${RM_SERVER[$row]}")" "$(json_num "${RM_RSS[$row]}")"
        f2=1
        for ((rep = 1; rep <= BENCH_RECOVERY_REPEAT; rep++)); do
            ((f2)) || printf ', '
            f2=0
            printf '{"ready_seconds": %s, "server_load_seconds": %s, "rss_mib": %s}' "${R_READY[$row:$rep]}" \
                "$(json_num "${R_SERVER[$row:$rep]}")" "$(json_num "${R_RSS[$row:$rep]}")"
        done
        printf ']}'
    done
    printf '\n    ]\n  }'
}

# All three sections' JSON members (each only when its section ran), after
# the http members of bench/run's write_json.
durable_json_all() {
    durable_json
    snapshot_json
    recovery_json
}
