# shellcheck shell=bash
# meshconfig.sh — writes the sidecar bootstrap every simulated pod runs, in the shape Istio gives
# its Envoys: a virtualOutbound listener on 15001 that sniffs the protocol (http_inspector) and
# has, per service VIP and port, an HTTP chain (HTTP connection manager routing to the service)
# and a TCP chain, with passthrough for everything else; and a virtualInbound listener on 15006
# that hands connections to the app at their original destination, through an HTTP connection
# manager when the bytes are HTTP. Source it, never run it.
#
# Plaintext by default. MESH_MTLS=strict|permissive gives Istio's mutual TLS instead: outbound
# clusters originate mTLS with the pod's certificate (SNI outbound_.PORT_._.HOST, the service's
# SPIFFE ID expected), and the inbound listener terminates it with a tls_inspector and chains
# that require a client certificate of the trust domain (strict: TLS only, plaintext is reset;
# permissive: TLS or plaintext). mesh_config reads:
#   MESH_MTLS        "" (plaintext), strict or permissive
#   MESH_CERT_DIR    with mTLS: the pod's identity (key.pem, cert-chain.pem, root-cert.pem), as
#                    mesh_certs_issue writes it
#   MESH_ACCESS_LOG  optional file: the inbound connection managers log each request there,
#                    with the client's SPIFFE ID as peer="..."; the proxy's uid must be able to
#                    create or append to it
# mesh_ca and mesh_certs_issue make the certificates; mesh_validate checks a config the way the
# sidecar will load it (these three need simcluster.sh sourced first).

MESH_TRUST_DOMAIN=cluster.local
MESH_NAMESPACE=default

# The HCM of an outbound HTTP chain: every host goes to the service's cluster.
_mesh_outbound_hcm() { # CLUSTER
    cat <<EOF
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: "$1"
          route_config:
            name: "$1"
            virtual_hosts:
            - name: "$1"
              domains: ["*"]
              routes:
              - match: {prefix: /}
                route: {cluster: "$1"}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
EOF
}

_mesh_tcp_proxy() { # STAT_PREFIX CLUSTER
    cat <<EOF
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: "$1"
          cluster: "$2"
EOF
}

_mesh_http_inspector() {
    cat <<'EOF'
    - name: envoy.filters.listener.http_inspector
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector
EOF
}

_mesh_tls_inspector() {
    cat <<'EOF'
    - name: envoy.filters.listener.tls_inspector
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector
EOF
}

# The inbound HCM: every request to the app at its original destination. With "mtls", Istio's
# x-forwarded-client-cert settings (this hop's client identity for the app).
_mesh_inbound_hcm() { # [mtls]
    cat <<'EOF'
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: inbound_0.0.0.0
          use_remote_address: true
EOF
    if [[ ${1:-} == mtls ]]; then
        cat <<'EOF'
          forward_client_cert_details: APPEND_FORWARD
          set_current_client_cert_details: {subject: true, dns: true, uri: true}
EOF
    fi
    if [[ -n ${MESH_ACCESS_LOG:-} ]]; then
        cat <<EOF
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: "$MESH_ACCESS_LOG"
              log_format:
                text_format_source:
                  inline_string: '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% "%DOWNSTREAM_REMOTE_ADDRESS%" peer="%DOWNSTREAM_PEER_URI_SAN%" tls="%DOWNSTREAM_TLS_VERSION%" sni="%REQUESTED_SERVER_NAME%"'
EOF
    fi
    cat <<'EOF'
          route_config:
            name: inbound
            virtual_hosts:
            - name: inbound
              domains: ["*"]
              routes:
              - match: {prefix: /}
                route: {cluster: InboundPassthroughClusterIpv4}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
EOF
}

# A service's identity: a whole SPIFFE ID as given, or the ID of service account SA.
_mesh_spiffe_id() { # SA_OR_ID
    case $1 in
    spiffe://*) printf '%s\n' "$1" ;;
    *) printf 'spiffe://%s/ns/%s/sa/%s\n' "$MESH_TRUST_DOMAIN" "$MESH_NAMESPACE" "$1" ;;
    esac
}

# The pod's key pair and trust bundle (MESH_CERT_DIR) as CommonTlsContext fields, then the
# SAN matcher: for a peer whose identity is exactly ID (exact) or in the trust domain (prefix).
_mesh_common_tls() { # INDENT exact|prefix VALUE [ALPN]
    local i=$1
    [[ -n ${4:-} ]] && printf '%salpn_protocols: [%s]\n' "$i" "$4"
    cat <<EOF
${i}tls_certificates:
${i}- certificate_chain: {filename: "$MESH_CERT_DIR/cert-chain.pem"}
${i}  private_key: {filename: "$MESH_CERT_DIR/key.pem"}
${i}validation_context:
${i}  trusted_ca: {filename: "$MESH_CERT_DIR/root-cert.pem"}
${i}  match_typed_subject_alt_names:
${i}  - san_type: URI
${i}    matcher: {$2: "$3"}
EOF
}

