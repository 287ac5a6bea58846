/*
 * modes_test.c - a compact set of the kernel-vs-shm semantics (same steps on kernel sockets,
 * the reference, and on shm sockets) in the modes the *_semantics tests do not cover:
 * EVENT MODE (SHM_COALESCE=0 on both ends before the handshake), coalesced mode with
 * SHM_BUSY_POLL=50, and event mode with SHM_BUSY_POLL=50. After test_handshake the mode in
 * effect is checked (mode_util.h). Covered: short reads, SEQPACKET boundaries and MSG_TRUNC,
 * MSG_PEEK, MSG_WAITALL, EAGAIN, EOF, half-close, EPIPE and the SIGPIPE count, SCM_RIGHTS
 * with its message, SO_PASSCRED credentials with every message (from a forked sender).
 * Also the options: SHM_COALESCE / SHM_BUSY_POLL defaults, get/set, EINVAL for a negative
 * busy poll, EISCONN for SHM_COALESCE after the switch (busy poll stays settable), and
 * inheritance from a listener to accepted sockets (which then really run in that mode).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
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
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "shmsock.h"
#include "test_support.h"
#include "mode_util.h"

#define WATCHDOG 30

struct variant {
    const struct sock_api *api;
    const struct shm_mode *mode;
    int type;
};

static void make_pair(const struct variant *v, int *a, int *b)
{
    if (v->api->is_shm) {
        mu_pair(v->type, v->mode, true, true, a, b);
    } else {
        test_connect_pair(v->api, v->type, a, b);
        test_handshake(v->api, *a, *b);
    }
}

#define FOR_EACH(type_, body)                                                                      \
    do {                                                                                           \
        struct variant vs_[4] = {{&test_kernel_api, NULL, type_},                                  \
                                 {&test_shm_api, &MODE_EVENT, type_},                              \
                                 {&test_shm_api, &MODE_BUSY, type_},                               \
                                 {&test_shm_api, &MODE_EVENT_BUSY, type_}};                        \
        for (int v_ = 0; v_ < 4; v_++) {                                                           \
            print_message("    [%s %s %s]\n", vs_[v_].api->name,                                   \
                          vs_[v_].mode ? vs_[v_].mode->name : "", mu_type_name(type_));            \
            test_watchdog(WATCHDOG, #body);                                                        \
            body(&vs_[v_]);                                                                        \
            test_watchdog(0, NULL);                                                                \
        }                                                                                          \
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

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- STREAM ---- */

