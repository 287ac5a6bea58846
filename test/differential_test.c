/*
 * differential_test.c - random sequences of calls, run on a kernel AF_UNIX pair and on a shm
 * pair in the same order, with every result compared.
 *
 * Each sequence (one seed) mixes sends of many sizes (send, or sendmsg over several iovecs,
 * now and then with a descriptor attached: SCM_RIGHTS), reads of many sizes and flags
 * (MSG_PEEK, MSG_WAITALL, MSG_TRUNC; recvmsg over one or several iovecs, with no room, room
 * for one or for four descriptors), poll, and near its end shutdown, close of one side and
 * the calls after it. Everything is non-blocking (MSG_DONTWAIT), so a difference is a failed
 * comparison, never a hang. What is compared, call by call: the return value, errno, the bytes
 * read, msg_flags (MSG_TRUNC, MSG_CTRUNC), the descriptors received, and poll's
 * POLLHUP/POLLRDHUP/POLLERR; POLLIN only one way (a kernel socket that is readable means the shm
 * socket is too; a shm socket may show a stale doorbell, which a read then answers with EAGAIN as
 * the kernel's does).
 *
 * The sequences keep less in flight than either side holds (the shm region takes fewer
 * small messages than the kernel's queue), so where EAGAIN comes is the same on both.
 * Negotiation happens inside the sequence (the first sends carry the offers), so the plain
 * phase, the switch and the shared-memory phase are all compared. SOCK_STREAM and
 * SOCK_SEQPACKET, coalesced, event mode and with SO_PASSCRED. SHMSOCK_DIFFERENTIAL_SEEDS sets the
 * number of sequences per case (default 400); a failure names its seed and step, and
 * SHMSOCK_DIFFERENTIAL_SEED=N SHMSOCK_DIFFERENTIAL_TRACE=1 replays that one step by step.
 * differential_preload_test.sh runs it with libshmsock-preload.so in LD_PRELOAD (and
 * SHMSOCK_DIFFERENTIAL_PRELOAD set): the kernel run then goes through the preload.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cmocka.h>

#include "shmsock.h"
#include "test_support.h"

#define STEPS 160
#define MAX_IN_FLIGHT_BYTES 60000
#define MAX_IN_FLIGHT_BLOCKS 40 /* of the 52 4-KiB blocks a default region has */
#define BUFFER 40000

static const size_t send_sizes[] = {1, 3, 64, 100, 1000, 4096, 5000, 12000};
static const size_t recv_sizes[] = {1, 5, 64, 100, 1000, 4096, 30000};

/* xorshift64*: the same stream of choices for both runs of a seed. */
static uint64_t next_random(uint64_t *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 2685821657736338717ull;
}

static size_t pick(uint64_t *state, size_t n)
{
    return (size_t)(next_random(state) % n);
}

/* One call's outcome: what the kernel run records and the shm run must match. */
struct outcome {
    ssize_t result;
    int error;   /* errno when result < 0 */
    int flags;   /* msg_flags of a read, revents of a poll */
    size_t data; /* bytes of a read, compared through a digest */
    uint64_t digest;
    bool peek;
    int fds;           /* descriptors a read received (SCM_RIGHTS) */
    int creds;         /* SCM_CREDENTIALS messages a read received (SO_PASSCRED) */
    size_t controllen; /* msg_controllen after a read */
    long queued;       /* a poll's FIONREAD (shm_ioctl), or -errno */
    /* A shorter STREAM peek (the same first bytes) is a documented difference here: event
     * mode, or the peer's direction moved to kernel events (it sent a descriptor, or we read
     * with SO_PASSCRED). */
    bool short_peek_ok;
};

/* A documented difference: a SOCK_STREAM peek of kernel events (event mode, or after the
 * peer sent descriptors) may show less than the kernel's (README, Behaviour and limits). Such
 * peeks are compared as prefixes of the kernel's: the kernel run keeps what its peeks showed. */
static unsigned char kernel_peeks[STEPS + 8][BUFFER];

static uint64_t digest(const unsigned char *bytes, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ bytes[i]) * 1099511628211ull;
    return h;
}

