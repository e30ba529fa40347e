#!/usr/bin/env bash
# HTTP/1.1 reverse-proxy benchmark: Postern vs nginx, same machine, same run.
#
#   bench/run-http1.sh                 # build, run 5 interleaved rounds, write bench/results/YYYY-MM-DD-http1.md
#   ROUNDS=3 DURATION=3 bench/run-http1.sh
#   BENCH_SKIP_POSTERN=1 bench/run-http1.sh   # nginx and direct rows only (Postern not built/ready)
#
# Layout (2 CPUs): the proxy under test alone on CPU 0; the upstream (nginx,
# fixed 100-byte body) and wrk share CPU 1. See bench/README.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5}            # seconds per measured run
WARMUP=${WARMUP:-1}                # seconds of unmeasured load before each run
CONNECTIONS=${CONNECTIONS:-50}
THREADS=${THREADS:-1}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}            # wrk and the upstream
SCRATCH=${SCRATCH:-$ROOT/.build-release}
SKIP_BUILD=${SKIP_BUILD:-0}
BENCH_SKIP_POSTERN=${BENCH_SKIP_POSTERN:-0}
UPSTREAM=${UPSTREAM:-nginx}        # nginx (fixed 100-byte body) or echo (postern-echo, GET /bytes/100)
HOST_HEADER=bench.local
RESULTS_DIR=${RESULTS_DIR:-$ROOT/bench/results}
RESULT_FILE=${RESULT_FILE:-$RESULTS_DIR/$(date -u +%Y-%m-%d)-http1.md}

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

