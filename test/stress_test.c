/*
 * stress_test.c - robustness under load, on negotiated shm connections:
 *   - one epoll server (this process) with 64 client processes (32 STREAM, 32 SEQPACKET);
 *     each client sends numbered, checksummed messages of random size (mostly small, some up
 *     to 64 KiB) with random flags (0, MSG_NOSIGNAL, MSG_DONTWAIT with a retry through
 *     shm_poll(POLLOUT), send or sendmsg with two iovecs); the server checks each one and
 *     echoes every 16th back, which a reader thread of the client checks while its main thread
 *     keeps sending (a reader and a writer on one socket); at the end the server sends a
 *     summary (count and checksum sum) that the client compares with its own;
 *   - 4 threads sending on one socket (SEQPACKET, then STREAM) to a receiving child process,
 *     with per-thread sequence numbers: messages must never interleave.
 * Every message carries its sender, a sequence number and a 64-bit checksum of header and
 * payload: the receivers check that nothing is lost, duplicated, reordered or corrupted.
 * STREAM receivers read the fixed header with MSG_WAITALL.
 *
 * Total messages: SHMSOCK_STRESS_MESSAGES (default 1,000,000): 60% for the server part, 20%
 * for each 4-thread part. Prints counts, elapsed time and throughput.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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

#define DEFAULT_MESSAGES 1000000L
#define CLIENTS 64
#define SENDER_THREADS 4
#define ECHO_EVERY 16
#define MAX_MSG (64 * 1024)
#define MAGIC 0x53545253u /* "SRTS" */
#define WATCHDOG_SECONDS 900

enum kind { KIND_DATA = 1, KIND_END = 2, KIND_SUMMARY = 3 };

struct msg_hdr {
    uint32_t magic;
    uint32_t sender;
    uint64_t seq;
    uint32_t len; /* whole message, header included */
    uint32_t kind;
    uint64_t sum; /* checksum of the header (sum = 0) and the payload */
};
_Static_assert(sizeof(struct msg_hdr) == 32, "header size");

/* ---- helpers ---- */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static uint64_t mix(uint64_t a, uint64_t b)
{
    uint64_t x = a * 0x9E3779B97F4A7C15ull ^ (b + 0x632BE59BD9B4E019ull);
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    return x | 1;
}

static uint64_t checksum(const void *data, size_t len, uint64_t h)
{
    const unsigned char *p = data;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0x100000001B3ull;
        h ^= h >> 32;
    }
    for (; i < len; i++)
        h = (h ^ p[i]) * 0x100000001B3ull;
    return h;
}

static uint64_t message_sum(const struct msg_hdr *hdr, const void *payload)
{
    struct msg_hdr copy = *hdr;
    copy.sum = 0;
    uint64_t h = checksum(&copy, sizeof(copy), 0xcbf29ce484222325ull);
    return checksum(payload, copy.len - sizeof(copy), h);
}

/* Skewed sizes: mostly small, some up to MAX_MSG (whole message, header included). */
static uint32_t random_size(uint64_t *rng)
{
    uint64_t r = xorshift(rng);
    unsigned pick = (unsigned)(r % 100);
    r >>= 8;
    if (pick < 70)
        return (uint32_t)(sizeof(struct msg_hdr) + r % 256);
    if (pick < 92)
        return (uint32_t)(256 + r % (4096 - 256));
    if (pick < 99)
        return (uint32_t)(4096 + r % (16384 - 4096));
    return (uint32_t)(16384 + r % (MAX_MSG - 16384 + 1));
}

/* Build message (sender, seq) of total length len into buf. */
static void build_message(unsigned char *buf, uint32_t sender, uint64_t seq, uint32_t len,
                          uint32_t kind)
{
    struct msg_hdr hdr = {.magic = MAGIC, .sender = sender, .seq = seq, .len = len, .kind = kind};
    uint64_t s = mix(sender, seq);
    size_t plen = len - sizeof(hdr);
    unsigned char *p = buf + sizeof(hdr);
    size_t i = 0;
    for (; i + 8 <= plen; i += 8) {
        uint64_t w = xorshift(&s);
        memcpy(p + i, &w, 8);
    }
    for (; i < plen; i++)
        p[i] = (unsigned char)xorshift(&s);
    hdr.sum = message_sum(&hdr, p);
    memcpy(buf, &hdr, sizeof(hdr));
}

