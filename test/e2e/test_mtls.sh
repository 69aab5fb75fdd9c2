#!/usr/bin/env bash
# Story: two remoras on loopback speak mutual TLS with SPIFFE identities. A (outbound: HTTP in,
# an UpstreamTlsContext cluster) talks to B (inbound: tls_inspector, a DownstreamTlsContext chain
# that requires a client certificate, then the HTTP connection manager to an app). Requests and
# large bodies arrive intact over one reused TLS connection, sessions resume, the app sees
# this hop's x-forwarded-client-cert (a forged one is replaced), the access log names the client's
# SPIFFE ID, and B refuses plaintext, clients without a certificate and clients from another
# trust domain, while A refuses a server whose identity is not the expected one. Needs no root.
# checks: 20
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=test/lib/testlib.sh
source "$root/test/lib/testlib.sh"
t_require_cmd curl openssl python3 sha256sum
# shellcheck source=test/lib/loopback.sh
source "$root/test/lib/loopback.sh"
# shellcheck source=test/lib/mtls.sh
source "$root/test/lib/mtls.sh"
CTL=$LB_BIN/remoractl
work=$LB_WORK


# --- identities: one root for the mesh, one for a foreign trust domain ---------------------
"$CTL" certs root --out "$work/root" >/dev/null
"$CTL" certs root --out "$work/other-root" --org other >/dev/null
"$CTL" certs issue --ca "$work/root" --spiffe-id spiffe://cluster.local/ns/default/sa/client \
    --out "$work/client" >/dev/null
"$CTL" certs issue --ca "$work/root" --spiffe-id spiffe://cluster.local/ns/default/sa/server \
    --out "$work/server" >/dev/null
"$CTL" certs issue --ca "$work/other-root" --spiffe-id spiffe://other.local/ns/default/sa/client \
    --out "$work/foreign" >/dev/null

# --- the app: echoes the request headers; serves a large body by path ----------------------
# /slow answers after half a second, so that three requests at once overlap (see below).
head -c $((4 << 20)) /dev/urandom >"$work/big.bin"
mtls_app APP <<EOF || t_stop "the app listens"
    BIG = open("$work/big.bin", "rb").read()
    def do_GET(self):
        if self.path == "/slow":
            time.sleep(0.5)
        self.reply(self.BIG if self.path == "/big" else "".join(
            "%s: %s\n" % (k.lower(), v) for k, v in self.headers.items()).encode())
EOF

# b_config FILE ADMIN PORT — the inbound sidecar: strict mTLS offering h2 and http/1.1, the
# client's identity passed to the app in x-forwarded-client-cert, an access log, then the app.
b_config() {
    local xfcc=$'forward_client_cert_details: SANITIZE_SET\nset_current_client_cert_details: {uri: true}'
    MTLS_ALPN='h2, http/1.1' MTLS_HCM_EXTRA=$xfcc MTLS_ACCESS_LOG=$work/b-access.log \
        mtls_inbound_config "$1" "$2" "$3" "$work/server" "$APP"
}

# a_config FILE ADMIN PORT UPSTREAM_PORT IDENTITY_DIR EXPECTED_SAN — the outbound sidecar, with
# Istio's SNI for B and ALPN; it trusts IDENTITY_DIR's root.
a_config() {
    MTLS_SNI=outbound_.80_._.b.default.svc.cluster.local MTLS_ALPN=istio-http/1.1 \
        mtls_outbound_config "$@"
}

b_config "$work/b.yaml" 0 0
lb_remora b "$work/b.yaml" --concurrency 1 || t_stop "B starts: $(cat "$work/b.log")"
B_PID=$LB_PID B_ADMIN=$LB_ADMIN B_PORT=${LB_PORT[inbound]}

a_config "$work/a.yaml" 0 0 "$B_PORT" "$work/client" spiffe://cluster.local/ns/default/sa/server
lb_remora a "$work/a.yaml" --concurrency 1 || t_stop "A starts: $(cat "$work/a.log")"
A_PID=$LB_PID A_ADMIN=$LB_ADMIN A_PORT=${LB_PORT[outbound]}

# --- the happy path -------------------------------------------------------------------------
headers=$(curl -s -m 5 -H 'x-forwarded-client-cert: By=forged;URI=spiffe://evil' \
    "http://127.0.0.1:$A_PORT/headers")
xfcc=$(grep '^x-forwarded-client-cert: ' <<<"$headers" | cut -d' ' -f2-)
hash=$(openssl x509 -in "$work/client/cert-chain.pem" -outform DER | sha256sum | cut -d' ' -f1)
t_eq "the app sees this hop's x-forwarded-client-cert, the forged one replaced" "$xfcc" \
    "By=spiffe://cluster.local/ns/default/sa/server;Hash=$hash;URI=spiffe://cluster.local/ns/default/sa/client"

got=$(curl -s -m 10 "http://127.0.0.1:$A_PORT/big" | sha256sum | cut -d' ' -f1)
t_eq "a 4 MiB body arrives intact through mTLS" "$got" "$(sha256sum <"$work/big.bin" | cut -d' ' -f1)"
for _ in 1 2 3; do curl -s -m 5 -o /dev/null "http://127.0.0.1:$A_PORT/"; done
t_eq "keep-alive: five requests, one handshake on each side" \
    "$(stat "$A_ADMIN" cluster.b.ssl.handshake) $(stat "$B_ADMIN" listener.inbound.ssl.handshake)" "1 1"
