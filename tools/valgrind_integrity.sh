#!/usr/bin/env bash
# tools/valgrind_integrity.sh — the two-process integrity test under valgrind memcheck.
#
#   tools/valgrind_integrity.sh          # 2000 messages each way (SHMSOCK_INTEGRITY_MESSAGES)
#   SHMSOCK_INTEGRITY_MESSAGES=500 tools/valgrind_integrity.sh
#
# Builds test/integrity_test.c with gcc -O1 -g (no Bazel: valgrind wants a plain binary) and
# runs it under memcheck. The test forks its server and client; valgrind follows fork by
# itself (--trace-children=yes also covers exec) and every process reports. Any memcheck
# error (invalid read/write, uninitialised value used, definite leak) exits non-zero.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."   # workspace root
command -v valgrind >/dev/null || { echo "valgrind_integrity.sh: valgrind not found (tools/setup_fuzz.sh)" >&2; exit 1; }
build="$(mktemp -d -t shmsock-valgrind.XXXXXX)"
trap 'rm -rf "$build"' EXIT

gcc -std=gnu11 -O1 -g -fno-omit-frame-pointer -Iinclude -I. -Itest/support -Itest \
    test/integrity_test.c test/support/test_support.c api/*.c impl/*.c \
    -lcmocka -lpthread -o "$build/integrity_test"

export SHMSOCK_INTEGRITY_MESSAGES="${SHMSOCK_INTEGRITY_MESSAGES:-2000}"
set +e
valgrind --tool=memcheck --error-exitcode=1 --leak-check=full \
    --errors-for-leak-kinds=definite --show-leak-kinds=definite --trace-children=yes \
    --track-origins=yes --log-file="$build/valgrind.%p.log" "$build/integrity_test" \
    >"$build/test.log" 2>&1
rc=$?
set -e
errors=0
for log in "$build"/valgrind.*.log; do
    if ! grep -q "ERROR SUMMARY: 0 errors" "$log"; then
        errors=1
        echo "---- $log" >&2
        cat "$log" >&2
    fi
done
if (( rc != 0 || errors != 0 )); then
    tail -40 "$build/test.log" >&2
    echo "valgrind_integrity.sh: FAILED (test exit $rc)" >&2
    exit 1
fi
grep -E "PASSED|FAILED" "$build/test.log" | tail -2
echo "valgrind_integrity.sh: memcheck clean ($(ls "$build"/valgrind.*.log | wc -l) processes, $SHMSOCK_INTEGRITY_MESSAGES messages each way)"
