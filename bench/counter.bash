# bench/counter.bash — the counter section of bench/run, which sources this
# file after bench/durable.bash and provides the helpers it uses (die,
# wrk_once, parse_wrk, parse_latency, kv_start, kv_stop, redis_start,
# redis_stop, redis_cmd, run_client, child_of, proc_ticks, us_per_req, pick,
# ratio, json_str, json_num, data_fs_text, ...). See bench/README.md.
#
#   counter   one hot counter incremented by BENCH_COUNTER_CONNS connections
#             (POST /v1/counters/bench-hot/incr?by=1, bench/counter.lua), in
#             five configurations per repetition, each on a fresh server and
#             data directory:
#               kv-kdef-t1   shardkv --threads 1, pinned; the counter created
#                            with the default K (the shard count)
#               redis        redis-server, pinned: INCR on one key
#                            (redis-benchmark -t incr, same connections)
#               kv-k1-t1     as kv-kdef-t1, the counter created with K=1
#               kv-kdef-tall shardkv with its default --threads, not pinned
#               kv-k1-tall   the same with K=1
#             The client is always pinned to BENCH_CLIENT_CPU. Durability is
#             the same on both sides: shardkv --fsync BENCH_COUNTER_FSYNC,
#             Redis appendonly yes + appendfsync of the same policy (never:
#             appendonly no). After every run the counter must hold exactly
#             the increments the client saw answered (warm-up included), with
#             no non-2xx answer and no socket error; otherwise the section
#             dies: a benchmark that loses increments measures a bug.
#
# Environment (defaults in brackets):
#   BENCH_COUNTER_CONNS [64]  BENCH_COUNTER_FSYNC [always|everysec|never]

BENCH_COUNTER_CONNS=${BENCH_COUNTER_CONNS:-64}
BENCH_COUNTER_FSYNC=${BENCH_COUNTER_FSYNC:-always}

COUNTER_NAME=bench-hot
# Seconds at the end of every wrk run during which bench/counter.lua sends
# nothing, so that no increment is in flight when wrk stops (see the script).
COUNTER_DRAIN_S=1
# The key redis-benchmark -t incr increments when not given -r.
COUNTER_REDIS_KEY='counter:__rand_int__'
# In the order they run at each repetition (and print).
COUNTER_CONFIGS=(kv-kdef-t1 redis kv-k1-t1 kv-kdef-tall kv-k1-tall)

counter_check_config() {
    if ! is_uint "$BENCH_COUNTER_CONNS" || ((BENCH_COUNTER_CONNS < 1)); then
        die "BENCH_COUNTER_CONNS must be an integer >= 1, got '$BENCH_COUNTER_CONNS'"
    fi
    case $BENCH_COUNTER_FSYNC in always | everysec | never) ;; *) die "BENCH_COUNTER_FSYNC: always, everysec or never" ;; esac
}

counter_find_tools() {
    want_section counter || return 0
    local t
    for t in "$REDIS_SERVER" "$REDIS_BENCHMARK" "$REDIS_CLI"; do
        command -v "$t" >/dev/null || die "$t not found (scripts/install-deps bench installs redis-server and redis-tools)"
    done
}

# Redis's settings for BENCH_COUNTER_FSYNC, as words.
counter_redis_conf() {
    case $BENCH_COUNTER_FSYNC in
        never) echo "--appendonly no" ;;
        *) echo "--appendonly yes --appendfsync $BENCH_COUNTER_FSYNC" ;;
    esac
}

counter_durability_text() {
    case $BENCH_COUNTER_FSYNC in
        never) echo "shardkv --fsync never (logged, never fsynced); redis appendonly no (no AOF)" ;;
        *) echo "shardkv --fsync $BENCH_COUNTER_FSYNC; redis appendonly yes, appendfsync $BENCH_COUNTER_FSYNC" ;;
    esac
}

counter_server_bound() { echo $((3 * (BENCH_WARMUP + BENCH_SECONDS + 2 * COUNTER_DRAIN_S) + 120)); }

