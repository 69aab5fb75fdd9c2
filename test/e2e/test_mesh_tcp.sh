#!/usr/bin/env bash
# Story: in a simulated cluster, a client pod connects to a service VIP; its sidecar captures
# the connection, routes it by original destination to one of the service's endpoint pods,
# whose inbound sidecar hands it to the app. Bytes arrive intact, load spreads, the sidecars
# never recapture their own connections, unmatched ports pass through, a dead endpoint fails
# fast and is counted, and SIGTERM drains an open connection.
# checks: 20
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=test/lib/testlib.sh
source "$root/test/lib/testlib.sh"
t_require_root
t_require_cmd socat curl jq sha256sum setpriv
# shellcheck source=test/lib/simcluster.sh
source "$root/test/lib/simcluster.sh"
# shellcheck source=test/lib/meshconfig.sh
source "$root/test/lib/meshconfig.sh"

sim_init || exit 1
sim_pod client 198.18.0.2
sim_pod ep1 198.18.0.3
sim_pod ep2 198.18.0.4
sim_pod bare 198.18.0.6 # no sidecar, nothing listening: a dead endpoint

SVC=outbound\|80\|\|svc-a.default.svc.cluster.local
DEAD=outbound\|80\|\|dead.default.svc.cluster.local
mesh_config "$SIM_DIR/sidecar.yaml" \
    "svc-a 198.19.0.10 80 198.18.0.3:8080,198.18.0.4:8080" \
    "dead 198.19.0.20 80 198.18.0.6:8080"

for ep in ep1 ep2; do
    sim_bg "$ep" "$SIM_DIR/$ep-app.log" socat -t 10 TCP-LISTEN:8080,fork,reuseaddr,backlog=256 \
        SYSTEM:"echo $ep; exec cat" >/dev/null
done
sim_bg ep1 "$SIM_DIR/ep1-seven.log" socat TCP-LISTEN:7000,fork,reuseaddr,backlog=256 SYSTEM:'echo seven' \
    >/dev/null
for pod in client ep1 ep2; do
    sim_capture "$pod" || { t_fail "capture_$pod" "remoractl iptables apply failed"; t_summary; }
    sim_sidecar "$pod" "$SIM_DIR/sidecar.yaml" --concurrency 2 --drain-time-s 10 ||
        { t_fail "sidecar_$pod" "did not become ready"; t_summary; }
done
t_ok sidecars_ready_in_three_pods

stat() { # stat POD NAME
    sim_admin "$1" /stats | awk -v n="$2:" '$1 == n { print $2 }'
}

# --- pod to service VIP: bytes arrive and return intact ------------------------------------
got=$(printf 'hello\n' | sim_exec client socat -t 5 - TCP:198.19.0.10:80)
case $got in
$'ep1\nhello' | $'ep2\nhello') t_ok vip_connection_reaches_an_endpoint_app ;;
*) t_fail vip_connection_reaches_an_endpoint_app "got '$got'" ;;
esac

head -c $((64 << 20)) /dev/urandom >"$SIM_DIR/big.in"
sim_exec client socat -t 60 -T 60 - TCP:198.19.0.10:80 <"$SIM_DIR/big.in" |
    tail -c +5 >"$SIM_DIR/big.out"
t_eq large_transfer_through_two_sidecars_intact "$(sha256sum <"$SIM_DIR/big.out")" \
    "$(sha256sum <"$SIM_DIR/big.in")"
rm -f "$SIM_DIR/big.in" "$SIM_DIR/big.out"

# --- connections spread over both endpoints -------------------------------------------------
n1=0 n2=0
for i in $(seq 1 20); do
    who=$(printf 'x\n' | sim_exec client socat -t 5 - TCP:198.19.0.10:80 | sed -n 1p)
    [[ $who == ep1 ]] && n1=$((n1 + 1))
    [[ $who == ep2 ]] && n2=$((n2 + 1))
done
if ((n1 > 0 && n2 > 0 && n1 + n2 == 20)); then
    t_ok connections_spread_over_two_endpoints
else
    t_fail connections_spread_over_two_endpoints "ep1=$n1 ep2=$n2 of 20"
fi

