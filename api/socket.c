/*
 * socket.c - creating, connecting and closing sockets: shm_socket, shm_socketpair,
 * shm_bind, shm_listen, shm_accept, shm_accept4, shm_connect, shm_shutdown, shm_close,
 * shm_getsockname, shm_getpeername, shm_fcntl, shm_dup, shm_dup2, shm_dup3.
 *
 * Every call is the kernel's call on the kernel socket; for AF_UNIX STREAM/SEQPACKET sockets
 * we also keep a connection (impl/conn.h) in the descriptor table.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "epoll_watch.h"
#include "adopt.h"
#include "fd_table.h"
#include "fork.h"
#include "share.h"
#include "result.h"
#include "rights.h"
#include "shmsock.h"

/* Whether a socket of this family and type runs over shared memory. */
static int is_shm_type(int domain, int type)
{
    int base = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
    return domain == AF_UNIX && (base == SOCK_STREAM || base == SOCK_SEQPACKET);
}

/* Attach engine state to kernel socket fd. Returns 0 or -errno (fd left as it was). */
static int attach(int fd, int type, const struct shmsock_conn *inherit_from)
{
    shmsock_fork_watch();
    struct shmsock_conn *conn = NULL;
    int err = shmsock_conn_create(fd, type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC), &conn);
    if (err == 0) {
        if (inherit_from != NULL)
            shmsock_conn_inherit_options(conn, inherit_from);
        err = shmsock_fd_install(fd, conn);
        if (err < 0)
            shmsock_conn_destroy(conn);
    }
    return err;
}

/* attach() for a socket we just made for the caller: on failure it is closed (the caller
 * never sees it). Returns fd or -errno. */
static int adopt(int fd, int type, const struct shmsock_conn *inherit_from)
{
    int err = attach(fd, type, inherit_from);
    if (err < 0) {
        shmsock_libc.close(fd);
        return err;
    }
    return fd;
}

/* newfd is a duplicate of oldfd: if oldfd is a shm socket, so is newfd (the same one). Returns
 * newfd, or -1 with errno ENOMEM (newfd is then closed, as if the dup had failed). */
static int adopt_duplicate(int oldfd, int newfd)
{
    int r = shmsock_fd_alias(oldfd, newfd);
    if (r < 0) {
        shmsock_libc.close(newfd);
        return (int)shmsock_result(r);
    }
    return newfd;
}

/* One descriptor received with SCM_RIGHTS. A connected AF_UNIX stream or seqpacket socket
 * carries another process's history (hand-over, share.h): it stays on the kernel path, and
 * its peer's offers are kept from the program; unless its sender gave it away untouched
 * (shmsock_share_take_given): then it has none, as a listening or unconnected one has none,
 * and it may negotiate (a server that passes each accepted connection to a worker). */
static int adopt_received(int fd, void *arg)
{
    (void)arg;
    int domain = 0, type = 0, listening = 0;
    socklen_t len = sizeof(int);
    if (shmsock_libc.getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0 || domain != AF_UNIX)
        return 0;
    len = sizeof(int);
    if (shmsock_libc.getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 ||
        !is_shm_type(domain, type))
        return 0;
    len = sizeof(int);
    (void)shmsock_libc.getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len);
    struct sockaddr_storage peer;
    len = sizeof(peer);
    bool connected = shmsock_libc.getpeername(fd, (struct sockaddr *)&peer, &len) == 0;
    if (attach(fd, type, NULL) < 0)
        return 0; /* out of memory: it stays a plain kernel socket */
    struct shmsock_entry *entry = shmsock_fd_get(fd);
    if (entry != NULL && connected && !listening && !shmsock_share_take_given(fd))
        (void)shmsock_share_hand_over(entry->socket);
    shmsock_fd_put(entry);
    return 0;
}

void shmsock_adopt_received_sockets(const struct msghdr *msg)
{
    (void)shmsock_rights_each(msg, adopt_received, NULL);
}

int shm_socket(int domain, int type, int protocol)
{
    int fd = shmsock_libc.socket(domain, type, protocol);
    if (fd < 0 || !is_shm_type(domain, type))
        return fd;
    return (int)shmsock_result(adopt(fd, type, NULL));
}

