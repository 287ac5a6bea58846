#!/usr/bin/env bash
# tools/check_layers.sh — check the layers that the Bazel targets alone do not enforce.
#
#   tools/check_layers.sh           # check; exit 1 with a message for each violation
#   tools/check_layers.sh --graph   # print the call graph of impl/ (a.c -> b.c: symbols)
#
# The layers (CONTRIBUTING.md, "Layers"): include/shmsock.h, the facade api/, the engine
# impl/ reached through impl/engine.h only, and the wire format impl/wire.h (with the pure
# checks of //impl:wire) that the fuzzers and the tools use. Checks:
#   - calls: every impl/*.c and api/*.c is compiled on its own (cc -std=gnu11 -Iinclude -c)
#     and its symbols read with nm; "A calls B" when A leaves undefined a symbol B defines.
#     The impl/ files must call each other without a cycle (each cycle is printed: its files
#     and the symbols on each edge), and no impl/ file may call into api/;
#   - includes (#include "..." or <...> naming a file of this project, resolved from the
#     including file's directory, the root or include/): api/ includes only shmsock.h, api/'s
#     own headers and impl/engine.h; impl/ includes nothing from api/; fuzz/*.c,
#     tools/shmsock_ss.c and tools/shmsock_run.c include from impl/ only the headers of
#     //impl:wire, and nothing from api/, except for the exceptions listed below with their
#     reasons (see fuzz/BUILD).
# Uses $CC (default cc), nm and python3.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."   # workspace root
graph=false
case "${1:-}" in
    "") ;;
    --graph) graph=true ;;
    *) echo "usage: tools/check_layers.sh [--graph]" >&2; exit 2 ;;
esac
cc="${CC:-cc}"
tmp="$(mktemp -d -t shmsock-check-layers.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
status=0
fail() { echo "check_layers.sh: $*" >&2; status=1; }

# The headers of //impl:wire (impl/BUILD, WIRE_HDRS): the wire format and its pure checks.
wire_headers="impl/wire.h impl/wire_check.h impl/event.h"
# Narrow exceptions: file -> further impl/ headers it may include (the same as in fuzz/BUILD).
declare -A exceptions=(
    # It feeds the events the checks accept to the token lists (//impl:token_list).
    [fuzz/fuzz_event.c]="impl/token_list.h"
    # The offer is parsed from ancillary data and its region recognised with system calls on
    # the descriptors (//impl:ancillary: ancillary.c, region.c).
    [fuzz/fuzz_offer.c]="impl/ancillary.h impl/region.h"
)

