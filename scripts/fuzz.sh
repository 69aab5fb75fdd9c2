#!/usr/bin/env bash
# Builds each libFuzzer harness with clang (fuzzer + ASan + UBSan) straight from the sources and
# runs it for FUZZ_SECONDS over a scratch copy of test/fuzz/corpus/<name without fuzz_>.
# Usage: BUILD=build FUZZ_CC=clang FUZZ_SECONDS=60 scripts/fuzz.sh test/fuzz/fuzz_*.c
set -euo pipefail
BUILD=${BUILD:-build}
FUZZ_CC=${FUZZ_CC:-clang}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
OUT="$BUILD/libfuzzer"
[ $# -gt 0 ] || { echo "usage: $0 test/fuzz/fuzz_X.c..." >&2; exit 2; }
[ -f "$BUILD/gen/.stamp" ] || { echo "fuzz: run 'make $BUILD/gen/.stamp' first" >&2; exit 2; }
mkdir -p "$OUT"
mapfile -t GEN < <(find "$BUILD/gen" -name '*.pb-c.c' | sort)

status=0
for harness in "$@"; do
    name=$(basename "$harness" .c)
    corpus="test/fuzz/corpus/${name#fuzz_}"
    # A harness names what it links in its header: "fuzz-sources: a.c b.c" and
    # "fuzz-libs: pkg-config names". Without them it gets every xds/*.c.
    srcs=$(sed -n 's/.*fuzz-sources:\([^*]*\).*/\1/p' "$harness" | head -1)
    libs=$(sed -n 's/.*fuzz-libs:\([^*]*\).*/\1/p' "$harness" | head -1)
    [ -n "$srcs" ] || srcs=$(ls xds/*.c)
    [ -n "$libs" ] || libs="yaml-0.1 jansson libprotobuf-c"
    bin="$OUT/$name"
    echo "fuzz: building $bin"
    # shellcheck disable=SC2086
    "$FUZZ_CC" -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
        -fno-sanitize-recover=undefined -fno-omit-frame-pointer -I. -I"$BUILD/gen" \
        $(pkg-config --cflags $libs) "$harness" $srcs "${GEN[@]}" \
        $(pkg-config --libs $libs) -lm -o "$bin"
    work="$OUT/corpus-$name"
    rm -rf "$work" && mkdir -p "$work" "$OUT/artifacts"
    [ -d "$corpus" ] && cp "$corpus"/* "$work"/ 2>/dev/null || true
    dict=()
    [ -f "test/fuzz/$name.dict" ] && dict=(-dict="test/fuzz/$name.dict")
    echo "fuzz: running $name for ${FUZZ_SECONDS}s over $work"
    if ! "$bin" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 -artifact_prefix="$OUT/artifacts/$name-" "${dict[@]}" "$work" \
        >"$OUT/$name.log" 2>&1; then
        echo "fuzz: $name FAILED; see $OUT/$name.log and $OUT/artifacts/" >&2
        tail -40 "$OUT/$name.log" >&2
        status=1
    else
        grep -E '^stat::number_of_executed_units|^Done' "$OUT/$name.log" || true
        echo "fuzz: $name: no crashes"
    fi
done
exit $status
