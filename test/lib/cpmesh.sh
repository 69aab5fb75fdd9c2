# shellcheck shell=bash
# cpmesh.sh — a simulated cluster driven by remora-cp and Kubernetes manifests alone: remora-cp
# runs in a pod of its own (as istiod runs as a Deployment), reads a directory of manifests that
# the story writes, and every sidecar's bootstrap only names itself and the control plane, as
# Istio's agent writes it. Source it after simcluster.sh, never run it.
#
#   cpm_start [remora-cp args...]          remora-cp in pod "cp" (CPM_IP), xDS on :15010, admin
#                                          on 127.0.0.1:15014 in that pod, mesh dir CPM_DIR;
#                                          waits for /ready
#   cpm_stop / cpm_restart                 SIGTERM it (and start it again)
#   cpm_admin PATH                         GET remora-cp's admin PATH
#   cpm_bootstrap FILE POD NS [WORKLOAD] [SA]   a sidecar bootstrap: node id POD.NS, Istio's
#                                          node metadata, ADS to remora-cp over HTTP/2 (with
#                                          CPM_TLS, mutual TLS with a certificate for SA, or
#                                          for CPM_BOOT_SA when set)
#   cpm_namespace NAME [MTLS]              manifests (files in CPM_DIR, one per object):
#   cpm_service NS NAME VIP PORT[:TARGET[:PORTNAME]]...
#   cpm_pod NS NAME IP [SA] [APP] [CONTAINERPORT[:NAME]]...
#   cpm_endpoints NS SVC PORTNAME:PORT ADDR[:notready]...   an EndpointSlice of SVC
#   cpm_httproute NS NAME PARENT PORT BACKEND:WEIGHT...   an HTTPRoute (GAMMA) on Service
#                                          PARENT's PORT: one rule, every path, to the backend
#                                          Services' PORT by weight
#   cpm_write NAME < YAML                  any manifest, written atomically (rename)
#   cpm_gm_server POD NAME PORT            the gRPC test server (grpcmesh.sh's server.js) named
#                                          NAME in POD on 0.0.0.0:PORT; log $LB_WORK/grpc-NAME.out
#   cpm_gm_in POD FUNCTION ARGS...         a grpcmesh.sh function (gm_checks, gm_load) with its
#                                          node client run in POD, behind that pod's sidecar

CPM_POD="cp"
CPM_IP=${CPM_IP:-198.18.255.250}
CPM_PORT=15010
CPM_ADMIN=127.0.0.1:15014
# CPM_CA=DIR (a root from remoractl certs) with CPM_TLS=1: remora-cp serves mutual TLS on 15012
# (--tls) and each sidecar's bootstrap carries a certificate of its own identity from that CA
# (the pod's bootstrap identity, as a mounted secret would give it) and expects remora-cp's.

# Writes stdin to $CPM_DIR/NAME in one rename, so remora-cp never reads half a file.
cpm_write() {
    local name=$1
    cat >"$CPM_DIR/.$name.tmp" && mv "$CPM_DIR/.$name.tmp" "$CPM_DIR/$name"
}

cpm_start() {
    local i code
    if [[ -z ${CPM_DIR:-} ]]; then
        CPM_DIR=$SIM_DIR/mesh
        mkdir -p "$CPM_DIR"
    fi
    export CPM_DIR
    if ! sim_ip "$CPM_POD" >/dev/null 2>&1; then
        sim_pod "$CPM_POD" "$CPM_IP" || return 1
    fi
    local tls=()
    if [[ -n ${CPM_TLS:-} ]]; then
        CPM_PORT=15012
        tls=(--tls --ca "$CPM_CA")
    fi
    CPM_PID=$(sim_bg "$CPM_POD" "$SIM_DIR/remora-cp.log" "$SIM_BUILD/remora-cp" --mesh "$CPM_DIR" \
        --listen "0.0.0.0:$CPM_PORT" --admin "$CPM_ADMIN" "${tls[@]}" "$@") || return 1
    export CPM_PID
    for ((i = 0; i < 100; i++)); do
        code=$(sim_exec "$CPM_POD" curl -s --noproxy '*' -m 1 -o /dev/null -w '%{http_code}' \
            "http://$CPM_ADMIN/ready" 2>/dev/null)
        [[ $code == 200 ]] && return 0
        if ! kill -0 "$CPM_PID" 2>/dev/null; then
            _sim_err "remora-cp exited; its log ends:"
            tail -n 20 "$SIM_DIR/remora-cp.log" >&2
            return 1
        fi
        sleep 0.1
    done
    _sim_err "remora-cp not ready after 10 s; its log ends:"
    tail -n 20 "$SIM_DIR/remora-cp.log" >&2
    return 1
}

