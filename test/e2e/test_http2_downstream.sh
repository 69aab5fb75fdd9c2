#!/usr/bin/env bash
# Story: HTTP/2 from the client side. A listener whose connection manager is AUTO takes a client
# that opens with HTTP/2's preface (h2c, prior knowledge) as an HTTP/2 connection and an HTTP/1.1
# one on the same port as before; requests on many streams of a few connections reach an
# HTTP/1.1 app; bodies go both ways intact (a 5 MB upload, a 20 MB download); the app's chunked
# trailers reach the HTTP/2 client as trailing HEADERS; a client that resets a stream
# (RST_STREAM) has its upstream request reset at once; a listener set to codec_type HTTP1 does
# not speak HTTP/2; a client that stops reading a 120 MB response gets all of it later while
# remora's memory stays bounded; a drain sends GOAWAY, finishes the request in flight and exits.
# The http2 counters say what happened. Needs no root.
# checks: 18
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=test/lib/testlib.sh
source "$root/test/lib/testlib.sh"
t_require_cmd curl python3 sha256sum h2load nghttp node
# shellcheck source=test/lib/loopback.sh
source "$root/test/lib/loopback.sh"
# shellcheck source=test/lib/mtls.sh
source "$root/test/lib/mtls.sh"
work=$LB_WORK

# The app: POST answers with the body's length and hash; /big/N sends N bytes (chunked);
# /trailers sends a chunked body with a trailer; /slow answers after 1.5 s.
if ! SLOW_LOG=$work/slow.log mtls_app APP <<'APP'; then
    def do_POST(self):
        n = int(self.headers.get("content-length", "-1"))
        if n >= 0:
            body = self.rfile.read(n)
        else:
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
        self.reply(("len=%d sha=%s\n" % (len(body), hashlib.sha256(body).hexdigest())).encode())
    def do_GET(self):
        if self.path.startswith("/big/"):
            n = int(self.path[5:])
            self.send_response(200)
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            block = b"0123456789abcdef" * 4096
            while n > 0:
                piece = block[:min(n, len(block))]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                n -= len(piece)
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/trailers":
            self.send_response(200)
            self.send_header("transfer-encoding", "chunked")
            self.send_header("trailer", "x-checksum")
            self.end_headers()
            self.wfile.write(b"5\r\nhello\r\n0\r\nx-checksum: abc123\r\n\r\n")
        elif self.path.startswith("/slow"):
            with open(os.environ["SLOW_LOG"], "a") as f:
                f.write(self.path + "\n")
            try:
                time.sleep(1.5)
                self.reply(b"late\n")
            except Exception:
                pass
        else:
            self.reply(("hello %s\n" % self.path).encode())
APP
    t_fail app_listens "$(cat "$work/app-APP.log")"
    t_summary
fi

mtls_http_config "$work/h2.yaml" 0 0 h2 "$APP"
MTLS_HCM_EXTRA='codec_type: HTTP1' mtls_http_config "$work/h1only.yaml" 0 0 h1only "$APP"
# Both listeners in one process: the second file's listener goes in before the clusters.
awk '/^  clusters:/ {exit} f {print} /^  listeners:/ {f=1}' "$work/h1only.yaml" >"$work/h1only.l"
awk -v extra="$work/h1only.l" '
    /^  clusters:/ { while ((getline l < extra) > 0) print l }
    { print }' "$work/h2.yaml" >"$work/remora.yaml"
# Under ASan the quarantine is kept small, so the high-water mark shows what remora holds.
if ! ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=1 \
    lb_remora remora "$work/remora.yaml" --concurrency 1; then
    t_fail remora_starts "$(cat "$work/remora.log")"
    t_summary
fi
REMORA_PID=$LB_PID ADMIN=$LB_ADMIN PORT=${LB_PORT[h2]} H1PORT=${LB_PORT[h1only]}

out=$(curl -s -m 5 --http2-prior-knowledge -w ' %{http_version}' "http://127.0.0.1:$PORT/one")
t_eq h2c_request_answered_over_http2 "$out" $'hello /one\n 2'
out=$(curl -s -m 5 --http1.1 -w ' %{http_version}' "http://127.0.0.1:$PORT/one")
t_eq http1_on_the_same_port "$out" $'hello /one\n 1.1'

