/*
 * writability_test.c - a non-blocking writer whose reader sleeps must sleep too, in every
 * event loop: epoll level-triggered, EPOLLET, EPOLLONESHOT, poll, ppoll, select, pselect. The
 * writer fills the socket until EAGAIN, waits for writability, and goes on until it has sent
 * everything; the reader sleeps first, then reads it all. Checked: every byte arrives in
 * order, and the writer's CPU time while the reader sleeps stays under 2% of that time (a
 * loop told "writable" while every block is in use would spin at 100%).
 *
 * By default the calls are the shm_ ones on a shm socket pair on shared memory. With
 * SHMSOCK_TEST_LIBC_CALLS=1 they are the C library's own (socketpair, send, epoll_wait, ...),
 * for a run under libshmsock-preload.so (preload_writability_test).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "shmsock.h"
#include "test_support.h"

#define TOTAL (4u << 20) /* several times the region and the kernel queue */
#define CHUNK 16384
#define READER_SLEEP_MS 1000
#define FIRST_READ (256u << 10) /* what the reader takes before it sleeps */
#define MAX_CPU_SHARE 0.02

/* The calls under test: the shm_ ones, or the C library's (under the preload). */
struct calls {
    int (*socketpair)(int, int, int, int[2]);
    ssize_t (*send)(int, const void *, size_t, int);
    ssize_t (*recv)(int, void *, size_t, int);
    int (*close)(int);
    int (*poll)(struct pollfd *, nfds_t, int);
    int (*ppoll)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *);
    int (*select)(int, fd_set *, fd_set *, fd_set *, struct timeval *);
    int (*pselect)(int, fd_set *, fd_set *, fd_set *, const struct timespec *, const sigset_t *);
    int (*epoll_create1)(int);
    int (*epoll_ctl)(int, int, int, struct epoll_event *);
    int (*epoll_wait)(int, struct epoll_event *, int, int);
};

static const struct calls shm_calls = {shm_socketpair,    shm_send,      shm_recv,      shm_close,
                                       shm_poll,          shm_ppoll,     shm_select,    shm_pselect,
                                       shm_epoll_create1, shm_epoll_ctl, shm_epoll_wait};
static const struct calls libc_calls = {socketpair,    send,      recv,      close,
                                        poll,          ppoll,     select,    pselect,
                                        epoll_create1, epoll_ctl, epoll_wait};
static const struct calls *calls;

enum loop { EPOLL_LEVEL, EPOLL_EDGE, EPOLL_ONESHOT, POLL, PPOLL, SELECT, PSELECT };

struct writer {
    int fd;
    enum loop loop;
    int epfd;
    size_t sent;
    int error;   /* errno of an unexpected failure, or 0 */
    int waiting; /* atomic: it has met EAGAIN and is waiting in its loop */
};

