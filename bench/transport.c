/*
 * transport.c - the benchmark's modes: kernel calls or shm_* calls, and the options each sets.
 */
#include "bench.h"

#include <errno.h>
#include <unistd.h>

#include "shmsock.h"

/* The kernel's calls behind one table (glibc's sockaddr transparent unions need wrappers). */
static int k_bind(int fd, const struct sockaddr *a, socklen_t l)
{
    return bind(fd, a, l);
}
static int k_accept(int fd, struct sockaddr *a, socklen_t *l)
{
    return accept(fd, a, l);
}
static int k_connect(int fd, const struct sockaddr *a, socklen_t l)
{
    return connect(fd, a, l);
}
static int k_recvmmsg(int fd, struct mmsghdr *v, unsigned int n, int f, struct timespec *t)
{
    return recvmmsg(fd, v, n, f, t);
}

static const struct sockops kernel_ops = {
    .socketpair = socketpair,
    .socket = socket,
    .bind = k_bind,
    .listen = listen,
    .accept = k_accept,
    .connect = k_connect,
    .send = send,
    .recv = recv,
    .close = close,
    .setsockopt = setsockopt,
    .getsockopt = getsockopt,
    .sendmmsg = sendmmsg,
    .recvmmsg = k_recvmmsg,
};

static const struct sockops shm_ops = {
    .socketpair = shm_socketpair,
    .socket = shm_socket,
    .bind = shm_bind,
    .listen = shm_listen,
    .accept = shm_accept,
    .connect = shm_connect,
    .send = shm_send,
    .recv = shm_recv,
    .close = shm_close,
    .setsockopt = shm_setsockopt,
    .getsockopt = shm_getsockopt,
    .sendmmsg = zc_sendmmsg, /* zerocopy.c: fails with ENOSYS while not linked */
    .recvmmsg = zc_recvmmsg,
};

static const struct mode_info modes[MODE_COUNT] = {
    [MODE_KERNEL] = {.name = "kernel", .ops = &kernel_ops},
    [MODE_EVENT] = {.name = "event", .shm = 1, .coalesce = 0, .ops = &shm_ops},
    [MODE_COALESCED] = {.name = "coalesced", .shm = 1, .coalesce = 1, .ops = &shm_ops},
    [MODE_ZEROCOPY] =
        {.name = "zero-copy", .shm = 1, .coalesce = 1, .zerocopy = 1, .ops = &shm_ops},
    [MODE_BUSYPOLL] =
        {.name = "busy-poll", .shm = 1, .coalesce = 1, .busy_poll = 1, .ops = &shm_ops},
    [MODE_TOUCH] = {.name = "touch-bound", .ops = &kernel_ops},
    [MODE_COPY_FLOOR] = {.name = "copy-floor", .ops = &kernel_ops},
    [MODE_KERNEL_MMSG] = {.name = "kernel-mmsg", .mmsg = 1, .ops = &kernel_ops},
    [MODE_MMSG] = {.name = "mmsg", .shm = 1, .coalesce = 1, .mmsg = 1, .ops = &shm_ops},
};

const struct mode_info *mode_info(enum bench_mode mode)
{
    return &modes[mode];
}

const char *metric_name(enum bench_metric metric)
{
    switch (metric) {
    case METRIC_STREAM:
    case METRIC_STREAM2:
        return "stream"; /* the CSV's sock_type column tells them apart */
    case METRIC_PINGPONG:
        return "pingpong";
    case METRIC_SETUP:
        return "setup";
    case METRIC_REQRESP_ONE:
        return "reqresp-1";
    case METRIC_REQRESP_MANY:
        return "reqresp-32";
    default:
        return "?";
    }
}

int metric_is_streaming(enum bench_metric metric)
{
    return metric == METRIC_STREAM || metric == METRIC_STREAM2;
}

int metric_sock_type(const struct bench_config *cfg, enum bench_metric metric)
{
    return metric == METRIC_STREAM2 ? cfg->sock_type2 : cfg->sock_type;
}

int metric_has_rate(enum bench_metric metric)
{
    return metric_is_streaming(metric) || metric == METRIC_REQRESP_ONE ||
           metric == METRIC_REQRESP_MANY;
}

int metric_has_latency(enum bench_metric metric)
{
    return !metric_is_streaming(metric);
}

int metric_has_size(enum bench_metric metric, int size_index)
{
    /* Request/response: 64 B, 4 KiB, 64 KiB, 1 MiB replies (1 KiB adds little, costs time). */
    return !(metric == METRIC_REQRESP_ONE || metric == METRIC_REQRESP_MANY) || size_index != 1;
}

int mode_configure(const struct mode_info *m, int fd, int sndbuf, int busy_poll_us,
                   const char **what)
{
    const struct sockops *ops = m->ops;
    if (sndbuf > 0) {
        *what = "setsockopt(SO_SNDBUF)";
        if (ops->setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)) < 0)
            return -1;
        /* The kernel caps SO_SNDBUF at wmem_max; root may go beyond with SO_SNDBUFFORCE. */
        if (mode_sndbuf(m, fd) < sndbuf)
            (void)ops->setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf));
    }
    if (!m->shm)
        return 0;
    if (!m->coalesce) {
        int zero = 0;
        *what = "shm_setsockopt(SHM_COALESCE, 0)";
        if (ops->setsockopt(fd, SOL_SHMSOCK, SHM_COALESCE, &zero, sizeof(zero)) < 0)
            return -1;
    }
    if (m->busy_poll) {
        *what = "shm_setsockopt(SHM_BUSY_POLL)";
        if (ops->setsockopt(fd, SOL_SHMSOCK, SHM_BUSY_POLL, &busy_poll_us, sizeof(busy_poll_us)) <
            0)
            return -1;
    }
    return 0;
}

int mode_shm_status(const struct mode_info *m, int fd)
{
    int status = -1;
    socklen_t len = sizeof(status);
    if (m->ops->getsockopt(fd, SOL_SHMSOCK, SHM_STATUS, &status, &len) < 0)
        return -1;
    return status;
}

long long mode_doorbells_received(const struct mode_info *m, int fd)
{
    struct shm_sock_info info;
    socklen_t len = sizeof(info);
    if (!m->shm || m->ops->getsockopt(fd, SOL_SHMSOCK, SHM_INFO, &info, &len) < 0)
        return -1;
    return (long long)info.doorbells_received;
}

int mode_sndbuf(const struct mode_info *m, int fd)
{
    int value = 0;
    socklen_t len = sizeof(value);
    if (m->ops->getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &value, &len) < 0)
        return 0;
    return value;
}

int send_all(const struct mode_info *m, int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = m->ops->send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0) {
            errno = EIO; /* a blocking send that sends nothing: should not happen */
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

ssize_t recv_message(const struct mode_info *m, int type, int fd, void *buf, size_t len,
                     ssize_t *got)
{
    if (type == SOCK_SEQPACKET) {
        ssize_t n;
        do
            n = m->ops->recv(fd, buf, len, 0);
        while (n < 0 && errno == EINTR);
        if (n < 0 || n == 0 || (size_t)n == len)
            return n;
        *got = n;
        return -2;
    }
    /* SOCK_STREAM: MSG_WAITALL makes one recv one message; loop in case it returns early. */
    size_t off = 0;
    while (off < len) {
        ssize_t n = m->ops->recv(fd, (char *)buf + off, len - off, MSG_WAITALL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0) {
            if (off == 0)
                return 0;
            *got = (ssize_t)off;
            return -2; /* end of stream in the middle of a message */
        }
        off += (size_t)n;
    }
    return (ssize_t)len;
}
