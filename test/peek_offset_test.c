/*
 * peek_offset_test.c - SO_PEEK_OFF, kernel vs shm (same steps, every outcome and every byte
 * compared with the kernel's):
 *   - on the kernel path (a shm socket whose peer is a plain kernel socket: the first read,
 *     a read after our own offer went unread, or with SHM_NEGOTIATE = 0), SOCK_STREAM peeks
 *     start at the application's offset and move it, reads move it back, a peek past the data
 *     fails with EAGAIN or waits, exactly as the kernel's: the library's own peeks (the look
 *     before a first read, the careful reads while our offer is out) neither use nor move it;
 *   - on shared memory (coalesced and event mode) and before negotiation, where SO_PEEK_OFF
 *     is not honoured (README), an offset set by the application does not disturb the
 *     library's own reads of the kernel socket (event records, doorbells): reads and blocking
 *     reads bring the right bytes, and the offset reads back as the kernel's.
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

/* One step's outcome: its result (or -errno) and the bytes it returned. */
struct step {
    ssize_t rc;
    char bytes[24];
};

#define MAX_STEPS 24

struct run {
    struct step steps[MAX_STEPS];
    int count;
};

static void record(struct run *run, ssize_t rc, const char *bytes)
{
    assert_true(run->count < MAX_STEPS);
    struct step *s = &run->steps[run->count++];
    s->rc = rc < 0 ? -errno : rc;
    memset(s->bytes, 0, sizeof(s->bytes));
    if (rc > 0 && bytes != NULL)
        memcpy(s->bytes, bytes, (size_t)rc < sizeof(s->bytes) ? (size_t)rc : sizeof(s->bytes) - 1);
}

static void compare(const struct run *kernel, const struct run *shm, const char *what)
{
    assert_int_equal(kernel->count, shm->count);
    for (int k = 0; k < kernel->count; k++) {
        const struct step *a = &kernel->steps[k], *b = &shm->steps[k];
        if (a->rc != b->rc || strcmp(a->bytes, b->bytes) != 0)
            fail_msg("%s, step %d: shm %zd \"%s\", the kernel's %zd \"%s\"", what, k + 1, b->rc,
                     b->bytes, a->rc, a->bytes);
    }
}

static void peek_recv(const struct sock_api *api, struct run *run, int fd, size_t len, int flags)
{
    char buf[24] = {0};
    errno = 0;
    record(run, api->recv(fd, buf, len, flags), buf);
}

static void record_offset(const struct sock_api *api, struct run *run, int fd)
{
    int off = -2;
    socklen_t len = sizeof(off);
    errno = 0;
    record(run, api->getsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &off, &len) < 0 ? -1 : off, NULL);
}

static void set_offset(const struct sock_api *api, int fd, int off)
{
    assert_int_equal(api->setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof(off)), 0);
}

/* A blocking call of `fd` while `writer` sends "late" 100 ms later. */
static void blocking_with_late(const struct sock_api *api, const struct sock_api *writer_api,
                               struct run *run, int fd, int writer, size_t len, int flags)
{
    struct sem_late_sender late = {.api = writer_api, .fd = writer, .flags = MSG_NOSIGNAL};
    sem_late_start(&late);
    peek_recv(api, run, fd, len, flags);
    sem_late_join(&late);
}

enum { KP_FIRST_READ, KP_OFFER_UNREAD, KP_NO_NEGOTIATION, KP_CASES };
static const char *const kp_names[KP_CASES] = {"plain peer, first read",
                                               "plain peer, our offer unread", "SHM_NEGOTIATE = 0"};

/*
 * The kernel path: `api` makes the reader; its peer is always a plain kernel socket. The
 * steps peek "aaaabbbb" four bytes at a time from offset 0, read, peek across new data, and
 * wait at the offset for data that comes later.
 */
