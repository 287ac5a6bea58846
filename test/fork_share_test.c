/*
 * fork_share_test.c - one socket held by several processes (fork), several descriptors of one
 * socket (dup), and sockets handed to other processes (SCM_RIGHTS), as share.h describes:
 *
 *   - while several processes hold a socket that has not negotiated, it works as a kernel
 *     socket in every process (forked writers and readers on one pair);
 *   - a socket whose other holders have closed it negotiates as usual (fork-per-connection);
 *   - a socket on shared memory at the fork is driven by the first process that uses it; a
 *     second process gets EOPNOTSUPP, never misread data;
 *   - a shared socket takes the peer's offer without showing it, and answers once alone;
 *   - socketpair, fork, close the unused end: on shared memory;
 *   - a duplicate names the same connection, on shared memory, until the last one closes;
 *   - SCM_RIGHTS gives a socket never used away (the receiver runs it, on shared memory),
 *     hands one that carried bytes over (kernel path for good), and refuses one on shared
 *     memory with EOPNOTSUPP.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "shmsock.h"
#include "test_support.h"

#define WRITERS 24
#define MESSAGES 200
#define MSG_SIZE 256

static void wait_ok(pid_t pid)
{
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

/* A message that says who wrote it and which one it is, so the reader can check each. */
static void fill_message(char *msg, int writer, int seq)
{
    test_fill_pattern(msg, MSG_SIZE, (unsigned)(writer * MESSAGES + seq));
    memcpy(msg, &writer, sizeof(writer));
    memcpy(msg + sizeof(writer), &seq, sizeof(seq));
}

/* Many forked writers on one inherited SOCK_SEQPACKET end, one reader: every message arrives
 * whole and in each writer's order, as on a kernel socket (it stays on the kernel path). */
