#!/usr/bin/env bash
# Story: a real proxyless gRPC client, @grpc/grpc-js with @grpc/grpc-js-xds (pinned by
# test/e2e/cp_grpc/package-lock.json, installed into build/npm-cp-grpc), resolves
# xds:///<svc>.<ns>.svc.cluster.local:<port> through remora-cp alone, on loopback. Its bootstrap
# names remora-cp as its xDS server and the node as Istio's gRPC agent writes it (id
# client.default, metadata GENERATOR grpc and NAMESPACE). grpc-js echo servers answer with their
# own names on 127.0.0.2-4 (one port, one EndpointSlice), 127.0.0.5 and 127.0.0.7. Checks: calls
# to the Service succeed and are spread round robin over its three endpoints; remora-cp's
# /debug/syncz lists the client (sotw) with LDS, RDS, CDS and EDS acknowledged, and its log has
# no NACK; an endpoint removed from the EndpointSlice on disk is pushed, acknowledged, and gets
# no more calls while the other two share them, no call failing meanwhile; a second Service in
# another namespace (port named by appProtocol grpc) is reachable too, and so are a headless
# Service (an EDS cluster of the clients' own) and an ExternalName one (LOGICAL_DNS); a call to
# a Service that does not exist fails unresolved (UNAVAILABLE or, as grpc-js 1.14 does,
# DEADLINE_EXCEEDED while waiting for name resolution) and the client is told its listener does
# not exist; that Service becomes reachable over the same channel once its manifests are
# written; after every push still no NACK; remora-cp exits 0 on SIGTERM with no sanitizer
# report. Needs node and npm (fails as root without them, skips otherwise) and jq.
# checks: 17
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=test/lib/testlib.sh
source "$root/test/lib/testlib.sh"
# shellcheck source=test/lib/npm.sh
source "$root/test/lib/npm.sh"
# shellcheck source=test/lib/loopback.sh
source "$root/test/lib/loopback.sh"
# shellcheck source=test/lib/cpmesh.sh
source "$root/test/lib/cpmesh.sh"
t_require_cmd jq
work=$LB_WORK
cp_bin=$LB_BIN/remora-cp
[[ -x $cp_bin ]] || t_stop "no $cp_bin: build it with make BUILD=$BUILD (SAN=1 for build/asan)"
npm_dir=$root/build/npm-cp-grpc
npm_peers "$here/cp_grpc" "$npm_dir" "$work/npm.out"

# --- the endpoints: grpc-js servers, one port on every address ---
bg "$work/servers.log" env NODE_PATH="$npm_dir/node_modules" node "$here/cp_grpc/servers.js" \
    a1@127.0.0.2 a2@127.0.0.3 a3@127.0.0.4 b1@127.0.0.5 c1@127.0.0.7
servers=$LAST_PID
servers_said() { grep -q '^port ' "$work/servers.log" || ! lb_alive "$servers"; }
t_until 20 servers_said
P=$(sed -n 's/^port \([0-9]*\)$/\1/p' "$work/servers.log")
[[ -n $P ]] || t_stop "the echo servers did not start: $(tail -n 3 "$work/servers.log" | tr '\n' ' ')"

# --- the mesh: Services echo (default) and other (apps), their EndpointSlices ---
CPM_DIR=$work/mesh
mkdir -p "$CPM_DIR"
cpm_namespace default
cpm_namespace apps
cpm_service default echo 198.19.0.30 "7070:$P:grpc-echo"
cpm_endpoints default echo "grpc-echo:$P" 127.0.0.2 127.0.0.3 127.0.0.4
cpm_write svc-apps-other.yaml <<EOF
apiVersion: v1
kind: Service
metadata: {name: other, namespace: apps}
spec:
  clusterIP: 198.19.0.31
  ports:
  - {name: rpc, port: 7071, targetPort: $P, appProtocol: grpc}
EOF
cpm_endpoints apps other "rpc:$P" 127.0.0.5
# A headless Service, and an ExternalName one (on an address: no DNS server is needed).
cpm_write svc-default-peers.yaml <<EOF
apiVersion: v1
kind: Service
metadata: {name: peers, namespace: default}
spec:
  clusterIP: None
  ports:
  - {name: grpc-peers, port: 7073, targetPort: $P}
EOF
cpm_endpoints default peers "grpc-peers:$P" 127.0.0.2 127.0.0.3
cpm_write svc-default-ext.yaml <<EOF
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: default}
spec:
  type: ExternalName
  externalName: 127.0.0.5
  ports:
  - {name: grpc-ext, port: $P}
