/*
 * integrity_test.c - two processes exchange 100,000 messages each way at the same time and
 * check that nothing is lost, duplicated, reordered or corrupted.
 *
 * The test process forks two children: a server (accepts on a listener made before the fork)
 * and a client (connects). Each child sends its 100,000 messages while receiving the peer's:
 *   - blocking mode: a sender thread and a receiving main thread, blocking calls;
 *   - non-blocking mode: one thread, O_NONBLOCK, an edge-triggered epoll set for input, and
 *     shm_poll() (the documented way to wait for a free block) over {epoll fd: POLLIN,
 *     socket: POLLOUT} when both directions would block.
 * Message sizes are random from 1 byte to 1 MiB on STREAM (to SO_SNDBUF - 32 on SEQPACKET, the
 * largest message a default SEQPACKET socket accepts), skewed so most are small:
 * size = (1 << r) + random low bits, r uniform in 0..20 for 1/8 of the messages and in 0..10
 * for the rest. Both ends draw the sizes from the same seeded generator, so the receiver knows
 * the length each message must have. A message of 16 bytes or more starts with
 * {sequence number, length, checksum} and the checksum covers header and payload; a shorter
 * message is bytes derived from its sequence number (checked against the expected one).
 * After its last message a sender calls shutdown(SHUT_WR); the receiver must then read end of
 * stream (0): nothing extra arrived.
 * SHM_STATUS must have been SHM_STATUS_SHM during the exchange (sampled by the receiver).
 *
 * Message count: SHMSOCK_INTEGRITY_MESSAGES=N in the environment, or the first argument
 * (default 100000). SHMSOCK_INTEGRITY_KERNEL=1 also runs the same exchange over kernel sockets
 * (reference and speed ratio).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
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

static long n_messages = 100000;
static size_t seq_max; /* SO_SNDBUF - 32 of a fresh SEQPACKET socket */

#define STREAM_MAX ((size_t)1 << 20)
#define CHILD_TIMEOUT_S 240

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ------------------------------------------------------------------------------------------ */
/* Message generator and checker                                                               */

struct gen {
    uint64_t s;
};

static uint64_t gen_next(struct gen *g)
{
    /* xorshift64* */
    g->s ^= g->s >> 12;
    g->s ^= g->s << 25;
    g->s ^= g->s >> 27;
    return g->s * 0x2545F4914F6CDD1Dull;
}

static size_t gen_size(struct gen *g, size_t max)
{
    uint64_t u = gen_next(g);
    unsigned r = (unsigned)(u % 21);
    if (((u >> 8) & 7) != 0)
        r = r % 11; /* 7 in 8 messages: at most 2 KiB */
    size_t low = (size_t)(u >> 16) & (((size_t)1 << r) - 1);
    size_t s = ((size_t)1 << r) + low;
    if (s > max)
        s = max;
    return s;
}

struct mhdr {
    uint32_t seq;
    uint32_t len;
    uint64_t csum;
};

static uint64_t mix_init(uint32_t seq, uint32_t len)
{
    return 0x9e3779b97f4a7c15ull ^ ((uint64_t)seq << 32) ^ len;
}

static inline uint64_t mix(uint64_t x, uint64_t w)
{
    x = (x ^ w) * 0x100000001b3ull;
    return x ^ (x >> 29);
}

static uint64_t payload_csum(uint32_t seq, uint32_t len, const unsigned char *p, size_t n)
{
    uint64_t x = mix_init(seq, len);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        x = mix(x, w);
    }
    for (; i < n; i++)
        x = mix(x, p[i]);
    return x;
}

static unsigned char tiny_byte(uint32_t seq, size_t i)
{
    return (unsigned char)((seq * 2654435761u + (uint32_t)i * 40503u) >> 11);
}

/* Build message seq of len bytes into buf. */
static void build(unsigned char *buf, size_t len, uint32_t seq)
{
    if (len < sizeof(struct mhdr)) {
        for (size_t i = 0; i < len; i++)
            buf[i] = tiny_byte(seq, i);
        return;
    }
    struct mhdr h = {.seq = seq, .len = (uint32_t)len};
    unsigned char *p = buf + sizeof(h);
    size_t n = len - sizeof(h), i = 0;
    uint64_t v = 0x243F6A8885A308D3ull ^ ((uint64_t)seq * 0x9e3779b97f4a7c15ull);
    uint64_t x = mix_init(seq, (uint32_t)len);
    for (; i + 8 <= n; i += 8) {
        v = v * 6364136223846793005ull + 1442695040888963407ull;
        memcpy(p + i, &v, 8);
        x = mix(x, v);
    }
    for (; i < n; i++) {
        p[i] = (unsigned char)(v >> ((i % 8) * 8));
        x = mix(x, p[i]);
    }
    h.csum = x;
    memcpy(buf, &h, sizeof(h));
}

