/*
 * fd_passing_server.c - an echo server that accepts in one process and serves in another: the
 * acceptor hands each accepted connection to a worker process with SCM_RIGHTS and closes its
 * copy, as pre-forked servers with a dispatcher do. Plain POSIX calls only, no shmsock: run it
 * unmodified under shmsock-run (tools/check_programs.sh, sub-test "pass") to see passed
 * connections reach shared memory in the worker.
 *
 *   fd_passing_server PATH      listen on the AF_UNIX SOCK_STREAM path PATH; echo every byte
 *                               of every connection back until its client shuts down writing
 *
 * The worker serves any number of connections at once with poll(). Stop it with SIGTERM or
 * SIGINT (the acceptor ends, the worker follows when the hand-over channel closes).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_CONNECTIONS 64

static void die(const char *what)
{
    fprintf(stderr, "fd_passing_server: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* Hand `fd` to the worker over `channel` (one byte with the descriptor attached). */
static int send_fd(int channel, int fd)
{
    char byte = 'c';
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = control.buf,
                         .msg_controllen = sizeof(control.buf)};
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
    return sendmsg(channel, &msg, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

/* The next descriptor from the acceptor: >= 0, or -1 once the channel has closed. */
static int receive_fd(int channel)
{
    char byte;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = control.buf,
                         .msg_controllen = sizeof(control.buf)};
    ssize_t n;
    do {
        n = recvmsg(channel, &msg, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    struct cmsghdr *cmsg = n == 1 ? CMSG_FIRSTHDR(&msg) : NULL;
    if (cmsg == NULL || cmsg->cmsg_type != SCM_RIGHTS)
        return -1;
    int fd;
    memcpy(&fd, CMSG_DATA(cmsg), sizeof(int));
    return fd;
}

/* Echo what one connection has to read; false once it is finished (end of stream or error). */
static int echo_some(int fd)
{
    char buf[65536];
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR)
        return 1;
    if (n <= 0)
        return 0;
    for (ssize_t done = 0; done < n;) {
        ssize_t w = write(fd, buf + done, (size_t)(n - done));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return 0;
        done += w;
    }
    return 1;
}

static void worker(int channel)
{
    struct pollfd fds[1 + MAX_CONNECTIONS];
    int count = 1;
    fds[0] = (struct pollfd){.fd = channel, .events = POLLIN};
    for (;;) {
        if (poll(fds, (nfds_t)count, -1) < 0) {
            if (errno == EINTR)
                continue;
            die("poll");
        }
        for (int i = count - 1; i >= 1; i--) {
            if (fds[i].revents != 0 && !echo_some(fds[i].fd)) {
                close(fds[i].fd);
                fds[i] = fds[--count];
            }
        }
        if (fds[0].revents != 0) {
            int fd = receive_fd(channel);
            if (fd < 0)
                exit(0); /* the acceptor has ended */
            if (count == 1 + MAX_CONNECTIONS) {
                close(fd); /* too many: the client sees its connection end */
                continue;
            }
            fds[count++] = (struct pollfd){.fd = fd, .events = POLLIN};
        }
    }
}

static volatile sig_atomic_t stopping;

static void stop(int sig)
{
    (void)sig;
    stopping = 1;
}

int main(int argc, char **argv)
{
    if (argc != 2 || strlen(argv[1]) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        fprintf(stderr, "usage: fd_passing_server PATH\n");
        return 2;
    }
    int channel[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, channel) < 0)
        die("socketpair");
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        close(channel[0]);
        worker(channel[1]);
    }
    close(channel[1]);

    int listener = socket(AF_UNIX, SOCK_STREAM, 0);
    if (listener < 0)
        die("socket");
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strcpy(addr.sun_path, argv[1]);
    unlink(argv[1]);
    if (bind(listener, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(listener, 64) < 0)
        die("bind/listen");
    struct sigaction sa = {.sa_handler = stop};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    while (!stopping) {
        int fd = accept(listener, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            die("accept");
        }
        if (send_fd(channel[0], fd) < 0)
            die("sendmsg");
        close(fd);
    }
    close(channel[0]);
    close(listener);
    unlink(argv[1]);
    waitpid(pid, NULL, 0);
    return 0;
}
