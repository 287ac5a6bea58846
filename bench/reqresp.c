/*
 * reqresp.c - request/response: what a server with many clients sees.
 *
 * One server process runs an epoll loop (level-triggered, non-blocking sockets) over all its
 * connections; the clients (one process for one connection, RR_CLIENT_PROCS processes sharing
 * more) each keep exactly one request in flight per connection: send a 64-byte request, wait
 * for the whole reply, check it, send the next. Server and clients use one code path of shm_*
 * calls (shm_recv, shm_send, shm_fcntl, shm_poll) for every mode: in the kernel mode the
 * sockets come from socketpair(2) and the library passes them straight through, so the kernel
 * figure is what a program ported to shmsock gets on a kernel socket.
 *
 * The server writes every byte of every reply (payload_fill of the sequence number the request
 * carries) and checks every request byte; the client checks every reply byte as it arrives.
 * A server whose reply does not fit waits for writability with shm_poll (the epoll descriptor
 * beside the blocked sockets): POLLOUT of a shm socket from epoll would be the kernel socket's,
 * always set, and the loop would spin.
 *
 * Each connection's first RR_WARM_ROUNDS round trips negotiate; then the client checks that
 * SHM_STATUS is SHM (shm modes) and the server does the same on the next request: a
 * connection left on the kernel fails the case. When every client process is past that, the
 * last to get there opens the window (warm-up, then config->stream_seconds) for all of them;
 * requests/s counts the replies completed inside it, p50/p99 are their round-trip times.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmsock.h"

#define RR_REQUEST 64
#define RR_WARM_ROUNDS 3
#define RR_CLIENT_PROCS 2 /* client processes when there is more than one connection */
#define RR_MAX_CONNS 64
#define RR_MAX_SAMPLES (1L << 19) /* round-trip times kept per client process */
#define RR_SCRATCH (256 * 1024)   /* a client reads and checks a reply in pieces of this */
/* Warm-up before the window, at least: with 32 connections the shm modes' first 0.1 s or so is
 * slower (regions' pages first touched, rings and blocks first used), and --quick's 0.03 s of
 * streaming warm-up left that inside the window (0.2-0.3x the kernel, against 0.6x after). */
#define RR_MIN_WARMUP 0.1

struct rr_shared {
    struct shared sh; /* first error of the server or a client, stop */
    int ready;        /* client processes whose connections are all checked */
    uint64_t t0_ns;   /* start of the window (CLOCK_MONOTONIC), 0 until all are ready */
    long requests[RR_CLIENT_PROCS]; /* replies completed inside the window */
    long samples[RR_CLIENT_PROCS];  /* round-trip times stored (at most RR_MAX_SAMPLES) */
};

/* A helper process has closed what it does not use: say so, then wait until the parent lets
 * everyone start (see the start line in the runner below). */
static void wait_at_start_line(int ready[2], int go[2])
{
    char c;
    close(ready[0]);
    close(go[1]);
    if (write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) != 1)
        _exit(1);
    close(ready[1]);
    close(go[0]);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Connection k's request number r: the server makes the reply from it. */
static uint64_t rr_seq(int k, uint64_t r)
{
    return ((uint64_t)k << 40) | r;
}