static void stream_body(const struct variant *v)
{
    const struct sock_api *api = v->api;
    int a, b;
    make_pair(v, &a, &b);
    char data[1000], got[1000];
    test_fill_pattern(data, sizeof(data), 1);
    /* short reads, no boundaries */
    assert_int_equal(api->send(a, data, 100, 0), 100);
    assert_int_equal(api->send(a, data + 100, 200, 0), 200);
    sleep_ms(5);
    assert_int_equal(api->recv(b, got, 30, 0), 30);
    assert_int_equal(api->recv(b, got + 30, 1000, 0), 270);
    assert_memory_equal(got, data, 300);
    /* a read with no room takes nothing: the rest of a partly read send comes next */
    assert_int_equal(api->send(a, data, 100, 0), 100);
    assert_int_equal(api->recv(b, got, 30, 0), 30);
    assert_int_equal(api->recv(b, got + 30, 0, MSG_DONTWAIT), 0);
    assert_int_equal(api->recv(b, got + 30, 1000, 0), 70);
    assert_memory_equal(got, data, 100);
    /* PEEK then read */
    assert_int_equal(api->send(a, data, 50, 0), 50);
    assert_int_equal(api->recv(b, got, 1000, MSG_PEEK), 50);
    assert_int_equal(api->recv(b, got, 20, MSG_PEEK), 20);
    assert_int_equal(api->recv(b, got, 1000, 0), 50);
    assert_memory_equal(got, data, 50);
    /* EAGAIN */
    EXPECT_ERR(api->recv(b, got, 10, MSG_DONTWAIT), EAGAIN);
    /* WAITALL across several sends from another process. The child alone sends on its own
     * pair's `wa`: a socket on shared memory is driven by one process after a fork (the
     * parent's later calls on `wa` would fail, see fork_share_test.c). */
    int wa, wb;
    make_pair(v, &wa, &wb);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        for (int i = 0; i < 4; i++) {
            sleep_ms(20);
            if (api->send(wa, data + 250 * i, 250, MSG_NOSIGNAL) != 250)
                _exit(1);
        }
        _exit(0);
    }
    assert_int_equal(api->recv(wb, got, 1000, MSG_WAITALL), 1000);
    assert_memory_equal(got, data, 1000);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    api->close(wa);
    api->close(wb);
    /* half-close: a shuts down writing; b reads the rest then 0; b -> a still works */
    assert_int_equal(api->send(a, data, 10, 0), 10);
    assert_int_equal(api->shutdown(a, SHUT_WR), 0);
    assert_int_equal(api->recv(b, got, 1000, 0), 10);
    assert_int_equal(api->recv(b, got, 1000, 0), 0);
    assert_int_equal(api->recv(b, got, 1000, MSG_DONTWAIT), 0);
    assert_int_equal(api->send(b, data, 77, 0), 77);
    assert_int_equal(api->recv(a, got, 1000, 0), 77);
    EXPECT_ERR(api->send(a, data, 1, MSG_NOSIGNAL), EPIPE);
    /* EOF and EPIPE: b closes; a reads what b sent first, then 0 */
    assert_int_equal(api->send(b, data, 33, 0), 33);
    assert_int_equal(api->close(b), 0);
    assert_int_equal(api->recv(a, got, 1000, 0), 33);
    assert_int_equal(api->recv(a, got, 1000, 0), 0);
    api->close(a);
    /* EPIPE and SIGPIPE after the peer closed, in a fresh pair */
    make_pair(v, &a, &b);
    assert_int_equal(api->close(b), 0);
    sleep_ms(10);
    signal(SIGPIPE, SIG_DFL);
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigprocmask(SIG_BLOCK, &set, &old);
    EXPECT_ERR(api->send(a, data, 10, 0), EPIPE);
    EXPECT_ERR(api->send(a, data, 10, MSG_NOSIGNAL), EPIPE);
    sigset_t pending;
    sigpending(&pending);
    int raised = sigismember(&pending, SIGPIPE);
    struct timespec zero = {0, 0};
    if (raised)
        sigtimedwait(&set, NULL, &zero);
    sigprocmask(SIG_SETMASK, &old, NULL);
    signal(SIGPIPE, SIG_IGN);
    assert_int_equal(raised, 1); /* STREAM: SIGPIPE for the send without MSG_NOSIGNAL */
    api->close(a);
}

static void test_stream(void **state)
{
    (void)state;
    FOR_EACH(SOCK_STREAM, stream_body);
}

/* ---- SEQPACKET ---- */

