#!/usr/bin/env bash
# Story: tcp_proxy and the HTTP router reach upstreams the same way. Both connect from the
# cluster's upstream_bind_config source address (the upstream sees 127.0.0.2); both give up on
# a TLS upstream whose handshake never completes once connect_timeout has passed, counting
# upstream_cx_connect_timeout and upstream_cx_connect_fail and leaving no connection counted
# active (tcp_proxy closes the client, HTTP answers 503); and both speak mutual TLS to a remora
# upstream and resume the TLS session of their cluster and endpoint on their next connection
# (ssl.session_reused). Loopback, needs no root.
# checks: 20
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=test/lib/testlib.sh
source "$root/test/lib/testlib.sh"
t_require_cmd socat curl python3
# shellcheck source=test/lib/loopback.sh
source "$root/test/lib/loopback.sh"
# shellcheck source=test/lib/mtls.sh
source "$root/test/lib/mtls.sh"
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
# peer: says who connected (socat's SOCAT_PEERADDR), as a line and as an HTTP response.
cat >"$work/peer.sh" <<'EOF'
cr=$(printf '\r')
read -r first
case $first in
GET*)
    while IFS= read -r l && [ "${l%"$cr"}" != "" ]; do :; done
    printf 'HTTP/1.1 200 OK\r\nContent-Length: %s\r\nConnection: close\r\n\r\n%s' \
        "${#SOCAT_PEERADDR}" "$SOCAT_PEERADDR" ;;
*) echo "$SOCAT_PEERADDR" ;;
esac
EOF
lb_serve PEER "$work/peer.log" socat TCP-LISTEN:@PEER@,bind=127.0.0.1,reuseaddr,fork \
    SYSTEM:"sh $work/peer.sh" || t_stop "the peer upstream does not listen"
# mute: accepts and never says a word (a TLS handshake with it never completes).
lb_serve MUTE "$work/mute.log" socat -u TCP-LISTEN:@MUTE@,bind=127.0.0.1,reuseaddr,fork \
    OPEN:/dev/null || t_stop "the mute upstream does not listen"
mtls_app APP <<EOF || t_stop "the app listens"
    def do_GET(self):
        if self.path.endswith("/slow"):
            time.sleep(0.5)
        self.reply(b"ok")
EOF

# B: a remora terminating mutual TLS in front of the app, the TLS upstream of A's clusters.
SERVER_ID=spiffe://cluster.local/ns/default/sa/server
{
    "$CTL" certs root --out "$work/root" &&
        "$CTL" certs issue --ca "$work/root" --out "$work/client" \
            --spiffe-id spiffe://cluster.local/ns/default/sa/client &&
        "$CTL" certs issue --ca "$work/root" --spiffe-id "$SERVER_ID" --out "$work/server"
} >"$work/certs.log" 2>&1 || t_stop "remoractl certs: $(tail -n 2 "$work/certs.log")"
mtls_inbound_config "$work/b.yaml" 0 0 "$work/server" "$APP"
lb_remora b "$work/b.yaml" --concurrency 1 || t_stop "B starts: $(cat "$work/b.log")"
B_PORT=${LB_PORT[inbound]}

# --- A: the remora under test ---------------------------------------------------------------
tls_context() { # tls_context — an UpstreamTlsContext with the client's identity, expecting B's
    cat <<EOF
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        common_tls_context:
          tls_certificates:
          - certificate_chain: {filename: $work/client/cert-chain.pem}
            private_key: {filename: $work/client/key.pem}
          validation_context:
            trusted_ca: {filename: $work/root/root-cert.pem}
            match_typed_subject_alt_names:
            - {san_type: URI, matcher: {exact: "$SERVER_ID"}}
EOF
}
cluster() { # cluster NAME PORT [EXTRA_YAML]
    cat <<EOF
  - name: $1
    connect_timeout: 1s
    load_assignment:
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $2}}}
EOF
    [[ -z ${3:-} ]] || printf '%s\n' "$3"
}
BIND=$'    upstream_bind_config:\n      source_address: {address: 127.0.0.2, port_value: 0}'
{
    cat <<EOF
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
static_resources:
  listeners:
EOF
    yaml_tcp_proxy_listener t_bound 0 t_bound
    yaml_tcp_proxy_listener t_mute 0 t_mute
    yaml_tcp_proxy_listener t_tls 0 t_tls
    yaml_http_listener http 0 "/bound h_bound" "/mute h_mute" "/tls h_tls"
    echo "  clusters:"
    cluster t_bound "$PEER" "$BIND"
    cluster h_bound "$PEER" "$BIND"
    cluster t_mute "$MUTE" "$(tls_context)"
    cluster h_mute "$MUTE" "$(tls_context)"
    cluster t_tls "$B_PORT" "$(tls_context)"
    cluster h_tls "$B_PORT" "$(tls_context)"
} >"$work/remora.yaml"

