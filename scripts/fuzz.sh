#!/usr/bin/env bash
# Runs each libFuzzer harness that `make fuzz-build` linked into $FUZZ_BUILD/libfuzzer/ (against
# the library of all modules, built by clang with fuzzer + ASan + UBSan instrumentation).
#   fuzz.sh test/fuzz/fuzz_X.c...                 each for FUZZ_SECONDS (default 60) over a
#                                                 scratch copy of test/fuzz/corpus/<X>
#   fuzz.sh --corpus-only test/fuzz/fuzz_X.c...   each once over its committed corpus (make test)
set -euo pipefail
FUZZ_BUILD=${FUZZ_BUILD:-build/fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
OUT="$FUZZ_BUILD/libfuzzer"
corpus_only=0
if [ "${1:-}" = --corpus-only ]; then
    corpus_only=1
    shift
fi
[ $# -gt 0 ] || { echo "usage: $0 [--corpus-only] test/fuzz/fuzz_X.c..." >&2; exit 2; }

status=0 passed=0 failed=0
for harness in "$@"; do
    name=$(basename "$harness" .c)
    bin="$OUT/$name"
    corpus="test/fuzz/corpus/${name#fuzz_}"
    if [ ! -x "$bin" ]; then
        echo "fuzz: $bin is not built (make fuzz-build)" >&2
        status=1 failed=$((failed + 1))
        continue
    fi
    work="$OUT/corpus-$name"
    rm -rf "$work" && mkdir -p "$work" "$OUT/artifacts"
    [ -d "$corpus" ] && cp "$corpus"/* "$work"/ 2>/dev/null || true
    dict=()
    [ -f "test/fuzz/$name.dict" ] && dict=(-dict="test/fuzz/$name.dict")
    if [ $corpus_only -eq 1 ]; then
        args=(-runs=0)
        echo "fuzz: $name over its corpus ($(find "$work" -type f | wc -l) inputs)"
    else
        args=(-max_total_time="$FUZZ_SECONDS")
        echo "fuzz: running $name for ${FUZZ_SECONDS}s over $work"
    fi
    if ! "$bin" "${args[@]}" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 -artifact_prefix="$OUT/artifacts/$name-" "${dict[@]}" "$work" \
        >"$OUT/$name.log" 2>&1; then
        echo "fuzz: $name FAILED; see $OUT/$name.log and $OUT/artifacts/" >&2
        tail -40 "$OUT/$name.log" >&2
        status=1 failed=$((failed + 1))
    else
        grep -E '^stat::number_of_executed_units|^Done' "$OUT/$name.log" || true
        echo "fuzz: $name: no crashes"
        passed=$((passed + 1))
    fi
done
echo "fuzz: $passed passed, $failed failed"
exit $status
