/*
 * batch_test.c - shm_sendmmsg / shm_recvmmsg against the kernel's sendmmsg(2) / recvmmsg(2):
 * the same steps run on kernel sockets (the reference) and on shm sockets in coalesced mode
 * and in event mode (SHM_COALESCE on both ends before test_handshake), after the handshake
 * and before negotiation, for SOCK_STREAM and SOCK_SEQPACKET. Asserted: return counts,
 * msg_len of every entry, msg_flags (MSG_TRUNC), the bytes, MSG_WAITFORONE (blocks for the
 * first message only), MSG_DONTWAIT with a partially available batch, a timeout of zero,
 * an invalid timeout (EINVAL), a send batch that stops early (room for only part of it), and
 * -1 with errno when the first message fails: EAGAIN, EPIPE (peer closed), EMSGSIZE.
 * Every blocking step is under test_watchdog.
 */
#define _GNU_SOURCE
#include <errno.h>
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

#define WATCHDOG 30

struct variant {
    const struct sock_api *api;
    const struct shm_mode *mode; /* shm only */
    bool shake;
    int type;
    int (*sendmmsg)(int, struct mmsghdr *, unsigned int, int);
    int (*recvmmsg)(int, struct mmsghdr *, unsigned int, int, struct timespec *);
};

static int k_sendmmsg(int fd, struct mmsghdr *v, unsigned int n, int f)
{
    return sendmmsg(fd, v, n, f);
}

static int k_recvmmsg(int fd, struct mmsghdr *v, unsigned int n, int f, struct timespec *t)
{
    return recvmmsg(fd, v, n, f, t);
}

static void announce(const struct variant *v)
{
    print_message("    [%s%s%s %s %s]\n", v->api->name, v->api->is_shm ? " " : "",
                  v->api->is_shm ? v->mode->name : "", mu_type_name(v->type),
                  v->shake ? "after handshake" : "before negotiation");
}

static void make_pair(const struct variant *v, int *a, int *b)
{
    if (v->api->is_shm) {
        mu_pair(v->type, v->mode, true, v->shake, a, b);
    } else {
        test_connect_pair(v->api, v->type, a, b);
        if (v->shake)
            test_handshake(v->api, *a, *b);
    }
}

