/*
 * readiness_test.c - the readiness contract of shmsock.h / DESIGN.md, after test_handshake
 * (so the payload travels through shared memory):
 *
 *   - the fd is readable whenever a message is waiting, and not once the reader has drained
 *     to EAGAIN (a stale wake-up that ends in EAGAIN is allowed by DESIGN.md; a message waiting
 *     on an fd that does not poll readable is not);
 *   - a level-triggered epoll reader that reads one message per wake-up never stalls;
 *   - an edge-triggered epoll reader that drains to EAGAIN never misses a message (producer in
 *     another thread, and in another process, sending in bursts with pauses);
 *   - readable, and recv returns 0, after the peer closes;
 *   - a non-blocking writer that filled every block gets EAGAIN; shm_poll(POLLOUT) then blocks
 *     (times out) while nothing is released and reports POLLOUT after the receiver reads; the
 *     waiting writer does not spin (few shm_poll calls, little CPU).
 *
 * Every test runs on kernel sockets first (the reference: proves the test itself right) and
 * then on shm sockets, for SOCK_STREAM and SOCK_SEQPACKET. On kernel sockets `api->poll` is
 * poll(2); on shm sockets it is shm_poll().
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
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "shmsock.h"
#include "test_support.h"

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "readiness_test: TIMEOUT - a blocking call hung (alarm)\n";
    ssize_t r = write(2, msg, sizeof(msg) - 1);
    (void)r;
    abort();
}

static void guard(unsigned seconds)
{
    signal(SIGALRM, on_alarm);
    alarm(seconds);
}

static pid_t child_pid = -1;

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

static int test_teardown(void **state)
{
    (void)state;
    alarm(0);
    if (child_pid > 0) {
        kill(child_pid, SIGKILL);
        waitpid(child_pid, NULL, 0);
        child_pid = -1;
    }
    return 0;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static double thread_cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

struct cfg {
    const struct sock_api *api;
    int type;
};

/* ------------------------------------------------------------------------------------------ */
/* Messages: SEQPACKET messages of varying size whose first 4 bytes are a sequence number;
 * STREAM records of REC bytes whose first 4 bytes are a sequence number. */

enum { REC = 512, MAX_MSG = 20000 };

static size_t msg_size(int type, uint32_t seq)
{
    if (type == SOCK_STREAM)
        return REC;
    uint32_t x = seq * 2654435761u;
    x ^= x >> 16;
    /* mostly small, sometimes several blocks */
    return (x & 7) == 0 ? 4 + x % (MAX_MSG - 4) : 4 + x % 600;
}

static void fill_msg(char *buf, size_t len, uint32_t seq)
{
    memcpy(buf, &seq, 4);
    test_fill_pattern(buf + 4, len - 4, seq);
}

static bool check_msg(const char *buf, size_t len, uint32_t seq)
{
    uint32_t got;
    memcpy(&got, buf, 4);
    return got == seq && test_check_pattern(buf + 4, len - 4, seq);
}

/* Receiver state: checks sequence and content, assembling STREAM records from partial reads. */
struct rx {
    int type;
    uint32_t next;
    size_t have;
    char rec[REC];
    char err[200];
};

/* Feed n received bytes (STREAM) or one message of n bytes (SEQPACKET). false on error. */
static bool rx_feed(struct rx *rx, const char *buf, size_t n)
{
    if (rx->type == SOCK_SEQPACKET) {
        size_t want = msg_size(rx->type, rx->next);
        if (n != want || !check_msg(buf, n, rx->next)) {
            uint32_t got = 0;
            if (n >= 4)
                memcpy(&got, buf, 4);
            snprintf(rx->err, sizeof(rx->err),
                     "message %u: expected %zu bytes, got %zu bytes with seq %u", rx->next, want, n,
                     got);
            return false;
        }
        rx->next++;
        return true;
    }
    while (n > 0) {
        size_t take = REC - rx->have < n ? REC - rx->have : n;
        memcpy(rx->rec + rx->have, buf, take);
        rx->have += take;
        buf += take;
        n -= take;
        if (rx->have == REC) {
            if (!check_msg(rx->rec, REC, rx->next)) {
                uint32_t got;
                memcpy(&got, rx->rec, 4);
                snprintf(rx->err, sizeof(rx->err), "record %u corrupted (seq field %u)", rx->next,
                         got);
                return false;
            }
            rx->next++;
            rx->have = 0;
        }
    }
    return true;
}

