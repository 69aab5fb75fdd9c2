#!/usr/bin/env bash
# bench/http2.sh: the HTTP/2 and gRPC benchmark, side by side.
#
# Four parts, each run in rounds (every target up at once, the targets measured in turn, each
# metric's median over BENCH_ROUNDS rounds; bench/lib.sh: rounds). Every proxy runs ONE worker
# thread; proxies on the proxy core (a pair shares it), h2load or wrk and the apps on the load
# core.
#
#   hop    h2load (h2c, -c10 -m10) -> proxy -> HTTP/1.1 nginx app (1 KiB body): remora,
#          HAProxy, nghttpx. Closed loop: rps, p50, p99, proxy CPU per request; and the same
#          with the proxy held to BENCH_PROXY_QUOTA (50) % of its core by a cgroup CPU quota
#   pair   h2load (h2c) -> proxy A -> mutual TLS, HTTP/2 (ALPN h2) -> proxy B -> HTTP/1.1 app,
#          a pair of each; the same rows (the quota shared by both proxies of a pair)
#   grpc   gRPC unary calls (h2load posting one framed protobuf message with content-type
#          application/grpc and te: trailers) through a pair to a Node http2 server answering
#          one fixed gRPC message and grpc-status 0, HTTP/2 on every hop; "direct" is h2load
#          straight at the server
#   h1mesh many short app connections (wrk -c50 with Connection: close) through a remora pair
#          with mutual TLS: HTTP/2 between the sidecars (h2) against HTTP/1.1 between them
#          (h1, today's mTLS pair); rps, p50, p99, CPU per request of both, and the TLS
#          connections A opened to B (A's cluster upstream_cx_total from /stats)
#
# It measures and reports; it never fails on a number. Exit status is non-zero only when
# something could not run. Writes the tables to stdout and to $BUILD/bench/http2.md. See
# bench/README.md.
# The start_*, check_* and measure_* functions are called by name, which shellcheck cannot follow.
# shellcheck disable=SC2317
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

BUILD=${BUILD:-build}
REMORA=${REMORA:-$root/$BUILD/remora}
REMORACTL=${REMORACTL:-$root/$BUILD/remoractl}
SECS=${BENCH_SECONDS:-4} # per measurement; the rounds repeat it
ROUNDS=${BENCH_ROUNDS:-3}
H2_CONNS=${BENCH_H2_CONNS:-10}     # h2load connections...
H2_STREAMS=${BENCH_H2_STREAMS:-10} # ...and concurrent streams on each
WRK_CONNS=${BENCH_WRK_CONNS:-50}   # the h1mesh part's wrk connections (each request a new one)
QUOTA_PCT=${BENCH_PROXY_QUOTA:-50} # the capped runs hold the proxy (a pair: both) to this % of a core; 0 skips
NOISE_PCT=${BENCH_NOISE_PCT:-5}
PROXY_CPU=${BENCH_PROXY_CPU:-0} # every proxy (both of a pair) runs here
LOAD_CPU=${BENCH_LOAD_CPU:-1}   # h2load, wrk and the apps share this one
PARTS=${BENCH_PARTS:-hop pair grpc h1mesh}
OUT_DIR=$root/$BUILD/bench
OUT=$OUT_DIR/http2.md

SUITE=ECDHE-ECDSA-CHACHA20-POLY1305 # between A and B for every pair, as bench/mtls.sh
GROUP=X25519
CLIENT_ID=spiffe://cluster.local/ns/bench/sa/client
SERVER_ID=spiffe://cluster.local/ns/bench/sa/server
SERVER_DNS=server.bench.local

for p in $PARTS; do
    case $p in
    hop | pair | grpc | h1mesh) ;;
    *)
        b_log "unknown part: $p (have: hop pair grpc h1mesh)"
        exit 1
        ;;
    esac
done
b_need "nghttp2-client nghttp2-proxy haproxy nginx wrk openssl nodejs util-linux iproute2 curl" \
    h2load nghttpx haproxy nginx wrk openssl node taskset ss awk curl sort
for f in "$REMORA" "$REMORACTL"; do
    [[ -x $f ]] || {
        b_log "no $f: run make first"
        exit 1
    }
done
if (($(nproc) < 2)); then
    b_log "only one core: the proxies and the load generator will share it"
    PROXY_CPU=0 LOAD_CPU=0
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null

b_setup http2 # $work, cleanup at exit, $REMORA_BIN (bench/lib.sh)
CAP_SKIP=""
((QUOTA_PCT > 0)) || CAP_SKIP="BENCH_PROXY_QUOTA=0"
if [[ -z $CAP_SKIP ]] && ! b_quota_init "$QUOTA_PCT"; then CAP_SKIP=$B_QUOTA_SKIP; fi
[[ -n $CAP_SKIP ]] && b_log "skipping the capped runs: $CAP_SKIP"

