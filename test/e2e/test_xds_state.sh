#!/usr/bin/env bash
# Story: what a remora fed over ADS shows of its xDS state, as Envoy shows it, in both
# protocols (state of the world and delta), against the independent control plane
# (test/e2e/xds/control_plane.js). After the first config: /stats has the text readouts
# cluster_manager.cds.version_text and listener_manager.lds.version_text with the version
# accepted (in JSON too, never in Prometheus), the version gauges, control_plane.* and the
# per-resource stats of the route configuration (http.<stat_prefix>.rds.<name>.*) and of the
# EDS cluster (cluster.<name>.update_*). A push with a bad cluster, a bad route configuration,
# bad endpoints and a listener moved to a port another process holds: each is NACKed by name
# (the listener with "cannot bind ... Address already in use" in the NACK's error_detail and in
# /config_dump's error_state), counted rejected where Envoy counts it, the CDS version text
# stays, and the rest of the push applies (a new listener of the same response binds; the moved
# listener keeps serving on its old port). A cluster added later whose endpoints never come
# stops warming after the bootstrap's initial_fetch_timeout (2 s here): it goes in with no
# endpoints (503) and the route to it with it; endpoints that come later apply. The control
# plane restarts and sends the same resources again (delta: the client tells the versions it
# holds and gets nothing new): the answer is ACKed and counted, and nothing changes (no
# resource's last_updated, no reload, no listener change; the downstream keep-alive connection
# and its upstream connection stay). SIGTERM exits 0.
# Loopback, needs no root; needs node and npm (test/lib/xds.sh).
# checks: 87
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

# An app that says "A", keeping connections alive (HTTP/1.1), so that an upstream connection
# outlives a request; its port is also the one a listener is moved to and cannot bind.
xds_app A keepalive || t_stop "the app does not listen"
APP=$APP_A

# A client on one keep-alive connection: a request, then another once $work/go exists; prints
# each body, or "closed" when the connection did not survive (it never reconnects).
cat >"$work/keepalive.py" <<'EOF'
import http.client, os, sys, time
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=5)
c.auto_open = 0
c.connect()
for i in range(2):
    if i == 1:
        while not os.path.exists(sys.argv[2]):
            time.sleep(0.05)
    try:
        c.request("GET", "/")
        print(c.getresponse().read().decode(), flush=True)
    except Exception:
        print("closed", flush=True)
EOF

# resources VERSION — the control plane's resource file: cluster web (EDS, its endpoint the
# app), route configuration r1 (everything to web), listener lds-tcp (a tcp_proxy to web on a
# port of its choosing). BAD=1 adds a cluster with a negative connect_timeout, makes r1's route
# timeout negative and gives web's endpoint the weight 0; BUSY=PORT moves lds-tcp to PORT and
# adds listener lds-new; GHOST=1 adds cluster ghost (EDS) whose endpoints never come and a
# route /ghost to it, GHOST=2 the same with ghost's endpoints (the app).
resources() {
    local bad='' timeout='' weight='' lds_port=0 lds_new='' ghost_c='' ghost_r='' ghost_e=''
    if [[ -n ${BAD:-} ]]; then
        bad=', {"name": "bad", "type": "EDS", "eds_cluster_config": {"eds_config": {"ads": {}}}, "connect_timeout": "-1s"}'
        timeout=', "timeout": "-1s"'
        weight=', "load_balancing_weight": 0'
    fi
    if [[ -n ${BUSY:-} ]]; then
        lds_port=$BUSY
        lds_new=', {"name": "lds-new", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}, "filter_chains": [{"filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy", "stat_prefix": "new", "cluster": "web"}}]}]}'
    fi
    if [[ -n ${GHOST:-} ]]; then
        ghost_c=', {"name": "ghost", "type": "EDS", "eds_cluster_config": {"eds_config": {"ads": {}}}, "connect_timeout": "1s"}'
        ghost_r='{"match": {"prefix": "/ghost"}, "route": {"cluster": "ghost"}}, '
    fi
    [[ ${GHOST:-} == 2 ]] &&
        ghost_e=', {"cluster_name": "ghost", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": '$APP'}}}}]}]}'
    cat >"$work/res.tmp" <<EOF
{"version": "$1", "resources": {
 "$CDS": [{"name": "web", "type": "EDS", "eds_cluster_config": {"eds_config": {"ads": {}}},
           "connect_timeout": "1s"}$bad$ghost_c],
 "$EDS": [{"cluster_name": "web", "endpoints": [{"lb_endpoints": [{"endpoint": {"address":
           {"socket_address": {"address": "127.0.0.1", "port_value": $APP}}}$weight}]}]}$ghost_e],
 "$RDS": [{"name": "r1", "virtual_hosts": [{"name": "all", "domains": ["*"],
           "routes": [$ghost_r{"match": {"prefix": "/"}, "route": {"cluster": "web"$timeout}}]}]}],
 "$LDS": [{"name": "lds-tcp", "address": {"socket_address": {"address": "127.0.0.1", "port_value": $lds_port}}, "filter_chains": [{"filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy", "stat_prefix": "lds", "cluster": "web"}}]}]}$lds_new]}}
