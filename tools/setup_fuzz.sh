#!/usr/bin/env bash
# tools/setup_fuzz.sh — install what tools/fuzz.sh and the extra checkers in .ci/run need
# (Debian 12). Idempotent: silent when everything is present; apt runs only when something is
# missing. Safe in CI (root, no stdin).
#
# Packages:
#   clang-14            the compiler for libFuzzer targets (tools/fuzz.sh)
#   libclang-rt-14-dev  libFuzzer, ASan and UBSan runtimes for clang 14 (-fsanitize=fuzzer,...)
#   valgrind            memcheck of the integrity test (tools/valgrind_integrity.sh)
#   gcc, libcmocka-dev  building the integrity test outside Bazel
set -euo pipefail

PACKAGES=(clang-14 libclang-rt-14-dev valgrind gcc libcmocka-dev)

die() { echo "setup_fuzz.sh: error: $*" >&2; exit 1; }

missing_packages() {
    local p
    for p in "${PACKAGES[@]}"; do
        if [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]]; then
            echo "$p"
        fi
    done
}

command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found: this script expects Debian 12"

mapfile -t missing < <(missing_packages)
if (( ${#missing[@]} > 0 )); then
    echo "setup_fuzz.sh: installing: ${missing[*]}"
    [[ "$(id -u)" == 0 ]] || die "must run as root to install packages (try: sudo $0)"
    export DEBIAN_FRONTEND=noninteractive
    log="$(mktemp -t shmsock-setup-fuzz.XXXXXX)"
    trap 'rm -f "$log"' EXIT
    apt-get update -qq </dev/null >"$log" 2>&1 || { cat "$log" >&2; die "apt-get update failed"; }
    apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >"$log" 2>&1 \
        || { cat "$log" >&2; die "apt-get install failed for: ${missing[*]}"; }
    mapfile -t still_missing < <(missing_packages)
    (( ${#still_missing[@]} == 0 )) || die "still not installed: ${still_missing[*]}"
fi

# The runtime really links: a one-line fuzz target.
probe="$(mktemp -d -t shmsock-fuzz-probe.XXXXXX)"
trap 'rm -rf "$probe"' EXIT
printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' \
    >"$probe/p.c"
clang-14 -fsanitize=fuzzer,address,undefined "$probe/p.c" -o "$probe/p" 2>"$probe/log" \
    || { cat "$probe/log" >&2; die "clang-14 -fsanitize=fuzzer does not link (libclang-rt-14-dev?)"; }
(( ${#missing[@]} == 0 )) || echo "setup_fuzz.sh: done"
