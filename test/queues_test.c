/*
 * queues_test.c - queue sizes, kernel vs shm (same steps): shm_ioctl's FIONREAD/SIOCINQ and
 * SIOCOUTQ, SO_INQ and its SCM_INQ control message, on STREAM and SEQPACKET, before
 * negotiation, after test_handshake() (coalesced and event mode), and while the peer's plain
 * bytes and its first shared-memory events share the kernel queue; with partial reads and
 * peeks. Every number the kernel variant records, the shm variants must give too; SIOCOUTQ
 * is compared as "something unread or not" (the kernel counts its buffers' memory).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/sockios.h>

#include <cmocka.h>

#include "shmsock.h"
#include "test_support.h"
#include "mode_util.h"
#include "semantics_util.h"

#define BIG 20000

static int do_ioctl(const struct sock_api *api, int fd, unsigned long request, void *arg)
{
    return api->is_shm ? shm_ioctl(fd, request, arg) : ioctl(fd, request, arg);
}

/* The int a request stores, or -errno. */
static long queued(const struct sock_api *api, int fd, unsigned long request)
{
    int value = -12345;
    errno = 0;
    if (do_ioctl(api, fd, request, &value) < 0)
        return -errno;
    return value;
}

static long outcome(ssize_t n)
{
    return n < 0 ? -errno : (long)n;
}

/* A read with room for control data; records the bytes, and the SCM_INQ value (-1: none),
 * msg_controllen and MSG_CTRUNC. */
static void read_with_inq(const struct sock_api *api, int fd, size_t len, size_t control, int flags,
                          struct sem_steps *r)
{
    char buf[64];
    union {
        struct cmsghdr align;
        char bytes[256];
    } cbuf;
    memset(&cbuf, 0, sizeof(cbuf));
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    struct msghdr m = {.msg_iov = &iov,
                       .msg_iovlen = 1,
                       .msg_control = control > 0 ? cbuf.bytes : NULL,
                       .msg_controllen = control};
    sem_step(r, "read with SO_INQ", outcome(api->recvmsg(fd, &m, flags | MSG_DONTWAIT)));
    long inq = -1;
    if (control > 0)
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c != NULL; c = CMSG_NXTHDR(&m, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_INQ) {
                int v;
                memcpy(&v, CMSG_DATA(c), sizeof(v));
                inq = v;
            }
    sem_step(r, "SCM_INQ", inq);
    sem_step(r, "msg_controllen", (long)m.msg_controllen);
    sem_step(r, "MSG_CTRUNC", (m.msg_flags & MSG_CTRUNC) != 0);
}

/* Read until FIONREAD says nothing is left (each read may stop short of the kernel's). */
static long drain(const struct sock_api *api, int fd, int type)
{
    static char buf[BIG + 64];
    long total = 0;
    for (int rounds = 0; queued(api, fd, SIOCINQ) > 0; rounds++) {
        assert_true(rounds < 1000);
        ssize_t n = api->recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        assert_true(n >= 0 || type == SOCK_SEQPACKET);
        if (n > 0)
            total += n;
    }
    return total;
}

