/*
 * busy_poll_test.c - SHM_BUSY_POLL adapts (impl/busy_poll.h):
 *   - the back-off record: two wasted spins in a row skip the next 8 waits, each wasted probe
 *     after that doubles the skip (to 4096 at most), a spin that pays starts over;
 *   - the load hint reads /proc/loadavg at most once per period;
 *   - end to end: a reader with a 20 ms window whose peer always answers 100 ms late stops
 *     spinning after a few rounds: over 12 such waits its thread uses far less CPU than the
 *     240 ms that spinning every window would cost, and every message still arrives; once
 *     with the load hint ignored (the back-off alone: the record must show it), once as
 *     shipped.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "api/fd_table.h"
#include "impl/busy_poll.h"
#include "impl/conn.h"
#include "shmsock.h"
#include "test_support.h"

/* Waits that spin out of the next `waits` (counting skipped ones down as a wait would). */
static unsigned spins_in(struct shmsock_busy_poll *bp, unsigned waits, bool paid)
{
    unsigned spins = 0;
    for (unsigned i = 0; i < waits; i++)
        if (shmsock_busy_poll_due(bp)) {
            spins++;
            shmsock_busy_poll_outcome(bp, paid);
        }
    return spins;
}

static void test_backoff_record(void **state)
{
    (void)state;
    struct shmsock_busy_poll bp = {0};
    /* Spins that pay never back off. */
    assert_int_equal(spins_in(&bp, 100, true), 100);
    /* One wasted spin alone changes nothing. */
    assert_true(shmsock_busy_poll_due(&bp));
    shmsock_busy_poll_outcome(&bp, false);
    assert_int_equal(bp.skip, 0);
    assert_true(shmsock_busy_poll_due(&bp));
    shmsock_busy_poll_outcome(&bp, true);
    assert_int_equal(bp.wasted, 0);
    /* Two in a row: the next 8 waits sleep at once, the 9th probes. */
    assert_true(shmsock_busy_poll_due(&bp));
    shmsock_busy_poll_outcome(&bp, false);
    assert_true(shmsock_busy_poll_due(&bp));
    shmsock_busy_poll_outcome(&bp, false);
    for (unsigned i = 0; i < SHMSOCK_BUSY_POLL_FIRST_BACKOFF; i++)
        assert_false(shmsock_busy_poll_due(&bp));
    assert_true(shmsock_busy_poll_due(&bp));
    /* The probe is wasted too: 16 waits sleep. */
    shmsock_busy_poll_outcome(&bp, false);
    assert_int_equal(bp.skip, 2 * SHMSOCK_BUSY_POLL_FIRST_BACKOFF);
    for (unsigned i = 0; i < 2 * SHMSOCK_BUSY_POLL_FIRST_BACKOFF; i++)
        assert_false(shmsock_busy_poll_due(&bp));
    /* A probe that pays starts over: spinning again at every wait. */
    assert_true(shmsock_busy_poll_due(&bp));
    shmsock_busy_poll_outcome(&bp, true);
    assert_int_equal(bp.backoff, 0);
    assert_int_equal(spins_in(&bp, 10, true), 10);
    /* A peer that never pays: the probes thin out exponentially, up to the cap. 100000
     * waits: 2 spins, then one probe after 8, 16, ... 4096, then one per 4096 waits. */
    struct shmsock_busy_poll never = {0};
    unsigned spins = spins_in(&never, 100000, false);
    assert_true(spins < 40);
    assert_int_equal(never.backoff, SHMSOCK_BUSY_POLL_MAX_BACKOFF);
}

static void test_load_hint_cached(void **state)
{
    (void)state;
    /* Whatever the machine's load, the answer stands for a whole period. */
    int64_t t = 1000000000; /* far from any real clock value used before */
    bool first = shmsock_busy_poll_cores_idle(t);
    for (int i = 1; i < 100; i++)
        assert_int_equal(shmsock_busy_poll_cores_idle(t + i), first);
}

