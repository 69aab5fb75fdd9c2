# shellcheck shell=bash
# mtls.sh — what the loopback stories run on 127.0.0.1: remora configs for an outbound sidecar
# (HTTP in, mutual TLS to the next hop), an inbound sidecar (mutual TLS in, HTTP to the app) and
# a plain HTTP proxy, and a python3 app. Source it after testlib.sh and loopback.sh, never run it.
#
# Every listener hands its connections to the HTTP connection manager, whose stat prefix is the
# listener's name and which routes every request to the config's one cluster. Give 0 for the
# ADMIN and PORT of a config: remora binds its own ports and lb_remora reads them back (the
# listener's in LB_PORT[its name]). A certificate
# directory is laid out the way `remoractl certs issue` writes one: cert-chain.pem, key.pem and
# root-cert.pem (the trust anchor). Options, read from the environment (VAR=value before one
# call sets it for that call only):
#   MTLS_ALPN              the TLS context's alpn_protocols, as the inside of a YAML list
#                          ("h2, http/1.1"); none by default
#   MTLS_SNI               outbound: the SNI sent to the next hop; none by default
#   MTLS_TLS_INSPECTOR     inbound: 1 (the default) puts a tls_inspector in front and matches the
#                          chain on transport_protocol tls, so plaintext matches no chain; 0 gives
#                          a chain without a match that terminates TLS on every connection
#   MTLS_DOWNSTREAM_EXTRA  inbound: more DownstreamTlsContext fields, YAML at column 0
#                          ("require_sni: true")
#   MTLS_HCM_EXTRA         more HTTP connection manager fields, YAML at column 0
#   MTLS_HTTP_FILTERS      HTTP filters that run before the router: YAML list items at column 0
#   MTLS_ACCESS_LOG        a file the connection manager logs each request to, one line
#                          "RESPONSE_CODE PEER_URI_SAN TLS_VERSION" a request

# _mtls_indent N — copies stdin to stdout with N spaces before every line.
_mtls_indent() {
    local pad
    printf -v pad '%*s' "$1" ''
    sed "s/^/$pad/"
}

# _mtls_listener ADMIN NAME PORT — the admin endpoint on ADMIN, then the start of the one
# listener, NAME on 127.0.0.1:PORT (its filter chains follow).
_mtls_listener() {
    cat <<EOF
admin: {address: {socket_address: {address: 127.0.0.1, port_value: $1}}}
static_resources:
  listeners:
  - name: $2
    address: {socket_address: {address: 127.0.0.1, port_value: $3}}
EOF
}

# _mtls_hcm NAME CLUSTER — an item of a chain's filters: the HTTP connection manager with stat
# prefix NAME, every request to CLUSTER, with MTLS_HCM_EXTRA, MTLS_ACCESS_LOG and
# MTLS_HTTP_FILTERS; the router is the last HTTP filter.
_mtls_hcm() {
    cat <<EOF
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: $1
EOF
    [[ -z ${MTLS_HCM_EXTRA:-} ]] || _mtls_indent 10 <<<"$MTLS_HCM_EXTRA"
    [[ -z ${MTLS_ACCESS_LOG:-} ]] || cat <<EOF
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: $MTLS_ACCESS_LOG
              log_format: {text_format_source: {inline_string: "%RESPONSE_CODE% %DOWNSTREAM_PEER_URI_SAN% %DOWNSTREAM_TLS_VERSION%\n"}}
EOF
    cat <<EOF
          route_config:
            virtual_hosts: [{name: $2, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: $2}}]}]
          http_filters:
EOF
    [[ -z ${MTLS_HTTP_FILTERS:-} ]] || _mtls_indent 10 <<<"$MTLS_HTTP_FILTERS"
    cat <<'EOF'
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
EOF
}

# _mtls_cluster NAME PORT — the clusters: one, NAME, with the single endpoint 127.0.0.1:PORT
# (its transport socket, if any, follows). MTLS_CLUSTER_H2=1: it speaks HTTP/2 upstream
# (Envoy's explicit_http_config with http2_protocol_options).
_mtls_cluster() {
    cat <<EOF
  clusters:
  - name: $1
    type: STATIC
    load_assignment: {cluster_name: $1, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $2}}}}]}]}
EOF
    [[ ${MTLS_CLUSTER_H2:-} != 1 ]] || cat <<'EOF'
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
EOF
}

