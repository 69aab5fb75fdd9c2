#!/usr/bin/env bash
# bench/http.sh: the HTTP/1.1 benchmark, one hop, side by side.
#
# The same loopback hop (client -> proxy -> nginx app, 1 KiB body, keep-alive on both sides) is
# measured for remora (HTTP connection manager + router), HAProxy (mode http), nginx
# (proxy_pass to a keepalive upstream), nghttpx, and "direct" (client -> app, no proxy), in this
# one run. Every proxy runs ONE worker thread on the proxy core, and only the one being measured
# has traffic.
#
#   closed loop  wrk -t1 -c50 keep-alive, as fast as it goes: rps, p50, p99, proxy CPU/request
#   capped       the same closed loop with the proxy held to BENCH_PROXY_QUOTA (50) % of its core
#                by a cgroup CPU quota, the same share for every proxy: the proxy, not the load
#                core, is then the bottleneck, and requests/s is what it does with that much CPU
#   fixed rate   h2load --h1 -c50 at BENCH_FIXED_RPS (15000) req/s for every target, paced per
#                connection, connections out of phase: achieved rps, p50, p99 (from h2load's
#                per-request log), proxy CPU/request at equal load
#   memory       RSS after start, RSS with BENCH_IDLE_CONNS (1000) idle client connections, peak
#
# Every target is started at once (all idle but the one measured) and the measurements take them
# in turn: every target's closed loop, then every proxy's capped closed loop, then every target's
# fixed-rate run, BENCH_ROUNDS (5) times over; each metric's median over the rounds is reported
# (bench/lib.sh: rounds). It measures and reports; it never fails on a number. Exit status is non-zero only when something could not run. Writes
# the table to stdout and to $BUILD/bench/http.md. See bench/README.md.
# The start_* functions are called by name ("start_$t"), which shellcheck cannot follow.
# shellcheck disable=SC2317
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

BUILD=${BUILD:-build}
REMORA=${REMORA:-$root/$BUILD/remora}
SECS=${BENCH_SECONDS:-5} # per measurement; the rounds repeat it
IDLE_CONNS=${BENCH_IDLE_CONNS:-1000}
WRK_CONNS=${BENCH_WRK_CONNS:-50}
FIXED_RPS=${BENCH_FIXED_RPS:-15000} # total request rate of the fixed-rate run; 0 skips it
QUOTA_PCT=${BENCH_PROXY_QUOTA:-50} # the capped closed loop holds the proxy to this % of a core; 0 skips
ROUNDS=${BENCH_ROUNDS:-5} # every measurement of every target, in turn, this many times; medians
NOISE_PCT=${BENCH_NOISE_PCT:-5}
PROXY_CPU=${BENCH_PROXY_CPU:-0} # the proxy under test runs here, alone
LOAD_CPU=${BENCH_LOAD_CPU:-1}   # wrk, h2load and the nginx app share this one
TARGETS=${BENCH_TARGETS:-direct remora haproxy nginx nghttpx}
OUT_DIR=$root/$BUILD/bench
OUT=$OUT_DIR/http.md

need=(wrk nginx taskset ss awk curl sort)
for t in $TARGETS; do
    case $t in
    direct | remora | nginx) ;;
    haproxy | nghttpx) need+=("$t") ;;
    *)
        b_log "unknown target: $t (have: direct remora haproxy nginx nghttpx)"
        exit 1
        ;;
    esac
done
b_need "wrk nginx haproxy nghttp2-proxy nghttp2-client util-linux iproute2 curl" "${need[@]}"
[[ -x $REMORA ]] || {
    b_log "no $REMORA: run make first"
    exit 1
}
FIXED_SKIP=""
if ((FIXED_RPS <= 0)); then
    FIXED_SKIP="BENCH_FIXED_RPS=0"
elif ! command -v h2load >/dev/null; then
    FIXED_SKIP="h2load is not installed (Debian: nghttp2-client); wrk2 is not packaged here either"
fi
[[ -n $FIXED_SKIP ]] && b_log "skipping the fixed-rate run: $FIXED_SKIP"
CAP_SKIP=""
((QUOTA_PCT > 0)) || CAP_SKIP="BENCH_PROXY_QUOTA=0"
FIXED_PER_CONN=$(awk -v r="$FIXED_RPS" -v c="$WRK_CONNS" 'BEGIN { printf "%g", r / c }')
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