static double thread_cpu_ms(void)
{
    struct timespec ts;
    assert_int_equal(clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts), 0);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

enum { ROUNDS = 12, WINDOW_US = 20000, LATE_US = 100000 };

struct late_writer {
    int fd;
};

static void *late_writer_main(void *arg)
{
    struct late_writer *w = arg;
    for (int i = 0; i < ROUNDS; i++) {
        usleep(LATE_US);
        unsigned char byte = (unsigned char)i;
        if (shm_send(w->fd, &byte, 1, MSG_NOSIGNAL) != 1)
            return (void *)1;
    }
    return NULL;
}

/* A reader with a WINDOW_US window whose peer answers each time LATE_US after the last
 * message; `ignore_load`: the load hint is out, the back-off alone decides. */
static void late_peer(bool ignore_load)
{
    shmsock_busy_poll_ignore_load(ignore_load);
    test_watchdog(60, "busy_poll_test late peer");
    int sv[2];
    assert_int_equal(shm_socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    test_handshake(&test_shm_api, sv[0], sv[1]);
    assert_int_equal(test_shm_status(sv[1]), SHM_STATUS_SHM);
    int window = WINDOW_US;
    assert_int_equal(shm_setsockopt(sv[1], SOL_SHMSOCK, SHM_BUSY_POLL, &window, sizeof(window)), 0);

    struct late_writer w = {.fd = sv[0]};
    pthread_t writer;
    assert_int_equal(pthread_create(&writer, NULL, late_writer_main, &w), 0);
    double cpu_start = thread_cpu_ms(), wall_start = test_now_seconds();
    for (int i = 0; i < ROUNDS; i++) {
        unsigned char byte = 0xff;
        assert_int_equal(shm_recv(sv[1], &byte, 1, 0), 1);
        assert_int_equal(byte, (unsigned char)i);
    }
    double cpu_ms = thread_cpu_ms() - cpu_start;
    double wall_ms = (test_now_seconds() - wall_start) * 1e3;
    void *result;
    assert_int_equal(pthread_join(writer, &result), 0);
    assert_null(result);

    struct shmsock_entry *entry = shmsock_fd_get(sv[1]);
    assert_non_null(entry);
    struct shmsock_busy_poll record = entry->conn->busy_poll;
    shmsock_fd_put(entry);
    shmsock_busy_poll_ignore_load(false);
    print_message("late peer%s: %d waits of a %d us window in %.0f ms: reader CPU %.1f ms; "
                  "record wasted=%u backoff=%u skip=%u\n",
                  ignore_load ? " (load hint ignored)" : "", ROUNDS, WINDOW_US, wall_ms, cpu_ms,
                  record.wasted, record.backoff, record.skip);
    /* Spinning every window: ROUNDS x 20 ms = 240 ms. Adaptive: 2 wasted spins, one probe
     * after 8 waits (3 windows, 60 ms), fewer if the spinner loses its core, none at all
     * while no core is idle. */
    if (ignore_load) /* every spin was wasted: backed off, the probe after 8 waits too */
        assert_true(record.backoff >= 2 * SHMSOCK_BUSY_POLL_FIRST_BACKOFF);
    if (cpu_ms > 120)
        fail_msg("the reader used %.1f ms CPU over %d late waits (spinning every window: "
                 "%d ms)",
                 cpu_ms, ROUNDS, ROUNDS * WINDOW_US / 1000);
    assert_int_equal(shm_close(sv[0]), 0);
    assert_int_equal(shm_close(sv[1]), 0);
}

static void test_late_peer_stops_spinning(void **state)
{
    (void)state;
    late_peer(true);
}

static void test_late_peer_loaded_machine(void **state)
{
    (void)state;
    late_peer(false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_record),
        cmocka_unit_test(test_load_hint_cached),
        cmocka_unit_test(test_late_peer_stops_spinning),
        cmocka_unit_test(test_late_peer_loaded_machine),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
