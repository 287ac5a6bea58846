#!/usr/bin/env bash
# tools/check_sources.sh — fail when the Makefile and the Bazel target //:shmsock drift apart.
#
# //:shmsock is layered (api/ on //impl:engine on //impl:wire, ...; see impl/BUILD): "the
# library" in Bazel is every cc_library of this workspace that //:shmsock depends on.
# Compares, between `make` (Makefile) and `bazel query` (BUILD):
#   - the library's sources and headers (Makefile SRCS + HDRS vs srcs + hdrs of those targets);
#   - the compiler flags (Makefile COPTS, read from tools/copts.bzl, vs the copts of each of
#     those targets that compiles something);
#   - the version (include/shmsock.h, which the Makefile reads, vs MODULE.bazel).
# Uses `bazel` from PATH; set BAZEL=... to override.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."   # workspace root
bazel="${BAZEL:-bazel}"
tmp="$(mktemp -d -t shmsock-check-sources.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
status=0

library='kind(cc_library, deps(//:shmsock)) intersect //...'
make -s --no-print-directory print-sources | LC_ALL=C sort >"$tmp/make-sources"
# Labels to paths: //:api/io.c -> api/io.c, //impl:event.c -> impl/event.c.
"$bazel" query --noshow_progress "labels(srcs, $library) + labels(hdrs, $library)" \
    2>"$tmp/bazel.log" | sed -e 's|^//:||' -e 's|^//\([^:]*\):|\1/|' \
    | LC_ALL=C sort -u >"$tmp/bazel-sources" \
    || { cat "$tmp/bazel.log" >&2; echo "check_sources.sh: bazel query failed" >&2; exit 1; }
if ! diff -u --label "Bazel //:shmsock and its cc_library deps, srcs+hdrs" --label "Makefile SRCS+HDRS" \
        "$tmp/bazel-sources" "$tmp/make-sources"; then
    echo "check_sources.sh: the Makefile and BUILD list different sources (see the diff above)" >&2
    status=1
fi

make -s --no-print-directory print-copts >"$tmp/make-copts"
"$bazel" query --noshow_progress --output=build "$library" 2>"$tmp/bazel.log" >"$tmp/bazel-rules" \
    || { cat "$tmp/bazel.log" >&2; echo "check_sources.sh: bazel query failed" >&2; exit 1; }
# One file of flags per target that has sources (a header-only target compiles nothing).
python3 - "$tmp/bazel-rules" "$tmp" <<'PY'
import ast, re, sys
text, out = open(sys.argv[1]).read(), sys.argv[2]
for rule in re.split(r"^(?=\w+\()", text, flags=re.M):
    name = re.search(r'^\s*name = "([^"]*)",$', rule, re.M)
    if name is None or not re.search(r"^\s*srcs = ", rule, re.M):
        continue
    m = re.search(r"^\s*copts = (\[.*\]),$", rule, re.M)
    with open(f"{out}/bazel-copts.{name.group(1)}", "w") as f:
        f.write("".join(c + "\n" for c in (ast.literal_eval(m.group(1)) if m else [])))
PY
for copts in "$tmp"/bazel-copts.*; do
    target="${copts##*/bazel-copts.}"
    if ! diff -u --label "Bazel $target copts" --label "Makefile COPTS" \
            "$copts" "$tmp/make-copts"; then
        echo "check_sources.sh: the Makefile and BUILD target $target use different compiler flags" >&2
        status=1
    fi
done

version="$(make -s --no-print-directory print-version)"
module_version="$(sed -n 's/^ *version = "\([^"]*\)".*/\1/p' MODULE.bazel)"
if [[ "$module_version" != "$version" ]]; then
    echo "check_sources.sh: MODULE.bazel says version \"$module_version\", include/shmsock.h says $version" >&2
    status=1
fi

if (( status == 0 )); then
    echo "check_sources.sh: Makefile and BUILD agree ($(wc -l <"$tmp/make-sources") files, $(wc -l <"$tmp/make-copts") flags, version $version)"
fi
exit "$status"
