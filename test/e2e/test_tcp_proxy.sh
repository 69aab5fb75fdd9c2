#!/usr/bin/env bash
# Story: remora on loopback relays TCP to a static cluster intact and both ways, honours
# half-close, backpressure, connect failure and idle timeout, serves its admin endpoint, and
# drains on SIGTERM. Needs no root: everything listens on 127.0.0.1, remora on ports it picks.
# checks: 43
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=test/lib/testlib.sh
source "$root/test/lib/testlib.sh"
t_require_cmd socat curl jq sha256sum
# shellcheck source=test/lib/loopback.sh
source "$root/test/lib/loopback.sh"
REMORA=$LB_BIN/remora
work=$LB_WORK

# The upstreams, and a port where nothing listens. The sink is a slow reader: it accepts,
# sleeps (the stall under test), then drains; its backlog of unread bytes is the test.
if ! { lb_serve ECHO "$work/echo.log" socat -t 10 \
    TCP-LISTEN:@ECHO@,bind=127.0.0.1,reuseaddr,fork,backlog=256 EXEC:cat &&
    lb_serve COUNT "$work/count.log" socat -t 10 \
        TCP-LISTEN:@COUNT@,bind=127.0.0.1,reuseaddr,fork,backlog=256 SYSTEM:'wc -c' &&
    lb_serve SINK "$work/sink.log" socat -b 65536 \
        TCP-LISTEN:@SINK@,bind=127.0.0.1,reuseaddr,fork,backlog=256 \
        SYSTEM:'sleep 4; cat >/dev/null' &&
    lb_dead_port DEAD; }; then
    t_fail upstreams_start "socat did not listen"
    t_summary
fi

listener() { # listener NAME CLUSTER [IDLE] — on a port remora picks
    cat <<EOF
  - name: $1
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: $1
          cluster: $2
          idle_timeout: ${3:-3600s}
EOF
}
cluster() { # cluster NAME PORT
    cat <<EOF
  - name: $1
    type: STATIC
    connect_timeout: 3s
    load_assignment:
      cluster_name: $1
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $2}}}
EOF
}
{
    cat <<EOF
node: {id: loopback.test, cluster: test}
admin:
  address: {socket_address: {address: 127.0.0.1, port_value: 0}}
static_resources:
  listeners:
EOF
    listener echo echo
    listener count count
    listener sink sink
    listener dead dead
    listener idle echo 1s
    listener one one
    echo "  clusters:"
    cluster echo "$ECHO"
    cluster count "$COUNT"
    cluster sink "$SINK"
    cluster dead "$DEAD"
    cluster one "$ECHO"
    echo "    circuit_breakers: {thresholds: [{max_connections: 1}]}"
} >"$work/remora.yaml"

# --- config validation ---------------------------------------------------------------------
out=$("$REMORA" --config "$work/remora.yaml" --validate 2>&1)
t_eq validate_accepts_good_config "$?" 0
sed "s/connect_timeout: 3s/connect_timeot: 3s/" "$work/remora.yaml" >"$work/bad.yaml"
out=$("$REMORA" --config "$work/bad.yaml" --validate 2>&1)
rc=$?
if [[ $rc -ne 0 && $out == *"bad.yaml:"*"connect_timeot"* ]]; then
    t_ok validate_rejects_unknown_field_naming_it
else
    t_fail validate_rejects_unknown_field_naming_it "rc=$rc out=$out"
fi
line=$(grep -n connect_timeot "$work/bad.yaml" | head -1 | cut -d: -f1)
t_contains validate_error_names_the_line "$out" "bad.yaml:$line:"

# --- start ---------------------------------------------------------------------------------
if lb_remora remora "$work/remora.yaml" --concurrency 2 --drain-time-s 10 \
    --health-address 127.0.0.1:0; then
    t_ok remora_becomes_ready
else
    t_fail remora_becomes_ready "$(tr '\n' ' ' <"$work/remora.log")"
    t_summary
fi
REMORA_PID=$LB_PID ADMIN=$LB_ADMIN HEALTH=$LB_HEALTH
P_ECHO=${LB_PORT[echo]} P_COUNT=${LB_PORT[count]} P_SINK=${LB_PORT[sink]}
P_DEAD=${LB_PORT[dead]} P_IDLE=${LB_PORT[idle]} P_ONE=${LB_PORT[one]}

# --- data integrity: 64 MiB there and back, checked by hash --------------------------------
head -c $((64 << 20)) /dev/urandom >"$work/big.in"
socat -t 60 -T 60 - TCP:127.0.0.1:"$P_ECHO" <"$work/big.in" >"$work/big.out"
t_eq large_transfer_returns_intact "$(sha256sum <"$work/big.out")" "$(sha256sum <"$work/big.in")"
rx=$(stat "$ADMIN" cluster.echo.upstream_cx_rx_bytes_total)
tx=$(stat "$ADMIN" cluster.echo.upstream_cx_tx_bytes_total)
t_eq upstream_bytes_counted_both_ways "$rx/$tx" "$((64 << 20))/$((64 << 20))"