#define FOR_EACH_VARIANT(body)                                                                     \
    do {                                                                                           \
        static const int types_[2] = {SOCK_STREAM, SOCK_SEQPACKET};                                \
        for (int t_ = 0; t_ < 2; t_++)                                                             \
            for (int s_ = 1; s_ >= 0; s_--) {                                                      \
                struct variant vs_[3] = {                                                          \
                    {&test_kernel_api, NULL, s_, types_[t_], k_sendmmsg, k_recvmmsg},              \
                    {&test_shm_api, &MODE_COALESCED, s_, types_[t_], shm_sendmmsg, shm_recvmmsg},  \
                    {&test_shm_api, &MODE_EVENT, s_, types_[t_], shm_sendmmsg, shm_recvmmsg},      \
                };                                                                                 \
                for (int v_ = 0; v_ < 3; v_++) {                                                   \
                    announce(&vs_[v_]);                                                            \
                    body(&vs_[v_]);                                                                \
                }                                                                                  \
            }                                                                                      \
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

enum { MAXV = 16, BUF = 70000 };

/* A batch: vlen entries, entry i of len[i] bytes from buffer data[i]. */
struct batch {
    struct mmsghdr m[MAXV];
    struct iovec iov[MAXV];
    char *data[MAXV];
};

static void batch_init(struct batch *bt, unsigned vlen, const size_t *len, unsigned seed)
{
    memset(bt->m, 0, sizeof(bt->m));
    for (unsigned i = 0; i < vlen; i++) {
        if (bt->data[i] == NULL)
            bt->data[i] = malloc(BUF);
        assert_non_null(bt->data[i]);
        test_fill_pattern(bt->data[i], len[i], seed + i);
        bt->iov[i] = (struct iovec){bt->data[i], len[i]};
        bt->m[i].msg_hdr.msg_iov = &bt->iov[i];
        bt->m[i].msg_hdr.msg_iovlen = 1;
        bt->m[i].msg_len = 0xdeadbeef;
    }
}

static void batch_free(struct batch *bt)
{
    for (unsigned i = 0; i < MAXV; i++) {
        free(bt->data[i]);
        bt->data[i] = NULL;
    }
}

/* Receive entries: buffers of cap[i] bytes, zeroed. */
static void rbatch_init(struct batch *bt, unsigned vlen, const size_t *cap)
{
    memset(bt->m, 0, sizeof(bt->m));
    for (unsigned i = 0; i < vlen; i++) {
        if (bt->data[i] == NULL)
            bt->data[i] = malloc(BUF);
        assert_non_null(bt->data[i]);
        memset(bt->data[i], 0, BUF);
        bt->iov[i] = (struct iovec){bt->data[i], cap[i]};
        bt->m[i].msg_hdr.msg_iov = &bt->iov[i];
        bt->m[i].msg_hdr.msg_iovlen = 1;
        bt->m[i].msg_len = 0xdeadbeef;
    }
}

/* ---- 1. a batch each way, msg_len values ---- */

static void basic_body(const struct variant *v)
{
    test_watchdog(WATCHDOG, "batch basic");
    int a, b;
    make_pair(v, &a, &b);
    struct batch s = {0}, r = {0};
    size_t len[5] = {10, 1, 5000, 300, 65536};
    batch_init(&s, 5, len, 100);
    int n = v->sendmmsg(a, s.m, 5, MSG_NOSIGNAL);
    assert_int_equal(n, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(s.m[i].msg_len, len[i]);
    size_t total = 10 + 1 + 5000 + 300 + 65536;
    if (v->type == SOCK_SEQPACKET) {
        /* vlen 8, MSG_WAITFORONE: the five that are there. */
        size_t cap[8] = {BUF, BUF, BUF, BUF, BUF, BUF, BUF, BUF};
        rbatch_init(&r, 8, cap);
        n = v->recvmmsg(b, r.m, 8, MSG_WAITFORONE, NULL);
        assert_int_equal(n, 5);
        for (int i = 0; i < 5; i++) {
            assert_int_equal(r.m[i].msg_len, len[i]);
            assert_int_equal(r.m[i].msg_hdr.msg_flags, 0);
            assert_true(test_check_pattern(r.data[i], len[i], 100 + (unsigned)i));
        }
        assert_int_equal(r.m[5].msg_len, 0xdeadbeef); /* untouched */
    } else {
        /* Entries of 1000 bytes: the stream fills them in order. */
        size_t cap[MAXV];
        for (int i = 0; i < MAXV; i++)
            cap[i] = 1000;
        char *all = malloc(total), *got = malloc(total);
        size_t o = 0;
        for (int i = 0; i < 5; i++) {
            memcpy(all + o, s.data[i], len[i]);
            o += len[i];
        }
        size_t have = 0;
        while (have < total) {
            rbatch_init(&r, MAXV, cap);
            n = v->recvmmsg(b, r.m, MAXV, MSG_WAITFORONE, NULL);
            assert_true(n >= 1);
            for (int i = 0; i < n; i++) {
                assert_true(r.m[i].msg_len >= 1 && r.m[i].msg_len <= 1000);
                if (i + 1 < n && v->api->is_shm == false)
                    assert_int_equal(r.m[i].msg_len, 1000);
                memcpy(got + have, r.data[i], r.m[i].msg_len);
                have += r.m[i].msg_len;
            }
            assert_true(have <= total);
        }
        assert_memory_equal(all, got, total);
        free(all);
        free(got);
    }
    /* Nothing left: -1 EAGAIN with MSG_DONTWAIT. */
    size_t cap1[1] = {BUF};
    rbatch_init(&r, 1, cap1);
    EXPECT_ERR(v->recvmmsg(b, r.m, 1, MSG_DONTWAIT, NULL), EAGAIN);
    /* vlen 0 */
    assert_int_equal(v->sendmmsg(a, s.m, 0, MSG_NOSIGNAL), 0);
    batch_free(&s);
    batch_free(&r);
    shm_close(a);
    shm_close(b);
    test_watchdog(0, NULL);
}

static void test_batch_basic(void **state)
{
    (void)state;
    FOR_EACH_VARIANT(basic_body);
}

/* STREAM with exactly available bytes: entries of 100 over 450 bytes -> 100,100,100,100,50. */
static void stream_split_body(const struct variant *v)
{
    if (v->type != SOCK_STREAM)
        return;
    test_watchdog(WATCHDOG, "batch stream split");
    int a, b;
    make_pair(v, &a, &b);
    char data[450];
    test_fill_pattern(data, sizeof(data), 7);
    test_send_all(v->api, a, data, 450);
    usleep(10000);
    struct batch r = {0};
    size_t cap[8] = {100, 100, 100, 100, 100, 100, 100, 100};
    rbatch_init(&r, 8, cap);
    int n = v->recvmmsg(b, r.m, 8, MSG_DONTWAIT, NULL);
    assert_int_equal(n, 5);
    unsigned want[5] = {100, 100, 100, 100, 50};
    char got[450];
    for (int i = 0; i < 5; i++) {
        assert_int_equal(r.m[i].msg_len, want[i]);
        memcpy(got + 100 * i, r.data[i], want[i]);
    }
    assert_memory_equal(got, data, 450);
    batch_free(&r);
    shm_close(a);
    shm_close(b);
    test_watchdog(0, NULL);
}

static void test_stream_split(void **state)
{
    (void)state;
    FOR_EACH_VARIANT(stream_split_body);
}

/* SEQPACKET truncation: msg_len and MSG_TRUNC per entry, with and without the MSG_TRUNC flag. */
static void trunc_body(const struct variant *v)
{
    if (v->type != SOCK_SEQPACKET)
        return;
    test_watchdog(WATCHDOG, "batch trunc");
    int a, b;
    make_pair(v, &a, &b);
    struct batch s = {0}, r = {0};
    size_t len[4] = {20, 5, 20, 0};
    for (int round = 0; round < 2; round++) {
        batch_init(&s, 4, len, 50);
        assert_int_equal(v->sendmmsg(a, s.m, 4, MSG_NOSIGNAL), 4);
        usleep(10000);
        size_t cap[4] = {10, 10, 20, 10};
        rbatch_init(&r, 4, cap);
        int flags = MSG_DONTWAIT | (round == 1 ? MSG_TRUNC : 0);
        assert_int_equal(v->recvmmsg(b, r.m, 4, flags, NULL), 4);
        unsigned want_len[2][4] = {{10, 5, 20, 0}, {20, 5, 20, 0}};
        int want_flags[4] = {MSG_TRUNC, 0, 0, 0};
        for (int i = 0; i < 4; i++) {
            if (r.m[i].msg_len != want_len[round][i] || r.m[i].msg_hdr.msg_flags != want_flags[i])
                fail_msg("round %d entry %d: msg_len %u flags 0x%x, expected %u 0x%x", round, i,
                         r.m[i].msg_len, (unsigned)r.m[i].msg_hdr.msg_flags, want_len[round][i],
                         (unsigned)want_flags[i]);
            size_t c = len[i] < cap[i] ? len[i] : cap[i];
            assert_true(test_check_pattern(r.data[i], c, 50 + (unsigned)i));
        }
    }
    batch_free(&s);
    batch_free(&r);
    shm_close(a);
    shm_close(b);
    test_watchdog(0, NULL);
}

static void test_seqpacket_trunc(void **state)
{
    (void)state;
    FOR_EACH_VARIANT(trunc_body);
}

/* ---- 2. MSG_WAITFORONE, MSG_DONTWAIT with a partial batch, timeouts ---- */

struct late {
    const struct variant *v;
    int fd;
    size_t len;
};

static void *late_sender(void *p)
{
    struct late *l = p;
    usleep(100000);
    char buf[64];
    test_fill_pattern(buf, l->len, 9);
    if (l->v->api->send(l->fd, buf, l->len, MSG_NOSIGNAL) != (ssize_t)l->len)
        abort();
    return NULL;
}

static void waitforone_body(const struct variant *v)
{
    test_watchdog(WATCHDOG, "batch MSG_WAITFORONE");
    int a, b;
    make_pair(v, &a, &b);
    struct batch r = {0};
    size_t cap[4] = {64, 64, 64, 64};
    /* Nothing there: blocks for the first, returns it alone. */
    struct late l = {v, a, 40};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, late_sender, &l), 0);
    rbatch_init(&r, 4, cap);
    int n = v->recvmmsg(b, r.m, 4, MSG_WAITFORONE, NULL);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(n, 1);
    assert_int_equal(r.m[0].msg_len, 40);
    assert_true(test_check_pattern(r.data[0], 40, 9));
    /* Three available (SEQPACKET: three messages; STREAM: three sends of 64 bytes), vlen 4,
     * MSG_DONTWAIT: a partial batch, then EAGAIN. */
    char buf[64];
    for (int i = 0; i < 3; i++) {
        test_fill_pattern(buf, 64, 20 + (unsigned)i);
        test_send_all(v->api, a, buf, 64);
    }
    usleep(10000);
    rbatch_init(&r, 4, cap);
    n = v->recvmmsg(b, r.m, 4, MSG_DONTWAIT, NULL);
    assert_int_equal(n, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r.m[i].msg_len, 64);
        assert_true(test_check_pattern(r.data[i], 64, 20 + (unsigned)i));
    }
    rbatch_init(&r, 4, cap);
    EXPECT_ERR(v->recvmmsg(b, r.m, 4, MSG_DONTWAIT, NULL), EAGAIN);
    /* A zero timeout is looked at after the first message: one message. */
    for (int i = 0; i < 3; i++) {
        test_fill_pattern(buf, 64, 30 + (unsigned)i);
        test_send_all(v->api, a, buf, 64);
    }
    usleep(10000);
    struct timespec zero = {0, 0};
    rbatch_init(&r, 4, cap);
    n = v->recvmmsg(b, r.m, 4, 0, &zero);
    assert_int_equal(n, 1);
    assert_true(test_check_pattern(r.data[0], 64, 30));
    rbatch_init(&r, 4, cap);
    assert_int_equal(v->recvmmsg(b, r.m, 4, MSG_DONTWAIT, NULL), 2);
    /* An invalid timeout: EINVAL. */
    struct timespec bad = {0, 2000000000L};
    rbatch_init(&r, 4, cap);
    EXPECT_ERR(v->recvmmsg(b, r.m, 4, MSG_DONTWAIT, &bad), EINVAL);
    batch_free(&r);
    shm_close(a);
    shm_close(b);
    test_watchdog(0, NULL);
}

