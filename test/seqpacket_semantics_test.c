/*
 * seqpacket_semantics_test.c - SOCK_SEQPACKET message semantics, kernel vs shm (same steps):
 * boundaries, truncation and MSG_TRUNC (recv flag and msg_flags), MSG_PEEK, zero-length
 * messages, EMSGSIZE above SO_SNDBUF - 32 and the largest allowed message (SO_SNDBUF - 32)
 * going through, and 200,000-byte messages through a reader thread.
 * Every variant runs before negotiation and after test_handshake() (shm: on shared memory).
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
#include <unistd.h>

#include <cmocka.h>

#include "shmsock.h"
#include "test_support.h"
#include "semantics_util.h"

#define SEQ SOCK_SEQPACKET

#define FOR_EACH_VARIANT(body)                                                                     \
    for (int i_ = 0; i_ < 2; i_++) {                                                               \
        body(test_apis[i_], false);                                                                \
        body(test_apis[i_], true);                                                                 \
    }

static void finish(const struct sock_api *api, bool shake, int a, int b)
{
    if (shake) {
        sem_assert_shm(api, a);
        sem_assert_shm(api, b);
    }
    assert_int_equal(api->close(a), 0);
    assert_int_equal(api->close(b), 0);
}

/* Three messages of 10, 20, 30 bytes: three recvs with a big buffer return 10, 20, 30. */
static void boundaries_body(const struct sock_api *api, bool shake)
{
    int a, b;
    char out[60], in[1000];
    sem_announce(api, SEQ, shake);
    sem_pair(api, SEQ, shake, &a, &b);
    test_fill_pattern(out, sizeof(out), 21);
    assert_int_equal(api->send(a, out, 10, 0), 10);
    assert_int_equal(api->send(a, out + 10, 20, 0), 20);
    assert_int_equal(api->send(a, out + 30, 30, 0), 30);
    assert_int_equal(api->recv(b, in, sizeof(in), 0), 10);
    assert_memory_equal(in, out, 10);
    assert_int_equal(api->recv(b, in, sizeof(in), 0), 20);
    assert_memory_equal(in, out + 10, 20);
    assert_int_equal(api->recv(b, in, sizeof(in), 0), 30);
    assert_memory_equal(in, out + 30, 30);
    sem_expect_empty(api, b);
    finish(api, shake, a, b);
}

static void test_seqpacket_boundaries(void **state)
{
    (void)state;
    SEM_GUARD();
    FOR_EACH_VARIANT(boundaries_body);
}

/*
 * A 100-byte message read with a 10-byte buffer: 10 bytes, the rest discarded (the next recv
 * returns the next message). With MSG_TRUNC the call returns the real length (100).
 * recvmsg sets MSG_TRUNC in msg_flags exactly when the message was longer than the buffer.
 */
static void trunc_body(const struct sock_api *api, bool shake)
{
    int a, b;
    char out[100], in[200];
    sem_announce(api, SEQ, shake);
    sem_pair(api, SEQ, shake, &a, &b);
    test_fill_pattern(out, sizeof(out), 22);

    assert_int_equal(api->send(a, out, 100, 0), 100);
    assert_int_equal(api->send(a, "next!", 5, 0), 5);
    assert_int_equal(api->recv(b, in, 10, 0), 10);
    assert_memory_equal(in, out, 10);
    assert_int_equal(api->recv(b, in, sizeof(in), 0), 5);
    assert_memory_equal(in, "next!", 5);

    /* recv(MSG_TRUNC) returns the real length; only 10 bytes are written. */
    assert_int_equal(api->send(a, out, 100, 0), 100);
    memset(in, 0x5a, sizeof(in));
    assert_int_equal(api->recv(b, in, 10, MSG_TRUNC), 100);
    assert_memory_equal(in, out, 10);
    assert_int_equal((unsigned char)in[10], 0x5a);
    sem_expect_empty(api, b);

    /* recvmsg: msg_flags has MSG_TRUNC for a short buffer ... */
    assert_int_equal(api->send(a, out, 100, 0), 100);
    struct iovec iov = {in, 10};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    assert_int_equal(api->recvmsg(b, &m, 0), 10);
    assert_true(m.msg_flags & MSG_TRUNC);
    assert_memory_equal(in, out, 10);
    /* ... and not for a buffer that fits exactly. */
    assert_int_equal(api->send(a, out, 100, 0), 100);
    iov.iov_len = 100;
    memset(&m, 0, sizeof(m));
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    assert_int_equal(api->recvmsg(b, &m, 0), 100);
    assert_false(m.msg_flags & MSG_TRUNC);
    assert_memory_equal(in, out, 100);
    /* recvmsg with MSG_TRUNC and a short scatter list: returns 100, flags MSG_TRUNC. */
    assert_int_equal(api->send(a, out, 100, 0), 100);
    struct iovec iov2[2] = {{in, 7}, {in + 100, 8}};
    memset(&m, 0, sizeof(m));
    m.msg_iov = iov2;
    m.msg_iovlen = 2;
    assert_int_equal(api->recvmsg(b, &m, MSG_TRUNC), 100);
    assert_true(m.msg_flags & MSG_TRUNC);
    assert_memory_equal(in, out, 7);
    assert_memory_equal(in + 100, out + 7, 8);
    sem_expect_empty(api, b);
    finish(api, shake, a, b);
}

