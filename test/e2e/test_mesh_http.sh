#!/usr/bin/env bash
# Story: in a simulated cluster, curl in a client pod calls a service VIP over HTTP; both
# sidecars detect HTTP, the outbound one routes and balances it to the service's nginx pods over
# kept-alive connections, the inbound one hands it to nginx with x-forwarded-for and the same
# x-request-id; both report the request in their stats and Istio metrics (source and
# destination reporters), and a server-first TCP protocol on another port is not held up.
# checks: 13
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=test/lib/testlib.sh
source "$root/test/lib/testlib.sh"
t_require_root
t_require_cmd nginx socat curl setpriv
# shellcheck source=test/lib/simcluster.sh
source "$root/test/lib/simcluster.sh"
# shellcheck source=test/lib/meshconfig.sh
source "$root/test/lib/meshconfig.sh"
# shellcheck source=test/lib/apps.sh
source "$root/test/lib/apps.sh"

sim_init || exit 1
sim_pod client 198.18.0.2
sim_pod web1 198.18.0.3
sim_pod web2 198.18.0.4
sim_pod db 198.18.0.5

mesh_config "$SIM_DIR/sidecar.yaml" \
    "web 198.19.0.20 80 198.18.0.3:8080,198.18.0.4:8080" \
    "db 198.19.0.30 5432 198.18.0.5:5432"

for pod in web1 web2; do
    sim_nginx "$pod" 8080 "    location / { return 200 \"$pod \$request_uri xff=\$http_x_forwarded_for rid=\$http_x_request_id\\n\"; }"
done
# A server-first protocol (like PostgreSQL or SMTP): the server speaks first.
sim_bg db "$SIM_DIR/db.log" socat TCP-LISTEN:5432,fork,reuseaddr,backlog=64 \
    SYSTEM:'echo greeting; exec cat' >/dev/null
for pod in client web1 web2 db; do
    sim_capture "$pod" || { t_fail "capture_$pod" "remoractl iptables apply failed"; t_summary; }
    sim_sidecar "$pod" "$SIM_DIR/sidecar.yaml" --concurrency 1 ||
        { t_fail "sidecar_$pod" "did not become ready"; t_summary; }
done
t_ok sidecars_ready

stat() { sim_admin "$1" /stats | awk -v n="$2:" '$1 == n { print $2 }'; }
SVC='outbound|80||web.default.svc.cluster.local'

got=$(sim_exec client curl -s -m 5 http://198.19.0.20/hello)
case $got in
"web1 /hello "* | "web2 /hello "*) t_ok http_through_two_sidecars ;;
*) t_fail http_through_two_sidecars "got '$got'" ;;
esac
t_contains inbound_sidecar_sets_xff_to_client_pod "$got" "xff=198.18.0.2"
got=$(sim_exec client curl -s -m 5 -H 'x-request-id: trace-77' http://198.19.0.20/id)
t_contains request_id_crosses_both_hops "$got" "rid=trace-77"

urls=()
for i in $(seq 1 40); do urls+=("http://198.19.0.20/r$i"); done
res=$(sim_exec client curl -s -m 20 "${urls[@]}")
n1=$(grep -c '^web1 ' <<<"$res")
n2=$(grep -c '^web2 ' <<<"$res")
if ((n1 + n2 == 40 && n1 > 5 && n2 > 5)); then t_ok requests_balanced_over_two_pods; else
    t_fail requests_balanced_over_two_pods "web1=$n1 web2=$n2"
fi
cx=$(stat client "cluster.$SVC.upstream_cx_total")
rq=$(stat client "cluster.$SVC.upstream_rq_total")
((rq == 42 && cx <= 4)) && t_ok sidecar_to_sidecar_keepalive ||
    t_fail sidecar_to_sidecar_keepalive "$rq requests over $cx upstream connections"
t_eq outbound_hcm_counts_2xx "$(stat client "http.$SVC.downstream_rq_2xx")" 42
in1=$(stat web1 http.inbound_0.0.0.0.downstream_rq_2xx)
in2=$(stat web2 http.inbound_0.0.0.0.downstream_rq_2xx)
t_eq inbound_hcms_count_2xx "$((in1 + in2))" 42
prom=$(sim_admin client /stats/prometheus)
t_contains outbound_istio_metric_reporter_source "$prom" \
    "istio_requests_total{reporter=\"source\",source_workload=\"default\",source_workload_namespace=\"default\",destination_workload=\"unknown\",destination_workload_namespace=\"unknown\",destination_service=\"web.default.svc.cluster.local\",destination_cluster=\"$SVC\",request_protocol=\"http\",response_code=\"200\",grpc_response_status=\"\",response_flags=\"-\"} 42"
t_contains inbound_istio_metric_reporter_destination "$(sim_admin web1 /stats/prometheus)" \
    'istio_requests_total{reporter="destination",source_workload="unknown",source_workload_namespace="unknown",destination_workload="default",destination_workload_namespace="default",'

start=$(date +%s%N)
# Time to the first line only: the connection itself stays open.
got=$(sim_exec client timeout 5 bash -c \
    'exec 3< <(socat -u TCP:198.19.0.30:5432 - 2>/dev/null); read -r -t 4 l <&3; echo "$l"')
ms=$((($(date +%s%N) - start) / 1000000))
t_eq server_first_protocol_passes_through_detection "$got" greeting
((ms < 2000)) && t_ok server_first_protocol_not_held || t_fail server_first_protocol_not_held "${ms}ms"
t_eq server_first_went_to_tcp_proxy \
    "$(stat client 'tcp.outbound|5432||db.default.svc.cluster.local.downstream_cx_total')" 1

t_summary
