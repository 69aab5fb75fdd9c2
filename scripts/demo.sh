#!/usr/bin/env bash
# make demo: a small simulated cluster (pods as network namespaces, each app behind a Remora
# sidecar and iptables capture, sidecars talking mutual TLS with SPIFFE identities), traffic
# from a client pod to a service VIP, and what the sidecars saw. Everything is removed at the
# end, also on failure or Ctrl-C.
set -u
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ $(id -u) != 0 ]]; then
    echo "demo: needs root (network namespaces and iptables); run: sudo make demo" >&2
    exit 1
fi
# shellcheck source=test/lib/simcluster.sh
source "$root/test/lib/simcluster.sh"
# shellcheck source=test/lib/meshconfig.sh
source "$root/test/lib/meshconfig.sh"
# shellcheck source=test/lib/apps.sh
source "$root/test/lib/apps.sh"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

sim_init || exit 1
say "pods: client 198.18.0.2, backend-1 198.18.0.3, backend-2 198.18.0.4 (network namespaces)"
sim_pod client 198.18.0.2
sim_pod backend-1 198.18.0.3
sim_pod backend-2 198.18.0.4
say "identities: a mesh root CA and one SPIFFE certificate per pod (remoractl certs)"
mesh_ca "$SIM_DIR/ca" || exit 1
for pod in client backend-1 backend-2; do
    sa=backend
    [[ $pod == client ]] && sa=client
    mesh_certs_issue "$SIM_DIR/ca" "$SIM_DIR/certs-$pod" "spiffe://cluster.local/ns/default/sa/$sa" ||
        exit 1
    echo "$pod: spiffe://cluster.local/ns/default/sa/$sa"
    # Strict mTLS between sidecars; each pod's sidecar presents its own certificate.
    MESH_MTLS=strict MESH_CERT_DIR=$SIM_DIR/certs-$pod mesh_config "$SIM_DIR/$pod.yaml" \
        "backend 198.19.0.10 80 198.18.0.3:8080,198.18.0.4:8080 backend" \
        "web 198.19.0.20 80 198.18.0.3:8081,198.18.0.4:8081 backend"
done
echo "service backend.default.svc.cluster.local = VIP 198.19.0.10:80 -> pods :8080 (plain TCP)"
echo "service web.default.svc.cluster.local     = VIP 198.19.0.20:80 -> pods :8081 (HTTP, nginx)"
for b in backend-1 backend-2; do
    sim_nginx "$b" 8081 "    location / { return 200 \"$b nginx: \$request_uri (x-forwarded-for \$http_x_forwarded_for, x-request-id \$http_x_request_id, x-forwarded-client-cert \$http_x_forwarded_client_cert)\\n\"; }"
done

for b in backend-1 backend-2; do
    sim_bg "$b" "$SIM_DIR/$b-app.log" socat TCP-LISTEN:8080,fork,reuseaddr,backlog=256 \
        SYSTEM:"read line; echo \"$b answers: \$line\"" >/dev/null
done
for pod in client backend-1 backend-2; do
    sim_capture "$pod" || exit 1
    sim_sidecar "$pod" "$SIM_DIR/$pod.yaml" --concurrency 1 || exit 1
done
say "capture rules in the client pod (remoractl iptables apply)"
sim_exec client iptables -t nat -S | grep REMORA

say "client pod -> backend VIP 198.19.0.10:80, six connections"
for i in 1 2 3 4 5 6; do
    printf 'request %s\n' "$i" | sim_exec client socat -t 3 - TCP:198.19.0.10:80
done

say "client pod -> http://198.19.0.20/ (web), four HTTP requests over one connection"
sim_exec client curl -s http://198.19.0.20/a http://198.19.0.20/b http://198.19.0.20/c \
    http://198.19.0.20/d

say "client sidecar: /stats (outbound)"
sim_admin client '/stats?filter=%5BOo%5Dutbound' | grep -v ': 0$'
say "backend-1 sidecar: /stats (inbound)"
sim_admin backend-1 '/stats?filter=%5BIi%5Dnbound' | grep -v ': 0$'
say "client sidecar: /clusters"
sim_admin client /clusters | grep -v '::0$'
say "mutual TLS between the sidecars: handshakes, resumptions, failures by reason"
sim_admin client '/stats?filter=ssl' | grep -v ': 0$'
sim_admin backend-1 '/stats?filter=ssl' | grep -v ': 0$'
say "backend-1 sidecar: its identity (/server_info) and certificates (/certs)"
sim_admin backend-1 /server_info | jq -c .identity
sim_admin backend-1 /certs | jq -c '.certificates[0].cert_chain[0] | {serial_number, subject_alt_names, days_until_expiration}'
say "client sidecar: Istio request metrics (/stats/prometheus)"
sim_admin client /stats/prometheus | grep '^istio_requests_total'
say "done: tearing the cluster down"