# --- certificates, as bench/mtls.sh makes them (a DNS SAN for the peers' host name checks) ----
pki=$work/pki
b_make_pki "$pki" || {
    b_log "could not make the certificates with $REMORACTL and openssl"
    exit 1
}
CA=$pki/root/root-cert.pem
CCERT=$pki/client/cert-chain.pem CKEY=$pki/client/key.pem
SCERT=$pki/server/cert-chain.pem SKEY=$pki/server/key.pem

# --- the apps: nginx (HTTP/1.1, 1 KiB body; bench/lib.sh) and a gRPC server (Node http2) ------
APP=$(b_free_port)
b_app "$work/app" "$APP"
NGINX_APP_PIDS=("${APP_PIDS[@]}")
GRPC=$(b_free_port)
# The request: one gRPC message (5-byte prefix: not compressed, length 7) holding a protobuf
# with field 1 = "bench"; the answer: one message with field 1 = 24 bytes, then grpc-status 0.
printf '\x00\x00\x00\x00\x07\x0a\x05bench' >"$work/grpc-request.bin"
GRPC_REPLY_LEN=31 # 5 + 2 + 24
cat >"$work/grpc_server.js" <<'EOF'
// A gRPC unary server with no gRPC library: every POST is read to its end and answered with the
// same framed message and trailers carrying grpc-status 0.
'use strict';
const http2 = require('http2');
const payload = Buffer.concat([Buffer.from([0x0a, 24]), Buffer.alloc(24, 0x78)]);
const head = Buffer.alloc(5);
head.writeUInt32BE(payload.length, 1);
const reply = Buffer.concat([head, payload]);
const server = http2.createServer({ settings: { maxConcurrentStreams: 1000 } });
server.on('stream', (stream) => {
    stream.on('error', () => {});
    stream.on('data', () => {});
    stream.on('end', () => {
        // A client that went away (the end of a run) leaves streams reset before their answer.
        if (stream.destroyed || stream.closed) return;
        try {
            stream.respond({ ':status': 200, 'content-type': 'application/grpc' },
                           { waitForTrailers: true });
            stream.on('wantTrailers', () => {
                try { stream.sendTrailers({ 'grpc-status': '0' }); } catch (e) { stream.destroy(); }
            });
            stream.end(reply);
        } catch (e) {
            stream.destroy();
        }
    });
});
server.on('sessionError', () => {});
server.listen(Number(process.argv[2]), '127.0.0.1');
EOF
b_bg "$work/grpc_server.log" taskset -c "$LOAD_CPU" node "$work/grpc_server.js" "$GRPC"
GRPC_PID=$B_PID
b_wait_port "$GRPC" 200 || {
    b_log "the gRPC server did not start: $(cat "$work/grpc_server.log")"
    exit 1
}
APP_PIDS=("${NGINX_APP_PIDS[@]}" "$GRPC_PID") # both apps count as the load side

# --- proxies -----------------------------------------------------------------------------------
# Each start sets T_PIDS (every process of the target), T_MASTERS (what to stop first), T_PORT
# (where the load goes), T_A_ADMIN (remora A's admin port, for /stats).
B_TARGET_ARRAYS=(T_PIDS T_MASTERS)
B_TARGET_SCALARS=(T_PORT T_A_ADMIN)

HCM_TYPE=type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
ROUTER='http_filters: [{name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]'
TLS_PARAMS="tls_params: {tls_minimum_protocol_version: TLSv1_2, tls_maximum_protocol_version: TLSv1_2, cipher_suites: [$SUITE], ecdh_curves: [$GROUP, P-256]}"
H2_OPTS='typed_extension_protocol_options: {envoy.extensions.upstreams.http.v3.HttpProtocolOptions: {"@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions, explicit_http_config: {http2_protocol_options: {}}}}'

remora_ready() { # remora_ready ADMIN LOG
    local i
    for ((i = 0; i < 100; i++)); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/ready") == 200 ]] && return 0
        sleep 0.05
    done
    b_log "remora did not become ready: $(cat "$2")"
    return 1
}

# remora_cluster NAME PORT H2 [TLS-ALPN]: a STATIC cluster at column 2; H2=1 speaks HTTP/2 to it;
# with TLS-ALPN (the inside of a YAML list) it originates mutual TLS to B, expecting B's identity
remora_cluster() {
    echo "  - name: $1"
    echo "    type: STATIC"
    echo "    connect_timeout: 5s"
    echo "    load_assignment: {cluster_name: $1, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $2}}}}]}]}"
    [[ $3 == 1 ]] && echo "    $H2_OPTS"
    [[ -n ${4:-} ]] && cat <<EOF
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        common_tls_context:
          alpn_protocols: [$4]
          $TLS_PARAMS
          tls_certificates:
          - certificate_chain: {filename: $CCERT}
            private_key: {filename: $CKEY}
          validation_context:
            trusted_ca: {filename: $CA}
            match_typed_subject_alt_names:
            - {san_type: URI, matcher: {exact: "$SERVER_ID"}}
EOF
    return 0
}

