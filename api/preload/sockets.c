/*
 * sockets.c - the preload's calls that make, name, duplicate and close descriptors:
 * socket, socketpair, accept, accept4, bind, connect, close, close_range, closefrom, fclose,
 * dup, dup2, dup3, fcntl, fcntl64, ioctl, getsockopt, setsockopt, shutdown.
 *
 * Each is the shm_ call of the same name: the kernel does the work, and the descriptor table
 * follows (a duplicate names the same shm socket; a closed number is forgotten before anything
 * else can get it, so a later call on that number never reaches a connection it no longer
 * names).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "../fd_table.h"
#include "preload.h"
#include "shmsock.h"

int socket(int domain, int type, int protocol)
{
    shmsock_preload_ready();
    int fd = shm_socket(domain, type, protocol);
    if (fd >= 0)
        shmsock_preload_adopted(fd, "socket");
    return fd;
}

int socketpair(int domain, int type, int protocol, int sv[2])
{
    shmsock_preload_ready();
    int r = shm_socketpair(domain, type, protocol, sv);
    if (r == 0) {
        shmsock_preload_adopted(sv[0], "socketpair");
        shmsock_preload_adopted(sv[1], "socketpair");
    }
    return r;
}

int accept4(int sockfd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
    shmsock_preload_ready();
    int fd = shm_accept4(sockfd, addr, addrlen, flags);
    if (fd >= 0)
        shmsock_preload_adopted(fd, "accept");
    return fd;
}

int accept(int sockfd, struct sockaddr *addr, socklen_t *addrlen)
{
    return accept4(sockfd, addr, addrlen, 0);
}

int bind(int sockfd, const struct sockaddr *addr, socklen_t addrlen)
{
    shmsock_preload_ready();
    if (shmsock_preload_excluded(addr, addrlen))
        shmsock_preload_exclude(sockfd, addr, addrlen); /* accepted sockets inherit it */
    return shm_bind(sockfd, addr, addrlen);
}

int connect(int sockfd, const struct sockaddr *addr, socklen_t addrlen)
{
    shmsock_preload_ready();
    if (shmsock_preload_excluded(addr, addrlen))
        shmsock_preload_exclude(sockfd, addr, addrlen);
    return shm_connect(sockfd, addr, addrlen);
}

int shutdown(int sockfd, int how)
{
    shmsock_preload_ready();
    return shm_shutdown(sockfd, how);
}

int close(int fd)
{
    shmsock_preload_ready();
    return shm_close(fd);
}

/* A shm socket whose descriptor is about to be closed, taken out of the table first (so a
 * socket that gets the number next is never mistaken for it). */
struct forgotten {
    struct shmsock_entry *entry;
    bool last_name; /* no other descriptor names the socket */
};

static struct forgotten forget(int fd)
{
    struct forgotten f = {.entry = shmsock_fd_get(fd)};
    if (f.entry != NULL) {
        f.last_name = !shmsock_fd_has_other_names(f.entry);
        shmsock_fd_remove(fd);
    }
    return f;
}

/* The kernel has closed it (or failed to, r != 0). */
static void forgotten_closed(struct forgotten f, int r)
{
    if (f.entry == NULL)
        return;
    if (r == 0 && f.last_name)
        shmsock_conn_socket_closed(f.entry->conn);
    shmsock_fd_put(f.entry);
}

/* Close [first, last] with close_range(flags), forgetting the shm sockets among them. */
static int close_range_forgetting(unsigned first, unsigned last, int flags)
{
    if (first > last || (flags & CLOSE_RANGE_CLOEXEC))
        return shmsock_libc.close_range(first, last, flags); /* an error, or nothing closes */
    /* The table holds numbers below the descriptor limit only: look there, not to UINT_MAX. */
    long limit = sysconf(_SC_OPEN_MAX);
    unsigned top = limit > 0 && (unsigned long)limit <= last ? (unsigned)limit - 1 : last;
    size_t count = 0, size = 0;
    struct forgotten *list = NULL;
    for (unsigned fd = first; fd <= top && fd <= (unsigned)INT32_MAX; fd++) {
        struct forgotten f = forget((int)fd);
        if (f.entry != NULL) {
            if (count == size) {
                size_t bigger = size ? 2 * size : 16;
                struct forgotten *grown = realloc(list, bigger * sizeof(*list));
                if (grown == NULL) { /* keep the socket working rather than lose track */
                    forgotten_closed(f, -1);
                    continue;
                }
                list = grown;
                size = bigger;
            }
            list[count++] = f;
        }
        if (fd == top)
            break;
    }
    int r = shmsock_libc.close_range(first, last, flags);
    for (size_t i = 0; i < count; i++)
        forgotten_closed(list[i], r);
    free(list);
    return r;
}

int close_range(unsigned int first, unsigned int last, int flags)
{
    shmsock_preload_ready();
    return close_range_forgetting(first, last, flags);
}

void closefrom(int lowfd)
{
    shmsock_preload_ready();
    if (close_range_forgetting(lowfd < 0 ? 0u : (unsigned)lowfd, ~0u, 0) == 0)
        return;
    /* No close_range (old kernel): close one by one, as the C library does. */
    long max = sysconf(_SC_OPEN_MAX);
    for (long fd = lowfd < 0 ? 0 : lowfd; fd < max; fd++)
        (void)shm_close((int)fd);
}

int fclose(FILE *stream)
{
    shmsock_preload_ready();
    /* A stream opened on a socket (fdopen) closes the socket: forget it first, as close does. */
    struct forgotten f = forget(stream != NULL ? fileno(stream) : -1);
    int r = shmsock_libc.fclose(stream);
    forgotten_closed(f, r);
    return r;
}

int dup(int oldfd)
{
    shmsock_preload_ready();
    return shm_dup(oldfd);
}

int dup2(int oldfd, int newfd)
{
    shmsock_preload_ready();
    return shm_dup2(oldfd, newfd);
}

int dup3(int oldfd, int newfd, int flags)
{
    shmsock_preload_ready();
    return shm_dup3(oldfd, newfd, flags);
}

/* fcntl and fcntl64 are one call on 64-bit systems; glibc sends programs built with
 * _FILE_OFFSET_BITS=64 to fcntl64. The argument is taken whole (int or pointer). */
static int fcntl_any(int fd, int cmd, va_list ap)
{
    shmsock_preload_ready();
    void *arg = va_arg(ap, void *);
    return shm_fcntl(fd, cmd, arg);
}

int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    int r = fcntl_any(fd, cmd, ap);
    va_end(ap);
    return r;
}

int fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    int r = fcntl_any(fd, cmd, ap);
    va_end(ap);
    return r;
}

int ioctl(int fd, unsigned long request, ...)
{
    shmsock_preload_ready();
    va_list ap;
    va_start(ap, request);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return shm_ioctl(fd, request, arg);
}

int getsockopt(int sockfd, int level, int optname, void *optval, socklen_t *optlen)
{
    shmsock_preload_ready();
    return shm_getsockopt(sockfd, level, optname, optval, optlen);
}

int setsockopt(int sockfd, int level, int optname, const void *optval, socklen_t optlen)
{
    shmsock_preload_ready();
    return shm_setsockopt(sockfd, level, optname, optval, optlen);
}
