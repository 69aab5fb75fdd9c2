#!/usr/bin/env bash
# bench/mtls.sh: the two-hop mutual-TLS benchmark, side by side.
#
# The path client -> proxy A -> mTLS -> proxy B -> nginx app (1 KiB body, keep-alive everywhere)
# is built from two remoras, from two HAProxys and from two nginxes, and measured one pair after
# another in this one run, with "direct" (client -> app, no proxy) as the baseline. Every proxy
# runs ONE worker thread; both proxies of a pair share one core, the load generator and the app
# the other. Every pair uses the same certificate files (a P-256 root, P-256 leaves with SPIFFE
# URI SANs) and the same suite and group between A and B: TLS 1.2,
# ECDHE-ECDSA-CHACHA20-POLY1305, X25519.
#
#   closed loop  wrk -t1 -c50 keep-alive through A, as fast as it goes: rps, p50, p99, CPU per
#                request of both proxies together (and of each side)
#   fixed rate   h2load --h1 -c50 at BENCH_FIXED_RPS (8000) req/s for every pair: p50, p99, CPU
#   handshakes   BENCH_HS_CLIENTS (8) `openssl s_time` clients straight at B: full mTLS
#                handshakes/s (-new) and resumed ones (-reuse, session ticket), B's CPU per
#                handshake
#
# Every pair is started at once (all idle but the one measured) and the measurements take them
# in turn: every pair's closed loop, then every pair's fixed-rate run, then every pair's
# handshakes, BENCH_ROUNDS (5) times over; each metric's median over the rounds is reported.
# This machine's speed drifts by tens of percent over minutes, which pairs measured one after
# the other would show as a difference between them. It measures and reports; it
# never fails on a number. Exit status is non-zero only when something could not run. Writes
# the table to stdout and to $BUILD/bench/mtls.md. See bench/README.md.
# The start_* functions are called by name ("start_$t"), which shellcheck cannot follow.
# shellcheck disable=SC2317
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

BUILD=${BUILD:-build}
REMORA=${REMORA:-$root/$BUILD/remora}
REMORACTL=${REMORACTL:-$root/$BUILD/remoractl}
SECS=${BENCH_SECONDS:-5} # per measurement; the rounds repeat it
WRK_CONNS=${BENCH_WRK_CONNS:-50}
FIXED_RPS=${BENCH_FIXED_RPS:-8000} # total request rate of the fixed-rate run; 0 skips it
HS_CLIENTS=${BENCH_HS_CLIENTS:-8}  # parallel s_time clients in the handshake runs; 0 skips them
ROUNDS=${BENCH_ROUNDS:-5} # every measurement of every pair, in turn, this many times; medians
NOISE_PCT=${BENCH_NOISE_PCT:-5}
PROXY_CPU=${BENCH_PROXY_CPU:-0}          # both proxies of a pair run here...
A_CPU=${BENCH_CLIENT_PROXY_CPU:-$PROXY_CPU} # ...unless given a core each (3+ cores)
B_CPU=${BENCH_SERVER_PROXY_CPU:-$PROXY_CPU}
LOAD_CPU=${BENCH_LOAD_CPU:-1} # wrk, h2load, s_time and the nginx app share this one
TARGETS=${BENCH_TARGETS:-direct remora haproxy nginx}
OUT_DIR=$root/$BUILD/bench
OUT=$OUT_DIR/mtls.md

# The one suite and group every pair uses between A and B (OpenSSL's names; remora maps them).
SUITE=ECDHE-ECDSA-CHACHA20-POLY1305
GROUP=X25519
# The groups B accepts: X25519 first, P-256 after it. In TLS 1.2 both mbedTLS and OpenSSL check a
# peer's ECDSA certificate's curve against the same list (OpenSSL's server refuses the P-256 client
# certificate with "wrong curve" otherwise), and remora always keeps P-256 last in it. Every
# client offers X25519 first, so X25519 is what is negotiated (checked by the probe).
GROUPS_OPENSSL=X25519:P-256
CLIENT_ID=spiffe://cluster.local/ns/bench/sa/client
SERVER_ID=spiffe://cluster.local/ns/bench/sa/server
SERVER_DNS=server.bench.local # a DNS SAN for nginx, which always checks a host name

