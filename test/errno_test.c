/*
 * errno_test.c - connection-level errors, kernel vs shm (same steps), STREAM and SEQPACKET:
 * ECONNREFUSED (bound but not listening: abstract and filesystem names; a stale socket file),
 * ENOENT (no such path), EADDRINUSE, EISCONN (connect twice; connect on an accepted socket;
 * also after the connection is on shared memory), ENOTCONN (send on an unconnected, a bound and
 * a listening socket; getpeername) and the kernel's recv error on unconnected sockets
 * (EINVAL on STREAM, ENOTCONN on SEQPACKET).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "shmsock.h"
#include "test_support.h"
#include "semantics_util.h"

#define FOR_EACH_TYPE(body)                                                                        \
    for (int i_ = 0; i_ < 2; i_++) {                                                               \
        body(test_apis[i_], SOCK_STREAM);                                                          \
        body(test_apis[i_], SOCK_SEQPACKET);                                                       \
    }

static char tmpdir[64];

static int setup_dir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/shmsock-errno-XXXXXX");
    return mkdtemp(tmpdir) != NULL ? 0 : -1;
}

static int teardown_dir(void **state)
{
    (void)state;
    return rmdir(tmpdir);
}

static socklen_t path_addr(struct sockaddr_un *a, const char *name)
{
    memset(a, 0, sizeof(*a));
    a->sun_family = AF_UNIX;
    int n = snprintf(a->sun_path, sizeof(a->sun_path), "%s/%s", tmpdir, name);
    assert_true(n > 0 && (size_t)n < sizeof(a->sun_path));
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n + 1);
}

static void refused_body(const struct sock_api *api, int type)
{
    struct sockaddr_un addr;
    sem_announce(api, type, false);
    /* Abstract name, bound, not listening. */
    socklen_t alen = test_abstract_addr(&addr);
    int s = api->socket(AF_UNIX, type, 0);
    assert_true(s >= 0);
    assert_int_equal(api->bind(s, (struct sockaddr *)&addr, alen), 0);
    int c = api->socket(AF_UNIX, type, 0);
    assert_true(c >= 0);
    SEM_EXPECT_ERR(api->connect(c, (struct sockaddr *)&addr, alen), ECONNREFUSED);
    api->close(c);
    api->close(s);
    /* The abstract name is gone with its socket: refused again. */
    c = api->socket(AF_UNIX, type, 0);
    SEM_EXPECT_ERR(api->connect(c, (struct sockaddr *)&addr, alen), ECONNREFUSED);
    api->close(c);

    /* Filesystem name, bound, not listening. */
    alen = path_addr(&addr, "refused");
    s = api->socket(AF_UNIX, type, 0);
    assert_int_equal(api->bind(s, (struct sockaddr *)&addr, alen), 0);
    c = api->socket(AF_UNIX, type, 0);
    SEM_EXPECT_ERR(api->connect(c, (struct sockaddr *)&addr, alen), ECONNREFUSED);
    api->close(c);
    /* Its socket closed, the file stays: still ECONNREFUSED. */
    api->close(s);
    c = api->socket(AF_UNIX, type, 0);
    SEM_EXPECT_ERR(api->connect(c, (struct sockaddr *)&addr, alen), ECONNREFUSED);
    /* No file at all: ENOENT; and the socket can still connect somewhere afterwards. */
    assert_int_equal(unlink(addr.sun_path), 0);
    SEM_EXPECT_ERR(api->connect(c, (struct sockaddr *)&addr, alen), ENOENT);
    alen = path_addr(&addr, "no-such-dir/x");
    SEM_EXPECT_ERR(api->connect(c, (struct sockaddr *)&addr, alen), ENOENT);
    struct sockaddr_un good;
    socklen_t glen = test_abstract_addr(&good);
    int l = api->socket(AF_UNIX, type, 0);
    assert_int_equal(api->bind(l, (struct sockaddr *)&good, glen), 0);
    assert_int_equal(api->listen(l, 1), 0);
    assert_int_equal(api->connect(c, (struct sockaddr *)&good, glen), 0);
    int srv = api->accept(l, NULL, NULL);
    assert_true(srv >= 0);
    test_handshake(api, c, srv);
    api->close(srv);
    api->close(l);
    api->close(c);
}

