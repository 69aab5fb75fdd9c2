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

b_self_ticks() { # this shell's CPU ticks plus those of every child it has waited for
    local s f
    s=$(<"/proc/$$/stat") # $$: the script itself, even from a $(...) subshell
    s=${s##*) }
    read -r -a f <<<"$s"
    echo $((f[11] + f[12] + f[13] + f[14]))
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