need=(wrk nginx openssl taskset ss awk curl sort)
for t in $TARGETS; do
    case $t in
    direct | remora | nginx) ;;
    haproxy) need+=("$t") ;;
    *)
        b_log "unknown target: $t (have: direct remora haproxy nginx)"
        exit 1
        ;;
    esac
done
b_need "wrk nginx haproxy openssl nghttp2-client util-linux iproute2 curl; or scripts/deps.sh bench" \
    "${need[@]}"
for f in "$REMORA" "$REMORACTL"; do
    [[ -x $f ]] || {
        b_log "no $f: run make first"
        exit 1
    }
done
FIXED_SKIP=""
if ((FIXED_RPS <= 0)); then
    FIXED_SKIP="BENCH_FIXED_RPS=0"
elif ! command -v h2load >/dev/null; then
    FIXED_SKIP="h2load is not installed (Debian: nghttp2-client)"
fi
[[ -n $FIXED_SKIP ]] && b_log "skipping the fixed-rate run: $FIXED_SKIP"
FIXED_PER_CONN=$(awk -v r="$FIXED_RPS" -v c="$WRK_CONNS" 'BEGIN { printf "%g", r / c }')
if (($(nproc) < 2)); then
    b_log "only one core: the proxies and the load generator will share it"
    PROXY_CPU=0 A_CPU=0 B_CPU=0 LOAD_CPU=0
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null

b_setup mtls # $work, cleanup at exit, $REMORA_BIN (bench/lib.sh)

# --- certificates: made once, the same files for every pair ----------------------------------
# The root and the client's leaf come from remoractl (P-256, the SPIFFE ID as the only URI SAN).
# The server's leaf is signed by the same root, with the same key type and shape, but made with
# openssl so that it can carry a DNS SAN next to its SPIFFE ID: remoractl issues URI-only leaves
# with an empty subject, and nginx's proxy_ssl_verify always checks a host name (X509_check_host
# on the DNS SANs, then the subject's CN), so it could not verify such a server at all. Remora
# checks the URI SAN, HAProxy (verifyhost) and nginx (proxy_ssl_name) the DNS SAN.
pki=$work/pki
b_make_pki "$pki" || {
    b_log "could not make the certificates with $REMORACTL and openssl"
    exit 1
}
CA=$pki/root/root-cert.pem
CCERT=$pki/client/cert-chain.pem CKEY=$pki/client/key.pem
SCERT=$pki/server/cert-chain.pem SKEY=$pki/server/key.pem

# --- the upstream app: nginx, 1 worker, 1 KiB body, keep-alive (bench/lib.sh) -----------------
APP=$(b_free_port)
b_app "$work/app" "$APP"

# --- pairs: each start_* sets T_PIDS (every process of both proxies), T_B_PIDS (the server
# side's), T_MASTERS (what to stop first), T_PORT (A's plaintext port), T_TLS_PORT (B's) -------
start_direct() {
    T_PIDS=() T_B_PIDS=() T_MASTERS=()
    T_PORT=$APP T_TLS_PORT=""
}

remora_ready() { # remora_ready ADMIN LOG
    local i
    for ((i = 0; i < 100; i++)); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/ready") == 200 ]] && return 0
        sleep 0.05
    done
    b_log "remora did not become ready: $(cat "$2")"
    return 1
}

HCM_TYPE=type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
ROUTER='http_filters: [{name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]'
TLS_PARAMS="tls_params: {tls_minimum_protocol_version: TLSv1_2, tls_maximum_protocol_version: TLSv1_2, cipher_suites: [$SUITE], ecdh_curves: [$GROUP, P-256]}"

