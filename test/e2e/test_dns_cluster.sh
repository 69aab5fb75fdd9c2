#!/usr/bin/env bash
# Story: STRICT_DNS and LOGICAL_DNS clusters of names from a hosts file. In one network
# namespace whose /etc/hosts, resolv.conf and nsswitch.conf are its own (ip netns exec
# bind-mounts /etc/netns/<ns>/*), remora and nginx run on the namespace's loopback. remora waits
# for every name's first answer before it listens (a DNS server that never answers holds it in
# PRE_INITIALIZING), and a name nobody knows does not stop it: that cluster answers 503 UH. A
# STRICT_DNS name with two addresses is balanced over both, a LOGICAL_DNS one sticks to one
# address; editing the hosts file in place moves traffic within a few refreshes and the update
# counters move; a lookup that fails keeps the last addresses, while an answer that the name does
# not exist empties a STRICT_DNS cluster and leaves LOGICAL_DNS on its address, as in Envoy.
# Needs root (a network namespace).
# checks: 29
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=test/lib/testlib.sh
source "$root/test/lib/testlib.sh"
t_require_root
t_require_cmd ip nginx curl socat
# shellcheck source=test/lib/simcluster.sh
source "$root/test/lib/simcluster.sh"
# shellcheck source=test/lib/apps.sh
source "$root/test/lib/apps.sh"


# simcluster claims the run's id and removes every rm<id>-* namespace and /etc/netns entry on
# exit, also when run.sh reaps a killed run; the story itself needs one namespace, "dns", with
# nothing but its loopback.
sim_init || t_stop "sim_init"
[[ -x $SIM_BUILD/remora ]] || t_stop "no $SIM_BUILD/remora (build it first)"
NS=$(sim_ns dns)
ip netns add "$NS" && ip -n "$NS" link set lo up || t_stop "namespace $NS"
etc=/etc/netns/$NS
mkdir -p "$etc" || t_stop "mkdir $etc"
# hosts, then DNS; the DNS server is 127.0.0.53 in the namespace: first a socket that swallows
# queries (lookups time out), later nothing (lookups fail at once).
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$etc/nsswitch.conf"
printf 'nameserver 127.0.0.53\noptions timeout:2 attempts:1\n' >"$etc/resolv.conf"
# set_hosts LINES... — rewrites the namespace's hosts file in place (the bind mount keeps the
# inode: a rename would not be seen), in one write.
set_hosts() {
    local text
    text=$(printf '%s\n' '127.0.0.1 localhost' "$@")
    printf '%s\n' "$text" >"$etc/hosts"
}
set_hosts '127.0.0.2 service1' '127.0.0.3 service1' '127.0.0.4 service2' '127.0.0.5 service2' \
    '127.0.0.6 service3' || t_stop "hosts file"

# --- apps: nginx on port 8000 of every loopback address answers with the address it was hit on
sim_nginx dns 8000 '    location / { return 200 "$server_addr\n"; }' || t_stop "nginx"
BLACKHOLE=$(sim_bg dns "$SIM_DIR/blackhole.log" socat -u UDP-RECV:53,bind=127.0.0.53 /dev/null) ||
    t_stop "DNS blackhole"
in_ns() { sim_exec dns "$@"; }
for _ in $(seq 1 100); do
    in_ns curl -s -m 1 -o /dev/null http://127.0.0.2:8000/ && break
    sleep 0.05
done

# --- remora -----------------------------------------------------------------------------------
dns_cluster() { # dns_cluster NAME TYPE HOST
    cat <<EOF
  - name: $1
    type: $2
    connect_timeout: 1s
    dns_refresh_rate: 0.2s
    dns_failure_refresh_rate: {base_interval: 0.1s, max_interval: 0.2s}
    dns_lookup_family: V4_ONLY
    respect_dns_ttl: true
    load_assignment:
      cluster_name: $1
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: $3, port_value: 8000}}}
EOF
}
route() { printf '              - match: {prefix: /%s}\n                route: {cluster: %s}\n' "$1" "$1"; }
mkdir -p "$SIM_DIR/out" && chown "$SIM_PROXY_UID:$SIM_PROXY_UID" "$SIM_DIR/out"
cat >"$SIM_DIR/remora.yaml" <<EOF
admin:
  address: {socket_address: {address: 127.0.0.1, port_value: 15000}}
