#!/usr/bin/env bash
# tools/check_bazel_consumer.sh — use shmsock as an external Bazel dependency, offline.
#
# examples/bazel_consumer is its own workspace; it gets shmsock through local_repository (standing
# in for http_archive) and builds, runs and tests a program against "@shmsock//:shmsock". Checks:
#   - the program builds, runs and reports SHM_STATUS_SHM; `bazel test //...` passes there;
#   - nothing a consumer builds needs @cmocka or any other test-only repository (the consumer's
#     WORKSPACE does not even define @cmocka);
#   - `//...` in this workspace does not reach into the consumer workspace (.bazelignore).
# Uses `bazel` from PATH; set BAZEL=... to override. Stops the consumer's Bazel server at the end.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bazel="${BAZEL:-bazel}"
die() { echo "check_bazel_consumer.sh: $*" >&2; exit 1; }

consumer="$root/examples/bazel_consumer"
# Stop the consumer workspace's own server at the end (never this workspace's one).
trap '(cd "$consumer" && "$bazel" shutdown >/dev/null 2>&1) || true' EXIT
cd "$consumer"
"$bazel" run --noshow_progress //:ping
"$bazel" test --noshow_progress //...
deps="$("$bazel" query --noshow_progress 'deps(//...)' 2>/dev/null)" || die "bazel query failed"
if grep -Ei '^@(cmocka|shmsock//test)' <<<"$deps"; then
    die "a consumer target depends on test-only targets (listed above)"
fi

cd "$root"
if "$bazel" query --noshow_progress //... 2>/dev/null | grep -F bazel_consumer; then
    die "//... of shmsock reaches into examples/bazel_consumer (see .bazelignore)"
fi
echo "check_bazel_consumer.sh: @shmsock//:shmsock builds and runs from another workspace"