# --- half-close: the upstream sees our EOF and its answer after it still arrives -----------
got=$(printf 'twelve bytes' | socat -t 10 - TCP:127.0.0.1:"$P_COUNT" | tr -d ' ')
t_eq half_close_reaches_upstream_and_reply_returns "$got" 12

# --- many connections in parallel -------------------------------------------------------------
ppids=()
for i in $(seq 1 20); do
    (printf 'conn %s\n' "$i" | socat -t 5 - TCP:127.0.0.1:"$P_ECHO" >"$work/par.$i") &
    ppids+=($!)
done
for p in "${ppids[@]}"; do wait "$p"; done
wait_all_ok=1
for i in $(seq 1 20); do
    [[ $(cat "$work/par.$i") == "conn $i" ]] || { wait_all_ok=0; echo "# par.$i: $(cat "$work/par.$i")"; }
done
t_eq parallel_connections_each_get_their_own_bytes "$wait_all_ok" 1

# --- connect failure: refused upstream gives a closed connection and a counter --------------
start=$(date +%s%N)
out=$(printf 'x' | timeout 5 socat -t 3 - TCP:127.0.0.1:"$P_DEAD" 2>&1)
rc=$?
ms=$((($(date +%s%N) - start) / 1000000))
if [[ $rc -ne 124 && $ms -lt 3000 ]]; then
    t_ok dead_upstream_closes_downstream_without_hang
else
    t_fail dead_upstream_closes_downstream_without_hang "rc=$rc after ${ms}ms"
fi
t_eq dead_upstream_counts_connect_fail "$(stat "$ADMIN" cluster.dead.upstream_cx_connect_fail)" 1

# --- idle timeout ----------------------------------------------------------------------------
start=$(date +%s%N)
timeout 8 socat -u TCP:127.0.0.1:"$P_IDLE" - >/dev/null 2>&1
ms=$((($(date +%s%N) - start) / 1000000))
if ((ms >= 900 && ms < 4000)); then
    t_ok idle_connection_closed_after_idle_timeout
else
    t_fail idle_connection_closed_after_idle_timeout "closed after ${ms}ms, want ~1000"
fi
t_eq idle_timeout_counted "$(stat "$ADMIN" tcp.idle.idle_timeout)" 1

# --- backpressure: a slow reader does not make remora buffer the sender's bytes ------------
# unsent PORT — the bytes queued unsent on the established socket connected to PORT.
unsent() { ss -Htn state established "( dport = :$1 )" | awk '{ print $2; exit }'; }
# stalled — the pipe is full end to end: remora's connection to the sink holds 1 MiB unsent (the
# sink does not read), and so does the sender's connection to remora (remora stopped reading).
stalled() { (($(unsent "$SINK") + 0 >= 1 << 20 && $(unsent "$P_SINK") + 0 >= 1 << 20)); }
(head -c $((256 << 20)) /dev/zero | timeout 20 socat -u - TCP:127.0.0.1:"$P_SINK") &
sender=$!
if t_until 3 stalled; then
    rss_kb=$(awk '/VmRSS/ { print $2 }' "/proc/$REMORA_PID/status")
    if ((rss_kb < 40 * 1024)); then
        t_ok slow_reader_pauses_sender_and_bounds_memory
    else
        t_fail slow_reader_pauses_sender_and_bounds_memory "remora RSS ${rss_kb} KiB while upstream stalls"
    fi
else
    t_fail slow_reader_pauses_sender_and_bounds_memory \
        "no stall: unsent to the sink '$(unsent "$SINK")', to remora '$(unsent "$P_SINK")'"
fi
wait "$sender"
t_eq slow_reader_eventually_gets_everything \
    "$(stat "$ADMIN" cluster.sink.upstream_cx_tx_bytes_total)" $((256 << 20))

# --- circuit breaking: a connection over max_connections is closed at once ---------------------
coproc ONE { socat -t 10 - TCP:127.0.0.1:"$P_ONE"; }
one_pid=$ONE_PID
echo first >&"${ONE[1]}"
read -r -t 5 reply <&"${ONE[0]}"
t_eq max_connections_first_connection_works "$reply" first
got=$(printf 'second\n' | timeout 5 socat -t 2 - TCP:127.0.0.1:"$P_ONE" 2>/dev/null)
t_eq max_connections_second_connection_closed "$got" ""
t_eq max_connections_overflow_counted "$(stat "$ADMIN" cluster.one.upstream_cx_overflow)" 1
exec {ONE[1]}>&-
wait "$one_pid" 2>/dev/null

# --- admin endpoint --------------------------------------------------------------------------
code=$(curl -s -o "$work/stats.txt" -w '%{http_code}' "http://127.0.0.1:$ADMIN/stats")
t_eq admin_stats_answers "$code" 200
t_contains admin_stats_has_listener_counter "$(cat "$work/stats.txt")" \
    "listener.echo.downstream_cx_total: "