/* One non-blocking receive call. Returns bytes, or -1 with errno (EAGAIN when nothing). */
static ssize_t rx_once(const struct cfg *c, int fd, struct rx *rx, char *buf)
{
    size_t len = c->type == SOCK_STREAM ? REC : MAX_MSG + 64;
    ssize_t n = c->api->recv(fd, buf, len, MSG_DONTWAIT);
    if (n > 0 && !rx_feed(rx, buf, (size_t)n))
        fail_msg("%s", rx->err);
    if (n == 0)
        fail_msg("unexpected end of stream after %u messages", rx->next);
    return n;
}

static void send_msg(const struct cfg *c, int fd, uint32_t seq)
{
    char buf[MAX_MSG];
    size_t len = msg_size(c->type, seq);
    fill_msg(buf, len, seq);
    test_send_all(c->api, fd, buf, len);
}

/* ------------------------------------------------------------------------------------------ */
/* Readiness probes                                                                            */

/* Is fd readable right now? Asks poll(2) on the raw fd (what epoll users see), api->poll and a
 * level-triggered epoll set; all three must agree. */
static bool readable_now(const struct cfg *c, int fd, int ep)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r1 = poll(&p, 1, 0);
    assert_true(r1 >= 0);
    bool raw = r1 > 0 && (p.revents & POLLIN);
    p.revents = 0;
    int r2 = c->api->poll(&p, 1, 0);
    assert_true(r2 >= 0);
    bool api = r2 > 0 && (p.revents & POLLIN);
    struct epoll_event ev;
    int r3 = epoll_wait(ep, &ev, 1, 0);
    assert_true(r3 >= 0);
    bool ep_ready = r3 > 0 && (ev.events & EPOLLIN);
    if (raw != api || raw != ep_ready)
        fail_msg("readiness disagrees: poll(raw fd)=%d %s=%d epoll=%d", raw,
                 c->api->is_shm ? "shm_poll" : "poll", api, ep_ready);
    return raw;
}

static int make_epoll(int fd, uint32_t events)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    assert_true(ep >= 0);
    struct epoll_event ev = {.events = events, .data.fd = fd};
    assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), 0);
    return ep;
}

static void handshaken_pair(const struct cfg *c, int *a, int *b)
{
    test_connect_pair(c->api, c->type, a, b);
    test_handshake(c->api, *a, *b);
}

/* ------------------------------------------------------------------------------------------ */
/* 1. readable whenever a message is waiting, and not once drained                             */