/* Check message seq of expected length len. Returns NULL or a description in err. */
static const char *verify(const unsigned char *buf, size_t got, size_t len, uint32_t seq, char *err,
                          size_t errlen)
{
    if (got != len) {
        snprintf(err, errlen,
                 "message %u: %zu bytes, expected %zu (lost, duplicated, "
                 "reordered or truncated message)",
                 seq, got, len);
        return err;
    }
    if (len < sizeof(struct mhdr)) {
        for (size_t i = 0; i < len; i++)
            if (buf[i] != tiny_byte(seq, i)) {
                snprintf(err, errlen,
                         "message %u (%zu bytes): byte %zu is 0x%02x, expected "
                         "0x%02x",
                         seq, len, i, buf[i], tiny_byte(seq, i));
                return err;
            }
        return NULL;
    }
    struct mhdr h;
    memcpy(&h, buf, sizeof(h));
    if (h.seq != seq || h.len != len) {
        snprintf(err, errlen,
                 "message %u: header says seq %u len %u, expected seq %u len %zu "
                 "(lost, duplicated, reordered or corrupted)",
                 seq, h.seq, h.len, seq, len);
        return err;
    }
    uint64_t c = payload_csum(seq, (uint32_t)len, buf + sizeof(h), len - sizeof(h));
    if (c != h.csum) {
        /* find the first differing byte for the report */
        unsigned char *ref = malloc(len);
        size_t at = len;
        if (ref) {
            build(ref, len, seq);
            for (size_t i = 0; i < len; i++)
                if (ref[i] != buf[i]) {
                    at = i;
                    break;
                }
            free(ref);
        }
        snprintf(err, errlen,
                 "message %u (%zu bytes): checksum mismatch, first bad byte at "
                 "offset %zu (corrupted payload)",
                 seq, len, at);
        return err;
    }
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Child side                                                                                  */

struct report {
    int ok;
    int saw_shm;
    int last_status;
    double ms;
    long sent;
    long received;
    double bytes_sent;
    char err[400];
};

struct side {
    const struct sock_api *api;
    int type;
    int fd;
    size_t max;
    uint64_t send_seed, recv_seed;
    int report_fd;
    const char *name;
    atomic_long sent, received;
    atomic_int saw_shm;
    double bytes_sent;
    double t0;
};

static struct side *the_side;
static atomic_int dying;

static void send_report(struct side *s, int ok, const char *err)
{
    struct report r = {0};
    r.ok = ok;
    r.saw_shm = atomic_load(&s->saw_shm);
    r.last_status = -1;
    if (s->api->is_shm) {
        socklen_t l = sizeof(r.last_status);
        shm_getsockopt(s->fd, SOL_SHMSOCK, SHM_STATUS, &r.last_status, &l);
    }
    r.ms = now_ms() - s->t0;
    r.sent = atomic_load(&s->sent);
    r.received = atomic_load(&s->received);
    r.bytes_sent = s->bytes_sent;
    if (err)
        snprintf(r.err, sizeof(r.err), "%s: %s", s->name, err);
    ssize_t w = write(s->report_fd, &r, sizeof(r));
    if (w != (ssize_t)sizeof(r))
        fprintf(stderr, "integrity %s: writing the report to fd %d failed: %zd errno %d\n", s->name,
                s->report_fd, w, errno);
}

static void die(struct side *s, const char *fmt, ...)
{
    char msg[380];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (atomic_exchange(&dying, 1) == 0) {
        fprintf(stderr, "integrity %s: FAILED: %s (sent %ld, received %ld)\n", s->name, msg,
                atomic_load(&s->sent), atomic_load(&s->received));
        send_report(s, 0, msg);
    }
    _exit(1);
}

static void child_alarm(int sig)
{
    (void)sig;
    struct side *s = the_side;
    die(s, "TIMEOUT after %d s: hung (sent %ld/%ld, received %ld/%ld)", CHILD_TIMEOUT_S,
        atomic_load(&s->sent), n_messages, atomic_load(&s->received), n_messages);
}

static void sample_status(struct side *s)
{
    if (!s->api->is_shm)
        return;
    int st = -1;
    socklen_t l = sizeof(st);
    if (shm_getsockopt(s->fd, SOL_SHMSOCK, SHM_STATUS, &st, &l) != 0)
        die(s, "getsockopt(SHM_STATUS) failed errno %d", errno);
    if (st == SHM_STATUS_SHM)
        atomic_store(&s->saw_shm, 1);
}

/* --- blocking mode --- */

static void *blocking_sender(void *arg)
{
    struct side *s = arg;
    struct gen g = {s->send_seed};
    unsigned char *buf = malloc(s->max);
    for (long i = 0; i < n_messages; i++) {
        size_t len = gen_size(&g, s->max);
        build(buf, len, (uint32_t)i);
        size_t off = 0;
        while (off < len) {
            ssize_t n = s->api->send(s->fd, buf + off, len - off, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                die(s, "send of message %ld (%zu bytes, at %zu) returned %zd errno %d", i, len, off,
                    n, errno);
            if (s->type == SOCK_SEQPACKET && (size_t)n != len)
                die(s, "SEQPACKET send of message %ld returned %zd of %zu", i, n, len);
            off += (size_t)n;
        }
        s->bytes_sent += (double)len;
        atomic_store(&s->sent, i + 1);
    }
    free(buf);
    if (s->api->shutdown(s->fd, SHUT_WR) != 0)
        die(s, "shutdown(SHUT_WR) failed errno %d", errno);
    return NULL;
}

static void recv_exact_blocking(struct side *s, unsigned char *buf, size_t len, long seq)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n = s->api->recv(s->fd, buf + off, len - off, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die(s, "recv of message %ld (%zu bytes, at %zu) returned %zd errno %d", seq, len, off,
                n, errno);
        off += (size_t)n;
    }
}

static void run_blocking(struct side *s)
{
    pthread_t t;
    if (pthread_create(&t, NULL, blocking_sender, s) != 0)
        die(s, "pthread_create failed");
    struct gen g = {s->recv_seed};
    unsigned char *buf = malloc(s->max + 64);
    char err[300];
    for (long i = 0; i < n_messages; i++) {
        size_t len = gen_size(&g, s->max);
        size_t got;
        if (s->type == SOCK_SEQPACKET) {
            ssize_t n;
            do
                n = s->api->recv(s->fd, buf, s->max + 64, 0);
            while (n < 0 && errno == EINTR);
            if (n < 0 || (n == 0 && len > 0))
                die(s, "recv of message %ld (%zu bytes expected) returned %zd errno %d", i, len, n,
                    errno);
            got = (size_t)n;
        } else {
            recv_exact_blocking(s, buf, len, i);
            got = len;
        }
        if (verify(buf, got, len, (uint32_t)i, err, sizeof(err)))
            die(s, "%s", err);
        atomic_store(&s->received, i + 1);
        if ((i & 1023) == 0)
            sample_status(s);
    }
    sample_status(s);
    /* The peer shut down writing after its last message: end of stream, nothing extra. */
    ssize_t n;
    do
        n = s->api->recv(s->fd, buf, 64, 0);
    while (n < 0 && errno == EINTR);
    if (n != 0)
        die(s,
            "after the last message: recv returned %zd errno %d, expected end of stream "
            "(0): extra data",
            n, errno);
    free(buf);
    pthread_join(t, NULL);
}

/* --- non-blocking mode: one thread, epoll (edge-triggered) + shm_poll --- */

static void run_nonblocking(struct side *s)
{
    int fl = s->api->fcntl(s->fd, F_GETFL, 0);
    if (fl < 0 || s->api->fcntl(s->fd, F_SETFL, fl | O_NONBLOCK) != 0)
        die(s, "fcntl O_NONBLOCK failed errno %d", errno);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.fd = s->fd};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev) != 0)
        die(s, "epoll setup failed errno %d", errno);

    struct gen sg = {s->send_seed}, rg = {s->recv_seed};
    unsigned char *sbuf = malloc(s->max), *rbuf = malloc(s->max + 64);
    long si = 0, ri = 0;       /* next message to send / receive */
    size_t slen = 0, soff = 0; /* current outgoing message */
    bool sending = false, shut = false, eof = false;
    size_t rlen = 0, roff = 0; /* current incoming message (STREAM assembly) */
    bool rhave = false;
    long waits = 0, wait_timeouts = 0;
    char err[300];

    while (!(shut && eof)) {
        bool progress = false;
        /* send as much as possible */
        while (!shut) {
            if (!sending) {
                if (si == n_messages) {
                    if (s->api->shutdown(s->fd, SHUT_WR) != 0)
                        die(s, "shutdown(SHUT_WR) failed errno %d", errno);
                    shut = true;
                    break;
                }
                slen = gen_size(&sg, s->max);
                build(sbuf, slen, (uint32_t)si);
                soff = 0;
                sending = true;
            }
            ssize_t n = s->api->send(s->fd, sbuf + soff, slen - soff, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    break;
                die(s, "send of message %ld returned -1 errno %d", si, errno);
            }
            if (n == 0 && slen - soff > 0)
                die(s, "send of message %ld returned 0", si);
            if (s->type == SOCK_SEQPACKET && (size_t)n != slen)
                die(s, "SEQPACKET send of message %ld returned %zd of %zu", si, n, slen);
            soff += (size_t)n;
            progress = true;
            if (soff == slen) {
                s->bytes_sent += (double)slen;
                sending = false;
                atomic_store(&s->sent, ++si);
            }
        }
        /* receive until EAGAIN (edge-triggered contract) */
        while (!eof) {
            if (!rhave && ri < n_messages) {
                rlen = gen_size(&rg, s->max);
                roff = 0;
                rhave = true;
            }
            size_t want = ri == n_messages            ? 64
                          : s->type == SOCK_SEQPACKET ? s->max + 64
                                                      : rlen - roff;
            unsigned char *dst = ri == n_messages            ? rbuf
                                 : s->type == SOCK_SEQPACKET ? rbuf
                                                             : rbuf + roff;
            ssize_t n = s->api->recv(s->fd, dst, want, 0);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    break;
                die(s, "recv of message %ld returned -1 errno %d", ri, errno);
            }
            progress = true;
            if (ri == n_messages) {
                if (n != 0)
                    die(s,
                        "after the last message: recv returned %zd, expected end of stream "
                        "(0): extra data",
                        n);
                eof = true;
                break;
            }
            if (s->type == SOCK_SEQPACKET) {
                if (n == 0 && rlen > 0)
                    die(s, "end of stream before message %ld", ri);
                if (verify(rbuf, (size_t)n, rlen, (uint32_t)ri, err, sizeof(err)))
                    die(s, "%s", err);
            } else {
                if (n == 0)
                    die(s, "end of stream before message %ld (%zu of %zu bytes)", ri, roff, rlen);
                roff += (size_t)n;
                if (roff < rlen)
                    continue;
                if (verify(rbuf, rlen, rlen, (uint32_t)ri, err, sizeof(err)))
                    die(s, "%s", err);
            }
            rhave = false;
            atomic_store(&s->received, ++ri);
            if ((ri & 1023) == 1)
                sample_status(s);
        }
        if (progress || (shut && eof))
            continue;
        /* Both directions would block: wait for input (epoll) or for a free block (shm_poll
         * on the socket for POLLOUT), whichever comes first. */
        struct pollfd p[2] = {{.fd = ep, .events = POLLIN},
                              {.fd = s->fd, .events = shut ? 0 : POLLOUT}};
        int r = s->api->poll(p, shut ? 1 : 2, 10000);
        waits++;
        if (r < 0 && errno != EINTR)
            die(s, "poll failed errno %d", errno);
        if (r == 0) {
            wait_timeouts++;
            die(s,
                "stalled: nothing readable (epoll) and no POLLOUT for 10 s with sent %ld, "
                "received %ld of %ld (a lost wake-up)",
                si, ri, n_messages);
        }
        struct epoll_event evs[4];
        epoll_wait(ep, evs, 4, 0); /* consume the edge */
    }
    sample_status(s);
    free(sbuf);
    free(rbuf);
    close(ep);
    (void)wait_timeouts;
}

