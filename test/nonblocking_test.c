/*
 * nonblocking_test.c - MSG_DONTWAIT, O_NONBLOCK (set with fcntl, or SOCK_NONBLOCK at
 * socket/accept4/socketpair time) and EAGAIN, kernel vs shm (same steps), before negotiation
 * and after test_handshake(): empty receive queue, full send side (EAGAIN, POLLOUT off, then
 * on again once the peer has read), and a blocking socket blocking again after O_NONBLOCK is
 * cleared.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "shmsock.h"
#include "test_support.h"
#include "semantics_util.h"

/* MSG_DONTWAIT on an empty queue: EAGAIN (also recvmsg), and again after draining. */
static void dontwait_body(const struct sock_api *api, int type, bool shake)
{
    int a, b;
    char in[16];
    sem_announce(api, type, shake);
    sem_pair(api, type, shake, &a, &b);
    SEM_EXPECT_ERR(api->recv(b, in, sizeof(in), MSG_DONTWAIT), EAGAIN);
    SEM_EXPECT_ERR(api->recv(a, in, sizeof(in), MSG_DONTWAIT), EAGAIN);
    struct iovec iov = {in, sizeof(in)};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    SEM_EXPECT_ERR(api->recvmsg(b, &m, MSG_DONTWAIT), EAGAIN);
    assert_int_equal(api->send(a, "abc", 3, MSG_DONTWAIT), 3);
    assert_int_equal(api->recv(b, in, sizeof(in), MSG_DONTWAIT), 3);
    assert_memory_equal(in, "abc", 3);
    SEM_EXPECT_ERR(api->recv(b, in, sizeof(in), MSG_DONTWAIT), EAGAIN);
    SEM_EXPECT_ERR(api->recv(b, in, sizeof(in), MSG_DONTWAIT | MSG_PEEK), EAGAIN);
    if (shake) {
        sem_assert_shm(api, a);
        sem_assert_shm(api, b);
    }
    api->close(a);
    api->close(b);
}

static void test_dontwait_empty_eagain(void **state)
{
    (void)state;
    SEM_GUARD();
    SEM_FOR_EACH_VARIANT(dontwait_body);
}

/*
 * O_NONBLOCK with fcntl: F_GETFL shows it; recv without flags fails with EAGAIN; data still
 * flows; after clearing it, recv blocks again (shown with a 150 ms SO_RCVTIMEO: the call
 * takes about that long before EAGAIN).
 */
static void fcntl_body(const struct sock_api *api, int type, bool shake)
{
    int a, b;
    char in[16];
    sem_announce(api, type, shake);
    sem_pair(api, type, shake, &a, &b);
    int fl = api->fcntl(b, F_GETFL, 0);
    assert_true(fl >= 0);
    assert_int_equal(fl & O_NONBLOCK, 0);
    assert_int_equal(api->fcntl(b, F_SETFL, fl | O_NONBLOCK), 0);
    assert_int_equal(api->fcntl(b, F_GETFL, 0) & O_NONBLOCK, O_NONBLOCK);
    SEM_EXPECT_ERR(api->recv(b, in, sizeof(in), 0), EAGAIN);
    SEM_EXPECT_ERR(api->read(b, in, sizeof(in)), EAGAIN);
    assert_int_equal(api->send(a, "xy", 2, 0), 2);
    assert_int_equal(api->recv(b, in, sizeof(in), 0), 2);
    assert_memory_equal(in, "xy", 2);
    SEM_EXPECT_ERR(api->recv(b, in, sizeof(in), 0), EAGAIN);
    assert_int_equal(api->send(b, "back", 4, 0), 4);
    assert_int_equal(api->recv(a, in, sizeof(in), 0), 4);

    assert_int_equal(api->fcntl(b, F_SETFL, fl & ~O_NONBLOCK), 0);
    assert_int_equal(api->fcntl(b, F_GETFL, 0) & O_NONBLOCK, 0);
    sem_set_timeo(api, b, SO_RCVTIMEO, 150);
    int64_t t0 = sem_now_ms();
    SEM_EXPECT_ERR(api->recv(b, in, sizeof(in), 0), EAGAIN);
    int64_t dt = sem_now_ms() - t0;
    assert_in_range(dt, 120, 3000);
    if (shake) {
        sem_assert_shm(api, a);
        sem_assert_shm(api, b);
    }
    api->close(a);
    api->close(b);
}

static void test_fcntl_o_nonblock(void **state)
{
    (void)state;
    SEM_GUARD();
    SEM_FOR_EACH_VARIANT(fcntl_body);
}

/*
 * SOCK_NONBLOCK: a client from socket(type|SOCK_NONBLOCK) connects at once (AF_UNIX), a
 * listener with SOCK_NONBLOCK gives EAGAIN from accept while nobody connects, accept4 with
 * SOCK_NONBLOCK gives a non-blocking server end; both ends report O_NONBLOCK and EAGAIN.
 */
