/*
 * signal_close_test.c - shm_close is async-signal-safe: a signal handler closes shm sockets
 * while the interrupted thread is inside the library making, using and closing others
 * (holding the descriptor table's lock, or inside malloc). A close that took a lock or freed
 * memory would deadlock or corrupt the heap sooner or later; this runs thousands of such
 * interruptions and checks that every socket the handler closed is closed, its peer sees the
 * end, and the main thread's own sockets kept working. (A stress test: a regression shows as
 * a hang, which the watchdog turns into a failure, or as a failed check.)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "shmsock.h"
#include "test_support.h"

#define POOL 2000
#define ROUNDS 20000

static int pool[POOL][2]; /* [0] closed by the handler, [1] kept to check the end */
static int next_to_close; /* atomic */
static int stop;          /* atomic */

static void close_one(int sig)
{
    (void)sig;
    int saved = errno;
    int i = __atomic_fetch_add(&next_to_close, 1, __ATOMIC_RELAXED);
    if (i < POOL)
        shm_close(pool[i][0]);
    errno = saved;
}

static void *interrupter(void *arg)
{
    pthread_t target = *(pthread_t *)arg;
    while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE) &&
           __atomic_load_n(&next_to_close, __ATOMIC_RELAXED) < POOL) {
        pthread_kill(target, SIGUSR1);
        usleep(20);
    }
    return NULL;
}

static void test_close_in_signal_handler(void **state)
{
    (void)state;
    test_watchdog(120, "shm_close in a signal handler");
    for (int i = 0; i < POOL; i++) {
        assert_int_equal(shm_socketpair(AF_UNIX, SOCK_STREAM, 0, pool[i]), 0);
        if (i % 2 == 0) /* half of them on shared memory, half plain */
            test_handshake(&test_shm_api, pool[i][0], pool[i][1]);
    }
    struct sigaction sa = {.sa_handler = close_one, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGUSR1, &sa, NULL), 0);
    pthread_t self = pthread_self(), thread;
    assert_int_equal(pthread_create(&thread, NULL, interrupter, &self), 0);
    char data[512], got[512];
    test_fill_pattern(data, sizeof(data), 5);
    int rounds = 0;
    while (rounds < ROUNDS || __atomic_load_n(&next_to_close, __ATOMIC_RELAXED) < POOL) {
        /* Mostly making and closing (the table's lock, malloc and free), some traffic. */
        int sv[2];
        assert_int_equal(shm_socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        if (rounds % 16 == 0) {
            test_send_all(&test_shm_api, sv[0], data, sizeof(data));
            test_recv_all(&test_shm_api, sv[1], got, sizeof(got));
            assert_memory_equal(got, data, sizeof(got));
            test_send_all(&test_shm_api, sv[1], data, sizeof(data));
            test_recv_all(&test_shm_api, sv[0], got, sizeof(got));
        }
        assert_int_equal(shm_close(sv[0]), 0);
        assert_int_equal(shm_close(sv[1]), 0);
        rounds++;
    }
    __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
    assert_int_equal(pthread_join(thread, NULL), 0);
    signal(SIGUSR1, SIG_IGN);
    for (int i = 0; i < POOL; i++) {
        errno = 0;
        assert_int_equal(fcntl(pool[i][0], F_GETFD), -1); /* closed by the handler */
        assert_int_equal(errno, EBADF);
        char c;
        assert_int_equal(shm_recv(pool[i][1], &c, 1, 0), 0); /* the peer sees the end */
        assert_int_equal(shm_close(pool[i][1]), 0);
    }
    print_message("    %d rounds in the main thread, %d closes in the handler\n", rounds, POOL);
    test_watchdog(0, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_close_in_signal_handler),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
