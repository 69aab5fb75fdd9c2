#!/usr/bin/env bash
# Story: with envoy.filters.http.buffer in the chain, remora holds a request until its whole
# body is in, then sends it upstream at once with a Content-Length (a chunked upload arrives
# re-framed, byte for byte); a body over max_request_bytes is answered 413 without reaching the
# app, whether its Content-Length says so up front or a chunked body grows too large. Needs no
# root.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=test/lib/testlib.sh
source "$root/test/lib/testlib.sh"
t_require_cmd curl python3 sha256sum
# shellcheck source=test/lib/loopback.sh
source "$root/test/lib/loopback.sh"
BUILD=${BUILD:-build}
REMORA=$root/$BUILD/remora
work=$LB_WORK

# The app answers every POST with the framing it saw and the body's hash, and counts requests.
APP=$(free_port)
cat >"$work/app.py" <<EOF
import hashlib, http.server
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        n = int(self.headers.get("content-length", "-1"))
        body = self.rfile.read(n) if n >= 0 else b""
        with open("$work/requests", "a") as f:
            f.write("x\n")
        out = ("cl=%s te=%s sha=%s\n" % (self.headers.get("content-length"),
               self.headers.get("transfer-encoding"), hashlib.sha256(body).hexdigest())).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", $APP), H).serve_forever()
EOF
bg "$work/app.log" python3 "$work/app.py"
wait_port "$APP" || t_fail app_listens

ADMIN=$(free_port) PORT=$(free_port)
cat >"$work/remora.yaml" <<EOF
admin: {address: {socket_address: {address: 127.0.0.1, port_value: $ADMIN}}}
static_resources:
  listeners:
  - name: http
    address: {socket_address: {address: 127.0.0.1, port_value: $PORT}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: buf
          route_config:
            virtual_hosts: [{name: app, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: app}}]}]
          http_filters:
          - name: envoy.filters.http.buffer
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer
              max_request_bytes: 65536
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
  - name: app
    type: STATIC
    load_assignment: {cluster_name: app, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $APP}}}}]}]}
EOF
bg "$work/remora.log" "$REMORA" --config "$work/remora.yaml" --concurrency 1
REMORA_PID=$LAST_PID
if ! wait_ready "$ADMIN"; then
    t_fail remora_starts "$(cat "$work/remora.log")"
    t_summary
    exit 1
fi

head -c 50000 /dev/urandom >"$work/small.bin"
head -c 100000 /dev/urandom >"$work/big.bin"
sha() { sha256sum <"$1" | cut -d' ' -f1; }

out=$(curl -s -m 5 --data-binary @"$work/small.bin" "http://127.0.0.1:$PORT/up")
t_eq buffered_body_arrives_with_its_content_length "$out" "cl=50000 te=None sha=$(sha "$work/small.bin")"

out=$(curl -s -m 5 -H 'transfer-encoding: chunked' --data-binary @"$work/small.bin" \
    "http://127.0.0.1:$PORT/up")
t_eq chunked_upload_is_reframed_with_a_content_length "$out" \
    "cl=50000 te=None sha=$(sha "$work/small.bin")"

before=$(wc -l <"$work/requests")
code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' --data-binary @"$work/big.bin" \
    "http://127.0.0.1:$PORT/up")
t_eq content_length_over_the_limit_is_413 "$code" 413
code=$(curl -s -m 5 -o "$work/resp" -w '%{http_code}' -H 'transfer-encoding: chunked' \
    --data-binary @"$work/big.bin" "http://127.0.0.1:$PORT/up")
t_eq chunked_body_growing_over_the_limit_is_413 "$code" 413
t_eq body_of_413_is_envoys "$(cat "$work/resp")" "Payload Too Large"
t_eq the_app_saw_neither_large_request "$(wc -l <"$work/requests")" "$before"
t_eq counted_as_downstream_rq_too_large "$(stat "$ADMIN" http.buf.downstream_rq_too_large)" 2

kill -TERM "$REMORA_PID"
wait "$REMORA_PID"
t_eq exits_cleanly "$?" 0
t_summary
