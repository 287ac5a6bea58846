/*
 * zero_length_test.c - calls of zero bytes, kernel vs shm (same steps, every outcome compared
 * with the kernel's), STREAM and SEQPACKET, before negotiation, on shared memory (coalesced)
 * and on shared memory in event mode (SHM_COALESCE = 0):
 *   - read(2)/readv(2) of nothing return 0 at once, even on an empty socket;
 *   - recv/recvmsg of nothing: EAGAIN when non-blocking and empty, waits for a message when
 *     blocking (and leaves its bytes, STREAM), delivers the descriptors of a waiting message;
 *   - write(2) of nothing sends an empty SEQPACKET message, writev(2) of nothing sends none;
 *   - write(2) of nothing on a pass-through AF_UNIX SOCK_DGRAM socket sends an empty
 *     datagram (a reader waiting for it must not hang).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cmocka.h>

#include "shmsock.h"
#include "test_support.h"
#include "semantics_util.h"

enum {
    STEP_READ_EMPTY,
    STEP_READV_EMPTY,
    STEP_RECV_EMPTY,
    STEP_RECVMSG_EMPTY,
    STEP_RECV_BLOCKING,
    STEP_RECV_BLOCKING_WAITED,
    STEP_AFTER_BLOCKING,
    STEP_RECVMSG_RIGHTS,
    STEP_RECVMSG_RIGHTS_FDS,
    STEP_RECVMSG_RIGHTS_FLAGS,
    STEP_AFTER_RIGHTS,
    STEP_AFTER_RIGHTS_FDS,
    STEP_WRITE,
    STEP_AFTER_WRITE,
    STEP_WRITEV,
    STEP_AFTER_WRITEV,
    STEPS
};
static const char *const step_names[STEPS] = {
    "read(0) on an empty socket",
    "readv(no bytes) on an empty socket",
    "recv(0, MSG_DONTWAIT) on an empty socket",
    "recvmsg(no bytes, control room, MSG_DONTWAIT) on an empty socket",
    "blocking recv(0) while a message arrives later",
    "the blocking recv(0) waited for the message (1) or not (0)",
    "recv after the blocking recv(0)",
    "recvmsg(no bytes) of a message with a descriptor",
    "descriptors it received",
    "its MSG_TRUNC",
    "recvmsg of that message's bytes after it",
    "descriptors that one received",
    "write(0)",
    "recv after write(0)",
    "writev(no bytes)",
    "recv after writev(no bytes)",
};

static ssize_t outcome(ssize_t n)
{
    return n < 0 ? -errno : n;
}

static ssize_t kernel_results[2][SEM_MODES][STEPS]; /* [SEQPACKET][mode][step] */

/* Descriptors in a received control buffer (closed). */
static ssize_t count_fds(struct msghdr *m)
{
    ssize_t count = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c != NULL; c = CMSG_NXTHDR(m, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
            close(fd);
            count++;
        }
    }
    return count;
}