/* Check a received message; returns NULL or what is wrong. */
static const char *check_message(const unsigned char *buf, size_t got, uint32_t sender,
                                 uint64_t seq)
{
    struct msg_hdr hdr;
    if (got < sizeof(hdr))
        return "short message";
    memcpy(&hdr, buf, sizeof(hdr));
    if (hdr.magic != MAGIC)
        return "bad magic (corrupted or misframed)";
    if (hdr.len != got)
        return "length differs from the header's";
    if (hdr.sum != message_sum(&hdr, buf + sizeof(hdr)))
        return "checksum mismatch (corrupted)";
    if (hdr.sender != sender)
        return "message from the wrong sender";
    if (hdr.seq < seq)
        return "duplicated or reordered (sequence number went back)";
    if (hdr.seq > seq)
        return "lost (sequence number skipped)";
    return NULL;
}

static void child_fail(const char *who, unsigned id, const char *what, uint64_t seq)
{
    fprintf(stderr, "stress: %s %u: %s (at seq %llu, errno %d %s)\n", who, id, what,
            (unsigned long long)seq, errno, strerror(errno));
    _exit(2);
}

/* Send a whole message with the given flags. MSG_DONTWAIT: on EAGAIN wait with shm_poll. */
static int send_message(int fd, const unsigned char *buf, size_t len, int flags, bool use_msg,
                        unsigned long *eagains)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n;
        if (use_msg && done < sizeof(struct msg_hdr)) {
            struct iovec iov[2] = {
                {.iov_base = (void *)(buf + done), .iov_len = sizeof(struct msg_hdr) - done},
                {.iov_base = (void *)(buf + sizeof(struct msg_hdr)),
                 .iov_len = len - sizeof(struct msg_hdr)},
            };
            struct msghdr m = {.msg_iov = iov, .msg_iovlen = 2};
            n = shm_sendmsg(fd, &m, flags);
        } else {
            n = shm_send(fd, buf + done, len - done, flags);
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if ((errno == EAGAIN || errno == EWOULDBLOCK) && (flags & MSG_DONTWAIT)) {
                (*eagains)++;
                struct pollfd p = {.fd = fd, .events = POLLOUT};
                if (shm_poll(&p, 1, 1000) < 0 && errno != EINTR)
                    return -1;
                continue;
            }
            return -1;
        }
        done += (size_t)n;
    }
    return 0;
}

/* Read one whole message. STREAM: header with MSG_WAITALL, then the rest. 0 at EOF. */
static ssize_t recv_message(int fd, int type, unsigned char *buf, size_t cap, int flags)
{
    if (type == SOCK_SEQPACKET) {
        ssize_t n;
        do
            n = shm_recv(fd, buf, cap, flags);
        while (n < 0 && errno == EINTR);
        return n;
    }
    ssize_t n;
    do
        n = shm_recv(fd, buf, sizeof(struct msg_hdr), MSG_WAITALL | flags);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return n;
    if ((size_t)n != sizeof(struct msg_hdr)) {
        errno = EPROTO;
        return -1;
    }
    struct msg_hdr hdr;
    memcpy(&hdr, buf, sizeof(hdr));
    if (hdr.magic != MAGIC || hdr.len < sizeof(hdr) || hdr.len > cap) {
        errno = EBADMSG;
        return -1;
    }
    size_t done = sizeof(hdr);
    while (done < hdr.len) {
        ssize_t m = shm_recv(fd, buf + done, hdr.len - done, MSG_WAITALL);
        if (m < 0 && errno == EINTR)
            continue;
        if (m <= 0) {
            if (m == 0)
                errno = EPIPE;
            return -1;
        }
        done += (size_t)m;
    }
    return (ssize_t)done;
}

static int random_flags(uint64_t *rng, bool allow_dontwait, bool *use_msg)
{
    uint64_t r = xorshift(rng);
    *use_msg = (r >> 20) % 4 == 0;
    switch (r % 4) {
    case 0:
        return 0;
    case 1:
        return MSG_NOSIGNAL;
    default:
        return allow_dontwait ? MSG_DONTWAIT | ((r >> 8) & 1 ? MSG_NOSIGNAL : 0) : MSG_NOSIGNAL;
    }
}