# --- Calls ----------------------------------------------------------------------------------
for src in impl/*.c api/*.c; do
    obj="$tmp/${src//\//_}.o"
    if ! "$cc" -std=gnu11 -Iinclude -c "$src" -o "$obj" 2>"$tmp/cc.log"; then
        cat "$tmp/cc.log" >&2
        echo "check_layers.sh: cannot compile $src" >&2
        exit 1
    fi
    # Global symbols only (static ones cannot be called from another file): "file name type".
    nm -P -g "$obj" | awk -v src="$src" '{ print src, $1, $2 }'
done >"$tmp/symbols"

python3 - "$tmp/symbols" "$graph" <<'PY' || status=1
import collections, sys
defined, used = {}, collections.defaultdict(set)
for line in open(sys.argv[1]):
    src, sym, kind = line.split()
    if kind in ("U", "w", "v"):
        used[src].add(sym)
    else:
        defined[sym] = src
edges = collections.defaultdict(set)  # (caller, callee) -> symbols
for src, syms in used.items():
    for sym in syms:
        if sym in defined and defined[sym] != src:
            edges[src, defined[sym]].add(sym)
impl = {k: v for k, v in edges.items() if k[0].startswith("impl/") and k[1].startswith("impl/")}
name = lambda f: f.split("/", 1)[1]
edge = lambda a, b: f"{name(a)} -> {name(b)}: {' '.join(sorted(impl[a, b]))}"
if sys.argv[2] == "true":
    print("\n".join(edge(a, b) for a, b in sorted(impl)))
    sys.exit(0)
ok = True
for (a, b), syms in sorted(edges.items()):
    if a.startswith("impl/") and b.startswith("api/"):
        print(f"check_layers.sh: {a} calls into {b} ({' '.join(sorted(syms))}): impl/ never "
              "calls api/", file=sys.stderr)
        ok = False
succ = collections.defaultdict(set)
for a, b in impl:
    succ[a].add(b)
# Strongly connected components (Tarjan); each one of more than one file holds a cycle.
index, low, stack, on, sccs = {}, {}, [], set(), []
def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v); on.add(v)
    for w in sorted(succ[v]):
        if w not in index:
            visit(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        scc = set()
        while not scc or w != v:
            w = stack.pop(); on.discard(w); scc.add(w)
        sccs.append(scc)
for v in sorted(set(succ) | {b for a, b in impl}):
    if v not in index:
        visit(v)
for scc in (s for s in sccs if len(s) > 1):
    # The shortest cycle through the first file (breadth-first inside the component).
    start = min(scc); prev = {start: None}; queue = [start]; end = None
    while end is None:
        v = queue.pop(0)
        for w in sorted(succ[v] & scc):
            if w == start:
                end = v; break
            if w not in prev:
                prev[w] = v; queue.append(w)
    path = [start]  # built backwards: start <- end <- ... <- start
    while end is not None:
        path.insert(0, end); end = prev[end]
    print("check_layers.sh: call cycle among impl/ files: " + " -> ".join(map(name, path)),
          file=sys.stderr)
    for a, b in zip(path, path[1:]):
        print("    " + edge(a, b), file=sys.stderr)
    print(f"  the cycle is part of a tangle of {len(scc)} files "
          f"({' '.join(sorted(map(name, scc)))}); the calls among them:", file=sys.stderr)
    for a, b in sorted(k for k in impl if k[0] in scc and k[1] in scc):
        print("    " + edge(a, b), file=sys.stderr)
    ok = False
sys.exit(0 if ok else 1)
PY
$graph && exit "$status"

# --- Includes -------------------------------------------------------------------------------
# Print the project files that `file` includes, one a line (system headers are left out).
project_includes() {
    local file="$1" dir name candidate
    dir="$(dirname "$file")"
    sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]\([^">]*\)[">].*/\1/p' "$file" \
        | while read -r name; do
            for candidate in "$dir/$name" "$name" "include/$name"; do
                if [[ -f "$candidate" ]]; then
                    realpath -m --relative-to=. "$candidate"
                    break
                fi
            done
        done
}

for file in api/*.c api/*.h; do
    while read -r header; do
        case "$header" in
        include/shmsock.h | api/* | impl/engine.h) ;;
        *) fail "$file includes $header: api/ may include only shmsock.h, api/'s own headers" \
               "and impl/engine.h (the engine's narrow interface)" ;;
        esac
    done < <(project_includes "$file")
done

for file in impl/*.c impl/*.h; do
    while read -r header; do
        case "$header" in
        api/*) fail "$file includes $header: impl/ never includes anything from api/" ;;
        esac
    done < <(project_includes "$file")
done

for file in fuzz/*.c tools/shmsock_ss.c tools/shmsock_run.c; do
    allowed=" $wire_headers ${exceptions[$file]:-} "
    while read -r header; do
        case "$header" in
        impl/*)
            [[ "$allowed" == *" $header "* ]] ||
                fail "$file includes $header: fuzz/ and the tools may include from impl/" \
                     "only the wire format (//impl:wire: $wire_headers)" ;;
        api/*) fail "$file includes $header: fuzz/ and the tools never include api/" ;;
        esac
    done < <(project_includes "$file")
done

if (( status == 0 )); then
    impl_files=(impl/*.c) api_files=(api/*.c)
    echo "check_layers.sh: layers respected (${#impl_files[@]} impl/ and ${#api_files[@]} api/" \
         "files; no call cycle in impl/; includes as allowed)"
else
    echo "check_layers.sh: FAILED: the layers are not respected (see above)" >&2
fi
exit "$status"