static void seqpacket_body(const struct variant *v)
{
    const struct sock_api *api = v->api;
    int a, b;
    make_pair(v, &a, &b);
    char data[100], got[100];
    test_fill_pattern(data, sizeof(data), 2);
    assert_int_equal(api->send(a, data, 10, 0), 10);
    assert_int_equal(api->send(a, data, 20, 0), 20);
    assert_int_equal(api->send(a, data, 0, 0), 0);
    assert_int_equal(api->send(a, data, 30, 0), 30);
    /* boundaries; truncation with msg_flags MSG_TRUNC; MSG_TRUNC flag gives real length */
    struct iovec iov = {got, 5};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    assert_int_equal(api->recvmsg(b, &m, 0), 5);
    assert_int_equal(m.msg_flags & MSG_TRUNC, MSG_TRUNC);
    assert_memory_equal(got, data, 5);
    assert_int_equal(api->recv(b, got, 5, MSG_PEEK | MSG_TRUNC), 20);
    assert_int_equal(api->recv(b, got, 5, MSG_TRUNC), 20);
    assert_int_equal(api->recv(b, got, 100, 0), 0); /* the empty message */
    assert_int_equal(api->recv(b, got, 100, MSG_PEEK), 30);
    assert_int_equal(api->recv(b, got, 100, 0), 30);
    assert_memory_equal(got, data, 30);
    EXPECT_ERR(api->recv(b, got, 100, MSG_DONTWAIT), EAGAIN);
    /* half-close */
    assert_int_equal(api->send(a, data, 7, 0), 7);
    assert_int_equal(api->shutdown(a, SHUT_WR), 0);
    assert_int_equal(api->recv(b, got, 100, 0), 7);
    assert_int_equal(api->recv(b, got, 100, 0), 0);
    assert_int_equal(api->send(b, data, 9, 0), 9);
    assert_int_equal(api->recv(a, got, 100, 0), 9);
    EXPECT_ERR(api->send(a, data, 1, MSG_NOSIGNAL), EPIPE);
    api->close(a);
    api->close(b);
    /* EOF, EPIPE, SIGPIPE count (compared with the kernel's below) */
    make_pair(v, &a, &b);
    assert_int_equal(api->send(b, data, 3, 0), 3);
    assert_int_equal(api->close(b), 0);
    assert_int_equal(api->recv(a, got, 100, 0), 3);
    assert_int_equal(api->recv(a, got, 100, 0), 0);
    sleep_ms(10);
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    signal(SIGPIPE, SIG_DFL);
    sigprocmask(SIG_BLOCK, &set, &old);
    EXPECT_ERR(api->send(a, data, 10, 0), EPIPE);
    sigset_t pending;
    sigpending(&pending);
    int raised = sigismember(&pending, SIGPIPE);
    struct timespec zero = {0, 0};
    if (raised)
        sigtimedwait(&set, NULL, &zero);
    sigprocmask(SIG_SETMASK, &old, NULL);
    signal(SIGPIPE, SIG_IGN);
    static int kernel_raised = -1;
    if (!api->is_shm)
        kernel_raised = raised;
    else
        assert_int_equal(raised, kernel_raised);
    api->close(a);
}

static void test_seqpacket(void **state)
{
    (void)state;
    FOR_EACH(SOCK_SEQPACKET, seqpacket_body);
}

/* ---- SCM_RIGHTS with its message ---- */

union cbuf {
    char buf[CMSG_SPACE(sizeof(int) * 4) + CMSG_SPACE(sizeof(struct ucred))];
    struct cmsghdr align;
};

static void rights_body(const struct variant *v)
{
    const struct sock_api *api = v->api;
    int a, b;
    make_pair(v, &a, &b);
    int p[2];
    assert_int_equal(pipe(p), 0);
    for (int i = 0; i < 3; i++) {
        char msg[16];
        memset(msg, 'a' + i, sizeof(msg));
        union cbuf c;
        struct iovec iov = {msg, sizeof(msg)};
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
        if (i == 1)
            test_attach_fds(&m, c.buf, &p[1], 1);
        assert_int_equal(api->sendmsg(a, &m, 0), 16);
    }
    for (int i = 0; i < 3; i++) {
        char msg[16];
        union cbuf c;
        memset(&c, 0, sizeof(c));
        struct iovec iov = {msg, sizeof(msg)};
        struct msghdr m = {.msg_iov = &iov,
                           .msg_iovlen = 1,
                           .msg_control = c.buf,
                           .msg_controllen = sizeof(c.buf)};
        assert_int_equal(api->recvmsg(b, &m, MSG_CMSG_CLOEXEC), 16);
        assert_int_equal(msg[0], 'a' + i);
        struct cmsghdr *h = CMSG_FIRSTHDR(&m);
        if (i != 1) {
            if (h != NULL)
                fail_msg("message %d carries control data it was not sent with", i);
            continue;
        }
        assert_non_null(h);
        assert_int_equal(h->cmsg_type, SCM_RIGHTS);
        assert_int_equal(h->cmsg_len, CMSG_LEN(sizeof(int)));
        int fd;
        memcpy(&fd, CMSG_DATA(h), sizeof(int));
        assert_int_equal(write(fd, "z", 1), 1);
        char z;
        assert_int_equal(read(p[0], &z, 1), 1);
        assert_int_equal(z, 'z');
        close(fd);
    }
    close(p[0]);
    close(p[1]);
    api->close(a);
    api->close(b);
}

