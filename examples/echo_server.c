/*
 * echo_server.c - an epoll echo server written with shmsock calls.
 *
 *   echo_server [--seqpacket] [--clients N] [--quiet] SOCKET
 *
 * Listens on SOCKET (a filesystem path, or "@name" for an abstract name) and sends back
 * whatever each client sends, to many clients at once, from one thread. Stops on SIGINT or
 * SIGTERM, or once N clients have come and gone (--clients N). Prints one line per finished
 * client (unless --quiet) and a summary at exit.
 *
 * What it shows:
 *   - the descriptors shm_socket() and shm_accept4() return go into epoll unchanged
 *     (level-triggered here; readable whenever a message is waiting);
 *   - non-blocking sends: when shm_send() fails with EAGAIN (or sends part of a stream
 *     buffer) the server keeps the unsent bytes, stops reading from that client, and waits
 *     for POLLOUT with shm_poll(), NOT with epoll: the kernel socket reports POLLOUT even when
 *     every shared-memory block is still in use (see shmsock.h, "Readiness"). The epoll
 *     descriptor itself goes into the same shm_poll() call, so other clients are served
 *     while one is stalled;
 *   - SIGINT/SIGTERM arrive through a signalfd in the same epoll set: no race, clean exit;
 *   - shm_close() for every descriptor shmsock created.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "shmsock.h"

/* Largest message read at once; SOCK_SEQPACKET messages up to this size are echoed whole. */
#define BUFFER_SIZE (1u << 20)
/* Reads per client per wake-up, so that one busy client cannot starve the others. */
#define READS_PER_WAKEUP 16

struct client {
    int fd;
    unsigned id;
    unsigned char *pending; /* bytes not sent yet (a stream's tail, or one whole message) */
    size_t pending_len;
    size_t pending_off;
    unsigned long long reads, bytes, stalls; /* stalls: sends that had to wait for room */
    struct client *prev, *next;
};

struct server {
    const char *prog;
    int type; /* SOCK_STREAM or SOCK_SEQPACKET */
    int quiet;
    int epfd, listen_fd, signal_fd;
    struct client *clients; /* all connected clients */
    unsigned next_id;
    unsigned long served, max_clients; /* max_clients 0: no limit */
    unsigned long long total_bytes;
    unsigned char *buffer;
    int stop;
};

/* epoll tags for the two descriptors that are not clients. */
static char listener_tag, signal_tag;

static socklen_t make_address(const char *name, struct sockaddr_un *addr)
{
    memset(addr, 0, sizeof(*addr));
    addr->sun_family = AF_UNIX;
    size_t len = strlen(name);
    if (len == 0 || len >= sizeof(addr->sun_path))
        return 0;
    memcpy(addr->sun_path, name, len);
    if (name[0] == '@') {
        addr->sun_path[0] = '\0'; /* abstract: no trailing NUL, length says where it ends */
        return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    }
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
}

static const char *status_name(int fd)
{
    int status = -1;
    socklen_t len = sizeof(status);
    if (shm_getsockopt(fd, SOL_SHMSOCK, SHM_STATUS, &status, &len) < 0)
        return "unknown";
    switch (status) {
    case SHM_STATUS_SHM:
        return "shared memory";
    case SHM_STATUS_OFFERED:
        return "kernel socket (offered shared memory, the peer never answered)";
    case SHM_STATUS_PLAIN:
        return "kernel socket (not negotiated)";
    default:
        return "kernel socket (passthrough)";
    }
}