static void test_waitforone_dontwait_timeout(void **state)
{
    (void)state;
    FOR_EACH_VARIANT(waitforone_body);
}

/* ---- 3. send batches that stop early, and errors of the first message ---- */

static void partial_send_body(const struct variant *v)
{
    test_watchdog(WATCHDOG, "batch partial send");
    int a, b;
    make_pair(v, &a, &b);
    /* Fill until EAGAIN with 16-entry batches of 4 KiB: the last batch stops early (count <
     * vlen), the next fails with -1 EAGAIN. */
    struct batch s = {0};
    size_t len[MAXV];
    for (int i = 0; i < MAXV; i++)
        len[i] = 4096;
    size_t msgs = 0;
    bool partial_seen = false;
    for (int round = 0; round < 1000; round++) {
        batch_init(&s, MAXV, len, (unsigned)msgs);
        int n = v->sendmmsg(a, s.m, MAXV, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0) {
            assert_int_equal(errno, EAGAIN);
            break;
        }
        assert_true(n >= 1 && n <= MAXV);
        for (int i = 0; i < n; i++) {
            if (v->type == SOCK_SEQPACKET || i + 1 < n)
                assert_int_equal(s.m[i].msg_len, 4096);
            else
                assert_true(s.m[i].msg_len >= 1 && s.m[i].msg_len <= 4096);
        }
        assert_int_equal(s.m[n < MAXV ? n : MAXV - 1].msg_len == 0xdeadbeef, n < MAXV);
        if (n < MAXV)
            partial_seen = true;
        msgs += (size_t)n;
        if (v->type == SOCK_STREAM && s.m[n - 1].msg_len < 4096)
            break; /* a short stream write ends the batch; the stream is no longer whole */
    }
    assert_true(msgs > 0);
    print_message("      %zu messages went before EAGAIN (partial batch seen: %s)\n", msgs,
                  partial_seen ? "yes" : "no");
    if (v->type == SOCK_SEQPACKET) {
        /* The receiver gets exactly the messages counted, in order, and the last one's
         * doorbell was rung (a blocking receive of each completes). */
        char *buf = malloc(8192);
        for (size_t i = 0; i < msgs; i++) {
            ssize_t n = v->api->recv(b, buf, 8192, 0);
            assert_int_equal(n, 4096);
            if (!test_check_pattern(buf, 4096, (unsigned)i))
                fail_msg("message %zu of the batches arrived with wrong content", i);
        }
        EXPECT_ERR(v->api->recv(b, buf, 8192, MSG_DONTWAIT), EAGAIN);
        free(buf);
    }
    batch_free(&s);
    shm_close(a);
    shm_close(b);
    test_watchdog(0, NULL);
}

