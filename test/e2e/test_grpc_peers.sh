#!/usr/bin/env bash
# Story: the gRPC peers that the mesh stories will put at both ends of app -> sidecar ->
# sidecar -> app (test/e2e/grpc_mesh/, test/lib/grpcmesh.sh, docs/http2-peers.md) are sound on
# their own and through a real HTTP/2 proxy, so a failure seen through remora's sidecars later
# is remora's. All on 127.0.0.1: two @grpc/grpc-js servers (alpha, beta) over h2c, the client,
# and nghttpx as an h2c reverse proxy in front of alpha. Checks, first client -> alpha directly,
# then client -> nghttpx -> alpha with an :authority naming a service, each of the client's
# checks: unary; a server stream of 100; a client stream of 50; a bidi ping-pong of 20; a
# chosen status and percent-encoded message after response headers, with custom trailers (one
# binary); a trailers-only error seen on the wire (one HEADERS frame ending the stream, no DATA);
# a deadline shorter than the method's sleep is DEADLINE_EXCEEDED, and the server hears the
# cancellation; text and binary (non-UTF-8 "-bin") metadata echoed as headers and trailers;
# 1 MiB each way in one call and 8 x 1 MiB on one bidi stream (flow control); whoami names the
# server and the :authority asked for. Also: beta names itself; a wrong expected server is
# reported "not ok" and the client exits non-zero; 200 calls 20 at a time with every fourth
# ending UNAVAILABLE are counted 150 OK / 50 UNAVAILABLE, directly and through nghttpx, whose
# access log shows the calls passed through it. Needs node and npm (@grpc/grpc-js 1.12.6 and
# @grpc/proto-loader 0.7.15 pinned by test/e2e/grpc_mesh/package-lock.json, installed into
# build/npm-grpc-mesh; fails as root without them, skips otherwise) and nghttpx
# (nghttp2-proxy).
# checks: 29
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=test/lib/testlib.sh
source "$root/test/lib/testlib.sh"
# shellcheck source=test/lib/loopback.sh
source "$root/test/lib/loopback.sh"
# shellcheck source=test/lib/grpcmesh.sh
source "$root/test/lib/grpcmesh.sh"
work=$LB_WORK
got='' proxy='' # set by gm_load and gm_nghttpx

gm_install
((${#GM_CHECKS[@]} == 11)) ||
    t_stop "the client names ${#GM_CHECKS[@]} checks (${GM_CHECKS[*]}), this story counts 11"
gm_server alpha || t_stop "the gRPC server alpha did not start"
gm_server beta || t_stop "the gRPC server beta did not start"
alpha=127.0.0.1:${GM_PORT[alpha]}
beta=127.0.0.1:${GM_PORT[beta]}

# 200 calls, 20 in flight, every fourth a Fail ending UNAVAILABLE: what a load of
# resilience tests will count.
load_want=$'status OK 150\nstatus UNAVAILABLE 50\nserver alpha 150\ntotal 200'
cancelled() { (($(gm_said alpha '^sleep cancelled$') == $1)); }

# --- client -> alpha
gm_checks direct --target "$alpha" --server alpha
if t_until 5 cancelled 1; then
    t_ok "direct: the server heard the deadline cancel its sleeping call"
else
    t_fail "direct: the server heard the deadline cancel its sleeping call" \
        "$(gm_said alpha '^sleep cancelled$') cancellations logged, want 1"
fi

gm_client "$work/beta.out" --target "$beta" --server beta --authority grpc-beta.mesh.test \
    --checks whoami
t_eq "direct: beta names itself and the :authority asked for" \
    "$(cat "$work/beta.out")" "ok whoami"

gm_client "$work/wrong.out" --target "$alpha" --server beta --checks whoami
rc=$?
t_eq "the client reports an unexpected server as not ok and exits non-zero" \
    "$(cat "$work/wrong.out") rc=$rc" "not ok whoami: answered by 'alpha', want 'beta' rc=1"

gm_load got --target "$alpha" --load 200 --concurrency 20 --fail-one-in 4
t_eq "direct: load of 200 counted by status and server" "$got" "$load_want"

# --- client -> nghttpx (h2c) -> alpha, the authority naming a service as through a sidecar
gm_nghttpx proxy alpha "${GM_PORT[alpha]}" || t_stop "nghttpx did not start"
gm_checks nghttpx --target "127.0.0.1:$proxy" --server alpha --authority grpc.mesh.test:8080
if t_until 5 cancelled 2; then
    t_ok "nghttpx: the server heard the deadline cancel its sleeping call"
else
    t_fail "nghttpx: the server heard the deadline cancel its sleeping call" \
        "$(gm_said alpha '^sleep cancelled$') cancellations logged, want 2"
fi

gm_load got --target "127.0.0.1:$proxy" --authority grpc.mesh.test:8080 --load 200 \
    --concurrency 20 --fail-one-in 4
t_eq "nghttpx: load of 200 counted by status and server" "$got" "$load_want"

# Every call of the checks and of the load that ended normally went through nghttpx: all but
# the deadline's, which the client cut short (nghttpx may or may not log a cancelled request).
# A request is logged once its stream has closed, a moment after the client saw the status.
want_through=$((200 + ${#GM_CHECKS[@]} - 1))
through() {
    grep -c '"POST /meshtest\.Mesh/[A-Za-z]* HTTP/2" 200 ' "$work/nghttpx-alpha.access"
}
logged_all() { (($(through) >= want_through)); }
if t_until 5 logged_all; then
    t_ok "nghttpx: its access log has the calls"
else
    t_fail "nghttpx: its access log has the calls" \
        "$(through) gRPC requests logged, want at least $want_through"
fi

for s in alpha beta; do
    gm_stop "$s" || {
        guard_fail "the gRPC server $s did not exit 0 on SIGTERM: $(tail -n 3 "$work/grpc-$s.out" | tr '\n' ' ')"
        T_FAILED=$((T_FAILED + 1))
    }
done
t_summary