start_remora() {
    local d=$work/remora a_admin b_admin
    mkdir -p "$d"
    a_admin=$(b_free_port) b_admin=$(b_free_port)
    T_PORT=$(b_free_port) T_TLS_PORT=$(b_free_port)
    # B, the inbound side: strict mTLS (tls_inspector, a tls chain requiring a client certificate
    # from the mesh), then the HCM to the app. Defaults otherwise; no access log.
    # listener_filters_timeout is Envoy's default (15 s), not remora's 100 ms: with the 100 ms
    # default, while B is saturated by full handshakes (≈5 ms of CPU each), connections whose
    # ClientHello has already arrived are timed out before it is read and reset as matching no
    # chain (listener.inbound.no_filter_chain_match), and `openssl s_time` aborts on the reset.
    cat >"$d/b.yaml" <<EOF
node: {id: bench-b.local, cluster: bench}
admin: {address: {socket_address: {address: 127.0.0.1, port_value: $b_admin}}}
static_resources:
  listeners:
  - name: inbound
    address: {socket_address: {address: 127.0.0.1, port_value: $T_TLS_PORT}}
    listener_filters_timeout: 15s
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
            virtual_hosts: [{name: app, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: app}}]}]
          $ROUTER
  clusters:
  - name: app
    type: STATIC
    connect_timeout: 5s
    load_assignment: {cluster_name: app, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $APP}}}}]}]}
EOF
    # A, the outbound side: plaintext HTTP in, a cluster that originates mTLS to B and expects
    # B's SPIFFE ID.
    cat >"$d/a.yaml" <<EOF
node: {id: bench-a.local, cluster: bench}
admin: {address: {socket_address: {address: 127.0.0.1, port_value: $a_admin}}}
static_resources:
  listeners:
  - name: outbound
    address: {socket_address: {address: 127.0.0.1, port_value: $T_PORT}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": $HCM_TYPE
          stat_prefix: outbound
          route_config:
            virtual_hosts: [{name: b, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: b}}]}]
          $ROUTER
  clusters:
  - name: b
    type: STATIC
    connect_timeout: 5s
    load_assignment: {cluster_name: b, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $T_TLS_PORT}}}}]}]}
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        common_tls_context:
          $TLS_PARAMS
          tls_certificates:
          - certificate_chain: {filename: $CCERT}
            private_key: {filename: $CKEY}
          validation_context:
            trusted_ca: {filename: $CA}
            match_typed_subject_alt_names:
            - {san_type: URI, matcher: {exact: "$SERVER_ID"}}
EOF
    b_bg "$d/b.log" taskset -c "$B_CPU" "$REMORA_BIN" --config "$d/b.yaml" --concurrency 1 \
        --log-level warning
    T_B_PIDS=("$B_PID") T_PIDS=("$B_PID") T_MASTERS=("$B_PID")
    remora_ready "$b_admin" "$d/b.log" || return 1
    b_bg "$d/a.log" taskset -c "$A_CPU" "$REMORA_BIN" --config "$d/a.yaml" --concurrency 1 \
        --log-level warning
    T_PIDS+=("$B_PID") T_MASTERS+=("$B_PID")
    T_A_ADMIN=$a_admin T_B_ADMIN=$b_admin
    remora_ready "$a_admin" "$d/a.log"
}

haproxy_start() { # haproxy_start NAME CPU CONFIG: checks and starts one HAProxy
    local d=$work/haproxy
    haproxy -c -q -f "$3" >"$d/$1-check.log" 2>&1 || {
        b_log "haproxy rejects $3: $(cat "$d/$1-check.log")"
        return 1
    }
    b_bg "$d/$1.log" taskset -c "$2" haproxy -db -f "$3"
}

start_haproxy() {
    local d=$work/haproxy
    mkdir -p "$d"
    T_PORT=$(b_free_port) T_TLS_PORT=$(b_free_port)
    # B: TLS frontend requiring a client certificate from our root; keep-alive to the app.
    cat >"$d/b.cfg" <<EOF
global
    nbthread 1
    maxconn 8192
    ssl-default-bind-ciphers $SUITE
    ssl-default-bind-curves $GROUPS_OPENSSL
    ssl-default-bind-options ssl-min-ver TLSv1.2 ssl-max-ver TLSv1.2
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 300s
    timeout server 300s
frontend inbound
    bind 127.0.0.1:$T_TLS_PORT ssl crt $pki/server/haproxy.pem ca-file $CA verify required
    default_backend app
backend app
    server app 127.0.0.1:$APP
EOF
    # A: plaintext in, mTLS out (client certificate, B verified by chain and DNS SAN),
    # connections to B reused by every client connection (http-reuse always).
    cat >"$d/a.cfg" <<EOF
global
    nbthread 1
    maxconn 8192
    ssl-default-server-ciphers $SUITE
    ssl-default-server-options ssl-min-ver TLSv1.2 ssl-max-ver TLSv1.2
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 300s
    timeout server 300s
frontend outbound
    bind 127.0.0.1:$T_PORT
    default_backend b
backend b
    server b 127.0.0.1:$T_TLS_PORT ssl crt $pki/client/haproxy.pem ca-file $CA verify required verifyhost $SERVER_DNS
EOF
    T_PIDS=() T_B_PIDS=() T_MASTERS=()
    haproxy_start b "$B_CPU" "$d/b.cfg" || return 1
    T_B_PIDS=("$B_PID") T_PIDS=("$B_PID") T_MASTERS=("$B_PID")
    b_wait_listen "$T_TLS_PORT" || {
        b_log "haproxy B did not listen: $(cat "$d/b.log")"
        return 1
    }
    haproxy_start a "$A_CPU" "$d/a.cfg" || return 1
    T_PIDS+=("$B_PID") T_MASTERS+=("$B_PID")
    b_wait_listen "$T_PORT" || {
        b_log "haproxy A did not listen: $(cat "$d/a.log")"
        return 1
    }
}