# _mtls_tls CONTEXT CERT_DIR SAN_MATCHER FIELDS — a TLS transport socket's value at column 0:
# CONTEXT (UpstreamTlsContext or DownstreamTlsContext) with FIELDS (YAML at column 0), CERT_DIR's
# certificate and key, MTLS_ALPN, trusting CERT_DIR's root for a peer whose URI SAN matches
# SAN_MATCHER (the inside of a StringMatcher: `exact: "..."`, `prefix: "..."`).
_mtls_tls() {
    cat <<EOF
name: envoy.transport_sockets.tls
typed_config:
  "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.$1
EOF
    [[ -z $4 ]] || _mtls_indent 2 <<<"$4"
    echo "  common_tls_context:"
    [[ -z ${MTLS_ALPN:-} ]] || echo "    alpn_protocols: [$MTLS_ALPN]"
    cat <<EOF
    tls_certificates:
    - certificate_chain: {filename: $2/cert-chain.pem}
      private_key: {filename: $2/key.pem}
    validation_context:
      trusted_ca: {filename: $2/root-cert.pem}
      match_typed_subject_alt_names:
      - {san_type: URI, matcher: {$3}}
EOF
}

# mtls_http_config FILE ADMIN PORT NAME APP_PORT — writes to FILE a plain HTTP proxy: admin on
# ADMIN, listener NAME on PORT (also the stat prefix), every request to the cluster "app" at
# APP_PORT, all in cleartext.
mtls_http_config() {
    {
        _mtls_listener "$2" "$4" "$3"
        printf '    filter_chains:\n    - filters:\n'
        _mtls_hcm "$4" app
        _mtls_cluster app "$5"
    } >"$1"
}

# mtls_outbound_config FILE ADMIN PORT UPSTREAM_PORT IDENTITY_DIR EXPECTED_SAN — writes to FILE
# the outbound sidecar: admin on ADMIN, listener "outbound" taking HTTP on PORT, every request
# to the cluster "b" at UPSTREAM_PORT over mutual TLS (UpstreamTlsContext) with IDENTITY_DIR's
# certificate, accepting only a server whose URI SAN is exactly EXPECTED_SAN, under IDENTITY_DIR's
# root. Options: MTLS_SNI, MTLS_ALPN, and those of the connection manager.
mtls_outbound_config() {
    {
        _mtls_listener "$2" outbound "$3"
        printf '    filter_chains:\n    - filters:\n'
        _mtls_hcm outbound b
        _mtls_cluster b "$4"
        echo "    transport_socket:"
        _mtls_tls UpstreamTlsContext "$5" "exact: \"$6\"" "${MTLS_SNI:+sni: $MTLS_SNI}" |
            _mtls_indent 6
    } >"$1"
}

# mtls_inbound_config FILE ADMIN PORT CERT_DIR APP_PORT — writes to FILE the inbound sidecar:
# admin on ADMIN, listener "inbound" on PORT terminating mutual TLS (DownstreamTlsContext) with
# CERT_DIR's certificate, requiring a client certificate under CERT_DIR's root with a URI SAN of
# the trust domain cluster.local, then every request to the cluster "app" at APP_PORT in
# cleartext. Options: MTLS_TLS_INSPECTOR, MTLS_DOWNSTREAM_EXTRA, MTLS_ALPN, and those of the
# connection manager.
mtls_inbound_config() {
    local fields='require_client_certificate: true'
    [[ -z ${MTLS_DOWNSTREAM_EXTRA:-} ]] || fields+=$'\n'$MTLS_DOWNSTREAM_EXTRA
    {
        _mtls_listener "$2" inbound "$3"
        if [[ ${MTLS_TLS_INSPECTOR:-1} == 1 ]]; then
            cat <<'EOF'
    listener_filters:
    - name: envoy.filters.listener.tls_inspector
      typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector}
    filter_chains:
    - filter_chain_match: {transport_protocol: tls}
      transport_socket:
EOF
        else
            printf '    filter_chains:\n    - transport_socket:\n'
        fi
        _mtls_tls DownstreamTlsContext "$4" 'prefix: "spiffe://cluster.local/"' "$fields" |
            _mtls_indent 8
        echo "      filters:"
        _mtls_hcm inbound app
        _mtls_cluster app "$5"
    } >"$1"
}

# mtls_app VAR — runs a python3 HTTP/1.1 server on 127.0.0.1 (a thread a connection, keep-alive,
# no request log) until the story ends, on a port it binds itself (port 0), sets VAR to that
# port and returns once it listens (non-zero if it never does). The methods of its request
# handler, a http.server.BaseHTTPRequestHandler, are read from stdin: Python indented by four
# spaces, with hashlib and time imported and self.reply(BODY) answering 200 with the bytes BODY
# and their content-length. The script and its output are $LB_WORK/app-VAR.py and app-VAR.log,
# its port in $LB_WORK/app-VAR.port.
mtls_app() {
    local py=$LB_WORK/app-$1.py port=$LB_WORK/app-$1.port
    {
        cat <<'EOF'
import hashlib, http.server, os, sys, time
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def reply(self, b):
        self.send_response(200)
        self.send_header("content-length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def log_message(self, *a):
        pass
EOF
        cat
        cat <<'EOF'
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(server.server_port))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
server.serve_forever()
EOF
    } >"$py"
    bg "$LB_WORK/app-$1.log" python3 "$py" "$port"
    t_until 10 test -s "$port" || return 1
    printf -v "$1" '%s' "$(cat "$port")"
}
