#!/usr/bin/env bash
# Story: the gRPC client that the xDS client will stand on (proxy/grpc) talks to real peers and
# ends every call exactly once with the status gRPC specifies. The peers (test/e2e/grpc/
# server.js, all on 127.0.0.1): @grpc/grpc-js with identity serializers, plaintext and TLS
# (unary, bidi, server and client streams, trailers-only errors, a method that never answers,
# an unknown method, a message over the client's limit); node's own http2 server for exact DATA
# framing, non-gRPC answers (404, 503, text/html), a missing grpc-status, a compressed or cut
# message, RST_STREAM, GOAWAY and a connection that dies mid-stream; TCP servers that never
# send SETTINGS or never answer a PING; a port nobody listens on; a TLS server
# whose SPIFFE ID is, then is not, the one expected. test/tools/grpc_driver runs
# the calls and prints one line per check. Needs node and npm; @grpc/grpc-js is installed from
# the npm registry into build/npm at the versions test/e2e/grpc/package-lock.json pins (never
# committed). Without them the story fails as root and is skipped otherwise.
# checks: 39
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=test/lib/testlib.sh
source "$root/test/lib/testlib.sh"

# shellcheck source=test/lib/npm.sh
source "$root/test/lib/npm.sh"
# shellcheck source=test/lib/loopback.sh
source "$root/test/lib/loopback.sh"
work=$LB_WORK
driver=$LB_BIN/tools/grpc_driver
[[ -x $driver ]] || t_stop "no $driver: build it with make BUILD=$BUILD tools (SAN=1 for build/asan)"

# The pinned peers, installed once per lock file into build/npm (shared by every build).
npm_dir=$root/build/npm
npm_peers "$here/grpc" "$npm_dir" "$work/npm.out"

NODE_PATH=$npm_dir/node_modules bg "$work/server.out" node "$here/grpc/server.js" --tls
server=$LAST_PID
server_said() { grep -q '^{' "$work/server.out" || ! lb_alive "$server"; }
t_until 15 server_said
ports=$(grep -m1 '^{' "$work/server.out") ||
    t_stop "the node peers did not start: $(tail -n 5 "$work/server.out" | tr '\n' ' ')"
# {"grpc":P,...} -> grpc=P ...
read -r -a args < <(node -e 'const p = JSON.parse(process.argv[1]);
    console.log(Object.entries(p).map(([k, v]) => `${k}=${v}`).join(" "))' "$ports")

# The driver's stderr is a .log of the story's: a sanitizer report in it fails the story.
"$driver" "${args[@]}" certs="$root/test/data/certs" >"$work/driver.out" 2>"$work/driver.log"
rc=$?
cat "$work/driver.out"
T_PASSED=$(grep -c '^PASS: ' "$work/driver.out")
T_FAILED=$(grep -c '^FAIL: ' "$work/driver.out")
if ((rc != 0)); then
    guard_fail "grpc_driver exited with status $(guard_status_text "$rc"): $(tail -n 5 "$work/driver.log" | tr '\n' ' ')"
    T_FAILED=$((T_FAILED + 1))
fi
lb_alive "$server" || {
    guard_fail "the node peers died during the story: $(tail -n 5 "$work/server.out" | tr '\n' ' ')"
    T_FAILED=$((T_FAILED + 1))
}
t_summary
