# shellcheck shell=bash
# guards.sh — what fails a story as a whole rather than one of its checks: a sanitizer report in
# a log it leaves, a remora that did not exit 0 when stopped. Sourced by loopback.sh and
# simcluster.sh (which `make demo` uses without testlib.sh); never run it.
#
# A guard prints "FAIL: <script>: why". test/e2e/run.sh counts it as a failure but not as one of
# the story's declared checks: a FAIL line named after the story's own file is about the story.

# What AddressSanitizer, LeakSanitizer and UndefinedBehaviorSanitizer print when they report.
GUARD_SANITIZER_RE='ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:'

# guard_fail WHY — prints a FAIL line about the whole story.
guard_fail() {
    printf 'FAIL: %s: %s\n' "${T_SCRIPT:-$(basename "$0")}" "$1"
}

# guard_scan_logs DIR — a guard_fail for every *.log file under DIR holding a sanitizer report,
# with the report's first line; non-zero if there was one.
guard_scan_logs() {
    local f line bad=0
    [[ -d $1 ]] || return 0
    while IFS= read -r -d '' f; do
        line=$(grep -a -m1 -E "$GUARD_SANITIZER_RE" "$f") || continue
        guard_fail "sanitizer report in $f: $line"
        bad=1
    done < <(find "$1" -type f -name '*.log' -print0 2>/dev/null)
    return "$bad"
}

# guard_status_text RC — an exit status in words: "0", "1", "134 (killed by SIGABRT)".
guard_status_text() {
    local sig
    if (($1 > 128 && $1 < 128 + 65)) && sig=$(kill -l "$(($1 - 128))" 2>/dev/null); then
        printf '%s (killed by SIG%s)\n' "$1" "$sig"
    else
        printf '%s\n' "$1"
    fi
}
