#!/usr/bin/env bash
# make demo: a small simulated cluster (pods as network namespaces, each app behind a Remora
# sidecar and iptables capture) driven by remora-cp and Kubernetes manifests alone: no sidecar
# config is written by hand. remora-cp signs each sidecar's SPIFFE certificate and the sidecars
# talk mutual TLS. Traffic from a client pod to a Service by VIP and by name, endpoints scaled
# on disk, an endpoint marked not ready, a route weight changed (an HTTPRoute), an invalid
# manifest, remora-cp killed and restarted, certificates renewed under traffic, remoractl
# proxy-status, and what the sidecars saw. Everything is removed at the end, also on failure or
# Ctrl-C.
set -u
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ $(id -u) != 0 ]]; then
    echo "demo: needs root (network namespaces and iptables); run: sudo make demo" >&2
    exit 1
fi
# shellcheck source=test/lib/simcluster.sh
source "$root/test/lib/simcluster.sh"
# shellcheck source=test/lib/apps.sh
source "$root/test/lib/apps.sh"
# shellcheck source=test/lib/cpmesh.sh
source "$root/test/lib/cpmesh.sh"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { # show FILE: a manifest as written
    printf '\033[2m--- %s\033[0m\n' "$(basename "$1")"
    cat "$1"
}

sim_init || exit 1
say "pods: client 198.18.0.2, web-1..3 198.18.0.3-5 (network namespaces); remora-cp in its own pod"
sim_pod client 198.18.0.2
for i in 1 2 3; do sim_pod "web-$i" "198.18.0.$((i + 2))"; done
CPM_DIR=$SIM_DIR/mesh
mkdir -p "$CPM_DIR"

say "the mesh CA (remoractl certs root): remora-cp signs every sidecar's identity with it"
"$SIM_BUILD/remoractl" certs root --out "$SIM_DIR/ca" >/dev/null || exit 1
ls "$SIM_DIR/ca"

say "Kubernetes manifests in $CPM_DIR: a Namespace, a Service, its Pods and an EndpointSlice"
cpm_namespace default
cpm_service default web 198.19.0.20 80:8080:http
cpm_pod default client 198.18.0.2 client client
for i in 1 2 3; do cpm_pod default "web-$i" "198.18.0.$((i + 2))" web web 8080:http; done
cpm_endpoints default web http:8080 198.18.0.3
cpm_dns 198.19.0.20 web.default.svc.cluster.local web.default
show "$CPM_DIR/svc-default-web.yaml"
show "$CPM_DIR/eps-default-web.yaml"

say "remora-cp --mesh $CPM_DIR --ca ... --mtls strict --cert-ttl 30s (xDS on 15010, admin on 15014)"
cpm_start --ca "$SIM_DIR/ca" --mtls strict --cert-ttl 30s || exit 1
grep -h 'serving' "$SIM_DIR/remora-cp.log"

for i in 1 2 3; do
    sim_nginx "web-$i" 8080 "    location / { return 200 \"web-$i answers \$request_uri (x-forwarded-client-cert \$http_x_forwarded_client_cert)\\n\"; }"
done
say "each sidecar's whole bootstrap: who it is, and where remora-cp is"
cpm_bootstrap "$SIM_DIR/client.yaml" client default client client
sed -n '1,12p' "$SIM_DIR/client.yaml"
for pod in client web-1 web-2 web-3; do
    sa=web
    [[ $pod == client ]] && sa=client
    [[ $pod == client ]] || cpm_bootstrap "$SIM_DIR/$pod.yaml" "$pod" default web "$sa"
    sim_capture "$pod" || exit 1
    sim_sidecar "$pod" "$SIM_DIR/$pod.yaml" --concurrency 1 || exit 1
done

say "remoractl proxy-status: every sidecar and its xDS state"
t_wait() { local i; for ((i = 0; i < 300; i++)); do "$@" && return 0; sleep 0.1; done; return 1; }
t_wait cpm_synced client.default web-1.default web-2.default web-3.default
sim_exec cp "$SIM_BUILD/remoractl" proxy-status --cp-admin "$CPM_ADMIN"

say "client pod -> http://web.default.svc.cluster.local/ (by name) and http://198.19.0.20/ (VIP)"
sim_exec client curl -s http://web.default.svc.cluster.local/by-name http://198.19.0.20/by-vip