struct run {
    const struct sock_api *api;
    int type;
    int fd[2];
    bool closed[2];
    /* In flight per direction (side 0 to 1, 1 to 0), counted from the results: bytes, blocks
     * (a STREAM direction's count is an upper bound, cleared when it is drained), and the
     * sizes of SOCK_SEQPACKET messages not read yet. */
    long bytes[2];
    long blocks[2];
    size_t messages[2][MAX_IN_FLIGHT_BLOCKS];
    int first[2], count[2];
    int passed;        /* a descriptor some sends attach (SCM_RIGHTS) */
    bool passed_fd[2]; /* side 0 / 1 sent a descriptor (its direction is in event mode) */
};

static long blocks_of(size_t size)
{
    return (long)((size + 4095) / 4096);
}

static unsigned char payload[BUFFER];
static unsigned char received[BUFFER];

union control {
    struct cmsghdr align;
    char bytes[CMSG_SPACE(4 * sizeof(int)) + CMSG_SPACE(sizeof(struct ucred))];
};

static struct outcome do_send(struct run *r, int side, size_t size, bool vectored, bool with_fd)
{
    struct outcome o = {0};
    int flags = MSG_DONTWAIT | MSG_NOSIGNAL;
    union control control;
    if (vectored || with_fd) {
        size_t a = size / 3, b = size / 3;
        struct iovec iov[3] = {{payload, a}, {payload + a, b}, {payload + a + b, size - a - b}};
        struct msghdr msg = {.msg_iov = vectored ? iov : iov + 2, .msg_iovlen = vectored ? 3 : 1};
        if (!vectored)
            iov[2] = (struct iovec){payload, size};
        if (with_fd)
            test_attach_fds(&msg, control.bytes, &r->passed, 1);
        o.result = r->api->sendmsg(r->fd[side], &msg, flags);
        if (with_fd && o.result > 0)
            r->passed_fd[side] = true;
    } else {
        o.result = r->api->send(r->fd[side], payload, size, flags);
    }
    o.error = o.result < 0 ? errno : 0;
    if (o.result > 0) {
        r->bytes[side] += o.result;
        r->blocks[side] += blocks_of((size_t)o.result);
        if (r->type == SOCK_SEQPACKET)
            r->messages[side][(r->first[side] + r->count[side]++) % MAX_IN_FLIGHT_BLOCKS] = size;
    }
    return o;
}

/* Close the descriptors a read received; return how many. Count its credentials. */
static int take_fds(struct msghdr *msg, int *creds)
{
    int n = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c != NULL; c = CMSG_NXTHDR(msg, c)) {
        assert_true(c->cmsg_len >= CMSG_LEN(0)); /* a well-formed control message */
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS)
            ++*creds;
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++, n++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            close(fd);
        }
    }
    return n;
}

static struct outcome do_recv(struct run *r, int side, size_t size, int extra, bool vectored,
                              size_t control_room)
{
    struct outcome o = {0};
    int flags = MSG_DONTWAIT | extra;
    memset(received, 0, size);
    size_t a = size / 2;
    struct iovec iov[2] = {{received, a}, {received + a, size - a}};
    struct msghdr msg = {.msg_iov = vectored ? iov : iov + 1, .msg_iovlen = vectored ? 2 : 1};
    if (!vectored)
        iov[1] = (struct iovec){received, size};
    union control control;
    memset(&control, 0xAA, sizeof(control)); /* a read must say how much of it is control */
    msg.msg_control = control_room > 0 ? control.bytes : NULL;
    msg.msg_controllen = control_room;
    o.result = r->api->recvmsg(r->fd[side], &msg, flags);
    o.error = o.result < 0 ? errno : 0;
    o.flags = o.result >= 0 ? msg.msg_flags : 0;
    o.controllen = o.result >= 0 ? msg.msg_controllen : 0;
    o.fds = o.result >= 0 && control_room > 0 && msg.msg_controllen <= control_room
                ? take_fds(&msg, &o.creds)
                : 0;
    if (o.result > 0) {
        /* MSG_TRUNC may report more than was copied. */
        o.data = (size_t)o.result < size ? (size_t)o.result : size;
        o.digest = digest(received, o.data);
        o.peek = (extra & MSG_PEEK) != 0;
    }
    int from = 1 - side;
    if (o.result > 0 && !(extra & MSG_PEEK)) {
        if (r->type == SOCK_SEQPACKET && r->count[from] > 0) {
            size_t message = r->messages[from][r->first[from]];
            r->first[from] = (r->first[from] + 1) % MAX_IN_FLIGHT_BLOCKS;
            r->count[from]--;
            r->bytes[from] -= (long)message;
            r->blocks[from] -= blocks_of(message);
        } else if (r->type == SOCK_STREAM) {
            r->bytes[from] -= (long)o.data;
            if (r->bytes[from] == 0)
                r->blocks[from] = 0;
        }
    }
    return o;
}

