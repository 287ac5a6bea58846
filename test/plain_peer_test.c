/*
 * plain_peer_test.c - a shm socket talking to a plain kernel socket.
 *
 * shmsock.h promises that a shm socket works with a peer that does not speak shmsock: the plain
 * program sees exactly the bytes (SOCK_STREAM) or messages (SOCK_SEQPACKET, boundaries and
 * zero-length messages included) that were sent, in both directions, whichever side connects.
 * The plain side here uses only libc calls (read, write, send, recv, recvmsg).
 *
 * The offer rule (header): the shm side attaches exactly two descriptors (a sealed memfd whose
 * header starts with "SHMSOCK\0", then a Unix socket) as SCM_RIGHTS to the first message it
 * sends; a plain peer that calls recvmsg() with a control buffer sees them there and nowhere
 * else. With shm_setsockopt(SOL_SHMSOCK, SHM_NEGOTIATE, 0) it sees no ancillary data at all.
 * SHM_STATUS on the shm side never reaches SHM_STATUS_SHM with a plain peer.
 *
 * Other families (AF_INET) and AF_UNIX SOCK_DGRAM pass straight through: SHM_STATUS reads
 * SHM_STATUS_PASSTHROUGH and a plain peer exchanges data as with a plain socket.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
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
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "shmsock.h"
#include "test_support.h"

/* Every test arms an alarm: a hang aborts the test binary with a message instead of blocking. */
static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "plain_peer_test: TIMEOUT - a blocking call hung (alarm)\n";
    ssize_t r = write(2, msg, sizeof(msg) - 1);
    (void)r;
    abort();
}

static void guard(unsigned seconds)
{
    signal(SIGALRM, on_alarm);
    alarm(seconds);
}

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
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Helpers                                                                                     */

/* client_api connects to a listener made with server_api (bind/listen/connect/accept). */
static void mixed_pair(const struct sock_api *client_api, const struct sock_api *server_api,
                       int type, int *client, int *server)
{
    struct sockaddr_un addr;
    socklen_t len = test_abstract_addr(&addr);
    int listener = server_api->socket(AF_UNIX, type, 0);
    assert_true(listener >= 0);
    assert_int_equal(server_api->bind(listener, (struct sockaddr *)&addr, len), 0);
    assert_int_equal(server_api->listen(listener, 8), 0);
    *client = client_api->socket(AF_UNIX, type, 0);
    assert_true(*client >= 0);
    assert_int_equal(client_api->connect(*client, (struct sockaddr *)&addr, len), 0);
    *server = server_api->accept(listener, NULL, NULL);
    assert_true(*server >= 0);
    assert_int_equal(server_api->close(listener), 0);
}

struct pp_case {
    int type;
    bool shm_is_client;
    bool shm_sends_first;
};

/* Make the pair of a case: *shm_fd is the shm end, *plain_fd the plain kernel end. */
static void case_pair(const struct pp_case *c, int *shm_fd, int *plain_fd)
{
    if (c->shm_is_client)
        mixed_pair(&test_shm_api, &test_kernel_api, c->type, shm_fd, plain_fd);
    else
        mixed_pair(&test_kernel_api, &test_shm_api, c->type, plain_fd, shm_fd);
}

static void assert_not_shm_status(int shm_fd)
{
    int st = test_shm_status(shm_fd);
    if (st != SHM_STATUS_PLAIN && st != SHM_STATUS_OFFERED)
        fail_msg("SHM_STATUS with a plain peer is %d, expected PLAIN(0) or OFFERED(1)", st);
}

/* Nothing more is queued on a plain fd (no extra bytes, no stray message). */
static void assert_plain_empty(int fd)
{
    char c;
    errno = 0;
    ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
    if (n != -1 || (errno != EAGAIN && errno != EWOULDBLOCK))
        fail_msg("plain side: expected nothing more queued, recv returned %zd (errno %d)", n,
                 errno);
}

static void assert_shm_empty(int fd)
{
    char c;
    errno = 0;
    ssize_t n = shm_recv(fd, &c, 1, MSG_DONTWAIT);
    if (n != -1 || (errno != EAGAIN && errno != EWOULDBLOCK))
        fail_msg("shm side: expected nothing more queued, shm_recv returned %zd (errno %d)", n,
                 errno);
}

/* Plain side: read exactly len bytes with read(2). */
static void plain_read_all(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            fail_msg("plain read returned %zd (errno %d) with %zu bytes still expected", n, errno,
                     len);
        p += n;
        len -= (size_t)n;
    }
}

