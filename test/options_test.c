/*
 * options_test.c - shmsock's own options: SHM_REGION_SIZE, SHM_INFO (struct shm_sock_info)
 * and MSG_MORE holding the doorbell, each checked against what the header says.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "shmsock.h"
#include "test_support.h"

static int get_int(int fd, int opt)
{
    int value = -1;
    socklen_t len = sizeof(value);
    assert_int_equal(shm_getsockopt(fd, SOL_SHMSOCK, opt, &value, &len), 0);
    return value;
}

static void set_int(int fd, int opt, int value)
{
    assert_int_equal(shm_setsockopt(fd, SOL_SHMSOCK, opt, &value, sizeof(value)), 0);
}

static struct shm_sock_info info_of(int fd)
{
    struct shm_sock_info info;
    memset(&info, 0xa5, sizeof(info));
    socklen_t len = sizeof(info);
    assert_int_equal(shm_getsockopt(fd, SOL_SHMSOCK, SHM_INFO, &info, &len), 0);
    assert_int_equal(len, sizeof(info));
    return info;
}

/* Is fd readable within timeout_ms (poll on the raw descriptor, as an epoll user sees it)? */
static bool readable(int fd, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, timeout_ms) == 1;
}

/* SHM_REGION_SIZE: default follows SO_SNDBUF; a set size is used, and read back as the real
 * size; out of range EINVAL; after the region exists EISCONN. */
static void test_region_size(void **state)
{
    (void)state;
    for (int t = 0; t < 2; t++) {
        int type = t == 0 ? SOCK_STREAM : SOCK_SEQPACKET;
        int a, b;
        int sv[2];
        assert_int_equal(shm_socketpair(AF_UNIX, type, 0, sv), 0);
        a = sv[0];
        b = sv[1];
        assert_int_equal(get_int(a, SHM_REGION_SIZE), 0); /* follows SO_SNDBUF */
        int bad = -1;
        assert_int_equal(shm_setsockopt(a, SOL_SHMSOCK, SHM_REGION_SIZE, &bad, sizeof(bad)), -1);
        assert_int_equal(errno, EINVAL);
        bad = 4097 * SHM_DEFAULT_BLOCK_SIZE; /* more than 4096 blocks */
        assert_int_equal(shm_setsockopt(a, SOL_SHMSOCK, SHM_REGION_SIZE, &bad, sizeof(bad)), -1);
        assert_int_equal(errno, EINVAL);
        set_int(a, SHM_REGION_SIZE, 1024 * 1024 + 1); /* rounded up to whole blocks */
        test_handshake(&test_shm_api, a, b);
        assert_int_equal(get_int(a, SHM_REGION_SIZE), 1024 * 1024 + SHM_DEFAULT_BLOCK_SIZE);
        int sndbuf = 0;
        socklen_t len = sizeof(sndbuf);
        assert_int_equal(shm_getsockopt(b, SOL_SOCKET, SO_SNDBUF, &sndbuf, &len), 0);
        int expect =
            (sndbuf + SHM_DEFAULT_BLOCK_SIZE - 1) / SHM_DEFAULT_BLOCK_SIZE * SHM_DEFAULT_BLOCK_SIZE;
        assert_int_equal(get_int(b, SHM_REGION_SIZE), expect);
        assert_int_equal(info_of(a).block_count, 257u);
        assert_int_equal(info_of(b).peer_block_count, 257u);
        int again = 2 * 1024 * 1024;
        assert_int_equal(shm_setsockopt(a, SOL_SHMSOCK, SHM_REGION_SIZE, &again, sizeof(again)),
                         -1);
        assert_int_equal(errno, EISCONN);
        if (type == SOCK_STREAM) {
            /* A zero-copy message larger than a default region fits in this one. */
            size_t big = 900 * 1024;
            unsigned char *p = shm_send_alloc(a, big, 0);
            assert_non_null(p);
            memset(p, 0x5a, big);
            errno = 0;
            assert_true(shm_send_alloc(b, big, 0) == NULL); /* b's region is the default */
            assert_int_equal(errno, EMSGSIZE);
            assert_int_equal(shm_send_commit(a, p, big, 0), (ssize_t)big);
            const void *view;
            assert_int_equal(shm_recv_view(b, &view, 0), (ssize_t)big);
            assert_int_equal(((const unsigned char *)view)[big - 1], 0x5a);
            assert_int_equal(shm_recv_release(b, view), 0);
        }
        shm_close(a);
        shm_close(b);
    }
}

