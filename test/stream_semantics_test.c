/*
 * stream_semantics_test.c - SOCK_STREAM byte-stream semantics, kernel vs shm (same steps):
 * short reads, no message boundaries, short (partial) non-blocking writes, MSG_PEEK,
 * MSG_WAITALL, zero-length sends, and 1 MiB transfers that cross many blocks.
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

#define MIB (1024 * 1024)

/* recv of fewer bytes than waiting returns exactly what was asked; the rest stays queued. */
static void short_read_body(const struct sock_api *api, bool shake)
{
    int a, b;
    char out[100], in[1000];
    sem_announce(api, SOCK_STREAM, shake);
    sem_pair(api, SOCK_STREAM, shake, &a, &b);
    test_fill_pattern(out, sizeof(out), 11);
    assert_int_equal(api->send(a, out, sizeof(out), 0), 100);
    assert_int_equal(api->recv(b, in, 10, 0), 10);
    assert_memory_equal(in, out, 10);
    assert_int_equal(api->recv(b, in, 1, 0), 1);
    assert_int_equal(in[0], out[10]);
    /* A larger buffer returns only what is there (89 bytes), without waiting for more. */
    assert_int_equal(api->recv(b, in, sizeof(in), 0), 89);
    assert_memory_equal(in, out + 11, 89);
    sem_expect_empty(api, b);
    /* read()/write() flavours behave the same. */
    assert_int_equal(api->write(b, "reply!", 6), 6);
    assert_int_equal(api->read(a, in, 4), 4);
    assert_memory_equal(in, "repl", 4);
    assert_int_equal(api->read(a, in, sizeof(in)), 2);
    assert_memory_equal(in, "y!", 2);
    sem_expect_empty(api, a);
    if (shake) {
        sem_assert_shm(api, a);
        sem_assert_shm(api, b);
    }
    assert_int_equal(api->close(a), 0);
    assert_int_equal(api->close(b), 0);
}

static void test_stream_short_read(void **state)
{
    (void)state;
    SEM_GUARD();
    for (int i = 0; i < 2; i++) {
        short_read_body(test_apis[i], false);
        short_read_body(test_apis[i], true);
    }
}

/* Three sends queued: one recv with a big buffer returns all 150 bytes (no boundaries). */
static void no_boundaries_body(const struct sock_api *api, bool shake)
{
    int a, b;
    char out[150], in[1000];
    sem_announce(api, SOCK_STREAM, shake);
    sem_pair(api, SOCK_STREAM, shake, &a, &b);
    test_fill_pattern(out, sizeof(out), 12);
    assert_int_equal(api->send(a, out, 50, 0), 50);
    assert_int_equal(api->send(a, out + 50, 50, 0), 50);
    assert_int_equal(api->send(a, out + 100, 50, 0), 50);
    assert_int_equal(api->recv(b, in, sizeof(in), 0), 150);
    assert_memory_equal(in, out, 150);
    /* And a read may split a send: 3 sends of 50, reads of 70 + 80. */
    assert_int_equal(api->send(a, out, 50, 0), 50);
    assert_int_equal(api->send(a, out + 50, 50, 0), 50);
    assert_int_equal(api->send(a, out + 100, 50, 0), 50);
    assert_int_equal(api->recv(b, in, 70, 0), 70);
    assert_int_equal(api->recv(b, in + 70, sizeof(in) - 70, 0), 80);
    assert_memory_equal(in, out, 150);
    sem_expect_empty(api, b);
    if (shake) {
        sem_assert_shm(api, a);
        sem_assert_shm(api, b);
    }
    api->close(a);
    api->close(b);
}

static void test_stream_no_boundaries(void **state)
{
    (void)state;
    SEM_GUARD();
    for (int i = 0; i < 2; i++) {
        no_boundaries_body(test_apis[i], false);
        no_boundaries_body(test_apis[i], true);
    }
}