static void plain_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            fail_msg("plain write returned %zd (errno %d)", n, errno);
        p += n;
        len -= (size_t)n;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Stream: exact bytes both ways                                                               */

static const size_t stream_chunks[] = {5, 1, 4000, 70000, 3, 4096};
#define N_STREAM_CHUNKS (sizeof(stream_chunks) / sizeof(stream_chunks[0]))

/* One round on SOCK_STREAM: `from` sends the chunks (each one call), `to` reads them all. */
static void stream_round(bool shm_sends, int shm_fd, int plain_fd, unsigned seed)
{
    size_t total = 0;
    for (size_t i = 0; i < N_STREAM_CHUNKS; i++)
        total += stream_chunks[i];
    char *out = malloc(total), *in = malloc(total);
    assert_non_null(out);
    assert_non_null(in);
    test_fill_pattern(out, total, seed);
    size_t off = 0;
    for (size_t i = 0; i < N_STREAM_CHUNKS; i++) {
        if (shm_sends)
            test_send_all(&test_shm_api, shm_fd, out + off, stream_chunks[i]);
        else if (i % 2)
            plain_write_all(plain_fd, out + off, stream_chunks[i]);
        else
            assert_int_equal(send(plain_fd, out + off, stream_chunks[i], 0),
                             (ssize_t)stream_chunks[i]);
        off += stream_chunks[i];
    }
    memset(in, 0, total);
    if (shm_sends) {
        plain_read_all(plain_fd, in, total);
        assert_memory_equal(in, out, total);
        assert_plain_empty(plain_fd);
    } else {
        test_recv_all(&test_shm_api, shm_fd, in, total);
        assert_memory_equal(in, out, total);
        assert_shm_empty(shm_fd);
    }
    free(out);
    free(in);
}

/* ------------------------------------------------------------------------------------------ */
/* Seqpacket: exact messages both ways, boundaries, zero-length                                */

static const size_t seq_sizes[] = {5, 0, 1, 1000, 4096, 65000, 0, 3};
#define N_SEQ_SIZES (sizeof(seq_sizes) / sizeof(seq_sizes[0]))

static void seq_round(bool shm_sends, int shm_fd, int plain_fd, unsigned seed)
{
    enum { BUF = 70000 };
    char *out = malloc(BUF), *in = malloc(BUF + 100);
    assert_non_null(out);
    assert_non_null(in);
    for (size_t i = 0; i < N_SEQ_SIZES; i++) {
        test_fill_pattern(out, seq_sizes[i], seed + (unsigned)i);
        ssize_t n;
        if (shm_sends)
            n = shm_send(shm_fd, out, seq_sizes[i], 0);
        else if (i % 2)
            n = write(plain_fd, out, seq_sizes[i]);
        else
            n = send(plain_fd, out, seq_sizes[i], 0);
        if (n != (ssize_t)seq_sizes[i])
            fail_msg("%s send of message %zu (%zu bytes) returned %zd (errno %d)",
                     shm_sends ? "shm" : "plain", i, seq_sizes[i], n, errno);
    }
    for (size_t i = 0; i < N_SEQ_SIZES; i++) {
        ssize_t n;
        memset(in, 0xee, BUF + 100);
        if (shm_sends)
            n = (i % 2) ? read(plain_fd, in, BUF + 100) : recv(plain_fd, in, BUF + 100, 0);
        else
            n = shm_recv(shm_fd, in, BUF + 100, 0);
        if (n != (ssize_t)seq_sizes[i])
            fail_msg("%s receiver: message %zu: expected %zu bytes, got %zd (errno %d)",
                     shm_sends ? "plain" : "shm", i, seq_sizes[i], n, errno);
        if (!test_check_pattern(in, seq_sizes[i], seed + (unsigned)i))
            fail_msg("message %zu (%zu bytes): content differs", i, seq_sizes[i]);
    }
    if (shm_sends)
        assert_plain_empty(plain_fd);
    else
        assert_shm_empty(shm_fd);
    free(out);
    free(in);
}

/* ------------------------------------------------------------------------------------------ */
/* Bulk transfer in a thread (larger than the socket buffers)                                  */

struct bulk_sender {
    bool shm;
    int fd;
    int type;
    unsigned seed;
    size_t total; /* STREAM: bytes */
    int count;    /* SEQPACKET: messages */
    int err;      /* errno of a failure, 0 if fine */
    ssize_t bad_ret;
};

