#!/usr/bin/env bash
# bench/xds.sh: the xDS benchmark: how fast and in how much memory remora takes its config from
# a control plane, and what endpoint churn costs the traffic.
#
# A remora whose bootstrap names the test control plane (test/e2e/xds/control_plane.js, grpc-js
# with Envoy's protos; ADS state of the world; clusters over CDS, of type EDS with their
# endpoints over ADS; a static HTTP listener whose routes come over RDS), on loopback:
#
#   apply        100, 1,000 and 5,000 clusters of 5 endpoints: the time from the control plane's
#                first response to remora's ACK of the last type (CDS, EDS, RDS all ACKed),
#                remora's CPU for it, VmRSS before (bootstrap only) and after, RSS per cluster
#   push → ACK   at 1,000 clusters, BENCH_XDS_PUSHES (200) EDS pushes changing one cluster's
#                endpoints: time from each response to its ACK, p50/p99/max, remora's CPU per
#                push; one at a time (each 20-50 ms after the last one's ACK), then paced (every
#                20-50 ms, answered or not, as a control plane sends them)
#   churn        wrk -t1 -c50 keep-alive through the sidecar to an nginx app (1 KiB body) with no
#                xDS updates, then with BENCH_XDS_CHURN_RATE (10) EDS updates per second to the
#                cluster in use (its endpoint swapped between two equal apps; or both kept,
#                re-weighted 1:3 and 3:1 in turn, compared with both at 1:3 and no updates;
#                BENCH_XDS_MODES picks among none swap both reweight): requests/s, latency, remora CPU per request, the control
#                plane's CPU and how busy the load core was; BENCH_ROUNDS (3) rounds, medians;
#                each update's response carries the changed assignment only
#                (BENCH_XDS_CHURN_PUSH=all: all 1,000 of them)
#   capped churn the same runs with remora held to BENCH_PROXY_QUOTA (25) % of its core by a
#                cgroup CPU quota (its cgroup at the highest CPU weight, the load side at nice
#                -10: other processes take from neither), so that its CPU, not the load core,
#                sets the rate; BENCH_XDS_CAP_ROUNDS (6) rounds of BENCH_XDS_CAP_MODES, forwards
#                and backwards in turn (A B, B A, ...); every run, the medians, the base rounds'
#                range, CPU per request from the scheduler's per-thread clock, and the verdict:
#                no drop beyond noise when the churn median is at least the lowest base round
#   BENCH_XDS_PARTS (push churn capped) picks what runs after the applies
#
# Times come from the control plane's log ("t": process.hrtime ms on every line). It measures and
# reports; it never fails on a number. Exit status is non-zero only when something could not
# run. Writes the tables to stdout and to $BUILD/bench/xds.md. See bench/README.md.
# cp_exec runs through b_bg, which shellcheck cannot follow.
# shellcheck disable=SC2317
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

BUILD=${BUILD:-build}
REMORA=${REMORA:-$root/$BUILD/remora}
SECS=${BENCH_SECONDS:-5} # per wrk run; the rounds repeat it
SIZES=${BENCH_XDS_CLUSTERS:-100 1000 5000}
EPS=${BENCH_XDS_ENDPOINTS:-5}           # endpoints per cluster
AT=${BENCH_XDS_AT:-1000}                # the size the push and churn runs use
PUSHES=${BENCH_XDS_PUSHES:-200}         # EDS pushes for push → ACK
GAP=${BENCH_XDS_PUSH_GAP:-20 50}       # ms between pushes (drawn uniformly)
CHURN_RATE=${BENCH_XDS_CHURN_RATE:-10}  # EDS updates per second during the churn runs
# changed: each churn update's SotW response carries c0's assignment alone, as a control plane
# sends an EDS change (Istio's incremental EDS); all: every assignment of the 1,000, each time
CHURN_PUSH=${BENCH_XDS_CHURN_PUSH:-changed}
MODES=${BENCH_XDS_MODES:-none swap both reweight}
ROUNDS=${BENCH_ROUNDS:-3}
# which parts run after the applies (at BENCH_XDS_AT): push (push → ACK), churn (unlimited), capped
PARTS=${BENCH_XDS_PARTS:-push churn capped}
QUOTA_PCT=${BENCH_PROXY_QUOTA:-25}         # capped churn: remora held to this % of its core; 0 skips
CAP_ROUNDS=${BENCH_XDS_CAP_ROUNDS:-6}      # capped churn: rounds, every mode once in each
CAP_MODES=${BENCH_XDS_CAP_MODES:-none swap both reweight}
# capped churn: 1 gives remora's cgroup a high CPU weight and the load side (wrk, the apps, the
# control plane) nice -10, so that other processes on the machine take neither remora's quota
# nor the load it needs; 0 leaves both at normal priority
CAP_PRIORITY=${BENCH_XDS_CAP_PRIORITY:-1}
LOAD_NICE=0 # pin_load runs wrk at this nice value
WRK_CONNS=${BENCH_WRK_CONNS:-50}
NOISE_PCT=${BENCH_NOISE_PCT:-5}
PROXY_CPU=${BENCH_PROXY_CPU:-0} # remora runs here, alone
LOAD_CPU=${BENCH_LOAD_CPU:-1}   # wrk, the apps and the control plane share this one
NPM_DIR=${BENCH_NPM_DIR:-$root/build/npm-xds}
CP_JS=$root/test/e2e/xds/control_plane.js
TOOL=$here/xds.py
OUT_DIR=$root/$BUILD/bench
OUT=$OUT_DIR/xds.md
CDS=type.googleapis.com/envoy.config.cluster.v3.Cluster

b_need "wrk nginx nodejs npm python3 util-linux iproute2 curl" \
    wrk nginx node npm python3 taskset ss awk curl mkfifo
[[ -x $REMORA ]] || {
    b_log "no $REMORA: run make first"
    exit 1
}
if [[ " $SIZES " != *" $AT "* ]]; then
    b_log "BENCH_XDS_AT=$AT is not one of BENCH_XDS_CLUSTERS ($SIZES): no push or churn runs"
