#!/usr/bin/env bash
# Story: an HTTP/2 client that abuses the protocol, against a plain HTTP listener in front of an
# HTTP/1.1 app. A raw-frame client (test/e2e/http2/raw_client.py) floods: empty DATA frames,
# PRIORITY, WINDOW_UPDATE, PING and SETTINGS whose acks it never reads, streams opened and reset
# at once (rapid reset), a header block too large and one in too many CONTINUATION frames; each
# connection is cut off with GOAWAY (ENHANCE_YOUR_CALM, or PROTOCOL_ERROR for header blocks) and
# counted under http.<prefix>.http2.* (downstream_rq_too_many_premature_resets for resets), while
# a well-behaved connection keeps getting its answers. Then requests that would smuggle across
# the translation to HTTP/1.1 (content-length against DATA, transfer-encoding, names with
# uppercase or a space, :path without a leading slash, connection-specific fields) are each
# reset (RST_STREAM PROTOCOL_ERROR) and none reaches the app, while "te: trailers" does. Needs no root.
# checks: 31
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=test/lib/testlib.sh
source "$root/test/lib/testlib.sh"
t_require_cmd curl python3 h2load
# shellcheck source=test/lib/loopback.sh
source "$root/test/lib/loopback.sh"
# shellcheck source=test/lib/mtls.sh
source "$root/test/lib/mtls.sh"
work=$LB_WORK
raw() { python3 "$here/http2/raw_client.py" "$PORT" "$@" 2>&1; }

# The app writes each request it received whole (head and the body its content-length
# announced) to seen.log: method, path and field names.
export SEEN=$work/seen.log
if ! mtls_app APP <<'APP'; then
    def record(self, body_ok):
        if body_ok:
            with open(os.environ["SEEN"], "a") as f:
                f.write("%s %s %s\n" % (self.command, self.path, ",".join(self.headers.keys())))
    def do_POST(self):
        n = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(n)
        self.record(len(body) == n)
        self.reply(b"got %d\n" % len(body))
    def do_GET(self):
        self.record(True)
        self.reply(("hello %s\n" % self.path).encode())
APP
    t_fail app_listens "$(cat "$work/app-APP.log")"
    t_summary
fi

mtls_http_config "$work/remora.yaml" 0 0 h2 "$APP"
if ! lb_remora remora "$work/remora.yaml" --concurrency 1; then
    t_fail remora_starts "$(cat "$work/remora.log")"
    t_summary
fi
ADMIN=$LB_ADMIN PORT=${LB_PORT[h2]}

# --- floods ----------------------------------------------------------------------------------
t_eq empty_data_frames_cut_with_enhance_your_calm "$(raw empty)" "goaway 11"
t_eq counted_in_inbound_empty_frames_flood \
    "$(stat "$ADMIN" http.h2.http2.inbound_empty_frames_flood)" 1
t_eq priority_flood_cut "$(raw priority)" "goaway 11"
t_eq counted_in_inbound_priority_frames_flood \
    "$(stat "$ADMIN" http.h2.http2.inbound_priority_frames_flood)" 1
t_eq window_update_flood_cut "$(raw window)" "goaway 11"
t_eq counted_in_inbound_window_update_frames_flood \
    "$(stat "$ADMIN" http.h2.http2.inbound_window_update_frames_flood)" 1

# While PINGs flood one connection, another gets every answer.
raw ping >"$work/ping.out" &
ping_pid=$!
out=$(h2load -n 20 -c 1 -m 1 "http://127.0.0.1:$PORT/calm" 2>&1)
wait $ping_pid
t_eq ping_flood_cut_with_enhance_your_calm "$(cat "$work/ping.out")" "goaway 11"
t_contains well_behaved_connection_answered_during_flood "$out" "status codes: 20 2xx"
t_eq settings_flood_cut "$(raw settings)" "goaway 11"
t_eq counted_in_outbound_control_flood "$(stat "$ADMIN" http.h2.http2.outbound_control_flood)" 2

t_eq rapid_reset_cut "$(raw reset)" "goaway 11"
t_eq counted_in_too_many_premature_resets \
    "$(stat "$ADMIN" http.h2.downstream_rq_too_many_premature_resets)" 1
t_eq large_header_block_cut_with_protocol_error "$(raw block)" "goaway 1"
t_eq many_continuations_cut_with_protocol_error "$(raw continuations)" "goaway 1"
t_eq counted_in_header_overflow "$(stat "$ADMIN" http.h2.http2.header_overflow)" 2
out=$(curl -s -m 5 --http2-prior-knowledge "http://127.0.0.1:$PORT/after")
t_eq still_serving_after_the_floods "$out" "hello /after"

# --- smuggling across HTTP/2 → HTTP/1.1 -------------------------------------------------------
t_eq content_length_above_data_reset "$(raw smuggle cl-short)" "rst 1"
t_eq content_length_below_data_reset "$(raw smuggle cl-long)" "rst 1"
t_eq transfer_encoding_reset "$(raw smuggle transfer-encoding)" "rst 1"
t_eq uppercase_name_reset "$(raw smuggle uppercase)" "rst 1"
t_eq space_in_name_reset "$(raw smuggle space)" "rst 1"
t_eq path_without_slash_reset "$(raw smuggle no-slash)" "rst 1"
t_eq absolute_path_reset "$(raw smuggle absolute)" "rst 1"
t_eq connection_field_reset "$(raw smuggle connection)" "rst 1"
t_eq keep_alive_field_reset "$(raw smuggle keep-alive)" "rst 1"
t_eq upgrade_field_reset "$(raw smuggle upgrade)" "rst 1"
t_eq te_other_than_trailers_reset "$(raw smuggle te-gzip)" "rst 1"
t_eq te_trailers_answered "$(raw smuggle te-trailers)" "status 200"
t_eq te_trailers_reached_the_app "$(grep -c ' /ok-te-trailers ' "$SEEN")" 1
t_eq no_smuggled_request_reached_the_app "$(grep -c 'smuggle' "$SEEN")" 0
t_eq no_flood_request_reached_the_app_whole "$(grep -c 'flood-empty\|flood-block\|flood-cont' "$SEEN")" 0

t_summary

