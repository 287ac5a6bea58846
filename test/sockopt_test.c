/*
 * sockopt_test.c - socket options, kernel vs shm (same steps), STREAM and SEQPACKET, before
 * negotiation and after test_handshake(): SO_TYPE, SO_ERROR (0 on a healthy connection;
 * ECONNRESET once after the peer closed with data unread), SO_PEERCRED (pid/uid/gid of a
 * forked peer), SO_RCVTIMEO (blocking recv times out with EAGAIN after about the timeout; data
 * arriving in time is returned) and SO_SNDTIMEO (a sender blocked on a full connection times out
 * with EAGAIN).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "shmsock.h"
#include "test_support.h"
#include "semantics_util.h"

static int get_int(const struct sock_api *api, int fd, int opt)
{
    int v = -12345;
    socklen_t l = sizeof(v);
    assert_int_equal(api->getsockopt(fd, SOL_SOCKET, opt, &v, &l), 0);
    assert_int_equal(l, sizeof(int));
    return v;
}

static void so_type_body(const struct sock_api *api, int type, bool shake)
{
    int a, b;
    sem_announce(api, type, shake);
    sem_pair(api, type, shake, &a, &b);
    assert_int_equal(get_int(api, a, SO_TYPE), type);
    assert_int_equal(get_int(api, b, SO_TYPE), type);
    int s = api->socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(s >= 0);
    assert_int_equal(get_int(api, s, SO_TYPE), type);
    api->close(s);
    int sv[2];
    assert_int_equal(api->socketpair(AF_UNIX, type, 0, sv), 0);
    if (shake)
        test_handshake(api, sv[0], sv[1]);
    assert_int_equal(get_int(api, sv[0], SO_TYPE), type);
    assert_int_equal(get_int(api, sv[1], SO_TYPE), type);
    api->close(sv[0]);
    api->close(sv[1]);
    api->close(a);
    api->close(b);
}

static void test_so_type(void **state)
{
    (void)state;
    SEM_GUARD();
    SEM_FOR_EACH_VARIANT(so_type_body);
}

/*
 * SO_ERROR: 0 on a healthy connection. a sends to b, b closes without reading: a's SO_ERROR
 * is ECONNRESET once (reading it clears it: then 0), and recv on a returns 0 (end).
 * Second half: same situation, without reading SO_ERROR: recv fails once with ECONNRESET,
 * then returns 0.
 */
