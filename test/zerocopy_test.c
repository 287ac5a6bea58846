/*
 * zerocopy_test.c - shm_send_alloc / shm_send_commit / shm_send_abort and shm_recv_view /
 * shm_recv_release (shmsock.h), for SOCK_STREAM and SOCK_SEQPACKET, in
 *   - coalesced mode and event mode (SHM_COALESCE set on both ends before test_handshake;
 *     the mode in effect is checked through the kernel queue, see mode_util.h),
 *   - "fresh": a pair that has sent nothing yet, so the first messages take the fallback path
 *     (heap reservation, copied view) and the pair negotiates during the test,
 *   - "no-negotiation": SHM_NEGOTIATE=0 on both ends, so every call takes the fallback path.
 *
 * What is asserted:
 *   - alloc + fill + commit, then view + verify + release round trips for many sizes (1 B up
 *     to the region for STREAM, up to SO_SNDBUF-32 for SEQPACKET; the copied view holds at
 *     most 64 KiB, so SEQPACKET fallback sizes stop there); on shared memory a STREAM view
 *     never spans two commits;
 *   - commit with fewer bytes than reserved sends exactly those; abort sends nothing; neither
 *     leaks blocks (a reservation of the whole region succeeds afterwards);
 *   - errors: EALREADY (second alloc), EINVAL (commit of a wrong pointer, commit len >
 *     reserved, abort/release of an unknown pointer, double release), EMSGSIZE, EAGAIN with
 *     MSG_DONTWAIT / O_NONBLOCK / SO_SNDTIMEO when no block is free, EPIPE after the peer
 *     closed; "the reservation is given up either way" after a failed commit;
 *   - views: 10 held at once and released in reverse order, views handed to 10 threads that
 *     release out of order; held views pin the peer's blocks (the sender gets EAGAIN and
 *     shm_poll reports no POLLOUT while they are held, the viewed bytes stay intact, and the
 *     sender succeeds after release); the copied view of the fallback path is one at a time
 *     (EALREADY);
 *   - STREAM: a copying shm_recv of part of a piece, then a view returns the rest of that
 *     piece; a view then a copying read;
 *   - a view at end of stream returns 0 (peer closed; peer shut down writing; peer closes
 *     while the view blocks).
 * Every blocking step runs under test_watchdog.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "shmsock.h"
#include "test_support.h"
#include "mode_util.h"

#define WATCHDOG 60

enum kind { SHAKEN, FRESH, NO_NEGOTIATION };

struct zc_cfg {
    int type;
    const struct shm_mode *mode;
    enum kind kind;
};

static const char *kind_name(enum kind k)
{
    return k == SHAKEN  ? "after handshake"
           : k == FRESH ? "fresh (fallback, then negotiating)"
                        : "SHM_NEGOTIATE=0 (fallback only)";
}

static void announce(const struct zc_cfg *c)
{
    print_message("    [%s %s %s]\n", mu_type_name(c->type), c->mode->name, kind_name(c->kind));
}

static void make_pair(const struct zc_cfg *c, int *a, int *b)
{
    mu_pair(c->type, c->mode, c->kind != NO_NEGOTIATION, c->kind == SHAKEN, a, b);
    /* A message that never arrives makes a blocking view fail (EAGAIN) instead of hanging. */
    struct timeval tv = {5, 0};
    assert_int_equal(shm_setsockopt(*a, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    assert_int_equal(shm_setsockopt(*b, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
}

/* Every test body runs for these configurations. */
#define FOR_EACH_CFG(body)                                                                         \
    do {                                                                                           \
        static const int types_[2] = {SOCK_STREAM, SOCK_SEQPACKET};                                \
        for (int t_ = 0; t_ < 2; t_++) {                                                           \
            struct zc_cfg cfgs_[] = {                                                              \
                {types_[t_], &MODE_COALESCED, SHAKEN},         {types_[t_], &MODE_EVENT, SHAKEN},  \
                {types_[t_], &MODE_COALESCED, FRESH},          {types_[t_], &MODE_EVENT, FRESH},   \
                {types_[t_], &MODE_COALESCED, NO_NEGOTIATION},                                     \
            };                                                                                     \
            for (size_t i_ = 0; i_ < sizeof(cfgs_) / sizeof(cfgs_[0]); i_++) {                     \
                announce(&cfgs_[i_]);                                                              \
                body(&cfgs_[i_]);                                                                  \
            }                                                                                      \
        }                                                                                          \
    } while (0)

/* Only the configurations that run over shared memory. */
#define FOR_EACH_SHM_CFG(body)                                                                     \
    do {                                                                                           \
        static const int types_[2] = {SOCK_STREAM, SOCK_SEQPACKET};                                \
        for (int t_ = 0; t_ < 2; t_++) {                                                           \
            struct zc_cfg cfgs_[] = {                                                              \
                {types_[t_], &MODE_COALESCED, SHAKEN},                                             \
                {types_[t_], &MODE_EVENT, SHAKEN},                                                 \
            };                                                                                     \
            for (size_t i_ = 0; i_ < 2; i_++) {                                                    \
                announce(&cfgs_[i_]);                                                              \
                body(&cfgs_[i_]);                                                                  \
            }                                                                                      \
        }                                                                                          \
    } while (0)

/* ---- content ---- */

static uint8_t zc_byte(uint32_t msg, size_t off)
{
    uint32_t x = (uint32_t)off * 2654435761u ^ (msg + 1u) * 40503u;
    return (uint8_t)(x >> 11 ^ off >> 8 ^ msg);
}

static void zc_fill(void *buf, uint32_t msg, size_t off, size_t len)
{
    uint8_t *p = buf;
    for (size_t i = 0; i < len; i++)
        p[i] = zc_byte(msg, off + i);
}

/* Index of the first wrong byte, or len. */
static size_t zc_check(const void *buf, uint32_t msg, size_t off, size_t len)
{
    const uint8_t *p = buf;
    for (size_t i = 0; i < len; i++)
        if (p[i] != zc_byte(msg, off + i))
            return i;
    return len;
}

static int sndbuf_of(int fd)
{
    int v = 0;
    socklen_t l = sizeof(v);
    assert_int_equal(shm_getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, &l), 0);
    return v;
}

/* Region size per PROTOCOL.md: SO_SNDBUF rounded up to whole blocks. */
static size_t region_size(int fd)
{
    size_t bs = (size_t)mu_get_int(fd, SHM_BLOCK_SIZE);
    size_t sb = (size_t)sndbuf_of(fd);
    return (sb + bs - 1) / bs * bs;
}

/* Largest message the configuration carries in one alloc/view round trip. */
static size_t max_message(const struct zc_cfg *c, int fd)
{
    if (c->type == SOCK_STREAM)
        return region_size(fd);
    size_t m = (size_t)sndbuf_of(fd) - 32;
    if (c->kind != SHAKEN && m > 64 * 1024)
        m = 64 * 1024; /* the copied view of the fallback path holds at most 64 KiB */
    return m;
}

static void set_timeo(int fd, int opt, long ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    assert_int_equal(shm_setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv)), 0);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

#define EXPECT_NULL_ERRNO(call, err)                                                               \
    do {                                                                                           \
        errno = 0;                                                                                 \
        void *p_ = (call);                                                                         \
        int e_ = errno;                                                                            \
        if (p_ != NULL || e_ != (err))                                                             \
            fail_msg("%s: expected NULL errno %s, got %p errno %s", #call, strerror(err), p_,      \
                     strerror(e_));                                                                \
    } while (0)

#define EXPECT_ERR(call, err)                                                                      \
    do {                                                                                           \
        errno = 0;                                                                                 \
        long long r_ = (long long)(call);                                                          \
        int e_ = errno;                                                                            \
        if (r_ != -1 || e_ != (err))                                                               \
            fail_msg("%s: expected -1 errno %s, got %lld errno %s", #call, strerror(err), r_,      \
                     strerror(e_));                                                                \
    } while (0)

/* alloc + fill + commit one whole message of len bytes, index msg. */
static void zc_send(int fd, uint32_t msg, size_t len)
{
    errno = 0;
    void *p = shm_send_alloc(fd, len, 0);
    if (p == NULL)
        fail_msg("shm_send_alloc(%zu) of message %u: %s", len, msg, strerror(errno));
    zc_fill(p, msg, 0, len);
    ssize_t n = shm_send_commit(fd, p, len, MSG_NOSIGNAL);
    if (n != (ssize_t)len)
        fail_msg("shm_send_commit(%zu) of message %u returned %zd (%s)", len, msg, n,
                 strerror(errno));
}

/*
 * Receive the messages sizes[0..count) (index first+i) through views and verify them.
 * SEQPACKET: one view per message, exact length. STREAM: views in pieces; with `exact_pieces`
 * (shared memory) a view never spans two commits.
 */
static void zc_receive(const struct zc_cfg *c, int fd, const size_t *sizes, size_t count,
                       uint32_t first, bool exact_pieces)
{
    size_t i = 0, off = 0;
    while (i < count) {
        if (c->type == SOCK_STREAM && sizes[i] == 0) {
            i++;
            continue;
        }
        const void *v = NULL;
        errno = 0;
        ssize_t n = shm_recv_view(fd, &v, 0);
        if (n < 0)
            fail_msg("shm_recv_view for message %zu (%zu bytes): %s", i, sizes[i], strerror(errno));
        assert_non_null(v);
        if (c->type == SOCK_SEQPACKET) {
            if ((size_t)n != sizes[i])
                fail_msg("SEQPACKET view of message %zu: %zd bytes, expected %zu", i, n, sizes[i]);
            size_t bad = zc_check(v, first + (uint32_t)i, 0, (size_t)n);
            if (bad != (size_t)n)
                fail_msg("message %zu (%zu bytes): wrong byte at %zu", i, sizes[i], bad);
            i++;
        } else {
            if (n == 0)
                fail_msg("STREAM view returned 0 (end of stream) at message %zu", i);
            if (exact_pieces && (size_t)n > sizes[i] - off)
                fail_msg("STREAM view of %zd bytes spans past commit %zu (%zu bytes left of "
                         "it): a view must be at most one send's worth",
                         n, i, sizes[i] - off);
            size_t done = 0;
            while (done < (size_t)n) {
                assert_true(i < count);
                size_t take = sizes[i] - off < (size_t)n - done ? sizes[i] - off : (size_t)n - done;
                size_t bad = zc_check((const char *)v + done, first + (uint32_t)i, off, take);
                if (bad != take)
                    fail_msg("STREAM message %zu (%zu bytes): wrong byte at offset %zu", i,
                             sizes[i], off + bad);
                done += take;
                off += take;
                if (off == sizes[i]) {
                    i++;
                    off = 0;
                    while (i < count && sizes[i] == 0)
                        i++;
                }
            }
        }
        assert_int_equal(shm_recv_release(fd, v), 0);
    }
}

/* ---- 1. round trips of many sizes ---- */

/* The sender thread must never call cmocka (it reports through its struct), and its data is
 * static: if the main thread fails first, the thread may outlive the test. */
struct sender_arg {
    int fd;
    size_t sizes[64];
    size_t count;
    size_t failed_at; /* count if none */
    int err;
};

static void *zc_sender_thread(void *p)
{
    struct sender_arg *s = p;
    s->failed_at = s->count;
    for (size_t i = 0; i < s->count; i++) {
        size_t len = s->sizes[i];
        errno = 0;
        void *buf = shm_send_alloc(s->fd, len, 0);
        if (buf == NULL) {
            s->failed_at = i;
            s->err = errno;
            break;
        }
        zc_fill(buf, (uint32_t)i, 0, len);
        if (shm_send_commit(s->fd, buf, len, MSG_NOSIGNAL) != (ssize_t)len) {
            s->failed_at = i;
            s->err = errno;
            break;
        }
    }
    return NULL;
}

static void roundtrip_body(const struct zc_cfg *c)
{
    test_watchdog(WATCHDOG, "zerocopy round trips");
    int a, b;
    make_pair(c, &a, &b);
    size_t max = max_message(c, a);
    static const size_t base[] = {1,     2,     3,     7,     31,     32,     33,    100,  1000,
                                  1023,  1024,  1025,  4095,  4096,   4097,   8191,  8192, 8193,
                                  12288, 65535, 65536, 65537, 100000, 131072, 200000};
    static struct sender_arg s;
    memset(&s, 0, sizeof(s));
    size_t *sizes = s.sizes;
    size_t n = 0;
    for (size_t i = 0; i < sizeof(base) / sizeof(base[0]); i++)
        if (base[i] < max)
            sizes[n++] = base[i];
    sizes[n++] = max - 1;
    sizes[n++] = max;
    sizes[n++] = 1;
    sizes[n++] = max;
    sizes[n++] = 5;
    s.fd = a;
    s.count = n;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, zc_sender_thread, &s), 0);
    zc_receive(c, b, sizes, n, 0, c->kind == SHAKEN);
    assert_int_equal(pthread_join(th, NULL), 0);
    if (s.failed_at != n)
        fail_msg("sender: alloc/commit of message %zu (%zu bytes) failed: %s", s.failed_at,
                 sizes[s.failed_at], strerror(s.err));
    /* Nothing more waits. */
    const void *v;
    EXPECT_ERR(shm_recv_view(b, &v, MSG_DONTWAIT), EAGAIN);
    if (c->kind == SHAKEN) {
        assert_int_equal(test_shm_status(a), SHM_STATUS_SHM);
        assert_int_equal(test_shm_status(b), SHM_STATUS_SHM);
    }
    shm_close(a);
    shm_close(b);
    test_watchdog(0, NULL);
}

