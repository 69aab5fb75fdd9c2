#!/usr/bin/env bash
# Story: a client pod's sidecar routes HTTP by virtual host, path and method across two services whose
# pods run nginx behind their own sidecars: weighted split, keep-alive reuse, chunked bodies
# both ways checked by hash, 404/503/504 with Envoy's response flags in the access log,
# pipelined requests in order, and request smuggling stopped at the client's sidecar before
# any app sees it.
# checks: 26
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=test/lib/testlib.sh
source "$root/test/lib/testlib.sh"
t_require_root
t_require_cmd nginx socat curl setpriv sha256sum gzip
# shellcheck source=test/lib/simcluster.sh
source "$root/test/lib/simcluster.sh"
# shellcheck source=test/lib/meshconfig.sh
source "$root/test/lib/meshconfig.sh"
# shellcheck source=test/lib/apps.sh
source "$root/test/lib/apps.sh"

sim_init || exit 1
sim_pod client 198.18.0.2
sim_pod web1 198.18.0.3
sim_pod web2 198.18.0.4
sim_pod api 198.18.0.5
chmod 755 "$SIM_DIR"
mkdir -p "$SIM_DIR/logs" && chmod 777 "$SIM_DIR/logs"
# Service names resolve to their VIPs, as cluster DNS would answer them.
printf '198.19.0.20 web web.default web.default.svc.cluster.local\n198.19.0.21 api api.default api.default.svc.cluster.local\n' \
    >>"/etc/netns/$(sim_ns client)/hosts"

# --- apps: nginx in every server pod; the api pod also stores uploads and gzips -------------
for pod in web1 web2 api; do
    sim_nginx "$pod" 8080 "    location /upload/ { dav_methods PUT; }
    location /gz/ { alias $SIM_DIR/$pod-nginx/www/; gzip on; gzip_types text/plain; gzip_min_length 0; }
    location / { return 200 \"$pod \$request_uri\\n\"; }"
done
head -c $((4 << 20)) /dev/urandom | base64 -w 76 >"$SIM_DIR/api-nginx/www/big.txt"
# A slow app on the api pod: accepts and never answers (its sleep is its behaviour, not a wait).
sim_bg api "$SIM_DIR/slow.log" socat TCP-LISTEN:9000,fork,reuseaddr,backlog=64 SYSTEM:'sleep 5' \
    >/dev/null

# --- sidecars: the standard config for the servers, a routing config for the client ---------
mesh_config "$SIM_DIR/server.yaml"
cat >"$SIM_DIR/client.yaml" <<EOF
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 15000}}}
node: {id: client.default, cluster: client.default}
static_resources:
  listeners:
  - name: virtualOutbound
    address: {socket_address: {address: 0.0.0.0, port_value: 15001}}
    traffic_direction: OUTBOUND
    listener_filters:
    - name: envoy.filters.listener.original_dst
      typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst}
    - name: envoy.filters.listener.http_inspector
      typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector}
    filter_chains:
    - name: http-80
      filter_chain_match:
        destination_port: 80
        prefix_ranges: [{address_prefix: 198.19.0.0, prefix_len: 16}]
        application_protocols: [http/1.1, http/1.0]
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: outbound_80
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: $SIM_DIR/logs/client-access.log
          route_config:
            name: "80"
            virtual_hosts:
            - name: web.default.svc.cluster.local:80
              domains: [web, web.default, web.default.svc.cluster.local, 198.19.0.20]
              routes:
              - match: {prefix: /to-api/}
                route: {cluster: "outbound|80||api.default.svc.cluster.local", prefix_rewrite: /}
              - match: {prefix: /by-method/, headers: [{name: ":method", string_match: {exact: DELETE}}]}
                route: {cluster: "outbound|80||api.default.svc.cluster.local"}
              - match: {prefix: /split}
                route:
                  weighted_clusters:
                    clusters:
                    - {name: "outbound|80||web.default.svc.cluster.local", weight: 75}
                    - {name: "outbound|80||api.default.svc.cluster.local", weight: 25}
              - match: {prefix: /}
                route: {cluster: "outbound|80||web.default.svc.cluster.local"}
            - name: api.default.svc.cluster.local:80
              domains: [api, api.default, api.default.svc.cluster.local, 198.19.0.21]
              routes:
              - match: {prefix: /slow}
                route: {cluster: slow, timeout: 0.5s}
              - match: {prefix: /none}
                route: {cluster: empty}
              - match: {prefix: /}
                route: {cluster: "outbound|80||api.default.svc.cluster.local"}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
    default_filter_chain:
      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: PassthroughCluster
          cluster: PassthroughCluster
  clusters:
  - {name: PassthroughCluster, type: ORIGINAL_DST, lb_policy: CLUSTER_PROVIDED}
  - name: "outbound|80||web.default.svc.cluster.local"
    load_assignment:
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 198.18.0.3, port_value: 8080}}}
        - endpoint: {address: {socket_address: {address: 198.18.0.4, port_value: 8080}}}
  - name: "outbound|80||api.default.svc.cluster.local"
    load_assignment:
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 198.18.0.5, port_value: 8080}}}
  - name: slow
    load_assignment:
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 198.18.0.5, port_value: 9000}}}
  - name: empty
    load_assignment: {endpoints: [{lb_endpoints: []}]}
