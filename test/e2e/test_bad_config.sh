#!/usr/bin/env bash
# Story: an operator starts remora (no --validate) with a config that cannot work: a misspelled
# field, a misspelled enum value, a port out of range, a route to a cluster that does not exist,
# a listener on an address another process holds. Remora refuses at once: it exits non-zero
# within seconds instead of serving, and its stderr names the field (with file and line where
# the YAML has one), the cluster, or the listener and address. The same config without the
# fault starts and stops cleanly. Needs no root.
# checks: 12
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=test/lib/testlib.sh
source "$root/test/lib/testlib.sh"
t_require_cmd timeout cmp
# shellcheck source=test/lib/loopback.sh
source "$root/test/lib/loopback.sh"
# shellcheck source=test/lib/mtls.sh
source "$root/test/lib/mtls.sh"
REMORA=$LB_BIN/remora
work=$LB_WORK

# A port another process holds (bound, not listening), for the listener that cannot bind.
lb_dead_port TAKEN || {
    t_fail setup "could not hold a port"
    t_summary
}

# The good config: a plain HTTP proxy (mtls.sh) whose routes are checked against the clusters.
mtls_http_config "$work/plain.yaml" 0 0 web 9
sed 's/^          route_config:$/&\n            validate_clusters: true/' "$work/plain.yaml" >"$work/good.yaml"

# refused NAME SED_EXPR NEEDLE — remora started on good.yaml edited by SED_EXPR (as NAME.yaml)
# exits non-zero within 5 s, and its stderr holds NEEDLE, in which @LINE@ stands for the number
# of the first line the edit changed. Two checks.
refused() {
    local name=$1 needle=$3 line start rc ms err
    sed "$2" "$work/good.yaml" >"$work/$name.yaml"
    line=$(cmp "$work/good.yaml" "$work/$name.yaml" | sed -n 's/.* line \([0-9]*\)$/\1/p')
    needle=${needle//@LINE@/${line:-unchanged}}
    start=$(date +%s%N)
    err=$(timeout 10 "$REMORA" --config "$work/$name.yaml" --concurrency 1 2>&1 >/dev/null)
    rc=$?
    ms=$((($(date +%s%N) - start) / 1000000))
    printf '%s\n' "$err" >"$work/$name.log" # scanned for sanitizer reports at exit
    if ((rc != 0 && rc != 124 && ms < 5000)); then
        t_ok "${name}_exits_at_once"
    else
        t_fail "${name}_exits_at_once" "exit status $rc after ${ms} ms (124: still running at 10 s)"
    fi
    t_contains "${name}_names_the_fault" "$err" "$needle"
}

# --- the control: the config without a fault starts -------------------------------------------
if lb_remora good "$work/good.yaml" --concurrency 1; then
    t_ok good_config_starts
else
    t_fail good_config_starts "$(tail -n 5 "$work/good.log")"
fi
lb_stop "$LB_PID"
t_eq good_config_stops_cleanly "$LB_STATUS" 0

# --- faults --------------------------------------------------------------------------------------
LISTENER_ADDRESS='^    address: {socket_address: {address: 127.0.0.1, port_value: 0}}'
refused misspelled_field "s/$LISTENER_ADDRESS/    adress: {socket_address: {address: 127.0.0.1, port_value: 0}}/" \
    "misspelled_field.yaml:@LINE@: static_resources.listeners[0].adress: unknown field"
refused misspelled_enum "s/^    type: STATIC$/    type: STATIK/" \
    "misspelled_enum.yaml:@LINE@: static_resources.clusters[0].type"
refused port_out_of_range "s/port_value: 9}/port_value: 70000}/" \
    "port_out_of_range.yaml:@LINE@: static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value: 70000 is out of range"
refused route_to_missing_cluster "s/route: {cluster: app}/route: {cluster: nosuch}/" \
    "route_config: virtual_host 'app': route 0: route: unknown cluster 'nosuch'"
refused listener_address_taken \
    "s/$LISTENER_ADDRESS/    address: {socket_address: {address: 127.0.0.1, port_value: $TAKEN}}/" \
    "listener 'web': bind 127.0.0.1:$TAKEN: Address already in use"

t_summary