static size_t bulk_msg_size(unsigned seed, int i)
{
    unsigned x = seed * 2654435761u + (unsigned)i * 40503u;
    x ^= x >> 15;
    x *= 2246822519u;
    x ^= x >> 13;
    return x % 60001; /* 0..60000: includes zero-length messages sometimes */
}

static void *bulk_send_thread(void *arg)
{
    struct bulk_sender *s = arg;
    if (s->type == SOCK_STREAM) {
        char *buf = malloc(s->total);
        test_fill_pattern(buf, s->total, s->seed);
        size_t off = 0;
        while (off < s->total) {
            size_t len = s->total - off < 65536 ? s->total - off : 65536;
            ssize_t n = s->shm ? shm_send(s->fd, buf + off, len, MSG_NOSIGNAL)
                               : send(s->fd, buf + off, len, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                s->err = n < 0 ? errno : -1;
                s->bad_ret = n;
                break;
            }
            off += (size_t)n;
        }
        free(buf);
    } else {
        char *buf = malloc(60001);
        for (int i = 0; i < s->count; i++) {
            size_t len = bulk_msg_size(s->seed, i);
            test_fill_pattern(buf, len, s->seed + (unsigned)i);
            ssize_t n = s->shm ? shm_send(s->fd, buf, len, MSG_NOSIGNAL)
                               : send(s->fd, buf, len, MSG_NOSIGNAL);
            if (n != (ssize_t)len) {
                s->err = n < 0 ? errno : -1;
                s->bad_ret = n;
                break;
            }
        }
        free(buf);
    }
    return NULL;
}

static void bulk_transfer(bool shm_sends, int type, int shm_fd, int plain_fd, unsigned seed)
{
    struct bulk_sender s = {.shm = shm_sends,
                            .fd = shm_sends ? shm_fd : plain_fd,
                            .type = type,
                            .seed = seed,
                            .total = 3u << 20,
                            .count = 300};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, bulk_send_thread, &s), 0);
    int rfd = shm_sends ? plain_fd : shm_fd;
    if (type == SOCK_STREAM) {
        char *in = malloc(s.total);
        size_t off = 0;
        while (off < s.total) {
            ssize_t n = shm_sends ? read(rfd, in + off, s.total - off)
                                  : shm_recv(rfd, in + off, s.total - off, 0);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                fail_msg("bulk receive returned %zd (errno %d) at byte %zu", n, errno, off);
            off += (size_t)n;
        }
        if (!test_check_pattern(in, s.total, seed))
            fail_msg("bulk stream content differs (%s sender)", shm_sends ? "shm" : "plain");
        free(in);
    } else {
        char *in = malloc(70000);
        for (int i = 0; i < s.count; i++) {
            size_t len = bulk_msg_size(seed, i);
            ssize_t n = shm_sends ? recv(rfd, in, 70000, 0) : shm_recv(rfd, in, 70000, 0);
            if (n != (ssize_t)len)
                fail_msg("bulk seqpacket message %d: expected %zu bytes, got %zd (errno %d)", i,
                         len, n, errno);
            if (!test_check_pattern(in, len, seed + (unsigned)i))
                fail_msg("bulk seqpacket message %d: content differs", i);
        }
        free(in);
    }
    assert_int_equal(pthread_join(t, NULL), 0);
    if (s.err)
        fail_msg("bulk sender failed: returned %zd, errno %d", s.bad_ret, s.err);
}

/* ------------------------------------------------------------------------------------------ */
/* Test: data flows both ways, plain side sees exactly what was sent                           */

static void test_data_both_ways(void **state)
{
    const struct pp_case *c = *state;
    guard(30);
    int shm_fd, plain_fd;
    case_pair(c, &shm_fd, &plain_fd);
    assert_not_shm_status(shm_fd);

    bool first = c->shm_sends_first;
    for (int round = 0; round < 4; round++) {
        bool shm_sends = (round % 2 == 0) ? first : !first;
        if (c->type == SOCK_STREAM)
            stream_round(shm_sends, shm_fd, plain_fd, 100u + (unsigned)round);
        else
            seq_round(shm_sends, shm_fd, plain_fd, 100u + (unsigned)round * 16u);
        assert_not_shm_status(shm_fd);
    }
    /* Sustained transfer beyond the socket buffers, each way. */
    bulk_transfer(true, c->type, shm_fd, plain_fd, 7);
    assert_not_shm_status(shm_fd);
    bulk_transfer(false, c->type, shm_fd, plain_fd, 8);
    assert_not_shm_status(shm_fd);

    /* The end of the connection is seen as with kernel sockets, both ways. */
    assert_int_equal(close(plain_fd), 0);
    char b;
    assert_int_equal(shm_recv(shm_fd, &b, 1, 0), 0);
    assert_int_equal(shm_close(shm_fd), 0);
}