/* send(..., 0, 0) returns 0 and the peer sees nothing (no EOF, no byte). */
static void zero_len_body(const struct sock_api *api, bool shake)
{
    int a, b;
    char in[8];
    sem_announce(api, SOCK_STREAM, shake);
    sem_pair(api, SOCK_STREAM, shake, &a, &b);
    assert_int_equal(api->send(a, "", 0, 0), 0);
    sem_expect_empty(api, b);
    assert_int_equal(api->send(a, "z", 1, 0), 1);
    assert_int_equal(api->recv(b, in, sizeof(in), 0), 1);
    assert_int_equal(in[0], 'z');
    sem_expect_empty(api, b);
    if (shake)
        sem_assert_shm(api, a);
    api->close(a);
    api->close(b);
}

static void test_stream_zero_length_send(void **state)
{
    (void)state;
    SEM_GUARD();
    for (int i = 0; i < 2; i++) {
        zero_len_body(test_apis[i], false);
        zero_len_body(test_apis[i], true);
    }
}

/*
 * Non-blocking send of 1 MiB with nobody reading: a partial count 0 < n < 1 MiB; the next
 * send fails with EAGAIN; the peer then reads exactly those n bytes, in order.
 */
static void short_write_body(const struct sock_api *api, bool shake)
{
    int a, b;
    char *out = malloc(MIB), *in = malloc(MIB);
    assert_non_null(out);
    assert_non_null(in);
    sem_announce(api, SOCK_STREAM, shake);
    sem_pair(api, SOCK_STREAM, shake, &a, &b);
    test_fill_pattern(out, MIB, 13);
    ssize_t n = api->send(a, out, MIB, MSG_DONTWAIT);
    assert_true(n > 0);
    assert_true(n < MIB);
    SEM_EXPECT_ERR(api->send(a, out + n, MIB - (size_t)n, MSG_DONTWAIT), EAGAIN);
    test_recv_all(api, b, in, (size_t)n);
    assert_memory_equal(in, out, (size_t)n);
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

static void test_stream_short_write_nonblocking(void **state)
{
    (void)state;
    SEM_GUARD();
    for (int i = 0; i < 2; i++) {
        short_write_body(test_apis[i], false);
        short_write_body(test_apis[i], true);
    }
}

/* ---- 1 MiB through a reader thread ---------------------------------------------------- */

struct reader_arg {
    const struct sock_api *api;
    int fd;
    char *buf;
    size_t len;
    size_t chunk; /* recv size per call */
    int flags;
    ssize_t first_rc; /* for MSG_WAITALL: the return of the single call */
    int err;
    size_t got;
};

static void *reader_thread(void *p)
{
    struct reader_arg *r = p;
    r->got = 0;
    while (r->got < r->len) {
        size_t want = r->len - r->got < r->chunk ? r->len - r->got : r->chunk;
        ssize_t n = r->api->recv(r->fd, r->buf + r->got, want, r->flags);
        if (r->got == 0)
            r->first_rc = n;
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            r->err = n < 0 ? errno : -1;
            break;
        }
        r->got += (size_t)n;
    }
    return NULL;
}

static void large_body(const struct sock_api *api, bool shake, size_t send_chunk, size_t recv_chunk)
{
    int a, b;
    char *out = malloc(MIB);
    struct reader_arg r = {.api = api, .len = MIB, .chunk = recv_chunk, .buf = malloc(MIB)};
    assert_non_null(out);
    assert_non_null(r.buf);
    sem_announce(api, SOCK_STREAM, shake);
    sem_pair(api, SOCK_STREAM, shake, &a, &b);
    r.fd = b;
    test_fill_pattern(out, MIB, 14);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, reader_thread, &r), 0);
    if (send_chunk >= MIB) {
        /* A blocking send of 1 MiB sends all of it (the reader makes room as it goes). */
        assert_int_equal(api->send(a, out, MIB, 0), MIB);
    } else {
        for (size_t off = 0; off < MIB; off += send_chunk) {
            size_t len = MIB - off < send_chunk ? MIB - off : send_chunk;
            assert_int_equal(api->send(a, out + off, len, 0), (ssize_t)len);
        }
    }
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.got, MIB);
    assert_true(test_check_pattern(r.buf, MIB, 14));
    sem_expect_empty(api, b);
    if (shake) {
        sem_assert_shm(api, a);
        sem_assert_shm(api, b);
    }
    api->close(a);
    api->close(b);
    free(out);
    free(r.buf);
}

static void test_stream_1mib_one_send_small_reads(void **state)
{
    (void)state;
    SEM_GUARD();
    for (int i = 0; i < 2; i++) {
        large_body(test_apis[i], false, MIB, 7777);
        large_body(test_apis[i], true, MIB, 7777);
    }
}

