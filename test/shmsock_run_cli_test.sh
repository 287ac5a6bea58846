#!/usr/bin/env bash
# shmsock_run_cli_test.sh - shmsock-run's command line: help, version, usage errors, bad option
# values, exit statuses for a missing or unrunnable program, where it finds the preload
# library, and the environment it hands to the program (LD_PRELOAD, SHMSOCK_*). The program
# run is env(1) or printf(1): this tests the launcher, not the library's interposition.
#   usage: shmsock_run_cli_test.sh PATH_TO_SHMSOCK_RUN PATH_TO_LIBSHMSOCK_PRELOAD_SO
set -euo pipefail
run="$1"
lib="$(realpath "$2")"   # the launcher puts the library's absolute path in LD_PRELOAD
fail() { echo "FAIL: $*" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
unset LD_PRELOAD SHMSOCK_EXCLUDE SHMSOCK_LOG SHMSOCK_COALESCE SHMSOCK_BUSY_POLL SHMSOCK_BLOCK_SIZE
# Under --config=asan the library links ASan's runtime, which then cannot come first in the
# programs run here (env, true: not built with ASan); this test checks the launcher, not them.
# (Set always: programs without ASan ignore it. A test with `ldd | grep -q` under pipefail
# failed now and then: grep's early exit gives ldd SIGPIPE.)
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
export SHMSOCK_PRELOAD_LIB="$lib"

# expect STATUS PATTERN CMD...: CMD exits with STATUS and its stderr matches PATTERN (ERE);
# PATTERN "none": stderr is empty; "": stderr is not looked at (ld.so's warnings, and what the
# preload library may say inside the program).
expect() {
    local want="$1" pattern="$2" got=0
    shift 2
    "$@" >"$tmp/out" 2>"$tmp/err" || got=$?
    [[ "$got" == "$want" ]] || { cat "$tmp/err" >&2; fail "$*: exit status $got, expected $want"; }
    if [[ "$pattern" == none ]]; then
        [[ ! -s "$tmp/err" ]] || { cat "$tmp/err" >&2; fail "$*: unexpected output on stderr"; }
    elif [[ -n "$pattern" ]]; then
        grep -Eq -- "$pattern" "$tmp/err" || { cat "$tmp/err" >&2; fail "$*: stderr does not match '$pattern'"; }
    fi
}
# value NAME: the value of NAME in the env(1) output in $tmp/out ("<unset>" if absent).
value() {
    local line
    line="$(grep -m1 "^$1=" "$tmp/out" || true)"
    if [[ -n "$line" ]]; then echo "${line#*=}"; else echo "<unset>"; fi
}

# Help, version, usage errors.
expect 0 none "$run" --help
grep -q '^usage: shmsock-run ' "$tmp/out" || fail "--help: no usage on standard output"
expect 0 none "$run" -h
grep -q '^usage: shmsock-run ' "$tmp/out" || fail "-h: no usage on standard output"
expect 0 none "$run" --version
grep -Eqx 'shmsock-run [0-9]+\.[0-9]+\.[0-9]+' "$tmp/out" || fail "--version printed '$(cat "$tmp/out")'"
expect 2 '^usage: shmsock-run ' "$run"
expect 2 '^usage: shmsock-run ' "$run" --coalesce 1
expect 2 'unrecognized option' "$run" --no-such-option true

# Bad values: exit 2 and a message that names the option.
for bad in 3000 512 2097152 4k -4096 ' 4096' ''; do
    expect 2 "^shmsock-run: --block-size: " "$run" --block-size "$bad" true
done
for bad in 2 -1 yes ''; do
    expect 2 "^shmsock-run: --coalesce: " "$run" --coalesce "$bad" true
done
for bad in -1 1.5 99999999999 ''; do
    expect 2 "^shmsock-run: --busy-poll: " "$run" --busy-poll "$bad" true
done
expect 2 "^shmsock-run: --exclude: " "$run" -x 'a:b' true
expect 2 "^shmsock-run: --exclude: " "$run" --exclude '' true
# The limits themselves are accepted.
expect 0 '' "$run" --block-size 1024 --block-size 1048576 --busy-poll 0 --coalesce 1 true

# The program: not found 127, not runnable 126, otherwise its own status.
expect 127 '^shmsock-run: /nonexistent/prog: No such file or directory$' "$run" /nonexistent/prog
expect 127 '^shmsock-run: shmsock-no-such-program: No such file or directory$' \
    "$run" shmsock-no-such-program
printf 'not a program\n' >"$tmp/data"
chmod 644 "$tmp/data"
expect 126 "^shmsock-run: $tmp/data: Permission denied\$" "$run" "$tmp/data"
expect 126 "^shmsock-run: $tmp: Permission denied\$" "$run" "$tmp"
expect 42 '' "$run" sh -c 'exit 42'

# Options stop at PROGRAM (its own options pass through), and after --.
expect 0 '' "$run" printf '%s\n' --coalesce -x --
[[ "$(cat "$tmp/out")" == $'--coalesce\n-x\n--' ]] || fail "PROGRAM's options were not passed through"
expect 0 '' "$run" -- printf '%s\n' -h
[[ "$(cat "$tmp/out")" == "-h" ]] || fail "-- did not end shmsock-run's options"

# The environment: every option becomes its variable; nothing is set that was not asked for.
expect 0 '' "$run" -x /a -x @b --coalesce 0 --busy-poll 5 --block-size 4096 --log stderr env
[[ "$(value LD_PRELOAD)" == "$lib" ]] || fail "LD_PRELOAD is '$(value LD_PRELOAD)', expected $lib"
[[ "$(value SHMSOCK_EXCLUDE)" == "/a:@b" ]] || fail "SHMSOCK_EXCLUDE is '$(value SHMSOCK_EXCLUDE)'"
[[ "$(value SHMSOCK_COALESCE)" == 0 ]] || fail "SHMSOCK_COALESCE is '$(value SHMSOCK_COALESCE)'"
[[ "$(value SHMSOCK_BUSY_POLL)" == 5 ]] || fail "SHMSOCK_BUSY_POLL is '$(value SHMSOCK_BUSY_POLL)'"
[[ "$(value SHMSOCK_BLOCK_SIZE)" == 4096 ]] || fail "SHMSOCK_BLOCK_SIZE is '$(value SHMSOCK_BLOCK_SIZE)'"
[[ "$(value SHMSOCK_LOG)" == stderr ]] || fail "SHMSOCK_LOG is '$(value SHMSOCK_LOG)'"
expect 0 '' "$run" env
for name in SHMSOCK_EXCLUDE SHMSOCK_COALESCE SHMSOCK_BUSY_POLL SHMSOCK_BLOCK_SIZE SHMSOCK_LOG; do
    [[ "$(value "$name")" == "<unset>" ]] || fail "$name set to '$(value "$name")' with no option"
done
expect 0 '' "$run" -v env
[[ "$(value SHMSOCK_LOG)" == stderr ]] || fail "-v: SHMSOCK_LOG is '$(value SHMSOCK_LOG)'"
expect 0 '' "$run" -v --log "$tmp/log" env
[[ "$(value SHMSOCK_LOG)" == "$tmp/log" ]] || fail "--log FILE: SHMSOCK_LOG is '$(value SHMSOCK_LOG)'"
# An existing SHMSOCK_EXCLUDE is kept, ours after it.
expect 0 '' env SHMSOCK_EXCLUDE=/old "$run" --exclude @new env
[[ "$(value SHMSOCK_EXCLUDE)" == "/old:@new" ]] || fail "SHMSOCK_EXCLUDE is '$(value SHMSOCK_EXCLUDE)'"

# LD_PRELOAD: ours first, the existing entries after it, ours not twice (by any path).
# (ld.so warns about the missing /nonexistent/other.so on stderr and goes on.)
expect 0 '' env LD_PRELOAD=/nonexistent/other.so "$run" env
[[ "$(value LD_PRELOAD)" == "$lib:/nonexistent/other.so" ]] || fail "LD_PRELOAD is '$(value LD_PRELOAD)'"
ln -s "$lib" "$tmp/alias.so"
expect 0 '' env LD_PRELOAD="/nonexistent/a.so $tmp/alias.so:$lib" "$run" env
[[ "$(value LD_PRELOAD)" == "$lib:/nonexistent/a.so" ]] || fail "LD_PRELOAD is '$(value LD_PRELOAD)'"
# Run twice (a program that is itself launched through shmsock-run): still once.
expect 0 '' "$run" "$run" env
[[ "$(value LD_PRELOAD)" == "$lib" ]] || fail "nested: LD_PRELOAD is '$(value LD_PRELOAD)'"

# Where the library is found. SHMSOCK_PRELOAD_LIB names one file: no fall-back if it is bad.
expect 125 '^shmsock-run: /nonexistent/lib.so: No such file or directory$' \
    env SHMSOCK_PRELOAD_LIB=/nonexistent/lib.so "$run" true
expect 125 "^shmsock-run: $tmp/data: not a shared library" env SHMSOCK_PRELOAD_LIB="$tmp/data" "$run" true
expect 125 "^shmsock-run: $tmp: not a regular file" env SHMSOCK_PRELOAD_LIB="$tmp" "$run" true
# Without it: where the build put the two (build/ for make, bazel-bin/tools/ and
# bazel-bin/api/preload/ for Bazel), beside the executable, in its ../lib.
unset SHMSOCK_PRELOAD_LIB
expect 0 '' "$run" env
[[ "$(value LD_PRELOAD)" == "$lib" ]] || fail "as built: LD_PRELOAD is '$(value LD_PRELOAD)', expected $lib"
mkdir -p "$tmp/beside" "$tmp/prefix/bin" "$tmp/prefix/lib" "$tmp/alone"
cp "$run" "$tmp/beside/shmsock-run"
cp "$lib" "$tmp/beside/libshmsock-preload.so"
expect 0 '' "$tmp/beside/shmsock-run" env
[[ "$(value LD_PRELOAD)" == "$(realpath "$tmp/beside/libshmsock-preload.so")" ]] \
    || fail "beside the executable: LD_PRELOAD is '$(value LD_PRELOAD)'"
cp "$run" "$tmp/prefix/bin/shmsock-run"
cp "$lib" "$tmp/prefix/lib/libshmsock-preload.so"
expect 0 '' "$tmp/prefix/bin/shmsock-run" env
[[ "$(value LD_PRELOAD)" == "$(realpath "$tmp/prefix/lib/libshmsock-preload.so")" ]] \
    || fail "in ../lib: LD_PRELOAD is '$(value LD_PRELOAD)'"
cp "$run" "$tmp/alone/shmsock-run"
expect 125 '^shmsock-run: cannot find libshmsock-preload.so .*SHMSOCK_PRELOAD_LIB' \
    "$tmp/alone/shmsock-run" true
chmod 000 "$tmp/beside/libshmsock-preload.so"
if [[ -r "$tmp/beside/libshmsock-preload.so" ]]; then
    echo "(running as root: the unreadable library case is skipped)"
else
    expect 125 'libshmsock-preload.so: Permission denied$' "$tmp/beside/shmsock-run" true
fi
echo "1 passed, 0 failed"
