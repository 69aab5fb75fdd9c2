#!/usr/bin/env bash
# Story: remora talks to its control plane over mutual TLS and takes its secrets over SDS, end to
# end. The control plane (test/e2e/xds/control_plane.js with --tls-*) presents a certificate of
# the mesh CA (remoractl certs) for spiffe://cluster.local/ns/remora-system/sa/remora-cp and
# requires remora's; remora's bootstrap names it with an UpstreamTlsContext whose
# match_typed_subject_alt_names expects that ID. Over that stream: the config arrives and
# traffic flows; a static TLS listener whose DownstreamTlsContext takes its certificate and
# trust bundle over SDS does not serve TLS before its secrets arrive (and remora is not ready),
# then serves mutual TLS only (no client certificate: refused) with the certificate the control
# plane sent (its serial, as openssl s_client sees it); a pushed new certificate is what the next
# connection gets; /config_dump lists the secrets without any key material; a secret with a bad
# PEM is NACKed naming it while the last good one serves. Then the control plane is swapped for
# one of another SPIFFE ID (same CA) on the same port: remora refuses it (not connected, a log
# line naming the SAN mismatch and both IDs, nothing asked of it, so nothing applied), keeps
# serving, retries, and reconnects to the right one once it is back, taking its config.
# Last, an ADS cluster whose TLS context does not offer ALPN h2 is refused at start, by name.
# Loopback, needs no root; needs node, npm and openssl.
# checks: 25
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=test/lib/testlib.sh
source "$root/test/lib/testlib.sh"
t_require_cmd curl jq python3 openssl
# shellcheck source=test/lib/loopback.sh
source "$root/test/lib/loopback.sh"
work=$LB_WORK
[[ -x $LB_BIN/remora ]] || t_stop "no $LB_BIN/remora (build it first)"
# shellcheck source=test/lib/xds.sh
source "$root/test/lib/xds.sh"

# The mesh CA and its workload certificates: the control plane, an impostor of the same CA,
# remora itself, two serving certificates of one identity (for SDS) and a client.
ctl=$LB_BIN/remoractl
"$ctl" certs root --out "$work/ca" >/dev/null || t_stop "remoractl certs root failed"
issue() { "$ctl" certs issue --ca "$work/ca" --out "$work/$1" --ns "$2" --sa "$3" >/dev/null; }
for spec in "cp remora-system remora-cp" "impostor remora-system impostor" "pod default web" \
    "srv1 default web" "srv2 default web" "client default client"; do
    # shellcheck disable=SC2086 # three words: directory, namespace, service account
    issue $spec || t_stop "remoractl certs issue $spec failed"
done
CA=$work/ca/root-cert.pem

# Two apps that say who they are.
for app in A B; do
    cat >"$work/app$app.py" <<EOF
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("content-length", "1")
        self.end_headers()
        self.wfile.write(b"$app")
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF
    lb_serve "APP_$app" "$work/app$app.log" python3 "$work/app$app.py" "@APP_$app@" ||
        t_stop "app $app does not listen"
done

# resources VERSION APP_PORT [CERT_DIR|bad] [HOLD] — the control plane's resource file: cluster
# web (static, its endpoint on APP_PORT), listener lds-tcp (a tcp_proxy to web), secret mesh-ca
# (the CA as a validation context) and secret server-cert (CERT_DIR's certificate and key, or
# with "bad" a PEM that does not parse); HOLD: the secrets are not answered yet.
resources() {
    local cert=${3:-srv1} hold='[]'
    [[ -n ${4:-} ]] && hold="[\"$SDS\"]"
    local chain key
    if [[ $cert == bad ]]; then
        chain=$'-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n'
        key=$(cat "$work/srv1/key.pem")
    else
        chain=$(cat "$work/$cert/cert-chain.pem")
        key=$(cat "$work/$cert/key.pem")
    fi
    jq -n --arg v "$1" --argjson port "$2" --arg chain "$chain" --arg key "$key" \
        --arg ca "$(cat "$CA")" --argjson hold "$hold" --arg cds "$CDS" --arg lds "$LDS" \
        --arg sds "$SDS" '{version: $v, hold: $hold, resources: {
      ($cds): [{name: "web", type: "STATIC", connect_timeout: "1s", load_assignment: {
        cluster_name: "web", endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address:
        {address: "127.0.0.1", port_value: $port}}}}]}]}}],
      ($lds): [{name: "lds-tcp", address: {socket_address: {address: "127.0.0.1", port_value: 0}},
        filter_chains: [{filters: [{name: "envoy.filters.network.tcp_proxy", typed_config: {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
        stat_prefix: "lds", cluster: "web"}}]}]}],
      ($sds): [{name: "server-cert", tls_certificate: {certificate_chain: {inline_string: $chain},
                 private_key: {inline_string: $key}}},
               {name: "mesh-ca", validation_context: {trusted_ca: {inline_string: $ca}}}]}}' \
        >"$work/res.tmp" && mv "$work/res.tmp" "$work/res.json"
}

