/*
 * threads_test.c - a socket used from several threads at once (shmsock.h: "Concurrent senders
 * never interleave parts of their messages; a reading thread and a writing thread do not block
 * each other").
 *
 *   - 2, 3 and 4 threads send on one socket at the same time. Every message carries the
 *     thread id, a per-thread sequence number, its length and a checksum. SEQPACKET: whole
 *     messages of random sizes. STREAM: each thread sends complete records (header + payload)
 *     with one send call each and the receiver parses the stream: a record whose bytes were
 *     interleaved with another's fails the magic/length/checksum check. The receiver checks
 *     that nothing is corrupted and each thread's order is preserved.
 *     STREAM records are tested "small" (fit in the region) and "large" (up to 512 KiB, more
 *     than a default region, so one send is split into several pieces: the header promises no
 *     interleaving without exception). The kernel reference runs only where the kernel itself
 *     gives that guarantee (SEQPACKET; STREAM records in one skb).
 *   - one reader thread and one writer thread on each end of a connection, all four running
 *     at once, each direction moving far more than the region holds: completes without
 *     deadlock and with every message intact.
 * Most variants run after test_handshake (shared memory from the first record); the "_cold"
 * variants start the threads on a fresh connection, so the negotiation itself (offers sent by
 * concurrent first sends while a reader is blocked) runs under the same concurrency.
 *
 *   - a first read waits in one thread while another changes SO_SNDBUF and sends: the region
 *     is dropped and made again under the waiting read, which then finds the new one.
 * SHMSOCK_TEST_FILTER='*_cold' (a cmocka glob) runs a subset.
 */
#define _GNU_SOURCE
#include <errno.h>
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
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "shmsock.h"
#include "test_support.h"

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "threads_test: TIMEOUT - a blocking call hung (alarm)\n";
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
/* Records                                                                                     */

#define MAGIC 0x7e5a11edu

struct hdr {
    uint32_t magic;
    uint32_t tid;
    uint32_t seq;
    uint32_t len;  /* whole record, header included */
    uint64_t csum; /* over tid, seq, len and the payload */
};

static uint64_t checksum(const struct hdr *h, const unsigned char *p, size_t n)
{
    uint64_t x = 0xcbf29ce484222325ull ^ ((uint64_t)h->tid << 40) ^ ((uint64_t)h->seq << 8) ^
                 (uint64_t)h->len * 0x9e3779b97f4a7c15ull;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        x = (x ^ w) * 0x100000001b3ull;
        x ^= x >> 29;
    }
    for (; i < n; i++)
        x = (x ^ p[i]) * 0x100000001b3ull;
    return x;
}

/* Build record (tid, seq) of total length len (>= sizeof(struct hdr)) into buf. */
static void make_record(unsigned char *buf, size_t len, uint32_t tid, uint32_t seq)
{
    struct hdr h = {.magic = MAGIC, .tid = tid, .seq = seq, .len = (uint32_t)len};
    size_t n = len - sizeof(h);
    /* cheap payload that differs per thread and message */
    uint64_t v = ((uint64_t)tid << 48) ^ ((uint64_t)seq * 0x9e3779b97f4a7c15ull);
    unsigned char *p = buf + sizeof(h);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        v = v * 6364136223846793005ull + 1442695040888963407ull;
        memcpy(p + i, &v, 8);
    }
    for (; i < n; i++)
        p[i] = (unsigned char)(v >> (i % 8 * 8));
    h.csum = checksum(&h, p, n);
    memcpy(buf, &h, sizeof(h));
}

/* Skewed random size in [sizeof(hdr), max]: 1 << r plus random low bits. */
static size_t rand_size(unsigned *r, size_t max)
{
    int top = 0;
    while (((size_t)2 << top) <= max)
        top++;
    unsigned shift = (unsigned)(rand_r(r) % (unsigned)(top + 1));
    size_t s = ((size_t)1 << shift) | ((size_t)rand_r(r) & (((size_t)1 << shift) - 1));
    if (s < sizeof(struct hdr))
        s = sizeof(struct hdr);
    if (s > max)
        s = max;
    return s;
}

