/*
 * doorbell_race_test.c - producer and consumer race on arm/doorbell (coalesced mode,
 * impl/wakeup.c) for millions of messages. A forked producer sends N small messages
 * (N = 2,000,000, or SHMSOCK_RACE_MESSAGES) with random tiny pauses (a spin of a few hundred
 * ns now and then, sched_yield, rarely a short sleep) so the consumer keeps emptying the ring
 * and arming. Consumers, for STREAM and SEQPACKET:
 *   (a) blocking shm_recv (SO_RCVTIMEO 5 s: a timeout is a lost wake-up),
 *   (b) level-triggered epoll, ONE message per wake-up,
 *   (c) edge-triggered epoll, draining to EAGAIN after each wake-up.
 * Each verifies every sequence number and content; every epoll_wait has a 5 s timeout (0 =
 * "lost wake-up", a failure). Prints messages/s and stale wake-ups (a wake-up whose read found
 * nothing, allowed by the readability contract).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "shmsock.h"
#include "test_support.h"

#define MSG 16 /* seq (8 bytes) + ~seq (8 bytes) */

static long total_messages(void)
{
    const char *env = getenv("SHMSOCK_RACE_MESSAGES");
    long n = env != NULL ? strtol(env, NULL, 10) : 2000000;
    return n > 0 ? n : 2000000;
}

static void spin_ns(unsigned ns)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < (long)ns);
}

static pid_t child = -1;

static void producer(int fd, long n)
{
    alarm(300);
    uint64_t x = 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
    unsigned char msg[MSG];
    for (long i = 0; i < n; i++) {
        uint64_t seq = (uint64_t)i, inv = ~seq;
        memcpy(msg, &seq, 8);
        memcpy(msg + 8, &inv, 8);
        size_t off = 0;
        while (off < MSG) {
            ssize_t r = shm_send(fd, msg + off, MSG - off, MSG_NOSIGNAL);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                fprintf(stderr, "producer: send of %ld failed: %s\n", i, strerror(errno));
                _exit(1);
            }
            off += (size_t)r;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        unsigned r = (unsigned)(x & 0xffff);
        if (r < 1024)
            spin_ns(100 + (unsigned)(x >> 20) % 700); /* a few hundred ns, ~1/64 */
        else if (r < 1024 + 64)
            sched_yield();
        else if (r == 0xffff)
            usleep(50); /* the consumer surely sleeps */
    }
    _exit(0);
}

/* Consumer state: assembles STREAM records across partial reads and checks them. */
struct rx {
    uint64_t next;
    unsigned char part[MSG];
    size_t have;
};

static void rx_feed(struct rx *rx, const unsigned char *buf, size_t n)
{
    while (n > 0) {
        size_t take = MSG - rx->have < n ? MSG - rx->have : n;
        memcpy(rx->part + rx->have, buf, take);
        rx->have += take;
        buf += take;
        n -= take;
        if (rx->have == MSG) {
            uint64_t seq, inv;
            memcpy(&seq, rx->part, 8);
            memcpy(&inv, rx->part + 8, 8);
            if (seq != rx->next || inv != ~rx->next)
                fail_msg("message %llu: got seq %llu (check %llx)", (unsigned long long)rx->next,
                         (unsigned long long)seq, (unsigned long long)inv);
            rx->next++;
            rx->have = 0;
        }
    }
}

enum consumer { BLOCKING, LEVEL_ONE, EDGE_DRAIN };

