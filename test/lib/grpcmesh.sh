# shellcheck shell=bash
# grpcmesh.sh — the gRPC peers at both ends of a mesh path (test/e2e/grpc_mesh/, described in
# docs/http2-peers.md): a @grpc/grpc-js server serving meshtest.Mesh over h2c, named so that a
# story can tell endpoints apart, and a client that runs named checks (or a load) against a
# target, optionally with an :authority of its own. Also nghttpx as an h2c reverse proxy, the
# reference proxy the peers are proven through. Source it after testlib.sh and loopback.sh
# (every process runs under LB_WORK and is stopped by its exit trap); never run it.

GM_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GM_ROOT=$(cd "$GM_LIB_DIR/../.." && pwd)
GM_PEERS=$GM_ROOT/test/e2e/grpc_mesh
# The pinned packages, installed once per lock file (shared by every build).
GM_NPM=${GM_NPM:-$GM_ROOT/build/npm-grpc-mesh}
# shellcheck source=test/lib/npm.sh
source "$GM_LIB_DIR/npm.sh"
[[ -n ${LB_WORK:-} ]] || {
    echo "grpcmesh.sh: source loopback.sh first" >&2
    exit 1
}
declare -A GM_PORT # server name -> the port it bound
declare -A GM_PID  # server name -> its pid
GM_CHECKS=()       # every check the client knows, in the order it runs them (gm_install sets it)

# gm_install — installs @grpc/grpc-js and @grpc/proto-loader at the versions
# test/e2e/grpc_mesh/package-lock.json pins into GM_NPM (npm_peers: fails the story as root
# without node, npm or the registry, skips it otherwise) and reads the client's list of checks
# into GM_CHECKS.
gm_install() {
    npm_peers "$GM_PEERS" "$GM_NPM" "$LB_WORK/npm-grpc-mesh.out"
    mapfile -t GM_CHECKS < <(NODE_PATH=$GM_NPM/node_modules node "$GM_PEERS/client.js" --list-checks)
    ((${#GM_CHECKS[@]})) || t_stop "client.js --list-checks named no check"
}

# gm_server NAME [HOST] — starts the server named NAME on HOST (127.0.0.1) at a port it binds
# itself (log $LB_WORK/grpc-NAME.out: one line per call), waits until it wrote that port down
# and sets GM_PORT[NAME], GM_PID[NAME] and LAST_PID; non-zero, with the log's end on stderr,
# if it did not start within 15 s. Stopped at exit like every bg process.
gm_server() {
    local name=$1 host=${2:-127.0.0.1} file=$LB_WORK/grpc-$1.port
    rm -f "$file"
    NODE_PATH=$GM_NPM/node_modules bg "$LB_WORK/grpc-$name.out" \
        node "$GM_PEERS/server.js" --listen "$host:0" --name "$name" --port-file "$file"
    GM_PID[$name]=$LAST_PID
    if ! t_until 15 _gm_started "$LAST_PID" "$file" || [[ ! -s $file ]]; then
        echo "grpcmesh: server '$name' did not start: $(tail -n 5 "$LB_WORK/grpc-$name.out" | tr '\n' ' ')" >&2
        return 1
    fi
    # shellcheck disable=SC2034 # GM_PORT is read by the stories
    GM_PORT[$name]=$(cat "$file")
}
_gm_started() { [[ -s $2 ]] || ! lb_alive "$1"; }

# gm_stop NAME — stops the server NAME (SIGTERM, which it answers with status 0) and reaps it;
# non-zero if it had already died or exited otherwise.
gm_stop() {
    local pid=${GM_PID[$1]:-} rc
    [[ -n $pid ]] || return 1
    kill -TERM "$pid" 2>/dev/null || return 1
    wait "$pid" 2>/dev/null
    rc=$?
    unset "GM_PID[$1]" "GM_PORT[$1]"
    return "$rc"
}

# gm_said NAME PATTERN — how many lines of server NAME's log match PATTERN (grep -E).
gm_said() {
    grep -cE -- "$2" "$LB_WORK/grpc-$1.out"
}

# gm_client OUT ARGS... — runs client.js ARGS (see its header: --target, --authority, --server,
# --checks, --load...) to its end, its stdout into OUT and its stderr into OUT.err; returns the
# client's exit status. Never call it inside $(...) when OUT is needed afterwards.
gm_client() {
    local out=$1
    shift
    NODE_PATH=$GM_NPM/node_modules node "$GM_PEERS/client.js" "$@" >"$out" 2>"$out.err"
}

# gm_checks LABEL ARGS... — runs every check of GM_CHECKS (client.js ARGS --checks all) and
# makes each one check of the story, named "LABEL: CHECK": its "ok" line passes, its "not ok"
# line fails with the client's why, no line fails too. So a story runs exactly
# ${#GM_CHECKS[@]} checks per call, whatever the client does. A client whose exit status
# disagrees with its lines (non-zero with none failed, 0 with one failed) fails the story.
gm_checks() {
    local label=$1 out c line rc bad=0
    shift
    out=$LB_WORK/client.$RANDOM.$RANDOM
    gm_client "$out" "$@" --checks "$(
        IFS=,
        echo "${GM_CHECKS[*]}"
    )"
    rc=$?
    for c in "${GM_CHECKS[@]}"; do
        line=$(grep -m1 -E "^(ok|not ok) $c(:|$)" "$out")
        case $line in
        "ok $c") t_ok "$label: $c" ;;
        "not ok $c: "*)
            t_fail "$label: $c" "${line#"not ok $c: "}"
            bad=1
            ;;
        *)
            t_fail "$label: $c" "the client said nothing of it (exit status $(guard_status_text "$rc")): $(tail -n 3 "$out.err" | tr '\n' ' ')"
            bad=1
            ;;
        esac
    done
    if (((rc != 0) != bad)); then
        guard_fail "client.js exited with status $(guard_status_text "$rc") after $label's checks: $(tail -n 3 "$out.err" | tr '\n' ' ')"
        T_FAILED=$((T_FAILED + 1))
    fi
}

