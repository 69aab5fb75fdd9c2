#!/usr/bin/env bash
# Story: a sidecar's certificate is rotated on disk while traffic flows, and nothing is dropped.
# A (HTTP in, an UpstreamTlsContext cluster) talks mutual TLS to B (a DownstreamTlsContext that
# requires a client certificate, then the HTTP connection manager to nginx). B's certificate
# lives in a directory laid out like a Kubernetes secret volume (files are symlinks through
# ..data, which is swapped atomically). While a load runs through A, B's certificate is
# re-issued: every request gets its 200, new handshakes present the new serial, and B counts the
# rotation. A key that does not match the certificate is refused with a clear log line and
# counted, and the certificate in use stays; touching a file or putting back the bytes in use
# rebuilds nothing. Needs no root.
# checks: 36
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=test/lib/testlib.sh
source "$root/test/lib/testlib.sh"
t_require_cmd curl openssl nginx h2load
# shellcheck source=test/lib/loopback.sh
source "$root/test/lib/loopback.sh"
# shellcheck source=test/lib/mtls.sh
source "$root/test/lib/mtls.sh"
REMORA=$LB_BIN/remora
CTL=$LB_BIN/remoractl
work=$LB_WORK

for b in "$REMORA" "$CTL"; do [[ -x $b ]] || t_stop "no $b (build it first)"; done

B_ID=spiffe://cluster.local/ns/default/sa/b

# --- identities: one root, A's client certificate, B's first certificate ---------------------
issue() { # issue DIR SPIFFE_ID
    "$CTL" certs issue --ca "$work/root" --spiffe-id "$2" --out "$1" >>"$work/certs.log" 2>&1
}
"$CTL" certs root --out "$work/root" >"$work/certs.log" 2>&1 || t_stop "remoractl certs root"
issue "$work/a-id" spiffe://cluster.local/ns/default/sa/a || t_stop "issue A's certificate"
issue "$work/b-v1" "$B_ID" || t_stop "issue B's certificate"

# B's watched directory, the way the kubelet writes a secret volume: cert-chain.pem ->
# ..data/cert-chain.pem, ..data -> ..v1; an update fills ..v2 and renames a new ..data over
# the old link in one step.
certs=$work/b-certs
mkdir -p "$certs/..v1"
cp "$work/b-v1"/{cert-chain.pem,key.pem,root-cert.pem} "$certs/..v1/"
ln -s ..v1 "$certs/..data"
for f in cert-chain.pem key.pem root-cert.pem; do ln -s "..data/$f" "$certs/$f"; done
# swap_in VERSION SRC_DIR — publishes SRC_DIR's files as the volume's new content.
swap_in() {
    mkdir "$certs/..$1"
    cp "$2"/{cert-chain.pem,key.pem,root-cert.pem} "$certs/..$1/"
    ln -s "..$1" "$certs/..data_tmp"
    mv -T "$certs/..data_tmp" "$certs/..data"
}

# --- the app --------------------------------------------------------------------------------
mkdir -p "$work/nginx/logs"
cat >"$work/nginx/nginx.conf.in" <<EOF
worker_processes 1;
error_log $work/nginx/logs/error.log;
pid $work/nginx/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  keepalive_requests 100000;
  server {
    listen 127.0.0.1:@APP@;
    location / { return 200 "app\n"; }
  }
}
EOF
lb_serve APP "$work/nginx.log" lb_write_exec "$work/nginx/nginx.conf" \
    "$(cat "$work/nginx/nginx.conf.in")" nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" \
    -g 'daemon off;' ||
    t_stop "nginx listens: $(cat "$work/nginx.log" "$work/nginx/logs/error.log")"

# B terminates TLS on every connection (no tls_inspector); A trusts the root in its own directory.
# B looks at its files every second besides the fs events on the directory: the in-place write
# below lands in ..v2, a directory nobody watches, so only that look can see it. Its 24 h
# certificates are outside a 12 h expiry window (the default 7 d window would hold them).
MTLS_TLS_INSPECTOR=0 mtls_inbound_config "$work/b.yaml" 0 0 "$certs" "$APP"
lb_remora b "$work/b.yaml" --concurrency 2 --drain-time-s 1 --cert-check-interval 1s \
    --cert-expiry-warn 12h || t_stop "B starts: $(cat "$work/b.log")"
B_PID=$LB_PID B_ADMIN=$LB_ADMIN B_PORT=${LB_PORT[inbound]}
mtls_outbound_config "$work/a.yaml" 0 0 "$B_PORT" "$work/a-id" "$B_ID"
lb_remora a "$work/a.yaml" --concurrency 2 --drain-time-s 1 || t_stop "A starts: $(cat "$work/a.log")"
A_PID=$LB_PID A_ADMIN=$LB_ADMIN A_PORT=${LB_PORT[outbound]}

