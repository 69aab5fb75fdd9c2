#!/usr/bin/env bash
# bench/tcp.sh: the L4 relay benchmark, one hop, side by side.
#
# The same loopback hop (client -> proxy -> upstream) is measured for remora (tcp_proxy),
# HAProxy (mode tcp), nginx (stream proxy_pass), and "direct" (client -> upstream, no proxy),
# one after another in this one run. Every proxy runs ONE worker thread on its own core.
#
#   rps/p50/p99  wrk -t1 -c50 keep-alive HTTP/1.1 through the hop to an nginx app (1 KiB body)
#   CPU/request  proxy utime+stime (/proc/PID/stat) over the wrk run / requests
#   conn/s       the same wrk with "Connection: close": one new connection per request
#   bulk GB/s    one connection carrying BENCH_BULK_BYTES (2 GiB), each direction, socat <-> socat
#   memory       RSS after start, RSS with BENCH_IDLE_CONNS (1000) idle connections open, peak
#
# It measures and reports; it never fails on a number. Exit status is non-zero only when
# something could not run (a tool missing, a proxy that did not start, a broken transfer).
# Writes the table to stdout and to $BUILD/bench/tcp.md. See bench/README.md.
# The start_* functions are called by name ("start_$t"), which shellcheck cannot follow.
# shellcheck disable=SC2317
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

BUILD=${BUILD:-build}
REMORA=${REMORA:-$root/$BUILD/remora}
SECS=${BENCH_SECONDS:-10}
BULK=${BENCH_BULK_BYTES:-2147483648}
IDLE_CONNS=${BENCH_IDLE_CONNS:-1000}
WRK_CONNS=${BENCH_WRK_CONNS:-50}
PROXY_CPU=${BENCH_PROXY_CPU:-0} # the proxy under test runs here, alone
LOAD_CPU=${BENCH_LOAD_CPU:-1}   # wrk, socat and the nginx app share this one
TARGETS=${BENCH_TARGETS:-direct remora haproxy nginx}
NGINX_STREAM_MODULE=${NGINX_STREAM_MODULE:-/usr/lib/nginx/modules/ngx_stream_module.so}
SOCAT_BUF=262144
SMOKE_BYTES=$((16 * 1024 * 1024))
XFER_TIMEOUT=${BENCH_XFER_TIMEOUT:-120}
OUT_DIR=$root/$BUILD/bench
OUT=$OUT_DIR/tcp.md

b_need "wrk socat nginx haproxy libnginx-mod-stream util-linux iproute2 curl" \
    wrk socat nginx haproxy taskset ss awk curl timeout
[[ -x $REMORA ]] || {
    b_log "no $REMORA: run make first"
    exit 1
}
if [[ " $TARGETS " == *" nginx "* && ! -f $NGINX_STREAM_MODULE ]]; then
    b_log "no $NGINX_STREAM_MODULE: apt-get install libnginx-mod-stream (or set NGINX_STREAM_MODULE)"
    exit 1
fi
if (($(nproc) < 2)); then
    b_log "only one core: the proxy and the load generator will share it"
    PROXY_CPU=0
    LOAD_CPU=0
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null
if (($(ulimit -n) < 4 * IDLE_CONNS + 200)); then
    b_log "ulimit -n $(ulimit -n) is too low for $IDLE_CONNS idle connections"
    exit 1
fi
CLK_TCK=$(getconf CLK_TCK)

b_setup tcp # $work, cleanup at exit, $REMORA_BIN (bench/lib.sh)

# --- the upstream app: nginx, 1 worker, 1 KiB body, keep-alive (bench/lib.sh) -----------------
APP=$(b_free_port)   # HTTP app
SINK=$(b_free_port)  # bulk upload sink (socat, started per transfer)
SRC=$(b_free_port)   # bulk download source (socat, started per transfer)
b_app "$work/app" "$APP"

# --- proxies: each start_* sets T_PIDS (processes to measure) and T_HTTP/T_UP/T_DOWN ports --
start_direct() {
    T_PIDS=()
    T_HTTP=$APP T_UP=$SINK T_DOWN=$SRC
}

