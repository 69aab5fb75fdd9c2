#!/usr/bin/env bash
# Story: Envoy's own example configs run unchanged (test/e2e/fixtures/envoy-examples). The front
# proxy routes HTTP and HTTPS by path to two services through STRICT_DNS clusters, each service
# behind its own Envoy-configured sidecar; its unnamed listeners get names and its
# layered_runtime loads. The double proxy carries TCP through mutual TLS with DNS SANs between
# two proxies to a database. One pod per container of the examples' docker-compose files, the
# container names resolving through the pods' hosts files.
# checks: 17
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=test/lib/testlib.sh
source "$root/test/lib/testlib.sh"
t_require_root
t_require_cmd nginx socat curl openssl
# shellcheck source=test/lib/simcluster.sh
source "$root/test/lib/simcluster.sh"
# shellcheck source=test/lib/apps.sh
source "$root/test/lib/apps.sh"
FIX=$root/test/e2e/fixtures/envoy-examples

sim_init || exit 1
sim_pod client 198.18.0.2
sim_pod front 198.18.0.10
sim_pod svc1 198.18.0.11
sim_pod svc2 198.18.0.12
sim_pod pgfront 198.18.0.21
sim_pod pgback 198.18.0.22
sim_pod db 198.18.0.23
# The docker-compose service names and network aliases of the two examples.
sim_alias svc1 service-envoy-1 service1
sim_alias svc2 service-envoy-2 service2
sim_alias pgfront proxy-postgres-frontend.example.com
sim_alias pgback proxy-postgres-backend.example.com
sim_alias db postgres

# example_proxy POD CONFIG DIR — runs remora as the pod's sidecar with an example's config,
# from DIR (the working directory its relative paths are read from), until it logs that it is
# ready; teardown checks that it exits cleanly.
example_proxy() {
    SIM_SIDECAR_DIR=$3 SIM_SIDECAR_READY=log sim_sidecar "$1" "$2" --concurrency 1 && return 0
    t_fail "${1}_proxy_ready" "$(tail -n 5 "$SIM_DIR/$1-remora.log" | tr '\n' ' ')"
    return 1
}
get() { # get URL [curl args] — the body, from the client pod
    local url=$1
    shift
    sim_exec client curl -s -m 5 "$@" "$url"
}

# --- front proxy ---------------------------------------------------------------------------
for cfg in envoy.yaml service-envoy.yaml service-envoy-2.yaml; do
    out=$(sim_exec front "$SIM_BUILD/remora" --validate --config "$FIX/front-proxy/$cfg" 2>&1)
    t_eq "front_proxy_${cfg%.yaml}_validates" "$?" 0
done
sim_nginx svc1 8080 '    location / { return 200 "Hello from behind Envoy (service 1)\n"; }'
sim_nginx svc2 8080 '    location / { return 200 "Hello from behind Envoy (service 2)\n"; }'
example_proxy svc1 "$FIX/front-proxy/service-envoy.yaml" "$SIM_DIR" &&
    example_proxy svc2 "$FIX/front-proxy/service-envoy-2.yaml" "$SIM_DIR" &&
    example_proxy front "$FIX/front-proxy/envoy.yaml" "$SIM_DIR" &&
    t_ok front_proxy_and_services_ready

t_eq front_proxy_http_service_1 "$(get http://front:8080/service/1)" \
    "Hello from behind Envoy (service 1)"
t_eq front_proxy_http_service_2 "$(get http://front:8080/service/2)" \
    "Hello from behind Envoy (service 2)"
t_eq front_proxy_https_service_1 "$(get https://front:8443/service/1 -k)" \
    "Hello from behind Envoy (service 1)"
