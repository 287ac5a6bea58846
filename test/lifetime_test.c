/*
 * lifetime_test.c - end of connection, kernel vs shm (same steps), STREAM and SEQPACKET,
 * before negotiation and after test_handshake():
 *   - EOF after the peer closes: data sent before the close is read first, then 0 (repeatedly),
 *     poll reports POLLIN|POLLHUP; a reader blocked in recv is woken with 0; 1 MiB then close;
 *   - shutdown(SHUT_WR) half-close: the peer reads the rest then 0; the shut side can still
 *     receive (also 1 MiB, which needs its releases to flow); send after SHUT_WR -> EPIPE;
 *   - the peer stops reading (closes with our message unread, or shuts down reading): our
 *     next send fails with EPIPE at once; a sender blocked on a peer that does not read is
 *     woken by the peer's shutdown(SHUT_RD) with EPIPE;
 *   - the peer closes with our message unread while its own message waits for us: that
 *     message, the reset and the end of the stream, in the kernel's order (also when a
 *     MSG_WAITALL read is cut short by it: the kernel then reports no reset later);
 *   - a listener closed before it accepted: the client's reads report ECONNRESET once, as
 *     the kernel's do (the library's own peeks must not take the error from them);
 *   - shm_close sends nothing (fork-and-hand-off): the parent accepts, forks, the child serves,
 *     the parent closes its copy: the client sees no EOF until the child closes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
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

#define MIB (1024 * 1024)

/* A call's outcome as one number: its result, or -errno when it failed. */
static ssize_t outcome(ssize_t n)
{
    return n < 0 ? -errno : n;
}

/*
 * The kernel variants run first (SEM_FOR_EACH_VARIANT): each records its outcome in *kernel;
 * the shm variant of the same steps must give the same. `what` and `k` name the call.
 */
static void same_as_kernel(const struct sock_api *api, ssize_t *kernel, ssize_t got,
                           const char *what, int k)
{
    if (!api->is_shm)
        *kernel = got;
    else if (got != *kernel)
        fail_msg("%s %d: %zd (%s), the kernel's %zd (%s)", what, k + 1, got,
                 got < 0 ? strerror((int)-got) : "bytes", *kernel,
                 *kernel < 0 ? strerror((int)-*kernel) : "bytes");
}

/*
 * The peer stops reading: it closes (with our last message unread) or shuts down reading.
 * Our next two sends fail as the kernel's do (EPIPE; on SEQPACKET a close with a message
 * unread reports ECONNRESET first), at once: a coalesced send, which does not touch the
 * kernel socket, must not learn it late. The kernel's errnos are recorded and shm's compared.
 */
static ssize_t kernel_stop_sends[2][2][2][2]; /* [SEQPACKET][shake][shutdown][send] */

