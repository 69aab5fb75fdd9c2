#!/usr/bin/env bash
# Story: the simulated cluster with Istio's mutual TLS between sidecars. A client pod calls a
# service VIP over HTTP: its sidecar originates mTLS with its SPIFFE identity, the server pod's
# strict inbound sidecar terminates it and hands the request to nginx; the wire carries only TLS
# records. The server side knows the client's identity (access log, x-forwarded-client-cert). A
# client of another trust domain, a client expecting another server identity, a plaintext client
# and a TLS client without a certificate are refused and counted, while a permissive server still
# takes plaintext. New connections resume the TLS session; opaque TCP crosses through mTLS too.
# The server's certificate is re-issued mid-load and not one request is lost.
# checks: 56
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=test/lib/testlib.sh
source "$root/test/lib/testlib.sh"
t_require_root
t_require_cmd nginx socat curl setpriv openssl od sha256sum tcpdump h2load
# shellcheck source=test/lib/simcluster.sh
source "$root/test/lib/simcluster.sh"
# shellcheck source=test/lib/meshconfig.sh
source "$root/test/lib/meshconfig.sh"
# shellcheck source=test/lib/apps.sh
source "$root/test/lib/apps.sh"

sim_init || exit 1
sim_pod client 198.18.0.2   # strict mTLS, identity sa/client
sim_pod web 198.18.0.3      # strict mTLS server: nginx :8080, a TCP echo :9000
sim_pod perm 198.18.0.4     # permissive mTLS server: nginx :8080
sim_pod alien 198.18.0.5    # another trust domain, which trusts ours too (federated)
sim_pod stranger 198.18.0.6 # another trust domain, which trusts only itself
sim_pod wrongid 198.18.0.7  # our trust domain, but expects web to be sa/someone-else
sim_pod bare 198.18.0.8     # no sidecar: plaintext curl, openssl

SA=spiffe://cluster.local/ns/default/sa
WEB_SVC="web 198.19.0.20 80 198.18.0.3:8080"
PERM_SVC="perm 198.19.0.21 80 198.18.0.4:8080"
ECHO_SVC="echo 198.19.0.40 9000 198.18.0.3:9000 web" # runs in web's pods, as sa/web
WEB='outbound|80||web.default.svc.cluster.local'
ECHO_TCP='outbound|9000|tcp|echo.default.svc.cluster.local'
SNI=outbound_.80_._.web.default.svc.cluster.local
SIDECARS=(client web perm alien stranger wrongid)

stat() { sim_admin "$1" /stats | awk -v n="$2:" '$1 == n { print $2 }'; }
in_stat() { stat "$1" "listener.virtualInbound.$2"; }
nginx_lines() { wc -l <"$SIM_DIR/$1-nginx/logs/access.log"; }
# t_more NAME BEFORE AFTER — passes when a counter went up.
t_more() {
    if ((${3:-0} > ${2:-0})); then t_ok "$1"; else t_fail "$1" "counter '$2' -> '$3'"; fi
}
# t_if NAME WHY CMD... — passes when CMD succeeds, else fails with WHY.
t_if() {
    local name=$1 why=$2
    shift 2
    if "$@"; then t_ok "$name"; else t_fail "$name" "$why"; fi
}
# t_is NAME STATUS WHY — passes when STATUS (the previous test's $?) is 0.
t_is() {
    if (($2 == 0)); then t_ok "$1"; else t_fail "$1" "$3"; fi
}
stop() {
    t_fail "$1" "$2"
    t_summary
    exit 1
}

# --- identities: the mesh's root CA, and another trust domain's -------------------------------
mkdir -p "$SIM_DIR/ca" "$SIM_DIR/certs" "$SIM_DIR/logs" && chmod 777 "$SIM_DIR/logs"
mesh_ca "$SIM_DIR/ca/mesh" || stop root_ca "remoractl certs root failed"
mesh_ca "$SIM_DIR/ca/other" --org Other || stop other_root_ca "remoractl certs root failed"
for pod in client web perm wrongid; do
    mesh_certs_issue "$SIM_DIR/ca/mesh" "$SIM_DIR/certs/$pod" "$SA/$pod" ||
        stop "certs_$pod" "remoractl certs issue failed"
