/*
 * semantics_util.h - small helpers shared by the *_semantics / conformance tests (item 6):
 * each test runs the same steps on kernel sockets and on shm sockets (test_apis[]), before
 * negotiation and after test_handshake(). Header-only; include after cmocka.h and
 * test_support.h.
 */
#ifndef SHMSOCK_SEMANTICS_UTIL_H
#define SHMSOCK_SEMANTICS_UTIL_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include <pthread.h>

#include "shmsock.h"
#include "test_support.h"

/* Seconds after which a test that is still blocked is declared hung (see test_watchdog). A
 * test function runs its steps for 8 variants; under TSan beside a two-process test in CI it
 * took over 20 s once (a 100 ms timeout per step, memory filled and read back under the
 * sanitizer), so the bound leaves room for that and still catches a hang. */
#define SEM_WATCHDOG_SECONDS 60

/* Arm the watchdog for the current test: a hang fails the program with the test's name. */
#define SEM_GUARD() test_watchdog(SEM_WATCHDOG_SECONDS, __func__)

static inline const char *sem_type_name(int type)
{
    return (type & 0xf) == SOCK_STREAM ? "STREAM" : "SEQPACKET";
}

/* Print which variant runs next, so a failure report names it. */
static inline void sem_announce(const struct sock_api *api, int type, bool shake)
{
    print_message("    [%s %s %s]\n", api->name, sem_type_name(type),
                  shake ? "after handshake" : "before negotiation");
}

/* For shm: the connection must be on shared memory (SHM_STATUS_SHM). No-op on kernel. */
static inline void sem_assert_shm(const struct sock_api *api, int fd)
{
    if (api->is_shm)
        assert_int_equal(test_shm_status(fd), SHM_STATUS_SHM);
}

/* A connected pair; with `shake`, test_handshake() runs first and (shm) both ends are SHM. */
static inline void sem_pair(const struct sock_api *api, int type, bool shake, int *a, int *b)
{
    test_connect_pair(api, type, a, b);
    if (shake) {
        test_handshake(api, *a, *b);
        sem_assert_shm(api, *a);
        sem_assert_shm(api, *b);
    }
}

static inline int64_t sem_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void sem_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* recv that must fail with `err` (the exact errno). */
#define SEM_EXPECT_ERR(call, err)                                                                  \
    do {                                                                                           \
        errno = 0;                                                                                 \
        ssize_t sem_rc_ = (ssize_t)(call);                                                         \
        int sem_errno_ = errno;                                                                    \
        if (sem_rc_ != -1 || sem_errno_ != (err))                                                  \
            fail_msg("%s: expected -1 errno %d (%s), got %zd errno %d (%s)", #call, (err),         \
                     strerror(err), sem_rc_, sem_errno_, strerror(sem_errno_));                    \
    } while (0)

/* The receiver has nothing waiting: a non-blocking recv fails with EAGAIN. */
static inline void sem_expect_empty(const struct sock_api *api, int fd)
{
    char c;
    SEM_EXPECT_ERR(api->recv(fd, &c, 1, MSG_DONTWAIT), EAGAIN);
}

/* getpeername through the api's flavour (not in struct sock_api). */
static inline int sem_getpeername(const struct sock_api *api, int fd, struct sockaddr *a,
                                  socklen_t *l)
{
    return api->is_shm ? shm_getpeername(fd, a, l) : getpeername(fd, a, l);
}

/* Set SO_RCVTIMEO / SO_SNDTIMEO in milliseconds. */
static inline void sem_set_timeo(const struct sock_api *api, int fd, int opt, long ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    assert_int_equal(api->setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv)), 0);
}

/*
 * Fill the connection a -> b with MSG_DONTWAIT sends of `chunk` bytes (pattern `seed` over
 * the whole stream) until EAGAIN; returns the bytes sent (STREAM) and sets *msgs to the number
 * of sends that succeeded. buf must hold `cap` bytes; fails the test if EAGAIN never comes.
 */