EOF
sim_capture client && sim_sidecar client "$SIM_DIR/client.yaml" --concurrency 1 ||
    { t_fail sidecar_client "did not become ready"; t_summary; }
for pod in web1 web2 api; do
    sim_capture "$pod" && sim_sidecar "$pod" "$SIM_DIR/server.yaml" --concurrency 1 ||
        { t_fail "sidecar_$pod" "did not become ready"; t_summary; }
done
t_ok sidecars_ready

stat() { sim_admin "$1" /stats | awk -v n="$2:" '$1 == n { print $2 }'; }
c() { sim_exec client curl -s -m 10 "$@"; }
WEB='outbound|80||web.default.svc.cluster.local'

# --- virtual hosts and paths across two services ------------------------------------------
case $(c http://web/hello) in "web1 /hello" | "web2 /hello") t_ok vhost_web_by_name ;;
*) t_fail vhost_web_by_name "got '$(c http://web/hello)'" ;; esac
t_eq vhost_api_by_fqdn "$(c -H 'Host: api.default.svc.cluster.local' http://198.19.0.21/x)" "api /x"
t_eq path_route_to_other_service_with_rewrite "$(c -H 'Host: web' http://198.19.0.20/to-api/y)" "api /y"
# A ":method" matcher matches the request line's method (as a Gateway API method match is sent).
t_eq method_route "$(c -X DELETE -H 'Host: web' http://198.19.0.20/by-method/z) $(c -H 'Host: web' http://198.19.0.20/by-method/z | cut -c1-3)" \
    "api /by-method/z web"

# --- weighted split -----------------------------------------------------------------------
urls=()
for i in $(seq 1 200); do urls+=("http://198.19.0.20/split$i"); done
res=$(c -H 'Host: web' "${urls[@]}")
nweb=$(grep -c '^web[12] ' <<<"$res")
napi=$(grep -c '^api ' <<<"$res")
t_eq weighted_split_answers_every_request "$((nweb + napi))" 200
# Each request picks web with probability 0.75: within 4 standard deviations of 150.
t_binomial weighted_split_75_25 "$nweb" 200 0.75
cx=$(stat client "cluster.$WEB.upstream_cx_total")
rq=$(stat client "cluster.$WEB.upstream_rq_total")
((cx <= 4 && rq >= 130)) && t_ok keepalive_reuse_between_sidecars ||
    t_fail keepalive_reuse_between_sidecars "$rq requests over $cx connections"

