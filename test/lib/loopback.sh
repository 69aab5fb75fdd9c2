# shellcheck shell=bash
# loopback.sh — helpers for e2e stories that run on 127.0.0.1 without namespaces: free ports,
# background processes stopped on exit, readiness waits, one stat from an admin endpoint.
# Source it after testlib.sh; it sets LB_WORK (a temp dir) and an EXIT trap.

LB_WORK=$(mktemp -d "${TMPDIR:-/tmp}/remora-e2e.XXXXXX")
LB_PIDS=()
lb_cleanup() {
    local p
    for p in "${LB_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${LB_PIDS[@]}"; do wait "$p" 2>/dev/null; done
    [[ -n ${LB_KEEP:-} ]] || rm -rf "$LB_WORK"
}
trap lb_cleanup EXIT

# A loopback port nobody listens on, below the ephemeral range (32768+) so no outgoing
# connection can be holding it.
free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 12000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
}

# bg LOG CMD... — starts CMD in the background, stopped at exit; its pid is in LAST_PID.
bg() {
    local log=$1
    shift
    "$@" >"$log" 2>&1 &
    LB_PIDS+=($!)
    LAST_PID=$!
}

wait_port() {
    local i
    for i in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

# wait_ready ADMIN_PORT — until remora's /ready answers 200 (10 s at most).
wait_ready() {
    local i
    for i in $(seq 1 200); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/ready") == 200 ]] &&
            return 0
        sleep 0.05
    done
    return 1
}

# stat ADMIN_PORT NAME — one stat's value.
stat() {
    curl -s "http://127.0.0.1:$1/stats" | awk -v n="$2:" '$1 == n { print $2 }'
}
