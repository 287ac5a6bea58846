/*
 * heap_test.c - "no per-message heap allocation in steady state, in any mode": every
 * malloc/calloc/realloc/free of this program's objects (the library is linked in statically)
 * is counted through the linker's --wrap (see test/BUILD linkopts). A negotiated pair
 * (socketpair; both ends SHM_STATUS_SHM) is warmed up with 1000 messages in both directions,
 * then 100,000 messages of 64 B and 100,000 of 4 KiB are sent and received (alternating
 * send/receive in one thread, both directions, so nothing blocks), for STREAM and SEQPACKET
 * in coalesced mode, event mode, zero-copy (alloc/commit, view/release; coalesced and event)
 * and coalesced/event with SHM_BUSY_POLL=50. The number of allocation calls (malloc, calloc,
 * realloc, and free) during the measured phase must be exactly 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "shmsock.h"
#include "test_support.h"
#include "mode_util.h"

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
void __real_free(void *p);
void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t size);
void __wrap_free(void *p);

static unsigned long n_malloc, n_calloc, n_realloc, n_free;

void *__wrap_malloc(size_t size)
{
    __atomic_add_fetch(&n_malloc, 1, __ATOMIC_RELAXED);
    return __real_malloc(size);
}

void *__wrap_calloc(size_t n, size_t size)
{
    __atomic_add_fetch(&n_calloc, 1, __ATOMIC_RELAXED);
    return __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t size)
{
    __atomic_add_fetch(&n_realloc, 1, __ATOMIC_RELAXED);
    return __real_realloc(p, size);
}

void __wrap_free(void *p)
{
    if (p != NULL)
        __atomic_add_fetch(&n_free, 1, __ATOMIC_RELAXED);
    __real_free(p);
}

struct counts {
    unsigned long m, c, r, f;
};

static struct counts snap(void)
{
    return (struct counts){
        __atomic_load_n(&n_malloc, __ATOMIC_RELAXED), __atomic_load_n(&n_calloc, __ATOMIC_RELAXED),
        __atomic_load_n(&n_realloc, __ATOMIC_RELAXED), __atomic_load_n(&n_free, __ATOMIC_RELAXED)};
}

enum path { COPY, ZEROCOPY };

#define WARMUP 1000
#define MEASURED 100000

static char sbuf[4096], rbuf[8192];

/* One message fd_from -> fd_to of len bytes; returns false (with a reason) on any error. */
static bool one_message(enum path p, int type, int from, int to, size_t len, char *why,
                        size_t why_len)
{
    if (p == COPY) {
        ssize_t n = shm_send(from, sbuf, len, MSG_NOSIGNAL);
        if (n != (ssize_t)len) {
            snprintf(why, why_len, "shm_send(%zu) = %zd (%s)", len, n, strerror(errno));
            return false;
        }
        size_t got = 0;
        while (got < len) {
            n = shm_recv(to, rbuf + got, type == SOCK_STREAM ? len - got : sizeof(rbuf), 0);
            if (n <= 0) {
                snprintf(why, why_len, "shm_recv = %zd (%s)", n, strerror(errno));
                return false;
            }
            got += (size_t)n;
        }
        if (memcmp(rbuf, sbuf, len) != 0) {
            snprintf(why, why_len, "payload differs");
            return false;
        }
        return true;
    }
    void *w = shm_send_alloc(from, len, 0);
    if (w == NULL) {
        snprintf(why, why_len, "shm_send_alloc(%zu): %s", len, strerror(errno));
        return false;
    }
    memcpy(w, sbuf, len);
    if (shm_send_commit(from, w, len, MSG_NOSIGNAL) != (ssize_t)len) {
        snprintf(why, why_len, "shm_send_commit: %s", strerror(errno));
        return false;
    }
    size_t got = 0;
    while (got < len) {
        const void *v;
        ssize_t n = shm_recv_view(to, &v, 0);
        if (n <= 0 || got + (size_t)n > len) {
            snprintf(why, why_len, "shm_recv_view = %zd (%s)", n, strerror(errno));
            return false;
        }
        bool same = memcmp(v, sbuf + got, (size_t)n) == 0;
        got += (size_t)n;
        if (shm_recv_release(to, v) != 0 || !same) {
            snprintf(why, why_len, "view release failed or payload differs");
            return false;
        }
    }
    return true;
}

