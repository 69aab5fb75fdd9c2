# shellcheck shell=bash
# simcluster.sh — a simulated cluster of network-namespace "pods" joined by a bridge in a private
# switch namespace; shared by the e2e tests, `make demo` and the benchmarks. Source it, never run.
#
# Everything a run creates is named after its SIM_ID (rm<id>-*), lives outside the host
# namespace, and is removed by sim_teardown, which sim_init arms on EXIT, INT and TERM. The
# teardown also checks every sidecar's exit status and scans every log for sanitizer reports:
# either failure fails the run. See docs/simcluster.md.

SIM_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SIM_ROOT=$(cd "$SIM_LIB_DIR/../.." && pwd)
# shellcheck source=test/lib/guards.sh
source "$SIM_LIB_DIR/guards.sh"

SIM_BRIDGE_IP=198.18.0.1
SIM_PROXY_UID=1337
SIM_ADMIN_URL=http://127.0.0.1:15000
SIM_GRACE_SECONDS=${SIM_GRACE_SECONDS:-10}

# Resolves $BUILD (default "build") against the repository root unless it is absolute.
_sim_build_dir() {
    local b=${BUILD:-build}
    case $b in
    /*) printf '%s\n' "$b" ;;
    *) printf '%s\n' "$SIM_ROOT/$b" ;;
    esac
}

_sim_err() {
    printf 'simcluster: %s\n' "$*" >&2
}

sim_switch_ns() {
    printf 'rm%s-sw\n' "$SIM_ID"
}

# sim_ns NAME — the namespace of pod NAME.
sim_ns() {
    printf 'rm%s-%s\n' "$SIM_ID" "$1"
}

# sim_ip NAME — the address of pod NAME.
sim_ip() {
    local ip
    ip=$(awk -v n="$1" '$2 == n { print $1 }' "$SIM_DIR/hosts" 2>/dev/null)
    if [[ -z $ip ]]; then
        _sim_err "no pod named '$1'"
        return 1
    fi
    printf '%s\n' "$ip"
}

# sim_init — creates the switch namespace and its bridge, arms teardown, exports SIM_ID, SIM_DIR.
sim_init() {
    local id sw tries
    # One cluster per shell. A subshell (or a child script, which inherits the exported SIM_ID)
    # may start a cluster of its own; its teardown then removes only that one.
    if [[ ${_SIM_OWNER:-} == "$BASHPID" ]]; then
        _sim_err "sim_init called twice in one shell (SIM_ID=$SIM_ID)"
        return 1
    fi
    SIM_ID=
    SIM_DIR=
    _SIM_OWNER=$BASHPID
    if [[ $(id -u) != 0 ]]; then
        _sim_err "needs root to create network namespaces"
        return 1
    fi
    SIM_BUILD=$(_sim_build_dir)
    export SIM_BUILD

    # Arm teardown before creating anything, so a failure half-way still cleans up.
    trap _sim_on_exit EXIT
    trap '_sim_on_signal 130' INT
    trap '_sim_on_signal 143' TERM

    # Claim an id by creating its switch namespace: `ip netns add` fails if the name exists, so
    # two concurrent runs can never share one.
    for tries in 1 2 3 4 5 6 7 8 9 10; do
        id=$(printf '%05x' $(((($$ & 0xff) << 12 | (RANDOM & 0xfff)) ^ (tries << 16))))
        id=${id: -5}
        if ip netns add "rm$id-sw" 2>/dev/null; then
            SIM_ID=$id
            break
        fi
    done
    if [[ -z ${SIM_ID:-} ]]; then
        _sim_err "could not claim a free simulation id"
        return 1
    fi
    export SIM_ID
    # Lets a test runner find and clean up after a script that was killed before its teardown.
    if [[ -n ${SIM_IDS_FILE:-} ]]; then
        printf '%s\n' "$SIM_ID" >>"$SIM_IDS_FILE"
    fi

    SIM_DIR=$(mktemp -d "${TMPDIR:-/tmp}/remora-sim-$SIM_ID.XXXXXX") || return 1
    # World-readable: the sidecar runs as uid 1337 and reads its config from here.
    chmod 755 "$SIM_DIR"
    export SIM_DIR
    printf '127.0.0.1\tlocalhost\n' >"$SIM_DIR/hosts"
    : >"$SIM_DIR/pids"
    : >"$SIM_DIR/deferred"
    : >"$SIM_DIR/sidecars"

    sw=$(sim_switch_ns)
    if ! { ip -n "$sw" link set lo up &&
        ip -n "$sw" link add br0 type bridge &&
        ip -n "$sw" addr add "$SIM_BRIDGE_IP/16" dev br0 &&
        ip -n "$sw" link set br0 up; }; then
        _sim_err "could not set up the bridge in $sw"
        return 1
    fi
}

# sim_pod NAME IP — creates pod NAME: a namespace with lo up and eth0 at IP/16 on the bridge,
# default route via the bridge, and /etc/hosts naming every pod.
sim_pod() {
    local name=${1:-} ip=${2:-} ns sw
    if [[ -z ${SIM_ID:-} ]]; then
        _sim_err "sim_pod before sim_init"
        return 1
    fi
    # The switch-side link is "v<name>", and link names are at most 15 bytes.
    if [[ ! $name =~ ^[a-z0-9]([a-z0-9-]{0,12}[a-z0-9])?$ ]]; then
        _sim_err "bad pod name '$name' (want 1-14 of [a-z0-9-])"
        return 1
    fi
    if [[ ! $ip =~ ^198\.18\.(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})$ ]] ||
        ((BASH_REMATCH[1] > 255 || BASH_REMATCH[2] > 255)) ||
        [[ $ip == "$SIM_BRIDGE_IP" || $ip == 198.18.0.0 || $ip == 198.18.255.255 ]]; then
        _sim_err "bad pod address '$ip' (want a host in 198.18.0.0/16 other than $SIM_BRIDGE_IP)"
        return 1
    fi
    if awk -v n="$name" -v a="$ip" '$2 == n || $1 == a { f = 1 } END { exit !f }' \
        "$SIM_DIR/hosts"; then
        _sim_err "pod name '$name' or address $ip already used"
        return 1
    fi
    ns=$(sim_ns "$name")
    sw=$(sim_switch_ns)
    ip netns add "$ns" || return 1
    if ! { ip -n "$ns" link set lo up &&
        ip -n "$sw" link add "v$name" type veth peer name eth0 netns "$ns" &&
        ip -n "$sw" link set "v$name" master br0 up &&
        ip -n "$ns" addr add "$ip/16" dev eth0 &&
        ip -n "$ns" link set eth0 up &&
        ip -n "$ns" route add default via "$SIM_BRIDGE_IP"; }; then
        _sim_err "could not wire pod $name"
        return 1
    fi
    printf '%s\t%s\n' "$ip" "$name" >>"$SIM_DIR/hosts"
    _sim_sync_hosts
}

# sim_alias NAME ALIAS... — more host names for pod NAME in every pod's hosts file (as the
# network aliases of a docker-compose service): "service1" or "db.example.com" resolve to it.
sim_alias() {
    local name=$1 ip a
    shift
    ip=$(sim_ip "$name") || return 1
    for a in "$@"; do
        if [[ ! $a =~ ^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]]; then
            _sim_err "bad host name '$a'"
            return 1
        fi
    done
    awk -v n="$name" -v more="$*" 'NR > 1 && $2 == n { $0 = $0 " " more } { print }' \
        "$SIM_DIR/hosts" >"$SIM_DIR/hosts.new" && cat "$SIM_DIR/hosts.new" >"$SIM_DIR/hosts" &&
        rm -f "$SIM_DIR/hosts.new" || return 1
    _sim_sync_hosts
}

# Rewrites every pod's hosts file in place (same inode), so processes already running in a pod,
# which see it through a bind mount, also see pods added after they started.
_sim_sync_hosts() {
    local n ns names
    mapfile -t names < <(awk 'NR > 1 { print $2 }' "$SIM_DIR/hosts")
    for n in "${names[@]}"; do
        ns=$(sim_ns "$n")
        mkdir -p "/etc/netns/$ns" || return 1
        cat "$SIM_DIR/hosts" >"/etc/netns/$ns/hosts" || return 1
    done
}

# sim_exec NAME CMD... — runs CMD in pod NAME (as root).
sim_exec() {
    local ns
    ns=$(sim_ns "$1") || return 1
    shift
    ip netns exec "$ns" "$@"
}

# sim_bg NAME LOG CMD... — starts CMD in pod NAME in the background with output to LOG and
# prints its pid. The pid is remembered in a file, so this also works inside $(...).
sim_bg() {
    local ns log=$2 pid
    ns=$(sim_ns "$1") || return 1
    shift 2
    # `ip netns exec` execs CMD in place, so $! is CMD's own pid.
    ip netns exec "$ns" "$@" </dev/null >"$log" 2>&1 &
    pid=$!
    printf '%s\n' "$pid" >>"$SIM_DIR/pids"
    printf '%s\n' "$pid"
}

# sim_defer CMD — runs the shell command CMD first thing in sim_teardown.
sim_defer() {
    printf '%s\n' "$*" >>"$SIM_DIR/deferred"
}

# sim_capture NAME [flags...] — installs the traffic capture rules in pod NAME.
sim_capture() {
    local name=$1
    shift
    sim_exec "$name" "$SIM_BUILD/remoractl" iptables apply "$@"
}

# Prints a path uid 1337 can read (and execute, with x): the file itself if it already can,
# otherwise a world-readable copy in SIM_DIR. Copies keep the sidecar working when the checkout
# sits under a directory closed to other users (e.g. /root).
_sim_readable_by_proxy() {
    local f=$1 perm=$2 copy
    if setpriv --reuid="$SIM_PROXY_UID" --regid="$SIM_PROXY_UID" --clear-groups \
        test "-$perm" "$f" 2>/dev/null; then
        printf '%s\n' "$f"
        return 0
    fi
    mkdir -p "$SIM_DIR/proxy-files" && chmod 755 "$SIM_DIR/proxy-files" || return 1
    copy=$SIM_DIR/proxy-files/$(basename "$f")
    # Copied once per run: a later sidecar must not overwrite a binary another one is running
    # ("Text file busy").
    if [[ -e $copy ]] && cmp -s "$f" "$copy"; then
        printf '%s\n' "$copy"
        return 0
    fi
    cp "$f" "$copy" && chmod a+r "$copy" || return 1
    [[ $perm == x ]] && chmod a+x "$copy"
    printf '%s\n' "$copy"
}

_sim_http_code() {
    sim_exec "$1" curl -s --noproxy '*' -m 1 -o /dev/null -w '%{http_code}' "$SIM_ADMIN_URL$2" \
        2>/dev/null
}

# sim_sidecar NAME CONFIG [remora args...] — starts remora in pod NAME as uid/gid 1337 and waits
# up to 10 s for its admin /ready to answer 200. Sets SIM_LAST_PID; the pid is also written to
# $SIM_DIR/NAME-remora.pid, and its exit status, once it exits, to $SIM_DIR/NAME-remora.status
# (by a shell that waits for it: the sidecar is no child of the story's shell). On failure
# prints the log tail, stops the process and returns 1; a sidecar that started is checked at
# teardown: it must have exited with status 0. For configs that are not a sidecar's (Envoy's
# examples): SIM_SIDECAR_DIR is the working directory their relative paths are read from, and
# SIM_SIDECAR_READY=log waits for the "ready" log line instead of an admin endpoint on 15000,
# and SIM_SIDECAR_READY=none returns once the process runs (the story watches it get ready).
sim_sidecar() {
    local name=$1 config=$2 bin cfg log pid i code=000 ns base
    shift 2
    log=$SIM_DIR/$name-remora.log
    base=$SIM_DIR/$name-remora
    if [[ ! -x $SIM_BUILD/remora ]]; then
        _sim_err "no executable $SIM_BUILD/remora (run make)"
        return 1
    fi
    if [[ ! -r $config ]]; then
        _sim_err "cannot read sidecar config $config"
        return 1
    fi
    bin=$(_sim_readable_by_proxy "$SIM_BUILD/remora" x) || return 1
    cfg=$(_sim_readable_by_proxy "$config" r) || return 1
    ns=$(sim_ns "$name") || return 1
    rm -f "$base.pid" "$base.status" "$base.waiter"
    # The shell in between only waits: signals go to the sidecar itself, by its pid.
    # shellcheck disable=SC2016 # expanded by that shell
    ip netns exec "$ns" sh -c 'cd "$1" || exit 1; shift
        "$@" & echo "$!" >"$0.pid.tmp" && mv "$0.pid.tmp" "$0.pid"
        wait "$!"; echo "$?" >"$0.status.tmp" && mv "$0.status.tmp" "$0.status"' "$base" \
        "${SIM_SIDECAR_DIR:-$PWD}" setpriv --reuid="$SIM_PROXY_UID" --regid="$SIM_PROXY_UID" --clear-groups \
        "$bin" --config "$cfg" "$@" </dev/null >"$log" 2>&1 &
    printf '%s\n' "$!" >"$base.waiter"
    for ((i = 0; i < 100; i++)); do
        [[ -s $base.pid ]] && break
        sleep 0.05
    done
    pid=$(cat "$base.pid" 2>/dev/null)
    if [[ -z $pid ]]; then
        _sim_err "sidecar in pod $name did not start"
        return 1
    fi
    printf '%s\n' "$pid" >>"$SIM_DIR/pids"
    export SIM_LAST_PID=$pid
    if [[ ${SIM_SIDECAR_READY:-} == none ]]; then
        printf '%s\n' "$name" >>"$SIM_DIR/sidecars"
        return 0
    fi
    for ((i = 0; i < 100; i++)); do
        if [[ ${SIM_SIDECAR_READY:-} == log ]]; then
            grep -q 'workers listening: ready' "$log" && code=200
        else
            code=$(_sim_http_code "$name" /ready)
        fi
        if [[ $code == 200 ]]; then
            printf '%s\n' "$name" >>"$SIM_DIR/sidecars"
            return 0
        fi
        if ! sim_alive "$pid"; then
            _sim_err "sidecar in pod $name exited before it was ready; $log ends:"
            tail -n 20 "$log" >&2
            return 1
        fi
        sleep 0.1
    done
    _sim_err "sidecar in pod $name not ready after 10 s (last /ready status $code); $log ends:"
    tail -n 20 "$log" >&2
    kill -TERM "$pid" 2>/dev/null
    return 1
}

# sim_stop NAME [SECONDS] — sends SIGTERM to pod NAME's sidecar and prints its exit status once
# it has exited ("0" for a clean exit), or "running" if it has not within SECONDS (default
# SIM_GRACE_SECONDS). Works inside $(...).
sim_stop() {
    local base=$SIM_DIR/$1-remora i
    kill -TERM "$(cat "$base.pid")" 2>/dev/null
    for ((i = 0; i < ${2:-$SIM_GRACE_SECONDS} * 20; i++)); do
        [[ -s $base.status ]] && break
        sleep 0.05
    done
    if [[ -s $base.status ]]; then
        guard_status_text "$(cat "$base.status")"
    else
        echo running
    fi
}

# sim_admin NAME PATH — prints the body of the pod's admin endpoint at PATH (e.g. /stats).
sim_admin() {
    sim_exec "$1" curl -sS --noproxy '*' -m 5 "$SIM_ADMIN_URL$2"
}

# The namespaces of this run that exist now (pods and switch).
_sim_list_ns() {
    ip netns list 2>/dev/null | awk -v p="rm$SIM_ID-" 'index($1, p) == 1 { print $1 }'
}

# sim_alive PID — true while PID runs. Unlike `kill -0` it is false for a zombie: processes
# started inside $(...) are orphans, and not every PID 1 (e.g. in containers) reaps them.
sim_alive() {
    local st
    st=$(ps -o stat= -p "$1" 2>/dev/null) && [[ -n $st && $st != Z* ]]
}

# True if pid is alive in one of this run's namespaces; guards against killing a recycled pid.
_sim_pid_is_ours() {
    local ns
    ns=$(ip netns identify "$1" 2>/dev/null) || return 1
    [[ $ns == "rm$SIM_ID-"* ]]
}

_sim_on_signal() {
    trap - INT TERM
    sim_teardown
    exit "$1"
}

# The EXIT trap: a trap's own status is lost unless it exits with it.
_sim_on_exit() {
    sim_teardown
    exit $?
}

# True once every started sidecar has its exit status written and every remembered process is
# gone.
_sim_all_stopped() {
    local pid name
    for pid in "$@"; do
        sim_alive "$pid" && return 1
    done
    [[ -f $SIM_DIR/sidecars ]] || return 0
    while read -r name; do
        [[ -s $SIM_DIR/$name-remora.status ]] || return 1
    done <"$SIM_DIR/sidecars"
}

# sim_teardown — stops every process and removes every namespace, link, hosts file and (unless
# SIM_KEEP=1) the temp dir of this run. Idempotent; safe after a half-finished sim_init.
# Returns the caller's exit status, so it can run as the EXIT trap, or 1 when the caller
# succeeded but a sidecar did not exit with status 0 or a log holds a sanitizer report (each
# printed as a FAIL line; the logs are then kept).
sim_teardown() {
    local rc=$? ns pid pids=() others=() keep i left cmd name st bad=0
    local -
    set +e +u
    [[ -n $SIM_ID ]] || return "$rc"

    if [[ -s $SIM_DIR/deferred ]]; then
        while IFS= read -r cmd; do
            eval "$cmd"
        done <"$SIM_DIR/deferred"
        : >"$SIM_DIR/deferred"
    fi

    # Apps, clients and strays first (everything in our namespaces but the sidecars and the
    # shells waiting for them): the connections they hold close, so a sidecar's drain has
    # nothing left to wait for.
    if [[ -f $SIM_DIR/pids ]]; then
        while read -r pid; do
            _sim_pid_is_ours "$pid" && pids+=("$pid")
        done <"$SIM_DIR/pids"
    fi
    keep=" $(cat "$SIM_DIR"/*-remora.pid "$SIM_DIR"/*-remora.waiter 2>/dev/null | tr '\n' ' ') "
    for ns in $(_sim_list_ns); do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            [[ $keep == *" $pid "* ]] || others+=("$pid")
        done
    done
    if ((${#others[@]})); then
        kill -TERM "${others[@]}" 2>/dev/null
        for ((i = 0; i < 20; i++)); do
            left=0
            for pid in "${others[@]}"; do
                sim_alive "$pid" && left=1
            done
            ((left)) || break
            sleep 0.1
        done
        kill -KILL "${others[@]}" 2>/dev/null
    fi
    # Then the sidecars, politely: each gets to drain, flush its logs and exit 0.
    ((${#pids[@]})) && kill -TERM "${pids[@]}" 2>/dev/null
    for ((i = 0; i < SIM_GRACE_SECONDS * 10; i++)); do
        _sim_all_stopped "${pids[@]}" && break
        sleep 0.1
    done
    # Then anything at all still inside our namespaces (children, strays), without mercy: a
    # namespace with a live process outlives `ip netns del` and keeps its links.
    for i in 1 2 3 4 5; do
        left=0
        for ns in $(_sim_list_ns); do
            for pid in $(ip netns pids "$ns" 2>/dev/null); do
                kill -KILL "$pid" 2>/dev/null && left=1
            done
        done
        ((left)) || break
        sleep 0.1
    done
    # Reap the ones that are our children; never a bare `wait`, which would also block on
    # unrelated background jobs of the caller.
    ((${#pids[@]})) && wait "${pids[@]}" 2>/dev/null

    # Pods before the switch; deleting the switch destroys the bridge and the v* veth ends,
    # which takes the pods' eth0 peers with them.
    for ns in $(_sim_list_ns); do
        [[ $ns == "rm$SIM_ID-sw" ]] && continue
        ip netns del "$ns" 2>/dev/null
        rm -rf "/etc/netns/$ns"
    done
    if ip netns list 2>/dev/null | awk '{ print $1 }' | grep -qx "rm$SIM_ID-sw"; then
        ip netns del "rm$SIM_ID-sw" 2>/dev/null
    fi
    # Hosts dirs of pods whose namespace creation failed half-way.
    for ns in /etc/netns/rm"$SIM_ID"-*; do
        [[ -e $ns ]] && rm -rf "$ns"
    done

    # Every sidecar that started must have exited with status 0 (SIGTERM drains, then exits 0;
    # a crash, a sanitizer's abort or a leak report at exit does not), and no log may hold a
    # sanitizer report. Checked before SIM_DIR goes.
    if [[ -s $SIM_DIR/sidecars ]]; then
        while read -r name; do
            st=$(cat "$SIM_DIR/$name-remora.status" 2>/dev/null)
            [[ $st == 0 ]] && continue
            if [[ -z $st ]]; then
                st="still running ${SIM_GRACE_SECONDS}s after SIGTERM (killed)"
            else
                st=$(guard_status_text "$st")
            fi
            guard_fail "sidecar in pod $name: exit status $st; log $SIM_DIR/$name-remora.log"
            bad=1
        done < <(sort -u "$SIM_DIR/sidecars")
        : >"$SIM_DIR/sidecars"
    fi
    guard_scan_logs "$SIM_DIR" || bad=1
    ((bad)) && SIM_KEEP=1
    if [[ -n $SIM_DIR && -d $SIM_DIR ]]; then
        if [[ ${SIM_KEEP:-0} == 1 ]]; then
            printf 'simcluster: kept logs in %s\n' "$SIM_DIR" >&2
        else
            rm -rf "$SIM_DIR"
        fi
    fi
    ((bad && rc == 0)) && return 1
    return "$rc"
}