# served_serial — the serial of the certificate B presents to a new connection.
served_serial() {
    openssl s_client -connect "127.0.0.1:$B_PORT" -cert "$work/a-id/cert-chain.pem" \
        -key "$work/a-id/key.pem" -CAfile "$work/root/root-cert.pem" </dev/null 2>/dev/null |
        openssl x509 -noout -serial
}
file_serial() { openssl x509 -in "$1" -noout -serial; }
# stat_is ADMIN NAME WANT — the stat is WANT now.
stat_is() { [[ $(stat "$1" "$2") == "$3" ]]; }
# load_past N — A has answered N requests in all.
load_past() { (($(stat "$A_ADMIN" http.outbound.downstream_rq_total) + 0 >= $1)); }
via_a() { curl -s -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$A_PORT/$1"; }

t_eq "mTLS through A and B answers" "$(via_a first)" 200
t_eq "B presents its first certificate" "$(served_serial)" "$(file_serial "$work/b-v1/cert-chain.pem")"
t_eq "B defines the rotation counters at zero" \
    "$(stat "$B_ADMIN" server.cert_rotation_ok) $(stat "$B_ADMIN" server.cert_rotation_failed)" "0 0"
t_eq "no certificate of B is within a 12 h expiry window" \
    "$(stat "$B_ADMIN" server.cert_expiring_soon)" 0

# --- rotation under load --------------------------------------------------------------------
issue "$work/b-v2" "$B_ID" || t_stop "re-issue B's certificate"
N=20000
h2load --h1 -n "$N" -c 4 "http://127.0.0.1:$A_PORT/load" >"$work/h2load.log" 2>&1 &
LOAD_PID=$!
LB_PIDS+=("$LOAD_PID")
t_until 10 load_past 1000 # the load runs
swap_in v2 "$work/b-v2"
rm -rf "$certs/..v1" # the kubelet removes the old content once ..data points away from it
if wait_stat "$B_ADMIN" server.cert_rotation_ok 1; then
    t_ok "B rotates when the volume's ..data is swapped"
else
    t_fail "B rotates when the volume's ..data is swapped" "$(tail -n 5 "$work/b.log")"
fi
if lb_alive "$LOAD_PID"; then
    t_ok "the rotation happened while the load was running"
else
    t_fail "the rotation happened while the load was running" "the load ended first; raise N"
fi
t_eq "new connections to B get the new certificate" "$(served_serial)" \
    "$(file_serial "$work/b-v2/cert-chain.pem")"
new_serial=$(file_serial "$work/b-v2/cert-chain.pem" | cut -d= -f2 | tr 'A-F' 'a-f')
t_contains "B's /certs shows the new serial" "$(curl -s "http://127.0.0.1:$B_ADMIN/certs")" \
    "\"serial_number\": \"$new_serial\""
t_contains "B logs the rotation and the file that changed" "$(grep 'certificates rotated' "$work/b.log")" \
    "$certs/cert-chain.pem"

wait "$LOAD_PID"
load_rc=$?
summary=$(grep -E '^(requests|status codes):' "$work/h2load.log" | tr '\n' ' ')
t_eq "the load ran to completion" "$load_rc" 0
t_contains "every request of the load was answered" "$summary" \
    "requests: $N total, $N started, $N done, $N succeeded, 0 failed, 0 errored, 0 timeout"
t_contains "every answer was a 200" "$summary" "status codes: $N 2xx, 0 3xx, 0 4xx, 0 5xx"

# A's pooled connections to B still run on the old certificate; a burst that needs more of them
# makes A open new ones, which must verify B's new certificate.
before=$(stat "$A_ADMIN" cluster.b.ssl.handshake)
h2load --h1 -n 400 -c 12 "http://127.0.0.1:$A_PORT/burst" >"$work/burst.log" 2>&1
t_contains "a burst after the rotation is all 200" "$(grep '^status codes:' "$work/burst.log")" \
    "status codes: 400 2xx, 0 3xx, 0 4xx, 0 5xx"
after=$(stat "$A_ADMIN" cluster.b.ssl.handshake)
t_run "...over new handshakes with B's new certificate ($before then $after)" test "$after" -gt "$before"
t_eq "A saw no TLS failure" "$(stat "$A_ADMIN" cluster.b.ssl.connection_error)" 0

# --- a key that does not match the certificate ------------------------------------------------
issue "$work/other" spiffe://cluster.local/ns/default/sa/other || t_stop "issue another key"
cat "$work/other/key.pem" >"$certs/key.pem" # in place, through the symlinks into ..v2
if wait_stat "$B_ADMIN" server.cert_rotation_failed 1; then
    t_ok "B refuses a key that does not match its certificate"
else
    t_fail "B refuses a key that does not match its certificate" "$(tail -n 5 "$work/b.log")"
fi
line=$(grep 'certificate rotation failed' "$work/b.log")
t_contains "the log says the key does not match" "$line" "does not match"
t_contains "...and names the key file" "$line" "$certs/key.pem"
t_eq "no rotation is counted for it" "$(stat "$B_ADMIN" server.cert_rotation_ok)" 1
t_eq "traffic still flows" "$(via_a after-bad-key)" 200
t_eq "B still presents the certificate in use" "$(served_serial)" \
    "$(file_serial "$work/b-v2/cert-chain.pem")"

# --- no flapping ------------------------------------------------------------------------------
touch "$certs/..data/cert-chain.pem" "$certs/..data/key.pem"
# That nothing happens is the behaviour under test: two periodic looks (one a second) and a
# settle delay must have had their chance, so this wait is time passing, not synchronisation.
sleep 2.5
t_eq "touching the files, or leaving the bad key there, rebuilds nothing" \
    "$(stat "$B_ADMIN" server.cert_rotation_ok) $(stat "$B_ADMIN" server.cert_rotation_failed)" "1 1"
cat "$work/b-v2/key.pem" >"$certs/key.pem"
t_until 5 grep -q 'hold the content in use again: nothing to rotate' "$work/b.log"
t_eq "putting back the key in use rebuilds nothing either" \
    "$(stat "$B_ADMIN" server.cert_rotation_ok) $(stat "$B_ADMIN" server.cert_rotation_failed)" "1 1"

# --- rotations in a row, on both sides, under load ------------------------------------------
# B's volume is swapped four times 300 ms apart while A's own client certificate is replaced in
# place (each file renamed over): open connections finish on what they started with, new ones
# take the newest pair, and swapped-out configs let go of their pools.
for v in 3 4 5 6; do issue "$work/b-v$v" "$B_ID" || t_stop "issue B's certificate v$v"; done
issue "$work/a-v2" spiffe://cluster.local/ns/default/sa/a || t_stop "re-issue A's certificate"
done_before=$(stat "$A_ADMIN" http.outbound.downstream_rq_total)
h2load --h1 -n "$N" -c 8 "http://127.0.0.1:$A_PORT/again" >"$work/h2load2.log" 2>&1 &
LOAD_PID=$!
LB_PIDS+=("$LOAD_PID")
t_until 10 load_past $((done_before + 1000)) # the load runs
# Swaps 300 ms apart, while the load runs: the spacing is the scenario, not a wait for an event.
prev=v2
for v in 3 4 5 6; do
    swap_in "v$v" "$work/b-v$v"
    rm -rf "$certs/..$prev"
    prev=v$v
    if ((v == 4)); then
        for f in cert-chain.pem key.pem; do
            cp "$work/a-v2/$f" "$work/a-id/.$f.new" && mv "$work/a-id/.$f.new" "$work/a-id/$f"
        done
    fi
    sleep 0.3
done
want=$(file_serial "$work/b-v6/cert-chain.pem")
serves_last() { [[ $(served_serial) == "$want" ]]; }
t_until 5 serves_last
t_eq "after four swaps in a row B presents the last certificate" "$(served_serial)" "$want"
ok=$(stat "$B_ADMIN" server.cert_rotation_ok)
t_run "B rotated again ($ok rotations in all)" test "$ok" -ge 2
t_eq "A rotated its own certificate" "$(stat "$A_ADMIN" server.cert_rotation_ok)" 1
a_serial=$(file_serial "$work/a-v2/cert-chain.pem" | cut -d= -f2 | tr 'A-F' 'a-f')
t_contains "A's /certs shows its new serial" "$(curl -s "http://127.0.0.1:$A_ADMIN/certs")" \
    "\"serial_number\": \"$a_serial\""
wait "$LOAD_PID"
summary=$(grep -E '^(requests|status codes):' "$work/h2load2.log" | tr '\n' ' ')
t_contains "every request across the rotations was answered 200" "$summary" \
    "$N succeeded, 0 failed, 0 errored, 0 timeout status codes: $N 2xx, 0 3xx, 0 4xx, 0 5xx"
h2load --h1 -n 400 -c 12 "http://127.0.0.1:$A_PORT/burst2" >"$work/burst2.log" 2>&1
t_contains "new connections from A with its new certificate to B with its new one answer 200" \
    "$(grep '^status codes:' "$work/burst2.log")" "status codes: 400 2xx, 0 3xx, 0 4xx, 0 5xx"
t_eq "B refused no client certificate" "$(stat "$B_ADMIN" listener.inbound.ssl.fail_verify_error)" 0

# --- the expiry window ------------------------------------------------------------------------
# Leaves live 24 h: a 2-day window holds A's own certificate.
stop_remora() { # stop_remora PID NAME — SIGTERM: exit status 0 (its log is scanned at exit)
    lb_stop "$1"
    t_eq "$2 exits cleanly" "$LB_STATUS" 0
}
stop_remora "$A_PID" a
lb_remora a2 "$work/a.yaml" --concurrency 1 --drain-time-s 1 --cert-expiry-warn 2d ||
    t_stop "A starts again: $(cat "$work/a2.log")"
A_PID=$LB_PID A_ADMIN=$LB_ADMIN A_PORT=${LB_PORT[outbound]}
t_eq "a certificate within --cert-expiry-warn is counted" \
    "$(stat "$A_ADMIN" server.cert_expiring_soon)" 1
t_contains "...and logged with its file" "$(grep 'expires in' "$work/a2.log")" \
    "$work/a-id/cert-chain.pem"
t_eq "traffic through the restarted A" "$(via_a again)" 200
stop_remora "$A_PID" a2
stop_remora "$B_PID" b

t_summary
