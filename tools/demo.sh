#!/usr/bin/env bash
# tools/demo.sh — build and run the demo program (//examples:demo).
#
#   tools/demo.sh [demo arguments...]
#
# Uses `bazel` from PATH (Debian's /usr/bin/bazel); set BAZEL=... to override.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."   # workspace root
tools/setup.sh
"${BAZEL:-bazel}" run //examples:demo -- "$@"

# Then the benchmark's quick mode (under 30 s): kernel vs shmsock, side by side.
echo
echo "demo.sh: the benchmark, quick mode (tools/bench.sh for the full run):"
exec tools/bench.sh --quick