# --- the sidecars' own connections are not recaptured --------------------------------------
# 22 app connections so far (1 + 1 + 20): the client sidecar must have accepted exactly 22;
# a recaptured upstream connection would show up as more (or loop forever).
t_eq outbound_sidecar_saw_each_app_connection_once \
    "$(stat client listener.virtualOutbound.downstream_cx_total)" 22
t_eq outbound_cluster_made_one_upstream_per_connection \
    "$(stat client "cluster.$SVC.upstream_cx_total")" 22
in1=$(stat ep1 listener.virtualInbound.downstream_cx_total)
in2=$(stat ep2 listener.virtualInbound.downstream_cx_total)
t_eq inbound_sidecars_saw_each_connection_once "$((in1 + in2))" 22
t_eq inbound_sidecar_not_recaptured_by_outbound "$(stat ep1 listener.virtualOutbound.downstream_cx_total)" 0
t_eq inbound_passthrough_reached_app "$(stat ep1 cluster.InboundPassthroughClusterIpv4.upstream_cx_connect_fail)" 0

# --- a port with no chain passes through to the original destination ---------------------
got=$(sim_exec client socat -t 5 - TCP:198.18.0.3:7000 </dev/null)
t_eq unmatched_port_passes_through_to_original_destination "$got" seven
t_eq passthrough_counted "$(stat client cluster.PassthroughCluster.upstream_cx_total)" 1

# --- a dead endpoint: fast reset/close and a connect_fail count, no hang -------------------
start=$(date +%s%N)
out=$(printf 'x' | sim_exec client timeout 5 socat -t 3 - TCP:198.19.0.20:80 2>/dev/null)
rc=$?
ms=$((($(date +%s%N) - start) / 1000000))
if [[ $rc -ne 124 && $ms -lt 3000 && -z $out ]]; then
    t_ok dead_endpoint_gives_closed_connection_without_hang
else
    t_fail dead_endpoint_gives_closed_connection_without_hang "rc=$rc ${ms}ms out=$out"
fi
t_eq dead_endpoint_counts_connect_fail "$(stat client "cluster.$DEAD.upstream_cx_connect_fail")" 1

# --- a connection made straight to the capture port is refused, not looped ---------------
out=$(printf 'x' | sim_exec client timeout 5 socat -t 2 - TCP:127.0.0.1:15001 2>/dev/null)
t_eq direct_connection_to_capture_port_refused "$out|$(stat client listener.virtualOutbound.downstream_cx_loop)" "|1"

# --- both sidecars' stats show the traffic --------------------------------------------------
rx=$(stat client "cluster.$SVC.upstream_cx_rx_bytes_total")
if ((rx > 64 << 20)); then t_ok outbound_stats_show_bytes; else
    t_fail outbound_stats_show_bytes "rx=$rx"
fi
prom=$(sim_admin ep1 /stats/prometheus)
t_contains inbound_prometheus_shows_listener \
    "$prom" 'envoy_listener_downstream_cx_total{envoy_listener_address="virtualInbound"}'

# --- SIGTERM drains an open connection before exit ----------------------------------------
coproc LONG { sim_exec client socat -t 10 - TCP:198.19.0.10:80; }
long_pid=$LONG_PID # bash unsets LONG_PID once the coprocess ends
read -r -t 5 who <&"${LONG[0]}"
pid=$(cat "$SIM_DIR/client-remora.pid")
kill -TERM "$pid"
t_until 5 grep -q 'draining: listeners closed' "$SIM_DIR/client-remora.log"
echo during-drain >&"${LONG[1]}"
read -r -t 5 reply <&"${LONG[0]}"
t_eq drain_keeps_open_connection_working "$reply" during-drain
sim_alive "$pid" && t_ok drain_waits_for_open_connection ||
    t_fail drain_waits_for_open_connection "sidecar exited with a connection open"
exec {LONG[1]}>&-
wait "$long_pid" 2>/dev/null
t_until 5 test -s "$SIM_DIR/client-remora.status"
t_eq drain_exits_zero_after_connection_closes \
    "$(cat "$SIM_DIR/client-remora.status" 2>/dev/null || echo running)" 0
t_contains drain_logged "$(cat "$SIM_DIR/client-remora.log")" "drained: no open connections"

t_summary
