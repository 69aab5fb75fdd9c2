#!/usr/bin/env bash
# Story: connections that an LDS push drains are closed once --drain-time-s is over, as in
# Envoy. Remora runs with --drain-time-s 4 against a control plane serving two listeners: tcp,
# whose plaintext and TLS chains (told apart by the tls_inspector) both relay to an echo app
# with tcp_proxy, and web, whose connection manager routes to an app that answers after a
# minute. One LDS push changes tcp's plaintext chain and web's chain and leaves tcp's TLS chain
# as it was. Then: the TCP session on the changed chain still echoes after the push, and is
# closed no sooner than 3 s after remora ACKed it (the 4 s deadline, counted from the install),
# but closed (counted as the echo cluster's upstream_cx_destroy_local); the HTTP request in
# flight on web is cut without a response at the deadline and logged with response flag LR;
# the session on the unchanged TLS chain still echoes after that and stays open. SIGTERM exits 0. Loopback, needs no root; needs node and npm (the control
# plane, as in test_xds.sh).
# checks: 13
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=test/lib/testlib.sh
source "$root/test/lib/testlib.sh"
t_require_cmd curl jq python3 mkfifo socat
# shellcheck source=test/lib/loopback.sh
source "$root/test/lib/loopback.sh"
work=$LB_WORK
[[ -x $LB_BIN/remora ]] || t_stop "no $LB_BIN/remora (build it first)"
# shellcheck source=test/lib/xds.sh
source "$root/test/lib/xds.sh"
certs=$root/test/data/certs

# The echo app behind tcp_proxy, and an HTTP app that logs each request as it arrives and
# answers it a minute later.
cat >"$work/slow.py" <<'EOF'
import http.server, sys, time
port, log = int(sys.argv[1]), open(sys.argv[2], "a")
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        log.write("%s\n" % self.path)
        log.flush()
        time.sleep(60)
        self.send_response(200)
        self.send_header("content-length", "4")
        self.end_headers()
        self.wfile.write(b"late")
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
EOF
: >"$work/slow.req"
lb_serve ECHO "$work/echo.log" socat TCP-LISTEN:@ECHO@,bind=127.0.0.1,reuseaddr,fork EXEC:cat ||
    t_stop "the echo app does not listen"
lb_serve SLOW "$work/slow.log" python3 "$work/slow.py" @SLOW@ "$work/slow.req" ||
    t_stop "the slow app does not listen"

# A TCP client (TLS with "tls") holding one connection, driven line by line through a fifo:
# "ECHO WORD" answers what came back ("EOF" once the connection is gone); "CLOSED" answers
# "closed MS" (CLOCK_MONOTONIC, ms) once the server closed it, else "open".
cat >"$work/tclient.py" <<'EOF'
import select, socket, ssl, sys, time
port, fifo = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port), timeout=5)
if len(sys.argv) > 3:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s = ctx.wrap_socket(s)
gone = False
def read_some():
    global gone
    try:
        data = s.recv(4096)
    except (OSError, ssl.SSLError):
        data = b""
    if not data:
        gone = True
    return data
with open(fifo) as f:
    for line in f:
        cmd = line.split()
        if cmd[0] == "ECHO":
            got = b""
            if not gone:
                try:
                    s.sendall((cmd[1] + "\n").encode())
                except (OSError, ssl.SSLError):
                    gone = True
            while not gone and not got.endswith(b"\n"):
                got += read_some()
            print(got.decode().strip() if got.endswith(b"\n") else "EOF", flush=True)
        elif cmd[0] == "CLOSED":
            if not gone and (s.pending() if hasattr(s, "pending") else 0) == 0:
                if select.select([s], [], [], 0.3)[0]:
                    read_some()
            print("closed %.3f" % (time.monotonic_ns() / 1e6) if gone else "open", flush=True)
EOF

# tcp_proxy NAME — a tcp_proxy to cluster echo with stat prefix NAME.
tcp_proxy() {
    echo '{"name": "envoy.filters.network.tcp_proxy", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy", "stat_prefix": "'"$1"'", "cluster": "echo"}}'
}
static_cluster() { # NAME PORT
    echo '{"name": "'"$1"'", "type": "STATIC", "connect_timeout": "1s", "load_assignment": {"cluster_name": "'"$1"'", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": '"$2"'}}}}]}]}}'
}

