/*
 * stack_test.c - a blocking read and a send need little stack, as the kernel calls do (issue
 * 13, item 10): a clone() child whose stack is 4 KiB, with a guard page below it, does a
 * blocking shm_read (it sleeps until the parent sends) and shm_send (big enough to wait for
 * the peer's releases) on a shm pair on shared memory (coalesced and event mode), on one
 * whose first messages carry the offers (the read accepts the peer's offer and answers it),
 * on a plain one (SHM_NEGOTIATE 0), and on kernel sockets, STREAM and SEQPACKET, and checks
 * the data. Each case also runs on a painted 64 KiB stack and prints the deepest use
 * (SHMSOCK_STACK_REPORT=1 prints every figure). Skipped under AddressSanitizer, whose
 * redzones multiply every frame.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "shmsock.h"
#include "test_support.h"
#include "mode_util.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

#define SMALL_STACK 4096
#define PAINTED_STACK (64 * 1024)
#define PAINT 0xA5
#define READ_LEN 1000
#define SEND_LEN (256 * 1024) /* more than a region: the send waits for releases */
#define SEQPACKET_MESSAGE (60 * 1024)

enum op { OP_READ, OP_SEND };

struct job {
    const struct sock_api *api;
    int type;
    enum op op;
    int fd;
    unsigned char *stack; /* lowest usable byte (above the guard page) */
    size_t stack_size;
    int report; /* pipe: the child writes its result and depth here */
};

static unsigned char payload[SEND_LEN];
static unsigned char received[SEND_LEN];

/* The child: the operation, then how deep its stack was used (from the paint). */
static int child(void *arg)
{
    struct job *job = arg;
    long result = 0;
    if (job->op == OP_READ) {
        ssize_t n = job->api->read(job->fd, received, READ_LEN);
        result = n == READ_LEN && memcmp(received, payload, READ_LEN) == 0
                     ? 1
                     : -1 - (n < 0 ? errno : 0);
    } else if (job->type == SOCK_STREAM) {
        ssize_t n = job->api->send(job->fd, payload, SEND_LEN, 0);
        result = n == SEND_LEN ? 1 : -1;
    } else {
        result = 1;
        for (int i = 0; i < 4 && result == 1; i++)
            if (job->api->send(job->fd, payload + (size_t)i * SEQPACKET_MESSAGE, SEQPACKET_MESSAGE,
                               0) != SEQPACKET_MESSAGE)
                result = -1;
    }
    size_t untouched = 0;
    while (untouched < job->stack_size && job->stack[untouched] == PAINT)
        untouched++;
    long figures[2] = {result, (long)(job->stack_size - untouched)};
    if (write(job->report, figures, sizeof(figures)) != (ssize_t)sizeof(figures))
        return 2;
    return 0;
}

/* The peer's side while the child works: send what it reads, or read what it sends. */
static void peer_side(const struct sock_api *api, int type, enum op op, int fd)
{
    usleep(50 * 1000); /* the child is asleep in its call by now */
    if (op == OP_READ) {
        assert_int_equal(api->send(fd, payload, READ_LEN, 0), READ_LEN);
        return;
    }
    size_t total = type == SOCK_STREAM ? SEND_LEN : 4 * SEQPACKET_MESSAGE;
    size_t got = 0;
    while (got < total) {
        ssize_t n = api->recv(fd, received + got, total - got, 0);
        assert_true(n > 0);
        got += (size_t)n;
    }
    assert_memory_equal(received, payload, total);
}

/*
 * Run op on fd in a clone() child with a stack of stack_size bytes above a guard page, the
 * peer's side on peer here. Returns the stack depth the child used, or -1 if it died (a
 * signal: the stack overflowed into the guard page).
 */