/* ==== part 1: one epoll server, 64 clients ==== */

struct client_reader {
    int fd;
    int type;
    unsigned id;
    uint64_t messages;
    const char *error;
    uint64_t error_seq;
    uint64_t echoes;
    uint64_t summary_count;
    uint64_t summary_sum;
};

static void *client_reader_main(void *p)
{
    struct client_reader *r = p;
    unsigned char *buf = malloc(MAX_MSG);
    uint64_t next_echo = 0;
    for (;;) {
        ssize_t n = recv_message(r->fd, r->type, buf, MAX_MSG, 0);
        if (n <= 0) {
            r->error = n == 0 ? "EOF before the summary" : "recv of an echo failed";
            break;
        }
        struct msg_hdr hdr;
        memcpy(&hdr, buf, sizeof(hdr));
        if (hdr.kind == KIND_SUMMARY) {
            const char *bad = check_message(buf, (size_t)n, r->id, r->messages);
            if (bad != NULL) {
                r->error = bad;
                r->error_seq = hdr.seq;
                break;
            }
            memcpy(&r->summary_sum, buf + sizeof(hdr), 8);
            r->summary_count = hdr.seq;
            break;
        }
        const char *bad = check_message(buf, (size_t)n, r->id, next_echo);
        if (bad != NULL) {
            r->error = bad;
            r->error_seq = next_echo;
            break;
        }
        r->echoes++;
        next_echo += ECHO_EVERY;
    }
    free(buf);
    return NULL;
}

static void client_main(unsigned id, int type, const struct sockaddr_un *addr, socklen_t alen,
                        uint64_t messages)
{
    alarm(WATCHDOG_SECONDS);
    int fd = shm_socket(AF_UNIX, type, 0);
    if (fd < 0)
        child_fail("client", id, "shm_socket", 0);
    if (shm_connect(fd, (const struct sockaddr *)addr, alen) < 0)
        child_fail("client", id, "shm_connect", 0);
    uint64_t rng = mix(id, 12345);
    unsigned char *buf = malloc(MAX_MSG);
    uint64_t sum_sent = 0;
    unsigned long eagains = 0;

    struct client_reader r = {.fd = fd, .type = type, .id = id, .messages = messages};
    pthread_t th;
    if (pthread_create(&th, NULL, client_reader_main, &r) != 0)
        child_fail("client", id, "pthread_create", 0);
    for (uint64_t seq = 0; seq < messages; seq++) {
        uint32_t len = random_size(&rng);
        build_message(buf, id, seq, len, KIND_DATA);
        struct msg_hdr hdr;
        memcpy(&hdr, buf, sizeof(hdr));
        sum_sent += hdr.sum;
        bool use_msg;
        int flags = random_flags(&rng, true, &use_msg);
        if (send_message(fd, buf, len, flags, use_msg, &eagains) < 0)
            child_fail("client", id, "send failed", seq);
    }
    build_message(buf, id, messages, sizeof(struct msg_hdr), KIND_END);
    if (send_message(fd, buf, sizeof(struct msg_hdr), 0, false, &eagains) < 0)
        child_fail("client", id, "send END failed", messages);
    pthread_join(th, NULL);
    if (r.error != NULL)
        child_fail("client", id, r.error, r.error_seq);
    uint64_t expected_echoes = (messages + ECHO_EVERY - 1) / ECHO_EVERY;
    if (r.echoes != expected_echoes)
        child_fail("client", id, "wrong number of echoes", r.echoes);
    if (r.summary_count != messages || r.summary_sum != sum_sent)
        child_fail("client", id, "server summary differs from what was sent", r.summary_count);
    if (test_shm_status(fd) != SHM_STATUS_SHM)
        child_fail("client", id, "connection never switched to shared memory", 0);
    shm_close(fd);
    _exit(0);
}

struct server_conn {
    int fd;
    int type;
    bool identified;
    unsigned id;
    uint64_t next_seq;
    uint64_t sum;
    bool ended;
};

static void server_send_all(int fd, const unsigned char *buf, size_t len)
{
    unsigned long eagains = 0;
    if (send_message(fd, buf, len, MSG_NOSIGNAL, false, &eagains) < 0)
        fail_msg("server: send to a client failed: %s", strerror(errno));
}

