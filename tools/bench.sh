#!/usr/bin/env bash
# tools/bench.sh — run the shmsock benchmark (bench/bench.c): kernel AF_UNIX vs shmsock.
#
#   tools/bench.sh --quick      # under a minute: table, targets, CSV and PNG
#   tools/bench.sh              # full run (5 interleaved reps, 1 s per streaming case)
#   tools/bench.sh --help       # every option
#   tools/bench.sh --hog --metrics pingpong,reqresp   # latency with every core busy
#   tools/bench_compare.sh OLD NEW --quick            # two revisions, run alternately
#
# Installs what is missing first (tools/setup.sh, and gnuplot-nox for the PNG), then runs
# `bazel run -c opt //bench:bench -- "$@"`. Outputs land in bench/results/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."   # workspace root
tools/setup.sh

if ! command -v gnuplot >/dev/null 2>&1; then
    echo "bench.sh: installing gnuplot-nox (for the PNG plot)"
    if [[ "$(id -u)" != 0 ]]; then
        echo "bench.sh: error: must run as root to install gnuplot-nox (try: sudo $0)" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    log="$(mktemp -t shmsock-bench.XXXXXX)"
    trap 'rm -f "$log"' EXIT
    if ! { apt-get install -y -qq --no-install-recommends gnuplot-nox </dev/null >"$log" 2>&1 ||
           { apt-get update -qq </dev/null >>"$log" 2>&1 &&
             apt-get install -y -qq --no-install-recommends gnuplot-nox </dev/null >>"$log" 2>&1; }; }; then
        cat "$log" >&2
        echo "bench.sh: error: apt-get install gnuplot-nox failed" >&2
        exit 1
    fi
fi

exec "${BAZEL:-bazel}" run -c opt //bench:bench -- "$@"
