#!/usr/bin/env bash
# tools/check_programs.sh — unmodified Debian programs under shmsock-run. Each sub-test runs the
# same work twice, without shmsock-run (the kernel path) and under it, checks the data of both
# runs, and reads shmsock-ss during the shmsock run (while the connections are open: the
# clients pause halfway, or the run is sampled every 0.1-0.3 s) to check where each connection
# ran:
#
#   socat      1 GiB one way (socat -u, client -> server) and 256 MiB each way through an echo
#              server (socat UNIX-LISTEN ... PIPE: one process that receives and sends back); a
#              seeded stream, sha256 where it arrives. Both ends on shared memory.
#   redis      redis-server and redis-cli: SET/GET of six values, 0 B to 1 MiB of binary data,
#              byte-identical; a 1 MiB GET seen on shared memory at both ends. redis-benchmark
#              -t set,get -c 1 and -c 32: every connection on shared memory at both ends;
#              requests/s of both runs printed (information, no threshold). A client that
#              reads an 8 MB reply slowly: redis-server's CPU while it waits stays under 2%.
#   fork       socat UNIX-LISTEN,fork (a process per connection), 3 sequential and then 4
#              concurrent echo clients with checksums, for two servers: PIPE (the child echoes)
#              and EXEC:cat (the child forks again and runs cat). Passes on the data and prints
#              where the connections ran: after fork() the kernel path is legitimate (api/share.h).
#   pass       examples/fd_passing_server.c (plain POSIX calls, built here with cc): an acceptor
#              process hands each accepted connection to a worker process with SCM_RIGHTS; the
#              same 7 echo clients as in fork (socat). Every connection on shared memory at both
#              ends (the clients', and the worker's with a connection in both directions).
#   hackbench  rt-tests' hackbench in process mode: the default groups (the 20 senders of a group
#              share every write end: kernel path by the fork rule; printed) and -f 1 (one sender
#              per receiver: shared memory, checked). hackbench checks no data and exits 0 even
#              when a worker fails: the test requires exit 0, nothing on stderr and an end within
#              the time limit (a lost byte leaves a receiver waiting).
#
# usage: tools/check_programs.sh [socat|redis|fork|pass|hackbench ...]   (default: all five)
#
# Builds shmsock-run, libshmsock-preload.so and shmsock-ss with the Makefile into a temporary
# BUILDDIR (as tools/check_install.sh does). Needs socat, redis-server, redis-tools (redis-cli,
# redis-benchmark), rt-tests (hackbench) and python3: tools/setup_ci_extras.sh installs them.
# The redis-server here is our own (a Unix socket in a temporary directory, --port 0); a system
# service the package may have started is not used. Each sub-test runs in a process of its own
# under timeout(1), cleans up its processes and files, and prints one PASS or FAIL line with
# figures. Exit status 0 when every sub-test passed. About 2 minutes on 2 idle cores.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
self="$root/tools/check_programs.sh"
ALL_SUBTESTS=(socat redis fork pass hackbench)
# Time limit of each sub-test in seconds (a loaded machine runs them 2-3x slower than idle).
declare -A LIMIT=([socat]=240 [redis]=120 [fork]=120 [pass]=120 [hackbench]=120)

# ---------------------------------------------------------------------------------------------
# Helpers of the sub-tests. A sub-test runs as `$self --subtest NAME` (see the end of the file),
# with CP_BUILD (the Makefile's output) and CP_TMP set. Functions that can fail are never run
# inside $(...): they return their figures in global variables.

name=""   # the running sub-test
work=""   # its directory
pids=()   # its background processes, killed at its end if still there

fail() {
    echo "FAIL $name: $*"
    exit 1
}
info() { echo "  $name: $*"; }

cleanup_subtest() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [[ -z "$work" ]] || rm -rf "$work"
}

# bg VAR IN OUT ERR CMD...: start CMD in the background with its standard input, output and
# error from/to the files IN, OUT and ERR (opened by the new process, so a FIFO there does not
# block us); its pid in VAR. `run MODE PROGRAM ...` (see run) and other programs are exec'd: the
# pid is the program's, as shmsock-ss needs. A shell function runs in a subshell.
bg() {
    local var="$1" in="$2" out="$3" err="$4"
    shift 4
    local -a cmd=("$@")
    if [[ "$1" == run ]]; then
        if [[ "$2" == shm ]]; then cmd=("$RUN" "${@:3}"); else cmd=("${@:3}"); fi
    fi
    if declare -F "${cmd[0]}" >/dev/null; then
        "${cmd[@]}" <"$in" >"$out" 2>"$err" &
    else
        exec "${cmd[@]}" <"$in" >"$out" 2>"$err" &
    fi
    pids+=("$!")
    printf -v "$var" '%s' "$!"
}

# run MODE CMD...: CMD as it is (MODE kernel) or under shmsock-run (MODE shm).
run() {
    local mode="$1"
    shift
    if [[ "$mode" == shm ]]; then "$RUN" "$@"; else "$@"; fi
}

