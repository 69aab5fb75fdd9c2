#!/usr/bin/env bash
# test_simcluster.sh — the simulated cluster helper: pods reach each other over the bridge by
# address and by name, the sidecar launcher works, and teardown leaves nothing behind — also
# when a script fails midway or is killed.
# checks: 42
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=test/lib/testlib.sh
source "$here/../lib/testlib.sh"
# shellcheck source=test/lib/simcluster.sh
source "$here/../lib/simcluster.sh"

t_require_root
t_require_cmd socat curl setpriv ping ss

# Prints the leftovers of run ID: namespaces, hosts dirs, temp dirs. Empty means clean.
leftovers() {
    local id=$1
    ip netns list | awk -v p="rm$id-" 'index($1, p) == 1 { print "netns " $1 }'
    find /etc/netns -maxdepth 1 -name "rm$id-*" 2>/dev/null | sed 's/^/hosts dir /'
    find "${TMPDIR:-/tmp}" -maxdepth 1 -name "remora-sim-$id.*" 2>/dev/null | sed 's/^/dir /'
}

# Waits until something listens on TCP port $2 in pod $1.
wait_listen() {
    local i
    for ((i = 0; i < 50; i++)); do
        sim_exec "$1" ss -Hltn "sport = :$2" 2>/dev/null | grep -q . && return 0
        sleep 0.1
    done
    return 1
}

# Prints what a TCP server at $2:$3 says when pod $1 connects.
tcp_get() {
    sim_exec "$1" socat -T3 - "TCP:$2:$3,connect-timeout=3" </dev/null 2>&1
}

if ! sim_init; then
    t_fail sim_init "could not create the switch namespace"
    t_summary
fi
t_ok "sim_init creates a switch namespace"
if ! { sim_pod a 198.18.0.2 && sim_pod b 198.18.0.3 && sim_pod c 198.18.1.4; }; then
    t_fail sim_pod "could not create pods a, b, c"
    t_summary
fi

# --- topology --------------------------------------------------------------------------------
t_eq "a run has one namespace per pod plus the switch" \
    "$(ip netns list | grep -c "^rm$SIM_ID-")" 4
t_eq "pod eth0 has its address" \
    "$(sim_exec a ip -4 -o addr show dev eth0 | awk '{ print $4 }')" "198.18.0.2/16"
t_eq "pod default route goes to the bridge" \
    "$(sim_exec c ip route show default | awk '{ print $3 }')" "$SIM_BRIDGE_IP"
t_eq "pod lo is up" "$(sim_exec b cat /sys/class/net/lo/operstate)" "unknown"
t_eq "all pod links hang off the bridge in the switch namespace" \
    "$(ip -n "$(sim_switch_ns)" -o link show master br0 | awk -F': ' '{ print $2 }' |
        sed 's/@.*//' | sort | tr '\n' ' ')" "va vb vc "
if ip -o addr show | grep -q ' 198\.18\.'; then
    t_fail "host namespace holds no pod address" "$(ip -o addr show | grep ' 198\.18\.')"
else
    t_ok "host namespace holds no pod address"
fi
t_eq "sim_ip prints a pod's address" "$(sim_ip c)" "198.18.1.4"

# --- connectivity ----------------------------------------------------------------------------
t_run "pod a pings pod c across the bridge" sim_exec a ping -c 1 -W 2 198.18.1.4
sim_bg c "$SIM_DIR/c-server.log" socat TCP-LISTEN:7000,reuseaddr,fork \
    EXEC:"echo hello-from-c" >/dev/null
if wait_listen c 7000; then
    t_eq "pod a connects to a server in pod c by address" \
        "$(tcp_get a 198.18.1.4 7000)" "hello-from-c"
    t_eq "pod b connects to pod c by name" "$(tcp_get b c 7000)" "hello-from-c"
else
    t_fail "server in pod c listens" "$(cat "$SIM_DIR/c-server.log")"
fi
t_eq "pod names resolve through the pod's hosts file" \
    "$(sim_exec a getent ahostsv4 c | awk 'NR == 1 { print $1 }')" "198.18.1.4"
sim_pod d 198.18.2.5
t_eq "pods added later are named in every pod's hosts file" \
    "$(sim_exec a getent ahostsv4 d | awk 'NR == 1 { print $1 }')" "198.18.2.5"
if out=$(tcp_get a 198.19.0.10 80) && [[ -n $out ]]; then
    t_fail "a service VIP is unreachable without a sidecar" "got '$out'"
else
    t_ok "a service VIP is unreachable without a sidecar"
fi

# --- argument checks -------------------------------------------------------------------------
if sim_pod e 10.0.0.5 2>/dev/null; then
    t_fail "sim_pod refuses addresses outside 198.18.0.0/16" "accepted 10.0.0.5"
else
    t_ok "sim_pod refuses addresses outside 198.18.0.0/16"
fi
if sim_pod e 198.18.0.2 2>/dev/null; then
    t_fail "sim_pod refuses an address in use" "accepted 198.18.0.2 twice"
