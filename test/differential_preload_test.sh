#!/usr/bin/env bash
# differential_preload_test.sh - differential_test with libshmsock-preload.so in LD_PRELOAD: its
# "kernel" run (the C library's socketpair, send, recvmsg, poll, ioctl, ...) then goes through
# the preload's interposition, as an unmodified program's calls do under shmsock-run, and must
# give the same results as its shm run (the shm_* calls) step by step.
#   usage: differential_preload_test.sh PATH_TO_DIFFERENTIAL_TEST PATH_TO_LIBSHMSOCK_PRELOAD_SO
#
# The "kernel" sockets are then the preload's shm sockets (the two ends of a socketpair in one
# process negotiate): the reference is no longer the kernel but the same library reached
# through the interposed C library calls. SHMSOCK_DIFFERENTIAL_PRELOAD tells the test to give
# them the mode of the shm run (SHM_COALESCE = 0 in the event-mode cases): a coalesced
# reference differs from an event-mode run where the library documents a shorter SOCK_STREAM
# peek (first seen: stream_event_mode seed 5 step 129, a 30000-byte MSG_PEEK across a message
# that carries a descriptor: the coalesced reference shows 23805 bytes, the event-mode run and
# the kernel 23869 with MSG_CTRUNC), and compare() accepts a shorter peek on the shm side only.
# The preload's log (SHMSOCK_LOG) must show that it adopted the sockets, so that a preload that
# did not load cannot pass for one that works.
set -euo pipefail
differential="$1"
lib="$(realpath "$2")"
fail() { echo "FAIL: $*" >&2; exit 1; }

log="$(mktemp "${TEST_TMPDIR:-/tmp}/preload-log.XXXXXX")"
trap 'rm -f "$log"' EXIT
unset SHMSOCK_EXCLUDE SHMSOCK_COALESCE SHMSOCK_BUSY_POLL SHMSOCK_BLOCK_SIZE
# A sanitizer build (--config=asan, tsan) links its runtime into the test; ASan insists on
# coming first in the library list, so the runtime goes before the preload.
preload="$lib"
runtime="$(ldd "$differential" 2>/dev/null | awk '$1 ~ /^lib(asan|tsan)\.so/ && !found { print $3; found = 1 }')"  # (no early exit: SIGPIPE under pipefail)
[[ -z "$runtime" ]] || preload="$runtime:$lib"
# The library is in the process twice: the test's own shared objects (Bazel links the test's
# dependencies as shared libraries, every symbol exported) and the preload. The preload comes
# first, so its definitions of the shm_* calls and of the library's globals are the ones every
# caller reaches: one instance serves both runs. ASan calls the second definition of each
# global an ODR violation; here it is the point of the exercise.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_odr_violation=0"
status=0
SHMSOCK_DIFFERENTIAL_PRELOAD=1 SHMSOCK_LOG="$log" LD_PRELOAD="$preload" "$differential" || status=$?
adopted=$(grep -c ': adopted (socketpair)$' "$log" || true)
echo "differential_preload_test.sh: the preload adopted $adopted sockets (socketpair)"
grep -v ': adopted (socketpair)$' "$log" | head -n 20 >&2 || true
((adopted > 0)) || fail "the preload adopted no socket: was it loaded? ($lib)"
((status == 0)) || fail "differential_test under LD_PRELOAD exited with status $status"