# bootstrap CP_PORT [ALPN] — remora's bootstrap: the ADS stream to the static cluster xds over
# mutual TLS (remora's own certificate, the mesh CA, the control plane's SPIFFE ID expected,
# ALPN as given, h2 by default), and a static listener mtls terminating mutual TLS with secrets
# taken over SDS, relaying to the static cluster app (app A).
bootstrap() {
    cat >"$work/boot.yaml" <<EOF
node: {id: pod1.default, cluster: web}
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
dynamic_resources:
  cds_config: {ads: {}, resource_api_version: V3}
  lds_config: {ads: {}, resource_api_version: V3}
  ads_config:
    api_type: GRPC
    transport_api_version: V3
    grpc_services: [{envoy_grpc: {cluster_name: xds}}]
static_resources:
  clusters:
  - name: xds
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
    load_assignment:
      cluster_name: xds
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $1}}}}]}]
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: remora-cp.remora-system.svc
        common_tls_context:
          alpn_protocols: [${2:-h2}]
          tls_certificates:
          - certificate_chain: {filename: $work/pod/cert-chain.pem}
            private_key: {filename: $work/pod/key.pem}
          validation_context:
            trusted_ca: {filename: $CA}
            match_typed_subject_alt_names:
            - san_type: URI
              matcher: {exact: "spiffe://cluster.local/ns/remora-system/sa/remora-cp"}
  - name: app
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: app
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $APP_A}}}}]}]
  listeners:
  - name: mtls
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            tls_certificate_sds_secret_configs: [{name: server-cert, sds_config: {ads: {}}}]
            validation_context_sds_secret_config: {name: mesh-ca, sds_config: {ads: {}}}
      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: mtls
          cluster: app
EOF
}

# cp_tls DIR [PORT] — the control plane on PORT (a free one when empty) presenting DIR's
# certificate and requiring a client certificate of the mesh CA.
cp_tls() {
    cp_start "${2:-}" --tls-cert "$work/$1/cert-chain.pem" --tls-key "$work/$1/key.pem" \
        --tls-ca "$CA"
}