static_resources:
  listeners:
  - name: http
    address: {socket_address: {address: 127.0.0.1, port_value: 10000}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: $SIM_DIR/out/access.log
              log_format: {text_format_source: {inline_string: "%REQ(:PATH)% %RESPONSE_CODE% %RESPONSE_FLAGS%\n"}}
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
$(for c in strict logical moving missing; do route "$c"; done)
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
$(dns_cluster strict STRICT_DNS service1)
$(dns_cluster logical LOGICAL_DNS service2)
$(dns_cluster moving STRICT_DNS service3)
$(dns_cluster missing STRICT_DNS nosuch)
EOF
# remora runs as the pod's sidecar (uid 1337, its exit status checked at teardown); its access
# log goes to a directory it may write.
SIM_SIDECAR_READY=none sim_sidecar dns "$SIM_DIR/remora.yaml" --concurrency 2 || t_stop "start remora"
REMORA_PID=$SIM_LAST_PID
admin() { in_ns curl -s -m 2 "http://127.0.0.1:15000$1"; }
stat_of() { admin /stats | awk -v n="$1:" '$1 == n { print $2 }'; }
get() { in_ns curl -s -m 3 "http://127.0.0.1:10000/$1"; }

# Until /ready answers 200: what it answered before, one line per change.
seen=
for _ in $(seq 1 200); do
    code=$(in_ns curl -s -m 1 -o /dev/null -w '%{http_code}' http://127.0.0.1:15000/ready)
    [[ $seen == *"$code" ]] || seen="$seen $code"
    [[ $code == 200 ]] && break
    sim_alive "$REMORA_PID" || break
    sleep 0.05
done
t_contains "remora starts although a name cannot be resolved" "$seen" 200
t_contains "/ready answers 503 while the first lookups are out" "$seen" "503 200"
t_contains "before that the server is PRE_INITIALIZING" \
    "$(grep -m1 -o 'resolving [0-9]* host name(s) before the listeners start' \
        "$SIM_DIR/dns-remora.log")" "resolving 4 host name(s)"
[[ $seen == *200 ]] || t_stop "remora never became ready; its log ends: $(tail -n 5 "$SIM_DIR/dns-remora.log")"
# From now on the DNS server refuses at once.
kill "$BLACKHOLE" 2>/dev/null

# --- STRICT_DNS balances over every address, LOGICAL_DNS uses one -------------------------------
strict_seen=$(for _ in $(seq 1 10); do get strict; done | sort -u | tr '\n' ' ')
t_eq "STRICT_DNS balances over both addresses of its name" "$strict_seen" "127.0.0.2 127.0.0.3 "
logical_seen=$(for _ in $(seq 1 6); do get logical; done | sort -u | tr '\n' ' ')
case $logical_seen in
"127.0.0.4 " | "127.0.0.5 ") t_ok "LOGICAL_DNS connects to one address of its name" ;;
*) t_fail "LOGICAL_DNS connects to one address of its name" "answers from: $logical_seen" ;;
esac
t_eq "a name that does not resolve: no healthy upstream" \
    "$(in_ns curl -s -w ' %{http_code}' http://127.0.0.1:10000/missing)" "no healthy upstream 503"
clusters=$(admin /clusters)
t_contains "/clusters lists the resolved endpoints" "$clusters" "strict::127.0.0.3:8000::weight::1"
t_contains "/clusters names the host they came from" "$clusters" \
    "strict::127.0.0.2:8000::hostname::service1"
t_contains "/clusters shows the cluster type" "$clusters" "logical::type::LOGICAL_DNS"
t_eq "membership_total counts the resolved endpoints" \
    "$(stat_of cluster.strict.membership_total) $(stat_of cluster.logical.membership_total)" "2 1"
t_eq "the unresolved cluster has no endpoint" "$(stat_of cluster.missing.membership_total)" 0
fails=$(stat_of cluster.missing.update_failure)
((${fails:-0} >= 1)) && t_ok "the failed lookups count as update_failure" ||
    t_fail "the failed lookups count as update_failure" "update_failure=$fails"
