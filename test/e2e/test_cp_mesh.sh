#!/usr/bin/env bash
# Story: a simulated cluster driven by remora-cp and Kubernetes manifests alone. remora-cp runs in
# a pod of its own with the mesh CA and strict mTLS; each sidecar's bootstrap names only itself and
# remora-cp, which it reaches over mutual TLS with a certificate of its own identity; a sidecar
# whose certificate names another identity than its node is refused, and plaintext is not served. A client calls a Service by its VIP and by its DNS name through two sidecars with
# CA-signed SPIFFE certificates; remoractl proxy-status shows every sidecar synced. Under a
# steady stream of requests the Service's endpoints go from 1 to 3 and back to 1 with no failed
# request and the traffic following; an endpoint marked not ready gets no request once pushed; a
# new Service is served by VIP and name; an HTTPRoute on a Service sends all requests to v1
# (weights 100/0), then, the file rewritten, all to v2 (0/100), then to both (50/50), the
# client's sidecar not restarted; an invalid manifest is reported with its file and field
# and changes nothing; remora-cp killed, the sidecars keep serving and converge again when it
# comes back; certificates are renewed and pushed while requests flow; remora-cp stops cleanly.
# checks: 30
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
PODS=(client web1 web2 web3)
sim_pod client 198.18.0.2
sim_pod web1 198.18.0.3
sim_pod web2 198.18.0.4
sim_pod web3 198.18.0.5
CPM_DIR=$SIM_DIR/mesh
mkdir -p "$CPM_DIR"
"$SIM_BUILD/remoractl" certs root --out "$SIM_DIR/ca" >/dev/null || t_stop "remoractl certs root"
# remora-cp's xDS port speaks mutual TLS (15012); each sidecar's bootstrap carries a certificate
# of its own identity from the mesh CA.
CPM_TLS=1 CPM_CA=$SIM_DIR/ca

cpm_namespace default
cpm_service default web 198.19.0.20 80:8080:http
cpm_pod default client 198.18.0.2 client client
for i in 1 2 3; do cpm_pod default "web$i" "198.18.0.$((i + 2))" web web 8080:http; done
cpm_endpoints default web http:8080 198.18.0.3
cpm_dns 198.19.0.20 web.default.svc.cluster.local web.default

# remora-cp checks its renewal every tenth of a certificate's life: 20 s certificates are renewed
# within about 12 s.
cpm_start --ca "$SIM_DIR/ca" --mtls strict --cert-ttl 20s --log-level debug ||
    t_stop "remora-cp did not start"

for pod in web1 web2 web3; do
    sim_nginx "$pod" 8080 "    location / { return 200 \"$pod\\n\"; }"
done
for pod in "${PODS[@]}"; do
    sa=web
    [[ $pod == client ]] && sa=client
    cpm_bootstrap "$SIM_DIR/$pod.yaml" "$pod" default "${pod%[0-9]}" "$sa"
    sim_capture "$pod" || t_stop "capture in $pod"
    sim_sidecar "$pod" "$SIM_DIR/$pod.yaml" --concurrency 1 || t_stop "sidecar in $pod"
done
t_ok sidecars_ready_from_remora_cp_alone

call() { sim_exec client curl -s -m 3 "$@"; }
t_eq call_by_vip "$(call http://198.19.0.20/)" web1
t_eq call_by_dns_name "$(call http://web.default.svc.cluster.local/)" web1
if t_until 10 cpm_synced client.default web1.default web2.default web3.default; then
    t_ok proxy_status_all_synced
else
    t_fail proxy_status_all_synced "$(cpm_admin /debug/syncz | head -c 2000)"
fi
status=$(sim_exec cp "$SIM_BUILD/remoractl" proxy-status --cp-admin "$CPM_ADMIN" web1.default)
t_contains proxy_status_shows_sds "$status" "SDS   SYNCED"
peer=$(sim_admin client /certs | grep -o 'spiffe://[^"]*' | sort -u | tr '\n' ' ')
t_contains client_holds_its_ca_signed_identity "$peer" "spiffe://cluster.local/ns/default/sa/client"
inbound=$(sim_admin web1 '/stats?filter=ssl.handshake' | awk -F': ' '$2 > 0' | head -1)
[[ -n $inbound ]] && t_ok mtls_between_sidecars || t_fail mtls_between_sidecars "no handshake on web1"