EOF

# --- remora-cp, on ports it binds itself ---
lb_serve "CPX CPA" "$work/remora-cp.log" "$cp_bin" --mesh "$CPM_DIR" --listen "127.0.0.1:@CPX@" \
    --admin "127.0.0.1:@CPA@" --log-level debug || t_stop "remora-cp did not start"
cp_pid=$LAST_PID
LB_REMORAS[$cp_pid]=remora-cp # SIGTERM must end it with status 0
cp_ready() { [[ $(curl -s -m 1 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$CPA/ready") == 200 ]]; }
t_until 10 cp_ready || t_stop "remora-cp not ready: $(tail -n 5 "$work/remora-cp.log" | tr '\n' ' ')"

# --- the client: Istio's gRPC bootstrap, commands over a FIFO ---
cat >"$work/bootstrap.json" <<EOF
{
  "xds_servers": [{"server_uri": "127.0.0.1:$CPX", "channel_creds": [{"type": "insecure"}],
                   "server_features": ["xds_v3"]}],
  "node": {"id": "client.default", "cluster": "client.default", "locality": {},
           "metadata": {"GENERATOR": "grpc", "NAMESPACE": "default"}}
}
EOF
mkfifo "$work/client.in"
: >"$work/results"
bg "$work/client.log" env NODE_PATH="$npm_dir/node_modules" GRPC_XDS_BOOTSTRAP="$work/bootstrap.json" \
    GRPC_TRACE=xds_client,xds_resolver,cds_balancer,round_robin GRPC_VERBOSITY=DEBUG \
    node "$here/cp_grpc/client.js" "$work/client.in" "$work/results"
client=$LAST_PID
exec {cmd}>"$work/client.in"

# calls ID TARGET N [DEADLINE_MS] — N unary calls one after the other over the client's channel
# to xds:///TARGET; RESULT is the client's line for them (see client.js).
calls() {
    local id=$1
    printf '{"id": "%s", "target": "%s", "n": %d, "deadline_ms": %d}\n' "$id" "$2" "$3" \
        "${4:-20000}" >&"$cmd"
    said() { grep -q "^{\"id\":\"$id\"" "$work/results" || ! lb_alive "$client"; }
    t_until 120 said
    RESULT=$(grep "^{\"id\":\"$id\"" "$work/results")
    [[ -n $RESULT ]] || t_stop "the client did not answer $id: $(tail -n 3 "$work/client.log" | tr '\n' ' ')"
}
ok() { jq -r .ok <<<"$RESULT"; }
got() { jq -r --arg n "$1" '.names[$n] // 0' <<<"$RESULT"; }
errors() { jq -c .errors <<<"$RESULT"; }
ECHO=echo.default.svc.cluster.local:7070
OTHER=other.apps.svc.cluster.local:7071
PEERS=peers.default.svc.cluster.local:7073
EXT=ext.default.svc.cluster.local:$P
LATE=late.default.svc.cluster.local:7072

# syncz [JQ] — the client's entry in remora-cp's /debug/syncz, through JQ when given.
syncz() {
    curl -s -m 5 "http://127.0.0.1:$CPA/debug/syncz" |
        jq -c ".proxies[] | select(.node == \"client.default\") ${1:+| $1}"
}
# acked — every type the client subscribed is SYNCED: acked what was sent.
acked() {
    [[ $(syncz '[.types | to_entries[] | select(.value.state != "SYNCED")] | length') == 0 ]] &&
        [[ $(syncz '.types | keys | length') -ge 4 ]]
}
nacks() { grep -c 'NACKed' "$work/remora-cp.log"; }

# --- resolution and round robin (2 checks) ---
calls first "$ECHO" 30
t_eq "30 calls to xds:///$ECHO through remora-cp succeed" "$(ok) $(errors)" "30 {}"
calls rr "$ECHO" 30
spread="$(got a1) $(got a2) $(got a3)"
if (($(ok) == 30)) && awk '{ for (i = 1; i <= 3; i++) if ($i < 8 || $i > 12) exit 1 }' <<<"$spread"; then
    t_ok "30 more calls go round robin over the three endpoints (a1 a2 a3: $spread)"
else
    t_fail "30 more calls go round robin over the three endpoints" "a1 a2 a3: $spread; $RESULT"
fi

# --- remora-cp's view of the client (3 checks) ---
t_eq "/debug/syncz lists the client, over SotW" "$(syncz .mode)" '"sotw"'
if t_until 10 acked; then
    t_ok "the client acknowledged LDS, RDS, CDS and EDS: $(syncz '.types | keys')"
else
    t_fail "the client acknowledged LDS, RDS, CDS and EDS" "$(syncz)"
fi
t_eq "remora-cp logged no NACK" "$(nacks)" 0

# --- an endpoint removed on disk (4 checks) ---
eds_before=$(syncz .types.EDS.acked)
cpm_endpoints default echo "grpc-echo:$P" 127.0.0.2 127.0.0.3
eds_pushed() { acked && [[ $(syncz .types.EDS.acked) != "$eds_before" ]]; }
if t_until 20 eds_pushed; then
    t_ok "the EndpointSlice's change is pushed and acknowledged (EDS $eds_before -> $(syncz .types.EDS.acked))"
else
    t_fail "the EndpointSlice's change is pushed and acknowledged" "$(syncz)"
fi
# The client acknowledges before its balancer has switched: a few calls may still reach a3.
failed=0 n=0
no_a3() {
    n=$((n + 1))
    calls "drain$n" "$ECHO" 6
    failed=$((failed + 6 - $(ok)))
    [[ $(got a3) == 0 ]]
}
t_until 20 no_a3
calls after "$ECHO" 30
failed=$((failed + 30 - $(ok)))
t_eq "the removed endpoint gets none of 30 calls" "$(got a3)" 0
spread="$(got a1) $(got a2)"
if awk '{ for (i = 1; i <= 2; i++) if ($i < 12 || $i > 18) exit 1 }' <<<"$spread"; then
    t_ok "the two left share them round robin (a1 a2: $spread)"
else
    t_fail "the two left share them round robin" "a1 a2: $spread; $RESULT"
fi
t_eq "no call failed while the endpoint went away" "$failed" 0

# --- a second Service, another namespace, appProtocol grpc (1 check) ---
calls other "$OTHER" 10
t_eq "xds:///$OTHER reaches its endpoint" "$(ok) $(got b1)" "10 10"

# --- headless and ExternalName Services: clusters a gRPC client takes (2 checks) ---
calls peers "$PEERS" 20
t_eq "xds:///$PEERS (headless) reaches both its endpoints over EDS" \
    "$(ok) $(($(got a1) > 0)) $(($(got a2) > 0)) $(errors)" "20 1 1 {}"
calls ext "$EXT" 5
t_eq "xds:///$EXT (ExternalName) reaches its name over LOGICAL_DNS" "$(ok) $(got b1) $(errors)" \
    "5 5 {}"

# --- a Service that does not exist, then does (3 checks) ---
# remora-cp answers the new name at once with the listeners that exist; grpc-js-xds 1.14 still
# declares a name it never had missing only after its 15 s timer, and keeps the call waiting for
# name resolution until its deadline instead of failing it UNAVAILABLE (its pick_first takes no
# empty address list), so either failure is what a missing Service gives.
calls missing "$LATE" 1 5000
if (($(ok) == 0)) && grep -qE '^\{"(UNAVAILABLE: |DEADLINE_EXCEEDED: .*waiting for name resolution)' \
    <<<"$(errors)"; then
    t_ok "xds:///$LATE, which does not exist, fails unresolved: $(errors)"
else
    t_fail "xds:///$LATE, which does not exist, fails unresolved" "$RESULT"
fi
told_absent() { grep -q "\[$LATE\] Resolution error: LDS resource does not exist" "$work/client.log"; }
t_run "the client was told its listener does not exist (no NACK, no error)" t_until 20 told_absent
cpm_service default late 198.19.0.32 "7072:$P:grpc-late"
cpm_endpoints default late "grpc-late:$P" 127.0.0.7
n=0
reached() {
    n=$((n + 1))
    calls "late$n" "$LATE" 1 5000
    [[ $(got c1) == 1 ]]
}
if t_until 30 reached; then
    t_ok "once its manifests are written, the same channel reaches it"
else
    t_fail "once its manifests are written, the same channel reaches it" "$RESULT"
fi

# --- after every push (1 check) ---
if t_until 10 acked && [[ $(nacks) == 0 ]]; then
    t_ok "after every push the client is synced and remora-cp logged no NACK"
else
    t_fail "after every push the client is synced and remora-cp logged no NACK" \
        "$(syncz); $(grep NACK "$work/remora-cp.log" | head -n 3)"
fi

# --- remora-cp stops (1 check) ---
exec {cmd}>&-
t_until 10 _lb_all_gone "$client"
lb_stop "$cp_pid"
t_eq "remora-cp exits 0 on SIGTERM" "$LB_STATUS" 0
kill "$servers" 2>/dev/null
t_summary