static void test_partial_send_batch(void **state)
{
    (void)state;
    FOR_EACH_VARIANT(partial_send_body);
}

static volatile sig_atomic_t sigpipes;
static void on_sigpipe(int sig)
{
    (void)sig;
    sigpipes++;
}

static void first_fails_body(const struct variant *v)
{
    test_watchdog(WATCHDOG, "batch first fails");
    int a, b;
    make_pair(v, &a, &b);
    struct batch s = {0};
    size_t len[3] = {100, 100, 100};
    /* EMSGSIZE (SEQPACKET): first too large -> -1; second too large -> 1. */
    if (v->type == SOCK_SEQPACKET) {
        int sndbuf = 0;
        socklen_t sl = sizeof(sndbuf);
        assert_int_equal(getsockopt(a, SOL_SOCKET, SO_SNDBUF, &sndbuf, &sl), 0);
        char *big = calloc(1, (size_t)sndbuf);
        batch_init(&s, 3, len, 1);
        s.iov[0] = (struct iovec){big, (size_t)sndbuf - 31};
        EXPECT_ERR(v->sendmmsg(a, s.m, 3, MSG_NOSIGNAL), EMSGSIZE);
        batch_init(&s, 3, len, 1);
        s.iov[1] = (struct iovec){big, (size_t)sndbuf - 31};
        assert_int_equal(v->sendmmsg(a, s.m, 3, MSG_NOSIGNAL), 1);
        assert_int_equal(s.m[0].msg_len, 100);
        char buf[200];
        assert_int_equal(v->api->recv(b, buf, sizeof(buf), 0), 100);
        assert_true(test_check_pattern(buf, 100, 1));
        EXPECT_ERR(v->api->recv(b, buf, sizeof(buf), MSG_DONTWAIT), EAGAIN);
        free(big);
    }
    /* EPIPE: the peer closed (MSG_NOSIGNAL: no SIGPIPE; without it on STREAM: one). */
    assert_int_equal(v->api->close(b), 0);
    usleep(20000);
    sigpipes = 0;
    batch_init(&s, 3, len, 1);
    EXPECT_ERR(v->sendmmsg(a, s.m, 3, MSG_NOSIGNAL), EPIPE);
    assert_int_equal(sigpipes, 0);
    batch_init(&s, 3, len, 1);
    EXPECT_ERR(v->sendmmsg(a, s.m, 3, 0), EPIPE);
    int pipes_without_nosignal = sigpipes;
    print_message("      SIGPIPE without MSG_NOSIGNAL: %d\n", pipes_without_nosignal);
    if (v->type == SOCK_STREAM)
        assert_int_equal(pipes_without_nosignal, 1);
    batch_free(&s);
    shm_close(a);
    test_watchdog(0, NULL);
}