# 1 large transfer + 20 parallel on this listener; the idle test used another listener.
t_eq admin_stats_counts_downstream_total "$(stat "$ADMIN" listener.echo.downstream_cx_total)" 21
t_eq admin_stats_active_back_to_zero "$(stat "$ADMIN" listener.echo.downstream_cx_active)" 0
n=$(curl -s "http://127.0.0.1:$ADMIN/stats?format=json" | jq '[.stats[] | select(.name == "cluster.echo.upstream_cx_total")][0].value')
t_eq admin_stats_json_is_json "$n" 22
prom=$(curl -s "http://127.0.0.1:$ADMIN/stats/prometheus")
lbl='[a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*"'
bad=$(printf '%s\n' "$prom" | grep -Ev "^(# TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|histogram)|[a-zA-Z_:][a-zA-Z0-9_:]*(\{$lbl(,$lbl)*\})? (-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?|NaN|\+Inf))\$" | head -3)
t_eq admin_prometheus_lines_are_valid_exposition "$bad" ""
t_contains admin_prometheus_has_tagged_cluster_counter "$prom" \
    'envoy_cluster_upstream_cx_total{envoy_cluster_name="echo"} 22'
types=$(printf '%s\n' "$prom" | grep -c '^# TYPE envoy_cluster_upstream_cx_total ')
t_eq admin_prometheus_one_type_line_per_family "$types" 1
t_contains admin_clusters_lists_endpoints "$(curl -s "http://127.0.0.1:$ADMIN/clusters")" \
    "echo::127.0.0.1:$ECHO::health_flags::healthy"
# Every listener with the address it accepts on: the port bound for the configured 0.
got=$(curl -s "http://127.0.0.1:$ADMIN/listeners" | sort | tr '\n' ' ')
t_eq admin_listeners_lists_every_listener_where_it_accepts "$got" \
    "count::127.0.0.1:$P_COUNT dead::127.0.0.1:$P_DEAD echo::127.0.0.1:$P_ECHO idle::127.0.0.1:$P_IDLE one::127.0.0.1:$P_ONE sink::127.0.0.1:$P_SINK "
t_eq listener_manager_counts_the_static_listeners \
    "$(stat "$ADMIN" listener_manager.listener_added) $(stat "$ADMIN" listener_manager.total_listeners_active)" \
    "6 6"
dump=$(curl -s "http://127.0.0.1:$ADMIN/config_dump")
t_eq admin_config_dump_has_cluster \
    "$(printf '%s' "$dump" | jq -r '.configs[] | select(."@type" | endswith("ClustersConfigDump")) | .static_clusters[0].cluster.name')" echo
t_eq admin_config_dump_expands_typed_config \
    "$(printf '%s' "$dump" | jq -r '.configs[0].bootstrap.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.cluster')" echo
t_eq admin_server_info_is_live \
    "$(curl -s "http://127.0.0.1:$ADMIN/server_info" | jq -r .state)" LIVE
t_eq admin_unknown_path_404 \
    "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ADMIN/nope")" 404
t_eq health_port_ready "$(curl -s -w ' %{http_code}' "http://127.0.0.1:$HEALTH/healthz/ready")" \
    "LIVE
 200"
t_eq health_port_serves_nothing_else \
    "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HEALTH/stats")" 404
t_eq admin_quit_needs_post \
    "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ADMIN/quitquitquit")" 405

# --- SIGTERM drains: no new connections, the open one finishes, then exit 0 ----------------
coproc LONG { socat -t 10 - TCP:127.0.0.1:"$P_ECHO"; }
long_pid=$LONG_PID # bash unsets LONG_PID once the coprocess ends
echo before >&"${LONG[1]}"
read -r -t 5 reply <&"${LONG[0]}"
t_eq drain_setup_connection_open "$reply" before
kill -TERM "$REMORA_PID"
ready_is() { [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ADMIN/ready") == "$1" ]]; }
t_until 5 ready_is 503
t_eq drain_ready_turns_503 \
    "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ADMIN/ready")" 503
t_eq drain_health_port_turns_503 \
    "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HEALTH/healthz/ready")" 503
if printf 'x' | timeout 3 socat -t 1 - TCP:127.0.0.1:"$P_ECHO" 2>/dev/null | grep -q x; then
    t_fail drain_refuses_new_connections "a new connection was relayed while draining"
else
    t_ok drain_refuses_new_connections
fi
echo during >&"${LONG[1]}"
read -r -t 5 reply <&"${LONG[0]}"
t_eq drain_open_connection_keeps_working "$reply" during
lb_alive "$REMORA_PID" && t_ok drain_waits_for_open_connection ||
    t_fail drain_waits_for_open_connection "exited with a connection open"
exec {LONG[1]}>&-
wait "$long_pid" 2>/dev/null
lb_wait "$REMORA_PID"
t_eq drain_exits_zero_once_connections_end "$LB_STATUS" 0

# --- /quitquitquit ---------------------------------------------------------------------------
lb_remora remora2 "$work/remora.yaml" --concurrency 1
curl -s -X POST "http://127.0.0.1:$LB_ADMIN/quitquitquit" >/dev/null
lb_wait "$LB_PID"
t_eq quitquitquit_exits_zero "$LB_STATUS" 0

t_summary