static void run(enum path p, int type, const struct shm_mode *mode)
{
    print_message("    [%s %s %s]\n", mu_type_name(type), mode->name,
                  p == COPY ? "send/recv" : "zero-copy");
    test_watchdog(120, "heap_test measured phase");
    int sv[2];
    assert_int_equal(shm_socketpair(AF_UNIX, type, 0, sv), 0);
    mu_apply(sv[0], mode, true);
    mu_apply(sv[1], mode, true);
    test_handshake(&test_shm_api, sv[0], sv[1]);
    mu_assert_mode_in_effect(sv[0], sv[1], type, mode->coalesce);
    mu_assert_mode_in_effect(sv[1], sv[0], type, mode->coalesce);
    test_fill_pattern(sbuf, sizeof(sbuf), 5);
    char why[200];
    for (int i = 0; i < WARMUP; i++) {
        size_t len = i % 2 ? 64 : 4096;
        if (!one_message(p, type, sv[i % 4 < 2], sv[i % 4 >= 2], len, why, sizeof(why)))
            fail_msg("warm-up message %d: %s", i, why);
    }
    static const size_t sizes[2] = {64, 4096};
    for (int s = 0; s < 2; s++) {
        struct counts before = snap();
        for (int i = 0; i < MEASURED; i++) {
            int dir = i & 1;
            if (!one_message(p, type, sv[dir], sv[!dir], sizes[s], why, sizeof(why)))
                fail_msg("message %d of %zu bytes: %s", i, sizes[s], why);
        }
        struct counts after = snap();
        unsigned long total = (after.m - before.m) + (after.c - before.c) + (after.r - before.r) +
                              (after.f - before.f);
        if (total != 0)
            fail_msg("%s %s %s, %d messages of %zu B: %lu heap calls in steady state "
                     "(malloc %lu, calloc %lu, realloc %lu, free %lu), expected 0",
                     mu_type_name(type), mode->name, p == COPY ? "send/recv" : "zero-copy",
                     MEASURED, sizes[s], total, after.m - before.m, after.c - before.c,
                     after.r - before.r, after.f - before.f);
    }
    assert_int_equal(test_shm_status(sv[0]), SHM_STATUS_SHM);
    shm_close(sv[0]);
    shm_close(sv[1]);
    test_watchdog(0, NULL);
}

#define CASE(name, path, mode)                                                                     \
    static void name(void **state)                                                                 \
    {                                                                                              \
        (void)state;                                                                               \
        run(path, SOCK_STREAM, &mode);                                                             \
        run(path, SOCK_SEQPACKET, &mode);                                                          \
    }

CASE(test_coalesced, COPY, MODE_COALESCED)
CASE(test_event, COPY, MODE_EVENT)
CASE(test_zerocopy_coalesced, ZEROCOPY, MODE_COALESCED)
CASE(test_zerocopy_event, ZEROCOPY, MODE_EVENT)
CASE(test_busy_poll_coalesced, COPY, MODE_BUSY)
CASE(test_busy_poll_event, COPY, MODE_EVENT_BUSY)

/* The wrapping works: a malloc of this file is counted (else the test would prove nothing). */
static void test_counter_counts(void **state)
{
    (void)state;
    struct counts before = snap();
    void *volatile p = malloc(10);
    free(p);
    struct counts after = snap();
    assert_int_equal(after.m - before.m, 1);
    assert_int_equal(after.f - before.f, 1);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_counts),  cmocka_unit_test(test_coalesced),
        cmocka_unit_test(test_event),           cmocka_unit_test(test_zerocopy_coalesced),
        cmocka_unit_test(test_zerocopy_event),  cmocka_unit_test(test_busy_poll_coalesced),
        cmocka_unit_test(test_busy_poll_event),
    };
    if (getenv("SHMSOCK_TEST_FILTER") != NULL)
        cmocka_set_test_filter(getenv("SHMSOCK_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
