/*
 * signal_test.c - signals, kernel vs shm (same steps), STREAM and SEQPACKET, before
 * negotiation and after test_handshake():
 *   - EINTR: a blocking recv (and a blocking send on a full connection, and accept) interrupted
 *     by a signal whose handler was installed WITHOUT SA_RESTART returns -1 EINTR; the
 *     connection keeps working;
 *   - SA_RESTART: the same recv interrupted by a handler WITH SA_RESTART is restarted and
 *     returns the data sent afterwards (as the kernel's recv);
 *   - SIGPIPE/EPIPE: send to a closed peer fails with EPIPE and raises SIGPIPE (counted by a
 *     handler) on STREAM unless MSG_NOSIGNAL; Linux raises no SIGPIPE for SEQPACKET.
 * The interrupting signal is SIGUSR1, sent with pthread_kill by a helper thread after 100 ms.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
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

static volatile sig_atomic_t usr1_count, pipe_count;

static void on_usr1(int sig)
{
    (void)sig;
    usr1_count++;
}

static void on_sigpipe(int sig)
{
    (void)sig;
    pipe_count++;
}

static void install(int sig, void (*fn)(int), int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = fn;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(sig, &sa, NULL), 0);
}

struct kicker {
    pthread_t target;
    long delay_ms;
    /* optional: send after the signal */
    const struct sock_api *api;
    int fd;
    long send_after_ms;
    int send_rc;
};

static void *kicker_thread(void *p)
{
    struct kicker *k = p;
    sem_sleep_ms(k->delay_ms);
    pthread_kill(k->target, SIGUSR1);
    if (k->api != NULL) {
        sem_sleep_ms(k->send_after_ms);
        k->send_rc = (int)k->api->send(k->fd, "after", 5, MSG_NOSIGNAL);
    }
    return NULL;
}

static void start_kicker(pthread_t *th, struct kicker *k)
{
    k->target = pthread_self();
    assert_int_equal(pthread_create(th, NULL, kicker_thread, k), 0);
}

/* recv blocked on an empty connection, SIGUSR1 without SA_RESTART: -1 EINTR. */
static void eintr_recv_body(const struct sock_api *api, int type, bool shake)
{
    int a, b;
    char in[16];
    sem_announce(api, type, shake);
    sem_pair(api, type, shake, &a, &b);
    install(SIGUSR1, on_usr1, 0);
    usr1_count = 0;
    struct kicker k = {.delay_ms = 100};
    pthread_t th;
    /* The clock starts before the kicker's own 100 ms do: a busy machine may run the kicker
     * long before this thread reaches recv, but never fire it before 100 ms from here. */
    int64_t t0 = sem_now_ms();
    start_kicker(&th, &k);
    SEM_EXPECT_ERR(api->recv(b, in, sizeof(in), 0), EINTR);
    int64_t dt = sem_now_ms() - t0;
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(usr1_count, 1);
    assert_in_range(dt, 95, 5000);
    /* recvmsg too. */
    start_kicker(&th, &k);
    struct iovec iov = {in, sizeof(in)};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    SEM_EXPECT_ERR(api->recvmsg(b, &m, 0), EINTR);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(usr1_count, 2);
    /* Nothing was lost or broken. */
    assert_int_equal(api->send(a, "ok", 2, 0), 2);
    assert_int_equal(api->recv(b, in, sizeof(in), 0), 2);
    assert_memory_equal(in, "ok", 2);
    if (shake) {
        sem_assert_shm(api, a);
        sem_assert_shm(api, b);
    }
    api->close(a);
    api->close(b);
}

static void test_eintr_recv(void **state)
{
    (void)state;
    SEM_GUARD();
    SEM_FOR_EACH_VARIANT(eintr_recv_body);
}

/* send blocked on a full connection, SIGUSR1 without SA_RESTART: -1 EINTR, nothing sent. */
static void eintr_send_body(const struct sock_api *api, int type, bool shake)
{
    enum { CAP = 8 * 1024 * 1024 };
    int a, b;
    sem_announce(api, type, shake);
    sem_pair(api, type, shake, &a, &b);
    char *out = malloc(CAP), *in = malloc(CAP);
    assert_non_null(out);
    assert_non_null(in);
    test_fill_pattern(out, CAP, 51);
    size_t chunk = type == SOCK_STREAM ? 4096 : 1000, msgs = 0;
    size_t total = sem_fill(api, a, out, CAP, chunk, &msgs);
    install(SIGUSR1, on_usr1, 0);
    usr1_count = 0;
    struct kicker k = {.delay_ms = 100};
    pthread_t th;
    start_kicker(&th, &k);
    SEM_EXPECT_ERR(api->send(a, out + total, chunk, MSG_NOSIGNAL), EINTR);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(usr1_count, 1);
    if (type == SOCK_STREAM) {
        test_recv_all(api, b, in, total);
        assert_memory_equal(in, out, total);
    } else {
        for (size_t i = 0; i < msgs; i++)
            assert_int_equal(api->recv(b, in, chunk + 1, 0), (ssize_t)chunk);
    }
    sem_expect_empty(api, b);
    if (shake) {
        sem_assert_shm(api, a);
        sem_assert_shm(api, b);
    }
    api->close(a);
    api->close(b);
    free(out);
    free(in);
}