# ---------------------------------------------------------------- shardkv
# Per run, "config:rep": C_RPS C_P50 C_P99 C_P999 C_MAX C_US C_REQS (answered
# increments of the measured run), C_VALUE (the counter after the run),
# C_EXPECT (increments answered in the warm-up and the measured run),
# C_K (the counter's K), C_THREADS (server threads); aggregates "config": CM_*.
declare -A C_RPS C_P50 C_P99 C_P999 C_MAX C_US C_REQS C_VALUE C_EXPECT C_K C_THREADS
declare -A CM_RPS CM_P50 CM_P99 CM_P999 CM_MAX CM_US CM_REQS CM_VS_REDIS CM_VS_K1 CM_K CM_THREADS
COUNTER_SHARDS=""

# counter_http METHOD PATH BODY: the whole response (head and body).
counter_http() {
    local method=$1 path=$2 body=$3
    (exec 3<>"/dev/tcp/127.0.0.1/$KV_PORT" &&
        printf '%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %s\r\nConnection: close\r\n\r\n%s' \
            "$method" "$path" "${#body}" "$body" >&3 &&
        timeout 30 cat <&3) 2>/dev/null || true
}

# The counter's total (the first "value" of GET /v1/counters/NAME), or nothing.
counter_kv_value() {
    counter_http GET "/v1/counters/$COUNTER_NAME" "" | grep -o '"value":-\{0,1\}[0-9]*' | head -n1 | sed 's/.*://'
}

# counter_wrk KEY RAWFILE SECONDS: one run of bench/counter.lua (SECONDS of
# increments, then the drain), parsed into the per-run arrays of bench/run
# under KEY; sets COUNTER_ANSWERED to the increments answered. Dies unless
# every increment sent was answered 2xx without a socket error.
COUNTER_ANSWERED=0
counter_wrk() {
    local key=$1 out=$2 secs=$3 sent
    wrk_once "$BENCH_COUNTER_CONNS" $((secs + COUNTER_DRAIN_S)) "$out" -s "$BENCH_DIR/counter.lua" \
        "http://127.0.0.1:$KV_PORT" -- "$COUNTER_NAME" "$secs"
    parse_wrk "$key" "$out"
    parse_latency "$key" "$out"
    sent=$(awk '$1 == "counter" && $2 == "sent" { print $3 }' "$out")
    [ -n "$sent" ] || { cat "$out" >&2; die "no 'counter sent' line in $out"; }
    if [ "${NON2XX[$key]}" != 0 ] || [ "${SOCKERR[$key]}" != 0 ]; then
        cat "$out" >&2
        die "counter: ${NON2XX[$key]} non-2xx answers and ${SOCKERR[$key]} socket errors in $out; every increment must succeed"
    fi
    [ "$sent" = "${REQS[$key]}" ] || {
        cat "$out" >&2
        die "counter: $sent increments sent but ${REQS[$key]} answered in $out" \
            "(some still unanswered ${COUNTER_DRAIN_S} s after the client stopped sending)"
    }
    COUNTER_ANSWERED=${REQS[$key]}
}