static void sock_nonblock_body(const struct sock_api *api, int type, bool shake)
{
    char in[16];
    sem_announce(api, type, shake);
    struct sockaddr_un addr;
    socklen_t alen = test_abstract_addr(&addr);
    int l = api->socket(AF_UNIX, type | SOCK_NONBLOCK, 0);
    assert_true(l >= 0);
    assert_int_equal(api->fcntl(l, F_GETFL, 0) & O_NONBLOCK, O_NONBLOCK);
    assert_int_equal(api->bind(l, (struct sockaddr *)&addr, alen), 0);
    assert_int_equal(api->listen(l, 4), 0);
    SEM_EXPECT_ERR(api->accept(l, NULL, NULL), EAGAIN);
    int a = api->socket(AF_UNIX, type | SOCK_NONBLOCK, 0);
    assert_true(a >= 0);
    assert_int_equal(api->connect(a, (struct sockaddr *)&addr, alen), 0);
    int b = api->accept4(l, NULL, NULL, SOCK_NONBLOCK);
    assert_true(b >= 0);
    assert_int_equal(api->close(l), 0);
    int so_type = 0;
    socklen_t sl = sizeof(so_type);
    assert_int_equal(api->getsockopt(a, SOL_SOCKET, SO_TYPE, &so_type, &sl), 0);
    assert_int_equal(so_type, type);
    assert_int_equal(api->fcntl(a, F_GETFL, 0) & O_NONBLOCK, O_NONBLOCK);
    assert_int_equal(api->fcntl(b, F_GETFL, 0) & O_NONBLOCK, O_NONBLOCK);
    SEM_EXPECT_ERR(api->recv(a, in, sizeof(in), 0), EAGAIN);
    SEM_EXPECT_ERR(api->recv(b, in, sizeof(in), 0), EAGAIN);
    if (shake) {
        test_handshake(api, a, b);
        sem_assert_shm(api, a);
        sem_assert_shm(api, b);
        SEM_EXPECT_ERR(api->recv(a, in, sizeof(in), 0), EAGAIN);
        SEM_EXPECT_ERR(api->recv(b, in, sizeof(in), 0), EAGAIN);
    }
    assert_int_equal(api->send(a, "q", 1, 0), 1);
    assert_int_equal(api->recv(b, in, sizeof(in), 0), 1);
    SEM_EXPECT_ERR(api->recv(b, in, sizeof(in), 0), EAGAIN);
    api->close(a);
    api->close(b);

    /* socketpair(type | SOCK_NONBLOCK) */
    int sv[2];
    assert_int_equal(api->socketpair(AF_UNIX, type | SOCK_NONBLOCK, 0, sv), 0);
    assert_int_equal(api->fcntl(sv[0], F_GETFL, 0) & O_NONBLOCK, O_NONBLOCK);
    assert_int_equal(api->fcntl(sv[1], F_GETFL, 0) & O_NONBLOCK, O_NONBLOCK);
    SEM_EXPECT_ERR(api->recv(sv[0], in, sizeof(in), 0), EAGAIN);
    if (shake) {
        test_handshake(api, sv[0], sv[1]);
        SEM_EXPECT_ERR(api->recv(sv[1], in, sizeof(in), 0), EAGAIN);
    }
    api->close(sv[0]);
    api->close(sv[1]);
}

static void test_sock_nonblock(void **state)
{
    (void)state;
    SEM_GUARD();
    SEM_FOR_EACH_VARIANT(sock_nonblock_body);
}

/*
 * Full send side: MSG_DONTWAIT sends until EAGAIN; then poll reports no POLLOUT; the peer
 * reads exactly what was sent (bytes / messages, in order, then EAGAIN); then poll reports
 * POLLOUT again within 2 s and a send succeeds. Also the O_NONBLOCK flavour (send without
 * flags on a non-blocking socket) ends in EAGAIN.
 */
static void full_body(const struct sock_api *api, int type, bool shake)
{
    enum { CAP = 8 * 1024 * 1024 };
    int a, b;
    sem_announce(api, type, shake);
    sem_pair(api, type, shake, &a, &b);
    char *out = malloc(CAP), *in = malloc(CAP);
    assert_non_null(out);
    assert_non_null(in);
    test_fill_pattern(out, CAP, 31);
    size_t chunk = type == SOCK_STREAM ? 4096 : 1000;
    size_t msgs = 0;
    size_t total = sem_fill(api, a, out, CAP, chunk, &msgs);
    SEM_EXPECT_ERR(api->send(a, out + total, chunk, MSG_DONTWAIT), EAGAIN);
    struct pollfd p = {.fd = a, .events = POLLOUT};
    assert_int_equal(api->poll(&p, 1, 0), 0);

    /* Non-blocking via O_NONBLOCK: same EAGAIN with flags 0. */
    int fl = api->fcntl(a, F_GETFL, 0);
    assert_int_equal(api->fcntl(a, F_SETFL, fl | O_NONBLOCK), 0);
    SEM_EXPECT_ERR(api->send(a, out + total, chunk, 0), EAGAIN);
    assert_int_equal(api->fcntl(a, F_SETFL, fl), 0);

    if (type == SOCK_STREAM) {
        test_recv_all(api, b, in, total);
        assert_memory_equal(in, out, total);
    } else {
        for (size_t i = 0; i < msgs; i++) {
            assert_int_equal(api->recv(b, in, chunk + 10, 0), (ssize_t)chunk);
            assert_memory_equal(in, out + i * chunk, chunk);
        }
    }
    sem_expect_empty(api, b);
    p.revents = 0;
    assert_int_equal(api->poll(&p, 1, 2000), 1);
    assert_true(p.revents & POLLOUT);
    assert_int_equal(api->send(a, out, chunk, MSG_DONTWAIT), (ssize_t)chunk);
    assert_int_equal(api->recv(b, in, chunk + 10, 0), (ssize_t)chunk);
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

static void test_full_send_eagain_then_pollout(void **state)
{
    (void)state;
    SEM_GUARD();
    SEM_FOR_EACH_VARIANT(full_body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dontwait_empty_eagain),
        cmocka_unit_test(test_fcntl_o_nonblock),
        cmocka_unit_test(test_sock_nonblock),
        cmocka_unit_test(test_full_send_eagain_then_pollout),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    test_watchdog(0, NULL);
    return rc;
}
