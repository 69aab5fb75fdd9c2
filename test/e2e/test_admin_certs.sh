#!/usr/bin/env bash
# Story: an operator asks a sidecar's admin endpoint which certificates it holds and who it is.
# /certs lists every TLS context in Envoy's shape (file paths or <inline>, serials openssl agrees
# with, SPIFFE SANs, days left, RFC 3339 dates); /server_info names the workload's SPIFFE ID
# (every one when its contexts present several); the expiry gauges in /stats and
# /stats/prometheus match the certificates; and no admin page shows a private key. Needs no root:
# remora runs on 127.0.0.1 with certificates made by remoractl in a temporary directory.
# checks: 39
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=test/lib/testlib.sh
source "$root/test/lib/testlib.sh"
t_require_cmd curl jq openssl date
# shellcheck source=test/lib/loopback.sh
source "$root/test/lib/loopback.sh"
REMORA=$LB_BIN/remora
CTL=$LB_BIN/remoractl
for b in "$REMORA" "$CTL"; do
    if [[ ! -x $b ]]; then
        t_fail "binaries are built" "no $b"
        t_summary
    fi
done
work=$LB_WORK

WEB_ID=spiffe://cluster.local/ns/default/sa/web
API_ID=spiffe://cluster.local/ns/default/sa/api

# --- certificates: a root, an intermediate, two workloads ----------------------------------
if ! { "$CTL" certs root --out "$work/root" &&
    "$CTL" certs intermediate --ca "$work/root" --out "$work/inter" &&
    "$CTL" certs issue --ca "$work/inter" --spiffe-id "$WEB_ID" --ttl 24h --out "$work/web" &&
    "$CTL" certs issue --ca "$work/root" --spiffe-id "$API_ID" --ttl 12h --out "$work/api"; } \
    >"$work/certs.log" 2>&1; then
    t_fail "remoractl makes the certificates" "$(tr '\n' ' ' <"$work/certs.log")"
    t_summary
fi
# Lifetimes are whole days from the second a certificate is made: within that second a 24h
# certificate still has 1 full day left. Querying from two seconds on makes every count stable.
made_at=$(date +%s)
settle() { while (($(date +%s) < made_at + 2)); do sleep 0.1; done; }

serial() { openssl x509 -in "$1" -noout -serial | cut -d= -f2 | tr 'A-F' 'a-f'; }
# when FILE start|end [fmt] — a certificate's notBefore or notAfter, by default in RFC 3339.
when() {
    local d
    d=$(openssl x509 -in "$1" -noout "-$2date" | cut -d= -f2)
    date -u -d "$d" "+${3:-%Y-%m-%dT%H:%M:%SZ}"
}

# tls_context TYPE CERT KEY CA [inline] — a transport_socket at column 0 (indent it to use it);
# no CERT: a client that presents no certificate.
tls_context() {
    local type=$1 cert=$2 key=$3 ca=$4 how=${5:-file}
    cat <<EOF
transport_socket:
  name: envoy.transport_sockets.tls
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.$type
EOF
    [[ $type == DownstreamTlsContext ]] && echo "    require_client_certificate: true"
    echo "    common_tls_context:"
    if [[ -n $cert && $how == inline ]]; then
        echo "      tls_certificates:"
        echo "      - certificate_chain:"
        echo "          inline_string: |"
        sed 's/^/            /' "$cert"
        echo "        private_key:"
        echo "          inline_string: |"
        sed 's/^/            /' "$key"
    elif [[ -n $cert ]]; then
        echo "      tls_certificates:"
        echo "      - certificate_chain: {filename: $cert}"
        echo "        private_key: {filename: $key}"
    fi
    echo "      validation_context: {trusted_ca: {filename: $ca}}"
}
indent() { sed "s/^/$(printf '%*s' "$1" '')/"; }

