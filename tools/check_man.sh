#!/usr/bin/env bash
# tools/check_man.sh — lint the man pages and check that they cover the public API.
#
#   - `mandoc -T lint -W style` reports nothing for man/man1/*.1 (the tools), man/man3/*.3
#     and man/man7/*.7 (style messages count: keep input lines within 80 columns, one
#     sentence per line is fine);
#   - every function declared in include/shmsock.h has man/man3/<function>.3 (a page, or a
#     symlink to the page that documents it, as shm_sendto.3 -> shm_send.3) whose NAME line
#     lists it, and every page in man/man3 documents a function of the header;
#   - every SOL_SHMSOCK / SHM_* constant of the header is described in shm_getsockopt(3) and
#     in shmsock(7).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."   # workspace root
command -v mandoc >/dev/null || { echo "check_man.sh: mandoc not found (tools/setup_ci_extras.sh)" >&2; exit 1; }
status=0
fail() { echo "check_man.sh: $*" >&2; status=1; }

# 1. Lint. Run from man/ so that a .so request (if one is ever used) resolves as man(1) does.
if ! lint="$(cd man && mandoc -T lint -W style man1/*.1 man3/*.3 man7/*.7 2>&1)" || [[ -n "$lint" ]]; then
    printf '%s\n' "$lint" >&2
    fail "mandoc -T lint reported the problems above"
fi

# 2. One page (or link) per public function, and no page for a function that does not exist.
mapfile -t functions < <(sed -n 's/^[a-z][a-z_ ]*[ *]\(shm_[a-z0-9_]*\)(.*/\1/p' include/shmsock.h | sort -u)
(( ${#functions[@]} > 0 )) || fail "found no functions in include/shmsock.h"
for fn in "${functions[@]}"; do
    page="man/man3/$fn.3"
    if [[ ! -e "$page" ]]; then
        fail "$fn is declared in include/shmsock.h but has no man page ($page)"
        continue
    fi
    # The NAME section, its lines joined (a long list of names wraps to keep lines short).
    name_line="$(sed -n '/^\.SH NAME/,/^\.SH [^N]/{/^\.SH/!p}' "$page" | tr '\n' ' ')"
    grep -qw -- "$fn" <<<"${name_line%%\\-*}" || fail "$page: NAME does not list $fn"
done
for page in man/man3/*.3; do
    fn="$(basename "$page" .3)"
    [[ " ${functions[*]} " == *" $fn "* ]] || fail "$page documents $fn, which include/shmsock.h does not declare"
done

# 3. Every shmsock constant is documented.
mapfile -t constants < <(sed -n 's/^#define \(SOL_SHMSOCK\|SHM_[A-Z0-9_]*\) .*/\1/p' include/shmsock.h | sort -u)
for c in "${constants[@]}"; do
    for page in man/man3/shm_getsockopt.3 man/man7/shmsock.7; do
        grep -qw -- "$c" "$page" || fail "$page does not mention $c (include/shmsock.h)"
    done
done

(( status == 0 )) && echo "check_man.sh: $(ls man/man1 | wc -l) section 1 page(s), $(ls man/man3 | wc -l) section 3 pages for ${#functions[@]} functions, $(ls man/man7 | wc -l) section 7 page(s): lint clean, API covered"
exit "$status"