# remora_plain FILE ADMIN PORT CLUSTER-YAML: a sidecar with a plaintext listener (HTTP/1.1 or h2c,
# the codec's AUTO) routing everything to the one cluster
remora_plain() {
    cat >"$1" <<EOF
node: {id: bench-$2.local, cluster: bench}
admin: {address: {socket_address: {address: 127.0.0.1, port_value: $2}}}
static_resources:
  listeners:
  - name: outbound
    address: {socket_address: {address: 127.0.0.1, port_value: $3}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": $HCM_TYPE
          stat_prefix: outbound
          route_config:
            virtual_hosts: [{name: up, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: up}}]}]
          $ROUTER
  clusters:
$4
EOF
}

# remora_inbound FILE ADMIN PORT CLUSTER-YAML: B, strict mutual TLS in (ALPN h2, http/1.1), then
# the HCM to the one cluster
remora_inbound() {
    cat >"$1" <<EOF
node: {id: bench-$2.local, cluster: bench}
admin: {address: {socket_address: {address: 127.0.0.1, port_value: $2}}}
static_resources:
  listeners:
  - name: inbound
    address: {socket_address: {address: 127.0.0.1, port_value: $3}}
    listener_filters:
    - name: envoy.filters.listener.tls_inspector
      typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector}
    filter_chains:
    - filter_chain_match: {transport_protocol: tls}
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            alpn_protocols: [h2, http/1.1]
            $TLS_PARAMS
            tls_certificates:
            - certificate_chain: {filename: $SCERT}
              private_key: {filename: $SKEY}
            validation_context:
              trusted_ca: {filename: $CA}
              match_typed_subject_alt_names:
              - {san_type: URI, matcher: {prefix: "spiffe://cluster.local/"}}
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": $HCM_TYPE
          stat_prefix: inbound
          route_config:
            virtual_hosts: [{name: app, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: up}}]}]
          $ROUTER
  clusters:
$4
EOF
}

remora_run() { # remora_run NAME CONFIG ADMIN: starts one remora on the proxy core, waits for ready
    b_bg "$work/remora-$1.log" taskset -c "$PROXY_CPU" "$REMORA_BIN" --config "$2" --concurrency 1 \
        --log-level warning
    T_PIDS+=("$B_PID") T_MASTERS+=("$B_PID")
    remora_ready "$3" "$work/remora-$1.log"
}

# remora_pair NAME APP-PORT APP-H2 A-B-H2: B (mTLS in, to the app), then A (plaintext in, mTLS to
# B, HTTP/2 between them when A-B-H2 is 1, HTTP/1.1 otherwise)
remora_pair() {
    local a_admin b_admin b_port alpn=http/1.1
    a_admin=$(b_free_port) b_admin=$(b_free_port) b_port=$(b_free_port)
    T_PORT=$(b_free_port)
    [[ $4 == 1 ]] && alpn=h2
    remora_inbound "$work/$1-b.yaml" "$b_admin" "$b_port" "$(remora_cluster up "$2" "$3")"
    remora_plain "$work/$1-a.yaml" "$a_admin" "$T_PORT" "$(remora_cluster up "$b_port" "$4" "$alpn")"
    remora_run "$1-b" "$work/$1-b.yaml" "$b_admin" || return 1
    remora_run "$1-a" "$work/$1-a.yaml" "$a_admin" || return 1
    T_A_ADMIN=$a_admin
}

start_hop_remora() {
    local admin
    admin=$(b_free_port) T_PORT=$(b_free_port)
    remora_plain "$work/hop.yaml" "$admin" "$T_PORT" "$(remora_cluster up "$APP" 0)"
    remora_run hop "$work/hop.yaml" "$admin"
}
start_pair_remora() { remora_pair pair "$APP" 0 1; }
start_grpc_remora() { remora_pair grpc "$GRPC" 1 1; }
start_h1mesh_h2() { remora_pair h1mesh-h2 "$APP" 0 1; }
start_h1mesh_h1() { remora_pair h1mesh-h1 "$APP" 0 0; }

start_grpc_direct() { T_PORT=$GRPC; }

haproxy_run() { # haproxy_run NAME CONFIG PORT: checks, starts one HAProxy, waits until it listens
    haproxy -c -q -f "$2" >"$work/haproxy-$1-check.log" 2>&1 || {
        b_log "haproxy rejects $2: $(cat "$work/haproxy-$1-check.log")"
        return 1
    }
    b_bg "$work/haproxy-$1.log" taskset -c "$PROXY_CPU" haproxy -db -f "$2"
    T_PIDS+=("$B_PID") T_MASTERS+=("$B_PID")
    b_wait_listen "$3" || {
        b_log "haproxy $1 did not listen: $(cat "$work/haproxy-$1.log")"
        return 1
    }
}

