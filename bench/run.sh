#!/usr/bin/env bash
# bench/run.sh: the entry point for every benchmark (`make bench` runs it with BUILD set).
#
#   bench/run.sh            run all benches, in order
#   bench/run.sh tcp ...    run only the named ones (bench/NAME.sh: tcp, http, mtls, http2, crypto, xds, cp)
#
# Each bench prints a markdown table and writes it to $BUILD/bench/NAME.md. A bench exits
# non-zero only when something could not run, never because of a number; run.sh goes on with
# the next one and exits non-zero at the end if any did. Tunables (environment): BENCH_SECONDS
# (per load run, default 10) and the ones each bench documents; see bench/README.md.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
export BUILD=${BUILD:-build}

ALL=(tcp http mtls http2 crypto xds cp)

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
fi
benches=("$@")
((${#benches[@]})) || benches=("${ALL[@]}")

[[ -x $root/$BUILD/remora ]] || {
    echo "[bench] no $root/$BUILD/remora: run make first" >&2
    exit 1
}
mkdir -p "$root/$BUILD/bench"

rc=0
for b in "${benches[@]}"; do
    if [[ ! -f $here/$b.sh ]]; then
        echo "[bench] no such bench: $b (have: ${ALL[*]})" >&2
        rc=1
        continue
    fi
    echo "[bench] === $b" >&2
    start=$SECONDS
    "$here/$b.sh" || {
        echo "[bench] $b: something could not run (exit $?), see above" >&2
        rc=1
    }
    echo "[bench] $b took $((SECONDS - start)) s" >&2
done
exit "$rc"
