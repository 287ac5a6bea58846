#!/usr/bin/env bash
# tools/test_summaries.sh — print the cmocka summary line of every test the last
# `bazel test` of a configuration ran, so a CI log shows how many test functions passed
# (Bazel itself prints one line per target only).
#
#   tools/test_summaries.sh                      # the default configuration
#   tools/test_summaries.sh --config=asan ...    # the same flags as the `bazel test` run
#
# Looks at the current test targets (`bazel query 'tests(//...)'`) only. Fails if a test log
# has a cmocka FAILED line, or if no cmocka summary is found at all.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."   # workspace root
logs="$("${BAZEL:-bazel}" info bazel-testlogs "$@" 2>/dev/null)"
total=0
targets=0
failed=0
while IFS= read -r target; do
    log="$logs/${target#//}"
    log="${log/://}/test.log"
    if [[ ! -f "$log" ]]; then
        echo "  $target: not run in this configuration"
        continue
    fi
    summary="$(grep -E '^\[  (PASSED|FAILED)  \] [0-9]+ test' "$log" || true)"
    if [[ -z "$summary" ]]; then
        echo "  $target: no cmocka summary (not a cmocka program)"
        continue
    fi
    while IFS= read -r line; do
        echo "  $target: $line"
        n="$(sed -E 's/^\[  (PASSED|FAILED)  \] ([0-9]+) test.*/\2/' <<<"$line")"
        if [[ "$line" == *PASSED* ]]; then
            total=$((total + n))
        else
            failed=$((failed + n))
        fi
    done <<<"$summary"
    targets=$((targets + 1))
done < <("${BAZEL:-bazel}" query 'tests(//...)' 2>/dev/null | sort)
echo "test_summaries.sh: $total cmocka tests passed in $targets targets, $failed failed ($logs)"
if [[ $targets -eq 0 || $failed -ne 0 ]]; then
    exit 1
fi