static void common_steps(const struct sock_api *api, int type, int a, int b, struct sem_steps *r)
{
    char buf[BIG];
    test_fill_pattern(buf, sizeof(buf), 7);
    sem_step(r, "INQ empty", queued(api, b, SIOCINQ));
    sem_step(r, "FIONREAD empty", queued(api, b, FIONREAD));
    sem_step(r, "OUTQ empty", queued(api, a, SIOCOUTQ) > 0);
    assert_int_equal(api->send(a, "hello", 5, 0), 5);
    assert_int_equal(api->send(a, "worldxx", 7, 0), 7);
    sem_step(r, "INQ two sent", queued(api, b, SIOCINQ));
    sem_step(r, "INQ of the sender", queued(api, a, SIOCINQ));
    sem_step(r, "OUTQ two sent", queued(api, a, SIOCOUTQ) > 0);
    sem_step(r, "OUTQ of the reader", queued(api, b, SIOCOUTQ) > 0);
    sem_step(r, "read 3", outcome(api->recv(b, buf, 3, 0)));
    sem_step(r, "INQ after 3", queued(api, b, SIOCINQ));
    sem_step(r, "peek 2", outcome(api->recv(b, buf, 2, MSG_PEEK)));
    sem_step(r, "INQ after peek", queued(api, b, SIOCINQ));
    sem_step(r, "OUTQ partly read", queued(api, a, SIOCOUTQ) > 0);
    assert_int_equal(api->send(a, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
    sem_step(r, "INQ big", queued(api, b, SIOCINQ));
    sem_step(r, "read 1000", outcome(api->recv(b, buf, 1000, 0)));
    sem_step(r, "INQ after 1000", queued(api, b, SIOCINQ));
    sem_step(r, "drained", drain(api, b, type));
    sem_step(r, "INQ drained", queued(api, b, SIOCINQ));
    sem_step(r, "OUTQ all read", queued(api, a, SIOCOUTQ) > 0);
    /* SO_INQ: STREAM only; getsockopt is not supported by AF_UNIX. */
    int on = 1;
    errno = 0;
    sem_step(r, "SO_INQ set",
             api->setsockopt(b, SOL_SOCKET, SO_INQ, &on, sizeof(on)) < 0 ? -errno : 0);
    int value = 0;
    socklen_t len = sizeof(value);
    errno = 0;
    sem_step(r, "SO_INQ get",
             api->getsockopt(b, SOL_SOCKET, SO_INQ, &value, &len) < 0 ? -errno : 0);
    assert_int_equal(api->send(a, "abcdef", 6, 0), 6);
    assert_int_equal(api->send(a, "ghij", 4, 0), 4);
    read_with_inq(api, b, 4, 256, 0, r);
    read_with_inq(api, b, 2, 256, MSG_PEEK, r);
    read_with_inq(api, b, 1, 0, 0, r);
    read_with_inq(api, b, 1, 8, 0, r);
    read_with_inq(api, b, 0, 256, 0, r); /* (on an empty queue the kernel's says EAGAIN) */
    read_with_inq(api, b, 64, 256, 0, r);
    read_with_inq(api, b, 64, 256, 0, r); /* EAGAIN: no control data */
    on = 0;
    if (type == SOCK_STREAM)
        assert_int_equal(api->setsockopt(b, SOL_SOCKET, SO_INQ, &on, sizeof(on)), 0);
    assert_int_equal(api->send(a, "kl", 2, 0), 2);
    read_with_inq(api, b, 1, 256, 0, r);
    on = 2;
    errno = 0;
    sem_step(r, "SO_INQ 2",
             api->setsockopt(b, SOL_SOCKET, SO_INQ, &on, sizeof(on)) < 0 ? -errno : 0);
    errno = 0;
    sem_step(r, "INQ NULL", do_ioctl(api, b, SIOCINQ, NULL) < 0 ? -errno : 0);
    errno = 0;
    sem_step(r, "unknown request", do_ioctl(api, b, 0x89ff, &value) < 0 ? -errno : 0);
    sem_step(r, "INQ end", queued(api, b, SIOCINQ));
}

static struct sem_steps kernel_records[2][3]; /* [SEQPACKET][before, after, mixed] */

/* A pair on kernel sockets, or on shm sockets in `mode`. */
static void make_pair(const struct sock_api *api, int type, const struct shm_mode *mode, bool shake,
                      int *a, int *b)
{
    if (api->is_shm)
        mu_pair(type, mode, true, shake, a, b);
    else
        sem_pair(api, type, shake, a, b);
}

static void run_steps(const struct sock_api *api, int type, const struct shm_mode *mode, bool shake)
{
    SEM_GUARD();
    print_message("    [%s %s %s %s]\n", api->name, sem_type_name(type),
                  api->is_shm ? mode->name : "", shake ? "after handshake" : "before negotiation");
    int a, b;
    make_pair(api, type, mode, shake, &a, &b);
    struct sem_steps r = {.count = 0};
    common_steps(api, type, a, b, &r);
    struct sem_steps *kernel = &kernel_records[type == SOCK_SEQPACKET][shake];
    if (api->is_shm)
        sem_steps_compare(kernel, &r, shake ? "after handshake" : "before negotiation");
    else
        *kernel = r;
    api->close(a);
    api->close(b);
}

/*
 * Both sides offer at once: b sends, a sends plain bytes (with its offer), reads b's byte
 * (and so switches at its next send): b's queue holds a's plain bytes, its offer unread, and
 * then its first shared-memory message.
 */
static void run_mixed(const struct sock_api *api, int type, const struct shm_mode *mode)
{
    SEM_GUARD();
    print_message("    [%s %s %s plain bytes then events]\n", api->name, sem_type_name(type),
                  api->is_shm ? mode->name : "");
    int a, b;
    make_pair(api, type, mode, false, &a, &b);
    struct sem_steps r = {.count = 0};
    char c;
    int on = 1;
    if (type == SOCK_STREAM)
        assert_int_equal(api->setsockopt(b, SOL_SOCKET, SO_INQ, &on, sizeof(on)), 0);
    assert_int_equal(api->send(b, "x", 1, 0), 1);
    assert_int_equal(api->send(a, "plain1", 6, 0), 6);
    assert_int_equal(api->recv(a, &c, 1, 0), 1);
    assert_int_equal(api->send(a, "events7", 7, 0), 7);
    if (api->is_shm)
        assert_int_equal(test_shm_status(a), SHM_STATUS_SHM); /* that one went by shm */
    sem_step(&r, "INQ plain and events", queued(api, b, SIOCINQ));
    sem_step(&r, "OUTQ", queued(api, a, SIOCOUTQ) > 0);
    read_with_inq(api, b, 4, 256, 0, &r);
    sem_step(&r, "INQ after 4", queued(api, b, SIOCINQ));
    assert_int_equal(api->send(a, "more", 4, 0), 4);
    sem_step(&r, "INQ after more", queued(api, b, SIOCINQ));
    read_with_inq(api, b, 3, 256, 0, &r);
    sem_step(&r, "INQ after 3 more", queued(api, b, SIOCINQ));
    sem_step(&r, "drained", drain(api, b, type));
    sem_step(&r, "INQ drained", queued(api, b, SIOCINQ));
    sem_step(&r, "OUTQ all read", queued(api, a, SIOCOUTQ) > 0);
    struct sem_steps *kernel = &kernel_records[type == SOCK_SEQPACKET][2];
    if (api->is_shm)
        sem_steps_compare(kernel, &r, "plain bytes then events");
    else
        *kernel = r;
    api->close(a);
    api->close(b);
}

static const struct shm_mode *const modes[] = {&MODE_COALESCED, &MODE_EVENT};

static void test_queue_sizes(void **state)
{
    (void)state;
    for (int t = 0; t < 2; t++) {
        int type = t == 0 ? SOCK_STREAM : SOCK_SEQPACKET;
        for (int shake = 0; shake < 2; shake++) {
            run_steps(&test_kernel_api, type, NULL, shake);
            for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++)
                run_steps(&test_shm_api, type, modes[m], shake);
        }
    }
}

static void test_plain_bytes_then_events(void **state)
{
    (void)state;
    for (int t = 0; t < 2; t++) {
        int type = t == 0 ? SOCK_STREAM : SOCK_SEQPACKET;
        run_mixed(&test_kernel_api, type, NULL);
        for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++)
            run_mixed(&test_shm_api, type, modes[m]);
    }
}

/* Descriptors that are not shm sockets go to the kernel with their argument. */
static void test_passthrough(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(write(p[1], "abc", 3), 3);
    int n = -1;
    assert_int_equal(shm_ioctl(p[0], FIONREAD, &n), 0);
    assert_int_equal(n, 3);
    int on = 1;
    assert_int_equal(shm_ioctl(p[0], FIONBIO, &on), 0);
    char buf[8];
    assert_int_equal(read(p[0], buf, sizeof(buf)), 3);
    errno = 0;
    assert_int_equal(read(p[0], buf, sizeof(buf)), -1);
    assert_int_equal(errno, EAGAIN);
    errno = 0;
    assert_int_equal(shm_ioctl(p[0], SIOCOUTQ, &n), -1);
    assert_int_equal(errno, ENOTTY);
    close(p[0]);
    close(p[1]);
    errno = 0;
    assert_int_equal(shm_ioctl(p[0], FIONREAD, &n), -1);
    assert_int_equal(errno, EBADF);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queue_sizes),
        cmocka_unit_test(test_plain_bytes_then_events),
        cmocka_unit_test(test_passthrough),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
