#!/usr/bin/env bash
# Story: when an HTTP request ends badly, remora notices at once and reports it exactly once. A
# client that gives up resets its upstream request at once (DC) and does not hold up a drain;
# an upstream that closes before its announced length resets the client promptly (UC); an
# invalid upstream response is a 502 (UPE); clients that abort mid-upload and mid-download are
# DC; a drain lets requests in flight finish with "connection: close", and its deadline ends
# the rest. Every one leaves one access-log line and Envoy's reset counters. Needs no root.
# checks: 44
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=test/lib/testlib.sh
source "$root/test/lib/testlib.sh"
t_require_cmd socat curl
# shellcheck source=test/lib/loopback.sh
source "$root/test/lib/loopback.sh"
work=$LB_WORK

# --- upstreams: raw HTTP/1.1 servers in sh behind socat, each recording what happened to it ----
# Reads a request head from stdin.
cat >"$work/head.sh" <<'EOF'
cr=$(printf '\r')
while IFS= read -r l && [ "${l%"$cr"}" != "" ]; do :; done
EOF
# hang: never answers; records when its connection ends (remora closed it).
cat >"$work/hang.sh" <<EOF
. $work/head.sh
echo start >>$work/hang.events
cat >/dev/null
echo gone >>$work/hang.events
EOF
# short: announces 100000 bytes, sends 10, and closes.
cat >"$work/short.sh" <<EOF
. $work/head.sh
printf 'HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n0123456789'
EOF
# bad: a status line that is not HTTP.
cat >"$work/bad.sh" <<EOF
. $work/head.sh
printf 'HTTP/1.1 2x0 Huh\r\n\r\n'
EOF
# slowok: answers 200 once the file $work/release exists (the test decides when).
cat >"$work/slowok.sh" <<EOF
. $work/head.sh
echo start >>$work/slowok.events
while [ ! -e $work/release ]; do sleep 0.05; done
printf 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\ndone!'
EOF
# sink: reads a request with its body and never answers; records when its connection ends.
cat >"$work/sink.sh" <<EOF
echo start >>$work/sink.events
cat >/dev/null
echo gone >>$work/sink.events
EOF
# big: a 64 MiB body, sent as fast as the reader takes it.
cat >"$work/big.sh" <<EOF
. $work/head.sh
echo start >>$work/big.events
printf 'HTTP/1.1 200 OK\r\nContent-Length: 67108864\r\n\r\n'
head -c 67108864 /dev/zero
echo gone >>$work/big.events
EOF
declare -A UP
for app in hang short bad slowok sink big; do
    : >"$work/$app.events"
    lb_serve P "$work/$app.log" socat TCP-LISTEN:@P@,bind=127.0.0.1,reuseaddr,fork,backlog=16 \
        SYSTEM:"sh $work/$app.sh" || { t_fail apps_start "$app did not listen"; t_summary; }
    UP[$app]=$P
done

write_config() { # write_config FILE
    {
        cat <<EOF
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
static_resources:
  listeners:
  - name: http
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: fail
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: $work/access.log
              log_format: {text_format_source: {inline_string: "%REQ(:PATH)% %RESPONSE_CODE% %RESPONSE_FLAGS%\n"}}
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
EOF
        for app in hang short bad slowok sink big; do
            printf '              - match: {prefix: /%s}\n                route: {cluster: %s, timeout: 15s}\n' "$app" "$app"
        done
        cat <<EOF
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
EOF
        for app in hang short bad slowok sink big; do
            printf '  - name: %s\n    connect_timeout: 1s\n    load_assignment:\n      endpoints:\n      - lb_endpoints:\n        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %s}}}\n' "$app" "${UP[$app]}"
        done
    } >"$1"
}
write_config "$work/remora.yaml"

start_remora() { # start_remora [remora args] — sets RPID, ADMIN and U
    local name=${REMORA_NAME:-remora}
    lb_remora "$name" "$work/remora.yaml" --concurrency 1 "$@" ||
        { t_fail remora_starts "$(tail -5 "$work/$name.log")"; t_summary; }
    RPID=$LB_PID ADMIN=$LB_ADMIN U=http://127.0.0.1:${LB_PORT[http]}
}

has_line() { grep -qx -- "$2" "$1" 2>/dev/null; }
log_lines() { grep -c -- "^$1 " "$work/access.log" 2>/dev/null; }
stat_is() { [[ $(stat "$ADMIN" "$1") == "$2" ]]; }

start_remora

