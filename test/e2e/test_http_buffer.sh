#!/usr/bin/env bash
# Story: with envoy.filters.http.buffer in the chain, remora holds a request until its whole
# body is in, then sends it upstream at once with a Content-Length (a chunked upload arrives
# re-framed, byte for byte); a body over max_request_bytes is answered 413 without reaching the
# app, whether its Content-Length says so up front or a chunked body grows too large. Needs no
# root.
# checks: 8
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=test/lib/testlib.sh
source "$root/test/lib/testlib.sh"
t_require_cmd curl python3 sha256sum
# shellcheck source=test/lib/loopback.sh
source "$root/test/lib/loopback.sh"
# shellcheck source=test/lib/mtls.sh
source "$root/test/lib/mtls.sh"
work=$LB_WORK

# The app answers every POST with the framing it saw and the body's hash, and counts requests.
if ! mtls_app APP <<EOF; then
    def do_POST(self):
        n = int(self.headers.get("content-length", "-1"))
        body = self.rfile.read(n) if n >= 0 else b""
        with open("$work/requests", "a") as f:
            f.write("x\n")
        self.reply(("cl=%s te=%s sha=%s\n" % (self.headers.get("content-length"),
            self.headers.get("transfer-encoding"), hashlib.sha256(body).hexdigest())).encode())
EOF
    t_fail app_listens "$(cat "$work/app-APP.log")"
    t_summary
fi

MTLS_HTTP_FILTERS='- name: envoy.filters.http.buffer
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer
    max_request_bytes: 65536' \
    mtls_http_config "$work/remora.yaml" 0 0 buf "$APP"
if ! lb_remora remora "$work/remora.yaml" --concurrency 1; then
    t_fail remora_starts "$(cat "$work/remora.log")"
    t_summary
fi
REMORA_PID=$LB_PID ADMIN=$LB_ADMIN PORT=${LB_PORT[buf]}

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

lb_stop "$REMORA_PID"
t_eq exits_cleanly "$LB_STATUS" 0
t_summary