static void test_seqpacket_truncation(void **state)
{
    (void)state;
    SEM_GUARD();
    FOR_EACH_VARIANT(trunc_body);
}

/* MSG_PEEK returns the message without consuming it; MSG_PEEK|MSG_TRUNC the real length. */
static void peek_body(const struct sock_api *api, bool shake)
{
    int a, b;
    char out[100], in[200];
    sem_announce(api, SEQ, shake);
    sem_pair(api, SEQ, shake, &a, &b);
    test_fill_pattern(out, sizeof(out), 23);
    assert_int_equal(api->send(a, out, 100, 0), 100);
    assert_int_equal(api->send(a, "two", 3, 0), 3);
    assert_int_equal(api->recv(b, in, 10, MSG_PEEK), 10);
    assert_memory_equal(in, out, 10);
    assert_int_equal(api->recv(b, in, 10, MSG_PEEK | MSG_TRUNC), 100);
    /* Peek returns only the first message, even with room for both. */
    assert_int_equal(api->recv(b, in, sizeof(in), MSG_PEEK), 100);
    assert_memory_equal(in, out, 100);
    assert_int_equal(api->recv(b, in, sizeof(in), 0), 100);
    assert_memory_equal(in, out, 100);
    assert_int_equal(api->recv(b, in, sizeof(in), MSG_PEEK | MSG_DONTWAIT), 3);
    assert_int_equal(api->recv(b, in, sizeof(in), 0), 3);
    assert_memory_equal(in, "two", 3);
    SEM_EXPECT_ERR(api->recv(b, in, sizeof(in), MSG_PEEK | MSG_DONTWAIT), EAGAIN);
    finish(api, shake, a, b);
}

static void test_seqpacket_peek(void **state)
{
    (void)state;
    SEM_GUARD();
    FOR_EACH_VARIANT(peek_body);
}

/*
 * Zero-length messages are messages: send returns 0, the peer's recv returns 0 for each one,
 * in order with the others, and afterwards there is nothing (EAGAIN, not end of stream).
 */
static void zero_body(const struct sock_api *api, bool shake)
{
    int a, b;
    char in[16];
    sem_announce(api, SEQ, shake);
    sem_pair(api, SEQ, shake, &a, &b);
    assert_int_equal(api->send(a, "", 0, 0), 0);
    assert_int_equal(api->send(a, "x", 1, 0), 1);
    assert_int_equal(api->send(a, in, 0, 0), 0);
    assert_int_equal(api->send(a, "yz", 2, 0), 2);
    assert_int_equal(api->recv(b, in, sizeof(in), 0), 0);
    assert_int_equal(api->recv(b, in, sizeof(in), 0), 1);
    assert_int_equal(in[0], 'x');
    struct iovec iov = {in, sizeof(in)};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    assert_int_equal(api->recvmsg(b, &m, 0), 0);
    assert_int_equal(m.msg_flags & MSG_TRUNC, 0);
    assert_int_equal(api->recv(b, in, sizeof(in), 0), 2);
    assert_memory_equal(in, "yz", 2);
    sem_expect_empty(api, b);
    /* A zero-length message in the other direction too. */
    assert_int_equal(api->send(b, "", 0, 0), 0);
    assert_int_equal(api->recv(a, in, sizeof(in), 0), 0);
    sem_expect_empty(api, a);
    finish(api, shake, a, b);
}

static void test_seqpacket_zero_length(void **state)
{
    (void)state;
    SEM_GUARD();
    FOR_EACH_VARIANT(zero_body);
}

/*
 * EMSGSIZE: a message of SO_SNDBUF - 31 bytes fails with EMSGSIZE (nothing is sent); one of
 * exactly SO_SNDBUF - 32 bytes goes through and arrives whole. `sndbuf_set` (if > 0) is set
 * with SO_SNDBUF on the sender before anything is sent.
 */