static void so_error_body(const struct sock_api *api, int type, bool shake)
{
    int a, b;
    char buf[4096];
    sem_announce(api, type, shake);
    sem_pair(api, type, shake, &a, &b);
    assert_int_equal(get_int(api, a, SO_ERROR), 0);
    assert_int_equal(get_int(api, b, SO_ERROR), 0);
    test_fill_pattern(buf, sizeof(buf), 41);
    assert_int_equal(api->send(a, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
    assert_int_equal(get_int(api, a, SO_ERROR), 0);
    assert_int_equal(api->close(b), 0);
    assert_int_equal(get_int(api, a, SO_ERROR), ECONNRESET);
    assert_int_equal(get_int(api, a, SO_ERROR), 0);
    assert_int_equal(api->recv(a, buf, sizeof(buf), 0), 0);
    api->close(a);

    sem_pair(api, type, shake, &a, &b);
    assert_int_equal(api->send(a, buf, 100, 0), 100);
    assert_int_equal(api->close(b), 0);
    SEM_EXPECT_ERR(api->recv(a, buf, sizeof(buf), 0), ECONNRESET);
    assert_int_equal(api->recv(a, buf, sizeof(buf), 0), 0);
    api->close(a);
}

static void test_so_error(void **state)
{
    (void)state;
    SEM_GUARD();
    SEM_FOR_EACH_VARIANT(so_error_body);
}

/* Child process helpers: no cmocka asserts in a child, exit codes instead. */
#define CHILD_CHECK(cond, code)                                                                    \
    do {                                                                                           \
        if (!(cond))                                                                               \
            _exit(code);                                                                           \
    } while (0)

static void child_handshake(const struct sock_api *api, int fd, bool first)
{
    /* The peer side of test_handshake() across processes: 4 one-byte exchanges. */
    char c = 'h';
    for (int i = 0; i < 2; i++) {
        if (first) {
            CHILD_CHECK(api->send(fd, &c, 1, 0) == 1, 20);
            CHILD_CHECK(api->recv(fd, &c, 1, 0) == 1, 21);
        } else {
            CHILD_CHECK(api->recv(fd, &c, 1, 0) == 1, 22);
            CHILD_CHECK(api->send(fd, &c, 1, 0) == 1, 23);
        }
    }
}

static void parent_handshake(const struct sock_api *api, int fd)
{
    char c = 'h';
    for (int i = 0; i < 2; i++) {
        assert_int_equal(api->recv(fd, &c, 1, 0), 1);
        assert_int_equal(api->send(fd, &c, 1, 0), 1);
    }
}

/*
 * SO_PEERCRED: a forked child connects; the accepted socket reports the child's pid, our uid
 * and gid; the child's socket reports the parent's pid. Unchanged after a handshake.
 */
static void peercred_body(const struct sock_api *api, int type, bool shake)
{
    sem_announce(api, type, shake);
    struct sockaddr_un addr;
    socklen_t alen = test_abstract_addr(&addr);
    int l = api->socket(AF_UNIX, type, 0);
    assert_int_equal(api->bind(l, (struct sockaddr *)&addr, alen), 0);
    assert_int_equal(api->listen(l, 1), 0);
    pid_t parent = getpid();
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        alarm(10);
        int c = api->socket(AF_UNIX, type, 0);
        CHILD_CHECK(c >= 0, 2);
        CHILD_CHECK(api->connect(c, (struct sockaddr *)&addr, alen) == 0, 3);
        if (shake) {
            child_handshake(api, c, true);
            if (api->is_shm)
                CHILD_CHECK(test_shm_status(c) == SHM_STATUS_SHM, 4);
        }
        struct ucred cr;
        socklen_t cl = sizeof(cr);
        CHILD_CHECK(api->getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0, 5);
        CHILD_CHECK(cl == sizeof(cr), 6);
        CHILD_CHECK(cr.pid == parent && cr.uid == getuid() && cr.gid == getgid(), 7);
        char x;
        CHILD_CHECK(api->send(c, "k", 1, 0) == 1, 8);
        CHILD_CHECK(api->recv(c, &x, 1, 0) == 0, 9); /* wait for the parent to close */
        api->close(c);
        _exit(0);
    }
    int s = api->accept(l, NULL, NULL);
    assert_true(s >= 0);
    if (shake) {
        parent_handshake(api, s);
        sem_assert_shm(api, s);
    }
    struct ucred cr;
    socklen_t cl = sizeof(cr);
    memset(&cr, 0, sizeof(cr));
    assert_int_equal(api->getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cr, &cl), 0);
    assert_int_equal(cl, sizeof(cr));
    assert_int_equal(cr.pid, child);
    assert_int_equal(cr.uid, getuid());
    assert_int_equal(cr.gid, getgid());
    char x;
    assert_int_equal(api->recv(s, &x, 1, 0), 1);
    api->close(s);
    api->close(l);
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    /* socketpair: both ends name this process. */
    int sv[2];
    assert_int_equal(api->socketpair(AF_UNIX, type, 0, sv), 0);
    cl = sizeof(cr);
    assert_int_equal(api->getsockopt(sv[0], SOL_SOCKET, SO_PEERCRED, &cr, &cl), 0);
    assert_int_equal(cr.pid, getpid());
    api->close(sv[0]);
    api->close(sv[1]);
}

static void test_so_peercred(void **state)
{
    (void)state;
    SEM_GUARD();
    SEM_FOR_EACH_VARIANT(peercred_body);
}

/* SO_RCVTIMEO = 100 ms: a blocking recv on an empty connection returns EAGAIN after ~100 ms. */
static void rcvtimeo_body(const struct sock_api *api, int type, bool shake)
{
    int a, b;
    char in[16];
    sem_announce(api, type, shake);
    sem_pair(api, type, shake, &a, &b);
    sem_set_timeo(api, b, SO_RCVTIMEO, 100);
    struct timeval tv = {0, 0};
    socklen_t tl = sizeof(tv);
    assert_int_equal(api->getsockopt(b, SOL_SOCKET, SO_RCVTIMEO, &tv, &tl), 0);
    assert_int_equal(tv.tv_sec, 0);
    assert_in_range(tv.tv_usec, 96000, 104000); /* kernel rounds to jiffies */
    int64_t t0 = sem_now_ms();
    SEM_EXPECT_ERR(api->recv(b, in, sizeof(in), 0), EAGAIN);
    int64_t dt = sem_now_ms() - t0;
    assert_in_range(dt, 85, 3000);
    /* recvmsg and read honour it too. */
    struct iovec iov = {in, sizeof(in)};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    t0 = sem_now_ms();
    SEM_EXPECT_ERR(api->recvmsg(b, &m, 0), EAGAIN);
    assert_in_range(sem_now_ms() - t0, 85, 3000);
    t0 = sem_now_ms();
    SEM_EXPECT_ERR(api->read(b, in, sizeof(in)), EAGAIN);
    assert_in_range(sem_now_ms() - t0, 85, 3000);
    /* Data that is there is returned at once; the connection is fine after timeouts. */
    assert_int_equal(api->send(a, "late", 4, 0), 4);
    t0 = sem_now_ms();
    assert_int_equal(api->recv(b, in, sizeof(in), 0), 4);
    assert_in_range(sem_now_ms() - t0, 0, 80);
    assert_memory_equal(in, "late", 4);
    if (shake) {
        sem_assert_shm(api, a);
        sem_assert_shm(api, b);
    }
    api->close(a);
    api->close(b);
}

