#!/usr/bin/env bash
# Story: the xDS load tool (build/bench/xds_load, bench/README.md) runs 20 simulated sidecars
# against the independent control plane (test/e2e/xds/control_plane.js) serving a small mesh:
# three EDS clusters (one with its own EDS service name and a TLS transport socket taking two
# secrets over SDS), a listener whose HTTP connection manager takes route configuration r1 over
# RDS. In state of the world and in delta: every sidecar converges (the tool says so, and the
# control plane's log has one ACK of each of CDS, EDS, LDS, RDS and SDS per sidecar, from 20
# node ids); a mark followed by a pushed endpoint change is reported as ACKed by all 20 (and the
# log has their 20 EDS ACKs after the push); a cluster that does not decode is NACKed by all 20
# (error_detail says so, the summary counts them); the control plane killed and restarted on its port:
# every sidecar reconnects (asking with the versions it holds) and converges again, reported as
# a second round; "quit" prints the summary and exits 0. Delta receives fewer EDS bytes per
# change than state of the world (only the changed assignment). A control plane answering
# garbage: counted, retried, no crash. --converge alone exits 0 once all have converged. Loopback, needs no root; needs node and npm (as test_xds.sh).
# checks: 23
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=test/lib/testlib.sh
source "$root/test/lib/testlib.sh"
t_require_cmd jq
# shellcheck source=test/lib/loopback.sh
source "$root/test/lib/loopback.sh"
work=$LB_WORK
LOAD=$LB_BIN/bench/xds_load
[[ -x $LOAD ]] || t_stop "no $LOAD (build it first: make tools)"
# shellcheck source=test/lib/xds.sh
source "$root/test/lib/xds.sh"
N=20

# The mesh: clusters a, b (EDS by name) and c (EDS service c-svc, TLS with secrets default and
# ROOTCA over SDS), their assignments, listener http (RDS r1), route configuration r1, secrets.
eds_a() { echo '{"cluster_name": "a", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "198.18.0.1", "port_value": '"$1"'}}}}]}]}'; }
cat >"$work/res.json" <<EOF
{"version": "1", "resources": {
 "$CDS": [
  {"name": "a", "type": "EDS", "eds_cluster_config": {"eds_config": {"ads": {}}}, "connect_timeout": "1s"},
  {"name": "b", "type": "EDS", "eds_cluster_config": {"eds_config": {"ads": {}}}, "connect_timeout": "1s"},
  {"name": "c", "type": "EDS", "eds_cluster_config": {"eds_config": {"ads": {}}, "service_name": "c-svc"},
   "connect_timeout": "1s", "transport_socket": {"name": "tls", "typed_config": {
    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
    "common_tls_context": {"tls_certificate_sds_secret_configs": [{"name": "default"}],
     "validation_context_sds_secret_config": {"name": "ROOTCA"}}}}}],
 "$EDS": [$(eds_a 80),
  {"cluster_name": "b", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "198.18.0.2", "port_value": 80}}}}]}]},
  {"cluster_name": "c-svc", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "198.18.0.3", "port_value": 80}}}}]}]}],
 "$LDS": [{"name": "http", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 15001}},
  "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
   "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
   "stat_prefix": "http", "rds": {"config_source": {"ads": {}}, "route_config_name": "r1"},
   "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]}]}],
 "$RDS": [{"name": "r1", "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "a"}}]}]}],
 "$SDS": [{"name": "default", "tls_certificate": {"certificate_chain": {"inline_string": "cert"}, "private_key": {"inline_string": "key"}}},
          {"name": "ROOTCA", "validation_context": {"trusted_ca": {"inline_string": "ca"}}}]}}
EOF

# The control plane reads patches from a FIFO the story holds open (CP_IN).
mkfifo "$work/cp.in"
exec {CP_IN}<>"$work/cp.in"
# cp_up PORT [ARGS...] — the control plane on PORT (0: one of its choosing) with ARGS, its log
# emptied; sets CP, CP_PID.
cp_up() {
    local port=$1
    shift
    : >"$XDS_LOG"
    : >"$work/cp.out"
    NODE_PATH=$XDS_NPM_DIR/node_modules node "$XDS_CP_JS" --resources "$XDS_RES" --log "$XDS_LOG" \
        --port "$port" --stdin "$@" <"$work/cp.in" >"$work/cp.out" 2>&1 &
    CP_PID=$!
    LB_PIDS+=("$CP_PID")
    t_until 15 grep -q '^listening' "$work/cp.out" || t_stop "the control plane does not start: $(tail -n 5 "$work/cp.out")"
    CP=$(sed -n 's/^listening //p' "$work/cp.out")
}
cp_down() {
    kill "$CP_PID"
    wait "$CP_PID" 2>/dev/null
}

