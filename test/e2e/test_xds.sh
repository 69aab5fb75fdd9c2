#!/usr/bin/env bash
# Story: a remora whose bootstrap names a control plane takes its listeners (LDS), clusters
# (CDS), endpoints (EDS) and routes (RDS) from it over ADS, in both protocols (state of the world and delta),
# against an independent control plane (test/e2e/xds/control_plane.js: grpc-js with Envoy's own
# protos). It is ready only once the first config is in; it ACKs what it applied with the
# version and nonce; a push moves traffic; a push with one bad resource is NACKed naming that
# resource while the good ones of the same push apply and traffic goes on; when the control
# plane dies the last config keeps serving and the client reconnects, telling the new control
# plane what it holds; a new cluster and the route to it wait for the cluster's endpoints and go
# in together (warming); /config_dump shows the dynamic resources; SIGTERM exits 0. Then a
# control plane that is not there at start (not ready until it is), one that stalls (found by
# the cluster's HTTP/2 keepalive) and one that answers garbage (the stream is ended and
# retried): the last config serves throughout. Loopback,
# needs no root; needs node and npm (the control plane is installed from the npm registry into
# build/npm-xds at the versions test/e2e/xds/package-lock.json pins).
# checks: 61
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=test/lib/testlib.sh
source "$root/test/lib/testlib.sh"
t_require_cmd curl jq python3
# shellcheck source=test/lib/loopback.sh
source "$root/test/lib/loopback.sh"
work=$LB_WORK
[[ -x $LB_BIN/remora ]] || t_stop "no $LB_BIN/remora (build it first)"
# shellcheck source=test/lib/xds.sh
source "$root/test/lib/xds.sh"

# Two apps that say who they are.
for app in A B; do
    xds_app "$app" || t_stop "app $app does not listen"
done

# resources VERSION APP_PORT [BAD] — the control plane's resource file: cluster web (EDS) with
# its endpoint on APP_PORT, route configuration r1 sending everything to web; with BAD, also a
# cluster "bad" whose connect_timeout is negative. With API_PORT set, also cluster api (EDS, its
# endpoint on API_PORT) and a route /api to it; with HOLD set (a type URL), the control plane
# does not answer that type. Listener lds-tcp (a tcp_proxy to web on a port of its choosing)
# comes over LDS unless NO_LDS is set.
resources() {
    local bad='' api_c='' api_e='' api_r='' hold=''
    [[ -n ${3:-} ]] && bad=', {"name": "bad", "type": "EDS", "eds_cluster_config": {"eds_config": {"ads": {}}}, "connect_timeout": "-1s"}'
    if [[ -n ${API_PORT:-} ]]; then
        api_c=', {"name": "api", "type": "EDS", "eds_cluster_config": {"eds_config": {"ads": {}}}, "connect_timeout": "1s"}'
        api_e=', {"cluster_name": "api", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": '$API_PORT'}}}}]}]}'
        api_r='{"match": {"prefix": "/api"}, "route": {"cluster": "api"}}, '
    fi
    [[ -n ${HOLD:-} ]] && hold=', "hold": ["'$HOLD'"]'
    local lds='{"name": "lds-tcp", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}, "filter_chains": [{"filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy", "stat_prefix": "lds", "cluster": "web"}}]}]}'
    [[ -n ${NO_LDS:-} ]] && lds=''
    # With BAD, a listener whose one filter is no network filter Remora knows: fine by the field
    # rules, refused once translated.
    [[ -n ${3:-} ]] && lds+=', {"name": "bad-l", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}, "filter_chains": [{"filters": [{"name": "x", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}]}'
    cat >"$work/res.tmp" <<EOF
{"version": "$1"$hold, "resources": {
 "$CDS": [{"name": "web", "type": "EDS", "eds_cluster_config": {"eds_config": {"ads": {}}},
           "connect_timeout": "1s"}$bad$api_c],
 "$EDS": [{"cluster_name": "web", "endpoints": [{"lb_endpoints": [{"endpoint": {"address":
           {"socket_address": {"address": "127.0.0.1", "port_value": $2}}}}]}]}$api_e],
 "$RDS": [{"name": "r1", "virtual_hosts": [{"name": "all", "domains": ["*"],
           "routes": [$api_r{"match": {"prefix": "/"}, "route": {"cluster": "web"}}]}]}],
 "$LDS": [$lds]}}
EOF
    mv "$work/res.tmp" "$work/res.json"
}

# bootstrap API_TYPE CP_PORT — remora's bootstrap (xds_bootstrap) in boot-API_TYPE.yaml.
bootstrap() { xds_bootstrap "$work/boot-$1.yaml" "$1" "$2"; }

body() { curl -s -m 2 "http://127.0.0.1:$HTTP${1:-/}"; }
body_is() { [[ $(body "${2:-/}") == "$1" ]]; }

