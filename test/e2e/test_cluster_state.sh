#!/usr/bin/env bash
# Story: a cluster's runtime state outlives the snapshot. A certificate rotation builds and
# publishes a new snapshot while connections are open; the circuit breakers still count those
# connections: a tcp_proxy cluster with circuit_breakers max_connections 2 holding two relayed
# connections refuses a third after the swap as before it (upstream_cx_overflow), and an HTTP
# cluster with max_requests 1 holding a request in flight answers a second request 503 UO after
# the swap too (upstream_rq_pending_overflow). Connections of the old snapshot that close give
# their places back to the new one, so exactly two fit again. The round-robin position survives
# the swap: a one-worker proxy that sent its last connection to one endpoint sends the next to
# the other, not back to the first. Loopback, needs no root.
# checks: 21
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

# --- upstreams ------------------------------------------------------------------------------
lb_serve ECHO "$work/echo.log" socat TCP-LISTEN:@ECHO@,bind=127.0.0.1,reuseaddr,fork,backlog=64 \
    EXEC:cat || t_stop "the echo upstream does not listen"
# hold: takes HTTP requests and never answers (a request stays in flight until remora lets go).
lb_serve HOLD "$work/hold.log" socat -u TCP-LISTEN:@HOLD@,bind=127.0.0.1,reuseaddr,fork \
    OPEN:/dev/null || t_stop "the hold upstream does not listen"
# id A / id B: say who they are and close.
lb_serve ID_A "$work/id_a.log" socat TCP-LISTEN:@ID_A@,bind=127.0.0.1,reuseaddr,fork \
    SYSTEM:"echo A" || t_stop "upstream A does not listen"
lb_serve ID_B "$work/id_b.log" socat TCP-LISTEN:@ID_B@,bind=127.0.0.1,reuseaddr,fork \
    SYSTEM:"echo B" || t_stop "upstream B does not listen"

# Trust bundles for a TLS cluster nobody uses: replacing the file makes the certificate watch
# build and publish a new snapshot of the same config.
"$CTL" certs root --out "$work/ca1" >"$work/certs.log" 2>&1 || t_stop "remoractl certs root"
"$CTL" certs root --out "$work/ca2" >>"$work/certs.log" 2>&1 || t_stop "remoractl certs root"

# --- helpers ------------------------------------------------------------------------------
unused_tls_cluster() { # unused_tls_cluster TRUST_FILE
    cat <<EOF
  - name: unused-tls
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        common_tls_context:
          validation_context: {trusted_ca: {filename: $1}}
    load_assignment:
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $ECHO}}}
EOF
}

# rotate NAME ADMIN LOG TRUST — replaces the trust bundle and waits for the new snapshot.
rotate() {
    cp "$work/ca2/root-cert.pem" "$4"
    if wait_stat "$2" server.cert_rotation_ok 1; then
        t_ok "$1"
    else
        t_fail "$1" "no rotation: $(tail -n 3 "$3" | tr '\n' ' ')"
    fi
}
# http_status PATH — the status of one request to the HTTP listener (000: none within 3 s).
http_status() {
    curl -s -o /dev/null -m 3 -w '%{http_code}' "http://127.0.0.1:$HTTP$1"
}

# --- circuit breakers across a snapshot swap -------------------------------------------------
mkdir -p "$work/trust" && cp "$work/ca1/root-cert.pem" "$work/trust/root-cert.pem"
{
    cat <<EOF
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
static_resources:
  listeners:
EOF
    yaml_tcp_proxy_listener capped 0 echo
    yaml_http_listener http 0 "/ hold 60s"
    cat <<EOF
  clusters:
  - name: echo
    connect_timeout: 2s
    circuit_breakers:
      thresholds:
      - max_connections: 2
    load_assignment:
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $ECHO}}}
  - name: hold
    connect_timeout: 2s
    circuit_breakers:
      thresholds:
      - max_requests: 1
    load_assignment:
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $HOLD}}}
EOF
    unused_tls_cluster "$work/trust/root-cert.pem"
} >"$work/breakers.yaml"

lb_remora breakers "$work/breakers.yaml" --concurrency 2 --cert-check-interval 200ms \
    --drain-time-s 1 || t_stop "remora starts: $(cat "$work/breakers.log")"
BREAKERS_PID=$LB_PID ADMIN=$LB_ADMIN CAPPED=${LB_PORT[capped]} HTTP=${LB_PORT[http]}

