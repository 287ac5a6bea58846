/*
 * ancillary_test.c - ancillary data the application sends itself, kernel vs shm (same steps),
 * STREAM and SEQPACKET, before negotiation and after test_handshake() (shm: SHM_STATUS_SHM
 * asserted before and after, so the messages really go through shared memory):
 *   - SCM_RIGHTS: a pipe's write end arrives with exactly its message (not with the one before
 *     or after, which carry no control data; shmsock's own offers never show), and works;
 *     two descriptors in one message;
 *   - SCM_CREDENTIALS with SO_PASSCRED on the receiver, from a forked sender: explicit
 *     credentials arrive with their message; and, as the kernel does, every message carries the
 *     sender's credentials when the receiver has SO_PASSCRED.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "shmsock.h"
#include "test_support.h"
#include "semantics_util.h"

union cbuf {
    char buf[CMSG_SPACE(sizeof(int) * 8) + CMSG_SPACE(sizeof(struct ucred))];
    struct cmsghdr align;
};

/* Send `len` bytes with `nfds` descriptors (SCM_RIGHTS) if nfds > 0. */
static ssize_t send_fds(const struct sock_api *api, int fd, const char *data, size_t len,
                        const int *fds, int nfds)
{
    union cbuf c;
    struct iovec iov = {(void *)data, len};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds > 0) {
        memset(&c, 0, sizeof(c));
        m.msg_control = c.buf;
        m.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
        struct cmsghdr *h = CMSG_FIRSTHDR(&m);
        h->cmsg_level = SOL_SOCKET;
        h->cmsg_type = SCM_RIGHTS;
        h->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
        memcpy(CMSG_DATA(h), fds, sizeof(int) * (size_t)nfds);
    }
    return api->sendmsg(fd, &m, 0);
}

/*
 * recvmsg exactly `len` bytes (buffer of exactly len) with a control buffer; returns the
 * number of SCM_RIGHTS descriptors (stored in fds) and fails on any other control message.
 */
static int recv_fds(const struct sock_api *api, int fd, char *data, size_t len, int *fds)
{
    union cbuf c;
    memset(&c, 0, sizeof(c));
    struct iovec iov = {data, len};
    struct msghdr m = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.buf, .msg_controllen = sizeof(c.buf)};
    assert_int_equal(api->recvmsg(fd, &m, MSG_CMSG_CLOEXEC), (ssize_t)len);
    assert_int_equal(m.msg_flags & (MSG_CTRUNC | MSG_TRUNC), 0);
    int n = 0;
    for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h != NULL; h = CMSG_NXTHDR(&m, h)) {
        assert_int_equal(h->cmsg_level, SOL_SOCKET);
        assert_int_equal(h->cmsg_type, SCM_RIGHTS);
        int k = (int)((h->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        assert_true(k > 0 && n + k <= 8);
        memcpy(fds + n, CMSG_DATA(h), sizeof(int) * (size_t)k);
        n += k;
    }
    return n;
}

static void assert_same_file(int x, int y)
{
    struct stat sx, sy;
    assert_int_equal(fstat(x, &sx), 0);
    assert_int_equal(fstat(y, &sy), 0);
    assert_int_equal(sx.st_dev, sy.st_dev);
    assert_int_equal(sx.st_ino, sy.st_ino);
}

static void scm_rights_body(const struct sock_api *api, int type, bool shake)
{
    int a, b, p[2], got[8];
    char in[16];
    sem_announce(api, type, shake);
    sem_pair(api, type, shake, &a, &b);
    assert_int_equal(pipe(p), 0);

    /* A message before: no control data (and no shmsock offer) with it. */
    assert_int_equal(send_fds(api, a, "before", 6, NULL, 0), 6);
    assert_int_equal(recv_fds(api, b, in, 6, got), 0);
    assert_memory_equal(in, "before", 6);
    if (shake) {
        sem_assert_shm(api, a);
        sem_assert_shm(api, b);
    }

    /* The message with the pipe's write end. */
    assert_int_equal(send_fds(api, a, "with-fd", 7, &p[1], 1), 7);
    assert_int_equal(send_fds(api, a, "after", 5, NULL, 0), 5);
    assert_int_equal(recv_fds(api, b, in, 7, got), 1);
    assert_memory_equal(in, "with-fd", 7);
    int wfd = got[0];
    assert_true(wfd >= 0);
    assert_int_not_equal(wfd, p[1]);
    assert_same_file(wfd, p[1]);
    assert_int_equal(fcntl(wfd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC); /* MSG_CMSG_CLOEXEC */
    assert_int_equal(recv_fds(api, b, in, 5, got), 0);
    assert_memory_equal(in, "after", 5);
    /* The received descriptor works: what we write into it comes out of the pipe. */
    assert_int_equal(write(wfd, "xyz", 3), 3);
    assert_int_equal(read(p[0], in, sizeof(in)), 3);
    assert_memory_equal(in, "xyz", 3);
    assert_int_equal(close(wfd), 0);

    /* Two descriptors in one message, the other way round (b -> a). */
    int two[2] = {p[0], p[1]};
    assert_int_equal(send_fds(api, b, "two", 3, two, 2), 3);
    assert_int_equal(recv_fds(api, a, in, 3, got), 2);
    assert_memory_equal(in, "two", 3);
    assert_same_file(got[0], p[0]);
    assert_same_file(got[1], p[1]);
    assert_int_equal(write(got[1], "q", 1), 1);
    assert_int_equal(read(got[0], in, 1), 1);
    assert_int_equal(in[0], 'q');
    close(got[0]);
    close(got[1]);
    sem_expect_empty(api, a);
    sem_expect_empty(api, b);
    if (shake) {
        sem_assert_shm(api, a);
        sem_assert_shm(api, b);
    }
    close(p[0]);
    close(p[1]);
    api->close(a);
    api->close(b);
}

static void test_scm_rights_pipe_fd(void **state)
{
    (void)state;
    SEM_GUARD();
    SEM_FOR_EACH_VARIANT(scm_rights_body);
}

/* ---- SCM_CREDENTIALS -------------------------------------------------------------------- */

#define CHILD_CHECK(cond, code)                                                                    \
    do {                                                                                           \
        if (!(cond))                                                                               \
            _exit(code);                                                                           \
    } while (0)

/* recvmsg exactly len bytes; returns true and fills *cr if an SCM_CREDENTIALS came with it. */
static bool recv_creds(const struct sock_api *api, int fd, char *data, size_t len, struct ucred *cr)
{
    union cbuf c;
    memset(&c, 0, sizeof(c));
    struct iovec iov = {data, len};
    struct msghdr m = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.buf, .msg_controllen = sizeof(c.buf)};
    assert_int_equal(api->recvmsg(fd, &m, 0), (ssize_t)len);
    assert_int_equal(m.msg_flags & (MSG_CTRUNC | MSG_TRUNC), 0);
    bool found = false;
    for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h != NULL; h = CMSG_NXTHDR(&m, h)) {
        assert_int_equal(h->cmsg_level, SOL_SOCKET);
        assert_int_equal(h->cmsg_type, SCM_CREDENTIALS); /* no descriptors, no offers */
        assert_int_equal(h->cmsg_len, CMSG_LEN(sizeof(struct ucred)));
        memcpy(cr, CMSG_DATA(h), sizeof(*cr));
        found = true;
    }
    return found;
}