# --- a client that gives up while the upstream works: the upstream is reset at once ------------
t0=$(date +%s%N)
curl -s -o /dev/null --max-time 1 "$U/hang"
rc=$?
t_eq client_gave_up_after_one_second "$rc" 28
t_until 3 has_line "$work/hang.events" gone &&
    ms=$((($(date +%s%N) - t0) / 1000000)) &&
    ((ms < 3000)) && t_ok upstream_reset_when_client_gives_up ||
    t_fail upstream_reset_when_client_gives_up "the upstream connection still open after 3 s ($(tr '\n' ' ' <"$work/hang.events"))"
t_until 3 has_line "$work/access.log" "/hang 0 DC" && t_ok client_abort_logged_at_once_as_DC ||
    t_fail client_abort_logged_at_once_as_DC "log: $(cat "$work/access.log")"
t_eq client_abort_logged_once "$(log_lines /hang)" 1
t_eq downstream_rq_rx_reset_counts_it "$(stat "$ADMIN" http.fail.downstream_rq_rx_reset)" 1
t_eq upstream_rq_tx_reset_counts_it "$(stat "$ADMIN" cluster.hang.upstream_rq_tx_reset)" 1
t_eq upstream_cx_destroy_local_with_active_rq_counts_it \
    "$(stat "$ADMIN" cluster.hang.upstream_cx_destroy_local_with_active_rq)" 1
t_eq no_request_left_active "$(stat "$ADMIN" http.fail.downstream_rq_active)" 0

# --- an upstream that closes before its announced length: the client is reset promptly --------
t0=$(date +%s%N)
curl -s -o "$work/short.out" --max-time 10 "$U/short"
rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
# A reset (curl's 56) or a close short of the length (18), never a clean end (0) or a hang (28).
[[ $rc == 56 || $rc == 18 ]] && t_ok short_body_client_sees_broken_transfer ||
    t_fail short_body_client_sees_broken_transfer "curl exit $rc"
((ms < 3000)) && t_ok short_body_client_not_left_hanging ||
    t_fail short_body_client_not_left_hanging "curl took ${ms}ms"
t_until 3 has_line "$work/access.log" "/short 200 UC" && t_ok short_body_logged_200_UC ||
    t_fail short_body_logged_200_UC "log: $(cat "$work/access.log")"
t_eq short_body_logged_once "$(log_lines /short)" 1
t_eq short_body_counts_downstream_rq_tx_reset \
    "$(stat "$ADMIN" http.fail.downstream_rq_tx_reset)" 1
t_eq short_body_counts_destroy_remote_with_active_rq \
    "$(stat "$ADMIN" cluster.short.upstream_cx_destroy_remote_with_active_rq)" 1
t_eq short_body_counts_upstream_rq_rx_reset "$(stat "$ADMIN" cluster.short.upstream_rq_rx_reset)" 1

# --- an invalid upstream response: 502 UPE -----------------------------------------------------
t_eq invalid_response_is_502 "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$U/bad")" 502
t_until 3 has_line "$work/access.log" "/bad 502 UPE" && t_ok invalid_response_logged_502_UPE ||
    t_fail invalid_response_logged_502_UPE "log: $(cat "$work/access.log")"
t_eq invalid_response_counted_5xx "$(stat "$ADMIN" http.fail.downstream_rq_5xx)" 1

# --- a client that aborts mid-upload ---------------------------------------------------------
head -c $((4 << 20)) /dev/zero >"$work/up.bin"
curl -s -o /dev/null --max-time 1 --limit-rate 256k -T "$work/up.bin" "$U/sink"
t_eq upload_client_gave_up "$?" 28
t_until 3 has_line "$work/sink.events" gone && t_ok upload_upstream_reset_at_once ||
    t_fail upload_upstream_reset_at_once "the upstream connection still open"
t_until 3 has_line "$work/access.log" "/sink 0 DC" && t_ok upload_abort_logged_DC ||
    t_fail upload_abort_logged_DC "log: $(cat "$work/access.log")"
t_eq upload_abort_logged_once "$(log_lines /sink)" 1

# --- a client that aborts mid-download --------------------------------------------------------
curl -s -o /dev/null --max-time 1 --limit-rate 256k "$U/big"
t_eq download_client_gave_up "$?" 28
t_until 3 has_line "$work/big.events" gone && t_ok download_upstream_reset_at_once ||
    t_fail download_upstream_reset_at_once "the upstream still sending"