static void test_roundtrip_sizes(void **state)
{
    (void)state;
    FOR_EACH_CFG(roundtrip_body);
}

/* Both directions at once, several rounds, on one pair (each side sends and views). */
static void bidirectional_body(const struct zc_cfg *c)
{
    test_watchdog(WATCHDOG, "zerocopy both directions");
    int a, b;
    make_pair(c, &a, &b);
    for (uint32_t r = 0; r < 200; r++) {
        size_t len = 1 + (r * 7919u) % 20000u;
        zc_send(a, r, len);
        zc_send(b, r + 1000, len / 2 + 1);
        size_t s1[1] = {len}, s2[1] = {len / 2 + 1};
        zc_receive(c, b, s1, 1, r, c->kind == SHAKEN);
        zc_receive(c, a, s2, 1, r + 1000, c->kind == SHAKEN);
    }
    if (c->kind != NO_NEGOTIATION) {
        /* A fresh pair has negotiated by now. */
        assert_int_equal(test_shm_status(a), SHM_STATUS_SHM);
        assert_int_equal(test_shm_status(b), SHM_STATUS_SHM);
    } else {
        assert_int_equal(test_shm_status(a), SHM_STATUS_PLAIN);
    }
    shm_close(a);
    shm_close(b);
    test_watchdog(0, NULL);
}

