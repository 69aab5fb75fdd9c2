#!/usr/bin/env bash
# run.sh — runs the e2e scripts (all test/e2e/test_*.sh, or those named) each under a timeout,
# counts their PASS/FAIL/SKIP lines and ends with "e2e: N passed, N failed, N skipped".
#
# Each script declares how many checks it runs in a line "# checks: N"; one that runs another
# number (or declares none) fails. A script that exits 77 is skipped, unless run as root: as
# root nothing may be skipped. One that exits non-zero without a FAIL line, times out, leaves a
# sanitizer report in its output, or leaves a simulated cluster behind counts as a failure:
# nothing is silently skipped, silently cut short or silently left running.
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root" || exit 1
# shellcheck source=test/lib/guards.sh
source "$root/test/lib/guards.sh"
export BUILD=${BUILD:-build}
timeout_s=${E2E_TIMEOUT:-300}

if (($#)); then
    scripts=("$@")
else
    mapfile -t scripts < <(find test/e2e -maxdepth 1 -name 'test_*.sh' | sort)
fi
if ((${#scripts[@]} == 0)); then
    echo "e2e: no test scripts found"
    echo "e2e: 0 passed, 1 failed, 0 skipped"
    exit 1
fi

passed=0 failed=0 skipped=0
times=() # "<seconds> <script>" per script, for the slowest-first list at the end
as_root=0
[[ $(id -u) == 0 ]] && as_root=1
work=$(mktemp -d "${TMPDIR:-/tmp}/remora-e2e.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT

# Removes what a killed script left behind, using the ids its sim_init calls recorded.
reap_leftovers() {
    local ids_file=$1 name=$2 id leaked
    [[ -s $ids_file ]] || return 0
    while read -r id; do
        leaked=$(ip netns list 2>/dev/null | awk -v p="rm$id-" 'index($1, p) == 1 { print $1 }')
        [[ -n $leaked ]] || continue
        echo "FAIL: $name: left namespaces behind: $(echo "$leaked" | tr '\n' ' ')"
        failed=$((failed + 1))
        (
            # shellcheck source=test/lib/simcluster.sh
            source "$root/test/lib/simcluster.sh"
            SIM_ID=$id
            # Keep the killed run's logs: they are what explains the timeout.
            SIM_DIR=$(find "${TMPDIR:-/tmp}" -maxdepth 1 -name "remora-sim-$id.*" | head -n 1)
            SIM_KEEP=1
            sim_teardown
        )
    done <"$ids_file"
}

for script in "${scripts[@]}"; do
    name=$(basename "$script")
    log=$work/$name.log
    ids=$work/$name.ids
    : >"$ids"
    if [[ ! -f $script ]]; then
        echo "FAIL: $name: no such script"
        failed=$((failed + 1))
        continue
    fi
    echo "=== $name"
    declared=$(sed -n 's/^# checks: \([0-9][0-9]*\)$/\1/p' "$script" | head -n 1)
    t0=$SECONDS
    SIM_IDS_FILE=$ids timeout --kill-after=20 "$timeout_s" bash "$script" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    np=$(grep -c '^PASS: ' "$log")
    nf=$(grep -c '^FAIL: ' "$log")
    ns=$(grep -c '^SKIP: ' "$log")
    # A FAIL named after the script itself (a guard: a sidecar's exit status, a sanitizer
    # report, a missing tool) is about the whole story, not one of its checks.
    nstory=$(awk -v p="FAIL: $name: " 'index($0, p) == 1' "$log" | wc -l)
    ran=$((np + nf - nstory + ns))
    if ((rc == 124 || rc == 137)); then
        echo "FAIL: $name: timed out after ${timeout_s}s"
        nf=$((nf + 1))
    elif ((rc == 77 && as_root)); then
        echo "FAIL: $name: skipped as root (exit 77): as root nothing may be skipped"
        nf=$((nf + 1))
    elif ((rc == 77)); then
        if ((ns == 0)); then
            echo "SKIP: $name: skipped (exit 77)"
            ns=1
        fi
    elif ((rc != 0 && nf == 0)); then
        echo "FAIL: $name: exited with status $rc without a FAIL line"
        nf=1
    elif ((rc == 0 && np + nf + ns == 0)); then
        echo "FAIL: $name: reported no checks"
        nf=1
    fi
    if ((rc != 77 && rc != 124 && rc != 137)); then
        if ((ns > 0 && as_root)); then
            echo "FAIL: $name: $ns SKIP line(s) as root: a SKIP is only for a story that needs root"
            nf=$((nf + 1))
        fi
        if [[ -z $declared ]]; then
            echo "FAIL: $name: declares no check count (a line '# checks: N')"
            nf=$((nf + 1))
        elif ((ran != declared)); then
            echo "FAIL: $name: ran $ran checks, declares $declared"
            nf=$((nf + 1))
        fi
    fi
    # A sanitizer report that reached the story's output rather than a log it kept.
    report=$(grep -a -v -E '^(PASS|FAIL|SKIP): ' "$log" | grep -a -m1 -E "$GUARD_SANITIZER_RE")
    if [[ -n $report ]]; then
        echo "FAIL: $name: sanitizer report in its output: $report"
        nf=$((nf + 1))
    fi
    passed=$((passed + np))
    failed=$((failed + nf))
    skipped=$((skipped + ns))
    reap_leftovers "$ids" "$name"
    times+=("$((SECONDS - t0)) $name")
    echo "--- $name: $((SECONDS - t0)) s"
done

if ((${#times[@]} > 1)); then
    slowest=$(printf '%s\n' "${times[@]}" | sort -rn | head -n 8 | awk '{ printf " %s %ss", $2, $1 }')
    echo "e2e: slowest scripts:$slowest"
fi
echo "e2e: $passed passed, $failed failed, $skipped skipped"
((failed == 0))
