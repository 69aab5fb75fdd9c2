#!/usr/bin/env bash
# Checks the house habits a glance can: no source file over 1,000 lines and no function over
# 100 lines (tables are data, not functions, and are not counted). Tests are left out. Reads the
# code as clang-format leaves it: a function body opens with "{" alone in column 0 and closes
# with "}" alone in column 0.
set -u
cd "$(dirname "$0")/.."
bad=0
while IFS= read -r f; do
    n=$(wc -l <"$f")
    if ((n > 1000)); then
        echo "house-check: $f has $n lines (at most 1,000: split it along what it does)"
        bad=1
    fi
done < <(git ls-files '*.c' '*.h' | grep -v '^test/')
long=$(git ls-files '*.c' | grep -v '^test/' | xargs awk '
    FNR == 1 { start = 0 }
    /^[A-Za-z_].*\(/ { sig = $0 }
    $0 == "{" { start = FNR; name = sig; sub(/\(.*/, "", name); n = split(name, w, /[ *]+/); name = w[n] }
    $0 == "}" && start { if (FNR - start - 1 > 100) printf "%s:%d %s (%d lines)\n", FILENAME, start, name, FNR - start - 1; start = 0 }
')
if [[ -n $long ]]; then
    echo "house-check: functions over 100 lines (split them):"
    echo "$long" | sed 's/^/  /'
    bad=1
fi
((bad == 0)) && echo "house-check: files under 1,000 lines, functions under 100"
exit $bad