static void test_bidirectional(void **state)
{
    (void)state;
    FOR_EACH_CFG(bidirectional_body);
}

/* SEQPACKET: an empty message (alloc 0 or more, commit 0) arrives as a view of length 0
 * (shmsock.h: "0 ... for an empty SOCK_SEQPACKET message"), between two other messages. */
static void empty_body(const struct zc_cfg *c)
{
    if (c->type != SOCK_SEQPACKET)
        return;
    test_watchdog(WATCHDOG, "zerocopy empty message");
    int a, b;
    make_pair(c, &a, &b);
    for (uint32_t round = 0; round < 2; round++) {
        zc_send(a, 10 * round + 1, 10);
        void *p = shm_send_alloc(a, round == 0 ? 0 : 100, 0);
        assert_non_null(p);
        assert_int_equal(shm_send_commit(a, p, 0, MSG_NOSIGNAL), 0);
        zc_send(a, 10 * round + 3, 20);
        size_t sizes[3] = {10, 0, 20};
        const void *v;
        for (int i = 0; i < 3; i++) {
            errno = 0;
            ssize_t n = shm_recv_view(b, &v, 0);
            if (n != (ssize_t)sizes[i])
                fail_msg("round %u message %d: view returned %zd (%s), expected %zu", round, i, n,
                         n < 0 ? strerror(errno) : "", sizes[i]);
            assert_non_null(v);
            assert_int_equal(zc_check(v, 10 * round + 1 + (uint32_t)i, 0, sizes[i]), sizes[i]);
            assert_int_equal(shm_recv_release(b, v), 0);
        }
    }
    shm_close(a);
    shm_close(b);
    test_watchdog(0, NULL);
}

static void test_seqpacket_empty_message(void **state)
{
    (void)state;
    FOR_EACH_CFG(empty_body);
}

/* ---- 2. commit shorter than reserved, abort ---- */

/* On shared memory: every block is free again (a reservation of the largest message waits at
 * most 2 s for releases). */