t_eq front_proxy_no_route_404 "$(get http://front:8080/other -o /dev/null -w '%{http_code}')" 404
clusters=$(sim_exec front curl -s -m 5 http://127.0.0.1:8001/clusters)
t_contains front_proxy_cluster_resolved_by_name "$clusters" "service1-envoy::198.18.0.11:8000"
t_contains front_proxy_second_cluster_resolved "$clusters" "service2-envoy::198.18.0.12:8000"
stats=$(sim_exec front curl -s -m 5 http://127.0.0.1:8001/stats)
t_contains front_proxy_unnamed_listener_named_by_address "$stats" \
    "listener.0.0.0.0_8080.downstream_cx_total"
grep -q 'envoy.resource_limits.listener.example_listener_name.connection_limit' \
    "$SIM_DIR/front-remora.log" && t_ok front_proxy_runtime_key_without_listener_warned ||
    t_fail front_proxy_runtime_key_without_listener_warned "$(grep -i runtime "$SIM_DIR/front-remora.log")"

# --- double proxy ----------------------------------------------------------------------------
# Certificates as the example's documentation makes them, where its Dockerfile puts them.
pki=$SIM_DIR/pki
mkdir -p "$pki" "$SIM_DIR/pgfront/certs" "$SIM_DIR/pgback/certs"
(
    cd "$pki" || exit 1
    openssl genrsa -out ca.key 4096 &&
        openssl req -x509 -new -nodes -key ca.key -sha256 -days 1024 -out ca.crt \
            -subj "/C=US/ST=CA/O=MyExample, Inc./CN=example.com" &&
        openssl genrsa -out example.com.key 2048 &&
        for side in frontend backend; do
            openssl req -new -sha256 -key example.com.key \
                -subj "/C=US/ST=CA/O=MyExample, Inc./CN=proxy-postgres-$side.example.com" \
                -out "$side.csr" &&
                printf 'subjectAltName=DNS:proxy-postgres-%s.example.com\n' "$side" >"$side.ext" &&
                openssl x509 -req -in "$side.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
                    -extfile "$side.ext" -out "postgres-$side.example.com.crt" -days 500 -sha256 ||
                exit 1
        done
) >"$SIM_DIR/pki.log" 2>&1 && t_ok double_proxy_certificates_made ||
    t_fail double_proxy_certificates_made "$(tail -n 3 "$SIM_DIR/pki.log")"
cp "$pki/ca.crt" "$SIM_DIR/pgfront/certs/cacert.pem"
cp "$pki/postgres-frontend.example.com.crt" "$SIM_DIR/pgfront/certs/clientcert.pem"
cp "$pki/example.com.key" "$SIM_DIR/pgfront/certs/clientkey.pem"
cp "$pki/ca.crt" "$SIM_DIR/pgback/certs/cacert.pem"
cp "$pki/postgres-backend.example.com.crt" "$SIM_DIR/pgback/certs/servercert.pem"
cp "$pki/example.com.key" "$SIM_DIR/pgback/certs/serverkey.pem"
# The proxies run as the sidecar's uid: their files must be readable to it (test keys only).
chmod -R a+rX "$SIM_DIR/pgfront" "$SIM_DIR/pgback"

sim_bg db "$SIM_DIR/db.log" socat TCP-LISTEN:5432,fork,reuseaddr,backlog=16 SYSTEM:'exec cat' \
    >/dev/null
example_proxy pgback "$FIX/double-proxy/envoy-backend.yaml" "$SIM_DIR/pgback" &&
    example_proxy pgfront "$FIX/double-proxy/envoy-frontend.yaml" "$SIM_DIR/pgfront" &&
    t_ok double_proxy_ready

got=$(printf 'select 1;\n' | sim_exec client socat -t 3 - TCP:pgfront:5432,shut-none)
t_eq double_proxy_carries_tcp_through_mtls "$got" "select 1;"
# The backend proxy speaks TLS only, and only to a client with a certificate from the CA.
got=$(printf 'plain\n' | sim_exec client timeout 5 socat -t 2 - TCP:pgback:5432 2>/dev/null)
t_eq double_proxy_backend_refuses_plaintext "$got" ""
got=$(sim_exec client timeout 5 openssl s_client -connect 198.18.0.22:5432 \
    -CAfile "$pki/ca.crt" -verify_return_error </dev/null 2>&1)
if grep -q 'Verify return code: 0' <<<"$got" && ! grep -q 'alert' <<<"$got"; then
    t_fail double_proxy_backend_requires_client_certificate "a client without a certificate got through"
else
    t_ok double_proxy_backend_requires_client_certificate
fi

t_summary