start_remora() {
    local admin d=$work/remora
    mkdir -p "$d"
    admin=$(b_free_port)
    T_HTTP=$(b_free_port) T_UP=$(b_free_port) T_DOWN=$(b_free_port)
    {
        cat <<EOF
node: {id: bench.local, cluster: bench}
admin:
  address: {socket_address: {address: 127.0.0.1, port_value: $admin}}
static_resources:
  listeners:
EOF
        local n p
        for n in http:$T_HTTP up:$T_UP down:$T_DOWN; do
            p=${n#*:} n=${n%%:*}
            cat <<EOF
  - name: $n
    address: {socket_address: {address: 127.0.0.1, port_value: $p}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: $n
          cluster: $n
EOF
        done
        echo "  clusters:"
        for n in http:$APP up:$SINK down:$SRC; do
            p=${n#*:} n=${n%%:*}
            cat <<EOF
  - name: $n
    type: STATIC
    connect_timeout: 5s
    load_assignment:
      cluster_name: $n
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $p}}}
EOF
        done
    } >"$d/remora.yaml"
    b_bg "$d/remora.log" taskset -c "$PROXY_CPU" "$REMORA_BIN" --config "$d/remora.yaml" --concurrency 1 \
        --log-level warning
    T_PIDS=("$B_PID")
    local i
    for ((i = 0; i < 100; i++)); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$admin/ready") == 200 ]] &&
            return 0
        sleep 0.05
    done
    b_log "remora did not become ready: $(cat "$d/remora.log")"
    return 1
}

start_haproxy() {
    local d=$work/haproxy
    mkdir -p "$d"
    T_HTTP=$(b_free_port) T_UP=$(b_free_port) T_DOWN=$(b_free_port)
    cat >"$d/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 8192
defaults
    mode tcp
    timeout connect 5s
    timeout client 300s
    timeout server 300s
frontend http
    bind 127.0.0.1:$T_HTTP
    default_backend http
backend http
    server app 127.0.0.1:$APP
frontend up
    bind 127.0.0.1:$T_UP
    default_backend up
backend up
    server sink 127.0.0.1:$SINK
frontend down
    bind 127.0.0.1:$T_DOWN
    default_backend down
backend down
    server src 127.0.0.1:$SRC
EOF
    haproxy -c -q -f "$d/haproxy.cfg" >"$d/check.log" 2>&1 || {
        b_log "haproxy rejects its config: $(cat "$d/check.log")"
        return 1
    }
    b_bg "$d/haproxy.log" taskset -c "$PROXY_CPU" haproxy -db -f "$d/haproxy.cfg"
    T_PIDS=("$B_PID")
    if ! { b_wait_listen "$T_HTTP" && b_wait_listen "$T_UP" && b_wait_listen "$T_DOWN"; }; then
        b_log "haproxy did not listen: $(cat "$d/haproxy.log")"
        return 1
    fi
}

start_nginx() {
    local d=$work/nginx master worker i
    mkdir -p "$d/logs"
    T_HTTP=$(b_free_port) T_UP=$(b_free_port) T_DOWN=$(b_free_port)
    cat >"$d/nginx.conf" <<EOF
load_module $NGINX_STREAM_MODULE;
worker_processes 1;
worker_rlimit_nofile 16384;
error_log $d/logs/error.log warn;
events { worker_connections 8192; }
stream {
    server { listen 127.0.0.1:$T_HTTP; proxy_pass 127.0.0.1:$APP; }
    server { listen 127.0.0.1:$T_UP; proxy_pass 127.0.0.1:$SINK; }
    server { listen 127.0.0.1:$T_DOWN; proxy_pass 127.0.0.1:$SRC; }
}
EOF
    b_bg "$d/stdout.log" taskset -c "$PROXY_CPU" nginx -p "$d" -e "$d/logs/error.log" -c "$d/nginx.conf" \
        -g "daemon off; pid $d/nginx.pid;"
    master=$B_PID
    if ! { b_wait_listen "$T_HTTP" && b_wait_listen "$T_UP" && b_wait_listen "$T_DOWN"; }; then
        b_log "nginx did not listen: $(cat "$d/logs/error.log" "$d/stdout.log")"
        return 1
    fi
    # b_bg's pid is taskset's, which exec'd nginx (the master); the worker is its child.
    for ((i = 0; i < 100; i++)); do
        worker=$(pgrep -P "$master" | head -1)
        [[ -n $worker ]] && break
        sleep 0.05
    done
    [[ -n $worker ]] || {
        b_log "no nginx worker under master $master"
        return 1
    }
    T_PIDS=("$master" "$worker") # CPU and RSS are summed over master and worker
}