# Access logs are flushed once a second: wait for the line.
t_until 5 grep -qs "^200 spiffe://" "$work/b-access.log"
t_contains "B's access log names the client's SPIFFE ID and TLS version" \
    "$(cat "$work/b-access.log" 2>/dev/null)" "200 spiffe://cluster.local/ns/default/sa/client TLSv1.2"

# Three requests at once need three upstream connections: the new ones resume the session.
slow=()
for _ in 1 2 3; do
    curl -s -m 5 -o /dev/null "http://127.0.0.1:$A_PORT/slow" &
    slow+=($!)
done
wait "${slow[@]}"
reused=$(stat "$A_ADMIN" cluster.b.ssl.session_reused)
t_run "new connections resume the TLS session (session_reused $reused)" test "${reused:-0}" -ge 1

# --- refusals -------------------------------------------------------------------------------
code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$B_PORT/")
t_eq "strict inbound: a plaintext client gets no HTTP answer" "$code" "000"
t_eq "...and is counted as matching no filter chain" \
    "$(stat "$B_ADMIN" listener.inbound.no_filter_chain_match)" "1"

out=$(openssl s_client -connect "127.0.0.1:$B_PORT" -CAfile "$work/root/root-cert.pem" \
    </dev/null 2>&1)
t_contains "openssl s_client without a client certificate is refused" "$out" "alert"
t_eq "...counted as ssl.fail_verify_no_cert" "$(stat "$B_ADMIN" listener.inbound.ssl.fail_verify_no_cert)" "1"

out=$(openssl s_client -connect "127.0.0.1:$B_PORT" -CAfile "$work/root/root-cert.pem" \
    -cert "$work/foreign/cert-chain.pem" -key "$work/foreign/key.pem" </dev/null 2>&1)
t_contains "a client from another trust domain is refused" "$out" "alert"
t_eq "...counted as ssl.fail_verify_error" "$(stat "$B_ADMIN" listener.inbound.ssl.fail_verify_error)" "1"

# require_sni: a second inbound sidecar that insists on SNI.
MTLS_DOWNSTREAM_EXTRA='require_sni: true' b_config "$work/sni.yaml" 0 0
lb_remora sni "$work/sni.yaml" --concurrency 1 ||
    t_stop "the require_sni sidecar starts: $(cat "$work/sni.log")"
S_PORT=${LB_PORT[inbound]}
client=(-CAfile "$work/root/root-cert.pem" -cert "$work/client/cert-chain.pem"
    -key "$work/client/key.pem")
printf 'GET / HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n' >"$work/get.txt"
out=$(timeout 5 openssl s_client -quiet -connect "127.0.0.1:$S_PORT" -noservername "${client[@]}" \
    <"$work/get.txt" 2>&1)
t_run "require_sni: a client without SNI gets no answer" test "${out#*HTTP/1.1 200}" == "$out"
out=$(timeout 5 openssl s_client -quiet -connect "127.0.0.1:$S_PORT" -servername b.default \
    "${client[@]}" <"$work/get.txt" 2>&1)
t_contains "require_sni: a client with SNI is answered" "$out" "HTTP/1.1 200"

# ALPN: A offers istio-http/1.1, which B's context does not list; like Envoy, B goes on without
# ALPN (the happy path above). A client offering one of B's protocols gets it.
out=$(timeout 5 openssl s_client -connect "127.0.0.1:$B_PORT" -alpn http/1.1 "${client[@]}" \
    </dev/null 2>&1)
t_contains "ALPN: a client offering http/1.1 negotiates it" "$out" "ALPN protocol: http/1.1"

a_config "$work/wrong.yaml" 0 0 "$B_PORT" "$work/client" \
    spiffe://cluster.local/ns/default/sa/someone-else
lb_remora wrong "$work/wrong.yaml" --concurrency 1 || t_stop "the misconfigured client sidecar starts"
W_ADMIN=$LB_ADMIN W_PORT=${LB_PORT[outbound]}
body=$(curl -s -m 5 -w ' %{http_code}' "http://127.0.0.1:$W_PORT/")
t_contains "a server with an unexpected identity: 503, connection failure" "$body" "503"
t_eq "...counted as the cluster's ssl.fail_verify_san" \
    "$(stat "$W_ADMIN" cluster.b.ssl.fail_verify_san)" "1"

a_config "$work/foreign.yaml" 0 0 "$B_PORT" "$work/foreign" \
    spiffe://cluster.local/ns/default/sa/server
lb_remora foreign "$work/foreign.yaml" --concurrency 1 || t_stop "the foreign sidecar starts"
F_ADMIN=$LB_ADMIN F_PORT=${LB_PORT[outbound]}
t_eq "a sidecar of another trust domain cannot verify B: 503" \
    "$(curl -s -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$F_PORT/")" "503"
t_eq "...it counts ssl.fail_verify_error" "$(stat "$F_ADMIN" cluster.b.ssl.fail_verify_error)" "1"

# --- a clean end (the other sidecars are stopped, and checked, at exit) -----------------------
lb_stop "$A_PID"
t_eq "A exits cleanly" "$LB_STATUS" 0
lb_stop "$B_PID"
t_eq "B exits cleanly" "$LB_STATUS" 0
t_summary