# --- tools -------------------------------------------------------------------
need_packages=()
command -v nginx >/dev/null 2>&1 || need_packages+=(nginx-light)
command -v wrk >/dev/null 2>&1 || need_packages+=(wrk)
command -v taskset >/dev/null 2>&1 || need_packages+=(util-linux)
command -v curl >/dev/null 2>&1 || need_packages+=(curl)
if ((${#need_packages[@]})); then
    log "installing ${need_packages[*]}"
    SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_packages[@]}" >/dev/null
fi
NGINX_BIN=$(command -v nginx)
CLK_TCK=$(getconf CLK_TCK)

# --- build -------------------------------------------------------------------
if [[ $SKIP_BUILD != 1 ]]; then
    log "building postern-echo (release)"
    (cd "$ROOT" && swift build -c release --scratch-path "$SCRATCH" --product postern-echo >&2)
    if [[ $BENCH_SKIP_POSTERN != 1 ]]; then
        log "building postern (release)"
        (cd "$ROOT" && swift build -c release --scratch-path "$SCRATCH" --product postern >&2)
    fi
fi
BIN_DIR="$SCRATCH/release"
ECHO_BIN=${ECHO_BIN:-$BIN_DIR/postern-echo}
POSTERN_BIN=${POSTERN_BIN:-$BIN_DIR/postern}

# --- scratch directory and cleanup ---------------------------------------------
WORK=$(mktemp -d /tmp/postern-bench.XXXXXX)
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free loopback port below the kernel's ephemeral range (so no outgoing
# connection can hold it), probed with bash's /dev/tcp: a refused connect means free.
EPHEMERAL_LOW=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
free_port() {
    local port span=$((EPHEMERAL_LOW - 10000))
    ((span > 1000)) || span=1000
    for _ in $(seq 1 50); do
        port=$((10000 + (RANDOM * 32768 + RANDOM) % span))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
    done
    die "no free port found"
}

# Waits (bounded) until `curl` gets a 200 for the URL with the bench Host header.
wait_http_ok() {
    local url=$1 what=$2 deadline=$((SECONDS + 20))
    until [[ $(curl -s -o /dev/null -w '%{http_code}' -m 1 -H "Host: $HOST_HEADER" "$url" || true) == 200 ]]; do
        ((SECONDS < deadline)) || die "$what did not answer 200 on $url within 20 s (logs in $WORK)"
        sleep 0.1
    done
}

# --- upstream ------------------------------------------------------------------
BODY_100=$(printf 'x%.0s' $(seq 1 99))   # 99 bytes + the newline nginx's `return` does not add: see below
UPSTREAM_PORT=$(free_port)
NGINX_TEMP="client_body_temp_path $WORK/tmp-body; proxy_temp_path $WORK/tmp-proxy; fastcgi_temp_path $WORK/tmp-fcgi; uwsgi_temp_path $WORK/tmp-uwsgi; scgi_temp_path $WORK/tmp-scgi;"
if [[ $UPSTREAM == nginx ]]; then
    REQUEST_PATH=/
    cat >"$WORK/upstream.conf" <<EOF
worker_processes 1;
daemon off;
user $(id -un) $(id -gn);
pid $WORK/upstream.pid;
error_log $WORK/upstream-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 100000;
    keepalive_timeout 60s;
    default_type text/plain;
    $NGINX_TEMP
    server {
        listen 127.0.0.1:$UPSTREAM_PORT;
        location / { return 200 "${BODY_100}\n"; }
    }
}
EOF
    taskset -c "$LOAD_CPU" "$NGINX_BIN" -c "$WORK/upstream.conf" -p "$WORK" >"$WORK/upstream.log" 2>&1 &
    PIDS+=($!)
else
    REQUEST_PATH=/bytes/100
    [[ -x $ECHO_BIN ]] || die "postern-echo not found at $ECHO_BIN"
    taskset -c "$LOAD_CPU" "$ECHO_BIN" --listen "127.0.0.1:$UPSTREAM_PORT" --name bench >"$WORK/upstream.log" 2>&1 &
    PIDS+=($!)
fi
wait_http_ok "http://127.0.0.1:$UPSTREAM_PORT$REQUEST_PATH" "upstream ($UPSTREAM)"
UPSTREAM_BODY_BYTES=$(curl -s "http://127.0.0.1:$UPSTREAM_PORT$REQUEST_PATH" | wc -c)
log "upstream $UPSTREAM on 127.0.0.1:$UPSTREAM_PORT (CPU $LOAD_CPU), body $UPSTREAM_BODY_BYTES bytes"

# --- nginx as reverse proxy ------------------------------------------------------
NGINX_PORT=$(free_port)
cat >"$WORK/proxy.conf" <<EOF
worker_processes 1;
daemon off;
user $(id -un) $(id -gn);
pid $WORK/proxy.pid;
error_log $WORK/proxy-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 100000;
    keepalive_timeout 60s;
    $NGINX_TEMP
    upstream bench { server 127.0.0.1:$UPSTREAM_PORT; keepalive 64; }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        server_name $HOST_HEADER;
        location / {
            proxy_pass http://bench;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
taskset -c "$PROXY_CPU" "$NGINX_BIN" -c "$WORK/proxy.conf" -p "$WORK" >"$WORK/proxy.log" 2>&1 &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
wait_http_ok "http://127.0.0.1:$NGINX_PORT$REQUEST_PATH" "nginx proxy"
log "nginx proxy on 127.0.0.1:$NGINX_PORT (CPU $PROXY_CPU)"

# --- Postern as reverse proxy ------------------------------------------------------
POSTERN_PID=""
if [[ $BENCH_SKIP_POSTERN != 1 ]]; then
    [[ -x $POSTERN_BIN ]] || die "postern not found at $POSTERN_BIN (set BENCH_SKIP_POSTERN=1 to run without it)"
    mkdir -p "$WORK/manifests"
    cat >"$WORK/manifests/bench.yaml" <<EOF
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: bench, namespace: default}
spec:
  ingressClassName: postern
  rules:
  - host: $HOST_HEADER
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: bench, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: postern}
spec: {controller: postern.dev/ingress-controller}
---
apiVersion: v1
kind: Service
metadata: {name: bench, namespace: default}
spec: {ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: bench-1, namespace: default, labels: {kubernetes.io/service-name: bench}}
addressType: IPv4
endpoints: [{addresses: ["127.0.0.1"], conditions: {ready: true}}]
ports: [{name: http, port: $UPSTREAM_PORT}]
EOF
    # The Postern command line under test; POSTERN_EXTRA_ARGS appends flags.
    POSTERN_CMD=("$POSTERN_BIN" run
        --manifests "$WORK/manifests"
        --http-listen 127.0.0.1:0
        --https-listen off
        --workers 1
        --admin-listen 127.0.0.1:0)
    # shellcheck disable=SC2206
    POSTERN_CMD+=(${POSTERN_EXTRA_ARGS:-})
    log "starting: ${POSTERN_CMD[*]}"
    taskset -c "$PROXY_CPU" "${POSTERN_CMD[@]}" >"$WORK/postern.log" 2>&1 &
    POSTERN_PID=$!
    PIDS+=("$POSTERN_PID")
    deadline=$((SECONDS + 30))
    until grep -q '^listening on ' "$WORK/postern.log" 2>/dev/null; do
        kill -0 "$POSTERN_PID" 2>/dev/null || { cat "$WORK/postern.log" >&2; die "postern exited before listening"; }
        ((SECONDS < deadline)) || { cat "$WORK/postern.log" >&2; die "postern printed no 'listening on' line within 30 s"; }
        sleep 0.1
    done
    # The first `listening on` line is the HTTP listener (port 0 resolved).
    POSTERN_PORT=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$WORK/postern.log" | head -1)
    [[ -n $POSTERN_PORT ]] || die "cannot read the port from postern's 'listening on' line"
    wait_http_ok "http://127.0.0.1:$POSTERN_PORT$REQUEST_PATH" "postern"
    body=$(curl -s -H "Host: $HOST_HEADER" "http://127.0.0.1:$POSTERN_PORT$REQUEST_PATH" | wc -c)
    [[ $body == "$UPSTREAM_BODY_BYTES" ]] || die "postern returned $body body bytes, upstream sends $UPSTREAM_BODY_BYTES"
    log "postern on 127.0.0.1:$POSTERN_PORT (CPU $PROXY_CPU)"
