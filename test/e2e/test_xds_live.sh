#!/usr/bin/env bash
# Story: xDS updates reach connections that are already open, as in Envoy. On ONE keep-alive
# connection (the client's local port stays the same, it never reconnects, and remora counted
# one downstream connection), the next request after an EDS push that moves cluster web from app
# A to app B reaches B; after an RDS push that points the route at cluster api, it reaches api's
# app C; after a CDS push that makes api a static cluster on app B, it reaches B. On one HTTP/2
# connection with a request in flight, a CDS push reaches the next stream while the first
# finishes on the config it started with. An LDS push
# that changes one of the two filter chains of listener edge (plaintext and TLS, told apart by
# the tls_inspector) closes the idle connection on the changed chain and keeps the one on the
# unchanged chain, which serves on; a new connection on the changed chain gets the new config.
# Then, while clients keep sending on keep-alive connections, an EDS push removes app A from
# web: once remora ACKed it, A gets no more requests, and the clients never had to reconnect;
# the time from the push to the ACK and to the last request A got is printed. Upstream
# connections survive pushes that do not concern them (apps D and E keep connections alive): on
# the one keep-alive connection, after web is moved to D and E, an EDS push that only re-weights
# them opens no upstream connection (cluster.web.upstream_cx_total stays), nor does one that
# removes E (nothing to D is closed); a CDS push that changes web's connect_timeout (its
# connection settings) makes new connections. SIGTERM exits 0.
# State of the world (the delta protocol takes the same path to the data plane). Loopback,
# needs no root; needs node and npm (the control plane, as in test_xds.sh).
# checks: 37
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=test/lib/testlib.sh
source "$root/test/lib/testlib.sh"
t_require_cmd curl jq python3 mkfifo
# shellcheck source=test/lib/loopback.sh
source "$root/test/lib/loopback.sh"
work=$LB_WORK
[[ -x $LB_BIN/remora ]] || t_stop "no $LB_BIN/remora (build it first)"
# shellcheck source=test/lib/xds.sh
source "$root/test/lib/xds.sh"
certs=$root/test/data/certs

# Apps that say who they are, and log each request: its arrival (CLOCK_MONOTONIC, ms) and the
# port it came from.
cat >"$work/app.py" <<'EOF'
import http.server, os, sys, threading, time
name, port, log = sys.argv[1], int(sys.argv[2]), open(sys.argv[3], "a")
keep_alive = len(sys.argv) > 4  # HTTP/1.1: connections stay open between requests
lock = threading.Lock()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with lock:
            log.write("%.3f %d\n" % (time.monotonic_ns() / 1e6, self.client_address[1]))
            log.flush()
        if self.path == "/slow":  # answered once the story creates the file "release"
            release = os.path.join(os.path.dirname(log.name), "release")
            for _ in range(200):
                if os.path.exists(release):
                    break
                time.sleep(0.1)
        self.send_response(200)
        self.send_header("content-length", str(len(name)))
        self.end_headers()
        self.wfile.write(name.encode())
    def log_message(self, *a):
        pass
if keep_alive:
    H.protocol_version = "HTTP/1.1"
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
EOF
for app in A B C D E; do
    : >"$work/app$app.req"
    keep=()
    [[ $app == [DE] ]] && keep=(keep-alive)
    lb_serve "APP_$app" "$work/app$app.log" python3 "$work/app.py" "$app" "@APP_$app@" \
        "$work/app$app.req" "${keep[@]}" || t_stop "app $app does not listen"
done

# A client holding one connection (TLS with "tls"), driven line by line through a fifo:
# "GET PATH" answers "LOCALPORT STATUS BODY CONNECTION-HEADER" (ERR and the error once the
# connection is gone: it never opens another); "CLOSED" answers whether the server closed it.
cat >"$work/client.py" <<'EOF'
import http.client, select, socket, ssl, sys
port, fifo = int(sys.argv[1]), sys.argv[2]
if len(sys.argv) > 3:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=ctx)
else:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
conn.connect()
conn.auto_open = 0  # never reconnect behind the story's back
local = conn.sock.getsockname()[1]
with open(fifo) as f:
    for line in f:
        cmd = line.split()
        try:
            if cmd[0] == "CLOSED":
                s = conn.sock
                r = select.select([s], [], [], 0.5)[0] if s else [True]
                print("closed" if not s or (r and s.recv(1, socket.MSG_PEEK) == b"") else "open",
                      flush=True)
                continue
            conn.request("GET", cmd[1])
            resp = conn.getresponse()
            body = resp.read().decode()
            print(local, resp.status, body, resp.getheader("connection", "-"), flush=True)
        except Exception as e:
            print("ERR", type(e).__name__, flush=True)