b_setup http # $work, cleanup at exit, $REMORA_BIN (bench/lib.sh)
if [[ -z $CAP_SKIP ]] && ! b_quota_init "$QUOTA_PCT"; then CAP_SKIP=$B_QUOTA_SKIP; fi
[[ -n $CAP_SKIP ]] && b_log "skipping the capped closed loop: $CAP_SKIP"

# --- the upstream app: nginx, 1 worker, 1 KiB body, keep-alive (bench/lib.sh) -----------------
APP=$(b_free_port)
b_app "$work/app" "$APP"

# --- proxies: each start_* sets T_PIDS (processes to measure, master first) and T_PORT -------
start_direct() {
    T_PIDS=()
    T_PORT=$APP
}

start_remora() {
    local admin d=$work/remora i
    mkdir -p "$d"
    admin=$(b_free_port)
    T_PORT=$(b_free_port)
    # Defaults otherwise, as a user would start it (the HCM generates x-request-id, like Envoy).
    cat >"$d/remora.yaml" <<EOF
node: {id: bench.local, cluster: bench}
admin:
  address: {socket_address: {address: 127.0.0.1, port_value: $admin}}
static_resources:
  listeners:
  - name: http
    address: {socket_address: {address: 127.0.0.1, port_value: $T_PORT}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench
          route_config:
            name: local
            virtual_hosts:
            - name: app
              domains: ["*"]
              routes:
              - match: {prefix: /}
                route: {cluster: app}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
  - name: app
    type: STATIC
    connect_timeout: 5s
    load_assignment:
      cluster_name: app
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $APP}}}
EOF
    b_bg "$d/remora.log" taskset -c "$PROXY_CPU" "$REMORA_BIN" --config "$d/remora.yaml" --concurrency 1 \
        --log-level warning
    T_PIDS=("$B_PID")
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
    T_PORT=$(b_free_port)
    cat >"$d/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 8192
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 300s
    timeout server 300s
frontend http
    bind 127.0.0.1:$T_PORT
    default_backend app
backend app
    server app 127.0.0.1:$APP
EOF
    haproxy -c -q -f "$d/haproxy.cfg" >"$d/check.log" 2>&1 || {
        b_log "haproxy rejects its config: $(cat "$d/check.log")"
        return 1
    }
    b_bg "$d/haproxy.log" taskset -c "$PROXY_CPU" haproxy -db -f "$d/haproxy.cfg"
    T_PIDS=("$B_PID")
    b_wait_listen "$T_PORT" || {
        b_log "haproxy did not listen: $(cat "$d/haproxy.log")"
        return 1
    }
}