static void readable_iff_waiting_one_way(const struct cfg *c, int tx, int rxfd, unsigned seed)
{
    int ep = make_epoll(rxfd, EPOLLIN);
    struct rx rx = {.type = c->type};
    char *buf = malloc(MAX_MSG + 64);
    uint32_t seq = 0;
    int stale = 0;
    if (readable_now(c, rxfd, ep))
        fail_msg("readable before anything was sent");
    for (int round = 0; round < 60; round++) {
        int k = 1 + (int)((seed + (unsigned)round * 7u) % 5); /* 1..5 messages at once */
        for (int i = 0; i < k; i++)
            send_msg(c, tx, seq++);
        for (int i = 0; i < k; i++) {
            /* A message is waiting: the fd must be readable now (the sends have returned). */
            if (!readable_now(c, rxfd, ep))
                fail_msg("round %d: %d message(s) waiting but the fd is not readable", round,
                         k - i);
            /* Read exactly that message. */
            uint32_t before = rx.next;
            while (rx.next == before) {
                ssize_t n = rx_once(c, rxfd, &rx, buf);
                if (n < 0)
                    fail_msg("round %d: fd readable, message waiting, but recv failed errno "
                             "%d",
                             round, errno);
            }
        }
        /* Nothing waiting. A stale wake-up is allowed once; after EAGAIN it must be gone. */
        if (readable_now(c, rxfd, ep)) {
            ssize_t n = rx_once(c, rxfd, &rx, buf);
            if (n >= 0)
                fail_msg("round %d: received %zd unexpected bytes", round, n);
            assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
            stale++;
        } else {
            ssize_t n = rx_once(c, rxfd, &rx, buf);
            assert_int_equal(n, -1);
            assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
        }
        if (readable_now(c, rxfd, ep))
            fail_msg("round %d: drained to EAGAIN, nothing waiting, yet the fd is readable", round);
    }
    if (stale)
        print_message("  note: %d stale wake-up(s) (readable, then EAGAIN) in 60 rounds\n", stale);
    free(buf);
    close(ep);
}

