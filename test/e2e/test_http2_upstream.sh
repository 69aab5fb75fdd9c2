#!/usr/bin/env bash
# Story: an HTTP/1.1 client (curl) → remora → an h2c app (test/e2e/http2_app/server.js, Node's
# http2) through a cluster configured as Envoy does it (HttpProtocolOptions with
# explicit_http_config.http2_protocol_options). Checks: GET and HEAD come back whole, with
# :authority taken from Host and the fields of one hop dropped (TE: trailers kept); a 10 MB
# POST and a chunked upload reach the app intact (sha256); response trailers reach the HTTP/1.1
# client as a chunked trailer; 50 concurrent requests share one upstream connection; an app
# allowing 2 concurrent streams gets more connections; the app's RST_STREAM gives the client
# 503 UC and counts http2.rx_reset; a client that gives up resets only its stream
# (http2.tx_reset) and the connection goes on; an upgrade is refused (503) on an HTTP/2 cluster;
# a GOAWAY lets the requests in flight finish and the next request opens a new connection; a
# client reading a 100 MB response slowly does not make remora's memory grow (HTTP/2 flow
# control holds the app back); over TLS the cluster offers ALPN h2 and speaks HTTP/2 with
# :scheme https, a TLS peer that does not select h2 fails the request (503), and a TLS HTTP/2
# cluster without ALPN h2 is refused at load.
# checks: 27
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=test/lib/testlib.sh
source "$root/test/lib/testlib.sh"
t_require_cmd node curl sha256sum jq
# shellcheck source=test/lib/loopback.sh
source "$root/test/lib/loopback.sh"
REMORA=$LB_BIN/remora
CTL=$LB_BIN/remoractl
work=$LB_WORK

apps_fail() {
    t_fail apps_start "$1"
    t_summary
}
APP_ID=spiffe://cluster.local/ns/default/sa/app
{
    "$CTL" certs root --out "$work/root" &&
        "$CTL" certs issue --ca "$work/root" --spiffe-id "$APP_ID" --out "$work/app"
} >"$work/certs.log" 2>&1 || apps_fail "remoractl certs: $(tail -n 2 "$work/certs.log")"
lb_serve H2 "$work/app.log" node "$here/http2_app/server.js" @H2@ || apps_fail "http2 app"
lb_serve H2LIM "$work/applim.log" node "$here/http2_app/server.js" @H2LIM@ 2 ||
    apps_fail "http2 app with 2 streams"
lb_serve H2TLS "$work/apptls.log" node "$here/http2_app/server.js" @H2TLS@ 0 "$work/app" ||
    apps_fail "http2 app over TLS"
lb_serve H1TLS "$work/apph1.log" node "$here/http2_app/server.js" @H1TLS@ 0 "$work/app" h1 ||
    apps_fail "HTTP/1.1-only TLS app"

tls_context() { # tls_context ALPN — an UpstreamTlsContext trusting the test root, offering ALPN
    cat <<EOF
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        common_tls_context:
          alpn_protocols: [$1]
          validation_context:
            trusted_ca: {filename: $work/root/root-cert.pem}
            match_typed_subject_alt_names:
            - {san_type: URI, matcher: {exact: "$APP_ID"}}
EOF
}
cluster() { # cluster NAME PORT [EXTRA_YAML] — an HTTP/2 cluster
    printf '  - name: %s\n' "$1"
    [[ -z ${3:-} ]] || printf '%s\n' "$3"
    cat <<EOF
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
    load_assignment:
      cluster_name: $1
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $2}}}
EOF
}
{
    cat <<EOF
admin:
  address: {socket_address: {address: 127.0.0.1, port_value: 0}}
static_resources:
  listeners:
  - name: http
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          upgrade_configs: [{upgrade_type: websocket}]
          route_config:
            name: local
            virtual_hosts:
            - name: lim
              domains: ["lim"]
              routes:
              - match: {prefix: /}
                route: {cluster: h2lim}
            - name: tls
              domains: ["tls"]
              routes:
              - match: {prefix: /}
                route: {cluster: h2tls}
            - name: tlsh1
              domains: ["tlsh1"]
              routes:
              - match: {prefix: /}
                route: {cluster: h1tls}
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: /}
                route: {cluster: h2app, timeout: 30s}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
EOF
    cluster h2app "$H2"
    cluster h2lim "$H2LIM"
    cluster h2tls "$H2TLS" "$(tls_context h2)"
    cluster h1tls "$H1TLS" "$(tls_context h2)"
} >"$work/remora.yaml"

# Under ASan the quarantine is kept small, so the high-water mark shows what remora holds.
if ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=1 \
    lb_remora remora "$work/remora.yaml" --concurrency 1; then t_ok remora_ready; else
    t_fail remora_ready "$(tr '\n' ' ' <"$work/remora.log")"
    t_summary
fi
REMORA_PID=$LB_PID ADMIN=$LB_ADMIN
U=http://127.0.0.1:${LB_PORT[http]}
mkdir -p "$work/codes"
code() { curl -s -o /dev/null -w '%{http_code}\n' "$@"; }

# --- heads -------------------------------------------------------------------------------------
got=$(curl -s -H 'Host: svc.example' -H 'Connection: x-hop' -H 'X-Hop: 1' -H 'Keep-Alive: 5' \
    -H 'TE: trailers' -H 'X-Kept: yes' "$U/hello")
t_eq get_answered "$(head -n 1 <<<"$got")" "hello GET /hello"
seen=$(sed -n 2p <<<"$got")
t_eq authority_from_host "$(jq -r '[.[":authority"], .[":scheme"], .host // "none"] | join(" ")' <<<"$seen")" \
    "svc.example http none"