/* A zero-length SEQPACKET message as the very first message of each side. */
static void test_seqpacket_zero_length_first(void **state)
{
    const struct pp_case *c = *state;
    guard(20);
    int shm_fd, plain_fd;
    case_pair(c, &shm_fd, &plain_fd);
    char buf[64];
    for (int step = 0; step < 2; step++) {
        bool shm_sends = (step == 0) ? c->shm_sends_first : !c->shm_sends_first;
        if (shm_sends) {
            assert_int_equal(shm_send(shm_fd, "", 0, 0), 0);
            assert_int_equal(shm_send(shm_fd, "abc", 3, 0), 3);
            memset(buf, 'x', sizeof(buf));
            ssize_t n = recv(plain_fd, buf, sizeof(buf), 0);
            if (n != 0)
                fail_msg("plain side: first message should be zero-length, got %zd (errno %d)", n,
                         errno);
            assert_int_equal(recv(plain_fd, buf, sizeof(buf), 0), 3);
            assert_memory_equal(buf, "abc", 3);
            assert_plain_empty(plain_fd);
        } else {
            assert_int_equal(send(plain_fd, "", 0, 0), 0);
            assert_int_equal(send(plain_fd, "defg", 4, 0), 4);
            ssize_t n = shm_recv(shm_fd, buf, sizeof(buf), 0);
            if (n != 0)
                fail_msg("shm side: first message should be zero-length, got %zd (errno %d)", n,
                         errno);
            assert_int_equal(shm_recv(shm_fd, buf, sizeof(buf), 0), 4);
            assert_memory_equal(buf, "defg", 4);
            assert_shm_empty(shm_fd);
        }
        assert_not_shm_status(shm_fd);
    }
    assert_int_equal(shm_close(shm_fd), 0);
    assert_int_equal(close(plain_fd), 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Test: a plain recvmsg with a control buffer                                                 */

struct cmsg_seen {
    int n_cmsg; /* number of control messages */
    int n_fds;  /* descriptors in SCM_RIGHTS */
    int fds[16];
    int other_cmsg; /* control messages that are not SOL_SOCKET/SCM_RIGHTS */
    int msg_flags;
};

/* Plain recvmsg of one message/chunk of exactly `expect` bytes (stream: loops until it has
 * them, collecting control data from every call). */
static void plain_recvmsg(int fd, int type, void *buf, size_t expect, struct cmsg_seen *seen)
{
    memset(seen, 0, sizeof(*seen));
    size_t got = 0;
    do {
        union {
            char b[CMSG_SPACE(sizeof(int) * 16) + CMSG_SPACE(256)];
            struct cmsghdr align;
        } ctl;
        memset(&ctl, 0, sizeof(ctl));
        struct iovec iov = {.iov_base = (char *)buf + got,
                            .iov_len = type == SOCK_STREAM ? expect - got : expect + 16};
        struct msghdr msg = {.msg_iov = &iov,
                             .msg_iovlen = 1,
                             .msg_control = ctl.b,
                             .msg_controllen = sizeof(ctl.b)};
        ssize_t n = recvmsg(fd, &msg, 0);
        if (n < 0 || (n == 0 && expect > 0))
            fail_msg("plain recvmsg returned %zd (errno %d)", n, errno);
        seen->msg_flags |= msg.msg_flags;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
            seen->n_cmsg++;
            if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
                size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                int *fds = (int *)CMSG_DATA(cm);
                for (size_t i = 0; i < k; i++) {
                    if (seen->n_fds < 16)
                        seen->fds[seen->n_fds] = fds[i];
                    seen->n_fds++;
                }
            } else {
                seen->other_cmsg++;
            }
        }
        got += (size_t)n;
        if (type != SOCK_STREAM) {
            if (got != expect)
                fail_msg("plain recvmsg: message of %zu bytes expected, got %zu", expect, got);
            break;
        }
    } while (got < expect);
}

static void close_seen(struct cmsg_seen *seen)
{
    for (int i = 0; i < seen->n_fds && i < 16; i++)
        close(seen->fds[i]);
}

/* The two descriptors of an offer, as documented: a sealed memfd starting with "SHMSOCK\0",
 * then a Unix socket. */