static void send_after_peer_stops_body(const struct sock_api *api, int type, bool shake)
{
    sem_announce(api, type, shake);
    for (int how = 0; how < 2; how++) { /* 0: close, 1: shutdown(SHUT_RD) */
        int a, b;
        sem_pair(api, type, shake, &a, &b);
        assert_int_equal(api->send(a, "y", 1, MSG_NOSIGNAL), 1); /* left unread */
        if (how == 0)
            assert_int_equal(api->close(b), 0);
        else
            assert_int_equal(api->shutdown(b, SHUT_RD), 0);
        for (int k = 0; k < 2; k++) {
            errno = 0;
            ssize_t got = outcome(api->send(a, "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT));
            if (!api->is_shm)
                assert_true(got == -EPIPE || got == -ECONNRESET);
            same_as_kernel(api, &kernel_stop_sends[type == SOCK_SEQPACKET][shake][how][k], got,
                           how == 0 ? "send after the peer's close" : "send after its SHUT_RD", k);
        }
        api->close(a);
        if (how == 1)
            api->close(b);
    }
}

/* A pair where b sends a message a never reads, a sends `len` bytes to b, and a closes.
 * Returns b. */
static int close_with_message_each_way(const struct sock_api *api, int type, bool shake,
                                       const char *msg, size_t len)
{
    int a, b;
    sem_announce(api, type, shake);
    sem_pair(api, type, shake, &a, &b);
    assert_int_equal(api->send(b, "unread", 6, 0), 6);
    assert_int_equal(api->send(a, msg, len, 0), (ssize_t)len);
    sem_sleep_ms(10);
    assert_int_equal(api->close(a), 0);
    return b;
}

/*
 * Both sides have a message on its way to the other; the peer closes without reading ours.
 * Our reads then give the peer's message, the reset (ECONNRESET, once) and the end of the
 * stream in the kernel's order (STREAM: the message first; SEQPACKET: the reset first). The
 * message must never be lost: a coalesced read that met the reset while taking its doorbell
 * out used to report the reset instead of the message it had already taken.
 */
static ssize_t kernel_reset_reads[2][2][3]; /* [SEQPACKET][shake][read] */

static void reset_with_message_body(const struct sock_api *api, int type, bool shake)
{
    int b = close_with_message_each_way(api, type, shake, "m", 1);
    bool got_message = false;
    for (int k = 0; k < 3; k++) {
        char in[16];
        errno = 0;
        ssize_t got = outcome(api->recv(b, in, sizeof(in), MSG_DONTWAIT));
        if (got == 1 && in[0] == 'm')
            got_message = true;
        same_as_kernel(api, &kernel_reset_reads[type == SOCK_SEQPACKET][shake][k], got,
                       "read after the peer's close", k);
    }
    assert_true(got_message);
    api->close(b);
}

static void test_reset_keeps_waiting_message(void **state)
{
    (void)state;
    SEM_GUARD();
    SEM_FOR_EACH_VARIANT(reset_with_message_body);
}

/*
 * The same close, read on STREAM with MSG_WAITALL for more than there is: the kernel returns
 * the bytes it has, and its reset does not come later (the wait took it). Compared with the
 * kernel's three reads.
 */
static ssize_t kernel_waitall_reads[2][3]; /* [shake][read] */

static void reset_during_waitall_body(const struct sock_api *api, int type, bool shake)
{
    if (type != SOCK_STREAM)
        return; /* SEQPACKET ignores MSG_WAITALL */
    int b = close_with_message_each_way(api, type, shake, "ab", 2);
    for (int k = 0; k < 3; k++) {
        char in[16];
        errno = 0;
        ssize_t got = outcome(
            api->recv(b, in, k == 0 ? 10 : sizeof(in), k == 0 ? MSG_WAITALL : MSG_DONTWAIT));
        same_as_kernel(api, &kernel_waitall_reads[shake][k], got, "read after the peer's close", k);
    }
    api->close(b);
}

static void test_reset_during_waitall(void **state)
{
    (void)state;
    SEM_GUARD();
    SEM_FOR_EACH_VARIANT(reset_during_waitall_body);
}

static void test_send_after_peer_stops_reading(void **state)
{
    (void)state;
    SEM_GUARD();
    SEM_FOR_EACH_VARIANT(send_after_peer_stops_body);
}

struct filler {
    const struct sock_api *api;
    int fd;
    size_t msg;
    int sent; /* atomic: messages sent before the send that failed */
    int rc;   /* errno of that send (read after the join) */
};

static void *fill_until_error(void *p)
{
    struct filler *f = p;
    static char buf[4096];
    for (;;) {
        errno = 0;
        ssize_t n = f->api->send(f->fd, buf, f->msg, MSG_NOSIGNAL);
        if (n != (ssize_t)f->msg) {
            f->rc = n < 0 ? errno : -1;
            return NULL;
        }
        __atomic_add_fetch(&f->sent, 1, __ATOMIC_RELEASE);
    }
}

/* A sender blocked because the peer does not read is woken by the peer's shutdown(SHUT_RD)
 * and gets EPIPE (not a wait for blocks that will never come back). */
static void blocked_sender_shut_rd_body(const struct sock_api *api, int type, bool shake)
{
    int a, b;
    sem_announce(api, type, shake);
    sem_pair(api, type, shake, &a, &b);
    /* Static: a failed assertion leaves the thread running; it must not use a dead stack. */
    static struct filler f;
    f = (struct filler){.api = api, .fd = a, .msg = 4096};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, fill_until_error, &f), 0);
    /* Wait until the sender is blocked: it has sent, and its count stopped growing. */
    int last = -1, now;
    while ((now = __atomic_load_n(&f.sent, __ATOMIC_ACQUIRE)) == 0 || now != last) {
        last = now;
        sem_sleep_ms(100);
    }
    assert_int_equal(api->shutdown(b, SHUT_RD), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(f.rc, EPIPE);
    api->close(a);
    api->close(b);
}

static void test_blocked_sender_woken_by_shut_rd(void **state)
{
    (void)state;
    SEM_GUARD();
    SEM_FOR_EACH_VARIANT(blocked_sender_shut_rd_body);
}

/* a sends 100 bytes and closes: b reads the 100 bytes, then 0, 0; poll: POLLIN|POLLHUP. */
static void eof_body(const struct sock_api *api, int type, bool shake)
{
    int a, b;
    char out[100], in[1000];
    sem_announce(api, type, shake);
    sem_pair(api, type, shake, &a, &b);
    test_fill_pattern(out, sizeof(out), 61);
    assert_int_equal(api->send(a, out, 100, 0), 100);
    assert_int_equal(api->close(a), 0);
    struct pollfd p = {.fd = b, .events = POLLIN};
    assert_int_equal(api->poll(&p, 1, 2000), 1);
    assert_true(p.revents & POLLIN);
    assert_int_equal(api->recv(b, in, sizeof(in), 0), 100);
    assert_memory_equal(in, out, 100);
    assert_int_equal(api->recv(b, in, sizeof(in), 0), 0);
    assert_int_equal(api->recv(b, in, sizeof(in), MSG_DONTWAIT), 0);
    assert_int_equal(api->read(b, in, sizeof(in)), 0);
    p.revents = 0;
    assert_int_equal(api->poll(&p, 1, 0), 1);
    assert_int_equal(p.revents & (POLLIN | POLLHUP), POLLIN | POLLHUP);
    api->close(b);
}

static void test_eof_after_peer_close(void **state)
{
    (void)state;
    SEM_GUARD();
    SEM_FOR_EACH_VARIANT(eof_body);
}

struct closer {
    const struct sock_api *api;
    int fd;
    long delay_ms;
    const char *buf;
    size_t len;
    size_t msg; /* SEQPACKET message size (0: one send) */
    int rc;
    ssize_t bad_send; /* the return of a send that did not send everything */
};

static void *closer_thread(void *p)
{
    struct closer *c = p;
    sem_sleep_ms(c->delay_ms);
    size_t step = c->msg ? c->msg : c->len;
    for (size_t off = 0; off < c->len; off += step) {
        size_t len = c->len - off < step ? c->len - off : step;
        errno = 0;
        ssize_t n = c->api->send(c->fd, c->buf + off, len, MSG_NOSIGNAL);
        if (n != (ssize_t)len) {
            c->bad_send = n;
            c->rc = errno ? errno : -1;
            return NULL;
        }
    }
    c->rc = c->api->close(c->fd) == 0 ? 0 : errno;
    return NULL;
}

/* A reader blocked in recv is woken by the peer's close and gets 0. */
static void blocked_eof_body(const struct sock_api *api, int type, bool shake)
{
    int a, b;
    char in[16];
    sem_announce(api, type, shake);
    sem_pair(api, type, shake, &a, &b);
    struct closer c = {.api = api, .fd = a, .delay_ms = 100};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, closer_thread, &c), 0);
    ssize_t n = api->recv(b, in, sizeof(in), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(c.rc, 0);
    assert_int_equal(n, 0);
    api->close(b);
}