t_eq hop_fields_dropped_te_trailers_kept \
    "$(jq -r '[.["x-hop"] // "-", .["keep-alive"] // "-", .connection // "-", .te, .["x-kept"]] | join(" ")' <<<"$seen")" \
    "- - - trailers yes"
hdr=$(curl -s -I "$U/hello")
t_eq head_has_length_no_body "$(grep -ci '^content-length: [1-9]' <<<"$hdr")|$(curl -s -I "$U/hello" -o /dev/null -w '%{size_download}')" "1|0"

# --- bodies ------------------------------------------------------------------------------------
head -c 10000000 /dev/urandom >"$work/upload.bin"
want="$(sha256sum "$work/upload.bin" | cut -d' ' -f1) 10000000"
t_eq post_10mb_intact "$(curl -s --data-binary @"$work/upload.bin" "$U/sum")" "$want"
t_eq chunked_upload_intact \
    "$(curl -s -H 'Transfer-Encoding: chunked' --data-binary @"$work/upload.bin" "$U/sum")" "$want"
raw=$(curl -s --raw "$U/trailers" | tr -d '\r')
t_contains trailers_as_chunked_trailer "$raw" $'0\nx-checksum: abc123'

# --- multiplexing ------------------------------------------------------------------------------
pids=()
for i in $(seq 1 50); do
    code "$U/slow?ms=300" >"$work/codes/c$i" &
    pids+=($!)
done
wait "${pids[@]}"
t_eq fifty_concurrent_answered "$(cat "$work"/codes/c* | sort | uniq -c | tr -s ' ')" " 50 200"
t_eq one_upstream_connection "$(stat "$ADMIN" cluster.h2app.upstream_cx_total)" 1
t_eq counted_as_http2 "$(stat "$ADMIN" cluster.h2app.upstream_cx_http2_total)" 1
code -H 'Host: lim' "$U/hello" >/dev/null # the app's SETTINGS are known from here on
pids=()
for i in $(seq 1 6); do
    code -H 'Host: lim' "$U/slow?ms=2000" >"$work/codes/l$i" &
    pids+=($!)
done
wait "${pids[@]}"
t_eq limited_all_answered "$(cat "$work"/codes/l* | sort | uniq -c | tr -s ' ')" " 6 200"
n=$(stat "$ADMIN" cluster.h2lim.upstream_cx_total)
((n >= 2)) && t_ok max_concurrent_streams_opens_more || t_fail max_concurrent_streams_opens_more "$n connections"

# --- resets ------------------------------------------------------------------------------------
t_contains server_reset_503 "$(curl -s -w ' %{http_code}' "$U/reset")" "connection termination 503"
t_eq rx_reset_counted "$(stat "$ADMIN" cluster.h2app.http2.rx_reset)" 1
code --max-time 0.5 "$U/slow?ms=3000" >/dev/null
check_stat client_abandon_resets_stream "$ADMIN" cluster.h2app.http2.tx_reset 1
t_eq connection_survives_resets "$(code "$U/hello")|$(stat "$ADMIN" cluster.h2app.upstream_cx_total)" "200|1"
t_eq upgrade_refused "$(code -H 'Connection: Upgrade' -H 'Upgrade: websocket' "$U/hello")" 503

# --- GOAWAY ------------------------------------------------------------------------------------
rq_before=$(stat "$ADMIN" cluster.h2app.upstream_rq_total)
pids=()
for i in 1 2 3; do
    code "$U/slow?ms=1000" >"$work/codes/g$i" &
    pids+=($!)
done
# The three are in flight (their streams opened before the one that asks for the GOAWAY).
in_flight() { (($(stat "$ADMIN" cluster.h2app.upstream_rq_total) >= rq_before + 3)); }
t_until 5 in_flight
t_eq goaway_answered "$(curl -s "$U/goaway")" goaway
wait "${pids[@]}"
t_eq inflight_finish_after_goaway "$(cat "$work"/codes/g* | tr '\n' ' ')" "200 200 200 "
t_eq goaway_counted "$(stat "$ADMIN" cluster.h2app.upstream_cx_close_notify)" 1
t_eq new_connection_after_goaway "$(code "$U/hello")|$(stat "$ADMIN" cluster.h2app.upstream_cx_total)" "200|2"

# --- a slow client: flow control, not memory ---------------------------------------------------
hwm() { awk '$1 == "VmHWM:" { print $2 }' "/proc/$REMORA_PID/status"; }
before=$(hwm)
size=$(curl -s --limit-rate 40M "$U/big?mb=100" | wc -c)
after=$(hwm)
grew=$((${after:-999999999} - ${before:-0}))
t_eq slow_client_100mb_whole "$size" $((100 << 20))
[[ -n $after ]] && ((grew < 64 * 1024)) && t_ok slow_client_memory_bounded ||
    t_fail slow_client_memory_bounded "VmHWM grew by ${grew} kB"

# --- TLS: ALPN h2 -------------------------------------------------------------------------------
got=$(curl -s -H 'Host: tls' "$U/hello")
t_eq tls_alpn_h2_request "$(head -n 1 <<<"$got")|$(sed -n 2p <<<"$got" | jq -r '.[":scheme"]')" \
    "hello GET /hello|https"
t_eq tls_peer_without_h2_fails "$(code -H 'Host: tlsh1' "$U/hello")" 503
{
    printf 'static_resources:\n  clusters:\n'
    cluster tlsh2 1 "$(tls_context http/1.1)"
} >"$work/tls.yaml"
out=$("$REMORA" --config "$work/tls.yaml" --validate 2>&1)
t_contains tls_without_alpn_h2_refused "$?|$out" 'alpn_protocols must offer "h2"'
t_summary