say "scale web to 3 endpoints: the EndpointSlice rewritten on disk, nothing else"
cpm_endpoints default web http:8080 198.18.0.3 198.18.0.4 198.18.0.5
t_wait cpm_synced client.default
for i in 1 2 3 4 5 6; do sim_exec client curl -s "http://198.19.0.20/request-$i"; done | cut -d' ' -f1-3

say "mark web-3 not ready: the EndpointSlice says so; no request reaches it once pushed"
cpm_endpoints default web http:8080 198.18.0.3 198.18.0.4 198.18.0.5:notready
t_wait cpm_synced client.default
for i in 1 2 3 4 5 6; do sim_exec client curl -s "http://198.19.0.20/request-$i"; done | cut -d' ' -f1 | sort | uniq -c

say "route weights: an HTTPRoute (Gateway API, GAMMA) on Service web, 100/0 to web-v1 and web-v2"
cpm_service default web-v1 198.19.0.21 80:8080:http
cpm_endpoints default web-v1 http:8080 198.18.0.3
cpm_service default web-v2 198.19.0.22 80:8080:http
cpm_endpoints default web-v2 http:8080 198.18.0.4
cpm_httproute default web web 80 web-v1:100 web-v2:0
show "$CPM_DIR/route-default-web.yaml"
t_wait cpm_synced client.default
for i in 1 2 3 4 5 6; do sim_exec client curl -s "http://198.19.0.20/weighted-$i"; done | cut -d' ' -f1 | sort | uniq -c
say "the weights changed on disk to 0/100: the sidecars follow without a restart"
cpm_httproute default web web 80 web-v1:0 web-v2:100
t_wait cpm_synced client.default
for i in 1 2 3 4 5 6; do sim_exec client curl -s "http://198.19.0.20/weighted-$i"; done | cut -d' ' -f1 | sort | uniq -c

say "an invalid manifest: remora-cp names the file and the field; what is served stays"
printf 'apiVersion: v1\nkind: Service\nmetadata: {name: broken, namespace: default}\nspec:\n  ports: [{port: abc}]\n' |
    cpm_write svc-broken.yaml
t_wait grep -q 'svc-broken.yaml' "$SIM_DIR/remora-cp.log"
grep -h 'svc-broken.yaml' "$SIM_DIR/remora-cp.log" | tail -n 1
sim_exec client curl -s http://198.19.0.20/still-served | cut -d' ' -f1-3
rm -f "$CPM_DIR/svc-broken.yaml"

say "remora-cp killed: the sidecars keep serving their last config"
kill -KILL "$CPM_PID"
sim_exec client curl -s http://198.19.0.20/without-remora-cp | cut -d' ' -f1-3
say "remora-cp started again: the sidecars reconnect and converge"
cpm_start --ca "$SIM_DIR/ca" --mtls strict --cert-ttl 30s || exit 1
t_wait cpm_synced client.default web-1.default web-2.default web-3.default
sim_exec cp "$SIM_BUILD/remoractl" proxy-status --cp-admin "$CPM_ADMIN"

say "web-1's certificate replaced over SDS under traffic (remora-cp renews each halfway through its 30 s)"
serial() { sim_admin web-1 /certs | jq -r '.certificates[0].cert_chain[0].serial_number'; }
s0=$(serial)
echo "web-1's serial now: $s0"
renewed() { [[ $(serial) != "$s0" ]]; }
fails=0
for ((i = 0; i < 200; i++)); do
    sim_exec client curl -s -f -o /dev/null http://198.19.0.20/during-rotation || fails=$((fails + 1))
    renewed && break
    sleep 0.1
done
echo "web-1's serial then: $(serial); failed requests meanwhile: $fails"

say "client sidecar: the identity remora-cp signed for it (/certs)"
sim_admin client /certs | jq -c '.certificates[0].cert_chain[0] | {serial_number, subject_alt_names, days_until_expiration}'
say "mutual TLS between the sidecars"
sim_admin client '/stats?filter=ssl' | grep -v ': 0$'
say "client sidecar: Istio request metrics (/stats/prometheus)"
sim_admin client /stats/prometheus | grep '^istio_requests_total'
say "remora-cp: its own metrics, with istiod's names (/stats/prometheus on 15014)"
cpm_admin /stats/prometheus |
    grep -E '^(pilot_xds |pilot_xds_pushes|pilot_total_xds_rejects|pilot_xds_push_time_(sum|count)|citadel_server)'
say "done: tearing the cluster down"