static void test_so_rcvtimeo(void **state)
{
    (void)state;
    SEM_GUARD();
    SEM_FOR_EACH_VARIANT(rcvtimeo_body);
}

struct delayed_send {
    const struct sock_api *api;
    int fd;
    long delay_ms;
    int rc;
};

static void *delayed_send_thread(void *p)
{
    struct delayed_send *d = p;
    sem_sleep_ms(d->delay_ms);
    d->rc = (int)d->api->send(d->fd, "in-time", 7, MSG_NOSIGNAL);
    return NULL;
}

/* SO_RCVTIMEO = 2 s and data sent after 100 ms: recv returns it (after ~100 ms, not 2 s). */
static void rcvtimeo_data_body(const struct sock_api *api, int type, bool shake)
{
    int a, b;
    char in[16];
    sem_announce(api, type, shake);
    sem_pair(api, type, shake, &a, &b);
    sem_set_timeo(api, b, SO_RCVTIMEO, 2000);
    struct delayed_send d = {api, a, 100, -2};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, delayed_send_thread, &d), 0);
    int64_t t0 = sem_now_ms();
    ssize_t n = api->recv(b, in, sizeof(in), 0);
    int64_t dt = sem_now_ms() - t0;
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(d.rc, 7);
    assert_int_equal(n, 7);
    assert_memory_equal(in, "in-time", 7);
    assert_in_range(dt, 50, 1500);
    api->close(a);
    api->close(b);
}

static void test_so_rcvtimeo_data_in_time(void **state)
{
    (void)state;
    SEM_GUARD();
    SEM_FOR_EACH_VARIANT(rcvtimeo_data_body);
}

/*
 * SO_SNDTIMEO = 100 ms: fill the connection (the peer does not read) until EAGAIN with
 * MSG_DONTWAIT; a blocking send then fails with EAGAIN after ~100 ms, nothing sent; after the
 * peer drains, a blocking send succeeds.
 */
static void sndtimeo_body(const struct sock_api *api, int type, bool shake)
{
    enum { CAP = 8 * 1024 * 1024 };
    int a, b;
    sem_announce(api, type, shake);
    sem_pair(api, type, shake, &a, &b);
    char *out = malloc(CAP), *in = malloc(CAP);
    assert_non_null(out);
    assert_non_null(in);
    test_fill_pattern(out, CAP, 42);
    sem_set_timeo(api, a, SO_SNDTIMEO, 100);
    size_t chunk = type == SOCK_STREAM ? 4096 : 1000, msgs = 0;
    size_t total = sem_fill(api, a, out, CAP, chunk, &msgs);
    int64_t t0 = sem_now_ms();
    SEM_EXPECT_ERR(api->send(a, out + total, chunk, MSG_NOSIGNAL), EAGAIN);
    int64_t dt = sem_now_ms() - t0;
    assert_in_range(dt, 85, 3000);
    t0 = sem_now_ms();
    SEM_EXPECT_ERR(api->write(a, out + total, chunk), EAGAIN);
    assert_in_range(sem_now_ms() - t0, 85, 3000);
    /* Nothing of the timed-out sends arrived: exactly the filled bytes/messages. */
    if (type == SOCK_STREAM) {
        test_recv_all(api, b, in, total);
        assert_memory_equal(in, out, total);
    } else {
        for (size_t i = 0; i < msgs; i++)
            assert_int_equal(api->recv(b, in, chunk + 1, 0), (ssize_t)chunk);
    }
    sem_expect_empty(api, b);
    assert_int_equal(api->send(a, out, chunk, 0), (ssize_t)chunk);
    assert_int_equal(api->recv(b, in, chunk, 0), (ssize_t)chunk);
    assert_memory_equal(in, out, chunk);
    if (shake) {
        sem_assert_shm(api, a);
        sem_assert_shm(api, b);
    }
    api->close(a);
    api->close(b);
    free(out);
    free(in);
}

static void test_so_sndtimeo(void **state)
{
    (void)state;
    SEM_GUARD();
    SEM_FOR_EACH_VARIANT(sndtimeo_body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_so_type),
        cmocka_unit_test(test_so_error),
        cmocka_unit_test(test_so_peercred),
        cmocka_unit_test(test_so_rcvtimeo),
        cmocka_unit_test(test_so_rcvtimeo_data_in_time),
        cmocka_unit_test(test_so_sndtimeo),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    test_watchdog(0, NULL);
    return rc;
}