for mode in GRPC DELTA_GRPC; do
    m=${mode,,}
    : >"$work/cp.log"
    resources 1 "$APP_A"
    cp_start || t_stop "$m: the control plane does not start: $(tail -n 5 "$work/cp.out")"
    bootstrap "$mode" "$CP"
    lb_remora "$m" "$work/boot-$mode.yaml" --concurrency 2 ||
        t_stop "$m: remora does not become ready"
    R=$LB_PID ADMIN=$LB_ADMIN HTTP=${LB_PORT[http]}

    # Ready (lb_remora waited for /ready) only once the first config was in.
    t_eq "$m: the route and cluster from the control plane serve at once" "$(body)" A
    t_run "$m: the first request names the node" cp_has \
        '.event == "request" and .node.id == "pod1.default"'
    if [[ $mode == GRPC ]]; then
        t_run "$m: CDS is ACKed with the version and nonce it came with" cp_has \
            ".event == \"request\" and .type_url == \"$CDS\" and .version_info == \"1\" and .response_nonce != \"\" and .error_detail == null"
    else
        t_run "$m: CDS is ACKed with the nonce it came with" cp_has \
            ".event == \"request\" and .type_url == \"$CDS\" and .response_nonce != \"\" and .error_detail == null"
    fi
    t_run "$m: route configuration r1 is subscribed by name" cp_has \
        ".event == \"request\" and .type_url == \"$RDS\" and ((.resource_names // .subscribe) | index(\"r1\"))"
    t_run "$m: the endpoints of web are subscribed by name" cp_has \
        ".event == \"request\" and .type_url == \"$EDS\" and ((.resource_names // .subscribe) | index(\"web\"))"

    # A listener over LDS: bound when it arrives (its port is in the log), served like any other.
    lds_port() { sed -n "s/.* listener 'lds-tcp' on .*:\([0-9]*\).*/\1/p" "$work/$m.log" | tail -n 1; }
    LDS_PORT=$(lds_port)
    t_eq "$m: a listener from LDS is bound and serves" \
        "$(curl -s -m 2 "http://127.0.0.1:${LDS_PORT:-1}/")" A

    # A push moves traffic.
    resources 2 "$APP_B"
    t_run "$m: a push moves traffic to the new endpoint" t_until 5 body_is B

    # A bad resource is NACKed by name; the good ones of the push apply; traffic goes on.
    resources 3 "$APP_A" bad
    t_run "$m: a push with a bad cluster is NACKed naming it" t_until 5 cp_has \
        ".event == \"request\" and .type_url == \"$CDS\" and (.error_detail.message // \"\" | test(\"cds\\\\['bad'\\\\].*connect_timeout\"))"
    t_run "$m: the good resources of that push apply" t_until 5 body_is A
    t_run "$m: a listener that does not translate is NACKed naming it and why" t_until 5 cp_has \
        ".event == \"request\" and .type_url == \"$LDS\" and (.error_detail.message // \"\" | test(\"lds\\\\['bad-l'\\\\].*unsupported network filter\"))"
    check_stat "$m: the rejection is counted" "$ADMIN" cluster_manager.cds.update_rejected 1
    t_eq "$m: the bad cluster is not in the running config" \
        "$(curl -s "http://127.0.0.1:$ADMIN/clusters" | grep -c '^bad::')" 0
    dump_clusters() {
        curl -s "http://127.0.0.1:$ADMIN/config_dump" |
            jq -c '.configs[] | select(."@type" | test("ClustersConfigDump")) | .dynamic_active_clusters[]'
    }
    t_contains "$m: /config_dump shows the rejected cluster with its error" \
        "$(dump_clusters | jq -r 'select(.name == "bad") | .error_state.details')" connect_timeout
    t_run "$m: /config_dump shows when each held resource was last updated" test -n \
        "$(dump_clusters | jq -r 'select(.cluster.name == "web") | .last_updated // empty')"

    # The control plane dies: the last config serves; the client reconnects when it is back.
    kill "$CP_PID"
    wait "$CP_PID" 2>/dev/null
    check_stat "$m: the connection's loss shows" "$ADMIN" control_plane.connected_state 0
    t_eq "$m: the last config serves without a control plane" "$(body)" A
    : >"$work/cp.log"
    resources 4 "$APP_B"
    cp_start "$CP"
    check_stat "$m: the client reconnects" "$ADMIN" control_plane.connected_state 1
    if [[ $mode == GRPC ]]; then
        # CDS 3 was NACKed: the version it holds is 2 (the endpoints of 3 were ACKed).
        t_run "$m: after reconnecting it asks with the versions it holds" t_until 5 cp_has \
            ".event == \"request\" and .type_url == \"$CDS\" and .version_info == \"2\" and .response_nonce == \"\""
        t_run "$m: after reconnecting the endpoints go with their own version (3)" cp_has \
            ".event == \"request\" and .type_url == \"$EDS\" and .version_info == \"3\" and .response_nonce == \"\""
    else
        t_run "$m: after reconnecting it tells the versions it holds" t_until 5 cp_has \
            ".event == \"request\" and .type_url == \"$CDS\" and (.initial_resource_versions.web // \"\") != \"\""
    fi
    t_run "$m: the new control plane's config applies" t_until 5 body_is B
    t_contains "$m: /config_dump shows the dynamic cluster" \
        "$(curl -s "http://127.0.0.1:$ADMIN/config_dump" | jq -c '.configs[] | select(."@type" | test("ClustersConfigDump")) | .dynamic_active_clusters[]?.cluster.name')" '"web"'

    # Warming: a new cluster and the route to it wait for the cluster's endpoints.
    API_PORT=$APP_A HOLD=$EDS resources 5 "$APP_B"
    t_until 5 cp_has ".event == \"request\" and .type_url == \"$EDS\" and ((.resource_names // .subscribe) | index(\"api\"))"
    sleep 0.5
    t_eq "$m: a new cluster waits for its endpoints, and the route to it with it" "$(body /api)" B
    API_PORT=$APP_A resources 6 "$APP_B"
    t_run "$m: once they arrive, route and cluster go in together" t_until 5 body_is A /api

    # A listener LDS no longer lists stops accepting.
    lds_refused() { ! curl -s -m 1 -o /dev/null "http://127.0.0.1:$LDS_PORT/"; }
    NO_LDS=1 API_PORT=$APP_A resources 9 "$APP_B"
    t_run "$m: a listener LDS drops stops accepting" t_until 5 lds_refused
    check_stat "$m: the dropped listener is counted removed" "$ADMIN" listener_manager.listener_removed 1

    lb_stop "$R"
    t_eq "$m: SIGTERM: exit status 0" "$LB_STATUS" 0
    kill "$CP_PID" 2>/dev/null
    wait "$CP_PID" 2>/dev/null