static void assert_all_blocks_free(const struct zc_cfg *c, int a)
{
    if (c->kind != SHAKEN)
        return;
    size_t max = c->type == SOCK_STREAM ? region_size(a) : max_message(c, a);
    set_timeo(a, SO_SNDTIMEO, 2000);
    errno = 0;
    void *p = shm_send_alloc(a, max, 0);
    if (p == NULL)
        fail_msg("reserving the whole region (%zu bytes) failed with %s: blocks leaked", max,
                 strerror(errno));
    assert_int_equal(shm_send_abort(a, p), 0);
    set_timeo(a, SO_SNDTIMEO, 0);
}

static void short_commit_body(const struct zc_cfg *c)
{
    test_watchdog(WATCHDOG, "zerocopy short commit");
    int a, b;
    make_pair(c, &a, &b);
    size_t reserve[] = {8192, 100000, 4096, 5000};
    size_t use[] = {100, 1, 4095, 4097};
    for (uint32_t i = 0; i < 4; i++) {
        void *p = shm_send_alloc(a, reserve[i], 0);
        assert_non_null(p);
        zc_fill(p, i, 0, reserve[i]); /* the whole reservation is writable */
        assert_int_equal(shm_send_commit(a, p, use[i], MSG_NOSIGNAL), (ssize_t)use[i]);
        zc_receive(c, b, &use[i], 1, i, c->kind == SHAKEN);
    }
    const void *v;
    EXPECT_ERR(shm_recv_view(b, &v, MSG_DONTWAIT), EAGAIN);
    assert_all_blocks_free(c, a);
    shm_close(a);
    shm_close(b);
    test_watchdog(0, NULL);
}

static void test_commit_shorter_than_reserved(void **state)
{
    (void)state;
    FOR_EACH_CFG(short_commit_body);
}

static void abort_body(const struct zc_cfg *c)
{
    test_watchdog(WATCHDOG, "zerocopy abort");
    int a, b;
    make_pair(c, &a, &b);
    size_t max = max_message(c, a);
    for (int round = 0; round < 3; round++) {
        void *p = shm_send_alloc(a, round == 1 ? 10 : max, 0);
        assert_non_null(p);
        memset(p, 'x', 10);
        int dummy;
        EXPECT_ERR(shm_send_abort(a, &dummy), EINVAL); /* not the reservation */
        assert_int_equal(shm_send_abort(a, p), 0);
        EXPECT_ERR(shm_send_abort(a, p), EINVAL); /* already given up */
        EXPECT_ERR(shm_send_commit(a, p, 10, MSG_NOSIGNAL), EINVAL);
    }
    EXPECT_ERR(shm_send_abort(a, NULL), EINVAL);
    /* Nothing was sent. */
    char c1;
    EXPECT_ERR(shm_recv(b, &c1, 1, MSG_DONTWAIT), EAGAIN);
    assert_all_blocks_free(c, a);
    /* The connection works on. */
    size_t len = 777;
    zc_send(a, 9, len);
    zc_receive(c, b, &len, 1, 9, c->kind == SHAKEN);
    shm_close(a);
    shm_close(b);
    test_watchdog(0, NULL);
}

static void test_abort(void **state)
{
    (void)state;
    FOR_EACH_CFG(abort_body);
}

/* ---- 3. errors ---- */

static void errors_body(const struct zc_cfg *c)
{
    test_watchdog(WATCHDOG, "zerocopy errors");
    int a, b;
    make_pair(c, &a, &b);
    /* EALREADY: one reservation at a time. */
    void *p = shm_send_alloc(a, 100, 0);
    assert_non_null(p);
    EXPECT_NULL_ERRNO(shm_send_alloc(a, 100, 0), EALREADY);
    EXPECT_NULL_ERRNO(shm_send_alloc(a, 1, MSG_DONTWAIT), EALREADY);
    /* A correct commit still works after those. */
    zc_fill(p, 1, 0, 100);
    assert_int_equal(shm_send_commit(a, p, 100, MSG_NOSIGNAL), 100);
    size_t len = 100;
    zc_receive(c, b, &len, 1, 1, c->kind == SHAKEN);

    /* EINVAL: release of something that is not a view; double release. */
    int x;
    EXPECT_ERR(shm_recv_release(b, &x), EINVAL);
    EXPECT_ERR(shm_recv_release(b, NULL), EINVAL);
    zc_send(a, 2, 50);
    const void *v = NULL;
    assert_int_equal(shm_recv_view(b, &v, 0), 50);
    EXPECT_ERR(shm_recv_release(b, (const char *)v + 1), EINVAL);
    assert_int_equal(shm_recv_release(b, v), 0);
    EXPECT_ERR(shm_recv_release(b, v), EINVAL);

    /* EMSGSIZE: larger than the region / than a SEQPACKET message may be. */
    if (c->type == SOCK_SEQPACKET) {
        size_t limit = (size_t)sndbuf_of(a) - 32;
        EXPECT_NULL_ERRNO(shm_send_alloc(a, limit + 1, 0), EMSGSIZE);
    } else if (c->kind == SHAKEN) {
        EXPECT_NULL_ERRNO(shm_send_alloc(a, region_size(a) + 1, 0), EMSGSIZE);
    }
    if (c->kind == SHAKEN)
        EXPECT_NULL_ERRNO(shm_send_alloc(a, (size_t)1 << 40, 0), EMSGSIZE);
    /* No reservation was left behind by the failures. */
    p = shm_send_alloc(a, 10, 0);
    assert_non_null(p);
    assert_int_equal(shm_send_abort(a, p), 0);
    shm_close(a);
    shm_close(b);
    test_watchdog(0, NULL);
}

