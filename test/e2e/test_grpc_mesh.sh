#!/usr/bin/env bash
# Story: gRPC through the mesh. A real gRPC client (@grpc/grpc-js, pinned) calls a real gRPC
# server through two sidecars: client → A (h2c, the outbound listener) → mutual TLS with ALPN
# h2 → B (the inbound listener) → h2c → server. Every kind of call works end to end (unary,
# server, client and bidirectional streaming, status codes and messages, trailers-only errors,
# deadlines, metadata with binary headers, 1 MiB messages, the server's name), and a caller's
# cancel reaches the server as a reset through both sidecars; 200 calls at 20
# at a time keep their statuses (Istio's metric counts them by grpc_response_status) and ride
# one HTTP/2 connection between the sidecars; with the
# server gone, the sidecars' own answer reaches the caller as a gRPC status it can read
# (UNAVAILABLE), not an HTTP error body. Needs no root.
# checks: 20
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=test/lib/testlib.sh
source "$root/test/lib/testlib.sh"
t_require_cmd openssl
# shellcheck source=test/lib/loopback.sh
source "$root/test/lib/loopback.sh"
# shellcheck source=test/lib/mtls.sh
source "$root/test/lib/mtls.sh"
# shellcheck source=test/lib/grpcmesh.sh
source "$root/test/lib/grpcmesh.sh"
CTL=$LB_BIN/remoractl
work=$LB_WORK
got=''

"$CTL" certs root --out "$work/root" >/dev/null
"$CTL" certs issue --ca "$work/root" --spiffe-id spiffe://cluster.local/ns/default/sa/client \
    --out "$work/client" >/dev/null
"$CTL" certs issue --ca "$work/root" --spiffe-id spiffe://cluster.local/ns/default/sa/server \
    --out "$work/server" >/dev/null

gm_install
((${#GM_CHECKS[@]} == 11)) ||
    t_stop "the client names ${#GM_CHECKS[@]} checks (${GM_CHECKS[*]}), this story counts 11"
gm_server alpha || t_stop "the gRPC server alpha did not start"

# B: mutual TLS in, offering h2 by ALPN; HTTP/2 (h2c) to the server.
MTLS_ALPN='h2, http/1.1' MTLS_CLUSTER_H2=1 \
    mtls_inbound_config "$work/b.yaml" 0 0 "$work/server" "${GM_PORT[alpha]}"
lb_remora b "$work/b.yaml" --concurrency 1 || t_stop "sidecar B did not start: $(cat "$work/b.log")"
B_PID=$LB_PID B_ADMIN=$LB_ADMIN B_PORT=${LB_PORT[inbound]}
# A: h2c in from the client; HTTP/2 over mutual TLS (ALPN h2) to B.
MTLS_ALPN='h2' MTLS_CLUSTER_H2=1 mtls_outbound_config "$work/a.yaml" 0 0 "$B_PORT" \
    "$work/client" spiffe://cluster.local/ns/default/sa/server
lb_remora a "$work/a.yaml" --concurrency 1 || t_stop "sidecar A did not start: $(cat "$work/a.log")"
A_PID=$LB_PID A_ADMIN=$LB_ADMIN A_PORT=${LB_PORT[outbound]}

gm_checks mesh --target "127.0.0.1:$A_PORT" --server alpha --authority grpc.mesh.test
cancelled() { (($(gm_said alpha '^sleep cancelled$') == 1)); }
if t_until 5 cancelled; then
    t_ok "mesh: the deadline's cancel crossed both sidecars (RST_STREAM) to the server"
else
    t_fail "mesh: the deadline's cancel crossed both sidecars (RST_STREAM) to the server" \
        "$(gm_said alpha '^sleep cancelled$') cancellations logged, want 1"
fi

gm_load got --target "127.0.0.1:$A_PORT" --authority grpc.mesh.test --load 200 \
    --concurrency 20 --fail-one-in 4
t_eq "mesh: 200 calls, 20 at a time, keep their statuses" "$got" \
    $'status OK 150\nstatus UNAVAILABLE 50\nserver alpha 150\ntotal 200'
t_eq "between the sidecars: one HTTP/2 connection carried them all" \
    "$(stat "$A_ADMIN" cluster.b.upstream_cx_http2_total)" 1
prom=$(curl -s "http://127.0.0.1:$B_ADMIN/stats/prometheus")
t_contains "Istio's metric carries the calls' grpc_response_status (14: UNAVAILABLE)" "$prom" \
    'request_protocol="grpc",response_code="200",grpc_response_status="14",response_flags="-"} 50'
t_eq "B took the calls as HTTP/2 streams over mutual TLS" \
    "$(($(stat "$B_ADMIN" http.inbound.downstream_rq_http2_total) >= 200))" 1

gm_stop alpha || true
gm_load got --target "127.0.0.1:$A_PORT" --authority grpc.mesh.test --load 5 --concurrency 1
t_eq "server gone: the caller reads UNAVAILABLE from the sidecars' own answer" "$got" \
    $'status UNAVAILABLE 5\ntotal 5'
t_eq "the answer was B's connect failure, counted there" \
    "$(($(stat "$B_ADMIN" cluster.app.upstream_cx_connect_fail) >= 1))" 1

lb_stop "$A_PID"
t_eq "A exits cleanly" "$LB_STATUS" 0
lb_stop "$B_PID"
t_eq "B exits cleanly" "$LB_STATUS" 0
t_summary