static void test_eof_wakes_blocked_reader(void **state)
{
    (void)state;
    SEM_GUARD();
    SEM_FOR_EACH_VARIANT(blocked_eof_body);
}

/* 1 MiB (STREAM) / 5 x 200,000-byte messages (SEQPACKET) then close: all of it, then 0. */
static void big_eof_body(const struct sock_api *api, int type, bool shake)
{
    int a, b;
    sem_announce(api, type, shake);
    sem_pair(api, type, shake, &a, &b);
    size_t len = type == SOCK_STREAM ? MIB : 1000000;
    char *out = malloc(len), *in = malloc(len + 1000);
    assert_non_null(out);
    assert_non_null(in);
    test_fill_pattern(out, len, 62);
    struct closer c = {
        .api = api, .fd = a, .buf = out, .len = len, .msg = type == SOCK_STREAM ? 0 : 200000};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, closer_thread, &c), 0);
    if (type == SOCK_STREAM) {
        test_recv_all(api, b, in, len);
    } else {
        for (size_t off = 0; off < len; off += 200000)
            assert_int_equal(api->recv(b, in + off, 200000 + 1000, 0), 200000);
    }
    errno = 0;
    ssize_t last = api->recv(b, in, 1000, 0);
    int last_errno = errno;
    assert_int_equal(pthread_join(th, NULL), 0);
    if (c.rc != 0)
        fail_msg("sender: send returned %zd (expected %zu), errno %d (%s)", c.bad_send, len, c.rc,
                 c.rc > 0 ? strerror(c.rc) : "-");
    if (last != 0)
        fail_msg("recv after the peer's close: expected 0, got %zd errno %d (%s)", last, last_errno,
                 strerror(last_errno));
    assert_true(test_check_pattern(in, len, 62));
    api->close(b);
    free(out);
    free(in);
}