static void zero_length_body(const struct sock_api *api, int type, int mode)
{
    print_message("    [%s %s %s]\n", api->name, sem_type_name(type), sem_mode_names[mode]);
    ssize_t got[STEPS];
    int a, b;
    sem_pair_in_mode(api, type, mode, &a, &b);
    char buf[16];
    struct iovec none = {.iov_base = buf, .iov_len = 0};

    errno = 0;
    got[STEP_READ_EMPTY] = outcome(api->read(b, buf, 0));
    errno = 0;
    got[STEP_READV_EMPTY] = outcome(api->is_shm ? shm_readv(b, &none, 1) : readv(b, &none, 1));
    errno = 0;
    got[STEP_RECV_EMPTY] = outcome(api->recv(b, buf, 0, MSG_DONTWAIT));
    union {
        char bytes[CMSG_SPACE(4 * sizeof(int))];
        struct cmsghdr align;
    } control;
    struct msghdr m = {.msg_iov = &none,
                       .msg_iovlen = 1,
                       .msg_control = control.bytes,
                       .msg_controllen = sizeof(control)};
    errno = 0;
    got[STEP_RECVMSG_EMPTY] = outcome(api->recvmsg(b, &m, MSG_DONTWAIT));

    /* Blocking: the read of nothing waits for the message and (STREAM) leaves its bytes. */
    struct sem_late_sender late = {.api = api, .fd = a, .flags = 0};
    sem_late_start(&late);
    int64_t start = sem_now_ms();
    errno = 0;
    got[STEP_RECV_BLOCKING] = outcome(api->recv(b, buf, 0, 0));
    got[STEP_RECV_BLOCKING_WAITED] = sem_now_ms() - start >= 50;
    sem_late_join(&late);
    errno = 0;
    got[STEP_AFTER_BLOCKING] = outcome(api->recv(b, buf, sizeof(buf), MSG_DONTWAIT));

    /* A message with a descriptor: a read of nothing takes the descriptor. */
    int pipe_fds[2];
    assert_int_equal(pipe(pipe_fds), 0);
    union {
        char bytes[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } out_control;
    char fd_bytes[2] = {'f', 'd'};
    struct iovec payload = {.iov_base = fd_bytes, .iov_len = 2};
    struct msghdr out = {.msg_iov = &payload, .msg_iovlen = 1};
    test_attach_fds(&out, out_control.bytes, &pipe_fds[0], 1);
    assert_int_equal(api->sendmsg(a, &out, 0), 2);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    sem_sleep_ms(10);
    m = (struct msghdr){.msg_iov = &none,
                        .msg_iovlen = 1,
                        .msg_control = control.bytes,
                        .msg_controllen = sizeof(control)};
    errno = 0;
    got[STEP_RECVMSG_RIGHTS] = outcome(api->recvmsg(b, &m, MSG_DONTWAIT));
    got[STEP_RECVMSG_RIGHTS_FDS] = got[STEP_RECVMSG_RIGHTS] >= 0 ? count_fds(&m) : -1;
    got[STEP_RECVMSG_RIGHTS_FLAGS] = (m.msg_flags & MSG_TRUNC) != 0;
    struct iovec room = {.iov_base = buf, .iov_len = sizeof(buf)};
    m = (struct msghdr){.msg_iov = &room,
                        .msg_iovlen = 1,
                        .msg_control = control.bytes,
                        .msg_controllen = sizeof(control)};
    errno = 0;
    got[STEP_AFTER_RIGHTS] = outcome(api->recvmsg(b, &m, MSG_DONTWAIT));
    got[STEP_AFTER_RIGHTS_FDS] = got[STEP_AFTER_RIGHTS] >= 0 ? count_fds(&m) : -1;

    /* write(2) of nothing sends an empty SEQPACKET message; writev(2) of nothing sends none. */
    errno = 0;
    got[STEP_WRITE] = outcome(api->write(a, buf, 0));
    sem_sleep_ms(10);
    errno = 0;
    got[STEP_AFTER_WRITE] = outcome(api->recv(b, buf, sizeof(buf), MSG_DONTWAIT));
    errno = 0;
    got[STEP_WRITEV] = outcome(api->is_shm ? shm_writev(a, &none, 1) : writev(a, &none, 1));
    sem_sleep_ms(10);
    errno = 0;
    got[STEP_AFTER_WRITEV] = outcome(api->recv(b, buf, sizeof(buf), MSG_DONTWAIT));

    ssize_t *kernel = kernel_results[type == SOCK_SEQPACKET][mode];
    for (int k = 0; k < STEPS; k++) {
        if (!api->is_shm)
            kernel[k] = got[k];
        else if (got[k] != kernel[k])
            fail_msg("%s %s, %s: %zd (%s), the kernel's %zd (%s)", sem_type_name(type),
                     sem_mode_names[mode], step_names[k], got[k],
                     got[k] < 0 ? strerror((int)-got[k]) : "", kernel[k],
                     kernel[k] < 0 ? strerror((int)-kernel[k]) : "");
    }
    api->close(a);
    api->close(b);
}

static void test_zero_length_calls(void **state)
{
    (void)state;
    SEM_GUARD();
    for (int i = 0; i < 2; i++) {
        for (int mode = 0; mode < SEM_MODES; mode++) {
            zero_length_body(test_apis[i], SOCK_STREAM, mode);
            zero_length_body(test_apis[i], SOCK_SEQPACKET, mode);
        }
    }
}

/* write(2) of nothing on a pass-through AF_UNIX SOCK_DGRAM socket sends an empty datagram
 * (writev(2) of nothing sends none): a reader gets it at once. */
static void test_zero_length_datagram(void **state)
{
    (void)state;
    SEM_GUARD();
    ssize_t kernel[4] = {0};
    for (int i = 0; i < 2; i++) {
        const struct sock_api *api = test_apis[i];
        int sv[2];
        assert_int_equal(api->socketpair(AF_UNIX, SOCK_DGRAM, 0, sv), 0);
        char buf[4];
        struct iovec none = {.iov_base = buf, .iov_len = 0};
        ssize_t got[4];
        errno = 0;
        got[0] = outcome(api->write(sv[0], buf, 0));
        errno = 0;
        got[1] = outcome(api->recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT));
        errno = 0;
        got[2] = outcome(api->is_shm ? shm_writev(sv[0], &none, 1) : writev(sv[0], &none, 1));
        errno = 0;
        got[3] = outcome(api->recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT));
        for (int k = 0; k < 4; k++) {
            if (!api->is_shm)
                kernel[k] = got[k];
            else
                assert_int_equal(got[k], kernel[k]);
        }
        api->close(sv[0]);
        api->close(sv[1]);
    }
    assert_int_equal(kernel[1], 0); /* the kernel's empty datagram */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zero_length_calls),
        cmocka_unit_test(test_zero_length_datagram),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