static void test_forked_writers_on_one_end(void **state)
{
    (void)state;
    test_watchdog(60, "forked writers");
    int sv[2];
    assert_int_equal(shm_socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
    pid_t pids[WRITERS];
    for (int w = 0; w < WRITERS; w++) {
        pids[w] = fork();
        assert_true(pids[w] >= 0);
        if (pids[w] == 0) {
            shm_close(sv[1]);
            char msg[MSG_SIZE];
            for (int seq = 0; seq < MESSAGES; seq++) {
                fill_message(msg, w, seq);
                if (shm_send(sv[0], msg, sizeof(msg), MSG_NOSIGNAL) != (ssize_t)sizeof(msg))
                    _exit(1);
            }
            _exit(0);
        }
    }
    int next[WRITERS] = {0};
    char msg[MSG_SIZE + 1];
    for (int i = 0; i < WRITERS * MESSAGES; i++) {
        assert_int_equal(shm_recv(sv[1], msg, sizeof(msg), 0), MSG_SIZE);
        int w, seq;
        memcpy(&w, msg, sizeof(w));
        memcpy(&seq, msg + sizeof(w), sizeof(seq));
        assert_in_range(w, 0, WRITERS - 1);
        assert_int_equal(seq, next[w]);
        char want[MSG_SIZE];
        fill_message(want, w, seq);
        assert_memory_equal(msg, want, MSG_SIZE);
        next[w]++;
    }
    for (int w = 0; w < WRITERS; w++)
        wait_ok(pids[w]);
    /* Several processes held it when it was first used: the kernel path, for good. */
    assert_int_equal(test_shm_status(sv[0]), SHM_STATUS_PLAIN);
    assert_int_equal(test_shm_status(sv[1]), SHM_STATUS_PLAIN);
    shm_close(sv[0]);
    shm_close(sv[1]);
    test_watchdog(0, NULL);
}

/* Forked writers on one end taking turns, each ending with exit(): the last one holds the
 * socket alone (the parent closed its copy) after the others wrote plain bytes its state never
 * counted; it must not negotiate (a switch placed by its count would be misread). */
#define TURN_WRITERS 6
#define TURN_MESSAGES 40

static void test_writers_taking_turns(void **state)
{
    (void)state;
    test_watchdog(60, "writers taking turns");
    int sv[2], turn[TURN_WRITERS + 1][2], half[2];
    assert_int_equal(shm_socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(pipe(half), 0);
    for (int w = 0; w <= TURN_WRITERS; w++)
        assert_int_equal(pipe(turn[w]), 0);
    pid_t pids[TURN_WRITERS];
    for (int w = 0; w < TURN_WRITERS; w++) {
        pids[w] = fork();
        assert_true(pids[w] >= 0);
        if (pids[w] == 0) {
            shm_close(sv[1]);
            char c, msg[MSG_SIZE];
            if (read(turn[w][0], &c, 1) != 1)
                _exit(2);
            for (int seq = 0; seq < TURN_MESSAGES; seq++) {
                /* Halfway, until the reader has read the first half (and answered whatever
                 * it found): a writer that could switch does it before the second half. */
                if (seq == TURN_MESSAGES / 2 && read(half[0], &c, 1) != 1)
                    _exit(4);
                fill_message(msg, w, seq);
                if (shm_send(sv[0], msg, sizeof(msg), MSG_NOSIGNAL) != (ssize_t)sizeof(msg))
                    _exit(1);
            }
            shm_close(sv[0]);
            if (write(turn[w + 1][1], "t", 1) != 1)
                _exit(3);
            exit(0); /* gives its share back: the next writer may hold the socket alone */
        }
    }
    assert_int_equal(shm_close(sv[0]), 0);
    assert_int_equal(write(turn[0][1], "t", 1), 1);
    char msg[MSG_SIZE];
    for (int w = 0; w < TURN_WRITERS; w++) {
        for (int seq = 0; seq < TURN_MESSAGES; seq++) {
            if (seq == TURN_MESSAGES / 2)
                assert_int_equal(write(half[1], "h", 1), 1);
            test_recv_all(&test_shm_api, sv[1], msg, sizeof(msg));
            char want[MSG_SIZE];
            fill_message(want, w, seq);
            assert_memory_equal(msg, want, MSG_SIZE);
        }
    }
    for (int w = 0; w < TURN_WRITERS; w++)
        wait_ok(pids[w]);
    char c;
    assert_int_equal(shm_recv(sv[1], &c, 1, 0), 0); /* every writer gone: the end */
    shm_close(sv[1]);
    for (int w = 0; w <= TURN_WRITERS; w++) {
        close(turn[w][0]);
        close(turn[w][1]);
    }
    close(half[0]);
    close(half[1]);
    test_watchdog(0, NULL);
}

/* Hundreds of forked writers on one end and several forked readers on the other, on a
 * SOCK_SEQPACKET pair made before the forks: every message is read exactly once, whole. */
#define FAN_WRITERS 300
#define FAN_MESSAGES 20
#define FAN_READERS 4

static void test_forked_fan_out_and_in(void **state)
{
    (void)state;
    test_watchdog(120, "fan-out");
    int sv[2], report[2];
    assert_int_equal(shm_socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
    assert_int_equal(pipe(report), 0);
    pid_t readers[FAN_READERS];
    for (int r = 0; r < FAN_READERS; r++) {
        readers[r] = fork();
        assert_true(readers[r] >= 0);
        if (readers[r] == 0) { /* count whole, correct messages until the end of stream */
            shm_close(sv[0]);
            char msg[MSG_SIZE + 1];
            int good = 0;
            for (;;) {
                ssize_t n = shm_recv(sv[1], msg, sizeof(msg), 0);
                if (n == 0)
                    break;
                int w, seq;
                memcpy(&w, msg, sizeof(w));
                memcpy(&seq, msg + sizeof(w), sizeof(seq));
                char want[MSG_SIZE];
                if (n != MSG_SIZE || w < 0 || w >= FAN_WRITERS || seq < 0 || seq >= FAN_MESSAGES)
                    _exit(1);
                fill_message(want, w, seq);
                if (memcmp(msg, want, MSG_SIZE) != 0)
                    _exit(1);
                good++;
            }
            _exit(write(report[1], &good, sizeof(good)) == sizeof(good) ? 0 : 2);
        }
    }
    pid_t writers[FAN_WRITERS];
    for (int w = 0; w < FAN_WRITERS; w++) {
        writers[w] = fork();
        assert_true(writers[w] >= 0);
        if (writers[w] == 0) {
            shm_close(sv[1]);
            char msg[MSG_SIZE];
            for (int seq = 0; seq < FAN_MESSAGES; seq++) {
                fill_message(msg, w, seq);
                if (shm_send(sv[0], msg, sizeof(msg), MSG_NOSIGNAL) != (ssize_t)sizeof(msg))
                    _exit(1);
            }
            _exit(0);
        }
    }
    for (int w = 0; w < FAN_WRITERS; w++)
        wait_ok(writers[w]);
    assert_int_equal(shm_close(sv[0]), 0); /* the last writer's copy: readers see the end */
    assert_int_equal(shm_close(sv[1]), 0);
    int total = 0;
    for (int r = 0; r < FAN_READERS; r++) {
        wait_ok(readers[r]);
        int good;
        assert_int_equal(read(report[0], &good, sizeof(good)), (ssize_t)sizeof(good));
        total += good;
    }
    assert_int_equal(total, FAN_WRITERS * FAN_MESSAGES);
    close(report[0]);
    close(report[1]);
    test_watchdog(0, NULL);
}

/* The fork-per-connection server: the parent closes its copies, the child negotiates and
 * runs on shared memory. */
static void test_child_alone_negotiates(void **state)
{
    (void)state;
    test_watchdog(30, "child alone");
    int sv[2];
    assert_int_equal(shm_socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char c;
        if (read(ready[0], &c, 1) != 1) /* until the parent has closed its copies */
            _exit(2);
        test_handshake(&test_shm_api, sv[0], sv[1]);
        _exit(test_shm_status(sv[0]) == SHM_STATUS_SHM && test_shm_status(sv[1]) == SHM_STATUS_SHM
                  ? 0
                  : 1);
    }
    assert_int_equal(shm_close(sv[0]), 0);
    assert_int_equal(shm_close(sv[1]), 0);
    assert_int_equal(write(ready[1], "x", 1), 1);
    wait_ok(pid);
    close(ready[0]);
    close(ready[1]);
    test_watchdog(0, NULL);
}

/* A child that holds the pair and ends with _exit() (no close, no exit handlers: a forked
 * helper, a crash) gives up its share once it has ended: the parent's pair negotiates. */
static void test_holder_that_ended_without_close(void **state)
{
    (void)state;
    test_watchdog(30, "holder ended");
    int sv[2];
    assert_int_equal(shm_socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(0);
    /* While the child may still hold it, nothing negotiates: a message each way and the pair
     * is still on the kernel path. */
    char c = 'a';
    assert_int_equal(shm_send(sv[0], &c, 1, 0), 1);
    assert_int_equal(shm_recv(sv[1], &c, 1, 0), 1);
    wait_ok(pid); /* ended and reaped */
    /* The share of the ended child is found within 20 ms of looking; until then the pair
     * stays on the kernel path, correct. */
    double until = test_now_seconds() + 5;
    while (test_shm_status(sv[0]) != SHM_STATUS_SHM && test_now_seconds() < until) {
        for (int i = 0; i < 2; i++) { /* a round trip: offers and answers may leave now */
            assert_int_equal(shm_send(sv[0], &c, 1, 0), 1);
            assert_int_equal(shm_recv(sv[1], &c, 1, 0), 1);
            assert_int_equal(shm_send(sv[1], &c, 1, 0), 1);
            assert_int_equal(shm_recv(sv[0], &c, 1, 0), 1);
        }
        usleep(5000);
    }
    assert_int_equal(test_shm_status(sv[0]), SHM_STATUS_SHM);
    assert_int_equal(test_shm_status(sv[1]), SHM_STATUS_SHM);
    char data[8192], got[8192];
    test_fill_pattern(data, sizeof(data), 11);
    assert_int_equal(shm_send(sv[0], data, sizeof(data), 0), (ssize_t)sizeof(data));
    test_recv_all(&test_shm_api, sv[1], got, sizeof(got));
    assert_memory_equal(got, data, sizeof(data));
    shm_close(sv[0]);
    shm_close(sv[1]);
    test_watchdog(0, NULL);
}

/* On shared memory at the fork: the child uses it first and its bytes arrive; the parent's
 * later call is refused with EOPNOTSUPP (its copy of the state is stale). */
static void test_first_user_after_fork_drives_it(void **state)
{
    (void)state;
    test_watchdog(30, "first user");
    int sv[2];
    assert_int_equal(shm_socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    test_handshake(&test_shm_api, sv[0], sv[1]);
    assert_int_equal(test_shm_status(sv[0]), SHM_STATUS_SHM);
    char data[4096], got[4096];
    test_fill_pattern(data, sizeof(data), 7);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        ssize_t n = shm_send(sv[0], data, sizeof(data), MSG_NOSIGNAL);
        _exit(n == (ssize_t)sizeof(data) ? 0 : 1);
    }
    test_recv_all(&test_shm_api, sv[1], got, sizeof(got));
    assert_memory_equal(got, data, sizeof(data));
    wait_ok(pid);
    errno = 0;
    assert_int_equal(shm_send(sv[0], data, 10, MSG_NOSIGNAL), -1);
    assert_int_equal(errno, EOPNOTSUPP);
    /* The end the parent used first stays the parent's. */
    assert_int_equal(shm_send(sv[1], data, 10, MSG_NOSIGNAL), 10);
    shm_close(sv[0]);
    shm_close(sv[1]);
    test_watchdog(0, NULL);
}

/* A socket held by two processes reads the peer's offer: the program never sees it, no
 * answer leaves while the other process holds the socket (the peer stays plain), and once it
 * has closed its copy the connection switches. */
static void test_shared_reader_takes_the_offer(void **state)
{
    (void)state;
    test_watchdog(30, "shared reader");
    int sv[2], ready[2], closed[2];
    assert_int_equal(shm_socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(closed), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) { /* lets sv[0] go at once, holds sv[1] until told */
        char c;
        shm_close(sv[0]);
        if (write(closed[1], "c", 1) != 1 || read(ready[0], &c, 1) != 1)
            _exit(2);
        shm_close(sv[1]);
        _exit(write(closed[1], "c", 1) == 1 ? 0 : 3);
    }
    char c;
    assert_int_equal(read(closed[0], &c, 1), 1);
    /* sv[0] is ours alone: its first send offers. sv[1] is shared: it takes the offer. */
    char buf[16];
    char control[CMSG_SPACE(4 * sizeof(int))];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(shm_send(sv[0], "offer", 5, 0), 5);
        struct iovec iov = {buf, sizeof(buf)};
        struct msghdr m = {.msg_iov = &iov,
                           .msg_iovlen = 1,
                           .msg_control = control,
                           .msg_controllen = sizeof(control)};
        assert_int_equal(shm_recvmsg(sv[1], &m, 0), 5);
        assert_memory_equal(buf, "offer", 5);
        assert_int_equal(m.msg_controllen, 0);
        assert_int_equal(shm_send(sv[1], "back", 4, 0), 4);
        assert_int_equal(shm_recv(sv[0], buf, sizeof(buf), 0), 4);
        assert_memory_equal(buf, "back", 4);
    }
    assert_int_not_equal(shm_status(sv[0]), SHM_STATUS_SHM); /* no answer left while shared */
    assert_int_not_equal(shm_status(sv[1]), SHM_STATUS_SHM);
    assert_int_equal(write(ready[1], "x", 1), 1);
    assert_int_equal(read(closed[0], &c, 1), 1);
    wait_ok(pid);
    test_handshake(&test_shm_api, sv[0], sv[1]); /* now alone: the answer leaves */
    assert_int_equal(shm_status(sv[1]), SHM_STATUS_SHM);
    shm_close(sv[0]);
    shm_close(sv[1]);
    close(ready[0]);
    close(ready[1]);
    close(closed[0]);
    close(closed[1]);
    test_watchdog(0, NULL);
}

/* socketpair, fork, each side closes the end it does not use and talks at once (no waiting
 * for the other's close): the pair ends on shared memory. */
static void test_socketpair_fork_close_pattern(void **state)
{
    (void)state;
    test_watchdog(30, "socketpair pattern");
    int sv[2], report[2];
    assert_int_equal(shm_socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(pipe(report), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) { /* echo until the end, then report sv[1]'s status */
        shm_close(sv[0]);
        char buf[256];
        ssize_t n;
        while ((n = shm_recv(sv[1], buf, sizeof(buf), 0)) > 0) {
            if (shm_send(sv[1], buf, (size_t)n, MSG_NOSIGNAL) != n)
                _exit(1);
        }
        int status = shm_status(sv[1]);
        _exit(write(report[1], &status, sizeof(status)) == sizeof(status) ? 0 : 2);
    }
    shm_close(sv[1]);
    char data[200], got[200];
    test_fill_pattern(data, sizeof(data), 11);
    for (int i = 0; i < 50; i++) {
        test_send_all(&test_shm_api, sv[0], data, sizeof(data));
        test_recv_all(&test_shm_api, sv[0], got, sizeof(got));
        assert_memory_equal(got, data, sizeof(got));
    }
    assert_int_equal(shm_status(sv[0]), SHM_STATUS_SHM);
    shm_close(sv[0]);
    wait_ok(pid);
    int status;
    assert_int_equal(read(report[0], &status, sizeof(status)), (ssize_t)sizeof(status));
    assert_int_equal(status, SHM_STATUS_SHM);
    close(report[0]);
    close(report[1]);
    test_watchdog(0, NULL);
}

/* A duplicate is the same connection: usable with every call, on shared memory, after the
 * original is closed; the peer sees the end only when the last descriptor closes. */
static void test_duplicate_is_the_same_socket(void **state)
{
    (void)state;
    test_watchdog(30, "dup");
    int sv[2];
    assert_int_equal(shm_socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    test_handshake(&test_shm_api, sv[0], sv[1]);
    int d = shm_dup(sv[0]);
    assert_true(d >= 0);
    int d2 = shm_fcntl(sv[0], F_DUPFD_CLOEXEC, 100);
    assert_true(d2 >= 100);
    int d3 = 200;
    assert_int_equal(shm_dup2(sv[0], d3), d3);
    assert_int_equal(shm_close(sv[0]), 0);
    char data[1000], got[1000];
    test_fill_pattern(data, sizeof(data), 3);
    assert_int_equal(shm_send(d, data, 500, 0), 500);
    assert_int_equal(shm_send(d2, data + 500, 300, 0), 300);
    assert_int_equal(shm_send(d3, data + 800, 200, 0), 200);
    assert_int_equal(test_shm_status(d), SHM_STATUS_SHM);
    test_recv_all(&test_shm_api, sv[1], got, sizeof(got));
    assert_memory_equal(got, data, sizeof(got));
    assert_int_equal(shm_send(sv[1], "back", 4, 0), 4);
    assert_int_equal(shm_recv(d2, got, sizeof(got), 0), 4);
    assert_int_equal(shm_close(d), 0);
    assert_int_equal(shm_close(d2), 0);
    assert_int_equal(shm_recv(sv[1], got, sizeof(got), MSG_DONTWAIT), -1); /* d3 still open */
    assert_int_equal(errno, EAGAIN);
    assert_int_equal(shm_close(d3), 0);
    assert_int_equal(shm_recv(sv[1], got, sizeof(got), 0), 0); /* now the end */
    shm_close(sv[1]);
    test_watchdog(0, NULL);
}

/* Receive one descriptor on a kernel socket (fails the test if none comes). */
static int receive_fd(int carrier, char *control, size_t control_len)
{
    char c;
    struct iovec riov = {&c, 1};
    struct msghdr r = {
        .msg_iov = &riov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = control_len};
    assert_int_equal(shm_recvmsg(carrier, &r, 0), 1);
    assert_non_null(CMSG_FIRSTHDR(&r));
    int fd;
    memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&r)), sizeof(fd));
    return fd;
}

/* Round trips between `a` and `b`: each message arrives exactly, with no control data. */
static void exchange_plainly(int a, int b, int rounds)
{
    char got[64], control[CMSG_SPACE(2 * sizeof(int))];
    for (int i = 0; i < rounds; i++) {
        assert_int_equal(shm_send(b, "payload", 7, 0), 7);
        struct iovec giov = {got, sizeof(got)};
        struct msghdr g = {.msg_iov = &giov,
                           .msg_iovlen = 1,
                           .msg_control = control,
                           .msg_controllen = sizeof(control)};
        assert_int_equal(shm_recvmsg(a, &g, 0), 7);
        assert_memory_equal(got, "payload", 7);
        assert_int_equal(g.msg_controllen, 0);
        assert_int_equal(shm_send(a, "answer", 6, 0), 6);
        assert_int_equal(shm_recv(b, got, sizeof(got), 0), 6);
        assert_memory_equal(got, "answer", 6);
    }
}

/* SCM_RIGHTS: a socket its process never used is given away (the receiver runs it as a fresh
 * connection: on shared memory; the sender's later calls fail with EOPNOTSUPP); one that
 * carried bytes but has not negotiated is handed over (kernel path for good: the receiving
 * process reads plain payload); one on shared memory is refused. A send that fails gives
 * nothing away. */
static void test_passing_a_socket(void **state)
{
    (void)state;
    test_watchdog(30, "passing");
    int carrier[2], fresh[2], used[2], busy[2], closed[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, carrier), 0); /* a kernel socket */
    assert_int_equal(shm_socketpair(AF_UNIX, SOCK_STREAM, 0, fresh), 0);
    assert_int_equal(shm_socketpair(AF_UNIX, SOCK_STREAM, 0, used), 0);
    assert_int_equal(shm_socketpair(AF_UNIX, SOCK_STREAM, 0, busy), 0);
    test_handshake(&test_shm_api, busy[0], busy[1]);

    char control[CMSG_SPACE(sizeof(int))];
    char f = 'f';
    struct iovec iov = {&f, 1};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    test_attach_fds(&m, control, &busy[0], 1);
    errno = 0;
    assert_int_equal(shm_sendmsg(carrier[0], &m, 0), -1);
    assert_int_equal(errno, EOPNOTSUPP);

    /* Never used: given away. The receiver's copy negotiates with the peer. */
    test_attach_fds(&m, control, &fresh[0], 1);
    assert_int_equal(shm_sendmsg(carrier[0], &m, 0), 1);
    errno = 0;
    assert_int_equal(shm_send(fresh[0], "late", 4, 0), -1);
    assert_int_equal(errno, EOPNOTSUPP);
    /* The mark for the receiver rides on the shared file; the program does not see it. */
    assert_int_not_equal(fcntl(fresh[0], F_GETFL) & O_APPEND, 0);
    assert_int_equal(shm_fcntl(fresh[0], F_GETFL) & O_APPEND, 0);
    int passed = receive_fd(carrier[1], control, sizeof(control));
    assert_int_equal(fcntl(passed, F_GETFL) & O_APPEND, 0); /* the mark is off again */
    exchange_plainly(passed, fresh[1], 3);
    assert_int_equal(shm_status(passed), SHM_STATUS_SHM);
    assert_int_equal(shm_status(fresh[1]), SHM_STATUS_SHM);
    char big[65536], got_big[65536];
    test_fill_pattern(big, sizeof(big), 3);
    test_send_all(&test_shm_api, fresh[1], big, sizeof(big));
    test_recv_all(&test_shm_api, passed, got_big, sizeof(got_big));
    assert_memory_equal(got_big, big, sizeof(big));
    shm_close(passed);
    shm_close(fresh[0]);

    /* Used (plain bytes went, negotiation off): handed over, on the kernel path for good. */
    int off = 0;
    assert_int_equal(shm_setsockopt(used[0], SOL_SHMSOCK, SHM_NEGOTIATE, &off, sizeof(off)), 0);
    assert_int_equal(shm_send(used[0], "u", 1, 0), 1);
    char u;
    assert_int_equal(shm_recv(used[1], &u, 1, 0), 1);
    test_attach_fds(&m, control, &used[0], 1);
    assert_int_equal(shm_sendmsg(carrier[0], &m, 0), 1);
    passed = receive_fd(carrier[1], control, sizeof(control));
    assert_int_not_equal(shm_status(passed), SHM_STATUS_PASSTHROUGH);
    exchange_plainly(passed, used[1], 3);
    assert_int_equal(shm_status(passed), SHM_STATUS_PLAIN);
    assert_int_not_equal(shm_status(used[1]), SHM_STATUS_SHM);
    shm_close(passed);
    shm_close(used[0]);

    /* A send that fails (the carrier's peer is gone) gives nothing away. */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, closed), 0);
    close(closed[1]);
    int spare[2];
    assert_int_equal(shm_socketpair(AF_UNIX, SOCK_STREAM, 0, spare), 0);
    test_attach_fds(&m, control, &spare[0], 1);
    errno = 0;
    assert_int_equal(shm_sendmsg(closed[0], &m, MSG_NOSIGNAL), -1);
    assert_int_equal(errno, EPIPE);
    assert_int_equal(fcntl(spare[0], F_GETFL) & O_APPEND, 0);
    test_handshake(&test_shm_api, spare[0], spare[1]);
    close(closed[0]);
    shm_close(spare[0]);
    shm_close(spare[1]);
    /* A passed listener is new ground: what the receiver accepts on it negotiates. */
    int listener = shm_socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr;
    socklen_t addrlen = test_abstract_addr(&addr);
    assert_int_equal(shm_bind(listener, (struct sockaddr *)&addr, addrlen), 0);
    assert_int_equal(shm_listen(listener, 1), 0);
    test_attach_fds(&m, control, &listener, 1);
    assert_int_equal(shm_sendmsg(carrier[0], &m, 0), 1);
    int passed_listener = receive_fd(carrier[1], control, sizeof(control));
    shm_close(listener);
    int client = shm_socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(shm_connect(client, (struct sockaddr *)&addr, addrlen), 0);
    int server = shm_accept(passed_listener, NULL, NULL);
    assert_true(server >= 0);
    test_handshake(&test_shm_api, client, server);
    assert_int_equal(shm_status(server), SHM_STATUS_SHM);
    shm_close(client);
    shm_close(server);
    shm_close(passed_listener);
    shm_close(fresh[1]);
    shm_close(used[1]);
    shm_close(busy[0]);
    shm_close(busy[1]);
    close(carrier[0]);
    close(carrier[1]);
    test_watchdog(0, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forked_writers_on_one_end),
        cmocka_unit_test(test_forked_fan_out_and_in),
        cmocka_unit_test(test_writers_taking_turns),
        cmocka_unit_test(test_child_alone_negotiates),
        cmocka_unit_test(test_holder_that_ended_without_close),
        cmocka_unit_test(test_first_user_after_fork_drives_it),
        cmocka_unit_test(test_shared_reader_takes_the_offer),
        cmocka_unit_test(test_socketpair_fork_close_pattern),
        cmocka_unit_test(test_duplicate_is_the_same_socket),
        cmocka_unit_test(test_passing_a_socket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
