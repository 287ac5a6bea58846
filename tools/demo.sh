#!/usr/bin/env bash
# tools/demo.sh — build and run the demo program (//examples:demo).
#
#   tools/demo.sh [demo arguments...]
#
# Uses `bazel` from PATH (Debian's /usr/bin/bazel); set BAZEL=... to override.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."   # workspace root
tools/setup.sh
exec "${BAZEL:-bazel}" run //examples:demo -- "$@"