static void check_offer_fds(const struct cmsg_seen *seen)
{
    if (seen->n_cmsg != 1 || seen->n_fds != 2 || seen->other_cmsg != 0)
        fail_msg("first message: expected one SCM_RIGHTS with exactly 2 descriptors (the "
                 "offer), got %d control messages, %d descriptors, %d other",
                 seen->n_cmsg, seen->n_fds, seen->other_cmsg);
    assert_false(seen->msg_flags & MSG_CTRUNC);
    int memfd = seen->fds[0], sock = seen->fds[1];

    /* memfd: sealed against shrink/grow and further sealing. */
    int seals = fcntl(memfd, F_GET_SEALS);
    if (seals < 0)
        fail_msg("offer fd 0 is not a sealable memfd (F_GET_SEALS errno %d)", errno);
    int want = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
    if ((seals & want) != want)
        fail_msg("offer memfd seals 0x%x, expected at least 0x%x", seals, want);
    char link[256] = {0}, path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
    ssize_t ln = readlink(path, link, sizeof(link) - 1);
    assert_true(ln > 0);
    if (strncmp(link, "/memfd:", 7) != 0)
        fail_msg("offer fd 0 is %s, not a memfd", link);
    char magic[8];
    ssize_t r = pread(memfd, magic, sizeof(magic), 0);
    if (r == 8) {
        assert_memory_equal(magic, "SHMSOCK\0", 8);
    } else {
        /* Maybe a read-only/unreadable file: map it. */
        fail_msg("pread of offer memfd header returned %zd (errno %d)", r, errno);
    }

    /* second: a Unix socket. */
    struct stat st;
    assert_int_equal(fstat(sock, &st), 0);
    if (!S_ISSOCK(st.st_mode))
        fail_msg("offer fd 1 is not a socket (mode 0%o)", (unsigned)st.st_mode);
    int domain = -1;
    socklen_t dl = sizeof(domain);
    assert_int_equal(getsockopt(sock, SOL_SOCKET, SO_DOMAIN, &domain, &dl), 0);
    assert_int_equal(domain, AF_UNIX);
}

static void shm_send_exact(int fd, const char *s)
{
    ssize_t n = shm_send(fd, s, strlen(s), 0);
    if (n != (ssize_t)strlen(s))
        fail_msg("shm_send(\"%s\") returned %zd (errno %d)", s, n, errno);
}

static void shm_recv_exact(int fd, int type, const char *s)
{
    char buf[128];
    size_t len = strlen(s);
    if (type == SOCK_STREAM) {
        test_recv_all(&test_shm_api, fd, buf, len);
    } else {
        ssize_t n = shm_recv(fd, buf, sizeof(buf), 0);
        if (n != (ssize_t)len)
            fail_msg("shm_recv: expected %zu bytes, got %zd (errno %d)", len, n, errno);
    }
    assert_memory_equal(buf, s, len);
}

/*
 * The shm side's first message carries the offer (two descriptors); a plain recvmsg with a
 * control buffer sees them with that message and no ancillary data on any later message.
 * The connection still works afterwards (the plain side never offered back).
 */
static void test_plain_recvmsg_sees_offer_on_first_message(void **state)
{
    const struct pp_case *c = *state;
    guard(20);
    int shm_fd, plain_fd;
    case_pair(c, &shm_fd, &plain_fd);
    char buf[256];
    struct cmsg_seen seen;

    if (!c->shm_sends_first) {
        assert_int_equal(send(plain_fd, "hi from plain", 13, 0), 13);
        shm_recv_exact(shm_fd, c->type, "hi from plain");
    }
    shm_send_exact(shm_fd, "first");
    plain_recvmsg(plain_fd, c->type, buf, 5, &seen);
    assert_memory_equal(buf, "first", 5);
    check_offer_fds(&seen);
    close_seen(&seen);
    assert_not_shm_status(shm_fd);

    for (int i = 0; i < 3; i++) {
        shm_send_exact(shm_fd, "later message");
        plain_recvmsg(plain_fd, c->type, buf, 13, &seen);
        assert_memory_equal(buf, "later message", 13);
        if (seen.n_cmsg != 0)
            fail_msg("message %d after the first carries %d control messages (%d fds); "
                     "the offer belongs on the first message only",
                     i + 2, seen.n_cmsg, seen.n_fds);
        close_seen(&seen);
        assert_int_equal(send(plain_fd, "reply", 5, 0), 5);
        shm_recv_exact(shm_fd, c->type, "reply");
        assert_not_shm_status(shm_fd);
    }
    assert_plain_empty(plain_fd);
    assert_shm_empty(shm_fd);
    assert_int_equal(shm_close(shm_fd), 0);
    assert_int_equal(close(plain_fd), 0);
}

