#!/usr/bin/env bash
# Story: remora's HTTP connection manager on loopback in front of nginx apps routes by virtual
# host and path, splits by weight, reuses upstream connections, streams chunked bodies both ways
# intact, answers errors like Envoy (404 NR, 503 UH/UF, 504 UT), answers pipelined requests in
# order, rejects request smuggling before the app sees it, retries a keep-alive connection the
# server closed, and sniffs HTTP from other TCP on one port. Needs no root.
# checks: 97
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=test/lib/testlib.sh
source "$root/test/lib/testlib.sh"
t_require_cmd nginx socat curl sha256sum gzip jq
# shellcheck source=test/lib/loopback.sh
source "$root/test/lib/loopback.sh"
REMORA=$LB_BIN/remora
work=$LB_WORK

# --- apps: two nginx services; a slow one; a dead port; a server that drops kept-alive conns --
mkdir -p "$work/www/upload" "$work/logs" "$work/body"
# nginx workers run as an unprivileged user: let them in and let them write uploads.
chmod 755 "$work" "$work/www"
chmod 777 "$work/www/upload" "$work/body"
head -c $((8 << 20)) /dev/urandom | base64 -w 76 >"$work/www/big.txt"
head -c 20000 "$work/www/big.txt" >"$work/www/small.txt"
cat >"$work/nginx.conf.in" <<EOF
worker_processes 1;
error_log $work/logs/error.log;
pid $work/nginx.pid;
events { worker_connections 1024; }
http {
  access_log $work/logs/access.log;
  client_body_temp_path $work/body;
  proxy_temp_path $work/proxy;
  fastcgi_temp_path $work/fastcgi;
  uwsgi_temp_path $work/uwsgi;
  scgi_temp_path $work/scgi;
  client_max_body_size 100m;
  keepalive_timeout 60s;
  server {
    listen 127.0.0.1:@A@;
    root $work/www;
    location /upload/ { dav_methods PUT; create_full_put_path on; }
    location /gz/ { alias $work/www/; gzip on; gzip_types text/plain; gzip_min_length 0; add_trailer x-checksum abc123; }
    location / { return 200 "svc-a \$request_uri host=\$host rid=\$http_x_request_id xfp=\$http_x_forwarded_proto added=\$http_x_added\n"; }
  }
  server {
    listen 127.0.0.1:@B@;
    location / { return 200 "svc-b \$request_uri\n"; }
  }
}
EOF
apps_fail() {
    t_fail apps_start "$1"
    t_summary
}
lb_serve "A B" "$work/nginx.log" lb_write_exec "$work/nginx.conf" "$(cat "$work/nginx.conf.in")" \
    nginx -p "$work" -c "$work/nginx.conf" -g 'daemon off;' || apps_fail "nginx"
# The slow app never answers within the routes' timeouts (it sleeps: its behaviour, not a wait).
lb_serve SLOW "$work/slow.log" socat TCP-LISTEN:@SLOW@,bind=127.0.0.1,reuseaddr,fork,backlog=64 \
    SYSTEM:'sleep 5' || apps_fail slow
lb_dead_port DEAD || apps_fail "no dead port"
# Answers one request with keep-alive, then closes the connection when the next one arrives
# without answering it: the keep-alive race, made deterministic.
cat >"$work/drop.sh" <<'EOF'
cr=$(printf '\r')
while IFS= read -r l && [ "${l%"$cr"}" != "" ]; do :; done
printf 'HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nonce'
read -r l
EOF
lb_serve DROP "$work/drop.log" socat TCP-LISTEN:@DROP@,bind=127.0.0.1,reuseaddr,fork,backlog=64 \
    SYSTEM:"sh $work/drop.sh" || apps_fail drop
# Answers an Upgrade with 101, then echoes: a WebSocket-like server at the byte level.
cat >"$work/ws.sh" <<'EOF'
cr=$(printf '\r')
while IFS= read -r l && [ "${l%"$cr"}" != "" ]; do :; done
printf 'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n'
exec cat
EOF
lb_serve WS "$work/ws.log" socat -t 10 TCP-LISTEN:@WS@,bind=127.0.0.1,reuseaddr,fork,backlog=64 \
    SYSTEM:"sh $work/ws.sh" || apps_fail ws