# wait_ok PID WHAT [ERRFILE]: PID ended with status 0 (else fail, with ERRFILE's last lines).
wait_ok() {
    local status=0
    wait "$1" || status=$?
    ((status == 0)) || fail "$2 exited with status $status$(err_tail "${3:-}")"
}
# stop PID: end a process of ours (a server, a sampling loop) and reap it.
stop() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
err_tail() {
    [[ -n "$1" && -s "$1" ]] || return 0
    printf ': %s' "$(tail -n 3 "$1" | tr '\n' ' ')"
}

now() { echo "$EPOCHREALTIME"; }
mib_per_s() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", (s > 0 ? n / 1048576 / s : 0) }'; }
# seconds T0 T1 [TP TG]: T1 - T0, less the pause TG - TP (the time of a shmsock-ss sample).
seconds() { awk -v a="$1" -v b="$2" -v p="${3:-0}" -v g="${4:-0}" 'BEGIN { printf "%.2f", (b - a) - (g - p) }'; }

# alive PID: the process runs (it exists and has not ended: not a zombie).
alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat="${stat##*) }"
    [[ "${stat%% *}" != Z ]]
}

# wait_until SECONDS WHAT PID TEST...: poll TEST every 20 ms until it succeeds; fail after
# SECONDS, or when PID (the process that should make it true) has ended without.
wait_until() {
    local limit="$1" what="$2" pid="$3"
    shift 3
    local deadline=$((SECONDS + limit))
    until "$@"; do
        if ! alive "$pid"; then
            "$@" && return 0
            fail "$what: process $pid ended first"
        fi
        ((SECONDS < deadline)) || fail "$what: not after $limit s"
        sleep 0.02
    done
}

# The data: a seeded pseudo-random block of 1048573 bytes (a prime: no power-of-two offset lines
# up with its period) repeated to N bytes. gen.py N SEED [PAUSE_AT MARKER GO]: with PAUSE_AT it
# writes PAUSE_AT bytes, creates the file MARKER and waits (up to 60 s) for GO to exist.
write_generator() {
    cat >"$work/gen.py" <<'EOF'
import os, random, sys, time
n, seed = int(sys.argv[1]), int(sys.argv[2])
block = random.Random(seed).randbytes(1048573)
out = sys.stdout.buffer
pos = 0
def write_to(limit):
    global pos
    while pos < limit:
        offset = pos % len(block)
        count = min(len(block) - offset, limit - pos)
        out.write(block[offset:offset + count])
        pos += count
if len(sys.argv) > 5:
    write_to(int(sys.argv[3]))
    out.flush()
    open(sys.argv[4], "w").close()
    deadline = time.monotonic() + 60
    while not os.path.exists(sys.argv[5]) and time.monotonic() < deadline:
        time.sleep(0.01)
write_to(n)
EOF
}
gen() { python3 "$work/gen.py" "$@"; }
expected_sum() { gen "$1" "$2" | sha256sum | cut -d' ' -f1; }
HASHER=(sh -c 'sha256sum | cut -d" " -f1') # stdin to its sha256 in hex

# tree ROOT: ROOT and its descendants (from /proc: no procps needed).
tree() {
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v root="$1" '
        { pid = $1; sub(/^.*\) /, ""); split($0, f, " "); parent[pid] = f[2] }
        END {
            keep[root] = 1
            do { more = 0
                 for (p in parent) if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; more = 1 }
            } while (more)
            for (p in keep) if (p in parent) print p
        }'
}

# sample FILE PID...: append one shmsock-ss listing of the PIDs to FILE, then a "--" line.
sample() {
    local file="$1"
    shift
    "$SS" "$@" >>"$file" 2>/dev/null || true # exit status 1: a process ended meanwhile
    echo "--" >>"$file"
}
# sample_loop FILE INTERVAL PID...: sample until killed.
sample_loop() {
    local file="$1" interval="$2"
    shift 2
    while :; do
        sample "$file" "$@"
        sleep "$interval"
    done
}
# sample_tree_loop FILE INTERVAL ROOT: sample the process tree of ROOT until killed.
sample_tree_loop() {
    local file="$1" interval="$2" root="$3"
    while :; do
        # shellcheck disable=SC2046
        sample "$file" $(tree "$root")
        sleep "$interval"
    done
}