static void test_econnrefused_enoent(void **state)
{
    (void)state;
    SEM_GUARD();
    FOR_EACH_TYPE(refused_body);
}

static void addrinuse_body(const struct sock_api *api, int type)
{
    struct sockaddr_un addr;
    sem_announce(api, type, false);
    socklen_t alen = test_abstract_addr(&addr);
    int s1 = api->socket(AF_UNIX, type, 0), s2 = api->socket(AF_UNIX, type, 0);
    assert_true(s1 >= 0 && s2 >= 0);
    assert_int_equal(api->bind(s1, (struct sockaddr *)&addr, alen), 0);
    SEM_EXPECT_ERR(api->bind(s2, (struct sockaddr *)&addr, alen), EADDRINUSE);
    assert_int_equal(api->listen(s1, 1), 0);
    SEM_EXPECT_ERR(api->bind(s2, (struct sockaddr *)&addr, alen), EADDRINUSE);
    api->close(s1);
    /* An abstract name is free again once its socket is closed. */
    assert_int_equal(api->bind(s2, (struct sockaddr *)&addr, alen), 0);
    api->close(s2);

    alen = path_addr(&addr, "inuse");
    s1 = api->socket(AF_UNIX, type, 0);
    s2 = api->socket(AF_UNIX, type, 0);
    assert_int_equal(api->bind(s1, (struct sockaddr *)&addr, alen), 0);
    SEM_EXPECT_ERR(api->bind(s2, (struct sockaddr *)&addr, alen), EADDRINUSE);
    api->close(s1);
    /* A path stays taken while the file exists. */
    SEM_EXPECT_ERR(api->bind(s2, (struct sockaddr *)&addr, alen), EADDRINUSE);
    assert_int_equal(unlink(addr.sun_path), 0);
    assert_int_equal(api->bind(s2, (struct sockaddr *)&addr, alen), 0);
    api->close(s2);
    assert_int_equal(unlink(addr.sun_path), 0);
}

static void test_eaddrinuse(void **state)
{
    (void)state;
    SEM_GUARD();
    FOR_EACH_TYPE(addrinuse_body);
}

static void isconn_run(const struct sock_api *api, int type, bool shake)
{
    sem_announce(api, type, shake);
    struct sockaddr_un addr;
    socklen_t alen = test_abstract_addr(&addr);
    int l = api->socket(AF_UNIX, type, 0);
    assert_int_equal(api->bind(l, (struct sockaddr *)&addr, alen), 0);
    assert_int_equal(api->listen(l, 4), 0);
    int c = api->socket(AF_UNIX, type, 0);
    assert_int_equal(api->connect(c, (struct sockaddr *)&addr, alen), 0);
    int s = api->accept(l, NULL, NULL);
    assert_true(s >= 0);
    if (shake) {
        test_handshake(api, c, s);
        sem_assert_shm(api, c);
    }
    SEM_EXPECT_ERR(api->connect(c, (struct sockaddr *)&addr, alen), EISCONN);
    SEM_EXPECT_ERR(api->connect(s, (struct sockaddr *)&addr, alen), EISCONN);
    /* The failed connects changed nothing: the connection still carries data both ways. */
    char in[8];
    assert_int_equal(api->send(c, "abc", 3, 0), 3);
    assert_int_equal(api->recv(s, in, sizeof(in), 0), 3);
    assert_int_equal(api->send(s, "de", 2, 0), 2);
    assert_int_equal(api->recv(c, in, sizeof(in), 0), 2);
    sem_expect_empty(api, s);
    /* Nothing new is pending on the listener. */
    struct pollfd p = {.fd = l, .events = POLLIN};
    assert_int_equal(api->poll(&p, 1, 0), 0);
    if (shake) {
        sem_assert_shm(api, c);
        sem_assert_shm(api, s);
    }
    api->close(c);
    api->close(s);
    api->close(l);
}