static void kernel_path_body(const struct sock_api *api, int kind, struct run *run)
{
    print_message("    [%s STREAM %s]\n", api->name, kp_names[kind]);
    const struct sock_api *plain = &test_kernel_api;
    struct sockaddr_un addr;
    socklen_t addrlen = test_abstract_addr(&addr);
    int listener = plain->socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(listener >= 0);
    assert_int_equal(plain->bind(listener, (struct sockaddr *)&addr, addrlen), 0);
    assert_int_equal(plain->listen(listener, 4), 0);
    int r = api->socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(r >= 0);
    if (kind == KP_NO_NEGOTIATION && api->is_shm) {
        int off = 0;
        assert_int_equal(shm_setsockopt(r, SOL_SHMSOCK, SHM_NEGOTIATE, &off, sizeof(off)), 0);
    }
    assert_int_equal(api->connect(r, (struct sockaddr *)&addr, addrlen), 0);
    int w = plain->accept(listener, NULL, NULL);
    assert_true(w >= 0);
    plain->close(listener);
    if (kind != KP_FIRST_READ) /* our first send: the offer rides on it, the peer leaves it */
        assert_int_equal(api->send(r, "hello", 5, 0), 5);

    set_offset(api, r, 0);
    assert_int_equal(plain->send(w, "aaaabbbb", 8, 0), 8);
    sem_sleep_ms(10);
    peek_recv(api, run, r, 4, MSG_PEEK);                /* "aaaa" */
    peek_recv(api, run, r, 4, MSG_PEEK);                /* "bbbb" */
    record_offset(api, run, r);                         /* 8 */
    peek_recv(api, run, r, 4, MSG_PEEK | MSG_DONTWAIT); /* EAGAIN: nothing past the offset */
    peek_recv(api, run, r, 3, 0);                       /* "aaa" */
    record_offset(api, run, r);                         /* 5 */
    assert_int_equal(plain->send(w, "cc", 2, 0), 2);
    sem_sleep_ms(10);
    peek_recv(api, run, r, 8, MSG_PEEK); /* "cc" */
    record_offset(api, run, r);
    peek_recv(api, run, r, 16, 0); /* "abbbbcc" */
    record_offset(api, run, r);    /* 0 */
    /* A blocking peek waits at its offset for data. */
    set_offset(api, r, 0);
    blocking_with_late(api, plain, run, r, w, 8, MSG_PEEK); /* "late" */
    record_offset(api, run, r);
    blocking_with_late(api, plain, run, r, w, 8, MSG_PEEK); /* "late" (past the first one) */
    peek_recv(api, run, r, 16, 0);                          /* "latelate" */
    record_offset(api, run, r);
    if (kind != KP_FIRST_READ) {
        char hello[8];
        assert_int_equal(plain->recv(w, hello, sizeof(hello), 0), 5);
    }
    api->close(r);
    plain->close(w);
}

static void test_peek_offset_on_kernel_path(void **state)
{
    (void)state;
    SEM_GUARD();
    for (int kind = 0; kind < KP_CASES; kind++) {
        struct run runs[2];
        memset(runs, 0, sizeof(runs));
        for (int i = 0; i < 2; i++)
            kernel_path_body(test_apis[i], kind, &runs[i]);
        compare(&runs[0], &runs[1], kp_names[kind]);
    }
}

enum { SP_BEFORE, SP_COALESCED, SP_EVENTS, SP_CASES };
static const char *const sp_names[SP_CASES] = {"before negotiation", "coalesced", "event mode"};

/* Shared memory (or on its way): the application set SO_PEEK_OFF but does not peek. */
static void shm_path_body(const struct sock_api *api, int type, int kind, struct run *run)
{
    print_message("    [%s %s %s]\n", api->name, sem_type_name(type), sp_names[kind]);
    int a, b;
    test_connect_pair(api, type, &a, &b);
    if (kind == SP_EVENTS && api->is_shm) {
        int off = 0;
        assert_int_equal(shm_setsockopt(a, SOL_SHMSOCK, SHM_COALESCE, &off, sizeof(off)), 0);
        assert_int_equal(shm_setsockopt(b, SOL_SHMSOCK, SHM_COALESCE, &off, sizeof(off)), 0);
    }
    if (kind != SP_BEFORE) {
        test_handshake(api, a, b);
        sem_assert_shm(api, a);
        sem_assert_shm(api, b);
    }
    set_offset(api, b, 0);
    for (int round = 0; round < 3; round++) {
        assert_int_equal(api->send(a, "one", 3, 0), 3);
        assert_int_equal(api->send(a, "two", 3, 0), 3);
        sem_sleep_ms(5);
        peek_recv(api, run, b, 3, 0);
        peek_recv(api, run, b, 3, 0);
        peek_recv(api, run, b, 3, MSG_DONTWAIT); /* EAGAIN */
        blocking_with_late(api, api, run, b, a, 8, 0);
        record_offset(api, run, b);
        /* The other direction too: b's sends and a's reads. */
        assert_int_equal(api->send(b, "back", 4, 0), 4);
        peek_recv(api, run, a, 8, 0);
    }
    api->close(a);
    api->close(b);
}

static void test_peek_offset_keeps_shm_reads_right(void **state)
{
    (void)state;
    SEM_GUARD();
    for (int t = 0; t < 2; t++) {
        int type = t == 0 ? SOCK_STREAM : SOCK_SEQPACKET;
        for (int kind = 0; kind < SP_CASES; kind++) {
            struct run runs[2];
            memset(runs, 0, sizeof(runs));
            for (int i = 0; i < 2; i++)
                shm_path_body(test_apis[i], type, kind, &runs[i]);
            compare(&runs[0], &runs[1], sp_names[kind]);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_peek_offset_on_kernel_path),
        cmocka_unit_test(test_peek_offset_keeps_shm_reads_right),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    test_watchdog(0, NULL);
    return rc;
}