/* Check one received record. Returns NULL if fine, else a description. */
static const char *check_record(const unsigned char *buf, size_t n, uint32_t nthreads,
                                uint32_t *expect_seq, char *err, size_t errlen)
{
    struct hdr h;
    if (n < sizeof(h)) {
        snprintf(err, errlen, "record of %zu bytes, shorter than its header", n);
        return err;
    }
    memcpy(&h, buf, sizeof(h));
    if (h.magic != MAGIC || h.tid >= nthreads || h.len != n) {
        snprintf(err, errlen,
                 "bad header (magic 0x%08x tid %u len %u, record of %zu bytes): interleaved or "
                 "corrupted",
                 h.magic, h.tid, h.len, n);
        return err;
    }
    if (checksum(&h, buf + sizeof(h), n - sizeof(h)) != h.csum) {
        snprintf(err, errlen,
                 "thread %u seq %u (%u bytes): checksum mismatch: interleaved or "
                 "corrupted payload",
                 h.tid, h.seq, h.len);
        return err;
    }
    if (h.seq != expect_seq[h.tid]) {
        snprintf(err, errlen,
                 "thread %u: seq %u arrived, expected %u (lost, duplicated or "
                 "reordered)",
                 h.tid, h.seq, expect_seq[h.tid]);
        return err;
    }
    expect_seq[h.tid]++;
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Many senders on one socket                                                                  */

struct sender {
    const struct sock_api *api;
    int fd;
    uint32_t tid;
    int count;
    size_t max;
    atomic_int *start; /* all threads start together */
    int err;
    ssize_t bad;
    size_t bad_len;
};

static void *sender_thread(void *arg)
{
    struct sender *s = arg;
    unsigned r = 1000u + s->tid * 7919u;
    unsigned char *buf = malloc(s->max);
    while (!atomic_load(s->start))
        ;
    for (int i = 0; i < s->count; i++) {
        size_t len = rand_size(&r, s->max);
        make_record(buf, len, s->tid, (uint32_t)i);
        ssize_t n;
        do
            n = s->api->send(s->fd, buf, len, MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n != (ssize_t)len) {
            /* A short blocking send would itself let other threads' bytes in between. */
            s->err = n < 0 ? errno : -1;
            s->bad = n;
            s->bad_len = len;
            break;
        }
    }
    free(buf);
    return NULL;
}

/* Receive exactly len bytes; on failure describe it in err and return false. */
static bool recv_full(const struct sock_api *api, int fd, void *buf, size_t len, char *err,
                      size_t errlen)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = api->recv(fd, p, len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(err, errlen, "recv returned %zd (errno %d) with %zu bytes still expected", n,
                     errno, len);
            return false;
        }
        p += n;
        len -= (size_t)n;
    }
    return true;
}

struct mt_cfg {
    const struct sock_api *api;
    int type;
    int nthreads;
    size_t max; /* largest record */
    int count;  /* records per thread */
    bool cold;  /* no test_handshake first: threads race through the negotiation too */
};

