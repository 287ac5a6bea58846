/*
 * cases.c - the measurements. Each runs inside a runner process (runner.c) and forks its
 * helper (producer, echo server, acceptor), which arms its own alarm().
 *
 *   case_stream    streaming throughput, measured by the consumer over a fixed window
 *   case_pingpong  round-trip times of one message each way, p50 and p99
 *   case_setup     socket + connect + accept + first 1-byte round trip, p50 and p99
 *   case_touch     the touch-only bound: one process writes then reads the bytes, no transfer
 */
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmsock.h"

struct shared *shared_create(void)
{
    void *p = mmap(NULL, sizeof(struct shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

int stopping(const struct shared *sh)
{
    return __atomic_load_n(&sh->stop, __ATOMIC_RELAXED);
}

void set_stop(struct shared *sh)
{
    __atomic_store_n(&sh->stop, 1, __ATOMIC_RELEASE);
}

void helper_fail(struct shared *sh, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void helper_fail(struct shared *sh, const char *fmt, ...)
{
    if (sh->helper_failed)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sh->helper_error, sizeof(sh->helper_error), fmt, ap);
    va_end(ap);
    __atomic_store_n(&sh->helper_failed, 1, __ATOMIC_RELEASE);
}

void helper_note(struct shared *sh, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void helper_note(struct shared *sh, const char *fmt, ...)
{
    if (sh->helper_note[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sh->helper_note, sizeof(sh->helper_note), fmt, ap);
    va_end(ap);
}

/* A page-aligned buffer, already faulted in. */
void *case_buffer(size_t size)
{
    size_t rounded = (size + 4095) / 4096 * 4096;
    void *p = aligned_alloc(4096, rounded);
    if (p)
        memset(p, 0, rounded);
    return p;
}

static int system_wmem_default(void)
{
    static int value;
    if (value == 0) {
        value = 212992;
        FILE *f = fopen("/proc/sys/net/core/wmem_default", "r");
        if (f) {
            if (fscanf(f, "%d", &value) != 1 || value <= 0)
                value = 212992;
            fclose(f);
        }
    }
    return value;
}

int case_sndbuf(const struct bench_config *cfg, size_t size)
{
    if (cfg->sndbuf > 0)
        return cfg->sndbuf;
    /* Room for four messages in flight (a 1 MiB zero-copy message must fit in the region,
     * which is SO_SNDBUF bytes); the system default when that is enough. Same for all modes. */
    size_t want = 4 * size;
    return want > (size_t)system_wmem_default() ? (int)want : 0;
}

static size_t mmsg_batch(const struct bench_config *cfg, size_t size)
{
    size_t batch = (size_t)cfg->mmsg_batch;
    size_t cap = (1u << 20) / size; /* at most 1 MiB of buffers per side */
    if (batch > cap)
        batch = cap;
    return batch ? batch : 1;
}

/* Waits up to two seconds for the helper, then kills it; a non-zero return means it had to. */
int reap_helper(pid_t pid)
{
    for (int i = 0; i < 200; i++) {
        pid_t r = waitpid(pid, NULL, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR))
            return 0;
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return 1;
}

/*
 * Adds what the helper met to the case's result. Once the case has its measurement (out->ok),
 * a helper that had to be killed, or an error it met after the case had closed its end, is a
 * note: the numbers stand, and the table shows what went wrong at teardown.
 */
void merge_helper(struct run_result *out, struct shared *sh, int killed, const char *who)
{
    if (__atomic_load_n(&sh->helper_failed, __ATOMIC_ACQUIRE)) {
        char mine[sizeof(out->error)];
        snprintf(mine, sizeof(mine), "%s", out->ok ? "" : out->error);
        out->ok = 1;
        out->error[0] = '\0';
        result_error(out, "%s: %s%s%s", who, sh->helper_error, mine[0] ? "; then " : "", mine);
    }
    if (sh->helper_note[0])
        result_note(out, "%s: %s", who, sh->helper_note);
    if (killed) {
        if (out->ok) {
            result_note(out, "%s still blocked 2 s after the other end closed (killed)", who);
        } else {
            char mine[sizeof(out->error)];
            snprintf(mine, sizeof(mine), "%s", out->error);
            out->ok = 1;
            out->error[0] = '\0';
            result_error(out, "%s hung: still blocked 2 s after the other end closed; %s", who,
                         mine);
        }
    }
}

const char *shm_status_name(int status)
{
    switch (status) {
    case SHM_STATUS_PLAIN:
        return "PLAIN";
    case SHM_STATUS_OFFERED:
        return "OFFERED";
    case SHM_STATUS_SHM:
        return "SHM";
    case SHM_STATUS_PASSTHROUGH:
        return "PASSTHROUGH";
    default:
        return "getsockopt failed";
    }
}

/*
 * The handshake before anything is timed: two 1-byte round trips, then one more byte from the
 * side that started. A round trip exchanges the offers; the side that offered first still
 * says SHM_STATUS_OFFERED after it and switches on its next send, hence the last message,
 * after which both sides are on shared memory (checked by check_switched). Two round trips,
 * not one: each side's first message may leave while the other process has not closed its
 * copy of the pair yet (fork, then each closes the end it does not use), and a socket that
 * two processes hold sends no offer (api/share.h).
 */
static int handshake(const struct mode_info *m, int fd, int first, const char **what)
{
    char byte = 'h';
    for (int step = 0; step < 5; step++) {
        ssize_t n;
        if ((step % 2 == 0) == (first != 0)) {
            *what = "send";
            n = m->ops->send(fd, &byte, 1, MSG_NOSIGNAL);
        } else {
            *what = "recv";
            n = m->ops->recv(fd, &byte, 1, 0);
            if (n == 0) {
                errno = ECONNRESET;
                *what = "recv (end of stream)";
                return -1;
            }
        }
        if (n != 1)
            return -1;
    }
    return 0;
}

/* "" if fd is on shared memory (or a kernel mode), else what is wrong. */
static const char *check_switched(const struct mode_info *m, int fd, char *buf, size_t len)
{
    if (!m->shm)
        return "";
    int status = mode_shm_status(m, fd);
    if (status == SHM_STATUS_SHM)
        return "";
    snprintf(buf, len, "not on shared memory after the handshake: SHM_STATUS=%s",
             shm_status_name(status));
    return buf;
}

/* ---- the timed window of a streaming case ---- */

void window_init(struct window *w, size_t size)
{
    memset(w, 0, sizeof(*w));
    /* Read the clock about every 64 KiB: often enough, cheap next to 64-byte messages. */
    w->check_every = size >= 65536 ? 1 : 65536 / size;
}

/* Called with the number of messages received so far; 1 when the window has just ended. */
int window_update(struct window *w, const struct bench_config *cfg, uint64_t received)
{
    w->received = received;
    if (w->phase == 2)
        return 0;
    if (w->t_first == 0) {
        w->t_first = now_seconds();
        w->last_check = received;
        return 0;
    }
    if (received - w->last_check < w->check_every)
        return 0;
    w->last_check = received;
    double t = now_seconds();
    if (w->phase == 0) {
        if (t - w->t_first >= cfg->warmup_seconds) {
            w->phase = 1;
            w->t0 = t;
            w->n0 = received;
        }
        return 0;
    }
    if (t - w->t0 < cfg->stream_seconds)
        return 0;
    w->phase = 2;
    w->t1 = t;
    w->n1 = received;
    return 1;
}

void window_result(const struct window *w, size_t size, struct run_result *out)
{
    out->seconds = w->t1 - w->t0;
    out->messages = (double)(w->n1 - w->n0);
    out->bytes = out->messages * (double)size;
}

/* ---- streaming: producers ---- */

static void produce_copy(const struct mode_info *m, int fd, size_t size, struct shared *sh)
{
    void *buf = case_buffer(size);
    if (!buf) {
        helper_fail(sh, "out of memory");
        return;
    }
    for (uint64_t seq = 0; !stopping(sh); seq++) {
        payload_fill(buf, size, seq); /* every byte written */
        if (send_all(m, fd, buf, size) < 0) {
            if (!stopping(sh))
                helper_fail(sh, "send: %s", errno_name(errno));
            break;
        }
    }
    free(buf);
}

static void produce_zerocopy(int fd, size_t size, struct shared *sh)
{
    for (uint64_t seq = 0; !stopping(sh); seq++) {
        void *p = zc_send_alloc(fd, size, 0);
        if (!p) {
            if (!stopping(sh))
                helper_fail(sh, "shm_send_alloc(%zu): %s", size, errno_name(errno));
            return;
        }
        payload_fill(p, size, seq); /* every byte written, in place */
        ssize_t n = zc_send_commit(fd, p, size, MSG_NOSIGNAL);
        if (n != (ssize_t)size) {
            if (n < 0 && stopping(sh))
                return;
            if (n < 0)
                helper_fail(sh, "shm_send_commit: %s", errno_name(errno));
            else
                helper_fail(sh, "shm_send_commit returned %zd, not %zu", n, size);
            return;
        }
    }
}

static void produce_mmsg(const struct bench_config *cfg, const struct mode_info *m, int fd,
                         size_t size, struct shared *sh)
{
    size_t batch = mmsg_batch(cfg, size);
    char *bufs = case_buffer(batch * size);
    struct mmsghdr *vec = calloc(batch, sizeof(*vec));
    struct iovec *iov = calloc(batch, sizeof(*iov));
    if (!bufs || !vec || !iov) {
        helper_fail(sh, "out of memory");
        goto out;
    }
    for (uint64_t seq = 0; !stopping(sh); seq += batch) {
        for (size_t i = 0; i < batch; i++) {
            payload_fill(bufs + i * size, size, seq + i);
            iov[i] = (struct iovec){.iov_base = bufs + i * size, .iov_len = size};
            memset(&vec[i], 0, sizeof(vec[i]));
            vec[i].msg_hdr.msg_iov = &iov[i];
            vec[i].msg_hdr.msg_iovlen = 1;
        }
        size_t done = 0;
        while (done < batch) {
            int k = m->ops->sendmmsg(fd, vec + done, (unsigned)(batch - done), MSG_NOSIGNAL);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0) {
                if (!stopping(sh))
                    helper_fail(sh, "sendmmsg: %s", k < 0 ? errno_name(errno) : "returned 0");
                goto out;
            }
            for (int j = 0; j < k; j++) {
                struct mmsghdr *e = &vec[done + (size_t)j];
                if (e->msg_len < size) { /* partial (signal): finish this one by hand */
                    if (send_all(m, fd, (char *)iov[done + (size_t)j].iov_base + e->msg_len,
                                 size - e->msg_len) < 0) {
                        if (!stopping(sh))
                            helper_fail(sh, "send: %s", errno_name(errno));
                        goto out;
                    }
                    k = j + 1;
                    break;
                }
            }
            done += (size_t)k;
        }
    }
out:
    free(bufs);
    free(vec);
    free(iov);
}

static void producer(const struct bench_config *cfg, const struct mode_info *m, int fd, size_t size,
                     struct shared *sh)
{
    const char *what = "";
    char why[120];
    if (handshake(m, fd, 0, &what) < 0) {
        helper_fail(sh, "handshake %s: %s", what, errno_name(errno));
        return;
    }
    const char *bad = check_switched(m, fd, why, sizeof(why));
    if (bad[0]) {
        helper_fail(sh, "%s", bad);
        return;
    }
    if (m->zerocopy)
        produce_zerocopy(fd, size, sh);
    else if (m->mmsg)
        produce_mmsg(cfg, m, fd, size, sh);
    else
        produce_copy(m, fd, size, sh);
}

/* ---- streaming: consumers (they return the number of messages, and end at EOF) ---- */

static void consume_copy(const struct bench_config *cfg, const struct mode_info *m, int fd,
                         size_t size, struct window *w, struct run_result *out)
{
    void *buf = case_buffer(size);
    if (!buf) {
        result_error(out, "out of memory");
        return;
    }
    for (uint64_t seq = 0;; seq++) {
        ssize_t got = 0;
        ssize_t n = recv_message(m, cfg->sock_type, fd, buf, size, &got);
        if (n == 0)
            break;
        if (n == -1) {
            result_error(out, "recv: %s", errno_name(errno));
            break;
        }
        if (n == -2) {
            result_error(out, "message %llu is %zd bytes, not %zu", (unsigned long long)seq, got,
                         size);
            break;
        }
        if (payload_verify(buf, 0, size, seq)) { /* every byte read */
            result_error(out, "message %llu: wrong bytes (checksum)", (unsigned long long)seq);
            break;
        }
        if (window_update(w, cfg, seq + 1))
            break; /* measured: the case closes its end, the producer stops */
    }
    free(buf);
}

static void consume_zerocopy(const struct bench_config *cfg, int fd, size_t size, struct window *w,
                             struct run_result *out)
{
    uint64_t seq = 0;
    size_t offset = 0; /* into message seq: a STREAM view may hold part of a message */
    for (;;) {
        const void *view = NULL;
        ssize_t n = zc_recv_view(fd, &view, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            result_error(out, "shm_recv_view: %s", errno_name(errno));
            return;
        }
        if (n == 0) {
            if (offset != 0)
                result_error(out, "end of stream inside message %llu", (unsigned long long)seq);
            return;
        }
        if (cfg->sock_type == SOCK_SEQPACKET && (size_t)n != size) {
            result_error(out, "view of message %llu is %zd bytes, not %zu", (unsigned long long)seq,
                         n, size);
            zc_recv_release(fd, view);
            return;
        }
        const char *p = view;
        size_t left = (size_t)n;
        while (left > 0) {
            size_t piece = size - offset < left ? size - offset : left;
            if (payload_verify(p, offset, piece, seq)) { /* every byte read, in place */
                result_error(out, "message %llu: wrong bytes (checksum)", (unsigned long long)seq);
                zc_recv_release(fd, view);
                return;
            }
            p += piece;
            left -= piece;
            offset += piece;
            if (offset == size) {
                offset = 0;
                seq++;
                if (window_update(w, cfg, seq)) {
                    zc_recv_release(fd, view);
                    return; /* measured */
                }
            }
        }
        if (zc_recv_release(fd, view) < 0) {
            result_error(out, "shm_recv_release: %s", errno_name(errno));
            return;
        }
    }
}

static void consume_mmsg(const struct bench_config *cfg, const struct mode_info *m, int fd,
                         size_t size, struct window *w, struct run_result *out)
{
    size_t batch = mmsg_batch(cfg, size);
    char *bufs = case_buffer(batch * size);
    struct mmsghdr *vec = calloc(batch, sizeof(*vec));
    struct iovec *iov = calloc(batch, sizeof(*iov));
    if (!bufs || !vec || !iov) {
        result_error(out, "out of memory");
        goto out;
    }
    /* MSG_WAITALL on STREAM: each entry is one whole message. */
    int flags = cfg->sock_type == SOCK_STREAM ? MSG_WAITALL : 0;
    uint64_t seq = 0;
    for (;;) {
        for (size_t i = 0; i < batch; i++) {
            iov[i] = (struct iovec){.iov_base = bufs + i * size, .iov_len = size};
            memset(&vec[i], 0, sizeof(vec[i]));
            vec[i].msg_hdr.msg_iov = &iov[i];
            vec[i].msg_hdr.msg_iovlen = 1;
        }
        int k = m->ops->recvmmsg(fd, vec, (unsigned)batch, flags, NULL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            result_error(out, "recvmmsg: %s", errno_name(errno));
            goto out;
        }
        if (k == 0)
            goto out;
        for (int j = 0; j < k; j++) {
            unsigned len = vec[j].msg_len;
            if (len == 0)
                goto out; /* end of stream */
            if (len != size) {
                result_error(out, "message %llu is %u bytes, not %zu", (unsigned long long)seq, len,
                             size);
                goto out;
            }
            if (payload_verify(bufs + (size_t)j * size, 0, size, seq)) {
                result_error(out, "message %llu: wrong bytes (checksum)", (unsigned long long)seq);
                goto out;
            }
            seq++;
        }
        if (window_update(w, cfg, seq))
            goto out; /* measured */
    }
out:
    free(bufs);
    free(vec);
    free(iov);
}

/* Makes a connected pair with the mode's options on both ends; 0 or -1 (out filled). */
static int make_pair(const struct bench_config *cfg, const struct mode_info *m, size_t size,
                     int sv[2], struct run_result *out)
{
    if (m->zerocopy && zerocopy_missing()) {
        result_error(out, "not linked: %s", zerocopy_missing());
        return -1;
    }
    if (m->shm && m->mmsg && mmsg_missing()) {
        result_error(out, "not linked: %s", mmsg_missing());
        return -1;
    }
    if (m->ops->socketpair(AF_UNIX, cfg->sock_type, 0, sv) < 0) {
        result_error(out, "socketpair: %s", errno_name(errno));
        return -1;
    }
    int sndbuf = size ? case_sndbuf(cfg, size) : 0;
    for (int i = 0; i < 2; i++) {
        const char *what = "";
        if (mode_configure(m, sv[i], sndbuf, cfg->busy_poll_us, &what) < 0) {
            result_error(out, "%s: %s", what, errno_name(errno));
            m->ops->close(sv[0]);
            m->ops->close(sv[1]);
            return -1;
        }
    }
    return 0;
}

void case_stream(const struct bench_config *cfg, enum bench_mode mode, size_t size,
                 struct run_result *out)
{
    const struct mode_info *m = mode_info(mode);
    struct shared *sh = shared_create();
    int sv[2];
    if (!sh) {
        result_error(out, "mmap: %s", errno_name(errno));
        return;
    }
    if (make_pair(cfg, m, size, sv, out) < 0)
        return;
    pid_t pid = fork();
    if (pid < 0) {
        result_error(out, "fork: %s", errno_name(errno));
        return;
    }
    if (pid == 0) {
        alarm((unsigned)cfg->timeout_seconds);
        m->ops->close(sv[1]);
        producer(cfg, m, sv[0], size, sh);
        m->ops->close(sv[0]);
        _exit(0);
    }
    m->ops->close(sv[0]);
    int fd = sv[1];
    const char *what = "";
    char why[120];
    struct window w;
    window_init(&w, size);
    if (handshake(m, fd, 1, &what) < 0) {
        result_error(out, "handshake %s: %s", what, errno_name(errno));
    } else {
        const char *bad = check_switched(m, fd, why, sizeof(why));
        if (bad[0])
            result_error(out, "%s", bad);
        else if (m->zerocopy)
            consume_zerocopy(cfg, fd, size, &w, out);
        else if (m->mmsg)
            consume_mmsg(cfg, m, fd, size, &w, out);
        else
            consume_copy(cfg, m, fd, size, &w, out);
    }
    set_stop(sh);
    out->sndbuf = mode_sndbuf(m, fd);
    long long doorbells = mode_doorbells_received(m, fd);
    out->doorbells_per_1k =
        doorbells >= 0 && w.received > 0 ? 1000.0 * (double)doorbells / (double)w.received : NAN;
    m->ops->close(fd);
    int killed = reap_helper(pid);
    if (out->ok && w.phase != 2)
        result_error(out, "end of stream after %llu messages, before the window ended",
                     (unsigned long long)w.received);
    merge_helper(out, sh, killed, "producer");
    if (out->ok)
        window_result(&w, size, out);
}

/* ---- ping-pong ---- */

/* Receives exactly size bytes as views, releasing each. size, 0 at end of stream, or -1. */
static ssize_t view_message(int fd, size_t size, const char **what)
{
    size_t got = 0;
    while (got < size) {
        const void *view = NULL;
        ssize_t n = zc_recv_view(fd, &view, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            *what = "shm_recv_view";
            return -1;
        }
        if (n == 0) {
            if (got == 0)
                return 0;
            *what = "shm_recv_view (end of stream inside a message)";
            errno = EPROTO;
            return -1;
        }
        if (zc_recv_release(fd, view) < 0) {
            *what = "shm_recv_release";
            return -1;
        }
        got += (size_t)n;
    }
    if (got != size) {
        *what = "shm_recv_view (views past the end of the message)";
        errno = EPROTO;
        return -1;
    }
    return (ssize_t)size;
}

static int zerocopy_send(int fd, size_t size, const char **what)
{
    void *p = zc_send_alloc(fd, size, 0);
    if (!p) {
        *what = "shm_send_alloc";
        return -1;
    }
    ((volatile char *)p)[0] = 'p'; /* the payload is not touched: a zero-copy echo */
    ssize_t n = zc_send_commit(fd, p, size, MSG_NOSIGNAL);
    if (n != (ssize_t)size) {
        *what = "shm_send_commit";
        if (n >= 0)
            errno = EPROTO;
        return -1;
    }
    return 0;
}

static void echo_server(const struct mode_info *m, int type, int fd, size_t size, struct shared *sh)
{
    const char *what = "";
    char why[120];
    if (handshake(m, fd, 0, &what) < 0) {
        helper_fail(sh, "handshake %s: %s", what, errno_name(errno));
        return;
    }
    const char *bad = check_switched(m, fd, why, sizeof(why));
    if (bad[0]) {
        helper_fail(sh, "%s", bad);
        return;
    }
    void *buf = case_buffer(size);
    for (;;) {
        ssize_t got = 0, n;
        if (m->zerocopy) {
            n = view_message(fd, size, &what);
        } else {
            what = "recv";
            n = recv_message(m, type, fd, buf, size, &got);
        }
        if (n == 0)
            break;
        if (n < 0) {
            if (n == -2)
                helper_fail(sh, "recv: %zd bytes, not %zu", got, size);
            else if (stopping(sh))
                helper_note(sh, "%s: %s (not end of stream) after the client closed", what,
                            errno_name(errno));
            else
                helper_fail(sh, "%s: %s", what, errno_name(errno));
            break;
        }
        int r;
        if (m->zerocopy) {
            r = zerocopy_send(fd, size, &what);
        } else {
            what = "send";
            r = send_all(m, fd, buf, size);
        }
        if (r < 0) {
            helper_fail(sh, "%s: %s", what, errno_name(errno));
            break;
        }
    }
    free(buf);
}

void case_pingpong(const struct bench_config *cfg, enum bench_mode mode, size_t size,
                   struct run_result *out)
{
    const struct mode_info *m = mode_info(mode);
    struct shared *sh = shared_create();
    int sv[2];
    if (!sh) {
        result_error(out, "mmap: %s", errno_name(errno));
        return;
    }
    if (make_pair(cfg, m, size, sv, out) < 0)
        return;
    pid_t pid = fork();
    if (pid < 0) {
        result_error(out, "fork: %s", errno_name(errno));
        return;
    }
    if (pid == 0) {
        alarm((unsigned)cfg->timeout_seconds);
        m->ops->close(sv[1]);
        echo_server(m, cfg->sock_type, sv[0], size, sh);
        m->ops->close(sv[0]);
        _exit(0);
    }
    m->ops->close(sv[0]);
    int fd = sv[1];
    const char *what = "";
    char why[120];
    long warm = cfg->pingpong_rounds / 20 > 10 ? cfg->pingpong_rounds / 20 : 10;
    long min_samples = 50;
    double *rtt = malloc(sizeof(double) * (size_t)cfg->pingpong_rounds);
    void *buf = case_buffer(size);
    long n = 0;
    if (!rtt || !buf) {
        result_error(out, "out of memory");
    } else if (handshake(m, fd, 1, &what) < 0) {
        result_error(out, "handshake %s: %s", what, errno_name(errno));
    } else if (check_switched(m, fd, why, sizeof(why))[0]) {
        result_error(out, "%s", why);
    } else {
        double start = 0;
        for (long i = 0; n < cfg->pingpong_rounds; i++) {
            struct timespec t0, t1;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            ssize_t got = 0, r;
            if (m->zerocopy) {
                r = zerocopy_send(fd, size, &what);
                if (r == 0)
                    r = view_message(fd, size, &what);
            } else {
                what = "send";
                r = send_all(m, fd, buf, size);
                if (r == 0) {
                    what = "recv";
                    r = recv_message(m, cfg->sock_type, fd, buf, size, &got);
                }
            }
            clock_gettime(CLOCK_MONOTONIC, &t1);
            if (r <= 0) {
                if (r == 0)
                    result_error(out, "end of stream after %ld round trips", i);
                else if (r == -2)
                    result_error(out, "reply of %zd bytes, not %zu", got, size);
                else
                    result_error(out, "%s: %s", what, errno_name(errno));
                break;
            }
            double us =
                (double)(t1.tv_sec - t0.tv_sec) * 1e6 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e3;
            if (i == warm)
                start = now_seconds();
            if (i >= warm) {
                rtt[n++] = us;
                if (n >= min_samples && now_seconds() - start > cfg->pingpong_seconds)
                    break;
            }
        }
    }
    set_stop(sh);
    out->sndbuf = mode_sndbuf(m, fd);
    m->ops->close(fd);
    int killed = reap_helper(pid);
    merge_helper(out, sh, killed, "echo server");
    if (out->ok) {
        stats_sort(rtt, n);
        out->p50_us = stats_percentile_sorted(rtt, n, 50);
        out->p99_us = stats_percentile_sorted(rtt, n, 99);
        out->samples = n;
    }
    free(rtt);
    free(buf);
}

/* ---- connection set-up ---- */

/* The first SETUP_CHECKED connections of a set-up case (untimed warm-up) are checked: after
 * the timed 1-byte round trip the client sends one more byte, which makes it switch, and must
 * then read SHM_STATUS_SHM. (The server is not asked: right after its reply the client may
 * already have closed, and a socket whose peer has closed reads OFFERED.) */
#define SETUP_CHECKED 10

static void acceptor(const struct bench_config *cfg, const struct mode_info *m, int listener,
                     struct shared *sh)
{
    for (long i = 0; !stopping(sh); i++) {
        int fd = m->ops->accept(listener, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            helper_fail(sh, "accept: %s", errno_name(errno));
            return;
        }
        const char *what = "";
        char byte;
        if (mode_configure(m, fd, 0, cfg->busy_poll_us, &what) < 0) {
            helper_fail(sh, "%s: %s", what, errno_name(errno));
        } else {
            ssize_t n = m->ops->recv(fd, &byte, 1, 0);
            if (n == 1)
                n = m->ops->send(fd, &byte, 1, MSG_NOSIGNAL);
            if (n != 1)
                helper_fail(sh, "first round trip (server): %s",
                            n < 0 ? errno_name(errno) : "end of stream");
            else if (i < SETUP_CHECKED && m->shm)
                (void)m->ops->recv(fd, &byte, 1, 0); /* the client's check byte */
        }
        m->ops->close(fd);
    }
}

void case_setup(const struct bench_config *cfg, enum bench_mode mode, size_t size,
                struct run_result *out)
{
    (void)size;
    const struct mode_info *m = mode_info(mode);
    struct shared *sh = shared_create();
    if (!sh) {
        result_error(out, "mmap: %s", errno_name(errno));
        return;
    }
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int len = snprintf(addr.sun_path + 1, sizeof(addr.sun_path) - 1, "shmsock-bench-%d-%s",
                       (int)getpid(), m->name);
    socklen_t addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)len);
    int listener = m->ops->socket(AF_UNIX, cfg->sock_type, 0);
    if (listener < 0 || m->ops->bind(listener, (struct sockaddr *)&addr, addrlen) < 0 ||
        m->ops->listen(listener, 128) < 0) {
        result_error(out, "listener: %s", errno_name(errno));
        return;
    }
    pid_t pid = fork();
    if (pid < 0) {
        result_error(out, "fork: %s", errno_name(errno));
        return;
    }
    if (pid == 0) {
        alarm((unsigned)cfg->timeout_seconds);
        acceptor(cfg, m, listener, sh);
        _exit(0);
    }
    long warm = SETUP_CHECKED, n = 0;
    double *t = malloc(sizeof(double) * (size_t)cfg->setup_rounds);
    for (long i = 0; t && n < cfg->setup_rounds; i++) {
        const char *what = "socket";
        char byte = 's';
        double t0 = now_seconds();
        int fd = m->ops->socket(AF_UNIX, cfg->sock_type, 0);
        int ok = fd >= 0;
        if (ok && mode_configure(m, fd, 0, cfg->busy_poll_us, &what) < 0)
            ok = 0;
        if (ok && (what = "connect", m->ops->connect(fd, (struct sockaddr *)&addr, addrlen) < 0))
            ok = 0;
        if (ok && (what = "send", m->ops->send(fd, &byte, 1, MSG_NOSIGNAL) != 1))
            ok = 0;
        if (ok) {
            what = "recv";
            ssize_t r = m->ops->recv(fd, &byte, 1, 0);
            if (r != 1) {
                ok = 0;
                if (r == 0) {
                    what = "recv (end of stream)";
                    errno = ECONNRESET;
                }
            }
        }
        double t1 = now_seconds();
        if (!ok) {
            result_error(out, "connection %ld: %s: %s", i, what, errno_name(errno));
            if (fd >= 0)
                m->ops->close(fd);
            break;
        }
        if (i < SETUP_CHECKED && m->shm) {
            int status = -1;
            if (m->ops->send(fd, &byte, 1, MSG_NOSIGNAL) == 1)
                status = mode_shm_status(m, fd);
            if (status != SHM_STATUS_SHM) {
                result_error(out,
                             "client: SHM_STATUS=%s after the first round trip and one "
                             "more send",
                             shm_status_name(status));
                m->ops->close(fd);
                break;
            }
        }
        m->ops->close(fd);
        if (i >= warm)
            t[n++] = (t1 - t0) * 1e6;
    }
    set_stop(sh);
    kill(pid, SIGKILL); /* it waits in accept() */
    waitpid(pid, NULL, 0);
    m->ops->close(listener);
    merge_helper(out, sh, 0, "acceptor");
    if (!t)
        result_error(out, "out of memory");
    if (out->ok) {
        stats_sort(t, n);
        out->p50_us = stats_percentile_sorted(t, n, 50);
        out->p99_us = stats_percentile_sorted(t, n, 99);
        out->samples = n;
    }
    free(t);
}

/* ---- touch-only bound ---- */

void case_touch(const struct bench_config *cfg, enum bench_mode mode, size_t size,
                struct run_result *out)
{
    (void)mode;
    void *buf = case_buffer(size);
    if (!buf) {
        result_error(out, "out of memory");
        return;
    }
    struct window w;
    window_init(&w, size);
    for (uint64_t seq = 0;; seq++) {
        payload_fill(buf, size, seq);
        if (payload_verify(buf, 0, size, seq)) {
            result_error(out, "touch-only: wrong bytes");
            break;
        }
        if (window_update(&w, cfg, seq + 1))
            break;
    }
    window_result(&w, size, out);
    free(buf);
}
