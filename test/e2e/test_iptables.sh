#!/usr/bin/env bash
# test_iptables.sh — `remoractl iptables` in a real pod namespace: the rules it installs, that
# applying twice changes nothing, and what they capture: the app's outbound traffic (original
# destination kept), inbound traffic, but never the proxy's own connections or excluded ports.
# checks: 62
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=test/lib/testlib.sh
source "$here/../lib/testlib.sh"
# shellcheck source=test/lib/simcluster.sh
source "$here/../lib/simcluster.sh"

t_require_root
t_require_cmd socat iptables-save iptables-restore setpriv python3 ss

ctl=$(_sim_build_dir)/remoractl
if [[ ! -x $ctl ]]; then
    t_fail "remoractl is built" "no $ctl (run make)"
    t_summary
fi

APP=198.18.0.2    # pod a: the app, with capture
SERVER=198.18.0.3 # pod b: a plain server, no capture
VIP=198.19.0.10

nat_rules() {
    # Comments carry timestamps and counters change with traffic; neither is a rule.
    sim_exec a iptables-save -t nat | grep -v '^#' | sed 's/ \[[0-9]*:[0-9]*\]$//'
}

wait_listen() {
    local i
    for ((i = 0; i < 50; i++)); do
        sim_exec "$1" ss -Hltn "sport = :$2" 2>/dev/null | grep -q . && return 0
        sleep 0.1
    done
    return 1
}