static void test_scm_rights(void **state)
{
    (void)state;
    FOR_EACH(SOCK_STREAM, rights_body);
    FOR_EACH(SOCK_SEQPACKET, rights_body);
}

/* ---- SO_PASSCRED: credentials of the (forked) sender with every message ---- */

static void passcred_body(const struct variant *v)
{
    const struct sock_api *api = v->api;
    int a, b;
    make_pair(v, &a, &b);
    int on = 1;
    assert_int_equal(api->setsockopt(b, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)), 0);
    int go[2];
    assert_int_equal(pipe(go), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char c;
        if (read(go[0], &c, 1) != 1)
            _exit(2);
        for (int i = 0; i < 5; i++) {
            char msg[8];
            memset(msg, '0' + i, sizeof(msg));
            if (api->send(a, msg, sizeof(msg), MSG_NOSIGNAL) != 8)
                _exit(1);
            sleep_ms(2);
        }
        _exit(0);
    }
    assert_int_equal(write(go[1], "g", 1), 1);
    for (int i = 0; i < 5; i++) {
        char msg[8];
        union cbuf c;
        memset(&c, 0, sizeof(c));
        struct iovec iov = {msg, sizeof(msg)};
        struct msghdr m = {.msg_iov = &iov,
                           .msg_iovlen = 1,
                           .msg_control = c.buf,
                           .msg_controllen = sizeof(c.buf)};
        assert_int_equal(api->recvmsg(b, &m, 0), 8);
        assert_int_equal(msg[0], '0' + i);
        struct cmsghdr *h = CMSG_FIRSTHDR(&m);
        if (h == NULL || h->cmsg_type != SCM_CREDENTIALS)
            fail_msg("message %d arrived without SCM_CREDENTIALS", i);
        struct ucred u;
        memcpy(&u, CMSG_DATA(h), sizeof(u));
        if (u.pid != pid)
            fail_msg("message %d: credentials pid %d, expected the sender %d", i, (int)u.pid,
                     (int)pid);
        assert_int_equal(u.uid, getuid());
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    close(go[0]);
    close(go[1]);
    api->close(a);
    api->close(b);
}

static void test_passcred(void **state)
{
    (void)state;
    FOR_EACH(SOCK_STREAM, passcred_body);
    FOR_EACH(SOCK_SEQPACKET, passcred_body);
}

/* ---- the options ---- */