# acks TYPE [AFTER] — ACKs of TYPE in the control plane's log (after the line matching AFTER).
acks() {
    jq -s --arg t "$1" --arg after "${2:-}" '
        (if $after == "" then . else (. as $all | [range(length)] | map(select($all[.].event == $after)) | .[0]) as $i
         | .[(($i // length) + 1):] end)
        | map(select(.event == "request" and .type_url == $t and .response_nonce != "" and .error_detail == null)) | length' \
        "$XDS_LOG"
}
acks_all() {
    local t out=''
    for t in "$CDS" "$EDS" "$LDS" "$RDS" "$SDS"; do out+="$(acks "$t") "; done
    echo "$out"
}
every_type_acked() { [[ $(acks_all) == "$N $N $N $N $N " ]]; }

# The tool reads marks from a FIFO too (LOAD_IN); its records go to load-MODE.out.
mkfifo "$work/load.in"
exec {LOAD_IN}<>"$work/load.in"
gone() { ! lb_alive "$1"; }
out_has() { grep -q "$2" "$work/load-$1.out"; }
field() { grep "^$2 " "$work/load-$1.out" | tail -n 1 | tr ' ' '\n' | sed -n "s/^$3=//p"; }

# State of the world names its sidecars by pattern and ends its mark by settling; delta takes its
# node ids from a file and ends its mark once all N have ACKed (mark LABEL N).
for ((i = 0; i < N; i++)); do echo "web-$i.shop"; done >"$work/nodes"
for mode in sotw delta; do
    if [[ $mode == sotw ]]; then
        args=(--node-pattern 'load-{i}.default') ids='^load-[0-9]*\.default$' expect=''
    else
        args=(--delta --nodes "$work/nodes") ids='^web-[0-9]*\.shop$' expect=$N
    fi
    cp_up 0
    "$LOAD" --addr "127.0.0.1:$CP" --sidecars "$N" "${args[@]}" --stdin \
        --meta 'NAMESPACE={namespace}' <"$work/load.in" >"$work/load-$mode.out" 2>"$work/load-$mode.log" &
    L=$!
    LB_PIDS+=("$L")

    t_run "$mode: all $N sidecars converge (every type ACKed)" t_until 30 out_has "$mode" \
        "^converge round=1 complete=1 sidecars=$N "
    t_eq "$mode: the control plane saw $N node ids" \
        "$(jq -r 'select(.event == "request" and .node != null) | .node.id' "$XDS_LOG" | sort -u | grep -c "$ids")" "$N"
    t_run "$mode: its log has one ACK of CDS, EDS, LDS, RDS and SDS per sidecar" t_until 10 every_type_acked

    # A mark, then one cluster's endpoints change: every sidecar gets and ACKs them.
    echo "mark e1 $expect" >&"$LOAD_IN"
    t_until 5 out_has "$mode" '^marked label=e1' || t_stop "$mode: the tool did not take the mark"
    echo "{\"version\": \"2\", \"resources\": {\"$EDS\": [$(eds_a 81)]}}" >&"$CP_IN"
    t_run "$mode: the endpoint change after the mark is reported ACKed by all $N" t_until 15 \
        out_has "$mode" "^mark label=e1 sidecars=$N acked=$N "
    t_eq "$mode: the control plane's log has $N EDS ACKs after the push" "$(acks "$EDS" patch)" "$N"

    # A cluster that does not decode: every sidecar NACKs that CDS response, saying why.
    echo "{\"resources\": {\"$CDS\": [{\"name\": \"broken\", \"@raw\": \"Cv////8PAQ==\"}]}}" >&"$CP_IN"
    cds_nacks() {
        jq -s --arg t "$CDS" 'map(select(.event == "request" and .type_url == $t and (.error_detail.message // "" | test("does not decode")))) | length' "$XDS_LOG"
    }
    nacked_by_all() { [[ $(cds_nacks) == "$N" ]]; }
    t_run "$mode: a cluster that does not decode is NACKed by all $N" t_until 15 nacked_by_all

    # The control plane dies and comes back on its port: all reconnect and converge again.
    port=$CP
    cp_down
    cp_up "$port"
    t_run "$mode: after a control plane restart all $N converge again (round 2)" t_until 30 \
        out_has "$mode" "^converge round=2 complete=1 sidecars=$N "
    if [[ $mode == sotw ]]; then
        t_eq "$mode: each reconnects asking CDS with the version it holds" \
            "$(jq -s --arg t "$CDS" 'map(select(.event == "request" and .type_url == $t and .version_info == "1" and .response_nonce == "")) | length' "$XDS_LOG")" "$N"
    else
        t_eq "$mode: each reconnects telling the endpoints it holds (initial_resource_versions)" \
            "$(jq -s --arg t "$EDS" 'map(select(.event == "request" and .type_url == $t and .initial_resource_versions.a == "2")) | length' "$XDS_LOG")" "$N"
    fi

    echo quit >&"$LOAD_IN"
    t_until 15 gone "$L"
    wait "$L"
    t_eq "$mode: quit ends the tool with status 0" "$?" 0
    t_eq "$mode: the summary has both rounds complete, the mark and the $N NACKs" \
        "$(field "$mode" summary converge_complete):$(field "$mode" summary restart_complete):$(field "$mode" summary marks):$(field "$mode" summary nacks_cds)" "1:1:1:$N"
    cp_down
done
t_run "delta receives fewer EDS bytes per change than state of the world" test \
    "$(field delta mark bytes_eds)" -lt "$(field sotw mark bytes_eds)"

# A control plane that answers garbage: every response is counted as undecodable and its stream
# started again; the tool stays up and exits 0 when its time is over.
cp_up 0 --garbage
timeout 60 "$LOAD" --addr "127.0.0.1:$CP" --sidecars "$N" --duration 3 >"$work/load-garbage.out" \
    2>"$work/load-garbage.log"
t_eq "garbage: counted as undecodable ($N at least), retried, exit 0" \
    "$?:$(($(field garbage summary bad_responses) >= N))" "0:1"
cp_down

# --converge: exits by itself once all hold a full config.
cp_up 0
timeout 60 "$LOAD" --addr "127.0.0.1:$CP" --sidecars "$N" --converge >"$work/load-conv.out" 2>"$work/load-conv.log"
t_eq "--converge exits 0 once all $N converged" "$?:$(field conv converge sidecars)" "0:$N"
cp_down

t_summary