# The UpstreamTlsContext of an outbound cluster, as Istio's auto mTLS writes it: the service's
# SNI, the pod's certificate, and the server must be the service's identity.
_mesh_upstream_tls() { # NAME PORT SA ALPN
    cat <<EOF
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: "outbound_.$2_._.$1.$MESH_NAMESPACE.svc.$MESH_TRUST_DOMAIN"
        common_tls_context:
EOF
    _mesh_common_tls '          ' exact "$(_mesh_spiffe_id "$3")" "$4"
}

# The DownstreamTlsContext of an inbound chain: a client certificate from the trust domain is
# required.
_mesh_downstream_tls() {
    cat <<'EOF'
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
EOF
    _mesh_common_tls '            ' prefix "spiffe://$MESH_TRUST_DOMAIN/"
}

_mesh_cluster() { # CLUSTER IP:PORT[,IP:PORT...]
    local ep
    cat <<EOF
  - name: "$1"
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: "$1"
      endpoints:
      - lb_endpoints:
EOF
    for ep in ${2//,/ }; do
        printf '        - endpoint: {address: {socket_address: {address: %s, port_value: %s}}}\n' \
            "${ep%:*}" "${ep#*:}"
    done
}

# mesh_config FILE SERVICE... — each SERVICE is "NAME VIP PORT IP:PORT[,IP:PORT...] [SA]"; the
# services live in namespace "default". SA (used with mTLS) is the service account the service's
# pods run as, or a whole SPIFFE ID; NAME by default.
#
# With mTLS the HTTP chain and the TCP chain of a service cannot share a cluster: the inbound
# side tells HTTP from opaque TCP by the ALPN the client offers (istio-http/1.1 or istio), and a
# cluster offers one ALPN list. The HTTP chain keeps Istio's cluster name outbound|PORT||HOST,
# the TCP chain gets outbound|PORT|tcp|HOST (plaintext: both use outbound|PORT||HOST).
mesh_config() {
    local file=$1 svc name vip port eps sa cluster tcp_cluster mtls=${MESH_MTLS:-}
    shift
    case $mtls in
    "") ;;
    strict | permissive)
        if [[ -z ${MESH_CERT_DIR:-} ]]; then
            printf 'meshconfig: MESH_MTLS=%s needs MESH_CERT_DIR\n' "$mtls" >&2
            return 1
        fi
        ;;
    *)
        printf "meshconfig: MESH_MTLS is '%s', want strict, permissive or empty\n" "$mtls" >&2
        return 1
        ;;
    esac
    {
        cat <<'EOF'
node:
  id: sidecar~pod.default
  cluster: default
admin:
  address: {socket_address: {address: 127.0.0.1, port_value: 15000}}
static_resources:
  listeners:
  - name: virtualOutbound
    address: {socket_address: {address: 0.0.0.0, port_value: 15001}}
    traffic_direction: OUTBOUND
    listener_filters:
    - name: envoy.filters.listener.original_dst
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst
EOF
        _mesh_http_inspector
        echo "    filter_chains:"
        for svc in "$@"; do
            read -r name vip port eps sa <<<"$svc"
            cluster="outbound|$port||$name.default.svc.cluster.local"
            tcp_cluster=$cluster
            [[ -n $mtls ]] && tcp_cluster="outbound|$port|tcp|$name.default.svc.cluster.local"
            cat <<EOF
    - name: "$cluster-http"
      filter_chain_match:
        destination_port: $port
        prefix_ranges: [{address_prefix: $vip, prefix_len: 32}]
        application_protocols: [http/1.1, http/1.0]
      filters:
EOF
            _mesh_outbound_hcm "$cluster"
            cat <<EOF
    - name: "$tcp_cluster"
      filter_chain_match:
        destination_port: $port
        prefix_ranges: [{address_prefix: $vip, prefix_len: 32}]
      filters:
EOF
            _mesh_tcp_proxy "$tcp_cluster" "$tcp_cluster"
        done
        cat <<'EOF'
    default_filter_chain:
      name: PassthroughFilterChain
      filters:
EOF
        _mesh_tcp_proxy PassthroughCluster PassthroughCluster
        cat <<'EOF'
  - name: virtualInbound
    address: {socket_address: {address: 0.0.0.0, port_value: 15006}}
    traffic_direction: INBOUND
    listener_filters:
    - name: envoy.filters.listener.original_dst
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst
EOF
        [[ -n $mtls ]] && _mesh_tls_inspector
        _mesh_http_inspector
        echo "    filter_chains:"
        if [[ -n $mtls ]]; then
            # mTLS from another sidecar: HTTP by the ALPN its cluster offers, anything else to
            # the app as opaque TCP.
            cat <<'EOF'
    - name: inbound-tls-http
      filter_chain_match:
        transport_protocol: tls
        application_protocols: [istio-http/1.1, http/1.1]
EOF
            _mesh_downstream_tls
            echo "      filters:"
            _mesh_inbound_hcm mtls
            cat <<'EOF'
    - name: inbound-tls-tcp
      filter_chain_match: {transport_protocol: tls}
EOF
            _mesh_downstream_tls
            echo "      filters:"
            _mesh_tcp_proxy InboundPassthroughClusterIpv4 InboundPassthroughClusterIpv4
        fi
        # Plaintext: the whole inbound side without mTLS; with permissive mTLS, clients without
        # a sidecar. Strict mTLS has no plaintext chain: a plaintext connection is reset.
        if [[ $mtls != strict ]]; then
            echo "    - name: inbound-http"
            if [[ -n $mtls ]]; then
                echo "      filter_chain_match: {transport_protocol: raw_buffer, application_protocols: [http/1.1, http/1.0]}"
            else
                echo "      filter_chain_match: {application_protocols: [http/1.1, http/1.0]}"
            fi
            echo "      filters:"
            _mesh_inbound_hcm
            cat <<'EOF'
    default_filter_chain:
      name: InboundPassthroughFilterChain
      filters:
EOF
            _mesh_tcp_proxy InboundPassthroughClusterIpv4 InboundPassthroughClusterIpv4
        fi
        cat <<'EOF'
  clusters:
  - name: PassthroughCluster
    type: ORIGINAL_DST
    lb_policy: CLUSTER_PROVIDED
    connect_timeout: 1s
  - name: InboundPassthroughClusterIpv4
    type: ORIGINAL_DST
    lb_policy: CLUSTER_PROVIDED
    connect_timeout: 1s
    # From 127.0.0.6, which the capture rules never redirect: the inbound sidecar's own
    # connection to the app must not come back into it.
    upstream_bind_config:
      source_address: {address: 127.0.0.6, port_value: 0}
EOF
        for svc in "$@"; do
            read -r name vip port eps sa <<<"$svc"
            _mesh_cluster "outbound|$port||$name.default.svc.cluster.local" "$eps"
            if [[ -n $mtls ]]; then
                _mesh_upstream_tls "$name" "$port" "${sa:-$name}" istio-http/1.1
                _mesh_cluster "outbound|$port|tcp|$name.default.svc.cluster.local" "$eps"
                _mesh_upstream_tls "$name" "$port" "${sa:-$name}" istio
            fi
        done
    } >"$file"
}

