#!/usr/bin/env bash
# Story: HTTP/2 in a mesh configured by remora-cp alone (strict mTLS, Kubernetes manifests). A
# gRPC Service (its port named by appProtocol: grpc; the pod's container port unnamed) is served
# by a @grpc/grpc-js server behind its sidecar, and a client pod calls it through its own
# sidecar: every kind of gRPC call works end to end (unary, the three streaming kinds, status
# codes and messages, trailers-only errors, deadlines, binary metadata, 1 MiB messages, the
# server's name and the :authority it saw); the client's sidecar spoke HTTP/2 to the server's
# and the server's sidecar HTTP/2 (h2c) to the app; 100 calls, 10 at a time, keep their statuses
# on the one HTTP/2 connection between the sidecars. An HTTP/1.1 Service's app (nginx) gets
# HTTP/1.1 from a curl in the client pod and the client gets a plain HTTP/1.1 answer, while
# between the sidecars the requests rode HTTP/2 streams over mTLS (the client's cluster made an
# HTTP/2 connection, the server's sidecar took HTTP/2 requests), and 20 requests of 20 client
# connections rode that one connection.
# checks: 22
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=test/lib/testlib.sh
source "$root/test/lib/testlib.sh"
t_require_root
t_require_cmd nginx curl setpriv jq
# shellcheck source=test/lib/simcluster.sh
source "$root/test/lib/simcluster.sh"
# shellcheck source=test/lib/apps.sh
source "$root/test/lib/apps.sh"
# shellcheck source=test/lib/cpmesh.sh
source "$root/test/lib/cpmesh.sh"
sim_init || exit 1
[[ -x $SIM_BUILD/remora-cp ]] || t_stop "no $SIM_BUILD/remora-cp (run make)"
# The gRPC peers' logs go where gm_said reads them.
LB_WORK=$SIM_DIR
# shellcheck source=test/lib/grpcmesh.sh
source "$root/test/lib/grpcmesh.sh"
gm_install
((${#GM_CHECKS[@]} == 11)) ||
    t_stop "the client names ${#GM_CHECKS[@]} checks (${GM_CHECKS[*]}), this story counts 11"

PODS=(client rpc web)
sim_pod client 198.18.0.2
sim_pod rpc 198.18.0.3
sim_pod web 198.18.0.4
CPM_DIR=$SIM_DIR/mesh
mkdir -p "$CPM_DIR"
"$SIM_BUILD/remoractl" certs root --out "$SIM_DIR/ca" >/dev/null || t_stop "remoractl certs root"
CPM_TLS=1 CPM_CA=$SIM_DIR/ca

cpm_namespace default
# The gRPC Service: the port's protocol is its appProtocol, its name says nothing.
cpm_write svc-default-rpc.yaml <<'EOF'
apiVersion: v1
kind: Service
metadata: {name: rpc, namespace: default}
spec:
  type: ClusterIP
  clusterIP: 198.19.0.50
  selector: {app: rpc}
  ports:
  - {name: api, appProtocol: grpc, port: 7070, targetPort: 9090, protocol: TCP}
EOF
cpm_service default web 198.19.0.60 80:8080:http
cpm_pod default client 198.18.0.2 client client
# The server's pod declares 9090 without a name: it takes grpc from the Service.
cpm_pod default rpc 198.18.0.3 rpc rpc 9090
cpm_pod default web 198.18.0.4 web web 8080:http
cpm_endpoints default rpc api:9090 198.18.0.3
cpm_endpoints default web http:8080 198.18.0.4

cpm_start --ca "$SIM_DIR/ca" --mtls strict --log-level debug || t_stop "remora-cp did not start"
cpm_gm_server rpc alpha 9090 || t_stop "the gRPC server did not start"
# shellcheck disable=SC2016 # nginx's variable
sim_nginx web 8080 '    location / { return 200 "$server_protocol\n"; }'
for pod in "${PODS[@]}"; do
    cpm_bootstrap "$SIM_DIR/$pod.yaml" "$pod" default "$pod" "$pod"
    sim_capture "$pod" || t_stop "capture in $pod"
    sim_sidecar "$pod" "$SIM_DIR/$pod.yaml" --concurrency 1 || t_stop "sidecar in $pod"
done
t_ok sidecars_ready_from_remora_cp_alone
if t_until 10 cpm_synced client.default rpc.default web.default; then
    t_ok proxy_status_all_synced
else
    t_fail proxy_status_all_synced "$(cpm_admin /debug/syncz | head -c 2000)"
fi

# stat POD NAME — a counter of the pod's sidecar (0 when it is not there).
stat() {
    sim_admin "$1" /stats | awk -F': ' -v n="$2" '$1 == n { v = $2 } END { print v + 0 }'
}
RPC_CLUSTER='cluster.outbound|7070||rpc.default.svc.cluster.local'
WEB_CLUSTER='cluster.outbound|80||web.default.svc.cluster.local'

# --- gRPC: client pod -> its sidecar (h2c) -> mTLS h2 -> rpc's sidecar -> h2c -> grpc-js ---
AUTH=rpc.default.svc.cluster.local:7070
cpm_gm_in client gm_checks grpc --target 198.19.0.50:7070 --server alpha --authority "$AUTH"
t_eq "grpc: the client's sidecar spoke HTTP/2 to rpc's" \
    "$(($(stat client "$RPC_CLUSTER.upstream_cx_http2_total") >= 1))" 1
t_eq "grpc: rpc's sidecar spoke HTTP/2 (h2c) to the app" \
    "$(($(stat rpc 'cluster.inbound|9090|h2c|.upstream_cx_http2_total') >= 1))" 1
conns=$(stat client "$RPC_CLUSTER.upstream_cx_http2_total")
got=''
cpm_gm_in client gm_load got --target 198.19.0.50:7070 --authority "$AUTH" --load 100 \
    --concurrency 10 --fail-one-in 4
t_eq "grpc: 100 calls, 10 at a time, keep their statuses" "$got" \
    $'status OK 75\nstatus UNAVAILABLE 25\nserver alpha 75\ntotal 100'
t_eq "grpc: the calls rode the HTTP/2 connection already there" \
    "$(stat client "$RPC_CLUSTER.upstream_cx_http2_total")" "$conns"

# --- HTTP/1.1: curl -> client's sidecar -> mTLS h2 -> web's sidecar -> HTTP/1.1 -> nginx ---
call() { sim_exec client curl -s -m 5 "$@"; }
t_eq "http/1.1: the app got HTTP/1.1" "$(call http://198.19.0.60/)" HTTP/1.1
t_eq "http/1.1: the client got a plain HTTP/1.1 answer" \
    "$(call -sS -o /dev/null -w '%{http_version} %{http_code}' http://198.19.0.60/)" "1.1 200"
t_eq "http/1.1: between the sidecars it rode HTTP/2" \
    "$(($(stat client "$WEB_CLUSTER.upstream_cx_http2_total") >= 1))" 1
t_eq "http/1.1: web's sidecar took it as HTTP/2 streams over mTLS" \
    "$(($(stat web http.inbound_0.0.0.0_8080.downstream_rq_http2_total) >= 2))" 1
conns=$(stat client "$WEB_CLUSTER.upstream_cx_http2_total")
ok=0
for i in $(seq 1 20); do
    [[ $(call http://198.19.0.60/) == HTTP/1.1 ]] && ok=$((ok + 1))
done
t_eq "http/1.1: 20 client connections, 20 answers, on the one HTTP/2 connection" \
    "$ok $(stat client "$WEB_CLUSTER.upstream_cx_http2_total")" "20 $conns"
t_summary
