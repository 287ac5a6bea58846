/*
 * socket.c - creating, connecting and closing sockets: shm_socket, shm_socketpair,
 * shm_bind, shm_listen, shm_accept, shm_accept4, shm_connect, shm_shutdown, shm_close,
 * shm_getsockname, shm_getpeername, shm_fcntl.
 *
 * Every call is the kernel's call on the kernel socket; for AF_UNIX STREAM/SEQPACKET sockets
 * we also keep a connection (impl/conn.h) in the descriptor table.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <unistd.h>

#include "fd_table.h"
#include "result.h"
#include "shmsock.h"

/* Whether a socket of this family and type runs over shared memory. */
static int is_shm_type(int domain, int type)
{
    int base = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
    return domain == AF_UNIX && (base == SOCK_STREAM || base == SOCK_SEQPACKET);
}

/* Attach engine state to a fresh kernel socket; on failure close it. Returns fd or -errno. */
static int adopt(int fd, int type, const struct shmsock_conn *inherit_from)
{
    struct shmsock_conn *conn = NULL;
    int err = shmsock_conn_create(fd, type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC), &conn);
    if (err == 0) {
        if (inherit_from != NULL)
            shmsock_conn_inherit_options(conn, inherit_from);
        err = shmsock_fd_install(fd, conn);
        if (err < 0)
            shmsock_conn_destroy(conn);
    }
    if (err < 0) {
        close(fd);
        return err;
    }
    return fd;
}

int shm_socket(int domain, int type, int protocol)
{
    int fd = socket(domain, type, protocol);
    if (fd < 0 || !is_shm_type(domain, type))
        return fd;
    return (int)shmsock_result(adopt(fd, type, NULL));
}

int shm_socketpair(int domain, int type, int protocol, int sv[2])
{
    /* The kernel writes the pair into sv itself: a bad sv fails with EFAULT (the kernel closes
     * what it made), as socketpair(2) does, before any engine state exists. */
    if (socketpair(domain, type, protocol, sv) < 0)
        return -1;
    int pair[2] = {sv[0], sv[1]};
    if (is_shm_type(domain, type)) {
        int err = adopt(pair[0], type, NULL);
        if (err < 0) {
            close(pair[1]);
            return (int)shmsock_result(err);
        }
        err = adopt(pair[1], type, NULL);
        if (err < 0) {
            shm_close(pair[0]);
            return (int)shmsock_result(err);
        }
    }
    return 0;
}

int shm_bind(int sockfd, const struct sockaddr *addr, socklen_t addrlen)
{
    return bind(sockfd, addr, addrlen);
}

int shm_listen(int sockfd, int backlog)
{
    return listen(sockfd, backlog);
}

int shm_accept4(int sockfd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
    int fd = accept4(sockfd, addr, addrlen, flags);
    if (fd < 0)
        return fd;
    struct shmsock_entry *listener = shmsock_fd_get(sockfd);
    if (listener == NULL)
        return fd; /* not a shm listener (other family, or created without shm_socket) */
    int r = adopt(fd, shmsock_conn_type(listener->conn), listener->conn);
    shmsock_fd_put(listener);
    return (int)shmsock_result(r);
}

int shm_accept(int sockfd, struct sockaddr *addr, socklen_t *addrlen)
{
    return shm_accept4(sockfd, addr, addrlen, 0);
}

int shm_connect(int sockfd, const struct sockaddr *addr, socklen_t addrlen)
{
    return connect(sockfd, addr, addrlen);
}

int shm_shutdown(int sockfd, int how)
{
    /* Releases travel on their own channel, so the kernel's shutdown is the whole story;
     * the connection only notes it, for sends that do not touch the kernel socket. */
    int r = shutdown(sockfd, how);
    if (r == 0) {
        struct shmsock_entry *entry = shmsock_fd_get(sockfd);
        if (entry != NULL)
            shmsock_conn_shutdown(entry->conn, how);
        shmsock_fd_put(entry);
    }
    return r;
}

int shm_close(int fd)
{
    struct shmsock_entry *entry = shmsock_fd_get(fd);
    shmsock_fd_remove(fd);
    int r = close(fd);
    if (entry != NULL) {
        /* Only now, once the kernel has seen the close: the peer asks it at its next send. */
        int saved = errno;
        if (r == 0)
            shmsock_conn_socket_closed(entry->conn);
        shmsock_fd_put(entry);
        errno = saved;
    }
    return r;
}

int shm_getsockname(int sockfd, struct sockaddr *addr, socklen_t *addrlen)
{
    return getsockname(sockfd, addr, addrlen);
}

int shm_getpeername(int sockfd, struct sockaddr *addr, socklen_t *addrlen)
{
    return getpeername(sockfd, addr, addrlen);
}

int shm_fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    /* Commands that take no argument ignore this; all others used on sockets take an int. */
    int arg = va_arg(ap, int);
    va_end(ap);
    return fcntl(fd, cmd, arg);
}