/*
 * A first read that waits makes the region meanwhile (so the answer to the peer's offer is
 * ready): SHM_INFO shows it. Options changed before anything was offered drop it and are
 * used when negotiation happens; once the offer is out they fail with EISCONN.
 */
static void test_region_made_while_waiting(void **state)
{
    (void)state;
    for (int t = 0; t < 2; t++) {
        int type = t == 0 ? SOCK_STREAM : SOCK_SEQPACKET;
        int a, b;
        test_connect_pair(&test_shm_api, type, &a, &b);
        assert_int_equal(info_of(b).block_size, 0u); /* nothing made at accept */
        struct timeval tv = {.tv_sec = 0, .tv_usec = 20000};
        assert_int_equal(shm_setsockopt(b, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
        char byte;
        assert_int_equal(shm_recv(b, &byte, 1, 0), -1);
        assert_int_equal(errno, EAGAIN);
        assert_int_equal(info_of(b).block_size, SHM_DEFAULT_BLOCK_SIZE); /* made while waiting */
        /* SO_SNDBUF changed before anything was offered: the region goes (made again later). */
        int small = 65536;
        assert_int_equal(shm_setsockopt(b, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
        assert_int_equal(info_of(b).block_size, 0u);
        assert_int_equal(info_of(b).status, SHM_STATUS_PLAIN);
        /* A non-blocking read never makes it. */
        assert_int_equal(shm_recv(a, &byte, 1, MSG_DONTWAIT), -1);
        assert_int_equal(errno, EAGAIN);
        assert_int_equal(info_of(a).block_size, 0u);

        set_int(b, SHM_BLOCK_SIZE, 16384); /* not offered yet: allowed, the region goes */
        assert_int_equal(info_of(b).block_size, 0u);
        /* The region follows SO_SNDBUF too: a made region would go the same way. */
        int sndbuf = 1 << 20;
        assert_int_equal(shm_setsockopt(b, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)), 0);
        socklen_t sl = sizeof(sndbuf);
        assert_int_equal(shm_getsockopt(b, SOL_SOCKET, SO_SNDBUF, &sndbuf, &sl), 0);
        test_handshake(&test_shm_api, a, b);
        assert_int_equal(info_of(b).block_size, 16384u);
        assert_int_equal(info_of(a).peer_block_size, 16384u);
        assert_int_equal(info_of(b).block_count, (unsigned)((sndbuf + 16383) / 16384));
        int again = 4096;
        assert_int_equal(shm_setsockopt(b, SOL_SHMSOCK, SHM_BLOCK_SIZE, &again, sizeof(again)), -1);
        assert_int_equal(errno, EISCONN);
        shm_close(a);
        shm_close(b);
    }
}

/* SHM_INFO on a connection over shared memory: geometry and counters as documented. */
static void test_info_counts(void **state)
{
    (void)state;
    for (int t = 0; t < 2; t++) {
        int type = t == 0 ? SOCK_STREAM : SOCK_SEQPACKET;
        int a, b;
        test_connect_pair(&test_shm_api, type, &a, &b);
        test_handshake(&test_shm_api, a, b);
        struct shm_sock_info before_a = info_of(a), before_b = info_of(b);
        assert_int_equal(before_a.status, SHM_STATUS_SHM);
        assert_int_equal(before_a.fallback, SHM_FALLBACK_NONE);
        assert_int_equal(before_a.coalesced, 1);
        assert_int_equal(before_b.peer_coalesced, 1);
        assert_int_equal(before_a.block_size, SHM_DEFAULT_BLOCK_SIZE);
        assert_int_equal(before_a.block_count, 52u);
        assert_int_equal(before_b.peer_block_size, SHM_DEFAULT_BLOCK_SIZE);
        assert_int_equal(before_b.peer_block_count, 52u);
        enum { N = 100, SIZE = 1000 };
        char buf[SIZE];
        memset(buf, 'i', sizeof(buf));
        for (int i = 0; i < N; i++) {
            assert_int_equal(shm_send(a, buf, SIZE, 0), SIZE);
            test_recv_all(&test_shm_api, b, buf, SIZE);
        }
        struct shm_sock_info after_a = info_of(a), after_b = info_of(b);
        assert_int_equal(after_a.messages_sent - before_a.messages_sent, N);
        assert_int_equal(after_a.bytes_sent - before_a.bytes_sent, N * SIZE);
        assert_int_equal(after_b.messages_received - before_b.messages_received, N);
        assert_int_equal(after_b.bytes_received - before_b.bytes_received, N * SIZE);
        /* Everything was read and released: nothing in use either way. */
        assert_int_equal(after_a.blocks_in_use, 0);
        assert_int_equal(after_b.peer_blocks_held, 0);
        /* One unread message: one block in use on a's side. */
        assert_int_equal(shm_send(a, buf, SIZE, 0), SIZE);
        assert_int_equal(info_of(a).blocks_in_use, 1);
        test_recv_all(&test_shm_api, b, buf, SIZE);
        /* Read-only, and it needs room for the whole struct. */
        struct shm_sock_info info;
        assert_int_equal(shm_setsockopt(a, SOL_SHMSOCK, SHM_INFO, &info, sizeof(info)), -1);
        assert_int_equal(errno, EINVAL);
        socklen_t small = sizeof(info) - 1;
        assert_int_equal(shm_getsockopt(a, SOL_SHMSOCK, SHM_INFO, &info, &small), -1);
        assert_int_equal(errno, EINVAL);
        shm_close(a);
        shm_close(b);
    }
}

/* SHM_INFO's fallback: pending, disabled, plain peer; and a socket that is not a shm socket. */
static void test_info_fallback(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(shm_socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(info_of(sv[0]).fallback, SHM_FALLBACK_PENDING);
    assert_int_equal(info_of(sv[0]).status, SHM_STATUS_PLAIN);
    set_int(sv[1], SHM_NEGOTIATE, 0);
    assert_int_equal(info_of(sv[1]).fallback, SHM_FALLBACK_DISABLED);
    shm_close(sv[0]);
    shm_close(sv[1]);

    /* A shm socket whose peer reads with plain recv() (so drops the offer's descriptors, as a
     * plain program does): once it has, the shm side's next send finds out, and the fallback
     * says so. (A library socket used only with plain calls behaves as a plain socket.) */
    int c, peer;
    test_connect_pair(&test_shm_api, SOCK_STREAM, &c, &peer);
    char byte = 'x';
    int fallback = -1;
    for (int i = 0; i < 50 && fallback != SHM_FALLBACK_PLAIN_PEER; i++) {
        assert_int_equal(shm_send(c, &byte, 1, 0), 1);
        assert_int_equal(recv(peer, &byte, 1, 0), 1);
        fallback = info_of(c).fallback;
    }
    assert_int_equal(fallback, SHM_FALLBACK_PLAIN_PEER);
    assert_int_equal(info_of(c).status, SHM_STATUS_OFFERED);
    shm_close(c);
    shm_close(peer);

    int inet = shm_socket(AF_INET, SOCK_STREAM, 0);
    assert_true(inet >= 0);
    struct shm_sock_info info;
    socklen_t len = sizeof(info);
    assert_int_equal(shm_getsockopt(inet, SOL_SHMSOCK, SHM_INFO, &info, &len), -1);
    assert_int_equal(errno, ENOPROTOOPT);
    shm_close(inet);
}

/* MSG_MORE holds the doorbell: a sleeping reader is not woken (its fd stays unreadable) until
 * a send without MSG_MORE; then both messages are there, in order. */
static void test_msg_more_holds_doorbell(void **state)
{
    (void)state;
    for (int t = 0; t < 2; t++) {
        int type = t == 0 ? SOCK_STREAM : SOCK_SEQPACKET;
        int sv[2];
        assert_int_equal(shm_socketpair(AF_UNIX, type, 0, sv), 0);
        test_handshake(&test_shm_api, sv[0], sv[1]);
        char in[8];
        /* The reader drains to EAGAIN: it is armed, its fd not readable. */
        assert_int_equal(shm_recv(sv[1], in, sizeof(in), MSG_DONTWAIT), -1);
        assert_int_equal(errno, EAGAIN);
        assert_false(readable(sv[1], 0));
        unsigned long long rung = info_of(sv[0]).doorbells_sent;
        assert_int_equal(shm_send(sv[0], "1", 1, MSG_MORE), 1);
        assert_false(readable(sv[1], 50));
        assert_int_equal(info_of(sv[0]).doorbells_sent, rung);
        assert_int_equal(shm_send(sv[0], "2", 1, 0), 1);
        assert_true(readable(sv[1], 1000));
        assert_int_equal(info_of(sv[0]).doorbells_sent, rung + 1);
        test_recv_all(&test_shm_api, sv[1], in, 1);
        assert_int_equal(in[0], '1');
        test_recv_all(&test_shm_api, sv[1], in, 1);
        assert_int_equal(in[0], '2');
        shm_close(sv[0]);
        shm_close(sv[1]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_region_size),
        cmocka_unit_test(test_region_made_while_waiting),
        cmocka_unit_test(test_info_counts),
        cmocka_unit_test(test_info_fallback),
        cmocka_unit_test(test_msg_more_holds_doorbell),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
