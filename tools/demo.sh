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
# Its files go to a temporary folder: bench/results holds the full run shown in the README.
out="$(mktemp -d -t shmsock-bench-quick.XXXXXX)"
exec tools/bench.sh --quick --csv "$out/bench-quick.csv" --plot "$out/bench-quick.png"
