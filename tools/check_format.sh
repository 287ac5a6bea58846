#!/usr/bin/env bash
# tools/check_format.sh — fail if any C file differs from .clang-format (clang-format 14).
#
# Checks every *.c and *.h under api/ impl/ include/ test/ examples/ bench/. Changes nothing;
# to fix a file: clang-format -i FILE (or the whole set: tools/check_format.sh --fix).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."   # workspace root
clang_format="${CLANG_FORMAT:-clang-format}"
command -v "$clang_format" >/dev/null || { echo "check_format.sh: $clang_format not found" >&2; exit 1; }

mapfile -t files < <(find api impl include test examples bench fuzz tools -type f \( -name '*.c' -o -name '*.h' \) \
    2>/dev/null | LC_ALL=C sort)
(( ${#files[@]} > 0 )) || { echo "check_format.sh: no C files found" >&2; exit 1; }

if [[ "${1:-}" == "--fix" ]]; then
    exec "$clang_format" -i --style=file "${files[@]}"
fi

bad=()
for f in "${files[@]}"; do
    if ! "$clang_format" --dry-run --Werror --style=file "$f" >/dev/null 2>&1; then
        bad+=("$f")
    fi
done

if (( ${#bad[@]} > 0 )); then
    echo "check_format.sh: ${#bad[@]} of ${#files[@]} files are not formatted (clang-format -i FILE, or tools/check_format.sh --fix):" >&2
    printf '  %s\n' "${bad[@]}" >&2
    exit 1
fi
echo "check_format.sh: ${#files[@]} files formatted"
