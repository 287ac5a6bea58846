/*
 * bad_pointer_test.c - buffers the kernel cannot copy, kernel vs shm (same steps, every
 * outcome compared with the kernel's), STREAM and SEQPACKET, before negotiation, on shared
 * memory (coalesced) and on shared memory in event mode:
 *   - socketpair with an sv that is not mapped, or read-only: EFAULT, no descriptor left;
 *   - send from, recv/peek/read into memory that is not mapped, or a file mapped past its end
 *     (SIGBUS on access), 64 bytes and 1 MiB: EFAULT, never a signal; a failed send publishes
 *     nothing; a failed STREAM read leaves the bytes (a SEQPACKET read drops its message, as
 *     the kernel's does); a read with nothing waiting says EAGAIN, as the kernel's;
 *   - a read whose bad bytes lie past what the message fills succeeds, as the kernel's;
 *   - a STREAM read or peek whose buffer goes bad after some bytes returns those bytes, and
 *     the next read finds no error left behind.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cmocka.h>

#include "shmsock.h"
#include "test_support.h"
#include "semantics_util.h"

#define MIB (1024 * 1024)
#define PAGE 4096

#define STEP(run, what, call)                                                                      \
    do {                                                                                           \
        errno = 0;                                                                                 \
        ssize_t rc_ = (ssize_t)(call);                                                             \
        sem_step(run, what, rc_ < 0 ? -errno : rc_);                                               \
    } while (0)

/* Addresses the kernel cannot copy: `unmapped` (below the lowest address a process may map,
 * nothing there ever), `no_access` (2 MiB mapped PROT_NONE, kept so that nothing else lands
 * there), and `past_eof` (a shared file mapping whose file ends in its first page: 1 MiB and
 * a page past it raise SIGBUS on access). */
static unsigned char *const unmapped = (unsigned char *)(uintptr_t)0x1000;
static unsigned char *no_access;
static unsigned char *past_eof;
static size_t past_eof_len;