static void emsgsize_run(const struct sock_api *api, bool shake, int sndbuf_set)
{
    int a, b;
    sem_announce(api, SEQ, shake);
    test_connect_pair(api, SEQ, &a, &b);
    if (sndbuf_set > 0)
        assert_int_equal(api->setsockopt(a, SOL_SOCKET, SO_SNDBUF, &sndbuf_set, sizeof(sndbuf_set)),
                         0);
    if (shake) {
        test_handshake(api, a, b);
        sem_assert_shm(api, a);
        sem_assert_shm(api, b);
    }
    int sndbuf = 0;
    socklen_t sl = sizeof(sndbuf);
    assert_int_equal(api->getsockopt(a, SOL_SOCKET, SO_SNDBUF, &sndbuf, &sl), 0);
    if (sndbuf_set > 0)
        assert_int_equal(sndbuf, 2 * sndbuf_set); /* Linux doubles the value set */
    size_t max = (size_t)sndbuf - 32;
    char *out = malloc(max + 64), *in = malloc(max + 64);
    assert_non_null(out);
    assert_non_null(in);
    test_fill_pattern(out, max + 64, 24);

    SEM_EXPECT_ERR(api->send(a, out, max + 1, 0), EMSGSIZE);
    SEM_EXPECT_ERR(api->send(a, out, max + 1, MSG_DONTWAIT), EMSGSIZE);
    SEM_EXPECT_ERR(api->send(a, out, (size_t)sndbuf, 0), EMSGSIZE);
    sem_expect_empty(api, b);

    assert_int_equal(api->send(a, out, max, 0), (ssize_t)max);
    memset(in, 0, max + 64);
    assert_int_equal(api->recv(b, in, max + 64, 0), (ssize_t)max);
    assert_true(test_check_pattern(in, max, 24));
    sem_expect_empty(api, b);
    /* And again (the blocks of the first one came back). */
    assert_int_equal(api->send(a, out, max, 0), (ssize_t)max);
    assert_int_equal(api->recv(b, in, max + 64, 0), (ssize_t)max);
    assert_true(test_check_pattern(in, max, 24));
    /* The connection still works for small messages. */
    assert_int_equal(api->send(a, "ok", 2, 0), 2);
    assert_int_equal(api->recv(b, in, 16, 0), 2);
    finish(api, shake, a, b);
    free(out);
    free(in);
}

static void emsgsize_default_body(const struct sock_api *api, bool shake)
{
    emsgsize_run(api, shake, 0);
}

static void emsgsize_set_body(const struct sock_api *api, bool shake)
{
    emsgsize_run(api, shake, 32768);
}

static void test_seqpacket_emsgsize_default_sndbuf(void **state)
{
    (void)state;
    SEM_GUARD();
    FOR_EACH_VARIANT(emsgsize_default_body);
}

static void test_seqpacket_emsgsize_set_sndbuf(void **state)
{
    (void)state;
    SEM_GUARD();
    FOR_EACH_VARIANT(emsgsize_set_body);
}

/* ---- 200,000-byte messages through a reader thread ------------------------------------ */

#define BIG 200000
#define NBIG 24

struct big_reader {
    const struct sock_api *api;
    int fd;
    char *buf;
    int bad_len, bad_data, err;
};

static void *big_reader_thread(void *p)
{
    struct big_reader *r = p;
    for (int i = 0; i < NBIG; i++) {
        ssize_t n = r->api->recv(r->fd, r->buf, BIG + 1000, 0);
        if (n < 0) {
            r->err = errno;
            return NULL;
        }
        /* Message i has length BIG - i and pattern seed 100 + i. */
        if (n != BIG - i)
            r->bad_len++;
        else if (!test_check_pattern(r->buf, (size_t)n, 100u + (unsigned)i))
            r->bad_data++;
    }
    return NULL;
}

static void big_body(const struct sock_api *api, bool shake)
{
    int a, b;
    sem_announce(api, SEQ, shake);
    sem_pair(api, SEQ, shake, &a, &b);
    char *out = malloc(BIG);
    struct big_reader r = {.api = api, .fd = b, .buf = malloc(BIG + 1000)};
    assert_non_null(out);
    assert_non_null(r.buf);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, big_reader_thread, &r), 0);
    for (int i = 0; i < NBIG; i++) {
        test_fill_pattern(out, BIG - (size_t)i, 100u + (unsigned)i);
        assert_int_equal(api->send(a, out, BIG - (size_t)i, 0), BIG - i);
    }
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.bad_len, 0);
    assert_int_equal(r.bad_data, 0);
    sem_expect_empty(api, b);
    finish(api, shake, a, b);
    free(out);
    free(r.buf);
}

static void test_seqpacket_200000_byte_messages(void **state)
{
    (void)state;
    SEM_GUARD();
    FOR_EACH_VARIANT(big_body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seqpacket_boundaries),
        cmocka_unit_test(test_seqpacket_truncation),
        cmocka_unit_test(test_seqpacket_peek),
        cmocka_unit_test(test_seqpacket_zero_length),
        cmocka_unit_test(test_seqpacket_emsgsize_default_sndbuf),
        cmocka_unit_test(test_seqpacket_emsgsize_set_sndbuf),
        cmocka_unit_test(test_seqpacket_200000_byte_messages),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    test_watchdog(0, NULL);
    return rc;
}
