#!/usr/bin/env bash
# bench/cp.sh: remora-cp at mesh scale (issue 14, point 6): many sidecars, one process
# (build/bench/xds_load, one ADS stream each), against remora-cp serving a directory of
# Kubernetes manifests (bench/cp.py writes them: Services with a VIP in 198.19.0.0/16 and one
# port, their endpoints over EndpointSlices, a Pod per sidecar, in a few namespaces).
#
#   converge     every sidecar connects at once: time until each holds a full config
#   changes      BENCH_CP_CHANGES (100) endpoint changes on disk, one EndpointSlice renamed over
#                its file each time, BENCH_CP_GAP (0.3) s apart so none batch with another: the
#                time from the change to the ACK of every sidecar it concerns (all of them: every
#                sidecar sees every Service), p50/p99/max, and the bytes each change sent
#   restart      remora-cp stopped, a Service added, and started again on the same port, every
#                stream reconnecting at once: time until every sidecar has ACKed its full config
#                again; then stopped and started with nothing changed: time until it counts every
#                sidecar connected (it sends nothing to a sidecar that holds what it would send)
#   delta        converge and the same changes again with DeltaAggregatedResources
#
# with remora-cp's CPU (utime+stime from /proc) and peak RSS (VmHWM), and where its time goes:
# its debug log's "view N built and handed to G groups of sidecars in U us" and its
# pilot_xds_push_time, pilot_proxy_convergence_time and pilot_debounce_time histograms.
# remora-cp runs alone on CPU BENCH_PROXY_CPU (0), xds_load on BENCH_LOAD_CPU (1). Scale:
# BENCH_CP_SIDECARS (100), BENCH_CP_SERVICES (100), BENCH_CP_ENDPOINTS (500); the issue's scale
# is 1000, 1000 and 5000. It measures and reports, never fails on a number; exit status is
# non-zero only when something could not run. Writes the table to stdout and $BUILD/bench/cp.md.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

BUILD=${BUILD:-build}
CP_BIN=${REMORA_CP:-$root/$BUILD/remora-cp}
LOAD=$root/$BUILD/bench/xds_load
SIDECARS=${BENCH_CP_SIDECARS:-100}
SERVICES=${BENCH_CP_SERVICES:-100}
ENDPOINTS=${BENCH_CP_ENDPOINTS:-500}
NAMESPACES=${BENCH_CP_NAMESPACES:-10}
CHANGES=${BENCH_CP_CHANGES:-100}
GAP=${BENCH_CP_GAP:-0.3}
DEBOUNCE=${BENCH_CP_DEBOUNCE:-100ms}
MODES=${BENCH_CP_MODES:-sotw delta}
NOISE_PCT=${BENCH_NOISE_PCT:-5}
PROXY_CPU=${BENCH_PROXY_CPU:-0} # remora-cp, alone
LOAD_CPU=${BENCH_LOAD_CPU:-1}   # xds_load and this script
OUT_DIR=$root/$BUILD/bench
OUT=$OUT_DIR/cp.md
TOOL=$here/cp.py

b_need "python3 util-linux curl" python3 taskset curl awk mkfifo
for f in "$CP_BIN" "$LOAD"; do
    [[ -x $f ]] || {
        b_log "no $f: run make all tools first"
        exit 1
    }
done
if (($(nproc) < 2)); then
    b_log "only one core: remora-cp and the load tool will share it"
    PROXY_CPU=0 LOAD_CPU=0
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null
b_setup cp
cp "$CP_BIN" "$work/remora-cp" # a rebuild during the run cannot mix binaries
CP_BUILT=$(date -u -r "$CP_BIN" '+%Y-%m-%d %H:%M UTC')
APP_PIDS=()
HZ=$(getconf CLK_TCK)
declare -A V=() # V[mode.metric]
NOTES=()

