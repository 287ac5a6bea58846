#!/usr/bin/env bash
# tools/bench_compare.sh — the benchmark at two git revisions, run alternately on one machine.
#
#   tools/bench_compare.sh OLD_REV NEW_REV [bench args]
#   ROUNDS=5 tools/bench_compare.sh main HEAD --quick --metrics stream,reqresp
#
# Builds //bench:bench with -c opt at each revision (a `git worktree add --detach` of each in a
# temporary directory; Bazel stays offline there too, since WORKSPACE names only local
# repositories), then runs the two binaries alternately: old, new, old, new, ... ROUNDS times
# each (default 3), with the same arguments plus --no-plot and a --csv of their own (do not
# pass --csv or --plot). Alternating spreads the machine's drift over both sides.
#
# For every case (metric, mode, socket type, size) it then prints the shm/kernel ratio of old
# and new side by side: the median over every repetition of every round, and the spread
# (min..max); ratios are taken within a repetition, so they survive the drift of absolute
# figures on these shared machines. A case is marked "WORSE" when new's median lies beyond
# old's spread on the worse side (lower for throughput, higher for latency): the check for
# "no case slower than its spread" before and after a change.
#
# A round that exits non-zero (3: a connection was not on shared memory) is kept and noted.
# Outputs: the table on stdout, and every CSV under $BENCH_COMPARE_OUT (default: a directory
# in /tmp, printed at the end). The worktrees and their Bazel output bases are removed.
set -euo pipefail

usage() { sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
(( $# >= 2 )) || usage
old_rev="$1" new_rev="$2"
shift 2
rounds="${ROUNDS:-3}"
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "bench_compare.sh: ROUNDS must be a positive number" >&2; exit 2; }
for a in "$@"; do
    case "$a" in
        --csv|--plot|--plot-script) echo "bench_compare.sh: $a is set by the script" >&2; exit 2 ;;
    esac
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."   # workspace root
bazel="${BAZEL:-bazel}"
old_sha="$(git rev-parse --verify "$old_rev^{commit}")"
new_sha="$(git rev-parse --verify "$new_rev^{commit}")"

tmp="$(mktemp -d -t shmsock-compare.XXXXXX)"
out="${BENCH_COMPARE_OUT:-$tmp/results}"
mkdir -p "$out"
worktrees=()
cleanup() {
    for wt in "${worktrees[@]}"; do
        # The worktree's own Bazel server and output base go with it.
        (cd "$wt" && "$bazel" clean --expunge >/dev/null 2>&1) || true
        git worktree remove --force "$wt" >/dev/null 2>&1 || true
    done
    [[ "$out" == "$tmp"/* ]] || rm -rf "$tmp"
}
trap cleanup EXIT

build() { # side sha
    local side="$1" sha="$2" wt="$tmp/$1"
    git worktree add --detach "$wt" "$sha" >/dev/null 2>&1 ||
        { echo "bench_compare.sh: git worktree add $sha failed" >&2; exit 1; }
    worktrees+=("$wt")
    echo "bench_compare.sh: building $side ($(git log -1 --format='%h %s' "$sha" | cut -c1-70))" >&2
    if ! (cd "$wt" && "$bazel" build -c opt //bench:bench >"$tmp/$side-build.log" 2>&1); then
        tail -20 "$tmp/$side-build.log" >&2
        echo "bench_compare.sh: build of $side ($sha) failed" >&2
        exit 1
    fi
    cp "$wt/bazel-bin/bench/bench" "$tmp/bench-$side"
}
build old "$old_sha"
build new "$new_sha"

status_notes=()
for ((r = 1; r <= rounds; r++)); do
    for side in old new; do
        echo "bench_compare.sh: round $r/$rounds, $side" >&2
        rc=0
        "$tmp/bench-$side" "$@" --no-plot --csv "$out/$side-$r.csv" >"$out/$side-$r.txt" 2>"$out/$side-$r.err" || rc=$?
        if (( rc != 0 )); then
            status_notes+=("$side round $r exited $rc (see $out/$side-$r.txt)")
            [[ -s "$out/$side-$r.csv" ]] || { cat "$out/$side-$r.err" >&2; exit 1; }
        fi
        grep -m1 'load average at start' "$out/$side-$r.txt" | sed 's/.*load average at start/  load at start:/' >&2 || true
    done
done

echo "shm/kernel ratios, $old_rev ($(git rev-parse --short "$old_sha")) against $new_rev ($(git rev-parse --short "$new_sha")): $rounds alternating rounds each; bench args: ${*:-(none)}"
python3 - "$out" "$rounds" <<'PY'
import csv, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
# Higher is better for streaming and request/response (throughput ratios); lower for the
# latency-only metrics (p50 ratios).
LOWER_IS_BETTER = {"pingpong", "setup"}

def load(side):
    ratios, order, loads = {}, [], []
    for r in range(1, rounds + 1):
        with open(f"{out}/{side}-{r}.csv") as f:
            lines = f.readlines()
        loads += [l.strip("# \n") for l in lines if l.startswith("# load average")]
        for row in csv.DictReader(l for l in lines if not l.startswith("#")):
            if row["record"] != "rep" or row["mode"] == "kernel":
                continue
            key = (row["metric"], row["sock_type"], int(row["size_bytes"]), row["mode"])
            if key not in ratios:
                ratios[key] = []
                order.append(key)
            if row["ratio_vs_kernel"]:
                ratios[key].append(float(row["ratio_vs_kernel"]))
    return ratios, order, loads

old, old_order, old_loads = load("old")
new, new_order, new_loads = load("new")
keys = old_order + [k for k in new_order if k not in old]

def size_text(n):
    for unit, div in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div and n % div == 0:
            return f"{n // div} {unit}"
    return f"{n} B"

def cell(v):
    if not v:
        return "-", None
    m = statistics.median(v)
    return f"{m:.2f}x ({min(v):.2f}..{max(v):.2f})", m

print(f"{'metric':<11} {'type':<9} {'size':<7} {'mode':<12} {'old: median (spread)':<24} "
      f"{'new: median (spread)':<24} {'new/old':<8} verdict")
worse = 0
for key in keys:
    metric, typ, size, mode = key
    o, n = old.get(key, []), new.get(key, [])
    ot, om = cell(o)
    nt, nm = cell(n)
    change, verdict = "-", ""
    if om and nm:
        change = f"{nm / om:.2f}"
        if metric in LOWER_IS_BETTER:
            bad, good = nm > max(o), nm < min(o)
        else:
            bad, good = nm < min(o), nm > max(o)
        verdict = "WORSE" if bad else "better" if good else "within spread"
        worse += bad
    elif not n:
        verdict = "no result in new"
    elif not o:
        verdict = "new case"
    size_col = "" if metric == "setup" else size_text(size)
    print(f"{metric:<11} {typ:<9} {size_col:<7} {mode:<12} {ot:<24} {nt:<24} {change:<8} {verdict}")
print()
print(f"x = shm mode / kernel within one repetition: throughput for stream and reqresp-*, p50 "
      f"for pingpong and setup (lower is better there); {worse} case(s) WORSE beyond old's spread")
for side, loads in (("old", old_loads), ("new", new_loads)):
    print(f"load average, {side} rounds: " + "; ".join(loads))
PY
for note in "${status_notes[@]+"${status_notes[@]}"}"; do
    echo "note: $note"
done
echo "CSV and tables of every round: $out"