done

# --- a control plane that is not there, stalls, or answers garbage (state of the world) --------
# Refused: remora starts while nothing listens on the control plane's port; it serves the
# bootstrap's listeners but is not ready until the first config arrives.
: >"$work/cp.log"
resources 7 "$APP_A"
bootstrap GRPC "$CP" # the port of the last control plane, free now
bg "$work/refused.log" "$LB_BIN/remora" --config "$work/boot-GRPC.yaml" --concurrency 1
R=$LAST_PID
LB_REMORAS[$R]=refused
admin_port() { sed -n 's/.* admin: listening on .*:\([0-9]*\)$/\1/p' "$work/refused.log" | head -n 1; }
has_admin_port() { [[ -n $(admin_port) ]]; }
t_until 10 has_admin_port || t_stop "refused: remora did not start its admin endpoint"
ADMIN=$(admin_port)
HTTP=$(sed -n "s/.* listener 'http' on .*:\([0-9]*\).*/\1/p" "$work/refused.log" | head -n 1)
sleep 1
t_eq "refused: not ready while the control plane cannot be reached" \
    "$(curl -s "http://127.0.0.1:$ADMIN/ready")" PRE_INITIALIZING
cp_start "$CP"
is_live() { [[ $(curl -s "http://127.0.0.1:$ADMIN/ready") == LIVE ]]; }
t_run "refused: ready once the control plane is up and its config in" t_until 30 is_live
t_run "refused: the config serves" t_until 30 body_is A

# Stalled: the control plane stops answering anything (SIGSTOP): the cluster's HTTP/2 keepalive
# (1 s, 1 s to answer) finds it; the last config serves; it is found again once it answers.
kill -STOP "$CP_PID"
check_stat "stalled: a control plane that answers nothing is let go" "$ADMIN" \
    control_plane.connected_state 0
t_eq "stalled: the last config serves meanwhile" "$(body)" A
kill -CONT "$CP_PID"
connected() { [[ $(stat "$ADMIN" control_plane.connected_state) == 1 ]]; }
t_run "stalled: the client reconnects once it answers again" t_until 30 connected

# Garbage: a control plane whose responses do not decode: the stream is ended and retried,
# counted as update failures; the last config serves; a good one takes over again.
kill "$CP_PID"
wait "$CP_PID" 2>/dev/null
failures=$(stat "$ADMIN" cluster_manager.cds.update_failure)
cp_start "$CP" --garbage
more_failures() { (($(stat "$ADMIN" cluster_manager.cds.update_failure) > failures + 1)); }
t_run "garbage: responses that do not decode end the stream, again and again" t_until 15 \
    more_failures
t_eq "garbage: the last config serves meanwhile" "$(body)" A
kill "$CP_PID"
wait "$CP_PID" 2>/dev/null
resources 8 "$APP_B"
cp_start "$CP"
t_run "garbage: a good control plane takes over again" t_until 30 body_is B
lb_stop "$R"
t_eq "SIGTERM after all that: exit status 0" "$LB_STATUS" 0
kill "$CP_PID" 2>/dev/null
wait "$CP_PID" 2>/dev/null

t_summary