start_nginx() {
    local d=$work/nginx
    mkdir -p "$d/a/logs" "$d/b/logs"
    T_PORT=$(b_free_port) T_TLS_PORT=$(b_free_port)
    # B: listen ssl, client certificate required; keep-alive to the app. keepalive_requests as
    # in the app: no side closes a connection during the run.
    cat >"$d/b/nginx.conf" <<EOF
worker_processes 1;
worker_rlimit_nofile 16384;
error_log $d/b/logs/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
$(b_nginx_temp_paths "$d/b")
    upstream app {
        server 127.0.0.1:$APP;
        keepalive 64;
        keepalive_requests 100000000;
    }
    server {
        listen 127.0.0.1:$T_TLS_PORT ssl;
        ssl_certificate $SCERT;
        ssl_certificate_key $SKEY;
        ssl_client_certificate $CA;
        ssl_verify_client on;
        ssl_protocols TLSv1.2;
        ssl_ciphers $SUITE;
        ssl_ecdh_curve $GROUPS_OPENSSL;
        ssl_prefer_server_ciphers on;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
    # A: plaintext in, mTLS out to a keep-alive upstream; B verified by chain and DNS SAN.
    cat >"$d/a/nginx.conf" <<EOF
worker_processes 1;
worker_rlimit_nofile 16384;
error_log $d/a/logs/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
$(b_nginx_temp_paths "$d/a")
    upstream b {
        server 127.0.0.1:$T_TLS_PORT;
        keepalive 64;
        keepalive_requests 100000000;
    }
    server {
        listen 127.0.0.1:$T_PORT;
        location / {
            proxy_pass https://b;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_ssl_certificate $CCERT;
            proxy_ssl_certificate_key $CKEY;
            proxy_ssl_trusted_certificate $CA;
            proxy_ssl_verify on;
            proxy_ssl_name $SERVER_DNS;
            proxy_ssl_protocols TLSv1.2;
            proxy_ssl_ciphers $SUITE;
            proxy_ssl_session_reuse on;
        }
    }
}
EOF
    T_PIDS=() T_B_PIDS=() T_MASTERS=()
    b_nginx_start "$d/b" "$B_CPU" "$T_TLS_PORT" || return 1
    T_B_PIDS=("${NGX_PIDS[@]}") T_PIDS=("${NGX_PIDS[@]}") T_MASTERS=("${NGX_PIDS[0]}")
    b_nginx_start "$d/a" "$A_CPU" "$T_PORT" || return 1
    T_PIDS+=("${NGX_PIDS[@]}") T_MASTERS+=("${NGX_PIDS[0]}")
}

stop_target() { # stop the masters, then any of their processes that outlived them
    local p i
    for p in "${T_MASTERS[@]}"; do b_stop "$p"; done
    for p in "${T_PIDS[@]}"; do
        for ((i = 0; i < 40; i++)); do
            [[ -e /proc/$p && $(awk '{ print $3 }' "/proc/$p/stat" 2>/dev/null) != Z ]] || break
            sleep 0.05
        done
        kill "$p" 2>/dev/null
    done
    T_PIDS=() T_B_PIDS=() T_MASTERS=()
    return 0
}

