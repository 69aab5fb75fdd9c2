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