# The xDS port: a sidecar whose certificate names another identity than its node gets nothing,
# and plaintext is not served.
sim_pod rogue 198.18.0.9
CPM_BOOT_SA=client cpm_bootstrap "$SIM_DIR/rogue.yaml" web1 default web web
SIM_SIDECAR_READY=none sim_sidecar rogue "$SIM_DIR/rogue.yaml" --concurrency 1
refused() {
    grep -q 'refused: node web1.default is spiffe://cluster.local/ns/default/sa/web, but its client certificate names spiffe://cluster.local/ns/default/sa/client' \
        "$SIM_DIR/remora-cp.log"
}
t_until 10 refused && t_ok xds_port_holds_a_node_to_its_certificate ||
    t_fail xds_port_holds_a_node_to_its_certificate "$(grep -i refused "$SIM_DIR/remora-cp.log" | tail -2)"
sim_stop rogue >/dev/null
if sim_exec rogue curl -s -m 3 --http2-prior-knowledge -o /dev/null "http://$CPM_IP:15012/" 2>/dev/null; then
    t_fail xds_port_refuses_plaintext "a plaintext HTTP/2 request was answered"
else
    t_ok xds_port_refuses_plaintext
fi

# A steady stream of requests while the endpoints go 1 -> 3 -> 1.
load() { # load SECONDS: one request every 20 ms; prints "ok fail" and the backends' names
    local end=$((SECONDS + $1)) ok=0 fail=0 out
    : >"$SIM_DIR/load.names"
    while ((SECONDS < end)); do
        if out=$(call -f http://198.19.0.20/); then
            ok=$((ok + 1))
            echo "$out" >>"$SIM_DIR/load.names"
        else
            fail=$((fail + 1))
        fi
        sleep 0.02
    done
    echo "$ok $fail" >"$SIM_DIR/load.result"
}
load 8 &
lpid=$!
sleep 1
cpm_endpoints default web http:8080 198.18.0.3 198.18.0.4 198.18.0.5
reached_all() { [[ $(sort -u "$SIM_DIR/load.names" | wc -l) -ge 3 ]]; }
t_until 5 reached_all && t_ok scale_up_traffic_follows ||
    t_fail scale_up_traffic_follows "backends seen: $(sort -u "$SIM_DIR/load.names" | tr '\n' ' ')"
sleep 1
cpm_endpoints default web http:8080 198.18.0.3
wait "$lpid"
read -r ok fail <"$SIM_DIR/load.result"
t_eq no_failed_request_while_scaling "$fail" 0
((ok > 10)) && t_ok load_ran || t_fail load_ran "only $ok requests"
after=$(for i in $(seq 1 20); do call http://198.19.0.20/; done | sort -u | tr '\n' ' ')
t_eq scale_down_traffic_follows "$after" "web1 "

# An endpoint marked not ready gets nothing once the push is ACKed.
cpm_endpoints default web http:8080 198.18.0.3 198.18.0.4 198.18.0.5:notready
t_until 5 cpm_synced client.default
got=$(for i in $(seq 1 30); do call http://198.19.0.20/; done | sort | uniq -c | tr -s ' ' | tr '\n' ' ')
case $got in
*web3*) t_fail not_ready_endpoint_gets_nothing "$got" ;;
*web1*web2* | *web2*web1*) t_ok not_ready_endpoint_gets_nothing ;;
*) t_fail not_ready_endpoint_gets_nothing "$got" ;;
esac

