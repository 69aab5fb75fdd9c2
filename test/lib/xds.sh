# shellcheck shell=bash
# xds.sh — the e2e stories' control plane (test/e2e/xds/control_plane.js: grpc-js serving
# Envoy's own v3 protos), installed from the npm registry at the versions its lock file pins.
# Source it after testlib.sh and loopback.sh, never run it. It installs the packages at once
# (the story fails or skips as npm.sh says when it cannot) and sets XDS_NPM_DIR; the resource
# file is XDS_RES ($LB_WORK/res.json unless set), the log XDS_LOG ($LB_WORK/cp.log).

XDS_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=test/lib/npm.sh
source "$XDS_LIB_DIR/npm.sh"
XDS_CP_JS=$(cd "$XDS_LIB_DIR/../e2e/xds" && pwd)/control_plane.js
XDS_NPM_DIR=$(cd "$XDS_LIB_DIR/../.." && pwd)/build/npm-xds
XDS_RES=${XDS_RES:-$LB_WORK/res.json}
XDS_LOG=${XDS_LOG:-$LB_WORK/cp.log}
npm_peers "$(dirname "$XDS_CP_JS")" "$XDS_NPM_DIR" "$LB_WORK/npm.out"

# Envoy's type URLs of the four resource types over ADS, and of secrets.
# shellcheck disable=SC2034
CDS=type.googleapis.com/envoy.config.cluster.v3.Cluster
# shellcheck disable=SC2034
EDS=type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment
# shellcheck disable=SC2034
RDS=type.googleapis.com/envoy.config.route.v3.RouteConfiguration
# shellcheck disable=SC2034
LDS=type.googleapis.com/envoy.config.listener.v3.Listener
# shellcheck disable=SC2034
SDS=type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret

# cp_start [PORT [ARGS...]] — the control plane serving XDS_RES on PORT (or on a free one when
# PORT is empty or absent), logging to XDS_LOG and its output to $LB_WORK/cp.out; ARGS go to
# control_plane.js. Sets CP (the port) and CP_PID.
cp_start() {
    local port=${1:-}
    shift || true
    if [[ -n $port ]]; then
        NODE_PATH=$XDS_NPM_DIR/node_modules bg "$LB_WORK/cp.out" node "$XDS_CP_JS" \
            --resources "$XDS_RES" --log "$XDS_LOG" --port "$port" "$@"
        # shellcheck disable=SC2034
        CP_PID=$LAST_PID CP=$port
        t_until 15 lb_listening "$CP_PID" "$port"
        return
    fi
    lb_serve CP "$LB_WORK/cp.out" env NODE_PATH="$XDS_NPM_DIR/node_modules" node \
        "$XDS_CP_JS" --resources "$XDS_RES" --log "$XDS_LOG" --port @CP@ "$@"
    CP_PID=$LAST_PID
}

# cp_has JQ_FILTER — some line of the control plane's log passes the filter.
cp_has() { jq -e -s "any(.[]; $1)" "$XDS_LOG" >/dev/null 2>&1; }

# cp_connected ADMIN_PORT — remora's xDS client is connected to a control plane. Reconnects
# follow a jittered exponential backoff capped at 30 s, so a story waits with t_until 40.
cp_connected() { [[ $(stat "$1" control_plane.connected_state) == 1 ]]; }

# xds_bootstrap FILE API_TYPE CP_PORT [FETCH_TIMEOUT] — writes remora's bootstrap to FILE: clusters
# and listeners over ADS (API_TYPE: GRPC or DELTA_GRPC) from the static cluster xds on
# 127.0.0.1:CP_PORT (HTTP/2, keepalive PING every 1 s, 1 s to answer), and a static HTTP listener
# `http` (stat_prefix http) whose routes come over RDS as route configuration r1, unless
# XDS_NO_LISTENER is set. With FETCH_TIMEOUT, cds_config and lds_config say so as their
# initial_fetch_timeout.
xds_bootstrap() {
    local fetch=''
    [[ -n ${4:-} ]] && fetch=", initial_fetch_timeout: $4"
    cat >"$1" <<EOF
node: {id: pod1.default, cluster: web}
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
dynamic_resources:
  cds_config: {ads: {}, resource_api_version: V3$fetch}
  lds_config: {ads: {}, resource_api_version: V3$fetch}
  ads_config:
    api_type: $2
    transport_api_version: V3
    grpc_services: [{envoy_grpc: {cluster_name: xds}}]
static_resources:
  clusters:
  - name: xds
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config:
          http2_protocol_options: {connection_keepalive: {interval: 1s, timeout: 1s}}
    load_assignment:
      cluster_name: xds
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $3}}}}]}]
EOF
    [[ -n ${XDS_NO_LISTENER:-} ]] && return
    cat >>"$1" <<EOF
  listeners:
  - name: http
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: http
          rds: {config_source: {ads: {}}, route_config_name: r1}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
EOF
}

# xds_app NAME [KEEPALIVE] — an HTTP app on 127.0.0.1 that answers every GET with the body NAME,
# on a free port set in APP_<NAME>, logging to $LB_WORK/app<NAME>.log; with KEEPALIVE it speaks
# HTTP/1.1 and keeps connections open. Returns non-zero when it does not listen.
xds_app() {
    local proto=''
    [[ -n ${2:-} ]] && proto='protocol_version = "HTTP/1.1"'
    cat >"$LB_WORK/app$1.py" <<EOF
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    $proto
    def do_GET(self):
        self.send_response(200)
        self.send_header("content-length", "${#1}")
        self.end_headers()
        self.wfile.write(b"$1")
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF
    lb_serve "APP_$1" "$LB_WORK/app$1.log" python3 "$LB_WORK/app$1.py" "@APP_$1@"
}