/*
 * The sender is a forked child holding the client end (the parent closes its copy). With
 * `explicit_creds`, the child's second message carries SCM_CREDENTIALS it built itself; the
 * receiver (SO_PASSCRED) gets the child's pid/uid/gid with each message.
 */
static void creds_run(const struct sock_api *api, int type, bool shake, bool explicit_creds)
{
    int a, b;
    sem_announce(api, type, shake);
    test_connect_pair(api, type, &a, &b);
    int one = 1;
    assert_int_equal(api->setsockopt(b, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)), 0);
    if (shake) {
        test_handshake(api, a, b);
        sem_assert_shm(api, a);
        sem_assert_shm(api, b);
    }
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        alarm(10);
        CHILD_CHECK(api->close(b) == 0, 2);
        if (shake && api->is_shm)
            CHILD_CHECK(test_shm_status(a) == SHM_STATUS_SHM, 3);
        CHILD_CHECK(api->send(a, "plain", 5, 0) == 5, 4);
        union cbuf c;
        memset(&c, 0, sizeof(c));
        struct iovec iov = {(void *)"cred", 4};
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
        if (explicit_creds) {
            m.msg_control = c.buf;
            m.msg_controllen = CMSG_SPACE(sizeof(struct ucred));
            struct cmsghdr *h = CMSG_FIRSTHDR(&m);
            h->cmsg_level = SOL_SOCKET;
            h->cmsg_type = SCM_CREDENTIALS;
            h->cmsg_len = CMSG_LEN(sizeof(struct ucred));
            struct ucred cr = {getpid(), getuid(), getgid()};
            memcpy(CMSG_DATA(h), &cr, sizeof(cr));
        }
        CHILD_CHECK(api->sendmsg(a, &m, 0) == 4, 5);
        if (shake && api->is_shm)
            CHILD_CHECK(test_shm_status(a) == SHM_STATUS_SHM, 6);
        char x;
        CHILD_CHECK(api->recv(a, &x, 1, 0) == 0, 7); /* until the parent closes */
        api->close(a);
        _exit(0);
    }
    assert_int_equal(api->close(a), 0);
    char in[16];
    struct ucred cr;
    memset(&cr, 0, sizeof(cr));
    if (explicit_creds) {
        /* The message without explicit credentials first (read, its creds not checked). */
        (void)recv_creds(api, b, in, 5, &cr);
        assert_memory_equal(in, "plain", 5);
        memset(&cr, 0, sizeof(cr));
        assert_true(recv_creds(api, b, in, 4, &cr));
        assert_memory_equal(in, "cred", 4);
    } else {
        assert_true(recv_creds(api, b, in, 5, &cr));
        assert_memory_equal(in, "plain", 5);
        assert_int_equal(cr.pid, child);
        memset(&cr, 0, sizeof(cr));
        assert_true(recv_creds(api, b, in, 4, &cr));
        assert_memory_equal(in, "cred", 4);
    }
    assert_int_equal(cr.pid, child);
    assert_int_equal(cr.uid, getuid());
    assert_int_equal(cr.gid, getgid());
    if (shake)
        sem_assert_shm(api, b);
    assert_int_equal(api->close(b), 0);
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void explicit_creds_body(const struct sock_api *api, int type, bool shake)
{
    creds_run(api, type, shake, true);
}

static void implicit_creds_body(const struct sock_api *api, int type, bool shake)
{
    creds_run(api, type, shake, false);
}

static void test_scm_credentials_explicit(void **state)
{
    (void)state;
    SEM_GUARD();
    SEM_FOR_EACH_VARIANT(explicit_creds_body);
}

static void test_so_passcred_every_message(void **state)
{
    (void)state;
    SEM_GUARD();
    SEM_FOR_EACH_VARIANT(implicit_creds_body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scm_rights_pipe_fd),
        cmocka_unit_test(test_scm_credentials_explicit),
        cmocka_unit_test(test_so_passcred_every_message),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    test_watchdog(0, NULL);
    return rc;
}