static int setup(void **state)
{
    (void)state;
    no_access = mmap(NULL, 2 * MIB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(no_access != MAP_FAILED);
    char dir_template[] = "/tmp/shmsock-bad-pointer-XXXXXX";
    char *dir = mkdtemp(dir_template);
    assert_non_null(dir);
    char path[128];
    snprintf(path, sizeof(path), "%s/file", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
    assert_int_equal(ftruncate(fd, 100), 0); /* the file ends in the first page */
    past_eof_len = MIB + PAGE;
    past_eof = mmap(NULL, past_eof_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    assert_true(past_eof != MAP_FAILED);
    close(fd);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    munmap(past_eof, past_eof_len);
    munmap(no_access, 2 * MIB);
    return 0;
}

/* A non-blocking recv into a good buffer: its result, and (STREAM) the bytes are `expect`. */
static ssize_t good_recv(const struct sock_api *api, int fd, const char *expect)
{
    char buf[64];
    ssize_t n = api->recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n > 0 && expect != NULL)
        assert_memory_equal(buf, expect, (size_t)n < strlen(expect) ? (size_t)n : strlen(expect));
    return n;
}

static void body(const struct sock_api *api, int type, int mode, struct sem_steps *run)
{
    print_message("    [%s %s %s]\n", api->name, sem_type_name(type), sem_mode_names[mode]);
    int a, b;
    sem_pair_in_mode(api, type, mode, &a, &b);
    unsigned char *bads[3] = {unmapped, no_access, past_eof + PAGE};
    for (int which = 0; which < 3; which++) {
        unsigned char *bad = bads[which];
        /* Two messages, the buffer bad past the first one's bytes: a STREAM read (and a peek)
         * returns the bytes before the bad ones, and leaves no error behind for the next read
         * (SEQPACKET: the first message fits). First on a new pair: before negotiation the first
         * message brings the peer's offer, and the read goes on past it. */
        char first[4];
        assert_int_equal(api->send(a, "abcd", 4, 0), 4);
        assert_int_equal(api->send(a, "efgh", 4, 0), 4);
        sem_sleep_ms(5);
        struct iovec short_good[2] = {{.iov_base = first, .iov_len = 4},
                                      {.iov_base = bad, .iov_len = 64}};
        struct msghdr short_msg = {.msg_iov = short_good, .msg_iovlen = 2};
        STEP(run, "peek with a bad second entry the second message reaches",
             api->recvmsg(b, &short_msg, MSG_PEEK | MSG_DONTWAIT));
        STEP(run, "recvmsg with a bad second entry the second message reaches",
             api->recvmsg(b, &short_msg, MSG_DONTWAIT));
        STEP(run, "recv after it", good_recv(api, b, "efgh"));
        /* Sends: nothing is published. */
        STEP(run, "send 64 B from a bad buffer", api->send(a, bad, 64, MSG_DONTWAIT));
        STEP(run, "send 1 MiB from a bad buffer", api->send(a, bad, MIB, MSG_DONTWAIT));
        STEP(run, "write 64 B from a bad buffer", api->write(a, bad, 64));
        STEP(run, "recv after them", good_recv(api, b, NULL));
        /* Reads with nothing waiting. */
        STEP(run, "recv into a bad buffer, nothing waiting", api->recv(b, bad, 64, MSG_DONTWAIT));
        /* Reads with a message waiting. */
        assert_int_equal(api->send(a, "hello", 5, 0), 5);
        sem_sleep_ms(5);
        STEP(run, "peek into a bad buffer", api->recv(b, bad, 64, MSG_PEEK | MSG_DONTWAIT));
        STEP(run, "recv 64 B into a bad buffer", api->recv(b, bad, 64, MSG_DONTWAIT));
        STEP(run, "recv after it", good_recv(api, b, "hello"));
        assert_int_equal(api->send(a, "world", 5, 0), 5);
        sem_sleep_ms(5);
        STEP(run, "recv 1 MiB into a bad buffer", api->recv(b, bad, MIB, MSG_DONTWAIT));
        assert_int_equal(api->send(a, "again", 5, 0), 5); /* read(2) blocks: have one waiting */
        sem_sleep_ms(5);
        STEP(run, "read into a bad buffer", api->read(b, bad, 64));
        STEP(run, "recv after them", good_recv(api, b, "world"));
        /* The bad bytes lie past what the message fills: not touched, no error. */
        assert_int_equal(api->send(a, "tail", 4, 0), 4);
        sem_sleep_ms(5);
        char head[8];
        struct iovec iov[2] = {{.iov_base = head, .iov_len = sizeof(head)},
                               {.iov_base = bad, .iov_len = 64}};
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = 2};
        STEP(run, "recvmsg with a bad second entry the message does not reach",
             api->recvmsg(b, &m, MSG_DONTWAIT));
        /* Still in order both ways. */
        assert_int_equal(api->send(b, "back", 4, 0), 4);
        STEP(run, "the other direction", good_recv(api, a, "back"));
    }
    api->close(a);
    api->close(b);
}

static void test_bad_buffers(void **state)
{
    (void)state;
    SEM_GUARD();
    for (int t = 0; t < 2; t++) {
        int type = t == 0 ? SOCK_STREAM : SOCK_SEQPACKET;
        for (int mode = 0; mode < SEM_MODES; mode++) {
            struct sem_steps runs[2];
            memset(runs, 0, sizeof(runs));
            for (int i = 0; i < 2; i++)
                body(test_apis[i], type, mode, &runs[i]);
            char variant[64];
            snprintf(variant, sizeof(variant), "%s %s", sem_type_name(type), sem_mode_names[mode]);
            sem_steps_compare(&runs[0], &runs[1], variant);
        }
    }
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

/* socketpair with an sv the kernel cannot write: EFAULT, and no descriptor is left open. */
static void test_socketpair_bad_sv(void **state)
{
    (void)state;
    SEM_GUARD();
    unsigned char *read_only = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(read_only != MAP_FAILED);
    int *svs[2] = {(int *)unmapped, (int *)read_only};
    int types[3] = {SOCK_STREAM, SOCK_SEQPACKET, SOCK_DGRAM};
    for (int i = 0; i < 2; i++) {
        const struct sock_api *api = test_apis[i];
        for (int t = 0; t < 3; t++) {
            for (int s = 0; s < 2; s++) {
                int before = count_fds();
                SEM_EXPECT_ERR(api->socketpair(AF_UNIX, types[t], 0, svs[s]), EFAULT);
                assert_int_equal(count_fds(), before);
            }
        }
    }
    munmap(read_only, PAGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_socketpair_bad_sv),
        cmocka_unit_test(test_bad_buffers),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    test_watchdog(0, NULL);
    return rc;
}
