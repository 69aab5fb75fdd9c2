#!/usr/bin/env bash
# Story: the gRPC server that remora-cp's ADS server and CA will stand on (proxy/grpc) serves
# independent clients on 127.0.0.1. test/tools/grpc_echo_server (echo.Echo of
# test/e2e/grpc_server/echo.proto: unary, server-streaming, bidi) runs twice, plaintext h2c and
# TLS requiring a client certificate, and is driven by @grpc/grpc-js with @grpc/proto-loader
# (test/e2e/grpc_server/client.js): messages, a status and message the method chose (with % and
# UTF-8), request metadata back as header and trailer, deadline, cancel, a request over the
# server's limit, 50 concurrent calls, an unknown method, server streams of 5 and 3,000 messages,
# a bidi ping-pong of 200, the client's SPIFFE ID over TLS and a client without certificate
# refused. Then: the server saw the cancel and the deadline end their calls; nghttp (h2c) with a
# wrong content-type gets HTTP 415 and one with the right headers an echo; bytes that are not
# HTTP/2 get the connection closed while the server serves on; SIGTERM drains and exits 0 with
# no sanitizer report. Needs node and npm (the pinned packages are installed into
# build/npm-grpc-server, never committed) and nghttp (nghttp2-client); without node and npm the
# story fails as root and is skipped otherwise.
# checks: 21
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=test/lib/testlib.sh
source "$root/test/lib/testlib.sh"
# shellcheck source=test/lib/npm.sh
source "$root/test/lib/npm.sh"
# shellcheck source=test/lib/loopback.sh
source "$root/test/lib/loopback.sh"
t_require_cmd nghttp
work=$LB_WORK
server_bin=$LB_BIN/tools/grpc_echo_server
[[ -x $server_bin ]] || t_stop "no $server_bin: build it with make BUILD=$BUILD tools (SAN=1 for build/asan)"

npm_dir=$root/build/npm-grpc-server
npm_peers "$here/grpc_server" "$npm_dir" "$work/npm.out"

# echo_server NAME ARGS... — starts one on a port of its own choosing; sets PORT and LAST_PID.
echo_server() {
    local name=$1
    shift
    bg "$work/$name.log" "$server_bin" "$@"
    local pid=$LAST_PID
    LB_REMORAS[$pid]=$name # stopped with SIGTERM at exit, which must end it with status 0
    said() { grep -q '^listening on' "$work/$name.log" || ! lb_alive "$pid"; }
    t_until 10 said
    PORT=$(sed -n 's/^listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$work/$name.log")
    [[ -n $PORT ]] || t_stop "$name did not start: $(tail -n 5 "$work/$name.log" | tr '\n' ' ')"
}

echo_server plain
plain=$LAST_PID plain_port=$PORT
echo_server tls --tls "$root/test/data/certs" --require-client-cert
tls=$LAST_PID tls_port=$PORT

# --- grpc-js (15 checks) ---
NODE_PATH=$npm_dir/node_modules node "$here/grpc_server/client.js" "$plain_port" "$tls_port" \
    "$root/test/data/certs" >"$work/client.out" 2>&1
cat "$work/client.out"
T_PASSED=$((T_PASSED + $(grep -c '^PASS: ' "$work/client.out")))
T_FAILED=$((T_FAILED + $(grep -c '^FAIL: ' "$work/client.out")))

# --- what the server saw (2 checks) ---
t_contains "the server's method heard the client's cancel (CANCELLED)" \
    "$(grep '^closed /echo.Echo/Unary CANCELLED' "$work/plain.log")" "the client reset the stream"
t_run "the server's method heard the deadline end its call" \
    grep -qE '^closed /echo.Echo/Unary (DEADLINE_EXCEEDED deadline exceeded|CANCELLED)' \
    "$work/plain.log"

# --- nghttp, h2c (2 checks) ---
printf '\0\0\0\0\004\012\002hi' >"$work/req.bin"
out=$(timeout 10 nghttp -v -H 'content-type: text/plain' -d "$work/req.bin" \
    "http://127.0.0.1:$plain_port/echo.Echo/Unary" 2>&1)
t_contains "h2c with content-type text/plain is HTTP 415" "$out" ":status: 415"
out=$(timeout 10 nghttp -v -H 'content-type: application/grpc' -H 'te: trailers' \
    -d "$work/req.bin" "http://127.0.0.1:$plain_port/echo.Echo/Unary" 2>&1 | tr -d '\0')
t_contains "h2c with gRPC's headers gets its echo and grpc-status 0" "$out" "grpc-status: 0"

# --- not HTTP/2 (1 check) ---
garbage() {
    python3 - "$plain_port" <<'PY' || return 1
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\xff\xffgarbage")
while s.recv(65536):  # until the server closes the connection (a timeout raises)
    pass
PY
    lb_alive "$plain"
}
t_run "bytes that are not HTTP/2 get the connection closed, the server serves on" garbage

# --- SIGTERM (1 check) ---
lb_stop "$plain"
t_eq "SIGTERM drains the server and it exits 0" "$LB_STATUS" 0
lb_stop "$tls"
t_summary
