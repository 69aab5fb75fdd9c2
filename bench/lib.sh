# bench/lib.sh: helpers shared by the benches. Sourced, never run on its own.
# shellcheck shell=bash
#
# Everything here talks to 127.0.0.1 only. Every process started through b_bg is remembered and
# stopped by b_cleanup, which the sourcing script installs as its EXIT trap.

b_pids=()   # processes we started (b_bg), stopped by b_cleanup
b_ports=()  # ports handed out by b_free_port, never handed out twice
B_FAILED=0  # set to 1 when some measurement could not run; the bench exits non-zero then

b_log() { printf '[bench] %s\n' "$*" >&2; }
# shellcheck disable=SC2034 # B_FAILED is read by the sourcing script
b_fail() { # b_fail MSG: something could not run; note it, keep going, exit non-zero at the end
    printf '[bench] FAILED: %s\n' "$*" >&2
    B_FAILED=1
}

b_cleanup() {
    local p
    for p in "${b_pids[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${b_pids[@]}"; do wait "$p" 2>/dev/null; done
    b_pids=()
}

b_bg() { # b_bg LOG CMD...: start CMD in the background, remember it; its pid in B_PID
    local log=$1
    shift
    "$@" >"$log" 2>&1 &
    B_PID=$!
    b_pids+=("$B_PID")
}

b_forget() { # b_forget PID: a process we started has ended (we waited for it)
    local q keep=()
    for q in "${b_pids[@]}"; do [[ $q == "$1" ]] || keep+=("$q"); done
    b_pids=("${keep[@]}")
}

b_stop() { # b_stop PID: stop one process we started and wait for it
    kill "$1" 2>/dev/null
    wait "$1" 2>/dev/null
    b_forget "$1"
}