/* SHM_NEGOTIATE = 0 before the first exchange: a plain recvmsg sees no ancillary data at all. */
static void test_negotiate_off_no_ancillary(void **state)
{
    const struct pp_case *c = *state;
    guard(20);
    int shm_fd, plain_fd;
    case_pair(c, &shm_fd, &plain_fd);
    int zero = 0, v = -1;
    socklen_t vl = sizeof(v);
    assert_int_equal(shm_setsockopt(shm_fd, SOL_SHMSOCK, SHM_NEGOTIATE, &zero, sizeof(zero)), 0);
    assert_int_equal(shm_getsockopt(shm_fd, SOL_SHMSOCK, SHM_NEGOTIATE, &v, &vl), 0);
    assert_int_equal(v, 0);

    char buf[256];
    struct cmsg_seen seen;
    if (!c->shm_sends_first) {
        assert_int_equal(send(plain_fd, "hi", 2, 0), 2);
        shm_recv_exact(shm_fd, c->type, "hi");
    }
    for (int i = 0; i < 4; i++) {
        shm_send_exact(shm_fd, "message");
        plain_recvmsg(plain_fd, c->type, buf, 7, &seen);
        assert_memory_equal(buf, "message", 7);
        if (seen.n_cmsg != 0)
            fail_msg("SHM_NEGOTIATE=0: message %d carries %d control messages (%d fds)", i + 1,
                     seen.n_cmsg, seen.n_fds);
        close_seen(&seen);
        assert_int_equal(send(plain_fd, "ok", 2, 0), 2);
        shm_recv_exact(shm_fd, c->type, "ok");
        assert_not_shm_status(shm_fd);
    }
    assert_int_equal(test_shm_status(shm_fd), SHM_STATUS_PLAIN);
    assert_int_equal(shm_close(shm_fd), 0);
    assert_int_equal(close(plain_fd), 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Other families and SOCK_DGRAM pass straight through                                         */

static void inet_exchange(int shm_fd, int plain_fd)
{
    char buf[100000];
    /* shm -> plain, plain side reads with recvmsg + control buffer: nothing attached. */
    char *out = malloc(100000);
    test_fill_pattern(out, 100000, 42);
    test_send_all(&test_shm_api, shm_fd, out, 1000);
    struct cmsg_seen seen;
    plain_recvmsg(plain_fd, SOCK_STREAM, buf, 1000, &seen);
    assert_memory_equal(buf, out, 1000);
    assert_int_equal(seen.n_cmsg, 0);
    /* plain -> shm */
    plain_write_all(plain_fd, out, 50000);
    test_recv_all(&test_shm_api, shm_fd, buf, 50000);
    assert_memory_equal(buf, out, 50000);
    /* more shm -> plain */
    test_send_all(&test_shm_api, shm_fd, out, 50000);
    plain_read_all(plain_fd, buf, 50000);
    assert_memory_equal(buf, out, 50000);
    assert_plain_empty(plain_fd);
    assert_shm_empty(shm_fd);
    assert_int_equal(test_shm_status(shm_fd), SHM_STATUS_PASSTHROUGH);
    free(out);
}

static socklen_t loopback_listener(const struct sock_api *api, int *listener,
                                   struct sockaddr_in *addr)
{
    *listener = api->socket(AF_INET, SOCK_STREAM, 0);
    assert_true(*listener >= 0);
    memset(addr, 0, sizeof(*addr));
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr->sin_port = 0;
    assert_int_equal(api->bind(*listener, (struct sockaddr *)addr, sizeof(*addr)), 0);
    assert_int_equal(api->listen(*listener, 4), 0);
    socklen_t len = sizeof(*addr);
    assert_int_equal(getsockname(*listener, (struct sockaddr *)addr, &len), 0);
    return len;
}

static void test_inet_shm_server_plain_client(void **state)
{
    (void)state;
    guard(20);
    int listener;
    struct sockaddr_in addr;
    socklen_t len = loopback_listener(&test_shm_api, &listener, &addr);
    assert_int_equal(test_shm_status(listener), SHM_STATUS_PASSTHROUGH);
    int plain_fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(plain_fd >= 0);
    assert_int_equal(connect(plain_fd, (struct sockaddr *)&addr, len), 0);
    int shm_fd = shm_accept(listener, NULL, NULL);
    assert_true(shm_fd >= 0);
    assert_int_equal(test_shm_status(shm_fd), SHM_STATUS_PASSTHROUGH);
    inet_exchange(shm_fd, plain_fd);
    assert_int_equal(shm_close(listener), 0);
    assert_int_equal(shm_close(shm_fd), 0);
    assert_int_equal(close(plain_fd), 0);
}

static void test_inet_shm_client_plain_server(void **state)
{
    (void)state;
    guard(20);
    int listener;
    struct sockaddr_in addr;
    socklen_t len = loopback_listener(&test_kernel_api, &listener, &addr);
    int shm_fd = shm_socket(AF_INET, SOCK_STREAM, 0);
    assert_true(shm_fd >= 0);
    assert_int_equal(test_shm_status(shm_fd), SHM_STATUS_PASSTHROUGH);
    assert_int_equal(shm_connect(shm_fd, (struct sockaddr *)&addr, len), 0);
    int plain_fd = accept(listener, NULL, NULL);
    assert_true(plain_fd >= 0);
    assert_int_equal(test_shm_status(shm_fd), SHM_STATUS_PASSTHROUGH);
    inet_exchange(shm_fd, plain_fd);
    assert_int_equal(close(listener), 0);
    assert_int_equal(shm_close(shm_fd), 0);
    assert_int_equal(close(plain_fd), 0);
}

/* AF_UNIX SOCK_DGRAM: sendto/recvfrom between a shm socket and a plain one, both ways,
 * boundaries and zero-length datagrams kept, sender addresses as the kernel gives them, no
 * ancillary data for a plain recvmsg. */
static void test_unix_dgram_passthrough(void **state)
{
    (void)state;
    guard(20);
    struct sockaddr_un shm_addr, plain_addr, from;
    socklen_t shm_len = test_abstract_addr(&shm_addr);
    socklen_t plain_len = test_abstract_addr(&plain_addr);
    int shm_fd = shm_socket(AF_UNIX, SOCK_DGRAM, 0);
    assert_true(shm_fd >= 0);
    assert_int_equal(shm_bind(shm_fd, (struct sockaddr *)&shm_addr, shm_len), 0);
    int plain_fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    assert_true(plain_fd >= 0);
    assert_int_equal(bind(plain_fd, (struct sockaddr *)&plain_addr, plain_len), 0);
    assert_int_equal(test_shm_status(shm_fd), SHM_STATUS_PASSTHROUGH);

    static const size_t sizes[] = {7, 0, 1, 3000, 60000, 0, 2};
    char *out = malloc(70000), *in = malloc(70000);
    /* shm -> plain */
    for (size_t i = 0; i < 7; i++) {
        test_fill_pattern(out, sizes[i], 300u + (unsigned)i);
        assert_int_equal(
            shm_sendto(shm_fd, out, sizes[i], 0, (struct sockaddr *)&plain_addr, plain_len),
            (ssize_t)sizes[i]);
        union {
            char b[CMSG_SPACE(sizeof(int) * 8)];
            struct cmsghdr align;
        } ctl;
        struct iovec iov = {.iov_base = in, .iov_len = 70000};
        struct msghdr msg = {.msg_name = &from,
                             .msg_namelen = sizeof(from),
                             .msg_iov = &iov,
                             .msg_iovlen = 1,
                             .msg_control = ctl.b,
                             .msg_controllen = sizeof(ctl.b)};
        ssize_t n = recvmsg(plain_fd, &msg, 0);
        assert_int_equal(n, (ssize_t)sizes[i]);
        assert_true(test_check_pattern(in, sizes[i], 300u + (unsigned)i));
        assert_int_equal(msg.msg_controllen, 0);
        assert_int_equal(msg.msg_namelen, shm_len);
        assert_memory_equal(&from, &shm_addr, shm_len);
    }
    /* plain -> shm */
    for (size_t i = 0; i < 7; i++) {
        test_fill_pattern(out, sizes[i], 400u + (unsigned)i);
        assert_int_equal(sendto(plain_fd, out, sizes[i], 0, (struct sockaddr *)&shm_addr, shm_len),
                         (ssize_t)sizes[i]);
        socklen_t fl = sizeof(from);
        ssize_t n = shm_recvfrom(shm_fd, in, 70000, 0, (struct sockaddr *)&from, &fl);
        assert_int_equal(n, (ssize_t)sizes[i]);
        assert_true(test_check_pattern(in, sizes[i], 400u + (unsigned)i));
        assert_int_equal(fl, plain_len);
        assert_memory_equal(&from, &plain_addr, plain_len);
    }
    /* connected: shm_connect + shm_send / shm_recv */
    assert_int_equal(shm_connect(shm_fd, (struct sockaddr *)&plain_addr, plain_len), 0);
    assert_int_equal(shm_send(shm_fd, "conn", 4, 0), 4);
    assert_int_equal(recv(plain_fd, in, 100, 0), 4);
    assert_memory_equal(in, "conn", 4);
    assert_int_equal(sendto(plain_fd, "back", 4, 0, (struct sockaddr *)&shm_addr, shm_len), 4);
    assert_int_equal(shm_recv(shm_fd, in, 100, 0), 4);
    assert_memory_equal(in, "back", 4);
    assert_plain_empty(plain_fd);
    assert_shm_empty(shm_fd);
    assert_int_equal(test_shm_status(shm_fd), SHM_STATUS_PASSTHROUGH);
    free(out);
    free(in);
    assert_int_equal(shm_close(shm_fd), 0);
    assert_int_equal(close(plain_fd), 0);
}

/* A listening AF_UNIX shm socket is not a connection: SHM_STATUS_PASSTHROUGH (header). */
static void test_listener_status_passthrough(void **state)
{
    (void)state;
    guard(10);
    int types[] = {SOCK_STREAM, SOCK_SEQPACKET};
    for (int i = 0; i < 2; i++) {
        struct sockaddr_un addr;
        socklen_t len = test_abstract_addr(&addr);
        int l = shm_socket(AF_UNIX, types[i], 0);
        assert_true(l >= 0);
        assert_int_equal(shm_bind(l, (struct sockaddr *)&addr, len), 0);
        assert_int_equal(shm_listen(l, 4), 0);
        assert_int_equal(test_shm_status(l), SHM_STATUS_PASSTHROUGH);
        assert_int_equal(shm_close(l), 0);
    }
}

/* ------------------------------------------------------------------------------------------ */

#define CASE(name, ty, cli, first)                                                                 \
    static const struct pp_case name = {.type = ty, .shm_is_client = cli, .shm_sends_first = first}
CASE(st_cli_first, SOCK_STREAM, true, true);
CASE(st_cli_second, SOCK_STREAM, true, false);
CASE(st_srv_first, SOCK_STREAM, false, true);
CASE(st_srv_second, SOCK_STREAM, false, false);
CASE(sp_cli_first, SOCK_SEQPACKET, true, true);
CASE(sp_cli_second, SOCK_SEQPACKET, true, false);
CASE(sp_srv_first, SOCK_SEQPACKET, false, true);
CASE(sp_srv_second, SOCK_SEQPACKET, false, false);

/* One entry per case, named after the function and the case so a failure says which. */
#define T(fn, cs)                                                                                  \
    {                                                                                              \
#fn "/" #cs, fn, NULL, test_teardown, (void *)&cs                                          \
    }
#define T4(fn, a, b, c, d) T(fn, a), T(fn, b), T(fn, c), T(fn, d)

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* shm client + plain server, plain client + shm server; shm sends first or second */
        T4(test_data_both_ways, st_cli_first, st_cli_second, st_srv_first, st_srv_second),
        T4(test_data_both_ways, sp_cli_first, sp_cli_second, sp_srv_first, sp_srv_second),
        T4(test_seqpacket_zero_length_first, sp_cli_first, sp_cli_second, sp_srv_first,
           sp_srv_second),
        T4(test_plain_recvmsg_sees_offer_on_first_message, st_cli_first, st_cli_second,
           st_srv_first, st_srv_second),
        T4(test_plain_recvmsg_sees_offer_on_first_message, sp_cli_first, sp_cli_second,
           sp_srv_first, sp_srv_second),
        T4(test_negotiate_off_no_ancillary, st_cli_first, st_cli_second, st_srv_first,
           st_srv_second),
        T4(test_negotiate_off_no_ancillary, sp_cli_first, sp_cli_second, sp_srv_first,
           sp_srv_second),
        cmocka_unit_test_teardown(test_inet_shm_server_plain_client, test_teardown),
        cmocka_unit_test_teardown(test_inet_shm_client_plain_server, test_teardown),
        cmocka_unit_test_teardown(test_unix_dgram_passthrough, test_teardown),
        cmocka_unit_test_teardown(test_listener_status_passthrough, test_teardown),
    };
    const char *filter = getenv("SHMSOCK_TEST_FILTER"); /* e.g. "*s_seq*" */
    if (filter && *filter)
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