# --- chunked bodies both ways, by hash ---------------------------------------------------------
head -c $((8 << 20)) /dev/urandom >"$SIM_DIR/up.bin"
code=$(c -o /dev/null -w '%{http_code}' -H 'Host: api' -H 'Transfer-Encoding: chunked' \
    -T "$SIM_DIR/up.bin" http://198.19.0.21/upload/up.bin)
t_eq chunked_upload_through_two_sidecars "$code" 201
t_eq chunked_upload_intact "$(sha256sum <"$SIM_DIR/api-nginx/www/upload/up.bin" | cut -d' ' -f1)" \
    "$(sha256sum <"$SIM_DIR/up.bin" | cut -d' ' -f1)"
c -H 'Host: api' -H 'Accept-Encoding: gzip' -D "$SIM_DIR/gz.hdr" -o "$SIM_DIR/big.gz" \
    http://198.19.0.21/gz/big.txt
t_contains chunked_download_is_chunked "$(tr 'A-Z' 'a-z' <"$SIM_DIR/gz.hdr")" \
    "transfer-encoding: chunked"
t_eq chunked_download_intact "$(gzip -dc "$SIM_DIR/big.gz" | sha256sum | cut -d' ' -f1)" \
    "$(sha256sum <"$SIM_DIR/api-nginx/www/big.txt" | cut -d' ' -f1)"

# --- errors with Envoy's flags ---------------------------------------------------------------
t_eq unknown_host_404 "$(c -o /dev/null -w '%{http_code}' -H 'Host: nowhere' http://198.19.0.20/)" 404
t_eq empty_cluster_503 "$(c -o /dev/null -w '%{http_code}' -H 'Host: api' http://198.19.0.21/none)" 503
t_eq slow_upstream_504 "$(c -o /dev/null -w '%{http_code}' -H 'Host: api' http://198.19.0.21/slow)" 504

# --- pipelining through both sidecars ------------------------------------------------------
req=$'GET /p1 HTTP/1.1\r\nHost: api\r\n\r\nGET /p2 HTTP/1.1\r\nHost: api\r\n\r\nGET /p3 HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n'
got=$(printf '%s' "$req" | sim_exec client socat -t 5 - TCP:198.19.0.21:80,shut-none | grep -a -o 'api /p[0-9]' | tr '\n' ' ')
t_eq pipelined_answered_in_order "$got" "api /p1 api /p2 api /p3 "

# --- smuggling stops at the client's sidecar ------------------------------------------------
before=$(cat "$SIM_DIR"/{web1,web2,api}-nginx/logs/access.log | wc -l)
smuggle() { # smuggle NAME RAW_REQUEST — answered 400 by the client's sidecar
    local st
    st=$(printf '%b' "$2" | sim_exec client socat -t 3 - TCP:198.19.0.21:80 | head -1 | tr -d '\r')
    t_eq "smuggling_$1_400" "$st" "HTTP/1.1 400 Bad Request"
}
smuggle cl_and_te 'POST / HTTP/1.1\r\nHost: api\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'
smuggle duplicate_cl 'POST / HTTP/1.1\r\nHost: api\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde'
smuggle te_not_chunked_last 'POST / HTTP/1.1\r\nHost: api\r\nTransfer-Encoding: chunked, gzip\r\n\r\n'
smuggle obs_fold 'GET / HTTP/1.1\r\nHost: api\r\nX-A: 1\r\n folded\r\n\r\n'
smuggle space_before_colon 'GET / HTTP/1.1\r\nHost : api\r\n\r\n'
after=$(cat "$SIM_DIR"/{web1,web2,api}-nginx/logs/access.log | wc -l)
t_eq smuggling_never_reaches_an_app "$((after - before))" 0

# --- the access log shows the flags --------------------------------------------------------
# The sidecar flushes its access log once a second: wait for the last request's line.
t_until 5 grep -qs '"GET /p3 HTTP/1.1" 200 ' "$SIM_DIR/logs/client-access.log"
log=$(cat "$SIM_DIR/logs/client-access.log")
t_contains access_log_NR "$log" '"GET / HTTP/1.1" 404 NR '
t_contains access_log_UH "$log" '"GET /none HTTP/1.1" 503 UH '
t_contains access_log_UT "$log" '"GET /slow HTTP/1.1" 504 UT '
t_contains access_log_upstream_pod "$log" '"198.18.0.5:8080"'

t_summary