done
for pod in alien stranger; do
    mesh_certs_issue "$SIM_DIR/ca/other" "$SIM_DIR/certs/$pod" \
        spiffe://other.local/ns/default/sa/x || stop "certs_$pod" "remoractl certs issue failed"
done
# alien trusts both roots: it accepts web's certificate, so it is web that refuses alien's.
cat "$SIM_DIR/ca/mesh/root-cert.pem" >>"$SIM_DIR/certs/alien/root-cert.pem"

# --- one config per pod (its own identity), validated as the sidecar's uid will load it --------
config() { # POD MODE SERVICE...
    local pod=$1 mode=$2
    shift 2
    MESH_MTLS=$mode MESH_CERT_DIR=$SIM_DIR/certs/$pod \
        MESH_ACCESS_LOG=$SIM_DIR/logs/$pod-inbound.log mesh_config "$SIM_DIR/$pod.yaml" "$@"
}
config client strict "$WEB_SVC" "$PERM_SVC" "$ECHO_SVC"
config web strict "$WEB_SVC"
config perm permissive "$PERM_SVC"
config alien strict "$WEB_SVC"
config stranger strict "$WEB_SVC"
config wrongid strict "$WEB_SVC someone-else"
bad=
for pod in "${SIDECARS[@]}"; do
    out=$(mesh_validate "$SIM_DIR/$pod.yaml" 2>&1) || bad+="$pod: $out; "
done
t_eq configs_validate_as_proxy_uid "$bad" ""
grep -q 'alpn_protocols: \[istio\]' "$SIM_DIR/client.yaml" &&
    grep -q outbound_.9000_._.echo "$SIM_DIR/client.yaml"
t_is tcp_cluster_offers_istio_alpn $? "no ALPN 'istio' / SNI of echo:9000 in client.yaml"