static void test_stream_1mib_odd_sends_big_reads(void **state)
{
    (void)state;
    SEM_GUARD();
    for (int i = 0; i < 2; i++) {
        large_body(test_apis[i], false, 3001, 65536);
        large_body(test_apis[i], true, 3001, 65536);
    }
}

/* ---- MSG_PEEK ----------------------------------------------------------------------- */

static void peek_body(const struct sock_api *api, bool shake)
{
    int a, b;
    char in[64];
    sem_announce(api, SOCK_STREAM, shake);
    sem_pair(api, SOCK_STREAM, shake, &a, &b);
    assert_int_equal(api->send(a, "hello world", 11, 0), 11);
    assert_int_equal(api->recv(b, in, 5, MSG_PEEK), 5);
    assert_memory_equal(in, "hello", 5);
    memset(in, 0, sizeof(in));
    assert_int_equal(api->recv(b, in, sizeof(in), MSG_PEEK), 11);
    assert_memory_equal(in, "hello world", 11);
    /* Peeking consumed nothing. */
    assert_int_equal(api->recv(b, in, 6, 0), 6);
    assert_memory_equal(in, "hello ", 6);
    /* Peek after a partial read sees the rest; MSG_PEEK|MSG_DONTWAIT too. */
    assert_int_equal(api->recv(b, in, sizeof(in), MSG_PEEK | MSG_DONTWAIT), 5);
    assert_memory_equal(in, "world", 5);
    assert_int_equal(api->recv(b, in, sizeof(in), 0), 5);
    assert_memory_equal(in, "world", 5);
    SEM_EXPECT_ERR(api->recv(b, in, sizeof(in), MSG_PEEK | MSG_DONTWAIT), EAGAIN);
    /* Peek spans two queued sends, as the kernel's does. */
    assert_int_equal(api->send(a, "abc", 3, 0), 3);
    assert_int_equal(api->send(a, "def", 3, 0), 3);
    assert_int_equal(api->recv(b, in, sizeof(in), MSG_PEEK), 6);
    assert_memory_equal(in, "abcdef", 6);
    assert_int_equal(api->recv(b, in, sizeof(in), 0), 6);
    assert_memory_equal(in, "abcdef", 6);
    sem_expect_empty(api, b);
    if (shake) {
        sem_assert_shm(api, a);
        sem_assert_shm(api, b);
    }
    api->close(a);
    api->close(b);
}

static void test_stream_peek(void **state)
{
    (void)state;
    SEM_GUARD();
    for (int i = 0; i < 2; i++) {
        peek_body(test_apis[i], false);
        peek_body(test_apis[i], true);
    }
}