static void test_errors(void **state)
{
    (void)state;
    FOR_EACH_CFG(errors_body);
}

/* shm_send_commit: "EINVAL (... len too large) ...; the reservation is given up either way". */
static void commit_too_long_body(const struct zc_cfg *c)
{
    test_watchdog(WATCHDOG, "zerocopy commit too long");
    int a, b;
    make_pair(c, &a, &b);
    void *p = shm_send_alloc(a, 100, 0);
    assert_non_null(p);
    EXPECT_ERR(shm_send_commit(a, p, 101, MSG_NOSIGNAL), EINVAL);
    /* Given up: nothing was sent, the same pointer can no longer be committed, and a new
     * reservation is possible (no EALREADY). */
    char c1;
    EXPECT_ERR(shm_recv(b, &c1, 1, MSG_DONTWAIT), EAGAIN);
    errno = 0;
    void *q = shm_send_alloc(a, 100, MSG_DONTWAIT);
    if (q == NULL)
        fail_msg("after a commit that failed with EINVAL (len > reserved), shm_send_alloc "
                 "failed with %s: the reservation was not given up (shmsock.h: \"the "
                 "reservation is given up either way\")",
                 strerror(errno));
    assert_int_equal(shm_send_abort(a, q), 0);
    assert_all_blocks_free(c, a);
    shm_close(a);
    shm_close(b);
    test_watchdog(0, NULL);
}

static void test_commit_len_too_large_gives_up(void **state)
{
    (void)state;
    FOR_EACH_CFG(commit_too_long_body);
}

static void commit_wrong_pointer_body(const struct zc_cfg *c)
{
    test_watchdog(WATCHDOG, "zerocopy commit wrong pointer");
    int a, b;
    make_pair(c, &a, &b);
    void *p = shm_send_alloc(a, 100, 0);
    assert_non_null(p);
    EXPECT_ERR(shm_send_commit(a, (char *)p + 1, 10, MSG_NOSIGNAL), EINVAL);
    EXPECT_ERR(shm_send_commit(a, NULL, 10, MSG_NOSIGNAL), EINVAL);
    char c1;
    EXPECT_ERR(shm_recv(b, &c1, 1, MSG_DONTWAIT), EAGAIN);
    errno = 0;
    void *q = shm_send_alloc(a, 100, MSG_DONTWAIT);
    if (q == NULL)
        fail_msg("after a commit of a wrong pointer (EINVAL), shm_send_alloc failed with %s: "
                 "the reservation was not given up (shmsock.h: \"the reservation is given up "
                 "either way\")",
                 strerror(errno));
    assert_int_equal(shm_send_abort(a, q), 0);
    assert_all_blocks_free(c, a);
    shm_close(a);
    shm_close(b);
    test_watchdog(0, NULL);
}

static void test_commit_wrong_pointer_gives_up(void **state)
{
    (void)state;
    FOR_EACH_CFG(commit_wrong_pointer_body);
}

/* EAGAIN when no block is free: MSG_DONTWAIT, O_NONBLOCK, SO_SNDTIMEO (shared memory). */
static void eagain_body(const struct zc_cfg *c)
{
    test_watchdog(WATCHDOG, "zerocopy EAGAIN");
    int a, b;
    make_pair(c, &a, &b);
    size_t max = max_message(c, a);
    size_t region = region_size(a);
    void *p = shm_send_alloc(a, max, 0);
    assert_non_null(p);
    zc_fill(p, 3, 0, max);
    assert_int_equal(shm_send_commit(a, p, max, MSG_NOSIGNAL), (ssize_t)max);
    /* Blocks left: none (STREAM: max == region) or what a SEQPACKET message leaves. */
    size_t left = region - (max + 4095) / 4096 * 4096;
    size_t want = left + 1;
    EXPECT_NULL_ERRNO(shm_send_alloc(a, want, MSG_DONTWAIT), EAGAIN);
    assert_int_equal(shm_fcntl(a, F_SETFL, O_NONBLOCK), 0);
    EXPECT_NULL_ERRNO(shm_send_alloc(a, want, 0), EAGAIN);
    assert_int_equal(shm_fcntl(a, F_SETFL, 0), 0);
    set_timeo(a, SO_SNDTIMEO, 200);
    int64_t t0 = now_ms();
    EXPECT_NULL_ERRNO(shm_send_alloc(a, want, 0), EAGAIN);
    int64_t waited = now_ms() - t0;
    if (waited < 150 || waited > 2000)
        fail_msg("a blocking alloc with SO_SNDTIMEO=200ms returned EAGAIN after %lld ms",
                 (long long)waited);
    set_timeo(a, SO_SNDTIMEO, 0);
    /* After the receiver is done, room again. */
    zc_receive(c, b, &max, 1, 3, true);
    set_timeo(a, SO_SNDTIMEO, 2000);
    p = shm_send_alloc(a, want, 0);
    if (p == NULL)
        fail_msg("alloc after the receiver released: %s", strerror(errno));
    zc_fill(p, 4, 0, want);
    assert_int_equal(shm_send_commit(a, p, want, MSG_NOSIGNAL), (ssize_t)want);
    zc_receive(c, b, &want, 1, 4, true);
    shm_close(a);
    shm_close(b);
    test_watchdog(0, NULL);
}

static void test_eagain_no_blocks(void **state)
{
    (void)state;
    FOR_EACH_SHM_CFG(eagain_body);
}

/* EPIPE after the peer closed (no SIGPIPE: MSG_NOSIGNAL, and SIGPIPE is counted). */
static volatile sig_atomic_t sigpipes;
static void on_sigpipe(int sig)
{
    (void)sig;
    sigpipes++;
}