counter_kv_run() {  # config rep
    local cfg=$1 rep=$2 key=$1:$2 raw=$RAW/counter-$1.r$2 data=$TMP/counter-data pin=0 body='{}' resp
    local warm=0 t0 t1 spid reqs value
    local args=(--fsync "$BENCH_COUNTER_FSYNC")
    case $cfg in *-t1) pin=1 args+=(--threads 1) ;; esac
    case $cfg in kv-k1-*) body='{"k": 1}' ;; esac
    rm -rf "$data"
    kv_start counter-kv "$data" "$pin" "$(counter_server_bound)" "${args[@]}"
    C_THREADS[$key]=$(sed -n 's/.* with \([0-9]*\) threads, .*/\1/p' "$KV_LOG" | head -n1)
    C_THREADS[$key]=${C_THREADS[$key]:--}
    COUNTER_SHARDS=$(sed -n 's/.* threads, \([0-9]*\) shards, .*/\1/p' "$KV_LOG" | head -n1)
    resp=$(counter_http PUT "/v1/counters/$COUNTER_NAME" "$body")
    [[ $resp == "HTTP/1.1 201"* ]] || { printf '%s\n' "$resp" >&2; die "creating counter $COUNTER_NAME with $body did not answer 201"; }
    C_K[$key]=$(grep -o '"k":[0-9]*' <<<"$resp" | head -n1 | sed 's/.*://')
    printf '  run %s/%s  %4s conns  %-20s ...' "$rep" "$BENCH_REPEAT" "$BENCH_COUNTER_CONNS" "$(counter_label "$cfg" "${C_K[$key]}")" >&2
    if ((BENCH_WARMUP > 0)); then
        counter_wrk "c:$key:warmup" "$raw.warmup.txt" "$BENCH_WARMUP"
        warm=$COUNTER_ANSWERED
    fi
    spid=$(child_of "$KV_PID")
    t0=$(proc_ticks "$spid")
    counter_wrk "c:$key" "$raw.txt" "$BENCH_SECONDS"
    reqs=$COUNTER_ANSWERED
    t1=$(proc_ticks "$spid")
    kill -0 "$KV_PID" 2>/dev/null || { cat "$KV_LOG" >&2; die "shardkv died during the run"; }
    value=$(counter_kv_value)
    C_VALUE[$key]=${value:-none} C_EXPECT[$key]=$((warm + reqs))
    C_REQS[$key]=$reqs
    C_RPS[$key]=$(awk -v n="$reqs" -v s="$BENCH_SECONDS" 'BEGIN { printf "%.2f\n", n / s }')
    C_P50[$key]=${P50[c:$key]} C_P99[$key]=${P99[c:$key]} C_P999[$key]=${P999[c:$key]} C_MAX[$key]=${PMAX[c:$key]}
    C_US[$key]=$(us_per_req "$t0" "$t1" "$reqs")
    kv_stop
    cp "$KV_LOG" "$raw.server.log"
    rm -rf "$data"
    counter_print_run "$key"
    counter_verify "$key" "$(counter_label "$cfg" "${C_K[$key]}")" "$raw"
}

# Dies unless the counter of run $1 holds exactly the increments answered.
counter_verify() {
    local key=$1 label=$2 raw=$3
    [ "${C_VALUE[$key]}" = "${C_EXPECT[$key]}" ] && return 0
    echo "bench/run: [counter] $label, run ${key##*:}: the counter holds ${C_VALUE[$key]} after ${C_EXPECT[$key]} answered increments" >&2
    echo "bench/run: [counter] (client reports $raw*.txt, server log $raw.server.log)" >&2
    die "counter: increments lost or invented: a benchmark that loses increments is a bug"
}

counter_print_run() {
    printf ' %10.0f req/s  p50 %7.0f us  p99 %7.0f us  %s us/req  counter %s = %s answered\n' "${C_RPS[$1]}" \
        "${C_P50[$1]}" "${C_P99[$1]}" "${C_US[$1]}" "${C_VALUE[$1]}" "${C_EXPECT[$1]}" >&2
}

# ---------------------------------------------------------------- redis
# counter_redis_bench N OUTFILE: one bounded redis-benchmark INCR run of N
# requests on the client CPU.
counter_redis_bench() {
    local n=$1 out=$2 bound
    bound=$((6 * (BENCH_SECONDS + BENCH_WARMUP) + 60))
    run_client "$bound" "$out" "$REDIS_BENCHMARK" -h 127.0.0.1 -p "$REDIS_PORT" -t incr \
        -c "$BENCH_COUNTER_CONNS" -n "$n" --csv || { cat "$out" >&2; die "redis-benchmark failed"; }
    grep -q '^"INCR",' "$out" || { cat "$out" >&2; die "cannot parse redis-benchmark output $out"; }
}

# Requests for about SECONDS s at the rate of a redis-benchmark report (>= 1000).
counter_redis_requests_for() {
    awk -v s="$2" '/^"INCR",/ { gsub(/"/, ""); split($0, f, ","); n = int(f[2] * s); print (n < 1000) ? 1000 : n }' "$1"
}

