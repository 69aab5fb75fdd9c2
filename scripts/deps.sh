#!/usr/bin/env bash
# Checks the Debian packages Remora builds and tests with; installs the missing ones as root,
# otherwise prints the exact apt-get line to run.
set -eu
PKGS=(gcc make pkg-config clang clang-format
      libuv1-dev libmbedtls-dev libnghttp2-dev libprotobuf-c-dev protobuf-c-compiler libprotobuf-dev
      libcmocka-dev libyaml-dev libjansson-dev
      iptables iproute2 procps psmisc util-linux curl openssl socat jq iputils-ping gzip
      nginx tcpdump python3 nghttp2-client)
# `deps.sh bench` adds the peers and load tools the benchmarks run side by side.
if [ "${1:-}" = bench ]; then
    PKGS+=(haproxy libnginx-mod-stream nghttp2-proxy wrk)
fi
missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "deps: all ${#PKGS[@]} packages present"
    exit 0
fi
line="apt-get install -y ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing packages; run as root:" >&2
    echo "  apt-get update && $line" >&2
    exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Packages like nginx and haproxy would start their system services on install; the tests and
# benchmarks run their own instances, so keep the services down (policy-rc.d exit 101).
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy"
    trap 'rm -f "$policy"' EXIT
fi
apt-get install -y -qq "${missing[@]}"
