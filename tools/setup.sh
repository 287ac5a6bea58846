#!/usr/bin/env bash
# tools/setup.sh — install the system packages the shmsock build needs (Debian 12).
#
# Idempotent: packages already installed are left alone; `apt-get update` and
# `apt-get install` run only when something is missing. Safe in CI (root, no stdin).
#
# Packages:
#   bazel-bootstrap   Bazel 4.2.3 (/usr/bin/bazel); pulls in python3, unzip, a JDK, build-essential
#   bazel-rules-java  rules_java at /usr/share/bazel/rules/java (Bazel cannot download it offline)
#   libcmocka-dev     cmocka unit-test framework (/usr/include/cmocka.h, -lcmocka)
#   gcc, libc6-dev    C toolchain (listed explicitly: missing on a minimal Debian root)
#   python3           used by Bazel's helper scripts (already a dependency of bazel-bootstrap)
set -euo pipefail

PACKAGES=(bazel-bootstrap bazel-rules-java libcmocka-dev gcc libc6-dev python3)

die() { echo "setup.sh: error: $*" >&2; exit 1; }

# Print the packages from PACKAGES that are not fully installed.
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
if (( ${#missing[@]} == 0 )); then
    exit 0   # everything present: stay silent
fi

echo "setup.sh: installing: ${missing[*]}"
[[ "$(id -u)" == 0 ]] || die "must run as root to install packages (try: sudo $0)"

export DEBIAN_FRONTEND=noninteractive
log="$(mktemp -t shmsock-setup.XXXXXX)"
trap 'rm -f "$log"' EXIT

if ! apt-get update -qq </dev/null >"$log" 2>&1; then
    cat "$log" >&2
    die "apt-get update failed (is the Debian archive reachable?)"
fi
if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >"$log" 2>&1; then
    cat "$log" >&2
    die "apt-get install failed for: ${missing[*]}"
fi

# Double-check: fail loudly rather than let Bazel fail obscurely later.
mapfile -t still_missing < <(missing_packages)
(( ${#still_missing[@]} == 0 )) || die "still not installed: ${still_missing[*]}"
echo "setup.sh: done"
