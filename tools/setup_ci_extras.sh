#!/usr/bin/env bash
# tools/setup_ci_extras.sh — install what the extra CI checks need beyond tools/setup.sh
# (Debian 12). Idempotent: silent when everything is present; apt runs only when something is
# missing. Safe in CI (root, no stdin).
#
# Packages:
#   make          the Makefile build (tools/check_install.sh)
#   pkg-config    compiling against the installed library (tools/check_install.sh)
#   mandoc        man page lint (tools/check_man.sh)
#   clang-format  format check (tools/check_format.sh; Debian 12: clang-format 14)
#   python3       small parsers in tools/check_sources.sh; the data generator of
#                 tools/check_programs.sh
#   socat         tools/check_programs.sh: streams and a forking echo server, under shmsock-run
#   redis-server  tools/check_programs.sh: a server with many client connections (our own
#                 instance on a Unix socket, --port 0; the package's own service is not used)
#   redis-tools   tools/check_programs.sh: redis-cli and redis-benchmark
#   rt-tests      tools/check_programs.sh: hackbench (socketpairs shared by forked processes)
#
# Packages do not start services here: while apt-get runs, a /usr/sbin/policy-rc.d that answers
# 101 ("action forbidden", see invoke-rc.d(8)) keeps redis-server's postinst from starting the
# system's redis (which would fail without an init system, or stay running for nothing). An
# existing policy-rc.d (as container images have) is left as it is.
set -euo pipefail

PACKAGES=(make pkg-config mandoc clang-format python3 socat redis-server redis-tools rt-tests)

die() { echo "setup_ci_extras.sh: error: $*" >&2; exit 1; }

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
(( ${#missing[@]} == 0 )) && exit 0

echo "setup_ci_extras.sh: installing: ${missing[*]}"
[[ "$(id -u)" == 0 ]] || die "must run as root to install packages (try: sudo $0)"

export DEBIAN_FRONTEND=noninteractive
log="$(mktemp -t shmsock-setup-extras.XXXXXX)"
policy=/usr/sbin/policy-rc.d
our_policy=""
cleanup() {
    rm -f "$log"
    [[ -z "$our_policy" ]] || rm -f "$policy"
}
trap cleanup EXIT
if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\n# tools/setup_ci_extras.sh: no service starts while it installs packages.\nexit 101\n' \
        >"$policy"
    chmod 755 "$policy"
    our_policy=1
fi
apt-get update -qq </dev/null >"$log" 2>&1 || { cat "$log" >&2; die "apt-get update failed"; }
apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >"$log" 2>&1 \
    || { cat "$log" >&2; die "apt-get install failed for: ${missing[*]}"; }

mapfile -t still_missing < <(missing_packages)
(( ${#still_missing[@]} == 0 )) || die "still not installed: ${still_missing[*]}"
echo "setup_ci_extras.sh: done"