int shm_socketpair(int domain, int type, int protocol, int sv[2])
{
    /* The kernel writes the pair into sv itself: a bad sv fails with EFAULT (the kernel closes
     * what it made), as socketpair(2) does, before any engine state exists. */
    if (shmsock_libc.socketpair(domain, type, protocol, sv) < 0)
        return -1;
    int pair[2] = {sv[0], sv[1]};
    if (is_shm_type(domain, type)) {
        int err = adopt(pair[0], type, NULL);
        if (err < 0) {
            shmsock_libc.close(pair[1]);
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
    return shmsock_libc.bind(sockfd, addr, addrlen);
}

int shm_listen(int sockfd, int backlog)
{
    int r = shmsock_libc.listen(sockfd, backlog);
    struct shmsock_entry *entry = r == 0 ? shmsock_fd_get(sockfd) : NULL;
    if (entry != NULL)
        __atomic_store_n(&entry->socket->listening, 1, __ATOMIC_RELEASE);
    shmsock_fd_put(entry);
    return r;
}

int shm_status(int fd)
{
    struct shmsock_entry *entry = shmsock_fd_get(fd);
    if (entry == NULL)
        return SHM_STATUS_PASSTHROUGH;
    int status = __atomic_load_n(&entry->socket->listening, __ATOMIC_ACQUIRE)
                     ? SHM_STATUS_PASSTHROUGH
                     : shmsock_conn_path(entry->conn);
    shmsock_fd_put(entry);
    return status;
}

int shm_accept4(int sockfd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
    int fd = shmsock_libc.accept4(sockfd, addr, addrlen, flags);
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
    return shmsock_libc.connect(sockfd, addr, addrlen);
}

int shm_shutdown(int sockfd, int how)
{
    /* Releases travel on their own channel, so the kernel's shutdown is the whole story;
     * the connection only notes it, for sends that do not touch the kernel socket. */
    int r = shmsock_libc.shutdown(sockfd, how);
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
    if (entry == NULL)
        shmsock_epoll_forget(fd);
    bool last_name = entry != NULL && !shmsock_fd_has_other_names(entry);
    shmsock_fd_remove(fd);
    int r = shmsock_libc.close(fd);
    if (entry != NULL) {
        /* Only now, once the kernel has seen the close: the peer asks it at its next send. A
         * duplicate still open keeps the socket open, and the peer need not ask. */
        int saved = errno;
        if (r == 0 && last_name)
            shmsock_conn_socket_closed(entry->conn);
        shmsock_fd_put(entry);
        errno = saved;
    }
    return r;
}

int shm_dup(int oldfd)
{
    int newfd = shmsock_libc.dup(oldfd);
    return newfd < 0 ? newfd : adopt_duplicate(oldfd, newfd);
}

int shm_dup2(int oldfd, int newfd)
{
    int r = shmsock_libc.dup2(oldfd, newfd);
    return r < 0 || oldfd == newfd ? r : adopt_duplicate(oldfd, r);
}

int shm_dup3(int oldfd, int newfd, int flags)
{
    int r = shmsock_libc.dup3(oldfd, newfd, flags);
    return r < 0 ? r : adopt_duplicate(oldfd, r);
}

int shm_getsockname(int sockfd, struct sockaddr *addr, socklen_t *addrlen)
{
    return shmsock_libc.getsockname(sockfd, addr, addrlen);
}

int shm_getpeername(int sockfd, struct sockaddr *addr, socklen_t *addrlen)
{
    return shmsock_libc.getpeername(sockfd, addr, addrlen);
}

int shm_fcntl(int fd, int cmd, ...)
{
    /* Every command's argument is an int, a pointer (F_GETLK, F_SETLK, F_OFD_*, F_GETOWN_EX,
     * ...) or nothing: taken as a pointer-sized value, each reaches the kernel intact. */
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    int r = shmsock_libc.fcntl(fd, cmd, arg);
    if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC))
        return adopt_duplicate(fd, r);
    if (r >= 0 && cmd == F_GETFL && (r & O_APPEND)) {
        /* O_APPEND on a socket we gave away is our mark for its receiver (share.c), not the
         * program's: until the receiver takes it off, the program does not see it. */
        struct shmsock_entry *entry = shmsock_fd_get(fd);
        if (entry != NULL && __atomic_load_n(&entry->socket->given_away, __ATOMIC_ACQUIRE))
            r &= ~O_APPEND;
        shmsock_fd_put(entry);
    }
    return r;
}