fi
if (($(nproc) < 2)); then
    b_log "only one core: remora and the load side will share it"
    PROXY_CPU=0
    LOAD_CPU=0
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null

# The control plane's node packages, as the e2e stories install them (test/lib/npm.sh).
# shellcheck disable=SC2034 # T_SCRIPT is read by npm.sh
T_SCRIPT=bench/xds.sh
t_stop() {
    b_log "$*"
    exit 1
}
# shellcheck source=test/lib/npm.sh
source "$root/test/lib/npm.sh"
b_setup xds # $work, cleanup at exit, $REMORA_BIN (bench/lib.sh)
part() { [[ " $PARTS " == *" $1 "* ]]; }
CAP_SKIP="" CAPPED=0
if ! part capped; then
    CAP_SKIP="not in BENCH_XDS_PARTS"
elif ((QUOTA_PCT <= 0)); then
    CAP_SKIP="BENCH_PROXY_QUOTA=0"
elif ! b_quota_init "$QUOTA_PCT"; then
    CAP_SKIP=$B_QUOTA_SKIP
fi
[[ -n $CAP_SKIP ]] && b_log "skipping the capped churn runs: $CAP_SKIP"
npm_peers "$root/test/e2e/xds" "$NPM_DIR" "$work/npm.log"

pin_load() { taskset -c "$LOAD_CPU" nice -n "$LOAD_NICE" "$@"; } # wrk, on the load core

# xds ARGS...: bench/xds.py on the load core (it polls the control plane's log while remora works)
xds() { taskset -c "$LOAD_CPU" python3 "$TOOL" "$@"; }

# --- the apps: two equal nginx apps, 1 KiB body (bench/lib.sh) -------------------------------
APP_A=$(b_free_port)
b_app "$work/app-a" "$APP_A"
pids_a=("${APP_PIDS[@]}")
APP_B=$(b_free_port)
b_app "$work/app-b" "$APP_B"
APP_PIDS+=("${pids_a[@]}")

# --- the control plane and remora ------------------------------------------------------------
CP_PID="" CP_FD="" R_PID="" R_ADMIN="" R_HTTP=""
CP_LOG=$work/cp.log

cp_exec() { # the control plane, reading patches from the fifo (runs in b_bg's subshell)
    exec taskset -c "$LOAD_CPU" env NODE_PATH="$NPM_DIR/node_modules" node "$CP_JS" \
        --resources "$work/res.json" --log "$CP_LOG" --port "$1" --stdin <"$work/cp.in"
}

# cp_start: the control plane on a free port (CP_PORT) serving $work/res.json, every type held;
# patches go to CP_FD
cp_start() {
    local i
    CP_PORT=$(b_free_port)
    : >"$CP_LOG"
    rm -f "$work/cp.in"
    mkfifo "$work/cp.in"
    b_bg "$work/cp.out" cp_exec "$CP_PORT"
    CP_PID=$B_PID
    exec {CP_FD}>"$work/cp.in"
    for ((i = 0; i < 1200; i++)); do
        grep -q '^listening' "$work/cp.out" && return 0
        kill -0 "$CP_PID" 2>/dev/null || break
        sleep 0.05
    done
    b_log "the control plane did not start: $(tail -n 5 "$work/cp.out")"
    return 1
}

cp_send() { # cp_send LINE: one patch to the control plane
    kill -0 "$CP_PID" 2>/dev/null || return 1
    printf '%s\n' "$1" >&"$CP_FD"
}

cp_stop() {
    [[ -n $CP_FD ]] && exec {CP_FD}>&-
    [[ -n $CP_PID ]] && b_stop "$CP_PID"
    CP_PID="" CP_FD=""
}

# cp_saw_request TYPE_URL: the log has a request of that type
cp_saw_request() { grep -q "\"event\":\"request\".*\"type_url\":\"$1\"" "$CP_LOG"; }

r_start() { # remora with the bootstrap: ADS to the control plane, listener on R_HTTP
    local d=$work/remora
    mkdir -p "$d"
    R_ADMIN=$(b_free_port) R_HTTP=$(b_free_port)
    cat >"$d/remora.yaml" <<EOF
node: {id: bench.local, cluster: bench}
admin: {address: {socket_address: {address: 127.0.0.1, port_value: $R_ADMIN}}}
dynamic_resources:
  cds_config: {ads: {}, resource_api_version: V3}
  ads_config:
    api_type: GRPC
    transport_api_version: V3
    grpc_services: [{envoy_grpc: {cluster_name: xds}}]
static_resources:
  clusters:
  - name: xds
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
    load_assignment:
      cluster_name: xds
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $CP_PORT}}}}]}]
  listeners:
  - name: http
    address: {socket_address: {address: 127.0.0.1, port_value: $R_HTTP}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: http
          rds: {config_source: {ads: {}}, route_config_name: r1}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
EOF
    b_bg "$d/remora.log" taskset -c "$PROXY_CPU" "$REMORA_BIN" --config "$d/remora.yaml" \
        --concurrency 1 --log-level warning
    R_PID=$B_PID
    ALL_PIDS=("$R_PID" "$CP_PID")
    local i
    for ((i = 0; i < 200; i++)); do # connected: its first request reached the control plane
        cp_saw_request "$CDS" && return 0
        kill -0 "$R_PID" 2>/dev/null || break
        sleep 0.05
    done
    b_log "remora did not ask the control plane for clusters: $(tail -n 5 "$d/remora.log")"
    return 1
}

r_stop() {
    [[ -n $R_PID ]] && b_stop "$R_PID"
    R_PID=""
    ALL_PIDS=()
}

r_clusters() { # how many clusters c<N> remora's running config has
    curl -s -m 10 "http://127.0.0.1:$R_ADMIN/clusters" | sed -n 's/^\(c[0-9]*\)::type::.*/\1/p' |
        wc -l
}