static void test_eof_after_large_transfer(void **state)
{
    (void)state;
    SEM_GUARD();
    SEM_FOR_EACH_VARIANT(big_eof_body);
}

/* ---- shutdown(SHUT_WR) ----------------------------------------------------------------- */

struct bulk {
    const struct sock_api *api;
    int fd;
    const char *buf;
    size_t len;
    size_t msg;
    int rc;
};

static void *bulk_send_thread(void *p)
{
    struct bulk *s = p;
    size_t step = s->msg ? s->msg : s->len;
    for (size_t off = 0; off < s->len; off += step) {
        size_t len = s->len - off < step ? s->len - off : step;
        if (s->api->send(s->fd, s->buf + off, len, MSG_NOSIGNAL) != (ssize_t)len) {
            s->rc = errno ? errno : -1;
            return NULL;
        }
    }
    s->rc = 0;
    return NULL;
}

static void half_close_body(const struct sock_api *api, int type, bool shake)
{
    int a, b;
    char in[1000];
    static char out[100000];
    sem_announce(api, type, shake);
    sem_pair(api, type, shake, &a, &b);
    struct sigaction sa = {.sa_handler = SIG_IGN}, old;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGPIPE, &sa, &old), 0);

    test_fill_pattern(out, sizeof(out), 63);
    assert_int_equal(api->send(a, "abc", 3, 0), 3);
    assert_int_equal(api->send(a, out, sizeof(out), 0), (ssize_t)sizeof(out));
    assert_int_equal(api->shutdown(a, SHUT_WR), 0);
    /* The shut side cannot send any more. */
    SEM_EXPECT_ERR(api->send(a, "x", 1, MSG_NOSIGNAL), EPIPE);
    SEM_EXPECT_ERR(api->send(a, "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT), EPIPE);
    /* The peer reads the rest, then 0 (repeatedly). */
    assert_int_equal(api->recv(b, in, 3, 0), 3);
    assert_memory_equal(in, "abc", 3);
    char *big = malloc(sizeof(out));
    assert_non_null(big);
    if (type == SOCK_STREAM)
        test_recv_all(api, b, big, sizeof(out));
    else
        assert_int_equal(api->recv(b, big, sizeof(out), 0), (ssize_t)sizeof(out));
    assert_memory_equal(big, out, sizeof(out));
    assert_int_equal(api->recv(b, in, sizeof(in), 0), 0);
    assert_int_equal(api->recv(b, in, sizeof(in), 0), 0);
    struct pollfd p = {.fd = b, .events = POLLIN};
    assert_int_equal(api->poll(&p, 1, 0), 1);
    assert_true(p.revents & POLLIN);
    /* The shut side still receives: a short reply ... */
    assert_int_equal(api->send(b, "reply", 5, 0), 5);
    assert_int_equal(api->recv(a, in, sizeof(in), 0), 5);
    assert_memory_equal(in, "reply", 5);
    /* ... and 1 MiB, more than one region: the shut side keeps releasing blocks. */
    size_t len = MIB;
    char *mb = malloc(len), *mbin = malloc(len + 1000);
    assert_non_null(mb);
    assert_non_null(mbin);
    test_fill_pattern(mb, len, 64);
    struct bulk s = {.api = api,
                     .fd = b,
                     .buf = mb,
                     .len = len,
                     .msg = type == SOCK_STREAM ? 0 : 100000,
                     .rc = -2};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, bulk_send_thread, &s), 0);
    if (type == SOCK_STREAM) {
        test_recv_all(api, a, mbin, len);
    } else {
        for (size_t off = 0; off < len; off += 100000) {
            size_t want = len - off < 100000 ? len - off : 100000;
            assert_int_equal(api->recv(a, mbin + off, want + 1000, 0), (ssize_t)want);
        }
    }
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(s.rc, 0);
    assert_true(test_check_pattern(mbin, len, 64));
    sem_expect_empty(api, a);
    SEM_EXPECT_ERR(api->send(a, "x", 1, MSG_NOSIGNAL), EPIPE);
    if (shake) {
        sem_assert_shm(api, a);
        sem_assert_shm(api, b);
    }
    /* b closes: a reads end of stream. */
    api->close(b);
    assert_int_equal(api->recv(a, in, sizeof(in), 0), 0);
    api->close(a);
    assert_int_equal(sigaction(SIGPIPE, &old, NULL), 0);
    free(big);
    free(mb);
    free(mbin);
}

