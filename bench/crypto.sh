#!/usr/bin/env bash
# bench/crypto.sh: the crypto under mTLS between sidecars, mbedTLS (what remora links) against
# OpenSSL, on one pinned core, side by side.
#
#   mbedTLS   $BUILD/bench/crypto (bench/crypto.c, built here through make): AEAD records,
#             ECDSA P-256, ECDH P-256 and X25519, TLS 1.2 mTLS handshakes in memory
#   OpenSSL   openssl speed -elapsed -aead -bytes N -evp aes-128-gcm / chacha20-poly1305,
#             openssl speed -elapsed ecdsap256 ecdhp256 ecdhx25519
#
# Both run for BENCH_CRYPTO_SECONDS (3) per measurement on CPU BENCH_PROXY_CPU (0). It measures
# and reports; it never fails on a number. Exit status is non-zero only when something could not
# run. Writes the table to stdout and to $BUILD/bench/crypto.md. See bench/README.md.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

BUILD=${BUILD:-build}
SECS=${BENCH_CRYPTO_SECONDS:-3}
CPU=${BENCH_PROXY_CPU:-0}
OUT_DIR=$root/$BUILD/bench
OUT=$OUT_DIR/crypto.md
BIN=$root/$BUILD/bench/crypto

b_need "openssl util-linux make gawk" openssl taskset make awk
b_log "crypto: building $BUILD/bench/crypto"
make -C "$root" --no-print-directory BUILD="$BUILD" "$BUILD/bench/crypto" >&2 || {
    b_log "could not build $BUILD/bench/crypto (needs libmbedtls-dev)"
    exit 1
}
work=$(mktemp -d "${TMPDIR:-/tmp}/remora-bench-crypto.XXXXXX")
# shellcheck disable=SC2317 # called by the EXIT trap
on_exit() {
    b_cleanup
    rm -rf "$work"
}
trap on_exit EXIT
trap 'exit 130' INT TERM HUP

declare -A M O # M[key], O[key]: mbedTLS and OpenSSL values; absent means not measured
CLK_TCK=$(getconf CLK_TCK)
n_ns0=$(b_now_ns) n_busy0=$(b_cpu_busy_all) n_ours0=$(b_self_ticks)

b_log "crypto: mbedTLS, ${SECS}s per measurement on CPU $CPU (about $((13 * SECS + 5)) s)"
if taskset -c "$CPU" "$BIN" "$SECS" >"$work/mbedtls.txt" 2>"$work/mbedtls.err"; then
    :
else
    b_fail "bench/crypto: $(cat "$work/mbedtls.err")"
fi
while read -r key value; do
    [[ -n $key ]] && M[$key]=$value
done <"$work/mbedtls.txt"
b_log "$(cat "$work/mbedtls.err")"

# openssl_aead CIPHER BYTES KEY: bytes per second of one record size, TLS-like (-aead: a new IV,
# 13 bytes of AAD and the tag for every record), as GB/s in O[KEY].
openssl_aead() {
    local log=$work/openssl-$3.txt
    if ! taskset -c "$CPU" openssl speed -seconds "$SECS" -elapsed -mr -aead -bytes "$2" \
        -evp "$1" >"$log" 2>&1; then
        b_fail "openssl speed -evp $1 -bytes $2: $(tail -3 "$log")"
        return
    fi
    O[$3]=$(awk -F: '/^\+F:/ { printf "%.4f", $4 / 1e9 }' "$log")
    [[ -n ${O[$3]} ]] || b_fail "openssl speed -evp $1: no +F line in its output"
}

b_log "crypto: OpenSSL"
openssl_aead aes-128-gcm 16384 aes128gcm_16k_gbps
openssl_aead aes-128-gcm 1024 aes128gcm_1k_gbps
openssl_aead chacha20-poly1305 16384 chachapoly_16k_gbps
openssl_aead chacha20-poly1305 1024 chachapoly_1k_gbps
pki=$work/openssl-pki.txt
if taskset -c "$CPU" openssl speed -seconds "$SECS" -elapsed -mr ecdsap256 ecdhp256 ecdhx25519 \
    >"$pki" 2>&1; then
    # -mr lines: +F4:index:bits:sign/s:verify/s (ECDSA), +F5:index:bits:op/s:s/op (ECDH)
    while IFS=: read -r tag _ bits a b; do
        case $tag:$bits in
        +F4:256) O[ecdsa_p256_sign]=$a O[ecdsa_p256_verify]=$b ;;
        +F5:256) O[ecdh_p256_derive]=$a ;;
        +F5:253) O[ecdh_x25519_derive]=$a ;;
        esac
    done <"$pki"
else
    b_fail "openssl speed ecdsap256 ecdhp256 ecdhx25519: $(tail -3 "$pki")"