# Records the raw bytes it receives and never answers: what reached the upstream, byte for byte.
lb_serve REC "$work/rec.log" socat -u TCP-LISTEN:@REC@,bind=127.0.0.1,reuseaddr,fork \
    OPEN:"$work/recorded",creat,append || apps_fail rec
lb_serve ECHO "$work/echo.log" socat TCP-LISTEN:@ECHO@,bind=127.0.0.1,reuseaddr,fork,backlog=64 \
    SYSTEM:'echo banner; exec cat' || apps_fail echo

cluster() { # cluster NAME PORT... (no port: no endpoints)
    local name=$1
    shift
    printf '  - name: %s\n    connect_timeout: 1s\n    load_assignment:\n      endpoints:\n' "$name"
    if [[ $# -eq 0 ]]; then
        printf '      - lb_endpoints: []\n'
        return
    fi
    printf '      - lb_endpoints:\n'
    local p
    for p in "$@"; do
        printf '        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %s}}}\n' "$p"
    done
}
access_log_for() { # the ingress HCM logs text in Envoy's default format, the sniffed one JSON
    if [[ $1 == ingress ]]; then
        cat <<EOF
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: $work/ingress.log
EOF
    else
        cat <<EOF
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: $work/sniffed.json
              log_format:
                json_format: {code: "%RESPONSE_CODE%", path: "%REQ(:PATH)%", flags: "%RESPONSE_FLAGS%", upstream: "%UPSTREAM_HOST%"}
EOF
    fi
}
hcm() { # hcm STAT_PREFIX [extra HCM fields [extra Router fields]] — the listeners' HTTP connection manager
    cat <<EOF
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: $1
$(access_log_for "$1")
          upgrade_configs: [{upgrade_type: websocket}, {upgrade_type: CONNECT}]
${2:-}
          route_config:
            name: local
            virtual_hosts:
            - name: svc-a
              domains: ["svc-a", "svc-a.default.svc.cluster.local"]
              routes:
              - name: api
                match: {prefix: /api/}
                route: {cluster: svc-a, prefix_rewrite: /v1/}
                request_headers_to_add: [{header: {key: x-added, value: "yes"}}]
              - match: {prefix: /slow}
                route: {cluster: slow, timeout: 0.5s}
              - match: {prefix: /limited}
                route: {cluster: limited, timeout: 1s}
              - match: {prefix: /none}
                route: {cluster: empty}
              - match: {prefix: /dead}
                route: {cluster: dead}
              - match: {prefix: /drop}
                route: {cluster: drop}
              - match: {prefix: /record}
                route: {cluster: rec, timeout: 1s}
              - match: {prefix: /ws}
                route: {cluster: ws}
              - match: {prefix: /rehost}
                route: {cluster: svc-a, host_rewrite_literal: rewritten.example}
              - match: {prefix: /}
                route: {cluster: svc-a}
            - name: split
              domains: ["split"]
              routes:
              - match: {prefix: /}
                route:
                  weighted_clusters:
                    clusters:
                    - {name: svc-a, weight: 80}
                    - {name: svc-b, weight: 20}
            - name: tunnel
              domains: ["echo.local"]
              routes:
              - match: {connect_matcher: {}}
                route:
                  cluster: echo
                  upgrade_configs: [{upgrade_type: CONNECT, connect_config: {}}]
            - name: svc-b
              domains: ["svc-b", "svc-b:*"]
              routes:
              - match: {path: /ping}
                direct_response: {status: 200, body: {inline_string: "pong\n"}}
              - match: {prefix: /b/}
                route: {cluster: svc-b}
          http_filters:
          - name: envoy.filters.http.header_mutation
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation
              mutations:
                response_mutations:
                - append: {header: {key: x-remora-test, value: mutated}}
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router${3:-}}
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
EOF
    hcm ingress
    cat <<EOF
  - name: sniff
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    listener_filters:
    - name: envoy.filters.listener.http_inspector
      typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector}
      filter_disabled:
        or_match: {rules: [{destination_port_range: {start: 1, end: 2}}]}
    filter_chains:
    - filter_chain_match: {application_protocols: [http/1.1, http/1.0]}
      filters:
EOF
    hcm sniffed "" ", suppress_envoy_headers: true"
    cat <<EOF
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: opaque
          cluster: echo
  - name: opaque
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    listener_filters:
    - name: envoy.filters.listener.http_inspector
      typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector}
      filter_disabled:
        or_match: {rules: [{destination_port_range: {start: 1, end: 65536}}]}
    filter_chains:
    - filter_chain_match: {application_protocols: [http/1.1]}
      filters:
EOF
    hcm never
    cat <<EOF
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: opaque2
          cluster: echo
  - name: http10
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
EOF
    hcm http10 "          http_protocol_options: {accept_http_10: true}"
    cat <<EOF
  clusters:
EOF
    cluster svc-a "$A"
    cluster svc-b "$B"
    cluster slow "$SLOW"
    cluster dead "$DEAD"
    cluster drop "$DROP"
    cluster echo "$ECHO"
    cluster rec "$REC"
    cluster limited "$SLOW"
    printf '    circuit_breakers: {thresholds: [{max_requests: 1}]}\n'
    cluster ws "$WS"
    cluster empty
} >"$work/remora.yaml"

out=$("$REMORA" --config "$work/remora.yaml" --validate 2>&1)
t_eq config_validates "$?|$out" "0|configuration '$work/remora.yaml' OK"
if lb_remora remora "$work/remora.yaml" --concurrency 2; then t_ok remora_ready; else
    t_fail remora_ready "$(tr '\n' ' ' <"$work/remora.log")"
    t_summary
fi
REMORA_PID=$LB_PID ADMIN=$LB_ADMIN
HTTP=${LB_PORT[http]} SNIFF=${LB_PORT[sniff]} OPAQUE=${LB_PORT[opaque]} H10=${LB_PORT[http10]}
U=http://127.0.0.1:$HTTP

# --- routing by virtual host and path ---------------------------------------------------------
got=$(curl -s -H 'Host: svc-a' "$U/hello?x=1")
t_contains vhost_routes_to_service_a "$got" "svc-a /hello?x=1 host=svc-a"
t_contains request_id_added "$got" "rid="
rid=$(sed -n 's/.*rid=\([^ ]*\).*/\1/p' <<<"$got")
[[ $rid =~ ^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$ ]] &&
    t_ok request_id_is_uuid4 || t_fail request_id_is_uuid4 "got '$rid'"
t_contains forwarded_proto_added "$got" "xfp=http"
t_contains request_id_kept_when_sent \
    "$(curl -s -H 'Host: svc-a' -H 'x-request-id: mine-1' "$U/")" "rid=mine-1"
t_contains prefix_rewrite_and_header_add "$(curl -s -H 'Host: svc-a' "$U/api/things")" \
    "svc-a /v1/things host=svc-a rid="
t_contains route_header_added "$(curl -s -H 'Host: svc-a' "$U/api/x")" "added=yes"
t_eq host_port_is_ignored "$(curl -s -H 'Host: svc-b:8080' "$U/b/x")" "svc-b /b/x"
t_eq host_case_is_ignored "$(curl -s -H 'Host: SVC-B' "$U/b/y")" "svc-b /b/y"
t_eq direct_response "$(curl -s -H 'Host: svc-b' "$U/ping")" "pong"
hdr=$(curl -s -D - -o /dev/null -H 'Host: svc-a' "$U/")
t_contains header_mutation_filter_adds_response_header "${hdr,,}" "x-remora-test: mutated"
t_contains upstream_service_time_header "${hdr,,}" "x-envoy-upstream-service-time:"

# --- errors, Envoy style ----------------------------------------------------------------------
t_eq unknown_host_404 "$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: nowhere' "$U/")" 404
t_eq no_route_404 "$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: svc-b' "$U/other")" 404
t_eq no_endpoint_503 "$(curl -s -w ' %{http_code}' -H 'Host: svc-a' "$U/none")" \
    "no healthy upstream 503"
body=$(curl -s -w ' %{http_code}' -H 'Host: svc-a' "$U/dead")
t_contains connect_failure_503 "$body" "reset reason: connection failure 503"
start=$(date +%s%N)
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: svc-a' "$U/slow")
ms=$((($(date +%s%N) - start) / 1000000))
t_eq route_timeout_504 "$code" 504
((ms >= 400 && ms < 3000)) && t_ok route_timeout_after_half_a_second ||
    t_fail route_timeout_after_half_a_second "took ${ms}ms"