logged() { grep -c "$1" "$work/r.log"; }
lds_port() { sed -n "s/.* listener 'lds-tcp' on .*:\([0-9]*\).*/\1/p" "$work/r.log" | tail -n 1; }
has_lds() { [[ -n $(lds_port) ]]; }
via_lds() { curl -s -m 2 "http://127.0.0.1:$(lds_port)/"; }
via_lds_is() { [[ $(via_lds) == "$1" ]]; }
# mtls_get [CLIENT_DIR] — GET / over TLS to the mtls listener, with CLIENT_DIR's certificate
# (none when empty).
mtls_get() {
    local auth=()
    [[ -n ${1:-} ]] && auth=(--cert "$work/$1/cert-chain.pem" --key "$work/$1/key.pem")
    curl -sk -m 2 "${auth[@]}" "https://127.0.0.1:$MTLS/"
}
mtls_serves() { [[ $(mtls_get client) == A ]]; }
# served_serial — the serial of the certificate the mtls listener presents, verified against
# the mesh CA by openssl s_client (empty when the handshake fails).
served_serial() {
    openssl s_client -connect "127.0.0.1:$MTLS" -cert "$work/client/cert-chain.pem" \
        -key "$work/client/key.pem" -CAfile "$CA" -verify_return_error </dev/null 2>/dev/null |
        openssl x509 -noout -serial 2>/dev/null
}
serial_of() { openssl x509 -noout -serial -in "$work/$1/cert-chain.pem"; }
serves_serial() { [[ $(served_serial) == "$(serial_of "$1")" ]]; }
is_ready() { [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ADMIN/ready") == 200 ]]; }
dump() { curl -s "http://127.0.0.1:$ADMIN/config_dump"; }

# --- (a) the control plane over mutual TLS; (c) secrets over SDS --------------------------------
resources 1 "$APP_A" srv1 hold
cp_tls cp || t_stop "the control plane does not start: $(tail -n 5 "$work/cp.out")"
bootstrap "$CP"
bg "$work/r.log" "$LB_BIN/remora" --config "$work/boot.yaml" --concurrency 2
R=$LAST_PID
LB_REMORAS[$R]=r
admin_port() { sed -n 's/.* admin: listening on .*:\([0-9]*\)$/\1/p' "$work/r.log" | head -n 1; }
has_admin() { [[ -n $(admin_port) ]]; }
t_until 10 has_admin || t_stop "remora did not start: $(tail -n 5 "$work/r.log")"
ADMIN=$(admin_port)
MTLS=$(sed -n "s/.* listener 'mtls' on .*:\([0-9]*\).*/\1/p" "$work/r.log" | head -n 1)

t_run "mTLS: remora connects to the control plane it expects, with its own certificate" t_until 40 cp_connected "$ADMIN"
t_run "mTLS: the control plane saw remora's requests (its client certificate was taken)" \
    cp_has '.event == "request" and .node.id == "pod1.default"'
# The config waits for the secrets it names (for 15 s at most, so these come first).
t_run "SDS: remora is not ready while it waits for its secrets" test "$(curl -s \
    "http://127.0.0.1:$ADMIN/ready")" == PRE_INITIALIZING
t_eq "SDS: the listener serves no TLS while its secrets are held back" "$(mtls_get client)" ""

resources 2 "$APP_A" srv1
t_run "SDS: once the secrets arrive the listener serves mutual TLS" t_until 10 mtls_serves
t_until 10 has_lds
t_run "mTLS: the config that came over it with them serves too" t_until 5 via_lds_is A
t_eq "SDS: a client without a certificate is refused" "$(mtls_get)" ""
t_run "SDS: the served certificate is the one the secret holds (serial)" serves_serial srv1
t_run "SDS: remora is ready once its secrets are in" t_until 5 is_ready
t_run "SDS: the secrets are ACKed" cp_has \
    ".event == \"request\" and .type_url == \"$SDS\" and .version_info == \"2\" and .error_detail == null"
t_eq "SDS: /config_dump lists both secrets with their version" \
    "$(dump | jq -c '[.configs[] | .dynamic_active_secrets? // empty | .[] | [.name, .version_info]] | sort')" \
    '[["mesh-ca","2"],["server-cert","2"]]'
t_eq "SDS: no key material anywhere in /config_dump" "$(dump | grep -c 'PRIVATE KEY')" 0

resources 3 "$APP_A" srv2
t_run "SDS: a pushed certificate is what the next connection gets" t_until 10 serves_serial srv2

resources 4 "$APP_A" bad
t_run "SDS: a secret with a bad PEM is NACKed naming it" t_until 10 cp_has \
    ".event == \"request\" and .type_url == \"$SDS\" and (.error_detail.message // \"\" | test(\"sds\\\\['server-cert'\\\\].*cert_chain\"))"
t_run "SDS: the last good certificate keeps serving" serves_serial srv2
t_eq "SDS: and traffic goes on" "$(mtls_get client)" A

# --- (b) a control plane of another identity ---------------------------------------------------
kill "$CP_PID"
wait "$CP_PID" 2>/dev/null
: >"$work/cp.log"
resources 5 "$APP_B" srv2
mismatches=$(logged 'SAN mismatch')
cp_tls impostor "$CP"
more_mismatches() { (($(logged 'SAN mismatch') >= mismatches + 2)); }
t_run "impostor: refused, and retried with backoff" t_until 20 more_mismatches
t_run "impostor: the log line names the mismatch and both identities" grep -q \
    "SAN mismatch: the server's certificate (spiffe://cluster.local/ns/remora-system/sa/impostor).*URI exact spiffe://cluster.local/ns/remora-system/sa/remora-cp" \
    "$work/r.log"
t_eq "impostor: not connected" "$(stat "$ADMIN" control_plane.connected_state)" 0
t_run "impostor: it is asked nothing, so nothing of it applies" test "$(grep -c request \
    "$work/cp.log")" -eq 0
t_eq "impostor: the last config serves meanwhile" "$(via_lds)/$(mtls_get client)" A/A

kill "$CP_PID"
wait "$CP_PID" 2>/dev/null
cp_tls cp "$CP"
t_run "impostor gone: remora reconnects to the right control plane" t_until 40 cp_connected "$ADMIN"
t_run "impostor gone: its config applies" t_until 10 via_lds_is B
lb_stop "$R"
t_eq "SIGTERM: exit status 0" "$LB_STATUS" 0
kill "$CP_PID" 2>/dev/null
wait "$CP_PID" 2>/dev/null

# --- an ADS cluster over TLS that cannot speak gRPC ----------------------------------------------
bootstrap "$CP" http/1.1
timeout 10 "$LB_BIN/remora" --config "$work/boot.yaml" >"$work/noalpn.log" 2>&1
t_run "no ALPN h2 on the ADS cluster: refused at start, naming alpn_protocols" grep -q \
    "cluster 'xds'.*alpn_protocols must offer \"h2\"" "$work/noalpn.log"

t_summary