static void epipe_body(const struct zc_cfg *c)
{
    test_watchdog(WATCHDOG, "zerocopy EPIPE");
    int a, b;
    make_pair(c, &a, &b);
    assert_int_equal(shm_close(b), 0);
    sleep_ms(20);
    sigpipes = 0;
    /* A send attempt (alloc, then commit) fails with EPIPE: at alloc or at commit. */
    for (int attempt = 0; attempt < 2; attempt++) {
        errno = 0;
        void *p = shm_send_alloc(a, 64, 0);
        if (p == NULL) {
            if (errno != EPIPE)
                fail_msg("attempt %d after the peer closed: alloc failed with %s, expected "
                         "EPIPE",
                         attempt, strerror(errno));
            continue;
        }
        memset(p, 'e', 64);
        errno = 0;
        ssize_t n = shm_send_commit(a, p, 64, MSG_NOSIGNAL);
        int e = errno;
        if (n != -1 || e != EPIPE)
            fail_msg("attempt %d after the peer closed: commit returned %zd (%s), expected "
                     "-1 EPIPE (as send(2) on a kernel socket)",
                     attempt, n, strerror(e));
    }
    assert_int_equal(sigpipes, 0);
    shm_close(a);
    test_watchdog(0, NULL);
}

static void test_epipe_after_peer_closed(void **state)
{
    (void)state;
    FOR_EACH_CFG(epipe_body);
}

/* ---- 4. views held ---- */

enum { HELD = 10 };

static void held_reverse_body(const struct zc_cfg *c)
{
    test_watchdog(WATCHDOG, "zerocopy held views");
    int a, b;
    make_pair(c, &a, &b);
    size_t sizes[HELD];
    for (uint32_t i = 0; i < HELD; i++) {
        sizes[i] = 1000 + i * 1500;
        zc_send(a, i, sizes[i]);
    }
    const void *views[HELD];
    for (uint32_t i = 0; i < HELD; i++) {
        ssize_t n = shm_recv_view(b, &views[i], 0);
        if (n != (ssize_t)sizes[i])
            fail_msg("view %u: %zd bytes, expected %zu (%s)", i, n, sizes[i], strerror(errno));
    }
    /* More sends while the views are held must not touch them. */
    for (uint32_t i = 0; i < 5; i++)
        zc_send(a, 100 + i, 3000);
    for (int i = HELD - 1; i >= 0; i--) {
        size_t bad = zc_check(views[i], (uint32_t)i, 0, sizes[i]);
        if (bad != sizes[i])
            fail_msg("held view %d changed at byte %zu before its release", i, bad);
        assert_int_equal(shm_recv_release(b, views[i]), 0);
    }
    size_t later[5] = {3000, 3000, 3000, 3000, 3000};
    zc_receive(c, b, later, 5, 100, true);
    assert_all_blocks_free(c, a);
    shm_close(a);
    shm_close(b);
    test_watchdog(0, NULL);
}

static void test_views_held_release_reverse(void **state)
{
    (void)state;
    FOR_EACH_SHM_CFG(held_reverse_body);
}

struct worker {
    int fd;
    const void *view;
    size_t len;
    uint32_t msg;
    unsigned delay_us;
    int result; /* 0 ok, 1 content, 2 release failed */
};

static void *worker_thread(void *p)
{
    struct worker *w = p;
    usleep(w->delay_us);
    if (zc_check(w->view, w->msg, 0, w->len) != w->len)
        w->result = 1;
    else if (shm_recv_release(w->fd, w->view) != 0)
        w->result = 2;
    return NULL;
}

static void held_threads_body(const struct zc_cfg *c)
{
    test_watchdog(WATCHDOG, "zerocopy views in threads");
    int a, b;
    make_pair(c, &a, &b);
    for (int round = 0; round < 20; round++) {
        struct worker w[HELD];
        pthread_t th[HELD];
        for (uint32_t i = 0; i < HELD; i++)
            zc_send(a, (uint32_t)round * 100 + i, 500 + i * 997);
        for (uint32_t i = 0; i < HELD; i++) {
            const void *v;
            ssize_t n = shm_recv_view(b, &v, 0);
            assert_int_equal(n, 500 + i * 997);
            /* release order: pseudo-random delays */
            w[i] = (struct worker){b,
                                   v,
                                   (size_t)n,
                                   (uint32_t)round * 100 + i,
                                   ((i * 7 + (unsigned)round * 3) % HELD) * 300u,
                                   0};
            assert_int_equal(pthread_create(&th[i], NULL, worker_thread, &w[i]), 0);
        }
        for (uint32_t i = 0; i < HELD; i++) {
            assert_int_equal(pthread_join(th[i], NULL), 0);
            if (w[i].result != 0)
                fail_msg("round %d view %u: %s", round, i,
                         w[i].result == 1 ? "content changed while held" : "release failed");
        }
    }
    assert_all_blocks_free(c, a);
    shm_close(a);
    shm_close(b);
    test_watchdog(0, NULL);
}

static void test_views_in_threads_out_of_order(void **state)
{
    (void)state;
    FOR_EACH_SHM_CFG(held_threads_body);
}