# get POD [setpriv args] -- ADDR PORT [socat address options] — what the server says.
get() {
    local pod=$1 priv=()
    shift
    while [[ $1 != -- ]]; do
        priv+=("$1")
        shift
    done
    shift
    local addr="TCP:$1:$2,connect-timeout=2${3:+,$3}"
    if ((${#priv[@]})); then
        sim_exec "$pod" setpriv "${priv[@]}" --clear-groups socat -T3 - "$addr" </dev/null 2>&1
    else
        sim_exec "$pod" socat -T3 - "$addr" </dev/null 2>&1
    fi
}
AS_PROXY=(--reuid=1337 --regid=1337)

sim_init || {
    t_fail sim_init "could not create the switch namespace"
    t_summary
}
if ! { sim_pod a "$APP" && sim_pod b "$SERVER"; }; then
    t_fail sim_pod "could not create pods"
    t_summary
fi

# The stand-in sidecar: listens on 15001 and 15006 as uid 1337 and answers each connection with
# "<port it accepted on> <SO_ORIGINAL_DST>", which is exactly what remora relies on.
cat >"$SIM_DIR/origdst.py" <<'EOF'
import selectors, socket, struct, sys

SO_ORIGINAL_DST = 80
sel = selectors.DefaultSelector()
for port in map(int, sys.argv[1:]):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(64)
    sel.register(s, selectors.EVENT_READ, port)
while True:
    for key, _ in sel.select():
        conn, _ = key.fileobj.accept()
        try:
            raw = conn.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
            dport = struct.unpack("!H", raw[2:4])[0]
            reply = "%d %s:%d\n" % (key.data, socket.inet_ntoa(raw[4:8]), dport)
        except OSError as e:
            reply = "%d no-original-dst %s\n" % (key.data, e)
        conn.sendall(reply.encode())
        conn.close()
EOF
chmod 644 "$SIM_DIR/origdst.py"
# Run it as the proxy user, as remora would be; the listener's uid does not change what is
# captured (only a connecting socket's owner does), so root will do if 1337 has no python.
listener=(python3)
for py in /usr/bin/python3 /usr/local/bin/python3; do
    if setpriv "${AS_PROXY[@]}" --clear-groups "$py" -c '' 2>/dev/null; then
        listener=(setpriv "${AS_PROXY[@]}" --clear-groups "$py")
        break
    fi
done
sim_bg a "$SIM_DIR/origdst.log" "${listener[@]}" "$SIM_DIR/origdst.py" 15001 15006 >/dev/null
sim_bg a "$SIM_DIR/app.log" socat TCP-LISTEN:8080,reuseaddr,fork EXEC:"echo app-a" >/dev/null
sim_bg a "$SIM_DIR/health.log" socat TCP-LISTEN:15021,reuseaddr,fork \
    EXEC:"echo health-a" >/dev/null
sim_bg b "$SIM_DIR/server.log" socat TCP-LISTEN:8080,reuseaddr,fork \
    EXEC:"echo server-b" >/dev/null
for l in a:15001 a:15006 a:8080 a:15021 b:8080; do
    if ! wait_listen "${l%%:*}" "${l#*:}"; then
        t_fail "listener $l starts" "$(tail -n 5 "$SIM_DIR"/*.log)"
        t_summary
    fi
done

# --- installing ------------------------------------------------------------------------------
t_eq "before capture the app reaches the server directly" "$(get a -- $SERVER 8080)" "server-b"
t_run "apply with defaults succeeds" sim_capture a
rules=$(nat_rules)
for want in ":REMORA_INBOUND -" ":REMORA_IN_REDIRECT -" ":REMORA_OUTPUT -" ":REMORA_REDIRECT -" \
    "-A PREROUTING -p tcp -j REMORA_INBOUND" "-A OUTPUT -p tcp -j REMORA_OUTPUT" \
    "-A REMORA_REDIRECT -p tcp -j REDIRECT --to-ports 15001" \
    "-A REMORA_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006"; do
    if grep -qF -- "$want" <<<"$rules"; then
        t_ok "iptables-save shows '$want'"
    else
        t_fail "iptables-save shows '$want'" "not in: $rules"
    fi
done
t_run "apply again succeeds" sim_capture a
t_eq "applying twice leaves identical rules" "$(nat_rules)" "$rules"

# --- what is captured ------------------------------------------------------------------------
t_eq "the app's connection to a service VIP reaches 15001 with its original destination" \
    "$(get a -- $VIP 80)" "15001 $VIP:80"
t_eq "the app's connection to another pod is captured too" \
    "$(get a -- $SERVER 8080)" "15001 $SERVER:8080"
t_eq "the proxy's own connection (uid 1337) is not captured" \
    "$(get a "${AS_PROXY[@]}" -- $SERVER 8080)" "server-b"
t_eq "a process with only the proxy's gid is not captured" \
    "$(get a --reuid=4242 --regid=1337 -- $SERVER 8080)" "server-b"
t_eq "inbound to a pod port goes to 15006 with its original destination" \
    "$(get b -- $APP 8080)" "15006 $APP:8080"
t_eq "inbound to an excluded port (15021) is not captured" "$(get b -- $APP 15021)" "health-a"
t_eq "the app calling its own pod address over lo is not captured" \
    "$(get a -- $APP 8080)" "app-a"
t_eq "the app calling localhost is not captured" "$(get a -- 127.0.0.1 8080)" "app-a"
t_eq "the proxy calling its own pod address goes through inbound" \
    "$(get a "${AS_PROXY[@]}" -- $APP 8080)" "15006 $APP:8080"
t_eq "the inbound listener reaches the app from 127.0.0.6 uncaptured" \
    "$(get a "${AS_PROXY[@]}" -- $APP 8080 bind=127.0.0.6)" "app-a"

# --- flags -----------------------------------------------------------------------------------
t_run "apply --exclude-outbound-cidrs succeeds" sim_capture a --exclude-outbound-cidrs "$SERVER/32"
t_eq "an excluded CIDR is reached directly" "$(get a -- $SERVER 8080)" "server-b"
t_eq "other destinations are still captured" "$(get a -- $VIP 80)" "15001 $VIP:80"
t_eq "re-applying with other flags replaces the rules instead of adding to them" \
    "$(nat_rules | grep -c -- '-j REMORA_OUTPUT')" 1

t_run "apply --exclude-outbound-ports succeeds" sim_capture a --exclude-outbound-ports 8080
t_eq "an excluded outbound port is reached directly" "$(get a -- $SERVER 8080)" "server-b"
t_eq "the CIDR exclusion of the previous apply is gone" \
    "$(nat_rules | grep -c "$SERVER")" 0

t_run "apply --inbound-ports succeeds" sim_capture a --inbound-ports 9090
t_eq "inbound to a port not listed is not captured" "$(get b -- $APP 8080)" "app-a"

t_run "apply --inbound-ports '' succeeds" sim_capture a --inbound-ports ""
t_eq "with no inbound ports there is no PREROUTING jump" \
    "$(nat_rules | grep -c -- '-A PREROUTING')" 0

t_run "apply --outbound-port/--inbound-port succeed" \
    sim_capture a --outbound-port 15006 --inbound-port 15001
t_eq "--outbound-port changes where outbound goes" "$(get a -- $VIP 80)" "15006 $VIP:80"
t_eq "--inbound-port changes where inbound goes" "$(get b -- $APP 8080)" "15001 $APP:8080"

t_run "apply --proxy-uid succeeds" sim_capture a --proxy-uid 4242 --proxy-gid 4243
t_eq "uid 1337 is captured once it is not the proxy" \
    "$(get a "${AS_PROXY[@]}" -- $SERVER 8080)" "15001 $SERVER:8080"
t_eq "the configured proxy uid is not captured" \
    "$(get a --reuid=4242 --regid=4242 -- $SERVER 8080)" "server-b"

# --- dry run, errors -------------------------------------------------------------------------
t_run "apply with defaults again" sim_capture a
before=$(nat_rules)
out=$(sim_exec a "$ctl" iptables apply --dry-run --outbound-port 16001)
t_contains "dry-run prints the rules it would feed" "$out" "--to-ports 16001"
out=$(sim_exec a "$ctl" iptables clean --dry-run)
t_contains "dry-run clean prints what it would delete" "$out" "-X REMORA_OUTPUT"
t_eq "dry-run changes nothing" "$(nat_rules)" "$before"
out=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$ctl" iptables apply --dry-run 2>&1)
rc=$?
t_eq "dry-run works as non-root" "$rc:$(grep -c REMORA_REDIRECT <<<"$out")" "0:3"

bad_flags=(
    "iptables apply --outbound-port 70000"
    "iptables apply --outbound-port abc"
    "iptables apply --exclude-outbound-cidrs 198.18.0/16"
    "iptables apply --exclude-outbound-cidrs 198.18.0.0/40"
    "iptables apply --proxy-uid"
    "iptables apply --no-such-flag"
    "iptables frobnicate"
    "iptables"
    "frobnicate"
)
for args in "${bad_flags[@]}"; do
    # shellcheck disable=SC2086 # split on purpose: each entry is an argument list
    err=$(sim_exec a "$ctl" $args 2>&1 >/dev/null)
    rc=$?
    if ((rc == 2)) && [[ -n $err ]]; then
        t_ok "'remoractl $args' exits 2 with a message"
    else
        t_fail "'remoractl $args' exits 2 with a message" "exit $rc, stderr '$err'"
    fi
done
t_eq "bad flags change nothing" "$(nat_rules)" "$before"

# A failing iptables-restore: its own message is shown and remoractl exits 1.
mkdir -p "$SIM_DIR/fakebin"
printf '#!/bin/sh\necho "fake iptables-restore: line 3 failed" >&2\nexit 4\n' \
    >"$SIM_DIR/fakebin/iptables-restore"
chmod 755 "$SIM_DIR/fakebin/iptables-restore"
err=$(sim_exec a env PATH="$SIM_DIR/fakebin:$PATH" "$ctl" iptables apply 2>&1)
rc=$?
t_eq "a failing iptables-restore makes apply exit 1" "$rc" 1
t_contains "a failing iptables-restore shows its stderr" "$err" "fake iptables-restore: line 3"
err=$(sim_exec a setpriv --reuid=65534 --regid=65534 --clear-groups "$ctl" iptables apply 2>&1)
t_eq "apply without privileges exits 1" "$?" 1
t_contains "apply without privileges says why" "$err" "iptables-save"

# --- clean -----------------------------------------------------------------------------------
t_run "clean succeeds" sim_exec a "$ctl" iptables clean
t_eq "clean leaves no REMORA rule or chain" "$(nat_rules | grep -c REMORA)" 0
t_eq "after clean the app reaches the server directly" "$(get a -- $SERVER 8080)" "server-b"
t_run "clean with nothing installed succeeds" sim_exec a "$ctl" iptables clean

t_summary