/* Which events we want from a client: none while it has unsent bytes (back-pressure). */
static int watch(struct server *s, struct client *c)
{
    struct epoll_event ev = {.events = c->pending_len > 0 ? 0 : EPOLLIN, .data.ptr = c};
    return epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void drop_client(struct server *s, struct client *c, const char *why)
{
    if (!s->quiet)
        printf("%s: client %u: %s after %llu reads, %llu bytes echoed (%llu sends waited for "
               "room), over %s\n",
               s->prog, c->id, why, c->reads, c->bytes, c->stalls, status_name(c->fd));
    epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    shm_close(c->fd);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->clients = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    free(c->pending);
    free(c);
    s->served++;
    if (s->max_clients > 0 && s->served >= s->max_clients)
        s->stop = 1;
}

/*
 * Send what is pending. Returns 1 when all has gone, 0 when some is still waiting for room
 * (EAGAIN), -1 when the client is gone (it has been dropped).
 */
static int flush(struct server *s, struct client *c)
{
    while (c->pending_off < c->pending_len) {
        ssize_t n = shm_send(c->fd, c->pending + c->pending_off, c->pending_len - c->pending_off,
                             MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0; /* wait with shm_poll(POLLOUT); see main loop */
        if (n < 0) {
            drop_client(s, c, strerror(errno));
            return -1;
        }
        c->pending_off += (size_t)n; /* a stream send may be partial */
    }
    free(c->pending);
    c->pending = NULL;
    c->pending_len = c->pending_off = 0;
    return 1;
}

/* Echo len bytes just read; whatever the socket does not take now is kept in c->pending. */
static int echo(struct server *s, struct client *c, const unsigned char *data, size_t len)
{
    c->pending = malloc(len > 0 ? len : 1);
    if (c->pending == NULL) {
        drop_client(s, c, "out of memory");
        return -1;
    }
    memcpy(c->pending, data, len);
    c->pending_len = len;
    c->pending_off = 0;
    int r = flush(s, c);
    if (r == 0)
        c->stalls++;
    if (r == 0 && watch(s, c) < 0) { /* stalled: stop reading until it drains */
        drop_client(s, c, "epoll_ctl failed");
        return -1;
    }
    return r;
}

static void on_readable(struct server *s, struct client *c)
{
    for (int i = 0; i < READS_PER_WAKEUP; i++) {
        ssize_t n = shm_recv(c->fd, s->buffer, BUFFER_SIZE, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return; /* level-triggered: epoll reports the next message */
        if (n < 0) {
            drop_client(s, c, strerror(errno));
            return;
        }
        if (n == 0) {
            /* End of stream. (On SOCK_SEQPACKET a zero-length message also reads as 0;
             * echo clients never send one.) */
            drop_client(s, c, "disconnected");
            return;
        }
        c->reads++;
        c->bytes += (unsigned long long)n;
        s->total_bytes += (unsigned long long)n;
        if (echo(s, c, s->buffer, (size_t)n) != 1)
            return; /* stalled (waits for POLLOUT) or dropped */
    }
}

static void on_accept(struct server *s)
{
    for (;;) {
        int fd = shm_accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                fprintf(stderr, "%s: accept: %s\n", s->prog, strerror(errno));
            return;
        }
        struct client *c = calloc(1, sizeof(*c));
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (c == NULL || epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            fprintf(stderr, "%s: cannot take client: %s\n", s->prog, strerror(errno));
            free(c);
            shm_close(fd);
            continue;
        }
        c->fd = fd;
        c->id = ++s->next_id;
        c->next = s->clients;
        if (s->clients != NULL)
            s->clients->prev = c;
        s->clients = c;
    }
}

/*
 * Wait until epoll has something, or a stalled client can take more bytes. With no stalled
 * client this is just epoll_wait(). Returns what epoll_wait returns.
 */
static int wait_for_work(struct server *s, struct epoll_event *events, int max_events)
{
    size_t stalled = 0;
    for (struct client *c = s->clients; c != NULL; c = c->next)
        stalled += c->pending_len > 0;
    if (stalled == 0)
        return epoll_wait(s->epfd, events, max_events, -1);

    struct pollfd *fds = calloc(stalled + 1, sizeof(*fds));
    struct client **owners = calloc(stalled + 1, sizeof(*owners));
    if (fds == NULL || owners == NULL) {
        free(fds);
        free(owners);
        return epoll_wait(s->epfd, events, max_events, 10); /* low memory: retry soon */
    }
    fds[0] = (struct pollfd){.fd = s->epfd, .events = POLLIN};
    nfds_t n = 1;
    for (struct client *c = s->clients; c != NULL; c = c->next)
        if (c->pending_len > 0) {
            owners[n] = c;
            fds[n++] = (struct pollfd){.fd = c->fd, .events = POLLOUT};
        }
    int r = shm_poll(fds, n, -1); /* the epoll fd, and POLLOUT on every stalled client */
    for (nfds_t i = 1; r > 0 && i < n; i++) {
        struct client *c = owners[i];
        /* POLLHUP/POLLERR too: the next send reports the error and drops the client. */
        if (fds[i].revents != 0 && flush(s, c) == 1)
            watch(s, c); /* drained: read from it again */
    }
    free(fds);
    free(owners);
    if (r < 0)
        return -1;
    return epoll_wait(s->epfd, events, max_events, 0); /* whatever epoll has now, if any */
}

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [--seqpacket] [--clients N] [--quiet] SOCKET\n"
            "  SOCKET is a filesystem path or @name (abstract)\n",
            argv0);
}