static void test_shutdown_wr_half_close(void **state)
{
    (void)state;
    SEM_GUARD();
    SEM_FOR_EACH_VARIANT(half_close_body);
}

/* ---- fork and hand off -------------------------------------------------------------------- */

#define CHILD_CHECK(cond, code)                                                                    \
    do {                                                                                           \
        if (!(cond))                                                                               \
            _exit(code);                                                                           \
    } while (0)

/*
 * The parent accepts (`server`), forks; the child serves; the parent closes its copy of
 * `server` (and the child its copy of `client`). The client exchanges with the child, sees no
 * EOF while the child keeps the connection (poll 300 ms: nothing; recv: EAGAIN), and sees EOF
 * once the child closes.
 */
static void handoff_body(const struct sock_api *api, int type, bool shake)
{
    int client, server;
    sem_announce(api, type, shake);
    sem_pair(api, type, shake, &client, &server);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        alarm(10);
        CHILD_CHECK(api->close(client) == 0, 2);
        char buf[64];
        CHILD_CHECK(api->recv(server, buf, sizeof(buf), 0) == 4, 3);
        CHILD_CHECK(memcmp(buf, "ping", 4) == 0, 4);
        if (shake && api->is_shm)
            CHILD_CHECK(test_shm_status(server) == SHM_STATUS_SHM, 5);
        CHILD_CHECK(api->send(server, "pong", 4, 0) == 4, 6);
        /* Wait for "bye", then close: that close is the client's EOF. */
        CHILD_CHECK(api->recv(server, buf, sizeof(buf), 0) == 3, 7);
        CHILD_CHECK(memcmp(buf, "bye", 3) == 0, 8);
        CHILD_CHECK(api->close(server) == 0, 9);
        _exit(0);
    }
    assert_int_equal(api->close(server), 0);
    char in[64];
    assert_int_equal(api->send(client, "ping", 4, 0), 4);
    assert_int_equal(api->recv(client, in, sizeof(in), 0), 4);
    assert_memory_equal(in, "pong", 4);
    if (shake)
        sem_assert_shm(api, client);
    struct pollfd p = {.fd = client, .events = POLLIN};
    assert_int_equal(api->poll(&p, 1, 300), 0);
    sem_expect_empty(api, client);
    assert_int_equal(api->send(client, "bye", 3, 0), 3);
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(api->recv(client, in, sizeof(in), 0), 0);
    api->close(client);
}