/* Held views pin the peer's blocks: the sender gets EAGAIN until they are released. */
static void pinned_body(const struct zc_cfg *c)
{
    test_watchdog(WATCHDOG, "zerocopy pinned blocks");
    int a, b;
    make_pair(c, &a, &b);
    enum { MSG = 4096, MAXV = 128 };
    char buf[MSG];
    const void *views[MAXV];
    size_t held = 0;
    uint32_t sent = 0;
    /* Fill, view everything, fill again until nothing moves: every block is pinned. */
    for (int rounds = 0; rounds < 4; rounds++) {
        for (;;) {
            zc_fill(buf, sent, 0, MSG);
            ssize_t n = shm_send(a, buf, MSG, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n < 0) {
                assert_int_equal(errno, EAGAIN);
                break;
            }
            assert_int_equal(n, MSG);
            sent++;
            assert_true(sent < MAXV);
        }
        for (;;) {
            const void *v;
            ssize_t n = shm_recv_view(b, &v, MSG_DONTWAIT);
            if (n < 0) {
                assert_int_equal(errno, EAGAIN);
                break;
            }
            assert_int_equal(n, MSG);
            views[held++] = v;
        }
    }
    assert_int_equal(held, sent);
    print_message("      %zu views of 4 KiB hold the sender's region\n", held);
    /* The sender still cannot send, not even a byte, and shm_poll says so. */
    EXPECT_ERR(shm_send(a, "x", 1, MSG_DONTWAIT | MSG_NOSIGNAL), EAGAIN);
    EXPECT_NULL_ERRNO(shm_send_alloc(a, 1, MSG_DONTWAIT), EAGAIN);
    struct pollfd pfd = {.fd = a, .events = POLLOUT};
    assert_int_equal(shm_poll(&pfd, 1, 100), 0);
    /* A blocking send times out too. */
    set_timeo(a, SO_SNDTIMEO, 100);
    EXPECT_ERR(shm_send(a, "x", 1, MSG_NOSIGNAL), EAGAIN);
    for (size_t i = 0; i < held; i++) {
        size_t bad = zc_check(views[i], (uint32_t)i, 0, MSG);
        if (bad != MSG)
            fail_msg("pinned view %zu overwritten at byte %zu", i, bad);
    }
    /* Release one (from the middle): the sender can send again. */
    size_t mid = held / 2;
    assert_int_equal(shm_recv_release(b, views[mid]), 0);
    set_timeo(a, SO_SNDTIMEO, 2000);
    pfd.revents = 0;
    assert_int_equal(shm_poll(&pfd, 1, 2000), 1);
    assert_true(pfd.revents & POLLOUT);
    zc_fill(buf, sent, 0, MSG);
    assert_int_equal(shm_send(a, buf, MSG, MSG_NOSIGNAL), MSG);
    for (size_t i = 0; i < held; i++) {
        if (i == mid)
            continue;
        assert_int_equal(zc_check(views[i], (uint32_t)i, 0, MSG), MSG);
        assert_int_equal(shm_recv_release(b, views[i]), 0);
    }
    size_t one = MSG;
    zc_receive(c, b, &one, 1, sent, true);
    assert_all_blocks_free(c, a);
    shm_close(a);
    shm_close(b);
    test_watchdog(0, NULL);
}

static void test_held_views_pin_blocks(void **state)
{
    (void)state;
    FOR_EACH_SHM_CFG(pinned_body);
}

/* The fallback path's one copied view. */
static void fallback_one_view_body(const struct zc_cfg *c)
{
    test_watchdog(WATCHDOG, "zerocopy fallback view");
    int a, b;
    make_pair(c, &a, &b);
    char m1[100], m2[100];
    zc_fill(m1, 1, 0, sizeof(m1));
    zc_fill(m2, 2, 0, sizeof(m2));
    assert_int_equal(shm_send(a, m1, sizeof(m1), MSG_NOSIGNAL), 100);
    const void *v;
    ssize_t n = shm_recv_view(b, &v, 0);
    assert_int_equal(n, 100);
    assert_int_equal(zc_check(v, 1, 0, 100), 100);
    assert_int_equal(shm_send(a, m2, sizeof(m2), MSG_NOSIGNAL), 100);
    const void *w;
    EXPECT_ERR(shm_recv_view(b, &w, 0), EALREADY);
    assert_int_equal(zc_check(v, 1, 0, 100), 100);
    assert_int_equal(shm_recv_release(b, v), 0);
    n = shm_recv_view(b, &w, 0);
    assert_int_equal(n, 100);
    assert_int_equal(zc_check(w, 2, 0, 100), 100);
    assert_int_equal(shm_recv_release(b, w), 0);
    assert_int_equal(test_shm_status(a), SHM_STATUS_PLAIN);
    shm_close(a);
    shm_close(b);
    test_watchdog(0, NULL);
}

static void test_fallback_one_copied_view(void **state)
{
    (void)state;
    struct zc_cfg cs[2] = {{SOCK_STREAM, &MODE_COALESCED, NO_NEGOTIATION},
                           {SOCK_SEQPACKET, &MODE_COALESCED, NO_NEGOTIATION}};
    for (int i = 0; i < 2; i++) {
        announce(&cs[i]);
        fallback_one_view_body(&cs[i]);
    }
}

/* ---- 5. STREAM: copying reads and views mixed ---- */

