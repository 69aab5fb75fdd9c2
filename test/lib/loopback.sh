# shellcheck shell=bash
# loopback.sh — helpers for e2e stories that run on 127.0.0.1 without namespaces: free ports,
# background processes stopped on exit, readiness waits, one stat from an admin endpoint (and
# waiting for it), connections held open through a proxy from the shell.
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