/* Handle one message; returns false when the connection ended (EOF). */
static bool server_read_one(struct server_conn *c, unsigned char *buf, unsigned long *spurious)
{
    int flags = c->type == SOCK_SEQPACKET ? MSG_DONTWAIT : 0;
    ssize_t n = recv_message(c->fd, c->type, buf, MAX_MSG, flags);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        (*spurious)++;
        return true;
    }
    if (n < 0)
        fail_msg("server: recv from client %u failed at seq %llu: %s", c->id,
                 (unsigned long long)c->next_seq, strerror(errno));
    if (n == 0) {
        if (!c->ended)
            fail_msg("server: client %u closed before END (at seq %llu)", c->id,
                     (unsigned long long)c->next_seq);
        return false;
    }
    struct msg_hdr hdr;
    memcpy(&hdr, buf, sizeof(hdr));
    if (!c->identified) {
        c->id = hdr.sender;
        c->identified = true;
    }
    const char *bad = check_message(buf, (size_t)n, c->id, c->next_seq);
    if (bad != NULL)
        fail_msg("server: client %u message %llu: %s (got sender %u seq %llu len %u)", c->id,
                 (unsigned long long)c->next_seq, bad, hdr.sender, (unsigned long long)hdr.seq,
                 hdr.len);
    if (c->ended)
        fail_msg("server: client %u sent after END", c->id);
    if (hdr.kind == KIND_END) {
        c->ended = true;
        if (test_shm_status(c->fd) != SHM_STATUS_SHM)
            fail_msg("server: connection of client %u is not on shared memory", c->id);
        unsigned char out[sizeof(struct msg_hdr) + 8];
        struct msg_hdr s = {.magic = MAGIC,
                            .sender = c->id,
                            .seq = c->next_seq,
                            .len = sizeof(out),
                            .kind = KIND_SUMMARY};
        memcpy(out + sizeof(s), &c->sum, 8);
        s.sum = message_sum(&s, out + sizeof(s));
        memcpy(out, &s, sizeof(s));
        server_send_all(c->fd, out, sizeof(out));
        return true;
    }
    c->sum += hdr.sum;
    if (c->next_seq % ECHO_EVERY == 0)
        server_send_all(c->fd, buf, (size_t)n);
    c->next_seq++;
    return true;
}

static long total_messages(void)
{
    const char *env = getenv("SHMSOCK_STRESS_MESSAGES");
    long n = env != NULL ? strtol(env, NULL, 10) : DEFAULT_MESSAGES;
    return n > 1000 ? n : 1000;
}