else
    t_ok "sim_pod refuses an address in use"
fi
if sim_pod "this-name-is-too-long" 198.18.0.9 2>/dev/null; then
    t_fail "sim_pod refuses a name too long for a link" "accepted"
else
    t_ok "sim_pod refuses a name too long for a link"
fi

# --- sidecar launcher, with a stand-in for remora --------------------------------------------
# The stand-in checks what sim_sidecar promises: uid/gid 1337 and a readable --config; then it
# serves the admin port the way remora does, and exits 0 on SIGTERM as remora does (teardown
# checks every sidecar's exit status).
fake=$SIM_DIR/fakebuild
mkdir -p "$fake"
cat >"$fake/admin-handler.sh" <<'EOF'
#!/bin/sh
path=
while IFS= read -r line; do
    line=$(printf '%s' "$line" | tr -d '\r')
    [ -z "$line" ] && break
    case $line in GET\ *) path=${line#GET }; path=${path%% *} ;; esac
done
body="stand-in $path"
printf 'HTTP/1.0 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s\n' \
    $((${#body} + 1)) "$body"
EOF
cat >"$fake/remora" <<EOF
#!/bin/sh
[ "\$(id -u)" = 1337 ] && [ "\$(id -g)" = 1337 ] || { echo "stand-in: not uid/gid 1337" >&2; exit 1; }
[ "\$1" = --config ] && [ -r "\$2" ] || { echo "stand-in: no readable --config" >&2; exit 1; }
socat TCP-LISTEN:15000,bind=127.0.0.1,reuseaddr,fork EXEC:$fake/admin-handler.sh &
trap 'kill \$!; exit 0' TERM
# Not a bare wait: teardown stops the socat (not a sidecar) before it sends the sidecar TERM.
while :; do sleep 0.1; done
EOF
cat >"$fake/remora-broken" <<'EOF'
#!/bin/sh
echo "stand-in: boom, cannot start" >&2
exit 1
EOF
chmod 755 "$fake"/*
echo "node: {id: a}" >"$SIM_DIR/a.yaml"
chmod 600 "$SIM_DIR/a.yaml" # only root can read it: sim_sidecar must hand 1337 a readable copy

if SIM_BUILD=$fake sim_sidecar a "$SIM_DIR/a.yaml"; then
    t_ok "sim_sidecar waits until the admin endpoint is ready"
else
    t_fail "sim_sidecar waits until the admin endpoint is ready" \
        "$(tail -n 5 "$SIM_DIR/a-remora.log")"
fi
t_eq "sim_sidecar runs the sidecar as uid 1337" "$(ps -o uid= -p "$SIM_LAST_PID" | tr -d ' ')" 1337
t_eq "sim_admin prints the admin body" "$(sim_admin a /server_info)" "stand-in /server_info"
cp "$fake/remora" "$fake/remora-good"
cp "$fake/remora-broken" "$fake/remora"
start=$SECONDS
err=$(SIM_BUILD=$fake sim_sidecar b "$SIM_DIR/a.yaml" 2>&1)
t_eq "sim_sidecar fails when the sidecar dies" "$?" 1
t_contains "sim_sidecar shows the log tail of a sidecar that died" "$err" "boom"
if ((SECONDS - start < 5)); then
    t_ok "sim_sidecar fails fast when the sidecar dies"
else
    t_fail "sim_sidecar fails fast when the sidecar dies" "took $((SECONDS - start)) s"
fi

# --- teardown --------------------------------------------------------------------------------
# Each scenario runs its own cluster in a subshell (its own SIM_ID, its own EXIT trap) and
# leaves its id in $SIM_DIR so we can look for leftovers afterwards.
outer=$SIM_DIR

(
    sim_init || exit 1
    echo "$SIM_ID" >"$outer/normal.id"
    sim_pod x 198.18.0.2 && sim_pod y 198.18.0.3 || exit 1
    pid=$(sim_bg x /dev/null sleep 1000)
    echo "$pid" >"$outer/normal.pid"
    # A stray that sim_bg never heard of: teardown must still find it via `ip netns pids`.
    sim_exec y sh -c 'sleep 1000 </dev/null >/dev/null 2>&1 & echo $!' >"$outer/stray.pid"
)
id=$(cat "$outer/normal.id")
t_eq "teardown on normal exit leaves nothing" "$(leftovers "$id")" ""
t_eq "teardown stops processes started with sim_bg" \
    "$(sim_alive "$(cat "$outer/normal.pid")" && echo alive)" ""
t_eq "teardown stops processes it did not start" \
    "$(sim_alive "$(cat "$outer/stray.pid")" && echo alive)" ""
if ip -o link show type veth | grep -qE ': v[xy]@|: eth0@'; then
    t_fail "teardown leaves no veth" "$(ip -o link show type veth)"
else
    t_ok "teardown leaves no veth"
fi

(
    set -e
    sim_init
    echo "$SIM_ID" >"$outer/fail.id"
    sim_pod x 198.18.0.2
    sim_bg x /dev/null sleep 1000 >/dev/null
    false
    touch "$outer/fail.reached"
)
rc=$?
id=$(cat "$outer/fail.id")
t_eq "a failing command under set -e ends the script" \
    "$rc:$([[ -e $outer/fail.reached ]] && echo reached)" "1:"
t_eq "teardown runs when a script fails midway" "$(leftovers "$id")" ""

(
    sim_init || exit 1
    echo "$SIM_ID" >"$outer/signal.id"
    sim_pod x 198.18.0.2 || exit 1
    kill -TERM "$BASHPID"
    sleep 5 # never ends: the TERM just sent ends the script first (what is under test)
    touch "$outer/signal.reached"
)
rc=$?
id=$(cat "$outer/signal.id")
t_eq "TERM ends the script with status 143" "$rc" 143
t_eq "teardown runs on TERM" "$(leftovers "$id")" ""

(
    sim_init || exit 1
    echo "$SIM_ID" >"$outer/half.id"
    # What a pod looks like when sim_pod dies half-way: a namespace with nothing wired.
    ip netns add "rm$SIM_ID-half"
    mkdir -p "/etc/netns/rm$SIM_ID-half"
    sim_teardown
    sim_teardown # idempotent
    echo "$?" >"$outer/half.rc"
)
id=$(cat "$outer/half.id")
t_eq "teardown removes half-built pods" "$(leftovers "$id")" ""
t_eq "teardown twice succeeds" "$(cat "$outer/half.rc")" 0

(
    SIM_KEEP=1
    sim_init || exit 1
    echo "$SIM_DIR" >"$outer/keep.dir"
    echo kept >"$SIM_DIR/x.log"
)
kept=$(cat "$outer/keep.dir")
t_eq "SIM_KEEP=1 keeps the logs" "$(cat "$kept/x.log" 2>/dev/null)" "kept"
rm -rf "$kept"

# --- teardown's guards: a sidecar's exit status, sanitizer reports ----------------------------
# Each run's teardown output (its FAIL lines) is captured here, not counted as this story's.
# guarded_run STAND_IN — a run whose pod x has a sidecar, the stand-in with STAND_IN put in
# front of its SIGTERM handling, then ends with status 0; prints teardown's output then the
# run's exit status.
guarded_run() {
    local out rc
    mkdir -p "$outer/guard" && chmod 755 "$outer/guard"
    sed "s/^trap .* TERM\$/$1/" "$fake/remora-good" >"$outer/guard/remora"
    chmod 755 "$outer/guard/remora"
    out=$( (
        SIM_GRACE_SECONDS=1
        sim_init || exit 9
        echo "$SIM_ID" >"$outer/guard.id"
        sim_pod x 198.18.0.2 || exit 9
        SIM_BUILD=$outer/guard sim_sidecar x "$outer/a.yaml" 2>&1 || exit 9
        exit 0
    ) 2>&1)
    rc=$?
    printf '%s\nrc=%s\n' "$out" "$rc"
}
out=$(guarded_run "trap 'kill \$!; exit 3' TERM")
t_contains "a run whose sidecar exits 3 on SIGTERM fails" "$out" "rc=1"
t_contains "...naming the pod and the status" "$out" \
    "FAIL: $T_SCRIPT: sidecar in pod x: exit status 3;"
t_eq "...and still leaves nothing behind" "$(leftovers "$(cat "$outer/guard.id")")" \
    "dir $(find "${TMPDIR:-/tmp}" -maxdepth 1 -name "remora-sim-$(cat "$outer/guard.id").*")"
rm -rf "${TMPDIR:-/tmp}/remora-sim-$(cat "$outer/guard.id")".*
out=$(guarded_run "trap '' TERM")
t_contains "a run whose sidecar ignores SIGTERM fails" "$out" "rc=1"
t_contains "...naming the pod, killed after the grace time" "$out" \
    "FAIL: $T_SCRIPT: sidecar in pod x: exit status still running 1s after SIGTERM (killed);"
rm -rf "${TMPDIR:-/tmp}/remora-sim-$(cat "$outer/guard.id")".*
(
    sim_init || exit 1
    echo "$SIM_DIR" >"$outer/san.dir"
    echo "==42==ERROR: AddressSanitizer: heap-use-after-free on address 0x1" >"$SIM_DIR/x-remora.log"
) >"$outer/san.out" 2>&1
rc=$?
t_eq "a run with a sanitizer report in a log fails" "$rc" 1
t_contains "...naming the log and the report" "$(cat "$outer/san.out")" \
    "FAIL: $T_SCRIPT: sanitizer report in $(cat "$outer/san.dir")/x-remora.log: ==42==ERROR: AddressSanitizer"
t_eq "...and keeps the logs" "$(cut -c1-10 "$(cat "$outer/san.dir")/x-remora.log" 2>/dev/null)" \
    "==42==ERRO"
rm -rf "$(cat "$outer/san.dir")"

t_summary