grep -q 'respect_dns_ttl has no effect' "$SIM_DIR/dns-remora.log" &&
    t_ok "respect_dns_ttl is accepted and said to have no effect" ||
    t_fail "respect_dns_ttl is accepted and said to have no effect" "no log line"

# --- editing the hosts file moves traffic ------------------------------------------------------
success0=$(stat_of cluster.moving.update_success)
change0=$(stat_of cluster.moving.membership_change)
t_eq "the moving name answers from its first address" "$(get moving)" 127.0.0.6
set_hosts '127.0.0.2 service1' '127.0.0.3 service1' '127.0.0.4 service2' '127.0.0.5 service2' \
    '127.0.0.7 service3'
start=$SECONDS
moved=
for _ in $(seq 1 100); do # 5 s at most; a refresh is every 0.2 s
    moved=$(get moving)
    [[ $moved == 127.0.0.7 ]] && break
    sleep 0.05
done
t_eq "after the hosts file changes, traffic goes to the new address" "$moved" 127.0.0.7
((SECONDS - start <= 3)) && t_ok "within a few refresh periods" ||
    t_fail "within a few refresh periods" "took $((SECONDS - start)) s"
success1=$(stat_of cluster.moving.update_success)
((success1 > success0)) && t_ok "update_success moves" ||
    t_fail "update_success moves" "$success0 -> $success1"
t_eq "membership_change counts the move once" "$(stat_of cluster.moving.membership_change)" \
    "$((change0 + 1))"
t_contains "the change is logged" "$(cat "$SIM_DIR/dns-remora.log")" \
    "cluster 'moving': 'service3' resolves to 127.0.0.7"

# --- a lookup that fails keeps the last addresses -----------------------------------------------
failure0=$(stat_of cluster.moving.update_failure)
set_hosts '127.0.0.2 service1' '127.0.0.3 service1'
failure1=$failure0
for _ in $(seq 1 100); do
    failure1=$(stat_of cluster.moving.update_failure)
    ((failure1 >= failure0 + 2)) && break
    sleep 0.05
done
((failure1 >= failure0 + 2)) && t_ok "lookups of a name gone from the hosts file fail" ||
    t_fail "lookups of a name gone from the hosts file fail" "update_failure $failure0 -> $failure1"
t_eq "after failed lookups STRICT_DNS keeps its last address" "$(get moving)" 127.0.0.7
t_eq "and LOGICAL_DNS keeps its address" "$(get logical)" "${logical_seen% }"
t_eq "no rebuild without a change" "$(stat_of cluster.moving.membership_change)" \
    "$((change0 + 1))"

# --- an answer that the name does not exist empties STRICT_DNS only -----------------------------
# Without DNS in nsswitch.conf (glibc reloads it when it changes), a name missing from the hosts
# file is "not known" (EAI_NONAME, NXDOMAIN's equivalent) rather than a failure to ask.
printf 'passwd: files\ngroup: files\nhosts: files\n' >"$etc/nsswitch.conf"
code=
for _ in $(seq 1 100); do
    code=$(in_ns curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:10000/moving)
    [[ $code == 503 ]] && break
    sleep 0.05
done
t_eq "a STRICT_DNS name that no longer exists leaves the cluster without endpoints" "$code" 503
t_eq "while LOGICAL_DNS stays on its address" "$(get logical)" "${logical_seen% }"
case $(get strict) in
127.0.0.2 | 127.0.0.3) t_ok "and the other STRICT_DNS cluster is untouched" ;;
*) t_fail "and the other STRICT_DNS cluster is untouched" "no answer from service1" ;;
esac

# The access log (flushed about once a second) has the flags.
log=
for _ in $(seq 1 60); do
    log=$(cat "$SIM_DIR/out/access.log" 2>/dev/null)
    [[ $log == *"/moving 503 UH"* ]] && break
    sleep 0.05
done
t_contains "the unresolved cluster's 503 is flagged UH" "$log" "/missing 503 UH"
t_contains "so is the emptied one's" "$log" "/moving 503 UH"

t_eq "remora exits cleanly on SIGTERM" "$(sim_stop dns 5)" 0
t_summary