/* Peek at 100000 bytes (many blocks), then read them: same bytes both times. */
static void peek_large_body(const struct sock_api *api, bool shake)
{
    enum { LEN = 100000 };
    int a, b;
    char *out = malloc(LEN), *in = malloc(LEN);
    assert_non_null(out);
    assert_non_null(in);
    sem_announce(api, SOCK_STREAM, shake);
    sem_pair(api, SOCK_STREAM, shake, &a, &b);
    test_fill_pattern(out, LEN, 15);
    assert_int_equal(api->send(a, out, LEN, 0), LEN);
    assert_int_equal(api->recv(b, in, LEN, MSG_PEEK), LEN);
    assert_memory_equal(in, out, LEN);
    memset(in, 0, LEN);
    assert_int_equal(api->recv(b, in, LEN, MSG_PEEK), LEN);
    assert_memory_equal(in, out, LEN);
    memset(in, 0, LEN);
    assert_int_equal(api->recv(b, in, LEN, 0), LEN);
    assert_memory_equal(in, out, LEN);
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

static void test_stream_peek_large(void **state)
{
    (void)state;
    SEM_GUARD();
    for (int i = 0; i < 2; i++) {
        peek_large_body(test_apis[i], false);
        peek_large_body(test_apis[i], true);
    }
}

/* ---- MSG_WAITALL -------------------------------------------------------------------- */

struct slow_sender {
    const struct sock_api *api;
    int fd;
    const char *buf;
    size_t len, chunk;
    long pause_ms;
    bool close_after;
    int err;
};

static void *slow_sender_thread(void *p)
{
    struct slow_sender *s = p;
    for (size_t off = 0; off < s->len; off += s->chunk) {
        sem_sleep_ms(s->pause_ms);
        size_t len = s->len - off < s->chunk ? s->len - off : s->chunk;
        size_t done = 0;
        while (done < len) {
            ssize_t n = s->api->send(s->fd, s->buf + off + done, len - done, MSG_NOSIGNAL);
            if (n <= 0) {
                s->err = n < 0 ? errno : -1;
                return NULL;
            }
            done += (size_t)n;
        }
    }
    if (s->close_after)
        s->err = s->api->close(s->fd) == 0 ? 0 : errno;
    return NULL;
}

/* The data arrives in 3 pieces 30 ms apart: one MSG_WAITALL recv returns all of it. */
static void waitall_body(const struct sock_api *api, bool shake, size_t len, size_t chunk,
                         long pause_ms)
{
    int a, b;
    char *out = malloc(len), *in = malloc(len);
    assert_non_null(out);
    assert_non_null(in);
    sem_announce(api, SOCK_STREAM, shake);
    sem_pair(api, SOCK_STREAM, shake, &a, &b);
    test_fill_pattern(out, len, 16);
    struct slow_sender s = {
        .api = api, .fd = a, .buf = out, .len = len, .chunk = chunk, .pause_ms = pause_ms};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, slow_sender_thread, &s), 0);
    ssize_t n = api->recv(b, in, len, MSG_WAITALL);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(s.err, 0);
    assert_int_equal(n, (ssize_t)len);
    assert_true(test_check_pattern(in, len, 16));
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

static void test_stream_waitall(void **state)
{
    (void)state;
    SEM_GUARD();
    for (int i = 0; i < 2; i++) {
        waitall_body(test_apis[i], false, 3000, 1000, 30);
        waitall_body(test_apis[i], true, 3000, 1000, 30);
    }
}

/* MSG_WAITALL for 1 MiB while the sender sends 64 KiB pieces: one call, 1 MiB. */
static void test_stream_waitall_1mib(void **state)
{
    (void)state;
    SEM_GUARD();
    for (int i = 0; i < 2; i++) {
        waitall_body(test_apis[i], false, MIB, 65536, 0);
        waitall_body(test_apis[i], true, MIB, 65536, 0);
    }
}

/* MSG_WAITALL stops at end of stream: 10 bytes then close -> returns 10, then 0. */
static void waitall_eof_body(const struct sock_api *api, bool shake)
{
    int a, b;
    char in[100];
    sem_announce(api, SOCK_STREAM, shake);
    sem_pair(api, SOCK_STREAM, shake, &a, &b);
    struct slow_sender s = {.api = api,
                            .fd = a,
                            .buf = "0123456789",
                            .len = 10,
                            .chunk = 10,
                            .pause_ms = 50,
                            .close_after = true};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, slow_sender_thread, &s), 0);
    ssize_t n = api->recv(b, in, sizeof(in), MSG_WAITALL);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(s.err, 0);
    assert_int_equal(n, 10);
    assert_memory_equal(in, "0123456789", 10);
    assert_int_equal(api->recv(b, in, sizeof(in), MSG_WAITALL), 0);
    api->close(b);
}

static void test_stream_waitall_eof(void **state)
{
    (void)state;
    SEM_GUARD();
    for (int i = 0; i < 2; i++) {
        waitall_eof_body(test_apis[i], false);
        waitall_eof_body(test_apis[i], true);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_short_read),
        cmocka_unit_test(test_stream_no_boundaries),
        cmocka_unit_test(test_stream_zero_length_send),
        cmocka_unit_test(test_stream_short_write_nonblocking),
        cmocka_unit_test(test_stream_1mib_one_send_small_reads),
        cmocka_unit_test(test_stream_1mib_odd_sends_big_reads),
        cmocka_unit_test(test_stream_peek),
        cmocka_unit_test(test_stream_peek_large),
        cmocka_unit_test(test_stream_waitall),
        cmocka_unit_test(test_stream_waitall_1mib),
        cmocka_unit_test(test_stream_waitall_eof),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    test_watchdog(0, NULL);
    return rc;
}