static inline size_t sem_fill(const struct sock_api *api, int fd, char *buf, size_t cap,
                              size_t chunk, size_t *msgs)
{
    size_t total = 0, n_msgs = 0;
    for (;;) {
        assert_true(total + chunk <= cap);
        errno = 0;
        ssize_t n = api->send(fd, buf + total, chunk, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0) {
            if (errno != EAGAIN)
                fail_msg("fill: send failed with errno %d (%s), expected EAGAIN at the end", errno,
                         strerror(errno));
            break;
        }
        assert_true(n > 0);
        total += (size_t)n;
        n_msgs++;
    }
    assert_true(total > 0);
    if (msgs != NULL)
        *msgs = n_msgs;
    return total;
}

/* Run body(api, type, shake) for kernel and shm sockets, STREAM and SEQPACKET, before
 * negotiation (shake false) and after test_handshake (shake true). */
#define SEM_FOR_EACH_VARIANT(body)                                                                 \
    for (int i_ = 0; i_ < 2; i_++) {                                                               \
        body(test_apis[i_], SOCK_STREAM, false);                                                   \
        body(test_apis[i_], SOCK_STREAM, true);                                                    \
        body(test_apis[i_], SOCK_SEQPACKET, false);                                                \
        body(test_apis[i_], SOCK_SEQPACKET, true);                                                 \
    }

/* A pair in one of three states: before negotiation (plain), or on shared memory after a
 * handshake in coalesced or event mode (the kernel api's pair only shakes hands). */
enum sem_mode { SEM_MODE_PLAIN, SEM_MODE_COALESCED, SEM_MODE_EVENTS, SEM_MODES };
static const char *const sem_mode_names[SEM_MODES] = {"before negotiation", "coalesced",
                                                      "event mode"};

static inline void sem_pair_in_mode(const struct sock_api *api, int type, int mode, int *a, int *b)
{
    test_connect_pair(api, type, a, b);
    if (mode == SEM_MODE_EVENTS && api->is_shm) {
        int off = 0;
        assert_int_equal(shm_setsockopt(*a, SOL_SHMSOCK, SHM_COALESCE, &off, sizeof(off)), 0);
        assert_int_equal(shm_setsockopt(*b, SOL_SHMSOCK, SHM_COALESCE, &off, sizeof(off)), 0);
    }
    if (mode != SEM_MODE_PLAIN) {
        test_handshake(api, *a, *b);
        sem_assert_shm(api, *a);
        sem_assert_shm(api, *b);
    }
}

/* The results of one run of steps, in order, each with what it was: a shm run is compared with
 * the kernel's step by step (sem_steps_compare). */
#define SEM_MAX_STEPS 64

struct sem_steps {
    long value[SEM_MAX_STEPS];
    const char *name[SEM_MAX_STEPS];
    int count;
};

static inline void sem_step(struct sem_steps *steps, const char *name, long value)
{
    assert_true(steps->count < SEM_MAX_STEPS);
    steps->name[steps->count] = name;
    steps->value[steps->count++] = value;
}

/* Every step of `shm` as the kernel's; a negative value is an errno and is named. */
static inline void sem_steps_compare(const struct sem_steps *kernel, const struct sem_steps *shm,
                                     const char *variant)
{
    assert_int_equal(shm->count, kernel->count);
    for (int k = 0; k < kernel->count; k++) {
        long got = shm->value[k], want = kernel->value[k];
        if (got != want)
            fail_msg("%s, step %d (%s): shm %ld (%s), the kernel's %ld (%s)", variant, k + 1,
                     kernel->name[k], got, got < 0 ? strerror((int)-got) : "", want,
                     want < 0 ? strerror((int)-want) : "");
    }
}

/* A thread that sends "late" (4 bytes, `flags`) on `fd` 100 ms after it starts: the data a
 * blocking call waits for. */
struct sem_late_sender {
    const struct sock_api *api;
    int fd;
    int flags;
    pthread_t thread;
};

static inline void *sem_send_late(void *p)
{
    struct sem_late_sender *s = p;
    sem_sleep_ms(100);
    assert_int_equal(s->api->send(s->fd, "late", 4, s->flags), 4);
    return NULL;
}

static inline void sem_late_start(struct sem_late_sender *s)
{
    assert_int_equal(pthread_create(&s->thread, NULL, sem_send_late, s), 0);
}

static inline void sem_late_join(struct sem_late_sender *s)
{
    assert_int_equal(pthread_join(s->thread, NULL), 0);
}

#endif