# --- measurements: each writes M[target.metric] for the current try ---------------------------

# measure_closed TARGET: wrk keep-alive, as fast as the pair (or the load side) goes
measure_closed() {
    local t=$1 out=$work/wrk-$1.txt c0=0 c1=0 b0=0 b1=0 n0 n1 parsed rps p50 p99 reqs err
    pin_load wrk -t1 -c"$WRK_CONNS" -d1s "http://127.0.0.1:$T_PORT/" >/dev/null 2>&1 # warm-up
    if ((${#T_PIDS[@]})); then c0=$(b_cpu_ticks "${T_PIDS[@]}") b0=$(b_cpu_ticks "${T_B_PIDS[@]}"); fi
    n0=$(b_now_ns)
    pin_load wrk -t1 -c"$WRK_CONNS" -d"${SECS}s" --latency "http://127.0.0.1:$T_PORT/" >"$out" 2>&1
    n1=$(b_now_ns)
    if ((${#T_PIDS[@]})); then c1=$(b_cpu_ticks "${T_PIDS[@]}") b1=$(b_cpu_ticks "${T_B_PIDS[@]}"); fi
    parsed=$(b_wrk_parse "$out") || {
        b_fail "$t: wrk produced no result: $(head -c 500 "$out")"
        return
    }
    read -r rps p50 p99 reqs err <<<"$parsed"
    ((err > 0)) && NOTES+=("$t, closed loop: wrk counted $err socket errors or non-2xx responses")
    M[$t.rps]=$rps M[$t.p50]=$p50 M[$t.p99]=$p99
    if ((${#T_PIDS[@]})); then
        M[$t.cpu_req]=$(b_cpu_per $((c1 - c0)) "$reqs")
        M[$t.cpu_req_a]=$(b_cpu_per $((c1 - c0 - (b1 - b0))) "$reqs")
        M[$t.cpu_req_b]=$(b_cpu_per $((b1 - b0)) "$reqs")
        M[$t.cpu_use]=$(b_cpu_pct $((c1 - c0)) $((n1 - n0)))
        M[$t.tls_conns]=$(b_established "$T_TLS_PORT")
    fi
}

# measure_fixed TARGET: h2load paces every one of the WRK_CONNS connections at the same rate
measure_fixed() { b_measure_fixed "$1"; }

# handshakes TARGET new|reuse: HS_CLIENTS `openssl s_time` clients at B's TLS port for SECS, each
# presenting the client certificate and offering only the pair's suite; -new makes every
# connection a full handshake, -reuse resumes the first one's session (a ticket) every time.
# B's CPU over the run ÷ handshakes.
handshakes() {
    local t=$1 mode=$2 k=hs_$2 i n total=0 c0 c1 n0 n1 pids=() failed=0
    c0=$(b_cpu_ticks "${T_B_PIDS[@]}")
    n0=$(b_now_ns)
    for ((i = 0; i < HS_CLIENTS; i++)); do
        b_bg "$work/s_time-$t-$mode-$i.txt" taskset -c "$LOAD_CPU" openssl s_time \
            -connect "127.0.0.1:$T_TLS_PORT" "-$mode" -time "$SECS" -tls1_2 -cipher "$SUITE" \
            -cert "$CCERT" -key "$CKEY" -CAfile "$CA"
        pids+=("$B_PID")
    done
    for i in "${pids[@]}"; do
        wait "$i"
        b_forget "$i"
    done
    n1=$(b_now_ns)
    c1=$(b_cpu_ticks "${T_B_PIDS[@]}")
    for ((i = 0; i < HS_CLIENTS; i++)); do
        n=$(b_s_time_count "$work/s_time-$t-$mode-$i.txt") || {
            failed=1
            break
        }
        total=$((total + n))
    done
    if ((failed || total == 0)); then
        b_fail "$t: openssl s_time -$mode did not complete: $(tail -c 400 "$work/s_time-$t-$mode-$i.txt")"
        return
    fi
    M[$t.$k]=$(awk -v n="$total" -v ns=$((n1 - n0)) 'BEGIN { printf "%.1f", n / (ns / 1e9) }')
    # s_time prints one mark per connection: "r" when the session was resumed, "*" when not.
    M[$t.${k}_resumed]=$(grep -hE '^[*r]+$' "$work/s_time-$t-$mode-"*.txt | tr -cd 'r*' |
        awk '{ n = length($0); r = gsub(/r/, ""); printf "%.1f", n ? r / n * 100 : 0 }')
    M[$t.${k}_cpu]=$(b_cpu_per $((c1 - c0)) "$total")
    M[$t.${k}_use]=$(b_cpu_pct $((c1 - c0)) $((n1 - n0)))
}

check_hop() { # the path serves the app's 1 KiB body
    local got
    got=$(curl -s --max-time 5 "http://127.0.0.1:$T_PORT/")
    [[ ${#got} -eq 1024 ]] || {
        b_log "$1: GET / through the path returned ${#got} bytes, not 1024: $(head -c 300 <<<"$got")"
        return 1
    }
}

# probe_suite TARGET: what B negotiates with a client that presents our client certificate and
# offers OpenSSL's whole default list (TLS 1.3 included), i.e. B's own choice; A's side offers
# only SUITE, so the hop can only be that suite or fail.
probe_suite() {
    local t=$1 got
    got=$(b_tls_probe "127.0.0.1:$T_TLS_PORT" "$CCERT" "$CKEY" "$CA") || {
        b_fail "$t: openssl s_client could not complete an mTLS handshake with B"
        return 1
    }
    M[$t.suite]=$got
    [[ $got == "TLSv1.2 $SUITE $GROUP" ]] ||
        NOTES+=("$t: B negotiates \"$got\", not \"TLSv1.2 $SUITE $GROUP\"")
}

after_start() { # the suite B negotiates, and memory right after start
    ((${#T_PIDS[@]})) || return 0
    probe_suite "$1"
    sleep 0.3
    M[$1.rss_idle]=$(b_status_kib VmRSS "${T_PIDS[@]}")
}
before_stop() {
    ((${#T_PIDS[@]})) && M[$1.rss_peak]=$(b_status_kib VmHWM "${T_PIDS[@]}")
    return 0
}
measure_handshakes() { # full, then resumed handshakes at B; nothing for direct
    ((${#T_PIDS[@]})) || return 1
    handshakes "$1" new
    handshakes "$1" reuse
}

B_TARGET_ARRAYS=(T_PIDS T_B_PIDS T_MASTERS)
B_TARGET_SCALARS=(T_PORT T_TLS_PORT)
NOTES=()
b_log "mtls: ${SECS}s per load run, fixed rate ${FIXED_RPS} req/s, $HS_CLIENTS handshake clients," \
    "targets: $TARGETS, $ROUNDS round(s)"
b_rounds_start
kinds=(closed)
[[ -z $FIXED_SKIP ]] && kinds+=(fixed)
((HS_CLIENTS > 0)) && kinds+=(handshakes)
b_rounds_run "${kinds[@]}"
b_rounds_stop
b_medians

# --- report --------------------------------------------------------------------------------
# metric key | label | better (hi/lo/-) | printf format | scale applied to the stored value
METRICS=(
    "suite|Between A and B (openssl s_client at B: version, suite, group)|-|%s|"
    "rps|Closed loop: requests/s (wrk, ${WRK_CONNS} conns, 1 KiB)|hi|%.0f|1"
    "p50|Closed loop: latency p50 (ms)|lo|%.3f|1"
    "p99|Closed loop: latency p99 (ms)|lo|%.3f|1"
    "cpu_req|Closed loop: CPU per request, both proxies (µs)|lo|%.2f|1"
    "cpu_req_a|Closed loop: … of which client side A (µs)|lo|%.2f|1"
    "cpu_req_b|Closed loop: … of which server side B (µs)|lo|%.2f|1"
    "cpu_use|Closed loop: both proxies' CPU use (% of their one core)|-|%.0f|1"
    "tls_conns|Closed loop: TLS connections A → B open at the end|-|%d|1"
    "noise_closed|Closed loop: other processes' CPU (% of all cores; noise)|-|%.1f|1"
)
[[ -z $FIXED_SKIP ]] && METRICS+=(
    "fx_rps|Fixed rate: requests/s reached (h2load, ${FIXED_RPS} asked)|-|%.0f|1"
    "fx_p50|Fixed rate: latency p50 (ms)|lo|%.3f|1"
    "fx_p99|Fixed rate: latency p99 (ms)|lo|%.3f|1"
    "fx_cpu_req|Fixed rate: CPU per request, both proxies (µs)|lo|%.2f|1"
    "fx_cpu_use|Fixed rate: both proxies' CPU use (% of their one core)|-|%.0f|1"
    "noise_fixed|Fixed rate: other processes' CPU (% of all cores; noise)|-|%.1f|1"
)
((HS_CLIENTS > 0)) && METRICS+=(
    "hs_new|Full mTLS handshakes/s at B (s_time -new, ${HS_CLIENTS} clients)|hi|%.0f|1"
    "hs_new_cpu|B's CPU per full handshake (µs)|lo|%.0f|1"
    "hs_new_resumed|… of those, resumed (s_time's marks, %; must be 0)|-|%.1f|1"
    "hs_new_use|B's CPU use during full handshakes (% of its core)|-|%.0f|1"
    "hs_reuse|Resumed handshakes/s at B (s_time -reuse, session ticket)|hi|%.0f|1"
    "hs_reuse_cpu|B's CPU per resumed handshake (µs)|lo|%.1f|1"
    "hs_reuse_resumed|… of those, resumed (s_time's marks, %)|-|%.1f|1"
    "hs_reuse_use|B's CPU use during resumed handshakes (% of its core)|-|%.0f|1"
    "noise_handshakes|Handshakes: other processes' CPU (% of all cores; noise)|-|%.1f|1"
)
METRICS+=(
    "rss_idle|RSS after start, both proxies (MiB)|lo|%.1f|0.0009765625"
    "rss_peak|Peak RSS over the run, both proxies (MiB)|lo|%.1f|0.0009765625"
)
PEERS=()
for t in $TARGETS; do [[ $t == direct || $t == remora ]] || PEERS+=("$t"); done

remora_rev=$(git -C "$root" describe --always --dirty 2>/dev/null || echo "not a git tree")
pinning() {
    if [[ $A_CPU == "$B_CPU" ]]; then
        echo "both proxies of a pair on CPU $A_CPU; the load generator (wrk, h2load, s_time) and" \
            "the nginx app on CPU $LOAD_CPU"
    else
        echo "client-side proxy A on CPU $A_CPU, server-side proxy B on CPU $B_CPU; the load" \
            "generator and the nginx app on CPU $LOAD_CPU"
    fi
}
report() {
    echo "## Two-hop mTLS"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- machine: $(b_machine)"
    echo "- path: client → A (plaintext HTTP/1.1) → mTLS → B → app, keep-alive on every hop"
    echo "- remora: $REMORA (built $REMORA_BUILT; tree $remora_rev), $(b_ver mbedtls), --concurrency 1" \
        "each; A: HCM → cluster with an UpstreamTlsContext (expects B's SPIFFE ID); B: tls_inspector" \
        "→ DownstreamTlsContext (require_client_certificate, SAN prefix) → HCM → app; no access log"
    echo "- peers: $(b_ver haproxy) pairs (nbthread 1 each; A: server … ssl crt … ca-file … verify" \
        "required verifyhost, http-reuse always; B: bind … ssl crt … ca-file … verify required)," \
        "$(b_ver nginx) pairs (worker_processes 1 each; A: proxy_pass https to an upstream with" \
        "keepalive 64, proxy_ssl_certificate, proxy_ssl_verify on, proxy_ssl_session_reuse on; B:" \
        "listen ssl, ssl_verify_client on); both with $(b_ver openssl)"
    echo "- TLS between A and B, every pair: TLS 1.2, $SUITE, $GROUP; P-256 root, P-256 leaves (client:" \
        "$CLIENT_ID from remoractl; server: $SERVER_ID + DNS $SERVER_DNS, same root), the same files"
    echo "- load: $(b_ver wrk) (closed loop)$([[ -z $FIXED_SKIP ]] && echo ", $(b_ver h2load) --h1" \
        "(fixed rate)"), openssl s_time (handshakes, at B directly); app: nginx, 1 worker, 1 KiB body"
    echo "- pinning: $(pinning)"
    echo "- rounds: $ROUNDS (all pairs up at once; every measurement takes them in turn, round after round; the table gives medians)"
    echo "- BENCH_SECONDS=$SECS per load run (the closed loop after 1 s of warm-up), ${WRK_CONNS} keep-alive" \
        "connections;$([[ -z $FIXED_SKIP ]] && echo " fixed rate $FIXED_RPS req/s" \
            "($FIXED_PER_CONN per connection)" || echo " fixed-rate run skipped: $FIXED_SKIP")"
    echo
    b_table "best peer pair"
    echo
    echo "Ratios are remora's value divided by the other's: above 1× is better for requests/s and"
    echo "handshakes/s, worse for latency, CPU and memory. Best peer pair is the better of ${PEERS[*]}"
    echo "on that row. Rows with — are context, not results. CPU per request is both proxies' CPU"
    echo "time (utime+stime, nginx masters and workers summed) ÷ requests; the handshake rows are"
    echo "B's alone, with s_time talking to B directly. With rounds, the best peer pair is the one"
    echo "with the best median on that row, and a ratio is the median of the per-round ratios"
    echo "(remora ÷ that pair, same round); \"as good in W of N\" counts the rounds where remora was"
    echo "at least as good as that pair."
    b_sentences
    b_rounds_block "rps|closed-loop requests/s" "p99|closed-loop p99 (ms)" "fx_p99|fixed-rate p99 (ms)" \
        "cpu_req|closed-loop CPU per request (µs)" "fx_cpu_req|fixed-rate CPU per request (µs)" \
        "hs_new_cpu|B's CPU per full handshake (µs)"
    load_side
    targets_block
    b_notes
}

# load_side: which closed-loop and handshake numbers are capacities and which are the load side's
load_side() {
    local t d=${R[direct.rps]:-} top="" topt="" u lines=()
    for t in "${PEERS[@]}" remora; do
        [[ -n ${R[$t.rps]:-} ]] || continue
        if [[ -z $top ]] || awk -v a="${R[$t.rps]}" -v b="$top" 'BEGIN { exit !(a > b) }'; then
            top=${R[$t.rps]} topt=$t
        fi
    done
    [[ -n $top ]] || return 0
    if [[ -n $d ]] && awk -v d="$d" -v p="$top" 'BEGIN { exit !(d < 1.15 * p) }'; then
        lines+=("closed-loop requests/s is near direct for $topt ($(b_fmt %.0f 1 "$top") against $(b_fmt %.0f 1 "$d")): the load side may be the ceiling there; compare by CPU per request")
    fi
    for t in "${PEERS[@]}" remora; do
        u=${R[$t.cpu_use]:-}
        [[ -n $u ]] || continue
        if awk -v u="$u" 'BEGIN { exit !(u >= 90) }'; then
            lines+=("$t: both proxies used $(b_fmt %.0f 1 "$u")% of their shared core in the closed loop: its requests/s is the pair's capacity")
        else
            lines+=("$t: both proxies used $(b_fmt %.0f 1 "$u")% of their shared core in the closed loop: not saturated, the load side set the rate")
        fi
        u=${R[$t.hs_new_use]:-}
        [[ -n $u ]] || continue
        awk -v u="$u" 'BEGIN { exit !(u < 90) }' &&
            lines+=("$t: B used $(b_fmt %.0f 1 "$u")% of its core during the full handshakes: the s_time clients (OpenSSL, on the load core) were the ceiling; compare by B's CPU per handshake")
    done
    ((${#lines[@]})) || return 0
    echo
    echo "Load side:"
    for t in "${lines[@]}"; do echo "- $t"; done
}

targets_block() { # the issue's targets for remora, met or not, with the numbers
    local key name
    echo
    echo "Targets (issue: two-hop mTLS against the best peer pair):"
    b_target "requests/s ≥ 1.0× the best peer pair (closed loop)" rps hi 1 %.0f
    for key in p99 fx_p99; do
        [[ $key == fx_p99 && -n $FIXED_SKIP ]] && continue
        name="closed loop"
        [[ $key == fx_p99 ]] && name="fixed rate $FIXED_RPS req/s"
        b_target "p99 ≤ the best peer pair's ($name, ms)" "$key" lo 1 %.3f
    done
}

mkdir -p "$OUT_DIR"
report | tee "$OUT"
b_log "written to $OUT"
exit "$B_FAILED"