static void test_fork_handoff_close_sends_nothing(void **state)
{
    (void)state;
    SEM_GUARD();
    SEM_FOR_EACH_VARIANT(handoff_body);
}

/*
 * A client connects and the listener is closed before it accepts: the kernel resets the
 * client's connection. Its reads report ECONNRESET once (blocking or not), then end of stream;
 * with `sent_first`, the client sent a message (our offer on it) before the close. The shm
 * library's own peeks (made to learn whether a read will wait) must not take that error from
 * the application. Three calls, compared with the kernel's; variant 0: a blocking read first,
 * variant 1: a non-blocking one, variant 2: the client sent first.
 */
static ssize_t kernel_unaccepted[2][3][3]; /* [SEQPACKET][variant][call] */

static void unaccepted_reset_body(const struct sock_api *api, int type, int variant)
{
    print_message("    [%s %s variant %d]\n", api->name, sem_type_name(type), variant);
    struct sockaddr_un addr;
    socklen_t len = test_abstract_addr(&addr);
    int listener = api->socket(AF_UNIX, type, 0);
    assert_true(listener >= 0);
    assert_int_equal(api->bind(listener, (struct sockaddr *)&addr, len), 0);
    assert_int_equal(api->listen(listener, 8), 0);
    int client = api->socket(AF_UNIX, type, 0);
    assert_true(client >= 0);
    assert_int_equal(api->connect(client, (struct sockaddr *)&addr, len), 0);
    if (variant == 2)
        assert_int_equal(api->send(client, "early", 5, MSG_NOSIGNAL), 5);
    assert_int_equal(api->close(listener), 0);
    char in[16];
    ssize_t got[3];
    errno = 0;
    got[0] = outcome(api->recv(client, in, sizeof(in), variant == 1 ? MSG_DONTWAIT : 0));
    errno = 0;
    got[1] = outcome(api->recv(client, in, sizeof(in), 0));
    errno = 0;
    got[2] = outcome(api->recv(client, in, sizeof(in), MSG_DONTWAIT));
    for (int k = 0; k < 3; k++)
        same_as_kernel(api, &kernel_unaccepted[type == SOCK_SEQPACKET][variant][k], got[k],
                       "read after the listener closed", k);
    if (!api->is_shm)
        assert_int_equal(got[0], -ECONNRESET);
    api->close(client);
}

static void test_reset_of_unaccepted_connection(void **state)
{
    (void)state;
    SEM_GUARD();
    for (int i = 0; i < 2; i++) {
        for (int variant = 0; variant < 3; variant++) {
            unaccepted_reset_body(test_apis[i], SOCK_STREAM, variant);
            unaccepted_reset_body(test_apis[i], SOCK_SEQPACKET, variant);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eof_after_peer_close),
        cmocka_unit_test(test_eof_wakes_blocked_reader),
        cmocka_unit_test(test_eof_after_large_transfer),
        cmocka_unit_test(test_shutdown_wr_half_close),
        cmocka_unit_test(test_fork_handoff_close_sends_nothing),
        cmocka_unit_test(test_send_after_peer_stops_reading),
        cmocka_unit_test(test_blocked_sender_woken_by_shut_rd),
        cmocka_unit_test(test_reset_keeps_waiting_message),
        cmocka_unit_test(test_reset_during_waitall),
        cmocka_unit_test(test_reset_of_unaccepted_connection),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    test_watchdog(0, NULL);
    return rc;
}
