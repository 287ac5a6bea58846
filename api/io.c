/*
 * io.c - moving data: shm_send, shm_sendto, shm_sendmsg, shm_write, shm_writev, shm_recv,
 * shm_recvfrom, shm_recvmsg, shm_read, shm_readv. Each builds a msghdr and hands it to the
 * connection's send or receive path; descriptors that are not shm sockets go to the kernel.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <unistd.h>

#include "adopt.h"
#include "fd_table.h"
#include "result.h"
#include "share.h"
#include "shmsock.h"

/* MSG_OOB: the urgent byte is the kernel's alone. A connection that has not begun to
 * negotiate moves to the kernel path for good (true while no byte has gone either way) and the
 * call goes to the kernel; one that has cannot (EOPNOTSUPP, as before). */
static int oob_to_kernel(struct shmsock_entry *entry)
{
    int err = shmsock_share_hand_over(entry->socket);
    shmsock_fd_put(entry);
    return err;
}

static ssize_t send_message(int sockfd, const struct msghdr *msg, int flags)
{
    struct shmsock_entry *entry = shmsock_fd_get(sockfd);
    if (entry != NULL && (flags & MSG_OOB)) {
        int err = oob_to_kernel(entry);
        if (err < 0)
            return shmsock_result(err);
        entry = NULL;
    }
    if (entry == NULL)
        return shmsock_libc.sendmsg(sockfd, msg, flags);
    int err = shmsock_share_use(entry->socket);
    if (err < 0) {
        shmsock_fd_put(entry);
        return shmsock_result(err);
    }
    ssize_t r = shmsock_conn_send(entry->conn, msg, flags);
    int type = shmsock_conn_type(entry->conn);
    shmsock_fd_put(entry);
    return shmsock_send_result(r, flags, type);
}

ssize_t shm_sendmsg(int sockfd, const struct msghdr *msg, int flags)
{
    int err = shmsock_share_hand_over_rights(msg);
    if (err < 0)
        return shmsock_result(err);
    ssize_t r = send_message(sockfd, msg, flags);
    int saved = errno;
    shmsock_share_rights_sent(msg, r >= 0);
    errno = saved;
    return r;
}

ssize_t shm_sendto(int sockfd, const void *buf, size_t len, int flags,
                   const struct sockaddr *dest_addr, socklen_t addrlen)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct msghdr msg = {
        .msg_name = (void *)dest_addr, .msg_namelen = addrlen, .msg_iov = &iov, .msg_iovlen = 1};
    return shm_sendmsg(sockfd, &msg, flags);
}

ssize_t shm_send(int sockfd, const void *buf, size_t len, int flags)
{
    return shm_sendto(sockfd, buf, len, flags, NULL, 0);
}

/*
 * The kernel's readv(2) and writev(2) return 0 for a vector of no bytes before they reach the
 * socket (nothing is sent, no error is reported), while read(2) and write(2) of 0 bytes do
 * not: write(2) sends an empty message on a datagram or SEQPACKET socket. So shm_write and
 * shm_read are not shm_writev and shm_readv of one entry.
 */
static bool vector_is_empty(const struct iovec *iov, int iovcnt)
{
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len != 0)
            return false;
    }
    return true;
}

ssize_t shm_writev(int fd, const struct iovec *iov, int iovcnt)
{
    struct shmsock_entry *entry = shmsock_fd_get(fd);
    if (entry == NULL)
        return shmsock_libc.writev(fd, iov, iovcnt);
    shmsock_fd_put(entry);
    if (iovcnt < 0 || iovcnt > IOV_MAX) {
        errno = EINVAL;
        return -1;
    }
    if (vector_is_empty(iov, iovcnt))
        return 0;
    struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
    return shm_sendmsg(fd, &msg, 0);
}

ssize_t shm_write(int fd, const void *buf, size_t count)
{
    struct shmsock_entry *entry = shmsock_fd_get(fd);
    if (entry == NULL)
        return shmsock_libc.write(fd, buf, count);
    shmsock_fd_put(entry);
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = count};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    return shm_sendmsg(fd, &msg, 0);
}

ssize_t shm_recvmsg(int sockfd, struct msghdr *msg, int flags)
{
    struct shmsock_entry *entry = shmsock_fd_get(sockfd);
    ssize_t r;
    if (entry != NULL && (flags & MSG_OOB)) {
        int err = oob_to_kernel(entry);
        if (err < 0)
            return shmsock_result(err);
        entry = NULL;
    }
    if (entry == NULL) {
        r = shmsock_libc.recvmsg(sockfd, msg, flags);
    } else {
        int err = shmsock_share_use(entry->socket);
        r = err < 0 ? err : shmsock_conn_recv(entry->conn, msg, flags);
        shmsock_share_after_read(entry->socket);
        shmsock_fd_put(entry);
        r = shmsock_result(r);
    }
    if (r >= 0) /* a peek brings new descriptors too */
        shmsock_adopt_received_sockets(msg);
    return r;
}

ssize_t shm_recvfrom(int sockfd, void *buf, size_t len, int flags, struct sockaddr *src_addr,
                     socklen_t *addrlen)
{
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    struct msghdr msg = {.msg_name = src_addr,
                         .msg_namelen = addrlen != NULL ? *addrlen : 0,
                         .msg_iov = &iov,
                         .msg_iovlen = 1};
    if (src_addr == NULL)
        msg.msg_namelen = 0;
    ssize_t r = shm_recvmsg(sockfd, &msg, flags);
    if (r >= 0 && addrlen != NULL && src_addr != NULL)
        *addrlen = msg.msg_namelen;
    return r;
}

ssize_t shm_recv(int sockfd, void *buf, size_t len, int flags)
{
    return shm_recvfrom(sockfd, buf, len, flags, NULL, NULL);
}

ssize_t shm_readv(int fd, const struct iovec *iov, int iovcnt)
{
    struct shmsock_entry *entry = shmsock_fd_get(fd);
    if (entry == NULL)
        return shmsock_libc.readv(fd, iov, iovcnt);
    shmsock_fd_put(entry);
    if (iovcnt < 0 || iovcnt > IOV_MAX) {
        errno = EINVAL;
        return -1;
    }
    if (vector_is_empty(iov, iovcnt))
        return 0;
    struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
    return shm_recvmsg(fd, &msg, 0);
}

ssize_t shm_read(int fd, void *buf, size_t count)
{
    struct shmsock_entry *entry = shmsock_fd_get(fd);
    if (entry == NULL)
        return shmsock_libc.read(fd, buf, count);
    shmsock_fd_put(entry);
    if (count == 0)
        return 0; /* read(2) of nothing on a socket returns at once, as readv(2) does */
    struct iovec iov = {.iov_base = buf, .iov_len = count};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    return shm_recvmsg(fd, &msg, 0);
}