static int set_nonblocking(int fd)
{
    int flags = shm_fcntl(fd, F_GETFL);
    return flags < 0 ? -1 : shm_fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

static const char *check_shm(const struct mode_info *m, int fd, char *buf, size_t len)
{
    if (!m->shm)
        return NULL;
    int status = mode_shm_status(m, fd);
    if (status == SHM_STATUS_SHM)
        return NULL;
    snprintf(buf, len, "not on shared memory after %d round trips: SHM_STATUS=%s", RR_WARM_ROUNDS,
             shm_status_name(status));
    return buf;
}

/* ---- server ---- */

struct rr_sconn {
    int fd;
    unsigned char req[RR_REQUEST];
    size_t req_got;
    unsigned char *reply;
    size_t out_off, out_len; /* out_len > 0: a reply (partly) unsent */
    long handled;
    int open, blocked;
};

/* Sends what is left of c's reply; 1 when blocked (EAGAIN), 0 when done, -1 on error. */
static int server_flush(struct rr_sconn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = shm_send(c->fd, c->reply + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 1;
        if (n < 0)
            return -1;
        c->out_off += (size_t)n;
    }
    c->out_len = c->out_off = 0;
    return 0;
}

/* Reads what is there of c's next request and answers it. 0, or -1 when c is done with. */
static int server_read(const struct mode_info *m, struct rr_sconn *c, size_t size, int type,
                       struct shared *sh)
{
    char why[120];
    for (;;) {
        ssize_t n = shm_recv(c->fd, c->req + c->req_got, RR_REQUEST - c->req_got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n <= 0) {
            if (n < 0 && !stopping(sh))
                helper_fail(sh, "server: recv: %s", errno_name(errno));
            else if (n == 0 && (c->req_got || c->out_len))
                helper_fail(sh, "server: end of stream inside a request or before its reply");
            return -1;
        }
        if (c->out_len) {
            helper_fail(sh, "server: a second request while a reply is unsent");
            return -1;
        }
        c->req_got += (size_t)n;
        if (type == SOCK_SEQPACKET && c->req_got != RR_REQUEST) {
            helper_fail(sh, "server: a request of %zu bytes, not %d", c->req_got, RR_REQUEST);
            return -1;
        }
        if (c->req_got < RR_REQUEST)
            continue;
        c->req_got = 0;
        uint64_t seq;
        memcpy(&seq, c->req, sizeof(seq));
        if (payload_verify(c->req + 8, 8, RR_REQUEST - 8, seq)) { /* every request byte */
            helper_fail(sh, "server: request %llu: wrong bytes", (unsigned long long)seq);
            return -1;
        }
        if (c->handled++ == RR_WARM_ROUNDS && check_shm(m, c->fd, why, sizeof(why))) {
            helper_fail(sh, "server: %s", why);
            return -1;
        }
        payload_fill(c->reply, size, seq); /* every reply byte written */
        c->out_len = size;
        int r = server_flush(c);
        if (r < 0) {
            if (!stopping(sh))
                helper_fail(sh, "server: send: %s", errno_name(errno));
            return -1;
        }
        c->blocked = r;
        if (r)
            return 0; /* the rest when the socket has room; no second request meanwhile */
    }
}

static void server(const struct mode_info *m, const int *fds, int nconn, size_t size, int type,
                   struct shared *sh)
{
    struct rr_sconn conns[RR_MAX_CONNS];
    struct epoll_event evs[RR_MAX_CONNS];
    struct pollfd pfd[RR_MAX_CONNS + 1];
    int ep = epoll_create1(EPOLL_CLOEXEC), open = 0;
    if (ep < 0) {
        helper_fail(sh, "server: epoll_create1: %s", errno_name(errno));
        return;
    }
    memset(conns, 0, sizeof(conns));
    for (int i = 0; i < nconn; i++) {
        struct rr_sconn *c = &conns[i];
        c->fd = fds[i];
        c->reply = case_buffer(size);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (!c->reply || set_nonblocking(c->fd) < 0 ||
            epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
            helper_fail(sh, "server: set-up of connection %d: %s", i, errno_name(errno));
            return;
        }
        c->open = 1;
        open++;
    }
    while (open > 0) {
        /* Blocked replies: wait for their room (shm_poll) and for the epoll descriptor. */
        int np = 0;
        pfd[np++] = (struct pollfd){.fd = ep, .events = POLLIN};
        for (int i = 0; i < nconn; i++)
            if (conns[i].open && conns[i].blocked)
                pfd[np++] = (struct pollfd){.fd = conns[i].fd, .events = POLLOUT};
        int n;
        if (np == 1) {
            n = epoll_wait(ep, evs, RR_MAX_CONNS, -1);
        } else {
            n = shm_poll(pfd, (nfds_t)np, -1);
            for (int i = 0, p = 1; n > 0 && i < nconn; i++) {
                struct rr_sconn *c = &conns[i];
                if (!c->open || !c->blocked)
                    continue;
                if (pfd[p++].revents) {
                    int r = server_flush(c);
                    c->blocked = r > 0;
                    if (r < 0) {
                        if (!stopping(sh))
                            helper_fail(sh, "server: send: %s", errno_name(errno));
                        return;
                    }
                }
            }
            n = n > 0 && pfd[0].revents ? epoll_wait(ep, evs, RR_MAX_CONNS, 0) : 0;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            helper_fail(sh, "server: epoll_wait/shm_poll: %s", errno_name(errno));
            return;
        }
        for (int e = 0; e < n; e++) {
            struct rr_sconn *c = &conns[evs[e].data.u32];
            if (!c->open || server_read(m, c, size, type, sh) == 0)
                continue;
            epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
            c->open = 0;
            open--;
            if (__atomic_load_n(&sh->helper_failed, __ATOMIC_ACQUIRE))
                return;
        }
    }
}

/* ---- clients ---- */

struct rr_cconn {
    int fd, k;      /* k: the connection's number among all of them */
    uint64_t round; /* replies received so far */
    size_t got;     /* bytes of the current reply */
    uint64_t t_sent;
    int done; /* past the window, nothing in flight */
};

static int send_request(struct rr_cconn *c)
{
    unsigned char req[RR_REQUEST];
    uint64_t seq = rr_seq(c->k, c->round);
    payload_fill(req, sizeof(req), seq);
    memcpy(req, &seq, sizeof(seq)); /* the server reads the sequence number from the front */
    c->t_sent = now_ns();
    size_t off = 0;
    while (off < sizeof(req)) {
        ssize_t n = shm_send(c->fd, req + off, sizeof(req) - off, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd p = {.fd = c->fd, .events = POLLOUT};
            (void)shm_poll(&p, 1, 1000); /* 64 bytes: the room comes with the next release */
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        off += (size_t)n;
    }
    return 0;
}

static void client(const struct bench_config *cfg, const struct mode_info *m, int proc, int nprocs,
                   const int *fds, int first_k, int nconn, size_t size, struct rr_shared *rs,
                   double *samples)
{
    struct shared *sh = &rs->sh;
    struct rr_cconn conns[RR_MAX_CONNS];
    struct epoll_event evs[RR_MAX_CONNS];
    /* A SEQPACKET reply must be read whole (a shorter buffer truncates it). */
    size_t scratch_len = size < RR_SCRATCH || cfg->sock_type == SOCK_SEQPACKET ? size : RR_SCRATCH;
    unsigned char *scratch = case_buffer(scratch_len);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int checked = 0, active = nconn;
    uint64_t t0 = 0, t1 = 0;
    long requests = 0, stored = 0;
    char why[120];
    if (!scratch || ep < 0) {
        helper_fail(sh, "client: set-up: %s", errno_name(errno));
        return;
    }
    memset(conns, 0, sizeof(conns));
    for (int i = 0; i < nconn; i++) {
        struct rr_cconn *c = &conns[i];
        c->fd = fds[i];
        c->k = first_k + i;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (set_nonblocking(c->fd) < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0 ||
            send_request(c) < 0) {
            helper_fail(sh, "client: start of connection %d: %s", c->k, errno_name(errno));
            return;
        }
    }
    while (active > 0) {
        int n = epoll_wait(ep, evs, RR_MAX_CONNS, 1000);
        if (__atomic_load_n(&sh->helper_failed, __ATOMIC_ACQUIRE))
            return; /* another process failed: the window will not come */
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            helper_fail(sh, "client: epoll_wait: %s", errno_name(errno));
            return;
        }
        if (!t0)
            t0 = __atomic_load_n(&rs->t0_ns, __ATOMIC_ACQUIRE);
        if (t0)
            t1 = t0 + (uint64_t)(cfg->stream_seconds * 1e9);
        for (int e = 0; e < n; e++) {
            struct rr_cconn *c = &conns[evs[e].data.u32];
            for (;;) {
                size_t want = size - c->got < scratch_len ? size - c->got : scratch_len;
                ssize_t r = shm_recv(c->fd, scratch, want, 0);
                if (r < 0 && errno == EINTR)
                    continue;
                if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                    break;
                if (r <= 0) {
                    helper_fail(sh, "client: connection %d: %s", c->k,
                                r == 0 ? "end of stream" : errno_name(errno));
                    return;
                }
                if (cfg->sock_type == SOCK_SEQPACKET && (size_t)r != size) {
                    helper_fail(sh, "client: a reply of %zd bytes, not %zu", r, size);
                    return;
                }
                if (payload_verify(scratch, c->got, (size_t)r, rr_seq(c->k, c->round))) {
                    helper_fail(sh, "client: reply %llu of connection %d: wrong bytes",
                                (unsigned long long)c->round, c->k);
                    return;
                }
                c->got += (size_t)r;
                if (c->got < size)
                    continue;
                /* A whole reply. */
                uint64_t t = now_ns();
                c->got = 0;
                c->round++;
                if (t0 && t >= t0 && t < t1) {
                    requests++;
                    if (stored < RR_MAX_SAMPLES)
                        samples[stored++] = (double)(t - c->t_sent) / 1e3;
                }
                if (c->round == RR_WARM_ROUNDS) {
                    if (check_shm(m, c->fd, why, sizeof(why))) {
                        helper_fail(sh, "client: connection %d: %s", c->k, why);
                        return;
                    }
                    /* The last process to have all its connections checked opens the
                     * window for everyone. */
                    if (++checked == nconn &&
                        __atomic_add_fetch(&rs->ready, 1, __ATOMIC_ACQ_REL) == nprocs) {
                        double warm = cfg->warmup_seconds > RR_MIN_WARMUP ? cfg->warmup_seconds
                                                                          : RR_MIN_WARMUP;
                        __atomic_store_n(&rs->t0_ns, now_ns() + (uint64_t)(warm * 1e9),
                                         __ATOMIC_RELEASE);
                    }
                }
                if (t1 && t >= t1) {
                    c->done = 1;
                    active--;
                } else if (send_request(c) < 0) {
                    helper_fail(sh, "client: send: %s", errno_name(errno));
                    return;
                }
                break; /* one request in flight: nothing more can be waiting */
            }
        }
    }
    rs->requests[proc] = requests;
    rs->samples[proc] = stored;
}

/* ---- the case ---- */

static void reqresp(const struct bench_config *cfg, enum bench_mode mode, size_t size, int nconn,
                    struct run_result *out)
{
    const struct mode_info *m = mode_info(mode);
    int nprocs = nconn > 1 ? RR_CLIENT_PROCS : 1;
    int sfd[RR_MAX_CONNS], cfd[RR_MAX_CONNS];
    size_t samples_len = sizeof(double) * (size_t)RR_MAX_SAMPLES * (size_t)nprocs;
    struct rr_shared *rs =
        mmap(NULL, sizeof(*rs), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    double *samples =
        mmap(NULL, samples_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (rs == MAP_FAILED || samples == MAP_FAILED) {
        result_error(out, "mmap: %s", errno_name(errno));
        return;
    }
    /* SO_SNDBUF as a server leaves it: the system default (--sndbuf sets it), except that a
     * SEQPACKET reply must fit in one message (case_sndbuf, as for streaming that size). The
     * same in every mode. (case_sndbuf's 4 MiB on SOCK_STREAM too gave 32 connections 128 MiB
     * of regions, which took the shm modes seconds to warm up in --quick.) */
    int sndbuf = cfg->sndbuf > 0 || cfg->sock_type == SOCK_SEQPACKET ? case_sndbuf(cfg, size) : 0;
    for (int i = 0; i < nconn; i++) {
        int sv[2];
        const char *what = "";
        if (m->ops->socketpair(AF_UNIX, cfg->sock_type, 0, sv) < 0) {
            result_error(out, "socketpair: %s", errno_name(errno));
            return;
        }
        if (mode_configure(m, sv[0], sndbuf, cfg->busy_poll_us, &what) < 0 ||
            mode_configure(m, sv[1], 0, cfg->busy_poll_us, &what) < 0) {
            result_error(out, "%s: %s", what, errno_name(errno));
            return;
        }
        sfd[i] = sv[0];
        cfd[i] = sv[1];
    }
    /* A start line: every process first closes the ends it does not use and says so; the
     * parent then closes its own copies and lets them all go. So each end is held by one
     * process when traffic starts, and may negotiate at once (shmsock keeps a socket that
     * several processes hold off shared memory until one alone holds it: share.h). */
    int ready[2], go[2];
    if (pipe(ready) < 0 || pipe(go) < 0) {
        result_error(out, "pipe: %s", errno_name(errno));
        return;
    }
    pid_t server_pid = fork();
    if (server_pid < 0) {
        result_error(out, "fork: %s", errno_name(errno));
        return;
    }
    if (server_pid == 0) {
        alarm((unsigned)cfg->timeout_seconds);
        for (int i = 0; i < nconn; i++)
            m->ops->close(cfd[i]);
        wait_at_start_line(ready, go);
        server(m, sfd, nconn, size, cfg->sock_type, &rs->sh);
        _exit(0);
    }
    pid_t client_pid[RR_CLIENT_PROCS];
    int per = (nconn + nprocs - 1) / nprocs, started = 0;
    for (int p = 0; p < nprocs; p++) {
        client_pid[p] = fork();
        if (client_pid[p] < 0) {
            result_error(out, "fork: %s", errno_name(errno));
            break;
        }
        started++;
        if (client_pid[p] == 0) {
            alarm((unsigned)cfg->timeout_seconds);
            int first = p * per, count = nconn - first < per ? nconn - first : per;
            for (int i = 0; i < nconn; i++) {
                m->ops->close(sfd[i]);
                if (i < first || i >= first + count)
                    m->ops->close(cfd[i]);
            }
            wait_at_start_line(ready, go);
            client(cfg, m, p, nprocs, cfd + first, first, count, size, rs,
                   samples + (size_t)p * RR_MAX_SAMPLES);
            _exit(0); /* its connections close: the server sees the end of each */
        }
    }
    for (int p = 0; p < started + 1; p++) { /* the clients and the server have closed theirs */
        char c;
        if (read(ready[0], &c, 1) != 1)
            break;
    }
    for (int i = 0; i < nconn; i++) {
        m->ops->close(sfd[i]);
        m->ops->close(cfd[i]);
    }
    for (int p = 0; p < started + 1; p++)
        if (write(go[1], "g", 1) != 1)
            break;
    close(ready[0]);
    close(ready[1]);
    close(go[0]);
    close(go[1]);
    for (int p = 0; p < started; p++)
        while (waitpid(client_pid[p], NULL, 0) < 0 && errno == EINTR)
            ;
    set_stop(&rs->sh);
    int killed = reap_helper(server_pid);
    if (__atomic_load_n(&rs->sh.helper_failed, __ATOMIC_ACQUIRE))
        result_error(out, "%s", rs->sh.helper_error);
    if (rs->sh.helper_note[0])
        result_note(out, "%s", rs->sh.helper_note);
    if (killed)
        result_note(out, "server still running 2 s after the clients closed (killed)");
    long requests = 0, n = 0;
    for (int p = 0; p < nprocs; p++) {
        requests += rs->requests[p];
        if (n != (long)p * RR_MAX_SAMPLES) /* pack the stored samples together */
            memmove(samples + n, samples + (size_t)p * RR_MAX_SAMPLES,
                    sizeof(double) * (size_t)rs->samples[p]);
        n += rs->samples[p];
    }
    if (out->ok && n == 0)
        result_error(out, "no reply inside the window");
    if (out->ok) {
        out->seconds = cfg->stream_seconds;
        out->messages = (double)requests;
        out->bytes = (double)requests * (double)size;
        stats_sort(samples, n);
        out->p50_us = stats_percentile_sorted(samples, n, 50);
        out->p99_us = stats_percentile_sorted(samples, n, 99);
        out->samples = n;
        out->sndbuf = sndbuf; /* 0: the system default */
    }
    munmap(samples, samples_len);
    munmap(rs, sizeof(*rs));
}

void case_reqresp_one(const struct bench_config *cfg, enum bench_mode mode, size_t size,
                      struct run_result *out)
{
    reqresp(cfg, mode, size, 1, out);
}

void case_reqresp_many(const struct bench_config *cfg, enum bench_mode mode, size_t size,
                       struct run_result *out)
{
    reqresp(cfg, mode, size, REQRESP_MANY, out);
}
