#!/usr/bin/env bash
# Story: Envoy's runtime connection limits on loopback. A listener whose layered_runtime sets
# envoy.resource_limits.listener.<name>.connection_limit to 2 (a later layer overriding an
# earlier 5) relays two connections and closes a third at once, counting it in
# listener.<name>.downstream_cx_overflow; once the two close, a new one is taken again. The
# count survives a new snapshot (a certificate rotation rebuilds one), an unnamed listener is
# limited under the name made from its address, and overload.global_downstream_max_connections
# caps every listener together but neither the admin endpoint nor a listener with
# ignore_global_conn_limit. Keys without effect are warned about. Needs no root.
# checks: 30
set -u
trap '' PIPE # a write to a connection the proxy closed fails instead of ending the script
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=test/lib/testlib.sh
source "$root/test/lib/testlib.sh"
t_require_cmd socat curl
# shellcheck source=test/lib/loopback.sh
source "$root/test/lib/loopback.sh"
BUILD=${BUILD:-build}
case $BUILD in
/*) bin=$BUILD ;;
*) bin=$root/$BUILD ;;
esac
REMORA=$bin/remora
CTL=$bin/remoractl
work=$LB_WORK

for b in "$REMORA" "$CTL"; do [[ -x $b ]] || t_stop "no $b (build it first)"; done

lb_serve ECHO "$work/echo.log" socat TCP-LISTEN:@ECHO@,bind=127.0.0.1,reuseaddr,fork,backlog=64 \
    EXEC:cat || t_stop "the echo upstream does not listen"

# A trust bundle for a TLS cluster nobody uses: replacing the file makes the certificate watch
# build and publish a new snapshot, which must not forget the connections already open.
"$CTL" certs root --out "$work/ca1" >"$work/certs.log" 2>&1 || t_stop "remoractl certs root"
"$CTL" certs root --out "$work/ca2" >>"$work/certs.log" 2>&1 || t_stop "remoractl certs root"
mkdir -p "$work/trust" && cp "$work/ca1/root-cert.pem" "$work/trust/root-cert.pem"

# --- helpers ------------------------------------------------------------------------------
listener() { # listener NAME|"" PORT [EXTRA] — a tcp_proxy to the echo cluster
    [[ -n $1 ]] && echo "  - name: $1" || echo "  -"
    cat <<EOF
    address: {socket_address: {address: 127.0.0.1, port_value: $2}}
    ${3:-}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: echo
          cluster: echo
EOF
}
echo_cluster() {
    cat <<EOF
  - name: echo
    connect_timeout: 2s
    load_assignment:
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $ECHO}}}
EOF
}

# check_counted_out NAME ADMIN LISTENER — one check: the listener has no connection open.
check_counted_out() {
    if wait_stat "$2" "listener.$3.downstream_cx_active" 0; then
        t_ok "$1"
    else
        t_fail "$1" "$(stat "$2" "listener.$3.downstream_cx_active") still open"
    fi
}

# --- the per-listener limit -------------------------------------------------------------------
# Every port is 0: remora binds them and says which (lb_remora). The unnamed listener's name
# comes from its configured address.
ANON=127.0.0.1_0
{
    cat <<EOF
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
static_resources:
  listeners:
EOF
    listener limited 0
    listener "" 0
    echo "  clusters:"
    echo_cluster
    cat <<EOF
  - name: unused-tls
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        common_tls_context:
          validation_context: {trusted_ca: {filename: $work/trust/root-cert.pem}}
    load_assignment:
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $ECHO}}}
layered_runtime:
  layers:
  - name: base
    static_layer:
      envoy:
        resource_limits:
          listener:
            limited: {connection_limit: 5}
      envoy.reloadable_features.example_flag: true
  - name: override
    static_layer:
      envoy.resource_limits.listener.limited.connection_limit: 2
      envoy.resource_limits.listener.$ANON.connection_limit: 1
  - name: admin
    admin_layer: {}
EOF
} >"$work/limit.yaml"

out=$("$REMORA" --config "$work/limit.yaml" --validate 2>&1)
t_eq validate_accepts_layered_runtime "$?" 0
t_contains validate_warns_about_key_without_effect "$out" \
    "layered_runtime: 1 key with no effect"
t_contains validate_warning_names_the_key "$out" "envoy.reloadable_features.example_flag"

lb_remora limit "$work/limit.yaml" --concurrency 2 --cert-check-interval 200ms \
    --drain-time-s 1 || t_stop "remora starts: $(cat "$work/limit.log")"
LIMIT_PID=$LB_PID ADMIN=$LB_ADMIN P_LIM=${LB_PORT[limited]} P_ANON=${LB_PORT[$ANON]}
t_eq startup_warns_once_about_keys_without_effect \
    "$(grep -c 'key with no effect' "$work/limit.log")" 1

exec {c1}<>"/dev/tcp/127.0.0.1/$P_LIM" || t_stop "connect to the limited listener"
exec {c2}<>"/dev/tcp/127.0.0.1/$P_LIM" || t_stop "connect to the limited listener"
check_relays limit_two_connections_relay "$c1" "$c2"
exec {c3}<>"/dev/tcp/127.0.0.1/$P_LIM" || t_stop "connect a third time"
check_closed limit_third_connection_closed_at_once "$c3"
t_eq limit_overflow_counted "$(stat "$ADMIN" listener.limited.downstream_cx_overflow)" 1
t_eq limit_overflow_not_a_downstream_connection \
    "$(stat "$ADMIN" listener.limited.downstream_cx_total)" 2
t_eq limit_two_connections_counted_active \
    "$(stat "$ADMIN" listener.limited.downstream_cx_active)" 2

# A new snapshot while the two are open: the limit still counts them.
cp "$work/ca2/root-cert.pem" "$work/trust/root-cert.pem"
if wait_stat "$ADMIN" server.cert_rotation_ok 1; then
    t_ok rotation_publishes_new_snapshot
else
    t_fail rotation_publishes_new_snapshot "$(tail -n 3 "$work/limit.log" | tr '\n' ' ')"
fi
exec {c4}<>"/dev/tcp/127.0.0.1/$P_LIM" || t_stop "connect after the rotation"
check_closed limit_counts_survive_new_snapshot "$c4"
t_eq limit_overflow_counted_after_rotation \
    "$(stat "$ADMIN" listener.limited.downstream_cx_overflow)" 2
check_relays limit_open_connection_survives_rotation "$c1"

close_conn "$c1"
close_conn "$c2"
check_counted_out limit_closed_connections_counted_out "$ADMIN" limited
exec {c5}<>"/dev/tcp/127.0.0.1/$P_LIM" || t_stop "connect again"
exec {c6}<>"/dev/tcp/127.0.0.1/$P_LIM" || t_stop "connect again"
check_relays limit_frees_places_when_connections_close "$c5" "$c6"
close_conn "$c5"
close_conn "$c6"

# The unnamed listener: named after its address, and limited under that name.
t_contains unnamed_listener_named_after_address "$(curl -s "http://127.0.0.1:$ADMIN/listeners")" \
    "$ANON::127.0.0.1:"
exec {a1}<>"/dev/tcp/127.0.0.1/$P_ANON" || t_stop "connect to the unnamed listener"
check_relays unnamed_listener_relays "$a1"
exec {a2}<>"/dev/tcp/127.0.0.1/$P_ANON" || t_stop "connect to the unnamed listener again"
check_closed unnamed_listener_limit_by_generated_name "$a2"
close_conn "$a1"
t_eq unnamed_listener_overflow_counted "$(stat "$ADMIN" "listener.$ANON.downstream_cx_overflow")" 1

lb_stop "$LIMIT_PID"
t_eq limit_remora_exits_cleanly "$LB_STATUS" 0

# --- the global limit -------------------------------------------------------------------------
{
    cat <<EOF
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
static_resources:
  listeners:
EOF
    listener a 0
    listener b 0
    listener free 0 "ignore_global_conn_limit: true"
    echo "  clusters:"
    echo_cluster
    cat <<EOF
layered_runtime:
  layers:
  - name: limits
    static_layer:
      overload: {global_downstream_max_connections: 2}
EOF
} >"$work/global.yaml"
lb_remora global "$work/global.yaml" --concurrency 2 --drain-time-s 1 ||
    t_stop "remora with a global limit starts: $(cat "$work/global.log")"
GLOBAL_PID=$LB_PID G_ADMIN=$LB_ADMIN P_A=${LB_PORT[a]} P_B=${LB_PORT[b]} P_FREE=${LB_PORT[free]}
t_eq global_limit_key_is_used "$(grep -c 'key with no effect' "$work/global.log")" 0

exec {g1}<>"/dev/tcp/127.0.0.1/$P_A" || t_stop "connect to a and b"
exec {g2}<>"/dev/tcp/127.0.0.1/$P_B" || t_stop "connect to a and b"
check_relays global_two_connections_over_two_listeners_relay "$g1" "$g2"
exec {g3}<>"/dev/tcp/127.0.0.1/$P_A" || t_stop "connect a third time"
check_closed global_third_connection_closed_at_once "$g3"
t_eq global_overflow_counted_on_its_listener \
    "$(stat "$G_ADMIN" listener.a.downstream_global_cx_overflow)" 1
t_eq global_overflow_is_not_a_listener_overflow \
    "$(stat "$G_ADMIN" listener.a.downstream_cx_overflow)" 0
t_eq global_admin_endpoint_not_counted \
    "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$G_ADMIN/ready")" 200
exec {f1}<>"/dev/tcp/127.0.0.1/$P_FREE" || t_stop "connect to free"
check_relays global_limit_ignored_by_ignore_global_conn_limit "$f1"
close_conn "$f1"

close_conn "$g2"
check_counted_out global_closed_connection_counted_out "$G_ADMIN" b
exec {g4}<>"/dev/tcp/127.0.0.1/$P_A" || t_stop "connect after one closed"
check_relays global_frees_a_place_when_a_connection_closes "$g4"
close_conn "$g1"
close_conn "$g4"

lb_stop "$GLOBAL_PID"
t_eq global_remora_exits_cleanly "$LB_STATUS" 0

t_summary