static void test_first_fails(void **state)
{
    (void)state;
    FOR_EACH_VARIANT(first_fails_body);
}

/* EAGAIN as the first failure when the receiver holds everything. */
static void first_eagain_body(const struct variant *v)
{
    test_watchdog(WATCHDOG, "batch first EAGAIN");
    int a, b;
    make_pair(v, &a, &b);
    char *buf = malloc(4096);
    test_fill_pattern(buf, 4096, 3);
    for (;;) {
        ssize_t n = v->api->send(a, buf, 4096, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0) {
            assert_int_equal(errno, EAGAIN);
            break;
        }
    }
    struct batch s = {0};
    size_t len[3] = {4096, 4096, 4096};
    batch_init(&s, 3, len, 1);
    EXPECT_ERR(v->sendmmsg(a, s.m, 3, MSG_DONTWAIT | MSG_NOSIGNAL), EAGAIN);
    for (int i = 0; i < 3; i++)
        assert_int_equal(s.m[i].msg_len, 0xdeadbeef);
    free(buf);
    batch_free(&s);
    shm_close(a);
    shm_close(b);
    test_watchdog(0, NULL);
}

static void test_first_eagain(void **state)
{
    (void)state;
    FOR_EACH_VARIANT(first_eagain_body);
}

/* A batch sent to a receiver that sleeps (blocking recvmmsg in a thread): one doorbell for the
 * batch must still wake it, and a batch received while messages stream in stays ordered. */
