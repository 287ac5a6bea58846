#!/usr/bin/env bash
# test/preload_run.sh LIBRARY PROGRAM [ARGS] — run a test program with libshmsock-preload.so
# preloaded and SHMSOCK_TEST_LIBC_CALLS=1, so that its plain C library calls (socketpair, send,
# epoll_wait, ...) are the preload's: the same checks as with the shm_ calls, through the
# preload. Fails if the library is not where Bazel put it.
set -euo pipefail
lib="$(realpath "$1")"
shift
[[ -r "$lib" ]] || { echo "preload_run.sh: no library at $lib" >&2; exit 1; }
# Under --config=asan/tsan the program and the library link a sanitizer runtime, which must
# come first in LD_PRELOAD (ASan refuses to start otherwise).
# (awk reads all of ldd's output: an early exit would give ldd SIGPIPE, fatal under pipefail.)
runtime="$(ldd "$1" | awk '/lib(a|t|ub)san\.so/ && !found {print $3; found = 1}')"
SHMSOCK_TEST_LIBC_CALLS=1 LD_PRELOAD="${runtime:+$runtime }$lib" exec "$@"
