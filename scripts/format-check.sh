#!/usr/bin/env bash
# Fails when a tracked C file differs from what clang-format (the root .clang-format) would make.
set -u
files=$(git ls-files '*.c' '*.h' 2>/dev/null)
[ -z "$files" ] && exit 0
bad=()
for f in $files; do
    [ -f "$f" ] || continue
    if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then bad+=("$f"); fi
done
if [ ${#bad[@]} -gt 0 ]; then
    echo "format-check: run 'make format'; these files differ: ${bad[*]}" >&2
    exit 1
fi
echo "format-check: $(echo "$files" | wc -w) files clean"
