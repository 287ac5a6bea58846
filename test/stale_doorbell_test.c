/*
 * stale_doorbell_test.c - a doorbell left in the peer's kernel queue when it closes.
 *
 * In coalesced mode a producer can ring at the moment the consumer finds the message in the
 * ring by itself; that doorbell may still be on its way when the consumer, having read
 * everything, closes. The kernel then sees unread bytes in the closed socket's queue and
 * reports a reset to the producer's side, where a kernel socket (everything read) reports none.
 * The race is microseconds wide, so the test makes the situation directly: after the consumer
 * has read the message, a doorbell record for an old generation (exactly what the producer
 * writes, impl/event.h) is put on the producer's socket, then the consumer closes.
 *
 * The producer's side must then behave as a kernel socket whose peer read everything and
 * closed (run on kernel sockets in the same test, without the record): reads return end of
 * stream, sends fail with EPIPE. And when the consumer did leave our message unread, the
 * reset still comes (the kernel's behaviour for that case, compared in the same way).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "impl/event.h"
#include "shmsock.h"
#include "test_support.h"

/* A doorbell for generation 0 (older than any arm), written past the library. */
static void put_old_doorbell(int fd)
{
    struct shmsock_event event = {.type = SHMSOCK_EVENT_DOORBELL, .offset = 0};
    unsigned char record[SHMSOCK_EVENT_SIZE];
    shmsock_event_encode(&event, record);
    assert_int_equal(send(fd, record, sizeof(record), MSG_NOSIGNAL), (ssize_t)sizeof(record));
}

/* -errno of a call that failed, or what it returned. */
static ssize_t outcome(ssize_t n)
{
    return n < 0 ? -errno : n;
}

/*
 * The producer a sends "m"; the consumer b reads it (or, with `unread`, does not) and closes.
 * Returns what a's next read and next send give, in `reads` and `sends` (two of each: the
 * first send, then one more).
 */
static void close_after_reading(const struct sock_api *api, int type, bool unread, bool stale,
                                ssize_t reads[1], ssize_t sends[2])
{
    int a, b;
    test_connect_pair(api, type, &a, &b);
    test_handshake(api, a, b);
    if (api->is_shm) {
        assert_int_equal(test_shm_status(a), SHM_STATUS_SHM);
        assert_int_equal(test_shm_status(b), SHM_STATUS_SHM);
    }
    assert_int_equal(api->send(a, "m", 1, 0), 1);
    if (!unread) {
        char in[8];
        assert_int_equal(api->recv(b, in, sizeof(in), 0), 1);
        assert_int_equal(in[0], 'm');
    }
    if (stale)
        put_old_doorbell(a);
    assert_int_equal(api->close(b), 0);
    char in[8];
    errno = 0;
    if (type == SOCK_STREAM) {
        reads[0] = outcome(api->recv(a, in, sizeof(in), MSG_DONTWAIT));
        for (int k = 0; k < 2; k++) {
            errno = 0;
            sends[k] = outcome(api->send(a, "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT));
        }
    } else {
        /* SEQPACKET reports a reset on whichever call comes first: send first here. */
        for (int k = 0; k < 2; k++) {
            errno = 0;
            sends[k] = outcome(api->send(a, "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT));
        }
        errno = 0;
        reads[0] = outcome(api->recv(a, in, sizeof(in), MSG_DONTWAIT));
    }
    api->close(a);
}

static void compare(int type, bool unread)
{
    ssize_t kernel_reads[1], kernel_sends[2], shm_reads[1], shm_sends[2];
    close_after_reading(&test_kernel_api, type, unread, false, kernel_reads, kernel_sends);
    close_after_reading(&test_shm_api, type, unread, !unread, shm_reads, shm_sends);
    print_message("    [%s, message %s] kernel: read %zd, sends %zd %zd; shm: read %zd, sends %zd "
                  "%zd\n",
                  type == SOCK_STREAM ? "STREAM" : "SEQPACKET", unread ? "unread" : "read",
                  kernel_reads[0], kernel_sends[0], kernel_sends[1], shm_reads[0], shm_sends[0],
                  shm_sends[1]);
    assert_int_equal(shm_reads[0], kernel_reads[0]);
    assert_int_equal(shm_sends[0], kernel_sends[0]);
    assert_int_equal(shm_sends[1], kernel_sends[1]);
}

/* Everything read, one old doorbell left in the queue: end of stream and EPIPE, no reset. */
static void test_stale_doorbell_is_no_reset(void **state)
{
    (void)state;
    compare(SOCK_STREAM, false);
    compare(SOCK_SEQPACKET, false);
}

/* Our message left unread: the reset comes, as on a kernel socket. */
static void test_unread_message_is_a_reset(void **state)
{
    (void)state;
    compare(SOCK_STREAM, true);
    compare(SOCK_SEQPACKET, true);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stale_doorbell_is_no_reset),
        cmocka_unit_test(test_unread_message_is_a_reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
