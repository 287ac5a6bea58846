/*
 * dying_peer_test.c - robustness: the peer is killed with SIGKILL at a random moment of a
 * transfer over a negotiated (SHM_STATUS_SHM) connection.
 *
 * For each trial a child process holds one end and streams into it (the survivor receives) or
 * drains it (the survivor sends); a thread of the survivor kills the child after a random
 * delay of 0-20 ms while the survivor keeps transferring. Claims checked per trial:
 *   - the survivor gets EOF (recv 0), ECONNRESET or EPIPE, within one second of the kill;
 *     it never hangs (a watchdog turns a hang into a failure) and never gets SIGBUS or
 *     SIGPIPE (every send passes MSG_NOSIGNAL, so a SIGPIPE is the library's);
 *   - everything it received before the end is intact (STREAM: one continuous pattern;
 *     SEQPACKET: numbered messages of known length and content, none lost or reordered);
 *   - after shm_close, the survivor process holds as many descriptors (/proc/self/fd) and as
 *     many "memfd:shmsock" mappings (/proc/self/maps) as before the trial.
 * Variants: STREAM and SEQPACKET x survivor sends / survivor receives x blocking calls /
 * non-blocking calls driven by epoll (readability) and shm_poll (POLLOUT), with
 * DYING_TRIALS trials each (8 x 64 = 512 trials). The seed is printed; set
 * SHMSOCK_DYING_SEED to repeat a run.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "shmsock.h"
#include "test_support.h"

#define DYING_TRIALS 64
#define MAX_KILL_DELAY_US 20000
#define LATENCY_LIMIT_NS 1000000000LL
#define GIVE_UP_NS 3000000000LL /* stop waiting (and fail) this long after the kill */
#define BUF_SIZE (64 * 1024)
#define SEQ_MAX_MSG 16384

/* ---- resources of this process ---- */

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static int count_shm_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    assert_non_null(f);
    char line[512];
    int n = 0;
    while (fgets(line, sizeof(line), f) != NULL)
        if (strstr(line, "memfd:shmsock") != NULL)
            n++;
    fclose(f);
    return n;
}

/* ---- time, randomness ---- */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

/* ---- the data: STREAM byte i, SEQPACKET message k ---- */

static uint8_t stream_byte(uint64_t i)
{
    return (uint8_t)((i * 2654435761u) >> 11 ^ i);
}

static size_t seq_len(uint64_t k)
{
    uint64_t x = k * 0x9E3779B97F4A7C15ull;
    x ^= x >> 29;
    return 8 + (size_t)(x % (SEQ_MAX_MSG - 8));
}

static void seq_fill(uint8_t *buf, uint64_t k)
{
    size_t len = seq_len(k);
    memcpy(buf, &k, 8);
    for (size_t i = 8; i < len; i++)
        buf[i] = (uint8_t)(k * 31 + i * 7);
}

static bool seq_check(const uint8_t *buf, size_t got, uint64_t k)
{
    uint64_t num;
    if (got != seq_len(k))
        return false;
    memcpy(&num, buf, 8);
    if (num != k)
        return false;
    for (size_t i = 8; i < got; i++)
        if (buf[i] != (uint8_t)(k * 31 + i * 7))
            return false;
    return true;
}

/* ---- signals ---- */

static sigjmp_buf fault_jmp;
static volatile sig_atomic_t fault_armed;
static volatile sig_atomic_t fault_signal;

static void on_fault(int sig)
{
    fault_signal = sig;
    if (fault_armed)
        siglongjmp(fault_jmp, 1);
    _exit(99);
}

static void install_fault_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_fault;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGBUS, &sa, NULL), 0);
    assert_int_equal(sigaction(SIGPIPE, &sa, NULL), 0);
}

/* ---- the child (the peer that dies) ---- */