cpm_stop() {
    local i
    kill -TERM "$CPM_PID" 2>/dev/null
    for ((i = 0; i < 100; i++)); do
        kill -0 "$CPM_PID" 2>/dev/null || return 0
        sleep 0.05
    done
    kill -KILL "$CPM_PID" 2>/dev/null
    return 1
}

cpm_restart() {
    cpm_stop
    cpm_start "$@"
}

cpm_admin() {
    sim_exec "$CPM_POD" curl -sS --noproxy '*' -m 5 "http://$CPM_ADMIN$1"
}

cpm_bootstrap() {
    local file=$1 pod=$2 ns=$3 wl=${4:-$2} sa=${5:-default} certs
    certs=$SIM_DIR/boot-$(basename "$1" .yaml)
    [[ -n ${CPM_TLS:-} ]] && CPM_PORT=15012
    if [[ -n ${CPM_TLS:-} ]]; then
        "$SIM_BUILD/remoractl" certs issue --ca "$CPM_CA" --out "$certs" --ns "$ns" \
            --sa "${CPM_BOOT_SA:-$sa}" >/dev/null || return 1
        chown -R "${SIM_PROXY_UID:-1337}:${SIM_PROXY_UID:-1337}" "$certs" && chmod 755 "$certs" ||
            return 1
    fi
    cat >"$file" <<EOF2
node:
  id: "$pod.$ns"
  cluster: "$wl.$ns"
  metadata: {WORKLOAD_NAME: "$wl", NAMESPACE: "$ns", SERVICE_ACCOUNT: "$sa"}
admin:
  address: {socket_address: {address: 127.0.0.1, port_value: 15000}}
dynamic_resources:
  ads_config:
    api_type: GRPC
    transport_api_version: V3
    set_node_on_first_message_only: true
    grpc_services: [{envoy_grpc: {cluster_name: xds-grpc}}]
  cds_config: {ads: {}, resource_api_version: V3}
  lds_config: {ads: {}, resource_api_version: V3}
static_resources:
  clusters:
  - name: xds-grpc
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: xds-grpc
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: $CPM_IP, port_value: $CPM_PORT}}}
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
EOF2
    [[ -n ${CPM_TLS:-} ]] || return 0
    cat >>"$file" <<EOF2
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        common_tls_context:
          alpn_protocols: [h2]
          tls_certificates:
          - certificate_chain: {filename: $certs/cert-chain.pem}
            private_key: {filename: $certs/key.pem}
          validation_context:
            trusted_ca: {filename: $certs/root-cert.pem}
            match_typed_subject_alt_names:
            - san_type: URI
              matcher: {exact: "spiffe://cluster.local/ns/remora-system/sa/remora-cp"}
EOF2
}

cpm_namespace() {
    local name=$1 mtls=${2:-}
    {
        printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n' "$name"
        [[ -n $mtls ]] && printf '  annotations: {remora.io/mtls: %s}\n' "$mtls"
    } | cpm_write "ns-$name.yaml"
}

cpm_service() {
    local ns=$1 name=$2 vip=$3 p port target pname
    shift 3
    {
        printf 'apiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: %s}\n' "$name" "$ns"
        printf 'spec:\n  type: ClusterIP\n  clusterIP: %s\n  selector: {app: %s}\n  ports:\n' \
            "$vip" "$name"
        for p in "$@"; do
            IFS=: read -r port target pname <<<"$p"
            printf '  - {name: %s, port: %s, targetPort: %s, protocol: TCP}\n' \
                "${pname:-http-$port}" "$port" "${target:-$port}"
        done
    } | cpm_write "svc-$ns-$name.yaml"
}