t_eq timeout_counted "$(stat "$ADMIN" cluster.slow.upstream_rq_timeout)" 1
t_eq no_healthy_counted "$(stat "$ADMIN" cluster.empty.upstream_cx_none_healthy)" 1
t_eq no_route_counted "$(stat "$ADMIN" http.ingress.no_route)" 2

# --- circuit breaking: over max_requests is answered 503 UO at once ---------------------------
# stat_is NAME WANT — the stat is WANT now.
stat_is() { [[ $(stat "$ADMIN" "$1") == "$2" ]]; }
curl -s -o /dev/null -H 'Host: svc-a' "$U/limited/first" &
first=$!
t_until 5 stat_is cluster.limited.upstream_rq_total 1 # the first request holds the one place
body=$(curl -s -w ' %{http_code}' -H 'Host: svc-a' "$U/limited/second")
t_contains overflow_503_uo "$body" "reset reason: overflow 503"
t_eq overflow_counted "$(stat "$ADMIN" cluster.limited.upstream_rq_pending_overflow)" 1
wait "$first" # answered 504 after its 1 s timeout: its place is given back
t_eq overflow_place_given_back \
    "$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: svc-a' "$U/limited/third")" 504

# --- weighted split ---------------------------------------------------------------------------
urls=()
for i in $(seq 1 400); do urls+=("$U/w$i"); done
res=$(curl -s -H 'Host: split' "${urls[@]}")
na=$(grep -c '^svc-a ' <<<"$res")
nb=$(grep -c '^svc-b ' <<<"$res")
t_eq weighted_split_answers_every_request "$((na + nb))" 400
# Each request picks svc-a with probability 0.8: within 4 standard deviations of 320.
t_binomial weighted_split_80_20 "$na" 400 0.8

# --- keep-alive reuse upstream ----------------------------------------------------------------
before=$(stat "$ADMIN" cluster.svc-b.upstream_cx_total)
urls=()
for i in $(seq 1 50); do urls+=("$U/b/k$i"); done
n=$(curl -s -H 'Host: svc-b' "${urls[@]}" | grep -c '^svc-b ')
after=$(stat "$ADMIN" cluster.svc-b.upstream_cx_total)
t_eq keepalive_fifty_requests_answered "$n" 50
((after - before <= 2)) && t_ok keepalive_reuses_upstream_connections ||
    t_fail keepalive_reuses_upstream_connections "$((after - before)) new upstream connections for 50 requests"

# --- bodies: chunked upload and chunked (gzip) download, checked by hash ----------------------
head -c $((16 << 20)) /dev/urandom >"$work/up.bin"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: svc-a' -H 'Transfer-Encoding: chunked' \
    -T "$work/up.bin" "$U/upload/up.bin")
t_eq chunked_upload_accepted "$code" 201
t_eq chunked_upload_intact "$(sha256sum <"$work/www/upload/up.bin" | cut -d' ' -f1)" \
    "$(sha256sum <"$work/up.bin" | cut -d' ' -f1)"
curl -s -H 'Host: svc-a' -o "$work/down.bin" "$U/upload/up.bin"
t_eq content_length_download_intact "$(sha256sum <"$work/down.bin" | cut -d' ' -f1)" \
    "$(sha256sum <"$work/up.bin" | cut -d' ' -f1)"
hdr=$(curl -s -D "$work/gz.hdr" -H 'Host: svc-a' -H 'Accept-Encoding: gzip' -o "$work/big.gz" \
    "$U/gz/big.txt" -w '%{http_code}')
t_contains chunked_download_is_chunked "$(tr 'A-Z' 'a-z' <"$work/gz.hdr")" \
    "transfer-encoding: chunked"
t_eq chunked_download_intact "$(gzip -dc "$work/big.gz" | sha256sum | cut -d' ' -f1)" \
    "$(sha256sum <"$work/www/big.txt" | cut -d' ' -f1)"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: svc-a' -H 'Content-Type: x/y' \
    --data-binary @"$work/up.bin" -X PUT "$U/upload/cl.bin")