static void mixed_body(const struct zc_cfg *c)
{
    if (c->type != SOCK_STREAM)
        return;
    test_watchdog(WATCHDOG, "zerocopy mixed");
    int a, b;
    make_pair(c, &a, &b);
    bool shm = c->kind == SHAKEN;
    char buf[2000];
    /* Partial copying read, then a view: the rest of that piece. */
    zc_fill(buf, 1, 0, 1000);
    assert_int_equal(shm_send(a, buf, 1000, MSG_NOSIGNAL), 1000);
    char got[1000];
    assert_int_equal(shm_recv(b, got, 300, 0), 300);
    assert_int_equal(zc_check(got, 1, 0, 300), 300);
    size_t off = 300;
    while (off < 1000) {
        const void *v;
        ssize_t n = shm_recv_view(b, &v, 0);
        assert_true(n > 0);
        if (shm && n != 700)
            fail_msg("view after a 300-byte copying read of a 1000-byte send returned %zd "
                     "bytes, expected the 700 left of that piece",
                     n);
        assert_true(off + (size_t)n <= 1000);
        assert_int_equal(zc_check(v, 1, off, (size_t)n), (size_t)n);
        off += (size_t)n;
        assert_int_equal(shm_recv_release(b, v), 0);
    }
    /* Two sends; a view (first piece), then a copying read (the second) while it is held. */
    zc_fill(buf, 2, 0, 500);
    assert_int_equal(shm_send(a, buf, 500, MSG_NOSIGNAL), 500);
    zc_fill(buf, 3, 0, 600);
    assert_int_equal(shm_send(a, buf, 600, MSG_NOSIGNAL), 600);
    if (shm) {
        const void *v;
        assert_int_equal(shm_recv_view(b, &v, 0), 500);
        assert_int_equal(zc_check(v, 2, 0, 500), 500);
        char r[600];
        test_recv_all(&test_shm_api, b, r, 600);
        assert_int_equal(zc_check(r, 3, 0, 600), 600);
        assert_int_equal(zc_check(v, 2, 0, 500), 500);
        assert_int_equal(shm_recv_release(b, v), 0);
    } else {
        size_t s[2] = {500, 600};
        zc_receive(c, b, s, 2, 2, false);
    }
    /* Several partial reads of one piece, then a view, then a partial read again. */
    zc_fill(buf, 4, 0, 2000);
    assert_int_equal(shm_send(a, buf, 2000, MSG_NOSIGNAL), 2000);
    off = 0;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(shm_recv(b, got, 100, 0), 100);
        assert_int_equal(zc_check(got, 4, off, 100), 100);
        off += 100;
    }
    while (off < 2000) {
        const void *v;
        ssize_t n = shm_recv_view(b, &v, 0);
        assert_true(n > 0);
        if (shm)
            assert_int_equal(n, 1700);
        assert_int_equal(zc_check(v, 4, off, (size_t)n), (size_t)n);
        off += (size_t)n;
        assert_int_equal(shm_recv_release(b, v), 0);
    }
    char none;
    EXPECT_ERR(shm_recv(b, &none, 1, MSG_DONTWAIT), EAGAIN);
    shm_close(a);
    shm_close(b);
    test_watchdog(0, NULL);
}

static void test_stream_copy_then_view(void **state)
{
    (void)state;
    FOR_EACH_CFG(mixed_body);
}

/* ---- 6. view and end of stream ---- */

struct closer {
    int fd;
    int how; /* -1: close, else shutdown(how) */
};

static void *closer_thread(void *p)
{
    struct closer *c = p;
    sleep_ms(100);
    if (c->how < 0)
        shm_close(c->fd);
    else
        shm_shutdown(c->fd, c->how);
    return NULL;
}

static void eof_body(const struct zc_cfg *c)
{
    test_watchdog(WATCHDOG, "zerocopy view at EOF");
    for (int variant = 0; variant < 3; variant++) {
        int a, b;
        make_pair(c, &a, &b);
        size_t len = 300;
        zc_send(a, 7, len);
        pthread_t th;
        struct closer cl = {a, variant == 1 ? SHUT_WR : -1};
        if (variant < 2) {
            if (variant == 0)
                assert_int_equal(shm_close(a), 0);
            else
                assert_int_equal(shm_shutdown(a, SHUT_WR), 0);
            zc_receive(c, b, &len, 1, 7, c->kind == SHAKEN);
        } else {
            zc_receive(c, b, &len, 1, 7, c->kind == SHAKEN);
            /* The view blocks; the peer closes 100 ms later. */
            assert_int_equal(pthread_create(&th, NULL, closer_thread, &cl), 0);
        }
        const void *v = NULL;
        ssize_t n = shm_recv_view(b, &v, 0);
        if (n != 0)
            fail_msg("variant %d (%s): view at end of stream returned %zd (%s), expected 0",
                     variant, variant == 1 ? "shutdown(SHUT_WR)" : "close", n, strerror(errno));
        assert_non_null(v);
        if (variant == 2)
            assert_int_equal(pthread_join(th, NULL), 0);
        /* Still 0 afterwards, without blocking, as a kernel read at end of stream. */
        errno = 0;
        n = shm_recv_view(b, &v, MSG_DONTWAIT);
        if (n != 0)
            fail_msg("variant %d: a second view at end of stream returned %zd (%s), "
                     "expected 0 again",
                     variant, n, strerror(errno));
        if (variant == 1)
            shm_close(a);
        shm_close(b);
    }
    test_watchdog(0, NULL);
}

static void test_view_eof(void **state)
{
    (void)state;
    FOR_EACH_CFG(eof_body);
}

int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigpipe;
    sigaction(SIGPIPE, &sa, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_sizes),
        cmocka_unit_test(test_bidirectional),
        cmocka_unit_test(test_seqpacket_empty_message),
        cmocka_unit_test(test_commit_shorter_than_reserved),
        cmocka_unit_test(test_abort),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_commit_len_too_large_gives_up),
        cmocka_unit_test(test_commit_wrong_pointer_gives_up),
        cmocka_unit_test(test_eagain_no_blocks),
        cmocka_unit_test(test_epipe_after_peer_closed),
        cmocka_unit_test(test_views_held_release_reverse),
        cmocka_unit_test(test_views_in_threads_out_of_order),
        cmocka_unit_test(test_held_views_pin_blocks),
        cmocka_unit_test(test_fallback_one_copied_view),
        cmocka_unit_test(test_stream_copy_then_view),
        cmocka_unit_test(test_view_eof),
    };
    if (getenv("SHMSOCK_TEST_FILTER") != NULL)
        cmocka_set_test_filter(getenv("SHMSOCK_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