static long run_child(const struct sock_api *api, int type, enum op op, int fd, int peer,
                      size_t stack_size)
{
    long page = sysconf(_SC_PAGESIZE);
    size_t mapped = stack_size + (size_t)page;
    unsigned char *area =
        mmap(NULL, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(area != MAP_FAILED);
    assert_int_equal(mprotect(area, (size_t)page, PROT_NONE), 0);
    int report[2];
    assert_int_equal(pipe(report), 0);
    struct job job = {.api = api,
                      .type = type,
                      .op = op,
                      .fd = fd,
                      .stack = area + page,
                      .stack_size = stack_size,
                      .report = report[1]};
    memset(job.stack, PAINT, stack_size);
    /* Not CLONE_VM: the child has its own copy of this process (the regions are shared
     * mappings), so it cannot disturb the parent's state; its stack is the painted one. */
    pid_t pid = clone(child, job.stack + stack_size, SIGCHLD, &job);
    assert_true(pid > 0);
    peer_side(api, type, op, peer);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    long figures[2] = {0, -1};
    close(report[1]);
    ssize_t n = read(report[0], figures, sizeof(figures));
    close(report[0]);
    munmap(area, mapped);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || n != (ssize_t)sizeof(figures))
        return -1;
    assert_int_equal(figures[0], 1); /* the data arrived intact */
    return figures[1];
}

enum pair_kind { PAIR_KERNEL, PAIR_PLAIN, PAIR_OFFERS, PAIR_COALESCED, PAIR_EVENT };
static const char *const pair_names[] = {"kernel", "shm plain (SHM_NEGOTIATE 0)",
                                         "shm first messages (offers)", "shm coalesced",
                                         "shm event mode"};

static void make_pair(enum pair_kind kind, int type, int *a, int *b)
{
    switch (kind) {
    case PAIR_KERNEL:
        test_connect_pair(&test_kernel_api, type, a, b);
        break;
    case PAIR_PLAIN:
        mu_pair(type, &MODE_COALESCED, false, false, a, b);
        break;
    case PAIR_OFFERS:
        mu_pair(type, &MODE_COALESCED, true, false, a, b);
        break;
    case PAIR_COALESCED:
        mu_pair(type, &MODE_COALESCED, true, true, a, b);
        break;
    case PAIR_EVENT:
        mu_pair(type, &MODE_EVENT, true, true, a, b);
        break;
    }
}

static long deepest[2][5][2]; /* [SEQPACKET][pair kind][op] */

static void run_case(enum pair_kind kind, int type, enum op op, size_t stack_size)
{
    const struct sock_api *api = kind == PAIR_KERNEL ? &test_kernel_api : &test_shm_api;
    int a, b;
    make_pair(kind, type, &a, &b);
    /* The child reads on b (a sends), or sends on a (b reads). */
    long depth = op == OP_READ ? run_child(api, type, op, b, a, stack_size)
                               : run_child(api, type, op, a, b, stack_size);
    if (depth < 0)
        fail_msg("%s %s, %s on a %zu-byte stack: the child died (stack overflow)", pair_names[kind],
                 mu_type_name(type), op == OP_READ ? "blocking read" : "send", stack_size);
    if (stack_size == PAINTED_STACK)
        deepest[type == SOCK_SEQPACKET][kind][op] = depth;
    api->close(a);
    api->close(b);
}

static void for_each_case(size_t stack_size)
{
    for (int t = 0; t < 2; t++)
        for (int kind = 0; kind < 5; kind++)
            for (int op = 0; op < 2; op++)
                run_case((enum pair_kind)kind, t == 0 ? SOCK_STREAM : SOCK_SEQPACKET, (enum op)op,
                         stack_size);
}

static void test_stack_figures(void **state)
{
    (void)state;
    test_watchdog(60, __func__);
    test_fill_pattern(payload, sizeof(payload), 13);
    for_each_case(PAINTED_STACK);
    for (int t = 0; t < 2; t++)
        for (int kind = 0; kind < 5; kind++)
            print_message("    %-9s %-28s blocking read %5ld bytes, send %5ld bytes of stack\n",
                          t == 0 ? "STREAM" : "SEQPACKET", pair_names[kind], deepest[t][kind][0],
                          deepest[t][kind][1]);
}

static void test_small_stack(void **state)
{
    (void)state;
#ifdef UNDER_ASAN
    skip();
#endif
    test_watchdog(60, __func__);
    test_fill_pattern(payload, sizeof(payload), 17);
    for_each_case(SMALL_STACK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stack_figures),
        cmocka_unit_test(test_small_stack),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
