#!/usr/bin/env bash
# tools/check_install.sh — build with the Makefile, install into a temporary prefix, then build
# and run programs against the installed copy with nothing but pkg-config.
#
#   - `make install PREFIX=$tmp` installs the header, libshmsock.a, libshmsock.so.X.Y.Z (soname
#     libshmsock.so.X), libshmsock-preload.so, shmsock.pc, the man pages, shmsock-ss and
#     shmsock-run; every expected file must be there;
#   - the shared library exports the shm_* calls only (libshmsock-preload.so, which exports the
#     calls it interposes, is not checked for that);
#   - the installed shmsock-run prints its version, finds the installed libshmsock-preload.so
#     (bin/../lib), runs `true` (exit 0) and exits 127 for a program that does not exist;
#   - examples/bazel_consumer/ping.c and examples/demo.c are compiled with
#     `cc ... $(pkg-config --cflags --libs shmsock)` and run (shared library, LD_LIBRARY_PATH);
#     demo.c is also linked with the static library and run;
#   - the installed man pages render from the installed tree (.so links resolve).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
die() { echo "check_install.sh: $*" >&2; exit 1; }

tmp="$(mktemp -d -t shmsock-install.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
prefix="$tmp/prefix"
make -s -j"$(nproc)" BUILDDIR="$tmp/build" install PREFIX="$prefix" >"$tmp/make.log" 2>&1 \
    || { cat "$tmp/make.log" >&2; die "make install failed"; }
if grep -q 'warning:' "$tmp/make.log"; then
    cat "$tmp/make.log" >&2
    die "compiler warnings in the Makefile build"
fi

version="$(make -s --no-print-directory print-version)"
major="${version%%.*}"
for f in include/shmsock.h lib/libshmsock.a "lib/libshmsock.so.$version" "lib/libshmsock.so.$major" \
         lib/libshmsock.so lib/pkgconfig/shmsock.pc share/man/man7/shmsock.7 \
         share/man/man3/shm_socket.3 share/man/man3/shm_send.3 bin/shmsock-ss bin/shmsock-run \
         lib/libshmsock-preload.so share/man/man1/shmsock-ss.1 share/man/man1/shmsock-run.1; do
    [[ -e "$prefix/$f" ]] || die "missing after make install: $f"
done
soname="$(readelf -d "$prefix/lib/libshmsock.so.$version" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')"
[[ "$soname" == "libshmsock.so.$major" ]] || die "soname is '$soname', expected libshmsock.so.$major"
exported="$(nm -D --defined-only "$prefix/lib/libshmsock.so" | awk '$2 ~ /^[TDBRW]$/ {print $3}')"
if grep -v '^shm_' <<<"$exported"; then
    die "the shared library exports symbols other than shm_* (listed above)"
fi

# The launcher, as installed: it must find the installed preload library by itself.
run=(env -u SHMSOCK_PRELOAD_LIB -u LD_PRELOAD "$prefix/bin/shmsock-run")
out="$("${run[@]}" --version)" || die "shmsock-run --version failed"
[[ "$out" == "shmsock-run $version" ]] || die "shmsock-run --version printed '$out', expected 'shmsock-run $version'"
"${run[@]}" true || die "shmsock-run true exited $?"
preload="$("${run[@]}" printenv LD_PRELOAD)" || die "shmsock-run printenv LD_PRELOAD failed"
[[ "$preload" == "$(realpath "$prefix/lib/libshmsock-preload.so")" ]] \
    || die "the installed shmsock-run set LD_PRELOAD=$preload, not the installed library"
status=0
"${run[@]}" /nonexistent/prog 2>/dev/null || status=$?
[[ "$status" == 127 ]] || die "shmsock-run /nonexistent/prog exited $status, expected 127"

export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
[[ "$(pkg-config --modversion shmsock)" == "$version" ]] || die "pkg-config --modversion != $version"
cc="${CC:-cc}"

# Shared library: the command a user types.
for prog in examples/bazel_consumer/ping.c examples/demo.c; do
    exe="$tmp/$(basename "$prog" .c)"
    # shellcheck disable=SC2046  # pkg-config output is meant to be split
    "$cc" -std=gnu11 -Wall -Werror -o "$exe" "$prog" $(pkg-config --cflags --libs shmsock)
    LD_LIBRARY_PATH="$prefix/lib" "$exe" >"$tmp/out" 2>&1 || { cat "$tmp/out" >&2; die "$prog failed (shared)"; }
    tail -n 1 "$tmp/out"
done
# (ldd's output is captured first: `ldd | grep -q` under pipefail fails when grep exits early.)
libs="$(LD_LIBRARY_PATH="$prefix/lib" ldd "$tmp/ping")"
[[ "$libs" == *"libshmsock.so.$major => $prefix/lib/"* ]] \
    || die "ping is not linked against the installed libshmsock.so.$major"

# Static library: same flags, but the archive instead of -lshmsock.
# shellcheck disable=SC2046
"$cc" -std=gnu11 -Wall -Werror -o "$tmp/demo_static" examples/demo.c $(pkg-config --cflags shmsock) \
    "$(pkg-config --variable=libdir shmsock)/libshmsock.a" $(pkg-config --static --libs-only-l shmsock | sed 's/-lshmsock//')
libs="$(ldd "$tmp/demo_static" || true)"
if [[ "$libs" == *libshmsock* ]]; then die "demo_static still needs libshmsock.so"; fi
"$tmp/demo_static" >"$tmp/out" 2>&1 || { cat "$tmp/out" >&2; die "examples/demo.c failed (static)"; }
tail -n 1 "$tmp/out"

# Man pages render from the installed tree, .so links included (man(1) runs in the man root).
(cd "$prefix/share/man" && for page in man1/*.1 man3/*.3 man7/*.7; do
    mandoc -T ascii "$page" >"$tmp/page" 2>&1 || die "cannot render installed $page"
    [[ -s "$tmp/page" ]] || die "installed $page renders empty"
done)

echo "check_install.sh: make install, pkg-config, shared and static linking work ($version)"