struct rx_arg {
    const struct variant *v;
    int fd;
    unsigned total;
    unsigned got;
    int bad;
};

static void *rx_thread(void *p)
{
    struct rx_arg *x = p;
    static struct batch r;
    size_t cap[MAXV];
    for (int i = 0; i < MAXV; i++)
        cap[i] = 64;
    while (x->got < x->total) {
        rbatch_init(&r, MAXV, cap);
        int n = x->v->recvmmsg(x->fd, r.m, MAXV, MSG_WAITFORONE, NULL);
        if (n <= 0) {
            x->bad = 1;
            break;
        }
        for (int i = 0; i < n; i++) {
            uint32_t seq;
            memcpy(&seq, r.data[i], 4);
            if (r.m[i].msg_len != 64 || seq != x->got) {
                x->bad = 2;
                return NULL;
            }
            x->got++;
        }
    }
    batch_free(&r);
    return NULL;
}

static void sleeping_rx_body(const struct variant *v)
{
    if (v->type != SOCK_SEQPACKET)
        return;
    test_watchdog(WATCHDOG, "batch to a sleeping receiver");
    int a, b;
    make_pair(v, &a, &b);
    struct rx_arg x = {v, b, 20000, 0, 0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, rx_thread, &x), 0);
    struct batch s = {0};
    size_t len[MAXV];
    for (int i = 0; i < MAXV; i++)
        len[i] = 64;
    unsigned seq = 0;
    while (seq < x.total) {
        unsigned vlen = 1 + seq % MAXV;
        if (seq + vlen > x.total)
            vlen = x.total - seq;
        batch_init(&s, vlen, len, 0);
        for (unsigned i = 0; i < vlen; i++) {
            uint32_t q = seq + i;
            memcpy(s.data[i], &q, 4);
        }
        int n = v->sendmmsg(a, s.m, vlen, MSG_NOSIGNAL);
        assert_true(n >= 1);
        /* A blocking batch may stop early only on a signal or error: resend the rest. */
        seq += (unsigned)n;
        if (seq % 1024 < 16)
            usleep(200); /* let the receiver sleep now and then */
    }
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(x.bad, 0);
    assert_int_equal(x.got, x.total);
    batch_free(&s);
    shm_close(a);
    shm_close(b);
    test_watchdog(0, NULL);
}

static void test_batches_to_sleeping_receiver(void **state)
{
    (void)state;
    FOR_EACH_VARIANT(sleeping_rx_body);
}

int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigpipe;
    sigaction(SIGPIPE, &sa, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_basic),
        cmocka_unit_test(test_stream_split),
        cmocka_unit_test(test_seqpacket_trunc),
        cmocka_unit_test(test_waitforone_dontwait_timeout),
        cmocka_unit_test(test_partial_send_batch),
        cmocka_unit_test(test_first_fails),
        cmocka_unit_test(test_first_eagain),
        cmocka_unit_test(test_batches_to_sleeping_receiver),
    };
    if (getenv("SHMSOCK_TEST_FILTER") != NULL)
        cmocka_set_test_filter(getenv("SHMSOCK_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