/* Streams (or drains) until killed. Exits with a nonzero code on any error. */
static void child_main(int fd, int type, bool child_sends)
{
    signal(SIGPIPE, SIG_DFL);
    signal(SIGBUS, SIG_DFL);
    alarm(20); /* never outlive a broken parent */
    static uint8_t buf[BUF_SIZE];
    if (child_sends) {
        if (type == SOCK_STREAM) {
            uint64_t off = 0;
            for (;;) {
                size_t len = 1 + (size_t)(rng_next() % BUF_SIZE);
                for (size_t i = 0; i < len; i++)
                    buf[i] = stream_byte(off + i);
                size_t done = 0;
                while (done < len) {
                    ssize_t n = shm_send(fd, buf + done, len - done, MSG_NOSIGNAL);
                    if (n < 0 && errno == EINTR)
                        continue;
                    if (n <= 0)
                        _exit(3);
                    done += (size_t)n;
                }
                off += len;
            }
        } else {
            for (uint64_t k = 0;; k++) {
                seq_fill(buf, k);
                ssize_t n = shm_send(fd, buf, seq_len(k), MSG_NOSIGNAL);
                if (n != (ssize_t)seq_len(k))
                    _exit(4);
            }
        }
    } else {
        for (;;) {
            ssize_t n = shm_recv(fd, buf, sizeof(buf), 0);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                _exit(5);
        }
    }
}

/* ---- the killer thread ---- */

struct killer {
    pid_t pid;
    long delay_us;
    int64_t kill_ns;
};

static void *killer_main(void *p)
{
    struct killer *k = p;
    if (k->delay_us > 0) {
        struct timespec ts = {0, k->delay_us * 1000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
    }
    __atomic_store_n(&k->kill_ns, now_ns(), __ATOMIC_RELEASE);
    kill(k->pid, SIGKILL);
    return NULL;
}

/* ---- the survivor ---- */

struct trial {
    int type;
    bool survivor_sends;
    bool use_epoll;
    int index;
};

struct outcome {
    int end_errno;   /* 0 for EOF */
    int64_t end_ns;  /* when the terminal result came */
    uint64_t units;  /* bytes (STREAM) or messages (SEQPACKET) transferred by the survivor */
    const char *bad; /* a failure description, or NULL */
};

static bool terminal_errno(int e)
{
    return e == EPIPE || e == ECONNRESET;
}

/* One receive step's result: 1 go on, 0 terminal, -1 would block. */
static int survivor_recv_step(int fd, int type, int flags, uint8_t *buf, struct outcome *o)
{
    ssize_t n = shm_recv(fd, buf, BUF_SIZE, flags);
    if (n < 0) {
        if (errno == EINTR)
            return 1;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return -1;
        o->end_errno = errno;
        o->end_ns = now_ns();
        if (!terminal_errno(errno))
            o->bad = "recv failed with an errno other than ECONNRESET/EPIPE";
        return 0;
    }
    if (n == 0) {
        o->end_errno = 0;
        o->end_ns = now_ns();
        return 0;
    }
    if (type == SOCK_STREAM) {
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] != stream_byte(o->units + (uint64_t)i)) {
                o->bad = "STREAM data corrupted";
                return 0;
            }
        o->units += (uint64_t)n;
    } else {
        if (!seq_check(buf, (size_t)n, o->units)) {
            o->bad = "SEQPACKET message lost, reordered or corrupted";
            return 0;
        }
        o->units++;
    }
    return 1;
}

static int survivor_send_step(int fd, int type, int flags, uint8_t *buf, struct outcome *o)
{
    size_t len = type == SOCK_STREAM ? 1 + (size_t)(rng_next() % BUF_SIZE)
                                     : 1 + (size_t)(rng_next() % SEQ_MAX_MSG);
    ssize_t n = shm_send(fd, buf, len, flags | MSG_NOSIGNAL);
    if (n < 0) {
        if (errno == EINTR)
            return 1;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return -1;
        o->end_errno = errno;
        o->end_ns = now_ns();
        if (!terminal_errno(errno))
            o->bad = "send failed with an errno other than EPIPE/ECONNRESET";
        return 0;
    }
    o->units += (uint64_t)n;
    return 1;
}