# --- measurements --------------------------------------------------------------------------
declare -A R # R[target.metric] = value; absent means not measured

# wrk_run TARGET KIND PORT [wrk args...]: keep-alive (KIND=ka) or connection-per-request (cc)
wrk_run() {
    local t=$1 kind=$2 port=$3 f c0 c1 parsed rps p50 p99 reqs err
    shift 3
    f=$work/wrk-$t-$kind.txt
    # one second of warm-up, not counted
    pin_load wrk -t1 -c"$WRK_CONNS" -d1s "$@" "http://127.0.0.1:$port/" >/dev/null 2>&1
    ((${#T_PIDS[@]})) && c0=$(b_cpu_ticks "${T_PIDS[@]}")
    pin_load wrk -t1 -c"$WRK_CONNS" -d"${SECS}s" --latency "$@" "http://127.0.0.1:$port/" \
        >"$f" 2>&1
    ((${#T_PIDS[@]})) && c1=$(b_cpu_ticks "${T_PIDS[@]}")
    parsed=$(b_wrk_parse "$f") || {
        b_fail "$t: wrk ($kind) produced no result: $(head -c 500 "$f")"
        return
    }
    read -r rps p50 p99 reqs err <<<"$parsed"
    if ((err > 0)); then
        b_log "$t: wrk ($kind) reported $err errors (see the notes under the table)"
        NOTES+=("$t, $kind: wrk counted $err socket errors or non-2xx responses")
    fi
    if [[ $kind == ka ]]; then
        R[$t.rps]=$rps R[$t.p50]=$p50 R[$t.p99]=$p99
        ((${#T_PIDS[@]})) &&
            R[$t.cpu_req]=$(awk -v d=$((c1 - c0)) -v hz="$CLK_TCK" -v n="$reqs" \
                'BEGIN { printf "%.3f", d / hz * 1e6 / n }')
    else
        R[$t.cps]=$rps
        ((${#T_PIDS[@]})) &&
            R[$t.cpu_conn]=$(awk -v d=$((c1 - c0)) -v hz="$CLK_TCK" -v n="$reqs" \
                'BEGIN { printf "%.3f", d / hz * 1e6 / n }')
    fi
}

# bulk TARGET DIR PORT BYTES [verify]: one connection, DIR=up (client sends) or down (client
# receives). Prints the elapsed nanoseconds; with "verify", the receiver logs what it got and
# the count is checked (logging costs throughput, so timed runs do not verify).
bulk() {
    local t=$1 dir=$2 port=$3 bytes=$4 verify=${5:-} log=$work/bulk-$1-$2.log
    local rx_opts=(-u -b "$SOCAT_BUF") peer t0 t1 rc got
    [[ -n $verify ]] && rx_opts=(-d -d -d -lf "$log" "${rx_opts[@]}")
    rm -f "$log"
    if [[ $dir == up ]]; then
        b_bg "$work/sink.log" timeout "$XFER_TIMEOUT" taskset -c "$LOAD_CPU" socat "${rx_opts[@]}" \
            TCP-LISTEN:"$SINK",bind=127.0.0.1,reuseaddr OPEN:/dev/null
        peer=$B_PID
        b_wait_listen "$SINK" || return 1
        t0=$(b_now_ns)
        timeout "$XFER_TIMEOUT" taskset -c "$LOAD_CPU" socat -u -b "$SOCAT_BUF" \
            OPEN:/dev/zero,readbytes="$bytes" TCP:127.0.0.1:"$port"
        rc=$?
        wait "$peer"
        rc=$((rc | $?))
        t1=$(b_now_ns)
    else
        b_bg "$work/src.log" timeout "$XFER_TIMEOUT" taskset -c "$LOAD_CPU" socat -u \
            -b "$SOCAT_BUF" OPEN:/dev/zero,readbytes="$bytes" \
            TCP-LISTEN:"$SRC",bind=127.0.0.1,reuseaddr
        peer=$B_PID
        b_wait_listen "$SRC" || return 1
        t0=$(b_now_ns)
        timeout "$XFER_TIMEOUT" taskset -c "$LOAD_CPU" socat "${rx_opts[@]}" \
            TCP:127.0.0.1:"$port" OPEN:/dev/null
        rc=$?
        wait "$peer"
        rc=$((rc | $?))
        t1=$(b_now_ns)
    fi
    b_forget "$peer"
    ((rc == 0)) || return 1
    if [[ -n $verify ]]; then
        got=$(awk '$5 == "transferred" { s += $6 } END { printf "%d", s }' "$log")
        [[ $got == "$bytes" ]] || {
            b_log "$t: $dir: received $got bytes of $bytes"
            return 1
        }
    fi
    echo $((t1 - t0))
}

bulk_measure() { # bulk_measure TARGET DIR PORT
    local t=$1 dir=$2 port=$3 ns
    bulk "$t" "$dir" "$port" "$SMOKE_BYTES" verify >/dev/null || {
        b_fail "$t: the $dir transfer check (${SMOKE_BYTES} bytes) failed"
        return
    }
    ns=$(bulk "$t" "$dir" "$port" "$BULK") || {
        b_fail "$t: the timed $dir transfer failed"
        return
    }
    R[$t.$dir]=$(awk -v b="$BULK" -v ns="$ns" 'BEGIN { printf "%.3f", b / ns }')
}

# idle_conns TARGET: RSS with IDLE_CONNS connections open through the hop, doing nothing
idle_conns() {
    local t=$1 fds=() fd i n base
    base=$(b_established "$APP")
    for ((i = 0; i < IDLE_CONNS; i++)); do
        exec {fd}<>"/dev/tcp/127.0.0.1/$T_HTTP" || break
        fds+=("$fd")
    done
    ((${#fds[@]} == IDLE_CONNS)) || b_fail "$t: opened only ${#fds[@]} of $IDLE_CONNS connections"
    for ((i = 0; i < 200; i++)); do # until the proxy has its upstream side open too
        n=$(b_established "$APP")
        ((n - base >= ${#fds[@]})) && break
        sleep 0.05
    done
    ((n - base >= ${#fds[@]})) ||
        b_fail "$t: only $((n - base)) of ${#fds[@]} upstream connections came up"
    sleep 0.5
    R[$t.rss_conns]=$(b_status_kib VmRSS "${T_PIDS[@]}")
    R[$t.kib_conn]=$(awk -v a="${R[$t.rss_conns]}" -v b="${R[$t.rss_idle]}" -v n="${#fds[@]}" \
        'BEGIN { printf "%.2f", (a - b) / n }')
    for fd in "${fds[@]}"; do exec {fd}>&-; done
    for ((i = 0; i < 200; i++)); do # let the proxy close them all before the next test
        (($(b_established "$APP") <= base)) && break
        sleep 0.05
    done
}

# ours: ticks of every process this bench runs (proxy, app, and our waited-for children)
ours_ticks() { echo $(($(b_self_ticks) + $(b_cpu_ticks "${APP_PIDS[@]}" "${T_PIDS[@]}"))); }
NCPU=$(nproc)

NOTES=()
b_log "tcp: ${SECS}s per wrk run, $BULK bytes per bulk transfer, targets: $TARGETS"
for t in $TARGETS; do
    b_log "--- $t"
    T_PIDS=()
    if ! "start_$t"; then
        b_fail "$t did not start"
        for p in "${T_PIDS[@]}"; do b_stop "$p"; done
        continue
    fi
    f_ns0=$(b_now_ns) f_busy0=$(b_cpu_busy_all) f_ours0=$(ours_ticks)
    if ((${#T_PIDS[@]})); then
        sleep 0.3
        R[$t.rss_idle]=$(b_status_kib VmRSS "${T_PIDS[@]}")
        idle_conns "$t"
    fi
    b_log "$t: requests, keep-alive"
    wrk_run "$t" ka "$T_HTTP"
    b_log "$t: new connections"
    wrk_run "$t" cc "$T_HTTP" -H "Connection: close"
    b_log "$t: bulk"
    bulk_measure "$t" up "$T_UP"
    bulk_measure "$t" down "$T_DOWN"
    # CPU that processes other than ours used meanwhile: a busy machine makes the numbers noisy
    f_ns1=$(b_now_ns) f_busy1=$(b_cpu_busy_all) f_ours1=$(ours_ticks)
    R[$t.foreign]=$(awk -v b=$((f_busy1 - f_busy0)) -v o=$((f_ours1 - f_ours0)) -v hz="$CLK_TCK" \
        -v ns=$((f_ns1 - f_ns0)) -v n="$NCPU" 'BEGIN { f = (b - o) / (ns / 1e9 * hz * n) * 100
            printf "%.1f", f < 0 ? 0 : f }')
    if awk -v f="${R[$t.foreign]}" 'BEGIN { exit !(f > 5) }'; then
        NOTES+=("during $t, other processes used ${R[$t.foreign]}% of the machine's CPU: its numbers are noisy")
    fi
    if ((${#T_PIDS[@]})); then
        R[$t.rss_peak]=$(b_status_kib VmHWM "${T_PIDS[@]}")
        # stop the proxy: the master (or only) process is the first pid
        b_stop "${T_PIDS[0]}"
    fi
done

# --- report --------------------------------------------------------------------------------
# metric key | label | better (hi/lo) | printf format | scale applied to the stored value
METRICS=(
    "rps|Requests/s (keep-alive, ${WRK_CONNS} conns, 1 KiB)|hi|%.0f|1"
    "p50|Latency p50 (ms)|lo|%.3f|1"
    "p99|Latency p99 (ms)|lo|%.3f|1"
    "cpu_req|Proxy CPU per request (µs)|lo|%.2f|1"
    "cps|New connections/s (Connection: close)|hi|%.0f|1"
    "cpu_conn|Proxy CPU per connection (µs)|lo|%.1f|1"
    "up|Bulk client → upstream (GB/s)|hi|%.2f|1"
    "down|Bulk upstream → client (GB/s)|hi|%.2f|1"
    "rss_idle|RSS after start (MiB)|lo|%.1f|0.0009765625"
    "rss_conns|RSS with ${IDLE_CONNS} idle connections (MiB)|lo|%.1f|0.0009765625"
    "kib_conn|RSS per idle connection (KiB)|lo|%.1f|1"
    "rss_peak|Peak RSS over the run (MiB)|lo|%.1f|0.0009765625"
    "foreign|Other processes' CPU meanwhile (% of all cores; noise)|-|%.1f|1"
)
PEERS=()
for t in $TARGETS; do [[ $t == direct || $t == remora ]] || PEERS+=("$t"); done

remora_rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo "uncommitted tree")
report() {
    echo "## L4 relay (tcp_proxy), one hop"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- machine: $(b_machine)"
    echo "- remora: $REMORA ($remora_rev), --concurrency 1"
    echo "- peers: $(b_ver haproxy) (nbthread 1, mode tcp), $(b_ver nginx) (worker_processes 1," \
        "stream proxy_pass)"
    echo "- load: $(b_ver wrk), $(b_ver socat); app: nginx, 1 worker, 1 KiB body"
    echo "- pinning: proxy on CPU $PROXY_CPU alone; wrk, socat and the nginx app on CPU $LOAD_CPU"
    echo "- BENCH_SECONDS=$SECS per wrk run (plus 1 s warm-up), ${WRK_CONNS} connections;" \
        "bulk $BULK bytes per direction"
    echo
    b_table "best peer"
    echo
    echo "Ratios are remora's value divided by the other's: above 1× is better for rates"
    echo "(requests/s, connections/s, GB/s), worse for latency, CPU and memory. Best peer is"
    echo "the better of ${PEERS[*]} on that row. GB/s is 10^9 bytes per second."
    b_sentences
    b_notes
}
mkdir -p "$OUT_DIR"
report | tee "$OUT"
b_log "written to $OUT"
exit "$B_FAILED"
