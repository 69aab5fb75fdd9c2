#!/usr/bin/env bash
# run.sh — runs the e2e scripts (all test/e2e/test_*.sh, or those named) each under a timeout,
# counts their PASS/FAIL/SKIP lines and ends with "e2e: N passed, N failed, N skipped".
#
# A script that exits 77 is skipped; one that exits non-zero without a FAIL line, times out,
# reports nothing, or leaves a simulated cluster behind counts as a failure: nothing is
# silently skipped or silently left running.
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root" || exit 1
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
    SIM_IDS_FILE=$ids timeout --kill-after=20 "$timeout_s" bash "$script" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    np=$(grep -c '^PASS: ' "$log")
    nf=$(grep -c '^FAIL: ' "$log")
    ns=$(grep -c '^SKIP: ' "$log")
    if ((rc == 124 || rc == 137)); then
        echo "FAIL: $name: timed out after ${timeout_s}s"
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
    passed=$((passed + np))
    failed=$((failed + nf))
    skipped=$((skipped + ns))
    reap_leftovers "$ids" "$name"
done

echo "e2e: $passed passed, $failed failed, $skipped skipped"
((failed == 0))