/* CPU seconds used so far by the thread whose CPU clock this is. */
static double cpu_seconds(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Wait until fd is writable, by this writer's loop. Returns 0 or -1 (errno). */
static int wait_writable(struct writer *w)
{
    struct pollfd p = {.fd = w->fd, .events = POLLOUT};
    fd_set set;
    FD_ZERO(&set);
    FD_SET(w->fd, &set);
    struct epoll_event ev;
    int n;
    switch (w->loop) {
    case EPOLL_LEVEL:
    case EPOLL_EDGE:
        n = calls->epoll_wait(w->epfd, &ev, 1, 10000);
        return n == 1 && (ev.events & EPOLLOUT) && ev.data.u64 == 42 ? 0 : -1;
    case EPOLL_ONESHOT:
        n = calls->epoll_wait(w->epfd, &ev, 1, 10000);
        if (n != 1 || !(ev.events & EPOLLOUT) || ev.data.u64 != 42)
            return -1;
        ev = (struct epoll_event){.events = EPOLLOUT | EPOLLONESHOT, .data.u64 = 42};
        return calls->epoll_ctl(w->epfd, EPOLL_CTL_MOD, w->fd, &ev);
    case POLL:
        return calls->poll(&p, 1, 10000) == 1 && (p.revents & POLLOUT) ? 0 : -1;
    case PPOLL: {
        struct timespec ts = {10, 0};
        return calls->ppoll(&p, 1, &ts, NULL) == 1 && (p.revents & POLLOUT) ? 0 : -1;
    }
    case SELECT: {
        struct timeval tv = {10, 0};
        return calls->select(w->fd + 1, NULL, &set, NULL, &tv) == 1 && FD_ISSET(w->fd, &set) ? 0
                                                                                             : -1;
    }
    case PSELECT: {
        struct timespec ts = {10, 0};
        return calls->pselect(w->fd + 1, NULL, &set, NULL, &ts, NULL) == 1 && FD_ISSET(w->fd, &set)
                   ? 0
                   : -1;
    }
    }
    return -1;
}

static void *write_all(void *arg)
{
    struct writer *w = arg;
    static char chunk[CHUNK];
    test_fill_pattern(chunk, sizeof(chunk), 9);
    while (w->sent < TOTAL) {
        ssize_t n = calls->send(w->fd, chunk + w->sent % CHUNK, CHUNK - w->sent % CHUNK,
                                MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            w->sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN) {
            w->error = errno;
            break;
        }
        __atomic_store_n(&w->waiting, 1, __ATOMIC_RELEASE);
        if (wait_writable(w) < 0) {
            w->error = errno != 0 ? errno : ETIMEDOUT;
            break;
        }
    }
    __atomic_store_n(&w->waiting, 1, __ATOMIC_RELEASE); /* (a failure: the main thread goes on) */
    return NULL;
}

static void run_loop(enum loop loop, const char *name)
{
    test_watchdog(60, name);
    int sv[2];
    assert_int_equal(calls->socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    if (calls == &shm_calls) {
        test_handshake(&test_shm_api, sv[0], sv[1]);
    } else { /* two round trips, as test_handshake makes on shm sockets */
        test_handshake(&test_kernel_api, sv[0], sv[1]);
        test_handshake(&test_kernel_api, sv[0], sv[1]);
    }
    /* On shared memory, or the test proves nothing. With the C library's calls the status
     * comes through getsockopt, which only the preload answers for SOL_SHMSOCK. */
    int status = -1;
    socklen_t len = sizeof(status);
    if (calls == &shm_calls)
        status = test_shm_status(sv[0]);
    else
        assert_int_equal(getsockopt(sv[0], SOL_SHMSOCK, SHM_STATUS, &status, &len), 0);
    assert_int_equal(status, SHM_STATUS_SHM);
    struct writer w = {.fd = sv[0], .loop = loop, .epfd = -1};
    if (loop == EPOLL_LEVEL || loop == EPOLL_EDGE || loop == EPOLL_ONESHOT) {
        w.epfd = calls->epoll_create1(EPOLL_CLOEXEC);
        assert_true(w.epfd >= 0);
        uint32_t mode = loop == EPOLL_EDGE ? EPOLLET : loop == EPOLL_ONESHOT ? EPOLLONESHOT : 0;
        struct epoll_event ev = {.events = EPOLLOUT | mode, .data.u64 = 42};
        assert_int_equal(calls->epoll_ctl(w.epfd, EPOLL_CTL_ADD, sv[0], &ev), 0);
    }
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, write_all, &w), 0);
    clockid_t writer_clock;
    assert_int_equal(pthread_getcpuclockid(thread, &writer_clock), 0);
    /* The reader takes a little first and then sleeps: the writer, woken by those releases,
     * fills the blocks again and waits with a release doorbell already behind it (a wait
     * that did not take it out would wake at once, for ever). */
    while (!__atomic_load_n(&w.waiting, __ATOMIC_ACQUIRE))
        sched_yield();
    char *got = malloc(TOTAL);
    assert_non_null(got);
    test_recv_all(calls == &shm_calls ? &test_shm_api : &test_kernel_api, sv[1], got, FIRST_READ);
    struct timespec settle = {0, 50 * 1000000L};
    nanosleep(&settle, NULL);
    /* The window measured: the reader's sleep. */
    double cpu_start = cpu_seconds(writer_clock), wall_start = test_now_seconds();
    struct timespec nap = {READER_SLEEP_MS / 1000, (READER_SLEEP_MS % 1000) * 1000000L};
    nanosleep(&nap, NULL);
    double cpu = cpu_seconds(writer_clock) - cpu_start, wall = test_now_seconds() - wall_start;
    test_recv_all(calls == &shm_calls ? &test_shm_api : &test_kernel_api, sv[1], got + FIRST_READ,
                  TOTAL - FIRST_READ);
    assert_int_equal(pthread_join(thread, NULL), 0);
    assert_int_equal(w.error, 0);
    assert_int_equal(w.sent, TOTAL);
    char expect[CHUNK];
    test_fill_pattern(expect, sizeof(expect), 9);
    for (size_t at = 0; at < TOTAL; at += CHUNK)
        assert_memory_equal(got + at, expect, CHUNK);
    free(got);
    print_message("    %-14s writer CPU %.4f s over %.3f s waiting (%.2f%%)\n", name, cpu, wall,
                  100.0 * cpu / wall);
    assert_true(cpu < MAX_CPU_SHARE * wall);
    if (w.epfd >= 0)
        calls->close(w.epfd);
    calls->close(sv[0]);
    calls->close(sv[1]);
    test_watchdog(0, NULL);
}

static void test_epoll_level(void **state)
{
    (void)state;
    run_loop(EPOLL_LEVEL, "epoll");
}

static void test_epoll_edge(void **state)
{
    (void)state;
    run_loop(EPOLL_EDGE, "epoll EPOLLET");
}

static void test_epoll_oneshot(void **state)
{
    (void)state;
    run_loop(EPOLL_ONESHOT, "epoll ONESHOT");
}

static void test_poll(void **state)
{
    (void)state;
    run_loop(POLL, "poll");
}

static void test_ppoll(void **state)
{
    (void)state;
    run_loop(PPOLL, "ppoll");
}

static void test_select(void **state)
{
    (void)state;
    run_loop(SELECT, "select");
}

static void test_pselect(void **state)
{
    (void)state;
    run_loop(PSELECT, "pselect");
}

int main(void)
{
    const char *libc = getenv("SHMSOCK_TEST_LIBC_CALLS");
    calls = libc != NULL && strcmp(libc, "1") == 0 ? &libc_calls : &shm_calls;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_epoll_level),   cmocka_unit_test(test_epoll_edge),
        cmocka_unit_test(test_epoll_oneshot), cmocka_unit_test(test_poll),
        cmocka_unit_test(test_ppoll),         cmocka_unit_test(test_select),
        cmocka_unit_test(test_pselect),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