static struct outcome do_poll(struct run *r, int side)
{
    struct outcome o = {0};
    struct pollfd p = {.fd = r->fd[side], .events = POLLIN | POLLRDHUP};
    o.result = r->api->poll(&p, 1, 0);
    o.error = o.result < 0 ? errno : 0;
    o.flags = p.revents;
    int queued = 0;
    int fd = r->fd[side];
    errno = 0;
    o.queued =
        (r->api->is_shm ? shm_ioctl(fd, FIONREAD, &queued) : ioctl(fd, FIONREAD, &queued)) < 0
            ? -errno
            : queued;
    return o;
}

static const char *describe(char *buf, size_t len, const struct outcome *o)
{
    snprintf(buf, len,
             "result %zd errno %s flags %#x bytes %zu digest %016llx fds %d control %zu "
             "queued %ld",
             o->result, o->result < 0 ? strerrorname_np(o->error) : "-", (unsigned)o->flags,
             o->data, (unsigned long long)o->digest, o->fds, o->controllen, o->queued);
    return buf;
}

struct sequence {
    uint64_t seed;
    int type;
    int coalesce;
    int passcred; /* SO_PASSCRED on both sockets: credentials with every read */
    struct outcome expected[STEPS + 8];
    char what[STEPS + 8][64];
    int steps;
};

/* Compare one shm outcome with the kernel's; POLLIN is compared one way only. */
static void compare(const struct sequence *s, int step, const struct outcome *kernel,
                    const struct outcome *shm, bool is_poll)
{
    bool same;
    if (is_poll) {
        /* POLLERR may be missing once the library has taken the peer's reset from the kernel
         * socket on its own (a read took data and met it): the next read reports it, as the
         * kernel's does (README, Behaviour and limits). The hang-up is shown either way. */
        int strict = POLLHUP | POLLRDHUP | POLLERR;
        /* FIONREAD of a SEQPACKET socket with a reset pending counts the peer's event records
         * as the kernel socket holds them (looking at them would take the reset; README,
         * Behaviour and limits). */
        bool seqpacket_reset = s->type == SOCK_SEQPACKET && (kernel->flags & POLLERR);
        int shm_flags = shm->flags;
        if ((kernel->flags & POLLERR) && (shm->flags & POLLHUP))
            shm_flags |= POLLERR;
        same = kernel->result >= 0 && shm->result >= 0 &&
               (kernel->flags & strict) == (shm_flags & strict) &&
               (!(kernel->flags & POLLIN) || (shm->flags & POLLIN)) &&
               (kernel->queued == shm->queued || seqpacket_reset);
    } else if (kernel->peek && shm->short_peek_ok && shm->result != kernel->result) {
        /* A shorter peek, showing the same first bytes. */
        same = shm->result > 0 && shm->result < kernel->result && shm->data < kernel->data &&
               digest(kernel_peeks[step], shm->data) == shm->digest;
    } else {
        /* Linux's SOCK_STREAM peek also hands out the descriptors of the message after the
         * bytes it shows (it steps onto that message, copying nothing; MSG_CTRUNC when there
         * is no room for them); shmsock gives descriptors only with their own bytes (README,
         * Behaviour and limits). */
        bool stream_peek = kernel->peek && s->type == SOCK_STREAM;
        int ignored = stream_peek ? MSG_CTRUNC : 0;
        /* With SO_PASSCRED, Linux's STREAM read at end of stream hands out credentials of
         * nobody (pid 0; MSG_CTRUNC without room for them); shmsock's hands out none (README,
         * Behaviour and limits). */
        bool eof_creds = s->passcred && s->type == SOCK_STREAM && kernel->result == 0;
        if (eof_creds)
            ignored |= MSG_CTRUNC;
        same = kernel->result == shm->result && kernel->error == shm->error &&
               (kernel->flags & ~ignored) == (shm->flags & ~ignored) && kernel->data == shm->data &&
               kernel->digest == shm->digest && (stream_peek || kernel->fds == shm->fds) &&
               (stream_peek || eof_creds || kernel->controllen == shm->controllen) &&
               (eof_creds || kernel->creds == shm->creds);
    }
    if (!same) {
        char k[200], m[200];
        fail_msg("%s %s seed %llu step %d (%s): kernel %s, shm %s",
                 s->type == SOCK_STREAM ? "SOCK_STREAM" : "SOCK_SEQPACKET",
                 s->coalesce ? "coalesced" : "event mode", (unsigned long long)s->seed, step,
                 s->what[step], describe(k, sizeof(k), kernel), describe(m, sizeof(m), shm));
    }
}