# conns FILE: one line per connection in FILE's samples:
#   SAMPLE PID SOCKET-INO SENDS MSGS-SENT BYTES-SENT MSGS-RECV BYTES-RECV
conns() {
    awk '/^--$/ { s++; next }
         /^pid [0-9]+$/ { pid = $2; next }
         $3 ~ /^(STREAM|SEQPACKET)$/ { print s + 0, pid, $2, $4, $8, $9, $10, $11 }' "$1"
}
# Conditions on conns lines. SHM_SENDS: this side sends through its region (sends coalesced or
# events, messages sent). SHM_RECV: it has read from the peer's region (which exists only if the
# peer runs shmsock and the two negotiated). SHM_BOTH: both. (awk fields: single quotes.)
# shellcheck disable=SC2016
SHM_SENDS='$4 != "plain" && $5 > 0'
# shellcheck disable=SC2016
SHM_RECV='$7 > 0'
# shellcheck disable=SC2016
SHM_BOTH='$4 != "plain" && $5 > 0 && $7 > 0'
# count_pid FILE PID CONDITION: connections of PID in FILE (all samples) that meet CONDITION.
count_pid() { conns "$1" | awk -v pid="$2" "\$2 == pid && ($3)" | wc -l; }
# max_per_sample FILE CONDITION [PID]: the most connections (of PID) meeting CONDITION in one
# sample.
max_per_sample() {
    conns "$1" | awk -v pid="${3:-}" "(pid == \"\" || \$2 == pid) && ($2) { n[\$1]++ }
        END { m = 0; for (s in n) if (n[s] > m) m = n[s]; print m }"
}
samples() { grep -c '^--$' "$1" || true; }
# show FILE: the last sample with a connection in FILE (or the last one), for a message.
show() {
    awk '/^--$/ { if (buf ~ /STREAM|SEQPACKET/ || best == "") best = buf; buf = ""; next }
         { buf = buf "\n    " $0 } END { print best }' "$1"
}

# need CMD...: the commands are installed.
need() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || fail "$c not found (Debian: tools/setup_ci_extras.sh" \
            "installs socat, redis-server, redis-tools, rt-tests, python3)"
    done
}

# ---------------------------------------------------------------------------------------------
# socat: one way, and both ways through an echo server.

# socat_stream MODE WAY BYTES SEED SUM: WAY one (socat -u to a server that hashes) or both (an
# echo server; the client hashes what comes back). The client pauses halfway for a shmsock-ss
# sample of both ends. Sets SECONDS_TAKEN (the pause left out).
socat_stream() {
    local mode="$1" way="$2" bytes="$3" seed="$4" sum="$5" d="$work/$2-way-$1"
    local hasher server gen_pid client t0 tp tg t1
    mkdir -p "$d"
    mkfifo "$d/tx" "$d/rx"
    if [[ "$way" == one ]]; then
        bg hasher "$d/rx" "$d/sum" /dev/null "${HASHER[@]}"
        bg server /dev/null "$d/rx" "$d/server.err" run "$mode" socat -u "UNIX-LISTEN:$d/s.sock" STDOUT
    else
        bg server /dev/null /dev/null "$d/server.err" run "$mode" socat "UNIX-LISTEN:$d/s.sock" PIPE
    fi
    wait_until 10 "socat server socket" "$server" test -S "$d/s.sock"
    t0=$(now)
    bg gen_pid /dev/null "$d/tx" /dev/null python3 "$work/gen.py" "$bytes" "$seed" \
        $((bytes / 2)) "$d/paused" "$d/go"
    if [[ "$way" == one ]]; then
        bg client "$d/tx" /dev/null "$d/client.err" run "$mode" socat -u STDIN "UNIX-CONNECT:$d/s.sock"
    else
        bg hasher "$d/rx" "$d/sum" /dev/null "${HASHER[@]}"
        # -t 60: once its input has ended, the client waits up to 60 s (not 0.5 s) for the rest
        # of the echo.
        bg client "$d/tx" "$d/rx" "$d/client.err" run "$mode" socat -t 60 STDIO "UNIX-CONNECT:$d/s.sock"
    fi
    wait_until 60 "$way way, $mode: half of the data sent" "$gen_pid" test -e "$d/paused"
    tp=$(now)
    sample "$d/ss" "$client" "$server"
    touch "$d/go"
    tg=$(now)
    wait_ok "$client" "$way way: socat client ($mode)" "$d/client.err"
    wait_ok "$server" "$way way: socat server ($mode)" "$d/server.err"
    wait_ok "$gen_pid" "generator"
    wait_ok "$hasher" "sha256sum"
    t1=$(now)
    [[ "$(cat "$d/sum")" == "$sum" ]] || fail "$way way, $mode: received data with sha256" \
        "$(cat "$d/sum"), sent $sum"
    if [[ "$mode" == kernel ]]; then
        [[ -z "$(conns "$d/ss")" ]] || fail "$way way, kernel run: shmsock-ss lists" \
            "connections:$(show "$d/ss")"
    elif [[ "$way" == one ]]; then
        (($(count_pid "$d/ss" "$client" "$SHM_SENDS") == 1)) || fail "one way: the client" \
            "(socat -u STDIN UNIX-CONNECT) did not send through shared memory:$(show "$d/ss")"
        (($(count_pid "$d/ss" "$server" "$SHM_RECV") == 1)) || fail "one way: the server" \
            "(socat -u UNIX-LISTEN STDOUT) received nothing through shared memory:$(show "$d/ss")"
    else
        (($(count_pid "$d/ss" "$client" "$SHM_BOTH") == 1)) || fail "both ways: the client" \
            "did not send and receive through shared memory:$(show "$d/ss")"
        (($(count_pid "$d/ss" "$server" "$SHM_BOTH") == 1)) || fail "both ways: the echo" \
            "server did not receive and send through shared memory:$(show "$d/ss")"
    fi
    SECONDS_TAKEN=$(seconds "$t0" "$t1" "$tp" "$tg")
}