counter_redis_run() {  # rep
    local rep=$1 key=redis:$1 raw=$RAW/counter-redis.r$1 data=$TMP/counter-redis n total t0 t1 spid rps p50 p99 max
    rm -rf "$data"
    # shellcheck disable=SC2046  # the settings are words
    redis_start counter-redis "$data" 1 "$(counter_server_bound)" $(counter_redis_conf)
    C_THREADS[$key]=1 C_K[$key]=-
    printf '  run %s/%s  %4s conns  %-20s ...' "$rep" "$BENCH_REPEAT" "$BENCH_COUNTER_CONNS" "redis INCR" >&2
    # No duration option: calibrate, then as many requests as the rate serves
    # in BENCH_WARMUP and BENCH_SECONDS seconds (as in the durable section).
    n=$((BENCH_COUNTER_CONNS * 200 < 1000 ? 1000 : BENCH_COUNTER_CONNS * 200))
    total=$n
    counter_redis_bench "$n" "$raw.calibrate.txt"
    if ((BENCH_WARMUP > 0)); then
        n=$(counter_redis_requests_for "$raw.calibrate.txt" "$BENCH_WARMUP")
        total=$((total + n))
        counter_redis_bench "$n" "$raw.warmup.txt"
    else
        cp "$raw.calibrate.txt" "$raw.warmup.txt"
    fi
    n=$(counter_redis_requests_for "$raw.warmup.txt" "$BENCH_SECONDS")
    total=$((total + n))
    spid=$(redis_pid)
    t0=$(proc_ticks "$spid")
    counter_redis_bench "$n" "$raw.txt"
    t1=$(proc_ticks "$spid")
    kill -0 "$REDIS_PID" 2>/dev/null || { cat "$REDIS_LOG" >&2; die "redis-server died during the run"; }
    read -r rps p50 p99 max <<<"$(awk -F, '/^"INCR",/ { gsub(/"/, ""); $0 = $0
        printf "%s %.0f %.0f %.0f\n", $2, $5 * 1000, $7 * 1000, $8 * 1000 }' "$raw.txt")"
    C_RPS[$key]=$rps C_P50[$key]=$p50 C_P99[$key]=$p99 C_P999[$key]=nan C_MAX[$key]=$max C_REQS[$key]=$n
    C_US[$key]=$(us_per_req "$t0" "$t1" "$n")
    C_VALUE[$key]=$(redis_cmd get "$COUNTER_REDIS_KEY" 2>/dev/null | tr -d '\r') || true
    C_VALUE[$key]=${C_VALUE[$key]:-none} C_EXPECT[$key]=$total
    redis_stop
    cp "$REDIS_LOG" "$raw.server.log"
    rm -rf "$data"
    counter_print_run "$key"
    counter_verify "$key" "redis INCR" "$raw"
}

# ---------------------------------------------------------------- section
section_counter() {
    echo "bench/run: [counter] one hot counter, $BENCH_COUNTER_CONNS conns; $(counter_durability_text); data dirs in $(data_fs_text)" >&2
    local rep cfg
    for ((rep = 1; rep <= BENCH_REPEAT; rep++)); do
        for cfg in "${COUNTER_CONFIGS[@]}"; do
            case $cfg in
                redis) counter_redis_run "$rep" ;;
                *) counter_kv_run "$cfg" "$rep" ;;
            esac
        done
    done
    counter_aggregate
}

counter_aggregate() {
    local cfg r rep rps p50 p99 p999 max us other
    for cfg in "${COUNTER_CONFIGS[@]}"; do
        rps=() p50=() p99=() p999=() max=() us=()
        CM_REQS[$cfg]=0
        for ((rep = 1; rep <= BENCH_REPEAT; rep++)); do
            r=$cfg:$rep
            rps+=("${C_RPS[$r]}") p50+=("${C_P50[$r]}") p99+=("${C_P99[$r]}")
            p999+=("${C_P999[$r]}") max+=("${C_MAX[$r]}") us+=("${C_US[$r]}")
            CM_REQS[$cfg]=$((CM_REQS[$cfg] + C_REQS[$r]))
        done
        CM_K[$cfg]=${C_K[$cfg:1]} CM_THREADS[$cfg]=${C_THREADS[$cfg:1]}
        CM_RPS[$cfg]=$(pick %.2f high "${rps[@]}")
        CM_P50[$cfg]=$(pick %.0f low "${p50[@]}")
        CM_P99[$cfg]=$(pick %.0f low "${p99[@]}")
        CM_MAX[$cfg]=$(pick %.0f low "${max[@]}")
        CM_US[$cfg]=$(pick %.2f low "${us[@]}")
        if [ "$cfg" = redis ]; then CM_P999[$cfg]=nan; else CM_P999[$cfg]=$(pick %.0f low "${p999[@]}"); fi
    done
    for cfg in "${COUNTER_CONFIGS[@]}"; do
        CM_VS_REDIS[$cfg]="" CM_VS_K1[$cfg]=""
        [ "$cfg" = redis ] && continue
        CM_VS_REDIS[$cfg]=$(ratio "${CM_RPS[$cfg]}" "${CM_RPS[redis]}")
        case $cfg in
            kv-kdef-*)
                other=kv-k1-${cfg#kv-kdef-}
                CM_VS_K1[$cfg]=$(ratio "${CM_RPS[$cfg]}" "${CM_RPS[$other]}")
                ;;
        esac
    done
}