# --- apps and sidecars ---------------------------------------------------------------------------
for pod in web perm; do
    sim_nginx "$pod" 8080 "    location /slow/ { alias $SIM_DIR/$pod-nginx/www/; limit_rate 4k; }
    location / { return 200 \"$pod \$request_uri xfcc=\$http_x_forwarded_client_cert\\n\"; }"
done
head -c 6000 /dev/urandom >"$SIM_DIR/web-nginx/www/slow.bin"
sim_bg web "$SIM_DIR/web-echo.log" socat TCP-LISTEN:9000,fork,reuseaddr,backlog=64 \
    SYSTEM:'echo web-tcp; exec cat' >/dev/null
for pod in "${SIDECARS[@]}"; do
    sim_capture "$pod" || stop "capture_$pod" "remoractl iptables apply failed"
    sim_sidecar "$pod" "$SIM_DIR/$pod.yaml" --concurrency 1 || stop "sidecar_$pod" "not ready"
done
t_ok sidecars_ready

# --- packet capture in the switch namespace (every pod's link) ---------------------------------
CAP_PID=
cap_start() { # FILE FILTER
    ip netns exec "$(sim_switch_ns)" tcpdump -i any -n -U --immediate-mode -s 0 -Z root \
        -w "$1" "$2" </dev/null >"$1.log" 2>&1 &
    CAP_PID=$!
    printf '%s\n' "$CAP_PID" >>"$SIM_DIR/pids"
    t_until 5 grep -qs 'listening on' "$1.log" ||
        stop "capture_$(basename "$1")" "tcpdump did not start: $(cat "$1.log")"
}
# cap_stop CMD... — stops the capture once CMD holds (5 s at most): tcpdump writes each packet
# as it gets it, so CMD waits for the last packets the checks need, then SIGINT ends it.
cap_stop() {
    t_until 5 "$@"
    kill -INT "$CAP_PID" 2>/dev/null
    wait "$CAP_PID" 2>/dev/null
}
# has_bytes FILE HEX... — FILE holds these bytes in a row ("16 03 03").
has_bytes() {
    local f=$1
    shift
    [[ $(od -An -v -tx1 "$f" | tr -s ' \n' ' ') == *" $* "* ]]
}
# both_ways FILE — FILE holds two TLS application data records (0x17 0x03 0x03): the request's
# and the answer's.
both_ways() {
    (($(od -An -v -tx1 "$1" | tr -s ' \n' ' ' | grep -o ' 17 03 03 ' | wc -l) >= 2))
}

# --- a. client → web VIP through both sidecars in strict mode: only TLS on the wire ------------
cap=$SIM_DIR/mtls.pcap
cap_start "$cap" 'tcp and host 198.18.0.2 and host 198.18.0.3'
got=$(sim_exec client curl -s -m 5 http://198.19.0.20/mtls-probe)
cap_stop both_ways "$cap"
t_contains a_http_200_through_two_mtls_sidecars "$got" "web /mtls-probe"
t_more a_capture_saw_the_connection 2000 "$(wc -c <"$cap")"
# TLS 1.2 record headers: handshake 0x16 0x03 0x03, application data 0x17 0x03 0x03.
t_if a_wire_has_tls_handshake_records "no 16 03 03 in the capture" has_bytes "$cap" 16 03 03
t_if a_wire_has_tls_application_data "no 17 03 03 in the capture" has_bytes "$cap" 17 03 03
t_eq a_wire_has_no_plaintext_http "$(grep -a -c -e 'GET /' -e 'mtls-probe' "$cap")" 0
grep -a -q -e "$SNI" "$cap" && grep -a -q istio-http/1.1 "$cap"
t_is a_clienthello_has_istio_sni_and_alpn $? "no $SNI / istio-http/1.1 in the capture"
# Control: the same capture of a plaintext request (no sidecar → permissive pod) shows it.
cap_start "$SIM_DIR/plain.pcap" 'tcp and host 198.18.0.8 and host 198.18.0.4'
sim_exec bare curl -s -m 5 -o /dev/null http://198.18.0.4:8080/plain-probe
cap_stop grep -a -q 'GET /plain-probe' "$SIM_DIR/plain.pcap"
t_if a_control_plaintext_request_is_visible "not in the capture" \
    grep -a -q 'GET /plain-probe' "$SIM_DIR/plain.pcap"
t_more a_client_sidecar_counts_handshake 0 "$(stat client "cluster.$WEB.ssl.handshake")"
t_more a_server_sidecar_counts_handshake 0 "$(in_stat web ssl.handshake)"

# --- b. the server side knows the client's identity -------------------------------------------
xfcc=${got#*xfcc=}
hash=$(openssl x509 -in "$SIM_DIR/certs/client/cert-chain.pem" -outform DER | sha256sum)
t_contains b_app_gets_client_identity_in_xfcc "$xfcc" "URI=$SA/client"
t_contains b_xfcc_names_server_and_client_cert "$xfcc" "By=$SA/web;Hash=${hash%% *}"
# Access logs are written once a second: wait for the line.
t_until 5 grep -qs 'GET /mtls-probe' "$SIM_DIR/logs/web-inbound.log"
log=$(cat "$SIM_DIR/logs/web-inbound.log" 2>/dev/null)
t_contains b_inbound_access_log_has_request "$log" '"GET /mtls-probe HTTP/1.1" 200 - "198.18.0.2:'
t_contains b_inbound_access_log_names_client_spiffe_id "$log" \
    "peer=\"$SA/client\" tls=\"TLSv1.2\" sni=\"$SNI\""

# --- c. clients of another trust domain are refused --------------------------------------------
before=$(nginx_lines web)
ve=$(in_stat web ssl.fail_verify_error)
code=$(sim_exec alien curl -s -m 5 -o /dev/null -w '%{http_code}' http://198.19.0.20/alien)
t_eq c_foreign_client_gets_503 "$code" 503
t_contains c_foreign_client_response_flag_UF "$(sim_admin alien /stats/prometheus)" \
    "destination_cluster=\"$WEB\",request_protocol=\"http\",response_code=\"503\",grpc_response_status=\"\",response_flags=\"UF\""
t_more c_server_counts_fail_verify_error "$ve" "$(in_stat web ssl.fail_verify_error)"
# alien verified web, then got web's alert: a connection_error on its side, once per attempt.
got="$(stat alien "cluster.$WEB.ssl.connection_error")"
got+=" $(stat alien "cluster.$WEB.ssl.fail_verify_error")"
t_eq c_foreign_client_counts_connection_error "$got" \
    "$(stat alien "cluster.$WEB.upstream_cx_connect_fail") 0"
# stranger cannot verify web's certificate and stops there: web gets the alert.
ce=$(in_stat web ssl.connection_error)
code=$(sim_exec stranger curl -s -m 5 -o /dev/null -w '%{http_code}' http://198.19.0.20/stranger)
t_eq c_untrusting_client_gets_503 "$code" 503
t_more c_untrusting_client_counts_fail_verify_error 0 \
    "$(stat stranger "cluster.$WEB.ssl.fail_verify_error")"
t_more c_server_counts_connection_error_from_untrusting_client "$ce" \
    "$(in_stat web ssl.connection_error)"
t_eq c_refused_clients_never_reach_the_app "$(($(nginx_lines web) - before))" 0

# --- d. a client expecting another server identity refuses web ----------------------------------
before=$(nginx_lines web)
code=$(sim_exec wrongid curl -s -m 5 -o /dev/null -w '%{http_code}' http://198.19.0.20/wrong-id)
t_eq d_unexpected_server_identity_503 "$code" 503
t_contains d_unexpected_server_identity_flag_UF "$(sim_admin wrongid /stats/prometheus)" \
    "destination_cluster=\"$WEB\",request_protocol=\"http\",response_code=\"503\",grpc_response_status=\"\",response_flags=\"UF\""
t_more d_client_counts_fail_verify_san 0 "$(stat wrongid "cluster.$WEB.ssl.fail_verify_san")"
t_eq d_app_received_nothing "$(($(nginx_lines web) - before))" 0

# --- e. permissive takes plaintext and mTLS, strict refuses plaintext --------------------------
got=$(sim_exec bare curl -s -m 5 http://198.18.0.4:8080/plain)
t_eq e_permissive_accepts_plaintext_client "$got" "perm /plain xfcc="
got=$(sim_exec client curl -s -m 5 http://198.19.0.21/mtls-to-perm)
t_contains e_permissive_accepts_mtls_client "$got" "perm /mtls-to-perm xfcc="
t_more e_permissive_counts_the_handshake 0 "$(in_stat perm ssl.handshake)"
nm=$(in_stat web no_filter_chain_match)
out=$(sim_exec bare curl -s -m 5 -o /dev/null -w '%{http_code}' http://198.18.0.3:8080/plain)
rc=$?
[[ $out == 000 && ($rc == 52 || $rc == 56) ]]
t_is e_strict_resets_plaintext_client $? "curl rc=$rc code=$out (want 52 or 56, 000)"
t_eq e_strict_counts_no_filter_chain_match "$(($(in_stat web no_filter_chain_match) - nm))" 1
t_until 5 grep -qs 'GET /plain HTTP' "$SIM_DIR/logs/perm-inbound.log"
t_contains e_permissive_logs_plaintext_without_peer "$(cat "$SIM_DIR/logs/perm-inbound.log")" \
    '"GET /plain HTTP/1.1" 200 - "198.18.0.8:'

# --- f. a TLS client without a certificate is refused by the strict inbound ---------------------
s_client() { # POD ARGS...: openssl s_client to web's app port, verifying web against the root
    local pod=$1
    shift
    sim_exec "$pod" timeout 5 openssl s_client -connect 198.18.0.3:8080 -tls1_2 \
        -servername "$SNI" -CAfile "$SIM_DIR/ca/mesh/root-cert.pem" "$@" 2>&1
}
nc=$(in_stat web ssl.fail_verify_no_cert)
out=$(s_client bare </dev/null)
rc=$?
[[ $rc != 0 && $out == *"alert handshake failure"* ]]
t_is f_no_client_cert_handshake_refused $? \
    "rc=$rc: $(grep -i -m3 -e alert -e error <<<"$out" | tr '\n' ' ')"
t_eq f_counts_fail_verify_no_cert "$(($(in_stat web ssl.fail_verify_no_cert) - nc))" 1
# Control: the same openssl with a mesh identity reaches nginx, and web's chain verifies.
out=$(printf 'GET /openssl HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n' |
    s_client bare -alpn istio-http/1.1 -verify_return_error -ign_eof \
        -cert "$SIM_DIR/certs/client/cert-chain.pem" -key "$SIM_DIR/certs/client/key.pem")
t_contains f_with_a_mesh_certificate_openssl_reaches_app "$out" "web /openssl"
t_contains f_openssl_verifies_web_chain "$out" "Verify return code: 0 (ok)"

# --- g. new connections resume the TLS session --------------------------------------------------
# Connection: close ends only the client's own connection: the sidecars keep theirs pooled. Four
# slow downloads at once make the client's sidecar open new connections to web; it has web's
# session ticket from the first handshake, so they resume.
ru=$(stat client "cluster.$WEB.ssl.session_reused")
rw=$(in_stat web ssl.session_reused)
pids=()
for i in 1 2 3 4; do
    sim_exec client curl -s -m 10 -o "$SIM_DIR/slow$i.out" http://198.19.0.20/slow/slow.bin &
    pids+=($!)
done
wait "${pids[@]}"
ok=0
for i in 1 2 3 4; do
    cmp -s "$SIM_DIR/slow$i.out" "$SIM_DIR/web-nginx/www/slow.bin" && ok=$((ok + 1))
done
t_eq g_concurrent_downloads_intact "$ok" 4
ru=$(($(stat client "cluster.$WEB.ssl.session_reused") - ru))
rw=$(($(in_stat web ssl.session_reused) - rw))
((ru > 0 && ru == rw))
t_is g_new_connections_resume_sessions $? "session_reused: client's cluster +$ru, web's +$rw"
t_eq g_every_upstream_connection_is_tls "$(stat client "cluster.$WEB.upstream_cx_total")" \
    "$(stat client "cluster.$WEB.ssl.handshake")"

# --- h. opaque TCP through mTLS ------------------------------------------------------------------
hs_web=$(in_stat web ssl.handshake)
cap_start "$SIM_DIR/tcp.pcap" 'tcp and host 198.18.0.2 and host 198.18.0.3'
got=$(printf 'ping-over-mtls\n' | sim_exec client socat -t 3 - TCP:198.19.0.40:9000)
cap_stop both_ways "$SIM_DIR/tcp.pcap"
hs=$(stat client "cluster.$ECHO_TCP.ssl.handshake")
t_more h_tcp_connection_is_mtls 0 "$hs"
t_eq h_tcp_bytes_cross_mtls "$got" $'web-tcp\nping-over-mtls'
t_eq h_server_terminates_the_tcp_mtls "$(($(in_stat web ssl.handshake) - hs_web))" "$hs"
t_eq h_tcp_wire_has_no_plaintext "$(grep -a -c 'ping-over-mtls' "$SIM_DIR/tcp.pcap")" 0
grep -a -q outbound_.9000_._.echo "$SIM_DIR/tcp.pcap" && ! grep -a -q istio-http "$SIM_DIR/tcp.pcap"
t_is h_tcp_clienthello_is_the_tcp_clusters $? "echo's SNI missing, or istio-http offered"
head -c $((1 << 20)) /dev/urandom >"$SIM_DIR/tcp.in"
sim_exec client socat -t 5 -T 10 - TCP:198.19.0.40:9000 <"$SIM_DIR/tcp.in" |
    tail -c +9 >"$SIM_DIR/tcp.out" # after "web-tcp\n"
t_eq h_tcp_1mib_intact "$(sha256sum <"$SIM_DIR/tcp.out")" "$(sha256sum <"$SIM_DIR/tcp.in")"

# --- i. web's certificate is re-issued mid-load: every request is answered ----------------------
# The client pod calls the web VIP at a steady rate through both sidecars while web's key and
# certificate are replaced on disk (renamed over the files its sidecar watches). Counted by
# h2load: every request done, every answer a 200. New handshakes get the new certificate.
web_serial() { # the serial web's sidecar presents to a new mTLS connection
    sim_exec bare timeout 5 openssl s_client -connect 198.18.0.3:8080 -tls1_2 -alpn istio-http/1.1 \
        -cert "$SIM_DIR/certs/client/cert-chain.pem" -key "$SIM_DIR/certs/client/key.pem" \
        -CAfile "$SIM_DIR/ca/mesh/root-cert.pem" </dev/null 2>/dev/null | openssl x509 -noout -serial
}
mesh_certs_issue "$SIM_DIR/ca/mesh" "$SIM_DIR/certs/web-v2" "$SA/web" ||
    stop i_reissue "remoractl certs issue failed"
new=$(openssl x509 -in "$SIM_DIR/certs/web-v2/cert-chain.pem" -noout -serial)
t_eq i_web_presents_its_first_certificate "$(web_serial)" \
    "$(openssl x509 -in "$SIM_DIR/certs/web/cert-chain.pem" -noout -serial)"
rot=$(stat web server.cert_rotation_ok)
served=$(stat client "cluster.$WEB.upstream_rq_total")
# served_past N — the client's sidecar has sent N requests to web in all.
served_past() { (($(stat client "cluster.$WEB.upstream_rq_total") + 0 >= $1)); }
# rotated — web's sidecar has rotated since the load began.
rotated() { (($(stat web server.cert_rotation_ok) + 0 > rot)); }
N=3000 # 10 connections at 60 requests/s each: 5 s of load
sim_exec client h2load --h1 -c 10 --rps 60 -n "$N" http://198.19.0.20/rotation \
    >"$SIM_DIR/rotation-load.log" 2>&1 &
load=$!
t_until 5 served_past $((served + 600)) # a second of the load has gone through
mv -f "$SIM_DIR/certs/web-v2/cert-chain.pem" "$SIM_DIR/certs/web/cert-chain.pem"
mv -f "$SIM_DIR/certs/web-v2/key.pem" "$SIM_DIR/certs/web/key.pem"
t_until 5 rotated
t_more i_web_sidecar_rotates 0 "$(($(stat web server.cert_rotation_ok) - rot))"
t_if i_rotation_happened_during_the_load "the load ended first" sim_alive "$load"
t_eq i_new_handshakes_get_the_new_certificate "$(web_serial)" "$new"
wait "$load"
summary=$(grep -E '^(requests|status codes):' "$SIM_DIR/rotation-load.log" | tr '\n' ' ')
t_contains i_every_request_answered_across_the_rotation "$summary" \
    "requests: $N total, $N started, $N done, $N succeeded, 0 failed, 0 errored, 0 timeout"
t_contains i_every_answer_is_200 "$summary" "status codes: $N 2xx, 0 3xx, 0 4xx, 0 5xx"
t_eq i_web_refused_no_rotation "$(stat web server.cert_rotation_failed)" 0

# --- every sidecar drains and exits 0; a sanitizer build reports no memory error or leak -------
got='' want=''
for pod in "${SIDECARS[@]}"; do
    got+="$pod=$(sim_stop "$pod") "
    want+="$pod=0 "
done
t_eq sidecars_exit_zero_on_sigterm "$got" "$want"
reports=$(cd "$SIM_DIR" && grep -l -E "$GUARD_SANITIZER_RE" ./*-remora.log | tr '\n' ' ')
t_eq sidecars_report_no_memory_errors "$reports" ""

t_summary