haproxy_head() { # the global and defaults sections every HAProxy here shares
    cat <<EOF
global
    nbthread 1
    maxconn 8192
    ssl-default-bind-ciphers $SUITE
    ssl-default-bind-curves $GROUP:P-256
    ssl-default-bind-options ssl-min-ver TLSv1.2 ssl-max-ver TLSv1.2
    ssl-default-server-ciphers $SUITE
    ssl-default-server-options ssl-min-ver TLSv1.2 ssl-max-ver TLSv1.2
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 300s
    timeout server 300s
EOF
}

# haproxy_pair NAME APP-SERVER-OPTIONS: B (mTLS in with ALPN h2,http/1.1) and A (h2c in, mTLS
# with ALPN h2 to B, B checked by chain and DNS SAN)
haproxy_pair() {
    local b_port
    b_port=$(b_free_port) T_PORT=$(b_free_port)
    {
        haproxy_head
        echo "frontend inbound"
        echo "    bind 127.0.0.1:$b_port ssl crt $pki/server/haproxy.pem ca-file $CA verify required alpn h2,http/1.1"
        echo "    default_backend app"
        echo "backend app"
        echo "    server app $2"
    } >"$work/haproxy-$1-b.cfg"
    {
        haproxy_head
        echo "frontend outbound"
        echo "    bind 127.0.0.1:$T_PORT proto h2"
        echo "    default_backend b"
        echo "backend b"
        echo "    server b 127.0.0.1:$b_port ssl crt $pki/client/haproxy.pem ca-file $CA verify required verifyhost $SERVER_DNS alpn h2"
    } >"$work/haproxy-$1-a.cfg"
    haproxy_run "$1-b" "$work/haproxy-$1-b.cfg" "$b_port" &&
        haproxy_run "$1-a" "$work/haproxy-$1-a.cfg" "$T_PORT"
}

start_hop_haproxy() {
    T_PORT=$(b_free_port)
    {
        haproxy_head
        echo "frontend h2c"
        echo "    bind 127.0.0.1:$T_PORT proto h2"
        echo "    default_backend app"
        echo "backend app"
        echo "    server app 127.0.0.1:$APP"
    } >"$work/haproxy-hop.cfg"
    haproxy_run hop "$work/haproxy-hop.cfg" "$T_PORT"
}
start_pair_haproxy() { haproxy_pair pair "127.0.0.1:$APP"; }
start_grpc_haproxy() { haproxy_pair grpc "127.0.0.1:$GRPC proto h2"; }

# nghttpx_run NAME PORT ARGS...: one nghttpx (--workers=1, an empty config file of its own) on
# the proxy core; its master and worker into T_PIDS
nghttpx_run() {
    local name=$1 port=$2 master worker
    shift 2
    : >"$work/nghttpx-$name.conf"
    b_bg "$work/nghttpx-$name.log" taskset -c "$PROXY_CPU" nghttpx --conf="$work/nghttpx-$name.conf" \
        --workers=1 --errorlog-file="$work/nghttpx-$name.err" "$@"
    master=$B_PID
    T_PIDS+=("$master") T_MASTERS+=("$master")
    b_wait_listen "$port" || {
        b_log "nghttpx $name did not listen: $(cat "$work/nghttpx-$name.err" "$work/nghttpx-$name.log" 2>/dev/null)"
        return 1
    }
    worker=$(b_child_of "$master") || {
        b_log "no nghttpx worker under master $master"
        return 1
    }
    extra_pids+=("$worker")
    T_PIDS+=("$worker")
}

# nghttpx_pair NAME APP-BACKEND: B (TLS frontend requiring a client certificate, ALPN h2 and
# http/1.1 by default) and A (h2c in, HTTP/2 over mutual TLS to B)
nghttpx_pair() {
    local b_port tls=(--tls-min-proto-version=TLSv1.2 --tls-max-proto-version=TLSv1.2
        --ciphers="$SUITE" --client-ciphers="$SUITE" --ecdh-curves="$GROUP:P-256")
    b_port=$(b_free_port) T_PORT=$(b_free_port)
    nghttpx_run "$1-b" "$b_port" "${tls[@]}" --frontend="127.0.0.1,$b_port" --backend="$2" \
        --verify-client --verify-client-cacert="$CA" "$SKEY" "$SCERT" || return 1
    nghttpx_run "$1-a" "$T_PORT" "${tls[@]}" --frontend="127.0.0.1,$T_PORT;no-tls" \
        --backend="127.0.0.1,$b_port;;proto=h2;tls;sni=$SERVER_DNS" --cacert="$CA" \
        --client-private-key-file="$CKEY" --client-cert-file="$CCERT"
}