t_eq content_length_upload_with_expect_continue "$code|$(cmp -s "$work/up.bin" "$work/www/upload/cl.bin" && echo same)" "201|same"

# --- trailers pass through both ways ---------------------------------------------------------
# The raw clients here keep their write side open (socat's shut-none) until they have the answer:
# a client's FIN while its request is in flight ends that request (DC), as in Envoy.
printf 'GET /gz/small.txt HTTP/1.1\r\nHost: svc-a\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n' |
    socat -t 30 - TCP:127.0.0.1:"$HTTP",shut-none >"$work/trailer.resp"
raw=$(tail -c 40 "$work/trailer.resp" | tr -d '\r\0')
t_contains response_trailer_forwarded "$raw" $'\n0\nx-checksum: abc123'
printf 'POST /record HTTP/1.1\r\nHost: svc-a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Trailer: yes\r\n\r\n' |
    socat -t 3 - TCP:127.0.0.1:"$HTTP",shut-none >/dev/null
rec=$(tr -d '\r' <"$work/recorded")
t_contains request_body_rechunked_upstream "$rec" $'\n5\nhello\n0\nX-Trailer: yes'

# --- Upgrade: 101 from the upstream turns the connection into a byte tunnel ------------------
coproc WSC { socat -t 5 - TCP:127.0.0.1:"$HTTP"; }
ws_pid=$WSC_PID
printf 'GET /ws HTTP/1.1\r\nHost: svc-a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n' >&"${WSC[1]}"
IFS= read -r -t 5 status <&"${WSC[0]}"
t_eq upgrade_answered_101 "${status%$'\r'}" "HTTP/1.1 101 Switching Protocols"
while IFS= read -r -t 5 l <&"${WSC[0]}" && [[ ${l%$'\r'} != "" ]]; do :; done
printf 'ping through the tunnel\n' >&"${WSC[1]}"
IFS= read -r -t 5 echoed <&"${WSC[0]}"
t_eq upgrade_tunnel_carries_bytes_both_ways "$echoed" "ping through the tunnel"
exec {WSC[1]}>&-
wait "$ws_pid" 2>/dev/null
# --- CONNECT, terminated: 200 from the proxy, then a byte tunnel to the route's cluster -----
coproc CON { socat -t 5 - TCP:127.0.0.1:"$HTTP"; }
con_pid=$CON_PID
printf 'CONNECT echo.local:443 HTTP/1.1\r\nHost: echo.local:443\r\n\r\n' >&"${CON[1]}"
IFS= read -r -t 5 status <&"${CON[0]}"
t_eq connect_answered_200 "${status%$'\r'}" "HTTP/1.1 200 OK"
IFS= read -r -t 5 blank <&"${CON[0]}"
IFS= read -r -t 5 banner <&"${CON[0]}"
printf 'through CONNECT\n' >&"${CON[1]}"
IFS= read -r -t 5 echoed <&"${CON[0]}"
t_eq connect_tunnel_reaches_cluster "$banner|$echoed" "banner|through CONNECT"
exec {CON[1]}>&-
wait "$con_pid" 2>/dev/null
t_eq connect_to_unrouted_host_404 \
    "$(printf 'CONNECT other:443 HTTP/1.1\r\nHost: other:443\r\n\r\n' | socat -t 2 - TCP:127.0.0.1:"$HTTP" | head -1 | tr -d '\r')" \
    "HTTP/1.1 404 Not Found"
t_eq upgrade_not_enabled_403 "$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: svc-a' \
    -H 'Connection: Upgrade' -H 'Upgrade: h2c' "$U/ws")" 403

# --- pipelining: three requests in one write, three answers in order --------------------------
req=$'GET /p1 HTTP/1.1\r\nHost: svc-a\r\n\r\nGET /p2 HTTP/1.1\r\nHost: svc-b\r\n\r\nGET /p3 HTTP/1.1\r\nHost: svc-a\r\nConnection: close\r\n\r\n'
got=$(printf '%s' "$req" | socat -t 5 - TCP:127.0.0.1:"$HTTP",shut-none | grep -a -o 'svc-a /p[0-9]\|pong\|HTTP/1.1 [0-9]*' | tr '\n' ' ')
t_eq pipelined_requests_answered_in_order "$got" "HTTP/1.1 200 svc-a /p1 HTTP/1.1 404 HTTP/1.1 200 svc-a /p3 "