static void test_readable_iff_message_waiting(void **state)
{
    const struct cfg *c = *state;
    guard(30);
    int a, b;
    handshaken_pair(c, &a, &b);
    readable_iff_waiting_one_way(c, a, b, 1);
    readable_iff_waiting_one_way(c, b, a, 2);
    /* And interleaved with traffic the other way (releases / doorbells crossing). */
    readable_iff_waiting_one_way(c, a, b, 3);
    assert_int_equal(c->api->close(a), 0);
    assert_int_equal(c->api->close(b), 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Producer (thread or process): n messages in bursts of 1..burst_max, pausing up to pause_us */

struct producer {
    const struct cfg *c;
    int fd;
    int n;
    int burst_max;
    int pause_us;
    unsigned seed;
    int err; /* errno of a failed send, 0 if fine */
};

static int produce(struct producer *p)
{
    char *buf = malloc(MAX_MSG);
    unsigned r = p->seed;
    uint32_t seq = 0;
    while ((int)seq < p->n) {
        int burst = p->burst_max > 0 ? 1 + (int)(rand_r(&r) % (unsigned)p->burst_max) : p->n;
        for (int i = 0; i < burst && (int)seq < p->n; i++, seq++) {
            size_t len = msg_size(p->c->type, seq), off = 0;
            fill_msg(buf, len, seq);
            while (off < len) {
                ssize_t s = p->c->api->send(p->fd, buf + off, len - off, MSG_NOSIGNAL);
                if (s < 0 && errno == EINTR)
                    continue;
                if (s <= 0) {
                    p->err = s < 0 ? errno : -1;
                    free(buf);
                    return -1;
                }
                off += (size_t)s;
            }
        }
        if (p->pause_us > 0)
            usleep((useconds_t)(rand_r(&r) % (unsigned)p->pause_us));
    }
    free(buf);
    return 0;
}

static void *producer_thread(void *arg)
{
    produce(arg);
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* 2. level-triggered epoll, one message per wake-up                                           */

/* Reads `n` messages with one receive call per epoll wake-up. Returns the number of stale
 * wake-ups. A wait that times out while messages are still expected is a stall. */
static int lt_read_one_per_wakeup(const struct cfg *c, int fd, int n, int timeout_ms)
{
    int ep = make_epoll(fd, EPOLLIN);
    struct rx rx = {.type = c->type};
    char *buf = malloc(MAX_MSG + 64);
    int stale = 0;
    while ((int)rx.next < n) {
        struct epoll_event ev;
        int r = epoll_wait(ep, &ev, 1, timeout_ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0)
            fail_msg("level-triggered reader stalled: epoll_wait timed out (%d ms) with %u of "
                     "%d messages read (a message is waiting but the fd is not readable)",
                     timeout_ms, rx.next, n);
        assert_int_equal(r, 1);
        ssize_t k = rx_once(c, fd, &rx, buf);
        if (k < 0) {
            assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
            stale++;
        }
    }
    free(buf);
    close(ep);
    return stale;
}

static void test_lt_epoll_one_per_wakeup(void **state)
{
    const struct cfg *c = *state;
    guard(60);
    int a, b;
    handshaken_pair(c, &a, &b);

    /* (a) All messages already sent: readiness must be there immediately (timeout 0).
     * 8 messages fit in any buffer (the kernel SEQPACKET queue holds 10 datagrams). */
    for (uint32_t s = 0; s < 8; s++)
        send_msg(c, a, s);
    int stale = lt_read_one_per_wakeup(c, b, 8, 0);
    assert_true(stale <= 8);

    /* (b) A burst of N messages from another thread (far more than the region holds). */
    enum { N = 3000 };
    /* heap: a failing reader leaves the producer thread blocked, still using it */
    struct producer *p = calloc(1, sizeof(*p));
    *p = (struct producer){.c = c, .fd = a, .n = N, .burst_max = 0, .seed = 5};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, producer_thread, p), 0);
    stale = lt_read_one_per_wakeup(c, b, N, 3000);
    assert_int_equal(pthread_join(t, NULL), 0);
    if (p->err)
        fail_msg("producer send failed: errno %d", p->err);
    free(p);
    if (stale > N)
        fail_msg("%d stale wake-ups for %d messages", stale, N);
    assert_int_equal(c->api->close(a), 0);
    assert_int_equal(c->api->close(b), 0);
}

/* ------------------------------------------------------------------------------------------ */
/* 3. edge-triggered epoll, drain to EAGAIN after each wake-up                                 */

static void et_drain_reader(const struct cfg *c, int fd, int n)
{
    int ep = make_epoll(fd, EPOLLIN | EPOLLET);
    struct rx rx = {.type = c->type};
    char *buf = malloc(MAX_MSG + 64);
    int wakeups = 0;
    while ((int)rx.next < n) {
        struct epoll_event ev;
        int r = epoll_wait(ep, &ev, 1, 3000);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0)
            fail_msg("edge-triggered reader missed a wake-up: epoll_wait timed out (3 s) with "
                     "%u of %d messages read",
                     rx.next, n);
        wakeups++;
        /* Drain to EAGAIN; after the last message the producer may already have closed, so
         * stop there: the end of the stream is checked below. */
        while ((int)rx.next < n) {
            ssize_t k = rx_once(c, fd, &rx, buf);
            if (k < 0) {
                if (errno == EINTR)
                    continue;
                if (errno != EAGAIN && errno != EWOULDBLOCK)
                    fail_msg("recv failed: errno %d", errno);
                break;
            }
        }
    }
    /* Then the end of the stream is seen too (the producer closes). The close may have come
     * with the wake-up of the last messages, which was consumed: as the edge-triggered
     * contract says, read until EAGAIN before waiting for the next edge. */
    for (;;) {
        ssize_t k = c->api->recv(fd, buf, 16, MSG_DONTWAIT);
        if (k == 0)
            break;
        if (k > 0)
            fail_msg("extra %zd bytes after the last message", k);
        if (errno == EINTR)
            continue;
        assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
        struct epoll_event ev;
        int r;
        do
            r = epoll_wait(ep, &ev, 1, 3000);
        while (r < 0 && errno == EINTR);
        if (r == 0)
            fail_msg("edge-triggered reader: no wake-up for the peer's close");
    }
    print_message("  %d messages, %d edge-triggered wake-ups\n", n, wakeups);
    free(buf);
    close(ep);
}

static void *producer_then_close(void *arg)
{
    struct producer *p = arg;
    produce(p);
    p->c->api->close(p->fd);
    return NULL;
}