/* Run one sequence on one API: record (kernel) or compare (shm). */
static void run_sequence(struct sequence *s, const struct sock_api *api)
{
    bool record = !api->is_shm;
    struct run r = {.api = api, .type = s->type};
    assert_int_equal(api->socketpair(AF_UNIX, s->type, 0, r.fd), 0);
    for (int i = 0; i < 2 && s->passcred; i++)
        assert_int_equal(
            api->setsockopt(r.fd[i], SOL_SOCKET, SO_PASSCRED, &s->passcred, sizeof(s->passcred)),
            0);
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    r.passed = pipefd[0];
    if (api->is_shm && !s->coalesce)
        for (int i = 0; i < 2; i++)
            assert_int_equal(shm_setsockopt(r.fd[i], SOL_SHMSOCK, SHM_COALESCE, &s->coalesce,
                                            sizeof(s->coalesce)),
                             0);
    /* Under libshmsock-preload.so (differential_preload_test.sh sets the variable) the kernel
     * run's sockets are the preload's shm sockets: they get the shm run's mode through the C
     * library's setsockopt, so that the runs compare the interposed calls with the shm_* calls.
     * A coalesced reference for an event-mode run (or the reverse) shows its own documented
     * shorter STREAM peeks, which compare() accepts on the shm side only. */
    if (!api->is_shm && !s->coalesce && getenv("SHMSOCK_DIFFERENTIAL_PRELOAD") != NULL)
        for (int i = 0; i < 2; i++)
            assert_int_equal(api->setsockopt(r.fd[i], SOL_SHMSOCK, SHM_COALESCE, &s->coalesce,
                                             sizeof(s->coalesce)),
                             0);
    uint64_t state = s->seed * 0x9e3779b97f4a7c15ull + 1;
    int shutdown_at = STEPS - 30 + (int)pick(&state, 20);
    int step = 0;
    for (; step < STEPS; step++) {
        int side = (int)pick(&state, 2);
        size_t choice = pick(&state, 100);
        struct outcome o;
        bool is_poll = false;
        char *what = s->what[step];
        if (step == shutdown_at) {
            int how = (int)pick(&state, 3); /* SHUT_RD, SHUT_WR, SHUT_RDWR */
            o.result = api->shutdown(r.fd[side], how);
            o.error = o.result < 0 ? errno : 0;
            o.flags = 0, o.data = 0, o.digest = 0;
            snprintf(what, 64, "shutdown(side %d, %d)", side, how);
        } else if (step > shutdown_at && step == shutdown_at + 10) {
            /* Close one side; the other goes on with what is left. */
            r.closed[side] = true;
            o.result = api->close(r.fd[side]);
            o.error = o.result < 0 ? errno : 0;
            o.flags = 0, o.data = 0, o.digest = 0;
            snprintf(what, 64, "close(side %d)", side);
        } else if (r.closed[side]) {
            side = 1 - side;
            o = do_recv(&r, side, recv_sizes[pick(&state, 7)], 0, false, sizeof(union control));
            snprintf(what, 64, "recv after close (side %d)", side);
        } else if (choice < 45) {
            size_t size = send_sizes[pick(&state, 8)];
            bool vectored = pick(&state, 4) == 0;
            if (r.bytes[side] + (long)size > MAX_IN_FLIGHT_BYTES ||
                r.blocks[side] + blocks_of(size) > MAX_IN_FLIGHT_BLOCKS ||
                r.count[side] == MAX_IN_FLIGHT_BLOCKS)
                size = 0; /* keep below both sides' capacity */
            if (size == 0 && s->type == SOCK_SEQPACKET) {
                o = do_poll(&r, side);
                is_poll = true;
                snprintf(what, 64, "poll(side %d)", side);
            } else {
                bool with_fd = size > 0 && pick(&state, 16) == 0;
                o = do_send(&r, side, size, vectored, with_fd);
                snprintf(what, 64, "send%s(side %d, %zu)",
                         with_fd    ? "+fd"
                         : vectored ? "msg"
                                    : "",
                         side, size);
            }
        } else if (choice < 90) {
            size_t size = recv_sizes[pick(&state, 7)];
            static const int extras[] = {0, 0, 0, MSG_PEEK, MSG_WAITALL, MSG_TRUNC};
            int extra = extras[pick(&state, 6)];
            bool vectored = pick(&state, 4) == 0;
            static const size_t rooms[] = {0, CMSG_SPACE(sizeof(struct ucred)),
                                           CMSG_SPACE(sizeof(int)), sizeof(union control)};
            size_t room = rooms[pick(&state, 4)];
            o = do_recv(&r, side, size, extra, vectored, room);
            o.short_peek_ok =
                s->type == SOCK_STREAM && (!s->coalesce || s->passcred || r.passed_fd[1 - side]);
            snprintf(what, 64, "recv%s(side %d, %zu, %#x, room %zu)", vectored ? "msg" : "", side,
                     size, (unsigned)extra, room);
        } else {
            o = do_poll(&r, side);
            is_poll = true;
            snprintf(what, 64, "poll(side %d)", side);
        }
        if (getenv("SHMSOCK_DIFFERENTIAL_TRACE")) {
            char line[200];
            print_message("%-6s step %3d %-32s %s\n", api->name, step, what,
                          describe(line, sizeof(line), &o));
        }
        if (record && o.peek)
            memcpy(kernel_peeks[step], received, o.data);
        if (record)
            s->expected[step] = o;
        else
            compare(s, step, &s->expected[step], &o, is_poll);
    }
    for (int i = 0; i < 2; i++)
        if (!r.closed[i])
            api->close(r.fd[i]);
    close(pipefd[0]);
    close(pipefd[1]);
}