static void test_concurrent_senders(void **state)
{
    const struct mt_cfg *c = *state;
    guard(120);
    int a, b;
    test_connect_pair(c->api, c->type, &a, &b);
    if (!c->cold)
        test_handshake(c->api, a, b);
    size_t max = c->max;
    if (max == 0) { /* the largest SEQPACKET message the socket accepts: SO_SNDBUF - 32 */
        int sndbuf = 0;
        socklen_t sl = sizeof(sndbuf);
        assert_int_equal(c->api->getsockopt(a, SOL_SOCKET, SO_SNDBUF, &sndbuf, &sl), 0);
        max = (size_t)sndbuf - 32;
    }

    /* Heap state: if the test fails while senders are blocked, they must not touch a dead
     * stack frame (cmocka leaves the test function with longjmp). */
    atomic_int *start = calloc(1, sizeof(*start));
    struct sender *s = calloc(4, sizeof(*s));
    pthread_t t[4];
    for (int i = 0; i < c->nthreads; i++) {
        s[i] = (struct sender){.api = c->api,
                               .fd = a,
                               .tid = (uint32_t)i,
                               .count = c->count,
                               .max = max,
                               .start = start};
        assert_int_equal(pthread_create(&t[i], NULL, sender_thread, &s[i]), 0);
    }
    atomic_store(start, 1);

    uint32_t expect[4] = {0};
    int total = c->nthreads * c->count;
    unsigned char *buf = malloc(max + 64);
    char err[300] = "";
    for (int got = 0; got < total && !err[0]; got++) {
        size_t n = 0;
        if (c->type == SOCK_SEQPACKET) {
            ssize_t k;
            do
                k = c->api->recv(b, buf, max + 64, 0);
            while (k < 0 && errno == EINTR);
            if (k <= 0) {
                snprintf(err, sizeof(err), "recv of record %d/%d returned %zd (errno %d)", got,
                         total, k, errno);
                break;
            }
            n = (size_t)k;
        } else {
            struct hdr h;
            if (!recv_full(c->api, b, &h, sizeof(h), err, sizeof(err)))
                break;
            if (h.magic != MAGIC || h.len < sizeof(h) || h.len > max) {
                snprintf(err, sizeof(err),
                         "record %d/%d: bad header in the stream (magic 0x%08x tid %u seq %u "
                         "len %u): records interleaved or corrupted",
                         got, total, h.magic, h.tid, h.seq, h.len);
                break;
            }
            memcpy(buf, &h, sizeof(h));
            if (!recv_full(c->api, b, buf + sizeof(h), h.len - sizeof(h), err, sizeof(err)))
                break;
            n = h.len;
        }
        char what[256];
        if (check_record(buf, n, (uint32_t)c->nthreads, expect, what, sizeof(what)))
            snprintf(err, sizeof(err), "record %d/%d: %s", got, total, what);
    }
    if (err[0]) {
        /* Unblock the senders (kernel shutdown on both ends), give them 3 s, then fail. */
        shutdown(a, SHUT_RDWR);
        shutdown(b, SHUT_RDWR);
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += 3;
        for (int i = 0; i < c->nthreads; i++)
            pthread_timedjoin_np(t[i], NULL, &dl);
        fail_msg("%s", err);
    }
    for (int i = 0; i < c->nthreads; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        if (s[i].err)
            fail_msg("sender %d: send of %zu bytes returned %zd (errno %d)", i, s[i].bad_len,
                     s[i].bad, s[i].err);
        assert_int_equal(expect[i], (uint32_t)c->count);
    }
    free(s);
    free(start);
    /* nothing extra */
    errno = 0;
    assert_int_equal(c->api->recv(b, buf, 16, MSG_DONTWAIT), -1);
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
    if (c->api->is_shm && !c->cold) { /* cold: b never sent, so no switch is possible */
        assert_int_equal(test_shm_status(a), SHM_STATUS_SHM);
        assert_int_equal(test_shm_status(b), SHM_STATUS_SHM);
    }
    free(buf);
    assert_int_equal(c->api->close(a), 0);
    assert_int_equal(c->api->close(b), 0);
}

/* ------------------------------------------------------------------------------------------ */
/* A reader thread and a writer thread on each end, all at once                                */

struct duplex_side {
    const struct sock_api *api;
    int type;
    int fd;
    uint32_t tid; /* id of this side's writer (records carry it) */
    int count;
    size_t max;
    atomic_int sent;
    atomic_int received;
    char err[256];
};

static void *duplex_writer(void *arg)
{
    struct duplex_side *d = arg;
    unsigned r = 77u + d->tid;
    unsigned char *buf = malloc(d->max);
    for (int i = 0; i < d->count; i++) {
        size_t len = rand_size(&r, d->max);
        make_record(buf, len, d->tid, (uint32_t)i);
        size_t off = 0;
        while (off < len) {
            ssize_t n = d->api->send(d->fd, buf + off, len - off, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                snprintf(d->err, sizeof(d->err), "writer %u: send returned %zd errno %d", d->tid, n,
                         errno);
                free(buf);
                return NULL;
            }
            off += (size_t)n;
        }
        atomic_store(&d->sent, i + 1);
    }
    free(buf);
    return NULL;
}

