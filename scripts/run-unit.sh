#!/usr/bin/env bash
# Runs the cmocka unit test binaries, then the fuzz replay binaries over their committed corpus,
# and prints one closing line with the totals.
set -u
passed=0; failed=0; bad_bins=()
mode=unit
for bin in "$@"; do
    if [ "$bin" = "--" ]; then mode=fuzz; continue; fi
    if [ "$mode" = unit ]; then
        out=$("$bin" 2>&1); rc=$?
        p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | tail -1)
        f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | tail -1)
        passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
        if [ $rc -ne 0 ] || [ -n "$f" ]; then
            printf '%s\n' "$out" | grep -E '^\[  (FAILED|ERROR)|FAIL|ERROR|Sanitizer|runtime error' | head -40
            bad_bins+=("$(basename "$bin")")
            [ -z "$f" ] && failed=$((failed + 1))
        fi
        printf '%-28s %s passed%s\n' "$(basename "$bin")" "${p:-0}" "${f:+, $f failed}"
    else
        name=$(basename "$bin" -replay); corpus="test/fuzz/corpus/${name#fuzz_}"
        if out=$("$bin" "$corpus" 2>&1); then
            passed=$((passed + 1)); printf '%s\n' "$out" | tail -1
        else
            failed=$((failed + 1)); bad_bins+=("$name"); printf '%s\n' "$out" | tail -40
        fi
    fi
done
echo "unit ($BUILD): $passed passed, $failed failed"
[ $failed -eq 0 ] && [ ${#bad_bins[@]} -eq 0 ]