# gm_load VAR ARGS... — runs client.js ARGS in load mode (--load N [--concurrency C]
# [--fail-one-in K]...) and sets VAR to its report, one "status CODE COUNT", "server NAME COUNT"
# and "total N" line each, as the client printed it (sorted). Non-zero if the client failed.
gm_load() {
    local out=$LB_WORK/load.$RANDOM.$RANDOM rc
    gm_client "$out" "${@:2}"
    rc=$?
    printf -v "$1" '%s' "$(cat "$out")"
    ((rc == 0)) || echo "grpcmesh: load client exited $(guard_status_text "$rc"): $(tail -n 3 "$out.err" | tr '\n' ' ')" >&2
    return "$rc"
}

# gm_nghttpx VAR NAME BACKEND_PORT — nghttpx as a plaintext HTTP/2 (h2c) reverse proxy on a
# port of 127.0.0.1 (lb_serve picks it, sets VAR), forwarding over h2c to 127.0.0.1:BACKEND_PORT,
# in one process (--single-process), logging to $LB_WORK/nghttpx-NAME.log (errors) and
# $LB_WORK/nghttpx-NAME.access (one line per request). Sets LAST_PID; non-zero if it did not
# start. nghttpx is in the Debian package nghttp2-proxy.
gm_nghttpx() {
    local _gm_var=$1 _gm_name=$2 _gm_backend=$3
    command -v nghttpx >/dev/null 2>&1 || {
        printf 'FAIL: %s: needs nghttpx: install the Debian package nghttp2-proxy (make deps does)\n' "$T_SCRIPT"
        exit 1
    }
    lb_serve "$_gm_var" "$LB_WORK/nghttpx-$_gm_name.out" nghttpx --conf=/dev/null --single-process \
        --workers=1 --frontend="127.0.0.1,@$_gm_var@;no-tls" \
        --backend="127.0.0.1,$_gm_backend;;proto=h2" \
        --errorlog-file="$LB_WORK/nghttpx-$_gm_name.log" \
        --accesslog-file="$LB_WORK/nghttpx-$_gm_name.access"
}