static bool recv_exact(struct duplex_side *d, void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = d->api->recv(d->fd, p, len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(d->err, sizeof(d->err), "reader: recv returned %zd errno %d", n, errno);
            return false;
        }
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* Reads the peer's records (the peer's writer has tid 1 - this tid). */
static void *duplex_reader(void *arg)
{
    struct duplex_side *d = arg;
    unsigned char *buf = malloc(d->max + 64);
    uint32_t expect[2] = {0, 0};
    char err[200];
    for (int i = 0; i < d->count; i++) {
        size_t n;
        if (d->type == SOCK_SEQPACKET) {
            ssize_t k;
            do
                k = d->api->recv(d->fd, buf, d->max + 64, 0);
            while (k < 0 && errno == EINTR);
            if (k <= 0) {
                snprintf(d->err, sizeof(d->err), "reader: recv returned %zd errno %d", k, errno);
                break;
            }
            n = (size_t)k;
        } else {
            struct hdr h;
            if (!recv_exact(d, &h, sizeof(h)))
                break;
            if (h.magic != MAGIC || h.len < sizeof(h) || h.len > d->max) {
                snprintf(d->err, sizeof(d->err), "reader: bad record header (magic 0x%08x len %u)",
                         h.magic, h.len);
                break;
            }
            memcpy(buf, &h, sizeof(h));
            if (!recv_exact(d, buf + sizeof(h), h.len - sizeof(h)))
                break;
            n = h.len;
        }
        if (check_record(buf, n, 2, expect, err, sizeof(err))) {
            snprintf(d->err, sizeof(d->err), "reader, record %d: %s", i, err);
            break;
        }
        struct hdr h;
        memcpy(&h, buf, sizeof(h));
        if (h.tid == d->tid) {
            snprintf(d->err, sizeof(d->err), "reader got its own side's record");
            break;
        }
        atomic_store(&d->received, i + 1);
    }
    free(buf);
    return NULL;
}

