#!/usr/bin/env bash
# tools/test.sh — build everything and run every test, warnings as errors.
#
#   tools/test.sh                     # all tests
#   tools/test.sh --config=asan       # extra Bazel flags are passed through (asan|ubsan|tsan)
#
# Uses `bazel` from PATH (Debian's /usr/bin/bazel, Bazel 4.2.3); set BAZEL=... to override.
# Works offline: WORKSPACE supplies rules_cc, rules_java and remote_coverage_tools locally.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."   # workspace root
tools/setup.sh
exec "${BAZEL:-bazel}" test //... --config=werror "$@"