EOF

# Clients that keep sending GET / on one keep-alive connection each until a file exists, then
# say how many requests they sent and how many connections they opened.
cat >"$work/load.py" <<'EOF'
import http.client, os, sys, threading
port, n, stop = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
counts = {"rq": 0, "cx": 0, "err": 0}
lock = threading.Lock()
def run():
    conn, opened = None, 0
    while not os.path.exists(stop):
        if conn is None or conn.sock is None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.connect()
            opened += 1
        try:
            conn.request("GET", "/")
            conn.getresponse().read()
            with lock:
                counts["rq"] += 1
        except Exception:
            conn.close()
            with lock:
                counts["err"] += 1
    with lock:
        counts["cx"] += opened
ts = [threading.Thread(target=run) for _ in range(n)]
for t in ts:
    t.start()
for t in ts:
    t.join()
print("requests %d connections %d errors %d" % (counts["rq"], counts["cx"], counts["err"]),
      flush=True)
EOF

# ep PORT [WEIGHT]
ep() { echo "{\"endpoint\": {\"address\": {\"socket_address\": {\"address\": \"127.0.0.1\", \"port_value\": $1}}}${2:+, \"load_balancing_weight\": $2}}"; }

# hcm NAME BODY — a connection manager answering every request with BODY.
hcm() {
    cat <<EOF
{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
 "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
 "stat_prefix": "$1", "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"],
  "routes": [{"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": "$2"}}}]}]},
 "http_filters": [{"name": "envoy.filters.http.router", "typed_config":
  {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}
EOF
}

# resources VERSION — the control plane's resource file: cluster web (EDS, connect_timeout
# WEB_TIMEOUT, 1s by default) on the apps of WEB_PORTS (PORT or PORT:WEIGHT), cluster api (EDS on app C, or STATIC on port API_STATIC when set), route
# configuration r1 sending everything to ROUTE_TO, and listener edge: a plaintext chain that
# answers PLAIN_BODY and a TLS chain that answers T.
resources() {
    local web='' p api
    for p in $WEB_PORTS; do web+="${web:+, }$(ep "${p%%:*}" "$([[ $p == *:* ]] && echo "${p#*:}")")"; done
    api='{"name": "api", "type": "EDS", "eds_cluster_config": {"eds_config": {"ads": {}}}, "connect_timeout": "1s"}'
    [[ -z ${API_STATIC:-} ]] || api='{"name": "api", "type": "STATIC", "connect_timeout": "1s", "load_assignment": {"cluster_name": "api", "endpoints": [{"lb_endpoints": ['$(ep "$API_STATIC")']}]}}'
    cat >"$work/res.tmp" <<EOF
{"version": "$1", "resources": {
 "$CDS": [{"name": "web", "type": "EDS", "eds_cluster_config": {"eds_config": {"ads": {}}},
           "connect_timeout": "${WEB_TIMEOUT:-1s}"}, $api],
 "$EDS": [{"cluster_name": "web", "endpoints": [{"lb_endpoints": [$web]}]},
          {"cluster_name": "api", "endpoints": [{"lb_endpoints": [$(ep "$APP_C")]}]}],
 "$RDS": [{"name": "r1", "virtual_hosts": [{"name": "all", "domains": ["*"],
           "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "$ROUTE_TO"}}]}]}],
 "$LDS": [{"name": "edge", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
   "listener_filters": [{"name": "envoy.filters.listener.tls_inspector", "typed_config":
     {"@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"}}],
   "filter_chains": [
    {"name": "plain", "filter_chain_match": {"transport_protocol": "raw_buffer"},
     "filters": [$(hcm plain "$PLAIN_BODY")]},
    {"name": "tls", "filter_chain_match": {"transport_protocol": "tls"},
     "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
       "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
       "common_tls_context": {"tls_certificates": [{"certificate_chain": {"filename": "$certs/server.pem"},
         "private_key": {"filename": "$certs/server.key"}}]}}},
     "filters": [$(hcm tls T)]}]}]}}
EOF
    mv "$work/res.tmp" "$work/res.json"
}

xds_bootstrap "$work/boot.yaml" GRPC @CP@

declare -A CFD CN
# client_start NAME PORT [tls] — a client (client.py) named NAME holding one connection to PORT.
client_start() {
    local fd
    mkfifo "$work/$1.in"
    bg "$work/$1.out" python3 "$work/client.py" "$2" "$work/$1.in" "${@:3}"
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
# The answer's body, and its local port.
body_of() {
    local port body
    read -r port _ body _ <<<"$ANSWER"
    [[ $port == ERR || $port == TIMEOUT ]] && body=$ANSWER
    echo "$body"
}
port_of() { echo "${ANSWER%% *}"; }
# acked VERSION TYPE — remora ACKed VERSION of TYPE.
acked() {
    cp_has ".event == \"request\" and .type_url == \"$2\" and .version_info == \"$1\" and .response_nonce != \"\" and .error_detail == null"
}
# push VERSION TYPE — writes resources VERSION and waits until remora ACKed it for TYPE.
push() {
    resources "$1"
    t_until 10 acked "$1" "$2"
}

WEB_PORTS=$APP_A ROUTE_TO=web API_STATIC='' PLAIN_BODY=P1
resources 1
: >"$XDS_LOG"
cp_start '' || t_stop "the control plane does not start: $(tail -n 5 "$work/cp.out")"
sed -i "s/@CP@/$CP/" "$work/boot.yaml"
lb_remora live "$work/boot.yaml" --concurrency 2 || t_stop "remora does not become ready"
R=$LB_PID ADMIN=$LB_ADMIN HTTP=${LB_PORT[http]}
EDGE=$(sed -n "s/.* listener 'edge' on .*:\([0-9]*\).*/\1/p" "$work/live.log" | tail -n 1)

# ---- (a)-(c): one keep-alive connection follows EDS, RDS and CDS pushes ---------------------
client_start one "$HTTP"
ask one "GET /"
t_eq "the keep-alive connection reaches web's app A" "$(body_of)" A
first_port=$(port_of)

WEB_PORTS=$APP_B
t_run "an EDS push moving web to app B is ACKed" push 2 "$EDS"
ask one "GET /"
t_eq "EDS: the next request on the same connection reaches B" "$(body_of)" B

ROUTE_TO=api
t_run "an RDS push sending / to cluster api is ACKed" push 3 "$RDS"
ask one "GET /"
t_eq "RDS: the next request on the same connection follows the new route to C" "$(body_of)" C

API_STATIC=$APP_B
t_run "a CDS push making api a static cluster on app B is ACKed" push 4 "$CDS"
ask one "GET /"
t_eq "CDS: the next request on the same connection reaches B" "$(body_of)" B
t_eq "every request went on the one connection (same local port, no reconnect)" \
    "$(cut -d' ' -f1 "$work/one.out" | sort -u)" "$first_port"
t_eq "remora counted one downstream connection on listener http" \
    "$(stat "$ADMIN" http.http.downstream_cx_total)" 1

# ---- (c2): a busy HTTP/2 connection takes a push at its next stream --------------------------
# One HTTP/2 connection with a request in flight (to app B, which answers /slow when told): a
# CDS push moves api to app C; the next stream on the same connection reaches C while the first
# one finishes on B, on the config it started with.
mkfifo "$work/h2.in"
exec {h2fd}<>"$work/h2.in" # read-write: opening it does not wait for the reader
bg "$work/h2.out" node "$here/http2/session.js" "http://127.0.0.1:$HTTP" "$work/h2.in"
b_seen=$(wc -l <"$work/appB.req")
echo "GET /slow" >&"$h2fd"
t_until 5 test "$(wc -l <"$work/appB.req")" -gt "$b_seen"
API_STATIC=''
t_run "with a stream in flight on an HTTP/2 connection, a CDS push moving api to app C is ACKed" \
    push 4h2 "$CDS"
echo "GET /" >&"$h2fd"
t_until 5 _lines_at_least "$work/h2.out" 1
t_eq "HTTP/2: the next stream on the busy connection reaches C, the first still in flight" \
    "$(sed -n 1p "$work/h2.out")" "/ 200 C"
touch "$work/release"
t_until 10 _lines_at_least "$work/h2.out" 2
t_eq "HTTP/2: the stream in flight finishes on the config it started with (B)" \
    "$(sed -n 2p "$work/h2.out")" "/slow 200 B"
t_eq "HTTP/2: one connection carried both" "$(stat "$ADMIN" http.http.downstream_cx_http2_total)" 1
exec {h2fd}>&-
API_STATIC=$APP_B # back as (c) left it, for what follows
t_run "a CDS push making api a static cluster on app B again is ACKed" push 4h2b "$CDS"

# ---- (d): an LDS push that changes one chain of a listener drains only that chain ----------
client_start plain "$EDGE"
client_start tls "$EDGE" tls
ask plain "GET /"
t_eq "the plaintext chain of edge answers P1" "$(body_of)" P1
ask tls "GET /"
t_eq "the TLS chain of edge answers T" "$(body_of)" T
tls_port=$(port_of)

PLAIN_BODY=P2
t_run "an LDS push changing edge's plaintext chain is ACKed" push 5 "$LDS"
closed() {
    ask plain CLOSED
    [[ $ANSWER == closed ]]
}
t_run "the idle connection on the changed chain is closed" t_until 5 closed
ask tls "GET /"
t_eq "the connection on the unchanged TLS chain serves on" "$(port_of) $(body_of)" "$tls_port T"
t_eq "a new connection on the changed chain gets its new config" \
    "$(curl -s -m 2 "http://127.0.0.1:$EDGE/")" P2
ask one "GET /"
t_eq "the connection on listener http, whose chain did not change, serves on" \
    "$(port_of) $(body_of)" "$first_port B"

# ---- (e): an endpoint removed under load gets no request once the push is ACKed ------------
API_STATIC='' ROUTE_TO=web WEB_PORTS="$APP_A $APP_B"
t_run "web on apps A and B is ACKed" push 6 "$EDS"
bg "$work/load.out" python3 "$work/load.py" "$HTTP" 4 "$work/load.stop"
load_pid=$LAST_PID
a_count() { wc -l <"$work/appA.req"; }
a_grows() { (($(a_count) > $1)); }
before=$(a_count)
t_run "the clients reach app A before the push" t_until 10 a_grows "$((before + 20))"
WEB_PORTS=$APP_B
resources 7
t_until 10 acked 7 "$EDS"
at_ack=$(a_count)
sleep 1
after=$(a_count)
touch "$work/load.stop"
t_until 10 grep -q requests "$work/load.out"
wait "$load_pid" 2>/dev/null
t_eq "no request reached the removed endpoint after remora ACKed its removal" "$after" "$at_ack"
t_contains "the clients kept their 4 connections throughout, without errors" \
    "$(cat "$work/load.out")" "connections 4 errors 0"
# Node's process.hrtime and Python's time.monotonic both read CLOCK_MONOTONIC.
pushed=$(jq -s "[.[] | select(.event == \"response\" and .type_url == \"$EDS\" and .version_info == \"7\")][0].t" "$XDS_LOG")
ack=$(jq -s "[.[] | select(.event == \"request\" and .type_url == \"$EDS\" and .version_info == \"7\" and .response_nonce != \"\")][0].t" "$XDS_LOG")
last_a=$(tail -n 1 "$work/appA.req" | cut -d' ' -f1)
echo "# EDS push removing an endpoint under load ($(sed 's/ errors.*//' "$work/load.out")):" \
    "ACKed $(awk -v a="$ack" -v p="$pushed" 'BEGIN { printf "%.1f", a - p }') ms after the push," \
    "last request at the removed endpoint $(awk -v l="$last_a" -v p="$pushed" 'BEGIN { printf "%.1f", l - p }') ms after it"

# ---- (f): upstream connections survive pushes that do not concern them --------------------
# Sequential requests on the one keep-alive connection: one upstream connection per app and
# worker is all they need, so any further one means a pool was thrown away.
cx_total() { stat "$ADMIN" cluster.web.upstream_cx_total; }
# send N — N requests on the one connection; SEEN: the apps that answered, sorted, unique (not
# in a subshell: ask counts the client's answers).
send() {
    local i seen=''
    for ((i = 0; i < $1; i++)); do
        ask one "GET /"
        seen+="$(body_of)"$'\n'
    done
    SEEN=$(sort -u <<<"$seen" | grep -v '^$' | tr '\n' ' ')
}
WEB_PORTS="$APP_D:1 $APP_E:1"
t_run "web on apps D and E (keep-alive), weights 1 and 1, is ACKed" push 8 "$EDS"
send 10
t_eq "requests on the one connection reach D and E" "$SEEN" "D E "
cx=$(cx_total)
WEB_PORTS="$APP_D:3 $APP_E:1"
t_run "an EDS push re-weighting D and E (both stay) is ACKed" push 9 "$EDS"
send 10
t_eq "requests after the re-weighting reach D and E" "$SEEN" "D E "
t_eq "the re-weighting opened no upstream connection (upstream_cx_total stays $cx)" \
    "$(cx_total)" "$cx"
WEB_PORTS="$APP_D:3"
t_run "an EDS push removing E is ACKed" push 10 "$EDS"
send 6
t_eq "requests after the removal reach D only" "$SEEN" "D "
t_eq "removing E closed nothing to D: no new upstream connection" "$(cx_total)" "$cx"
WEB_TIMEOUT=2s
t_run "a CDS push changing web's connect_timeout is ACKed" push 11 "$CDS"
send 4
t_eq "requests after the CDS push reach D" "$SEEN" "D "
cx_grew() { (($(cx_total) > cx)); }
t_run "the changed cluster's requests went on new upstream connections" t_until 5 cx_grew

kill -TERM "$R"
lb_wait "$R"
t_eq "SIGTERM exits 0" "$LB_STATUS" 0
t_summary