start_nginx() {
    local d=$work/nginx
    mkdir -p "$d/logs"
    T_PORT=$(b_free_port)
    # keepalive_requests as in the app: no side closes a connection during the run.
    cat >"$d/nginx.conf" <<EOF
worker_processes 1;
worker_rlimit_nofile 16384;
error_log $d/logs/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
$(b_nginx_temp_paths "$d")
    upstream app {
        server 127.0.0.1:$APP;
        keepalive 64;
        keepalive_requests 100000000;
    }
    server {
        listen 127.0.0.1:$T_PORT;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
    b_nginx_start "$d" "$PROXY_CPU" "$T_PORT" || return 1
    T_PIDS=("${NGX_PIDS[@]}") # CPU and RSS are summed over master and worker
}

start_nghttpx() {
    local d=$work/nghttpx master worker
    mkdir -p "$d"
    T_PORT=$(b_free_port)
    : >"$d/nghttpx.conf" # an empty config file of ours, so /etc/nghttpx is never read
    b_bg "$d/stdout.log" taskset -c "$PROXY_CPU" nghttpx --conf="$d/nghttpx.conf" --workers=1 \
        --frontend="127.0.0.1,$T_PORT;no-tls" --backend="127.0.0.1,$APP" \
        --errorlog-file="$d/error.log"
    master=$B_PID
    T_PIDS=("$master")
    b_wait_listen "$T_PORT" || {
        b_log "nghttpx did not listen: $(cat "$d/error.log" "$d/stdout.log" 2>/dev/null)"
        return 1
    }
    # The master forks one worker process (it exits when the master does); the worker runs
    # the one worker thread.
    worker=$(b_child_of "$master") || {
        b_log "no nghttpx worker under master $master"
        return 1
    }
    extra_pids+=("$worker")
    T_PIDS=("$master" "$worker")
}

stop_target() { # stop the proxy (master first), then any of its processes that outlived it
    local p i
    ((${#T_PIDS[@]})) || return 0
    b_stop "${T_PIDS[0]}"
    for p in "${T_PIDS[@]:1}"; do
        for ((i = 0; i < 40; i++)); do
            [[ -e /proc/$p && $(awk '{ print $3 }' "/proc/$p/stat" 2>/dev/null) != Z ]] || break
            sleep 0.05
        done
        kill "$p" 2>/dev/null
    done
    return 0
}

# --- measurements: each writes M[target.metric] (lib.sh's rounds keep them) ------------------

# wrk_closed TARGET PREFIX: wrk keep-alive, as fast as the hop (or the load side) goes; the
# results in M[TARGET.PREFIXrps], ...p50, ...p99, ...cpu_req, ...cpu_use
wrk_closed() {
    local t=$1 k=$2 out=$work/wrk-$1-${2:-closed}.txt c0 c1 n0 n1 l0 l1 parsed rps p50 p99 reqs err
    pin_load wrk -t1 -c"$WRK_CONNS" -d1s "http://127.0.0.1:$T_PORT/" >/dev/null 2>&1 # warm-up
    ((${#T_PIDS[@]})) && c0=$(b_cpu_ticks "${T_PIDS[@]}")
    l0=$(($(b_self_ticks) + $(b_cpu_ticks "${APP_PIDS[@]}"))) # wrk counts once waited for
    n0=$(b_now_ns)
    pin_load wrk -t1 -c"$WRK_CONNS" -d"${SECS}s" --latency "http://127.0.0.1:$T_PORT/" >"$out" 2>&1
    n1=$(b_now_ns)
    ((${#T_PIDS[@]})) && c1=$(b_cpu_ticks "${T_PIDS[@]}")
    l1=$(($(b_self_ticks) + $(b_cpu_ticks "${APP_PIDS[@]}")))
    parsed=$(b_wrk_parse "$out") || {
        b_fail "$t: wrk produced no result: $(head -c 500 "$out")"
        return
    }
    read -r rps p50 p99 reqs err <<<"$parsed"
    ((err > 0)) && NOTES+=("$t, ${k:+capped }closed loop: wrk counted $err socket errors or non-2xx responses")
    M[$t.${k}rps]=$rps M[$t.${k}p50]=$p50 M[$t.${k}p99]=$p99
    M[$t.${k}load_req]=$(b_cpu_per $((l1 - l0)) "$reqs")
    if ((${#T_PIDS[@]})); then
        M[$t.${k}cpu_req]=$(b_cpu_per $((c1 - c0)) "$reqs")
        M[$t.${k}cpu_use]=$(b_cpu_pct $((c1 - c0)) $((n1 - n0)))
    fi
}

measure_closed() { wrk_closed "$1" ""; }

# measure_capped TARGET: the same closed loop with the proxy held to QUOTA_PCT % of its core
# (bench/lib.sh: b_quota_*), so that the proxy, not the load side, is the bottleneck; "direct"
# has no proxy to cap
measure_capped() {
    local t=$1 use
    ((${#T_PIDS[@]})) || return 1
    b_quota_enter "${T_PIDS[@]}" || {
        b_quota_leave
        b_fail "$t: could not move its processes into $B_QUOTA_DIR"
        return 1
    }
    wrk_closed "$t" cap_
    b_quota_leave
    use=${M[$t.cap_cpu_use]:-0}
    awk -v u="$use" -v q="$QUOTA_PCT" 'BEGIN { exit !(u < 0.9 * q) }' &&
        NOTES+=("$t, capped closed loop: the proxy used only $use% of its core (cap $QUOTA_PCT%): it was not the bottleneck")
    return 0
}

# measure_fixed TARGET: h2load paces every one of the WRK_CONNS connections at the same rate
measure_fixed() { b_measure_fixed "$1"; }

listen_backlog() { # connections waiting in PORT's accept queue (not yet taken by the proxy)
    ss -Hltn "sport = :$1" 2>/dev/null | awk '{ s += $2 } END { print s + 0 }'
}
accepted() { # established server-side connections on PORT
    ss -Htn state established "sport = :$1" 2>/dev/null | wc -l
}

# idle_conns TARGET: RSS with IDLE_CONNS client connections open to the proxy, no request sent
# (an HTTP proxy opens nothing upstream for them)
idle_conns() {
    local t=$1 fds=() fd i base
    base=$(accepted "$T_PORT")
    for ((i = 0; i < IDLE_CONNS; i++)); do
        exec {fd}<>"/dev/tcp/127.0.0.1/$T_PORT" || break
        fds+=("$fd")
    done
    ((${#fds[@]} == IDLE_CONNS)) || b_fail "$t: opened only ${#fds[@]} of $IDLE_CONNS connections"
    for ((i = 0; i < 200; i++)); do # until the proxy has accepted every one
        (($(accepted "$T_PORT") - base >= ${#fds[@]})) && (($(listen_backlog "$T_PORT") == 0)) && break
        sleep 0.05
    done
    (($(listen_backlog "$T_PORT") == 0)) || b_fail "$t: the proxy did not accept all idle connections"
    sleep 0.5
    M[$t.rss_conns]=$(b_status_kib VmRSS "${T_PIDS[@]}")
    M[$t.kib_conn]=$(awk -v a="${M[$t.rss_conns]}" -v b="${M[$t.rss_idle]}" -v n="${#fds[@]}" \
        'BEGIN { printf "%.2f", (a - b) / n }')
    for fd in "${fds[@]}"; do exec {fd}>&-; done
    for ((i = 0; i < 200; i++)); do # let the proxy close them all before the load runs
        (($(accepted "$T_PORT") <= base)) && break
        sleep 0.05
    done
}

check_hop() { # the hop serves the app's 1 KiB body
    local got
    got=$(curl -s --max-time 5 "http://127.0.0.1:$T_PORT/")
    [[ ${#got} -eq 1024 ]] || {
        b_log "$1: GET / through the hop returned ${#got} bytes, not 1024"
        return 1
    }
}

after_start() { # memory right after start, then with IDLE_CONNS idle client connections
    ((${#T_PIDS[@]})) || return 0
    sleep 0.3
    M[$1.rss_idle]=$(b_status_kib VmRSS "${T_PIDS[@]}")
    idle_conns "$1"
}
before_stop() {
    ((${#T_PIDS[@]})) && M[$1.rss_peak]=$(b_status_kib VmHWM "${T_PIDS[@]}")
    return 0
}

NOTES=()
b_log "http: ${SECS}s per load run, fixed rate ${FIXED_RPS} req/s, targets: $TARGETS, $ROUNDS round(s)"
b_rounds_start
kinds=(closed)
[[ -z $CAP_SKIP ]] && kinds+=(capped)
# While a capped proxy is throttled, receive work for its sockets shows up as softirq time that
# no process is charged with, so "other processes' CPU" reads 5–25% there whatever else runs:
# the row stays, its notes are left out.
B_NOISE_QUIET="capped"
[[ -z $FIXED_SKIP ]] && kinds+=(fixed)
b_rounds_run "${kinds[@]}"
b_rounds_stop
b_medians

# --- report --------------------------------------------------------------------------------
# metric key | label | better (hi/lo/-) | printf format | scale applied to the stored value
METRICS=(
    "rps|Closed loop: requests/s (wrk, ${WRK_CONNS} conns, 1 KiB)|hi|%.0f|1"
    "p50|Closed loop: latency p50 (ms)|lo|%.3f|1"
    "p99|Closed loop: latency p99 (ms)|lo|%.3f|1"
    "cpu_req|Closed loop: proxy CPU per request (µs)|lo|%.2f|1"
    "cpu_use|Closed loop: proxy CPU use (% of its core)|-|%.0f|1"
    "load_req|Closed loop: load side's CPU per request (µs; wrk and the app)|-|%.2f|1"
    "noise_closed|Closed loop: other processes' CPU (% of all cores; noise)|-|%.1f|1"
)
[[ -z $CAP_SKIP ]] && METRICS+=(
    "cap_rps|Proxy capped at ${QUOTA_PCT}% of a core: requests/s (wrk, ${WRK_CONNS} conns)|hi|%.0f|1"
    "cap_p50|Proxy capped at ${QUOTA_PCT}%: latency p50 (ms)|lo|%.3f|1"
    "cap_p99|Proxy capped at ${QUOTA_PCT}%: latency p99 (ms)|lo|%.3f|1"
    "cap_cpu_req|Proxy capped at ${QUOTA_PCT}%: proxy CPU per request (µs)|lo|%.2f|1"
    "cap_cpu_use|Proxy capped at ${QUOTA_PCT}%: proxy CPU use (% of its core)|-|%.0f|1"
    "noise_capped|Proxy capped at ${QUOTA_PCT}%: other processes' CPU (% of all cores; noise)|-|%.1f|1"
)
[[ -z $FIXED_SKIP ]] && METRICS+=(
    "fx_rps|Fixed rate: requests/s reached (h2load, ${FIXED_RPS} asked)|-|%.0f|1"
    "fx_p50|Fixed rate: latency p50 (ms)|lo|%.3f|1"
    "fx_p99|Fixed rate: latency p99 (ms)|lo|%.3f|1"
    "fx_cpu_req|Fixed rate: proxy CPU per request (µs)|lo|%.2f|1"
    "fx_cpu_use|Fixed rate: proxy CPU use (% of its core)|-|%.0f|1"
    "noise_fixed|Fixed rate: other processes' CPU (% of all cores; noise)|-|%.1f|1"
)
METRICS+=(
    "rss_idle|RSS after start (MiB)|lo|%.1f|0.0009765625"
    "rss_conns|RSS with ${IDLE_CONNS} idle client connections (MiB)|lo|%.1f|0.0009765625"
    "kib_conn|RSS per idle client connection (KiB)|lo|%.1f|1"
    "rss_peak|Peak RSS over the run (MiB)|lo|%.1f|0.0009765625"
)
PEERS=()
for t in $TARGETS; do [[ $t == direct || $t == remora ]] || PEERS+=("$t"); done

remora_rev=$(git -C "$root" describe --always --dirty 2>/dev/null || echo "not a git tree")
report() {
    echo "## HTTP/1.1, one hop"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- machine: $(b_machine)"
    echo "- remora: $REMORA (built $REMORA_BUILT; tree $remora_rev), --concurrency 1, HCM + router," \
        "no access log"
    echo "- peers: $(b_ver haproxy) (nbthread 1, mode http, http-reuse always), $(b_ver nginx)" \
        "(worker_processes 1, proxy_pass to an upstream with keepalive 64), $(b_ver nghttpx)" \
        "(--workers=1, no-tls frontend)"
    echo "- load: $(b_ver wrk) (closed loop)$([[ -z $FIXED_SKIP ]] && echo ", $(b_ver h2load) --h1" \
        "(fixed rate)"); app: nginx, 1 worker, 1 KiB body; no access log anywhere"
    echo "- pinning: proxies on CPU $PROXY_CPU (all up at once, one measured at a time); the load generator and the nginx app on CPU $LOAD_CPU"
    echo "- rounds: $ROUNDS (every measurement takes the targets in turn, round after round; the table gives medians)"
    echo "- capped closed loop: $([[ -z $CAP_SKIP ]] && echo "each proxy in turn in a cgroup with a" \
        "CPU quota of $QUOTA_PCT% of one core (10 ms period)" || echo "skipped: $CAP_SKIP")"
    echo "- BENCH_SECONDS=$SECS per load run (the closed loops after 1 s of warm-up), ${WRK_CONNS} keep-alive" \
        "connections;$([[ -z $FIXED_SKIP ]] && echo " fixed rate $FIXED_RPS req/s" \
            "($FIXED_PER_CONN per connection)" || echo " fixed-rate run skipped: $FIXED_SKIP")"
    echo
    b_table "best peer"
    echo
    echo "Ratios are remora's value divided by the other's: above 1× is better for requests/s,"
    echo "worse for latency, CPU and memory. Best peer is the better of ${PEERS[*]} on that row."
    echo "With rounds, the best peer is the one with the best median on that row, and a ratio is the"
    echo "median of the per-round ratios (remora ÷ that peer, same round); \"as good in W of N\" counts"
    echo "the rounds where remora was at least as good as that peer."
    echo "Rows with — are context, not results: how busy the proxy's core was, and how much CPU"
    echo "other processes on the machine used while the target ran."
    b_sentences
    b_rounds_block "rps|closed-loop requests/s" "cap_rps|capped closed-loop requests/s" \
        "p99|closed-loop p99 (ms)" "fx_p99|fixed-rate p99 (ms)" \
        "cpu_req|closed-loop CPU per request (µs)" "cap_cpu_req|capped CPU per request (µs)" \
        "fx_cpu_req|fixed-rate CPU per request (µs)"
    load_side
    targets_block
    b_notes
}

# load_side: is the closed-loop requests/s row the proxies' or the load side's ceiling?
load_side() {
    local t d=${R[direct.rps]:-} top="" topt="" line
    for t in "${PEERS[@]}" remora; do
        [[ -n ${R[$t.rps]:-} ]] || continue
        if [[ -z $top ]] || awk -v a="${R[$t.rps]}" -v b="$top" 'BEGIN { exit !(a > b) }'; then
            top=${R[$t.rps]} topt=$t
        fi
    done
    [[ -n $top ]] || return 0
    echo
    echo "Load side:"
    [[ -n $d ]] && echo "- direct reaches $(b_fmt %.0f 1 "$d") req/s, the fastest proxy ($topt)" \
        "$(b_fmt %.0f 1 "$top") ($(b_ratio "$top" "$d") direct)."
    line=""
    for t in $TARGETS; do
        [[ -n ${R[$t.load_req]:-} ]] && line+="${line:+, }$t $(b_fmt %.1f 1 "${R[$t.load_req]}")"
    done
    [[ -n $line ]] && echo "- the load core (wrk and the app) spent, per request, in µs: $line." \
        "Where it is the ceiling, the closed-loop rate is about 10⁶ ÷ that. Direct, wrk and the" \
        "app hand each other work on one core; through a hop each hands it to a process on the" \
        "other core, and waking one that was asleep costs the waker more than one that is running."
    if ((load_capped)); then
        echo "- no proxy used its core fully (busiest: $LOAD_BUSIEST at $(b_fmt %.0f 1 "$LOAD_BUSY")%):" \
            "the closed-loop rate is the load side's, not any proxy's capacity."
        echo "- compare the proxies' capacity by the **capped** closed loop (each proxy held to the" \
            "same share of a core, so that it is the bottleneck) and by CPU per request, and their" \
            "latency at equal load by the fixed-rate p50/p99."
    fi
    return 0
}

targets_block() { # the issue's targets for remora, met or not, with the numbers
    local line v key name text
    echo
    echo "Targets (issue \"HTTP/1.1 at layer 7\"):"
    text="requests/s ≥ 1.1× the best peer (every proxy capped at $QUOTA_PCT% of a core,"
    text+=" so that the proxy is the bottleneck)"
    [[ -z $CAP_SKIP ]] && b_target "$text" cap_rps hi 1.1 %.0f
    b_target "requests/s ≥ 1.1× the best peer (closed loop, unlimited$( ((load_capped)) &&
        echo "; the load side is the ceiling there: see above"))" rps hi 1.1 %.0f
    for key in p99 fx_p99; do
        [[ $key == fx_p99 && -n $FIXED_SKIP ]] && continue
        name="closed loop"
        [[ $key == fx_p99 ]] && name="fixed rate $FIXED_RPS req/s"
        b_target "p99 ≤ the best peer's ($name, ms)" "$key" lo 1 %.3f
    done
    v=${R[remora.rss_idle]:-}
    if [[ -n $v ]]; then
        if ((v <= 5 * 1024)); then line="met"; else line="not met"; fi
        echo "- idle RSS ≤ 5 MiB: **$line** — remora $(b_fmt %.1f 0.0009765625 "$v") MiB after start" \
            "($(b_fmt %.1f 0.0009765625 "${R[remora.rss_conns]:-}") MiB with $IDLE_CONNS idle connections)"
    else
        echo "- idle RSS ≤ 5 MiB: not measured"
    fi
}

# load_capped: no proxy used ≥ 90% of its core in the closed loop, so the load side set its rate
load_capped=0 LOAD_BUSIEST="" LOAD_BUSY=0
for t in "${PEERS[@]}" remora; do
    u=${R[$t.cpu_use]:-}
    [[ -n $u ]] || continue
    if [[ -z $LOAD_BUSIEST ]] || awk -v a="$u" -v b="$LOAD_BUSY" 'BEGIN { exit !(a > b) }'; then
        LOAD_BUSY=$u LOAD_BUSIEST=$t
    fi
done
[[ -n $LOAD_BUSIEST ]] && awk -v b="$LOAD_BUSY" 'BEGIN { exit !(b < 90) }' && load_capped=1
mkdir -p "$OUT_DIR"
report | tee "$OUT"
b_log "written to $OUT"
exit "$B_FAILED"