struct variant {
    const struct sock_api *api;
    int type;
    bool nonblocking;
};

static void run_child(const struct variant *v, int fd, bool server, int report_fd)
{
    static struct side s;
    memset(&s, 0, sizeof(s));
    s.api = v->api;
    s.type = v->type;
    s.fd = fd;
    s.max = v->type == SOCK_SEQPACKET ? seq_max : STREAM_MAX;
    s.send_seed = server ? 0x5e5e5e5e1234ull : 0xc1c1c1c1abcdull;
    s.recv_seed = server ? 0xc1c1c1c1abcdull : 0x5e5e5e5e1234ull;
    s.report_fd = report_fd;
    s.name = server ? "server" : "client";
    s.t0 = now_ms();
    the_side = &s;
    signal(SIGALRM, child_alarm);
    alarm(CHILD_TIMEOUT_S);
    if (fd < 0)
        die(&s, "socket/connect/accept failed errno %d", errno);
    if (v->type == SOCK_SEQPACKET) {
        int sndbuf = 0;
        socklen_t l = sizeof(sndbuf);
        if (v->api->getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &l) != 0)
            die(&s, "getsockopt SO_SNDBUF failed errno %d", errno);
        if ((size_t)sndbuf - 32 != seq_max)
            die(&s, "connected socket SO_SNDBUF %d differs from a fresh socket's", sndbuf);
    }
    if (v->nonblocking)
        run_nonblocking(&s);
    else
        run_blocking(&s);
    send_report(&s, 1, NULL);
    v->api->close(fd);
    _exit(0);
}