subtest_socat() {
    need socat python3 sha256sum
    local one=$((1 << 30)) both=$((256 << 20)) sum1 sum2 mode
    local -A t1 t2
    sum1=$(expected_sum "$one" 1)
    sum2=$(expected_sum "$both" 2)
    for mode in kernel shm; do
        socat_stream "$mode" one "$one" 1 "$sum1"
        t1[$mode]=$SECONDS_TAKEN
        socat_stream "$mode" both "$both" 2 "$sum2"
        t2[$mode]=$SECONDS_TAKEN
    done
    echo "PASS socat: 1 GiB one way, sha256 identical: kernel ${t1[kernel]} s" \
        "($(mib_per_s "$one" "${t1[kernel]}") MiB/s), shm ${t1[shm]} s" \
        "($(mib_per_s "$one" "${t1[shm]}") MiB/s); 256 MiB each way through an echo server," \
        "sha256 identical: kernel ${t2[kernel]} s, shm ${t2[shm]} s; shm runs: both ends on" \
        "shared memory"
}

# ---------------------------------------------------------------------------------------------
# redis: redis-cli round trips, redis-benchmark.

# redis_start MODE DIR: redis-server on DIR/r.sock (no TCP, no persistence); pid in REDIS.
redis_start() {
    local mode="$1" d="$2"
    bg REDIS /dev/null /dev/null "$d/redis.err" run "$mode" redis-server --port 0 \
        --unixsocket "$d/r.sock" --unixsocketperm 700 --save '' --appendonly no --dir "$d" \
        --logfile "$d/redis.log" --daemonize no
    wait_until 10 "redis-server socket" "$REDIS" test -S "$d/r.sock"
    # shellcheck disable=SC2016
    wait_until 10 "redis-server PING" "$REDIS" \
        sh -c '[ "$(redis-cli -s "$1" PING 2>/dev/null)" = PONG ]' sh "$d/r.sock"
}

# redis_values MODE DIR: SET (redis-cli -x: the value from stdin) and GET each value, redis-cli
# under MODE too; the value comes back byte for byte.
redis_values() {
    local mode="$1" d="$2" v size reply
    for v in empty:0 text:-1 small:100 block:4096 odd:65537 big:1048576; do
        size="${v#*:}"
        v="${v%%:*}"
        if ((size < 0)); then
            printf 'hello, shared memory\r\n\0end' >"$d/value.$v"
        else
            gen "$size" "$size" >"$d/value.$v"
        fi
        reply=$(run "$mode" redis-cli -s "$d/r.sock" -x SET "key:$v" <"$d/value.$v") || true
        [[ "$reply" == OK ]] || fail "$mode: redis-cli -x SET key:$v answered '$reply'"
        # To a file, redis-cli prints the raw value and a newline.
        run "$mode" redis-cli -s "$d/r.sock" GET "key:$v" >"$d/got.$v" ||
            fail "$mode: redis-cli GET key:$v failed"
        cmp -s "$d/got.$v" <(cat "$d/value.$v"; echo) || fail "$mode: GET key:$v returned other" \
            "bytes than stored ($(stat -c %s "$d/got.$v") bytes for $(stat -c %s "$d/value.$v") + newline)"
    done
}

# redis_big_on_shm DIR: the 1 MiB value read twice on one connection, 1 s apart
# (redis-cli -r 2 -i 1); shmsock-ss in between sees both ends of the open connection.
redis_big_on_shm() {
    local d="$1" cli
    bg cli /dev/null "$d/got.twice" "$d/cli.err" run shm redis-cli -s "$d/r.sock" -r 2 -i 1 GET key:big
    # shellcheck disable=SC2016
    wait_until 30 "the first GET of redis-cli -r 2" "$cli" \
        sh -c '[ "$(stat -c %s "$1")" -gt 1048576 ]' sh "$d/got.twice"
    sample "$d/cli.ss" "$REDIS" "$cli"
    wait_ok "$cli" "redis-cli -r 2 -i 1 GET key:big" "$d/cli.err"
    cmp -s "$d/got.twice" <(cat "$d/value.big"; echo; cat "$d/value.big"; echo) ||
        fail "redis-cli -r 2 GET key:big: other bytes than stored"
    (($(count_pid "$d/cli.ss" "$REDIS" "$SHM_SENDS && \$6 >= 1048576") == 1)) ||
        fail "redis-server did not send the 1 MiB value through shared memory:$(show "$d/cli.ss")"
    (($(count_pid "$d/cli.ss" "$cli" "$SHM_RECV && \$8 >= 1048576") == 1)) ||
        fail "redis-cli did not receive the 1 MiB value through shared memory:$(show "$d/cli.ss")"
}