static void test_eintr_send(void **state)
{
    (void)state;
    SEM_GUARD();
    SEM_FOR_EACH_VARIANT(eintr_send_body);
}

static void eintr_accept_body(const struct sock_api *api, int type, bool shake)
{
    (void)shake;
    sem_announce(api, type, false);
    struct sockaddr_un addr;
    socklen_t alen = test_abstract_addr(&addr);
    int l = api->socket(AF_UNIX, type, 0);
    assert_int_equal(api->bind(l, (struct sockaddr *)&addr, alen), 0);
    assert_int_equal(api->listen(l, 1), 0);
    install(SIGUSR1, on_usr1, 0);
    usr1_count = 0;
    struct kicker k = {.delay_ms = 100};
    pthread_t th;
    start_kicker(&th, &k);
    SEM_EXPECT_ERR(api->accept(l, NULL, NULL), EINTR);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(usr1_count, 1);
    api->close(l);
}

static void test_eintr_accept(void **state)
{
    (void)state;
    SEM_GUARD();
    for (int i = 0; i < 2; i++) {
        eintr_accept_body(test_apis[i], SOCK_STREAM, false);
        eintr_accept_body(test_apis[i], SOCK_SEQPACKET, false);
    }
}

/*
 * With SA_RESTART the kernel restarts the interrupted recv (no SO_RCVTIMEO is set): the
 * signal at 100 ms is handled, the data sent at 200 ms is what recv returns.
 */
static void restart_body(const struct sock_api *api, int type, bool shake)
{
    int a, b;
    char in[16];
    sem_announce(api, type, shake);
    sem_pair(api, type, shake, &a, &b);
    install(SIGUSR1, on_usr1, SA_RESTART);
    usr1_count = 0;
    struct kicker k = {.delay_ms = 100, .api = api, .fd = a, .send_after_ms = 100};
    pthread_t th;
    start_kicker(&th, &k);
    ssize_t n = api->recv(b, in, sizeof(in), 0);
    int err = errno;
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(usr1_count, 1);
    if (n != 5)
        fail_msg("recv with SA_RESTART handler: expected 5 bytes, got %zd errno %d (%s)", n, err,
                 strerror(err));
    assert_memory_equal(in, "after", 5);
    assert_int_equal(k.send_rc, 5);
    if (shake) {
        sem_assert_shm(api, a);
        sem_assert_shm(api, b);
    }
    api->close(a);
    api->close(b);
    install(SIGUSR1, on_usr1, 0);
}

static void test_sa_restart_recv_restarts(void **state)
{
    (void)state;
    SEM_GUARD();
    SEM_FOR_EACH_VARIANT(restart_body);
}

/*
 * Peer closed (after reading everything): send fails with EPIPE. STREAM raises one SIGPIPE per
 * failing send/write without MSG_NOSIGNAL; SEQPACKET raises none (Linux AF_UNIX behaviour).
 */
static void sigpipe_body(const struct sock_api *api, int type, bool shake)
{
    int a, b;
    char in[16];
    sem_announce(api, type, shake);
    sem_pair(api, type, shake, &a, &b);
    install(SIGPIPE, on_sigpipe, 0);
    pipe_count = 0;
    assert_int_equal(api->send(a, "last", 4, 0), 4);
    assert_int_equal(api->recv(b, in, sizeof(in), 0), 4);
    assert_int_equal(api->close(b), 0);
    int per_send = type == SOCK_STREAM ? 1 : 0;
    SEM_EXPECT_ERR(api->send(a, "x", 1, 0), EPIPE);
    assert_int_equal(pipe_count, per_send);
    SEM_EXPECT_ERR(api->send(a, "x", 1, MSG_NOSIGNAL), EPIPE);
    assert_int_equal(pipe_count, per_send);
    SEM_EXPECT_ERR(api->write(a, "x", 1), EPIPE);
    assert_int_equal(pipe_count, 2 * per_send);
    struct iovec iov = {(void *)"xyz", 3};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    SEM_EXPECT_ERR(api->sendmsg(a, &m, MSG_NOSIGNAL), EPIPE);
    assert_int_equal(pipe_count, 2 * per_send);
    SEM_EXPECT_ERR(api->sendmsg(a, &m, 0), EPIPE);
    assert_int_equal(pipe_count, 3 * per_send);
    /* A large send fails the same way (nothing can go). */
    static char big[300000];
    SEM_EXPECT_ERR(api->send(a, big, type == SOCK_STREAM ? sizeof(big) : 100000, MSG_NOSIGNAL),
                   EPIPE);
    assert_int_equal(pipe_count, 3 * per_send);
    /* The reading side sees end of stream. */
    assert_int_equal(api->recv(a, in, sizeof(in), 0), 0);
    api->close(a);
    install(SIGPIPE, SIG_IGN, 0);
}

static void test_sigpipe_epipe(void **state)
{
    (void)state;
    SEM_GUARD();
    SEM_FOR_EACH_VARIANT(sigpipe_body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eintr_recv),    cmocka_unit_test(test_eintr_send),
        cmocka_unit_test(test_eintr_accept),  cmocka_unit_test(test_sa_restart_recv_restarts),
        cmocka_unit_test(test_sigpipe_epipe),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    test_watchdog(0, NULL);
    return rc;
}