# counter_label CONFIG K: the row's name ("shardkv K=8", "shardkv K=1 *").
counter_label() {
    case $1 in
        redis) echo "redis INCR" ;;
        *-tall) echo "shardkv K=$2 *" ;;
        *) echo "shardkv K=$2" ;;
    esac
}

counter_print_table() {
    local cfg
    printf '\n[counter] one hot counter: POST /v1/counters/%s/incr?by=1 from %s connections (wrk -t1, bench/counter.lua)\n' \
        "$COUNTER_NAME" "$BENCH_COUNTER_CONNS"
    printf 'against INCR on one Redis key (redis-benchmark -t incr -c %s --csv); fresh server and data dir per run in\n' \
        "$BENCH_COUNTER_CONNS"
    printf '%s\n' "$(data_fs_text)"
    printf 'durability: %s\n' "$(counter_durability_text)"
    printf 'shardkv %s, %s shards (default K = the shard count); redis %s; %s of %s runs of %s s\n' "$SHARDKV_VERSION" \
        "${COUNTER_SHARDS:-?}" "$REDIS_VERSION" "$BENCH_STAT" "$BENCH_REPEAT" "$BENCH_SECONDS"
    printf 'rows without *: server pinned to CPU %s (shardkv --threads 1); rows with *: shardkv with its default --threads,\n' \
        "$BENCH_SERVER_CPU"
    printf 'NOT pinned (its workers may also use the client'"'"'s CPU); the client always on CPU %s\n\n' "$BENCH_CLIENT_CPU"
    printf '%-16s %7s %10s %8s %8s %8s %8s %7s %9s %7s\n' config threads "req/s" "p50 us" "p99 us" "p99.9 us" "max us" \
        "us/req" "vs redis" "vs K=1"
    for cfg in "${COUNTER_CONFIGS[@]}"; do
        printf '%-16s %7s %10.0f %8.0f %8.0f %8s %8.0f %7.2f %9s %7s\n' "$(counter_label "$cfg" "${CM_K[$cfg]}")" \
            "${CM_THREADS[$cfg]}" "${CM_RPS[$cfg]}" "${CM_P50[$cfg]}" "${CM_P99[$cfg]}" \
            "$(if [ "${CM_P999[$cfg]}" = nan ]; then echo -; else echo "${CM_P999[$cfg]}"; fi)" "${CM_MAX[$cfg]}" \
            "${CM_US[$cfg]}" "${CM_VS_REDIS[$cfg]:--}" "${CM_VS_K1[$cfg]:--}"
    done
    printf '\nvs redis: req/s / Redis INCR req/s; vs K=1: the default-K counter / the K=1 counter at the same threads.\n'
    printf 'us/req: server CPU (all threads) per increment. shardkv req/s: increments answered / %s s of sending\n' \
        "$BENCH_SECONDS"
    printf '(each wrk run ends with %s s of silence so that nothing is in flight when it stops).\n' "$COUNTER_DRAIN_S"
    printf 'checked: after every run the counter held exactly the increments answered (warm-up included), with no\n'
    printf 'non-2xx answer and no socket error (%s increments in the measured runs of the table).\n' \
        "$(awk -v a="${CM_REQS[kv-kdef-t1]}" -v b="${CM_REQS[kv-k1-t1]}" -v c="${CM_REQS[kv-kdef-tall]}" \
            -v d="${CM_REQS[kv-k1-tall]}" -v e="${CM_REQS[redis]}" 'BEGIN { printf "%.0f", a + b + c + d + e }')"
}