/* ------------------------------------------------------------------------------------------ */
/* The test (parent)                                                                           */

static pid_t kids[2] = {-1, -1};

static int test_teardown(void **state)
{
    (void)state;
    for (int i = 0; i < 2; i++)
        if (kids[i] > 0) {
            kill(kids[i], SIGKILL);
            waitpid(kids[i], NULL, 0);
            kids[i] = -1;
        }
    return 0;
}

static void test_integrity(void **state)
{
    const struct variant *v = *state;
    struct sockaddr_un addr;
    socklen_t alen = test_abstract_addr(&addr);
    int listener = v->api->socket(AF_UNIX, v->type, 0);
    assert_true(listener >= 0);
    assert_int_equal(v->api->bind(listener, (struct sockaddr *)&addr, alen), 0);
    assert_int_equal(v->api->listen(listener, 4), 0);
    int pipes[2][2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pipe2(pipes[i], O_CLOEXEC), 0);

    double t0 = now_ms();
    for (int i = 0; i < 2; i++) {
        kids[i] = fork();
        assert_true(kids[i] >= 0);
        if (kids[i] == 0) {
            close(pipes[i][0]);
            int fd;
            if (i == 0) {
                fd = v->api->accept(listener, NULL, NULL);
                v->api->close(listener);
            } else {
                v->api->close(listener);
                fd = v->api->socket(AF_UNIX, v->type, 0);
                if (fd >= 0 && v->api->connect(fd, (struct sockaddr *)&addr, alen) != 0)
                    fd = -1;
            }
            run_child(v, fd, i == 0, pipes[i][1]);
        }
        close(pipes[i][1]);
    }
    assert_int_equal(v->api->close(listener), 0);

    /* Wait for both, killing them if they outlive the children's own alarm. */
    int status[2] = {0, 0};
    int left = 2;
    while (left > 0) {
        for (int i = 0; i < 2; i++) {
            if (kids[i] <= 0)
                continue;
            pid_t r = waitpid(kids[i], &status[i], WNOHANG);
            if (r == kids[i]) {
                kids[i] = -1;
                left--;
            }
        }
        if (left > 0) {
            if (now_ms() - t0 > (CHILD_TIMEOUT_S + 20) * 1000.0)
                fail_msg("children did not exit");
            usleep(20000);
        }
    }
    double elapsed = now_ms() - t0;

    struct report rep[2];
    const char *names[2] = {"server", "client"};
    for (int i = 0; i < 2; i++) {
        memset(&rep[i], 0, sizeof(rep[i]));
        ssize_t n = read(pipes[i][0], &rep[i], sizeof(rep[i]));
        close(pipes[i][0]);
        if (n != (ssize_t)sizeof(rep[i]))
            snprintf(rep[i].err, sizeof(rep[i].err), "%s: died without a report (status 0x%x)",
                     names[i], status[i]);
    }
    print_message("  %s %s %s: %ld messages each way, %.0f MB each way, %.2f s "
                  "(server %.2f s, client %.2f s)\n",
                  v->api->name, v->type == SOCK_STREAM ? "STREAM" : "SEQPACKET",
                  v->nonblocking ? "non-blocking+epoll" : "blocking", n_messages,
                  rep[0].bytes_sent / 1e6, elapsed / 1e3, rep[0].ms / 1e3, rep[1].ms / 1e3);
    bool bad[2];
    for (int i = 0; i < 2; i++)
        bad[i] = !rep[i].ok || !WIFEXITED(status[i]) || WEXITSTATUS(status[i]) != 0;
    if (bad[0] || bad[1]) /* both reports: the first failure often causes the other */
        fail_msg("[%s] %s (exit status 0x%x, sent %ld, received %ld) | [%s] %s (exit status "
                 "0x%x, sent %ld, received %ld)",
                 names[0], bad[0] ? rep[0].err : "ok", status[0], rep[0].sent, rep[0].received,
                 names[1], bad[1] ? rep[1].err : "ok", status[1], rep[1].sent, rep[1].received);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(rep[i].sent, n_messages);
        assert_int_equal(rep[i].received, n_messages);
    }
    if (v->api->is_shm)
        for (int i = 0; i < 2; i++)
            if (!rep[i].saw_shm)
                fail_msg("%s: SHM_STATUS never read SHM_STATUS_SHM during the exchange (last "
                         "value %d): the payload did not go through shared memory",
                         names[i], rep[i].last_status);
}