static void test_et_epoll_thread_producer(void **state)
{
    const struct cfg *c = *state;
    guard(60);
    int a, b;
    handshaken_pair(c, &a, &b);
    enum { N = 4000 };
    struct producer *p = calloc(1, sizeof(*p)); /* heap: see test_lt_epoll_one_per_wakeup */
    *p = (struct producer){.c = c, .fd = a, .n = N, .burst_max = 24, .pause_us = 2000, .seed = 11};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, producer_then_close, p), 0);
    et_drain_reader(c, b, N);
    assert_int_equal(pthread_join(t, NULL), 0);
    if (p->err)
        fail_msg("producer send failed: errno %d", p->err);
    free(p);
    assert_int_equal(c->api->close(b), 0);
}

/* Child side of the process variant: connect, handshake by hand (no cmocka in the child), produce.
 */
static void child_producer(const struct cfg *c, const struct sockaddr_un *addr, socklen_t len)
{
    alarm(60);
    int fd = c->api->socket(AF_UNIX, c->type, 0);
    if (fd < 0 || c->api->connect(fd, (const struct sockaddr *)addr, len) != 0)
        _exit(10);
    char byte = 'h';
    for (int i = 0; i < 2; i++) {
        if (c->api->send(fd, &byte, 1, 0) != 1)
            _exit(11);
        if (c->api->recv(fd, &byte, 1, 0) != 1)
            _exit(12);
    }
    int st = -1;
    socklen_t sl = sizeof(st);
    if (c->api->is_shm &&
        (shm_getsockopt(fd, SOL_SHMSOCK, SHM_STATUS, &st, &sl) != 0 || st != SHM_STATUS_SHM))
        _exit(13);
    struct producer p = {
        .c = c, .fd = fd, .n = 4000, .burst_max = 24, .pause_us = 2000, .seed = 12};
    if (produce(&p) != 0) {
        fprintf(stderr, "child producer: send failed errno %d\n", p.err);
        _exit(14);
    }
    c->api->close(fd);
    _exit(0);
}

static void test_et_epoll_process_producer(void **state)
{
    const struct cfg *c = *state;
    guard(60);
    struct sockaddr_un addr;
    socklen_t len = test_abstract_addr(&addr);
    int listener = c->api->socket(AF_UNIX, c->type, 0);
    assert_true(listener >= 0);
    assert_int_equal(c->api->bind(listener, (struct sockaddr *)&addr, len), 0);
    assert_int_equal(c->api->listen(listener, 4), 0);
    child_pid = fork();
    assert_true(child_pid >= 0);
    if (child_pid == 0)
        child_producer(c, &addr, len);
    int b = c->api->accept(listener, NULL, NULL);
    assert_true(b >= 0);
    assert_int_equal(c->api->close(listener), 0);
    char byte;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(c->api->recv(b, &byte, 1, 0), 1);
        assert_int_equal(c->api->send(b, &byte, 1, 0), 1);
    }
    if (c->api->is_shm)
        assert_int_equal(test_shm_status(b), SHM_STATUS_SHM);
    et_drain_reader(c, b, 4000);
    int status;
    assert_int_equal(waitpid(child_pid, &status, 0), child_pid);
    child_pid = -1;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("producer process failed: status 0x%x (exit 10 connect, 11/12 handshake, 13 "
                 "not SHM after handshake, 14 send)",
                 status);
    assert_int_equal(c->api->close(b), 0);
}

/* ------------------------------------------------------------------------------------------ */
/* 4. readable and recv returns 0 after the peer closes                                        */