static void test_server_64_clients(void **state)
{
    (void)state;
    test_watchdog(WATCHDOG_SECONDS, "stress: server with 64 clients");
    long total = total_messages() * 6 / 10;
    uint64_t per_client = (uint64_t)total / CLIENTS;

    int listeners[2];
    struct sockaddr_un addrs[2];
    socklen_t alens[2];
    const int types[2] = {SOCK_STREAM, SOCK_SEQPACKET};
    int ep = epoll_create1(EPOLL_CLOEXEC);
    assert_true(ep >= 0);
    for (int i = 0; i < 2; i++) {
        alens[i] = test_abstract_addr(&addrs[i]);
        listeners[i] = shm_socket(AF_UNIX, types[i], 0);
        assert_true(listeners[i] >= 0);
        assert_int_equal(shm_bind(listeners[i], (struct sockaddr *)&addrs[i], alens[i]), 0);
        assert_int_equal(shm_listen(listeners[i], CLIENTS), 0);
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)i};
        assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, listeners[i], &ev), 0);
    }

    int64_t t0 = now_ns();
    pid_t pids[CLIENTS];
    for (unsigned i = 0; i < CLIENTS; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            close(ep);
            shm_close(listeners[0]);
            shm_close(listeners[1]);
            client_main(i, types[i % 2], &addrs[i % 2], alens[i % 2], per_client);
        }
    }

    struct server_conn conns[CLIENTS];
    int accepted = 0, open_conns = 0;
    unsigned long spurious = 0, wakeups = 0;
    unsigned char *buf = malloc(MAX_MSG);
    assert_non_null(buf);
    while (accepted < CLIENTS || open_conns > 0) {
        struct epoll_event evs[32];
        int n = epoll_wait(ep, evs, 32, 10000);
        if (n < 0 && errno == EINTR)
            continue;
        assert_true(n >= 0);
        if (n == 0)
            fail_msg("server: no readiness for 10 s (accepted %d, open %d)", accepted, open_conns);
        for (int e = 0; e < n; e++) {
            uint64_t tag = evs[e].data.u64;
            if (tag < 2) {
                int fd = shm_accept(listeners[tag], NULL, NULL);
                assert_true(fd >= 0);
                assert_true(accepted < CLIENTS);
                conns[accepted] = (struct server_conn){.fd = fd, .type = types[tag]};
                struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 2 + (uint64_t)accepted};
                assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), 0);
                accepted++;
                open_conns++;
                continue;
            }
            struct server_conn *c = &conns[tag - 2];
            wakeups++;
            if (!server_read_one(c, buf, &spurious)) {
                assert_int_equal(epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL), 0);
                assert_int_equal(shm_close(c->fd), 0);
                c->fd = -1;
                open_conns--;
            }
        }
    }
    int failed = 0;
    for (unsigned i = 0; i < CLIENTS; i++) {
        int status;
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failed++;
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    uint64_t got = 0;
    for (int i = 0; i < CLIENTS; i++) {
        assert_true(conns[i].ended);
        assert_int_equal(conns[i].next_seq, per_client);
        got += conns[i].next_seq;
    }
    print_message("    server: %d clients x %llu = %llu messages (+%llu echoes) in %.2f s: "
                  "%.0f msg/s; %lu read wake-ups, %lu ended in EAGAIN\n",
                  CLIENTS, (unsigned long long)per_client, (unsigned long long)got,
                  (unsigned long long)(CLIENTS * ((per_client + ECHO_EVERY - 1) / ECHO_EVERY)),
                  secs, (double)got / secs, wakeups, spurious);
    free(buf);
    close(ep);
    shm_close(listeners[0]);
    shm_close(listeners[1]);
    if (failed)
        fail_msg("%d client process(es) failed (see their messages above)", failed);
    test_watchdog(0, NULL);
}

/* ==== part 2: 4 threads sending on one socket ==== */

struct sender {
    int fd;
    int type;
    unsigned id;
    uint64_t messages;
    int err;
    uint64_t err_seq;
    unsigned long eagains;
    uint64_t bytes;
};

static void *sender_main(void *p)
{
    struct sender *s = p;
    uint64_t rng = mix(s->id, 999 + (uint64_t)s->type);
    unsigned char *buf = malloc(MAX_MSG);
    for (uint64_t seq = 0; seq <= s->messages; seq++) {
        bool end = seq == s->messages;
        uint32_t len = end ? sizeof(struct msg_hdr) : random_size(&rng);
        build_message(buf, s->id, seq, len, end ? KIND_END : KIND_DATA);
        bool use_msg;
        /* STREAM: a non-blocking send may be partial, and another thread may send between
         * its parts (as on a kernel socket): only whole blocking sends are atomic. */
        int flags = random_flags(&rng, s->type == SOCK_SEQPACKET, &use_msg);
        if (send_message(s->fd, buf, len, flags, use_msg, &s->eagains) < 0) {
            s->err = errno;
            s->err_seq = seq;
            break;
        }
        s->bytes += len;
    }
    free(buf);
    return NULL;
}