static void isconn_body(const struct sock_api *api, int type)
{
    isconn_run(api, type, false);
    isconn_run(api, type, true);
}

static void test_eisconn(void **state)
{
    (void)state;
    SEM_GUARD();
    FOR_EACH_TYPE(isconn_body);
}

static volatile sig_atomic_t sigpipes;
static void on_sigpipe(int sig)
{
    (void)sig;
    sigpipes++;
}

/* One unconnected socket: send ENOTCONN (no SIGPIPE), recv EINVAL/ENOTCONN, getpeername ENOTCONN.
 */
static void check_unconnected(const struct sock_api *api, int type, int fd)
{
    char in[4];
    int recv_err = type == SOCK_STREAM ? EINVAL : ENOTCONN; /* what Linux AF_UNIX returns */
    sigpipes = 0;
    SEM_EXPECT_ERR(api->send(fd, "x", 1, 0), ENOTCONN);
    SEM_EXPECT_ERR(api->send(fd, "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT), ENOTCONN);
    SEM_EXPECT_ERR(api->write(fd, "x", 1), ENOTCONN);
    struct iovec iov = {(void *)"x", 1};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    SEM_EXPECT_ERR(api->sendmsg(fd, &m, 0), ENOTCONN);
    assert_int_equal(sigpipes, 0);
    SEM_EXPECT_ERR(api->recv(fd, in, sizeof(in), MSG_DONTWAIT), recv_err);
    SEM_EXPECT_ERR(api->recv(fd, in, sizeof(in), 0), recv_err);
    struct sockaddr_un peer;
    socklen_t pl = sizeof(peer);
    SEM_EXPECT_ERR(sem_getpeername(api, fd, (struct sockaddr *)&peer, &pl), ENOTCONN);
}

static void notconn_body(const struct sock_api *api, int type)
{
    sem_announce(api, type, false);
    struct sigaction sa = {.sa_handler = on_sigpipe}, old;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGPIPE, &sa, &old), 0);

    int s = api->socket(AF_UNIX, type, 0);
    assert_true(s >= 0);
    check_unconnected(api, type, s);
    struct sockaddr_un addr;
    socklen_t alen = test_abstract_addr(&addr);
    assert_int_equal(api->bind(s, (struct sockaddr *)&addr, alen), 0);
    check_unconnected(api, type, s);
    assert_int_equal(api->listen(s, 2), 0);
    check_unconnected(api, type, s);
    /* A connected socket's getpeername works (names the listener's address). */
    int c = api->socket(AF_UNIX, type, 0);
    assert_int_equal(api->connect(c, (struct sockaddr *)&addr, alen), 0);
    struct sockaddr_un peer;
    socklen_t pl = sizeof(peer);
    assert_int_equal(sem_getpeername(api, c, (struct sockaddr *)&peer, &pl), 0);
    assert_int_equal(pl, alen);
    assert_memory_equal(&peer, &addr, alen);
    api->close(c);
    api->close(s);
    assert_int_equal(sigaction(SIGPIPE, &old, NULL), 0);
}

static void test_enotconn(void **state)
{
    (void)state;
    SEM_GUARD();
    FOR_EACH_TYPE(notconn_body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_econnrefused_enoent),
        cmocka_unit_test(test_eaddrinuse),
        cmocka_unit_test(test_eisconn),
        cmocka_unit_test(test_enotconn),
    };
    int rc = cmocka_run_group_tests(tests, setup_dir, teardown_dir);
    test_watchdog(0, NULL);
    return rc;
}