static void test_reader_and_writer_threads(void **state)
{
    const struct mt_cfg *c = *state;
    guard(120);
    int a, b;
    test_connect_pair(c->api, c->type, &a, &b);
    if (!c->cold)
        test_handshake(c->api, a, b);

    /* Heap state, leaked if the threads deadlock (they keep using it). */
    struct duplex_side *side = calloc(2, sizeof(*side));
    for (int i = 0; i < 2; i++) {
        side[i].api = c->api;
        side[i].type = c->type;
        side[i].fd = i == 0 ? a : b;
        side[i].tid = (uint32_t)i;
        side[i].count = c->count;
        side[i].max = c->max;
    }
    pthread_t w[2], r[2];
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_create(&r[i], NULL, duplex_reader, &side[i]), 0);
        assert_int_equal(pthread_create(&w[i], NULL, duplex_writer, &side[i]), 0);
    }
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    int limit = c->cold ? 30 : 90; /* the kernel needs well under 2 s for either */
    deadline.tv_sec += limit;
    for (int i = 0; i < 2; i++) {
        pthread_t *ts[2] = {&w[i], &r[i]};
        for (int k = 0; k < 2; k++) {
            int e = pthread_timedjoin_np(*ts[k], NULL, &deadline);
            if (e == ETIMEDOUT)
                fail_msg("deadlock: after %d s side A sent %d received %d, side B sent %d "
                         "received %d of %d",
                         limit, atomic_load(&side[0].sent), atomic_load(&side[0].received),
                         atomic_load(&side[1].sent), atomic_load(&side[1].received), c->count);
            assert_int_equal(e, 0);
        }
    }
    for (int i = 0; i < 2; i++) {
        if (side[i].err[0])
            fail_msg("side %c: %s", 'A' + i, side[i].err);
        assert_int_equal(atomic_load(&side[i].sent), c->count);
        assert_int_equal(atomic_load(&side[i].received), c->count);
    }
    free(side);
    if (c->api->is_shm) {
        assert_int_equal(test_shm_status(a), SHM_STATUS_SHM);
        assert_int_equal(test_shm_status(b), SHM_STATUS_SHM);
    }
    assert_int_equal(c->api->close(a), 0);
    assert_int_equal(c->api->close(b), 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Options and a first send while another thread's first read waits                           */

struct waiting_read {
    int fd;
    char buf[64];
    ssize_t got;
    int err;
};

static void *read_once(void *arg)
{
    struct waiting_read *w = arg;
    w->got = shm_recv(w->fd, w->buf, sizeof(w->buf), 0);
    w->err = errno;
    return NULL;
}

static struct shm_sock_info info_of(int fd)
{
    struct shm_sock_info info;
    socklen_t len = sizeof(info);
    assert_int_equal(shm_getsockopt(fd, SOL_SHMSOCK, SHM_INFO, &info, &len), 0);
    return info;
}

/*
 * A connection's first blocking read makes its side's region while it waits. Another thread
 * then changes SO_SNDBUF (the region, not offered yet, is dropped) and sends (a new region
 * is made and offered), all while the read still waits. When the peer's message ends the
 * read, the reading thread looks at the region to mark its reads careful: the region it
 * finds is the one the sending thread made, and the connection goes on to shared memory. (TSan
 * reported the reading thread's look at the region racing with the other thread's making it.)
 */
static void test_region_changes_while_a_read_waits(void **state)
{
    (void)state;
    guard(60);
    for (int t = 0; t < 2; t++) {
        int type = t == 0 ? SOCK_STREAM : SOCK_SEQPACKET;
        int a, b;
        test_connect_pair(&test_shm_api, type, &a, &b);
        struct waiting_read w = {.fd = b};
        pthread_t reader;
        assert_int_equal(pthread_create(&reader, NULL, read_once, &w), 0);
        while (info_of(b).block_size == 0) /* the read made the region: it is about to block */
            usleep(1000);
        usleep(20000);

        int sndbuf = 1 << 20;
        assert_int_equal(shm_setsockopt(b, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)), 0);
        assert_int_equal(info_of(b).block_size, 0u); /* dropped under the waiting read */
        char from_b[64], from_a[64], got[64];
        memset(from_b, 'b', sizeof(from_b));
        memset(from_a, 'a', sizeof(from_a));
        assert_int_equal(shm_send(b, from_b, sizeof(from_b), 0), (ssize_t)sizeof(from_b));
        socklen_t sl = sizeof(sndbuf);
        assert_int_equal(shm_getsockopt(b, SOL_SOCKET, SO_SNDBUF, &sndbuf, &sl), 0);
        struct shm_sock_info made = info_of(b);
        assert_int_equal(made.block_count, (unsigned)((sndbuf + SHM_DEFAULT_BLOCK_SIZE - 1) /
                                                      SHM_DEFAULT_BLOCK_SIZE));

        test_recv_all(&test_shm_api, a, got, sizeof(got));
        assert_memory_equal(got, from_b, sizeof(got));
        assert_int_equal(shm_send(a, from_a, sizeof(from_a), 0), (ssize_t)sizeof(from_a));
        assert_int_equal(pthread_join(reader, NULL), 0);
        assert_int_equal(w.got, (ssize_t)sizeof(from_a));
        assert_memory_equal(w.buf, from_a, sizeof(from_a));

        test_handshake(&test_shm_api, a, b);
        assert_int_equal(test_shm_status(a), SHM_STATUS_SHM);
        assert_int_equal(test_shm_status(b), SHM_STATUS_SHM);
        assert_int_equal(info_of(a).peer_block_count, made.block_count);
        shm_close(a);
        shm_close(b);
    }
}

/* ------------------------------------------------------------------------------------------ */

#define K &test_kernel_api
#define S &test_shm_api
#define SP SOCK_SEQPACKET
#define ST SOCK_STREAM

