# shellcheck shell=bash
# loopback.sh — helpers for e2e stories that run on 127.0.0.1 without namespaces. Every port is
# bound by the process that uses it: remora listens on port 0 and says where (lb_remora), an app
# that cannot is started on a port picked at random and started again on another when the port
# turns out taken (lb_serve). At exit every process is stopped, each remora's exit status is
# checked (SIGTERM must give 0) and every log is scanned for sanitizer reports; either failure
# fails the story and keeps LB_WORK. Source it after testlib.sh; it sets LB_WORK (a temp dir)
# and an EXIT trap.

LB_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=test/lib/guards.sh
source "$LB_LIB_DIR/guards.sh"
t_require_cmd ss ps curl python3
case ${BUILD:-build} in
/*) LB_BIN=${BUILD:-build} ;;
*) LB_BIN=$(cd "$LB_LIB_DIR/../.." && pwd)/${BUILD:-build} ;;
esac
LB_GRACE_SECONDS=${LB_GRACE_SECONDS:-10}

LB_WORK=$(mktemp -d "${TMPDIR:-/tmp}/remora-e2e.XXXXXX")
LB_PIDS=()             # every background process, stopped at exit
declare -A LB_REMORAS  # pid -> name, for each remora whose exit status is still to be checked
declare -A LB_PORT     # listener name -> the port it bound, of the last lb_remora
LB_FAILED=0            # 1 once a remora did not exit cleanly
# What lb_remora and lb_wait tell the story.
# shellcheck disable=SC2034
LB_PID='' LB_ADMIN='' LB_HEALTH='' LB_STATUS=''

# The story's processes are stopped, apps and clients first (what a remora still has open then
# closes, so its drain ends at once), then each remora with SIGTERM, which must end it with
# status 0 within LB_GRACE_SECONDS.
lb_cleanup() {
    local rc=$? p bad=0 others=()
    for p in "${LB_PIDS[@]}"; do
        [[ -n ${LB_REMORAS[$p]:-} ]] || others+=("$p")
    done
    if ((${#others[@]})); then
        kill "${others[@]}" 2>/dev/null
        t_until 5 _lb_all_gone "${others[@]}" || kill -KILL "${others[@]}" 2>/dev/null
        wait "${others[@]}" 2>/dev/null
    fi
    for p in "${!LB_REMORAS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${!LB_REMORAS[@]}"; do
        lb_wait "$p" || bad=1
    done
    guard_scan_logs "$LB_WORK" || bad=1
    if ((bad || LB_FAILED)); then
        LB_KEEP=1
        echo "loopback: kept logs in $LB_WORK" >&2
        ((rc != 0)) || rc=1
    fi
    [[ -n ${LB_KEEP:-} ]] || rm -rf "$LB_WORK"
    exit "$rc"
}
trap lb_cleanup EXIT

# bg LOG CMD... — starts CMD in the background, stopped at exit; its pid is in LAST_PID.
bg() {
    local log=$1
    shift
    "$@" >"$log" 2>&1 &
    LB_PIDS+=($!)
    LAST_PID=$!
}

# lb_alive PID — true while PID runs; false once it exited, even before it is reaped.
lb_alive() {
    local st
    st=$(ps -o stat= -p "$1" 2>/dev/null) && [[ -n $st && $st != Z* ]]
}

# lb_listening PID PORT... — true when PID itself listens on every PORT of 127.0.0.1 (so not
# some other process that held the port first).
lb_listening() {
    local pid=$1 p
    shift
    for p in "$@"; do
        ss -Hltnp "sport = :$p" 2>/dev/null | grep -q "pid=$pid," || return 1
    done
}

# lb_serve "VAR..." LOG CMD... — an app on ports it binds itself: picks a port for each VAR (below
# the ephemeral range, where no outgoing connection holds one), runs CMD in the background (each
# "@VAR@" in its arguments replaced by that port) and waits until CMD's own process listens on
# all of them. A port already taken makes CMD fail to bind and exit: it is started again on
# other ports, five tries in all. For apps that cannot listen on port 0 and tell which port they
# got (nginx, socat). Sets each VAR and LAST_PID; non-zero if every try failed.
lb_serve() {
    local -a _lb_vars _lb_args _lb_ports
    local _lb_log=$2 _lb_try _lb_v _lb_a _lb_p
    read -r -a _lb_vars <<<"$1"
    shift 2
    for ((_lb_try = 1; _lb_try <= 5; _lb_try++)); do
        _lb_ports=()
        for _lb_v in "${_lb_vars[@]}"; do
            _lb_p=$((20000 + RANDOM % 12000))
            [[ " ${_lb_ports[*]} " != *" $_lb_p "* ]] || _lb_p=$((_lb_p + 1))
            _lb_ports+=("$_lb_p")
            printf -v "$_lb_v" '%s' "$_lb_p"
        done
        _lb_args=()
        for _lb_a in "$@"; do
            for _lb_v in "${_lb_vars[@]}"; do _lb_a=${_lb_a//@$_lb_v@/${!_lb_v}}; done
            _lb_args+=("$_lb_a")
        done
        bg "$_lb_log" "${_lb_args[@]}"
        t_until 10 _lb_up "$LAST_PID" "${_lb_ports[@]}"
        lb_listening "$LAST_PID" "${_lb_ports[@]}" && return 0
        echo "# loopback: $1 on ${_lb_ports[*]} (${_lb_vars[*]}) did not start, a port taken?" \
            "$(tail -n 2 "$_lb_log")"
        kill "$LAST_PID" 2>/dev/null
        wait "$LAST_PID" 2>/dev/null
    done
    return 1
}
_lb_up() { # PID PORT... — listening, or gone
    lb_listening "$@" || ! lb_alive "$1"
}

# lb_write_exec FILE TEXT CMD... — writes TEXT to FILE, then becomes CMD. Lets lb_serve put its
# ports into an app's config file: its @VAR@ replacement reaches every argument, TEXT too.
lb_write_exec() {
    printf '%s' "$2" >"$1" || exit 1
    shift 2
    exec "$@"
}

# lb_remora NAME CONFIG [ARGS...] — runs $LB_BIN/remora --config CONFIG ARGS in the background
# (log: $LB_WORK/NAME.log) and waits up to 10 s until its admin /ready answers 200. The config's
# admin and listeners should ask for port 0: the ports remora bound are then read back from its
# log ("listener 'NAME' on ADDR:PORT", "admin: listening on ADDR:PORT", "health: …"). Sets LB_PID, LB_ADMIN,
# LB_HEALTH (empty without one) and LB_PORT[listener name]; non-zero, with the log's end on
# stderr, if remora exits or is not ready in time. Its exit status is checked when it is
# stopped (lb_stop, lb_wait) or at exit.
lb_remora() {
    local name=$1 config=$2 log end=$((SECONDS + 10))
    shift 2
    log=$LB_WORK/$name.log
    bg "$log" "$LB_BIN/remora" --config "$config" "$@"
    LB_PID=$LAST_PID LB_ADMIN='' LB_HEALTH=''
    LB_REMORAS[$LB_PID]=$name
    LB_PORT=()
    until _lb_remora_ready "$LB_PID" "$log"; do
        if ! lb_alive "$LB_PID" || ((SECONDS > end)); then
            echo "loopback: remora '$name' did not become ready (admin port '$LB_ADMIN'); $log ends:" >&2
            tail -n 20 "$log" >&2
            return 1
        fi
        sleep 0.05
    done
}
_lb_remora_ready() { # PID LOG
    local log=$2 p l
    if [[ -z $LB_ADMIN ]]; then
        # Every port remora bound is in its log: each listener's, then the admin endpoint's.
        LB_ADMIN=$(sed -n 's/.* admin: listening on .*:\([0-9]*\)$/\1/p' "$log" | head -n 1)
        [[ -n $LB_ADMIN ]] || return 1
        LB_PORT=()
        while IFS=' ' read -r l p; do
            LB_PORT[$l]=$p
        done < <(sed -n "s/.* listener '\([^']*\)' on .*:\([0-9]*\).*/\1 \2/p" "$log")
    fi
    [[ $(curl -s -m 1 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$LB_ADMIN/ready") == 200 ]] ||
        return 1
    # The health port (--health-address) starts before the workers, so before /ready says 200.
    # shellcheck disable=SC2034 # LB_HEALTH is read by the stories
    LB_HEALTH=$(sed -n 's/.* health: listening on .*:\([0-9]*\)$/\1/p' "$log" | head -n 1)
}

# lb_wait PID — waits (LB_GRACE_SECONDS at most, then SIGKILL) for a remora that was told to
# stop and sets LB_STATUS to its exit status ("0" when it exited cleanly). Any other status also
# prints a FAIL line about the story and returns non-zero, whether or not the story checks
# LB_STATUS itself. Never call it inside $(...): only this shell can reap.
lb_wait() {
    local pid=$1 name=${LB_REMORAS[$1]:-remora}
    if ! t_until "$LB_GRACE_SECONDS" _lb_all_gone "$pid"; then
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        LB_STATUS="still running ${LB_GRACE_SECONDS}s after SIGTERM"
    else
        wait "$pid" 2>/dev/null
        LB_STATUS=$(guard_status_text $?)
    fi
    unset "LB_REMORAS[$pid]"
    [[ $LB_STATUS == 0 ]] && return 0
    LB_FAILED=1
    guard_fail "remora '$name' (pid $pid): exit status $LB_STATUS; log $LB_WORK/$name.log"
    return 1
}
# _lb_all_gone PID... — none of them runs any more.
_lb_all_gone() {
    local p
    for p in "$@"; do lb_alive "$p" && return 1; done
    return 0
}

# lb_stop PID — SIGTERM, then lb_wait.
lb_stop() {
    kill -TERM "$1" 2>/dev/null
    lb_wait "$1"
}

# lb_dead_port VAR — a port where nothing listens, held for the whole story by a socket bound
# to it without listening: a connection there is refused, and no other process can take it.
# Sets VAR.
lb_dead_port() {
    local file=$LB_WORK/dead-port.$RANDOM
    bg "$file.log" python3 -c "
import os, signal, socket
s = socket.socket()
s.bind(('127.0.0.1', 0))
open('$file.tmp', 'w').write(str(s.getsockname()[1]))
os.rename('$file.tmp', '$file')
signal.pause()"
    t_until 10 test -s "$file" || return 1
    printf -v "$1" '%s' "$(cat "$file")"
}

# stat ADMIN_PORT NAME — one stat's value.
stat() {
    curl -s "http://127.0.0.1:$1/stats" | awk -v n="$2:" '$1 == n { print $2 }'
}

# wait_stat ADMIN_PORT NAME WANT — until the stat reads WANT (5 s at most).
wait_stat() {
    local _
    for _ in $(seq 1 100); do
        [[ $(stat "$1" "$2") == "$3" ]] && return 0
        sleep 0.05
    done
    return 1
}

# check_stat NAME ADMIN_PORT STAT WANT — one check: the stat reads WANT (waited for, 5 s at most).
check_stat() {
    if wait_stat "$2" "$3" "$4"; then
        t_ok "$1"
    else
        t_fail "$1" "$3 is '$(stat "$2" "$3")', want '$4'"
    fi
}

# Connections held from the shell (exec {fd}<>/dev/tcp/127.0.0.1/PORT) through a proxy to an
# echo upstream. A background process started while one is open inherits it and keeps it open:
# start those first.

# relays FD — true when a line written on FD comes back (the connection was taken).
relays() {
    local line
    { printf 'ping %s\n' "$1" >&"$1"; } 2>/dev/null || return 1
    read -r -t 5 -u "$1" line && [[ $line == "ping $1" ]]
}

# closed_at_once FD — true when FD reads end-of-file (or a reset) well before 5 s: the proxy
# closed it without relaying. Nothing is written first, so a plain close is seen as EOF.
closed_at_once() {
    local line rc
    read -r -t 5 -u "$1" line 2>/dev/null
    rc=$?
    ((rc > 0 && rc <= 128))
}

# close_conn FD
close_conn() {
    local fd=$1
    exec {fd}>&-
}

# check_relays NAME FD... — one check: every FD relays.
check_relays() {
    local name=$1 fd
    shift
    for fd in "$@"; do
        relays "$fd" || {
            t_fail "$name" "connection $fd was not relayed"
            return
        }
    done
    t_ok "$name"
}

# check_closed NAME FD — one check: the proxy closed FD at once; FD is closed here too.
check_closed() {
    if closed_at_once "$2"; then
        t_ok "$1"
    else
        t_fail "$1" "the connection stayed open"
    fi
    close_conn "$2"
}

# Config pieces (YAML), written to stdout.

# yaml_tcp_proxy_listener NAME PORT CLUSTER — an item of static_resources.listeners: NAME on
# 127.0.0.1:PORT, a tcp_proxy (stat prefix NAME) to CLUSTER.
yaml_tcp_proxy_listener() {
    cat <<EOF
  - name: $1
    address: {socket_address: {address: 127.0.0.1, port_value: $2}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: $1
          cluster: $3
EOF
}

# yaml_http_listener NAME PORT "PREFIX CLUSTER [TIMEOUT]"... — an item of
# static_resources.listeners: NAME on 127.0.0.1:PORT, an HTTP connection manager (stat prefix
# NAME) routing each path PREFIX to its CLUSTER (with the route TIMEOUT when given).
yaml_http_listener() {
    local name=$1 port=$2 route prefix cluster timeout
    shift 2
    cat <<EOF
  - name: $name
    address: {socket_address: {address: 127.0.0.1, port_value: $port}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: $name
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
EOF
    for route in "$@"; do
        read -r prefix cluster timeout <<<"$route"
        printf '              - match: {prefix: %s}\n' "$prefix"
        printf '                route: {cluster: %s%s}\n' "$cluster" "${timeout:+, timeout: $timeout}"
    done
    cat <<'EOF'
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
EOF
}
