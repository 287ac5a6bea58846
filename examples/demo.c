/*
 * demo.c - shmsock in a few seconds: `bazel run //examples:demo` (or tools/demo.sh).
 *
 * What it does, all on abstract socket names (no files are left behind):
 *   1. forks a server process listening on a SOCK_STREAM and a SOCK_SEQPACKET shm socket; it
 *      hands every connection to a forked handler that echoes it (fork-and-hand-off);
 *   2. forks shm clients of both types at once; each sends messages of 64..65536 bytes,
 *      checks every echo byte for byte and asks SHM_STATUS what carried the payload;
 *   3. forks a client written with the kernel's own calls (socket/connect/send/recv/close)
 *      against the same shm server: it stays on the kernel socket and still works;
 *   4. times round trips of 64 KiB over a kernel socketpair and a shm socketpair.
 * The exit status is 0 only if every check passed. Every process has an alarm, so the demo
 * never hangs.
 *
 * The client code below is written once and run with either set of calls (struct calls):
 * the shm_* calls have exactly the kernel's signatures.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shmsock.h"

#define STREAM_CLIENTS 3
#define SEQPACKET_CLIENTS 2
#define MESSAGES 1000
#define PLAIN_MESSAGES 100
#define MIN_SIZE 64
#define MAX_SIZE 65536
#define TIMING_SIZE (64 * 1024)
#define TIMING_ROUNDS 1000
#define TIMING_RUNS 3
#define TIMEOUT_SECONDS 60 /* for every process of the demo */
#define IO_TIMEOUT_SECONDS 10
#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

/* ---- the two sets of calls ---- */

static int kernel_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    return connect(fd, addr, len); /* glibc declares connect with a transparent union */
}

static int kernel_setsockopt(int fd, int level, int name, const void *value, socklen_t len)
{
    return setsockopt(fd, level, name, value, len);
}

struct calls {
    const char *what;
    int (*socket)(int, int, int);
    int (*socketpair)(int, int, int, int[2]);
    int (*connect)(int, const struct sockaddr *, socklen_t);
    int (*setsockopt)(int, int, int, const void *, socklen_t);
    ssize_t (*send)(int, const void *, size_t, int);
    ssize_t (*recv)(int, void *, size_t, int);
    int (*close)(int);
};

static const struct calls shm_calls = {
    "shm", shm_socket, shm_socketpair, shm_connect, shm_setsockopt, shm_send, shm_recv, shm_close,
};
static const struct calls kernel_calls = {
    "kernel", socket, socketpair, kernel_connect, kernel_setsockopt, send, recv, close,
};

/* ---- small helpers ---- */

/* What a child process tells the parent (one write, smaller than PIPE_BUF: atomic). */
struct report {
    int ok;
    int type;   /* SOCK_STREAM or SOCK_SEQPACKET */
    int status; /* SHM_STATUS of the connection at the end, -1 if not a shm socket */
    unsigned long long messages, bytes;
    char error[256];
};

static pid_t children[16];
static int child_count;

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "demo: FAILED: timed out after " STRINGIFY(TIMEOUT_SECONDS) " s\n";
    ssize_t ignored = write(STDERR_FILENO, msg, sizeof(msg) - 1);
    (void)ignored;
    for (int i = 0; i < child_count; i++)
        kill(children[i], SIGKILL);
    _exit(1);
}