cpm_pod() {
    local ns=$1 name=$2 ip=$3 sa=${4:-default} app=${5:-$2} p port pname
    shift 3
    (($# > 0)) && shift
    (($# > 0)) && shift
    {
        printf 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  namespace: %s\n' "$name" "$ns"
        printf '  labels: {app: %s}\n' "$app"
        printf '  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: %s-5d8f7c, uid: u1}]\n' \
            "$app"
        printf 'spec:\n  serviceAccountName: %s\n  containers:\n  - name: app\n    image: app\n' "$sa"
        if (($# > 0)); then
            printf '    ports:\n'
            for p in "$@"; do
                IFS=: read -r port pname <<<"$p"
                printf '    - {containerPort: %s%s}\n' "$port" "${pname:+, name: $pname}"
            done
        fi
        printf 'status:\n  phase: Running\n  podIP: %s\n' "$ip"
        printf '  conditions: [{type: Ready, status: "True"}]\n'
    } | cpm_write "pod-$ns-$name.yaml"
}

cpm_endpoints() {
    local ns=$1 svc=$2 portspec=$3 a addr state pname port
    shift 3
    IFS=: read -r pname port <<<"$portspec"
    {
        printf 'apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n'
        printf 'metadata:\n  name: %s-abc12\n  namespace: %s\n' "$svc" "$ns"
        printf '  labels: {kubernetes.io/service-name: %s}\n' "$svc"
        printf 'addressType: IPv4\nports:\n- {name: %s, port: %s, protocol: TCP}\nendpoints:\n' \
            "$pname" "$port"
        for a in "$@"; do
            IFS=: read -r addr state <<<"$a"
            printf -- '- addresses: ["%s"]\n  conditions: {ready: %s}\n' "$addr" \
                "$([[ $state == notready ]] && echo false || echo true)"
        done
    } | cpm_write "eps-$ns-$svc.yaml"
}

cpm_httproute() {
    local ns=$1 name=$2 parent=$3 port=$4 b svc weight
    shift 4
    {
        printf 'apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n'
        printf 'metadata: {name: %s, namespace: %s}\nspec:\n' "$name" "$ns"
        printf '  parentRefs: [{group: "", kind: Service, name: %s, port: %s}]\n' "$parent" "$port"
        printf '  rules:\n  - matches: [{path: {type: PathPrefix, value: /}}]\n    backendRefs:\n'
        for b in "$@"; do
            IFS=: read -r svc weight <<<"$b"
            printf '    - {name: %s, port: %s, weight: %s}\n' "$svc" "$port" "$weight"
        done
    } | cpm_write "route-$ns-$name.yaml"
}

# cpm_dns VIP NAME... — the cluster DNS of a Service: NAME... resolve to VIP in every pod.
cpm_dns() {
    local vip=$1
    shift
    printf '%s\t%s\n' "$vip" "$*" >>"$SIM_DIR/hosts" && _sim_sync_hosts
}

# cpm_synced NODE... — true when remoractl proxy-status shows every NODE with each type it was
# sent SYNCED (none STALE, NACKED).
cpm_synced() {
    local out n
    out=$(sim_exec "$CPM_POD" "$SIM_BUILD/remoractl" proxy-status --cp-admin "$CPM_ADMIN" 2>/dev/null) ||
        return 1
    for n in "$@"; do
        grep -E "^$n " <<<"$out" | grep -qvE 'STALE|NACKED' || return 1
        grep -qE "^$n .*SYNCED" <<<"$out" || return 1
    done
}

# The gRPC peers of test/lib/grpcmesh.sh in pods. Source grpcmesh.sh with LB_WORK set (to
# SIM_DIR: the servers' logs are where gm_said reads them) and call gm_install first.

# cpm_gm_server POD NAME PORT — starts test/e2e/grpc_mesh/server.js named NAME in POD, listening
# on 0.0.0.0:PORT (the Service's target port), its log in $LB_WORK/grpc-NAME.out (one line per
# call; gm_said reads it); waits until it wrote its port down. Stopped by sim_teardown.
cpm_gm_server() {
    local pod=$1 name=$2 port=$3 file=$LB_WORK/grpc-$2.port pid i
    rm -f "$file"
    pid=$(sim_bg "$pod" "$LB_WORK/grpc-$name.out" env NODE_PATH="$GM_NPM/node_modules" \
        node "$GM_PEERS/server.js" --listen "0.0.0.0:$port" --name "$name" --port-file "$file") ||
        return 1
    for ((i = 0; i < 150; i++)); do
        [[ -s $file ]] && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    _sim_err "gRPC server $name in pod $pod did not start: $(tail -n 5 "$LB_WORK/grpc-$name.out" | tr '\n' ' ')"
    return 1
}

# cpm_gm_in POD FUNCTION ARGS... — runs grpcmesh.sh's FUNCTION ARGS with every node process it
# starts run in POD (as the pod's app: its outbound traffic goes through the pod's sidecar);
# returns FUNCTION's status.
cpm_gm_in() {
    local rc
    _CPM_GM_POD=$1
    shift
    # shellcheck disable=SC2317 # called by the grpcmesh.sh function
    node() { sim_exec "$_CPM_GM_POD" env NODE_PATH="${NODE_PATH:-}" node "$@"; }
    "$@"
    rc=$?
    unset -f node
    return "$rc"
}