counter_json() {
    local cfg rep key first=1
    section_done counter || return 0
    printf ',\n  "counter": {\n'
    printf '    "config": {"connections": %s, "fsync": "%s", "redis": %s, "counter": %s, "shards": %s, ' \
        "$BENCH_COUNTER_CONNS" "$BENCH_COUNTER_FSYNC" "$(json_str "$(counter_redis_conf)")" "$(json_str "$COUNTER_NAME")" \
        "$(json_num "$COUNTER_SHARDS")"
    printf '"seconds": %s, "warmup_seconds": %s, "drain_seconds": %s, "repeat": %s, "stat": "%s", ' "$BENCH_SECONDS" \
        "$BENCH_WARMUP" "$COUNTER_DRAIN_S" "$BENCH_REPEAT" "$BENCH_STAT"
    printf '"server_cpu": %s, "client_cpu": %s, "redis_version": %s, "data_dir": %s, "filesystem": %s},\n' \
        "$BENCH_SERVER_CPU" "$BENCH_CLIENT_CPU" "$(json_str "$REDIS_VERSION")" "$(json_str "$TMP")" \
        "$(json_str "$(awk '{print $2}' <<<"$DATA_FS")")"
    printf '    "results": [\n'
    for cfg in "${COUNTER_CONFIGS[@]}"; do
        ((first)) || printf ',\n'
        first=0
        printf '      {"config": "%s", "server": "%s", "k": %s, "threads": %s, "pinned": %s, "rps": %s, ' "$cfg" \
            "$(counter_server_name "$cfg")" "$(json_num "${CM_K[$cfg]}")" "$(json_num "${CM_THREADS[$cfg]}")" \
            "$(counter_pinned "$cfg")" "${CM_RPS[$cfg]}"
        printf '"p50_us": %s, "p99_us": %s, "p999_us": %s, "max_us": %s, "server_cpu_us_per_request": %s, ' \
            "${CM_P50[$cfg]}" "${CM_P99[$cfg]}" "$(json_num "${CM_P999[$cfg]}")" "${CM_MAX[$cfg]}" "${CM_US[$cfg]}"
        printf '"ratio_to_redis": %s, "ratio_to_k1": %s, "requests": %s, "verified": true}' \
            "$(json_num "${CM_VS_REDIS[$cfg]}")" "$(json_num "${CM_VS_K1[$cfg]}")" "${CM_REQS[$cfg]}"
    done
    printf '\n    ],\n    "runs": [\n'
    first=1
    for ((rep = 1; rep <= BENCH_REPEAT; rep++)); do
        for cfg in "${COUNTER_CONFIGS[@]}"; do
            key=$cfg:$rep
            [ -n "${C_RPS[$key]:-}" ] || continue
            ((first)) || printf ',\n'
            first=0
            printf '      {"repetition": %s, "config": "%s", "server": "%s", "k": %s, "threads": %s, "rps": %s, ' \
                "$rep" "$cfg" "$(counter_server_name "$cfg")" "$(json_num "${C_K[$key]}")" \
                "$(json_num "${C_THREADS[$key]}")" "${C_RPS[$key]}"
            printf '"p50_us": %s, "p99_us": %s, "p999_us": %s, "max_us": %s, "server_cpu_us_per_request": %s, ' \
                "${C_P50[$key]}" "${C_P99[$key]}" "$(json_num "${C_P999[$key]}")" "${C_MAX[$key]}" "${C_US[$key]}"
            printf '"requests": %s, "counter_value": %s, "increments_answered": %s}' "${C_REQS[$key]}" \
                "$(json_num "${C_VALUE[$key]}")" "${C_EXPECT[$key]}"
        done
    done
    printf '\n    ]\n  }'
}

counter_server_name() { if [ "$1" = redis ]; then echo redis; else echo shardkv; fi; }
counter_pinned() { case $1 in *-tall) echo false ;; *) echo true ;; esac; }