start_hop_nghttpx() {
    T_PORT=$(b_free_port)
    nghttpx_run hop "$T_PORT" --frontend="127.0.0.1,$T_PORT;no-tls" --backend="127.0.0.1,$APP"
}
start_pair_nghttpx() { nghttpx_pair pair "127.0.0.1,$APP"; }
start_grpc_nghttpx() { nghttpx_pair grpc "127.0.0.1,$GRPC;;proto=h2"; }

stop_target() { # stop the masters (in order), then any of the target's processes that outlived them
    local p i
    for p in "${T_MASTERS[@]}"; do b_stop "$p"; done
    for p in "${T_PIDS[@]}"; do
        for ((i = 0; i < 40; i++)); do
            [[ -e /proc/$p && $(awk '{ print $3 }' "/proc/$p/stat" 2>/dev/null) != Z ]] || break
            sleep 0.05
        done
        kill "$p" 2>/dev/null
    done
    return 0
}

# --- the rounds' hooks, per part (PART names the one running) --------------------------------
start_target() { "start_${PART}_$1"; }

check_hop() { # the path serves the app's answer: 1 KiB over h2c, or the gRPC message
    local got code
    case $PART in
    grpc)
        code=$(curl -s --max-time 5 --http2-prior-knowledge -o "$work/check.out" -w '%{http_code}' \
            -H 'content-type: application/grpc' -H 'te: trailers' \
            --data-binary @"$work/grpc-request.bin" "http://127.0.0.1:$T_PORT/bench.Echo/Call")
        got=$(stat -c %s "$work/check.out" 2>/dev/null || echo 0)
        [[ $code == 200 && $got == "$GRPC_REPLY_LEN" ]] && return 0
        b_log "$1: the gRPC call answered $code with $got bytes, not 200 with $GRPC_REPLY_LEN"
        ;;
    h1mesh)
        got=$(curl -s --max-time 5 "http://127.0.0.1:$T_PORT/")
        [[ ${#got} -eq 1024 ]] && return 0
        b_log "$1: GET / returned ${#got} bytes, not 1024"
        ;;
    *)
        got=$(curl -s --max-time 5 --http2-prior-knowledge "http://127.0.0.1:$T_PORT/")
        [[ ${#got} -eq 1024 ]] && return 0
        b_log "$1: GET / over h2c returned ${#got} bytes, not 1024"
        ;;
    esac
    return 1
}

a_cx_total() { # TLS connections remora A has opened to B (its cluster's upstream_cx_total)
    curl -s --max-time 5 "http://127.0.0.1:$T_A_ADMIN/stats" |
        awk -F': ' '$1 == "cluster.up.upstream_cx_total" { print $2 + 0; found = 1 } END { if (!found) print "" }'
}

h2load_run() { # h2load_run OUT LOG DURATION: the load of this part, for DURATION seconds
    local args=(-t1 -c"$H2_CONNS" -m"$H2_STREAMS" -D "$3")
    [[ -n $2 ]] && args+=(--log-file="$2")
    [[ $PART == grpc ]] && args+=(-d "$work/grpc-request.bin" -H 'content-type: application/grpc'
        -H 'te: trailers')
    pin_load h2load "${args[@]}" "http://127.0.0.1:$T_PORT/bench.Echo/Call" >"$1" 2>&1
}

# alive TARGET: every process of the target and both apps still run; otherwise the measurement
# is marked as one that could not run (a proxy that crashed is a failure, not a number)
alive() {
    local p
    for p in "${T_PIDS[@]}" "${APP_PIDS[@]}"; do
        [[ -e /proc/$p && $(awk '{ print $3 }' "/proc/$p/stat" 2>/dev/null) != Z ]] && continue
        b_fail "$PART, $1: its process $p is no longer running (see its log with BENCH_KEEP_DIR=1)"
        return 1
    done
}

# h2_closed TARGET PREFIX: h2load as fast as the path (or the load side) goes, after 1 s of
# warm-up; M[TARGET.PREFIXrps], p50, p99, cpu_req, cpu_use, load_req
h2_closed() {
    local t=$1 k=$2 out=$work/h2load-$PART-$1-${2:-closed}.txt log=$work/h2load.log c0 c1 n0 n1 l0 l1
    local parsed rps p50 p99 reqs err data
    h2load_run "$work/warm.txt" "" 1
    rm -f "$log" # h2load appends to its log file
    ((${#T_PIDS[@]})) && c0=$(b_cpu_ticks "${T_PIDS[@]}")
    l0=$(($(b_self_ticks) + $(b_cpu_ticks "${APP_PIDS[@]}")))
    n0=$(b_now_ns)
    h2load_run "$out" "$log" "$SECS"
    n1=$(b_now_ns)
    ((${#T_PIDS[@]})) && c1=$(b_cpu_ticks "${T_PIDS[@]}")
    alive "$t" || return
    l1=$(($(b_self_ticks) + $(b_cpu_ticks "${APP_PIDS[@]}")))
    parsed=$(b_h2load_parse "$out" "$log") || {
        b_fail "$PART, $t: h2load produced no result: $(tail -c 500 "$out")"
        return
    }
    read -r rps p50 p99 reqs err <<<"$parsed"
    ((err > 0)) && NOTES+=("$PART, $t, ${k:+capped }closed loop: h2load counted $err failed requests or non-2xx")
    # A gRPC error is an HTTP 200 too (trailers only): every call must have carried the reply.
    if [[ $PART == grpc ]]; then
        data=$(awk '/^traffic:/ { gsub(/[()]/, ""); print $(NF - 1) }' "$out")
        ((${data:-0} >= reqs * GRPC_REPLY_LEN)) ||
            b_fail "$PART, $t: ${data:-0} bytes of DATA for $reqs calls of $GRPC_REPLY_LEN: some calls were answered without the message (a gRPC error)"
    fi
    M[$t.${k}rps]=$rps M[$t.${k}p50]=$p50 M[$t.${k}p99]=$p99
    M[$t.${k}load_req]=$(b_cpu_per $((l1 - l0)) "$reqs")
    if ((${#T_PIDS[@]})); then
        M[$t.${k}cpu_req]=$(b_cpu_per $((c1 - c0)) "$reqs")
        M[$t.${k}cpu_use]=$(b_cpu_pct $((c1 - c0)) $((n1 - n0)))
    fi
}

measure_closed() { h2_closed "$1" ""; }

# measure_capped TARGET: the same closed loop with the proxy (a pair: both proxies together) held
# to QUOTA_PCT % of one core, so that it, not the load side, is the bottleneck
measure_capped() {
    local t=$1 use
    ((${#T_PIDS[@]})) || return 1
    b_quota_enter "${T_PIDS[@]}" || {
        b_quota_leave
        b_fail "$t: could not move its processes into $B_QUOTA_DIR"
        return 1
    }
    h2_closed "$t" cap_
    b_quota_leave
    use=${M[$t.cap_cpu_use]:-0}
    awk -v u="$use" -v q="$QUOTA_PCT" 'BEGIN { exit !(u < 0.9 * q) }' &&
        NOTES+=("$PART, $t, capped: the proxy used only $use% of its core (cap $QUOTA_PCT%): it was not the bottleneck")
    return 0
}

# measure_close TARGET (h1mesh): wrk, every request on a new client connection
# (Connection: close), through the pair; the TLS connections A opened to B meanwhile
measure_close() {
    local t=$1 out=$work/wrk-$1.txt c0 c1 n0 n1 x0 x1 parsed rps p50 p99 reqs err
    pin_load wrk -t1 -c"$WRK_CONNS" -d1s -H 'Connection: close' "http://127.0.0.1:$T_PORT/" \
        >/dev/null 2>&1
    x0=$(a_cx_total) c0=$(b_cpu_ticks "${T_PIDS[@]}") n0=$(b_now_ns)
    pin_load wrk -t1 -c"$WRK_CONNS" -d"${SECS}s" --latency -H 'Connection: close' \
        "http://127.0.0.1:$T_PORT/" >"$out" 2>&1
    alive "$t" || return
    n1=$(b_now_ns) c1=$(b_cpu_ticks "${T_PIDS[@]}") x1=$(a_cx_total)
    parsed=$(b_wrk_parse "$out") || {
        b_fail "$t: wrk produced no result: $(head -c 500 "$out")"
        return
    }
    read -r rps p50 p99 reqs err <<<"$parsed"
    ((err > 0)) && NOTES+=("h1mesh, $t: wrk counted $err socket errors or non-2xx responses")
    M[$t.rps]=$rps M[$t.p50]=$p50 M[$t.p99]=$p99
    M[$t.cpu_req]=$(b_cpu_per $((c1 - c0)) "$reqs")
    M[$t.cpu_use]=$(b_cpu_pct $((c1 - c0)) $((n1 - n0)))
    [[ -n $x0 && -n $x1 ]] && M[$t.cx_ab]=$((x1 - x0))
    return 0
}

after_start() { ((${#T_PIDS[@]})) && M[$1.rss_idle]=$(b_status_kib VmRSS "${T_PIDS[@]}"); return 0; }
before_stop() {
    local v
    ((${#T_PIDS[@]})) && v=$(b_status_kib VmHWM "${T_PIDS[@]}" 2>/dev/null) && M[$1.rss_peak]=$v
    [[ $PART == h1mesh && -n $T_A_ADMIN ]] && M[$1.cx_total]=$(a_cx_total)
    return 0
}

# The rounds in bench/lib.sh call start_<target>; here a target's start depends on the part.
for t in remora haproxy nghttpx direct h2 h1; do eval "start_$t() { start_target $t; }"; done

# --- report --------------------------------------------------------------------------------
h2_metrics() { # METRICS of the h2load parts; $1: "proxy" or "pair"
    local who=$1
    METRICS=(
        "rps|Closed loop: requests/s (h2load -c$H2_CONNS -m$H2_STREAMS)|hi|%.0f|1"
        "p50|Closed loop: latency p50 (ms)|lo|%.3f|1"
        "p99|Closed loop: latency p99 (ms)|lo|%.3f|1"
        "cpu_req|Closed loop: $who CPU per request (µs)|lo|%.2f|1"
        "cpu_use|Closed loop: $who CPU use (% of one core)|-|%.0f|1"
        "load_req|Closed loop: load side's CPU per request (µs; h2load and the apps)|-|%.2f|1"
        "noise_closed|Closed loop: other processes' CPU (% of all cores; noise)|-|%.1f|1"
    )
    [[ -z $CAP_SKIP ]] && METRICS+=(
        "cap_rps|${who^} capped at ${QUOTA_PCT}% of a core: requests/s|hi|%.0f|1"
        "cap_p50|Capped: latency p50 (ms)|lo|%.3f|1"
        "cap_p99|Capped: latency p99 (ms)|lo|%.3f|1"
        "cap_cpu_req|Capped: $who CPU per request (µs)|lo|%.2f|1"
        "cap_cpu_use|Capped: $who CPU use (% of one core)|-|%.0f|1"
    )
    METRICS+=(
        "rss_idle|RSS after start (MiB)|lo|%.1f|0.0009765625"
        "rss_peak|Peak RSS over the run (MiB)|lo|%.1f|0.0009765625"
    )
}

h2_targets() { # the issue's targets for remora in an h2load part
    echo
    echo "Targets:"
    [[ -z $CAP_SKIP ]] && b_target "requests/s ≥ 1.1× the best peer at equal CPU (capped at $QUOTA_PCT%)" \
        cap_rps hi 1.1 %.0f
    b_target "CPU per request ≤ 0.9× the best peer's (closed loop, µs)" cpu_req lo 0.9 %.2f
    b_target "p99 ≤ the best peer's (closed loop, ms)" p99 lo 1 %.3f
    b_target "requests/s, unlimited closed loop (context: the load core is the ceiling when no proxy is at ≥90% of its core)" \
        rps hi 1.1 %.0f
}

report_hop() {
    echo "### One hop: h2c in, HTTP/1.1 to the app"
    echo
    echo "h2load (h2c, -c$H2_CONNS -m$H2_STREAMS) → proxy → nginx app (HTTP/1.1 keep-alive, 1 KiB body)."
    echo
    h2_metrics proxy
    b_table "best peer"
    b_sentences
    b_rounds_block "rps|closed-loop requests/s" "cap_rps|capped requests/s" "p99|closed-loop p99 (ms)" \
        "cpu_req|closed-loop CPU per request (µs)"
    h2_targets
}

report_pair() {
    echo "### A pair with mutual TLS: h2c → A → HTTP/2 over mTLS → B → HTTP/1.1 app"
    echo
    echo "Both proxies of a pair on CPU $PROXY_CPU; CPU per request and the cap are the pair's together."
    echo
    h2_metrics pair
    b_table "best peer pair"
    b_sentences
    b_rounds_block "rps|closed-loop requests/s" "cap_rps|capped requests/s" "p99|closed-loop p99 (ms)" \
        "cpu_req|closed-loop CPU per request (µs)"
    h2_targets
}

report_grpc() {
    echo "### gRPC unary calls through a pair"
    echo
    echo "h2load posting one gRPC message (12 bytes framed; content-type application/grpc, te: trailers)"
    echo "→ A → HTTP/2 over mTLS → B → h2c → a Node http2 server (one 31-byte framed reply and"
    echo "grpc-status 0 in trailers; on the load core). direct: h2load straight at the server."
    echo
    h2_metrics pair
    b_table "best peer pair"
    b_sentences
    b_rounds_block "rps|closed-loop calls/s" "cap_rps|capped calls/s" "p99|closed-loop p99 (ms)" \
        "cpu_req|closed-loop CPU per call (µs)"
    h2_targets
}

report_h1mesh() {
    local r
    echo "### HTTP/1.1 over HTTP/2 between sidecars: many short app connections"
    echo
    echo "wrk -t1 -c$WRK_CONNS -H 'Connection: close' (every request a new client connection) → remora A →"
    echo "mutual TLS → remora B → nginx app. **h2**: HTTP/2 between A and B (ALPN h2); **h1**: HTTP/1.1"
    echo "between them (today's mTLS pair). The remora columns below are h2, the peer is h1."
    echo
    METRICS=(
        "rps|Requests/s (wrk, Connection: close)|hi|%.0f|1"
        "p50|Latency p50 (ms)|lo|%.3f|1"
        "p99|Latency p99 (ms)|lo|%.3f|1"
        "cpu_req|Pair CPU per request (µs)|lo|%.2f|1"
        "cpu_use|Pair CPU use (% of its core)|-|%.0f|1"
        "cx_ab|TLS connections A → B opened during the measured run (upstream_cx_total)|-|%.0f|1"
        "cx_total|TLS connections A → B over the whole part, warm-ups included (upstream_cx_total at the end)|-|%.0f|1"
        "noise_close|Other processes' CPU (% of all cores; noise)|-|%.1f|1"
    )
    # b_table compares "remora" with PEERS: remora is h2 here
    local saved=$TARGETS
    for r in $(seq 1 "$ROUNDS"); do
        for k in "${!RR[@]}"; do
            [[ $k == "$r.h2."* ]] && RR[$r.remora.${k#"$r.h2."}]=${RR[$k]}
        done
    done
    for k in "${!R[@]}"; do [[ $k == h2.* ]] && R[remora.${k#h2.}]=${R[$k]}; done
    TARGETS=${TARGETS//h2/remora}
    b_table "h1"
    b_sentences
    TARGETS=$saved
    b_rounds_block "rps|requests/s" "p99|p99 (ms)" "cx_ab|connections A → B"
    echo
    echo "Target:"
    b_target "HTTP/1.1 over HTTP/2 between sidecars: requests/s ≥ 1.2× the HTTP/1.1 mTLS pair" rps hi 1.2 %.0f
    local c2=${R[h2.cx_total]:-} c1=${R[h1.cx_total]:-}
    if [[ -n $c2 && -n $c1 ]]; then
        echo "- TLS handshakes A → B over the part (every warm-up and round): h2 $c2," \
            "h1 $c1: $((c1 - c2)) saved (A's pool to B holds one" \
            "connection per request in flight with HTTP/1.1, one connection in all with HTTP/2)"
    fi
}

remora_rev=$(git -C "$root" describe --always --dirty 2>/dev/null || echo "not a git tree")
header() {
    echo "## HTTP/2 and gRPC"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- machine: $(b_machine)"
    echo "- remora: $REMORA (built $REMORA_BUILT; tree $remora_rev), --concurrency 1"
    echo "- peers: $(b_ver haproxy) (nbthread 1, http-reuse always), $(b_ver nghttpx) (--workers=1)"
    echo "- load: $(b_ver h2load) -t1 -c$H2_CONNS -m$H2_STREAMS (h2c), $(b_ver wrk) (h1mesh); apps:" \
        "nginx (1 worker, 1 KiB body), Node $(node --version) http2 (gRPC)"
    echo "- between A and B: TLS 1.2 $SUITE over $GROUP, client certificates both ways"
    echo "- pinning: proxies (both of a pair) on CPU $PROXY_CPU; load generators and apps on CPU $LOAD_CPU"
    echo "- rounds: $ROUNDS, BENCH_SECONDS=$SECS per measurement after 1 s of warm-up; medians, ratios paired round by round"
    echo "- capped: $([[ -z $CAP_SKIP ]] && echo "the proxy (a pair: both) in a cgroup with a CPU quota of" \
        "$QUOTA_PCT% of one core (10 ms period)" || echo "skipped: $CAP_SKIP")"
}

run_part() { # run_part PART TARGETS KIND...: one part's rounds, then its report
    PART=$1 TARGETS=$2
    shift 2
    M=() RR=() R=() B_TS=() ALL_PIDS=() NOTES=()
    b_log "=== $PART: targets $TARGETS, $ROUNDS round(s)"
    b_rounds_start
    PEERS=()
    for t in $TARGETS; do [[ $t == direct || $t == remora || $t == h2 ]] || PEERS+=("$t"); done
    b_rounds_run "$@"
    b_rounds_stop
    b_medians
    {
        echo
        "report_$PART"
        b_notes
    } >>"$work/report.md"
}

B_NOISE_QUIET="capped" # throttled receive work shows as softirq no process is charged with
kinds=(closed)
[[ -z $CAP_SKIP ]] && kinds+=(capped)
header >"$work/report.md"
for p in $PARTS; do
    case $p in
    hop) run_part hop "remora haproxy nghttpx" "${kinds[@]}" ;;
    pair) run_part pair "remora haproxy nghttpx" "${kinds[@]}" ;;
    grpc) run_part grpc "direct remora haproxy nghttpx" "${kinds[@]}" ;;
    h1mesh) run_part h1mesh "h2 h1" close ;;
    esac
done
mkdir -p "$OUT_DIR"
tee "$OUT" <"$work/report.md"
b_log "written to $OUT"
exit "$B_FAILED"
