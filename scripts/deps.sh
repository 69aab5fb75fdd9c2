#!/usr/bin/env bash
# Checks the Debian packages Remora builds and tests with, by set, and installs the missing ones
# as root; as another user it prints the exact apt-get line to run and fails.
#
# Usage: deps.sh [--check] [SET...]
#   sets: build (compile and link), test (unit, e2e and demo tools; includes build, fuzz and
#         format), fuzz (clang's libFuzzer), format (clang-format), bench (test plus the peers and
#         load tools the benchmarks run side by side). No set: test.
#   --check: never install; name what is missing and fail (what `make` alone does).
set -eu
check_only=0
sets=()
for a in "$@"; do
    case $a in
    --check) check_only=1 ;;
    build | test | fuzz | format | bench) sets+=("$a") ;;
    *)
        echo "deps: unknown set '$a' (build, test, fuzz, format, bench)" >&2
        exit 2
        ;;
    esac
done
((${#sets[@]})) || sets=(test)

BUILD_PKGS=(gcc make pkg-config libuv1-dev libmbedtls-dev libnghttp2-dev libprotobuf-c-dev
            protobuf-c-compiler libprotobuf-dev libyaml-dev libjansson-dev)
FUZZ_PKGS=(clang)
FORMAT_PKGS=(clang-format)
TEST_PKGS=(libcmocka-dev iptables iproute2 procps psmisc util-linux curl openssl socat jq
           iputils-ping gzip nginx tcpdump python3 nghttp2-client nghttp2-proxy nodejs)
BENCH_PKGS=(haproxy libnginx-mod-stream wrk)

PKGS=()
for s in "${sets[@]}"; do
    case $s in
    build) PKGS+=("${BUILD_PKGS[@]}") ;;
    fuzz) PKGS+=("${BUILD_PKGS[@]}" "${FUZZ_PKGS[@]}") ;;
    format) PKGS+=("${FORMAT_PKGS[@]}") ;;
    test) PKGS+=("${BUILD_PKGS[@]}" "${FUZZ_PKGS[@]}" "${FORMAT_PKGS[@]}" "${TEST_PKGS[@]}") ;;
    bench)
        PKGS+=("${BUILD_PKGS[@]}" "${FUZZ_PKGS[@]}" "${FORMAT_PKGS[@]}" "${TEST_PKGS[@]}"
               "${BENCH_PKGS[@]}")
        ;;
    esac
done
mapfile -t PKGS < <(printf '%s\n' "${PKGS[@]}" | awk '!seen[$0]++')

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "deps: no dpkg-query (not Debian?): cannot check packages; need: ${PKGS[*]}" >&2
    exit 0
fi
# One dpkg-query for all of them; a package it has never heard of prints nothing.
installed=$(dpkg-query -W -f='${Package} ${Status}\n' "${PKGS[@]}" 2>/dev/null |
    awk '/ install ok installed$/ { print $1 }')
missing=()
for p in "${PKGS[@]}"; do
    grep -qxF "$p" <<<"$installed" || missing+=("$p")
done
# npm (the gRPC story installs its pinned peers with it) comes inside some builds of nodejs,
# which then conflict with Debian's npm package: ask for that package only when there is no npm.
if [[ " ${PKGS[*]} " == *" nodejs "* ]] && ! command -v npm >/dev/null 2>&1; then
    missing+=(npm)
fi
if [ ${#missing[@]} -eq 0 ]; then
    echo "deps (${sets[*]}): all ${#PKGS[@]} packages present"
    exit 0
fi
line="apt-get install -y ${missing[*]}"
if [ "$check_only" -eq 1 ] || [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing Debian packages: ${missing[*]}" >&2
    if [ "$(id -u)" -eq 0 ]; then
        echo "  'make deps' installs them, or: apt-get update && $line" >&2
    else
        echo "  run as root: apt-get update && $line" >&2
    fi
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