static void run_survivor(int fd, const struct trial *t, struct killer *k, struct outcome *o)
{
    static uint8_t buf[BUF_SIZE];
    memset(buf, 0x5a, sizeof(buf));
    int ep = -1;
    if (t->use_epoll) {
        int fl = shm_fcntl(fd, F_GETFL);
        assert_true(fl >= 0);
        assert_int_equal(shm_fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
        ep = epoll_create1(EPOLL_CLOEXEC);
        assert_true(ep >= 0);
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = fd};
        assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), 0);
    }
    for (;;) {
        int64_t kill_ns = __atomic_load_n(&k->kill_ns, __ATOMIC_ACQUIRE);
        if (kill_ns != 0 && now_ns() - kill_ns > GIVE_UP_NS) {
            o->bad = "no EOF/ECONNRESET/EPIPE within 3 s of the kill (non-blocking loop)";
            o->end_ns = now_ns();
            break;
        }
        int r;
        if (!t->use_epoll) {
            r = t->survivor_sends ? survivor_send_step(fd, t->type, 0, buf, o)
                                  : survivor_recv_step(fd, t->type, 0, buf, o);
            if (r < 0) {
                o->bad = "blocking call returned EAGAIN";
                o->end_ns = now_ns();
                break;
            }
        } else if (t->survivor_sends) {
            r = survivor_send_step(fd, t->type, MSG_DONTWAIT, buf, o);
            if (r < 0) {
                /* No room: the raw fd would report POLLOUT at once; shm_poll knows blocks. */
                struct epoll_event ev;
                int e = epoll_wait(ep, &ev, 1, 0);
                assert_true(e >= 0 || errno == EINTR);
                struct pollfd p = {.fd = fd, .events = POLLOUT};
                int pr = shm_poll(&p, 1, 100);
                assert_true(pr >= 0 || errno == EINTR);
                r = 1;
            }
        } else {
            struct epoll_event ev;
            int e = epoll_wait(ep, &ev, 1, 100);
            assert_true(e >= 0 || errno == EINTR);
            r = 1;
            if (e > 0) {
                /* Drain to EAGAIN (edge-friendly), then wait again. */
                while ((r = survivor_recv_step(fd, t->type, MSG_DONTWAIT, buf, o)) > 0) {
                }
                if (r < 0)
                    r = 1;
            }
        }
        if (r == 0)
            break;
    }
    if (ep >= 0)
        close(ep);
}

struct stats {
    int trials;
    int eof, reset, pipe_;
    int64_t max_latency_ns;
    int64_t sum_latency_ns;
};

static struct stats g_stats;

static void run_trial(const struct trial *t)
{
    int fds_before = count_fds();
    int maps_before = count_shm_maps();

    int survivor, peer;
    test_connect_pair(&test_shm_api, t->type, &survivor, &peer);
    test_handshake(&test_shm_api, survivor, peer);
    assert_int_equal(test_shm_status(survivor), SHM_STATUS_SHM);
    assert_int_equal(test_shm_status(peer), SHM_STATUS_SHM);
    assert_true(count_shm_maps() > maps_before);

    uint64_t child_seed = rng_next();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        rng_state = child_seed | 1;
        shm_close(survivor);
        child_main(peer, t->type, !t->survivor_sends);
        _exit(6);
    }
    assert_int_equal(shm_close(peer), 0);

    struct killer k = {.pid = pid, .delay_us = (long)(rng_next() % (MAX_KILL_DELAY_US + 1))};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, killer_main, &k), 0);

    struct outcome o = {0};
    char what[160];
    snprintf(what, sizeof(what), "dying peer trial %d (%s, survivor %s, %s, kill after %ld us)",
             t->index, t->type == SOCK_STREAM ? "STREAM" : "SEQPACKET",
             t->survivor_sends ? "sends" : "receives", t->use_epoll ? "epoll" : "blocking",
             k.delay_us);
    test_watchdog(10, what);
    fault_signal = 0;
    fault_armed = 1;
    if (sigsetjmp(fault_jmp, 1) == 0) {
        run_survivor(survivor, t, &k, &o);
    }
    fault_armed = 0;
    test_watchdog(0, NULL);
    assert_int_equal(pthread_join(th, NULL), 0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);

    if (fault_signal != 0)
        fail_msg("%s: survivor got signal %d (%s)", what, (int)fault_signal,
                 strsignal(fault_signal));
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
        fail_msg("%s: the child ended by itself before the kill (status 0x%x)", what, status);
    if (o.bad != NULL)
        fail_msg("%s: %s (errno %d %s, after %llu units)", what, o.bad, o.end_errno,
                 strerror(o.end_errno), (unsigned long long)o.units);
    int64_t latency = o.end_ns - k.kill_ns;
    if (latency < 0 || latency > LATENCY_LIMIT_NS)
        fail_msg("%s: end of connection %.1f ms after the kill (limit 1000 ms)", what,
                 (double)latency / 1e6);

    g_stats.trials++;
    if (o.end_errno == 0)
        g_stats.eof++;
    else if (o.end_errno == ECONNRESET)
        g_stats.reset++;
    else
        g_stats.pipe_++;
    if (latency > g_stats.max_latency_ns)
        g_stats.max_latency_ns = latency;
    g_stats.sum_latency_ns += latency;

    assert_int_equal(shm_close(survivor), 0);
    int fds_after = count_fds();
    int maps_after = count_shm_maps();
    if (fds_after != fds_before || maps_after != maps_before)
        fail_msg("%s: leak after shm_close: fds %d -> %d, memfd:shmsock mappings %d -> %d", what,
                 fds_before, fds_after, maps_before, maps_after);
}

