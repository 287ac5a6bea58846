/*
 * mode_util.h - helpers for tests that run in each of shmsock's event modes (zerocopy_test,
 * batch_test, modes_test, heap_test): a connected shm pair whose SOL_SHMSOCK options
 * (SHM_COALESCE, SHM_BUSY_POLL, SHM_NEGOTIATE) are set on BOTH ends before anything is sent,
 * and a check that the chosen mode is really the one in effect. Header-only; include after
 * cmocka.h and test_support.h.
 */
#ifndef SHMSOCK_MODE_UTIL_H
#define SHMSOCK_MODE_UTIL_H

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "shmsock.h"
#include "test_support.h"

struct shm_mode {
    const char *name;
    int coalesce;  /* SHM_COALESCE on both ends */
    int busy_poll; /* SHM_BUSY_POLL on both ends (µs) */
};

static const struct shm_mode MODE_COALESCED = {"coalesced", 1, 0};
static const struct shm_mode MODE_EVENT = {"event", 0, 0};
static const struct shm_mode MODE_BUSY = {"coalesced+busy-poll-50", 1, 50};
static const struct shm_mode MODE_EVENT_BUSY = {"event+busy-poll-50", 0, 50};

static inline const char *mu_type_name(int type)
{
    return type == SOCK_STREAM ? "STREAM" : "SEQPACKET";
}

static inline void mu_set_int(int fd, int opt, int value)
{
    if (shm_setsockopt(fd, SOL_SHMSOCK, opt, &value, sizeof(value)) != 0)
        fail_msg("shm_setsockopt(SOL_SHMSOCK, %d, %d): %s", opt, value, strerror(errno));
}

static inline int mu_get_int(int fd, int opt)
{
    int value = -12345;
    socklen_t len = sizeof(value);
    if (shm_getsockopt(fd, SOL_SHMSOCK, opt, &value, &len) != 0)
        fail_msg("shm_getsockopt(SOL_SHMSOCK, %d): %s", opt, strerror(errno));
    return value;
}

/* Apply a mode (and SHM_NEGOTIATE) to one fresh, not yet used shm socket. */
static inline void mu_apply(int fd, const struct shm_mode *mode, bool negotiate)
{
    mu_set_int(fd, SHM_COALESCE, mode->coalesce);
    mu_set_int(fd, SHM_BUSY_POLL, mode->busy_poll);
    if (!negotiate)
        mu_set_int(fd, SHM_NEGOTIATE, 0);
}

/*
 * Check which mode carries a->b. Sends `count` tiny messages a->b that b does not read yet:
 * in event mode every one is a 32-byte DATA event in b's kernel queue, in coalesced mode they
 * wait in the ring and the kernel queue holds at most a doorbell or two. Then b reads them
 * back (checked) so the pair is as before. Call only after test_handshake.
 */
static inline void mu_assert_mode_in_effect(int a, int b, int type, int coalesce)
{
    enum { COUNT = 6 };
    int before = -1;
    assert_int_equal(ioctl(b, FIONREAD, &before), 0);
    /* A stale doorbell may still sit there (coalesced mode; allowed): count what we add. */
    for (int i = 0; i < COUNT; i++) {
        char c = (char)('0' + i);
        assert_int_equal(shm_send(a, &c, 1, MSG_NOSIGNAL), 1);
    }
    int after = -1;
    assert_int_equal(ioctl(b, FIONREAD, &after), 0);
    int queued = after - before;
    if (coalesce && queued >= COUNT * 32)
        fail_msg("%s: coalesced mode asked for, but %d messages left %d bytes in the kernel "
                 "queue (event mode would leave %d)",
                 mu_type_name(type), COUNT, queued, COUNT * 32);
    if (!coalesce && queued != COUNT * 32)
        fail_msg("%s: event mode (SHM_COALESCE=0) asked for, but %d messages left %d bytes in "
                 "the kernel queue, expected %d (one 32-byte DATA event each)",
                 mu_type_name(type), COUNT, queued, COUNT * 32);
    for (int i = 0; i < COUNT; i++) {
        char c = 0;
        assert_int_equal(shm_recv(b, &c, 1, 0), 1);
        assert_int_equal(c, '0' + i);
    }
}

/*
 * A connected shm pair (bind/listen/connect/accept) with `mode` on both ends and, unless
 * `negotiate`, SHM_NEGOTIATE=0 on both. With `shake`, test_handshake runs and both ends must
 * be SHM_STATUS_SHM, and the mode is checked in both directions.
 */
static inline void mu_pair(int type, const struct shm_mode *mode, bool negotiate, bool shake,
                           int *a, int *b)
{
    test_connect_pair(&test_shm_api, type, a, b);
    mu_apply(*a, mode, negotiate);
    mu_apply(*b, mode, negotiate);
    if (shake) {
        test_handshake(&test_shm_api, *a, *b);
        if (negotiate) {
            assert_int_equal(test_shm_status(*a), SHM_STATUS_SHM);
            assert_int_equal(test_shm_status(*b), SHM_STATUS_SHM);
            mu_assert_mode_in_effect(*a, *b, type, mode->coalesce);
            mu_assert_mode_in_effect(*b, *a, type, mode->coalesce);
        }
    }
}

#endif