static void test_readable_after_peer_close(void **state)
{
    const struct cfg *c = *state;
    guard(20);
    for (int pending = 0; pending <= 3; pending += 3) {
        int a, b;
        handshaken_pair(c, &a, &b);
        int ep = make_epoll(b, EPOLLIN);
        for (uint32_t s = 0; s < (uint32_t)pending; s++)
            send_msg(c, a, s);
        assert_int_equal(c->api->close(a), 0);
        struct rx rx = {.type = c->type};
        char *buf = malloc(MAX_MSG + 64);
        while ((int)rx.next < pending) {
            if (!readable_now(c, b, ep))
                fail_msg("messages pending after the peer closed, fd not readable");
            ssize_t n = rx_once(c, b, &rx, buf);
            if (n < 0)
                fail_msg("recv of a pending message after peer close: errno %d", errno);
        }
        /* The close is visible: readable (POLLIN, with or without POLLHUP) and recv gives 0. */
        struct pollfd p = {.fd = b, .events = POLLIN};
        int r = c->api->poll(&p, 1, 1000);
        if (r != 1 || !(p.revents & POLLIN))
            fail_msg("after peer close: %s returned %d revents 0x%x, expected POLLIN",
                     c->api->is_shm ? "shm_poll" : "poll", r, p.revents);
        if (!readable_now(c, b, ep))
            fail_msg("after peer close: raw fd / epoll not readable");
        assert_int_equal(c->api->recv(b, buf, 100, 0), 0);
        assert_int_equal(c->api->recv(b, buf, 100, MSG_DONTWAIT), 0);
        assert_true(readable_now(c, b, ep)); /* EOF stays readable */
        free(buf);
        close(ep);
        assert_int_equal(c->api->close(b), 0);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* 5. non-blocking writer: EAGAIN, then poll(POLLOUT) waits without spinning                   */

struct waiter {
    const struct cfg *c;
    int fd;
    double t_start;
    double t_done; /* when a send succeeded after POLLOUT */
    int polls;     /* api->poll calls made while waiting */
    int spurious;  /* POLLOUT reported but the send still got EAGAIN */
    double cpu_ms; /* CPU time this thread used while waiting */
    int err;
    bool ok;
};

static void *pollout_waiter(void *arg)
{
    struct waiter *w = arg;
    char msg[1000];
    memset(msg, 'w', sizeof(msg));
    double cpu0 = thread_cpu_ms();
    while (now_ms() - w->t_start < 5000) {
        struct pollfd p = {.fd = w->fd, .events = POLLOUT};
        int r = w->c->api->poll(&p, 1, 100);
        w->polls++;
        if (r < 0 && errno != EINTR) {
            w->err = errno;
            break;
        }
        if (r > 0 && (p.revents & POLLOUT)) {
            ssize_t n = w->c->api->send(w->fd, msg, sizeof(msg), MSG_NOSIGNAL);
            if (n > 0) {
                w->ok = true;
                w->t_done = now_ms();
                break;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                w->err = errno;
                break;
            }
            w->spurious++;
        }
    }
    w->cpu_ms = thread_cpu_ms() - cpu0;
    return NULL;
}

/* Non-blocking drain of everything queued on fd. Returns bytes read. */
static size_t drain(const struct cfg *c, int fd)
{
    static char buf[MAX_MSG + 64];
    size_t total = 0;
    for (;;) {
        ssize_t n = c->api->recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) {
            total += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        assert_int_equal(n, -1);
        assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
        return total;
    }
}

static void test_pollout_waits_for_space(void **state)
{
    const struct cfg *c = *state;
    guard(30);
    int a, b;
    handshaken_pair(c, &a, &b);
    int fl = c->api->fcntl(a, F_GETFL, 0);
    assert_true(fl >= 0);
    assert_int_equal(c->api->fcntl(a, F_SETFL, fl | O_NONBLOCK), 0);

    /* Fill: the receiver does not read. */
    char msg[1000];
    memset(msg, 'f', sizeof(msg));
    int sent = 0;
    for (;;) {
        ssize_t n = c->api->send(a, msg, sizeof(msg), MSG_NOSIGNAL);
        if (n > 0) {
            if (++sent > 100000)
                fail_msg("100000 non-blocking sends never got EAGAIN");
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        fail_msg("non-blocking send returned %zd errno %d", n, errno);
    }
    print_message("  %s: EAGAIN after %d messages of 1000 bytes\n", c->api->name, sent);

    /* Nothing is released: POLLOUT must not be reported; poll blocks for its timeout. */
    struct pollfd p = {.fd = a, .events = POLLOUT};
    double t0 = now_ms();
    int r = c->api->poll(&p, 1, 100);
    double dt = now_ms() - t0;
    if (r != 0)
        fail_msg("%s(POLLOUT) with every block in use returned %d revents 0x%x after %.1f ms "
                 "(expected a 100 ms timeout)",
                 c->api->is_shm ? "shm_poll" : "poll", r, p.revents, dt);
    if (dt < 80)
        fail_msg("poll returned 0 after only %.1f ms (timeout 100 ms)", dt);
    errno = 0;
    assert_int_equal(c->api->send(a, msg, sizeof(msg), MSG_NOSIGNAL), -1);
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);

    /* A writer waits for space in another thread while the receiver sleeps 300 ms, then reads
     * everything. The writer must wake up only after the reads, with few poll calls and
     * little CPU time. */
    struct waiter w = {.c = c, .fd = a, .t_start = now_ms()};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, pollout_waiter, &w), 0);
    usleep(300 * 1000);
    double t_read = now_ms();
    size_t got = drain(c, b);
    assert_true(got > 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    if (w.err)
        fail_msg("waiting writer: poll/send failed errno %d", w.err);
    if (!w.ok)
        fail_msg("waiting writer never got POLLOUT + a successful send within 5 s after the "
                 "receiver read everything (polls %d, spurious %d)",
                 w.polls, w.spurious);
    print_message("  waiter: woke %.1f ms after the reads began, %d poll calls, %d spurious, "
                  "%.1f ms CPU\n",
                  w.t_done - t_read, w.polls, w.spurious, w.cpu_ms);
    if (w.t_done < t_read)
        fail_msg("writer got space %.1f ms before the receiver read anything", t_read - w.t_done);
    /* 300 ms of waiting in 100 ms polls is 3-4 calls; allow some slack, never a busy loop. */
    if (w.polls > 12 || w.spurious > 3)
        fail_msg("the waiting writer spins: %d poll calls, %d spurious POLLOUT in ~300 ms", w.polls,
                 w.spurious);
    if (w.cpu_ms > 100)
        fail_msg("the waiting writer used %.1f ms CPU while waiting ~300 ms (busy wait)", w.cpu_ms);
    if (w.t_done - t_read > 1000)
        fail_msg("the writer woke %.1f ms after the receiver read (expected promptly)",
                 w.t_done - t_read);

    /* Sequentially too: with everything read, POLLOUT is reported at once. */
    drain(c, b);
    p.revents = 0;
    r = c->api->poll(&p, 1, 2000);
    if (r != 1 || !(p.revents & POLLOUT))
        fail_msg("after the receiver read everything, poll(POLLOUT) returned %d revents 0x%x", r,
                 p.revents);
    assert_int_equal(c->api->send(a, msg, sizeof(msg), MSG_NOSIGNAL), (ssize_t)sizeof(msg));
    assert_int_equal(c->api->close(a), 0);
    assert_int_equal(c->api->close(b), 0);
}

/* ------------------------------------------------------------------------------------------ */

static const struct cfg k_stream = {&test_kernel_api, SOCK_STREAM};
static const struct cfg k_seq = {&test_kernel_api, SOCK_SEQPACKET};
static const struct cfg s_stream = {&test_shm_api, SOCK_STREAM};
static const struct cfg s_seq = {&test_shm_api, SOCK_SEQPACKET};

#define T(fn, cs)                                                                                  \
    {                                                                                              \
#fn "/" #cs, fn, NULL, test_teardown, (void *)&cs                                          \
    }
#define T4(fn) T(fn, k_stream), T(fn, k_seq), T(fn, s_stream), T(fn, s_seq)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T4(test_readable_iff_message_waiting), T4(test_lt_epoll_one_per_wakeup),
        T4(test_et_epoll_thread_producer),     T4(test_et_epoll_process_producer),
        T4(test_readable_after_peer_close),    T4(test_pollout_waits_for_space),
    };
    const char *filter = getenv("SHMSOCK_TEST_FILTER"); /* e.g. "*s_seq*" */
    if (filter && *filter)
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