h2load -n 2000 -c 4 -m 4 "http://127.0.0.1:$PORT/many" >"$work/h2load.out" 2>&1
t_contains h2load_2000_streams_on_4_connections_all_2xx "$(cat "$work/h2load.out")" \
    "status codes: 2000 2xx"
t_eq counted_as_http2_streams "$(stat "$ADMIN" http.h2.downstream_rq_http2_total)" 2001
t_eq counted_as_http2_connections "$(stat "$ADMIN" http.h2.downstream_cx_http2_total)" 5

head -c 5000000 /dev/urandom >"$work/up.bin"
sha() { sha256sum <"$1" | cut -d' ' -f1; }
out=$(curl -s -m 20 --http2-prior-knowledge --data-binary @"$work/up.bin" \
    "http://127.0.0.1:$PORT/up")
t_eq upload_5mb_intact "$out" "len=5000000 sha=$(sha "$work/up.bin")"

curl -s -m 30 --http2-prior-knowledge -o "$work/down.bin" "http://127.0.0.1:$PORT/big/20000000"
python3 -c 'import sys
b = b"0123456789abcdef" * 4096
n = 20000000
out = bytearray()
while n > 0:
    p = b[:min(n, len(b))]
    out += p
    n -= len(p)
sys.stdout.buffer.write(bytes(out))' >"$work/down.want"
t_eq download_20mb_intact "$(sha "$work/down.bin")" "$(sha "$work/down.want")"

nghttp -v "http://127.0.0.1:$PORT/trailers" >"$work/trailers.out" 2>&1
t_contains trailers_reach_the_http2_client "$(cat "$work/trailers.out")" "x-checksum: abc123"
t_contains body_before_trailers "$(cat "$work/trailers.out")" "hello"

out=$(node "$here/http2/reset.js" "http://127.0.0.1:$PORT/slow" 500 2>&1)
t_eq client_reset_a_stream "$out" reset
t_until 5 test "$(stat "$ADMIN" http.h2.http2.rx_reset)" = 1
t_eq counted_in_http2_rx_reset "$(stat "$ADMIN" http.h2.http2.rx_reset)" 1
t_eq counted_as_downstream_rx_reset "$(stat "$ADMIN" http.h2.downstream_rq_rx_reset)" 1
t_eq upstream_request_reset_at_once "$(stat "$ADMIN" cluster.app.upstream_rq_tx_reset)" 1

out=$(curl -s -m 5 --http2-prior-knowledge -o /dev/null -w '%{http_code}' \
    "http://127.0.0.1:$H1PORT/x" 2>&1)
t_eq http1_only_listener_does_not_speak_http2 "$out" 000

# A client that stops reading a 120 MB response for 2 s: the windows fill, remora stops reading
# the app, and its memory does not follow the response.
hwm() { awk '/^VmHWM:/ {print $2}' "/proc/$REMORA_PID/status"; }
before=$(hwm)
out=$(node "$here/http2/slowread.js" "http://127.0.0.1:$PORT/big/120000000" 2000 2>&1)
t_eq stalled_reader_gets_all_120mb "$out" $'paused\nreading\ngot 120000000'
grew=$((($(hwm) - before) / 1024))
t_eq memory_bounded_while_the_reader_stalls "$((grew < 48)) (grew ${grew} MiB)" "1 (grew ${grew} MiB)"

# Drain (SIGTERM) with a request in flight: GOAWAY at once, the request still answered, then
# the connection closes and remora exits.
node "$here/http2/drain.js" "http://127.0.0.1:$PORT/slow/drain" >"$work/drain.out" 2>&1 &
drain_client=$!
t_until 5 grep -q /slow/drain "$work/slow.log"
lb_stop "$REMORA_PID"
t_eq exits_cleanly_after_the_drain "$LB_STATUS" 0
wait "$drain_client"
t_eq drain_sends_goaway_then_answers_in_flight "$(grep -v '^closed$' "$work/drain.out")" \
    $'goaway 0\nresponse 200 late'
t_summary
