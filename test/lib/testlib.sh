# shellcheck shell=bash
# testlib.sh — assertions for e2e scripts: each check prints one "PASS: name" or
# "FAIL: name: why" line, which test/e2e/run.sh counts against the "# checks: N" line the script
# declares. Source it, never run it.

T_PASSED=0
T_FAILED=0
T_SCRIPT=$(basename "${BASH_SOURCE[1]:-$0}")

t_ok() {
    printf 'PASS: %s\n' "$1"
    T_PASSED=$((T_PASSED + 1))
}

t_fail() {
    printf 'FAIL: %s: %s\n' "$1" "${2:-failed}"
    T_FAILED=$((T_FAILED + 1))
}

# t_eq NAME GOT WANT
t_eq() {
    if [[ $2 == "$3" ]]; then
        t_ok "$1"
    else
        t_fail "$1" "got '$2', want '$3'"
    fi
}

# t_contains NAME HAYSTACK NEEDLE
t_contains() {
    if [[ $2 == *"$3"* ]]; then
        t_ok "$1"
    else
        t_fail "$1" "'$3' not found in '$2'"
    fi
}

# t_run NAME CMD... — passes when CMD succeeds.
t_run() {
    local name=$1 out
    shift
    if out=$("$@" 2>&1); then
        t_ok "$name"
    else
        t_fail "$name" "'$*' failed: $(printf '%s' "$out" | tail -n 3 | tr '\n' ' ')"
    fi
}

# t_require_root — the only skip: a story that needs network namespaces, run by another user,
# prints one SKIP line and exits 77. As root nothing is ever skipped.
t_require_root() {
    if [[ $(id -u) != 0 ]]; then
        printf 'SKIP: %s: needs root for network namespaces\n' "$T_SCRIPT"
        exit 77
    fi
}

# t_package_of CMD — the Debian package that provides CMD (scripts/deps.sh installs it).
t_package_of() {
    case $1 in
    h2load | nghttp) echo nghttp2-client ;;
    ping) echo iputils-ping ;;
    setpriv) echo util-linux ;;
    ip | ss) echo iproute2 ;;
    ps) echo procps ;;
    iptables-save | iptables-restore) echo iptables ;;
    sha256sum | od | date | stat | timeout | base64) echo coreutils ;;
    cmp) echo diffutils ;;
    *) echo "$1" ;;
    esac
}

# t_require_cmd CMD... — a tool the story cannot do without is missing: the story fails, naming
# the package to install. `make deps` installs them all, so a missing tool is a broken machine,
# never a reason to skip.
t_require_cmd() {
    local c
    for c in "$@"; do
        if ! command -v "$c" >/dev/null 2>&1; then
            printf 'FAIL: %s: needs %s: install the Debian package %s (make deps does)\n' \
                "$T_SCRIPT" "$c" "$(t_package_of "$c")"
            exit 1
        fi
    done
}

# t_until SECONDS CMD... — runs CMD every 50 ms until it succeeds (status 0) or SECONDS pass
# (status 1): how a story waits for something to happen, never a bare sleep.
t_until() {
    local end=$((SECONDS + $1))
    shift
    until "$@"; do
        ((SECONDS <= end)) || return 1
        sleep 0.05
    done
}

# t_binomial NAME GOT N P — GOT of N draws landed where each lands with probability P (a
# weighted split): passes when GOT is within four standard deviations of N*P, a window that a
# correct split leaves with probability below 1e-4.
t_binomial() {
    local window
    window=$(awk -v n="$3" -v p="$4" 'BEGIN {
        m = n * p; d = 4 * sqrt(n * p * (1 - p))
        lo = int(m - d); if (lo < m - d) lo++
        printf "%d %d", lo, int(m + d) }')
    if (($2 >= ${window% *} && $2 <= ${window#* })); then
        t_ok "$1"
    else
        t_fail "$1" "$2 of $3, want $3*$4 +/- 4 sd: ${window% *}..${window#* }"
    fi
}

# t_stop WHY — the story cannot go on (its setup failed): one FAIL line, the summary, exit 1.
t_stop() {
    t_fail setup "$1"
    t_summary
    exit 1
}

# t_summary — ends the script: exit 1 if any check failed or none ran at all.
t_summary() {
    printf '# %s: %d passed, %d failed\n' "$T_SCRIPT" "$T_PASSED" "$T_FAILED"
    if ((T_PASSED + T_FAILED == 0)); then
        printf 'FAIL: %s: no checks ran\n' "$T_SCRIPT"
        exit 1
    fi
    ((T_FAILED == 0)) || exit 1
}