static pid_t start_child(void)
{
    fflush(NULL); /* nothing buffered twice */
    pid_t pid = fork();
    if (pid == 0)
        alarm(TIMEOUT_SECONDS); /* alarms are not inherited */
    else if (pid > 0 && child_count < (int)(sizeof(children) / sizeof(children[0])))
        children[child_count++] = pid;
    return pid;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static socklen_t abstract_address(struct sockaddr_un *addr, const char *suffix)
{
    memset(addr, 0, sizeof(*addr));
    addr->sun_family = AF_UNIX;
    /* sun_path[0] == '\0': an abstract name, gone with the last socket, no file. */
    int n = snprintf(addr->sun_path + 1, sizeof(addr->sun_path) - 1, "shmsock-demo-%ld-%s",
                     (long)getpid(), suffix);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

static const char *type_name(int type)
{
    return type == SOCK_STREAM ? "SOCK_STREAM" : "SOCK_SEQPACKET";
}

static const char *status_name(int status)
{
    switch (status) {
    case SHM_STATUS_PLAIN:
        return "SHM_STATUS_PLAIN";
    case SHM_STATUS_OFFERED:
        return "SHM_STATUS_OFFERED";
    case SHM_STATUS_SHM:
        return "SHM_STATUS_SHM";
    case SHM_STATUS_PASSTHROUGH:
        return "SHM_STATUS_PASSTHROUGH";
    default:
        return "not a shm socket";
    }
}

static void fill_message(unsigned char *buf, size_t len, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1u;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[i] = (unsigned char)x;
    }
}

/* Message sizes: the first MIN_SIZE, the second MAX_SIZE, the rest spread in between. */
static size_t message_size(uint32_t index)
{
    if (index == 0)
        return MIN_SIZE;
    if (index == 1)
        return MAX_SIZE;
    uint32_t x = index * 2246822519u;
    x ^= x >> 15;
    return MIN_SIZE + x % (MAX_SIZE - MIN_SIZE + 1);
}

static int send_all(const struct calls *c, int fd, const unsigned char *buf, size_t len)
{
    size_t sent = 0;
    while (sent < len) {
        ssize_t n = c->send(fd, buf + sent, len - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        sent += (size_t)n;
    }
    return 0;
}

/* Read until len bytes came (STREAM) or one message came (SEQPACKET); bytes read or -1. */
static ssize_t recv_echo(const struct calls *c, int fd, unsigned char *buf, size_t len,
                         size_t capacity)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = c->recv(fd, buf + got, capacity - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

static void set_timeouts(const struct calls *c, int fd)
{
    struct timeval tv = {.tv_sec = IO_TIMEOUT_SECONDS};
    c->setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    c->setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* ---- the server ---- */

/* A handler: echo one connection until the client closes, then report. */
static void handle(int fd, int type, int report_fd)
{
    struct report r = {.type = type, .status = -1};
    static unsigned char buffer[256 * 1024];
    set_timeouts(&shm_calls, fd);
    for (;;) {
        ssize_t n = shm_recv(fd, buffer, sizeof(buffer), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(r.error, sizeof(r.error), "server: recv: %s", strerror(errno));
            break;
        }
        if (n == 0) {
            r.ok = 1;
            break;
        }
        r.messages++;
        r.bytes += (unsigned long long)n;
        if (send_all(&shm_calls, fd, buffer, (size_t)n) < 0) {
            snprintf(r.error, sizeof(r.error), "server: send: %s", strerror(errno));
            break;
        }
    }
    r.status = shm_status(fd);
    shm_close(fd);
    ssize_t ignored = write(report_fd, &r, sizeof(r));
    (void)ignored;
}

/* The server process: accept on both listeners, fork a handler per connection. */
static void serve(int stream_fd, int seqpacket_fd, int report_fd)
{
    signal(SIGCHLD, SIG_IGN); /* handlers are reaped by the kernel */
    struct pollfd fds[2] = {{.fd = stream_fd, .events = POLLIN},
                            {.fd = seqpacket_fd, .events = POLLIN}};
    for (;;) {
        if (shm_poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            _exit(1);
        }
        for (int i = 0; i < 2; i++) {
            if (!(fds[i].revents & POLLIN))
                continue;
            int fd = shm_accept(fds[i].fd, NULL, NULL);
            if (fd < 0)
                continue;
            pid_t pid = fork();
            if (pid == 0) {
                alarm(TIMEOUT_SECONDS);
                shm_close(stream_fd);
                shm_close(seqpacket_fd);
                handle(fd, i == 0 ? SOCK_STREAM : SOCK_SEQPACKET, report_fd);
                _exit(0);
            }
            shm_close(fd); /* the handler has its own copy: the connection lives on */
        }
    }
}

/* ---- the clients ---- */

static void run_client(const struct calls *c, int type, const struct sockaddr_un *addr,
                       socklen_t addr_len, uint32_t count, struct report *r)
{
    *r = (struct report){.type = type, .status = -1};
    unsigned char *out = malloc(MAX_SIZE), *in = malloc(MAX_SIZE + 1);
    int fd = c->socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
    if (out == NULL || in == NULL || fd < 0) {
        snprintf(r->error, sizeof(r->error), "setup: %s", strerror(errno));
        return;
    }
    set_timeouts(c, fd);
    if (c->connect(fd, (const struct sockaddr *)addr, addr_len) < 0) {
        snprintf(r->error, sizeof(r->error), "connect: %s", strerror(errno));
        return;
    }
    for (uint32_t m = 0; m < count; m++) {
        size_t len = message_size(m);
        fill_message(out, len, m ^ (uint32_t)getpid());
        if (send_all(c, fd, out, len) < 0) {
            snprintf(r->error, sizeof(r->error), "message %u: send: %s", m, strerror(errno));
            return;
        }
        ssize_t got = recv_echo(c, fd, in, len, MAX_SIZE + 1);
        if (got < 0) {
            snprintf(r->error, sizeof(r->error), "message %u: recv: %s", m, strerror(errno));
            return;
        }
        if ((size_t)got != len || memcmp(in, out, len) != 0) {
            snprintf(r->error, sizeof(r->error),
                     "message %u: sent %zu bytes, echo differs (%zd bytes)", m, len, got);
            return;
        }
        r->messages++;
        r->bytes += len;
    }
    r->status = c == &shm_calls ? shm_status(fd) : -1;
    r->ok = 1;
    c->close(fd);
    free(out);
    free(in);
}

/* Fork a client; it writes its report into the pipe pipe_fd. */
static pid_t start_client(const struct calls *c, int type, const struct sockaddr_un *addr,
                          socklen_t addr_len, uint32_t count, int pipe_fd)
{
    pid_t pid = start_child();
    if (pid == 0) {
        struct report r;
        run_client(c, type, addr, addr_len, count, &r);
        ssize_t ignored = write(pipe_fd, &r, sizeof(r));
        (void)ignored;
        _exit(0);
    }
    return pid;
}

/* Read one report (blocking; the alarm bounds it). Returns 0, or -1 if none came. */
static int read_report(int fd, struct report *r)
{
    ssize_t n;
    do
        n = read(fd, r, sizeof(*r));
    while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof(*r)) {
        memset(r, 0, sizeof(*r));
        snprintf(r->error, sizeof(r->error), "no report (the process died?)");
        return -1;
    }
    return 0;
}

/* ---- timing ---- */

/*
 * Seconds for TIMING_ROUNDS round trips of TIMING_SIZE bytes over a socketpair made with the
 * given calls (the echoing side is a forked process), or -1 on failure. *status gets the
 * SHM_STATUS of the pair at the end.
 */
static double time_round_trips(const struct calls *c, int *status)
{
    int sv[2];
    if (c->socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        return -1;
    pid_t pid = start_child();
    if (pid == 0) { /* echo side */
        static unsigned char buffer[TIMING_SIZE];
        c->close(sv[0]);
        for (;;) {
            ssize_t n = recv_echo(c, sv[1], buffer, TIMING_SIZE, TIMING_SIZE);
            if (n <= 0 || send_all(c, sv[1], buffer, (size_t)n) < 0)
                _exit(0);
        }
    }
    c->close(sv[1]);
    set_timeouts(c, sv[0]);
    static unsigned char out[TIMING_SIZE], in[TIMING_SIZE];
    fill_message(out, TIMING_SIZE, 7);
    double start = 0, elapsed = -1;
    for (int round = -20; round < TIMING_ROUNDS; round++) { /* 20 rounds to warm up */
        if (round == 0)
            start = now_seconds();
        if (send_all(c, sv[0], out, TIMING_SIZE) < 0 ||
            recv_echo(c, sv[0], in, TIMING_SIZE, TIMING_SIZE) != TIMING_SIZE ||
            memcmp(in, out, TIMING_SIZE) != 0)
            goto done;
    }
    elapsed = now_seconds() - start;
done:
    *status = c == &shm_calls ? shm_status(sv[0]) : -1;
    c->close(sv[0]);
    waitpid(pid, NULL, 0);
    return elapsed;
}

/* ---- main ---- */

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGALRM, on_alarm);
    alarm(TIMEOUT_SECONDS);
    int failures = 0;

    printf("shmsock %d.%d.%d demo: sockets whose payload travels through shared memory\n",
           SHMSOCK_VERSION_MAJOR, SHMSOCK_VERSION_MINOR, SHMSOCK_VERSION_PATCH);

    /* 1. The server: listeners made here (so clients can connect at once), served there. */
    struct sockaddr_un stream_addr, seqpacket_addr;
    socklen_t stream_len = abstract_address(&stream_addr, "stream");
    socklen_t seqpacket_len = abstract_address(&seqpacket_addr, "seqpacket");
    int stream_fd = shm_socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int seqpacket_fd = shm_socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    int server_reports[2], client_reports[2];
    if (stream_fd < 0 || seqpacket_fd < 0 ||
        shm_bind(stream_fd, (struct sockaddr *)&stream_addr, stream_len) < 0 ||
        shm_bind(seqpacket_fd, (struct sockaddr *)&seqpacket_addr, seqpacket_len) < 0 ||
        shm_listen(stream_fd, 16) < 0 || shm_listen(seqpacket_fd, 16) < 0 ||
        pipe2(server_reports, O_CLOEXEC) < 0 || pipe2(client_reports, O_CLOEXEC) < 0) {
        fprintf(stderr, "demo: FAILED: setup: %s\n", strerror(errno));
        return 1;
    }
    pid_t server = start_child();
    if (server < 0) {
        perror("demo: FAILED: fork");
        return 1;
    }
    if (server == 0) {
        close(server_reports[0]);
        close(client_reports[0]);
        close(client_reports[1]);
        serve(stream_fd, seqpacket_fd, server_reports[1]);
        _exit(0);
    }
    close(server_reports[1]);
    shm_close(stream_fd);
    shm_close(seqpacket_fd);
    printf("server: process %d listens on @%s and @%s (abstract names), forks a handler per "
           "connection\n",
           (int)server, stream_addr.sun_path + 1, seqpacket_addr.sun_path + 1);

    /* 2. shm clients of both types, all at once. */
    int shm_clients = 0;
    for (int i = 0; i < STREAM_CLIENTS; i++, shm_clients++)
        start_client(&shm_calls, SOCK_STREAM, &stream_addr, stream_len, MESSAGES,
                     client_reports[1]);
    for (int i = 0; i < SEQPACKET_CLIENTS; i++, shm_clients++)
        start_client(&shm_calls, SOCK_SEQPACKET, &seqpacket_addr, seqpacket_len, MESSAGES,
                     client_reports[1]);
    for (int i = 0; i < shm_clients; i++) {
        struct report r;
        read_report(client_reports[0], &r);
        if (r.ok && r.status == SHM_STATUS_SHM) {
            printf("client (%s): connected, sent %llu messages of %d..%d bytes (%.1f MiB), "
                   "all echoed back correct; connection ran over shared memory (%s)\n",
                   type_name(r.type), r.messages, MIN_SIZE, MAX_SIZE,
                   (double)r.bytes / (1024.0 * 1024.0), status_name(r.status));
        } else if (r.ok) {
            printf("client (%s): FAILED: %llu messages echoed back correct, but the "
                   "connection did not run over shared memory (%s)\n",
                   type_name(r.type), r.messages, status_name(r.status));
            failures++;
        } else {
            printf("client (%s): FAILED after %llu correct messages: %s\n", type_name(r.type),
                   r.messages, r.error);
            failures++;
        }
    }

    /* 3. A client written with the kernel's calls, against the same shm server. */
    start_client(&kernel_calls, SOCK_STREAM, &stream_addr, stream_len, PLAIN_MESSAGES,
                 client_reports[1]);
    struct report plain;
    read_report(client_reports[0], &plain);
    if (plain.ok) {
        printf("plain client (socket/connect/send/recv/close, no shmsock): %llu messages OK "
               "over the kernel socket\n",
               plain.messages);
    } else {
        printf("plain client: FAILED after %llu correct messages: %s\n", plain.messages,
               plain.error);
        failures++;
    }

    /* What the server's handlers saw (each reports when its client has gone). */
    int on_shm = 0, on_kernel = 0, handler_errors = 0, plain_status = -1;
    for (int i = 0; i < shm_clients + 1; i++) {
        struct report r;
        if (read_report(server_reports[0], &r) < 0 || !r.ok) {
            printf("server: FAILED: %s\n", r.error);
            handler_errors++;
        } else if (r.status == SHM_STATUS_SHM) {
            on_shm++;
        } else {
            on_kernel++;
            plain_status = r.status;
        }
    }
    if (handler_errors == 0 && on_shm == shm_clients && on_kernel == 1) {
        printf("server: %d connections, each echoed by a forked handler (the server closed its "
               "copy: fork-and-hand-off); %d ran over shared memory, the plain client's stayed "
               "on the kernel socket (%s: offered, never answered)\n",
               shm_clients + 1, on_shm, status_name(plain_status));
    } else {
        printf("server: FAILED: %d connections over shared memory (expected %d), %d over the "
               "kernel socket (expected 1), %d errors\n",
               on_shm, shm_clients, on_kernel, handler_errors);
        failures++;
    }
    kill(server, SIGTERM);
    waitpid(server, NULL, 0);

    /* 4. Timing: kernel vs shm, same code, same message size, alternating runs. */
    double best[2] = {-1, -1};
    int status = -1;
    for (int run = 0; run < TIMING_RUNS; run++) {
        for (int k = 0; k < 2; k++) {
            double t = time_round_trips(k == 0 ? &kernel_calls : &shm_calls, &status);
            if (t < 0 || (k == 1 && status != SHM_STATUS_SHM)) {
                printf("timing: FAILED: %s socketpair round trips did not complete correctly "
                       "(%s)\n",
                       k == 0 ? "kernel" : "shm", k == 1 ? status_name(status) : "");
                failures++;
                run = TIMING_RUNS;
                break;
            }
            if (best[k] < 0 || t < best[k])
                best[k] = t;
        }
    }
    if (best[0] > 0 && best[1] > 0) {
        printf("timing: %d round trips of %d KiB over a SOCK_STREAM socketpair (best of %d): "
               "kernel %.1f ms, shm %.1f ms; shm takes %.2fx the kernel's time\n",
               TIMING_ROUNDS, TIMING_SIZE / 1024, TIMING_RUNS, best[0] * 1e3, best[1] * 1e3,
               best[1] / best[0]);
        printf("        (indicative only: one short run on this machine, not a benchmark)\n");
    }

    while (waitpid(-1, NULL, 0) > 0) /* every client is done */
        ;
    if (failures > 0) {
        printf("demo: FAILED (%d check%s failed)\n", failures, failures > 1 ? "s" : "");
        return 1;
    }
    printf("demo: all checks passed\n");
    return 0;
}