static void test_option_semantics(void **state)
{
    (void)state;
    test_watchdog(WATCHDOG, "options");
    for (int t = 0; t < 2; t++) {
        int type = t == 0 ? SOCK_STREAM : SOCK_SEQPACKET;
        int a, b;
        test_connect_pair(&test_shm_api, type, &a, &b);
        assert_int_equal(mu_get_int(a, SHM_COALESCE), 1);
        assert_int_equal(mu_get_int(a, SHM_BUSY_POLL), 0);
        int neg = -1;
        EXPECT_ERR(shm_setsockopt(a, SOL_SHMSOCK, SHM_BUSY_POLL, &neg, sizeof(neg)), EINVAL);
        assert_int_equal(mu_get_int(a, SHM_BUSY_POLL), 0);
        mu_set_int(a, SHM_BUSY_POLL, 50);
        assert_int_equal(mu_get_int(a, SHM_BUSY_POLL), 50);
        mu_set_int(a, SHM_COALESCE, 0);
        assert_int_equal(mu_get_int(a, SHM_COALESCE), 0);
        mu_set_int(a, SHM_COALESCE, 1);
        assert_int_equal(mu_get_int(a, SHM_COALESCE), 1);
        short tiny = 1;
        EXPECT_ERR(shm_setsockopt(a, SOL_SHMSOCK, SHM_COALESCE, &tiny, sizeof(tiny)), EINVAL);
        test_handshake(&test_shm_api, a, b);
        int zero = 0;
        EXPECT_ERR(shm_setsockopt(a, SOL_SHMSOCK, SHM_COALESCE, &zero, sizeof(zero)), EISCONN);
        EXPECT_ERR(shm_setsockopt(b, SOL_SHMSOCK, SHM_COALESCE, &zero, sizeof(zero)), EISCONN);
        assert_int_equal(mu_get_int(a, SHM_COALESCE), 1);
        mu_set_int(a, SHM_BUSY_POLL, 7); /* busy poll may change at any time */
        assert_int_equal(mu_get_int(a, SHM_BUSY_POLL), 7);
        EXPECT_ERR(shm_setsockopt(a, SOL_SHMSOCK, SHM_BUSY_POLL, &neg, sizeof(neg)), EINVAL);
        shm_close(a);
        shm_close(b);

        /* Inheritance: listener options -> accepted socket, which then runs in that mode. */
        struct sockaddr_un addr;
        socklen_t len = test_abstract_addr(&addr);
        int l = shm_socket(AF_UNIX, type, 0);
        assert_true(l >= 0);
        mu_set_int(l, SHM_COALESCE, 0);
        mu_set_int(l, SHM_BUSY_POLL, 50);
        assert_int_equal(shm_bind(l, (struct sockaddr *)&addr, len), 0);
        assert_int_equal(shm_listen(l, 4), 0);
        int c = shm_socket(AF_UNIX, type, 0);
        assert_true(c >= 0);
        mu_set_int(c, SHM_COALESCE, 0);
        assert_int_equal(shm_connect(c, (struct sockaddr *)&addr, len), 0);
        int s = shm_accept(l, NULL, NULL);
        assert_true(s >= 0);
        assert_int_equal(mu_get_int(s, SHM_COALESCE), 0);
        assert_int_equal(mu_get_int(s, SHM_BUSY_POLL), 50);
        test_handshake(&test_shm_api, c, s);
        mu_assert_mode_in_effect(s, c, type, 0); /* the accepted socket sends in event mode */
        mu_assert_mode_in_effect(c, s, type, 0);
        shm_close(s);
        shm_close(c);
        /* And the default listener gives coalesced sockets. */
        mu_set_int(l, SHM_COALESCE, 1);
        c = shm_socket(AF_UNIX, type, 0);
        assert_int_equal(shm_connect(c, (struct sockaddr *)&addr, len), 0);
        s = shm_accept(l, NULL, NULL);
        assert_int_equal(mu_get_int(s, SHM_COALESCE), 1);
        test_handshake(&test_shm_api, c, s);
        mu_assert_mode_in_effect(s, c, type, 1);
        shm_close(s);
        shm_close(c);
        shm_close(l);
    }
    /* Not a shm socket: ENOPROTOOPT. */
    int u = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    EXPECT_ERR(shm_setsockopt(u, SOL_SHMSOCK, SHM_COALESCE, &one, sizeof(one)), ENOPROTOOPT);
    close(u);
    test_watchdog(0, NULL);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_option_semantics), cmocka_unit_test(test_stream),
        cmocka_unit_test(test_seqpacket),        cmocka_unit_test(test_scm_rights),
        cmocka_unit_test(test_passcred),
    };
    if (getenv("SHMSOCK_TEST_FILTER") != NULL)
        cmocka_set_test_filter(getenv("SHMSOCK_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
