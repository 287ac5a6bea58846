#!/usr/bin/env bash
# tools/check_sources.sh — fail when the Makefile and the Bazel target //:shmsock drift apart.
#
# Compares, between `make` (Makefile) and `bazel query` (BUILD):
#   - the library's sources and headers (Makefile SRCS + HDRS vs srcs + hdrs of //:shmsock);
#   - the compiler flags (Makefile COPTS, read from tools/copts.bzl, vs copts of //:shmsock);
#   - the version (include/shmsock.h, which the Makefile reads, vs MODULE.bazel).
# Uses `bazel` from PATH; set BAZEL=... to override.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."   # workspace root
bazel="${BAZEL:-bazel}"
tmp="$(mktemp -d -t shmsock-check-sources.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
status=0

make -s --no-print-directory print-sources | LC_ALL=C sort >"$tmp/make-sources"
"$bazel" query --noshow_progress 'labels(srcs, //:shmsock) + labels(hdrs, //:shmsock)' \
    2>"$tmp/bazel.log" | sed 's|^//:||' | LC_ALL=C sort >"$tmp/bazel-sources" \
    || { cat "$tmp/bazel.log" >&2; echo "check_sources.sh: bazel query failed" >&2; exit 1; }
if ! diff -u --label "Bazel //:shmsock srcs+hdrs" --label "Makefile SRCS+HDRS" \
        "$tmp/bazel-sources" "$tmp/make-sources"; then
    echo "check_sources.sh: the Makefile and BUILD list different sources (see the diff above)" >&2
    status=1
fi

make -s --no-print-directory print-copts >"$tmp/make-copts"
"$bazel" query --noshow_progress --output=build //:shmsock 2>"$tmp/bazel.log" \
    | python3 -c '
import ast, re, sys
m = re.search(r"^\s*copts = (\[.*\]),$", sys.stdin.read(), re.M)
print("\n".join(ast.literal_eval(m.group(1)) if m else []))' >"$tmp/bazel-copts"
if ! diff -u --label "Bazel //:shmsock copts" --label "Makefile COPTS" \
        "$tmp/bazel-copts" "$tmp/make-copts"; then
    echo "check_sources.sh: the Makefile and BUILD use different compiler flags" >&2
    status=1
fi

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