# --- HTTP/1.0 needs accept_http_10, like Envoy ------------------------------------------------
t_eq http10_refused_without_accept_http_10 \
    "$(curl -s -0 -o /dev/null -w '%{http_code}' -H 'Host: svc-a' "$U/")" 426

# --- request smuggling is stopped at the sidecar ----------------------------------------------
app_before=$(wc -l <"$work/logs/access.log")
smuggle() { # smuggle NAME EXPECTED_STATUS RAW_REQUEST
    local got
    got=$(printf '%b' "$3" | socat -t 3 - TCP:127.0.0.1:"$HTTP" 2>/dev/null | head -1 | tr -d '\r')
    t_eq "smuggling_$1" "$got" "HTTP/1.1 $2 $(case $2 in 400) echo 'Bad Request' ;; 501) echo 'Not Implemented' ;; 431) echo 'Request Header Fields Too Large' ;; esac)"
}
smuggle cl_and_te 400 'POST / HTTP/1.1\r\nHost: svc-a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'
smuggle duplicate_cl 400 'POST / HTTP/1.1\r\nHost: svc-a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde'
smuggle te_not_chunked_last 400 'POST / HTTP/1.1\r\nHost: svc-a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n'
smuggle te_unknown 501 'POST / HTTP/1.1\r\nHost: svc-a\r\nTransfer-Encoding: gzip\r\n\r\n'
smuggle bare_lf 400 'GET / HTTP/1.1\nHost: svc-a\n\n'
smuggle obs_fold 400 'GET / HTTP/1.1\r\nHost: svc-a\r\nX-A: 1\r\n  folded\r\n\r\n'
smuggle space_before_colon 400 'GET / HTTP/1.1\r\nHost : svc-a\r\n\r\n'
smuggle nul_in_value 400 'GET / HTTP/1.1\r\nHost: svc-a\r\nX-A: a\0b\r\n\r\n'
smuggle huge_headers 431 "GET / HTTP/1.1\r\nHost: svc-a\r\nX-A: $(head -c 70000 /dev/zero | tr '\0' a)\r\n\r\n"
# A client still sending when the sidecar rejects its head gets the answer: the sidecar reads and
# drops the rest until the client closes (delayed close), where closing on unread bytes would
# send a reset that makes the client's kernel drop the 431 unread.
got=$( (printf 'GET / HTTP/1.1\r\nHost: svc-a\r\nX-A: '
    head -c 4000000 /dev/zero | tr '\0' a) | socat -t 3 - TCP:127.0.0.1:"$HTTP" 2>/dev/null |
    head -1 | tr -d '\r')
t_eq rejected_head_answered_while_client_still_sends "$got" "HTTP/1.1 431 Request Header Fields Too Large"
app_after=$(wc -l <"$work/logs/access.log")
t_eq smuggling_never_reaches_the_app "$((app_after - app_before))" 0
# A bad chunk comes after a valid head that may already be upstream: the stream is answered 400
# and the upstream connection is closed, never reused, so nothing can be smuggled through it.
smuggle bad_chunk_size 400 'POST / HTTP/1.1\r\nHost: svc-a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n'

# --- the keep-alive race: a pooled connection the server closes is retried once -----------
# Both requests on one client connection, so one worker and one upstream pool serve them.
got=$(curl -s -H 'Host: svc-a' "$U/drop" "$U/drop" | tr '\n' ' ')
t_eq drop_second_request_retried_on_fresh_connection "$got" "onceonce"
t_eq drop_retry_counted "$(stat "$ADMIN" cluster.drop.upstream_rq_retry)" 1

# --- protocol detection: HTTP to the connection manager, anything else to tcp_proxy --------
t_contains sniffed_http_goes_to_hcm "$(curl -s -H 'Host: svc-a' "http://127.0.0.1:$SNIFF/s")" \
    "svc-a /s host=svc-a"
hdr=$(curl -s -D - -o /dev/null -H 'Host: svc-a' "http://127.0.0.1:$SNIFF/s")
[[ ${hdr,,} == *"x-remora-test: mutated"* && ${hdr,,} != *x-envoy-upstream-service-time* ]]
t_eq router_suppress_envoy_headers_drops_upstream_service_time $? 0
t_eq sniffed_opaque_goes_to_tcp_proxy \
    "$(printf 'HELO x\n' | socat -t 2 - TCP:127.0.0.1:"$SNIFF" | tr '\n' ' ')" "banner HELO x "