# --- remora-cp ------------------------------------------------------------------------------------
CP_PID="" CP_LOG=""
cp_start() { # cp_start MESH LOG: remora-cp on XDS_PORT and ADMIN_PORT, until /ready (60 s)
    local i t0
    CP_LOG=$2
    t0=$(b_now_ns)
    b_bg "$CP_LOG" taskset -c "$PROXY_CPU" "$work/remora-cp" --mesh "$1" \
        --listen "127.0.0.1:$XDS_PORT" --admin "127.0.0.1:$ADMIN_PORT" --debounce "$DEBOUNCE" \
        --log-level debug
    CP_PID=$B_PID
    ALL_PIDS=("$CP_PID")
    for ((i = 0; i < 600; i++)); do
        if [[ $(curl -s -m 1 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ADMIN_PORT/ready") == 200 ]]; then
            CP_READY_MS=$((($(b_now_ns) - t0) / 1000000))
            return 0
        fi
        kill -0 "$CP_PID" 2>/dev/null || break
        sleep 0.1
    done
    b_fail "remora-cp did not become ready: $(tail -n 5 "$CP_LOG")"
    return 1
}
cp_ticks() { b_cpu_ticks "$CP_PID" 2>/dev/null || echo 0; }
cp_stats() { # cp_stats: remora-cp's stats as cp.py stats prints them
    curl -s -m 10 "http://127.0.0.1:$ADMIN_PORT/stats/prometheus" >"$work/stats.txt"
    python3 "$TOOL" stats "$work/stats.txt"
}
cp_stop() {
    [[ -n $CP_PID ]] && b_stop "$CP_PID"
    CP_PID="" ALL_PIDS=()
}

# --- xds_load, its stdin and stdout on FIFOs --------------------------------------------------
LOAD_PID="" LIN="" LOUT=""
load_start() { # load_start MODE: 1 for sotw, --delta for delta
    rm -f "$work/load.in" "$work/load.out"
    mkfifo "$work/load.in" "$work/load.out"
    exec {LIN}<>"$work/load.in" {LOUT}<>"$work/load.out"
    local args=(--addr "127.0.0.1:$XDS_PORT" --nodes "$work/nodes" --stdin --settle-ms 2000
        --mark-timeout-ms 20000)
    [[ $1 == delta ]] && args+=(--delta)
    taskset -c "$LOAD_CPU" "$LOAD" "${args[@]}" <"$work/load.in" >"$work/load.out" \
        2>"$work/load-$1.err" &
    LOAD_PID=$!
    b_pids+=("$LOAD_PID")
    APP_PIDS=("$LOAD_PID") # the bench's own: its CPU is no noise
    : >"$work/load-$1.log"
    LOAD_LOG=$work/load-$1.log
}
# load_wait REGEX SECONDS: reads the tool's records until one matches (in LINE); logs them all
load_wait() {
    local end=$((SECONDS + $2))
    while ((SECONDS < end)); do
        if IFS= read -r -t 1 LINE <&"$LOUT"; then
            printf '%s\n' "$LINE" >>"$LOAD_LOG"
            [[ $LINE =~ $1 ]] && return 0
        elif ! kill -0 "$LOAD_PID" 2>/dev/null; then
            return 1
        fi
    done
    return 1
}
load_stop() { # quit, then the summary in SUMMARY
    SUMMARY=""
    echo quit >&"$LIN"
    load_wait '^summary ' 60 && SUMMARY=$LINE
    wait "$LOAD_PID" 2>/dev/null
    b_forget "$LOAD_PID"
    APP_PIDS=()
    exec {LIN}>&- {LOUT}<&-
}
field() { # field RECORD KEY: the value of KEY= in a record
    tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p" | head -n 1
}

# --- one mode: converge, changes, (sotw) restart --------------------------------------------------
run_mode() {
    local m=$1 mesh=$work/mesh-$1 stage=$work/stage-$1 k file c0 c1 s0 s1 v0 marks=() rec
    local ms_list=() first_list=() bytes_list=() per_list=() eds_list=() acked_min=$SIDECARS
    b_log "--- $m: writing the mesh ($SERVICES Services, $ENDPOINTS endpoints, $SIDECARS pods)"
    mkdir -p "$mesh" "$stage"
    python3 "$TOOL" mesh "$mesh" "$work/nodes" "$stage" --services "$SERVICES" \
        --endpoints "$ENDPOINTS" --sidecars "$SIDECARS" --namespaces "$NAMESPACES" \
        --changes "$CHANGES" || {
        b_fail "$m: cp.py could not write the mesh"
        return 1
    }
    cp_start "$mesh" "$work/cp-$m.log" || return 1
    V[$m.ready_ms]=$CP_READY_MS
    V[$m.rss_idle]=$(b_status_kib VmRSS "$CP_PID")
    b_log "$m: remora-cp ready in $CP_READY_MS ms; $SIDECARS sidecars connect at once"
    b_noise_begin
    c0=$(cp_ticks)
    load_start "$m"
    if ! load_wait '^converge round=1 ' 300; then
        b_fail "$m: the sidecars did not converge in 300 s: $(tail -n 3 "$work/load-$m.err")"
        return 1
    fi
    c1=$(cp_ticks)
    V[$m.conv_noise]=$(b_noise_end)
    [[ $(field "$LINE" complete) == 1 ]] || b_fail "$m: convergence incomplete: $LINE"
    V[$m.conv_p50]=$(field "$LINE" ms_p50) V[$m.conv_p99]=$(field "$LINE" ms_p99)
    V[$m.conv_max]=$(field "$LINE" ms_max)
    V[$m.conv_cpu]=$(awk -v t=$((c1 - c0)) -v hz="$HZ" 'BEGIN { printf "%.2f", t / hz }')
    V[$m.rss_conv]=$(b_status_kib VmRSS "$CP_PID")
    sleep 1
    b_log "$m: $CHANGES endpoint changes, ${GAP}s apart"
    s0=$(cp_stats) v0=$(($(wc -l <"$CP_LOG") + 1))
    b_noise_begin
    c0=$(cp_ticks)
    while read -r k file; do
        echo "mark c$k $SIDECARS" >&"$LIN"
        load_wait "^marked label=c$k\$" 30 || {
            b_fail "$m: xds_load did not open mark c$k"
            break
        }
        mv "$stage/change-$k.yaml" "$mesh/$file"
        load_wait "^mark label=c$k " 60 || {
            b_fail "$m: mark c$k never ended"
            break
        }
        rec=$LINE
        marks+=("$rec")
        ms_list+=("$(field "$rec" ms)") first_list+=("$(field "$rec" first_ms)")
        bytes_list+=("$(field "$rec" bytes)") per_list+=("$(field "$rec" bytes_per_sidecar)")
        eds_list+=("$(field "$rec" bytes_eds)")
        (($(field "$rec" acked) < acked_min)) && acked_min=$(field "$rec" acked)
        sleep "$GAP"
    done <"$stage/changes.txt"
    c1=$(cp_ticks)
    V[$m.chg_noise]=$(b_noise_end)
    s1=$(cp_stats)
    V[$m.changes]=${#marks[@]}
    V[$m.acked_min]=$acked_min
    read -r "V[$m.p50]" "V[$m.p99]" "V[$m.max]" <<<"$(printf '%s\n' "${ms_list[@]}" | dist)"
    read -r "V[$m.first_p50]" _ _ <<<"$(printf '%s\n' "${first_list[@]}" | dist)"
    V[$m.bytes]=$(printf '%s\n' "${bytes_list[@]}" | avg)
    V[$m.bytes_eds]=$(printf '%s\n' "${eds_list[@]}" | avg)
    V[$m.per]=$(printf '%s\n' "${per_list[@]}" | avg)
    V[$m.chg_cpu]=$(awk -v t=$((c1 - c0)) -v hz="$HZ" -v n="${#marks[@]}" \
        'BEGIN { printf "%.2f", n ? t / hz * 1000 / n : 0 }')
    read -r "V[$m.views]" "V[$m.view_us]" "V[$m.view_max_us]" <<<"$(python3 "$TOOL" views "$CP_LOG" "$v0")"
    # the histograms' growth over the changes: per rebuild (push), per rescan (convergence)
    read -r -a a0 <<<"$s0"
    read -r -a a1 <<<"$s1"
    V[$m.push_n]=$((a1[0] - a0[0]))
    V[$m.push_ms]=$(awk -v n=$((a1[0] - a0[0])) -v s="${a1[1]}" -v t="${a0[1]}" \
        'BEGIN { if (n) printf "%.2f", (s - t) / n }')
    V[$m.conv_ms]=$(awk -v n=$((a1[2] - a0[2])) -v s="${a1[3]}" -v t="${a0[3]}" \
        'BEGIN { if (n) printf "%.2f", (s - t) / n }')
    V[$m.deb_ms]=$(awk -v n=$((a1[4] - a0[4])) -v s="${a1[5]}" -v t="${a0[5]}" \
        'BEGIN { if (n) printf "%.2f", (s - t) / n }')
    V[$m.sent]=$(awk -v n="${#marks[@]}" -v d=$((a1[6] - a0[6])) 'BEGIN { if (n) printf "%.0f", d / n }')
    V[$m.rejects]=${a1[9]}
    V[$m.cpu1]=$(awk -v t="$(cp_ticks)" -v hz="$HZ" 'BEGIN { printf "%.2f", t / hz }')
    V[$m.hwm1]=$(b_status_kib VmHWM "$CP_PID")
    b_log "$m: change → last ACK p50 ${V[$m.p50]} p99 ${V[$m.p99]} max ${V[$m.max]} ms"
    if [[ $m == sotw ]]; then
        restart_changed "$m" "$mesh"
        restart_same "$m" "$mesh"
    fi
    load_stop
    [[ -n $SUMMARY ]] || b_fail "$m: xds_load printed no summary"
    V[$m.load_cpu]=$(awk -v u="$(field "$SUMMARY" cpu_user_s)" -v s="$(field "$SUMMARY" cpu_sys_s)" \
        'BEGIN { printf "%.2f", u + s }')
    V[$m.load_rss]=$(field "$SUMMARY" maxrss_kb)
    V[$m.answer_max]=$(field "$SUMMARY" answer_us_max)
    V[$m.nacks]=$(field "$SUMMARY" nacks)
    ((V[$m.nacks] == 0)) || NOTES+=("$m: the sidecars NACKed ${V[$m.nacks]} responses")
    cp_stop
    local n
    for n in conv_noise chg_noise rst_noise; do
        [[ -n ${V[$m.$n]:-} ]] && awk -v v="${V[$m.$n]}" -v p="$NOISE_PCT" 'BEGIN { exit !(v > p) }' &&
            NOTES+=("$m, ${n%_noise}: other processes used ${V[$m.$n]}% of the machine's CPU meanwhile")
    done
    return 0
}

# The restart storm, where the mesh changed while remora-cp was down (a Service added: every
# sidecar's clusters, listeners, routes and endpoint subscriptions change, so every one must be
# sent and ACKed again): xds_load's second convergence round.
restart_changed() {
    local m=$1 mesh=$2 t0
    b_log "$m: restart storm: remora-cp stopped, a Service added, remora-cp started again"
    cp_stop
    printf '%s\n' "apiVersion: v1" "kind: Service" "metadata: {name: storm, namespace: ns-0}" \
        "spec:" "  clusterIP: 198.19.255.254" "  ports: [{name: http, port: 80, targetPort: 8080}]" \
        "---" "apiVersion: discovery.k8s.io/v1" "kind: EndpointSlice" \
        "metadata: {name: storm-1, namespace: ns-0, labels: {kubernetes.io/service-name: storm}}" \
        "addressType: IPv4" "ports: [{name: http, port: 8080}]" \
        "endpoints: [{addresses: [10.250.0.1], conditions: {ready: true}}]" >"$mesh/storm.yaml"
    b_noise_begin
    t0=$(b_now_ns)
    cp_start "$mesh" "$work/cp-$m-restart.log" || return 1
    V[$m.ready2_ms]=$CP_READY_MS
    if load_wait '^converge round=2 ' 300; then
        V[$m.rst_total]=$((($(b_now_ns) - t0) / 1000000))
        [[ $(field "$LINE" complete) == 1 ]] || b_fail "restart: incomplete: $LINE"
        V[$m.rst_p50]=$(field "$LINE" ms_p50) V[$m.rst_p99]=$(field "$LINE" ms_p99)
        V[$m.rst_max]=$(field "$LINE" ms_max) V[$m.down_ms]=$(field "$LINE" down_ms)
    else
        b_fail "restart: the sidecars did not converge again in 300 s"
    fi
    V[$m.rst_cpu]=$(awk -v t="$(cp_ticks)" -v hz="$HZ" 'BEGIN { printf "%.2f", t / hz }')
    V[$m.hwm2]=$(b_status_kib VmHWM "$CP_PID")
    V[$m.rst_noise]=$(b_noise_end)
}

# The restart storm with nothing changed: a sidecar that reconnects asking for the versions
# remora-cp would send is sent nothing (it holds them already), so there is nothing to ACK;
# the time is until remora-cp counts every sidecar connected again (pilot_xds).
restart_same() {
    local m=$1 mesh=$2 t0 i n=0
    b_log "$m: restart storm, mesh unchanged"
    cp_stop
    cp_start "$mesh" "$work/cp-$m-restart2.log" || return 1
    t0=$(b_now_ns)
    V[$m.ready3_ms]=$CP_READY_MS
    for ((i = 0; i < 1200; i++)); do
        n=$(curl -s -m 5 "http://127.0.0.1:$ADMIN_PORT/stats/prometheus" |
            awk '$1 == "pilot_xds" { print $2 }')
        ((${n:-0} >= SIDECARS)) && break
        sleep 0.1
    done
    if ((${n:-0} >= SIDECARS)); then
        V[$m.same_ms]=$((($(b_now_ns) - t0) / 1000000))
    else
        b_fail "restart, mesh unchanged: remora-cp counts ${n:-0} of $SIDECARS sidecars after 120 s"
    fi
    V[$m.same_cpu]=$(awk -v t="$(cp_ticks)" -v hz="$HZ" 'BEGIN { printf "%.2f", t / hz }')
    V[$m.hwm3]=$(b_status_kib VmHWM "$CP_PID")
}

dist() { # numbers on stdin, one a line: "p50 p99 max" (nearest rank)
    sort -g | awk '{ v[NR] = $1 } END {
        if (!NR) { print "  "; exit }
        r50 = int(NR * 0.5); if (r50 < NR * 0.5) r50++; r99 = int(NR * 0.99); if (r99 < NR * 0.99) r99++
        printf "%s %s %s\n", v[r50 ? r50 : 1], v[r99 ? r99 : 1], v[NR] }'
}
avg() { awk '{ s += $1; n++ } END { if (n) printf "%.0f", s / n }'; }

XDS_PORT=$(b_free_port)
ADMIN_PORT=$(b_free_port)
b_log "cp: $SIDECARS sidecars, $SERVICES Services, $ENDPOINTS endpoints, $CHANGES changes; modes $MODES"
for mode in $MODES; do
    run_mode "$mode" || {
        cp_stop
        [[ -n $LOAD_PID ]] && kill "$LOAD_PID" 2>/dev/null
        APP_PIDS=()
    }
done

# --- report ---------------------------------------------------------------------------------------
mib() { b_fmt "%.1f" 0.0009765625 "${1:-}"; }
kb() { b_fmt "%.1f" 0.001 "${1:-}"; }
row() { # row LABEL FORMAT KEY: one line, a column per mode
    local line="| $1 |" m
    for m in $MODES; do
        case $2 in
        mib) line+=" $(mib "${V[$m.$3]:-}") |" ;;
        kb) line+=" $(kb "${V[$m.$3]:-}") |" ;;
        *) line+=" $(b_fmt "$2" 1 "${V[$m.$3]:-}") |" ;;
        esac
    done
    echo "$line"
}
table() {
    local hdr="| |" sep="|---|" m
    for m in $MODES; do
        hdr+=" $([[ $m == sotw ]] && echo "state of the world" || echo delta) |"
        sep+="---:|"
    done
    echo "$hdr"
    echo "$sep"
    row "remora-cp start to /ready: mesh read, first view built (ms)" %s ready_ms
    row "Converge: all $SIDECARS sidecars connecting at once, each to its full config: p50 (ms)" %s conv_p50
    row "… p99 (ms)" %s conv_p99
    row "… max: the last sidecar (ms)" %s conv_max
    row "… remora-cp CPU (s)" %s conv_cpu
    row "Change on disk → ACK of every sidecar it concerns: p50 (ms)" %s p50
    row "… p99 (ms)" %s p99
    row "… max (ms)" %s max
    row "… first sidecar's ACK, p50 (ms)" %s first_p50
    row "Changes measured" %s changes
    row "… fewest sidecars that ACKed one change (of $SIDECARS)" %s acked_min
    row "Bytes received per change, all sidecars (kB)" kb bytes
    row "… of them EDS (kB)" kb bytes_eds
    row "… per sidecar (bytes)" %s per
    row "remora-cp CPU per change (ms)" %s chg_cpu
    row "… view rebuilds logged during the changes" %s views
    row "… their mean time, debug log (µs)" %s view_us
    row "… slowest view rebuild (µs)" %s view_max_us
    row "… pilot_xds_push_time per push (ms)" %s push_ms
    row "… pilot_proxy_convergence_time per rescan (ms)" %s conv_ms
    row "… pilot_debounce_time per rescan (ms)" %s deb_ms
    row "… remora_cp_xds_sent_bytes_total per change (kB)" kb sent
    row "Restart storm: remora-cp start to /ready (ms)" %s ready2_ms
    row "… first stream lost → first stream up again (ms)" %s down_ms
    row "… first stream up → every sidecar fully ACKed: p50 (ms)" %s rst_p50
    row "… p99 (ms)" %s rst_p99
    row "… max: all $SIDECARS (ms)" %s rst_max
    row "… remora-cp started → every sidecar fully ACKed (ms)" %s rst_total
    row "… restarted remora-cp's CPU from its start until then (s)" %s rst_cpu
    row "Restart, mesh unchanged: remora-cp start to /ready (ms)" %s ready3_ms
    row "… /ready → every sidecar connected again, pilot_xds = $SIDECARS (ms; nothing to send)" %s same_ms
    row "… remora-cp's CPU from its start until then (s)" %s same_cpu
    row "remora-cp CPU, whole run of the first instance (s)" %s cpu1
    row "remora-cp RSS idle, after start (MiB)" mib rss_idle
    row "remora-cp RSS with every sidecar converged (MiB)" mib rss_conv
    row "remora-cp peak RSS, VmHWM, first instance (MiB)" mib hwm1
    row "… restarted instance, after the storm (MiB)" mib hwm2
    row "… restarted again, mesh unchanged (MiB)" mib hwm3
    row "xds_load CPU for the whole mode (s)" %s load_cpu
    row "xds_load peak RSS (MiB)" mib load_rss
    row "xds_load slowest answer, response in to ACK out (µs)" %s answer_max
    row "Other processes' CPU during the changes (% of all cores; noise)" %s chg_noise
    row "… during the convergence" %s conv_noise
}
targets() {
    local v
    echo "Targets (issue 14, point 6, set for 1000 sidecars, 1000 Services and 5000 endpoints;" \
        "this run: $SIDECARS, $SERVICES and $ENDPOINTS):"
    v=${V[sotw.p99]:-}
    [[ -n $v ]] && echo "- change → every ACK p99 ≤ 100 ms including the debounce: **$(awk -v v="$v" \
        'BEGIN { print (v <= 100) ? "met" : "not met" }')** — $v ms (state of the world)$([[ -n ${V[delta.p99]:-} ]] && echo ", ${V[delta.p99]} ms (delta)")"
    v=${V[sotw.rst_total]:-}
    [[ -n $v ]] && echo "- restart storm fully ACKed ≤ 10 s, counted from remora-cp's start: **$(awk -v v="$v" \
        'BEGIN { print (v <= 10000) ? "met" : "not met" }')** — $v ms ($(b_fmt %s 1 "${V[sotw.rst_max]:-}") ms from the first stream up again; remora-cp answered /ready after ${V[sotw.ready2_ms]:-?} ms)"
    v=${V[sotw.hwm1]:-}
    [[ -n $v ]] && echo "- peak RSS ≤ 256 MiB: **$(awk -v v="$v" -v w="${V[sotw.hwm2]:-0}" \
        'BEGIN { print (v <= 262144 && w <= 262144) ? "met" : "not met" }')** — $(mib "$v") MiB (restarted: $(mib "${V[sotw.hwm2]:-}") MiB)"
}
rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo "uncommitted tree")
report() {
    echo "## remora-cp: pushes at mesh scale"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- machine: $(b_machine)"
    echo "- remora-cp: $CP_BIN ($rev, built $CP_BUILT), --debounce $DEBOUNCE, --log-level debug, on CPU $PROXY_CPU"
    echo "- mesh: $SIDECARS Pods (the sidecars), $SERVICES Services (VIP, one HTTP port), $ENDPOINTS endpoints over $SERVICES EndpointSlices, $NAMESPACES namespaces"
    echo "- load: build/bench/xds_load, $SIDECARS sidecars (one stream each), on CPU $LOAD_CPU; $CHANGES changes ${GAP} s apart, one EndpointSlice renamed over its file each"
    echo
    table
    echo
    targets
    b_notes
}
mkdir -p "$OUT_DIR"
report | tee "$OUT"
b_log "written to $OUT"
exit "$B_FAILED"