# redis_bench MODE DIR CLIENTS REQUESTS: sets RPS ("SET GET", requests/s). Under shm, sampled
# every 0.1 s: at some moment every one of the CLIENTS connections, at both ends, on shared
# memory in both directions.
redis_bench() {
    local mode="$1" d="$2" clients="$3" requests="$4" bench sampler
    local ss="$d/bench-$clients.ss"
    bg bench /dev/null "$d/bench-$clients.csv" "$d/bench-$clients.err" run "$mode" \
        redis-benchmark -s "$d/r.sock" -n "$requests" -c "$clients" -t set,get --csv
    # Sampled in both runs, so that both pay for it.
    bg sampler /dev/null /dev/null /dev/null sample_loop "$ss" 0.1 "$REDIS" "$bench"
    wait_ok "$bench" "redis-benchmark -c $clients ($mode)" "$d/bench-$clients.err"
    stop "$sampler"
    if [[ "$mode" == kernel ]]; then
        [[ -z "$(conns "$ss")" ]] || fail "redis-benchmark -c $clients, kernel run: shmsock-ss" \
            "lists connections:$(show "$ss")"
    else
        local server_side client_side
        server_side=$(max_per_sample "$ss" "$SHM_BOTH" "$REDIS")
        client_side=$(max_per_sample "$ss" "$SHM_BOTH" "$bench")
        ((server_side >= clients && client_side >= clients)) || fail "redis-benchmark -c" \
            "$clients: connections on shared memory in both directions, the most seen at once:" \
            "redis-server $server_side, redis-benchmark $client_side (of $clients), in" \
            "$(samples "$ss") samples:$(show "$ss")"
    fi
    RPS=$(awk -F'"' '$2 == "SET" { s = $4 } $2 == "GET" { g = $4 } END { printf "%.0f %.0f", s, g }' \
        "$d/bench-$clients.csv")
    [[ "$RPS" != "0 0" ]] || fail "redis-benchmark -c $clients ($mode): no figures in its output"
}