# listener NAME [tls_context args] — a tcp_proxy listener on a port remora picks, TLS when given
# args.
listener() {
    local name=$1
    shift
    cat <<EOF
  - name: $name
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - name: $name-chain
      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: $name
          cluster: backend
EOF
    if (($#)); then tls_context "$@" | indent 6; fi
}

# cluster NAME [tls_context args] — a static cluster (nothing connects to it).
cluster() {
    local name=$1
    shift
    cat <<EOF
  - name: $name
    connect_timeout: 1s
    load_assignment:
      cluster_name: $name
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 9}}}
EOF
    if (($#)); then tls_context "$@" | indent 4; fi
}

# start NAME — runs remora on $work/NAME.yaml, its admin port then in $ADMIN; fails the story
# when it does not become ready.
start() {
    RUN=$1
    if lb_remora "$1" "$work/$1.yaml" --concurrency 1 --drain-time-s 1; then
        t_ok "remora starts with the $1 config"
    else
        t_fail "remora starts with the $1 config" "$(tr '\n' ' ' <"$work/$1.log")"
        t_summary
    fi
    REMORA_PID=$LB_PID ADMIN=$LB_ADMIN
}
# stop — SIGTERM; remora must exit 0 (its log is scanned for sanitizer reports at exit).
stop() {
    lb_stop "$REMORA_PID"
    t_eq "remora with the $RUN config exits cleanly" "$LB_STATUS" 0
}
header() {
    cat <<EOF
node: {id: certs.test, cluster: test}
admin:
  address: {socket_address: {address: 127.0.0.1, port_value: 0}}
static_resources:
  listeners:
EOF
}
admin() { curl -s "http://127.0.0.1:$ADMIN$1"; }

# --- one workload identity: an mTLS chain, an mTLS cluster (inline PEM), a cluster without a cert
{
    header
    listener inbound DownstreamTlsContext "$work/web/cert-chain.pem" "$work/web/key.pem" \
        "$work/web/root-cert.pem"
    echo "  clusters:"
    cluster backend UpstreamTlsContext "$work/web/cert-chain.pem" "$work/web/key.pem" \
        "$work/web/root-cert.pem" inline
    cluster anon UpstreamTlsContext "" "" "$work/root/root-cert.pem"
} >"$work/mtls.yaml"
start mtls
settle

certs=$(admin /certs)
q() { jq -r "$1" <<<"$certs"; }
t_eq "/certs has one entry per TLS context" "$(q '.certificates | length')" 3
t_eq "/certs: a chain's path is its certificate_chain file" \
    "$(q '.certificates[0].cert_chain[0].path')" "$work/web/cert-chain.pem"
t_eq "/certs: the leaf's serial is the one openssl reads" \
    "$(q '.certificates[0].cert_chain[0].serial_number')" "$(serial "$work/web/cert-chain.pem")"
t_eq "/certs: the leaf's SANs are its SPIFFE ID as a uri" \
    "$(jq -c '.certificates[0].cert_chain[0].subject_alt_names' <<<"$certs")" "[{\"uri\":\"$WEB_ID\"}]"
days=$(q '.certificates[0].cert_chain[0].days_until_expiration | if type == "string" then . else "not a string: \(.)" end')
if [[ $days == 0 || $days == 1 ]]; then
    t_ok "/certs: a 24h certificate has 0 or 1 days left, as a string"
else
    t_fail "/certs: a 24h certificate has 0 or 1 days left, as a string" "got '$days'"
fi
t_eq "/certs: expiration_time is the leaf's notAfter in RFC 3339" \
    "$(q '.certificates[0].cert_chain[0].expiration_time')" "$(when "$work/web/cert-chain.pem" end)"
t_eq "/certs: valid_from is the leaf's notBefore in RFC 3339" \
    "$(q '.certificates[0].cert_chain[0].valid_from')" "$(when "$work/web/cert-chain.pem" start)"
t_eq "/certs: the chain's intermediate follows the leaf" \
    "$(q '.certificates[0].cert_chain[1].serial_number')" "$(serial "$work/inter/ca-cert.pem")"
t_eq "/certs: ca_cert is the trust bundle, with its path" \
    "$(q '.certificates[0].ca_cert[0] | "\(.path) \(.serial_number)"')" \
    "$work/web/root-cert.pem $(serial "$work/root/root-cert.pem")"
root_days=$((($(when "$work/root/root-cert.pem" end %s) - $(date +%s)) / 86400))
t_eq "/certs: the root's days left are whole days to its notAfter" \
    "$(q '.certificates[0].ca_cert[0].days_until_expiration')" "$root_days"
t_eq "/certs: an inline certificate's path is <inline>" \
    "$(q '.certificates[1].cert_chain[0] | "\(.path) \(.serial_number)"')" \
    "<inline> $(serial "$work/web/cert-chain.pem")"
t_eq "/certs: a client without a certificate has an empty cert_chain" \
    "$(jq -c '.certificates[2] | [.cert_chain, .ca_cert[0].path]' <<<"$certs")" \
    "[[],\"$work/root/root-cert.pem\"]"

info=$(admin /server_info)
t_eq "/server_info: identity is the workload's SPIFFE ID" "$(jq -r .identity.spiffe_id <<<"$info")" \
    "$WEB_ID"
t_eq "/server_info: identity.not_after is its certificate's notAfter" \
    "$(jq -r .identity.not_after <<<"$info")" "$(when "$work/web/cert-chain.pem" end)"
t_eq "/server_info: identity.serial_number is its certificate's" \
    "$(jq -r .identity.serial_number <<<"$info")" "$(serial "$work/web/cert-chain.pem")"
t_eq "/server_info: one identity used twice is not listed as several" \
    "$(jq 'has("identities")' <<<"$info")" false
t_eq "/server_info keeps Envoy's fields" \
    "$(jq -r '"\(.state) \(.node.id) \(.command_line_options.concurrency)"' <<<"$info")" \
    "LIVE certs.test 1"

leaf_end=$(when "$work/web/cert-chain.pem" end %s)
min_days=$(jq '[.certificates[][][].days_until_expiration | tonumber] | min' <<<"$certs")
t_eq "server.days_until_first_cert_expiring is the fewest days of any certificate" \
    "$(stat "$ADMIN" server.days_until_first_cert_expiring)" "$min_days"
t_eq "server.days_until_first_cert_expiring is 0 with a 24h certificate" \
    "$(stat "$ADMIN" server.days_until_first_cert_expiring)" 0
t_eq "server.cert_expiration_timestamp_seconds is the leaf's notAfter" \
    "$(stat "$ADMIN" server.cert_expiration_timestamp_seconds)" "$leaf_end"
prom=$(admin /stats/prometheus)
t_contains "prometheus: days_until_first_cert_expiring is a gauge" "$prom" \
    $'# TYPE envoy_server_days_until_first_cert_expiring gauge\nenvoy_server_days_until_first_cert_expiring 0\n'
t_contains "prometheus: cert_expiration_timestamp_seconds is a gauge" "$prom" \
    $'# TYPE envoy_server_cert_expiration_timestamp_seconds gauge\nenvoy_server_cert_expiration_timestamp_seconds '"$leaf_end"$'\n'
t_eq "stats json: cert_expiration_timestamp_seconds" \
    "$(admin '/stats?format=json' |
        jq '.stats[] | select(.name == "server.cert_expiration_timestamp_seconds") | .value')" \
    "$leaf_end"