static int seeds(void)
{
    const char *env = getenv("SHMSOCK_DIFFERENTIAL_SEEDS");
    int n = env ? atoi(env) : 400;
    return n > 0 ? n : 400;
}

static void run_case(int type, int coalesce, int passcred)
{
    static struct sequence s;
    test_fill_pattern(payload, sizeof(payload), 7);
    test_watchdog(120, "differential sequences");
    /* SHMSOCK_DIFFERENTIAL_SEED=N runs that sequence alone (with _TRACE set: every step). */
    const char *only = getenv("SHMSOCK_DIFFERENTIAL_SEED");
    for (int seed = only ? atoi(only) : 1; seed <= (only ? atoi(only) : seeds()); seed++) {
        memset(&s, 0, sizeof(s));
        s.seed = (uint64_t)seed;
        s.type = type;
        s.coalesce = coalesce;
        s.passcred = passcred;
        run_sequence(&s, test_apis[0]);
        run_sequence(&s, test_apis[1]);
    }
    test_watchdog(0, NULL);
}

/* One case: socket type, coalesced or event mode, SO_PASSCRED on both sides or not. */
struct differential_case {
    const char *name;
    int type;
    int coalesce;
    int passcred;
};

static struct differential_case cases[] = {
    {"stream_coalesced", SOCK_STREAM, 1, 0},
    {"stream_event_mode", SOCK_STREAM, 0, 0},
    {"seqpacket_coalesced", SOCK_SEQPACKET, 1, 0},
    {"seqpacket_event_mode", SOCK_SEQPACKET, 0, 0},
    /* SO_PASSCRED: each direction moves to event mode (credentials travel with kernel
     * messages only), with credentials in every read. */
    {"stream_passcred", SOCK_STREAM, 1, 1},
    {"seqpacket_passcred", SOCK_SEQPACKET, 1, 1},
};

#define CASES (sizeof(cases) / sizeof(cases[0]))

static void test_case(void **state)
{
    const struct differential_case *c = *state;
    run_case(c->type, c->coalesce, c->passcred);
}

int main(void)
{
    struct CMUnitTest tests[CASES];
    for (size_t i = 0; i < CASES; i++)
        tests[i] = (struct CMUnitTest){
            .name = cases[i].name, .test_func = test_case, .initial_state = &cases[i]};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