fi

# CPU that processes other than ours used meanwhile: a busy machine makes the numbers noisy
n_ns1=$(b_now_ns) n_busy1=$(b_cpu_busy_all) n_ours1=$(b_self_ticks)
FOREIGN=$(awk -v b=$((n_busy1 - n_busy0)) -v o=$((n_ours1 - n_ours0)) -v hz="$CLK_TCK" \
    -v ns=$((n_ns1 - n_ns0)) -v n="$(nproc)" 'BEGIN { f = (b - o) / (ns / 1e9 * hz * n) * 100
        printf "%.1f", f < 0 ? 0 : f }')

# --- report --------------------------------------------------------------------------------
# key | label | printf format
METRICS=(
    "aes128gcm_16k_gbps|AES-128-GCM encrypt, 16 KiB records (GB/s)|%.2f"
    "aes128gcm_1k_gbps|AES-128-GCM encrypt, 1 KiB records (GB/s)|%.2f"
    "chachapoly_16k_gbps|ChaCha20-Poly1305 encrypt, 16 KiB records (GB/s)|%.2f"
    "chachapoly_1k_gbps|ChaCha20-Poly1305 encrypt, 1 KiB records (GB/s)|%.2f"
    "ecdsa_p256_sign|ECDSA P-256 sign/s|%.0f"
    "ecdsa_p256_verify|ECDSA P-256 verify/s|%.0f"
    "ecdh_p256_derive|ECDH P-256 shared secret/s|%.0f"
    "ecdh_p256_exchange|ECDHE P-256, one side (new key pair + shared secret)/s|%.0f"
    "ecdh_x25519_derive|ECDH X25519 shared secret/s|%.0f"
    "ecdh_x25519_exchange|ECDHE X25519, one side (new key pair + shared secret)/s|%.0f"
    "tls12_handshake_p256|TLS 1.2 mTLS handshake, ECDHE-ECDSA-AES128-GCM, P-256, both sides/s|%.0f"
    "tls12_handshake_x25519|TLS 1.2 mTLS handshake, as above with X25519, both sides/s|%.0f"
    "tls12_resume_ticket|TLS 1.2 resumption (session ticket), both sides/s|%.0f"
)

fmt() { # fmt FORMAT VALUE
    [[ -n ${2:-} ]] || {
        echo "n/a"
        return
    }
    awk -v f="$1" -v v="$2" 'BEGIN { printf f, v }'
}
ratio() { # ratio A B: A/B as "0.93×"
    awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f×", a / b }'
}

cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
report() {
    local line key label form m o r
    echo "## Crypto (mbedTLS against OpenSSL), one core"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- machine: $(nproc) cores, ${cpu_model:-unknown CPU}, Linux $(uname -r)"
    echo "- mbedTLS: ${M[version]:-unknown} ($BUILD/bench/crypto, bench/crypto.c);" \
        "OpenSSL: $(openssl version | cut -d' ' -f1-2) (openssl speed)"
    echo "- pinning: everything on CPU $CPU, one thread; ${SECS} s per measurement, wall clock" \
        "(openssl speed -elapsed)"
    echo "- records: a new nonce, 13 bytes of AAD and the tag per record, as TLS 1.2 does" \
        "(openssl speed -aead -bytes N)"
    echo "- other processes' CPU meanwhile: ${FOREIGN}% of all cores (noise: near 0 is a clean run)"
    echo
    echo "| metric | mbedTLS | OpenSSL | mbedTLS ÷ OpenSSL |"
    echo "|---|---:|---:|---|"
    for line in "${METRICS[@]}"; do
        IFS='|' read -r key label form <<<"$line"
        m=${M[$key]:-} o=${O[$key]:-}
        r="n/a"
        [[ -n $m && -n $o ]] && r=$(ratio "$m" "$o")
        echo "| $label | $(fmt "$form" "$m") | $(fmt "$form" "$o") | $r |"
    done
    echo
    echo "Ratios are mbedTLS's rate divided by OpenSSL's: below 1× mbedTLS is slower. GB/s is"
    echo "10^9 bytes per second. openssl speed has no ephemeral-exchange or handshake test, so"
    echo "those rows are mbedTLS only. A handshake row is both sides' CPU on one core: client and"
    echo "server each present a P-256 leaf signed by a P-256 CA and verify the other's chain."
    if awk -v f="$FOREIGN" 'BEGIN { exit !(f > 5) }'; then
        echo
        echo "Note: other processes used ${FOREIGN}% of the machine's CPU during the run: the" \
            "numbers are noisy."
    fi
}
mkdir -p "$OUT_DIR"
report | tee "$OUT"
b_log "written to $OUT"
exit "$B_FAILED"
