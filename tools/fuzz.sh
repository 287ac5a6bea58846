#!/usr/bin/env bash
# tools/fuzz.sh — build the libFuzzer targets in fuzz/ and run each for a bounded time.
#
#   tools/fuzz.sh            # 20 s per target
#   tools/fuzz.sh 300        # 300 s per target
#   tools/fuzz.sh 20 offer   # only fuzz/fuzz_offer.c
#
# Each target is built with clang-14 -fsanitize=fuzzer,address,undefined from the impl/ units
# it needs, and started on a scratch corpus seeded from fuzz/corpus/<target>/ (the committed
# seeds are never modified; add interesting new inputs there by hand). Prints the executions
# per target. Exits non-zero if a target crashes, leaks, trips a sanitizer, or finds an input
# that breaks one of its invariants; the input is kept in $FUZZ_OUT/<target>/ (printed).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."   # workspace root
seconds="${1:-20}"
only="${2:-}"
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "usage: tools/fuzz.sh [seconds] [target]" >&2; exit 2; }
cc="${CLANG:-clang-14}"
command -v "$cc" >/dev/null || { echo "fuzz.sh: $cc not found (tools/setup_fuzz.sh)" >&2; exit 1; }
out="${FUZZ_OUT:-$(mktemp -d -t shmsock-fuzz.XXXXXX)}"
mkdir -p "$out"

# target -> the impl/ units it needs
declare -A UNITS=(
    [event]="impl/event.c impl/token_list.c"
    [region_header]="impl/wire_check.c"
    [ring_head]="impl/wire_check.c impl/event.c"
    [offer]="impl/ancillary.c impl/region.c impl/wire_check.c"
)
CFLAGS=(-std=gnu11 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
        -fno-sanitize-recover=all -I. -Iinclude -Wall -Wextra -Werror)

status=0
summary=()
for target in event region_header ring_head offer; do
    [[ -z "$only" || "$only" == "$target" ]] || continue
    work="$out/$target"
    mkdir -p "$work/corpus"
    # shellcheck disable=SC2086
    if ! "$cc" "${CFLAGS[@]}" "fuzz/fuzz_$target.c" ${UNITS[$target]} -o "$work/fuzz_$target" \
            2>"$work/build.log"; then
        cat "$work/build.log" >&2
        echo "fuzz.sh: $target: build failed" >&2
        exit 1
    fi
    start=$SECONDS
    set +e
    "$work/fuzz_$target" "$work/corpus" "fuzz/corpus/$target" \
        -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$work/" >"$work/run.log" 2>&1
    rc=$?
    set -e
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/run.log" | tail -1)"
    corpus="$(find "$work/corpus" -type f | wc -l)"
    if (( rc != 0 )); then
        tail -40 "$work/run.log" >&2
        echo "fuzz.sh: $target FAILED (exit $rc); artifacts in $work/" >&2
        status=1
        summary+=("$(printf '%-14s FAILED after %s executions (%d s)' "$target" "${runs:-?}" $((SECONDS - start)))")
    else
        summary+=("$(printf '%-14s %10s executions in %3d s, corpus %d inputs' "$target" "${runs:-?}" $((SECONDS - start)) "$corpus")")
    fi
done
printf 'fuzz.sh: %s\n' "${summary[@]}"
(( status == 0 )) && echo "fuzz.sh: all targets clean ($seconds s each)"
exit "$status"