lb_remora remora "$work/remora.yaml" --concurrency 1 --drain-time-s 1 ||
    t_stop "remora starts: $(cat "$work/remora.log")"
RPID=$LB_PID ADMIN=$LB_ADMIN HTTP=${LB_PORT[http]}
T_BOUND=${LB_PORT[t_bound]} T_MUTE=${LB_PORT[t_mute]} T_TLS=${LB_PORT[t_tls]}

line_via() { # line_via PORT — the line the upstream behind a tcp_proxy listener answers with
    local fd line=""
    exec {fd}<>"/dev/tcp/127.0.0.1/$1" || return
    echo hello >&"$fd"
    read -r -t 5 -u "$fd" line
    exec {fd}>&-
    echo "$line"
}
http() { # http PATH — "STATUS BODY" of one request to A's HTTP listener
    curl -s -m 5 -w ' %{http_code}' "http://127.0.0.1:$HTTP$1" | awk '{ print $NF, $1 }'
}

# --- source address -------------------------------------------------------------------------
t_contains tcp_proxy_connects_from_bind_address "$(line_via "$T_BOUND")" 127.0.0.2
t_contains http_connects_from_bind_address "$(http /bound)" "200 127.0.0.2"

# --- a TLS handshake that never completes ---------------------------------------------------
start=$(date +%s%N)
exec {m}<>"/dev/tcp/127.0.0.1/$T_MUTE" || t_stop "connect to t_mute"
if closed_at_once "$m"; then
    t_ok tcp_proxy_handshake_timeout_closes_client
else
    t_fail tcp_proxy_handshake_timeout_closes_client "the connection stayed open"
fi
close_conn "$m"
ms=$((($(date +%s%N) - start) / 1000000))
if ((ms >= 900)); then
    t_ok tcp_proxy_handshake_waited_for_connect_timeout
else
    t_fail tcp_proxy_handshake_waited_for_connect_timeout "closed after ${ms} ms"
fi
check_stat tcp_proxy_connect_timeout_counted "$ADMIN" cluster.t_mute.upstream_cx_connect_timeout 1
check_stat tcp_proxy_connect_fail_counted "$ADMIN" cluster.t_mute.upstream_cx_connect_fail 1
check_stat tcp_proxy_timed_out_connection_counted_out "$ADMIN" \
    cluster.t_mute.upstream_cx_active 0

t_eq http_handshake_timeout_is_503 "$(http /mute | cut -d' ' -f1)" 503
check_stat http_connect_timeout_counted "$ADMIN" cluster.h_mute.upstream_cx_connect_timeout 1
check_stat http_connect_fail_counted "$ADMIN" cluster.h_mute.upstream_cx_connect_fail 1
check_stat http_timed_out_connection_counted_out "$ADMIN" cluster.h_mute.upstream_cx_active 0

# --- mutual TLS and session resumption ------------------------------------------------------
# tcp_proxy: HTTP through the relay to B; each request a new upstream connection.
via_relay() { curl -s -m 5 -w ' %{http_code}' "http://127.0.0.1:$T_TLS/$1"; }
t_eq tcp_proxy_over_tls "$(via_relay first)" "ok 200"
t_eq tcp_proxy_over_tls_again "$(via_relay second)" "ok 200"
check_stat tcp_proxy_tls_handshakes_counted "$ADMIN" cluster.t_tls.ssl.handshake 2
check_stat tcp_proxy_resumes_session "$ADMIN" cluster.t_tls.ssl.session_reused 1
check_stat tcp_proxy_tls_connections_counted_out "$ADMIN" cluster.t_tls.upstream_cx_active 0
# HTTP: the first connection stays pooled; two requests at once need a second, which resumes.
t_eq http_over_tls "$(http /tls)" "200 ok"
slow=()
for _ in 1 2; do
    curl -s -m 5 -o /dev/null "http://127.0.0.1:$HTTP/tls/slow" &
    slow+=($!)
done
wait "${slow[@]}"
check_stat http_tls_handshakes_counted "$ADMIN" cluster.h_tls.ssl.handshake 2
check_stat http_resumes_session "$ADMIN" cluster.h_tls.ssl.session_reused 1

lb_stop "$RPID"
t_eq remora_exits_cleanly "$LB_STATUS" 0

t_summary