serves() { # serves: the route and c0 answer with the app's 1 KiB body
    local body
    body=$(curl -s -m 5 "http://127.0.0.1:$R_HTTP/")
    [[ ${#body} -eq 1024 ]]
}

# --- apply: one size --------------------------------------------------------------------------
declare -A A=() # A[size.metric]

# apply_wait: the control plane's log until the last response of each type is answered (120 s at
# most): prints bench/xds.py's "done ...", "nack ..." or "wait"
apply_wait() {
    local i st
    for ((i = 0; i < 1200; i++)); do
        st=$(xds apply "$CP_LOG")
        [[ $st == wait ]] || break
        sleep 0.1
    done
    echo "$st"
}

# apply_run N: a fresh control plane and remora, N clusters; remora is left running
apply_run() {
    local n=$1 st c0 c1 ms cds eds rds have
    b_log "--- apply: $n clusters of $EPS endpoints"
    xds resources "$n" "$EPS" "$APP_A" "$work/res.json" || {
        b_fail "$n clusters: cannot write the resources"
        return 1
    }
    cp_start || {
        b_fail "$n clusters: the control plane did not start"
        return 1
    }
    r_start || {
        b_fail "$n clusters: remora did not connect to the control plane"
        return 1
    }
    sleep 0.5
    A[$n.rss0]=$(b_status_kib VmRSS "$R_PID")
    b_noise_begin
    c0=$(b_cpu_ticks "$R_PID")
    cp_send '{"hold": []}'
    st=$(apply_wait)
    c1=$(b_cpu_ticks "$R_PID")
    A[$n.noise]=$(b_noise_end)
    case $st in
    done*) ;;
    nack*)
        b_fail "$n clusters: remora NACKed: ${st#nack }"
        return 1
        ;;
    *)
        b_fail "$n clusters: not every type was ACKed within 120 s"
        return 1
        ;;
    esac
    sleep 1 # whatever followed the ACK (the old snapshot's release) settles
    st=$(apply_wait) # again: a response sent after the first check counts too
    [[ $st == done* ]] || {
        b_fail "$n clusters: after the first ACKs: ${st:-no answer}"
        return 1
    }
    read -r _ _ ms cds eds rds <<<"$st"
    A[$n.apply_ms]=$ms A[$n.cds_ms]=$cds A[$n.eds_ms]=$eds A[$n.rds_ms]=$rds
    A[$n.cpu_ms]=$(awk -v d=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" \
        'BEGIN { printf "%.0f", d / hz * 1000 }')
    A[$n.rss1]=$(b_status_kib VmRSS "$R_PID")
    A[$n.hwm]=$(b_status_kib VmHWM "$R_PID")
    A[$n.per]=$(awk -v a="${A[$n.rss1]}" -v b="${A[$n.rss0]}" -v n="$n" \
        'BEGIN { printf "%.2f", (a - b) / n }')
    have=$(r_clusters)
    ((have == n)) || b_fail "$n clusters: remora's /clusters lists $have clusters c<N>, not $n"
    serves || b_fail "$n clusters: the route to c0 does not serve the app"
    b_log "$n clusters: applied in $ms ms, RSS ${A[$n.rss0]} -> ${A[$n.rss1]} KiB"
    return 0
}

# --- push → ACK: one cluster's endpoints, PUSHES times -------------------------------------
declare -A P=() # P[way.metric], way: paced or iso

# push_run WAY: PUSHES EDS pushes, paced (every GAP ms, whether answered or not, as a control
# plane sends) or iso (each GAP ms after the last one's ACK: no push waits behind another)
push_run() {
    local w=$1 from i st sent acked c0 c1 how
    b_log "--- push → ACK ($w): $PUSHES EDS pushes at $AT clusters"
    xds pushes "$PUSHES" "$EPS" "$work/pushes.txt" || return 1
    from=$(($(wc -l <"$CP_LOG") + 1))
    # shellcheck disable=SC2206 # GAP is two numbers
    if [[ $w == paced ]]; then how=(gap $GAP); else how=(ack "$CP_LOG" $GAP); fi
    b_noise_begin
    c0=$(b_cpu_ticks "$R_PID")
    xds feed "$work/cp.in" "$work/pushes.txt" "${how[@]}" ||
        b_fail "push → ACK ($w): the pushes could not all be sent"
    for ((i = 0; i < 600; i++)); do # until the last push is answered (60 s at most)
        st=$(xds acks "$CP_LOG" "$from")
        read -r sent acked _ <<<"$st"
        ((sent >= PUSHES && acked >= sent)) && break
        sleep 0.1
    done
    c1=$(b_cpu_ticks "$R_PID")
    P[$w.noise]=$(b_noise_end)
    read -r sent acked "P[$w.collapsed]" "P[$w.nacked]" "P[$w.p50]" "P[$w.p99]" "P[$w.max]" \
        "P[$w.mean]" <<<"$st"
    P[$w.sent]=$sent P[$w.acked]=$acked
    ((sent >= PUSHES)) || b_fail "push → ACK ($w): the control plane sent $sent of $PUSHES pushes"
    ((acked >= sent)) || b_fail "push → ACK ($w): $((sent - acked)) of $sent pushes were not answered"
    ((P[$w.nacked] == 0)) || b_fail "push → ACK ($w): ${P[$w.nacked]} pushes were NACKed"
    P[$w.cpu]=$(awk -v d=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v n="$sent" \
        'BEGIN { printf "%.2f", n ? d / hz * 1000 / n : 0 }')
    P[$w.rss]=$(b_status_kib VmRSS "$R_PID")
    awk -v v="${P[$w.noise]}" -v p="$NOISE_PCT" 'BEGIN { exit !(v > p) }' &&
        NOTES+=("push → ACK ($w): other processes used ${P[$w.noise]}% of the machine's CPU meanwhile")
    return 0
}

# --- churn: requests/s with and without EDS updates -------------------------------------------
c0_set() { # c0_set VERSION EP...: c0's endpoints, then a moment for the ACK
    cp_send "$(xds endpoints c0 "$@")" && sleep 0.5
}

main_ticks() { # CPU ticks of remora's main thread (the xDS client, admin), not its worker's
    local s fields
    s=$(<"/proc/$R_PID/task/$R_PID/stat") || return 1
    s=${s##*) }
    read -r -a fields <<<"$s"
    echo $((fields[11] + fields[12]))
}

c0_connections() { # upstream connections remora has opened to c0's endpoints so far
    curl -s -m 5 "http://127.0.0.1:$R_ADMIN/stats" |
        awk -F': ' '$1 == "cluster.c0.upstream_cx_total" { print $2 }'
}

CHURN_N=0 # patches sent, for unique versions
# measure_churn MODE ROUND: one wrk run with MODE's updates (none: no updates)
measure_churn() {
    local m=$1 r=$2 f=$work/wrk-$1-$2.txt from loop="" c0 c1 n0 n1 wpid parsed rps p50 p99 reqs err
    local sent acked nacked t0 t1 cx0 cx1 p0 p1 l0 l1 e0 e1 x0 x1 q0=() q1=()
    # both: A and B at 1:3, the split reweight has at every moment (it alternates 1:3 and 3:1);
    # an even split would be no fair base, the two apps share the load core and a skewed split
    # serves fewer requests a second there, updates or not
    if [[ $m == both ]]; then
        CHURN_N=$((CHURN_N + 1))
        c0_set "both$CHURN_N" "127.0.0.1:$APP_A:1" "127.0.0.1:$APP_B:3"
    fi
    pin_load wrk -t1 -c"$WRK_CONNS" -d1s "http://127.0.0.1:$R_HTTP/" >/dev/null 2>&1 # warm-up
    from=$(($(wc -l <"$CP_LOG") + 1))
    if [[ $m == swap || $m == reweight ]]; then
        CHURN_N=$((CHURN_N + 1))
        local how=()
        [[ $CHURN_PUSH == changed ]] && how=(changed)
        xds churn "$m" $(((SECS + 2) * CHURN_RATE)) "$APP_A" "$APP_B" \
            "churn$CHURN_N" "$work/churn.txt" "${how[@]}" || return 1
    fi
    rm -f "$work/churn.go"
    if [[ $m == swap || $m == reweight ]]; then # the feeder starts now, its updates once churn.go exists
        b_bg "$work/churn.log" taskset -c "$LOAD_CPU" nice -n "$LOAD_NICE" python3 "$TOOL" feed "$work/cp.in" \
            "$work/churn.txt" rate "$CHURN_RATE" "$work/churn.go"
        loop=$B_PID
        sleep 0.5
    fi
    cx0=$(c0_connections)
    c0=$(b_cpu_ticks "$R_PID") t0=$(main_ticks) p0=$(b_cpu_ticks "$CP_PID") l0=$(b_cpu_busy "$LOAD_CPU")
    e0=$(b_thread_ms "$R_PID") x0=$(b_thread_ms "$R_PID" "$R_PID")
    ((CAPPED)) && read -ra q0 <<<"$(b_quota_throttle)"
    n0=$(b_now_ns)
    pin_load wrk -t1 -c"$WRK_CONNS" -d"${SECS}s" --latency "http://127.0.0.1:$R_HTTP/" >"$f" 2>&1 &
    wpid=$!
    sleep 0.2 # wrk's connections are open: the updates come while they carry traffic
    : >"$work/churn.go"
    sleep "$(awk -v s="$SECS" 'BEGIN { print s / 2 - 0.2 }')"
    M[$m.up_a]=$(b_established "$APP_A") M[$m.up_b]=$(b_established "$APP_B")
    wait "$wpid"
    n1=$(b_now_ns)
    c1=$(b_cpu_ticks "$R_PID") t1=$(main_ticks) p1=$(b_cpu_ticks "$CP_PID") l1=$(b_cpu_busy "$LOAD_CPU")
    e1=$(b_thread_ms "$R_PID") x1=$(b_thread_ms "$R_PID" "$R_PID")
    ((CAPPED)) && read -ra q1 <<<"$(b_quota_throttle)"
    [[ -n $loop ]] && b_stop "$loop"
    cx1=$(c0_connections)
    parsed=$(b_wrk_parse "$f") || {
        b_fail "$m: wrk produced no result: $(head -c 500 "$f")"
        return 1
    }
    read -r rps p50 p99 reqs err <<<"$parsed"
    ((err > 0)) && NOTES+=("$m, round $r: wrk counted $err socket errors or non-2xx responses")
    read -r sent acked nacked <<<"$(xds count "$CP_LOG" "$from")"
    ((nacked > 0)) && b_fail "$m, round $r: $nacked EDS updates were NACKed"
    M[$m.rps]=$rps M[$m.p50]=$p50 M[$m.p99]=$p99
    M[$m.cpu_req]=$(b_cpu_per $((c1 - c0)) "$reqs")
    M[$m.cpu_use]=$(b_cpu_pct $((c1 - c0)) $((n1 - n0)))
    M[$m.main_use]=$(b_cpu_pct $((t1 - t0)) $((n1 - n0)))
    M[$m.worker_req]=$(b_cpu_per $((c1 - c0 - (t1 - t0))) "$reqs")
    M[$m.cp_use]=$(b_cpu_pct $((p1 - p0)) $((n1 - n0)))
    M[$m.load_use]=$(b_cpu_pct $((l1 - l0)) $((n1 - n0)))
    [[ -n $cx0 && -n $cx1 ]] && M[$m.cx_new]=$((cx1 - cx0))
    # the same CPU from the scheduler's clock (µs precision): all threads, and the main thread
    M[$m.exec_req]=$(awk -v d="$(awk -v a="$e0" -v b="$e1" 'BEGIN { print b - a }')" -v n="$reqs" \
        'BEGIN { printf "%.3f", (n > 0) ? d * 1000 / n : 0 }')
    M[$m.exec_use]=$(awk -v a="$e0" -v b="$e1" -v ns=$((n1 - n0)) \
        'BEGIN { printf "%.2f", (b - a) / (ns / 1e6) * 100 }')
    M[$m.main_exec_use]=$(awk -v a="$x0" -v b="$x1" -v ns=$((n1 - n0)) \
        'BEGIN { printf "%.2f", (b - a) / (ns / 1e6) * 100 }')
    M[$m.worker_exec_req]=$(awk -v a="$e0" -v b="$e1" -v x="$x0" -v y="$x1" -v n="$reqs" \
        'BEGIN { printf "%.3f", (n > 0) ? ((b - a) - (y - x)) * 1000 / n : 0 }')
    if ((CAPPED && ${#q0[@]} == 3 && ${#q1[@]} == 3)); then
        M[$m.thr_pct]=$(awk -v p=$((q1[0] - q0[0])) -v t=$((q1[1] - q0[1])) \
            'BEGIN { printf "%.1f", (p > 0) ? t / p * 100 : 0 }')
        M[$m.thr_ms]=$(awk -v d=$((q1[2] - q0[2])) -v ns=$((n1 - n0)) \
            'BEGIN { printf "%.0f", d / 1e6 / (ns / 1e9) }')
    fi
    M[$m.eds_s]=$(awk -v a="$acked" -v ns=$((n1 - n0)) 'BEGIN { printf "%.1f", a / (ns / 1e9) }')
    [[ $m == none ]] || c0_set "back$CHURN_N" "127.0.0.1:$APP_A" # the next run starts from A
}

churn_rounds() {
    local r i m order modes
    read -ra modes <<<"$MODES"
    for ((r = 1; r <= ROUNDS; r++)); do
        order=()
        for ((i = 0; i < ${#modes[@]}; i++)); do order+=("${modes[(i + r - 1) % ${#modes[@]}]}"); done
        for m in "${order[@]}"; do
            b_log "--- churn, round $r of $ROUNDS: $m"
            M=()
            b_noise_begin
            measure_churn "$m" "$r" || continue
            M[$m.noise]=$(b_noise_end)
            awk -v n="${M[$m.noise]}" -v p="$NOISE_PCT" 'BEGIN { exit !(n > p) }' &&
                NOTES+=("churn $m, round $r: other processes used ${M[$m.noise]}% of the machine's CPU meanwhile")
            b_keep "$r"
        done
    done
    b_medians
}

# --- capped churn: remora held to QUOTA_PCT % of its core, base and churn interleaved --------
# Unlimited, remora's core is 60-85% busy and the load core full: the rate is the load core's, a
# cost of the updates to remora shows only in its CPU, and the machine's drift between rounds
# (30-48k requests/s for the same run) hides anything smaller. Held to a CPU quota, remora is the
# bottleneck, so what the updates take from its CPU comes off the rate.
declare -A CR=() # CR[round.mode.metric]: every capped run
CAP_ORDER=()     # CAP_ORDER[round]: the modes in the order that round ran them

capped_rounds() {
    local r i m k order modes
    read -ra modes <<<"$CAP_MODES"
    b_quota_enter "$R_PID" || {
        b_quota_leave
        b_fail "capped churn: could not move remora into $B_QUOTA_DIR"
        return 1
    }
    CAPPED=1
    if ((CAP_PRIORITY)); then
        b_quota_weight 10000 || b_fail "capped churn: could not raise the cgroup's CPU weight"
        LOAD_NICE=-10
        b_renice "$LOAD_NICE" "${APP_PIDS[@]}" "$CP_PID"
    fi
    for ((r = 1; r <= CAP_ROUNDS; r++)); do
        # forwards in odd rounds, backwards in even ones: a base run and its churn run are
        # neighbours and each goes first in half the rounds (A B, B A, A B, ...), so a drift of
        # the machine's speed along the run falls on both alike
        order=()
        for ((i = 0; i < ${#modes[@]}; i++)); do
            if ((r % 2)); then order+=("${modes[i]}"); else order+=("${modes[${#modes[@]} - 1 - i]}"); fi
        done
        CAP_ORDER[r]="${order[*]}"
        for m in "${order[@]}"; do
            b_log "--- capped churn ($QUOTA_PCT% of a core), round $r of $CAP_ROUNDS: $m"
            M=()
            b_noise_tasks_begin
            measure_churn "$m" "$r (capped)" || continue
            M[$m.noise]=$(b_noise_tasks_end)
            for k in "${!M[@]}"; do CR[$r.$k]=${M[$k]}; done
            M=()
        done
    done
    CAPPED=0
    LOAD_NICE=0
    b_renice 0 "${APP_PIDS[@]}" "$CP_PID"
    b_quota_leave
}

# cap_base MODE: the capped run MODE is compared with (as base_of)
cap_base() { [[ $1 == reweight && " $CAP_MODES " == *" both "* ]] && echo both || echo none; }

cap_vals() { # cap_vals MODE KEY: that metric of every capped round, one a line
    local r
    for ((r = 1; r <= CAP_ROUNDS; r++)); do
        [[ -n ${CR[$r.$1.$2]:-} ]] && echo "${CR[$r.$1.$2]}"
    done
}

cap_med() { # cap_med MODE KEY: the median over the capped rounds
    local v
    mapfile -t v < <(cap_vals "$1" "$2")
    ((${#v[@]})) && b_median "${v[@]}"
}

# cap_judge MODE: sets J[...] for MODE against its base: the medians, the base's range, the
# per-round ratios, the CPU figures and the verdict. The rule: no drop beyond noise when the
# churn runs' median requests/s is within the base rounds' range (at least their lowest round):
# the base's own rounds show how far the same run moves by chance; and when the churn run is not
# lower than its base of the same round so consistently that chance would rarely do it (a sign
# test: one-sided p < 0.05, e.g. 6 of 6 rounds, 9 of 10). The range alone misses a drop smaller
# than the machine's swings from minute to minute, which the same-round pairs cancel.
declare -A J=()
cap_judge() {
    local m=$1 b r vb=() vc=() pr=() lower=0 n=0
    b=$(cap_base "$m")
    J=()
    for ((r = 1; r <= CAP_ROUNDS; r++)); do
        [[ -n ${CR[$r.$b.rps]:-} ]] && vb+=("${CR[$r.$b.rps]}")
        [[ -n ${CR[$r.$m.rps]:-} ]] && vc+=("${CR[$r.$m.rps]}")
        if [[ -n ${CR[$r.$b.rps]:-} && -n ${CR[$r.$m.rps]:-} ]]; then
            pr+=("$(awk -v a="${CR[$r.$m.rps]}" -v c="${CR[$r.$b.rps]}" 'BEGIN { printf "%.3f", a / c }')")
            awk -v a="${CR[$r.$m.rps]}" -v c="${CR[$r.$b.rps]}" 'BEGIN { exit !(a < c) }' &&
                lower=$((lower + 1))
            n=$((n + 1))
        fi
    done
    ((${#vb[@]} && ${#vc[@]})) || return 1
    J[base]=$b J[n]=$n J[lower]=$lower J[pairs]="${pr[*]}"
    J[b_med]=$(b_median "${vb[@]}") J[c_med]=$(b_median "${vc[@]}")
    J[b_min]=$(printf '%s\n' "${vb[@]}" | sort -g | head -1)
    J[b_max]=$(printf '%s\n' "${vb[@]}" | sort -g | tail -1)
    J[spread]=$(awk -v lo="${J[b_min]}" -v hi="${J[b_max]}" -v m="${J[b_med]}" \
        'BEGIN { printf "%.1f", (hi - lo) / m * 100 }')
    J[below]=$(awk -v lo="${J[b_min]}" -v m="${J[b_med]}" 'BEGIN { printf "%.1f", (m - lo) / m * 100 }')
    J[ratio]=$(b_ratio "${J[c_med]}" "${J[b_med]}")
    ((n)) && J[pair_med]=$(awk -v v="$(b_median "${pr[@]}")" 'BEGIN { printf "%.3f×", v }')
    J[cpu_b]=$(cap_med "$b" exec_req) J[cpu_c]=$(cap_med "$m" exec_req)
    J[wk_b]=$(cap_med "$b" worker_exec_req) J[wk_c]=$(cap_med "$m" worker_exec_req)
    J[main]=$(cap_med "$m" main_exec_use) J[use]=$(cap_med "$m" exec_use)
    J[main_share]=$(awk -v a="${J[main]}" -v u="${J[use]}" 'BEGIN { printf "%.1f", (u > 0) ? a / u * 100 : 0 }')
    # P(at least `lower` of n rounds lower) if lower and higher were equally likely
    J[sign_p]=$(awk -v k="$lower" -v n="$n" 'BEGIN {
        p = 0; c = 1
        for (i = 0; i <= n; i++) { if (i >= k) p += c; c = c * (n - i) / (i + 1) }
        printf "%.3f", p / 2 ^ n }')
    J[why]=""
    if ! awk -v c="${J[c_med]}" -v lo="${J[b_min]}" 'BEGIN { exit !(c >= lo) }'; then
        J[why]="its median is under the base's lowest round"
    elif ((n)) && awk -v p="${J[sign_p]}" 'BEGIN { exit !(p < 0.05) }'; then
        J[why]="lower than its base in $lower of $n rounds (sign test p = ${J[sign_p]})"
    fi
    if [[ -z ${J[why]} ]]; then J[verdict]=met; else J[verdict]="not met"; fi
}

capped_report() {
    local r m line b
    echo
    echo "### Churn with remora capped at $QUOTA_PCT% of its core"
    echo
    if [[ -n $CAP_SKIP ]]; then
        echo "Skipped: $CAP_SKIP."
        return 0
    fi
    echo "Remora in a cgroup with a CPU quota of $QUOTA_PCT% of one core (10 ms period) for all" \
        "these runs, so that its own CPU, not the load core, sets the rate; $CAP_ROUNDS rounds," \
        "each taking the modes forwards in odd rounds and backwards in even ones (a base run and" \
        "its churn run are neighbours, each first in half the rounds). CPU from the scheduler's" \
        "per-thread clock (/proc/PID/task/*/sched); throttling from the cgroup's cpu.stat; other" \
        "processes' CPU without irq and softirq (the quota's held-back socket work shows there)." \
        "$( ((CAP_PRIORITY)) && echo "The cgroup had the highest CPU weight and the load side" \
            "(wrk, the apps, the control plane) nice -10, so that other processes took neither" \
            "remora's quota nor the load core's time (BENCH_XDS_CAP_PRIORITY=0: both normal).")"
    echo
    echo "| round | mode | requests/s | ÷ its base, same round | p99 (ms) | remora CPU per request (µs) | … worker thread (µs) | main thread (% of the core) | remora CPU use (% of the core) | periods throttled (%) | upstream connections opened | load core busy (%) | others' CPU (% of all cores) |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for ((r = 1; r <= CAP_ROUNDS; r++)); do
        for m in ${CAP_ORDER[r]:-}; do
            [[ -n ${CR[$r.$m.rps]:-} ]] || continue
            b=$(cap_base "$m")
            line="| $r | $(mode_label "$m") | $(b_fmt %.0f 1 "${CR[$r.$m.rps]}") |"
            if [[ $m != "$b" && -n ${CR[$r.$b.rps]:-} ]]; then
                line+=" $(awk -v a="${CR[$r.$m.rps]}" -v c="${CR[$r.$b.rps]}" 'BEGIN { printf "%.3f×", a / c }') |"
            else
                line+=" — |"
            fi
            line+=" $(b_fmt %.3f 1 "${CR[$r.$m.p99]:-}") | $(b_fmt %.2f 1 "${CR[$r.$m.exec_req]:-}") |"
            line+=" $(b_fmt %.2f 1 "${CR[$r.$m.worker_exec_req]:-}") | $(b_fmt %.2f 1 "${CR[$r.$m.main_exec_use]:-}") |"
            line+=" $(b_fmt %.1f 1 "${CR[$r.$m.exec_use]:-}") | $(b_fmt %.1f 1 "${CR[$r.$m.thr_pct]:-}") |"
            line+=" $(b_fmt %.0f 1 "${CR[$r.$m.cx_new]:-}") |"
            line+=" $(b_fmt %.1f 1 "${CR[$r.$m.load_use]:-}") | $(b_fmt %.1f 1 "${CR[$r.$m.noise]:-}") |"
            echo "$line"
        done
    done
    echo
    echo "Read by mode (medians over the rounds):"
    for m in $CAP_MODES; do
        [[ $m == none || $m == both ]] && continue
        cap_judge "$m" || continue
        echo "- **$(mode_label "$m") against $(mode_label "${J[base]}"): no drop beyond noise:" \
            "${J[verdict]}** — $(b_fmt %.0f 1 "${J[c_med]}") requests/s against" \
            "$(b_fmt %.0f 1 "${J[b_med]}") (${J[ratio]}); the base's rounds span" \
            "$(b_fmt %.0f 1 "${J[b_min]}")–$(b_fmt %.0f 1 "${J[b_max]}") (${J[spread]}% of" \
            "their median, the lowest ${J[below]}% under it). Same-round ratios" \
            "${J[pairs]// /, } (median ${J[pair_med]:-n/a}); lower than its base in ${J[lower]}" \
            "of ${J[n]} rounds (sign test p = ${J[sign_p]})${J[why]:+; not met: ${J[why]}}."
        echo "  CPU per request $(b_fmt %.2f 1 "${J[cpu_c]}") µs against $(b_fmt %.2f 1 "${J[cpu_b]}")" \
            "($(b_ratio "${J[cpu_c]}" "${J[cpu_b]}")); the worker thread alone" \
            "$(b_fmt %.2f 1 "${J[wk_c]}") against $(b_fmt %.2f 1 "${J[wk_b]}")" \
            "($(b_ratio "${J[wk_c]}" "${J[wk_b]}")); the main thread took $(b_fmt %.2f 1 "${J[main]}")%" \
            "of the core, ${J[main_share]}% of remora's $(b_fmt %.1f 1 "${J[use]}")%: with the" \
            "worker's cost per request unchanged, the rate would be that much lower."
    done
    echo
    echo "The rule: no drop beyond noise when the churn runs' median is within the range of the" \
        "base's own rounds (at least the lowest of them), and the churn run is not lower than" \
        "its base of the same round so consistently that chance would rarely do it (sign test," \
        "one-sided p < 0.05: 6 of 6 rounds, 9 of 10). The range shows how far the same run moves" \
        "over the minutes; the same-round pairs cancel that drift and show a steady drop of any size."
}

# --- the runs -----------------------------------------------------------------------------------
NOTES=()
b_log "xds: clusters $SIZES ($EPS endpoints each); push and churn at $AT; ${SECS}s per wrk run," \
    "$ROUNDS rounds"
DONE_SIZES=()
for n in $SIZES; do
    if apply_run "$n"; then
        DONE_SIZES+=("$n")
        awk -v v="${A[$n.noise]}" -v p="$NOISE_PCT" 'BEGIN { exit !(v > p) }' &&
            NOTES+=("apply, $n clusters: other processes used ${A[$n.noise]}% of the machine's CPU meanwhile")
        if [[ $n == "$AT" ]]; then
            if part push; then
                push_run iso || b_fail "push → ACK (one at a time) could not run"
                push_run paced || b_fail "push → ACK (paced) could not run"
            fi
            part churn && churn_rounds
            [[ -z $CAP_SKIP ]] && capped_rounds
        fi
    fi
    r_stop
    cp_stop
done

# --- report ---------------------------------------------------------------------------------------
mib() { b_fmt "%.1f" 0.0009765625 "${1:-}"; }
f1() { b_fmt "%.1f" 1 "${1:-}"; }
f2() { b_fmt "%.2f" 1 "${1:-}"; }

apply_table() {
    local n hdr="| | " sep="|---|" row key label fmt line
    for n in "${DONE_SIZES[@]}"; do
        hdr+="$n clusters | "
        sep+="---:|"
    done
    echo "${hdr% }"
    echo "$sep"
    for row in "apply_ms|Apply: first response → last ACK (ms)|f1" \
        "cds_ms|CDS response → its ACK (ms)|f1" "eds_ms|EDS response → its ACK (ms)|f1" \
        "rds_ms|RDS response → its ACK (ms)|f1" "cpu_ms|Remora CPU for the apply (ms)|f1" \
        "rss0|RSS before: bootstrap only, ADS stream open (MiB)|mib" \
        "rss1|RSS after (MiB)|mib" "per|RSS per cluster: (after − before) ÷ clusters (KiB)|f2" \
        "hwm|Peak RSS, VmHWM (MiB)|mib" \
        "noise|Other processes' CPU meanwhile (% of all cores; noise)|f1"; do
        IFS='|' read -r key label fmt <<<"$row"
        line="| $label |"
        for n in "${DONE_SIZES[@]}"; do line+=" $("$fmt" "${A[$n.$key]:-}") |"; done
        echo "$line"
    done
}

push_table() {
    local row key label fmt line w
    echo "| push → ACK at $AT clusters | one at a time | paced |"
    echo "|---|---:|---:|"
    for row in "sent|EDS pushes sent|%s" "acked|… ACKed|%s" \
        "collapsed|… answered only by the ACK of a later one|%s" "p50|p50 (ms)|%.2f" \
        "p99|p99 (ms)|%.2f" "max|max (ms)|%.2f" "mean|mean (ms)|%.2f" \
        "cpu|Remora CPU per push (ms)|%.2f" "rss|RSS after the pushes (MiB)|%.1f" \
        "noise|Other processes' CPU meanwhile (% of all cores; noise)|%.1f"; do
        IFS='|' read -r key label fmt <<<"$row"
        line="| $label |"
        for w in iso paced; do
            if [[ $key == rss ]]; then
                line+=" $(mib "${P[$w.$key]:-}") |"
            else
                line+=" $(b_fmt "$fmt" 1 "${P[$w.$key]:-}") |"
            fi
        done
        echo "$line"
    done
}

mode_label() {
    case $1 in
    none) echo "no updates" ;;
    swap) echo "${CHURN_RATE}/s: endpoint A ↔ B" ;;
    both) echo "A+B at 1:3, no updates" ;;
    reweight) echo "${CHURN_RATE}/s: A+B re-weighted" ;;
    esac
}

# base_of MODE: the run MODE is compared with, the same endpoints without updates: swap sends to
# one app at a time as none does; reweight to both at 1:3 at every moment, as both does.
base_of() { [[ $1 == reweight && -n ${R[both.rps]:-} ]] && echo both || echo none; }

churn_table() {
    local m hdr="| |" sep="|---|" row key label fmt line v b
    for m in $MODES; do
        hdr+=" $(mode_label "$m") |"
        sep+="---:|"
    done
    echo "$hdr"
    echo "$sep"
    for row in "rps|Requests/s (keep-alive, $WRK_CONNS conns, 1 KiB)|%.0f" \
        "ratio|Requests/s ÷ the same endpoints without updates|ratio" "p50|Latency p50 (ms)|%.3f" \
        "p99|Latency p99 (ms)|%.3f" "cpu_req|Remora CPU per request (µs)|%.2f" \
        "cpu_use|Remora CPU use (% of its core)|%.1f" \
        "main_use|… of which its main thread (xDS client; % of the core)|%.1f" \
        "worker_req|Remora worker thread CPU per request (µs)|%.2f" \
        "eds_s|EDS updates ACKed per second|%.1f" \
        "cp_use|Control plane CPU (% of the load core)|%.1f" \
        "load_use|Load core busy (wrk, apps, control plane; %)|%.1f" \
        "cx_new|Upstream connections opened to c0 during the run|%.0f" \
        "up_a|Upstream connections to app A at mid-run|%.0f" \
        "up_b|Upstream connections to app B at mid-run|%.0f" \
        "noise|Other processes' CPU meanwhile (% of all cores; noise)|%.1f"; do
        IFS='|' read -r key label fmt <<<"$row"
        line="| $label |"
        for m in $MODES; do
            if [[ $fmt == ratio ]]; then
                b=$(base_of "$m")
                v=$([[ -n ${R[$m.rps]:-} && -n ${R[$b.rps]:-} ]] && b_ratio "${R[$m.rps]}" "${R[$b.rps]}")
                line+=" ${v:-n/a} |"
            else
                line+=" $(b_fmt "$fmt" 1 "${R[$m.$key]:-}") |"
            fi
        done
        echo "$line"
    done
}

targets() {
    local v w m b
    echo "Targets:"
    v=${A[$AT.rss1]:-}
    if [[ -n $v ]]; then
        echo "- RSS at $AT clusters ≤ 10 MiB: **$(awk -v v="$v" \
            'BEGIN { print (v <= 10240) ? "met" : "not met" }')** — $(mib "$v") MiB" \
            "($(f2 "${A[$AT.per]}") KiB per cluster; Envoy's figure is about 41 KB)"
    else
        echo "- RSS at $AT clusters ≤ 10 MiB: not measured"
    fi
    for w in iso paced; do
        v=${P[$w.p99]:-}
        if [[ -n $v ]]; then
            echo "- push → ACK p99 ≤ 10 ms ($([[ $w == iso ]] && echo "one at a time" ||
                echo paced)): **$(awk -v v="$v" 'BEGIN { print (v <= 10) ? "met" : "not met" }')**" \
                "— $(f2 "$v") ms; remora's CPU per push $(f2 "${P[$w.cpu]}") ms"
        fi
    done
    for m in $MODES; do
        b=$(base_of "$m")
        [[ $m == none || $m == both || -z ${R[$m.rps]:-} || -z ${R[$b.rps]:-} ]] && continue
        echo "- requests/s with $(mode_label "$m"): $(b_ratio "${R[$m.rps]}" "${R[$b.rps]}") of" \
            "$(mode_label "$b") (expected: no drop beyond noise); CPU per request" \
            "$(b_ratio "${R[$m.cpu_req]}" "${R[$b.cpu_req]}")"
    done
    [[ -z $CAP_SKIP ]] || return 0
    for m in $CAP_MODES; do
        [[ $m == none || $m == both ]] && continue
        cap_judge "$m" || continue
        echo "- requests/s with $(mode_label "$m"), remora capped at $QUOTA_PCT%: no drop beyond" \
            "noise: **${J[verdict]}**${J[why]:+ (${J[why]})} — ${J[ratio]} of" \
            "$(mode_label "${J[base]}") (median of the same-round ratios ${J[pair_med]:-n/a}, lower" \
            "in ${J[lower]} of ${J[n]}; the base's rounds span ${J[spread]}% of their median); CPU" \
            "per request $(b_ratio "${J[cpu_c]}" "${J[cpu_b]}")"
    done
}

remora_rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo "uncommitted tree")
report() {
    echo "## xDS: applying config and endpoint churn"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- machine: $(b_machine)"
    echo "- remora: $REMORA ($remora_rev, built $REMORA_BUILT), --concurrency 1, pinned to CPU $PROXY_CPU"
    echo "- control plane: test/e2e/xds/control_plane.js, node $(node --version), ADS state of" \
        "the world, on CPU $LOAD_CPU; clusters of type EDS (eds_config ads), $EPS endpoints each;" \
        "route configuration r1 over RDS to the bootstrap's listener; churn updates carry" \
        "$([[ $CHURN_PUSH == changed ]] && echo "the changed assignment only" || echo "all $AT assignments")"
    echo "- load: $(b_ver wrk) -t1 -c$WRK_CONNS, ${SECS} s per run after 1 s of warm-up, on CPU" \
        "$LOAD_CPU with two nginx apps (1 worker each, 1 KiB body); $ROUNDS rounds, medians"
    echo
    apply_table
    if part push; then
        echo
        push_table
    fi
    if part churn; then
        echo
        churn_table
        b_rounds_block "rps|Requests/s" "cpu_req|Remora CPU per request (µs)" \
            "main_use|Remora main thread CPU (% of the core)"
    fi
    part capped && capped_report
    echo
    targets
    b_notes
}
mkdir -p "$OUT_DIR"
TARGETS=$MODES # b_rounds_block reads the rows' columns from TARGETS
report | tee "$OUT"
b_log "written to $OUT"
exit "$B_FAILED"