int main(int argc, char **argv)
{
    struct server s = {.type = SOCK_STREAM, .epfd = -1, .listen_fd = -1, .signal_fd = -1};
    s.prog = strrchr(argv[0], '/') != NULL ? strrchr(argv[0], '/') + 1 : argv[0];
    const char *name = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seqpacket") == 0)
            s.type = SOCK_SEQPACKET;
        else if (strcmp(argv[i], "--clients") == 0 && i + 1 < argc)
            s.max_clients = strtoul(argv[++i], NULL, 0);
        else if (strcmp(argv[i], "--quiet") == 0)
            s.quiet = 1;
        else if (argv[i][0] != '-' && name == NULL)
            name = argv[i];
        else
            return usage(argv[0]), 2;
    }
    if (name == NULL)
        return usage(argv[0]), 2;
    struct sockaddr_un addr;
    socklen_t addr_len = make_address(name, &addr);
    if (addr_len == 0) {
        fprintf(stderr, "%s: socket name too long: %s\n", s.prog, name);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    /* SIGINT/SIGTERM: blocked, and read from a signalfd in the epoll set. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    sigprocmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN); /* belt and braces: every send has MSG_NOSIGNAL */

    s.buffer = malloc(BUFFER_SIZE);
    s.signal_fd = signalfd(-1, &stop_signals, SFD_NONBLOCK | SFD_CLOEXEC);
    s.epfd = epoll_create1(EPOLL_CLOEXEC);
    s.listen_fd = shm_socket(AF_UNIX, s.type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s.buffer == NULL || s.signal_fd < 0 || s.epfd < 0 || s.listen_fd < 0) {
        fprintf(stderr, "%s: setup: %s\n", s.prog, strerror(errno));
        return 1;
    }
    if (name[0] != '@') {
        struct stat st; /* a socket file left by an earlier run: remove it, nothing else */
        if (stat(name, &st) == 0 && S_ISSOCK(st.st_mode))
            unlink(name);
    }
    if (shm_bind(s.listen_fd, (const struct sockaddr *)&addr, addr_len) < 0 ||
        shm_listen(s.listen_fd, 128) < 0) {
        fprintf(stderr, "%s: bind/listen %s: %s\n", s.prog, name, strerror(errno));
        return 1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &listener_tag};
    epoll_ctl(s.epfd, EPOLL_CTL_ADD, s.listen_fd, &ev);
    ev = (struct epoll_event){.events = EPOLLIN, .data.ptr = &signal_tag};
    epoll_ctl(s.epfd, EPOLL_CTL_ADD, s.signal_fd, &ev);
    printf("%s: listening on %s (%s)\n", s.prog, name,
           s.type == SOCK_STREAM ? "SOCK_STREAM" : "SOCK_SEQPACKET");

    struct epoll_event events[64];
    while (!s.stop) {
        int n = wait_for_work(&s, events, 64);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "%s: wait: %s\n", s.prog, strerror(errno));
            break;
        }
        for (int i = 0; i < n && !s.stop; i++) {
            if (events[i].data.ptr == &listener_tag) {
                on_accept(&s);
            } else if (events[i].data.ptr == &signal_tag) {
                struct signalfd_siginfo info;
                if (read(s.signal_fd, &info, sizeof(info)) == (ssize_t)sizeof(info))
                    printf("%s: %s, stopping\n", s.prog, strsignal((int)info.ssi_signo));
                s.stop = 1;
            } else {
                struct client *c = events[i].data.ptr;
                if (c->pending_len > 0) { /* only EPOLLHUP/EPOLLERR come while stalled */
                    if (flush(&s, c) == 1)
                        watch(&s, c);
                } else {
                    on_readable(&s, c);
                }
            }
        }
    }

    while (s.clients != NULL)
        drop_client(&s, s.clients, "closed by the server");
    shm_close(s.listen_fd);
    close(s.signal_fd);
    close(s.epfd);
    if (name[0] != '@')
        unlink(name);
    free(s.buffer);
    printf("%s: served %lu clients, %llu bytes echoed\n", s.prog, s.served, s.total_bytes);
    return 0;
}