# mesh_ca DIR [FLAGS...] — a root CA (remoractl certs root --out DIR FLAGS...).
mesh_ca() {
    local dir=$1
    shift
    "${SIM_BUILD:-$(_sim_build_dir)}/remoractl" certs root --out "$dir" "$@" >/dev/null
}

# mesh_certs_issue CA_DIR OUT_DIR SPIFFE_ID — a pod's identity for its sidecar: key.pem,
# cert-chain.pem and root-cert.pem, owned by the sidecar's uid so that its key can stay 0600.
# Keep OUT_DIR under SIM_DIR (world-traversable), as the sidecar's config is.
mesh_certs_issue() {
    local ca=$1 out=$2 id=$3 uid=${SIM_PROXY_UID:-1337}
    "${SIM_BUILD:-$(_sim_build_dir)}/remoractl" certs issue --ca "$ca" --spiffe-id "$id" \
        --out "$out" >/dev/null || return 1
    chown -R "$uid:$uid" "$out" && chmod 755 "$out"
}

# mesh_validate FILE — `remora --validate` of a sidecar config as the sidecar's uid, so that a
# certificate or log file the proxy could not open fails here too; prints remora's complaint.
mesh_validate() {
    local bin uid=${SIM_PROXY_UID:-1337}
    bin=$(_sim_readable_by_proxy "${SIM_BUILD:-$(_sim_build_dir)}/remora" x) || return 1
    setpriv --reuid="$uid" --regid="$uid" --clear-groups "$bin" --validate --config "$1"
}