static void run_variant(int type, bool survivor_sends, bool use_epoll)
{
    memset(&g_stats, 0, sizeof(g_stats));
    int64_t t0 = now_ns();
    for (int i = 0; i < DYING_TRIALS; i++) {
        struct trial t = {
            .type = type, .survivor_sends = survivor_sends, .use_epoll = use_epoll, .index = i};
        run_trial(&t);
    }
    print_message("    %-9s survivor %-8s %-8s: %d trials in %.2f s; EOF %d, ECONNRESET %d, "
                  "EPIPE %d; kill-to-end latency mean %.2f ms, max %.2f ms\n",
                  type == SOCK_STREAM ? "STREAM" : "SEQPACKET",
                  survivor_sends ? "sends" : "receives", use_epoll ? "epoll" : "blocking",
                  g_stats.trials, (double)(now_ns() - t0) / 1e9, g_stats.eof, g_stats.reset,
                  g_stats.pipe_, (double)g_stats.sum_latency_ns / g_stats.trials / 1e6,
                  (double)g_stats.max_latency_ns / 1e6);
}

static void test_stream_survivor_receives_blocking(void **state)
{
    (void)state;
    run_variant(SOCK_STREAM, false, false);
}
static void test_stream_survivor_receives_epoll(void **state)
{
    (void)state;
    run_variant(SOCK_STREAM, false, true);
}
static void test_stream_survivor_sends_blocking(void **state)
{
    (void)state;
    run_variant(SOCK_STREAM, true, false);
}
static void test_stream_survivor_sends_epoll(void **state)
{
    (void)state;
    run_variant(SOCK_STREAM, true, true);
}
static void test_seqpacket_survivor_receives_blocking(void **state)
{
    (void)state;
    run_variant(SOCK_SEQPACKET, false, false);
}
static void test_seqpacket_survivor_receives_epoll(void **state)
{
    (void)state;
    run_variant(SOCK_SEQPACKET, false, true);
}
static void test_seqpacket_survivor_sends_blocking(void **state)
{
    (void)state;
    run_variant(SOCK_SEQPACKET, true, false);
}
static void test_seqpacket_survivor_sends_epoll(void **state)
{
    (void)state;
    run_variant(SOCK_SEQPACKET, true, true);
}

int main(void)
{
    const char *seed_env = getenv("SHMSOCK_DYING_SEED");
    uint64_t seed = seed_env != NULL ? strtoull(seed_env, NULL, 0)
                                     : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
    rng_state = seed | 1;
    printf("dying_peer_test: seed %llu (SHMSOCK_DYING_SEED to repeat)\n", (unsigned long long)seed);
    fflush(stdout);
    install_fault_handlers();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_survivor_receives_blocking),
        cmocka_unit_test(test_stream_survivor_receives_epoll),
        cmocka_unit_test(test_stream_survivor_sends_blocking),
        cmocka_unit_test(test_stream_survivor_sends_epoll),
        cmocka_unit_test(test_seqpacket_survivor_receives_blocking),
        cmocka_unit_test(test_seqpacket_survivor_receives_epoll),
        cmocka_unit_test(test_seqpacket_survivor_sends_blocking),
        cmocka_unit_test(test_seqpacket_survivor_sends_epoll),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
