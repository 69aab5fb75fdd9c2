# shellcheck shell=bash
# meshconfig.sh — writes the sidecar bootstrap every simulated pod runs, in the shape Istio
# gives its Envoys: a virtualOutbound listener on 15001 (one filter chain per service VIP and
# port, passthrough for the rest) and a virtualInbound listener on 15006 that hands connections
# to the app at their original destination. Source it, never run it.

# mesh_config FILE SERVICE... — each SERVICE is "NAME VIP PORT IP:PORT[,IP:PORT...]".
mesh_config() {
    local file=$1 svc name vip port eps ep cluster
    shift
    {
        cat <<'EOF_HEAD'
node:
  id: sidecar~pod.default
  cluster: default
admin:
  address: {socket_address: {address: 127.0.0.1, port_value: 15000}}
static_resources:
  listeners:
  - name: virtualOutbound
    address: {socket_address: {address: 0.0.0.0, port_value: 15001}}
    listener_filters:
    - name: envoy.filters.listener.original_dst
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst
    filter_chains:
EOF_HEAD
        for svc in "$@"; do
            read -r name vip port eps <<<"$svc"
            cluster="outbound|$port||$name.default.svc.cluster.local"
            cat <<EOF_CHAIN
    - name: "$cluster"
      filter_chain_match:
        destination_port: $port
        prefix_ranges: [{address_prefix: $vip, prefix_len: 32}]
      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: "$cluster"
          cluster: "$cluster"
EOF_CHAIN
        done
        cat <<'EOF_MID'
    default_filter_chain:
      name: PassthroughFilterChain
      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: PassthroughCluster
          cluster: PassthroughCluster
  - name: virtualInbound
    address: {socket_address: {address: 0.0.0.0, port_value: 15006}}
    listener_filters:
    - name: envoy.filters.listener.original_dst
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst
    default_filter_chain:
      name: InboundPassthroughFilterChain
      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: InboundPassthroughClusterIpv4
          cluster: InboundPassthroughClusterIpv4
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
EOF_MID
        for svc in "$@"; do
            read -r name vip port eps <<<"$svc"
            cluster="outbound|$port||$name.default.svc.cluster.local"
            cat <<EOF_CL
  - name: "$cluster"
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: "$cluster"
      endpoints:
      - lb_endpoints:
EOF_CL
            for ep in ${eps//,/ }; do
                printf '        - endpoint: {address: {socket_address: {address: %s, port_value: %s}}}\n' \
                    "${ep%:*}" "${ep#*:}"
            done
        done
    } >"$file"
}