start=$(date +%s%N)
got=$(timeout 5 socat -T 2 -u TCP:127.0.0.1:"$SNIFF" - 2>/dev/null | head -1)
ms=$((($(date +%s%N) - start) / 1000000))
t_eq server_first_protocol_gets_its_banner "$got" banner
t_eq sniff_stats "$(stat "$ADMIN" http.sniffed.downstream_rq_total)|$(stat "$ADMIN" tcp.opaque.downstream_cx_total)" "2|2"

# --- ports marked opaque skip detection: HTTP bytes go to tcp_proxy untouched --------------
got=$(printf 'GET / HTTP/1.1\r\nHost: svc-a\r\n\r\n' | socat -t 2 - TCP:127.0.0.1:"$OPAQUE" | head -2 | tr -d '\r' | tr '\n' ' ')
t_eq opaque_port_skips_detection "$got" "banner GET / HTTP/1.1 "
t_eq opaque_port_never_reached_hcm "$(stat "$ADMIN" http.never.downstream_rq_total)" 0

# --- HTTP/1.0 with accept_http_10; host_rewrite_literal ---------------------------------------
got=$(curl -s -0 -D "$work/h10.hdr" -H 'Host: svc-a' "http://127.0.0.1:$H10/ten")
t_contains http10_accepted_when_enabled "$got" "svc-a /ten host=svc-a"
t_contains http10_connection_closed "$(tr 'A-Z' 'a-z' <"$work/h10.hdr")" "connection: close"
t_contains host_rewrite_literal "$(curl -s -H 'Host: svc-a' "$U/rehost")" "host=rewritten.example"

# --- stats ------------------------------------------------------------------------------------
# 404 unknown host, 404 no route, 404 CONNECT, 403 upgrade, 404 pipelined, 426 HTTP/1.0,
# 7 smuggling 400s, two 431s, bad chunk 400
t_eq downstream_4xx_counted "$(stat "$ADMIN" http.ingress.downstream_rq_4xx)" 16
n=$(stat "$ADMIN" cluster.svc-a.upstream_rq_2xx)
((n > 300)) && t_ok upstream_2xx_counted || t_fail upstream_2xx_counted "got $n"
t_eq vhost_stats_count_the_split "$(stat "$ADMIN" vhost.split.upstream_rq_2xx)" 400
t_eq vhost_stats_count_svc_b "$(stat "$ADMIN" vhost.svc-b.upstream_rq_2xx)" 52
t_eq named_route_stats "$(stat "$ADMIN" vhost.svc-a.route.api.upstream_rq_2xx)" 2
t_contains vhost_latency_histogram "$(curl -s "http://127.0.0.1:$ADMIN/stats")" \
    "vhost.svc-b.upstream_rq_time: P0("
t_eq downstream_rq_active_back_to_zero "$(stat "$ADMIN" http.ingress.downstream_rq_active)" 0

# --- latency histograms and Istio's request metrics ------------------------------------------
txt=$(curl -s "http://127.0.0.1:$ADMIN/stats")
t_contains histogram_in_text_stats "$txt" "cluster.svc-a.upstream_rq_time: P0("
t_contains downstream_histogram_in_text_stats "$txt" "http.ingress.downstream_rq_time: P0("
prom=$(curl -s "http://127.0.0.1:$ADMIN/stats/prometheus")
t_contains prometheus_histogram_buckets "$prom" \
    'envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="svc-a",le="+Inf"}'
t_contains prometheus_istio_requests_total "$prom" \
    'istio_requests_total{reporter="source",source_workload="unknown",source_workload_namespace="unknown",destination_workload="unknown",destination_workload_namespace="unknown",destination_service="svc-a",destination_cluster="svc-a",request_protocol="http",response_code="200",grpc_response_status="",response_flags="-"}'
t_contains prometheus_istio_duration_histogram "$prom" 'istio_request_duration_milliseconds_count{'
count=$(grep -c '^# TYPE istio_requests_total counter$' <<<"$prom")
t_eq prometheus_istio_family_declared_once "$count" 1