b_need() { # b_need "PACKAGES" TOOL...: exits the bench, naming the missing tools, unless all are here
    local hint=$1 c missing=()
    shift
    for c in "$@"; do command -v "$c" >/dev/null || missing+=("$c"); done
    ((${#missing[@]} == 0)) && return 0
    b_log "missing tools: ${missing[*]} (Debian: apt-get install $hint)"
    exit 1
}

b_free_port() { # a loopback port nobody listens on and we have not handed out yet
    local p q used
    while :; do
        p=$((20000 + RANDOM % 12000)) # below the ephemeral range (32768-)
        used=0
        for q in "${b_ports[@]}"; do [[ $q == "$p" ]] && used=1; done
        ((used)) && continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            b_ports+=("$p")
            echo "$p"
            return
        fi
    done
}

b_wait_port() { # b_wait_port PORT [TRIES]: until something accepts on 127.0.0.1:PORT
    local i
    for ((i = 0; i < ${2:-100}; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

b_wait_listen() { # b_wait_listen PORT: until a socket listens on PORT (without connecting)
    local i
    for ((i = 0; i < 100; i++)); do
        [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]] && return 0
        sleep 0.02
    done
    return 1
}

b_established() { # b_established PORT: established TCP connections whose peer port is PORT
    ss -Htn state established "dport = :$1" 2>/dev/null | wc -l
}

b_cpu_ticks() { # b_cpu_ticks PID...: utime+stime of the processes (all threads), clock ticks
    local p s sum=0 f
    for p in "$@"; do
        s=$(<"/proc/$p/stat") || return 1
        s=${s##*) } # fields after "(comm) ": state is field 3, utime 14, stime 15
        read -r -a f <<<"$s"
        sum=$((sum + f[11] + f[12]))
    done
    echo "$sum"
}

b_status_kib() { # b_status_kib FIELD PID...: sum of a /proc/PID/status field (VmRSS, VmHWM), KiB
    local field=$1 p sum=0 v
    shift
    for p in "$@"; do
        v=$(awk -v f="$field:" '$1 == f { print $2 }' "/proc/$p/status") || return 1
        sum=$((sum + ${v:-0}))
    done
    echo "$sum"
}

b_now_ns() { date +%s%N; }

# b_wrk_parse FILE: prints "RPS P50_MS P99_MS REQUESTS ERRORS" from a `wrk --latency` output.
# ERRORS is socket errors plus non-2xx/3xx responses.
b_wrk_parse() {
    awk '
    function ms(v) {
        if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
        if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
        if (v ~ /m$/) return substr(v, 1, length(v) - 1) * 60000
        if (v ~ /s$/) return substr(v, 1, length(v) - 1) * 1000
        return v + 0
    }
    /Latency Distribution/ { dist = 1; next }
    dist && $1 == "50%" { p50 = ms($2) }
    dist && $1 == "99%" { p99 = ms($2); dist = 0 }
    / requests in / { reqs = $1 }
    /^Requests\/sec:/ { rps = $2 }
    /Socket errors:/ { gsub(/,/, ""); err += $4 + $6 + $8 + $10 }
    /Non-2xx or 3xx responses:/ { err += $NF }
    END {
        if (rps == "" || reqs == "") exit 1
        printf "%s %s %s %s %d\n", rps, p50, p99, reqs, err
    }' "$1"
}

b_cpu_busy_all() { # ticks all CPUs spent busy since boot (user nice system irq softirq steal)
    awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat
}

b_cpu_busy() { # b_cpu_busy N: ticks CPU N spent busy since boot (as b_cpu_busy_all)
    awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat
}

b_self_ticks() { # this shell's CPU ticks plus those of every child it has waited for
    local s f
    s=$(<"/proc/$$/stat") # $$: the script itself, even from a $(...) subshell
    s=${s##*) }
    read -r -a f <<<"$s"
    echo $((f[11] + f[12] + f[13] + f[14]))
}

b_nginx_temp_paths() { # b_nginx_temp_paths DIR: nginx's temp directories inside DIR (never the system's)
    local k
    for k in client_body proxy fastcgi uwsgi scgi; do echo "    ${k}_temp_path $1/tmp_$k;"; done
}

# b_nginx_start DIR CPU PORT: starts one nginx proxy (DIR/nginx.conf) on CPU, waits until it listens on
# PORT; its master and worker in NGX_PIDS (the worker also in extra_pids, stopped at exit)
b_nginx_start() {
    local d=$1 master worker
    b_bg "$d/stdout.log" taskset -c "$2" nginx -p "$d" -e "$d/logs/error.log" -c "$d/nginx.conf" \
        -g "daemon off; pid $d/nginx.pid;"
    master=$B_PID
    NGX_PIDS=("$master")
    b_wait_listen "$3" || {
        b_log "nginx ($d) did not listen: $(cat "$d/logs/error.log" "$d/stdout.log")"
        return 1
    }
    # b_bg's pid is taskset's, which exec'd nginx (the master); the worker is its child.
    worker=$(b_child_of "$master") || {
        b_log "no nginx worker under master $master"
        return 1
    }
    extra_pids+=("$worker")
    # shellcheck disable=SC2034 # read by the bench scripts
    NGX_PIDS=("$master" "$worker") # CPU and RSS are summed over master and worker
}

# b_app DIR PORT — the upstream app every bench uses: nginx, 1 worker, a 1 KiB body, keep-alive
# for as long as the run lasts, no access log; written to DIR/nginx.conf and started with
# b_start_app. The body is answered from the config (`return 200`), not read from a file: a
# static file costs nginx an open, fstat, pread and close per request, and the app shares the
# load core, whose speed is the ceiling of every closed-loop run; the cheaper the app, the more
# of each hop's own cost the closed loop shows.
b_app() {
    local dir=$1 port=$2 body
    mkdir -p "$dir/logs"
    body=$(head -c 1024 /dev/zero | tr '\0' 'x')
    chmod -R a+rX "$dir"
    cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
worker_rlimit_nofile 16384;
error_log $dir/logs/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    default_type text/plain;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
$(b_nginx_temp_paths "$dir")
    server {
        listen 127.0.0.1:$port;
        location / { return 200 "$body"; }
    }
}
EOF
    b_start_app "$dir" "$port"
}

# b_start_app DIR PORT — starts the nginx app whose config is DIR/nginx.conf on LOAD_CPU, checks
# that it serves the 1 KiB body on PORT, and sets APP_MASTER and APP_PIDS (master, workers).
# Exits the bench when it cannot.
b_start_app() {
    local dir=$1 port=$2 body
    b_bg "$dir/stdout.log" taskset -c "$LOAD_CPU" nginx -p "$dir" -e "$dir/logs/error.log" \
        -c "$dir/nginx.conf" -g "daemon off; pid $dir/nginx.pid;"
    APP_MASTER=$B_PID
    b_wait_port "$port" || {
        b_log "the nginx app did not start: $(cat "$dir/logs/error.log" "$dir/stdout.log")"
        exit 1
    }
    body=$(curl -s "http://127.0.0.1:$port/")
    [[ ${#body} -eq 1024 ]] || {
        b_log "the nginx app does not serve the 1 KiB body (got ${#body} bytes)"
        exit 1
    }
    # shellcheck disable=SC2034 # read by the bench scripts
    mapfile -t APP_PIDS < <(echo "$APP_MASTER"; pgrep -P "$APP_MASTER")
}

b_child_of() { # b_child_of PID: the first child process of PID, waiting up to 5 s for it
    local i c
    for ((i = 0; i < 100; i++)); do
        c=$(pgrep -P "$1" | head -1)
        [[ -n $c ]] && {
            echo "$c"
            return 0
        }
        sleep 0.05
    done
    return 1
}

b_cpu_per() { # b_cpu_per TICKS COUNT: µs of CPU per unit (request, handshake)
    awk -v d="$1" -v hz="$(getconf CLK_TCK)" -v n="$2" \
        'BEGIN { printf "%.3f", (n > 0) ? d / hz * 1e6 / n : 0 }'
}

b_cpu_pct() { # b_cpu_pct TICKS NS: CPU time over wall time, % of one core
    awk -v d="$1" -v hz="$(getconf CLK_TCK)" -v ns="$2" 'BEGIN { printf "%.1f", d / hz / (ns / 1e9) * 100 }'
}

# b_h2load_parse FILE LOG: prints "RPS P50_MS P99_MS DONE ERRORS" from h2load's output and its
# per-request log (--log-file: start µs, status, µs to the end of the response), percentiles by
# rank over the 2xx/3xx responses
b_h2load_parse() {
    local rps ndone err pct
    read -r rps ndone err < <(awk '
        /^finished in/ { gsub(/,/, ""); rps = $4 }
        /^requests:/ { done = $6; err = $10 + $12 + $14 }
        /^status codes:/ { err += $7 + $9 }
        END { if (rps == "" || done == "") exit 1; print rps, done, err }' "$1") || return 1
    pct=$(awk '$2 >= 200 && $2 < 400 { print $3 }' "$2" | sort -n | awk '
        { v[NR] = $1 }
        END {
            if (NR == 0) exit 1
            i50 = int(NR * 0.50 + 0.999999); i99 = int(NR * 0.99 + 0.999999)
            printf "%.3f %.3f", v[i50] / 1000, v[i99] / 1000
        }') || return 1
    echo "$rps $pct $ndone $err"
}

# b_s_time_count FILE: the connections an `openssl s_time` run completed (its "N connections in
# T real seconds" line); fails when the run printed no such line
b_s_time_count() {
    awk '/ connections in .* real seconds/ { n = $1; found = 1 } END { if (!found) exit 1; print n }' "$1"
}

# b_tls_probe HOST:PORT CERT KEY CA: "PROTOCOL CIPHER GROUP" a TLS server negotiates with
# `openssl s_client` presenting CERT/KEY (OpenSSL's default offer: every TLS 1.2/1.3 suite and
# group it has, X25519 first); fails when the handshake does not complete
b_tls_probe() {
    local out
    out=$(timeout 10 openssl s_client -connect "$1" -cert "$2" -key "$3" -CAfile "$4" \
        -verify_return_error </dev/null 2>&1)
    awk '
        /^ *Protocol *:/ { proto = $NF }
        /^ *Cipher *:/ { cipher = $NF }
        /^Server Temp Key:/ { sub(/^Server Temp Key: */, ""); sub(/,.*/, ""); group = $0 }
        END { if (cipher == "" || cipher == "0000" || cipher == "(NONE)") exit 1; print proto, cipher, group }
    ' <<<"$out"
}

# --- the report table every bench prints ---------------------------------------------------
# A bench fills R[target.metric], TARGETS (its targets in order), PEERS (the targets remora is
# compared with) and METRICS, one row each: "key|label|better|printf format|scale", better being
# hi or lo (a result) or - (context, not a result); scale multiplies the stored value.

b_fmt() { # b_fmt FORMAT SCALE VALUE: VALUE × SCALE in FORMAT ("%s": as it is); "n/a" when empty
    if [[ -z ${3:-} ]]; then
        echo "n/a"
    elif [[ $1 == %s ]]; then
        echo "$3"
    else
        awk -v f="$1" -v s="$2" -v v="$3" 'BEGIN { printf f, v * s }'
    fi
}

b_ratio() { # b_ratio A B: A/B as "0.93×"
    awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f×", a / b }'
}

b_best_peer() { # b_best_peer KEY hi|lo: "NAME VALUE" of the best of PEERS on that row, or nothing
    local key=$1 better=$2 t v best="" bestv=""
    for t in "${PEERS[@]}"; do
        v=${R[$t.$key]:-}
        [[ -n $v ]] || continue
        if [[ -z $bestv ]] || awk -v a="$v" -v b="$bestv" -v h="$better" \
            'BEGIN { exit !((h == "hi") ? a > b : a < b) }'; then
            best=$t bestv=$v
        fi
    done
    [[ -n $best ]] && echo "$best $bestv"
}

b_ver() { # b_ver CMD: "name version" of a tool, best effort
    case $1 in
    haproxy) haproxy -v 2>&1 | head -1 | cut -d' ' -f1-3 ;;
    nginx) nginx -v 2>&1 | sed 's/^nginx version: //' ;;
    nghttpx | h2load) "$1" --version 2>&1 | head -1 ;;
    wrk) wrk -v 2>&1 | head -1 | cut -d' ' -f1-2 ;;
    socat) socat -V 2>/dev/null | awk '/socat version/ { print "socat", $3 }' ;;
    openssl) openssl version 2>&1 | cut -d' ' -f1-2 ;;
    mbedtls) awk -F'"' '/define MBEDTLS_VERSION_STRING_FULL/ { print $2 }' \
        /usr/include/mbedtls/version.h 2>/dev/null ;;
    esac
}

b_machine() { # b_machine: "N cores, CPU model, Linux release"
    echo "$(nproc) cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), Linux $(uname -r)"
}

# b_table WHAT: the metrics table, remora against the best of PEERS on each row (by the medians;
# "best peer", "best peer pair": WHAT names them in the header) and against direct; then one
# sentence per result row
b_table() {
    local what=$1 line key label better f s t v bp best bestv cells r_peer r_direct hdr sep
    local pr ratio wins n sentences=()
    hdr="| metric |" sep="|---|"
    for t in $TARGETS; do
        hdr+=" $t |"
        sep+="---:|"
    done
    echo "$hdr remora ÷ $what | remora ÷ direct |"
    echo "$sep---|---|"
    for line in "${METRICS[@]}"; do
        IFS='|' read -r key label better f s <<<"$line"
        cells="| $label |"
        for t in $TARGETS; do cells+=" $(b_fmt "$f" "$s" "${R[$t.$key]:-}") |"; done
        if [[ $better == - ]]; then # context for reading the others, not a result
            echo "$cells — | — |"
            continue
        fi
        r_peer="n/a" r_direct="n/a"
        v=${R[remora.$key]:-}
        bp=$(b_best_peer "$key" "$better")
        read -r best bestv <<<"${bp:-x 0}"
        if ((${#RR[@]})) && [[ -n $bp ]] && pr=$(b_paired "$key" "$better" "$best"); then
            read -r ratio wins n <<<"$pr" # rounds: paired with the best peer's own rounds
            r_peer="$(awk -v r="$ratio" 'BEGIN { printf "%.2f×", r }') ($best; as good in $wins of $n)"
            pr=$(b_paired "$key" "$better" direct) && read -r ratio wins n <<<"$pr" &&
                r_direct=$(awk -v r="$ratio" 'BEGIN { printf "%.2f×", r }')
        else
            [[ -n $v && -n $bp ]] && r_peer="$(b_ratio "$v" "$bestv") ($best)"
            [[ -n $v && -n ${R[direct.$key]:-} ]] && r_direct=$(b_ratio "$v" "${R[direct.$key]}")
        fi
        echo "$cells $r_peer | $r_direct |"
        [[ -n $v ]] && sentences+=("remora ${label%% (*} = $r_peer $what$([[ $r_direct != n/a ]] &&
            echo ", $r_direct direct")")
    done
    B_SENTENCES=("${sentences[@]}")
}

b_sentences() { # the sentences of the last b_table, as a list
    local line
    echo
    for line in "${B_SENTENCES[@]}"; do echo "- $line"; done
}

b_notes() { # NOTES, if any, as a list under "Notes:"
    local line
    ((${#NOTES[@]})) || return 0
    echo
    echo "Notes:"
    for line in "${NOTES[@]}"; do echo "- $line"; done
}

# --- rounds: every target up at once, every measurement taking them in turn ------------------
# This machine's speed drifts by tens of percent over minutes; targets measured one after the
# other, minutes apart, would show that drift as a difference between them. So a bench starts
# every target at once (all idle but the one being measured) and makes each kind of measurement
# for every target in turn, ROUNDS times over, and reports each metric's median over the rounds.
#
# The bench defines: TARGETS, ROUNDS, NOISE_PCT; start_<target> (sets T_PIDS, every process of
# the target, and its other T_* variables, named in B_TARGET_ARRAYS and B_TARGET_SCALARS);
# check_hop <target>; stop_target (stops the target loaded in T_*); measure_<kind> <target>
# (writes M[target.metric]; returns non-zero when it has nothing to measure for that target);
# optionally after_start <target> and before_stop <target> (once per target, into round 1).

declare -A M=()  # M[target.metric]: the measurement in progress
declare -A RR=() # RR[round.target.metric]: every round's measurements
declare -A R=()  # R[target.metric]: the median over the rounds (what the table shows)
declare -A B_TS=() # B_TS[target.variable]: each target's T_* variables while it is up
ALL_PIDS=()      # every process of every target that is up
B_TARGET_ARRAYS=(T_PIDS)
B_TARGET_SCALARS=(T_PORT)

b_target_clear() {
    local v
    for v in "${B_TARGET_ARRAYS[@]}"; do eval "$v=()"; done
    for v in "${B_TARGET_SCALARS[@]}"; do printf -v "$v" '%s' ""; done
}
b_target_save() { # b_target_save TARGET: keep the T_* variables the target's start set
    local v
    for v in "${B_TARGET_ARRAYS[@]}"; do
        local -n arr=$v
        B_TS[$1.$v]="${arr[*]}"
        unset -n arr
    done
    for v in "${B_TARGET_SCALARS[@]}"; do B_TS[$1.$v]=${!v}; done
    ALL_PIDS+=("${T_PIDS[@]}")
}
b_target_load() { # b_target_load TARGET: its T_* variables back
    local v
    for v in "${B_TARGET_ARRAYS[@]}"; do read -ra "$v" <<<"${B_TS[$1.$v]}"; done
    for v in "${B_TARGET_SCALARS[@]}"; do printf -v "$v" '%s' "${B_TS[$1.$v]}"; done
}
b_keep() { # b_keep ROUND: what M holds becomes ROUND's; M is emptied
    local k
    for k in "${!M[@]}"; do RR[$1.$k]=${M[$k]}; done
    M=()
}

# ours: ticks of every process the bench runs (targets, app, our waited-for children)
# (a process that has gone counts as nothing: the bench that lost it says so)
b_ours_ticks() {
    local t
    t=$(b_cpu_ticks "${APP_PIDS[@]}" "${ALL_PIDS[@]}") || t=0
    echo $(($(b_self_ticks) + t))
}
b_noise_begin() { N_NS=$(b_now_ns) N_BUSY=$(b_cpu_busy_all) N_OURS=$(b_ours_ticks); }
b_noise_end() { # % of all cores other processes used since b_noise_begin
    local ns busy ours
    ns=$(b_now_ns) busy=$(b_cpu_busy_all) ours=$(b_ours_ticks)
    awk -v b=$((busy - N_BUSY)) -v o=$((ours - N_OURS)) -v hz="$(getconf CLK_TCK)" \
        -v ns=$((ns - N_NS)) -v n="$(nproc)" \
        'BEGIN { f = (b - o) / (ns / 1e9 * hz * n) * 100; printf "%.1f", f < 0 ? 0 : f }'
}

b_rounds_start() { # starts every target; TARGETS becomes the ones that came up and serve
    local t up=()
    for t in $TARGETS; do
        b_target_clear
        M=()
        if ! "start_$t" || ! check_hop "$t"; then
            b_fail "$t did not start or does not serve the app"
            stop_target
            continue
        fi
        if declare -F after_start >/dev/null; then after_start "$t"; fi
        b_keep 1
        b_target_save "$t"
        up+=("$t")
    done
    TARGETS=${up[*]}
}

# b_rounds_run KIND...: ROUNDS times, each KIND of measurement, target by target. Each round
# starts one target further along the list, so no target always runs right after the same one.
# A run whose other processes used over NOISE_PCT % of the machine is named in NOTES, except for
# the kinds listed in B_NOISE_QUIET.
b_rounds_run() {
    local r kind t n i order=() all
    read -ra all <<<"$TARGETS"
    for ((r = 1; r <= ROUNDS; r++)); do
        order=()
        for ((i = 0; i < ${#all[@]}; i++)); do order+=("${all[(i + r - 1) % ${#all[@]}]}"); done
        for kind in "$@"; do
            for t in "${order[@]}"; do
                b_target_load "$t"
                M=()
                b_log "--- $kind, round $r of $ROUNDS: $t"
                b_noise_begin
                "measure_$kind" "$t" || continue
                n=$(b_noise_end)
                M[$t.noise_$kind]=$n
                [[ " ${B_NOISE_QUIET:-} " == *" $kind "* ]] ||
                    ! awk -v n="$n" -v m="$NOISE_PCT" 'BEGIN { exit !(n > m) }' ||
                    NOTES+=("$kind, round $r, $t: other processes used $n% of the machine's CPU meanwhile")
                b_keep "$r"
            done
        done
    done
}

b_rounds_stop() { # stops every target, after its before_stop
    local t
    for t in $TARGETS; do
        b_target_load "$t"
        if declare -F before_stop >/dev/null; then before_stop "$t"; fi
        b_keep 1
        stop_target
    done
}

b_medians() { # R from RR: each metric's median over the rounds (a text value: the first round's)
    local k key r vals v
    for k in "${!RR[@]}"; do
        key=${k#*.}
        [[ -n ${R[$key]:-} ]] && continue
        vals=()
        for ((r = 1; r <= ROUNDS; r++)); do
            [[ -n ${RR[$r.$key]:-} ]] && vals+=("${RR[$r.$key]}")
        done
        ((${#vals[@]})) || continue # measured in no round (a target that stopped)
        if [[ ${vals[0]} =~ ^-?[0-9.]+$ ]]; then
            R[$key]=$(printf '%s\n' "${vals[@]}" | sort -g | awk '
                { v[NR] = $1 }
                END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
        else
            R[$key]=${vals[0]}
            for v in "${vals[@]}"; do
                [[ $v == "${vals[0]}" ]] || NOTES+=("$key differs between rounds: ${vals[*]}")
            done
        fi
    done
}

# b_rounds_block "KEY|LABEL"...: each round's value of these rows, so the spread behind a median
# shows
b_rounds_block() {
    local row key label t r vals line
    ((ROUNDS > 1)) || return 0
    echo
    echo "Each round (the table gives the medians):"
    for row in "$@"; do
        IFS='|' read -r key label <<<"$row"
        line=""
        for t in $TARGETS; do
            vals=()
            for ((r = 1; r <= ROUNDS; r++)); do
                [[ -n ${RR[$r.$t.$key]:-} ]] && vals+=("$(awk -v v="${RR[$r.$t.$key]}" \
                    'BEGIN { printf (v >= 100 ? "%.0f" : "%.3g"), v }')")
            done
            ((${#vals[@]})) && line+="${line:+; }$t $(
                IFS=/
                echo "${vals[*]}"
            )"
        done
        [[ -n $line ]] && echo "- $label: $line"
    done
}

# b_paired KEY hi|lo OTHER: remora against OTHER (a peer, or direct) round by round, each
# round's values side by side: prints "RATIO WINS N", the median of the N per-round ratios
# (remora ÷ OTHER, same round) and in how many rounds remora was at least as good. A ratio of
# medians would compare values from different rounds; this one only compares a round with
# itself, so the machine's drift between rounds cancels out. OTHER is one target throughout:
# against "the best of the peers in each round" a single noisy value would be compared with the
# least of three, and lose to noise alone. Fails when no round has both.
b_paired() {
    local key=$1 better=$2 other=$3 r rem best ratios=() wins=0 n=0
    for ((r = 1; r <= ${ROUNDS:-1}; r++)); do
        rem=${RR[$r.remora.$key]:-}
        [[ -n $rem ]] || continue
        best=${RR[$r.$other.$key]:-}
        [[ -n $best ]] && awk -v b="$best" 'BEGIN { exit !(b != 0) }' || continue
        ratios+=("$(awk -v a="$rem" -v b="$best" 'BEGIN { printf "%.6f", a / b }')")
        n=$((n + 1))
        awk -v a="$rem" -v b="$best" -v h="$better" 'BEGIN { exit !((h == "hi") ? a >= b : a <= b) }' &&
            wins=$((wins + 1))
    done
    ((n)) || return 1
    printf '%s\n' "${ratios[@]}" | sort -g | awk -v w="$wins" -v n="$n" '
        { v[NR] = $1 }
        END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print m, w, n }'
}

# b_target TEXT KEY hi|lo LIMIT FORMAT: one line of a bench's targets block: whether remora's
# value is within LIMIT × the best peer's (hi: ratio ≥ LIMIT; lo: ratio ≤ LIMIT), judged on the
# paired per-round ratio to that peer when there are rounds, with the medians for context
b_target() {
    local text=$1 key=$2 better=$3 limit=$4 f=$5 v bp best bestv pr ratio wins n line
    v=${R[remora.$key]:-} bp=$(b_best_peer "$key" "$better")
    if [[ -z $v || -z $bp ]]; then
        echo "- $text: not measured"
        return 0
    fi
    read -r best bestv <<<"$bp"
    if ((${#RR[@]})) && pr=$(b_paired "$key" "$better" "$best"); then
        read -r ratio wins n <<<"$pr"
    else
        ratio=$(awk -v a="$v" -v b="$bestv" 'BEGIN { printf "%.6f", a / b }') wins="" n=""
    fi
    if awk -v r="$ratio" -v l="$limit" -v h="$better" 'BEGIN { exit !((h == "hi") ? r >= l : r <= l) }'
    then line="met"; else line="not met"; fi
    echo "- $text: **$line** — $(awk -v r="$ratio" 'BEGIN { printf "%.2f×", r }')$([[ -n $n ]] &&
        echo " (median of the $n rounds' ratios to $best; remora as good in $wins)");" \
        "medians: remora $(b_fmt "$f" 1 "$v"), $best $(b_fmt "$f" 1 "$bestv")"
}

# b_measure_fixed TARGET: h2load paces every one of the WRK_CONNS connections at FIXED_PER_CONN
# requests/s (FIXED_RPS in all) for SECS; p50/p99 from its per-request log, the target's CPU
# (T_PIDS) per request. Needs work, WRK_CONNS, FIXED_RPS, FIXED_PER_CONN, SECS, T_PORT, pin_load.
b_measure_fixed() {
    local t=$1 out=$work/h2load-$1.txt log=$work/h2load-$1.log c0=0 c1=0 n0 n1 parsed rps p50 p99 reqs err
    ((${#T_PIDS[@]})) && c0=$(b_cpu_ticks "${T_PIDS[@]}")
    n0=$(b_now_ns)
    # Connections start 1 ms apart (-r 1 --rate-period 1ms), so their pacing timers are out
    # of phase and requests arrive spread out; started together, every connection would send
    # at the same instant and p99 would measure how fast a hop drains a burst of 50. -n total
    # requests (a fixed duration, -D, cannot be combined with -r). No warm-up phase: the
    # closed-loop run just before warmed the hop up, and every request in the CPU window is
    # counted. h2load appends to an existing --log-file: each run starts a new one, or every
    # round's percentiles would cover all the rounds before it too.
    rm -f "$log"
    pin_load h2load --h1 -t1 -c"$WRK_CONNS" --rps="$FIXED_PER_CONN" -r 1 --rate-period=1ms \
        -n $((FIXED_RPS * SECS)) --log-file="$log" "http://127.0.0.1:$T_PORT/" >"$out" 2>&1
    n1=$(b_now_ns)
    ((${#T_PIDS[@]})) && c1=$(b_cpu_ticks "${T_PIDS[@]}")
    parsed=$(b_h2load_parse "$out" "$log") || {
        b_fail "$t: h2load produced no result: $(tail -c 500 "$out")"
        return
    }
    read -r rps p50 p99 reqs err <<<"$parsed"
    ((err > 0)) && NOTES+=("$t, fixed rate: h2load counted $err failed requests or non-2xx")
    M[$t.fx_rps]=$rps M[$t.fx_p50]=$p50 M[$t.fx_p99]=$p99
    if awk -v r="$rps" -v w="$FIXED_RPS" 'BEGIN { exit !(r < 0.95 * w) }'; then
        NOTES+=("$t, fixed rate: reached only $rps of $FIXED_RPS req/s")
    fi
    if ((${#T_PIDS[@]})); then
        M[$t.fx_cpu_req]=$(b_cpu_per $((c1 - c0)) "$reqs")
        M[$t.fx_cpu_use]=$(b_cpu_pct $((c1 - c0)) $((n1 - n0)))
    fi
}

# --- an equal CPU budget: the proxy under test in a cgroup with a CPU quota --------------------
# On two cores the load side (wrk and the app on one core) is slower than any of the proxies, so
# an unlimited closed loop measures the load side. Capped at the same share of a core, each proxy
# becomes the bottleneck and its requests/s is what it does with that much CPU. cgroup v2
# (cpu.max) or v1 (cpu.cfs_quota_us); the period is 10 ms. Needs root.
B_QUOTA_DIR=""  # the cgroup, once b_quota_init made it
B_QUOTA_ROOT="" # its hierarchy's mount point
B_QUOTA_SKIP="" # why there is none
b_quota_moved=() # "PID ORIGINAL-CGROUP" of the processes b_quota_enter moved

# b_quota_init PCT: the cgroup whose processes share PCT % of one core; 1 and B_QUOTA_SKIP set
# when this machine cannot
b_quota_init() {
    local period=10000 quota=$((10000 * $1 / 100)) name=remora-bench-$$-$RANDOM ok=0
    if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
        B_QUOTA_ROOT=/sys/fs/cgroup
        grep -qw cpu "$B_QUOTA_ROOT/cgroup.controllers" || {
            B_QUOTA_SKIP="cgroup v2 has no cpu controller here"
            return 1
        }
        grep -qw cpu "$B_QUOTA_ROOT/cgroup.subtree_control" ||
            echo +cpu >"$B_QUOTA_ROOT/cgroup.subtree_control" 2>/dev/null
        mkdir "$B_QUOTA_ROOT/$name" 2>/dev/null && B_QUOTA_DIR=$B_QUOTA_ROOT/$name &&
            echo "$quota $period" >"$B_QUOTA_DIR/cpu.max" 2>/dev/null && ok=1
    elif [[ -f /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]]; then
        B_QUOTA_ROOT=/sys/fs/cgroup/cpu
        mkdir "$B_QUOTA_ROOT/$name" 2>/dev/null && B_QUOTA_DIR=$B_QUOTA_ROOT/$name &&
            echo "$period" >"$B_QUOTA_DIR/cpu.cfs_period_us" &&
            echo "$quota" >"$B_QUOTA_DIR/cpu.cfs_quota_us" && ok=1
    else
        B_QUOTA_SKIP="no cgroup cpu controller mounted"
        return 1
    fi
    ((ok)) && return 0
    # shellcheck disable=SC2034 # read by the bench scripts
    B_QUOTA_SKIP="cannot make a cgroup with a CPU quota under $B_QUOTA_ROOT (not root?)"
    b_quota_cleanup
    return 1
}

b_cgroup_of() { # b_cgroup_of PID: its cgroup in the hierarchy of B_QUOTA_ROOT
    if [[ $B_QUOTA_ROOT == /sys/fs/cgroup ]]; then
        awk -F: '$1 == "0" { print $3 }' "/proc/$1/cgroup"
    else
        awk -F: '$2 ~ /(^|,)cpu(,|$)/ { print $3 }' "/proc/$1/cgroup"
    fi
}

b_quota_enter() { # b_quota_enter PID...: the processes (all their threads) into the quota
    local p
    for p in "$@"; do
        b_quota_moved+=("$p $(b_cgroup_of "$p")")
        echo "$p" >"$B_QUOTA_DIR/cgroup.procs" || return 1
    done
}

b_quota_leave() { # every process b_quota_enter moved back where it was
    local e p g
    for e in "${b_quota_moved[@]}"; do
        read -r p g <<<"$e"
        [[ -e /proc/$p ]] && echo "$p" >"$B_QUOTA_ROOT$g/cgroup.procs" 2>/dev/null
    done
    b_quota_moved=()
}

b_quota_cleanup() { # after the processes are stopped: the cgroup removed
    local i
    b_quota_leave
    [[ -n $B_QUOTA_DIR ]] || return 0
    for ((i = 0; i < 50; i++)); do
        rmdir "$B_QUOTA_DIR" 2>/dev/null && break
        sleep 0.1
    done
    [[ -d $B_QUOTA_DIR ]] && b_log "could not remove $B_QUOTA_DIR"
    B_QUOTA_DIR=""
}

# b_quota_throttle: the quota cgroup's throttling so far, "PERIODS THROTTLED THROTTLED_NS": how
# many 10 ms periods had work in them, in how many the quota ran out, and for how long its
# processes waited in all (cpu.stat; cgroup v2 gives the wait in µs, v1 in ns)
b_quota_throttle() {
    [[ -n $B_QUOTA_DIR ]] || return 1
    awk '$1 == "nr_periods" { p = $2 } $1 == "nr_throttled" { t = $2 }
        $1 == "throttled_time" { ns = $2 } $1 == "throttled_usec" { ns = $2 * 1000 }
        END { printf "%d %d %d\n", p, t, ns }' "$B_QUOTA_DIR/cpu.stat"
}

# b_quota_weight N: the quota cgroup's CPU weight against the processes outside it (cgroup v2
# cpu.weight, 1-10000, default 100; v1 cpu.shares, N × 1024 / 100). With the default weight the
# whole cgroup counts as one process of normal priority: on a core where other processes run
# (a build), it gets a fair share that can be well under its quota, and the quota no longer sets
# its rate. A higher weight makes the quota both its ceiling and what it gets.
b_quota_weight() {
    [[ -n $B_QUOTA_DIR ]] || return 1
    if [[ $B_QUOTA_ROOT == /sys/fs/cgroup ]]; then
        echo "$1" >"$B_QUOTA_DIR/cpu.weight"
    else
        echo $(($1 * 1024 / 100)) >"$B_QUOTA_DIR/cpu.shares"
    fi
}

# b_renice N PID...: every thread of the processes to nice value N (setpriority acts on one
# thread; a process's threads are tasks of their own)
b_renice() {
    local n=$1 p t
    shift
    for p in "$@"; do
        for t in "/proc/$p/task/"*; do renice -n "$n" -p "${t##*/}" >/dev/null 2>&1; done
    done
}

# b_thread_ms PID [TID]: CPU time the scheduler charged to PID's threads (all, or TID alone), ms
# with µs precision (se.sum_exec_runtime of /proc/PID/task/*/sched); finer than the clock ticks
# of b_cpu_ticks, which count a thread's 1% of a core over 5 s in 5 ticks
b_thread_ms() {
    local files=("/proc/$1/task/"*/sched)
    [[ -n ${2:-} ]] && files=("/proc/$1/task/$2/sched")
    awk '$1 == "se.sum_exec_runtime" { s += $3 } END { printf "%.3f\n", s }' "${files[@]}" 2>/dev/null
}

# b_noise_tasks_begin / b_noise_tasks_end: as b_noise_begin / b_noise_end, but counting only the
# time charged to processes (user, nice, system) and steal, not irq and softirq. While a process
# is held back by a CPU quota, the receive work for its sockets runs as softirq that no process is
# charged with, and b_noise_end counts it as other processes' CPU (5–25% of the machine in the
# capped HTTP runs); this one leaves it out, so what it reports is other processes' work (and
# the hypervisor's steal).
b_cpu_tasks_all() { awk '$1 == "cpu" { print $2 + $3 + $4 + $9; exit }' /proc/stat; }
b_noise_tasks_begin() { N_NS=$(b_now_ns) N_BUSY=$(b_cpu_tasks_all) N_OURS=$(b_ours_ticks); }
b_noise_tasks_end() { # % of all cores other processes used since b_noise_tasks_begin
    local ns busy ours
    ns=$(b_now_ns) busy=$(b_cpu_tasks_all) ours=$(b_ours_ticks)
    awk -v b=$((busy - N_BUSY)) -v o=$((ours - N_OURS)) -v hz="$(getconf CLK_TCK)" \
        -v ns=$((ns - N_NS)) -v n="$(nproc)" \
        'BEGIN { f = (b - o) / (ns / 1e9 * hz * n) * 100; printf "%.1f", f < 0 ? 0 : f }'
}

# b_median V...: the median of the values (the mean of the middle two for an even count)
b_median() {
    (($#)) || return 1
    printf '%s\n' "$@" | sort -g | awk '
        { v[NR] = $1 }
        END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# --- a bench's own directory and cleanup -----------------------------------------------------
extra_pids=() # processes our children forked (nginx, nghttpx workers): stopped at the end too

b_on_exit() {
    local p
    b_cleanup
    for p in "${extra_pids[@]}"; do kill "$p" 2>/dev/null; done
    b_quota_cleanup
    if [[ -n ${BENCH_KEEP_DIR:-} ]]; then b_log "kept $work"; else rm -rf "$work"; fi
}

# b_setup NAME: the bench's temporary directory in $work (world-readable: nginx workers may run
# as www-data and must read the app's files), removed at exit unless BENCH_KEEP_DIR is set, with
# every process the bench started stopped, also on Ctrl-C or a closed stdout. With $REMORA set,
# the run uses a copy of it ($REMORA_BIN, built $REMORA_BUILT), so a rebuild during the run cannot
# mix two binaries.
b_setup() {
    work=$(mktemp -d "${TMPDIR:-/tmp}/remora-bench-$1.XXXXXX")
    chmod 755 "$work"
    trap b_on_exit EXIT
    trap 'exit 130' INT TERM HUP
    trap 'exec >/dev/null 2>&1; exit 141' PIPE # stdout or stderr is gone: finish quietly
    if [[ -n ${REMORA:-} ]]; then
        # shellcheck disable=SC2034 # read by the bench scripts
        REMORA_BUILT=$(date -u -r "$REMORA" '+%Y-%m-%d %H:%M UTC')
        cp "$REMORA" "$work/remora-under-test"
        REMORA_BIN=$work/remora-under-test
    fi
}

pin_load() { taskset -c "$LOAD_CPU" "$@"; } # the load generator's core

# b_make_pki DIR — the certificates of the mTLS benches under DIR: a root (remoractl), a client
# workload certificate for CLIENT_ID, a server certificate with URI SAN SERVER_ID and DNS SAN
# SERVER_DNS (openssl: both usages), and the PEM bundles HAProxy wants. Needs REMORACTL.
# Non-zero if a step failed.
b_make_pki() {
    local pki=$1 s=$1/server
    "$REMORACTL" certs root --out "$pki/root" >/dev/null &&
        "$REMORACTL" certs issue --ca "$pki/root" --spiffe-id "$CLIENT_ID" --out "$pki/client" \
            >/dev/null || return 1
    mkdir -p "$s"
    openssl ecparam -name prime256v1 -genkey -noout -out "$s/key.pem" 2>/dev/null &&
        openssl req -new -key "$s/key.pem" -subj / -out "$s/req.csr" 2>/dev/null || return 1
    cat >"$s/ext.cnf" <<EOF
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyAgreement
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = critical, URI:$SERVER_ID, DNS:$SERVER_DNS
EOF
    openssl x509 -req -in "$s/req.csr" -CA "$pki/root/root-cert.pem" -CAkey "$pki/root/root-key.pem" \
        -CAcreateserial -days 1 -sha256 -extfile "$s/ext.cnf" -out "$s/cert-chain.pem" 2>/dev/null ||
        return 1
    cp "$pki/root/root-cert.pem" "$s/root-cert.pem"
    # HAProxy wants the certificate and its key in one file.
    cat "$s/cert-chain.pem" "$s/key.pem" >"$s/haproxy.pem"
    cat "$pki/client/cert-chain.pem" "$pki/client/key.pem" >"$pki/client/haproxy.pem"
    chmod -R a+rX "$pki"
}