fi

# --- measurement ----------------------------------------------------------------
# CPU ticks of a process and its direct children (nginx's worker; a
# multi-threaded Postern counts all its threads in its own line): prints
# "utime stime" (user space, kernel).
cpu_ticks() {
    local pid=$1 user=0 system=0 child fields
    for child in $pid $(pgrep -P "$pid" || true); do
        fields=$(sed 's/.*) //' "/proc/$child/stat" 2>/dev/null | awk '{print $12, $13}') || fields="0 0"
        user=$((user + ${fields% *}))
        system=$((system + ${fields#* }))
    done
    echo "$user $system"
}

# wrk latency value ("812.00us", "1.23ms", "1.01s") in milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /m$/) n *= 60000; else if (v ~ /s$/) n *= 1000
        printf "%.3f", n }'
}

RAW="$WORK/raw.tsv"
: >"$RAW"

# run NAME PORT PID_OR_EMPTY ROUND
run() {
    local name=$1 port=$2 pid=$3 round=$4 url out before after requests rps p50 p99 errors cpu_us cpu_pct
    local user_before=0 system_before=0 user_after=0 system_after=0 kernel_pct=NA
    url="http://127.0.0.1:$port$REQUEST_PATH"
    taskset -c "$LOAD_CPU" timeout $((WARMUP + 10)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" \
        -H "Host: $HOST_HEADER" "$url" >/dev/null
    [[ -n $pid ]] && read -r user_before system_before < <(cpu_ticks "$pid")
    out=$(taskset -c "$LOAD_CPU" timeout $((DURATION + 10)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" \
        --latency -H "Host: $HOST_HEADER" "$url")
    [[ -n $pid ]] && read -r user_after system_after < <(cpu_ticks "$pid")
    before=$((user_before + system_before))
    after=$((user_after + system_after))
    echo "$out" >"$WORK/wrk-$name-$round.txt"
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
    errors=$(awk '/Non-2xx or 3xx responses:/ {n += $NF}
                  /Socket errors:/ {gsub(",", ""); n += $4 + $6 + $8 + $10}
                  END {print n + 0}' <<<"$out")
    if [[ -n $pid && ${requests:-0} -gt 0 ]]; then
        cpu_us=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v r="$requests" 'BEGIN {printf "%.2f", t / hz * 1e6 / r}')
        cpu_pct=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v d="$DURATION" 'BEGIN {printf "%.0f", t / hz / d * 100}')
        kernel_pct=$(awk -v s=$((system_after - system_before)) -v t=$((after - before)) 'BEGIN {printf (t > 0) ? "%.0f" : "NA", s / t * 100}')
    else
        cpu_us=NA; cpu_pct=NA
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$round" "$rps" "$p50" "$p99" "$cpu_us" "$cpu_pct" "$errors" "$kernel_pct" >>"$RAW"
    log "round $round $name: $rps req/s, p50 ${p50} ms, p99 ${p99} ms, proxy CPU ${cpu_us} µs/req (${cpu_pct}%), errors $errors"
}

TARGETS=(nginx)
[[ -n $POSTERN_PID ]] && TARGETS+=(postern)
for round in $(seq 1 "$ROUNDS"); do
    for target in "${TARGETS[@]}"; do
        case $target in
            nginx) run nginx "$NGINX_PORT" "$NGINX_PID" "$round" ;;
            postern) run postern "$POSTERN_PORT" "$POSTERN_PID" "$round" ;;
        esac
    done
    run direct "$UPSTREAM_PORT" "" "$round"
done

# --- report ------------------------------------------------------------------------
# Prints "median (min–max)" of column COL for target NAME; "n/a" when not numeric.
summary() {
    local name=$1 col=$2
    awk -F'\t' -v n="$name" -v c="$col" '$1 == n && $c != "NA" {print $c}' "$RAW" | sort -g |
        awk '{v[NR] = $1} END {
            if (NR == 0) { print "n/a"; exit }
            m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            printf "%s (%s–%s)", fmt(m), fmt(v[1]), fmt(v[NR]) }
            function fmt(x) { return (x >= 1000) ? sprintf("%.0f", x) : (x >= 10 ? sprintf("%.1f", x) : sprintf("%.3g", x)) }'
}
median() {
    awk -F'\t' -v n="$1" -v c="$2" '$1 == n && $c != "NA" {print $c}' "$RAW" | sort -g |
        awk '{v[NR] = $1} END { if (NR == 0) print ""; else print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
total_errors() { awk -F'\t' -v n="$1" '$1 == n {s += $8} END {print s + 0}' "$RAW"; }
ratio() {
    local a b
    a=$(median postern "$1"); b=$(median nginx "$1")
    if [[ -z $a || -z $b ]]; then echo "n/a"; else awk -v a="$a" -v b="$b" 'BEGIN {printf (b > 0) ? "%.2f" : "n/a", a / b}'; fi
}

mkdir -p "$RESULTS_DIR"
{
    echo "# HTTP/1.1 reverse proxy: Postern vs nginx — $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "- Load: \`wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency -H 'Host: $HOST_HEADER' http://127.0.0.1:PORT$REQUEST_PATH\`, ${WARMUP} s warm-up before each run, $ROUNDS rounds interleaved (nginx, postern, direct, …)."
    echo "- Upstream: $UPSTREAM, ${UPSTREAM_BODY_BYTES}-byte body, keep-alive; proxies on CPU $PROXY_CPU with 1 worker; upstream and wrk share CPU $LOAD_CPU."
    echo "- Machine: $(nproc) CPUs, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), Linux $(uname -r)."
    echo "- Versions: $("$NGINX_BIN" -v 2>&1 | sed 's/.*: //'), $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}'), Postern $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '(uncommitted tree)')."
    echo
    echo "Medians with (min–max) over the rounds. CPU is the proxy process's utime+stime during the measured run divided by the requests served (clock tick $((1000000 / CLK_TCK)) µs)."
    echo
    echo "| target | req/s | p50 ms | p99 ms | proxy CPU µs/req | proxy CPU % | kernel share of proxy CPU % | errors |"
    echo "|---|---|---|---|---|---|---|---|"
    for target in direct "${TARGETS[@]}"; do
        echo "| $target | $(summary "$target" 3) | $(summary "$target" 4) | $(summary "$target" 5) | $(summary "$target" 6) | $(summary "$target" 7) | $(summary "$target" 9) | $(total_errors "$target") |"
    done
    echo
    if [[ -n $POSTERN_PID ]]; then
        echo "Postern / nginx (medians): req/s **$(ratio 3)**, CPU µs/req **$(ratio 6)**, p99 **$(ratio 5)** (higher is better for req/s, lower for CPU and p99)."
    else
        echo "Postern was not measured in this run (BENCH_SKIP_POSTERN=1)."
    fi
    echo
    # Say what limited the run (CONVENTIONS: benchmarks are honest).
    direct_rps=$(median direct 3)
    for target in "${TARGETS[@]}"; do
        rps=$(median "$target" 3)
        if [[ -n $direct_rps && -n $rps ]] && awk -v a="$rps" -v b="$direct_rps" 'BEGIN {exit !(a >= 0.9 * b)}'; then
            echo "- $target reached ≥ 90% of the direct rate: CPU $LOAD_CPU (wrk + upstream) caps it too, so req/s understates the difference; CPU µs/req does not."
        fi
        pct=$(median "$target" 7)
        if [[ -n $pct ]] && awk -v p="$pct" 'BEGIN {exit !(p < 90)}'; then
            echo "- $target used a median ${pct}% of CPU $PROXY_CPU: the proxy was not saturated, so its req/s is bounded by CPU $LOAD_CPU (wrk + upstream). Compare CPU µs/req and latency."
        elif [[ -n $pct ]]; then
            echo "- $target used a median ${pct}% of CPU $PROXY_CPU: the proxy was the bottleneck."
        fi
    done
    echo
    echo "<details><summary>Every run</summary>"
    echo
    echo "| target | round | req/s | p50 ms | p99 ms | CPU µs/req | CPU % | kernel % | errors |"
    echo "|---|---|---|---|---|---|---|---|---|"
    awk -F'\t' '{printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $9, $8}' "$RAW"
    echo
    echo "</details>"
} >"$RESULT_FILE"

cat "$RESULT_FILE"
log "written to ${RESULT_FILE#"$ROOT"/}"
