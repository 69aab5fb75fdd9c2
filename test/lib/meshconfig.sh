# shellcheck shell=bash
# meshconfig.sh — writes the sidecar bootstrap every simulated pod runs, in the shape Istio gives
# its Envoys: a virtualOutbound listener on 15001 that sniffs the protocol (http_inspector) and
# has, per service VIP and port, an HTTP chain (HTTP connection manager routing to the service)
# and a TCP chain, with passthrough for everything else; and a virtualInbound listener on 15006
# that hands connections to the app at their original destination, through an HTTP connection
# manager when the bytes are HTTP. Source it, never run it.

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

# mesh_config FILE SERVICE... — each SERVICE is "NAME VIP PORT IP:PORT[,IP:PORT...]"; the
# services live in namespace "default".
mesh_config() {
    local file=$1 svc name vip port eps ep cluster
    shift
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
            read -r name vip port eps <<<"$svc"
            cluster="outbound|$port||$name.default.svc.cluster.local"
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
    - name: "$cluster"
      filter_chain_match:
        destination_port: $port
        prefix_ranges: [{address_prefix: $vip, prefix_len: 32}]
      filters:
EOF
            _mesh_tcp_proxy "$cluster" "$cluster"
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
        _mesh_http_inspector
        cat <<'EOF'
    filter_chains:
    - name: inbound-http
      filter_chain_match: {application_protocols: [http/1.1, http/1.0]}
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: inbound_0.0.0.0
          use_remote_address: true
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
    default_filter_chain:
      name: InboundPassthroughFilterChain
      filters:
EOF
        _mesh_tcp_proxy InboundPassthroughClusterIpv4 InboundPassthroughClusterIpv4
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
            read -r name vip port eps <<<"$svc"
            cluster="outbound|$port||$name.default.svc.cluster.local"
            cat <<EOF
  - name: "$cluster"
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: "$cluster"
      endpoints:
      - lb_endpoints:
EOF
            for ep in ${eps//,/ }; do
                printf '        - endpoint: {address: {socket_address: {address: %s, port_value: %s}}}\n' \
                    "${ep%:*}" "${ep#*:}"
            done
        done
    } >"$file"
}