EOF
    mv "$work/res.tmp" "$work/res.json"
}

# bootstrap API_TYPE CP_PORT — remora's bootstrap (xds_bootstrap) in boot-API_TYPE.yaml, each
# resource waited for 2 s (initial_fetch_timeout).
bootstrap() { xds_bootstrap "$work/boot-$1.yaml" "$1" "$2" 2s; }

code() { curl -s -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HTTP${1:-/}"; }
code_is() { [[ $(code "${2:-/}") == "$1" ]]; }
stats_text() { curl -s "http://127.0.0.1:$ADMIN/stats"; }
dump() { curl -s "http://127.0.0.1:$ADMIN/config_dump"; }
# Every last_updated of /config_dump, one per line.
last_updated() { dump | jq -r '[.. | objects | .last_updated? // empty] | .[]'; }
lds_port() { sed -n "s/.* listener '$1' on .*:\([0-9]*\).*/\1/p" "$work/$m.log" | tail -n 1; }
has_port() { [[ -n $(lds_port "$1") ]]; }

for mode in GRPC DELTA_GRPC; do
    m=${mode,,}
    : >"$work/cp.log"
    resources 1
    cp_start || t_stop "$m: the control plane does not start: $(tail -n 5 "$work/cp.out")"
    bootstrap "$mode" "$CP"
    lb_remora "$m" "$work/boot-$mode.yaml" --concurrency 2 ||
        t_stop "$m: remora does not become ready"
    R=$LB_PID ADMIN=$LB_ADMIN HTTP=${LB_PORT[http]}
    t_run "$m: the first config serves" t_until 5 code_is 200

    # --- the stats after the first config ------------------------------------------------------
    check_stat "$m: cluster_manager.cds.version_text is the version accepted" "$ADMIN" \
        cluster_manager.cds.version_text '"1"'
    check_stat "$m: listener_manager.lds.version_text is the version accepted" "$ADMIN" \
        listener_manager.lds.version_text '"1"'
    cds_version=$(stat "$ADMIN" cluster_manager.cds.version)
    t_run "$m: cluster_manager.cds.version is a hash of it" test "${cds_version:-0}" -gt 0
    t_eq "$m: control_plane.rate_limit_enforced is 0 (no rate limit)" \
        "$(stat "$ADMIN" control_plane.rate_limit_enforced)" 0
    t_eq "$m: control_plane.pending_requests is 0" "$(stat "$ADMIN" control_plane.pending_requests)" 0
    check_stat "$m: the route configuration's update is counted under its connection manager" \
        "$ADMIN" http.http.rds.r1.update_success 1
    t_eq "$m: and its reload" "$(stat "$ADMIN" http.http.rds.r1.config_reload)" 1
    rds_version=$(stat "$ADMIN" http.http.rds.r1.version)
    t_run "$m: and its version" test "${rds_version:-0}" -gt 0
    t_eq "$m: the EDS cluster counts its endpoints' update" \
        "$(stat "$ADMIN" cluster.web.update_success)" 1
    t_eq "$m: as an attempt" "$(stat "$ADMIN" cluster.web.update_attempt)" 1
    t_contains "$m: /stats?format=json shows the text readout as a string" \
        "$(curl -s "http://127.0.0.1:$ADMIN/stats?format=json" | jq -c '.stats[] | select(.name == "cluster_manager.cds.version_text")')" \
        '"value":"1"'
    t_eq "$m: Prometheus leaves text readouts out, as Envoy does" \
        "$(curl -s "http://127.0.0.1:$ADMIN/stats/prometheus" | grep -c version_text)" 0
    t_eq "$m: the filter applies to text readouts" \
        "$(curl -s "http://127.0.0.1:$ADMIN/stats?filter=version_text" | wc -l)" 2

    # --- a push with bad resources and a listener that cannot bind ---------------------------
    OLD_LDS=$(lds_port lds-tcp)
    BAD=1 BUSY=$APP resources 2
    t_run "$m: the listener moved to a port in use is NACKed naming it and the errno" \
        t_until 5 cp_has \
        ".event == \"request\" and .type_url == \"$LDS\" and (.error_detail.message // \"\" | test(\"lds\\\\['lds-tcp'\\\\]: cannot bind '127.0.0.1:$APP': Address already in use\"))"
    t_run "$m: the other listener of that response binds" t_until 5 has_port lds-new
    t_eq "$m: the moved listener keeps serving where it was" \
        "$(curl -s -m 2 "http://127.0.0.1:${OLD_LDS:-1}/")" A
    t_contains "$m: /config_dump shows the bind failure in the listener's error_state" \
        "$(dump | jq -r '.configs[] | select(."@type" | test("ListenersConfigDump")) | .dynamic_listeners[] | select(.name == "lds-tcp") | .error_state.details')" \
        "cannot bind '127.0.0.1:$APP': Address already in use"
    check_stat "$m: the LDS rejection is counted" "$ADMIN" listener_manager.lds.update_rejected 1
    check_stat "$m: the LDS version text stays at the version accepted" "$ADMIN" \
        listener_manager.lds.version_text '"1"'
    check_stat "$m: the CDS rejection is counted" "$ADMIN" cluster_manager.cds.update_rejected 1
    t_eq "$m: the CDS version text stays at the version accepted" \
        "$(stat "$ADMIN" cluster_manager.cds.version_text)" '"1"'
    t_eq "$m: and the version gauge with it" "$(stat "$ADMIN" cluster_manager.cds.version)" \
        "$cds_version"
    check_stat "$m: the bad route configuration is counted rejected under its name" "$ADMIN" \
        http.http.rds.r1.update_rejected 1
    t_eq "$m: its version stays" "$(stat "$ADMIN" http.http.rds.r1.version)" "$rds_version"
    check_stat "$m: the bad endpoints are counted rejected in their cluster" "$ADMIN" \
        cluster.web.update_rejected 1
    t_eq "$m: the running config serves on" "$(code)" 200

    # --- a cluster whose endpoints never come ------------------------------------------------
    GHOST=1 resources 3
    t_run "$m: the ghost cluster's endpoints are asked for" t_until 5 cp_has \
        ".event == \"request\" and .type_url == \"$EDS\" and ((.resource_names // .subscribe) | index(\"ghost\"))"
    t_run "$m: after initial_fetch_timeout it goes in without endpoints, its route with it" \
        t_until 10 code_is 503 /ghost
    t_run "$m: the timeout is logged naming the resource" \
        grep -q "endpoints 'ghost' was not received within 2000 ms" "$work/$m.log"
    t_eq "$m: and counted" "$(stat "$ADMIN" xds.eds.init_fetch_timeout)" 1
    t_eq "$m: the fixed resources of that push are in too" \
        "$(stat "$ADMIN" cluster_manager.cds.version_text)" '"3"'
    GHOST=2 resources 4
    t_run "$m: endpoints that come after all apply as any update" t_until 5 code_is 200 /ghost

    # --- a reconnect that brings the same resources --------------------------------------------
    rm -f "$work/go"
    bg "$work/ka-$m.out" python3 "$work/keepalive.py" "$HTTP" "$work/go"
    KA=$LAST_PID
    t_until 5 test -s "$work/ka-$m.out"
    before=$(last_updated)
    cx=$(stat "$ADMIN" cluster.web.upstream_cx_total)
    reloads=$(stat "$ADMIN" http.http.rds.r1.config_reload)
    modified=$(stat "$ADMIN" listener_manager.listener_modified)
    successes=$(stat "$ADMIN" cluster_manager.cds.update_success)
    kill "$CP_PID"
    wait "$CP_PID" 2>/dev/null
    check_stat "$m: the control plane is gone" "$ADMIN" control_plane.connected_state 0
    : >"$work/cp.log"
    cp_start "$CP"
    t_run "$m: the client reconnects" t_until 40 cp_connected "$ADMIN"
    acked() {
        cp_has ".event == \"request\" and .type_url == \"$CDS\" and .response_nonce != \"\" and .error_detail == null"
    }
    if [[ $mode == DELTA_GRPC ]]; then
        t_run "$m: the client tells the new server the versions it holds" t_until 5 cp_has \
            ".event == \"request\" and .type_url == \"$RDS\" and (.initial_resource_versions.r1 // \"\") != \"\""
    fi
    t_run "$m: the new stream's answer is ACKed" t_until 5 acked
    more() { (($(stat "$ADMIN" cluster_manager.cds.update_success) > successes)); }
    t_run "$m: and counted as accepted" t_until 5 more
    t_eq "$m: no resource's last_updated changed" "$(last_updated)" "$before"
    t_eq "$m: no route configuration reloaded" "$(stat "$ADMIN" http.http.rds.r1.config_reload)" \
        "$reloads"
    t_eq "$m: no listener changed" "$(stat "$ADMIN" listener_manager.listener_modified)" "$modified"
    touch "$work/go"
    wait "$KA" 2>/dev/null
    t_eq "$m: the keep-alive connection still serves" "$(tr '\n' ' ' <"$work/ka-$m.out")" "A A "
    t_eq "$m: on the same upstream connection" "$(stat "$ADMIN" cluster.web.upstream_cx_total)" \
        "$cx"

    lb_stop "$R"
    t_eq "$m: SIGTERM: exit status 0" "$LB_STATUS" 0
    kill "$CP_PID" 2>/dev/null
    wait "$CP_PID" 2>/dev/null
done

t_summary