t_contains "the admin help lists /certs" "$(admin /)" "/certs:"

# The key's base64 lines must appear on no page; the certificate's do appear in config_dump (the
# check can fail: inline PEM is dumped as written, only the key is redacted).
dump=$(admin /config_dump)
t_contains "config_dump shows the inline certificate" "$dump" \
    "$(sed -n 2p "$work/web/cert-chain.pem")"
leaks=""
for page in /config_dump /certs /server_info /stats /clusters /listeners; do
    body=$(admin "$page")
    [[ $body == *"PRIVATE KEY"* ]] && leaks+=" $page(PEM header)"
    while IFS= read -r line; do
        [[ $line == -----* || ${#line} -lt 16 ]] && continue
        [[ $body == *"$line"* ]] && leaks+=" $page"
    done <"$work/web/key.pem"
done
t_eq "no admin page shows the private key" "$leaks" ""
stop

# --- two workload identities: the chain's is the identity, the earlier expiry is the gauge ----
{
    header
    listener inbound DownstreamTlsContext "$work/web/cert-chain.pem" "$work/web/key.pem" \
        "$work/web/root-cert.pem"
    echo "  clusters:"
    cluster backend UpstreamTlsContext "$work/api/cert-chain.pem" "$work/api/key.pem" \
        "$work/api/root-cert.pem"
} >"$work/two.yaml"
start two
info=$(admin /server_info)
t_eq "/server_info: the first context's identity is the identity" \
    "$(jq -r .identity.spiffe_id <<<"$info")" "$WEB_ID"
t_eq "/server_info: identities lists each distinct identity with its expiry" \
    "$(jq -c '[.identities[] | [.spiffe_id, .not_after]]' <<<"$info")" \
    "[[\"$WEB_ID\",\"$(when "$work/web/cert-chain.pem" end)\"],[\"$API_ID\",\"$(when "$work/api/cert-chain.pem" end)\"]]"
t_eq "server.cert_expiration_timestamp_seconds is the earliest leaf's notAfter" \
    "$(stat "$ADMIN" server.cert_expiration_timestamp_seconds)" \
    "$(when "$work/api/cert-chain.pem" end %s)"
stop

# --- no TLS at all: Envoy's values for "nothing to expire" ----------------------------------
{
    header
    listener plain
    echo "  clusters:"
    cluster backend
} >"$work/plain.yaml"
start plain
t_eq "/certs without TLS contexts is an empty list" "$(admin /certs | jq -c .)" \
    '{"certificates":[]}'
t_eq "/server_info without a certificate has a null identity" \
    "$(admin /server_info | jq -c '[.identity, has("identity")]')" "[null,true]"
t_eq "days_until_first_cert_expiring without certificates is Envoy's 2^32-1" \
    "$(stat "$ADMIN" server.days_until_first_cert_expiring)" 4294967295
t_eq "cert_expiration_timestamp_seconds without certificates is 0" \
    "$(stat "$ADMIN" server.cert_expiration_timestamp_seconds)" 0
stop

t_summary