static void race(int type, enum consumer how)
{
    long n = total_messages();
    test_watchdog(300, "doorbell race");
    int sv[2];
    assert_int_equal(shm_socketpair(AF_UNIX, type, 0, sv), 0);
    test_handshake(&test_shm_api, sv[0], sv[1]);
    int one;
    socklen_t ol = sizeof(one);
    assert_int_equal(shm_getsockopt(sv[1], SOL_SHMSOCK, SHM_COALESCE, &one, &ol), 0);
    assert_int_equal(one, 1);
    double t0 = test_now_seconds();
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        shm_close(sv[1]);
        producer(sv[0], n);
    }
    assert_int_equal(shm_close(sv[0]), 0);
    int fd = sv[1];
    struct rx rx = {0};
    unsigned char buf[4096];
    unsigned long wakeups = 0, stale = 0;
    if (how == BLOCKING) {
        struct timeval tv = {5, 0};
        assert_int_equal(shm_setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
        while (rx.next < (uint64_t)n) {
            ssize_t r = shm_recv(fd, buf, type == SOCK_STREAM ? sizeof(buf) : MSG, 0);
            if (r < 0 && errno == EAGAIN)
                fail_msg("lost wake-up: blocking recv waited 5 s at message %llu of %ld",
                         (unsigned long long)rx.next, n);
            if (r <= 0)
                fail_msg("recv at message %llu: %zd (%s)", (unsigned long long)rx.next, r,
                         strerror(errno));
            if (type == SOCK_SEQPACKET && r != MSG)
                fail_msg("SEQPACKET message of %zd bytes", r);
            rx_feed(&rx, buf, (size_t)r);
        }
    } else {
        int ep = epoll_create1(0);
        assert_true(ep >= 0);
        struct epoll_event ev = {.events = EPOLLIN | (how == EDGE_DRAIN ? EPOLLET : 0),
                                 .data.fd = fd};
        assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), 0);
        while (rx.next < (uint64_t)n) {
            struct epoll_event out;
            int k = epoll_wait(ep, &out, 1, 5000);
            if (k < 0 && errno == EINTR)
                continue;
            if (k == 0)
                fail_msg("lost wake-up: epoll_wait (%s) timed out after 5 s at message %llu "
                         "of %ld",
                         how == EDGE_DRAIN ? "edge-triggered" : "level-triggered",
                         (unsigned long long)rx.next, n);
            assert_int_equal(k, 1);
            wakeups++;
            bool got = false;
            for (;;) {
                /* LT: one message (STREAM: one record's worth) per wake-up. */
                size_t want = how == LEVEL_ONE || type == SOCK_SEQPACKET
                                  ? (type == SOCK_STREAM ? MSG - rx.have : MSG)
                                  : sizeof(buf);
                ssize_t r = shm_recv(fd, buf, want, MSG_DONTWAIT);
                if (r < 0 && errno == EAGAIN)
                    break;
                if (r == 0 && rx.next == (uint64_t)n)
                    break; /* all there, and the producer has gone: end of stream */
                if (r <= 0)
                    fail_msg("recv at message %llu: %zd (%s)", (unsigned long long)rx.next, r,
                             strerror(errno));
                rx_feed(&rx, buf, (size_t)r);
                got = true;
                if (how == LEVEL_ONE)
                    break;
            }
            if (!got)
                stale++;
        }
        close(ep);
    }
    double secs = test_now_seconds() - t0;
    int st;
    assert_int_equal(waitpid(child, &st, 0), child);
    child = -1;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("producer failed (status 0x%x)", st);
    /* Nothing more; then end of stream. */
    assert_int_equal(shm_recv(fd, buf, sizeof(buf), 0), 0);
    print_message("    %s %s: %ld messages in %.2f s = %.0f msg/s; %lu wake-ups, %lu stale\n",
                  type == SOCK_STREAM ? "STREAM" : "SEQPACKET",
                  how == BLOCKING    ? "blocking recv"
                  : how == LEVEL_ONE ? "LT epoll, one/wake"
                                     : "ET epoll, drain",
                  n, secs, (double)n / secs, wakeups, stale);
    shm_close(fd);
    test_watchdog(0, NULL);
}

static int teardown(void **state)
{
    (void)state;
    if (child > 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        child = -1;
    }
    return 0;
}

static void test_stream_blocking(void **s)
{
    (void)s;
    race(SOCK_STREAM, BLOCKING);
}
static void test_stream_level_one(void **s)
{
    (void)s;
    race(SOCK_STREAM, LEVEL_ONE);
}
static void test_stream_edge_drain(void **s)
{
    (void)s;
    race(SOCK_STREAM, EDGE_DRAIN);
}
static void test_seqpacket_blocking(void **s)
{
    (void)s;
    race(SOCK_SEQPACKET, BLOCKING);
}
static void test_seqpacket_level_one(void **s)
{
    (void)s;
    race(SOCK_SEQPACKET, LEVEL_ONE);
}
static void test_seqpacket_edge_drain(void **s)
{
    (void)s;
    race(SOCK_SEQPACKET, EDGE_DRAIN);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    printf("doorbell_race_test: %ld messages per case (SHMSOCK_RACE_MESSAGES)\n", total_messages());
    fflush(stdout);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_stream_blocking, teardown),
        cmocka_unit_test_teardown(test_stream_level_one, teardown),
        cmocka_unit_test_teardown(test_stream_edge_drain, teardown),
        cmocka_unit_test_teardown(test_seqpacket_blocking, teardown),
        cmocka_unit_test_teardown(test_seqpacket_level_one, teardown),
        cmocka_unit_test_teardown(test_seqpacket_edge_drain, teardown),
    };
    if (getenv("SHMSOCK_TEST_FILTER") != NULL)
        cmocka_set_test_filter(getenv("SHMSOCK_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