static void receiver_main(int fd, int type, uint64_t messages)
{
    alarm(WATCHDOG_SECONDS);
    unsigned char *buf = malloc(MAX_MSG);
    uint64_t next[SENDER_THREADS] = {0};
    bool ended[SENDER_THREADS] = {false};
    int ends = 0;
    while (ends < SENDER_THREADS) {
        ssize_t n = recv_message(fd, type, buf, MAX_MSG, 0);
        if (n <= 0)
            child_fail("receiver", 0, n == 0 ? "EOF before every END" : "recv failed", 0);
        struct msg_hdr hdr;
        memcpy(&hdr, buf, sizeof(hdr));
        if (hdr.magic != MAGIC || hdr.sender >= SENDER_THREADS)
            child_fail("receiver", 0, "bad header (interleaved or corrupted)", hdr.seq);
        const char *bad = check_message(buf, (size_t)n, hdr.sender, next[hdr.sender]);
        if (bad != NULL)
            child_fail("receiver: thread", hdr.sender, bad, next[hdr.sender]);
        if (ended[hdr.sender])
            child_fail("receiver: thread", hdr.sender, "message after END", hdr.seq);
        if (hdr.kind == KIND_END) {
            if (hdr.seq != messages)
                child_fail("receiver: thread", hdr.sender, "END at the wrong count", hdr.seq);
            ended[hdr.sender] = true;
            ends++;
        }
        next[hdr.sender]++;
    }
    if (test_shm_status(fd) != SHM_STATUS_SHM)
        child_fail("receiver", 0, "not on shared memory", 0);
    char ok = 'k';
    if (shm_send(fd, &ok, 1, MSG_NOSIGNAL) != 1)
        child_fail("receiver", 0, "final ack", 0);
    _exit(0);
}

static void threads_one_socket(int type)
{
    test_watchdog(WATCHDOG_SECONDS, "stress: 4 threads on one socket");
    uint64_t per_thread = (uint64_t)(total_messages() / 5) / SENDER_THREADS;
    int a, b;
    test_connect_pair(&test_shm_api, type, &a, &b);
    test_handshake(&test_shm_api, a, b);
    assert_int_equal(test_shm_status(a), SHM_STATUS_SHM);

    int64_t t0 = now_ns();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        shm_close(a);
        receiver_main(b, type, per_thread);
    }
    assert_int_equal(shm_close(b), 0);

    struct sender s[SENDER_THREADS];
    pthread_t th[SENDER_THREADS];
    for (unsigned i = 0; i < SENDER_THREADS; i++) {
        s[i] = (struct sender){.fd = a, .type = type, .id = i, .messages = per_thread};
        assert_int_equal(pthread_create(&th[i], NULL, sender_main, &s[i]), 0);
    }
    uint64_t bytes = 0;
    unsigned long eagains = 0;
    for (unsigned i = 0; i < SENDER_THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        bytes += s[i].bytes;
        eagains += s[i].eagains;
    }
    char ack = 0;
    ssize_t n = shm_recv(a, &ack, 1, 0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    double secs = (double)(now_ns() - t0) / 1e9;
    for (unsigned i = 0; i < SENDER_THREADS; i++)
        if (s[i].err != 0)
            fail_msg("sender thread %u: send failed at seq %llu: %s", i,
                     (unsigned long long)s[i].err_seq, strerror(s[i].err));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("receiver process failed (status 0x%x; see its message above)", status);
    assert_int_equal(n, 1);
    assert_int_equal(ack, 'k');
    print_message("    %s: %d threads x %llu messages (%.1f MB) in %.2f s: %.0f msg/s, "
                  "%.1f MB/s, %lu EAGAIN retries\n",
                  type == SOCK_STREAM ? "STREAM" : "SEQPACKET", SENDER_THREADS,
                  (unsigned long long)per_thread, (double)bytes / 1e6, secs,
                  (double)(per_thread * SENDER_THREADS) / secs, (double)bytes / 1e6 / secs,
                  eagains);
    assert_int_equal(shm_close(a), 0);
    test_watchdog(0, NULL);
}

static void test_four_threads_seqpacket(void **state)
{
    (void)state;
    threads_one_socket(SOCK_SEQPACKET);
}

static void test_four_threads_stream(void **state)
{
    (void)state;
    threads_one_socket(SOCK_STREAM);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* a SIGPIPE must not hide the EPIPE a test would report */
    long total = total_messages();
    printf("stress_test: %ld messages in total (SHMSOCK_STRESS_MESSAGES)\n", total);
    fflush(stdout);
    int64_t t0 = now_ns();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_64_clients),
        cmocka_unit_test(test_four_threads_seqpacket),
        cmocka_unit_test(test_four_threads_stream),
    };
    if (getenv("SHMSOCK_TEST_FILTER") != NULL)
        cmocka_set_test_filter(getenv("SHMSOCK_TEST_FILTER"));
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    printf("stress_test: %.2f s in total\n", (double)(now_ns() - t0) / 1e9);
    return rc;
}