# The request in flight first: a process started later would inherit the connections.
bg "$work/held.out" curl -s -o /dev/null -m 60 -w '%{http_code}' "http://127.0.0.1:$HTTP/held"
HELD_PID=$LAST_PID
check_stat max_requests_first_request_in_flight "$ADMIN" cluster.hold.upstream_rq_total 1
t_eq max_requests_second_request_refused "$(http_status /second)" 503
check_stat max_requests_overflow_counted "$ADMIN" cluster.hold.upstream_rq_pending_overflow 1

exec {c1}<>"/dev/tcp/127.0.0.1/$CAPPED" || t_stop "connect to the capped listener"
exec {c2}<>"/dev/tcp/127.0.0.1/$CAPPED" || t_stop "connect to the capped listener"
check_relays max_connections_two_connections_relay "$c1" "$c2"
exec {c3}<>"/dev/tcp/127.0.0.1/$CAPPED" || t_stop "connect a third time"
check_closed max_connections_third_connection_closed "$c3"
check_stat max_connections_overflow_counted "$ADMIN" cluster.echo.upstream_cx_overflow 1

rotate swap_publishes_new_snapshot "$ADMIN" "$work/breakers.log" "$work/trust/root-cert.pem"

exec {c4}<>"/dev/tcp/127.0.0.1/$CAPPED" || t_stop "connect after the swap"
check_closed max_connections_still_full_after_swap "$c4"
check_stat max_connections_overflow_counted_after_swap "$ADMIN" \
    cluster.echo.upstream_cx_overflow 2
t_eq max_requests_still_full_after_swap "$(http_status /after)" 503
check_stat max_requests_overflow_counted_after_swap "$ADMIN" \
    cluster.hold.upstream_rq_pending_overflow 2
check_relays connections_of_old_snapshot_still_relay "$c1" "$c2"

# The old snapshot's connections close: their places are free in the new snapshot's count.
close_conn "$c1"
close_conn "$c2"
check_stat old_connections_counted_out "$ADMIN" cluster.echo.upstream_cx_active 0
exec {c5}<>"/dev/tcp/127.0.0.1/$CAPPED" || t_stop "connect again"
exec {c6}<>"/dev/tcp/127.0.0.1/$CAPPED" || t_stop "connect again"
check_relays max_connections_places_given_back "$c5" "$c6"
exec {c7}<>"/dev/tcp/127.0.0.1/$CAPPED" || t_stop "connect a third time again"
check_closed max_connections_exactly_two_fit_again "$c7"
close_conn "$c5"
close_conn "$c6"

kill "$HELD_PID" 2>/dev/null
wait "$HELD_PID" 2>/dev/null
lb_stop "$BREAKERS_PID"
t_eq breakers_remora_exits_cleanly "$LB_STATUS" 0

# --- round robin across a snapshot swap -------------------------------------------------------
mkdir -p "$work/trust2" && cp "$work/ca1/root-cert.pem" "$work/trust2/root-cert.pem"
{
    cat <<EOF
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
static_resources:
  listeners:
EOF
    yaml_tcp_proxy_listener pair 0 pair
    cat <<EOF
  clusters:
  - name: pair
    connect_timeout: 2s
    load_assignment:
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $ID_A}}}
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $ID_B}}}
EOF
    unused_tls_cluster "$work/trust2/root-cert.pem"
} >"$work/rr.yaml"
lb_remora rr "$work/rr.yaml" --concurrency 1 --cert-check-interval 200ms --drain-time-s 1 ||
    t_stop "remora (one worker) starts: $(cat "$work/rr.log")"
RR_PID=$LB_PID R_ADMIN=$LB_ADMIN PAIR=${LB_PORT[pair]}

who() { # who — the name of the endpoint a new connection through the pair listener reached
    local fd line=""
    exec {fd}<>"/dev/tcp/127.0.0.1/$PAIR" || return
    read -r -t 5 -u "$fd" line
    exec {fd}>&-
    echo "$line"
}
first=$(who)
second=$(who)
if [[ $first$second == AB || $first$second == BA ]]; then
    t_ok round_robin_alternates
else
    t_fail round_robin_alternates "got '$first' then '$second'"
fi
third=$(who) # the first endpoint's turn again; the next is the other's
rotate rr_swap_publishes_new_snapshot "$R_ADMIN" "$work/rr.log" "$work/trust2/root-cert.pem"
t_eq round_robin_position_survives_swap "$(who)" "$second"
t_eq round_robin_went_on_before_swap "$third" "$first"

lb_stop "$RR_PID"
t_eq rr_remora_exits_cleanly "$LB_STATUS" 0

t_summary