/* senders: {api, type, threads, max record, records per thread} */
static const struct mt_cfg k_seq_2 = {K, SP, 2, 65536, 3000, false};
static const struct mt_cfg k_seq_4 = {K, SP, 4, 65536, 1500, false};
static const struct mt_cfg k_stream_small_4 = {K, ST, 4, 16384, 1500, false};
static const struct mt_cfg s_seq_2 = {S, SP, 2, 65536, 3000, false};
static const struct mt_cfg s_seq_3 = {S, SP, 3, 65536, 2000, false};
static const struct mt_cfg s_seq_4 = {S, SP, 4, 65536, 1500, false};
static const struct mt_cfg s_seq_4_max = {S, SP, 4, 0 /* SO_SNDBUF - 32 */, 300, false};
static const struct mt_cfg s_stream_small_2 = {S, ST, 2, 16384, 3000, false};
static const struct mt_cfg s_stream_small_3 = {S, ST, 3, 16384, 2000, false};
static const struct mt_cfg s_stream_small_4 = {S, ST, 4, 16384, 1500, false};
static const struct mt_cfg s_stream_large_2 = {S, ST, 2, 524288, 300, false};
static const struct mt_cfg s_stream_large_4 = {S, ST, 4, 524288, 150, false};
/* duplex: each side's writer sends `count` records up to `max` bytes */
static const struct mt_cfg k_duplex_stream = {K, ST, 2, 262144, 4000, false};
static const struct mt_cfg k_duplex_seq = {K, SP, 2, 65536, 4000, false};
static const struct mt_cfg s_duplex_stream = {S, ST, 2, 262144, 4000, false};
static const struct mt_cfg s_duplex_seq = {S, SP, 2, 65536, 4000, false};
/* cold: the threads start on a fresh connection (concurrent first sends carry the offers) */
static const struct mt_cfg k_seq_4_cold = {K, SP, 4, 65536, 500, true};
static const struct mt_cfg s_seq_4_cold = {S, SP, 4, 65536, 500, true};
static const struct mt_cfg s_stream_small_4_cold = {S, ST, 4, 16384, 500, true};
static const struct mt_cfg k_duplex_stream_cold = {K, ST, 2, 262144, 1000, true};
static const struct mt_cfg k_duplex_seq_cold = {K, SP, 2, 65536, 1000, true};
static const struct mt_cfg s_duplex_stream_cold = {S, ST, 2, 262144, 1000, true};
static const struct mt_cfg s_duplex_seq_cold = {S, SP, 2, 65536, 1000, true};

#define T(fn, cs)                                                                                  \
    {                                                                                              \
#fn "/" #cs, fn, NULL, test_teardown, (void *)&cs                                          \
    }

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_concurrent_senders, k_seq_2),
        T(test_concurrent_senders, k_seq_4),
        T(test_concurrent_senders, k_stream_small_4),
        T(test_concurrent_senders, s_seq_2),
        T(test_concurrent_senders, s_seq_3),
        T(test_concurrent_senders, s_seq_4),
        T(test_concurrent_senders, s_seq_4_max),
        T(test_concurrent_senders, s_stream_small_2),
        T(test_concurrent_senders, s_stream_small_3),
        T(test_concurrent_senders, s_stream_small_4),
        T(test_concurrent_senders, s_stream_large_2),
        T(test_concurrent_senders, s_stream_large_4),
        T(test_reader_and_writer_threads, k_duplex_stream),
        T(test_reader_and_writer_threads, k_duplex_seq),
        T(test_reader_and_writer_threads, s_duplex_stream),
        T(test_reader_and_writer_threads, s_duplex_seq),
        T(test_concurrent_senders, k_seq_4_cold),
        T(test_concurrent_senders, s_seq_4_cold),
        T(test_concurrent_senders, s_stream_small_4_cold),
        T(test_reader_and_writer_threads, k_duplex_stream_cold),
        T(test_reader_and_writer_threads, k_duplex_seq_cold),
        T(test_reader_and_writer_threads, s_duplex_stream_cold),
        T(test_reader_and_writer_threads, s_duplex_seq_cold),
        cmocka_unit_test_teardown(test_region_changes_while_a_read_waits, test_teardown),
    };
    const char *filter = getenv("SHMSOCK_TEST_FILTER"); /* e.g. "*s_seq*" */
    if (filter && *filter)
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
