#!/usr/bin/env bash
# shmsock_ss_test.sh - shmsock-ss lists a process's shm sockets with the counters their
# regions hold, and rejects bad arguments.
#   usage: shmsock_ss_test.sh PATH_TO_SHMSOCK_SS PATH_TO_HOLD_PAIR
set -euo pipefail
ss_tool="$1"
hold_pair="$2"
fail() { echo "FAIL: $*" >&2; exit 1; }

out="$(mktemp -d)"
mkfifo "$out/in"
"$hold_pair" <"$out/in" >"$out/ready" &
pid=$!
exec 3>"$out/in"   # keeps hold_pair waiting until we close it
trap 'exec 3>&-; wait "$pid" 2>/dev/null || true; rm -rf "$out"' EXIT
for _ in $(seq 100); do grep -q ready "$out/ready" 2>/dev/null && break; sleep 0.05; done
grep -q ready "$out/ready" || fail "hold_pair did not get ready"

"$ss_tool" "$pid" >"$out/list" || fail "shmsock-ss $pid exited $?"
cat "$out/list"
lines=$(grep -c ' STREAM ' "$out/list" || true)
[[ "$lines" == 2 ]] || fail "expected 2 shm sockets (both ends), got $lines"
[[ "$(grep -c ' STREAM  *coalesced ' "$out/list" || true)" == 2 ]] || fail "sends not shown as coalesced"
# The sending end: 10 x 100 bytes plus 2 one-byte handshake messages went through shm.
grep -Eq ' STREAM +coalesced .* 1[12] +100[12] ' "$out/list" \
    || fail "sender's counters (messages, bytes) not as sent"

set +e
"$ss_tool" >/dev/null 2>&1; [[ $? == 2 ]] || fail "no argument: exit status not 2"
"$ss_tool" notapid >/dev/null 2>&1; [[ $? == 2 ]] || fail "bad pid: exit status not 2"
"$ss_tool" 999999999 >/dev/null 2>&1; [[ $? == 1 ]] || fail "missing process: exit status not 1"
set -e
echo "1 passed, 0 failed"