# A new Service, by VIP and by name.
cpm_service default api 198.19.0.30 80:8080:http
cpm_endpoints default api http:8080 198.18.0.5
cpm_dns 198.19.0.30 api.default.svc.cluster.local
new_service() { [[ $(call http://api.default.svc.cluster.local/) == web3 ]]; }
t_until 5 new_service && t_ok new_service_by_name || t_fail new_service_by_name "$(call http://api.default.svc.cluster.local/)"
t_eq new_service_by_vip "$(call http://198.19.0.30/)" web3

# Route weights (an HTTPRoute on Service shop, GAMMA): 100/0 to shop-v1 and shop-v2, then 0/100,
# then 50/50; the sidecars follow each rewrite of the file without a restart.
cpm_service default shop 198.19.0.40 80:8080:http
cpm_endpoints default shop http:8080 198.18.0.5
for v in 1 2; do
    cpm_service default "shop-v$v" "198.19.0.4$v" 80:8080:http
    cpm_endpoints default "shop-v$v" http:8080 "198.18.0.$((v + 2))"
done
cpm_httproute default shop shop 80 shop-v1:100 shop-v2:0
shop() { for i in $(seq 1 "$1"); do call http://198.19.0.40/; done | sort -u | tr '\n' ' '; }
only_v1() { [[ $(shop 10) == "web1 " ]]; }
t_until 10 only_v1 && t_ok route_weights_100_0_reach_v1 || t_fail route_weights_100_0_reach_v1 "$(shop 10)"
sidecar_pid=$(cat "$SIM_DIR/client-remora.pid")
cpm_httproute default shop shop 80 shop-v1:0 shop-v2:100
t_until 10 cpm_synced client.default
only_v2() { [[ $(shop 10) == "web2 " ]]; }
t_until 10 only_v2 && t_ok route_weight_change_followed || t_fail route_weight_change_followed "$(shop 10)"
cpm_httproute default shop shop 80 shop-v1:50 shop-v2:50
t_until 10 cpm_synced client.default
both() { [[ $(shop 40) == "web1 web2 " ]]; }
t_until 10 both && t_ok route_weights_50_50_reach_both || t_fail route_weights_50_50_reach_both "$(shop 40)"
if kill -0 "$sidecar_pid" && [[ $(cat "$SIM_DIR/client-remora.pid") == "$sidecar_pid" ]]; then
    t_ok sidecar_not_restarted_for_weights
else
    t_fail sidecar_not_restarted_for_weights "sidecar $sidecar_pid is gone"
fi

# An invalid manifest: reported with file and field; what is served does not change.
errors0=$(cpm_admin /stats | awk -F': ' '$1 == "remora_cp_mesh_errors_total" { print $2 }')
# What is served, but the certificates (renewed on their own clock), once every push is ACKed.
served() { cpm_admin /debug/syncz | jq -c '[.proxies[] | {node, t: [.types.CDS.sent, .types.EDS.sent, .types.LDS.sent, .types.RDS.sent]}] | sort_by(.node)'; }
t_until 10 cpm_synced client.default web1.default web2.default web3.default
before=$(served)
printf 'apiVersion: v1\nkind: Service\nmetadata: {name: broken, namespace: default}\nspec:\n  ports: [{port: abc}]\n' |
    cpm_write svc-broken.yaml
reported() { grep -q 'svc-broken.yaml.*spec.ports\[0\].port' "$SIM_DIR/remora-cp.log"; }
t_until 5 reported && t_ok invalid_manifest_reported_with_file_and_field ||
    t_fail invalid_manifest_reported_with_file_and_field "$(tail -3 "$SIM_DIR/remora-cp.log")"
errors1=$(cpm_admin /stats | awk -F': ' '$1 == "remora_cp_mesh_errors_total" { print $2 }')
((errors1 > errors0)) && t_ok invalid_manifest_counted || t_fail invalid_manifest_counted "$errors0 -> $errors1"
t_eq invalid_manifest_changes_nothing "$(served)" "$before"
rm -f "$CPM_DIR/svc-broken.yaml"

# remora-cp killed: the sidecars go on serving; restarted, they converge again.
kill -KILL "$CPM_PID"
t_eq serves_without_control_plane "$(call http://198.19.0.30/)" web3
cpm_start --ca "$SIM_DIR/ca" --mtls strict --cert-ttl 20s --log-level debug || t_stop "remora-cp restart"
if t_until 20 cpm_synced client.default web1.default web2.default web3.default; then
    t_ok sidecars_reconnect_and_converge
else
    t_fail sidecars_reconnect_and_converge "$(cpm_admin /debug/syncz | head -c 1500)"
fi
t_eq serves_after_reconnect "$(call http://web.default.svc.cluster.local/ | grep -c web)" 1

# Certificates renewed while requests flow.
serial() { sim_admin web1 /certs | jq -r '.certificates[0].cert_chain[0].serial_number'; }
s0=$(serial)
load 14 &
lpid=$!
renewed() { [[ $(serial) != "$s0" ]]; }
t_until 15 renewed && t_ok certificate_renewed_and_pushed ||
    t_fail certificate_renewed_and_pushed "serial still $s0"
wait "$lpid"
read -r ok fail <"$SIM_DIR/load.result"
t_eq no_failed_request_while_rotating "$fail" 0
issued=$(cpm_admin /stats | awk -F': ' '$1 == "citadel_server_success_cert_issuance_count" { print $2 }')
((issued >= 2)) && t_ok certificates_issued_counted || t_fail certificates_issued_counted "$issued"
# SIGTERM: remora-cp ends its streams, frees everything (the ASan build reports any leak) and
# exits.
if cpm_stop && ! grep -q 'Sanitizer' "$SIM_DIR/remora-cp.log"; then
    t_ok remora_cp_stops_cleanly
else
    t_fail remora_cp_stops_cleanly "$(grep -A5 Sanitizer "$SIM_DIR/remora-cp.log" | head -20)"
fi
t_summary