static const struct variant shm_stream_blocking = {&test_shm_api, SOCK_STREAM, false};
static const struct variant shm_seqpacket_blocking = {&test_shm_api, SOCK_SEQPACKET, false};
static const struct variant shm_stream_nonblocking = {&test_shm_api, SOCK_STREAM, true};
static const struct variant shm_seqpacket_nonblocking = {&test_shm_api, SOCK_SEQPACKET, true};
static const struct variant kernel_stream_blocking = {&test_kernel_api, SOCK_STREAM, false};
static const struct variant kernel_seqpacket_blocking = {&test_kernel_api, SOCK_SEQPACKET, false};
static const struct variant kernel_stream_nonblocking = {&test_kernel_api, SOCK_STREAM, true};
static const struct variant kernel_seqpacket_nonblocking = {&test_kernel_api, SOCK_SEQPACKET, true};

#define T(cs)                                                                                      \
    {                                                                                              \
        "test_integrity/" #cs, test_integrity, NULL, test_teardown, (void *)&cs                    \
    }

int main(int argc, char **argv)
{
    const char *env = getenv("SHMSOCK_INTEGRITY_MESSAGES");
    if (argc > 1)
        env = argv[1];
    if (env && *env) {
        n_messages = strtol(env, NULL, 10);
        if (n_messages <= 0 || n_messages > 0x7fffffff) {
            fprintf(stderr, "bad message count '%s'\n", env);
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    int probe = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    int sndbuf = 0;
    socklen_t l = sizeof(sndbuf);
    if (probe < 0 || getsockopt(probe, SOL_SOCKET, SO_SNDBUF, &sndbuf, &l) != 0) {
        perror("SO_SNDBUF probe");
        return 2;
    }
    close(probe);
    seq_max = (size_t)sndbuf - 32;
    fprintf(stderr,
            "integrity_test: %ld messages each way; STREAM sizes 1..%zu, SEQPACKET "
            "1..%zu\n",
            n_messages, STREAM_MAX, seq_max);

    const struct CMUnitTest tests[] = {
        T(shm_stream_blocking),       T(shm_seqpacket_blocking),       T(shm_stream_nonblocking),
        T(shm_seqpacket_nonblocking), T(kernel_stream_blocking),       T(kernel_seqpacket_blocking),
        T(kernel_stream_nonblocking), T(kernel_seqpacket_nonblocking),
    };
    const char *filter = getenv("SHMSOCK_TEST_FILTER"); /* e.g. "*seqpacket*" */
    if (filter && *filter)
        cmocka_set_test_filter(filter);
    const char *k = getenv("SHMSOCK_INTEGRITY_KERNEL");
    size_t count = (k && *k && *k != '0') ? 8 : 4;
    return _cmocka_run_group_tests("integrity_test", tests, count, NULL, NULL);
}