# redis_slow_reader MODE DIR: a client (socat, under MODE) asks for an 8 MB value and reads
# nothing for 4 s; redis-server must wait for it without spinning: its CPU over 3 s of that
# wait, in clock ticks, goes to SLOW_TICKS (fails above 2% of a CPU). The reply arrives whole.
redis_slow_reader() {
    local mode="$1" d="$2" t0 t1 got hz
    head -c 6000000 /dev/urandom | base64 -w0 >"$d/value8m"
    run "$mode" redis-cli -s "$d/r.sock" -x SET slow <"$d/value8m" >/dev/null \
        || fail "redis-cli SET of the 8 MB value failed ($mode)"
    { printf 'GET slow\r\n'; sleep 6; } | run "$mode" socat - UNIX-CONNECT:"$d/r.sock" \
        | { sleep 4; wc -c; } >"$d/slow.count" &
    local reader=$!
    sleep 1
    t0="$(awk '{print $14 + $15}' "/proc/$REDIS/stat")"
    sleep 3
    t1="$(awk '{print $14 + $15}' "/proc/$REDIS/stat")"
    wait "$reader" || true
    hz="$(getconf CLK_TCK)"
    SLOW_TICKS=$((t1 - t0))
    got="$(cat "$d/slow.count")"
    # The reply: "$<length>\r\n", the value, "\r\n".
    local len
    len="$(wc -c <"$d/value8m")"
    ((got == len + ${#len} + 5)) || fail "slow reader ($mode): got $got bytes, expected $((len + ${#len} + 5))"
    ((SLOW_TICKS * 100 <= 2 * 3 * hz)) \
        || fail "redis-server used $SLOW_TICKS ticks of $((3 * hz)) ($mode) while its client read slowly"
}

subtest_redis() {
    need redis-server redis-cli redis-benchmark python3
    local mode d
    local -A set1 get1 set32 get32 slow
    for mode in kernel shm; do
        d="$work/$mode"
        mkdir -p "$d"
        redis_start "$mode" "$d"
        redis_values "$mode" "$d"
        [[ "$mode" == kernel ]] || redis_big_on_shm "$d"
        redis_bench "$mode" "$d" 1 20000
        read -r "set1[$mode]" "get1[$mode]" <<<"$RPS"
        redis_bench "$mode" "$d" 32 50000
        read -r "set32[$mode]" "get32[$mode]" <<<"$RPS"
        redis_slow_reader "$mode" "$d"
        slow[$mode]=$SLOW_TICKS
        stop "$REDIS"
    done
    info "redis-server CPU while a client reads an 8 MB reply slowly (3 s): kernel" \
        "${slow[kernel]} ticks, shm ${slow[shm]} ticks (of $((3 * $(getconf CLK_TCK))))"
    info "redis-benchmark requests/s    kernel       shm"
    info "$(printf 'SET -c 1  (20000 requests)  %8s  %8s' "${set1[kernel]}" "${set1[shm]}")"
    info "$(printf 'GET -c 1  (20000 requests)  %8s  %8s' "${get1[kernel]}" "${get1[shm]}")"
    info "$(printf 'SET -c 32 (50000 requests)  %8s  %8s' "${set32[kernel]}" "${set32[shm]}")"
    info "$(printf 'GET -c 32 (50000 requests)  %8s  %8s' "${get32[kernel]}" "${get32[shm]}")"
    echo "PASS redis: SET/GET of 6 values (0 B to 1 MiB) byte-identical, kernel and shm; a 1 MiB" \
        "GET on shared memory at both ends; redis-benchmark, every connection on shared memory" \
        "at both ends; requests/s kernel -> shm: -c 1 SET ${set1[kernel]} -> ${set1[shm]}," \
        "GET ${get1[kernel]} -> ${get1[shm]}; -c 32 SET ${set32[kernel]} -> ${set32[shm]}," \
        "GET ${get32[kernel]} -> ${get32[shm]}; a slow reader costs the server ${slow[shm]} CPU" \
        "ticks in 3 s on shm (kernel ${slow[kernel]})"
}

# ---------------------------------------------------------------------------------------------
# fork: socat UNIX-LISTEN,fork, a process per connection.

FORK_BYTES=$((16 << 20))

# fork_clients MODE DIR SERVER FIRST COUNT: COUNT echo clients at once (seeds FIRST...), each
# paused halfway; meanwhile one shmsock-ss sample of the server's process tree and the clients
# (appended to DIR/ss; the clients' pids to DIR/clients).
fork_clients() {
    local mode="$1" d="$2" server="$3" first="$4" count="$5" k c g h
    local -a clients=() gens=() hashers=()
    for ((k = first; k < first + count; k++)); do
        mkfifo "$d/tx.$k" "$d/rx.$k"
        bg h "$d/rx.$k" "$d/sum.$k" /dev/null "${HASHER[@]}"
        bg g /dev/null "$d/tx.$k" /dev/null python3 "$work/gen.py" "$FORK_BYTES" "$k" \
            $((FORK_BYTES / 2)) "$d/paused.$k" "$d/go.$k"
        bg c "$d/tx.$k" "$d/rx.$k" "$d/client.err.$k" run "$mode" socat -t 60 STDIO \
            "UNIX-CONNECT:$d/f.sock"
        clients+=("$c")
        gens+=("$g")
        hashers+=("$h")
        echo "$c" >>"$d/clients"
    done
    for ((k = 0; k < count; k++)); do
        wait_until 60 "echo client $((first + k)) ($mode): half of its data sent" "${gens[k]}" \
            test -e "$d/paused.$((first + k))"
    done
    # shellcheck disable=SC2046
    sample "$d/ss" $(tree "$server") "${clients[@]}"
    for ((k = first; k < first + count; k++)); do touch "$d/go.$k"; done
    for ((k = 0; k < count; k++)); do
        local n=$((first + k))
        wait_ok "${clients[k]}" "echo client $n ($mode)" "$d/client.err.$n"
        wait_ok "${gens[k]}" "generator $n"
        wait_ok "${hashers[k]}" "sha256sum $n"
        [[ "$(cat "$d/sum.$n")" == "$(cat "$work/expected.$n")" ]] || fail "$mode: echo client" \
            "$n got data with sha256 $(cat "$d/sum.$n") back, sent $(cat "$work/expected.$n")"
    done
}

# server_children FILE SERVER CLIENTS all|shm: how many processes of the server's tree other
# than the server itself were listed in the samples of FILE (a process counted once per sample):
# all, or those with a connection on shared memory in both directions.
server_children() {
    awk -v server="$2" -v which="$4" '
        FNR == NR { client[$1] = 1; next }
        /^--$/ { s++; next }
        /^pid [0-9]+$/ { pid = $2; if (pid != server && !(pid in client)) seen[s " " pid] = 1; next }
        $3 ~ /^(STREAM|SEQPACKET)$/ && $4 != "plain" && $8 > 0 && $10 > 0 { shm[s " " pid] = 1 }
        END { n = 0; for (k in seen) if (which == "all" || (k in shm)) n++; print n }' "$3" "$1"
}

# fork_server VARIANT MODE: the forking server (socat UNIX-LISTEN,fork VARIANT; VARIANT pass:
# fd_passing_server instead), 3 sequential clients, then 4 at once. Sets
# SECONDS_TAKEN, CLIENTS_SHM (clients on shared memory in both directions), CHILDREN (server
# processes other than the listener, as sampled) and CHILDREN_SHM (of those, with a connection
# on shared memory in both directions).
fork_server() {
    local variant="$1" mode="$2" d="$work/${1%%:*}-$2" server t0 t1 k c
    mkdir -p "$d"
    if [[ "$variant" == pass ]]; then
        bg server /dev/null /dev/null "$d/server.err" run "$mode" "$work/fd_passing_server" "$d/f.sock"
    else
        bg server /dev/null /dev/null "$d/server.err" run "$mode" socat "UNIX-LISTEN:$d/f.sock,fork" "$variant"
    fi
    wait_until 10 "$variant server socket" "$server" test -S "$d/f.sock"
    t0=$(now)
    for k in 1 2 3; do fork_clients "$mode" "$d" "$server" "$k" 1; done
    fork_clients "$mode" "$d" "$server" 4 4
    t1=$(now)
    stop "$server"
    SECONDS_TAKEN=$(seconds "$t0" "$t1")
    CLIENTS_SHM=0
    while read -r c; do
        (($(count_pid "$d/ss" "$c" "$SHM_BOTH") == 0)) || CLIENTS_SHM=$((CLIENTS_SHM + 1))
    done <"$d/clients"
    CHILDREN=$(server_children "$d/ss" "$server" "$d/clients" all)
    CHILDREN_SHM=$(server_children "$d/ss" "$server" "$d/clients" shm)
    if [[ "$mode" == kernel ]]; then
        [[ -z "$(conns "$d/ss")" ]] || fail "$variant, kernel run: shmsock-ss lists" \
            "connections:$(show "$d/ss")"
    fi
}

subtest_fork() {
    need socat python3 sha256sum
    local k variant mode summary="" kernel_s
    for k in 1 2 3 4 5 6 7; do expected_sum "$FORK_BYTES" "$k" >"$work/expected.$k"; done
    for variant in PIPE EXEC:cat; do
        fork_server "$variant" kernel
        kernel_s=$SECONDS_TAKEN
        fork_server "$variant" shm
        info "socat UNIX-LISTEN,fork $variant: 7 connections (3 one after the other, then 4 at" \
            "once), 16 MiB each way each, checksums identical: kernel $kernel_s s, shm" \
            "$SECONDS_TAKEN s; on shared memory: $CLIENTS_SHM of 7 connections (clients'" \
            "view); server processes seen: $CHILDREN, with a connection on shared memory:" \
            "$CHILDREN_SHM"
        summary+="${summary:+; }$variant $CLIENTS_SHM/7 connections on shared memory"
    done
    echo "PASS fork: a socat server that forks per connection, 7 echo connections per run," \
        "checksums identical, kernel and shm; $summary (the kernel path is legitimate here)"
}

# ---------------------------------------------------------------------------------------------
# pass: connections handed to a worker process with SCM_RIGHTS.

subtest_pass() {
    need socat python3 sha256sum cc
    local k kernel_s
    cc -O2 -o "$work/fd_passing_server" "$root/examples/fd_passing_server.c" ||
        fail "cc examples/fd_passing_server.c failed"
    for k in 1 2 3 4 5 6 7; do expected_sum "$FORK_BYTES" "$k" >"$work/expected.$k"; done
    fork_server pass kernel
    kernel_s=$SECONDS_TAKEN
    fork_server pass shm
    ((CLIENTS_SHM == 7)) || fail "on shared memory (clients' view, both directions):" \
        "$CLIENTS_SHM of 7 connections:$(show "$work/pass-shm/ss")"
    ((CHILDREN_SHM >= 1)) || fail "the worker was never seen with a connection on shared" \
        "memory in both directions:$(show "$work/pass-shm/ss")"
    echo "PASS pass: an acceptor hands each connection to a worker with SCM_RIGHTS; 7 echo" \
        "connections (3 one after the other, then 4 at once), 16 MiB each way each, checksums" \
        "identical: kernel $kernel_s s, shm $SECONDS_TAKEN s; on shared memory: 7 of 7" \
        "connections (clients' view), the worker seen with one in $CHILDREN_SHM of" \
        "$CHILDREN samples"
}

# ---------------------------------------------------------------------------------------------
# hackbench (rt-tests), process mode.

# hackbench_run TAG MODE INTERVAL ARGS...: sets HB_TIME (hackbench's "Time:"); its
# process tree sampled every INTERVAL s into $work/TAG-MODE.ss.
hackbench_run() {
    local tag="$1" mode="$2" interval="$3" hb sampler
    shift 3
    local out="$work/$tag-$mode.out" err="$work/$tag-$mode.err" ss="$work/$tag-$mode.ss"
    bg hb /dev/null "$out" "$err" run "$mode" hackbench "$@"
    # Sampled in both runs, so that both pay for it.
    bg sampler /dev/null /dev/null /dev/null sample_tree_loop "$ss" "$interval" "$hb"
    wait_ok "$hb" "hackbench $* ($mode)" "$err"
    stop "$sampler"
    if [[ "$mode" == kernel ]]; then
        [[ -z "$(conns "$ss")" ]] || fail "hackbench $*, kernel run: shmsock-ss lists" \
            "connections:$(show "$ss")"
    fi
    [[ ! -s "$err" ]] || fail "hackbench $* ($mode) wrote to stderr$(err_tail "$err")"
    HB_TIME=$(sed -n 's/^Time: //p' "$out")
    [[ -n "$HB_TIME" ]] || fail "hackbench $* ($mode) printed no time"
}

subtest_hackbench() {
    need hackbench
    local mode senders receivers default_shm
    local -a default_args=(-s 512 -l 200 -g 4) one_args=(-s 512 -l 1000000 -g 2 -f 1)
    local -A t_default t_one
    for mode in kernel shm; do
        hackbench_run default "$mode" 0.3 "${default_args[@]}"
        t_default[$mode]=$HB_TIME
        hackbench_run one "$mode" 0.1 "${one_args[@]}"
        t_one[$mode]=$HB_TIME
    done
    # -f 1: 2 groups of one sender and one receiver. A sender sends through shared memory, its
    # receiver reads from it (and never sends: its own direction stays plain).
    senders=$(max_per_sample "$work/one-shm.ss" "$SHM_SENDS")
    receivers=$(max_per_sample "$work/one-shm.ss" "$SHM_RECV")
    ((senders == 2 && receivers == 2)) || fail "hackbench ${one_args[*]}: on shared memory, the" \
        "most seen at once: $senders senders, $receivers receivers (of 2 each), in" \
        "$(samples "$work/one-shm.ss") samples:$(show "$work/one-shm.ss")"
    default_shm=$(max_per_sample "$work/default-shm.ss" "$SHM_SENDS")
    echo "PASS hackbench: exit 0, nothing on stderr; ${default_args[*]} (160 processes): kernel" \
        "${t_default[kernel]} s, shm ${t_default[shm]} s, senders seen on shared memory:" \
        "$default_shm (the kernel path is expected: the group's 20 senders share each write" \
        "end); ${one_args[*]}: kernel ${t_one[kernel]} s, shm ${t_one[shm]} s, 2 senders and" \
        "2 receivers on shared memory"
}

# ---------------------------------------------------------------------------------------------

if [[ "${1:-}" == --subtest ]]; then
    name="$2"
    RUN="$CP_BUILD/shmsock-run"
    SS="$CP_BUILD/shmsock-ss"
    export SHMSOCK_PRELOAD_LIB="$CP_BUILD/libshmsock-preload.so"
    unset SHMSOCK_LOG SHMSOCK_EXCLUDE SHMSOCK_COALESCE SHMSOCK_BUSY_POLL SHMSOCK_BLOCK_SIZE LD_PRELOAD
    work="$CP_TMP/$name"
    mkdir -p "$work"
    cd "$work"
    trap cleanup_subtest EXIT
    trap 'fail "stopped by a signal (the time limit?)"' TERM INT
    write_generator
    "subtest_$name"
    exit 0
fi

# The main part: build, then each sub-test in its own process under timeout.
subtests=("$@")
((${#subtests[@]} > 0)) || subtests=("${ALL_SUBTESTS[@]}")
for s in "${subtests[@]}"; do
    [[ -n "${LIMIT[$s]:-}" ]] || { echo "usage: $0 [${ALL_SUBTESTS[*]}]" >&2; exit 2; }
done

tmp="$(mktemp -d -t shmsock-programs.XXXXXX)"
current=""
trap 'rm -rf "$tmp"' EXIT
trap '[[ -z "$current" ]] || { kill "$current" 2>/dev/null; wait "$current"; }; exit 130' INT TERM
cd "$root"
start=$SECONDS
make -s -j"$(nproc)" BUILDDIR="$tmp/build" preload "$tmp/build/shmsock-run" "$tmp/build/shmsock-ss" \
    >"$tmp/make.log" 2>&1 || { cat "$tmp/make.log" >&2; echo "check_programs.sh: make failed" >&2; exit 1; }
export CP_BUILD="$tmp/build" CP_TMP="$tmp"

failed=0
for s in "${subtests[@]}"; do
    t0=$SECONDS
    status=0
    # timeout runs the sub-test in a process group of its own and signals the whole group.
    # In the background, so that an interrupt here reaches it (timeout passes it on).
    timeout -k 10 "${LIMIT[$s]}" "$self" --subtest "$s" &
    current=$!
    wait "$current" || status=$?
    ((status != 124 && status != 137)) || echo "FAIL $s: not done within ${LIMIT[$s]} s (timeout)"
    ((status == 0)) || failed=$((failed + 1))
    echo "  ($s: $((SECONDS - t0)) s)"
done
echo "check_programs.sh: $((${#subtests[@]} - failed)) passed, $failed failed ($((SECONDS - start)) s in all)"
((failed == 0))