t_until 3 has_line "$work/access.log" "/big 200 DC" && t_ok download_abort_logged_200_DC ||
    t_fail download_abort_logged_200_DC "log: $(cat "$work/access.log")"
t_eq download_abort_logged_once "$(log_lines /big)" 1
t_eq resets_received_in_all "$(stat "$ADMIN" http.fail.downstream_rq_rx_reset)" 3
t_eq every_request_counted_once "$(stat "$ADMIN" http.fail.downstream_rq_total)" \
    "$(wc -l <"$work/access.log" | tr -d ' ')"
prom=$(curl -s "http://127.0.0.1:$ADMIN/stats/prometheus")
istio() { # istio CLUSTER CODE FLAGS — the value of istio_requests_total for those labels
    grep -F "destination_cluster=\"$1\"" <<<"$prom" | grep -F "response_code=\"$2\"" |
        grep -F "response_flags=\"$3\"" | grep '^istio_requests_total' | awk '{ print $2 }'
}
t_eq istio_metric_counts_client_abort "$(istio hang 0 DC)" 1
t_eq istio_metric_counts_upstream_close "$(istio short 200 UC)" 1
t_eq istio_metric_counts_invalid_response "$(istio bad 502 UPE)" 1

# --- a client that gives up does not hold up a drain -----------------------------------------
curl -s -o /dev/null --max-time 1 "$U/hang"
t_until 3 stat_is http.fail.downstream_rq_active 0 && t_ok abandoned_request_leaves_nothing_active ||
    t_fail abandoned_request_leaves_nothing_active "still $(stat "$ADMIN" http.fail.downstream_rq_active)"

# --- a drain with a request in flight: it finishes, with connection: close ---------------------
rm -f "$work/release"
: >"$work/slowok.events"
curl -s -D "$work/drain.head" -o "$work/drain.body" --max-time 10 "$U/slowok" &
CURL=$!
t_until 3 has_line "$work/slowok.events" start || t_fail drain_request_reached_upstream "no request"
kill -TERM "$RPID"
t_until 3 stat_is server.state 1 && t_ok drain_started || t_fail drain_started "state $(stat "$ADMIN" server.state)"
touch "$work/release"
wait "$CURL"
t_eq drained_request_finishes "$?|$(cat "$work/drain.body")" "0|done!"
grep -qi '^connection: close' "$work/drain.head" && t_ok drained_request_answered_connection_close ||
    t_fail drained_request_answered_connection_close "$(tr -d '\r' <"$work/drain.head" | tr '\n' ' ')"
t_until 5 eval '! lb_alive "$RPID"' && t_ok drain_exits_once_request_done ||
    t_fail drain_exits_once_request_done "remora still running"
lb_wait "$RPID"
t_eq drain_exit_status_0 "$LB_STATUS" 0
t_until 1 has_line "$work/access.log" "/slowok 200 -" && t_ok drained_request_logged ||
    t_fail drained_request_logged "log: $(tail -3 "$work/access.log")"

# --- the drain deadline ends what is still in flight, and reports it ---------------------------
REMORA_NAME=remora2 start_remora --drain-time-s 1
: >"$work/hang.events"
curl -s -o /dev/null --max-time 10 "$U/hang" &
CURL=$!
t_until 3 has_line "$work/hang.events" start || t_fail deadline_request_reached_upstream "no request"
t0=$(date +%s%N)
kill -TERM "$RPID"
lb_wait "$RPID"
ms=$((($(date +%s%N) - t0) / 1000000))
t_eq drain_deadline_exit_status_0 "$LB_STATUS" 0
((ms >= 900 && ms < 4000)) && t_ok drain_deadline_after_one_second ||
    t_fail drain_deadline_after_one_second "exited after ${ms}ms"
wait "$CURL"
rc=$?
[[ $rc == 52 || $rc == 56 ]] && t_ok drain_deadline_resets_client ||
    t_fail drain_deadline_resets_client "curl exit $rc (want 52 empty reply or 56 reset)"
t_until 3 has_line "$work/access.log" "/hang 0 LR" && t_ok drain_deadline_request_logged_LR ||
    t_fail drain_deadline_request_logged_LR "log: $(tail -3 "$work/access.log")"
t_eq drain_deadline_request_logged_once "$(log_lines /hang)" 3
t_until 3 has_line "$work/hang.events" gone && t_ok drain_deadline_resets_upstream ||
    t_fail drain_deadline_resets_upstream "the upstream connection still open"

t_summary