# resources VERSION — cluster echo and slow; listener tcp: a plaintext chain (tcp_proxy with
# stat prefix PLAIN) and a TLS chain; listener web: routes to slow with no timeout, stat prefix
# WEB, an access log in Envoy's default format. The route is not checked against the clusters
# (validate_clusters): the listener may come before the clusters are installed.
resources() {
    cat >"$work/res.tmp" <<EOF
{"version": "$1", "resources": {
 "$CDS": [$(static_cluster echo "$ECHO"), $(static_cluster slow "$SLOW")],
 "$LDS": [{"name": "tcp", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
   "listener_filters": [{"name": "envoy.filters.listener.tls_inspector", "typed_config":
     {"@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"}}],
   "filter_chains": [
    {"name": "plain", "filter_chain_match": {"transport_protocol": "raw_buffer"},
     "filters": [$(tcp_proxy "$PLAIN")]},
    {"name": "tls", "filter_chain_match": {"transport_protocol": "tls"},
     "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
       "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
       "common_tls_context": {"tls_certificates": [{"certificate_chain": {"filename": "$certs/server.pem"},
         "private_key": {"filename": "$certs/server.key"}}]}}},
     "filters": [$(tcp_proxy tls)]}]},
  {"name": "web", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
   "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
     "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
     "stat_prefix": "$WEB", "route_config": {"validate_clusters": false, "virtual_hosts": [{"name": "all", "domains": ["*"],
      "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "slow", "timeout": "0s"}}]}]},
     "access_log": [{"name": "envoy.access_loggers.file", "typed_config": {
       "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
       "path": "$work/web.log"}}],
     "http_filters": [{"name": "envoy.filters.http.router", "typed_config":
      {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]}]}]}}
EOF
    mv "$work/res.tmp" "$work/res.json"
}

XDS_NO_LISTENER=1 xds_bootstrap "$work/boot.yaml" GRPC @CP@

declare -A CFD CN
# client_start NAME PORT [tls] — a client (tclient.py) named NAME holding one connection to PORT.
client_start() {
    local fd
    mkfifo "$work/$1.in"
    bg "$work/$1.out" python3 "$work/tclient.py" "$2" "$work/$1.in" "${@:3}"
    exec {fd}>"$work/$1.in"
    CFD[$1]=$fd CN[$1]=0
}
_lines_at_least() { [[ $(wc -l <"$1") -ge $2 ]]; }
# ask NAME LINE — sends LINE to client NAME; its answer is in ANSWER ("TIMEOUT" if none came).
ask() {
    echo "$2" >&"${CFD[$1]}"
    CN[$1]=$((CN[$1] + 1))
    ANSWER=TIMEOUT
    t_until 10 _lines_at_least "$work/$1.out" "${CN[$1]}" || return 0
    ANSWER=$(sed -n "${CN[$1]}p" "$work/$1.out")
}
acked() {
    cp_has ".event == \"request\" and .type_url == \"$2\" and .version_info == \"$1\" and .response_nonce != \"\" and .error_detail == null"
}
push() {
    resources "$1"
    t_until 10 acked "$1" "$2"
}
listener_port() { sed -n "s/.* listener '$1' on .*:\([0-9]*\).*/\1/p" "$work/drain.log" | tail -n 1; }

PLAIN=plain1 WEB=web1
resources 1
: >"$XDS_LOG"
cp_start '' || t_stop "the control plane does not start: $(tail -n 5 "$work/cp.out")"
sed -i "s/@CP@/$CP/" "$work/boot.yaml"
lb_remora drain "$work/boot.yaml" --concurrency 2 --drain-time-s 4 ||
    t_stop "remora does not become ready"
R=$LB_PID ADMIN=$LB_ADMIN
t_until 10 test -n "$(listener_port web)" || t_stop "the xDS listeners did not start"
TCP=$(listener_port tcp) WEB_PORT=$(listener_port web)

client_start plain "$TCP"
client_start tls "$TCP" tls
ask plain "ECHO p1"
ask tls "ECHO t1"
t_eq "both chains of listener tcp relay to the echo app" "$(sed -n 1p "$work/plain.out") $ANSWER" "p1 t1"
bg "$work/curl.out" curl -s -m 90 -o /dev/null -w '%{http_code}\n' "http://127.0.0.1:$WEB_PORT/long"
curl_pid=$LAST_PID
t_run "the long request on web reached the slow app" t_until 10 grep -q /long "$work/slow.req"

PLAIN=plain2 WEB=web2
t_run "an LDS push changing tcp's plaintext chain and web's chain is ACKed" push 2 "$LDS"
ask plain "ECHO p2"
t_eq "the session on the changed chain still relays after the push" "$ANSWER" p2
closed() {
    ask plain CLOSED
    [[ $ANSWER == closed* ]]
}
t_run "the session on the changed chain is closed at the drain deadline" t_until 20 closed
ack_t=$(jq -s "[.[] | select(.event == \"request\" and .type_url == \"$LDS\" and .version_info == \"2\" and .response_nonce != \"\")][0].t" "$XDS_LOG")
closed_t=$(tail -n 1 "$work/plain.out")
closed_t=${closed_t#closed }
after=$(awk -v c="$closed_t" -v a="$ack_t" 'BEGIN { printf "%d", c - a }')
echo "# the session on the changed chain was closed $after ms after remora ACKed the push"
t_run "it was closed no sooner than 3 s after the ACK (the deadline is 4 s)" test "$after" -ge 3000
t_eq "remora closed it toward the echo app (upstream_cx_destroy_local)" \
    "$(stat "$ADMIN" cluster.echo.upstream_cx_destroy_local)" 1
curl_done() { ! kill -0 "$curl_pid" 2>/dev/null; }
t_run "the long HTTP request on the changed chain is cut by the deadline" t_until 20 curl_done
t_eq "it got no response" "$(cat "$work/curl.out")" 000
# Envoy's default format: "METHOD PATH PROTOCOL" CODE FLAGS ...
lr_logged() { grep -q '"GET /long HTTP/1.1" 0 LR ' "$work/web.log" 2>/dev/null; }
t_run "its access log entry has response flag LR" t_until 10 lr_logged
ask tls "ECHO t2"
t_eq "the session on the unchanged TLS chain relays past the deadline" "$ANSWER" t2
ask tls CLOSED
t_eq "and stays open" "$ANSWER" open

kill -TERM "$R"
lb_wait "$R"
t_eq "SIGTERM exits 0" "$LB_STATUS" 0
t_summary