# --- access logs: Envoy's default text format with response flags, and JSON -------------------
# Each worker flushes its access-log buffer once a second: wait until every line is there.
want_lines=(
    access_log_no_route_flag '"GET /other HTTP/1.1" 404 NR '
    access_log_no_healthy_upstream_flag '"GET /none HTTP/1.1" 503 UH '
    access_log_connect_failure_flag '"GET /dead HTTP/1.1" 503 UF '
    access_log_timeout_flag '"GET /slow HTTP/1.1" 504 UT '
    access_log_overflow_flag '"GET /limited/second HTTP/1.1" 503 UO '
    access_log_success_line "\"GET /api/things HTTP/1.1\" 200 - 0 "
    access_log_upstream_host "\"127.0.0.1:$A\""
)
log_has_all() {
    local log i
    log=$(cat "$work/ingress.log") && [[ -s $work/sniffed.json ]] || return 1
    for ((i = 1; i < ${#want_lines[@]}; i += 2)); do
        [[ $log == *"${want_lines[i]}"* ]] || return 1
    done
}
t_until 5 log_has_all
log=$(cat "$work/ingress.log")
for ((i = 0; i < ${#want_lines[@]}; i += 2)); do
    t_contains "${want_lines[i]}" "$log" "${want_lines[i + 1]}"
done
j=$(head -1 "$work/sniffed.json" | jq -c '{code, path, flags}')
t_eq access_log_json_line "$j" '{"code":200,"path":"/s","flags":"-"}'

# --- bad input storm: garbage, truncated heads and bodies, abrupt closes --------------------
reqs=(
    'GET / HTTP/1.1\r\nHost: svc-a\r\n'
    'POST /upload/x HTTP/1.1\r\nHost: svc-a\r\nContent-Length: 100000\r\n\r\nabc'
    'POST /api/ HTTP/1.1\r\nHost: svc-a\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc'
    'GET /ws HTTP/1.1\r\nHost: svc-a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nxyz'
    'GET /slow HTTP/1.1\r\nHost: svc-a\r\n\r\n'
)
for i in $(seq 1 60); do
    case $((i % 3)) in
    0) head -c $((RANDOM % 3000 + 1)) /dev/urandom ;;
    1) printf '%b' "${reqs[$((RANDOM % ${#reqs[@]}))]}" | head -c $((RANDOM % 120 + 1)) ;;
    2) printf '%b' "${reqs[$((RANDOM % ${#reqs[@]}))]}" ;;
    esac | timeout 2 socat -t 0.1 - TCP:127.0.0.1:"$HTTP" >/dev/null 2>&1
done
t_eq alive_after_bad_input_storm \
    "$(curl -s -m 5 -o /dev/null -w '%{http_code}' -H 'Host: svc-a' "$U/after-storm")" 200
t_until 5 stat_is http.ingress.downstream_rq_active 0
t_eq storm_leaves_no_stream_behind "$(stat "$ADMIN" http.ingress.downstream_rq_active)" 0

# --- drain: an idle keep-alive client does not hold the proxy for the drain time -----------
coproc IDLE { socat -t 30 - TCP:127.0.0.1:"$HTTP"; }
idle_pid=$IDLE_PID
printf 'GET /keep HTTP/1.1\r\nHost: svc-a\r\n\r\n' >&"${IDLE[1]}"
IFS= read -r -t 5 st <&"${IDLE[0]}"
t_eq idle_client_got_answer "${st%$'\r'}" "HTTP/1.1 200 OK"
# Every connection of the stories above is gone (half-open clients with partial heads too);
# only the idle keep-alive client is left.
t_eq only_the_idle_client_is_open "$(stat "$ADMIN" listener.http.downstream_cx_active)" 1
start=$(date +%s%N)
lb_stop "$REMORA_PID"
ms=$((($(date +%s%N) - start) / 1000000))
t_eq drains_and_exits_cleanly "$LB_STATUS" 0
((ms < 3000)) && t_ok drain_closes_idle_keepalive_connections ||
    t_fail drain_closes_idle_keepalive_connections "exit took ${ms}ms with an idle client"
exec {IDLE[1]}>&-
wait "$idle_pid" 2>/dev/null
t_summary
