#!/usr/bin/env bash
# Prints the compiler or linker flags of the libraries Remora links, for the Makefile, after
# checking each one: a missing pkg-config, .pc file or header is an error that names the Debian
# package to install, never an empty flag list that surfaces later as an undefined reference.
# Usage: pkgflags.sh --cflags|--libs PKG...   (pkg-config names, plus "mbedtls", which has no .pc)
set -u
mode=${1:?usage: pkgflags.sh --cflags|--libs PKG...}
shift
declare -A deb=([libuv]=libuv1-dev [libprotobuf-c]=libprotobuf-c-dev [yaml-0.1]=libyaml-dev
                [jansson]=libjansson-dev [cmocka]=libcmocka-dev [libnghttp2]=libnghttp2-dev
                [mbedtls]=libmbedtls-dev)
fail() {
    echo "make: $1 (Debian package $2); 'make deps' installs what is missing" >&2
    exit 1
}
command -v pkg-config >/dev/null 2>&1 || fail "pkg-config is not installed" pkg-config
pcs=()
for p in "$@"; do
    if [ "$p" = mbedtls ]; then
        # Debian's libmbedtls-dev ships no .pc file: look for its header and library instead.
        echo '#include <mbedtls/ssl.h>' | "${CC:-cc}" -E -x c - >/dev/null 2>&1 ||
            fail "mbedtls/ssl.h is not found" "${deb[$p]}"
        continue
    fi
    pkg-config --exists "$p" 2>/dev/null ||
        fail "pkg-config cannot find '$p'" "${deb[$p]:-the one that provides $p.pc}"
    pcs+=("$p")
done
out=""
if ((${#pcs[@]})); then
    out=$(pkg-config "$mode" "${pcs[@]}") || fail "pkg-config $mode ${pcs[*]} failed" "${pcs[*]}"
fi
if [ "$mode" = --libs ] && [[ " $* " == *" mbedtls "* ]]; then
    out="$out -lmbedtls -lmbedx509 -lmbedcrypto"
fi
echo "$out"
